/* harm_io - "do no harm" probes for the I/O flags, errno parity and host
 * name learning (tests/integration/test_harm_io.c).
 *
 *   harm_io serve [--addr A] [--lifetime SEC]
 *       Scripted servers, one listener per scenario, all on A (default
 *       127.0.0.1; loopback only), on ports the kernel picks.  Prints
 *       "PORT <ready port>", then one line
 *       "PORTS ready=<p> late=<p> split=<p> eof=<p> reset=<p> urgent=<p>
 *        sink=<p> slowsink=<p> silent=<p>".  One thread per connection:
 *         ready     sends "ABCDEFGHIJKLMNOPQRST" at once
 *         late      waits 500 ms, "ABCDEFGHIJ", 250 ms, "KLMNOPQRST"
 *         split     "ABCDEFGHIJ" at once, 300 ms, "KLMNOPQRST"
 *         urgent    "ABCDEFGHIJ", then "!" with MSG_OOB, then
 *                   "KLMNOPQRSTUVWXYZ0123"
 *         eof       "ABCDEFGHIJ", then close (FIN)
 *         reset     "ABCDEFGHIJ", 300 ms, then close with SO_LINGER 0
 *                   (RST; the pause lets the client's connect() finish
 *                   first, with or without the shim)
 *         sink      reads everything; at the peer's FIN answers "GOT <n>\n"
 *         slowsink  the same, but reads nothing for the first 500 ms
 *                   (SO_RCVBUF 64 KiB)
 *         silent    reads and discards, never answers
 *       ready/late/split/urgent then read and discard until the peer's FIN
 *       and close.  The pauses are long enough that a client's first call
 *       comes before them even on a loaded machine.
 *
 *   harm_io flags read|write SCENARIO block|nonblock PORT [--only N]
 *       The table of flag combinations on one side (read: read, readv,
 *       recv, recvfrom, recvmsg x 0, PEEK, WAITALL, PEEK|WAITALL, DONTWAIT,
 *       DONTWAIT|PEEK, TRUNC, OOB, ERRQUEUE, and recvmsg CMSG_CLOEXEC;
 *       write: write, writev, send, sendto, sendmsg x 0, DONTWAIT,
 *       NOSIGNAL, MORE, OOB) against one scenario (read: ready, late, eof,
 *       reset, urgent; write: sink, slowsink, eof, reset), on a blocking or
 *       an O_NONBLOCK socket.  Each case runs in its own process with its
 *       own connection (all at once, 3 s watchdog each) and prints
 *       "RESULT <case> c1=<r>/<errno>/<data> [c2=... c3=...] rest=<data>/<end>
 *        sigpipe=<n>" - nothing timing-dependent, so a native run and a run
 *       under the shim can be compared literally.  A case still running at
 *       the watchdog prints "RESULT <case> HUNG after: <what it printed>",
 *       one killed by a signal "RESULT <case> SIGNAL <name> after: ...",
 *       one that failed to set up "RESULT <case> EXIT <n> after: ...".
 *
 *   harm_io peekwaitall PORT                                  (split port)
 *       recv(20, MSG_PEEK|MSG_WAITALL) while the second half is 300 ms
 *       away, then recv(20, 0): "RESULT peekwaitall peek=<r>/<errno>/<data>
 *       next=<r>/<errno>/<data>".
 *
 *   harm_io errno GROUP READY_PORT SILENT_PORT
 *       Invalid-argument and edge-case calls, each in its own process with a
 *       tracked connection open (to READY_PORT, so data is there to read):
 *       "RESULT <case> <outcome>".  GROUP is one of: close_range, iovcnt,
 *       readzero (read/readv of 0 bytes right after a write, to SILENT_PORT;
 *       with the elapsed bucket <500ms/>=500ms), badfd, nullbuf, connect,
 *       accept, getsockopt, waits, dup, getfl, shutdown, seccomp (epoll
 *       waits on a tracked socket after a seccomp filter made
 *       epoll_pwait2 fail with EPERM, or with ENOSYS, as container
 *       runtimes that do not know the call do).
 *
 *   harm_io sotimeo rcv|snd [--ms N]
 *       Listening socket with SO_RCVTIMEO / SO_SNDTIMEO = N ms (default
 *       300); a child process connects and never sends nor reads; on the
 *       accepted socket one read() (rcv) or one 32 MiB write() (snd):
 *       "RESULT sotimeo-<rcv|snd> opt=<inherited ms>
 *        r=<-1|partial|other>/<errno> <2000ms|>=2000ms" and
 *       "TIME ms=<elapsed>".
 *
 *   harm_io names VIA NAME PORT [--numeric ADDR] [--flood N]
 *       Resolve NAME with VIA (gethostbyname, gethostbyname_r, getaddrinfo),
 *       then, with --numeric, getaddrinfo(ADDR, AI_NUMERICHOST) and connect
 *       to that address; with --flood, resolve h0.test .. h<N-1>.test with
 *       getaddrinfo first.  Connects to the address on PORT (a silent
 *       server), writes "hi" and reads: "RESULT names r=<r>/<errno>" and
 *       "TIME ms=<ms>"; after 3 s without an answer "RESULT names HUNG"
 *       (exit 3).  Prints "RESOLVED <name> <addr> canon=<h_name>" first.
 *
 * Exit status: 0 when the probes ran (what they found is for the test to
 * judge), 2 on a usage or setup error.
 */
#include "helpers.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>

#define LO "127.0.0.1"

/* ------------------------------------------------------------------ */
/* Output of one case                                                  */
/* ------------------------------------------------------------------ */

struct ob {
	char s[8192];
	size_t n;
	size_t flushed;	/* written to fd so far */
	int fd;		/* the case's pipe to the parent, -1: none */
};

/* Hand what the case printed so far to the parent, so that a case that
 * then hangs or dies still shows how far it got. */
static void ob_flush(struct ob *o)
{
	while (o->fd >= 0 && o->flushed < o->n) {
		ssize_t w = write(o->fd, o->s + o->flushed, o->n - o->flushed);

		if (w <= 0)
			_exit(4);
		o->flushed += (size_t)w;
	}
}

__attribute__((format(printf, 2, 3)))
static void ob_add(struct ob *o, const char *fmt, ...)
{
	va_list ap;
	int k;

	if (o->n >= sizeof(o->s) - 1)
		return;
	va_start(ap, fmt);
	k = vsnprintf(o->s + o->n, sizeof(o->s) - o->n, fmt, ap);
	va_end(ap);
	if (k > 0)
		o->n += (size_t)k < sizeof(o->s) - o->n ? (size_t)k
							: sizeof(o->s) - 1 - o->n;
}

/* Bytes as text: printable ASCII as is, the rest as \xHH; at most 48
 * bytes, then "+<more>". */
static void ob_bytes(struct ob *o, const void *buf, size_t n)
{
	const unsigned char *p = buf;
	size_t show = n < 48 ? n : 48;

	if (!n) {
		ob_add(o, "''");
		return;
	}
	for (size_t i = 0; i < show; i++) {
		if (p[i] > ' ' && p[i] < 127 && p[i] != '\\' && p[i] != '/')
			ob_add(o, "%c", p[i]);
		else
			ob_add(o, "\\x%02x", p[i]);
	}
	if (n > show)
		ob_add(o, "+%zu", n - show);
}

static const char *ename(int e)
{
	return hp_errname(e);
}

/* ------------------------------------------------------------------ */
/* Running cases in child processes                                    */
/* ------------------------------------------------------------------ */

