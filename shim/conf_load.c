/* conf_load.c - the configuration's life cycle and text (see conf.h).
 *
 * conf_init, conf_load, conf_load_mem, conf_free and conf_set_io.  Reads
 * the file (regular files only, never more than CONF_MAX_FILE_BYTES, never
 * blocking on a FIFO), refuses what libconfig would mishandle (NUL bytes,
 * more lines than its 16-bit line numbers hold, @include), has libconfig
 * parse the text, reports its syntax errors (with what to do for the
 * common slips it only calls "syntax error": a trailing comma, a duration
 * or rate without quotes), and hands the tree to conf_parse.c.
 *
 * Promises: a load with any error leaves no rules, no defaults and no
 * seed (a half-understood file never half-applies), and the errors in
 * c->errors.  errno on failure: from open/fstat/read, EINVAL for no file
 * name, ENOMEM (conf_load_mem: ENOMEM only); otherwise not meaningful.  No
 * locks: one load per struct conf at a time; conf_set_io is meant to be
 * called once, before any load.  The only syscalls are open, fstat, and
 * the read and close of conf_set_io.
 */
#include "conf_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fault.h"
#include "policy.h"

/* ------------------------------------------------------------- the I/O */

/* The read and close the file reader uses; see conf_set_io in conf.h.
 * Atomic so that a late conf_set_io is not a data race with a load. */
static ssize_t (*io_read)(int, void *, size_t) = read;
static int (*io_close)(int) = close;

