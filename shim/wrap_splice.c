/* wrap_splice.c - zero-copy transfers: sendfile, sendfile64, splice.
 *
 * Unless a tracked socket is at one end, the real call runs first and
 * alone; with one, xfer.c bounds the transfer by its deadlines.
 * copy_file_range, vmsplice and tee are not wrapped: the kernel never
 * lets them touch a socket (xfer.c).
 */
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/types.h>

#include "engine.h"
#include "real.h"

_Static_assert(sizeof(off_t) == sizeof(off64_t),
	       "sendfile64 is sendfile only where off_t is 64 bits");

/* ---- sendfile / sendfile64 --------------------------------------------- */

static ssize_t do_sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
	if (!engine_tracked(out_fd))
		return REAL(sendfile)(out_fd, in_fd, offset, count);
	return engine_sendfile(out_fd, in_fd, offset, count);
}

DL_EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
	return do_sendfile(out_fd, in_fd, offset, count);
}

DL_EXPORT ssize_t sendfile64(int out_fd, int in_fd, off64_t *offset,
			     size_t count)
{
	return do_sendfile(out_fd, in_fd, (off_t *)offset, count);
}

/* ---- splice ------------------------------------------------------------ */

static ssize_t do_splice(int fd_in, loff_t *off_in, int fd_out,
			 loff_t *off_out, size_t len, unsigned int flags)
{
	if (!engine_tracked(fd_in) && !engine_tracked(fd_out))
		return REAL(splice)(fd_in, off_in, fd_out, off_out, len, flags);
	return engine_splice(fd_in, off_in, fd_out, off_out, len, flags);
}

DL_EXPORT ssize_t splice(int fd_in, loff_t *off_in, int fd_out,
			 loff_t *off_out, size_t len, unsigned int flags)
{
	return do_splice(fd_in, off_in, fd_out, off_out, len, flags);
}
