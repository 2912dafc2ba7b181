/* test_fault.c - fault injection decisions and configuration
 * (shim/fault.c, shim/conf_faults.c). */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "fault.h"

static void load_ok(struct conf *c, const char *text)
{
	conf_init(c);
	if (conf_load_mem(c, text, strlen(text), "t.conf") < 0) {
		for (size_t i = 0; i < c->nerrors; i++)
			cr_log_error("%s", c->errors[i]);
		cr_assert_fail("config did not load");
	}
}

/* Loads text, expects it to fail with an error containing want. */
static void load_bad(const char *text, const char *want)
{
	struct conf c;
	int found = 0;

	conf_init(&c);
	cr_assert_lt(conf_load_mem(&c, text, strlen(text), "t.conf"), 0,
		     "loaded: %s", text);
	for (size_t i = 0; i < c.nerrors; i++)
		if (strstr(c.errors[i], want))
			found = 1;
	if (!found)
		for (size_t i = 0; i < c.nerrors; i++)
			cr_log_error("got: %s", c.errors[i]);
	cr_expect(found, "no error containing \"%s\"", want);
	conf_free(&c);
}

static struct fault_ctx ctx(uint64_t seed, uint64_t conn, uint64_t op)
{
	struct fault_ctx x = { .seed = seed, .rule = 1,
			       .host = fault_hash("api.test"), .conn = conn,
			       .op = op };
	return x;
}

/* ------------------------------------------------------------ names */

Test(fault, kind_names_round_trip)
{
	for (int k = 0; k < FK_COUNT; k++)
		cr_expect_eq(fault_kind_parse(fault_kind_name((enum fault_kind)k)),
			     k);
	cr_expect_eq(fault_kind_parse("latancy"), -1);
	cr_expect_eq(fault_kind_parse(NULL), -1);
}

Test(fault, default_directions)
{
	struct fault_spec s = { 0 };

	cr_expect_eq(fault_dir_of(&s, FK_LATENCY), FDIR_DOWN);
	cr_expect_eq(fault_dir_of(&s, FK_BANDWIDTH), FDIR_DOWN);
	cr_expect_eq(fault_dir_of(&s, FK_ERROR), FDIR_BOTH);
	cr_expect_eq(fault_dir_of(&s, FK_SLICE), FDIR_BOTH);
	s.dir = FDIR_UP;
	cr_expect_eq(fault_dir_of(&s, FK_SLICE), FDIR_UP);
}

/* ------------------------------------------------------------ rates */

Test(fault, parse_rate)
{
	uint64_t r;

	cr_assert_eq(fault_parse_rate("100KB", &r), 0);
	cr_expect_eq(r, 100000);
	cr_assert_eq(fault_parse_rate("1.5MB/s", &r), 0);
	cr_expect_eq(r, 1500000);
	cr_assert_eq(fault_parse_rate("64KiB", &r), 0);
	cr_expect_eq(r, 65536);
	cr_assert_eq(fault_parse_rate("800kbit", &r), 0);
	cr_expect_eq(r, 100000);
	cr_assert_eq(fault_parse_rate(" 12345 ", &r), 0);
	cr_expect_eq(r, 12345);
	cr_assert_eq(fault_parse_rate("1Gi", &r), 0);
	cr_expect_eq(r, 1073741824ull);
	r = 7;
	cr_expect_eq(fault_parse_rate("", &r), -1);
	cr_expect_eq(fault_parse_rate("fast", &r), -1);
	cr_expect_eq(fault_parse_rate("-5KB", &r), -1);
	cr_expect_eq(fault_parse_rate("0", &r), -1);
	cr_expect_eq(fault_parse_rate("10 KB extra", &r), -1);
	cr_expect_eq(fault_parse_rate("0.1", &r), -1, "below 1 byte/s");
	cr_expect_eq(fault_parse_rate(NULL, &r), -1);
	cr_expect_eq(r, 7, "untouched on error");
}

