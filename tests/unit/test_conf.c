/* test_conf.c - configuration loading, errors and matching (shim/conf_*.c).
 *
 * Bad-config fixtures live in tests/fixtures/conf/, each starting with
 * "# expect: LINE: message" comments; shipped configs in config/.  Paths
 * are found from the current directory or from the test binary's location
 * (build/tests/unit or build/asan/tests/unit), so the binary can run from
 * anywhere inside the tree.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"

/* libconfig 1.5 leaks a scanner buffer on some syntax errors (a string
 * token the parser never consumed).  It is not ours to fix. */
__attribute__((used)) const char *__lsan_default_suppressions(void);
__attribute__((used)) const char *__lsan_default_suppressions(void)
{
	return "leak:libconfig.so\n";
}

__attribute__((used)) const char *__lsan_default_options(void);
__attribute__((used)) const char *__lsan_default_options(void)
{
	return "print_suppressions=0";
}

/* ------------------------------------------------------------ helpers */

/* Repository root: the nearest directory, from cwd or from the binary's
 * own directory upwards, that has tests/fixtures/conf. */
static const char *repo_root(void)
{
	static char root[PATH_MAX];
	char dir[PATH_MAX], probe[PATH_MAX + 32];
	ssize_t n;

	if (root[0])
		return root;
	if (access("tests/fixtures/conf", R_OK) == 0) {
		snprintf(root, sizeof(root), ".");
		return root;
	}
	n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
	cr_assert_gt(n, 0);
	dir[n] = '\0';
	for (int up = 0; up < 6; up++) {
		char *slash = strrchr(dir, '/');
		if (!slash)
			break;
		*slash = '\0';
		snprintf(probe, sizeof(probe), "%s/tests/fixtures/conf", dir);
		if (access(probe, R_OK) == 0) {
			snprintf(root, sizeof(root), "%s", dir);
			return root;
		}
	}
	cr_assert_fail("cannot find tests/fixtures/conf");
	return NULL;
}

static char *path_of(const char *rel)
{
	static char buf[PATH_MAX + 64];

	snprintf(buf, sizeof(buf), "%s/%s", repo_root(), rel);
	return buf;
}

/* Loads text and expects success. */
static void load_ok(struct conf *c, const char *text)
{
	conf_init(c);
	int rc = conf_load_mem(c, text, strlen(text), "t.conf");
	for (size_t i = 0; i < c->nerrors; i++)
		cr_log_error("%s", c->errors[i]);
	cr_assert_eq(rc, 0, "config should load");
	cr_assert_eq(c->nerrors, 0);
}

/* Loads text, expects failure with exactly the given messages (each
 * "LINE: message", NULL-terminated), and an empty conf afterwards. */
static void load_bad(const char *text, const char *const *want)
{
	struct conf c;
	size_t nwant = 0;

	while (want[nwant])
		nwant++;
	conf_init(&c);
	cr_expect_eq(conf_load_mem(&c, text, strlen(text), "t.conf"), -1);
	for (size_t i = 0; i < c.nerrors; i++) {
		char full[1024];
		if (i < nwant) {
			snprintf(full, sizeof(full), "t.conf:%s", want[i]);
			cr_expect_str_eq(c.errors[i], full);
		} else {
			cr_expect_fail("unexpected error: %s", c.errors[i]);
		}
	}
	cr_expect_eq(c.nerrors, nwant);
	cr_expect_eq(c.nrules, 0, "a failed load leaves no rules");
	cr_expect_eq(c.defaults.set, 0, "a failed load leaves no defaults");
	conf_free(&c);
}

#define BAD(text, ...)                                                      \
	do {                                                                 \
		static const char *const want_[] = { __VA_ARGS__, NULL };    \
		load_bad(text, want_);                                       \
	} while (0)

/* Reads the fixture's "# expect: " lines into want (NULL-terminated). */
static size_t fixture_expects(const char *path, char want[][512], size_t max)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	size_t n = 0;

	cr_assert_not_null(f, "cannot open %s", path);
	while (fgets(line, sizeof(line), f) && n < max) {
		if (strncmp(line, "# expect: ", 10) != 0)
			continue;
		line[strcspn(line, "\n")] = '\0';
		cr_assert_lt(strlen(line + 10), 512, "expect line too long");
		memcpy(want[n++], line + 10, strlen(line + 10) + 1);
	}
	fclose(f);
	return n;
}

/* Loads fixture `name`; checks that conf_load reports exactly the
 * fixture's own "# expect:" lines, in order, and returns how many. */
static size_t check_fixture(const char *name)
{
	char rel[256], want[16][512];
	const char *path;
	size_t nwant, plen;
	struct conf c;

	snprintf(rel, sizeof(rel), "tests/fixtures/conf/%s", name);
	path = path_of(rel);
	nwant = fixture_expects(path, want, 16);
	cr_expect_gt(nwant, 0, "%s has no '# expect:' line", name);
	conf_init(&c);
	cr_expect_eq(conf_load(&c, path), -1, "%s should fail", name);
	plen = strlen(path);
	for (size_t i = 0; i < c.nerrors && i < nwant; i++) {
		cr_expect(strncmp(c.errors[i], path, plen) == 0 &&
			  c.errors[i][plen] == ':',
			  "%s: message does not start with the file name: %s",
			  name, c.errors[i]);
		cr_expect_str_eq(c.errors[i] + plen + 1, want[i], "%s", name);
	}
	cr_expect_eq(c.nerrors, nwant, "%s: got %zu errors, want %zu", name,
		     c.nerrors, nwant);
	cr_expect_eq(c.nrules, 0);
	conf_free(&c);
	return nwant;
}

/* One test per fixture, with the expected message spelled out here as
 * well, so a change of wording shows up in this file's diff. */
#define FIXTURE(id, file, ...)                                              \
	Test(conf_fixture, id)                                               \
	{                                                                    \
		static const char *const want_[] = { __VA_ARGS__, NULL };    \
		char w[16][512];                                             \
		char rel[256];                                               \
		size_t n;                                                    \
		snprintf(rel, sizeof(rel), "tests/fixtures/conf/%s", file);  \
		n = fixture_expects(path_of(rel), w, 16);                    \
		for (size_t i = 0; want_[i]; i++) {                          \
			cr_assert_lt(i, n, "fixture has fewer expectations"); \
			cr_expect_str_eq(w[i], want_[i]);                    \
		}                                                            \
		check_fixture(file);                                         \
	}

#define DUR_HINT "(use e.g. \"250ms\", \"2s\", \"1m30s\", \"1.5s\", or " \
		 "integer milliseconds; at most 30 days)"

