/* log.h - the shim's only output: one line per event, "libdeadline:"
 * prefix, written with a single write(2) so lines from threads and
 * processes never interleave.
 *
 * Where lines go, and where they never go (issue items 5 and 9):
 * - DEADLINE_LOG=FILE: the file is opened without ever blocking (a FIFO
 *   with no reader fails at once and the log falls back to stderr), then
 *   moved to a high number of its own (F_DUPFD_CLOEXEC from the top of
 *   RLIMIT_NOFILE's soft limit, or from 4095 when that limit is higher:
 *   the kernel sizes the fd table, and copies it at each fork, up to the
 *   highest open number), so that it takes no number the program will use.  Its identity (st_dev, st_ino) is checked with
 *   fstat before every line: if the number no longer holds that file (the
 *   program closed it behind our back), the shim never writes to or closes
 *   that number again and falls back to the stderr rule.
 * - stderr: lines go to the stderr the program started with, and only
 *   while fd 2 still is that file (fstat before every line).  If the
 *   program closed fd 2 or put another file there (a socket it opened, a
 *   file it dup2()ed there), lines are dropped and counted
 *   (dl_log_dropped).  Daemons should use DEADLINE_LOG=FILE.
 * - Writes never block on the log file (O_NONBLOCK, ours); stderr keeps the
 *   program's own file flags (a stderr socket is written with MSG_DONTWAIT;
 *   a blocking stderr pipe without room for the line is not written).
 *   A line that cannot be written is dropped.  A FIFO/pipe whose reader went
 *   away costs the line, never a SIGPIPE.
 * - Rotation: before each line the path DEADLINE_LOG is looked up (stat);
 *   when it no longer names the open file (renamed or removed), it is
 *   opened again (created if missing) onto the same own number.  The file
 *   is written with O_APPEND, so `copytruncate` works as it is.
 * - Storms: event lines that name a rule are limited to DEADLINE_LOG_RATE
 *   per second per rule (unset or 0: no limit); those left out are
 *   counted and summed up in one "event=suppressed" line per rule once
 *   their second is over (at the next line of that rule, the next tick of
 *   live.c, or exit).
 *
 * Every function preserves errno.  The write path (dl_log_warn/conf/
 * fields/debugf) takes no lock and does not malloc; it calls only the
 * shim's REAL() functions and fstat/getpid/signal-mask system calls.
 */
#ifndef DL_LOG_H
#define DL_LOG_H

/* dl_log_init - read DEADLINE_LOG (unset/"stderr", "off", or a path),
 * DEADLINE_LOG_FORMAT and DEADLINE_DEBUG; record fd 2's identity; open and
 * move the log file.  Never blocks.  Idempotent; the first caller does the
 * work (engine_init calls it first thing). */
void dl_log_init(void);

/* dl_log_fd - the log file's own number, or -1 when the log is not a file
 * (stderr, off, or the file was given up), so that close_range/closefrom
 * can spare it.  Never 0..2 unless the move high failed. */
int dl_log_fd(void);

/* dl_log_owns - 1 if fd is the log file's own number (the program never
 * opened it: a wrapper may treat it as not open), else 0. */
int dl_log_owns(int fd);

/* dl_log_evict - the program is about to take number fd: call BEFORE the
 * real dup2/dup3 onto fd (target), or before the real close(fd).  If fd
 * is the log file's number, the log moves to another free high number
 * (F_DUPFD_CLOEXEC) and the old number is closed with REAL(close) (so the
 * program's close(fd) then fails with EBADF, as it would without the
 * shim); if no number is free, the shim stops using the file (stderr rule)
 * and still closes fd.  If fd is not the log's number, nothing happens:
 * never closes a number that isn't the log's own.  Waits (bounded, a few
 * yields at most) for log lines being written on other threads to finish.
 * In a vfork child (or any process that did not go through fork()'s atfork
 * handlers) it does nothing: the log state belongs to the parent. */
void dl_log_evict(int fd);

/* dl_log_forget_fd - the program closed or replaced fd, or is about to:
 * safe to call after the fact.  If fd was the log file's number, the shim
 * never writes to or closes that number again; if the number still holds
 * the log file, the log moves to a new high number first and keeps
 * working.  Never closes fd. */
void dl_log_forget_fd(int fd);

/* dl_log_fd_high - a close-on-exec copy of fd at a free high number (as
 * the log file's), or -1. */
int dl_log_fd_high(int fd);

