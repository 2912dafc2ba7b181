/* test_policy.c - durations and process-wide limits (shim/policy.c). */
#include <criterion/criterion.h>
#include <string.h>

#include "policy.h"

static uint32_t dur_ok(const char *s)
{
	uint32_t ms = 0xdeadbeef;

	cr_assert_eq(policy_parse_duration(s, &ms), 0, "'%s' should parse", s);
	return ms;
}

static void dur_bad(const char *s)
{
	uint32_t ms = 0xdeadbeef;

	cr_expect_eq(policy_parse_duration(s, &ms), -1,
		     "'%s' should be rejected", s);
	cr_expect_eq(ms, 0xdeadbeef, "'%s': *ms must stay untouched", s);
}

Test(policy_duration, good_values)
{
	cr_expect_eq(dur_ok("250ms"), 250);
	cr_expect_eq(dur_ok("2s"), 2000);
	cr_expect_eq(dur_ok("1m30s"), 90000);
	cr_expect_eq(dur_ok("1.5s"), 1500);
	cr_expect_eq(dur_ok("400"), 400);
	cr_expect_eq(dur_ok("1us"), 1);
	cr_expect_eq(dur_ok("0"), 0);
}

Test(policy_duration, more_units_and_spacing)
{
	cr_expect_eq(dur_ok("1h"), 3600000);
	cr_expect_eq(dur_ok("1h2m3s4ms"), 3723004);
	cr_expect_eq(dur_ok("750us"), 1);	/* rounded up */
	cr_expect_eq(dur_ok("1000us"), 1);
	cr_expect_eq(dur_ok("1001us"), 2);
	cr_expect_eq(dur_ok("1ns"), 1);
	cr_expect_eq(dur_ok("0s"), 0);
	cr_expect_eq(dur_ok("0.25s"), 250);
	cr_expect_eq(dur_ok("  2s\t"), 2000);
}

Test(policy_duration, maximum_is_30_days)
{
	cr_expect_eq(dur_ok("720h"), DL_DURATION_MAX_MS);
	cr_expect_eq(dur_ok("2592000000"), DL_DURATION_MAX_MS);
	dur_bad("720h1ms");
	dur_bad("2592000001");
}

Test(policy_duration, bad_values)
{
	dur_bad("");
	dur_bad("   ");
	dur_bad("abc");
	dur_bad("5x");
	dur_bad("-1s");
	dur_bad("1s2");
	dur_bad("s");
	dur_bad("1 s");
	dur_bad("1.5.2s");
	dur_bad("+1s");
	dur_bad("1d");
	dur_bad(NULL);
}

Test(policy_duration, overflow)
{
	dur_bad("99999999999999999999999999s");
	dur_bad("18446744073709551616");
	dur_bad("18446744073709551615ms");
	dur_bad("9999999999h");
	dur_bad("100000000000000000000ns");
}

Test(policy_phase, names_and_envs)
{
	cr_expect_str_eq(policy_phase_name(DL_PH_CONNECT), "connect");
	cr_expect_str_eq(policy_phase_name(DL_PH_FIRST_BYTE), "first_byte");
	cr_expect_str_eq(policy_phase_name(DL_PH_IDLE), "idle");
	cr_expect_str_eq(policy_phase_name(DL_PH_REQUEST), "request");
	cr_expect_str_eq(policy_phase_name(DL_PH_COUNT), "?");
	cr_expect_str_eq(policy_phase_env(DL_PH_CONNECT),
			 "DEADLINE_CONNECT_TIMEOUT");
	cr_expect_str_eq(policy_phase_env(DL_PH_REQUEST),
			 "DEADLINE_REQUEST_TIMEOUT");
}

static const char *fake_env(const char *name)
{
	if (strcmp(name, "DEADLINE_CONNECT_TIMEOUT") == 0)
		return "2s";
	if (strcmp(name, "DEADLINE_IDLE_TIMEOUT") == 0)
		return "soon";
	if (strcmp(name, "DEADLINE_REQUEST_TIMEOUT") == 0)
		return "";
	return NULL;
}

static int warned;
static char last_warning[512];

static void record_warning(const char *msg)
{
	warned++;
	strncpy(last_warning, msg, sizeof(last_warning) - 1);
}

Test(policy_env, limits_from_env)
{
	struct dl_limits l;

	cr_expect_eq(policy_limits_from_env(&l, fake_env, record_warning), 1);
	cr_expect_eq(l.ms[DL_PH_CONNECT], 2000);
	cr_expect_eq(l.ms[DL_PH_FIRST_BYTE], 0);
	cr_expect_eq(l.ms[DL_PH_IDLE], 0);
	cr_expect_eq(l.ms[DL_PH_REQUEST], 0);
	cr_expect_eq(warned, 1);
	cr_expect(strstr(last_warning, "DEADLINE_IDLE_TIMEOUT") != NULL);
	cr_expect(policy_limits_any(&l));
	memset(&l, 0, sizeof(l));
	cr_expect_not(policy_limits_any(&l));
}
