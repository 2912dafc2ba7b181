/* test_core.c - the core issue's must-hold list, end to end.
 *
 * Each test starts its own helper servers on kernel-picked loopback ports
 * and runs clients with and without LD_PRELOAD=libdeadline.so.  Deadlines
 * are a few hundred ms and must fire within [limit, limit + DL_SLACK_MS];
 * the clients measure from just before the call that starts a deadline.
 */
#include "harness.h"

TestSuite(core, .init = dl_setup, .fini = dl_teardown, .timeout = 30);

#define LO "127.0.0.1"

/* Deadlines that never fire in these tests but make the shim track and
 * wait on every socket. */
static const char *const generous[] = {
	"DEADLINE_CONNECT_TIMEOUT=10s", "DEADLINE_FIRST_BYTE_TIMEOUT=10s",
	"DEADLINE_IDLE_TIMEOUT=10s", "DEADLINE_REQUEST_TIMEOUT=20s", NULL,
};

static const char *slack_s(void)
{
	static char buf[16];

	dl_fmt(buf, sizeof(buf), "%ld", dl_slack());
	return buf;
}

/* The "ERR <ENAME> <ms> ..." line of a dlclient rw run, checked to be an
 * ETIMEDOUT from op; returns the line. */
static const char *timed_out_line(const struct dl_result *r, const char *op)
{
	const char *line = dl_line(r->out, "ERR ");
	char want[32];

	dl_assert_run(r, line && !strncmp(line, "ERR ETIMEDOUT ", 14),
		      "expected the call to fail with ETIMEDOUT");
	dl_fmt(want, sizeof(want), "op=%s ", op);
	dl_assert_run(r, strstr(line, want) != NULL,
		      "expected the timeout in %s()", op);
	dl_assert_run(r, !dl_sanitizer_report(r), "sanitizer report");
	return line;
}

/* ================================================================== */
/* 1. Each deadline fires on time at the phase where the server stalls  */
/* ================================================================== */

Test(core, deadline_connect)
{
	struct dl_result r;
	struct dl_server *s;

	dl_require_shim();
	s = dl_stallsrv("backlog", NULL);
	dl_client(&r, 1, 5000, DL_V("DEADLINE_CONNECT_TIMEOUT=300ms"),
	       "rw", LO, s->port_s, "--send", "hi", "--expect", "ETIMEDOUT",
	       NULL);
	const char *line = timed_out_line(&r, "connect");
	dl_assert_run(&r, dl_rq_within(&r, dl_err_ms(line), 300, dl_slack()),
		      "connect deadline 300ms fired outside [300,%ld]",
		      300 + dl_slack());
}

/* The way curl connects: O_NONBLOCK, poll(POLLOUT), SO_ERROR. */
Test(core, deadline_connect_nonblocking)
{
	struct dl_result r;
	struct dl_server *s;

	dl_require_shim();
	s = dl_stallsrv("backlog", NULL);
	dl_client(&r, 1, 5000, DL_V("DEADLINE_CONNECT_TIMEOUT=300ms"),
	       "rw", LO, s->port_s, "--nonblock", "--expect", "ETIMEDOUT",
	       NULL);
	const char *line = timed_out_line(&r, "connect");
	dl_assert_run(&r, dl_rq_within(&r, dl_err_ms(line), 300, dl_slack()),
		      "non-blocking connect: SO_ERROR ETIMEDOUT outside "
		      "[300,%ld]", 300 + dl_slack());
}

Test(core, deadline_request)
{
	struct dl_result r;
	struct dl_server *s;

	dl_require_shim();
	s = dl_stallsrv("silent", NULL);
	dl_client(&r, 1, 5000, DL_V("DEADLINE_REQUEST_TIMEOUT=400ms"),
	       "rw", LO, s->port_s, "--send", "hi", "--recv", "10",
	       "--expect", "ETIMEDOUT", NULL);
	const char *line = timed_out_line(&r, "recv");
	dl_assert_run(&r, dl_rq_within(&r, dl_err_ms(line), 400, dl_slack()),
		      "request deadline 400ms (from connect) fired outside "
		      "[400,%ld]", 400 + dl_slack());
}

