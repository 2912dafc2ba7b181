/* harness.h - process plumbing for the Criterion integration tests.
 *
 * Criterion runs every test in its own worker process, so the state below
 * (started servers, the temp dir) is per test.  Use it as
 *
 *   TestSuite(core, .init = dl_setup, .fini = dl_teardown, .timeout = 30);
 *
 * Nothing here can hang a test: every command gets a hard timeout after
 * which its whole process group is SIGKILLed, servers carry --lifetime and
 * a parent-death signal, and dl_teardown kills what is left.
 *
 * Environment:
 *   DL_BUILD          build directory (default "build")
 *   DL_PRELOAD_EXTRA  prepended to LD_PRELOAD when the shim is preloaded
 *                     (the ASan run puts the ASan runtime there)
 *   DL_SLACK_MS       how late a deadline may fire (default 50)
 */
#ifndef DL_HARNESS_H
#define DL_HARNESS_H

#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DL_UNUSED __attribute__((unused))

/* A NULL-terminated array of strings, for argv and extra environment:
 * DL_V("rw", "127.0.0.1", port). */
#define DL_V(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* What a finished command did.  out/err are NUL-terminated heap copies. */
struct dl_result {
	int exited;	/* exited normally; code is its status */
	int code;
	int signaled;	/* killed by signal sig (also after a timeout) */
	int sig;
	int timed_out;	/* still running at the hard timeout: killed */
	long ms;	/* start to exit (or to the kill), monotonic */
	long rq_ms;	/* of ms, how long its main thread sat runnable on
			 * the run queue (schedstat; 0 when unknown) */
	long long t0_wall_ms; /* its start, CLOCK_REALTIME in ms: to place
			       * the time= of its log lines */
	char *out;
	char *err;
};

/* A helper server started by the test; stdout is kept for its lines. */
struct dl_server {
	pid_t pid;
	int port;
	char port_s[8];
	int out_fd;
	char buf[65536];
	size_t len;
};

#define DL_MAX_SERVERS 8
#define DL_MAX_DAEMONS 4

static struct dl_server dl_servers[DL_MAX_SERVERS];
static int dl_nservers;
static pid_t dl_daemons[DL_MAX_DAEMONS];
static int dl_ndaemons;
static char dl_tmp[PATH_MAX];

/* ------------------------------------------------------------------ */
/* Locations and settings                                              */
/* ------------------------------------------------------------------ */

/* snprintf that fails the test instead of truncating. */
__attribute__((format(printf, 3, 4)))
static DL_UNUSED void dl_fmt(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, cap, fmt, ap);
	va_end(ap);
	cr_assert(n >= 0 && (size_t)n < cap, "string too long: %s", buf);
}

/* A heap string built like printf; it lives until the test's worker
 * process exits (Criterion runs each test in a process of its own). */
__attribute__((format(printf, 1, 2)))
static DL_UNUSED char *dl_str(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	cr_assert(n >= 0 && s, "out of memory");
	return s;
}

static DL_UNUSED uint64_t dl_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Absolute build directory: $DL_BUILD or "build". */
static DL_UNUSED const char *dl_build(void)
{
	static char path[PATH_MAX];
	const char *b;

	if (path[0])
		return path;
	b = getenv("DL_BUILD");
	if (!b || !*b)
		b = "build";
	if (!realpath(b, path))
		dl_fmt(path, sizeof(path), "%s", b);
	return path;
}

/* Path of something under the build dir, in one of a few rotating
 * buffers so that several can be live in one expression. */
static DL_UNUSED const char *dl_path(const char *rel)
{
	static char bufs[4][PATH_MAX];
	static int next;
	char *p = bufs[next++ % 4];

	dl_fmt(p, PATH_MAX, "%s/%s", dl_build(), rel);
	return p;
}

static DL_UNUSED const char *dl_shim(void)
{
	return dl_path("libdeadline.so");
}

static DL_UNUSED const char *dl_helper(const char *name)
{
	static char bufs[4][PATH_MAX];
	static int next;
	char *p = bufs[next++ % 4];

	dl_fmt(p, PATH_MAX, "%s/helpers/%s", dl_build(), name);
	return p;
}

