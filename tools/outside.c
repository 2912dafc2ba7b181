/* outside.c - `deadline --outside`: start-up, the program, the loop (see
 * outside.h, outside_int.h; docs/outside.md for what it promises).
 */
#include "outside_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <netinet/tcp.h>

#include "clock.h"
#include "log.h"

enum {
	EXIT_FAIL = 125,
	EXIT_CANNOT_RUN = 126,
	EXIT_NOT_FOUND = 127,
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "deadline: --outside: <message>" on stderr: why the mode cannot work. */
static void say(const char *fmt, ...)
{
	va_list ap;

	fputs("deadline: --outside: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int env_flag(const char *name)
{
	const char *v = getenv(name);

	return v && *v && strcmp(v, "0") != 0;
}

/* ------------------------------------------------------------------------
 * The rules
 */

static void warn_cb(const char *msg)
{
	dl_log_conf(DL_CONF_WARNING, NULL, "%s", msg);
}

static const char *env_get(const char *name)
{
	return getenv(name);
}

/* A host glob that can only match a name, never an address as text:
 * it holds a byte no IPv4 or IPv6 literal (or glob syntax) has. */
static int names_a_host(const char *pat)
{
	return pat[strspn(pat, "0123456789abcdefABCDEF.:*?[]!^-\\")] != '\0';
}

/* What the outside mode cannot do, said once per kind; a host rule is an
 * error with DEADLINE_STRICT.  Returns -1 when it must stop. */
static int check_rules(void)
{
	int strict = env_flag("DEADLINE_STRICT"), bad = 0;
	int said_errno = 0, said_dns = 0, said_retry = 0, said_faults = 0;
	const char *path = getenv("DEADLINE_CONFIG");

	for (size_t i = 0; i <= T.conf.nrules; i++) {
		const struct conf_rule *r = i < T.conf.nrules ? &T.conf.rules[i]
							      : NULL;
		const struct conf_values *v = r ? &r->v : &T.conf.defaults;
		const char *name = r ? r->name : "defaults";

		if (r && r->host && names_a_host(r->host)) {
			dl_log_conf(strict ? DL_CONF_ERROR : DL_CONF_WARNING,
				    path, "%s:%u: rule %s: host = \"%s\" names a "
				    "host, and the outside mode sees only "
				    "addresses: this rule never matches (use "
				    "cidr)", path, r->line, name, r->host);
			bad += strict;
		}
		if ((v->set & CONF_SET_ERRNO) && v->err != ECONNABORTED &&
		    !said_errno++)
			dl_log_conf(DL_CONF_WARNING, path, "%s: errno (%s in %s) "
				    "is not used by the outside mode: the "
				    "program sees ECONNABORTED", path,
				    conf_errno_name(v->err), name);
		if ((v->set & CONF_SET_DNS) && !said_dns++)
			dl_log_conf(DL_CONF_WARNING, path, "%s: dns_timeout (in "
				    "%s) is not enforced by the outside mode",
				    path, name);
		if ((v->set & CONF_SET_RETRIES) && v->connect_retries &&
		    !said_retry++)
			dl_log_conf(DL_CONF_WARNING, path, "%s: connect_retries "
				    "(in %s) is not used by the outside mode",
				    path, name);
		if ((v->set & CONF_SET_FAULTS) && v->nfaults && !said_faults++)
			dl_log_conf(DL_CONF_WARNING, path, "%s: faults (in %s) "
				    "are not injected by the outside mode", path,
				    name);
		if ((v->set & CONF_SET_TEARDOWN) &&
		    v->teardown == CONF_TEARDOWN_CLOSE)
			dl_log_conf(DL_CONF_WARNING, path, "%s: teardown = "
				    "\"close\" (in %s): the outside mode always "
				    "resets (RST)", path, name);
	}
	{
		const char *td = getenv("DEADLINE_TEARDOWN");

		if (td && strcmp(td, "close") == 0)
			dl_log_conf(DL_CONF_WARNING, NULL, "--teardown=close: "
				    "the outside mode always resets (RST)");
	}
	if (bad)
		dl_log_conf(DL_CONF_EXIT, path, "DEADLINE_STRICT is set: "
			    "exiting (status %d)", EXIT_FAIL);
	return bad ? -1 : 0;
}

/* The rules as the shim would use them: the file (already checked by
 * `deadline`), the environment's limits on top.  Returns 1 if some
 * deadline is set, 0 if none, -1 on error. */
static int load_rules(void)
{
	const char *path = getenv("DEADLINE_CONFIG");
	struct dl_limits env;
	int active = 0;

	conf_init(&T.conf);
	if (policy_limits_from_env(&env, env_get, warn_cb) &&
	    env_flag("DEADLINE_STRICT"))
		return -1;
	if (path && *path && conf_load(&T.conf, path) < 0) {
		for (size_t i = 0; i < T.conf.nerrors; i++)
			dl_log_conf(DL_CONF_ERROR, path, "%s",
				    T.conf.errors[i]);
		say("%s: cannot use the configuration", path);
		return -1;
	}
	conf_apply_env_overrides(&T.conf, &env);
	T.neff = T.conf.nrules + 1;
	T.eff = calloc(T.neff, sizeof(*T.eff));
	T.stats = calloc(T.neff, sizeof(*T.stats));
	if (!T.eff || !T.stats) {
		say("out of memory");
		return -1;
	}
	conf_effective(&T.conf, NULL, &T.eff[0]);
	if (!(path && *path))
		T.eff[0].rule_name = "env";
	for (size_t i = 0; i < T.conf.nrules; i++)
		if (T.conf.rules[i].index < T.neff)
			conf_effective(&T.conf, &T.conf.rules[i],
				       &T.eff[T.conf.rules[i].index]);
	for (size_t i = 0; i < T.neff; i++)
		if (policy_limits_any(&T.eff[i].limits))
			active = 1;
	if (check_rules() < 0)
		return -1;
	return active;
}

/* ------------------------------------------------------------------------
 * What the kernel must offer
 */

/* The kernel's tick (ticks.h), measured on the probe connection cfd
 * (local c, remote a): after one byte is sent, its "last data sent" age
 * is read back to back for up to 100 ms; each time it grows, a tick
 * boundary fell between the two reads.  The boundaries located within
 * TICKS_TIGHT_NS (six of them) give HZ and the grid's phase, by the
 * largest step of the age among them and where they fall (ticks_fit). */
static void measure_ticks(int cfd, const struct sockaddr_in *c,
			  const struct sockaddr_in *a)
{
	struct diag_sock q, d;
	uint32_t prev = 0, step = 0;
	int64_t lo[6], t0, t_prev = 0;
	size_t n = 0;

	memset(&q, 0, sizeof(q));
	q.family = AF_INET;
	q.id.idiag_sport = c->sin_port;
	q.id.idiag_dport = a->sin_port;
	q.id.idiag_src[0] = c->sin_addr.s_addr;
	q.id.idiag_dst[0] = a->sin_addr.s_addr;
	q.id.idiag_cookie[0] = q.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	if (send(cfd, "x", 1, MSG_NOSIGNAL) != 1) {
		ticks_fit(&T.ticks, lo, 0, 0);
		return;
	}
	/* Six boundaries, or 100 ms (25 ticks at HZ=250, 10 at HZ=100)
	 * when reads are preempted (a loaded machine). */
	t0 = clock_now();
	while (n < 6) {
		int64_t t = clock_now();

		if (t - t0 > 100 * CLOCK_NS_PER_MS ||
		    diag_get(T.nl, &q, &d) < 0 || !d.has_info)
			break;
		/* A change read within TICKS_TIGHT_NS is one tick's step
		 * (a preempted read may span several). */
		if (t_prev && d.last_data_sent_ms != prev &&
		    d.t_ns - t_prev <= TICKS_TIGHT_NS) {
			if (d.last_data_sent_ms - prev > step)
				step = d.last_data_sent_ms - prev;
			lo[n++] = t_prev;
		}
		prev = d.last_data_sent_ms;
		t_prev = t;
	}
	ticks_fit(&T.ticks, lo, n, step);
}

/* Aborts a loopback connection of our own with SOCK_DESTROY: proves the
 * privilege and CONFIG_INET_DIAG_DESTROY.  0, or -1 with the reason said. */
static int probe_destroy(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET }, c;
	socklen_t al = sizeof(a), cl = sizeof(c);
	int lfd = -1, cfd = -1, afd = -1, rc = -1, err;
	char b;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || cfd < 0 || bind(lfd, (struct sockaddr *)&a, al) < 0 ||
	    listen(lfd, 1) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &al) < 0 ||
	    connect(cfd, (struct sockaddr *)&a, al) < 0 ||
	    (afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0 ||
	    getsockname(cfd, (struct sockaddr *)&c, &cl) < 0) {
		say("cannot check SOCK_DESTROY on a loopback connection: %s "
		    "(is the loopback interface up?)", strerror(errno));
		goto out;
	}
	measure_ticks(cfd, &c, &a);
	err = diag_destroy_tuple(T.nl_kill, c.sin_addr.s_addr, c.sin_port,
				 a.sin_addr.s_addr, a.sin_port);
	if (err == -EPERM || err == -EACCES) {
		say("SOCK_DESTROY was refused: the outside mode needs root or "
		    "CAP_NET_ADMIN");
		goto out;
	}
	if (err == -EOPNOTSUPP) {
		say("this kernel cannot abort a socket from outside (it lacks "
		    "CONFIG_INET_DIAG_DESTROY)");
		goto out;
	}
	if (err < 0) {
		say("SOCK_DESTROY failed on a test connection: %s",
		    strerror(-err));
		goto out;
	}
	if (recv(cfd, &b, 1, MSG_DONTWAIT) >= 0 || errno != ECONNABORTED) {
		say("SOCK_DESTROY did not abort a test connection");
		goto out;
	}
	rc = 0;
out:
	if (afd >= 0)
		close(afd);
	if (cfd >= 0)
		close(cfd);
	if (lfd >= 0)
		close(lfd);
	return rc;
}

/* Stops a listing at its first socket: only whether the kernel takes
 * the cgroup filter matters. */
static int first_only(const struct diag_sock *d, void *arg)
{
	(void)d;
	(void)arg;
	return 1;
}

/* ------------------------------------------------------------------------
 * The program
 */

static char cg_dir[PATH_MAX];

static int pidfd_of(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Starts argv in the group (cg nonzero) with the signal mask old.
 * Returns the pid, or -exit status with the reason said. */
static pid_t launch(char **argv, const sigset_t *old)
{
	int p[2], e = 0;
	pid_t pid;
	ssize_t n;

	if (pipe2(p, O_CLOEXEC) < 0) {
		say("pipe: %s", strerror(errno));
		return -EXIT_FAIL;
	}
	pid = fork();
	if (pid < 0) {
		say("fork: %s", strerror(errno));
		return -EXIT_FAIL;
	}
	if (pid == 0) {
		close(p[0]);
		if (T.cgroup_id || cg_dir[0]) {
			char path[PATH_MAX + 16];
			int fd;

			snprintf(path, sizeof(path), "%s/cgroup.procs", cg_dir);
			fd = open(path, O_WRONLY | O_CLOEXEC);
			if (fd < 0 || write(fd, "0\n", 2) != 2) {
				e = -errno - 1000;
				(void)!write(p[1], &e, sizeof(e));
				_exit(EXIT_FAIL);
			}
			close(fd);
		}
		sigprocmask(SIG_SETMASK, old, NULL);
		execvp(argv[0], argv);
		e = errno;
		(void)!write(p[1], &e, sizeof(e));
		_exit(e == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN);
	}
	close(p[1]);
	do
		n = read(p[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(p[0]);
	if (n == (ssize_t)sizeof(e)) {
		waitpid(pid, NULL, 0);
		if (e <= -1000) {
			say("cannot move the command into %s: %s", cg_dir,
			    strerror(-(e + 1000)));
			return -EXIT_FAIL;
		}
		fprintf(stderr, "deadline: %s: %s\n", argv[0], strerror(e));
		return e == ENOENT || e == ENOTDIR ? -EXIT_NOT_FOUND
						   : -EXIT_CANNOT_RUN;
	}
	return pid;
}

/* Enter pid's network namespace when it is not ours: listings see only
 * the namespace the netlink socket was opened in. */
static int join_netns(pid_t pid)
{
	char path[64];
	struct stat mine, its;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	if (stat("/proc/self/ns/net", &mine) < 0 || stat(path, &its) < 0)
		return 0;	/* no namespaces to compare: same one */
	if (mine.st_ino == its.st_ino && mine.st_dev == its.st_dev)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
		say("process %d is in another network namespace, which "
		    "cannot be entered: %s", (int)pid, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* ------------------------------------------------------------------------
 * Statistics and the end
 */

static void write_stats(pid_t pid)
{
	const char *path = getenv("DEADLINE_STATS");
	FILE *f;

	if (!path || !*path)
		return;
	if (strlen(path) > 5 && !strcmp(path + strlen(path) - 5, ".prom")) {
		dl_log_warn("outside: --stats %s: the outside mode writes the "
			    "JSON line only; not written", path);
		return;
	}
	f = fopen(path, "ae");
	if (!f) {
		dl_log_warn("DEADLINE_STATS=%s: cannot open: %s", path,
			    strerror(errno));
		return;
	}
	fprintf(f, "{\"pid\":%d,\"rules\":[", (int)pid);
	for (size_t i = 0; i < T.neff; i++) {
		const struct ostats *st = &T.stats[i];

		fprintf(f, "%s{\"rule\":\"%s\",\"connections\":%llu,"
			"\"expiries\":{\"connect\":%llu,\"first_byte\":%llu,"
			"\"idle\":%llu,\"request\":%llu},\"retries\":0,"
			"\"bytes_in\":%llu,\"bytes_out\":%llu}",
			i ? "," : "", T.eff[i].rule_name,
			(unsigned long long)st->conns,
			(unsigned long long)st->expiries[DL_PH_CONNECT],
			(unsigned long long)st->expiries[DL_PH_FIRST_BYTE],
			(unsigned long long)st->expiries[DL_PH_IDLE],
			(unsigned long long)st->expiries[DL_PH_REQUEST],
			(unsigned long long)st->bytes_in,
			(unsigned long long)st->bytes_out);
	}
	fputs("]}\n", f);
	fclose(f);
}

static void start_line(const struct outside_opts *o)
{
	const struct dl_field f[] = {
		{ "event", "start", 0 },
		{ "version", DL_VERSION, 0 },
		{ "mode", "outside", 0 },
		{ "target_pid", 0, T.root },
		{ "attach", DL_BOOL(o->pid != 0), 0 },
		{ "filter", T.cgroup_id ? "cgroup" : "inode", 0 },
		{ "cgroup", cg_dir[0] ? cg_dir : "-", 0 },
		{ "interval_ms", 0, T.interval_ns / CLOCK_NS_PER_MS },
		{ "jiffy_ms", 0, T.ticks.tick_ns / CLOCK_NS_PER_MS },
		{ "hz", 0, T.ticks.hz },
		{ "rules", 0, (long long)T.conf.nrules },
		{ "log", dl_log_dest(), 0 },
	};

	dl_log_fields(f, (int)(sizeof(f) / sizeof(f[0])));
}

/* ------------------------------------------------------------------------
 * The loop
 */

/* Follows the program until it exits (launch: its status) or a signal
 * says to stop (attach: detach).  Returns the exit status. */
static int loop(int sfd, int pfd, pid_t child)
{
	int64_t next_list = 0;
	int said_fail = 0;

	for (;;) {
		int64_t now = clock_now(), wake, due;
		struct pollfd p[2] = {
			{ .fd = sfd, .events = POLLIN },
			{ .fd = pfd, .events = POLLIN },
		};
		struct timespec ts;

		if (now >= next_list) {
			int rc = track_list();

			if (rc < 0 && !said_fail++)
				dl_log_warn("outside: listing the sockets "
					    "failed: %s", strerror(-rc));
			next_list = now + T.interval_ns;
		} else {
			track_expire_due(now);
		}
		now = clock_now();
		wake = next_list;
		due = track_due();
		if (due && due < wake)
			wake = due;
		ts = clock_ts(wake > now ? wake - now : 0);
		if (ppoll(p, 2, &ts, NULL) <= 0)
			continue;
		if (p[0].revents) {
			struct signalfd_siginfo si;

			while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (!child)
					return 0;	/* detach */
				/* A terminal's ^C already reached the program
				 * (same process group); a kill aimed at us is
				 * passed on. */
				if (si.ssi_code != SI_KERNEL)
					kill(child, (int)si.ssi_signo);
			}
		}
		if (p[1].revents) {
			int st;

			if (!child)
				return 0;	/* the process we followed is gone */
			if (waitpid(child, &st, 0) == child)
				return WIFEXITED(st) ? WEXITSTATUS(st)
						     : 128 + WTERMSIG(st);
			return EXIT_FAIL;
		}
	}
}

int outside_run(const struct outside_opts *o, char **argv)
{
	sigset_t block, old;
	int sfd, pfd, status, active;
	pid_t child = 0;
	char mnt[PATH_MAX];

	dl_log_init();
	active = load_rules();
	if (active < 0)
		return EXIT_FAIL;
	if (!active) {
		say("no deadline is set (--connect, --first-byte, --idle, "
		    "--request or --config): nothing to enforce");
		if (o->pid)
			return EXIT_FAIL;
	}
	if (o->pid) {
		if (kill(o->pid, 0) < 0 && errno == ESRCH) {
			say("no process %d", (int)o->pid);
			return EXIT_FAIL;
		}
		if (join_netns(o->pid) < 0)
			return EXIT_FAIL;
	}
	T.nl = diag_open();
	T.nl_kill = diag_open();
	if (T.nl < 0 || T.nl_kill < 0) {
		say("cannot open a sock_diag netlink socket: %s (the kernel "
		    "needs CONFIG_INET_DIAG)",
		    strerror(T.nl < 0 ? -T.nl : -T.nl_kill));
		return EXIT_FAIL;
	}
	if (active && probe_destroy() < 0)
		return EXIT_FAIL;
	if (!T.ticks.tick_ns)
		T.ticks.tick_ns = 10 * CLOCK_NS_PER_MS;
	T.interval_ns = (int64_t)(o->interval_ms ? o->interval_ms
						  : OUTSIDE_INTERVAL_MS) *
			CLOCK_NS_PER_MS;

	/* Launch: a cgroup of its own when cgroup v2 is there and the
	 * kernel filters by it; else follow the process tree by inodes. */
	if (!o->pid && active && cg_mount(mnt, sizeof(mnt)) == 0) {
		uint64_t id;
		int rc = cg_create(mnt, cg_dir, sizeof(cg_dir), &id);

		if (rc == 0) {
			rc = diag_dump(T.nl, AF_INET, 1u << TCP_LISTEN, id,
				       first_only, NULL, NULL);
			if (rc == 0) {
				T.cgroup_id = id;
				T.cg_dir = cg_dir;
			} else {
				rmdir(cg_dir);
				cg_dir[0] = '\0';
			}
		} else {
			cg_dir[0] = '\0';
		}
	}

	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGQUIT);
	sigprocmask(SIG_BLOCK, &block, &old);
	if (!o->pid) {
		child = launch(argv, &old);
		if (child < 0) {
			if (cg_dir[0])
				cg_remove(cg_dir);
			return -child;
		}
		if (!active) {
			/* Nothing to enforce: just wait for it. */
			sigprocmask(SIG_SETMASK, &old, NULL);
			signal(SIGINT, SIG_IGN);
			signal(SIGQUIT, SIG_IGN);
			while (waitpid(child, &status, 0) < 0 && errno == EINTR)
				;
			return WIFEXITED(status) ? WEXITSTATUS(status)
						 : 128 + WTERMSIG(status);
		}
		T.root = child;
	} else {
		T.root = o->pid;
		T.attach = 1;
		T.first = 1;
	}
	sfd = signalfd(-1, &block, SFD_CLOEXEC | SFD_NONBLOCK);
	pfd = pidfd_of(T.root);
	if (sfd < 0 || pfd < 0) {
		say("signalfd/pidfd_open: %s", strerror(errno));
		if (child)
			kill(child, SIGKILL);
		return EXIT_FAIL;
	}
	if (dl_log_debug_on)
		start_line(o);
	status = loop(sfd, pfd, child);
	track_forget_all();
	write_stats(T.root);
	if (cg_dir[0]) {
		int moved = cg_remove(cg_dir);

		if (moved > 0)
			dl_log_warn("outside: %d process%s of the command still "
				    "running, no longer followed (moved out of "
				    "%s)", moved, moved == 1 ? "" : "es",
				    cg_dir);
		else if (moved < 0)
			dl_log_warn("outside: cannot remove %s: %s", cg_dir,
				    strerror(errno));
	}
	close(sfd);
	close(pfd);
	conf_free(&T.conf);
	return status;
}