/* The same over IPv6 loopback. */
Test(core, deadline_request_ipv6)
{
	struct dl_result r;
	struct dl_server *s;

	dl_require_shim();
	s = dl_stallsrv("silent", "--addr", "::1", NULL);
	dl_client(&r, 1, 5000, DL_V("DEADLINE_REQUEST_TIMEOUT=400ms"),
	       "rw", "::1", s->port_s, "--send", "hi", "--recv", "10",
	       "--expect", "ETIMEDOUT", NULL);
	const char *line = timed_out_line(&r, "recv");
	dl_assert_run(&r, dl_rq_within(&r, dl_err_ms(line), 400, dl_slack()),
		      "request deadline 400ms over ::1 fired outside [400,%ld]",
		      400 + dl_slack());
}

Test(core, deadline_first_byte)
{
	struct dl_result r;
	struct dl_server *s;

	dl_require_shim();
	s = dl_stallsrv("delay", "--ms", "3000", NULL);
	dl_client(&r, 1, 5000, DL_V("DEADLINE_FIRST_BYTE_TIMEOUT=500ms"),
	       "rw", LO, s->port_s, "--send",
	       "GET / HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n", "--expect",
	       "ETIMEDOUT", NULL);
	const char *line = timed_out_line(&r, "recv");
	dl_assert_run(&r, dl_rq_within(&r, dl_field(line, "since_send="),
				       500, dl_slack()),
		      "first_byte deadline 500ms (from the last write) fired "
		      "outside [500,%ld]", 500 + dl_slack());
	dl_assert_run(&r, dl_field(line, "got=") == 0,
		      "no response byte was sent, yet some were read");
}

/* Idle must not fire while a byte arrives every 100 ms; the request
 * deadline still ends the dribble. */
Test(core, deadline_idle_vs_request_on_drip)
{
	struct dl_result r;
	struct dl_server *s;

	dl_require_shim();
	s = dl_stallsrv("drip", "--ms", "100", "--count", "40", NULL);
	dl_client(&r, 1, 5000, DL_V("DEADLINE_IDLE_TIMEOUT=500ms",
				 "DEADLINE_REQUEST_TIMEOUT=700ms"),
	       "rw", LO, s->port_s, "--send",
	       "GET / HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n", "--expect",
	       "ETIMEDOUT", NULL);
	const char *line = timed_out_line(&r, "recv");
	long ms = dl_err_ms(line);

	dl_assert_run(&r, ms >= 700,
		      "something fired before the 700ms request deadline "
		      "(idle 500ms must not fire while bytes keep coming)");
	dl_assert_run(&r, dl_rq_within(&r, ms, 700, dl_slack()),
		      "request deadline 700ms fired outside [700,%ld]",
		      700 + dl_slack());
	/* 58 header bytes, then a body byte every 100 ms: by 700 ms at
	 * least 5 must have arrived, i.e. reads went on past 500 ms. */
	dl_assert_run(&r, dl_field(line, "got=") >= 58 + 5,
		      "too few dripped bytes were delivered");
}

/* Idle fires when nothing moves: headers, then a 2 s silence. */
Test(core, deadline_idle_fires_on_silence)
{
	struct dl_result r;
	struct dl_server *s;

	dl_require_shim();
	s = dl_stallsrv("drip", "--ms", "2000", "--count", "10", NULL);
	dl_client(&r, 1, 5000, DL_V("DEADLINE_IDLE_TIMEOUT=400ms"),
	       "rw", LO, s->port_s, "--send",
	       "GET / HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n", "--expect",
	       "ETIMEDOUT", NULL);
	const char *line = timed_out_line(&r, "recv");

	dl_assert_run(&r, dl_field(line, "got=") == 58,
		      "expected exactly the 58 header bytes before the stall");
	/* The idle clock starts when the headers moved: between the start
	 * of the read that returned them (prev_ms) and the start of the read
	 * that then waited (call_ms). */
	dl_assert_run(&r, dl_field(line, "prev_ms=") >= 400 &&
		      dl_field(line, "call_ms=") <= 400 + dl_slack(),
		      "idle deadline 400ms fired outside [400,%ld]",
		      400 + dl_slack());
}

