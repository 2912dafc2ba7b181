/* faultsrv - the servers tests/integration/test_faults.c talks to.
 *
 *   faultsrv MODE [--addr A] [--bytes N] [--seed S] [--lifetime SEC]
 *
 * Binds A (default 127.0.0.1; loopback only) on a port the kernel picks,
 * prints "PORT <n>", and serves until killed or until --lifetime seconds
 * have passed.  One thread per accepted connection.  Never runs under the
 * shim: it is the honest peer that tells what really crossed the wire.
 *
 * Modes:
 *   echo    echo everything back; close after the peer's FIN
 *   source  send --bytes bytes of the --seed stream (helpers.h), shut
 *           down the sending side, wait up to 2 s for the peer's end
 *   sink    read and verify the --seed stream; at the peer's FIN answer
 *           "SINK OK <n>" or "SINK BAD <offset>", close
 *   count   read and discard everything, never answer
 *
 * Every connection ends with one line, flushed at once:
 *   END conn=<id> how=<fin|rst|err|done> bytes=<received> sent=<sent>
 *       accept_ns=<t> first_ns=<t> end_ns=<t>
 * where the _ns values are CLOCK_MONOTONIC (the clock the clients and the
 * shim use, shared by all processes), first_ns is when the first byte
 * came in (0: none) and end_ns when the end was seen.  <how>: "fin" the
 * peer's orderly EOF, "rst" ECONNRESET/EPIPE, "err" another error, "done"
 * none of these (source: the peer stayed silent for 2 s after the
 * stream).
 */
#include "helpers.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>

static struct {
	const char *mode;
	const char *addr;
	long long bytes;
	uint64_t seed;
	long lifetime;
} opt = {
	.addr = "127.0.0.1",
	.bytes = 1 << 20,
	.seed = 1,
};

struct conn {
	int fd;
	unsigned id;
	uint64_t t_accept, t_first, t_end;
	unsigned long long got, sent;
	const char *end;
};

static void note(struct conn *c, const char *how)
{
	if (!c->end) {
		c->end = how;
		c->t_end = hp_now_ns();
	}
}

static void note_errno(struct conn *c, int e)
{
	note(c, e == ECONNRESET || e == EPIPE ? "rst" : "err");
}

static ssize_t c_read(struct conn *c, void *buf, size_t n)
{
	ssize_t r;

	do
		r = read(c->fd, buf, n);
	while (r < 0 && errno == EINTR);
	if (r > 0) {
		if (!c->got)
			c->t_first = hp_now_ns();
		c->got += (unsigned long long)r;
	} else if (r == 0) {
		note(c, "fin");
	} else {
		note_errno(c, errno);
	}
	return r;
}

static int c_write(struct conn *c, const void *buf, size_t n)
{
	if (hp_send_all(c->fd, buf, n) < 0) {
		note_errno(c, errno);
		return -1;
	}
	c->sent += n;
	return 0;
}

static void serve_echo(struct conn *c)
{
	char *buf = malloc(65536);
	ssize_t r;

	if (!buf)
		return;
	while ((r = c_read(c, buf, 65536)) > 0)
		if (c_write(c, buf, (size_t)r) < 0)
			break;
	free(buf);
}

static void serve_source(struct conn *c)
{
	char *buf = malloc(65536);
	unsigned long long off = 0, total = (unsigned long long)opt.bytes;

	if (!buf)
		return;
	while (off < total) {
		size_t k = total - off < 65536 ? (size_t)(total - off) : 65536;

		hp_pattern_fill(opt.seed, off, buf, k);
		if (c_write(c, buf, k) < 0)
			break;
		off += k;
	}
	free(buf);
	if (!c->end) {
		/* Orderly end of the stream; then wait (up to 2 s) for the
		 * peer's own end, so that a reset is still seen. */
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		char scratch[4096];

		shutdown(c->fd, SHUT_WR);
		while (poll(&p, 1, 2000) > 0 &&
		       c_read(c, scratch, sizeof(scratch)) > 0)
			;
	}
}

