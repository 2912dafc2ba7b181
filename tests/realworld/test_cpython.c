/* test_cpython.c - transparency under CPython's own network test suites.
 *
 * test_socket, test_selectors, test_socketserver, test_httplib,
 * test_urllib2_localnet and test_asyncio run twice (tests/realworld/
 * cpython-suite): without the shim, then with libdeadline preloaded and
 * all four deadlines armed at a generous 60 s.  The same set of tests must
 * pass (tests/realworld/junit-compare); a test that fails only under the
 * shim is a shim bug.  The counts go to the log.
 */
#include "rw.h"

RW_SUITE(cpython, 600);

/* The python3 to test: $DL_PYTHON, else Debian's with its test package
 * (libpython3.11-testsuite), else python3 on PATH if it ships Lib/test. */
static const char *pick_python(void)
{
	static const char *const probe[] = { "/usr/bin/python3", "python3" };
	const char *env = getenv("DL_PYTHON");

	if (env && *env)
		return env;
	for (size_t i = 0; i < sizeof(probe) / sizeof(probe[0]); i++) {
		struct dl_result r;

		if (!rw_have(probe[i]))
			continue;
		dl_run(&r, DL_V(probe[i], "-c",
				"import test.test_socket, test.test_asyncio, "
				"test.test_socketserver"),
		       NULL, 0, 20000);
		int ok = r.exited && r.code == 0;

		dl_result_free(&r);
		if (ok)
			return probe[i];
	}
	return NULL;
}

static long sum_field(const char *path, const char *key)
{
	FILE *f = fopen(path, "r");
	char line[65536];
	long total = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		for (const char *p = line; (p = strstr(p, key)); p += strlen(key))
			total += atol(p + strlen(key));
	fclose(f);
	return total;
}

Test(cpython, network_suites_same_with_and_without_shim)
{
	const char *py = pick_python();
	const char *out = rw_tmp("cpython");
	struct dl_result ver, plain, shim, cmp;
	char xml_plain[2 * PATH_MAX], xml_shim[2 * PATH_MAX], stats[PATH_MAX];

	dl_require_shim();
	cr_assert(py, "no python3 with its test suite: install Debian's "
		      "libpython3.11-testsuite (tools/ensure-deps test does)");
	dl_run(&ver, DL_V(py, "-c",
			  "import sys, os; print(sys.version.split()[0], "
			  "os.path.realpath(sys.executable))"),
	       NULL, 0, 10000);
	rw_note("cpython: %s -> %s", py, ver.out);

	dl_run(&plain, DL_V("sh", rw_src("tests/realworld/cpython-suite"), py,
			    out, "plain"),
	       NULL, 0, 290000);
	dl_run(&shim, DL_V("sh", rw_src("tests/realworld/cpython-suite"), py,
			   out, "shim", dl_shim()),
	       NULL, 0, 290000);
	rw_note("cpython plain:\n%s", plain.out);
	rw_note("cpython shim:\n%s", shim.out);
	cr_assert(!plain.timed_out && !shim.timed_out,
		  "a suite run hit its hard timeout (plain %ld ms, shim %ld ms)",
		  plain.ms, shim.ms);

	dl_fmt(xml_plain, sizeof(xml_plain), "%s/plain-main.xml,%s/plain-socketserver.xml",
	       out, out);
	dl_fmt(xml_shim, sizeof(xml_shim), "%s/shim-main.xml,%s/shim-socketserver.xml",
	       out, out);
	dl_run(&cmp, DL_V(py, rw_src("tests/realworld/junit-compare"), xml_plain,
			  xml_shim),
	       NULL, 0, 60000);
	rw_note("cpython comparison:\n%s%s", cmp.out, cmp.err);

	/* The shim must really have been there: every Python process wrote
	 * its counters, and TCP connections were tracked. */
	dl_fmt(stats, sizeof(stats), "%s/stats.jsonl", out);
	long conns = sum_field(stats, "\"connections\":");
	long procs = sum_field(stats, "\"pid\":") >= 0 ? 1 : 0;
	rw_note("cpython shim run: %ld tracked TCP connections (DEADLINE_STATS)",
		conns);
	cr_assert(procs && conns > 100,
		  "DEADLINE_STATS shows %ld tracked connections: was the shim "
		  "loaded into the test processes?", conns);

	cr_assert(dl_line(cmp.out, "SAME"),
		  "tests that pass without the shim fail with it (a shim bug):\n%s"
		  "\n--- plain run:\n%s\n--- shim run:\n%s",
		  cmp.out, plain.out, shim.out);
	dl_result_free(&ver);
	dl_result_free(&plain);
	dl_result_free(&shim);
	dl_result_free(&cmp);
}