/* A byte every 100 ms for 1 s, with idle 500 ms: no deadline fires. */
Test(core, idle_not_fired_by_steady_drip)
{
	struct dl_result r;
	struct dl_server *s;

	dl_require_shim();
	s = dl_stallsrv("drip", "--ms", "100", "--count", "10", NULL);
	dl_client(&r, 1, 5000, DL_V("DEADLINE_IDLE_TIMEOUT=500ms"),
	       "rw", LO, s->port_s, "--send",
	       "GET / HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n", NULL);
	dl_assert_ok(&r, "drip under idle 500ms");
	dl_assert_run(&r, dl_line(r.out, "OK 68 ") != NULL,
		      "expected the whole 68-byte response");
}

/* Without the shim (and with it but no deadline set) every stall above
 * hangs: the client is still running when the 1.5 s hard timeout hits. */
static void assert_hangs(struct dl_server *s, int preload, const char *send,
			 const char *what)
{
	struct dl_result r;

	if (send)
		dl_client(&r, preload, 1500, NULL, "rw", LO, s->port_s,
		       "--send", send, NULL);
	else
		dl_client(&r, preload, 1500, NULL, "rw", LO, s->port_s, NULL);
	dl_assert_run(&r, r.timed_out && r.ms >= 1500,
		      "%s: expected the client to hang (still running at "
		      "1.5 s)", what);
	dl_result_free(&r);
}

Test(core, native_connect_hangs)
{
	assert_hangs(dl_stallsrv("backlog", NULL), 0, NULL, "backlog");
}

Test(core, native_request_hangs)
{
	assert_hangs(dl_stallsrv("silent", NULL), 0, "hi", "silent");
}

Test(core, native_first_byte_hangs)
{
	assert_hangs(dl_stallsrv("delay", "--ms", "3000", NULL), 0,
		     "GET / HTTP/1.1\\r\\n\\r\\n", "delay 3000");
}

Test(core, native_drip_hangs)
{
	assert_hangs(dl_stallsrv("drip", "--ms", "100", "--count", "40", NULL),
		     0, "GET / HTTP/1.1\\r\\n\\r\\n", "drip");
}

Test(core, shim_without_deadlines_adds_none)
{
	dl_require_shim();
	assert_hangs(dl_stallsrv("silent", NULL), 1, "hi",
		     "silent, shim preloaded, no DEADLINE_* set");
	assert_hangs(dl_stallsrv("backlog", NULL), 1, NULL,
		     "backlog, shim preloaded, no DEADLINE_* set");
}

/* ================================================================== */
/* 2. The peer sees the end; the fd number stays reserved until close   */
/* ================================================================== */

Test(core, expiry_peer_sees_end_fd_reserved)
{
	struct dl_result r;
	struct dl_server *s;
	char line[256];

	dl_require_shim();
	s = dl_stallsrv("silent", "--report", NULL);
	dl_client(&r, 1, 8000, DL_V("DEADLINE_REQUEST_TIMEOUT=300ms"),
	       "fdreserved", LO, s->port_s, "--hold", "700", NULL);
	dl_assert_ok(&r, "fdreserved");
	const char *exp = dl_line(r.out, "EXPIRED ");
	dl_assert_run(&r, exp && dl_rq_within(&r, dl_field(exp, "ms="), 300,
					      dl_slack()),
		      "request deadline 300ms fired outside [300,%ld]",
		      300 + dl_slack());

	/* The client closes 700 ms after expiry; the server must have seen
	 * the connection end at expiry, not at that close. */
	cr_assert(dl_server_line(s, "END ", 2000, line, sizeof(line)),
		  "server never saw the connection end; server output:\n%s",
		  s->buf);
	long after = dl_field(line, "after_ms=");
	cr_assert(!strncmp(line, "END rst ", 8) || !strncmp(line, "END fin ", 8),
		  "peer saw '%s', expected RST (or FIN)", line);
	cr_assert(after >= 250 && after <= 300 + dl_slack() + 50,
		  "peer saw the end %ld ms after accept, expected at the 300 ms"
		  " expiry (the client only closed at ~1000 ms): %s", after,
		  line);
}

