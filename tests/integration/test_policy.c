/* test_policy.c - the configuration file, end to end (issue 4's must-hold
 * list): per-address/port/family/host rules, bad files, connect retries,
 * inbound deadlines on a legacy-style daemon, the `deadline` command, and
 * the log and statistics outputs.
 *
 * Every server is started by the test on loopback (127.0.0.1, 127.0.0.2,
 * 127.0.0.3, ::1) on a kernel-picked port, or, for the late-starting
 * server, on a port picked by binding port 0 and closing.  Every command
 * runs with a hard timeout (harness.h).  Deadlines are a few hundred ms and
 * must fire within [limit, limit + POL_SLACK], POL_SLACK being 100 ms or
 * DL_SLACK_MS when that is larger.
 *
 * Helpers used: build/helpers/{stallsrv,dlclient,echod}, python3 (as an
 * unmodified program, and to parse JSON), curl, build/deadline, and from
 * the source tree the .conf files in config/ and tests/fixtures/conf/.
 *
 * ASan runs (DL_PRELOAD_EXTRA set): Debian's curl deadlocks at start-up
 * with the ASan runtime preloaded, shim or not, so curl checks are skipped
 * there and the same property is checked with python3's urllib.
 */
#include "harness.h"

#include <dirent.h>

TestSuite(policy, .init = dl_setup, .fini = dl_teardown, .timeout = 30);

#define LO "127.0.0.1"

/* ================================================================== */
/* Plumbing                                                            */
/* ================================================================== */

static long pol_slack(void)
{
	return dl_slack() > 100 ? dl_slack() : 100;
}

/* A time r logged or measured against [limit, limit + slack], net of
 * its main thread's run-queue wait (dl_rq_within). */
static int pol_within(const struct dl_result *r, long ms, long limit)
{
	return dl_rq_within(r, ms, limit, pol_slack());
}

/* The Debian python3.  The python3 first on PATH may be a wrapper script
 * (pyenv) that runs a dozen processes, each of which would load the shim
 * and log on its own. */
static const char *pol_py(void)
{
	return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3"
						       : "python3";
}

/* Write text to NAME in this test's temp dir; returns the absolute path. */
static const char *pol_file(const char *name, const char *text)
{
	char *path = dl_str("%s/%s", dl_tmpdir(), name);
	FILE *f = fopen(path, "w");

	cr_assert(f, "fopen %s: %s", path, strerror(errno));
	cr_assert(fputs(text, f) >= 0 && fclose(f) == 0, "write %s", path);
	return path;
}

/* Whole file as a heap string ("" if missing). */
static char *pol_slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0, len = 0, n;

	if (!f)
		return dl_str("%s", "");
	do {
		if (len + 4096 + 1 > cap) {
			cap = (len + 4096 + 1) * 2;
			buf = realloc(buf, cap);
			cr_assert(buf, "out of memory");
		}
		n = fread(buf + len, 1, 4096, f);
		len += n;
	} while (n > 0);
	fclose(f);
	buf[len] = '\0';
	return buf;
}

/* First line of text containing every one of the NULL-terminated needles
 * (pointer to its start), or NULL. */
static const char *pol_find(const char *text, ...)
{
	for (const char *p = text; p && *p;) {
		const char *nl = strchr(p, '\n');
		/* A needle may end with the line's '\n'. */
		const char *end = nl ? nl + 1 : p + strlen(p);
		const char *needle;
		int all = 1;
		va_list ap;

		va_start(ap, text);
		while ((needle = va_arg(ap, const char *))) {
			const char *hit = strstr(p, needle);

			if (!hit || hit + strlen(needle) > end) {
				all = 0;
				break;
			}
		}
		va_end(ap);
		if (all)
			return p;
		p = nl ? nl + 1 : NULL;
	}
	return NULL;
}

/* Nonzero when text has a line exactly equal to line. */
static int pol_has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);

		if (l == n && !strncmp(p, line, n))
			return 1;
		p = nl ? nl + 1 : NULL;
	}
	return 0;
}

/* A helper with its stderr merged into stdout, optionally under the shim
 * (see dl_server_start_ex). */
static struct dl_server *pol_start(const char *helper, const char *const *args,
				   const char *const *env, int preload,
				   int wait_port)
{
	return dl_server_start_ex(helper, args, env, preload, 1, wait_port);
}

/* What the last pol_err's client reported beside its ms (0 when it did
 * not say): the time it waited to run but did not (from its connection
 * on, when it had one), and the ms at which its connect returned. */
static long pol_rq_ms, pol_armed_ms;

/* "ERR <ENAME> <ms> ..." of dlclient rw / "ERR <ENAME> <ms> <rq> <armed>"
 * of the python clients: the name into name, the ms returned (-1 if no
 * such line), the rq into pol_rq_ms, the armed into pol_armed_ms. */
static long pol_err(const struct dl_result *r, char *name, size_t cap)
{
	const char *line = dl_line(r->out, "ERR ");
	char nm[32] = "";
	long ms = -1;

	pol_rq_ms = pol_armed_ms = 0;
	if (!line || sscanf(line, "ERR %31s %ld %ld %ld", nm, &ms, &pol_rq_ms,
			    &pol_armed_ms) < 2)
		return -1;
	dl_fmt(name, cap, "%s", nm);
	return ms;
}

/* A client's ms (pol_err) says the deadline fired on time: not before
 * limit from before its connect, and at most the slack after it from the
 * connect's return once the client's run-queue wait is taken off (a
 * loaded machine runs it late, not the shim). */
static int pol_on_time(long ms, long limit)
{
	return dl_within_armed(ms, pol_armed_ms, pol_rq_ms, limit, pol_slack());
}

/* A blocking python3 client: connect (through getaddrinfo) to HOST PORT,
 * send "hi\n", wait for an answer.  Prints "OK <bytes> <ms>" or
 * "ERR <ENAME> <ms> <rq> <armed>": ms from before the name lookup, armed
 * the ms at which the connection was made (0 without one), rq the time
 * since then (or since the start) it waited to run (schedstat's run
 * delay).  The lookup of a str host imports python's idna codec, files
 * read inside the timed window before any deadline starts. */
static const char py_stall_client[] =
	"import errno, socket, sys, time\n"
	"def rq():\n"
	"    try:\n"
	"        with open('/proc/self/schedstat') as f:\n"
	"            return int(f.read().split()[1]) // 1000000\n"
	"    except (OSError, ValueError, IndexError):\n"
	"        return 0\n"
	"rq0 = rq()\n"
	"t0 = time.monotonic()\n"
	"armed = 0\n"
	"def ms():\n"
	"    return int((time.monotonic() - t0) * 1000)\n"
	"try:\n"
	"    s = socket.create_connection((sys.argv[1], int(sys.argv[2])))\n"
	"    armed = ms()\n"
	"    rq0 = rq()\n"
	"    s.sendall(b'hi\\n')\n"
	"    d = s.recv(100)\n"
	"    print('OK %d %d' % (len(d), ms()))\n"
	"except OSError as e:\n"
	"    print('ERR %s %d %d %d' % (errno.errorcode.get(e.errno, 'E%s' % e.errno),"
	" ms(), rq() - rq0, armed))\n";

static void pol_python(struct dl_result *r, int preload,
		       const char *const *env, long timeout_ms,
		       const char *script, const char *a1, const char *a2)
{
	dl_run(r, DL_V(pol_py(), "-c", script, a1, a2), env, preload,
	       timeout_ms);
}

