/* test_logs.c - what the shim writes, line by line (issue "a newcomer's
 * first hour"): every line JSON under DEADLINE_LOG_FORMAT=json, typed;
 * configuration trouble on stderr even when the log is a file; the
 * faults line only from processes that use the network; the
 * DEADLINE_DEBUG start-up line.
 *
 * JSON is checked with python3's json module, one line at a time, read
 * as strict UTF-8: exactly what `jq -c .` needs.
 */
#include "harness.h"

TestSuite(logs, .init = dl_setup, .fini = dl_teardown, .timeout = 30);

#define LO "127.0.0.1"

/* The whole of a file that must exist. */
static char *lg_slurp(const char *path)
{
	cr_assert(access(path, R_OK) == 0, "open %s: %s", path,
		  strerror(errno));
	return dl_read_file(path);
}

/* Runs python3 -c script path (never under the shim). */
static void lg_python(struct dl_result *j, const char *script,
		      const char *path)
{
	dl_run(j, DL_V("python3", "-c", script, path), NULL, 0, 15000);
}

/* ================================================================== */
/* 1. DEADLINE_LOG_FORMAT=json: every line, every kind, typed          */
/* ================================================================== */

/* Reads argv[1] as strict UTF-8, json.loads each line on its own, checks
 * the types of the fields every kind of line must have, and prints
 * "SEEN kind=count ...", "ORDER ..." and one "BAD ..." per problem
 * (exit 1 when there is any). */
static const char py_check[] =
	"import json, sys\n"
	"seen, bad, order, pids = {}, [], [], set()\n"
	"def need(o, k, t):\n"
	"    v = o.get(k)\n"
	"    if type(v) is not t:\n"
	"        bad.append('%s: %s=%r is not %s' % (o.get('event'), k, v,"
	" t.__name__))\n"
	"with open(sys.argv[1], encoding='utf-8', errors='strict',"
	" newline='\\n') as f:\n"
	"    for n, line in enumerate(f, 1):\n"
	"        if not line.endswith('}\\n'):\n"
	"            bad.append('line %d does not end with }\\\\n' % n)\n"
	"        try:\n"
	"            o = json.loads(line)\n"
	"        except ValueError as e:\n"
	"            bad.append('line %d: %s: %r' % (n, e, line))\n"
	"            continue\n"
	"        if type(o) is not dict:\n"
	"            bad.append('line %d is not an object' % n)\n"
	"            continue\n"
	"        ev = o.get('event')\n"
	"        seen[ev] = seen.get(ev, 0) + 1\n"
	"        order.append(ev)\n"
	"        need(o, 'time', str); need(o, 'pid', int); need(o, 'event', str)\n"
	"        pids.add(o.get('pid'))\n"
	"        if o.get('truncated') is not None: need(o, 'truncated', bool)\n"
	"        if ev in ('warning', 'debug', 'config_error', 'config_warning',"
	" 'config_ignored', 'config_exit'):\n"
	"            need(o, 'msg', str)\n"
	"        if ev in ('config_error', 'config_ignored'):\n"
	"            need(o, 'source', str)\n"
	"        if ev == 'config_error' and 'line' in o:\n"
	"            need(o, 'line', int)\n"
	"        if ev == 'start':\n"
	"            for k in ('version', 'exe', 'config', 'log', 'log_format'):"
	" need(o, k, str)\n"
	"            for k in ('rules', 'fault_specs'): need(o, k, int)\n"
	"            for k in ('config_used', 'faults', 'enforcing'):"
	" need(o, k, bool)\n"
	"            print('START rules=%s config_used=%s faults=%s enforcing=%s"
	" log_format=%s exe=%s' % (o.get('rules'), o.get('config_used'),"
	" o.get('faults'), o.get('enforcing'), o.get('log_format'),"
	" o.get('exe')))\n"
	"        if ev == 'faults':\n"
	"            need(o, 'seed', int); need(o, 'seed_from', str);"
	" need(o, 'dry_run', bool)\n"
	"        if ev == 'fault':\n"
	"            need(o, 'injected', bool)\n"
	"            for k in ('fd', 'port', 'group', 'conn', 'op'): need(o, k, int)\n"
	"            print('FAULT injected=%s fault=%s' % (o.get('injected'),"
	" o.get('fault')))\n"
	"        if ev == 'deadline':\n"
	"            for k in ('fd', 'port', 'limit_ms', 'elapsed_ms'):"
	" need(o, k, int)\n"
	"            for k in ('host', 'addr', 'rule', 'phase'): need(o, k, str)\n"
	"            print('DEADLINE rule=%s phase=%s limit_ms=%s elapsed_ms=%s'"
	" % (o.get('rule'), o.get('phase'), o.get('limit_ms'),"
	" o.get('elapsed_ms')))\n"
	"        if ev == 'config_error':\n"
	"            print('CONFERR source=%s line=%s msg=%s' % (o.get('source'),"
	" o.get('line'), o.get('msg')))\n"
	"        if ev == 'config_warning' and"
	" o.get('msg', '').startswith('DEADLINE_SEED='):\n"
	"            want = 'DEADLINE_SEED=\"4\"2\\\\\\n\\x01\\u00e9\\ufffd\"'\n"
	"            print('SEEDMSG ' + ('ok' if o['msg'].startswith(want)"
	" else 'bad %r' % o['msg']))\n"
	"        if o.get('truncated'):\n"
	"            print('TRUNCATED %s' % ev)\n"
	"print('SEEN ' + ' '.join('%s=%d' % kv for kv in sorted(seen.items())))\n"
	"print('ORDER ' + ' '.join(order))\n"
	"print('PIDS %d' % len(pids))\n"
	"for b in bad:\n"
	"    print('BAD ' + b)\n"
	"sys.exit(1 if bad else 0)\n";

