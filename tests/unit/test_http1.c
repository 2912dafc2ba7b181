/* Unit tests: where an HTTP/1.x exchange ends (shim/http1.c).
 *
 * Every exchange is fed three ways: each message whole, byte by byte,
 * and in pieces of 7; the answer after each feed must not depend on how
 * the kernel split the bytes. */
#include <criterion/criterion.h>
#include <string.h>

#include "http1.h"

/* One step of a conversation: who moved which bytes, and whether the
 * exchange must be over right after them. */
struct move {
	int wrote;
	const char *bytes;
	int over;
};

#define END { -1, 0, 0 }

static int feed_split(struct h1_ex *x, int wrote, const char *s, size_t n,
		      size_t piece)
{
	int r = 0;

	if (!piece)
		return h1_feed(x, wrote, s, n);
	for (size_t i = 0; i < n; i += piece)
		r = h1_feed(x, wrote, s + i, n - i < piece ? n - i : piece);
	return r;
}

static void play(const struct move *m, int mode_after)
{
	static const size_t pieces[] = { 0, 1, 7 };

	for (size_t k = 0; k < sizeof(pieces) / sizeof(*pieces); k++) {
		struct h1_ex x;

		memset(&x, 0, sizeof(x));
		for (int i = 0; m[i].wrote >= 0; i++) {
			int r = feed_split(&x, m[i].wrote, m[i].bytes,
					   strlen(m[i].bytes), pieces[k]);

			cr_assert_eq(r, m[i].over,
				     "step %d (%s, pieces of %zu): over=%d, "
				     "want %d", i, m[i].wrote ? "write" : "read",
				     pieces[k], r, m[i].over);
		}
		cr_assert_eq(x.mode, mode_after, "pieces of %zu: mode %d, "
			     "want %d", pieces[k], x.mode, mode_after);
	}
}

