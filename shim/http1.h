/* http1.h - where an HTTP/1.x exchange ends, from the bytes alone.
 *
 * A request deadline runs from a request's first byte to its response's
 * last.  Seen from the socket, "the response's last byte" has no sign:
 * a connection resting in a client's keep-alive pool after a finished
 * exchange looks exactly like a server that stopped in the middle of a
 * response.  For HTTP/1.x in clear text the messages carry their own
 * framing (RFC 9112 section 6), so the shim follows it: this parser is
 * fed every byte an outbound connection writes (requests) and reads
 * (responses) and says when every request sent has had its whole
 * response.  Anything it does not understand - TLS, another protocol,
 * a close-delimited body, a tunnel (CONNECT, 101 Switching Protocols),
 * a malformed message - makes it give up for the life of the
 * connection, and the request deadline keeps its plain definition
 * (docs/semantics.md, "When an exchange ends").
 *
 * Plain C: no system calls, no allocation, no locks; 40 bytes of state
 * per connection.  Unit-tested in tests/unit/test_http1.c.
 */
#ifndef DL_HTTP1_H
#define DL_HTTP1_H

#include <stddef.h>
#include <stdint.h>

/* One direction: the requests written, or the responses read. */
struct h1_dir {
	uint64_t n;    /* Content-Length being read, or body/chunk bytes left */
	uint8_t st;    /* where in the message (http1.c: enum h1_state) */
	uint8_t pos;   /* position inside the literal or name being matched */
	uint8_t cand;  /* candidates still matching (method or header name) */
	uint8_t hdr;   /* the header whose value is being read */
	uint8_t fl;    /* framing learnt from the headers (H1F_*) */
	uint8_t pad;
	uint16_t code; /* a response's status code */
};

enum h1_mode {
	H1_SNIFF = 0, /* nothing seen yet */
	H1_ON,        /* HTTP/1.x, followed */
	H1_OFF,       /* not followed: gave up for good */
};

struct h1_ex {
	struct h1_dir req, resp;
	uint8_t mode;    /* enum h1_mode */
	uint8_t pending; /* requests started whose response has not ended */
	uint8_t headq;   /* bit i: the i-th pending request is a HEAD */
	uint8_t answered; /* at least one response ended */
	uint32_t pad;
};

/* h1_feed - n bytes that moved on the connection: written (wrote != 0,
 * the program's requests) or read (its responses), in the order they
 * moved.  p may be NULL when the bytes cannot be seen (then the parser
 * gives up).  Returns 1 when, after these bytes, every request started
 * has its whole response and no request is half-written: the exchange
 * is over; else 0 (also when off). */
int h1_feed(struct h1_ex *x, int wrote, const void *p, size_t n);

/* h1_off - stop following (bytes moved that the parser cannot see). */
static inline void h1_off(struct h1_ex *x)
{
	x->mode = H1_OFF;
}

#endif