/* Writes text to a file of the test's temp dir and runs the checker on
 * it; j gets python's output. */
static void check_json(struct dl_result *j, const char *name,
		       const char *text)
{
	const char *path = dl_write_file(name, text);

	lg_python(j, py_check, path);
	dl_assert_run(j, j->exited && j->code == 0,
		      "a line is not JSON, or a field is mistyped; the "
		      "lines were:\n%s", text);
}

/* 1 when the checker printed "SEEN ... kind=N ..." with N >= 1. */
static int seen(const struct dl_result *j, const char *kind)
{
	const char *line = dl_line(j->out, "SEEN ");
	char *tok = dl_str(" %s=", kind);
	const char *k = line ? strstr(line, tok) : NULL;
	const char *end = line ? strchr(line, '\n') : NULL;
	int n = k && (!end || k < end) ? atoi(k + strlen(tok)) : 0;

	free(tok);
	return n;
}

Test(logs, json_every_line_parses_and_is_typed)
{
	struct dl_server *s;
	struct dl_result r, j;
	const char *conf, *order, *line;

	dl_require_shim();
	s = dl_stallsrv("silent", NULL);
	/* A file that works: a request deadline that fires, and a fault
	 * (connect latency) that is injected before it. */
	conf = dl_str("%s", dl_write_file("logs.conf",
		"rules = ( { name = \"logs\"; cidr = \"127.0.0.1/32\";\n"
		"            request_timeout = \"300ms\";\n"
		"            faults = { latency = \"20ms\"; on = \"connect\"; };"
		" } );\n"));
	dl_client(&r, 1, 8000,
		  DL_V(dl_str("DEADLINE_CONFIG=%s", conf),
		       "DEADLINE_LOG_FORMAT=json", "DEADLINE_DEBUG=1",
		       /* configuration errors: a spec with blanks around
			* '=' (reported, then ignored: the file's faults
			* still apply) */
		       "DEADLINE_FAULTS=latency = 100ms",
		       /* configuration warnings, one with every byte JSON
			* must escape: quote, backslash, newline, a control
			* byte, UTF-8, and a byte that is not UTF-8 */
		       "DEADLINE_TEARDOWN=sideways",
		       "DEADLINE_SEED=4\"2\\\n\x01\xc3\xa9\xff"),
		  "rw", LO, s->port_s, "--send", "hi", "--recv", "10",
		  "--expect", "ETIMEDOUT", NULL);
	dl_assert_run(&r, dl_line(r.out, "ERR ETIMEDOUT ") != NULL,
		      "the request deadline should have fired");
	check_json(&j, "stderr.json", r.err);

	/* Every kind of line the run has to produce. */
	static const char *const kinds[] = {
		"start", "debug", "config_error", "config_ignored",
		"config_warning", "faults", "fault", "deadline",
	};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		dl_assert_run(&j, seen(&j, kinds[i]) >= 1,
			      "no '%s' line in:\n%s", kinds[i], r.err);
	dl_assert_run(&j, seen(&j, "config_warning") == 2,
		      "two configuration warnings (DEADLINE_TEARDOWN, "
		      "DEADLINE_SEED) expected");
	dl_assert_run(&j, seen(&j, "faults") == 1 && seen(&j, "start") == 1,
		      "one faults line and one start line expected");
	dl_assert_run(&j, dl_line(j.out, "PIDS 1\n") != NULL,
		      "all lines should carry the one pid");
	dl_assert_run(&j, dl_line(j.out, "SEEDMSG ok") != NULL,
		      "the DEADLINE_SEED value should come back byte for "
		      "byte (invalid UTF-8 as U+FFFD)");
	dl_assert_run(&j, dl_line(j.out, "CONFERR source=DEADLINE_FAULTS "
				  "line=None msg=fault spec 1: spaces are not "
				  "allowed around '=' (write latency=100ms)\n"),
		      "the fault spec's error should say what to write");
	dl_assert_run(&j, dl_line(j.out, "START rules=1 config_used=True "
				  "faults=True enforcing=True log_format=json")
			  != NULL, "the start line's values");
	dl_assert_run(&j, dl_line(j.out, "FAULT injected=True fault=latency")
			  != NULL, "the injected fault, with a real boolean");
	line = dl_line(j.out, "DEADLINE rule=logs phase=request limit_ms=300 ");
	dl_assert_run(&j, line && dl_field(line, "elapsed_ms=") >= 300,
		      "the deadline event's values");
	/* The faults line precedes the first fault, which precedes the
	 * deadline. */
	order = dl_line(j.out, "ORDER ");
	dl_assert_run(&j, order && strstr(order, " faults ") &&
			  strstr(order, " faults ") < strstr(order, " fault ") &&
			  strstr(order, " fault ") < strstr(order, " deadline"),
		      "order of the lines");
	dl_result_free(&j);
	dl_result_free(&r);
}

