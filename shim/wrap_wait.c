/* wrap_wait.c - the program's own waits: poll, select, epoll.
 *
 * While some tracked socket has a deadline pending, a wait is cut into
 * slices that end at the earliest deadline (found in O(1) at the top of
 * the heap).  At each slice end the due connections are torn down, which
 * makes them ready (HUP|ERR) in the very wait the program is in; then the
 * wait resumes for what is left of the program's own timeout, so early
 * internal wake-ups are never visible.  With nothing armed the real call
 * runs untouched.
 */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "engine.h"
#include "inject.h"
#include "real.h"

extern void __chk_fail(void) __attribute__((noreturn));

/* glibc declares these only under _FORTIFY_SOURCE. */
int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen);
int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *tmo,
		const sigset_t *mask, size_t fdslen);

#define NS 1000000000ll

/* How long the next slice may last: until the earliest deadline or the
 * program's own end (app_end, 0 = none), whichever is first; -1 = no
 * bound.  Tears down what is already due. */
static inline int64_t slice_ns(int64_t app_end, int64_t now)
{
	int64_t next = engine_next_due(), until;

	/* Something due: tear it down (the top key is a lower bound). */
	if (__builtin_expect(next && next <= now, 0))
		next = engine_expire_due(now);
	until = next;

	if (app_end && (!until || app_end < until))
		until = app_end;
	if (!until)
		return -1;
	return until > now ? until - now : 0;
}

/* The program's own timeout is up.  If deadlines fell due meanwhile (the
 * process was descheduled past both), tear them down now and say so: the
 * caller makes one last zero-timeout pass, so the wait never returns with
 * a deadline overdue. */
static int overdue(int64_t now)
{
	if (!engine_armed() || engine_next_due() > now)
		return 0;
	engine_expire_due(now);
	return 1;
}

static struct timespec *ns_ts(int64_t ns, struct timespec *ts)
{
	if (ns < 0)
		return 0;
	ts->tv_sec = ns / NS;
	ts->tv_nsec = ns % NS;
	return ts;
}

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * NS + ts->tv_nsec;
}

/* The program waits on these fds now: idle deadlines start (O(nfds), as
 * the wait itself is). */
static void note_poll_wait(const struct pollfd *fds, nfds_t n)
{
	int64_t now;

	if (!engine_idle_watch())
		return;
	now = clock_now();
	for (nfds_t i = 0; i < n; i++)
		if (fds[i].fd >= 0 && (fds[i].events & (POLLIN | POLLOUT)))
			engine_waiting_on(fds[i].fd, now);
}

static void note_select_wait(int nfds, const fd_set *r, const fd_set *w)
{
	int64_t now;

	if (!engine_idle_watch() || nfds <= 0)
		return;
	if (nfds > FD_SETSIZE)
		nfds = FD_SETSIZE;
	now = clock_now();
	for (int fd = 0; fd < nfds; fd++)
		if ((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)))
			engine_waiting_on(fd, now);
}

/* ---- poll / ppoll ---------------------------------------------------- */

/* More entries than RLIMIT_NOFILE: the kernel answers EINVAL without
 * reading the array, and so must the shim (it would read past its end). */
static int poll_invalid(nfds_t n)
{
	struct rlimit rl;

	return n > 1024 && getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	       rl.rlim_cur != RLIM_INFINITY && n > rl.rlim_cur;
}

/* app_ns: the program's timeout in ns, -1 for none. */
static int poll_sliced(struct pollfd *fds, nfds_t n, int64_t app_ns,
		       const sigset_t *mask)
{
	int64_t now = clock_now();
	int64_t app_end = app_ns >= 0 ? now + app_ns : 0;

	for (;;) {
		struct timespec ts;
		int r = REAL(ppoll)(fds, n, ns_ts(slice_ns(app_end, now), &ts),
				    mask);

		if (r != 0)
			return r;
		now = clock_now();
		if (app_ns >= 0 && now >= app_end) {
			struct timespec zero = { 0, 0 };
			return overdue(now) ? REAL(ppoll)(fds, n, &zero, mask) : 0;
		}
	}
}

/* ---- injected faults -------------------------------------------------
 *
 * While some connection has fault state, a wait hides what the program
 * may not see yet (a delayed read, a handshake still "in flight") and
 * ends when that changes, so that an event loop is never put to sleep by
 * a fault: it simply finds the fd not ready until the delay has passed.
 */

/* The program's time left (ns, -1 = none), cut at the next fault change
 * and at the next deadline (an expiry ends what a fault hides: the fd
 * must be shown at once, not when the program's own timeout is up). */
