/* test_outside.c - `deadline --outside`: deadlines enforced from outside
 * the program, on programs LD_PRELOAD cannot reach (docs/outside.md).
 *
 * Clients: tests/realworld/outside/oclient.c built here with
 * `gcc -static`, and tests/realworld/outside/goclient (Go's net/http
 * with no timeouts set), built here with the standard library only
 * (GOFLAGS=-mod=mod, GOPROXY=off, GOCACHE in a temp dir) when `go` is
 * installed.  Servers: stallsrv (silent, backlog, drip, http) and
 * redis-server, on loopback.
 *
 * Needs root (or CAP_NET_ADMIN) and a kernel with INET_DIAG_DESTROY;
 * each test skips, saying what is missing, when `deadline --outside`
 * reports it cannot work here.
 */
#include "rw.h"

#include <sys/wait.h>

RW_SUITE(outside, 90);

#define REQ "GET / HTTP/1.0\\r\\n\\r\\n"
/* Lateness allowed on a loaded machine (the design bound is ~10 ms). */
#define LATE_MS 400

/* Skips the test when the outside mode cannot work on this machine. */
static void ot_require(void)
{
	struct dl_result r;

	if (geteuid() != 0)
		cr_skip_test("outside mode: needs root (or CAP_NET_ADMIN); "
			     "not root here");
	dl_run(&r, DL_V(dl_path("deadline"), "--outside", "--request", "5s",
			"--", "true"), NULL, 0, 10000);
	if (strstr(r.err, "deadline: --outside:")) {
		char why[512];

		dl_fmt(why, sizeof(why), "outside mode unavailable: %s", r.err);
		dl_result_free(&r);
		cr_skip_test("%s", why);
	}
	dl_assert_ok(&r, "deadline --outside -- true");
	dl_result_free(&r);
}

/* The static client, built into this test's temp dir. */
static const char *static_client(void)
{
	static char path[PATH_MAX];
	struct dl_result r;

	dl_fmt(path, sizeof(path), "%s/oclient", dl_tmpdir());
	dl_run(&r, DL_V("gcc", "-static", "-O2", "-o", path,
			rw_src("tests/realworld/outside/oclient.c")),
	       NULL, 0, 120000);
	if (!(r.exited && r.code == 0)) {
		char why[512];

		dl_fmt(why, sizeof(why), "gcc -static failed (libc.a "
		       "missing?): %s", r.err);
		dl_result_free(&r);
		cr_skip_test("%s", why);
	}
	dl_result_free(&r);
	return path;
}

/* The Go client, built once per build directory (rebuilt when its
 * source is newer); skips when `go` is not installed. */
static const char *go_client(void)
{
	static char bin[PATH_MAX];
	const char *src = rw_src("tests/realworld/outside/goclient/main.go");
	char dir[PATH_MAX], tmpbin[PATH_MAX], cache[PATH_MAX], env[3][PATH_MAX + 16];
	struct stat sb, ss;
	struct dl_result r;

	if (!rw_have("go"))
		cr_skip_test("go is not installed (Debian: golang-go); the Go "
			     "client case is skipped");
	dl_fmt(bin, sizeof(bin), "%s", dl_path("outside/goclient"));
	if (stat(bin, &sb) == 0 && stat(src, &ss) == 0 &&
	    sb.st_mtime >= ss.st_mtime)
		return bin;
	mkdir(dl_path("outside"), 0755);
	dl_fmt(tmpbin, sizeof(tmpbin), "%s.%d", bin, (int)getpid());
	dl_fmt(cache, sizeof(cache), "%s/gocache", dl_tmpdir());
	dl_fmt(env[0], sizeof(env[0]), "GOCACHE=%s", cache);
	dl_fmt(env[1], sizeof(env[1]), "HOME=%s", dl_tmpdir());
	dl_fmt(dir, sizeof(dir), "%s", rw_src("tests/realworld/outside/goclient"));
	dl_run_opts(&r, DL_V("go", "build", "-o", tmpbin, "."),
		    DL_V(env[0], env[1], "GOFLAGS=-mod=mod", "GOPROXY=off",
			 "CGO_ENABLED=0", "GO111MODULE=on"),
		    0, 300000, dir);
	dl_assert_run(&r, r.exited && r.code == 0, "go build failed");
	dl_result_free(&r);
	cr_assert(rename(tmpbin, bin) == 0, "rename: %s", strerror(errno));
	return bin;
}

