/* test_races.c - the shim under ThreadSanitizer.
 *
 * `make tsan-build` builds the shim and the threaded helpers (dlclient,
 * stress) with -fsanitize=thread into $TSAN_BUILD (build/tsan): a TSan
 * library cannot be preloaded into an uninstrumented program, so the
 * clients are instrumented too.  Each threaded client runs under the TSan
 * shim with TSAN_OPTIONS=symbolize=0 (TSan's in-process symbolizer calls
 * close(), which the shim interposes: TSan then deadlocks on its own report
 * lock), and tests/realworld/tsan-report symbolizes and sorts the reports.
 * A data race on the shim's own memory fails the test; reports on file
 * descriptors (concurrent system calls on one fd, which the teardown does
 * by design) and the client's own races are listed, not failed.
 */
#include "rw.h"

RW_SUITE(races, 180);

static const char *tsan_path(const char *rel)
{
	static char bufs[4][PATH_MAX];
	static int next;
	char *p = bufs[next++ % 4], dir[PATH_MAX];
	const char *b = getenv("TSAN_BUILD");

	if (!realpath(b && *b ? b : "build/tsan", dir))
		dl_fmt(dir, sizeof(dir), "%s", b && *b ? b : "build/tsan");
	dl_fmt(p, PATH_MAX, "%s/%s", dir, rel);
	return p;
}

/* Run a TSan-built helper under the TSan shim; returns the number of
 * races on the shim's memory and fills *r. */
static int run_tsan(struct dl_result *r, const char *what,
		    const char *const *argv, const char *env1, const char *env2,
		    long timeout_ms)
{
	static char preload[PATH_MAX + 16];
	char mod_shim[PATH_MAX + 32], mod_dl[PATH_MAX + 32], mod_st[PATH_MAX + 32];
	const char *log = rw_tmp("tsan.log");
	struct dl_result rep;
	FILE *f;

	cr_assert(access(tsan_path("libdeadline.so"), R_OK) == 0,
		  "%s is missing: make tsan-build", tsan_path("libdeadline.so"));
	dl_fmt(preload, sizeof(preload), "LD_PRELOAD=%s",
	       tsan_path("libdeadline.so"));
	dl_run(r, argv,
	       DL_V(preload, "TSAN_OPTIONS=halt_on_error=0 symbolize=0 "
			     "exitcode=0 report_signal_unsafe=0",
		    env1 ? env1 : "DL_NOTHING=1", env2 ? env2 : "DL_NOTHING2=1"),
	       0, timeout_ms);
	f = fopen(log, "w");
	cr_assert(f && fputs(r->err, f) >= 0 && fclose(f) == 0, "tsan.log");
	dl_fmt(mod_shim, sizeof(mod_shim), "libdeadline.so=%s",
	       tsan_path("libdeadline.so"));
	dl_fmt(mod_dl, sizeof(mod_dl), "dlclient=%s",
	       tsan_path("helpers/dlclient"));
	dl_fmt(mod_st, sizeof(mod_st), "stress=%s", tsan_path("helpers/stress"));
	dl_run(&rep, DL_V("python3", rw_src("tests/realworld/tsan-report"), log,
			  mod_shim, mod_dl, mod_st),
	       NULL, 0, 120000);
	const char *sum = rw_line_with(rep.out, "TSAN reports=");
	rw_note("tsan %s: exit %d sig %d in %ld ms; %s\n%s%s", what, r->code,
		r->sig, r->ms, sum, rep.out, rep.err);
	long shim = dl_field(sum, "shim=");
	dl_assert_run(r, !r->timed_out && !r->signaled,
		      "%s hung or crashed under the TSan shim", what);
	cr_assert(shim >= 0, "tsan-report failed:\n%s%s", rep.out, rep.err);
	dl_result_free(&rep);
	return (int)shim;
}

Test(races, threads_first_byte)
{
	struct dl_server *s = dl_stallsrv("http", NULL);
	struct dl_result r;
	int races = run_tsan(&r, "dlclient threads",
			     DL_V(tsan_path("helpers/dlclient"), "threads",
				  "127.0.0.1", s->port_s, "--n", "32", "--limit",
				  "500", "--slack", "400"),
			     "DEADLINE_FIRST_BYTE_TIMEOUT=500ms", NULL, 60000);

	cr_expect(dl_line(r.out, "THREADS ok=16 timedout=16 bad=0"),
		  "dlclient threads under TSan:\n%s", r.out);
	cr_assert_eq(races, 0, "data races in the shim (see the log above)");
	dl_result_free(&r);
}

