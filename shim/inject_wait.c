/* inject_wait.c - what the program's waits may see of a faulted
 * connection (see inject.h, inject_int.h): poll/select/epoll must not
 * report an fd ready while a fault holds its call back (a delayed or
 * blackholed handshake, a latency gate, a bandwidth pause, blackholed
 * data), else an event loop would spin on EAGAIN; the hidden events come
 * back when the fault allows (the caller bounds its wait by *next).  A
 * hangup is hidden while reads are cut short and bytes remain unread.
 *
 * epoll: registrations of sockets are recorded while faults are
 * configured, and the kernel's copy is masked (EPOLL_CTL_MOD) or taken
 * out (EPOLL_CTL_DEL) while events are hidden, restored after; an
 * edge-triggered registration is re-armed when a fault swallowed its edge.
 *
 * Locking: rmu guards the registry; an entry's lock (fc_lock) is taken
 * under it, never the other way round.  errno: reg_apply keeps it; the
 * others may change it (a peek, SIOCINQ).
 */
#include "inject_int.h"

#include <errno.h>
#include <linux/sockios.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>

#include "fdtab.h"
#include "real.h"
#include "self.h"

/* ------------------------------------------------------------ the waits */

static void set_wake(int64_t *w, int64_t t)
{
	if (t && (!*w || t < *w))
		*w = t;
}

static int fc_expired(int fd)
{
	struct dl_conn *c = fdtab_peek(fd);

	return c && (conn_state(c) & CONN_EXPIRED);
}

uint32_t inject_hidden(int fd, int64_t now, int64_t *next)
{
	struct fault_conn *fc = fc_lock(fd);
	uint32_t h = 0;

	if (!fc)
		return 0;
	if (fc_expired(fd)) {
		/* The deadline ended it: the program must see it now. */
		fc->conn_forever = 0;
		fc->conn_at = 0;
		fc->bh = 0;
		fc_unlock(fc);
		return 0;
	}
	if (fc->conn_forever) {
		h = INJ_HIDE_ALL;
		goto out;
	}
	if (fc->conn_at && now < fc->conn_at) {
		h = INJ_HIDE_ALL;
		set_wake(next, fc->conn_at);
		goto out;
	}
	if (fc->fake)
		goto out; /* refused: the kernel reports OUT|HUP, SO_ERROR says */
	fc_check_bh_then(fc, now);
	{
		int64_t w = 0;
		fc_check_end(fc, &w);
		set_wake(next, w);
	}
	if (fc->ended)
		goto out;
	fc_check_blackhole(fc, now);
	if (fc->bh) {
		h |= POLLIN;
		set_wake(next, fc->bh_then_at);
	}
	for (int dir = FDIR_UP; dir <= FDIR_DOWN; dir++) {
		uint32_t ev = dir == FDIR_UP ? POLLOUT : POLLIN;
		if (fc->gate_op[dir] == fc->op + 1 && fc->gate[dir] > now) {
			h |= ev;
			set_wake(next, fc->gate[dir]);
		}
		if (fc->bw_next[dir] > now) {
			h |= ev;
			set_wake(next, fc->bw_next[dir]);
		}
	}
out:
	fc_unlock(fc);
	return h;
}

uint32_t inject_observe(int fd, uint32_t revents, int64_t now, int64_t *next)
{
	struct fault_conn *fc;
	uint32_t h = 0;

	if (!(revents & POLLIN) || !(fc = fc_lock(fd)))
		return 0;
	if (!fc->ended && !fc->bh && !fc->fake &&
	    (!fc->conn_at || now >= fc->conn_at)) {
		if ((revents & POLLIN) && fc->gate_op[FDIR_DOWN] != fc->op + 1) {
			int64_t g = fc_open_gate(fc, FDIR_DOWN, now);
			if (g > now) {
				h |= POLLIN;
				set_wake(next, g);
			}
		}
		/* A write's delay starts at the write itself (inject_io), not
		 * when the program waits for writability: that may be for
		 * the handshake. */
	}
	fc_unlock(fc);
	return h;
}

/* Reads are cut short now: a downstream slice or bandwidth group is on
 * for the connection (decided here if no read has asked yet). */
static int reads_capped(struct fault_conn *fc)
{
	if (I.dry)
		return 0;
	for (int i = 0; i < fc->n; i++)
		if (fc_cont_on(fc, i, FK_SLICE, FDIR_DOWN) ||
		    fc_cont_on(fc, i, FK_BANDWIDTH, FDIR_DOWN))
			return 1;
	return 0;
}

uint32_t inject_hup_hidden(int fd, uint32_t revents, uint32_t wanted)
{
	struct fault_conn *fc;
	uint32_t h = 0;
	int queued = 0;

	if (!(revents & (POLLRDHUP | POLLHUP)) || !(wanted & POLLIN) ||
	    !(fc = fc_lock(fd)))
		return 0;
	if (!fc->ended && reads_capped(fc) &&
	    REAL(ioctl)(fd, SIOCINQ, &queued) == 0 && queued > 0)
		h = POLLRDHUP | POLLHUP;
	fc->hup_hidden = h != 0;
	fc_unlock(fc);
	return h;
}

/* --------------------------------------------------------------- epoll */

struct ereg {
	int epfd, fd;
	uint32_t events;	/* as the program registered them */
	epoll_data_t data;
	uint32_t applied;	/* what the kernel has masked now */
	int removed;		/* taken out of the set entirely */
};

static struct ereg *R;
static size_t nR, capR;
static pthread_mutex_t rmu = PTHREAD_MUTEX_INITIALIZER;

static struct ereg *reg_find(int epfd, int fd)
{
	for (size_t i = 0; i < nR; i++)
		if (R[i].epfd == epfd && R[i].fd == fd)
			return &R[i];
	return 0;
}