static int64_t fault_slice(int64_t app_ns, int64_t app_end, int64_t next,
			   int64_t now)
{
	int64_t t = app_ns < 0 ? -1 : (app_end > now ? app_end - now : 0);
	int64_t due = engine_next_due();

	if (due && (!next || due < next))
		next = due;

	if (next) {
		int64_t d = next > now ? next - now : 0;
		if (t < 0 || d < t)
			t = d;
	}
	return t;
}

static int poll_sliced(struct pollfd *fds, nfds_t n, int64_t app_ns,
		       const sigset_t *mask);

static uint32_t hide_bits(uint32_t h)
{
	return (h & POLLIN) ? h | POLLRDHUP : h;
}

static int poll_faulted(struct pollfd *fds, nfds_t n, int64_t app_ns,
			const sigset_t *mask)
{
	struct pollfd small[32], *cp = small;
	uint32_t hsmall[32], *hm = hsmall;
	int64_t now = clock_now();
	int64_t app_end = app_ns >= 0 ? now + app_ns : 0;
	int r;

	if (n > 32) {
		cp = malloc(n * (sizeof(*cp) + sizeof(*hm)));
		if (!cp)
			return poll_sliced(fds, n, app_ns, mask);
		hm = (uint32_t *)(cp + n);
	}
	for (;;) {
		int64_t next = 0;

		for (nfds_t i = 0; i < n; i++) {
			cp[i] = fds[i];
			hm[i] = fds[i].fd >= 0
					? inject_hidden(fds[i].fd, now, &next)
					: 0;
			if (hm[i] & INJ_HIDE_ALL)
				cp[i].fd = -1;
			else
				cp[i].events &= (short)~hide_bits(hm[i]);
		}
		r = poll_sliced(cp, n, fault_slice(app_ns, app_end, next, now),
				mask);
		if (r < 0)
			break;
		now = clock_now();
		r = 0;
		for (nfds_t i = 0; i < n; i++) {
			uint32_t rev = (uint16_t)cp[i].revents;

			if (hm[i] & INJ_HIDE_ALL)
				rev = 0;
			else if (rev && fds[i].fd >= 0)
				rev &= ~hide_bits(inject_observe(fds[i].fd, rev,
								 now, &next));
			if (rev && fds[i].fd >= 0)
				rev &= ~inject_hup_hidden(
					fds[i].fd, rev,
					(uint16_t)fds[i].events);
			fds[i].revents = (short)rev;
			r += rev != 0;
		}
		if (r || (app_ns >= 0 && now >= app_end))
			break;
	}
	if (cp != small) {
		int e = errno;
		free(cp);
		errno = e;
	}
	return r;
}

/* select in terms of poll_faulted: the same readiness rules as the
 * kernel's (read: IN, HUP, ERR; write: OUT, ERR; except: PRI). */
static int select_faulted(int nfds, fd_set *r, fd_set *w, fd_set *e,
			  int64_t app_ns, const sigset_t *mask,
			  int64_t *left_ns)
{
	struct pollfd *pf;
	int64_t start = clock_now();
	nfds_t n = 0;
	int res;

	pf = malloc((size_t)(nfds > 0 ? nfds : 1) * sizeof(*pf));
	if (!pf) {
		errno = ENOMEM;
		return -1;
	}
	for (int fd = 0; fd < nfds; fd++) {
		short ev = (short)(((r && FD_ISSET(fd, r)) ? POLLIN : 0) |
				   ((w && FD_ISSET(fd, w)) ? POLLOUT : 0) |
				   ((e && FD_ISSET(fd, e)) ? POLLPRI : 0));
		if (ev) {
			pf[n].fd = fd;
			pf[n].events = ev;
			pf[n].revents = 0;
			n++;
		}
	}
	res = poll_faulted(pf, n, app_ns, mask);
	if (res >= 0) {
		for (nfds_t i = 0; i < n; i++)
			if (pf[i].revents & POLLNVAL) {
				free(pf);
				errno = EBADF;
				return -1;
			}
		res = 0;
		for (nfds_t i = 0; i < n; i++) {
			short rv = pf[i].revents;
			int fd = pf[i].fd;
			if (r && FD_ISSET(fd, r) &&
			    !(rv & (POLLIN | POLLHUP | POLLERR)))
				FD_CLR(fd, r);
			else if (r && FD_ISSET(fd, r))
				res++;
			if (w && FD_ISSET(fd, w) && !(rv & (POLLOUT | POLLERR)))
				FD_CLR(fd, w);
			else if (w && FD_ISSET(fd, w))
				res++;
			if (e && FD_ISSET(fd, e) && !(rv & POLLPRI))
				FD_CLR(fd, e);
			else if (e && FD_ISSET(fd, e))
				res++;
		}
	}
	free(pf);
	if (left_ns) {
		int64_t now = clock_now();
		*left_ns = app_ns >= 0 && start + app_ns > now
				   ? start + app_ns - now : 0;
	}
	return res;
}

