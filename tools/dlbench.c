/* dlbench.c - loopback benchmarks for libdeadline (run by tools/bench).
 *
 *   dlbench pingpong-block [-n ITERS]      1-byte round trips, blocking
 *                          [--delay-us D]  (the peer answers D us late)
 *   dlbench pingpong-epoll [-n ITERS]      the same, non-blocking + epoll
 *   dlbench bulk [--bytes B] [--recv]      64 KiB writes (or reads), B bytes
 *   dlbench connrate [-n CYCLES]           connect, peer accepts+closes, EOF
 *   dlbench connsend [-n CYCLES]           connect, write 1 byte, close; the
 *                                          peer accepts, reads, closes
 *   dlbench many [-n CONNS] [--rounds R]   CONNS live connections, one epoll
 *   dlbench expiry -n CONNS --limit-ms L [--spread-ms S] [--self-timed]
 *                                          CONNS deadlines expiring, lateness
 *   dlbench memory [-n CONNS]              RSS growth for CONNS connections
 *   dlbench hold [-n CONNS] [--hold-ms T]  open CONNS connections, print
 *                                          "ready", keep them T ms, exit
 *   dlbench syscost [-n CALLS]             what single calls cost here: the
 *                                          pieces the shim adds, timed alone
 *   dlbench peer KIND [--bytes B]          serve (echo1|echo|sink|source|
 *                                          closer|reader); prints port=P
 *
 * Every case forks its own peer: this program again, exec'd as "dlbench
 * peer KIND" with LD_PRELOAD and the DEADLINE_* variables removed, so only
 * the measured client runs under the shim (--peer-shimmed keeps them).
 * --target 127.0.0.1:PORT sends the ping-pong cases to a server that is
 * already running (tools/bench puts haproxy there) instead.
 *
 * Output: one line of key=value pairs on stdout; diagnostics on stderr,
 * exit status 1 on failure.  Only 127.0.0.1 / ::1 are ever used, ports are
 * picked by the kernel, and every run is bounded: client and peer arm
 * alarm(--max-s), and the peer dies with its parent (PR_SET_PDEATHSIG).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define CHUNK (64 * 1024)
#define NS_PER_S 1000000000ll
#define NS_PER_MS 1000000ll
#define MAX_EVENTS 1024
#define CONNECT_BATCH 256

struct opts {
	long n;           /* iterations, cycles or connections; 0 = default */
	long warmup;      /* untimed iterations first; -1 = default */
	long rounds;      /* many: passes over all connections; 0 = default */
	uint64_t bytes;   /* bulk, peer sink/source */
	int recv_side;    /* bulk: the client reads */
	long limit_ms;    /* expiry: the deadline the shim was given */
	long spread_ms;   /* expiry: connections opened over this long */
	int self_timed;   /* expiry: the loop keeps the deadlines itself */
	long delay_us;    /* echo1 peer: wait this long before answering */
	int max_s;        /* alarm for client and peer */
	const char *target; /* "host:port" of an existing server */
	int peer_shimmed; /* keep LD_PRELOAD / DEADLINE_* for the peer */
	int notify_fd;    /* peer: where to write the port; -1 = stdout */
	int ready;        /* pingpong-block: wait (unshimmed) until the reply
			   * is there before reading: the fast path only */
	int abort_ok;     /* expiry: ECONNABORTED (deadline --outside) counts */
	long hold_ms;     /* hold: keep the connections this long */
};

struct addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

static pid_t peer_pid = -1;
static char self_path[PATH_MAX]; /* this program, for exec'ing the peer */

/* ------------------------------------------------------------------------
 * Small helpers
 */

__attribute__((format(printf, 1, 2), noreturn)) static void
fail(const char *fmt, ...)
{
	va_list ap;
	int e = errno;

	fprintf(stderr, "dlbench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (errno %d: %s)\n", e, strerror(e));
	if (peer_pid > 0)
		kill(peer_pid, SIGKILL);
	exit(1);
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static int64_t cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * NS_PER_S +
	       ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Percentile p (0..100) of a sorted array, nearest rank. */
static int64_t pct(const int64_t *v, size_t n, double p)
{
	size_t i;

	if (!n)
		return 0;
	i = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (i < 1)
		i = 1;
	if (i > n)
		i = n;
	return v[i - 1];
}

/* Anonymous resident memory: what the shim allocates shows up here, while
 * the first touch of its code pages (file-backed) does not. */
static long rss_anon_bytes(void)
{
	char line[128];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? -1 : kb * 1024;
}

/* Make room for need descriptors; as root the hard limit can grow too. */
static void raise_nofile(long need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || (long)rl.rlim_cur >= need)
		return;
	if ((long)rl.rlim_max < need)
		rl.rlim_max = (rlim_t)need;
	rl.rlim_cur = (rlim_t)need;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		fprintf(stderr, "dlbench: RLIMIT_NOFILE stays at %ld (< %ld)\n",
			(long)rl.rlim_cur, need);
	}
}

static void set_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Abort instead of FIN at the end of a run, so no TIME_WAIT piles up
 * across repetitions (cleanup only, never timed). */
static void close_abort(int fd)
{
	struct linger lg = { 1, 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			fail("write");
		p += w;
		len -= (size_t)w;
	}
}

/* "1500", "250ms", "2s" -> ms; -1 when malformed. */
static long parse_ms(const char *s)
{
	char *end;
	long v;

	if (!s || !*s)
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || v < 0 || end == s)
		return -1;
	if (!*end || !strcmp(end, "ms"))
		return v;
	if (!strcmp(end, "s"))
		return v * 1000;
	return -1;
}

/* ------------------------------------------------------------------------
 * Addresses: loopback only
 */

static int is_loopback(const struct addr *a)
{
	if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)&a->ss;
		return (ntohl(s->sin_addr.s_addr) >> 24) == 127;
	}
	if (a->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)&a->ss;
		return IN6_IS_ADDR_LOOPBACK(&s->sin6_addr);
	}
	return 0;
}

