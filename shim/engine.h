/* engine.h - deadline enforcement: the layer between the exported
 * wrappers (wrap_*.c, one or two lines each) and the policy (conn.c,
 * policy.c, dlheap.c).
 *
 * Conventions for every engine_* call made by a wrapper:
 *  - the wrapper has already sent untracked fds to the real call, unless
 *    the comment says the engine does it;
 *  - return values and errno are exactly what the program is given;
 *  - errno is preserved on every path that does not fail.
 */
#ifndef DL_ENGINE_H
#define DL_ENGINE_H

#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include "clock.h"
#include "fdtab.h"
#include "self.h"

extern int engine_enabled_flag;

/* engine_init - read the environment, bind real symbols, install the
 * fork handlers.  Idempotent, thread-safe, callable before constructors. */
void engine_init(void);

/* engine_enabled - nonzero when some deadline is configured and the
 * calling thread may use the engine (not a vfork child: see self.h).
 * Triggers initialisation on first use, so wrappers work before the
 * constructor. */
static inline int engine_enabled(void)
{
	int v = __atomic_load_n(&engine_enabled_flag, __ATOMIC_ACQUIRE);

	if (__builtin_expect(self_outside(), 0))
		return 0;

	if (__builtin_expect(v < 0, 0)) {
		engine_init();
		v = __atomic_load_n(&engine_enabled_flag, __ATOMIC_ACQUIRE);
	}
	return v > 0;
}

/* engine_tracked - the entry for fd if deadlines apply to it and the
 * calling thread may use the engine, else NULL: the wrappers' gate. */
static inline struct dl_conn *engine_tracked(int fd)
{
	struct dl_conn *c = fdtab_tracked(fd);

	return c && !self_outside() ? c : 0;
}

/* --- fd lifecycle ------------------------------------------------------ */

/* A new socket: note whether deadlines can ever apply (TCP over v4/v6). */
void engine_on_socket(int fd, int domain, int type, int protocol);
/* A listening socket handed out fd: track it as inbound if TCP. */
void engine_on_accept(int lfd, int fd, int flags);
/* fd is a new number for something the shim knows nothing about. */
void engine_on_newfd(int fd);
/* newfd now refers to oldfd's file (dup family). */
void engine_on_dup(int oldfd, int newfd);
/* The program is about to close fd (close, dup2 target, close_range). */
void engine_on_close(int fd);
/* An injected slow_close of ms (0: nothing) before the program's close of
 * fd: a blocking socket's close() takes that long; a non-blocking one
 * returns at once and the shim keeps the socket open that long (the peer
 * sees the FIN late), so an event loop is not put to sleep. */
void engine_slow_close(int fd, uint32_t ms);
/* engine_own_fd - 1 if fd is one of the shim's own descriptors (a hold,
 * the log file): the program never had that number, so its close() of it
 * fails with EBADF as natively.  Lock-free. */
int engine_own_fd(int fd);
/* engine_evict_fd - the program is about to take number fd (dup2/dup3
 * target): if the shim has a descriptor there, it moves elsewhere first. */
void engine_evict_fd(int fd);
/* close_range/closefrom without CLOSE_RANGE_CLOEXEC: forget [lo, hi]
 * and close it, sparing the shim's own fds.  Returns the real result. */
int engine_close_range(unsigned lo, unsigned hi, int flags);
/* The program set the file flags (fcntl F_SETFL; ioctl FIONBIO passes
 * just O_NONBLOCK or 0). */
void engine_on_setfl(int fd, int flags);
/* The program set SO_RCVTIMEO / SO_SNDTIMEO. */
void engine_on_sockopt(int fd, int level, int name, const void *val,
		       socklen_t len);

/* --- calls with deadlines ---------------------------------------------- */

int engine_connect(int fd, const struct sockaddr *addr, socklen_t len);

/* engine_fail_expired - 1 with errno set when fd was torn down by a
 * deadline (the call must fail), else 0 with errno untouched. */
int engine_fail_expired(int fd);

/* getsockopt on a tracked fd: SO_ERROR reports the expiry errno. */
int engine_getsockopt(int fd, int level, int name, void *val,
		      socklen_t *len);

/* The I/O calls, by the name the program used. */
enum dl_op {
	OP_READ,
	OP_READV,
	OP_RECV,
	OP_RECVFROM,
	OP_RECVMSG,
	OP_XFER_IN, /* splice from the socket (xfer.c) */
	OP_WRITE, /* first write-side op */
	OP_WRITEV,
	OP_SEND,
	OP_SENDTO,
	OP_SENDMSG,
	OP_XFER_OUT, /* sendfile, splice into the socket (xfer.c) */
};

