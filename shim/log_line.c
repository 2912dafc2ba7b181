/* log_line.c - log lines: formatting (logfmt or JSON), the calls of
 * log.h that write one, the per-rule rate limit (DEADLINE_LOG_RATE) and
 * the event tap the counters use.  Where a line goes is log.c's.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log_int.h"

/* ------------------------------------------------------------------------
 * Formatting
 *
 * A line is built in a buffer on the stack, one piece at a time: a piece
 * (a field's key, a character, a number) goes in whole or not at all,
 * and the last LINE_TAIL bytes are kept for what closes the line (a
 * string's quote, "truncated", the JSON object's brace, the newline), so
 * a line that is too long is cut, never broken: a JSON line always
 * parses.
 */

#define LINE_BYTES 1024
#define LINE_TAIL 32

struct line {
	char b[LINE_BYTES];
	size_t n;
	int cut;	/* a piece did not fit: nothing more goes in */
};

const char *dl_log_dest(void)
{
	return log_off ? "off" : dl_log_fd() >= 0 ? log_dest : "stderr";
}

const char *dl_log_format(void)
{
	return log_json ? "json" : "logfmt";
}

/* Appends s[0..len) if it fits before the tail; else marks the line cut.
 * Returns 1 if it went in. */
static int put(struct line *l, const char *s, size_t len)
{
	if (l->cut || l->n + len > sizeof(l->b) - LINE_TAIL) {
		l->cut = 1;
		return 0;
	}
	memcpy(l->b + l->n, s, len);
	l->n += len;
	return 1;
}

static int put_str(struct line *l, const char *s)
{
	return put(l, s, strlen(s));
}

/* Appends what closes the line, into the tail (always fits: callers put
 * less than LINE_TAIL bytes of it in all). */
static void put_tail(struct line *l, const char *s)
{
	size_t len = strlen(s);

	if (l->n + len > sizeof(l->b))
		len = sizeof(l->b) - l->n;
	memcpy(l->b + l->n, s, len);
	l->n += len;
}

/* The length of the valid UTF-8 sequence at p (at most left bytes), or 0
 * when the byte at p does not start one. */
