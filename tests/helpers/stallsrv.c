/* stallsrv - misbehaving TCP servers for the integration tests.
 *
 *   stallsrv MODE [--addr A] [--ms N] [--count K] [--bytes N] [--seed S]
 *                 [--report] [--lifetime SEC]
 *
 * Binds A (default 127.0.0.1; loopback only) on a port the kernel picks,
 * prints "PORT <n>" on stdout, flushes, and serves until killed or until
 * --lifetime seconds have passed.  One thread per accepted connection.
 *
 * Modes (one function each below):
 *   backlog   the accept queue is full: further connects hang in SYN_SENT
 *   silent    accept, read and discard, never answer
 *   delay     read a request, wait --ms, answer "hello\n", close
 *   drip      read a request, send headers for --count body bytes, then
 *             one body byte every --ms
 *   echo      echo everything back; close after the peer's FIN
 *   source    send --bytes bytes of the --seed stream, close
 *   sink      read and verify the --seed stream; at EOF answer
 *             "SINK OK <n>" or "SINK BAD <offset>", close
 *   http      HTTP/1.1 keep-alive: GET /bytes/N (N bytes of the --seed
 *             stream), GET /delay/MS ("hello\n" after MS), GET /hello,
 *             GET /chunked/N (N bytes, chunked), GET /stall/N (headers
 *             for N bytes, N/2 of them, then nothing)
 *
 * --report prints "ACCEPT <id>" per connection and, when it ends,
 * "END <how> conn=<id> after_ms=<ms since accept>", where <how> is the
 * first teardown the server saw: "rst" (ECONNRESET/EPIPE), "fin" (orderly
 * EOF from the peer), "err" (another error) or "done" (the server finished
 * its script and closed first).
 */
#include "helpers.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <strings.h>

static struct {
	const char *mode;
	const char *addr;
	long ms;
	long count;
	long long bytes;
	uint64_t seed;
	int report;
	long lifetime;
} opt = {
	.addr = "127.0.0.1",
	.ms = 1000,
	.count = 10,
	.bytes = 1 << 20,
	.seed = 1,
};

struct conn {
	int fd;
	unsigned id;
	uint64_t t_accept;
	uint64_t t_end;
	const char *end;	/* first teardown seen, NULL while alive */
};

/* ------------------------------------------------------------------ */
/* Per-connection I/O that records how the peer ended the connection   */
/* ------------------------------------------------------------------ */

static void conn_note(struct conn *c, const char *how)
{
	if (!c->end) {
		c->end = how;
		c->t_end = hp_now_ns();
	}
}

static void conn_note_errno(struct conn *c, int e)
{
	conn_note(c, e == ECONNRESET || e == EPIPE ? "rst" : "err");
}

/* read() once; returns >0 bytes, 0 at the peer's FIN, -1 on error.  EOF
 * and errors are recorded as the connection's end. */
static ssize_t conn_read(struct conn *c, void *buf, size_t n)
{
	ssize_t r;

	do
		r = read(c->fd, buf, n);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		conn_note(c, "fin");
	else if (r < 0)
		conn_note_errno(c, errno);
	return r;
}

/* Send all of buf; returns 0, or -1 after recording the failure. */
static int conn_write(struct conn *c, const void *buf, size_t n)
{
	if (hp_send_all(c->fd, buf, n) == 0)
		return 0;
	conn_note_errno(c, errno);
	return -1;
}

/* Wait ms milliseconds while watching the peer: data that arrives is
 * discarded, a FIN is recorded (and the wait goes on), a reset ends the
 * wait at once.  Returns 0 when the time is up, -1 after a reset/error. */
static int conn_wait(struct conn *c, long ms)
{
	uint64_t end = hp_now_ns() + (uint64_t)ms * 1000000u;
	int watch = 1;
	char scratch[4096];

	for (;;) {
		uint64_t now = hp_now_ns();
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int left;

		if (now >= end)
			return 0;
		left = (int)((end - now + 999999u) / 1000000u);
		if (!watch) {
			hp_sleep_ms(left);
			continue;
		}
		if (poll(&p, 1, left) <= 0)
			continue;
		ssize_t r = conn_read(c, scratch, sizeof(scratch));
		if (r == 0)
			watch = 0;
		else if (r < 0)
			return -1;
	}
}

