/* wait.c - the shim's private waits: a blocking call of the program that
 * would block waits here, in the calling thread's private epoll set, for
 * the remaining time of its connection's deadlines (or for an injected
 * delay), then retries.
 *
 * Contract: every wait ends by the earliest deadline of its connection
 * (W_EXPIRED, errno the expiry errno), by the program's own socket timeout
 * (W_APP_TIMEOUT), by a signal as the kernel would end the call (W_INTR),
 * or when the fd is ready or was closed under the caller (W_READY,
 * W_ORPHANED).  errno is preserved unless the result says otherwise.
 */
#include "engine_int.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>

#include "log.h"
#include "real.h"
#include "signals.h"

/* ------------------------------------------------------------------------
 * Private epoll sets: one per thread, registered so that fork and the
 * program's close-everything calls can find them.
 */

int private_fds[MAX_PRIVATE] = { [0 ... MAX_PRIVATE - 1] = -1 };
int private_dead[MAX_PRIVATE];
int private_hi;


__thread struct tl_wait wait_tl __attribute__((tls_model("initial-exec"))) =
	{ .epfd = -1, .slot = -1, .reg_fd = -1, .hold_fd = -1 };

void wait_release(struct tl_wait *t)
{
	if (t->epfd >= 0) {
		pthread_mutex_lock(&E.lk);
		if (t->slot >= 0 && private_fds[t->slot] == t->epfd &&
		    !private_dead[t->slot])
			REAL(close)(t->epfd);
		if (t->slot >= 0) {
			private_fds[t->slot] = -1;
			private_dead[t->slot] = 0;
		}
		pthread_mutex_unlock(&E.lk);
	}
	t->epfd = -1;
	t->slot = -1;
	t->reg_fd = -1;
	t->reg_tag = 0;
}

void wait_destructor(void *p)
{
	(void)p;
	wait_release(&wait_tl);
}

/* Returns the calling thread's epoll fd, creating it if needed; -1 with
 * errno on failure. */
static int private_epfd(void)
{
	int fd, slot = -1;

	if (wait_tl.epfd >= 0 && (wait_tl.slot < 0 ||
			     !__atomic_load_n(&private_dead[wait_tl.slot],
					      __ATOMIC_ACQUIRE)))
		return wait_tl.epfd;
	if (wait_tl.epfd >= 0) /* the program closed our number: forget it */
		wait_release(&wait_tl);
	fd = epoll_create1(EPOLL_CLOEXEC);
	if (fd < 0)
		return -1;
	pthread_mutex_lock(&E.lk);
	for (int i = 0; i < MAX_PRIVATE; i++)
		if (private_fds[i] < 0) {
			private_fds[i] = fd;
			private_dead[i] = 0;
			slot = i;
			if (i >= private_hi)
				__atomic_store_n(&private_hi, i + 1,
						 __ATOMIC_RELEASE);
			break;
		}
	pthread_mutex_unlock(&E.lk);
	wait_tl.epfd = fd;
	wait_tl.slot = slot;
	wait_tl.reg_fd = -1;
	wait_tl.reg_tag = 0;
	if (E.tls_key_ok)
		pthread_setspecific(E.tls_key, &wait_tl);
	return fd;
}

/* The program closed/replaced fd: if it was one of ours, never use that
 * number again (its owner thread makes a new set on its next wait). */
void wait_forget_fd(int fd)
{
	int hi = __atomic_load_n(&private_hi, __ATOMIC_ACQUIRE), hit = 0;

	/* Lock-free look first: close() of ordinary files must stay cheap. */
	for (int i = 0; i < hi; i++)
		if (__atomic_load_n(&private_fds[i], __ATOMIC_RELAXED) == fd)
			hit = 1;
	if (hit) {
		pthread_mutex_lock(&E.lk);
		for (int i = 0; i < hi; i++)
			if (private_fds[i] == fd)
				__atomic_store_n(&private_dead[i], 1,
						 __ATOMIC_RELEASE);
		pthread_mutex_unlock(&E.lk);
	}
	if (wait_tl.epfd == fd) {
		wait_tl.epfd = -1;
		wait_tl.reg_fd = -1;
	}
	dl_log_forget_fd(fd);
}

/* The child shares the parent's epoll instances (and their interest
 * lists): drop every one of them, the child makes its own.  Runs in the
 * fork child with E.lk held. */
void wait_atfork_child(void)
{
	for (int i = 0; i < MAX_PRIVATE; i++) {
		if (private_fds[i] >= 0 && !private_dead[i])
			REAL(close)(private_fds[i]);
		private_fds[i] = -1;
		private_dead[i] = 0;
	}
	wait_tl.epfd = -1;
	wait_tl.slot = -1;
	wait_tl.reg_fd = -1;
	wait_tl.reg_tag = 0;
}

/* ------------------------------------------------------------------------
 * The private wait
 */


/* The fd expired: it leaves this thread's private set (EPOLL_CTL_DEL). */
static enum wait_result wait_expired(int fd, const struct dl_conn *c)
{
	if (wait_tl.reg_fd == fd) {
		REAL(epoll_ctl)(wait_tl.epfd, EPOLL_CTL_DEL, fd, 0);
		wait_tl.reg_fd = -1;
		wait_tl.reg_tag = 0;
	}
	errno = xerrno_of(c);
	return W_EXPIRED;
}

