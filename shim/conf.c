/* conf.c - load, check and match per-host rules (see conf.h). */
#include "conf.h"

#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* How much of a user-supplied string a message quotes. */
#define QUOTE_MAX 48
#define QBUF (QUOTE_MAX * 4 + 8)
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

enum key_kind { K_TOP, K_VALUE, K_MATCH };

/* Every key the file may contain, by where it may appear. */
static const char *const top_keys[] = { "defaults", "rules", "seed", NULL };
static const char *const value_keys[] = {
	"connect_timeout", "first_byte_timeout", "idle_timeout",
	"request_timeout", "errno", "teardown", "dns_timeout",
	"connect_retries", "retry_backoff", "faults", NULL
};
static const char *const match_keys[] = {
	"host", "cidr", "port", "direction", "name", NULL
};
static const char *const backoff_keys[] = { "base", "max", NULL };

/* Index i of value_keys[] for i < DL_PH_COUNT is the phase i limit. */
static const char *const limit_keys[DL_PH_COUNT] = {
	"connect_timeout", "first_byte_timeout", "idle_timeout",
	"request_timeout",
};

/* ---------------------------------------------------------- utilities */

static int in_list(const char *const *list, const char *s)
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
static const char *quote(char *buf, const char *s)
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

struct loader {
	struct conf *c;
	const char *name;	/* file name shown in messages */
	const char *text;	/* the whole file, NUL-terminated */
};

static void add_error(struct loader *L, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

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
static void add_error(struct loader *L, unsigned line, const char *fmt, ...)
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

static int error_count(const struct loader *L)
{
	return L->c->nerrors + L->c->errors_dropped > 0;
}

static unsigned line_of(const config_setting_t *s)
{
	return s ? config_setting_source_line(s) : 0;
}

/* The text of line `line` (1-based) and its length, or NULL. */
static const char *find_line(const struct loader *L, unsigned line,
			     size_t *len)
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
static unsigned elem_line(const struct loader *L, const config_setting_t *e)
{
	enum { WINDOW = 4096, LITERAL_MAX = 64 };
	const config_setting_t *parent = config_setting_parent(e);
	unsigned at = line_of(e), stop, l;
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
	stop = line_of(parent);
	ls = find_line(L, at, &len);
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

static const char *type_name(int type)
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
static void unknown_key(struct loader *L, const config_setting_t *s,
			const char *where, const char *const *l1,
			const char *const *l2)
{
	const char *name = config_setting_name(s);
	const char *hint = nearest(name ? name : "", l1, l2);
	char qn[QBUF];

	quote(qn, name);
	if (hint)
		add_error(L, line_of(s), "unknown key '%s'%s; did you mean "
			  "'%s'?", qn, where, hint);
	else
		add_error(L, line_of(s), "unknown key '%s'%s", qn, where);
}

/* --------------------------------------------------------------- values
 *
 * The readers below share one contract: on success they store the value
 * and set its CONF_SET_* bit (or return it); on bad input they report one
 * error at the setting's line and leave the target untouched.  None of
 * them fails in any other way, so loading always goes on to the next key
 * and every error in the file is found in one pass.
 */

static int is_int(const config_setting_t *s)
{
	int t = config_setting_type(s);
	return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
}

/* Reads a duration: a string for policy_parse_duration, or an integer
 * number of milliseconds.  Returns 0 and sets *ms, or -1 after reporting. */
static int get_duration(struct loader *L, const config_setting_t *s,
			const char *key, uint32_t *ms)
{
	int t = config_setting_type(s);
	char qv[QBUF];

	if (is_int(s)) {
		long long v = config_setting_get_int64(s);
		if (v < 0 || v > (long long)DL_DURATION_MAX_MS) {
			add_error(L, line_of(s), "'%s' = %lld is out of range "
				  "0..%u (milliseconds, at most 30 days)",
				  key, v, DL_DURATION_MAX_MS);
			return -1;
		}
		*ms = (uint32_t)v;
		return 0;
	}
	if (t == CONFIG_TYPE_STRING) {
		const char *v = config_setting_get_string(s);
		if (policy_parse_duration(v, ms) == 0)
			return 0;
		add_error(L, line_of(s), "bad duration '%s' for '%s' (use e.g. "
			  "\"250ms\", \"2s\", \"1m30s\", \"1.5s\", or integer "
			  "milliseconds; at most 30 days)", quote(qv, v), key);
		return -1;
	}
	add_error(L, line_of(s), "'%s' must be a duration string like \"2s\" "
		  "or integer milliseconds, not %s%s", key, type_name(t),
		  t == CONFIG_TYPE_FLOAT ? " (write \"1.5s\" or 1500)" : "");
	return -1;
}

/* The string value of s, or NULL after reporting a type error. */
static const char *get_string(struct loader *L, const config_setting_t *s,
			      const char *key)
{
	int t = config_setting_type(s);

	if (t == CONFIG_TYPE_STRING)
		return config_setting_get_string(s);
	add_error(L, line_of(s), "'%s' must be a string, not %s", key,
		  type_name(t));
	return NULL;
}

static void parse_errno(struct loader *L, const config_setting_t *s,
			struct conf_values *v)
{
	const char *name = get_string(L, s, "errno");
	const char *hint = NULL;
	char qv[QBUF];
	int e;

	if (!name)
		return;
	e = conf_errno_parse(name);
	if (e >= 0) {
		v->err = e;
		v->set |= CONF_SET_ERRNO;
		return;
	}
	{
		const char *names[N_ERRNOS + 1];
		for (size_t i = 0; i < N_ERRNOS; i++)
			names[i] = errno_table[i].name;
		names[N_ERRNOS] = NULL;
		hint = nearest(name, names, NULL);
	}
	quote(qv, name);
	if (hint)
		add_error(L, line_of(s), "unknown errno name '%s'; did you "
			  "mean '%s'?", qv, hint);
	else
		add_error(L, line_of(s), "unknown errno name '%s' (accepted: "
			  "ETIMEDOUT ECONNRESET ECONNABORTED ECONNREFUSED "
			  "EHOSTUNREACH ENETUNREACH ENETDOWN ENETRESET "
			  "EHOSTDOWN EPIPE EIO EAGAIN)", qv);
}

static void parse_teardown(struct loader *L, const config_setting_t *s,
			   struct conf_values *v)
{
	const char *t = get_string(L, s, "teardown");
	char qv[QBUF];

	if (!t)
		return;
	if (strcmp(t, "reset") == 0) {
		v->teardown = CONF_TEARDOWN_RESET;
	} else if (strcmp(t, "close") == 0) {
		v->teardown = CONF_TEARDOWN_CLOSE;
	} else {
		add_error(L, line_of(s), "bad teardown '%s': expected "
			  "\"reset\" or \"close\"", quote(qv, t));
		return;
	}
	v->set |= CONF_SET_TEARDOWN;
}

static void parse_retries(struct loader *L, const config_setting_t *s,
			  struct conf_values *v)
{
	long long n;

	if (!is_int(s)) {
		add_error(L, line_of(s), "'connect_retries' must be an "
			  "integer 0..%d, not %s", CONF_MAX_RETRIES,
			  type_name(config_setting_type(s)));
		return;
	}
	n = config_setting_get_int64(s);
	if (n < 0 || n > CONF_MAX_RETRIES) {
		add_error(L, line_of(s), "'connect_retries' = %lld is out of "
			  "range 0..%d", n, CONF_MAX_RETRIES);
		return;
	}
	v->connect_retries = (uint32_t)n;
	v->set |= CONF_SET_RETRIES;
}

static void parse_backoff(struct loader *L, const config_setting_t *s,
			  struct conf_values *v)
{
	int n, ok = 1;
	uint32_t ms;

	if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
		add_error(L, line_of(s), "'retry_backoff' must be a group "
			  "{ base = \"100ms\"; max = \"5s\"; }, not %s",
			  type_name(config_setting_type(s)));
		return;
	}
	n = config_setting_length(s);
	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(s, i);
		const char *k = config_setting_name(m);

		if (k && strcmp(k, "base") == 0) {
			if (get_duration(L, m, "retry_backoff.base", &ms) < 0) {
				ok = 0;
				continue;
			}
			v->backoff_base_ms = ms;
			v->set |= CONF_SET_BACKOFF_BASE;
		} else if (k && strcmp(k, "max") == 0) {
			if (get_duration(L, m, "retry_backoff.max", &ms) < 0) {
				ok = 0;
				continue;
			}
			v->backoff_max_ms = ms;
			v->set |= CONF_SET_BACKOFF_MAX;
		} else {
			unknown_key(L, m, " in 'retry_backoff'", backoff_keys,
				    NULL);
		}
	}
	if (ok && (v->set & CONF_SET_BACKOFF_BASE) &&
	    (v->set & CONF_SET_BACKOFF_MAX) &&
	    v->backoff_base_ms > v->backoff_max_ms)
		add_error(L, line_of(s), "'retry_backoff' base (%u ms) is "
			  "greater than max (%u ms)", v->backoff_base_ms,
			  v->backoff_max_ms);
}