struct dl_io {
	enum dl_op op;
	void *buf; /* read/recv/recvfrom; const for the write side */
	size_t len;
	int flags;
	struct sockaddr *from;
	socklen_t *fromlen;
	const struct sockaddr *to;
	socklen_t tolen;
	const struct iovec *iov;
	int iovcnt;
	struct msghdr *msg;
	/* OP_XFER_*: one transfer of at most n bytes, `done` having moved
	 * already; attempt: the socket must not block (an attempt), else the
	 * call exactly as the program made it.  It may set xfinal with its
	 * -1/EAGAIN: the program's pipe, not the socket, would block. */
	ssize_t (*xfer)(int fd, struct dl_io *io, size_t done, size_t n,
			int attempt);
	void *xarg;
	int xfinal;
};

/* engine_io - perform io on fd: the real call when untracked, else
 * non-blocking attempts and waits in the private epoll set, bounded by the
 * fd's deadlines. */
ssize_t engine_io(int fd, struct dl_io *io);
/* engine_recv / engine_send - engine_io for the plain calls (op OP_READ,
 * OP_RECV, or OP_RECVFROM without an address; OP_WRITE, OP_SEND, or
 * OP_SENDTO without one) on c = engine_tracked(fd), taking the call's
 * arguments as they come. */
ssize_t engine_recv(int fd, struct dl_conn *c, void *buf, size_t n,
		    int flags, enum dl_op op);
ssize_t engine_send(int fd, struct dl_conn *c, const void *buf, size_t n,
		    int flags, enum dl_op op);

/* --- zero-copy transfers and stdio streams (xfer.c, stream.c) ---------- */

/* sendfile into a tracked socket out_fd, bounded by its deadlines
 * (sendfile64 is the same call on LP64). */
ssize_t engine_sendfile(int out_fd, int in_fd, off_t *offset, size_t count);
/* splice with a tracked socket at one end (the other is a pipe). */
ssize_t engine_splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out,
		      size_t len, unsigned int flags);
/* engine_fdopen - fdopen of a tracked socket: a stream whose reads and
 * writes go through the shim (so stdio is bounded by the deadlines); the
 * real fdopen when that cannot be done.  Same errno as fdopen. */
FILE *engine_fdopen(int fd, const char *mode);

/* --- TCP Fast Open (connect.c) ---------------------------------------- */

/* engine_fastopen - sendto/sendmsg with MSG_FASTOPEN on a socket not yet
 * tracked: an implicit connect to io's address, tracked like connect(). */
ssize_t engine_fastopen(int fd, struct dl_io *io);

/* --- the program's own waits (wrap_wait.c) ----------------------------- */

/* engine_idle_watch - nonzero when some rule has an idle limit, so the
 * program's own waits must tell the engine which sockets they wait on. */
int engine_idle_watch(void);
/* The program waits on fd in poll/select now: idle starts if not running. */
void engine_waiting_on(int fd, int64_t now);
/* The program's epoll_ctl succeeded on fd. */
void engine_on_epoll_ctl(int op, int fd);

/* The deadline heap's top as expire.c last published it (ns, 0 when the
 * heap is empty); read it through the two functions below. */
extern int64_t engine_next_pub;

/* engine_next_due - a lower bound of the earliest pending deadline (ns),
 * 0 when none; no lock, no call. */
static inline int64_t engine_next_due(void)
{
	return __atomic_load_n(&engine_next_pub, __ATOMIC_ACQUIRE);
}

/* engine_armed - nonzero when some tracked fd has a deadline pending. */
static inline int engine_armed(void)
{
	return engine_next_due() != 0;
}

/* engine_expire_due - tear down every connection whose deadline passed by
 * now; returns the earliest remaining deadline (ns), 0 if none. */
int64_t engine_expire_due(int64_t now);

/* --- name resolution (wrap_dns.c) ------------------------------------ */

struct addrinfo;
struct hostent;

/* getaddrinfo, bounded by the dns_timeout of the rule for node: at the
 * limit it returns EAI_AGAIN and the lookup finishes in the background. */
int engine_getaddrinfo(const char *node, const char *service,
		       const struct addrinfo *hints, struct addrinfo **res);
/* A dns fault for a gethostbyname-family lookup of name (these have no
 * dns_timeout): after any injected delay, EAI_NONAME or EAI_AGAIN to
 * answer instead of the resolver, or 0 to resolve. */
int engine_dns_fault(const char *name);
/* Remember which addresses name resolved to. */
void engine_learn_addrinfo(const char *name, const struct addrinfo *res);
void engine_learn_hostent(const char *name, const struct hostent *h);

#endif
