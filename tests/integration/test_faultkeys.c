/* test_faultkeys.c - fault groups of different rules draw independently.
 *
 * Issue 14: a DEADLINE_FAULTS spec and a file rule from the 1000th on
 * used to be keyed alike (spec i and file rule 1000 + i were both
 * "1000 + i"), so that their groups drew identical numbers and shared one
 * connection counter: two p=0.5 latency groups meant to be independent
 * delayed about 50 % of the connections instead of 75 %, and the spec's
 * group never logged a fault of its own (the first group that fires
 * wins, and the file's came first).
 *
 * Each test runs build/helpers/faultcli (200 blocking connections, one
 * after the other, each closed at once) under the shim against a
 * build/helpers/faultsrv echo server on 127.0.0.1, with a configuration
 * file of 1,000 or 1,001 rules whose last one holds a p=0.5 connect
 * latency group for 127.0.0.1, and DEADLINE_FAULTS holding another.  With
 * a fixed DEADLINE_SEED the decisions are fixed; the checks count log
 * lines (one per delayed connect) and allow wide margins, and the only
 * timing checked is that a delayed connect did take its delay.
 */
#include "harness.h"

TestSuite(faultkeys, .init = dl_setup, .fini = dl_teardown, .timeout = 40);

#define NCONNS 200
#define DELAY_MS 3

/* nrules rules: all but the last match only port 1 (never the server's),
 * the last ("last") matches 127.0.0.1 and delays half of the connects.
 * Returns the file's path. */
static const char *many_rules_conf(int nrules)
{
	size_t cap = (size_t)nrules * 24 + 512, o = 0;
	char *t = malloc(cap);
	const char *path;

	cr_assert(t, "out of memory");
	o += (size_t)snprintf(t + o, cap - o, "rules = (\n");
	for (int i = 1; i < nrules; i++)
		o += (size_t)snprintf(t + o, cap - o, "{ port = 1; },\n");
	o += (size_t)snprintf(t + o, cap - o,
			      "{ name = \"last\"; cidr = \"127.0.0.1/32\"; "
			      "faults = { latency = \"%dms\"; on = \"connect\"; "
			      "probability = 0.5; }; }\n);\n", DELAY_MS);
	cr_assert(o < cap, "config text too long");
	path = dl_write_file("many.conf", t);
	free(t);
	return path;
}

/* Injected latency events of text, of rule `rule` (NULL: any). */
static int latency_events(const char *text, const char *rule)
{
	char want[96];
	int n = 0;

	if (rule)
		dl_fmt(want, sizeof(want), "rule=%s", rule);
	for (const char *p = text; p && *p;
	     p = strchr(p, '\n'), p = p ? p + 1 : p)
		if (!strncmp(p, "libdeadline: ", 13) &&
		    dl_has_tok(p, "event=fault") && dl_has_tok(p, "injected=true") &&
		    dl_has_tok(p, "fault=latency") &&
		    (!rule || dl_has_tok(p, want)))
			n++;
	return n;
}

/* Connections of faultcli's output ("C <i> connect=0 xchg=- us=<t>")
 * that connected, and those that took at least min_us to. */
static void connects(const char *out, int *ok, int *slow, long min_us)
{
	*ok = *slow = 0;
	for (const char *p = out; (p = dl_line(p, "C ")); p++) {
		if (!dl_has_tok(p, "connect=0"))
			continue;
		(*ok)++;
		if (dl_field(p, " us=") >= min_us)
			(*slow)++;
	}
}

/* nrules rules in the file, the last one's group p=0.5; specs in
 * DEADLINE_FAULTS, the last one's group p=0.5 for 127.0.0.1 (named
 * spec_name in the log). */
