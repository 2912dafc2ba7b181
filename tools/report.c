/* report.c - `deadline report`: what the observed traffic looks like, as
 * one self-contained HTML page (inline SVG and CSS: no script, no font or
 * image from anywhere), and the same histograms as CSV.
 *
 * The page: a table of every peer (connections, p99 of each phase, the
 * suggested and the configured deadlines, expiries and faults from the
 * log); a timeline of connections per peer with the log's expiries and
 * injected faults marked; and per peer (the REPORT_PEERS busiest) the
 * histogram of each phase on a log scale with the suggested (dashed
 * blue) and configured (red) deadlines drawn, and how many samples the
 * deadline in force would have cut.
 *
 * Bounded size whatever the traffic: histograms are drawn with 10 bars
 * per decade, the timeline with REPORT_BINS bins and REPORT_LANES lanes,
 * and at most REPORT_PEERS peers get charts (all get a table row, up to
 * REPORT_ROWS).  docs/observe.md gives the bound.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf.h"
#include "obsdata.h"

#define REPORT_PEERS 40		/* peers with charts */
#define REPORT_ROWS 500		/* rows of the table */
#define REPORT_LANES 12		/* timeline lanes (then one "other") */
#define REPORT_BINS 240		/* timeline bins */

/* ------------------------------------------------------------------------
 * The JSON log: deadline and fault events
 */

struct ev {
	int64_t t_ms;
	int kind;		/* 0 expiry, 1 fault */
	int peer;		/* index in the series by host, -1 none */
	int ph;			/* expiry: its phase */
};

struct evs {
	struct ev *e;
	size_t n, cap;
};

/* The JSON string value of "key" in line, unescaped into out. */
static int json_str(const char *line, const char *key, char *out, size_t len)
{
	char pat[64];
	const char *p;
	size_t o = 0;

	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	p = strstr(line, pat);
	if (!p)
		return 0;
	for (p += strlen(pat); *p && *p != '"' && o + 1 < len; p++) {
		if (*p == '\\' && p[1]) {
			p++;
			if (*p == 'u' && p[1] && p[2] && p[3] && p[4]) {
				unsigned v = 0;

				sscanf(p + 1, "%4x", &v);
				out[o++] = v < 0x80 ? (char)v : '?';
				p += 4;
				continue;
			}
			out[o++] = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p;
			continue;
		}
		out[o++] = *p;
	}
	out[o] = 0;
	return 1;
}

/* "2026-11-22T07:02:05.337Z" as Unix ms; -1 if not that. */
static int64_t iso_ms(const char *s)
{
	struct tm tm;
	int ms = 0;
	char *end;

	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return -1;
	if (*end == '.')
		ms = atoi(end + 1);
	return (int64_t)timegm(&tm) * 1000 + ms;
}

static int peer_of(const struct ob_data *g, const char *host)
{
	for (size_t i = 0; i < g->n; i++)
		if (!g->s[i].inbound && strcmp(g->s[i].host, host) == 0)
			return (int)i;
	return -1;
}

