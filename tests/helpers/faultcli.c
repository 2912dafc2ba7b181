/* faultcli - the client of tests/integration/test_faults.c: the same
 * exchanges, written as a blocking program or as an epoll event loop, so
 * that each injected fault can be measured from inside both kinds of
 * program.
 *
 *   faultcli SUBCOMMAND --port P [--host H]
 *            [--loop block|epoll|epollet|epollshort]
 *            [--tick MS] [--timeout MS] [options]
 *
 * --loop block    blocking sockets; EINTR is counted and the call retried
 *        epoll    O_NONBLOCK sockets in a level-triggered epoll loop that
 *                 also holds a timerfd ticking every --tick ms (default 5)
 *        epollet  the same, the socket registered once, edge-triggered
 *                 (EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET): the program only
 *                 ever waits after a call said EAGAIN
 *        epollshort  registered as epollet, but trusting a short count as
 *                 the kernel means it (as nginx and haproxy do): after a
 *                 read or write that moved less than asked, the program
 *                 waits for the next edge before calling again, and a
 *                 short read once the peer's hangup was reported
 *                 (EPOLLRDHUP/EPOLLHUP) is taken as the end of the stream
 * In the loops, "LOOP ticks=<n> max_call_us=<t> max_gap_us=<t>" closes the
 * output: the timer expirations seen, the longest single socket call
 * (connect, read, write, getsockopt, close) and the longest time between
 * two returns of epoll_wait, each net of the time the machine kept the
 * thread from running (its run-queue wait, from schedstat; raw figures
 * follow as raw_call_us= raw_gap_us=).  A loop that is never blocked has
 * max_call_us of microseconds and max_gap_us near --tick.  --timeout (default 15000)
 * bounds any one wait of the loop: past it the program prints "HANG" and
 * exits 3.  Exit 0 otherwise (the test judges the numbers), 2 on a setup
 * error.  Times are CLOCK_MONOTONIC, the clock the shim and faultsrv use.
 *
 * Subcommands (the server each expects, faultsrv MODE); all but rw,
 * multi and dns open with the CONNECT line, and stop there when it
 * failed; with --dup, the connection then moves to a dup()ed number (the
 * first closed): "DUP fd=<n>":
 *   connect [--exchange]                                     (echo)
 *       "CONNECT err=<ENAME|0> us=<connect() to its outcome>"; with
 *       --exchange, after a connect: "EXCHANGE err=<E|0> got=<n>" for
 *       "ping\n" sent and read back.
 *   rounds --n N [--size S]                                  (echo)
 *       N request/response rounds of S bytes (default 64):
 *       "ROUNDS n=<N> bad=<k> avg_us= min_us= max_us= wavg_us= wmin_us=
 *        wmax_us="
 *       (round trip: from the start of the write to the last byte read;
 *       w: the write alone) and "RTT <us>,<us>,..." (every round trip).
 *   download [--read-size K]                                 (source)
 *       read to EOF or an error, verifying the stream:
 *       "DOWN got=<n> err=<E|0> eof=<0|1> bad=<offset|-1> first_us=
 *        span_us= max_chunk= reads= eintr= eagain= ready_eagain="
 *       first_us: connected to first byte; span_us: first to last byte;
 *       eintr/eagain: calls that failed so (and were retried);
 *       ready_eagain: EAGAIN from a call right after epoll said the
 *       socket was ready for it (which a kernel never does to a single
 *       reader or writer).
 *   upload --bytes N [--write-size K]                        (sink)
 *       write N bytes of the stream (writes of K, default 65536), then
 *       shut down the sending side and read the server's verdict:
 *       "UP sent=<n> err=<E|0> span_us=<first write to last write done>
 *        max_chunk= writes= eintr= eagain= ready_eagain=" and
 *       "REPLY <verdict>".
 *   rw [--send-bytes K] [--recv N]                         (any)
 *       connect, write K bytes (default 0), read N bytes (default: to EOF
 *       or an error): "RW cerr=<E|0> sent=<n> werr=<E|0> got=<n>
 *       err=<E|0> eof=<0|1> ms=<since connect()> rms=<since the reading
 *       began>".
 *   close [--exchange] [--after-ms M]                        (echo/count)
 *       connect (and exchange "ping\n"), then time close():
 *       "CLOSE us=<close() alone> start_ns=<just before close()>", then
 *       keep the loop running M ms: "AFTER ticks=<n>".
 *   dns --name NAME [--port P] [--api getaddrinfo|gethostbyname|
 *                                     gethostbyname_r]
 *       getaddrinfo(NAME) (AF_INET, SOCK_STREAM): "DNS rc=<EAI_...|0>
 *       ms=<t> addr=<first address|-> ticks=<n>"; with --api
 *       gethostbyname[_r], that call instead, rc= its h_errno
 *       (HOST_NOT_FOUND, TRY_AGAIN, ... or 0) and, for _r, ret= its
 *       return value (an errno name or 0); with a port, then
 *       connect to that address (loopback only): the CONNECT line.  In
 *       the loops the lookup runs in a worker thread, as asyncio and
 *       libuv do it, the loop running meanwhile (ticks: timer
 *       expirations seen during the lookup).
 *   multi --conns K [--exchange]                             (echo)
 *       K connections one after the other, each connected (and, with
 *       --exchange, one byte sent and read back), then closed:
 *       "C <i> connect=<E|0> xchg=<E|0|-> us=<connect time>"
 *   window --n N [--every MS]                                (echo)
 *       one connection, N rounds, one every MS ms (0: back to back); a
 *       round writes one byte (one call) and reads back the bytes due,
 *       one per call, until one fails:
 *       "R <k> t_ms=<round start> t2_ms=<round end> w=<E|ok> r=<E|ok|->"
 *       (ms since just before connect())
 *       "WIN rounds=<N> wcalls= werr= rcalls= rerr= errs=<ENAME,...>"
 *   peek [--size S]                                          (source)
 *       (--loop block or epoll) wait until readable, then
 *       recv(S, MSG_PEEK), until one peek sees S bytes (default 64),
 *       then read them: "PEEK got=<last peek> calls=<peeks> same=<0|1>
 *       bad=<offset|-1>" (same: the read matched the peek); a program
 *       waiting for a whole header this way.  No S bytes within
 *       --timeout: "HANG peeking ..." and exit 3.
 */
