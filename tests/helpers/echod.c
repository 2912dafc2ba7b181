/* echod - a small line-based echo daemon, written the way legacy daemons
 * are: an accept loop, one thread (or, with --fork, one child process) per
 * client, blocking read() and send().  The integration tests run it under the
 * shim to check inbound deadlines, and without the shim as the control.
 *
 *   echod [--addr A] [--port N] [--after MS] [--fork] [--lifetime SEC]
 *
 * Binds A (default 127.0.0.1; loopback only) on port N (default 0: the
 * kernel picks), listens, prints "PORT <n>" on stdout and serves until
 * killed or until --lifetime seconds have passed.  --after MS waits MS
 * milliseconds before binding: a server that starts late on a port the
 * test reserved (connect retries).
 *
 * Each client is served line by line: the daemon reads until it holds a
 * complete line ('\n'), then sends that line back.  A client
 * that dribbles bytes without ever finishing a line never gets an answer,
 * so the daemon only ever reads from it (one inbound "request" that never
 * ends).
 *
 * Output, one line per event, flushed at once:
 *   PORT <n>
 *   ACCEPT <id> peer=<client port>
 *   CLIENT <id> END <how> after_ms=<ms since accept> lines=<k> bytes=<b>
 *          peer=<client port>
 * where <how> is "EOF" (the client closed), or the errno name of the
 * failing read()/write() ("ETIMEDOUT" when a deadline cut the client off,
 * "ECONNRESET", ...).
 */
#include "helpers.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>

static struct {
	const char *addr;
	int port;
	long after;
	int fork;
	long lifetime;
} opt = {
	.addr = "127.0.0.1",
};

struct client {
	int fd;
	unsigned id;
	int peer;
	uint64_t t_accept;
};

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

/* One line on stdout, whole: a single write per line, so that lines of
 * threads and child processes sharing the pipe never interleave. */
__attribute__((format(printf, 1, 2)))
static void say(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = (int)sizeof(line) - 1;
	pthread_mutex_lock(&out_lock);
	if (write(1, line, (size_t)n) < 0) {
		/* the test stopped listening: nothing to do */
	}
	pthread_mutex_unlock(&out_lock);
}

/* Serve one client until EOF or an error; report how it ended. */
static void serve(struct client *c)
{
	char buf[4096];
	size_t len = 0;
	unsigned long long bytes = 0;
	unsigned lines = 0;
	const char *how = "EOF";

	for (;;) {
		char *nl;
		ssize_t r;

		if (len == sizeof(buf))
			len = 0;	/* an endless line: drop what we have */
		r = read(c->fd, buf + len, sizeof(buf) - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r < 0)
				how = hp_errname(errno);
			break;
		}
		bytes += (unsigned long long)r;
		len += (size_t)r;
		while ((nl = memchr(buf, '\n', len))) {
			size_t l = (size_t)(nl - buf) + 1;

			if (hp_send_all(c->fd, buf, l) < 0) {
				how = hp_errname(errno);
				goto out;
			}
			lines++;
			memmove(buf, buf + l, len - l);
			len -= l;
		}
	}
out:
	say("CLIENT %u END %s after_ms=%ld lines=%u bytes=%llu peer=%d\n",
	    c->id, how, hp_ms_since(c->t_accept), lines, bytes, c->peer);
	close(c->fd);
	free(c);
}

static void *client_thread(void *arg)
{
	serve(arg);
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: echod [--addr A] [--port N] [--after MS] "
			"[--fork] [--lifetime SEC]\n");
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--fork")) {
			opt.fork = 1;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--addr"))
			opt.addr = v;
		else if (!strcmp(a, "--port"))
			opt.port = (int)hp_num(v, 0, 65535, "--port");
		else if (!strcmp(a, "--after"))
			opt.after = (long)hp_num(v, 0, 60000, "--after");
		else if (!strcmp(a, "--lifetime"))
			opt.lifetime = (long)hp_num(v, 0, 86400, "--lifetime");
		else
			usage();
	}
}

static int peer_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len;
	pthread_attr_t attr;
	unsigned next_id = 0;
	int lfd, one = 1;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	if (opt.fork)
		signal(SIGCHLD, SIG_IGN);	/* children reap themselves */
	if (opt.lifetime)
		alarm((unsigned)opt.lifetime);	/* default action: exit */
	if (opt.after)
		hp_sleep_ms(opt.after);

	hp_loopback(opt.addr, opt.port, &ss, &len);
	lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		hp_die("socket: %s", strerror(errno));
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&ss, len) < 0)
		hp_die("bind %s port %d: %s", opt.addr, opt.port,
		       strerror(errno));
	if (listen(lfd, 128) < 0)
		hp_die("listen: %s", strerror(errno));
	say("PORT %d\n", hp_bound_port(lfd));

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (;;) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		int fd = accept4(lfd, (struct sockaddr *)&peer, &plen,
				 SOCK_CLOEXEC);
		struct client *c;
		pthread_t t;
		pid_t pid;

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOMEM || errno == ENOBUFS)
				hp_sleep_ms(10);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c)
			hp_die("out of memory");
		c->fd = fd;
		c->id = ++next_id;
		c->peer = peer_port(&peer);
		c->t_accept = hp_now_ns();
		say("ACCEPT %u peer=%d\n", c->id, c->peer);
		if (!opt.fork) {
			if (pthread_create(&t, &attr, client_thread, c) != 0) {
				close(fd);
				free(c);
			}
			continue;
		}
		pid = fork();
		if (pid == 0) {
			close(lfd);
			alarm(0);
			if (opt.lifetime)
				alarm((unsigned)opt.lifetime);
			serve(c);
			_exit(0);
		}
		close(fd);
		free(c);
	}
}