/* ================================================================== */
/* 3. 100 MB byte-identical with and without the shim                   */
/* ================================================================== */

static void bulk(const char *mode)
{
	struct dl_result nat, shim;
	struct dl_server *s;
	const char *bytes = "104857600";

	dl_require_shim();
	s = dl_stallsrv(mode, "--bytes", bytes, NULL);
	dl_client(&nat, 0, 60000, NULL, "bulk", LO, s->port_s, "--mode", mode,
	       "--bytes", bytes, NULL);
	dl_assert_ok(&nat, "native bulk");
	dl_client(&shim, 1, 60000, generous, "bulk", LO, s->port_s, "--mode",
	       mode, "--bytes", bytes, NULL);
	dl_assert_ok(&shim, "bulk under the shim");
	dl_assert_run(&shim, dl_line(shim.out, "OK 104857600 identical"),
		      "data differs under the shim");
	char *a = dl_lines(nat.out, "OK "), *b = dl_lines(shim.out, "OK ");
	cr_assert_str_eq(a, b, "native and shim results differ");
	free(a);
	free(b);
}

Test(core, bulk_100mb_source, .timeout = 120)
{
	bulk("source");
}

Test(core, bulk_100mb_echo, .timeout = 120)
{
	bulk("echo");
}

Test(core, bulk_100mb_sink, .timeout = 120)
{
	bulk("sink");
}

/* ================================================================== */
/* 4. Threads                                                          */
/* ================================================================== */

/* 32 threads, each blocked on its own connection; answers come after 0 to
 * 2500 ms, first_byte is 500 ms: the 16 slow ones must each time out on
 * their own schedule, the 16 quick ones must get their answer. */
Test(core, threads_32_deadlines)
{
	struct dl_result r;
	struct dl_server *s;

	dl_require_shim();
	s = dl_stallsrv("http", NULL);
	dl_client(&r, 1, 10000, DL_V("DEADLINE_FIRST_BYTE_TIMEOUT=500ms"),
	       "threads", LO, s->port_s, "--n", "32", "--limit", "500",
	       "--slack", slack_s(), NULL);
	dl_assert_ok(&r, "threads");
	dl_assert_run(&r, dl_line(r.out, "THREADS ok=16 timedout=16 bad=0"),
		      "expected 16 answers and 16 timeouts");
}

Test(core, threads_32_native)
{
	struct dl_result r;
	struct dl_server *s = dl_stallsrv("http", NULL);

	dl_client(&r, 0, 10000, NULL, "threads", LO, s->port_s, "--n", "32",
	       "--limit", "0", NULL);
	dl_assert_ok(&r, "threads without the shim");
	dl_assert_run(&r, dl_line(r.out, "THREADS ok=32 timedout=0 bad=0"),
		      "all 32 should succeed natively");
}

/* close() while another thread is blocked in read(): Linux lets the read
 * carry on and return the answer; the shim must not change that. */
Test(core, close_while_reading_like_native)
{
	struct dl_result nat, shim;
	struct dl_server *s;

	dl_require_shim();
	s = dl_stallsrv("http", NULL);
	dl_client(&nat, 0, 8000, NULL, "closerace", LO, s->port_s, NULL);
	dl_client(&shim, 1, 8000, generous, "closerace", LO, s->port_s, NULL);
	dl_assert_run(&nat, nat.exited, "native closerace did not finish");
	const char *a = dl_line(nat.out, "READER "), *b = dl_line(shim.out,
								  "READER ");
	dl_assert_run(&shim, a && b, "missing READER line (native:\n%s)",
		      nat.out);
	size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
	const char *ma = strstr(a, " ms="), *mb = strstr(b, " ms=");
	size_t ka = ma && (size_t)(ma - a) < la ? (size_t)(ma - a) : la;
	size_t kb = mb && (size_t)(mb - b) < lb ? (size_t)(mb - b) : lb;

	dl_assert_run(&shim, ka == kb && !strncmp(a, b, ka),
		      "reader outcome differs from native '%.*s'", (int)la, a);
	if (ma && mb) {
		long d = dl_field(a, "ms=") - dl_field(b, "ms=");

		dl_assert_run(&shim, d < 150 && d > -150,
			      "reader timing differs from native '%.*s'",
			      (int)la, a);
	}
	char *ca = dl_lines(nat.out, "CLOSE"), *cb = dl_lines(shim.out, "CLOSE");
	char *ra = dl_lines(nat.out, "REUSE"), *rb = dl_lines(shim.out, "REUSE");
	cr_assert_str_eq(ca, cb, "close() result differs from native");
	cr_assert_str_eq(ra, rb, "reusing the fd number differs from native");
	dl_assert_run(&shim, shim.exited && shim.code == nat.code &&
		      !dl_sanitizer_report(&shim), "exit status differs");
	free(ca); free(cb); free(ra); free(rb);
}