#include "helpers.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>

enum loop_kind { L_BLOCK, L_EPOLL, L_EPOLLET, L_EPOLLSHORT };

static struct {
	const char *host;
	int port;
	enum loop_kind loop;
	long tick_ms;
	long timeout_ms;
	int exchange;
	long n;
	long size;
	long read_size;
	long long bytes;
	long write_size;
	long long send_bytes;
	long long recv;
	long after_ms;
	const char *name;
	const char *api;
	int dup;
	long conns;
	long every_ms;
} arg = {
	.host = "127.0.0.1",
	.tick_ms = 5,
	.timeout_ms = 15000,
	.n = 50,
	.size = 64,
	.read_size = 65536,
	.bytes = 1 << 20,
	.write_size = 65536,
	.recv = -1,
	.conns = 10,
};

static struct sockaddr_storage peer;
static socklen_t peer_len;

__attribute__((format(printf, 1, 2)))
static void out(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

static const char *ename(int e)
{
	return e ? hp_errname(e) : "0";
}

/* ================================================================== */
/* The loop                                                            */
/* ================================================================== */

static int ep = -1, tfd = -1;
static struct {
	long ticks;
	uint64_t max_call, max_gap, last_ret;
	uint64_t raw_call, raw_gap, last_rq;
	long eintr, eagain, ready_eagain;
	uint32_t ready;		/* events epoll last reported on the socket */
	uint32_t registered;	/* LT: what the socket is registered for */
	int reg_fd;
	/* epollshort: an edge allows a call; a short count or EAGAIN uses
	 * it up.  hup: a hangup was reported; hup_eof: the stream is over. */
	int can_read, can_write, hup, hup_eof;
} L = { .reg_fd = -1 };

/* Time this thread spent runnable but not running (ns), 0 if unknown:
 * the second field of /proc/thread-self/schedstat.  The loop runs in
 * the main thread only. */
static uint64_t run_queue_ns(void)
{
	static int fd = -2;
	uint64_t run, wait;

	if (fd == -2)
		fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
	hp_schedstat(fd, &run, &wait);
	return wait;
}

/* A stretch of d ns that ended now, less the run-queue wait in it. */
static uint64_t net_of(uint64_t d, uint64_t rq_then, uint64_t rq_now)
{
	uint64_t q = rq_now > rq_then ? rq_now - rq_then : 0;

	return d > q ? d - q : 0;
}

static void loop_init(void)
{
	struct itimerspec its;
	struct epoll_event ev = { .events = EPOLLIN };

	run_queue_ns(); /* opened before any socket: fd numbers stay put */
	if (arg.loop == L_BLOCK)
		return;
	ep = epoll_create1(EPOLL_CLOEXEC);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (ep < 0 || tfd < 0)
		hp_die("epoll/timerfd: %s", strerror(errno));
	memset(&its, 0, sizeof(its));
	its.it_interval.tv_sec = arg.tick_ms / 1000;
	its.it_interval.tv_nsec = (arg.tick_ms % 1000) * 1000000L;
	its.it_value = its.it_interval;
	if (timerfd_settime(tfd, 0, &its, NULL) < 0)
		hp_die("timerfd_settime: %s", strerror(errno));
	ev.data.fd = tfd;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev) < 0)
		hp_die("epoll_ctl timerfd: %s", strerror(errno));
	L.last_ret = hp_now_ns();
	L.last_rq = run_queue_ns();
}

static void loop_report(void)
{
	if (arg.loop == L_BLOCK)
		return;
	out("LOOP ticks=%ld max_call_us=%llu max_gap_us=%llu raw_call_us=%llu "
	    "raw_gap_us=%llu\n", L.ticks,
	    (unsigned long long)(L.max_call / 1000),
	    (unsigned long long)(L.max_gap / 1000),
	    (unsigned long long)(L.raw_call / 1000),
	    (unsigned long long)(L.raw_gap / 1000));
}


/* Time one socket call of the loop. */
#define TIMED(expr)                                                         \
	({                                                                   \
		uint64_t t_ = hp_now_ns(), q_ = run_queue_ns();              \
		__typeof__(expr) r_ = (expr);                                \
		int e_ = errno;                                              \
		uint64_t d_ = hp_now_ns() - t_;                              \
		uint64_t n_ = net_of(d_, q_, run_queue_ns());                \
		if (d_ > L.raw_call)                                         \
			L.raw_call = d_;                                     \
		if (n_ > L.max_call)                                         \
			L.max_call = n_;                                     \
		errno = e_;                                                  \
		r_;                                                          \
	})

