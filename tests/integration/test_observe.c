/* test_observe.c - deadline observe / suggest / report (issue 16,
 * docs/observe.md).
 *
 * The traffic: build/helpers/obsclient (blocking HTTP/1.1 keep-alive
 * client, 4 threads) against `stallsrv http`, asking for /delay/D with D
 * from 0 to 60 ms, under the shim's own latency fault (30 ms +- 20 ms on
 * the first byte of each response): every first byte comes 10 to 110 ms
 * after its request, plus the machine's noise.
 *
 *   bucket_error         the histogram buckets hold every value within
 *                        1/64 (<= 2 %) of it
 *   suggest_and_enforce  observe -> suggest: the suggestions lie within
 *                        the bounds the distribution implies, load with
 *                        `deadline check`; the same traffic under them
 *                        passes whole, and a stalled request is cut
 *   observe_enforces_nothing  DEADLINE_OBSERVE with deadlines configured:
 *                        none fires; the rule's name is recorded
 *   parts_merged         two processes, two parts, one merged file
 *   interval             DEADLINE_OBSERVE_INTERVAL: the part is written
 *                        while the program runs
 *   report_contents      report.html (hosts, no script, no fetch) + CSV
 *   report_browser       the page rendered by headless chromium: the
 *                        screenshot is not blank, the DOM names the hosts
 *                        (skipped without chromium or python3); with
 *                        DL_REPORT_PNG=PATH the screenshot is copied there
 *                        (how docs/report.png is made)
 *   report_size          100,000 synthetic connections and 100,000 log
 *                        events: report.html stays under 2 MB
 *
 * Bounds are generous (the machine is shared): nothing asserts speed.
 */
#include "harness.h"

#include <dirent.h>

#include "observe.h"

TestSuite(observe, .init = dl_setup, .fini = dl_teardown, .timeout = 120);

#define DELAYS "0,10,20,30,40,50,60"
#define FAULT "latency=30ms jitter=20ms"

static const char *py(void)
{
	return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3"
						       : "python3";
}

static const char *tmp(const char *name)
{
	return dl_str("%s/%s", dl_tmpdir(), name);
}

/* A duration of the suggested file ("500ms", "2s", "1m") in ms. */
static long dur_ms(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (!strncmp(end, "ms", 2))
		return (long)v;
	if (*end == 's')
		return (long)(v * 1000);
	if (*end == 'm')
		return (long)(v * 60000);
	if (*end == 'h')
		return (long)(v * 3600000);
	return -1;
}

/* The value of `key = "D";` in text after `name = "<rule>";`, in ms;
 * -1 when absent. */
static long rule_key(const char *text, const char *rule, const char *key)
{
	const char *p = strstr(text, dl_str("name = \"%s\";", rule));
	const char *end, *k;
	char pat[64];

	if (!p)
		return -1;
	end = strchr(p, '}');
	dl_fmt(pat, sizeof(pat), "%s = \"", key);
	k = strstr(p, pat);
	if (!k || (end && k > end))
		return -1;
	return dur_ms(k + strlen(pat));
}

/* The count field of the h line for (host, phase) in an observe file. */
static long h_count(const char *text, const char *host, const char *phase)
{
	long total = 0;

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : 0) {
		char h[300], ph[32];
		long n;

		if (sscanf(p, "h %*s %299s %*u %*s %31s %ld", h, ph, &n) == 3 &&
		    !strcmp(h, host) && !strcmp(ph, phase))
			total += n;
	}
	return total;
}

/* Observe obsclient against srv (host: as the client resolves it):
 * 4 threads x 10 connections x 3 requests.  The JSON log goes to log. */
