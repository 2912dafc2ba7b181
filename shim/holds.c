/* holds.c - the shim's own descriptors: files it keeps open on the
 * program's behalf, namely the file of an orphaned call (the program
 * closed the fd while one of its threads was blocked on it in the shim)
 * and sockets whose close an injected slow_close defers.
 *
 * Promises (host-process safety): an own descriptor is a private dup,
 * O_CLOEXEC, placed as high as RLIMIT_NOFILE allows (never below 3), so
 * it does not take a number the program is about to be given; the
 * program cannot close it (close() of that number fails with EBADF, as
 * natively: the program never had it), close_range/closefrom spare it,
 * and a dup2/dup3 onto it first moves it elsewhere (engine_evict_fd), so
 * the program gets the number it asked for.  A fork child closes every
 * one it inherited.  Tables under E.lk; the registry is read lock-free.
 */
#include "engine_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"
#include "real.h"

/* ------------------------------------------------------------------------
 * The registry of own descriptors
 */

#define MAX_OWN HOLDS_MAX

static int own[MAX_OWN] = { [0 ... MAX_OWN - 1] = -1 };
static int own_n; /* registered; 0 keeps close() and dup2() free */

/* Where own descriptors go: the top of the soft RLIMIT_NOFILE, capped so
 * that a huge limit does not grow the kernel's fd table for nothing. */
static int own_top(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur > 4096)
		return 4096;
	return (int)rl.rlim_cur;
}

/* A CLOEXEC dup of fd as high as it goes; -1 with errno on failure. */
static int dup_high(int fd)
{
	int top = own_top(), h;

	for (int base = top - 1; base >= 3 && base >= top - 64; base--) {
		h = REAL(fcntl64)(fd, F_DUPFD_CLOEXEC, base);
		if (h >= 0 || (errno != EMFILE && errno != EINVAL))
			return h;
	}
	return REAL(fcntl64)(fd, F_DUPFD_CLOEXEC, 3);
}

/* Caller holds E.lk: a registered high dup of fd, or -1. */
static int own_dup_locked(int fd)
{
	int h, saved = errno;

	if (own_n >= MAX_OWN)
		return -1;
	h = dup_high(fd);
	if (h < 0) {
		errno = saved;
		return -1;
	}
	for (int i = 0; i < MAX_OWN; i++)
		if (own[i] < 0) {
			__atomic_store_n(&own[i], h, __ATOMIC_RELEASE);
			__atomic_fetch_add(&own_n, 1, __ATOMIC_RELEASE);
			break;
		}
	errno = saved;
	return h;
}

/* Caller holds E.lk: unregister h and close it. */
static void own_close_locked(int h)
{
	int saved = errno;

	for (int i = 0; i < MAX_OWN; i++)
		if (own[i] == h) {
			__atomic_store_n(&own[i], -1, __ATOMIC_RELEASE);
			__atomic_fetch_sub(&own_n, 1, __ATOMIC_RELEASE);
			REAL(close)(h);
			break;
		}
	errno = saved;
}

void holds_close(int h)
{
	engine_lock();
	own_close_locked(h);
	engine_unlock();
}

int engine_own_fd(int fd)
{
	if (!__atomic_load_n(&own_n, __ATOMIC_ACQUIRE) || fd < 0)
		return dl_log_owns(fd);
	for (int i = 0; i < MAX_OWN; i++)
		if (__atomic_load_n(&own[i], __ATOMIC_ACQUIRE) == fd)
			return 1;
	return dl_log_owns(fd);
}

int holds_list(int *out, int cap)
{
	int n = 0;

	engine_lock();
	for (int i = 0; i < MAX_OWN && n < cap; i++)
		if (own[i] >= 0)
			out[n++] = own[i];
	engine_unlock();
	return n;
}

static void orphans_renumber_locked(int from, int to);
static void deferred_renumber_locked(int from, int to);

void engine_evict_fd(int fd)
{
	int saved = errno, h;

	dl_log_evict(fd);
	if (!__atomic_load_n(&own_n, __ATOMIC_ACQUIRE) || fd < 0)
		return;
	engine_lock();
	for (int i = 0; i < MAX_OWN; i++) {
		if (own[i] != fd)
			continue;
		/* Move the file to another high number, then free this one
		 * for the program. */
		h = dup_high(fd);
		/* Nowhere to go (h < 0): the file is given up; a deferred
		 * close happens now, an orphaned call ends with EBADF. */
		orphans_renumber_locked(fd, h);
		deferred_renumber_locked(fd, h);
		__atomic_store_n(&own[i], h, __ATOMIC_RELEASE);
		if (h < 0)
			__atomic_fetch_sub(&own_n, 1, __ATOMIC_RELEASE);
		REAL(close)(fd);
		break;
	}
	engine_unlock();
	errno = saved;
}

/* ------------------------------------------------------------------------
 * Deferred closes (injected slow_close on non-blocking sockets): a private
 * dup keeps the socket open until its time; one helper thread closes them.
 */

#define MAX_DEFERRED 256

static struct {
	int fd;
	int64_t due;
} deferred[MAX_DEFERRED];
static int ndeferred;
static int reaper_running;
static pthread_cond_t reaper_cv;

static void deferred_renumber_locked(int from, int to)
{
	for (int i = 0; i < ndeferred; i++)
		if (deferred[i].fd == from)
			deferred[i].fd = to;
}

