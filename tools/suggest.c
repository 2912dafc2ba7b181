/* suggest.c - deadlines from observed times, and `deadline suggest`.
 *
 * The formula (docs/observe.md): for each peer and phase with at least
 * min_samples samples,
 *     deadline = round_up(max(quantile(q) x margin, floor))
 * where quantile(q) is read from the histogram (at most 1.6 % above the
 * true value) and round_up goes to the next readable step: 1, 2, 5 x 10^k
 * ms up to 20 s, then 30 s, 1m, 2m, 5m, 10m, 20m, 30m, 1h, 2h, 5h, 10h,
 * 24h, 48h, 120h, 240h, 720h (the longest duration a rule takes).
 * The output is a configuration file; before printing it, it is loaded
 * with the same code `deadline check` uses, so what is printed loads.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "obsdata.h"
#include "policy.h"

void sg_defaults(struct sg_opts *o)
{
	o->quantile = 0.999;
	o->margin = 2.0;
	o->min_samples = 20;
	o->floor_ms = 100;
}

static const uint32_t steps_ms[] = {
	1, 2, 5, 10, 20, 50, 100, 200, 500,
	1000, 2000, 5000, 10000, 20000, 30000,
	60000, 120000, 300000, 600000, 1200000, 1800000,
	3600000, 7200000, 18000000, 36000000, 86400000,
	172800000, 432000000, 864000000, 2592000000u,
};

uint32_t sg_round_ms(uint64_t ms)
{
	for (size_t i = 0; i < sizeof(steps_ms) / sizeof(steps_ms[0]); i++)
		if (ms <= steps_ms[i])
			return steps_ms[i];
	return DL_DURATION_MAX_MS;
}

char *sg_fmt_ms(uint32_t ms, char *buf, size_t len)
{
	if (ms < 1000 || ms % 1000)
		snprintf(buf, len, "%ums", ms);
	else if (ms < 60000 || ms % 60000)
		snprintf(buf, len, "%us", ms / 1000);
	else if (ms < 3600000 || ms % 3600000)
		snprintf(buf, len, "%um", ms / 60000);
	else
		snprintf(buf, len, "%uh", ms / 3600000);
	return buf;
}

uint32_t sg_deadline_ms(const struct ob_hist *h, const struct sg_opts *o)
{
	double v;

	if (!h->count || h->count < o->min_samples)
		return 0;
	v = (double)ob_quantile(h, o->quantile) * o->margin / 1000.0;
	if (v < o->floor_ms)
		v = o->floor_ms;
	if (v > DL_DURATION_MAX_MS)
		v = DL_DURATION_MAX_MS;
	return sg_round_ms((uint64_t)(v + 0.999));
}

static int arg_value(int argc, char **argv, int *i, const char *name,
		     const char **val)
{
	size_t n = strlen(name);

	if (strcmp(argv[*i], name) == 0) {
		if (*i + 1 >= argc) {
			fprintf(stderr, "deadline: %s needs a value\n", name);
			return -1;
		}
		*val = argv[++*i];
		return 1;
	}
	if (strncmp(argv[*i], name, n) == 0 && argv[*i][n] == '=') {
		*val = argv[*i] + n + 1;
		return 1;
	}
	return 0;
}

int sg_parse_common(int argc, char **argv, int *i, struct sg_opts *o)
{
	const char *v;
	char *end;
	int k;

	if ((k = arg_value(argc, argv, i, "--quantile", &v)) != 0) {
		if (k < 0)
			return -1;
		errno = 0;
		o->quantile = strtod(v, &end);
		if (errno || end == v || *end || !(o->quantile > 0) ||
		    o->quantile > 1) {
			fprintf(stderr, "deadline: --quantile '%s': a number "
				"above 0, at most 1 (e.g. 0.999)\n", v);
			return -1;
		}
		return 1;
	}
	if ((k = arg_value(argc, argv, i, "--margin", &v)) != 0) {
		if (k < 0)
			return -1;
		errno = 0;
		o->margin = strtod(v, &end);
		if (errno || end == v || *end || !(o->margin >= 1) ||
		    o->margin > 1000) {
			fprintf(stderr, "deadline: --margin '%s': a number from "
				"1 to 1000 (e.g. 2)\n", v);
			return -1;
		}
		return 1;
	}
	if ((k = arg_value(argc, argv, i, "--min-samples", &v)) != 0) {
		unsigned long long n;

		if (k < 0)
			return -1;
		errno = 0;
		n = strtoull(v, &end, 10);
		if (errno || end == v || *end || *v == '-' || !n) {
			fprintf(stderr, "deadline: --min-samples '%s': a whole "
				"number, at least 1\n", v);
			return -1;
		}
		o->min_samples = n;
		return 1;
	}
	if ((k = arg_value(argc, argv, i, "--floor", &v)) != 0) {
		if (k < 0)
			return -1;
		if (policy_parse_duration(v, &o->floor_ms) < 0) {
			fprintf(stderr, "deadline: --floor '%s': a duration "
				"(e.g. 100ms, or 0)\n", v);
			return -1;
		}
		return 1;
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * The configuration text
 */

