/* dlclient - blocking test client for the integration tests.
 *
 *   dlclient SUBCOMMAND [HOST PORT] [options]
 *
 * Each subcommand prints machine-checkable lines on stdout and exits 0
 * only when its own checks pass (1 = a check failed, 2 = usage/setup).
 * Timings are whole milliseconds on CLOCK_MONOTONIC, taken *before* the
 * call that starts a deadline, so a deadline that fires on time never
 * reads as early.
 *
 *   rw HOST PORT [--send STR] [--recv N] [--nonblock] [--expect ok|ENAME]
 *       connect, send STR (C escapes), read N bytes (default: to EOF).
 *       "OK <bytes> <ms>"  or
 *       "ERR <ENAME> <ms> op=<call> got=<bytes> call_ms=<ms> prev_ms=<ms>
 *            since_send=<ms>"
 *       ms counts from just before connect(); call_ms is the failing call
 *       alone; prev_ms from just before the last recv() that returned data
 *       (bounds an idle deadline from below); since_send from just before
 *       the last send() (-1: no such call).  --nonblock
 *       connects the way curl does (O_NONBLOCK, poll, SO_ERROR).
 *   threads HOST PORT [--n 32] [--limit L] [--slack S]     (stallsrv http)
 *       n threads, each on its own connection asking for /delay/D with a
 *       per-thread D; with first_byte limit L, short delays must succeed and
 *       long ones fail with ETIMEDOUT within [L, L+S] of their own send.
 *       --limit 0: no deadline, everything must succeed.
 *   closerace HOST PORT                                      (stallsrv http)
 *       a thread blocks in read(); the main thread close()s the fd; reports
 *       what the reader got, and whether a new socket reusing the number works.
 *   fork HOST PORT [--limit L] [--slack S]                   (stallsrv http)
 *       parent and child each run exchanges with deadlines; the child
 *       finally execs "dlclient fdlist" without LD_PRELOAD.
 *   fdlist
 *       list the open fds ("FDLIST <n> <kind>"); fails if any fd > 2.
 *   fdopen HOST PORT                                         (stallsrv http)
 *       fdopen + fprintf/fgets/fread, two requests on one connection.
 *   getfl HOST PORT                                          (stallsrv http)
 *       O_NONBLOCK visibility and semantics.
 *   errno HOST PORT                                          (stallsrv http)
 *       errno after pass-through calls, successful and failing.
 *   eintr HOST PORT --restart 0|1 [--limit L] [--slack S] [--other-handler]
 *                                                            (stallsrv http)
 *       a signal interrupting blocked waits, with or without SA_RESTART;
 *       --other-handler also installs a SIGUSR2 handler without SA_RESTART;
 *       with --limit, a read interrupted every 100 ms must still time out
 *       at L (SA_RESTART) or report EINTR (no SA_RESTART).
 *   fdreserved HOST PORT [--hold MS]                         (stallsrv silent)
 *       after a deadline fires: the fd stays valid and reserved, every I/O
 *       fails with ETIMEDOUT, close() releases it.
 *   bulk HOST PORT --mode source|echo|sink --bytes N [--seed S]
 *       bulk transfer against stallsrv source/echo/sink, verified bytewise.
 *   forksock [--n N]
 *       a thread forks N times (each child exits at once) while the main
 *       thread opens and closes TCP sockets until it is done: what a
 *       fork's atfork handlers write, socket() reads (for TSan).
 *       "FORKSOCK forks=<n> sockets=<n>".
 */
#include "helpers.h"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>

static struct {
	const char *host;
	int port;
	const char *send;
	long long recv;
	const char *expect;
	const char *mode;
	long limit;
	long slack;
	long hold;
	long long bytes;
	uint64_t seed;
	int restart;
	int nonblock;
	int other_handler;
	int n;
} arg = {
	.recv = -1,
	.expect = "ok",
	.slack = 50,
	.hold = 500,
	.bytes = 100ll << 20,
	.seed = 1,
	.restart = -1,
	.n = 32,
};

static struct sockaddr_storage peer;
static socklen_t peer_len;
static int failures;

/* One result line; a line starting with "CHECK" and containing FAIL
 * counts as a failed check. */