/* One "round=..." line of a client's output. */
static const char *round_line(const struct dl_result *r, int i)
{
	char pre[32];

	dl_fmt(pre, sizeof(pre), "round=%d ", i);
	return dl_line(r->out, pre);
}

/* The event=deadline line of the phase, from the supervisor's stderr. */
static const char *deadline_line(const struct dl_result *r, const char *phase)
{
	char tok[64];
	const char *l;

	dl_fmt(tok, sizeof(tok), "phase=%s ", phase);
	l = rw_line_with(r->err, tok);
	dl_assert_run(r, strstr(l, "event=deadline") &&
			      strstr(l, "mode=outside"),
		      "no event=deadline line for phase %s", phase);
	return l;
}

/* ------------------------------------------------------------------ */
/* A statically linked C client                                        */
/* ------------------------------------------------------------------ */

Test(outside, static_client_cut_at_request_deadline)
{
	struct dl_result r;
	struct dl_server *s;
	const char *bin, *l;
	long total, at;
	int other;

	ot_require();
	bin = static_client();
	s = dl_stallsrv("silent", NULL);
	/* A process outside the group holds a connection to the same
	 * server: it must stay open. */
	other = rw_connect(s->port);
	dl_run(&r, DL_V(dl_path("deadline"), "--outside", "--request", "1s",
			"--", bin, "--send", REQ, s->port_s), NULL, 0, 20000);
	dl_assert_ok(&r, "deadline --outside (static client)");
	l = round_line(&r, 0);
	dl_assert_run(&r, l && strstr(l, "end=ECONNABORTED"),
		      "the static client did not see ECONNABORTED");
	total = dl_field(l, "total_ms=");
	dl_assert_run(&r, total >= 1000 && total <= 1000 + LATE_MS,
		      "cut after %ld ms, not at the 1 s request deadline", total);
	l = deadline_line(&r, "request");
	cr_assert(dl_has_tok(l, "limit_ms=1000") && strstr(l, "rule=env") &&
		  strstr(l, "direction=outbound"), "log line: %s", l);
	cr_assert(dl_field(l, "fd=") >= 3, "no fd in the line: %s", l);
	cr_assert_str_eq(rw_watch(other, 200, &at), "open",
			 "the connection outside the group was touched");
	close(other);
	dl_result_free(&r);
}

Test(outside, static_client_cut_at_connect_deadline)
{
	struct dl_result r;
	struct dl_server *s;
	const char *bin, *l;
	long total;

	ot_require();
	bin = static_client();
	s = dl_stallsrv("backlog", NULL);
	dl_run(&r, DL_V(dl_path("deadline"), "--outside", "--connect",
			"500ms", "--", bin, s->port_s), NULL, 0, 20000);
	dl_assert_ok(&r, "deadline --outside (static client, backlog)");
	l = round_line(&r, 0);
	dl_assert_run(&r, l && strstr(l, "connect_ms=-1") &&
			      strstr(l, "end=ECONNABORTED"),
		      "the connect did not fail with ECONNABORTED");
	total = dl_field(l, "total_ms=");
	dl_assert_run(&r, total >= 500 && total <= 500 + LATE_MS,
		      "connect cut after %ld ms, not at 500 ms", total);
	l = deadline_line(&r, "connect");
	cr_assert(dl_has_tok(l, "limit_ms=500"), "log line: %s", l);
	dl_result_free(&r);
}

