/* evclient - event-loop test client for tests/integration/test_eventloop.c.
 *
 *   evclient quietwait HOST PORT [--iters N] [--armed K] [--gap MS]
 *                                [--wait MS]
 *   evclient many HOST PORT --echo PORT --limit MS [--n N]
 *                 [--every-us US] [--arm connect|eagain] [--ping-ms MS]
 *
 * Both run under the shim; the test chooses the DEADLINE_* variables.
 * Output is line-oriented and parsed by the test; exit 0 means "ran to the
 * end" (the test, not this program, judges the numbers), 2 a setup error.
 * Times are CLOCK_MONOTONIC, the clock the shim uses.
 *
 * quietwait (HOST PORT: stallsrv silent)
 *   For each wait call (poll, ppoll, select, epoll_wait, epoll_pwait) and
 *   each iteration: open K blocking TCP connections to the silent server,
 *   GAP ms apart, then wait --wait ms on a pipe and a UDP socket on which
 *   nothing ever happens.  The test sets DEADLINE_REQUEST_TIMEOUT so the
 *   K deadlines fall inside the wait: the shim must cut the wait, tear the
 *   connections down, and resume, invisibly.  One line per wait:
 *     WAIT <call> <iter> r=<ret> errno=<E> us=<elapsed> excuse_us=<t>
 *          rq_us=<t> steal_us=<t> cpu_us=<t> quiet=<0|1> expired=<k>/<K>
 *   quiet=1: no revents / empty sets / no events, and for select the
 *   timeval left at 0.  expired counts the K sockets whose recv() now
 *   fails with ETIMEDOUT (so the deadlines did fire during the wait);
 *   excuse_us is the part of the time past --wait during which the
 *   machine kept this thread from running (see "Time the machine took
 *   from us" below), rq_us and steal_us its two components.
 *
 * many (HOST PORT: stallsrv silent; --echo: a stallsrv echo port on HOST)
 *   One epoll loop.  Opens N non-blocking connections to the silent
 *   server, one every US microseconds, so each gets its own absolute
 *   deadline although the limit is one value per process.  The deadline
 *   starts (and the start time is taken just before the call):
 *     --arm connect  at connect()    (DEADLINE_REQUEST_TIMEOUT)
 *     --arm eagain   at the first read() that returns EAGAIN, made right
 *                    after the handshake and a 1-byte write
 *                    (DEADLINE_IDLE_TIMEOUT)
 *   The loop records when each fd reports EPOLLERR/EPOLLHUP and what
 *   read() then says, and closes it.  Meanwhile, in the same loop, three
 *   channels exchange a sequence number every --ping-ms:
 *     unix  an AF_UNIX socketpair   (never tracked by the shim)
 *     udp   two connected UDP sockets (never tracked by the shim)
 *     tcp   a TCP connection to the echo server: tracked, under the same
 *           limit, but every exchange is a new request (write after read)
 *           and moves bytes, so neither request nor idle may ever fire.
 *   Lines:
 *     EXP <i> start_us=<t> event_us=<t> lat_us=<event-start>
 *         arm_us=<the starting call's duration>
 *         late_us=<event - (end of that call + limit)>
 *         excuse_us=<t> rq_us=<t> steal_us=<t> cpu_us=<t>
 *         reaper_cpu_us=<t> ev=<hex> read=<ENAME>
 *                                             (in the order reported)
 *       excuse_us: time the machine kept the loop from running between
 *       the latest the deadline can be (the end of the call that started
 *       it + --limit) and the event being seen
 *     BAD <i> <what>                          (anything unexpected)
 *     ALIVE unix=<n> udp=<n> tcp=<n> bad=<n> last_tcp_us=<t>
 *     SUMMARY n=<N> reported=<n> etimedout=<n> errhup=<n> inorder=<0|1>
 *         min_lat_us=<t> max_lat_us=<t> max_excess_us=<t>
 *         span_us=<first start..last start>
 *       max_excess_us: the worst late_us - excuse_us
 *   (_us values are relative to the first connection's start.)
 */
#include "helpers.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/syscall.h>

static struct {
	const char *host;
	int port;
	int echo_port;
	int iters;
	int armed;
	long gap_ms;
	long wait_ms;
	int n;
	long every_us;
	int arm_eagain;
	long ping_ms;
	long limit_ms;
} arg = {
	.iters = 3,
	.armed = 3,
	.gap_ms = 10,
	.wait_ms = 100,
	.n = 1000,
	.every_us = 1000,
	.ping_ms = 5,
};

