#!/usr/bin/env python3
"""aioclient.py - an asyncio TCP client, for
tests/integration/test_eventloop.c.

    aioclient.py HOST PORT [--send TEXT] [--want N]

asyncio.open_connection, write TEXT (default "ping\\n"), then read until N
bytes (default len(TEXT)) or EOF, all in asyncio's own event loop (epoll).
Prints one line:
  OK <bytes read, repr>
  ERR <exception class> <errno> <ms>
ms counts from just before open_connection (so the interpreter's start-up
is not in it).  Exit status 0 either way; 2 for bad arguments.
"""
import argparse
import asyncio
import sys
import time


async def run(host, port, send, want):
    t0 = time.monotonic_ns()
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(send)
        await writer.drain()
        data = b""
        while len(data) < want:
            chunk = await reader.read(want - len(data))
            if not chunk:
                break
            data += chunk
        writer.close()
        await writer.wait_closed()
        print("OK", repr(data), flush=True)
    except OSError as e:
        ms = (time.monotonic_ns() - t0) // 1000000
        print("ERR", type(e).__name__, e.errno, ms, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--send", default="ping\n")
    ap.add_argument("--want", type=int, default=-1)
    a = ap.parse_args()
    if not (a.host.startswith("127.") or a.host == "::1"):
        print("aioclient: loopback addresses only", file=sys.stderr)
        return 2
    send = a.send.encode()
    asyncio.run(run(a.host, a.port, send, a.want if a.want >= 0 else len(send)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
