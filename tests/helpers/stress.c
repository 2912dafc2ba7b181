/* stress - many threads, many connections, deadlines firing everywhere.
 *
 *   stress --echo P --silent P --silent2 P --http P
 *          [--host2 127.0.0.2] [--threads 64] [--conns 2000] [--seed S]
 *          [--silent-limit 300] [--silent2-limit 400] [--http-limit 500]
 *          [--slack 1000] [--forks 16] [--watchdog 110] [--only KIND,...]
 *
 * Run it under the shim with a DEADLINE_CONFIG whose rules give each
 * server its own limits (tests/realworld/test_stress.c writes one):
 *
 *   silent  (127.0.0.1:--silent,  stallsrv silent)  request    --silent-limit
 *   silent2 (--host2:--silent2,   stallsrv silent)  first_byte --silent2-limit
 *   http    (127.0.0.1:--http,    stallsrv http)    first_byte --http-limit
 *   echo    (127.0.0.1:--echo,    stallsrv echo)    idle       (never fires)
 *
 * --threads workers share --conns connections; each connection is one of
 * the kinds below, drawn at random from --seed:
 *
 *   echo       random payload in random chunks, echoed back and verified;
 *              plain, through dup() or through dup2() onto a placeholder
 *   silent     a request nobody answers: must fail ETIMEDOUT at the limit;
 *              plain, through dup(), through dup2(), or waiting in
 *              poll(-1) first
 *   silent2    the same, matched by cidr, first-byte limit
 *   http-fast  GET /delay/0..100: must succeed
 *   http-slow  GET /delay/(limit+300..): must fail ETIMEDOUT at the limit
 *   keepalive  four requests with pauses on one connection: must succeed
 *   victim     a silent read that another thread close()s while the read
 *              is blocked (seen in /proc/self/task/TID/syscall): the read
 *              must still end with ETIMEDOUT at the limit and never return
 *              data (which could only come from a socket that reused the
 *              number)
 *   nbecho     non-blocking connect + poll loop against echo
 *
 * Meanwhile a forker thread fork()s --forks times; each child runs a few
 * exchanges of its own (one of them must time out) and _exit()s; a child
 * still alive after 15 s counts as deadlocked.
 *
 * Failures are printed (the first 40) as "FAIL conn=... kind=...: why" and
 * counted per kind and errno ("FAILS kind=... errno=... n=...").
 *
 * Checks: every connection ends as its kind says; no worker stuck past
 * --watchdog seconds (then the threads' system calls are printed and the
 * exit status is 3); the open fds after the run are the ones before it.
 * Prints "FAIL ..." lines, per-kind counters, and a last line
 * "STRESS OK ..." or "STRESS FAILED ...".  Exit 0 only when all checks pass.
 */
#include "helpers.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static struct {
	const char *host;
	const char *host2;
	int echo, silent, silent2, http;
	int threads;
	long conns;
	uint64_t seed;
	long silent_limit, silent2_limit, http_limit, slack;
	int forks;
	long watchdog;
	unsigned only;	/* bit mask of kinds, equal weights; 0 = the mix */
} opt = {
	.host = "127.0.0.1",
	.host2 = "127.0.0.2",
	.threads = 64,
	.conns = 2000,
	.seed = 1,
	.silent_limit = 300,
	.silent2_limit = 400,
	.http_limit = 500,
	.slack = 1000,
	.forks = 16,
	.watchdog = 110,
};

enum kind {
	K_ECHO,
	K_SILENT,
	K_SILENT2,
	K_HTTP_FAST,
	K_HTTP_SLOW,
	K_KEEPALIVE,
	K_VICTIM,
	K_NBECHO,
	K_COUNT
};

static const char *const kind_name[K_COUNT] = {
	"echo", "silent", "silent2", "http-fast", "http-slow", "keepalive",
	"victim", "nbecho",
};

/* Cumulative distribution, in percent, of the kinds above. */
static const int kind_cdf[K_COUNT] = { 22, 37, 45, 58, 67, 75, 88, 100 };

/* What one connection did. */
struct res {
	int ok;
	int err;	/* errno of the failure, 0 if none/not an errno */
	long late_ms;	/* for an expected timeout: ms past the limit */
	char why[160];
};