/* "127.0.0.1:8080" or "[::1]:8080". */
static void parse_target(const char *t, struct addr *a)
{
	char host[64];
	const char *colon = strrchr(t, ':');
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
				  .ai_socktype = SOCK_STREAM },
			*res;
	size_t hl;

	if (!colon || colon == t)
		fail("--target %s: want HOST:PORT", t);
	hl = (size_t)(colon - t);
	if (t[0] == '[' && hl >= 2 && t[hl - 1] == ']') {
		t++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		fail("--target: host too long");
	memcpy(host, t, hl);
	host[hl] = 0;
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
		fail("--target %s: not a numeric address", t);
	memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
	a->len = res->ai_addrlen;
	freeaddrinfo(res);
	if (!is_loopback(a)) {
		errno = EINVAL;
		fail("--target %s: only loopback addresses are allowed", t);
	}
}

static int listen_loopback(int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		fail("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fail("bind 127.0.0.1:0");
	if (listen(fd, 4096) < 0)
		fail("listen");
	if (getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
		fail("getsockname");
	*port = ntohs(sa.sin_port);
	return fd;
}

/* ------------------------------------------------------------------------
 * The peer: a plain server, never under the shim unless asked
 */

/* One connection at a time, blocking: the lowest-latency echo.  With
 * delay_us the answer is late, as from a server that does some work, so a
 * blocking client always finds nothing to read at first. */
static void serve_echo1(int lfd, long delay_us)
{
	static char buf[CHUNK];
	struct timespec d = { delay_us / 1000000, (delay_us % 1000000) * 1000 };

	for (;;) {
		int fd = accept4(lfd, 0, 0, SOCK_CLOEXEC);
		ssize_t r;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fail("peer accept");
		}
		set_nodelay(fd);
		while ((r = read(fd, buf, sizeof(buf))) > 0) {
			const char *p = buf;

			if (delay_us)
				nanosleep(&d, 0);
			while (r > 0) {
				ssize_t w = write(fd, p, (size_t)r);
				if (w <= 0)
					break;
				p += w;
				r -= w;
			}
			if (r > 0)
				break;
		}
		close(fd);
	}
}

/* Many connections, one epoll loop: echo what arrives, drop what ends. */
static void serve_echo(int lfd)
{
	struct epoll_event evs[MAX_EVENTS], ev = { .events = EPOLLIN };
	static char buf[CHUNK];
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0)
		fail("peer epoll_create1");
	fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
	ev.data.fd = lfd;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
		fail("peer epoll_ctl");
	for (;;) {
		int k = epoll_wait(ep, evs, MAX_EVENTS, -1);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			fail("peer epoll_wait");
		for (int i = 0; i < k; i++) {
			int fd = evs[i].data.fd;
			ssize_t r;

			if (fd == lfd) {
				int c;
				while ((c = accept4(lfd, 0, 0,
						    SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					struct epoll_event ce = { .events = EPOLLIN,
								  .data.fd = c };
					set_nodelay(c);
					if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce) < 0)
						fail("peer epoll_ctl add");
				}
				continue;
			}
			r = read(fd, buf, sizeof(buf));
			if (r > 0) {
				/* Small messages: the send buffer always has
				 * room, so a short write means the peer left. */
				if (write(fd, buf, (size_t)r) == r)
					continue;
			} else if (r < 0 && errno == EAGAIN) {
				continue;
			}
			close(fd);
		}
	}
}

/* Read bytes (or to EOF), answer one byte, then wait for the close. */
static void serve_sink(int lfd, uint64_t bytes)
{
	static char buf[4 * CHUNK];

	for (;;) {
		int fd = accept4(lfd, 0, 0, SOCK_CLOEXEC);
		uint64_t got = 0;
		ssize_t r = 1;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fail("peer accept");
		}
		while (got < bytes && (r = read(fd, buf, sizeof(buf))) > 0)
			got += (uint64_t)r;
		if (r > 0 && write(fd, "k", 1) == 1)
			while (read(fd, buf, sizeof(buf)) > 0)
				;
		close(fd);
	}
}

/* Write bytes in 64 KiB pieces, then close. */
static void serve_source(int lfd, uint64_t bytes)
{
	static char buf[CHUNK];

	memset(buf, 'x', sizeof(buf));
	for (;;) {
		int fd = accept4(lfd, 0, 0, SOCK_CLOEXEC);
		uint64_t sent = 0;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fail("peer accept");
		}
		while (sent < bytes) {
			size_t want = bytes - sent < CHUNK ? (size_t)(bytes - sent)
							   : CHUNK;
			ssize_t w = write(fd, buf, want);
			if (w <= 0)
				break;
			sent += (uint64_t)w;
		}
		close(fd);
	}
}

/* Accept and close at once: the client sees EOF. */
static void serve_closer(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, 0, 0, SOCK_CLOEXEC);

		if (fd >= 0)
			close(fd);
		else if (errno != EINTR && errno != ECONNABORTED)
			fail("peer accept");
	}
}

/* Accept, read once, close: the server side of connsend. */
static void serve_reader(int lfd)
{
	char buf[64];

	for (;;) {
		int fd = accept4(lfd, 0, 0, SOCK_CLOEXEC);

		if (fd >= 0) {
			while (read(fd, buf, sizeof(buf)) < 0 && errno == EINTR)
				;
			close(fd);
		} else if (errno != EINTR && errno != ECONNABORTED) {
			fail("peer accept");
		}
	}
}

static int cmd_peer(const char *kind, const struct opts *o)
{
	int port, lfd;
	char line[32];
	int n;

	signal(SIGPIPE, SIG_IGN);
	alarm((unsigned)o->max_s);
	lfd = listen_loopback(&port);
	n = snprintf(line, sizeof(line), "%d\n", port);
	if (o->notify_fd >= 0) {
		write_all(o->notify_fd, line, (size_t)n);
		close(o->notify_fd);
	} else {
		printf("port=%d\n", port);
		fflush(stdout);
	}
	if (!strcmp(kind, "echo1"))
		serve_echo1(lfd, o->delay_us);
	else if (!strcmp(kind, "echo"))
		serve_echo(lfd);
	else if (!strcmp(kind, "sink"))
		serve_sink(lfd, o->bytes);
	else if (!strcmp(kind, "source"))
		serve_source(lfd, o->bytes);
	else if (!strcmp(kind, "closer"))
		serve_closer(lfd);
	else if (!strcmp(kind, "reader"))
		serve_reader(lfd);
	errno = EINVAL;
	fail("peer: unknown kind %s", kind);
}

