/* test_live.c - a long-running daemon under the shim (issue 14): rules
 * changed, counters read and the log rotated while it runs.
 *
 * redis-server is started once, under the shim, with an inbound rule
 * idle_timeout = "2s" on its port, DEADLINE_STATS=live.prom (the
 * Prometheus format, rewritten every 200 ms), DEADLINE_LOG=dl.log and
 * DEADLINE_LOG_RATE=50.  In order, without restarting it:
 *   1. a silent client is cut at about 2 s;
 *   2. the rule is edited to 300ms (a new file renamed over the old one):
 *      the log says event=reload result=ok, and the next silent client is
 *      cut at about 300 ms;
 *   3. a broken edit (an unquoted duration) is refused with FILE:LINE and
 *      result=error; the next silent client is still cut at 300 ms;
 *   4. the counters file parses with python3-prometheus-client's parser
 *      and its numbers are the events this test caused;
 *   5. a real `logrotate` run moves dl.log away; the next expiry's line is
 *      in the new dl.log, not in dl.log.1;
 *   6. a storm of 10,000 expiries: the log holds at most DEADLINE_LOG_RATE
 *      lines per second plus one "suppressed" line per second, the lines
 *      logged plus the ones summed up as suppressed are exactly 10,000,
 *      and so is the counter.
 */
#include "rw.h"

RW_SUITE(live, 240);

#define PY "/usr/bin/python3"

/* Prints every sample as "name{k=v,...} value" (labels sorted). */
static const char prom_py[] =
	"import sys\n"
	"from prometheus_client.parser import text_string_to_metric_families\n"
	"n = 0\n"
	"for fam in text_string_to_metric_families(open(sys.argv[1]).read()):\n"
	"    for s in fam.samples:\n"
	"        lab = ','.join('%s=%s' % kv for kv in sorted(s.labels.items()))\n"
	"        print('%s{%s} %r' % (s.name, lab, float(s.value)))\n"
	"        n += 1\n"
	"print('SAMPLES %d' % n)\n";

static int port;
static const char *conf, *logpath, *prom;

static void write_conf(const char *text)
{
	const char *tmp = rw_tmp("dl.conf.new");

	rw_write(tmp, text);
	cr_assert(rename(tmp, conf) == 0, "rename: %s", strerror(errno));
}

static void rule_conf(const char *idle)
{
	char text[512];

	dl_fmt(text, sizeof(text),
	       "# the daemon's clients\n"
	       "rules = (\n"
	       "  { name = \"clients\"; direction = \"inbound\"; port = %d;\n"
	       "    idle_timeout = %s; }\n"
	       ");\n", port, idle);
	write_conf(text);
}

static int redis_ping(void)
{
	struct dl_result r;
	char p[16];
	int ok;

	snprintf(p, sizeof(p), "%d", port);
	dl_run(&r, DL_V("redis-cli", "-h", "127.0.0.1", "-p", p, "PING"), NULL,
	       0, 3000);
	ok = r.exited && r.code == 0 && !strcmp(r.out, "PONG\n");
	dl_result_free(&r);
	return ok;
}

/* Waits up to ms for the log to hold n lines with needle. */
static int log_wait(const char *needle, int n, long ms)
{
	for (long t = 0;; t += 50) {
		char *text = dl_read_file(logpath);
		int k = dl_count_lines(text, needle);

		free(text);
		if (k >= n)
			return 1;
		if (t >= ms)
			return 0;
		hp_sleep_ms(50);
	}
}

/* A silent client: how long until the daemon's side cut it (ms). */
static long silent_client(long wait_ms)
{
	int fd = rw_connect(port);
	long at;
	const char *how = rw_watch(fd, wait_ms, &at);

	close(fd);
	cr_assert(strcmp(how, "open") != 0,
		  "a silent client was still connected after %ld ms", wait_ms);
	return at;
}

/* The parsed counters: "name{labels} value" lines. */
static char *counters(void)
{
	struct dl_result r;
	char *out;

	dl_run(&r, DL_V(PY, rw_tmp("prom.py"), prom), NULL, 0, 20000);
	dl_assert_run(&r, r.exited && r.code == 0,
		      "the counters file does not parse:\n%s",
		      dl_read_file(prom));
	out = r.out;
	r.out = NULL;
	dl_result_free(&r);
	return out;
}

static double sample(const char *text, const char *key)
{
	const char *line = rw_line_with(text, key);

	cr_assert(*line, "no sample %s in:\n%s", key, text);
	return strtod(line + strlen(key) + 1, NULL);
}