static atomic_long next_conn;
static atomic_long n_ok[K_COUNT], n_fail[K_COUNT];
static atomic_long n_fail_errno[K_COUNT][134];	/* [kind][errno], 0 = other */
static atomic_long max_late;
static atomic_long timeouts_expected;
static atomic_int failures_printed;
static atomic_int done_flag;

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static uint64_t rng_next(uint64_t *s)
{
	*s = hp_mix64(*s);
	return *s;
}

static long rng_range(uint64_t *s, long lo, long hi)
{
	return lo + (long)(rng_next(s) % (uint64_t)(hi - lo + 1));
}

__attribute__((format(printf, 3, 4)))
static void res_fail(struct res *r, int e, const char *fmt, ...)
{
	va_list ap;
	int n;

	r->ok = 0;
	r->err = e;
	va_start(ap, fmt);
	n = vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
	if (e && n >= 0 && (size_t)n < sizeof(r->why))
		snprintf(r->why + n, sizeof(r->why) - (size_t)n, " (%s)",
			 hp_errname(e));
}

static int tcp_to(const char *host, int port, int nonblock)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	hp_loopback(host, port, &ss, &len);
	fd = socket(ss.ss_family,
		    SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0),
		    0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&ss, len) < 0 &&
	    !(nonblock && errno == EINPROGRESS)) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Read one HTTP response with a Content-Length; returns the body length,
 * or -1 with errno. */
static long read_http(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	char *end;

	buf[0] = '\0';
	while (!(end = strstr(buf, "\r\n\r\n"))) {
		ssize_t r;

		if (len >= cap - 1) {
			errno = EMSGSIZE;
			return -1;
		}
		r = recv(fd, buf + len, cap - 1 - len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EPROTO;
			return -1;
		}
		len += (size_t)r;
		buf[len] = '\0';
	}
	const char *cl = strstr(buf, "Content-Length: ");
	long body = cl ? atol(cl + 16) : -1;
	size_t have = len - (size_t)(end + 4 - buf);

	if (body < 0 || (size_t)body + (size_t)(end + 4 - buf) >= cap) {
		errno = EPROTO;
		return -1;
	}
	if ((size_t)body > have &&
	    hp_read_full(fd, buf + len, (size_t)body - have) < 0)
		return -1;
	buf[(size_t)(end + 4 - buf) + (size_t)body] = '\0';
	return body;
}

static int http_get(int fd, long delay_ms)
{
	char req[128];
	int n = snprintf(req, sizeof(req),
			 "GET /delay/%ld HTTP/1.1\r\nHost: stress\r\n\r\n",
			 delay_ms);

	return hp_send_all(fd, req, (size_t)n);
}

/* An expected timeout: errno must be ETIMEDOUT, after at least limit ms
 * and at most limit + slack ms from t0. */
static void expect_timeout(struct res *r, int got, int e, uint64_t t0,
			   long limit, const char *what)
{
	long ms = hp_ms_since(t0);

	if (got >= 0) {
		res_fail(r, 0, "%s: got %d bytes instead of a timeout after %ld ms",
			 what, got, ms);
		return;
	}
	if (e != ETIMEDOUT) {
		res_fail(r, e, "%s: failed after %ld ms, not with ETIMEDOUT",
			 what, ms);
		r->err = e;
		return;
	}
	if (ms < limit || ms > limit + opt.slack) {
		res_fail(r, 0, "%s: ETIMEDOUT after %ld ms, limit %ld slack %ld",
			 what, ms, limit, opt.slack);
		return;
	}
	r->late_ms = ms - limit;
}

/* ------------------------------------------------------------------ */
/* Connection kinds                                                    */
/* ------------------------------------------------------------------ */

/* How the socket is used: directly, through dup(), or through dup2() onto
 * a placeholder number (the original is closed either way). */
static int rehome(int fd, int how)
{
	int nfd, ph;

	switch (how) {
	case 1:
		nfd = dup(fd);
		break;
	case 2:
		ph = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (ph < 0)
			return fd;
		nfd = dup2(fd, ph);
		if (nfd < 0)
			close(ph);
		break;
	default:
		return fd;
	}
	if (nfd < 0)
		return fd;
	close(fd);
	return nfd;
}