/* --------------------------------------------------------------- faults */

static const char *const fault_keys[] = {
	/* faults */
	"latency", "bandwidth", "refuse", "unreachable", "blackhole", "reset",
	"eof", "error", "slice", "slow_close", "dns",
	/* their parameters */
	"jitter", "on", "direction", "delay", "then", "then_after", "spurious",
	/* triggers */
	"probability", "nth", "after_bytes", "after", "for", "times", NULL
};

/* A boolean switch (`refuse = true;`).  Returns 1 on, 0 off, -1 bad. */
static int get_switch(struct loader *L, const config_setting_t *s,
		      const char *key)
{
	if (config_setting_type(s) == CONFIG_TYPE_BOOL)
		return config_setting_get_bool(s) ? 1 : 0;
	add_error(L, line_of(s), "'%s' must be true or false, not %s", key,
		  type_name(config_setting_type(s)));
	return -1;
}

/* One of words[] (value i returned as vals[i]), or -1 after reporting. */
static int get_word(struct loader *L, const config_setting_t *s,
		    const char *key, const char *const *words, const int *vals)
{
	const char *v = get_string(L, s, key);
	char qv[QBUF], list[160];
	size_t o = 0;

	if (!v)
		return -1;
	for (int i = 0; words[i]; i++)
		if (strcmp(v, words[i]) == 0)
			return vals[i];
	list[0] = 0;
	for (int i = 0; words[i] && o < sizeof(list); i++) {
		int n = snprintf(list + o, sizeof(list) - o, "%s\"%s\"",
				 i ? (words[i + 1] ? ", " : " or ") : "",
				 words[i]);
		o = n < 0 ? sizeof(list) : o + (size_t)n;
	}
	add_error(L, line_of(s), "bad %s '%s': expected %s", key,
		  quote(qv, v), list);
	return -1;
}

static int get_count(struct loader *L, const config_setting_t *s,
		     const char *key, long long lo, long long hi, long long *out)
{
	long long n;

	if (!is_int(s)) {
		add_error(L, line_of(s), "'%s' must be an integer %lld..%lld, "
			  "not %s", key, lo, hi,
			  type_name(config_setting_type(s)));
		return -1;
	}
	n = config_setting_get_int64(s);
	if (n < lo || n > hi) {
		add_error(L, line_of(s), "'%s' = %lld is out of range "
			  "%lld..%lld", key, n, lo, hi);
		return -1;
	}
	*out = n;
	return 0;
}

static int get_chance(struct loader *L, const config_setting_t *s,
		      const char *key, double *out)
{
	double p;

	if (config_setting_type(s) == CONFIG_TYPE_FLOAT)
		p = config_setting_get_float(s);
	else if (is_int(s))
		p = (double)config_setting_get_int64(s);
	else {
		add_error(L, line_of(s), "'%s' must be a number 0..1 (e.g. "
			  "0.3), not %s", key,
			  type_name(config_setting_type(s)));
		return -1;
	}
	if (!(p >= 0.0 && p <= 1.0)) {
		add_error(L, line_of(s), "'%s' = %g is out of range 0..1", key,
			  p);
		return -1;
	}
	*out = p;
	return 0;
}

/* Which keys a group wrote, to check that parameters have their fault. */
enum {
	FS_JITTER = 1, FS_ON = 2, FS_DELAY = 4, FS_THEN = 8, FS_THEN_AFTER = 16,
	FS_SPURIOUS = 32, FS_DIRECTION = 64,
};