/* The one "event=deadline" log line of a run's text, checked to carry
 * the rule, phase and limit, and to say it fired on time.  Returns it. */
static const char *pol_deadline_line(const struct dl_result *r,
				     const char *text, const char *rule,
				     const char *phase, long limit)
{
	char want_rule[96], want_phase[48], want_limit[48];
	const char *line;

	dl_assert_run(r, !dl_sanitizer_report(r), "sanitizer report");
	dl_fmt(want_rule, sizeof(want_rule), " rule=%s ", rule);
	dl_fmt(want_phase, sizeof(want_phase), " phase=%s ", phase);
	dl_fmt(want_limit, sizeof(want_limit), " limit_ms=%ld ", limit);
	dl_assert_run(r, dl_count_lines(text, "event=deadline") == 1,
		      "expected exactly one event=deadline line in:\n%s", text);
	line = pol_find(text, "event=deadline", NULL);
	dl_assert_run(r, pol_find(line, want_rule, want_phase, want_limit,
				  NULL) == line,
		      "the deadline line should name%s,%s,%s:\n%.400s",
		      want_rule, want_phase, want_limit, line);
	dl_assert_run(r, pol_within(r, dl_field(line, "elapsed_ms="), limit),
		      "logged elapsed_ms outside [%ld,%ld]: %.400s", limit,
		      limit + pol_slack(), line);
	return line;
}

/* ================================================================== */
/* 1. One file, different deadlines per address, port, family, name    */
/* ================================================================== */

/* stallsrv silent on addr, on a port none of used[0..n) has (two servers
 * on different addresses may get the same number). */
static struct dl_server *silent_on(const char *addr, const int *used, int n)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		struct dl_server *s = dl_stallsrv("silent", "--addr", addr,
						  NULL);
		int clash = 0;

		for (int i = 0; i < n; i++)
			clash |= used[i] == s->port;
		if (!clash)
			return s;
	}
	cr_assert_fail("could not get a distinct port on %s", addr);
	return NULL;
}

Test(policy, rules_by_address_port_and_family)
{
	static const struct {
		const char *addr, *rule;
		long limit;
	} cases[] = {
		{ "127.0.0.2", "lo2", 300 },	/* cidr rule */
		{ "127.0.0.3", "port3", 600 },	/* port rule */
		{ "::1", "v6", 450 },		/* IPv6 cidr rule */
		{ LO, "rest", 200 },		/* catch-all rule */
	};
	struct dl_server *s[4];
	int ports[4];
	const char *conf;

	dl_require_shim();
	for (int i = 0; i < 4; i++) {
		s[i] = silent_on(cases[i].addr, ports, i);
		ports[i] = s[i]->port;
	}
	/* "decoy" has two match keys, each of which fits some connection,
	 * but no connection fits both: it must never match.  "sink" comes
	 * after the catch-all: first match wins, so it is never reached.
	 * defaults (2 s) would apply only if no rule matched. */
	conf = pol_file("rules.conf", dl_str(
		"defaults = { request_timeout = \"2s\"; };\n"
		"rules = (\n"
		"  { name = \"decoy\"; cidr = \"127.0.0.3/32\"; port = %d;\n"
		"    request_timeout = \"100ms\"; },\n"
		"  { name = \"lo2\"; cidr = \"127.0.0.2/32\";\n"
		"    request_timeout = \"300ms\"; },\n"
		"  { name = \"port3\"; port = \"%d-%d\"; direction = \"outbound\";\n"
		"    request_timeout = \"600ms\"; },\n"
		"  { name = \"inbound-only\"; direction = \"inbound\";\n"
		"    request_timeout = \"100ms\"; },\n"
		"  { name = \"v6\"; cidr = [ \"::1/128\" ];\n"
		"    request_timeout = \"450ms\"; },\n"
		"  { name = \"rest\"; request_timeout = \"200ms\"; },\n"
		"  { name = \"sink\"; cidr = \"127.0.0.0/8\";\n"
		"    request_timeout = \"100ms\"; }\n"
		");\n", ports[0], ports[1], ports[1]));

	for (int i = 0; i < 4; i++) {
		struct dl_result r;
		char name[32] = "", want_addr[64];
		long ms;

		dl_client(&r, 1, 6000,
			   DL_V(dl_str("DEADLINE_CONFIG=%s", conf)), "rw",
			   cases[i].addr, s[i]->port_s, "--send", "hi",
			   "--recv", "10", "--expect", "ETIMEDOUT", NULL);
		ms = pol_err(&r, name, sizeof(name));
		dl_assert_run(&r, ms >= 0 && !strcmp(name, "ETIMEDOUT") &&
			      strstr(r.out, "op=recv"),
			      "%s: expected recv() to fail with ETIMEDOUT",
			      cases[i].addr);
		dl_assert_run(&r, pol_on_time(ms, cases[i].limit),
			      "%s: rule %s (%ld ms) should fire within "
			      "[%ld,%ld] of connect", cases[i].addr,
			      cases[i].rule, cases[i].limit, cases[i].limit,
			      cases[i].limit + pol_slack());
		const char *line = pol_deadline_line(&r, r.err, cases[i].rule,
						     "request", cases[i].limit);
		dl_fmt(want_addr, sizeof(want_addr), " addr=%s ",
		       cases[i].addr);
		dl_assert_run(&r, pol_find(line, want_addr, NULL) == line,
			      "the log line should name%s", want_addr);
		dl_assert_run(&r, !dl_sanitizer_report(&r), "sanitizer report");
		dl_result_free(&r);
	}
}

/* host = "localhost" applies to a connection the program made by
 * resolving "localhost", not to the same address given as a literal. */
Test(policy, host_rule_follows_the_resolved_name)
{
	struct dl_server *s;
	const char *conf;
	struct dl_result r;
	char name[32] = "";
	long ms;

	dl_require_shim();
	s = dl_stallsrv("silent", NULL);
	conf = pol_file("host.conf",
		"defaults = { request_timeout = \"800ms\"; };\n"
		"rules = (\n"
		"  { name = \"byname\"; host = \"localhost\";\n"
		"    request_timeout = \"300ms\"; }\n"
		");\n");

	pol_python(&r, 1, DL_V(dl_str("DEADLINE_CONFIG=%s", conf)), 8000,
		   py_stall_client, "localhost", s->port_s);
	ms = pol_err(&r, name, sizeof(name));
	dl_assert_run(&r, ms >= 0 && !strcmp(name, "ETIMEDOUT"),
		      "python3 to \"localhost\": expected ETIMEDOUT");
	dl_assert_run(&r, pol_on_time(ms, 300),
		      "the host rule (300 ms) should fire within [300,%ld]",
		      300 + pol_slack());
	const char *line = pol_deadline_line(&r, r.err, "byname", "request",
					     300);
	dl_assert_run(&r, pol_find(line, " host=localhost ", NULL) == line,
		      "the log line should name host=localhost");
	dl_result_free(&r);

	pol_python(&r, 1, DL_V(dl_str("DEADLINE_CONFIG=%s", conf)), 8000,
		   py_stall_client, LO, s->port_s);
	ms = pol_err(&r, name, sizeof(name));
	dl_assert_run(&r, ms >= 0 && !strcmp(name, "ETIMEDOUT"),
		      "python3 to 127.0.0.1: expected ETIMEDOUT (defaults)");
	dl_assert_run(&r, pol_on_time(ms, 800),
		      "a literal 127.0.0.1 must not match host=\"localhost\": "
		      "defaults (800 ms) should fire within [800,%ld]",
		      800 + pol_slack());
	line = pol_deadline_line(&r, r.err, "defaults", "request", 800);
	dl_assert_run(&r, pol_find(line, " host=127.0.0.1 ", NULL) == line,
		      "the log line should name host=127.0.0.1");
	dl_result_free(&r);
}

