/* observe.c - the observe files: read, merge, write; and `deadline
 * observe -o FILE -- COMMAND`, which runs COMMAND with DEADLINE_OBSERVE
 * set and merges the part each of its processes wrote (FILE.<pid>) into
 * FILE.  The format is in docs/observe.md (and shim/observe.h).
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "obsdata.h"
#include "policy.h"

static const char *const ph_names[OBS_NPH] = {
	"connect", "first_byte", "idle", "request"
};

const char *ob_phase_name(int ph)
{
	return ph >= 0 && ph < OBS_NPH ? ph_names[ph] : "?";
}

char *ob_fmt_us(uint64_t us, char *buf, size_t len)
{
	if (us < 1000)
		snprintf(buf, len, "%lluus", (unsigned long long)us);
	else if (us < 10000)
		snprintf(buf, len, "%.2fms", (double)us / 1e3);
	else if (us < 100000)
		snprintf(buf, len, "%.1fms", (double)us / 1e3);
	else if (us < 1000000)
		snprintf(buf, len, "%.0fms", (double)us / 1e3);
	else if (us < 100000000)
		snprintf(buf, len, "%.2fs", (double)us / 1e6);
	else
		snprintf(buf, len, "%.0fs", (double)us / 1e6);
	return buf;
}

/* ------------------------------------------------------------------------
 * The data
 */

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q) {
		fprintf(stderr, "deadline: out of memory\n");
		exit(125);
	}
	return q;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p) {
		fprintf(stderr, "deadline: out of memory\n");
		exit(125);
	}
	return p;
}

static struct ob_series *series_get(struct ob_data *d, int inbound,
				    unsigned port, const char *host,
				    const char *rule)
{
	struct ob_series *s;

	for (size_t i = 0; i < d->n; i++) {
		s = &d->s[i];
		if (s->inbound == inbound && s->port == port &&
		    strcmp(s->host, host) == 0 && strcmp(s->rule, rule) == 0)
			return s;
	}
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 16;
		d->s = xrealloc(d->s, d->cap * sizeof(*d->s));
	}
	s = &d->s[d->n++];
	memset(s, 0, sizeof(*s));
	s->inbound = inbound;
	s->port = port;
	s->host = xstrdup(host);
	s->rule = xstrdup(rule);
	return s;
}

static void hist_add(struct ob_hist *to, const struct ob_hist *from)
{
	if (!from->count)
		return;
	if (!to->b) {
		to->b = calloc(OBS_NB, sizeof(*to->b));
		if (!to->b) {
			fprintf(stderr, "deadline: out of memory\n");
			exit(125);
		}
	}
	for (unsigned i = 0; i < OBS_NB; i++)
		to->b[i] += from->b[i];
	to->count += from->count;
	to->sum_us += from->sum_us;
	if (from->max_us > to->max_us)
		to->max_us = from->max_us;
}

static void tl_copy(struct ob_series *to, const struct ob_tl *t)
{
	struct ob_tl *n;

	to->tl = xrealloc(to->tl, (to->ntl + 1) * sizeof(*to->tl));
	n = &to->tl[to->ntl++];
	*n = *t;
	n->idx = xrealloc(0, t->n * sizeof(*n->idx));
	n->cnt = xrealloc(0, t->n * sizeof(*n->cnt));
	memcpy(n->idx, t->idx, t->n * sizeof(*n->idx));
	memcpy(n->cnt, t->cnt, t->n * sizeof(*n->cnt));
}

void ob_free(struct ob_data *d)
{
	for (size_t i = 0; i < d->n; i++) {
		struct ob_series *s = &d->s[i];

		free(s->host);
		free(s->rule);
		for (int p = 0; p < OBS_NPH; p++)
			free(s->ph[p].b);
		for (size_t t = 0; t < s->ntl; t++) {
			free(s->tl[t].idx);
			free(s->tl[t].cnt);
		}
		free(s->tl);
	}
	for (size_t i = 0; i < d->np; i++)
		free(d->p[i].exe);
	free(d->s);
	free(d->p);
	memset(d, 0, sizeof(*d));
}