__attribute__((format(printf, 1, 2)))
static void out(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

__attribute__((format(printf, 3, 4)))
static void check(const char *name, int ok, const char *fmt, ...)
{
	char detail[256] = "";
	va_list ap;

	if (!ok) {
		va_start(ap, fmt);
		vsnprintf(detail, sizeof(detail), fmt, ap);
		va_end(ap);
		failures++;
	}
	out("CHECK %s %s%s%s\n", name, ok ? "ok" : "FAIL", ok ? "" : " ",
	    detail);
}

static int in_window(long ms, long limit)
{
	return ms >= limit && ms <= limit + arg.slack;
}

/* Blocking TCP connect to the test server; -1 with errno on failure. */
static int tcp_connect(void)
{
	int fd = socket(peer.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&peer, peer_len) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int tcp_connect_or_die(void)
{
	int fd = tcp_connect();

	if (fd < 0)
		hp_die("connect %s:%d: %s", arg.host, arg.port,
		       strerror(errno));
	return fd;
}

/* Send "GET path" on fd; close_after adds "Connection: close". */
static int http_get(int fd, const char *path, int close_after)
{
	char req[256];
	int n = snprintf(req, sizeof(req),
			 "GET %s HTTP/1.1\r\nHost: test\r\n%s\r\n", path,
			 close_after ? "Connection: close\r\n" : "");

	return hp_send_all(fd, req, (size_t)n);
}

/* Read one "/delay/" or "/hello" response (ends with "hello\n") from a
 * blocking fd.  Returns the byte count, or -1 with errno (0 = early EOF). */
static ssize_t read_hello(int fd, char *buf, size_t cap)
{
	size_t len = 0;

	while (len < cap - 1) {
		ssize_t r = read(fd, buf + len, cap - 1 - len);

		if (r <= 0) {
			if (r == 0)
				errno = 0;
			return -1;
		}
		len += (size_t)r;
		buf[len] = '\0';
		if (len >= 6 && !strcmp(buf + len - 6, "hello\n"))
			return (ssize_t)len;
	}
	errno = EMSGSIZE;
	return -1;
}

static int is_hello(const char *buf)
{
	size_t n = strlen(buf);

	return !strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) && n >= 10 &&
	       !strcmp(buf + n - 10, "\r\n\r\nhello\n");
}

/* ================================================================== */
/* rw                                                                  */
/* ================================================================== */

/* Curl-style connect: O_NONBLOCK, wait for POLLOUT, read SO_ERROR, then
 * back to blocking.  Returns 0 or -1 with errno. */
static int nonblock_connect(int fd)
{
	int fl = fcntl(fd, F_GETFL), err = 0;
	socklen_t el = sizeof(err);
	struct pollfd p = { .fd = fd, .events = POLLOUT };

	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	if (connect(fd, (struct sockaddr *)&peer, peer_len) < 0) {
		if (errno != EINPROGRESS)
			return -1;
		if (poll(&p, 1, -1) < 0)
			return -1;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
			return -1;
		if (err) {
			errno = err;
			return -1;
		}
	}
	fcntl(fd, F_SETFL, fl);
	return 0;
}

static int cmd_rw(void)
{
	uint64_t t0, t_send = 0, t_call, t_prev = 0;
	const char *op = "connect";
	long long got = 0;
	char buf[65536];
	int fd, e;

	fd = socket(peer.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		hp_die("socket: %s", strerror(errno));
	t0 = t_call = hp_now_ns();
	if (arg.nonblock ? nonblock_connect(fd) :
			   connect(fd, (struct sockaddr *)&peer, peer_len))
		goto fail;
	if (arg.send) {
		size_t n;
		char *data = hp_unescape(arg.send, &n);

		int rc;

		op = "send";
		t_send = t_call = hp_now_ns();
		rc = hp_send_all(fd, data, n);
		free(data);
		if (rc < 0)
			goto fail;
	}
	op = "recv";
	while (arg.recv < 0 || got < arg.recv) {
		size_t want = sizeof(buf);
		ssize_t r;

		if (arg.recv >= 0 && (long long)want > arg.recv - got)
			want = (size_t)(arg.recv - got);
		t_prev = t_call;
		t_call = hp_now_ns();
		r = recv(fd, buf, want, 0);
		if (r < 0)
			goto fail;
		if (r == 0)
			break;
		got += r;
	}
	close(fd);
	out("OK %lld %ld\n", got, hp_ms_since(t0));
	return strcmp(arg.expect, "ok") ? 1 : 0;

fail:
	e = errno;
	out("ERR %s %ld op=%s got=%lld call_ms=%ld prev_ms=%ld since_send=%ld\n",
	    hp_errname(e), hp_ms_since(t0), op, got, hp_ms_since(t_call),
	    got ? hp_ms_since(t_prev) : -1L,
	    t_send ? hp_ms_since(t_send) : -1L);
	close(fd);
	return strcmp(arg.expect, hp_errname(e)) ? 1 : 0;
}

/* ================================================================== */
/* threads                                                             */
/* ================================================================== */

/* Server delays per thread (cycled).  None is within 200 ms of the 500 ms
 * limit the tests use, so scheduling noise cannot flip an outcome. */
static const long thread_delays[] = { 0, 100, 200, 300, 900, 1300, 2000,
				      2500 };

struct worker {
	pthread_t tid;
	int idx;
	int fd;
	long delay;
	long ms;
	int err;	/* 0 = success */
	ssize_t got;
	int hello;
};

static pthread_barrier_t start_line;

static void *thread_worker(void *p)
{
	struct worker *w = p;
	char path[32], buf[512];
	uint64_t t;

	snprintf(path, sizeof(path), "/delay/%ld", w->delay);
	pthread_barrier_wait(&start_line);
	/* Staggered starts give every thread its own expiry instant. */
	hp_sleep_ms(w->idx * 7);
	t = hp_now_ns();
	if (http_get(w->fd, path, 1) < 0) {
		w->err = errno;
	} else {
		w->got = read_hello(w->fd, buf, sizeof(buf));
		if (w->got < 0)
			w->err = errno ? errno : EPROTO;
		else
			w->hello = is_hello(buf);
	}
	w->ms = hp_ms_since(t);
	close(w->fd);
	return NULL;
}

static int cmd_threads(void)
{
	struct worker *w = calloc((size_t)arg.n, sizeof(*w));
	int ok = 0, timedout = 0, bad = 0;
	size_t nd = sizeof(thread_delays) / sizeof(thread_delays[0]);

	if (!w)
		hp_die("out of memory");
	pthread_barrier_init(&start_line, NULL, (unsigned)arg.n);
	for (int i = 0; i < arg.n; i++) {
		w[i].idx = i;
		w[i].delay = thread_delays[(size_t)i % nd];
		w[i].fd = tcp_connect_or_die();
	}
	for (int i = 0; i < arg.n; i++)
		if (pthread_create(&w[i].tid, NULL, thread_worker, &w[i]))
			hp_die("pthread_create failed");
	for (int i = 0; i < arg.n; i++)
		pthread_join(w[i].tid, NULL);

	for (int i = 0; i < arg.n; i++) {
		int expect_timeout = arg.limit > 0 && w[i].delay > arg.limit;
		int good;

		if (expect_timeout)
			good = w[i].err == ETIMEDOUT &&
			       in_window(w[i].ms, arg.limit);
		else
			good = w[i].err == 0 && w[i].hello &&
			       w[i].ms >= w[i].delay;
		if (w[i].err == 0)
			ok++;
		else if (w[i].err == ETIMEDOUT)
			timedout++;
		if (!good)
			bad++;
		out("T %d delay=%ld %s %s ms=%ld expect=%s\n", i, w[i].delay,
		    w[i].err ? "ERR" : "OK",
		    w[i].err ? hp_errname(w[i].err) : (w[i].hello ? "hello" :
							"garbled"),
		    w[i].ms, expect_timeout ? "ETIMEDOUT" : "OK");
	}
	out("THREADS ok=%d timedout=%d bad=%d\n", ok, timedout, bad);
	free(w);
	return bad ? 1 : 0;
}

/* ================================================================== */
/* closerace                                                           */
/* ================================================================== */

struct reader {
	int fd;
	ssize_t got;
	int err;
	long ms;
	char buf[4096];
};

static void *closerace_reader(void *p)
{
	struct reader *r = p;
	uint64_t t = hp_now_ns();

	r->got = read(r->fd, r->buf, sizeof(r->buf) - 1);
	r->err = r->got < 0 ? errno : 0;
	r->ms = hp_ms_since(t);
	if (r->got > 0)
		r->buf[r->got] = '\0';
	return NULL;
}

static int cmd_closerace(void)
{
	static struct reader r;
	struct timespec until;
	pthread_t t;
	char buf[512];
	int fd2, rc;

	r.fd = tcp_connect_or_die();
	if (http_get(r.fd, "/delay/800", 1) < 0)
		hp_die("send: %s", strerror(errno));
	pthread_create(&t, NULL, closerace_reader, &r);
	hp_sleep_ms(200);
	rc = close(r.fd);
	out("CLOSE ret=%d%s%s\n", rc, rc ? " " : "", rc ? hp_errname(errno) : "");

	/* The number is free again: a new connection may get it and must
	 * work normally while the old reader is still around. */
	fd2 = tcp_connect();
	if (fd2 < 0 || http_get(fd2, "/hello", 1) < 0 ||
	    read_hello(fd2, buf, sizeof(buf)) < 0 || !is_hello(buf))
		out("REUSE same=%d ERR %s\n", fd2 == r.fd, hp_errname(errno));
	else
		out("REUSE same=%d OK\n", fd2 == r.fd);
	if (fd2 >= 0)
		close(fd2);

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 3;
	if (pthread_timedjoin_np(t, NULL, &until) != 0) {
		out("READER BLOCKED\n");
		return 1;
	}
	if (r.got < 0) {
		out("READER ERR %s ms=%ld\n", hp_errname(r.err), r.ms);
		return 1;
	}
	out("READER OK %zd %s ms=%ld\n", r.got,
	    r.got > 0 && is_hello(r.buf) ? "hello" : "other", r.ms);
	return r.got > 0 && is_hello(r.buf) ? 0 : 1;
}

/* ================================================================== */
/* fork / fdlist                                                       */
/* ================================================================== */

/* One exchange asking for /delay/delay_ms; prints "<who> <what> ..." and
 * checks it against expect_timeout (with the first_byte limit). */
static void fork_exchange(const char *who, const char *what, long delay_ms,
			  int expect_timeout)
{
	char path[32], buf[512];
	uint64_t t;
	ssize_t n;
	long ms;
	int fd = tcp_connect_or_die(), e = 0;
	char name[64];

	snprintf(path, sizeof(path), "/delay/%ld", delay_ms);
	snprintf(name, sizeof(name), "%s-%s", who, what);
	t = hp_now_ns();
	if (http_get(fd, path, 1) < 0)
		e = errno;
	else if ((n = read_hello(fd, buf, sizeof(buf))) < 0)
		e = errno ? errno : EPROTO;
	ms = hp_ms_since(t);
	close(fd);
	if (expect_timeout)
		check(name, e == ETIMEDOUT && in_window(ms, arg.limit),
		      "got %s after %ld ms, want ETIMEDOUT in [%ld,%ld]",
		      hp_errname(e), ms, arg.limit, arg.limit + arg.slack);
	else
		check(name, e == 0 && is_hello(buf) && ms >= delay_ms,
		      "got %s after %ld ms, want the answer after %ld ms",
		      hp_errname(e), ms, delay_ms);
}

/* Environment without LD_PRELOAD, so the exec'd image is shim-free and
 * every fd it lists was inherited from us. */
static char **env_without_preload(void)
{
	size_t n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + 1, sizeof(*env));
	if (!env)
		hp_die("out of memory");
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", 11))
			env[k++] = environ[i];
	return env;
}

static int cmd_fork(void)
{
	long slow = arg.limit * 4 + 1000;
	char buf[512];
	uint64_t t;
	ssize_t n;
	long ms;
	int st, p;
	pid_t pid;

	/* A request in flight across the fork: only the parent reads it. */
	p = tcp_connect_or_die();
	if (http_get(p, "/delay/400", 1) < 0)
		hp_die("send: %s", strerror(errno));
	t = hp_now_ns();

	pid = fork();
	if (pid < 0)
		hp_die("fork: %s", strerror(errno));
	if (pid == 0) {
		char *argv[] = { (char *)"dlclient", (char *)"fdlist", NULL };

		close(p);	/* the child's copy: must not disturb the parent */
		if (arg.limit > 0)
			fork_exchange("child", "slow", slow, 1);
		fork_exchange("child", "fast", 100, 0);
		if (failures)
			_exit(1);
		execve("/proc/self/exe", argv, env_without_preload());
		out("CHECK child-exec FAIL %s\n", hp_errname(errno));
		_exit(1);
	}

	n = read_hello(p, buf, sizeof(buf));
	ms = hp_ms_since(t);
	check("parent-inflight", n > 0 && is_hello(buf) && ms >= 400 &&
	      (arg.limit == 0 || ms < 400 + arg.limit),
	      "got %zd bytes (%s) after %ld ms, want the answer at 400 ms", n,
	      n < 0 ? hp_errname(errno) : "-", ms);
	close(p);
	if (arg.limit > 0)
		fork_exchange("parent", "slow", slow, 1);
	fork_exchange("parent", "fast", 100, 0);

	if (waitpid(pid, &st, 0) < 0)
		hp_die("waitpid: %s", strerror(errno));
	check("child-exit", WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "child status 0x%x", st);
	return failures ? 1 : 0;
}

/* Print the fds this process holds, with socket/pipe/anon inode numbers
 * stripped so that two runs compare equal. */
static int cmd_fdlist(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int count = 0, extra = 0;

	if (!d)
		hp_die("opendir /proc/self/fd: %s", strerror(errno));
	while ((de = readdir(d))) {
		char path[64], target[256];
		ssize_t n;
		int fd;

		if (de->d_name[0] == '.')
			continue;
		fd = atoi(de->d_name);
		if (fd == dirfd(d))
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, target, sizeof(target) - 1);
		target[n < 0 ? 0 : n] = '\0';
		char *br = strstr(target, ":[");
		if (br && strncmp(target, "anon_inode:", 11))
			*br = '\0';
		out("FDLIST %d %s\n", fd, target);
		count++;
		if (fd > 2)
			extra++;
	}
	closedir(d);
	out("FDLIST-END count=%d extra=%d\n", count, extra);
	return extra ? 1 : 0;
}

