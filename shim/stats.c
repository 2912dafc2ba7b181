/* stats.c - DEADLINE_STATS: per-rule counters, counted with relaxed
 * atomics where events happen (stats_count), written out in one of two
 * formats (docs/config.md, "Counters"):
 *
 *   json        one JSON line per process appended at exit (the name
 *               does not end in .prom, or DEADLINE_STATS_FORMAT=json);
 *   prometheus  the Prometheus text exposition format, the whole file
 *               rewritten atomically (temporary file, rename) every
 *               DEADLINE_STATS_INTERVAL while the program runs and once
 *               more at exit (the name ends in .prom, or
 *               DEADLINE_STATS_FORMAT=prometheus).  "%p" in the name
 *               stands for the pid: one file per process.
 *
 * Who writes the live file is live.c's business; building it costs the
 * program's calls nothing: open connections are counted by scanning the
 * fd table, injected faults by the log's event tap (stats_tap), the rest
 * is read from the counters as they are.
 */
#include "engine_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fdtab.h"
#include "log.h"
#include "real.h"

/* Where counts for an unknown rule go. */
struct rule_stats stats_sink;

int stats_prom;			/* the prometheus format */
static int stats_pid_label;	/* the name holds %p */

/* Histogram bounds, seconds (Prometheus `le`), and the same in ns. */
static const char *const bucket_le[STATS_NBUCKETS] = {
	"0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
	"1", "2.5", "5", "10", "30", "60",
};
static const int64_t bucket_ns[STATS_NBUCKETS] = {
	1000000, 5000000, 10000000, 25000000, 50000000, 100000000,
	250000000, 500000000, 1000000000, 2500000000, 5000000000,
	10000000000, 30000000000, 60000000000,
};