Test(fault, bandwidth_clock)
{
	int64_t t = 0, now = 1000000000ll;

	/* 1000 bytes at 1000 B/s: the next transfer may start 1 s later. */
	t = fault_bw_advance(t, now, 1000, 1000);
	cr_expect_eq(t, now + 1000000000ll);
	/* Back to back: the clock adds up, it does not restart. */
	t = fault_bw_advance(t, now + 500000000ll, 1000, 500);
	cr_expect_eq(t, now + 1500000000ll);
	/* Idle for long: no banked credit, the clock restarts from now. */
	t = fault_bw_advance(t, now + 10000000000ll, 1000, 100);
	cr_expect_eq(t, now + 10100000000ll);
	/* Late by less than one chunk's time (20 bytes at 1000 B/s: 20 ms):
	 * the schedule holds, the lost 15 ms are caught up. */
	t = fault_bw_advance(t, now + 10115000000ll, 1000, 100);
	cr_expect_eq(t, now + 10200000000ll);
	/* Late by more than that: restart from now. */
	t = fault_bw_advance(t, now + 10225000000ll, 1000, 100);
	cr_expect_eq(t, now + 10325000000ll);
	/* About 20 ms of data per call, never 0, never huge. */
	cr_expect_eq(fault_bw_chunk(100000), 2000);
	cr_expect_eq(fault_bw_chunk(10), 1);
	cr_expect_eq(fault_bw_chunk(1ull << 40), 1u << 20);
}

/* -------------------------------------------------------- decisions */

Test(fault, roll_is_a_pure_function)
{
	struct fault_ctx a = ctx(42, 3, 7), b = ctx(42, 3, 7);

	cr_expect_eq(fault_roll(&a, 1, 0), fault_roll(&b, 1, 0));
	b.op = 8;
	cr_expect_neq(fault_roll(&a, 1, 0), fault_roll(&b, 1, 0));
	b = ctx(42, 4, 7);
	cr_expect_neq(fault_roll(&a, 1, 0), fault_roll(&b, 1, 0));
	b = ctx(43, 3, 7);
	cr_expect_neq(fault_roll(&a, 1, 0), fault_roll(&b, 1, 0));
	b = ctx(42, 3, 7);
	b.host = fault_hash("other.test");
	cr_expect_neq(fault_roll(&a, 1, 0), fault_roll(&b, 1, 0));
	b = ctx(42, 3, 7);
	b.rule = 2;
	cr_expect_neq(fault_roll(&a, 1, 0), fault_roll(&b, 1, 0));
	cr_expect_neq(fault_roll(&a, 1, 0), fault_roll(&a, 2, 0), "group");
	cr_expect_neq(fault_roll(&a, 1, 0), fault_roll(&a, 1, 1), "salt");
	/* Bytes and time do not enter the roll (they vary with timing). */
	b = ctx(42, 3, 7);
	b.bytes = 999;
	b.elapsed_ms = 12345;
	cr_expect_eq(fault_roll(&a, 1, 0), fault_roll(&b, 1, 0));
}

Test(fault, probability_is_honoured)
{
	struct fault_spec s = { .kinds = FK_BIT(FK_ERROR), .group = 1,
				.probability = 0.3 };
	int hits = 0, n = 20000;

	for (int i = 0; i < n; i++) {
		struct fault_ctx x = ctx(7, 1 + (uint64_t)i / 100,
					 (uint64_t)i % 100);
		hits += fault_fires(&s, FK_ERROR, &x);
	}
	cr_expect(fabs((double)hits / n - 0.3) < 0.02, "%d of %d", hits, n);
	s.probability = 0;
	for (int i = 0; i < 1000; i++) {
		struct fault_ctx x = ctx(7, 1, (uint64_t)i);
		cr_expect_not(fault_fires(&s, FK_ERROR, &x));
	}
	s.probability = 1;
	for (int i = 0; i < 1000; i++) {
		struct fault_ctx x = ctx(7, 1, (uint64_t)i);
		cr_expect(fault_fires(&s, FK_ERROR, &x));
	}
}

Test(fault, kind_must_be_set)
{
	struct fault_spec s = { .kinds = FK_BIT(FK_ERROR), .probability = 1 };
	struct fault_ctx x = ctx(1, 1, 0);

	cr_expect(fault_fires(&s, FK_ERROR, &x));
	cr_expect_not(fault_fires(&s, FK_LATENCY, &x));
}

