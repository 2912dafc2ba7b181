/* io.c - the read and write families on a tracked socket.
 *
 * Reads and writes use MSG_DONTWAIT (the open file is never left
 * O_NONBLOCK: stdio reads inside glibc, dups and children share it); when
 * a blocking program's call would block, it waits in the private set for
 * the remaining time and retries, keeping the kernel's semantics (a
 * blocking write or MSG_WAITALL read moves everything, a partial transfer
 * is reported like the kernel's).  Every byte that moves updates the
 * connection's turns (first byte, idle, request).  Injected faults shape
 * each attempt (io_fault_step).  A non-blocking call that would answer
 * EAGAIN past its connection's deadline expires it instead (io_overdue):
 * bytes that can move still move, but no call past the deadline waits
 * or answers EAGAIN.  The steady state (one attempt that moves bytes, or
 * an event loop's EAGAIN) is io_fast.c's; this file is the general path
 * (io_general) it hands everything else to.
 */
#include "engine_int.h"

#include <errno.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "inject.h"
#include "io_int.h"
#include "real.h"

/* ------------------------------------------------------------------------
 * Reads and writes
 */

/* The call exactly as the program made it. */
ssize_t io_real(int fd, const struct dl_io *io)
{
	if (io->xfer) /* sendfile, splice (xfer.c) */
		return io->xfer(fd, (struct dl_io *)io, 0, io->len, 0);
	switch (io->op) {
	case OP_READ:
		return REAL(read)(fd, io->buf, io->len);
	case OP_READV:
		return REAL(readv)(fd, io->iov, io->iovcnt);
	case OP_RECV:
		return REAL(recv)(fd, io->buf, io->len, io->flags);
	case OP_RECVFROM:
		return REAL(recvfrom)(fd, io->buf, io->len, io->flags, io->from,
				      io->fromlen);
	case OP_RECVMSG:
		return REAL(recvmsg)(fd, io->msg, io->flags);
	case OP_WRITE:
		return REAL(write)(fd, io->buf, io->len);
	case OP_WRITEV:
		return REAL(writev)(fd, io->iov, io->iovcnt);
	case OP_SEND:
		return REAL(send)(fd, io->buf, io->len, io->flags);
	case OP_SENDTO:
		return REAL(sendto)(fd, io->buf, io->len, io->flags, io->to,
				    io->tolen);
	case OP_SENDMSG:
		return REAL(sendmsg)(fd, io->msg, io->flags);
	case OP_XFER_IN:
	case OP_XFER_OUT:
		break; /* io->xfer, above */
	}
	errno = EINVAL;
	return -1;
}

/* One non-blocking attempt, skipping the first `done` bytes (a blocking
 * write or MSG_WAITALL read resumes where the last attempt stopped) and
 * moving at most cap bytes (an injected slice or bandwidth limit). */
