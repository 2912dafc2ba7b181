/* io_fast.c - the steady state of the read and write families: one
 * attempt that finds data or buffer space on a connection used through one
 * number, no fault, no expiry.  It costs the attempt (MSG_DONTWAIT), the
 * turn and deadline bookkeeping (conn.h, inline) and a clock read where a
 * deadline restarts; no lock, no allocation, no other system call.  What
 * it does not finish goes to io.c's general path, with the attempt's
 * result when one was made.
 */
#include "io_int.h"

#include "inject.h"
#include "real.h"

/* Calls the fast path takes: one buffer, no flag that changes what a
 * read or write means (peek, whole length, error queue, urgent data). */
#define IO_FLAGS_SLOW (MSG_PEEK | MSG_WAITALL | MSG_ERRQUEUE | MSG_OOB | \
		       MSG_TRUNC | MSG_FASTOPEN)

static int io_plain(const struct dl_io *io)
{
	return (io->op == OP_READ || io->op == OP_RECV ||
		io->op == OP_RECVFROM || io->op == OP_WRITE ||
		io->op == OP_SEND || io->op == OP_SENDTO) &&
	       io->len && !io->xfer && !(io->flags & IO_FLAGS_SLOW);
}

/* The steady state of a connection: its file used through this number
 * only, no fault, no expiry, connected (for a write), and for a write, not
 * an outbound connection whose HTTP/1 exchanges may be followed (the
 * general path orders its writes against reads: exchange.c).  Anything
 * else takes the general path from the start. */
static inline int io_steady(const struct dl_conn *c, uint32_t st, int wrote)
{
	return !(st & (CONN_EXPIRED | CONN_SHARED |
		       (wrote ? CONN_CONNECTING : 0))) &&
	       (!wrote || (st & (CONN_H1OFF | CONN_INBOUND))) &&
	       CONN_LOAD(c->nb_epoch) == track_epoch_now() &&
	       !inject_on;
}

/* Known non-blocking for this call: an event loop's. */
static inline int io_nb(uint32_t st, int flags)
{
	return (flags & MSG_DONTWAIT) ||
	       (st & (CONN_NONBLOCK | CONN_NBKNOWN)) ==
		       (CONN_NONBLOCK | CONN_NBKNOWN);
}

/* Before a blocking call's attempt: how it starts, or -1 for the fast
 * path. */
static inline int io_blocking_start(const struct dl_conn *c, int wrote,
				    int flags)
{
	if (!wrote && io_wait_first(c, flags))
		return IO_WAIT_FIRST;
	/* Nothing can fire: the call as made, blocking in the kernel
	 * (io_general says so). */
	if (!conn_deadline(c, 0) && !limits_of(c)->ms[DL_PH_IDLE])
		return IO_FULL;
	return -1;
}

/* An event loop's call found nothing to move (EAGAIN): past the deadline
 * it expires here, never EAGAIN; else idle runs (the loop will wait for
 * this fd). */
static ssize_t io_eagain(int fd, struct dl_conn *c)
{
	int64_t now = clock_now();
	ssize_t r;

	if (io_overdue(fd, c, now, &r))
		return r;
	expire_arm_idle(fd, c, now);
	errno = EAGAIN;
	return -1;
}

/* io_attempt for a plain call (io_plain): the whole of it, not waiting. */
static ssize_t io_attempt_plain(int fd, const struct dl_io *io)
{
	int fl = io->flags | MSG_DONTWAIT;

	switch (io->op) {
	case OP_READ:
		return REAL(recv)(fd, io->buf, io->len, MSG_DONTWAIT);
	case OP_RECV:
		return REAL(recv)(fd, io->buf, io->len, fl);
	case OP_RECVFROM:
		return REAL(recvfrom)(fd, io->buf, io->len, fl, io->from,
				      io->fromlen);
	case OP_WRITE:
		return REAL(send)(fd, io->buf, io->len, MSG_DONTWAIT);
	case OP_SEND:
		return REAL(send)(fd, io->buf, io->len, fl);
	default: /* OP_SENDTO */
		return REAL(sendto)(fd, io->buf, io->len, fl, io->to,
				    io->tolen);
	}
}

ssize_t engine_io(int fd, struct dl_io *io)
{
	struct dl_conn *c = fdtab_tracked(fd);
	uint32_t st;
	int wrote, nb, k, saved;
	ssize_t r;

	if (!c)
		return io_real(fd, io);
	st = conn_state(c);
	wrote = is_write_op(io->op);
	if (__builtin_expect(!io_steady(c, st, wrote) || !io_plain(io), 0))
		return io_general(fd, c, io, IO_FULL, 0, 0, -1);
	nb = io_nb(st, io->flags);
	if (!nb && (k = io_blocking_start(c, wrote, io->flags)) >= 0)
		return io_general(fd, c, io, (enum io_start)k, 0, 0, -1);
	/* A blocking call may wait and succeed: errno as it was then. */
	saved = nb ? -1 : errno;
	r = io_attempt_plain(fd, io);
	if (__builtin_expect(r > 0, 1)) {
		/* A read takes what there is; a blocking write, all of it. */
		if (!wrote || nb || (size_t)r == io->len) {
			note_moved(fd, c, wrote, r, io, 0);
			return r;
		}
	} else if (r == 0 && !wrote) { /* the peer's end */
		return 0;
	} else if (r < 0 && nb && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		return io_eagain(fd, c);
	}
	return io_general(fd, c, io, IO_RESULT, r, errno, saved);
}