static void run_echo(struct res *r, uint64_t *rng, int how)
{
	size_t n = (size_t)rng_range(rng, 1, 48 * 1024), sent = 0;
	uint64_t seed = rng_next(rng);
	char *out = malloc(n), *in = malloc(n);
	int fd = -1;

	if (!out || !in) {
		res_fail(r, ENOMEM, "echo: malloc");
		goto done;
	}
	hp_pattern_fill(seed, 0, out, n);
	fd = tcp_to(opt.host, opt.echo, 0);
	if (fd < 0) {
		res_fail(r, errno, "echo: connect");
		goto done;
	}
	fd = rehome(fd, how);
	/* Chunks small enough that the echo never fills both buffers. */
	while (sent < n) {
		size_t k = (size_t)rng_range(rng, 1, 8192);

		if (k > n - sent)
			k = n - sent;
		if (hp_send_all(fd, out + sent, k) < 0) {
			res_fail(r, errno, "echo: send at %zu", sent);
			goto done;
		}
		if (hp_read_full(fd, in + sent, k) < 0) {
			res_fail(r, errno, "echo(how=%d): read at %zu of %zu",
				 how, sent, n);
			goto done;
		}
		sent += k;
		if (rng_range(rng, 0, 15) == 0)
			hp_sleep_ms(rng_range(rng, 1, 30));
	}
	if (memcmp(in, out, n)) {
		res_fail(r, 0, "echo: %zu bytes came back changed at %lld", n,
			 hp_pattern_check(seed, 0, in, n));
		goto done;
	}
	r->ok = 1;
done:
	if (fd >= 0)
		close(fd);
	free(out);
	free(in);
}

static void run_nbecho(struct res *r, uint64_t *rng)
{
	char out[2048], in[2048];
	size_t n = (size_t)rng_range(rng, 1, sizeof(out)), got = 0;
	struct pollfd p;
	int fd, err = 0;
	socklen_t el = sizeof(err);

	hp_pattern_fill(rng_next(rng), 0, out, n);
	fd = tcp_to(opt.host, opt.echo, 1);
	if (fd < 0) {
		res_fail(r, errno, "nbecho: connect");
		return;
	}
	p = (struct pollfd){ .fd = fd, .events = POLLOUT };
	if (poll(&p, 1, 5000) != 1 ||
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
		res_fail(r, err, "nbecho: connect did not complete");
		close(fd);
		return;
	}
	if (send(fd, out, n, MSG_NOSIGNAL) != (ssize_t)n) {
		res_fail(r, errno, "nbecho: send");
		close(fd);
		return;
	}
	while (got < n) {
		ssize_t k;

		p = (struct pollfd){ .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 5000) != 1) {
			res_fail(r, errno, "nbecho: poll gave nothing at %zu", got);
			close(fd);
			return;
		}
		k = recv(fd, in + got, n - got, 0);
		if (k < 0 && errno == EAGAIN)
			continue;
		if (k <= 0) {
			res_fail(r, k ? errno : 0, "nbecho: recv at %zu", got);
			close(fd);
			return;
		}
		got += (size_t)k;
	}
	close(fd);
	if (memcmp(in, out, n))
		res_fail(r, 0, "nbecho: bytes changed");
	else
		r->ok = 1;
}

/* silent / silent2: one request that is never answered. */
static void run_silent(struct res *r, uint64_t *rng, int second)
{
	const char *host = second ? opt.host2 : opt.host;
	int port = second ? opt.silent2 : opt.silent;
	long limit = second ? opt.silent2_limit : opt.silent_limit;
	int how = (int)rng_range(rng, 0, 3), fd;
	uint64_t t_conn = hp_now_ns(), t_send;
	char buf[64];
	ssize_t got;

	atomic_fetch_add(&timeouts_expected, 1);
	fd = tcp_to(host, port, 0);
	if (fd < 0) {
		res_fail(r, errno, "silent: connect");
		return;
	}
	if (how < 3)
		fd = rehome(fd, how);
	t_send = hp_now_ns();
	if (hp_send_all(fd, "ping\n", 5) < 0) {
		res_fail(r, errno, "silent: send");
		close(fd);
		return;
	}
	if (how == 3) {
		/* An event-loop style wait with no timeout of its own: only
		 * the deadline can end it. */
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int pr = poll(&p, 1, -1);

		if (pr != 1 || !(p.revents & (POLLIN | POLLERR | POLLHUP))) {
			res_fail(r, errno, "silent: poll(-1) returned %d revents %#x",
				 pr, p.revents);
			close(fd);
			return;
		}
	}
	got = recv(fd, buf, sizeof(buf), 0);
	expect_timeout(r, (int)got, errno, second ? t_send : t_conn, limit,
		       second ? "silent2" : "silent");
	if (!r->why[0])
		r->ok = 1;
	else if (how)
		snprintf(r->why + strlen(r->why),
			 sizeof(r->why) - strlen(r->why), " [how=%d]", how);
	close(fd);
}