uint64_t ob_connections(const struct ob_series *s)
{
	uint64_t m = 0;

	if (!s->inbound && s->ph[DL_PH_CONNECT].count)
		return s->ph[DL_PH_CONNECT].count;
	if (s->ph[DL_PH_REQUEST].count)
		return s->ph[DL_PH_REQUEST].count;
	for (int p = 0; p < OBS_NPH; p++)
		if (s->ph[p].count > m)
			m = s->ph[p].count;
	return m;
}

uint64_t ob_quantile(const struct ob_hist *h, double q)
{
	uint64_t want, seen = 0;

	if (!h->count || !h->b)
		return 0;
	if (q <= 0)
		q = 0;
	want = (uint64_t)((double)h->count * q + 0.999999);
	if (want < 1)
		want = 1;
	if (want > h->count)
		want = h->count;
	for (unsigned i = 0; i < OBS_NB; i++) {
		seen += h->b[i];
		if (seen >= want) {
			uint64_t hi = obs_bucket_high(i);

			if (i == OBS_NB - 1 || hi > h->max_us)
				return h->max_us;
			return hi;
		}
	}
	return h->max_us;
}

static int cmp_conns(const void *a, const void *b)
{
	uint64_t x = ob_connections(a), y = ob_connections(b);
	const struct ob_series *p = a, *q = b;

	if (x != y)
		return x < y ? 1 : -1;
	if (p->inbound != q->inbound)
		return p->inbound - q->inbound;
	return strcmp(p->host, q->host);
}

