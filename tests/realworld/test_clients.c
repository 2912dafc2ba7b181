/* test_clients.c - real clients against misbehaving loopback servers.
 *
 * git: `git clone http://...` runs git-remote-http (libcurl) in a child
 * process; the shim must follow it there.  Against a server that accepts
 * and never answers, the first-byte deadline fires within limit + 100 ms
 * and git fails; without the shim git waits until the hard timeout.
 * Against working servers (git http-backend behind python3's CGI server
 * for the smart protocol, a static directory for the dumb one) a clone
 * gives the same commits and the same tree with and without the shim.
 *
 * psql: a PostgreSQL server started by the test in a temp dir (skipped
 * when the Debian postgresql package is not installed: it is on this
 * project's machines, and too heavy to install just for this), stopped
 * with SIGSTOP: psql hangs without the shim and fails at the first-byte
 * deadline with it; after SIGCONT it answers again.
 */
#include "rw.h"

#include <glob.h>

RW_SUITE(clients, 120);

#define LIMIT_MS 1000

static const char *const git_env[] = {
	"GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=true",
	"LC_ALL=C", NULL, NULL,
};

/* git_env with HOME pointing into the temp dir. */
static const char *const *genv(const char *extra)
{
	static char home[PATH_MAX + 8];
	static const char *env[16];
	int n = 0;

	dl_fmt(home, sizeof(home), "HOME=%s", dl_tmpdir());
	for (const char *const *e = git_env; *e; e++)
		env[n++] = *e;
	env[n++] = home;
	if (extra)
		env[n++] = extra;
	env[n] = NULL;
	return env;
}

/* ------------------------------------------------------------------ */
/* git against a server that never answers                            */
/* ------------------------------------------------------------------ */

Test(clients, git_clone_silent_server_deadline_in_child)
{
	struct dl_server *s;
	struct dl_result r;
	char url[128], ln[256];
	const char *env[16];
	int n = 0;

	dl_require_shim();
	s = dl_stallsrv("silent", "--report", NULL);
	dl_fmt(url, sizeof(url), "http://127.0.0.1:%d/repo.git", s->port);
	for (const char *const *e = genv(NULL); *e; e++)
		env[n++] = *e;
	env[n++] = "DEADLINE_FIRST_BYTE_TIMEOUT=1s";
	env[n] = NULL;

	dl_run(&r, DL_V("git", "clone", "-q", url, rw_tmp("clone")), env, 1,
	       15000);
	rw_note("git clone (silent server, shim): exit %d after %ld ms; %s",
		r.code, r.ms, rw_line_with(r.err, "event=deadline"));
	dl_assert_run(&r, r.exited && r.code != 0,
		      "git clone should fail at the deadline");
	const char *ev = dl_line(r.err, "libdeadline: ");
	ev = ev ? strstr(r.err, "event=deadline") : NULL;
	dl_assert_run(&r, ev, "no deadline event: did the shim follow git "
			      "into git-remote-http?");
	long el = dl_field(rw_line_with(r.err, "event=deadline"), "elapsed_ms=");
	dl_assert_run(&r, el >= LIMIT_MS && el <= LIMIT_MS + 100,
		      "deadline fired %ld ms into the phase (limit %d + 100)",
		      el, LIMIT_MS);
	dl_assert_run(&r, strstr(r.err, "phase=first_byte") &&
			  strstr(r.err, "timed out"),
		      "expected a first_byte expiry and git reporting a timeout");
	/* Whole run: git start, fork+exec of the helper, the deadline. */
	dl_assert_run(&r, r.ms >= LIMIT_MS && r.ms <= LIMIT_MS + 1500,
		      "git took %ld ms", r.ms);
	cr_assert(dl_server_line(s, "END ", 2000, ln, sizeof(ln)),
		  "the server saw no end of the connection");
	cr_assert(strstr(ln, "END rst"), "server saw '%s', expected a reset", ln);
	dl_result_free(&r);
}

Test(clients, git_clone_silent_server_hangs_without_shim)
{
	struct dl_server *s = dl_stallsrv("silent", NULL);
	struct dl_result r;
	char url[128];

	dl_fmt(url, sizeof(url), "http://127.0.0.1:%d/repo.git", s->port);
	dl_run(&r, DL_V("git", "clone", "-q", url, rw_tmp("clone")),
	       genv(NULL), 0, 3000);
	rw_note("git clone (silent server, no shim): %s after %ld ms",
		r.timed_out ? "still waiting, killed" : "ended", r.ms);
	dl_assert_run(&r, r.timed_out,
		      "without the shim git should still be waiting");
	dl_result_free(&r);
}

