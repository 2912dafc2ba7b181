/* test_fuzz.c - the libFuzzer harnesses (tests/fuzz/), FUZZ_SECONDS each
 * (default 30), after replaying every regression input in
 * tests/fuzz/regress/.  `make fuzz-build` builds them (clang,
 * -fsanitize=fuzzer,address,undefined) into $DL_BUILD/fuzz.
 */
#include "rw.h"

RW_SUITE(fuzz, 900);

static void fuzz(const char *name)
{
	const char *secs = getenv("FUZZ_SECONDS");
	long s = secs && *secs ? atol(secs) : 30;
	char env_b[PATH_MAX + 8], env_s[32];
	struct dl_result r;

	dl_fmt(env_b, sizeof(env_b), "BUILD=%s", dl_build());
	dl_fmt(env_s, sizeof(env_s), "FUZZ_SECONDS=%ld", s);
	dl_run(&r, DL_V("sh", rw_src("tests/fuzz/run-fuzz"), name),
	       DL_V(env_b, env_s), 0, (s + 120) * 1000);
	rw_note("%s: %s", name, r.out);
	dl_assert_run(&r, r.exited && r.code == 0 && strstr(r.out, " FUZZED "),
		      "%s found a problem (the input is in the output; once fixed, "
		      "keep it in tests/fuzz/regress/)", name);
	dl_result_free(&r);
}

Test(fuzz, conf_load_mem)
{
	fuzz("fuzz_conf");
}

Test(fuzz, parsers)
{
	fuzz("fuzz_parsers");
}
