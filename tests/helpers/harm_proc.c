/* harm_proc - the programs of the "do no harm" suite
 * (tests/integration/test_harm_proc.c, suite harm_proc).
 *
 *   harm_proc CASE ARGS...
 *
 * Each CASE is a small program that leans on the process model (vfork,
 * fork, threads), on signals, or on descriptor numbers, the way ordinary
 * programs do, while it talks TCP over loopback.  The suite runs a case
 * once natively and once under LD_PRELOAD=libdeadline.so with deadlines
 * that are configured but (unless the case is about expiry) never fire, and
 * compares what the program saw.  So every case prints its observations as
 * stable lines
 *
 *   RESULT <case> <what>
 *
 * (bytes read, errno names, descriptor numbers, counts; never timings),
 * and may print "INFO ..." lines for the humans reading a failure.  Exit
 * status: 0 when the case ran to its end, whatever it saw; 2 on a setup
 * error (hp_die).  Timings are at most bucketed ("fast=yes").  Cases that
 * would block forever natively when the shim is broken arm a guard alarm
 * (SIGALRM, plain sigaction without SA_RESTART) and report "HUNG" instead.
 *
 * Cases (issue "Do no harm", item numbers in brackets):
 *   serve hold|record|after MS TEXT     a loopback server (see serve())
 *   vfork_read PORT FILE                [1] vfork child closing fds
 *   vfork_deadline PORT                 [2] deadlines after a vfork child
 *   sig_write PORT MS EVERY_US          [4] write() in a signal handler
 *   log_fd2 SILENT REC close|reexec|closed  [5a] log with fd 2 closed
 *   log_dup2 PORT OUTFILE               [5b] log fd replaced by dup2
 *   longjmp_leak PORT N                 [6] siglongjmp out of read()
 *   cancel_leak PORT N                  [6] pthread_cancel in read()
 *   sigint MODE PORT                    [7] EINTR by handler kind
 *   dup_expiry PORT                     [10] expiry seen through a dup
 *   fork_expiry PORT                    [10] expiry seen by a fork child
 *   fd0 PORT                            [12a] fd 0 closed by the program
 *   rlimit5 PORT                        [12b] RLIMIT_NOFILE 5
 *   nonblock_fork PORT                  [12c] O_NONBLOCK set by a child
 *   threads PORT NTHREADS NFILES        [13] thread per connection
 *
 * Addresses are always 127.0.0.1 (hp_loopback refuses anything else).
 */
#include "helpers.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>

#define LO "127.0.0.1"

/* ------------------------------------------------------------------ */
/* Small tools                                                         */
/* ------------------------------------------------------------------ */

__attribute__((format(printf, 1, 2)))
static void result(const char *fmt, ...)
{
	va_list ap;

	fputs("RESULT ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

__attribute__((format(printf, 1, 2)))
static void info(const char *fmt, ...)
{
	va_list ap;

	fputs("INFO ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

/* Printable copy of n bytes: [!-~] kept, everything else (and '\\')
 * as \xHH.  Rotating static buffers, so two may be used in one call. */
static const char *esc(const void *p, size_t n)
{
	static char bufs[4][512];
	static int next;
	char *o = bufs[next++ % 4];
	const unsigned char *s = p;
	size_t k = 0;

	for (size_t i = 0; i < n && k + 5 < sizeof(bufs[0]); i++) {
		if (s[i] > ' ' && s[i] <= '~' && s[i] != '\\')
			o[k++] = (char)s[i];
		else
			k += (size_t)snprintf(o + k, 5, "\\x%02x", s[i]);
	}
	o[k] = '\0';
	return o;
}

/* What a read-like call returned, as text: "data:<bytes>", "eof", or the
 * errno name ("HUNG" when the guard alarm ended it). */
static volatile sig_atomic_t guard_fired;

static const char *outcome(ssize_t r, int e, const void *buf)
{
	static char out[4][600];
	static int next;
	char *o = out[next++ % 4];

	if (r > 0)
		snprintf(o, sizeof(out[0]), "data:%s", esc(buf, (size_t)r));
	else if (r == 0)
		snprintf(o, sizeof(out[0]), "eof");
	else if (e == EINTR && guard_fired)
		snprintf(o, sizeof(out[0]), "HUNG");
	else
		snprintf(o, sizeof(out[0]), "%s", hp_errname(e));
	return o;
}

static int tcp_socket(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		hp_die("socket: %s", strerror(errno));
	return fd;
}

static void tcp_connect_fd(int fd, int port)
{
	struct sockaddr_storage ss;
	socklen_t len;

	hp_loopback(LO, port, &ss, &len);
	if (connect(fd, (struct sockaddr *)&ss, len) < 0)
		hp_die("connect to port %d: %s", port, strerror(errno));
}

static int tcp_connect(int port)
{
	int fd = tcp_socket();

	tcp_connect_fd(fd, port);
	return fd;
}

static int port_arg(const char *s)
{
	return (int)hp_num(s, 1, 65535, "port");
}

/* Open descriptors of this process (the directory's own fd excluded). */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		hp_die("opendir /proc/self/fd: %s", strerror(errno));
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d))
			n++;
	closedir(d);
	return n;
}

static void guard_handler(int sig)
{
	(void)sig;
	guard_fired = 1;
}

/* A hang shows up as "HUNG" in the RESULT line rather than only as the
 * harness's hard timeout.  Plain sigaction without SA_RESTART: the kind
 * of handler the shim already lets interrupt a wait. */
static void guard_arm(unsigned sec)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = guard_handler;
	sigemptyset(&sa.sa_mask);
	guard_fired = 0;
	sigaction(SIGALRM, &sa, NULL);
	alarm(sec);
}