static void run_http(struct res *r, uint64_t *rng, int slow)
{
	char buf[1024];
	long delay = slow ? rng_range(rng, opt.http_limit + 300,
				      opt.http_limit + 900)
			  : rng_range(rng, 0, 100);
	uint64_t t_send;
	int fd = tcp_to(opt.host, opt.http, 0);
	long body;

	if (slow)
		atomic_fetch_add(&timeouts_expected, 1);
	if (fd < 0) {
		res_fail(r, errno, "http: connect");
		return;
	}
	t_send = hp_now_ns();
	if (http_get(fd, delay) < 0) {
		res_fail(r, errno, "http: send");
		close(fd);
		return;
	}
	body = read_http(fd, buf, sizeof(buf));
	if (slow) {
		expect_timeout(r, (int)body, errno, t_send, opt.http_limit,
			       "http-slow");
		if (!r->why[0])
			r->ok = 1;
	} else if (body != 6 || strcmp(buf + strlen(buf) - 6, "hello\n")) {
		res_fail(r, body < 0 ? errno : 0,
			 "http-fast: /delay/%ld failed after %ld ms", delay,
			 hp_ms_since(t_send));
	} else {
		r->ok = 1;
	}
	close(fd);
}

static void run_keepalive(struct res *r, uint64_t *rng)
{
	char buf[1024];
	int fd = tcp_to(opt.host, opt.http, 0);

	if (fd < 0) {
		res_fail(r, errno, "keepalive: connect");
		return;
	}
	for (int i = 0; i < 4; i++) {
		uint64_t t = hp_now_ns();

		if (http_get(fd, 20) < 0 || read_http(fd, buf, sizeof(buf)) != 6) {
			res_fail(r, errno, "keepalive: request %d failed after %ld ms",
				 i + 1, hp_ms_since(t));
			close(fd);
			return;
		}
		hp_sleep_ms(rng_range(rng, 100, 200));
	}
	close(fd);
	r->ok = 1;
}

/* ------------------------------------------------------------------ */
/* Victims and the closer thread                                       */
/* ------------------------------------------------------------------ */

enum { V_FREE, V_PUBLISHED, V_CLOSING, V_CLOSED, V_DONE };

struct victim {
	atomic_int state;
	int fd;
	pid_t tid;
	uint64_t t_pub;
};

static struct victim *victims;	/* one slot per worker */
static atomic_long v_closed, v_not_closed;

/* Nonzero when thread tid sits in a blocking wait: the same waiting
 * system call in two looks 2 ms apart. */
static int thread_blocked(pid_t tid)
{
	char path[64], a[128], b[128];
	long nr;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	for (int look = 0; look < 2; look++) {
		char *dst = look ? b : a;
		FILE *f = fopen(path, "re");
		size_t k;

		if (!f)
			return 0;
		k = fread(dst, 1, sizeof(a) - 1, f);
		fclose(f);
		dst[k] = '\0';
		if (!look)
			hp_sleep_ms(2);
	}
	if (strcmp(a, b))
		return 0;
	nr = strtol(a, NULL, 10);
	/* epoll_wait, epoll_pwait, epoll_pwait2 (the shim's private wait);
	 * read, recvfrom, poll, ppoll (a program without the shim). */
	return nr == SYS_epoll_wait || nr == SYS_epoll_pwait ||
	       nr == 441 || nr == SYS_read || nr == SYS_recvfrom ||
	       nr == SYS_poll || nr == SYS_ppoll;
}

