/* wrap_fd.c - calls that end or copy fd numbers, and O_NONBLOCK changes.
 *
 * The table entries are hints: every call that hands out a number resets
 * or copies the entry, every call that ends one forgets it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine.h"
#include "inject.h"
#include "real.h"

/* ---- close / close_range / closefrom --------------------------------- */

static int do_close(int fd)
{
	/* Not the program's number: natively it is not open. */
	if (engine_own_fd(fd)) {
		errno = EBADF;
		return -1;
	}
	if (engine_enabled()) {
		if (inject_on)
			engine_slow_close(fd, inject_detach(fd, 1));
		engine_on_close(fd);
	}
	return REAL(close)(fd);
}

DL_EXPORT int close(int fd)
{
	return do_close(fd);
}

static int do_close_range(unsigned lo, unsigned hi, int flags)
{
	if (!engine_enabled())
		return REAL(close_range)
			       ? REAL(close_range)(lo, hi, flags)
			       : (int)syscall(SYS_close_range, lo, hi, flags);
	return engine_close_range(lo, hi, flags);
}

DL_EXPORT int close_range(unsigned int lo, unsigned int hi, int flags)
{
	return do_close_range(lo, hi, flags);
}

static void do_closefrom(int lo)
{
	int saved = errno;

	if (lo < 0)
		lo = 0;
	if (!engine_enabled() && REAL(closefrom)) {
		REAL(closefrom)(lo);
		return;
	}
	engine_close_range((unsigned)lo, ~0u, 0);
	errno = saved;
}

DL_EXPORT void closefrom(int lo)
{
	do_closefrom(lo);
}

/* ---- dup family ------------------------------------------------------ */

static int do_dup3(int oldfd, int newfd, int flags, int which)
{
	int r;

	if (which != 1 && newfd != oldfd && engine_enabled())
		engine_evict_fd(newfd);
	if (which == 1)
		r = REAL(dup)(oldfd);
	else if (which == 2)
		r = REAL(dup2)(oldfd, newfd);
	else
		r = REAL(dup3)(oldfd, newfd, flags);
	if (r >= 0 && r != oldfd && engine_enabled())
		engine_on_dup(oldfd, r);
	return r;
}

DL_EXPORT int dup(int oldfd)
{
	return do_dup3(oldfd, -1, 0, 1);
}

DL_EXPORT int dup2(int oldfd, int newfd)
{
	return do_dup3(oldfd, newfd, 0, 2);
}

DL_EXPORT int dup3(int oldfd, int newfd, int flags)
{
	return do_dup3(oldfd, newfd, flags, 3);
}

/* ---- fcntl / fcntl64 / ioctl ----------------------------------------- */

/* The third argument is an int or a pointer depending on cmd; both travel
 * in one register-sized slot, so passing it on as a pointer is exact. */
static int do_fcntl(int fd, int cmd, void *arg, int is64)
{
	int r = is64 ? REAL(fcntl64)(fd, cmd, arg) : REAL(fcntl)(fd, cmd, arg);

	if (r < 0 || !engine_enabled())
		return r;
	switch (cmd) {
	case F_SETFL:
		engine_on_setfl(fd, (int)(intptr_t)arg);
		break;
	case F_DUPFD:
	case F_DUPFD_CLOEXEC:
		engine_on_dup(fd, r);
		break;
	default:
		break;
	}
	return r;
}

DL_EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return do_fcntl(fd, cmd, arg, 0);
}

DL_EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return do_fcntl(fd, cmd, arg, 1);
}

static int do_ioctl(int fd, unsigned long req, void *arg)
{
	int r = REAL(ioctl)(fd, req, arg);

	if (r == 0 && req == FIONBIO && arg && engine_enabled())
		engine_on_setfl(fd, *(const int *)arg ? O_NONBLOCK : 0);
	return r;
}

DL_EXPORT int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	return do_ioctl(fd, req, arg);
}
