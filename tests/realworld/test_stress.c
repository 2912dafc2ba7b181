/* test_stress.c - 64 threads, thousands of connections, deadlines firing
 * everywhere, closes from other threads, dup/dup2, fork in the middle
 * (build/helpers/stress; see its header for the connection kinds).
 *
 * Four loopback servers with their own rules in one DEADLINE_CONFIG (by
 * port and by cidr: a silent server on 127.0.0.2).  Passes when the stress
 * program reports "STRESS OK": every connection ended as its kind says
 * (in particular every one that should time out did, with ETIMEDOUT, on
 * time), no fork child hung, no worker stuck (watchdog), no fd leaked.
 * Hard limit: 150 s.
 */
#include "rw.h"

RW_SUITE(stress, 200);

#define CONNS "12000"

static struct dl_server *server(const char *mode, const char *addr)
{
	return dl_server_startv("stallsrv",
				addr ? DL_V(mode, "--addr", addr, "--lifetime", "200")
				     : DL_V(mode, "--lifetime", "200"));
}

Test(stress, threads_fork_close_dup_mixed)
{
	struct dl_server *echo, *silent, *silent2, *http;
	char conf[1024], confenv[PATH_MAX + 32], logenv[PATH_MAX + 32];
	struct dl_result r;

	dl_require_shim();
	echo = server("echo", NULL);
	silent = server("silent", NULL);
	silent2 = server("silent", "127.0.0.2");
	http = server("http", NULL);
	dl_fmt(conf, sizeof(conf),
	       "defaults = { connect_timeout = \"2s\"; };\n"
	       "rules = (\n"
	       "  { name = \"silent\"; cidr = \"127.0.0.1\"; port = %d;"
	       " request_timeout = \"300ms\"; },\n"
	       "  { name = \"silent2\"; cidr = \"127.0.0.2/32\";"
	       " first_byte_timeout = \"400ms\"; },\n"
	       "  { name = \"http\"; port = %d; first_byte_timeout = \"500ms\"; },\n"
	       "  { name = \"echo\"; port = %d; idle_timeout = \"3s\"; }\n"
	       ");\n",
	       silent->port, http->port, echo->port);
	rw_write(rw_tmp("stress.conf"), conf);
	dl_fmt(confenv, sizeof(confenv), "DEADLINE_CONFIG=%s",
	       rw_tmp("stress.conf"));
	/* Thousands of deadline lines: to a file, counted below. */
	dl_fmt(logenv, sizeof(logenv), "DEADLINE_LOG=%s", rw_tmp("deadline.log"));

	dl_run(&r, DL_V(dl_helper("stress"), "--echo", echo->port_s, "--silent",
			silent->port_s, "--silent2", silent2->port_s, "--http",
			http->port_s, "--threads", "64", "--conns", CONNS,
			"--forks", "24", "--slack", "1000", "--watchdog", "120",
			"--seed", "42"),
	       DL_V(confenv, logenv), 1, 150000);
	/* The summary: everything but the per-connection FAIL lines (the
	 * first 40 of those are in the assertion message below). */
	char *sum = strdup(r.out), *w = sum;
	for (const char *p = r.out; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p + 1) : strlen(p);

		if (strncmp(p, "FAIL ", 5) && strncmp(p, "FDLEAK ", 7)) {
			memcpy(w, p, l);
			w += l;
		}
		p += l;
	}
	*w = '\0';
	char *log = rw_must(DL_V("cat", rw_tmp("deadline.log")), NULL, 10000);
	char *fails = dl_lines(r.out, "FAIL ");
	rw_note("stress: exit %d sig %d in %ld ms, %d deadline events logged\n%s",
		r.code, r.sig, r.ms, rw_deadline_events(log), sum);
	free(log);
	cr_assert(!r.timed_out, "stress hit the 150 s hard limit (deadlock?)\n%s",
		  r.out);
	cr_assert(!r.signaled, "stress crashed (signal %d)\n%s\n%s", r.sig,
		  sum, r.err);
	cr_assert(r.exited && r.code == 0 && dl_line(r.out, "STRESS OK"),
		  "stress failed:\n%s%s\nstderr:\n%.4000s", fails, sum, r.err);
	free(sum);
	free(fails);
	dl_result_free(&r);
}
