/* log.h - the shim's only output: one line per event, "libdeadline:"
 * prefix, written with a single write(2) so lines from threads and
 * processes never interleave.  Every function preserves errno.
 */
#ifndef DL_LOG_H
#define DL_LOG_H

/* dl_log_init - read DEADLINE_LOG (unset/"stderr", "off", or a path opened
 * O_APPEND|O_CLOEXEC) and DEADLINE_DEBUG.  Idempotent. */
void dl_log_init(void);

/* dl_log_fd - the log's fd (-1 when off), so fd-closing wrappers can spare
 * it. */
int dl_log_fd(void);

/* dl_log_forget_fd - the program closed or replaced fd; if it was the
 * log file, stop using that number. */
void dl_log_forget_fd(int fd);

/* dl_log_warn - "libdeadline: warning: <msg>" (configuration trouble and
 * other things the user must fix). */
void dl_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* dl_log_event - "libdeadline: <logfmt fields>" for enforcement events. */
void dl_log_event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A field of an enforcement event; str == NULL means the number. */
struct dl_field {
	const char *key;
	const char *str;
	long long num;
};

/* dl_log_fields - one event line with time and pid first: logfmt
 * ("libdeadline: time=... pid=... key=value ...", values quoted when
 * needed) or, with DEADLINE_LOG_FORMAT=json, one JSON object per line. */
void dl_log_fields(const struct dl_field *f, int n);

extern int dl_log_debug_on;
void dl_log_debugf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* DL_DEBUG - off by default; DEADLINE_DEBUG=1 turns it on. */
#define DL_DEBUG(...)                                  \
	do {                                           \
		if (__builtin_expect(dl_log_debug_on, 0)) \
			dl_log_debugf(__VA_ARGS__);    \
	} while (0)

#endif