static void reg_drop(struct ereg *e)
{
	*e = R[nR - 1];
	__atomic_store_n(&nR, nR - 1, __ATOMIC_RELAXED);
}

/* Hiding input hides the peer's FIN too (else a level-triggered set
 * reports it over and over). */
static uint32_t hide_mask(uint32_t h)
{
	return (h & EPOLLIN) ? h | EPOLLRDHUP : h;
}

/* Make the kernel's registration of e show what may be seen now. */
static void reg_apply(struct ereg *e, uint32_t h, int force)
{
	struct epoll_event ev;
	int saved = errno;

	if (h == e->applied && !force)
		return;
	if (h & INJ_HIDE_ALL) {
		if (!e->removed &&
		    REAL(epoll_ctl)(e->epfd, EPOLL_CTL_DEL, e->fd, 0) == 0)
			e->removed = 1;
	} else {
		ev.events = e->events & ~hide_mask(h);
		ev.data = e->data;
		if (e->removed) {
			if (REAL(epoll_ctl)(e->epfd, EPOLL_CTL_ADD, e->fd,
					    &ev) == 0)
				e->removed = 0;
		} else {
			REAL(epoll_ctl)(e->epfd, EPOLL_CTL_MOD, e->fd, &ev);
		}
	}
	e->applied = h;
	errno = saved;
}

int inject_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	struct dl_conn *c = fdtab_peek(fd);
	struct ereg *e;
	int r;

	if (!(c && (conn_state(c) & CONN_SOCK)) ||
	    (ev && (ev->events & EPOLLEXCLUSIVE)))
		return REAL(epoll_ctl)(epfd, op, fd, ev);
	self_lock(&rmu);
	e = reg_find(epfd, fd);
	if (e && e->removed && op != EPOLL_CTL_ADD) {
		/* The kernel does not have it now (hidden): keep the books. */
		if (op == EPOLL_CTL_DEL) {
			reg_drop(e);
		} else if (ev) {
			e->events = ev->events;
			e->data = ev->data;
		}
		self_unlock(&rmu);
		return 0;
	}
	if (op != EPOLL_CTL_DEL && ev && e && e->applied &&
	    !(e->applied & INJ_HIDE_ALL)) {
		struct epoll_event m = *ev;
		m.events &= ~hide_mask(e->applied);
		r = REAL(epoll_ctl)(epfd, op, fd, &m);
	} else {
		r = REAL(epoll_ctl)(epfd, op, fd, ev);
	}
	if (r == 0) {
		if (op == EPOLL_CTL_DEL) {
			if (e)
				reg_drop(e);
		} else if (ev) {
			if (!e) {
				if (nR == capR) {
					size_t cap = capR ? capR * 2 : 64;
					struct ereg *n = realloc(R, cap * sizeof(*R));
					if (!n)
						goto done;
					R = n;
					capR = cap;
				}
				e = &R[nR];
				__atomic_store_n(&nR, nR + 1, __ATOMIC_RELAXED);
				memset(e, 0, sizeof(*e));
				e->epfd = epfd;
				e->fd = fd;
			}
			e->events = ev->events;
			e->data = ev->data;
		}
	}
done:
	self_unlock(&rmu);
	return r;
}

int64_t inject_epoll_prepare(int epfd, int64_t now)
{
	int64_t next = 0;

	self_lock(&rmu);
	for (size_t i = 0; i < nR; i++) {
		struct ereg *e = &R[i];
		struct fault_conn *fc;
		uint32_t h;
		int rearm = 0;

		if (e->epfd != epfd)
			continue;
		h = inject_hidden(e->fd, now, &next);
		if ((fc = fc_lock(e->fd))) {
			rearm = fc->rearm;
			fc->rearm = 0;
			fc_unlock(fc);
		}
		/* Level-triggered sets report again anyway; a one-shot
		 * registration is the program's to re-arm. */
		reg_apply(e, h, rearm && (e->events & (EPOLLET | EPOLLONESHOT)) ==
					    EPOLLET);
	}
	self_unlock(&rmu);
	return next;
}

int inject_epoll_filter(int epfd, struct epoll_event *ev, int n, int64_t now,
			int64_t *next)
{
	int out = 0;

	self_lock(&rmu);
	for (int k = 0; k < n; k++) {
		struct ereg *e = 0;
		uint32_t h;

		for (size_t i = 0; i < nR; i++)
			if (R[i].epfd == epfd && R[i].data.u64 == ev[k].data.u64) {
				e = &R[i];
				break;
			}
		if (e) {
			h = inject_hidden(e->fd, now, next) |
			    inject_observe(e->fd, ev[k].events, now, next);
			if (h) {
				reg_apply(e, h | e->applied, 0);
				if (h & INJ_HIDE_ALL)
					continue;
				ev[k].events &= ~hide_mask(h);
			}
			/* Not in the registration: only this report. */
			ev[k].events &= ~inject_hup_hidden(e->fd, ev[k].events,
							   e->events);
			if (!(ev[k].events & (EPOLLIN | EPOLLOUT | EPOLLPRI |
					      EPOLLERR | EPOLLHUP |
					      EPOLLRDHUP)))
				continue;
		}
		ev[out++] = ev[k];
	}
	self_unlock(&rmu);
	return out;
}

/* fd is closed: drop its registrations, and those in it (an epoll set). */
void ereg_forget(int fd)
{
	if (inject_on && __atomic_load_n(&nR, __ATOMIC_RELAXED)) {
		self_lock(&rmu);
		for (size_t i = 0; i < nR;)
			if (R[i].fd == fd || R[i].epfd == fd)
				reg_drop(&R[i]);
			else
				i++;
		self_unlock(&rmu);
	}
}