static int do_poll(struct pollfd *fds, nfds_t n, int timeout)
{
	if (self_outside() || poll_invalid(n))
		return REAL(poll)(fds, n, timeout);
	if (timeout != 0)
		note_poll_wait(fds, n);
	if (inject_active())
		return poll_faulted(fds, n,
				    timeout < 0 ? -1 : (int64_t)timeout * 1000000,
				    0);
	if (!engine_armed())
		return REAL(poll)(fds, n, timeout);
	return poll_sliced(fds, n, timeout < 0 ? -1 : (int64_t)timeout * 1000000,
			   0);
}

DL_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	return do_poll(fds, n, timeout);
}

DL_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout,
			 size_t fdslen)
{
	if (fdslen / sizeof(*fds) < n)
		__chk_fail();
	return do_poll(fds, n, timeout);
}

static int do_ppoll(struct pollfd *fds, nfds_t n, const struct timespec *tmo,
		    const sigset_t *mask)
{
	if (self_outside() || poll_invalid(n))
		return REAL(ppoll)(fds, n, tmo, mask);
	if (!tmo || tmo->tv_sec || tmo->tv_nsec)
		note_poll_wait(fds, n);
	if ((!engine_armed() && !inject_active()) ||
	    (tmo && (tmo->tv_sec < 0 || tmo->tv_nsec < 0 ||
		     tmo->tv_nsec >= NS)))
		return REAL(ppoll)(fds, n, tmo, mask);
	if (inject_active())
		return poll_faulted(fds, n, tmo ? ts_ns(tmo) : -1, mask);
	return poll_sliced(fds, n, tmo ? ts_ns(tmo) : -1, mask);
}

DL_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *tmo,
		    const sigset_t *mask)
{
	return do_ppoll(fds, n, tmo, mask);
}

DL_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n,
			  const struct timespec *tmo, const sigset_t *mask,
			  size_t fdslen)
{
	if (fdslen / sizeof(*fds) < n)
		__chk_fail();
	return do_ppoll(fds, n, tmo, mask);
}

/* ---- select / pselect ------------------------------------------------ */

/* The kernel rewrites the sets; a resumed slice needs the originals. */
struct fdsets {
	fd_set r, w, e;
};

static void sets_save(struct fdsets *s, int nfds, fd_set *r, fd_set *w,
		      fd_set *e)
{
	size_t bytes = ((size_t)nfds + 7) / 8;

	if (bytes > sizeof(fd_set))
		bytes = sizeof(fd_set);
	if (r)
		memcpy(&s->r, r, bytes);
	if (w)
		memcpy(&s->w, w, bytes);
	if (e)
		memcpy(&s->e, e, bytes);
}

static void sets_restore(const struct fdsets *s, int nfds, fd_set *r,
			 fd_set *w, fd_set *e)
{
	size_t bytes = ((size_t)nfds + 7) / 8;

	if (bytes > sizeof(fd_set))
		bytes = sizeof(fd_set);
	if (r)
		memcpy(r, &s->r, bytes);
	if (w)
		memcpy(w, &s->w, bytes);
	if (e)
		memcpy(e, &s->e, bytes);
}

static int select_sliced(int nfds, fd_set *r, fd_set *w, fd_set *e,
			 int64_t app_ns, const sigset_t *mask,
			 int64_t *left_ns)
{
	int64_t now = clock_now();
	int64_t app_end = app_ns >= 0 ? now + app_ns : 0;
	struct fdsets saved;
	int res;

	sets_save(&saved, nfds, r, w, e);
	for (;;) {
		struct timespec ts;

		res = REAL(pselect)(nfds, r, w, e,
				    ns_ts(slice_ns(app_end, now), &ts), mask);
		now = clock_now();
		if (res != 0)
			break;
		if (app_ns >= 0 && now >= app_end) {
			struct timespec zero = { 0, 0 };
			if (overdue(now)) {
				sets_restore(&saved, nfds, r, w, e);
				res = REAL(pselect)(nfds, r, w, e, &zero, mask);
			}
			break;
		}
		sets_restore(&saved, nfds, r, w, e);
	}
	if (left_ns)
		*left_ns = app_ns >= 0 && app_end > now ? app_end - now : 0;
	return res;
}