/* Register the socket (after connect() started). */
static void loop_add(int fd)
{
	struct epoll_event ev = { .data.fd = fd };

	if (arg.loop == L_BLOCK)
		return;
	ev.events = arg.loop == L_EPOLLET || arg.loop == L_EPOLLSHORT
			    ? EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET
			    : 0;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		hp_die("epoll_ctl add: %s", strerror(errno));
	L.registered = ev.events;
	L.reg_fd = fd;
	L.ready = 0;
	L.can_read = L.can_write = L.hup = L.hup_eof = 0;
}

static void loop_del(int fd)
{
	if (arg.loop == L_BLOCK || L.reg_fd != fd)
		return;
	epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
	L.reg_fd = -1;
}

static void count_ticks(void)
{
	uint64_t n;

	while (read(tfd, &n, sizeof(n)) == (ssize_t)sizeof(n))
		L.ticks += (long)n;
}

/* One epoll_wait; returns the socket's events (0: only the timer). */
static uint32_t loop_once(int timeout_ms)
{
	struct epoll_event ev[8];
	uint32_t got = 0;
	int n = epoll_wait(ep, ev, 8, timeout_ms);
	uint64_t now = hp_now_ns(), rq = run_queue_ns();
	uint64_t net = net_of(now - L.last_ret, L.last_rq, rq);

	if (now - L.last_ret > L.raw_gap)
		L.raw_gap = now - L.last_ret;
	if (net > L.max_gap)
		L.max_gap = net;
	L.last_ret = now;
	L.last_rq = rq;
	if (n < 0 && errno != EINTR)
		hp_die("epoll_wait: %s", strerror(errno));
	for (int i = 0; i < n; i++) {
		if (ev[i].data.fd == tfd)
			count_ticks();
		else if (ev[i].data.fd == L.reg_fd)
			got |= ev[i].events;
	}
	return got;
}

/* Wait until the socket reports want (or an error/hangup); level-
 * triggered: registered for exactly want; edge-triggered: any edge. */
static uint32_t loop_wait(int fd, uint32_t want)
{
	uint64_t end = hp_now_ns() + (uint64_t)arg.timeout_ms * 1000000u;

	if (arg.loop == L_EPOLL && L.registered != want) {
		struct epoll_event ev = { .events = want, .data.fd = fd };

		if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) < 0)
			hp_die("epoll_ctl mod: %s", strerror(errno));
		L.registered = want;
	}
	for (;;) {
		uint32_t got = loop_once(1000);

		if (got) {
			L.ready = got;
			if (got & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				L.can_read = 1;
			if (got & (EPOLLOUT | EPOLLHUP | EPOLLERR))
				L.can_write = 1;
			if (got & (EPOLLRDHUP | EPOLLHUP))
				L.hup = 1;
			return got;
		}
		if (hp_now_ns() > end) {
			out("HANG waiting for %s on fd %d\n",
			    want == EPOLLIN ? "EPOLLIN" : "EPOLLOUT", fd);
			loop_report();
			exit(3);
		}
	}
}

/* Keep the loop running ms milliseconds (the socket, if any, ignored). */
static void loop_run_for(long ms)
{
	uint64_t end = hp_now_ns() + (uint64_t)ms * 1000000u;

	if (arg.loop == L_BLOCK) {
		hp_sleep_ms(ms);
		return;
	}
	for (uint64_t now; (now = hp_now_ns()) < end;) {
		int left = (int)((end - now) / 1000000u) + 1;

		loop_once(left);
	}
}

/* ================================================================== */
/* Socket calls, one way or the other                                  */
/* ================================================================== */

static int new_socket(void)
{
	int fd = socket(peer.ss_family ? peer.ss_family : AF_INET,
			SOCK_STREAM | SOCK_CLOEXEC |
				(arg.loop == L_BLOCK ? 0 : SOCK_NONBLOCK),
			0), one = 1;

	if (fd < 0)
		hp_die("socket: %s", strerror(errno));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* Connect fd to addr; 0 or the errno. */
static int xconnect_to(int fd, const struct sockaddr *addr, socklen_t len)
{
	int err = 0;
	socklen_t el = sizeof(err);

	if (arg.loop == L_BLOCK) {
		int r;

		while ((r = connect(fd, addr, len)) < 0 && errno == EINTR)
			L.eintr++;
		return r < 0 ? errno : 0;
	}
	if (TIMED(connect(fd, addr, len)) == 0) {
		loop_add(fd);
		return 0;
	}
	if (errno != EINPROGRESS)
		return errno;
	loop_add(fd);
	loop_wait(fd, EPOLLOUT);
	if (TIMED(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el)) < 0)
		return errno;
	return err;
}

static int xconnect(int fd)
{
	return xconnect_to(fd, (struct sockaddr *)&peer, peer_len);
}