static size_t utf8_len(const unsigned char *p, size_t left)
{
	unsigned char c = p[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (left < len)
		return 0;
	/* The second byte's range excludes overlong forms, surrogates and
	 * code points above U+10FFFF. */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

/* The characters of v, escaped: JSON string contents (quote, backslash
 * and control bytes escaped, invalid UTF-8 as U+FFFD) or, in logfmt,
 * quote and backslash escaped and control bytes as \u00XX.  Stops where
 * the line is full. */
static void put_escaped(struct line *l, const char *v)
{
	const unsigned char *p = (const unsigned char *)v;
	size_t left = strlen(v);

	while (left && !l->cut) {
		unsigned char ch = *p;
		size_t k = 1;

		if (ch == '"' || ch == '\\') {
			char esc[2] = { '\\', (char)ch };
			put(l, esc, 2);
		} else if (ch < 0x20 || ch == 0x7f) {
			char esc[8];
			int m = snprintf(esc, sizeof(esc), "\\u%04x", ch);
			put(l, esc, (size_t)m);
		} else if (ch < 0x80 || !log_json) {
			put(l, (const char *)p, 1);
		} else if ((k = utf8_len(p, left)) > 0) {
			put(l, (const char *)p, k);
		} else {
			k = 1;
			put(l, "\\ufffd", 6);
		}
		p += k;
		left -= k;
	}
}

/* A string value is always quoted in JSON; in logfmt when it is empty or
 * has spaces, quotes, '=' or backslashes. */
static int needs_quotes(const char *v)
{
	return log_json || !*v || strpbrk(v, " \"=\\") != 0;
}

/* ' key=' or ',"key":', with the value's opening quote (keys are the
 * shim's own identifiers): in one piece, so that a key never goes in
 * without the start of its value. */
static void field_str(struct line *l, const char *key, const char *v)
{
	char k[80];
	int quote = needs_quotes(v);
	int m = snprintf(k, sizeof(k), log_json ? ",\"%s\":%s" : " %s=%s",
			 key, quote ? "\"" : "");

	if (m <= 0 || (size_t)m >= sizeof(k) || !put(l, k, (size_t)m)) {
		l->cut = 1;
		return;
	}
	put_escaped(l, v);
	if (quote)
		put_tail(l, "\"");
}

/* key and value go in together, or neither does. */
static void field_raw(struct line *l, const char *key, const char *v)
{
	char k[112];
	int m = snprintf(k, sizeof(k), log_json ? ",\"%s\":%s" : " %s=%s",
			 key, v);

	if (m > 0 && (size_t)m < sizeof(k))
		put(l, k, (size_t)m);
	else
		l->cut = 1;
}

static void field_num(struct line *l, const char *key, long long v)
{
	char num[24];

	snprintf(num, sizeof(num), "%lld", v);
	field_raw(l, key, num);
}

static void field(struct line *l, const struct dl_field *f)
{
	if (!f->str)
		field_num(l, f->key, f->num);
	else if (f->str == dl_log_true || f->str == dl_log_false)
		field_raw(l, f->key, f->str);
	else
		field_str(l, f->key, f->str);
}

/* UTC calendar time of t, computed here rather than by gmtime_r, which
 * takes glibc's time-zone lock and may open /etc/localtime on first use
 * (neither is safe in a signal handler, and an open would take one of the
 * program's numbers for a moment).  Days to civil date: H. Hinnant's
 * algorithm, proleptic Gregorian. */
struct dl_utc {
	int year, mon, mday, hour, min, sec;
};

static void utc_of(time_t t, struct dl_utc *u)
{
	long long days = (long long)t / 86400, secs = (long long)t % 86400;
	long long era, doe, yoe, doy, mp, y;

	if (secs < 0) {
		secs += 86400;
		days--;
	}
	u->hour = (int)(secs / 3600);
	u->min = (int)(secs / 60 % 60);
	u->sec = (int)(secs % 60);
	days += 719468;
	era = (days >= 0 ? days : days - 146096) / 146097;
	doe = days - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	u->mday = (int)(doy - (153 * mp + 2) / 5 + 1);
	u->mon = (int)(mp < 10 ? mp + 3 : mp - 9);
	u->year = (int)(y + (u->mon <= 2));
}

/* The start of an event line: time and pid. */
static void line_head(struct line *l)
{
	char when[64];
	struct timespec ts;
	struct dl_utc tm;

	l->n = 0;
	l->cut = 0;
	clock_gettime(CLOCK_REALTIME, &ts);
	utc_of(ts.tv_sec, &tm);
	snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		 tm.year, tm.mon, tm.mday, tm.hour, tm.min, tm.sec,
		 (long)(ts.tv_nsec / 1000000) % 1000);
	put_str(l, log_json ? "{\"time\":\"" : "libdeadline: time=");
	put_str(l, when);
	put_str(l, log_json ? "\"" : "");
	field_num(l, "pid", (long long)getpid());
}

/* Closes an event line; returns its length. */
static size_t line_end(struct line *l)
{
	if (l->cut)
		put_tail(l, log_json ? ",\"truncated\":true" :
				       " truncated=true");
	put_tail(l, log_json ? "}\n" : "\n");
	return l->n;
}

/* A text line.  JSON: {"time","pid","event":event[,"source","line"],
 * "msg"}.  logfmt: "libdeadline: <prefix><text>", control bytes as \xNN
 * so that a line stays one line. */
static void format_text(struct line *l, const char *event,
			const char *prefix, const char *source,
			const char *text)
{
	if (log_json) {
		line_head(l);
		field_str(l, "event", event);
		if (source) {
			size_t sl = strlen(source);

			field_str(l, "source", source);
			if (strncmp(text, source, sl) == 0 && text[sl] == ':') {
				const char *p = text + sl + 1;
				char *end;
				unsigned long line = strtoul(p, &end, 10);

				if (end != p && *p >= '0' && *p <= '9' &&
				    end[0] == ':' && end[1] == ' ') {
					field_num(l, "line", (long long)line);
					text = end + 2;
				} else if (*p == ' ') {
					text = p + 1;
				}
			}
		}
		field_str(l, "msg", text);
		line_end(l);
		return;
	}
	l->n = 0;
	l->cut = 0;
	put_str(l, "libdeadline: ");
	put_str(l, prefix);
	for (const unsigned char *p = (const unsigned char *)text;
	     *p && !l->cut; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			char esc[8];
			int m = snprintf(esc, sizeof(esc), "\\x%02x", *p);
			put(l, esc, (size_t)m);
		} else {
			put(l, (const char *)p, 1);
		}
	}
	put_tail(l, "\n");
}

