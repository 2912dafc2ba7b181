/* reload.c - the rules in force, and DEADLINE_CONFIG reloaded while the
 * program runs (see docs/config.md, "Changing the rules while it runs").
 *
 * Publication.  Rules are read on hot paths without a lock: a connection
 * carries the index of its resolved entry (dl_conn.rule) and every call
 * looks it up in E.eff (eff_of).  So entries are never changed or freed
 * once published.  A generation is a loaded configuration plus the slice
 * of E.eff that holds what its rules resolve to ([base] = its defaults,
 * [base + i] = rule i).  A reload appends a slice after the last one,
 * writes it whole, then publishes it in two release stores: E.neff (the
 * entries are readable) and `cur` (new connections take it).  A
 * connection opened before keeps its index, so it keeps the limits,
 * errno, teardown and fault groups it started with until it is closed.
 *
 * Memory.  E.eff and E.stats are reserved once for RULES_CAP entries
 * (address space only: pages are touched as slices are written), so they
 * never move.  An old generation's configuration is never freed: its
 * rule names and fault groups are what older connections point at.  That
 * is the leak a reload costs: the parsed file (a few KB for a few rules)
 * and its slice (about 64 + 450 bytes per rule).  When the reserve is
 * used up, a reload is refused with a message saying to restart.
 *
 * Who calls rules_check: live.c, at most about once a second, from the
 * live thread in a threaded process or from the path that starts a new
 * connection in a single-threaded one.  One check at a time (`busy`);
 * nothing here runs in a signal handler or under a shim lock.
 */
#include "engine_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "inject.h"
#include "log.h"
#include "real.h"

/* Entries reserved when the file can be reloaded (dl_conn.rule is 16
 * bits: at most 65535). */
#define RULES_CAP 16384u

static struct rules_gen gen0;
static const struct rules_gen *cur = &gen0;

static const char *rpath;	/* DEADLINE_CONFIG when reloadable */
static struct dl_limits renv;	/* the DEADLINE_*_TIMEOUT limits */
static int teardown_env = -1;	/* DEADLINE_TEARDOWN: -1 unset, else the
				 * conf_teardown every rule gets */
static size_t cap;		/* entries E.eff and E.stats can hold */
static int busy;		/* a check is running */

/* What the file was when last looked at. */
static struct {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim, ctim;
	uint64_t hash;		/* FNV-1a of the text last loaded */
	int seen;
} last;

static unsigned reload_ok, reload_bad;

/* The file as it is now is what changes are measured against. */
static void remember(const struct stat *st)
{
	last.dev = st->st_dev;
	last.ino = st->st_ino;
	last.size = st->st_size;
	last.mtim = st->st_mtim;
	last.ctim = st->st_ctim;
	last.seen = 1;
}

const struct rules_gen *rules_now(void)
{
	return __atomic_load_n(&cur, __ATOMIC_ACQUIRE);
}

/* E.eff[base..] for c: [base] its defaults, [base + i] its rule i.
 * Returns 1 if something is to be enforced. */
static int fill(const struct conf *c, uint32_t base, int named_env)
{
	struct conf_effective *e = E.eff + base;
	size_t n = c->nrules + 1;
	int active = 0;

	conf_effective(c, 0, &e[0]);
	if (named_env)
		e[0].rule_name = "env";
	for (size_t i = 0; i < c->nrules; i++)
		if (c->rules[i].index < n)
			conf_effective(c, &c->rules[i], &e[c->rules[i].index]);
	for (size_t i = 0; i < n; i++) {
		if (teardown_env >= 0)
			e[i].teardown = (enum conf_teardown)teardown_env;
		if (policy_limits_any(&e[i].limits) || e[i].connect_retries ||
		    e[i].dns_timeout_ms || e[i].nfaults)
			active = 1;
		if (e[i].limits.ms[DL_PH_IDLE])
			__atomic_store_n(&E.any_idle, 1, __ATOMIC_RELAXED);
	}
	return active;
}

