/* log.c - logging (see log.h). */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "real.h"

int dl_log_debug_on;
static int log_json;
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
	{
		const char *fmt = secure_getenv("DEADLINE_LOG_FORMAT");
		log_json = fmt && strcmp(fmt, "json") == 0;
		if (fmt && *fmt && !log_json && strcmp(fmt, "logfmt") != 0)
			dl_log_warn("DEADLINE_LOG_FORMAT=\"%.32s\" is not logfmt "
				    "or json; using logfmt", fmt);
	}
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

/* Appends to buf at *n (bounded by cap, always leaving room for "\n"). */
static void put(char *buf, size_t cap, size_t *n, const char *s, size_t len)
{
	if (*n + len > cap - 2)
		len = *n < cap - 2 ? cap - 2 - *n : 0;
	memcpy(buf + *n, s, len);
	*n += len;
}

static void put_str(char *buf, size_t cap, size_t *n, const char *s)
{
	put(buf, cap, n, s, strlen(s));
}

/* A value as logfmt (quoted when it has spaces, quotes or '=') or as a
 * JSON string; control characters are escaped in both. */
static void put_value(char *buf, size_t cap, size_t *n, const char *v)
{
	int quote = log_json || !*v || strpbrk(v, " \"=\\") != 0;

	if (quote)
		put(buf, cap, n, "\"", 1);
	for (const char *p = v; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == '"' || ch == '\\') {
			char esc[2] = { '\\', (char)ch };
			put(buf, cap, n, esc, 2);
		} else if (ch < 0x20) {
			char esc[8];
			int k = snprintf(esc, sizeof(esc), "\\u%04x", ch);
			put(buf, cap, n, esc, (size_t)k);
		} else {
			put(buf, cap, n, p, 1);
		}
	}
	if (quote)
		put(buf, cap, n, "\"", 1);
}

void dl_log_fields(const struct dl_field *f, int nf)
{
	char buf[1024], num[32], when[64];
	size_t n = 0;
	int saved = errno, fd = log_fd;
	struct timespec ts;
	struct tm tm;

	if (fd < 0)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (long)(ts.tv_nsec / 1000000) % 1000);
	put_str(buf, sizeof(buf), &n, log_json ? "{\"time\":" : "libdeadline: time=");
	put_value(buf, sizeof(buf), &n, when);
	snprintf(num, sizeof(num), "%d", (int)getpid());
	put_str(buf, sizeof(buf), &n, log_json ? ",\"pid\":" : " pid=");
	put_str(buf, sizeof(buf), &n, num);
	for (int i = 0; i < nf; i++) {
		put_str(buf, sizeof(buf), &n, log_json ? ",\"" : " ");
		put_str(buf, sizeof(buf), &n, f[i].key);
		put_str(buf, sizeof(buf), &n, log_json ? "\":" : "=");
		if (f[i].str) {
			put_value(buf, sizeof(buf), &n, f[i].str);
		} else {
			snprintf(num, sizeof(num), "%lld", f[i].num);
			put_str(buf, sizeof(buf), &n, num);
		}
	}
	if (log_json)
		put_str(buf, sizeof(buf), &n, "}");
	buf[n++] = '\n';
	if (REAL(write)(fd, buf, n) < 0) {
		/* nothing sensible to do */
	}
	errno = saved;
}