static void observe_run(const char *host, struct dl_server *srv,
			const char *obs, const char *log)
{
	struct dl_result r;

	dl_deadline(&r, NULL, 90000, "observe", "-o", obs, "--fault", FAULT,
		 "--log-format", "json", "--log", log, "--",
		 dl_helper("obsclient"), host, srv->port_s, "--threads", "4",
		 "--conns", "10", "--reqs", "3", "--delays", DELAYS, NULL);
	dl_assert_run(&r, r.exited && r.code == 0 &&
			      strstr(r.out, "DONE ok=120 err=0"),
		      "observed run failed");
	dl_assert_run(&r, strstr(r.err, "observed 40 connections"),
		      "no summary line");
	dl_result_free(&r);
}

/* ------------------------------------------------------------------ */

Test(observe, bucket_error)
{
	uint64_t v = 0;

	cr_assert_eq(OBS_NB, 1728);
	for (unsigned i = 0; i < OBS_NB; i++) {
		cr_assert_eq(obs_bucket(obs_bucket_low(i)), i, "low of %u", i);
		if (i + 1 < OBS_NB)
			cr_assert_eq(obs_bucket_high(i), obs_bucket_low(i + 1),
				     "buckets %u and %u not adjacent", i, i + 1);
	}
	/* Values 0 .. 2^33 in steps of about 0.3 %. */
	while (v < (1ull << 33)) {
		unsigned b = obs_bucket(v);
		uint64_t lo = obs_bucket_low(b), hi = obs_bucket_high(b);

		if (v < (1ull << 32)) {
			cr_assert(lo <= v && v < hi, "%llu not in bucket %u "
				  "[%llu, %llu)", (unsigned long long)v, b,
				  (unsigned long long)lo, (unsigned long long)hi);
			cr_assert((hi - lo) * 64 <= (lo > 64 ? lo : 64),
				  "bucket %u too wide: [%llu, %llu)", b,
				  (unsigned long long)lo, (unsigned long long)hi);
		} else {
			cr_assert_eq(b, OBS_NB - 1);
		}
		v = v + 1 + v / 300;
	}
}