static void guard_disarm(void)
{
	alarm(0);
}

static void timer_once_ms(long ms)
{
	struct itimerval it;

	memset(&it, 0, sizeof(it));
	it.it_value.tv_sec = ms / 1000;
	it.it_value.tv_usec = (ms % 1000) * 1000;
	setitimer(ITIMER_REAL, &it, NULL);
}

static void timer_off(void)
{
	struct itimerval it;

	memset(&it, 0, sizeof(it));
	setitimer(ITIMER_REAL, &it, NULL);
}

static const char *status_text(int st)
{
	static char buf[64];

	if (WIFEXITED(st))
		snprintf(buf, sizeof(buf), "exit:%d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, sizeof(buf), "signal:%s",
			 sigabbrev_np(WTERMSIG(st)) ? sigabbrev_np(WTERMSIG(st))
						   : "?");
	else
		snprintf(buf, sizeof(buf), "status:%d", st);
	return buf;
}

/* ------------------------------------------------------------------ */
/* serve: a single-threaded loopback server (never run under the shim)  */
/* ------------------------------------------------------------------ */

/* serve hold          accept any number of connections, read and discard,
 *                     never answer; close at the peer's EOF
 * serve record        keep what each connection sends; at its EOF print
 *                     "RECORD conn=<id> len=<n> libdeadline=<0|1> data=<esc>"
 * serve after MS TEXT send TEXT (unless "-") MS after the accept, and echo
 *                     every chunk received MS after it arrived
 * Prints "PORT <n>" first; exits after 60 s in any case. */

struct sconn {
	int fd;
	unsigned id;
	uint64_t greet_due;	/* 0: nothing to send */
	uint64_t echo_due;	/* 0: nothing pending */
	size_t inlen, outlen;
	char in[16384];		/* record */
	char out[16384];	/* after: pending echo */
};

static void serve_close(struct sconn *c, int record)
{
	if (record)
		printf("RECORD conn=%u len=%zu libdeadline=%d data=%s\n",
		       c->id, c->inlen,
		       memmem(c->in, c->inlen, "libdeadline", 11) != NULL,
		       esc(c->in, c->inlen < 100 ? c->inlen : 100));
	fflush(stdout);
	close(c->fd);
	c->fd = -1;
}

static int serve(int argc, char **argv)
{
	const char *mode = argc > 2 ? argv[2] : "";
	int record = !strcmp(mode, "record"), after = !strcmp(mode, "after");
	long ms = 0;
	const char *text = NULL;
	struct sockaddr_storage ss;
	socklen_t len;
	struct rlimit rl;
	struct sconn **cs = NULL;
	struct pollfd *pf = NULL;
	size_t nc = 0, cap = 0;
	unsigned next_id = 0;
	int lfd, one = 1;

	if (!record && !after && strcmp(mode, "hold"))
		hp_die("usage: harm_proc serve hold|record|after MS TEXT");
	if (after) {
		if (argc < 5)
			hp_die("usage: harm_proc serve after MS TEXT");
		ms = (long)hp_num(argv[3], 0, 60000, "ms");
		text = strcmp(argv[4], "-") ? argv[4] : NULL;
	}
	signal(SIGPIPE, SIG_IGN);
	alarm(60);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	hp_loopback(LO, 0, &ss, &len);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		hp_die("socket: %s", strerror(errno));
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&ss, len) < 0 || listen(lfd, 4096) < 0)
		hp_die("bind/listen: %s", strerror(errno));
	printf("PORT %d\n", hp_bound_port(lfd));
	fflush(stdout);

	for (;;) {
		uint64_t now = hp_now_ns(), due = 0;
		size_t np = 0;
		int timeout = -1;

		/* Compact, and find the earliest timed send. */
		for (size_t i = 0; i < nc;) {
			if (cs[i]->fd < 0) {
				free(cs[i]);
				cs[i] = cs[--nc];
				continue;
			}
			if (cs[i]->greet_due && (!due || cs[i]->greet_due < due))
				due = cs[i]->greet_due;
			if (cs[i]->echo_due && (!due || cs[i]->echo_due < due))
				due = cs[i]->echo_due;
			i++;
		}
		if (due)
			timeout = due <= now ? 0
					     : (int)((due - now) / 1000000u) + 1;
		if (nc + 1 > cap) {
			cap = (nc + 1) * 2;
			pf = realloc(pf, cap * sizeof(*pf));
			cs = realloc(cs, cap * sizeof(*cs));
			if (!pf || !cs)
				hp_die("out of memory");
		}
		pf[np++] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		for (size_t i = 0; i < nc; i++)
			pf[np++] = (struct pollfd){ .fd = cs[i]->fd,
						    .events = POLLIN };
		if (poll(pf, (nfds_t)np, timeout) < 0 && errno != EINTR)
			hp_die("poll: %s", strerror(errno));
		now = hp_now_ns();
		for (size_t i = 0; i < nc; i++) {
			struct sconn *c = cs[i];
			short re = pf[i + 1].revents;

			if (re & (POLLIN | POLLERR | POLLHUP)) {
				char buf[16384];
				ssize_t r = read(c->fd, buf, sizeof(buf));

				if (r <= 0) {
					if (r == 0 || errno != EINTR)
						serve_close(c, record);
					continue;
				}
				if (record) {
					size_t k = sizeof(c->in) - c->inlen;

					k = (size_t)r < k ? (size_t)r : k;
					memcpy(c->in + c->inlen, buf, k);
					c->inlen += k;
				} else if (after) {
					size_t k = sizeof(c->out) - c->outlen;

					k = (size_t)r < k ? (size_t)r : k;
					memcpy(c->out + c->outlen, buf, k);
					c->outlen += k;
					if (!c->echo_due)
						c->echo_due = now +
							(uint64_t)ms * 1000000u;
				}
			}
			if (c->greet_due && c->greet_due <= now) {
				c->greet_due = 0;
				hp_send_all(c->fd, text, strlen(text));
			}
			if (c->echo_due && c->echo_due <= now) {
				c->echo_due = 0;
				hp_send_all(c->fd, c->out, c->outlen);
				c->outlen = 0;
			}
		}
		if (pf[0].revents & POLLIN) {
			int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			struct sconn *c;

			if (fd < 0)
				continue;
			c = calloc(1, sizeof(*c));
			if (!c)
				hp_die("out of memory");
			c->fd = fd;
			c->id = ++next_id;
			if (text)
				c->greet_due = now + (uint64_t)ms * 1000000u;
			cs[nc++] = c;
		}
	}
}