/* ================================================================== */
/* 2. A bad file: reported once per problem, then ignored              */
/* ================================================================== */

/* Each file would give every connection a 100 ms request deadline if it
 * were used; the server answers after 300 ms, so a client that gets its
 * answer proves the file was not used. */
static const struct bad_conf {
	const char *name;
	const char *text;
	struct {
		int line;
		const char *msg;	/* substring of the message */
	} err[3];
} bad_confs[] = {
	{ "syntax.conf",
	  "# a missing '='\n"
	  "defaults = {\n"
	  "    request_timeout = \"100ms\";\n"
	  "    idle_timeout \"5s\";\n"
	  "};\n",
	  { { 4, "syntax error" } } },
	{ "unknown-key.conf",
	  "defaults = { request_timeout = \"100ms\"; };\n"
	  "rules = (\n"
	  "    {\n"
	  "        name = \"api\";\n"
	  "        conect_timeout = \"1s\";\n"
	  "    }\n"
	  ");\n",
	  { { 5, "unknown key 'conect_timeout' in rule; did you mean "
		 "'connect_timeout'?" } } },
	{ "bad-duration.conf",
	  "defaults = {\n"
	  "    request_timeout = \"100ms\";\n"
	  "    connect_timeout = \"5x\";\n"
	  "};\n",
	  { { 3, "bad duration '5x' for 'connect_timeout'" } } },
	{ "three-problems.conf",
	  "defaults = {\n"
	  "    request_timeout = \"100ms\";\n"
	  "    idle_timout = \"1s\";\n"
	  "};\n"
	  "rules = (\n"
	  "    { name = \"a\"; first_byte_timeout = \"soon\"; },\n"
	  "    { name = \"b\"; errno = \"ETIMEOUT\"; }\n"
	  ");\n",
	  { { 3, "unknown key 'idle_timout' in 'defaults'" },
	    { 6, "bad duration 'soon' for 'first_byte_timeout'" },
	    { 7, "unknown errno name 'ETIMEOUT'" } } },
};

#define NBAD (sizeof(bad_confs) / sizeof(bad_confs[0]))

/* stderr of a run under the bad file: one "libdeadline: FILE:LINE: ..."
 * per problem, one "FILE: configuration not used" line, nothing else. */
static void check_bad_conf_report(const struct dl_result *r,
				  const struct bad_conf *b, const char *path)
{
	int nerr = 0;

	for (; nerr < 3 && b->err[nerr].msg; nerr++) {
		char *prefix = dl_str("libdeadline: %s:%d: ", path,
				       b->err[nerr].line);
		const char *line = dl_line(r->err, prefix);

		dl_assert_run(r, line && pol_find(line, b->err[nerr].msg,
						  NULL) == line,
			      "%s: expected a line '%s%s...'", b->name, prefix,
			      b->err[nerr].msg);
		free(prefix);
	}
	char *unused = dl_str("libdeadline: %s: configuration not used; "
			       "passing everything through", path);
	dl_assert_run(r, pol_has_line(r->err, unused),
		      "%s: expected the line '%s'", b->name, unused);
	free(unused);
	dl_assert_run(r, dl_count_lines(r->err, "libdeadline:") == nerr + 1,
		      "%s: expected exactly %d libdeadline lines (one per "
		      "problem, then 'not used')", b->name, nerr + 1);
}

static void bad_conf_transparent(int use_curl)
{
	struct dl_server *s;
	struct dl_result nat;
	char *url;
	const char *curl[8], *py[5];
	const char *const *argv;

	dl_require_shim();
	s = dl_stallsrv("http", NULL);
	url = dl_str("http://127.0.0.1:%d/delay/300", s->port);
	memcpy(curl, DL_V("curl", "-q", "-sS", "--noproxy", "*", "-i", url),
	       sizeof(curl));
	memcpy(py, DL_V(pol_py(), "-c",
			"import sys, urllib.request\n"
			"h = urllib.request.ProxyHandler({})\n"
			"o = urllib.request.build_opener(h)\n"
			"r = o.open(sys.argv[1])\n"
			"sys.stdout.write('%d %r %s' % (r.status,"
			" sorted(r.getheaders()), r.read().decode()))\n",
			url), sizeof(py));
	argv = use_curl ? curl : py;

	dl_run(&nat, argv, NULL, 0, 8000);
	dl_assert_ok(&nat, "the client without the shim");
	dl_assert_run(&nat, strstr(nat.out, "hello\n") != NULL,
		      "the native run did not get the answer");

	for (size_t i = 0; i < NBAD; i++) {
		const char *path = pol_file(bad_confs[i].name,
					    bad_confs[i].text);
		struct dl_result r;

		dl_run(&r, argv, DL_V(dl_str("DEADLINE_CONFIG=%s", path)), 1,
		       8000);
		dl_assert_run(&r, r.exited && r.code == nat.code,
			      "%s: exit status %d, without the shim %d "
			      "(a 100 ms deadline from the bad file?)",
			      bad_confs[i].name, r.code, nat.code);
		dl_assert_run(&r, !strcmp(r.out, nat.out),
			      "%s: output differs from the run without the "
			      "shim:\n%s", bad_confs[i].name, nat.out);
		check_bad_conf_report(&r, &bad_confs[i], path);
		dl_assert_run(&r, !dl_sanitizer_report(&r), "sanitizer report");
		dl_result_free(&r);
	}
	dl_result_free(&nat);
}

Test(policy, bad_config_curl_works_as_without_shim)
{
	if (dl_asan_run())
		cr_skip("curl deadlocks at start-up with the ASan runtime "
			"preloaded (even without the shim); the same property "
			"is checked with python3 in "
			"bad_config_python_works_as_without_shim");
	bad_conf_transparent(1);
}

Test(policy, bad_config_python_works_as_without_shim)
{
	bad_conf_transparent(0);
}

/* DEADLINE_STRICT=1: any bad file makes even /bin/true exit 2, before
 * main; a good file does not. */
Test(policy, bad_config_strict_exits_2)
{
	struct dl_result r;
	const char *good;

	dl_require_shim();
	for (size_t i = 0; i < NBAD; i++) {
		const char *path = pol_file(bad_confs[i].name,
					    bad_confs[i].text);
		char *first = dl_str("libdeadline: %s:%d: ", path,
				      bad_confs[i].err[0].line);

		dl_run(&r, DL_V("/bin/true"),
		       DL_V(dl_str("DEADLINE_CONFIG=%s", path),
			    "DEADLINE_STRICT=1"), 1, 5000);
		dl_assert_run(&r, r.exited && r.code == 2,
			      "%s with DEADLINE_STRICT=1: /bin/true should "
			      "exit 2", bad_confs[i].name);
		dl_assert_run(&r, dl_line(r.err, first) != NULL,
			      "%s: the error should still be printed (%s...)",
			      bad_confs[i].name, first);
		free(first);
		dl_result_free(&r);
	}
	good = pol_file("good.conf",
			"rules = ( { name = \"ok\"; request_timeout = \"1s\"; } );\n");
	dl_run(&r, DL_V("/bin/true"),
	       DL_V(dl_str("DEADLINE_CONFIG=%s", good), "DEADLINE_STRICT=1"),
	       1, 5000);
	dl_assert_run(&r, r.exited && r.code == 0 && !strstr(r.err, "libdeadline"),
		      "a good file with DEADLINE_STRICT=1: /bin/true should "
		      "exit 0 quietly");
	dl_result_free(&r);
}

