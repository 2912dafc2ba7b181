/* overdue - programs that never wait where the shim can cut the wait: they
 * poll a non-blocking socket in a busy loop (call -> EAGAIN -> usleep(10
 * ms) -> call ...), with no poll/select/epoll at all
 * (tests/integration/test_overdue.c).
 *
 *   overdue recv PORT [--call C] [--request] [--sleep MS] [--want N]
 *                     [--max MS] [--block]
 *       Blocking connect to 127.0.0.1:PORT, then O_NONBLOCK (--block: the
 *       socket stays blocking, for the same script's blocking calls; only
 *       useful when every read either finds data or fails).  --request:
 *       send one small request first (the first byte deadline starts
 *       there).  --sleep: sleep MS before the first read (the program is
 *       in no socket call meanwhile).  Then read with C (read, recv,
 *       recvfrom, recvmsg, readv; default recv) until N bytes came (--want,
 *       default: never), end of file, an error other than EAGAIN, or --max
 *       ms (default 3000) since the connect started.
 *   overdue send [--call C] [--max MS]
 *       Listens on 127.0.0.1 (port 0, backlog 1) and never accepts, so the
 *       peer never reads; blocking connect to it, then O_NONBLOCK, and
 *       write 64 KiB at a time with C (write, send, sendto, sendmsg,
 *       writev; default send) until an error other than EAGAIN or --max.
 *   overdue connect PORT [--max MS]
 *       Non-blocking connect to 127.0.0.1:PORT (a server that never
 *       completes the handshake), then getsockopt(SO_ERROR) every 10 ms
 *       until it reports an error, the socket is connected (getpeername),
 *       or --max.
 *
 * Prints one line:
 *   RESULT <mode> end=<errno name|eof|data|max|connected> ms=<since the
 *   connect started> eagain=<calls that answered EAGAIN (connect: SO_ERROR
 *   polls)> bytes=<moved> data=<first bytes read, or -> next=<what one
 *   more call answers after an error end: errno name or bytes, else ->
 * Exit 0 when the line was printed, 2 on a setup error.  Loopback only.
 */
#include "helpers.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/uio.h>

static struct {
	const char *call;
	int request, block;
	long sleep_ms;
	long long want;
	long max_ms;
} opt = { .want = -1, .max_ms = 3000 };

static int connect_to(int port, int nonblock, int *rc)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	hp_loopback("127.0.0.1", port, &ss, &len);
	fd = socket(ss.ss_family, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0),
		    0);
	if (fd < 0)
		hp_die("socket: %s", strerror(errno));
	*rc = connect(fd, (struct sockaddr *)&ss, len) < 0 ? errno : 0;
	return fd;
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		hp_die("fcntl: %s", strerror(errno));
}

static ssize_t do_read(int fd, char *buf, size_t n)
{
	const char *c = opt.call ? opt.call : "recv";
	struct iovec iov = { buf, n };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct sockaddr_storage from;
	socklen_t fl = sizeof(from);

	if (!strcmp(c, "read"))
		return read(fd, buf, n);
	if (!strcmp(c, "recv"))
		return recv(fd, buf, n, 0);
	if (!strcmp(c, "recvfrom"))
		return recvfrom(fd, buf, n, 0, (struct sockaddr *)&from, &fl);
	if (!strcmp(c, "recvmsg"))
		return recvmsg(fd, &m, 0);
	if (!strcmp(c, "readv"))
		return readv(fd, &iov, 1);
	hp_die("unknown read call '%s'", c);
}

static ssize_t do_write(int fd, const char *buf, size_t n)
{
	const char *c = opt.call ? opt.call : "send";
	struct iovec iov = { (void *)buf, n };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (!strcmp(c, "write"))
		return write(fd, buf, n);
	if (!strcmp(c, "send"))
		return send(fd, buf, n, MSG_NOSIGNAL);
	if (!strcmp(c, "sendto"))
		return sendto(fd, buf, n, MSG_NOSIGNAL, NULL, 0);
	if (!strcmp(c, "sendmsg"))
		return sendmsg(fd, &m, MSG_NOSIGNAL);
	if (!strcmp(c, "writev"))
		return writev(fd, &iov, 1);
	hp_die("unknown write call '%s'", c);
}

/* What one more call answers: an errno name or a byte count. */
static const char *answer(ssize_t r, char *buf, size_t cap)
{
	if (r < 0)
		snprintf(buf, cap, "%s", hp_errname(errno));
	else
		snprintf(buf, cap, "%zd", r);
	return buf;
}

/* When the program woke from --sleep (ms from the start; -1: no sleep):
 * a late wake-up is the machine's, the call after it the shim's. */
static long woke_ms = -1;

/* The RESULT line; ms: when the loop ended, from the start. */
static void report(const char *mode, const char *end, long ms, long eagain,
		   long long bytes, const char *data, const char *next)
{
	hp_say("RESULT %s end=%s ms=%ld eagain=%ld bytes=%lld data=%s next=%s "
	       "woke=%ld\n",
	       mode, end, ms, eagain, bytes,
	       data && *data ? data : "-", next ? next : "-", woke_ms);
}