/* ------------------------------------------------------------------ */
/* [1] vfork child that closes descriptors                              */
/* ------------------------------------------------------------------ */

/* Thread A blocks in read() on a socket whose server answers after a
 * while; meanwhile thread B vforks a child that close()s the unrelated
 * file and the socket, then close_range(3, ~0U, 0)s, then _exit(0)s.
 * The child has its own descriptor table but shares the parent's memory:
 * nothing it does may change what the parent's read returns. */

static int vf_sock, vf_file;
static char vf_buf[256];
static ssize_t vf_r;
static int vf_err;
static int vf_status = -1;

static void *vf_reader(void *arg)
{
	(void)arg;
	vf_r = read(vf_sock, vf_buf, sizeof(vf_buf));
	vf_err = errno;
	return NULL;
}

static void *vf_forker(void *arg)
{
	pid_t pid;

	(void)arg;
	hp_sleep_ms(100);	/* A is blocked in read() by now */
	pid = vfork();
	if (pid == 0) {
		close(vf_file);
		close(vf_sock);
		close_range(3, ~0U, 0);
		_exit(0);
	}
	if (pid < 0)
		hp_die("vfork: %s", strerror(errno));
	while (waitpid(pid, &vf_status, 0) < 0 && errno == EINTR)
		;
	return NULL;
}

static int vfork_read(int argc, char **argv)
{
	pthread_t a, b;
	char fbuf[64], want[64];
	int wfd;
	ssize_t n;

	if (argc < 4)
		hp_die("usage: harm_proc vfork_read PORT FILE");
	/* The unrelated file: known contents, opened before the socket so
	 * that it has the lower number. */
	wfd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	snprintf(want, sizeof(want), "UNRELATED-FILE-CONTENTS\n");
	if (wfd < 0 || write(wfd, want, strlen(want)) != (ssize_t)strlen(want))
		hp_die("write %s: %s", argv[3], strerror(errno));
	close(wfd);
	vf_file = open(argv[3], O_RDONLY);
	if (vf_file < 0)
		hp_die("open %s: %s", argv[3], strerror(errno));
	vf_sock = tcp_connect(port_arg(argv[2]));
	info("file_fd=%d sock_fd=%d", vf_file, vf_sock);
	if (pthread_create(&a, NULL, vf_reader, NULL) ||
	    pthread_create(&b, NULL, vf_forker, NULL))
		hp_die("pthread_create failed");
	pthread_join(b, NULL);
	pthread_join(a, NULL);
	result("vfork_read child=%s", status_text(vf_status));
	result("vfork_read read=%s", outcome(vf_r, vf_err, vf_buf));
	n = pread(vf_file, fbuf, sizeof(fbuf), 0);
	result("vfork_read unrelated_file=%s",
	       n == (ssize_t)strlen(want) && !memcmp(fbuf, want, (size_t)n)
		       ? "intact" : outcome(n, errno, fbuf));
	result("vfork_read sock_open=%s",
	       fcntl(vf_sock, F_GETFD) >= 0 ? "yes" : hp_errname(errno));
	return 0;
}

/* ------------------------------------------------------------------ */
/* [2] deadlines still enforced after a vfork child's close_range       */
/* ------------------------------------------------------------------ */