/* ================================================================== */
/* fdopen                                                              */
/* ================================================================== */

/* Read a response head with fgets; returns Content-Length or -1. */
static long long fdopen_head(FILE *in, const char *tag)
{
	char line[512];
	long long clen = -1;

	while (fgets(line, sizeof(line), in)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0])
			return clen;
		if (!strncasecmp(line, "Content-Length:", 15))
			clen = atoll(line + 15);
		if (strncasecmp(line, "Content-Type:", 13))
			out("%s %s\n", tag, line);
	}
	out("%s fgets failed: %s eof=%d\n", tag,
	    ferror(in) ? hp_errname(errno) : "-", feof(in));
	return -1;
}

static int cmd_fdopen(void)
{
	int fd = tcp_connect_or_die();
	FILE *in = fdopen(fd, "r"), *outf = fdopen(dup(fd), "w");
	char body[16];
	long long clen;

	if (!in || !outf)
		hp_die("fdopen: %s", strerror(errno));

	/* Request 1: the answer comes 200 ms later, so stdio has to wait. */
	fprintf(outf, "GET /delay/200 HTTP/1.1\r\nHost: test\r\n\r\n");
	check("fflush-1", fflush(outf) == 0, "%s", hp_errname(errno));
	clen = fdopen_head(in, "HEAD1");
	check("head-1", clen == 6, "content-length %lld", clen);
	memset(body, 0, sizeof(body));
	check("body-1", clen == 6 && fread(body, 1, 6, in) == 6 &&
	      !strcmp(body, "hello\n"), "body '%s' err=%s", body,
	      hp_errname(errno));

	/* Request 2 on the same connection: a body larger than stdio's
	 * buffer, read with fread in odd-sized pieces. */
	fprintf(outf, "GET /bytes/300000 HTTP/1.1\r\nHost: test\r\n"
		      "Connection: close\r\n\r\n");
	check("fflush-2", fflush(outf) == 0, "%s", hp_errname(errno));
	clen = fdopen_head(in, "HEAD2");
	check("head-2", clen == 300000, "content-length %lld", clen);
	if (clen == 300000) {
		char *big = malloc(300000);
		size_t got = 0, k;

		if (!big)
			hp_die("out of memory");
		while (got < 300000 &&
		       (k = fread(big + got, 1,
				  300000 - got < 777 ? 300000 - got : 777,
				  in)) > 0)
			got += k;
		check("body-2", got == 300000 &&
		      hp_pattern_check(arg.seed, 0, big, got) < 0,
		      "got %zu bytes, ferror=%d errno=%s", got, ferror(in),
		      hp_errname(errno));
		free(big);
	}
	check("eof", fgetc(in) == EOF && feof(in), "no EOF after body");
	fclose(outf);
	fclose(in);
	out("FDOPEN %s\n", failures ? "FAIL" : "OK");
	return failures ? 1 : 0;
}

