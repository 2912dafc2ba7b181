/* hostile - a program living in a hostile environment, for the real-world
 * checks (tests/realworld/test_hostile.c).  Run it under the shim with a
 * request deadline (DEADLINE_REQUEST_TIMEOUT=L ms, passed as --limit L).
 *
 *   hostile SUBCOMMAND ECHO_PORT SILENT_PORT [--limit L] [--slack S]
 *
 * ECHO_PORT is a stallsrv echo server, SILENT_PORT a stallsrv silent one
 * (both on 127.0.0.1).  Every subcommand prints "CHECK <name> ok" or
 * "CHECK <name> FAIL <why>" lines and exits 0 only when all passed.
 *
 *   nofile      run with a tiny RLIMIT_NOFILE (prlimit --nofile=64): fill
 *               every fd; socket() must fail with EMFILE as natively; a
 *               read on a silent connection from a new thread (the shim
 *               cannot make its private epoll fd then) must still end, and
 *               with ETIMEDOUT; after freeing fds all works again
 *   highfd      raise RLIMIT_NOFILE as far as allowed (1,048,576 when the
 *               hard limit permits) and use sockets dup2()ed to the top
 *               numbers: exchanges work, the deadline fires
 *   spawn       posix_spawn() and vfork()+execve() children (this program,
 *               "child") that use sockets under the inherited shim: their
 *               deadline fires, their exchanges work
 *   child       (what spawn runs) one echo exchange, one silent read
 *   closerange  close_range(3, ~0U, 0) and closefrom(3) like ssh, then new
 *               sockets with deadlines; CLOSE_RANGE_CLOEXEC then exec
 *               "fdlist": nothing beyond 0-2 survives exec
 *   fdlist      fail if any fd above 2 is open
 *   orphanreuse a thread blocks in read() on a silent connection; another
 *               thread closes that fd; then 70 connect+close cycles reuse
 *               the number: no fd may be left behind (the shim keeps an
 *               "orphan" dup of a socket closed under a blocked call)
 *   forkstale   a keep-alive connection to the ECHO port (an http stallsrv
 *               here) has a first-byte deadline armed when the program
 *               forks; the parent then gets its answer (deadline met); the
 *               child waits in poll() on a connection of its own past the
 *               old deadline: the parent's next request on its connection
 *               must still work
 */
#include "helpers.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

extern char **environ;

static int echo_port, silent_port;
static long limit_ms = 500, slack_ms = 300;
static int failures;
static char self_path[PATH_MAX];

__attribute__((format(printf, 3, 4)))
static void check(const char *name, int ok, const char *fmt, ...)
{
	char why[300] = "";
	va_list ap;

	if (!ok) {
		va_start(ap, fmt);
		vsnprintf(why, sizeof(why), fmt, ap);
		va_end(ap);
		failures++;
	}
	printf("CHECK %s %s%s%s\n", name, ok ? "ok" : "FAIL", ok ? "" : " ", why);
	fflush(stdout);
}

static int tcp(int port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	hp_loopback("127.0.0.1", port, &ss, &len);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* One echo round trip on fd; 0 or -1 with errno. */
static int echo_once(int fd, const char *what)
{
	char out[64], in[64];
	int n = snprintf(out, sizeof(out), "hostile %s %d\n", what, (int)getpid());
	size_t got = 0;

	if (hp_send_all(fd, out, (size_t)n) < 0)
		return -1;
	while (got < (size_t)n) {
		ssize_t r = read(fd, in + got, (size_t)n - got);

		if (r <= 0) {
			if (r == 0)
				errno = EPROTO;
			return -1;
		}
		got += (size_t)r;
	}
	if (memcmp(in, out, (size_t)n)) {
		errno = EBADMSG;
		return -1;
	}
	return 0;
}

static void check_echo(const char *name)
{
	int fd = tcp(echo_port);
	int rc = fd < 0 ? -1 : echo_once(fd, name);

	check(name, rc == 0, "echo exchange: %s", hp_errname(errno));
	if (fd >= 0)
		close(fd);
}

/* read() on fd must fail with ETIMEDOUT within [limit, limit + slack] of
 * t0 (the connect: a request deadline). */
static void check_timeout_read(const char *name, int fd, uint64_t t0)
{
	char buf[16];
	ssize_t r = read(fd, buf, sizeof(buf));
	int e = errno;
	long ms = hp_ms_since(t0);

	check(name, r < 0 && e == ETIMEDOUT && ms >= limit_ms &&
			    ms <= limit_ms + slack_ms,
	      "read returned %zd (%s) after %ld ms; want ETIMEDOUT at %ld ms",
	      r, r < 0 ? hp_errname(e) : "-", ms, limit_ms);
}

static void check_silent(const char *name)
{
	uint64_t t0 = hp_now_ns();
	int fd = tcp(silent_port);

	if (fd < 0) {
		check(name, 0, "connect: %s", hp_errname(errno));
		return;
	}
	check_timeout_read(name, fd, t0);
	close(fd);
}

/* Open fds, not counting the shim's own private epoll set (one per thread
 * that waited on a tracked socket, documented) nor the directory stream. */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	char path[300], target[64];
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		ssize_t len;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		len = readlink(path, target, sizeof(target) - 1);
		if (len > 0) {
			target[len] = 0;
			if (strcmp(target, "anon_inode:[eventpoll]") == 0)
				continue;
		}
		n++;
	}
	closedir(d);
	return n - 1; /* the directory stream itself */
}