/* The environment for the peer: ours minus the shim, unless asked. */
static char **peer_env(int keep)
{
	size_t n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + 1, sizeof(*env));
	if (!env)
		fail("calloc");
	for (size_t i = 0; i < n; i++) {
		if (!keep && (!strncmp(environ[i], "LD_PRELOAD=", 11) ||
			      !strncmp(environ[i], "DEADLINE_", 9)))
			continue;
		env[k++] = environ[i];
	}
	return env;
}

static void stop_peer(void)
{
	if (peer_pid > 0) {
		kill(peer_pid, SIGKILL);
		waitpid(peer_pid, 0, 0);
		peer_pid = -1;
	}
}

/* Start "dlbench peer KIND" (or use --target) and fill a with where to
 * connect. */
static void start_peer(const char *kind, const struct opts *o, struct addr *a)
{
	char fdarg[16], bytes[32], maxs[16], delay[24], line[32];
	int p[2];
	pid_t parent = getpid();
	ssize_t r;
	size_t got = 0;
	struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;

	if (o->target) {
		parse_target(o->target, a);
		return;
	}
	if (pipe(p) < 0)
		fail("pipe");
	snprintf(fdarg, sizeof(fdarg), "%d", p[1]);
	snprintf(bytes, sizeof(bytes), "%llu", (unsigned long long)o->bytes);
	snprintf(maxs, sizeof(maxs), "%d", o->max_s);
	snprintf(delay, sizeof(delay), "%ld", o->delay_us);
	peer_pid = fork();
	if (peer_pid < 0)
		fail("fork");
	if (peer_pid == 0) {
		char *argv[] = { "dlbench", "peer", (char *)kind, "--notify-fd",
				 fdarg, "--bytes", bytes, "--max-s", maxs,
				 "--delay-us", delay, 0 };
		close(p[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		execve(self_path, argv, peer_env(o->peer_shimmed));
		_exit(127);
	}
	close(p[1]);
	while (got < sizeof(line) - 1 &&
	       (r = read(p[0], line + got, sizeof(line) - 1 - got)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail("read from peer");
		got += (size_t)r;
		if (memchr(line, '\n', got))
			break;
	}
	close(p[0]);
	line[got] = 0;
	if (!got || atoi(line) <= 0) {
		errno = EPROTO;
		fail("the peer did not report a port");
	}
	memset(a, 0, sizeof(*a));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)atoi(line));
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a->len = sizeof(*sin);
}

static int connect_blocking(const struct addr *a)
{
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		fail("socket");
	while (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0)
		if (errno != EINTR)
			fail("connect");
	set_nodelay(fd);
	return fd;
}

/* ------------------------------------------------------------------------
 * Ping-pong: one byte there and back, n times
 */

static void report_latency(const char *name, long n, int64_t wall,
			   int64_t cpu, int64_t *lat)
{
	qsort(lat, (size_t)n, sizeof(*lat), cmp_i64);
	printf("bench=%s n=%ld ns_per_op=%.1f p50_ns=%lld p99_ns=%lld "
	       "cpu_ns_per_op=%.1f wall_s=%.3f\n",
	       name, n, (double)wall / (double)n,
	       (long long)pct(lat, (size_t)n, 50),
	       (long long)pct(lat, (size_t)n, 99), (double)cpu / (double)n,
	       (double)wall / NS_PER_S);
}

/* One round trip per call; not inlined, so that a profiler can count
 * exactly what one costs (valgrind --toggle-collect=pong_block). */
__attribute__((noinline, noclone)) static void pong_block(int fd)
{
	char c = 'p';

	if (write(fd, &c, 1) != 1)
		fail("write");
	if (read(fd, &c, 1) != 1)
		fail("read");
}

/* The same with the reply already there when read() is called: the
 * program waits for it first with a raw ppoll system call, which the shim
 * cannot see.  The raw call costs the same few instructions shimmed or
 * not.  A blocking read right after a write still waits first under the
 * shim (docs/benchmarks.md: the reply is rarely there yet), so this
 * measures that choice's price where it is wrong. */
__attribute__((noinline, noclone)) static void pong_block_ready(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char c = 'p';

	if (write(fd, &c, 1) != 1)
		fail("write");
	while (syscall(SYS_ppoll, &pfd, 1, NULL, NULL, 0) != 1)
		if (errno != EINTR)
			fail("ppoll");
	if (read(fd, &c, 1) != 1)
		fail("read");
}

static int cmd_pingpong_block(const struct opts *o)
{
	void (*pong)(int) = o->ready ? pong_block_ready : pong_block;
	struct addr a;
	long n = o->n ? o->n : 50000, warm = o->warmup >= 0 ? o->warmup : 2000;
	int64_t *lat = malloc((size_t)n * sizeof(*lat)), t0, t, prev, c0;
	int fd;

	if (!lat)
		fail("malloc");
	memset(lat, 0, (size_t)n * sizeof(*lat));
	start_peer("echo1", o, &a);
	fd = connect_blocking(&a);
	for (long i = 0; i < warm; i++)
		pong(fd);
	c0 = cpu_ns();
	t0 = prev = now_ns();
	for (long i = 0; i < n; i++) {
		pong(fd);
		t = now_ns();
		lat[i] = t - prev;
		prev = t;
	}
	report_latency("pingpong-block", n, prev - t0, cpu_ns() - c0, lat);
	close(fd);
	stop_peer();
	free(lat);
	return 0;
}

/* One event-loop round trip: write, wait for readiness, read. */
__attribute__((noinline, noclone)) static void pong_epoll(int fd, int ep)
{
	struct epoll_event ev;
	char c = 'p';
	ssize_t r;

	if (write(fd, &c, 1) != 1)
		fail("write");
	for (;;) {
		int k = epoll_wait(ep, &ev, 1, -1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k != 1)
			fail("epoll_wait");
		r = read(fd, &c, 1);
		if (r == 1)
			return;
		if (r < 0 && errno == EAGAIN)
			continue;
		fail("read");
	}
}

static int cmd_pingpong_epoll(const struct opts *o)
{
	struct addr a;
	long n = o->n ? o->n : 50000, warm = o->warmup >= 0 ? o->warmup : 2000;
	int64_t *lat = malloc((size_t)n * sizeof(*lat)), t0 = 0, t, prev = 0, c0 = 0;
	struct epoll_event ev = { .events = EPOLLOUT };
	int fd, ep, err = 0;
	socklen_t el = sizeof(err);

	if (!lat)
		fail("malloc");
	memset(lat, 0, (size_t)n * sizeof(*lat));
	start_peer("echo1", o, &a);
	fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (fd < 0 || ep < 0)
		fail("socket/epoll_create1");
	if (connect(fd, (const struct sockaddr *)&a.ss, a.len) < 0 &&
	    errno != EINPROGRESS)
		fail("connect");
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		fail("epoll_ctl");
	while (epoll_wait(ep, &ev, 1, -1) != 1)
		if (errno != EINTR)
			fail("epoll_wait (connect)");
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
		errno = err;
		fail("connect (SO_ERROR)");
	}
	set_nodelay(fd);
	ev.events = EPOLLIN;
	if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) < 0)
		fail("epoll_ctl mod");
	for (long i = -warm; i < n; i++) {
		if (i == 0) {
			c0 = cpu_ns();
			t0 = prev = now_ns();
		}
		pong_epoll(fd, ep);
		if (i >= 0) {
			t = now_ns();
			lat[i] = t - prev;
			prev = t;
		}
	}
	report_latency("pingpong-epoll", n, prev - t0, cpu_ns() - c0, lat);
	close(fd);
	close(ep);
	stop_peer();
	free(lat);
	return 0;
}