__attribute__((format(printf, 1, 2)))
static void out(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

/* A "BAD ..." line; only the first few are printed, so that a broken
 * shim cannot flood the test with output. */
static long bad_lines;

__attribute__((format(printf, 1, 2)))
static void bad(const char *fmt, ...)
{
	va_list ap;

	if (bad_lines++ >= 20)
		return;
	fputs("BAD ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ */
/* Time the machine took from us                                       */
/* ------------------------------------------------------------------ */

/* The test machine is shared and virtual: a wait can end late because
 * the scheduler ran someone else (the thread sat on the run queue) or
 * because the whole virtual CPU was away (hypervisor steal, which the
 * guest's schedstat does not show; native 1 ms epoll_waits end 5-15 ms
 * late then, with no CPU time used and no run-queue time).  Neither is
 * the shim's doing, so lateness is reported together with an "excuse":
 *   rq     time this thread spent runnable but not running (schedstat),
 *          plus that of the process's other threads but the canary: the
 *          shim's dl-reaper, which tears down what falls due while this
 *          thread sleeps, and which this thread may wait for;
 *   steal  how long a canary thread pinned to the same CPU, sleeping
 *          1 ms at a time, overslept within the interval, less the CPU
 *          time this thread itself used then (so the shim's own work is
 *          never excused).
 * excuse = max(rq, steal). */

struct sched {
	uint64_t run, wait; /* ns on the CPU, ns on the run queue */
	uint64_t orun; /* ns on the CPU of the other threads (the reaper) */
};

/* One thread's schedstat (hp_schedstat); orun stays 0. */
static struct sched sched_read(int fd)
{
	struct sched v = { 0, 0, 0 };

	hp_schedstat(fd, &v.run, &v.wait);
	return v;
}

static pid_t canary_tid; /* set by the canary itself */

/* The schedstat files of the process's threads other than the caller
 * and the canary, looked for again at most every 10 ms (the shim starts
 * its reaper when it first needs it). */
#define OTHERS_MAX 8
static struct {
	int fd[OTHERS_MAX];
	pid_t tid[OTHERS_MAX];
	uint64_t wait[OTHERS_MAX], run[OTHERS_MAX]; /* last read: kept once
						     * a thread ends */
	int n;
	uint64_t scanned;
} others;

static void others_rescan(void)
{
	DIR *d = opendir("/proc/self/task");
	pid_t self = (pid_t)syscall(SYS_gettid);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)) && others.n < OTHERS_MAX) {
		pid_t tid = (pid_t)atoi(e->d_name);
		char path[64];
		int known = 0;

		if (tid <= 0 || tid == self ||
		    tid == __atomic_load_n(&canary_tid, __ATOMIC_RELAXED))
			continue;
		for (int i = 0; i < others.n; i++)
			known |= others.tid[i] == tid;
		if (known)
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat",
			 (int)tid);
		others.fd[others.n] = open(path, O_RDONLY | O_CLOEXEC);
		others.wait[others.n] = 0;
		others.run[others.n] = 0;
		if (others.fd[others.n] >= 0)
			others.tid[others.n++] = tid;
	}
	closedir(d);
}

static struct sched sched_now(void)
{
	static int fd = -2;
	struct sched v;
	uint64_t now = hp_now_ns();

	if (fd == -2)
		fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
	v = sched_read(fd);
	if (now - others.scanned > 10000000u) {
		others.scanned = now;
		others_rescan();
	}
	for (int i = 0; i < others.n; i++) {
		struct sched o = sched_read(others.fd[i]);

		if (o.wait > others.wait[i])
			others.wait[i] = o.wait;
		if (o.run > others.run[i])
			others.run[i] = o.run;
		v.wait += others.wait[i];
		v.orun += others.run[i];
	}
	return v;
}

#define CANARY_MAX (1 << 16)

static struct {
	uint64_t due[CANARY_MAX], woke[CANARY_MAX];
	int n; /* published with release */
	int stop;
	int on;
	pthread_t thr;
} cn;