Test(observe, suggest_and_enforce)
{
	struct dl_server *srv = dl_stallsrv("http", NULL);
	const char *obs = tmp("obs"), *log = tmp("log.json");
	const char *conf = tmp("suggested.conf");
	struct dl_result r;
	char *text, *sug;
	long cn, fb, idle, req, first;
	DIR *d;
	struct dirent *e;

	observe_run("localhost", srv, obs, log);
	text = dl_read_file(obs);
	cr_assert(text, "no %s", obs);
	cr_assert(!strncmp(text, "# libdeadline observe file", 26) &&
		  strstr(text, "\nv 1 64 us\n"), "header: %s", text);
	cr_assert_eq(h_count(text, "localhost", "connect"), 40, "%s", text);
	cr_assert_eq(h_count(text, "localhost", "first_byte"), 120, "%s", text);
	cr_assert_eq(h_count(text, "localhost", "request"), 120, "%s", text);
	cr_assert(h_count(text, "localhost", "idle") >= 120, "%s", text);
	free(text);
	/* The parts were merged and removed. */
	d = opendir(dl_tmpdir());
	while ((e = readdir(d)))
		cr_assert(strncmp(e->d_name, "obs.", 4), "part left: %s",
			  e->d_name);
	closedir(d);

	dl_deadline(&r, NULL, 30000, "suggest", obs, "-o", conf, NULL);
	dl_assert_run(&r, r.exited && r.code == 0, "suggest failed");
	dl_result_free(&r);
	sug = dl_read_file(conf);
	cr_assert(sug && strstr(sug, "host = \"localhost\";") &&
		  strstr(sug, "direction = \"outbound\";"), "%s", sug);
	/* The comment of the rule: count, p50, p99, p99.9, max. */
	cr_assert(strstr(sug, "first_byte n=120") && strstr(sug, "p99.9="),
		  "%s", sug);
	cn = rule_key(sug, "localhost", "connect_timeout");
	fb = rule_key(sug, "localhost", "first_byte_timeout");
	idle = rule_key(sug, "localhost", "idle_timeout");
	req = rule_key(sug, "localhost", "request_timeout");
	/* Loopback handshakes: well under the 100 ms floor, even loaded. */
	cr_assert(cn >= 100 && cn <= 1000, "connect %ld\n%s", cn, sug);
	/* The slowest first bytes come >= 70 ms (60 ms delay + >= 10 ms
	 * latency) after their request: x2, rounded up to 1-2-5, is at
	 * least 200 ms.  On a quiet machine 500 ms. */
	cr_assert(fb >= 200 && fb <= 5000, "first_byte %ld\n%s", fb, sug);
	cr_assert(idle >= 200 && idle <= 5000, "idle %ld\n%s", idle, sug);
	cr_assert(req >= 200 && req <= 5000, "request %ld\n%s", req, sug);
	free(sug);
	dl_deadline(&r, NULL, 30000, "check", conf, NULL);
	dl_assert_run(&r, r.exited && r.code == 0, "check failed");
	dl_result_free(&r);

	/* The same traffic under the suggested deadlines: all of it passes. */
	dl_deadline(&r, NULL, 90000, "--config", conf, "--fault", FAULT, "--",
		 dl_helper("obsclient"), "localhost", srv->port_s, "--threads",
		 "4", "--conns", "10", "--reqs", "3", "--delays", DELAYS, NULL);
	dl_assert_run(&r, r.exited && r.code == 0 &&
			      strstr(r.out, "DONE ok=120 err=0"),
		      "a normal request failed under the suggested deadlines");
	dl_result_free(&r);

	/* A stalled answer (5 s) is cut at the first deadline to pass. */
	first = fb < idle ? fb : idle;
	first = first < req ? first : req;
	dl_deadline(&r, NULL, 30000, "--config", conf, "--",
		 dl_helper("obsclient"), "localhost", srv->port_s, "--delays",
		 "5000", NULL);
	dl_assert_run(&r, r.exited && r.code == 1 &&
			      strstr(r.out, "ERR ETIMEDOUT "),
		      "the stall was not cut");
	{
		long ms = atol(strstr(r.out, "ERR ETIMEDOUT ") + 14);

		dl_assert_run(&r, ms >= first - 5 && ms < first + 2000 &&
				      ms < 4500, "cut after %ld ms (first "
				      "deadline %ld ms)", ms, first);
	}
	dl_result_free(&r);
}

Test(observe, observe_enforces_nothing)
{
	struct dl_server *srv = dl_stallsrv("http", NULL);
	const char *obs = tmp("o");
	const char *conf = dl_write_file("c.conf",
		"rules = ( { name = \"tight\"; host = \"localhost\"; "
		"first_byte_timeout = \"50ms\"; request_timeout = \"50ms\"; "
		"idle_timeout = \"50ms\"; } );\n");
	const char *env[] = {
		dl_str("DEADLINE_OBSERVE=%s", obs),
		dl_str("DEADLINE_CONFIG=%s", conf),
		"DEADLINE_REQUEST_TIMEOUT=50ms",
		"DEADLINE_CONNECT_TIMEOUT=50ms",
		NULL,
	};
	const char *argv[] = { dl_helper("obsclient"), "localhost", srv->port_s,
			       "--conns", "3", "--delays", "300", NULL };
	struct dl_result r;
	char *text = 0;
	DIR *d;
	struct dirent *e;
	int parts = 0;

	dl_run(&r, argv, env, 1, 30000);
	dl_assert_run(&r, r.exited && r.code == 0 &&
			      strstr(r.out, "DONE ok=3 err=0"),
		      "a deadline fired while observing");
	dl_assert_run(&r, !strstr(r.err, "event=deadline"), "expiry logged");
	dl_result_free(&r);
	/* The process wrote its part, FILE.<pid>, under the rule's name. */
	d = opendir(dl_tmpdir());
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, "o.", 2)) {
			parts++;
			text = dl_read_file(tmp(e->d_name));
		}
	closedir(d);
	cr_assert_eq(parts, 1);
	cr_assert(text && strstr(text, "h out localhost 0 tight first_byte 3 "),
		  "%s", text);
	free(text);
}