/* dl_log_suppressed - event lines left out by the rate limit so far. */
unsigned long dl_log_suppressed(void);

/* dl_log_flush_suppressed - write the "suppressed" line of every rule
 * whose second is over (all: whatever its second, e.g. at exit). */
void dl_log_flush_suppressed(int all);

struct dl_field;
/* dl_log_set_tap - tap(f, n) sees every event line of dl_log_fields
 * before the rate limit or the destination can leave it out (set once,
 * at start; tap must keep the promises above: no lock, no malloc). */
void dl_log_set_tap(void (*tap)(const struct dl_field *f, int n));

/* dl_log_dropped - lines dropped so far: the stderr rule refused them (fd
 * 2 closed or replaced), or the write failed (full pipe, EAGAIN, EPIPE). */
unsigned long dl_log_dropped(void);

/* What a line looks like (issue "a newcomer's first hour"):
 * - logfmt (the default): "libdeadline: ..." as below;
 * - DEADLINE_LOG_FORMAT=json: EVERY line the shim writes is one JSON
 *   object on one line, starting with "time" (string) and "pid" (number)
 *   and naming its kind in "event": the enforcement events of
 *   dl_log_fields, and "warning", "debug", "config_error",
 *   "config_warning", "config_ignored", "config_exit" for the text
 *   lines below (their text in "msg").  Strings are escaped (control
 *   bytes as \u00XX, invalid UTF-8 as U+FFFD); numbers and booleans are
 *   bare.  A line too long for the buffer (1 KiB) is cut at a field
 *   or character boundary and still closed: it then ends with
 *   "truncated":true (logfmt: truncated=true). */

/* dl_log_warn - "libdeadline: warning: <msg>" (run-time trouble the user
 * should know about; JSON event "warning"). */
void dl_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Configuration trouble, found while the shim starts. */
enum dl_conf_kind {
	DL_CONF_ERROR,		/* "libdeadline: <text>" */
	DL_CONF_WARNING,	/* "libdeadline: warning: <text>" */
	DL_CONF_IGNORED,	/* "libdeadline: <text>": the outcome */
	DL_CONF_EXIT,		/* "libdeadline: <text>": DEADLINE_STRICT */
};

/* dl_log_conf - one line of configuration trouble.  It goes to the log
 * and, when the log is a file (DEADLINE_LOG=FILE) that is not the stderr
 * the program started with, a copy goes to that stderr too (same text,
 * same format; the stderr rule of log.h applies), so that a bad setting
 * is never reported only in a file nobody looks at.  DEADLINE_LOG=off
 * silences both.  source (may be NULL): the file name or variable the
 * text is about; a text that starts "SOURCE:LINE: " or "SOURCE: " has
 * that prefix split into the JSON fields "source" and "line". */
void dl_log_conf(enum dl_conf_kind kind, const char *source,
		 const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A field of an enforcement event: str == NULL means the number num;
 * str == DL_TRUE or DL_FALSE (the pointers, not any "true" text) means a
 * boolean; any other str is a string. */
struct dl_field {
	const char *key;
	const char *str;
	long long num;
};

extern const char dl_log_true[];
extern const char dl_log_false[];
#define DL_TRUE dl_log_true
#define DL_FALSE dl_log_false
#define DL_BOOL(b) ((b) ? dl_log_true : dl_log_false)

/* dl_log_fields - one event line with time and pid first: logfmt
 * ("libdeadline: time=... pid=... key=value ...", values quoted when
 * needed) or, with DEADLINE_LOG_FORMAT=json, one JSON object per line
 * (numbers and booleans bare, strings escaped). */
void dl_log_fields(const struct dl_field *f, int n);

/* dl_log_dest, dl_log_format - where the log goes ("stderr", "off", or
 * the file's path as given) and its format ("logfmt" or "json"), for the
 * DEADLINE_DEBUG start-up line.  Valid after dl_log_init. */
const char *dl_log_dest(void);
const char *dl_log_format(void);

extern int dl_log_debug_on;
/* dl_log_debugf - "libdeadline: debug: <msg>" (JSON event "debug"). */
void dl_log_debugf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* DL_DEBUG - off by default; DEADLINE_DEBUG=1 turns it on. */
#define DL_DEBUG(...)                                  \
	do {                                           \
		if (__builtin_expect(dl_log_debug_on, 0)) \
			dl_log_debugf(__VA_ARGS__);    \
	} while (0)

#endif
