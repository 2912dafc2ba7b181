/* ctorlib - socket calls from another library's constructor.
 *
 * One file, two builds:
 *   -DDL_CTORLIB_SHARED -shared  ->  libctorlib.so, whose constructor
 *       talks HTTP to 127.0.0.1:$DL_CTOR_PORT (a stallsrv http server)
 *       before main() and, under LD_PRELOAD, before libdeadline's own
 *       constructor (the dynamic loader runs the constructors of a
 *       program's DT_NEEDED libraries before those of preloaded ones);
 *   default                  ->  the program "ctorlib", which must be linked
 *       against libctorlib.so (tests/helpers/build-ctorlib does both).
 *       Built alone by the generic helper rule it still links (the
 *       library's symbols are weak) and reports "ERR not-linked".
 *
 * The program prints
 *   CTOR <result of the constructor's exchange>
 *   REUSE <result of a second request on the constructor's connection>
 *   DEADLINE <result of a request that a deadline should cut short>
 * The last step only runs with --limit L (the test sets
 * DEADLINE_REQUEST_TIMEOUT=L): /delay/(10*L) must fail with ETIMEDOUT
 * within [L, L+slack].  Exit 0 only when every step behaved.
 */
#include "helpers.h"

/* Blocking HTTP GET on fd, reading the whole "hello\n" answer.  Returns
 * 0, or -1 with a short reason in why. */
static int ctor_get(int fd, const char *path, const char **why)
{
	char req[128], buf[512];
	size_t len = 0;
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: ctor\r\n\r\n",
			 path);

	if (hp_send_all(fd, req, (size_t)n) < 0) {
		*why = hp_errname(errno);
		return -1;
	}
	while (len < sizeof(buf) - 1) {
		ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);

		if (r <= 0) {
			*why = r == 0 ? "EOF" : hp_errname(errno);
			return -1;
		}
		len += (size_t)r;
		buf[len] = '\0';
		if (len >= 6 && !strcmp(buf + len - 6, "hello\n"))
			return 0;
	}
	*why = "garbled";
	return -1;
}

#ifdef DL_CTORLIB_SHARED

static char ctor_result[128] = "not-run";
static int ctor_fd = -1;

/* Runs before main() and before the preloaded shim's constructor: a
 * connect, a write and a read that has to wait 100 ms for the answer. */
__attribute__((constructor))
static void ctorlib_init(void)
{
	const char *port = getenv("DL_CTOR_PORT");
	struct sockaddr_storage ss;
	socklen_t len;
	const char *why = "";
	int fd;

	if (!port) {
		snprintf(ctor_result, sizeof(ctor_result), "ERR no-port");
		return;
	}
	hp_loopback("127.0.0.1", atoi(port), &ss, &len);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, len) < 0) {
		snprintf(ctor_result, sizeof(ctor_result), "ERR connect %s",
			 hp_errname(errno));
		return;
	}
	if (ctor_get(fd, "/delay/100", &why) < 0) {
		snprintf(ctor_result, sizeof(ctor_result), "ERR get %s", why);
		close(fd);
		return;
	}
	snprintf(ctor_result, sizeof(ctor_result), "OK");
	ctor_fd = fd;
}

const char *ctorlib_result(void);
int ctorlib_fd(void);

const char *ctorlib_result(void)
{
	return ctor_result;
}

int ctorlib_fd(void)
{
	return ctor_fd;
}

#else /* the program */

extern const char *ctorlib_result(void) __attribute__((weak));
extern int ctorlib_fd(void) __attribute__((weak));

int main(int argc, char **argv)
{
	long limit = 0, slack = 50;
	const char *why = "";
	int bad = 0, fd;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--limit"))
			limit = (long)hp_num(argv[i + 1], 0, 60000, "--limit");
		else if (!strcmp(argv[i], "--slack"))
			slack = (long)hp_num(argv[i + 1], 0, 60000, "--slack");
		else
			hp_die("usage: ctorlib [--limit MS] [--slack MS]");
	}
	if (!ctorlib_result || !ctorlib_fd) {
		printf("ERR not-linked\n");
		return 2;
	}
	printf("CTOR %s\n", ctorlib_result());
	bad |= strcmp(ctorlib_result(), "OK") != 0;

	/* The constructor's connection, used again now that every library
	 * (the shim included) has been initialised. */
	fd = ctorlib_fd();
	if (fd < 0) {
		printf("REUSE ERR no-connection\n");
		bad = 1;
	} else if (ctor_get(fd, "/delay/100", &why) < 0) {
		printf("REUSE ERR %s\n", why);
		bad = 1;
	} else {
		printf("REUSE OK\n");
	}
	if (fd >= 0)
		close(fd);

	if (limit > 0) {
		struct sockaddr_storage ss;
		socklen_t len;
		char path[32];
		const char *port = getenv("DL_CTOR_PORT");
		uint64_t t0;
		long ms;
		int r;

		hp_loopback("127.0.0.1", port ? atoi(port) : 0, &ss, &len);
		snprintf(path, sizeof(path), "/delay/%ld", limit * 10);
		t0 = hp_now_ns();
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		r = connect(fd, (struct sockaddr *)&ss, len);
		if (r == 0)
			r = ctor_get(fd, path, &why);
		else
			why = hp_errname(errno);
		ms = hp_ms_since(t0);
		printf("DEADLINE %s %s ms=%ld\n", r ? "ERR" : "OK",
		       r ? why : "answered", ms);
		bad |= !(r && !strcmp(why, "ETIMEDOUT") && ms >= limit &&
			 ms <= limit + slack);
		close(fd);
	}
	printf("CTORLIB %s\n", bad ? "FAIL" : "OK");
	return bad;
}

#endif