/* Formats and writes a text line; conf: also to stderr (log_write_conf). */
static void emit(const char *event, const char *prefix, const char *source,
		 int conf, const char *fmt, va_list ap)
{
	char text[1024];
	struct line l;
	int saved = errno;

	if (!log_start()) {
		errno = saved;
		return;
	}
	if (vsnprintf(text, sizeof(text), fmt, ap) < 0)
		text[0] = '\0';
	format_text(&l, event, prefix, source, text);
	if (conf)
		log_write_conf(l.b, l.n);
	else
		log_write(l.b, l.n);
	errno = saved;
}

/* The warning of file_give_up: on stderr only (the file is gone). */
void log_give_up_line(int fd, const char *why)
{
	char text[160];
	struct line l;

	snprintf(text, sizeof(text), "DEADLINE_LOG: the log file's descriptor "
		 "%d %s; logging to stderr", fd, why);
	format_text(&l, "warning", "warning: ", NULL, text);
	log_write_stderr(l.b, l.n);
}

void dl_log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit("warning", "warning: ", NULL, 0, fmt, ap);
	va_end(ap);
}

void dl_log_conf(enum dl_conf_kind kind, const char *source,
		 const char *fmt, ...)
{
	static const char *const events[] = {
		[DL_CONF_ERROR] = "config_error",
		[DL_CONF_WARNING] = "config_warning",
		[DL_CONF_IGNORED] = "config_ignored",
		[DL_CONF_EXIT] = "config_exit",
	};
	va_list ap;

	va_start(ap, fmt);
	emit(events[kind], kind == DL_CONF_WARNING ? "warning: " : "", source,
	     1, fmt, ap);
	va_end(ap);
}

void dl_log_debugf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit("debug", "debug: ", NULL, 0, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------------
 * The rate limit: at most rate_limit event lines per second per rule.
 * Lock-free: a rule's slot is claimed by compare-and-swap of its key;
 * a slot's second moves on by compare-and-swap, and whoever moves it
 * writes the summary of the second that ended.
 */

#define RATE_SLOTS 128
#define RATE_DEFAULT 0	/* no limit unless DEADLINE_LOG_RATE says */

static long rate_limit = RATE_DEFAULT;	/* 0 = no limit */
static struct rate_slot {
	uint64_t key;		/* hash of the rule name; 0 = free */
	int ready;		/* rule written */
	char rule[64];
	int64_t sec;		/* the second counted */
	uint64_t count;		/* lines in it */
	uint64_t suppressed;	/* lines left out, not yet summed up */
} rate[RATE_SLOTS];
static unsigned long suppressed_n;
static void (*tap_fn)(const struct dl_field *, int);

void dl_log_set_tap(void (*tap)(const struct dl_field *f, int n))
{
	__atomic_store_n(&tap_fn, tap, __ATOMIC_RELEASE);
}

unsigned long dl_log_suppressed(void)
{
	return __atomic_load_n(&suppressed_n, __ATOMIC_RELAXED);
}

void log_rate_init(void)
{
	const char *v = secure_getenv("DEADLINE_LOG_RATE");
	char *end;
	long n;

	if (!v || !*v)
		return;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || *end || n < 0) {
		/* Reported by dl_log_init once the log is ready. */
		rate_limit = -1;
		return;
	}
	rate_limit = n;
}

int log_rate_bad(void)
{
	if (rate_limit >= 0)
		return 0;
	rate_limit = 100;
	return 1;
}

static int64_t now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec;
}

/* "event=suppressed rule=R lines=N": N lines of rule R left out. */
static void write_suppressed(const char *rule, uint64_t n)
{
	struct line l;

	line_head(&l);
	field_str(&l, "event", "suppressed");
	field_str(&l, "rule", rule);
	field_num(&l, "lines", (long long)n);
	field_num(&l, "limit_per_s", rate_limit);
	line_end(&l);
	log_write(l.b, l.n);
}