static int read_log(const char *path, const struct ob_data *g, struct evs *v)
{
	FILE *f = fopen(path, "r");
	char *line = 0, buf[512];
	size_t cap = 0;

	if (!f) {
		fprintf(stderr, "deadline: report: %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	while (getline(&line, &cap, f) >= 0) {
		struct ev e = { 0, 0, -1, -1 };

		if (!json_str(line, "event", buf, sizeof(buf)))
			continue;
		if (strcmp(buf, "deadline") == 0) {
			e.kind = 0;
			if (json_str(line, "phase", buf, sizeof(buf)))
				for (int p = 0; p < OBS_NPH; p++)
					if (!strcmp(buf, ob_phase_name(p)))
						e.ph = p;
		} else if (strcmp(buf, "fault") == 0 &&
			   strstr(line, "\"injected\":true")) {
			e.kind = 1;
		} else {
			continue;
		}
		if (!json_str(line, "time", buf, sizeof(buf)) ||
		    (e.t_ms = iso_ms(buf)) < 0)
			continue;
		if (json_str(line, "host", buf, sizeof(buf)))
			e.peer = peer_of(g, buf);
		if (v->n == v->cap) {
			v->cap = v->cap ? v->cap * 2 : 256;
			v->e = realloc(v->e, v->cap * sizeof(*v->e));
			if (!v->e) {
				fprintf(stderr, "deadline: out of memory\n");
				exit(125);
			}
		}
		v->e[v->n++] = e;
	}
	free(line);
	fclose(f);
	return 0;
}

/* ------------------------------------------------------------------------
 * Configured deadlines
 */

static void configured(const struct conf *c, const struct ob_series *s,
		       uint32_t out[OBS_NPH])
{
	struct sockaddr_storage a, l;
	struct conf_peer p;
	struct conf_effective e;

	memset(&p, 0, sizeof(p));
	memset(&a, 0, sizeof(a));
	memset(&l, 0, sizeof(l));
	p.inbound = s->inbound;
	if (s->inbound) {
		struct sockaddr_in *l4 = (struct sockaddr_in *)&l;

		l4->sin_family = AF_INET;
		l4->sin_port = htons((uint16_t)s->port);
		p.local = (struct sockaddr *)&l;
		p.locallen = sizeof(*l4);
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)&a;
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&a;

		if (inet_pton(AF_INET, s->host, &a4->sin_addr) == 1) {
			a4->sin_family = AF_INET;
			p.addr = (struct sockaddr *)&a;
			p.addrlen = sizeof(*a4);
		} else if (inet_pton(AF_INET6, s->host, &a6->sin6_addr) == 1) {
			a6->sin6_family = AF_INET6;
			p.addr = (struct sockaddr *)&a;
			p.addrlen = sizeof(*a6);
		} else {
			p.host = s->host;
		}
	}
	conf_lookup(c, &p, &e);
	for (int i = 0; i < OBS_NPH; i++)
		out[i] = e.limits.ms[i];
}

/* ------------------------------------------------------------------------
 * HTML
 */

static void esc(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '&':
			fputs("&amp;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		default:
			fputc((unsigned char)*s < ' ' ? '?' : *s, f);
		}
	}
}

static const char *const ph_color[OBS_NPH] = {
	"#8c6bb1", "#2b8cbe", "#74a9cf", "#41ae76"
};

static const char *const ph_title[OBS_NPH] = {
	"connect", "first byte", "idle gaps", "request"
};

static void fmt_dec(double us, char *buf, size_t len)
{
	if (us < 1000)
		snprintf(buf, len, "%.0f\xc2\xb5s", us);
	else if (us < 1e6)
		snprintf(buf, len, "%.0fms", us / 1e3);
	else
		snprintf(buf, len, "%.0fs", us / 1e6);
}

#define HW 250
#define HH 170
#define HL 18
#define HR 16
#define HT 54
#define HB 20

static double xpos(double us, double lo, double hi)
{
	double l = log10(us > 0.5 ? us : 0.5);

	if (l < lo)
		l = lo;
	if (l > hi)
		l = hi;
	return HL + (l - lo) / (hi - lo) * (HW - HL - HR);
}