/* ================================================================== */
/* 5. fork and exec                                                    */
/* ================================================================== */

Test(core, fork_parent_child_and_exec)
{
	struct dl_result nat, shim;
	struct dl_server *s;

	dl_require_shim();
	s = dl_stallsrv("http", NULL);
	dl_client(&shim, 1, 10000, DL_V("DEADLINE_FIRST_BYTE_TIMEOUT=600ms"),
	       "fork", LO, s->port_s, "--limit", "600", "--slack", slack_s(),
	       NULL);
	dl_assert_ok(&shim, "fork under the shim");
	dl_client(&nat, 0, 10000, NULL, "fork", LO, s->port_s, "--limit", "0",
	       NULL);
	dl_assert_ok(&nat, "fork without the shim");

	/* The child exec'd a shim-free image: what it holds was inherited. */
	char *a = dl_lines(nat.out, "FDLIST"), *b = dl_lines(shim.out, "FDLIST");
	dl_assert_run(&shim, strstr(b, "FDLIST-END") != NULL,
		      "the exec'd child did not list its fds");
	cr_assert_str_eq(a, b, "fds after exec differ: native\n%s\nshim\n%s",
			 a, b);
	free(a);
	free(b);
}

/* ================================================================== */
/* 6. fdopen + fgets                                                    */
/* ================================================================== */

Test(core, fdopen_fgets_like_native)
{
	struct dl_result nat, shim;
	struct dl_server *s;

	dl_require_shim();
	s = dl_stallsrv("http", NULL);
	dl_client(&nat, 0, 10000, NULL, "fdopen", LO, s->port_s, NULL);
	dl_assert_ok(&nat, "native fdopen");
	dl_client(&shim, 1, 10000, generous, "fdopen", LO, s->port_s, NULL);
	dl_assert_ok(&shim, "fdopen under the shim");
	cr_assert_str_eq(nat.out, shim.out, "output differs from native");
}

/* ================================================================== */
/* 7. Socket calls from another library's constructor                  */
/* ================================================================== */

/* build/helpers/ctorlib linked against libctorlib.so when the Makefile
 * builds the pair; otherwise built here with tests/helpers/build-ctorlib
 * (a path relative to the repository root, where run-suite runs us). */
static const char *ctorlib_program(void)
{
	static char prog[PATH_MAX];
	struct dl_result r;

	if (access(dl_helper("libctorlib.so"), R_OK) == 0)
		return dl_helper("ctorlib");
	dl_run(&r, DL_V("tests/helpers/build-ctorlib", dl_tmpdir()), NULL, 0,
	       60000);
	dl_assert_ok(&r, "building the ctorlib pair");
	dl_fmt(prog, sizeof(prog), "%s/ctorlib", dl_tmpdir());
	dl_result_free(&r);
	return prog;
}