/* ================================================================== */
/* 3. Connect retries                                                  */
/* ================================================================== */

/* The event=retry lines of text: attempts must be 1, 2, 3, ... in order,
 * each with the given error and rule.  Returns how many there are. */
static int check_retry_lines(const struct dl_result *r, const char *text,
			     const char *error, const char *rule)
{
	char want_err[48], want_rule[96];
	int n = 0;

	dl_assert_run(r, !dl_sanitizer_report(r), "sanitizer report");
	dl_fmt(want_err, sizeof(want_err), " error=%s ", error);
	dl_fmt(want_rule, sizeof(want_rule), " rule=%s ", rule);
	for (const char *p = text; p && *p;) {
		const char *nl = strchr(p, '\n');

		if (pol_find(p, "event=retry", NULL) == p) {
			n++;
			dl_assert_run(r, dl_field(p, " attempt=") == n,
				      "retry line %d should say attempt=%d: "
				      "%.300s", n, n, p);
			dl_assert_run(r, pol_find(p, want_err, want_rule,
						  NULL) == p,
				      "retry line %d should name%s and%s: "
				      "%.300s", n, want_err, want_rule, p);
		}
		p = nl ? nl + 1 : NULL;
	}
	return n;
}

/* The port refuses at first; a server comes up on it 400 ms later: a
 * blocking client retries and gets through. */
Test(policy, retry_until_late_server_accepts)
{
	struct dl_server *late;
	struct dl_result r;
	const char *conf, *out;
	int port;

	dl_require_shim();
	port = dl_free_port();
	conf = pol_file("retry.conf", dl_str(
		"rules = ( {\n"
		"  name = \"late\"; cidr = \"127.0.0.1/32\"; port = %d;\n"
		"  connect_timeout = \"300ms\"; request_timeout = \"3s\";\n"
		"  connect_retries = 60;\n"
		"  retry_backoff = { base = \"20ms\"; max = \"80ms\"; };\n"
		"} );\n", port));
	late = pol_start("echod", DL_V("--port", dl_str("%d", port),
				       "--after", "400", "--lifetime", "30"),
			 NULL, 0, 0);
	dl_client(&r, 1, 8000, DL_V(dl_str("DEADLINE_CONFIG=%s", conf)),
		   "rw", LO, dl_str("%d", port), "--send", "ping\\n",
		   "--recv", "5", NULL);
	dl_assert_ok(&r, "dlclient should get through once the server is up");
	dl_assert_run(&r, dl_line(r.out, "OK 5 ") != NULL,
		      "expected the 5-byte echo");
	dl_assert_run(&r, r.ms < 3000, "took longer than the request budget");
	int n = check_retry_lines(&r, r.err, "ECONNREFUSED", "late");
	dl_assert_run(&r, n >= 2, "expected several event=retry lines while "
			  "the port refused (got %d)", n);
	dl_assert_run(&r, dl_count_lines(r.err, "event=deadline") == 0,
		      "no deadline should fire");
	out = dl_server_output(late, 200);
	cr_assert(strstr(out, "ACCEPT 1 ") && strstr(out, "lines=1 "),
		  "the late server should have served one line; it said:\n%s",
		  out);
	dl_result_free(&r);
}

/* The port never opens, retries are plentiful: the request deadline ends
 * them.  The last back-off that would end past the deadline is not slept,
 * so the client may give up up to one back-off (100 ms) early, never
 * later than the deadline. */
Test(policy, retry_stops_at_request_deadline_refused)
{
	struct dl_result r;
	const char *conf;
	char name[32] = "";
	int port;
	long ms;

	dl_require_shim();
	port = dl_free_port();
	conf = pol_file("retry.conf", dl_str(
		"rules = ( {\n"
		"  name = \"never\"; port = %d;\n"
		"  request_timeout = \"600ms\"; connect_retries = 100;\n"
		"  retry_backoff = { base = \"50ms\"; max = \"100ms\"; };\n"
		"} );\n", port));
	pol_python(&r, 1, DL_V(dl_str("DEADLINE_CONFIG=%s", conf)), 8000,
		   py_stall_client, LO, dl_str("%d", port));
	ms = pol_err(&r, name, sizeof(name));
	dl_assert_run(&r, ms >= 0 && (!strcmp(name, "ECONNREFUSED") ||
				      !strcmp(name, "ETIMEDOUT")),
		      "python3 should fail to connect");
	dl_assert_run(&r, ms >= 600 - 100 && ms <= 600 + pol_slack(),
		      "retries should stop at the 600 ms request deadline: "
		      "failed after %ld ms, want [500,%ld]", ms,
		      600 + pol_slack());
	int n = check_retry_lines(&r, r.err, "ECONNREFUSED", "never");
	dl_assert_run(&r, n >= 4 && n < 100,
		      "expected the deadline, not connect_retries=100, to end "
		      "the retries (got %d retry lines)", n);
	dl_result_free(&r);
}

/* Each attempt hangs (full accept queue) until its 250 ms connect
 * deadline; the third attempt is cut by the 600 ms request deadline. */
Test(policy, retry_stops_at_request_deadline_connect_timeouts)
{
	struct dl_server *s;
	struct dl_result r;
	const char *conf;
	char name[32] = "";
	long ms;

	dl_require_shim();
	s = dl_stallsrv("backlog", NULL);
	conf = pol_file("retry.conf", dl_str(
		"rules = ( {\n"
		"  name = \"hang\"; port = %d; connect_timeout = \"250ms\";\n"
		"  request_timeout = \"600ms\"; connect_retries = 10;\n"
		"  retry_backoff = { base = \"10ms\"; max = \"20ms\"; };\n"
		"} );\n", s->port));
	dl_client(&r, 1, 8000, DL_V(dl_str("DEADLINE_CONFIG=%s", conf)),
		   "rw", LO, s->port_s, "--expect", "ETIMEDOUT", NULL);
	ms = pol_err(&r, name, sizeof(name));
	dl_assert_run(&r, ms >= 0 && !strcmp(name, "ETIMEDOUT") &&
		      strstr(r.out, "op=connect"),
		      "connect() should fail with ETIMEDOUT");
	dl_assert_run(&r, ms >= 600 - 20 && ms <= 600 + pol_slack(),
		      "retries should stop at the 600 ms request deadline: "
		      "failed after %ld ms, want [580,%ld]", ms,
		      600 + pol_slack());
	int n = check_retry_lines(&r, r.err, "ETIMEDOUT", "hang");
	dl_assert_run(&r, n >= 1 && n <= 3,
		      "expected 2 retries (each after a 250 ms connect "
		      "deadline), got %d", n);
	dl_assert_run(&r, dl_count_lines(r.err, "phase=connect ") == n,
		      "each retry should follow one connect deadline");
	/* Normally the request deadline itself cuts the third attempt. */
	const char *req = pol_find(r.err, "event=deadline", " phase=request ",
				   NULL);
	if (req)
		dl_assert_run(&r, pol_within(&r, dl_field(req, "elapsed_ms="),
					     600),
			      "request deadline logged outside [600,%ld]",
			      600 + pol_slack());
	dl_result_free(&r);
}

