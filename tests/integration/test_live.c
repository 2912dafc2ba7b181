/* test_live.c - what a long-running program gets, without a daemon
 * (issue 14): the configuration reloaded in a single-threaded program
 * (the check on the way into connect), a broken edit refused, the log
 * rotated by rename and by truncation, the per-rule rate limit with its
 * "suppressed" summary, and the Prometheus counters file written at exit.
 *
 * The client is python3 under the shim, against stallsrv in "silent"
 * mode (accepts, never answers): every connection it makes runs into the
 * request deadline of the rule in force when it connected.
 */
#include "harness.h"

TestSuite(live, .init = dl_setup, .fini = dl_teardown, .timeout = 90);

static const char *py(void)
{
	return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3"
						       : "python3";
}

/* argv: port, conf path, log path, then steps:
 *   "c"        connect, wait for the deadline; prints "cut MS"
 *   "n:K"      K such connections
 *   "w:TEXT"   write the configuration (temp file + rename); \n escapes
 *   "s:MS"     sleep
 *   "mv"       rename the log to LOG.1 (logrotate's create, no new file)
 *   "trunc"    truncate the log (copytruncate) */
static const char client_py[] =
	"import os, socket, sys, time\n"
	"port, conf, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]\n"
	"def one():\n"
	"    s = socket.create_connection(('127.0.0.1', port))\n"
	"    t = time.monotonic()\n"
	"    try:\n"
	"        s.recv(10)\n"
	"        how = 'data'\n"
	"    except OSError as e:\n"
	"        how = e.strerror\n"
	"    s.close()\n"
	"    return int((time.monotonic() - t) * 1000), how\n"
	"for step in sys.argv[4:]:\n"
	"    if step == 'c':\n"
	"        ms, how = one()\n"
	"        print('cut', ms, how, flush=True)\n"
	"    elif step.startswith('n:'):\n"
	"        for i in range(int(step[2:])):\n"
	"            one()\n"
	"    elif step.startswith('w:'):\n"
	"        with open(conf + '.new', 'w') as f:\n"
	"            f.write(step[2:].replace('\\\\n', '\\n'))\n"
	"        os.rename(conf + '.new', conf)\n"
	"    elif step.startswith('s:'):\n"
	"        time.sleep(int(step[2:]) / 1000)\n"
	"    elif step == 'mv':\n"
	"        os.rename(log, log + '.1')\n"
	"    elif step == 'trunc':\n"
	"        os.truncate(log, 0)\n";

static const char *rules(long ms)
{
	return dl_str("rules = (\\n  { name = \"silent\"; cidr = "
		      "\"127.0.0.1\"; request_timeout = \"%ldms\"; }\\n);\\n",
		      ms);
}

/* The "cut MS" lines of out, in order, into ms[] (at most n). */
static int cuts(const char *out, long *ms, int n)
{
	int k = 0;

	for (const char *p = out; k < n && (p = strstr(p, "cut ")); p += 4)
		ms[k++] = strtol(p + 4, NULL, 10);
	return k;
}

static void run_client(struct dl_result *r, const char *const *env,
		       const char *const *steps, int nsteps, const char *port,
		       const char *conf, const char *log)
{
	const char *argv[40];
	int n = 0;

	argv[n++] = py();
	argv[n++] = "-c";
	argv[n++] = client_py;
	argv[n++] = port;
	argv[n++] = conf;
	argv[n++] = log;
	for (int i = 0; i < nsteps && n < 39; i++)
		argv[n++] = steps[i];
	argv[n] = NULL;
	dl_run(r, argv, env, 1, 60000);
	dl_assert_run(r, r->exited && r->code == 0 && !dl_sanitizer_report(r),
		      "the client failed");
}

/* A single-threaded program picks up the change before its next connect;
 * a broken edit keeps the rule and is reported with its line. */
