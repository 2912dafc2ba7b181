/* conf_check.c - the configuration reader's messages (see conf_int.h).
 *
 * Builds the error list of struct conf: "FILE:LINE: message", one
 * printable line each (user text quoted with control and non-ASCII bytes
 * escaped, so a hostile file can neither split a message nor forge a log
 * line), line numbers corrected where libconfig's are off, and "did you
 * mean" hints from an edit distance over the known keys.  Also the names
 * the file uses for errno values, teardowns and directions (public:
 * conf_errno_name, conf_errno_parse, conf_teardown_name,
 * conf_direction_name, conf_edit_distance).
 *
 * The public functions are pure (no allocation, no locks, errno
 * untouched).  confp_add_error allocates; it runs inside a load, on the
 * caller's struct conf only.
 */
#include "conf_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* File names are quoted more generously: they are the user's own. */
#define NAME_QUOTE_MAX 240

/* ------------------------------------------------------------- tables */

static const struct {
	const char *name;
	int value;
} errno_table[] = {
	{ "ETIMEDOUT", ETIMEDOUT },
	{ "ECONNRESET", ECONNRESET },
	{ "ECONNABORTED", ECONNABORTED },
	{ "ECONNREFUSED", ECONNREFUSED },
	{ "EHOSTUNREACH", EHOSTUNREACH },
	{ "ENETUNREACH", ENETUNREACH },
	{ "ENETDOWN", ENETDOWN },
	{ "ENETRESET", ENETRESET },
	{ "EHOSTDOWN", EHOSTDOWN },
	{ "EPIPE", EPIPE },
	{ "EIO", EIO },
	{ "EAGAIN", EAGAIN },
};
#define N_ERRNOS (sizeof(errno_table) / sizeof(errno_table[0]))

/* ---------------------------------------------------------- utilities */

int confp_in_list(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (strcmp(*list, s) == 0)
			return 1;
	return 0;
}

/* Copies at most QUOTE_MAX bytes of s into buf with control and non-ASCII
 * bytes escaped, so that a message stays one printable line whatever the
 * file holds.  Returns buf. */
static const char *quote_n(char *buf, const char *s, size_t max)
{
	size_t o = 0, i;

	if (!s)
		s = "";
	for (i = 0; s[i] && i < max; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
			buf[o++] = (char)ch;
		} else {
			snprintf(buf + o, 5, "\\x%02x", ch);
			o += 4;
		}
	}
	if (s[i]) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

/* buf must hold QBUF bytes. */
const char *confp_quote(char *buf, const char *s)
{
	return quote_n(buf, s, QUOTE_MAX);
}

static unsigned char fold_ch(char c)
{
	unsigned char u = (unsigned char)c;
	return (u >= 'A' && u <= 'Z') ? (unsigned char)(u + 32) : u;
}

unsigned conf_edit_distance(const char *a, const char *b, unsigned cap)
{
	/* Optimal string alignment: Levenshtein plus adjacent swaps, the
	 * commonest typo ("hots" for "host").  Three rows over b; known keys
	 * are short, and any string over this bound is far from all of
	 * them anyway. */
	enum { MAXLEN = 64 };
	unsigned r0[MAXLEN + 1], r1[MAXLEN + 1], r2[MAXLEN + 1];
	unsigned *pp = r0, *prev = r1, *cur = r2;
	size_t la, lb;

	if (!a || !b)
		return cap;
	la = strnlen(a, MAXLEN + 1);
	lb = strnlen(b, MAXLEN + 1);
	if (la > MAXLEN || lb > MAXLEN)
		return cap;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		unsigned best, *t;

		cur[0] = (unsigned)i;
		best = cur[0];
		for (size_t j = 1; j <= lb; j++) {
			unsigned d = prev[j - 1] +
				     (fold_ch(a[i - 1]) != fold_ch(b[j - 1]));
			if (prev[j] + 1 < d)
				d = prev[j] + 1;
			if (cur[j - 1] + 1 < d)
				d = cur[j - 1] + 1;
			if (i > 1 && j > 1 &&
			    fold_ch(a[i - 1]) == fold_ch(b[j - 2]) &&
			    fold_ch(a[i - 2]) == fold_ch(b[j - 1]) &&
			    pp[j - 2] + 1 < d)
				d = pp[j - 2] + 1;
			cur[j] = d;
			if (d < best)
				best = d;
		}
		/* Later rows never dip below this row's minimum (a swap
		 * reaches one row further back, which is at most one lower,
		 * and costs one), so past cap the answer is settled. */
		if (best >= cap + 1)
			return cap;
		t = pp;
		pp = prev;
		prev = cur;
		cur = t;
	}
	return prev[lb] < cap ? prev[lb] : cap;
}