typedef void (*case_fn)(int idx, struct ob *o);

struct running {
	pid_t pid;
	int fd;
	uint64_t t0;
	int done, hung, status;
	struct ob out;
};

/* Run cases 0..n-1 of fn, at most par at a time, each in a child process
 * killed after timeout_ms; print "RESULT <name> <what the child said>" in
 * case order. */
static void run_cases(int n, const char *(*name)(int), case_fn fn, int par,
		      long timeout_ms)
{
	struct running *rs = calloc((size_t)n, sizeof(*rs));
	int next = 0, live = 0, finished = 0;

	if (!rs)
		hp_die("out of memory");
	fflush(stdout);
	while (finished < n) {
		struct pollfd pf[64];
		int map[64], np = 0;

		while (next < n && live < par) {
			struct running *r = &rs[next];
			int p[2];

			if (pipe2(p, O_CLOEXEC) < 0)
				hp_die("pipe: %s", strerror(errno));
			r->t0 = hp_now_ns();
			r->pid = fork();
			if (r->pid < 0)
				hp_die("fork: %s", strerror(errno));
			if (r->pid == 0) {
				struct ob o = { .n = 0, .fd = p[1] };

				close(p[0]);
				fn(next, &o);
				ob_flush(&o);
				_exit(0);
			}
			close(p[1]);
			r->fd = p[0];
			next++;
			live++;
		}
		for (int i = 0; i < next && np < 64; i++)
			if (!rs[i].done) {
				pf[np] = (struct pollfd){ .fd = rs[i].fd,
							  .events = POLLIN };
				map[np++] = i;
			}
		poll(pf, (nfds_t)np, 20);
		for (int k = 0; k < np; k++) {
			struct running *r = &rs[map[k]];
			int eof = 0;

			if (pf[k].revents) {
				ssize_t got = read(r->fd, r->out.s + r->out.n,
						   sizeof(r->out.s) - 1 - r->out.n);
				if (got > 0)
					r->out.n += (size_t)got;
				else
					eof = 1;
			}
			if (!eof && (hp_now_ns() - r->t0) / 1000000u >
					    (uint64_t)timeout_ms) {
				kill(r->pid, SIGKILL);
				r->hung = 1;
				eof = 1;
			}
			if (eof) {
				ssize_t got;

				waitpid(r->pid, &r->status, 0);
				/* What a killed case had written is still in
				 * the pipe. */
				while (r->out.n < sizeof(r->out.s) - 1 &&
				       (got = read(r->fd, r->out.s + r->out.n,
						   sizeof(r->out.s) - 1 -
							   r->out.n)) > 0)
					r->out.n += (size_t)got;
				close(r->fd);
				r->done = 1;
				live--;
				finished++;
			}
		}
	}
	for (int i = 0; i < n; i++) {
		struct running *r = &rs[i];
		const char *out;

		r->out.s[r->out.n] = '\0';
		out = r->out.s + strspn(r->out.s, " ");
		if (r->hung)
			printf("RESULT %s HUNG after: %s\n", name(i), out);
		else if (WIFSIGNALED(r->status))
			printf("RESULT %s SIGNAL %s after: %s\n", name(i),
			       sigabbrev_np(WTERMSIG(r->status))
				       ? sigabbrev_np(WTERMSIG(r->status))
				       : "?", out);
		else if (!WIFEXITED(r->status) || WEXITSTATUS(r->status))
			printf("RESULT %s EXIT %d after: %s\n", name(i),
			       WEXITSTATUS(r->status), out);
		else
			printf("RESULT %s %s\n", name(i), out);
	}
	fflush(stdout);
	free(rs);
}

/* ------------------------------------------------------------------ */
/* Client plumbing                                                     */
/* ------------------------------------------------------------------ */

static int connect_to(const char *host, int port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	hp_loopback(host, port, &ss, &len);
	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (fd < 0)
		hp_die("socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&ss, len) < 0)
		hp_die("connect %s:%d: %s", host, port, strerror(errno));
	return fd;
}

/* Poll fd until one of the bits in want shows up (3 s at most). */
static void wait_for(int fd, short events, short want)
{
	uint64_t t0 = hp_now_ns();

	while (hp_ms_since(t0) < 3000) {
		struct pollfd p = { .fd = fd, .events = events };

		if (poll(&p, 1, 100) > 0 && (p.revents & want))
			return;
	}
	hp_die("fd %d: the scenario's state never showed (events %#x)", fd,
	       (unsigned)want);
}

/* Wait until at least n bytes are queued for reading. */
static void wait_inq(int fd, int n)
{
	uint64_t t0 = hp_now_ns();
	int q = 0;

	while (hp_ms_since(t0) < 3000) {
		if (ioctl(fd, FIONREAD, &q) == 0 && q >= n)
			return;
		hp_sleep_ms(5);
	}
	hp_die("only %d of %d bytes arrived", q, n);
}

static void set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK
					   : fl & ~O_NONBLOCK) < 0)
		hp_die("fcntl: %s", strerror(errno));
}

static volatile sig_atomic_t n_sigpipe;

static void on_sigpipe(int sig)
{
	(void)sig;
	n_sigpipe++;
}

static void count_sigpipe(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigpipe;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);
}

/* Read to EOF or error (blocking), appending "rest=<bytes>/<EOF|ENAME>". */
static size_t drain(int fd, struct ob *o, char *keep, size_t cap)
{
	char buf[4096];
	size_t got = 0;
	ssize_t r;

	set_nonblock(fd, 0);
	for (;;) {
		r = read(fd, buf, sizeof(buf));
		if (r <= 0)
			break;
		if (keep && got < cap)
			memcpy(keep + got, buf,
			       (size_t)r < cap - got ? (size_t)r : cap - got);
		got += (size_t)r;
	}
	if (o) {
		ob_add(o, " rest=");
		ob_bytes(o, keep, got < cap ? got : cap);
		if (got > cap)
			ob_add(o, "+%zu", got - cap);
		ob_add(o, "/%s", r == 0 ? "EOF" : ename(errno));
	}
	return got;
}

/* ------------------------------------------------------------------ */
/* serve                                                               */
/* ------------------------------------------------------------------ */

enum scen { S_READY, S_LATE, S_SPLIT, S_EOF, S_RESET, S_URGENT, S_SINK,
	    S_SLOWSINK, S_SILENT, S_COUNT };

static const char *const scen_names[S_COUNT] = {
	"ready", "late", "split", "eof", "reset", "urgent", "sink", "slowsink",
	"silent",
};

static int scen_of(const char *s)
{
	for (int i = 0; i < S_COUNT; i++)
		if (!strcmp(s, scen_names[i]))
			return i;
	hp_die("unknown scenario '%s'", s);
}

struct sconn {
	int fd;
	enum scen scen;
};

static void srv_send(int fd, const char *s, int flags)
{
	if (send(fd, s, strlen(s), flags | MSG_NOSIGNAL) < 0)
		return;
}

/* Read and discard until the peer's FIN (or an error); returns the count. */
static long long srv_discard(int fd)
{
	char buf[65536];
	long long n = 0;
	ssize_t r;

	while ((r = read(fd, buf, sizeof(buf))) > 0 ||
	       (r < 0 && errno == EINTR))
		if (r > 0)
			n += r;
	return n;
}

