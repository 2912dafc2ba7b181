/* test_exchange.c - a finished HTTP/1 exchange resting in a keep-alive
 * pool is not a stalled request (docs/semantics.md, "When an exchange
 * ends").
 *
 * tests/helpers/poolclient.py makes two requests on one connection,
 * 500 ms apart, under a 300 ms request deadline, with a blocking
 * http.client connection (left alone between requests) and with asyncio
 * (the socket stays in the event loop's epoll set between requests).
 * Against stallsrv http, whose answers are framed by Content-Length or
 * chunked, the second request must reuse the connection (the server
 * accepts once) and nothing may be logged.  Against a server that sends
 * headers and half a body and stops, both clients must fail with
 * ETIMEDOUT at the request deadline, and so must a second request that
 * stalls after a first one that finished.
 */
#include "harness.h"

TestSuite(exchange, .init = dl_setup, .fini = dl_teardown, .timeout = 30);

#define LIMIT_MS 300

static long ex_slack(void)
{
	return dl_slack() > 150 ? dl_slack() : 150;
}

/* poolclient.py MODE PORT PATHS under a 300 ms request deadline. */
static void pool_run(struct dl_result *r, const char *mode,
		     struct dl_server *s, const char *paths)
{
	dl_require_shim();
	dl_run(r, DL_V("python3", dl_src("tests/helpers/poolclient.py"), mode,
		       s->port_s, paths, "--count", "2", "--gap", "500"),
	       DL_V("DEADLINE_REQUEST_TIMEOUT=300ms"), 1, 20000);
	dl_assert_ok(r, "poolclient.py");
}

static void rests_in_pool(const char *mode, const char *path, long bytes)
{
	struct dl_server *s = dl_stallsrv("http", "--report", NULL);
	char want0[64], want1[64];
	struct dl_result r;
	const char *out;

	pool_run(&r, mode, s, path);
	dl_fmt(want0, sizeof(want0), "RESP 0 200 %ld ", bytes);
	dl_fmt(want1, sizeof(want1), "RESP 1 200 %ld ", bytes);
	dl_assert_run(&r, dl_line(r.out, want0) && dl_line(r.out, want1),
		      "%s %s: both requests should succeed", mode, path);
	dl_assert_run(&r, !strstr(r.err, "event=deadline"),
		      "%s %s: a finished exchange resting in the pool was "
		      "treated as a stalled request", mode, path);
	out = dl_server_output(s, 200);
	cr_assert_eq(dl_count_lines(out, "ACCEPT "), 1,
		     "%s %s: the second request should reuse the connection; "
		     "server saw:\n%s", mode, path, out);
	cr_assert(!strstr(out, "END rst"), "%s %s: the pooled connection was "
		  "reset; server saw:\n%s", mode, path, out);
	dl_result_free(&r);
}

Test(exchange, blocking_pool_content_length)
{
	rests_in_pool("blocking", "/hello", 6);
}

Test(exchange, blocking_pool_chunked)
{
	rests_in_pool("blocking", "/chunked/300", 300);
}

Test(exchange, blocking_pool_large_body)
{
	rests_in_pool("blocking", "/bytes/200000", 200000);
}

Test(exchange, asyncio_pool_content_length)
{
	rests_in_pool("asyncio", "/hello", 6);
}

Test(exchange, asyncio_pool_chunked)
{
	rests_in_pool("asyncio", "/chunked/300", 300);
}

/* Request i of paths stalls mid-body: ERR i TimeoutError 110 at the
 * deadline, one event=deadline phase=request. */
static void stall_cut(const char *mode, const char *paths, int i)
{
	struct dl_server *s = dl_stallsrv("http", NULL);
	struct dl_result r;
	char want[32], cls[64] = "";
	const char *l;
	long ms = -1;
	int e = 0, at = -1;

	pool_run(&r, mode, s, paths);
	dl_fmt(want, sizeof(want), "ERR %d ", i);
	l = dl_line(r.out, want);
	dl_assert_run(&r, l && sscanf(l, "ERR %d %63s %d %ld", &at, cls, &e,
				      &ms) == 4,
		      "%s %s: request %d should fail", mode, paths, i);
	dl_assert_run(&r, !strcmp(cls, "TimeoutError") && e == ETIMEDOUT,
		      "%s %s: expected TimeoutError with errno 110", mode,
		      paths);
	dl_assert_run(&r, ms >= LIMIT_MS - 5 && ms <= LIMIT_MS + ex_slack(),
		      "%s %s: failed after %ld ms, outside [%d, %ld]", mode,
		      paths, ms, LIMIT_MS - 5, LIMIT_MS + ex_slack());
	dl_assert_run(&r, dl_count_lines(r.err, "event=deadline") == 1 &&
				  strstr(r.err, "phase=request limit_ms=300 "),
		      "%s %s: want one request deadline line", mode, paths);
	dl_result_free(&r);
}

Test(exchange, blocking_mid_body_stall_is_cut)
{
	stall_cut("blocking", "/stall/100", 0);
}

Test(exchange, asyncio_mid_body_stall_is_cut)
{
	stall_cut("asyncio", "/stall/100", 0);
}

Test(exchange, blocking_stall_after_a_finished_exchange_is_cut)
{
	stall_cut("blocking", "/hello,/stall/100", 1);
}

Test(exchange, asyncio_stall_after_a_finished_exchange_is_cut)
{
	stall_cut("asyncio", "/chunked/50,/stall/100", 1);
}
