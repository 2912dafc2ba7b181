/* real.h - the libc functions libdeadline interposes, bound once.
 *
 * Every call the shim makes to a function it also exports goes through
 * REAL(name); calling the plain name would re-enter the shim.  Binding is
 * lazy and idempotent so that wrappers work before the shim's constructor
 * ran (another library's constructor may call connect() first).
 */
#ifndef DL_REAL_H
#define DL_REAL_H

#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

struct dl_real {
	int (*socket)(int, int, int);
	int (*socketpair)(int, int, int, int[2]);
	int (*connect)(int, const struct sockaddr *, socklen_t);
	int (*accept)(int, struct sockaddr *, socklen_t *);
	int (*accept4)(int, struct sockaddr *, socklen_t *, int);
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*readv)(int, const struct iovec *, int);
	ssize_t (*writev)(int, const struct iovec *, int);
	ssize_t (*recv)(int, void *, size_t, int);
	ssize_t (*send)(int, const void *, size_t, int);
	ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *,
			    socklen_t *);
	ssize_t (*sendto)(int, const void *, size_t, int,
			  const struct sockaddr *, socklen_t);
	ssize_t (*recvmsg)(int, struct msghdr *, int);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	int (*close)(int);
	int (*shutdown)(int, int);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*fcntl)(int, int, ...);
	int (*fcntl64)(int, int, ...);
	int (*ioctl)(int, unsigned long, ...);
	int (*close_range)(unsigned int, unsigned int, int);
	void (*closefrom)(int);
	int (*getsockopt)(int, int, int, void *, socklen_t *);
	int (*setsockopt)(int, int, int, const void *, socklen_t);
	int (*poll)(struct pollfd *, nfds_t, int);
	int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *,
		     const sigset_t *);
	int (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
	int (*pselect)(int, fd_set *, fd_set *, fd_set *,
		       const struct timespec *, const sigset_t *);
	int (*epoll_wait)(int, struct epoll_event *, int, int);
	int (*epoll_ctl)(int, int, int, struct epoll_event *);
	int (*epoll_pwait)(int, struct epoll_event *, int, int,
			   const sigset_t *);
	int (*epoll_pwait2)(int, struct epoll_event *, int,
			    const struct timespec *, const sigset_t *);
	int (*sigaction)(int, const struct sigaction *, struct sigaction *);
	int (*getaddrinfo)(const char *, const char *, const struct addrinfo *,
			   struct addrinfo **);
	struct hostent *(*gethostbyname)(const char *);
	struct hostent *(*gethostbyname2)(const char *, int);
	int (*gethostbyname_r)(const char *, struct hostent *, char *, size_t,
			       struct hostent **, int *);
	int (*gethostbyname2_r)(const char *, int, struct hostent *, char *,
				size_t, struct hostent **, int *);
	sighandler_t (*signal)(int, sighandler_t);
	pid_t (*vfork)(void);
	int (*clone)(int (*)(void *), void *, int, void *, ...);
	ssize_t (*sendfile)(int, int, off_t *, size_t);
	ssize_t (*splice)(int, loff_t *, int, loff_t *, size_t, unsigned int);
	FILE *(*fdopen)(int, const char *);
};

extern struct dl_real dl_real;

/* dl_real_bind - resolve every entry with dlsym(RTLD_NEXT).  Safe to call
 * from any thread, any number of times; errno is preserved. */
void dl_real_bind(void);

/* REAL(fn) - the next definition of fn: one load once bound. */
#define REAL(fn)                                                        \
	({                                                              \
		__typeof__(dl_real.fn) real_fn_ =                       \
			__atomic_load_n(&dl_real.fn, __ATOMIC_ACQUIRE); \
		__builtin_expect(real_fn_ != 0, 1)                      \
			? real_fn_                                      \
			: (dl_real_bind(), dl_real.fn);                 \
	})

/* Exported symbols: the only ones visible outside the library. */
#define DL_EXPORT __attribute__((visibility("default")))

#endif
