/* rw_runtimes.h - language runtimes as clients in the real-world checks
 * (test_java.c, test_pools.c): Java compiled once per source change, the
 * python3 that has `requests`, node, the keep-alive pool server, and the
 * checks every deadline test makes on the shim's log lines.
 */
#ifndef DL_RW_RUNTIMES_H
#define DL_RW_RUNTIMES_H

#include "rw.h"

#include <ctype.h>
#include <dirent.h>

/* How late an expiry may be logged, or a client may report it, on a loaded
 * 2-core machine: not a speed check, a bound that catches a wait nothing
 * cut (the JDK's own 3 s selector timeout, a pool reaped much later). */
static DL_UNUSED long rr_late_ms(void)
{
	return dl_slack() > 400 ? dl_slack() : 400;
}

/* ------------------------------------------------------------------ */
/* Java                                                                */
/* ------------------------------------------------------------------ */

/* The classpath holding the .java files of tests/realworld/java compiled, or NULL
 * (after cr_skip_test) when java or javac is missing.  The classes live in
 * <build>/realworld-java/<stamp>, stamp = newest mtime and total size of
 * the sources: compiled into a temp dir and renamed into place, so tests
 * running side by side never see half a compile. */
static DL_UNUSED const char *rr_java_classes(void)
{
	static char dir[PATH_MAX];
	const char *src = rw_src("tests/realworld/java");
	char top[PATH_MAX], tmp[PATH_MAX];
	const char *argv[32];
	long long newest = 0, size = 0;
	struct dirent *e;
	struct stat st;
	DIR *d;
	int n = 0;

	if (!rw_have("java") || !rw_have("javac")) {
		cr_skip_test("java/javac are not installed "
			     "(Debian: default-jdk-headless)");
		return NULL;
	}
	argv[n++] = "javac";
	argv[n++] = "-d";
	argv[n++] = tmp;
	d = opendir(src);
	cr_assert(d, "opendir %s: %s", src, strerror(errno));
	while ((e = readdir(d)) && n < 30) {
		size_t l = strlen(e->d_name);

		if (l < 6 || strcmp(e->d_name + l - 5, ".java"))
			continue;
		argv[n++] = dl_str("%s/%s", src, e->d_name);
		cr_assert(stat(argv[n - 1], &st) == 0, "stat %s", argv[n - 1]);
		if ((long long)st.st_mtime > newest)
			newest = (long long)st.st_mtime;
		size += (long long)st.st_size;
	}
	closedir(d);
	argv[n] = NULL;
	dl_fmt(top, sizeof(top), "%s/realworld-java", dl_build());
	dl_fmt(dir, sizeof(dir), "%s/%lld-%lld", top, newest, size);
	if (stat(dir, &st) == 0)
		return dir;
	if (mkdir(top, 0755) < 0)
		cr_assert(errno == EEXIST, "mkdir %s: %s", top, strerror(errno));
	dl_fmt(tmp, sizeof(tmp), "%s/tmp.XXXXXX", top);
	cr_assert(mkdtemp(tmp), "mkdtemp: %s", strerror(errno));
	free(rw_must(argv, NULL, 120000));
	if (rename(tmp, dir) < 0) {
		/* Another test compiled the same sources first. */
		cr_assert(errno == EEXIST || errno == ENOTEMPTY,
			  "rename %s: %s", tmp, strerror(errno));
		free(rw_must(DL_V("rm", "-rf", tmp), NULL, 10000));
	}
	return dir;
}

/* ------------------------------------------------------------------ */
/* python3 with requests, node                                         */
/* ------------------------------------------------------------------ */

/* Debian's /usr/bin/python3, else python3 on PATH: the first that can
 * import requests; NULL (after cr_skip_test) when none can. */