static void *srv_conn(void *p)
{
	struct sconn *c = p;
	int fd = c->fd, one = 1;
	struct linger lg = { 1, 0 };
	char line[64];

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	switch (c->scen) {
	case S_READY:
		srv_send(fd, "ABCDEFGHIJKLMNOPQRST", 0);
		break;
	case S_LATE:
		hp_sleep_ms(500);
		srv_send(fd, "ABCDEFGHIJ", 0);
		hp_sleep_ms(250);
		srv_send(fd, "KLMNOPQRST", 0);
		break;
	case S_SPLIT:
		srv_send(fd, "ABCDEFGHIJ", 0);
		hp_sleep_ms(300);
		srv_send(fd, "KLMNOPQRST", 0);
		break;
	case S_URGENT:
		srv_send(fd, "ABCDEFGHIJ", 0);
		srv_send(fd, "!", MSG_OOB);
		srv_send(fd, "KLMNOPQRSTUVWXYZ0123", 0);
		break;
	case S_EOF:
		srv_send(fd, "ABCDEFGHIJ", 0);
		close(fd);
		free(c);
		return NULL;
	case S_RESET:
		srv_send(fd, "ABCDEFGHIJ", 0);
		hp_sleep_ms(300);
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(fd);
		free(c);
		return NULL;
	case S_SLOWSINK:
		hp_sleep_ms(500);
		/* fall through */
	case S_SINK:
		snprintf(line, sizeof(line), "GOT %lld\n", srv_discard(fd));
		srv_send(fd, line, 0);
		close(fd);
		free(c);
		return NULL;
	case S_SILENT:
	case S_COUNT:
		break;
	}
	srv_discard(fd);
	close(fd);
	free(c);
	return NULL;
}

static int cmd_serve(int argc, char **argv)
{
	const char *addr = LO;
	long lifetime = 60;
	int lfd[S_COUNT], port[S_COUNT];
	struct pollfd pf[S_COUNT];

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--addr") && i + 1 < argc)
			addr = argv[++i];
		else if (!strcmp(argv[i], "--lifetime") && i + 1 < argc)
			lifetime = (long)hp_num(argv[++i], 1, 3600, "--lifetime");
		else
			hp_die("serve: unknown argument '%s'", argv[i]);
	}
	signal(SIGPIPE, SIG_IGN);
	alarm((unsigned)lifetime); /* default action: exit */
	for (int i = 0; i < S_COUNT; i++) {
		struct sockaddr_storage ss;
		socklen_t len;
		int one = 1;

		hp_loopback(addr, 0, &ss, &len);
		lfd[i] = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (lfd[i] < 0)
			hp_die("socket: %s", strerror(errno));
		setsockopt(lfd[i], SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (i == S_SLOWSINK) {
			/* A small, fixed receive window (inherited by the
			 * accepted sockets): what the client can queue is
			 * bounded by its send buffer (tcp_wmem max, 4 MiB by
			 * default), so 8 MiB never fit in one non-blocking
			 * write. */
			int rcv = 65536;

			setsockopt(lfd[i], SOL_SOCKET, SO_RCVBUF, &rcv,
				   sizeof(rcv));
		}
		if (bind(lfd[i], (struct sockaddr *)&ss, len) < 0 ||
		    listen(lfd[i], 128) < 0)
			hp_die("bind/listen %s: %s", addr, strerror(errno));
		port[i] = hp_bound_port(lfd[i]);
		pf[i] = (struct pollfd){ .fd = lfd[i], .events = POLLIN };
	}
	printf("PORT %d\nPORTS", port[S_READY]);
	for (int i = 0; i < S_COUNT; i++)
		printf(" %s=%d", scen_names[i], port[i]);
	printf("\n");
	fflush(stdout);
	for (;;) {
		if (poll(pf, S_COUNT, -1) < 0)
			continue;
		for (int i = 0; i < S_COUNT; i++) {
			struct sconn *c;
			pthread_t t;
			int fd;

			if (!(pf[i].revents & POLLIN))
				continue;
			fd = accept4(lfd[i], NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0)
				continue;
			c = malloc(sizeof(*c));
			if (!c)
				hp_die("out of memory");
			c->fd = fd;
			c->scen = (enum scen)i;
			if (pthread_create(&t, NULL, srv_conn, c) != 0)
				hp_die("pthread_create failed");
			pthread_detach(t);
		}
	}
}

/* ------------------------------------------------------------------ */
/* flags                                                               */
/* ------------------------------------------------------------------ */

enum op { OP_READ, OP_READV, OP_RECV, OP_RECVFROM, OP_RECVMSG, OP_WRITE,
	  OP_WRITEV, OP_SEND, OP_SENDTO, OP_SENDMSG };

static const char *const op_names[] = {
	"read", "readv", "recv", "recvfrom", "recvmsg",
	"write", "writev", "send", "sendto", "sendmsg",
};

struct fcase {
	enum op op;
	int flags;
};

static struct fcase fcases[64];
static int nfcases;
static char fnames[64][96];

static struct {
	int write_side;
	enum scen scen;
	int nonblock;
	int port;
} F;

static const char *flag_name(int f, char *buf, size_t cap)
{
	static const struct {
		int bit;
		const char *name;
	} bits[] = {
		{ MSG_PEEK, "PEEK" },	      { MSG_WAITALL, "WAITALL" },
		{ MSG_DONTWAIT, "DONTWAIT" }, { MSG_TRUNC, "TRUNC" },
		{ MSG_OOB, "OOB" },	      { MSG_ERRQUEUE, "ERRQUEUE" },
		{ MSG_CMSG_CLOEXEC, "CMSG_CLOEXEC" },
		{ MSG_NOSIGNAL, "NOSIGNAL" }, { MSG_MORE, "MORE" },
	};
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
		if (f & bits[i].bit)
			n += (size_t)snprintf(buf + n, cap - n, "%s%s",
					      n ? "|" : "", bits[i].name);
	if (!n)
		snprintf(buf, cap, "0");
	return buf;
}

static void build_table(int write_side)
{
	static const int rflags[] = {
		0, MSG_PEEK, MSG_WAITALL, MSG_PEEK | MSG_WAITALL, MSG_DONTWAIT,
		MSG_DONTWAIT | MSG_PEEK, MSG_TRUNC, MSG_OOB, MSG_ERRQUEUE,
	};
	static const int wflags[] = {
		0, MSG_DONTWAIT, MSG_NOSIGNAL, MSG_MORE, MSG_OOB,
	};
	const int *fl = write_side ? wflags : rflags;
	int nfl = write_side ? 5 : 9;
	enum op base = write_side ? OP_WRITE : OP_READ;

	nfcases = 0;
	fcases[nfcases++] = (struct fcase){ base, 0 };
	fcases[nfcases++] = (struct fcase){ base + 1, 0 };
	for (int o = 2; o <= 4; o++)
		for (int i = 0; i < nfl; i++)
			fcases[nfcases++] = (struct fcase){ base + o, fl[i] };
	if (!write_side)
		fcases[nfcases++] = (struct fcase){ OP_RECVMSG,
						    MSG_CMSG_CLOEXEC };
	for (int i = 0; i < nfcases; i++) {
		char f[64];

		snprintf(fnames[i], sizeof(fnames[i]), "%s:%s:%s:%s",
			 op_names[fcases[i].op],
			 flag_name(fcases[i].flags, f, sizeof(f)),
			 F.nonblock ? "nonblock" : "block",
			 scen_names[F.scen]);
	}
}

static const char *fcase_name(int i)
{
	return fnames[i];
}