static ssize_t io_attempt(int fd, const struct dl_io *io, size_t done,
			  size_t cap)
{
	int fl = io->flags | MSG_DONTWAIT;
	struct msghdr m;
	struct iovec small[8], *iv = small;
	const struct iovec *src;
	int cnt, first = done == 0;
	size_t n = io->len - done < cap ? io->len - done : cap;
	ssize_t r;

	if (io->xfer) /* sendfile, splice (xfer.c) */
		return io->xfer(fd, (struct dl_io *)io, done, n, 1);
	switch (io->op) {
	case OP_READ:
		return REAL(recv)(fd, (char *)io->buf + done, n, MSG_DONTWAIT);
	case OP_RECV:
		return REAL(recv)(fd, (char *)io->buf + done, n, fl);
	case OP_RECVFROM:
		return REAL(recvfrom)(fd, (char *)io->buf + done, n, fl, io->from,
				      io->fromlen);
	case OP_WRITE:
		return REAL(send)(fd, (const char *)io->buf + done, n,
				  MSG_DONTWAIT);
	case OP_SEND:
		return REAL(send)(fd, (const char *)io->buf + done, n, fl);
	case OP_SENDTO:
		return REAL(sendto)(fd, (const char *)io->buf + done, n, fl,
				    io->to, io->tolen);
	case OP_READV:
	case OP_WRITEV:
		memset(&m, 0, sizeof(m));
		src = io->iov;
		cnt = io->iovcnt;
		fl = MSG_DONTWAIT;
		break;
	case OP_RECVMSG:
	case OP_SENDMSG:
		m = *io->msg;
		src = m.msg_iov;
		cnt = (int)m.msg_iovlen;
		if (done) { /* ancillary data went with the first part */
			m.msg_control = 0;
			m.msg_controllen = 0;
		}
		break;
	default:
		errno = EINVAL;
		return -1;
	}
	if (done || cap != (size_t)-1) {
		/* Skip what was transferred already; keep at most cap. */
		size_t left = cap;

		while (cnt > 0 && done >= src->iov_len) {
			done -= src->iov_len;
			src++;
			cnt--;
		}
		if (cnt > (int)(sizeof(small) / sizeof(small[0]))) {
			iv = malloc((size_t)cnt * sizeof(*iv));
			if (!iv)
				return -1;
		}
		for (int i = 0; i < cnt; i++)
			iv[i] = src[i];
		if (cnt) {
			iv[0].iov_base = (char *)iv[0].iov_base + done;
			iv[0].iov_len -= done;
		}
		for (int i = 0; i < cnt; i++) {
			if (iv[i].iov_len >= left) {
				iv[i].iov_len = left;
				cnt = i + 1;
				break;
			}
			left -= iv[i].iov_len;
		}
		src = iv;
	}
	m.msg_iov = (struct iovec *)src;
	m.msg_iovlen = (size_t)cnt;
	if (is_write_op(io->op))
		r = REAL(sendmsg)(fd, &m, fl);
	else {
		r = REAL(recvmsg)(fd, &m, fl);
		if (io->op == OP_RECVMSG && r >= 0 && first) {
			io->msg->msg_flags = m.msg_flags;
			io->msg->msg_namelen = m.msg_namelen;
			io->msg->msg_controllen = m.msg_controllen;
		}
	}
	if (iv != small) {
		int e = errno;
		free(iv);
		errno = e;
	}
	return r;
}

static size_t io_total(const struct dl_io *io)
{
	size_t n, t = 0;
	const struct iovec *v = io_vec(io, &n);

	if (!v)
		return io->len;
	for (size_t i = 0; i < n; i++)
		t += v[i].iov_len;
	return t;
}

/* A non-blocking call found nothing to move and would answer EAGAIN at
 * now (the clock it reads anyway to start idle).  A connection past its
 * deadline never answers EAGAIN: this is where a program that never waits
 * where the shim can cut the wait - a busy loop of read -> EAGAIN ->
 * usleep, a select the shim cannot slice - meets its deadline, at its
 * first such call after it (expire.c: the same teardown and log line as
 * in a wait).  Returns 1 with *rp = -1 and errno the expiry errno, else
 * 0 with errno untouched.  Below the deadline: one compare, no system
 * call. */
int io_overdue(int fd, struct dl_conn *c, int64_t now, ssize_t *rp)
{
	if (!expire_overdue(fd, c, now))
		return 0;
	*rp = -1;
	return 1;
}

/* Has c's earliest deadline passed?  One clock read, for a call that is
 * about to wait (and read the clock) anyway. */
static int io_deadline_passed(const struct dl_conn *c)
{
	int64_t dl = conn_deadline(c, 0);

	return dl && clock_now() >= dl;
}

/* A blocking program's read where the answer is rarely there yet: right
 * after it wrote (a request), or first on an accepted connection (the
 * client's request follows the handshake the accept saw complete).  Wait
 * first, skip a doomed try.  Not past the deadline, where the wait would
 * expire at once: what is queued goes first, as for every call
 * (docs/semantics.md). */