static void parse_fault_key(struct loader *L, const config_setting_t *m,
			    const char *k, struct fault_spec *f,
			    unsigned *seen)
{
	static const char *const on_w[] = { "first_byte", "connect", "every",
					    NULL };
	static const int on_v[] = { FON_FIRST_BYTE, FON_CONNECT, FON_EVERY };
	static const char *const dir_w[] = { "upstream", "downstream", "both",
					     NULL };
	static const int dir_v[] = { FDIR_UP, FDIR_DOWN, FDIR_BOTH };
	static const char *const bh_w[] = { "data", "connect", NULL };
	static const int bh_v[] = { FBH_DATA, FBH_CONNECT };
	static const char *const then_w[] = { "reset", "eof", NULL };
	static const int then_v[] = { FTHEN_RESET, FTHEN_EOF };
	static const char *const dns_w[] = { "nxdomain", "again", "delay",
					     NULL };
	static const int dns_v[] = { FDNS_NXDOMAIN, FDNS_AGAIN, FDNS_DELAY };
	static const char *const unr_w[] = { "EHOSTUNREACH", "ENETUNREACH",
					     NULL };
	static const int unr_v[] = { EHOSTUNREACH, ENETUNREACH };
	int kind = fault_kind_parse(k), t = config_setting_type(m), w, on;
	uint32_t ms;
	long long n;
	char qv[QBUF];

	switch (kind) {
	case FK_LATENCY:
		if (get_duration(L, m, k, &ms) == 0) {
			f->latency_ms = ms;
			f->kinds |= FK_BIT(kind);
		}
		return;
	case FK_SLOW_CLOSE:
		if (get_duration(L, m, k, &ms) == 0) {
			f->slow_close_ms = ms;
			f->kinds |= FK_BIT(kind);
		}
		return;
	case FK_BANDWIDTH: {
		uint64_t rate;
		if (is_int(m) && config_setting_get_int64(m) > 0) {
			f->rate = (uint64_t)config_setting_get_int64(m);
		} else if (t == CONFIG_TYPE_STRING &&
			   fault_parse_rate(config_setting_get_string(m),
					    &rate) == 0) {
			f->rate = rate;
		} else {
			add_error(L, line_of(m), "bad bandwidth%s%s%s: use "
				  "bytes per second, e.g. \"100KB\", "
				  "\"1.5MB/s\", \"64KiB\", \"800kbit\" or "
				  "an integer", t == CONFIG_TYPE_STRING ?
				  " '" : "", t == CONFIG_TYPE_STRING ?
				  quote(qv, config_setting_get_string(m)) : "",
				  t == CONFIG_TYPE_STRING ? "'" : "");
			return;
		}
		f->kinds |= FK_BIT(kind);
		return;
	}
	case FK_REFUSE:
	case FK_RESET:
	case FK_EOF:
		if ((on = get_switch(L, m, k)) > 0)
			f->kinds |= FK_BIT(kind);
		return;
	case FK_UNREACHABLE:
		if (t == CONFIG_TYPE_BOOL) {
			if (config_setting_get_bool(m)) {
				f->unreach_err = EHOSTUNREACH;
				f->kinds |= FK_BIT(kind);
			}
		} else if ((w = get_word(L, m, k, unr_w, unr_v)) >= 0) {
			f->unreach_err = w;
			f->kinds |= FK_BIT(kind);
		}
		return;
	case FK_BLACKHOLE:
		if (t == CONFIG_TYPE_BOOL) {
			if (config_setting_get_bool(m)) {
				f->bh = FBH_DATA;
				f->kinds |= FK_BIT(kind);
			}
		} else if ((w = get_word(L, m, k, bh_w, bh_v)) >= 0) {
			f->bh = (uint8_t)w;
			f->kinds |= FK_BIT(kind);
		}
		return;
	case FK_ERROR: {
		const char *v = get_string(L, m, k);
		int e = v ? conf_errno_parse(v) : -1;
		if (!v)
			return;
		if (e < 0) {
			add_error(L, line_of(m), "unknown errno name '%s' for "
				  "'error' (accepted: ETIMEDOUT ECONNRESET "
				  "ECONNABORTED ECONNREFUSED EHOSTUNREACH "
				  "ENETUNREACH ENETDOWN ENETRESET EHOSTDOWN "
				  "EPIPE EIO EAGAIN)", quote(qv, v));
			return;
		}
		f->err = e;
		f->kinds |= FK_BIT(kind);
		return;
	}
	case FK_SLICE:
		if (get_count(L, m, k, 1, 1 << 30, &n) == 0) {
			f->slice = (uint32_t)n;
			f->kinds |= FK_BIT(kind);
		}
		return;
	case FK_DNS:
		if ((w = get_word(L, m, k, dns_w, dns_v)) >= 0) {
			f->dns = (uint8_t)w;
			f->kinds |= FK_BIT(kind);
		}
		return;
	default:
		break;
	}
	if (strcmp(k, "jitter") == 0) {
		if (get_duration(L, m, k, &ms) == 0)
			f->jitter_ms = ms;
		*seen |= FS_JITTER;
	} else if (strcmp(k, "on") == 0) {
		if ((w = get_word(L, m, k, on_w, on_v)) >= 0)
			f->on = (uint8_t)w;
		*seen |= FS_ON;
	} else if (strcmp(k, "direction") == 0) {
		if ((w = get_word(L, m, k, dir_w, dir_v)) >= 0)
			f->dir = (uint8_t)w;
		*seen |= FS_DIRECTION;
	} else if (strcmp(k, "delay") == 0) {
		if (get_duration(L, m, k, &ms) == 0)
			f->delay_ms = ms;
		*seen |= FS_DELAY;
	} else if (strcmp(k, "then") == 0) {
		if ((w = get_word(L, m, k, then_w, then_v)) >= 0)
			f->then = (uint8_t)w;
		*seen |= FS_THEN;
	} else if (strcmp(k, "then_after") == 0) {
		if (get_duration(L, m, k, &ms) == 0)
			f->then_after_ms = ms;
		*seen |= FS_THEN_AFTER;
	} else if (strcmp(k, "spurious") == 0) {
		get_chance(L, m, k, &f->spurious);
		*seen |= FS_SPURIOUS;
	} else if (strcmp(k, "probability") == 0) {
		get_chance(L, m, k, &f->probability);
	} else if (strcmp(k, "nth") == 0) {
		if (get_count(L, m, k, 1, UINT32_MAX, &n) == 0)
			f->nth = (uint32_t)n;
	} else if (strcmp(k, "after_bytes") == 0) {
		if (get_count(L, m, k, 0, (long long)1 << 50, &n) == 0)
			f->after_bytes = (uint64_t)n;
	} else if (strcmp(k, "after") == 0) {
		if (get_duration(L, m, k, &ms) == 0)
			f->after_ms = ms;
	} else if (strcmp(k, "for") == 0) {
		if (get_duration(L, m, k, &ms) == 0)
			f->for_ms = ms;
	} else if (strcmp(k, "times") == 0) {
		if (get_count(L, m, k, 1, UINT32_MAX, &n) == 0)
			f->times = (uint32_t)n;
	} else if (in_list(match_keys, k) || in_list(value_keys, k)) {
		add_error(L, line_of(m), "'%s' belongs in the rule, not in "
			  "'faults'", k);
	} else {
		unknown_key(L, m, " in 'faults'", fault_keys, match_keys);
	}
}

