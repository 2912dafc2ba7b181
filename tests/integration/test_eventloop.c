/* test_eventloop.c - unmodified event-loop programs under the shim
 * (issue 3's must-hold list): curl, curl over TLS, python3 asyncio,
 * redis-cli, nc, wget, and an epoll client with 1,000 connections.
 *
 * Every program runs against helper servers this test starts on
 * kernel-picked loopback ports, with a hard timeout (harness.h).  Windows:
 *   - real programs: the deadline's log line says elapsed in
 *     [limit, limit + EV_SLACK] and the program ends within
 *     [limit, limit + EV_SLACK] of the moment the deadline started, less
 *     the time its main thread waited on the run queue (schedstat);
 *   - the C helpers (evclient) measure inside the process and subtract
 *     the time the machine kept them from running: run-queue time from
 *     schedstat, and hypervisor steal as seen by a canary thread on the
 *     same CPU (see evclient.c).  On this shared VM a native 1 ms or
 *     100 ms epoll_wait, with no shim at all, ends 2-15 ms late now and
 *     then with no CPU or run-queue time to show for it: that is not the
 *     shim's lateness, and the 2 ms and 10 ms windows below would
 *     otherwise measure the host, not the shim.
 * EV_SLACK is 100 ms, or DL_SLACK_MS when that is larger.
 *
 * Helpers used: build/helpers/{stallsrv,evclient} and, from the source
 * tree, tests/helpers/{tlsstall,aioclient}.py (run by python3).
 */
#include "harness.h"

#include <inttypes.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "../helpers/helpers.h"

static void ev_teardown(void);

TestSuite(eventloop, .init = dl_setup, .fini = ev_teardown, .timeout = 40);

#define LO "127.0.0.1"

static long ev_slack(void)
{
	return dl_slack() > 100 ? dl_slack() : 100;
}

/* A time r logged or measured against [limit, limit + slack], net of
 * its main thread's run-queue wait (dl_rq_within). */
static int ev_within(const struct dl_result *r, long ms, long limit)
{
	return dl_rq_within(r, ms, limit, ev_slack());
}

/* ================================================================== */
/* Plumbing the harness does not have                                  */
/* ================================================================== */

/* A command running in the background (stdout/stderr to files in the
 * temp dir), so that the run with the shim and the run without it can
 * share the wall clock.  Killed in ev_teardown if still there. */
struct ev_bg {
	pid_t pid;
	uint64_t t0;
	int reaped;
	char out[PATH_MAX], err[PATH_MAX];
};

#define EV_MAX_BG 4
static struct ev_bg *ev_bgs[EV_MAX_BG];
static int ev_nbg;

static void ev_teardown(void)
{
	for (int i = 0; i < ev_nbg; i++)
		if (!ev_bgs[i]->reaped) {
			dl_kill_group(ev_bgs[i]->pid);
			waitpid(ev_bgs[i]->pid, NULL, 0);
			ev_bgs[i]->reaped = 1;
		}
	ev_nbg = 0;
	dl_teardown();
}

static int ev_open_out(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
	return fd;
}

static void ev_bg_start(struct ev_bg *b, const char *tag,
			const char *const *argv, const char *const *env,
			int preload)
{
	int o, e;

	cr_assert(ev_nbg < EV_MAX_BG, "too many background commands");
	memset(b, 0, sizeof(*b));
	dl_fmt(b->out, sizeof(b->out), "%s/%s.out", dl_tmpdir(), tag);
	dl_fmt(b->err, sizeof(b->err), "%s/%s.err", dl_tmpdir(), tag);
	o = ev_open_out(b->out);
	e = ev_open_out(b->err);
	b->t0 = dl_now_ns();
	b->pid = dl_spawn(argv, env, preload, NULL, o, e);
	close(o);
	close(e);
	ev_bgs[ev_nbg++] = b;
}

/* Wait for b until timeout_ms after its start; kill it then. */
static void ev_bg_finish(struct ev_bg *b, struct dl_result *r,
			 long timeout_ms)
{
	uint64_t end = b->t0 + (uint64_t)timeout_ms * 1000000u, t = 0;
	int st = 0;

	memset(r, 0, sizeof(*r));
	for (;;) {
		uint64_t now = dl_now_ns();

		if (waitpid(b->pid, &st, WNOHANG) == b->pid) {
			t = now;
			break;
		}
		if (now >= end) {
			dl_kill_group(b->pid);
			waitpid(b->pid, &st, 0);
			r->timed_out = 1;
			t = now;
			break;
		}
		hp_sleep_ms(1);
	}
	b->reaped = 1;
	r->ms = (long)((t - b->t0) / 1000000u);
	r->exited = WIFEXITED(st);
	r->code = r->exited ? WEXITSTATUS(st) : -1;
	r->signaled = WIFSIGNALED(st);
	r->sig = r->signaled ? WTERMSIG(st) : 0;
	r->out = dl_read_file(b->out);
	r->err = dl_read_file(b->err);
}

/* Like dl_run, also giving the absolute start time (ns, CLOCK_MONOTONIC),
 * so the end can be compared with a server's timestamps. */
static uint64_t ev_run(struct dl_result *r, const char *const *argv,
		       const char *const *env, int preload, long timeout_ms)
{
	uint64_t t0 = dl_now_ns();

	dl_run(r, argv, env, preload, timeout_ms);
	return t0;
}

/* Start a server that is not one of build/helpers (python3 script) and
 * wait for its "PORT <n>" line; dl_teardown kills it. */
static struct dl_server *ev_server(const char *const *argv)
{
	struct dl_server *s;
	char line[64];
	int p[2];