static struct rate_slot *rate_slot_of(const char *rule)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (const char *p = rule; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
	h |= 1;
	for (unsigned i = 0, s = (unsigned)(h % RATE_SLOTS); i < RATE_SLOTS;
	     i++, s = (s + 1) % RATE_SLOTS) {
		struct rate_slot *r = &rate[s];
		uint64_t k = __atomic_load_n(&r->key, __ATOMIC_ACQUIRE);

		if (!k) {
			uint64_t zero = 0;

			if (__atomic_compare_exchange_n(&r->key, &zero, h, 0,
							__ATOMIC_ACQ_REL,
							__ATOMIC_ACQUIRE)) {
				snprintf(r->rule, sizeof(r->rule), "%s", rule);
				__atomic_store_n(&r->ready, 1, __ATOMIC_RELEASE);
				return r;
			}
			k = zero;
		}
		if (k == h)
			return __atomic_load_n(&r->ready, __ATOMIC_ACQUIRE) ? r
									    : 0;
	}
	return 0;	/* more rules than slots: those are not limited */
}

/* 1 if the line may be written. */
static int rate_admit(const struct dl_field *f, int nf)
{
	const char *rule = 0;
	struct rate_slot *r;
	int64_t sec, old;

	if (rate_limit <= 0)
		return 1;
	for (int i = 0; i < nf && !rule; i++)
		if (strcmp(f[i].key, "rule") == 0)
			rule = f[i].str;
	if (!rule || rule == DL_TRUE || rule == DL_FALSE ||
	    !(r = rate_slot_of(rule)))
		return 1;
	sec = now_sec();
	old = __atomic_load_n(&r->sec, __ATOMIC_ACQUIRE);
	if (old != sec && __atomic_compare_exchange_n(&r->sec, &old, sec, 0,
						      __ATOMIC_ACQ_REL,
						      __ATOMIC_ACQUIRE)) {
		uint64_t sup = __atomic_exchange_n(&r->suppressed, 0,
						   __ATOMIC_ACQ_REL);

		__atomic_store_n(&r->count, 0, __ATOMIC_RELEASE);
		if (sup)
			write_suppressed(r->rule, sup);
	}
	if (__atomic_add_fetch(&r->count, 1, __ATOMIC_ACQ_REL) <=
	    (uint64_t)rate_limit)
		return 1;
	__atomic_add_fetch(&r->suppressed, 1, __ATOMIC_ACQ_REL);
	__atomic_add_fetch(&suppressed_n, 1, __ATOMIC_RELAXED);
	return 0;
}

void dl_log_flush_suppressed(int all)
{
	int64_t sec;
	int saved = errno;

	if (rate_limit <= 0 || !dl_log_suppressed() || !log_start()) {
		errno = saved;
		return;
	}
	sec = now_sec();
	for (int s = 0; s < RATE_SLOTS; s++) {
		struct rate_slot *r = &rate[s];
		uint64_t sup;

		if (!__atomic_load_n(&r->ready, __ATOMIC_ACQUIRE) ||
		    !__atomic_load_n(&r->suppressed, __ATOMIC_ACQUIRE) ||
		    (!all && __atomic_load_n(&r->sec, __ATOMIC_ACQUIRE) >= sec))
			continue;
		sup = __atomic_exchange_n(&r->suppressed, 0, __ATOMIC_ACQ_REL);
		if (sup)
			write_suppressed(r->rule, sup);
	}
	errno = saved;
}

void dl_log_fields(const struct dl_field *f, int nf)
{
	struct line l;
	int saved = errno;
	void (*tap)(const struct dl_field *, int) =
		__atomic_load_n(&tap_fn, __ATOMIC_ACQUIRE);

	if (tap)
		tap(f, nf);
	if (!log_start() || !rate_admit(f, nf)) {
		errno = saved;
		return;
	}
	line_head(&l);
	for (int i = 0; i < nf; i++)
		field(&l, &f[i]);
	line_end(&l);
	log_write(l.b, l.n);
	errno = saved;
}
