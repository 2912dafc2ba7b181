/* holds.c - files the shim keeps open on the program's behalf: the file
 * of an orphaned call (the program closed the fd while one of its threads
 * was blocked on it in the shim) and sockets whose close an injected
 * slow_close defers.  Both are private dups registered as the shim's own
 * fds (wait.c's registry), so the program's close-everything calls spare
 * them.  Tables under E.lk.
 */
#include "engine_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "real.h"

/* ------------------------------------------------------------------------
 * Deferred closes (injected slow_close on non-blocking sockets): a private
 * dup keeps the socket open until its time; one helper thread closes them.
 * The dups live in private_fds, so close_range spares them and a program
 * that closes the number itself only marks the slot dead.
 */

#define MAX_DEFERRED 256

static struct {
	int fd, slot;
	int64_t due;
} deferred[MAX_DEFERRED];
static int ndeferred;
static int reaper_running;
static pthread_cond_t reaper_cv;

static void *reaper(void *p)
{
	(void)p;
	pthread_mutex_lock(&E.lk);
	for (;;) {
		int64_t now = clock_now(), first = 0;
		struct timespec ts;

		for (int i = 0; i < ndeferred;) {
			if (deferred[i].due <= now) {
				int s = deferred[i].slot;
				if (private_fds[s] == deferred[i].fd &&
				    !private_dead[s])
					REAL(close)(deferred[i].fd);
				private_fds[s] = -1;
				private_dead[s] = 0;
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
		ts.tv_sec = (time_t)(first / 1000000000ll);
		ts.tv_nsec = (long)(first % 1000000000ll);
		pthread_cond_timedwait(&reaper_cv, &E.lk, &ts);
	}
	pthread_mutex_unlock(&E.lk);
	return 0;
}

static void sleep_ms(uint32_t ms)
{
	int64_t t = clock_now() + (int64_t)ms * 1000000ll;
	struct timespec ts = { (time_t)(t / 1000000000ll),
			       (long)(t % 1000000000ll) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, 0) == EINTR)
		;
}

void engine_slow_close(int fd, uint32_t ms)
{
	struct dl_conn *c = fdtab_tracked(fd);
	int saved = errno, h, slot = -1;

	if (!ms)
		return;
	if (!c || !track_app_nonblocking(fd, c, 0) ||
	    (h = REAL(fcntl64)(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		sleep_ms(ms); /* close() takes the time, as with SO_LINGER */
		errno = saved;
		return;
	}
	pthread_mutex_lock(&E.lk);
	for (int i = 0; i < MAX_PRIVATE && ndeferred < MAX_DEFERRED; i++)
		if (private_fds[i] < 0) {
			private_fds[i] = h;
			private_dead[i] = 0;
			slot = i;
			if (i >= private_hi)
				__atomic_store_n(&private_hi, i + 1,
						 __ATOMIC_RELEASE);
			break;
		}
	if (slot >= 0) {
		deferred[ndeferred].fd = h;
		deferred[ndeferred].slot = slot;
		deferred[ndeferred].due = clock_now() +
					  (int64_t)ms * 1000000ll;
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
			private_fds[slot] = -1;
			slot = -1;
		}
	}
	pthread_mutex_unlock(&E.lk);
	if (slot < 0) {
		REAL(close)(h);
		sleep_ms(ms);
	}
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

/* Caller holds lk: keep fd's file alive for the waiters of (c, gen), who
 * carry on with the deadlines in snap. */
void holds_orphan_add_locked(int fd, struct dl_conn *c, uint32_t gen,
			      const struct dl_conn *snap)
{
	for (int i = 0; i < MAX_ORPHANS; i++) {
		if (orphans[i].c)
			continue;
		orphans[i].hold = REAL(fcntl64)(fd, F_DUPFD_CLOEXEC, 0);
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

	pthread_mutex_lock(&E.lk);
	for (int i = 0; i < MAX_ORPHANS; i++)
		if (orphans[i].c == c && orphans[i].gen == gen) {
			hold = orphans[i].hold;
			*snap = orphans[i].snap;
			orphans[i].c = 0;
			break;
		}
	pthread_mutex_unlock(&E.lk);
	return hold;
}

/* The parent's reaper closes the deferred sockets; the child's copies
 * (closed with the other private fds) must not keep them open longer.
 * Runs in the fork child with E.lk held. */
void holds_atfork_child(void)
{
	ndeferred = 0;
	reaper_running = 0;
}