/* The closest candidate to s that is close enough to be a typo, or NULL.
 * Up to two edits for names of five bytes or more, one below that. */
static const char *nearest(const char *s, const char *const *l1,
			   const char *const *l2)
{
	const char *const *lists[2] = { l1, l2 };
	const char *best = NULL;
	unsigned limit = strnlen(s, 5) >= 5 ? 3 : 2, bestd = limit;

	for (int k = 0; k < 2; k++) {
		if (!lists[k])
			continue;
		for (const char *const *p = lists[k]; *p; p++) {
			unsigned d = conf_edit_distance(s, *p, limit);
			if (d < bestd) {
				bestd = d;
				best = *p;
			}
		}
	}
	if (best)
		return best;
	/* Shortened or spelled-out keys ("idle", "maximum") are too far for
	 * the edit distance but obvious to a reader: accept a shared prefix
	 * of at least three bytes when it covers the shorter name. */
	for (int k = 0; k < 2; k++) {
		if (!lists[k])
			continue;
		for (const char *const *p = lists[k]; *p; p++) {
			size_t ls = strnlen(s, 65), lp = strlen(*p);
			size_t m = ls < lp ? ls : lp;
			if (m >= 3 && strncasecmp(s, *p, m) == 0)
				return *p;
		}
	}
	return NULL;
}

const char *conf_errno_name(int err)
{
	for (size_t i = 0; i < N_ERRNOS; i++)
		if (errno_table[i].value == err)
			return errno_table[i].name;
	return NULL;
}

int conf_errno_parse(const char *name)
{
	if (!name)
		return -1;
	for (size_t i = 0; i < N_ERRNOS; i++)
		if (strcmp(errno_table[i].name, name) == 0)
			return errno_table[i].value;
	return -1;
}

const char *confp_errno_hint(const char *name)
{
	const char *names[N_ERRNOS + 1];

	for (size_t i = 0; i < N_ERRNOS; i++)
		names[i] = errno_table[i].name;
	names[N_ERRNOS] = NULL;
	return nearest(name, names, NULL);
}

const char *conf_teardown_name(enum conf_teardown t)
{
	return t == CONF_TEARDOWN_CLOSE ? "close" : "reset";
}

const char *conf_direction_name(enum conf_direction d)
{
	switch (d) {
	case CONF_DIR_OUTBOUND:
		return "outbound";
	case CONF_DIR_INBOUND:
		return "inbound";
	default:
		return "any";
	}
}

/* --------------------------------------------------------------- errors */

/* User text quoted in a message must not break it into several lines (nor
 * forge log lines, since the shim logs these): control bytes become \xNN.
 * out holds at least 4 * strlen(in) + 1 bytes or is truncated. */
static void escape_controls(const char *in, char *out, size_t cap)
{
	size_t n = 0;

	for (; *in && n + 5 < cap; in++) {
		unsigned char ch = (unsigned char)*in;
		if (ch < 0x20 || ch == 0x7f)
			n += (size_t)snprintf(out + n, cap - n, "\\x%02x", ch);
		else
			out[n++] = (char)ch;
	}
	out[n] = 0;
}

/* Appends "NAME:LINE: message" (or "NAME: message" when line is 0) to the
 * error list.  Past CONF_MAX_ERRORS, or when memory runs out, the message
 * is only counted: conf_load's -1 does not depend on keeping it. */
void confp_add_error(struct loader *L, unsigned line, const char *fmt, ...)
{
	struct conf *c = L->c;
	char raw[512], msg[4 * 512 + 1], qn[NAME_QUOTE_MAX * 4 + 8];
	char *s;
	int n;
	va_list ap;

	if (c->nerrors >= CONF_MAX_ERRORS) {
		c->errors_dropped++;
		return;
	}
	if (!c->errors) {
		c->errors = calloc(CONF_MAX_ERRORS, sizeof(*c->errors));
		if (!c->errors) {
			c->errors_dropped++;
			return;
		}
	}
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	escape_controls(raw, msg, sizeof(msg));
	quote_n(qn, L->name, NAME_QUOTE_MAX);
	if (line)
		n = snprintf(NULL, 0, "%s:%u: %s", qn, line, msg);
	else
		n = snprintf(NULL, 0, "%s: %s", qn, msg);
	s = n >= 0 ? malloc((size_t)n + 1) : NULL;
	if (!s) {
		c->errors_dropped++;
		return;
	}
	if (line)
		snprintf(s, (size_t)n + 1, "%s:%u: %s", qn, line, msg);
	else
		snprintf(s, (size_t)n + 1, "%s: %s", qn, msg);
	c->errors[c->nerrors++] = s;
}