/* A parameter written without the fault it belongs to is a mistake the
 * user should hear about, not a silent no-op. */
static void check_fault_group(struct loader *L, const config_setting_t *g,
			      const struct fault_spec *f, unsigned seen)
{
	unsigned line = line_of(g);

	if (!f->kinds) {
		add_error(L, line, "fault group names no fault (one of latency, "
			  "bandwidth, refuse, unreachable, blackhole, reset, "
			  "eof, error, slice, slow_close, dns)");
		return;
	}
	if ((seen & (FS_JITTER | FS_ON)) && !(f->kinds & FK_BIT(FK_LATENCY)))
		add_error(L, line, "'%s' belongs to 'latency', which this "
			  "fault group does not set",
			  (seen & FS_JITTER) ? "jitter" : "on");
	if ((seen & FS_DELAY) &&
	    !(f->kinds & (FK_BIT(FK_REFUSE) | FK_BIT(FK_UNREACHABLE))) &&
	    !((f->kinds & FK_BIT(FK_DNS)) && f->dns == FDNS_DELAY))
		add_error(L, line, "'delay' belongs to 'refuse', 'unreachable' "
			  "or dns = \"delay\", none of which this fault group "
			  "sets");
	if ((f->kinds & FK_BIT(FK_DNS)) && f->dns == FDNS_DELAY &&
	    !(seen & FS_DELAY))
		add_error(L, line, "dns = \"delay\" needs 'delay' (e.g. "
			  "delay = \"2s\")");
	if ((seen & (FS_THEN | FS_THEN_AFTER)) &&
	    !(f->kinds & FK_BIT(FK_BLACKHOLE)))
		add_error(L, line, "'%s' belongs to 'blackhole', which this "
			  "fault group does not set",
			  (seen & FS_THEN) ? "then" : "then_after");
	else if ((seen & FS_THEN) && !(seen & FS_THEN_AFTER))
		add_error(L, line, "'then' needs 'then_after' (how long the "
			  "blackhole lasts, e.g. then_after = \"2s\")");
	else if ((seen & FS_THEN_AFTER) && !(seen & FS_THEN))
		add_error(L, line, "'then_after' needs 'then' (\"reset\" or "
			  "\"eof\")");
	if ((seen & FS_SPURIOUS) && !(f->kinds & FK_BIT(FK_SLICE)))
		add_error(L, line, "'spurious' belongs to 'slice', which this "
			  "fault group does not set");
	if ((f->kinds & (FK_BIT(FK_REFUSE) | FK_BIT(FK_UNREACHABLE))) ==
	    (FK_BIT(FK_REFUSE) | FK_BIT(FK_UNREACHABLE)))
		add_error(L, line, "'refuse' and 'unreachable' cannot both "
			  "apply to one connection: put them in separate "
			  "fault groups");
	if ((f->kinds & FK_BIT(FK_RESET)) && (f->kinds & FK_BIT(FK_EOF)))
		add_error(L, line, "'reset' and 'eof' cannot both end one "
			  "connection: put them in separate fault groups");
}

static void parse_fault_group(struct loader *L, const config_setting_t *g,
			      struct fault_spec *f, unsigned idx)
{
	int n = config_setting_length(g);
	unsigned seen = 0;
	size_t errs = L->c->nerrors + L->c->errors_dropped;

	memset(f, 0, sizeof(*f));
	f->group = (uint16_t)idx;
	f->line = line_of(g);
	f->probability = 1.0;
	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(g, i);
		const char *k = config_setting_name(m);

		if (k)
			parse_fault_key(L, m, k, f, &seen);
	}
	/* A group whose keys were all wrong has been reported already. */
	if (f->kinds || errs == L->c->nerrors + L->c->errors_dropped)
		check_fault_group(L, g, f, seen);
	fault_describe_trigger(f);
}

/* `faults = { ... };` (one group) or `faults = ( { ... }, { ... } );`. */
static void parse_faults(struct loader *L, const config_setting_t *s,
			 struct conf_values *v)
{
	int t = config_setting_type(s), n;

	if (t == CONFIG_TYPE_GROUP) {
		n = 1;
	} else if (t == CONFIG_TYPE_LIST) {
		n = config_setting_length(s);
		if (n == 0) {
			add_error(L, line_of(s), "'faults' is an empty list");
			return;
		}
		if (n > CONF_MAX_FAULTS) {
			add_error(L, line_of(s), "'faults' has %d groups; at "
				  "most %d are allowed", n, CONF_MAX_FAULTS);
			return;
		}
	} else {
		add_error(L, line_of(s), "'faults' must be a group { ... } or "
			  "a list of groups ( { ... }, { ... } ), not %s",
			  type_name(t));
		return;
	}
	if (v->faults) {
		add_error(L, line_of(s), "'faults' is given twice");
		return;
	}
	v->faults = calloc((size_t)n, sizeof(*v->faults));
	if (!v->faults) {
		add_error(L, line_of(s), "out of memory");
		return;
	}
	v->nfaults = (uint16_t)n;
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = t == CONFIG_TYPE_GROUP ? s :
			config_setting_get_elem(s, (unsigned)i);

		if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
			add_error(L, line_of(g), "fault %d must be a group "
				  "{ ... }, not %s", i + 1,
				  type_name(config_setting_type(g)));
			memset(&v->faults[i], 0, sizeof(v->faults[i]));
			continue;
		}
		parse_fault_group(L, g, &v->faults[i], (unsigned)i + 1);
	}
	v->set |= CONF_SET_FAULTS;
}

/* Handles one per-rule key of a rule or of defaults.  Returns 0 if the key
 * is a per-rule key (handled, errors reported), -1 if it is not one. */