Test(fault, nth_after_bytes_and_windows)
{
	struct fault_spec s = { .kinds = FK_BIT(FK_RESET), .probability = 1,
				.nth = 3 };
	struct fault_ctx x = ctx(1, 1, 0);

	for (uint64_t c = 1; c <= 9; c++) {
		x.conn = c;
		cr_expect_eq(fault_fires(&s, FK_RESET, &x), c % 3 == 0,
			     "conn %llu", (unsigned long long)c);
	}
	s.nth = 0;
	s.after_bytes = 100;
	x.bytes = 99;
	cr_expect_not(fault_fires(&s, FK_RESET, &x));
	x.bytes = 100;
	cr_expect(fault_fires(&s, FK_RESET, &x));
	s.after_bytes = 0;
	s.after_ms = 1000;
	s.for_ms = 500;
	x.elapsed_ms = 999;
	cr_expect_not(fault_fires(&s, FK_RESET, &x));
	x.elapsed_ms = 1000;
	cr_expect(fault_fires(&s, FK_RESET, &x));
	x.elapsed_ms = 1499;
	cr_expect(fault_fires(&s, FK_RESET, &x));
	x.elapsed_ms = 1500;
	cr_expect_not(fault_fires(&s, FK_RESET, &x), "window closed");
	s.for_ms = 0;
	x.elapsed_ms = 100000;
	cr_expect(fault_fires(&s, FK_RESET, &x), "no end");
}

Test(fault, times_caps_firings)
{
	struct fault_spec s = { .times = 2 };

	cr_expect(fault_claim(&s));
	cr_expect(fault_claim(&s));
	cr_expect_not(fault_claim(&s));
	cr_expect_not(fault_claim(&s));
	s.times = 0;
	for (int i = 0; i < 100; i++)
		cr_expect(fault_claim(&s), "no cap");
}

Test(fault, jitter_is_bounded_and_reproducible)
{
	struct fault_spec s = { .kinds = FK_BIT(FK_LATENCY), .group = 1,
				.latency_ms = 200, .jitter_ms = 50 };
	uint32_t lo = 1000, hi = 0;
	double sum = 0;

	for (uint64_t op = 0; op < 2000; op++) {
		struct fault_ctx x = ctx(9, 1, op);
		uint32_t v = fault_jittered_ms(&s, &x);
		cr_assert(v >= 150 && v <= 250, "%u", v);
		cr_expect_eq(v, fault_jittered_ms(&s, &x));
		lo = v < lo ? v : lo;
		hi = v > hi ? v : hi;
		sum += v;
	}
	cr_expect_lt(lo, 160);
	cr_expect_gt(hi, 240);
	cr_expect(fabs(sum / 2000 - 200) < 3, "mean %.1f", sum / 2000);
	/* Never negative. */
	s.latency_ms = 10;
	for (uint64_t op = 0; op < 200; op++) {
		struct fault_ctx x = ctx(9, 1, op);
		cr_expect_leq(fault_jittered_ms(&s, &x), 60);
	}
}

Test(fault, trigger_text)
{
	struct fault_spec s = { .probability = 1 };

	fault_describe_trigger(&s);
	cr_expect_str_eq(s.trigger, "always");
	s.probability = 0.3;
	s.nth = 2;
	s.after_bytes = 10;
	s.after_ms = 1500;
	s.for_ms = 200;
	s.times = 4;
	fault_describe_trigger(&s);
	cr_expect_str_eq(s.trigger, "probability=0.3 nth=2 after_bytes=10 "
				    "after=1500ms for=200ms times=4");
	s.after_ms = 20000;
	s.for_ms = 0;
	fault_describe_trigger(&s);
	cr_expect_str_eq(s.trigger, "probability=0.3 nth=2 after_bytes=10 "
				    "after=20s times=4");
}

/* ------------------------------------------------- `deadline --fault` */

Test(fault_specs, translate_and_load)
{
	const char *err = NULL;
	char *t = fault_specs_to_conf("host=api.test latency=200ms "
				      "jitter=50ms p=0.5;"
				      " cidr=10.0.0.0/8 port=443 refuse "
				      "delay=1s direction=outbound", &err);
	struct conf c;

	cr_assert_not_null(t, "%s", err);
	load_ok(&c, t);
	cr_assert_eq(c.nrules, 2);
	cr_expect_str_eq(c.rules[0].host, "api.test");
	cr_assert_eq(c.rules[0].v.nfaults, 1);
	cr_expect_eq(c.rules[0].v.faults[0].kinds, FK_BIT(FK_LATENCY));
	cr_expect_eq(c.rules[0].v.faults[0].latency_ms, 200);
	cr_expect_eq(c.rules[0].v.faults[0].jitter_ms, 50);
	cr_expect_float_eq(c.rules[0].v.faults[0].probability, 0.5, 1e-9);
	cr_expect_eq(c.rules[1].ncidrs, 1);
	cr_expect_eq(c.rules[1].direction, CONF_DIR_OUTBOUND);
	cr_expect_eq(c.rules[1].v.faults[0].kinds, FK_BIT(FK_REFUSE));
	cr_expect_eq(c.rules[1].v.faults[0].delay_ms, 1000);
	conf_free(&c);
	free(t);
}

