/* test_faults.c - fault injection, measured end to end.
 *
 * Every fault is injected into build/helpers/faultcli, once written as a
 * blocking program (--loop block) and once as an epoll event loop (--loop
 * epoll; --loop epollet where edge-triggering matters, --loop epollshort
 * where the meaning of a short count does), talking to
 * build/helpers/faultsrv servers each test starts on kernel-picked
 * 127.0.0.1 ports.  The server never runs under the shim: its END lines
 * say what really crossed the wire, with CLOCK_MONOTONIC times that the
 * client's can be compared with.  The checks are on measured effects:
 * round trips, transfer rates, errno values, byte counts, timings.
 *
 * Windows: lower bounds are strict (a fault never acts early);
 * upper bounds are the bound plus F_SLACK, 100 ms or DL_SLACK_MS if
 * larger, as in test_eventloop.c.  Added latency is compared as medians
 * of the round trips (a loaded machine delays a few rounds a lot, and an
 * average would measure the machine): within -10/+25 ms of the
 * configured value, which still tells a delay applied once from one
 * applied twice or not at all.  Rates are within 10 % (the bandwidth
 * clock catches up after a late call, so load does not slow it).  In
 * the event loops the
 * timerfd of faultcli must keep ticking while a fault holds a socket
 * back, and no single socket call may take the fault's time: the loop is
 * never put to sleep by the shim.
 *
 * Faults come from DEADLINE_FAULTS ("cidr=127.0.0.1/32 ..."), or from a
 * DEADLINE_CONFIG file (the tests named *_conf and log_file_*).  Decisions
 * that depend on chance use a fixed DEADLINE_SEED, so that a failure
 * reproduces.
 */
#include "harness.h"

TestSuite(faults, .init = dl_setup, .fini = dl_teardown, .timeout = 40);

#define ON_LO "cidr=127.0.0.1/32 "
#define TICK_MS 5 /* faultcli's default --tick */

static long f_slack(void)
{
	return dl_slack() > 100 ? dl_slack() : 100;
}

/* ================================================================== */
/* Plumbing                                                            */
/* ================================================================== */

/* "DEADLINE_FAULTS=cidr=127.0.0.1/32 <spec>", in rotating buffers. */
static const char *faults(const char *spec)
{
	static char bufs[4][512];
	static int next;
	char *b = bufs[next++ % 4];

	dl_fmt(b, 512, "DEADLINE_FAULTS=" ON_LO "%s", spec);
	return b;
}

/* "K=V" built with a format, in rotating buffers. */
__attribute__((format(printf, 1, 2)))
static const char *kv(const char *fmt, ...)
{
	static char bufs[6][PATH_MAX + 64];
	static int next;
	char *b = bufs[next++ % 6];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(b, PATH_MAX + 64, fmt, ap);
	va_end(ap);
	cr_assert(n >= 0 && n < PATH_MAX + 64, "string too long");
	return b;
}

/* Read a whole file (heap; "" when missing). */
static char *read_file(const char *path)
{
	struct dl_buf b = { 0 };
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		while (dl_slurp(fd, &b) > 0)
			;
		close(fd);
	}
	return b.p ? b.p : strdup("");
}

/* faultsrv MODE [--bytes N], dying after 60 s regardless. */
static struct dl_server *fsrv(const char *mode, const char *bytes)
{
	if (bytes)
		return dl_server_startv("faultsrv",
					DL_V(mode, "--bytes", bytes,
					     "--lifetime", "60"));
	return dl_server_startv("faultsrv", DL_V(mode, "--lifetime", "60"));
}

/* Run "faultcli SUB --loop LOOP --port <s> args... (NULL)" with env,
 * under the shim when preload; it must exit 0 without a sanitizer
 * report. */
static void fcli(struct dl_result *r, int preload, const char *const *env,
		 const char *loop, const char *sub,
		 const struct dl_server *s, ...)
{
	const char *argv[40], *a;
	va_list ap;
	int n = 0;

	argv[n++] = dl_helper("faultcli");
	argv[n++] = sub;
	argv[n++] = "--loop";
	argv[n++] = loop;
	if (s) {
		argv[n++] = "--port";
		argv[n++] = s->port_s;
	}
	va_start(ap, s);
	while ((a = va_arg(ap, const char *)) && n < 38)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	dl_run(r, argv, env, preload, 20000);
	dl_assert_ok(r, sub);
}

/* The output line starting with prefix; fails the test when missing. */
static const char *need_line(const struct dl_result *r, const char *prefix)
{
	const char *l = dl_line(r->out, prefix);

	dl_assert_run(r, l != NULL, "no '%s' line", prefix);
	return l;
}

/* The number after key in the first line starting with prefix. */
static long num(const struct dl_result *r, const char *prefix,
		const char *key)
{
	const char *l = need_line(r, prefix);
	const char *end = strchr(l, '\n');
	const char *k = l;
	size_t n = strlen(key);

	/* key must start a token (" key"), not end a longer one. */
	while ((k = strstr(k, key)) && (!end || k < end)) {
		if (k == l || k[-1] == ' ')
			return strtol(k + n, NULL, 10);
		k += n;
	}
	dl_assert_run(r, 0, "no '%s' in the '%s' line", key, prefix);
	return -1;
}

/* Assert that the line starting with prefix has token tok. */
#define need_tok(r, prefix, tok)                                            \
	dl_assert_run(r, dl_has_tok(need_line(r, prefix), tok),                 \
		      "expected %s in the '%s' line", tok, prefix)

/* Fault event lines of text: kind (NULL: any), injected=true (1) or
 * =false (0); extra: a token the line must hold too (NULL: none). */
static int log_count(const char *text, const char *kind, int injected,
		     const char *extra)
{
	char want[64];
	int n = 0;

	if (kind)
		dl_fmt(want, sizeof(want), "fault=%s", kind);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p) {
		if (strncmp(p, "libdeadline: ", 13) || !dl_has_tok(p, "event=fault") ||
		    !dl_has_tok(p, injected ? "injected=true" : "injected=false") ||
		    (kind && !dl_has_tok(p, want)) || (extra && !dl_has_tok(p, extra)))
			continue;
		n++;
	}
	return n;
}

/* The server's END line for connection id (1-based), waiting up to 3 s. */
static void server_end(struct dl_server *s, int id, char *line, size_t cap)
{
	char want[32];

	dl_fmt(want, sizeof(want), "END conn=%d ", id);
	cr_assert(dl_server_line(s, want, 3000, line, cap),
		  "the server never reported the end of connection %d; its "
		  "output:\n%s", id, s->buf);
}

static long long line_ll(const char *line, const char *key)
{
	const char *k = strstr(line, key);

	return k ? strtoll(k + strlen(key), NULL, 10) : -1;
}

/* The event loop was never put to sleep: some socket call or a wait
 * taking fault_ms would have shown (faultcli reports both net of its
 * run-queue wait, so a loaded machine that did not run it is not taken
 * for the shim).  Over run_ms the timer must have ticked at least a third
 * of the times it could. */
static void loop_free(const struct dl_result *r, const char *loop,
		      long fault_ms, long run_ms)
{
	long call, gap, ticks;

	if (!strcmp(loop, "block"))
		return;
	call = num(r, "LOOP ", "max_call_us=");
	gap = num(r, "LOOP ", "max_gap_us=");
	ticks = num(r, "LOOP ", "ticks=");
	dl_assert_run(r, call < fault_ms * 1000 * 3 / 4,
		      "a socket call took %ld us, blocking the event loop "
		      "(the fault holds for %ld ms)", call, fault_ms);
	dl_assert_run(r, gap < fault_ms * 1000 * 3 / 4,
		      "epoll_wait did not return for %ld us although a "
		      "%d ms timer was armed (the fault holds for %ld ms)",
		      gap, TICK_MS, fault_ms);
	dl_assert_run(r, ticks >= run_ms / TICK_MS / 3,
		      "the loop's timer ticked %ld times in ~%ld ms", ticks,
		      run_ms);
}

/* "RTT a,b,c,..." values (us) into v; returns how many. */
static int rtts(const struct dl_result *r, long *v, int cap)
{
	const char *p = need_line(r, "RTT ") + 4;
	int n = 0;

	while (n < cap && *p && *p != '\n') {
		char *e;

		v[n++] = strtol(p, &e, 10);
		if (e == p)
			break;
		p = *e == ',' ? e + 1 : e;
	}
	return n;
}

/* ================================================================== */
/* latency                                                             */
/* ================================================================== */

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

