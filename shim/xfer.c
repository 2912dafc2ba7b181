/* xfer.c - sendfile and splice on a tracked socket.
 *
 * The kernel moves these bytes itself (zero copy), so there is no
 * MSG_DONTWAIT to ask for: the socket's side blocks unless its open file
 * is O_NONBLOCK.  The transfer therefore runs in io.c's loop like a
 * read or a write (engine_io: attempts, waits in the private set bounded
 * by the deadlines, turns and byte counts from what each attempt moved),
 * and each attempt sets O_NONBLOCK on the socket's file for that one
 * system call and puts back exactly the flags that were there, as
 * connect() does (connect.c).  When no deadline can fire during the call
 * the real call runs untouched (io.c's fast path).
 *
 * What the kernel allows: a socket is sendfile's out_fd only (in_fd must
 * be a file: EINVAL), either end of a splice whose other end is a pipe.
 * copy_file_range, vmsplice and tee never touch a socket (EINVAL, EBADF)
 * and are not wrapped.
 *
 * Native semantics kept: a blocking sendfile moves everything (or up to
 * the end of the file), a blocking splice into the socket moves what the
 * pipe holds (it returns once part moved and the pipe is empty), a
 * splice from the socket returns as soon as some bytes moved; offsets
 * are the kernel's (each attempt passes the program's pointer, which the
 * kernel advances); a partial transfer is reported like the kernel's.
 * The pipe's side keeps its own rules: SPLICE_F_NONBLOCK with a pipe that
 * is not ready answers at once (the real call), and without it the call
 * waits for the pipe as the kernel would, with no deadline of the
 * socket's (the program waits on its own pipe, not on the peer).
 */
#include "engine_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/sendfile.h>

#include "real.h"

/* MAX_RW_COUNT: the most one call moves (the kernel caps larger counts). */
#define XFER_MAX ((size_t)0x7ffff000)

enum xfer_kind { XK_SENDFILE, XK_SPLICE_IN, XK_SPLICE_OUT };

struct xfer_args {
	enum xfer_kind kind;
	int other;		/* sendfile's in_fd; the pipe of a splice */
	off_t *offset;		/* sendfile */
	loff_t *off_in, *off_out;
	unsigned int flags;	/* splice */
};

/* The call itself, moving at most n bytes through socket fd. */
static ssize_t xfer_call(int fd, const struct xfer_args *a, size_t n)
{
	switch (a->kind) {
	case XK_SENDFILE:
		return REAL(sendfile)(fd, a->other, a->offset, n);
	case XK_SPLICE_IN:
		return REAL(splice)(fd, a->off_in, a->other, a->off_out, n,
				    a->flags);
	case XK_SPLICE_OUT:
		break;
	}
	return REAL(splice)(a->other, a->off_in, fd, a->off_out, n, a->flags);
}

/* Is the splice's pipe ready: bytes to take (into the socket), room
 * (from the socket)?  An error or hangup counts as ready (the call
 * answers at once), so does anything that is not a pipe.  errno kept. */
static int pipe_ready(const struct xfer_args *a)
{
	struct pollfd p = { .fd = a->other,
			    .events = a->kind == XK_SPLICE_IN ? POLLOUT : POLLIN };
	struct timespec zero = { 0, 0 };
	int saved = errno, r = REAL(ppoll)(&p, 1, &zero, 0);

	errno = saved;
	return r != 0;
}

/* Wait for the pipe as the kernel's blocking splice would: no limit, a
 * handler with SA_RESTART resumes the wait.  0, or -1 with EINTR. */
static int pipe_wait(const struct xfer_args *a)
{
	int saved = errno;

	for (;;) {
		struct pollfd p = { .fd = a->other,
				    .events = a->kind == XK_SPLICE_IN ? POLLOUT
								      : POLLIN };

		sig_wait_begin();
		if (REAL(ppoll)(&p, 1, 0, 0) >= 0 || errno != EINTR)
			break;
		if (sig_interrupted_norestart())
			return -1;
	}
	errno = saved;
	return 0;
}

/* One attempt that does not block on the socket: O_NONBLOCK on its open
 * file for this call only (unless the program set it), then the flags
 * exactly as they were. */
static ssize_t xfer_attempt(int fd, const struct xfer_args *a, size_t n)
{
	struct dl_conn *c = fdtab_tracked(fd);
	int fl, nb;
	ssize_t r;

	if (c) {
		nb = track_app_nonblocking(fd, c, &fl);
	} else { /* an orphaned call's hold (holds.c) */
		fl = REAL(fcntl64)(fd, F_GETFL);
		nb = fl >= 0 && (fl & O_NONBLOCK);
	}
	if (nb || fl < 0 || REAL(fcntl64)(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return xfer_call(fd, a, n);
	r = xfer_call(fd, a, n);
	{
		int e = errno;

		REAL(fcntl64)(fd, F_SETFL, fl);
		errno = e;
	}
	return r;
}

/* io.c's transfer step (struct dl_io, xfer). */
static ssize_t xfer_step(int fd, struct dl_io *io, size_t done, size_t n,
			 int attempt)
{
	const struct xfer_args *a = io->xarg;

	if (!attempt)
		return xfer_call(fd, a, n);
	if (a->kind != XK_SENDFILE && !pipe_ready(a)) {
		/* Into the socket: once part moved, an empty pipe ends the
		 * call, as in the kernel. */
		if (done)
			return 0;
		io->xfinal = 1; /* whatever comes now is the pipe's answer */
		if (a->flags & SPLICE_F_NONBLOCK) {
			errno = EAGAIN;
			return -1;
		}
		if (pipe_wait(a) < 0)
			return -1;
		io->xfinal = 0;
	}
	return xfer_attempt(fd, a, n);
}

/* Run the transfer through io.c's loop on socket fd. */
static ssize_t xfer_run(int fd, struct xfer_args *a, size_t count)
{
	struct dl_io io = { .op = a->kind == XK_SPLICE_IN ? OP_XFER_IN
							  : OP_XFER_OUT,
			    .len = count < XFER_MAX ? count : XFER_MAX,
			    .xfer = xfer_step,
			    .xarg = a };

	return engine_io(fd, &io);
}

ssize_t engine_sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
	struct xfer_args a = { .kind = XK_SENDFILE, .other = in_fd,
			       .offset = offset };

	/* A count the kernel refuses (EINVAL): its answer, as is. */
	if (count > SSIZE_MAX)
		return REAL(sendfile)(out_fd, in_fd, offset, count);
	return xfer_run(out_fd, &a, count);
}

ssize_t engine_splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out,
		      size_t len, unsigned int flags)
{
	int in = fdtab_tracked(fd_in) != 0, sock = in ? fd_in : fd_out;
	struct xfer_args a = { .kind = in ? XK_SPLICE_IN : XK_SPLICE_OUT,
			       .other = in ? fd_out : fd_in,
			       .off_in = off_in, .off_out = off_out,
			       .flags = flags };

	if (len > SSIZE_MAX || !len)
		return REAL(splice)(fd_in, off_in, fd_out, off_out, len, flags);
	if (engine_fail_expired(sock))
		return -1;
	/* The pipe is looked at first, as the kernel does: not ready and
	 * SPLICE_F_NONBLOCK is its EAGAIN at once; else wait for it. */
	if (!pipe_ready(&a)) {
		if (flags & SPLICE_F_NONBLOCK)
			return REAL(splice)(fd_in, off_in, fd_out, off_out, len,
					    flags);
		if (pipe_wait(&a) < 0)
			return -1;
	}
	return xfer_run(sock, &a, len);
}