Test(observe, parts_merged)
{
	struct dl_server *srv = dl_stallsrv("http", NULL);
	const char *obs = tmp("m");
	const char *cl = dl_helper("obsclient");
	struct dl_result r;
	char *text;

	dl_deadline(&r, NULL, 60000, "observe", "-o", obs, "--", "/bin/sh", "-c",
		 dl_str("%s localhost %s --conns 5 --delays 10 & "
			"%s localhost %s --conns 7 --delays 10; wait", cl,
			srv->port_s, cl, srv->port_s), NULL);
	dl_assert_run(&r, r.exited && r.code == 0 &&
			      dl_count_lines(r.out, "DONE ok=") == 2,
		      "clients failed");
	dl_assert_run(&r, strstr(r.err, "12 connections (1 peer, 2 processes)"),
		      "merge summary");
	dl_result_free(&r);
	text = dl_read_file(obs);
	cr_assert_eq(h_count(text, "localhost", "connect"), 12, "%s", text);
	{
		int procs = 0;

		for (const char *p = text; p; p = strchr(p, '\n'), p = p ? p + 1 : 0)
			procs += !strncmp(p, "p ", 2);
		cr_assert_eq(procs, 2, "%s", text);
	}
	free(text);
	/* The exit status is the command's. */
	dl_deadline(&r, NULL, 30000, "observe", "-o", obs, "--", "/bin/sh", "-c",
		 "exit 3", NULL);
	dl_assert_run(&r, r.exited && r.code == 3, "status");
	dl_result_free(&r);
	dl_deadline(&r, NULL, 30000, "observe", "--", "true", NULL);
	dl_assert_run(&r, r.exited && r.code == 125, "no -o");
	dl_result_free(&r);
}

Test(observe, interval)
{
	struct dl_server *srv = dl_stallsrv("http", NULL);
	const char *obs = tmp("i");
	const char *env[] = { dl_str("DEADLINE_OBSERVE=%s", obs),
			      "DEADLINE_OBSERVE_INTERVAL=200ms", NULL };
	const char *argv[] = {
		"/bin/sh", "-c",
		dl_str("LD_PRELOAD='%s' %s localhost %s --conns 40 --delays 50 "
		       "& sleep 1.2; ls %s; wait", dl_preload(),
		       dl_helper("obsclient"), srv->port_s, dl_tmpdir()),
		NULL
	};
	struct dl_result r;

	dl_run(&r, argv, env, 0, 60000);
	dl_assert_run(&r, r.exited && r.code == 0 &&
			      strstr(r.out, "DONE ok=40 err=0"), "client");
	/* Listed while the client still ran (40 x 50 ms = 2 s). */
	dl_assert_run(&r, strstr(r.out, "i."), "no part written while running");
	dl_result_free(&r);
}

/* ------------------------------------------------------------------ */
/* The report                                                          */
/* ------------------------------------------------------------------ */

/* Two peers (localhost, and 127.0.0.2 by address), observed; then a
 * stall under the suggested file, so that the log has an expiry. */