int ob_by_host(const struct ob_data *in, struct ob_data *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < in->n; i++) {
		const struct ob_series *s = &in->s[i];
		struct ob_series *g = 0;

		for (size_t j = 0; j < out->n; j++)
			if (out->s[j].inbound == s->inbound &&
			    out->s[j].port == s->port &&
			    strcmp(out->s[j].host, s->host) == 0)
				g = &out->s[j];
		if (!g) {
			g = series_get(out, s->inbound, s->port, s->host,
				       s->rule);
		} else if (strcmp(g->rule, s->rule) != 0) {
			free(g->rule);
			g->rule = xstrdup("(several)");
		}
		for (int p = 0; p < OBS_NPH; p++)
			hist_add(&g->ph[p], &s->ph[p]);
		for (size_t t = 0; t < s->ntl; t++)
			tl_copy(g, &s->tl[t]);
	}
	if (out->n)
		qsort(out->s, out->n, sizeof(*out->s), cmp_conns);
	for (size_t i = 0; i < in->np; i++) {
		if (out->np == out->pcap) {
			out->pcap = out->pcap ? out->pcap * 2 : 8;
			out->p = xrealloc(out->p, out->pcap * sizeof(*out->p));
		}
		out->p[out->np] = in->p[i];
		out->p[out->np++].exe = xstrdup(in->p[i].exe);
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * Reading
 */

/* Decode a word's %XX escapes in place. */
static void unescape(char *w)
{
	char *o = w;

	for (char *p = w; *p; p++) {
		unsigned v;

		if (*p == '%' && sscanf(p + 1, "%2x", &v) == 1 && p[1] && p[2]) {
			*o++ = (char)v;
			p += 2;
		} else {
			*o++ = *p;
		}
	}
	*o = 0;
}

#define MAXW 4096

/* Split line into at most max words (in place).  Returns their number. */
static size_t words(char *line, char **w, size_t max)
{
	size_t n = 0;
	char *save = 0;

	for (char *t = strtok_r(line, " \t\r\n", &save); t && n < max;
	     t = strtok_r(0, " \t\r\n", &save))
		w[n++] = t;
	return n;
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	if (*s == '-' || !*s)
		return -1;
	*v = strtoull(s, &end, 10);
	return errno || *end ? -1 : 0;
}

static int phase_of(const char *s)
{
	for (int p = 0; p < OBS_NPH; p++)
		if (strcmp(s, ph_names[p]) == 0)
			return p;
	return -1;
}

static int bad(char *err, size_t len, const char *path, size_t line,
	       const char *what)
{
	snprintf(err, len, "%s:%zu: %s", path, line, what);
	return -1;
}

/* One h line: h DIR HOST PORT RULE PHASE COUNT SUM MAX I:N... */
static int read_h(struct ob_data *d, char **w, size_t n)
{
	struct ob_hist h = { 0, 0, 0, 0 };
	uint64_t port, cnt = 0;
	struct ob_series *s;
	int ph;

	if (n < 9 || (strcmp(w[1], "in") && strcmp(w[1], "out")) ||
	    parse_u64(w[3], &port) || port > 65535 ||
	    (ph = phase_of(w[5])) < 0 || parse_u64(w[6], &h.count) ||
	    parse_u64(w[7], &h.sum_us) || parse_u64(w[8], &h.max_us))
		return -1;
	h.b = calloc(OBS_NB, sizeof(*h.b));
	if (!h.b)
		return -1;
	for (size_t i = 9; i < n; i++) {
		unsigned long long b, c;
		char tail;

		if (sscanf(w[i], "%llu:%llu%c", &b, &c, &tail) != 2 ||
		    b >= OBS_NB) {
			free(h.b);
			return -1;
		}
		h.b[b] += c;
		cnt += c;
	}
	if (cnt != h.count) {
		free(h.b);
		return -1;
	}
	unescape(w[2]);
	unescape(w[4]);
	s = series_get(d, w[1][0] == 'i', (unsigned)port, w[2], w[4]);
	hist_add(&s->ph[ph], &h);
	free(h.b);
	return 0;
}

/* One t line: t DIR HOST PORT RULE T0_MS BIN_MS I:N... */
static int read_t(struct ob_data *d, char **w, size_t n)
{
	struct ob_tl t = { 0, 0, 0, 0, 0 };
	uint64_t port, t0, bin;
	struct ob_series *s;

	if (n < 7 || (strcmp(w[1], "in") && strcmp(w[1], "out")) ||
	    parse_u64(w[3], &port) || port > 65535 || parse_u64(w[5], &t0) ||
	    parse_u64(w[6], &bin) || !bin || bin > UINT32_MAX)
		return -1;
	t.t0_ms = (int64_t)t0;
	t.bin_ms = (uint32_t)bin;
	t.idx = xrealloc(0, (n - 7) * sizeof(*t.idx));
	t.cnt = xrealloc(0, (n - 7) * sizeof(*t.cnt));
	for (size_t i = 7; i < n; i++) {
		unsigned long b, c;
		char tail;

		if (sscanf(w[i], "%lu:%lu%c", &b, &c, &tail) != 2 ||
		    b > UINT32_MAX || c > UINT32_MAX) {
			free(t.idx);
			free(t.cnt);
			return -1;
		}
		t.idx[t.n] = (uint32_t)b;
		t.cnt[t.n++] = (uint32_t)c;
	}
	unescape(w[2]);
	unescape(w[4]);
	s = series_get(d, w[1][0] == 'i', (unsigned)port, w[2], w[4]);
	tl_copy(s, &t);
	free(t.idx);
	free(t.cnt);
	return 0;
}

static int read_p(struct ob_data *d, char **w, size_t n)
{
	uint64_t pid, a, b;

	if (n < 4 || parse_u64(w[1], &pid) || parse_u64(w[2], &a) ||
	    parse_u64(w[3], &b))
		return -1;
	if (d->np == d->pcap) {
		d->pcap = d->pcap ? d->pcap * 2 : 8;
		d->p = xrealloc(d->p, d->pcap * sizeof(*d->p));
	}
	if (n > 4)
		unescape(w[4]);
	d->p[d->np].pid = (long)pid;
	d->p[d->np].start_ms = (int64_t)a;
	d->p[d->np].end_ms = (int64_t)b;
	d->p[d->np++].exe = xstrdup(n > 4 ? w[4] : "-");
	return 0;
}

int ob_read(struct ob_data *d, const char *path, char *err, size_t errlen)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	char *line = 0, **w;
	size_t cap = 0, ln = 0;
	int version = 0, rc = 0;
	ssize_t len;

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	w = xrealloc(0, MAXW * sizeof(*w));
	while ((len = getline(&line, &cap, f)) >= 0) {
		size_t n;

		ln++;
		if (line[0] == '#' || line[0] == '\n')
			continue;
		n = words(line, w, MAXW);
		if (!n)
			continue;
		if (strcmp(w[0], "v") == 0) {
			if (n < 4 || atoi(w[1]) != OBS_FORMAT_VERSION ||
			    atoi(w[2]) != (int)OBS_SUB || strcmp(w[3], "us")) {
				rc = bad(err, errlen, path, ln, "format version "
					 "not supported (this deadline reads "
					 "format 1, 64 sub-buckets, us)");
				break;
			}
			version = 1;
			continue;
		}
		if (!version) {
			rc = bad(err, errlen, path, ln, "not an observe file "
				 "(no 'v' line first)");
			break;
		}
		if ((strcmp(w[0], "h") == 0 && read_h(d, w, n) < 0) ||
		    (strcmp(w[0], "t") == 0 && read_t(d, w, n) < 0) ||
		    (strcmp(w[0], "p") == 0 && read_p(d, w, n) < 0)) {
			rc = bad(err, errlen, path, ln, "malformed line");
			break;
		}
		/* Other line types: from a later minor version; skipped. */
	}
	if (!rc && !version)
		rc = bad(err, errlen, path, ln, "empty, or not an observe file");
	free(w);
	free(line);
	if (f != stdin)
		fclose(f);
	return rc;
}

