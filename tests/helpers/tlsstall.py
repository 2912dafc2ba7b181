#!/usr/bin/env python3
"""tlsstall.py - a TLS server that stalls on purpose, for
tests/integration/test_eventloop.c.

    tlsstall.py MODE --cert CERT --key KEY [--delay MS] [--lifetime SEC]

Binds 127.0.0.1 on a port the kernel picks, prints "PORT <n>", and serves
one connection at a time until killed or --lifetime seconds have passed.
The TLS engine runs on memory BIOs, so the server decides exactly which
handshake bytes ever reach the wire.

Modes:
  hello  read the ClientHello and never answer anything
  hs12   TLS 1.2 at most: send the first server flight (ServerHello ..
         ServerHelloDone), read the client's second flight, and never send
         the final ChangeCipherSpec/Finished: the client stalls mid-handshake
         after a second write-after-read turn
  req    complete the handshake, read the HTTP request, never answer it
  ok     complete the handshake, answer "hello\\n" over HTTP/1.1, close
--delay MS holds the first server flight back for MS milliseconds.

Lines on stdout (t = CLOCK_MONOTONIC in ns, the clock the test uses):
  PORT <n>
  ACCEPT <t>
  RX <bytes> <t>         each chunk received from the client
  TX <bytes> <t>         each chunk sent
  STALL <what> <t>       from here on nothing more is sent
  END rst|fin|done <t>   how the connection ended (reset, client's FIN, or
                         we closed after answering)
"""
import argparse
import signal
import socket
import ssl
import sys
import time

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n"
            b"Content-Type: text/plain\r\nConnection: close\r\n\r\nhello\n")


def say(*words):
    print(*words, flush=True)


def now():
    return time.monotonic_ns()


def make_context(mode, cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if mode == "hs12":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def send(conn, data):
    if data:
        conn.sendall(data)
        say("TX", len(data), now())


def serve(conn, mode, ctx, delay_ms):
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_side=True)
    handshaken = False
    flights = 0
    stalled = mode == "hello"
    request = b""

    say("ACCEPT", now())
    if stalled:
        say("STALL before-server-hello", now())
    while True:
        try:
            data = conn.recv(65536)
        except ConnectionResetError:
            say("END rst", now())
            return
        if not data:
            say("END fin", now())
            return
        say("RX", len(data), now())
        if stalled:
            continue
        inc.write(data)
        if not handshaken:
            try:
                tls.do_handshake()
                handshaken = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as e:
                say("TLSERR", str(e).replace(" ", "_"))
                return
            pending = out.read()
            if mode == "hs12" and flights >= 1 and pending:
                stalled = True
                say("STALL before-server-finished", now())
                continue
            if pending:
                if flights == 0 and delay_ms:
                    time.sleep(delay_ms / 1000)
                send(conn, pending)
                flights += 1
            if not handshaken:
                continue
        try:
            while True:
                request += tls.read(65536)
        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
            pass
        if b"\r\n\r\n" not in request:
            continue
        if mode == "req":
            stalled = True
            say("STALL after-request", now())
            continue
        tls.write(RESPONSE)
        try:
            tls.unwrap()
        except ssl.SSLError:
            pass
        send(conn, out.read())
        say("END done", now())
        return


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["hello", "hs12", "req", "ok"])
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--delay", type=int, default=0)
    ap.add_argument("--lifetime", type=int, default=60)
    a = ap.parse_args()

    signal.alarm(a.lifetime)  # default action: the process ends
    ctx = make_context(a.mode, a.cert, a.key)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    say("PORT", ls.getsockname()[1])
    while True:
        conn, _ = ls.accept()
        try:
            serve(conn, a.mode, ctx, a.delay)
        except OSError as e:
            say("END err", now(), e.errno)
        finally:
            conn.close()


if __name__ == "__main__":
    sys.exit(main())