/* With a far request deadline, connect_retries is what ends them. */
Test(policy, retry_count_exhausted_before_deadline)
{
	struct dl_result r;
	const char *conf;
	char name[32] = "";
	int port;

	dl_require_shim();
	port = dl_free_port();
	conf = pol_file("retry.conf", dl_str(
		"rules = ( {\n"
		"  name = \"three\"; cidr = \"127.0.0.1\"; port = %d;\n"
		"  request_timeout = \"5s\"; connect_retries = 3;\n"
		"  retry_backoff = { base = \"20ms\"; max = \"50ms\"; };\n"
		"} );\n", port));
	dl_client(&r, 1, 8000, DL_V(dl_str("DEADLINE_CONFIG=%s", conf)),
		   "rw", LO, dl_str("%d", port), "--expect", "ECONNREFUSED",
		   NULL);
	dl_assert_run(&r, pol_err(&r, name, sizeof(name)) >= 0 &&
		      !strcmp(name, "ECONNREFUSED") && r.code == 0,
		      "connect() should fail with ECONNREFUSED");
	dl_assert_run(&r, r.ms < 2000, "three short back-offs took too long");
	int n = check_retry_lines(&r, r.err, "ECONNREFUSED", "three");
	dl_assert_run(&r, n == 3, "expected exactly 3 retries, got %d", n);
	dl_result_free(&r);
}

/* ================================================================== */
/* 4. Inbound: a legacy echo daemon cuts off a slowloris client        */
/* ================================================================== */

/* One client connection driven by this test (not under the shim). */
struct peer {
	int fd;
	int port;	/* our local port: the daemon reports it */
	int slow;	/* dribbles one byte every 300 ms, never a '\n' */
	uint64_t t0;	/* just before connect() */
	uint64_t next;	/* next send */
	int ended;
	long end_ms;
	char how[32];	/* "EOF" or the errno name */
	long exchanges;	/* complete echoes (normal client) */
	int waiting;
	char buf[64];
	size_t got;
};

static void peer_open(struct peer *p, int port, int slow)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);

	memset(p, 0, sizeof(*p));
	p->slow = slow;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	p->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* Before connect(): the daemon's accept() may return before our
	 * connect() does, and its deadline counts from the accept. */
	p->t0 = p->next = dl_now_ns();
	cr_assert(p->fd >= 0 && connect(p->fd, (struct sockaddr *)&a,
					sizeof(a)) == 0,
		  "connect to the daemon: %s", strerror(errno));
	cr_assert(getsockname(p->fd, (struct sockaddr *)&a, &len) == 0);
	p->port = ntohs(a.sin_port);
	fcntl(p->fd, F_SETFL, fcntl(p->fd, F_GETFL) | O_NONBLOCK);
}

static void peer_end(struct peer *p, int err)
{
	if (p->ended)
		return;
	p->ended = 1;
	p->end_ms = (long)((dl_now_ns() - p->t0) / 1000000u);
	dl_fmt(p->how, sizeof(p->how), "%s",
	       err ? (strerrorname_np(err) ? strerrorname_np(err) : "E?")
		   : "EOF");
}

/* Send what is due. */
static void peer_send(struct peer *p, uint64_t now)
{
	char line[32];
	ssize_t w;
	int n;

	if (p->ended || now < p->next || (!p->slow && p->waiting))
		return;
	if (p->slow) {
		w = send(p->fd, "x", 1, MSG_NOSIGNAL);
		p->next = now + 300000000u;
		if (w < 0 && errno != EAGAIN)
			peer_end(p, errno);
		return;
	}
	n = snprintf(line, sizeof(line), "ping %ld\n", p->exchanges);
	w = send(p->fd, line, (size_t)n, MSG_NOSIGNAL);
	if (w < 0) {
		if (errno != EAGAIN)
			peer_end(p, errno);
		return;
	}
	cr_assert(w == n, "short send on a fresh loopback connection");
	p->waiting = 1;
	p->got = 0;
}

/* Read what arrived. */
static void peer_recv(struct peer *p, uint64_t now)
{
	ssize_t r;

	if (p->ended)
		return;
	r = recv(p->fd, p->buf + p->got, sizeof(p->buf) - 1 - p->got, 0);
	if (r < 0) {
		if (errno != EAGAIN && errno != EINTR)
			peer_end(p, errno);
		return;
	}
	if (r == 0) {
		peer_end(p, 0);
		return;
	}
	cr_assert(!p->slow, "the daemon answered a line that never ended");
	p->got += (size_t)r;
	p->buf[p->got] = '\0';
	if (strchr(p->buf, '\n')) {
		char want[32];

		dl_fmt(want, sizeof(want), "ping %ld\n", p->exchanges);
		cr_assert(!strcmp(p->buf, want), "bad echo '%s', want '%s'",
			  p->buf, want);
		p->exchanges++;
		p->waiting = 0;
		p->next = now + 30000000u;	/* 30 ms think time */
	}
}

/* Drive the peers for ms milliseconds. */
static void peers_run(struct peer *ps, int n, long ms)
{
	uint64_t end = dl_now_ns() + (uint64_t)ms * 1000000u;

	for (;;) {
		struct pollfd pf[8];
		uint64_t now = dl_now_ns();

		if (now >= end)
			break;
		for (int i = 0; i < n; i++) {
			peer_send(&ps[i], now);
			pf[i] = (struct pollfd){
				.fd = ps[i].ended ? -1 : ps[i].fd,
				.events = POLLIN,
			};
		}
		if (poll(pf, (nfds_t)n, 5) <= 0)
			continue;
		now = dl_now_ns();
		for (int i = 0; i < n; i++)
			if (pf[i].revents)
				peer_recv(&ps[i], now);
	}
}

/* The daemon's "CLIENT <id> END ..." line for the client on port. */
static const char *end_line(const char *out, int port)
{
	char needle[32];

	dl_fmt(needle, sizeof(needle), " peer=%d\n", port);
	return pol_find(out, "CLIENT ", " END ", needle, NULL);
}

