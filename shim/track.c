/* track.c - which fds the shim tracks, and what it knows of each: new
 * sockets, accepted connections, dups, closes (close_range and closefrom
 * too), the program's O_NONBLOCK and socket timeouts.
 *
 * The fd table's entries are hints: whoever hands out a number resets or
 * copies its entry, whoever ends one forgets it.  An accepted socket is
 * tracked (and its deadlines start) when a rule or fault applies to it.
 */
#include "engine_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "inject.h"
#include "log.h"
#include "real.h"

#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1U << 1)
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

void track_cold_clear(int fd)
{
	struct dl_cold *cold = fdtab_cold(fd);

	if (cold && (cold->ino || cold->addr.sin6_family)) {
		CONN_STORE(cold->ino, 0);
		cold->addr.sin6_family = 0;
	}
}

uint64_t track_inode_of(int fd)
{
	struct stat sb;

	return fstat(fd, &sb) == 0 ? (uint64_t)sb.st_ino : 0;
}

int track_sock_is_tcp(int fd)
{
	int v = 0, dom = 0;
	socklen_t l = sizeof(v), dl = sizeof(dom);

	if (REAL(getsockopt)(fd, SOL_SOCKET, SO_TYPE, &v, &l) < 0 ||
	    v != SOCK_STREAM)
		return 0;
	if (REAL(getsockopt)(fd, SOL_SOCKET, SO_DOMAIN, &dom, &dl) < 0)
		return 0;
	return dom == AF_INET || dom == AF_INET6;
}

uint16_t track_fork_epoch;

void engine_on_socket(int fd, int domain, int type, int protocol)
{
	struct dl_conn *c;
	int saved = errno;

	engine_on_newfd(fd);
	if ((domain != AF_INET && domain != AF_INET6) ||
	    (type & 0xf) != SOCK_STREAM ||
	    (protocol != 0 && protocol != IPPROTO_TCP &&
	     protocol != 262 /* IPPROTO_MPTCP */))
		return;
	c = fdtab_get(fd);
	if (c) {
		/* A new socket: nothing of the number's past applies. */
		CONN_STORE(c->nb_epoch, track_epoch_now());
		CONN_STORE(c->rcvtimeo_ms, 0);
		CONN_STORE(c->sndtimeo_ms, 0);
	}
	if (c)
		__atomic_store_n(&c->st,
				 CONN_SOCK | CONN_NBKNOWN | CONN_FLKNOWN |
					 ((type & SOCK_NONBLOCK) ? CONN_NONBLOCK : 0),
				 __ATOMIC_RELEASE);
	errno = saved;
}

void engine_on_newfd(int fd)
{
	struct dl_conn *c = fdtab_peek(fd);

	if (c && (conn_state(c) || conn_heap_idx(c) >= 0))
		engine_on_close(fd);
}

void engine_on_close(int fd)
{
	struct dl_conn *c = fdtab_peek(fd);
	int saved = errno;

	if (inject_on)
		inject_detach(fd, 0);
	if (!c || (!conn_state(c) && conn_heap_idx(c) < 0)) {
		errno = saved;
		return;
	}
	observe_closed(fd, c);
	engine_lock();
	dlheap_remove(&E.heap, c);
	expire_heap_sync_locked();
	{
		/* What a thread still blocked on this file would carry on
		 * with (see orphans). */
		struct dl_conn snap;
		uint32_t old;

		memset(&snap, 0, sizeof(snap));	/* not filed */
		snap.rule = CONN_LOAD(c->rule);
		snap.rcvtimeo_ms = CONN_LOAD(c->rcvtimeo_ms);
		snap.sndtimeo_ms = CONN_LOAD(c->sndtimeo_ms);
		for (int p = 0; p < DL_PH_COUNT; p++)
			snap.dl[p] = CONN_LOAD(c->dl[p]);
		snap.st = conn_state(c);
		old = fdtab_reset(c);
		if (old & CONN_WAITERS_MAX)
			holds_orphan_add_locked(fd, c, old >> CONN_GEN_SHIFT, &snap);
	}
	engine_unlock();
	track_cold_clear(fd);
	errno = saved;
}

