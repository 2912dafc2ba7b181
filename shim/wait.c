/* wait.c - the shim's private waits: a blocking call of the program that
 * would block waits here for the remaining time of its connection's
 * deadlines (or for an injected delay), then retries.
 *
 * A wait is one ppoll() on the one descriptor.  The shim holds no
 * descriptor of its own for waiting (no epoll set per thread or per
 * process): a thread-per-connection program sees exactly the descriptors
 * it would natively, a fork child shares no interest list with its
 * parent, and no number of the program's is ever taken.  A blocking
 * ping-pong still costs one wait per round trip.
 *
 * Contract: every wait ends by the earliest deadline of its connection
 * (W_EXPIRED, errno the expiry errno), by the program's own socket timeout
 * (W_APP_TIMEOUT), by a signal as the kernel would end the call (W_INTR),
 * or when the fd is ready or was closed under the caller (W_READY,
 * W_ORPHANED).  errno is preserved unless the result says otherwise.
 */
#include "engine_int.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>

#include "real.h"
#include "signals.h"

/* ------------------------------------------------------------------------
 * The private wait
 */


/* The fd expired: the wait ends with the expiry errno. */
static enum wait_result wait_expired(const struct dl_conn *c)
{
	errno = xerrno_of(c);
	return W_EXPIRED;
}

static enum wait_result wait_private_counted(int fd, struct dl_conn *c,
					     uint32_t events, uint32_t app_ms);

/* The thread is counted as waiting on (c, gen) only while it is inside
 * this wait: the count is given back here, by the signal trampoline
 * before a handler runs (which may siglongjmp away), and by the
 * cancellation cleanup (pthread_cancel acts inside ppoll). */
static void wait_uncount(void *arg)
{
	struct dl_conn *c = dl_self.w.wait_c;

	(void)arg;
	if (c) {
		dl_self.w.wait_c = 0;
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		conn_wait_leave(c, dl_self.w.wait_gen);
	}
}

enum wait_result wait_private(int fd, struct dl_conn *c,
				     uint32_t events, uint32_t app_ms)
{
	uint32_t gen = conn_gen(c);
	enum wait_result w;

	dl_self.w.wait_gen = gen;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (!conn_wait_enter(c, gen))
		return conn_gen(c) != gen ? W_ORPHANED
					  : wait_private_counted(fd, c, events,
								 app_ms);
	dl_self.w.wait_c = c;
	pthread_cleanup_push(wait_uncount, 0);
	w = wait_private_counted(fd, c, events, app_ms);
	pthread_cleanup_pop(1);
	if (conn_gen(c) != gen && w != W_EXPIRED)
		return W_ORPHANED;
	return w;
}

static enum wait_result wait_private_counted(int fd, struct dl_conn *c,
					     uint32_t events, uint32_t app_ms)
{
	uint32_t gen = conn_gen(c);
	int64_t now = clock_now();
	int64_t app_dl = app_ms ? now + (int64_t)app_ms * CLOCK_NS_PER_MS : 0;

	expire_arm_idle(fd, c, now);
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = (short)events };
		struct timespec ts;
		int64_t dl, until;
		int n;

		if (conn_gen(c) != gen)
			return W_READY; /* closed under us: the caller sorts it */
		if (conn_state(c) & CONN_EXPIRED)
			return wait_expired(c);
		dl = conn_deadline(c, 0);
		if (dl && now >= dl) {
			if (expire_one(fd, c, now))
				return wait_expired(c);
			if (!(conn_state(c) & CONN_TRACKED))
				return W_READY; /* the number was reused */
			dl = conn_deadline(c, 0); /* e.g. connect was done */
		}
		if (app_dl && now >= app_dl)
			return W_APP_TIMEOUT;
		if (dl_self.w.fault_wake && now >= dl_self.w.fault_wake)
			return W_READY; /* the caller asks the injector again */
		until = dl;
		if (app_dl && (!until || app_dl < until))
			until = app_dl;
		if (dl_self.w.fault_wake && (!until || dl_self.w.fault_wake < until))
			until = dl_self.w.fault_wake;
		ts.tv_sec = (time_t)((until - now) / CLOCK_NS_PER_SEC);
		ts.tv_nsec = (long)((until - now) % CLOCK_NS_PER_SEC);
		if (dl_self.intr) {
			/* A deferred handler without SA_RESTART ran just
			 * before this wait: the kernel's call would have
			 * been interrupted by it. */
			dl_self.intr = 0;
			return W_INTR;
		}
		sig_wait_begin();
		n = REAL(ppoll)(&pfd, 1, until ? &ts : 0, 0);
		if (n < 0) {
			if (errno != EINTR)
				return W_ERROR;
			/* The kernel restarts a blocking socket call after an
			 * SA_RESTART handler, unless the socket has a timeout
			 * (signal(7)); so do we. */
			if (app_ms || sig_interrupted_norestart())
				return W_INTR;
		} else if (n == 1) {
			dl_self.w.last_events = (uint16_t)pfd.revents;
			if (conn_gen(c) != gen)
				return W_READY; /* closed under us */
			if (conn_state(c) & CONN_EXPIRED)
				return wait_expired(c);
			return W_READY;
		}
		now = clock_now();
	}
}

/* Wait until t (INT64_MAX: until a deadline ends it) without events: an
 * injected delay.  Bounded by c's deadlines and by app_ms (the program's
 * own socket timeout).  Sleeps in short slices so that an expiry or close
 * by another thread is noticed. */
enum wait_result wait_until(int fd, struct dl_conn *c, int64_t t,
				   uint32_t app_ms)
{
	uint32_t gen = conn_gen(c);
	int64_t now = clock_now();
	int64_t app_dl = app_ms ? now + (int64_t)app_ms * 1000000ll : 0;

	expire_arm_idle(fd, c, now); /* the program waits on the socket */
	for (;;) {
		int64_t dl, until;
		struct timespec ts;

		if (conn_gen(c) != gen)
			return W_ORPHANED;
		if (conn_state(c) & CONN_EXPIRED)
			return wait_expired(c);
		dl = conn_deadline(c, 0);
		if (dl && now >= dl) {
			if (expire_one(fd, c, now))
				return wait_expired(c);
			now = clock_now();
			continue;
		}
		if (now >= t)
			return W_READY;
		if (app_dl && now >= app_dl)
			return W_APP_TIMEOUT;
		until = t;
		if (dl && dl < until)
			until = dl;
		if (app_dl && app_dl < until)
			until = app_dl;
		if (until - now > 50000000ll)
			until = now + 50000000ll;
		ts.tv_sec = (time_t)(until / 1000000000ll);
		ts.tv_nsec = (long)(until % 1000000000ll);
		sig_wait_begin();
		if (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, 0) ==
			    EINTR &&
		    (app_ms || sig_interrupted_norestart()))
			return W_INTR;
		now = clock_now();
	}
}