static void *closer_main(void *p)
{
	(void)p;
	while (!atomic_load(&done_flag)) {
		for (int i = 0; i < opt.threads; i++) {
			struct victim *v = &victims[i];
			int st = V_PUBLISHED;

			if (atomic_load(&v->state) != V_PUBLISHED ||
			    hp_now_ns() - v->t_pub < 20000000u)
				continue;
			/* Close only while the owner is inside its read:
			 * before it, the read would land on whatever socket
			 * reused the number (the program's race, not the
			 * shim's). */
			if (!thread_blocked(v->tid))
				continue;
			if (!atomic_compare_exchange_strong(&v->state, &st,
							    V_CLOSING))
				continue;
			close(v->fd);
			atomic_fetch_add(&v_closed, 1);
			atomic_store(&v->state, V_CLOSED);
		}
		hp_sleep_ms(1);
	}
	return NULL;
}

static void run_victim(struct res *r, struct victim *v, int closable)
{
	char buf[64];
	uint64_t t_conn = hp_now_ns();
	int fd = tcp_to(opt.host, opt.silent, 0), st;
	ssize_t got;
	int e;

	atomic_fetch_add(&timeouts_expected, 1);
	if (fd < 0) {
		res_fail(r, errno, "victim: connect");
		return;
	}
	if (hp_send_all(fd, "ping\n", 5) < 0) {
		res_fail(r, errno, "victim: send");
		close(fd);
		return;
	}
	v->fd = fd;
	v->t_pub = hp_now_ns();
	/* One in eight is left alone: it must time out on its own. */
	if (closable)
		atomic_store(&v->state, V_PUBLISHED);
	else
		atomic_fetch_add(&v_not_closed, 1);
	got = read(fd, buf, sizeof(buf));
	e = errno;
	st = V_PUBLISHED;
	if (closable &&
	    !atomic_compare_exchange_strong(&v->state, &st, V_DONE)) {
		/* The closer has it (or let it be): wait until it is done. */
		while ((st = atomic_load(&v->state)) == V_CLOSING)
			sched_yield();
	}
	if (st == V_PUBLISHED || st == V_DONE)
		close(fd);	/* still ours */
	if (got > 0)
		res_fail(r, 0, "victim: read returned %zd bytes from a silent "
			 "server (another socket's data?)", got);
	else
		expect_timeout(r, (int)got, e, t_conn, opt.silent_limit,
			       st == V_CLOSED ? "victim(closed by another thread)"
					      : "victim");
	if (!r->why[0])
		r->ok = 1;
	atomic_store(&v->state, V_FREE);
}

/* ------------------------------------------------------------------ */
/* Workers                                                             */
/* ------------------------------------------------------------------ */

struct worker {
	int id;
	pthread_t th;
	pid_t tid;
	atomic_long conn;	/* current connection number, -1 idle */
	atomic_int kind;
};

static struct worker *workers;

static enum kind pick_kind(uint64_t *rng)
{
	long x = rng_range(rng, 0, 99);

	if (opt.only) {
		int n = __builtin_popcount(opt.only), pick = (int)(x % n);

		for (int k = 0; k < K_COUNT; k++)
			if ((opt.only >> k & 1) && pick-- == 0)
				return (enum kind)k;
	}
	for (int k = 0; k < K_COUNT; k++)
		if (x < kind_cdf[k])
			return (enum kind)k;
	return K_ECHO;
}

static void run_one(struct res *r, enum kind k, uint64_t *rng,
		    struct victim *v)
{
	memset(r, 0, sizeof(*r));
	switch (k) {
	case K_ECHO: run_echo(r, rng, (int)rng_range(rng, 0, 2)); break;
	case K_SILENT: run_silent(r, rng, 0); break;
	case K_SILENT2: run_silent(r, rng, 1); break;
	case K_HTTP_FAST: run_http(r, rng, 0); break;
	case K_HTTP_SLOW: run_http(r, rng, 1); break;
	case K_KEEPALIVE: run_keepalive(r, rng); break;
	case K_VICTIM:
		if (v) {
			run_victim(r, v, rng_range(rng, 0, 7) != 0);
			break;
		}
		run_silent(r, rng, 0);
		break;
	case K_NBECHO: run_nbecho(r, rng); break;
	default: break;
	}
}