void engine_on_dup(int oldfd, int newfd)
{
	struct dl_conn *o = fdtab_peek(oldfd), *n;
	int saved = errno;

	engine_on_newfd(newfd);
	if (!o || !conn_state(o))
		return;
	n = fdtab_get(newfd);
	if (!n)
		return;
	/* The copy shares the socket: same deadlines, expiring on its own
	 * (expiry of either aborts the shared connection). */
	for (int i = 0; i < DL_PH_COUNT; i++)
		__atomic_store_n(&n->dl[i],
				 __atomic_load_n(&o->dl[i], __ATOMIC_RELAXED),
				 __ATOMIC_RELAXED);
	CONN_STORE(n->rule, CONN_LOAD(o->rule));
	if (fdtab_cold(oldfd) && (fdtab_cold(oldfd)->ino ||
				  fdtab_cold(oldfd)->addr.sin6_family)) {
		struct dl_cold *nc = fdtab_cold_get(newfd);

		if (nc)
			*nc = *fdtab_cold(oldfd);
	} else {
		track_cold_clear(newfd);
	}
	CONN_STORE(n->rcvtimeo_ms, CONN_LOAD(o->rcvtimeo_ms));
	CONN_STORE(n->sndtimeo_ms, CONN_LOAD(o->sndtimeo_ms));
	__atomic_fetch_or(&o->st, CONN_SHARED, __ATOMIC_ACQ_REL);
	__atomic_store_n(&n->st, conn_state(o), __ATOMIC_RELEASE);
	if (conn_deadline(n, 0))
		expire_refile(newfd, n);
	if (inject_on)
		inject_dup(oldfd, newfd, conn_gen(n));
	errno = saved;
}