/* One phase's histogram with the deadlines drawn on it. */
static void histogram(FILE *f, const struct ob_hist *h, int ph, uint32_t sug,
		      uint32_t cfg)
{
	double bars[200];
	double lo, hi, top = 0, ytop = HT, ybase = HH - HB;
	uint64_t minv = UINT64_MAX, cut = 0, line_us;
	char a[32], b[32], c[32];
	int nb;

	fprintf(f, "<svg class=\"h\" width=\"%d\" height=\"%d\" viewBox=\"0 0 "
		"%d %d\" role=\"img\">", HW, HH, HW, HH);
	fprintf(f, "<text x=\"%d\" y=\"13\" class=\"t\">%s</text>", HL,
		ph_title[ph]);
	if (!h->count) {
		fprintf(f, "<text x=\"%d\" y=\"60\" class=\"m\">no samples"
			"</text></svg>", HL);
		return;
	}
	fprintf(f, "<text x=\"%d\" y=\"25\" class=\"m\">n=%llu p50=%s p99=%s "
		"max=%s</text>", HL, (unsigned long long)h->count,
		ob_fmt_us(ob_quantile(h, 0.5), a, sizeof(a)),
		ob_fmt_us(ob_quantile(h, 0.99), b, sizeof(b)),
		ob_fmt_us(h->max_us, c, sizeof(c)));
	for (unsigned i = 0; i < OBS_NB; i++)
		if (h->b[i]) {
			minv = obs_bucket_low(i);
			break;
		}
	lo = floor(log10(minv > 1 ? (double)minv : 1.0));
	hi = log10((double)(h->max_us > 1 ? h->max_us : 1) * 1.05);
	if (sug && log10((double)sug * 1000 * 1.1) > hi)
		hi = log10((double)sug * 1000 * 1.1);
	if (cfg && log10((double)cfg * 1000 * 1.1) > hi)
		hi = log10((double)cfg * 1000 * 1.1);
	hi = ceil(hi);
	if (hi - lo < 2)
		lo = hi - 2;
	if (lo < 0)
		lo = 0;
	if (hi - lo > 19)
		lo = hi - 19;
	nb = (int)((hi - lo) * 10 + 0.5);
	memset(bars, 0, sizeof(bars));
	for (unsigned i = 0; i < OBS_NB; i++) {
		double mid;
		int k;

		if (!h->b[i])
			continue;
		mid = ((double)obs_bucket_low(i) + (double)obs_bucket_high(i)) / 2;
		k = (int)floor((log10(mid) - lo) * 10);
		if (k < 0)
			k = 0;
		if (k >= nb)
			k = nb - 1;
		bars[k] += (double)h->b[i];
	}
	for (int k = 0; k < nb; k++)
		if (bars[k] > top)
			top = bars[k];
	/* The deadline in force (configured, else suggested): what it cuts. */
	line_us = (uint64_t)(cfg ? cfg : sug) * 1000;
	if (line_us) {
		double x = xpos((double)line_us, lo, hi);

		for (unsigned i = 0; i < OBS_NB; i++)
			if (h->b[i] && obs_bucket_low(i) >= line_us)
				cut += h->b[i];
		fprintf(f, "<rect x=\"%.1f\" y=\"%.0f\" width=\"%.1f\" "
			"height=\"%.0f\" class=\"cut\"/>", x, ytop,
			HW - HR - x, ybase - ytop);
	}
	for (int k = 0; k < nb; k++) {
		double x0, x1, bh;

		if (!bars[k])
			continue;
		x0 = xpos(pow(10, lo + k / 10.0), lo, hi);
		x1 = xpos(pow(10, lo + (k + 1) / 10.0), lo, hi);
		bh = bars[k] / top * (ybase - ytop - 4);
		if (bh < 1.5)
			bh = 1.5;
		fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
			"height=\"%.1f\" fill=\"%s\"><title>%.0f</title></rect>",
			x0 + 0.3, ybase - bh, x1 - x0 - 0.6, bh, ph_color[ph],
			bars[k]);
	}
	fprintf(f, "<line x1=\"%d\" y1=\"%.0f\" x2=\"%d\" y2=\"%.0f\" "
		"class=\"ax\"/>", HL, ybase, HW - HR, ybase);
	for (int d = (int)lo; d <= (int)hi; d++) {
		double x = xpos(pow(10, d), lo, hi);

		fmt_dec(pow(10, d), a, sizeof(a));
		fprintf(f, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" "
			"y2=\"%.0f\" class=\"ax\"/><text x=\"%.1f\" y=\"%d\" "
			"class=\"k\" text-anchor=\"middle\">%s</text>", x, ybase,
			x, ybase + 3, x, HH - 6, a);
	}
	/* The deadlines: a line through the plot, its label above it,
	 * on the side with room. */
	for (int k = 0; k < 2; k++) {
		uint32_t ms = k ? cfg : sug;
		double x = xpos((double)ms * 1000, lo, hi);
		int left = x > HW / 2;

		if (!ms)
			continue;
		fprintf(f, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" "
			"y2=\"%.0f\" class=\"%s\"/><text x=\"%.1f\" y=\"%.0f\" "
			"class=\"%s\" text-anchor=\"%s\">%s %s</text>", x,
			ytop - (k ? 2 : 14), x, ybase, k ? "cf" : "sg",
			left ? x + 4 : x - 4, ytop - (k ? 4 : 16),
			k ? "cft" : "sgt", left ? "end" : "start",
			k ? "config" : "suggest", sg_fmt_ms(ms, a, sizeof(a)));
	}
	if (cut)
		fprintf(f, "<text x=\"%d\" y=\"%.0f\" class=\"ct\" "
			"text-anchor=\"end\">cut %llu (%.2g%%)</text>", HW - HR,
			ytop + 12, (unsigned long long)cut,
			100.0 * (double)cut / (double)h->count);
	fputs("</svg>", f);
}