static DL_UNUSED const char *rr_python_requests(void)
{
	static const char *const cands[] = { "/usr/bin/python3", "python3" };

	for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++) {
		struct dl_result r;
		int ok;

		if (!rw_have(cands[i]))
			continue;
		dl_run(&r, DL_V(cands[i], "-c", "import requests"), NULL, 0,
		       30000);
		ok = r.exited && r.code == 0;
		dl_result_free(&r);
		if (ok)
			return cands[i];
	}
	cr_skip_test("no python3 can import requests "
		     "(Debian: python3-requests)");
	return NULL;
}

/* Any python3 (the pool server needs only the standard library). */
static DL_UNUSED const char *rr_python(void)
{
	return rw_have("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}

static DL_UNUSED void rr_need_node(void)
{
	if (!rw_have("node"))
		cr_skip_test("node is not installed (Debian: nodejs)");
}

/* ------------------------------------------------------------------ */
/* The keep-alive pool server (tests/realworld/pool/poolsrv.py)        */
/* ------------------------------------------------------------------ */

/* Start poolsrv.py MODE (length, chunked, stall); not under the shim. */
static DL_UNUSED struct dl_server *rr_poolsrv(const char *mode)
{
	return rw_server(DL_V(rr_python(),
			      rw_src("tests/realworld/pool/poolsrv.py"), mode,
			      "--lifetime", "60"),
			 NULL, 0, NULL, "PORT ", 10000);
}

/* How many connections the server has accepted so far (it reports them
 * at once; settle_ms lets late lines in). */
static DL_UNUSED int rr_accepts(struct dl_server *s, long settle_ms)
{
	return dl_count_lines(dl_server_output(s, settle_ms), "ACCEPT ");
}

/* ------------------------------------------------------------------ */
/* Servers that stall one phase, and the deadline for it               */
/* ------------------------------------------------------------------ */

/* A stallsrv that stalls the given phase: never accepts (connect: the
 * accept queue is full), accepts and never answers (first_byte), or
 * sends headers with Content-Length: 10 and then one body byte every
 * 30 s (idle, request: a stall mid-body). */
static DL_UNUSED struct dl_server *rr_stalling_server(const char *phase)
{
	if (!strcmp(phase, "connect"))
		return dl_stallsrv("backlog", NULL);
	if (!strcmp(phase, "first_byte"))
		return dl_stallsrv("silent", NULL);
	return dl_stallsrv("drip", "--count", "10", "--ms", "30000", NULL);
}

/* "DEADLINE_<PHASE>_TIMEOUT=<ms>ms" (static buffer). */
static DL_UNUSED const char *rr_deadline_env(const char *phase, long ms)
{
	static char buf[64];
	char up[16];
	size_t i;

	for (i = 0; phase[i] && i < sizeof(up) - 1; i++)
		up[i] = (char)toupper((unsigned char)phase[i]);
	up[i] = '\0';
	dl_fmt(buf, sizeof(buf), "DEADLINE_%s_TIMEOUT=%ldms", up, ms);
	return buf;
}

/* ------------------------------------------------------------------ */
/* The shim's deadline lines                                           */
/* ------------------------------------------------------------------ */

/* Check every "event=deadline" line of the run's stderr: it names phase,
 * and fired at or after limit_ms, at most rr_late_ms() late.  Returns
 * how many there were (the caller says how many it expects). */
static DL_UNUSED int rr_check_expiries(struct dl_result *r, const char *phase,
				       long limit_ms)
{
	char want[64];
	int n = 0;

	dl_fmt(want, sizeof(want), "phase=%s", phase);
	for (const char *l = r->err; (l = strstr(l, "event=deadline ")); l++) {
		const char *line = rw_line_with(l, "event=deadline ");
		long ms = dl_field(line, "elapsed_ms=");

		n++;
		dl_assert_run(r, dl_has_tok(line, want),
			      "expiry %d does not name %s: %s", n, want, line);
		dl_assert_run(r, ms >= limit_ms && ms <= limit_ms + rr_late_ms(),
			      "expiry %d after %ld ms, expected [%ld, %ld]", n,
			      ms, limit_ms, limit_ms + rr_late_ms());
	}
	return n;
}

#endif