/* A select the shim cannot slice (nfds > FD_SETSIZE below) still never
 * starts with a deadline overdue: what is due is torn down first, so the
 * program's wait sees it ready at once.  A deadline that falls due during
 * such a wait is met at the program's next call on the socket (io.c).
 * Lock-free and without system calls while nothing is due. */
static void expire_before_uncut(int nfds)
{
	int saved = errno;

	if (nfds > FD_SETSIZE && engine_armed())
		engine_expire_due(clock_now());
	errno = saved;
}

/* Sets wider than fd_set (nfds > FD_SETSIZE) cannot be saved: those waits
 * run unsliced, as do invalid timeouts (the kernel reports them). */
static int select_plain(int nfds, const struct timeval *tv)
{
	return (!engine_armed() && !inject_active()) || nfds < 0 ||
	       nfds > FD_SETSIZE ||
	       (tv && (tv->tv_sec < 0 || tv->tv_usec < 0 ||
		       tv->tv_usec >= 1000000));
}

static int do_select(int nfds, fd_set *r, fd_set *w, fd_set *e,
		     struct timeval *tv)
{
	int64_t left;
	int res;

	if (self_outside())
		return REAL(select)(nfds, r, w, e, tv);
	if (!tv || tv->tv_sec || tv->tv_usec)
		note_select_wait(nfds, r, w);
	if (select_plain(nfds, tv)) {
		expire_before_uncut(nfds);
		return REAL(select)(nfds, r, w, e, tv);
	}
	res = (inject_active() ? select_faulted : select_sliced)(
		nfds, r, w, e,
		tv ? (int64_t)tv->tv_sec * NS + tv->tv_usec * 1000ll : -1, 0,
		&left);
	if (tv) { /* Linux reports the time not slept */
		int saved = errno;
		tv->tv_sec = left / NS;
		tv->tv_usec = (left % NS) / 1000;
		errno = saved;
	}
	return res;
}

DL_EXPORT int select(int nfds, fd_set *r, fd_set *w, fd_set *e,
		     struct timeval *tv)
{
	return do_select(nfds, r, w, e, tv);
}

static int do_pselect(int nfds, fd_set *r, fd_set *w, fd_set *e,
		      const struct timespec *ts, const sigset_t *mask)
{
	if (self_outside())
		return REAL(pselect)(nfds, r, w, e, ts, mask);
	if (!ts || ts->tv_sec || ts->tv_nsec)
		note_select_wait(nfds, r, w);
	if ((!engine_armed() && !inject_active()) || nfds < 0 ||
	    nfds > FD_SETSIZE ||
	    (ts && (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= NS))) {
		expire_before_uncut(nfds);
		return REAL(pselect)(nfds, r, w, e, ts, mask);
	}
	return (inject_active() ? select_faulted : select_sliced)(
		nfds, r, w, e, ts ? ts_ns(ts) : -1, mask, 0);
}

DL_EXPORT int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e,
		      const struct timespec *ts, const sigset_t *mask)
{
	return do_pselect(nfds, r, w, e, ts, mask);
}

/* ---- epoll ----------------------------------------------------------- */

/* Can the slices use epoll_pwait2 (glibc 2.35 and kernel 5.11 on)?  0
 * not asked yet, 1 yes, -1 no: slices are then rounded up to whole
 * milliseconds.  Asked once, with no descriptor: a kernel that has the
 * call answers EBADF; ENOSYS (too old) or EPERM (a seccomp filter that
 * does not know it) mean no. */
static int pwait2_ok;

static __attribute__((noinline, cold)) int pwait2_probe(void)
{
	int saved = errno, ok = -1;
	struct timespec zero = { 0, 0 };

	if (REAL(epoll_pwait2) &&
	    REAL(epoll_pwait2)(-1, 0, 1, &zero, 0) < 0 && errno == EBADF)
		ok = 1;
	errno = saved;
	__atomic_store_n(&pwait2_ok, ok, __ATOMIC_RELAXED);
	return ok;
}

static inline int pwait2_usable(void)
{
	int ok = __atomic_load_n(&pwait2_ok, __ATOMIC_RELAXED);

	return __builtin_expect(ok > 0, 1) || (!ok && pwait2_probe() > 0);
}

static inline __attribute__((always_inline)) int
epoll_slice(int epfd, struct epoll_event *ev, int max, int64_t ns,
	    const sigset_t *mask)
{
	if (pwait2_usable()) {
		struct timespec ts;

		return REAL(epoll_pwait2)(epfd, ev, max, ns_ts(ns, &ts), mask);
	}
	return REAL(epoll_pwait)(epfd, ev, max,
				 ns < 0 ? -1 : (int)((ns + 999999) / 1000000),
				 mask);
}

