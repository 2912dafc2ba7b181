/* live.c - what a long-running program gets while it runs: DEADLINE_CONFIG
 * looked at again about once a second (reload.c), the Prometheus counters
 * file rewritten every DEADLINE_STATS_INTERVAL (stats.c), and the log's
 * "suppressed N" summaries written once their second is over (log.c).
 *
 * Who does the work, so that the program's calls pay nothing for it:
 *   - in a threaded process, a thread of the shim's ("dl-live"), started
 *     the first time a connection starts while the process has more than
 *     one thread.  It blocks every signal, sleeps with clock_nanosleep
 *     between ticks and holds no lock of the shim's while it sleeps.  A
 *     slow or hung file system stalls only this thread: deadlines are
 *     enforced by the program's calls and the reaper, never by it.
 *   - in a single-threaded process, no thread is ever started (one would
 *     turn on glibc's locking in stdio and malloc for good): the work is
 *     done on the path that starts a new connection (engine_rule_for),
 *     when it is due, before the connection's rule is chosen.  So a
 *     changed file always applies to the next connection; the counters
 *     file follows the program's activity (an idle single-threaded
 *     program keeps its last file until its next connection or exit).
 *   - fork: the child has no thread; it starts its own when it needs one.
 *     A vfork child never gets here (the engine is off in it).
 *
 * The shim's own files are opened with live_open_own: never while one of
 * 0..2 is closed (a program that closed its stdio expects its next open to
 * return 0, 1 or 2), and moved at once to a high close-on-exec number.
 */
#include "engine_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/single_threaded.h>
#include <unistd.h>

#include "log.h"
#include "real.h"

int live_on;			/* something to do while the program runs */
static int do_reload;		/* DEADLINE_CONFIG can be reloaded */
static int64_t interval_ns;	/* counters file; 0 = at exit only */
static int64_t next_reload, next_stats;
static int started;		/* the thread (this process's) */
static int ticking;		/* a tick is running */

#define RELOAD_EVERY_NS CLOCK_NS_PER_SEC

void live_put(struct live_text *b, const char *fmt, ...)
{
	va_list ap;
	int m;

	if (b->oom)
		return;
	for (;;) {
		size_t room = b->cap - b->n;
		size_t nc;
		char *np;

		va_start(ap, fmt);
		m = vsnprintf(b->p ? b->p + b->n : 0, room, fmt, ap);
		va_end(ap);
		if (m < 0) {
			b->oom = 1;
			return;
		}
		if ((size_t)m < room) {
			b->n += (size_t)m;
			return;
		}
		nc = b->cap ? b->cap * 2 : 65536;
		while (nc < b->n + (size_t)m + 1)
			nc *= 2;
		np = realloc(b->p, nc);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
}

int live_replace(const char *name, const char *tmp,
		 const struct live_text *t, int at_exit)
{
	int fd, e = 0;

	fd = live_open_own(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
				O_NONBLOCK | O_NOCTTY, 0644);
	if (fd < 0 && errno == EBUSY && at_exit)
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
			       O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0644);
	if (fd < 0)
		return errno;
	for (size_t off = 0; off < t->n;) {
		ssize_t w = REAL(write)(fd, t->p + off, t->n - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			e = w < 0 ? errno : EIO;
			break;
		}
		off += (size_t)w;
	}
	if (REAL(close)(fd) < 0 && !e)
		e = errno;
	if (!e && rename(tmp, name) < 0)
		e = errno;
	if (e)
		unlink(tmp);
	return e;
}

int live_open_own(const char *path, int flags, int mode)
{
	int fd, hi;

	for (int i = 0; i <= 2; i++)
		if (REAL(fcntl64)(i, F_GETFD) < 0) {
			errno = EBUSY;
			return -1;
		}
	fd = open(path, flags | O_CLOEXEC, mode);
	if (fd < 0)
		return -1;
	hi = dl_log_fd_high(fd);
	if (hi < 0) {
		int e = errno;

		REAL(close)(fd);
		errno = e;
		return -1;
	}
	REAL(close)(fd);
	return hi;
}

/* One round of what is due at now.  Returns when the next is due. */
static int64_t tick(int64_t now)
{
	int64_t next;

	if (__atomic_exchange_n(&ticking, 1, __ATOMIC_ACQUIRE))
		return now + RELOAD_EVERY_NS;
	if (do_reload && now >= next_reload) {
		next_reload = now + RELOAD_EVERY_NS;
		rules_check();
	}
	if (interval_ns && now >= next_stats) {
		next_stats = now + interval_ns;
		stats_write_live();
	}
	dl_log_flush_suppressed(0);
	next = do_reload ? next_reload : INT64_MAX;
	if (interval_ns && next_stats < next)
		next = next_stats;
	if (next == INT64_MAX)
		next = now + RELOAD_EVERY_NS;
	__atomic_store_n(&ticking, 0, __ATOMIC_RELEASE);
	return next;
}

static void *live_main(void *arg)
{
	(void)arg;
	for (;;)
		clock_sleep_until(tick(clock_now()));
	return NULL;
}

static void start_thread(void)
{
	pthread_attr_t at;
	pthread_t t;
	sigset_t all, old;
	int saved = errno;

	if (__atomic_exchange_n(&started, 1, __ATOMIC_ACQ_REL))
		return;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_attr_init(&at) == 0) {
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		/* Room for a configuration load (libconfig) and the
		 * counters text, with sanitizer redzones. */
		pthread_attr_setstacksize(&at, 512 * 1024);
		if (pthread_create(&t, &at, live_main, NULL) == 0)
			pthread_setname_np(t, "dl-live");
		else
			__atomic_store_n(&started, 0, __ATOMIC_RELEASE);
		pthread_attr_destroy(&at);
	} else {
		__atomic_store_n(&started, 0, __ATOMIC_RELEASE);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = saved;
}

void live_poll_slow(void)
{
	int64_t now;
	int saved = errno;

	/* Not from a signal handler, nor under a lock of the shim's:
	 * loading a file allocates, and starting a thread is not
	 * async-signal-safe. */
	if (dl_self.in_handler || dl_self.locks)
		return;
	if (!__libc_single_threaded) {
		if (!__atomic_load_n(&started, __ATOMIC_ACQUIRE))
			start_thread();
		return;
	}
	now = clock_now();
	if ((do_reload && now >= next_reload) ||
	    (interval_ns && now >= next_stats))
		tick(now);
	errno = saved;
}

void live_start(void)
{
	const char *iv = secure_getenv("DEADLINE_STATS_INTERVAL");
	uint32_t ms = 10000;
	int64_t now = clock_now();

	do_reload = rules_now() && E.have_file;
	if (iv && *iv && policy_parse_duration(iv, &ms) < 0) {
		dl_log_conf(DL_CONF_WARNING, NULL, "DEADLINE_STATS_INTERVAL="
			    "\"%.32s\" is not a duration; using 10s", iv);
		ms = 10000;
	}
	interval_ns = stats_prom ? (int64_t)ms * CLOCK_NS_PER_MS : 0;
	next_reload = now + RELOAD_EVERY_NS;
	next_stats = now + interval_ns;
	if (stats_prom)
		stats_write_live();	/* the file exists from the start */
	if (!do_reload && !interval_ns)
		return;
	__atomic_store_n(&live_on, 1, __ATOMIC_RELEASE);
	if (!__libc_single_threaded)
		start_thread();
}

void live_atfork_child(void)
{
	started = 0;
	ticking = 0;
	rules_atfork_child();
}