static void report_inputs(const char **obs, const char **log,
			  const char **conf)
{
	struct dl_server *a = dl_stallsrv("http", NULL);
	struct dl_server *b = dl_stallsrv("http", "--addr", "127.0.0.2", NULL);
	struct dl_result r;

	*obs = tmp("obs");
	*log = tmp("log.json");
	*conf = tmp("s.conf");
	dl_deadline(&r, NULL, 90000, "observe", "-o", *obs, "--fault", FAULT,
		 "--log-format", "json", "--log", *log, "--", "/bin/sh", "-c",
		 dl_str("%s localhost %s --threads 4 --conns 10 --reqs 3 "
			"--delays " DELAYS " & %s 127.0.0.2 %s --threads 2 "
			"--conns 15 --reqs 2 --delays 100,150,200; wait",
			dl_helper("obsclient"), a->port_s,
			dl_helper("obsclient"), b->port_s), NULL);
	dl_assert_run(&r, r.exited && r.code == 0, "observe");
	dl_result_free(&r);
	dl_deadline(&r, NULL, 30000, "suggest", *obs, "-o", *conf, NULL);
	dl_assert_run(&r, r.exited && r.code == 0, "suggest");
	dl_result_free(&r);
	dl_deadline(&r, NULL, 30000, "--config", *conf, "--log-format", "json",
		 "--log", *log, "--", dl_helper("obsclient"), "localhost",
		 a->port_s, "--delays", "5000", NULL);
	dl_assert_run(&r, r.exited && r.code == 1, "stall not cut");
	dl_result_free(&r);
}

Test(observe, report_contents)
{
	const char *obs, *log, *conf, *html = tmp("report.html");
	const char *csv = tmp("report.csv");
	struct dl_result r;
	char *page, *c, *sug;

	report_inputs(&obs, &log, &conf);
	sug = dl_read_file(conf);
	cr_assert(strstr(sug, "cidr = \"127.0.0.2/32\";"), "%s", sug);
	free(sug);
	dl_deadline(&r, NULL, 30000, "report", obs, "--log", log, "--config",
		 conf, "-o", html, "--csv", csv, NULL);
	dl_assert_run(&r, r.exited && r.code == 0, "report");
	dl_result_free(&r);
	page = dl_read_file(html);
	cr_assert(page && !strncmp(page, "<!DOCTYPE html>", 15), "not a page");
	cr_assert(strstr(page, "localhost") && strstr(page, "127.0.0.2"),
		  "hosts missing");
	cr_assert(strstr(page, "<svg") && strstr(page, "suggest "),
		  "no charts");
	/* Self-contained: no script, nothing fetched. */
	cr_assert(!strstr(page, "<script") && !strstr(page, "http://") &&
		  !strstr(page, "https://") && !strstr(page, "@import") &&
		  !strstr(page, "url("), "not self-contained");
	/* The log's expiry and faults are counted. */
	cr_assert(strstr(page, " 1 expiries and "), "expiry not counted");
	free(page);
	c = dl_read_file(csv);
	cr_assert(c && !strncmp(c, "direction,host,port,rule,phase,"
				    "bucket_low_us,bucket_high_us,count\n", 64),
		  "csv header");
	cr_assert(strstr(c, "out,\"localhost\",0,") &&
		  strstr(c, "out,\"127.0.0.2\",0,"), "csv rows");
	free(c);
}

/* Decode a PNG (8-bit RGB/RGBA, non-interlaced) and print its size,
 * how many distinct colours and what share of pixels are not white. */