Test(outside, static_client_cut_idle_mid_body)
{
	struct dl_result r;
	struct dl_server *s;
	const char *bin, *l;

	ot_require();
	bin = static_client();
	/* Headers and a first body byte, then one byte every 2 s. */
	s = dl_stallsrv("drip", "--ms", "2000", "--count", "5", NULL);
	dl_run(&r, DL_V(dl_path("deadline"), "--outside", "--idle", "600ms",
			"--", bin, "--send", REQ, s->port_s), NULL, 0, 20000);
	dl_assert_ok(&r, "deadline --outside (static client, drip)");
	l = round_line(&r, 0);
	dl_assert_run(&r, l && strstr(l, "end=ECONNABORTED") &&
			      dl_field(l, "bytes=") > 0,
		      "not cut mid-body with ECONNABORTED");
	dl_assert_run(&r, dl_field(l, "total_ms=") <= 600 + 2000 + LATE_MS,
		      "cut too late");
	l = deadline_line(&r, "idle");
	cr_assert(dl_has_tok(l, "limit_ms=600") &&
		  dl_field(l, "elapsed_ms=") >= 600, "log line: %s", l);
	dl_result_free(&r);
}

Test(outside, static_client_healthy_exchange_untouched)
{
	struct dl_result nat, r;
	struct dl_server *s;
	const char *bin, *ln, *lo;

	ot_require();
	bin = static_client();
	s = dl_stallsrv("http", NULL);
	dl_run(&nat, DL_V(bin, "--send",
			  "GET /bytes/300000 HTTP/1.1\\r\\nConnection: close\\r\\n\\r\\n",
			  "--repeat", "3", s->port_s), NULL, 0, 20000);
	dl_assert_ok(&nat, "native static client");
	dl_run(&r, DL_V(dl_path("deadline"), "--outside", "--request", "3s",
			"--first-byte", "1s", "--idle", "1s", "--connect", "1s",
			"--", bin, "--send",
			"GET /bytes/300000 HTTP/1.1\\r\\nConnection: close\\r\\n\\r\\n",
			"--repeat", "3", s->port_s), NULL, 0, 20000);
	dl_assert_ok(&r, "deadline --outside (healthy exchange)");
	for (int i = 0; i < 3; i++) {
		ln = round_line(&nat, i);
		lo = round_line(&r, i);
		dl_assert_run(&r, ln && lo && strstr(lo, "end=eof") &&
				      dl_field(lo, "bytes=") ==
					      dl_field(ln, "bytes=") &&
				      dl_field(lo, "bytes=") > 300000,
			      "round %d differs from the native run", i);
	}
	dl_assert_run(&r, !strstr(r.err, "event=deadline"),
		      "a deadline fired on a healthy exchange");
	dl_result_free(&nat);
	dl_result_free(&r);
}

Test(outside, cgroup_removed_and_counters_written)
{
	struct dl_result r;
	struct dl_server *s;
	const char *bin, *l, *stats = rw_tmp("stats.json");
	char cg[PATH_MAX], *text;
	struct stat st;

	ot_require();
	bin = static_client();
	s = dl_stallsrv("silent", NULL);
	dl_run(&r, DL_V(dl_path("deadline"), "--outside", "--debug",
			"--stats", stats, "--request", "300ms", "--", bin,
			"--send", REQ, "--repeat", "2", s->port_s),
	       NULL, 0, 20000);
	dl_assert_ok(&r, "deadline --outside --stats");
	l = rw_line_with(r.err, "event=start");
	dl_assert_run(&r, strstr(l, "mode=outside"), "no start line");
	if (strstr(l, "filter=cgroup")) {
		const char *p = strstr(l, "cgroup=/");

		dl_fmt(cg, sizeof(cg), "%.*s", (int)strcspn(p + 7, " \n"),
		       p + 7);
		cr_assert(stat(cg, &st) < 0 && errno == ENOENT,
			  "%s is left behind", cg);
	} else {
		rw_note("outside: no cgroup filter here (%s)", l);
	}
	text = dl_read_file(stats);
	cr_assert(text && strstr(text, "\"rule\":\"env\",\"connections\":2,"
				       "\"expiries\":{\"connect\":0,"
				       "\"first_byte\":0,\"idle\":0,"
				       "\"request\":2}"),
		  "statistics: %s", text ? text : "(none)");
	free(text);
	dl_result_free(&r);
}

