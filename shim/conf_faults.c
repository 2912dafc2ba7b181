/* conf_faults.c - the `faults` key: fault groups into struct fault_spec
 * (see fault.h, conf_int.h).
 *
 * A group names one or more faults (latency, bandwidth, refuse, ...),
 * their parameters (jitter, on, delay, then, ...) and a trigger
 * (probability, nth, after_bytes, ...).  Each key is checked like every
 * other value (one error at its line, then on to the next key); then the
 * group as a whole: a parameter without its fault, or two faults that
 * cannot share one connection, is an error rather than a silent no-op.
 *
 * Runs inside a load on the caller's struct conf: no locks, errno not part
 * of the contract; the groups are allocated into the conf_values they
 * belong to.
 */
#include "conf_int.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	confp_add_error(L, confp_line_of(s), "'%s' must be true or false, "
			"not %s", key, confp_type_name(config_setting_type(s)));
	return -1;
}

/* One of words[] (value i returned as vals[i]), or -1 after reporting. */
static int get_word(struct loader *L, const config_setting_t *s,
		    const char *key, const char *const *words, const int *vals)
{
	const char *v = confp_get_string(L, s, key);
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
	confp_add_error(L, confp_line_of(s), "bad %s '%s': expected %s", key,
			confp_quote(qv, v), list);
	return -1;
}

