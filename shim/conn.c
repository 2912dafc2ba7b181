/* conn.c - deadline arithmetic for one connection (see conn.h). */
#include "conn.h"

#define NS_PER_MS 1000000ll

static int64_t get_dl(const struct dl_conn *c, enum dl_phase ph)
{
	return __atomic_load_n(&c->dl[ph], __ATOMIC_RELAXED);
}

static void set_dl(struct dl_conn *c, enum dl_phase ph, int64_t v)
{
	__atomic_store_n(&c->dl[ph], v, __ATOMIC_RELAXED);
}

static int64_t limit_ns(const struct dl_limits *l, enum dl_phase ph)
{
	return (int64_t)l->ms[ph] * NS_PER_MS;
}

static void set_bits(struct dl_conn *c, uint32_t set, uint32_t clear)
{
	uint32_t old = conn_state(c), nw;

	do
		nw = (old & ~clear) | set;
	while (nw != old &&
	       !__atomic_compare_exchange_n(&c->st, &old, nw, 1,
					    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
}

void conn_start(struct dl_conn *c, const struct dl_limits *l, int inbound,
		int connecting, int64_t now)
{
	for (int i = 0; i < DL_PH_COUNT; i++)
		set_dl(c, (enum dl_phase)i, 0);
	if (connecting && l->ms[DL_PH_CONNECT])
		set_dl(c, DL_PH_CONNECT, now + limit_ns(l, DL_PH_CONNECT));
	if (l->ms[DL_PH_REQUEST])
		set_dl(c, DL_PH_REQUEST, now + limit_ns(l, DL_PH_REQUEST));
	/* An accepted client owes us its request: that is its first byte. */
	if (inbound && l->ms[DL_PH_FIRST_BYTE])
		set_dl(c, DL_PH_FIRST_BYTE, now + limit_ns(l, DL_PH_FIRST_BYTE));
	set_bits(c,
		 CONN_TRACKED | (inbound ? CONN_INBOUND : 0) |
			 (connecting ? CONN_CONNECTING : 0),
		 CONN_EXPIRED | CONN_TURN_WROTE | CONN_TURN_READ |
			 CONN_PH_MASK | CONN_H1 | CONN_H1OFF | (inbound ? 0 : CONN_INBOUND) |
			 (connecting ? 0 : CONN_CONNECTING));
}

void (*conn_met_hook)(const struct dl_conn *c, enum dl_phase ph,
		      int64_t dl);

/* The armed deadline of phase ph is met: disarm it, and tell the hook. */
static void met(struct dl_conn *c, enum dl_phase ph)
{
	int64_t dl = get_dl(c, ph);

	if (!dl)
		return;
	set_dl(c, ph, 0);
	if (__builtin_expect(conn_met_hook != 0, 0))
		conn_met_hook(c, ph, dl);
}

void conn_connected(struct dl_conn *c)
{
	met(c, DL_PH_CONNECT);
	set_bits(c, 0, CONN_CONNECTING);
}

/* The side that opens a turn: outbound clients write a request, inbound
 * daemons read one. */
static int moved(struct dl_conn *c, const struct dl_limits *l, int wrote,
		 conn_clock_fn clock)
{
	uint32_t st = conn_state(c);
	int inbound = (st & CONN_INBOUND) != 0;
	int opens_turn = wrote != inbound; /* outbound write, inbound read */
	uint32_t turn_bit = wrote ? CONN_TURN_WROTE : CONN_TURN_READ;
	int earlier = 0;
	int64_t now = 0;

	if (st & CONN_CONNECTING)
		conn_connected(c);
	if ((st & CONN_EPOLLED) && l->ms[DL_PH_IDLE]) {
		/* Moving later: the heap catches up lazily. */
		now = clock();
		set_dl(c, DL_PH_IDLE, now + limit_ns(l, DL_PH_IDLE));
	} else if (get_dl(c, DL_PH_IDLE)) {
		set_dl(c, DL_PH_IDLE, 0);
	}

	if (opens_turn) {
		/* A new request starts on the first move after the peer's
		 * turn (or the very first move of an outbound connection). */
		int new_turn = !(st & turn_bit);
		if (new_turn && l->ms[DL_PH_REQUEST] &&
		    (st & (CONN_TURN_WROTE | CONN_TURN_READ))) {
			now = clock();
			/* Met since (the exchange was over): it is not in
			 * the heap any more, or only by luck. */
			if (!get_dl(c, DL_PH_REQUEST))
				earlier = 1;
			set_dl(c, DL_PH_REQUEST, now + limit_ns(l, DL_PH_REQUEST));
		}
		/* For outbound, the response clock runs from the last byte
		 * of the request written.  Inbound: the request's first byte
		 * arrived; nothing more is owed until we answer. */
		if (!inbound && l->ms[DL_PH_FIRST_BYTE]) {
			if (!now)
				now = clock();
			set_dl(c, DL_PH_FIRST_BYTE,
			       now + limit_ns(l, DL_PH_FIRST_BYTE));
			earlier = 1;
		} else if (inbound && get_dl(c, DL_PH_FIRST_BYTE)) {
			set_dl(c, DL_PH_FIRST_BYTE, 0);
		}
	} else {
		/* The peer's turn: for outbound, the response began; for
		 * inbound, we answered and now wait for the next request. */
		if (!inbound && get_dl(c, DL_PH_FIRST_BYTE))
			met(c, DL_PH_FIRST_BYTE);
		else if (inbound && l->ms[DL_PH_FIRST_BYTE]) {
			now = clock();
			set_dl(c, DL_PH_FIRST_BYTE,
			       now + limit_ns(l, DL_PH_FIRST_BYTE));
			earlier = 1;
		}
	}
	if (!(st & turn_bit))
		set_bits(c, turn_bit, CONN_TURN_WROTE | CONN_TURN_READ);
	return earlier;
}

int conn_on_write(struct dl_conn *c, const struct dl_limits *l, ssize_t n,
		  conn_clock_fn clock)
{
	return n > 0 ? moved(c, l, 1, clock) : 0;
}

int conn_on_read(struct dl_conn *c, const struct dl_limits *l, ssize_t n,
		 conn_clock_fn clock)
{
	return n > 0 ? moved(c, l, 0, clock) : 0;
}

void conn_exchange_over(struct dl_conn *c)
{
	/* Moving later: the heap catches up lazily. */
	met(c, DL_PH_REQUEST);
}

int conn_on_wait(struct dl_conn *c, const struct dl_limits *l, int64_t now)
{
	if (!l->ms[DL_PH_IDLE] || get_dl(c, DL_PH_IDLE))
		return 0;
	set_dl(c, DL_PH_IDLE, now + limit_ns(l, DL_PH_IDLE));
	return 1;
}

int64_t conn_deadline(const struct dl_conn *c, enum dl_phase *phase)
{
	int64_t best = 0;
	enum dl_phase bp = DL_PH_REQUEST;

	for (int i = 0; i < DL_PH_COUNT; i++) {
		int64_t v = get_dl(c, (enum dl_phase)i);
		if (v && (!best || v < best)) {
			best = v;
			bp = (enum dl_phase)i;
		}
	}
	if (phase)
		*phase = bp;
	return best;
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
