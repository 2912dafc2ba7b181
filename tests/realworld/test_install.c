/* test_install.c - a newcomer's first hour: make install, then the
 * installed deadline and the printed LD_PRELOAD line against a server that
 * never answers, a DESTDIR stage, `deadline status`, the flags that set
 * DEADLINE_* variables, make uninstall.
 *
 * make runs from the repository root (the cwd, as tests/realworld/run
 * sets it) with BUILD=$DL_BUILD and -o for the built files, so it installs
 * what is already built and never rebuilds the shim under other tests.
 * Every install goes to a temp dir: the real-root install (ldconfig,
 * /etc/ld.so.conf.d) is never run here.
 */
#include "rw.h"

#include <pthread.h>

RW_SUITE(install, 180);

#define LIMIT_MS 1000
#define LDSO_CONF "/etc/ld.so.conf.d/libdeadline.conf"

/* $DL_BUILD as given (make's target names are spelt with it). */
static const char *build_arg(void)
{
	const char *b = getenv("DL_BUILD");

	return b && *b ? b : "build";
}

static void need_plain_build(void)
{
	const char *e = getenv("DL_PRELOAD_EXTRA");

	dl_require_shim();
	if (e && *e)
		cr_skip_test("the install checks use the plain build "
			     "(DL_PRELOAD_EXTRA is set)");
}

static void need_curl(void)
{
	need_plain_build();
	if (!rw_have("curl"))
		cr_skip_test("curl is not installed");
}

/* ------------------------------------------------------------------ */
/* A loopback server that accepts and never answers                   */
/* ------------------------------------------------------------------ */

static void *silent_accept(void *arg)
{
	int lfd = (int)(intptr_t)arg;

	for (;;) {
		int c = accept(lfd, NULL, NULL);

		if (c < 0 && errno != EINTR && errno != ECONNABORTED)
			break;
		/* Keep the connection open and say nothing. */
	}
	return NULL;
}

/* Port of a listener on 127.0.0.1 whose thread accepts and then sleeps
 * (holding every connection, never writing). */
static int silent_server(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	pthread_t th;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
		  listen(fd, 16) == 0 &&
		  getsockname(fd, (struct sockaddr *)&a, &len) == 0,
		  "silent server: %s", strerror(errno));
	cr_assert(pthread_create(&th, NULL, silent_accept,
				 (void *)(intptr_t)fd) == 0, "pthread_create");
	pthread_detach(th);
	return ntohs(a.sin_port);
}

/* ------------------------------------------------------------------ */
/* make install / uninstall                                           */
/* ------------------------------------------------------------------ */

/* make TARGET VARS... from the repository root, with none of the install
 * variables inherited from our environment (nor a parent make's flags). */
static void run_make(struct dl_result *r, const char *target,
		     const char *const *vars)
{
	static char bvar[PATH_MAX + 8], o1[PATH_MAX], o2[PATH_MAX],
		o3[PATH_MAX];
	const char *argv[64];
	static const char *const unset[] = {
		"PREFIX", "LIBDIR", "BINDIR", "MANDIR", "DATADIR", "DOCDIR",
		"DESTDIR", "LDSO_REGISTER", "LDSO_CONF", "LDCONFIG",
		"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "BUILD", NULL,
	};
	int n = 0;

	dl_fmt(bvar, sizeof(bvar), "BUILD=%s", build_arg());
	dl_fmt(o1, sizeof(o1), "%s/libdeadline.so", build_arg());
	dl_fmt(o2, sizeof(o2), "%s/libdlcore.a", build_arg());
	dl_fmt(o3, sizeof(o3), "%s/deadline", build_arg());
	argv[n++] = "env";
	for (const char *const *u = unset; *u; u++) {
		argv[n++] = "-u";
		argv[n++] = *u;
	}
	argv[n++] = "make";
	argv[n++] = "--no-print-directory";
	argv[n++] = "-o";
	argv[n++] = o1;
	argv[n++] = "-o";
	argv[n++] = o2;
	argv[n++] = "-o";
	argv[n++] = o3;
	argv[n++] = bvar;
	argv[n++] = target;
	for (; vars && *vars && n < 62; vars++)
		argv[n++] = *vars;
	argv[n] = NULL;
	dl_run(r, argv, DL_V("LC_ALL=C"), 0, 120000);
}

