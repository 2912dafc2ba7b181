/* test_java.c - Java 17's java.net.http.HttpClient: the deadline armed by
 * the thread that writes the request cuts the selector thread's
 * epoll_wait already in progress (shim/reaper.c).  Before, the expiry came
 * only when the JDK's own 3 s selector timeout returned (elapsed_ms=2999
 * for a 1 s first-byte deadline).
 *
 * Skipped when there is no java (Debian: default-jdk-headless).
 */
#include "rw.h"

RW_SUITE(java, 120);

Test(java, httpclient_first_byte_deadline_on_time)
{
	struct dl_result r;
	struct dl_server *s;
	char url[64];
	const char *l;
	long ms;

	if (!rw_have("java"))
		cr_skip_test("java is not installed (default-jdk-headless)");
	dl_require_shim();
	s = dl_stallsrv("silent", NULL);
	dl_fmt(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
	dl_run(&r, DL_V("java", rw_src("tests/realworld/java/HttpClientStall.java"),
			url),
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