int io_wait_first(const struct dl_conn *c, int flags)
{
	uint32_t st = conn_state(c);

	if (flags & (MSG_DONTWAIT | MSG_PEEK))
		return 0;
	st &= CONN_TURN_WROTE | CONN_TURN_READ | CONN_INBOUND | CONN_NBKNOWN |
	      CONN_NONBLOCK | CONN_SHARED | CONN_EXPIRED;
	return (st == (CONN_TURN_WROTE | CONN_NBKNOWN) ||
		st == (CONN_TURN_WROTE | CONN_INBOUND | CONN_NBKNOWN) ||
		st == (CONN_INBOUND | CONN_NBKNOWN)) &&
	       !io_deadline_passed(c);
}

/* Ask the injector about the next attempt of a faulted call.  Returns 1
 * to go on (with *cap, *swallow, *sliced set), 0 when the loop should ask
 * again (after a wait), -1 when the call ends with *rp (errno set). */
static int io_fault_step(int *fdp, struct dl_conn *c, struct dl_io *io,
			 int blocking, size_t done, size_t *cap, int *swallow,
			 int *sliced, ssize_t *rp)
{
	int fd = *fdp, wrote = is_write_op(io->op);
	uint32_t app_ms = wrote ? CONN_LOAD(c->sndtimeo_ms)
				: CONN_LOAD(c->rcvtimeo_ms);
	struct inj_plan p;
	enum wait_result w;
	int64_t now = clock_now();

	switch (inject_io(fd, wrote, blocking, now, &p)) {
	case INJ_GO:
		*cap = (io->flags & MSG_PEEK) ? p.peek_cap : p.cap;
		*swallow = p.swallow;
		*sliced = (io->flags & MSG_PEEK) ? 0 : p.sliced;
		dl_self.w.fault_wake = p.wake;
		return 1;
	case INJ_FAIL:
		if (done) {
			*rp = (ssize_t)done;
			return -1;
		}
		/* A spurious EAGAIN is still an EAGAIN: never past the
		 * deadline. */
		if ((p.err == EAGAIN || p.err == EWOULDBLOCK) &&
		    io_overdue(fd, c, now, rp))
			return -1;
		errno = p.err;
		*rp = -1;
		return -1;
	case INJ_EOF:
		*rp = (ssize_t)done;
		return -1;
	case INJ_WAIT:
		break;
	}
	if (!blocking) {
		/* An event loop: its poll/epoll will not see the fd ready
		 * before the fault allows.  Past the deadline the held call
		 * fails instead (see io_overdue). */
		if (!done && io_overdue(fd, c, now, rp))
			return -1;
		expire_arm_idle(fd, c, now);
		if (done) {
			*rp = (ssize_t)done;
			return -1;
		}
		errno = EAGAIN;
		*rp = -1;
		return -1;
	}
	if (p.until == 0) {
		dl_self.w.fault_wake = p.wake;
		w = wait_private(fd, c, POLLIN, app_ms);
		dl_self.w.fault_wake = 0;
	} else {
		w = wait_until(fd, c, p.until, app_ms);
	}
	switch (w) {
	case W_READY:
		return 0;
	case W_EXPIRED:
		*rp = -1;
		return -1;
	case W_APP_TIMEOUT:
		errno = EAGAIN;
		break;
	case W_INTR:
		errno = EINTR;
		break;
	case W_ORPHANED:
		errno = EBADF;
		break;
	case W_ERROR:
		break;
	}
	*rp = done ? (ssize_t)done : -1;
	return -1;
}

/* Calls the kernel answers without waiting: a negative or oversized
 * vector count (EINVAL), and transfers of nothing. */
static int io_degenerate(const struct dl_io *io)
{
	if ((io->op == OP_READV || io->op == OP_WRITEV) &&
	    (io->iovcnt < 0 || io->iovcnt > IOV_MAX))
		return 1;
	if ((io->op == OP_RECVMSG || io->op == OP_SENDMSG) &&
	    io->msg && io->msg->msg_iovlen > IOV_MAX)
		return 1;
	/* The error queue never blocks (EAGAIN when empty). */
	if (io->flags & MSG_ERRQUEUE)
		return 1;
	return io_total(io) == 0;
}

/* Did the real call end the way a torn-down connection ends (EOF on a
 * read, or a connection error)? */
