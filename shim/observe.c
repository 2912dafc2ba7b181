/* observe.c - DEADLINE_OBSERVE=FILE: no deadline is enforced; instead,
 * per peer and per rule, how long each phase a deadline would bound
 * took is recorded in log-linear histograms (observe.h), and written to
 * FILE.<pid> at exit (and every DEADLINE_OBSERVE_INTERVAL, for daemons).
 * `deadline suggest` and `deadline report` read them (docs/observe.md).
 *
 * What is measured, per connection (the same points the deadlines use,
 * docs/semantics.md):
 *   connect     connect() called -> handshake done (a blocking connect's
 *               return; an event loop's first byte moved)
 *   first_byte  the last byte of a request written -> the first byte of
 *               its response read (inbound: accept, or our answer ->
 *               the client's next byte)
 *   idle        the gap before each read, and before each write that
 *               follows a write: time the program may have spent waiting
 *               on the socket (a write after a read is the program's own
 *               turn, not a wait, unless the socket sits in one of its
 *               epoll sets, where the idle deadline runs between any
 *               two moves)
 *   request     request start (connect/accept, or the first write after
 *               a read; inbound: the first read after a write) -> the
 *               next request's start, the end of its HTTP/1 exchange, or
 *               close
 *
 * Keys: outbound connections by the name the program resolved (else the
 * address) and rule; inbound ones by the local port and rule (one key per
 * client address would not be bounded).  At most OBS_KEYS keys; the rest
 * share the key "other".
 *
 * Cost: nothing unless observing (one branch per hook, observe.h).  When
 * observing: a clock read and a few relaxed atomics per byte-moving
 * call; a lock at connection start (key and timeline).  Threads share the
 * counters (atomics); a forked child starts from zero counts and writes
 * its own FILE.<pid>; the tool adds the parts up.
 *
 * Locking: lk guards the key table's insertions and the timeline; it is
 * never taken under E.lk, and nothing is called under it.
 */
#include "engine_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <unistd.h>

#include "log.h"
#include "observe.h"
#include "real.h"

int observe_on;
const struct dl_limits observe_no_limits;

#define OBS_KEYS 512		/* keys at most (the last is "other") */
#define OBS_TL 256		/* timeline bins */
#define OBS_TL_BIN0_MS 100	/* first bin width, doubled as needed */

struct okey {
	uint16_t port;		/* inbound: local port; outbound: 0 */
	uint8_t inbound;
	char host[NAMES_NAME_MAX + 1];
	char rule[CONF_NAME_MAX + 1];
};

struct ohist {
	uint64_t n[OBS_NB];
	uint64_t sum_us, max_us;
};

struct odata {
	struct ohist h[OBS_NPH];
	uint32_t tl[OBS_TL];	/* connections started per bin */
};

/* Per connection, beside fdtab (slabs mapped on first use, as in
 * exchange.c).  Fields are relaxed atomics: two threads on one socket
 * can only make one sample slightly off. */
struct oslot {
	uint32_t gen;		/* generation of the file it follows */
	uint16_t key;		/* key + 1; 0 = not observed */
	uint8_t fl;
	uint8_t epoch;		/* fork epoch of the last move */
	int64_t t_start;	/* connect called / accepted */
	int64_t t_last;		/* last move (or connected, or accepted) */
	int64_t t_fb;		/* first-byte clock start; 0 = none */
	int64_t t_req;		/* request start; 0 = none running */
};

enum {
	OS_CONNECTING = 1,
	OS_LAST_W = 2,
	OS_LAST_R = 4,
};

struct oslab {
	struct oslot s[FDTAB_SLAB];
};

static struct oslab *slabs[FDTAB_MAX / FDTAB_SLAB];
static struct okey *keys;	/* OBS_KEYS */
static struct odata *data;	/* OBS_KEYS */
static size_t nkeys;
static pthread_mutex_t lk = PTHREAD_MUTEX_INITIALIZER;
static uint8_t epoch;		/* bumped at each fork, both sides */

static char path[4096];		/* DEADLINE_OBSERVE */
static int64_t interval_ns;	/* 0: at exit only */
static int64_t next_write;
static int writing;
static int wrote_once;		/* this process wrote its file */
static int64_t t0_mono;		/* observing since (timeline origin) */
static int64_t t0_wall_ms;
static uint32_t tl_bin_ms = OBS_TL_BIN0_MS;

