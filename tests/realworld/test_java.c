/* test_java.c - Java 17 under each of the four deadlines, with both of its
 * HTTP clients and no timeout of their own:
 *
 *   urlconn     java.net.HttpURLConnection: blocking sockets (NioSocketImpl
 *               parks in poll())
 *   httpclient  java.net.http.HttpClient: NIO, a selector thread waits in
 *               epoll_wait while another thread connects and writes
 *
 * against loopback servers that never accept (stallsrv backlog: connect),
 * accept and never answer (silent: first byte), or send the headers and
 * then stall mid-body (drip: idle, request).  Each client must fail at its
 * deadline: every expiry logged with the phase, not before the limit and
 * at most rr_late_ms() after it; the client's own elapsed time not below
 * the limit; and the exception Java reports must come from ETIMEDOUT
 * ("Connection timed out").  One exception: HttpClient's connect path
 * drops the socket error's message (a refused connect reads the same,
 * "java.net.ConnectException: null" over a ClosedChannelException, without
 * the shim), so there only the class is checked.
 *
 * Both clients retry an idempotent GET once on a fresh connection after
 * some failures (HttpURLConnection when no byte of the response came,
 * HttpClient after a failed connect): such runs log two expiries, each on
 * time.
 *
 * The sources in tests/realworld/java/ are compiled once per change
 * (rr_java_classes).  Skipped when there is no java/javac (Debian:
 * default-jdk-headless).  The keep-alive pool cases are in test_pools.c.
 */
#include "rw_runtimes.h"

RW_SUITE(java, 120);

#define LIMIT_MS 1000

/* One GET with the api under the phase's deadline against a server that
 * stalls that phase; exc: the exception text the ERROR line must hold;
 * timed_out: it must also say "Connection timed out". */
static void java_deadline(const char *api, const char *phase, const char *exc,
			  int timed_out)
{
	const char *cp = rr_java_classes();
	struct dl_server *s;
	struct dl_result r;
	const char *err;
	char url[64];
	long ms;
	int n;

	dl_require_shim();
	s = rr_stalling_server(phase);
	dl_fmt(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
	dl_run(&r, DL_V("java", "-cp", cp, "DeadlineClient", api, url),
	       DL_V(rr_deadline_env(phase, LIMIT_MS)), 1, 60000);
	err = dl_line(r.out, "ERROR ");
	rw_note("java %s, %s deadline: %.*s", api, phase,
		err ? (int)strcspn(err, "\n") : 0, err ? err : "");
	dl_assert_run(&r, r.exited && r.code == 0 && dl_line(r.out, "DONE"),
		      "the java client did not finish");
	dl_assert_run(&r, err, "%s should fail against a server that stalls "
			       "the %s phase", api, phase);
	n = rr_check_expiries(&r, phase, LIMIT_MS);
	dl_assert_run(&r, n >= 1 && n <= 2,
		      "%d expiries logged, expected 1 (2 with a retry)", n);
	ms = dl_field(err, " ms=");
	dl_assert_run(&r, ms >= LIMIT_MS &&
			  ms <= n * (LIMIT_MS + rr_late_ms()) + 2500,
		      "the client failed after %ld ms (%d expiries of %d ms)",
		      ms, n, LIMIT_MS);
	dl_assert_run(&r, strstr(err, exc), "expected '%s' in the error", exc);
	dl_assert_run(&r, !timed_out || strstr(err, "Connection timed out"),
		      "the error does not come from ETIMEDOUT");
	dl_result_free(&r);
}

Test(java, urlconn_connect_deadline)
{
	java_deadline("urlconn", "connect", "java.net.ConnectException", 1);
}

Test(java, urlconn_first_byte_deadline)
{
	java_deadline("urlconn", "first_byte", "java.net.SocketException", 1);
}

Test(java, urlconn_idle_deadline_mid_body)
{
	java_deadline("urlconn", "idle", "java.net.SocketException", 1);
}

Test(java, urlconn_request_deadline_mid_body)
{
	java_deadline("urlconn", "request", "java.net.SocketException", 1);
}

Test(java, httpclient_connect_deadline)
{
	java_deadline("httpclient", "connect", "java.net.ConnectException", 0);
}

Test(java, httpclient_first_byte_deadline)
{
	java_deadline("httpclient", "first_byte", "java.io.IOException", 1);
}

Test(java, httpclient_idle_deadline_mid_body)
{
	java_deadline("httpclient", "idle", "java.io.IOException", 1);
}

Test(java, httpclient_request_deadline_mid_body)
{
	java_deadline("httpclient", "request", "java.io.IOException", 1);
}

/* The deadline armed by the thread that writes the request cuts the
 * selector thread's epoll_wait already in progress (shim/reaper.c).
 * Before, the expiry came only when the JDK's own 3 s selector timeout
 * returned (elapsed_ms=2999 for a 1 s first-byte deadline).  Checked
 * with the strict DL_SLACK_MS window, unlike the cases above. */
Test(java, httpclient_first_byte_deadline_on_time)
{
	const char *cp = rr_java_classes();
	struct dl_result r;
	struct dl_server *s;
	char url[64];
	const char *l;
	long ms;

	dl_require_shim();
	s = dl_stallsrv("silent", NULL);
	dl_fmt(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
	dl_run(&r, DL_V("java", "-cp", cp, "HttpClientStall", url),
	       DL_V("DEADLINE_FIRST_BYTE_TIMEOUT=1s"), 1, 60000);
	rw_note("java HttpClient: %.*s", (int)strcspn(r.out, "\n"), r.out);
	dl_assert_run(&r, r.exited && r.code == 0 && dl_line(r.out, "ERROR "),
		      "HttpClient should fail against a silent server");
	/* Every connection it made (it retries a GET once) expired at its
	 * deadline, not when the selector's own timeout came round. */
	l = r.err;
	for (int n = 0; (l = strstr(l, "event=deadline ")); l++, n++) {
		const char *e = strstr(l, "elapsed_ms=");

		dl_assert_run(&r, e, "a deadline line without elapsed_ms");
		ms = atol(e + 11);
		dl_assert_run(&r, strstr(l, "phase=first_byte") &&
				  dl_in_window(ms, 1000),
			      "expiry %d after %ld ms, expected [1000, %ld] ms",
			      n + 1, ms, 1000 + dl_slack());
	}
	dl_assert_run(&r, strstr(r.err, "event=deadline "),
		      "no deadline expired");
	dl_result_free(&r);
}
