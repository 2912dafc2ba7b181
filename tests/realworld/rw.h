/* rw.h - shared plumbing for the real-world checks (make check-real).
 *
 * Builds on tests/integration/harness.h (process spawning with hard
 * timeouts, stallsrv servers, temp dirs); adds what the real-world checks
 * need on top: servers that are real programs (python3 http.server,
 * redis-server, postgres), files, and the paths of the scripts beside this
 * header.  Every test runs in its own Criterion worker, so the state here
 * is per test.
 *
 * Environment (besides harness.h's DL_BUILD, DL_SLACK_MS):
 *   DL_PYTHON   the python3 whose test suite is run (default: Debian's
 *               /usr/bin/python3 when its test package is installed, else
 *               python3 on PATH)
 */
#ifndef DL_RW_H
#define DL_RW_H

#include "harness.h"
#include "../helpers/helpers.h"

#include <dirent.h>
#include <pwd.h>
#include <sys/resource.h>

/* Test timeouts (s): generous; every command inside has its own. */
#define RW_SUITE(name, secs) \
	TestSuite(name, .init = dl_setup, .fini = dl_teardown, .timeout = secs)

/* Absolute path of a file in the source tree (cwd is the tree's root:
 * tests/realworld/run goes there). */
static DL_UNUSED const char *rw_src(const char *rel)
{
	static char bufs[4][PATH_MAX];
	static int next;
	char *p = bufs[next++ % 4], cwd[PATH_MAX];

	cr_assert(getcwd(cwd, sizeof(cwd)), "getcwd: %s", strerror(errno));
	dl_fmt(p, PATH_MAX, "%s/%s", cwd, rel);
	return p;
}

/* Path inside this test's temp dir (rotating buffers). */
static DL_UNUSED const char *rw_tmp(const char *rel)
{
	static char bufs[8][PATH_MAX];
	static int next;
	char *p = bufs[next++ % 8];

	dl_fmt(p, PATH_MAX, "%s/%s", dl_tmpdir(), rel);
	return p;
}

static DL_UNUSED void rw_write(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert(f, "open %s: %s", path, strerror(errno));
	cr_assert(fputs(text, f) >= 0 && fclose(f) == 0, "write %s", path);
}

/* Nonzero when cmd is an executable on PATH (or an existing path). */
static DL_UNUSED int rw_have(const char *cmd)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	if (strchr(cmd, '/'))
		return access(cmd, X_OK) == 0;
	for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
		size_t n = strcspn(p, ":");

		if (snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, p, cmd) <
			    (int)sizeof(buf) &&
		    access(buf, X_OK) == 0)
			return 1;
		p += n;
		if (*p == ':')
			p++;
	}
	return 0;
}

/* Run a command that must succeed (setup steps); returns its stdout. */
static DL_UNUSED char *rw_must(const char *const *argv, const char *cwd,
			       long timeout_ms)
{
	struct dl_result r;
	char *out;

	dl_run_opts(&r, argv, DL_V("LC_ALL=C"), 0, timeout_ms, cwd);
	dl_assert_run(&r, r.exited && r.code == 0, "setup step %s failed",
		      argv[0]);
	out = r.out;
	r.out = NULL;
	dl_result_free(&r);
	return out;
}

/* Register pid as a daemon for dl_teardown to kill. */
static DL_UNUSED void rw_adopt(pid_t pid)
{
	cr_assert(dl_ndaemons < DL_MAX_DAEMONS, "too many daemons");
	dl_daemons[dl_ndaemons++] = pid;
}

/* Start a real server program with stdout+stderr to a pipe and wait up to
 * timeout_ms for a line containing word (e.g. "port "); the number after
 * it is the port.  preload/extra as for dl_spawn.  The server is killed at
 * teardown; its later output is in s->buf via dl_server_output(). */
static DL_UNUSED struct dl_server *rw_server(const char *const *argv,
					     const char *const *extra,
					     int preload, const char *cwd,
					     const char *word, long timeout_ms)
{
	struct dl_server *s;
	uint64_t end = dl_now_ns() + (uint64_t)timeout_ms * 1000000u;
	int p[2];

	cr_assert(dl_nservers < DL_MAX_SERVERS, "too many servers");
	s = &dl_servers[dl_nservers++];
	memset(s, 0, sizeof(*s));
	cr_assert(pipe2(p, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
	s->pid = dl_spawn(argv, extra, preload, cwd, p[1], p[1]);
	close(p[1]);
	s->out_fd = p[0];
	for (;;) {
		const char *w = strstr(s->buf, word);

		if (w && strchr(w, '\n')) {
			s->port = atoi(w + strlen(word));
			break;
		}
		uint64_t now = dl_now_ns();
		cr_assert(now < end &&
			  dl_server_fill(s, (long)((end - now) / 1000000u) + 1) >= 0,
			  "%s did not say '%s'; output so far:\n%s", argv[0],
			  word, s->buf);
	}
	cr_assert(s->port > 0, "%s: no port after '%s':\n%s", argv[0], word,
		  s->buf);
	dl_fmt(s->port_s, sizeof(s->port_s), "%d", s->port);
	return s;
}

/* A TCP connection to 127.0.0.1:port from the test process itself
 * (never preloaded): the fd, or -1 with errno if connect() failed. */
static DL_UNUSED int rw_try_connect(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), e;

	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(fd >= 0, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
		return fd;
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

/* The same, failing the test when connect() fails. */
static DL_UNUSED int rw_connect(int port)
{
	int fd = rw_try_connect(port);

	cr_assert(fd >= 0, "connect 127.0.0.1:%d: %s", port, strerror(errno));
	return fd;
}

/* How a connection held by the test ended while waiting up to ms:
 * "open" (nothing happened), "rst", "fin", or "data". *at_ms = when. */
static DL_UNUSED const char *rw_watch(int fd, long ms, long *at_ms)
{
	uint64_t t0 = dl_now_ns();
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char buf[256];
	ssize_t r;

	*at_ms = -1;
	if (poll(&p, 1, (int)ms) <= 0)
		return "open";
	*at_ms = (long)((dl_now_ns() - t0) / 1000000u);
	r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (r > 0)
		return "data";
	if (r == 0)
		return "fin";
	return errno == ECONNRESET ? "rst" : "err";
}

/* Count the "event=deadline" lines in text. */
static DL_UNUSED int rw_deadline_events(const char *text)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, "event=deadline")); p++)
		n++;
	return n;
}

/* First line of text containing needle (copied, no newline), or "". */
static DL_UNUSED const char *rw_line_with(const char *text, const char *needle)
{
	static char line[1024];
	const char *p = strstr(text, needle), *b, *e;
	size_t n;

	line[0] = '\0';
	if (!p)
		return line;
	for (b = p; b > text && b[-1] != '\n'; b--)
		;
	e = strchr(p, '\n');
	n = e ? (size_t)(e - b) : strlen(b);
	if (n >= sizeof(line))
		n = sizeof(line) - 1;
	memcpy(line, b, n);
	line[n] = '\0';
	return line;
}

/* Print a line to stderr (shown in the check-real log, not checked). */
__attribute__((format(printf, 1, 2)))
static DL_UNUSED void rw_note(const char *fmt, ...)
{
	va_list ap;

	fputs("realworld: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

#endif
