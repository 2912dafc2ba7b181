/* test_daemon.c - legacy daemons against slowloris clients.
 *
 * redis-server and python3's http.server (ThreadingHTTPServer, one thread
 * per client) run with and without the shim; the shim gets an inbound
 * rule through DEADLINE_CONFIG:
 *
 *   rules = ( { direction = "inbound"; idle_timeout = "1s";
 *               request_timeout = "3s"; } );
 *
 * Slow clients, held by the test process itself: one sends half a
 * command and stalls (the idle deadline cuts it), one dribbles a byte
 * every 400 ms (never idle for 1 s: the request deadline cuts it).
 * Meanwhile ordinary clients must be served.  Without the shim both slow
 * clients still hold their connections after 4.5 s.
 */
#include "rw.h"

RW_SUITE(daemon, 60);

static const char inbound_conf[] =
	"rules = (\n"
	"    { name = \"slowloris\"; direction = \"inbound\";\n"
	"      idle_timeout = \"1s\"; request_timeout = \"3s\"; }\n"
	");\n";

/* Environment for a daemon under the shim with the inbound rule. */
static const char *const *daemon_env(void)
{
	static char conf[PATH_MAX + 32];
	static const char *env[] = { conf, "LC_ALL=C", NULL };
	const char *path = rw_tmp("inbound.conf");

	rw_write(path, inbound_conf);
	dl_fmt(conf, sizeof(conf), "DEADLINE_CONFIG=%s", path);
	return env;
}

struct slow {
	int stall;	/* half a request, then nothing */
	int drip;	/* one byte every 400 ms */
	uint64_t t0;	/* connected */
	uint64_t t_stall;	/* stall's last byte */
	const char *stall_end, *drip_end;
	long stall_ms, drip_ms;	/* since t_stall / t0 */
};

/* Drive both slow clients for up to total_ms, while calling serve_check
 * every 250 ms (an ordinary client must be served); records how and when
 * each slow connection ended. */
static void slowloris(struct slow *s, int port, const char *partial,
		      const char *drip_prefix, const char *drip_text,
		      long total_ms,
		      int (*serve_check)(int port), int *served, int *tries)
{
	uint64_t next_drip, next_check, end;
	size_t dripped = 0;

	s->t0 = dl_now_ns();
	s->stall = rw_connect(port);
	s->drip = rw_connect(port);
	cr_assert(send(s->stall, partial, strlen(partial), MSG_NOSIGNAL) ==
			  (ssize_t)strlen(partial), "send partial");
	cr_assert(send(s->drip, drip_prefix, strlen(drip_prefix), MSG_NOSIGNAL) ==
			  (ssize_t)strlen(drip_prefix), "send drip prefix");
	s->t_stall = dl_now_ns();
	s->stall_end = s->drip_end = "open";
	s->stall_ms = s->drip_ms = -1;
	next_drip = next_check = dl_now_ns();
	end = s->t0 + (uint64_t)total_ms * 1000000u;
	*served = *tries = 0;
	while (dl_now_ns() < end) {
		uint64_t now = dl_now_ns();
		long at;

		if (!strcmp(s->drip_end, "open") && now >= next_drip) {
			if (send(s->drip, drip_text + dripped % strlen(drip_text),
				 1, MSG_NOSIGNAL) < 0) {
				s->drip_end = errno == ECONNRESET || errno == EPIPE
						      ? "rst" : "err";
				s->drip_ms = (long)((now - s->t0) / 1000000u);
			}
			dripped++;
			next_drip = now + 400000000u;
		}
		if (now >= next_check) {
			(*tries)++;
			*served += serve_check(port);
			next_check = now + 250000000u;
		}
		if (!strcmp(s->stall_end, "open")) {
			const char *how = rw_watch(s->stall, 20, &at);

			if (strcmp(how, "open") && strcmp(how, "data")) {
				s->stall_end = how;
				s->stall_ms = (long)((dl_now_ns() - s->t_stall) /
						     1000000u);
			}
		} else {
			hp_sleep_ms(20);
		}
		if (!strcmp(s->drip_end, "open")) {
			const char *how = rw_watch(s->drip, 0, &at);

			if (strcmp(how, "open") && strcmp(how, "data")) {
				s->drip_end = how;
				s->drip_ms = (long)((dl_now_ns() - s->t0) /
						    1000000u);
			}
		}
	}
	close(s->stall);
	close(s->drip);
}