struct text {
	char *p;
	size_t n, cap;
};

static void tput(struct text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void tput(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int k;

	va_start(ap, fmt);
	k = vsnprintf(0, 0, fmt, ap);
	va_end(ap);
	if (k < 0)
		return;
	if (t->n + (size_t)k + 1 > t->cap) {
		size_t nc = t->cap ? t->cap : 4096;

		while (nc < t->n + (size_t)k + 1)
			nc *= 2;
		t->p = realloc(t->p, nc);
		if (!t->p) {
			fprintf(stderr, "deadline: out of memory\n");
			exit(125);
		}
		t->cap = nc;
	}
	va_start(ap, fmt);
	vsnprintf(t->p + t->n, t->cap - t->n, fmt, ap);
	va_end(ap);
	t->n += (size_t)k;
}

/* What kind of peer a series is. */
enum peer_kind { PK_NAME, PK_ADDR, PK_INBOUND, PK_NONE };

static enum peer_kind kind_of(const struct ob_series *s, int *v6)
{
	unsigned char a[16];

	*v6 = 0;
	if (s->inbound)
		return s->port ? PK_INBOUND : PK_NONE;
	if (!strcmp(s->host, "other") || !strcmp(s->host, "-"))
		return PK_NONE;
	if (inet_pton(AF_INET, s->host, a) == 1)
		return PK_ADDR;
	if (inet_pton(AF_INET6, s->host, a) == 1) {
		*v6 = 1;
		return PK_ADDR;
	}
	return PK_NAME;
}

/* A rule name from the peer: printable, no spaces or quotes, unique. */
static void rule_name(const struct ob_series *s, char *out, size_t len,
		      char (*used)[CONF_NAME_MAX + 1], size_t nused)
{
	char base[CONF_NAME_MAX - 7];	/* room for "-NNNNNN" */
	size_t o = 0;

	if (s->inbound) {
		snprintf(base, sizeof(base), "inbound-%u", s->port);
	} else {
		for (const char *p = s->host; *p && o + 1 < sizeof(base); p++) {
			unsigned char c = (unsigned char)*p;

			base[o++] = (c <= 0x20 || c >= 0x7f || c == '"' ||
				     c == '\'' || c == '\\')
					    ? '_'
					    : (char)c;
		}
		base[o] = 0;
	}
	snprintf(out, len, "%s", base);
	for (unsigned k = 2;; k++) {
		size_t i;

		for (i = 0; i < nused && strcmp(used[i], out); i++)
			;
		if (i == nused)
			return;
		snprintf(out, len, "%s-%u", base, k % 1000000);
	}
}

/* The host as a glob matching only itself, as a libconfig string. */
static void host_glob(const char *h, char *out, size_t len)
{
	size_t o = 0;

	for (; *h && o + 5 < len; h++) {
		if (strchr("*?[]\\", *h)) {
			out[o++] = '\\';	/* the glob's quote ... */
			out[o++] = '\\';	/* ... as libconfig writes it */
		}
		if (*h == '"' || *h == '\\') {
			out[o++] = '\\';
		}
		out[o++] = *h;
	}
	out[o] = 0;
}

/* s for a comment line: bytes outside ' '..'~' as '?'. */
static const char *printable(const char *s, char *out, size_t len)
{
	size_t o = 0;

	for (; *s && o + 1 < len; s++)
		out[o++] = (*s < ' ' || *s > '~') ? '?' : *s;
	out[o] = 0;
	return out;
}

static void comment_phase(struct text *t, const struct ob_hist *h, int ph,
			  uint32_t dl, const struct sg_opts *o)
{
	char a[32], b[32], c[32], d[32], e[32];

	if (!h->count) {
		tput(t, "  #   %-10s no samples\n", ob_phase_name(ph));
		return;
	}
	tput(t, "  #   %-10s n=%-7llu p50=%-8s p99=%-8s p99.9=%-8s max=%-8s",
	     ob_phase_name(ph), (unsigned long long)h->count,
	     ob_fmt_us(ob_quantile(h, 0.5), a, sizeof(a)),
	     ob_fmt_us(ob_quantile(h, 0.99), b, sizeof(b)),
	     ob_fmt_us(ob_quantile(h, 0.999), c, sizeof(c)),
	     ob_fmt_us(h->max_us, d, sizeof(d)));
	if (dl)
		tput(t, " -> %s\n", sg_fmt_ms(dl, e, sizeof(e)));
	else
		tput(t, " -> none (fewer than %llu samples)\n",
		     (unsigned long long)o->min_samples);
}

static const char *const keys_of[OBS_NPH] = {
	"connect_timeout", "first_byte_timeout", "idle_timeout",
	"request_timeout",
};

/* The configuration for g (series by host) into t. */
static void build(struct text *t, const struct ob_data *g,
		  const struct sg_opts *o, int nfiles)
{
	char (*used)[CONF_NAME_MAX + 1] = calloc(g->n + 1, sizeof(*used));
	uint64_t total = 0;
	size_t nused = 0, nrules = 0;
	char fl[32];

	if (!used) {
		fprintf(stderr, "deadline: out of memory\n");
		exit(125);
	}
	for (size_t i = 0; i < g->n; i++)
		total += ob_connections(&g->s[i]);
	tput(t, "# Deadlines suggested by `deadline suggest` from %d observe "
	     "file%s: %llu connections, %zu peers, %zu process%s.\n", nfiles,
	     nfiles == 1 ? "" : "s", (unsigned long long)total, g->n, g->np,
	     g->np == 1 ? "" : "es");
	tput(t, "#\n# Each deadline = the %g%s percentile of the times observed "
	     "x %g, never\n# below %s, rounded up to the next of 1, 2, 5 x "
	     "10^k ms (up to 20s; then\n# 30s, 1m, 2m, 5m, 10m, 20m, 30m, 1h, "
	     "...).  A phase with fewer than %llu\n# samples gets none; a peer "
	     "whose phases all have too few gets no rule.\n",
	     o->quantile * 100, "th", o->margin,
	     sg_fmt_ms(o->floor_ms, fl, sizeof(fl)),
	     (unsigned long long)o->min_samples);
	tput(t, "# Peers not seen while observing match no rule (no "
	     "deadline): add a `defaults`\n# group for them.  Use it with: "
	     "deadline --config FILE -- COMMAND\n\nrules = (\n");
	for (int pass = 0; pass < 3; pass++) {
		for (size_t i = 0; i < g->n; i++) {
			const struct ob_series *s = &g->s[i];
			uint32_t dl[OBS_NPH];
			int v6, any = 0;
			enum peer_kind k = kind_of(s, &v6);
			char name[CONF_NAME_MAX + 1], buf[600], ms[32];

			/* Names first, then addresses, then inbound ports:
			 * a name's rule must be seen before an address rule
			 * could catch the same peer. */
			if ((pass == 0 && k != PK_NAME) ||
			    (pass == 1 && k != PK_ADDR) ||
			    (pass == 2 && k != PK_INBOUND && k != PK_NONE))
				continue;
			for (int p = 0; p < OBS_NPH; p++) {
				dl[p] = sg_deadline_ms(&s->ph[p], o);
				/* No connect phase for accepted sockets. */
				if (s->inbound && p == DL_PH_CONNECT)
					dl[p] = 0;
				any |= dl[p] != 0;
			}
			if (s->inbound)
				tput(t, "\n  # inbound, local port %u (rule %s): "
				     "%llu connections\n", s->port,
				     printable(s->rule, buf, sizeof(buf)),
				     (unsigned long long)ob_connections(s));
			else
				tput(t, "\n  # %s (outbound; rule %s): %llu "
				     "connections\n",
				     printable(s->host, buf, sizeof(buf) / 2),
				     printable(s->rule, buf + sizeof(buf) / 2,
					       sizeof(buf) / 2),
				     (unsigned long long)ob_connections(s));
			for (int p = 0; p < OBS_NPH; p++)
				if (!(s->inbound && p == DL_PH_CONNECT))
					comment_phase(t, &s->ph[p], p, dl[p], o);
			if (k == PK_NONE) {
				tput(t, "  # (no rule: not one peer)\n");
				continue;
			}
			if (!any) {
				tput(t, "  # (no rule: too few samples to "
				     "trust, fewer than %llu)\n",
				     (unsigned long long)o->min_samples);
				continue;
			}
			rule_name(s, name, sizeof(name), used, nused);
			memcpy(used[nused++], name, sizeof(name));
			tput(t, "  %s{\n    name = \"%s\";\n",
			     nrules ? "," : "", name);
			if (k == PK_NAME) {
				host_glob(s->host, buf, sizeof(buf));
				tput(t, "    host = \"%s\";\n", buf);
			} else if (k == PK_ADDR) {
				tput(t, "    cidr = \"%s/%d\";\n", s->host,
				     v6 ? 128 : 32);
			} else {
				tput(t, "    port = %u;\n", s->port);
			}
			tput(t, "    direction = \"%s\";\n",
			     s->inbound ? "inbound" : "outbound");
			for (int p = 0; p < OBS_NPH; p++)
				if (dl[p])
					tput(t, "    %s = \"%s\";\n", keys_of[p],
					     sg_fmt_ms(dl[p], ms, sizeof(ms)));
			tput(t, "  }\n");
			nrules++;
		}
	}
	tput(t, ");\n");
	free(used);
}

static void suggest_usage(FILE *f)
{
	fprintf(f,
"Usage: deadline suggest FILE... [--quantile Q] [--margin M]\n"
"                        [--min-samples N] [--floor D] [-o OUT]\n"
"Print a configuration file with one rule per peer seen in the observe\n"
"FILEs (deadline observe): each deadline = the Q quantile (default\n"
"0.999) of the times seen x M (default 2), at least D (default 100ms),\n"
"rounded up to a readable value; phases with fewer than N (default 20)\n"
"samples get none.  The output loads as `deadline check` checks it.\n");
}

int suggest_cmd(int argc, char **argv)
{
	struct sg_opts o;
	struct ob_data d, g;
	struct text t = { 0, 0, 0 };
	struct conf c;
	const char *out = 0;
	char err[600];
	int nfiles = 0, k;

	sg_defaults(&o);
	memset(&d, 0, sizeof(d));
	for (int i = 1; i < argc; i++) {
		if ((k = sg_parse_common(argc, argv, &i, &o)) < 0)
			return 125;
		if (k)
			continue;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			suggest_usage(stdout);
			return 0;
		}
		if (!strcmp(argv[i], "-o") && i + 1 < argc) {
			out = argv[++i];
			continue;
		}
		if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "deadline: suggest: unknown option "
				"'%s'\n", argv[i]);
			suggest_usage(stderr);
			return 125;
		}
		if (ob_read(&d, argv[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "deadline: suggest: %s\n", err);
			ob_free(&d);
			return 2;
		}
		nfiles++;
	}
	if (!nfiles) {
		fprintf(stderr, "deadline: suggest: no FILE\n");
		suggest_usage(stderr);
		return 125;
	}
	ob_by_host(&d, &g);
	build(&t, &g, &o, nfiles);
	ob_free(&g);
	ob_free(&d);
	/* What is printed must load: the same code as `deadline check`. */
	conf_init(&c);
	if (conf_load_mem(&c, t.p, t.n, "suggested") < 0) {
		fprintf(stderr, "deadline: suggest: internal error, the "
			"suggested file does not load:\n");
		for (size_t i = 0; i < c.nerrors; i++)
			fprintf(stderr, "  %s\n", c.errors[i]);
		conf_free(&c);
		free(t.p);
		return 2;
	}
	conf_free(&c);
	if (out) {
		FILE *f = fopen(out, "w");

		if (!f || fwrite(t.p, 1, t.n, f) != t.n || fclose(f) != 0) {
			fprintf(stderr, "deadline: suggest: %s: %s\n", out,
				strerror(errno));
			free(t.p);
			return 2;
		}
	} else {
		fwrite(t.p, 1, t.n, stdout);
	}
	free(t.p);
	return 0;
}