/* ------------------------------------------------------------------------
 * Bulk transfer
 */

/* One 64 KiB (or shorter) read or write: the unit a profiler counts. */
__attribute__((noinline, noclone)) static ssize_t move_chunk(int fd, char *buf,
						    size_t want, int recv_side)
{
	return recv_side ? read(fd, buf, want) : write(fd, buf, want);
}

/* Bulk rates are also taken per 16 MiB segment: the median segment is
 * steadier than the whole run when other work shares the machine. */
#define SEGMENT (16ull << 20)

static int cmd_bulk(const struct opts *o)
{
	static char buf[CHUNK];
	struct addr a;
	uint64_t bytes = o->bytes ? o->bytes : (1ull << 30), moved = 0;
	size_t nseg = (size_t)(bytes / SEGMENT), seg = 0;
	long calls = 0;
	int64_t t0, wall, c0, cpu, tseg;
	int64_t *segs = calloc(nseg ? nseg : 1, sizeof(*segs));
	int fd;

	if (!segs)
		fail("calloc");

	memset(buf, 'b', sizeof(buf));
	{
		struct opts po = *o;
		po.bytes = bytes;
		start_peer(o->recv_side ? "source" : "sink", &po, &a);
	}
	fd = connect_blocking(&a);
	c0 = cpu_ns();
	t0 = tseg = now_ns();
	while (moved < bytes) {
		size_t want = bytes - moved < CHUNK ? (size_t)(bytes - moved)
						    : CHUNK;
		ssize_t r = move_chunk(fd, buf, want, o->recv_side);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			fail("%s after %llu bytes", o->recv_side ? "read" : "write",
			     (unsigned long long)moved);
		moved += (uint64_t)r;
		calls++;
		if (seg < nseg && moved >= (seg + 1) * SEGMENT) {
			int64_t t = now_ns();
			segs[seg++] = t - tseg;
			tseg = t;
		}
	}
	if (!o->recv_side) {
		char c;
		if (read(fd, &c, 1) != 1) /* the sink has it all */
			fail("read ack");
	}
	wall = now_ns() - t0;
	cpu = cpu_ns() - c0;
	qsort(segs, seg, sizeof(*segs), cmp_i64);
	printf("bench=bulk dir=%s bytes=%llu calls=%ld mib_per_s=%.1f "
	       "seg_mib_per_s=%.1f gbit_per_s=%.3f ns_per_call=%.1f "
	       "cpu_ns_per_mib=%.1f wall_s=%.3f\n",
	       o->recv_side ? "recv" : "send", (unsigned long long)bytes, calls,
	       (double)bytes / 1048576.0 / ((double)wall / NS_PER_S),
	       seg ? (double)SEGMENT / 1048576.0 /
			     ((double)pct(segs, seg, 50) / NS_PER_S)
		   : 0.0,
	       (double)bytes * 8 / (double)wall, (double)wall / (double)calls,
	       (double)cpu / ((double)bytes / 1048576.0),
	       (double)wall / NS_PER_S);
	close(fd);
	stop_peer();
	free(segs);
	return 0;
}

/* ------------------------------------------------------------------------
 * Connection rate: socket, connect, the peer accepts and closes, read EOF,
 * close.  The peer closes first, so TIME_WAIT stays on its side and the
 * client's ephemeral ports are not used up.
 */

__attribute__((noinline, noclone)) static void conn_cycle(const struct addr *a)
{
	char c;
	int fd = connect_blocking(a);
	ssize_t r;

	while ((r = read(fd, &c, 1)) < 0 && errno == EINTR)
		;
	if (r != 0)
		fail("connrate: expected EOF, read returned %zd", r);
	close(fd);
}