static void *worker_main(void *p)
{
	struct worker *w = p;
	uint64_t rng = hp_mix64(opt.seed * 1000003u + (uint64_t)w->id);

	w->tid = (pid_t)syscall(SYS_gettid);
	victims[w->id].tid = w->tid;
	for (;;) {
		long n = atomic_fetch_add(&next_conn, 1);
		enum kind k;
		struct res r;

		if (n >= opt.conns)
			break;
		k = pick_kind(&rng);
		atomic_store(&w->conn, n);
		atomic_store(&w->kind, (int)k);
		run_one(&r, k, &rng, &victims[w->id]);
		if (r.ok) {
			long late = r.late_ms, cur = atomic_load(&max_late);

			atomic_fetch_add(&n_ok[k], 1);
			while (late > cur &&
			       !atomic_compare_exchange_weak(&max_late, &cur, late))
				;
		} else {
			atomic_fetch_add(&n_fail[k], 1);
			atomic_fetch_add(&n_fail_errno[k][r.err > 0 && r.err < 134
							       ? r.err : 0], 1);
			if (atomic_fetch_add(&failures_printed, 1) < 40)
				hp_say("FAIL conn=%ld thread=%d kind=%s: %s\n",
				       n, w->id, kind_name[k], r.why);
		}
	}
	atomic_store(&w->conn, -1);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* fork in the middle                                                  */
/* ------------------------------------------------------------------ */

static atomic_long fork_ok, fork_fail, fork_hung;

/* The child: a few exchanges of its own, then _exit.  No stdio (another
 * thread may have held its lock at fork); the status says what failed. */
static void child_main(uint64_t seed)
{
	static const enum kind seq[] = { K_ECHO, K_HTTP_FAST, K_SILENT,
					 K_NBECHO, K_KEEPALIVE };
	uint64_t rng = hp_mix64(seed);

	for (unsigned i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
		struct res r;

		run_one(&r, seq[i], &rng, NULL);
		if (!r.ok) {
			char line[256];
			int n = snprintf(line, sizeof(line),
					 "FAIL fork-child pid=%d step=%s: %s\n",
					 (int)getpid(), kind_name[seq[i]], r.why);

			if (n > 0 && write(1, line, (size_t)n) < 0)
				_exit(20);
			_exit(10 + (int)i);
		}
	}
	_exit(0);
}

static void dump_task_syscalls(pid_t pid, const char *who)
{
	char path[64];
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return;
	while ((e = readdir(d))) {
		char p2[400], sc[160] = "", wchan[64] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(p2, sizeof(p2), "%s/%s/syscall", path, e->d_name);
		if ((f = fopen(p2, "re"))) {
			if (!fgets(sc, sizeof(sc), f))
				sc[0] = '\0';
			fclose(f);
		}
		snprintf(p2, sizeof(p2), "%s/%s/wchan", path, e->d_name);
		if ((f = fopen(p2, "re"))) {
			if (!fgets(wchan, sizeof(wchan), f))
				wchan[0] = '\0';
			fclose(f);
		}
		sc[strcspn(sc, "\n")] = '\0';
		hp_say("STUCK %s pid=%d tid=%s syscall=[%s] wchan=%s\n", who,
		       (int)pid, e->d_name, sc, wchan);
	}
	closedir(d);
}

static void *forker_main(void *p)
{
	uint64_t rng = opt.seed ^ 0xf0f0;

	(void)p;
	for (int i = 0; i < opt.forks && !atomic_load(&done_flag); i++) {
		pid_t pid;
		int st = 0;
		uint64_t end;

		hp_sleep_ms(rng_range(&rng, 50, 400));
		pid = fork();
		if (pid < 0) {
			hp_say("FAIL fork: %s\n", strerror(errno));
			atomic_fetch_add(&fork_fail, 1);
			continue;
		}
		if (pid == 0)
			child_main(opt.seed + (uint64_t)i);
		end = hp_now_ns() + 15000000000ull;
		for (;;) {
			pid_t w = waitpid(pid, &st, WNOHANG);

			if (w == pid)
				break;
			if (hp_now_ns() > end) {
				hp_say("FAIL fork child %d still running after 15 s\n",
				       (int)pid);
				dump_task_syscalls(pid, "fork-child");
				kill(pid, SIGKILL);
				waitpid(pid, &st, 0);
				atomic_fetch_add(&fork_hung, 1);
				st = -1;
				break;
			}
			hp_sleep_ms(5);
		}
		if (st == -1)
			continue;
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
			atomic_fetch_add(&fork_ok, 1);
		} else {
			atomic_fetch_add(&fork_fail, 1);
			hp_say("FAIL fork child %d: %s %d\n", (int)pid,
			       WIFEXITED(st) ? "exit" : "signal",
			       WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		}
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* fd accounting and the watchdog                                      */
/* ------------------------------------------------------------------ */

#define MAX_FDS 4096

/* The open fds (minus the directory stream's own), sorted ascending. */
static int list_fds(int *fds, int cap)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		hp_die("opendir /proc/self/fd: %s", strerror(errno));
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && n < cap) {
			int fd = atoi(e->d_name);

			if (fd != dirfd(d))
				fds[n++] = fd;
		}
	closedir(d);
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
			int t = fds[j];

			fds[j] = fds[j - 1];
			fds[j - 1] = t;
		}
	return n;
}