#define LD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define ST(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------
 * Counting
 */

static void record(unsigned key, enum dl_phase ph, int64_t ns)
{
	struct ohist *h = &data[key].h[ph];
	uint64_t us = ns > 0 ? (uint64_t)ns / 1000u : 0, m;

	__atomic_fetch_add(&h->n[obs_bucket(us)], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&h->sum_us, us, __ATOMIC_RELAXED);
	m = LD(h->max_us);
	while (us > m && !__atomic_compare_exchange_n(&h->max_us, &m, us, 1,
						      __ATOMIC_RELAXED,
						      __ATOMIC_RELAXED))
		;
}

/* Is key k in use?  (Below nkeys, or the shared "other".) */
static int key_used(size_t k)
{
	return k < __atomic_load_n(&nkeys, __ATOMIC_ACQUIRE) ||
	       (k == OBS_KEYS - 1 && keys[k].host[0]);
}

/* Caller holds lk.  The timeline bin for now, widening the bins (each
 * pair merged) until it fits. */
static void timeline_add_locked(unsigned key, int64_t now)
{
	int64_t b = (now - t0_mono) / ((int64_t)tl_bin_ms * CLOCK_NS_PER_MS);

	if (b < 0)
		b = 0;
	while (b >= OBS_TL) {
		for (size_t k = 0; k < OBS_KEYS; k++) {
			uint32_t *t = data[k].tl;

			if (!key_used(k))
				continue;
			for (unsigned i = 0; i < OBS_TL / 2; i++)
				ST(t[i], LD(t[2 * i]) + LD(t[2 * i + 1]));
			for (unsigned i = OBS_TL / 2; i < OBS_TL; i++)
				ST(t[i], 0);
		}
		tl_bin_ms *= 2;
		b /= 2;
	}
	ST(data[key].tl[b], LD(data[key].tl[b]) + 1);
}

/* Caller holds lk.  The key for (inbound, port, host, rule), made if
 * new; the last one ("other") when the table is full. */
static unsigned key_find_locked(int inbound, uint16_t port, const char *host,
				const char *rule)
{
	size_t i;

	for (i = 0; i < nkeys; i++)
		if (keys[i].inbound == inbound && keys[i].port == port &&
		    strcmp(keys[i].host, host) == 0 &&
		    strcmp(keys[i].rule, rule) == 0)
			return (unsigned)i;
	if (nkeys == OBS_KEYS - 1) {
		struct okey *o = &keys[OBS_KEYS - 1];

		if (!o->host[0]) {
			strcpy(o->host, "other");
			strcpy(o->rule, "-");
		}
		return OBS_KEYS - 1;
	}
	keys[i].inbound = (uint8_t)inbound;
	keys[i].port = port;
	snprintf(keys[i].host, sizeof(keys[i].host), "%s", host);
	snprintf(keys[i].rule, sizeof(keys[i].rule), "%s", rule);
	__atomic_store_n(&nkeys, i + 1, __ATOMIC_RELEASE);
	return (unsigned)i;
}

static struct oslot *slot_of(int fd, int make)
{
	struct oslab *s, *expect = 0;

	if ((unsigned)fd >= FDTAB_MAX)
		return 0;
	s = __atomic_load_n(&slabs[fd >> FDTAB_SLAB_SHIFT], __ATOMIC_ACQUIRE);
	if (!s && make) {
		s = mmap(0, sizeof(*s), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (s == MAP_FAILED)
			return 0;
		if (!__atomic_compare_exchange_n(&slabs[fd >> FDTAB_SLAB_SHIFT],
						 &expect, s, 0, __ATOMIC_ACQ_REL,
						 __ATOMIC_ACQUIRE)) {
			munmap(s, sizeof(*s));
			s = expect;
		}
	}
	return s ? &s->s[fd & (FDTAB_SLAB - 1)] : 0;
}

/* The slot following c's current file, or NULL. */
static struct oslot *slot_live(int fd, const struct dl_conn *c)
{
	struct oslot *s = slot_of(fd, 0);