static void *canary_main(void *unused)
{
	(void)unused;
	__atomic_store_n(&canary_tid, (pid_t)syscall(SYS_gettid),
			 __ATOMIC_RELAXED);
	while (!__atomic_load_n(&cn.stop, __ATOMIC_RELAXED) &&
	       cn.n < CANARY_MAX) {
		uint64_t due = hp_now_ns() + 1000000u;
		struct timespec ts = { (time_t)(due / 1000000000u),
				       (long)(due % 1000000000u) };

		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts,
				       NULL) == EINTR)
			;
		cn.due[cn.n] = due;
		cn.woke[cn.n] = hp_now_ns();
		__atomic_store_n(&cn.n, cn.n + 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* Pin this thread to the CPU it is on and start the canary there. */
static void canary_start(void)
{
	cpu_set_t set;
	pthread_attr_t at;
	int cpu = sched_getcpu();

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		return;
	pthread_attr_init(&at);
	pthread_attr_setaffinity_np(&at, sizeof(set), &set);
	cn.on = pthread_create(&cn.thr, &at, canary_main, NULL) == 0;
	pthread_attr_destroy(&at);
	/* Its tid is known before anything looks at the other threads. */
	while (cn.on && !__atomic_load_n(&canary_tid, __ATOMIC_RELAXED))
		sched_yield();
}

static void canary_stop(void)
{
	if (!cn.on)
		return;
	__atomic_store_n(&cn.stop, 1, __ATOMIC_RELAXED);
	pthread_join(cn.thr, NULL);
	cn.on = 0;
}

/* The longest stretch of [a, b] during which the canary was overdue. */
static uint64_t canary_late(uint64_t a, uint64_t b)
{
	int n = __atomic_load_n(&cn.n, __ATOMIC_ACQUIRE), lo = 0, hi = n;
	uint64_t worst = 0;

	/* First sleep that woke at or after a (woke[] is increasing). */
	while (lo < hi) {
		int mid = (lo + hi) / 2;

		if (cn.woke[mid] < a)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (int i = lo; i < n && cn.due[i] <= b; i++) {
		uint64_t from = cn.due[i] > a ? cn.due[i] : a;
		uint64_t to = cn.woke[i] < b ? cn.woke[i] : b;

		if (to > from && to - from > worst)
			worst = to - from;
	}
	return worst;
}

struct excuse {
	uint64_t rq, steal, total;
	uint64_t cpu; /* for the record: CPU time this thread used */
	uint64_t shim_cpu; /* and the shim's reaper: never excused */
};

/* What the machine took from this thread during [a, b]; sa and sb are
 * sched_now() taken at (or just before) a and at b. */
static struct excuse excuse_of(uint64_t a, uint64_t b, struct sched sa,
			       struct sched sb)
{
	struct excuse x;
	uint64_t late = canary_late(a, b), cpu = sb.run - sa.run;

	x.rq = sb.wait - sa.wait;
	x.cpu = cpu;
	x.shim_cpu = sb.orun - sa.orun;
	x.steal = late > cpu ? late - cpu : 0;
	x.total = x.rq > x.steal ? x.rq : x.steal;
	return x;
}

static int tcp_socket(int nonblock)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	hp_loopback(arg.host, arg.port, &ss, &len);
	fd = socket(ss.ss_family,
		    SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0),
		    0);
	if (fd < 0)
		hp_die("socket: %s", strerror(errno));
	return fd;
}

static int tcp_connect_to(int fd, int port)
{
	struct sockaddr_storage ss;
	socklen_t len;

	hp_loopback(arg.host, port, &ss, &len);
	return connect(fd, (struct sockaddr *)&ss, len);
}

/* ================================================================== */
/* quietwait                                                           */
/* ================================================================== */

enum wait_kind { W_POLL, W_PPOLL, W_SELECT, W_EPOLL_WAIT, W_EPOLL_PWAIT };

static const char *const wait_names[] = {
	"poll", "ppoll", "select", "epoll_wait", "epoll_pwait",
};

/* One wait of arg.wait_ms on fds a and b, where nothing happens.  Sets
 * *quiet when the call reported nothing at all, like a plain timeout. */