/* The path after "    LD_PRELOAD=" in make install's output ("" if none). */
static const char *printed_preload(const char *out)
{
	static char path[PATH_MAX];
	const char *l = dl_line(out, "    LD_PRELOAD=");
	size_t n;

	path[0] = '\0';
	if (!l)
		return path;
	l += strlen("    LD_PRELOAD=");
	n = strcspn(l, "\n");
	cr_assert(n < sizeof(path), "LD_PRELOAD line too long");
	memcpy(path, l, n);
	path[n] = '\0';
	return path;
}

static int count_files_cb_n;
static int count_files_cb(const char *path, const struct stat *st, int flag,
			  struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag != FTW_D && flag != FTW_DP && flag != FTW_DNR) {
		rw_note("left behind: %s", path);
		count_files_cb_n++;
	}
	return 0;
}

/* How many files (anything but directories) are under dir. */
static int count_files(const char *dir)
{
	count_files_cb_n = 0;
	nftw(dir, count_files_cb, 16, FTW_PHYS);
	return count_files_cb_n;
}

static int exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}


/* The command failed at the deadline: not killed by our hard timeout,
 * a non-zero exit, one deadline event, and soon after the limit. */
static void assert_failed_at_deadline(struct dl_result *r, const char *what)
{
	rw_note("%s: exit %d after %ld ms; %s", what, r->code, r->ms,
		rw_line_with(r->err, "event=deadline"));
	dl_assert_run(r, !r->timed_out, "%s hung: no deadline", what);
	dl_assert_run(r, r->exited && r->code != 0,
		      "%s should fail at the deadline", what);
	dl_assert_run(r, rw_deadline_events(r->err) == 1 &&
			  strstr(r->err, "phase=request"),
		      "%s: expected one request-deadline event", what);
	dl_assert_run(r, r->ms >= LIMIT_MS && r->ms <= LIMIT_MS + 1500,
		      "%s ended after %ld ms (limit %d)", what, r->ms,
		      LIMIT_MS);
}

/* ------------------------------------------------------------------ */
/* make install PREFIX=<tmp>                                          */
/* ------------------------------------------------------------------ */

Test(install, prefix_install_deadline_and_printed_line_stop_curl)
{
	char prefix[PATH_MAX], pvar[PATH_MAX + 8], lib[PATH_MAX],
		bin[PATH_MAX], url[64], want[2 * PATH_MAX];
	int had_conf = exists(LDSO_CONF), port;
	struct dl_result r;
	char *man;

	need_curl();
	dl_fmt(prefix, sizeof(prefix), "%s", rw_tmp("prefix"));
	dl_fmt(pvar, sizeof(pvar), "PREFIX=%s", prefix);
	dl_fmt(lib, sizeof(lib), "%s/lib/libdeadline.so", prefix);
	dl_fmt(bin, sizeof(bin), "%s/bin/deadline", prefix);

	run_make(&r, "install", DL_V(pvar));
	dl_assert_ok(&r, "make install PREFIX=<tmp>");
	cr_assert(exists(lib) && exists(bin), "library or deadline missing");
	cr_assert(exists(rw_tmp("prefix/share/man/man1/deadline.1")) &&
		  exists(rw_tmp("prefix/share/man/man7/libdeadline.7")),
		  "man pages missing");
	cr_assert(exists(rw_tmp("prefix/share/doc/libdeadline/README.md")) &&
		  exists(rw_tmp("prefix/share/doc/libdeadline/config.md")),
		  "docs missing under share/doc/libdeadline");
	/* The installed man page names the installed docs. */
	man = dl_read_file(rw_tmp("prefix/share/man/man1/deadline.1"));
	dl_fmt(want, sizeof(want), "%s/share/doc/libdeadline/config.md",
	       prefix);
	cr_assert(strstr(man, want) && !strstr(man, "docs/config.md"),
		  "deadline.1 should name %s", want);
	free(man);
	/* Not registered with the loader (a temp prefix): the exact
	 * absolute line is printed instead, and /etc is untouched. */
	dl_assert_run(&r, strcmp(printed_preload(r.out), lib) == 0,
		      "make install should print 'LD_PRELOAD=%s'", lib);
	cr_assert(had_conf || !exists(LDSO_CONF),
		  "a temp-prefix install must not write %s", LDSO_CONF);
	dl_result_free(&r);

	port = silent_server();
	dl_fmt(url, sizeof(url), "http://127.0.0.1:%d/", port);

	/* The installed deadline preloads the installed library. */
	dl_run(&r, DL_V(bin, "env"), NULL, 0, 10000);
	dl_assert_ok(&r, "deadline env");
	{
		char real[PATH_MAX], line[PATH_MAX + 16];

		cr_assert(realpath(lib, real), "realpath %s", lib);
		dl_fmt(line, sizeof(line), "LD_PRELOAD=%s\n", real);
		dl_assert_run(&r, strstr(r.out, line),
			      "the installed deadline should preload %s", real);
	}
	dl_result_free(&r);

	dl_run(&r, DL_V(bin, "--request", "1s", "--", "curl", "-sS", url),
	       NULL, 0, 15000);
	assert_failed_at_deadline(&r, "installed deadline + curl");
	dl_result_free(&r);

	/* The printed line, as a user would paste it. */
	{
		char pre[PATH_MAX + 16];

		dl_fmt(pre, sizeof(pre), "LD_PRELOAD=%s", lib);
		dl_run(&r, DL_V("curl", "-sS", url),
		       DL_V(pre, "DEADLINE_REQUEST_TIMEOUT=1s"), 0, 15000);
		assert_failed_at_deadline(&r, "printed LD_PRELOAD line + curl");
		dl_result_free(&r);
	}

	/* Control: without the library curl is still waiting. */
	dl_run(&r, DL_V("curl", "-sS", url), NULL, 0, 2500);
	dl_assert_run(&r, r.timed_out,
		      "without libdeadline curl should still be waiting");
	dl_result_free(&r);

	run_make(&r, "uninstall", DL_V(pvar));
	dl_assert_ok(&r, "make uninstall PREFIX=<tmp>");
	cr_assert(count_files(prefix) == 0,
		  "make uninstall left files under %s (listed above)", prefix);
	cr_assert(!exists(rw_tmp("prefix/share/doc/libdeadline")),
		  "make uninstall left share/doc/libdeadline");
	dl_result_free(&r);
}

