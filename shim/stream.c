/* stream.c - stdio streams on tracked sockets.
 *
 * glibc's stdio reads and writes a stream's descriptor with calls of its
 * own that no preloaded library can interpose: fgets on an fdopen'd
 * socket would never meet a deadline.  So fdopen() of a tracked socket
 * returns a stream made with fopencookie() whose reads, writes and close
 * are the program's read(), write() and close() on that descriptor,
 * through the engine: every deadline, turn, byte count and errno is the
 * one a direct call gets (a deadline fails the stdio call with the
 * error flag set and errno ETIMEDOUT).
 *
 * The stream is made to be the one glibc's fdopen would have made:
 *  - the real fdopen runs first and answers for every error (EBADF,
 *    EINVAL for a mode the descriptor does not allow) and does its side
 *    effects (O_APPEND for "a", FD_CLOEXEC for "e"); its stream is then
 *    released without closing the descriptor (it holds no buffer yet);
 *  - fileno() gives the descriptor (_fileno, a public field of FILE);
 *  - the buffer has the size glibc picks (st_blksize when below BUFSIZ:
 *    4096 for a socket), fully buffered; seeks fail with ESPIPE;
 *  - a write moves everything or fails, as glibc's own loop does.
 * What differs: the stream is byte-oriented from the start (fwide()
 * says so, and wide-character functions fail on it), and mode 'c' (no
 * cancellation points) is left to the real fdopen, unbounded.
 */
#include "engine_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "real.h"

struct stream_ck {
	int fd;
	char *buf; /* the stream's buffer, ours to free at close */
};

/* read(fd) as the program would call it (wrap_io.c's gate). */
static ssize_t stream_read(void *p, char *buf, size_t n)
{
	struct stream_ck *ck = p;
	struct dl_io io = { .op = OP_READ, .buf = buf, .len = n };

	if (!engine_tracked(ck->fd))
		return REAL(read)(ck->fd, buf, n);
	return engine_io(ck->fd, &io);
}

/* Everything, or what moved before an error (errno set): glibc's own
 * write loop for a stream, which then sets the error flag. */
static ssize_t stream_write(void *p, const char *buf, size_t n)
{
	struct stream_ck *ck = p;
	size_t done = 0;

	while (done < n) {
		struct dl_io io = { .op = OP_WRITE, .buf = (char *)buf + done,
				    .len = n - done };
		ssize_t w = engine_tracked(ck->fd)
				    ? engine_io(ck->fd, &io)
				    : REAL(write)(ck->fd, buf + done, n - done);

		if (w <= 0)
			break;
		done += (size_t)w;
	}
	return (ssize_t)done;
}

/* A socket cannot seek: lseek's answer. */
static int stream_seek(void *p, off64_t *off, int whence)
{
	(void)p;
	(void)off;
	(void)whence;
	errno = ESPIPE;
	return -1;
}

/* fclose: close(fd) as the program's own call (wrap_fd.c: the shim
 * forgets the socket), then the buffer, which glibc no longer touches. */
static int stream_close(void *p)
{
	struct stream_ck *ck = p;
	int r = close(ck->fd), e = errno;

	free(ck->buf);
	free(ck);
	errno = e;
	return r;
}

FILE *engine_fdopen(int fd, const char *mode)
{
	cookie_io_functions_t fns = { stream_read, stream_write, stream_seek,
				      stream_close };
	char m[3] = { 0 };
	struct stream_ck *ck;
	struct stat sb;
	size_t size = BUFSIZ;
	FILE *nat, *f;
	int saved, fl;

	if (!mode || !*mode || strchr(mode, 'c'))
		return REAL(fdopen)(fd, mode);
	nat = REAL(fdopen)(fd, mode);
	if (!nat)
		return 0;
	saved = errno;
	/* fdopen("a") may have set O_APPEND behind the shim's back. */
	fl = REAL(fcntl64)(fd, F_GETFL);
	if (fl >= 0)
		engine_on_setfl(fd, fl);
	m[0] = mode[0];
	if (strchr(mode, '+'))
		m[1] = '+';
	ck = calloc(1, sizeof(*ck));
	f = ck ? fopencookie(ck, m, fns) : 0;
	if (!f) { /* no memory: glibc's stream, unbounded but working */
		free(ck);
		errno = saved;
		return nat;
	}
	ck->fd = fd;
	/* Release glibc's stream without closing fd: not open for fclose. */
	nat->_fileno = -1;
	fclose(nat);
	f->_fileno = fd;
	if (fstat(fd, &sb) == 0 && sb.st_blksize > 0 && sb.st_blksize < BUFSIZ)
		size = (size_t)sb.st_blksize;
	ck->buf = malloc(size);
	if (ck->buf)
		setvbuf(f, ck->buf, _IOFBF, size);
	errno = saved;
	return f;
}
