/* blind - the calls the shim used not to see: sendfile, splice, stdio on
 * an fdopen'd socket, TCP Fast Open, and the calls that never touch a
 * socket (tests/integration/test_blind.c).  One program, sub-commands;
 * each client prints one RESULT line, compared between a native and a
 * shimmed run where the question is "no harm".  Loopback only.
 *
 * Servers (print "PORT <n>", serve until killed or --lifetime S):
 *   blind serve MODE [--lifetime S] [--size N]
 *     sink    read every connection to its end, print "GOT <bytes> <ok|bad>"
 *             (ok: the bytes are the pattern stream of seed 7)
 *     noread  accept, never read (a client that never reads)
 *     silent  accept, read and drop what comes, never answer
 *     lines   send "one\ntwo\nthree\n" then a last line without newline,
 *             then close
 *     data    send N pattern bytes (--size), then close
 *
 * Clients:
 *   blind sendfile PORT --size N [--count C] [--offset K | --nooff]
 *                  [--nonblock] [--in bad|sock] [--loop] [--shut]
 *     a temp file of N pattern bytes; sendfile(sock, file, &off or NULL,
 *     C) once (--loop: until C moved or an error).  --shut: shutdown(WR)
 *     after, so a sink server can count.
 *   blind daemon-sendfile --size N [--lifetime S]
 *     inbound: listen, accept one client, sendfile N bytes to it in a
 *     loop; RESULT with the time from accept.
 *   blind splice-out PORT --size N [--nonblock-pipe] [--feed]
 *     N pattern bytes into a pipe (--feed: a thread keeps writing them,
 *     for N larger than the pipe), splice(pipe -> sock) until N or error.
 *   blind splice-in PORT --want N [--nonblock-pipe]
 *     splice(sock -> pipe), drain the pipe, until N bytes, EOF or error.
 *   blind fgets PORT [--mode M] [--request STR]
 *     fdopen(sock, M) (default "r+"), optional request (fputs+fflush),
 *     fgets until NULL: LINE per line, then RESULT with ferror/feof/errno.
 *   blind misc PORT
 *     copy_file_range, vmsplice, tee with the socket; sendfile from it.
 *
 * TCP Fast Open (needs root: a network namespace with tcp_fastopen=3):
 *   blind tfo --how sendto|connectopt --server echo|hold|backlog
 *             [--cookie] [--nonblock]
 *     in a new network namespace, a server of its own (not preloaded),
 *     optionally a first Fast Open connection to get a cookie, then
 *     "blind tfo-client" with LD_PRELOAD=$BLIND_PRELOAD (empty: native).
 *     Exit 77 with "SKIP ..." when namespaces are not allowed.
 *
 * RESULT lines: key=value words; ms= from the start of the measured call
 * (or connect).  Exit 0 when the line was printed, 2 on setup errors.
 */
#include "helpers.h"

#include <fcntl.h>
#include <net/if.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio_ext.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>

#define SEED 7

static const char *argval(int argc, char **argv, const char *key,
			  const char *dflt)
{
	for (int i = 0; i < argc - 1; i++)
		if (!strcmp(argv[i], key))
			return argv[i + 1];
	return dflt;
}

static int hasflag(int argc, char **argv, const char *key)
{
	for (int i = 0; i < argc; i++)
		if (!strcmp(argv[i], key))
			return 1;
	return 0;
}

static int connect_port(int port, int nonblock)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	hp_loopback("127.0.0.1", port, &ss, &len);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		hp_die("socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&ss, len) < 0)
		hp_die("connect: %s", strerror(errno));
	if (nonblock)
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

static int listen_any(int backlog, int rcvbuf)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	hp_loopback("127.0.0.1", 0, &ss, &len);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (rcvbuf)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, backlog) < 0)
		hp_die("listen: %s", strerror(errno));
	return fd;
}