/* ------------------------------------------------------------------------
 * Writing
 */

static void wword(FILE *f, const char *s)
{
	fputc(' ', f);
	if (!*s)
		s = "-";
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= ' ' || c >= 0x7f || c == '%')
			fprintf(f, "%%%02X", c);
		else
			fputc(c, f);
	}
}

int ob_write(FILE *f, const struct ob_data *d)
{
	fprintf(f, "# libdeadline observe file, format %d (docs/observe.md)\n",
		OBS_FORMAT_VERSION);
	fprintf(f, "v %d %u us\n", OBS_FORMAT_VERSION, OBS_SUB);
	for (size_t i = 0; i < d->np; i++) {
		fprintf(f, "p %ld %lld %lld", d->p[i].pid,
			(long long)d->p[i].start_ms, (long long)d->p[i].end_ms);
		wword(f, d->p[i].exe);
		fputc('\n', f);
	}
	for (size_t i = 0; i < d->n; i++) {
		const struct ob_series *s = &d->s[i];

		for (int p = 0; p < OBS_NPH; p++) {
			const struct ob_hist *h = &s->ph[p];

			if (!h->count)
				continue;
			fprintf(f, "h %s", s->inbound ? "in" : "out");
			wword(f, s->host);
			fprintf(f, " %u", s->port);
			wword(f, s->rule);
			fprintf(f, " %s %llu %llu %llu", ph_names[p],
				(unsigned long long)h->count,
				(unsigned long long)h->sum_us,
				(unsigned long long)h->max_us);
			for (unsigned b = 0; b < OBS_NB; b++)
				if (h->b[b])
					fprintf(f, " %u:%llu", b,
						(unsigned long long)h->b[b]);
			fputc('\n', f);
		}
		for (size_t t = 0; t < s->ntl; t++) {
			const struct ob_tl *tl = &s->tl[t];

			fprintf(f, "t %s", s->inbound ? "in" : "out");
			wword(f, s->host);
			fprintf(f, " %u", s->port);
			wword(f, s->rule);
			fprintf(f, " %lld %u", (long long)tl->t0_ms, tl->bin_ms);
			for (size_t k = 0; k < tl->n; k++)
				fprintf(f, " %u:%u", tl->idx[k], tl->cnt[k]);
			fputc('\n', f);
		}
	}
	return ferror(f) ? -1 : 0;
}

