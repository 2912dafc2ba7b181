/* wrap_io.c - the read and write families, plain and fortified, and
 * stdio streams on sockets (fdopen).
 *
 * An fd the shim does not track goes to the real function the program
 * called, before anything else; tracked ones go through engine_io.
 * sendto/sendmsg with MSG_FASTOPEN on a socket not yet tracked are an
 * implicit connect (connect.c).
 */
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "engine.h"
#include "real.h"

extern void __chk_fail(void) __attribute__((noreturn));

/* glibc declares these only under _FORTIFY_SOURCE. */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
		       struct sockaddr *from, socklen_t *fromlen);

/* ---- read side ------------------------------------------------------- */

/* The hot calls (read, recv, recvfrom without an address, and their
 * fortified forms; write, send, sendto without one) go straight to the
 * engine for a tracked fd while no thread can be outside (self_gate), with
 * nothing else on the way: no frame, no call but the engine's.  The rest
 * goes to the do_ functions, out of line, with the fd's entry (c: NULL
 * when untracked) where the arguments leave room for it. */
#define DL_SLOW static __attribute__((noinline))

DL_SLOW ssize_t do_read(int fd, void *buf, size_t n, struct dl_conn *c)
{
	if (!c || self_outside())
		return REAL(read)(fd, buf, n);
	return engine_recv(fd, c, buf, n, 0, OP_READ);
}

static inline __attribute__((always_inline)) ssize_t
fast_read(int fd, void *buf, size_t n)
{
	struct dl_conn *c = fdtab_tracked(fd);

	if (__builtin_expect(c && self_gate_clear(), 1))
		return engine_recv(fd, c, buf, n, 0, OP_READ);
	return do_read(fd, buf, n, c);
}

DL_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	return fast_read(fd, buf, n);
}

DL_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return fast_read(fd, buf, n);
}

static ssize_t do_readv(int fd, const struct iovec *iov, int cnt)
{
	struct dl_io io = { .op = OP_READV, .iov = iov, .iovcnt = cnt };

	if (!engine_tracked(fd))
		return REAL(readv)(fd, iov, cnt);
	return engine_io(fd, &io);
}

DL_EXPORT ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
	return do_readv(fd, iov, cnt);
}

DL_SLOW ssize_t do_recv(int fd, void *buf, size_t n, int flags,
		       struct dl_conn *c)
{
	if (!c || self_outside())
		return REAL(recv)(fd, buf, n, flags);
	return engine_recv(fd, c, buf, n, flags, OP_RECV);
}

static inline __attribute__((always_inline)) ssize_t
fast_recv(int fd, void *buf, size_t n, int flags)
{
	struct dl_conn *c = fdtab_tracked(fd);

	if (__builtin_expect(c && self_gate_clear(), 1))
		return engine_recv(fd, c, buf, n, flags, OP_RECV);
	return do_recv(fd, buf, n, flags, c);
}

DL_EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	return fast_recv(fd, buf, n, flags);
}

DL_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen,
			     int flags)
{
	if (n > buflen)
		__chk_fail();
	return fast_recv(fd, buf, n, flags);
}

DL_SLOW ssize_t do_recvfrom(int fd, void *buf, size_t n, int flags,
			    struct sockaddr *from, socklen_t *fromlen)
{
	struct dl_io io = { .op = OP_RECVFROM, .buf = buf, .len = n,
			    .flags = flags, .from = from, .fromlen = fromlen };
	struct dl_conn *c = engine_tracked(fd);

	if (!c)
		return REAL(recvfrom)(fd, buf, n, flags, from, fromlen);
	if (!from)
		return engine_recv(fd, c, buf, n, flags, OP_RECVFROM);
	return engine_io(fd, &io);
}

static inline __attribute__((always_inline)) ssize_t
fast_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *from,
	      socklen_t *fromlen)
{
	struct dl_conn *c = fdtab_tracked(fd);

	if (__builtin_expect(c && self_gate_clear(), 1) && !from)
		return engine_recv(fd, c, buf, n, flags, OP_RECVFROM);
	return do_recvfrom(fd, buf, n, flags, from, fromlen);
}

DL_EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags,
			   struct sockaddr *from, socklen_t *fromlen)
{
	return fast_recvfrom(fd, buf, n, flags, from, fromlen);
}

