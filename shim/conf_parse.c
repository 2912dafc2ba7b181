/* conf_parse.c - a parsed file's settings into struct conf (see
 * conf_int.h).
 *
 * Walks the libconfig tree: the top level (`defaults`, `rules`, `seed`),
 * each rule's match keys (host, cidr, port, direction, name) and the
 * per-rule value keys shared by rules and `defaults` (the four limits,
 * dns_timeout, errno, teardown, connect_retries, retry_backoff; `faults`
 * is handed to conf_faults.c).
 *
 * Promises: every bad key or value is reported once, at its line, and
 * parsing goes on, so one pass finds every error; nothing here fails in
 * any other way (out of memory is reported like a bad value).  Runs inside
 * a load on the caller's struct conf: no locks; errno is not part of the
 * contract.
 */
#include "conf_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --------------------------------------------------------------- keys */

enum key_kind { K_TOP, K_VALUE, K_MATCH };

/* Every key the file may contain, by where it may appear. */
static const char *const top_keys[] = { "defaults", "rules", "seed", NULL };
const char *const confp_value_keys[] = {
	"connect_timeout", "first_byte_timeout", "idle_timeout",
	"request_timeout", "errno", "teardown", "dns_timeout",
	"connect_retries", "retry_backoff", "faults", NULL
};
const char *const confp_match_keys[] = {
	"host", "cidr", "port", "direction", "name", NULL
};
static const char *const backoff_keys[] = { "base", "max", NULL };

/* Index i of confp_value_keys[] for i < DL_PH_COUNT is the phase i limit. */
static const char *const limit_keys[DL_PH_COUNT] = {
	"connect_timeout", "first_byte_timeout", "idle_timeout",
	"request_timeout",
};

/* --------------------------------------------------------------- values
 *
 * The readers below share one contract: on success they store the value
 * and set its CONF_SET_* bit (or return it); on bad input they report one
 * error at the setting's line and leave the target untouched.  None of
 * them fails in any other way, so loading always goes on to the next key
 * and every error in the file is found in one pass.
 */

int confp_is_int(const config_setting_t *s)
{
	int t = config_setting_type(s);
	return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
}

/* Reads a duration: a string for policy_parse_duration, or an integer
 * number of milliseconds.  Returns 0 and sets *ms, or -1 after reporting. */
int confp_get_duration(struct loader *L, const config_setting_t *s,
		       const char *key, uint32_t *ms)
{
	int t = config_setting_type(s);
	char qv[QBUF];

	if (confp_is_int(s)) {
		long long v = config_setting_get_int64(s);
		if (v < 0 || v > (long long)DL_DURATION_MAX_MS) {
			confp_add_error(L, confp_line_of(s), "'%s' = %lld is "
					"out of range 0..%u (milliseconds, at "
					"most 30 days)", key, v,
					DL_DURATION_MAX_MS);
			return -1;
		}
		*ms = (uint32_t)v;
		return 0;
	}
	if (t == CONFIG_TYPE_STRING) {
		const char *v = config_setting_get_string(s);
		if (policy_parse_duration(v, ms) == 0)
			return 0;
		confp_add_error(L, confp_line_of(s), "bad duration '%s' for "
				"'%s' (use e.g. \"250ms\", \"2s\", \"1m30s\", "
				"\"1.5s\", or integer milliseconds; at most "
				"30 days)", confp_quote(qv, v), key);
		return -1;
	}
	confp_add_error(L, confp_line_of(s), "'%s' must be a duration string "
			"like \"2s\" or integer milliseconds, not %s%s", key,
			confp_type_name(t), t == CONFIG_TYPE_FLOAT ?
			" (write \"1.5s\" or 1500)" : "");
	return -1;
}

/* The string value of s, or NULL after reporting a type error. */
const char *confp_get_string(struct loader *L, const config_setting_t *s,
			     const char *key)
{
	int t = config_setting_type(s);

	if (t == CONFIG_TYPE_STRING)
		return config_setting_get_string(s);
	confp_add_error(L, confp_line_of(s), "'%s' must be a string, not %s",
			key, confp_type_name(t));
	return NULL;
}

static void parse_errno(struct loader *L, const config_setting_t *s,
			struct conf_values *v)
{
	const char *name = confp_get_string(L, s, "errno");
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
	hint = confp_errno_hint(name);
	confp_quote(qv, name);
	if (hint)
		confp_add_error(L, confp_line_of(s), "unknown errno name '%s'; "
				"did you mean '%s'?", qv, hint);
	else
		confp_add_error(L, confp_line_of(s), "unknown errno name '%s' "
				"(accepted: ETIMEDOUT ECONNRESET ECONNABORTED "
				"ECONNREFUSED EHOSTUNREACH ENETUNREACH "
				"ENETDOWN ENETRESET EHOSTDOWN EPIPE EIO "
				"EAGAIN)", qv);
}

static void parse_teardown(struct loader *L, const config_setting_t *s,
			   struct conf_values *v)
{
	const char *t = confp_get_string(L, s, "teardown");
	char qv[QBUF];

