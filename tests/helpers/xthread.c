/* xthread - a deadline armed in one thread while another thread already
 * waits: the Java NIO / netty shape (a selector thread in epoll_wait, an
 * executor thread writing the request).
 *
 *   xthread MODE HOST PORT [--delay MS] [--wait MS]
 *
 * The main thread connects to HOST:PORT (blocking), then starts a writer
 * thread and waits in its own poll/select/epoll:
 *
 *   epoll    epoll_wait on a set holding the socket (EPOLLIN), timeout
 *            --wait (-1, the default: none)
 *   pwait2   the same with epoll_pwait2
 *   poll     poll on the socket (POLLIN), --wait likewise
 *   select   select on the socket (read set), NULL timeout unless --wait
 *   quiet    poll on a pipe nobody writes, for --wait ms (default 800):
 *            the socket is not in the wait, so its expiry must not end it
 *
 * The writer sleeps --delay ms (default 100), then writes one line, which
 * starts the request and first-byte deadlines, and prints
 *   WROTE ms=<since start>
 * When the wait returns the main thread prints
 *   WAIT mode=<m> r=<n> revents=<hex> ms=<since the write> errno=<name>
 * then (except quiet) reads the socket once (without blocking if the wait
 * timed out):
 *   READ r=<n> errno=<name>
 * In quiet mode the writer itself then reads (blocking) and prints READ;
 * the main thread prints its WAIT line after the pipe wait ends.
 * Exit 0; 2 on a usage or set-up error.
 */
#include "helpers.h"

#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/select.h>

static int sock = -1, quiet_mode;
static long delay_ms = 100;
static uint64_t t_start, t_write;

static void *writer(void *arg)
{
	static const char line[] = "ping\n";
	char buf[64];
	ssize_t r;

	(void)arg;
	hp_sleep_ms(delay_ms);
	t_write = hp_now_ns();
	if (write(sock, line, sizeof(line) - 1) != (ssize_t)sizeof(line) - 1)
		hp_die("write: %s", strerror(errno));
	hp_say("WROTE ms=%ld\n", hp_ms_since(t_start));
	if (quiet_mode) {
		r = read(sock, buf, sizeof(buf));
		hp_say("READ r=%zd errno=%s\n", r, r < 0 ? hp_errname(errno) : "0");
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len;
	const char *mode;
	long wait_ms = -2;
	pthread_t th;
	int r = 0, e = 0;
	unsigned rev = 0;
	char buf[64];

	if (argc < 4)
		hp_die("usage: xthread MODE HOST PORT [--delay MS] [--wait MS]");
	mode = argv[1];
	for (int i = 4; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--delay"))
			delay_ms = hp_num(argv[i + 1], 0, 60000, "--delay");
		else if (!strcmp(argv[i], "--wait"))
			wait_ms = hp_num(argv[i + 1], -1, 60000, "--wait");
		else
			hp_die("unknown option %s", argv[i]);
	}
	quiet_mode = !strcmp(mode, "quiet");
	if (wait_ms == -2)
		wait_ms = quiet_mode ? 800 : -1;
	hp_loopback(argv[2], (int)hp_num(argv[3], 1, 65535, "port"), &ss, &len);
	sock = socket(ss.ss_family, SOCK_STREAM, 0);
	if (sock < 0 || connect(sock, (struct sockaddr *)&ss, len) < 0)
		hp_die("connect: %s", strerror(errno));
	t_start = hp_now_ns();
	if (pthread_create(&th, NULL, writer, NULL))
		hp_die("pthread_create failed");

	if (!strcmp(mode, "epoll") || !strcmp(mode, "pwait2")) {
		struct epoll_event ev = { .events = EPOLLIN }, out[4];
		int ep = epoll_create1(EPOLL_CLOEXEC);

		ev.data.fd = sock;
		if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, sock, &ev) < 0)
			hp_die("epoll: %s", strerror(errno));
		if (!strcmp(mode, "epoll")) {
			r = epoll_wait(ep, out, 4, (int)wait_ms);
		} else {
			struct timespec ts = { wait_ms / 1000,
					       (wait_ms % 1000) * 1000000 };
			r = epoll_pwait2(ep, out, 4, wait_ms < 0 ? NULL : &ts,
					 NULL);
		}
		e = errno;
		if (r > 0)
			rev = out[0].events;
	} else if (!strcmp(mode, "poll")) {
		struct pollfd p = { .fd = sock, .events = POLLIN };

		r = poll(&p, 1, (int)wait_ms);
		e = errno;
		rev = (unsigned)(uint16_t)p.revents;
	} else if (!strcmp(mode, "select")) {
		fd_set rs;
		struct timeval tv = { wait_ms / 1000, (wait_ms % 1000) * 1000 };

		FD_ZERO(&rs);
		FD_SET(sock, &rs);
		r = select(sock + 1, &rs, NULL, NULL, wait_ms < 0 ? NULL : &tv);
		e = errno;
		rev = r > 0 && FD_ISSET(sock, &rs);
	} else if (quiet_mode) {
		int pfd[2];
		struct pollfd p;

		if (pipe(pfd) < 0)
			hp_die("pipe: %s", strerror(errno));
		p.fd = pfd[0];
		p.events = POLLIN;
		r = poll(&p, 1, (int)wait_ms);
		e = errno;
		rev = (unsigned)(uint16_t)p.revents;
	} else {
		hp_die("unknown mode %s", mode);
	}
	hp_say("WAIT mode=%s r=%d revents=0x%x ms=%ld errno=%s\n", mode, r,
	       rev, t_write ? hp_ms_since(t_write) : -1L,
	       r < 0 ? hp_errname(e) : "0");
	if (!quiet_mode) {
		/* Not ready (the wait timed out): do not block on it. */
		ssize_t n = recv(sock, buf, sizeof(buf), r > 0 ? 0 : MSG_DONTWAIT);

		hp_say("READ r=%zd errno=%s\n", n, n < 0 ? hp_errname(errno) : "0");
	}
	pthread_join(th, NULL);
	return 0;
}
