#!/usr/bin/env python3
"""poolsrv - an HTTP/1.1 keep-alive server for the connection-pool checks
(test_pools.c).  Standard library only; loopback only.

    poolsrv.py length|chunked|stall [--lifetime SEC]

Binds 127.0.0.1 on a port the kernel picks, prints "PORT <n>", then one
line per event, flushed:

    ACCEPT <conn>             a connection was accepted (numbered from 1)
    REQUEST <conn> <n>        the n-th request on that connection was read
    END <conn> <how>          it ended: fin (the client closed), rst
                              (ECONNRESET), err

Modes (every response keeps the connection open for the next request):
    length    200, Content-Length, body "hello pool\\n"
    chunked   200, Transfer-Encoding: chunked, the same body in two chunks
    stall     200 with Content-Length: 100, then 10 body bytes, then
              nothing more: the response stalls mid-body
"""
import socket
import sys
import threading
import time

BODY = b"hello pool\n"
out_lock = threading.Lock()


def say(line):
    with out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def response(mode):
    if mode == "length":
        return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                b"Content-Length: %d\r\n\r\n" % len(BODY)) + BODY
    if mode == "chunked":
        a, b = BODY[:5], BODY[5:]
        return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n" +
                b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(a), a, len(b), b))
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 100\r\n\r\n" + b"x" * 10)


def serve(conn, cid, mode):
    buf = b""
    n = 0
    how = "fin"
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    raise EOFError
                buf += data
            _, buf = buf.split(b"\r\n\r\n", 1)
            n += 1
            say("REQUEST %d %d" % (cid, n))
            conn.sendall(response(mode))
    except EOFError:
        how = "fin"
    except ConnectionResetError:
        how = "rst"
    except OSError:
        how = "err"
    say("END %d %s" % (cid, how))
    conn.close()


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode not in ("length", "chunked", "stall"):
        sys.exit("usage: poolsrv.py length|chunked|stall [--lifetime SEC]")
    lifetime = 60.0
    if len(sys.argv) > 3 and sys.argv[2] == "--lifetime":
        lifetime = float(sys.argv[3])
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)
    say("PORT %d" % lsock.getsockname()[1])
    end = time.monotonic() + lifetime
    cid = 0
    while time.monotonic() < end:
        lsock.settimeout(max(0.1, end - time.monotonic()))
        try:
            conn, _ = lsock.accept()
        except socket.timeout:
            break
        conn.settimeout(None)
        cid += 1
        say("ACCEPT %d" % cid)
        threading.Thread(target=serve, args=(conn, cid, mode),
                         daemon=True).start()


if __name__ == "__main__":
    main()