static void independent(int nrules, const char *specs, const char *spec_name)
{
	struct dl_result r;
	struct dl_server *s;
	const char *conf;
	char env_conf[PATH_MAX + 32], env_faults[2100], n_s[16];
	int file_n, spec_n, all, ok, slow;

	dl_require_shim();
	conf = many_rules_conf(nrules);
	dl_fmt(env_conf, sizeof(env_conf), "DEADLINE_CONFIG=%s", conf);
	dl_fmt(env_faults, sizeof(env_faults), "DEADLINE_FAULTS=%s", specs);
	dl_fmt(n_s, sizeof(n_s), "%d", NCONNS);
	s = dl_server_startv("faultsrv", DL_V("echo", "--lifetime", "60"));
	dl_run(&r, DL_V(dl_helper("faultcli"), "multi", "--loop", "block",
			"--port", s->port_s, "--conns", n_s),
	       DL_V(env_conf, env_faults, "DEADLINE_SEED=1234"), 1, 20000);
	dl_assert_ok(&r, "faultcli multi");
	dl_assert_run(&r, strstr(r.err, "event=faults") != NULL &&
			  !strstr(r.err, "internal error"),
		      "expected the faults start line and no key collision");
	connects(r.out, &ok, &slow, DELAY_MS * 1000L);
	dl_assert_run(&r, ok == NCONNS, "%d of %d connections made", ok,
		      NCONNS);

	/* One event per delayed connect: the first group that fires wins. */
	all = latency_events(r.err, NULL);
	file_n = latency_events(r.err, "last");
	spec_n = latency_events(r.err, spec_name);
	dl_assert_run(&r, file_n + spec_n == all,
		      "%d latency events, %d of rule last and %d of %s", all,
		      file_n, spec_n, spec_name);
	/* Independent: P(any) = 75 %, the file's group 50 %, the spec's
	 * first on 25 %.  Shared draws gave 50 %, 50 % and 0. */
	dl_assert_run(&r, all >= NCONNS * 65 / 100 && all <= NCONNS * 85 / 100,
		      "%d of %d connections delayed, expected about 75 %% "
		      "(50 %% means the two groups share their draws)", all,
		      NCONNS);
	dl_assert_run(&r, file_n >= NCONNS * 38 / 100 &&
			  file_n <= NCONNS * 62 / 100,
		      "rule last delayed %d of %d connections, expected "
		      "about half", file_n, NCONNS);
	dl_assert_run(&r, spec_n >= NCONNS * 15 / 100 &&
			  spec_n <= NCONNS * 35 / 100,
		      "%s was the first to delay %d of %d connections, "
		      "expected about a quarter", spec_name, spec_n, NCONNS);
	/* Each logged delay was real (a lower bound only: a busy machine
	 * may make an undelayed connect slow too). */
	dl_assert_run(&r, slow >= all,
		      "%d latency events but only %d connects took %d ms",
		      all, slow, DELAY_MS);
	dl_result_free(&r);
}

/* The 1,000th rule (index 1000) and the first spec: both keyed 1000
 * before the fix. */
Test(faultkeys, rule_1000_and_first_spec)
{
	independent(1000,
		    "cidr=127.0.0.1/32 latency=3ms on=connect p=0.5",
		    "fault#1");
}

/* The 1,001st rule (index 1001) and the second spec (the first matches
 * nothing here): both keyed 1001 before the fix. */
Test(faultkeys, rule_1001_and_second_spec)
{
	independent(1001,
		    "host=nothing.invalid latency=1ms; "
		    "cidr=127.0.0.1/32 latency=3ms on=connect p=0.5",
		    "fault#2");
}

/* The largest file (1,024 rules) and specs up to the 25th, the last
 * spec for 127.0.0.1 and named: rule 1024 and spec 25 were both 1024. */
Test(faultkeys, rule_1024_and_25th_spec)
{
	char specs[2048];
	size_t o = 0;

	for (int i = 1; i < 25; i++)
		o += (size_t)snprintf(specs + o, sizeof(specs) - o,
				      "host=n%d.invalid latency=1ms; ", i);
	dl_fmt(specs + o, sizeof(specs) - o,
	       "name=late cidr=127.0.0.1/32 latency=3ms on=connect p=0.5");
	independent(1024, specs, "late");
}