static int vfork_close_all(void)
{
	int st = -1;
	pid_t pid = vfork();

	if (pid == 0) {
		close_range(3, ~0U, 0);
		_exit(0);
	}
	if (pid < 0)
		hp_die("vfork: %s", strerror(errno));
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return st;
}

static int vfork_deadline(int argc, char **argv)
{
	int port, a, b, st;
	char buf[64];
	uint64_t t0;
	ssize_t r;
	int e;

	if (argc < 3)
		hp_die("usage: harm_proc vfork_deadline PORT");
	port = port_arg(argv[2]);

	/* A socket connected before the vfork... */
	t0 = hp_now_ns();
	a = tcp_connect(port);
	st = vfork_close_all();
	result("vfork_deadline child=%s", status_text(st));
	guard_arm(4);
	r = read(a, buf, sizeof(buf));
	e = errno;
	guard_disarm();
	info("before_vfork ms=%ld", hp_ms_since(t0));
	result("vfork_deadline conn_before_vfork read=%s", outcome(r, e, buf));
	close(a);

	/* ...and one connected after it. */
	t0 = hp_now_ns();
	b = tcp_connect(port);
	guard_arm(4);
	r = read(b, buf, sizeof(buf));
	e = errno;
	guard_disarm();
	info("after_vfork ms=%ld", hp_ms_since(t0));
	result("vfork_deadline conn_after_vfork read=%s", outcome(r, e, buf));
	close(b);
	return 0;
}

/* ------------------------------------------------------------------ */
/* [4] a signal handler that write()s to a tracked socket               */
/* ------------------------------------------------------------------ */

static int sw_hsock;
static volatile sig_atomic_t sw_hok, sw_hfail;

static void sw_handler(int sig)
{
	int saved = errno;

	(void)sig;
	if (write(sw_hsock, "s", 1) == 1)
		sw_hok++;
	else
		sw_hfail++;
	errno = saved;
}

static int sig_write(int argc, char **argv)
{
	struct sigaction sa;
	struct itimerval it;
	sigset_t alrm;
	int port, loop, bad = 0;
	long run_ms, iters = 0, every_us;
	size_t hgot = 0, hwrong = 0;
	uint64_t t0;
	const char *loop_err = "ok";

	if (argc < 5)
		hp_die("usage: harm_proc sig_write PORT MS EVERY_US");
	port = port_arg(argv[2]);
	run_ms = (long)hp_num(argv[3], 1, 60000, "ms");
	every_us = (long)hp_num(argv[4], 1, 999999, "every_us");
	loop = tcp_connect(port);
	sw_hsock = tcp_connect(port);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = sw_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	memset(&it, 0, sizeof(it));
	it.it_value.tv_usec = every_us;
	it.it_interval.tv_usec = every_us;
	setitimer(ITIMER_REAL, &it, NULL);

	t0 = hp_now_ns();
	while (hp_ms_since(t0) < run_ms) {
		char out[64], in[64];

		hp_pattern_fill((uint64_t)iters, 0, out, sizeof(out));
		if (write(loop, out, sizeof(out)) != (ssize_t)sizeof(out)) {
			if (errno == EINTR)
				continue;
			loop_err = hp_errname(errno);
			break;
		}
		if (hp_read_full(loop, in, sizeof(in)) < 0) {
			loop_err = errno == EPROTO ? "eof" : hp_errname(errno);
			break;
		}
		if (memcmp(in, out, sizeof(in)))
			bad++;
		iters++;
		/* Take what the echo server returned of the handler's bytes
		 * so far: each handler write then starts a new turn. */
		{
			char hb[256];
			ssize_t r = recv(sw_hsock, hb, sizeof(hb),
					 MSG_DONTWAIT);

			for (ssize_t i = 0; i < r; i++)
				hwrong += hb[i] != 's';
			if (r > 0)
				hgot += (size_t)r;
		}
	}
	timer_off();
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	sigprocmask(SIG_BLOCK, &alrm, NULL);
	info("iterations=%ld handler_writes=%d handler_failures=%d", iters,
	     (int)sw_hok, (int)sw_hfail);
	result("sig_write loop=%s mismatches=%d", loop_err, bad);
	result("sig_write handler_ran=%s handler_write_failures=%d",
	       sw_hok > 0 ? "yes" : "no", (int)sw_hfail);

	/* The echo server returns every byte the handler wrote. */
	{
		size_t want = (size_t)sw_hok, got = hgot, wrong = hwrong;
		char buf[4096];

		while (got < want) {
			struct pollfd p = { .fd = sw_hsock, .events = POLLIN };
			ssize_t r;

			if (poll(&p, 1, 3000) <= 0)
				break;
			r = read(sw_hsock, buf, sizeof(buf));
			if (r <= 0)
				break;
			for (ssize_t i = 0; i < r; i++)
				wrong += buf[i] != 's';
			got += (size_t)r;
		}
		result("sig_write handler_bytes_echoed=%s wrong=%zu",
		       got == want ? "all" : "missing", wrong);
	}
	close(loop);
	close(sw_hsock);
	return 0;
}