	cr_assert(dl_nservers < DL_MAX_SERVERS, "too many servers");
	s = &dl_servers[dl_nservers++];
	memset(s, 0, sizeof(*s));
	cr_assert(pipe2(p, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
	s->pid = dl_spawn(argv, NULL, 0, NULL, p[1], -1);
	close(p[1]);
	s->out_fd = p[0];
	cr_assert(dl_server_line(s, "PORT ", 10000, line, sizeof(line)),
		  "%s %s did not report its port; output so far: %s", argv[0],
		  argv[1], s->buf);
	s->port = atoi(line + 5);
	cr_assert(s->port > 0, "bad port line '%s'", line);
	dl_fmt(s->port_s, sizeof(s->port_s), "%d", s->port);
	return s;
}

/* The libdeadline expiry lines of a run's stderr. */
struct ev_dl {
	char phase[16];
	long limit, elapsed, port;
	long long at; /* time=, ms since the epoch; 0 when unreadable */
};

/* The time= of a log line (2026-12-07T17:03:21.314Z), ms since the epoch;
 * 0 when unreadable. */
static long long ev_line_time(const char *line)
{
	const char *t = strstr(line, "time=");
	struct tm tm;
	int ms;

	memset(&tm, 0, sizeof(tm));
	if (!t || sscanf(t + 5, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year,
			 &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
			 &tm.tm_sec, &ms) != 7)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (long long)timegm(&tm) * 1000 + ms;
}

static int ev_deadlines(const char *err, struct ev_dl *v, int max)
{
	int n = 0;

	for (const char *p = err; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);
		char line[1024];

		if (l >= sizeof(line))
			l = sizeof(line) - 1;
		memcpy(line, p, l);
		line[l] = '\0';
		p = nl ? nl + 1 : NULL;
		/* Not always at the start of a line: wget, for one, is in
		 * the middle of a progress message when it fires. */
		if (!strstr(line, "libdeadline: ") ||
		    !strstr(line, " event=deadline"))
			continue;
		if (n < max) {
			const char *ph = strstr(line, " phase=");

			memset(&v[n], 0, sizeof(v[n]));
			if (ph)
				sscanf(ph + 7, "%15s", v[n].phase);
			v[n].limit = dl_field(line, " limit_ms=");
			v[n].elapsed = dl_field(line, " elapsed_ms=");
			v[n].port = dl_field(line, " port=");
			v[n].at = ev_line_time(line);
		}
		n++;
	}
	return n;
}

static long long ev_last_expiry_at(const struct dl_result *r)
{
	struct ev_dl d[8];
	int n = ev_deadlines(r->err, d, 8);
	long long last = 0;

	for (int i = 0; i < n && i < 8; i++) {
		if (!d[i].at)
			return 0;
		if (d[i].at > last)
			last = d[i].at;
	}
	return last;
}

/* How long after its last expiry line (time=) the program r ended, in
 * ms (a little below 0 is rounding); EV_NO_EXPIRY when no line says. */
#define EV_NO_EXPIRY LONG_MIN

static long ev_after_expiry(const struct dl_result *r)
{
	long long at = ev_last_expiry_at(r);

	return at ? (long)(r->t0_wall_ms + r->ms - at) : EV_NO_EXPIRY;
}

/* A whole program's run against a deadline of limit: it did not end
 * before limit, and it ended at most the slack after the shim's last
 * expiry, once the time its main thread waited on the run queue is taken
 * off.  Counted from the expiry, not from the start: a program's start-up
 * on a busy machine (loading its libraries from a cold page cache) is not
 * the shim's, and the expiry's own timing is held to the log's
 * elapsed_ms (ev_assert_one_deadline).  Without an expiry line, the
 * whole run against [limit, limit + slack]. */
static int ev_wall_within(const struct dl_result *r, long limit)
{
	long after = ev_after_expiry(r);

	if (after == EV_NO_EXPIRY)
		return dl_rq_within(r, r->ms, limit, ev_slack());
	return r->ms >= limit && after - r->rq_ms <= ev_slack();
}

/* Exactly one expiry, in phase, after [limit, limit + EV_SLACK]. */
static void ev_assert_one_deadline(const struct dl_result *r,
				   const char *phase, long limit)
{
	struct ev_dl d[4];
	int n = ev_deadlines(r->err, d, 4);

	dl_assert_run(r, n == 1, "expected one libdeadline expiry line, got %d",
		      n);
	dl_assert_run(r, !strcmp(d[0].phase, phase) && d[0].limit == limit,
		      "expected phase=%s limit_ms=%ld", phase, limit);
	dl_assert_run(r, ev_within(r, d[0].elapsed, limit),
		      "the log says elapsed_ms=%ld, outside [%ld,%ld] (%ld ms "
		      "on the run queue)",
		      d[0].elapsed, limit, limit + ev_slack(), r->rq_ms);
}

static void ev_assert_no_deadline(const struct dl_result *r)
{
	struct ev_dl d[1];

	dl_assert_run(r, ev_deadlines(r->err, d, 1) == 0,
		      "a deadline fired where none should");
}

/* A run without the shim must still be going at ms: killed by its hard
 * timeout (or, if it ended on its own, no earlier than ms). */
static void ev_assert_hung(const struct dl_result *r, long ms)
{
	dl_assert_run(r, r->timed_out || r->ms >= ms,
		      "without the shim the program should still be running "
		      "at %ld ms", ms);
}

/* ================================================================== */
/* 1. curl against stalling HTTP servers                               */
/* ================================================================== */

/* curl, neither reading ~/.curlrc nor honouring a proxy variable. */
#define CURL(...) DL_V("curl", "-q", "-sS", "--noproxy", "*", __VA_ARGS__)

static const char *url(const struct dl_server *s, const char *scheme,
		       const char *path)
{
	static char bufs[4][128];
	static int next;
	char *p = bufs[next++ % 4];

	dl_fmt(p, 128, "%s://127.0.0.1:%d%s", scheme, s->port, path);
	return p;
}

/* The ASan run (tests/run-suite SAN=asan) preloads the ASan runtime into
 * every program it runs under the shim.  Debian's curl then deadlocks in
 * its own second setlocale() call at start-up (on glibc's setlocale lock,
 * under ASan's interceptors) before it opens a socket: with the runtime
 * alone, without the shim, just the same.  Those runs cannot say anything
 * about the shim, so the curl tests are skipped there. */
static void need_curl(void)
{
	const char *extra = getenv("DL_PRELOAD_EXTRA");

	dl_require_shim();
	if (extra && strstr(extra, "libasan"))
		cr_skip_test("curl deadlocks in setlocale() with the ASan "
			     "runtime preloaded, shim or not");
}

static int curl_timeout_error(const struct dl_result *r)
{
	return r->exited && (r->code == 28 || r->code == 56) &&
	       strstr(r->err, "timed out");
}

/* curl against s under the shim, with env arming the deadline of phase:
 * it fails as ok() says within [limit_ms, limit_ms + slack], with one log
 * line for that phase, while the same curl without the shim, started at
 * the same time, is still waiting at 3 s. */
static void curl_fires_where_native_hangs(struct dl_server *s, const char *env,
					  const char *phase, long limit_ms,
					  int (*ok)(const struct dl_result *),
					  const char *what)
{
	struct dl_result r, n;
	struct ev_bg bg;

	ev_bg_start(&bg, "native", CURL("-o", "/dev/null", url(s, "http", "/")),
		    NULL, 0);
	dl_run(&r, CURL("-o", "/dev/null", url(s, "http", "/")), DL_V(env), 1,
	       5000);
	dl_assert_run(&r, ok(&r), "curl should fail %s", what);
	dl_assert_run(&r, ev_wall_within(&r, limit_ms),
		      "curl ended after %ld ms, %ld after the expiry (%ld on the "
		      "run queue): want >= %ld and <= %ld after", r.ms,
		      ev_after_expiry(&r), r.rq_ms, limit_ms, ev_slack());
	ev_assert_one_deadline(&r, phase, limit_ms);
	ev_bg_finish(&bg, &n, 3000);
	ev_assert_hung(&n, 3000);
}

static int curl_connect_error(const struct dl_result *r)
{
	return r->exited && (r->code == 28 || r->code == 7);
}

/* (a) The accept queue is full: SYNs are dropped, connect never ends. */
Test(eventloop, curl_connect_backlog)
{
	need_curl();
	curl_fires_where_native_hangs(dl_stallsrv("backlog", NULL),
				      "DEADLINE_CONNECT_TIMEOUT=500ms",
				      "connect", 500, curl_connect_error,
				      "to connect (exit 28 or 7)");
}

/* (b) Accepts, reads the request, never answers. */
Test(eventloop, curl_request_silent)
{
	need_curl();
	curl_fires_where_native_hangs(dl_stallsrv("silent", NULL),
				      "DEADLINE_REQUEST_TIMEOUT=1s", "request",
				      1000, curl_timeout_error,
				      "with a timeout error");
}

/* (c) Answers 3 s after the request (which came after the native run
 * started: at 3 s the native curl is still waiting). */
Test(eventloop, curl_first_byte_slow)
{
	need_curl();
	curl_fires_where_native_hangs(dl_stallsrv("delay", "--ms", "3000",
						  NULL),
				      "DEADLINE_FIRST_BYTE_TIMEOUT=700ms",
				      "first_byte", 700, curl_timeout_error,
				      "with a timeout error");
}

/* (d) A body byte every 100 ms for 1.5 s: an idle limit of 500 ms never
 * fires and the body arrives whole, as without the shim. */
Test(eventloop, curl_idle_drip_completes)
{
	struct dl_result r, n;
	struct ev_bg bg;
	struct dl_server *s;

	need_curl();
	s = dl_stallsrv("drip", "--ms", "100", "--count", "15", NULL);
	ev_bg_start(&bg, "native", CURL(url(s, "http", "/")), NULL, 0);
	dl_run(&r, CURL(url(s, "http", "/")),
	       DL_V("DEADLINE_IDLE_TIMEOUT=500ms"), 1, 8000);
	dl_assert_ok(&r, "curl under the shim");
	dl_assert_run(&r, !strcmp(r.out, "abcdefghijklmno"),
		      "the dripped body is incomplete");
	dl_assert_run(&r, r.ms >= 1500, "the drip cannot end before 1.5 s");
	ev_assert_no_deadline(&r);
	ev_bg_finish(&bg, &n, 8000);
	dl_assert_ok(&n, "native curl");
	dl_assert_run(&n, !strcmp(n.out, r.out),
		      "native curl got a different body");
}

/* The other half of (d): the same limit must fire when the body stalls.
 * Headers arrive at once, then one byte every 2 s: 500 ms after the
 * headers, nothing has moved on the socket for 500 ms.
 *
 * curl never reads before poll() says the socket is readable, so its
 * reads never return EAGAIN: the wait on the socket happens in curl's own
 * poll().  Without this test, (d) could not fail because of idle: an idle
 * limit that is never armed never fires early either. */
Test(eventloop, curl_idle_fires_on_stalled_body)
{
	struct dl_result r;
	struct dl_server *s;

	need_curl();
	s = dl_stallsrv("drip", "--ms", "2000", "--count", "3", NULL);
	dl_run(&r, CURL("-o", "/dev/null", url(s, "http", "/")),
	       DL_V("DEADLINE_IDLE_TIMEOUT=500ms"), 1, 8000);
	dl_assert_run(&r, r.exited && r.code != 0 && !r.timed_out,
		      "curl should fail: the body stalled for 2 s");
	dl_assert_run(&r, strstr(r.err, "timed out") != NULL,
		      "curl should report a timeout");
	dl_assert_run(&r, ev_wall_within(&r, 500),
		      "curl ended after %ld ms, %ld after the expiry (%ld on the "
		      "run queue): want >= 500 and <= %ld after", r.ms,
		      ev_after_expiry(&r), r.rq_ms, ev_slack());
	ev_assert_one_deadline(&r, "idle", 500);
}

/* ================================================================== */
/* 2. HTTPS: curl -k against a TLS server that stalls                  */
/* ================================================================== */

/* A throwaway self-signed certificate in this test's temp dir. */
static void make_cert(char *cert, char *key)
{
	struct dl_result r;

	dl_fmt(cert, PATH_MAX, "%s/cert.pem", dl_tmpdir());
	dl_fmt(key, PATH_MAX, "%s/key.pem", dl_tmpdir());
	dl_run(&r, DL_V("openssl", "req", "-x509", "-newkey", "rsa:2048",
			"-nodes", "-subj", "/CN=localhost", "-days", "1",
			"-keyout", key, "-out", cert),
	       NULL, 0, 30000);
	dl_assert_ok(&r, "openssl req");
}

static struct dl_server *tls_server(const char *mode, const char *delay_ms)
{
	char cert[PATH_MAX], key[PATH_MAX];