static int quiet_wait(enum wait_kind k, int a, int b, int *quiet)
{
	int r = -1;

	*quiet = 0;
	switch (k) {
	case W_POLL:
	case W_PPOLL: {
		struct pollfd p[2] = { { a, POLLIN, 0 }, { b, POLLIN, 0 } };
		struct timespec ts = { arg.wait_ms / 1000,
				       (arg.wait_ms % 1000) * 1000000L };

		r = k == W_POLL ? poll(p, 2, (int)arg.wait_ms)
				: ppoll(p, 2, &ts, NULL);
		*quiet = !p[0].revents && !p[1].revents;
		break;
	}
	case W_SELECT: {
		fd_set rs;
		struct timeval tv = { arg.wait_ms / 1000,
				      (arg.wait_ms % 1000) * 1000L };

		FD_ZERO(&rs);
		FD_SET(a, &rs);
		FD_SET(b, &rs);
		r = select((a > b ? a : b) + 1, &rs, NULL, NULL, &tv);
		/* Linux: the sets come back empty, the timeval at zero. */
		*quiet = !FD_ISSET(a, &rs) && !FD_ISSET(b, &rs) &&
			 tv.tv_sec == 0 && tv.tv_usec == 0;
		break;
	}
	case W_EPOLL_WAIT:
	case W_EPOLL_PWAIT: {
		int ep = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN }, got[4];
		int e;

		if (ep < 0)
			hp_die("epoll_create1: %s", strerror(errno));
		ev.data.fd = a;
		epoll_ctl(ep, EPOLL_CTL_ADD, a, &ev);
		ev.data.fd = b;
		epoll_ctl(ep, EPOLL_CTL_ADD, b, &ev);
		r = k == W_EPOLL_WAIT
			    ? epoll_wait(ep, got, 4, (int)arg.wait_ms)
			    : epoll_pwait(ep, got, 4, (int)arg.wait_ms, NULL);
		e = errno;
		*quiet = r == 0;
		close(ep);
		errno = e;
		break;
	}
	}
	return r;
}

