/* exchange.c - when a request is over: the HTTP/1 exchanges of tracked
 * outbound connections, followed so that a finished exchange resting in
 * a keep-alive pool is not a stalled request.
 *
 * io.c hands every byte that moves (exchange_moved); http1.c decides,
 * from the messages' own framing, when every request sent has had its
 * whole response, and then the request deadline is met until the next
 * request (conn_exchange_over).  Only outbound connections whose rule
 * has a request deadline and whose first bytes are an HTTP request are
 * followed; every other connection is marked CONN_H1OFF at its first
 * move and costs one bit test per call after that.  A connection used
 * through several numbers or processes, bytes the shim cannot see
 * (MSG_TRUNC, sendfile), or anything http1.c does not understand end the
 * following for good: the request deadline then keeps its plain
 * definition (docs/semantics.md).
 *
 * Threads: an event loop reads the responses in one thread while others
 * write the requests (Java's HttpClient, netty).  The bytes must reach
 * the parser in the order they moved, so a write marks the connection
 * (CONN_H1W) from before its system call until it has fed its bytes, and
 * a read that finds the mark waits for it; two threads feeding at once
 * take turns.  Both waits are bounded (a thread preempted in between
 * takes milliseconds; a write blocked in the kernel, longer): past
 * EX_WAIT_NS the following ends instead.
 *
 * The state (struct h1_ex, 40 bytes) lives beside fdtab, in slabs of
 * FDTAB_SLAB entries mapped on first use, only for numbers that carried
 * HTTP/1; an entry belongs to the file whose generation it records.
 */
#include "engine_int.h"

#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "http1.h"

struct ex_slot {
	struct h1_ex x;
	uint32_t gen;   /* the generation of the file it follows */
	uint8_t busy;   /* a thread is feeding it */
	uint8_t pad[3];
};

struct ex_slab {
	struct ex_slot s[FDTAB_SLAB];
};

static struct ex_slab *ex_slabs[FDTAB_MAX / FDTAB_SLAB];

static struct ex_slot *slot_of(int fd, int make)
{
	struct ex_slab *slab, *expect = 0;

