/* conn.h - per-connection deadline state and its transitions.
 *
 * Plain C: the engine feeds events (connect, bytes moved, would-block) and
 * a clock; these functions decide which deadlines are armed.  No syscalls,
 * no locks: fields touched from several threads are relaxed atomics, and a
 * racing update can only leave a deadline slightly stale, never corrupt.
 */
#ifndef DL_CONN_H
#define DL_CONN_H

#include <stdint.h>
#include <sys/types.h>

#include "policy.h"

/* State bits (dl_conn.st). */
enum {
	CONN_SOCK = 1u << 0,       /* created by socket() as TCP (v4/v6) */
	CONN_TRACKED = 1u << 1,    /* deadlines apply */
	CONN_INBOUND = 1u << 2,    /* accepted: roles mirror */
	CONN_CONNECTING = 1u << 3, /* connect() started, not yet established */
	CONN_EXPIRED = 1u << 4,    /* torn down: I/O fails until close() */
	CONN_TURN_WROTE = 1u << 5, /* last data moved was written */
	CONN_TURN_READ = 1u << 6,  /* last data moved was read */
	CONN_NONBLOCK = 1u << 7,   /* the program asked for O_NONBLOCK (hint) */
	CONN_SHARED = 1u << 11,    /* the open file has other fds (dup) */
	CONN_NBKNOWN = 1u << 12,   /* CONN_NONBLOCK is known, not a guess */
	CONN_EPOLLED = 1u << 13,   /* in one of the program's epoll sets */
	CONN_UNSETTLED = 1u << 14, /* emulated blocking connect: the kernel
				    * still says "connecting" (see connect) */
	CONN_FLKNOWN = 1u << 15,   /* file flags are O_RDWR | CONN_NONBLOCK */
	CONN_H1 = 1u << 16,        /* HTTP/1 exchanges followed (exchange.c) */
	CONN_H1OFF = 1u << 17,     /* ... or not, for the life of the file */
	CONN_H1W = 1u << 18,       /* a write is between its system call and
				    * its account to exchange.c */
	CONN_PH_SHIFT = 8,         /* expired phase, 3 bits */
	CONN_PH_MASK = 7u << 8,
};

/* One entry per fd number; 64 bytes, and all the shim keeps for a
 * tracked connection (fdtab.h: rare cold data lives elsewhere).  Fields
 * other threads may read while one writes are accessed with relaxed
 * atomics (plain on x86).
 *
 * The deadline heap (dlheap.h) lives in these entries too: heap_pos says
 * where this fd sits in it, and heap_fd / heap_key hold the heap's slot
 * whose position is this entry's fd number (the slot belongs to the heap,
 * not to the connection: nothing but dlheap.c touches them). */
struct dl_conn {
	_Atomic uint32_t st;
	/* Generation (bumped whenever the number gets a new file) in the
	 * high 24 bits, threads in a private wait on that generation in the
	 * low 8: one word, so a close and a waiter can never miss each other. */
	_Atomic uint32_t gw;
	int32_t heap_pos;      /* position in the deadline heap + 1; 0 =
				* absent, so that zeroed pages (a new slab)
				* need no writing: conn_heap_idx */
	int32_t heap_fd;       /* heap slot: the fd at position (this fd) */
	uint32_t heap_key;     /* heap slot: its key (dlheap.h) */
	uint16_t rule;         /* index of the limits in force */
	uint16_t nb_epoch;     /* track.c: fork epoch when O_NONBLOCK was learnt */
	_Atomic int64_t dl[DL_PH_COUNT]; /* absolute deadlines, ns; 0 = off */
	uint32_t rcvtimeo_ms;  /* the program's SO_RCVTIMEO, 0 = none */
	uint32_t sndtimeo_ms;  /* the program's SO_SNDTIMEO, 0 = none */
};

typedef int64_t (*conn_clock_fn)(void);

/* Relaxed access to fields another thread may touch meanwhile. */
#define CONN_LOAD(f) __atomic_load_n(&(f), __ATOMIC_RELAXED)
#define CONN_STORE(f, v) __atomic_store_n(&(f), (v), __ATOMIC_RELAXED)

#define CONN_GEN_SHIFT 8
#define CONN_WAITERS_MAX 0xffu

/* conn_heap_idx - c's position in the deadline heap, -1 if not filed
 * (read without the heap's lock: conn_arm, track.c). */
static inline int32_t conn_heap_idx(const struct dl_conn *c)
{
	return __atomic_load_n(&c->heap_pos, __ATOMIC_RELAXED) - 1;
}

/* conn_set_heap_idx - c is at position i of the heap (-1: not filed). */
static inline void conn_set_heap_idx(struct dl_conn *c, int32_t i)
{
	__atomic_store_n(&c->heap_pos, i + 1, __ATOMIC_RELAXED);
}