static int cmd_connrate(const struct opts *o)
{
	struct addr a;
	long n = o->n ? o->n : 20000, warm = o->warmup >= 0 ? o->warmup : 500;
	int64_t *lat = calloc((size_t)n, sizeof(*lat)), t0, t, prev, wall, c0;

	if (!lat)
		fail("calloc");
	start_peer("closer", o, &a);
	for (long i = 0; i < warm; i++)
		conn_cycle(&a);
	c0 = cpu_ns();
	t0 = prev = now_ns();
	for (long i = 0; i < n; i++) {
		conn_cycle(&a);
		t = now_ns();
		lat[i] = t - prev;
		prev = t;
	}
	wall = prev - t0;
	qsort(lat, (size_t)n, sizeof(*lat), cmp_i64);
	printf("bench=connrate n=%ld ns_per_op=%.1f p50_ns=%lld p99_ns=%lld "
	       "per_s=%.0f cpu_ns_per_op=%.1f wall_s=%.3f\n",
	       n, (double)wall / (double)n, (long long)pct(lat, (size_t)n, 50),
	       (long long)pct(lat, (size_t)n, 99),
	       (double)n * NS_PER_S / (double)wall,
	       (double)(cpu_ns() - c0) / (double)n, (double)wall / NS_PER_S);
	stop_peer();
	free(lat);
	return 0;
}

/* One set-up cycle as a short-lived client makes it: connect, one byte,
 * close (no TCP_NODELAY, no read: nothing the kernel does not need). */
__attribute__((noinline, noclone)) static void send_cycle(const struct addr *a)
{
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		fail("socket");
	while (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0)
		if (errno != EINTR)
			fail("connect");
	if (write(fd, "s", 1) != 1)
		fail("write");
	close(fd);
}

/* The peer reads as fast as the client connects; it stays behind by at
 * most the listen backlog, more than the cycles of one run.  Every 1000
 * cycles the client waits for it to catch up anyway (a connection it
 * closes is answered by the peer's close: EOF), untimed. */
static void connsend_sync(const struct addr *a)
{
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char c;

	if (fd < 0)
		fail("socket");
	while (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0)
		if (errno != EINTR)
			fail("connect");
	if (write(fd, "y", 1) != 1)
		fail("write");
	while (read(fd, &c, 1) < 0)
		if (errno != EINTR)
			fail("read (sync)");
	close(fd);
}

static int cmd_connsend(const struct opts *o)
{
	struct addr a;
	long n = o->n ? o->n : 2000, warm = o->warmup >= 0 ? o->warmup : 200;
	int64_t *lat = calloc((size_t)n, sizeof(*lat)), t0, t, prev, wall, c0;
	int64_t pause = 0;

	if (!lat)
		fail("calloc");
	start_peer("reader", o, &a);
	for (long i = 0; i < warm; i++)
		send_cycle(&a);
	if (warm)
		connsend_sync(&a);
	c0 = cpu_ns();
	t0 = prev = now_ns();
	for (long i = 0; i < n; i++) {
		send_cycle(&a);
		t = now_ns();
		lat[i] = t - prev;
		prev = t;
		if (i % 1000 == 999 && i + 1 < n) {
			connsend_sync(&a);
			pause += now_ns() - t;
			prev = now_ns();
		}
	}
	wall = prev - t0 - pause;
	/* The peer has taken every connection before it is stopped, so that a
	 * count of its system calls covers all n cycles. */
	connsend_sync(&a);
	qsort(lat, (size_t)n, sizeof(*lat), cmp_i64);
	printf("bench=connsend n=%ld ns_per_op=%.1f p50_ns=%lld p99_ns=%lld "
	       "per_s=%.0f cpu_ns_per_op=%.1f wall_s=%.3f\n",
	       n, (double)wall / (double)n, (long long)pct(lat, (size_t)n, 50),
	       (long long)pct(lat, (size_t)n, 99),
	       (double)n * NS_PER_S / (double)wall,
	       (double)(cpu_ns() - c0) / (double)n, (double)wall / NS_PER_S);
	stop_peer();
	free(lat);
	return 0;
}

/* ------------------------------------------------------------------------
 * Many connections in one epoll loop
 */

/* One source address serves this many connections to one destination;
 * beyond it, 127.0.0.2, .3, ...  The kernel's search for a free ephemeral
 * port slows down sharply as the range (28,232 ports by default) fills:
 * at 20,000 connections from one address a connect() costs ~270 us of
 * CPU here, which would swamp what the expiry and memory cases measure. */
#ifndef CONNS_PER_SOURCE
#define CONNS_PER_SOURCE 10000
#endif

/* Past the first CONNS_PER_SOURCE connections to an IPv4 loopback peer,
 * bind connection i to its own loopback source address, the port still
 * picked at connect (IP_BIND_ADDRESS_NO_PORT). */
static void pick_source(int fd, const struct addr *a, long i)
{
	struct sockaddr_in src = { .sin_family = AF_INET };
	int one = 1;

	if (i < CONNS_PER_SOURCE || a->ss.ss_family != AF_INET)
		return;
	src.sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1 +
				    (uint32_t)(i / CONNS_PER_SOURCE));
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0)
		fail("bind source #%ld", i);
}

/* Open n non-blocking connections, CONNECT_BATCH at a time (so the
 * listen backlog never overflows into SYN retransmits), registered in ep
 * for EPOLLIN with data.u32 = index. */
static void open_many(const struct addr *a, int ep, int *fds, long n)
{
	struct epoll_event evs[MAX_EVENTS];

	for (long base = 0; base < n; base += CONNECT_BATCH) {
		long end = base + CONNECT_BATCH < n ? base + CONNECT_BATCH : n;
		long pending = end - base;

		for (long i = base; i < end; i++) {
			struct epoll_event ev = { .events = EPOLLOUT,
						  .data.u32 = (uint32_t)i };
			fds[i] = socket(a->ss.ss_family,
					SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (fds[i] < 0)
				fail("socket #%ld", i);
			pick_source(fds[i], a, i);
			if (connect(fds[i], (const struct sockaddr *)&a->ss,
				    a->len) < 0 && errno != EINPROGRESS)
				fail("connect #%ld", i);
			if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) < 0)
				fail("epoll_ctl #%ld", i);
		}
		while (pending > 0) {
			int k = epoll_wait(ep, evs, MAX_EVENTS, -1);
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0)
				fail("epoll_wait (connect)");
			for (int j = 0; j < k; j++) {
				uint32_t i = evs[j].data.u32;
				struct epoll_event ev = { .events = EPOLLIN,
							  .data.u32 = i };
				if (evs[j].events & (EPOLLERR | EPOLLHUP)) {
					errno = ECONNREFUSED;
					fail("connect #%u failed", i);
				}
				set_nodelay(fds[i]);
				if (epoll_ctl(ep, EPOLL_CTL_MOD, fds[i], &ev) < 0)
					fail("epoll_ctl mod");
				pending--;
			}
		}
	}
}