static inline __attribute__((always_inline)) int
epoll_sliced(int epfd, struct epoll_event *ev, int max, int64_t app_ns,
	     const sigset_t *mask)
{
	int64_t now = clock_now();
	int64_t app_end = app_ns >= 0 ? now + app_ns : 0;

	for (;;) {
		int r = epoll_slice(epfd, ev, max, slice_ns(app_end, now), mask);

		if (__builtin_expect(r != 0, 1))
			return r;
		now = clock_now();
		if (app_ns >= 0 && now >= app_end)
			return overdue(now) ? epoll_slice(epfd, ev, max, 0, mask)
					    : 0;
	}
}

/* epoll with faults: the program's own registrations are masked (see
 * inject_epoll_prepare) so that a hidden fd does not keep waking a
 * level-triggered set, and events that a fault hides are dropped. */
static int epoll_faulted(int epfd, struct epoll_event *ev, int max,
			 int64_t app_ns, const sigset_t *mask)
{
	int64_t now = clock_now();
	int64_t app_end = app_ns >= 0 ? now + app_ns : 0;

	for (;;) {
		int64_t next = inject_epoll_prepare(epfd, now);
		int r = epoll_sliced(epfd, ev, max,
				     fault_slice(app_ns, app_end, next, now),
				     mask);

		if (r < 0)
			return r;
		now = clock_now();
		if (r > 0 && (r = inject_epoll_filter(epfd, ev, r, now, &next)))
			return r;
		if (app_ns >= 0 && now >= app_end)
			return 0;
	}
}

/* Inlined in both exports: epoll_wait is an event loop's hot call. */
static inline __attribute__((always_inline)) int
do_epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout,
	       const sigset_t *mask, int plain)
{
	if (self_outside())
		return plain ? REAL(epoll_wait)(epfd, ev, max, timeout)
			     : REAL(epoll_pwait)(epfd, ev, max, timeout, mask);
	if (inject_on && inject_active() && max > 0)
		return epoll_faulted(epfd, ev, max,
				     timeout < 0 ? -1
						 : (int64_t)timeout * 1000000,
				     mask);
	if (!engine_armed() || max <= 0)
		return plain ? REAL(epoll_wait)(epfd, ev, max, timeout)
			     : REAL(epoll_pwait)(epfd, ev, max, timeout, mask);
	return epoll_sliced(epfd, ev, max,
			    timeout < 0 ? -1 : (int64_t)timeout * 1000000, mask);
}

DL_EXPORT int epoll_wait(int epfd, struct epoll_event *ev, int max,
			 int timeout)
{
	return do_epoll_pwait(epfd, ev, max, timeout, 0, 1);
}

DL_EXPORT int epoll_pwait(int epfd, struct epoll_event *ev, int max,
			  int timeout, const sigset_t *mask)
{
	return do_epoll_pwait(epfd, ev, max, timeout, mask, 0);
}

static int do_epoll_pwait2(int epfd, struct epoll_event *ev, int max,
			   const struct timespec *tmo, const sigset_t *mask)
{
	/* Where the kernel refuses it, the program hears so, as natively. */
	if (self_outside() || !pwait2_usable())
		return REAL(epoll_pwait2)(epfd, ev, max, tmo, mask);
	if ((!engine_armed() && !inject_active()) || max <= 0 ||
	    (tmo && (tmo->tv_sec < 0 || tmo->tv_nsec < 0 || tmo->tv_nsec >= NS)))
		return REAL(epoll_pwait2)(epfd, ev, max, tmo, mask);
	if (inject_active())
		return epoll_faulted(epfd, ev, max, tmo ? ts_ns(tmo) : -1,
				     mask);
	return epoll_sliced(epfd, ev, max, tmo ? ts_ns(tmo) : -1, mask);
}

DL_EXPORT int epoll_pwait2(int epfd, struct epoll_event *ev, int max,
			   const struct timespec *tmo, const sigset_t *mask)
{
	return do_epoll_pwait2(epfd, ev, max, tmo, mask);
}

/* ---- epoll_ctl -------------------------------------------------------- */

/* Registration is how an epoll program says it waits on a socket. */
static int do_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	int r;

	if (self_outside())
		return REAL(epoll_ctl)(epfd, op, fd, ev);
	r = inject_on ? inject_epoll_ctl(epfd, op, fd, ev)
			  : REAL(epoll_ctl)(epfd, op, fd, ev);

	if (r == 0 && engine_idle_watch())
		engine_on_epoll_ctl(op, fd);
	return r;
}

DL_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	return do_epoll_ctl(epfd, op, fd, ev);
}