/* A temp file of n pattern bytes, unlinked, open for reading. */
static int pattern_file(size_t n)
{
	char path[] = "/tmp/blind.XXXXXX", buf[65536];
	int fd = mkstemp(path);

	if (fd < 0)
		hp_die("mkstemp: %s", strerror(errno));
	unlink(path);
	for (size_t off = 0; off < n;) {
		size_t k = n - off < sizeof(buf) ? n - off : sizeof(buf);

		hp_pattern_fill(SEED, off, buf, k);
		if (write(fd, buf, k) != (ssize_t)k)
			hp_die("write: %s", strerror(errno));
		off += k;
	}
	lseek(fd, 0, SEEK_SET);
	return fd;
}

static const char *errs(ssize_t r)
{
	return r < 0 ? hp_errname(errno) : "0";
}

/* ------------------------------------------------------------------ */
/* Servers                                                             */
/* ------------------------------------------------------------------ */

static void *sink_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[65536];
	uint64_t got = 0;
	int ok = 1;

	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));

		if (r <= 0)
			break;
		if (ok && hp_pattern_check(SEED, got, buf, (size_t)r) >= 0)
			ok = 0;
		got += (uint64_t)r;
	}
	hp_say("GOT %llu %s\n", (unsigned long long)got, ok ? "ok" : "bad");
	close(fd);
	return 0;
}

static int cmd_serve(int argc, char **argv)
{
	const char *mode = argc > 0 ? argv[0] : "";
	long life = atol(argval(argc, argv, "--lifetime", "60"));
	size_t size = (size_t)atoll(argval(argc, argv, "--size", "65536"));
	int noread = !strcmp(mode, "noread");
	int lfd = listen_any(16, noread ? 4096 : 0);

	alarm((unsigned)life);
	hp_say("PORT %d\n", hp_bound_port(lfd));
	for (;;) {
		int fd = accept(lfd, 0, 0);
		pthread_t t;

		if (fd < 0)
			continue;
		if (!strcmp(mode, "sink")) {
			pthread_create(&t, 0, sink_conn, (void *)(intptr_t)fd);
			pthread_detach(t);
		} else if (!strcmp(mode, "lines")) {
			const char *s = "one\ntwo\nthree\nlast-without-newline";

			hp_send_all(fd, s, strlen(s));
			close(fd);
		} else if (!strcmp(mode, "data")) {
			char buf[65536];

			for (size_t off = 0; off < size;) {
				size_t k = size - off < sizeof(buf) ? size - off
								    : sizeof(buf);
				hp_pattern_fill(SEED, off, buf, k);
				if (hp_send_all(fd, buf, k) < 0)
					break;
				off += k;
			}
			close(fd);
		} else if (!strcmp(mode, "silent")) {
			if (fork() == 0) {
				char buf[4096];

				while (read(fd, buf, sizeof(buf)) > 0)
					;
				pause();
				_exit(0);
			}
		} else if (!noread) {
			hp_die("unknown serve mode '%s'", mode);
		}
		/* noread and silent: the parent keeps fd open, unread. */
	}
}

/* ------------------------------------------------------------------ */
/* sendfile                                                            */
/* ------------------------------------------------------------------ */