	if ((unsigned)fd >= FDTAB_MAX)
		return 0;
	slab = __atomic_load_n(&ex_slabs[fd >> FDTAB_SLAB_SHIFT],
			       __ATOMIC_ACQUIRE);
	if (!slab && make) {
		slab = mmap(0, sizeof(*slab), PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (slab == MAP_FAILED)
			return 0;
		if (!__atomic_compare_exchange_n(
			    &ex_slabs[fd >> FDTAB_SLAB_SHIFT], &expect, slab, 0,
			    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			munmap(slab, sizeof(*slab));
			slab = expect;
		}
	}
	return slab ? &slab->s[fd & (FDTAB_SLAB - 1)] : 0;
}

static void stop_following(struct dl_conn *c)
{
	__atomic_fetch_or(&c->st, CONN_H1OFF, __ATOMIC_ACQ_REL);
}

/* How long a thread waits for another's account of the bytes. */
#define EX_WAIT_NS (20 * 1000000ll)

/* Yield until ready(arg) or EX_WAIT_NS passed: 1 when ready. */
static int wait_for(int (*ready)(void *), void *arg)
{
	int64_t end = 0;

	while (!ready(arg)) {
		int64_t now = clock_now();

		if (!end)
			end = now + EX_WAIT_NS;
		else if (now >= end)
			return 0;
		sched_yield();
	}
	return 1;
}

static int no_writer(void *p)
{
	return !(conn_state(p) & CONN_H1W);
}

static int took(void *p)
{
	return !__atomic_exchange_n(&((struct ex_slot *)p)->busy, 1,
				    __ATOMIC_ACQUIRE);
}

int exchange_write_begin(struct dl_conn *c)
{
	if (conn_state(c) & (CONN_H1OFF | CONN_INBOUND))
		return 0;
	__atomic_fetch_or(&c->st, CONN_H1W, __ATOMIC_ACQ_REL);
	return 1;
}

void exchange_write_end(struct dl_conn *c)
{
	__atomic_fetch_and(&c->st, ~(uint32_t)CONN_H1W, __ATOMIC_ACQ_REL);
}

/* The first byte of this move, or -1 when it cannot be seen. */
static int first_byte(const struct dl_io *io, size_t off)
{
	size_t n;
	const struct iovec *v = io_vec(io, &n);

	if (!v)
		return ((const unsigned char *)io->buf)[off];
	for (size_t i = 0; i < n; i++) {
		if (off < v[i].iov_len)
			return ((const unsigned char *)v[i].iov_base)[off];
		off -= v[i].iov_len;
	}
	return -1;
}

/* Feed the n bytes of io that start at offset off. */
static int feed(struct h1_ex *x, int wrote, const struct dl_io *io,
		size_t off, size_t n)
{
	size_t cnt;
	const struct iovec *v = io_vec(io, &cnt);
	int over = 0;

	if (!v)
		return h1_feed(x, wrote, (const char *)io->buf + off, n);
	for (size_t i = 0; i < cnt && n; i++) {
		size_t len = v[i].iov_len, k;

		if (off >= len) {
			off -= len;
			continue;
		}
		k = len - off < n ? len - off : n;
		over = h1_feed(x, wrote, (const char *)v[i].iov_base + off, k);
		n -= k;
		off = 0;
	}
	return over;
}

void exchange_moved(int fd, struct dl_conn *c, int wrote,
		    const struct dl_io *io, size_t off, size_t n)
{
	uint32_t st = conn_state(c);
	struct ex_slot *s;
	int over;

	if (__builtin_expect(st & (CONN_H1OFF | CONN_INBOUND), 1) || !n)
		return;
	/* An answer read while its question is still being written and
	 * accounted for: the question first. */
	if (!wrote && (st & CONN_H1W)) {
		if (!wait_for(no_writer, c)) {
			stop_following(c);
			return;
		}
		st = conn_state(c);
		if (st & CONN_H1OFF)
			return;
	}
	if (!io || (io->flags & (MSG_TRUNC | MSG_OOB)) || track_shared(c)) {
		stop_following(c);
		return;
	}
	if (io->flags & MSG_PEEK)
		return; /* nothing was consumed */
	if (!(st & CONN_H1)) {
		/* The first move: an HTTP request, where a request
		 * deadline is to be met? */
		int b = wrote ? first_byte(io, off) : -1;

		if (b < 'A' || b > 'Z' ||
		    (!limits_of(c)->ms[DL_PH_REQUEST] && !OBS_ON()) ||
		    !(s = slot_of(fd, 1))) {
			stop_following(c);
			return;
		}
		if (!wait_for(took, s)) {
			stop_following(c);
			return;
		}
		/* Unless another thread's first move set it up meanwhile. */
		if (!(conn_state(c) & CONN_H1)) {
			memset(&s->x, 0, sizeof(s->x));
			s->gen = conn_gen(c);
			__atomic_fetch_or(&c->st, CONN_H1, __ATOMIC_ACQ_REL);
		} else if (s->gen != conn_gen(c)) {
			__atomic_store_n(&s->busy, 0, __ATOMIC_RELEASE);
			stop_following(c);
			return;
		}
	} else {
		s = slot_of(fd, 0);
		/* Two threads at once on one connection take turns. */
		if (!s || !wait_for(took, s)) {
			stop_following(c);
			return;
		}
		if (s->gen != conn_gen(c)) {
			__atomic_store_n(&s->busy, 0, __ATOMIC_RELEASE);
			stop_following(c);
			return;
		}
	}
	over = feed(&s->x, wrote, io, off, n);
	if (s->x.mode == H1_OFF)
		stop_following(c);
	__atomic_store_n(&s->busy, 0, __ATOMIC_RELEASE);
	if (over) {
		conn_exchange_over(c);
		observe_over(fd, c);
	}
}