Test(live, reload_single_threaded)
{
	struct dl_server *s;
	struct dl_result r;
	const char *conf, *log;
	char *text;
	long ms[4];
	char flat[256];

	dl_require_shim();
	s = dl_stallsrv("silent", NULL);
	dl_fmt(flat, sizeof(flat), "%s", rules(1500));
	conf = dl_str("%s/live.conf", dl_tmpdir());
	log = dl_str("%s/live.log", dl_tmpdir());
	{
		/* The first file, unescaped. */
		char real[256], *o = real;

		for (const char *p = flat; *p; p++) {
			if (p[0] == '\\' && p[1] == 'n') {
				*o++ = '\n';
				p++;
			} else {
				*o++ = *p;
			}
		}
		*o = 0;
		dl_write_file(conf, real);
	}
	run_client(&r, DL_V(dl_str("DEADLINE_CONFIG=%s", conf),
			    dl_str("DEADLINE_LOG=%s", log)),
		   DL_V("c", dl_str("w:%s", rules(200)), "s:1200", "c",
			"w:rules = (\\n  { name = \"silent\"; "
			"request_timeout = 50ms; }\\n);\\n",
			"s:1200", "c"),
		   7, s->port_s, conf, log);
	text = dl_read_file(log);
	dl_assert_run(&r, cuts(r.out, ms, 3) == 3, "three cuts expected");
	dl_assert_run(&r, ms[0] >= 1450 && ms[0] <= 1500 + 600,
		      "first cut after %ld ms, not about 1500", ms[0]);
	dl_assert_run(&r, ms[1] >= 150 && ms[1] <= 200 + 600,
		      "after the reload: %ld ms, not about 200", ms[1]);
	dl_assert_run(&r, ms[2] >= 150 && ms[2] <= 200 + 600,
		      "after a broken edit: %ld ms: 200 should still apply",
		      ms[2]);
	dl_assert_run(&r, dl_count_lines(text, "event=reload") == 2 &&
		      dl_count_lines(text, "result=ok rules=1") == 1 &&
		      dl_count_lines(text, "result=error rules=1 errors=1") == 1,
		      "one good and one refused reload expected:\n%s", text);
	dl_assert_run(&r, strstr(text, dl_str("%s:2: ", conf)) != NULL,
		      "the error should name %s:2:\n%s", conf, text);
	free(text);
	dl_result_free(&r);
}

/* Rename (logrotate's create, with no new file yet) and truncation
 * (copytruncate): later lines land in a file at the path. */
Test(live, log_rotation)
{
	struct dl_server *s;
	struct dl_result r;
	const char *log;
	char *cur, *old;

	dl_require_shim();
	s = dl_stallsrv("silent", NULL);
	log = dl_str("%s/rot.log", dl_tmpdir());
	run_client(&r, DL_V("DEADLINE_REQUEST_TIMEOUT=50ms",
			    dl_str("DEADLINE_LOG=%s", log)),
		   DL_V("c", "mv", "c", "c", "trunc", "c"), 6, s->port_s,
		   "/nonexistent", log);
	old = dl_read_file(dl_str("%s.1", log));
	cur = dl_read_file(log);
	dl_assert_run(&r, dl_count_lines(old, "event=deadline") == 1,
		      "the renamed log keeps the first line:\n%s", old);
	dl_assert_run(&r, dl_count_lines(cur, "event=deadline") == 1 &&
		      !strncmp(cur, "libdeadline: ", 13),
		      "after the truncation the log holds one line, at its "
		      "start:\n%s", cur);
	free(old);
	free(cur);
	dl_result_free(&r);
}

/* DEADLINE_LOG_RATE=5: a burst of 40 expiries logs a bounded number of
 * lines and one summary per second; logged + suppressed = 40, and the
 * Prometheus file written at exit counts all 40 (parsed with the real
 * parser when python3-prometheus-client is installed). */
Test(live, rate_limit_and_counters)
{
	struct dl_server *s;
	struct dl_result r, p;
	const char *log, *prom;
	char *text;
	long logged, sup = 0;

	dl_require_shim();
	s = dl_stallsrv("silent", NULL);
	log = dl_str("%s/rate.log", dl_tmpdir());
	prom = dl_str("%s/rate.prom", dl_tmpdir());
	run_client(&r, DL_V("DEADLINE_REQUEST_TIMEOUT=20ms",
			    "DEADLINE_LOG_RATE=5", dl_str("DEADLINE_LOG=%s", log),
			    dl_str("DEADLINE_STATS=%s", prom)),
		   DL_V("n:40"), 1, s->port_s, "/nonexistent", log);
	text = dl_read_file(log);
	logged = dl_count_lines(text, "event=deadline");
	for (const char *q = text; (q = strstr(q, "event=suppressed")); q++)
		sup += dl_field(q, "lines=");
	dl_assert_run(&r, logged + sup == 40,
		      "logged %ld + suppressed %ld != 40:\n%s", logged, sup,
		      text);
	dl_assert_run(&r, logged >= 5 && logged <= 5 * 4,
		      "%ld lines logged at 5 per second in about 1 s", logged);
	free(text);
	text = dl_read_file(prom);
	dl_assert_run(&r, strstr(text, "# TYPE libdeadline_expiries_total "
				       "counter\n") &&
		      strstr(text, "libdeadline_expiries_total{rule=\"env\","
				   "phase=\"request\"} 40\n") &&
		      strstr(text, "libdeadline_connections_total{rule=\"env\"} "
				   "40\n") &&
		      strstr(text, dl_str("libdeadline_log_lines_suppressed_total "
					  "%ld\n", sup)),
		      "the counters file should count 40 expiries and %ld "
		      "suppressed lines:\n%s", sup, text);
	free(text);
	if (access("/usr/lib/python3/dist-packages/prometheus_client/parser.py",
		   R_OK) == 0 && access("/usr/bin/python3", X_OK) == 0) {
		dl_run(&p, DL_V("/usr/bin/python3", "-c",
				"import sys\n"
				"from prometheus_client.parser import "
				"text_string_to_metric_families as t\n"
				"for f in t(open(sys.argv[1]).read()):\n"
				"    for s in f.samples:\n"
				"        if s.name == 'libdeadline_expiries_total' "
				"and s.labels['phase'] == 'request':\n"
				"            print('REQ', int(s.value))\n",
				prom), NULL, 0, 20000);
		dl_assert_run(&p, p.exited && p.code == 0 &&
			      strstr(p.out, "REQ 40\n"),
			      "the real parser should read 40 request "
			      "expiries");
		dl_result_free(&p);
	}
	dl_result_free(&r);
}