/* The median round trip (us) of a "rounds" run, from its RTT line. */
static long median_rtt(const struct dl_result *r)
{
	long v[256];
	int n = rtts(r, v, 256);

	dl_assert_run(r, n > 0, "no round trips");
	qsort(v, (size_t)n, sizeof(*v), cmp_long);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Native median round trip and average write time (us) of n echo
 * rounds (no shim). */
static void native_rounds(struct dl_server *s, const char *loop,
			  const char *n, long *med, long *wavg)
{
	struct dl_result r;

	fcli(&r, 0, NULL, loop, "rounds", s, "--n", n, NULL);
	*med = median_rtt(&r);
	*wavg = num(&r, "ROUNDS ", "wavg_us=");
	dl_assert_run(&r, num(&r, "ROUNDS ", "n=") == atol(n) &&
		      num(&r, "ROUNDS ", "bad=") == 0, "native rounds");
	dl_result_free(&r);
}

/* 50 request/response rounds with latency=50ms before the first byte of
 * each response: each round trip is at least 50 ms longer, the median
 * 50 ms longer than natively (-10/+25); one log line per delayed
 * response. */
static void latency_first_byte(const char *loop)
{
	struct dl_result r;
	struct dl_server *s;
	long nat, nat_w, added;

	dl_require_shim();
	s = fsrv("echo", NULL);
	native_rounds(s, loop, "50", &nat, &nat_w);
	fcli(&r, 1, DL_V(faults("latency=50ms")), loop, "rounds", s, "--n",
	     "50", NULL);
	dl_assert_run(&r, num(&r, "ROUNDS ", "n=") == 50 &&
		      num(&r, "ROUNDS ", "bad=") == 0,
		      "50 intact rounds expected");
	added = median_rtt(&r) - nat;
	dl_assert_run(&r, added >= 40000 && added <= 75000,
		      "median added latency %ld us, expected 50 ms -10/+25 "
		      "(native median %ld us)", added, nat);
	dl_assert_run(&r, num(&r, "ROUNDS ", "min_us=") >= 50000,
		      "a round trip took less than the 50 ms latency");
	dl_assert_run(&r, num(&r, "ROUNDS ", "wavg_us=") - nat_w < 25000,
		      "writes (upstream) were delayed too");
	dl_assert_run(&r, log_count(r.err, "latency", 1, "delay_ms=50") == 50,
		      "expected 50 latency events with delay_ms=50");
	loop_free(&r, loop, 50, 2500);
	dl_result_free(&r);
}

Test(faults, latency_first_byte_block) { latency_first_byte("block"); }
Test(faults, latency_first_byte_epoll) { latency_first_byte("epoll"); }

/* From a configuration file: 50 ms +/- 20 ms.  The delays spread (the
 * log says which each round got, and the round trips follow them), the
 * average holds. */
static void latency_jitter_conf(const char *loop)
{
	struct dl_result r;
	struct dl_server *s;
	long nat, nat_w, med, v[64], lo = LONG_MAX, hi = 0;
	const char *conf;
	int n;

	dl_require_shim();
	s = fsrv("echo", NULL);
	conf = dl_write_file("jitter.conf",
			  "rules = (\n"
			  "  { name = \"jit\"; cidr = \"127.0.0.1/32\";\n"
			  "    faults = { latency = \"50ms\"; jitter = \"20ms\";"
			  " on = \"first_byte\"; direction = \"downstream\"; };"
			  " }\n"
			  ");\n");
	native_rounds(s, loop, "50", &nat, &nat_w);
	fcli(&r, 1, DL_V(kv("DEADLINE_CONFIG=%s", conf)), loop, "rounds", s,
	     "--n", "50", NULL);
	dl_assert_run(&r, num(&r, "ROUNDS ", "n=") == 50 &&
		      num(&r, "ROUNDS ", "bad=") == 0,
		      "50 intact rounds expected");
	med = median_rtt(&r);
	dl_assert_run(&r, med - nat >= 40000 && med - nat <= 75000,
		      "median added latency %ld us, expected 50 ms -10/+25",
		      med - nat);
	n = rtts(&r, v, 64);
	dl_assert_run(&r, n == 50, "expected 50 round trips, got %d", n);
	/* No round trip comes back before its delay's lower end; how far
	 * above it one goes also depends on the machine (one stalled
	 * round trip of a loaded run is not the shim's), so the upper end
	 * is checked on the delays the shim chose and logged. */
	for (int i = 0; i < n; i++)
		lo = v[i] < lo ? v[i] : lo;
	dl_assert_run(&r, lo >= 30000, "a round trip of %ld us is below "
		      "50 - 20 ms", lo);
	lo = LONG_MAX;
	for (const char *p = r.err; (p = strstr(p, "delay_ms=")); p++) {
		long d = atol(p + strlen("delay_ms="));

		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
	}
	dl_assert_run(&r, lo >= 30 && hi <= 70,
		      "delays chosen between %ld and %ld ms, outside 50 +/- 20",
		      lo, hi);
	dl_assert_run(&r, hi - lo >= 20,
		      "delays chosen between %ld and %ld ms: jitter 20 ms "
		      "should spread them", lo, hi);
	dl_assert_run(&r, log_count(r.err, "latency", 1, "rule=jit") == 50,
		      "expected 50 latency events of rule jit");
	loop_free(&r, loop, 30, 2500);
	dl_result_free(&r);
}

Test(faults, latency_jitter_conf_block) { latency_jitter_conf("block"); }
Test(faults, latency_jitter_conf_epoll) { latency_jitter_conf("epoll"); }

/* on=connect: the handshake takes at least the latency; then the
 * connection works. */
/* faultcli connect to s under env (then the ping exchange, if asked):
 * the CONNECT line must say err=<want> after [ms, ms + F_SLACK] of
 * connect(). */
static void connect_timed(struct dl_result *r, const char *loop,
			  const struct dl_server *s, const char *const *env,
			  int exchange, const char *want, long ms)
{
	char tok[48];
	long us;

	fcli(r, 1, env, loop, "connect", s, exchange ? "--exchange" : NULL,
	     NULL);
	dl_fmt(tok, sizeof(tok), "err=%s", want);
	need_tok(r, "CONNECT ", tok);
	us = num(r, "CONNECT ", "us=");
	dl_assert_run(r, us >= ms * 1000 && us <= (ms + f_slack()) * 1000,
		      "connect ended with %s after %ld us, expected [%ld, %ld] "
		      "ms", want, us, ms, ms + f_slack());
}

static void latency_connect(const char *loop)
{
	struct dl_result r;
	struct dl_server *s;

	dl_require_shim();
	s = fsrv("echo", NULL);
	connect_timed(&r, loop, s, DL_V(faults("latency=200ms on=connect")), 1,
		      "0", 200);
	need_tok(&r, "EXCHANGE ", "err=0");
	dl_assert_run(&r, log_count(r.err, "latency", 1, "delay_ms=200") == 1,
		      "expected one latency event");
	loop_free(&r, loop, 200, 200);
	dl_result_free(&r);
}

Test(faults, latency_connect_block) { latency_connect("block"); }
Test(faults, latency_connect_epoll) { latency_connect("epoll"); }

/* The injected handshake time counts against the connect deadline: an
 * 800 ms connect latency under a 300 ms connect deadline fails with
 * ETIMEDOUT at 300 ms, in a blocking connect and in an event loop. */
static void latency_connect_deadline(const char *loop)
{
	struct dl_result r;
	struct dl_server *s;

	dl_require_shim();
	s = fsrv("echo", NULL);
	connect_timed(&r, loop, s,
		      DL_V(faults("latency=800ms on=connect"),
			   "DEADLINE_CONNECT_TIMEOUT=300ms"),
		      0, "ETIMEDOUT", 300);
	loop_free(&r, loop, 300, 300);
	dl_result_free(&r);
}

Test(faults, latency_connect_deadline_block) { latency_connect_deadline("block"); }
Test(faults, latency_connect_deadline_epoll) { latency_connect_deadline("epoll"); }

/* on=every direction=upstream: every write waits 50 ms; the responses
 * are not delayed. */
static void latency_every_upstream(const char *loop)
{
	struct dl_result r;
	struct dl_server *s;
	long nat, nat_w, wavg, avg;

	dl_require_shim();
	s = fsrv("echo", NULL);
	native_rounds(s, loop, "30", &nat, &nat_w);
	fcli(&r, 1, DL_V(faults("latency=50ms on=every direction=upstream")),
	     loop, "rounds", s, "--n", "30", NULL);
	dl_assert_run(&r, num(&r, "ROUNDS ", "n=") == 30 &&
		      num(&r, "ROUNDS ", "bad=") == 0,
		      "30 intact rounds expected");
	dl_assert_run(&r, num(&r, "CONNECT ", "us=") < 40000,
		      "the handshake took %ld us: upstream latency "
		      "(on=every) delayed the connect instead of the writes",
		      num(&r, "CONNECT ", "us="));
	wavg = num(&r, "ROUNDS ", "wavg_us=");
	avg = num(&r, "ROUNDS ", "avg_us=");
	dl_assert_run(&r, wavg - nat_w >= 40000 && wavg - nat_w <= 75000,
		      "writes took %ld us more on average, expected 50 ms "
		      "-10/+25", wavg - nat_w);
	dl_assert_run(&r, num(&r, "ROUNDS ", "wmin_us=") >= 50000,
		      "a write took less than the 50 ms latency");
	dl_assert_run(&r, avg - wavg < 25000,
		      "the responses were delayed too (%ld us after the "
		      "write on average)", avg - wavg);
	dl_assert_run(&r, log_count(r.err, "latency", 1, NULL) == 30,
		      "expected 30 latency events (one per write)");
	loop_free(&r, loop, 50, 1500);
	dl_result_free(&r);
}

Test(faults, latency_every_upstream_block) { latency_every_upstream("block"); }
Test(faults, latency_every_upstream_epoll) { latency_every_upstream("epoll"); }

/* ================================================================== */
/* bandwidth                                                           */
/* ================================================================== */

/* 1 MiB at 500 KB/s (~2.1 s): the rate over the transfer is within
 * 10 %, the data intact. */
static void bandwidth_down(const char *loop)
{
	struct dl_result r;
	struct dl_server *s;
	long span, rate;

	dl_require_shim();
	s = fsrv("source", "1048576");
	fcli(&r, 1, DL_V(faults("bandwidth=500KB")), loop, "download", s,
	     NULL);
	dl_assert_run(&r, num(&r, "DOWN ", "got=") == 1048576 &&
		      num(&r, "DOWN ", "bad=") == -1 &&
		      dl_has_tok(need_line(&r, "DOWN "), "eof=1"),
		      "expected 1 MiB intact");
	span = num(&r, "DOWN ", "span_us=");
	dl_assert_run(&r, span > 0, "no transfer time");
	rate = (long)(1048576.0 * 1e6 / (double)span);
	dl_assert_run(&r, rate >= 450000 && rate <= 550000,
		      "downstream rate %ld B/s (1 MiB in %ld us), expected "
		      "500000 +/- 10 %%", rate, span);
	dl_assert_run(&r, num(&r, "DOWN ", "max_chunk=") <= 10000,
		      "a read moved more than 20 ms worth of bytes");
	dl_assert_run(&r, log_count(r.err, "bandwidth", 1,
				    "bytes_per_s=500000") == 1,
		      "expected one bandwidth event");
	loop_free(&r, loop, 200, 2000);
	dl_result_free(&r);
}

Test(faults, bandwidth_down_block) { bandwidth_down("block"); }
Test(faults, bandwidth_down_epoll) { bandwidth_down("epoll"); }
/* The source shuts down right after the stream: a program that takes a
 * short read after the hangup for the end must not lose the rest. */
Test(faults, bandwidth_down_epollshort) { bandwidth_down("epollshort"); }

static void bandwidth_up(const char *loop)
{
	struct dl_result r;
	struct dl_server *s;
	long span, rate;

	dl_require_shim();
	s = fsrv("sink", NULL);
	fcli(&r, 1, DL_V(faults("bandwidth=500KB direction=upstream")), loop,
	     "upload", s, "--bytes", "1048576", NULL);
	need_tok(&r, "UP ", "err=0");
	dl_assert_run(&r, dl_line(r.out, "REPLY SINK OK 1048576") != NULL,
		      "the server did not get 1 MiB intact");
	span = num(&r, "UP ", "span_us=");
	dl_assert_run(&r, span > 0, "no transfer time");
	rate = (long)(1048576.0 * 1e6 / (double)span);
	dl_assert_run(&r, rate >= 450000 && rate <= 550000,
		      "upstream rate %ld B/s (1 MiB in %ld us), expected "
		      "500000 +/- 10 %%", rate, span);
	dl_assert_run(&r, log_count(r.err, "bandwidth", 1,
				    "bytes_per_s=500000") == 1,
		      "expected one bandwidth event");
	loop_free(&r, loop, 200, 2000);
	dl_result_free(&r);
}

Test(faults, bandwidth_up_block) { bandwidth_up("block"); }
Test(faults, bandwidth_up_epoll) { bandwidth_up("epoll"); }
Test(faults, bandwidth_up_epollshort) { bandwidth_up("epollshort"); }

/* ================================================================== */
/* refuse, unreachable                                                 */
/* ================================================================== */

/* connect fails with want after delay_ms (never earlier), although the
 * server is up; the server never sees a connection. */
static void connect_fails(const char *loop, const char *spec,
			  const char *kind, const char *want, long delay_ms)
{
	struct dl_result r;
	struct dl_server *s;
	char tok[48];

	dl_require_shim();
	s = fsrv("echo", NULL);
	connect_timed(&r, loop, s, DL_V(faults(spec)), 1, want, delay_ms);
	dl_fmt(tok, sizeof(tok), "delay_ms=%ld", delay_ms);
	dl_assert_run(&r, log_count(r.err, kind, 1, tok) == 1,
		      "expected one %s event", kind);
	loop_free(&r, loop, delay_ms, delay_ms);
	dl_assert_run(&r, !strstr(dl_server_output(s, 100), "END "),
		      "the server saw a connection: %s", s->buf);
	dl_result_free(&r);
}

Test(faults, refuse_block)
{
	connect_fails("block", "refuse delay=300ms", "refuse", "ECONNREFUSED",
		      300);
}

Test(faults, refuse_epoll)
{
	connect_fails("epoll", "refuse delay=300ms", "refuse", "ECONNREFUSED",
		      300);
}

Test(faults, unreachable_block)
{
	connect_fails("block", "unreachable delay=300ms", "unreachable",
		      "EHOSTUNREACH", 300);
}

Test(faults, unreachable_epoll)
{
	connect_fails("epoll", "unreachable delay=300ms", "unreachable",
		      "EHOSTUNREACH", 300);
}

Test(faults, unreachable_enetunreach_block)
{
	connect_fails("block", "unreachable=ENETUNREACH delay=200ms",
		      "unreachable", "ENETUNREACH", 200);
}

Test(faults, unreachable_enetunreach_epoll)
{
	connect_fails("epoll", "unreachable=ENETUNREACH delay=200ms",
		      "unreachable", "ENETUNREACH", 200);
}

/* The edge-triggered loop learns the refusal too. */
Test(faults, refuse_epollet)
{
	connect_fails("epollet", "refuse delay=200ms", "refuse",
		      "ECONNREFUSED", 200);
}

/* ================================================================== */
/* blackhole                                                           */
/* ================================================================== */

/* The handshake never completes: only the request deadline (500 ms)
 * ends it, with ETIMEDOUT. */
static void blackhole_connect(const char *loop)
{
	struct dl_result r;
	struct dl_server *s;

	dl_require_shim();
	s = fsrv("echo", NULL);
	connect_timed(&r, loop, s,
		      DL_V(faults("blackhole=connect"),
			   "DEADLINE_REQUEST_TIMEOUT=500ms"),
		      0, "ETIMEDOUT", 500);
	dl_assert_run(&r, strstr(r.err, "event=deadline") &&
		      strstr(r.err, "phase=request"),
		      "the request deadline did not end it");
	dl_assert_run(&r, log_count(r.err, "blackhole", 1, NULL) == 1,
		      "expected one blackhole event");
	loop_free(&r, loop, 500, 500);
	dl_result_free(&r);
}

Test(faults, blackhole_connect_block) { blackhole_connect("block"); }
Test(faults, blackhole_connect_epoll) { blackhole_connect("epoll"); }

/* Data blackhole: 1 MB of writes "succeed" at once, the server receives
 * nothing, the read waits for the request deadline. */
static void blackhole_data(const char *loop)
{
	struct dl_result r;
	struct dl_server *s;
	char end[256];
	long ms;

	dl_require_shim();
	s = fsrv("count", NULL);
	fcli(&r, 1, DL_V(faults("blackhole"), "DEADLINE_REQUEST_TIMEOUT=500ms"),
	     loop, "rw", s, "--send-bytes", "1000000", NULL);
	need_tok(&r, "RW ", "cerr=0");
	need_tok(&r, "RW ", "werr=0");
	dl_assert_run(&r, num(&r, "RW ", "sent=") == 1000000,
		      "writes into the blackhole must report full length");
	need_tok(&r, "RW ", "err=ETIMEDOUT");
	ms = num(&r, "RW ", "ms=");
	dl_assert_run(&r, ms >= 500 && ms <= 500 + f_slack(),
		      "the read ended after %ld ms, expected the 500 ms "
		      "deadline", ms);
	server_end(s, 1, end, sizeof(end));
	cr_assert(line_ll(end, "bytes=") == 0,
		  "the server received bytes through a blackhole: %s", end);
	dl_assert_run(&r, log_count(r.err, "blackhole", 1, NULL) == 1,
		      "expected one blackhole event");
	loop_free(&r, loop, 500, 500);
	dl_result_free(&r);
}

Test(faults, blackhole_data_block) { blackhole_data("block"); }
Test(faults, blackhole_data_epoll) { blackhole_data("epoll"); }

/* then="reset"/"eof" then_after=300ms: the blackhole ends that way at
 * 300 ms, without any deadline. */
static void blackhole_then(const char *loop, const char *then)
{
	struct dl_result r;
	struct dl_server *s;
	char spec[128], end[256];
	int reset = !strcmp(then, "reset");
	long ms;

	dl_require_shim();
	s = fsrv("count", NULL);
	dl_fmt(spec, sizeof(spec), "blackhole then=%s then_after=300ms", then);
	fcli(&r, 1, DL_V(faults(spec)), loop, "rw", s, "--send-bytes", "1000",
	     NULL);
	dl_assert_run(&r, num(&r, "RW ", "sent=") == 1000 &&
		      num(&r, "RW ", "got=") == 0, "1000 bytes sent, none read");
	if (reset)
		need_tok(&r, "RW ", "err=ECONNRESET");
	else
		dl_assert_run(&r, dl_has_tok(need_line(&r, "RW "), "err=0") &&
			      dl_has_tok(need_line(&r, "RW "), "eof=1"),
			      "expected end-of-file");
	ms = num(&r, "RW ", "ms=");
	dl_assert_run(&r, ms >= 300 && ms <= 300 + f_slack(),
		      "the blackhole ended after %ld ms, expected [300, %ld]",
		      ms, 300 + f_slack());
	server_end(s, 1, end, sizeof(end));
	cr_assert(line_ll(end, "bytes=") == 0,
		  "the server received bytes through a blackhole: %s", end);
	if (reset)
		cr_assert(strstr(end, "how=rst"),
			  "the server should have seen a reset: %s", end);
	dl_assert_run(&r, log_count(r.err, "blackhole", 1,
				    "then_after_ms=300") == 1,
		      "expected one blackhole event");
	loop_free(&r, loop, 300, 300);
	dl_result_free(&r);
}

Test(faults, blackhole_then_reset_block) { blackhole_then("block", "reset"); }
Test(faults, blackhole_then_reset_epoll) { blackhole_then("epoll", "reset"); }
Test(faults, blackhole_then_eof_block) { blackhole_then("block", "eof"); }
Test(faults, blackhole_then_eof_epoll) { blackhole_then("epoll", "eof"); }

/* ================================================================== */
/* reset, eof after N bytes                                            */
/* ================================================================== */

/* The client receives exactly 12345 bytes of the stream, then
 * ECONNRESET (reset) or end-of-file (eof): reading 1000 at a time (the
 * cut falls inside a read) and 64 KiB at a time. */
static void ends_after_bytes(const char *loop, const char *kind)
{
	static const char *const sizes[] = { "1000", "65536" };
	int reset = !strcmp(kind, "reset");
	char spec[64];

	dl_require_shim();
	dl_fmt(spec, sizeof(spec), "%s after_bytes=12345", kind);
	for (int i = 0; i < 2; i++) {
		struct dl_result r;
		struct dl_server *s = fsrv("source", "1048576");
		char end[256];

		fcli(&r, 1, DL_V(faults(spec)), loop, "download", s,
		     "--read-size", sizes[i], NULL);
		dl_assert_run(&r, num(&r, "DOWN ", "got=") == 12345,
			      "expected exactly 12345 bytes (reads of %s)",
			      sizes[i]);
		dl_assert_run(&r, num(&r, "DOWN ", "bad=") == -1,
			      "the bytes before the %s are not the stream",
			      kind);
		if (reset)
			need_tok(&r, "DOWN ", "err=ECONNRESET");
		else
			dl_assert_run(&r,
				      dl_has_tok(need_line(&r, "DOWN "), "err=0") &&
				      dl_has_tok(need_line(&r, "DOWN "), "eof=1"),
				      "expected end-of-file after 12345 bytes");
		dl_assert_run(&r, log_count(r.err, kind, 1, "bytes=12345") == 1,
			      "expected one %s event at bytes=12345", kind);
		if (reset) {
			server_end(s, 1, end, sizeof(end));
			cr_assert(strstr(end, "how=rst"),
				  "the server should have seen a reset: %s",
				  end);
		}
		dl_result_free(&r);
	}
}

Test(faults, reset_after_bytes_block) { ends_after_bytes("block", "reset"); }
Test(faults, reset_after_bytes_epoll) { ends_after_bytes("epoll", "reset"); }
Test(faults, eof_after_bytes_block) { ends_after_bytes("block", "eof"); }
Test(faults, eof_after_bytes_epoll) { ends_after_bytes("epoll", "eof"); }

/* ================================================================== */
/* error                                                               */
/* ================================================================== */

/* error="EIO": the first write fails with EIO (nothing reaches the
 * server); with direction=downstream the write goes through and the read
 * fails with EIO. */
static void error_eio(const char *loop)
{
	struct dl_result r;
	struct dl_server *s;
	char end[256];

	dl_require_shim();
	s = fsrv("echo", NULL);
	fcli(&r, 1, DL_V(faults("error=EIO")), loop, "rw", s, "--send-bytes",
	     "10", "--recv", "10", NULL);
	need_tok(&r, "RW ", "cerr=0");
	need_tok(&r, "RW ", "werr=EIO");
	dl_assert_run(&r, num(&r, "RW ", "sent=") == 0, "a byte was sent");
	dl_assert_run(&r, log_count(r.err, "error", 1, "errno=EIO") == 1,
		      "expected one error event");
	dl_result_free(&r);
	server_end(s, 1, end, sizeof(end));
	cr_assert(line_ll(end, "bytes=") == 0,
		  "the failed write reached the server: %s", end);

	fcli(&r, 1, DL_V(faults("error=EIO direction=downstream")), loop, "rw",
	     s, "--send-bytes", "10", "--recv", "10", NULL);
	need_tok(&r, "RW ", "werr=0");
	dl_assert_run(&r, num(&r, "RW ", "sent=") == 10, "the write failed");
	need_tok(&r, "RW ", "err=EIO");
	dl_assert_run(&r, num(&r, "RW ", "got=") == 0, "the read succeeded");
	dl_assert_run(&r, log_count(r.err, "error", 1, "errno=EIO") == 1,
		      "expected one error event");
	dl_result_free(&r);
}

Test(faults, error_eio_block) { error_eio("block"); }
Test(faults, error_eio_epoll) { error_eio("epoll"); }

/* error="EIO" nth=2: connections 2 and 4 fail their first call with
 * EIO, connections 1 and 3 work. */
static void error_eio_nth(const char *loop)
{
	struct dl_result r;
	struct dl_server *s;

	dl_require_shim();
	s = fsrv("echo", NULL);
	fcli(&r, 1, DL_V(faults("error=EIO nth=2")), loop, "multi", s,
	     "--conns", "4", "--exchange", NULL);
	need_tok(&r, "C 1 ", "xchg=0");
	need_tok(&r, "C 2 ", "xchg=EIO");
	need_tok(&r, "C 3 ", "xchg=0");
	need_tok(&r, "C 4 ", "xchg=EIO");
	dl_assert_run(&r, log_count(r.err, "error", 1, "conn=2") == 1 &&
		      log_count(r.err, "error", 1, "conn=4") == 1 &&
		      log_count(r.err, "error", 1, NULL) == 2,
		      "expected error events for connections 2 and 4 only");
	dl_result_free(&r);
}

Test(faults, error_eio_nth_block) { error_eio_nth("block"); }
Test(faults, error_eio_nth_epoll) { error_eio_nth("epoll"); }

/* The R lines' outcomes ("w=.. r=.."), for comparing runs. */
static char *outcomes(const struct dl_result *r)
{
	char *all = dl_lines(r->out, "R "), *o = calloc(1, strlen(all) + 1);
	size_t n = 0;

	cr_assert(o, "out of memory");
	for (const char *p = all; *p;) {
		const char *nl = strchr(p, '\n'), *w = strstr(p, " w=");
		size_t l = nl ? (size_t)(nl - p + 1) : strlen(p);

		if (w && w < p + l) {
			memcpy(o + n, w, l - (size_t)(w - p));
			n += l - (size_t)(w - p);
		}
		p += l;
	}
	free(all);
	return o;
}

/* error="EIO" p=0.3 over 300 rounds (one write and one read each): 30 %
 * of the calls fail (+/- 10 points), every failure is EIO and logged;
 * the same seed gives the same failures, another seed others. */
static void error_eio_probability(const char *loop)
{
	struct dl_result r, again, other;
	struct dl_server *s;
	long calls, errs;
	char *a, *b, *c;

	dl_require_shim();
	s = fsrv("echo", NULL);
	fcli(&r, 1, DL_V(faults("error=EIO p=0.3"), "DEADLINE_SEED=42"), loop,
	     "window", s, "--n", "300", NULL);
	calls = num(&r, "WIN ", "wcalls=") + num(&r, "WIN ", "rcalls=");
	errs = num(&r, "WIN ", "werr=") + num(&r, "WIN ", "rerr=");
	dl_assert_run(&r, calls >= 300 && errs >= calls * 2 / 10 &&
		      errs <= calls * 4 / 10,
		      "%ld of %ld calls failed, expected 30 %% +/- 10", errs,
		      calls);
	need_tok(&r, "WIN ", "errs=,EIO,");
	dl_assert_run(&r, log_count(r.err, "error", 1, "errno=EIO") == errs,
		      "expected one error event per failed call (%ld)", errs);

	fcli(&again, 1, DL_V(faults("error=EIO p=0.3"), "DEADLINE_SEED=42"),
	     loop, "window", s, "--n", "300", NULL);
	fcli(&other, 1, DL_V(faults("error=EIO p=0.3"), "DEADLINE_SEED=43"),
	     loop, "window", s, "--n", "300", NULL);
	a = outcomes(&r);
	b = outcomes(&again);
	c = outcomes(&other);
	cr_assert(strlen(a) > 0 && !strcmp(a, b),
		  "DEADLINE_SEED=42 twice gave different failures");
	cr_assert(strcmp(a, c) != 0,
		  "DEADLINE_SEED=42 and 43 gave the same 300 outcomes");
	free(a);
	free(b);
	free(c);
	dl_result_free(&r);
	dl_result_free(&again);
	dl_result_free(&other);
}

Test(faults, error_eio_probability_block) { error_eio_probability("block"); }
Test(faults, error_eio_probability_epoll) { error_eio_probability("epoll"); }

/* ================================================================== */
/* slice, spurious                                                     */
/* ================================================================== */

/* slice=1000: no read or write moves more than 1000 bytes; 1 MiB each
 * way arrives intact; nothing spurious. */
static void slice(const char *loop)
{
	struct dl_result r;
	struct dl_server *src, *sink;

	dl_require_shim();
	src = fsrv("source", "1048576");
	sink = fsrv("sink", NULL);
	fcli(&r, 1, DL_V(faults("slice=1000")), loop, "download", src, NULL);
	dl_assert_run(&r, num(&r, "DOWN ", "got=") == 1048576 &&
		      num(&r, "DOWN ", "bad=") == -1 &&
		      dl_has_tok(need_line(&r, "DOWN "), "eof=1"),
		      "expected 1 MiB intact");
	dl_assert_run(&r, num(&r, "DOWN ", "max_chunk=") <= 1000,
		      "a read returned more than 1000 bytes");
	dl_assert_run(&r, num(&r, "DOWN ", "reads=") >= 1049,
		      "too few reads for 1000-byte slices");
	dl_assert_run(&r, num(&r, "DOWN ", "eintr=") == 0 &&
		      num(&r, "DOWN ", "ready_eagain=") == 0,
		      "spurious failures without spurious=");
	dl_assert_run(&r, log_count(r.err, "slice", 1, "max_bytes=1000") == 1,
		      "expected one slice event");
	dl_result_free(&r);

	fcli(&r, 1, DL_V(faults("slice=1000")), loop, "upload", sink,
	     "--bytes", "1048576", NULL);
	need_tok(&r, "UP ", "err=0");
	dl_assert_run(&r, num(&r, "UP ", "max_chunk=") <= 1000,
		      "a write moved more than 1000 bytes");
	dl_assert_run(&r, num(&r, "UP ", "writes=") >= 1049,
		      "too few writes for 1000-byte slices");
	dl_assert_run(&r, dl_line(r.out, "REPLY SINK OK 1048576") != NULL,
		      "the server did not get 1 MiB intact");
	dl_result_free(&r);
}

Test(faults, slice_block) { slice("block"); }
Test(faults, slice_epoll) { slice("epoll"); }
Test(faults, slice_epollet) { slice("epollet"); }
/* A program that waits for the next edge after a short count (nginx),
 * and takes a short read after a hangup for the end (haproxy): the
 * shim's short counts must not strand it or cut the stream. */
Test(faults, slice_epollshort) { slice("epollshort"); }

/* A connection moved to another number (dup, then the first closed, as a
 * daemon that dup2()s a socket onto stdio does) keeps its faults:
 * latency, slices, a reset at an exact byte. */
static void dup_keeps_faults(const char *loop)
{
	struct dl_result r;
	struct dl_server *src, *echo;

	dl_require_shim();
	src = fsrv("source", "1048576");
	echo = fsrv("echo", NULL);

	fcli(&r, 1, DL_V(faults("slice=1000")), loop, "download", src, "--dup",
	     NULL);
	need_line(&r, "DUP ");
	dl_assert_run(&r, num(&r, "DOWN ", "got=") == 1048576 &&
		      num(&r, "DOWN ", "bad=") == -1,
		      "expected 1 MiB intact");
	dl_assert_run(&r, num(&r, "DOWN ", "max_chunk=") <= 1000,
		      "a read through the copy returned more than 1000 bytes");
	dl_result_free(&r);

	fcli(&r, 1, DL_V(faults("reset after_bytes=12345")), loop, "download",
	     src, "--dup", NULL);
	need_tok(&r, "DOWN ", "got=12345");
	need_tok(&r, "DOWN ", "err=ECONNRESET");
	dl_result_free(&r);

	fcli(&r, 1, DL_V(faults("latency=50ms")), loop, "rounds", echo, "--n",
	     "10", "--dup", NULL);
	dl_assert_run(&r, num(&r, "ROUNDS ", "n=") == 10 &&
		      num(&r, "ROUNDS ", "bad=") == 0,
		      "10 intact rounds expected");
	dl_assert_run(&r, num(&r, "ROUNDS ", "min_us=") >= 50000,
		      "a round trip through the copy took less than 50 ms");
	loop_free(&r, loop, 50, 500);
	dl_result_free(&r);
}

Test(faults, dup_keeps_faults_block) { dup_keeps_faults("block"); }
Test(faults, dup_keeps_faults_epoll) { dup_keeps_faults("epoll"); }

/* A program that peeks until a whole header is there (16 bytes) under
 * 4-byte slices and a bandwidth limit: a peek moves nothing, so neither
 * cuts it (else it would spin forever), while the reads after it are
 * cut as usual. */
static void peek_whole_header(const char *loop)
{
	struct dl_result r;
	struct dl_server *s;

	dl_require_shim();
	s = fsrv("source", "65536");
	fcli(&r, 1, DL_V(faults("slice=4 bandwidth=100KB")), loop, "peek", s,
	     "--size", "16", "--timeout", "5000", NULL);
	dl_assert_run(&r, !dl_line(r.out, "HANG"),
		      "the program never saw 16 bytes through its peeks");
	need_tok(&r, "PEEK ", "got=16");
	need_tok(&r, "PEEK ", "same=1");
	need_tok(&r, "PEEK ", "bad=-1");
	dl_assert_run(&r, log_count(r.err, "slice", 1, "max_bytes=4") == 1,
		      "the reads after the peek were not sliced");
	dl_result_free(&r);
}

Test(faults, peek_whole_header_block) { peek_whole_header("block"); }
Test(faults, peek_whole_header_epoll) { peek_whole_header("epoll"); }

/* Twelve groups on one connection: the "logged once per connection"
 * books keep each group's kinds apart (group 0's bandwidth event must
 * not stand for group 11's slice). */
static void many_groups(const char *loop)
{
	char spec[1024];
	struct dl_result r;
	struct dl_server *s;

	dl_require_shim();
	dl_fmt(spec, sizeof(spec), "DEADLINE_FAULTS=" ON_LO "bandwidth=100MB");
	for (int i = 1; i < 11; i++)
		dl_fmt(spec + strlen(spec), sizeof(spec) - strlen(spec),
		       ";" ON_LO "refuse nth=1000");
	dl_fmt(spec + strlen(spec), sizeof(spec) - strlen(spec),
	       ";" ON_LO "slice=1000");
	s = fsrv("source", "65536");
	fcli(&r, 1, DL_V(spec), loop, "download", s, NULL);
	dl_assert_run(&r, num(&r, "DOWN ", "got=") == 65536 &&
		      num(&r, "DOWN ", "bad=") == -1,
		      "expected 64 KiB intact");
	dl_assert_run(&r, num(&r, "DOWN ", "max_chunk=") <= 1000,
		      "the twelfth group's slice did not apply");
	dl_assert_run(&r, log_count(r.err, "bandwidth", 1, NULL) == 1 &&
		      log_count(r.err, "slice", 1, "max_bytes=1000") == 1,
		      "expected one bandwidth and one slice event");
	dl_result_free(&r);
}

Test(faults, many_groups_block) { many_groups("block"); }
Test(faults, many_groups_epoll) { many_groups("epoll"); }

/* slice=4096 spurious=0.2: the blocking program sees EINTR on about a
 * fifth of its calls (it retries), the event loops see EAGAIN right
 * after epoll said ready, and everything still arrives intact; an
 * edge-triggered loop must not hang. */
static void spurious(const char *loop)
{
	struct dl_result r;
	struct dl_server *src, *sink;
	int block = !strcmp(loop, "block");

	dl_require_shim();
	src = fsrv("source", "1048576");
	sink = fsrv("sink", NULL);
	fcli(&r, 1, DL_V(faults("slice=4096 spurious=0.2"), "DEADLINE_SEED=7"),
	     loop, "download", src, "--timeout", "5000", NULL);
	dl_assert_run(&r, num(&r, "DOWN ", "got=") == 1048576 &&
		      num(&r, "DOWN ", "bad=") == -1 &&
		      dl_has_tok(need_line(&r, "DOWN "), "eof=1"),
		      "expected 1 MiB intact");
	dl_assert_run(&r, num(&r, "DOWN ", "max_chunk=") <= 4096,
		      "a read returned more than 4096 bytes");
	if (block) {
		long e = num(&r, "DOWN ", "eintr="),
		     calls = e + num(&r, "DOWN ", "reads=");

		dl_assert_run(&r, e >= calls / 10 && e <= calls * 3 / 10,
			      "%ld EINTR in %ld reads, expected 20 %% +/- 10",
			      e, calls);
	} else {
		dl_assert_run(&r, num(&r, "DOWN ", "eintr=") == 0,
			      "EINTR in an event loop");
		dl_assert_run(&r, num(&r, "DOWN ", "ready_eagain=") > 0,
			      "no spurious EAGAIN seen");
	}
	dl_assert_run(&r, log_count(r.err, "slice", 1, block ? "errno=EINTR"
							     : "errno=EAGAIN") > 0,
		      "the spurious failures were not logged");
	dl_result_free(&r);

	fcli(&r, 1, DL_V(faults("slice=4096 spurious=0.2"), "DEADLINE_SEED=7"),
	     loop, "upload", sink, "--bytes", "1048576", "--timeout", "5000",
	     NULL);
	need_tok(&r, "UP ", "err=0");
	dl_assert_run(&r, dl_line(r.out, "REPLY SINK OK 1048576") != NULL,
		      "the server did not get 1 MiB intact");
	if (block)
		dl_assert_run(&r, num(&r, "UP ", "eintr=") > 0,
			      "no EINTR on writes");
	else
		dl_assert_run(&r, num(&r, "UP ", "eagain=") > 0,
			      "no EAGAIN on writes");
	dl_result_free(&r);
}

Test(faults, spurious_block) { spurious("block"); }
Test(faults, spurious_epoll) { spurious("epoll"); }
Test(faults, spurious_epollet) { spurious("epollet"); }
Test(faults, spurious_epollshort) { spurious("epollshort"); }

/* ================================================================== */
/* slow_close                                                          */
/* ================================================================== */

/* slow_close=300ms: the peer sees the FIN no sooner than 300 ms after
 * close() was called.  A blocking program's close() takes the 300 ms; an
 * event loop's close() returns at once and the loop runs on. */
static void slow_close(const char *loop)
{
	struct dl_result r;
	struct dl_server *s;
	char end[256];
	long long fin_ms;
	long us;

	dl_require_shim();
	s = fsrv("echo", NULL);
	fcli(&r, 1, DL_V(faults("slow_close=300ms")), loop, "close", s,
	     "--exchange", "--after-ms", "500", NULL);
	need_tok(&r, "EXCHANGE ", "err=0");
	us = num(&r, "CLOSE ", "us=");
	if (!strcmp(loop, "block"))
		dl_assert_run(&r, us >= 300000 &&
			      us <= (300 + f_slack()) * 1000,
			      "close() took %ld us, expected [300, %ld] ms",
			      us, 300 + f_slack());
	else
		dl_assert_run(&r, us < 50000,
			      "close() took %ld us in an event loop", us);
	server_end(s, 1, end, sizeof(end));
	cr_assert(strstr(end, "how=fin"), "expected a FIN: %s", end);
	fin_ms = (line_ll(end, "end_ns=") -
		  line_ll(need_line(&r, "CLOSE "), "start_ns=")) / 1000000;
	cr_assert(fin_ms >= 300 && fin_ms <= 300 + f_slack(),
		  "the server saw the FIN %lld ms after close(), expected "
		  "[300, %ld]: %s", fin_ms, 300 + f_slack(), end);
	dl_assert_run(&r, log_count(r.err, "slow_close", 1,
				    "delay_ms=300") == 1,
		      "expected one slow_close event");
	if (strcmp(loop, "block"))
		dl_assert_run(&r, num(&r, "AFTER ", "ticks=") >= 500 / TICK_MS / 3,
			      "the loop stalled after close()");
	dl_result_free(&r);
}

Test(faults, slow_close_block) { slow_close("block"); }
Test(faults, slow_close_epoll) { slow_close("epoll"); }

/* ================================================================== */
/* dns                                                                 */
/* ================================================================== */

/* getaddrinfo("localhost") under a host="localhost" rule gets answer;
 * a numeric address, which no name rule matches, resolves as ever. */
static void dns_answer(const char *loop, const char *what, const char *rc)
{
	struct dl_result r;
	char spec[96], tok[48];

	dl_require_shim();
	dl_fmt(spec, sizeof(spec), "DEADLINE_FAULTS=host=localhost dns=%s",
	       what);
	fcli(&r, 1, DL_V(spec), loop, "dns", NULL, "--name", "localhost",
	     NULL);
	dl_fmt(tok, sizeof(tok), "rc=%s", rc);
	need_tok(&r, "DNS ", tok);
	dl_fmt(tok, sizeof(tok), "answer=%s", what);
	dl_assert_run(&r, log_count(r.err, "dns", 1, tok) == 1,
		      "expected one dns event");
	dl_result_free(&r);

	fcli(&r, 1, DL_V(spec), loop, "dns", NULL, "--name", "127.0.0.1",
	     NULL);
	need_tok(&r, "DNS ", "rc=0");
	need_tok(&r, "DNS ", "addr=127.0.0.1");
	dl_assert_run(&r, log_count(r.err, "dns", 1, NULL) == 0,
		      "a lookup no rule matches met a dns fault");
	dl_result_free(&r);
}

Test(faults, dns_nxdomain_block) { dns_answer("block", "nxdomain", "EAI_NONAME"); }
Test(faults, dns_nxdomain_epoll) { dns_answer("epoll", "nxdomain", "EAI_NONAME"); }
Test(faults, dns_again_block) { dns_answer("block", "again", "EAI_AGAIN"); }
Test(faults, dns_again_epoll) { dns_answer("epoll", "again", "EAI_AGAIN"); }

/* dns="delay" delay=300ms: the lookup takes at least 300 ms and then
 * resolves; the connection to the answer works.  (In the event loop the
 * lookup runs in a worker thread, as in asyncio: the loop ticks on.) */
static void dns_delay(const char *loop)
{
	struct dl_result r;
	struct dl_server *s;
	long ms;

	dl_require_shim();
	s = fsrv("echo", NULL);
	fcli(&r, 1, DL_V("DEADLINE_FAULTS=host=localhost dns=delay delay=300ms"),
	     loop, "dns", s, "--name", "localhost", NULL);
	need_tok(&r, "DNS ", "rc=0");
	need_tok(&r, "DNS ", "addr=127.0.0.1");
	ms = num(&r, "DNS ", "ms=");
	dl_assert_run(&r, ms >= 300 && ms <= 300 + f_slack(),
		      "the lookup took %ld ms, expected [300, %ld]", ms,
		      300 + f_slack());
	need_tok(&r, "CONNECT ", "err=0");
	dl_assert_run(&r, log_count(r.err, "dns", 1, "delay_ms=300") == 1,
		      "expected one dns event");
	if (strcmp(loop, "block"))
		dl_assert_run(&r, num(&r, "DNS ", "ticks=") >= 300 / TICK_MS / 3,
			      "the loop did not run during the lookup");
	dl_result_free(&r);
}

Test(faults, dns_delay_block) { dns_delay("block"); }
Test(faults, dns_delay_epoll) { dns_delay("epoll"); }

/* The gethostbyname family meets the same dns faults, answering as glibc
 * does: h_errno HOST_NOT_FOUND (gethostbyname_r returning 0) or
 * TRY_AGAIN (returning EAGAIN); a delay, then the real answer. */
static void dns_hostent(const char *api)
{
	static const struct {
		const char *fault, *rc, *ret;
	} cases[] = {
		{ "dns=nxdomain", "rc=HOST_NOT_FOUND", "ret=0" },
		{ "dns=again", "rc=TRY_AGAIN", "ret=EAGAIN" },
		{ "dns=delay delay=300ms", "rc=0", "ret=0" },
	};
	int r_api = !strcmp(api, "gethostbyname_r");

	dl_require_shim();
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct dl_result r;
		char spec[96];

		dl_fmt(spec, sizeof(spec), "DEADLINE_FAULTS=host=localhost %s",
		       cases[i].fault);
		fcli(&r, 1, DL_V(spec), "block", "dns", NULL, "--name",
		     "localhost", "--api", api, NULL);
		need_tok(&r, "DNS ", cases[i].rc);
		if (r_api)
			need_tok(&r, "DNS ", cases[i].ret);
		if (!strcmp(cases[i].rc, "rc=0")) {
			long ms = num(&r, "DNS ", "ms=");

			need_tok(&r, "DNS ", "addr=127.0.0.1");
			dl_assert_run(&r, ms >= 300 && ms <= 300 + f_slack(),
				      "%s took %ld ms, expected [300, %ld]", api,
				      ms, 300 + f_slack());
		}
		dl_assert_run(&r, log_count(r.err, "dns", 1, "host=localhost") ==
					  1,
			      "%s, %s: expected one dns event", api,
			      cases[i].fault);
		dl_result_free(&r);
	}
}