/* One read: >0 bytes, 0 at EOF, -1 with errno (never EAGAIN/EINTR). */
static ssize_t xread(int fd, void *buf, size_t n)
{
	for (;;) {
		ssize_t r;

		if (arg.loop == L_EPOLLSHORT) {
			if (L.hup_eof)
				return 0; /* the short read after a hangup */
			if (!L.can_read) {
				loop_wait(fd, EPOLLIN);
				continue;
			}
		}
		r = arg.loop == L_BLOCK ? read(fd, buf, n)
					: TIMED(read(fd, buf, n));
		if (r >= 0) {
			L.ready &= ~(uint32_t)EPOLLIN;
			if (arg.loop == L_EPOLLSHORT && r > 0 &&
			    (size_t)r < n) {
				/* Drained, says the kernel: wait for more,
				 * or there is no more. */
				L.can_read = 0;
				L.hup_eof = L.hup;
			}
			return r;
		}
		if (errno == EINTR) {
			L.eintr++;
			continue;
		}
		if (errno != EAGAIN || arg.loop == L_BLOCK)
			return -1;
		L.eagain++;
		if (L.ready & EPOLLIN)
			L.ready_eagain++;
		L.ready &= ~(uint32_t)EPOLLIN;
		L.can_read = 0;
		if (arg.loop != L_EPOLLSHORT)
			loop_wait(fd, EPOLLIN);
	}
}

/* One write call's worth: >0 bytes or -1 with errno (never EAGAIN/EINTR). */
static ssize_t xwrite(int fd, const void *buf, size_t n)
{
	for (;;) {
		ssize_t r;

		if (arg.loop == L_EPOLLSHORT && !L.can_write) {
			loop_wait(fd, EPOLLOUT);
			continue;
		}
		r = arg.loop == L_BLOCK ? send(fd, buf, n, MSG_NOSIGNAL)
					: TIMED(send(fd, buf, n, MSG_NOSIGNAL));
		if (r >= 0) {
			L.ready &= ~(uint32_t)EPOLLOUT;
			if (arg.loop == L_EPOLLSHORT && (size_t)r < n)
				L.can_write = 0; /* the buffer is full */
			return r;
		}
		if (errno == EINTR) {
			L.eintr++;
			continue;
		}
		if (errno != EAGAIN || arg.loop == L_BLOCK)
			return -1;
		L.eagain++;
		if (L.ready & EPOLLOUT)
			L.ready_eagain++;
		L.ready &= ~(uint32_t)EPOLLOUT;
		L.can_write = 0;
		if (arg.loop != L_EPOLLSHORT)
			loop_wait(fd, EPOLLOUT);
	}
}