/* ------------------------------------------------------------------ */
/* make install DESTDIR=<stage> PREFIX=/usr LIBDIR=<multiarch dir>    */
/* ------------------------------------------------------------------ */

Test(install, staged_install_finds_its_library_and_looks_in_libdir)
{
	const char *libdir = "/usr/lib/x86_64-linux-gnu";
	char stage[PATH_MAX], moved[PATH_MAX], dvar[PATH_MAX + 8],
		lvar[PATH_MAX + 8], bin[PATH_MAX], lib[PATH_MAX],
		line[2 * PATH_MAX], url[64], real[PATH_MAX];
	struct dl_result r;
	char *man;

	need_curl();
	dl_fmt(stage, sizeof(stage), "%s", rw_tmp("stage"));
	dl_fmt(dvar, sizeof(dvar), "DESTDIR=%s", stage);
	dl_fmt(lvar, sizeof(lvar), "LIBDIR=%s", libdir);
	run_make(&r, "install", DL_V(dvar, "PREFIX=/usr", lvar));
	dl_assert_ok(&r, "staged make install");
	dl_fmt(lib, sizeof(lib), "%s%s/libdeadline.so", stage, libdir);
	dl_fmt(bin, sizeof(bin), "%s/usr/bin/deadline", stage);
	cr_assert(exists(lib) && exists(bin), "staged files missing");
	dl_fmt(line, sizeof(line), "%s/libdeadline.so", libdir);
	dl_assert_run(&r, strcmp(printed_preload(r.out), line) == 0,
		      "a staged install should print the final path %s", line);
	man = dl_read_file(rw_tmp("stage/usr/share/man/man7/libdeadline.7"));
	cr_assert(strstr(man, "/usr/share/doc/libdeadline/faults.md"),
		  "libdeadline.7 should name /usr/share/doc/libdeadline");
	free(man);
	dl_result_free(&r);

	/* From the stage, the staged deadline finds the staged library
	 * (LIBDIR relative to BINDIR: ../lib/x86_64-linux-gnu). */
	cr_assert(realpath(lib, real), "realpath %s", lib);
	dl_fmt(line, sizeof(line), "LD_PRELOAD=%s\n", real);
	dl_run(&r, DL_V(bin, "env"), NULL, 0, 10000);
	dl_assert_run(&r, r.exited && r.code == 0 && strstr(r.out, line),
		      "the staged deadline should preload %s", real);
	dl_result_free(&r);

	dl_fmt(url, sizeof(url), "http://127.0.0.1:%d/", silent_server());
	dl_run(&r, DL_V(bin, "--request", "1s", "--", "curl", "-sS", url),
	       NULL, 0, 15000);
	assert_failed_at_deadline(&r, "staged deadline + curl");
	dl_result_free(&r);

	/* The whole stage moved elsewhere: still its own library. */
	dl_fmt(moved, sizeof(moved), "%s", rw_tmp("moved"));
	cr_assert(rename(stage, moved) == 0, "rename: %s", strerror(errno));
	dl_fmt(bin, sizeof(bin), "%s/usr/bin/deadline", moved);
	dl_fmt(lib, sizeof(lib), "%s%s/libdeadline.so", moved, libdir);
	cr_assert(realpath(lib, real), "realpath %s", lib);
	dl_fmt(line, sizeof(line), "LD_PRELOAD=%s\n", real);
	dl_run(&r, DL_V(bin, "env"), NULL, 0, 10000);
	dl_assert_run(&r, r.exited && r.code == 0 && strstr(r.out, line),
		      "the moved deadline should preload %s", real);
	dl_result_free(&r);

	/* Without its tree (as if moved to /usr/bin alone), it looks in
	 * LIBDIR, and says everywhere it looked when nothing is there. */
	free(rw_must(DL_V("mkdir", "-p", rw_tmp("alone/bin")), NULL, 5000));
	free(rw_must(DL_V("cp", bin, rw_tmp("alone/bin/deadline")), NULL,
		     5000));
	dl_run(&r, DL_V(rw_tmp("alone/bin/deadline"), "env"), NULL, 0, 10000);
	dl_fmt(line, sizeof(line), "%s/libdeadline.so", libdir);
	if (exists(line)) {
		dl_assert_run(&r, r.exited && r.code == 0 &&
				  strstr(r.out, line),
			      "deadline should use %s", line);
	} else {
		dl_assert_run(&r, r.exited && r.code == 125 &&
				  strstr(r.err, line) &&
				  strstr(r.err, rw_tmp("alone/lib/libdeadline.so")) &&
				  strstr(r.err, rw_tmp("alone/bin/libdeadline.so")),
			      "deadline should fail (125) listing %s and the "
			      "places beside it", line);
	}
	dl_result_free(&r);

	dl_fmt(dvar, sizeof(dvar), "DESTDIR=%s", moved);
	run_make(&r, "uninstall", DL_V(dvar, "PREFIX=/usr", lvar));
	dl_assert_ok(&r, "staged make uninstall");
	cr_assert(count_files(moved) == 0,
		  "make uninstall left files under the stage (listed above)");
	dl_result_free(&r);
}