FIXTURE(syntax, "syntax.conf", "4: syntax error")
FIXTURE(duplicate_setting, "duplicate-setting.conf",
	"4: duplicate setting name")
FIXTURE(unknown_key_rule, "unknown-key-rule.conf",
	"5: unknown key 'conect_timeout' in rule; did you mean "
	"'connect_timeout'?")
FIXTURE(unknown_key_defaults, "unknown-key-defaults.conf",
	"3: unknown key 'idle_timout' in 'defaults'; did you mean "
	"'idle_timeout'?")
FIXTURE(unknown_key_top, "unknown-key-top.conf",
	"3: unknown key 'rule'; did you mean 'rules'?")
FIXTURE(unknown_key_nohint, "unknown-key-nohint.conf",
	"4: unknown key 'frobnicate' in rule")
FIXTURE(unknown_key_backoff, "unknown-key-backoff.conf",
	"3: unknown key 'maximum' in 'retry_backoff'; did you mean 'max'?")
FIXTURE(bad_duration, "bad-duration.conf",
	"3: bad duration '5x' for 'connect_timeout' " DUR_HINT)
FIXTURE(duration_negative, "duration-negative.conf",
	"4: 'idle_timeout' = -1 is out of range 0..2592000000 (milliseconds, "
	"at most 30 days)")
FIXTURE(duration_float, "duration-float.conf",
	"3: 'request_timeout' must be a duration string like \"2s\" or "
	"integer milliseconds, not a float (write \"1.5s\" or 1500)")
FIXTURE(duration_too_long, "duration-too-long.conf",
	"3: bad duration '31d' for 'dns_timeout' " DUR_HINT)
FIXTURE(bad_cidr_prefix, "bad-cidr-prefix.conf",
	"4: bad cidr '10.0.0.0/33': prefix length out of range 0..32 for IPv4")
FIXTURE(bad_cidr_addr, "bad-cidr-addr.conf",
	"5: bad cidr '10.0.0.256/8': not a valid IPv4 address (expected "
	"a.b.c.d)")
FIXTURE(bad_cidr_v6, "bad-cidr-v6.conf",
	"4: bad cidr 'fd00::/129': prefix length out of range 0..128 for IPv6")
FIXTURE(bad_cidr_type, "bad-cidr-type.conf",
	"4: 'cidr' must be a string or a list of strings, not an integer")
FIXTURE(bad_port, "bad-port.conf",
	"4: bad port: port 0 is out of range 1..65535")
FIXTURE(bad_port_range, "bad-port-range.conf",
	"4: bad port '9000-8000': range 9000-8000 is reversed (low > high)")
FIXTURE(bad_port_text, "bad-port-text.conf",
	"4: bad port '80-90-100': expected a port number or a range like "
	"8000-8999")
FIXTURE(bad_port_type, "bad-port-type.conf",
	"4: 'port' must be an integer or a string like \"8000-8999\", not a "
	"boolean")
FIXTURE(bad_errno, "bad-errno.conf",
	"3: unknown errno name 'ETIMEOUT'; did you mean 'ETIMEDOUT'?")
FIXTURE(bad_errno_nohint, "bad-errno-nohint.conf",
	"3: unknown errno name 'ENOMEM' (accepted: ETIMEDOUT ECONNRESET "
	"ECONNABORTED ECONNREFUSED EHOSTUNREACH ENETUNREACH ENETDOWN "
	"ENETRESET EHOSTDOWN EPIPE EIO EAGAIN)")
FIXTURE(bad_errno_type, "bad-errno-type.conf",
	"3: 'errno' must be a string, not an integer")
FIXTURE(bad_teardown, "bad-teardown.conf",
	"3: bad teardown 'fin': expected \"reset\" or \"close\"")
FIXTURE(bad_direction, "bad-direction.conf",
	"4: bad direction 'both': expected \"outbound\", \"inbound\" or "
	"\"any\"")
FIXTURE(bad_host, "bad-host.conf",
	"4: bad host pattern '[a-z.example.com': unterminated '[' in host "
	"pattern")
FIXTURE(bad_host_char, "bad-host-char.conf",
	"4: bad host pattern 'api example.com': character ' ' cannot appear "
	"in a host name")
FIXTURE(bad_name, "bad-name.conf",
	"4: rule name 'my rule' may only contain printable characters "
	"without spaces or quotes")
FIXTURE(duplicate_name, "duplicate-name.conf",
	"7: duplicate rule name 'api' (also rule 1 at line 3)")
FIXTURE(retries_range, "retries-range.conf",
	"3: 'connect_retries' = 101 is out of range 0..100")
FIXTURE(backoff_order, "backoff-order.conf",
	"3: 'retry_backoff' base (10000 ms) is greater than max (5000 ms)")
FIXTURE(defaults_type, "defaults-type.conf",
	"2: 'defaults' must be a group { ... }, not a list")
FIXTURE(rules_type, "rules-type.conf",
	"2: 'rules' must be a list ( { ... }, { ... } ), not a group")
FIXTURE(rule_not_group, "rule-not-group.conf",
	"4: rule 2 must be a group { ... }, not a string")
FIXTURE(match_key_in_defaults, "match-key-in-defaults.conf",
	"3: 'host' is a match key: it belongs in a rule, not in 'defaults'")
FIXTURE(top_level_value, "top-level-value.conf",
	"2: 'connect_timeout' is not a top-level key: put it in 'defaults' "
	"or in a rule")
FIXTURE(seed_type, "seed-type.conf",
	"2: 'seed' must be an integer, not a string")
FIXTURE(faults_type, "faults-type.conf",
	"3: 'faults' must be a group { ... } or a list of groups "
	"( { ... }, { ... } ), not a string")
FIXTURE(include, "include.conf",
	"3: @include is not supported: keep the configuration in one file")
FIXTURE(trailing_comma, "trailing-comma.conf",
	"6: syntax error (a comma before ')' or ']' is not allowed)")
FIXTURE(multi_error, "multi-error.conf",
	"5: bad duration 'soon' for 'connect_timeout' " DUR_HINT,
	"6: unknown errno name 'ETIMEDOUTT'; did you mean 'ETIMEDOUT'?",
	"11: bad cidr '300.1.1.1': not a valid IPv4 address (expected "
	"a.b.c.d)")

/* Every fixture in the directory is exercised, even one added without a
 * FIXTURE() line above. */