Test(faults, dns_gethostbyname) { dns_hostent("gethostbyname"); }
Test(faults, dns_gethostbyname_r) { dns_hostent("gethostbyname_r"); }

/* ================================================================== */
/* triggers                                                            */
/* ================================================================== */

/* Which of the "C <i>" lines say connect=want, as "1,3," etc. */
static void which(const struct dl_result *r, const char *want, int n,
		  char *buf, size_t cap)
{
	char tok[48];
	size_t o = 0;

	dl_fmt(tok, sizeof(tok), "connect=%s", want);
	buf[0] = '\0';
	for (int i = 1; i <= n; i++) {
		char pre[16];

		dl_fmt(pre, sizeof(pre), "C %d ", i);
		if (dl_has_tok(need_line(r, pre), tok)) {
			int k = snprintf(buf + o, cap - o, "%d,", i);

			cr_assert(k > 0 && (size_t)k < cap - o, "overflow");
			o += (size_t)k;
		}
	}
}

/* nth=3: connections 3, 6 and 9 of 9 are refused, and logged as such. */
static void trigger_nth(const char *loop)
{
	struct dl_result r;
	struct dl_server *s;
	char got[128];

	dl_require_shim();
	s = fsrv("echo", NULL);
	fcli(&r, 1, DL_V(faults("refuse nth=3")), loop, "multi", s, "--conns",
	     "9", "--exchange", NULL);
	which(&r, "ECONNREFUSED", 9, got, sizeof(got));
	dl_assert_run(&r, !strcmp(got, "3,6,9,"),
		      "refused connections %s, expected 3,6,9,", got);
	which(&r, "0", 9, got, sizeof(got));
	dl_assert_run(&r, !strcmp(got, "1,2,4,5,7,8,"),
		      "connected %s, expected the others", got);
	dl_assert_run(&r, log_count(r.err, "refuse", 1, NULL) == 3 &&
		      log_count(r.err, "refuse", 1, "conn=3") == 1 &&
		      log_count(r.err, "refuse", 1, "conn=6") == 1 &&
		      log_count(r.err, "refuse", 1, "conn=9") == 1,
		      "expected refuse events for conn=3, 6 and 9");
	dl_result_free(&r);
}

