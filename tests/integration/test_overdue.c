/* test_overdue.c - overdue deadlines are enforced on every call, not only
 * in waits (docs/semantics.md, "Calls that do not wait").
 *
 * A program that never waits where the shim can cut the wait - it polls a
 * non-blocking socket in a busy loop, call -> EAGAIN -> usleep(10 ms) ->
 * call, without poll/select/epoll - must still see its connection torn
 * down at the deadline: the first call past it fails with ETIMEDOUT (or
 * the rule's errno) instead of EAGAIN, with exactly one event=deadline
 * line, and every later call fails the same way.  Programs run
 * tests/helpers/overdue against silent servers (stallsrv silent, a
 * listener that never accepts, stallsrv backlog for a handshake that never
 * completes) and harm_io's scripted ones (data at once, data late).
 *
 * "Waits the shim cannot cut" also include select() with nfds >
 * FD_SETSIZE, which cannot be built safely here (the kernel would read
 * past the caller's fd_set); the busy loops are the cases covered.
 *
 * Timing: an expiry must come within [limit, limit + dl_slack()] of the
 * deadline's start, never tighter; the helper measures from before its
 * connect, which is at or before every deadline's start.
 */
#include "harness.h"

TestSuite(overdue, .init = dl_setup, .fini = dl_teardown, .timeout = 30);

/* ------------------------------------------------------------------ */
/* Plumbing                                                            */
/* ------------------------------------------------------------------ */