Test(fault_specs, fault_direction_stays_with_the_fault)
{
	const char *err = NULL;
	char *t = fault_specs_to_conf("bandwidth=1MB direction=upstream", &err);
	struct conf c;

	cr_assert_not_null(t);
	load_ok(&c, t);
	cr_expect_eq(c.rules[0].direction, CONF_DIR_ANY);
	cr_expect_eq(c.rules[0].v.faults[0].dir, FDIR_UP);
	cr_expect_eq(c.rules[0].v.faults[0].rate, 1000000);
	conf_free(&c);
	free(t);
}

Test(fault_specs, error_names_the_spec_by_line)
{
	const char *err = NULL;
	char *t = fault_specs_to_conf("latency=1s;;slice=0", &err);
	struct conf c;

	cr_assert_not_null(t);
	conf_init(&c);
	cr_assert_lt(conf_load_mem(&c, t, strlen(t), "--fault"), 0);
	cr_assert_geq(c.nerrors, 1);
	cr_expect(strncmp(c.errors[0], "--fault:3: ", 11) == 0, "%s",
		  c.errors[0]);
	cr_expect(strstr(c.errors[0], "'slice'"), "%s", c.errors[0]);
	conf_free(&c);
	free(t);
}

Test(fault_specs, hostile_values_stay_quoted)
{
	const char *err = NULL;
	char *t = fault_specs_to_conf("error=E\"X\\ latency=1s", &err);

	/* The value reaches the checker intact (no syntax error). */
	cr_assert_not_null(t);
	load_bad(t, "unknown errno name 'E\"X\\x5c'");
	free(t);
	/* A control byte cannot break the one-spec-per-line layout. */
	t = fault_specs_to_conf("host=a\nb latency=1s", &err);
	cr_assert_not_null(t);
	cr_expect_eq(strchr(t, '\n'), strrchr(t, '\n'), "one line: %s", t);
	free(t);
	/* A key that is not an identifier is reported, not executed. */
	t = fault_specs_to_conf("x\";evil=1 latency=1s", &err);
	cr_assert_not_null(t);
	load_bad(t, "unknown key");
	free(t);
}

/* ----------------------------------------------------- configuration */

Test(fault_conf, one_group_or_a_list)
{
	struct conf c;

	load_ok(&c, "rules = ( { host = \"a\"; faults = ("
		    "  { latency = \"200ms\"; jitter = \"20ms\"; on = \"every\";"
		    "    direction = \"both\"; probability = 0.25; },"
		    "  { reset = true; after_bytes = 1000; nth = 2; times = 3; },"
		    "  { bandwidth = \"64KiB\"; },"
		    "  { blackhole = \"connect\"; then = \"reset\";"
		    "    then_after = \"2s\"; after = \"1s\"; for = \"5s\"; },"
		    "  { slice = 7; spurious = 0.1; },"
		    "  { error = \"ECONNRESET\"; direction = \"downstream\"; },"
		    "  { slow_close = \"300ms\"; },"
		    "  { dns = \"delay\"; delay = \"2s\"; },"
		    "  { unreachable = \"ENETUNREACH\"; delay = 500; }"
		    "); } );\n");
	cr_assert_eq(c.rules[0].v.nfaults, 9);
	{
		struct fault_spec *f = c.rules[0].v.faults;
		cr_expect_eq(f[0].on, FON_EVERY);
		cr_expect_eq(f[0].dir, FDIR_BOTH);
		cr_expect_str_eq(f[0].trigger, "probability=0.25");
		cr_expect_eq(f[1].kinds, FK_BIT(FK_RESET));
		cr_expect_eq(f[1].after_bytes, 1000);
		cr_expect_eq(f[1].group, 2);
		cr_expect_eq(f[2].rate, 65536);
		cr_expect_eq(f[3].bh, FBH_CONNECT);
		cr_expect_eq(f[3].then, FTHEN_RESET);
		cr_expect_eq(f[3].then_after_ms, 2000);
		cr_expect_eq(f[3].for_ms, 5000);
		cr_expect_eq(f[4].slice, 7);
		cr_expect_float_eq(f[4].spurious, 0.1, 1e-9);
		cr_expect_eq(f[5].err, ECONNRESET);
		cr_expect_eq(f[6].slow_close_ms, 300);
		cr_expect_eq(f[7].dns, FDNS_DELAY);
		cr_expect_eq(f[8].unreach_err, ENETUNREACH);
		cr_expect_eq(f[8].delay_ms, 500);
	}
	conf_free(&c);
	load_ok(&c, "defaults = { faults = { latency = \"1s\"; }; };\n"
		    "rules = ( { host = \"b\"; faults = { eof = true; }; },"
		    "          { host = \"c\"; connect_timeout = \"1s\"; } );\n");
	{
		struct conf_effective e;
		conf_effective(&c, &c.rules[0], &e);
		cr_expect_eq(e.nfaults, 1);
		cr_expect_eq(e.faults[0].kinds, FK_BIT(FK_EOF),
			     "a rule's faults replace the defaults'");
		conf_effective(&c, &c.rules[1], &e);
		cr_expect_eq(e.faults[0].kinds, FK_BIT(FK_LATENCY));
	}
	conf_free(&c);
}