/* Read a request into buf: up to and including "\r\n\r\n", or whatever
 * arrived once the peer has been quiet for 50 ms after its first bytes.
 * Returns the length, or -1 when the peer left before sending anything. */
static ssize_t conn_read_request(struct conn *c, char *buf, size_t cap)
{
	size_t len = 0;

	while (len < cap - 1) {
		struct pollfd p = { .fd = c->fd, .events = POLLIN };

		if (len && poll(&p, 1, 50) == 0)
			break;
		ssize_t r = conn_read(c, buf + len, cap - 1 - len);
		if (r <= 0)
			return len ? (ssize_t)len : -1;
		len += (size_t)r;
		buf[len] = '\0';
		if (strstr(buf, "\r\n\r\n"))
			break;
	}
	buf[len] = '\0';
	return (ssize_t)len;
}

static void conn_finish(struct conn *c)
{
	if (opt.report) {
		uint64_t t = c->end ? c->t_end : hp_now_ns();

		hp_say("END %s conn=%u after_ms=%llu\n",
		       c->end ? c->end : "done", c->id,
		       (unsigned long long)((t - c->t_accept) / 1000000u));
	}
	close(c->fd);
	free(c);
}

/* ------------------------------------------------------------------ */
/* Modes                                                               */
/* ------------------------------------------------------------------ */

static void serve_silent(struct conn *c)
{
	char buf[4096];

	while (conn_read(c, buf, sizeof(buf)) > 0)
		;
}

static const char hello_response[] =
	"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\n"
	"hello\n";

static void serve_delay(struct conn *c)
{
	char req[8192];

	if (conn_read_request(c, req, sizeof(req)) < 0)
		return;
	if (conn_wait(c, opt.ms) < 0)
		return;
	conn_write(c, hello_response, sizeof(hello_response) - 1);
}

static void serve_drip(struct conn *c)
{
	char req[8192], hdr[128];
	int n;

	if (conn_read_request(c, req, sizeof(req)) < 0)
		return;
	n = snprintf(hdr, sizeof(hdr),
		     "HTTP/1.1 200 OK\r\nContent-Length: %ld\r\n"
		     "Connection: close\r\n\r\n", opt.count);
	if (conn_write(c, hdr, (size_t)n) < 0)
		return;
	for (long i = 0; i < opt.count; i++) {
		char b = (char)('a' + i % 26);

		if (conn_wait(c, opt.ms) < 0 || conn_write(c, &b, 1) < 0)
			return;
	}
}

static void serve_echo(struct conn *c)
{
	char *buf = malloc(65536);
	ssize_t r;

	if (!buf)
		return;
	while ((r = conn_read(c, buf, 65536)) > 0)
		if (conn_write(c, buf, (size_t)r) < 0)
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
		if (conn_write(c, buf, k) < 0)
			break;
		off += k;
	}
	free(buf);
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
	while ((r = conn_read(c, buf, 65536)) > 0) {
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
	conn_write(c, msg, (size_t)n);
}

/* Send status line, headers and body for one HTTP response.  body may be
 * NULL for a /bytes/ response, whose body is streamed from the pattern. */
static int http_respond(struct conn *c, int code, const char *body,
			unsigned long long len, int close_after)
{
	char hdr[256];
	int n = snprintf(hdr, sizeof(hdr),
			 "HTTP/1.1 %d %s\r\nContent-Length: %llu\r\n"
			 "Content-Type: %s\r\n%s\r\n",
			 code, code == 200 ? "OK" : "Not Found", len,
			 body ? "text/plain" : "application/octet-stream",
			 close_after ? "Connection: close\r\n" : "");

	if (body) {
		/* One write, so a small answer arrives in one segment. */
		char all[512];

		if ((size_t)n + len > sizeof(all))
			return -1;
		memcpy(all, hdr, (size_t)n);
		memcpy(all + n, body, (size_t)len);
		return conn_write(c, all, (size_t)n + (size_t)len);
	}
	if (conn_write(c, hdr, (size_t)n) < 0)
		return -1;

	char *buf = malloc(65536);
	unsigned long long off = 0;
	int rc = 0;

	if (!buf)
		return -1;
	while (off < len && rc == 0) {
		size_t k = len - off < 65536 ? (size_t)(len - off) : 65536;

		hp_pattern_fill(opt.seed, off, buf, k);
		rc = conn_write(c, buf, k);
		off += k;
	}
	free(buf);
	return rc;
}