/* The LD_PRELOAD value for runs under the shim. */
static DL_UNUSED const char *dl_preload(void)
{
	static char buf[2 * PATH_MAX];
	const char *extra = getenv("DL_PRELOAD_EXTRA");

	if (extra && *extra)
		dl_fmt(buf, sizeof(buf), "%s %s", extra, dl_shim());
	else
		dl_fmt(buf, sizeof(buf), "%s", dl_shim());
	return buf;
}

static DL_UNUSED long dl_slack(void)
{
	const char *s = getenv("DL_SLACK_MS");

	return s && *s ? atol(s) : 50;
}

/* Nonzero when ms lies in [limit, limit + slack]. */
static DL_UNUSED int dl_in_window(long ms, long limit)
{
	return ms >= limit && ms <= limit + dl_slack();
}

/* Nonzero when a deadline of limit ms fired on time by a program's own
 * clock: ms counts from before the call that started the deadline and is
 * at least limit; ms - armed_ms counts from that call's return and, less
 * rq_ms (the time the program waited on the run queue meanwhile), is at
 * most limit + slack.  A program that stalls before the deadline starts
 * (python importing its idna codec from a busy disk inside getaddrinfo)
 * or is not run once it has fired is late by itself, not by the shim. */
static DL_UNUSED int dl_within_armed(long ms, long armed_ms, long rq_ms,
				     long limit, long slack)
{
	return ms >= limit && ms - armed_ms - rq_ms <= limit + slack;
}

/* Nonzero when ms, a time the run r logged or measured, lies in [limit,
 * limit + slack] once the time r's main thread waited on the run queue is
 * taken off the upper bound: a thread that sleeps until a deadline and is
 * then not run for 100 ms logs elapsed_ms=600 for 500, shim or not.  The
 * lower bound stays raw. */
static DL_UNUSED int dl_rq_within(const struct dl_result *r, long ms,
				  long limit, long slack)
{
	return dl_within_armed(ms, 0, r->rq_ms, limit, slack);
}

/* Fail the test at once when the shim has not been built. */
static DL_UNUSED void dl_require_shim(void)
{
	cr_assert(access(dl_shim(), R_OK) == 0,
		  "%s is missing: build the shim first (make)", dl_shim());
}

/* This test's private temp dir, created on first use. */
static DL_UNUSED const char *dl_tmpdir(void)
{
	if (!dl_tmp[0]) {
		const char *t = getenv("TMPDIR");

		dl_fmt(dl_tmp, sizeof(dl_tmp), "%s/dltest.XXXXXX",
			 t && *t ? t : "/tmp");
		cr_assert(mkdtemp(dl_tmp), "mkdtemp: %s", strerror(errno));
	}
	return dl_tmp;
}

/* ------------------------------------------------------------------ */
/* Spawning                                                            */
/* ------------------------------------------------------------------ */

static DL_UNUSED int dl_env_overridden(const char *entry, const char *const *extra)
{
	size_t n = strcspn(entry, "=");

	if (!strncmp(entry, "LD_PRELOAD=", 11) ||
	    !strncmp(entry, "DEADLINE_", 9))
		return 1;
	for (; extra && *extra; extra++)
		if (!strncmp(*extra, entry, n) && (*extra)[n] == '=')
			return 1;
	return 0;
}

/* The child's environment: ours without LD_PRELOAD and DEADLINE_*, plus
 * extra ("K=V" entries), plus LD_PRELOAD=<shim> when preload is set. */
static DL_UNUSED char **dl_make_env(const char *const *extra, int preload)
{
	static char ld[2 * PATH_MAX + 16];
	size_t n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	for (const char *const *e = extra; e && *e; e++)
		n++;
	env = calloc(n + 2, sizeof(*env));
	cr_assert(env, "out of memory");
	for (char **e = environ; *e; e++)
		if (!dl_env_overridden(*e, extra))
			env[k++] = *e;
	for (const char *const *e = extra; e && *e; e++)
		env[k++] = (char *)*e;
	if (preload) {
		dl_fmt(ld, sizeof(ld), "LD_PRELOAD=%s", dl_preload());
		env[k++] = ld;
	}
	return env;
}

