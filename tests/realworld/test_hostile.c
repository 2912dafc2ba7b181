/* test_hostile.c - the shim in a hostile environment (build/helpers/hostile).
 *
 * Tiny and huge RLIMIT_NOFILE, posix_spawn and vfork+exec children that use
 * sockets under the inherited shim, a program that closes every fd like
 * ssh (close_range, closefrom) and carries on, and two shim bugs found by
 * the stress test, reduced to deterministic programs (orphanreuse,
 * forkstale).  Calls before initialisation and from another library's
 * constructor are covered by the integration tests (core suite).
 * The shim must never turn a working program into a crashing one: every
 * run must end by itself, without a signal.
 */
#include "rw.h"

RW_SUITE(hostile, 60);

#define LIMIT "500"

/* Run "hostile CMD ECHO SILENT --limit 500" under the shim; prefix (e.g.
 * prlimit) may be NULL.  port_a replaces the echo port when nonzero. */
static void hostile(struct dl_result *r, const char *cmd, const char *prefix,
		    const char *env, int port_a)
{
	struct dl_server *echo = port_a ? NULL : dl_stallsrv("echo", NULL);
	struct dl_server *silent = dl_stallsrv("silent", NULL);
	char a[16];
	const char *argv[16];
	int n = 0;

	snprintf(a, sizeof(a), "%d", port_a ? port_a : echo->port);
	if (prefix) {
		argv[n++] = "prlimit";
		argv[n++] = prefix;
		argv[n++] = "--";
	}
	argv[n++] = dl_helper("hostile");
	argv[n++] = cmd;
	argv[n++] = a;
	argv[n++] = silent->port_s;
	argv[n++] = "--limit";
	argv[n++] = LIMIT;
	argv[n++] = "--slack";
	argv[n++] = "300";
	argv[n] = NULL;
	dl_run(r, argv, DL_V(env ? env : "DEADLINE_REQUEST_TIMEOUT=" LIMIT "ms"),
	       1, 30000);
	rw_note("hostile %s: exit %d sig %d in %ld ms\n%s", cmd, r->code, r->sig,
		r->ms, r->out);
	dl_assert_run(r, !r->signaled && !r->timed_out,
		      "hostile %s crashed or hung under the shim", cmd);
}

Test(hostile, rlimit_nofile_64)
{
	struct dl_result r;

	dl_require_shim();
	hostile(&r, "nofile", "--nofile=64:64", NULL, 0);
	dl_assert_run(&r, dl_line(r.out, "NOFILE soft=64 "),
		      "prlimit did not apply");
	dl_assert_ok(&r, "hostile nofile");
	dl_result_free(&r);
}

Test(hostile, rlimit_nofile_as_high_as_allowed)
{
	struct dl_result r;

	dl_require_shim();
	hostile(&r, "highfd", NULL, NULL, 0);
	dl_assert_ok(&r, "hostile highfd");
	dl_result_free(&r);
}

Test(hostile, posix_spawn_and_vfork_children)
{
	struct dl_result r;

	dl_require_shim();
	hostile(&r, "spawn", NULL, NULL, 0);
	dl_assert_ok(&r, "hostile spawn");
	/* Parent plus two children, each with one deadline of its own. */
	dl_assert_run(&r, rw_deadline_events(r.err) == 3,
		      "expected 3 deadline events (parent, posix_spawn child, "
		      "vfork child)");
	dl_result_free(&r);
}

Test(hostile, close_range_and_closefrom_like_ssh)
{
	struct dl_result r;

	dl_require_shim();
	hostile(&r, "closerange", NULL, NULL, 0);
	dl_assert_ok(&r, "hostile closerange");
	dl_assert_run(&r, dl_line(r.out, "CHECK exec-no-leaked-fds ok"),
		      "the exec'd lister did not run");
	dl_result_free(&r);
}

Test(hostile, close_under_blocked_read_then_number_reuse)
{
	struct dl_result r;

	dl_require_shim();
	hostile(&r, "orphanreuse", NULL, NULL, 0);
	dl_assert_ok(&r, "hostile orphanreuse");
	dl_result_free(&r);
}

Test(hostile, fork_child_keeps_parents_met_deadline)
{
	struct dl_server *http = dl_stallsrv("http", NULL);
	struct dl_result r;

	dl_require_shim();
	hostile(&r, "forkstale", NULL, "DEADLINE_FIRST_BYTE_TIMEOUT=" LIMIT "ms",
		http->port);
	dl_assert_ok(&r, "hostile forkstale");
	dl_result_free(&r);
}
