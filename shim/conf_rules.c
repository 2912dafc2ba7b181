/* conf_rules.c - using a loaded configuration (see conf.h).
 *
 * conf_apply_env_overrides folds the environment's limits in once, after
 * the load.  Then conf_match (first rule, in file order, whose every match
 * key fits the peer), conf_effective (rule over defaults over built-ins,
 * value by value), conf_lookup (both) and conf_rule_describe.
 *
 * Promises: conf_match, conf_effective, conf_lookup and conf_rule_describe
 * only read the configuration: any number of threads may call them at
 * once, with no locks and no allocation; conf_match leaves errno as it
 * found it.  conf_apply_env_overrides writes, so it runs before the
 * configuration is shared.
 */
#include "conf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

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