/* A line longer than the shim's buffer is cut at a field or character,
 * and still closed: it parses and says "truncated": true. */
Test(logs, json_overlong_line_is_cut_not_broken)
{
	struct dl_result r, j;
	char dir[PATH_MAX], seg[201];
	const char *path;

	dl_require_shim();
	memset(seg, 'd', 200);
	seg[200] = '\0';
	dl_fmt(dir, sizeof(dir), "%s", dl_tmpdir());
	for (int i = 0; i < 3; i++) {
		size_t n = strlen(dir);

		dl_fmt(dir + n, sizeof(dir) - n, "/%s\"\\%d", seg, i);
		cr_assert(mkdir(dir, 0700) == 0, "mkdir: %s", strerror(errno));
	}
	path = dl_str("%s/bad.conf", dir);
	dl_write_file(path, "defaults = { request_timeout = 1s; };\n");
	dl_run(&r, DL_V("/bin/true"),
	       DL_V(dl_str("DEADLINE_CONFIG=%s", path),
		    "DEADLINE_LOG_FORMAT=json"), 1, 5000);
	dl_assert_ok(&r, "/bin/true under a bad file");
	check_json(&j, "long.json", r.err);
	dl_assert_run(&j, seen(&j, "config_error") == 1 &&
			  seen(&j, "config_ignored") == 1,
		      "the error and the outcome");
	dl_assert_run(&j, dl_line(j.out, "TRUNCATED ") != NULL,
		      "a line this long should be marked truncated");
	dl_result_free(&j);
	dl_result_free(&r);
}

/* ================================================================== */
/* 2. Configuration trouble reaches stderr when the log is a file      */
/* ================================================================== */