/* Room for n entries (an mmap reserve when reloadable, else exactly n).
 * Returns 0 or -1. */
static int reserve(size_t n)
{
	size_t want = rpath && n < RULES_CAP ? RULES_CAP : n;
	int fl = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
	void *p, *q = 0;

	p = mmap(0, want * sizeof(*E.eff), PROT_READ | PROT_WRITE, fl, -1, 0);
	if (p != MAP_FAILED && E.stats_path) {
		q = mmap(0, want * sizeof(*E.stats), PROT_READ | PROT_WRITE,
			 fl, -1, 0);
		if (q == MAP_FAILED) {
			munmap(p, want * sizeof(*E.eff));
			p = MAP_FAILED;
		}
	}
	if (p == MAP_FAILED) {
		if (want == n)
			return -1;
		rpath = 0;	/* not even the reserve: no reloads */
		return reserve(n);
	}
	E.eff = p;
	E.stats = q;
	cap = want;
	return 0;
}

static void teardown_from_env(void)
{
	const char *td = secure_getenv("DEADLINE_TEARDOWN");
	int fin;

	if (!td || !*td)
		return;
	fin = strcmp(td, "close") == 0;
	if (!fin && strcmp(td, "reset") != 0)
		dl_log_conf(DL_CONF_WARNING, NULL, "DEADLINE_TEARDOWN=\"%.32s\" "
			    "is not reset or close; using reset", td);
	teardown_env = fin ? CONF_TEARDOWN_CLOSE : CONF_TEARDOWN_RESET;
}

int rules_start(const struct conf *c, const char *path, int used,
		const struct dl_limits *env)
{
	static struct conf empty;
	static char pbuf[4096];
	int active;

	/* A copy: some daemons write their process title over the
	 * environment (redis-server, nginx). */
	rpath = 0;
	if (path && *path && strlen(path) < sizeof(pbuf)) {
		memcpy(pbuf, path, strlen(path) + 1);
		rpath = pbuf;
	}
	renv = *env;
	teardown_from_env();
	if (reserve(used ? c->nrules + 1 : 1) < 0) {
		rpath = 0;
		return -1;
	}
	gen0.conf = used ? c : &empty;
	gen0.base = 0;
	active = fill(gen0.conf, 0, !path || !*path);
	if (!used)
		active = 0;
	__atomic_store_n(&E.neff, gen0.conf->nrules + 1, __ATOMIC_RELEASE);
	if (rpath) {
		struct stat st;

		/* What "changed" is measured against.  (The text's hash is
		 * learnt at the first reload: a file rewritten with the same
		 * bytes then costs one load, once.) */
		if (stat(rpath, &st) == 0)
			remember(&st);
	}
	return active;
}

void rules_atfork_child(void)
{
	/* A check the parent's live thread was in does not go on here. */
	busy = 0;
}

/* ------------------------------------------------------------ reloading */

static uint64_t fnv1a(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
	return h;
}

static int same_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/* The file's text (at most CONF_MAX_FILE_BYTES + 1 bytes), read at a
 * number of the shim's own.  NULL when it cannot be read now. */