void conf_set_io(ssize_t (*rd)(int, void *, size_t), int (*cl)(int))
{
	__atomic_store_n(&io_read, rd ? rd : read, __ATOMIC_RELEASE);
	__atomic_store_n(&io_close, cl ? cl : close, __ATOMIC_RELEASE);
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
			confp_add_error(L, line,
					"NUL byte in configuration text");
			return bad + 1;
		}
		if (ch == '\n') {
			if (++line > CONF_MAX_LINES) {
				confp_add_error(L, 0, "more than %d lines",
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
			confp_add_error(L, line, "@include is not supported: "
					"keep the configuration in one file");
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

	t = confp_find_line(L, line, &len);
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

/* The keys whose values are durations (a rule's, a fault group's,
 * retry_backoff's). */
static const char *const duration_keys[] = {
	"connect_timeout", "first_byte_timeout", "idle_timeout",
	"request_timeout", "dns_timeout", "latency", "jitter", "delay",
	"then_after", "after", "for", "slow_close", "base", "max", NULL
};

/* Writes into hint (cap bytes) what to do when line `line` holds a
 * duration or a rate written without quotes (`connect_timeout = 2s;`,
 * `bandwidth = 100KB;`): libconfig reads the number, then stumbles on the
 * unit and says only "syntax error".  Returns 1 when it wrote a hint.
 * Strings and comments on the line are skipped. */
static int unquoted_value_at(const struct loader *L, unsigned line,
			     char *hint, size_t cap)
{
	const char *t, *p, *end;
	size_t len;

	t = confp_find_line(L, line, &len);
	if (!t)
		return 0;
	end = t + len;
	for (p = t; p < end; p++) {
		const char *k, *ke, *v, *ve;
		char key[64], val[40];
		uint32_t ms;
		uint64_t rate;
		int digits = 0, letters = 0;

		if (*p == '"') {	/* skip a string, escapes and all */
			for (p++; p < end && *p != '"'; p++)
				if (*p == '\\' && p + 1 < end)
					p++;
			continue;
		}
		if (*p == '#' || (*p == '/' && p + 1 < end &&
				  (p[1] == '/' || p[1] == '*')))
			break;
		if (*p != '=' && *p != ':')
			continue;
		/* The key before the '=': a libconfig name. */
		ke = p;
		while (ke > t && (ke[-1] == ' ' || ke[-1] == '\t'))
			ke--;
		k = ke;
		while (k > t && (isalnum((unsigned char)k[-1]) ||
				 k[-1] == '_' || k[-1] == '-' || k[-1] == '*'))
			k--;
		/* The value after it: digits, then a unit. */
		v = p + 1;
		while (v < end && (*v == ' ' || *v == '\t'))
			v++;
		for (ve = v; ve < end; ve++) {
			unsigned char ch = (unsigned char)*ve;

			if (isdigit(ch) || ch == '.') {
				digits += !letters;
			} else if (isalpha(ch) || ch == '/') {
				letters++;
			} else if (ch == 0xc2 && ve + 1 < end &&
				   (unsigned char)ve[1] == 0xb5) {
				letters++;	/* "µs" */
				ve++;
			} else {
				break;
			}
		}
		if (k == ke || !digits || !letters ||
		    (size_t)(ke - k) >= sizeof(key) ||
		    (size_t)(ve - v) >= sizeof(val))
			continue;
		memcpy(key, k, (size_t)(ke - k));
		key[ke - k] = 0;
		memcpy(val, v, (size_t)(ve - v));
		val[ve - v] = 0;
		if (policy_parse_duration(val, &ms) == 0 ||
		    (confp_in_list(duration_keys, key) &&
		     fault_parse_rate(val, &rate) < 0)) {
			snprintf(hint, cap, "durations are strings: %s = "
				 "\"%s\";", key, val);
			return 1;
		}
		if (fault_parse_rate(val, &rate) == 0) {
			snprintf(hint, cap, "rates are strings: %s = \"%s\";",
				 key, val);
			return 1;
		}
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
		confp_add_error(L, 0, "out of memory");
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
		confp_add_error(L, 0, "larger than %d bytes",
				CONF_MAX_FILE_BYTES);
		return -1;
	}
	if (prescan(L, data, len))
		return -1;
	text = malloc(len + 1);
	if (!text) {
		confp_add_error(L, 0, "out of memory");
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

		char hint[160];
		int syntax = line > 0 && t && strcmp(t, "syntax error") == 0;

		confp_quote(qt, t ? t : "parse error");
		if (syntax && trailing_comma_at(L, (unsigned)line))
			confp_add_error(L, (unsigned)line, "%s (a comma before "
					"')' or ']' is not allowed)", qt);
		else if (syntax && unquoted_value_at(L, (unsigned)line, hint,
						     sizeof(hint)))
			confp_add_error(L, (unsigned)line, "%s (%s)", qt, hint);
		else if (syntax && line > 1 &&
			 unquoted_value_at(L, (unsigned)line - 1, hint,
					   sizeof(hint)))
			/* `x = 2s` with no ';' before the '}' on the next
			 * line: libconfig stumbles there; name the line with
			 * the value. */
			confp_add_error(L, (unsigned)line - 1, "%s (%s)", qt,
					hint);
		else
			confp_add_error(L, line > 0 ? (unsigned)line : 0, "%s",
					qt);
	} else {
		confp_parse_root(L, config_root_setting(&cfg));
	}
	config_destroy(&cfg);
	L->text = NULL;
	free(text);

	if (confp_error_count(L)) {
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
	ssize_t (*rd)(int, void *, size_t) =
		__atomic_load_n(&io_read, __ATOMIC_ACQUIRE);
	int (*cl)(int) = __atomic_load_n(&io_close, __ATOMIC_ACQUIRE);
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
		cl(fd);
		confp_add_error(L, 0, "cannot read: not a regular file");
		return NULL;
	}
	if (st.st_size >= 0 && (unsigned long long)st.st_size < cap)
		cap = (size_t)st.st_size + 1;
	buf = malloc(cap);
	if (!buf)
		goto fail;
	for (;;) {
		ssize_t n = rd(fd, buf + len, cap - len);
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
	cl(fd);
	*lenp = len;
	return buf;
fail:
	e = errno;
	free(buf);
	if (fd >= 0)
		cl(fd);
	confp_add_error(L, 0, "cannot read: %s", strerror_r(e, eb, sizeof(eb)));
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
		confp_add_error(&L, 0, "cannot read: no file name");
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
