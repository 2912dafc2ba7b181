/* test_faults.c - fault injection on real programs.
 *
 * Every server here is started by the test, on 127.0.0.1 (or ::1), on a
 * port the kernel picks, and runs WITHOUT the shim: the faults apply to
 * the client only.
 *
 * 1. curl: a 300 ms first-byte latency (through `deadline --fault` and
 *    through LD_PRELOAD + DEADLINE_FAULTS) delays the answer by at least
 *    300 ms and the body arrives intact; a blackholed connection is ended
 *    by the request deadline at 1 s, a blackholed handshake by the connect
 *    deadline at 1 s, curl failing with its own timeout error.  The same
 *    handshake blackhole under a plain non-blocking connect + poll(-1)
 *    (dlclient rw --nonblock) must end at the deadline too.  (curl is
 *    skipped in ASan runs: it deadlocks at start-up with the ASan runtime
 *    preloaded, shim or not; see test_eventloop.c.)
 * 2. python3 (Debian's /usr/bin/python3; the one on PATH may be a pyenv
 *    shim): http.client and urllib.request fetch a 10 MB file from
 *    http.server with `slice = 7` on the client: same SHA-256 as the file,
 *    no recv() got more than 7 bytes, and the log has the slice event.
 *    haproxy, under the shim as its backend's client, forwards the same
 *    file from http.server to curl, faulted toward its backend (slices,
 *    spurious EAGAIN, bandwidth): the body arrives whole.  (haproxy takes
 *    a short read after the peer's hangup for the end of the stream.)
 * 3. Reproducibility: faultclient repro (200 connections, 20 threads)
 *    against echod with three p=0.3 fault groups (EIO, 5 ms latency, a
 *    reset after 60 bytes): two runs with one seed log the same set of
 *    (rule, conn, op, fault, host) and end their connections the same
 *    way; another seed gives another set.  Both with DEADLINE_SEED +
 *    DEADLINE_FAULTS and with `seed = N;` + a rule's faults list in a
 *    DEADLINE_CONFIG file; the seed and its source are logged.
 * 4. Isolation: one process talks to two echo servers, faults (latency,
 *    slice, EIO with p = 1) on one only: on ::1 matched by cidr, then on
 *    another port of 127.0.0.1 matched by port.  The other's (127.0.0.1)
 *    echoes are byte-identical to a native run's, its round trips no
 *    slower than native beyond noise, and no fault line names it.
 * 5. The `deadline --fault` shortcut: repeatable, --seed, --dry-run
 *    (logged with injected=false, nothing injected), and a bad spec stops
 *    with exit 125 and a "did you mean" before running the command.
 */
#include "rw.h"

RW_SUITE(faults, 120);

#define PY "/usr/bin/python3"
#define CURL(...) DL_V("curl", "-q", "-sS", "--noproxy", "*", __VA_ARGS__)

static const char small_body[] = "libdeadline fault injection: small body\n";
#define BIG_BYTES (10l << 20)

/* ------------------------------------------------------------------ */
/* Plumbing                                                            */
/* How late a program may end after a deadline (process start and exit
 * included), as in test_eventloop.c. */
static long f_slack(void)
{
	return dl_slack() > 100 ? dl_slack() : 100;
}

static void need_curl(void)
{
	dl_require_shim();
	if (!rw_have("curl"))
		cr_skip_test("curl is not installed");
	if (dl_asan_run())
		cr_skip_test("curl deadlocks in setlocale() with the ASan "
			     "runtime preloaded, shim or not");
}

/* "DEADLINE_LOG=<temp dir>/name", and the file's path in *path (both in
 * rotating buffers of their own). */
static const char *f_log_env(const char *name, const char **path)
{
	static char bufs[8][PATH_MAX + 16];
	static int next;
	char *e = bufs[next++ % 8];

	dl_fmt(e, PATH_MAX + 16, "DEADLINE_LOG=%s", rw_tmp(name));
	*path = e + strlen("DEADLINE_LOG=");
	return e;
}