Test(core, socket_calls_in_foreign_constructor, .timeout = 60)
{
	struct dl_result nat, shim;
	struct dl_server *s;
	char port[32];

	dl_require_shim();
	s = dl_stallsrv("http", NULL);
	const char *prog = ctorlib_program();
	dl_fmt(port, sizeof(port), "DL_CTOR_PORT=%d", s->port);

	dl_run(&nat, DL_V(prog), DL_V(port), 0, 10000);
	dl_assert_ok(&nat, "ctorlib without the shim");
	dl_run(&shim, DL_V(prog), DL_V(port), 1, 10000);
	dl_assert_ok(&shim, "ctorlib under the shim, no deadline");
	cr_assert_str_eq(nat.out, shim.out, "output differs from native");
	dl_result_free(&shim);

	dl_run(&shim, DL_V(prog, "--limit", "500", "--slack", slack_s()),
	       DL_V(port, "DEADLINE_REQUEST_TIMEOUT=500ms"), 1, 10000);
	dl_assert_ok(&shim, "ctorlib under the shim with a 500ms request "
			    "deadline");
	dl_assert_run(&shim, dl_line(shim.out, "CTOR OK") &&
		      dl_line(shim.out, "REUSE OK") &&
		      dl_line(shim.out, "DEADLINE ERR ETIMEDOUT"),
		      "constructor exchange, reuse and deadline expected");
}

/* ================================================================== */
/* 8. F_GETFL and O_NONBLOCK                                            */
/* ================================================================== */

/* Copy of text without its "TIME ..." lines. */
static char *without_time(const char *text)
{
	char *out = strdup(text), *w = out;

	cr_assert(out, "out of memory");
	for (const char *p = text; *p;) {
		size_t l = strcspn(p, "\n");

		l += p[l] == '\n';
		if (strncmp(p, "TIME ", 5)) {
			memmove(w, p, l);
			w += l;
		}
		p += l;
	}
	*w = '\0';
	return out;
}

/* The numbers ending the "TIME ..." lines of text; returns how many. */
static int time_values(const char *text, long *v, int max)
{
	int n = 0;

	for (const char *p = text; (p = dl_line(p, "TIME ")) && n < max; p++) {
		size_t l = strcspn(p, "\n");
		const char *sp = p + l;

		while (sp > p && sp[-1] != ' ')
			sp--;
		v[n++] = strtol(sp, NULL, 10);
	}
	return n;
}

static void same_as_native(const char *sub, const char *const *env,
			   const char *const *more)
{
	struct dl_result nat, shim;
	struct dl_server *s;
	const char *argv[16];
	int n = 0;

	dl_require_shim();
	s = dl_stallsrv("http", NULL);
	argv[n++] = dl_helper("dlclient");
	argv[n++] = sub;
	argv[n++] = LO;
	argv[n++] = s->port_s;
	for (; more && *more && n < 15; more++)
		argv[n++] = *more;
	argv[n] = NULL;

	dl_run(&nat, argv, NULL, 0, 10000);
	dl_assert_ok(&nat, "native run");
	dl_run(&shim, argv, env, 1, 10000);
	dl_assert_ok(&shim, "run under the shim");
	/* TIME lines carry scheduling noise; everything else must match,
	 * and each timing must be within 100 ms of the native one. */
	char *ca = without_time(nat.out), *cb = without_time(shim.out);
	long ta[16], tb[16];
	int na = time_values(nat.out, ta, 16), nb = time_values(shim.out, tb, 16);

	cr_assert_str_eq(ca, cb, "output differs from native");
	cr_assert_eq(na, nb, "different number of TIME lines");
	for (int i = 0; i < na; i++)
		cr_assert(ta[i] - tb[i] < 100 && tb[i] - ta[i] < 100,
			  "timing differs from native:\n%s\nvs\n%s", nat.out,
			  shim.out);
	free(ca);
	free(cb);
}

Test(core, getfl_nonblock_like_native)
{
	same_as_native("getfl", generous, NULL);
}

/* ================================================================== */
/* 9. errno and EINTR                                                  */
/* ================================================================== */

Test(core, errno_preserved_like_native)
{
	same_as_native("errno", generous, NULL);
}

Test(core, eintr_sa_restart_like_native)
{
	same_as_native("eintr", generous, DL_V("--restart", "1"));
}

Test(core, eintr_no_restart_like_native)
{
	same_as_native("eintr", generous, DL_V("--restart", "0"));
}

/* Another signal's handler lacking SA_RESTART must not matter. */
Test(core, eintr_sa_restart_other_handler_like_native)
{
	same_as_native("eintr", generous,
		       DL_V("--restart", "1", "--other-handler"));
}

/* Signals every 100 ms during a wait: the deadline is not pushed back by
 * restarts, and without SA_RESTART the first signal gives EINTR. */