/* The duration histograms: one keep-alive connection, five HTTP/1
 * exchanges with connect, first-byte and request deadlines armed (none
 * fires).  The connect was met once, the first byte and the request five
 * times each (the request when its response was read whole). */
Test(live, duration_histograms)
{
	struct dl_server *s = dl_stallsrv("http", NULL);
	struct dl_result r;
	const char *prom;
	char *text;

	dl_require_shim();
	prom = dl_str("%s/hist.prom", dl_tmpdir());
	dl_run(&r, DL_V(py(), dl_src("tests/helpers/poolclient.py"),
			"blocking", s->port_s, "/hello", "--count", "5",
			"--gap", "0"),
	       DL_V("DEADLINE_CONNECT_TIMEOUT=5s",
		    "DEADLINE_FIRST_BYTE_TIMEOUT=5s",
		    "DEADLINE_REQUEST_TIMEOUT=5s",
		    dl_str("DEADLINE_STATS=%s", prom)), 1, 30000);
	dl_assert_ok(&r, "poolclient.py");
	dl_assert_run(&r, dl_line(r.out, "RESP 4 200 6 "),
		      "five requests should succeed");
	text = dl_read_file(prom);
	dl_assert_run(&r,
		      strstr(text, "libdeadline_connect_duration_seconds_count"
				   "{rule=\"env\"} 1\n") &&
		      strstr(text, "libdeadline_first_byte_duration_seconds_"
				   "count{rule=\"env\"} 5\n") &&
		      strstr(text, "libdeadline_request_duration_seconds_count"
				   "{rule=\"env\"} 5\n") &&
		      strstr(text, "libdeadline_request_duration_seconds_bucket"
				   "{rule=\"env\",le=\"+Inf\"} 5\n"),
		      "want 1 connect, 5 first-byte and 5 request durations:"
		      "\n%s", text);
	free(text);
	dl_result_free(&r);
}

/* A program that started with no fault group: a reload that brings one
 * turns fault injection on for the connections started after it. */
Test(live, reload_brings_first_faults)
{
	static const char prog[] =
		"import os, socket, sys, time\n"
		"port, conf = int(sys.argv[1]), sys.argv[2]\n"
		"def attempt():\n"
		"    try:\n"
		"        s = socket.create_connection(('127.0.0.1', port))\n"
		"        s.close()\n"
		"        return 'connected'\n"
		"    except OSError as e:\n"
		"        return e.strerror\n"
		"print('before', attempt(), flush=True)\n"
		"with open(conf + '.new', 'w') as f:\n"
		"    f.write(sys.argv[3])\n"
		"os.rename(conf + '.new', conf)\n"
		"time.sleep(1.3)\n"
		"print('after', attempt(), flush=True)\n";
	struct dl_server *s = dl_stallsrv("silent", NULL);
	struct dl_result r;
	const char *conf = dl_str("%s/faults.conf", dl_tmpdir());
	const char *log = dl_str("%s/faults.log", dl_tmpdir());
	char *text;

	dl_require_shim();
	dl_write_file(conf, "rules = ( { name = \"r\"; cidr = \"127.0.0.1\";"
			    " request_timeout = \"5s\"; } );\n");
	dl_run(&r, DL_V(py(), "-c", prog, s->port_s, conf,
			"seed = 7;\nrules = ( { name = \"r\"; cidr = "
			"\"127.0.0.1\"; request_timeout = \"5s\";\n"
			"  faults = { refuse = true; }; } );\n"),
	       DL_V(dl_str("DEADLINE_CONFIG=%s", conf),
		    dl_str("DEADLINE_LOG=%s", log)), 1, 20000);
	dl_assert_ok(&r, "the client");
	text = dl_read_file(log);
	dl_assert_run(&r, dl_line(r.out, "before connected") &&
			      dl_line(r.out, "after Connection refused"),
		      "the reload should turn the refuse fault on:\n%s", text);
	dl_assert_run(&r, strstr(text, "event=faults seed=7 seed_from=config ") &&
			      strstr(text, "fault=refuse rule=r "),
		      "the faults line (seed from the new file) and the fault "
		      "should be logged:\n%s", text);
	free(text);
	dl_result_free(&r);
}