static int cmd_sendfile(int argc, char **argv)
{
	int port = (int)hp_num(argv[0], 1, 65535, "port");
	size_t size = (size_t)atoll(argval(argc, argv, "--size", "65536"));
	const char *cs = argval(argc, argv, "--count", 0);
	size_t count = cs ? (size_t)strtoull(cs, 0, 0) : size;
	const char *os = argval(argc, argv, "--offset", "0");
	const char *in = argval(argc, argv, "--in", "file");
	int nooff = hasflag(argc, argv, "--nooff");
	int loop = hasflag(argc, argv, "--loop");
	int ffd = pattern_file(size), infd = ffd;
	uint64_t t0 = hp_now_ns(); /* the connect starts the request */
	int fd = connect_port(port, hasflag(argc, argv, "--nonblock"));
	off_t off = (off_t)atoll(os);
	size_t total = 0;
	ssize_t r;
	int calls = 0;

	if (!strcmp(in, "bad"))
		infd = 999;
	else if (!strcmp(in, "sock"))
		infd = fd;
	if (nooff && off)
		lseek(ffd, off, SEEK_SET);
	do {
		r = sendfile(fd, infd, nooff ? NULL : &off, count - total);
		calls++;
		if (r > 0)
			total += (size_t)r;
	} while (loop && r > 0 && total < count);
	{
		int e = errno;
		long ms = hp_ms_since(t0);
		off_t pos = lseek(ffd, 0, SEEK_CUR);
		ssize_t again;

		errno = e;
		hp_say("RESULT sendfile r=%zd err=%s total=%zu off=%lld pos=%lld "
		       "calls=%d ms=%ld",
		       r, errs(r), total, nooff ? -1LL : (long long)off,
		       (long long)pos, calls, ms);
		/* One more call after an error: what does it say? */
		if (r < 0 && loop) {
			again = sendfile(fd, ffd, NULL, 1);
			hp_say(" next=%s", again < 0 ? hp_errname(errno) : "ok");
		}
		hp_say("\n");
	}
	if (hasflag(argc, argv, "--shut"))
		shutdown(fd, SHUT_WR);
	hp_sleep_ms(50);
	return 0;
}

static int cmd_daemon_sendfile(int argc, char **argv)
{
	size_t size = (size_t)atoll(argval(argc, argv, "--size", "8388608"));
	long life = atol(argval(argc, argv, "--lifetime", "30"));
	int lfd = listen_any(4, 0), fd, ffd = pattern_file(size);
	int sndbuf = 16384;
	size_t total = 0;
	uint64_t t0;
	ssize_t r;

	alarm((unsigned)life);
	hp_say("PORT %d\n", hp_bound_port(lfd));
	fd = accept(lfd, 0, 0);
	if (fd < 0)
		hp_die("accept: %s", strerror(errno));
	t0 = hp_now_ns();
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	do {
		r = sendfile(fd, ffd, NULL, size - total);
		if (r > 0)
			total += (size_t)r;
	} while (r > 0 && total < size);
	hp_say("RESULT daemon-sendfile r=%zd err=%s total=%zu ms=%ld\n", r,
	       errs(r), total, hp_ms_since(t0));
	return 0;
}

/* ------------------------------------------------------------------ */
/* splice                                                              */
/* ------------------------------------------------------------------ */

struct feeder {
	int wfd;
	size_t size;
};