/* ------------------------------------------------------------------ */
/* [5a] log lines with fd 2 closed                                      */
/* ------------------------------------------------------------------ */

/* fd 2 is closed (by main, or before exec); connection B to a recording
 * server gets number 2; connection A expires.  The recording server
 * must receive exactly what the program wrote to B. */
static int log_fd2(int argc, char **argv)
{
	int a, b, p;
	char buf[64];
	ssize_t r;
	int e;

	if (argc < 5)
		hp_die("usage: harm_proc log_fd2 SILENT REC close|reexec|closed");
	if (!strcmp(argv[4], "reexec")) {
		char *nargv[] = { argv[0], argv[1], argv[2], argv[3],
				  (char *)"closed", NULL };

		close(2);
		execv("/proc/self/exe", nargv);
		hp_die("exec /proc/self/exe: %s", strerror(errno));
	}
	if (!strcmp(argv[4], "close"))
		close(2);
	else if (strcmp(argv[4], "closed"))
		hp_die("bad mode %s", argv[4]);
	if (fcntl(2, F_GETFD) >= 0)
		hp_die("fd 2 is open");
	p = open("/dev/null", O_RDWR);	/* holds number 2 for a moment */
	a = tcp_connect(port_arg(argv[2]));
	close(p);
	b = tcp_connect(port_arg(argv[3]));
	result("log_fd2 placeholder_fd=%d b_fd=%d", p, b);
	if (hp_send_all(b, "hello\n", 6) < 0)
		hp_die("send: %s", strerror(errno));
	guard_arm(4);
	r = read(a, buf, sizeof(buf));
	e = errno;
	guard_disarm();
	result("log_fd2 read_a=%s", outcome(r, e, buf));
	if (hp_send_all(b, "bye\n", 4) < 0)
		result("log_fd2 send_b=%s", hp_errname(errno));
	close(b);
	close(a);
	return 0;
}

/* ------------------------------------------------------------------ */
/* [5b] the log's number taken over by the program                     */
/* ------------------------------------------------------------------ */

static int log_dup2(int argc, char **argv)
{
	int f, a, open_before = 0;
	char buf[64], list[64] = "";
	struct stat sb;
	ssize_t r;
	int e;

	if (argc < 4)
		hp_die("usage: harm_proc log_dup2 PORT OUTFILE");
	for (int fd = 3; fd <= 9; fd++)
		if (fcntl(fd, F_GETFD) >= 0) {
			open_before++;
			snprintf(list + strlen(list), sizeof(list) - strlen(list),
				 " %d", fd);
		}
	info("open_before=%d:%s", open_before, list);
	f = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (f < 0)
		hp_die("open %s: %s", argv[3], strerror(errno));
	/* Every low number is the program's own now, all onto out.txt. */
	for (int fd = 3; fd <= 9; fd++)
		if (fd != f && dup2(f, fd) < 0)
			hp_die("dup2 %d: %s", fd, strerror(errno));
	a = tcp_connect(port_arg(argv[2]));
	info("a_fd=%d", a);
	guard_arm(4);
	r = read(a, buf, sizeof(buf));
	e = errno;
	guard_disarm();
	result("log_dup2 read=%s", outcome(r, e, buf));
	close(a);
	for (int fd = 3; fd <= 9; fd++)
		close(fd);
	if (stat(argv[3], &sb) < 0)
		hp_die("stat %s: %s", argv[3], strerror(errno));
	result("log_dup2 out_bytes=%lld", (long long)sb.st_size);
	return 0;
}

/* ------------------------------------------------------------------ */
/* [6] leaving a blocked read by siglongjmp or pthread_cancel           */
/* ------------------------------------------------------------------ */

static sigjmp_buf lj_env;
static volatile int lj_sock = -1;
static volatile int lj_returned;

static void lj_handler(int sig)
{
	(void)sig;
	siglongjmp(lj_env, 1);
}

static void lj_cycle(int port)
{
	char buf[64];

	lj_sock = tcp_connect(port);
	if (!sigsetjmp(lj_env, 1)) {
		timer_once_ms(20);
		/* Only reached when the read returned instead of the jump. */
		if (read(lj_sock, buf, sizeof(buf)) >= 0 || errno)
			lj_returned++;
	}
	timer_off();
	close(lj_sock);
	lj_sock = -1;
}

/* The count of descriptors after the cycles, against the count after one
 * warm-up cycle (so a shim that keeps one private fd per thread is fine):
 * "leaked=none" natively. */
static const char *leak_text(int before, int after)
{
	static char buf[32];

	if (after <= before)
		return "none";
	snprintf(buf, sizeof(buf), "%d", after - before);
	return buf;
}

static int longjmp_leak(int argc, char **argv)
{
	struct sigaction sa;
	int port, n, base, after;

	if (argc < 4)
		hp_die("usage: harm_proc longjmp_leak PORT N");
	port = port_arg(argv[2]);
	n = (int)hp_num(argv[3], 1, 10000, "N");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = lj_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);

	lj_cycle(port);		/* warm-up */
	base = count_fds();
	for (int i = 0; i < n; i++)
		lj_cycle(port);
	after = count_fds();
	info("fds base=%d after=%d reads_returned=%d", base, after,
	     lj_returned);
	result("longjmp_leak cycles=%d leaked=%s reads_returned=%d", n,
	       leak_text(base, after), lj_returned);
	/* Stay alive a moment: a socket the shim still holds open shows at
	 * the server as a connection that ended late (at our exit). */
	hp_sleep_ms(1200);
	return 0;
}

