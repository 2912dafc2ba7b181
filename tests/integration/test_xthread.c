/* test_xthread.c - a deadline armed in one thread cuts a wait another
 * thread is already in (issue 13, part 1).
 *
 * build/helpers/xthread: the main thread waits with no timeout in
 * epoll_wait / epoll_pwait2 / poll / select on a socket to a server that
 * accepts and never answers; 100 ms later a second thread writes the
 * request, which starts the first-byte deadline.  The wait
 * must end at the deadline with the socket torn down (HUP|ERR; readable
 * for select), its read failing with ETIMEDOUT, one log line.  Before the
 * reaper (shim/reaper.c) such a wait never ended.
 *
 * Invisible otherwise: a wait that does not include the socket lasts its
 * own timeout; with no deadline the waits time out as natively.
 * Windows: [limit, limit + DL_SLACK_MS (50 ms)]; precision is measured
 * by make bench, not asserted here.
 */
#include "harness.h"

TestSuite(xthread, .init = dl_setup, .fini = dl_teardown, .timeout = 30);

/* The number after key= on the line starting with prefix; -1 if none. */
static long x_num(const struct dl_result *r, const char *prefix,
		  const char *key)
{
	const char *l = dl_line(r->out, prefix), *k;
	char pat[32];

	if (!l)
		return -1;
	dl_fmt(pat, sizeof(pat), " %s=", key);
	k = strstr(l, pat);
	if (!k || (strchr(l, '\n') && k > strchr(l, '\n')))
		return -1;
	return strtol(k + strlen(pat), NULL, 0);
}

static int x_deadlines(const struct dl_result *r)
{
	int n = 0;

	for (const char *p = r->err; (p = strstr(p, "event=deadline ")); p++)
		n++;
	return n;
}

static void cut_in_progress(const char *mode, const char *env, long limit)
{
	struct dl_result r;
	struct dl_server *s;
	long ms;

	dl_require_shim();
	s = dl_stallsrv("silent", NULL);
	dl_run(&r, DL_V(dl_helper("xthread"), mode, "127.0.0.1", s->port_s),
	       DL_V(env), 1, 10000);
	dl_assert_ok(&r, mode);
	dl_assert_run(&r, x_num(&r, "WAIT ", "r") == 1,
		      "%s: the wait did not end with the socket ready", mode);
	ms = x_num(&r, "WAIT ", "ms");
	dl_assert_run(&r, dl_rq_within(&r, ms, limit, dl_slack()),
		      "%s: the wait ended %ld ms after the write, expected "
		      "[%ld, %ld]", mode, ms, limit, limit + dl_slack());
	if (strcmp(mode, "select") != 0)
		dl_assert_run(&r, (x_num(&r, "WAIT ", "revents") & 0x18) == 0x18,
			      "%s: the torn-down socket should report "
			      "HUP|ERR", mode);
	dl_assert_run(&r, dl_line(r.out, "READ r=-1 errno=ETIMEDOUT"),
		      "%s: the read after the wait should fail with "
		      "ETIMEDOUT", mode);
	dl_assert_run(&r, x_deadlines(&r) == 1, "%s: expected one deadline "
		      "line, saw %d", mode, x_deadlines(&r));
	dl_result_free(&r);
}

#define FB "DEADLINE_FIRST_BYTE_TIMEOUT=300ms"

Test(xthread, epoll_wait_forever_cut_at_first_byte) { cut_in_progress("epoll", FB, 300); }
Test(xthread, epoll_pwait2_forever_cut_at_first_byte) { cut_in_progress("pwait2", FB, 300); }
Test(xthread, poll_forever_cut_at_first_byte) { cut_in_progress("poll", FB, 300); }
Test(xthread, select_forever_cut_at_first_byte) { cut_in_progress("select", FB, 300); }

/* The socket is not in the wait: the wait lasts its own 800 ms and
 * returns 0, while the writer's own read fails at the deadline. */
Test(xthread, other_waits_undisturbed)
{
	struct dl_result r;
	struct dl_server *s;

	dl_require_shim();
	s = dl_stallsrv("silent", NULL);
	dl_run(&r, DL_V(dl_helper("xthread"), "quiet", "127.0.0.1", s->port_s),
	       DL_V(FB), 1, 10000);
	dl_assert_ok(&r, "xthread quiet");
	dl_assert_run(&r, dl_line(r.out, "READ r=-1 errno=ETIMEDOUT"),
		      "the writer's read should fail at its deadline");
	dl_assert_run(&r, x_num(&r, "WAIT ", "r") == 0,
		      "a wait on a pipe ended early");
	/* 800 ms from the start, the write came ~100 ms in. */
	dl_assert_run(&r, x_num(&r, "WAIT ", "ms") >= 690,
		      "the pipe wait ended %ld ms after the write, before "
		      "its own 800 ms", x_num(&r, "WAIT ", "ms"));
	dl_result_free(&r);
}

/* No deadline: each wait times out after its own 400 ms, as natively,
 * and the socket is untouched (the read finds nothing: EAGAIN). */
Test(xthread, no_deadline_waits_as_natively)
{
	static const char *modes[] = { "epoll", "poll", "select" };

	dl_require_shim();
	for (size_t i = 0; i < sizeof(modes) / sizeof(*modes); i++) {
		struct dl_result r;
		struct dl_server *s = dl_stallsrv("silent", NULL);

		dl_run(&r, DL_V(dl_helper("xthread"), modes[i], "127.0.0.1",
				s->port_s, "--wait", "400"),
		       NULL, 1, 10000);
		dl_assert_ok(&r, modes[i]);
		dl_assert_run(&r, x_num(&r, "WAIT ", "r") == 0,
			      "%s: the wait should time out", modes[i]);
		dl_assert_run(&r, dl_line(r.out, "READ r=-1 errno=EAGAIN"),
			      "%s: the socket should be untouched", modes[i]);
		dl_assert_run(&r, x_deadlines(&r) == 0, "%s: a deadline "
			      "fired", modes[i]);
		dl_result_free(&r);
	}
}