/* note_moved, out of line, for a fast path that finds a counters file or
 * the observer on. */
static __attribute__((noinline)) void note_moved_all(int fd, struct dl_conn *c,
						     int wrote, ssize_t n)
{
	note_moved(fd, c, wrote, n, 0, 0);
}

/* note_moved for the fast paths, where n > 0 bytes moved on a connection
 * whose exchanges are not followed (CONN_H1OFF, for the life of its
 * file): with no counters file and no observer, only its turns and
 * deadlines. */
static inline __attribute__((always_inline)) void
note_moved_h1off(int fd, struct dl_conn *c, int wrote, ssize_t n)
{
	if (__builtin_expect(__atomic_load_n(&E.moved_extra, __ATOMIC_RELAXED),
			     0)) {
		note_moved_all(fd, c, wrote, n);
	} else if (__builtin_expect(conn_moved(c, &eff_of(c)->limits, wrote,
					       clock_now),
				    0)) {
		int e = errno;

		expire_refile(fd, c);
		errno = e;
	}
}

/* The plain call's description, for what the fast paths below do not
 * finish: io_general from start (r0, e0: IO_RESULT's attempt), or the
 * HTTP/1 follower (io_plain_moved).  Out of line: the fast paths keep a
 * small frame. */
static __attribute__((noinline)) ssize_t
io_plain_general(int fd, struct dl_conn *c, void *buf, size_t n, int flags,
		 enum dl_op op, enum io_start start, ssize_t r0, int e0,
		 int saved)
{
	struct dl_io io = { .op = op, .buf = buf, .len = n, .flags = flags };

	return io_general(fd, c, &io, start, r0, e0, saved);
}

static __attribute__((noinline)) void
io_plain_moved(int fd, struct dl_conn *c, void *buf, size_t n, int flags,
	       enum dl_op op, ssize_t r)
{
	struct dl_io io = { .op = op, .buf = buf, .len = n, .flags = flags };

	note_moved(fd, c, is_write_op(op), r, &io, 0);
}

/* engine_io for read, recv and recvfrom without an address: the same
 * path, without building the call's description unless needed. */
ssize_t engine_recv(int fd, struct dl_conn *c, void *buf, size_t n,
		    int flags, enum dl_op op)
{
	uint32_t st = conn_state(c);
	int nb, k, saved;
	ssize_t r;

	if (__builtin_expect(!io_steady(c, st, 0) || !n ||
				     (flags & IO_FLAGS_SLOW),
			     0))
		return io_plain_general(fd, c, buf, n, flags, op, IO_FULL, 0,
					0, -1);
	nb = io_nb(st, flags);
	if (!nb && (k = io_blocking_start(c, 0, flags)) >= 0)
		return io_plain_general(fd, c, buf, n, flags, op,
					(enum io_start)k, 0, 0, -1);
	/* A blocking call may wait and succeed: errno as it was then. */
	saved = nb ? -1 : errno;
	r = REAL(recv)(fd, buf, n, flags | MSG_DONTWAIT);
	if (__builtin_expect(r > 0, 1)) {
		/* Followed HTTP/1 exchanges see the bytes. */
		if (__builtin_expect(!(st & CONN_H1OFF), 0))
			io_plain_moved(fd, c, buf, n, flags, op, r);
		else
			note_moved_h1off(fd, c, 0, r);
		return r;
	}
	if (r == 0)
		return 0; /* the peer's end */
	if (nb && (errno == EAGAIN || errno == EWOULDBLOCK))
		return io_eagain(fd, c);
	return io_plain_general(fd, c, buf, n, flags, op, IO_RESULT, r, errno,
				saved);
}

/* engine_io for write, send and sendto without an address, likewise. */
ssize_t engine_send(int fd, struct dl_conn *c, const void *buf, size_t n,
		    int flags, enum dl_op op)
{
	uint32_t st = conn_state(c);
	int nb, k, saved;
	ssize_t r;

	if (__builtin_expect(!io_steady(c, st, 1) || !n ||
				     (flags & IO_FLAGS_SLOW),
			     0))
		return io_plain_general(fd, c, (void *)buf, n, flags, op,
					IO_FULL, 0, 0, -1);
	nb = io_nb(st, flags);
	if (!nb && (k = io_blocking_start(c, 1, flags)) >= 0)
		return io_plain_general(fd, c, (void *)buf, n, flags, op,
					(enum io_start)k, 0, 0, -1);
	/* A blocking call may wait and succeed: errno as it was then. */
	saved = nb ? -1 : errno;
	r = REAL(send)(fd, buf, n, flags | MSG_DONTWAIT);
	/* A blocking write moves all of it. */
	if (__builtin_expect(r > 0 && (nb || (size_t)r == n), 1)) {
		if (__builtin_expect(!(st & CONN_H1OFF), 0))
			io_plain_moved(fd, c, (void *)buf, n, flags, op, r);
		else
			note_moved_h1off(fd, c, 1, r);
		return r;
	}
	if (r < 0 && nb && (errno == EAGAIN || errno == EWOULDBLOCK))
		return io_eagain(fd, c);
	return io_plain_general(fd, c, (void *)buf, n, flags, op, IO_RESULT, r,
				errno, saved);
}