/* ================================================================== */
/* getfl                                                               */
/* ================================================================== */

struct flag_watch {
	int fd;
	atomic_int stop;
	int seen_nonblock;
	long samples;
};

static void *getfl_watcher(void *p)
{
	struct flag_watch *w = p;

	while (!w->stop) {
		int fl = fcntl(w->fd, F_GETFL);

		if (fl >= 0 && (fl & O_NONBLOCK))
			w->seen_nonblock = 1;
		w->samples++;
		usleep(500);
	}
	return NULL;
}

static int nonblock_of(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : !!(fl & O_NONBLOCK);
}

/* read_hello for an O_NONBLOCK fd: poll (up to 3 s each) and recv. */
static ssize_t nonblock_read_hello(int fd, char *buf, size_t cap)
{
	size_t len = 0;

	while (len < cap - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 3000) != 1)
			return -1;
		r = recv(fd, buf + len, cap - 1 - len, 0);
		if (r <= 0)
			return -1;
		len += (size_t)r;
		buf[len] = '\0';
		if (len >= 6 && !strcmp(buf + len - 6, "hello\n"))
			return (ssize_t)len;
	}
	return -1;
}

static int cmd_getfl(void)
{
	struct flag_watch w = { 0 };
	char buf[512];
	pthread_t t;
	uint64_t t0;
	ssize_t n;
	long ms;
	int fd, d, fl, on = 1;

	/* A blocking socket never shows O_NONBLOCK, not even while another
	 * thread is blocked on it. */
	fd = socket(peer.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	check("socket-blocking", nonblock_of(fd) == 0, "O_NONBLOCK set");
	check("connect", connect(fd, (struct sockaddr *)&peer, peer_len) == 0,
	      "%s", hp_errname(errno));
	check("after-connect", nonblock_of(fd) == 0, "O_NONBLOCK set");
	w.fd = fd;
	pthread_create(&t, NULL, getfl_watcher, &w);
	/* The server's delay starts once it has the request: no earlier
	 * than this (a clock read after the write could come later still,
	 * when the thread is preempted in between). */
	t0 = hp_now_ns();
	http_get(fd, "/delay/300", 0);
	n = read_hello(fd, buf, sizeof(buf));
	ms = hp_ms_since(t0);
	w.stop = 1;
	pthread_join(t, NULL);
	check("blocking-read", n > 0 && ms >= 300, "n=%zd %s after %ld ms", n,
	      hp_errname(errno), ms);
	check("during-wait", !w.seen_nonblock && w.samples > 10,
	      "another thread saw O_NONBLOCK (%ld samples)", w.samples);
	check("after-read", nonblock_of(fd) == 0, "O_NONBLOCK set");

	/* The program sets O_NONBLOCK itself: EAGAIN at once, even with a
	 * response pending, and readiness through poll. */
	fl = fcntl(fd, F_GETFL);
	check("setfl", fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0, "%s",
	      hp_errname(errno));
	check("shows-nonblock", nonblock_of(fd) == 1, "O_NONBLOCK missing");
	d = dup(fd);
	check("dup-shares-nonblock", nonblock_of(d) == 1, "dup lacks it");
	t0 = hp_now_ns();
	n = recv(fd, buf, sizeof(buf), 0);
	check("eagain-idle", n < 0 && errno == EAGAIN && hp_ms_since(t0) < 50,
	      "n=%zd %s after %ld ms", n, hp_errname(errno),
	      hp_ms_since(t0));
	http_get(fd, "/delay/300", 0);
	t0 = hp_now_ns();
	n = read(fd, buf, sizeof(buf));
	check("eagain-pending", n < 0 && errno == EAGAIN &&
	      hp_ms_since(t0) < 50, "n=%zd %s after %ld ms", n,
	      hp_errname(errno), hp_ms_since(t0));
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int pr = poll(&p, 1, 3000);
	ms = hp_ms_since(t0);
	check("poll-ready", pr == 1 && (p.revents & POLLIN) && ms >= 250,
	      "poll=%d revents=0x%x after %ld ms", pr, p.revents, ms);
	n = nonblock_read_hello(d, buf, sizeof(buf));
	check("recv-after-poll", n > 0 && is_hello(buf), "n=%zd %s", n,
	      hp_errname(errno));

	/* Cleared again (through the dup): blocking again. */
	fl = fcntl(d, F_GETFL);
	check("clear", fcntl(d, F_SETFL, fl & ~O_NONBLOCK) == 0, "%s",
	      hp_errname(errno));
	check("cleared", nonblock_of(fd) == 0 && nonblock_of(d) == 0,
	      "O_NONBLOCK still shown");
	close(d);
	http_get(fd, "/delay/200", 0);
	t0 = hp_now_ns();
	n = read_hello(fd, buf, sizeof(buf));
	ms = hp_ms_since(t0);
	check("blocking-again", n > 0 && ms >= 200, "n=%zd %s after %ld ms", n,
	      hp_errname(errno), ms);

	/* ioctl(FIONBIO) is the other way programs set O_NONBLOCK. */
	check("fionbio", ioctl(fd, FIONBIO, &on) == 0 && nonblock_of(fd) == 1,
	      "%s", hp_errname(errno));
	n = recv(fd, buf, sizeof(buf), 0);
	check("fionbio-eagain", n < 0 && errno == EAGAIN, "n=%zd %s", n,
	      hp_errname(errno));
	on = 0;
	check("fionbio-off", ioctl(fd, FIONBIO, &on) == 0 &&
	      nonblock_of(fd) == 0, "%s", hp_errname(errno));
	close(fd);

	/* SOCK_NONBLOCK at creation; the non-blocking connect protocol. */
	fd = socket(peer.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	check("sock-nonblock", nonblock_of(fd) == 1, "O_NONBLOCK missing");
	int cr = connect(fd, (struct sockaddr *)&peer, peer_len);
	check("nb-connect", cr == 0 || errno == EINPROGRESS, "%s",
	      hp_errname(errno));
	p.fd = fd;
	p.events = POLLOUT;
	int err = -1;
	socklen_t el = sizeof(err);
	check("nb-connect-done", poll(&p, 1, 3000) == 1 &&
	      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0,
	      "SO_ERROR %s", hp_errname(err));
	n = recv(fd, buf, sizeof(buf), 0);
	check("nb-eagain", n < 0 && errno == EAGAIN, "n=%zd %s", n,
	      hp_errname(errno));
	check("nb-still-shown", nonblock_of(fd) == 1, "O_NONBLOCK missing");
	close(fd);

	out("GETFL %s\n", failures ? "FAIL" : "OK");
	return failures ? 1 : 0;
}

/* ================================================================== */
/* errno                                                               */
/* ================================================================== */

#define SENTINEL 4242

static void errno_ok(const char *name, long ret, int e)
{
	check(name, ret >= 0 && e == SENTINEL, "ret=%ld errno=%s (%d)", ret,
	      e == SENTINEL ? "sentinel" : hp_errname(e), e);
}

static void errno_fails(const char *name, long ret, int e, int want)
{
	check(name, ret == -1 && e == want, "ret=%ld errno=%s want %s", ret,
	      e == SENTINEL ? "unchanged" : hp_errname(e), hp_errname(want));
}

/* Evaluate expr with errno preset to SENTINEL; success must leave errno
 * alone, failure must set exactly `want`. */
#define OK(name, expr) do {						\
		errno = SENTINEL;					\
		long r_ = (long)(expr);					\
		errno_ok(name, r_, errno);				\
	} while (0)
#define FAILS(name, want, expr) do {					\
		errno = SENTINEL;					\
		long r_ = (long)(expr);					\
		errno_fails(name, r_, errno, want);			\
	} while (0)