static void *watchdog_main(void *p)
{
	uint64_t end = hp_now_ns() + (uint64_t)opt.watchdog * 1000000000ull;

	(void)p;
	while (!atomic_load(&done_flag)) {
		if (hp_now_ns() > end) {
			hp_say("WATCHDOG: not done after %ld s\n",
			       opt.watchdog);
			for (int i = 0; i < opt.threads; i++) {
				long c = atomic_load(&workers[i].conn);

				if (c >= 0)
					hp_say("WATCHDOG worker=%d tid=%d conn=%ld kind=%s\n",
					       i, (int)workers[i].tid, c,
					       kind_name[atomic_load(&workers[i].kind)]);
			}
			dump_task_syscalls(getpid(), "self");
			hp_say("STRESS FAILED watchdog\n");
			_exit(3);
		}
		hp_sleep_ms(100);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

static void usage(void)
{
	fprintf(stderr,
		"usage: stress --echo P --silent P --silent2 P --http P "
		"[--host2 A] [--threads N]\n"
		"              [--conns N] [--seed S] [--silent-limit MS] "
		"[--silent2-limit MS]\n"
		"              [--http-limit MS] [--slack MS] [--forks N] "
		"[--watchdog SEC]\n"
		"              [--only KIND,...]\n");
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--echo"))
			opt.echo = (int)hp_num(v, 1, 65535, a);
		else if (!strcmp(a, "--silent"))
			opt.silent = (int)hp_num(v, 1, 65535, a);
		else if (!strcmp(a, "--silent2"))
			opt.silent2 = (int)hp_num(v, 1, 65535, a);
		else if (!strcmp(a, "--http"))
			opt.http = (int)hp_num(v, 1, 65535, a);
		else if (!strcmp(a, "--host2"))
			opt.host2 = v;
		else if (!strcmp(a, "--threads"))
			opt.threads = (int)hp_num(v, 1, 512, a);
		else if (!strcmp(a, "--conns"))
			opt.conns = (long)hp_num(v, 1, 1000000, a);
		else if (!strcmp(a, "--seed"))
			opt.seed = (uint64_t)hp_num(v, 0, LLONG_MAX, a);
		else if (!strcmp(a, "--silent-limit"))
			opt.silent_limit = (long)hp_num(v, 1, 60000, a);
		else if (!strcmp(a, "--silent2-limit"))
			opt.silent2_limit = (long)hp_num(v, 1, 60000, a);
		else if (!strcmp(a, "--http-limit"))
			opt.http_limit = (long)hp_num(v, 1, 60000, a);
		else if (!strcmp(a, "--slack"))
			opt.slack = (long)hp_num(v, 0, 60000, a);
		else if (!strcmp(a, "--forks"))
			opt.forks = (int)hp_num(v, 0, 10000, a);
		else if (!strcmp(a, "--watchdog"))
			opt.watchdog = (long)hp_num(v, 1, 3600, a);
		else if (!strcmp(a, "--only")) {
			char *copy = strdup(v), *save = NULL;

			for (char *t = strtok_r(copy, ",", &save); t;
			     t = strtok_r(NULL, ",", &save)) {
				int k = 0;

				while (k < K_COUNT && strcmp(t, kind_name[k]))
					k++;
				if (k == K_COUNT)
					usage();
				opt.only |= 1u << k;
			}
			free(copy);
		}
		else
			usage();
	}
	if (!opt.echo || !opt.silent || !opt.silent2 || !opt.http)
		usage();
}

int main(int argc, char **argv)
{
	static int before[MAX_FDS], after[MAX_FDS];
	int nbefore, nafter, bad = 0;
	pthread_t closer, forker, dog;
	uint64_t t0 = hp_now_ns();
	long ok = 0, fail = 0;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	nbefore = list_fds(before, MAX_FDS);
	workers = calloc((size_t)opt.threads, sizeof(*workers));
	victims = calloc((size_t)opt.threads, sizeof(*victims));
	if (!workers || !victims)
		hp_die("out of memory");

	if (pthread_create(&dog, NULL, watchdog_main, NULL) ||
	    pthread_create(&closer, NULL, closer_main, NULL) ||
	    pthread_create(&forker, NULL, forker_main, NULL))
		hp_die("pthread_create failed");
	for (int i = 0; i < opt.threads; i++) {
		workers[i].id = i;
		atomic_store(&workers[i].conn, -1);
		if (pthread_create(&workers[i].th, NULL, worker_main, &workers[i]))
			hp_die("pthread_create worker %d failed", i);
	}
	for (int i = 0; i < opt.threads; i++)
		pthread_join(workers[i].th, NULL);
	atomic_store(&done_flag, 1);
	pthread_join(forker, NULL);
	pthread_join(closer, NULL);
	pthread_join(dog, NULL);

	for (int k = 0; k < K_COUNT; k++) {
		long o = atomic_load(&n_ok[k]), f = atomic_load(&n_fail[k]);

		hp_say("KIND %s ok=%ld fail=%ld\n", kind_name[k], o, f);
		for (int e = 0; e < 134; e++)
			if (atomic_load(&n_fail_errno[k][e]))
				hp_say("FAILS kind=%s errno=%s n=%ld\n", kind_name[k],
				       e ? hp_errname(e) : "(other)",
				       atomic_load(&n_fail_errno[k][e]));
		ok += o;
		fail += f;
	}
	hp_say("VICTIMS closed_while_blocked=%ld left_alone=%ld\n",
	       atomic_load(&v_closed), atomic_load(&v_not_closed));
	hp_say("FORKS ok=%ld fail=%ld hung=%ld\n", atomic_load(&fork_ok),
	       atomic_load(&fork_fail), atomic_load(&fork_hung));
	hp_say("TIMEOUTS expected=%ld max_late_ms=%ld\n",
	       atomic_load(&timeouts_expected), atomic_load(&max_late));

	nafter = list_fds(after, MAX_FDS);
	for (int i = 0, j = 0; i < nafter || j < nbefore;) {
		if (i < nafter && (j >= nbefore || after[i] < before[j])) {
			char link[64], target[256] = "?";
			ssize_t n;

			snprintf(link, sizeof(link), "/proc/self/fd/%d", after[i]);
			n = readlink(link, target, sizeof(target) - 1);
			target[n > 0 ? n : 1] = '\0';
			hp_say("FDLEAK fd=%d -> %s\n", after[i], target);
			bad = 1;
			i++;
		} else if (j < nbefore && (i >= nafter || before[j] < after[i])) {
			hp_say("FDGONE fd=%d\n", before[j]);
			bad = 1;
			j++;
		} else {
			i++;
			j++;
		}
	}
	hp_say("FDS before=%d after=%d\n", nbefore, nafter);
	if (fail || atomic_load(&fork_fail) || atomic_load(&fork_hung))
		bad = 1;
	hp_say("STRESS %s conns=%ld ok=%ld fail=%ld threads=%d ms=%ld\n",
	       bad ? "FAILED" : "OK", opt.conns, ok, fail, opt.threads,
	       hp_ms_since(t0));
	return bad;
}
