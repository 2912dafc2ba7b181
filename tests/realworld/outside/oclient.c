/* oclient - a plain blocking TCP client for the outside-mode tests
 * (tests/realworld/test_outside.c), built there with `gcc -static`: a
 * program LD_PRELOAD cannot reach.
 *
 *   oclient [--send TEXT] [--repeat N] [--gap MS] [--hold MS] PORT
 *
 * Each round connects to 127.0.0.1:PORT, writes TEXT ("\n" and "\r" as
 * escapes; nothing without --send), then reads until end of file or an
 * error, and prints one line:
 *
 *   round=I connect_ms=C total_ms=T bytes=B end=eof|ERRNAME
 *
 * where total_ms runs from the start of connect() to the end.  --hold MS
 * sleeps that long after connecting (a connection left open, without a
 * request).  --gap MS pauses between rounds.  Exit status 0.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

static long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000L + ts.tv_nsec / 1000;
}

static const char *errname(int e)
{
	switch (e) {
	case ECONNABORTED: return "ECONNABORTED";
	case ECONNRESET: return "ECONNRESET";
	case ECONNREFUSED: return "ECONNREFUSED";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EPIPE: return "EPIPE";
	default: return "other";
	}
}

static size_t unescape(const char *in, char *out, size_t cap)
{
	size_t n = 0;

	for (; *in && n < cap; in++) {
		if (in[0] == '\\' && in[1] == 'n') {
			out[n++] = '\n';
			in++;
		} else if (in[0] == '\\' && in[1] == 'r') {
			out[n++] = '\r';
			in++;
		} else {
			out[n++] = *in;
		}
	}
	return n;
}

int main(int argc, char **argv)
{
	const char *text = NULL;
	long repeat = 1, gap = 0, hold = 0;
	char req[4096], buf[65536];
	size_t reqlen = 0;
	int i, port;

	for (i = 1; i + 1 < argc && argv[i][0] == '-'; i += 2) {
		if (!strcmp(argv[i], "--send"))
			text = argv[i + 1];
		else if (!strcmp(argv[i], "--repeat"))
			repeat = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--gap"))
			gap = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--hold"))
			hold = atol(argv[i + 1]);
		else
			break;
	}
	if (i != argc - 1) {
		fprintf(stderr, "usage: oclient [--send TEXT] [--repeat N] "
			"[--gap MS] [--hold MS] PORT\n");
		return 2;
	}
	port = atoi(argv[i]);
	if (text)
		reqlen = unescape(text, req, sizeof(req));
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (long r = 0; r < repeat; r++) {
		struct sockaddr_in a = { .sin_family = AF_INET };
		long t0 = now_us(), tc = -1;
		long long bytes = 0;
		const char *end = "eof";
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		a.sin_port = htons((unsigned short)port);
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
			end = errname(errno);
			goto done;
		}
		tc = now_us();
		if (hold)
			usleep((useconds_t)hold * 1000);
		if (reqlen && send(fd, req, reqlen, MSG_NOSIGNAL) < 0) {
			end = errname(errno);
			goto done;
		}
		for (;;) {
			ssize_t n = read(fd, buf, sizeof(buf));

			if (n > 0) {
				bytes += n;
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				end = errname(errno);
			break;
		}
done:
		printf("round=%ld connect_ms=%ld total_ms=%ld bytes=%lld end=%s\n",
		       r, tc < 0 ? -1 : (tc - t0) / 1000, (now_us() - t0) / 1000,
		       bytes, end);
		close(fd);
		if (gap)
			usleep((useconds_t)gap * 1000);
	}
	return 0;
}
