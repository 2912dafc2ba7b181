/* io_int.h - what io.c (the general path of the read and write
 * families) and io_fast.c (their fast path) share.  Not for other files:
 * they call engine_io, engine_recv and engine_send (engine.h). */
#ifndef DL_IO_INT_H
#define DL_IO_INT_H

#include "engine_int.h"

#include <errno.h>
#include <sys/socket.h>

static inline int is_write_op(enum dl_op op)
{
	return op >= OP_WRITE;
}

/* io_real - the call exactly as the program made it. */
ssize_t io_real(int fd, const struct dl_io *io);

/* n bytes of io (from offset off) moved on c: counters, turns and
 * deadlines (conn.c), the observer, HTTP/1 exchanges.  Nothing when no
 * byte moved.  No lock unless a deadline moved earlier than c is filed
 * under.  errno is kept. */
static inline __attribute__((always_inline)) void
note_moved(int fd, struct dl_conn *c, int wrote, ssize_t n,
	   const struct dl_io *io, size_t off)
{
	if (n <= 0)
		return;
	if (__builtin_expect(E.stats_path != 0, 0))
		stats_count(wrote ? &stats_of(c)->bytes_out
				  : &stats_of(c)->bytes_in,
			    (uint64_t)n);
	if (__builtin_expect(conn_moved(c, limits_of(c), wrote, clock_now), 0)) {
		int e = errno;

		expire_refile(fd, c);
		errno = e;
	}
	if (OBS_ON()) {
		int e = errno;

		observe_moved(fd, c, wrote);
		errno = e;
	}
	/* A connection whose exchanges are not followed, for the life of
	 * its file (CONN_H1OFF), has nothing more to tell exchange.c. */
	if (!(conn_state(c) & CONN_H1OFF)) {
		int e = errno;

		/* what sendfile/splice move is not seen (io NULL) */
		exchange_moved(fd, c, wrote, io && !io->xfer ? io : 0, off,
			       (size_t)n);
		errno = e;
	}
}

/* How engine_io hands a call to the general path (io_general). */
enum io_start {
	IO_FULL,	/* from the start: every check */
	IO_RESULT,	/* the first attempt was made (r0, errno e0) */
	IO_WAIT_FIRST,	/* wait before the first attempt */
};

/* io_general - every read and write the fast path does not finish
 * (io_fast.c): faults, vectors and messages, peeks, blocking semantics (a
 * whole write, a MSG_WAITALL read), waits, expiry, shared files.  start:
 * where it begins; r0, e0: the fast path's attempt (IO_RESULT); saved_in:
 * the program's errno from before that attempt, -1 when unknown (then
 * errno now). */
ssize_t io_general(int fd, struct dl_conn *c, struct dl_io *io,
		   enum io_start start, ssize_t r0, int e0, int saved_in);

/* io_overdue - a call that would answer EAGAIN at now: 1 with *rp = -1
 * and errno the expiry errno if c's deadline passed (expired here), else 0
 * with errno untouched. */
int io_overdue(int fd, struct dl_conn *c, int64_t now, ssize_t *rp);

/* io_wait_first - should a blocking read (flags) wait before its first
 * attempt (the answer is rarely there yet)?  Reads the clock when so. */
int io_wait_first(const struct dl_conn *c, int flags);

#endif
