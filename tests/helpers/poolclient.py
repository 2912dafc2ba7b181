#!/usr/bin/env python3
"""poolclient.py - HTTP/1.1 requests on one kept-alive connection, for
tests/integration/test_exchange.c.

    poolclient.py blocking|asyncio PORT PATH [--count N] [--gap MS]

Sends N (default 2) GET requests (PATH, or PATH1,PATH2,... in turn) to 127.0.0.1:PORT on one
connection, MS milliseconds (default 500) apart, reading each response
whole by its own framing before the gap: `blocking` with http.client (a
blocking socket the program leaves alone between requests), `asyncio`
with asyncio streams (the socket stays registered in the event loop's
epoll set between requests, as pooled sockets of event-loop clients do).
Prints one line per request:
  RESP <i> <status> <body bytes> <ms>
  ERR <i> <exception class> <errno> <ms>
ms counts from just before the request (the first: from before the
connection, where its request deadline starts; http.client connects in
its request).  Exit status 0 either way.
"""
import argparse
import asyncio
import http.client
import sys
import time


def ms_since(t0):
    return (time.monotonic_ns() - t0) // 1000000


def blocking(port, path, count, gap):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    for i in range(count):
        if i:
            time.sleep(gap / 1000)
        t0 = time.monotonic_ns()
        try:
            conn.request("GET", path[i % len(path)])
            r = conn.getresponse()
            body = r.read()
            print("RESP", i, r.status, len(body), ms_since(t0), flush=True)
        except OSError as e:
            print("ERR", i, type(e).__name__, e.errno, ms_since(t0),
                  flush=True)
            return
    conn.close()


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length, chunked = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
        elif name.strip().lower() == "transfer-encoding":
            chunked = value.strip().lower().endswith("chunked")
    if not chunked:
        return status, len(await reader.readexactly(length))
    total = 0
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            # No trailers here: the empty line ends the message.
            await reader.readuntil(b"\r\n")
            return status, total
        total += len(await reader.readexactly(size))
        await reader.readexactly(2)


async def evloop(port, path, count, gap):
    # The first request's deadline starts at the connect.
    t_conn = time.monotonic_ns()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for i in range(count):
        if i:
            await asyncio.sleep(gap / 1000)
        t0 = time.monotonic_ns() if i else t_conn
        try:
            writer.write(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                          % path[i % len(path)]).encode())
            await writer.drain()
            status, n = await read_response(reader)
            print("RESP", i, status, n, ms_since(t0), flush=True)
        except (OSError, asyncio.IncompleteReadError) as e:
            print("ERR", i, type(e).__name__, getattr(e, "errno", None),
                  ms_since(t0), flush=True)
            return
    writer.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["blocking", "asyncio"])
    ap.add_argument("port", type=int)
    ap.add_argument("path")
    ap.add_argument("--count", type=int, default=2)
    ap.add_argument("--gap", type=int, default=500)
    a = ap.parse_args()
    a.path = a.path.split(",")
    if a.mode == "blocking":
        blocking(a.port, a.path, a.count, a.gap)
    else:
        asyncio.run(evloop(a.port, a.path, a.count, a.gap))


if __name__ == "__main__":
    sys.exit(main())