Test(core, eintr_deadline_not_reset)
{
	struct dl_result r;
	struct dl_server *s;

	dl_require_shim();
	s = dl_stallsrv("http", NULL);
	dl_client(&r, 1, 8000, DL_V("DEADLINE_REQUEST_TIMEOUT=500ms"), "eintr",
	       LO, s->port_s, "--restart", "1", "--limit", "500", "--slack",
	       slack_s(), NULL);
	dl_assert_ok(&r, "SA_RESTART signals every 100 ms, request 500ms");
	dl_result_free(&r);
	dl_client(&r, 1, 8000, DL_V("DEADLINE_REQUEST_TIMEOUT=500ms"), "eintr",
	       LO, s->port_s, "--restart", "0", "--limit", "500", "--slack",
	       slack_s(), NULL);
	dl_assert_ok(&r, "signals without SA_RESTART, request 500ms");
}

/* ================================================================== */
/* 10. Real programs                                                   */
/* ================================================================== */

/* ELAPSED: ms from before the connect; ARMED: ms at which it returned
 * (the lookup inside it imports python's idna codec: file reads before
 * the request deadline starts). */
static const char py_script[] =
	"import socket, sys, time, os\n"
	"t = a = time.monotonic()\n"
	"try:\n"
	"    s = socket.create_connection(('127.0.0.1', int(os.environ['PORT'])))\n"
	"    a = time.monotonic()\n"
	"    s.sendall(b'hi')\n"
	"    print(s.recv(10))\n"
	"finally:\n"
	"    print('ELAPSED', int((time.monotonic() - t) * 1000),"
	" 'ARMED', int((a - t) * 1000), file=sys.stderr)\n";

/* /usr/bin/python3, plus the python3 on PATH when it is another file. */
static int pythons(const char *out[2])
{
	static char onpath[PATH_MAX];
	char deb[PATH_MAX], other[PATH_MAX];
	const char *path = getenv("PATH");
	int n = 0;

	if (access("/usr/bin/python3", X_OK) == 0)
		out[n++] = "/usr/bin/python3";
	if (!realpath("/usr/bin/python3", deb))
		deb[0] = '\0';
	for (const char *p = path; p && *p;) {
		size_t l = strcspn(p, ":");

		dl_fmt(onpath, sizeof(onpath), "%.*s/python3", (int)l, p);
		if (access(onpath, X_OK) == 0) {
			if (realpath(onpath, other) && strcmp(other, deb))
				out[n++] = onpath;
			break;
		}
		p += l + (p[l] == ':');
	}
	return n;
}

Test(core, python_request_timeout)
{
	const char *py[2];
	int npy = pythons(py);
	struct dl_server *silent, *answer;
	char port[32], port2[32];

	dl_require_shim();
	cr_assert(npy > 0, "no python3 found");
	silent = dl_stallsrv("silent", NULL);
	answer = dl_stallsrv("delay", "--ms", "100", NULL);
	dl_fmt(port, sizeof(port), "PORT=%d", silent->port);
	dl_fmt(port2, sizeof(port2), "PORT=%d", answer->port);

	for (int i = 0; i < npy; i++) {
		struct dl_result r, nat;

		cr_log_info("python_request_timeout: %s", py[i]);

		dl_run(&r, DL_V(py[i], "-c", py_script),
		       DL_V(port, "DEADLINE_REQUEST_TIMEOUT=500ms"), 1, 8000);
		dl_assert_run(&r, r.exited && r.code == 1 &&
			      strstr(r.err, "TimeoutError: [Errno 110] "
					    "Connection timed out"),
			      "%s: expected TimeoutError errno 110", py[i]);
		const char *el = dl_line(r.err, "ELAPSED");
		long ms = dl_field(el, "ELAPSED ");
		long armed = dl_field(el, " ARMED ");
		dl_assert_run(&r, armed >= 0 &&
			      dl_within_armed(ms, armed, r.rq_ms, 500,
					      dl_slack()),
			      "%s: request 500ms fired after %ld ms (connected "
			      "at %ld), outside [500,%ld] from the connect net "
			      "of the run-queue wait", py[i], ms, armed,
			      500 + dl_slack());
		dl_result_free(&r);

		/* No deadline set: same as without the shim. */
		dl_run(&nat, DL_V(py[i], "-c", py_script), DL_V(port2), 0,
		       8000);
		dl_run(&r, DL_V(py[i], "-c", py_script), DL_V(port2), 1, 8000);
		dl_assert_ok(&nat, "python3 natively");
		dl_assert_ok(&r, "python3 under the shim, no deadline");
		cr_assert_str_eq(nat.out, r.out, "%s: output differs", py[i]);
		dl_result_free(&r);
		dl_run(&r, DL_V(py[i], "-c", py_script), DL_V(port), 1, 1200);
		dl_assert_run(&r, r.timed_out,
			      "%s: with no deadline set it must hang like "
			      "native", py[i]);
		dl_result_free(&r);
	}
}