void engine_on_setfl(int fd, int flags)
{
	struct dl_conn *c = fdtab_peek(fd);
	uint32_t old, nw, fl;

	if (!c || !conn_state(c))
		return;
	/* Only O_NONBLOCK changed: the other flags stay known. */
	fl = (flags & ~(O_NONBLOCK | O_ACCMODE)) ? 0 : CONN_FLKNOWN;
	old = conn_state(c);
	do {
		nw = (flags & O_NONBLOCK)
			     ? (old | CONN_NONBLOCK | CONN_NBKNOWN)
			     : ((old & ~CONN_NONBLOCK) | CONN_NBKNOWN);
		nw = (nw & ~CONN_FLKNOWN) | (old & fl);
	} while (nw != old &&
	       !__atomic_compare_exchange_n(&c->st, &old, nw, 1,
					    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
}

static uint32_t timeval_ms(const void *val, socklen_t len)
{
	const struct timeval *tv = val;
	uint64_t ms;

	if (!val || len < sizeof(*tv) || tv->tv_sec < 0 || tv->tv_usec < 0)
		return 0;
	ms = (uint64_t)tv->tv_sec * 1000u + ((uint64_t)tv->tv_usec + 999u) / 1000u;
	return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

void engine_on_sockopt(int fd, int level, int name, const void *val,
		       socklen_t len)
{
	struct dl_conn *c;

	if (level != SOL_SOCKET)
		return;
	if (name != SO_RCVTIMEO && name != SO_SNDTIMEO
#ifdef SO_RCVTIMEO_NEW
	    && name != SO_RCVTIMEO_NEW && name != SO_SNDTIMEO_NEW
#endif
	)
		return;
	c = fdtab_get(fd);
	if (!c)
		return;
#ifdef SO_RCVTIMEO_NEW
	if (name == SO_RCVTIMEO || name == SO_RCVTIMEO_NEW)
#else
	if (name == SO_RCVTIMEO)
#endif
		CONN_STORE(c->rcvtimeo_ms, timeval_ms(val, len));
	else
		CONN_STORE(c->sndtimeo_ms, timeval_ms(val, len));
}

void engine_on_accept(int lfd, int fd, int flags)
{
	struct dl_conn *l = fdtab_peek(lfd), *c;
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	uint16_t rule = 0;
	int saved = errno, faulted = 0;

	engine_on_newfd(fd);
	if (!(l && (conn_state(l) & CONN_SOCK)) && !track_sock_is_tcp(fd)) {
		errno = saved;
		return;
	}
	if ((rules_now()->conf->nrules || inject_on) &&
	    getpeername(fd, (struct sockaddr *)&peer, &plen) == 0) {
		rule = engine_rule_for(fd, (struct sockaddr *)&peer, plen, 1);
		faulted = inject_on && engine_faults_attach(fd, 0, rule,
						     (struct sockaddr *)&peer,
						     plen, 1, 1);
	}
	if ((!engine_rule_active(rule) && !faulted) || !(c = fdtab_get(fd))) {
		errno = saved;
		return;
	}
	/* accept() never inherits the listener's O_NONBLOCK on Linux, but
	 * it does inherit SO_RCVTIMEO and SO_SNDTIMEO. */
	if (l && (conn_state(l) & CONN_SOCK)) {
		CONN_STORE(c->rcvtimeo_ms, CONN_LOAD(l->rcvtimeo_ms));
		CONN_STORE(c->sndtimeo_ms, CONN_LOAD(l->sndtimeo_ms));
	} else {
		struct timeval tv;
		socklen_t tl = sizeof(tv);

		if (REAL(getsockopt)(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &tl) == 0)
			CONN_STORE(c->rcvtimeo_ms, timeval_ms(&tv, tl));
		tl = sizeof(tv);
		if (REAL(getsockopt)(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &tl) == 0)
			CONN_STORE(c->sndtimeo_ms, timeval_ms(&tv, tl));
	}
	CONN_STORE(c->nb_epoch, track_epoch_now());
	__atomic_store_n(&c->st,
			 CONN_SOCK | CONN_NBKNOWN | CONN_FLKNOWN |
				 ((flags & SOCK_NONBLOCK) ? CONN_NONBLOCK : 0),
			 __ATOMIC_RELEASE);
	CONN_STORE(c->rule, rule);
	/* accept() made the socket before the shim's eyes: every close of
	 * it comes here too, no inode is needed to recognise it. */
	conn_start(c, limits_of(c), 1, 0, clock_now());
	observe_conn(fd, c, 0, 0, 1);
	stats_count(&stats_of(c)->conns, 1);
	inject_announce();	/* the faults line, once per process */
	DL_DEBUG("track fd=%d inbound rule=%s limits_ms=%u/%u/%u/%u", fd,
		 eff_of(c)->rule_name, limits_of(c)->ms[0], limits_of(c)->ms[1],
		 limits_of(c)->ms[2], limits_of(c)->ms[3]);
	expire_refile(fd, c);
	if (faulted)
		engine_faults_attach(fd, c, rule, (struct sockaddr *)&peer, plen, 1, 0);
	errno = saved;
}

/* Does the program see fd as non-blocking?  Trusts what the shim saw the
 * program set; otherwise asks the kernel (only on the would-block path). */
int track_app_nonblocking(int fd, struct dl_conn *c, int *flp)
{
	int fl;

	uint32_t st = conn_state(c);

	/* Known from socket()/accept4() and every F_SETFL/FIONBIO since.  But
	 * O_NONBLOCK lives on the open file: after a dup the program may
	 * change it through the other number, so then ask the kernel. */
	if (!track_shared(c) && (st & CONN_NBKNOWN) &&
	    (!flp || (st & CONN_FLKNOWN))) {
		if (flp)
			*flp = O_RDWR | ((st & CONN_NONBLOCK) ? O_NONBLOCK : 0);
		return (st & CONN_NONBLOCK) != 0;
	}
	fl = REAL(fcntl64)(fd, F_GETFL);
	if (flp)
		*flp = fl;
	if (fl < 0)
		return 0;
	engine_on_setfl(fd, fl);
	return (fl & O_NONBLOCK) != 0;
}

/* ------------------------------------------------------------------------
 * close_range with the shim's own fds spared
 */

int engine_close_range(unsigned lo, unsigned hi, int flags)
{
	int spare[HOLDS_MAX + 1], ns, r = 0;
	unsigned start = lo;
	int saved = errno;

	/* Invalid arguments, and CLOSE_RANGE_CLOEXEC (nothing is closed
	 * now): the kernel answers. */
	if (lo > hi || (flags & CLOSE_RANGE_CLOEXEC) ||
	    (flags & ~(CLOSE_RANGE_CLOEXEC | CLOSE_RANGE_UNSHARE)))
		return REAL(close_range) ? REAL(close_range)(lo, hi, flags)
					 : (int)syscall(SYS_close_range, lo, hi,
							flags);
	/* Forget tracked sockets in the range. */
	for (unsigned s = lo >> FDTAB_SLAB_SHIFT;
	     s < FDTAB_MAX / FDTAB_SLAB && s <= (hi >> FDTAB_SLAB_SHIFT); s++) {
		if (!__atomic_load_n(&fdtab_slabs[s], __ATOMIC_ACQUIRE))
			continue;
		for (unsigned i = 0; i < FDTAB_SLAB; i++) {
			unsigned fd = (s << FDTAB_SLAB_SHIFT) | i;
			if (fd >= lo && fd <= hi)
				engine_on_newfd((int)fd);
		}
	}
	/* The shim's own descriptors in the range are spared. */
	ns = holds_list(spare, HOLDS_MAX);
	{
		int k = 0;
		for (int i = 0; i < ns; i++)
			if ((unsigned)spare[i] >= lo && (unsigned)spare[i] <= hi)
				spare[k++] = spare[i];
		ns = k;
	}
	if (dl_log_fd() > 2 && (unsigned)dl_log_fd() >= lo &&
	    (unsigned)dl_log_fd() <= hi)
		spare[ns++] = dl_log_fd();
	/* Sort the few spared numbers and close the gaps between them. */
	for (int i = 1; i < ns; i++)
		for (int j = i; j > 0 && spare[j - 1] > spare[j]; j--) {
			int t = spare[j];
			spare[j] = spare[j - 1];
			spare[j - 1] = t;
		}
	for (int i = 0; i <= ns && r == 0; i++) {
		unsigned end = i < ns ? (unsigned)spare[i] : hi;
		if (i < ns && (unsigned)spare[i] == start) {
			start++;
			continue;
		}
		if (i < ns)
			end--;
		if (start <= end && start <= hi)
			r = REAL(close_range) ? REAL(close_range)(start, end, flags)
					      : (int)syscall(SYS_close_range,
							     start, end, flags);
		if (i < ns)
			start = (unsigned)spare[i] + 1;
		if (i < ns && spare[i] == INT_MAX)
			break;
	}
	if (r == 0)
		errno = saved;
	return r;
}