static void inbound_slowloris(int fork_mode)
{
	struct dl_server *shimmed, *native;
	struct peer ps[3];	/* slow, normal (shimmed daemon); slow (native) */
	const char *conf, *out, *line;
	const char *const args[] = { "--lifetime", "30",
				     fork_mode ? "--fork" : NULL, NULL };

	dl_require_shim();
	conf = pol_file("inbound.conf",
		"rules = ( { name = \"clients\"; direction = \"inbound\";\n"
		"            request_timeout = \"1s\"; } );\n");
	shimmed = pol_start("echod", args,
			    DL_V(dl_str("DEADLINE_CONFIG=%s", conf)), 1, 1);
	native = pol_start("echod", args, NULL, 0, 1);

	peer_open(&ps[0], shimmed->port, 1);
	peer_open(&ps[1], shimmed->port, 0);
	peer_open(&ps[2], native->port, 1);
	peers_run(ps, 3, 3300);
	for (int i = 0; i < 3; i++)
		close(ps[i].fd);

	/* The slow client of the shimmed daemon: cut at ~1 s. */
	cr_assert(ps[0].ended,
		  "the slowloris client was never cut off by the daemon "
		  "under the shim (3.3 s)");
	cr_assert(!strcmp(ps[0].how, "ECONNRESET") || !strcmp(ps[0].how, "EOF"),
		  "the slow client should see RST or EOF, saw %s", ps[0].how);
	cr_assert(ps[0].end_ms >= 1000 && ps[0].end_ms <= 1000 + pol_slack(),
		  "the slow client was cut after %ld ms, want [1000,%ld]",
		  ps[0].end_ms, 1000 + pol_slack());

	out = dl_server_output(shimmed, 300);
	cr_assert(!strstr(out, "ERROR: AddressSanitizer") &&
		  !strstr(out, "runtime error:"),
		  "sanitizer report from the daemon:\n%s", out);
	line = end_line(out, ps[0].port);
	cr_assert(line, "the shimmed daemon did not report the slow client's "
		  "end; it said:\n%s", out);
	cr_assert(pol_find(line, " END ETIMEDOUT ", " lines=0 ", NULL) == line,
		  "the daemon's read should fail with ETIMEDOUT: %.200s", line);
	/* The daemon stamps the time once accept() has returned; the shim
	 * starts the deadline inside accept(), a little earlier (4 ms seen
	 * under ASan on a loaded machine).  Allow that much before 1000. */
	cr_assert(dl_field(line, "after_ms=") >= 980 &&
		  dl_field(line, "after_ms=") <= 1000 + pol_slack(),
		  "the daemon saw ETIMEDOUT outside [980,%ld] after accept: "
		  "%.200s", 1000 + pol_slack(), line);
	cr_assert(dl_count_lines(out, "event=deadline") == 1 &&
		  pol_find(out, "event=deadline", " rule=clients ",
			   " phase=request ", " limit_ms=1000 ", NULL),
		  "expected one deadline line for rule clients, phase "
		  "request; the daemon said:\n%s", out);

	/* The normal client alongside: served all along. */
	cr_assert(!ps[1].ended, "the normal client was cut off (%s after %ld "
		  "ms)", ps[1].how, ps[1].end_ms);
	cr_assert(ps[1].exchanges >= 20,
		  "the normal client completed only %ld exchanges in 3.3 s",
		  ps[1].exchanges);
	line = end_line(out, ps[1].port);
	cr_assert(line && pol_find(line, " END EOF ", NULL) == line &&
		  dl_field(line, "lines=") == ps[1].exchanges,
		  "the normal client should end by our close after %ld "
		  "lines; the daemon said:\n%s", ps[1].exchanges, out);

	/* Without the shim the slow client keeps its connection. */
	cr_assert(!ps[2].ended, "without the shim the slow client was cut "
		  "off (%s after %ld ms)", ps[2].how, ps[2].end_ms);
	out = dl_server_output(native, 300);
	line = end_line(out, ps[2].port);
	cr_assert(line && pol_find(line, " END EOF ", NULL) == line &&
		  dl_field(line, "after_ms=") >= 3000,
		  "without the shim the slow client should hold on past 3 s "
		  "and end by our close; the daemon said:\n%s", out);
	cr_assert(!strstr(out, "libdeadline"), "the native daemon has no shim");
}

Test(policy, inbound_slowloris_threaded_daemon)
{
	inbound_slowloris(0);
}

Test(policy, inbound_slowloris_forking_daemon)
{
	inbound_slowloris(1);
}

/* ================================================================== */
/* 5. The deadline command                                             */
/* ================================================================== */

/* The names of the rules in a file: `name = "X"` lines. */
static int rule_names(const char *text, char names[][64], int max)
{
	int n = 0;

	for (const char *p = text; p && *p && n < max;) {
		const char *nl = strchr(p, '\n');
		const char *q = p + strspn(p, " \t{");

		if (!strncmp(q, "name", 4) &&
		    sscanf(q, "name = \"%63[^\"]\"", names[n]) == 1)
			n++;
		p = nl ? nl + 1 : NULL;
	}
	return n;
}

/* The .conf files of a directory of the source tree, as absolute paths
 * (at most max); returns how many. */
static int conf_files(const char *rel, char **out, int max)
{
	const char *dir = dl_src(rel);
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	cr_assert(d, "opendir %s: %s", dir, strerror(errno));
	while ((de = readdir(d)) && n < max) {
		size_t l = strlen(de->d_name);

		if (l > 5 && !strcmp(de->d_name + l - 5, ".conf"))
			out[n++] = dl_str("%s/%s", dir, de->d_name);
	}
	closedir(d);
	return n;
}

Test(policy, deadline_check_shipped_examples)
{
	char *files[32];
	int nfiles = conf_files("config", files, 32), curl_seen = 0;

	cr_assert(nfiles >= 3, "expected the shipped examples in config/");
	for (int i = 0; i < nfiles; i++) {
		const char *path = files[i];
		char *text = pol_slurp(path), names[32][64];
		int n = rule_names(text, names, 32), rows = 0;
		struct dl_result r;

		dl_deadline(&r, NULL, 5000, "check", path, NULL);
		dl_assert_run(&r, r.exited && r.code == 0,
			      "deadline check %s should exit 0", path);
		dl_assert_run(&r, !strncmp(r.out, "NAME ", 5) &&
			      pol_find(r.out, "MATCH", "CONNECT", "FIRST_BYTE",
				       "IDLE", "REQUEST", NULL) == r.out,
			      "%s: expected a table header", path);
		dl_assert_run(&r, n >= 1, "%s: no rule names found", path);
		for (int k = 0; k < n; k++) {
			char *row = dl_str("%s ", names[k]);

			dl_assert_run(&r, dl_line(r.out, row) != NULL,
				      "%s: no table row for rule %s", path,
				      names[k]);
			free(row);
		}
		dl_assert_run(&r, dl_line(r.out, "defaults ") != NULL,
			      "%s: no row for defaults", path);
		for (const char *p = r.out; p && *p; p = strchr(p, '\n'),
		     p = p ? p + 1 : p)
			if (strncmp(p, "seed:", 5) && strncmp(p, "note:", 5))
				rows++;
		dl_assert_run(&r, rows == n + 2,
			      "%s: expected %d table lines (header, %d rules, "
			      "defaults), got %d", path, n + 2, n, rows);
		dl_assert_run(&r, !*r.err, "%s: nothing expected on stderr",
			      path);
		if (strstr(path, "/curl-client.conf")) {
			curl_seen = 1;
			dl_assert_run(&r, pol_find(r.out, "loopback ", " 200ms ",
						   " 2s ", NULL) != NULL,
				      "curl-client: the loopback row should "
				      "show connect 200ms, first byte 2s");
		}
		free(text);
		dl_result_free(&r);
	}
	cr_assert(curl_seen, "config/curl-client.conf is missing");
}