Test(faults, trigger_nth_block) { trigger_nth("block"); }
Test(faults, trigger_nth_epoll) { trigger_nth("epoll"); }

/* times=2: the first two connections are refused, then never again. */
static void trigger_times(const char *loop)
{
	struct dl_result r;
	struct dl_server *s;
	char got[128];

	dl_require_shim();
	s = fsrv("echo", NULL);
	fcli(&r, 1, DL_V(faults("refuse times=2")), loop, "multi", s,
	     "--conns", "6", "--exchange", NULL);
	which(&r, "ECONNREFUSED", 6, got, sizeof(got));
	dl_assert_run(&r, !strcmp(got, "1,2,"),
		      "refused connections %s, expected 1,2,", got);
	dl_assert_run(&r, log_count(r.err, "refuse", 1, NULL) == 2,
		      "expected two refuse events");
	dl_result_free(&r);
}

Test(faults, trigger_times_block) { trigger_times("block"); }
Test(faults, trigger_times_epoll) { trigger_times("epoll"); }

/* p=0.3 over 200 connections: 30 % (+/- 10 points) refused, each
 * refusal logged. */
static void trigger_probability(const char *loop)
{
	struct dl_result r;
	struct dl_server *s;
	int refused = 0;

	dl_require_shim();
	s = fsrv("echo", NULL);
	fcli(&r, 1, DL_V(faults("refuse p=0.3"), "DEADLINE_SEED=1234"), loop,
	     "multi", s, "--conns", "200", NULL);
	for (const char *p = r.out; (p = strstr(p, "connect=ECONNREFUSED"));
	     p++)
		refused++;
	dl_assert_run(&r, dl_line(r.out, "C 200 ") != NULL,
		      "200 connections expected");
	dl_assert_run(&r, refused >= 40 && refused <= 80,
		      "%d of 200 connections refused, expected 60 +/- 20",
		      refused);
	dl_assert_run(&r, log_count(r.err, "refuse", 1, "trigger=\"probability=0.3\"")
			  == refused,
		      "expected one refuse event per refusal (%d)", refused);
	dl_result_free(&r);
}

