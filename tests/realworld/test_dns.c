/* dns_timeout: getaddrinfo bounded for names a rule matches, against a
 * resolver on loopback that never answers (tests/realworld/dns-stall). */
#include "rw.h"

RW_SUITE(dns, 60);

Test(dns, timeout_returns_eai_again_for_matching_names_only)
{
	struct dl_result r;
	const char *name = NULL;
	int err, ms, seen = 0;

	dl_require_shim();
	dl_run(&r, DL_V(rw_src("tests/realworld/dns-stall"), dl_shim(),
			dl_tmpdir()),
	       NULL, 0, 20000);
	if (!(r.exited && r.code == 0) && strstr(r.err, "unshare"))
		cr_skip("no network/mount namespace here: %s", r.err);
	dl_assert_ok(&r, "dns-stall");
	for (const char *p = r.out; (p = dl_line(p, "LOOKUP ")); p++) {
		char host[64];

		cr_assert(sscanf(p, "LOOKUP %63s %d %d", host, &err, &ms) == 3,
			  "bad line: %s", r.out);
		if (strcmp(host, "api.stall.test") == 0) {
			/* EAI_AGAIN is -3; at the 300 ms limit, not the
			 * resolver's own 3 s. */
			cr_assert_eq(err, -3, "api.stall.test: errno %d\n%s%s",
				     err, r.out, r.err);
			cr_assert(ms >= 290 && ms <= 300 + dl_slack() + 100,
				  "api.stall.test failed after %d ms\n%s", ms,
				  r.out);
			seen |= 1;
		} else {
			/* no rule: the resolver's own timeout, untouched */
			cr_assert(ms >= 2900, "other name ended after %d ms\n%s",
				  ms, r.out);
			seen |= 2;
		}
	}
	cr_assert_eq(seen, 3, "missing LOOKUP lines:\n%s\n%s", r.out, r.err);
	name = strstr(r.err, "event=dns_timeout host=api.stall.test");
	cr_assert(name, "no dns_timeout log line:\n%s", r.err);
}
