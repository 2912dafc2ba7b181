/* real.c - binding of the interposed libc functions. */
#include "real.h"

#include <dlfcn.h>
#include <errno.h>

struct dl_real dl_real;

static void *next_sym(const char *name)
{
	return dlsym(RTLD_NEXT, name);
}

#define BIND(fn)                                                          \
	do {                                                              \
		void *p_ = next_sym(#fn);                                 \
		__atomic_store_n((void **)&dl_real.fn, p_, __ATOMIC_RELEASE); \
	} while (0)

void dl_real_bind(void)
{
	int saved = errno;

	BIND(socket);
	BIND(socketpair);
	BIND(connect);
	BIND(accept);
	BIND(accept4);
	BIND(read);
	BIND(write);
	BIND(readv);
	BIND(writev);
	BIND(recv);
	BIND(send);
	BIND(recvfrom);
	BIND(sendto);
	BIND(recvmsg);
	BIND(sendmsg);
	BIND(close);
	BIND(shutdown);
	BIND(dup);
	BIND(dup2);
	BIND(dup3);
	BIND(fcntl);
	BIND(fcntl64);
	BIND(ioctl);
	BIND(close_range);
	BIND(closefrom);
	BIND(getsockopt);
	BIND(setsockopt);
	BIND(poll);
	BIND(ppoll);
	BIND(select);
	BIND(pselect);
	BIND(epoll_wait);
	BIND(epoll_ctl);
	BIND(epoll_pwait);
	BIND(epoll_pwait2);
	BIND(sigaction);
	BIND(signal);
	BIND(getaddrinfo);
	BIND(gethostbyname);
	BIND(gethostbyname2);
	BIND(gethostbyname_r);
	BIND(gethostbyname2_r);
	BIND(vfork);
	BIND(clone);
	BIND(sendfile);
	BIND(splice);
	BIND(fdopen);
	if (!dl_real.fcntl64)
		__atomic_store_n(&dl_real.fcntl64, dl_real.fcntl,
				 __ATOMIC_RELEASE);
	errno = saved;
}