static int cmd_quietwait(void)
{
	int pfd[2], udp;
	struct sockaddr_in sin = { .sin_family = AF_INET };

	if (pipe2(pfd, O_CLOEXEC) < 0)
		hp_die("pipe: %s", strerror(errno));
	canary_start();
	udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (udp < 0 || bind(udp, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		hp_die("udp: %s", strerror(errno));

	for (int k = W_POLL; k <= W_EPOLL_PWAIT; k++) {
		for (int it = 0; it < arg.iters; it++) {
			int fds[16], nexp = 0, quiet, r, e;
			struct sched s0, s1;
			struct excuse x;
			uint64_t t0, t1;
			long us;

			for (int j = 0; j < arg.armed; j++) {
				if (j)
					hp_sleep_ms(arg.gap_ms);
				fds[j] = tcp_socket(0);
				if (tcp_connect_to(fds[j], arg.port) < 0)
					hp_die("connect: %s", strerror(errno));
			}
			s0 = sched_now();
			t0 = hp_now_ns();
			r = quiet_wait((enum wait_kind)k, pfd[0], udp, &quiet);
			e = r < 0 ? errno : 0;
			t1 = hp_now_ns();
			s1 = sched_now();
			us = (long)((t1 - t0) / 1000u);
			x = excuse_of(t0 + (uint64_t)arg.wait_ms * 1000000u, t1,
				      s0, s1);
			for (int j = 0; j < arg.armed; j++) {
				char c;

				if (recv(fds[j], &c, 1, MSG_DONTWAIT) < 0 &&
				    errno == ETIMEDOUT)
					nexp++;
				close(fds[j]);
			}
			out("WAIT %s %d r=%d errno=%s us=%ld excuse_us=%llu "
			    "rq_us=%llu steal_us=%llu cpu_us=%llu quiet=%d "
			    "expired=%d/%d\n",
			    wait_names[k], it, r, hp_errname(e), us,
			    (unsigned long long)x.total / 1000,
			    (unsigned long long)x.rq / 1000,
			    (unsigned long long)x.steal / 1000,
			    (unsigned long long)x.cpu / 1000, quiet, nexp,
			    arg.armed);
			fflush(stdout);
		}
	}
	canary_stop();
	return 0;
}

/* ================================================================== */
/* many                                                                */
/* ================================================================== */

/* epoll tags: connection i is tag i; the channels use these. */
#define TAG_UNIX (1u << 30)
#define TAG_UDP (TAG_UNIX + 1)
#define TAG_TCP (TAG_UNIX + 2)

enum { C_NEW, C_CONNECTING, C_ARMED, C_DONE };

struct slot {
	int fd;
	int state;
	uint64_t start; /* when the deadline started (ns, absolute): just
			 * before the call that starts it */
	uint64_t armed; /* just after that call: the shim reads its clock
			 * inside it, so the deadline starts in [start,
			 * armed] (a thread preempted in the call makes that
			 * long; the time is the machine's, 500 ms before
			 * the expiry it moves) */
	uint64_t event;
	struct sched event_s; /* sched_now() when the event was seen */
	uint32_t ev;
	int rd_errno;
};

/* A ping-pong channel: send seq on tx, expect it back on rx.  After a
 * failure it is dead: out of the epoll set, no more pings. */
struct chan {
	const char *name;
	int ep;
	int tx, rx;
	int dead;
	uint64_t seq;
	int waiting; /* a ping is in flight */
	uint64_t next; /* when to send the next one */
	long count;
	long bad;
	uint64_t last_ok;
	unsigned char buf[8];
	size_t have; /* bytes of the reply read so far (tcp) */
};

static void chan_fail(struct chan *ch)
{
	ch->bad++;
	if (!ch->dead)
		epoll_ctl(ch->ep, EPOLL_CTL_DEL, ch->rx, NULL);
	ch->dead = 1;
	ch->waiting = 0;
}

static void chan_send(struct chan *ch)
{
	unsigned char m[8];

	if (ch->dead)
		return;
	for (int i = 0; i < 8; i++)
		m[i] = (unsigned char)(ch->seq >> (i * 8));
	if (send(ch->tx, m, sizeof(m), MSG_NOSIGNAL) != (ssize_t)sizeof(m)) {
		bad("%s send %s\n", ch->name, hp_errname(errno));
		chan_fail(ch);
		return;
	}
	ch->waiting = 1;
	ch->have = 0;
}

static void chan_recv(struct chan *ch, uint64_t now)
{
	for (;;) {
		ssize_t r = recv(ch->rx, ch->buf + ch->have,
				 sizeof(ch->buf) - ch->have, MSG_DONTWAIT);
		uint64_t v = 0;

		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r <= 0) {
			bad("%s recv %s\n", ch->name,
			    r == 0 ? "EOF" : hp_errname(errno));
			chan_fail(ch);
			return;
		}
		ch->have += (size_t)r;
		if (ch->have < sizeof(ch->buf))
			continue;
		for (int i = 0; i < 8; i++)
			v |= (uint64_t)ch->buf[i] << (i * 8);
		if (!ch->waiting || v != ch->seq) {
			bad("%s got %llu want %llu\n", ch->name,
			    (unsigned long long)v,
			    (unsigned long long)ch->seq);
			ch->bad++;
		} else {
			ch->count++;
			ch->last_ok = now;
		}
		ch->seq++;
		ch->waiting = 0;
		ch->have = 0;
		ch->next = now + (uint64_t)arg.ping_ms * 1000000u;
	}
}

static void raise_nofile(rlim_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		hp_die("getrlimit: %s", strerror(errno));
	if (rl.rlim_cur >= want)
		return;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
		hp_die("RLIMIT_NOFILE hard limit %llu < %llu",
		       (unsigned long long)rl.rlim_max,
		       (unsigned long long)want);
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		hp_die("setrlimit: %s", strerror(errno));
}

static void ep_add(int ep, int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ev = { .events = events, .data.u64 = tag };

	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		hp_die("epoll_ctl: %s", strerror(errno));
}

static void open_channels(int ep, struct chan ch[3])
{
	int sv[2], u[2];
	struct sockaddr_in sin[2];
	socklen_t sl = sizeof(sin[0]);
	int tcp;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
		       sv) < 0)
		hp_die("socketpair: %s", strerror(errno));
	ch[0] = (struct chan){ .name = "unix", .tx = sv[0], .rx = sv[1] };
	ep_add(ep, sv[1], EPOLLIN, TAG_UNIX);

	for (int i = 0; i < 2; i++) {
		u[i] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
			      0);
		memset(&sin[i], 0, sizeof(sin[i]));
		sin[i].sin_family = AF_INET;
		sin[i].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (u[i] < 0 ||
		    bind(u[i], (struct sockaddr *)&sin[i], sizeof(sin[i])) < 0 ||
		    getsockname(u[i], (struct sockaddr *)&sin[i], &sl) < 0)
			hp_die("udp: %s", strerror(errno));
	}
	if (connect(u[0], (struct sockaddr *)&sin[1], sizeof(sin[1])) < 0 ||
	    connect(u[1], (struct sockaddr *)&sin[0], sizeof(sin[0])) < 0)
		hp_die("udp connect: %s", strerror(errno));
	ch[1] = (struct chan){ .name = "udp", .tx = u[0], .rx = u[1] };
	ep_add(ep, u[1], EPOLLIN, TAG_UDP);

	/* The echo connection: blocking connect keeps this simple; it is
	 * done before the measured part starts. */
	tcp = tcp_socket(0);
	if (tcp_connect_to(tcp, arg.echo_port) < 0)
		hp_die("connect echo: %s", strerror(errno));
	if (fcntl(tcp, F_SETFL, fcntl(tcp, F_GETFL) | O_NONBLOCK) < 0)
		hp_die("fcntl: %s", strerror(errno));
	ch[2] = (struct chan){ .name = "tcp", .tx = tcp, .rx = tcp };
	ep_add(ep, tcp, EPOLLIN | EPOLLRDHUP, TAG_TCP);
}