/* ------------------------------------------------------------------ */
/* git against working servers: same result with and without the shim */
/* ------------------------------------------------------------------ */

/* A repository with two commits, a subdirectory and a binary file, as a
 * bare repo under www/ (dumb HTTP needs update-server-info), plus a CGI
 * script that runs git http-backend on it (smart HTTP). */
static void make_repo(void)
{
	const char *src = rw_tmp("src"), *www = rw_tmp("www");
	char script[4 * PATH_MAX];
	unsigned char blob[150000];
	FILE *f;

	cr_assert(chmod(dl_tmpdir(), 0755) == 0, "chmod: %s", strerror(errno));
	free(rw_must(DL_V("git", "init", "-q", src), NULL, 10000));
	free(rw_must(DL_V("mkdir", "-p", rw_tmp("src/dir/sub"),
			  rw_tmp("www/cgi-bin")),
		     NULL, 5000));
	rw_write(rw_tmp("src/README"), "libdeadline real-world clone test\n");
	for (size_t i = 0; i < sizeof(blob); i++)
		blob[i] = (unsigned char)hp_mix64(i);
	f = fopen(rw_tmp("src/dir/sub/blob.bin"), "w");
	cr_assert(f && fwrite(blob, 1, sizeof(blob), f) == sizeof(blob) &&
		  fclose(f) == 0, "write blob");
	const char *const *env = genv(NULL);
	struct dl_result r;
	const char *steps[][12] = {
		{ "git", "-c", "user.name=t", "-c", "user.email=t@t", "add", ".", NULL },
		{ "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit",
		  "-qm", "one", NULL },
	};
	for (int i = 0; i < 2; i++) {
		dl_run_opts(&r, steps[i], env, 0, 10000, src);
		dl_assert_ok(&r, steps[i][5]);
		dl_result_free(&r);
	}
	rw_write(rw_tmp("src/dir/second.txt"), "second commit\n");
	dl_run_opts(&r, DL_V("git", "-c", "user.name=t", "-c", "user.email=t@t",
			     "add", "."), env, 0, 10000, src);
	dl_result_free(&r);
	dl_run_opts(&r, DL_V("git", "-c", "user.name=t", "-c", "user.email=t@t",
			     "commit", "-qm", "two"), env, 0, 10000, src);
	dl_assert_ok(&r, "commit two");
	dl_result_free(&r);
	dl_run(&r, DL_V("git", "clone", "-q", "--bare", src, rw_tmp("www/repo.git")),
	       env, 0, 10000);
	dl_assert_ok(&r, "clone --bare");
	dl_result_free(&r);
	dl_run(&r, DL_V("git", "-C", rw_tmp("www/repo.git"), "update-server-info"),
	       env, 0, 10000);
	dl_assert_ok(&r, "update-server-info");
	dl_result_free(&r);

	/* python's CGI server runs scripts as nobody when started as root. */
	dl_fmt(script, sizeof(script),
	       "#!/bin/sh\n"
	       "export GIT_PROJECT_ROOT='%s' GIT_HTTP_EXPORT_ALL=1 HOME='%s'\n"
	       "export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_COUNT=1\n"
	       "export GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0='*'\n"
	       "exec git http-backend\n",
	       www, www);
	rw_write(rw_tmp("www/cgi-bin/git"), script);
	cr_assert(chmod(rw_tmp("www/cgi-bin/git"), 0755) == 0, "chmod");
	free(rw_must(DL_V("chmod", "-R", "a+rX", dl_tmpdir()), NULL, 5000));
}

/* "HEAD <sha>" + `git ls-files -s` (mode, blob id, path) + file bytes
 * hashed by git: everything that makes the checked-out tree. */
static char *describe_clone(const char *dir)
{
	char *head = rw_must(DL_V("git", "-C", dir, "rev-parse", "HEAD"), NULL,
			     10000);
	char *files = rw_must(DL_V("git", "-C", dir, "ls-files", "-s"), NULL,
			      10000);
	char *status = rw_must(DL_V("git", "-C", dir, "status", "--porcelain"),
			       NULL, 10000);
	char *count = rw_must(DL_V("git", "-C", dir, "rev-list", "--count",
				   "HEAD"), NULL, 10000);
	size_t n = strlen(head) + strlen(files) + strlen(status) +
		   strlen(count) + 64;
	char *all = malloc(n);

	cr_assert(all, "out of memory");
	snprintf(all, n, "HEAD %scommits %s%sstatus:%s", head, count, files,
		 status);
	free(head);
	free(files);
	free(status);
	free(count);
	return all;
}