Test(logs, config_errors_reach_stderr_with_log_file)
{
	struct dl_result r;
	const char *conf, *log;
	char *err_line, *unused_line, *text;

	dl_require_shim();
	conf = dl_str("%s", dl_write_file("unquoted.conf",
		"defaults = {\n    connect_timeout = 2s;\n};\n"));
	log = dl_str("%s/shim.log", dl_tmpdir());
	err_line = dl_str("libdeadline: %s:2: syntax error (durations are "
			  "strings: connect_timeout = \"2s\";)\n", conf);
	unused_line = dl_str("libdeadline: %s: configuration not used; "
			     "passing everything through\n", conf);

	/* logfmt: both lines in the file, and once on stderr. */
	dl_run(&r, DL_V("/bin/true"),
	       DL_V(dl_str("DEADLINE_CONFIG=%s", conf),
		    dl_str("DEADLINE_LOG=%s", log)), 1, 5000);
	dl_assert_ok(&r, "/bin/true");
	text = lg_slurp(log);
	dl_assert_run(&r, !strcmp(r.err, text) &&
			  strstr(r.err, err_line) && strstr(r.err, unused_line) &&
			  dl_count_lines(r.err, "libdeadline:") == 2,
		      "stderr and the log file should each hold the error and "
		      "the outcome, once:\nlog file:\n%s", text);
	free(text);
	dl_result_free(&r);

	/* json: the copy on stderr is JSON too. */
	unlink(log);
	dl_run(&r, DL_V("/bin/true"),
	       DL_V(dl_str("DEADLINE_CONFIG=%s", conf),
		    dl_str("DEADLINE_LOG=%s", log),
		    "DEADLINE_LOG_FORMAT=json"), 1, 5000);
	dl_assert_ok(&r, "/bin/true");
	text = lg_slurp(log);
	dl_assert_run(&r, !strcmp(r.err, text) &&
			  dl_count_lines(r.err, "{\"time\":") == 2 &&
			  dl_count_lines(r.err, "\"event\":\"config_error\"") == 1 &&
			  dl_count_lines(r.err, "\"event\":\"config_ignored\"") == 1 &&
			  dl_count_lines(r.err, "\"line\":2,") == 1,
		      "stderr and the log file should hold the same two JSON "
		      "lines:\nlog file:\n%s", text);
	free(text);
	dl_result_free(&r);

	/* The log file IS stderr: once, not twice. */
	dl_run(&r, DL_V("/bin/true"),
	       DL_V(dl_str("DEADLINE_CONFIG=%s", conf),
		    "DEADLINE_LOG=/dev/stderr"), 1, 5000);
	dl_assert_ok(&r, "/bin/true");
	dl_assert_run(&r, dl_count_lines(r.err, "libdeadline:") == 2,
		      "DEADLINE_LOG=/dev/stderr: each line once");
	dl_result_free(&r);

	/* DEADLINE_LOG=off: silence, as asked. */
	dl_run(&r, DL_V("/bin/true"),
	       DL_V(dl_str("DEADLINE_CONFIG=%s", conf), "DEADLINE_LOG=off"),
	       1, 5000);
	dl_assert_ok(&r, "/bin/true");
	dl_assert_run(&r, !*r.err, "DEADLINE_LOG=off: nothing on stderr");
	dl_result_free(&r);

	/* Environment trouble is configuration trouble too. */
	unlink(log);
	dl_run(&r, DL_V("/bin/true"),
	       DL_V("DEADLINE_CONNECT_TIMEOUT=5x",
		    dl_str("DEADLINE_LOG=%s", log)), 1, 5000);
	dl_assert_ok(&r, "/bin/true");
	text = lg_slurp(log);
	dl_assert_run(&r, dl_count_lines(r.err, "libdeadline: warning: "
				   "DEADLINE_CONNECT_TIMEOUT=\"5x\"") == 1 &&
			  !strcmp(r.err, text),
		      "a bad DEADLINE_CONNECT_TIMEOUT on stderr and in the "
		      "log:\nlog file:\n%s", text);
	free(text);
	dl_result_free(&r);
	free(err_line);
	free(unused_line);
}

/* A run whose configuration is fine says nothing on stderr when the log
 * is a file: only configuration trouble is copied there. */
Test(logs, good_config_and_events_stay_in_log_file)
{
	struct dl_server *s;
	struct dl_result r;
	const char *log;
	char *text;

	dl_require_shim();
	s = dl_stallsrv("silent", NULL);
	log = dl_str("%s/events.log", dl_tmpdir());
	dl_client(&r, 1, 6000,
		  DL_V("DEADLINE_REQUEST_TIMEOUT=200ms", "DEADLINE_DEBUG=1",
		       "DEADLINE_FAULTS=cidr=127.0.0.1/32 latency=1ms p=0",
		       dl_str("DEADLINE_LOG=%s", log)),
		  "rw", LO, s->port_s, "--send", "hi", "--recv", "10",
		  "--expect", "ETIMEDOUT", NULL);
	text = lg_slurp(log);
	dl_assert_run(&r, !*r.err && dl_count_lines(text, " event=start ") == 1 &&
			  dl_count_lines(text, " event=faults ") == 1 &&
			  dl_count_lines(text, " event=deadline ") == 1,
		      "events in the log file only:\n%s", text);
	free(text);
	dl_result_free(&r);
}