/* (time, sched_now()) pairs taken around every epoll_wait of the loop. */
struct samples {
	struct sample {
		uint64_t t;
		struct sched s;
	} *v;
	size_t n, cap;
};

static void sample_add(struct samples *sm, uint64_t t, struct sched sc)
{
	if (sm->n == sm->cap) {
		size_t cap = sm->cap ? sm->cap * 2 : 4096;
		void *p = realloc(sm->v, cap * sizeof(*sm->v));

		if (!p)
			hp_die("out of memory");
		sm->v = p;
		sm->cap = cap;
	}
	sm->v[sm->n].t = t;
	sm->v[sm->n].s = sc;
	sm->n++;
}

/* The last sample taken no later than t (the first one if none). */
static struct sched sample_at(const struct samples *sm, uint64_t t)
{
	size_t lo = 0, hi = sm->n;
	struct sched none = { 0, 0, 0 };

	if (!sm->n)
		return none;
	if (sm->v[0].t > t)
		return sm->v[0].s;
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;

		if (sm->v[mid].t <= t)
			lo = mid;
		else
			hi = mid;
	}
	return sm->v[lo].s;
}

/* A silent connection reported something. */
static void slot_event(int ep, struct slot *s, int i, uint32_t events,
		       uint64_t now, struct sched sc, int *order, int *nrep)
{
	char c;

	if (s->state == C_CONNECTING && arg.arm_eagain &&
	    !(events & (EPOLLERR | EPOLLHUP))) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP,
					  .data.u64 = (uint64_t)i };
		ssize_t r;

		/* Connected: say something, then wait for the answer that
		 * never comes.  The socket is in an epoll set, so it counts
		 * as waited on and idle runs from the last byte moved: the
		 * one sent here, inside send() - stamp the start before it.
		 * The read's EAGAIN, a moment later, changes nothing. */
		epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
		s->start = hp_now_ns();
		if (send(s->fd, "x", 1, MSG_NOSIGNAL) != 1)
			bad("%d send %s\n", i, hp_errname(errno));
		s->armed = hp_now_ns();
		r = read(s->fd, &c, 1);
		if (!(r < 0 && errno == EAGAIN))
			bad("%d first read r=%zd %s\n", i, r,
			    hp_errname(r < 0 ? errno : 0));
		s->state = C_ARMED;
		return;
	}
	if (s->state == C_CONNECTING)
		bad("%d ended before its connect completed (events=%#x): no "
		    "start, no latency\n", i, events);
	if (!(events & (EPOLLERR | EPOLLHUP)))
		bad("%d events=%#x without ERR/HUP\n", i, events);
	s->event = now;
	s->event_s = sc;
	s->ev = events;
	errno = 0;
	s->rd_errno = read(s->fd, &c, 1) < 0 ? errno : 0;
	close(s->fd);
	s->fd = -1;
	s->state = C_DONE;
	order[(*nrep)++] = i;
}

static void chan_event(struct chan *ch, uint32_t events, uint64_t now)
{
	if (ch->dead)
		return;
	if (events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
		bad("%s events=%#x\n", ch->name, events);
		chan_fail(ch);
		return;
	}
	if (events & EPOLLIN)
		chan_recv(ch, now);
}