	make_cert(cert, key);
	return ev_server(DL_V("python3", dl_src("tests/helpers/tlsstall.py"),
			      mode, "--cert", cert, "--key", key, "--delay",
			      delay_ms, "--lifetime", "60"));
}

/* What the TLS server printed about the connection: its RX timestamps
 * (the last one is when the client's last turn reached it) and how and
 * when the connection ended.  Times are ns, CLOCK_MONOTONIC. */
struct tls_log {
	int nrx;
	uint64_t accept, last_rx, end;
	char how[8];
	const char *text;
};

/* Read the server's lines up to its END line (waiting up to 2 s) into
 * copy, and parse them. */
static void tls_collect(struct dl_server *s, struct tls_log *t,
			char *copy, size_t cap)
{
	const char *end_line;

	memset(t, 0, sizeof(*t));
	for (int i = 0; i < 200; i++) {
		const char *end = dl_line(s->buf, "END ");

		if (end && strchr(end, '\n'))
			break;
		dl_server_fill(s, 10);
	}
	dl_fmt(copy, cap, "%s", s->buf);
	t->text = copy;
	for (const char *p = copy; (p = dl_line(p, "RX ")); p++) {
		uint64_t ts = 0;

		if (sscanf(p, "RX %*d %" SCNu64, &ts) == 1) {
			t->nrx++;
			t->last_rx = ts;
		}
	}
	if ((end_line = dl_line(copy, "ACCEPT ")))
		sscanf(end_line, "ACCEPT %" SCNu64, &t->accept);
	if ((end_line = dl_line(copy, "END ")))
		sscanf(end_line, "END %7s %" SCNu64, t->how, &t->end);
}

/* curl -k against the TLS server with a request limit; checks common to
 * the stall cases.  Returns the client's end time (ns). */
static uint64_t tls_stall_run(struct dl_server *s, struct dl_result *r,
			      struct tls_log *t, char *copy, size_t cap,
			      long limit)
{
	char env[64];
	uint64_t t0;

	dl_fmt(env, sizeof(env), "DEADLINE_REQUEST_TIMEOUT=%ldms", limit);
	t0 = ev_run(r, CURL("-k", "-o", "/dev/null", url(s, "https", "/")),
		    DL_V(env), 1, 5000);
	dl_assert_run(r, r->exited && r->code != 0 && !r->timed_out,
		      "curl should exit with an error");
	dl_assert_run(r, strstr(r->err, "timed out") != NULL,
		      "curl should report a timeout");
	ev_assert_one_deadline(r, "request", limit);
	tls_collect(s, t, copy, cap);
	dl_assert_run(r, t->nrx > 0 && t->end,
		      "server log incomplete:\n%s", t->text);
	dl_assert_run(r, !strcmp(t->how, "rst"),
		      "the server should see the connection reset, saw '%s'",
		      t->how);
	return t0 + (uint64_t)r->ms * 1000000u;
}

/* Measured from the start of the client's last turn (its last write
 * after a read, which restarts the request deadline: the documented
 * approximation), the client must end and the server must see the reset
 * within [limit, limit + EV_SLACK].  The server's receive time stands in
 * for the turn's start; it can only be later, by the loopback delivery
 * and the server's own scheduling, so the lower bound allows 50 ms. */
static void tls_assert_from_last_turn(const struct dl_result *r,
				      const struct tls_log *t, uint64_t t_end,
				      long limit)
{
	long client = (long)((int64_t)(t_end - t->last_rx) / 1000000);
	long server = (long)((int64_t)(t->end - t->last_rx) / 1000000);

	dl_assert_run(r, client >= limit - 50 && client <= limit + ev_slack(),
		      "curl ended %ld ms after its last turn, outside "
		      "[%ld,%ld]\nserver:\n%s",
		      client, limit - 50, limit + ev_slack(), t->text);
	dl_assert_run(r, server >= limit - 50 && server <= limit + ev_slack(),
		      "the server saw the reset %ld ms after the last turn, "
		      "outside [%ld,%ld]\nserver:\n%s",
		      server, limit - 50, limit + ev_slack(), t->text);
}

/* (i) The server reads the ClientHello and goes silent: one turn, the
 * request deadline runs from connect. */
Test(eventloop, tls_stall_after_client_hello)
{
	struct dl_result r;
	struct tls_log t;
	char copy[8192];
	struct dl_server *s;
	uint64_t t_end;

	need_curl();
	s = tls_server("hello", "0");
	t_end = tls_stall_run(s, &r, &t, copy, sizeof(copy), 800);
	dl_assert_run(&r, t.nrx == 1 &&
			      dl_line(copy, "STALL before-server-hello"),
		      "expected only the ClientHello:\n%s", copy);
	tls_assert_from_last_turn(&r, &t, t_end, 800);
	/* One turn: the deadline ran from connect, i.e. about from accept
	 * (which the server may notice a little late). */
	{
		long ms = (long)((t.end - t.accept) / 1000000);

		dl_assert_run(&r, ms >= 800 - 50 && ms <= 800 + ev_slack(),
			      "the server saw the reset %ld ms after accept, "
			      "outside [750,%ld]\nserver:\n%s",
			      ms, 800 + ev_slack(), copy);
	}
}

/* (i) TLS 1.2, the server's first flight comes 300 ms late, then the
 * server never sends its Finished: the client's second flight opens a new
 * turn, so the deadline fires 800 ms after that, not after connect. */
Test(eventloop, tls12_stall_mid_handshake)
{
	struct dl_result r;
	struct tls_log t;
	char copy[8192];
	struct dl_server *s;
	uint64_t t_end;

	need_curl();
	s = tls_server("hs12", "300");
	t_end = tls_stall_run(s, &r, &t, copy, sizeof(copy), 800);
	dl_assert_run(&r, t.nrx >= 2 &&
			      dl_line(copy, "STALL before-server-finished"),
		      "the client's second flight never came:\n%s", copy);
	tls_assert_from_last_turn(&r, &t, t_end, 800);
	dl_assert_run(&r, (t.end - t.accept) / 1000000 >= 300 + 800,
		      "the deadline did not restart at the client's second "
		      "flight:\n%s", copy);
}

/* (ii) The handshake completes, the request is never answered. */
Test(eventloop, tls_request_never_answered)
{
	struct dl_result r;
	struct tls_log t;
	char copy[8192];
	struct dl_server *s;
	uint64_t t_end;

	need_curl();
	s = tls_server("req", "0");
	t_end = tls_stall_run(s, &r, &t, copy, sizeof(copy), 800);
	dl_assert_run(&r, dl_line(copy, "STALL after-request") != NULL,
		      "the request never reached the server:\n%s", copy);
	tls_assert_from_last_turn(&r, &t, t_end, 800);
}

/* A TLS server that answers: same output with and without the shim. */
Test(eventloop, tls_healthy_same_output)
{
	struct dl_result r, n;
	struct dl_server *s;

	need_curl();
	s = tls_server("ok", "0");
	dl_run(&n, CURL("-k", url(s, "https", "/")), NULL, 0, 10000);
	dl_assert_ok(&n, "native curl");
	dl_assert_run(&n, !strcmp(n.out, "hello\n"), "unexpected body");
	dl_run(&r, CURL("-k", url(s, "https", "/")),
	       DL_V("DEADLINE_CONNECT_TIMEOUT=2s", "DEADLINE_FIRST_BYTE_TIMEOUT=2s",
		    "DEADLINE_IDLE_TIMEOUT=2s", "DEADLINE_REQUEST_TIMEOUT=2s"),
	       1, 10000);
	dl_assert_ok(&r, "curl under the shim");
	dl_assert_run(&r, !strcmp(r.out, n.out), "output differs from native");
	ev_assert_no_deadline(&r);
}

/* ================================================================== */
/* 3. python3 asyncio, redis-cli, nc, wget                             */
/* ================================================================== */

static const char *const healthy_env[] = {
	"DEADLINE_CONNECT_TIMEOUT=500ms", "DEADLINE_FIRST_BYTE_TIMEOUT=700ms",
	"DEADLINE_IDLE_TIMEOUT=700ms", "DEADLINE_REQUEST_TIMEOUT=700ms", NULL,
};

Test(eventloop, asyncio_request_silent)
{
	struct dl_result r;
	struct dl_server *s;
	long ms = -1;
	int e = 0;
	char cls[64] = "";

	dl_require_shim();
	s = dl_stallsrv("silent", NULL);
	dl_run(&r, DL_V("python3", dl_src("tests/helpers/aioclient.py"), LO,
			s->port_s),
	       DL_V("DEADLINE_REQUEST_TIMEOUT=700ms"), 1, 10000);
	dl_assert_run(&r, sscanf(r.out, "ERR %63s %d %ld", cls, &e, &ms) == 3,
		      "asyncio should report an error");
	dl_assert_run(&r, !strcmp(cls, "TimeoutError") && e == ETIMEDOUT,
		      "expected TimeoutError with errno 110");
	dl_assert_run(&r, ev_within(&r, ms, 700),
		      "asyncio failed after %ld ms (from open_connection), "
		      "outside [700,%ld] (%ld ms on the run queue)", ms,
		      700 + ev_slack(), r.rq_ms);
	ev_assert_one_deadline(&r, "request", 700);
}

Test(eventloop, asyncio_healthy_same_output)
{
	struct dl_result r, n;
	struct dl_server *s;
	const char *argv[] = { "python3", dl_src("tests/helpers/aioclient.py"),
			       LO, NULL, NULL };

	dl_require_shim();
	s = dl_stallsrv("echo", NULL);
	argv[3] = s->port_s;
	dl_run(&n, argv, NULL, 0, 10000);
	dl_run(&r, argv, healthy_env, 1, 10000);
	dl_assert_ok(&n, "native asyncio client");
	dl_assert_run(&n, !strcmp(n.out, "OK b'ping\\n'\n"), "bad echo");
	dl_assert_ok(&r, "asyncio client under the shim");
	dl_assert_run(&r, !strcmp(r.out, n.out), "output differs from native");
	ev_assert_no_deadline(&r);
}

/* redis-cli gives up after a failed connect and, for a command given on
 * the command line, may try once more: one or two connect expiries, each
 * on time, and nothing else. */
Test(eventloop, redis_cli_connect_backlog)
{
	struct dl_result r;
	struct ev_dl d[4];
	struct dl_server *s;
	int n;

	dl_require_shim();
	s = dl_stallsrv("backlog", NULL);
	dl_run(&r, DL_V("redis-cli", "-h", LO, "-p", s->port_s, "ping"),
	       DL_V("DEADLINE_CONNECT_TIMEOUT=500ms"), 1, 5000);
	dl_assert_run(&r, !r.timed_out && r.exited, "redis-cli hung");
	dl_assert_run(&r, strstr(r.out, "Connection timed out") ||
				  strstr(r.err, "Connection timed out"),
		      "redis-cli should say 'Connection timed out'");
	n = ev_deadlines(r.err, d, 4);
	dl_assert_run(&r, n == 1 || n == 2, "expected 1 or 2 expiries, got %d",
		      n);
	for (int i = 0; i < n; i++)
		dl_assert_run(&r, !strcmp(d[i].phase, "connect") &&
					  d[i].limit == 500 &&
					  ev_within(&r, d[i].elapsed, 500),
			      "expiry %d: want phase=connect elapsed in "
			      "[500,%ld] (%ld ms on the run queue)", i,
			      500 + ev_slack(), r.rq_ms);
	dl_assert_run(&r, ev_wall_within(&r, 500L * n),
		      "%d connect attempt(s) of 500 ms took %ld ms, ending %ld "
		      "after the last expiry (%ld on the run queue)", n, r.ms,
		      ev_after_expiry(&r), r.rq_ms);
}

/* redis-server on a port the kernel picked a moment ago (it cannot bind
 * port 0 and say which it got); another try on a new port if someone
 * took that one meanwhile. */
static int start_redis(void)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		int port = dl_free_port();
		char ps[16], log[32], path[PATH_MAX];
		pid_t pid;