static int parse_value_key(struct loader *L, const config_setting_t *m,
			   const char *k, struct conf_values *v)
{
	uint32_t ms;

	for (int ph = 0; ph < DL_PH_COUNT; ph++) {
		if (strcmp(k, limit_keys[ph]) != 0)
			continue;
		if (get_duration(L, m, k, &ms) == 0) {
			v->limits.ms[ph] = ms;
			v->set |= CONF_SET_LIMIT(ph);
		}
		return 0;
	}
	if (strcmp(k, "dns_timeout") == 0) {
		if (get_duration(L, m, k, &ms) == 0) {
			v->dns_timeout_ms = ms;
			v->set |= CONF_SET_DNS;
		}
	} else if (strcmp(k, "errno") == 0) {
		parse_errno(L, m, v);
	} else if (strcmp(k, "teardown") == 0) {
		parse_teardown(L, m, v);
	} else if (strcmp(k, "connect_retries") == 0) {
		parse_retries(L, m, v);
	} else if (strcmp(k, "retry_backoff") == 0) {
		parse_backoff(L, m, v);
	} else if (strcmp(k, "faults") == 0) {
		parse_faults(L, m, v);
	} else {
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- rules */

static int name_ok(const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\'' ||
		    ch == '\\')
			return 0;
	}
	return 1;
}

static void parse_name(struct loader *L, const config_setting_t *m,
		       struct conf_rule *r)
{
	const char *s = get_string(L, m, "name");
	char qv[QBUF];
	size_t n;

	if (!s)
		return;
	n = strnlen(s, CONF_NAME_MAX + 1);
	if (n == 0) {
		add_error(L, line_of(m), "rule name is empty");
	} else if (n > CONF_NAME_MAX) {
		add_error(L, line_of(m), "rule name '%s' is longer than %d "
			  "bytes", quote(qv, s), CONF_NAME_MAX);
	} else if (!name_ok(s)) {
		add_error(L, line_of(m), "rule name '%s' may only contain "
			  "printable characters without spaces or quotes",
			  quote(qv, s));
	} else {
		memcpy(r->name, s, n + 1);
	}
}

static void parse_host(struct loader *L, const config_setting_t *m,
		       struct conf_rule *r)
{
	const char *s = get_string(L, m, "host");
	char err[128], qv[QBUF];
	size_t n;

	if (!s)
		return;
	if (match_glob_check(s, err, sizeof(err)) < 0) {
		add_error(L, line_of(m), "bad host pattern '%s': %s",
			  quote(qv, s), err);
		return;
	}
	n = strlen(s);
	/* "example.com." is the same host as "example.com"; names are
	 * compared without the root dot on both sides. */
	if (n > 1 && s[n - 1] == '.' && s[n - 2] != '\\')
		n--;
	r->host = malloc(n + 1);
	if (!r->host) {
		add_error(L, line_of(m), "out of memory");
		return;
	}
	memcpy(r->host, s, n);
	r->host[n] = '\0';
}

static int parse_one_cidr(struct loader *L, const config_setting_t *e,
			  struct match_cidr *out)
{
	char err[128], qv[QBUF];
	const char *s;
	int t = config_setting_type(e);

	if (t != CONFIG_TYPE_STRING) {
		add_error(L, elem_line(L, e), "'cidr' entries must be strings like "
			  "\"10.0.0.0/8\", not %s", type_name(t));
		return -1;
	}
	s = config_setting_get_string(e);
	if (match_cidr_parse(s, out, err, sizeof(err)) < 0) {
		add_error(L, elem_line(L, e), "bad cidr '%s': %s", quote(qv, s),
			  err);
		return -1;
	}
	return 0;
}

static void parse_cidrs(struct loader *L, const config_setting_t *m,
			struct conf_rule *r)
{
	int t = config_setting_type(m), n, bad = 0;

	if (t == CONFIG_TYPE_STRING) {
		r->cidrs = malloc(sizeof(*r->cidrs));
		if (!r->cidrs) {
			add_error(L, line_of(m), "out of memory");
			return;
		}
		if (parse_one_cidr(L, m, &r->cidrs[0]) == 0)
			r->ncidrs = 1;
		return;
	}
	if (t != CONFIG_TYPE_LIST && t != CONFIG_TYPE_ARRAY) {
		add_error(L, line_of(m), "'cidr' must be a string or a list "
			  "of strings, not %s", type_name(t));
		return;
	}
	n = config_setting_length(m);
	if (n == 0) {
		add_error(L, line_of(m), "'cidr' list is empty");
		return;
	}
	if (n > CONF_MAX_CIDRS) {
		add_error(L, line_of(m), "'cidr' has %d entries (limit %d)", n,
			  CONF_MAX_CIDRS);
		return;
	}
	r->cidrs = calloc((size_t)n, sizeof(*r->cidrs));
	if (!r->cidrs) {
		add_error(L, line_of(m), "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(m, i);
		if (parse_one_cidr(L, e, &r->cidrs[i]) < 0)
			bad = 1;
	}
	if (!bad)
		r->ncidrs = (uint16_t)n;
}

static void parse_port(struct loader *L, const config_setting_t *m,
		       struct conf_rule *r)
{
	char err[128], qv[QBUF];
	int t = config_setting_type(m);

	if (is_int(m)) {
		long long v = config_setting_get_int64(m);
		if (match_ports_from_int(v, &r->ports, err, sizeof(err)) < 0) {
			add_error(L, line_of(m), "bad port: %s", err);
			return;
		}
	} else if (t == CONFIG_TYPE_STRING) {
		const char *s = config_setting_get_string(m);
		if (match_ports_parse(s, &r->ports, err, sizeof(err)) < 0) {
			add_error(L, line_of(m), "bad port '%s': %s",
				  quote(qv, s), err);
			return;
		}
	} else {
		add_error(L, line_of(m), "'port' must be an integer or a "
			  "string like \"8000-8999\", not %s", type_name(t));
		return;
	}
	r->has_ports = 1;
}

static void parse_direction(struct loader *L, const config_setting_t *m,
			    struct conf_rule *r)
{
	const char *s = get_string(L, m, "direction");
	char qv[QBUF];

