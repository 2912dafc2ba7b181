/* obsdata.h - deadline observe / suggest / report (docs/observe.md).
 *
 * tools/observe.c  reads, merges and writes the files the shim writes
 *                  under DEADLINE_OBSERVE (format: shim/observe.h and
 *                  docs/observe.md), and runs `deadline observe`;
 * tools/suggest.c  the suggested deadlines and `deadline suggest`;
 * tools/report.c   `deadline report`: one HTML page, and CSV.
 */
#ifndef DL_TOOLS_OBSDATA_H
#define DL_TOOLS_OBSDATA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "observe.h"

/* ---- the data (observe.c) -------------------------------------------- */

struct ob_hist {
	uint64_t count, sum_us, max_us;
	uint64_t *b;		/* OBS_NB counts, NULL while count is 0 */
};

/* One timeline as one process wrote it: connections started in bin i
 * (i from 0, bin_ms wide, from t0_ms, Unix time in ms). */
struct ob_tl {
	int64_t t0_ms;
	uint32_t bin_ms;
	size_t n;
	uint32_t *idx, *cnt;
};

struct ob_series {
	int inbound;
	unsigned port;		/* inbound: the local port; outbound: 0 */
	char *host;		/* name, address, "*" (inbound), "other" */
	char *rule;
	struct ob_hist ph[OBS_NPH];
	struct ob_tl *tl;
	size_t ntl;
};

struct ob_proc {
	long pid;
	int64_t start_ms, end_ms;
	char *exe;
};

struct ob_data {
	struct ob_series *s;
	size_t n, cap;
	struct ob_proc *p;
	size_t np, pcap;
};

/* ob_read - add the file at path to d (series of the same key add up).
 * Returns 0, or -1 with a message ("FILE:LINE: ...") in err. */
int ob_read(struct ob_data *d, const char *path, char *err, size_t errlen);
/* ob_write - d in the file format.  Returns 0 or -1 (errno). */
int ob_write(FILE *f, const struct ob_data *d);
void ob_free(struct ob_data *d);
/* ob_by_host - out gets in's series with the rules merged: one series
 * per (direction, port, host); its rule is the rule name if all agree,
 * else "(several)".  Sorted by connections, most first. */
int ob_by_host(const struct ob_data *in, struct ob_data *out);
/* ob_connections - how many connections a series stands for (connect
 * samples outbound, else request samples, else the most of any phase). */
uint64_t ob_connections(const struct ob_series *s);
/* ob_quantile - the value (us) below which a fraction q of the samples
 * fall: the top of the bucket holding it, but no more than the largest
 * sample (so within 1.6 % above the true quantile). */
uint64_t ob_quantile(const struct ob_hist *h, double q);
/* ob_phase_name - "connect", "first_byte", "idle", "request". */
const char *ob_phase_name(int ph);
/* ob_fmt_us - a duration for people: "850us", "12.3ms", "2.50s". */
char *ob_fmt_us(uint64_t us, char *buf, size_t len);

/* ---- suggestions (suggest.c) ------------------------------------------ */

struct sg_opts {
	double quantile;	/* 0.999 */
	double margin;		/* 2 */
	uint64_t min_samples;	/* 20 */
	uint32_t floor_ms;	/* 100 */
};

void sg_defaults(struct sg_opts *o);
/* sg_round_ms - ms rounded up to the next readable step (docs/observe.md). */
uint32_t sg_round_ms(uint64_t ms);
/* sg_deadline_ms - the deadline suggested for h, 0 when it has too few
 * samples. */
uint32_t sg_deadline_ms(const struct ob_hist *h, const struct sg_opts *o);
/* sg_fmt_ms - "250ms", "2s", "5m", "1h". */
char *sg_fmt_ms(uint32_t ms, char *buf, size_t len);
/* sg_parse_common - options suggest and report share (--quantile,
 * --margin, --min-samples, --floor) at argv[*i]; 1 if it was one (*i
 * moved past its value), 0 if not, -1 on a bad value (message printed). */
int sg_parse_common(int argc, char **argv, int *i, struct sg_opts *o);

/* ---- commands ---------------------------------------------------------- */

/* deadline observe -o FILE [--interval D] [OPTIONS] [--] COMMAND...:
 * returns only in the child that is to run the command, with *argcp and
 * *argvp the rest as a plain `deadline [OPTIONS] COMMAND` run; the parent
 * waits, merges the parts, and exits with the command's status. */
void observe_cmd(int *argcp, char ***argvp);
int suggest_cmd(int argc, char **argv);
int report_cmd(int argc, char **argv);

#endif