Test(http1, content_length_keep_alive_two_requests)
{
	struct move m[] = {
		{ 1, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 0 },
		{ 0, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 0 },
		{ 0, "hell", 0 },
		{ 0, "o", 1 },
		{ 1, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n", 0 },
		{ 0, "HTTP/1.1 200 OK\r\ncontent-LENGTH:  3 \r\n\r\nabc", 1 },
		END,
	};
	play(m, H1_ON);
}

Test(http1, chunked_with_extensions_and_trailers)
{
	struct move m[] = {
		{ 1, "POST /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		     "3\r\nabc\r\n0\r\n\r\n", 0 },
		{ 0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n"
		     "\r\n", 0 },
		{ 0, "A;name=val\r\n0123456789\r\n", 0 },
		{ 0, "1\r\nx\r\n", 0 },
		{ 0, "0\r\nX-Trailer: 1\r\n", 0 },
		{ 0, "\r\n", 1 },
		END,
	};
	play(m, H1_ON);
}

Test(http1, request_body_by_length)
{
	struct move m[] = {
		{ 1, "PUT /x HTTP/1.1\r\nContent-Length: 4\r\n\r\nab", 0 },
		/* An early answer: the request is still being written. */
		{ 0, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0 },
		{ 1, "cd", 1 },
		END,
	};
	play(m, H1_ON);
}

Test(http1, bodiless_responses)
{
	struct move m[] = {
		{ 1, "HEAD / HTTP/1.1\r\n\r\n", 0 },
		{ 0, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", 1 },
		{ 1, "GET / HTTP/1.1\r\n\r\n", 0 },
		{ 0, "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
		  1 },
		{ 1, "DELETE /d HTTP/1.1\r\n\r\n", 0 },
		{ 0, "HTTP/1.1 204 No Content\r\n\r\n", 1 },
		END,
	};
	play(m, H1_ON);
}

Test(http1, continue_is_interim)
{
	struct move m[] = {
		{ 1, "POST / HTTP/1.1\r\nExpect: 100-continue\r\n"
		     "Content-Length: 2\r\n\r\n", 0 },
		{ 0, "HTTP/1.1 100 Continue\r\n\r\n", 0 },
		{ 1, "hi", 0 },
		{ 0, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", 1 },
		END,
	};
	play(m, H1_ON);
}

Test(http1, pipelined_head_then_get)
{
	struct move m[] = {
		{ 1, "HEAD /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n", 0 },
		{ 0, "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", 0 },
		{ 0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\no", 0 },
		{ 0, "k", 1 },
		END,
	};
	play(m, H1_ON);
}

Test(http1, mid_body_stall_is_not_over)
{
	struct move m[] = {
		{ 1, "GET /big HTTP/1.1\r\n\r\n", 0 },
		{ 0, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", 0 },
		{ 0, "only part of it", 0 },
		END,
	};
	play(m, H1_ON);
}

Test(http1, what_is_not_followed)
{
	/* Close-delimited response body. */
	struct move close_delimited[] = {
		{ 1, "GET / HTTP/1.0\r\n\r\n", 0 },
		{ 0, "HTTP/1.0 200 OK\r\n\r\nbody", 0 },
		END,
	};
	/* TLS: the first byte is a handshake record. */
	struct move tls[] = {
		{ 1, "\x16\x03\x01\x02", 0 },
		{ 0, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0 },
		END,
	};
	/* The server speaks first (SMTP, FTP, a database). */
	struct move server_first[] = {
		{ 0, "220 ready\r\n", 0 },
		{ 1, "HELO x\r\n", 0 },
		END,
	};
	/* A tunnel, and a protocol switch. */
	struct move tunnel[] = {
		{ 1, "CONNECT h:443 HTTP/1.1\r\n\r\n", 0 },
		{ 0, "HTTP/1.1 200 OK\r\n\r\n", 0 },
		END,
	};
	struct move upgrade[] = {
		{ 1, "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", 0 },
		{ 0, "HTTP/1.1 101 Switching Protocols\r\n\r\n", 0 },
		{ 0, "\x81\x05hello", 0 },
		END,
	};
	/* Malformed: two lengths, a bad length, a transfer coding that is
	 * not chunked in a request, folded headers, an answer to nothing. */
	struct move two_lengths[] = {
		{ 1, "GET / HTTP/1.1\r\n\r\n", 0 },
		{ 0, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
		     "Content-Length: 1\r\n\r\nx", 0 },
		END,
	};
	struct move bad_length[] = {
		{ 1, "GET / HTTP/1.1\r\n\r\n", 0 },
		{ 0, "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\nx", 0 },
		END,
	};
	struct move te_request[] = {
		{ 1, "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 0 },
		END,
	};
	struct move folded[] = {
		{ 1, "GET / HTTP/1.1\r\n\r\n", 0 },
		{ 0, "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n"
		     "\r\n", 0 },
		END,
	};
	struct move unsolicited[] = {
		{ 1, "GET / HTTP/1.1\r\n\r\n", 0 },
		{ 0, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1 },
		{ 0, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0 },
		END,
	};
	struct move lower_method[] = {
		{ 1, "get / HTTP/1.1\r\n\r\n", 0 },
		END,
	};
	struct move http2_preface[] = {
		{ 1, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0 },
		END,
	};

	play(close_delimited, H1_OFF);
	play(tls, H1_OFF);
	play(server_first, H1_OFF);
	play(tunnel, H1_OFF);
	play(upgrade, H1_OFF);
	play(two_lengths, H1_OFF);
	play(bad_length, H1_OFF);
	play(te_request, H1_OFF);
	play(folded, H1_OFF);
	play(unsolicited, H1_OFF);
	play(lower_method, H1_OFF);
	play(http2_preface, H1_OFF);
}

Test(http1, unseen_bytes_stop_following)
{
	struct h1_ex x;

	memset(&x, 0, sizeof(x));
	cr_assert_eq(h1_feed(&x, 1, "GET / HTTP/1.1\r\n\r\n", 18), 0);
	cr_assert_eq(x.mode, H1_ON);
	cr_assert_eq(h1_feed(&x, 0, NULL, 10), 0);
	cr_assert_eq(x.mode, H1_OFF);
	cr_assert_eq(h1_feed(&x, 0, "HTTP/1.1 200 OK\r\n\r\n", 19), 0);
}

Test(http1, large_bodies_are_counted_not_scanned)
{
	static char body[1 << 16];
	struct h1_ex x;
	const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 5000000000\r\n\r\n";
	uint64_t left = 5000000000ull;

	memset(&x, 0, sizeof(x));
	memset(body, 'z', sizeof(body));
	h1_feed(&x, 1, "GET / HTTP/1.1\r\n\r\n", 18);
	cr_assert_eq(h1_feed(&x, 0, h, strlen(h)), 0);
	while (left > sizeof(body)) {
		cr_assert_eq(h1_feed(&x, 0, body, sizeof(body)), 0);
		left -= sizeof(body);
	}
	cr_assert_eq(h1_feed(&x, 0, body, (size_t)left), 1);
	cr_assert_eq(x.mode, H1_ON);
}

Test(http1, pipeline_depth_bounded)
{
	struct h1_ex x;

	memset(&x, 0, sizeof(x));
	for (int i = 0; i < 8; i++)
		h1_feed(&x, 1, "GET / HTTP/1.1\r\n\r\n", 18);
	cr_assert_eq(x.mode, H1_ON);
	h1_feed(&x, 1, "GET / HTTP/1.1\r\n\r\n", 18);
	cr_assert_eq(x.mode, H1_OFF, "a ninth request in flight is not "
		     "followed");
}