	if (!s || !LD(s->key) || LD(s->gen) != conn_gen(c))
		return 0;
	return s;
}

/* ------------------------------------------------------------------------
 * The file
 */

/* A word of the file: bytes outside '!'..'~' and '%' as %XX. */
static void bword(struct live_text *b, const char *s)
{
	char w[3 * 300 + 1];
	size_t o = 0;

	if (!*s)
		s = "-";
	for (; *s && o + 4 < sizeof(w); s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch <= ' ' || ch >= 0x7f || ch == '%')
			o += (size_t)snprintf(w + o, sizeof(w) - o, "%%%02X", ch);
		else
			w[o++] = (char)ch;
	}
	w[o] = 0;
	live_put(b, " %s", w);
}

static const char *const ph_names[OBS_NPH] = {
	"connect", "first_byte", "idle", "request"
};

/* The file's text into b; returns the number of h and t lines. */
static size_t build(struct live_text *b)
{
	size_t lines = 0;
	char exe[512];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	exe[n > 0 ? n : 0] = 0;
	live_put(b, "# libdeadline observe file, format %d (docs/observe.md)\n",
	     OBS_FORMAT_VERSION);
	live_put(b, "v %d %u us\n", OBS_FORMAT_VERSION, OBS_SUB);
	live_put(b, "p %d %lld %lld", (int)getpid(), (long long)t0_wall_ms,
	     (long long)wall_ms());
	bword(b, exe);
	live_put(b, "\n");
	for (size_t k = 0; k < OBS_KEYS; k++) {
		const struct okey *ky = &keys[k];
		const struct odata *d = &data[k];
		int any_tl = 0;

		if (!key_used(k))
			continue;
		for (int ph = 0; ph < OBS_NPH; ph++) {
			const struct ohist *h = &d->h[ph];
			uint64_t cnt = 0;

			for (unsigned i = 0; i < OBS_NB; i++)
				cnt += LD(h->n[i]);
			if (!cnt)
				continue;
			live_put(b, "h %s", ky->inbound ? "in" : "out");
			bword(b, ky->host);
			live_put(b, " %u", ky->port);
			bword(b, ky->rule);
			live_put(b, " %s %llu %llu %llu", ph_names[ph],
			     (unsigned long long)cnt,
			     (unsigned long long)LD(h->sum_us),
			     (unsigned long long)LD(h->max_us));
			for (unsigned i = 0; i < OBS_NB; i++) {
				uint64_t v = LD(h->n[i]);

				if (v)
					live_put(b, " %u:%llu", i,
					     (unsigned long long)v);
			}
			live_put(b, "\n");
			lines++;
		}
		for (unsigned i = 0; i < OBS_TL && !any_tl; i++)
			any_tl = LD(d->tl[i]) != 0;
		if (!any_tl)
			continue;
		live_put(b, "t %s", ky->inbound ? "in" : "out");
		bword(b, ky->host);
		live_put(b, " %u", ky->port);
		bword(b, ky->rule);
		live_put(b, " %lld %u", (long long)t0_wall_ms, LD(tl_bin_ms));
		for (unsigned i = 0; i < OBS_TL; i++) {
			uint32_t v = LD(d->tl[i]);

			if (v)
				live_put(b, " %u:%u", i, v);
		}
		live_put(b, "\n");
		lines++;
	}
	return lines;
}

/* Write FILE.<pid> (a temporary file, then rename).  at_exit: a program
 * that closed its stdio cannot be handed a low number by us any more. */