/* One read-side call; appends "c<k>=<r>/<errno>/<bytes>[ extra]". */
static void read_call(int fd, const struct fcase *fc, size_t len, int k,
		      struct ob *o)
{
	char buf[64];
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct iovec iov[2] = { { buf, 7 }, { buf + 7, len - 7 } };
	char cbuf[128];
	struct msghdr m;
	ssize_t r;
	int e;

	memset(buf, '.', sizeof(buf));
	memset(&m, 0, sizeof(m));
	errno = 0;
	switch (fc->op) {
	case OP_READ:
		r = read(fd, buf, len);
		break;
	case OP_READV:
		r = readv(fd, iov, 2);
		break;
	case OP_RECV:
		r = recv(fd, buf, len, fc->flags);
		break;
	case OP_RECVFROM:
		r = recvfrom(fd, buf, len, fc->flags, (struct sockaddr *)&ss,
			     &sl);
		break;
	case OP_RECVMSG:
		m.msg_name = &ss;
		m.msg_namelen = sizeof(ss);
		m.msg_iov = iov;
		m.msg_iovlen = 2;
		m.msg_control = cbuf;
		m.msg_controllen = sizeof(cbuf);
		m.msg_flags = 0x7fff0000; /* must be overwritten */
		r = recvmsg(fd, &m, fc->flags);
		break;
	default:
		hp_die("not a read op");
	}
	e = errno;
	ob_add(o, " c%d=%zd/%s/", k, r, ename(e));
	ob_bytes(o, buf, r > 0 ? ((size_t)r < len ? (size_t)r : len) : 0);
	if (fc->op == OP_RECVFROM)
		ob_add(o, "/fromlen=%u", (unsigned)sl);
	if (fc->op == OP_RECVMSG)
		ob_add(o, "/msg_flags=%#x,namelen=%u,controllen=%zu",
		       (unsigned)m.msg_flags, (unsigned)m.msg_namelen,
		       (size_t)m.msg_controllen);
	ob_flush(o);
}

/* One write-side call of len bytes; returns what it wrote (0 on error). */
static size_t write_call(int fd, const struct fcase *fc, const char *buf,
			 size_t len, int k, struct ob *o)
{
	struct iovec iov[2] = { { (void *)buf, 7 },
				{ (void *)(buf + 7), len - 7 } };
	struct msghdr m;
	ssize_t r;
	int e;

	memset(&m, 0, sizeof(m));
	errno = 0;
	switch (fc->op) {
	case OP_WRITE:
		r = write(fd, buf, len);
		break;
	case OP_WRITEV:
		r = writev(fd, iov, 2);
		break;
	case OP_SEND:
		r = send(fd, buf, len, fc->flags);
		break;
	case OP_SENDTO:
		r = sendto(fd, buf, len, fc->flags, NULL, 0);
		break;
	case OP_SENDMSG:
		m.msg_iov = iov;
		m.msg_iovlen = 2;
		r = sendmsg(fd, &m, fc->flags);
		break;
	default:
		hp_die("not a write op");
	}
	e = errno;
	if (r > 0 && (size_t)r < len)
		ob_add(o, " c%d=partial/%s", k, ename(e));
	else
		ob_add(o, " c%d=%zd/%s", k, r, ename(e));
	ob_add(o, "/sigpipe=%d", (int)n_sigpipe);
	ob_flush(o);
	return r > 0 ? (size_t)r : 0;
}

static void flags_case(int idx, struct ob *o)
{
	const struct fcase *fc = &fcases[idx];
	int fd, calls = 1;
	size_t len = F.scen == S_SLOWSINK ? 8u << 20 : 20;
	char *buf = NULL;

	count_sigpipe();
	/* The bytes to write are ready before the connection is made: the
	 * slow sink's 500 ms start at accept, and filling 8 MiB in each of
	 * the cases at once (page faults, a sanitizer, a busy machine) took
	 * longer than that, so the sink was reading by the time of the first
	 * write, and a non-blocking write natively moved all of it. */
	if (F.write_side) {
		buf = malloc(len);
		if (!buf)
			hp_die("out of memory");
		for (size_t i = 0; i < len; i++)
			buf[i] = (char)('a' + i % 26);
	}
	fd = connect_to(LO, F.port);
	if (F.nonblock)
		set_nonblock(fd, 1);
	/* Bring the connection into the scenario's state first. */
	switch (F.scen) {
	case S_READY:
		wait_inq(fd, 20);
		break;
	case S_URGENT:
		wait_for(fd, POLLPRI, POLLPRI);
		/* The part after the mark, sent right after it (its size
		 * cannot be seen: FIONREAD stops at the mark). */
		hp_sleep_ms(200);
		calls = 2;
		break;
	case S_EOF:
		wait_for(fd, POLLRDHUP, POLLRDHUP);
		calls = F.write_side ? 3 : 2;
		/* MSG_MORE corks the bytes; the zero-window probe timer sends
		 * them ~200 ms later and the peer's RST follows: later calls
		 * would race that timer. */
		if (F.write_side && (fc->flags & MSG_MORE))
			calls = 1;
		break;
	case S_RESET:
		wait_for(fd, POLLIN, POLLERR | POLLHUP);
		calls = F.write_side ? 3 : 2;
		break;
	default:
		break;
	}
	if (!F.write_side) {
		char keep[64];

		for (int k = 1; k <= calls; k++)
			read_call(fd, fc, 20, k, o);
		/* A live server ends the stream at our FIN: see the rest. */
		if (F.scen != S_EOF && F.scen != S_RESET)
			shutdown(fd, SHUT_WR);
		drain(fd, o, keep, sizeof(keep));
	} else {
		size_t sent = 0;
		char keep[64];

		for (int k = 1; k <= calls; k++) {
			if (k > 1)
				hp_sleep_ms(100); /* let the peer's RST come */
			sent += write_call(fd, fc, buf, len, k, o);
		}
		if (F.scen == S_SINK || F.scen == S_SLOWSINK) {
			size_t got;

			shutdown(fd, SHUT_WR);
			got = drain(fd, NULL, keep, sizeof(keep) - 1);
			keep[got < sizeof(keep) - 1 ? got : sizeof(keep) - 1] = 0;
			if (!strncmp(keep, "GOT ", 4)) {
				long long srv = atoll(keep + 4);

				/* An urgent byte is not inline: the server
				 * misses it (one or two for a long blocking
				 * send, which marks each chunk it pushes). */
				if (srv == (long long)sent)
					ob_add(o, " srv=same");
				else if (fc->flags & MSG_OOB)
					ob_add(o, " srv=short(oob)");
				else
					ob_add(o, " srv=short%lld",
					       (long long)sent - srv);
			} else {
				ob_add(o, " srv=");
				ob_bytes(o, keep, got);
			}
		}
		free(buf);
	}
	ob_add(o, " sigpipe=%d", (int)n_sigpipe);
	close(fd);
}

static int cmd_flags(int argc, char **argv)
{
	int only = -1;

	if (argc < 4)
		hp_die("usage: flags read|write SCENARIO block|nonblock PORT "
		       "[--only N]");
	F.write_side = !strcmp(argv[0], "write");
	if (!F.write_side && strcmp(argv[0], "read"))
		hp_die("flags: side must be read or write");
	F.scen = (enum scen)scen_of(argv[1]);
	F.nonblock = !strcmp(argv[2], "nonblock");
	if (!F.nonblock && strcmp(argv[2], "block"))
		hp_die("flags: mode must be block or nonblock");
	F.port = (int)hp_num(argv[3], 1, 65535, "port");
	if (argc >= 6 && !strcmp(argv[4], "--only"))
		only = (int)hp_num(argv[5], 0, 63, "--only");
	build_table(F.write_side);
	if (only >= 0) {
		if (only >= nfcases)
			hp_die("--only %d: there are %d cases", only, nfcases);
		fcases[0] = fcases[only];
		memcpy(fnames[0], fnames[only], sizeof(fnames[0]));
		nfcases = 1;
	}
	run_cases(nfcases, fcase_name, flags_case, 64, 3000);
	return 0;
}