		dl_fmt(ps, sizeof(ps), "%d", port);
		dl_fmt(log, sizeof(log), "redis%d.log", attempt);
		dl_fmt(path, sizeof(path), "%s/%s", dl_tmpdir(), log);
		pid = dl_daemon(DL_V("redis-server", "--port", ps, "--bind",
				     LO, "--save", "", "--appendonly", "no",
				     "--protected-mode", "no", "--dir",
				     dl_tmpdir()),
				dl_tmpdir(), log);
		for (int i = 0; i < 100; i++) {
			char *text = dl_read_file(path);
			int ready = strstr(text, "Ready to accept") != NULL;

			free(text);
			if (ready)
				return port;
			if (waitpid(pid, NULL, WNOHANG) == pid)
				break; /* could not bind: try another */
			hp_sleep_ms(50);
		}
	}
	cr_assert_fail("redis-server did not start");
	return -1;
}

Test(eventloop, redis_cli_healthy_same_output)
{
	static const char *const cmds[][4] = {
		{ "ping", NULL }, { "set", "evloop:k", "v1", NULL },
		{ "get", "evloop:k", NULL }, { "echo", "hello", NULL },
	};
	static const char *const want[] = { "PONG\n", "OK\n", "v1\n",
					    "hello\n" };
	char ps[16];

	dl_require_shim();
	dl_fmt(ps, sizeof(ps), "%d", start_redis());
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const char *argv[10] = { "redis-cli", "-h", LO, "-p", ps };
		struct dl_result r, n;
		int k = 5;

		for (int j = 0; cmds[i][j]; j++)
			argv[k++] = cmds[i][j];
		argv[k] = NULL;
		dl_run(&n, argv, NULL, 0, 10000);
		dl_run(&r, argv, healthy_env, 1, 10000);
		dl_assert_ok(&n, "native redis-cli");
		dl_assert_run(&n, !strcmp(n.out, want[i]), "redis-cli %s",
			      cmds[i][0]);
		dl_assert_ok(&r, "redis-cli under the shim");
		dl_assert_run(&r, !strcmp(r.out, n.out),
			      "%s: output differs from native", cmds[i][0]);
		ev_assert_no_deadline(&r);
	}
}