static void write_file(int at_exit)
{
	static int warned;
	char name[4200], tmp[4300];
	struct live_text b = { 0, 0, 0, 0 };
	int e = 0, saved = errno;
	size_t lines;

	if (__atomic_exchange_n(&writing, 1, __ATOMIC_ACQUIRE))
		return;
	snprintf(name, sizeof(name), "%s.%d", path, (int)getpid());
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	lines = build(&b);
	/* A process that saw no connection leaves no file (a shell in
	 * front of the program, a helper it forks). */
	if (b.oom || (!lines && !wrote_once))
		goto out;
	e = live_replace(name, tmp, &b, at_exit);
	if (!e)
		wrote_once = 1;
out:
	free(b.p);
	if (e && e != EBUSY && !__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
		dl_log_warn("DEADLINE_OBSERVE=%s: cannot write %s: %s", path,
			    name, strerror(e));
	__atomic_store_n(&writing, 0, __ATOMIC_RELEASE);
	errno = saved;
}

/* On a path the program takes anyway: the file, when it is due. */
static void maybe_write(int64_t now)
{
	int64_t due = LD(next_write);

	if (!interval_ns || now < due)
		return;
	if (!__atomic_compare_exchange_n(&next_write, &due, now + interval_ns,
					 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		return;
	write_file(0);
}

__attribute__((destructor)) static void observe_at_exit(void)
{
	if (LD(observe_on) && !self_outside())
		write_file(1);
}

/* ------------------------------------------------------------------------
 * Start-up and fork
 */

static void fork_prepare(void)
{
	self_lock(&lk);
}

static void fork_parent(void)
{
	epoch++;
	self_unlock(&lk);
}

/* The child counts from zero (its parent's counts are the parent's to
 * write); the keys stay, so connections it inherited keep theirs. */
static void fork_child(void)
{
	epoch++;
	if (data &&
	    mmap(data, OBS_KEYS * sizeof(*data), PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1,
		 0) == MAP_FAILED) {
		observe_on = 0;	/* cannot start from zero: stay silent */
		engine_extra_sync();
	}
	writing = 0;
	wrote_once = 0;
	self_unlock(&lk);
}

int observe_start(void)
{
	const char *v = secure_getenv("DEADLINE_OBSERVE");
	const char *iv = secure_getenv("DEADLINE_OBSERVE_INTERVAL");
	uint32_t ms = 0;
	void *k, *d;

	if (!v || !*v)
		return 0;
	if (strlen(v) >= sizeof(path)) {
		dl_log_conf(DL_CONF_WARNING, NULL, "DEADLINE_OBSERVE: path too "
			    "long; not observing");
		return 0;
	}
	if (iv && *iv && policy_parse_duration(iv, &ms) < 0) {
		dl_log_conf(DL_CONF_WARNING, NULL, "DEADLINE_OBSERVE_INTERVAL="
			    "\"%.32s\" is not a duration; writing at exit "
			    "only", iv);
		ms = 0;
	}
	k = mmap(0, OBS_KEYS * sizeof(*keys), PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	d = mmap(0, OBS_KEYS * sizeof(*data), PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (k == MAP_FAILED || d == MAP_FAILED) {
		if (k != MAP_FAILED)
			munmap(k, OBS_KEYS * sizeof(*keys));
		if (d != MAP_FAILED)
			munmap(d, OBS_KEYS * sizeof(*data));
		dl_log_conf(DL_CONF_WARNING, NULL, "DEADLINE_OBSERVE: out of "
			    "memory; not observing");
		return 0;
	}
	keys = k;
	data = d;
	memcpy(path, v, strlen(v) + 1);
	interval_ns = (int64_t)ms * CLOCK_NS_PER_MS;
	t0_mono = clock_now();
	t0_wall_ms = wall_ms();
	next_write = t0_mono + interval_ns;
	pthread_atfork(fork_prepare, fork_parent, fork_child);
	/* The program's own waits tell the engine which sockets sit in its
	 * epoll sets (where the idle deadline runs between any two moves). */
	__atomic_store_n(&E.any_idle, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&observe_on, 1, __ATOMIC_RELEASE);
	engine_extra_sync();
	return 1;
}

/* ------------------------------------------------------------------------
 * The hooks (observe.h)
 */

void observe_conn_slow(int fd, struct dl_conn *c, const struct sockaddr *addr,
		       socklen_t len, int inbound)
{
	char host[NAMES_NAME_MAX + 1] = "";
	struct oslot *s = slot_of(fd, 1);
	int64_t now = clock_now();
	uint16_t port = 0;
	unsigned key;
	int saved = errno;

	(void)len;
	if (!s)
		return;
	if (inbound) {
		struct sockaddr_storage l;
		socklen_t ll = sizeof(l);

		strcpy(host, "*");
		if (getsockname(fd, (struct sockaddr *)&l, &ll) == 0)
			port = ntohs(l.ss_family == AF_INET6
					     ? ((struct sockaddr_in6 *)&l)->sin6_port
					     : ((struct sockaddr_in *)&l)->sin_port);
	} else if (!addr || !names_lookup(addr, host, sizeof(host))) {
		if (addr && addr->sa_family == AF_INET)
			inet_ntop(AF_INET,
				  &((const struct sockaddr_in *)addr)->sin_addr,
				  host, sizeof(host));
		else if (addr && addr->sa_family == AF_INET6)
			inet_ntop(AF_INET6,
				  &((const struct sockaddr_in6 *)addr)->sin6_addr,
				  host, sizeof(host));
		if (!host[0])
			strcpy(host, "-");
	}
	self_lock(&lk);
	key = key_find_locked(inbound, port, host, eff_of(c)->rule_name);
	timeline_add_locked(key, now);
	self_unlock(&lk);
	ST(s->fl, (uint8_t)(inbound ? 0 : OS_CONNECTING));
	ST(s->epoch, epoch);
	ST(s->t_start, now);
	ST(s->t_last, inbound ? now : 0);
	ST(s->t_fb, inbound ? now : 0);
	ST(s->t_req, now);
	ST(s->gen, conn_gen(c));
	__atomic_store_n(&s->key, (uint16_t)(key + 1), __ATOMIC_RELEASE);
	maybe_write(now);
	errno = saved;
}

/* Caller: s live and connecting. */
static void connected(struct oslot *s, int64_t now)
{
	uint8_t fl = LD(s->fl);

	if (!(fl & OS_CONNECTING))
		return;
	ST(s->fl, (uint8_t)(fl & ~OS_CONNECTING));
	record(LD(s->key) - 1u, DL_PH_CONNECT, now - LD(s->t_start));
	ST(s->t_last, now);
}

void observe_connected_slow(int fd, struct dl_conn *c)
{
	struct oslot *s = slot_live(fd, c);

	if (s)
		connected(s, clock_now());
}

void observe_moved_slow(int fd, struct dl_conn *c, int wrote)
{
	struct oslot *s = slot_live(fd, c);
	uint32_t st = conn_state(c);
	int inbound = (st & CONN_INBOUND) != 0;
	int64_t now, last;
	unsigned key;
	uint8_t fl;

	if (!s)
		return;
	now = clock_now();
	key = LD(s->key) - 1u;
	/* An event loop's connect is met here: no gap to measure yet. */
	last = (LD(s->fl) & OS_CONNECTING) ? 0 : LD(s->t_last);
	connected(s, now);
	fl = LD(s->fl);
	/* Idle: the gap before a read, or before a write after a write. */
	if (last && (!wrote || (fl & OS_LAST_W) || (st & CONN_EPOLLED)))
		record(key, DL_PH_IDLE, now - last);
	if (!wrote && LD(s->t_fb)) {
		record(key, DL_PH_FIRST_BYTE, now - LD(s->t_fb));
		ST(s->t_fb, 0);
	}
	if (wrote)
		ST(s->t_fb, now);	/* from the last byte written */
	/* A new request: the side that opens a turn moves after the
	 * peer's turn.  The one running (if not over already) ends. */
	if (wrote != inbound && (fl & (wrote ? OS_LAST_R : OS_LAST_W))) {
		int64_t r = LD(s->t_req);

		if (r)
			record(key, DL_PH_REQUEST, now - r);
		ST(s->t_req, now);
	}
	ST(s->fl, (uint8_t)((fl & ~(OS_LAST_W | OS_LAST_R)) |
			    (wrote ? OS_LAST_W : OS_LAST_R)));
	ST(s->t_last, now);
	ST(s->epoch, epoch);
}

void observe_over_slow(int fd, struct dl_conn *c)
{
	struct oslot *s = slot_live(fd, c);
	int64_t r;

	if (!s || !(r = LD(s->t_req)))
		return;
	record(LD(s->key) - 1u, DL_PH_REQUEST, clock_now() - r);
	ST(s->t_req, 0);
}

void observe_closed_slow(int fd, struct dl_conn *c)
{
	struct oslot *s = slot_live(fd, c);
	int64_t now, r;

	if (!s)
		return;
	now = clock_now();
	/* A connect that failed has no phase to show; a request that ran
	 * before a fork and saw no byte since is the other side's. */
	if (!(LD(s->fl) & OS_CONNECTING) && (r = LD(s->t_req)) &&
	    LD(s->epoch) == epoch)
		record(LD(s->key) - 1u, DL_PH_REQUEST, now - r);
	__atomic_store_n(&s->key, 0, __ATOMIC_RELEASE);
	maybe_write(now);
}