/* fork + exec argv (PATH search) with fds 0/1/2 = /dev/null, out_fd,
 * err_fd (-1: keep ours), nothing else open, its own process group, and
 * SIGKILL when this test process dies. */
static DL_UNUSED pid_t dl_spawn(const char *const *argv, const char *const *extra,
		      int preload, const char *cwd, int out_fd, int err_fd)
{
	char **env = dl_make_env(extra, preload);
	pid_t parent = getpid(), pid;

	pid = fork();
	cr_assert(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		sigset_t none;
		int null = open("/dev/null", O_RDWR);

		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		dup2(null, 0);
		if (out_fd >= 0)
			dup2(out_fd, 1);
		if (err_fd >= 0)
			dup2(err_fd, 2);
		close_range(3, ~0u, 0);
		if (cwd && chdir(cwd) < 0)
			_exit(127);
		execvpe(argv[0], (char *const *)argv, env);
		dprintf(2, "harness: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	free(env);
	return pid;
}

static DL_UNUSED void dl_kill_group(pid_t pid)
{
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
}

struct dl_buf {
	char *p;
	size_t len, cap;
};

/* Read what is available from fd into b; returns 0 at EOF, 1 otherwise. */
static DL_UNUSED int dl_slurp(int fd, struct dl_buf *b)
{
	char tmp[65536];
	ssize_t r = read(fd, tmp, sizeof(tmp));

	if (r < 0)
		return errno == EINTR || errno == EAGAIN;
	if (r == 0)
		return 0;
	if (b->len + (size_t)r + 1 > b->cap) {
		size_t cap = (b->len + (size_t)r + 1) * 2;
		char *p = realloc(b->p, cap);

		cr_assert(p, "out of memory");
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, tmp, (size_t)r);
	b->len += (size_t)r;
	b->p[b->len] = '\0';
	return 1;
}

/* The whole of a file ("" when it is missing or unreadable); free() it. */
static DL_UNUSED char *dl_read_file(const char *path)
{
	struct dl_buf b = { 0 };
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		while (dl_slurp(fd, &b))
			;
		close(fd);
	}
	return b.p ? b.p : strdup("");
}

/* A path in the source tree, absolute (tests run from the repository
 * root, or find it from the build directory). */
static DL_UNUSED const char *dl_src(const char *rel)
{
	static char bufs[4][PATH_MAX];
	static int next;
	char *p = bufs[next++ % 4], tmp[PATH_MAX];
	const char *bases[] = { ".", "..", "../.." };

	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		if (i == 0)
			dl_fmt(tmp, sizeof(tmp), "%s", rel);
		else
			dl_fmt(tmp, sizeof(tmp), "%s/%s/%s", dl_build(),
			       bases[i], rel);
		if (access(tmp, R_OK) == 0) {
			if (!realpath(tmp, p))
				dl_fmt(p, PATH_MAX, "%s", tmp);
			return p;
		}
	}
	cr_assert_fail("%s not found (run the tests from the repo root)", rel);
	return NULL;
}

/* Nonzero when the shim under test is the ASan build (its runtime is
 * preloaded before it, DL_PRELOAD_EXTRA). */
static DL_UNUSED int dl_asan_run(void)
{
	const char *e = getenv("DL_PRELOAD_EXTRA");

	return e && *e;
}

/* The word after " key" (e.g. "end=") in a line of key=value words, up
 * to 63 bytes, copied (four buffers in turn); fails the test if absent. */
static DL_UNUSED const char *dl_word(const char *line, const char *key)
{
	static char bufs[4][64];
	static int next;
	char *out = bufs[next++ % 4], pat[32];
	const char *k;
	size_t n;

	dl_fmt(pat, sizeof(pat), " %s", key);
	k = strstr(line, pat);
	cr_assert(k, "no '%s' in '%.300s'", key, line);
	k += strlen(pat);
	n = strcspn(k, " \n");
	if (n >= 64)
		n = 63;
	memcpy(out, k, n);
	out[n] = '\0';
	return out;
}