/* ------------------------------------------------------------------ */
/* peekwaitall                                                         */
/* ------------------------------------------------------------------ */

static int pw_port;

static const char *pw_name(int i)
{
	(void)i;
	return "peekwaitall";
}

static void pw_case(int idx, struct ob *o)
{
	char buf[32];
	ssize_t r;
	int fd = connect_to(LO, pw_port), e;

	(void)idx;
	memset(buf, '.', sizeof(buf));
	errno = 0;
	r = recv(fd, buf, 20, MSG_PEEK | MSG_WAITALL);
	e = errno;
	ob_add(o, "peek=%zd/%s/", r, ename(e));
	ob_bytes(o, buf, r > 0 ? (size_t)r : 0);
	memset(buf, '.', sizeof(buf));
	errno = 0;
	r = recv(fd, buf, 20, 0);
	e = errno;
	ob_add(o, " next=%zd/%s/", r, ename(e));
	ob_bytes(o, buf, r > 0 ? (size_t)r : 0);
	close(fd);
}

static int cmd_peekwaitall(int argc, char **argv)
{
	if (argc < 1)
		hp_die("usage: peekwaitall PORT");
	pw_port = (int)hp_num(argv[0], 1, 65535, "port");
	run_cases(1, pw_name, pw_case, 1, 3000);
	return 0;
}

/* ------------------------------------------------------------------ */
/* errno                                                               */
/* ------------------------------------------------------------------ */

static int E_ready, E_silent;

/* A tracked connection with data waiting (the ready server's 20 bytes). */
static int tracked(void)
{
	int fd = connect_to(LO, E_ready);

	wait_inq(fd, 20);
	return fd;
}

static void res(struct ob *o, const char *what, long r, int e)
{
	ob_add(o, "%s%s=%ld/%s", o->n ? " " : "", what, r, ename(e));
	ob_flush(o);
}

/* What is still readable on fd right now (data intact?). */
static void left(struct ob *o, int fd)
{
	char buf[64];
	ssize_t r;
	int e;

	errno = 0;
	r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	e = errno;
	ob_add(o, " left=%zd/%s/", r, ename(e));
	ob_bytes(o, buf, r > 0 ? (size_t)r : 0);
}

#define CALL(o, what, expr)                                                   \
	do {                                                                  \
		long r_;                                                      \
		errno = 0;                                                    \
		r_ = (long)(expr);                                            \
		res(o, what, r_, errno);                                      \
	} while (0)

/* Hide a value from the compiler (NULL buffers, negative counts). */
static void *volatile null_ptr;
static volatile int neg_one = -1;

struct ecase {
	const char *name;
	void (*fn)(struct ob *o);
};

/* -- close_range -- */
static void e_close_range_lo_gt_hi(struct ob *o)
{
	int fd = tracked();

	CALL(o, "close_range(10,5,0)", close_range(10, 5, 0));
	left(o, fd);
}

static void e_close_range_bad_flags(struct ob *o)
{
	int fd = tracked();

	CALL(o, "close_range(fd,fd,1)", close_range((unsigned)fd,
						     (unsigned)fd, 1));
	left(o, fd);
}

/* -- iovcnt -- */
static struct iovec many[1100];
static char one_byte[1100];

static void fill_many(void)
{
	for (int i = 0; i < 1100; i++)
		many[i] = (struct iovec){ one_byte + i, 1 };
}

static void e_readv_1100(struct ob *o)
{
	int fd = tracked(), n = 1100;

	fill_many();
	CALL(o, "readv(1100)", readv(fd, many, n));
	left(o, fd);
}

static void e_readv_neg(struct ob *o)
{
	int fd = tracked();

	fill_many();
	CALL(o, "readv(-1)", readv(fd, many, neg_one));
	left(o, fd);
}

static void e_writev_1100(struct ob *o)
{
	int fd = tracked(), n = 1100;

	fill_many();
	CALL(o, "writev(1100)", writev(fd, many, n));
	left(o, fd);
}

static void e_writev_neg(struct ob *o)
{
	int fd = tracked();

	fill_many();
	CALL(o, "writev(-1)", writev(fd, many, neg_one));
	left(o, fd);
}

static void e_recvmsg_1100(struct ob *o)
{
	int fd = tracked();
	struct msghdr m = { .msg_iov = many, .msg_iovlen = 1100 };

	fill_many();
	CALL(o, "recvmsg(iovlen=1100)", recvmsg(fd, &m, 0));
	left(o, fd);
}

static void e_sendmsg_1100(struct ob *o)
{
	int fd = tracked();
	struct msghdr m = { .msg_iov = many, .msg_iovlen = 1100 };

	fill_many();
	CALL(o, "sendmsg(iovlen=1100)", sendmsg(fd, &m, 0));
	left(o, fd);
}

/* -- readzero: 0-byte reads right after a write; the server never
 * answers.  Natively they return 0 at once. -- */
static void zero_common(struct ob *o, int v)
{
	int fd = connect_to(LO, E_silent), e;
	char buf[8];
	struct iovec iov = { buf, 0 };
	uint64_t t0;
	ssize_t r;

	if (write(fd, "hi", 2) != 2)
		hp_die("write: %s", strerror(errno));
	t0 = hp_now_ns();
	errno = 0;
	r = v ? readv(fd, &iov, 1) : read(fd, buf, 0);
	e = errno;
	ob_add(o, "%s=%zd/%s %s", v ? "readv(len0)" : "read(0)", r, ename(e),
	       hp_ms_since(t0) < 500 ? "<500ms" : ">=500ms");
	/* The connection must still be usable. */
	errno = 0;
	r = send(fd, "x", 1, MSG_DONTWAIT);
	e = errno;
	ob_add(o, " then-send=%zd/%s", r, ename(e));
}

static void e_read_zero(struct ob *o)
{
	zero_common(o, 0);
}

static void e_readv_zero(struct ob *o)
{
	zero_common(o, 1);
}

/* -- badfd -- */
static void bad_calls(struct ob *o, int fd, const char *tag)
{
	char buf[16] = "abcdefghij", what[48];

	snprintf(what, sizeof(what), "read(%s)", tag);
	CALL(o, what, read(fd, buf, 10));
	snprintf(what, sizeof(what), "write(%s)", tag);
	CALL(o, what, write(fd, buf, 10));
	snprintf(what, sizeof(what), "recv(%s)", tag);
	CALL(o, what, recv(fd, buf, 10, MSG_DONTWAIT));
	snprintf(what, sizeof(what), "send(%s)", tag);
	CALL(o, what, send(fd, buf, 10, MSG_NOSIGNAL));
}

static void e_fd_minus1(struct ob *o)
{
	(void)tracked();
	bad_calls(o, neg_one, "-1");
}

static void e_fd_closed(struct ob *o)
{
	int fd = tracked();

	close(fd);
	bad_calls(o, fd, "closed");
}

