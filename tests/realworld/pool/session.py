"""session.py - GETs on one python `requests` Session, for test_pools.c.

    python3 session.py URL [COUNT [GAP_MS]]

COUNT GETs (default 1) on one requests.Session (urllib3's pool keeps the
connection between them), GAP_MS (default 0) between the end of one and the
start of the next.  No timeout of the client's own.  One line per GET:

    STATUS <code> bytes=<body length> ms=<elapsed>
    ERROR <exception class>: <message> [errno=<n>] ms=<elapsed>

then "DONE"; exit 0 either way.  Exit 3 with "NOREQUESTS" when the
requests module is missing.
"""
import sys
import time

try:
    import requests
except ImportError:
    print("NOREQUESTS")
    sys.exit(3)


def innermost_errno(e):
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if getattr(e, "errno", None):
            return e.errno
        nxt = e.__cause__ or e.__context__
        if nxt is None and e.args and isinstance(e.args[-1], BaseException):
            nxt = e.args[-1]
        if nxt is None and getattr(e, "reason", None) is not None:
            nxt = e.reason
        e = nxt
    return None


def main():
    url = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    gap = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    s = requests.Session()
    for i in range(count):
        if i:
            time.sleep(gap / 1000.0)
        t0 = time.monotonic()
        try:
            r = s.get(url)
            print("STATUS %d bytes=%d ms=%d" %
                  (r.status_code, len(r.content),
                   (time.monotonic() - t0) * 1000), flush=True)
        except Exception as e:  # report whatever the stack raised
            err = innermost_errno(e)
            msg = str(e).replace("\n", " ")
            print("ERROR %s: %s%s ms=%d" %
                  (type(e).__name__, msg,
                   " errno=%d" % err if err else "",
                   (time.monotonic() - t0) * 1000), flush=True)
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