/* How many lines of text contain needle. */
static DL_UNUSED int dl_count_lines(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);
		const char *hit = strstr(p, needle);

		if (hit && hit + strlen(needle) <= p + l)
			n++;
		p = nl ? nl + 1 : NULL;
	}
	return n;
}

/* 1 once pid has ended, leaving it a zombie still to be reaped. */
static DL_UNUSED int dl_exited(pid_t pid)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
	       si.si_pid == pid;
}

/* How long pid's main thread has waited on the run queue, in ms: the
 * second field of its schedstat, still readable while it is a zombie.
 * A busy machine delays a program by that much, shim or not. */
static DL_UNUSED long dl_rq_ms(pid_t pid)
{
	char path[64], buf[128];
	unsigned long long run, wait;
	ssize_t n;
	int fd;

	dl_fmt(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if (sscanf(buf, "%llu %llu", &run, &wait) != 2)
		return 0;
	return (long)(wait / 1000000u);
}

/* dl_run_opts - run argv to completion with a hard timeout, capturing
 * stdout and stderr.  preload: LD_PRELOAD the shim.  extra: "K=V" entries
 * added to the environment (DEADLINE_* and LD_PRELOAD are never inherited
 * from ours).  cwd may be NULL.  Never returns before the child is gone. */
static DL_UNUSED void dl_run_opts(struct dl_result *r, const char *const *argv,
				  const char *const *extra, int preload,
				  long timeout_ms, const char *cwd)
{
	struct dl_buf ob = { 0 }, eb = { 0 };
	int op[2], ep[2], st = 0, open_out = 1, open_err = 1, reaped = 0;
	uint64_t t0, deadline, t_end = 0;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	cr_assert(pipe2(op, O_CLOEXEC) == 0 && pipe2(ep, O_CLOEXEC) == 0,
		  "pipe: %s", strerror(errno));
	t0 = dl_now_ns();
	{
		struct timespec w;

		clock_gettime(CLOCK_REALTIME, &w);
		r->t0_wall_ms = (long long)w.tv_sec * 1000 + w.tv_nsec / 1000000;
	}
	deadline = t0 + (uint64_t)timeout_ms * 1000000u;
	pid = dl_spawn(argv, extra, preload, cwd, op[1], ep[1]);
	close(op[1]);
	close(ep[1]);

	for (;;) {
		struct pollfd p[2];
		uint64_t now = dl_now_ns();
		int n = 0, wait_ms;

		if (!reaped && now >= deadline && !r->timed_out) {
			dl_kill_group(pid);
			r->timed_out = 1;
			t_end = now;
		}
		if (!reaped && dl_exited(pid)) {
			r->rq_ms = dl_rq_ms(pid);
			waitpid(pid, &st, 0);
			reaped = 1;
			if (!t_end)
				t_end = now;
		}
		if (reaped && !open_out && !open_err)
			break;
		/* A grandchild may hold the pipes: stop reading soon after
		 * the child itself is gone. */
		if (reaped && now > t_end + 500000000u)
			break;
		if (open_out)
			p[n++] = (struct pollfd){ .fd = op[0], .events = POLLIN };
		if (open_err)
			p[n++] = (struct pollfd){ .fd = ep[0], .events = POLLIN };
		wait_ms = n ? 50 : 1;
		if (!reaped && now < deadline &&
		    (deadline - now) / 1000000u < (uint64_t)wait_ms)
			wait_ms = (int)((deadline - now) / 1000000u) + 1;
		if (poll(p, (nfds_t)n, wait_ms) <= 0)
			continue;
		for (int i = 0; i < n; i++) {
			if (!p[i].revents)
				continue;
			if (p[i].fd == op[0])
				open_out = dl_slurp(op[0], &ob);
			else
				open_err = dl_slurp(ep[0], &eb);
		}
	}
	if (r->timed_out)
		dl_kill_group(pid);	/* stragglers in the group */
	close(op[0]);
	close(ep[0]);
	r->ms = (long)((t_end - t0) / 1000000u);
	r->exited = WIFEXITED(st);
	r->code = r->exited ? WEXITSTATUS(st) : -1;
	r->signaled = WIFSIGNALED(st);
	r->sig = r->signaled ? WTERMSIG(st) : 0;
	r->out = ob.p ? ob.p : strdup("");
	r->err = eb.p ? eb.p : strdup("");
}

static DL_UNUSED void dl_run(struct dl_result *r, const char *const *argv,
			     const char *const *extra, int preload,
			     long timeout_ms)
{
	dl_run_opts(r, argv, extra, preload, timeout_ms, NULL);
}

/* Run build/deadline args... (NULL-terminated).  In ASan runs the ASan
 * runtime must come first in LD_PRELOAD for the command it starts: it
 * and the shim are preloaded, and deadline keeps the shim in place. */
static DL_UNUSED void dl_deadline(struct dl_result *r, const char *const *env,
				  long timeout_ms, ...)
{
	const char *argv[48], *a;
	va_list ap;
	int n = 0;

	argv[n++] = dl_path("deadline");
	va_start(ap, timeout_ms);
	while ((a = va_arg(ap, const char *)) && n < 46)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	dl_run(r, argv, env, dl_asan_run(), timeout_ms);
}

static DL_UNUSED void dl_result_free(struct dl_result *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

/* The run's outcome and output, for assertion messages. */
#define DL_RES_FMT "\n[exit=%d sig=%d timed_out=%d %ld ms, %ld on the run " \
		   "queue]\n--- stdout:\n%s--- stderr:\n%s"
#define DL_RES_ARGS(r) (r)->code, (r)->sig, (r)->timed_out, (r)->ms, \
		       (r)->rq_ms, (r)->out, (r)->err

/* Assert cond, printing the run's outcome and output on failure. */
#define dl_assert_run(r, cond, fmt, ...)				\
	cr_assert(cond, fmt DL_RES_FMT, ##__VA_ARGS__, DL_RES_ARGS(r))

/* Nonzero when a sanitizer reported something on stderr. */
static DL_UNUSED int dl_sanitizer_report(const struct dl_result *r)
{
	return strstr(r->err, "ERROR: AddressSanitizer") ||
	       strstr(r->err, "runtime error:") ||
	       strstr(r->err, "ERROR: LeakSanitizer");
}

/* The run exited 0 and no sanitizer complained. */
#define dl_assert_ok(r, what)						\
	dl_assert_run(r, (r)->exited && (r)->code == 0 &&		\
		      !dl_sanitizer_report(r), "%s failed", what)

/* ------------------------------------------------------------------ */
/* Output parsing                                                      */
/* ------------------------------------------------------------------ */

/* First line of text starting with prefix (pointer into text), or NULL. */
static DL_UNUSED const char *dl_line(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
		if (!strncmp(p, prefix, n))
			return p;
	return NULL;
}

/* The milliseconds a client reported with its failure: the number after
 * the errno name in its "ERR <errno> <ms> ..." line at p; -1 if absent. */
static DL_UNUSED long dl_err_ms(const char *p)
{
	long ms = -1;

	if (p)
		sscanf(p, "ERR %*s %ld", &ms);
	return ms;
}

/* The number after "key" (e.g. "ms=") in the line at p; -1 if absent. */
static DL_UNUSED long dl_field(const char *p, const char *key)
{
	const char *end = p ? strchr(p, '\n') : NULL;
	const char *k = p ? strstr(p, key) : NULL;

	if (!k || (end && k > end))
		return -1;
	return strtol(k + strlen(key), NULL, 10);
}

/* Copy of text keeping only the lines that start with prefix. */
static DL_UNUSED char *dl_lines(const char *text, const char *prefix)
{
	size_t n = strlen(prefix), len = 0;
	char *out = calloc(1, strlen(text) + 1);

	cr_assert(out, "out of memory");
	for (const char *p = text; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p + 1) : strlen(p);

		if (!strncmp(p, prefix, n)) {
			memcpy(out + len, p, l);
			len += l;
		}
		p += l;
	}
	return out;
}

/* ------------------------------------------------------------------ */
/* Helper servers                                                      */
/* ------------------------------------------------------------------ */

/* Read more of the server's stdout, waiting up to ms.  Returns 1 after
 * reading, 0 when nothing came in time, -1 at EOF or with a full buffer. */
static DL_UNUSED int dl_server_fill(struct dl_server *s, long ms)
{
	struct pollfd p = { .fd = s->out_fd, .events = POLLIN };
	ssize_t r;

	if (s->len >= sizeof(s->buf) - 1)
		return -1;
	if (poll(&p, 1, (int)ms) <= 0)
		return 0;
	r = read(s->out_fd, s->buf + s->len, sizeof(s->buf) - 1 - s->len);
	if (r <= 0)
		return -1;
	s->len += (size_t)r;
	s->buf[s->len] = '\0';
	return 1;
}

/* Wait up to timeout_ms for a line of the server's stdout that starts
 * with prefix; copy it (without newline) to line and consume everything
 * up to it.  Returns 1 when found, 0 otherwise. */
static DL_UNUSED int dl_server_line(struct dl_server *s, const char *prefix,
				    long timeout_ms, char *line, size_t cap)
{
	uint64_t end = dl_now_ns() + (uint64_t)timeout_ms * 1000000u;

	for (;;) {
		const char *p = dl_line(s->buf, prefix);
		const char *nl = p ? strchr(p, '\n') : NULL;

		if (nl) {
			size_t l = (size_t)(nl - p);

			if (l >= cap)
				l = cap - 1;
			memcpy(line, p, l);
			line[l] = '\0';
			s->len -= (size_t)(nl + 1 - s->buf);
			memmove(s->buf, nl + 1, s->len + 1);
			return 1;
		}
		uint64_t now = dl_now_ns();
		if (now >= end ||
		    dl_server_fill(s, (long)((end - now) / 1000000u) + 1) < 0)
			return 0;
	}
}

/* Everything the server has printed so far (waits settle_ms for more). */
static DL_UNUSED const char *dl_server_output(struct dl_server *s,
					      long settle_ms)
{
	while (dl_server_fill(s, settle_ms) > 0)
		;
	return s->buf;
}

/* Start build/helpers/<helper> args..., optionally under the shim with
 * extra environment (env, preload) and with its stderr on the same pipe as
 * its stdout (merge: the shim's log lines then sit among the helper's own
 * lines).  wait_port: wait for its "PORT <n>" line.  Killed in
 * dl_teardown. */
static DL_UNUSED struct dl_server *
dl_server_start_ex(const char *helper, const char *const *args,
		   const char *const *env, int preload, int merge,
		   int wait_port)
{
	const char *argv[32];
	struct dl_server *s;
	char line[64];
	int p[2], n = 0;

	cr_assert(dl_nservers < DL_MAX_SERVERS, "too many servers");
	s = &dl_servers[dl_nservers++];
	memset(s, 0, sizeof(*s));
	argv[n++] = dl_helper(helper);
	for (; args && *args && n < 30; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	cr_assert(pipe2(p, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
	s->pid = dl_spawn(argv, env, preload, NULL, p[1], merge ? p[1] : -1);
	close(p[1]);
	s->out_fd = p[0];
	if (!wait_port)
		return s;
	cr_assert(dl_server_line(s, "PORT ", 5000, line, sizeof(line)),
		  "%s did not report its port; output so far: %s", argv[0],
		  s->buf);
	s->port = atoi(line + 5);
	cr_assert(s->port > 0, "bad port line '%s'", line);
	dl_fmt(s->port_s, sizeof(s->port_s), "%d", s->port);
	return s;
}

/* Start build/helpers/<helper> with args; wait for its "PORT <n>" line. */
static DL_UNUSED struct dl_server *dl_server_startv(const char *helper,
						    const char *const *args)
{
	return dl_server_start_ex(helper, args, NULL, 0, 0, 1);
}

/* Run build/helpers/dlclient with the given args (NULL-terminated). */
static DL_UNUSED void dl_client(struct dl_result *r, int preload,
				long timeout_ms, const char *const *env, ...)
{
	const char *argv[40], *a;
	va_list ap;
	int n = 0;

	argv[n++] = dl_helper("dlclient");
	va_start(ap, env);
	while ((a = va_arg(ap, const char *)) && n < 38)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	dl_run(r, argv, env, preload, timeout_ms);
}

/* Start "stallsrv MODE args...", NULL-terminated; it dies after 60 s
 * regardless. */
static DL_UNUSED struct dl_server *dl_stallsrv(const char *mode, ...)
{
	const char *args[28];
	const char *a;
	va_list ap;
	int n = 0;

	args[n++] = mode;
	va_start(ap, mode);
	while ((a = va_arg(ap, const char *)) && n < 24)
		args[n++] = a;
	va_end(ap);
	args[n++] = "--lifetime";
	args[n++] = "60";
	args[n] = NULL;
	return dl_server_startv("stallsrv", args);
}

/* Start a long-running program (not a helper) with stdout/stderr to
 * files in the temp dir; it is killed in dl_teardown. */
static DL_UNUSED pid_t dl_daemon(const char *const *argv, const char *cwd,
				 const char *logname)
{
	char path[PATH_MAX];
	int fd;
	pid_t pid;

	cr_assert(dl_ndaemons < DL_MAX_DAEMONS, "too many daemons");
	dl_fmt(path, sizeof(path), "%s/%s", dl_tmpdir(), logname);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
	pid = dl_spawn(argv, NULL, 0, cwd, fd, fd);
	close(fd);
	dl_daemons[dl_ndaemons++] = pid;
	return pid;
}

/* The line (up to its end) holds the token tok (" tok " or at an end). */
static DL_UNUSED int dl_has_tok(const char *line, const char *tok)
{
	const char *end = strchr(line, '\n');
	size_t n = strlen(tok);

	for (const char *k = line; (k = strstr(k, tok)) && (!end || k < end);
	     k += n)
		if ((k == line || k[-1] == ' ') &&
		    (k[n] == ' ' || k[n] == '\n' || k[n] == '\0'))
			return 1;
	return 0;
}

/* Write text to <tmpdir>/name (name without '/'), or to the path name
 * (with '/'); returns the path (static buffer, valid until the next
 * call).  Fails the test on any error. */
static DL_UNUSED const char *dl_write_file(const char *name, const char *text)
{
	static char path[PATH_MAX];
	FILE *f;

	if (strchr(name, '/'))
		dl_fmt(path, sizeof(path), "%s", name);
	else
		dl_fmt(path, sizeof(path), "%s/%s", dl_tmpdir(), name);
	f = fopen(path, "w");
	cr_assert(f, "fopen %s: %s", path, strerror(errno));
	fputs(text, f);
	cr_assert(fclose(f) == 0, "fclose %s: %s", path, strerror(errno));
	return path;
}

/* A port that was free on 127.0.0.1 a moment ago, for programs that
 * cannot bind port 0 and report it (redis-server). */
static DL_UNUSED int dl_free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
		  getsockname(fd, (struct sockaddr *)&a, &len) == 0,
		  "free port: %s", strerror(errno));
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* ------------------------------------------------------------------ */
/* Setup and teardown                                                  */
/* ------------------------------------------------------------------ */

static DL_UNUSED void dl_setup(void)
{
	signal(SIGPIPE, SIG_IGN);
}

static DL_UNUSED int dl_rm(const char *path, const struct stat *st, int flag,
		 struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static DL_UNUSED void dl_teardown(void)
{
	for (int i = 0; i < dl_nservers; i++) {
		dl_kill_group(dl_servers[i].pid);
		waitpid(dl_servers[i].pid, NULL, 0);
		close(dl_servers[i].out_fd);
	}
	dl_nservers = 0;
	for (int i = 0; i < dl_ndaemons; i++) {
		dl_kill_group(dl_daemons[i]);
		waitpid(dl_daemons[i], NULL, 0);
	}
	dl_ndaemons = 0;
	if (dl_tmp[0]) {
		nftw(dl_tmp, dl_rm, 16, FTW_DEPTH | FTW_PHYS);
		dl_tmp[0] = '\0';
	}
}

#endif