Test(fault_conf, seed)
{
	struct conf c;

	load_ok(&c, "seed = 1234;\n");
	cr_expect(c.has_seed);
	cr_expect_eq(c.seed, 1234);
	conf_free(&c);
	load_bad("seed = \"x\";\n", "'seed' must be an integer");
}

Test(fault_conf, errors_are_pointed)
{
	load_bad("defaults = { faults = { latancy = \"1s\"; }; };",
		 "unknown key 'latancy' in 'faults'; did you mean 'latency'?");
	load_bad("defaults = { faults = { jitter = \"1s\"; slice = 3; }; };",
		 "'jitter' belongs to 'latency'");
	load_bad("defaults = { faults = { blackhole = true; then = \"reset\"; }; };",
		 "'then' needs 'then_after'");
	load_bad("defaults = { faults = { refuse = true; then_after = 1; }; };",
		 "'then_after' belongs to 'blackhole'");
	load_bad("defaults = { faults = { bandwidth = \"fast\"; }; };",
		 "bad bandwidth 'fast'");
	load_bad("defaults = { faults = { error = \"EIO\"; probability = 1.5; }; };",
		 "'probability' = 1.5 is out of range 0..1");
	load_bad("defaults = { faults = { refuse = true; unreachable = true; }; };",
		 "cannot both apply");
	load_bad("defaults = { faults = { host = \"x\"; refuse = true; }; };",
		 "'host' belongs in the rule, not in 'faults'");
	load_bad("defaults = { faults = (); };", "'faults' is an empty list");
	load_bad("defaults = { faults = { on = \"always\"; latency = 1; }; };",
		 "bad on 'always': expected \"first_byte\", \"connect\" or "
		 "\"every\"");
	load_bad("defaults = { faults = { dns = \"delay\"; }; };",
		 "dns = \"delay\" needs 'delay'");
	load_bad("defaults = { faults = { slice = 0; }; };",
		 "'slice' = 0 is out of range");
	load_bad("defaults = { faults = { error = \"EWHATEVER\"; }; };",
		 "unknown errno name 'EWHATEVER'");
	load_bad("defaults = { faults = { refuse = 1; }; };",
		 "'refuse' must be true or false");
	load_bad("defaults = { faults = { nth = 0; reset = true; }; };",
		 "'nth' = 0 is out of range");
	load_bad("defaults = { faults = { }; };", "names no fault");
	load_bad("defaults = { faults = ( 1 ); };", "fault 1 must be a group");
	{
		/* 17 groups: one too many. */
		char buf[2048];
		size_t o = (size_t)snprintf(buf, sizeof(buf),
					    "defaults = { faults = (");
		for (int i = 0; i < 17; i++)
			o += (size_t)snprintf(buf + o, sizeof(buf) - o,
					      "%s{ eof = true; }", i ? "," : "");
		snprintf(buf + o, sizeof(buf) - o, "); };");
		load_bad(buf, "at most 16");
	}
}

Test(fault_conf, a_switch_set_false_is_no_fault)
{
	load_bad("defaults = { faults = { refuse = false; }; };",
		 "names no fault");
}

/* -------------------------------------------------------- group keys */

/* Every (source, index) of the whole domain has a key of its own; the
 * keys of earlier versions are kept where they did not collide. */