static volatile int cn_started;

static void *cn_reader(void *arg)
{
	char buf[64];
	int fd = (int)(intptr_t)arg;

	__atomic_store_n(&cn_started, 1, __ATOMIC_RELEASE);
	if (read(fd, buf, sizeof(buf)) >= 0)
		return (void *)1;
	return (void *)2;
}

static int cancel_cycle(int port)
{
	pthread_t t;
	void *ret = NULL;
	int s = tcp_connect(port);

	__atomic_store_n(&cn_started, 0, __ATOMIC_RELEASE);
	if (pthread_create(&t, NULL, cn_reader, (void *)(intptr_t)s))
		hp_die("pthread_create failed");
	while (!__atomic_load_n(&cn_started, __ATOMIC_ACQUIRE))
		hp_sleep_ms(1);
	hp_sleep_ms(30);	/* now blocked in read() */
	pthread_cancel(t);
	pthread_join(t, &ret);
	close(s);
	return ret == PTHREAD_CANCELED;
}

static int cancel_leak(int argc, char **argv)
{
	int port, n, base, after, cancelled = 0;

	if (argc < 4)
		hp_die("usage: harm_proc cancel_leak PORT N");
	port = port_arg(argv[2]);
	n = (int)hp_num(argv[3], 1, 10000, "N");
	cancel_cycle(port);	/* warm-up */
	base = count_fds();
	for (int i = 0; i < n; i++)
		cancelled += cancel_cycle(port);
	after = count_fds();
	info("fds base=%d after=%d", base, after);
	result("cancel_leak cycles=%d cancelled=%d leaked=%s", n, cancelled,
	       leak_text(base, after));
	hp_sleep_ms(1200);
	return 0;
}

/* ------------------------------------------------------------------ */
/* [7] which handlers interrupt a blocking read                        */
/* ------------------------------------------------------------------ */

static volatile sig_atomic_t si_ran;

static void si_handler(int sig)
{
	(void)sig;
	si_ran = 1;
}

static int sigint_case(int argc, char **argv)
{
	struct sigaction sa;
	const char *mode;
	char buf[64];
	ssize_t r;
	int s, e;

	if (argc < 4)
		hp_die("usage: harm_proc sigint MODE PORT");
	mode = argv[2];
	s = tcp_connect(port_arg(argv[3]));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = si_handler;
	sigemptyset(&sa.sa_mask);
	if (!strcmp(mode, "siginterrupt")) {
		signal(SIGALRM, si_handler);	/* BSD semantics: restart... */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
		siginterrupt(SIGALRM, 1);	/* ...no, interrupt */
#pragma GCC diagnostic pop
	} else if (!strcmp(mode, "resethand")) {
		sa.sa_flags = SA_RESETHAND;
		sigaction(SIGALRM, &sa, NULL);
	} else if (!strcmp(mode, "sysv")) {
		sysv_signal(SIGALRM, si_handler);
	} else if (!strcmp(mode, "norestart")) {
		sigaction(SIGALRM, &sa, NULL);
	} else if (!strcmp(mode, "restart")) {
		sa.sa_flags = SA_RESTART;
		sigaction(SIGALRM, &sa, NULL);
	} else {
		hp_die("bad mode %s", mode);
	}
	timer_once_ms(300);
	r = read(s, buf, sizeof(buf));
	e = errno;
	timer_off();
	result("sigint_%s read=%s handler=%s", mode, outcome(r, e, buf),
	       si_ran ? "ran" : "did-not-run");
	close(s);
	return 0;
}

/* ------------------------------------------------------------------ */
/* [10] after expiry, every number for the connection says so           */
/* ------------------------------------------------------------------ */

static int dup_expiry(int argc, char **argv)
{
	char buf[64];
	ssize_t r;
	int a, b, e;

	if (argc < 3)
		hp_die("usage: harm_proc dup_expiry PORT");
	signal(SIGPIPE, SIG_DFL);
	a = tcp_connect(port_arg(argv[2]));
	b = dup(a);
	guard_arm(4);
	r = read(a, buf, sizeof(buf));
	e = errno;
	guard_disarm();
	result("dup_expiry read_a=%s", outcome(r, e, buf));
	r = read(b, buf, sizeof(buf));
	result("dup_expiry read_b=%s", outcome(r, errno, buf));
	r = write(b, "x", 1);
	result("dup_expiry write_b=%s", r == 1 ? "wrote" : hp_errname(errno));
	r = write(a, "x", 1);
	result("dup_expiry write_a=%s", r == 1 ? "wrote" : hp_errname(errno));
	close(b);
	close(a);
	return 0;
}