static int cmd_many(const struct opts *o, int live)
{
	struct epoll_event *evs = calloc(MAX_EVENTS, sizeof(*evs));
	struct addr a;
	long n = o->n ? o->n : (live ? 1000 : 10000);
	long rounds = !live ? 0 : o->rounds ? o->rounds : (50000 + n - 1) / n;
	long ops = n * rounds;
	int *fds = calloc((size_t)n, sizeof(*fds));
	int64_t t0, wall = 0, c0, cpu = 0, tr;
	int64_t *rt = calloc((size_t)(rounds ? rounds : 1), sizeof(*rt));
	long rss0, rss1;
	int ep;

	if (!evs || !fds || !rt)
		fail("calloc");
	raise_nofile(n + 64);
	start_peer("echo", o, &a);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		fail("epoll_create1");
	rss0 = rss_anon_bytes();
	t0 = now_ns();
	open_many(&a, ep, fds, n);
	wall = now_ns() - t0;
	rss1 = rss_anon_bytes();
	if (!live) {
		printf("bench=memory n=%ld rss_before=%ld rss_after=%ld "
		       "delta_bytes=%ld bytes_per_conn=%.1f connect_ns_per_conn=%.1f\n",
		       n, rss0, rss1, rss1 - rss0,
		       (double)(rss1 - rss0) / (double)n, (double)wall / (double)n);
		goto out;
	}
	c0 = cpu_ns();
	t0 = now_ns();
	for (long r = 0; r < rounds; r++) {
		long pending = n;

		tr = now_ns();
		for (long i = 0; i < n; i++)
			if (write(fds[i], "m", 1) != 1)
				fail("write #%ld", i);
		while (pending > 0) {
			int k = epoll_wait(ep, evs, MAX_EVENTS, -1);
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0)
				fail("epoll_wait");
			for (int j = 0; j < k; j++) {
				char buf[16];
				ssize_t got = read(fds[evs[j].data.u32], buf,
						   sizeof(buf));
				if (got < 0 && errno == EAGAIN)
					continue;
				if (got != 1)
					fail("read #%u returned %zd",
					     evs[j].data.u32, got);
				pending--;
			}
		}
		rt[r] = now_ns() - tr;
	}
	wall = now_ns() - t0;
	qsort(rt, (size_t)rounds, sizeof(*rt), cmp_i64);
	cpu = cpu_ns() - c0;
	printf("bench=many n=%ld rounds=%ld ops=%ld ns_per_op=%.1f "
	       "round_p50_ns_per_op=%.1f cpu_ns_per_op=%.1f rss_delta=%ld "
	       "wall_s=%.3f\n",
	       n, rounds, ops, (double)wall / (double)ops,
	       (double)pct(rt, (size_t)rounds, 50) / (double)n,
	       (double)cpu / (double)ops, rss1 - rss0, (double)wall / NS_PER_S);
out:
	for (long i = 0; i < n; i++)
		close_abort(fds[i]);
	close(ep);
	stop_peer();
	free(fds);
	free(evs);
	free(rt);
	return 0;
}

/* ------------------------------------------------------------------------
 * hold: n idle connections kept open for hold_ms, for a supervisor to
 * follow (deadline --outside); "ready n=N" on stdout once all are open.
 */

static int cmd_hold(const struct opts *o)
{
	struct addr a;
	long n = o->n, hold = o->hold_ms ? o->hold_ms : 10000;
	int *fds = calloc((size_t)(n ? n : 1), sizeof(*fds));
	struct timespec ts = { hold / 1000, (hold % 1000) * NS_PER_MS };
	int ep;

	if (!fds)
		fail("calloc");
	raise_nofile(n + 64);
	start_peer("echo", o, &a);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		fail("epoll_create1");
	open_many(&a, ep, fds, n);
	printf("ready n=%ld\n", n);
	fflush(stdout);
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	printf("bench=hold n=%ld hold_ms=%ld\n", n, hold);
	for (long i = 0; i < n; i++)
		close_abort(fds[i]);
	close(ep);
	stop_peer();
	free(fds);
	return 0;
}

/* ------------------------------------------------------------------------
 * Expiry: n connections opened evenly over spread_ms, each left waiting
 * for a reply that never comes, so the shim's deadline (limit_ms after its
 * connect) aborts every one.  Lateness = when the event loop saw the fd
 * fail with ETIMEDOUT - (connect time + limit).
 *
 * --self-timed (run without the shim) is the control: the loop keeps the
 * same deadlines itself with epoll_pwait2 timeouts, which shows how late
 * a plain timer fires on this machine under the same load.
 */

/* Deadlines expire in connection order, so the earliest pending one is the
 * oldest connection not yet resolved. */
static long self_expire(int *fds, const int64_t *tconn, long head, long next,
			int64_t lim_ns, int64_t tobs, int64_t *late,
			long *expired)
{
	while (head < next && tconn[head] + lim_ns <= tobs) {
		if (fds[head] >= 0) {
			late[(*expired)++] = tobs - (tconn[head] + lim_ns);
			close_abort(fds[head]);
			fds[head] = -1;
		}
		head++;
	}
	return head;
}