/* conn_met_hook while the Prometheus file is kept. */
static void stats_phase_met(const struct dl_conn *c, enum dl_phase ph,
			    int64_t dl)
{
	int64_t now = clock_now();
	static const int hist_of[DL_PH_COUNT] = {
		[DL_PH_CONNECT] = 0, [DL_PH_FIRST_BYTE] = 1,
		[DL_PH_IDLE] = -1, [DL_PH_REQUEST] = 2,
	};
	struct rule_stats *st;
	int64_t d;
	int h = (unsigned)ph < DL_PH_COUNT ? hist_of[ph] : -1, b = 0;

	if (!E.stats_path || h < 0 || !dl)
		return;
	st = stats_of(c);
	d = now - (dl - (int64_t)limits_of(c)->ms[ph] * CLOCK_NS_PER_MS);
	if (d < 0)
		d = 0;
	while (b < STATS_NBUCKETS && d > bucket_ns[b])
		b++;
	__atomic_fetch_add(&st->hist[h][b], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&st->hist_sum_ns[h], (uint64_t)d, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------------
 * Injected faults, counted from the log's event lines (every injected
 * fault has one; the log may drop or suppress the line, the count stays).
 */

#define TAP_SLOTS 256
static struct tap_slot {
	uint64_t key;		/* hash of rule and fault; 0 = free */
	int ready;		/* names written */
	char rule[CONF_NAME_MAX + 1];
	char fault[24];
	uint64_t n;
} tap[TAP_SLOTS];
static uint64_t tap_lost;	/* no slot left */

static const char *field_str(const struct dl_field *f, int n, const char *k)
{
	for (int i = 0; i < n; i++)
		if (strcmp(f[i].key, k) == 0)
			return f[i].str;
	return 0;
}

/* Lock-free (it runs wherever a fault is logged, signal handlers
 * included): a slot is claimed by compare-and-swap of its key. */
static void stats_tap(const struct dl_field *f, int n)
{
	const char *ev = field_str(f, n, "event"), *rule, *kind;
	uint64_t h = 0xcbf29ce484222325ull;

	if (!ev || strcmp(ev, "fault") != 0 ||
	    field_str(f, n, "injected") != DL_TRUE)
		return;
	rule = field_str(f, n, "rule");
	kind = field_str(f, n, "fault");
	if (!rule || !kind)
		return;
	for (const char *p = rule; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
	h = (h ^ 0xff) * 0x100000001b3ull;
	for (const char *p = kind; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
	h |= 1;
	for (unsigned i = 0, s = (unsigned)(h % TAP_SLOTS); i < TAP_SLOTS;
	     i++, s = (s + 1) % TAP_SLOTS) {
		struct tap_slot *t = &tap[s];
		uint64_t k = __atomic_load_n(&t->key, __ATOMIC_ACQUIRE);

		if (!k) {
			uint64_t zero = 0;

			if (__atomic_compare_exchange_n(&t->key, &zero, h, 0,
							__ATOMIC_ACQ_REL,
							__ATOMIC_ACQUIRE)) {
				snprintf(t->rule, sizeof(t->rule), "%s", rule);
				snprintf(t->fault, sizeof(t->fault), "%s", kind);
				__atomic_store_n(&t->ready, 1, __ATOMIC_RELEASE);
				k = h;
			} else {
				k = zero;
			}
		}
		if (k == h) {
			__atomic_fetch_add(&t->n, 1, __ATOMIC_RELAXED);
			return;
		}
	}
	__atomic_fetch_add(&tap_lost, 1, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------------
 * Start-up
 */

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

void stats_start(void)
{
	const char *fmt = secure_getenv("DEADLINE_STATS_FORMAT");

	if (!E.stats_path)
		return;
	if (fmt && strcmp(fmt, "prometheus") == 0)
		stats_prom = 1;
	else if (fmt && strcmp(fmt, "json") == 0)
		stats_prom = 0;
	else {
		if (fmt && *fmt)
			dl_log_conf(DL_CONF_WARNING, NULL,
				    "DEADLINE_STATS_FORMAT=\"%.32s\" is not "
				    "prometheus or json; choosing by the file "
				    "name", fmt);
		stats_prom = ends_with(E.stats_path, ".prom");
	}
	stats_pid_label = strstr(E.stats_path, "%p") != 0;
	if (stats_prom) {
		dl_log_set_tap(stats_tap);
		conn_met_hook = stats_phase_met;
	}
}

/* ------------------------------------------------------------------------
 * The Prometheus text
 */

/* A label value: backslash, quote and newline escaped. */
static const char *lv(char *out, size_t cap, const char *s)
{
	size_t o = 0;

	for (; s && *s && o + 3 < cap; s++) {
		if (*s == '\\' || *s == '"') {
			out[o++] = '\\';
			out[o++] = *s;
		} else if (*s == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else {
			out[o++] = *s;
		}
	}
	out[o] = 0;
	return out;
}

/* One rule name's numbers, summed over every generation that had it. */
struct agg {
	const char *name;
	struct rule_stats s;
	uint64_t open;
};

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct agg *)a)->name,
		      ((const struct agg *)b)->name);
}

static void help(struct live_text *b, const char *name, const char *type,
		 const char *text)
{
	live_put(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* The text into b.  Allocates; not for a signal handler. */
static void build(struct live_text *b)
{
	size_t n = __atomic_load_n(&E.neff, __ATOMIC_ACQUIRE), na = 0;
	struct agg *a = calloc(n ? n : 1, sizeof(*a));
	uint64_t *open = calloc(n ? n : 1, sizeof(*open));
	char pidl[32] = "", l[3 * CONF_NAME_MAX + 8];
	static const char *const hname[STATS_NHIST] = {
		"libdeadline_connect_duration_seconds",
		"libdeadline_first_byte_duration_seconds",
		"libdeadline_request_duration_seconds",
	};
	static const char *const htext[STATS_NHIST] = {
		"Time from connect() to the connection established, for "
		"connections with a connect deadline.",
		"Time from the request written to the first byte of the "
		"response, for connections with a first-byte deadline.",
		"Time from the start of a request to the start of the next "
		"one, for connections with a request deadline.",
	};
	unsigned ok, bad;

	if (!a || !open) {
		free(a);
		free(open);
		b->oom = 1;
		return;
	}
	if (stats_pid_label)
		snprintf(pidl, sizeof(pidl), "pid=\"%d\",", (int)getpid());
	/* Open tracked connections: a scan of the fd table, so that
	 * nothing is counted on the program's calls. */
	for (int s = 0; s < FDTAB_MAX / FDTAB_SLAB; s++) {
		struct fdtab_slab *sl =
			__atomic_load_n(&fdtab_slabs[s], __ATOMIC_ACQUIRE);

		if (!sl)
			continue;
		for (int i = 0; i < FDTAB_SLAB; i++) {
			uint16_t r = CONN_LOAD(sl->conn[i].rule);

			if ((conn_state(&sl->conn[i]) & CONN_TRACKED) && r < n)
				open[r]++;
		}
	}
	for (size_t i = 0; i < n; i++) {
		const char *name = E.eff[i].rule_name ? E.eff[i].rule_name : "?";
		struct agg *g = 0;
		const struct rule_stats *st = E.stats ? &E.stats[i] : &stats_sink;

		for (size_t k = 0; k < na && !g; k++)
			if (strcmp(a[k].name, name) == 0)
				g = &a[k];
		if (!g) {
			g = &a[na++];
			g->name = name;
		}
		g->open += open[i];
		g->s.conns += __atomic_load_n(&st->conns, __ATOMIC_RELAXED);
		g->s.retries += __atomic_load_n(&st->retries, __ATOMIC_RELAXED);
		g->s.bytes_in += __atomic_load_n(&st->bytes_in, __ATOMIC_RELAXED);
		g->s.bytes_out +=
			__atomic_load_n(&st->bytes_out, __ATOMIC_RELAXED);
		for (int p = 0; p < DL_PH_COUNT; p++)
			g->s.expiries[p] += __atomic_load_n(&st->expiries[p],
							    __ATOMIC_RELAXED);
		for (int h = 0; h < STATS_NHIST; h++) {
			for (int k = 0; k <= STATS_NBUCKETS; k++)
				g->s.hist[h][k] += __atomic_load_n(
					&st->hist[h][k], __ATOMIC_RELAXED);
			g->s.hist_sum_ns[h] += __atomic_load_n(
				&st->hist_sum_ns[h], __ATOMIC_RELAXED);
		}
	}
	free(open);
	qsort(a, na, sizeof(*a), by_name);

#define EACH_RULE for (size_t i = 0; i < na; i++)
#define RL lv(l, sizeof(l), a[i].name)
	help(b, "libdeadline_connections_total", "counter",
	     "Connections tracked, by the rule they started under.");
	EACH_RULE live_put(b, "libdeadline_connections_total{%srule=\"%s\"} %llu\n",
		       pidl, RL, (unsigned long long)a[i].s.conns);
	help(b, "libdeadline_open_connections", "gauge",
	     "Tracked connections open now (expired ones until the program "
	     "closes them).");
	EACH_RULE live_put(b, "libdeadline_open_connections{%srule=\"%s\"} %llu\n",
		       pidl, RL, (unsigned long long)a[i].open);
	help(b, "libdeadline_expiries_total", "counter",
	     "Deadlines that fired, by rule and phase.");
	EACH_RULE for (int p = 0; p < DL_PH_COUNT; p++)
		live_put(b, "libdeadline_expiries_total{%srule=\"%s\",phase=\"%s\"} "
		     "%llu\n", pidl, RL, policy_phase_name((enum dl_phase)p),
		     (unsigned long long)a[i].s.expiries[p]);
	help(b, "libdeadline_connect_retries_total", "counter",
	     "Connect attempts retried (connect_retries).");
	EACH_RULE live_put(b, "libdeadline_connect_retries_total{%srule=\"%s\"} "
		       "%llu\n", pidl, RL, (unsigned long long)a[i].s.retries);
	help(b, "libdeadline_received_bytes_total", "counter",
	     "Bytes the program read on tracked connections.");
	EACH_RULE live_put(b, "libdeadline_received_bytes_total{%srule=\"%s\"} "
		       "%llu\n", pidl, RL, (unsigned long long)a[i].s.bytes_in);
	help(b, "libdeadline_sent_bytes_total", "counter",
	     "Bytes the program wrote on tracked connections.");
	EACH_RULE live_put(b, "libdeadline_sent_bytes_total{%srule=\"%s\"} %llu\n",
		       pidl, RL, (unsigned long long)a[i].s.bytes_out);
	for (int h = 0; h < STATS_NHIST; h++) {
		help(b, hname[h], "histogram", htext[h]);
		EACH_RULE {
			uint64_t cum = 0;

			for (int k = 0; k < STATS_NBUCKETS; k++) {
				cum += a[i].s.hist[h][k];
				live_put(b, "%s_bucket{%srule=\"%s\",le=\"%s\"} "
				     "%llu\n", hname[h], pidl, RL, bucket_le[k],
				     (unsigned long long)cum);
			}
			cum += a[i].s.hist[h][STATS_NBUCKETS];
			live_put(b, "%s_bucket{%srule=\"%s\",le=\"+Inf\"} %llu\n",
			     hname[h], pidl, RL, (unsigned long long)cum);
			live_put(b, "%s_sum{%srule=\"%s\"} %.9f\n", hname[h], pidl,
			     RL, (double)a[i].s.hist_sum_ns[h] / 1e9);
			live_put(b, "%s_count{%srule=\"%s\"} %llu\n", hname[h],
			     pidl, RL, (unsigned long long)cum);
		}
	}
#undef EACH_RULE
#undef RL
	free(a);

	help(b, "libdeadline_faults_injected_total", "counter",
	     "Faults injected, by rule and kind (one per fault event line, "
	     "counted even when the log drops the line).");
	for (int s = 0; s < TAP_SLOTS; s++) {
		char fk[64];

		if (!__atomic_load_n(&tap[s].ready, __ATOMIC_ACQUIRE))
			continue;
		live_put(b, "libdeadline_faults_injected_total{%srule=\"%s\","
		     "fault=\"%s\"} %llu\n", pidl,
		     lv(l, sizeof(l), tap[s].rule),
		     lv(fk, sizeof(fk), tap[s].fault),
		     (unsigned long long)__atomic_load_n(&tap[s].n,
							 __ATOMIC_RELAXED));
	}
	rules_reload_counts(&ok, &bad);
	help(b, "libdeadline_config_reloads_total", "counter",
	     "Changes of DEADLINE_CONFIG applied (ok) or refused (error).");
	live_put(b, "libdeadline_config_reloads_total{%sresult=\"ok\"} %u\n", pidl,
	     ok);
	live_put(b, "libdeadline_config_reloads_total{%sresult=\"error\"} %u\n",
	     pidl, bad);
	help(b, "libdeadline_config_rules", "gauge",
	     "Rules in the configuration new connections use.");
	live_put(b, "libdeadline_config_rules%s%.*s%s %zu\n", *pidl ? "{" : "",
	     *pidl ? (int)strlen(pidl) - 1 : 0, pidl, *pidl ? "}" : "",
	     rules_now()->conf->nrules);
	help(b, "libdeadline_log_lines_dropped_total", "counter",
	     "Log lines that could not be written at once (dropped).");
	live_put(b, "libdeadline_log_lines_dropped_total%s%.*s%s %lu\n",
	     *pidl ? "{" : "", *pidl ? (int)strlen(pidl) - 1 : 0, pidl,
	     *pidl ? "}" : "", dl_log_dropped());
	help(b, "libdeadline_log_lines_suppressed_total", "counter",
	     "Log lines left out by DEADLINE_LOG_RATE.");
	live_put(b, "libdeadline_log_lines_suppressed_total%s%.*s%s %lu\n",
	     *pidl ? "{" : "", *pidl ? (int)strlen(pidl) - 1 : 0, pidl,
	     *pidl ? "}" : "", dl_log_suppressed());
}

/* The file's name now (with %p replaced by the pid). */
static void stats_name(char *out, size_t cap)
{
	const char *p = E.stats_path;
	size_t o = 0;

	for (; *p && o + 12 < cap; p++) {
		if (p[0] == '%' && p[1] == 'p') {
			o += (size_t)snprintf(out + o, cap - o, "%d",
					      (int)getpid());
			p++;
		} else {
			out[o++] = *p;
		}
	}
	out[o] = 0;
}

/* stats_write_live - rewrite the Prometheus file: a temporary file beside
 * it, then rename, so that a reader sees the old file or the new one,
 * never a part.  Returns 0, or -1 (reported once). */
int stats_write_live(void)
{
	static int warned;
	char name[4096], tmp[4200];
	struct live_text b = { 0, 0, 0, 0 };
	int e, saved = errno;

	if (!E.stats_path || !stats_prom)
		return 0;
	stats_name(name, sizeof(name));
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", name, (int)getpid());
	build(&b);
	if (b.oom) {
		free(b.p);
		errno = saved;
		return -1;
	}
	e = live_replace(name, tmp, &b, 0);
	free(b.p);
	if (e && e != EBUSY && !__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
		dl_log_warn("DEADLINE_STATS=%s: cannot write: %s", name,
			    strerror(e));
	errno = saved;
	return e ? -1 : 0;
}

/* ------------------------------------------------------------------------
 * At exit: the last Prometheus file, or one JSON line per process.
 */

static void write_json(void)
{
	char buf[256];
	int fd, n;

	/* Never block at exit (a FIFO with no reader): O_NONBLOCK. */
	fd = open(E.stats_path,
		  O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NONBLOCK | O_NOCTTY,
		  0644);
	if (fd < 0) {
		dl_log_warn("DEADLINE_STATS=%s: cannot open: %s", E.stats_path,
			    strerror(errno));
		return;
	}
	/* One write per rule would interleave with other processes: build
	 * the line in pieces but write it once per rule group. */
	n = snprintf(buf, sizeof(buf), "{\"pid\":%d,\"rules\":[", (int)getpid());
	REAL(write)(fd, buf, (size_t)n);
	for (size_t i = 0; i < E.neff; i++) {
		const struct rule_stats *st = &E.stats[i];
		n = snprintf(buf, sizeof(buf),
			     "%s{\"rule\":\"%s\",\"connections\":%llu,"
			     "\"expiries\":{\"connect\":%llu,\"first_byte\":%llu,"
			     "\"idle\":%llu,\"request\":%llu},\"retries\":%llu,"
			     "\"bytes_in\":%llu,\"bytes_out\":%llu}",
			     i ? "," : "", E.eff[i].rule_name,
			     (unsigned long long)st->conns,
			     (unsigned long long)st->expiries[DL_PH_CONNECT],
			     (unsigned long long)st->expiries[DL_PH_FIRST_BYTE],
			     (unsigned long long)st->expiries[DL_PH_IDLE],
			     (unsigned long long)st->expiries[DL_PH_REQUEST],
			     (unsigned long long)st->retries,
			     (unsigned long long)st->bytes_in,
			     (unsigned long long)st->bytes_out);
		if (n > 0)
			REAL(write)(fd, buf, (size_t)n < sizeof(buf) ? (size_t)n
								       : sizeof(buf) - 1);
	}
	REAL(write)(fd, "]}\n", 3);
	REAL(close)(fd);
}

__attribute__((destructor)) static void stats_write(void)
{
	int saved = errno;

	/* The summary of lines a rate limit held back comes first, so the
	 * counts below include it. */
	dl_log_flush_suppressed(1);
	if (E.stats_path && E.stats && !self_outside()) {
		if (stats_prom)
			stats_write_live();
		else
			write_json();
	}
	errno = saved;
}