/* A LIBDIR no fixed guess covers: only LIBDIR relative to BINDIR, as
 * computed for this install, finds it in the stage. */
Test(install, staged_install_odd_dirs_relative_libdir)
{
	char stage[PATH_MAX], dvar[PATH_MAX + 8], lib[PATH_MAX], bin[PATH_MAX],
		real[PATH_MAX], line[PATH_MAX + 16];
	struct dl_result r;

	need_plain_build();
	dl_fmt(stage, sizeof(stage), "%s", rw_tmp("stage2"));
	dl_fmt(dvar, sizeof(dvar), "DESTDIR=%s", stage);
	run_make(&r, "install", DL_V(dvar, "PREFIX=/opt/dl",
				     "BINDIR=/opt/dl/sbin/tools",
				     "LIBDIR=/opt/dl/libexec/preload"));
	dl_assert_ok(&r, "staged make install (odd dirs)");
	dl_result_free(&r);
	dl_fmt(bin, sizeof(bin), "%s/opt/dl/sbin/tools/deadline", stage);
	dl_fmt(lib, sizeof(lib), "%s/opt/dl/libexec/preload/libdeadline.so",
	       stage);
	cr_assert(realpath(lib, real), "realpath %s: %s", lib, strerror(errno));
	dl_fmt(line, sizeof(line), "LD_PRELOAD=%s\n", real);
	dl_run(&r, DL_V(bin, "env"), NULL, 0, 10000);
	dl_assert_run(&r, r.exited && r.code == 0 && strstr(r.out, line),
		      "the staged deadline should preload %s", real);
	dl_result_free(&r);
	run_make(&r, "uninstall", DL_V(dvar, "PREFIX=/opt/dl",
				       "BINDIR=/opt/dl/sbin/tools",
				       "LIBDIR=/opt/dl/libexec/preload"));
	dl_assert_ok(&r, "staged make uninstall (odd dirs)");
	cr_assert(count_files(stage) == 0, "make uninstall left files");
	dl_result_free(&r);
}

