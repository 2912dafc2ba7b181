/* wrap_socket.c - socket creation, connect, accept, socket options.
 *
 * Each exported symbol is one line calling a static function that holds
 * the logic; fds the shim does not track reach the real call first.
 */
#include <errno.h>
#include <sys/socket.h>

#include "engine.h"
#include "real.h"

/* ---- socket / socketpair ---------------------------------------------- */

static int do_socket(int domain, int type, int protocol)
{
	int fd = REAL(socket)(domain, type, protocol);

	if (fd >= 0 && engine_enabled())
		engine_on_socket(fd, domain, type, protocol);
	return fd;
}

DL_EXPORT int socket(int domain, int type, int protocol)
{
	return do_socket(domain, type, protocol);
}

static int do_socketpair(int domain, int type, int protocol, int sv[2])
{
	int r = REAL(socketpair)(domain, type, protocol, sv);

	if (r == 0 && engine_enabled()) {
		engine_on_newfd(sv[0]);
		engine_on_newfd(sv[1]);
	}
	return r;
}

DL_EXPORT int socketpair(int domain, int type, int protocol, int sv[2])
{
	return do_socketpair(domain, type, protocol, sv);
}

/* ---- connect ------------------------------------------------------------ */

static int do_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	if (!engine_enabled())
		return REAL(connect)(fd, addr, len);
	return engine_connect(fd, addr, len);
}

DL_EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	return do_connect(fd, addr, len);
}

/* ---- accept / accept4 ------------------------------------------------- */

static int do_accept4(int lfd, struct sockaddr *addr, socklen_t *len,
		      int flags, int is4)
{
	int fd = is4 ? REAL(accept4)(lfd, addr, len, flags)
		     : REAL(accept)(lfd, addr, len);

	if (fd >= 0 && engine_enabled())
		engine_on_accept(lfd, fd, flags);
	return fd;
}

DL_EXPORT int accept(int lfd, struct sockaddr *addr, socklen_t *len)
{
	return do_accept4(lfd, addr, len, 0, 0);
}

DL_EXPORT int accept4(int lfd, struct sockaddr *addr, socklen_t *len,
		      int flags)
{
	return do_accept4(lfd, addr, len, flags, 1);
}

/* ---- shutdown --------------------------------------------------------- */

static int do_shutdown(int fd, int how)
{
	/* An expired fd fails every I/O call until close(). */
	if (engine_tracked(fd) && engine_fail_expired(fd))
		return -1;
	return REAL(shutdown)(fd, how);
}

DL_EXPORT int shutdown(int fd, int how)
{
	return do_shutdown(fd, how);
}

/* ---- socket options --------------------------------------------------- */

static int do_getsockopt(int fd, int level, int name, void *val,
			 socklen_t *len)
{
	if (!engine_tracked(fd))
		return REAL(getsockopt)(fd, level, name, val, len);
	return engine_getsockopt(fd, level, name, val, len);
}

DL_EXPORT int getsockopt(int fd, int level, int name, void *val,
			 socklen_t *len)
{
	return do_getsockopt(fd, level, name, val, len);
}

static int do_setsockopt(int fd, int level, int name, const void *val,
			 socklen_t len)
{
	int r = REAL(setsockopt)(fd, level, name, val, len);

	if (r == 0 && level == SOL_SOCKET && engine_enabled())
		engine_on_sockopt(fd, level, name, val, len);
	return r;
}

DL_EXPORT int setsockopt(int fd, int level, int name, const void *val,
			 socklen_t len)
{
	return do_setsockopt(fd, level, name, val, len);
}