/* A pipe that got the number a tracked socket had a moment ago. */
static void e_fd_pipe_reused(struct ob *o)
{
	int fd = tracked(), p[2];
	char buf[16] = "0123456789";

	close(fd);
	if (pipe(p) < 0)
		hp_die("pipe: %s", strerror(errno));
	ob_add(o, "reused=%d", p[0] == fd || p[1] == fd);
	if (write(p[1], buf, 10) != 10)
		hp_die("pipe write");
	/* The read end: read works, recv is ENOTSOCK. */
	CALL(o, "read(pipe)", read(p[0], buf, 4));
	CALL(o, "recv(pipe)", recv(p[0], buf, 4, MSG_DONTWAIT));
	CALL(o, "readv(pipe)", readv(p[0], &(struct iovec){ buf, 2 }, 1));
	/* The write end. */
	CALL(o, "write(pipe)", write(p[1], buf, 4));
	CALL(o, "send(pipe)", send(p[1], buf, 4, MSG_NOSIGNAL));
	CALL(o, "read(pipe)", read(p[0], buf, 16));
	ob_add(o, "/");
	ob_bytes(o, buf, 8);
}

/* -- nullbuf: EFAULT, the data stays -- */
static void e_read_null(struct ob *o)
{
	int fd = tracked();

	CALL(o, "read(NULL,10)", read(fd, null_ptr, 10));
	left(o, fd);
}

static void e_recv_null(struct ob *o)
{
	int fd = tracked();

	CALL(o, "recv(NULL,10)", recv(fd, null_ptr, 10, 0));
	left(o, fd);
}

static void e_recv_null_waitall(struct ob *o)
{
	int fd = tracked();

	CALL(o, "recv(NULL,10,WAITALL)", recv(fd, null_ptr, 10, MSG_WAITALL));
	left(o, fd);
}

static void e_write_null(struct ob *o)
{
	int fd = tracked();

	CALL(o, "write(NULL,10)", write(fd, null_ptr, 10));
	CALL(o, "send(NULL,10)", send(fd, null_ptr, 10, MSG_NOSIGNAL));
	left(o, fd);
}

/* -- connect -- */
static void e_connect_short(struct ob *o)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	(void)tracked();
	hp_loopback(LO, E_ready, &ss, &len);
	CALL(o, "connect(len=8)", connect(fd, (struct sockaddr *)&ss, 8));
	CALL(o, "connect(len=1)", connect(fd, (struct sockaddr *)&ss, 1));
	CALL(o, "connect(len=0)", connect(fd, (struct sockaddr *)&ss, 0));
	/* The socket must still connect afterwards. */
	CALL(o, "connect(ok)", connect(fd, (struct sockaddr *)&ss, len));
}

static void e_connect_unix(struct ob *o)
{
	struct sockaddr_un un;
	struct sockaddr_storage ss;
	socklen_t len;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	(void)tracked();
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	snprintf(un.sun_path, sizeof(un.sun_path), "/nonexistent/harm_io");
	CALL(o, "connect(AF_UNIX)",
	     connect(fd, (struct sockaddr *)&un, sizeof(un)));
	hp_loopback(LO, E_ready, &ss, &len);
	CALL(o, "connect(ok)", connect(fd, (struct sockaddr *)&ss, len));
}

/* -- accept -- */
static void e_accept(struct ob *o)
{
	int fd = tracked(), fresh = socket(AF_INET, SOCK_STREAM, 0);

	CALL(o, "accept(fresh)", accept(fresh, NULL, NULL));
	CALL(o, "accept(connected)", accept(fd, NULL, NULL));
	CALL(o, "accept4(connected)", accept4(fd, NULL, NULL, SOCK_NONBLOCK));
	left(o, fd);
}

/* -- getsockopt(SO_ERROR) with short lengths -- */
static void e_getsockopt(struct ob *o)
{
	int fd = tracked();
	static const socklen_t lens[] = { 2, 0, (socklen_t)-1, 4, 8 };

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		unsigned char v[8];
		socklen_t l = lens[i];
		char what[40];

		memset(v, 0xaa, sizeof(v));
		snprintf(what, sizeof(what), "SO_ERROR(len=%d)", (int)lens[i]);
		CALL(o, what, getsockopt(fd, SOL_SOCKET, SO_ERROR, v, &l));
		ob_add(o, "/len=%d/%02x%02x%02x%02x%02x", (int)l, v[0], v[1],
		       v[2], v[3], v[4]);
	}
}

/* -- the program's own waits with bad arguments, while a tracked socket
 * has a deadline pending -- */
static void e_poll_huge(struct ob *o)
{
	struct rlimit rl;
	struct pollfd pf[4];
	/* Through a volatile pointer: _FORTIFY_SOURCE would otherwise see
	 * nfds exceed the array and abort before the kernel is asked.  The
	 * kernel checks nfds against RLIMIT_NOFILE before it reads any
	 * entry, so four entries are enough natively. */
	struct pollfd *volatile vp = pf;
	int fd = tracked();

	getrlimit(RLIMIT_NOFILE, &rl);
	for (int i = 0; i < 4; i++)
		pf[i] = (struct pollfd){ .fd = fd, .events = POLLIN };
#ifdef __SANITIZE_ADDRESS__
	/* ASan's poll interceptor reads every entry before the call: give
	 * it all of them (the shim's own walk then stays in bounds too). */
	vp = calloc((size_t)rl.rlim_cur + 1, sizeof(*pf));
	if (!vp)
		hp_die("out of memory");
	for (rlim_t i = 0; i <= rl.rlim_cur; i++)
		vp[i] = (struct pollfd){ .fd = i < 4 ? fd : -1,
					 .events = POLLIN };
#endif
	CALL(o, "poll(nfds=RLIMIT+1)", poll(vp, (nfds_t)rl.rlim_cur + 1, 100));
	CALL(o, "ppoll(nfds=RLIMIT+1)",
	     ppoll(vp, (nfds_t)rl.rlim_cur + 1,
		   &(struct timespec){ 0, 100000000 }, NULL));
}

static void e_select_neg(struct ob *o)
{
	fd_set r;
	int fd = tracked();

	FD_ZERO(&r);
	FD_SET(fd, &r);
	CALL(o, "select(-1)", select(neg_one, &r, NULL, NULL,
				     &(struct timeval){ 0, 100000 }));
	CALL(o, "pselect(-1)", pselect(neg_one, &r, NULL, NULL,
				       &(struct timespec){ 0, 100000000 },
				       NULL));
}

static void e_epoll_max(struct ob *o)
{
	struct epoll_event ev = { .events = EPOLLIN }, out[4];
	int fd = tracked(), ep = epoll_create1(EPOLL_CLOEXEC);

	ev.data.fd = fd;
	CALL(o, "epoll_ctl(ADD)", epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
	CALL(o, "epoll_wait(max=0)", epoll_wait(ep, out, 0, 100));
	CALL(o, "epoll_wait(max=-1)", epoll_wait(ep, out, neg_one, 100));
	CALL(o, "epoll_pwait(max=0)", epoll_pwait(ep, out, 0, 100, NULL));
	CALL(o, "epoll_wait(badfd)", epoll_wait(fd, out, 4, 100));
}

/* -- seccomp: a filter that answers epoll_pwait2 with err (x86-64 only;
 * elsewhere both runs print the same "skipped") -- */
static void e_epoll_seccomp(struct ob *o, int err)
{
	struct epoll_event ev = { .events = EPOLLIN }, out[4];
	int fd = tracked(), ep = epoll_create1(EPOLL_CLOEXEC);

#if defined(__x86_64__) && defined(__NR_epoll_pwait2)
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_epoll_pwait2, 0, 1),
		BPF_STMT(BPF_RET | BPF_K,
			 SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]),
				   .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
		ob_add(o, "filter=%s", ename(errno));
		return;
	}