static int xwrite_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n) {
		ssize_t w = xwrite(fd, p, n);

		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read exactly n bytes; 0, or -1 with errno (0 = early EOF). */
static int xread_all(int fd, void *buf, size_t n)
{
	char *p = buf;

	while (n) {
		ssize_t r = xread(fd, p, n);

		if (r <= 0) {
			if (r == 0)
				errno = 0;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static void xclose(int fd)
{
	loop_del(fd);
	if (arg.loop == L_BLOCK)
		close(fd);
	else
		TIMED(close(fd));
}

static int connect_or_report(int *fdp)
{
	uint64_t t0 = hp_now_ns();
	int fd = new_socket(), e = xconnect(fd);

	out("CONNECT err=%s us=%llu\n", ename(e),
	    (unsigned long long)((hp_now_ns() - t0) / 1000));
	if (e) {
		xclose(fd);
		return -1;
	}
	if (arg.dup) {
		/* Move the connection to another number (dup, close the
		 * first), as daemons that dup2 a socket onto stdio do. */
		int nfd = dup(fd);

		if (nfd < 0)
			hp_die("dup: %s", strerror(errno));
		loop_del(fd);
		close(fd);
		fd = nfd;
		loop_add(fd);
		L.can_read = L.can_write = 1;
		out("DUP fd=%d\n", fd);
	}
	*fdp = fd;
	return 0;
}

/* ================================================================== */
/* Subcommands                                                         */
/* ================================================================== */

static int exchange_ping(int fd, long *got)
{
	char buf[8];

	*got = 0;
	if (xwrite_all(fd, "ping\n", 5) < 0)
		return errno;
	if (xread_all(fd, buf, 5) < 0)
		return errno ? errno : EPROTO;
	*got = 5;
	return memcmp(buf, "ping\n", 5) ? EPROTO : 0;
}

static int cmd_connect(void)
{
	int fd;
	long got;

	if (connect_or_report(&fd) < 0)
		return 0;
	if (arg.exchange) {
		int e = exchange_ping(fd, &got);

		out("EXCHANGE err=%s got=%ld\n", ename(e), got);
	}
	xclose(fd);
	return 0;
}

static int cmd_rounds(void)
{
	char *req = malloc((size_t)arg.size), *resp = malloc((size_t)arg.size);
	uint64_t *rtt = calloc((size_t)arg.n, sizeof(*rtt));
	uint64_t sum = 0, wsum = 0, min = UINT64_MAX, max = 0, wmax = 0;
	uint64_t wmin = UINT64_MAX;
	long bad = 0, done = 0;
	int fd;

	if (!req || !resp || !rtt)
		hp_die("out of memory");
	if (connect_or_report(&fd) < 0)
		return 0;
	for (long i = 0; i < arg.n; i++) {
		uint64_t t0, t1, t2;

		hp_pattern_fill((uint64_t)i + 7, 0, req, (size_t)arg.size);
		t0 = hp_now_ns();
		if (xwrite_all(fd, req, (size_t)arg.size) < 0) {
			out("ERR round=%ld op=write err=%s\n", i, ename(errno));
			break;
		}
		t1 = hp_now_ns();
		if (xread_all(fd, resp, (size_t)arg.size) < 0) {
			out("ERR round=%ld op=read err=%s\n", i, ename(errno));
			break;
		}
		t2 = hp_now_ns();
		if (memcmp(req, resp, (size_t)arg.size))
			bad++;
		rtt[i] = t2 - t0;
		sum += t2 - t0;
		wsum += t1 - t0;
		if (t2 - t0 < min)
			min = t2 - t0;
		if (t2 - t0 > max)
			max = t2 - t0;
		if (t1 - t0 > wmax)
			wmax = t1 - t0;
		if (t1 - t0 < wmin)
			wmin = t1 - t0;
		done++;
	}
	xclose(fd);
	if (!done)
		done = 1, min = 0, wmin = 0;
	out("ROUNDS n=%ld bad=%ld avg_us=%llu min_us=%llu max_us=%llu "
	    "wavg_us=%llu wmin_us=%llu wmax_us=%llu\n", done, bad,
	    (unsigned long long)(sum / (uint64_t)done / 1000),
	    (unsigned long long)(min / 1000), (unsigned long long)(max / 1000),
	    (unsigned long long)(wsum / (uint64_t)done / 1000),
	    (unsigned long long)(wmin / 1000),
	    (unsigned long long)(wmax / 1000));
	fputs("RTT ", stdout);
	for (long i = 0; i < done; i++)
		printf("%s%llu", i ? "," : "",
		       (unsigned long long)(rtt[i] / 1000));
	putchar('\n');
	free(req);
	free(resp);
	free(rtt);
	return 0;
}

static int cmd_download(void)
{
	char *buf = malloc((size_t)arg.read_size);
	unsigned long long got = 0;
	long long bad = -1;
	uint64_t t_conn, t_first = 0, t_last = 0;
	long reads = 0, max_chunk = 0;
	int fd, err = 0, eof = 0;

	if (!buf)
		hp_die("out of memory");
	if (connect_or_report(&fd) < 0)
		return 0;
	t_conn = hp_now_ns();
	for (;;) {
		ssize_t r = xread(fd, buf, (size_t)arg.read_size);

		if (r < 0) {
			err = errno;
			break;
		}
		reads++;
		if (r == 0) {
			eof = 1;
			break;
		}
		t_last = hp_now_ns();
		if (!t_first)
			t_first = t_last;
		if (r > max_chunk)
			max_chunk = (long)r;
		if (bad < 0) {
			long long at = hp_pattern_check(1, got, buf, (size_t)r);

			if (at >= 0)
				bad = (long long)got + at;
		}
		got += (unsigned long long)r;
	}
	xclose(fd);
	out("DOWN got=%llu err=%s eof=%d bad=%lld first_us=%llu span_us=%llu "
	    "max_chunk=%ld reads=%ld eintr=%ld eagain=%ld ready_eagain=%ld\n",
	    got,
	    ename(err), eof, bad,
	    (unsigned long long)(t_first ? (t_first - t_conn) / 1000 : 0),
	    (unsigned long long)(t_first ? (t_last - t_first) / 1000 : 0),
	    max_chunk, reads, L.eintr, L.eagain, L.ready_eagain);
	free(buf);
	return 0;
}

static int cmd_upload(void)
{
	char *buf = malloc((size_t)arg.write_size);
	unsigned long long sent = 0, total = (unsigned long long)arg.bytes;
	uint64_t t_first = 0, t_last = 0;
	long writes = 0, max_chunk = 0;
	char reply[128];
	size_t rl = 0;
	int fd, err = 0;

	if (!buf)
		hp_die("out of memory");
	if (connect_or_report(&fd) < 0)
		return 0;
	while (sent < total) {
		size_t k = total - sent < (unsigned long long)arg.write_size
				   ? (size_t)(total - sent)
				   : (size_t)arg.write_size;
		ssize_t w;

		hp_pattern_fill(1, sent, buf, k);
		if (!t_first)
			t_first = hp_now_ns();
		/* Whatever a call takes, the rest is offered again. */
		for (size_t off = 0; off < k; off += (size_t)w) {
			w = xwrite(fd, buf + off, k - off);
			if (w < 0) {
				err = errno;
				goto done;
			}
			writes++;
			if (w > max_chunk)
				max_chunk = (long)w;
			sent += (unsigned long long)w;
		}
		t_last = hp_now_ns();
	}
done:
	out("UP sent=%llu err=%s span_us=%llu max_chunk=%ld writes=%ld "
	    "eintr=%ld eagain=%ld ready_eagain=%ld\n", sent, ename(err),
	    (unsigned long long)(t_last ? (t_last - t_first) / 1000 : 0),
	    max_chunk, writes, L.eintr, L.eagain, L.ready_eagain);
	if (!err) {
		shutdown(fd, SHUT_WR);
		for (;;) {
			ssize_t r = xread(fd, reply + rl, sizeof(reply) - 1 - rl);

			if (r <= 0)
				break;
			rl += (size_t)r;
			if (rl == sizeof(reply) - 1)
				break;
		}
		reply[rl] = '\0';
		reply[strcspn(reply, "\n")] = '\0';
		out("REPLY %s\n", reply);
	}
	xclose(fd);
	free(buf);
	return 0;
}

static int cmd_rw(void)
{
	char buf[65536];
	uint64_t t0 = hp_now_ns(), tr;
	unsigned long long sent = 0, got = 0;
	int fd = new_socket(), cerr, werr = 0, err = 0, eof = 0;

	cerr = xconnect(fd);
	if (!cerr && arg.send_bytes > 0) {
		memset(buf, 'x', sizeof(buf));
		while (sent < (unsigned long long)arg.send_bytes) {
			size_t k = arg.send_bytes - (long long)sent <
						   (long long)sizeof(buf)
					   ? (size_t)(arg.send_bytes -
						      (long long)sent)
					   : sizeof(buf);
			ssize_t w = xwrite(fd, buf, k);

			if (w < 0) {
				werr = errno;
				break;
			}
			sent += (unsigned long long)w;
		}
	}
	tr = hp_now_ns();
	while (!cerr && !werr &&
	       (arg.recv < 0 || got < (unsigned long long)arg.recv)) {
		size_t want = sizeof(buf);
		ssize_t r;

		if (arg.recv >= 0 &&
		    (unsigned long long)want > (unsigned long long)arg.recv - got)
			want = (size_t)((unsigned long long)arg.recv - got);
		r = xread(fd, buf, want);
		if (r < 0) {
			err = errno;
			break;
		}
		if (r == 0) {
			eof = 1;
			break;
		}
		got += (unsigned long long)r;
	}
	out("RW cerr=%s sent=%llu werr=%s got=%llu err=%s eof=%d ms=%ld "
	    "rms=%ld\n", ename(cerr), sent, ename(werr), got, ename(err), eof,
	    hp_ms_since(t0), hp_ms_since(tr));
	xclose(fd);
	return 0;
}

static int cmd_close(void)
{
	uint64_t t0, t1;
	long got;
	long t0_ticks;
	int fd;

	if (connect_or_report(&fd) < 0)
		return 0;
	if (arg.exchange) {
		int e = exchange_ping(fd, &got);

		out("EXCHANGE err=%s got=%ld\n", ename(e), got);
	}
	loop_del(fd);
	t0 = hp_now_ns();
	if (arg.loop == L_BLOCK)
		close(fd);
	else
		TIMED(close(fd));
	t1 = hp_now_ns();
	out("CLOSE us=%llu start_ns=%llu\n",
	    (unsigned long long)((t1 - t0) / 1000), (unsigned long long)t0);
	t0_ticks = L.ticks;
	loop_run_for(arg.after_ms);
	out("AFTER ticks=%ld\n", L.ticks - t0_ticks);
	return 0;
}

static const char *eai_name(int rc)
{
	switch (rc) {
	case 0: return "0";
	case EAI_NONAME: return "EAI_NONAME";
	case EAI_AGAIN: return "EAI_AGAIN";
	case EAI_FAIL: return "EAI_FAIL";
	case EAI_FAMILY: return "EAI_FAMILY";
	case EAI_SERVICE: return "EAI_SERVICE";
	case EAI_MEMORY: return "EAI_MEMORY";
	case EAI_SYSTEM: return "EAI_SYSTEM";
#ifdef EAI_NODATA
	case EAI_NODATA: return "EAI_NODATA";
#endif
#ifdef EAI_ADDRFAMILY
	case EAI_ADDRFAMILY: return "EAI_ADDRFAMILY";
#endif
	default: return "EAI_OTHER";
	}
}

static const char *herr_name(int h)
{
	switch (h) {
	case 0: return "0";
	case HOST_NOT_FOUND: return "HOST_NOT_FOUND";
	case TRY_AGAIN: return "TRY_AGAIN";
	case NO_RECOVERY: return "NO_RECOVERY";
	case NO_DATA: return "NO_DATA";
	default: return "H_OTHER";
	}
}

struct lookup {
	int done_fd;
	const char *rc;		/* the answer's name */
	char ret[32];		/* gethostbyname_r's return value */
	char addr[INET6_ADDRSTRLEN]; /* the first address, or "-" */
};

/* gethostbyname[_r](arg.name) into lk. */
static void lookup_hostent(struct lookup *lk)
{
	struct hostent *h, hb;
	char buf[4096];
	int herr = 0, r;

	if (!strcmp(arg.api, "gethostbyname")) {
		h = gethostbyname(arg.name);
		herr = h ? 0 : h_errno;
	} else {
		h = NULL;
		r = gethostbyname_r(arg.name, &hb, buf, sizeof(buf), &h, &herr);
		snprintf(lk->ret, sizeof(lk->ret), "%s", ename(r));
		if (h)
			herr = 0;
	}
	lk->rc = herr_name(herr);
	if (h && h->h_addrtype == AF_INET && h->h_addr_list[0])
		inet_ntop(AF_INET, h->h_addr_list[0], lk->addr,
			  sizeof(lk->addr));
}

static void *lookup_thread(void *p)
{
	struct lookup *lk = p;
	struct addrinfo hints, *res = NULL;
	int rc;

	snprintf(lk->addr, sizeof(lk->addr), "-");
	lk->ret[0] = '\0';
	if (arg.api && strcmp(arg.api, "getaddrinfo")) {
		lookup_hostent(lk);
	} else {
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_INET;
		hints.ai_socktype = SOCK_STREAM;
		rc = getaddrinfo(arg.name, NULL, &hints, &res);
		lk->rc = eai_name(rc);
		if (rc == 0 && res)
			inet_ntop(AF_INET,
				  &((struct sockaddr_in *)res->ai_addr)->sin_addr,
				  lk->addr, sizeof(lk->addr));
		if (res)
			freeaddrinfo(res);
	}
	if (lk->done_fd >= 0 && write(lk->done_fd, "x", 1) < 0)
		hp_die("write: %s", strerror(errno));
	return NULL;
}

/* The lookup: in the calling thread (block), or the way event loops do
 * it (asyncio, libuv): in a worker thread, the loop running meanwhile
 * and woken through a pipe. */
static void lookup(struct lookup *lk)
{
	int p[2];
	pthread_t t;

	lk->done_fd = -1;
	if (arg.loop == L_BLOCK) {
		lookup_thread(lk);
		return;
	}
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		hp_die("pipe: %s", strerror(errno));
	lk->done_fd = p[1];
	if (pthread_create(&t, NULL, lookup_thread, lk))
		hp_die("pthread_create failed");
	loop_add(p[0]);
	loop_wait(p[0], EPOLLIN);
	loop_del(p[0]);
	pthread_join(t, NULL);
	close(p[0]);
	close(p[1]);
}

static int cmd_dns(void)
{
	struct lookup lk;
	uint64_t t0 = hp_now_ns();
	long t0_ticks = L.ticks;

	lookup(&lk);
	out("DNS rc=%s%s%s ms=%ld addr=%s ticks=%ld\n", lk.rc,
	    lk.ret[0] ? " ret=" : "", lk.ret, hp_ms_since(t0), lk.addr,
	    L.ticks - t0_ticks);
	if (strcmp(lk.addr, "-") && arg.port > 0) {
		struct sockaddr_storage ss;
		socklen_t len;
		uint64_t t1;
		int fd, e;

		hp_loopback(lk.addr, arg.port, &ss, &len); /* loopback only */
		fd = new_socket();
		t1 = hp_now_ns();
		e = xconnect_to(fd, (struct sockaddr *)&ss, len);
		out("CONNECT err=%s us=%llu\n", ename(e),
		    (unsigned long long)((hp_now_ns() - t1) / 1000));
		xclose(fd);
	}
	return 0;
}

static int cmd_multi(void)
{
	for (long i = 1; i <= arg.conns; i++) {
		uint64_t t0 = hp_now_ns();
		int fd = new_socket(), e = xconnect(fd), x = -1;
		uint64_t us = (hp_now_ns() - t0) / 1000;

		if (!e && arg.exchange) {
			char b = 'a';

			x = 0;
			if (xwrite_all(fd, &b, 1) < 0 || xread_all(fd, &b, 1) < 0)
				x = errno ? errno : EPROTO;
		}
		out("C %ld connect=%s xchg=%s us=%llu\n", i, ename(e),
		    x < 0 ? "-" : ename(x), (unsigned long long)us);
		xclose(fd);
	}
	return 0;
}

/* A short list of the distinct errno names seen. */
static char errs_seen[256];

static void note_err(int e)
{
	const char *n = ename(e);
	char key[40];

	snprintf(key, sizeof(key), ",%s,", n);
	if (strstr(errs_seen, key))
		return;
	if (strlen(errs_seen) + strlen(n) + 3 < sizeof(errs_seen)) {
		if (!errs_seen[0])
			strcat(errs_seen, ",");
		strcat(errs_seen, n);
		strcat(errs_seen, ",");
	}
}

static int cmd_window(void)
{
	uint64_t t0 = hp_now_ns();
	long wcalls = 0, werr = 0, rcalls = 0, rerr = 0, pending = 0;
	int fd = new_socket(), e = xconnect(fd);

	out("CONNECT err=%s us=%llu\n", ename(e),
	    (unsigned long long)((hp_now_ns() - t0) / 1000));
	if (e) {
		xclose(fd);
		return 0;
	}
	for (long k = 0; k < arg.n; k++) {
		uint64_t at = t0 + (uint64_t)(k * arg.every_ms) * 1000000u;
		const char *w = "ok", *r = "-";
		char b[256] = { 'a' };
		long t_ms;

		if (arg.every_ms && hp_now_ns() < at)
			loop_run_for((long)((at - hp_now_ns()) / 1000000u) + 1);
		t_ms = hp_ms_since(t0);
		wcalls++;
		if (xwrite(fd, b, 1) < 0) {
			werr++;
			note_err(errno);
			w = ename(errno);
		} else {
			pending++;
		}
		/* One byte per read call: the number of calls does not
		 * depend on how the echoes are coalesced. */
		while (pending) {
			ssize_t n;

			rcalls++;
			n = xread(fd, b, 1);
			if (n < 0) {
				rerr++;
				note_err(errno);
				r = ename(errno);
				break;
			}
			if (n == 0) {
				r = "EOF";
				note_err(EPROTO);
				break;
			}
			pending--;
			r = "ok";
		}
		out("R %ld t_ms=%ld t2_ms=%ld w=%s r=%s\n", k, t_ms,
		    hp_ms_since(t0), w, r);
	}
	xclose(fd);
	out("WIN rounds=%ld wcalls=%ld werr=%ld rcalls=%ld rerr=%ld "
	    "errs=%s\n", arg.n, wcalls, werr, rcalls, rerr,
	    errs_seen[0] ? errs_seen : "-");
	return 0;
}

/* ================================================================== */
/* Arguments                                                           */
/* ================================================================== */

static void usage(void)
{
	fprintf(stderr,
		"usage: faultcli connect|rounds|download|upload|rw|close|dns|"
		"multi|window|peek\n"
		"         --port P [--host H] "
		"[--loop block|epoll|epollet|epollshort] [options]\n");
	exit(2);
}

static int cmd_peek(void)
{
	size_t size = (size_t)arg.size;
	char *peeked = malloc(size), *got = malloc(size);
	uint64_t end;
	long calls = 0;
	ssize_t r = -1;
	long long bad = -1;
	int fd, same;

	if (!peeked || !got)
		hp_die("out of memory");
	if (connect_or_report(&fd) < 0)
		return 0;
	end = hp_now_ns() + (uint64_t)arg.timeout_ms * 1000000u;
	for (;;) {
		if (arg.loop == L_BLOCK) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			poll(&p, 1, 1000);
		} else {
			loop_wait(fd, EPOLLIN);
		}
		r = recv(fd, peeked, size, MSG_PEEK);
		calls++;
		if (r == 0 || (size_t)r >= size ||
		    (r < 0 && errno != EAGAIN && errno != EINTR))
			break;
		if (hp_now_ns() > end) {
			out("HANG peeking: %zd of %zu bytes after %ld calls\n", r,
			    size, calls);
			loop_report();
			exit(3);
		}
	}
	if ((size_t)r != size || xread_all(fd, got, size) < 0) {
		out("PEEK got=%zd calls=%ld same=0 bad=0 err=%s\n", r, calls,
		    ename(r < 0 ? errno : 0));
	} else {
		same = !memcmp(peeked, got, size);
		bad = hp_pattern_check(1, 0, got, size);
		out("PEEK got=%zd calls=%ld same=%d bad=%lld err=0\n", r,
		    calls, same, bad);
	}
	xclose(fd);
	free(peeked);
	free(got);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd;
	int rc;

	if (argc < 2)
		usage();
	cmd = argv[1];
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--dup")) {
			arg.dup = 1;
			continue;
		}
		if (!strcmp(a, "--exchange")) {
			arg.exchange = 1;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--port"))
			arg.port = (int)hp_num(v, 1, 65535, "--port");
		else if (!strcmp(a, "--host"))
			arg.host = v;
		else if (!strcmp(a, "--loop"))
			arg.loop = !strcmp(v, "block")	 ? L_BLOCK
				   : !strcmp(v, "epoll") ? L_EPOLL
				   : !strcmp(v, "epollet") ? L_EPOLLET
				   : !strcmp(v, "epollshort")
					   ? L_EPOLLSHORT
					   : (usage(), L_BLOCK);
		else if (!strcmp(a, "--tick"))
			arg.tick_ms = (long)hp_num(v, 1, 1000, "--tick");
		else if (!strcmp(a, "--timeout"))
			arg.timeout_ms = (long)hp_num(v, 1, 600000, "--timeout");
		else if (!strcmp(a, "--n"))
			arg.n = (long)hp_num(v, 1, 1000000, "--n");
		else if (!strcmp(a, "--size"))
			arg.size = (long)hp_num(v, 1, 1 << 20, "--size");
		else if (!strcmp(a, "--read-size"))
			arg.read_size = (long)hp_num(v, 1, 1 << 24, "--read-size");
		else if (!strcmp(a, "--bytes"))
			arg.bytes = hp_num(v, 0, LLONG_MAX, "--bytes");
		else if (!strcmp(a, "--write-size"))
			arg.write_size = (long)hp_num(v, 1, 1 << 24,
						      "--write-size");
		else if (!strcmp(a, "--send-bytes"))
			arg.send_bytes = hp_num(v, 0, LLONG_MAX, "--send-bytes");
		else if (!strcmp(a, "--recv"))
			arg.recv = hp_num(v, -1, LLONG_MAX, "--recv");
		else if (!strcmp(a, "--after-ms"))
			arg.after_ms = (long)hp_num(v, 0, 60000, "--after-ms");
		else if (!strcmp(a, "--name"))
			arg.name = v;
		else if (!strcmp(a, "--api"))
			arg.api = v;
		else if (!strcmp(a, "--conns"))
			arg.conns = (long)hp_num(v, 1, 100000, "--conns");
		else if (!strcmp(a, "--every"))
			arg.every_ms = (long)hp_num(v, 0, 60000, "--every");
		else
			usage();
	}
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(cmd, "dns") != 0) {
		if (!arg.port)
			usage();
		hp_loopback(arg.host, arg.port, &peer, &peer_len);
	} else if (!arg.name) {
		usage();
	}
	loop_init();
	if (!strcmp(cmd, "connect"))
		rc = cmd_connect();
	else if (!strcmp(cmd, "rounds"))
		rc = cmd_rounds();
	else if (!strcmp(cmd, "download"))
		rc = cmd_download();
	else if (!strcmp(cmd, "upload"))
		rc = cmd_upload();
	else if (!strcmp(cmd, "rw"))
		rc = cmd_rw();
	else if (!strcmp(cmd, "close"))
		rc = cmd_close();
	else if (!strcmp(cmd, "dns"))
		rc = cmd_dns();
	else if (!strcmp(cmd, "multi"))
		rc = cmd_multi();
	else if (!strcmp(cmd, "window"))
		rc = cmd_window();
	else if (!strcmp(cmd, "peek"))
		rc = cmd_peek();
	else
		usage();
	loop_report();
	return rc;
}
