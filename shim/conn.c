/* conn.c - deadline arithmetic for one connection (see conn.h). */
#include "conn.h"


void conn_start(struct dl_conn *c, const struct dl_limits *l, int inbound,
		int connecting, int64_t now)
{
	for (int i = 0; i < DL_PH_COUNT; i++)
		conn_set_dl(c, (enum dl_phase)i, 0);
	if (connecting && l->ms[DL_PH_CONNECT])
		conn_set_dl(c, DL_PH_CONNECT, now + conn_limit_ns(l, DL_PH_CONNECT));
	if (l->ms[DL_PH_REQUEST])
		conn_set_dl(c, DL_PH_REQUEST, now + conn_limit_ns(l, DL_PH_REQUEST));
	/* An accepted client owes us its request: that is its first byte. */
	if (inbound && l->ms[DL_PH_FIRST_BYTE])
		conn_set_dl(c, DL_PH_FIRST_BYTE, now + conn_limit_ns(l, DL_PH_FIRST_BYTE));
	conn_set_bits(c,
		 CONN_TRACKED | (inbound ? CONN_INBOUND | CONN_H1OFF : 0) |
			 (connecting ? CONN_CONNECTING : 0),
		 CONN_EXPIRED | CONN_TURN_WROTE | CONN_TURN_READ |
			 CONN_PH_MASK | CONN_H1 | CONN_H1OFF | (inbound ? 0 : CONN_INBOUND) |
			 (connecting ? 0 : CONN_CONNECTING));
}

void (*conn_met_hook)(const struct dl_conn *c, enum dl_phase ph,
		      int64_t dl);

void conn_met(struct dl_conn *c, enum dl_phase ph)
{
	int64_t dl = conn_get_dl(c, ph);

	if (!dl)
		return;
	conn_set_dl(c, ph, 0);
	if (__builtin_expect(conn_met_hook != 0, 0))
		conn_met_hook(c, ph, dl);
}

void conn_connected(struct dl_conn *c)
{
	conn_met(c, DL_PH_CONNECT);
	conn_set_bits(c, 0, CONN_CONNECTING);
}

int conn_arm(struct dl_conn *c, enum dl_phase ph, int64_t v)
{
	int64_t before = conn_deadline(c, 0);

	conn_set_dl(c, ph, v);
	/* The heap's pass takes an entry out when it finds nothing armed,
	 * then looks again (expire.c): one of the two sees the other. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return conn_heap_idx(c) < 0 || !before ||
	       v < before;
}

int conn_on_write(struct dl_conn *c, const struct dl_limits *l, ssize_t n,
		  conn_clock_fn clock)
{
	return n > 0 ? conn_moved(c, l, 1, clock) : 0;
}

int conn_on_read(struct dl_conn *c, const struct dl_limits *l, ssize_t n,
		 conn_clock_fn clock)
{
	return n > 0 ? conn_moved(c, l, 0, clock) : 0;
}

void conn_exchange_over(struct dl_conn *c)
{
	/* Moving later: the heap catches up lazily. */
	conn_met(c, DL_PH_REQUEST);
}

int conn_on_wait(struct dl_conn *c, const struct dl_limits *l, int64_t now)
{
	if (!l->ms[DL_PH_IDLE] || conn_get_dl(c, DL_PH_IDLE))
		return 0;
	return conn_arm(c, DL_PH_IDLE, now + conn_limit_ns(l, DL_PH_IDLE));
}

int64_t conn_deadline(const struct dl_conn *c, enum dl_phase *phase)
{
	/* Off (0) becomes the largest value: one unsigned compare each. */
	uint64_t best = UINT64_MAX;
	int bp = DL_PH_REQUEST;

	for (int i = 0; i < DL_PH_COUNT; i++) {
		uint64_t v = (uint64_t)conn_get_dl(c, (enum dl_phase)i) - 1;

		if (v < best) {
			best = v;
			bp = i;
		}
	}
	if (phase)
		*phase = (enum dl_phase)bp;
	return best == UINT64_MAX ? 0 : (int64_t)(best + 1);
}

int conn_expire(struct dl_conn *c, enum dl_phase ph)
{
	uint32_t old = conn_state(c), nw;

	do {
		if (old & CONN_EXPIRED)
			return 0;
		nw = (old & ~CONN_PH_MASK) | CONN_EXPIRED |
		     ((uint32_t)ph << CONN_PH_SHIFT);
	} while (!__atomic_compare_exchange_n(&c->st, &old, nw, 1,
					      __ATOMIC_ACQ_REL,
					      __ATOMIC_ACQUIRE));
	return 1;
}

enum dl_phase conn_expired_phase(const struct dl_conn *c)
{
	return (enum dl_phase)((conn_state(c) & CONN_PH_MASK) >> CONN_PH_SHIFT);
}