Test(outside, host_rule_warned_and_cidr_rule_applies)
{
	struct dl_result r;
	struct dl_server *s;
	const char *bin, *conf = rw_tmp("outside.conf"), *l;

	ot_require();
	bin = static_client();
	s = dl_stallsrv("silent", NULL);
	rw_write(conf, "rules = (\n"
		       "  { name = \"byname\"; host = \"*.example.com\";"
		       " request_timeout = \"100ms\"; },\n"
		       "  { name = \"loop\"; cidr = \"127.0.0.0/8\";"
		       " first_byte_timeout = \"400ms\"; }\n"
		       ");\n");
	dl_run(&r, DL_V(dl_path("deadline"), "--outside", "--config", conf,
			"--", bin, "--send", REQ, s->port_s), NULL, 0, 20000);
	dl_assert_ok(&r, "deadline --outside --config");
	dl_assert_run(&r, strstr(r.err, "rule byname: host = \"*.example.com\" "
				 "names a host"), "no warning for the host rule");
	l = deadline_line(&r, "first_byte");
	cr_assert(strstr(l, "rule=loop") && dl_has_tok(l, "limit_ms=400"),
		  "log line: %s", l);
	dl_result_free(&r);
}

Test(outside, usage_errors)
{
	struct dl_result r;

	dl_run(&r, DL_V(dl_path("deadline"), "--pid", "1", "--request", "1s"),
	       NULL, 0, 5000);
	dl_assert_run(&r, r.exited && r.code == 125 &&
			      strstr(r.err, "go with --outside"),
		      "--pid without --outside accepted");
	dl_result_free(&r);
	dl_run(&r, DL_V(dl_path("deadline"), "--outside", "--fault",
			"blackhole", "--", "true"), NULL, 0, 5000);
	dl_assert_run(&r, r.exited && r.code == 125 &&
			      strstr(r.err, "--fault cannot be used"),
		      "--fault with --outside accepted");
	dl_result_free(&r);
	dl_run(&r, DL_V(dl_path("deadline"), "--outside", "--pid", "1",
			"--request", "1s", "--", "true"), NULL, 0, 5000);
	dl_assert_run(&r, r.exited && r.code == 125, "--pid with a command");
	dl_result_free(&r);
}

/* ------------------------------------------------------------------ */
/* Go's net/http with no timeouts                                      */
/* ------------------------------------------------------------------ */