/* nc (netcat-openbsd) polls stdin and the socket; on POLLERR/POLLHUP it
 * ends the connection and exits quietly (status 0), so the proof is the
 * timing and the log line.  stdin is /dev/null: without the shim nc waits
 * for the server forever. */
Test(eventloop, nc_request_silent)
{
	struct dl_result r, n;
	struct ev_bg bg;
	struct dl_server *s;

	dl_require_shim();
	s = dl_stallsrv("silent", NULL);
	ev_bg_start(&bg, "native", DL_V("nc", LO, s->port_s), NULL, 0);
	dl_run(&r, DL_V("nc", LO, s->port_s),
	       DL_V("DEADLINE_REQUEST_TIMEOUT=700ms"), 1, 5000);
	dl_assert_run(&r, r.exited && !r.timed_out, "nc should end");
	dl_assert_run(&r, ev_wall_within(&r, 700),
		      "nc ended after %ld ms, %ld after the expiry (%ld on the "
		      "run queue): want >= 700 and <= %ld after", r.ms,
		      ev_after_expiry(&r), r.rq_ms, ev_slack());
	ev_assert_one_deadline(&r, "request", 700);
	ev_bg_finish(&bg, &n, 1500);
	ev_assert_hung(&n, 1500);
}

Test(eventloop, nc_healthy_same_output)
{
	struct dl_result r, n;
	struct dl_server *s;
	char in[PATH_MAX], cmd[PATH_MAX + 64];
	int fd;

	dl_require_shim();
	s = dl_stallsrv("echo", NULL);
	dl_fmt(in, sizeof(in), "%s/nc.in", dl_tmpdir());
	fd = ev_open_out(in);
	cr_assert(write(fd, "hello\nworld\n", 12) == 12, "write %s", in);
	close(fd);
	/* -N: shut the socket down at the end of stdin; the echo server
	 * then closes, and nc exits. */
	dl_fmt(cmd, sizeof(cmd), "exec nc -N %s %d < '%s'", LO, s->port, in);
	dl_run(&n, DL_V("sh", "-c", cmd), NULL, 0, 10000);
	dl_run(&r, DL_V("sh", "-c", cmd), healthy_env, 1, 10000);
	dl_assert_ok(&n, "native nc");
	dl_assert_run(&n, !strcmp(n.out, "hello\nworld\n"), "bad echo");
	dl_assert_ok(&r, "nc under the shim");
	dl_assert_run(&r, !strcmp(r.out, n.out), "output differs from native");
	ev_assert_no_deadline(&r);
}