static void clone_both_ways(const char *url, const char *what)
{
	struct dl_result a, b;
	char stats[PATH_MAX + 32], dir_a[PATH_MAX], dir_b[PATH_MAX];
	const char *env[20];
	int n = 0;

	dl_fmt(dir_a, sizeof(dir_a), "%s/%s-plain", dl_tmpdir(), what);
	dl_fmt(dir_b, sizeof(dir_b), "%s/%s-shim", dl_tmpdir(), what);
	dl_fmt(stats, sizeof(stats), "DEADLINE_STATS=%s/%s-stats", dl_tmpdir(),
	       what);
	for (const char *const *e = genv(NULL); *e; e++)
		env[n++] = *e;
	env[n++] = "DEADLINE_CONNECT_TIMEOUT=10s";
	env[n++] = "DEADLINE_FIRST_BYTE_TIMEOUT=10s";
	env[n++] = "DEADLINE_IDLE_TIMEOUT=10s";
	env[n++] = "DEADLINE_REQUEST_TIMEOUT=10s";
	env[n++] = stats;
	env[n] = NULL;

	dl_run(&a, DL_V("git", "clone", "-q", url, dir_a), genv(NULL), 0, 30000);
	dl_assert_ok(&a, "git clone without the shim");
	dl_run(&b, DL_V("git", "clone", "-q", url, dir_b), env, 1, 30000);
	dl_assert_ok(&b, "git clone with the shim");
	dl_assert_run(&b, !strstr(b.err, "libdeadline:"),
		      "the shim said something during a clean clone");

	char *da = describe_clone(dir_a), *db = describe_clone(dir_b);
	cr_assert_str_eq(da, db, "%s clones differ:\nplain:\n%s\nshim:\n%s",
			 what, da, db);
	free(rw_must(DL_V("diff", "-r", "-x", ".git", dir_a, dir_b), NULL,
		     10000));

	/* The shim was loaded in git-remote-http and saw the connections. */
	char *st = rw_must(DL_V("cat", stats + strlen("DEADLINE_STATS=")),
			   NULL, 5000);
	long conns = 0;
	for (const char *p = st; (p = strstr(p, "\"connections\":")); p++)
		conns += atol(p + 14);
	rw_note("git %s clone: same tree with and without the shim; %ld "
		"connections tracked; %s", what, conns, strtok(da, "\n"));
	cr_assert(conns > 0, "the shim tracked no connection:\n%s", st);
	free(st);
	free(da);
	free(db);
	dl_result_free(&a);
	dl_result_free(&b);
}

Test(clients, git_clone_smart_and_dumb_http_same_tree)
{
	struct dl_server *srv;
	char url[128];

	dl_require_shim();
	make_repo();
	srv = rw_server(DL_V("python3", "-u", "-m", "http.server", "--cgi", "0",
			     "--bind", "127.0.0.1", "--directory",
			     rw_tmp("www")),
			NULL, 0, NULL, " port ", 10000);
	dl_fmt(url, sizeof(url), "http://127.0.0.1:%d/cgi-bin/git/repo.git",
	       srv->port);
	clone_both_ways(url, "smart");
	dl_fmt(url, sizeof(url), "http://127.0.0.1:%d/repo.git", srv->port);
	clone_both_ways(url, "dumb");
}

/* ------------------------------------------------------------------ */
/* psql against a stopped PostgreSQL                                   */
/* ------------------------------------------------------------------ */

static const char *pg_bindir(void)
{
	static char dir[PATH_MAX];
	glob_t g;

	if (glob("/usr/lib/postgresql/*/bin/postgres", 0, NULL, &g) != 0)
		return NULL;
	dl_fmt(dir, sizeof(dir), "%s", g.gl_pathv[g.gl_pathc - 1]);
	globfree(&g);
	*strrchr(dir, '/') = '\0';
	return dir;
}

static void psql(struct dl_result *r, int port, int preload, const char *extra,
		 long timeout_ms)
{
	char p[16];

	snprintf(p, sizeof(p), "%d", port);
	dl_run(r, DL_V("psql", "-X", "-h", "127.0.0.1", "-p", p, "-U", "postgres",
		       "-d", "postgres", "-Atc", "select 40 + 2"),
	       extra ? DL_V("PGCONNECT_TIMEOUT=0", "LC_ALL=C", extra)
		     : DL_V("PGCONNECT_TIMEOUT=0", "LC_ALL=C"),
	       preload, timeout_ms);
}