/* The timeline: connections started per bin and peer, with the log's
 * expiries (red) and injected faults (orange) below each lane. */
#define TW 960
#define TLAB 190
#define TLANE 30

static void timeline(FILE *f, const struct ob_data *g, const struct evs *v)
{
	int64_t tmin = INT64_MAX, tmax = INT64_MIN, span;
	int lanes = (int)(g->n < REPORT_LANES ? g->n : REPORT_LANES);
	int other = g->n > REPORT_LANES ||
		    (v && v->n && 1); /* events of peers not in a lane */
	int nl, h;
	static double conns[REPORT_LANES + 1][REPORT_BINS];
	static double exps[REPORT_LANES + 1][REPORT_BINS];
	static double flts[REPORT_LANES + 1][REPORT_BINS];
	double bw = (double)(TW - TLAB - 10) / REPORT_BINS;
	char a[64];

	for (size_t i = 0; i < g->n; i++)
		for (size_t t = 0; t < g->s[i].ntl; t++) {
			const struct ob_tl *tl = &g->s[i].tl[t];

			for (size_t k = 0; k < tl->n; k++) {
				int64_t t0 = tl->t0_ms +
					     (int64_t)tl->idx[k] * tl->bin_ms;

				if (t0 < tmin)
					tmin = t0;
				if (t0 + tl->bin_ms > tmax)
					tmax = t0 + tl->bin_ms;
			}
		}
	for (size_t i = 0; v && i < v->n; i++) {
		if (v->e[i].t_ms < tmin)
			tmin = v->e[i].t_ms;
		if (v->e[i].t_ms + 1 > tmax)
			tmax = v->e[i].t_ms + 1;
	}
	if (tmin == INT64_MAX) {
		fputs("<p class=\"m\">No timeline: the files hold none, and no "
		      "log was given.</p>", f);
		return;
	}
	span = tmax - tmin;
	if (span < 1000)
		span = 1000;
	memset(conns, 0, sizeof(conns));
	memset(exps, 0, sizeof(exps));
	memset(flts, 0, sizeof(flts));
#define BIN_OF(t) ((int)(((t) - tmin) * REPORT_BINS / (span + 1)))
	for (size_t i = 0; i < g->n; i++) {
		int lane = (int)i < lanes ? (int)i : REPORT_LANES;

		for (size_t t = 0; t < g->s[i].ntl; t++) {
			const struct ob_tl *tl = &g->s[i].tl[t];

			for (size_t k = 0; k < tl->n; k++) {
				int64_t mid = tl->t0_ms +
					      (int64_t)tl->idx[k] * tl->bin_ms +
					      tl->bin_ms / 2;
				int b = BIN_OF(mid);

				if (b >= REPORT_BINS)
					b = REPORT_BINS - 1;
				conns[lane][b] += tl->cnt[k];
			}
		}
	}
	for (size_t i = 0; v && i < v->n; i++) {
		const struct ev *e = &v->e[i];
		int lane = e->peer >= 0 && e->peer < lanes ? e->peer
							    : REPORT_LANES;
		int b = BIN_OF(e->t_ms);

		if (b >= REPORT_BINS)
			b = REPORT_BINS - 1;
		if (e->kind)
			flts[lane][b]++;
		else
			exps[lane][b]++;
	}
	other = 0;
	for (int b = 0; b < REPORT_BINS; b++)
		if (conns[REPORT_LANES][b] || exps[REPORT_LANES][b] ||
		    flts[REPORT_LANES][b])
			other = 1;
	nl = lanes + other;
	h = nl * TLANE + 40;
	fprintf(f, "<svg class=\"tl\" width=\"%d\" height=\"%d\" viewBox=\"0 0 "
		"%d %d\" role=\"img\">", TW, h, TW, h);
	for (int l = 0; l < nl; l++) {
		int lane = l < lanes ? l : REPORT_LANES;
		double top = 0, y0 = 8 + l * TLANE, base = y0 + 18;
		char name[300];

		if (lane == REPORT_LANES)
			snprintf(name, sizeof(name), "other peers");
		else if (g->s[lane].inbound)
			snprintf(name, sizeof(name), "inbound :%u",
				 g->s[lane].port);
		else
			snprintf(name, sizeof(name), "%.60s", g->s[lane].host);
		for (int b = 0; b < REPORT_BINS; b++)
			if (conns[lane][b] > top)
				top = conns[lane][b];
		fprintf(f, "<text x=\"4\" y=\"%.0f\" class=\"k\">", base - 2);
		esc(f, name);
		fprintf(f, "</text><line x1=\"%d\" y1=\"%.0f\" x2=\"%d\" "
			"y2=\"%.0f\" class=\"ax\"/>", TLAB, base, TW - 10, base);
		for (int b = 0; b < REPORT_BINS; b++) {
			double x = TLAB + b * bw;

			if (conns[lane][b]) {
				double bh = conns[lane][b] / top * 16;

				if (bh < 1.5)
					bh = 1.5;
				fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" "
					"width=\"%.1f\" height=\"%.1f\" "
					"class=\"cn\"><title>%.0f</title>"
					"</rect>", x, base - bh, bw, bh,
					conns[lane][b]);
			}
			if (flts[lane][b])
				fprintf(f, "<rect x=\"%.1f\" y=\"%.0f\" "
					"width=\"%.1f\" height=\"4\" "
					"class=\"fl\"><title>%.0f faults"
					"</title></rect>", x, base + 1,
					bw < 2 ? 2 : bw, flts[lane][b]);
			if (exps[lane][b])
				fprintf(f, "<rect x=\"%.1f\" y=\"%.0f\" "
					"width=\"%.1f\" height=\"6\" "
					"class=\"ex\"><title>%.0f expiries"
					"</title></rect>", x, base + 1,
					bw < 2 ? 2 : bw, exps[lane][b]);
		}
	}
	for (int k = 0; k <= 6; k++) {
		double x = TLAB + (TW - TLAB - 10) * k / 6.0;
		double s = (double)span * k / 6.0 / 1000.0;

		if (s < 10)
			snprintf(a, sizeof(a), "+%.1fs", s);
		else if (s < 600)
			snprintf(a, sizeof(a), "+%.0fs", s);
		else if (s < 36000)
			snprintf(a, sizeof(a), "+%.0fm", s / 60);
		else
			snprintf(a, sizeof(a), "+%.1fh", s / 3600);
		fprintf(f, "<text x=\"%.0f\" y=\"%d\" class=\"k\" "
			"text-anchor=\"middle\">%s</text>", x, h - 10, a);
	}
	fputs("</svg>", f);
	{
		time_t t = (time_t)(tmin / 1000);
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(a, sizeof(a), "%Y-%m-%d %H:%M:%S UTC", &tm);
		fprintf(f, "<p class=\"m\">From %s; bars: connections started "
			"(each lane scaled to its own busiest bin); "
			"<span class=\"exk\">&#9632;</span> expiries and "
			"<span class=\"flk\">&#9632;</span> injected faults "
			"from the log.</p>", a);
	}
}

