/* test_pools.c - keep-alive connection pools under the request deadline,
 * with real clients: node's http.Agent({keepAlive: true}), python
 * requests' Session (urllib3's pool), Java 17's HttpClient pool and
 * HttpURLConnection's keep-alive cache.
 *
 * The rule (docs/semantics.md): a finished exchange resting in a pool is
 * never torn down or logged as a request-deadline expiry; a server that
 * stalls in the middle of a response is still cut at the deadline.
 *
 *   pools/<client>_pool_<length|chunked>
 *       two GETs 1.5 s apart with a 1 s request deadline against a
 *       keep-alive server (tests/realworld/pool/poolsrv.py) answering with
 *       Content-Length or chunked encoding: both succeed, the second on
 *       the same connection (the server accepts exactly one; node says
 *       reusedSocket), and the shim logs no event=deadline.  The _length
 *       cases first check the premise natively: without the shim the
 *       client reuses the connection too.
 *   pools/<client>_stall_mid_body
 *       one GET against a server that sends the headers and 10 of 100
 *       body bytes, then nothing: the client fails at the request
 *       deadline, on time, with an error caused by ETIMEDOUT, and the
 *       server sees a reset.
 *   pools/node_agent_<phase>_deadline
 *       node's keep-alive agent under each of the four deadlines against
 *       a server that stalls that phase (as test_java.c does for Java).
 *
 * Java's pool cases use a configuration rule for the server's port
 * (request_timeout = 1s) and a warm-up GET to a second server no rule
 * matches: on a loaded machine the JVM's first exchange can spend a second
 * loading classes between connect and the response, which the request
 * deadline would rightly cut.  node and python use
 * DEADLINE_REQUEST_TIMEOUT=1s.
 *
 * Skips: no node (nodejs), no python3 that imports requests
 * (python3-requests), no java/javac (default-jdk-headless).
 *
 *   DL_BUILD=build build/tests/realworld --filter 'pools/[a-z]*' --verbose
 */
#include "rw_runtimes.h"

RW_SUITE(pools, 120);

#define LIMIT_MS 1000
#define GAP_MS "1500"

/* ------------------------------------------------------------------ */
/* Clients                                                             */
/* ------------------------------------------------------------------ */

/* Run client kind (node, python, java, urlconn) for count GETs of url,
 * gap_ms apart; warm: Java's warm-up URL or NULL. */
static void run_client(struct dl_result *r, const char *kind, const char *url,
		       const char *count, const char *gap_ms, const char *warm,
		       const char *const *env, int preload)
{
	const char *argv[12];
	int n = 0;

	if (!strcmp(kind, "node")) {
		argv[n++] = "node";
		argv[n++] = rw_src("tests/realworld/pool/agent.js");
	} else if (!strcmp(kind, "python")) {
		argv[n++] = rr_python_requests();
		argv[n++] = rw_src("tests/realworld/pool/session.py");
	} else {
		argv[n++] = "java";
		argv[n++] = "-cp";
		argv[n++] = rr_java_classes();
		argv[n++] = "DeadlineClient";
		argv[n++] = strcmp(kind, "java") ? "urlconn" : "httpclient";
	}
	argv[n++] = url;
	argv[n++] = count;
	argv[n++] = gap_ms;
	if (warm)
		argv[n++] = warm;
	argv[n] = NULL;
	dl_run(r, argv, env, preload, 60000);
}

/* Skip the test when the client's runtime is missing. */
static void need(const char *kind)
{
	if (!strcmp(kind, "node"))
		rr_need_node();
	else if (!strcmp(kind, "python"))
		rr_python_requests();
	else
		rr_java_classes();
}