/* conn_gen - the entry's current generation. */
static inline uint32_t conn_gen(const struct dl_conn *c)
{
	return __atomic_load_n(&c->gw, __ATOMIC_ACQUIRE) >> CONN_GEN_SHIFT;
}

/* conn_wait_enter - count a waiter on generation gen.  Returns 0 when the
 * number already moved on (closed since), or the count is saturated. */
static inline int conn_wait_enter(struct dl_conn *c, uint32_t gen)
{
	uint32_t old = __atomic_load_n(&c->gw, __ATOMIC_ACQUIRE);

	do {
		if (old >> CONN_GEN_SHIFT != gen ||
		    (old & CONN_WAITERS_MAX) == CONN_WAITERS_MAX)
			return 0;
	} while (!__atomic_compare_exchange_n(&c->gw, &old, old + 1, 1,
					      __ATOMIC_ACQ_REL,
					      __ATOMIC_ACQUIRE));
	return 1;
}

/* conn_wait_leave - the waiter counted by conn_wait_enter(c, gen) left;
 * nothing to undo if the generation moved on (its count went with it). */
static inline void conn_wait_leave(struct dl_conn *c, uint32_t gen)
{
	uint32_t old = __atomic_load_n(&c->gw, __ATOMIC_ACQUIRE);

	do {
		if (old >> CONN_GEN_SHIFT != gen || !(old & CONN_WAITERS_MAX))
			return;
	} while (!__atomic_compare_exchange_n(&c->gw, &old, old - 1, 1,
					      __ATOMIC_ACQ_REL,
					      __ATOMIC_ACQUIRE));
}

/* conn_start - arm the deadlines that begin when a connection starts:
 * connect (outbound, when connecting), request, and for inbound sockets the
 * first byte of the client's request.  Sets CONN_TRACKED. */
void conn_start(struct dl_conn *c, const struct dl_limits *l, int inbound,
		int connecting, int64_t now);

/* conn_connected - the handshake finished: the connect deadline is met. */
void conn_connected(struct dl_conn *c);

/* conn_on_write / conn_on_read - n bytes moved (n > 0).  Track the request
 * turn (write-after-read starts a new outbound request; read-after-write a
 * new inbound one), arm or disarm first-byte, and end the idle wait: idle
 * is disarmed, or, for a socket in one of the program's epoll sets (always
 * waited on), restarted from now.  The clock is read only when a deadline
 * has to be computed.  Deadlines that move later are only stored (the
 * heap catches up lazily).  Return 1 when c must be re-filed: a deadline
 * was armed that may come before the one c is filed under (or c is filed
 * under none), else 0.
 */
int conn_on_write(struct dl_conn *c, const struct dl_limits *l, ssize_t n,
		  conn_clock_fn clock);
int conn_on_read(struct dl_conn *c, const struct dl_limits *l, ssize_t n,
		 conn_clock_fn clock);

/* ---- the transitions of a move, inline for the I/O fast path --------- */

static inline int64_t conn_get_dl(const struct dl_conn *c, enum dl_phase ph)
{
	return __atomic_load_n(&c->dl[ph], __ATOMIC_RELAXED);
}

static inline void conn_set_dl(struct dl_conn *c, enum dl_phase ph, int64_t v)
{
	__atomic_store_n(&c->dl[ph], v, __ATOMIC_RELAXED);
}

static inline int64_t conn_limit_ns(const struct dl_limits *l,
				    enum dl_phase ph)
{
	return (int64_t)l->ms[ph] * 1000000ll;
}