static int cmd_expiry(const struct opts *o)
{
	struct epoll_event *evs = calloc(MAX_EVENTS, sizeof(*evs));
	struct addr a;
	long n = o->n ? o->n : 1000;
	long limit = o->limit_ms > 0 ? o->limit_ms
				     : parse_ms(getenv("DEADLINE_REQUEST_TIMEOUT"));
	long spread = o->spread_ms >= 0 ? o->spread_ms : 1000;
	int *fds = calloc((size_t)n, sizeof(*fds));
	int64_t *tconn = calloc((size_t)n, sizeof(*tconn));
	int64_t *late = calloc((size_t)n, sizeof(*late));
	long next = 0, head = 0, resolved = 0, expired = 0, other = 0;
	long first_errno = 0;
	int64_t t0, end, lim_ns, c0, cpu;
	int ep;

	if (!evs || !fds || !tconn || !late)
		fail("calloc");
	if (limit <= 0) {
		errno = EINVAL;
		fail("expiry needs --limit-ms or DEADLINE_REQUEST_TIMEOUT");
	}
	lim_ns = limit * NS_PER_MS;
	raise_nofile(n + 64);
	start_peer("echo", o, &a);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		fail("epoll_create1");
	c0 = cpu_ns();
	t0 = now_ns();
	end = t0 + (spread + limit + 5000) * NS_PER_MS;
	while (resolved < n) {
		int64_t now = now_ns(), tobs, wake;
		int k;

		if (now >= end)
			break;
		/* Open every connection whose turn has come. */
		while (next < n &&
		       now >= t0 + spread * NS_PER_MS * next / n) {
			struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP,
						  .data.u32 = (uint32_t)next };
			int fd = socket(a.ss.ss_family,
					SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (fd < 0)
				fail("socket #%ld", next);
			pick_source(fd, &a, next);
			tconn[next] = now_ns();
			if (connect(fd, (const struct sockaddr *)&a.ss, a.len) < 0 &&
			    errno != EINPROGRESS)
				fail("connect #%ld", next);
			if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
				fail("epoll_ctl #%ld", next);
			fds[next++] = fd;
			now = now_ns();
		}
		wake = next < n ? t0 + spread * NS_PER_MS * next / n : end;
		if (o->self_timed) {
			struct timespec ts;
			int64_t left;

			if (head < next && tconn[head] + lim_ns < wake)
				wake = tconn[head] + lim_ns;
			left = wake > now ? wake - now : 0;
			ts.tv_sec = left / NS_PER_S;
			ts.tv_nsec = left % NS_PER_S;
			k = epoll_pwait2(ep, evs, MAX_EVENTS, &ts, 0);
		} else {
			/* A program that knows nothing of the deadlines. */
			k = epoll_wait(ep, evs, MAX_EVENTS,
				       (int)((wake - now + NS_PER_MS - 1) /
					     NS_PER_MS));
		}
		tobs = now_ns();
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			fail("epoll_wait");
		if (o->self_timed) {
			long h = self_expire(fds, tconn, head, next, lim_ns, tobs,
					     late, &expired);
			resolved += h - head;
			head = h;
		}
		for (int j = 0; j < k; j++) {
			uint32_t i = evs[j].data.u32;
			char c;
			ssize_t r;

			if (fds[i] < 0)
				continue;
			r = read(fds[i], &c, 1);
			if (r < 0 && errno == EAGAIN)
				continue;
			if (r < 0 && (errno == ETIMEDOUT ||
				      (o->abort_ok && errno == ECONNABORTED))) {
				late[expired++] = tobs - (tconn[i] + lim_ns);
			} else {
				if (!first_errno)
					first_errno = r < 0 ? errno : -1;
				other++;
			}
			close(fds[i]);
			fds[i] = -1;
			resolved++;
		}
	}
	cpu = cpu_ns() - c0;
	qsort(late, (size_t)expired, sizeof(*late), cmp_i64);
	printf("bench=%s n=%ld limit_ms=%ld spread_ms=%ld expired=%ld "
	       "other=%ld first_errno=%ld missing=%ld cpu_us_per_conn=%.2f "
	       "late_min_us=%.1f "
	       "late_p50_us=%.1f late_p99_us=%.1f late_max_us=%.1f "
	       "wall_s=%.3f\n",
	       o->self_timed ? "expiry-self" : "expiry", n, limit, spread,
	       expired, other, first_errno, n - resolved,
	       (double)cpu / 1000.0 / (double)n,
	       expired ? (double)late[0] / 1000 : 0.0,
	       (double)pct(late, (size_t)expired, 50) / 1000,
	       (double)pct(late, (size_t)expired, 99) / 1000,
	       expired ? (double)late[expired - 1] / 1000 : 0.0,
	       (double)(now_ns() - t0) / NS_PER_S);
	for (long i = 0; i < next; i++)
		if (fds[i] >= 0)
			close_abort(fds[i]);
	close(ep);
	stop_peer();
	free(fds);
	free(tconn);
	free(late);
	free(evs);
	return expired == n ? 0 : 1;
}

/* ------------------------------------------------------------------------
 * syscost: the price of the calls the shim adds on its slow path, each
 * timed alone in batches; the fastest batch is kept (interference only ever
 * adds time).  Run natively: it prices the pieces, not the shim.
 */

#define COST_BATCHES 15

static double cost_of(int what, int fd, int ep, long n)
{
	double best = 0;

	for (int b = 0; b < COST_BATCHES; b++) {
		int64_t t0 = now_ns();
		for (long i = 0; i < n; i++) {
			char c;
			struct epoll_event ev;
			struct timespec ts;

			switch (what) {
			case 0: /* nothing ready: the try before the wait */
				if (recv(fd, &c, 1, MSG_DONTWAIT) != -1)
					fail("recv: data where none was sent");
				break;
			case 1: /* "is the program's fd non-blocking?" */
				if (fcntl(fd, F_GETFL) < 0)
					fail("fcntl");
				break;
			case 2: /* a wait that finds nothing and returns */
				if (epoll_wait(ep, &ev, 1, 0) != 0)
					fail("epoll_wait");
				break;
			case 3: /* the vDSO clock */
				clock_gettime(CLOCK_MONOTONIC, &ts);
				break;
			default: /* a syscall that does nothing */
				getppid();
				break;
			}
		}
		double per = (double)(now_ns() - t0) / (double)n;
		if (b == 0 || per < best)
			best = per;
	}
	return best;
}