/* Run build/helpers/overdue args... under the shim (preload) with env. */
static void od_run(struct dl_result *r, int preload, const char *const *env,
		   const char *const *args)
{
	const char *argv[24];
	int n = 0;

	dl_require_shim();
	argv[n++] = dl_helper("overdue");
	for (; *args && n < 23; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	cr_assert(access(argv[0], X_OK) == 0,
		  "%s is missing: make %s", argv[0], "build/helpers/overdue");
	dl_run(r, argv, env, preload, 15000);
}

/* The helper's RESULT line (fails the test when there is none). */
static const char *od_result(const struct dl_result *r)
{
	const char *p = dl_line(r->out, "RESULT ");

	dl_assert_ok(r, "overdue");
	dl_assert_run(r, p != NULL, "overdue printed no RESULT line");
	return p;
}

/* How many libdeadline event=deadline lines the run logged. */
static int od_deadline_lines(const char *err)
{
	int n = 0;

	for (const char *p = err; (p = strstr(p, " event=deadline")); p++)
		n++;
	return n;
}

/* Exactly one event=deadline line, for phase and limit, with elapsed_ms in
 * [lo, hi] (measured from the phase's start). */
static void od_one_deadline_in(const struct dl_result *r, const char *phase,
			       long limit, long lo, long hi)
{
	const char *line = strstr(r->err, " event=deadline"), *nl, *ph;
	char want[48];
	long el;

	dl_assert_run(r, od_deadline_lines(r->err) == 1,
		      "expected exactly one event=deadline line, got %d",
		      od_deadline_lines(r->err));
	dl_fmt(want, sizeof(want), " phase=%s ", phase);
	nl = strchr(line, '\n');
	ph = strstr(line, want);
	dl_assert_run(r, ph && (!nl || ph < nl),
		      "the deadline line should say%s", want);
	dl_assert_run(r, dl_field(line, " limit_ms=") == limit,
		      "the deadline line should say limit_ms=%ld", limit);
	el = dl_field(line, " elapsed_ms=");
	dl_assert_run(r, dl_rq_within(r, el, lo, hi - lo),
		      "elapsed_ms=%ld outside [%ld,%ld] net of the run queue",
		      el, lo, hi);
}

/* The same with elapsed_ms in [at, at + slack] (at: when the call that
 * tore it down was made). */
static void od_one_deadline(const struct dl_result *r, const char *phase,
			    long limit, long at)
{
	od_one_deadline_in(r, phase, limit, at, at + dl_slack());
}

/* A program asleep past its 300 ms request deadline (--sleep sleep_ms):
 * its first call after it woke ended the connection at once.  When it
 * woke is the machine's business (a loaded one oversleeps); from then on
 * the shim's: the end within the slack of the wake-up, and the one
 * deadline line dated between the sleep's end and the call's. */
static void od_after_wake(const struct dl_result *r, const char *line,
			  long sleep_ms)
{
	long ms = dl_field(line, " ms="), woke = dl_field(line, " woke=");

	dl_assert_run(r, woke >= sleep_ms && ms >= woke &&
				 ms <= woke + dl_slack(),
		      "woke at %ld ms, ended at %ld ms: want the end within "
		      "[woke, woke + %ld] and woke >= %ld", woke, ms,
		      dl_slack(), sleep_ms);
	od_one_deadline_in(r, "request", 300, sleep_ms, ms);
}

/* The busy loop ended with errno name `err` within [limit, limit + slack]
 * after it had seen EAGAIN (want_eagain), and one more call on the socket
 * failed the same way; one deadline line for phase. */
static void od_expired(const struct dl_result *r, const char *err,
		       const char *phase, long limit, int want_eagain)
{
	const char *line = od_result(r);
	long ms = dl_field(line, " ms="), eagain = dl_field(line, " eagain=");

	dl_assert_run(r, !strcmp(dl_word(line, "end="), err),
		      "the loop should end with %s, not EAGAIN for ever", err);
	dl_assert_run(r, dl_rq_within(r, ms, limit, dl_slack()),
		      "ended at %ld ms, outside [%ld,%ld]", ms, limit,
		      limit + dl_slack());
	dl_assert_run(r, !want_eagain || eagain > 0,
		      "the loop should have seen EAGAIN before the deadline");
	dl_assert_run(r, !strcmp(dl_word(line, "next="), err),
		      "the call after the expiry should fail with %s too",
		      err);
	od_one_deadline(r, phase, limit, limit);
}

static struct dl_server *od_harm_server(char *ports, size_t cap)
{
	struct dl_server *s = dl_server_start_ex(
		"harm_io", DL_V("serve", "--lifetime", "60"), NULL, 0, 0, 1);

	cr_assert(dl_server_line(s, "PORTS ", 5000, ports, cap),
		  "harm_io serve printed no PORTS line: %s", s->buf);
	return s;
}

static const char *od_port(const char *ports, const char *name)
{
	static char buf[16];
	char key[32];
	const char *p;

	dl_fmt(key, sizeof(key), " %s=", name);
	p = strstr(ports, key);
	cr_assert(p, "no port for '%s' in '%s'", name, ports);
	dl_fmt(buf, sizeof(buf), "%d", atoi(p + strlen(key)));
	return buf;
}

/* ------------------------------------------------------------------ */
/* Reads that answer EAGAIN past the deadline                          */
/* ------------------------------------------------------------------ */

Test(overdue, recv_loop_request_silent)
{
	struct dl_server *s = dl_stallsrv("silent", NULL);
	struct dl_result r;

	od_run(&r, 1, DL_V("DEADLINE_REQUEST_TIMEOUT=300ms"),
	       DL_V("recv", s->port_s, "--request", "--call", "recv"));
	od_expired(&r, "ETIMEDOUT", "request", 300, 1);
	dl_result_free(&r);
}

Test(overdue, read_loop_first_byte_silent)
{
	struct dl_server *s = dl_stallsrv("silent", NULL);
	struct dl_result r;

	od_run(&r, 1, DL_V("DEADLINE_FIRST_BYTE_TIMEOUT=300ms"),
	       DL_V("recv", s->port_s, "--request", "--call", "read"));
	od_expired(&r, "ETIMEDOUT", "first_byte", 300, 1);
	dl_result_free(&r);
}

/* Idle starts at the first EAGAIN, right after the connect. */
Test(overdue, recvmsg_loop_idle_silent)
{
	struct dl_server *s = dl_stallsrv("silent", NULL);
	struct dl_result r;

	od_run(&r, 1, DL_V("DEADLINE_IDLE_TIMEOUT=300ms"),
	       DL_V("recv", s->port_s, "--call", "recvmsg"));
	od_expired(&r, "ETIMEDOUT", "idle", 300, 1);
	dl_result_free(&r);
}

/* A rule's errno is what the overdue call fails with. */
Test(overdue, recvfrom_loop_rule_errno)
{
	struct dl_server *s = dl_stallsrv("silent", NULL);
	struct dl_result r;
	const char *conf = dl_write_file(
		"overdue.conf",
		"rules = ( { name = \"od\"; request_timeout = \"300ms\"; "
		"errno = \"ECONNRESET\"; } );\n");
	char env[PATH_MAX + 32];

	dl_fmt(env, sizeof(env), "DEADLINE_CONFIG=%s", conf);
	od_run(&r, 1, DL_V(env),
	       DL_V("recv", s->port_s, "--request", "--call", "recvfrom"));
	od_expired(&r, "ECONNRESET", "request", 300, 1);
	dl_assert_run(&r, strstr(r.err, " rule=od "),
		      "the deadline line should name rule od");
	dl_result_free(&r);
}

/* ------------------------------------------------------------------ */
/* Writes that answer EAGAIN past the deadline                         */
/* ------------------------------------------------------------------ */

/* The peer never reads (its listener never accepts): once the buffers are
 * full every send answers EAGAIN. */
Test(overdue, send_loop_request_peer_not_reading)
{
	struct dl_result r;

	od_run(&r, 1, DL_V("DEADLINE_REQUEST_TIMEOUT=300ms"),
	       DL_V("send", "--call", "send"));
	od_expired(&r, "ETIMEDOUT", "request", 300, 1);
	dl_result_free(&r);
}

Test(overdue, writev_loop_request_peer_not_reading)
{
	struct dl_result r;

	od_run(&r, 1, DL_V("DEADLINE_REQUEST_TIMEOUT=300ms"),
	       DL_V("send", "--call", "writev"));
	od_expired(&r, "ETIMEDOUT", "request", 300, 1);
	dl_result_free(&r);
}

/* ------------------------------------------------------------------ */
/* A pending non-blocking connect polled through SO_ERROR              */
/* ------------------------------------------------------------------ */

Test(overdue, so_error_loop_connect_backlog)
{
	struct dl_server *s = dl_stallsrv("backlog", NULL);
	struct dl_result r;

	od_run(&r, 1, DL_V("DEADLINE_CONNECT_TIMEOUT=300ms"),
	       DL_V("connect", s->port_s));
	/* The loop polls SO_ERROR, which answers 0 while pending (not
	 * EAGAIN): "eagain" counts the polls. */
	od_expired(&r, "ETIMEDOUT", "connect", 300, 1);
	dl_result_free(&r);
}

/* ------------------------------------------------------------------ */
/* A deadline that passes while the program is in no call at all        */
/* ------------------------------------------------------------------ */

/* Asleep from 0 to 600 ms with a 300 ms deadline: the first call, at
 * 600 ms or when the machine wakes the program, fails at once. */
Test(overdue, sleep_past_deadline_next_call_fails)
{
	struct dl_server *s = dl_stallsrv("silent", NULL);
	struct dl_result r;
	const char *line;

	od_run(&r, 1, DL_V("DEADLINE_REQUEST_TIMEOUT=300ms"),
	       DL_V("recv", s->port_s, "--sleep", "600"));
	line = od_result(&r);
	dl_assert_run(&r, !strcmp(dl_word(line, "end="), "ETIMEDOUT"),
		      "the first call after the deadline should fail "
		      "ETIMEDOUT");
	dl_assert_run(&r, dl_field(line, " eagain=") == 0,
		      "no call should have answered EAGAIN");
	dl_assert_run(&r, !strcmp(dl_word(line, "next="), "ETIMEDOUT"),
		      "later calls should fail ETIMEDOUT too");
	od_after_wake(&r, line, 600);
	dl_result_free(&r);
}

/* Data already queued when the late call comes is delivered (the call
 * does not wait); the call after it, which would answer EAGAIN, fails. */
Test(overdue, queued_data_delivered_then_expired)
{
	struct dl_result r;
	const char *line;
	char ports[256];

	od_harm_server(ports, sizeof(ports));
	od_run(&r, 1, DL_V("DEADLINE_REQUEST_TIMEOUT=300ms"),
	       DL_V("recv", od_port(ports, "ready"), "--sleep", "600"));
	line = od_result(&r);
	dl_assert_run(&r, !strcmp(dl_word(line, "data="),
				  "ABCDEFGHIJKLMNOPQRST"),
		      "the bytes queued before the late call should be "
		      "delivered");
	dl_assert_run(&r, !strcmp(dl_word(line, "end="), "ETIMEDOUT") &&
				  dl_field(line, " eagain=") == 0,
		      "the call after the data should fail ETIMEDOUT, "
		      "never EAGAIN");
	od_after_wake(&r, line, 600);
	dl_result_free(&r);
}

/* The same for a blocking program: its read right after its request,
 * made past the deadline, returns what is queued; the next one fails. */
Test(overdue, blocking_queued_data_delivered_then_expired)
{
	struct dl_result r;
	const char *line;
	char ports[256];

	od_harm_server(ports, sizeof(ports));
	od_run(&r, 1, DL_V("DEADLINE_REQUEST_TIMEOUT=300ms"),
	       DL_V("recv", od_port(ports, "ready"), "--block", "--request",
		    "--sleep", "600", "--call", "read"));
	line = od_result(&r);
	dl_assert_run(&r, !strcmp(dl_word(line, "data="),
				  "ABCDEFGHIJKLMNOPQRST") &&
				  !strcmp(dl_word(line, "end="), "ETIMEDOUT"),
		      "the queued bytes first, then ETIMEDOUT");
	od_after_wake(&r, line, 600);
	dl_result_free(&r);
}

/* ------------------------------------------------------------------ */
/* Controls                                                            */
/* ------------------------------------------------------------------ */

/* No deadline: the busy loop gets EAGAIN until it gives up, as natively. */
Test(overdue, control_no_deadline_eagain_as_native)
{
	struct dl_server *s = dl_stallsrv("silent", NULL);
	struct dl_result r, n;

	od_run(&n, 0, NULL, DL_V("recv", s->port_s, "--max", "600"));
	od_run(&r, 1, NULL, DL_V("recv", s->port_s, "--max", "600"));
	dl_assert_run(&n, !strcmp(dl_word(od_result(&n), "end="), "max") &&
				  dl_field(od_result(&n), " eagain=") > 0,
		      "natively the loop should see EAGAIN until --max");
	dl_assert_run(&r, !strcmp(dl_word(od_result(&r), "end="), "max") &&
				  dl_field(od_result(&r), " eagain=") > 0,
		      "without a deadline the loop should see EAGAIN until "
		      "--max");
	dl_assert_run(&r, od_deadline_lines(r.err) == 0,
		      "no deadline line expected");
	dl_result_free(&r);
	dl_result_free(&n);
}

/* A deadline not yet due changes nothing: EAGAIN, no log line, for reads
 * and for writes. */
Test(overdue, control_deadline_not_due_eagain)
{
	struct dl_server *s = dl_stallsrv("silent", NULL);
	struct dl_result r, w;

	od_run(&r, 1, DL_V("DEADLINE_REQUEST_TIMEOUT=5s",
			   "DEADLINE_IDLE_TIMEOUT=5s"),
	       DL_V("recv", s->port_s, "--request", "--max", "600"));
	od_run(&w, 1, DL_V("DEADLINE_REQUEST_TIMEOUT=5s"),
	       DL_V("send", "--max", "600"));
	dl_assert_run(&r, !strcmp(dl_word(od_result(&r), "end="), "max") &&
				  dl_field(od_result(&r), " eagain=") > 0 &&
				  od_deadline_lines(r.err) == 0,
		      "reads: EAGAIN until --max, no deadline line");
	dl_assert_run(&w, !strcmp(dl_word(od_result(&w), "end="), "max") &&
				  dl_field(od_result(&w), " eagain=") > 0 &&
				  od_deadline_lines(w.err) == 0,
		      "writes: EAGAIN until --max, no deadline line");
	dl_result_free(&r);
	dl_result_free(&w);
}

/* Data arriving before the deadline (at 500 and 750 ms, deadline 1.5 s)
 * reaches the busy loop unchanged. */
Test(overdue, control_data_before_deadline_delivered)
{
	struct dl_result r;
	const char *line;
	char ports[256];

	od_harm_server(ports, sizeof(ports));
	od_run(&r, 1, DL_V("DEADLINE_REQUEST_TIMEOUT=1500ms"),
	       DL_V("recv", od_port(ports, "late"), "--want", "20"));
	line = od_result(&r);
	dl_assert_run(&r, !strcmp(dl_word(line, "end="), "data") &&
				  !strcmp(dl_word(line, "data="),
					  "ABCDEFGHIJKLMNOPQRST") &&
				  dl_field(line, " eagain=") > 0,
		      "the late data should be delivered to the busy loop");
	dl_assert_run(&r, od_deadline_lines(r.err) == 0,
		      "no deadline line expected");
	dl_result_free(&r);
}