Test(conf_fixture, every_file_matches_its_expect_comments)
{
	DIR *d = opendir(path_of("tests/fixtures/conf"));
	struct dirent *e;
	int files = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		if (n < 6 || strcmp(e->d_name + n - 5, ".conf") != 0)
			continue;
		check_fixture(e->d_name);
		files++;
	}
	closedir(d);
	cr_expect_geq(files, 40);
}

/* ----------------------------------------------------- files on disk */

Test(conf_file, missing_file)
{
	struct conf c;

	conf_init(&c);
	cr_expect_eq(conf_load(&c, "/nonexistent/dir/x.conf"), -1);
	cr_assert_eq(c.nerrors, 1);
	cr_expect_str_eq(c.errors[0], "/nonexistent/dir/x.conf: cannot read: "
			 "No such file or directory");
	conf_free(&c);
}

Test(conf_file, directory_is_not_a_file)
{
	struct conf c;
	char want[2 * PATH_MAX + 128];
	const char *p = path_of("tests/fixtures/conf");

	conf_init(&c);
	cr_expect_eq(conf_load(&c, p), -1);
	cr_assert_eq(c.nerrors, 1);
	snprintf(want, sizeof(want), "%s: cannot read: not a regular file", p);
	cr_expect_str_eq(c.errors[0], want);
	conf_free(&c);
}

Test(conf_file, unreadable_file)
{
	char path[] = "/tmp/dl-unreadable-XXXXXX";
	int fd = mkstemp(path);
	struct conf c;

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "seed = 1;\n", 10), 10);
	close(fd);
	chmod(path, 0);
	conf_init(&c);
	if (access(path, R_OK) == 0) {
		/* root reads anything: nothing to test here. */
		unlink(path);
		conf_free(&c);
		return;
	}
	cr_expect_eq(conf_load(&c, path), -1);
	cr_assert_eq(c.nerrors, 1);
	cr_expect(strstr(c.errors[0], ": cannot read: Permission denied"));
	unlink(path);
	conf_free(&c);
}

static void shipped_loads(const char *rel, size_t min_rules)
{
	struct conf c;

	conf_init(&c);
	int rc = conf_load(&c, path_of(rel));
	for (size_t i = 0; i < c.nerrors; i++)
		cr_log_error("%s", c.errors[i]);
	cr_expect_eq(rc, 0, "%s must load without errors", rel);
	cr_expect_eq(c.nerrors, 0);
	cr_expect_geq(c.nrules, min_rules);
	conf_free(&c);
}

Test(conf_file, shipped_configs_load)
{
	shipped_loads("config/reference.conf", 3);
	shipped_loads("config/curl-client.conf", 3);
	shipped_loads("config/legacy-daemon.conf", 3);
}

Test(conf_file, every_config_in_config_dir_loads)
{
	DIR *d = opendir(path_of("config"));
	struct dirent *e;
	char rel[512];

	cr_assert_not_null(d);
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		if (n < 6 || strcmp(e->d_name + n - 5, ".conf") != 0)
			continue;
		snprintf(rel, sizeof(rel), "config/%s", e->d_name);
		shipped_loads(rel, 0);
	}
	closedir(d);
}

Test(conf_file, reference_uses_every_key)
{
	static const char *const keys[] = {
		"seed", "defaults", "rules", "name", "host", "cidr", "port",
		"direction", "connect_timeout", "first_byte_timeout",
		"idle_timeout", "request_timeout", "errno", "teardown",
		"dns_timeout", "connect_retries", "retry_backoff", "base",
		"max", "faults", "latency", "jitter", "on", "bandwidth",
		"refuse", "unreachable", "blackhole", "then", "then_after",
		"reset", "eof", "error", "slice", "spurious", "slow_close",
		"dns", "delay", "direction", "probability", "nth",
		"after_bytes", "after", "for", "times", NULL,
	};
	struct conf c;
	const struct conf_rule *r;

	conf_init(&c);
	cr_assert_eq(conf_load(&c, path_of("config/reference.conf")), 0);
	cr_expect(c.has_seed);
	r = &c.rules[0];
	cr_expect_eq(r->v.set, 0x7ff, "first rule sets every per-rule key");
	cr_expect(r->host && r->ncidrs && r->has_ports);
	cr_expect_eq(r->direction, CONF_DIR_OUTBOUND);
	cr_expect_neq(c.defaults.set, 0);
	conf_free(&c);

	/* And the file mentions each key as a setting. */
	FILE *f = fopen(path_of("config/reference.conf"), "r");
	char *text = calloc(1, 65536);
	cr_assert(f && text);
	size_t len = fread(text, 1, 65535, f);
	fclose(f);
	text[len] = '\0';
	for (int i = 0; keys[i]; i++) {
		char pat[64];
		snprintf(pat, sizeof(pat), "%s ", keys[i]);
		cr_expect(strstr(text, pat), "reference.conf lacks '%s'",
			  keys[i]);
	}
	free(text);
}

/* ----------------------------------------------- in-memory error cases */

Test(conf_errors, empty_and_minimal_configs_load)
{
	struct conf c;

	load_ok(&c, "");
	cr_expect_eq(c.nrules, 0);
	conf_free(&c);
	load_ok(&c, "# only a comment\n");
	conf_free(&c);
	load_ok(&c, "rules = ();\ndefaults = {};\n");
	conf_free(&c);
	load_ok(&c, "rules = [];\n");
	conf_free(&c);
}

Test(conf_errors, duration_forms)
{
	struct conf c;

	load_ok(&c, "defaults = { connect_timeout = \"250ms\"; "
		    "first_byte_timeout = \"1m30s\"; idle_timeout = 1500; "
		    "request_timeout = 0; dns_timeout = 5L; };");
	cr_expect_eq(c.defaults.limits.ms[DL_PH_CONNECT], 250);
	cr_expect_eq(c.defaults.limits.ms[DL_PH_FIRST_BYTE], 90000);
	cr_expect_eq(c.defaults.limits.ms[DL_PH_IDLE], 1500);
	cr_expect_eq(c.defaults.limits.ms[DL_PH_REQUEST], 0);
	cr_expect(c.defaults.set & CONF_SET_LIMIT(DL_PH_REQUEST),
		  "an explicit 0 is 'set' (it overrides a lower level)");
	cr_expect_eq(c.defaults.dns_timeout_ms, 5);
	conf_free(&c);

	/* libconfig 1.5 wants the L suffix above 2^31 - 1. */
	BAD("defaults = { idle_timeout = 3000000000L; };",
	    "1: 'idle_timeout' = 3000000000 is out of range 0..2592000000 "
	    "(milliseconds, at most 30 days)");
	BAD("defaults = { idle_timeout = -5; };",
	    "1: 'idle_timeout' = -5 is out of range 0..2592000000 "
	    "(milliseconds, at most 30 days)");
	BAD("defaults = { idle_timeout = \"\"; };",
	    "1: bad duration '' for 'idle_timeout' " DUR_HINT);
	BAD("defaults = { idle_timeout = true; };",
	    "1: 'idle_timeout' must be a duration string like \"2s\" or "
	    "integer milliseconds, not a boolean");
	BAD("defaults = { idle_timeout = (1); };",
	    "1: 'idle_timeout' must be a duration string like \"2s\" or "
	    "integer milliseconds, not a list");
}