/* ================================================================== */
/* 3. The faults line: only from processes that track a connection     */
/* ================================================================== */

Test(logs, faults_line_only_when_a_connection_is_tracked)
{
	struct dl_server *s;
	struct dl_result r;
	const char *line;

	dl_require_shim();
	/* No connection: not a word. */
	dl_run(&r, DL_V("/bin/true"),
	       DL_V("DEADLINE_FAULTS=latency=100ms", "DEADLINE_SEED=77"), 1,
	       5000);
	dl_assert_ok(&r, "/bin/true with faults configured");
	dl_assert_run(&r, !*r.err, "/bin/true should log nothing");
	dl_result_free(&r);

	/* One connection: one line, before the connection's events. */
	s = dl_stallsrv("silent", NULL);
	dl_client(&r, 1, 6000,
		  DL_V("DEADLINE_FAULTS=cidr=127.0.0.1/32 latency=1ms p=0",
		       "DEADLINE_SEED=77", "DEADLINE_REQUEST_TIMEOUT=200ms"),
		  "rw", LO, s->port_s, "--send", "hi", "--recv", "10",
		  "--expect", "ETIMEDOUT", NULL);
	line = dl_line(r.err, "libdeadline: ");
	dl_assert_run(&r, dl_count_lines(r.err, " event=faults ") == 1 && line &&
			  dl_has_tok(line, "event=faults") &&
			  dl_has_tok(line, "seed=77") &&
			  dl_has_tok(line, "seed_from=env") &&
			  dl_has_tok(line, "dry_run=false") &&
			  dl_count_lines(r.err, " event=deadline ") == 1,
		      "one faults line, first");
	dl_result_free(&r);
}

/* Many connections from many threads: still one line per process. */
Test(logs, faults_line_once_per_process_with_threads)
{
	struct dl_server *s;
	struct dl_result r;

	dl_require_shim();
	s = dl_stallsrv("http", NULL);
	dl_client(&r, 1, 10000,
		  DL_V("DEADLINE_FAULTS=cidr=127.0.0.1/32 latency=1ms p=0"),
		  "threads", LO, s->port_s, "--n", "16", "--limit", "0", NULL);
	dl_assert_ok(&r, "dlclient threads");
	dl_assert_run(&r, dl_count_lines(r.err, " event=faults ") == 1 &&
			  dl_count_lines(r.err, " seed_from=random ") == 1,
		      "16 threads, 16 connections: one faults line");
	dl_result_free(&r);
}

/* fork: the parent and the child each log their own line (each with its
 * own pid) when they track a connection. */
Test(logs, faults_line_once_per_forked_process)
{
	struct dl_server *s;
	struct dl_result r;
	long pid[2] = { -1, -1 };
	int n = 0;

	dl_require_shim();
	s = dl_stallsrv("http", NULL);
	dl_client(&r, 1, 10000,
		  DL_V("DEADLINE_FAULTS=cidr=127.0.0.1/32 latency=1ms p=0"),
		  "fork", LO, s->port_s, "--limit", "0", NULL);
	dl_assert_ok(&r, "dlclient fork");
	for (const char *p = r.err; (p = dl_line(p, "libdeadline: ")); p++)
		if (dl_has_tok(p, "event=faults") && n < 2)
			pid[n++] = dl_field(p, " pid=");
	dl_assert_run(&r, dl_count_lines(r.err, " event=faults ") == 2 &&
			  pid[0] > 0 && pid[1] > 0 && pid[0] != pid[1],
		      "one faults line from the parent and one from the "
		      "child");
	dl_result_free(&r);
}

/* ================================================================== */
/* 4. DEADLINE_DEBUG: one line at load                                 */
/* ================================================================== */