/* ------------------------------------------------------------------ */
/* nofile                                                              */
/* ------------------------------------------------------------------ */

struct silent_job {
	int fd;
	uint64_t t0;
	ssize_t r;
	int e;
	long ms;
};

static void *silent_reader(void *p)
{
	struct silent_job *j = p;
	char buf[16];

	j->r = read(j->fd, buf, sizeof(buf));
	j->e = errno;
	j->ms = hp_ms_since(j->t0);
	return NULL;
}

static int cmd_nofile(void)
{
	struct rlimit rl;
	int fds[1 << 16], n = 0, s;
	struct silent_job job;
	pthread_t th;

	getrlimit(RLIMIT_NOFILE, &rl);
	printf("NOFILE soft=%llu hard=%llu\n", (unsigned long long)rl.rlim_cur,
	       (unsigned long long)rl.rlim_max);
	check_echo("nofile-echo-before");
	check_silent("nofile-silent-before");

	/* A silent connection to read from once the table is full; a
	 * thread (created now: pthread_create needs no fd) will read. */
	job.t0 = hp_now_ns();
	job.fd = tcp(silent_port);
	check("nofile-connect", job.fd >= 0, "%s", hp_errname(errno));
	while (n < (int)(sizeof(fds) / sizeof(fds[0]))) {
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

		if (fd < 0) {
			check("nofile-open-emfile", errno == EMFILE,
			      "open failed with %s", hp_errname(errno));
			break;
		}
		fds[n++] = fd;
	}
	printf("NOFILE filled with %d more fds\n", n);
	s = socket(AF_INET, SOCK_STREAM, 0);
	check("nofile-socket-emfile", s < 0 && errno == EMFILE,
	      "socket() returned %d (%s)", s, hp_errname(errno));
	if (s >= 0)
		close(s);
	pthread_create(&th, NULL, silent_reader, &job);
	pthread_join(th, NULL);
	check("nofile-read-at-exhaustion",
	      job.r < 0 && job.e == ETIMEDOUT && job.ms >= limit_ms &&
		      job.ms <= limit_ms + slack_ms,
	      "read with no fd left: returned %zd (%s) after %ld ms; want "
	      "ETIMEDOUT at %ld ms (natively it would block: EMFILE is not a "
	      "read() error)",
	      job.r, job.r < 0 ? hp_errname(job.e) : "-", job.ms, limit_ms);
	close(job.fd);
	while (n > 0)
		close(fds[--n]);
	check_echo("nofile-echo-after");
	check_silent("nofile-silent-after");
	return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* highfd                                                              */
/* ------------------------------------------------------------------ */

static int cmd_highfd(void)
{
	struct rlimit rl;
	rlim_t want = 1048576 + 64;
	int top, fd, hi;

	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_max < want) {
		struct rlimit try = { want, want };

		if (setrlimit(RLIMIT_NOFILE, &try) == 0)
			rl = try;
	}
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		hp_die("setrlimit: %s", strerror(errno));
	top = rl.rlim_cur > (rlim_t)INT_MAX ? INT_MAX : (int)rl.rlim_cur - 1;
	printf("HIGHFD limit=%llu top=%d%s\n", (unsigned long long)rl.rlim_cur,
	       top, top >= 1048576 ? " (above the shim's table)" :
				     " (hard limit: 1,048,576 not allowed here)");

	/* The very top numbers. */
	fd = tcp(echo_port);
	hi = fd < 0 ? -1 : dup2(fd, top);
	if (fd >= 0)
		close(fd);
	check("highfd-dup2", hi == top, "dup2 to %d: %s", top, hp_errname(errno));
	if (hi == top) {
		check("highfd-echo", echo_once(hi, "highfd") == 0, "%s",
		      hp_errname(errno));
		close(hi);
	}
	uint64_t t0 = hp_now_ns();
	fd = tcp(silent_port);
	hi = fd < 0 ? -1 : dup2(fd, top - 1);
	if (fd >= 0)
		close(fd);
	if (hi == top - 1) {
		if (top - 1 < 1048576) {
			check_timeout_read("highfd-deadline", hi, t0);
		} else {
			/* Beyond the table: passes through, no deadline.  A
			 * short non-blocking read shows it still works. */
			char b;
			ssize_t r = recv(hi, &b, 1, MSG_DONTWAIT);
			check("highfd-passthrough", r < 0 && errno == EAGAIN,
			      "recv: %zd %s", r, hp_errname(errno));
		}
		close(hi);
	}
	/* A socket() landing high by itself: fill the low numbers? Too
	 * costly; the dup2 targets cover the table edge. */
	check_echo("highfd-echo-low");
	return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* spawn / child                                                       */
/* ------------------------------------------------------------------ */

static int cmd_child(void)
{
	check_echo("child-echo");
	check_silent("child-silent");
	return failures ? 1 : 0;
}

static void child_argv(char **argv, char *ports[2], char *lim, char *sl)
{
	argv[0] = self_path;
	argv[1] = "child";
	argv[2] = ports[0];
	argv[3] = ports[1];
	argv[4] = "--limit";
	argv[5] = lim;
	argv[6] = "--slack";
	argv[7] = sl;
	argv[8] = NULL;
}

static int wait_child(pid_t pid, const char *name)
{
	uint64_t end = hp_now_ns() + 10000000000ull;
	int st = 0;

	for (;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);

		if (w == pid)
			break;
		if (hp_now_ns() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			check(name, 0, "child still running after 10 s");
			return -1;
		}
		hp_sleep_ms(5);
	}
	check(name, WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %s %d",
	      WIFEXITED(st) ? "exited" : "killed by signal",
	      WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	return 0;
}

static int cmd_spawn(void)
{
	char p0[16], p1[16], lim[24], sl[24], *argv[9];
	char *ports[2] = { p0, p1 };
	struct silent_job job;
	pthread_t th;
	pid_t pid;
	int rc;

	snprintf(p0, sizeof(p0), "%d", echo_port);
	snprintf(p1, sizeof(p1), "%d", silent_port);
	snprintf(lim, sizeof(lim), "%ld", limit_ms);
	snprintf(sl, sizeof(sl), "%ld", slack_ms);
	child_argv(argv, ports, lim, sl);
	fflush(stdout);

	/* The parent has a deadline of its own running meanwhile. */
	job.t0 = hp_now_ns();
	job.fd = tcp(silent_port);
	pthread_create(&th, NULL, silent_reader, &job);

	rc = posix_spawn(&pid, self_path, NULL, NULL, argv, environ);
	check("spawn-posix_spawn", rc == 0, "%s", strerror(rc));
	if (rc == 0)
		wait_child(pid, "spawn-posix_spawn-child");

	pid = vfork();
	if (pid == 0) {
		execve(self_path, argv, environ);
		_exit(127);
	}
	check("spawn-vfork", pid > 0, "%s", hp_errname(errno));
	if (pid > 0)
		wait_child(pid, "spawn-vfork-child");

	pthread_join(th, NULL);
	check("spawn-parent-deadline",
	      job.r < 0 && job.e == ETIMEDOUT && job.ms >= limit_ms,
	      "parent read: %zd (%s) after %ld ms", job.r,
	      job.r < 0 ? hp_errname(job.e) : "-", job.ms);
	close(job.fd);
	check_echo("spawn-parent-echo");
	return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* closerange / fdlist                                                 */
/* ------------------------------------------------------------------ */

static void list_fds(const char *tag)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	printf("%s", tag);
	while (d && (e = readdir(d))) {
		char link[64], target[128] = "";
		int fd = atoi(e->d_name);
		ssize_t n;

		if (e->d_name[0] == '.' || fd == dirfd(d))
			continue;
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		printf(" %d=%s", fd, target);
	}
	if (d)
		closedir(d);
	printf("\n");
}

static void *echo_thread(void *p)
{
	(void)p;
	check_echo("closerange-thread-echo");
	check_silent("closerange-thread-silent");
	return NULL;
}

static int cmd_closerange(void)
{
	pthread_t th;
	int keep;

	/* Build up shim state: private epoll set, a tracked socket. */
	check_echo("closerange-echo-before");
	keep = tcp(echo_port);
	check("closerange-keep", keep >= 0, "%s", hp_errname(errno));
	list_fds("FDS before close_range:");
	check("closerange-close_range", close_range(3, ~0u, 0) == 0, "%s",
	      hp_errname(errno));
	list_fds("FDS after close_range:");
	check_echo("closerange-echo-after");
	check_silent("closerange-silent-after");
	pthread_create(&th, NULL, echo_thread, NULL);
	pthread_join(th, NULL);

	closefrom(3);
	list_fds("FDS after closefrom:");
	check_echo("closefrom-echo-after");
	check_silent("closefrom-silent-after");

	/* Mark everything close-on-exec, then exec the fd lister. */
	fflush(stdout);
	check("closerange-cloexec", close_range(3, ~0u, CLOSE_RANGE_CLOEXEC) == 0,
	      "%s", hp_errname(errno));
	if (failures)
		return 1;
	execl(self_path, self_path, "fdlist", (char *)NULL);
	check("closerange-exec", 0, "%s", hp_errname(errno));
	return 1;
}

static int cmd_fdlist(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int extra = 0;

	while (d && (e = readdir(d))) {
		int fd = atoi(e->d_name);

		if (e->d_name[0] != '.' && fd > 2 && fd != dirfd(d))
			extra++;
	}
	if (d)
		closedir(d);
	list_fds("FDS after exec:");
	check("exec-no-leaked-fds", extra == 0, "%d fds above 2 survived exec",
	      extra);
	return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* orphanreuse                                                         */
/* ------------------------------------------------------------------ */

static int cmd_orphanreuse(void)
{
	struct silent_job job;
	pthread_t th;
	int before, after, same = 0;

	job.t0 = hp_now_ns();
	job.fd = tcp(silent_port);
	if (job.fd < 0 || hp_send_all(job.fd, "x", 1) < 0)
		hp_die("silent connection: %s", strerror(errno));
	pthread_create(&th, NULL, silent_reader, &job);
	hp_sleep_ms(limit_ms / 5);
	before = count_fds();
	close(job.fd);	/* while the reader is blocked on it */
	for (int i = 0; i < 70; i++) {
		int fd = tcp(echo_port);

		if (fd < 0) {
			check("orphanreuse-connect", 0, "%s", hp_errname(errno));
			break;
		}
		same += fd == job.fd;
		echo_once(fd, "reuse");
		close(fd);
	}
	/* Count once the blocked read has returned: until then the shim
	 * holds that one socket for it, as the kernel would. */
	pthread_join(th, NULL);
	after = count_fds();
	printf("ORPHANREUSE cycles=70 reused_number=%d fds_before=%d "
	       "fds_after=%d\n", same, before - 1, after);
	check("orphanreuse-no-fd-left", after == before - 1,
	      "%d fds open after 70 connect+close cycles that reused the number "
	      "of a socket closed under a blocked read, %d before (each close "
	      "left a socket behind)", after, before - 1);
	check("orphanreuse-reader",
	      job.r < 0 && job.e == ETIMEDOUT && job.ms >= limit_ms &&
		      job.ms <= limit_ms + slack_ms,
	      "reader: %zd (%s) after %ld ms", job.r,
	      job.r < 0 ? hp_errname(job.e) : "-", job.ms);
	/* A second close-under-read must still be handled. */
	job.t0 = hp_now_ns();
	job.fd = tcp(silent_port);
	hp_send_all(job.fd, "x", 1);
	pthread_create(&th, NULL, silent_reader, &job);
	hp_sleep_ms(limit_ms / 5);
	close(job.fd);
	pthread_join(th, NULL);
	check("orphanreuse-second-reader",
	      job.r < 0 && job.e == ETIMEDOUT,
	      "second reader: %zd (%s) after %ld ms", job.r,
	      job.r < 0 ? hp_errname(job.e) : "-", job.ms);
	return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* forkstale                                                           */
/* ------------------------------------------------------------------ */

static int http_exchange(int fd)
{
	static const char req[] = "GET /delay/50 HTTP/1.1\r\nHost: x\r\n\r\n";
	char buf[512];
	size_t n = 0;

	if (hp_send_all(fd, req, sizeof(req) - 1) < 0)
		return -1;
	buf[0] = '\0';
	while (!strstr(buf, "hello\n")) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);

		if (r <= 0) {
			if (r == 0)
				errno = EPROTO;
			return -1;
		}
		n += (size_t)r;
		buf[n] = '\0';
	}
	return 0;
}

static int cmd_forkstale(void)
{
	static const char req[] = "GET /delay/50 HTTP/1.1\r\nHost: x\r\n\r\n";
	int fd = tcp(echo_port), st = 0;
	char buf[512];
	size_t n = 0;
	pid_t pid;

	if (fd < 0 || hp_send_all(fd, req, sizeof(req) - 1) < 0)
		hp_die("http connection: %s", strerror(errno));
	/* The first-byte deadline is armed now; fork while it is. */
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int s = tcp(silent_port);
		struct pollfd p = { .fd = s, .events = POLLIN };

		hp_send_all(s, "x", 1);
		poll(&p, 1, (int)(limit_ms * 3));
		_exit(0);
	}
	buf[0] = '\0';
	while (!strstr(buf, "hello\n")) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);

		if (r <= 0) {
			check("forkstale-first", 0, "first answer: %s",
			      hp_errname(errno));
			return 1;
		}
		n += (size_t)r;
		buf[n] = '\0';
	}
	check("forkstale-first", 1, " ");
	hp_sleep_ms(limit_ms + limit_ms / 2);
	int rc = http_exchange(fd);
	check("forkstale-second", rc == 0,
	      "second request on the parent's keep-alive connection failed with "
	      "%s: the child tore the shared socket down at the first-byte "
	      "deadline the parent had already met", hp_errname(errno));
	waitpid(pid, &st, 0);
	close(fd);
	return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	const char *cmd;

	if (argc < 2)
		hp_die("usage: hostile SUBCOMMAND [ECHO SILENT] [--limit L] "
		       "[--slack S]");
	cmd = argv[1];
	if (readlink("/proc/self/exe", self_path, sizeof(self_path) - 1) < 0)
		hp_die("readlink /proc/self/exe: %s", strerror(errno));
	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(cmd, "fdlist"))
		return cmd_fdlist();
	if (argc < 4)
		hp_die("%s needs ECHO_PORT SILENT_PORT", cmd);
	echo_port = (int)hp_num(argv[2], 1, 65535, "echo port");
	silent_port = (int)hp_num(argv[3], 1, 65535, "silent port");
	for (int i = 4; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--limit"))
			limit_ms = (long)hp_num(argv[i + 1], 1, 600000, "--limit");
		else if (!strcmp(argv[i], "--slack"))
			slack_ms = (long)hp_num(argv[i + 1], 0, 600000, "--slack");
		else
			hp_die("unknown option %s", argv[i]);
	}
	if (!strcmp(cmd, "nofile"))
		return cmd_nofile();
	if (!strcmp(cmd, "highfd"))
		return cmd_highfd();
	if (!strcmp(cmd, "spawn"))
		return cmd_spawn();
	if (!strcmp(cmd, "child"))
		return cmd_child();
	if (!strcmp(cmd, "closerange"))
		return cmd_closerange();
	if (!strcmp(cmd, "orphanreuse"))
		return cmd_orphanreuse();
	if (!strcmp(cmd, "forkstale"))
		return cmd_forkstale();
	hp_die("unknown subcommand %s", cmd);
}