static const char css[] =
	"body{font:14px/1.4 sans-serif;margin:24px;color:#222;background:#fff}"
	"h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;"
	"border-bottom:1px solid #ddd}h3{font-size:15px;margin:18px 0 4px}"
	"table{border-collapse:collapse;font-size:13px}"
	"td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}"
	"th{background:#f4f4f4}td.l,th.l{text-align:left}"
	".m{color:#666;font-size:12px}.k{font-size:11px;fill:#555}"
	".t{font-size:13px;font-weight:bold;fill:#222}"
	"svg .m{font-size:10px;fill:#666}.ax{stroke:#999;stroke-width:1}"
	".sg{stroke:#1f6fd1;stroke-width:2;stroke-dasharray:5,3}"
	".sgt{font-size:11px;fill:#1f6fd1}.cf{stroke:#d62728;stroke-width:2}"
	".cft{font-size:11px;fill:#d62728}.cut{fill:#d62728;fill-opacity:.08}"
	".ct{font-size:11px;fill:#d62728;font-weight:bold}"
	".cn{fill:#6b8fb3}.ex{fill:#d62728}.fl{fill:#f39c12}"
	".exk{color:#d62728}.flk{color:#f39c12}"
	".g{display:flex;flex-wrap:wrap;gap:4px}svg.h{border:1px solid #eee}"
	".hot{color:#d62728;font-weight:bold}";