/* Waits (up to ms) until the counters file says key = want. */
static double counter_wait(const char *key, double want, long ms)
{
	double v = -1;

	for (long t = 0; t <= ms; t += 100) {
		char *text = counters();

		v = sample(text, key);
		free(text);
		if (v == want)
			break;
		hp_sleep_ms(100);
	}
	return v;
}

#define EXP_IDLE "libdeadline_expiries_total{phase=idle,rule=clients}"
#define CONNS "libdeadline_connections_total{rule=clients}"

Test(live, redis_rules_counters_and_log_without_restart)
{
	char p[16], env_conf[PATH_MAX + 32], env_log[PATH_MAX + 32],
		env_stats[PATH_MAX + 32];
	char *text;
	long ms;
	double c0;

	if (!rw_have("redis-server") || !rw_have("redis-cli"))
		cr_skip_test("redis-server/redis-cli not installed");
	if (access("/usr/lib/python3/dist-packages/prometheus_client/parser.py",
		   R_OK) != 0)
		cr_skip_test("python3-prometheus-client not installed");
	if (!rw_have("/usr/sbin/logrotate"))
		cr_skip_test("logrotate not installed");
	rw_write(rw_tmp("prom.py"), prom_py);
	port = dl_free_port();
	conf = strdup(rw_tmp("dl.conf"));
	logpath = strdup(rw_tmp("dl.log"));
	prom = strdup(rw_tmp("live.prom"));
	rule_conf("\"2s\"");
	dl_fmt(env_conf, sizeof(env_conf), "DEADLINE_CONFIG=%s", conf);
	dl_fmt(env_log, sizeof(env_log), "DEADLINE_LOG=%s", logpath);
	dl_fmt(env_stats, sizeof(env_stats), "DEADLINE_STATS=%s", prom);
	snprintf(p, sizeof(p), "%d", port);
	rw_adopt(dl_spawn(DL_V("redis-server", "--port", p, "--bind", "127.0.0.1",
			       "--save", "", "--appendonly", "no", "--dir",
			       dl_tmpdir(), "--protected-mode", "no",
			       "--timeout", "0", "--maxclients", "4000",
			       "--logfile", rw_tmp("redis.log")),
			  DL_V(env_conf, env_log, env_stats,
			       "DEADLINE_STATS_INTERVAL=200ms",
			       "DEADLINE_LOG_RATE=50", "LC_ALL=C"),
			  1, NULL, -1, -1));
	for (int i = 0; i < 100 && !redis_ping(); i++)
		hp_sleep_ms(50);
	cr_assert(redis_ping(), "redis-server did not start on %d", port);

	/* 1. The rule it started with. */
	ms = silent_client(5000);
	rw_note("live: silent client cut after %ld ms (rule 2s)", ms);
	cr_assert(ms >= 1900 && ms <= 2400 + 400,
		  "cut after %ld ms, not about 2000", ms);

	/* 2. Tightened while it runs. */
	rule_conf("\"300ms\"");
	cr_assert(log_wait("event=reload", 1, 3000),
		  "no event=reload line within 3 s:\n%s", dl_read_file(logpath));
	text = dl_read_file(logpath);
	cr_assert(strstr(text, "event=reload") &&
		  dl_has_tok(rw_line_with(text, "event=reload"), "result=ok") &&
		  dl_has_tok(rw_line_with(text, "event=reload"), "rules=1"),
		  "the reload line should say result=ok rules=1:\n%s", text);
	free(text);
	ms = silent_client(3000);
	rw_note("live: after the reload, cut after %ld ms (rule 300ms)", ms);
	cr_assert(ms >= 250 && ms <= 300 + 400,
		  "cut after %ld ms, not about 300", ms);

	/* 3. A broken edit keeps the rule in force. */
	rule_conf("300ms");
	cr_assert(log_wait("result=error", 1, 3000),
		  "no result=error line within 3 s:\n%s", dl_read_file(logpath));
	text = dl_read_file(logpath);
	{
		char where[PATH_MAX + 16];

		dl_fmt(where, sizeof(where), "%s:4: ", conf);
		cr_assert(strstr(text, where),
			  "the error should name %s line 4:\n%s", conf, text);
	}
	free(text);
	ms = silent_client(3000);
	rw_note("live: after a broken edit, cut after %ld ms", ms);
	cr_assert(ms >= 250 && ms <= 300 + 400,
		  "cut after %ld ms: the 300 ms rule should still apply", ms);

	/* 4. The counters, against what this test did. */
	cr_assert_eq(counter_wait(EXP_IDLE, 3, 3000), 3,
		     "three idle expiries so far");
	text = counters();
	cr_assert_eq(sample(text, "libdeadline_config_reloads_total{result=ok}"),
		     1);
	cr_assert_eq(sample(text,
			    "libdeadline_config_reloads_total{result=error}"), 1);
	cr_assert_eq(sample(text, "libdeadline_config_rules{}"), 1);
	cr_assert_eq(sample(text,
			    "libdeadline_expiries_total{phase=request,rule=clients}"),
		     0);
	c0 = sample(text, CONNS);
	free(text);
	{
		int fds[5];

		for (int i = 0; i < 5; i++)
			fds[i] = rw_connect(port);
		cr_assert_eq(counter_wait("libdeadline_open_connections{rule=clients}",
					  5, 3000), 5,
			     "five tracked connections open");
		cr_assert_eq(counter_wait(CONNS, c0 + 5, 3000), c0 + 5,
			     "five more connections");
		for (int i = 0; i < 5; i++) {
			long at;

			rw_watch(fds[i], 3000, &at);
			close(fds[i]);
		}
		cr_assert_eq(counter_wait(EXP_IDLE, 8, 3000), 8);
		cr_assert_eq(counter_wait("libdeadline_open_connections{rule=clients}",
					  0, 3000), 0);
	}

	/* 5. A real logrotate run. */
	{
		char lr[PATH_MAX * 2], *old, *cur;
		const char *lconf = rw_tmp("logrotate.conf");

		dl_fmt(lr, sizeof(lr), "%s {\n  rotate 2\n  create 0644\n"
		       "  missingok\n}\n", logpath);
		rw_write(lconf, lr);
		free(rw_must(DL_V("/usr/sbin/logrotate", "-f", "-s",
				  rw_tmp("logrotate.state"), lconf), NULL,
			     20000));
		ms = silent_client(3000);
		cr_assert(log_wait("event=deadline", 1, 3000),
			  "no expiry line in the new log");
		dl_fmt(lr, sizeof(lr), "%s.1", logpath);
		old = dl_read_file(lr);
		cur = dl_read_file(logpath);
		cr_assert_eq(dl_count_lines(old, "event=deadline"), 8,
			     "the rotated log should keep the 8 earlier "
			     "expiries:\n%s", old);
		cr_assert_eq(dl_count_lines(cur, "event=deadline"), 1,
			     "the new log should hold the new expiry:\n%s", cur);
		free(old);
		free(cur);
	}

	/* 6. A storm: 10,000 expiries, in batches of 400 connections. */
	{
		enum { TOTAL = 10000, BATCH = 400 };
		static int fds[BATCH];
		uint64_t t0 = dl_now_ns();
		long secs, logged, suppressed = 0, nsup;
		char *cur;

		for (int done = 0; done < TOTAL; done += BATCH) {
			for (int i = 0; i < BATCH; i++)
				fds[i] = rw_connect(port);
			for (int i = 0; i < BATCH; i++) {
				long at;

				rw_watch(fds[i], 3000, &at);
				close(fds[i]);
			}
		}
		cr_assert_eq(counter_wait(EXP_IDLE, 8 + 1 + TOTAL, 10000),
			     8 + 1 + TOTAL, "the counter should be exact");
		secs = (long)((dl_now_ns() - t0) / 1000000000u) + 2;
		hp_sleep_ms(1500);	/* the last second's summary */
		cur = dl_read_file(logpath);
		logged = dl_count_lines(cur, "event=deadline") - 1;
		nsup = dl_count_lines(cur, "event=suppressed");
		for (const char *q = cur; (q = strstr(q, "event=suppressed"));
		     q++)
			suppressed += dl_field(rw_line_with(q, "event=suppressed"),
					       "lines=");
		rw_note("live: storm of %d expiries in ~%ld s: %ld lines "
			"logged, %ld in %ld suppressed lines", TOTAL, secs,
			logged, suppressed, nsup);
		cr_assert_eq(logged + suppressed, TOTAL,
			     "logged + suppressed = %ld + %ld, not %d", logged,
			     suppressed, TOTAL);
		cr_assert(logged <= 50 * (secs + 1),
			  "%ld lines in about %ld s: the rate limit is 50/s",
			  logged, secs);
		cr_assert(nsup <= secs + 1, "%ld suppressed lines in %ld s",
			  nsup, secs);
		free(cur);
	}
	cr_assert(redis_ping(), "redis-server stopped serving");
}