static const char png_py[] =
	"import struct, sys, zlib\n"
	"d = open(sys.argv[1], 'rb').read()\n"
	"assert d[:8] == b'\\x89PNG\\r\\n\\x1a\\n'\n"
	"pos, idat = 8, b''\n"
	"while pos < len(d):\n"
	"    n, = struct.unpack('>I', d[pos:pos + 4])\n"
	"    t, c = d[pos + 4:pos + 8], d[pos + 8:pos + 8 + n]\n"
	"    pos += 12 + n\n"
	"    if t == b'IHDR':\n"
	"        w, h, bd, ct, _, _, il = struct.unpack('>IIBBBBB', c)\n"
	"    elif t == b'IDAT':\n"
	"        idat += c\n"
	"assert bd == 8 and ct in (2, 6) and il == 0\n"
	"bpp = 3 if ct == 2 else 4\n"
	"raw, stride = zlib.decompress(idat), w * bpp\n"
	"prev, colors, other = bytearray(stride), set(), 0\n"
	"for y in range(h):\n"
	"    f = raw[y * (stride + 1)]\n"
	"    row = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])\n"
	"    for i in range(stride):\n"
	"        a = row[i - bpp] if i >= bpp else 0\n"
	"        b = prev[i]\n"
	"        c = prev[i - bpp] if i >= bpp else 0\n"
	"        if f == 1: row[i] = (row[i] + a) & 255\n"
	"        elif f == 2: row[i] = (row[i] + b) & 255\n"
	"        elif f == 3: row[i] = (row[i] + (a + b) // 2) & 255\n"
	"        elif f == 4:\n"
	"            p = a + b - c\n"
	"            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)\n"
	"            pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)\n"
	"            row[i] = (row[i] + pr) & 255\n"
	"    for x in range(0, stride, bpp):\n"
	"        px = bytes(row[x:x + 3])\n"
	"        colors.add(px)\n"
	"        if px != b'\\xff\\xff\\xff': other += 1\n"
	"    prev = row\n"
	"print('PNG', w, h, len(colors), '%.4f' % (other / (w * h)))\n";

Test(observe, report_browser)
{
	const char *obs, *log, *conf, *html = tmp("report.html");
	const char *shot = tmp("report.png");
	const char *env[] = { dl_str("HOME=%s", dl_tmpdir()), NULL };
	const char *chrome = access("/usr/bin/chromium", X_OK) == 0
				     ? "/usr/bin/chromium"
				     : NULL;
	struct dl_result r;
	int w = 0, h = 0, colors = 0;
	double other = 0;
	const char *line, *dest = getenv("DL_REPORT_PNG");

	if (!chrome)
		cr_skip_test("no headless browser: install Debian's chromium "
			     "(tools/ensure-deps test) to render report.html");
	if (access("/usr/bin/python3", X_OK) != 0)
		cr_skip_test("python3 is needed to decode the screenshot");
	report_inputs(&obs, &log, &conf);
	dl_deadline(&r, NULL, 30000, "report", obs, "--log", log, "--config",
		 conf, "-o", html, NULL);
	dl_assert_run(&r, r.exited && r.code == 0, "report");
	dl_result_free(&r);

	{
		const char *argv[] = { chrome, "--headless", "--no-sandbox",
				       "--disable-gpu", "--hide-scrollbars",
				       dl_str("--screenshot=%s", shot),
				       "--window-size=1100,1400",
				       dl_str("file://%s", html), NULL };

		dl_run(&r, argv, env, 0, 90000);
		dl_assert_run(&r, access(shot, R_OK) == 0, "no screenshot");
		dl_result_free(&r);
	}
	{
		const char *argv[] = { py(), dl_write_file("png.py", png_py),
				       shot, NULL };

		dl_run(&r, argv, NULL, 0, 60000);
		line = dl_line(r.out, "PNG ");
		dl_assert_run(&r, line && sscanf(line, "PNG %d %d %d %lf", &w,
						 &h, &colors, &other) == 4,
			      "cannot decode the screenshot");
		/* Charts, text and colours: far from a blank page. */
		dl_assert_run(&r, w >= 1000 && h >= 1000 && colors >= 16 &&
				      other > 0.02,
			      "blank-looking screenshot: %d x %d, %d colours, "
			      "%.4f not white", w, h, colors, other);
		dl_result_free(&r);
	}
	{
		/* What the browser laid out names the hosts. */
		const char *argv[] = { chrome, "--headless", "--no-sandbox",
				       "--disable-gpu", "--dump-dom",
				       dl_str("file://%s", html), NULL };

		dl_run(&r, argv, env, 0, 90000);
		dl_assert_run(&r, strstr(r.out, "localhost") &&
				      strstr(r.out, "127.0.0.2") &&
				      strstr(r.out, "<svg"),
			      "the rendered page lacks the hosts");
		dl_result_free(&r);
	}
	if (dest && *dest) {
		const char *argv[] = { "cp", shot, dest, NULL };

		dl_run(&r, argv, NULL, 0, 10000);
		dl_result_free(&r);
	}
}