/* ------------------------------------------------------------------ */
/* redis-server                                                        */
/* ------------------------------------------------------------------ */

static int redis_ping(int port)
{
	struct dl_result r;
	char p[16];
	int ok;

	snprintf(p, sizeof(p), "%d", port);
	dl_run(&r, DL_V("redis-cli", "-h", "127.0.0.1", "-p", p, "PING"), NULL, 0,
	       3000);
	ok = r.exited && r.code == 0 && !strcmp(r.out, "PONG\n");
	dl_result_free(&r);
	return ok;
}

static int start_redis(int preload)
{
	int port = dl_free_port();
	char p[16];

	snprintf(p, sizeof(p), "%d", port);
	rw_adopt(dl_spawn(DL_V("redis-server", "--port", p, "--bind", "127.0.0.1",
			       "--save", "", "--appendonly", "no", "--dir",
			       dl_tmpdir(), "--protected-mode", "no",
			       "--timeout", "0", "--logfile", rw_tmp("redis.log")),
			  preload ? daemon_env() : NULL, preload, NULL,
			  -1, -1));
	for (int i = 0; i < 100 && !redis_ping(port); i++)
		hp_sleep_ms(50);
	cr_assert(redis_ping(port), "redis-server did not start on %d", port);
	return port;
}

static long redis_clients(int port)
{
	struct dl_result r;
	char p[16];
	long n;

	snprintf(p, sizeof(p), "%d", port);
	dl_run(&r, DL_V("redis-cli", "-h", "127.0.0.1", "-p", p, "INFO", "clients"),
	       NULL, 0, 3000);
	n = dl_field(rw_line_with(r.out, "connected_clients:"),
		     "connected_clients:");
	dl_result_free(&r);
	return n;
}

Test(daemon, redis_sheds_slowloris_with_shim)
{
	struct slow s;
	int served, tries, port;

	dl_require_shim();
	port = start_redis(1);
	slowloris(&s, port, "*2\r\n$4\r\nECHO\r\n$5\r\nhel",
		  "*2\r\n$4\r\nECHO\r\n$100000\r\n", "a", 4500,
		  redis_ping, &served, &tries);
	long left = redis_clients(port);
	rw_note("redis with shim: stall ended %s after %ld ms idle, drip ended "
		"%s after %ld ms, %d/%d pings served, %ld clients left",
		s.stall_end, s.stall_ms, s.drip_end, s.drip_ms, served, tries,
		left);
	cr_assert_eq(served, tries, "redis stopped serving others (%d/%d)",
		     served, tries);
	cr_assert(!strcmp(s.stall_end, "rst") && s.stall_ms >= 1000 &&
			  s.stall_ms <= 1000 + 300,
		  "stalled client: ended '%s' after %ld ms (want rst at the 1 s "
		  "idle deadline)", s.stall_end, s.stall_ms);
	cr_assert(strcmp(s.drip_end, "open") && s.drip_ms >= 3000 &&
			  s.drip_ms <= 3000 + 500,
		  "dripping client: ended '%s' after %ld ms (want the 3 s "
		  "request deadline)", s.drip_end, s.drip_ms);
	cr_assert_eq(left, 1, "connected_clients=%ld after the slow clients "
			      "were cut (want just INFO's own)", left);
}

