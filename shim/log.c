/* log.c - logging (see log.h). */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "real.h"

int dl_log_debug_on;
static int log_fd = 2;
static int log_inited;

void dl_log_init(void)
{
	const char *dest, *dbg;
	int saved = errno;

	if (__atomic_exchange_n(&log_inited, 1, __ATOMIC_ACQ_REL))
		return;
	dbg = secure_getenv("DEADLINE_DEBUG");
	dl_log_debug_on = dbg && *dbg && strcmp(dbg, "0") != 0;
	dest = secure_getenv("DEADLINE_LOG");
	if (!dest || !*dest || strcmp(dest, "stderr") == 0) {
		log_fd = 2;
	} else if (strcmp(dest, "off") == 0) {
		log_fd = -1;
	} else {
		int fd = open(dest, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
			      0644);
		if (fd < 0) {
			log_fd = 2;
			dl_log_warn("DEADLINE_LOG=%s: cannot open: %s; "
				    "logging to stderr",
				    dest, strerror(errno));
		} else {
			log_fd = fd;
		}
	}
	errno = saved;
}

int dl_log_fd(void)
{
	return log_fd;
}

void dl_log_forget_fd(int fd)
{
	/* The program took the number back (closed it, dup2'd onto it):
	 * writing there would corrupt its file.  Fall back to stderr. */
	if (fd >= 0 && fd == log_fd && fd != 2)
		log_fd = 2;
}

static void emit(const char *kind, const char *fmt, va_list ap)
{
	char buf[1024];
	int n, saved = errno, fd = log_fd;

	if (fd < 0)
		return;
	n = snprintf(buf, sizeof(buf), "libdeadline: %s", kind);
	if (n < 0 || (size_t)n >= sizeof(buf))
		n = 0;
	{
		int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
		if (m < 0)
			m = 0;
		n += m;
	}
	if ((size_t)n > sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	/* One write; a short write to a log is not worth retrying. */
	if (REAL(write)(fd, buf, (size_t)n) < 0) {
		/* nothing sensible to do */
	}
	errno = saved;
}

void dl_log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit("warning: ", fmt, ap);
	va_end(ap);
}

void dl_log_event(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit("", fmt, ap);
	va_end(ap);
}

void dl_log_debugf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit("debug: ", fmt, ap);
	va_end(ap);
}