Test(faults, trigger_probability_block) { trigger_probability("block"); }
Test(faults, trigger_probability_epoll) { trigger_probability("epoll"); }

/* after=200ms for=200ms: on one connection, a round every 20 ms for
 * 600 ms; calls fail with EIO exactly while the connection is between
 * 200 and 400 ms old.  The shim's clock starts inside connect(), at most
 * the connect time (c) after the client's: a failed round must end at or
 * after 200 ms and start before 400 + c; a round that starts at or
 * after 200 + c and ends before 400 ms must fail. */
static void trigger_window(const char *loop)
{
	struct dl_result r;
	struct dl_server *s;
	char *rounds;
	long c, calls;
	int failed = 0, must = 0;

	dl_require_shim();
	s = fsrv("echo", NULL);
	fcli(&r, 1, DL_V(faults("error=EIO after=200ms for=200ms")), loop,
	     "window", s, "--n", "30", "--every", "20", NULL);
	need_tok(&r, "CONNECT ", "err=0");
	c = num(&r, "CONNECT ", "us=") / 1000 + 1;
	rounds = dl_lines(r.out, "R ");
	for (const char *p = rounds; p && *p;
	     p = strchr(p, '\n'), p = p ? p + 1 : p) {
		long t = dl_field(p, "t_ms="), t2 = dl_field(p, "t2_ms=");
		int fail = dl_has_tok(p, "w=EIO") || dl_has_tok(p, "r=EIO");

		if (fail) {
			failed++;
			dl_assert_run(&r, t2 >= 200 && t < 400 + c,
				      "EIO outside the window: %.*s",
				      (int)strcspn(p, "\n"), p);
		}
		if (t >= 200 + c && t2 < 400) {
			must++;
			dl_assert_run(&r, fail, "no EIO inside the window: "
				      "%.*s", (int)strcspn(p, "\n"), p);
		}
		dl_assert_run(&r, fail || (dl_has_tok(p, "w=ok") &&
					   (dl_has_tok(p, "r=ok") ||
					    dl_has_tok(p, "r=-"))),
			      "unexpected outcome: %.*s",
			      (int)strcspn(p, "\n"), p);
	}
	free(rounds);
	dl_assert_run(&r, must >= 5 && failed >= must,
		      "only %d rounds fell inside the window", must);
	/* A round the window opens in the middle of fails its read, and
	 * the next round's read still waits for that echo: count calls. */
	calls = num(&r, "WIN ", "werr=") + num(&r, "WIN ", "rerr=");
	dl_assert_run(&r, log_count(r.err, "error", 1,
				    "trigger=\"after=200ms for=200ms\"") == calls,
		      "expected one error event per failed call (%ld)", calls);
	dl_result_free(&r);
}