static void page(FILE *f, const struct ob_data *g, const struct evs *v,
		 const struct conf *cf, const struct sg_opts *o,
		 char **files, int nfiles, const char *title)
{
	uint64_t total = 0, nexp = 0, nflt = 0;
	size_t rows = g->n < REPORT_ROWS ? g->n : REPORT_ROWS;
	char a[32];

	for (size_t i = 0; i < g->n; i++)
		total += ob_connections(&g->s[i]);
	for (size_t i = 0; v && i < v->n; i++) {
		if (v->e[i].kind)
			nflt++;
		else
			nexp++;
	}
	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8"
	      "\"><title>", f);
	esc(f, title);
	fprintf(f, "</title><style>%s</style></head><body>\n<h1>", css);
	esc(f, title);
	fprintf(f, "</h1><p class=\"m\">%llu connections to %zu peers, %zu "
		"process%s; %llu expiries and %llu injected faults in the log. "
		"Sources:", (unsigned long long)total, g->n, g->np,
		g->np == 1 ? "" : "es", (unsigned long long)nexp,
		(unsigned long long)nflt);
	for (int i = 0; i < nfiles; i++) {
		fputc(' ', f);
		esc(f, files[i]);
	}
	fprintf(f, ". Suggested: the %g quantile &times; %g, at least %s, "
		"rounded up (deadline suggest).</p>\n", o->quantile, o->margin,
		sg_fmt_ms(o->floor_ms, a, sizeof(a)));

	/* The table. */
	fputs("<h2>Peers</h2><table><tr><th class=\"l\">peer</th><th>dir</th>"
	      "<th class=\"l\">rule</th><th>conns</th>", f);
	for (int p = 0; p < OBS_NPH; p++)
		fprintf(f, "<th>%s p99</th>", ph_title[p]);
	fputs("<th>suggested c / fb / idle / req</th>", f);
	if (cf)
		fputs("<th>configured c / fb / idle / req</th>", f);
	fputs("<th>expiries</th><th>faults</th></tr>\n", f);
	for (size_t i = 0; i < rows; i++) {
		const struct ob_series *s = &g->s[i];
		uint64_t e = 0, fl = 0;
		uint32_t cfg[OBS_NPH];

		for (size_t k = 0; v && k < v->n; k++)
			if (v->e[k].peer == (int)i) {
				if (v->e[k].kind)
					fl++;
				else
					e++;
			}
		fputs("<tr><td class=\"l\">", f);
		if (s->inbound)
			fprintf(f, "inbound :%u", s->port);
		else
			esc(f, s->host);
		fprintf(f, "</td><td>%s</td><td class=\"l\">",
			s->inbound ? "in" : "out");
		esc(f, s->rule);
		fprintf(f, "</td><td>%llu</td>",
			(unsigned long long)ob_connections(s));
		for (int p = 0; p < OBS_NPH; p++) {
			if (s->ph[p].count)
				fprintf(f, "<td>%s</td>",
					ob_fmt_us(ob_quantile(&s->ph[p], 0.99),
						  a, sizeof(a)));
			else
				fputs("<td class=\"m\">-</td>", f);
		}
		fputs("<td>", f);
		for (int p = 0; p < OBS_NPH; p++) {
			uint32_t d = sg_deadline_ms(&s->ph[p], o);

			fprintf(f, "%s%s", p ? " / " : "",
				d ? sg_fmt_ms(d, a, sizeof(a)) : "-");
		}
		fputs("</td>", f);
		if (cf) {
			configured(cf, s, cfg);
			fputs("<td>", f);
			for (int p = 0; p < OBS_NPH; p++)
				fprintf(f, "%s%s", p ? " / " : "",
					cfg[p] ? sg_fmt_ms(cfg[p], a, sizeof(a))
					       : "-");
			fputs("</td>", f);
		}
		fprintf(f, "<td%s>%llu</td><td>%llu</td></tr>\n",
			e ? " class=\"hot\"" : "", (unsigned long long)e,
			(unsigned long long)fl);
	}
	fputs("</table>", f);
	if (rows < g->n)
		fprintf(f, "<p class=\"m\">%zu more peers not shown (the "
			"CSV has them all).</p>", g->n - rows);

	fputs("\n<h2>Timeline</h2>", f);
	timeline(f, g, v);

	fputs("\n<h2>Per peer</h2><p class=\"m\">Each phase on a log scale: "
	      "<span style=\"color:#1f6fd1\">dashed blue</span> the suggested "
	      "deadline, <span style=\"color:#d62728\">red</span> the "
	      "configured one; the shaded part is what the deadline in force "
	      "(configured, else suggested) would cut.</p>\n", f);
	for (size_t i = 0; i < g->n && i < REPORT_PEERS; i++) {
		const struct ob_series *s = &g->s[i];
		uint32_t cfg[OBS_NPH] = { 0, 0, 0, 0 };

		if (cf)
			configured(cf, s, cfg);
		fputs("<h3>", f);
		if (s->inbound)
			fprintf(f, "inbound, local port %u", s->port);
		else
			esc(f, s->host);
		fprintf(f, " <span class=\"m\">(%s, rule ",
			s->inbound ? "inbound" : "outbound");
		esc(f, s->rule);
		fprintf(f, ", %llu connections)</span></h3><div class=\"g\">",
			(unsigned long long)ob_connections(s));
		for (int p = 0; p < OBS_NPH; p++) {
			if (s->inbound && p == DL_PH_CONNECT)
				continue;
			histogram(f, &s->ph[p], p, sg_deadline_ms(&s->ph[p], o),
				  cfg[p]);
		}
		fputs("</div>\n", f);
	}
	if (g->n > REPORT_PEERS)
		fprintf(f, "<p class=\"m\">Charts for the %d busiest peers; "
			"%zu more in the table and the CSV.</p>", REPORT_PEERS,
			g->n - REPORT_PEERS);
	fputs("<p class=\"m\">Written by deadline report (libdeadline). "
	      "Buckets are within 1.6&nbsp;% of the values they hold.</p>"
	      "</body></html>\n", f);
}