static int cmd_many(void)
{
	struct slot *s = calloc((size_t)arg.n, sizeof(*s));
	int *order = calloc((size_t)arg.n, sizeof(int));
	struct chan ch[3];
	struct epoll_event evs[256];
	int ep, opened = 0, nrep = 0, inorder = 1, netimedout = 0, nerrhup = 0;
	uint64_t t0, hard_end, every = (uint64_t)arg.every_us * 1000u;
	uint64_t limit = (uint64_t)arg.limit_ms * 1000000u;
	long long min_lat = -1, max_lat = -1, max_excess = -1;
	struct samples smp = { 0 };

	if (!s || !order)
		hp_die("out of memory");
	raise_nofile((rlim_t)arg.n + 64);
	/* Grow the kernel's fd table to its final size now: growing it in a
	 * process with more than one thread (the canary) waits for an RCU
	 * grace period, ~10 ms here, in whatever socket() crosses 512. */
	if (dup2(2, arg.n + 63) < 0)
		hp_die("dup2: %s", strerror(errno));
	close(arg.n + 63);
	canary_start();
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		hp_die("epoll_create1: %s", strerror(errno));
	open_channels(ep, ch);

	t0 = hp_now_ns();
	/* Every deadline has passed well before this. */
	hard_end = t0 + (uint64_t)arg.n * every + 2 * limit + 3000000000ull;
	for (int c = 0; c < 3; c++) {
		ch[c].next = t0;
		ch[c].ep = ep;
	}

	while (nrep < arg.n) {
		uint64_t now = hp_now_ns(), wake;
		struct sched sc;
		int timeout, nev;

		if (now >= hard_end) {
			bad("loop gave up: %d of %d reported\n", nrep,
			    arg.n);
			break;
		}
		while (opened < arg.n && now >= t0 + (uint64_t)opened * every) {
			struct slot *sl = &s[opened];
			int r;

			sl->fd = tcp_socket(1);
			if (!arg.arm_eagain)
				sl->start = hp_now_ns();
			r = tcp_connect_to(sl->fd, arg.port);
			if (!arg.arm_eagain)
				sl->armed = hp_now_ns();
			if (r < 0 && errno != EINPROGRESS)
				hp_die("connect %d: %s", opened,
				       strerror(errno));
			sl->state = arg.arm_eagain ? C_CONNECTING : C_ARMED;
			ep_add(ep, sl->fd,
			       arg.arm_eagain ? EPOLLOUT | EPOLLIN | EPOLLRDHUP
					      : EPOLLIN | EPOLLRDHUP,
			       (uint64_t)opened);
			opened++;
			now = hp_now_ns();
		}
		for (int c = 0; c < 3; c++)
			if (!ch[c].waiting && now >= ch[c].next)
				chan_send(&ch[c]);

		wake = hard_end;
		if (opened < arg.n)
			wake = t0 + (uint64_t)opened * every;
		for (int c = 0; c < 3; c++)
			if (!ch[c].waiting && ch[c].next < wake)
				wake = ch[c].next;
		timeout = wake <= now ? 0
				      : (int)((wake - now + 999999u) / 1000000u);

		sample_add(&smp, now, sched_now());
		nev = epoll_wait(ep, evs, 256, timeout);
		if (nev < 0) {
			if (errno == EINTR)
				continue;
			hp_die("epoll_wait: %s", strerror(errno));
		}
		now = hp_now_ns();
		sc = sched_now();
		sample_add(&smp, now, sc);
		for (int k = 0; k < nev; k++) {
			uint64_t tag = evs[k].data.u64;

			if (tag == TAG_UNIX)
				chan_event(&ch[0], evs[k].events, now);
			else if (tag == TAG_UDP)
				chan_event(&ch[1], evs[k].events, now);
			else if (tag == TAG_TCP)
				chan_event(&ch[2], evs[k].events, now);
			else if (tag < (uint64_t)arg.n &&
				 s[tag].state != C_DONE)
				slot_event(ep, &s[tag], (int)tag, evs[k].events,
					   now, sc, order, &nrep);
		}
	}

	canary_stop();

	/* One last round trip on every channel, after all the expiries. */
	for (int c = 0; c < 3; c++) {
		uint64_t end = hp_now_ns() + 1000000000ull;
		long before;

		if (ch[c].dead)
			continue;
		while (ch[c].waiting && hp_now_ns() < end) {
			struct pollfd p = { ch[c].rx, POLLIN, 0 };

			if (poll(&p, 1, 10) > 0)
				chan_recv(&ch[c], hp_now_ns());
		}
		before = ch[c].count;
		chan_send(&ch[c]);
		while (ch[c].waiting && hp_now_ns() < end) {
			struct pollfd p = { ch[c].rx, POLLIN, 0 };

			if (poll(&p, 1, 10) > 0)
				chan_recv(&ch[c], hp_now_ns());
		}
		if (ch[c].count != before + 1) {
			bad("%s final exchange failed\n", ch[c].name);
			ch[c].bad++;
		}
	}

	for (int k = 0; k < nrep; k++) {
		struct slot *sl = &s[order[k]];
		long long lat = (long long)(sl->event - sl->start) / 1000;
		/* The latest the deadline can be: from the end of the call
		 * that started it. */
		uint64_t due = sl->armed + limit;
		struct excuse x = excuse_of(due, sl->event, sample_at(&smp, due),
					    sl->event_s);
		long long late = ((long long)sl->event - (long long)due) / 1000;
		long long excess = late - (long long)x.total / 1000;

		out("EXP %d start_us=%lld event_us=%lld lat_us=%lld "
		    "arm_us=%lld late_us=%lld "
		    "excuse_us=%llu rq_us=%llu steal_us=%llu cpu_us=%llu "
		    "reaper_cpu_us=%llu ev=%#x read=%s\n",
		    order[k], (long long)(sl->start - t0) / 1000,
		    (long long)(sl->event - t0) / 1000, lat,
		    (long long)(sl->armed - sl->start) / 1000, late,
		    (unsigned long long)x.total / 1000,
		    (unsigned long long)x.rq / 1000,
		    (unsigned long long)x.steal / 1000,
		    (unsigned long long)x.cpu / 1000,
		    (unsigned long long)x.shim_cpu / 1000, sl->ev,
		    hp_errname(sl->rd_errno));
		if (excess > max_excess)
			max_excess = excess;
		if (sl->rd_errno == ETIMEDOUT)
			netimedout++;
		if ((sl->ev & (EPOLLERR | EPOLLHUP)) == (EPOLLERR | EPOLLHUP))
			nerrhup++;
		if (k && sl->start < s[order[k - 1]].start)
			inorder = 0;
		if (min_lat < 0 || lat < min_lat)
			min_lat = lat;
		if (lat > max_lat)
			max_lat = lat;
	}
	out("ALIVE unix=%ld udp=%ld tcp=%ld bad=%ld last_tcp_us=%lld\n",
	    ch[0].count, ch[1].count, ch[2].count,
	    ch[0].bad + ch[1].bad + ch[2].bad,
	    ch[2].last_ok ? (long long)(ch[2].last_ok - t0) / 1000 : -1);
	out("SUMMARY n=%d reported=%d etimedout=%d errhup=%d inorder=%d "
	    "min_lat_us=%lld max_lat_us=%lld max_excess_us=%lld "
	    "span_us=%lld\n",
	    arg.n, nrep, netimedout, nerrhup, inorder, min_lat, max_lat,
	    max_excess,
	    opened ? (long long)(s[opened - 1].start - s[0].start) / 1000
		   : 0);
	fflush(stdout);
	return 0;
}