Test(policy, deadline_check_bad_fixtures)
{
	char *files[128];
	int nfiles = conf_files("tests/fixtures/conf", files, 128);

	cr_assert(nfiles >= 3, "expected the fixtures in tests/fixtures/conf");
	for (int i = 0; i < nfiles; i++) {
		const char *path = files[i];
		const char *base = strrchr(path, '/') + 1;
		char *text = pol_slurp(path), *summary;
		struct dl_result r;
		int nexp = 0;

		dl_deadline(&r, NULL, 5000, "check", path, NULL);
		dl_assert_run(&r, r.exited && r.code == 2,
			      "deadline check %s should exit 2", base);
		dl_assert_run(&r, !*r.out, "%s: no table expected", base);
		/* "# expect: LINE: message" lines at the top, one per
		 * problem; each must be printed as "PATH:LINE: message". */
		for (const char *p = text; !strncmp(p, "# expect: ", 10);) {
			const char *nl = strchr(p, '\n');
			size_t n = nl ? (size_t)(nl - p) : strlen(p);
			char *want = dl_str("%s:%.*s", path, (int)(n - 10),
					     p + 10);

			dl_assert_run(&r, pol_has_line(r.err, want),
				      "%s: expected the line\n%s", base, want);
			free(want);
			nexp++;
			if (!nl)
				break;
			p = nl + 1;
		}
		cr_assert(nexp > 0, "%s: no '# expect:' line", base);
		char *prefix = dl_str("%s:", path);
		char *errs = dl_lines(r.err, prefix);
		dl_assert_run(&r, dl_count_lines(errs, "") == nexp,
			      "%s: expected exactly %d error line(s)", base,
			      nexp);
		free(errs);
		free(prefix);
		summary = dl_str("deadline: %s: %d error%s", path, nexp,
				  nexp == 1 ? "" : "s");
		dl_assert_run(&r, pol_has_line(r.err, summary),
			      "%s: expected the summary '%s'", base, summary);
		free(summary);
		free(text);
		dl_result_free(&r);
	}
}

/* deadline --request 500ms -- python3 ... against a silent server. */
Test(policy, deadline_command_request)
{
	struct dl_server *s;
	struct dl_result r;
	char name[32] = "";
	long ms;

	dl_require_shim();
	s = dl_stallsrv("silent", NULL);
	dl_deadline(&r, NULL, 8000, "--request", "500ms", "--", pol_py(),
		     "-c", py_stall_client, LO, s->port_s, NULL);
	ms = pol_err(&r, name, sizeof(name));
	dl_assert_run(&r, ms >= 0 && !strcmp(name, "ETIMEDOUT"),
		      "python3 under deadline --request 500ms should get "
		      "ETIMEDOUT");
	dl_assert_run(&r, pol_on_time(ms, 500),
		      "fired after %ld ms (connected at %ld, then %ld ms "
		      "waiting to run), want [500,%ld] from the connect net "
		      "of that wait", ms, pol_armed_ms, pol_rq_ms,
		      500 + pol_slack());
	pol_deadline_line(&r, r.err, "env", "request", 500);
	dl_assert_run(&r, r.exited && r.code == 0, "python3 exits 0 itself");
	dl_result_free(&r);
}