Test(races, close_while_reading)
{
	struct dl_server *s = dl_stallsrv("http", NULL);
	struct dl_result r;
	int races = run_tsan(&r, "dlclient closerace",
			     DL_V(tsan_path("helpers/dlclient"), "closerace",
				  "127.0.0.1", s->port_s),
			     "DEADLINE_FIRST_BYTE_TIMEOUT=5s",
			     "DEADLINE_REQUEST_TIMEOUT=5s", 60000);

	cr_expect(dl_line(r.out, "READER OK"), "closerace under TSan:\n%s",
		  r.out);
	cr_assert_eq(races, 0, "data races in the shim (see the log above)");
	dl_result_free(&r);
}

Test(races, fork_with_threads)
{
	struct dl_server *s = dl_stallsrv("http", NULL);
	struct dl_result r;
	int races = run_tsan(&r, "dlclient fork",
			     DL_V(tsan_path("helpers/dlclient"), "fork",
				  "127.0.0.1", s->port_s, "--limit", "600",
				  "--slack", "400"),
			     "DEADLINE_FIRST_BYTE_TIMEOUT=600ms", NULL, 60000);

	cr_assert_eq(races, 0, "data races in the shim (see the log above)");
	dl_result_free(&r);
}

/* A fork on one thread while another opens sockets: the atfork handlers
 * bump the fork epoch that socket() copies into the new entry.  The
 * stress run found it once (a plain read against the handler's atomic
 * write); this makes the two meet every time. */
Test(races, fork_while_opening_sockets)
{
	struct dl_result r;
	int races = run_tsan(&r, "dlclient forksock",
			     DL_V(tsan_path("helpers/dlclient"), "forksock",
				  "--n", "40"),
			     "DEADLINE_CONNECT_TIMEOUT=1s", NULL, 60000);

	dl_assert_run(&r, r.exited && r.code == 0 &&
				  dl_line(r.out, "FORKSOCK forks=40 "),
		      "dlclient forksock under the TSan shim did not finish");
	cr_assert_eq(races, 0, "data races in the shim (see the log above)");
	dl_result_free(&r);
}

Test(races, stress_scaled_down)
{
	struct dl_server *echo = dl_stallsrv("echo", NULL);
	struct dl_server *silent = dl_stallsrv("silent", NULL);
	struct dl_server *silent2 = dl_stallsrv("silent", "--addr", "127.0.0.2",
						NULL);
	struct dl_server *http = dl_stallsrv("http", NULL);
	char conf[1024], confenv[PATH_MAX + 32];
	struct dl_result r;

	dl_fmt(conf, sizeof(conf),
	       "rules = (\n"
	       "  { cidr = \"127.0.0.1\"; port = %d; request_timeout = \"300ms\"; },\n"
	       "  { cidr = \"127.0.0.2/32\"; first_byte_timeout = \"400ms\"; },\n"
	       "  { port = %d; first_byte_timeout = \"500ms\"; },\n"
	       "  { port = %d; idle_timeout = \"3s\"; }\n"
	       ");\n",
	       silent->port, http->port, echo->port);
	rw_write(rw_tmp("stress.conf"), conf);
	dl_fmt(confenv, sizeof(confenv), "DEADLINE_CONFIG=%s",
	       rw_tmp("stress.conf"));
	int races = run_tsan(&r, "stress",
			     DL_V(tsan_path("helpers/stress"), "--echo",
				  echo->port_s, "--silent", silent->port_s,
				  "--silent2", silent2->port_s, "--http",
				  http->port_s, "--threads", "16", "--conns",
				  "400", "--forks", "4", "--slack", "2000",
				  "--watchdog", "100"),
			     confenv, NULL, 120000);

	rw_note("stress under TSan (its own checks are the stress suite's):\n%s",
		rw_line_with(r.out, "STRESS "));
	cr_assert_eq(races, 0, "data races in the shim (see the log above)");
	dl_result_free(&r);
}