/* wget -t 1: one try, the read waits in select(). */
#define WGET(...) DL_V("wget", "--no-config", "--no-proxy", "-t", "1", \
		       __VA_ARGS__)

Test(eventloop, wget_request_silent)
{
	struct dl_result r, n;
	struct ev_bg bg;
	struct dl_server *s;

	dl_require_shim();
	s = dl_stallsrv("silent", NULL);
	ev_bg_start(&bg, "native", WGET("-O", "/dev/null", url(s, "http", "/")),
		    NULL, 0);
	dl_run(&r, WGET("-O", "/dev/null", url(s, "http", "/")),
	       DL_V("DEADLINE_REQUEST_TIMEOUT=700ms"), 1, 5000);
	dl_assert_run(&r, r.exited && r.code == 4,
		      "wget should fail with a network error (exit 4)");
	dl_assert_run(&r, strstr(r.err, "Connection timed out") != NULL,
		      "wget should report 'Connection timed out'");
	dl_assert_run(&r, ev_wall_within(&r, 700),
		      "wget ended after %ld ms, %ld after the expiry (%ld on the "
		      "run queue): want >= 700 and <= %ld after", r.ms,
		      ev_after_expiry(&r), r.rq_ms, ev_slack());
	ev_assert_one_deadline(&r, "request", 700);
	ev_bg_finish(&bg, &n, 1500);
	ev_assert_hung(&n, 1500);
}

Test(eventloop, wget_healthy_same_output)
{
	struct dl_result r, n;
	struct dl_server *s;

	dl_require_shim();
	s = dl_stallsrv("http", NULL);
	dl_run(&n, WGET("-q", "-O", "-", url(s, "http", "/hello")), NULL, 0,
	       10000);
	dl_run(&r, WGET("-q", "-O", "-", url(s, "http", "/hello")),
	       healthy_env, 1, 10000);
	dl_assert_ok(&n, "native wget");
	dl_assert_run(&n, !strcmp(n.out, "hello\n"), "unexpected body");
	dl_assert_ok(&r, "wget under the shim");
	dl_assert_run(&r, !strcmp(r.out, n.out), "output differs from native");
	ev_assert_no_deadline(&r);
}

/* ================================================================== */
/* 4. Transparency: bulk keep-alive, and quiet waits                   */
/* ================================================================== */

#define BIG (50ll << 20)

static void check_pattern(const char *path, uint64_t seed)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	void *m;
	long long bad;

	cr_assert(fd >= 0 && fstat(fd, &st) == 0, "%s: %s", path,
		  strerror(errno));
	cr_assert(st.st_size == BIG, "%s: %lld bytes, want %lld", path,
		  (long long)st.st_size, BIG);
	m = mmap(NULL, (size_t)BIG, PROT_READ, MAP_PRIVATE, fd, 0);
	cr_assert(m != MAP_FAILED, "mmap: %s", strerror(errno));
	bad = hp_pattern_check(seed, 0, m, (size_t)BIG);
	munmap(m, (size_t)BIG);
	close(fd);
	cr_assert(bad < 0, "%s differs from the server's stream at byte %lld",
		  path, bad);
}

/* Two 50 MB bodies over one keep-alive connection, with four generous
 * deadlines armed (so every wait goes through the shim): byte-identical
 * to the native run, one connection (num_connects 1 then 0). */
