/* test_blind.c - the calls the shim used not to see (issue 13, part 4):
 * sendfile and splice on a tracked socket, stdio on an fdopen'd socket,
 * TCP Fast Open connects; and the calls that never touch a socket.
 *
 * "No harm" cases run tests/helpers/blind natively and under the shim
 * (with a deadline armed, so the shim's own path runs, but far away) and
 * compare the RESULT lines, times left out.  Deadline cases check the
 * errno, the time (within [limit, limit + slack]) and the log line.
 * TCP Fast Open runs in a network namespace the helper creates (root;
 * skipped otherwise) with net.ipv4.tcp_fastopen=3.
 */
#include "harness.h"

TestSuite(blind, .init = dl_setup, .fini = dl_teardown, .timeout = 40);

/* ------------------------------------------------------------------ */
/* Plumbing                                                            */
/* ------------------------------------------------------------------ */

static void bl_run(struct dl_result *r, int preload, const char *const *env,
		   const char *const *args)
{
	const char *argv[32];
	int n = 0;

	dl_require_shim();
	argv[n++] = dl_helper("blind");
	for (; *args && n < 31; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	cr_assert(access(argv[0], X_OK) == 0, "%s is missing: make %s",
		  argv[0], "build/helpers/blind");
	dl_run(r, argv, env, preload, 20000);
}

static const char *bl_result(const struct dl_result *r)
{
	const char *p = dl_line(r->out, "RESULT ");

	dl_assert_ok(r, "blind");
	dl_assert_run(r, p != NULL, "blind printed no RESULT line");
	return p;
}

/* The output (LINE and RESULT lines) without the words whose key is in
 * drop (timings), for comparing two runs. */
static char *bl_norm(const char *out, const char *const *drop)
{
	char *res = calloc(1, strlen(out) + 1), *o = res;

	cr_assert(res, "out of memory");
	for (const char *p = out; *p;) {
		size_t n = strcspn(p, " \n");
		int skip = 0;

		for (const char *const *d = drop; *d; d++)
			if (!strncmp(p, *d, strlen(*d)))
				skip = 1;
		if (!skip) {
			memcpy(o, p, n);
			o += n;
			if (p[n])
				*o++ = p[n];
		}
		p += n;
		if (*p)
			p++;
	}
	return res;
}

/* Run args natively and under the shim with env; the normalised
 * outputs must be the same. */
static void bl_same(const char *const *env, const char *const *args,
		    const char *const *drop)
{
	struct dl_result nat, shim;
	char *a, *b;

	bl_run(&nat, 0, env, args);
	bl_run(&shim, 1, env, args);
	bl_result(&nat);
	bl_result(&shim);
	a = bl_norm(nat.out, drop);
	b = bl_norm(shim.out, drop);
	cr_assert_str_eq(b, a, "%s %s: under the shim\n%s\nnatively\n%s",
			 args[0], args[1] ? args[1] : "", shim.out, nat.out);
	dl_assert_run(&shim, !strstr(shim.err, "event=deadline"),
		      "no deadline should fire");
	free(a);
	free(b);
	dl_result_free(&nat);
	dl_result_free(&shim);
}

/* One event=deadline line for phase; the call failed with ETIMEDOUT
 * after ms in [limit, limit + slack] (ms_key: the RESULT's time). */
static void bl_cut(const struct dl_result *r, const char *line,
		   const char *err_key, const char *ms_key, const char *phase,
		   long limit)
{
	char want[48];
	long ms = dl_field(line, ms_key);

	dl_assert_run(r, !strcmp(dl_word(line, err_key), "ETIMEDOUT"),
		      "the call should fail with ETIMEDOUT");
	dl_assert_run(r, dl_rq_within(r, ms, limit, dl_slack()),
		      "cut at %ld ms, outside [%ld,%ld]", ms, limit,
		      limit + dl_slack());
	dl_assert_run(r, dl_count_lines(r->err, "event=deadline") == 1,
		      "expected one event=deadline line");
	dl_fmt(want, sizeof(want), " phase=%s ", phase);
	dl_assert_run(r, strstr(r->err, want) != NULL, "the line should say%s",
		      want);
}

static const char *const bl_times[] = { "ms=", "send_ms=", "reply_ms=",
					"poll_ms=", NULL };

/* ------------------------------------------------------------------ */
/* sendfile                                                            */
/* ------------------------------------------------------------------ */

/* Return values, offsets, file positions and errno as natively, for
 * whole, short, empty and failing transfers, with and without an offset
 * pointer, blocking and not. */
Test(blind, sendfile_same_as_native)
{
	struct dl_server *s = dl_server_startv("blind", DL_V("serve", "sink"));
	const char *const cases[][12] = {
		{ "--size", "200000" },
		{ "--size", "200000", "--count", "300000" },
		{ "--size", "1000", "--offset", "2000" },
		{ "--size", "200000", "--nooff", "--offset", "100", "--count",
		  "5000" },
		{ "--size", "1000", "--in", "bad" },
		{ "--size", "1000", "--in", "sock" },
		{ "--size", "1000", "--count", "0" },
		{ "--size", "3000000", "--loop" },
		{ "--size", "100000", "--nonblock", "--loop" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *args[20] = { "sendfile", s->port_s };
		int n = 2;

		for (int k = 0; cases[i][k]; k++)
			args[n++] = cases[i][k];
		args[n++] = "--shut";
		args[n] = NULL;
		bl_same(DL_V("DEADLINE_REQUEST_TIMEOUT=20s"), args, bl_times);
	}
}

/* A client that never reads: the blocking sendfile is cut at the idle
 * deadline, and the next call fails the same way. */
Test(blind, sendfile_outbound_idle_cut)
{
	struct dl_server *s = dl_server_startv("blind", DL_V("serve", "noread"));
	struct dl_result r;
	const char *line;

	bl_run(&r, 1, DL_V("DEADLINE_IDLE_TIMEOUT=300ms"),
	       DL_V("sendfile", s->port_s, "--size", "16000000", "--loop"));
	line = bl_result(&r);
	bl_cut(&r, line, "err=", " ms=", "idle", 300);
	dl_assert_run(&r, !strcmp(dl_word(line, "next="), "ETIMEDOUT"),
		      "the next sendfile should fail with ETIMEDOUT");
	/* What the kernel moved is in the offset. */
	dl_assert_run(&r, dl_field(line, " off=") > 0,
		      "the offset should tell how far the kernel got");
	dl_result_free(&r);
}

Test(blind, sendfile_outbound_request_cut)
{
	struct dl_server *s = dl_server_startv("blind", DL_V("serve", "noread"));
	struct dl_result r;

	bl_run(&r, 1, DL_V("DEADLINE_REQUEST_TIMEOUT=500ms"),
	       DL_V("sendfile", s->port_s, "--size", "16000000", "--loop"));
	bl_cut(&r, bl_result(&r), "err=", " ms=", "request", 500);
	dl_result_free(&r);
}

/* Inbound: a daemon serving a file with sendfile to a client that never
 * reads is cut at its idle deadline. */
Test(blind, sendfile_inbound_daemon_cut)
{
	struct dl_server *d = dl_server_start_ex(
		"blind", DL_V("daemon-sendfile", "--size", "16000000"),
		DL_V("DEADLINE_IDLE_TIMEOUT=300ms"), 1, 1, 1);
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM, 0), small = 4096;
	const char *line;
	long ms;

	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	a.sin_port = htons((uint16_t)d->port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0,
		  "connect: %s", strerror(errno));
	for (int i = 0; i < 100 && !strstr(d->buf, "RESULT "); i++)
		dl_server_fill(d, 100);
	dl_server_output(d, 100);
	line = strstr(d->buf, "RESULT ");
	cr_assert(line, "the daemon printed no RESULT: %s", d->buf);
	ms = dl_field(line, " ms=");
	cr_assert(strstr(line, " err=ETIMEDOUT "), "daemon: %s", line);
	cr_assert(dl_in_window(ms, 300), "cut at %ld ms, outside [300,%ld]: %s",
		  ms, 300 + dl_slack(), line);
	cr_assert(dl_count_lines(d->buf, "event=deadline") == 1 &&
		  strstr(d->buf, " phase=idle "), "one deadline line: %s", d->buf);
	close(fd);
}

/* ------------------------------------------------------------------ */
/* splice                                                              */
/* ------------------------------------------------------------------ */

Test(blind, splice_same_as_native)
{
	struct dl_server *data = dl_server_startv(
		"blind", DL_V("serve", "data", "--size", "300000"));
	struct dl_server *sink = dl_server_startv("blind", DL_V("serve", "sink"));
	const char *const drop[] = { "ms=", "r=", NULL };
	const char *const env[] = { "DEADLINE_REQUEST_TIMEOUT=20s", NULL };

	bl_same(env, DL_V("splice-in", data->port_s, "--want", "300000"), drop);
	bl_same(env, DL_V("splice-in", data->port_s, "--want", "300000",
			  "--nonblock-pipe"), drop);
	bl_same(env, DL_V("splice-in", data->port_s, "--want", "900000"), drop);
	bl_same(env, DL_V("splice-out", sink->port_s, "--size", "60000"), drop);
	bl_same(env, DL_V("splice-out", sink->port_s, "--size", "60000",
			  "--nonblock-pipe"), drop);
	bl_same(env, DL_V("splice-out", sink->port_s, "--size", "3000000",
			  "--feed"), drop);
}

Test(blind, splice_out_request_cut)
{
	struct dl_server *s = dl_server_startv("blind", DL_V("serve", "noread"));
	struct dl_result r;

	bl_run(&r, 1, DL_V("DEADLINE_REQUEST_TIMEOUT=500ms"),
	       DL_V("splice-out", s->port_s, "--size", "16000000", "--feed"));
	bl_cut(&r, bl_result(&r), "err=", " ms=", "request", 500);
	dl_result_free(&r);
}

Test(blind, splice_in_request_cut)
{
	struct dl_server *s = dl_server_startv("blind", DL_V("serve", "silent"));
	struct dl_result r;

	bl_run(&r, 1, DL_V("DEADLINE_REQUEST_TIMEOUT=400ms"),
	       DL_V("splice-in", s->port_s, "--want", "100"));
	bl_cut(&r, bl_result(&r), "err=", " ms=", "request", 400);
	dl_result_free(&r);
}

/* copy_file_range, vmsplice and tee never move bytes on a socket; the
 * shim does not wrap them and the kernel's answer stays. */
Test(blind, calls_that_never_touch_a_socket)
{
	struct dl_server *s = dl_server_startv("blind", DL_V("serve", "sink"));

	bl_same(DL_V("DEADLINE_REQUEST_TIMEOUT=20s"), DL_V("misc", s->port_s),
		bl_times);
}

/* ------------------------------------------------------------------ */
/* stdio on an fdopen'd socket                                         */
/* ------------------------------------------------------------------ */

Test(blind, fgets_same_as_native)
{
	struct dl_server *s = dl_server_startv("blind", DL_V("serve", "lines"));
	const char *const drop[] = { "ms=", "bufsize=", NULL };
	const char *const modes[] = { "r", "r+", "re", "a", "w" };

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		bl_same(DL_V("DEADLINE_REQUEST_TIMEOUT=20s"),
			DL_V("fgets", s->port_s, "--mode", modes[i]), drop);
}

/* The stream's buffer is glibc's size for a socket. */
Test(blind, fgets_buffer_size_as_native)
{
	struct dl_server *s = dl_server_startv("blind", DL_V("serve", "lines"));
	struct dl_result nat, shim;

	bl_run(&nat, 0, NULL, DL_V("fgets", s->port_s));
	bl_run(&shim, 1, DL_V("DEADLINE_REQUEST_TIMEOUT=20s"),
	       DL_V("fgets", s->port_s));
	cr_assert_str_eq(dl_word(bl_result(&shim), "bufsize="),
			 dl_word(bl_result(&nat), "bufsize="));
	dl_result_free(&nat);
	dl_result_free(&shim);
}

/* A request written with fwrite, then fgets from a server that never
 * answers: the read glibc makes is cut at the first-byte deadline; the
 * stream has its error flag set and errno is ETIMEDOUT. */
Test(blind, fgets_silent_first_byte_cut)
{
	struct dl_server *s = dl_server_startv("blind", DL_V("serve", "silent"));
	struct dl_result r;
	const char *line;

	bl_run(&r, 1, DL_V("DEADLINE_FIRST_BYTE_TIMEOUT=400ms"),
	       DL_V("fgets", s->port_s, "--request", "GET / HTTP/1.0\\r\\n\\r\\n"));
	line = bl_result(&r);
	bl_cut(&r, line, "err=", " ms=", "first_byte", 400);
	dl_assert_run(&r, !strcmp(dl_word(line, "ferror="), "1"),
		      "the stream's error flag should be set");
	dl_result_free(&r);
}

Test(blind, fgets_silent_request_cut)
{
	struct dl_server *s = dl_server_startv("blind", DL_V("serve", "silent"));
	struct dl_result r;

	bl_run(&r, 1, DL_V("DEADLINE_REQUEST_TIMEOUT=400ms"),
	       DL_V("fgets", s->port_s));
	bl_cut(&r, bl_result(&r), "err=", " ms=", "request", 400);
	dl_result_free(&r);
}

/* ------------------------------------------------------------------ */
/* TCP Fast Open                                                       */
/* ------------------------------------------------------------------ */

/* blind tfo ... natively (BLIND_PRELOAD empty) or under the shim;
 * skips the test when the namespace cannot be made. */
static void bl_tfo(struct dl_result *r, int preload, const char *deadlines,
		   const char *const *args)
{
	char pre[2 * PATH_MAX + 32];

	dl_fmt(pre, sizeof(pre), "BLIND_PRELOAD=%s", preload ? dl_preload() : "");
	bl_run(r, 0, DL_V(pre, deadlines), args);
	if (r->exited && r->code == 77)
		cr_skip_test("%s", r->out);
}

static void bl_tfo_same(const char *const *args)
{
	struct dl_result nat, shim;
	char *a, *b;

	bl_tfo(&nat, 0, "DEADLINE_REQUEST_TIMEOUT=20s", args);
	bl_tfo(&shim, 1, "DEADLINE_REQUEST_TIMEOUT=20s", args);
	bl_result(&nat);
	bl_result(&shim);
	a = bl_norm(nat.out, bl_times);
	b = bl_norm(shim.out, bl_times);
	cr_assert_str_eq(b, a, "under the shim\n%s\nnatively\n%s", shim.out,
			 nat.out);
	dl_assert_run(&shim, strstr(shim.out, "reply=echoed"),
		      "the echo should come back");
	free(a);
	free(b);
	dl_result_free(&nat);
	dl_result_free(&shim);
}

Test(blind, tfo_sendto_same_as_native)
{
	bl_tfo_same(DL_V("tfo", "--how", "sendto", "--server", "echo"));
	/* With a cookie the data rides on the SYN (syn_data=1 both ways). */
	bl_tfo_same(DL_V("tfo", "--how", "sendto", "--server", "echo",
			 "--cookie"));
}

Test(blind, tfo_connectopt_same_as_native)
{
	bl_tfo_same(DL_V("tfo", "--how", "connectopt", "--server", "echo"));
	bl_tfo_same(DL_V("tfo", "--how", "connectopt", "--server", "echo",
			 "--cookie"));
}

/* A server whose accept queue is full drops the SYN carrying the data:
 * the handshake never completes, and the call is cut at the connect
 * deadline. */
Test(blind, tfo_sendto_connect_deadline)
{
	struct dl_result r;

	bl_tfo(&r, 1, "DEADLINE_CONNECT_TIMEOUT=400ms",
	       DL_V("tfo", "--how", "sendto", "--server", "backlog", "--cookie"));
	bl_cut(&r, bl_result(&r), "err=", " send_ms=", "connect", 400);
	dl_result_free(&r);
}

Test(blind, tfo_connectopt_connect_deadline)
{
	struct dl_result r;

	bl_tfo(&r, 1, "DEADLINE_CONNECT_TIMEOUT=400ms",
	       DL_V("tfo", "--how", "connectopt", "--server", "backlog",
		    "--cookie"));
	bl_cut(&r, bl_result(&r), "err=", " send_ms=", "connect", 400);
	dl_result_free(&r);
}

/* Non-blocking: the sendto returns at once (the data went on the SYN);
 * the pending handshake reports ETIMEDOUT through SO_ERROR at the
 * connect deadline. */
Test(blind, tfo_nonblocking_connect_deadline)
{
	struct dl_result r;
	const char *line;

	bl_tfo(&r, 1, "DEADLINE_CONNECT_TIMEOUT=400ms",
	       DL_V("tfo", "--how", "sendto", "--server", "backlog", "--cookie",
		    "--nonblock"));
	line = bl_result(&r);
	dl_assert_run(&r, !strcmp(dl_word(line, "so_error="), "ETIMEDOUT"),
		      "SO_ERROR should report ETIMEDOUT");
	bl_cut(&r, line, "so_error=", " poll_ms=", "connect", 400);
	dl_result_free(&r);
}

/* After the Fast Open handshake the connection is tracked like any
 * other: a server that never answers meets the first-byte deadline. */
Test(blind, tfo_then_first_byte_deadline)
{
	struct dl_result r;

	bl_tfo(&r, 1, "DEADLINE_FIRST_BYTE_TIMEOUT=500ms",
	       DL_V("tfo", "--how", "connectopt", "--server", "hold",
		    "--cookie"));
	bl_cut(&r, bl_result(&r), "reply=", " reply_ms=", "first_byte", 500);
	dl_result_free(&r);
}