static void *feed_pipe(void *arg)
{
	struct feeder *f = arg;
	char buf[16384];

	for (size_t off = 0; off < f->size;) {
		size_t k = f->size - off < sizeof(buf) ? f->size - off
						       : sizeof(buf);
		ssize_t w;

		hp_pattern_fill(SEED, off, buf, k);
		w = write(f->wfd, buf, k);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	return 0;
}

static int cmd_splice_out(int argc, char **argv)
{
	int port = (int)hp_num(argv[0], 1, 65535, "port");
	size_t size = (size_t)atoll(argval(argc, argv, "--size", "4096"));
	unsigned fl = hasflag(argc, argv, "--nonblock-pipe") ? SPLICE_F_NONBLOCK
							     : 0;
	uint64_t t0 = hp_now_ns(); /* the connect starts the request */
	int fd = connect_port(port, 0), p[2];
	struct feeder f;
	pthread_t t;
	size_t total = 0;
	ssize_t r = 0;
	int calls = 0;

	if (pipe(p) < 0)
		hp_die("pipe: %s", strerror(errno));
	f.wfd = p[1];
	f.size = size;
	if (hasflag(argc, argv, "--feed")) {
		pthread_create(&t, 0, feed_pipe, &f);
	} else {
		feed_pipe(&f);
	}
	while (total < size) {
		r = splice(p[0], NULL, fd, NULL, size - total, fl);
		calls++;
		if (r <= 0)
			break;
		total += (size_t)r;
	}
	hp_say("RESULT splice-out r=%zd err=%s total=%zu calls=%s ms=%ld\n",
	       r, errs(r), total, calls == 1 ? "1" : "many", hp_ms_since(t0));
	shutdown(fd, SHUT_WR);
	hp_sleep_ms(50);
	_exit(0);
}

static int cmd_splice_in(int argc, char **argv)
{
	int port = (int)hp_num(argv[0], 1, 65535, "port");
	size_t want = (size_t)atoll(argval(argc, argv, "--want", "4096"));
	unsigned fl = hasflag(argc, argv, "--nonblock-pipe") ? SPLICE_F_NONBLOCK
							     : 0;
	uint64_t t0 = hp_now_ns(); /* the connect starts the request */
	int fd = connect_port(port, 0), p[2], ok = 1;
	size_t total = 0;
	ssize_t r = 0;
	char buf[65536];

	if (pipe(p) < 0)
		hp_die("pipe: %s", strerror(errno));
	while (total < want) {
		r = splice(fd, NULL, p[1], NULL, 65536, fl);
		if (r <= 0)
			break;
		for (ssize_t left = r; left > 0;) {
			ssize_t k = read(p[0], buf, (size_t)left < sizeof(buf)
							    ? (size_t)left
							    : sizeof(buf));
			if (k <= 0)
				hp_die("pipe read: %s", strerror(errno));
			if (hp_pattern_check(SEED, total, buf, (size_t)k) >= 0)
				ok = 0;
			total += (size_t)k;
			left -= k;
		}
	}
	hp_say("RESULT splice-in r=%zd err=%s total=%zu data=%s ms=%ld\n", r,
	       errs(r), total, ok ? "ok" : "bad", hp_ms_since(t0));
	return 0;
}

/* ------------------------------------------------------------------ */
/* stdio on an fdopen'd socket                                         */
/* ------------------------------------------------------------------ */

static int cmd_fgets(int argc, char **argv)
{
	int port = (int)hp_num(argv[0], 1, 65535, "port");
	const char *mode = argval(argc, argv, "--mode", "r+");
	const char *req = argval(argc, argv, "--request", 0);
	uint64_t t0 = hp_now_ns();
	int fd = connect_port(port, 0), lines = 0, e;
	FILE *f = fdopen(fd, mode);
	char buf[256];
	long pos;
	int pos_err, rc;

	if (!f)
		hp_die("fdopen: %s", strerror(errno));
	if (req) {
		size_t n;
		char *r = hp_unescape(req, &n);

		fwrite(r, 1, n, f);
		fflush(f);
		free(r);
	}
	errno = 0;
	while (fgets(buf, sizeof(buf), f)) {
		buf[strcspn(buf, "\n")] = 0;
		hp_say("LINE %s\n", buf);
		lines++;
	}
	e = errno;
	hp_say("RESULT fgets lines=%d ferror=%d feof=%d err=%s ms=%ld "
	       "fileno=%s bufsize=%zu",
	       lines, ferror(f) != 0, feof(f) != 0,
	       ferror(f) ? hp_errname(e) : "0", hp_ms_since(t0),
	       fileno(f) == fd ? "same" : "diff", __fbufsize(f));
	errno = 0;
	pos = ftell(f);
	pos_err = errno;
	rc = fclose(f);
	e = errno;
	hp_say(" ftell=%ld/%s fclose=%d/%s closed=%s\n", pos,
	       hp_errname(pos_err), rc, rc ? hp_errname(e) : "0",
	       fcntl(fd, F_GETFD) < 0 ? "yes" : "no");
	return 0;
}

/* ------------------------------------------------------------------ */
/* Calls that never touch a socket                                     */
/* ------------------------------------------------------------------ */

static int cmd_misc(int argc, char **argv)
{
	int port = (int)hp_num(argv[0], 1, 65535, "port");
	int fd = connect_port(port, 0), ffd = pattern_file(16), p[2];
	struct iovec v = { "x", 1 };
	ssize_t a, b, c, d, e;
	int ea, eb, ec, ed, ee;

	(void)argc;
	if (pipe(p) < 0)
		hp_die("pipe: %s", strerror(errno));
	if (write(p[1], "y", 1) != 1)
		hp_die("pipe write: %s", strerror(errno));
	errno = 0;
	a = copy_file_range(ffd, NULL, fd, NULL, 4, 0);
	ea = errno;
	errno = 0;
	b = copy_file_range(fd, NULL, ffd, NULL, 4, 0);
	eb = errno;
	errno = 0;
	c = vmsplice(fd, &v, 1, 0);
	ec = errno;
	errno = 0;
	d = tee(p[0], fd, 1, 0);
	ed = errno;
	errno = 0;
	e = sendfile(ffd, fd, NULL, 4);
	ee = errno;
	hp_say("RESULT misc cfr_to=%zd/%s cfr_from=%zd/%s vmsplice=%zd/%s "
	       "tee=%zd/%s sendfile_from=%zd/%s\n",
	       a, hp_errname(ea), b, hp_errname(eb), c, hp_errname(ec), d,
	       hp_errname(ed), e, hp_errname(ee));
	return 0;
}

/* ------------------------------------------------------------------ */
/* TCP Fast Open                                                       */
/* ------------------------------------------------------------------ */

static void lo_up(void)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM, 0);

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		hp_die("SIOCGIFFLAGS: %s", strerror(errno));
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		hp_die("SIOCSIFFLAGS: %s", strerror(errno));
	close(s);
}