Test(conf_errors, syntax_hints)
{
	BAD("rules = ( { port = 1; }, );",
	    "1: syntax error (a comma before ')' or ']' is not allowed)");
	BAD("rules = ( { cidr = [ \"10.0.0.0/8\", ]; } );",
	    "1: syntax error (a comma before ')' or ']' is not allowed)");
	BAD("rules = ( { port = 1; }\n  { port = 2; } );",
	    "2: syntax error");
	BAD("seed = ;", "1: syntax error");
}

/* libconfig says only "syntax error" at a number followed by a unit: the
 * message says what to write instead. */
Test(conf_errors, unquoted_duration_hints)
{
	BAD("defaults = { connect_timeout = 2s; };",
	    "1: syntax error (durations are strings: connect_timeout = "
	    "\"2s\";)");
	BAD("rules = (\n  { name = \"a\"; request_timeout = 1m30s; }\n);",
	    "2: syntax error (durations are strings: request_timeout = "
	    "\"1m30s\";)");
	/* No ';' before the '}': libconfig stumbles on the next line; the
	 * message names the line with the value. */
	BAD("defaults = {\n  idle_timeout = 1.5s\n};",
	    "2: syntax error (durations are strings: idle_timeout = "
	    "\"1.5s\";)");
	BAD("defaults = { faults = { latency = 250ms; }; };",
	    "1: syntax error (durations are strings: latency = \"250ms\";)");
	BAD("defaults = { retry_backoff = { base = 100ms; }; };",
	    "1: syntax error (durations are strings: base = \"100ms\";)");
	/* A duration key with a bad unit still gets the hint; the quoted
	 * value is then checked as any other. */
	BAD("defaults = { dns_timeout = 2x; };",
	    "1: syntax error (durations are strings: dns_timeout = \"2x\";)");
	BAD("defaults = { faults = { bandwidth = 100KB; }; };",
	    "1: syntax error (rates are strings: bandwidth = \"100KB\";)");
	/* What is in a string or a comment is not looked at. */
	BAD("defaults = { request_timeout = \"2s\"; x y; }; # t = 5s",
	    "1: syntax error");
	BAD("defaults = { request_timeout = \"t = 5s\" x; };",
	    "1: syntax error");
	/* Not a duration, not a duration key: no guess. */
	BAD("defaults = { connect_retries = 3x; };", "1: syntax error");
	/* The quoted forms load. */
	struct conf c;
	load_ok(&c, "defaults = { connect_timeout = \"2s\"; faults = { "
		    "bandwidth = \"100KB\"; }; };");
	cr_expect_eq(c.defaults.limits.ms[DL_PH_CONNECT], 2000);
	conf_free(&c);
}

/* A fault spec (DEADLINE_FAULTS, deadline --fault) with blanks around an
 * '=': said so, with the spelling to use, instead of a garbled key. */