	if (!s)
		return;
	if (strcmp(s, "outbound") == 0)
		r->direction = CONF_DIR_OUTBOUND;
	else if (strcmp(s, "inbound") == 0)
		r->direction = CONF_DIR_INBOUND;
	else if (strcmp(s, "any") == 0)
		r->direction = CONF_DIR_ANY;
	else
		add_error(L, line_of(m), "bad direction '%s': expected "
			  "\"outbound\", \"inbound\" or \"any\"", quote(qv, s));
}

/* Fills rule r (zeroed by the caller) from group g; idx is 1-based. */
static void parse_rule(struct loader *L, const config_setting_t *g,
		       struct conf_rule *r, unsigned idx)
{
	int n = config_setting_length(g);

	r->index = (uint16_t)idx;
	r->line = line_of(g);
	snprintf(r->name, sizeof(r->name), "rule#%u", idx);
	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(g, i);
		const char *k = config_setting_name(m);

		if (!k)
			continue;
		if (strcmp(k, "host") == 0)
			parse_host(L, m, r);
		else if (strcmp(k, "cidr") == 0)
			parse_cidrs(L, m, r);
		else if (strcmp(k, "port") == 0)
			parse_port(L, m, r);
		else if (strcmp(k, "direction") == 0)
			parse_direction(L, m, r);
		else if (strcmp(k, "name") == 0)
			parse_name(L, m, r);
		else if (parse_value_key(L, m, k, &r->v) < 0)
			unknown_key(L, m, " in rule", match_keys, value_keys);
	}
}

/* Fills c->defaults; match keys are refused there with a pointed message
 * because they are the likeliest misplacement. */
static void parse_defaults(struct loader *L, const config_setting_t *g)
{
	int n;

	if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
		add_error(L, line_of(g), "'defaults' must be a group { ... }, "
			  "not %s", type_name(config_setting_type(g)));
		return;
	}
	n = config_setting_length(g);
	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(g, i);
		const char *k = config_setting_name(m);

		if (!k)
			continue;
		if (parse_value_key(L, m, k, &L->c->defaults) == 0)
			continue;
		if (in_list(match_keys, k))
			add_error(L, line_of(m), "'%s' is a match key: it "
				  "belongs in a rule, not in 'defaults'", k);
		else
			unknown_key(L, m, " in 'defaults'", value_keys, NULL);
	}
}

/* Names identify rules in logs: two rules with one name would make a log
 * line ambiguous.  Quadratic, but bounded by CONF_MAX_RULES. */
static void check_duplicate_names(struct loader *L)
{
	struct conf *c = L->c;

	for (size_t i = 1; i < c->nrules; i++)
		for (size_t j = 0; j < i; j++)
			if (strcmp(c->rules[i].name, c->rules[j].name) == 0) {
				add_error(L, c->rules[i].line, "duplicate rule "
					  "name '%s' (also rule %u at line "
					  "%u)", c->rules[i].name,
					  c->rules[j].index, c->rules[j].line);
				break;
			}
}

/* Allocates and fills c->rules.  A non-group entry is reported and skipped
 * (the load fails anyway) so the other rules still get checked. */
static void parse_rules(struct loader *L, const config_setting_t *list)
{
	struct conf *c = L->c;
	int t = config_setting_type(list), n;

	if (t != CONFIG_TYPE_LIST &&
	    !(t == CONFIG_TYPE_ARRAY && config_setting_length(list) == 0)) {
		add_error(L, line_of(list), "'rules' must be a list "
			  "( { ... }, { ... } ), not %s", type_name(t));
		return;
	}
	n = config_setting_length(list);
	if (n <= 0)
		return;
	if (n > CONF_MAX_RULES) {
		add_error(L, line_of(config_setting_get_elem(list,
							     CONF_MAX_RULES)),
			  "too many rules: %d (limit %d)", n, CONF_MAX_RULES);
		return;
	}
	c->rules = calloc((size_t)n, sizeof(*c->rules));
	if (!c->rules) {
		add_error(L, line_of(list), "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, i);
		int et = config_setting_type(g);

		if (et != CONFIG_TYPE_GROUP) {
			add_error(L, elem_line(L, g), "rule %d must be a group "
				  "{ ... }, not %s", i + 1, type_name(et));
			continue;
		}
		parse_rule(L, g, &c->rules[c->nrules], (unsigned)i + 1);
		c->nrules++;
	}
	check_duplicate_names(L);
}

/* Dispatches the top-level settings. */
static void parse_root(struct loader *L, const config_setting_t *root)
{
	int n = config_setting_length(root);

	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(root, i);
		const char *k = config_setting_name(m);

		if (!k)
			continue;
		if (strcmp(k, "defaults") == 0) {
			parse_defaults(L, m);
		} else if (strcmp(k, "rules") == 0) {
			parse_rules(L, m);
		} else if (strcmp(k, "seed") == 0) {
			if (!is_int(m)) {
				add_error(L, line_of(m), "'seed' must be an "
					  "integer, not %s",
					  type_name(config_setting_type(m)));
				continue;
			}
			L->c->seed = config_setting_get_int64(m);
			L->c->has_seed = 1;
		} else if (in_list(value_keys, k) || in_list(match_keys, k)) {
			add_error(L, line_of(m), "'%s' is not a top-level key: "
				  "put it in 'defaults' or in a rule", k);
		} else {
			unknown_key(L, m, "", top_keys, NULL);
		}
	}
}

/* ------------------------------------------------------- load and free */

static void free_rules(struct conf *c)
{
	for (size_t i = 0; i < c->nrules; i++) {
		free(c->rules[i].host);
		free(c->rules[i].cidrs);
		free(c->rules[i].v.faults);
	}
	free(c->rules);
	c->rules = NULL;
	c->nrules = 0;
}

void conf_init(struct conf *c)
{
	memset(c, 0, sizeof(*c));
}

void conf_free(struct conf *c)
{
	if (!c)
		return;
	free_rules(c);
	free(c->defaults.faults);
	for (size_t i = 0; i < c->nerrors; i++)
		free(c->errors[i]);
	free(c->errors);
	free(c->path);
	conf_init(c);
}

/* Checks what libconfig would not: a NUL byte (it would silently end the
 * text), too many lines (its line numbers are 16-bit), and @include, which
 * would make the shim open arbitrary paths (a FIFO or /dev/zero would hang
 * or exhaust the host program).  Returns the number of problems found. */