/* ================================================================== */
/* main                                                                */
/* ================================================================== */

static void usage(void)
{
	fprintf(stderr,
		"usage: evclient quietwait HOST PORT [--iters N] [--armed K] "
		"[--gap MS] [--wait MS]\n"
		"       evclient many HOST PORT --echo PORT [--n N] "
		"[--every-us US]\n"
		"                [--arm connect|eagain] [--ping-ms MS] "
		"[--limit MS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 4)
		usage();
	arg.host = argv[2];
	arg.port = (int)hp_num(argv[3], 1, 65535, "port");
	for (int i = 4; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--iters"))
			arg.iters = (int)hp_num(v, 1, 100, a);
		else if (!strcmp(a, "--armed"))
			arg.armed = (int)hp_num(v, 0, 16, a);
		else if (!strcmp(a, "--gap"))
			arg.gap_ms = (long)hp_num(v, 0, 10000, a);
		else if (!strcmp(a, "--wait"))
			arg.wait_ms = (long)hp_num(v, 0, 100000, a);
		else if (!strcmp(a, "--echo"))
			arg.echo_port = (int)hp_num(v, 1, 65535, a);
		else if (!strcmp(a, "--n"))
			arg.n = (int)hp_num(v, 1, 100000, a);
		else if (!strcmp(a, "--every-us"))
			arg.every_us = (long)hp_num(v, 0, 10000000, a);
		else if (!strcmp(a, "--limit"))
			arg.limit_ms = (long)hp_num(v, 0, 1000000, a);
		else if (!strcmp(a, "--ping-ms"))
			arg.ping_ms = (long)hp_num(v, 1, 10000, a);
		else if (!strcmp(a, "--arm") && !strcmp(v, "connect"))
			arg.arm_eagain = 0;
		else if (!strcmp(a, "--arm") && !strcmp(v, "eagain"))
			arg.arm_eagain = 1;
		else
			usage();
	}
	/* Validate the address now: loopback only. */
	{
		struct sockaddr_storage ss;
		socklen_t len;

		hp_loopback(arg.host, arg.port, &ss, &len);
	}
	if (!strcmp(argv[1], "quietwait"))
		return cmd_quietwait();
	if (!strcmp(argv[1], "many")) {
		if (!arg.echo_port)
			usage();
		return cmd_many();
	}
	usage();
}