#else
	(void)err;
	ob_add(o, "skipped");
	return;
#endif
	ev.data.fd = fd;
	CALL(o, "epoll_ctl(ADD)", epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
	/* The program's own epoll_pwait2 meets the filter, as natively. */
	CALL(o, "epoll_pwait2",
	     epoll_pwait2(ep, out, 4, &(struct timespec){ 2, 0 }, NULL));
	CALL(o, "epoll_wait", epoll_wait(ep, out, 4, 2000));
	CALL(o, "epoll_pwait", epoll_pwait(ep, out, 4, 2000, NULL));
	left(o, fd);
}

static void e_epoll_seccomp_eperm(struct ob *o)
{
	e_epoll_seccomp(o, EPERM);
}

static void e_epoll_seccomp_enosys(struct ob *o)
{
	e_epoll_seccomp(o, ENOSYS);
}

/* -- dup -- */
static void e_dup(struct ob *o)
{
	int fd = tracked();

	CALL(o, "dup2(fd,fd)==fd", dup2(fd, fd) == fd);
	CALL(o, "dup3(fd,fd,0)", dup3(fd, fd, 0));
	CALL(o, "dup2(fd,-1)", dup2(fd, neg_one));
	CALL(o, "dup2(-1,fd)", dup2(neg_one, fd));
	CALL(o, "fcntl(F_DUPFD,-1)", fcntl(fd, F_DUPFD, neg_one));
	left(o, fd);
}

/* -- F_GETFL round trip -- */
static void e_getfl(struct ob *o)
{
	int fd = connect_to(LO, E_ready), fl;
	char buf[32];

	ob_add(o, "after-connect=%#x", fcntl(fd, F_GETFL));
	/* A blocking read that may have to wait for the 20 bytes. */
	(void)!recv(fd, buf, 20, MSG_WAITALL);
	ob_add(o, " after-read=%#x", fcntl(fd, F_GETFL));
	fl = fcntl(fd, F_GETFL);
	CALL(o, "setfl(+NONBLOCK)", fcntl(fd, F_SETFL, fl | O_NONBLOCK));
	ob_add(o, " get=%#x", fcntl(fd, F_GETFL));
	CALL(o, "recv", recv(fd, buf, 10, 0));
	CALL(o, "setfl(-NONBLOCK)", fcntl(fd, F_SETFL, fl & ~O_NONBLOCK));
	ob_add(o, " get=%#x", fcntl(fd, F_GETFL));
	/* Write-side blocking path, then F_GETFL again. */
	CALL(o, "write", write(fd, "hello", 5));
	ob_add(o, " after-write=%#x", fcntl(fd, F_GETFL));
	CALL(o, "setfl(O_APPEND)", fcntl(fd, F_SETFL, O_APPEND));
	ob_add(o, " get=%#x", fcntl(fd, F_GETFL));
}

/* -- shutdown with a bad how -- */
static void e_shutdown(struct ob *o)
{
	int fd = tracked();

	CALL(o, "shutdown(3)", shutdown(fd, 3));
	CALL(o, "shutdown(-1)", shutdown(fd, neg_one));
	CALL(o, "shutdown(-1 fd)", shutdown(neg_one, SHUT_RD));
	left(o, fd);
	/* Still a working socket (a second SHUT_WR would race the server's
	 * FIN: ENOTCONN once it came, natively too). */
	CALL(o, "shutdown(WR)", shutdown(fd, SHUT_WR));
}

static const struct {
	const char *group;
	struct ecase cases[8];
} egroups[] = {
	{ "close_range", { { "close_range_lo_gt_hi", e_close_range_lo_gt_hi },
			   { "close_range_bad_flags", e_close_range_bad_flags } } },
	{ "iovcnt", { { "readv_iovcnt_1100", e_readv_1100 },
		      { "readv_iovcnt_-1", e_readv_neg },
		      { "writev_iovcnt_1100", e_writev_1100 },
		      { "writev_iovcnt_-1", e_writev_neg },
		      { "recvmsg_iovlen_1100", e_recvmsg_1100 },
		      { "sendmsg_iovlen_1100", e_sendmsg_1100 } } },
	{ "readzero", { { "read_0_after_write", e_read_zero },
			{ "readv_0_after_write", e_readv_zero } } },
	{ "badfd", { { "fd_-1", e_fd_minus1 },
		     { "fd_closed", e_fd_closed },
		     { "fd_pipe_reused", e_fd_pipe_reused } } },
	{ "nullbuf", { { "read_null", e_read_null },
		       { "recv_null", e_recv_null },
		       { "recv_null_waitall", e_recv_null_waitall },
		       { "write_send_null", e_write_null } } },
	{ "connect", { { "connect_short_addrlen", e_connect_short },
		       { "connect_af_unix", e_connect_unix } } },
	{ "accept", { { "accept_not_listening", e_accept } } },
	{ "getsockopt", { { "so_error_short_optlen", e_getsockopt } } },
	{ "waits", { { "poll_nfds_huge", e_poll_huge },
		     { "select_nfds_-1", e_select_neg },
		     { "epoll_maxevents", e_epoll_max } } },
	{ "seccomp", { { "epoll_pwait2_eperm", e_epoll_seccomp_eperm },
		       { "epoll_pwait2_enosys", e_epoll_seccomp_enosys } } },
	{ "dup", { { "dup2_same_and_bad", e_dup } } },
	{ "getfl", { { "getfl_round_trip", e_getfl } } },
	{ "shutdown", { { "shutdown_bad_how", e_shutdown } } },
};

static const struct ecase *ecur;

static const char *ecase_name(int i)
{
	return ecur[i].name;
}

static void ecase_run(int i, struct ob *o)
{
	count_sigpipe();
	ecur[i].fn(o);
}

static int cmd_errno(int argc, char **argv)
{
	if (argc < 3)
		hp_die("usage: errno GROUP READY_PORT SILENT_PORT");
	E_ready = (int)hp_num(argv[1], 1, 65535, "ready port");
	E_silent = (int)hp_num(argv[2], 1, 65535, "silent port");
	for (size_t g = 0; g < sizeof(egroups) / sizeof(egroups[0]); g++) {
		int n = 0;

		if (strcmp(egroups[g].group, argv[0]))
			continue;
		ecur = egroups[g].cases;
		while (n < 8 && ecur[n].name)
			n++;
		run_cases(n, ecase_name, ecase_run, 8, 3000);
		return 0;
	}
	hp_die("errno: unknown group '%s'", argv[0]);
}

/* ------------------------------------------------------------------ */
/* sotimeo                                                             */
/* ------------------------------------------------------------------ */