static int cmd_syscost(const struct opts *o)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct addr a;
	long n = o->n ? o->n : 20000;
	int fd, ep;

	start_peer("echo1", o, &a);
	fd = connect_blocking(&a);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		fail("epoll");
	printf("bench=syscost n=%ld recv_eagain_ns=%.1f fcntl_getfl_ns=%.1f "
	       "epoll_wait_empty_ns=%.1f clock_gettime_ns=%.1f "
	       "getppid_ns=%.1f\n",
	       n, cost_of(0, fd, ep, n), cost_of(1, fd, ep, n),
	       cost_of(2, fd, ep, n), cost_of(3, fd, ep, n),
	       cost_of(4, fd, ep, n));
	close(fd);
	close(ep);
	stop_peer();
	return 0;
}

/* ------------------------------------------------------------------------
 * Command line
 */

static void usage(void)
{
	fprintf(stderr,
		"usage: dlbench CASE [options]\n"
		"  cases: pingpong-block pingpong-epoll bulk connrate connsend "
		"many expiry memory hold syscost\n"
		"         peer echo1|echo|sink|source|closer|reader\n"
		"  -n N            iterations / cycles / connections\n"
		"  --warmup N      untimed iterations first\n"
		"  --rounds R      many: passes over all connections\n"
		"  --bytes B       bulk: bytes to move (suffix k, m, g)\n"
		"  --recv          bulk: the client reads instead of writing\n"
		"  --limit-ms L    expiry: the deadline given to the shim\n"
		"  --spread-ms S   expiry: open the connections over S ms\n"
		"  --self-timed    expiry: no shim; the loop times itself\n"
		"  --target H:P    ping-pong: use this loopback server\n"
		"  --delay-us D    ping-pong: the peer answers D us late\n"
		"  --ready         pingpong-block: read only once the reply is "
		"there\n"
		"  --abort-ok      expiry: ECONNABORTED counts as expired\n"
		"  --hold-ms T     hold: keep the connections T ms\n"
		"  --peer-shimmed  keep LD_PRELOAD/DEADLINE_* for the peer\n"
		"  --max-s S       give up after S seconds (default 300)\n");
	exit(2);
}

static uint64_t parse_bytes(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	default: break;
	}
	if (*end || end == s)
		usage();
	return v;
}

static long parse_long(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*end || end == s || v < 0)
		usage();
	return v;
}

int main(int argc, char **argv)
{
	struct opts o = { .warmup = -1, .spread_ms = -1, .max_s = 300,
			  .notify_fd = -1 };
	const char *cmd, *kind = 0;
	int i = 2;

	if (argc < 2)
		usage();
	/* Resolved once: exec'ing "/proc/self/exe" would start valgrind's
	 * tool, not this program, when profiling under valgrind. */
	{
		ssize_t l = readlink("/proc/self/exe", self_path,
				     sizeof(self_path) - 1);
		if (l > 0)
			self_path[l] = 0;
		else
			snprintf(self_path, sizeof(self_path), "%s", argv[0]);
	}
	cmd = argv[1];
	if (!strcmp(cmd, "peer")) {
		if (argc < 3)
			usage();
		kind = argv[2];
		i = 3;
	}
	for (; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : 0;

		if (!strcmp(a, "--recv")) {
			o.recv_side = 1;
			continue;
		}
		if (!strcmp(a, "--self-timed")) {
			o.self_timed = 1;
			continue;
		}
		if (!strcmp(a, "--ready")) {
			o.ready = 1;
			continue;
		}
		if (!strcmp(a, "--abort-ok")) {
			o.abort_ok = 1;
			continue;
		}
		if (!strcmp(a, "--peer-shimmed")) {
			o.peer_shimmed = 1;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "-n"))
			o.n = parse_long(v);
		else if (!strcmp(a, "--warmup"))
			o.warmup = parse_long(v);
		else if (!strcmp(a, "--rounds"))
			o.rounds = parse_long(v);
		else if (!strcmp(a, "--bytes"))
			o.bytes = parse_bytes(v);
		else if (!strcmp(a, "--limit-ms"))
			o.limit_ms = parse_long(v);
		else if (!strcmp(a, "--spread-ms"))
			o.spread_ms = parse_long(v);
		else if (!strcmp(a, "--target"))
			o.target = v;
		else if (!strcmp(a, "--delay-us"))
			o.delay_us = parse_long(v);
		else if (!strcmp(a, "--hold-ms"))
			o.hold_ms = parse_long(v);
		else if (!strcmp(a, "--max-s"))
			o.max_s = (int)parse_long(v);
		else if (!strcmp(a, "--notify-fd"))
			o.notify_fd = (int)parse_long(v);
		else
			usage();
	}
	if (kind)
		return cmd_peer(kind, &o);
	signal(SIGPIPE, SIG_IGN);
	alarm((unsigned)o.max_s);
	if (!strcmp(cmd, "pingpong-block"))
		return cmd_pingpong_block(&o);
	if (!strcmp(cmd, "pingpong-epoll"))
		return cmd_pingpong_epoll(&o);
	if (!strcmp(cmd, "bulk"))
		return cmd_bulk(&o);
	if (!strcmp(cmd, "connrate"))
		return cmd_connrate(&o);
	if (!strcmp(cmd, "connsend"))
		return cmd_connsend(&o);
	if (!strcmp(cmd, "hold"))
		return cmd_hold(&o);
	if (!strcmp(cmd, "many"))
		return cmd_many(&o, 1);
	if (!strcmp(cmd, "memory"))
		return cmd_many(&o, 0);
	if (!strcmp(cmd, "expiry"))
		return cmd_expiry(&o);
	if (!strcmp(cmd, "syscost"))
		return cmd_syscost(&o);
	usage();
}