/* CSV: one row per non-empty bucket of every histogram. */
static int csv(const char *path, const struct ob_data *d)
{
	FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");

	if (!f) {
		fprintf(stderr, "deadline: report: %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	fputs("direction,host,port,rule,phase,bucket_low_us,bucket_high_us,"
	      "count\n", f);
	for (size_t i = 0; i < d->n; i++) {
		const struct ob_series *s = &d->s[i];

		for (int p = 0; p < OBS_NPH; p++) {
			if (!s->ph[p].count)
				continue;
			for (unsigned b = 0; b < OBS_NB; b++) {
				if (!s->ph[p].b[b])
					continue;
				fprintf(f, "%s,\"", s->inbound ? "in" : "out");
				for (const char *c = s->host; *c; c++)
					fprintf(f, *c == '"' ? "\"\"" : "%c", *c);
				fprintf(f, "\",%u,\"", s->port);
				for (const char *c = s->rule; *c; c++)
					fprintf(f, *c == '"' ? "\"\"" : "%c", *c);
				fprintf(f, "\",%s,%llu,%llu,%llu\n",
					ob_phase_name(p),
					(unsigned long long)obs_bucket_low(b),
					(unsigned long long)obs_bucket_high(b),
					(unsigned long long)s->ph[p].b[b]);
			}
		}
	}
	if (f != stdout && fclose(f) != 0) {
		fprintf(stderr, "deadline: report: %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	return 0;
}

static void report_usage(FILE *f)
{
	fprintf(f,
"Usage: deadline report FILE... [-o report.html] [--csv OUT.csv]\n"
"                       [--log LOG.json]... [--config CONF] [--title T]\n"
"                       [--quantile Q] [--margin M] [--min-samples N]\n"
"                       [--floor D]\n"
"One self-contained HTML page (no script) of the observe FILEs: per peer\n"
"the histogram of each phase with the suggested and configured deadlines,\n"
"a timeline with the expiries and injected faults of the JSON logs\n"
"(DEADLINE_LOG_FORMAT=json); --csv: every histogram bucket as CSV.\n");
}

int report_cmd(int argc, char **argv)
{
	struct sg_opts o;
	struct ob_data d, g;
	struct evs v = { 0, 0, 0 };
	struct conf c, *cf = 0;
	const char *out = 0, *csvp = 0, *confp = 0;
	const char *title = "libdeadline: what the deadlines would see";
	const char *logs[64];
	char **files, err[600];
	int nfiles = 0, nlogs = 0, k, rc = 0;

	sg_defaults(&o);
	memset(&d, 0, sizeof(d));
	files = calloc((size_t)argc, sizeof(*files));
	if (!files)
		return 125;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if ((k = sg_parse_common(argc, argv, &i, &o)) < 0)
			return 125;
		if (k)
			continue;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			report_usage(stdout);
			return 0;
		}
		if (i + 1 < argc && (!strcmp(a, "-o") || !strcmp(a, "--csv") ||
				     !strcmp(a, "--log") ||
				     !strcmp(a, "--config") ||
				     !strcmp(a, "--title"))) {
			const char *val = argv[++i];

			if (!strcmp(a, "-o"))
				out = val;
			else if (!strcmp(a, "--csv"))
				csvp = val;
			else if (!strcmp(a, "--config"))
				confp = val;
			else if (!strcmp(a, "--title"))
				title = val;
			else if (nlogs < 64)
				logs[nlogs++] = val;
			continue;
		}
		if (a[0] == '-' && a[1]) {
			fprintf(stderr, "deadline: report: unknown option or "
				"missing value: '%s'\n", a);
			report_usage(stderr);
			return 125;
		}
		files[nfiles++] = argv[i];
	}
	if (!nfiles || (!out && !csvp)) {
		fprintf(stderr, "deadline: report: %s\n",
			!nfiles ? "no FILE" : "-o FILE.html or --csv FILE needed");
		report_usage(stderr);
		free(files);
		return 125;
	}
	for (int i = 0; i < nfiles; i++)
		if (ob_read(&d, files[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "deadline: report: %s\n", err);
			ob_free(&d);
			free(files);
			return 2;
		}
	if (confp) {
		conf_init(&c);
		if (conf_load(&c, confp) < 0) {
			fprintf(stderr, "deadline: report: %s has errors (see "
				"'deadline check %s')\n", confp, confp);
			conf_free(&c);
			ob_free(&d);
			free(files);
			return 2;
		}
		cf = &c;
	}
	ob_by_host(&d, &g);
	for (int i = 0; i < nlogs; i++)
		if (read_log(logs[i], &g, &v) < 0)
			rc = 2;
	if (!rc && csvp && csv(csvp, &d) < 0)
		rc = 2;
	if (!rc && out) {
		FILE *f = fopen(out, "w");

		if (!f) {
			fprintf(stderr, "deadline: report: %s: %s\n", out,
				strerror(errno));
			rc = 2;
		} else {
			page(f, &g, &v, cf, &o, files, nfiles, title);
			if (fclose(f) != 0) {
				fprintf(stderr, "deadline: report: %s: %s\n",
					out, strerror(errno));
				rc = 2;
			}
		}
	}
	if (cf)
		conf_free(cf);
	free(v.e);
	ob_free(&g);
	ob_free(&d);
	free(files);
	return rc;
}