/* 100,000 connections to 250 peers (an observe file written here, as
 * the shim would) and 100,000 log events: the page stays under 2 MB. */
Test(observe, report_size)
{
	const char *obs = tmp("big"), *log = tmp("big.json");
	const char *html = tmp("big.html");
	struct dl_result r;
	struct stat st;
	FILE *f = fopen(obs, "w");
	long long t0 = 1790000000000ll;
	unsigned seed = 1;

	cr_assert(f);
	fputs("# synthetic\nv 1 64 us\n", f);
	for (int p = 0; p < 100; p++)
		fprintf(f, "p %d %lld %lld /usr/bin/x\n", 1000 + p, t0,
			t0 + 3600000);
	for (int k = 0; k < 250; k++) {
		const char *ph[] = { "connect", "first_byte", "idle", "request" };

		for (int i = 0; i < 4; i++) {
			unsigned long long sum = 0, max = 0;
			unsigned cnt[OBS_NB];

			memset(cnt, 0, sizeof(cnt));
			for (int s = 0; s < 400; s++) {
				uint64_t us;

				seed = seed * 1103515245u + 12345u;
				us = (uint64_t)(100 << i) +
				     (seed >> 8) % (50000u << i);
				cnt[obs_bucket(us)]++;
				sum += us;
				if (us > max)
					max = us;
			}
			fprintf(f, "h out host%03d.example.test 0 r%d %s 400 "
				"%llu %llu", k, k % 7, ph[i], sum, max);
			for (unsigned b = 0; b < OBS_NB; b++)
				if (cnt[b])
					fprintf(f, " %u:%u", b, cnt[b]);
			fputc('\n', f);
		}
		fprintf(f, "t out host%03d.example.test 0 r%d %lld 100", k,
			k % 7, t0);
		for (int b = 0; b < 256; b++)
			fprintf(f, " %d:%d", b, 1 + (b + k) % 3);
		fputc('\n', f);
	}
	cr_assert(fclose(f) == 0);
	f = fopen(log, "w");
	cr_assert(f);
	for (int i = 0; i < 100000; i++) {
		long long t = t0 + (long long)i * 256;
		time_t sec = (time_t)(t / 1000);
		struct tm tm;
		char ts[40];

		gmtime_r(&sec, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		if (i % 2)
			fprintf(f, "{\"time\":\"%s.%03lldZ\",\"pid\":1,\"event\":"
				"\"deadline\",\"fd\":3,\"host\":\"host%03d."
				"example.test\",\"addr\":\"127.0.0.1\",\"port\":"
				"80,\"rule\":\"r\",\"phase\":\"first_byte\","
				"\"limit_ms\":100,\"elapsed_ms\":100}\n", ts,
				t % 1000, i % 250);
		else
			fprintf(f, "{\"time\":\"%s.%03lldZ\",\"pid\":1,\"event\":"
				"\"fault\",\"injected\":true,\"fault\":\"latency\","
				"\"host\":\"host%03d.example.test\"}\n", ts,
				t % 1000, i % 250);
	}
	cr_assert(fclose(f) == 0);
	dl_deadline(&r, NULL, 60000, "report", obs, "--log", log, "-o", html,
		 NULL);
	dl_assert_run(&r, r.exited && r.code == 0, "report");
	dl_result_free(&r);
	cr_assert(stat(html, &st) == 0);
	cr_assert(st.st_size < 2 * 1024 * 1024, "report.html is %lld bytes",
		  (long long)st.st_size);
	{
		char *page = dl_read_file(html);

		cr_assert(strstr(page, "100000 connections to 250 peers") &&
			  strstr(page, "50000 expiries and 50000 injected"),
			  "totals");
		free(page);
	}
}