	if (!t)
		return;
	if (strcmp(t, "reset") == 0) {
		v->teardown = CONF_TEARDOWN_RESET;
	} else if (strcmp(t, "close") == 0) {
		v->teardown = CONF_TEARDOWN_CLOSE;
	} else {
		confp_add_error(L, confp_line_of(s), "bad teardown '%s': "
				"expected \"reset\" or \"close\"",
				confp_quote(qv, t));
		return;
	}
	v->set |= CONF_SET_TEARDOWN;
}

static void parse_retries(struct loader *L, const config_setting_t *s,
			  struct conf_values *v)
{
	long long n;

	if (!confp_is_int(s)) {
		confp_add_error(L, confp_line_of(s), "'connect_retries' must "
				"be an integer 0..%d, not %s", CONF_MAX_RETRIES,
				confp_type_name(config_setting_type(s)));
		return;
	}
	n = config_setting_get_int64(s);
	if (n < 0 || n > CONF_MAX_RETRIES) {
		confp_add_error(L, confp_line_of(s), "'connect_retries' = %lld "
				"is out of range 0..%d", n, CONF_MAX_RETRIES);
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
		confp_add_error(L, confp_line_of(s), "'retry_backoff' must be "
				"a group { base = \"100ms\"; max = \"5s\"; }, "
				"not %s",
				confp_type_name(config_setting_type(s)));
		return;
	}
	n = config_setting_length(s);
	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(s, i);
		const char *k = config_setting_name(m);

		if (k && strcmp(k, "base") == 0) {
			if (confp_get_duration(L, m, "retry_backoff.base",
					       &ms) < 0) {
				ok = 0;
				continue;
			}
			v->backoff_base_ms = ms;
			v->set |= CONF_SET_BACKOFF_BASE;
		} else if (k && strcmp(k, "max") == 0) {
			if (confp_get_duration(L, m, "retry_backoff.max",
					       &ms) < 0) {
				ok = 0;
				continue;
			}
			v->backoff_max_ms = ms;
			v->set |= CONF_SET_BACKOFF_MAX;
		} else {
			confp_unknown_key(L, m, " in 'retry_backoff'",
					  backoff_keys, NULL);
		}
	}
	if (ok && (v->set & CONF_SET_BACKOFF_BASE) &&
	    (v->set & CONF_SET_BACKOFF_MAX) &&
	    v->backoff_base_ms > v->backoff_max_ms)
		confp_add_error(L, confp_line_of(s), "'retry_backoff' base (%u "
				"ms) is greater than max (%u ms)",
				v->backoff_base_ms, v->backoff_max_ms);
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
		if (confp_get_duration(L, m, k, &ms) == 0) {
			v->limits.ms[ph] = ms;
			v->set |= CONF_SET_LIMIT(ph);
		}
		return 0;
	}
	if (strcmp(k, "dns_timeout") == 0) {
		if (confp_get_duration(L, m, k, &ms) == 0) {
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
		confp_parse_faults(L, m, v);
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
	const char *s = confp_get_string(L, m, "name");
	char qv[QBUF];
	size_t n;

	if (!s)
		return;
	n = strnlen(s, CONF_NAME_MAX + 1);
	if (n == 0) {
		confp_add_error(L, confp_line_of(m), "rule name is empty");
	} else if (n > CONF_NAME_MAX) {
		confp_add_error(L, confp_line_of(m), "rule name '%s' is longer "
				"than %d bytes", confp_quote(qv, s),
				CONF_NAME_MAX);
	} else if (!name_ok(s)) {
		confp_add_error(L, confp_line_of(m), "rule name '%s' may only "
				"contain printable characters without spaces "
				"or quotes", confp_quote(qv, s));
	} else {
		memcpy(r->name, s, n + 1);
	}
}

static void parse_host(struct loader *L, const config_setting_t *m,
		       struct conf_rule *r)
{
	const char *s = confp_get_string(L, m, "host");
	char err[128], qv[QBUF];
	size_t n;

	if (!s)
		return;
	if (match_glob_check(s, err, sizeof(err)) < 0) {
		confp_add_error(L, confp_line_of(m), "bad host pattern "
				"'%s': %s", confp_quote(qv, s), err);
		return;
	}
	n = strlen(s);
	/* "example.com." is the same host as "example.com"; names are
	 * compared without the root dot on both sides. */
	if (n > 1 && s[n - 1] == '.' && s[n - 2] != '\\')
		n--;
	r->host = malloc(n + 1);
	if (!r->host) {
		confp_add_error(L, confp_line_of(m), "out of memory");
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
		confp_add_error(L, confp_elem_line(L, e), "'cidr' entries must "
				"be strings like \"10.0.0.0/8\", not %s",
				confp_type_name(t));
		return -1;
	}
	s = config_setting_get_string(e);
	if (match_cidr_parse(s, out, err, sizeof(err)) < 0) {
		confp_add_error(L, confp_elem_line(L, e), "bad cidr '%s': %s",
				confp_quote(qv, s), err);
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
			confp_add_error(L, confp_line_of(m), "out of memory");
			return;
		}
		if (parse_one_cidr(L, m, &r->cidrs[0]) == 0)
			r->ncidrs = 1;
		return;
	}
	if (t != CONFIG_TYPE_LIST && t != CONFIG_TYPE_ARRAY) {
		confp_add_error(L, confp_line_of(m), "'cidr' must be a string "
				"or a list of strings, not %s",
				confp_type_name(t));
		return;
	}
	n = config_setting_length(m);
	if (n == 0) {
		confp_add_error(L, confp_line_of(m), "'cidr' list is empty");
		return;
	}
	if (n > CONF_MAX_CIDRS) {
		confp_add_error(L, confp_line_of(m), "'cidr' has %d entries "
				"(limit %d)", n, CONF_MAX_CIDRS);
		return;
	}
	r->cidrs = calloc((size_t)n, sizeof(*r->cidrs));
	if (!r->cidrs) {
		confp_add_error(L, confp_line_of(m), "out of memory");
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

	if (confp_is_int(m)) {
		long long v = config_setting_get_int64(m);
		if (match_ports_from_int(v, &r->ports, err, sizeof(err)) < 0) {
			confp_add_error(L, confp_line_of(m), "bad port: %s",
					err);
			return;
		}
	} else if (t == CONFIG_TYPE_STRING) {
		const char *s = config_setting_get_string(m);
		if (match_ports_parse(s, &r->ports, err, sizeof(err)) < 0) {
			confp_add_error(L, confp_line_of(m),
					"bad port '%s': %s", confp_quote(qv, s),
					err);
			return;
		}
	} else {
		confp_add_error(L, confp_line_of(m), "'port' must be an "
				"integer or a string like \"8000-8999\", "
				"not %s", confp_type_name(t));
		return;
	}
	r->has_ports = 1;
}

static void parse_direction(struct loader *L, const config_setting_t *m,
			    struct conf_rule *r)
{
	const char *s = confp_get_string(L, m, "direction");
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
		confp_add_error(L, confp_line_of(m), "bad direction '%s': "
				"expected \"outbound\", \"inbound\" or \"any\"",
				confp_quote(qv, s));
}

/* Fills rule r (zeroed by the caller) from group g; idx is 1-based. */
static void parse_rule(struct loader *L, const config_setting_t *g,
		       struct conf_rule *r, unsigned idx)
{
	int n = config_setting_length(g);

	r->index = (uint16_t)idx;
	r->line = confp_line_of(g);
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
			confp_unknown_key(L, m, " in rule", confp_match_keys,
					  confp_value_keys);
	}
}