static int prescan(struct loader *L, const char *data, size_t len)
{
	unsigned line = 1;
	int bad = 0, at_bol = 1;

	for (size_t i = 0; i < len; i++) {
		char ch = data[i];

		if (ch == '\0') {
			add_error(L, line, "NUL byte in configuration text");
			return bad + 1;
		}
		if (ch == '\n') {
			if (++line > CONF_MAX_LINES) {
				add_error(L, 0, "more than %d lines",
					  CONF_MAX_LINES);
				return bad + 1;
			}
			at_bol = 1;
			continue;
		}
		if (at_bol && (ch == ' ' || ch == '\t'))
			continue;
		if (at_bol && ch == '@' && len - i >= 8 &&
		    memcmp(data + i, "@include", 8) == 0) {
			add_error(L, line, "@include is not supported: keep "
				  "the configuration in one file");
			bad++;
		}
		at_bol = 0;
	}
	return bad;
}

/* 1 when a ',' is directly followed (blanks aside) by ')' or ']' on line
 * `line`, or the line opens with one of those and the previous non-blank
 * byte is a ','.  libconfig 1.5 rejects such a trailing comma (later
 * versions accept it), and it is the commonest slip in a rules list, so
 * "syntax error" alone would leave the user guessing. */
static int trailing_comma_at(const struct loader *L, unsigned line)
{
	const char *t, *p;
	size_t len;

	t = find_line(L, line, &len);
	if (!t)
		return 0;
	for (p = t; p < t + len; p++) {
		const char *q = p + 1;

		if (*p != ',')
			continue;
		while (q < t + len && (*q == ' ' || *q == '\t' || *q == '\r'))
			q++;
		if (q < t + len && (*q == ')' || *q == ']'))
			return 1;
	}
	for (p = t; p < t + len && (*p == ' ' || *p == '\t'); p++)
		;
	if (p == t + len || (*p != ')' && *p != ']'))
		return 0;
	for (p = t; p > L->text; p--) {
		char ch = p[-1];
		if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r')
			return ch == ',';
	}
	return 0;
}

/* Drops everything a failed load parsed, keeping path and errors. */
static void clear_loaded(struct conf *c)
{
	free_rules(c);
	free(c->defaults.faults);
	memset(&c->defaults, 0, sizeof(c->defaults));
	c->has_seed = 0;
	c->seed = 0;
}

/* Starts a load: drops whatever c held and records the name.  Returns 0,
 * or -1 (ENOMEM, reported if at all possible). */
static int begin_load(struct loader *L)
{
	conf_free(L->c);
	L->c->path = strdup(L->name);
	if (!L->c->path) {
		add_error(L, 0, "out of memory");
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

/* Checks and parses data[0..len) into L->c.  Returns 0, or -1 with the
 * errors recorded and the parsed part dropped. */
static int load_text(struct loader *L, const char *data, size_t len)
{
	struct conf *c = L->c;
	config_t cfg;
	char *text;

	if (!data)
		len = 0;
	if (len > CONF_MAX_FILE_BYTES) {
		add_error(L, 0, "larger than %d bytes", CONF_MAX_FILE_BYTES);
		return -1;
	}
	if (prescan(L, data, len))
		return -1;
	text = malloc(len + 1);
	if (!text) {
		add_error(L, 0, "out of memory");
		errno = ENOMEM;
		return -1;
	}
	if (len)
		memcpy(text, data, len);
	text[len] = '\0';

	L->text = text;
	config_init(&cfg);
	if (config_read_string(&cfg, text) != CONFIG_TRUE) {
		const char *t = config_error_text(&cfg);
		int line = config_error_line(&cfg);
		char qt[QBUF];

		quote(qt, t ? t : "parse error");
		if (line > 0 && t && strcmp(t, "syntax error") == 0 &&
		    trailing_comma_at(L, (unsigned)line))
			add_error(L, (unsigned)line, "%s (a comma before ')' or "
				  "']' is not allowed)", qt);
		else
			add_error(L, line > 0 ? (unsigned)line : 0, "%s", qt);
	} else {
		parse_root(L, config_root_setting(&cfg));
	}
	config_destroy(&cfg);
	L->text = NULL;
	free(text);

	if (error_count(L)) {
		clear_loaded(c);
		return -1;
	}
	return 0;
}

int conf_load_mem(struct conf *c, const char *data, size_t len,
		  const char *name)
{
	struct loader L = { c, name ? name : "(config)", NULL };

	if (begin_load(&L) < 0)
		return -1;
	return load_text(&L, data, len);
}

/* Reads the whole file into a fresh buffer (one byte more than the limit,
 * to detect oversize files).  Returns the buffer or NULL after reporting. */
static char *read_file(struct loader *L, const char *path, size_t *lenp)
{
	char *buf = NULL;
	size_t len = 0, cap = CONF_MAX_FILE_BYTES + 1;
	struct stat st;
	int fd, e;
	char eb[128];

	/* O_NONBLOCK: opening a FIFO must not hang the host program. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		goto fail;
	if (fstat(fd, &st) < 0)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		add_error(L, 0, "cannot read: not a regular file");
		return NULL;
	}
	if (st.st_size >= 0 && (unsigned long long)st.st_size < cap)
		cap = (size_t)st.st_size + 1;
	buf = malloc(cap);
	if (!buf)
		goto fail;
	for (;;) {
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == cap) {
			/* The file grew since fstat, or is exactly cap - 1
			 * bytes long: widen up to the real limit. */
			size_t ncap = CONF_MAX_FILE_BYTES + 1;
			char *nb;

			if (cap >= ncap)
				break;
			nb = realloc(buf, ncap);
			if (!nb)
				goto fail;
			buf = nb;
			cap = ncap;
		}
	}
	close(fd);
	*lenp = len;
	return buf;
fail:
	e = errno;
	free(buf);
	if (fd >= 0)
		close(fd);
	add_error(L, 0, "cannot read: %s", strerror_r(e, eb, sizeof(eb)));
	errno = e;
	return NULL;
}

int conf_load(struct conf *c, const char *path)
{
	struct loader L = { c, path ? path : "(null)", NULL };
	char *data;
	size_t len;
	int rc;

	if (begin_load(&L) < 0)
		return -1;
	if (!path) {
		add_error(&L, 0, "cannot read: no file name");
		errno = EINVAL;
		return -1;
	}
	data = read_file(&L, path, &len);
	if (!data)
		return -1;
	rc = load_text(&L, data, len);
	free(data);
	return rc;
}

/* ------------------------------------------------------------ matching */

