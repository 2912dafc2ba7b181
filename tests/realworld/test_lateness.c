/* test_lateness.c - tools/lateness once per runtime: every client program
 * of docs/compatibility.md that the machine has, under a 300 ms request
 * deadline against a server that accepts and never answers, must see the
 * deadline fire (the tool exits 1 when a client ran and none fired).  The
 * table it prints goes to the log; nothing here checks speed: the figures
 * in docs/compatibility.md come from `make lateness` (20 runs each).
 */
#include "rw.h"

RW_SUITE(lateness, 240);

Test(lateness, one_run_per_runtime)
{
	struct dl_result r;
	char build[PATH_MAX + 8];

	dl_require_shim();
	if (!rw_have("python3"))
		cr_skip_test("python3 is not installed");
	dl_fmt(build, sizeof(build), "BUILD=%s", dl_build());
	dl_run(&r, DL_V("python3", rw_src("tools/lateness"), "--runs", "1"),
	       DL_V(build), 0, 200000);
	rw_note("lateness, one run per runtime:\n%s", r.out);
	dl_assert_run(&r, r.exited && r.code == 0,
		      "a client ran and its deadline did not fire");
	dl_assert_run(&r, dl_line(r.out, "curl "),
		      "no row for curl in the table");
	dl_result_free(&r);
}