/* How often needle occurs in text. */
static int f_count(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* The value of " key=" in the line at p (copied to buf), or NULL. */
static const char *f_val(const char *p, const char *key, char *buf,
			 size_t cap)
{
	const char *end = strchr(p, '\n'), *k;
	char pat[32];
	size_t n;

	snprintf(pat, sizeof(pat), " %s=", key);
	if (!end)
		end = p + strlen(p);
	k = strstr(p, pat);
	if (!k || k >= end)
		return NULL;
	k += strlen(pat);
	n = strcspn(k, " \n");
	if (n >= cap)
		n = cap - 1;
	memcpy(buf, k, n);
	buf[n] = '\0';
	return buf;
}

/* The number after key= in the first line of text starting with prefix
 * ("A ", "B ", "OUTCOMES "); -1 if absent. */
static long f_num(const char *text, const char *prefix, const char *key)
{
	const char *l = dl_line(text, prefix);
	char buf[64];

	return l && f_val(l, key, buf, sizeof(buf)) ? atol(buf) : -1;
}

static int f_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The "event=fault " lines of a log as a sorted set of
 * "rule conn where fault host" keys; *n = how many distinct.  where is
 * what the decision was keyed to: "dir@offset" for a per-call decision
 * on data (how many calls a response took may vary from run to run, the
 * offsets at which the program asks do not), "bytes@N" for the end of a
 * connection (a per-connection decision, at byte N), else the op number
 * (the connect attempt). */
static char **f_fault_set(const char *log, size_t *n)
{
	size_t cap = 64, k = 0;
	char **set = malloc(cap * sizeof(*set));

	cr_assert(set, "out of memory");
	for (const char *p = log; p && *p;) {
		const char *nl = strchr(p, '\n');
		const char *ev = strstr(p, "event=fault ");

		if (ev && (!nl || ev < nl)) {
			char rule[64], conn[32], op[64], fault[32], host[256];
			char dir[8], off[32], key[512];

			cr_assert(f_val(p, "rule", rule, sizeof(rule)) &&
				  f_val(p, "conn", conn, sizeof(conn)) &&
				  f_val(p, "op", op, sizeof(op)) &&
				  f_val(p, "fault", fault, sizeof(fault)) &&
				  f_val(p, "host", host, sizeof(host)),
				  "fault line without rule/conn/op/fault/host: "
				  "%.*s", (int)(nl ? nl - p : (long)strlen(p)),
				  p);
			if (f_val(p, "offset", off, sizeof(off)) &&
			    f_val(p, "dir", dir, sizeof(dir)))
				snprintf(op, sizeof(op), "%s@%s", dir, off);
			else if (f_val(p, "bytes", off, sizeof(off)))
				snprintf(op, sizeof(op), "bytes@%s", off);
			snprintf(key, sizeof(key), "%s %s %s %s %s", rule, conn,
				 op, fault, host);
			if (k == cap) {
				cap *= 2;
				set = realloc(set, cap * sizeof(*set));
				cr_assert(set, "out of memory");
			}
			set[k] = strdup(key);
			cr_assert(set[k], "out of memory");
			k++;
		}
		p = nl ? nl + 1 : NULL;
	}
	qsort(set, k, sizeof(*set), f_cmp);
	/* A set: drop repeats. */
	size_t out = 0;
	for (size_t i = 0; i < k; i++) {
		if (out && !strcmp(set[out - 1], set[i])) {
			free(set[i]);
			continue;
		}
		set[out++] = set[i];
	}
	*n = out;
	return set;
}

static void f_free_set(char **set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(set[i]);
	free(set);
}

/* 1 when the sets are equal; else 0 and the first difference in diff. */
static int f_same_set(char **a, size_t na, char **b, size_t nb, char *diff,
		      size_t cap)
{
	size_t i = 0, j = 0;

	while (i < na || j < nb) {
		int c = i == na ? 1 : j == nb ? -1 : strcmp(a[i], b[j]);

		if (!c) {
			i++;
			j++;
			continue;
		}
		snprintf(diff, cap, "only in the %s run: '%s'",
			 c < 0 ? "first" : "second", c < 0 ? a[i] : b[j]);
		return 0;
	}
	snprintf(diff, cap, "(none)");
	return 1;
}

/* Keys of the set whose fault is `fault`. */
static size_t f_kind(char **set, size_t n, const char *fault)
{
	char pat[40];
	size_t k = 0;

	snprintf(pat, sizeof(pat), " %s ", fault);
	for (size_t i = 0; i < n; i++)
		k += strstr(set[i], pat) != NULL;
	return k;
}

/* The "event=fault " lines of a log that name addr and port. */
static int f_faults_naming(const char *log, const char *addr, int port)
{
	int n = 0;

	for (const char *p = log; p && *p;) {
		const char *nl = strchr(p, '\n');
		const char *ev = strstr(p, "event=fault ");
		char a[64], pt[16];

		if (ev && (!nl || ev < nl) && f_val(p, "addr", a, sizeof(a)) &&
		    f_val(p, "port", pt, sizeof(pt)) && !strcmp(a, addr) &&
		    atoi(pt) == port)
			n++;
		p = nl ? nl + 1 : NULL;
	}
	return n;
}

/* python3's http.server, not under the shim, serving a temp dir with
 * small.txt and, when big, big.bin (10 MiB of the seed-77 stream; its
 * SHA-256 in sha). */
static struct dl_server *f_http(int big, char *sha, size_t cap)
{
	const char *dir = rw_tmp("www");

	if (access(PY, X_OK) != 0)
		cr_skip_test("%s is not installed", PY);
	cr_assert(mkdir(dir, 0755) == 0, "mkdir %s: %s", dir, strerror(errno));
	rw_write(rw_tmp("www/small.txt"), small_body);
	if (big) {
		static unsigned char chunk[1 << 16];
		const char *path = rw_tmp("www/big.bin");
		FILE *f = fopen(path, "w");
		char *out;

		cr_assert(f, "open %s: %s", path, strerror(errno));
		for (long off = 0; off < BIG_BYTES; off += (long)sizeof(chunk)) {
			hp_pattern_fill(77, (uint64_t)off, chunk, sizeof(chunk));
			cr_assert(fwrite(chunk, 1, sizeof(chunk), f) ==
					  sizeof(chunk), "write %s", path);
		}
		cr_assert(fclose(f) == 0, "close %s", path);
		out = rw_must(DL_V("sha256sum", path), NULL, 30000);
		dl_fmt(sha, cap, "%.64s", out);
		free(out);
	}
	return rw_server(DL_V(PY, "-u", "-m", "http.server", "0", "--bind",
			      "127.0.0.1", "--directory", dir),
			 DL_V("LC_ALL=C"), 0, NULL, " port ", 15000);
}

static const char *f_url(const struct dl_server *s, const char *file)
{
	static char bufs[4][128];
	static int next;
	char *p = bufs[next++ % 4];

	dl_fmt(p, 128, "http://127.0.0.1:%d/%s", s->port, file);
	return p;
}

/* echod (not under the shim) on addr, its output to a file (a pipe would
 * fill up: it prints a line per client); returns its port. */
static int f_echod(const char *addr, const char *name)
{
	char path[PATH_MAX];
	pid_t pid;
	int fd;

	dl_fmt(path, sizeof(path), "%s/%s.out", dl_tmpdir(), name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
	pid = dl_spawn(DL_V(dl_helper("echod"), "--addr", addr, "--lifetime",
			    "115"),
		       NULL, 0, NULL, fd, -1);
	close(fd);
	rw_adopt(pid);
	for (int i = 0; i < 250; i++) {
		char *text = dl_read_file(path);
		const char *l = dl_line(text, "PORT ");
		int port = l ? atoi(l + 5) : 0;

		free(text);
		if (port > 0)
			return port;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			break;
		hp_sleep_ms(20);
	}
	cr_assert(0, "echod on %s did not start", addr);
	return -1;
}

/* ================================================================== */
/* 1. curl: latency, blackholes ended by deadlines                     */
/* ================================================================== */

static void assert_latency_logged(const char *log, const char *what)
{
	const char *l = rw_line_with(log, "event=fault ");

	cr_assert(strstr(l, "injected=true") && strstr(l, "fault=latency") &&
			  strstr(l, " host=127.0.0.1 ") &&
			  strstr(l, "delay_ms=300"),
		  "%s: the log should have the 300 ms latency event:\n%s",
		  what, log);
}

Test(faults, curl_first_byte_latency_300ms)
{
	struct dl_result n, d, e;
	struct dl_server *s;
	const char *log_d, *log_e, *env_e;
	char *text;

	need_curl();
	s = f_http(0, NULL, 0);
	dl_run(&n, CURL(f_url(s, "small.txt")), NULL, 0, 10000);
	dl_assert_ok(&n, "curl without the shim");
	dl_assert_run(&n, !strcmp(n.out, small_body), "native body differs");

	/* deadline --fault */
	log_d = rw_tmp("deadline.log");
	dl_deadline(&d, NULL, 10000, "--fault", "host=127.0.0.1 latency=300ms",
		   "--log", log_d, "--", "curl", "-q", "-sS", "--noproxy", "*",
		   f_url(s, "small.txt"), NULL);
	dl_assert_ok(&d, "deadline --fault ... -- curl");
	dl_assert_run(&d, !strcmp(d.out, small_body), "body differs");
	dl_assert_run(&d, d.ms >= 300 && d.ms <= 300 + n.ms + 1000,
		      "curl took %ld ms (native %ld ms): want >= 300 ms", d.ms,
		      n.ms);
	text = dl_read_file(log_d);
	assert_latency_logged(text, "deadline --fault");
	free(text);

	/* LD_PRELOAD + DEADLINE_FAULTS */
	env_e = f_log_env("env.log", &log_e);
	dl_run(&e, CURL(f_url(s, "small.txt")),
	       DL_V("DEADLINE_FAULTS=host=127.0.0.1 latency=300ms", env_e), 1,
	       10000);
	dl_assert_ok(&e, "curl with DEADLINE_FAULTS");
	dl_assert_run(&e, !strcmp(e.out, small_body), "body differs");
	dl_assert_run(&e, e.ms >= 300 && e.ms <= 300 + n.ms + 1000,
		      "curl took %ld ms (native %ld ms): want >= 300 ms", e.ms,
		      n.ms);
	text = dl_read_file(log_e);
	assert_latency_logged(text, "DEADLINE_FAULTS");
	free(text);
	rw_note("curl, 300 ms first-byte latency: native %ld ms, deadline "
		"--fault %ld ms, DEADLINE_FAULTS %ld ms", n.ms, d.ms, e.ms);
	dl_result_free(&n);
	dl_result_free(&d);
	dl_result_free(&e);
}

static int curl_timeout_error(const struct dl_result *r)
{
	return r->exited && (r->code == 28 || r->code == 56) &&
	       strstr(r->err, "timed out");
}

static int curl_connect_error(const struct dl_result *r)
{
	return r->exited && (r->code == 28 || r->code == 7);
}

/* curl under the shim with `fault` for 127.0.0.1 and deadline (env) at
 * 1 s: it fails as ok() says after [1000, 1000 + slack] ms, the log has
 * the fault and the deadline of that phase. */
static void curl_blackholed(const char *fault, const char *deadline,
			    const char *phase,
			    int (*ok)(const struct dl_result *))
{
	struct dl_server *s;
	struct dl_result r;
	const char *log, *env;
	char spec[128], want[64];
	char *text;

	need_curl();
	s = f_http(0, NULL, 0);
	dl_fmt(spec, sizeof(spec), "DEADLINE_FAULTS=host=127.0.0.1 %s", fault);
	env = f_log_env("shim.log", &log);
	dl_run(&r, CURL("-o", "/dev/null", f_url(s, "small.txt")),
	       DL_V(spec, deadline, env), 1, 10000);
	text = dl_read_file(log);
	rw_note("curl, %s, %s: exit %d after %ld ms", fault, deadline, r.code,
		r.ms);
	dl_assert_run(&r, ok(&r), "curl should fail with its own error "
				  "(log:\n%s)", text);
	dl_assert_run(&r, r.ms >= 1000 && r.ms <= 1000 + f_slack(),
		      "curl ended after %ld ms, outside [1000, %ld] (log:\n%s)",
		      r.ms, 1000 + f_slack(), text);
	cr_assert(strstr(text, "event=fault injected=true fault=blackhole"),
		  "no blackhole event in the log:\n%s", text);
	dl_fmt(want, sizeof(want), "phase=%s limit_ms=1000", phase);
	cr_assert(strstr(rw_line_with(text, "event=deadline"), want),
		  "the log should have a %s deadline event:\n%s", phase, text);
	free(text);
	dl_result_free(&r);
}

Test(faults, curl_blackhole_ended_by_request_deadline)
{
	curl_blackholed("blackhole", "DEADLINE_REQUEST_TIMEOUT=1s", "request",
			curl_timeout_error);
}

Test(faults, curl_blackholed_handshake_ended_by_connect_deadline)
{
	curl_blackholed("blackhole=connect", "DEADLINE_CONNECT_TIMEOUT=1s",
			"connect", curl_connect_error);
}

/* The same handshake blackhole, without curl: a blocking connect, then a
 * curl-style one (O_NONBLOCK, poll(POLLOUT, -1), SO_ERROR).  Both must
 * fail with ETIMEDOUT at the 300 ms connect deadline. */
Test(faults, blackholed_handshake_nonblocking_poll)
{
	static const struct {
		const char *what, *flag;
	} modes[] = {
		{ "blocking connect", NULL },
		{ "non-blocking connect + poll(-1)", "--nonblock" },
	};
	char port_s[16];

	dl_require_shim();
	snprintf(port_s, sizeof(port_s), "%d", f_echod("127.0.0.1", "echod"));
	for (int i = 0; i < 2; i++) {
		struct dl_result r;

		dl_client(&r, 1, 3000,
			  DL_V("DEADLINE_FAULTS=host=127.0.0.1 blackhole=connect",
			       "DEADLINE_CONNECT_TIMEOUT=300ms"),
			  "rw", "127.0.0.1", port_s, "--send", "x\\n",
			  "--expect", "ETIMEDOUT", modes[i].flag, NULL);
		rw_note("blackhole=connect, %s: %s after %ld ms", modes[i].what,
			r.timed_out ? "still waiting, killed" : "ended", r.ms);
		dl_assert_run(&r, !r.timed_out && dl_line(r.out, "ERR ETIMEDOUT "),
			      "%s: should fail with ETIMEDOUT at the 300 ms "
			      "connect deadline", modes[i].what);
		/* The client's own time to the failure (its ERR line), not
		 * the process's: start-up and exit are not the deadline's. */
		long ms = dl_err_ms(dl_line(r.out, "ERR "));

		dl_assert_run(&r, r.ms >= 300 && ms >= 300 &&
					  ms <= 300 + f_slack(),
			      "%s: failed after %ld ms (the process: %ld), "
			      "outside [300, %ld]",
			      modes[i].what, ms, r.ms, 300 + f_slack());
		dl_result_free(&r);
	}
}

/* ================================================================== */
/* 2. python3: 10 MB through 7-byte slices                             */
/* ================================================================== */

/* fetch.py MODE PORT PATH: GET with http.client or urllib.request (no
 * proxy), counting the recv_into() calls of the socket module (what
 * both read the body with) and the most bytes one of them got. */
static const char fetch_py[] =
	"import hashlib, http.client, socket, sys, time, urllib.request\n"
	"mode, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]\n"
	"calls = most = 0\n"
	"real_recv_into = socket.socket.recv_into\n"
	"def recv_into(self, buf, nbytes=0, flags=0):\n"
	"    global calls, most\n"
	"    n = real_recv_into(self, buf, nbytes, flags)\n"
	"    calls += 1\n"
	"    most = max(most, n)\n"
	"    return n\n"
	"socket.socket.recv_into = recv_into\n"
	"t0 = time.monotonic()\n"
	"if mode == 'http.client':\n"
	"    c = http.client.HTTPConnection('127.0.0.1', port, timeout=60)\n"
	"    c.request('GET', path)\n"
	"    r = c.getresponse()\n"
	"    status, body = r.status, r.read()\n"
	"    c.close()\n"
	"else:\n"
	"    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))\n"
	"    with opener.open('http://127.0.0.1:%d%s' % (port, path),\n"
	"                     timeout=60) as r:\n"
	"        status, body = r.status, r.read()\n"
	"ms = int((time.monotonic() - t0) * 1000)\n"
	"print('FETCH status=%d bytes=%d sha256=%s ms=%d recv_calls=%d '\n"
	"      'max_recv=%d' % (status, len(body), hashlib.sha256(body).hexdigest(),\n"
	"                       ms, calls, most))\n";

static void py_fetch(struct dl_result *r, const char *mode,
		     const struct dl_server *s, int preload,
		     const char *const *env)
{
	dl_run(r, DL_V(PY, rw_tmp("fetch.py"), mode, s->port_s, "/big.bin"),
	       env, preload, 90000);
	dl_assert_ok(r, mode);
}

Test(faults, python_fetches_10mb_through_7_byte_slices)
{
	static const char *const modes[] = { "http.client", "urllib" };
	struct dl_server *s;
	struct dl_result n;
	char sha[80], want[128];

	dl_require_shim();
	s = f_http(1, sha, sizeof(sha));
	rw_write(rw_tmp("fetch.py"), fetch_py);
	dl_fmt(want, sizeof(want), "FETCH status=200 bytes=%ld sha256=%s ",
	       BIG_BYTES, sha);

	/* Native: the same hash, and recv_into() gets more than 7 bytes (so
	 * that the counting below can tell). */
	py_fetch(&n, "http.client", s, 0, DL_V("LC_ALL=C"));
	dl_assert_run(&n, !strncmp(n.out, want, strlen(want)),
		      "native fetch: want '%s'", want);
	dl_assert_run(&n, f_num(n.out, "FETCH ", "max_recv") > 7,
		      "native fetch: recv_into() never got more than 7 bytes");

	for (int i = 0; i < 2; i++) {
		struct dl_result r;
		const char *log, *env = f_log_env(modes[i], &log);
		char *text;

		py_fetch(&r, modes[i], s, 1,
			 DL_V("DEADLINE_FAULTS=host=127.0.0.1 direction=outbound "
			      "slice=7", env, "LC_ALL=C"));
		text = dl_read_file(log);
		rw_note("python3 %s, 10 MiB with slice=7: %s (native: %ld ms "
			"in-script)", modes[i], rw_line_with(r.out, "FETCH "),
			f_num(n.out, "FETCH ", "ms"));
		dl_assert_run(&r, !strncmp(r.out, want, strlen(want)),
			      "%s: want '%s'", modes[i], want);
		dl_assert_run(&r, f_num(r.out, "FETCH ", "max_recv") <= 7 &&
				  f_num(r.out, "FETCH ", "recv_calls") >=
					  BIG_BYTES / 7,
			      "%s: the reads were not sliced to 7 bytes",
			      modes[i]);
		cr_assert(strstr(text, "event=fault injected=true fault=slice") &&
				  strstr(rw_line_with(text, "fault=slice"),
					 " host=127.0.0.1 ") &&
				  strstr(rw_line_with(text, "fault=slice"),
					 "max_bytes=7"),
			  "%s: no slice event in the log:\n%s", modes[i], text);
		free(text);
		dl_result_free(&r);
	}
	dl_result_free(&n);
}

/* haproxy, under the shim, between curl and http.server: an epoll daemon
 * that takes a short read after the peer's hangup for the end of the
 * stream, faulted toward its backend (which sends the body, then closes).
 * The body must arrive whole through each of these. */
static const char *const hap_specs[] = {
	"slice=100",
	"slice=1000 spurious=0.2",
	"bandwidth=40MB",
};

/* Something accepts connections on 127.0.0.1:port. */
static int f_listening(int port)
{
	int fd = rw_try_connect(port);

	if (fd >= 0)
		close(fd);
	return fd >= 0;
}

static void haproxy_through(const char *hap, const struct dl_server *s,
			    const char *spec, const char *sha)
{
	char cfg[1024], fault[160], url[96], tag[32];
	const char *log, *env;
	struct dl_result r;
	char *out, *text;
	int port = dl_free_port();
	pid_t pid;

	dl_fmt(tag, sizeof(tag), "haproxy%d", port);
	env = f_log_env(tag, &log);
	dl_fmt(cfg, sizeof(cfg),
	       "global\n  maxconn 64\n"
	       "defaults\n  mode http\n  timeout connect 5s\n"
	       "  timeout client 60s\n  timeout server 60s\n"
	       "frontend f\n  bind 127.0.0.1:%d\n  default_backend b\n"
	       "backend b\n  server s1 127.0.0.1:%d\n", port, s->port);
	rw_write(rw_tmp("haproxy.cfg"), cfg);
	dl_fmt(fault, sizeof(fault),
	       "DEADLINE_FAULTS=host=127.0.0.1 port=%d %s", s->port, spec);
	pid = dl_spawn(DL_V(hap, "-f", rw_tmp("haproxy.cfg"), "-db"),
		       DL_V(fault, env), 1, NULL, -1, -1);
	for (int i = 0; i < 100 && !f_listening(port); i++)
		hp_sleep_ms(50);
	if (!f_listening(port))
		kill(pid, SIGKILL);
	cr_assert(f_listening(port), "haproxy did not listen on %d", port);

	dl_fmt(url, sizeof(url), "http://127.0.0.1:%d/big.bin", port);
	dl_run(&r, CURL("-o", rw_tmp("via-haproxy.bin"), "-w",
			"%{http_code} %{size_download} %{time_total}\\n", url),
	       NULL, 0, 90000);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	out = rw_must(DL_V("sha256sum", rw_tmp("via-haproxy.bin")), NULL,
		      30000);
	text = dl_read_file(log);
	rw_note("haproxy, backend %s: curl %.*s", spec,
		(int)strcspn(r.out, "\n"), r.out);
	dl_assert_run(&r, r.exited && r.code == 0 && !strncmp(r.out, "200 ", 4),
		      "%s: curl through haproxy failed", spec);
	dl_assert_run(&r, !strncmp(out, sha, 64),
		      "%s: the body through haproxy differs from the file "
		      "(%.64s, want %.64s; curl says %s)", spec, out, sha,
		      r.out);
	cr_assert(f_faults_naming(text, "127.0.0.1", s->port) > 0,
		  "%s: no fault event in haproxy's log:\n%s", spec, text);
	free(text);
	free(out);
	dl_result_free(&r);
}

Test(faults, haproxy_forwards_whole_body_from_faulted_backend)
{
	const char *hap = rw_have("haproxy") ? "haproxy" : "/usr/sbin/haproxy";
	struct dl_server *s;
	char sha[80];

	need_curl();
	if (!rw_have(hap))
		cr_skip_test("haproxy is not installed");
	s = f_http(1, sha, sizeof(sha));
	for (size_t i = 0; i < sizeof(hap_specs) / sizeof(*hap_specs); i++)
		haproxy_through(hap, s, hap_specs[i], sha);
}

/* ================================================================== */
/* 3. The same seed, the same faults                                   */
/* ================================================================== */

static void repro_run(struct dl_result *r, int port, const char *const *env)
{
	char port_s[16];

	snprintf(port_s, sizeof(port_s), "%d", port);
	dl_run(r, DL_V(dl_helper("faultclient"), "repro", "127.0.0.1", port_s,
		       "--conns", "200", "--threads", "20", "--rounds", "6",
		       "--size", "24"),
	       env, 1, 60000);
	dl_assert_ok(r, "faultclient repro");
	dl_assert_run(r, dl_line(r->out, "OUTCOMES conns=200 "),
		      "no OUTCOMES line");
}

struct repro {
	char **set;
	size_t n;
	long max_conn;
	char outcomes[512];
	char *log;
};

static void repro(struct repro *x, int port, const char *name,
		  const char *const *extra)
{
	const char *env[8], *log;
	struct dl_result r;
	int k = 0;

	env[k++] = f_log_env(name, &log);
	for (; extra && *extra; extra++)
		env[k++] = *extra;
	env[k] = NULL;
	repro_run(&r, port, env);
	x->log = dl_read_file(log);
	x->set = f_fault_set(x->log, &x->n);
	x->max_conn = 0;
	for (size_t i = 0; i < x->n; i++) {
		long c = atol(strchr(x->set[i], ' ') + 1);
		if (c > x->max_conn)
			x->max_conn = c;
	}
	dl_fmt(x->outcomes, sizeof(x->outcomes), "%s",
	       rw_line_with(r.out, "OUTCOMES "));
	rw_note("repro %s: %zu distinct faults (error %zu, latency %zu, "
		"reset %zu), conn <= %ld; %s", name, x->n,
		f_kind(x->set, x->n, "error"), f_kind(x->set, x->n, "latency"),
		f_kind(x->set, x->n, "reset"), x->max_conn, x->outcomes);
	cr_assert(f_kind(x->set, x->n, "error") && f_kind(x->set, x->n, "latency") &&
			  f_kind(x->set, x->n, "reset"),
		  "%s: want error, latency and reset faults; log:\n%s", name,
		  x->log);
	/* conn= numbers the connections of a (rule, host): 200 were made.
	 * A number taken per fault group instead of per connection would go
	 * higher, and depend on how the threads' connects interleave. */
	cr_assert(x->max_conn <= 200,
		  "%s: a fault names conn=%ld, but only 200 connections were "
		  "made", name, x->max_conn);
	dl_result_free(&r);
}

static void repro_free(struct repro *x)
{
	f_free_set(x->set, x->n);
	free(x->log);
}

static void assert_same(struct repro *a, struct repro *b, const char *what)
{
	char diff[600];

	cr_assert(f_same_set(a->set, a->n, b->set, b->n, diff, sizeof(diff)),
		  "%s: the fault sets differ (%zu vs %zu): %s", what, a->n,
		  b->n, diff);
	cr_assert_str_eq(a->outcomes, b->outcomes,
			 "%s: the connections ended differently", what);
}

Test(faults, same_seed_same_faults_200_threaded_connections)
{
	struct repro a, b, c, fa, fb;
	char specs[512], conf[1024], cfg_env[PATH_MAX + 32], diff[600];
	int port;

	dl_require_shim();
	port = f_echod("127.0.0.1", "echod");
	dl_fmt(specs, sizeof(specs),
	       "DEADLINE_FAULTS="
	       "cidr=127.0.0.1/32 port=%d error=EIO p=0.3;"
	       "cidr=127.0.0.1/32 port=%d latency=5ms p=0.3;"
	       "cidr=127.0.0.1/32 port=%d reset after_bytes=60 p=0.3",
	       port, port, port);

	/* DEADLINE_SEED + DEADLINE_FAULTS */
	repro(&a, port, "env-4242-a", DL_V(specs, "DEADLINE_SEED=4242"));
	repro(&b, port, "env-4242-b", DL_V(specs, "DEADLINE_SEED=4242"));
	repro(&c, port, "env-4243", DL_V(specs, "DEADLINE_SEED=4243"));
	cr_assert(strstr(a.log, "event=faults seed=4242 seed_from=env "),
		  "the seed should be logged at start:\n%.400s", a.log);
	cr_assert(strstr(c.log, "event=faults seed=4243 seed_from=env "),
		  "the seed should be logged at start:\n%.400s", c.log);
	assert_same(&a, &b, "DEADLINE_SEED=4242 twice");
	cr_assert(!f_same_set(a.set, a.n, c.set, c.n, diff, sizeof(diff)),
		  "seeds 4242 and 4243 gave the same %zu faults", a.n);

	/* `seed = N;` and a rule's faults list in a configuration file */
	dl_fmt(conf, sizeof(conf),
	       "seed = 4242;\n"
	       "rules = (\n"
	       "    { name = \"echo\"; cidr = \"127.0.0.1/32\"; port = %d;\n"
	       "      faults = (\n"
	       "        { error = \"EIO\"; probability = 0.3; },\n"
	       "        { latency = \"5ms\"; probability = 0.3; },\n"
	       "        { reset = true; after_bytes = 60; probability = 0.3; }\n"
	       "      ); }\n"
	       ");\n", port);
	rw_write(rw_tmp("faults.conf"), conf);
	dl_fmt(cfg_env, sizeof(cfg_env), "DEADLINE_CONFIG=%s",
	       rw_tmp("faults.conf"));
	repro(&fa, port, "conf-a", DL_V(cfg_env));
	repro(&fb, port, "conf-b", DL_V(cfg_env));
	cr_assert(strstr(fa.log, "event=faults seed=4242 seed_from=config "),
		  "the seed should be logged at start:\n%.400s", fa.log);
	cr_assert(strstr(fa.log, "rule=echo "), "faults should name the rule");
	assert_same(&fa, &fb, "seed = 4242 in the file, twice");

	repro_free(&a);
	repro_free(&b);
	repro_free(&c);
	repro_free(&fa);
	repro_free(&fb);
}

/* Threads that connect at once to a host three rules match: each
 * connection must hold the same number in all three (a number taken
 * rule by rule lets one connection be the 4th of one rule and the 5th
 * of another, and then which faults meet together varies from run to
 * run).  A `slice` group logs once per connection, at its first call,
 * with its fd: the three lines of one connection are the three of its
 * fd between two of the same rule. */
Test(faults, one_number_per_connection_in_every_rule)
{
	char specs[512], port_s[16];
	const char *env, *log;
	struct dl_result r;
	struct {
		long conn[3];
		int seen;
	} at[1024];
	int port, checked = 0;
	char *text;

	dl_require_shim();
	port = f_echod("127.0.0.1", "echod");
	snprintf(port_s, sizeof(port_s), "%d", port);
	dl_fmt(specs, sizeof(specs),
	       "DEADLINE_FAULTS=port=%d slice=1000;port=%d slice=1001;"
	       "port=%d slice=1002", port, port, port);
	env = f_log_env("numbers.log", &log);
	dl_run(&r, DL_V(dl_helper("faultclient"), "repro", "127.0.0.1", port_s,
			"--conns", "600", "--threads", "24", "--rounds", "1",
			"--size", "8"),
	       DL_V(specs, env), 1, 60000);
	dl_assert_ok(&r, "faultclient repro");
	memset(at, 0, sizeof(at));
	text = dl_read_file(log);
	for (const char *p = text; p && *p;) {
		const char *nl = strchr(p, '\n');
		char fd[16], rule[32], conn[32];

		if (strstr(p, "fault=slice ") &&
		    (!nl || strstr(p, "fault=slice ") < nl) &&
		    f_val(p, "fd", fd, sizeof(fd)) &&
		    f_val(p, "rule", rule, sizeof(rule)) &&
		    f_val(p, "conn", conn, sizeof(conn))) {
			int f = atoi(fd), k = atoi(rule + strlen("fault#")) - 1;

			cr_assert(f >= 0 && f < 1024 && k >= 0 && k < 3,
				  "unexpected line: %.*s",
				  (int)(nl ? nl - p : (long)strlen(p)), p);
			if (at[f].seen & 1 << k)
				at[f].seen = 0; /* the fd's next connection */
			at[f].seen |= 1 << k;
			at[f].conn[k] = atol(conn);
			if (at[f].seen == 7) {
				cr_assert(at[f].conn[0] == at[f].conn[1] &&
						  at[f].conn[1] == at[f].conn[2],
					  "one connection (fd %d) numbered %ld, "
					  "%ld and %ld by the three rules",
					  f, at[f].conn[0], at[f].conn[1],
					  at[f].conn[2]);
				checked++;
			}
		}
		p = nl ? nl + 1 : NULL;
	}
	rw_note("%d connections numbered alike by three rules", checked);
	cr_assert(checked == 600, "%d of 600 connections logged by all three "
		  "rules; log:\n%.2000s", checked, text);
	free(text);
	dl_result_free(&r);
}

/* ================================================================== */
/* 4. A rule for one host leaves the other alone                       */
/* ================================================================== */

/* faultclient pair against A (echod on 127.0.0.1) and B (echod on
 * b_addr), natively then under the shim with faults for B only: matched
 * by its address (cidr), or by_port. */
static void isolation(const char *b_addr, int by_port)
{
	struct dl_result n, r;
	char pa[16], pb[16], match[64], specs[512];
	const char *log, *env;
	int port_a, port_b;
	char *text;

	dl_require_shim();
	port_a = f_echod("127.0.0.1", "echod-a");
	port_b = f_echod(b_addr, "echod-b");
	snprintf(pa, sizeof(pa), "%d", port_a);
	snprintf(pb, sizeof(pb), "%d", port_b);
	if (by_port)
		dl_fmt(match, sizeof(match), "port=%d", port_b);
	else
		dl_fmt(match, sizeof(match), "cidr=%s/%d", b_addr,
		       strchr(b_addr, ':') ? 128 : 32);
	dl_fmt(specs, sizeof(specs),
	       "DEADLINE_FAULTS=%s latency=150ms; %s slice=7; "
	       "%s error=EIO p=1 after_bytes=64", match, match, match);
	env = f_log_env("shim.log", &log);

#define PAIR DL_V(dl_helper("faultclient"), "pair", "--a", "127.0.0.1",	\
		  "--aport", pa, "--b", b_addr, "--bport", pb, "--rounds",	\
		  "100", "--asize", "2000", "--bsize", "32")
	dl_run(&n, PAIR, NULL, 0, 30000);
	dl_assert_ok(&n, "faultclient pair without the shim");
	dl_run(&r, PAIR, DL_V(specs, env), 1, 30000);
#undef PAIR
	dl_assert_ok(&r, "faultclient pair under the shim");
	text = dl_read_file(log);
	rw_note("untouched host, native: %s", rw_line_with(n.out, "A "));
	rw_note("untouched host, shim:   %s", rw_line_with(r.out, "A "));
	rw_note("faulted host, shim:     %s", rw_line_with(r.out, "B "));

	/* The faults took effect on B: 150 ms per answer, 7-byte slices,
	 * EIO once 64 bytes have come back (the third round). */
	dl_assert_run(&r, f_num(r.out, "B ", "ok") == 2 &&
			  strstr(rw_line_with(r.out, "B "), " err=EIO ") &&
			  f_num(r.out, "B ", "short_r") > 0 &&
			  f_num(r.out, "B ", "short_w") > 0 &&
			  f_num(r.out, "B ", "rtt_min_us") >= 150000,
		      "the faulted host should see latency, slices and EIO");
	cr_assert(f_faults_naming(text, b_addr, port_b) >= 3,
		  "the log should have B's faults:\n%s", text);

	/* A: byte-identical to the native run, no slower beyond noise. */
	dl_assert_run(&r, f_num(r.out, "A ", "ok") == 100 &&
			  f_num(r.out, "A ", "bytes") ==
				  f_num(n.out, "A ", "bytes"),
		      "the untouched host's echoes failed");
	{
		char s1[32], s2[32];

		cr_assert(f_val(rw_line_with(n.out, "A "), "sum", s1,
				sizeof(s1)) &&
				  f_val(rw_line_with(r.out, "A "), "sum", s2,
					sizeof(s2)) &&
				  !strcmp(s1, s2),
			  "the untouched host's bytes differ from the native "
			  "run's:\nnative: %s\nshim: %s", n.out, r.out);
	}
	dl_assert_run(&r, f_num(r.out, "A ", "short_r") +
				  f_num(r.out, "A ", "short_w") < 100,
		      "the untouched host's reads/writes were cut short");
	dl_assert_run(&r, f_num(r.out, "A ", "rtt_med_us") <=
				  f_num(n.out, "A ", "rtt_med_us") + 20000 &&
			  f_num(r.out, "A ", "rtt_p90_us") <=
				  f_num(n.out, "A ", "rtt_p90_us") + 50000,
		      "the untouched host's round trips are slower than "
		      "native:\nnative: %s", n.out);
	cr_assert(f_faults_naming(text, "127.0.0.1", port_a) == 0,
		  "a fault line names the untouched host:\n%s", text);
	free(text);
	dl_result_free(&n);
	dl_result_free(&r);
}

Test(faults, rule_for_one_address_leaves_the_other_untouched)
{
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in6 a = { .sin6_family = AF_INET6,
				  .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;

	if (fd >= 0)
		close(fd);
	if (!ok)
		cr_skip_test("no IPv6 loopback (::1) here");
	isolation("::1", 0);
}

Test(faults, rule_for_one_port_leaves_the_other_untouched)
{
	isolation("127.0.0.1", 1);
}

/* ================================================================== */
/* 5. deadline --fault, --seed, --dry-run                              */
/* ================================================================== */

/* One --fault shortcut for 127.0.0.1:port. */
static const char *cli_spec(int port, const char *what)
{
	static char bufs[4][128];
	static int next;
	char *p = bufs[next++ % 4];

	dl_fmt(p, 128, "host=127.0.0.1 port=%d %s", port, what);
	return p;
}

Test(faults, deadline_fault_repeatable_with_seed)
{
	struct dl_result r;
	const char *log = rw_tmp("cli.log");
	char port_s[16];
	char *text;
	int port;

	dl_require_shim();
	port = f_echod("127.0.0.1", "echod");
	snprintf(port_s, sizeof(port_s), "%d", port);
	dl_deadline(&r, NULL, 20000, "--seed", "42", "--fault",
		   cli_spec(port, "latency=300ms"), "--fault",
		   cli_spec(port, "slice=3"), "--log", log, "--",
		   dl_helper("faultclient"), "pair", "--a", "127.0.0.1",
		   "--aport", port_s, "--rounds", "2", "--asize", "64", NULL);
	text = dl_read_file(log);
	rw_note("deadline --fault latency --fault slice: %s (%ld ms)",
		rw_line_with(r.out, "A "), r.ms);
	dl_assert_ok(&r, "deadline --fault A --fault B -- faultclient");
	/* Both apply: every answer 300 ms late, and cut into 3-byte reads. */
	dl_assert_run(&r, f_num(r.out, "A ", "ok") == 2 &&
			  f_num(r.out, "A ", "rtt_med_us") >= 300000 &&
			  f_num(r.out, "A ", "short_r") >= 2 * (64 / 3 - 1) &&
			  f_num(r.out, "A ", "short_w") >= 2 * (64 / 3 - 1),
		      "both --fault options should apply (log:\n%s)", text);
	cr_assert(strstr(text, "event=faults seed=42 seed_from=env "
			       "dry_run=false"),
		  "--seed 42 should be logged at start:\n%s", text);
	cr_assert(strstr(rw_line_with(text, "fault=latency"), "rule=fault#1 ") &&
			  strstr(rw_line_with(text, "fault=slice"),
				 "rule=fault#2 ") &&
			  strstr(rw_line_with(text, "fault=slice"), "max_bytes=3"),
		  "the log should have --fault 1's latency and --fault 2's "
		  "slice:\n%s", text);
	free(text);
	dl_result_free(&r);
}

Test(faults, deadline_fault_dry_run_injects_nothing)
{
	struct dl_result r;
	const char *log = rw_tmp("dry.log");
	char port_s[16];
	char *text;
	int port;

	dl_require_shim();
	port = f_echod("127.0.0.1", "echod");
	snprintf(port_s, sizeof(port_s), "%d", port);
	dl_deadline(&r, NULL, 20000, "--dry-run", "--seed", "7", "--fault",
		   cli_spec(port, "latency=300ms"), "--fault",
		   cli_spec(port, "error=EIO"), "--fault",
		   cli_spec(port, "slice=3"), "--log", log, "--",
		   dl_helper("faultclient"), "pair", "--a", "127.0.0.1",
		   "--aport", port_s, "--rounds", "2", "--asize", "64", NULL);
	text = dl_read_file(log);
	rw_note("deadline --dry-run: %s (%ld ms); %d fault lines",
		rw_line_with(r.out, "A "), r.ms,
		f_count(text, "event=fault "));
	dl_assert_ok(&r, "deadline --dry-run ... -- faultclient");
	dl_assert_run(&r, f_num(r.out, "A ", "ok") == 2 &&
			  f_num(r.out, "A ", "rtt_max_us") < 300000 &&
			  f_num(r.out, "A ", "short_r") == 0 &&
			  f_num(r.out, "A ", "short_w") == 0,
		      "--dry-run injected something (log:\n%s)", text);
	cr_assert(strstr(text, "event=faults seed=7 seed_from=env dry_run=true"),
		  "the start line should say dry_run=true:\n%s", text);
	cr_assert(!strstr(text, "injected=true"),
		  "--dry-run logged an injected fault:\n%s", text);
	cr_assert(f_count(text, "event=fault injected=false dry_run=true "
				"fault=latency") >= 1 &&
			  f_count(text, "event=fault injected=false dry_run=true "
					"fault=error") >= 1 &&
			  f_count(text, "event=fault injected=false dry_run=true "
					"fault=slice") >= 1,
		  "--dry-run should log each fault it would inject with "
		  "injected=false:\n%s", text);
	free(text);
	dl_result_free(&r);
}

Test(faults, deadline_bad_fault_spec_exits_125_before_running)
{
	static const struct {
		const char *first, *second, *want;
	} cases[] = {
		{ "hots=x", NULL, "--fault:1: unknown key 'hots'" },
		{ "host=127.0.0.1 latency=1ms", "hots=x",
		  "--fault:2: unknown key 'hots'" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *marker = rw_tmp(i ? "ran-2" : "ran-1");
		struct dl_result r;

		if (cases[i].second)
			dl_deadline(&r, NULL, 10000, "--fault", cases[i].first,
				   "--fault", cases[i].second, "--", "touch",
				   marker, NULL);
		else
			dl_deadline(&r, NULL, 10000, "--fault", cases[i].first,
				   "--", "touch", marker, NULL);
		dl_assert_run(&r, r.exited && r.code == 125,
			      "a bad --fault should exit 125");
		dl_assert_run(&r, strstr(r.err, cases[i].want) &&
				  strstr(rw_line_with(r.err, cases[i].want),
					 "did you mean 'host'?"),
			      "stderr should say \"%s ... did you mean "
			      "'host'?\"", cases[i].want);
		dl_assert_run(&r, access(marker, F_OK) != 0,
			      "the command ran despite the bad --fault");
		dl_result_free(&r);
	}
}