Test(logs, debug_start_line)
{
	struct dl_result r;
	const char *line;

	dl_require_shim();
	dl_run(&r, DL_V("/bin/true"), DL_V("DEADLINE_DEBUG=1"), 1, 5000);
	dl_assert_ok(&r, "/bin/true");
	line = dl_line(r.err, "libdeadline: time=");
	dl_assert_run(&r, dl_count_lines(r.err, "libdeadline:") == 1 && line &&
			  dl_has_tok(line, "event=start") &&
			  dl_field(line, " pid=") > 0 &&
			  strstr(line, "/true ") && dl_has_tok(line, "config=none") &&
			  dl_has_tok(line, "rules=0") &&
			  dl_has_tok(line, "faults=false") &&
			  dl_has_tok(line, "enforcing=false") &&
			  dl_has_tok(line, "log=stderr") &&
			  dl_has_tok(line, "log_format=logfmt") &&
			  strstr(line, " version="),
		      "one start line, with what is loaded");
	dl_result_free(&r);

	/* Without DEADLINE_DEBUG: nothing. */
	dl_run(&r, DL_V("/bin/true"), DL_V("DEADLINE_REQUEST_TIMEOUT=1s"), 1,
	       5000);
	dl_assert_ok(&r, "/bin/true");
	dl_assert_run(&r, !*r.err, "no start line without DEADLINE_DEBUG");
	dl_result_free(&r);
}

/* ================================================================== */
/* 5. A stderr pipe nobody reads costs lines, never time               */
/* ================================================================== */

/* 600 connections, one every 0.5 ms, each ended by a 100 ms request
 * deadline: 600 lines of about 165 bytes, half again what a 64 KB pipe
 * holds, on a stderr that nobody reads until the program has exited.  The
 * program must run to its end (natively it writes nothing there and
 * never waits); the lines that did not fit are dropped, and those that
 * did are whole.  The shim used to judge the room from FIONREAD, which
 * counts bytes where the pipe counts pages: it blocked in write() at
 * about 62 KB, until a reader came (here: never). */
Test(logs, stderr_pipe_nobody_reads_costs_lines_not_time)
{
	struct dl_server *silent, *echo;
	char out_path[PATH_MAX], *out, *err;
	struct dl_buf eb = { 0 };
	int ep[2], out_fd, st = 0, lines = 0, whole = 1, exited = 0;
	uint64_t t0;
	pid_t pid;

	dl_require_shim();
	silent = dl_stallsrv("silent", NULL);
	echo = dl_stallsrv("echo", NULL);
	dl_fmt(out_path, sizeof(out_path), "%s/evclient.out", dl_tmpdir());
	out_fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		      0600);
	cr_assert(out_fd >= 0 && pipe2(ep, O_CLOEXEC) == 0, "setup: %s",
		  strerror(errno));
	t0 = dl_now_ns();
	pid = dl_spawn(DL_V(dl_helper("evclient"), "many", LO, silent->port_s,
			    "--echo", echo->port_s, "--n", "600",
			    "--every-us", "500", "--limit", "100", "--arm",
			    "connect"),
		       DL_V("DEADLINE_REQUEST_TIMEOUT=100ms"), 1, NULL, out_fd,
		       ep[1]);
	close(out_fd);
	close(ep[1]);
	while (dl_now_ns() - t0 < 15000000000ull) {
		if (dl_exited(pid)) {
			exited = 1;
			break;
		}
		usleep(10000);
	}
	if (!exited)
		dl_kill_group(pid);
	waitpid(pid, &st, 0);
	/* Only now is the pipe read. */
	fcntl(ep[0], F_SETFL, O_NONBLOCK);
	while (dl_slurp(ep[0], &eb) && eb.len < (1u << 20)) {
		struct pollfd p = { ep[0], POLLIN, 0 };

		if (poll(&p, 1, 0) <= 0)
			break;
	}
	close(ep[0]);
	err = eb.p ? eb.p : strdup("");
	out = dl_read_file(out_path);
	cr_assert(exited, "the program blocked on its full stderr pipe: "
			  "killed after 15 s\n%.500s", out);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "evclient failed (status %#x)\n%.500s", st, out);
	cr_assert(strstr(out, "SUMMARY n=600 reported=600 "),
		  "not every connection reported its expiry\n%.500s", out);
	for (const char *p = err; *p;) {
		const char *nl = strchr(p, '\n');

		if (!nl || strncmp(p, "libdeadline: ", 13)) {
			whole = 0;
			break;
		}
		lines++;
		p = nl + 1;
	}
	cr_assert(whole, "a partial or foreign line on stderr: %.300s", err);
	cr_assert(lines > 100 && lines < 600,
		  "%d lines on stderr: expected the pipe's worth, the rest "
		  "dropped", lines);
	free(out);
	free(err);
}