static void serve_sink(struct conn *c)
{
	char *buf = malloc(65536);
	unsigned long long off = 0;
	long long bad = -1;
	char msg[64];
	ssize_t r;
	int n;

	if (!buf)
		return;
	while ((r = c_read(c, buf, 65536)) > 0) {
		if (bad < 0) {
			long long at = hp_pattern_check(opt.seed, off, buf,
							(size_t)r);
			if (at >= 0)
				bad = (long long)off + at;
		}
		off += (unsigned long long)r;
	}
	free(buf);
	if (r < 0)
		return;
	if (bad < 0)
		n = snprintf(msg, sizeof(msg), "SINK OK %llu\n", off);
	else
		n = snprintf(msg, sizeof(msg), "SINK BAD %lld\n", bad);
	c_write(c, msg, (size_t)n);
}

static void serve_count(struct conn *c)
{
	char buf[65536];

	while (c_read(c, buf, sizeof(buf)) > 0)
		;
}

static const struct {
	const char *name;
	void (*serve)(struct conn *c);
} modes[] = {
	{ "echo", serve_echo },
	{ "source", serve_source },
	{ "sink", serve_sink },
	{ "count", serve_count },
};

static void (*serve_fn)(struct conn *c);

static void *conn_thread(void *arg)
{
	struct conn *c = arg;

	serve_fn(c);
	if (!c->end)
		note(c, "done");
	hp_say("END conn=%u how=%s bytes=%llu sent=%llu accept_ns=%llu "
	       "first_ns=%llu end_ns=%llu\n", c->id, c->end, c->got, c->sent,
	       (unsigned long long)c->t_accept, (unsigned long long)c->t_first,
	       (unsigned long long)c->t_end);
	close(c->fd);
	free(c);
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: faultsrv echo|source|sink|count [--addr A] "
			"[--bytes N] [--seed S] [--lifetime SEC]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len;
	size_t m;
	int lfd, one = 1;
	unsigned next_id = 0;
	pthread_attr_t attr;

	if (argc < 2)
		usage();
	opt.mode = argv[1];
	for (int i = 2; i < argc; i += 2) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			usage();
		if (!strcmp(a, "--addr"))
			opt.addr = v;
		else if (!strcmp(a, "--bytes"))
			opt.bytes = hp_num(v, 0, LLONG_MAX, "--bytes");
		else if (!strcmp(a, "--seed"))
			opt.seed = (uint64_t)hp_num(v, 0, LLONG_MAX, "--seed");
		else if (!strcmp(a, "--lifetime"))
			opt.lifetime = (long)hp_num(v, 0, 86400, "--lifetime");
		else
			usage();
	}
	for (m = 0; m < sizeof(modes) / sizeof(modes[0]); m++)
		if (!strcmp(opt.mode, modes[m].name))
			break;
	if (m == sizeof(modes) / sizeof(modes[0]))
		usage();
	serve_fn = modes[m].serve;

	signal(SIGPIPE, SIG_IGN);
	if (opt.lifetime)
		alarm((unsigned)opt.lifetime);	/* default action: exit */

	hp_loopback(opt.addr, 0, &ss, &len);
	lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		hp_die("socket: %s", strerror(errno));
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&ss, len) < 0)
		hp_die("bind %s: %s", opt.addr, strerror(errno));
	if (listen(lfd, 128) < 0)
		hp_die("listen: %s", strerror(errno));
	printf("PORT %d\n", hp_bound_port(lfd));
	fflush(stdout);

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 512 * 1024);
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		struct conn *c;
		pthread_t t;

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
		c->t_accept = hp_now_ns();
		if (pthread_create(&t, &attr, conn_thread, c) != 0) {
			close(fd);
			free(c);
		}
	}
}
