/* conf_int.h - what the configuration reader's files share; not API.
 *
 * conf.h is the API.  Behind it the reader is split by job:
 *   conf_load.c    life cycle, reading the file, the text checks libconfig
 *                  does not make, libconfig's own syntax errors;
 *   conf_parse.c   the top level, `defaults`, rules, their match keys and
 *                  per-rule value keys;
 *   conf_faults.c  the `faults` groups;
 *   conf_check.c   the error list ("FILE:LINE: message"), line numbers,
 *                  "did you mean", quoting and escaping, the errno,
 *                  teardown and direction names;
 *   conf_rules.c   using a loaded configuration: env overrides, matching,
 *                  resolving, describing (needs only conf.h).
 *
 * Contract for everything declared here:
 *   - internal to shim/conf_*.c: the engine, tools and tests use conf.h;
 *     every name carries the confp_ prefix, everything else stays static;
 *   - it runs inside one conf_load()/conf_load_mem() call, on the caller's
 *     thread and on the caller's struct conf (through struct loader):
 *     no locks, no shared state, never prints, never exits;
 *   - problems are reported with confp_add_error() and never stop the
 *     load, so one pass finds every error in the file.
 */
#ifndef DL_CONF_INT_H
#define DL_CONF_INT_H

#include <libconfig.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

/* How much of a user-supplied string a message quotes. */
#define QUOTE_MAX 48
#define QBUF (QUOTE_MAX * 4 + 8)

/* One load in progress. */
struct loader {
	struct conf *c;
	const char *name;	/* file name shown in messages */
	const char *text;	/* the whole file, NUL-terminated */
};

/* ------------------------------------------------ conf_check.c: errors */

/* Appends "NAME:LINE: message" (or "NAME: message" when line is 0) to
 * L->c's error list, control bytes escaped; past CONF_MAX_ERRORS, or out
 * of memory, the message is only counted. */
void confp_add_error(struct loader *L, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Nonzero once any error was reported (kept or only counted). */
int confp_error_count(const struct loader *L);

/* The line libconfig recorded for s, 0 for NULL. */
unsigned confp_line_of(const config_setting_t *s);

/* The line of a string inside a list, corrected for libconfig stamping
 * the last element with the closing bracket's line. */
unsigned confp_elem_line(const struct loader *L, const config_setting_t *e);

/* The text of line `line` (1-based) of L->text and its length, or NULL. */
const char *confp_find_line(const struct loader *L, unsigned line,
			    size_t *len);

/* "a group", "an integer", ... for a CONFIG_TYPE_* value. */
const char *confp_type_name(int type);

/* Reports setting s as unknown in context `where` (e.g. " in rule"),
 * suggesting the nearest key of l1/l2 (either may be NULL). */
void confp_unknown_key(struct loader *L, const config_setting_t *s,
		       const char *where, const char *const *l1,
		       const char *const *l2);

/* The accepted errno name close enough to name to be a typo, or NULL. */
const char *confp_errno_hint(const char *name);

/* s (NULL = "") with control and non-ASCII bytes as \xNN and at most
 * QUOTE_MAX bytes, "..." when cut; buf holds QBUF bytes.  Returns buf. */
const char *confp_quote(char *buf, const char *s);

/* 1 when s is in the NULL-terminated list. */
int confp_in_list(const char *const *list, const char *s);

/* ---------------------------------------- conf_parse.c: keys and values */

/* The per-rule keys a rule or `defaults` may hold, and the keys only a
 * rule may hold (NULL-terminated). */
extern const char *const confp_value_keys[];
extern const char *const confp_match_keys[];

/* Value readers.  On success they return the value (or 0 with *ms set);
 * on bad input they report one error at the setting's line and return
 * NULL / -1.  They fail in no other way. */
int confp_is_int(const config_setting_t *s);
int confp_get_duration(struct loader *L, const config_setting_t *s,
		       const char *key, uint32_t *ms);
const char *confp_get_string(struct loader *L, const config_setting_t *s,
			     const char *key);

/* Dispatches the top-level settings of a parsed file into L->c. */
void confp_parse_root(struct loader *L, const config_setting_t *root);

/* ----------------------------------------------- conf_faults.c: faults */

/* `faults = { ... };` or `faults = ( { ... }, ... );` into v->faults and
 * v->nfaults, setting CONF_SET_FAULTS; every problem is reported (and so
 * fails the load). */
void confp_parse_faults(struct loader *L, const config_setting_t *s,
			struct conf_values *v);

#endif