static int to_epoll_ms(int64_t ns)
{
	int64_t ms = (ns + 999999) / 1000000;

	return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* Wait in the private epoll set for events on fd, bounded by c's
 * deadlines and by app_ms (the program's own socket timeout, 0 = none).
 * Registration persists between waits of the same thread on the same fd,
 * so a blocking ping-pong costs one epoll_wait per round trip. */
static enum wait_result wait_private_counted(int fd, struct dl_conn *c,
					     uint32_t events, uint32_t app_ms);

enum wait_result wait_private(int fd, struct dl_conn *c,
				     uint32_t events, uint32_t app_ms)
{
	uint32_t gen = conn_gen(c);
	enum wait_result w;

	if (!conn_wait_enter(c, gen))
		return conn_gen(c) != gen ? W_ORPHANED
					  : wait_private_counted(fd, c, events,
								 app_ms);
	w = wait_private_counted(fd, c, events, app_ms);
	conn_wait_leave(c, gen);
	if (conn_gen(c) != gen && w != W_EXPIRED)
		return W_ORPHANED;
	return w;
}

static enum wait_result wait_private_counted(int fd, struct dl_conn *c,
					     uint32_t events, uint32_t app_ms)
{
	int saved = errno;
	uint64_t tag = (uint64_t)(uint32_t)fd | ((uint64_t)conn_gen(c) << 32);
	int64_t now = clock_now();
	int64_t app_dl = app_ms ? now + (int64_t)app_ms * 1000000ll : 0;
	struct epoll_event ev;
	int epfd;

	expire_arm_idle(fd, c, now);
	epfd = private_epfd();
	/* No fd left for an epoll set (RLIMIT_NOFILE reached): wait with
	 * poll() on the one fd instead; the shim's trouble stays its own. */
	if (epfd < 0)
		goto registered;
	if (wait_tl.reg_tag != tag || wait_tl.reg_events != events) {
		ev.events = events;
		ev.data.u64 = tag;
		if (wait_tl.reg_fd == fd && wait_tl.reg_tag == tag) {
			if (REAL(epoll_ctl)(epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
				epfd = -1;
		} else {
			if (wait_tl.reg_fd >= 0)
				REAL(epoll_ctl)(epfd, EPOLL_CTL_DEL, wait_tl.reg_fd,
						0);
			wait_tl.reg_fd = -1;
			if (REAL(epoll_ctl)(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 &&
			    (errno != EEXIST ||
			     REAL(epoll_ctl)(epfd, EPOLL_CTL_MOD, fd, &ev) < 0))
				epfd = -1;
		}
		if (epfd >= 0) {
			wait_tl.reg_fd = fd;
			wait_tl.reg_tag = tag;
			wait_tl.reg_events = events;
		} else {
			/* Could not register (ENOMEM, ...): poll() below. */
			errno = saved;
		}
	}
registered:

	for (;;) {
		int64_t dl, until;
		int n;

		if (conn_gen(c) != (uint32_t)(tag >> 32))
			return W_READY; /* closed under us: the caller sorts it */
		if (conn_state(c) & CONN_EXPIRED)
			return wait_expired(fd, c);
		dl = conn_deadline(c, 0);
		if (dl && now >= dl) {
			if (expire_one(fd, c, now))
				return wait_expired(fd, c);
			if (!(conn_state(c) & CONN_TRACKED))
				return W_READY; /* the number was reused */
			dl = conn_deadline(c, 0); /* e.g. connect was done */
		}
		if (app_dl && now >= app_dl)
			return W_APP_TIMEOUT;
		if (wait_tl.fault_wake && now >= wait_tl.fault_wake)
			return W_READY; /* the caller asks the injector again */
		until = dl;
		if (app_dl && (!until || app_dl < until))
			until = app_dl;
		if (wait_tl.fault_wake && (!until || wait_tl.fault_wake < until))
			until = wait_tl.fault_wake;
		sig_wait_begin();
		if (epfd >= 0) {
			n = REAL(epoll_wait)(epfd, &ev, 1,
					       until ? to_epoll_ms(until - now)
						     : -1);
		} else {
			struct pollfd pfd = { .fd = fd, .events = (short)events };
			n = REAL(poll)(&pfd, 1,
				       until ? to_epoll_ms(until - now) : -1);
			ev.events = (uint32_t)pfd.revents;
			ev.data.u64 = tag;
		}
		if (n < 0) {
			if (errno != EINTR)
				return W_ERROR;
			/* The kernel restarts a blocking socket call after an
			 * SA_RESTART handler, unless the socket has a timeout
			 * (signal(7)); so do we. */
			if (app_ms || sig_interrupted_norestart())
				return W_INTR;
		} else if (n == 1 && ev.data.u64 != tag) {
			/* A registration the program's close left behind:
			 * start a clean set. */
			wait_release(&wait_tl);
			return wait_private_counted(fd, c, events, app_ms);
		} else if (n == 1) {
			wait_tl.last_events = ev.events;
			if (conn_gen(c) != (uint32_t)(tag >> 32))
				return W_READY; /* closed under us */
			if (conn_state(c) & CONN_EXPIRED)
				return wait_expired(fd, c);
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
			return wait_expired(fd, c);
		dl = conn_deadline(c, 0);
		if (dl && now >= dl) {
			if (expire_one(fd, c, now))
				return wait_expired(fd, c);
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
