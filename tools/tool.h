/* tool.h - what the deadline tool's files share.
 *
 *   deadline.c    usage, the options, `check`, and running the command
 *   status.c      `deadline status PID`
 *   libsearch.c   finding libdeadline.so, and looking at the command
 *                 (static, setuid, Go) before it is run
 *   outside*.c, diag.c, observe.c, suggest.c, report.c: their own
 *                 headers (outside.h, obsdata.h)
 */
#ifndef DL_TOOL_H
#define DL_TOOL_H

#include <limits.h>
#include <stddef.h>

#define LIBNAME "libdeadline.so"

enum {
	EXIT_USAGE = 125,
	EXIT_CANNOT_RUN = 126,
	EXIT_NOT_FOUND = 127,
	EXIT_CHECK_FAILED = 2,
};


/* The program's name in messages. */
extern const char *prog;

/* die_usage - "deadline: <message>" and a hint, exit 125;
 * die - the same without the hint (our own failure, not a misuse). */
void die_usage(const char *fmt, ...)
	__attribute__((noreturn, format(printf, 1, 2)));
void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* status.c: `deadline status PID ...`; returns the exit status. */
int cmd_status(int argc, char **argv);

/* libsearch.c */
#define MAX_CANDS 6
struct lib_search {
	char cand[MAX_CANDS][PATH_MAX];
	int err[MAX_CANDS];	/* why each was not used (errno) */
	int n;
	char self_err[128];	/* when /proc/self/exe could not be read */
};

/* find_library - libdeadline.so, relative to this program first, then
 * where it was installed; 0 with the canonical path in out, or -1 with s
 * listing every place looked at and why. */
int find_library(struct lib_search *s, char *out, size_t outlen);
void die_no_library(const struct lib_search *s) __attribute__((noreturn));
/* set_preload - lib at the front of LD_PRELOAD (kept once). */
void set_preload(const char *lib);
/* resolve_command - the file execvp would run: 0 with the path in out,
 * EACCES when a match is not executable, ENOENT otherwise. */
int resolve_command(const char *cmd, char *out, size_t outlen);
/* warn_unreachable - warn about programs the shim cannot act on. */
void warn_unreachable(const char *shown, const char *path);

#endif