static void *reaper(void *p)
{
	(void)p;
	pthread_mutex_lock(&E.lk);
	for (;;) {
		int64_t now = clock_now(), first = 0;
		struct timespec ts;

		for (int i = 0; i < ndeferred;) {
			if (deferred[i].due <= now) {
				if (deferred[i].fd >= 0)
					own_close_locked(deferred[i].fd);
				deferred[i] = deferred[--ndeferred];
				continue;
			}
			if (!first || deferred[i].due < first)
				first = deferred[i].due;
			i++;
		}
		if (!ndeferred) {
			reaper_running = 0;
			break;
		}
		ts = clock_ts(first);
		pthread_cond_timedwait(&reaper_cv, &E.lk, &ts);
	}
	pthread_mutex_unlock(&E.lk);
	return 0;
}

void engine_slow_close(int fd, uint32_t ms)
{
	struct dl_conn *c = fdtab_tracked(fd);
	int saved = errno, h = -1;

	if (!ms)
		return;
	if (!c || !track_app_nonblocking(fd, c, 0)) {
		/* close() takes the time, as with SO_LINGER */
		clock_sleep_until(clock_now() + (int64_t)ms * CLOCK_NS_PER_MS);
		errno = saved;
		return;
	}
	engine_lock();
	if (ndeferred < MAX_DEFERRED)
		h = own_dup_locked(fd);
	if (h >= 0) {
		deferred[ndeferred].fd = h;
		deferred[ndeferred].due = clock_now() +
					  (int64_t)ms * CLOCK_NS_PER_MS;
		ndeferred++;
		if (!reaper_running) {
			pthread_attr_t attr;
			pthread_condattr_t ca;
			pthread_t t;
			sigset_t all, old;

			pthread_condattr_init(&ca);
			pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
			pthread_cond_init(&reaper_cv, &ca);
			pthread_condattr_destroy(&ca);
			sigfillset(&all);
			pthread_sigmask(SIG_SETMASK, &all, &old);
			pthread_attr_init(&attr);
			pthread_attr_setdetachstate(&attr,
						    PTHREAD_CREATE_DETACHED);
			reaper_running =
				pthread_create(&t, &attr, reaper, 0) == 0;
			pthread_attr_destroy(&attr);
			pthread_sigmask(SIG_SETMASK, &old, 0);
		} else {
			pthread_cond_signal(&reaper_cv);
		}
		if (!reaper_running) { /* no thread: undo, block instead */
			ndeferred--;
			own_close_locked(h);
			h = -1;
		}
	}
	engine_unlock();
	if (h < 0)
		clock_sleep_until(clock_now() + (int64_t)ms * CLOCK_NS_PER_MS);
	errno = saved;
}

/* ------------------------------------------------------------------------
 * Orphans: the program closed an fd while one of its threads was blocked
 * on it in the shim.  In the kernel that call holds a reference to the
 * file, so the socket lives on until the call returns; the shim keeps the
 * same promise with a private dup that the blocked call takes over.
 */

#define MAX_ORPHANS 64

struct orphan {
	struct dl_conn *c;
	uint32_t gen;
	int hold;
	struct dl_conn snap; /* the deadlines as they were at close() */
};

static struct orphan orphans[MAX_ORPHANS]; /* under E.lk */

static void orphans_renumber_locked(int from, int to)
{
	for (int i = 0; i < MAX_ORPHANS; i++)
		if (orphans[i].c && orphans[i].hold == from)
			orphans[i].hold = to;
}

/* Caller holds lk: keep fd's file alive for the waiters of (c, gen), who
 * carry on with the deadlines in snap. */
void holds_orphan_add_locked(int fd, struct dl_conn *c, uint32_t gen,
			      const struct dl_conn *snap)
{
	for (int i = 0; i < MAX_ORPHANS; i++) {
		if (orphans[i].c)
			continue;
		orphans[i].hold = own_dup_locked(fd);
		if (orphans[i].hold < 0)
			return;
		orphans[i].c = c;
		orphans[i].gen = gen;
		orphans[i].snap = *snap;
		DL_DEBUG("fd=%d closed while a call waits on it: held as fd=%d",
			 fd, orphans[i].hold);
		return;
	}
}

/* Take over the hold for (c, gen) and the deadlines it carried; -1 if
 * none. */
int holds_orphan_take(struct dl_conn *c, uint32_t gen, struct dl_conn *snap)
{
	int hold = -1;

	engine_lock();
	for (int i = 0; i < MAX_ORPHANS; i++)
		if (orphans[i].c == c && orphans[i].gen == gen) {
			hold = orphans[i].hold;
			*snap = orphans[i].snap;
			orphans[i].c = 0;
			break;
		}
	engine_unlock();
	return hold;
}

/* A fork child inherits the parent's own descriptors: the parent's
 * reaper closes the deferred sockets and the parent's threads take the
 * orphans; the child's copies must not keep them open longer.  Runs in
 * the fork child with E.lk held. */
void holds_atfork_child(void)
{
	for (int i = 0; i < MAX_OWN; i++)
		if (own[i] >= 0) {
			REAL(close)(own[i]);
			own[i] = -1;
		}
	own_n = 0;
	ndeferred = 0;
	reaper_running = 0;
	memset(orphans, 0, sizeof(orphans));
}