/* A chunked response of n bytes: chunks of 1, 2, 4, ... bytes (the last
 * one what is left), one with an extension, then an empty trailer. */
static int http_chunked(struct conn *c, unsigned long long n, int close_after)
{
	char line[256];
	unsigned long long off = 0, k = 1;
	int m = snprintf(line, sizeof(line),
			 "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n%s\r\n",
			 close_after ? "Connection: close\r\n" : "");

	if (conn_write(c, line, (size_t)m) < 0)
		return -1;
	while (off < n) {
		char data[128];

		if (k > n - off)
			k = n - off;
		if (k > sizeof(data))
			k = sizeof(data);
		memset(data, 'c', (size_t)k);
		m = snprintf(line, sizeof(line), "%llx%s\r\n", k,
			     off ? "" : ";ext=1");
		if (conn_write(c, line, (size_t)m) < 0 ||
		    conn_write(c, data, (size_t)k) < 0 ||
		    conn_write(c, "\r\n", 2) < 0)
			return -1;
		off += k;
		k *= 2;
	}
	return conn_write(c, "0\r\n\r\n", 5);
}

/* Nonzero when the header block (NUL-terminated, request line excluded)
 * carries "Connection: close", in any letter case. */
static int http_wants_close(const char *hdrs)
{
	for (const char *p = hdrs; (p = strstr(p, "\r\n")); p += 2) {
		if (strncasecmp(p + 2, "connection:", 11))
			continue;
		const char *v = p + 13;

		while (*v == ' ' || *v == '\t')
			v++;
		if (!strncasecmp(v, "close", 5))
			return 1;
	}
	return 0;
}

static void serve_http(struct conn *c)
{
	char buf[8192];
	size_t len = 0;

	for (;;) {
		char *end, method[16], path[256], version[16];

		buf[len] = '\0';
		while (!(end = strstr(buf, "\r\n\r\n"))) {
			if (len >= sizeof(buf) - 1)
				return;
			ssize_t r = conn_read(c, buf + len,
					      sizeof(buf) - 1 - len);
			if (r <= 0)
				return;
			len += (size_t)r;
			buf[len] = '\0';
		}
		size_t hlen = (size_t)(end + 4 - buf);
		char saved = end[2];

		end[2] = '\0';
		if (sscanf(buf, "%15s %255s %15s", method, path, version) != 3)
			return;
		int close_after = http_wants_close(buf) ||
				  strcmp(version, "HTTP/1.1") != 0;
		end[2] = saved;

		unsigned long long n;
		long ms;
		int rc;

		if (sscanf(path, "/bytes/%llu", &n) == 1) {
			rc = http_respond(c, 200, NULL, n, close_after);
		} else if (sscanf(path, "/delay/%ld", &ms) == 1) {
			rc = conn_wait(c, ms);
			if (rc == 0)
				rc = http_respond(c, 200, "hello\n", 6,
						  close_after);
		} else if (!strcmp(path, "/hello")) {
			rc = http_respond(c, 200, "hello\n", 6, close_after);
		} else if (sscanf(path, "/chunked/%llu", &n) == 1) {
			rc = http_chunked(c, n, close_after);
		} else if (sscanf(path, "/stall/%llu", &n) == 1) {
			/* Headers for n bytes, half of them, then nothing
			 * until the client goes: a server stuck mid-body. */
			char hdr[160];
			int k = snprintf(hdr, sizeof(hdr),
					 "HTTP/1.1 200 OK\r\nContent-Length: "
					 "%llu\r\n\r\n", n);
			char *half = calloc(1, (size_t)(n / 2) + 1);

			rc = half ? conn_write(c, hdr, (size_t)k) : -1;
			if (rc == 0)
				rc = conn_write(c, half, (size_t)(n / 2));
			free(half);
			if (rc == 0)
				conn_wait(c, 600000);
			return;
		} else {
			rc = http_respond(c, 404, "not found\n", 10,
					  close_after);
		}
		if (rc < 0 || close_after)
			return;
		memmove(buf, buf + hlen, len - hlen);
		len -= hlen;
	}
}