Test(clients, psql_against_stopped_postgres)
{
	const char *bin = pg_bindir();
	struct passwd *pw = getpwnam("postgres");
	char path[PATH_MAX], port_s[16], sockdir[PATH_MAX];
	struct dl_result r;
	pid_t pm = 0;
	int port;

	if (!bin || !pw || !rw_have("psql"))
		cr_skip_test("PostgreSQL (Debian postgresql) is not installed");
	dl_require_shim();
	dl_fmt(sockdir, sizeof(sockdir), "%s", rw_tmp("pg"));
	cr_assert(mkdir(sockdir, 0700) == 0 && chown(sockdir, pw->pw_uid,
						      pw->pw_gid) == 0 &&
		  chmod(dl_tmpdir(), 0755) == 0,
		  "pg dir: %s", strerror(errno));
	char initdb[PATH_MAX], postgres[PATH_MAX], data[PATH_MAX + 8];
	dl_fmt(initdb, sizeof(initdb), "%s/initdb", bin);
	dl_fmt(postgres, sizeof(postgres), "%s/postgres", bin);
	dl_fmt(data, sizeof(data), "%s/data", sockdir);
	const char *uid = "--reuid=postgres", *gid = "--regid=postgres";
	dl_run(&r, DL_V("setpriv", uid, gid, "--init-groups", initdb, "-D", data,
			"-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8",
			"--locale=C"),
	       DL_V("LC_ALL=C"), 0, 60000);
	dl_assert_ok(&r, "initdb");
	dl_result_free(&r);

	port = dl_free_port();
	snprintf(port_s, sizeof(port_s), "%d", port);
	int logfd = open(rw_tmp("postgres.log"), O_WRONLY | O_CREAT | O_CLOEXEC,
			 0644);
	cr_assert(logfd >= 0, "postgres.log: %s", strerror(errno));
	rw_adopt(dl_spawn(DL_V("setpriv", uid, gid, "--init-groups", postgres,
			       "-D", data, "-p", port_s, "-k", sockdir, "-c",
			       "listen_addresses=127.0.0.1", "-c", "fsync=off"),
			  DL_V("LC_ALL=C"), 0, NULL, logfd, logfd));
	close(logfd);
	for (int i = 0; i < 200; i++) {
		dl_run(&r, DL_V("pg_isready", "-q", "-h", "127.0.0.1", "-p", port_s,
				"-U", "postgres"),
		       NULL, 0, 5000);
		int ok = r.exited && r.code == 0;
		dl_result_free(&r);
		if (ok)
			break;
		hp_sleep_ms(50);
	}
	dl_fmt(path, sizeof(path), "%s/postmaster.pid", data);
	FILE *f = fopen(path, "r");
	cr_assert(f && fscanf(f, "%d", &pm) == 1 && pm > 0,
		  "postgres did not start (no %s)", path);
	fclose(f);

	/* Working server: same answer with and without the shim. */
	psql(&r, port, 0, NULL, 20000);
	dl_assert_run(&r, r.exited && r.code == 0 && !strcmp(r.out, "42\n"),
		      "psql without the shim");
	dl_result_free(&r);
	psql(&r, port, 1, "DEADLINE_FIRST_BYTE_TIMEOUT=1s", 20000);
	dl_assert_run(&r, r.exited && r.code == 0 && !strcmp(r.out, "42\n") &&
			  !strstr(r.err, "libdeadline"),
		      "psql with the shim, server working");
	dl_result_free(&r);

	/* Stopped server: the kernel completes the handshake, nobody answers
	 * the startup packet. */
	cr_assert(kill(pm, SIGSTOP) == 0, "SIGSTOP: %s", strerror(errno));
	psql(&r, port, 0, NULL, 3000);
	rw_note("psql, stopped server, no shim: %s after %ld ms",
		r.timed_out ? "still waiting, killed" : "ended", r.ms);
	int hung = r.timed_out;
	dl_result_free(&r);
	psql(&r, port, 1, "DEADLINE_FIRST_BYTE_TIMEOUT=1s", 10000);
	rw_note("psql, stopped server, shim: exit %d after %ld ms: %s", r.code,
		r.ms, rw_line_with(r.err, "psql:"));
	kill(pm, SIGCONT);
	cr_assert(hung, "psql without the shim should still be waiting");
	long el = dl_field(rw_line_with(r.err, "event=deadline"), "elapsed_ms=");
	dl_assert_run(&r, r.exited && r.code != 0 && el >= LIMIT_MS &&
			  el <= LIMIT_MS + 100 && r.ms <= LIMIT_MS + 1000 &&
			  strstr(r.err, "timed out"),
		      "psql should fail at the 1 s first-byte deadline");
	dl_result_free(&r);

	/* Resumed: answers again. */
	psql(&r, port, 1, "DEADLINE_FIRST_BYTE_TIMEOUT=1s", 20000);
	dl_assert_run(&r, r.exited && r.code == 0 && !strcmp(r.out, "42\n"),
		      "psql after SIGCONT");
	dl_result_free(&r);
	kill(pm, SIGTERM);
}