/* The i-th (from 0) line of out starting with "STATUS " or "ERROR ". */
static const char *get_line(const char *out, int i)
{
	for (const char *p = out; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
		if ((!strncmp(p, "STATUS ", 7) || !strncmp(p, "ERROR ", 6)) &&
		    i-- == 0)
			return p;
	return NULL;
}

/* ------------------------------------------------------------------ */
/* A finished exchange resting in the pool                             */
/* ------------------------------------------------------------------ */

/* Two GETs GAP_MS apart against a fresh poolsrv MODE; returns the server.
 * shim: under the shim with the 1 s request deadline. */
static struct dl_server *two_gets(struct dl_result *r, const char *kind,
				  const char *mode, int shim)
{
	struct dl_server *s = rr_poolsrv(mode), *w;
	const char *warm = NULL, *env[4] = { NULL };
	char url[64], conf[256];

	dl_fmt(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
	if (shim && (!strcmp(kind, "java") || !strcmp(kind, "urlconn"))) {
		w = rr_poolsrv("length");
		warm = dl_str("http://127.0.0.1:%d/warm", w->port);
		dl_fmt(conf, sizeof(conf),
		       "rules = ( { name = \"pool\"; port = %d; "
		       "request_timeout = \"%dms\"; } );\n", s->port, LIMIT_MS);
		env[0] = dl_str("DEADLINE_CONFIG=%s",
				dl_write_file("pool.conf", conf));
	} else if (shim) {
		env[0] = rr_deadline_env("request", LIMIT_MS);
	}
	run_client(r, kind, url, "2", GAP_MS, warm, env, shim);
	return s;
}

/* Both GETs answered in full, on one connection, and (shim) nothing
 * logged. */
static void check_pooled(struct dl_result *r, struct dl_server *s,
			 const char *kind, int shim)
{
	const char *how = shim ? "under the shim" : "natively";
	const char *a = get_line(r->out, 0), *b = get_line(r->out, 1);
	int accepts = rr_accepts(s, 300);

	rw_note("%s pool %s: %d connection(s); %.*s | %.*s", kind, how,
		accepts, a ? (int)strcspn(a, "\n") : 0, a ? a : "",
		b ? (int)strcspn(b, "\n") : 0, b ? b : "");
	dl_assert_run(r, r->exited && r->code == 0 && dl_line(r->out, "DONE"),
		      "the %s client did not finish (%s)", kind, how);
	dl_assert_run(r, a && b && !strncmp(a, "STATUS 200 bytes=11 ", 20) &&
			  !strncmp(b, "STATUS 200 bytes=11 ", 20),
		      "both GETs should get the whole body (%s)", how);
	dl_assert_run(r, accepts == 1,
		      "the server accepted %d connections, expected 1: the "
		      "second GET did not reuse the pooled connection (%s)\n"
		      "server:\n%s", accepts, how, s->buf);
	dl_assert_run(r, dl_count_lines(s->buf, "REQUEST 1 2") == 1,
		      "the second request did not come on connection 1 (%s)",
		      how);
	if (!strcmp(kind, "node"))
		dl_assert_run(r, strstr(b, " reused=1 "),
			      "node did not reuse its socket (%s)", how);
	dl_assert_run(r, !strstr(r->err, "event=deadline"),
		      "a finished exchange resting in the pool was torn down "
		      "(%s)", how);
}

static void pool_case(const char *kind, const char *mode)
{
	struct dl_server *s;
	struct dl_result r;

	need(kind);
	dl_require_shim();
	if (!strcmp(mode, "length")) {
		/* The premise: the client keeps the connection natively. */
		s = two_gets(&r, kind, mode, 0);
		check_pooled(&r, s, kind, 0);
		dl_result_free(&r);
	}
	s = two_gets(&r, kind, mode, 1);
	check_pooled(&r, s, kind, 1);
	dl_result_free(&r);
}

Test(pools, node_pool_length)
{
	pool_case("node", "length");
}

Test(pools, node_pool_chunked)
{
	pool_case("node", "chunked");
}

Test(pools, python_pool_length)
{
	pool_case("python", "length");
}

Test(pools, python_pool_chunked)
{
	pool_case("python", "chunked");
}

Test(pools, java_pool_length)
{
	pool_case("java", "length");
}

Test(pools, java_pool_chunked)
{
	pool_case("java", "chunked");
}

Test(pools, urlconn_pool_length)
{
	pool_case("urlconn", "length");
}

/* ------------------------------------------------------------------ */
/* A response that stalls mid-body is still cut                        */
/* ------------------------------------------------------------------ */

/* What the client's error line must hold: a sign of ETIMEDOUT. */
static const char *timeout_sign(const char *kind)
{
	if (!strcmp(kind, "node"))
		return "ERROR ETIMEDOUT ";
	if (!strcmp(kind, "python"))
		return " errno=110 ";
	return "Connection timed out";
}

static void stall_case(const char *kind)
{
	struct dl_server *s;
	struct dl_result r;
	const char *err;
	char url[64], ln[128];
	long ms;
	int n;

	need(kind);
	dl_require_shim();
	s = rr_poolsrv("stall");
	dl_fmt(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
	run_client(&r, kind, url, "1", "0", NULL,
		   DL_V(rr_deadline_env("request", LIMIT_MS)), 1);
	err = get_line(r.out, 0);
	rw_note("%s, response stalled mid-body: %.*s", kind,
		err ? (int)strcspn(err, "\n") : 0, err ? err : "");
	dl_assert_run(&r, r.exited && r.code == 0 && dl_line(r.out, "DONE"),
		      "the %s client did not finish", kind);
	dl_assert_run(&r, err && !strncmp(err, "ERROR ", 6),
		      "the GET should fail: the body never completes");
	n = rr_check_expiries(&r, "request", LIMIT_MS);
	dl_assert_run(&r, n >= 1 && n <= 2,
		      "%d expiries logged, expected 1 (2 with a retry)", n);
	ms = dl_field(err, " ms=");
	dl_assert_run(&r, ms >= LIMIT_MS &&
			  ms <= n * (LIMIT_MS + rr_late_ms()) + 2500,
		      "the client failed after %ld ms (%d expiries of %d ms)",
		      ms, n, LIMIT_MS);
	dl_assert_run(&r, strstr(err, timeout_sign(kind)),
		      "expected '%s' in the error: ETIMEDOUT", timeout_sign(kind));
	cr_assert(dl_server_line(s, "END 1 ", 3000, ln, sizeof(ln)),
		  "the server saw no end of the connection:\n%s", s->buf);
	cr_assert(!strcmp(ln, "END 1 rst"), "server saw '%s', expected a reset",
		  ln);
	dl_result_free(&r);
}

Test(pools, node_stall_mid_body)
{
	stall_case("node");
}

Test(pools, python_stall_mid_body)
{
	stall_case("python");
}

Test(pools, java_stall_mid_body)
{
	stall_case("java");
}

Test(pools, urlconn_stall_mid_body)
{
	stall_case("urlconn");
}

/* ------------------------------------------------------------------ */
/* node's keep-alive agent under each deadline                         */
/* ------------------------------------------------------------------ */

static void node_deadline(const char *phase)
{
	struct dl_server *s;
	struct dl_result r;
	const char *err;
	char url[64];
	long ms;
	int n;

	rr_need_node();
	dl_require_shim();
	s = rr_stalling_server(phase);
	dl_fmt(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
	run_client(&r, "node", url, "1", "0", NULL,
		   DL_V(rr_deadline_env(phase, LIMIT_MS)), 1);
	err = get_line(r.out, 0);
	rw_note("node keep-alive agent, %s deadline: %.*s", phase,
		err ? (int)strcspn(err, "\n") : 0, err ? err : "");
	dl_assert_run(&r, r.exited && r.code == 0 && dl_line(r.out, "DONE"),
		      "the node client did not finish");
	dl_assert_run(&r, err && !strncmp(err, "ERROR ETIMEDOUT ", 16),
		      "node should fail with ETIMEDOUT");
	n = rr_check_expiries(&r, phase, LIMIT_MS);
	dl_assert_run(&r, n == 1, "%d expiries logged, expected 1", n);
	ms = dl_field(err, " ms=");
	dl_assert_run(&r, ms >= LIMIT_MS && ms <= LIMIT_MS + rr_late_ms() + 500,
		      "node failed after %ld ms (limit %d)", ms, LIMIT_MS);
	dl_result_free(&r);
}

Test(pools, node_agent_connect_deadline)
{
	node_deadline("connect");
}

Test(pools, node_agent_first_byte_deadline)
{
	node_deadline("first_byte");
}

Test(pools, node_agent_idle_deadline)
{
	node_deadline("idle");
}

Test(pools, node_agent_request_deadline)
{
	node_deadline("request");
}