Test(outside, go_client_cut_at_request_deadline)
{
	struct dl_result r;
	struct dl_server *s;
	const char *bin, *l;
	char url[64];
	long ms;

	ot_require();
	bin = go_client();
	s = dl_stallsrv("silent", NULL);
	dl_fmt(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
	dl_run(&r, DL_V(dl_path("deadline"), "--outside", "--request", "1s",
			"--", bin, url), NULL, 0, 20000);
	dl_assert_ok(&r, "deadline --outside (Go client)");
	l = round_line(&r, 0);
	dl_assert_run(&r, l && strstr(l, "connection abort"),
		      "Go did not report a connection abort");
	ms = dl_field(l, "ms=");
	dl_assert_run(&r, ms >= 1000 && ms <= 1000 + LATE_MS,
		      "cut after %ld ms, not at 1 s", ms);
	deadline_line(&r, "request");
	dl_result_free(&r);
}

Test(outside, go_client_cut_at_connect_deadline)
{
	struct dl_result r;
	struct dl_server *s;
	const char *bin, *l;
	char url[64];
	long ms;

	ot_require();
	bin = go_client();
	s = dl_stallsrv("backlog", NULL);
	dl_fmt(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
	dl_run(&r, DL_V(dl_path("deadline"), "--outside", "--connect",
			"500ms", "--", bin, url), NULL, 0, 20000);
	dl_assert_ok(&r, "deadline --outside (Go client, backlog)");
	l = round_line(&r, 0);
	dl_assert_run(&r, l && strstr(l, "dial tcp") &&
			      strstr(l, "connection abort"),
		      "Go's dial did not fail with a connection abort");
	ms = dl_field(l, "ms=");
	dl_assert_run(&r, ms >= 500 && ms <= 500 + LATE_MS,
		      "dial cut after %ld ms, not at 500 ms", ms);
	deadline_line(&r, "connect");
	dl_result_free(&r);
}

Test(outside, go_client_healthy_exchange_untouched)
{
	struct dl_result r;
	struct dl_server *s;
	const char *bin, *l;
	char url[64];

	ot_require();
	bin = go_client();
	s = dl_stallsrv("http", NULL);
	dl_fmt(url, sizeof(url), "http://127.0.0.1:%d/bytes/200000", s->port);
	dl_run(&r, DL_V(dl_path("deadline"), "--outside", "--request", "3s",
			"--first-byte", "1s", "--idle", "1s", "--", bin, url,
			"3"), NULL, 0, 20000);
	dl_assert_ok(&r, "deadline --outside (Go client, healthy)");
	for (int i = 0; i < 3; i++) {
		l = round_line(&r, i);
		dl_assert_run(&r, l && strstr(l, "status=200 bytes=200000 "
					     "err=none"),
			      "round %d was disturbed", i);
	}
	dl_assert_run(&r, !strstr(r.err, "event=deadline"),
		      "a deadline fired on a healthy exchange");
	dl_result_free(&r);
}

/* ------------------------------------------------------------------ */
/* Attaching to a running process                                      */
/* ------------------------------------------------------------------ */

/* Starts `deadline --outside --pid PID args...` in the background, its
 * log in the temp dir; waits for its start line.  Returns its pid. */
static pid_t attach(pid_t target, const char *logname, const char *a1,
		    const char *a2)
{
	char pid[16], path[PATH_MAX];
	uint64_t end = dl_now_ns() + 10000000000ull;
	pid_t sup;
	int fd;

	dl_fmt(pid, sizeof(pid), "%d", (int)target);
	dl_fmt(path, sizeof(path), "%s/%s", dl_tmpdir(), logname);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
	sup = dl_spawn(DL_V(dl_path("deadline"), "--outside", "--debug",
			    "--pid", pid, a1, a2), NULL, 0, NULL, fd, fd);
	close(fd);
	for (;;) {
		char *text = dl_read_file(path);
		int up = text && strstr(text, "event=start");

		if (text && strstr(text, "deadline: --outside:"))
			cr_assert_fail("the supervisor refused: %s", text);
		free(text);
		if (up)
			return sup;
		cr_assert(dl_now_ns() < end, "the supervisor did not start");
		usleep(20000);
	}
}

/* Stops the supervisor (SIGTERM: detach) and returns its log. */
static char *detach(pid_t sup, const char *logname)
{
	int st = 0;

	kill(sup, SIGTERM);
	cr_assert(waitpid(sup, &st, 0) == sup, "waitpid");
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "the supervisor did not detach cleanly (status %#x)", st);
	return dl_read_file(rw_tmp(logname));
}

static int redis_ping(int port)
{
	struct dl_result r;
	char p[16];
	int ok;

	dl_fmt(p, sizeof(p), "%d", port);
	dl_run(&r, DL_V("redis-cli", "-h", "127.0.0.1", "-p", p, "PING"), NULL,
	       0, 3000);
	ok = r.exited && r.code == 0 && !strcmp(r.out, "PONG\n");
	dl_result_free(&r);
	return ok;
}

Test(outside, attach_redis_cuts_slowloris_serves_others)
{
	int port, stall, pinger, served = 0, tries = 0;
	char p[16], buf[64], *log;
	const char *end = NULL, *l;
	pid_t redis, sup;
	uint64_t t0;
	long at;

	ot_require();
	if (!rw_have("redis-server") || !rw_have("redis-cli"))
		cr_skip_test("redis-server/redis-cli not installed");
	port = dl_free_port();
	dl_fmt(p, sizeof(p), "%d", port);
	/* Started plainly: no shim, no supervisor. */
	redis = dl_spawn(DL_V("redis-server", "--port", p, "--bind",
			      "127.0.0.1", "--save", "", "--appendonly", "no",
			      "--dir", dl_tmpdir(), "--timeout", "0",
			      "--logfile", rw_tmp("redis.log")),
			 NULL, 0, NULL, -1, -1);
	rw_adopt(redis);
	for (int i = 0; i < 100 && !redis_ping(port); i++)
		usleep(50000);
	cr_assert(redis_ping(port), "redis-server did not start");
	/* A connection that is already open when the supervisor attaches
	 * is followed too, its clock starting at the attach. */
	pinger = rw_connect(port);
	sup = attach(redis, "attach.log", "--idle", "800ms");
	t0 = dl_now_ns();
	stall = rw_connect(port);
	cr_assert(send(stall, "*1\r\n$4\r\nPI", 10, 0) == 10, "send");
	/* The pinger asks every 200 ms: never idle for 800 ms. */
	while (dl_now_ns() - t0 < 2500000000ull) {
		struct pollfd pf = { .fd = stall, .events = POLLIN };

		tries++;
		if (send(pinger, "PING\r\n", 6, MSG_NOSIGNAL) == 6) {
			struct pollfd pp = { .fd = pinger, .events = POLLIN };
			ssize_t n;

			if (poll(&pp, 1, 1000) == 1 &&
			    (n = recv(pinger, buf, sizeof(buf) - 1, 0)) > 0) {
				buf[n] = '\0';
				served += strcmp(buf, "+PONG\r\n") == 0;
			}
		}
		if (!end && poll(&pf, 1, 200) == 1) {
			at = (long)((dl_now_ns() - t0) / 1000000u);
			end = rw_watch(stall, 0, &(long){ 0 });
		}
	}
	log = detach(sup, "attach.log");
	cr_assert(end && (!strcmp(end, "rst") || !strcmp(end, "fin")),
		  "the slowloris connection was not cut (%s); log:\n%s",
		  end ? end : "open", log);
	cr_assert(at >= 800 && at <= 800 + LATE_MS,
		  "slowloris cut after %ld ms, not at the 800 ms idle deadline",
		  at);
	cr_assert_eq(served, tries, "redis stopped serving the pinger "
		     "(%d/%d); log:\n%s", served, tries, log);
	l = rw_line_with(log, "event=deadline");
	cr_assert(strstr(l, "phase=idle") && strstr(l, "direction=inbound") &&
		  dl_field(l, "target_pid=") == redis,
		  "log line: %s", l);
	cr_assert_eq(rw_deadline_events(log), 1, "more than one cut:\n%s", log);
	cr_assert(redis_ping(port), "redis-server not serving after detach");
	close(stall);
	close(pinger);
	free(log);
}

Test(outside, attach_follows_children)
{
	struct dl_server *s;
	char cmd[PATH_MAX * 2], *log;
	const char *bin, *out = rw_tmp("child.out");
	pid_t sh, sup;
	int st;

	ot_require();
	bin = static_client();
	s = dl_stallsrv("silent", NULL);
	/* The shell runs the client as a child 1 s after we attach. */
	dl_fmt(cmd, sizeof(cmd), "sleep 1; %s --send '%s' %s > %s; sleep 30",
	       bin, REQ, s->port_s, out);
	sh = dl_spawn(DL_V("sh", "-c", cmd), NULL, 0, NULL, -1, -1);
	rw_adopt(sh);
	sup = attach(sh, "children.log", "--request", "500ms");
	for (int i = 0; i < 100; i++) {
		char *text = dl_read_file(out);
		int done = text && strstr(text, "end=");

		free(text);
		if (done)
			break;
		usleep(50000);
	}
	log = detach(sup, "children.log");
	{
		char *text = dl_read_file(out);

		cr_assert(text && strstr(text, "end=ECONNABORTED"),
			  "the child's connection was not cut: %s; log:\n%s",
			  text ? text : "(no output)", log);
		cr_assert(dl_field(text, "total_ms=") >= 500 &&
			  dl_field(text, "total_ms=") <= 500 + LATE_MS,
			  "cut at the wrong time: %s", text);
		free(text);
	}
	cr_assert(strstr(log, "phase=request"), "log:\n%s", log);
	kill(sh, SIGKILL);
	waitpid(sh, &st, 0);
	free(log);
}