static int io_ended(ssize_t r, int wrote)
{
	if (r == 0)
		return !wrote;
	return r < 0 && (errno == ECONNRESET || errno == EPIPE ||
			 errno == ENOTCONN || errno == ECONNABORTED);
}

/* Has the connection failed or ended so that another attempt would move
 * nothing and take the pending error?  Reads: no byte is queued
 * (SIOCINQ, which leaves the error in place); writes: always.  ask: poll
 * for the socket's state now (then a read at the urgent mark also stops;
 * peek: a peek stops before it), else use what the last wait reported. */
static int io_nothing_more(int fd, int wrote, int ask, int peek)
{
	int n = 0, saved = errno;
	uint32_t ev = dl_self.w.last_events;

	if (ask) {
		struct pollfd p = { .fd = fd, .events = wrote ? 0 : POLLPRI };
		struct timespec zero = { 0, 0 };

		ev = REAL(ppoll)(&p, 1, &zero, 0) == 1 ? (uint16_t)p.revents : 0;
		/* A read stops at the urgent mark once it has data (a
		 * peek, which does not move, before it). */
		if (!wrote && (ev & POLLPRI) &&
		    (peek || (REAL(ioctl)(fd, SIOCATMARK, &n) == 0 && n))) {
			errno = saved;
			return 1;
		}
		n = 0;
	}
	if (!(ev & (POLLERR | POLLHUP)))
		return 0;
	if (wrote)
		return 1;
	if (REAL(ioctl)(fd, SIOCINQ, &n) < 0)
		n = 1;
	errno = saved;
	return n == 0;
}

/* Wait until the socket holds `want` bytes (SO_RCVLOWAT for the wait,
 * put back exactly as it was): the rest of a MSG_PEEK|MSG_WAITALL. */
static enum wait_result io_wait_more(int fd, struct dl_conn *c, size_t want)
{
	int old = 1, lowat = want > INT_MAX / 2 ? INT_MAX / 2 : (int)want;
	socklen_t l = sizeof(old);
	enum wait_result w;
	int saved = errno;

	if (REAL(getsockopt)(fd, SOL_SOCKET, SO_RCVLOWAT, &old, &l) < 0 ||
	    REAL(setsockopt)(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat,
			     sizeof(lowat)) < 0) {
		errno = saved;
		return wait_until(fd, c, clock_now() + 10 * CLOCK_NS_PER_MS,
				  CONN_LOAD(c->rcvtimeo_ms));
	}
	w = wait_private(fd, c, POLLIN | POLLRDHUP, CONN_LOAD(c->rcvtimeo_ms));
	saved = errno;
	REAL(setsockopt)(fd, SOL_SOCKET, SO_RCVLOWAT, &old, sizeof(old));
	errno = saved;
	return w;
}

/* Every read and write the fast path (engine_io) does not finish: faults,
 * vectors and messages, peeks, blocking semantics (a whole write, a
 * MSG_WAITALL read), waits, expiry, shared files. */