Test(eventloop, curl_keepalive_50mb_identical, .timeout = 90)
{
	struct dl_result r, n, h;
	struct dl_server *s;
	const char *d = dl_tmpdir();
	char f[4][PATH_MAX], hs[4][65];

	need_curl();
	s = dl_stallsrv("http", "--seed", "7", NULL);
	for (int i = 0; i < 4; i++)
		dl_fmt(f[i], PATH_MAX, "%s/body%d", d, i);
	dl_run(&n, CURL("-w", "%{num_connects}\\n",
			"-o", f[0], url(s, "http", "/bytes/52428800"),
			"-o", f[1], url(s, "http", "/bytes/52428800")),
	       NULL, 0, 60000);
	dl_run(&r, CURL("-w", "%{num_connects}\\n",
			"-o", f[2], url(s, "http", "/bytes/52428800"),
			"-o", f[3], url(s, "http", "/bytes/52428800")),
	       DL_V("DEADLINE_CONNECT_TIMEOUT=30s",
		    "DEADLINE_FIRST_BYTE_TIMEOUT=30s",
		    "DEADLINE_IDLE_TIMEOUT=30s", "DEADLINE_REQUEST_TIMEOUT=30s"),
	       1, 60000);
	dl_assert_ok(&n, "native curl");
	dl_assert_ok(&r, "curl under the shim");
	dl_assert_run(&n, !strcmp(n.out, "1\n0\n"),
		      "native: the second body did not reuse the connection");
	dl_assert_run(&r, !strcmp(r.out, "1\n0\n"),
		      "under the shim: the second body did not reuse the "
		      "connection");
	ev_assert_no_deadline(&r);

	dl_run(&h, DL_V("sha256sum", f[0], f[1], f[2], f[3]), NULL, 0, 60000);
	dl_assert_ok(&h, "sha256sum");
	{
		const char *p = h.out;

		for (int i = 0; i < 4; i++) {
			cr_assert(p && sscanf(p, "%64s", hs[i]) == 1,
				  "sha256sum output: %s", h.out);
			p = strchr(p, '\n');
			p = p ? p + 1 : p;
		}
	}
	cr_assert_str_eq(hs[2], hs[0], "first body differs from native");
	cr_assert_str_eq(hs[3], hs[1], "second body differs from native");
	check_pattern(f[2], 7);
	check_pattern(f[3], 7);
}

/* poll/ppoll/select/epoll_wait/epoll_pwait(..., 100 ms) on fds where
 * nothing happens, while three deadlines on other sockets fire 40, 50
 * and 60 ms into the wait: the shim cuts the wait there, but the program
 * must see a plain timeout, after 100 ms (never earlier) and not much
 * later: at most 20 ms, net of the time the machine kept the process
 * from running.  The wrong ways of resuming a cut wait are all later
 * than that (waiting the whole timeout again ends at 140-160 ms); how
 * close to 100 ms the wait ends on an idle machine is a speed figure,
 * measured by `make bench`, not asserted here. */
Test(eventloop, quiet_waits_last_their_timeout)
{
	struct dl_result r;
	struct dl_server *s;
	struct ev_dl d[64];
	int lines = 0, nd;

	dl_require_shim();
	s = dl_stallsrv("silent", NULL);
	dl_run(&r, DL_V(dl_helper("evclient"), "quietwait", LO, s->port_s,
			"--iters", "3", "--armed", "3", "--gap", "10", "--wait",
			"100"),
	       DL_V("DEADLINE_REQUEST_TIMEOUT=60ms"), 1, 20000);
	dl_assert_ok(&r, "evclient quietwait");
	for (const char *p = r.out; (p = dl_line(p, "WAIT ")); p++) {
		char call[16] = "", err[32] = "";
		int it, ret, quiet, exp, armed;
		long us, ex, rq, st;

		lines++;
		dl_assert_run(&r,
			      sscanf(p, "WAIT %15s %d r=%d errno=%31s us=%ld "
					"excuse_us=%ld rq_us=%ld steal_us=%ld "
					"cpu_us=%*d quiet=%d expired=%d/%d",
				     call, &it, &ret, err, &us, &ex, &rq, &st,
				     &quiet, &exp, &armed) == 11,
			      "bad WAIT line");
		dl_assert_run(&r, ret == 0 && quiet,
			      "%s #%d: returned %d (%s), quiet=%d: the early "
			      "internal wake-up is visible", call, it, ret, err,
			      quiet);
		dl_assert_run(&r, us >= 100000,
			      "%s #%d returned after %ld us, before its 100 ms",
			      call, it, us);
		dl_assert_run(&r, us - ex <= 120000,
			      "%s #%d returned after %ld us, of which %ld us "
			      "the machine kept it from running (run queue %ld, "
			      "steal %ld): more than 20 ms late",
			      call, it, us, ex, rq, st);
		dl_assert_run(&r, exp == armed,
			      "%s #%d: only %d of %d deadlines fired", call, it,
			      exp, armed);
	}
	dl_assert_run(&r, lines == 15, "expected 15 waits, saw %d", lines);
	nd = ev_deadlines(r.err, d, 64);
	dl_assert_run(&r, nd == 45, "expected 45 expiries, got %d", nd);
}

/* ================================================================== */
/* 5. 1,000 connections, each with its own deadline, in one epoll loop */
/* ================================================================== */

/* The limit is one value per process, so evclient opens the connections
 * one per millisecond: 1,000 distinct absolute deadlines spread over a
 * second, all pending at once in one epoll_wait loop.  Each fd must
 * report EPOLLERR|EPOLLHUP in that loop and read() then ETIMEDOUT, in
 * deadline order, no earlier than its limit and at most 10 ms after it,
 * less the time the machine kept the loop from running.  "After it" is
 * counted from the end of the call that started the deadline (the shim
 * reads its clock inside that call: a thread preempted there starts its
 * deadline later, by time the machine took 500 ms before).  When the machine
 * did stall the loop (by more than 10 ms), the loop's own CPU time over
 * the same stretch is excused too: it spends it working off the backlog
 * of connects and exchanges that piled up meanwhile.  Without a stall,
 * the loop's (and so the shim's) CPU time is never excused.
 *
 * "Connections without a deadline keep working meanwhile": the same loop
 * keeps three channels busy, one exchange every 5 ms, and all must work
 * throughout and after the last expiry, and none may be logged:
 *   - an AF_UNIX socketpair and a connected UDP pair: not TCP, so the shim
 *     must pass them through untouched (a deadline can never apply);
 *   - a TCP connection to an echo server: it is tracked and under the very
 *     same limit, but every exchange is a new request (write after read)
 *     and moves bytes, so neither a request nor an idle limit may ever
 *     fire on it although it lives three times the limit.  That is the
 *     "no deadline pending" case that matters for an event loop: expiries
 *     around it must not disturb it. */