static char *slurp(size_t *lenp)
{
	size_t len = 0, max = CONF_MAX_FILE_BYTES + 1;
	char *buf = malloc(max);
	int fd;

	if (!buf)
		return 0;
	fd = live_open_own(rpath, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
	if (fd < 0) {
		free(buf);
		return 0;
	}
	for (;;) {
		ssize_t r = REAL(read)(fd, buf + len, max - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		if (len == max)
			break;
	}
	REAL(close)(fd);
	*lenp = len;
	return buf;
}

static void log_reload(const char *result, size_t rules, size_t errors,
		       unsigned number)
{
	const struct dl_field f[] = {
		{ "event", "reload", 0 },
		{ "config", rpath, 0 },
		{ "result", result, 0 },
		{ "rules", 0, (long long)rules },
		{ "errors", 0, (long long)errors },
		{ "generation", 0, number },
	};

	dl_log_fields(f, (int)(sizeof(f) / sizeof(f[0])));
}

/* Load the text whole; publish it, or keep the rules in force. */
static void reload_text(const char *text, size_t len)
{
	const struct rules_gen *old = rules_now();
	struct rules_gen *g = calloc(1, sizeof(*g));
	struct conf *c = calloc(1, sizeof(*c));
	size_t n, base;
	int active;

	if (!g || !c) {
		free(g);
		free(c);
		return;
	}
	conf_init(c);
	if (conf_load_mem(c, text, len, rpath) < 0) {
		/* As at start and as `deadline check` says it: FILE:LINE. */
		for (size_t i = 0; i < c->nerrors; i++)
			dl_log_conf(DL_CONF_ERROR, rpath, "%s", c->errors[i]);
		if (c->errors_dropped)
			dl_log_conf(DL_CONF_ERROR, rpath, "%s: %zu more errors "
				    "not shown", rpath, c->errors_dropped);
		__atomic_fetch_add(&reload_bad, 1, __ATOMIC_RELAXED);
		log_reload("error", old->conf->nrules,
			   c->nerrors + c->errors_dropped, old->number);
		conf_free(c);
		free(c);
		free(g);
		return;
	}
	conf_apply_env_overrides(c, &renv);
	n = c->nrules + 1;
	base = __atomic_load_n(&E.neff, __ATOMIC_ACQUIRE);
	if (base + n > cap) {
		dl_log_conf(DL_CONF_ERROR, rpath, "%s: not reloaded: %zu "
			    "reloads used the room for rules (%zu entries); "
			    "restart the program to apply this file", rpath,
			    (size_t)reload_ok, cap);
		__atomic_fetch_add(&reload_bad, 1, __ATOMIC_RELAXED);
		conf_free(c);
		free(c);
		free(g);
		return;
	}
	active = fill(c, (uint32_t)base, 0);
	g->conf = c;
	g->base = (uint32_t)base;
	g->number = old->number + 1;
	__atomic_store_n(&E.neff, base + n, __ATOMIC_RELEASE);
	/* The first fault groups of the program's life: the injector is
	 * set up before any connection can match the new rules. */
	inject_reload(c);
	__atomic_store_n(&cur, g, __ATOMIC_RELEASE);
	/* Once on, the engine stays on: connections under older rules
	 * still need it. */
	if (active)
		__atomic_store_n(&engine_enabled_flag, 1, __ATOMIC_RELEASE);
	__atomic_fetch_add(&reload_ok, 1, __ATOMIC_RELAXED);
	log_reload("ok", c->nrules, 0, g->number);
}

void rules_check(void)
{
	struct stat st;
	char *text;
	size_t len = 0;
	uint64_t h;

	if (!rpath || __atomic_exchange_n(&busy, 1, __ATOMIC_ACQUIRE))
		return;
	/* A file being replaced may be missing for a moment: try again at
	 * the next check. */
	if (stat(rpath, &st) < 0)
		goto out;
	if (last.seen && st.st_dev == last.dev && st.st_ino == last.ino &&
	    st.st_size == last.size && same_time(&st.st_mtim, &last.mtim) &&
	    same_time(&st.st_ctim, &last.ctim))
		goto out;
	text = slurp(&len);
	if (!text)
		goto out;	/* not readable now: look again later */
	remember(&st);
	h = fnv1a(text, len);
	if (h != last.hash) {
		last.hash = h;
		reload_text(text, len);
	}
	free(text);
out:
	__atomic_store_n(&busy, 0, __ATOMIC_RELEASE);
}

void rules_reload_counts(unsigned *ok, unsigned *bad)
{
	*ok = __atomic_load_n(&reload_ok, __ATOMIC_RELAXED);
	*bad = __atomic_load_n(&reload_bad, __ATOMIC_RELAXED);
}