static void errno_passthrough(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	char buf[256];
	int p[2], sp[2], u, f;

	OK("pipe2", pipe2(p, O_CLOEXEC));
	OK("pipe-write", write(p[1], "x", 1));
	OK("pipe-read", read(p[0], buf, 1));
	OK("pipe-poll", ({
		struct pollfd pf = { .fd = p[1], .events = POLLOUT };
		poll(&pf, 1, 100);
	}));
	FAILS("pipe-recv", ENOTSOCK, recv(p[0], buf, 1, 0));
	FAILS("pipe-send", ENOTSOCK, send(p[1], "x", 1, 0));
	FAILS("pipe-shutdown", ENOTSOCK, shutdown(p[0], SHUT_RD));
	close(p[0]);
	FAILS("pipe-epipe", EPIPE, write(p[1], "x", 1));
	close(p[1]);

	OK("socketpair", socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				    sp));
	OK("unix-send", send(sp[0], "hello", 5, 0));
	OK("unix-recv", recv(sp[1], buf, sizeof(buf), 0));
	OK("unix-write", write(sp[1], "x", 1));
	OK("unix-read", read(sp[0], buf, 1));
	FAILS("unix-eagain", EAGAIN, recv(sp[0], buf, 1, MSG_DONTWAIT));
	OK("unix-close", close(sp[0]));
	OK("unix-eof", read(sp[1], buf, 1));
	close(sp[1]);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	OK("udp-socket", u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
	OK("udp-bind", bind(u, (struct sockaddr *)&a, sizeof(a)));
	OK("udp-getsockname", getsockname(u, (struct sockaddr *)&a, &al));
	OK("udp-sendto", sendto(u, "ping", 4, 0, (struct sockaddr *)&a,
				sizeof(a)));
	OK("udp-recvfrom", recvfrom(u, buf, sizeof(buf), 0, NULL, NULL));
	FAILS("udp-eagain", EAGAIN, recv(u, buf, 1, MSG_DONTWAIT));
	OK("udp-connect", connect(u, (struct sockaddr *)&a, sizeof(a)));
	OK("udp-send", send(u, "pong", 4, 0));
	OK("udp-recv", recv(u, buf, sizeof(buf), 0));
	OK("udp-close", close(u));

	OK("file-open", f = open("/dev/null", O_RDWR | O_CLOEXEC));
	OK("file-write", write(f, "x", 1));
	OK("file-read", read(f, buf, 1));
	OK("file-getfl", fcntl(f, F_GETFL));
	FAILS("file-recv", ENOTSOCK, recv(f, buf, 1, 0));
	FAILS("file-connect", ENOTSOCK, connect(f, (struct sockaddr *)&peer,
						peer_len));
	FAILS("file-getsockopt", ENOTSOCK, ({
		int v; socklen_t vl = sizeof(v);
		getsockopt(f, SOL_SOCKET, SO_ERROR, &v, &vl);
	}));
	OK("file-close", close(f));
	FAILS("closed-read", EBADF, read(f, buf, 1));
	FAILS("closed-write", EBADF, write(f, buf, 1));
	FAILS("closed-close", EBADF, close(f));
	FAILS("closed-fcntl", EBADF, fcntl(f, F_GETFL));
	FAILS("closed-recv", EBADF, recv(f, buf, 1, 0));
	FAILS("closed-send", EBADF, send(f, buf, 1, 0));
	FAILS("closed-select", EBADF, ({
		fd_set rs; struct timeval tv = { 0, 0 };
		FD_ZERO(&rs); FD_SET(f, &rs);
		select(f + 1, &rs, NULL, NULL, &tv);
	}));
	OK("closed-poll-nval", ({
		struct pollfd pf = { .fd = f, .events = POLLIN };
		int pr = poll(&pf, 1, 0);
		pr == 1 && pf.revents == POLLNVAL ? 0 : -1;
	}));
	FAILS("neg-read", EBADF, read(-1, buf, 1));
	FAILS("neg-close", EBADF, close(-1));
}