/* The run's summary lines and first expiry lines: its full output is
 * thousands of lines. */
static const char *many_digest(const struct dl_result *r)
{
	static char buf[4096];
	size_t len = 0;
	int errs = 0;

	buf[0] = '\0';
	for (const char *p = r->out; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p + 1) : strlen(p);

		if (strncmp(p, "EXP ", 4) && len + l < sizeof(buf) - 512) {
			memcpy(buf + len, p, l);
			len += l;
		}
		p += l;
	}
	for (const char *p = r->err; p && *p && errs < 3; errs++) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p + 1) : strlen(p);

		if (len + l >= sizeof(buf) - 1)
			break;
		memcpy(buf + len, p, l);
		len += l;
		p += l;
	}
	buf[len] = '\0';
	return buf;
}

#define many_assert(r, cond, fmt, ...)					\
	cr_assert(cond, fmt "\n[exit=%d timed_out=%d %ld ms]\n%s",	\
		  ##__VA_ARGS__, (r)->code, (r)->timed_out, (r)->ms,	\
		  many_digest(r))

static void many_run(const char *arm, const char *env, const char *phase)
{
	struct dl_result r;
	struct dl_server *silent, *echo;
	struct rlimit rl;
	const char *sum, *alive, *worst = NULL;
	long n, rep, eto, eh, inorder, min_lat, span, unix_n, udp_n, tcp_n,
		bad, last_tcp, max_event = 0, worst_excess = -1;
	int nd;
	struct ev_dl *d;
	char port_eq[32];

	dl_require_shim();
	/* stallsrv holds 1,000 connections too. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
		rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	silent = dl_stallsrv("silent", NULL);
	echo = dl_stallsrv("echo", NULL);
	dl_run(&r, DL_V(dl_helper("evclient"), "many", LO, silent->port_s,
			"--echo", echo->port_s, "--n", "1000", "--every-us",
			"1000", "--limit", "500", "--arm", arm),
	       DL_V(env), 1, 20000);
	many_assert(&r, r.exited && r.code == 0 && !dl_sanitizer_report(&r),
		    "evclient many failed");
	sum = dl_line(r.out, "SUMMARY ");
	alive = dl_line(r.out, "ALIVE ");
	many_assert(&r, sum && alive, "no SUMMARY/ALIVE line");
	many_assert(&r, !dl_line(r.out, "BAD "), "the client saw something "
		    "unexpected");
	n = dl_field(sum, " n=");
	rep = dl_field(sum, " reported=");
	eto = dl_field(sum, " etimedout=");
	eh = dl_field(sum, " errhup=");
	inorder = dl_field(sum, " inorder=");
	min_lat = dl_field(sum, " min_lat_us=");
	span = dl_field(sum, " span_us=");
	many_assert(&r, n == 1000 && rep == 1000,
		    "%ld of 1000 connections reported an expiry", rep);
	many_assert(&r, eh == 1000,
		    "only %ld fds reported EPOLLERR|EPOLLHUP", eh);
	many_assert(&r, eto == 1000,
		    "only %ld reads failed with ETIMEDOUT", eto);
	many_assert(&r, inorder == 1, "expiries came out of deadline order");
	many_assert(&r, span >= 900000,
		    "connections were not spread out (%ld us)", span);
	many_assert(&r, min_lat >= 500000,
		    "a connection expired %ld us after its start, before "
		    "its 500 ms", min_lat);
	many_assert(&r, strstr(r.out, " late_us="), "no late_us in the EXP "
		    "lines");
	for (const char *p = r.out; (p = dl_line(p, "EXP ")); p++) {
		long late = dl_field(p, " late_us=");
		long ex = dl_field(p, " excuse_us=");
		long cpu = dl_field(p, " cpu_us=");
		long ev = dl_field(p, " event_us=");

		if (ex > 10000)
			ex += cpu;
		if (late - ex > worst_excess) {
			worst_excess = late - ex;
			worst = p;
		}
		if (ev > max_event)
			max_event = ev;
	}
	many_assert(&r, worst && worst_excess <= 10000,
		    "a connection expired more than 10 ms late: %.*s",
		    worst ? (int)strcspn(worst, "\n") : 0, worst ? worst : "");

	unix_n = dl_field(alive, " unix=");
	udp_n = dl_field(alive, " udp=");
	tcp_n = dl_field(alive, " tcp=");
	bad = dl_field(alive, " bad=");
	last_tcp = dl_field(alive, " last_tcp_us=");
	many_assert(&r, bad == 0, "a live channel failed");
	many_assert(&r, unix_n >= 100 && udp_n >= 100 && tcp_n >= 100,
		    "the live channels stalled (unix %ld, udp %ld, tcp %ld "
		    "exchanges in ~1.5 s)", unix_n, udp_n, tcp_n);
	many_assert(&r, last_tcp >= max_event,
		    "the echo connection did not outlive the expiries");

	d = calloc(1100, sizeof(*d));
	cr_assert(d, "out of memory");
	nd = ev_deadlines(r.err, d, 1100);
	many_assert(&r, nd == 1000, "expected 1000 expiry lines, got %d", nd);
	dl_fmt(port_eq, sizeof(port_eq), " port=%d ", echo->port);
	for (int i = 0; i < nd && i < 1100; i++) {
		many_assert(&r, !strcmp(d[i].phase, phase),
			      "expiry %d has phase %s, want %s", i, d[i].phase,
			      phase);
		many_assert(&r, d[i].port == silent->port,
			      "expiry %d is not on the silent server", i);
	}
	many_assert(&r, !strstr(r.err, port_eq),
		    "the echo connection was logged as expired");
	free(d);
}

Test(eventloop, epoll_1000_request_deadlines)
{
	many_run("connect", "DEADLINE_REQUEST_TIMEOUT=500ms", "request");
}

/* The same with an idle limit only: armed by each connection's first
 * read() that returns EAGAIN (an event loop about to wait). */
Test(eventloop, epoll_1000_idle_deadlines)
{
	many_run("eagain", "DEADLINE_IDLE_TIMEOUT=500ms", "idle");
}