DL_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen,
				 int flags, struct sockaddr *from,
				 socklen_t *fromlen)
{
	if (n > buflen)
		__chk_fail();
	return fast_recvfrom(fd, buf, n, flags, from, fromlen);
}

static ssize_t do_recvmsg(int fd, struct msghdr *msg, int flags)
{
	struct dl_io io = { .op = OP_RECVMSG, .msg = msg, .flags = flags };

	if (!engine_tracked(fd))
		return REAL(recvmsg)(fd, msg, flags);
	return engine_io(fd, &io);
}

DL_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	return do_recvmsg(fd, msg, flags);
}

/* ---- write side ------------------------------------------------------ */

DL_SLOW ssize_t do_write(int fd, const void *buf, size_t n,
			struct dl_conn *c)
{
	if (!c || self_outside())
		return REAL(write)(fd, buf, n);
	return engine_send(fd, c, buf, n, 0, OP_WRITE);
}

DL_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	struct dl_conn *c = fdtab_tracked(fd);

	if (__builtin_expect(c && self_gate_clear(), 1))
		return engine_send(fd, c, buf, n, 0, OP_WRITE);
	return do_write(fd, buf, n, c);
}

static ssize_t do_writev(int fd, const struct iovec *iov, int cnt)
{
	struct dl_io io = { .op = OP_WRITEV, .iov = iov, .iovcnt = cnt };

	if (!engine_tracked(fd))
		return REAL(writev)(fd, iov, cnt);
	return engine_io(fd, &io);
}

DL_EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	return do_writev(fd, iov, cnt);
}

DL_SLOW ssize_t do_send(int fd, const void *buf, size_t n, int flags,
		       struct dl_conn *c)
{
	if (!c || self_outside())
		return REAL(send)(fd, buf, n, flags);
	return engine_send(fd, c, buf, n, flags, OP_SEND);
}

DL_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	struct dl_conn *c = fdtab_tracked(fd);

	if (__builtin_expect(c && self_gate_clear(), 1))
		return engine_send(fd, c, buf, n, flags, OP_SEND);
	return do_send(fd, buf, n, flags, c);
}

DL_SLOW ssize_t do_sendto(int fd, const void *buf, size_t n, int flags,
			  const struct sockaddr *to, socklen_t tolen)
{
	struct dl_io io = { .op = OP_SENDTO, .buf = (void *)buf, .len = n,
			    .flags = flags, .to = to, .tolen = tolen };
	struct dl_conn *c = engine_tracked(fd);

	if (!c) {
		if (__builtin_expect(flags & MSG_FASTOPEN, 0) && to &&
		    engine_enabled())
			return engine_fastopen(fd, &io);
		return REAL(sendto)(fd, buf, n, flags, to, tolen);
	}
	if (!to)
		return engine_send(fd, c, buf, n, flags, OP_SENDTO);
	return engine_io(fd, &io);
}

DL_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
			 const struct sockaddr *to, socklen_t tolen)
{
	struct dl_conn *c = fdtab_tracked(fd);

	if (__builtin_expect(c && self_gate_clear(), 1) && !to)
		return engine_send(fd, c, buf, n, flags, OP_SENDTO);
	return do_sendto(fd, buf, n, flags, to, tolen);
}

static ssize_t do_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct dl_io io = { .op = OP_SENDMSG, .msg = (struct msghdr *)msg,
			    .flags = flags };

	if (!engine_tracked(fd)) {
		if (__builtin_expect(flags & MSG_FASTOPEN, 0) && msg &&
		    msg->msg_name && engine_enabled())
			return engine_fastopen(fd, &io);
		return REAL(sendmsg)(fd, msg, flags);
	}
	return engine_io(fd, &io);
}

DL_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	return do_sendmsg(fd, msg, flags);
}

/* ---- stdio streams ------------------------------------------------------ */

/* glibc's stdio reads and writes with internal calls the shim cannot
 * see: a stream on a tracked socket is one whose reads and writes come
 * through here (stream.c). */
static FILE *do_fdopen(int fd, const char *mode)
{
	if (!engine_tracked(fd))
		return REAL(fdopen)(fd, mode);
	return engine_fdopen(fd, mode);
}

DL_EXPORT FILE *fdopen(int fd, const char *mode)
{
	return do_fdopen(fd, mode);
}