Test(conf_errors, fault_spec_spaces_around_equals)
{
	static const struct {
		const char *spec, *msg;
	} cases[] = {
		{ "latency = 100ms", "fault spec 1: spaces are not allowed "
		  "around '=' (write latency=100ms)" },
		{ "host=a latency =100ms", "fault spec 1: spaces are not "
		  "allowed around '=' (write latency=100ms)" },
		{ "latency=1s; host=b latency= 100ms p=0.5", "fault spec 2: "
		  "spaces are not allowed around '=' (write latency=100ms)" },
		{ "reset; refuse =", "fault spec 2: spaces are not allowed "
		  "around '=' (write key=value, e.g. latency=100ms)" },
		{ "= 5", "fault spec 1: spaces are not allowed around '=' "
		  "(write key=value, e.g. latency=100ms)" },
		{ "latency\t=\t1s", "fault spec 1: spaces are not allowed "
		  "around '=' (write latency=1s)" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *err = NULL;
		char *t = fault_specs_to_conf(cases[i].spec, &err);

		cr_expect_null(t, "'%s' was translated: %s", cases[i].spec, t);
		free(t);
		cr_expect_str_eq(err ? err : "(none)", cases[i].msg, "for '%s'",
				 cases[i].spec);
	}
	/* A user's text in the message is escaped and bounded. */
	{
		const char *err = NULL;
		char *t = fault_specs_to_conf("k\x01 = v\xff", &err);

		cr_expect_null(t);
		free(t);
		cr_expect_str_eq(err ? err : "(none)", "fault spec 1: spaces "
				 "are not allowed around '=' (write "
				 "k\\x01=v\\xff)");
	}
	/* Without blanks, and an empty value before a key=value pair (an
	 * error of its own, reported by the loader), nothing is said here. */
	{
		const char *err = NULL;
		char *t = fault_specs_to_conf("host=a latency=100ms; name= "
					      "reset=true", &err);
		struct conf c;

		cr_assert_not_null(t, "%s", err);
		conf_init(&c);
		cr_expect_eq(conf_load_mem(&c, t, strlen(t), "--fault"), -1);
		cr_expect(c.nerrors >= 1 && strncmp(c.errors[0], "--fault:2: ",
						    11) == 0,
			  "%s", c.nerrors ? c.errors[0] : "(no error)");
		conf_free(&c);
		free(t);
	}
}

Test(conf_errors, wrong_types)
{
	BAD("rules = ( { host = 5; } );",
	    "1: 'host' must be a string, not an integer");
	BAD("rules = ( { name = 1; } );",
	    "1: 'name' must be a string, not an integer");
	BAD("rules = ( { direction = true; } );",
	    "1: 'direction' must be a string, not a boolean");
	BAD("defaults = { teardown = {}; };",
	    "1: 'teardown' must be a string, not a group");
	BAD("defaults = { connect_retries = \"3\"; };",
	    "1: 'connect_retries' must be an integer 0..100, not a string");
	BAD("defaults = { retry_backoff = \"1s\"; };",
	    "1: 'retry_backoff' must be a group { base = \"100ms\"; max = "
	    "\"5s\"; }, not a string");
	BAD("rules = ( { cidr = ( \"10.0.0.0/8\", 7 ); } );",
	    "1: 'cidr' entries must be strings like \"10.0.0.0/8\", not an "
	    "integer");
	BAD("rules = ( { cidr = (); } );", "1: 'cidr' list is empty");
	BAD("rules = 5;", "1: 'rules' must be a list ( { ... }, { ... } ), "
	    "not an integer");
	BAD("rules = [1, 2];", "1: 'rules' must be a list ( { ... }, "
	    "{ ... } ), not an array");
}

Test(conf_errors, names)
{
	BAD("rules = ( { name = \"\"; } );", "1: rule name is empty");
	BAD("rules = ( { name = "
	    "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\";"
	    " } );",
	    "1: rule name 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' "
	    "is longer than 63 bytes");
	BAD("rules = ( { name = \"a\\\"b\"; } );",
	    "1: rule name 'a\"b' may only contain printable characters "
	    "without spaces or quotes");
	/* An explicit name may not collide with another rule's default. */
	BAD("rules = ( { port = 1; },\n { name = \"rule#1\"; } );",
	    "2: duplicate rule name 'rule#1' (also rule 1 at line 1)");
}

Test(conf_errors, hostile_strings_are_escaped_in_messages)
{
	BAD("defaults = { errno = \"E\\x01\\x1b[31m\"; };",
	    "1: unknown errno name 'E\\x01\\x1b[31m' (accepted: ETIMEDOUT "
	    "ECONNRESET ECONNABORTED ECONNREFUSED EHOSTUNREACH ENETUNREACH "
	    "ENETDOWN ENETRESET EHOSTDOWN EPIPE EIO EAGAIN)");
	BAD("defaults = { teardown = \"\\n\"; };",
	    "1: bad teardown '\\x0a': expected \"reset\" or \"close\"");
}

Test(conf_errors, nul_byte_and_size_limits)
{
	struct conf c;
	static const char text[] = "seed = 1;\nseed2\0 = 2;\n";
	char *big;

	conf_init(&c);
	cr_expect_eq(conf_load_mem(&c, text, sizeof(text) - 1, "n.conf"), -1);
	cr_assert_eq(c.nerrors, 1);
	cr_expect_str_eq(c.errors[0], "n.conf:2: NUL byte in configuration "
			 "text");
	conf_free(&c);

	big = malloc(CONF_MAX_FILE_BYTES + 1);
	cr_assert_not_null(big);
	memset(big, '\n', CONF_MAX_FILE_BYTES + 1);
	conf_init(&c);
	cr_expect_eq(conf_load_mem(&c, big, CONF_MAX_FILE_BYTES + 1, "b.conf"),
		     -1);
	cr_assert_eq(c.nerrors, 1);
	cr_expect_str_eq(c.errors[0], "b.conf: larger than 1048576 bytes");
	conf_free(&c);

	conf_init(&c);
	cr_expect_eq(conf_load_mem(&c, big, CONF_MAX_LINES + 1, "l.conf"), -1);
	cr_assert_eq(c.nerrors, 1);
	cr_expect_str_eq(c.errors[0], "l.conf: more than 65535 lines");
	conf_free(&c);

	conf_init(&c);
	cr_expect_eq(conf_load_mem(&c, big, CONF_MAX_LINES - 1, "l.conf"), 0);
	conf_free(&c);
	free(big);
}

/* Builds "rules = ( {port=1;}, ... );" with n rules. */
static char *many_rules(int n)
{
	size_t cap = (size_t)n * 16 + 32, o = 0;
	char *s = malloc(cap);

	cr_assert_not_null(s);
	o += (size_t)snprintf(s + o, cap - o, "rules = (\n");
	for (int i = 0; i < n; i++)
		o += (size_t)snprintf(s + o, cap - o, "%s{port=%d;}\n",
				      i ? "," : "", i + 1);
	snprintf(s + o, cap - o, ");\n");
	return s;
}

Test(conf_errors, rule_count_limit)
{
	struct conf c;
	char *s = many_rules(CONF_MAX_RULES);

	load_ok(&c, s);
	cr_expect_eq(c.nrules, CONF_MAX_RULES);
	cr_expect_str_eq(c.rules[CONF_MAX_RULES - 1].name, "rule#1024");
	cr_expect_eq(c.rules[CONF_MAX_RULES - 1].index, 1024);
	conf_free(&c);
	free(s);

	s = many_rules(CONF_MAX_RULES + 1);
	BAD(s, "1026: too many rules: 1025 (limit 1024)");
	free(s);
}

Test(conf_errors, cidr_count_limit)
{
	char text[8192];
	size_t o = 0;

	o += (size_t)snprintf(text, sizeof(text), "rules = ( { cidr = (");
	for (int i = 0; i <= CONF_MAX_CIDRS; i++)
		o += (size_t)snprintf(text + o, sizeof(text) - o,
				      "%s\"10.0.%d.0/24\"", i ? "," : "", i);
	snprintf(text + o, sizeof(text) - o, "); } );");
	BAD(text, "1: 'cidr' has 65 entries (limit 64)");
}

Test(conf_errors, error_list_is_bounded)
{
	struct conf c;
	char *s = malloc(200 * 40);
	size_t o = 0;

	cr_assert_not_null(s);
	o += (size_t)sprintf(s, "defaults = {\n");
	for (int i = 0; i < 200; i++)
		o += (size_t)sprintf(s + o, "bogus%d = 1;\n", i);
	sprintf(s + o, "};\n");
	conf_init(&c);
	cr_expect_eq(conf_load_mem(&c, s, strlen(s), "e.conf"), -1);
	cr_expect_eq(c.nerrors, CONF_MAX_ERRORS);
	cr_expect_eq(c.errors_dropped, 200 - CONF_MAX_ERRORS);
	cr_expect_str_eq(c.errors[0], "e.conf:2: unknown key 'bogus0' in "
			 "'defaults'");
	conf_free(&c);
	free(s);
}

Test(conf_errors, all_errors_are_collected)
{
	BAD("defaults = {\n"
	    "  connect_timeout = \"x\";\n"
	    "  teardown = \"y\";\n"
	    "};\n"
	    "rules = ( { port = 70000; direction = \"z\"; } );\n"
	    "seed = 1.5;\n",
	    "2: bad duration 'x' for 'connect_timeout' " DUR_HINT,
	    "3: bad teardown 'y': expected \"reset\" or \"close\"",
	    "5: bad port: port 70000 is out of range 1..65535",
	    "5: bad direction 'z': expected \"outbound\", \"inbound\" or "
	    "\"any\"",
	    "6: 'seed' must be an integer, not a float");
}

Test(conf_errors, suggestions)
{
	BAD("rules = ( { hots = \"a\"; } );",
	    "1: unknown key 'hots' in rule; did you mean 'host'?");
	BAD("rules = ( { idle = 5; } );",
	    "1: unknown key 'idle' in rule; did you mean 'idle_timeout'?");
	BAD("defaults = { Teardown = \"reset\"; };",
	    "1: unknown key 'Teardown' in 'defaults'; did you mean "
	    "'teardown'?");
	BAD("defaults = { errno = \"etimedout\"; };",
	    "1: unknown errno name 'etimedout'; did you mean 'ETIMEDOUT'?");
	BAD("defaults = { retry_backoff = { bse = 1; }; };",
	    "1: unknown key 'bse' in 'retry_backoff'; did you mean 'base'?");
	BAD("xyz = 1;", "1: unknown key 'xyz'");
}

Test(conf_errors, edit_distance)
{
	cr_expect_eq(conf_edit_distance("conect_timeout", "connect_timeout",
					10), 1);
	cr_expect_eq(conf_edit_distance("kitten", "sitting", 10), 3);
	cr_expect_eq(conf_edit_distance("", "abc", 10), 3);
	cr_expect_eq(conf_edit_distance("ABC", "abc", 10), 0);
	cr_expect_eq(conf_edit_distance("abcdef", "uvwxyz", 3), 3);
	cr_expect_eq(conf_edit_distance(NULL, "abc", 7), 7);
}

/* ------------------------------------------------------------ matching */

static struct sockaddr_in a4(const char *s, uint16_t port)
{
	struct sockaddr_in a;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons(port);
	cr_assert_eq(inet_pton(AF_INET, s, &a.sin_addr), 1);
	return a;
}

static struct sockaddr_in6 a6(const char *s, uint16_t port)
{
	struct sockaddr_in6 a;

	memset(&a, 0, sizeof(a));
	a.sin6_family = AF_INET6;
	a.sin6_port = htons(port);
	cr_assert_eq(inet_pton(AF_INET6, s, &a.sin6_addr), 1);
	return a;
}

/* Name of the rule that a peer gets ("defaults" if none). */
static const char *who(const struct conf *c, const char *host,
		       const struct sockaddr *sa, socklen_t len, int inbound)
{
	struct conf_peer p = { host, sa, len, NULL, 0, inbound };
	struct conf_effective e;

	conf_lookup(c, &p, &e);
	return e.rule_name;
}

#define WHO4(c, host, addr, port)                                          \
	({                                                                   \
		struct sockaddr_in a_ = a4(addr, port);                      \
		who(c, host, (struct sockaddr *)&a_, sizeof(a_), 0);         \
	})
#define WHO6(c, host, addr, port)                                          \
	({                                                                   \
		struct sockaddr_in6 a_ = a6(addr, port);                     \
		who(c, host, (struct sockaddr *)&a_, sizeof(a_), 0);         \
	})

static const char match_conf[] =
	"rules = (\n"
	"  { name = \"api\"; host = \"*.api.example.com\"; },\n"
	"  { name = \"net10\"; cidr = \"10.0.0.0/8\"; },\n"
	"  { name = \"web\"; port = \"80-89\"; },\n"
	"  { name = \"v6\"; cidr = [ \"fd00::/8\", \"2001:db8::/32\" ]; },\n"
	"  { name = \"lit\"; host = \"192.0.2.*\"; },\n"
	"  { name = \"both\"; host = \"db.example.com\"; port = 5432; },\n"
	"  { name = \"in\"; direction = \"inbound\"; port = 7070; }\n"
	");\n";

Test(conf_match, first_match_wins_in_file_order)
{
	struct conf c;

	load_ok(&c, match_conf);
	/* Fits "api", "net10" and "web": the first one listed wins. */
	cr_expect_str_eq(WHO4(&c, "x.api.example.com", "10.1.1.1", 80), "api");
	cr_expect_str_eq(WHO4(&c, "other.example.com", "10.1.1.1", 80),
			 "net10");
	cr_expect_str_eq(WHO4(&c, "other.example.com", "11.1.1.1", 80), "web");
	cr_expect_str_eq(WHO4(&c, NULL, "11.1.1.1", 443), "defaults");
	conf_free(&c);
}

Test(conf_match, host_glob_on_name_and_literal)
{
	struct conf c;

	load_ok(&c, match_conf);
	cr_expect_str_eq(WHO4(&c, "X.API.Example.COM", "11.1.1.1", 443), "api");
	cr_expect_str_eq(WHO4(&c, "x.api.example.com.", "11.1.1.1", 443),
			 "api", "the root dot is ignored");
	cr_expect_str_eq(WHO4(&c, "api.example.com", "11.1.1.1", 443),
			 "defaults");
	/* No name: the host pattern sees the address literal. */
	cr_expect_str_eq(WHO4(&c, NULL, "192.0.2.55", 443), "lit");
	cr_expect_str_eq(WHO4(&c, "", "192.0.2.55", 443), "lit");
	cr_expect_str_eq(WHO4(&c, "www.example.net", "192.0.2.55", 443),
			 "lit", "literal matches even when a name is known");
	cr_expect_str_eq(WHO6(&c, NULL, "::ffff:192.0.2.55", 443), "lit",
			 "v4-mapped peers are written as IPv4");
	cr_expect_str_eq(WHO4(&c, "db.example.com", "11.1.1.1", 5432), "both");
	cr_expect_str_eq(WHO4(&c, "db.example.com", "11.1.1.1", 5433),
			 "defaults", "all match keys must fit");
	conf_free(&c);
}

Test(conf_match, cidr_v6_and_v4_mapped)
{
	struct conf c;

	load_ok(&c, match_conf);
	cr_expect_str_eq(WHO6(&c, NULL, "::ffff:10.2.3.4", 443), "net10");
	cr_expect_str_eq(WHO6(&c, NULL, "fd01::1", 443), "v6");
	cr_expect_str_eq(WHO6(&c, NULL, "2001:db8:1::1", 443), "v6");
	cr_expect_str_eq(WHO6(&c, NULL, "2001:db9::1", 443), "defaults");
	conf_free(&c);
}

Test(conf_match, direction_and_inbound_port)
{
	struct conf c;
	struct sockaddr_in remote = a4("11.1.1.1", 50000);
	struct sockaddr_in local = a4("127.0.0.1", 7070);
	struct conf_peer p = {
		NULL, (struct sockaddr *)&remote, sizeof(remote),
		(struct sockaddr *)&local, sizeof(local), 1,
	};

	load_ok(&c, match_conf);
	cr_expect_str_eq(conf_match(&c, &p)->name, "in");
	/* Outbound to port 7070 is not the inbound rule. */
	remote = a4("11.1.1.1", 7070);
	p.inbound = 0;
	cr_expect_null(conf_match(&c, &p));
	/* Inbound without a local address cannot match on port. */
	p.inbound = 1;
	p.local = NULL;
	cr_expect_null(conf_match(&c, &p));
	conf_free(&c);

	load_ok(&c, "rules = ( { name = \"out\"; direction = \"outbound\"; },"
		    " { name = \"any\"; } );");
	p.inbound = 1;
	cr_expect_str_eq(conf_match(&c, &p)->name, "any");
	p.inbound = 0;
	cr_expect_str_eq(conf_match(&c, &p)->name, "out");
	conf_free(&c);
}

Test(conf_match, peers_without_addresses)
{
	struct conf c;
	struct conf_peer p = { "x.api.example.com", NULL, 0, NULL, 0, 0 };

	load_ok(&c, match_conf);
	cr_expect_str_eq(conf_match(&c, &p)->name, "api");
	p.host = NULL;
	cr_expect_null(conf_match(&c, &p));
	cr_expect_null(conf_match(&c, NULL));
	cr_expect_null(conf_match(NULL, &p));
	conf_free(&c);
}

Test(conf_match, errno_is_preserved)
{
	struct conf c;
	struct sockaddr_in a = a4("11.1.1.1", 443);
	struct conf_peer p = { "zzz", (struct sockaddr *)&a, 3, NULL, 0, 0 };

	load_ok(&c, match_conf);
	errno = EINTR;
	cr_expect_null(conf_match(&c, &p));
	cr_expect_eq(errno, EINTR);
	conf_free(&c);
}

/* ------------------------------------------------ effective values */

Test(conf_effective, builtins_without_config)
{
	struct conf c;
	struct conf_effective e;

	conf_init(&c);
	conf_effective(&c, NULL, &e);
	for (int ph = 0; ph < DL_PH_COUNT; ph++)
		cr_expect_eq(e.limits.ms[ph], 0);
	cr_expect_eq(e.err, ETIMEDOUT);
	cr_expect_eq(e.teardown, CONF_TEARDOWN_RESET);
	cr_expect_eq(e.connect_retries, 0);
	cr_expect_eq(e.dns_timeout_ms, 0);
	cr_expect_eq(e.backoff_base_ms, CONF_BACKOFF_BASE_MS);
	cr_expect_eq(e.backoff_max_ms, CONF_BACKOFF_MAX_MS);
	cr_expect_eq(e.nfaults, 0);
	cr_expect_str_eq(e.rule_name, "defaults");
	cr_expect_eq(e.rule_index, 0);
	conf_effective(NULL, NULL, &e);
	cr_expect_eq(e.err, ETIMEDOUT);
	conf_free(&c);
}

Test(conf_effective, rule_then_defaults_then_builtin)
{
	struct conf c;
	struct conf_effective e;

	load_ok(&c,
		"defaults = { connect_timeout = \"5s\"; idle_timeout = \"1m\";"
		"  errno = \"ECONNRESET\"; connect_retries = 2;"
		"  retry_backoff = { max = \"2s\"; }; };\n"
		"rules = (\n"
		"  { host = \"a\"; connect_timeout = \"1s\"; teardown = \"close\";"
		"    request_timeout = 0; retry_backoff = { base = \"3s\"; }; },\n"
		"  { name = \"b\"; host = \"b\"; idle_timeout = 0;"
		"    errno = \"EPIPE\"; faults = { latency = \"1s\"; }; }\n"
		");\n");

	conf_effective(&c, &c.rules[0], &e);
	cr_expect_str_eq(e.rule_name, "rule#1");
	cr_expect_eq(e.rule_index, 1);
	cr_expect_eq(e.limits.ms[DL_PH_CONNECT], 1000);	/* rule */
	cr_expect_eq(e.limits.ms[DL_PH_IDLE], 60000);	/* defaults */
	cr_expect_eq(e.limits.ms[DL_PH_FIRST_BYTE], 0);	/* built-in */
	cr_expect_eq(e.limits.ms[DL_PH_REQUEST], 0);
	cr_expect_eq(e.err, ECONNRESET);
	cr_expect_eq(e.teardown, CONF_TEARDOWN_CLOSE);
	cr_expect_eq(e.connect_retries, 2);
	cr_expect_eq(e.backoff_base_ms, 3000);
	cr_expect_eq(e.backoff_max_ms, 3000, "max raised to base");
	cr_expect_eq(e.nfaults, 0);

	conf_effective(&c, &c.rules[1], &e);
	cr_expect_str_eq(e.rule_name, "b");
	cr_expect_eq(e.rule_index, 2);
	cr_expect_eq(e.limits.ms[DL_PH_CONNECT], 5000);
	cr_expect_eq(e.limits.ms[DL_PH_IDLE], 0, "explicit 0 lifts defaults");
	cr_expect_eq(e.err, EPIPE);
	cr_expect_eq(e.teardown, CONF_TEARDOWN_RESET);
	cr_expect_eq(e.backoff_base_ms, CONF_BACKOFF_BASE_MS);
	cr_expect_eq(e.backoff_max_ms, 2000);
	cr_expect_eq(e.nfaults, 1);
	cr_expect_eq(e.faults[0].kinds, FK_BIT(FK_LATENCY));
	cr_expect_eq(e.faults[0].latency_ms, 1000);

	/* No rule: defaults, then built-ins. */
	struct conf_peer p = { "zzz", NULL, 0, NULL, 0, 0 };
	cr_expect_null(conf_lookup(&c, &p, &e));
	cr_expect_str_eq(e.rule_name, "defaults");
	cr_expect_eq(e.limits.ms[DL_PH_CONNECT], 5000);
	cr_expect_eq(e.teardown, CONF_TEARDOWN_RESET);
	conf_free(&c);
}

Test(conf_effective, env_overrides_beat_everything)
{
	struct conf c;
	struct conf_effective e;
	struct dl_limits env = { { 0 } };

	load_ok(&c, "defaults = { connect_timeout = \"5s\"; idle_timeout = 9; };"
		    "rules = ( { host = \"a\"; connect_timeout = \"1s\"; "
		    "request_timeout = \"1m\"; } );");
	env.ms[DL_PH_CONNECT] = 250;
	env.ms[DL_PH_FIRST_BYTE] = 7000;
	/* idle and request 0: unset, the file's values stay. */
	conf_apply_env_overrides(&c, &env);
	conf_apply_env_overrides(&c, NULL);

	conf_effective(&c, &c.rules[0], &e);
	cr_expect_eq(e.limits.ms[DL_PH_CONNECT], 250);
	cr_expect_eq(e.limits.ms[DL_PH_FIRST_BYTE], 7000);
	cr_expect_eq(e.limits.ms[DL_PH_IDLE], 9);
	cr_expect_eq(e.limits.ms[DL_PH_REQUEST], 60000);
	conf_effective(&c, NULL, &e);
	cr_expect_eq(e.limits.ms[DL_PH_CONNECT], 250);
	cr_expect_eq(e.limits.ms[DL_PH_FIRST_BYTE], 7000);
	cr_expect_eq(e.limits.ms[DL_PH_IDLE], 9);
	conf_free(&c);

	/* Without any file: env only. */
	conf_init(&c);
	conf_apply_env_overrides(&c, &env);
	conf_effective(&c, NULL, &e);
	cr_expect_eq(e.limits.ms[DL_PH_CONNECT], 250);
	cr_expect_eq(e.limits.ms[DL_PH_IDLE], 0);
	conf_free(&c);
}

Test(conf_effective, misc_values)
{
	struct conf c;

	load_ok(&c, "seed = 12345678901L;\n"
		    "defaults = { dns_timeout = \"2s\"; teardown = \"close\"; "
		    "errno = \"EAGAIN\"; connect_retries = 100; };\n"
		    "rules = ( { port = 443; } );\n");
	cr_expect(c.has_seed);
	cr_expect_eq(c.seed, 12345678901LL);
	cr_expect_eq(c.defaults.dns_timeout_ms, 2000);
	cr_expect_eq(c.defaults.err, EAGAIN);
	cr_expect_eq(c.defaults.connect_retries, 100);
	cr_expect_eq(c.rules[0].ports.lo, 443);
	conf_free(&c);
	conf_free(&c);	/* idempotent */
}

Test(conf_effective, errno_names_round_trip)
{
	static const char *const names[] = {
		"ETIMEDOUT", "ECONNRESET", "ECONNABORTED", "ECONNREFUSED",
		"EHOSTUNREACH", "ENETUNREACH", "ENETDOWN", "ENETRESET",
		"EHOSTDOWN", "EPIPE", "EIO", "EAGAIN", NULL,
	};

	for (int i = 0; names[i]; i++) {
		int e = conf_errno_parse(names[i]);
		cr_expect_gt(e, 0, "%s", names[i]);
		cr_expect_str_eq(conf_errno_name(e), names[i]);
	}
	cr_expect_eq(conf_errno_parse("ENOMEM"), -1);
	cr_expect_eq(conf_errno_parse(NULL), -1);
	cr_expect_null(conf_errno_name(ENOMEM));
	cr_expect_eq(conf_errno_parse("EWOULDBLOCK"), -1);
}

Test(conf_effective, describe)
{
	struct conf c;
	char buf[256];

	load_ok(&c, "rules = ( { host = \"*.x\"; cidr = [\"10.0.0.0/8\", "
		    "\"::1\"]; port = \"1-2\"; direction = \"inbound\"; },"
		    "{ connect_timeout = 1; } );");
	cr_expect_str_eq(conf_rule_describe(&c.rules[0], buf, sizeof(buf)),
			 "host=*.x cidr=10.0.0.0/8,::1/128 port=1-2 inbound");
	cr_expect_str_eq(conf_rule_describe(&c.rules[1], buf, sizeof(buf)),
			 "*");
	conf_rule_describe(&c.rules[0], buf, 8);
	cr_expect_str_eq(buf, "host=*.");
	conf_free(&c);
}

/* ------------------------------------------------------ line numbers */

Test(conf_lines, last_list_element_on_its_own_line)
{
	/* libconfig alone would say line 6, where ']' is. */
	BAD("rules = ( { cidr = [\n"
	    "    \"10.0.0.0/8\",\n"
	    "    \"10.0.0.0/40\"\n"
	    "\n"
	    "\n"
	    "]; } );\n",
	    "3: bad cidr '10.0.0.0/40': prefix length out of range 0..32 for "
	    "IPv4");
	BAD("rules = (\n"
	    "  { port = 1; },\n"
	    "  \"oops\"\n"
	    "\n"
	    ");\n",
	    "3: rule 2 must be a group { ... }, not a string");
}

Test(conf_lines, hostile_file_stays_fast)
{
	/* 1000 rules of 64 bad cidrs each, all on one 1 MiB-ish line. */
	size_t cap = CONF_MAX_FILE_BYTES, o = 0;
	char *s = malloc(cap);
	struct timespec t0, t1;
	struct conf c;
	double ms;

	cr_assert_not_null(s);
	o += (size_t)snprintf(s + o, cap - o, "rules = (");
	for (int r = 0; r < 1000 && o + 1200 < cap; r++) {
		o += (size_t)snprintf(s + o, cap - o, "%s{cidr=[", r ? "," : "");
		for (int i = 0; i < 64; i++)
			o += (size_t)snprintf(s + o, cap - o, "%s\"1.2.3.4/99\"",
					      i ? "," : "");
		o += (size_t)snprintf(s + o, cap - o, "];}");
	}
	o += (size_t)snprintf(s + o, cap - o, ");");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	conf_init(&c);
	cr_expect_eq(conf_load_mem(&c, s, o, "h.conf"), -1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_expect_eq(c.nerrors, CONF_MAX_ERRORS);
	cr_expect_gt(c.errors_dropped, 1000);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
	     (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	cr_expect_lt(ms, 3000.0, "took %.0f ms", ms);
	conf_free(&c);
	free(s);
}

Test(conf_file, reloading_replaces_everything)
{
	struct conf c;

	load_ok(&c, "rules = ( { port = 1; }, { port = 2; } );");
	cr_expect_eq(c.nrules, 2);
	cr_expect_eq(conf_load_mem(&c, "rules = ( { port = 3; } );", 26,
				   "u.conf"), 0);
	cr_expect_eq(c.nrules, 1);
	cr_expect_str_eq(c.path, "u.conf");
	cr_expect_eq(conf_load_mem(&c, "x = 1;", 6, "v.conf"), -1);
	cr_expect_eq(c.nerrors, 1);
	cr_expect_eq(c.nrules, 0);
	cr_expect_eq(conf_load(&c, path_of("config/curl-client.conf")), 0);
	cr_expect_eq(c.nerrors, 0, "old errors are gone");
	conf_free(&c);
}