static int cmd_sotimeo(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len;
	struct timeval tv, got;
	socklen_t gl = sizeof(got);
	long ms = 300;
	int snd, lfd, afd, port, p[2], e;
	pid_t child;
	uint64_t t0;
	ssize_t r;
	long el;

	if (argc < 1 || (strcmp(argv[0], "rcv") && strcmp(argv[0], "snd")))
		hp_die("usage: sotimeo rcv|snd [--ms N]");
	snd = !strcmp(argv[0], "snd");
	if (argc >= 3 && !strcmp(argv[1], "--ms"))
		ms = (long)hp_num(argv[2], 1, 10000, "--ms");
	signal(SIGPIPE, SIG_IGN);

	hp_loopback(LO, 0, &ss, &len);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	if (lfd < 0 ||
	    setsockopt(lfd, SOL_SOCKET, snd ? SO_SNDTIMEO : SO_RCVTIMEO, &tv,
		       sizeof(tv)) < 0 ||
	    bind(lfd, (struct sockaddr *)&ss, len) < 0 || listen(lfd, 4) < 0)
		hp_die("listener: %s", strerror(errno));
	port = hp_bound_port(lfd);
	if (pipe(p) < 0)
		hp_die("pipe: %s", strerror(errno));
	child = fork();
	if (child < 0)
		hp_die("fork: %s", strerror(errno));
	if (child == 0) {
		/* The peer: connects, then neither sends nor reads until
		 * the parent is done (its end of the pipe closes). */
		char c;
		int fd;

		close(p[1]);
		close(lfd);
		fd = connect_to(LO, port);
		(void)!read(p[0], &c, 1);
		close(fd);
		_exit(0);
	}
	close(p[0]);
	afd = accept(lfd, NULL, NULL);
	if (afd < 0)
		hp_die("accept: %s", strerror(errno));
	memset(&got, 0, sizeof(got));
	getsockopt(afd, SOL_SOCKET, snd ? SO_SNDTIMEO : SO_RCVTIMEO, &got, &gl);
	t0 = hp_now_ns();
	errno = 0;
	if (snd) {
		size_t big = 32u << 20;
		char *buf = calloc(1, big);

		if (!buf)
			hp_die("out of memory");
		r = write(afd, buf, big);
		e = errno;
		if (r > 0 && (size_t)r < big)
			r = -2; /* partial */
		free(buf);
	} else {
		char buf[64];

		r = read(afd, buf, sizeof(buf));
		e = errno;
	}
	el = hp_ms_since(t0);
	printf("RESULT sotimeo-%s opt=%ldms r=%s/%s %s\n",
	       snd ? "snd" : "rcv",
	       (long)got.tv_sec * 1000 + (long)got.tv_usec / 1000,
	       r == -2 ? "partial" : r == -1 ? "-1" : "other", ename(e),
	       el < 2000 ? "<2000ms" : ">=2000ms");
	printf("TIME ms=%ld\n", el);
	fflush(stdout);
	close(p[1]);
	waitpid(child, NULL, 0);
	return 0;
}

/* ------------------------------------------------------------------ */
/* names                                                               */
/* ------------------------------------------------------------------ */

static void on_alarm_hung(int sig)
{
	static const char msg[] = "RESULT names HUNG\n";

	(void)sig;
	(void)!write(1, msg, sizeof(msg) - 1);
	_exit(3);
}

static int resolve_gai(const char *name, int flags, struct in_addr *out)
{
	struct addrinfo hints, *res = NULL;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = flags;
	rc = getaddrinfo(name, NULL, &hints, &res);
	if (rc)
		return rc;
	*out = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
	freeaddrinfo(res);
	return 0;
}

static int cmd_names(int argc, char **argv)
{
	const char *via, *name, *numeric = NULL;
	struct in_addr addr;
	char text[INET_ADDRSTRLEN], canon[256] = "-", buf[16];
	long flood = 0;
	int port, fd, e;
	uint64_t t0;
	ssize_t r;

	if (argc < 3)
		hp_die("usage: names VIA NAME PORT [--numeric ADDR] "
		       "[--flood N]");
	via = argv[0];
	name = argv[1];
	port = (int)hp_num(argv[2], 1, 65535, "port");
	for (int i = 3; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--numeric"))
			numeric = argv[i + 1];
		else if (!strcmp(argv[i], "--flood"))
			flood = (long)hp_num(argv[i + 1], 0, 100000, "--flood");
		else
			hp_die("names: unknown option '%s'", argv[i]);
	}
	signal(SIGPIPE, SIG_IGN);

	if (!strcmp(via, "gethostbyname")) {
		struct hostent *h = gethostbyname(name);

		if (!h || h->h_addrtype != AF_INET || !h->h_addr_list[0])
			hp_die("gethostbyname(%s) failed: %s", name,
			       hstrerror(h_errno));
		memcpy(&addr, h->h_addr_list[0], 4);
		snprintf(canon, sizeof(canon), "%s", h->h_name);
	} else if (!strcmp(via, "gethostbyname_r")) {
		struct hostent he, *h = NULL;
		char hbuf[4096];
		int herr = 0;

		if (gethostbyname_r(name, &he, hbuf, sizeof(hbuf), &h, &herr) ||
		    !h || h->h_addrtype != AF_INET || !h->h_addr_list[0])
			hp_die("gethostbyname_r(%s) failed: %s", name,
			       hstrerror(herr));
		memcpy(&addr, h->h_addr_list[0], 4);
		snprintf(canon, sizeof(canon), "%s", h->h_name);
	} else if (!strcmp(via, "getaddrinfo")) {
		int rc = resolve_gai(name, 0, &addr);

		if (rc)
			hp_die("getaddrinfo(%s): %s", name, gai_strerror(rc));
	} else {
		hp_die("names: unknown resolver '%s'", via);
	}
	inet_ntop(AF_INET, &addr, text, sizeof(text));
	printf("RESOLVED %s %s canon=%s\n", name, text, canon);
	if (numeric) {
		struct in_addr n;
		int rc = resolve_gai(numeric, AI_NUMERICHOST, &n);

		if (rc)
			hp_die("getaddrinfo(%s, AI_NUMERICHOST): %s", numeric,
			       gai_strerror(rc));
		if (n.s_addr != addr.s_addr)
			hp_die("%s is not what %s resolved to (%s)", numeric,
			       name, text);
		printf("NUMERIC %s\n", numeric);
	}
	if (flood) {
		long bad = 0;

		for (long i = 0; i < flood; i++) {
			char h[32];
			struct in_addr a;

			snprintf(h, sizeof(h), "h%ld.test", i);
			bad += resolve_gai(h, 0, &a) != 0;
		}
		printf("FLOOD %ld resolved, %ld failed\n", flood - bad, bad);
		if (bad)
			hp_die("the flood names did not all resolve");
	}
	fflush(stdout);

	signal(SIGALRM, on_alarm_hung);
	alarm(3);
	fd = connect_to(text, port);
	t0 = hp_now_ns();
	if (write(fd, "hi", 2) != 2)
		hp_die("write: %s", strerror(errno));
	errno = 0;
	r = read(fd, buf, sizeof(buf));
	e = errno;
	alarm(0);
	printf("RESULT names r=%zd/%s\nTIME ms=%ld\n", r, ename(e),
	       hp_ms_since(t0));
	return 0;
}

/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	if (argc < 2)
		hp_die("usage: harm_io serve|flags|peekwaitall|errno|sotimeo|"
		       "names ...");
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(argv[1], "serve"))
		return cmd_serve(argc - 2, argv + 2);
	if (!strcmp(argv[1], "flags"))
		return cmd_flags(argc - 2, argv + 2);
	if (!strcmp(argv[1], "peekwaitall"))
		return cmd_peekwaitall(argc - 2, argv + 2);
	if (!strcmp(argv[1], "errno"))
		return cmd_errno(argc - 2, argv + 2);
	if (!strcmp(argv[1], "sotimeo"))
		return cmd_sotimeo(argc - 2, argv + 2);
	if (!strcmp(argv[1], "names"))
		return cmd_names(argc - 2, argv + 2);
	hp_die("unknown subcommand '%s'", argv[1]);
}