Test(faults, trigger_window_block) { trigger_window("block"); }
Test(faults, trigger_window_epoll) { trigger_window("epoll"); }

/* after_bytes=5000: reads of 1000 bytes work until 5000 bytes have come
 * in; the next read fails with EIO. */
static void trigger_after_bytes(const char *loop)
{
	struct dl_result r;
	struct dl_server *s;
	long got;

	dl_require_shim();
	s = fsrv("source", "1048576");
	fcli(&r, 1, DL_V(faults("error=EIO after_bytes=5000")), loop,
	     "download", s, "--read-size", "1000", NULL);
	need_tok(&r, "DOWN ", "err=EIO");
	got = num(&r, "DOWN ", "got=");
	dl_assert_run(&r, got >= 5000 && got < 6000,
		      "EIO after %ld bytes, expected the first read after "
		      "5000", got);
	dl_assert_run(&r, num(&r, "DOWN ", "bad=") == -1, "corrupt stream");
	dl_assert_run(&r, log_count(r.err, "error", 1,
				    "trigger=\"after_bytes=5000\"") == 1,
		      "expected one error event");
	dl_result_free(&r);
}

Test(faults, trigger_after_bytes_block) { trigger_after_bytes("block"); }
Test(faults, trigger_after_bytes_epoll) { trigger_after_bytes("epoll"); }

