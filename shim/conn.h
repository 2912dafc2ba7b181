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
	CONN_PH_SHIFT = 8,         /* expired phase, 3 bits */
	CONN_PH_MASK = 7u << 8,
};

/* One entry per fd number; 64 bytes.  Fields other threads may read
 * while one writes are accessed with relaxed atomics (plain on x86). */
struct dl_conn {
	_Atomic uint32_t st;
	/* Generation (bumped whenever the number gets a new file) in the
	 * high 24 bits, threads in a private wait on that generation in the
	 * low 8: one word, so a close and a waiter can never miss each other. */
	_Atomic uint32_t gw;
	int32_t heap_idx;      /* position in the deadline heap, -1 if absent */
	uint16_t rule;         /* index of the limits in force */
	uint16_t nb_epoch;     /* track.c: fork epoch when O_NONBLOCK was learnt */
	_Atomic int64_t dl[DL_PH_COUNT]; /* absolute deadlines, ns; 0 = off */
	uint64_t ino;          /* socket inode, to recognise a reused number */
	uint32_t rcvtimeo_ms;  /* the program's SO_RCVTIMEO, 0 = none */
	uint32_t sndtimeo_ms;  /* the program's SO_SNDTIMEO, 0 = none */
};

typedef int64_t (*conn_clock_fn)(void);

/* Relaxed access to fields another thread may touch meanwhile. */
#define CONN_LOAD(f) __atomic_load_n(&(f), __ATOMIC_RELAXED)
#define CONN_STORE(f, v) __atomic_store_n(&(f), (v), __ATOMIC_RELAXED)

#define CONN_GEN_SHIFT 8
#define CONN_WAITERS_MAX 0xffu

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
 * waited on), restarted from now.  The clock is
 * read only when a deadline has to be computed.  Return 1 when the
 * earliest deadline may have moved earlier (the caller re-files it), else 0.
 */
int conn_on_write(struct dl_conn *c, const struct dl_limits *l, ssize_t n,
		  conn_clock_fn clock);
int conn_on_read(struct dl_conn *c, const struct dl_limits *l, ssize_t n,
		 conn_clock_fn clock);

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
 * configured and not armed.  Returns 1 if a deadline was armed. */
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