Test(fault_keys, injective_over_the_whole_domain)
{
	size_t n = 2 * ((size_t)FAULT_KEY_INDEX_MAX + 1), a = 0, b = 0;
	uint32_t *k = malloc(n * sizeof(*k));

	cr_assert_not_null(k);
	for (unsigned i = 0; i <= FAULT_KEY_INDEX_MAX; i++) {
		k[2 * i] = fault_group_key(FSRC_FILE, i);
		k[2 * i + 1] = fault_group_key(FSRC_SPEC, i);
	}
	cr_expect_eq(fault_keys_distinct(k, n, &a, &b), 1,
		     "keys of positions %zu and %zu are both %u", a, b, k[a]);
	free(k);
	/* Unchanged: file rules below 1000 and `defaults`, and the specs
	 * (same seed, same decisions as before). */
	cr_expect_eq(fault_group_key(FSRC_FILE, 0), 0);
	cr_expect_eq(fault_group_key(FSRC_FILE, 999), 999);
	cr_expect_eq(fault_group_key(FSRC_SPEC, 0), 1000);
	cr_expect_eq(fault_group_key(FSRC_SPEC, CONF_MAX_RULES - 1),
		     1000 + CONF_MAX_RULES - 1);
	/* Moved: file rules from the 1000th on, which met the specs. */
	cr_expect_neq(fault_group_key(FSRC_FILE, 1000),
		      fault_group_key(FSRC_SPEC, 0));
	cr_expect_neq(fault_group_key(FSRC_FILE, 1001),
		      fault_group_key(FSRC_SPEC, 1));
	cr_expect_neq(fault_group_key(FSRC_FILE, CONF_MAX_RULES),
		      fault_group_key(FSRC_SPEC, CONF_MAX_RULES - 1000));
	/* Outside the domain: never a valid key. */
	cr_expect_eq(fault_group_key(FSRC_FILE, FAULT_KEY_INDEX_MAX + 1),
		     FAULT_KEY_INVALID);
	cr_expect_eq(fault_group_key(FSRC_SPEC, FAULT_KEY_INDEX_MAX + 1),
		     FAULT_KEY_INVALID);
	cr_expect_eq(fault_group_key((enum fault_source)7, 1),
		     FAULT_KEY_INVALID);
}

Test(fault_keys, duplicates_are_found)
{
	uint32_t k[] = { 3, 1000, 7, 1000, 9 };
	uint32_t bad[] = { 3, FAULT_KEY_INVALID };
	size_t a = 99, b = 99;

	cr_expect_eq(fault_keys_distinct(k, 5, &a, &b), 0);
	cr_expect_eq(a, 1);
	cr_expect_eq(b, 3);
	cr_expect_eq(fault_keys_distinct(k, 3, NULL, NULL), 1);
	cr_expect_eq(fault_keys_distinct(bad, 2, &a, &b), 0);
	cr_expect_eq(a, 1);
	cr_expect_eq(b, 1);
	cr_expect_eq(fault_keys_distinct(k, 0, NULL, NULL), 1);
}

/* The keys a decision is made with did not move for configurations whose
 * keys never collided: pinned rolls (seed 42, host 127.0.0.1, conn 1,
 * op 0, group 1, latency), as computed before the key change. */
Test(fault_keys, same_seed_same_rolls)
{
	struct fault_ctx x = { .seed = 42, .host = fault_hash("127.0.0.1"),
			       .conn = 1, .op = 0 };

	x.rule = fault_group_key(FSRC_SPEC, 0);
	cr_expect_eq(fault_roll(&x, 1, FK_LATENCY), 0xc85227db5cbe65c2ull);
	x.rule = fault_group_key(FSRC_FILE, 5);
	cr_expect_eq(fault_roll(&x, 1, FK_LATENCY), 0x5b1225654708acbcull);
	x.rule = fault_group_key(FSRC_FILE, 0);
	cr_expect_eq(fault_roll(&x, 1, FK_LATENCY), 0x120ece553cd7fc99ull);
}

/* "rules = ( ... );" with n rules, each with one fault group matching a
 * host of its own ("r<N>.test"). */
