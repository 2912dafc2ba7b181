/* log_int.h - what log.c (where lines go) and log_line.c (what a line
 * is, how many get out) share; not API: the shim uses log.h.
 *
 * Everything here keeps the promises of log.h: no lock, no malloc, errno
 * preserved, callable from a signal handler.
 */
#ifndef DL_LOG_INT_H
#define DL_LOG_INT_H

#include <stddef.h>

extern int log_json;		/* DEADLINE_LOG_FORMAT=json */
extern const char *log_dest;	/* DEADLINE_LOG as given */
extern int log_off;		/* DEADLINE_LOG=off */

/* log_start - 1 if a line is to be formatted and written (initialising
 * the log on demand). */
int log_start(void);

/* Where log_write put a line. */
enum { WENT_STDERR, WENT_FILE };

/* log_write - one formatted line to the log file, else the stderr rule.
 * Returns WENT_FILE or WENT_STDERR. */
int log_write(const char *buf, size_t n);
/* log_write_conf - log_write, plus a copy on the starting stderr when
 * the line went to a file that is not that stderr. */
void log_write_conf(const char *buf, size_t n);
/* log_write_stderr - the stderr rule alone. */
void log_write_stderr(const char *buf, size_t n);
/* log_give_up_line - the warning that the log file was given up (on
 * stderr only). */
void log_give_up_line(int fd, const char *why);

/* log_rate_init - read DEADLINE_LOG_RATE (before the log is ready);
 * log_rate_bad - 1 (once) if it was malformed: the default is used. */
void log_rate_init(void);
int log_rate_bad(void);

#endif