Test(policy, deadline_command_exit_codes)
{
	const char *notexec = pol_file("notexec", "#!/bin/sh\n");
	const struct {
		const char *what;
		const char *args[6];
		int code;
		const char *msg;	/* substring of stderr */
	} cases[] = {
		{ "bad duration", { "--request", "5x", "--", "true" }, 125,
		  "invalid duration for --request: '5x'" },
		{ "missing command", { "--request", "1s" }, 125,
		  "missing command" },
		{ "no arguments at all", { NULL }, 125, "missing command" },
		{ "unknown option", { "--frobnicate", "true" }, 125,
		  "unrecognized option" },
		{ "option without value", { "--idle" }, 125,
		  "requires an argument" },
		{ "command not found", { "--", "dl-no-such-command-x" }, 127,
		  "command not found" },
		{ "missing path", { "/nonexistent/dl-cmd" }, 127,
		  "command not found" },
		{ "not executable", { "--", notexec }, 126, "" },
		{ "the command's own status", { "--", "sh", "-c", "exit 7" },
		  7, "" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *argv[12];
		struct dl_result r;
		int n = 0;

		argv[n++] = dl_path("deadline");
		for (int k = 0; k < 6 && cases[i].args[k]; k++)
			argv[n++] = cases[i].args[k];
		argv[n] = NULL;
		dl_run(&r, argv, NULL, dl_asan_run(), 5000);
		dl_assert_run(&r, r.exited && r.code == cases[i].code,
			      "%s: deadline should exit %d", cases[i].what,
			      cases[i].code);
		dl_assert_run(&r, strstr(r.err, cases[i].msg) != NULL,
			      "%s: stderr should say '%s'", cases[i].what,
			      cases[i].msg);
		dl_result_free(&r);
	}

	/* A bad --config refuses to start the command. */
	const char *bad = pol_file(bad_confs[2].name, bad_confs[2].text);
	struct dl_result r;

	dl_deadline(&r, NULL, 5000, "--config", bad, "--", "sh", "-c",
		     "echo ran", NULL);
	dl_assert_run(&r, r.exited && r.code == 125 && !strstr(r.out, "ran"),
		      "deadline --config BAD should exit 125 without running "
		      "the command");
	dl_assert_run(&r, strstr(r.err, "bad duration '5x'") != NULL,
		      "the file's error should be printed");
	dl_result_free(&r);
}

/* ================================================================== */
/* 6. Observability: DEADLINE_LOG, DEADLINE_LOG_FORMAT, DEADLINE_STATS */
/* ================================================================== */

/* One dlclient run whose request deadline (300 ms) fires, with env. */
static void one_expiry(struct dl_result *r, struct dl_server *s,
		       const char *const *env)
{
	char name[32] = "";
	long ms;

	dl_client(r, 1, 6000, env, "rw", LO, s->port_s, "--send", "hi",
		   "--recv", "10", "--expect", "ETIMEDOUT", NULL);
	ms = pol_err(r, name, sizeof(name));
	dl_assert_run(r, ms >= 0 && !strcmp(name, "ETIMEDOUT") &&
		      pol_on_time(ms, 300),
		      "the 300 ms deadline should fire within [300,%ld]",
		      300 + pol_slack());
	dl_assert_run(r, !dl_sanitizer_report(r), "sanitizer report");
}

Test(policy, log_to_file_and_off)
{
	struct dl_server *s;
	struct dl_result r;
	const char *log;
	char *text;

	dl_require_shim();
	s = dl_stallsrv("silent", NULL);
	log = dl_str("%s/deadline.log", dl_tmpdir());

	one_expiry(&r, s, DL_V("DEADLINE_REQUEST_TIMEOUT=300ms",
			       dl_str("DEADLINE_LOG=%s", log)));
	dl_assert_run(&r, !strstr(r.err, "libdeadline"),
		      "with DEADLINE_LOG=FILE nothing goes to stderr");
	text = pol_slurp(log);
	dl_assert_run(&r, !strncmp(text, "libdeadline: time=", 18),
		      "the log file should hold the event line:\n%s", text);
	pol_deadline_line(&r, text, "env", "request", 300);
	dl_assert_run(&r, dl_count_lines(text, "") == 1,
		      "the log file should hold exactly one line:\n%s", text);
	free(text);
	dl_result_free(&r);

	one_expiry(&r, s, DL_V("DEADLINE_REQUEST_TIMEOUT=300ms",
			       "DEADLINE_LOG=off"));
	dl_assert_run(&r, !*r.err, "DEADLINE_LOG=off: stderr should be empty");
	dl_result_free(&r);
}

/* Checks every line of a file with json.loads and prints the fields. */
static const char py_json_check[] =
	"import json, sys\n"
	"need = {'time': str, 'pid': int, 'event': str, 'host': str,\n"
	"        'addr': str, 'port': int, 'rule': str, 'phase': str,\n"
	"        'limit_ms': int, 'elapsed_ms': int}\n"
	"n = 0\n"
	"for line in open(sys.argv[1]):\n"
	"    if not line.strip():\n"
	"        continue\n"
	"    o = json.loads(line)\n"
	"    n += 1\n"
	"    bad = [k for k, t in need.items() if not isinstance(o.get(k), t)]\n"
	"    print('JSON ' + ' '.join('%s=%s' % (k, o.get(k)) for k in need)"
	" + ' bad=' + (','.join(bad) or 'none'))\n"
	"print('LINES %d' % n)\n";

Test(policy, log_format_json)
{
	struct dl_server *s;
	struct dl_result r, j;
	const char *conf, *errf;

	dl_require_shim();
	s = dl_stallsrv("silent", NULL);
	conf = pol_file("json.conf",
		"rules = ( { name = \"jsonrule\"; cidr = \"127.0.0.1/32\";\n"
		"            request_timeout = \"300ms\"; } );\n");
	one_expiry(&r, s, DL_V(dl_str("DEADLINE_CONFIG=%s", conf),
			       "DEADLINE_LOG_FORMAT=json"));
	errf = pol_file("stderr.txt", r.err);
	pol_python(&j, 0, NULL, 8000, py_json_check, errf, NULL);
	dl_assert_run(&j, j.exited && j.code == 0,
		      "json.loads failed on the shim's stderr:\n%s", r.err);
	dl_assert_run(&j, dl_line(j.out, "LINES 1\n") != NULL,
		      "expected exactly one JSON line on stderr");
	const char *line = dl_line(j.out, "JSON ");
	char *port = dl_str(" port=%d ", s->port);
	dl_assert_run(&j, line && pol_find(line, " bad=none", NULL) == line,
		      "some fields are missing or mistyped");
	dl_assert_run(&j, pol_find(line, " event=deadline ", " host=127.0.0.1 ",
				   " addr=127.0.0.1 ", port, " rule=jsonrule ",
				   " phase=request ", " limit_ms=300 ",
				   NULL) == line,
		      "wrong field values");
	dl_assert_run(&j, pol_within(&r, dl_field(line, "elapsed_ms="), 300),
		      "elapsed_ms outside [300,%ld]", 300 + pol_slack());
	free(port);
	dl_result_free(&j);
	dl_result_free(&r);
}

/* An event loop's client: non-blocking socket, select, 50 lines of 100
 * bytes sent and echoed back: every send and recv finds room or data
 * (the shim's fast path).  Prints "MOVED <sent> <received>". */
static const char py_loop_client[] =
	"import select, socket, sys\n"
	"s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
	"s.setblocking(False)\n"
	"line = b'x' * 99 + b'\\n'\n"
	"sent = got = 0\n"
	"for i in range(50):\n"
	"    select.select([], [s], [], 5)\n"
	"    sent += s.send(line)\n"
	"    want = sent\n"
	"    while got < want:\n"
	"        select.select([s], [], [], 5)\n"
	"        got += len(s.recv(4096))\n"
	"s.close()\n"
	"print('MOVED %d %d' % (sent, got))\n";

/* Prints the byte counters of every rule of a DEADLINE_STATS file. */
static const char py_stats_bytes[] =
	"import json, sys\n"
	"for line in open(sys.argv[1]):\n"
	"    for r in json.loads(line)['rules']:\n"
	"        print('RULE %s in=%d out=%d' % (r['rule'], r['bytes_in'],"
	" r['bytes_out']))\n";

/* The counters file counts the bytes of the fast path (the calls that
 * find data or room), which checks one flag for "counters or observer
 * on" instead of each. */
Test(policy, stats_file_counts_fast_path_bytes)
{
	struct dl_server *echo;
	struct dl_result r, j;
	const char *stats, *line;

	dl_require_shim();
	echo = pol_start("echod", NULL, NULL, 0, 1);
	stats = dl_str("%s/bytes.json", dl_tmpdir());
	dl_run(&r, DL_V(pol_py(), "-c", py_loop_client, echo->port_s),
	       DL_V("DEADLINE_IDLE_TIMEOUT=5s", "DEADLINE_REQUEST_TIMEOUT=5s",
		    dl_str("DEADLINE_STATS=%s", stats)),
	       1, 10000);
	dl_assert_run(&r, r.exited && r.code == 0 &&
				  dl_line(r.out, "MOVED 5000 5000"),
		      "the client should move 5000 bytes each way");
	pol_python(&j, 0, NULL, 8000, py_stats_bytes, stats, NULL);
	line = dl_line(j.out, "RULE ");
	dl_assert_run(&j, line && dl_field(line, "in=") == 5000 &&
				  dl_field(line, "out=") == 5000,
		      "the counters should say 5000 bytes each way:\n%s",
		      pol_slurp(stats));
	dl_result_free(&j);
	dl_result_free(&r);
}

/* Prints the per-rule counters of every line of a DEADLINE_STATS file. */
static const char py_stats[] =
	"import json, sys\n"
	"n = 0\n"
	"for line in open(sys.argv[1]):\n"
	"    o = json.loads(line)\n"
	"    n += 1\n"
	"    for r in o['rules']:\n"
	"        e = r['expiries']\n"
	"        print('RULE %s conns=%d connect=%d first_byte=%d idle=%d "
	"request=%d pid=%d' % (r['rule'], r['connections'], e['connect'],"
	" e['first_byte'], e['idle'], e['request'], o['pid']))\n"
	"print('LINES %d' % n)\n";

Test(policy, stats_file)
{
	struct dl_server *s;
	struct dl_result r, j;
	const char *conf, *stats, *line;

	dl_require_shim();
	s = dl_stallsrv("silent", NULL);
	conf = pol_file("stats.conf",
		"rules = (\n"
		"  { name = \"unused\"; cidr = \"127.0.0.2\";\n"
		"    request_timeout = \"5s\"; },\n"
		"  { name = \"stat\"; cidr = \"127.0.0.1/32\";\n"
		"    request_timeout = \"300ms\"; }\n"
		");\n");
	stats = dl_str("%s/stats.json", dl_tmpdir());
	one_expiry(&r, s, DL_V(dl_str("DEADLINE_CONFIG=%s", conf),
			       dl_str("DEADLINE_STATS=%s", stats)));
	pol_python(&j, 0, NULL, 8000, py_stats, stats, NULL);
	dl_assert_run(&j, j.exited && j.code == 0,
		      "the stats file does not parse:\n%s", pol_slurp(stats));
	dl_assert_run(&j, dl_line(j.out, "LINES 1\n") != NULL,
		      "expected one JSON line (one process)");
	line = dl_line(j.out, "RULE stat ");
	dl_assert_run(&j, line && dl_field(line, "conns=") >= 1 &&
		      dl_field(line, "request=") == 1 &&
		      dl_field(line, "connect=") == 0 &&
		      dl_field(line, "first_byte=") == 0 &&
		      dl_field(line, "idle=") == 0,
		      "rule stat should count the connection and one request "
		      "expiry");
	line = dl_line(j.out, "RULE unused ");
	dl_assert_run(&j, line && dl_field(line, "conns=") == 0 &&
		      dl_field(line, "request=") == 0,
		      "rule unused should count nothing");
	dl_result_free(&j);
	dl_result_free(&r);
}