/* Fill the accept queue of lfd (listening with backlog 0) with our own
 * connections until one of them stays in SYN_SENT: from then on every
 * connect() to the port hangs, since nobody ever accepts. */
static void fill_backlog(int lfd, const struct sockaddr_storage *ss,
			 socklen_t len)
{
	(void)lfd;
	for (int i = 0; i < 64; i++) {
		int f = socket(ss->ss_family,
			       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		struct pollfd p = { .fd = f, .events = POLLOUT };
		int err = 0;
		socklen_t el = sizeof(err);

		if (f < 0)
			hp_die("socket: %s", strerror(errno));
		if (connect(f, (const struct sockaddr *)ss, len) == 0)
			continue;
		if (errno != EINPROGRESS)
			hp_die("filler connect: %s", strerror(errno));
		if (poll(&p, 1, 300) == 0)
			return;	/* this one hangs: the queue is full */
		getsockopt(f, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err)
			hp_die("filler connect: %s", strerror(err));
	}
	hp_die("accept queue never filled");
}

/* ------------------------------------------------------------------ */
/* Main                                                                */
/* ------------------------------------------------------------------ */

static const struct {
	const char *name;
	void (*serve)(struct conn *c);
} modes[] = {
	{ "backlog", NULL },
	{ "silent", serve_silent },
	{ "delay", serve_delay },
	{ "drip", serve_drip },
	{ "echo", serve_echo },
	{ "source", serve_source },
	{ "sink", serve_sink },
	{ "http", serve_http },
};

static void (*serve_fn)(struct conn *c);

static void *conn_thread(void *arg)
{
	struct conn *c = arg;

	serve_fn(c);
	conn_finish(c);
	return NULL;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: stallsrv backlog|silent|delay|drip|echo|source|sink|"
		"http\n"
		"         [--addr A] [--ms N] [--count K] [--bytes N] "
		"[--seed S]\n"
		"         [--report] [--lifetime SEC]\n");
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	if (argc < 2)
		usage();
	opt.mode = argv[1];
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--report")) {
			opt.report = 1;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--addr"))
			opt.addr = v;
		else if (!strcmp(a, "--ms"))
			opt.ms = (long)hp_num(v, 0, 86400000, "--ms");
		else if (!strcmp(a, "--count"))
			opt.count = (long)hp_num(v, 0, 1000000, "--count");
		else if (!strcmp(a, "--bytes"))
			opt.bytes = hp_num(v, 0, LLONG_MAX, "--bytes");
		else if (!strcmp(a, "--seed"))
			opt.seed = (uint64_t)hp_num(v, 0, LLONG_MAX, "--seed");
		else if (!strcmp(a, "--lifetime"))
			opt.lifetime = (long)hp_num(v, 0, 86400, "--lifetime");
		else
			usage();
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len;
	size_t m;
	int lfd, one = 1;
	unsigned next_id = 0;
	pthread_attr_t attr;

	parse_args(argc, argv);
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
	if (listen(lfd, serve_fn ? 128 : 0) < 0)
		hp_die("listen: %s", strerror(errno));
	hp_loopback(opt.addr, hp_bound_port(lfd), &ss, &len);

	if (!serve_fn) {
		fill_backlog(lfd, &ss, len);
		printf("PORT %d\n", hp_bound_port(lfd));
		fflush(stdout);
		for (;;)
			pause();
	}

	printf("PORT %d\n", hp_bound_port(lfd));
	fflush(stdout);

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
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
		if (opt.report)
			hp_say("ACCEPT %u\n", c->id);
		if (pthread_create(&t, &attr, conn_thread, c) != 0) {
			close(fd);
			free(c);
		}
	}
}