static int get_count(struct loader *L, const config_setting_t *s,
		     const char *key, long long lo, long long hi, long long *out)
{
	long long n;

	if (!confp_is_int(s)) {
		confp_add_error(L, confp_line_of(s), "'%s' must be an integer "
				"%lld..%lld, not %s", key, lo, hi,
				confp_type_name(config_setting_type(s)));
		return -1;
	}
	n = config_setting_get_int64(s);
	if (n < lo || n > hi) {
		confp_add_error(L, confp_line_of(s), "'%s' = %lld is out of "
				"range %lld..%lld", key, n, lo, hi);
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
	else if (confp_is_int(s))
		p = (double)config_setting_get_int64(s);
	else {
		confp_add_error(L, confp_line_of(s), "'%s' must be a number "
				"0..1 (e.g. 0.3), not %s", key,
				confp_type_name(config_setting_type(s)));
		return -1;
	}
	if (!(p >= 0.0 && p <= 1.0)) {
		confp_add_error(L, confp_line_of(s), "'%s' = %g is out of "
				"range 0..1", key, p);
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
		if (confp_get_duration(L, m, k, &ms) == 0) {
			f->latency_ms = ms;
			f->kinds |= FK_BIT(kind);
		}
		return;
	case FK_SLOW_CLOSE:
		if (confp_get_duration(L, m, k, &ms) == 0) {
			f->slow_close_ms = ms;
			f->kinds |= FK_BIT(kind);
		}
		return;
	case FK_BANDWIDTH: {
		uint64_t rate;
		if (confp_is_int(m) && config_setting_get_int64(m) > 0) {
			f->rate = (uint64_t)config_setting_get_int64(m);
		} else if (t == CONFIG_TYPE_STRING &&
			   fault_parse_rate(config_setting_get_string(m),
					    &rate) == 0) {
			f->rate = rate;
		} else {
			confp_add_error(L, confp_line_of(m),
					"bad bandwidth%s%s%s: use bytes per "
					"second, e.g. \"100KB\", \"1.5MB/s\", "
					"\"64KiB\", \"800kbit\" or an integer",
					t == CONFIG_TYPE_STRING ? " '" : "",
					t == CONFIG_TYPE_STRING ?
					confp_quote(qv,
					    config_setting_get_string(m)) :
					"", t == CONFIG_TYPE_STRING ? "'" : "");
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
		const char *v = confp_get_string(L, m, k);
		int e = v ? conf_errno_parse(v) : -1;
		if (!v)
			return;
		if (e < 0) {
			confp_add_error(L, confp_line_of(m), "unknown errno "
					"name '%s' for 'error' (accepted: "
					"ETIMEDOUT ECONNRESET ECONNABORTED "
					"ECONNREFUSED EHOSTUNREACH ENETUNREACH "
					"ENETDOWN ENETRESET EHOSTDOWN EPIPE "
					"EIO EAGAIN)", confp_quote(qv, v));
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
		if (confp_get_duration(L, m, k, &ms) == 0)
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
		if (confp_get_duration(L, m, k, &ms) == 0)
			f->delay_ms = ms;
		*seen |= FS_DELAY;
	} else if (strcmp(k, "then") == 0) {
		if ((w = get_word(L, m, k, then_w, then_v)) >= 0)
			f->then = (uint8_t)w;
		*seen |= FS_THEN;
	} else if (strcmp(k, "then_after") == 0) {
		if (confp_get_duration(L, m, k, &ms) == 0)
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
		if (confp_get_duration(L, m, k, &ms) == 0)
			f->after_ms = ms;
	} else if (strcmp(k, "for") == 0) {
		if (confp_get_duration(L, m, k, &ms) == 0)
			f->for_ms = ms;
	} else if (strcmp(k, "times") == 0) {
		if (get_count(L, m, k, 1, UINT32_MAX, &n) == 0)
			f->times = (uint32_t)n;
	} else if (confp_in_list(confp_match_keys, k) ||
		   confp_in_list(confp_value_keys, k)) {
		confp_add_error(L, confp_line_of(m), "'%s' belongs in the "
				"rule, not in 'faults'", k);
	} else {
		confp_unknown_key(L, m, " in 'faults'", fault_keys,
				  confp_match_keys);
	}
}

/* A parameter written without the fault it belongs to is a mistake the
 * user should hear about, not a silent no-op. */
static void check_fault_group(struct loader *L, const config_setting_t *g,
			      const struct fault_spec *f, unsigned seen)
{
	unsigned line = confp_line_of(g);

	if (!f->kinds) {
		confp_add_error(L, line, "fault group names no fault (one of "
				"latency, bandwidth, refuse, unreachable, "
				"blackhole, reset, eof, error, slice, "
				"slow_close, dns)");
		return;
	}
	if ((seen & (FS_JITTER | FS_ON)) && !(f->kinds & FK_BIT(FK_LATENCY)))
		confp_add_error(L, line, "'%s' belongs to 'latency', which "
				"this fault group does not set",
				(seen & FS_JITTER) ? "jitter" : "on");
	if ((seen & FS_DELAY) &&
	    !(f->kinds & (FK_BIT(FK_REFUSE) | FK_BIT(FK_UNREACHABLE))) &&
	    !((f->kinds & FK_BIT(FK_DNS)) && f->dns == FDNS_DELAY))
		confp_add_error(L, line, "'delay' belongs to 'refuse', "
				"'unreachable' or dns = \"delay\", none of "
				"which this fault group sets");
	if ((f->kinds & FK_BIT(FK_DNS)) && f->dns == FDNS_DELAY &&
	    !(seen & FS_DELAY))
		confp_add_error(L, line, "dns = \"delay\" needs 'delay' (e.g. "
				"delay = \"2s\")");
	if ((seen & (FS_THEN | FS_THEN_AFTER)) &&
	    !(f->kinds & FK_BIT(FK_BLACKHOLE)))
		confp_add_error(L, line, "'%s' belongs to 'blackhole', which "
				"this fault group does not set",
				(seen & FS_THEN) ? "then" : "then_after");
	else if ((seen & FS_THEN) && !(seen & FS_THEN_AFTER))
		confp_add_error(L, line, "'then' needs 'then_after' (how long "
				"the blackhole lasts, e.g. then_after = "
				"\"2s\")");
	else if ((seen & FS_THEN_AFTER) && !(seen & FS_THEN))
		confp_add_error(L, line, "'then_after' needs 'then' (\"reset\" "
				"or \"eof\")");
	if ((seen & FS_SPURIOUS) && !(f->kinds & FK_BIT(FK_SLICE)))
		confp_add_error(L, line, "'spurious' belongs to 'slice', which "
				"this fault group does not set");
	if ((f->kinds & (FK_BIT(FK_REFUSE) | FK_BIT(FK_UNREACHABLE))) ==
	    (FK_BIT(FK_REFUSE) | FK_BIT(FK_UNREACHABLE)))
		confp_add_error(L, line, "'refuse' and 'unreachable' cannot "
				"both apply to one connection: put them in "
				"separate fault groups");
	if ((f->kinds & FK_BIT(FK_RESET)) && (f->kinds & FK_BIT(FK_EOF)))
		confp_add_error(L, line, "'reset' and 'eof' cannot both end "
				"one connection: put them in separate "
				"fault groups");
}

static void parse_fault_group(struct loader *L, const config_setting_t *g,
			      struct fault_spec *f, unsigned idx)
{
	int n = config_setting_length(g);
	unsigned seen = 0;
	size_t errs = L->c->nerrors + L->c->errors_dropped;

	memset(f, 0, sizeof(*f));
	f->group = (uint16_t)idx;
	f->line = confp_line_of(g);
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
void confp_parse_faults(struct loader *L, const config_setting_t *s,
			struct conf_values *v)
{
	int t = config_setting_type(s), n;

	if (t == CONFIG_TYPE_GROUP) {
		n = 1;
	} else if (t == CONFIG_TYPE_LIST) {
		n = config_setting_length(s);
		if (n == 0) {
			confp_add_error(L, confp_line_of(s), "'faults' is an "
					"empty list");
			return;
		}
		if (n > CONF_MAX_FAULTS) {
			confp_add_error(L, confp_line_of(s), "'faults' has %d "
					"groups; at most %d are allowed", n,
					CONF_MAX_FAULTS);
			return;
		}
	} else {
		confp_add_error(L, confp_line_of(s), "'faults' must be a group "
				"{ ... } or a list of groups "
				"( { ... }, { ... } ), not %s",
				confp_type_name(t));
		return;
	}
	if (v->faults) {
		confp_add_error(L, confp_line_of(s), "'faults' is given twice");
		return;
	}
	v->faults = calloc((size_t)n, sizeof(*v->faults));
	if (!v->faults) {
		confp_add_error(L, confp_line_of(s), "out of memory");
		return;
	}
	v->nfaults = (uint16_t)n;
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = t == CONFIG_TYPE_GROUP ? s :
			config_setting_get_elem(s, (unsigned)i);

		if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
			confp_add_error(L, confp_line_of(g), "fault %d must be "
					"a group { ... }, not %s", i + 1,
					confp_type_name(
						config_setting_type(g)));
			memset(&v->faults[i], 0, sizeof(v->faults[i]));
			continue;
		}
		parse_fault_group(L, g, &v->faults[i], (unsigned)i + 1);
	}
	v->set |= CONF_SET_FAULTS;
}

int conf_fault_keys_check(const struct conf *file, const struct conf *specs,
			  char *msg, size_t cap)
{
	size_t nf = file ? file->nrules : 0, ns = specs ? specs->nrules : 0;
	size_t n = 1 + nf + ns, a = 0, b = 0;
	uint32_t *keys = malloc(n * sizeof(*keys));
	const char *na, *nb;
	int r;

	if (!keys)
		return -2;
	/* Exactly as the shim keys them: conf_effective's rule_index (0
	 * for defaults) and the position of a spec (inject.c). */
	keys[0] = fault_group_key(FSRC_FILE, 0);
	for (size_t i = 0; i < nf; i++)
		keys[1 + i] = fault_group_key(FSRC_FILE, file->rules[i].index);
	for (size_t i = 0; i < ns; i++)
		keys[1 + nf + i] = fault_group_key(FSRC_SPEC, (unsigned)i);
	r = fault_keys_distinct(keys, n, &a, &b);
	free(keys);
	if (r < 0)
		return -2;
	if (r)
		return 0;
#define NAME_AT(i)                                                          \
	((i) == 0 ? "defaults"                                              \
	 : (i) <= nf ? file->rules[(i) - 1].name                             \
		     : specs->rules[(i) - 1 - nf].name)
	na = NAME_AT(a);
	nb = NAME_AT(b);
#undef NAME_AT
	if (msg && cap) {
		if (a == b)
			snprintf(msg, cap, "%s has no valid key", na);
		else
			snprintf(msg, cap, "%s and %s", na, nb);
	}
	return -1;
}