/* Fills c->defaults; match keys are refused there with a pointed message
 * because they are the likeliest misplacement. */
static void parse_defaults(struct loader *L, const config_setting_t *g)
{
	int n;

	if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
		confp_add_error(L, confp_line_of(g), "'defaults' must be a "
				"group { ... }, not %s",
				confp_type_name(config_setting_type(g)));
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
		if (confp_in_list(confp_match_keys, k))
			confp_add_error(L, confp_line_of(m), "'%s' is a match "
					"key: it belongs in a rule, not in "
					"'defaults'", k);
		else
			confp_unknown_key(L, m, " in 'defaults'",
					  confp_value_keys, NULL);
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
				confp_add_error(L, c->rules[i].line,
						"duplicate rule name '%s' "
						"(also rule %u at line %u)",
						c->rules[i].name,
						c->rules[j].index,
						c->rules[j].line);
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
		confp_add_error(L, confp_line_of(list), "'rules' must be a "
				"list ( { ... }, { ... } ), not %s",
				confp_type_name(t));
		return;
	}
	n = config_setting_length(list);
	if (n <= 0)
		return;
	if (n > CONF_MAX_RULES) {
		confp_add_error(L, confp_line_of(config_setting_get_elem(
					       list, CONF_MAX_RULES)),
				"too many rules: %d (limit %d)", n,
				CONF_MAX_RULES);
		return;
	}
	c->rules = calloc((size_t)n, sizeof(*c->rules));
	if (!c->rules) {
		confp_add_error(L, confp_line_of(list), "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, i);
		int et = config_setting_type(g);

		if (et != CONFIG_TYPE_GROUP) {
			confp_add_error(L, confp_elem_line(L, g), "rule %d "
					"must be a group { ... }, not %s",
					i + 1, confp_type_name(et));
			continue;
		}
		parse_rule(L, g, &c->rules[c->nrules], (unsigned)i + 1);
		c->nrules++;
	}
	check_duplicate_names(L);
}

/* Dispatches the top-level settings. */
void confp_parse_root(struct loader *L, const config_setting_t *root)
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
			if (!confp_is_int(m)) {
				confp_add_error(L, confp_line_of(m), "'seed' "
						"must be an integer, not %s",
						confp_type_name(
						    config_setting_type(m)));
				continue;
			}
			L->c->seed = config_setting_get_int64(m);
			L->c->has_seed = 1;
		} else if (confp_in_list(confp_value_keys, k) ||
			   confp_in_list(confp_match_keys, k)) {
			confp_add_error(L, confp_line_of(m), "'%s' is not a "
					"top-level key: put it in 'defaults' "
					"or in a rule", k);
		} else {
			confp_unknown_key(L, m, "", top_keys, NULL);
		}
	}
}