__attribute__((noinline)) ssize_t
io_general(int fd, struct dl_conn *c, struct dl_io *io, enum io_start start,
	   ssize_t r0, int e0, int saved_in)
{
	struct dl_conn orphan_conn; /* deadlines of an orphaned call */
	int wrote = is_write_op(io->op);
	size_t want = 0, done = 0;
	int keep_going; /* blocking semantics: all of it (writes, WAITALL) */
	/* The program's errno: the caller's, when its attempt failed. */
	int saved = saved_in >= 0 ? saved_in : errno;
	int hold = -1, faulted = 0, blocking = 0, shared = 0;
	int peekall, peek_last = 0, have_r = start == IO_RESULT;
	int h1w = 0; /* exchange_write_begin marked c for this attempt */
	enum wait_result w;
	ssize_t r;

	/* Only a handler deferred during this call counts (wait.c): the
	 * fast paths that lead here take no lock before. */
	dl_self.intr = 0;
	if (start != IO_FULL)
		goto checked; /* engine_io made these checks */
	if ((conn_state(c) & CONN_EXPIRED)) {
		if (expire_fail(fd, c))
			return -1;
		return io_real(fd, io);
	}
	shared = track_shared(c);
	/* Through another number, or in another process, the shim may have
	 * torn the connection down already: a write must fail with the
	 * expiry errno, not EPIPE and SIGPIPE. */
	if (__builtin_expect(shared, 0) && wrote && expire_adopt(fd, c))
		return -1;
	/* Invalid vectors and empty transfers: the kernel answers at once,
	 * as the real call would. */
	if (io_degenerate(io))
		return io_real(fd, io);
	/* Faults shape reads and writes, not sendfile/splice (xfer.c). */
	faulted = inject_on && !io->xfer && inject_has(fd, conn_gen(c));
	/* Nothing can fire during this call: the real call, untouched. */
	if (!faulted && !conn_deadline(c, 0) &&
	    !limits_of(c)->ms[DL_PH_IDLE]) {
		h1w = wrote && exchange_write_begin(c);
		r = io_real(fd, io);
		if (r > 0) {
			int e = errno;
			note_moved(fd, c, wrote, r, io, 0);
			errno = e;
		}
		if (h1w)
			exchange_write_end(c);
		if (r <= 0 && __builtin_expect(shared, 0) &&
		    io_ended(r, wrote) && expire_adopt(fd, c))
			return -1;
		return r;
	}
	/* A write that makes the handshake (TCP Fast Open) or waits for
	 * it: under the connect deadline (connect.c).  Faulted connections
	 * keep their faults' path. */
	if (__builtin_expect(wrote && !faulted &&
			     (conn_state(c) & CONN_CONNECTING), 0))
		return connect_write(fd, c, io, 0);
checked:
	keep_going = wrote || ((io->flags & MSG_WAITALL) &&
			       (io->op == OP_RECV || io->op == OP_RECVFROM ||
				io->op == OP_RECVMSG));
	if (!shared && (conn_state(c) & (CONN_NONBLOCK | CONN_NBKNOWN)) ==
			       (CONN_NONBLOCK | CONN_NBKNOWN))
		keep_going = 0; /* an event loop takes partial transfers */
	/* A MSG_PEEK|MSG_WAITALL read waits until the whole length is there
	 * and returns it from the start, consuming nothing. */
	peekall = keep_going && !wrote && (io->flags & MSG_PEEK);
	if (keep_going || faulted)
		want = io_total(io);
	if (faulted)
		blocking = !(io->flags & MSG_DONTWAIT) &&
			   !track_app_nonblocking(fd, c, 0);

	/* A blocking program reading right after it wrote is waiting for an
	 * answer that is rarely there yet: wait first, skip a doomed try.
	 * Not past the deadline, where the wait would expire at once: what
	 * is queued goes first, as for every call (docs/semantics.md). */
	if (start == IO_WAIT_FIRST ||
	    (start == IO_FULL && !faulted && !wrote && !shared &&
	     io_wait_first(c, io->flags)))
		goto wait;
	for (;;) {
		size_t cap = (size_t)-1;
		int swallow = 0, sliced = 0;

		if (faulted && hold < 0) {
			int k = io_fault_step(&fd, c, io, blocking, done, &cap,
					      &swallow, &sliced, &r);
			if (k < 0)
				goto out;
			if (k == 0)
				continue;
		}
		if (have_r) { /* engine_io's attempt */
			have_r = 0;
			r = r0;
			errno = e0;
		} else if (swallow) { /* blackholed: the bytes vanish */
			r = (ssize_t)(want - done < cap ? want - done : cap);
		} else {
			h1w = wrote && exchange_write_begin(c);
			r = io_attempt(fd, io, peekall ? 0 : done, cap);
			if (h1w && r <= 0) {
				exchange_write_end(c);
				h1w = 0;
			}
		}
		if (peekall && r > 0 && (size_t)r < want && !faulted &&
		    !(io->flags & MSG_DONTWAIT) && !peek_last &&
		    !track_app_nonblocking(fd, c, 0) &&
		    !io_nothing_more(fd, 0, 1, 1)) {
			/* Part of it is there: wait for the rest. */
			w = io_wait_more(fd, c, want);
			/* The peer ended or failed: what is there is all. */
			peek_last = !!(dl_self.w.last_events &
				       (POLLERR | POLLHUP | POLLRDHUP));
			if (w == W_READY)
				continue;
			r = -1;
			if (w == W_APP_TIMEOUT)
				errno = EAGAIN;
			else if (w == W_INTR)
				errno = EINTR;
			else if (w == W_ORPHANED)
				errno = EBADF;
			goto out;
		}
		if (peekall && r >= 0) {
			done = (size_t)r;
			break;
		}
		if (__builtin_expect(shared, 0) && io_ended(r, wrote) &&
		    expire_adopt(fd, c)) {
			r = -1;
			goto out;
		}
		if (r >= 0) {
			note_moved(fd, c, wrote, r, swallow ? 0 : io, done);
			if (h1w) {
				exchange_write_end(c);
				h1w = 0;
			}
			if (faulted && r > 0 && hold < 0 &&
			    !(io->flags & MSG_PEEK))
				inject_io_done(fd, wrote, (size_t)r,
					       cap != (size_t)-1 &&
						       (size_t)r == cap &&
						       cap < want - done);
			done += (size_t)r;
			if (!keep_going || r == 0 || done >= want || sliced ||
			    (io->flags & MSG_DONTWAIT))
				break;
			/* Before taking more: if the connection failed
			 * meanwhile, the part is the answer and the error
			 * stays for the next call, as in the kernel. */
			if (!swallow && io_nothing_more(fd, wrote, 1, 0))
				break;
			continue;
		}
		if ((errno != EAGAIN && errno != EWOULDBLOCK) || io->xfinal) {
			if (errno == ENOTSOCK) { /* number reused behind us */
				engine_on_close(fd);
				errno = saved;
				return io_real(fd, io);
			}
			if (done)
				break;
			r = -1;
			goto out;
		}
		if ((io->flags & MSG_DONTWAIT) || track_app_nonblocking(fd, c, 0)) {
			int64_t now = clock_now();

			/* Past the deadline: expired here, never EAGAIN.  A
			 * part already moved is reported first, as the
			 * kernel would; the next call fails. */
			if (!done && io_overdue(fd, c, now, &r))
				goto out;
			/* An event loop will wait for this fd: idle runs. */
			expire_arm_idle(fd, c, now);
			if (done)
				break;
			errno = EAGAIN;
			r = -1;
			goto out;
		}
wait:
		{
			uint32_t gen = conn_gen(c);

			w = wait_private(fd, c, wrote ? POLLOUT : POLLIN,
					 wrote ? CONN_LOAD(c->sndtimeo_ms)
					       : CONN_LOAD(c->rcvtimeo_ms));
			if (w == W_ORPHANED && hold < 0) {
				/* Carry on with the file the call holds. */
				hold = holds_orphan_take(c, gen, &orphan_conn);
				if (hold < 0) {
					errno = EBADF;
					r = -1;
					goto out;
				}
				dl_self.w.hold_fd = hold;
				dl_self.w.hold_of = fd;
				fd = hold;
				c = &orphan_conn;
				continue;
			}
		}
		if (w == W_READY) {
			/* Part moved, then the connection failed or ended: the
			 * kernel returns the part and keeps the error for the
			 * next call; another attempt here would take it. */
			if (done && io_nothing_more(fd, wrote, 0, 0))
				break;
			continue;
		}
		r = -1;
		if (w == W_EXPIRED)
			goto out;
		if (done)
			break; /* partial transfer: report it, like the kernel */
		if (w == W_APP_TIMEOUT)
			errno = EAGAIN;
		else if (w == W_INTR)
			errno = EINTR;
		goto out;
	}
	errno = saved;
	r = (ssize_t)done;
out:
	if (h1w)
		exchange_write_end(c);
	dl_self.w.fault_wake = 0;
	if (hold >= 0) {
		/* The call returns: its reference to the file goes, and with
		 * it the registrations the close left in our set. */
		int e = errno;
		holds_close(hold);
		dl_self.w.hold_fd = -1;
		errno = e;
	}
	return r;
}