static inline void conn_set_bits(struct dl_conn *c, uint32_t set,
				 uint32_t clear)
{
	uint32_t old = __atomic_load_n(&c->st, __ATOMIC_ACQUIRE), nw;

	do
		nw = (old & ~clear) | set;
	while (nw != old &&
	       !__atomic_compare_exchange_n(&c->st, &old, nw, 1,
					    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
}

/* conn_arm - arm phase ph at v where it was off: 1 when c must be
 * re-filed (it is filed under no deadline, or v comes before every
 * deadline it had: its heap key is a lower bound of those only). */
int conn_arm(struct dl_conn *c, enum dl_phase ph, int64_t v);

/* conn_met - the armed deadline of phase ph is met: disarm it, and tell
 * conn_met_hook. */
void conn_met(struct dl_conn *c, enum dl_phase ph);

/* Phase ph runs from now (v) again: a phase that was armed moves later
 * and is only stored (the heap catches up lazily); one that was off is
 * armed (conn_arm). */
static inline int conn_rearm(struct dl_conn *c, enum dl_phase ph, int64_t v)
{
	if (__builtin_expect(conn_get_dl(c, ph) != 0, 1)) {
		conn_set_dl(c, ph, v);
		return 0;
	}
	return conn_arm(c, ph, v);
}

/* conn_moved - n > 0 bytes moved (wrote: the program's): conn_on_write /
 * conn_on_read, inline.  The side that opens a turn: outbound clients
 * write a request, inbound daemons read one. */
static inline __attribute__((always_inline)) int
conn_moved(struct dl_conn *c, const struct dl_limits *l, int wrote,
	   conn_clock_fn clock)
{
	uint32_t st = __atomic_load_n(&c->st, __ATOMIC_ACQUIRE);
	int inbound = (st & CONN_INBOUND) != 0;
	int opens_turn = wrote != inbound; /* outbound write, inbound read */
	uint32_t turn_bit = wrote ? CONN_TURN_WROTE : CONN_TURN_READ;
	int refile = 0;
	int64_t now = 0;

	if (__builtin_expect(st & CONN_CONNECTING, 0))
		conn_connected(c);
	if ((st & CONN_EPOLLED) && l->ms[DL_PH_IDLE]) {
		now = clock();
		refile |= conn_rearm(c, DL_PH_IDLE,
				     now + conn_limit_ns(l, DL_PH_IDLE));
	} else if (conn_get_dl(c, DL_PH_IDLE)) {
		conn_set_dl(c, DL_PH_IDLE, 0);
	}

	if (opens_turn) {
		/* A new request starts on the first move after the peer's
		 * turn (or the very first move of an outbound connection).
		 * Met since (the exchange was over), it is armed afresh. */
		if (!(st & turn_bit) && l->ms[DL_PH_REQUEST] &&
		    (st & (CONN_TURN_WROTE | CONN_TURN_READ))) {
			if (!now)
				now = clock();
			refile |= conn_rearm(c, DL_PH_REQUEST,
					     now + conn_limit_ns(l, DL_PH_REQUEST));
		}
		/* For outbound, the response clock runs from the last byte
		 * of the request written.  Inbound: the request's first byte
		 * arrived; nothing more is owed until we answer. */
		if (!inbound && l->ms[DL_PH_FIRST_BYTE]) {
			if (!now)
				now = clock();
			refile |= conn_rearm(c, DL_PH_FIRST_BYTE,
					     now + conn_limit_ns(l, DL_PH_FIRST_BYTE));
		} else if (inbound && conn_get_dl(c, DL_PH_FIRST_BYTE)) {
			conn_set_dl(c, DL_PH_FIRST_BYTE, 0);
		}
	} else {
		/* The peer's turn: for outbound, the response began; for
		 * inbound, we answered and now wait for the next request. */
		if (!inbound && conn_get_dl(c, DL_PH_FIRST_BYTE)) {
			conn_met(c, DL_PH_FIRST_BYTE);
		} else if (inbound && l->ms[DL_PH_FIRST_BYTE]) {
			if (!now)
				now = clock();
			refile |= conn_rearm(c, DL_PH_FIRST_BYTE,
					     now + conn_limit_ns(l, DL_PH_FIRST_BYTE));
		}
	}
	/* The turn changes hands: one compare-and-swap from the state read
	 * above, which is nearly always still current. */
	if (!(st & turn_bit) &&
	    !__atomic_compare_exchange_n(
		    &c->st, &st,
		    (st & ~(CONN_TURN_WROTE | CONN_TURN_READ)) | turn_bit, 0,
		    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		conn_set_bits(c, turn_bit, CONN_TURN_WROTE | CONN_TURN_READ);
	return refile;
}

/* conn_met_hook - when set, called as a phase's armed deadline is met
 * (not moved, not expired): connect when the handshake completes, first
 * byte when the response's first byte is read, request when an exchange
 * is over (conn_exchange_over).  dl is the deadline the phase had.  NULL
 * (the default) costs one predictable branch. */
extern void (*conn_met_hook)(const struct dl_conn *c, enum dl_phase ph,
			     int64_t dl);

/* conn_exchange_over - every request sent has had its whole response
 * (exchange.c): the request deadline is met, until the next request. */
void conn_exchange_over(struct dl_conn *c);

/* conn_on_wait - the program is about to wait on the socket (blocking call
 * that would block, or EAGAIN handed to an event loop): arm idle if it is
 * configured and not armed.  Returns 1 when c must be re-filed (as
 * conn_on_write). */
int conn_on_wait(struct dl_conn *c, const struct dl_limits *l, int64_t now);

/* conn_deadline - earliest armed deadline (ns) and its phase; 0 if none. */
int64_t conn_deadline(const struct dl_conn *c, enum dl_phase *phase);

/* conn_expire - mark expired in phase ph; returns 0 if it already was. */
int conn_expire(struct dl_conn *c, enum dl_phase ph);

/* conn_expired_phase - the phase recorded by conn_expire. */
enum dl_phase conn_expired_phase(const struct dl_conn *c);

static inline uint32_t conn_state(const struct dl_conn *c)
{
	return __atomic_load_n(&c->st, __ATOMIC_ACQUIRE);
}

#endif