void conf_apply_env_overrides(struct conf *c, const struct dl_limits *env)
{
	if (!c || !env)
		return;
	for (int ph = 0; ph < DL_PH_COUNT; ph++) {
		if (!env->ms[ph])
			continue;
		c->defaults.limits.ms[ph] = env->ms[ph];
		c->defaults.set |= CONF_SET_LIMIT(ph);
		for (size_t i = 0; i < c->nrules; i++) {
			c->rules[i].v.limits.ms[ph] = env->ms[ph];
			c->rules[i].v.set |= CONF_SET_LIMIT(ph);
		}
	}
}

/* Per-call cache, so the address is formatted at most once per lookup. */
struct peer_text {
	int state;	/* 0 not yet, 1 ok, -1 not an IP address */
	char lit[64];
};

/* Matches the host glob against the resolved name (without its root dot)
 * and against the address literal. */
static int host_matches(const char *pat, const struct conf_peer *p,
			struct peer_text *pt)
{
	if (p->host && *p->host) {
		char name[MATCH_HOST_MAX + 2];
		size_t n = strnlen(p->host, sizeof(name));

		/* Longer than any DNS name: cannot be what a rule means. */
		if (n < sizeof(name)) {
			memcpy(name, p->host, n + 1);
			if (n > 1 && name[n - 1] == '.')
				name[n - 1] = '\0';
			if (match_glob(pat, name))
				return 1;
		}
	}
	if (pt->state == 0)
		pt->state = match_sockaddr_ntop(p->addr, p->addrlen, pt->lit,
						sizeof(pt->lit)) == 0 ? 1 : -1;
	return pt->state == 1 && match_glob(pat, pt->lit);
}

/* 1 when every match key of r fits p.  Cheapest tests first: the host
 * glob may need the address formatted. */
static int rule_matches(const struct conf_rule *r, const struct conf_peer *p,
			struct peer_text *pt)
{
	if (r->direction == CONF_DIR_OUTBOUND && p->inbound)
		return 0;
	if (r->direction == CONF_DIR_INBOUND && !p->inbound)
		return 0;
	if (r->has_ports) {
		uint16_t port;
		int rc = p->inbound
			? match_sockaddr_port(p->local, p->locallen, &port)
			: match_sockaddr_port(p->addr, p->addrlen, &port);
		if (rc < 0 || !match_ports(&r->ports, port))
			return 0;
	}
	if (r->ncidrs) {
		int hit = 0;
		for (uint16_t i = 0; i < r->ncidrs && !hit; i++)
			hit = match_cidr(&r->cidrs[i], p->addr, p->addrlen);
		if (!hit)
			return 0;
	}
	if (r->host && !host_matches(r->host, p, pt))
		return 0;
	return 1;
}

const struct conf_rule *conf_match(const struct conf *c,
				   const struct conf_peer *p)
{
	struct peer_text pt;
	int saved = errno;
	const struct conf_rule *hit = NULL;

	if (!c || !p)
		return NULL;
	pt.state = 0;
	for (size_t i = 0; i < c->nrules; i++) {
		if (rule_matches(&c->rules[i], p, &pt)) {
			hit = &c->rules[i];
			break;
		}
	}
	errno = saved;	/* inet_ntop may set it on odd input */
	return hit;
}

/* Picks the rule's value if it set the field, else the defaults'. */
#define PICK(field, bit, builtin)                                           \
	((r && (r->v.set & (bit))) ? r->v.field                              \
	 : (c && (c->defaults.set & (bit))) ? c->defaults.field : (builtin))

void conf_effective(const struct conf *c, const struct conf_rule *r,
		    struct conf_effective *out)
{
	memset(out, 0, sizeof(*out));
	for (int ph = 0; ph < DL_PH_COUNT; ph++)
		out->limits.ms[ph] = PICK(limits.ms[ph], CONF_SET_LIMIT(ph), 0u);
	out->err = PICK(err, CONF_SET_ERRNO, ETIMEDOUT);
	out->teardown = PICK(teardown, CONF_SET_TEARDOWN, CONF_TEARDOWN_RESET);
	out->dns_timeout_ms = PICK(dns_timeout_ms, CONF_SET_DNS, 0u);
	out->connect_retries = PICK(connect_retries, CONF_SET_RETRIES, 0u);
	out->backoff_base_ms = PICK(backoff_base_ms, CONF_SET_BACKOFF_BASE,
				    CONF_BACKOFF_BASE_MS);
	out->backoff_max_ms = PICK(backoff_max_ms, CONF_SET_BACKOFF_MAX,
				   CONF_BACKOFF_MAX_MS);
	/* base and max may come from different groups: keep max >= base. */
	if (out->backoff_max_ms < out->backoff_base_ms)
		out->backoff_max_ms = out->backoff_base_ms;
	out->faults = PICK(faults, CONF_SET_FAULTS, NULL);
	out->nfaults = PICK(nfaults, CONF_SET_FAULTS, 0);
	out->rule_name = r ? r->name : "defaults";
	out->rule_index = r ? r->index : 0;
}

#undef PICK

const struct conf_rule *conf_lookup(const struct conf *c,
				    const struct conf_peer *p,
				    struct conf_effective *out)
{
	const struct conf_rule *r = conf_match(c, p);

	conf_effective(c, r, out);
	return r;
}

char *conf_rule_describe(const struct conf_rule *r, char *buf, size_t len)
{
	size_t o = 0;
	char tmp[MATCH_CIDR_STRLEN];

	if (!len)
		return buf;
	buf[0] = '\0';
#define PUT(...)                                                            \
	do {                                                                 \
		if (o < len) {                                               \
			int n_ = snprintf(buf + o, len - o, __VA_ARGS__);    \
			o = n_ < 0 ? len : o + (size_t)n_;                   \
		}                                                            \
	} while (0)
	if (r->host)
		PUT("%shost=%s", o ? " " : "", r->host);
	for (uint16_t i = 0; i < r->ncidrs; i++)
		PUT("%s%s", i ? "," : (o ? " cidr=" : "cidr="),
		    match_cidr_format(&r->cidrs[i], tmp, sizeof(tmp)));
	if (r->has_ports)
		PUT("%sport=%s", o ? " " : "",
		    match_ports_format(&r->ports, tmp, sizeof(tmp)));
	if (r->direction != CONF_DIR_ANY)
		PUT("%s%s", o ? " " : "", conf_direction_name(r->direction));
	if (!o)
		PUT("*");
#undef PUT
	return buf;
}