Test(daemon, redis_holds_slowloris_without_shim)
{
	struct slow s;
	int served, tries, port = start_redis(0);

	slowloris(&s, port, "*2\r\n$4\r\nECHO\r\n$5\r\nhel",
		  "*2\r\n$4\r\nECHO\r\n$100000\r\n", "a", 4500,
		  redis_ping, &served, &tries);
	rw_note("redis without shim: stall %s, drip %s after 4.5 s; %d/%d pings",
		s.stall_end, s.drip_end, served, tries);
	cr_assert(!strcmp(s.stall_end, "open") && !strcmp(s.drip_end, "open"),
		  "without the shim both slow clients should still be connected "
		  "(stall %s, drip %s)", s.stall_end, s.drip_end);
	cr_assert_eq(served, tries, "pings failed");
}

/* ------------------------------------------------------------------ */
/* python3 -m http.server (ThreadingHTTPServer)                        */
/* ------------------------------------------------------------------ */

static int http_get_ok(int port)
{
	struct dl_result r;
	char url[64];
	int ok;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/index.txt", port);
	dl_run(&r, DL_V("curl", "-sS", "--max-time", "3", url), NULL, 0, 5000);
	ok = r.exited && r.code == 0 && !strcmp(r.out, "served\n");
	dl_result_free(&r);
	return ok;
}

static struct dl_server *start_httpd(int preload)
{
	rw_write(rw_tmp("index.txt"), "served\n");
	return rw_server(DL_V("python3", "-u", "-m", "http.server", "0", "--bind",
			      "127.0.0.1", "--directory", dl_tmpdir()),
			 preload ? daemon_env() : NULL, preload, NULL, " port ",
			 10000);
}

Test(daemon, python_http_server_sheds_slowloris_with_shim)
{
	struct slow s;
	int served, tries;
	struct dl_server *srv;

	dl_require_shim();
	srv = start_httpd(1);
	slowloris(&s, srv->port, "GET /index.txt HTTP/1.1\r\nHost: x\r\n",
		  "GET /index.txt HTTP/1.1\r\n", "X-Slow: y\r\n", 4500,
		  http_get_ok, &served, &tries);
	const char *log = dl_server_output(srv, 200);
	rw_note("http.server with shim: stall %s after %ld ms idle, drip %s "
		"after %ld ms, %d/%d GETs served; server said: %s",
		s.stall_end, s.stall_ms, s.drip_end, s.drip_ms, served, tries,
		rw_line_with(log, "timed out"));
	cr_assert_eq(served, tries, "http.server stopped serving others");
	cr_assert(strcmp(s.stall_end, "open") && s.stall_ms >= 1000 &&
			  s.stall_ms <= 1000 + 300,
		  "stalled client: '%s' after %ld ms", s.stall_end, s.stall_ms);
	cr_assert(strcmp(s.drip_end, "open") && s.drip_ms >= 3000 &&
			  s.drip_ms <= 3000 + 500,
		  "dripping client: '%s' after %ld ms", s.drip_end, s.drip_ms);
	cr_assert(!strstr(log, "Traceback"), "the daemon crashed:\n%s", log);
	cr_assert(kill(srv->pid, 0) == 0, "the daemon is gone");
}

Test(daemon, python_http_server_holds_slowloris_without_shim)
{
	struct slow s;
	int served, tries;
	struct dl_server *srv = start_httpd(0);

	slowloris(&s, srv->port, "GET /index.txt HTTP/1.1\r\nHost: x\r\n",
		  "GET /index.txt HTTP/1.1\r\n", "X-Slow: y\r\n", 4500,
		  http_get_ok, &served, &tries);
	rw_note("http.server without shim: stall %s, drip %s after 4.5 s",
		s.stall_end, s.drip_end);
	cr_assert(!strcmp(s.stall_end, "open") && !strcmp(s.drip_end, "open"),
		  "without the shim both slow clients should still be connected");
	cr_assert_eq(served, tries, "GETs failed");
}