/* ------------------------------------------------------------------------
 * deadline observe
 */

static pid_t child;

static void forward(int sig)
{
	if (child > 0)
		kill(child, sig);
}

static void observe_usage(void)
{
	fprintf(stderr,
"Usage: deadline observe -o FILE [--interval D] [OPTIONS] [--] COMMAND...\n"
"Run COMMAND with libdeadline observing: no deadline is enforced; the\n"
"time each phase takes is recorded per host, and written to FILE.\n"
"-o and --interval come first; OPTIONS are deadline's (--config, --fault,\n"
"--log, ...).  Then: deadline suggest FILE, deadline report FILE.\n");
}

/* Is name "<base>.<digits>"? */
static int is_part(const char *name, const char *base)
{
	size_t n = strlen(base);

	if (strncmp(name, base, n) != 0 || name[n] != '.' || !name[n + 1])
		return 0;
	for (const char *p = name + n + 1; *p; p++)
		if (*p < '0' || *p > '9')
			return 0;
	return 1;
}

/* Each part FILE.<pid> in FILE's directory: read into d (if d) and
 * removed.  Returns how many, or -1 (message printed). */
static int parts(const char *file, struct ob_data *d)
{
	char dir[PATH_MAX], path[PATH_MAX + 256], err[512];
	const char *base = strrchr(file, '/');
	struct dirent *e;
	DIR *dp;
	int n = 0;

	if (!base) {
		strcpy(dir, ".");
		base = file;
	} else {
		snprintf(dir, sizeof(dir), "%.*s", (int)(base - file), file);
		if (!dir[0])
			strcpy(dir, "/");
		base++;
	}
	dp = opendir(dir);
	if (!dp) {
		fprintf(stderr, "deadline: observe: %s: %s\n", dir,
			strerror(errno));
		return -1;
	}
	while ((e = readdir(dp))) {
		if (!is_part(e->d_name, base))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (d && ob_read(d, path, err, sizeof(err)) < 0) {
			fprintf(stderr, "deadline: observe: %s (left in place)\n",
				err);
			continue;
		}
		unlink(path);
		n++;
	}
	closedir(dp);
	return n;
}

static char *abs_path(const char *p)
{
	char cwd[PATH_MAX], *r;
	size_t n;

	if (p[0] == '/' || !getcwd(cwd, sizeof(cwd)))
		return xstrdup(p);
	n = strlen(cwd) + strlen(p) + 2;
	r = xrealloc(0, n);
	snprintf(r, n, "%s/%s", cwd, p);
	return r;
}