static void errno_tcp(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	char buf[512];
	int s, one = 1, t, fl, d, ep;

	/* Tracked TCP socket, successful calls, including a read that has to
	 * wait 150 ms for the answer. */
	OK("tcp-socket", s = socket(peer.ss_family, SOCK_STREAM | SOCK_CLOEXEC,
				    0));
	OK("tcp-setsockopt", setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one,
					sizeof(one)));
	FAILS("tcp-getpeername-unconnected", ENOTCONN,
	      getpeername(s, (struct sockaddr *)&a, &al));
	FAILS("tcp-recv-unconnected", ENOTCONN, recv(s, buf, 1, 0));
	OK("tcp-connect", connect(s, (struct sockaddr *)&peer, peer_len));
	FAILS("tcp-connect-again", EISCONN,
	      connect(s, (struct sockaddr *)&peer, peer_len));
	al = sizeof(a);
	OK("tcp-getpeername", getpeername(s, (struct sockaddr *)&a, &al));
	FAILS("tcp-eagain", EAGAIN, recv(s, buf, 1, MSG_DONTWAIT));
	OK("tcp-send", http_get(s, "/delay/150", 0));
	OK("tcp-wait-read", ({
		ssize_t n = read_hello(s, buf, sizeof(buf));
		n > 0 && is_hello(buf) ? 0 : -1;
	}));
	OK("tcp-send-2", http_get(s, "/hello", 0));
	OK("tcp-recv", ({
		size_t len = 0;
		ssize_t n = 0;
		while (len < sizeof(buf) - 1 &&
		       (n = recv(s, buf + len, sizeof(buf) - 1 - len, 0)) > 0) {
			len += (size_t)n;
			buf[len] = '\0';
			if (strstr(buf, "hello\n"))
				break;
		}
		n > 0 ? 0 : -1;
	}));
	OK("tcp-getsockopt", ({
		int v = -1; socklen_t vl = sizeof(v);
		getsockopt(s, SOL_SOCKET, SO_ERROR, &v, &vl) == 0 && v == 0 ?
			0 : -1;
	}));
	FAILS("tcp-getsockopt-bad", ENOPROTOOPT, ({
		int v; socklen_t vl = sizeof(v);
		getsockopt(s, SOL_SOCKET, 12345, &v, &vl);
	}));
	OK("tcp-getfl", fl = fcntl(s, F_GETFL));
	OK("tcp-setfl", fcntl(s, F_SETFL, fl));
	OK("tcp-dup", d = dup(s));
	OK("tcp-dup-close", close(d));
	OK("tcp-epoll", ({
		struct epoll_event ev = { .events = EPOLLOUT };
		int r = -1;
		ep = epoll_create1(EPOLL_CLOEXEC);
		if (ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) == 0)
			r = epoll_wait(ep, &ev, 1, 1000) == 1 ? 0 : -1;
		close(ep);
		r;
	}));
	OK("tcp-shutdown", shutdown(s, SHUT_WR));
	OK("tcp-eof", recv(s, buf, sizeof(buf), 0));
	OK("tcp-close", close(s));

	/* Failing TCP calls. */
	OK("tcp-socket-2", t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
	FAILS("tcp-send-unconnected", EPIPE, send(t, "x", 1, MSG_NOSIGNAL));
	FAILS("tcp-accept-unlistened", EINVAL, accept(t, NULL, NULL));
	a.sin_family = AF_INET;
	a.sin_port = 0;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	OK("tcp-bind", bind(t, (struct sockaddr *)&a, sizeof(a)));
	FAILS("tcp-bind-again", EINVAL, bind(t, (struct sockaddr *)&a,
					     sizeof(a)));
	al = sizeof(a);
	OK("tcp-getsockname", getsockname(t, (struct sockaddr *)&a, &al));
	/* t is bound but not listening: connecting to it is refused. */
	OK("tcp-socket-3", s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
	FAILS("tcp-refused", ECONNREFUSED, connect(s, (struct sockaddr *)&a,
						   sizeof(a)));
	close(s);
	close(t);
}

static int cmd_errno(void)
{
	signal(SIGPIPE, SIG_IGN);
	errno_passthrough();
	errno_tcp();
	out("ERRNO %s\n", failures ? "FAIL" : "OK");
	return failures ? 1 : 0;
}

/* ================================================================== */
/* eintr                                                               */
/* ================================================================== */

static volatile sig_atomic_t signals_seen;

static void on_usr1(int sig)
{
	(void)sig;
	signals_seen++;
}

struct kicker {
	pthread_t target;
	long first_ms;
	long every_ms;	/* 0: once */
	atomic_int stop;
};

static void *kicker_thread(void *p)
{
	struct kicker *k = p;

	hp_sleep_ms(k->first_ms);
	do {
		if (k->stop)
			break;
		pthread_kill(k->target, SIGUSR1);
		if (k->every_ms)
			hp_sleep_ms(k->every_ms);
	} while (k->every_ms);
	return NULL;
}

/* Run op (0 = read, 1 = poll) on a fresh connection whose answer comes
 * after delay_ms while SIGUSR1 arrives after first_ms (and every every_ms
 * if nonzero).  Prints "<tag> restart=<r> -> OK|ERR <ENAME>" plus timing. */
static void eintr_case(const char *tag, int op, long delay_ms, long first_ms,
		       long every_ms, int *err, long *ms)
{
	struct kicker k = { pthread_self(), first_ms, every_ms, 0 };
	char path[32], buf[512];
	pthread_t t;
	/* From before connect(): a request deadline starts there. */
	uint64_t t0 = hp_now_ns();
	long r;
	int fd = tcp_connect_or_die();

	snprintf(path, sizeof(path), "/delay/%ld", delay_ms);
	http_get(fd, path, 1);
	pthread_create(&t, NULL, kicker_thread, &k);
	if (op == 0) {
		r = read(fd, buf, sizeof(buf));
	} else {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		r = poll(&p, 1, 5000);
	}
	*err = r < 0 ? errno : 0;
	*ms = hp_ms_since(t0);
	k.stop = 1;
	pthread_join(t, NULL);
	close(fd);
	out("%s restart=%d -> %s %s\n", tag, arg.restart, r < 0 ? "ERR" : "OK",
	    r < 0 ? hp_errname(*err) : "data");
	out("TIME %s %ld\n", tag, *ms);
}

static int cmd_eintr(void)
{
	struct sigaction sa;
	int err;
	long ms;

	if (arg.restart < 0)
		hp_die("eintr needs --restart 0|1");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = arg.restart ? SA_RESTART : 0;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	if (arg.other_handler) {
		/* A handler for a signal that never comes, without
		 * SA_RESTART (crash reporters, ASan, Python do this): it must
		 * not change how SIGUSR1 interrupts. */
		sa.sa_flags = 0;
		sigaction(SIGUSR2, &sa, NULL);
	}

	if (arg.limit > 0) {
		/* Signals every 100 ms must neither reset the deadline nor
		 * hide EINTR the kernel would report. */
		eintr_case("DEADLINE", 0, arg.limit * 10, 100, 100, &err, &ms);
		if (arg.restart)
			check("deadline", err == ETIMEDOUT &&
			      in_window(ms, arg.limit),
			      "%s after %ld ms, want ETIMEDOUT in [%ld,%ld]",
			      hp_errname(err), ms, arg.limit,
			      arg.limit + arg.slack);
		else
			check("deadline", err == EINTR && ms >= 100 &&
			      ms < arg.limit, "%s after %ld ms, want EINTR at "
			      "100 ms", hp_errname(err), ms);
		return failures ? 1 : 0;
	}

	/* read(): restarted under SA_RESTART, EINTR without. */
	eintr_case("READ", 0, 600, 200, 0, &err, &ms);
	if (arg.restart)
		check("read", err == 0 && ms >= 600, "%s after %ld ms",
		      hp_errname(err), ms);
	else
		check("read", err == EINTR && ms >= 200 && ms < 550,
		      "%s after %ld ms", hp_errname(err), ms);
	/* poll(): never restarted. */
	eintr_case("POLL", 1, 600, 200, 0, &err, &ms);
	check("poll", err == EINTR && ms >= 200 && ms < 550, "%s after %ld ms",
	      hp_errname(err), ms);
	check("signals", signals_seen == 2, "%d signals handled",
	      (int)signals_seen);
	return failures ? 1 : 0;
}

/* ================================================================== */
/* fdreserved                                                          */
/* ================================================================== */

/* Every I/O call on a dead fd must fail with ETIMEDOUT. */
static void all_io_timedout(int fd, const char *round)
{
	char buf[64] = "x", name[64];
	struct iovec iov = { buf, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	static const char *const ops[] = { "read", "recv", "recvfrom",
		"recvmsg", "readv", "write", "send", "sendto", "sendmsg",
		"writev" };

	for (int i = 0; i < 10; i++) {
		ssize_t r;

		errno = 0;
		switch (i) {
		case 0: r = read(fd, buf, sizeof(buf)); break;
		case 1: r = recv(fd, buf, sizeof(buf), 0); break;
		case 2: r = recvfrom(fd, buf, sizeof(buf), 0, NULL, NULL); break;
		case 3: r = recvmsg(fd, &mh, 0); break;
		case 4: r = readv(fd, &iov, 1); break;
		case 5: r = write(fd, buf, 1); break;
		case 6: r = send(fd, buf, 1, 0); break;
		case 7: r = sendto(fd, buf, 1, 0, NULL, 0); break;
		case 8: r = sendmsg(fd, &mh, 0); break;
		default: r = writev(fd, &iov, 1); break;
		}
		snprintf(name, sizeof(name), "%s-%s", round, ops[i]);
		check(name, r == -1 && errno == ETIMEDOUT, "ret=%zd errno=%s",
		      r, hp_errname(errno));
	}
}

struct opener {
	int fd;
	int clash;
};

/* Open fds of several kinds; none may get the reserved number. */
static void *open_many(void *p)
{
	struct opener *o = p;
	int fds[48], n = 0;

	for (int i = 0; i < 12; i++) {
		int pp[2];

		fds[n++] = socket(AF_INET, SOCK_STREAM, 0);
		fds[n++] = open("/dev/null", O_RDONLY);
		if (pipe(pp) == 0) {
			fds[n++] = pp[0];
			fds[n++] = pp[1];
		}
	}
	for (int i = 0; i < n; i++) {
		if (fds[i] == o->fd)
			o->clash++;
		if (fds[i] >= 0)
			close(fds[i]);
	}
	return NULL;
}

static int cmd_fdreserved(void)
{
	struct opener o = { 0 };
	pthread_t t;
	uint64_t t0;
	char buf[64];
	ssize_t r;
	int fd;

	/* A dead socket must not raise SIGPIPE; if the shim passed a write
	 * through to it we want to see the errno, not die. */
	signal(SIGPIPE, SIG_IGN);
	t0 = hp_now_ns();
	fd = tcp_connect_or_die();
	hp_send_all(fd, "hi", 2);
	r = recv(fd, buf, sizeof(buf), 0);
	if (r != -1 || errno != ETIMEDOUT) {
		out("NOT-EXPIRED ret=%zd errno=%s ms=%ld\n", r,
		    hp_errname(errno), hp_ms_since(t0));
		return 1;
	}
	out("EXPIRED fd=%d ms=%ld\n", fd, hp_ms_since(t0));

	check("getfd", fcntl(fd, F_GETFD) >= 0, "%s", hp_errname(errno));
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int pr = poll(&p, 1, 0);
	check("poll-not-nval", pr >= 0 && !(p.revents & POLLNVAL),
	      "poll=%d revents=0x%x", pr, p.revents);
	all_io_timedout(fd, "io");

	o.fd = fd;
	open_many(&o);
	pthread_create(&t, NULL, open_many, &o);
	pthread_join(t, NULL);
	check("reserved", o.clash == 0, "fd %d handed out %d times", fd,
	      o.clash);

	hp_sleep_ms(arg.hold);
	all_io_timedout(fd, "late");
	check("getfd-late", fcntl(fd, F_GETFD) >= 0, "%s", hp_errname(errno));
	check("close", close(fd) == 0, "%s", hp_errname(errno));
	errno = 0;
	check("closed", fcntl(fd, F_GETFD) == -1 && errno == EBADF,
	      "fd still open after close (%s)", hp_errname(errno));
	out("FDRESERVED %s\n", failures ? "FAIL" : "OK");
	return failures ? 1 : 0;
}

/* ================================================================== */
/* bulk                                                                */
/* ================================================================== */

/* Chunk sizes cycle so that partial reads and writes of every shape
 * happen, not just page-sized ones. */
static const size_t chunk_sizes[] = { 65536, 1, 1500, 4096, 100000, 7,
				      32768, 262144, 333 };
#define NCHUNK (sizeof(chunk_sizes) / sizeof(chunk_sizes[0]))

struct bulk_writer {
	int fd;
	int err;
	unsigned long long sent;
};

static void *bulk_write(void *p)
{
	struct bulk_writer *w = p;
	unsigned long long total = (unsigned long long)arg.bytes;
	char *buf = malloc(262144);
	size_t ci = 0;

	if (!buf)
		hp_die("out of memory");
	while (w->sent < total) {
		size_t k = chunk_sizes[ci++ % NCHUNK];

		if (k > total - w->sent)
			k = (size_t)(total - w->sent);
		hp_pattern_fill(arg.seed, w->sent, buf, k);
		if (hp_send_all(w->fd, buf, k) < 0) {
			w->err = errno;
			break;
		}
		w->sent += k;
	}
	if (!w->err && shutdown(w->fd, SHUT_WR) < 0)
		w->err = errno;
	free(buf);
	return NULL;
}

/* Read to EOF verifying the stream; returns bytes read or -1. */
static long long bulk_read(int fd, long long *bad)
{
	char *buf = malloc(262144);
	unsigned long long off = 0;
	size_t ci = 3;
	ssize_t r;

	if (!buf)
		hp_die("out of memory");
	*bad = -1;
	while ((r = read(fd, buf, chunk_sizes[ci++ % NCHUNK])) > 0) {
		if (*bad < 0) {
			long long at = hp_pattern_check(arg.seed, off, buf,
							(size_t)r);
			if (at >= 0)
				*bad = (long long)off + at;
		}
		off += (unsigned long long)r;
	}
	free(buf);
	return r < 0 ? -1 : (long long)off;
}

static int cmd_bulk(void)
{
	struct bulk_writer w = { 0 };
	pthread_t t;
	long long got, bad = -1;
	uint64_t t0 = hp_now_ns();
	int rc = 0;

	if (!arg.mode)
		hp_die("bulk needs --mode source|echo|sink");
	signal(SIGPIPE, SIG_IGN);
	w.fd = tcp_connect_or_die();
	if (!strcmp(arg.mode, "source")) {
		got = bulk_read(w.fd, &bad);
	} else if (!strcmp(arg.mode, "echo")) {
		pthread_create(&t, NULL, bulk_write, &w);
		got = bulk_read(w.fd, &bad);
		pthread_join(t, NULL);
	} else if (!strcmp(arg.mode, "sink")) {
		char reply[128];
		size_t len = 0;
		ssize_t r;

		bulk_write(&w);
		while (len < sizeof(reply) - 1 &&
		       (r = read(w.fd, reply + len, sizeof(reply) - 1 - len)) > 0)
			len += (size_t)r;
		reply[len] = '\0';
		reply[strcspn(reply, "\n")] = '\0';
		got = (long long)w.sent;
		if (strncmp(reply, "SINK OK ", 8) ||
		    atoll(reply + 8) != arg.bytes) {
			out("SINKREPLY '%s'\n", reply);
			bad = 0;
		}
	} else {
		hp_die("unknown --mode %s", arg.mode);
	}
	close(w.fd);
	if (w.err || got < 0) {
		out("ERR %s %ld\n", hp_errname(w.err ? w.err : errno),
		    hp_ms_since(t0));
		return 1;
	}
	if (bad >= 0 || got != arg.bytes) {
		out("MISMATCH bytes=%lld first_bad=%lld\n", got, bad);
		rc = 1;
	} else {
		out("OK %lld identical\n", got);
	}
	out("TIME %ld\n", hp_ms_since(t0));
	return rc;
}

/* ================================================================== */
/* forksock                                                            */
/* ================================================================== */

static atomic_int forksock_done;

static void *forksock_forker(void *unused)
{
	(void)unused;
	for (int i = 0; i < arg.n; i++) {
		pid_t pid = fork();

		if (pid == 0)
			_exit(0);
		if (pid < 0)
			hp_die("fork: %s", strerror(errno));
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	atomic_store(&forksock_done, 1);
	return NULL;
}

static int cmd_forksock(void)
{
	pthread_t t;
	long sockets = 0;

	if (arg.n <= 0)
		arg.n = 50;
	if (pthread_create(&t, NULL, forksock_forker, NULL))
		hp_die("pthread_create failed");
	while (!atomic_load(&forksock_done)) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		if (fd < 0)
			hp_die("socket: %s", strerror(errno));
		close(fd);
		sockets++;
	}
	pthread_join(t, NULL);
	out("FORKSOCK forks=%d sockets=%ld\n", arg.n, sockets);
	return 0;
}

/* ================================================================== */
/* main                                                                */
/* ================================================================== */

static const struct {
	const char *name;
	int (*fn)(void);
	int needs_peer;
} cmds[] = {
	{ "rw", cmd_rw, 1 },
	{ "threads", cmd_threads, 1 },
	{ "closerace", cmd_closerace, 1 },
	{ "fork", cmd_fork, 1 },
	{ "fdlist", cmd_fdlist, 0 },
	{ "fdopen", cmd_fdopen, 1 },
	{ "getfl", cmd_getfl, 1 },
	{ "errno", cmd_errno, 1 },
	{ "eintr", cmd_eintr, 1 },
	{ "fdreserved", cmd_fdreserved, 1 },
	{ "bulk", cmd_bulk, 1 },
	{ "forksock", cmd_forksock, 0 },
};

static void usage(void)
{
	fprintf(stderr, "usage: dlclient SUBCOMMAND [HOST PORT] [options]\n"
			"subcommands:");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(stderr, " %s", cmds[i].name);
	fprintf(stderr, "\n(see the comment at the top of dlclient.c)\n");
	exit(2);
}

static void parse_opts(int argc, char **argv, int i)
{
	for (; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--nonblock")) {
			arg.nonblock = 1;
			continue;
		}
		if (!strcmp(a, "--other-handler")) {
			arg.other_handler = 1;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--send"))
			arg.send = v;
		else if (!strcmp(a, "--recv"))
			arg.recv = hp_num(v, 0, LLONG_MAX, "--recv");
		else if (!strcmp(a, "--expect"))
			arg.expect = v;
		else if (!strcmp(a, "--mode"))
			arg.mode = v;
		else if (!strcmp(a, "--limit"))
			arg.limit = (long)hp_num(v, 0, 60000, "--limit");
		else if (!strcmp(a, "--slack"))
			arg.slack = (long)hp_num(v, 0, 60000, "--slack");
		else if (!strcmp(a, "--hold"))
			arg.hold = (long)hp_num(v, 0, 60000, "--hold");
		else if (!strcmp(a, "--bytes"))
			arg.bytes = hp_num(v, 0, LLONG_MAX, "--bytes");
		else if (!strcmp(a, "--seed"))
			arg.seed = (uint64_t)hp_num(v, 0, LLONG_MAX, "--seed");
		else if (!strcmp(a, "--restart"))
			arg.restart = (int)hp_num(v, 0, 1, "--restart");
		else if (!strcmp(a, "--n"))
			arg.n = (int)hp_num(v, 1, 1000, "--n");
		else
			usage();
	}
}

int main(int argc, char **argv)
{
	size_t i;

	if (argc < 2)
		usage();
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			break;
	if (i == sizeof(cmds) / sizeof(cmds[0]))
		usage();
	if (cmds[i].needs_peer) {
		if (argc < 4)
			usage();
		arg.host = argv[2];
		arg.port = (int)hp_num(argv[3], 1, 65535, "port");
		hp_loopback(arg.host, arg.port, &peer, &peer_len);
		parse_opts(argc, argv, 4);
	} else {
		parse_opts(argc, argv, 2);
	}
	return cmds[i].fn();
}
