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
 *   program's own file flags (a stderr socket is written with MSG_DONTWAIT).
 *   A line that cannot be written is dropped.  A FIFO/pipe whose reader went
 *   away costs the line, never a SIGPIPE.
 *
 * Every function preserves errno.  The write path (dl_log_warn/event/
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

/* dl_log_dropped - lines dropped so far: the stderr rule refused them (fd
 * 2 closed or replaced), or the write failed (full pipe, EAGAIN, EPIPE). */
unsigned long dl_log_dropped(void);

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