static int cmd_recv(int port)
{
	char buf[4096], data[64] = "", nb[32];
	const char *end = "max", *next = NULL;
	long long got = 0;
	long eagain = 0;
	uint64_t t0 = hp_now_ns();
	int rc, fd = connect_to(port, 0, &rc);

	if (rc)
		hp_die("connect: %s", hp_errname(rc));
	if (!opt.block)
		set_nonblock(fd);
	if (opt.request &&
	    hp_send_all(fd, "GET / HTTP/1.0\r\n\r\n", 18) < 0)
		hp_die("request: %s", hp_errname(errno));
	if (opt.sleep_ms) {
		hp_sleep_ms(opt.sleep_ms);
		woke_ms = hp_ms_since(t0);
	}
	while (hp_ms_since(t0) < opt.max_ms) {
		ssize_t r = do_read(fd, buf, sizeof(buf));

		if (r > 0) {
			size_t have = strlen(data), k = (size_t)r;

			if (k > sizeof(data) - 1 - have)
				k = sizeof(data) - 1 - have;
			memcpy(data + have, buf, k);
			data[have + k] = '\0';
			got += r;
			if (opt.want >= 0 && got >= opt.want) {
				end = "data";
				break;
			}
			continue;
		}
		if (r == 0) {
			end = "eof";
			break;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			eagain++;
			usleep(10000);
			continue;
		}
		end = hp_errname(errno);
		{
			long ms = hp_ms_since(t0);

			next = answer(do_read(fd, buf, sizeof(buf)), nb,
				      sizeof(nb));
			/* The end is reported when it happened, not after
			 * the extra call. */
			report("recv", end, ms, eagain, got, data, next);
		}
		close(fd);
		return 0;
	}
	report("recv", end, hp_ms_since(t0), eagain, got, data, next);
	close(fd);
	return 0;
}

static int cmd_send(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	static char chunk[65536];
	char nb[32];
	long long sent = 0;
	long eagain = 0;
	uint64_t t0;
	int lfd = socket(AF_INET, SOCK_STREAM, 0), fd, rc;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(lfd, 1) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &al) < 0)
		hp_die("listen: %s", strerror(errno));
	memset(chunk, 'x', sizeof(chunk));
	t0 = hp_now_ns();
	fd = connect_to(ntohs(a.sin_port), 0, &rc);
	if (rc)
		hp_die("connect: %s", hp_errname(rc));
	set_nonblock(fd);
	while (hp_ms_since(t0) < opt.max_ms) {
		ssize_t r = do_write(fd, chunk, sizeof(chunk));
		long ms;

		if (r >= 0) {
			sent += r;
			continue;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			eagain++;
			usleep(10000);
			continue;
		}
		ms = hp_ms_since(t0);
		{
			const char *end = hp_errname(errno);
			const char *next = answer(do_write(fd, chunk, 1), nb,
						  sizeof(nb));

			report("send", end, ms, eagain, sent, NULL, next);
		}
		return 0;
	}
	report("send", "max", hp_ms_since(t0), eagain, sent, NULL, NULL);
	return 0;
}

static int cmd_connect(int port)
{
	char buf[16], nb[32];
	uint64_t t0 = hp_now_ns();
	long polls = 0;
	int rc, fd = connect_to(port, 1, &rc);

	if (rc == 0) {
		report("connect", "connected", hp_ms_since(t0), 0, 0, NULL,
		       NULL);
		return 0;
	}
	if (rc != EINPROGRESS)
		hp_die("connect: %s", hp_errname(rc));
	while (hp_ms_since(t0) < opt.max_ms) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss), el = sizeof(int);
		int err = 0;
		long ms;

		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
			hp_die("getsockopt: %s", strerror(errno));
		polls++;
		if (err) {
			ms = hp_ms_since(t0);
			hp_say("RESULT connect end=%s ms=%ld eagain=%ld "
			       "bytes=0 data=- next=%s\n",
			       hp_errname(err), ms, polls,
			       answer(recv(fd, buf, sizeof(buf), 0), nb,
				      sizeof(nb)));
			return 0;
		}
		if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
			report("connect", "connected", hp_ms_since(t0), polls,
			       0, NULL, NULL);
			return 0;
		}
		usleep(10000);
	}
	report("connect", "max", hp_ms_since(t0), polls, 0, NULL, NULL);
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode;
	int port = 0, i = 2;

	if (argc < 2)
		hp_die("usage: overdue recv|send|connect [PORT] [options]");
	signal(SIGPIPE, SIG_IGN);
	mode = argv[1];
	if (strcmp(mode, "send")) {
		if (argc < 3)
			hp_die("%s: PORT missing", mode);
		port = (int)hp_num(argv[2], 1, 65535, "port");
		i = 3;
	}
	for (; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--request")) {
			opt.request = 1;
			continue;
		}
		if (!strcmp(a, "--block")) {
			opt.block = 1;
			continue;
		}
		if (i + 1 >= argc)
			hp_die("%s needs a value", a);
		if (!strcmp(a, "--call"))
			opt.call = argv[++i];
		else if (!strcmp(a, "--sleep"))
			opt.sleep_ms = (long)hp_num(argv[++i], 0, 60000, a);
		else if (!strcmp(a, "--want"))
			opt.want = hp_num(argv[++i], 0, 1 << 30, a);
		else if (!strcmp(a, "--max"))
			opt.max_ms = (long)hp_num(argv[++i], 1, 60000, a);
		else
			hp_die("unknown argument '%s'", a);
	}
	if (!strcmp(mode, "recv"))
		return cmd_recv(port);
	if (!strcmp(mode, "send"))
		return cmd_send();
	if (!strcmp(mode, "connect"))
		return cmd_connect(port);
	hp_die("unknown mode '%s'", mode);
}