static void tfo_serve(int lfd, const char *mode)
{
	if (!strcmp(mode, "backlog")) {
		pause();
		_exit(0);
	}
	for (;;) {
		int fd = accept(lfd, 0, 0);
		char buf[4096];
		ssize_t r;

		if (fd < 0)
			continue;
		if (fork() == 0) {
			while ((r = read(fd, buf, sizeof(buf))) > 0)
				if (!strcmp(mode, "echo"))
					hp_send_all(fd, buf, (size_t)r);
			_exit(0);
		}
		close(fd);
	}
}

/* A Fast Open connection from the unshimmed orchestrator: the kernel
 * caches the server's cookie for the next ones. */
static void tfo_prime(int port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	hp_loopback("127.0.0.1", port, &ss, &len);
	if (sendto(fd, "p", 1, MSG_FASTOPEN, (struct sockaddr *)&ss, len) < 0)
		hp_die("prime: %s", strerror(errno));
	/* The SYN-ACK brought the cookie: the handshake is done. */
	close(fd);
}

static int cmd_tfo(int argc, char **argv)
{
	const char *server = argval(argc, argv, "--server", "echo");
	const char *pre = getenv("BLIND_PRELOAD");
	int backlog = !strcmp(server, "backlog");
	int qlen = 16, lfd, port, st = 0;
	char ports[16], *cargv[16];
	pid_t spid, cpid;
	int n = 0, fd;

	if (unshare(CLONE_NEWNET) < 0) {
		printf("SKIP network namespace: %s (needs root)\n",
		       strerror(errno));
		return 77;
	}
	lo_up();
	fd = open("/proc/sys/net/ipv4/tcp_fastopen", O_WRONLY);
	if (fd < 0 || write(fd, "3", 1) != 1) {
		printf("SKIP net.ipv4.tcp_fastopen: %s\n", strerror(errno));
		return 77;
	}
	close(fd);
	lfd = listen_any(backlog ? 0 : 16, 0);
	if (setsockopt(lfd, IPPROTO_TCP, TCP_FASTOPEN, &qlen, sizeof(qlen)) < 0)
		hp_die("TCP_FASTOPEN: %s", strerror(errno));
	port = hp_bound_port(lfd);
	spid = fork();
	if (spid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		tfo_serve(lfd, server);
		_exit(0);
	}
	if (hasflag(argc, argv, "--cookie"))
		tfo_prime(port);
	snprintf(ports, sizeof(ports), "%d", port);
	cargv[n++] = "/proc/self/exe";
	cargv[n++] = "tfo-client";
	cargv[n++] = ports;
	for (int i = 0; i < argc && n < 14; i++)
		cargv[n++] = argv[i];
	cargv[n] = 0;
	fflush(stdout);
	cpid = fork();
	if (cpid == 0) {
		if (pre && *pre)
			setenv("LD_PRELOAD", pre, 1);
		execv("/proc/self/exe", cargv);
		_exit(127);
	}
	waitpid(cpid, &st, 0);
	kill(spid, SIGKILL);
	waitpid(spid, 0, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 2;
}

static int cmd_tfo_client(int argc, char **argv)
{
	int port = (int)hp_num(argv[0], 1, 65535, "port");
	const char *how = argval(argc, argv, "--how", "sendto");
	int nonblock = hasflag(argc, argv, "--nonblock");
	const char *req = "hello fast open";
	struct sockaddr_storage ss;
	struct tcp_info ti;
	socklen_t len, tl = sizeof(ti);
	int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
	int one = 1, cr = 0, soerr = 0;
	uint64_t t0;
	ssize_t r, g = -2;
	char buf[64];
	const char *ge = "-";

	hp_loopback("127.0.0.1", port, &ss, &len);
	t0 = hp_now_ns();
	if (!strcmp(how, "connectopt")) {
		if (setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one,
			       sizeof(one)) < 0)
			hp_die("TCP_FASTOPEN_CONNECT: %s", strerror(errno));
		cr = connect(fd, (struct sockaddr *)&ss, len) < 0 ? errno : 0;
		r = cr && cr != EINPROGRESS ? -1 : write(fd, req, strlen(req));
	} else {
		r = sendto(fd, req, strlen(req), MSG_FASTOPEN,
			   (struct sockaddr *)&ss, len);
	}
	{
		int e = errno;
		long ms = hp_ms_since(t0);

		memset(&ti, 0, sizeof(ti));
		getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl);
		errno = e;
		hp_say("RESULT tfo connect=%s send=%zd err=%s send_ms=%ld", cr ?
		       hp_errname(cr) : "0", r, errs(r), ms);
	}
	if (nonblock && (r >= 0 || errno == EINPROGRESS || errno == EAGAIN)) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		socklen_t el = sizeof(soerr);

		poll(&p, 1, 5000);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &el);
		hp_say(" so_error=%s poll_ms=%ld", hp_errname(soerr),
		       hp_ms_since(t0));
	} else if (r > 0) {
		memset(buf, 0, sizeof(buf));
		g = recv(fd, buf, strlen(req), MSG_WAITALL);
		ge = g < 0 ? hp_errname(errno)
			   : strcmp(buf, req) ? "mismatch" : "echoed";
		hp_say(" reply=%s reply_ms=%ld", ge, hp_ms_since(t0));
	}
	hp_say(" syn_data=%d\n", (ti.tcpi_options & TCPI_OPT_SYN_DATA) != 0);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(cmd, "serve"))
		return cmd_serve(argc - 2, argv + 2);
	if (!strcmp(cmd, "daemon-sendfile"))
		return cmd_daemon_sendfile(argc - 2, argv + 2);
	if (!strcmp(cmd, "tfo"))
		return cmd_tfo(argc - 2, argv + 2);
	if (argc < 3)
		hp_die("usage: blind serve|sendfile|daemon-sendfile|splice-out|"
		       "splice-in|fgets|misc|tfo|tfo-client ... (see the source)");
	if (!strcmp(cmd, "sendfile"))
		return cmd_sendfile(argc - 2, argv + 2);
	if (!strcmp(cmd, "splice-out"))
		return cmd_splice_out(argc - 2, argv + 2);
	if (!strcmp(cmd, "splice-in"))
		return cmd_splice_in(argc - 2, argv + 2);
	if (!strcmp(cmd, "fgets"))
		return cmd_fgets(argc - 2, argv + 2);
	if (!strcmp(cmd, "misc"))
		return cmd_misc(argc - 2, argv + 2);
	if (!strcmp(cmd, "tfo-client"))
		return cmd_tfo_client(argc - 2, argv + 2);
	hp_die("unknown command '%s'", cmd);
}