/* ================================================================== */
/* DEADLINE_FAULTS_DRY_RUN                                             */
/* ================================================================== */

/* Dry run: every decision is logged with injected=false, nothing is
 * injected: round trips, connects and transfers stay native. */
static void dry_latency(const char *loop)
{
	struct dl_result r;
	struct dl_server *s;
	long nat, nat_w;

	dl_require_shim();
	s = fsrv("echo", NULL);
	native_rounds(s, loop, "20", &nat, &nat_w);
	fcli(&r, 1, DL_V(faults("latency=100ms"), "DEADLINE_FAULTS_DRY_RUN=1"),
	     loop, "rounds", s, "--n", "20", NULL);
	dl_assert_run(&r, median_rtt(&r) - nat < 25000 &&
		      num(&r, "ROUNDS ", "min_us=") < 100000,
		      "a dry run delayed the responses (native median %ld "
		      "us)", nat);
	dl_assert_run(&r, log_count(r.err, "latency", 0, "dry_run=true") == 20,
		      "expected 20 latency events with injected=false");
	dl_assert_run(&r, log_count(r.err, NULL, 1, NULL) == 0,
		      "a dry run logged an injected fault");
	dl_result_free(&r);
}

Test(faults, dry_run_latency_block) { dry_latency("block"); }
Test(faults, dry_run_latency_epoll) { dry_latency("epoll"); }