/* ------------------------------------------------------------------ */
/* deadline status PID                                                */
/* ------------------------------------------------------------------ */

Test(install, status_says_whether_loaded)
{
	const char *dl = dl_path("deadline");
	char pid_s[16], real[PATH_MAX], stats[4 * PATH_MAX];
	struct dl_result r;
	uint64_t end;
	pid_t pid, gone;

	need_plain_build();
	cr_assert(realpath(dl_shim(), real), "realpath %s", dl_shim());

	/* A preloaded process (deadline execs sleep, same pid). */
	pid = dl_daemon(DL_V(dl, "--request", "5s", "--stats",
			     rw_tmp("stats.json"), "--log", rw_tmp("dl.log"),
			     "--", "sleep", "60"),
			NULL, "sleep.out");
	dl_fmt(pid_s, sizeof(pid_s), "%d", (int)pid);
	/* Before exec the process is deadline itself, and the library is
	 * mapped a moment before its constructor opens the log: wait for
	 * sleep with the shim started. */
	end = dl_now_ns() + 5000000000u;
	for (;;) {
		dl_run(&r, DL_V(dl, "status", pid_s), NULL, 0, 10000);
		if ((r.exited && r.code == 0 && strstr(r.out, "open on fd")) ||
		    dl_now_ns() > end)
			break;
		dl_result_free(&r);
		usleep(50000);
	}
	rw_note("deadline status (preloaded sleep):\n%s", r.out);
	dl_assert_run(&r, r.exited && r.code == 0,
		      "status of a preloaded process should exit 0");
	dl_assert_run(&r, strstr(r.out, real) && strstr(r.out, "loaded"),
		      "status should name the loaded library %s", real);
	dl_assert_run(&r, strstr(r.out, "DEADLINE_REQUEST_TIMEOUT=5000ms"),
		      "status should show the DEADLINE_* settings");
	dl_assert_run(&r, strstr(r.out, rw_tmp("dl.log")) &&
			  strstr(r.out, "open on fd"),
		      "status should show the log file open");
	dl_result_free(&r);

	/* The newest statistics line of that pid, not another pid's. */
	dl_fmt(stats, sizeof(stats),
	       "{\"pid\":%d,\"rules\":[{\"rule\":\"old\"}]}\n"
	       "{\"pid\":%d,\"rules\":[{\"rule\":\"newest\"}]}\n"
	       "{\"pid\":%d1,\"rules\":[{\"rule\":\"other\"}]}\n",
	       (int)pid, (int)pid, (int)pid);
	rw_write(rw_tmp("stats.json"), stats);
	dl_run(&r, DL_V(dl, "status", pid_s), NULL, 0, 10000);
	dl_assert_run(&r, r.exited && r.code == 0 &&
			  strstr(r.out, "\"rule\":\"newest\"") &&
			  !strstr(r.out, "\"rule\":\"old\"") &&
			  !strstr(r.out, "\"rule\":\"other\""),
		      "status should show only the newest line of pid %d",
		      (int)pid);
	dl_result_free(&r);

	/* A process without the library. */
	pid = dl_daemon(DL_V("sleep", "60"), NULL, "plain.out");
	dl_fmt(pid_s, sizeof(pid_s), "%d", (int)pid);
	usleep(200000);
	dl_run(&r, DL_V(dl, "status", pid_s), NULL, 0, 10000);
	rw_note("deadline status (plain sleep):\n%s", r.out);
	dl_assert_run(&r, r.exited && r.code == 1 &&
			  strstr(r.out, "not loaded"),
		      "status of a process without the library should exit 1");
	dl_result_free(&r);

	/* No such process. */
	gone = fork();
	cr_assert(gone >= 0, "fork");
	if (gone == 0)
		_exit(0);
	waitpid(gone, NULL, 0);
	dl_fmt(pid_s, sizeof(pid_s), "%d", (int)gone);
	dl_run(&r, DL_V(dl, "status", pid_s), NULL, 0, 10000);
	dl_assert_run(&r, r.exited && r.code == 2 &&
			  strstr(r.err, "no process"),
		      "status of a gone process should exit 2");
	dl_result_free(&r);

	dl_run(&r, DL_V(dl, "status", "12ab"), NULL, 0, 10000);
	dl_assert_run(&r, r.exited && r.code == 125 &&
			  strstr(r.err, "not a process ID"),
		      "a bad PID is a usage error (125)");
	dl_result_free(&r);
}