/* Merge the parts into file; print what was seen. */
static int merge(const char *file)
{
	struct ob_data d, g;
	char tmp[PATH_MAX + 16];
	uint64_t conns = 0;
	int n = 0;
	FILE *f;

	memset(&d, 0, sizeof(d));
	n = parts(file, &d);
	if (n < 0)
		return -1;
	snprintf(tmp, sizeof(tmp), "%s.tmp", file);
	f = fopen(tmp, "w");
	if (!f) {
		fprintf(stderr, "deadline: observe: %s: %s\n", tmp,
			strerror(errno));
		ob_free(&d);
		return -1;
	}
	if (ob_write(f, &d) < 0 || fclose(f) != 0 || rename(tmp, file) < 0) {
		fprintf(stderr, "deadline: observe: cannot write %s: %s\n",
			file, strerror(errno));
		unlink(tmp);
		ob_free(&d);
		return -1;
	}
	ob_by_host(&d, &g);
	for (size_t i = 0; i < g.n; i++)
		conns += ob_connections(&g.s[i]);
	if (!conns)
		fprintf(stderr, "deadline: observe: no TCP connection was seen "
			"(a static or Go program, or one that never connected, "
			"cannot be observed)\n");
	fprintf(stderr, "deadline: observed %llu connection%s (%zu peer%s, "
		"%d process%s) into %s; next: deadline suggest %s\n",
		(unsigned long long)conns, conns == 1 ? "" : "s", g.n,
		g.n == 1 ? "" : "s", n, n == 1 ? "" : "es", file, file);
	ob_free(&g);
	ob_free(&d);
	return 0;
}

void observe_cmd(int *argcp, char ***argvp)
{
	int argc = *argcp, i = 2, status = 0;
	char **argv = *argvp, **rest;
	const char *out = 0, *interval = 0;
	char *file;
	struct sigaction sa;

	while (i < argc && argv[i][0] == '-') {
		const char *a = argv[i];

		if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) &&
		    i + 1 < argc) {
			out = argv[i + 1];
			i += 2;
		} else if (strncmp(a, "--output=", 9) == 0) {
			out = a + 9;
			i++;
		} else if (strcmp(a, "--interval") == 0 && i + 1 < argc) {
			interval = argv[i + 1];
			i += 2;
		} else if (strncmp(a, "--interval=", 11) == 0) {
			interval = a + 11;
			i++;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			observe_usage();
			exit(0);
		} else {
			break;
		}
	}
	if (!out || !*out) {
		fprintf(stderr, "deadline: observe: -o FILE is required (and "
			"comes first)\n");
		observe_usage();
		exit(125);
	}
	if (interval) {
		uint32_t ms;

		if (policy_parse_duration(interval, &ms) < 0) {
			fprintf(stderr, "deadline: observe: invalid duration "
				"for --interval: '%s'\n", interval);
			exit(125);
		}
		setenv("DEADLINE_OBSERVE_INTERVAL", interval, 1);
	}
	if (i >= argc) {
		fprintf(stderr, "deadline: observe: missing command\n");
		observe_usage();
		exit(125);
	}
	file = abs_path(out);
	/* Parts left by an earlier run under the same name would be taken
	 * for this run's. */
	if (parts(file, 0) < 0)
		exit(125);
	setenv("DEADLINE_OBSERVE", file, 1);
	fflush(0);
	child = fork();
	if (child < 0) {
		fprintf(stderr, "deadline: observe: fork: %s\n", strerror(errno));
		exit(125);
	}
	if (child == 0) {
		/* The rest is a plain run: deadline [OPTIONS] COMMAND. */
		rest = xrealloc(0, (size_t)(argc - i + 2) * sizeof(*rest));
		rest[0] = argv[0];
		for (int k = i; k < argc; k++)
			rest[k - i + 1] = argv[k];
		rest[argc - i + 1] = 0;
		*argcp = argc - i + 1;
		*argvp = rest;
		free(file);
		return;
	}
	/* Like a shell waiting for its foreground job: ^C and ^\ reach the
	 * command through the terminal; a TERM or HUP sent to us is passed
	 * on.  The parts are merged whatever way it ends. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGINT, &sa, 0);
	sigaction(SIGQUIT, &sa, 0);
	sa.sa_handler = forward;
	sigaction(SIGTERM, &sa, 0);
	sigaction(SIGHUP, &sa, 0);
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (merge(file) < 0 && WIFEXITED(status) && !WEXITSTATUS(status))
		status = 125 << 8;
	free(file);
	if (WIFSIGNALED(status))
		exit(128 + WTERMSIG(status));
	exit(WEXITSTATUS(status));
}