static void dry_connect(const char *loop)
{
	struct dl_result r;
	struct dl_server *s;

	dl_require_shim();
	s = fsrv("echo", NULL);
	fcli(&r, 1, DL_V(faults("refuse delay=300ms"),
			 "DEADLINE_FAULTS_DRY_RUN=1"),
	     loop, "connect", s, "--exchange", NULL);
	need_tok(&r, "CONNECT ", "err=0");
	dl_assert_run(&r, num(&r, "CONNECT ", "us=") < 100000,
		      "a dry-run refusal delayed the connect");
	need_tok(&r, "EXCHANGE ", "err=0");
	dl_assert_run(&r, log_count(r.err, "refuse", 0, NULL) == 1 &&
		      log_count(r.err, NULL, 1, NULL) == 0,
		      "expected one refuse event with injected=false");
	dl_result_free(&r);
}

Test(faults, dry_run_connect_block) { dry_connect("block"); }
Test(faults, dry_run_connect_epoll) { dry_connect("epoll"); }

/* bandwidth=100KB (10 s for 1 MiB), slice=100 and EIO on every call, all
 * dry: the download is native (well under 10 s, reads larger than 100
 * bytes, no EIO), each decision logged. */
static void dry_data(const char *loop)
{
	struct dl_result r;
	struct dl_server *s;

	dl_require_shim();
	s = fsrv("source", "1048576");
	fcli(&r, 1, DL_V("DEADLINE_FAULTS=" ON_LO "bandwidth=100KB;" ON_LO
			 "slice=100;" ON_LO "error=EIO",
			 "DEADLINE_FAULTS_DRY_RUN=1"),
	     loop, "download", s, NULL);
	dl_assert_run(&r, num(&r, "DOWN ", "got=") == 1048576 &&
		      num(&r, "DOWN ", "bad=") == -1 &&
		      dl_has_tok(need_line(&r, "DOWN "), "err=0"),
		      "expected 1 MiB intact, no error");
	dl_assert_run(&r, num(&r, "DOWN ", "span_us=") < 2000000,
		      "the dry-run bandwidth limit slowed the transfer");
	dl_assert_run(&r, num(&r, "DOWN ", "max_chunk=") > 100,
		      "the dry-run slice cut the reads");
	dl_assert_run(&r, log_count(r.err, "bandwidth", 0, NULL) == 1 &&
		      log_count(r.err, "slice", 0, NULL) == 1 &&
		      log_count(r.err, "error", 0, NULL) >= 1 &&
		      log_count(r.err, NULL, 1, NULL) == 0,
		      "expected dry-run events for bandwidth, slice and error, "
		      "none injected");
	dl_result_free(&r);
}

Test(faults, dry_run_data_block) { dry_data("block"); }
Test(faults, dry_run_data_epoll) { dry_data("epoll"); }

/* reset after_bytes=5000, dry: the whole stream arrives, and the reset
 * that would have happened is logged once (injected=false). */
static void dry_reset(const char *loop)
{
	struct dl_result r;
	struct dl_server *s;

	dl_require_shim();
	s = fsrv("source", "1048576");
	fcli(&r, 1, DL_V(faults("reset after_bytes=5000"),
			 "DEADLINE_FAULTS_DRY_RUN=1"),
	     loop, "download", s, NULL);
	dl_assert_run(&r, num(&r, "DOWN ", "got=") == 1048576 &&
		      dl_has_tok(need_line(&r, "DOWN "), "err=0"),
		      "a dry-run reset cut the stream");
	dl_assert_run(&r, log_count(r.err, NULL, 1, NULL) == 0,
		      "a dry run logged an injected fault");
	dl_assert_run(&r, log_count(r.err, "reset", 0, NULL) == 1,
		      "expected exactly one dry-run reset event, got %d",
		      log_count(r.err, "reset", 0, NULL));
	dl_result_free(&r);
}

Test(faults, dry_run_reset_block) { dry_reset("block"); }
Test(faults, dry_run_reset_epoll) { dry_reset("epoll"); }

/* ================================================================== */
/* The log                                                             */
/* ================================================================== */

/* A configuration file rule "flaky" refusing every 2nd connection;
 * DEADLINE_LOG=<file>: each refusal is one line in the file, naming the
 * fault, the rule, the trigger, the connection and the operation, in
 * that order after "event=fault injected=true"; nothing on stderr. */
static void log_file(const char *loop)
{
	struct dl_result r;
	struct dl_server *s;
	static const char want[] =
		"event=fault injected=true fault=refuse rule=flaky ";
	char path[PATH_MAX], *text;
	const char *conf;
	int lines = 0;

	dl_require_shim();
	s = fsrv("echo", NULL);
	conf = dl_write_file("flaky.conf",
			  "rules = (\n"
			  "  { name = \"flaky\"; cidr = \"127.0.0.1/32\";\n"
			  "    faults = ( { refuse = true; nth = 2; } ); }\n"
			  ");\n");
	dl_fmt(path, sizeof(path), "%s/shim.log", dl_tmpdir());
	fcli(&r, 1, DL_V(kv("DEADLINE_CONFIG=%s", conf),
			 kv("DEADLINE_LOG=%s", path)),
	     loop, "multi", s, "--conns", "4", "--exchange", NULL);
	need_tok(&r, "C 2 ", "connect=ECONNREFUSED");
	need_tok(&r, "C 4 ", "connect=ECONNREFUSED");
	need_tok(&r, "C 1 ", "connect=0");
	need_tok(&r, "C 3 ", "connect=0");
	dl_assert_run(&r, !strstr(r.err, "event=fault"),
		      "fault events went to stderr, not to DEADLINE_LOG");
	text = read_file(path);
	for (const char *p = text; p && *p;
	     p = strchr(p, '\n'), p = p ? p + 1 : p) {
		const char *f = strstr(p, "event=fault ");
		const char *nl = strchr(p, '\n');
		char conn[16];

		cr_assert(nl, "unterminated log line in %s", path);
		if (!f || f > nl)
			continue;
		lines++;
		cr_assert(!strncmp(f, want, strlen(want)),
			  "log line %d: %.*s", lines, (int)(nl - p), p);
		dl_fmt(conn, sizeof(conn), "conn=%d", 2 * lines);
		cr_assert(dl_has_tok(p, "trigger=\"nth=2\"") && dl_has_tok(p, conn) &&
			  dl_has_tok(p, "op=0") &&
			  strstr(f, "trigger=") < strstr(f, " conn=") &&
			  strstr(f, " conn=") < strstr(f, " op="),
			  "log line %d lacks trigger, %s or op=0: %.*s", lines,
			  conn, (int)(nl - p), p);
	}
	cr_assert(lines == 2, "expected 2 fault lines in %s, got %d:\n%s",
		  path, lines, text);
	free(text);
	dl_result_free(&r);
}

Test(faults, log_file_block) { log_file("block"); }
Test(faults, log_file_epoll) { log_file("epoll"); }
