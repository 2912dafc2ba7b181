/* obsclient - a blocking HTTP/1.1 keep-alive client for the observe tests
 * (test_observe.c), against `stallsrv http`.
 *
 *   obsclient HOST PORT [--threads T] [--conns C] [--reqs R]
 *                       [--delays MS,MS,...] [--path PATH]
 *
 * HOST is resolved with getaddrinfo (IPv4), so the shim learns its name
 * (it must resolve to a loopback address).  Each of T threads opens C
 * connections one after the other and sends R requests on each: GET
 * /delay/D with D taken in turn from --delays (default 0), or GET PATH.
 * Prints one "ERR <ENAME> <ms>" line per failed request (ms from just
 * before its send, or its connect for a connection's first request) and, at the end, "DONE ok=<n> err=<n>".  Exit 0 when
 * every request succeeded.
 */
#include "helpers.h"

#include <netdb.h>
#include <pthread.h>

static struct {
	const char *host;
	int port, threads, conns, reqs;
	long delays[64];
	int ndelays;
	const char *path;
} arg = { .threads = 1, .conns = 1, .reqs = 1, .ndelays = 1 };

static struct sockaddr_storage peer;
static socklen_t peer_len;
static int n_ok, n_err;
static pthread_mutex_t lk = PTHREAD_MUTEX_INITIALIZER;

/* One response: headers, then Content-Length bytes.  0, or -1 (errno). */
static int read_response(int fd)
{
	char buf[4096];
	size_t len = 0;
	char *end, *cl;
	long body;

	for (;;) {
		ssize_t r = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);

		if (r < 0)
			return -1;
		if (r == 0) {
			errno = ECONNRESET;
			return -1;
		}
		len += (size_t)r;
		buf[len] = 0;
		if ((end = strstr(buf, "\r\n\r\n")))
			break;
		if (len == sizeof(buf) - 1) {
			errno = EMSGSIZE;
			return -1;
		}
	}
	cl = strcasestr(buf, "content-length:");
	body = cl ? strtol(cl + 15, 0, 10) : 0;
	body -= (long)(len - (size_t)(end + 4 - buf));
	while (body > 0) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);

		if (r <= 0) {
			if (!r)
				errno = ECONNRESET;
			return -1;
		}
		body -= r;
	}
	return 0;
}

static void *worker(void *p)
{
	long id = (long)p;
	char req[512];

	for (int c = 0; c < arg.conns; c++) {
		int fd = socket(peer.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		uint64_t t0 = hp_now_ns();

		if (fd < 0 || connect(fd, (struct sockaddr *)&peer, peer_len)) {
			pthread_mutex_lock(&lk);
			n_err += arg.reqs;
			printf("ERR %s %ld\n", hp_errname(errno), hp_ms_since(t0));
			pthread_mutex_unlock(&lk);
			if (fd >= 0)
				close(fd);
			continue;
		}
		for (int r = 0; r < arg.reqs; r++) {
			long k = (id * arg.conns * arg.reqs + c * arg.reqs + r) %
				 arg.ndelays;
			int n;

			if (arg.path)
				n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\n"
					     "Host: %s\r\n\r\n", arg.path, arg.host);
			else
				n = snprintf(req, sizeof(req), "GET /delay/%ld "
					     "HTTP/1.1\r\nHost: %s\r\n\r\n",
					     arg.delays[k], arg.host);
			/* The first request's time runs from its connect
			 * (where its request deadline starts). */
			if (r)
				t0 = hp_now_ns();
			if (hp_send_all(fd, req, (size_t)n) < 0 ||
			    read_response(fd) < 0) {
				int e = errno;

				pthread_mutex_lock(&lk);
				n_err += arg.reqs - r;
				printf("ERR %s %ld\n", hp_errname(e),
				       hp_ms_since(t0));
				pthread_mutex_unlock(&lk);
				break;
			}
			pthread_mutex_lock(&lk);
			n_ok++;
			pthread_mutex_unlock(&lk);
		}
		close(fd);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct addrinfo hints, *res;
	pthread_t th[64];
	int rc;

	if (argc < 3)
		hp_die("usage: obsclient HOST PORT [--threads T] [--conns C] "
		       "[--reqs R] [--delays MS,...] [--path PATH]");
	arg.host = argv[1];
	arg.port = (int)hp_num(argv[2], 1, 65535, "port");
	for (int i = 3; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--threads"))
			arg.threads = (int)hp_num(argv[i + 1], 1, 64, "threads");
		else if (!strcmp(argv[i], "--conns"))
			arg.conns = (int)hp_num(argv[i + 1], 1, 100000, "conns");
		else if (!strcmp(argv[i], "--reqs"))
			arg.reqs = (int)hp_num(argv[i + 1], 1, 100000, "reqs");
		else if (!strcmp(argv[i], "--path"))
			arg.path = argv[i + 1];
		else if (!strcmp(argv[i], "--delays")) {
			char *s = argv[i + 1], *save = 0;

			arg.ndelays = 0;
			for (char *t = strtok_r(s, ",", &save); t && arg.ndelays < 64;
			     t = strtok_r(0, ",", &save))
				arg.delays[arg.ndelays++] =
					(long)hp_num(t, 0, 600000, "delay");
			if (!arg.ndelays)
				hp_die("--delays: none");
		} else
			hp_die("unknown option %s", argv[i]);
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(arg.host, argv[2], &hints, &res)) != 0)
		hp_die("getaddrinfo %s: %s", arg.host, gai_strerror(rc));
	memcpy(&peer, res->ai_addr, res->ai_addrlen);
	peer_len = res->ai_addrlen;
	freeaddrinfo(res);
	if (ntohl(((struct sockaddr_in *)&peer)->sin_addr.s_addr) >> 24 != 127)
		hp_die("refusing non-loopback address for %s", arg.host);
	setvbuf(stdout, 0, _IOLBF, 0);
	for (long t = 0; t < arg.threads; t++)
		if (pthread_create(&th[t], 0, worker, (void *)t))
			hp_die("pthread_create");
	for (int t = 0; t < arg.threads; t++)
		pthread_join(th[t], 0);
	printf("DONE ok=%d err=%d\n", n_ok, n_err);
	return n_err ? 1 : 0;
}