/* redis-cli (hiredis, blocking read) against a SIGSTOPped redis-server. */
Test(core, redis_cli_request_timeout, .timeout = 60)
{
	struct dl_result r, nat;
	char port_s[16];
	pid_t srv = -1;
	int port = 0;

	dl_require_shim();
	cr_assert(access("/usr/bin/redis-server", X_OK) == 0 &&
		  access("/usr/bin/redis-cli", X_OK) == 0,
		  "redis-server/redis-cli not installed");
	for (int attempt = 0; attempt < 5 && srv < 0; attempt++) {
		port = dl_free_port();
		dl_fmt(port_s, sizeof(port_s), "%d", port);
		pid_t pid = dl_daemon(DL_V("redis-server", "--port", port_s,
					   "--bind", "127.0.0.1", "--save", "",
					   "--appendonly", "no", "--dir",
					   dl_tmpdir(), "--daemonize", "no",
					   "--unixsocket", ""),
				      dl_tmpdir(), "redis.log");
		for (int i = 0; i < 50; i++) {
			dl_run(&r, DL_V("redis-cli", "-h", LO, "-p", port_s,
					"ping"), NULL, 0, 2000);
			int up = strstr(r.out, "PONG") != NULL;
			dl_result_free(&r);
			if (up) {
				srv = pid;
				break;
			}
			if (waitpid(pid, NULL, WNOHANG) == pid)
				break;	/* port taken meanwhile: retry */
			usleep(100000);
		}
	}
	cr_assert(srv > 0, "redis-server did not come up");

	dl_run(&r, DL_V("redis-cli", "-h", LO, "-p", port_s, "set", "k",
			"hello"), NULL, 0, 5000);
	dl_assert_ok(&r, "redis-cli set");
	dl_result_free(&r);

	/* No deadline: same output as without the shim. */
	dl_run(&nat, DL_V("redis-cli", "-h", LO, "-p", port_s, "get", "k"),
	       NULL, 0, 5000);
	dl_run(&r, DL_V("redis-cli", "-h", LO, "-p", port_s, "get", "k"),
	       NULL, 1, 5000);
	dl_assert_ok(&nat, "redis-cli natively");
	dl_assert_ok(&r, "redis-cli under the shim, no deadline");
	cr_assert_str_eq(nat.out, r.out, "output differs from native");
	cr_assert_str_eq(r.out, "hello\n", "unexpected value");
	dl_result_free(&r);

	/* The server stops answering; the kernel still accepts. */
	kill(srv, SIGSTOP);
	dl_run(&r, DL_V("redis-cli", "-h", LO, "-p", port_s, "get", "k"),
	       DL_V("DEADLINE_REQUEST_TIMEOUT=500ms"), 1, 5000);
	/* hiredis words ETIMEDOUT on a blocking read as "recv timeout". */
	dl_assert_run(&r, !r.timed_out && r.exited && r.code != 0 &&
		      (strstr(r.err, "Error: recv timeout") ||
		       strstr(r.err, "timed out")),
		      "expected a timeout error from redis-cli");
	/* Measured from exec: allow for process start-up. */
	dl_assert_run(&r, r.ms >= 500 && r.ms <= 500 + dl_slack() + 150,
		      "redis-cli should end at the 500ms deadline");
	kill(srv, SIGCONT);
}