int confp_error_count(const struct loader *L)
{
	return L->c->nerrors + L->c->errors_dropped > 0;
}

unsigned confp_line_of(const config_setting_t *s)
{
	return s ? config_setting_source_line(s) : 0;
}

/* The text of line `line` (1-based) and its length, or NULL. */
const char *confp_find_line(const struct loader *L, unsigned line, size_t *len)
{
	const char *p = L->text;

	if (!p || !line)
		return NULL;
	for (unsigned l = 1; l < line; l++) {
		p = strchr(p, '\n');
		if (!p)
			return NULL;
		p++;
	}
	*len = strcspn(p, "\n");
	return p;
}

/* 1 when line holds the string literal "s" (no escapes in s). */
static int line_has_literal(const char *line, size_t len, const char *s)
{
	size_t n = strlen(s);

	for (size_t i = 0; i + n + 2 <= len; i++)
		if (line[i] == '"' && memcmp(line + i + 1, s, n) == 0 &&
		    line[i + 1 + n] == '"')
			return 1;
	return 0;
}

/* Line of a string inside a list.  libconfig stamps a list element with
 * the line of the token after it, so the last element of a list written
 * one per line is reported on the line of the closing bracket.  Look back
 * (not beyond the list's own line, nor more than a few KiB: a hostile file
 * must not make each error cost a scan of the whole text) for the line
 * that holds the literal; keep libconfig's line when in doubt. */
unsigned confp_elem_line(const struct loader *L, const config_setting_t *e)
{
	enum { WINDOW = 4096, LITERAL_MAX = 64 };
	const config_setting_t *parent = config_setting_parent(e);
	unsigned at = confp_line_of(e), stop, l;
	const char *s, *lo, *ls, *le;
	size_t len;

	/* Past the cap the message is only counted: skip the work. */
	if (!parent || L->c->nerrors >= CONF_MAX_ERRORS ||
	    config_setting_type(e) != CONFIG_TYPE_STRING)
		return at;
	s = config_setting_get_string(e);
	if (!s || strpbrk(s, "\"\\") || strnlen(s, LITERAL_MAX + 1) >
	    LITERAL_MAX)
		return at;
	stop = confp_line_of(parent);
	ls = confp_find_line(L, at, &len);
	if (!ls)
		return at;
	lo = (size_t)(ls - L->text) > WINDOW ? ls - WINDOW : L->text;
	le = ls + (len > WINDOW ? WINDOW : len);
	for (l = at;; l--) {
		if (line_has_literal(ls, (size_t)(le - ls), s))
			return l;
		if (ls <= lo || l <= stop || l <= 1)
			break;
		le = ls - 1;		/* the '\n' ending the previous line */
		ls = le;
		while (ls > lo && ls[-1] != '\n')
			ls--;
	}
	return at;
}

const char *confp_type_name(int type)
{
	switch (type) {
	case CONFIG_TYPE_GROUP:
		return "a group";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		return "an integer";
	case CONFIG_TYPE_FLOAT:
		return "a float";
	case CONFIG_TYPE_STRING:
		return "a string";
	case CONFIG_TYPE_BOOL:
		return "a boolean";
	case CONFIG_TYPE_ARRAY:
		return "an array";
	case CONFIG_TYPE_LIST:
		return "a list";
	default:
		return "empty";
	}
}

/* Reports setting s as unknown in context `where`, suggesting the nearest
 * key of l1/l2 when one is close enough to be a typo. */
void confp_unknown_key(struct loader *L, const config_setting_t *s,
		       const char *where, const char *const *l1,
		       const char *const *l2)
{
	const char *name = config_setting_name(s);
	const char *hint = nearest(name ? name : "", l1, l2);
	char qn[QBUF];

	confp_quote(qn, name);
	if (hint)
		confp_add_error(L, confp_line_of(s), "unknown key '%s'%s; did "
				"you mean '%s'?", qn, where, hint);
	else
		confp_add_error(L, confp_line_of(s), "unknown key '%s'%s", qn,
				where);
}