static char *rules_with_faults(int n)
{
	size_t cap = (size_t)n * 96 + 128, o = 0;
	char *s = malloc(cap);

	cr_assert_not_null(s);
	o += (size_t)snprintf(s + o, cap - o,
			      "defaults = { faults = { latency = 1; "
			      "probability = 0.5; }; };\nrules = (\n");
	for (int i = 0; i < n; i++)
		o += (size_t)snprintf(s + o, cap - o,
				      "%s{ host = \"r%d.test\"; faults = ( "
				      "{ latency = 1; probability = 0.5; }, "
				      "{ eof = true; } ); }\n",
				      i ? "," : "", i + 1);
	cr_assert_lt(o, cap - 4);
	snprintf(s + o, cap - o, ");\n");
	return s;
}

/* n specs "host=s<N>.test latency=1ms p=0.5", loaded as inject_load
 * loads DEADLINE_FAULTS. */
static void load_specs(struct conf *c, int n)
{
	size_t cap = (size_t)n * 48 + 16, o = 0;
	char *specs = malloc(cap), *text;
	const char *err = NULL;

	cr_assert_not_null(specs);
	specs[0] = 0;
	for (int i = 0; i < n; i++)
		o += (size_t)snprintf(specs + o, cap - o,
				      "%shost=s%d.test latency=1ms p=0.5",
				      i ? "; " : "", i + 1);
	text = fault_specs_to_conf(specs, &err);
	cr_assert_not_null(text, "%s", err);
	load_ok(c, text);
	cr_assert_eq(c->nrules, (size_t)n);
	free(text);
	free(specs);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The largest file the configuration allows, plus specs across the whole
 * range the file rules from the 1000th on used to share: every rule has
 * a key of its own, and so every group a (key, group) of its own. */
Test(fault_keys, max_rules_plus_specs_all_distinct)
{
	struct conf file, specs;
	char *text = rules_with_faults(CONF_MAX_RULES);
	int nspecs = CONF_MAX_RULES - 1000 + 8;
	char msg[160] = "";
	size_t nk = 0, cap, a = 0, b = 0;
	uint64_t *gk;
	uint32_t *rk;

	load_ok(&file, text);
	free(text);
	cr_assert_eq(file.nrules, CONF_MAX_RULES);
	cr_assert_eq(file.rules[CONF_MAX_RULES - 1].index, CONF_MAX_RULES);
	load_specs(&specs, nspecs);
	cr_expect_eq(conf_fault_keys_check(&file, &specs, msg, sizeof(msg)),
		     0, "%s", msg);
	cr_expect_eq(conf_fault_keys_check(&file, NULL, msg, sizeof(msg)), 0,
		     "%s", msg);
	cr_expect_eq(conf_fault_keys_check(NULL, &specs, msg, sizeof(msg)), 0,
		     "%s", msg);

	/* The same, group by group, keyed as the shim keys them: the
	 * effective rule index (0 for defaults) and the spec position. */
	cap = CONF_MAX_FAULTS * (1 + file.nrules + specs.nrules);
	gk = malloc(cap * sizeof(*gk));
	rk = malloc((1 + file.nrules + specs.nrules) * sizeof(*rk));
	cr_assert(gk && rk);
	for (size_t r = 0; r <= file.nrules; r++) {
		struct conf_effective e;
		uint32_t key;

		conf_effective(&file, r ? &file.rules[r - 1] : NULL, &e);
		key = fault_group_key(FSRC_FILE, e.rule_index);
		rk[r] = key;
		cr_assert_gt(e.nfaults, 0);
		for (uint16_t g = 0; g < e.nfaults; g++)
			gk[nk++] = (uint64_t)key << 16 | e.faults[g].group;
	}
	for (size_t i = 0; i < specs.nrules; i++) {
		uint32_t key = fault_group_key(FSRC_SPEC, (unsigned)i);

		rk[1 + file.nrules + i] = key;
		for (uint16_t g = 0; g < specs.rules[i].v.nfaults; g++)
			gk[nk++] = (uint64_t)key << 16 |
				   specs.rules[i].v.faults[g].group;
	}
	cr_expect_eq(fault_keys_distinct(rk, 1 + file.nrules + specs.nrules,
					 &a, &b), 1,
		     "rules at %zu and %zu share key %u", a, b, rk[a]);
	qsort(gk, nk, sizeof(*gk), cmp_u64);
	for (size_t i = 1; i < nk; i++)
		cr_assert_neq(gk[i], gk[i - 1], "two groups share key %llu, "
			      "group %llu", (unsigned long long)(gk[i] >> 16),
			      (unsigned long long)(gk[i] & 0xffff));
	free(gk);
	free(rk);
	conf_free(&file);
	conf_free(&specs);
}

/* The load-time check names the two rules when keys do collide (here a
 * hand-made file whose rules claim one index twice). */
Test(fault_keys, check_names_a_collision)
{
	struct conf c;
	struct conf_rule r[2];
	char msg[160] = "";

	conf_init(&c);
	memset(r, 0, sizeof(r));
	snprintf(r[0].name, sizeof(r[0].name), "first");
	snprintf(r[1].name, sizeof(r[1].name), "second");
	r[0].index = r[1].index = 5;
	c.rules = r;
	c.nrules = 2;
	cr_expect_eq(conf_fault_keys_check(&c, NULL, msg, sizeof(msg)), -1);
	cr_expect_str_eq(msg, "first and second");
	r[1].index = 0;
	cr_expect_eq(conf_fault_keys_check(&c, NULL, msg, sizeof(msg)), -1);
	cr_expect_str_eq(msg, "defaults and second");
	r[1].index = 6;
	cr_expect_eq(conf_fault_keys_check(&c, NULL, msg, sizeof(msg)), 0);
}

/* Two p=0.5 connect-latency groups keyed ka and kb over n connections,
 * each numbered per (key, host) as the shim numbers them: how many
 * connections got any delay, both, only a's, only b's. */
static void draws(uint32_t ka, uint32_t kb, uint64_t seed, int n,
		  int *any, int *both, int *a_only, int *b_only)
{
	struct fault_spec s = { .kinds = FK_BIT(FK_LATENCY), .group = 1,
				.on = FON_CONNECT, .probability = 0.5 };
	uint64_t host = fault_hash("127.0.0.1");
	uint64_t na = 0, nb = 0;

	*any = *both = *a_only = *b_only = 0;
	for (int i = 0; i < n; i++) {
		/* One counter per key: a shared key shares the counter. */
		uint64_t ca = ++na, cb = ka == kb ? ca : ++nb;
		struct fault_ctx xa = { .seed = seed, .rule = ka, .host = host,
					.conn = ca, .op = 0 };
		struct fault_ctx xb = { .seed = seed, .rule = kb, .host = host,
					.conn = cb, .op = 0 };
		int fa = fault_fires(&s, FK_LATENCY, &xa);
		int fb = fault_fires(&s, FK_LATENCY, &xb);

		*any += fa || fb;
		*both += fa && fb;
		*a_only += fa && !fb;
		*b_only += fb && !fa;
	}
}

/* Issue 14: a file rule from the 1000th on and a DEADLINE_FAULTS spec,
 * each with a p=0.5 latency group, over 2,000 connections: they fire
 * independently, so about 75 % of connections get at least one delay (not
 * 50 %), each group alone about 25 %, both about 25 %; the spec's group is
 * the first to fire on its own share.  With one shared key (the old
 * keying: rule 1000 + i and spec i were both 1000 + i) it is exactly
 * 50 %, and the spec's group never fires alone. */
Test(fault_keys, independent_groups_draw_independently)
{
	const int n = 2000;
	const unsigned rules[] = { 1000, 1001, 1010, CONF_MAX_RULES };

	for (size_t r = 0; r < sizeof(rules) / sizeof(rules[0]); r++) {
		uint32_t ka = fault_group_key(FSRC_FILE, rules[r]);
		uint32_t kb = fault_group_key(FSRC_SPEC, rules[r] - 1000);

		for (uint64_t seed = 1; seed <= 3; seed++) {
			int any, both, ao, bo;

			draws(ka, kb, seed, n, &any, &both, &ao, &bo);
			cr_expect(fabs((double)any / n - 0.75) < 0.04,
				  "rule %u, seed %llu: %d of %d delayed, "
				  "expected ~75 %%", rules[r],
				  (unsigned long long)seed, any, n);
			cr_expect(fabs((double)both / n - 0.25) < 0.04,
				  "both fired on %d of %d", both, n);
			cr_expect(fabs((double)bo / n - 0.25) < 0.04,
				  "the spec's group alone on %d of %d", bo, n);
			cr_expect(fabs((double)ao / n - 0.25) < 0.04,
				  "the rule's group alone on %d of %d", ao, n);
			/* The control: one key for both is the bug. */
			draws(ka, ka, seed, n, &any, &both, &ao, &bo);
			cr_expect_eq(bo, 0);
			cr_expect_eq(ao, 0);
			cr_expect(fabs((double)any / n - 0.5) < 0.04);
		}
	}
}