static int fork_expiry(int argc, char **argv)
{
	int s, go[2], rep[2], st = -1, e;
	char buf[64], line[256];
	ssize_t r;
	pid_t pid;

	if (argc < 3)
		hp_die("usage: harm_proc fork_expiry PORT");
	signal(SIGPIPE, SIG_DFL);
	s = tcp_connect(port_arg(argv[2]));
	if (pipe(go) < 0 || pipe(rep) < 0)
		hp_die("pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		hp_die("fork: %s", strerror(errno));
	if (pid == 0) {
		char c, rb[64];
		ssize_t rr, wr;
		int re, we;

		close(go[1]);
		close(rep[0]);
		if (read(go[0], &c, 1) != 1)
			_exit(3);
		rr = read(s, rb, sizeof(rb));
		re = errno;
		/* Report the read before the write: the write may kill us. */
		dprintf(rep[1], "read=%s ", outcome(rr, re, rb));
		wr = write(s, "x", 1);
		we = errno;
		dprintf(rep[1], "write=%s", wr == 1 ? "wrote" : hp_errname(we));
		_exit(0);
	}
	close(go[0]);
	close(rep[1]);
	guard_arm(4);
	r = read(s, buf, sizeof(buf));
	e = errno;
	guard_disarm();
	result("fork_expiry parent_read=%s", outcome(r, e, buf));
	if (write(go[1], "g", 1) != 1)
		hp_die("pipe write: %s", strerror(errno));
	{
		size_t len = 0;

		for (;;) {
			struct pollfd p = { .fd = rep[0], .events = POLLIN };

			if (poll(&p, 1, 5000) <= 0)
				break;
			r = read(rep[0], line + len, sizeof(line) - 1 - len);
			if (r <= 0)
				break;
			len += (size_t)r;
		}
		line[len] = '\0';
	}
	if (waitpid(pid, &st, 0) < 0)
		hp_die("waitpid: %s", strerror(errno));
	result("fork_expiry child %s", line);
	result("fork_expiry child_status=%s", status_text(st));
	close(s);
	return 0;
}

/* ------------------------------------------------------------------ */
/* [12] the program's descriptor numbers                                */
/* ------------------------------------------------------------------ */

/* (a) fd 0 closed: the lowest number is the program's to get back. */
static int fd0_case(int argc, char **argv)
{
	char buf[64];
	ssize_t r;
	int s, n, e;

	if (argc < 3)
		hp_die("usage: harm_proc fd0 PORT");
	/* The program's first waits on a socket come after fd 0 is gone
	 * (the shim makes its private wait fd on a thread's first wait). */
	s = tcp_socket();
	close(0);
	tcp_connect_fd(s, port_arg(argv[2]));
	r = read(s, buf, sizeof(buf));		/* the greeting comes later */
	e = errno;
	result("fd0 round1=%s", outcome(r, e, buf));
	n = open("/dev/null", O_RDONLY);
	result("fd0 open_after_close0=%d", n);
	if (n > 0) {
		if (dup2(n, 0) < 0)
			result("fd0 dup2=%s", hp_errname(errno));
		close(n);
	}
	if (hp_send_all(s, "pong\n", 5) < 0)
		result("fd0 send=%s", hp_errname(errno));
	r = read(s, buf, sizeof(buf));		/* the echo comes later */
	e = errno;
	result("fd0 round2=%s", outcome(r, e, buf));
	close(s);
	return 0;
}

/* (b) RLIMIT_NOFILE 5: 0, 1, 2, the socket, and one more for us. */
static int rlimit5(int argc, char **argv)
{
	struct rlimit rl = { 5, 5 };
	char buf[64];
	ssize_t r;
	int s, n, e;

	if (argc < 3)
		hp_die("usage: harm_proc rlimit5 PORT");
	for (int fd = 3; fd < 64; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			hp_die("fd %d is open at start", fd);
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		hp_die("setrlimit: %s", strerror(errno));
	s = tcp_connect(port_arg(argv[2]));
	r = read(s, buf, sizeof(buf));		/* data comes after 200 ms */
	e = errno;
	result("rlimit5 sock_fd=%d read=%s", s, outcome(r, e, buf));
	n = open("/dev/null", O_RDONLY);
	result("rlimit5 open=%s", n >= 0 ? (snprintf(buf, sizeof(buf), "%d", n),
					    buf) : hp_errname(errno));
	return 0;
}

/* (c) a fork child sets O_NONBLOCK on the shared open file. */
static int nonblock_fork(int argc, char **argv)
{
	char buf[64];
	uint64_t t0;
	ssize_t r;
	int s, fl, st = -1, e;
	pid_t pid;

	if (argc < 3)
		hp_die("usage: harm_proc nonblock_fork PORT");
	s = tcp_connect(port_arg(argv[2]));
	fl = fcntl(s, F_GETFL);
	result("nonblock_fork before getfl_nonblock=%s",
	       fl & O_NONBLOCK ? "yes" : "no");
	pid = fork();
	if (pid < 0)
		hp_die("fork: %s", strerror(errno));
	if (pid == 0) {
		int f = fcntl(s, F_GETFL);

		_exit(fcntl(s, F_SETFL, f | O_NONBLOCK) < 0 ? 1 : 0);
	}
	waitpid(pid, &st, 0);
	result("nonblock_fork child=%s", status_text(st));
	fl = fcntl(s, F_GETFL);
	result("nonblock_fork after getfl_nonblock=%s",
	       fl & O_NONBLOCK ? "yes" : "no");
	guard_arm(8);
	t0 = hp_now_ns();
	r = read(s, buf, sizeof(buf));
	e = errno;
	guard_disarm();
	info("read ms=%ld", hp_ms_since(t0));
	/* Generous bucket: EAGAIN comes at once natively; the bug waited for
	 * the whole deadline (seconds). */
	result("nonblock_fork read=%s fast=%s", outcome(r, e, buf),
	       hp_ms_since(t0) < 1000 ? "yes" : "no");
	close(s);
	return 0;
}

/* ------------------------------------------------------------------ */
/* [13] thread per connection                                           */
/* ------------------------------------------------------------------ */

struct th_slot {
	int fd;
	ssize_t r;
	int e;
};

static int th_started;

static void *th_reader(void *arg)
{
	struct th_slot *sl = arg;
	char buf[16];

	__atomic_fetch_add(&th_started, 1, __ATOMIC_ACQ_REL);
	sl->r = read(sl->fd, buf, sizeof(buf));
	sl->e = errno;
	return NULL;
}

static int threads_case(int argc, char **argv)
{
	struct rlimit rl;
	struct th_slot *sl;
	pthread_t *th;
	pthread_attr_t attr;
	int port, nt, nf, opened = 0, first_err = 0, eof = 0, data = 0,
	    errs = 0, err1 = 0, *files;
	uint64_t t0;

	if (argc < 5)
		hp_die("usage: harm_proc threads PORT NTHREADS NFILES");
	port = port_arg(argv[2]);
	nt = (int)hp_num(argv[3], 1, 5000, "NTHREADS");
	nf = (int)hp_num(argv[4], 1, 5000, "NFILES");
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		hp_die("getrlimit: %s", strerror(errno));
	if (rl.rlim_max < 1024) {
		result("threads SKIP hard RLIMIT_NOFILE %llu < 1024",
		       (unsigned long long)rl.rlim_max);
		return 0;
	}
	rl.rlim_cur = 1024;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		hp_die("setrlimit: %s", strerror(errno));
	sl = calloc((size_t)nt, sizeof(*sl));
	th = calloc((size_t)nt, sizeof(*th));
	files = calloc((size_t)nf, sizeof(*files));
	if (!sl || !th || !files)
		hp_die("out of memory");
	for (int i = 0; i < nt; i++)
		sl[i].fd = tcp_connect(port);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	for (int i = 0; i < nt; i++)
		if (pthread_create(&th[i], &attr, th_reader, &sl[i]))
			hp_die("pthread_create %d failed", i);
	t0 = hp_now_ns();
	while (__atomic_load_n(&th_started, __ATOMIC_ACQUIRE) < nt &&
	       hp_ms_since(t0) < 10000)
		hp_sleep_ms(10);
	hp_sleep_ms(1000);	/* all of them in read() by now */
	result("threads started=%d", __atomic_load_n(&th_started,
						      __ATOMIC_ACQUIRE));
	for (int i = 0; i < nf; i++) {
		files[i] = open("/dev/null", O_RDONLY);
		if (files[i] >= 0)
			opened++;
		else if (!first_err)
			first_err = errno;
	}
	result("threads opened=%d/%d first_error=%s", opened, nf,
	       first_err ? hp_errname(first_err) : "none");
	for (int i = 0; i < nf; i++)
		if (files[i] >= 0)
			close(files[i]);
	for (int i = 0; i < nt; i++)
		shutdown(sl[i].fd, SHUT_RDWR);
	for (int i = 0; i < nt; i++) {
		pthread_join(th[i], NULL);
		if (sl[i].r == 0)
			eof++;
		else if (sl[i].r > 0)
			data++;
		else if (errs++ == 0)
			err1 = sl[i].e;
		close(sl[i].fd);
	}
	result("threads reads eof=%d data=%d errors=%d first_error=%s", eof,
	       data, errs, err1 ? hp_errname(err1) : "none");
	return 0;
}

/* ------------------------------------------------------------------ */

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} cases[] = {
	{ "serve", serve },
	{ "vfork_read", vfork_read },
	{ "vfork_deadline", vfork_deadline },
	{ "sig_write", sig_write },
	{ "log_fd2", log_fd2 },
	{ "log_dup2", log_dup2 },
	{ "longjmp_leak", longjmp_leak },
	{ "cancel_leak", cancel_leak },
	{ "sigint", sigint_case },
	{ "dup_expiry", dup_expiry },
	{ "fork_expiry", fork_expiry },
	{ "fd0", fd0_case },
	{ "rlimit5", rlimit5 },
	{ "nonblock_fork", nonblock_fork },
	{ "threads", threads_case },
};

int main(int argc, char **argv)
{
	if (argc >= 2)
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			if (!strcmp(argv[1], cases[i].name))
				return cases[i].fn(argc, argv);
	fprintf(stderr, "usage: harm_proc CASE ARGS... (see the source)\n");
	return 2;
}