/* ------------------------------------------------------------------ */
/* The flags for what the environment offers                          */
/* ------------------------------------------------------------------ */

Test(install, flags_reach_the_environment)
{
	const char *dl = dl_path("deadline");
	char want[PATH_MAX + 32], url[64], *st;
	struct dl_result r;

	need_plain_build();
	/* A relative --stats is made absolute (the command may chdir). */
	dl_run_opts(&r, DL_V(dl, "--debug", "--log-format=json",
			     "--stats=rel.json", "--teardown=close", "env"),
		    NULL, 0, 10000, dl_tmpdir());
	dl_assert_ok(&r, "deadline --debug ... env");
	dl_fmt(want, sizeof(want), "DEADLINE_STATS=%s/rel.json\n",
	       dl_tmpdir());
	dl_assert_run(&r, strstr(r.out, "DEADLINE_DEBUG=1\n") &&
			  strstr(r.out, "DEADLINE_LOG_FORMAT=json\n") &&
			  strstr(r.out, "DEADLINE_TEARDOWN=close\n") &&
			  strstr(r.out, want),
		      "each flag should set its variable");
	dl_result_free(&r);

	dl_run(&r, DL_V(dl, "--log-format", "text", "--teardown", "reset",
			"env"), NULL, 0, 10000);
	dl_assert_run(&r, r.exited && r.code == 0 &&
			  strstr(r.out, "DEADLINE_LOG_FORMAT=logfmt\n") &&
			  strstr(r.out, "DEADLINE_TEARDOWN=reset\n"),
		      "--log-format text sets logfmt");
	dl_result_free(&r);

	/* Bad values: a clear message, exit 125, the command not run. */
	{
		const char *const *bad[] = {
			DL_V(dl, "--log-format=xml", "env"),
			DL_V(dl, "--teardown=fin", "env"),
			DL_V(dl, "--stats=", "env"),
			DL_V(dl, "--stats"),
		};
		const char *names[] = { "--log-format", "--teardown",
					"--stats", "--stats" };

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			dl_run(&r, bad[i], NULL, 0, 10000);
			dl_assert_run(&r, r.exited && r.code == 125 &&
					  strstr(r.err, names[i]) &&
					  !strstr(r.out, "DEADLINE_"),
				      "%s: bad value should exit 125",
				      bad[i][1]);
			dl_result_free(&r);
		}
	}

	/* `deadline check` without FILE: a usage error, as deadline(1)
	 * says (FILE is required). */
	dl_run(&r, DL_V(dl, "check"), NULL, 0, 10000);
	dl_assert_run(&r, r.exited && r.code == 125 &&
			  strstr(r.err, "FILE") && !r.out[0],
		      "deadline check without FILE should exit 125");
	dl_result_free(&r);

	/* The flags act: a JSON deadline line, a statistics line. */
	if (!rw_have("curl"))
		return;
	dl_fmt(url, sizeof(url), "http://127.0.0.1:%d/", silent_server());
	dl_run(&r, DL_V(dl, "--request", "500ms", "--log-format=json",
			"--stats", rw_tmp("s.json"), "--", "curl", "-sS",
			url), NULL, 0, 10000);
	dl_assert_run(&r, !r.timed_out && r.code != 0 &&
			  strstr(r.err, "\"event\":\"deadline\""),
		      "--log-format=json should give a JSON deadline line");
	st = dl_read_file(rw_tmp("s.json"));
	cr_assert(strstr(st, "{\"pid\":") &&
		  strstr(st, "\"request\":1"),
		  "--stats should give a statistics line with one request "
		  "expiry, got: %s", st);
	free(st);
	dl_result_free(&r);
}
