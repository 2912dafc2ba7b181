/* inject.c - fault injection at run time (see inject.h).
 *
 * Per-connection state lives in a table indexed by fd number, allocated
 * for numbers that ever carried a faulted connection and reused after.  A
 * mutex per entry serialises the rare case of two threads on one socket;
 * it is a leaf lock (no engine lock is taken under it).
 *
 * Reproducibility: a decision is fault_roll(seed, rule key, host,
 * connection number, operation number).  Connection numbers count per
 * (rule key, host); the operation number counts the calls on the
 * connection that moved data or met a fault, so a program that makes the
 * same calls meets the same faults whatever the thread timing.  The rule
 * key (fault_group_key) is distinct for every rule of every source - the
 * file's rules, `defaults`, each DEADLINE_FAULTS spec - so that groups of
 * different rules draw independent numbers and count connections apart;
 * inject_load checks it.
 */
#include "inject.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fdtab.h"
#include "log.h"
#include "names.h"
#include "real.h"
#include "self.h"

#define INJ_MAX_SPECS 16
#define NDIR 3 /* indexed by enum fault_dir: [FDIR_UP], [FDIR_DOWN] */
_Static_assert(FK_COUNT <= 16, "fault_conn.once holds a bit per kind");
/* Every file rule index (1..CONF_MAX_RULES) and spec position
 * (0..CONF_MAX_RULES-1) has a key of its own. */
_Static_assert(CONF_MAX_RULES <= FAULT_KEY_INDEX_MAX,
	       "rule indices beyond what fault_group_key keeps apart");

int inject_on;

static struct {
	struct conf specs;	/* DEADLINE_FAULTS, one rule per spec */
	int have_specs;
	uint64_t seed;
	int dry;
	_Atomic int nactive;
	int64_t t0;		/* process start, for dns windows */
} I;

struct fault_conn {
	pthread_mutex_t mu;
	int active;
	uint32_t gen;
	int fd;
	int n;
	struct fault_spec *spec[INJ_MAX_SPECS];
	uint32_t rule_key[INJ_MAX_SPECS];
	const char *rule_name[INJ_MAX_SPECS];
	uint64_t conn_no[INJ_MAX_SPECS];
	uint64_t host_hash;
	char host[NAMES_NAME_MAX + 1];
	char addr[INET6_ADDRSTRLEN];
	int port;
	int64_t start;
	uint64_t op;
	uint64_t bytes[NDIR];
	int64_t gate[NDIR];	/* latency: the op may not start before */
	uint64_t gate_op[NDIR];	/* op + 1 the gate belongs to */
	int64_t bw_next[NDIR];
	int last_dir;		/* direction of the last transfer */
	/* connect */
	int conn_err;		/* injected failure, reported at conn_at */
	int64_t conn_at;	/* hidden until; 0 = open */
	int conn_forever;	/* blackholed handshake */
	int fake;		/* the real connect() was never made */
	/* blackhole data */
	int bh;			/* spec index + 1 */
	int64_t bh_then_at;
	/* the end of the connection */
	int ended;		/* FTHEN_RESET or FTHEN_EOF */
	/* Per-connection decisions, per group: 0 undecided, 1 no, 2 yes. */
	uint8_t end_state[INJ_MAX_SPECS];	/* reset / eof */
	uint8_t bh_state[INJ_MAX_SPECS];	/* blackhole (data) */
	uint8_t cont_state[INJ_MAX_SPECS];	/* slice, bandwidth */
	uint16_t once[INJ_MAX_SPECS];	/* kinds logged once per connection */
	uint64_t last_log_op;	/* dedupe per-op logs: op + 1 */
	uint32_t last_log_kind;
	/* Re-queue edge-triggered epoll events: after a spurious EAGAIN,
	 * or a transfer cut short by a cap (the program may wait for the
	 * next edge, as it would after a short count from the kernel). */
	int rearm;
	int hup_hidden;		/* a hangup was hidden (inject_hup_hidden) */
};

static struct fault_conn *FT[FDTAB_MAX];
static pthread_mutex_t ft_mu = PTHREAD_MUTEX_INITIALIZER;

/* ------------------------------------------------------------ loading */

static int env_flag(const char *name)
{
	const char *v = secure_getenv(name);

	return v && *v && strcmp(v, "0") != 0;
}

static int conf_has_faults(const struct conf *c)
{
	if (c->defaults.nfaults)
		return 1;
	for (size_t i = 0; i < c->nrules; i++)
		if (c->rules[i].v.nfaults)
			return 1;
	return 0;
}

int inject_load(const struct conf *file)
{
	const char *specs = secure_getenv("DEADLINE_FAULTS");
	const char *seed = secure_getenv("DEADLINE_SEED");
	const char *source = "random";
	int bad = 0;

	I.t0 = clock_now();
	conf_init(&I.specs);
	if (specs && *specs) {
		const char *err = 0;
		char *text = fault_specs_to_conf(specs, &err);

		if (!text) {
			dl_log_event("DEADLINE_FAULTS: %s", err);
			bad = 1;
		} else if (conf_load_mem(&I.specs, text, strlen(text),
					 "DEADLINE_FAULTS") < 0) {
			for (size_t i = 0; i < I.specs.nerrors; i++)
				dl_log_event("%s (fault spec = line)",
					     I.specs.errors[i]);
			bad = 1;
		} else {
			I.have_specs = I.specs.nrules > 0;
			/* "fault#N" unless the spec named itself. */
			for (size_t i = 0; i < I.specs.nrules; i++)
				if (strncmp(I.specs.rules[i].name, "rule#",
					    5) == 0)
					snprintf(I.specs.rules[i].name,
						 sizeof(I.specs.rules[i].name),
						 "fault#%zu", i + 1);
		}
		free(text);
	}
	if (!I.have_specs && !(file && conf_has_faults(file)))
		return bad ? -1 : 0;
	{
		/* Groups of two rules sharing a key would draw the same
		 * numbers: never run so.  (fault_group_key cannot make two
		 * alike; this keeps a change from slipping through.) */
		char msg[2 * CONF_NAME_MAX + 32];

		if (fault_conf_keys_check(file, I.have_specs ? &I.specs : 0,
					  msg, sizeof(msg)) == -1) {
			dl_log_warn("internal error: the fault groups of %s "
				    "would draw the same random numbers%s",
				    msg, I.have_specs ? "; DEADLINE_FAULTS "
							"ignored" : "");
			if (I.have_specs) {
				conf_free(&I.specs);
				I.have_specs = 0;
				bad = 1;
				if (!(file && conf_has_faults(file)))
					return -1;
			}
		}
	}
	if (seed && *seed) {
		char *end;
		errno = 0;
		I.seed = strtoull(seed, &end, 0);
		if (errno || *end) {
			dl_log_warn("DEADLINE_SEED=\"%.32s\" is not an "
				    "integer; using a random seed", seed);
		} else {
			source = "env";
		}
	}
	if (strcmp(source, "env") != 0 && file && file->has_seed) {
		I.seed = (uint64_t)file->seed;
		source = "config";
	}
	if (strcmp(source, "random") == 0) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		I.seed = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
			 ((uint64_t)getpid() << 40);
		I.seed &= 0x7fffffffffffffffull;
	}
	I.dry = env_flag("DEADLINE_FAULTS_DRY_RUN");
	inject_on = 1;
	{
		char sb[24];
		const struct dl_field f[] = {
			{ "event", "faults", 0 },
			{ "seed", sb, 0 },
			{ "seed_from", source, 0 },
			{ "dry_run", I.dry ? "true" : "false", 0 },
		};
		snprintf(sb, sizeof(sb), "%llu", (unsigned long long)I.seed);
		dl_log_fields(f, 4);
	}
	return bad ? -1 : 0;
}

/* --------------------------------------------------- connection numbers */

/* Per (what, rule key, host) counters, so that one host's connections
 * are numbered the same whatever other hosts the program talks to
 * meanwhile.  Entries are told apart by the whole triple, never by a hash
 * of it: two rules (or a rule's connections and its lookups) never share
 * a counter. */
enum counted { CNT_CONN = 1, CNT_DNS = 2 };
#define NCOUNTERS 4096
static struct {
	uint32_t what;		/* enum counted; 0 = free */
	uint32_t rule;
	uint64_t host;
	uint64_t n;
} counters[NCOUNTERS];
static pthread_mutex_t counters_mu = PTHREAD_MUTEX_INITIALIZER;

static uint64_t next_no(enum counted what, uint32_t rule, uint64_t host)
{
	uint64_t h = host ^ ((uint64_t)rule * 0x9e3779b97f4a7c15ull) ^
		     ((uint64_t)what << 61);
	uint64_t n = 0;
	size_t i;

	h ^= h >> 29;
	i = (size_t)(h % NCOUNTERS);
	self_lock(&counters_mu);
	for (size_t k = 0; k < NCOUNTERS; k++, i = (i + 1) % NCOUNTERS) {
		if (!counters[i].what) {
			counters[i].what = what;
			counters[i].rule = rule;
			counters[i].host = host;
		} else if (counters[i].what != what ||
			   counters[i].rule != rule ||
			   counters[i].host != host) {
			continue;
		}
		n = ++counters[i].n;
		break;
	}
	self_unlock(&counters_mu);
	return n;
}

/* ------------------------------------------------------------ matching */

struct matched {
	int n;
	struct fault_spec *spec[INJ_MAX_SPECS];
	uint32_t rule_key[INJ_MAX_SPECS];
	const char *rule_name[INJ_MAX_SPECS];
};

static void add_specs(struct matched *m, struct fault_spec *f, uint16_t nf,
		      uint32_t key, const char *name, uint32_t skip)
{
	for (uint16_t i = 0; i < nf && m->n < INJ_MAX_SPECS; i++) {
		if (!(f[i].kinds & ~skip))
			continue; /* nothing here for this use */
		m->spec[m->n] = &f[i];
		m->rule_key[m->n] = key;
		m->rule_name[m->n] = name;
		m->n++;
	}
}

/* Every fault group that applies: the file rule's, then every matching
 * DEADLINE_FAULTS spec's.  skip: kinds not wanted here. */
static void match_specs(struct matched *m, const struct conf_effective *rule,
			const char *host, const struct sockaddr *addr,
			socklen_t len, int inbound, uint32_t skip)
{
	m->n = 0;
	if (rule && rule->nfaults)
		add_specs(m, rule->faults, rule->nfaults,
			  fault_group_key(FSRC_FILE, rule->rule_index),
			  rule->rule_name, skip);
	if (!I.have_specs)
		return;
	for (size_t i = 0; i < I.specs.nrules; i++) {
		struct conf one = I.specs;
		struct conf_peer p;

		memset(&p, 0, sizeof(p));
		p.host = host;
		p.addr = addr;
		p.addrlen = len;
		p.inbound = inbound;
		one.rules = &I.specs.rules[i];
		one.nrules = 1;
		if (conf_match(&one, &p))
			add_specs(m, I.specs.rules[i].v.faults,
				  I.specs.rules[i].v.nfaults,
				  fault_group_key(FSRC_SPEC, (unsigned)i),
				  I.specs.rules[i].name, skip);
	}
}

int inject_wants(const struct conf_effective *rule, const char *host,
		 const struct sockaddr *addr, socklen_t len, int inbound)
{
	struct matched m;

	if (!inject_on)
		return 0;
	match_specs(&m, rule, host, addr, len, inbound, FK_BIT(FK_DNS));
	return m.n > 0;
}

static struct fault_conn *fc_slot(int fd)
{
	struct fault_conn *fc;

	if ((unsigned)fd >= FDTAB_MAX)
		return 0;
	fc = __atomic_load_n(&FT[fd], __ATOMIC_ACQUIRE);
	if (fc)
		return fc;
	self_lock(&ft_mu);
	fc = FT[fd];
	if (!fc) {
		fc = calloc(1, sizeof(*fc));
		if (fc) {
			pthread_mutex_init(&fc->mu, 0);
			__atomic_store_n(&FT[fd], fc, __ATOMIC_RELEASE);
		}
	}
	self_unlock(&ft_mu);
	return fc;
}

/* The entry for fd if it carries fault state for the socket the number
 * holds now; locked.  NULL otherwise. */
static struct fault_conn *fc_lock(int fd)
{
	struct fault_conn *fc;
	struct dl_conn *c;

	if ((unsigned)fd >= FDTAB_MAX ||
	    !(fc = __atomic_load_n(&FT[fd], __ATOMIC_ACQUIRE)) ||
	    !__atomic_load_n(&fc->active, __ATOMIC_ACQUIRE))
		return 0;
	c = fdtab_peek(fd);
	self_lock(&fc->mu);
	if (!fc->active || !c || conn_gen(c) != fc->gen) {
		self_unlock(&fc->mu);
		return 0;
	}
	return fc;
}

static void fc_unlock(struct fault_conn *fc)
{
	self_unlock(&fc->mu);
}

static int fc_expired(int fd)
{
	struct dl_conn *c = fdtab_peek(fd);

	return c && (conn_state(c) & CONN_EXPIRED);
}

int inject_attach(int fd, uint32_t gen, const struct conf_effective *rule,
		  const char *host, const struct sockaddr *addr,
		  socklen_t len, int inbound)
{
	struct matched m;
	struct fault_conn *fc;
	int saved = errno;

	if (!inject_on)
		return 0;
	match_specs(&m, rule, host, addr, len, inbound, FK_BIT(FK_DNS));
	if (!m.n || !(fc = fc_slot(fd)))
		return 0;
	self_lock(&fc->mu);
	if (fc->active)
		__atomic_fetch_sub(&I.nactive, 1, __ATOMIC_RELAXED);
	memset((char *)fc + offsetof(struct fault_conn, active), 0,
	       sizeof(*fc) - offsetof(struct fault_conn, active));
	fc->fd = fd;
	__atomic_store_n(&fc->gen, gen, __ATOMIC_RELAXED);
	fc->n = m.n;
	memcpy(fc->spec, m.spec, sizeof(m.spec));
	memcpy(fc->rule_key, m.rule_key, sizeof(m.rule_key));
	memcpy(fc->rule_name, m.rule_name, sizeof(m.rule_name));
	snprintf(fc->addr, sizeof(fc->addr), "-");
	if (addr && addr->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)addr;
		inet_ntop(AF_INET, &a->sin_addr, fc->addr, sizeof(fc->addr));
		fc->port = ntohs(a->sin_port);
	} else if (addr && addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)addr;
		inet_ntop(AF_INET6, &a->sin6_addr, fc->addr, sizeof(fc->addr));
		fc->port = ntohs(a->sin6_port);
	}
	snprintf(fc->host, sizeof(fc->host), "%s", host ? host : fc->addr);
	fc->host_hash = fault_hash(fc->host);
	/* One number per rule, however many groups it has. */
	for (int i = 0; i < fc->n; i++) {
		int j = 0;
		while (j < i && fc->rule_key[j] != fc->rule_key[i])
			j++;
		fc->conn_no[i] = j < i ? fc->conn_no[j]
				       : next_no(CNT_CONN, fc->rule_key[i],
						 fc->host_hash);
	}
	fc->start = clock_now();
	fc->last_dir = 0;
	__atomic_store_n(&fc->active, 1, __ATOMIC_RELEASE);
	__atomic_fetch_add(&I.nactive, 1, __ATOMIC_RELAXED);
	self_unlock(&fc->mu);
	errno = saved;
	return 1;
}

void inject_dup(int oldfd, int newfd, uint32_t gen)
{
	struct fault_conn *o, *n, snap;
	size_t at = offsetof(struct fault_conn, active);
	int saved = errno;

	if (!inject_on || oldfd == newfd || !(o = fc_lock(oldfd)))
		return;
	/* Never two entries locked at once: copy, then install. */
	memcpy((char *)&snap + at, (char *)o + at, sizeof(snap) - at);
	fc_unlock(o);
	if (!(n = fc_slot(newfd))) {
		errno = saved;
		return;
	}
	self_lock(&n->mu);
	if (n->active)
		__atomic_fetch_sub(&I.nactive, 1, __ATOMIC_RELAXED);
	memcpy((char *)n + at, (char *)&snap + at, sizeof(snap) - at);
	n->fd = newfd;
	n->rearm = 0;
	__atomic_store_n(&n->gen, gen, __ATOMIC_RELAXED);
	__atomic_store_n(&n->active, 1, __ATOMIC_RELEASE);
	__atomic_fetch_add(&I.nactive, 1, __ATOMIC_RELAXED);
	self_unlock(&n->mu);
	errno = saved;
}

int inject_has(int fd, uint32_t gen)
{
	struct fault_conn *fc;

	if ((unsigned)fd >= FDTAB_MAX ||
	    !(fc = __atomic_load_n(&FT[fd], __ATOMIC_ACQUIRE)))
		return 0;
	return __atomic_load_n(&fc->active, __ATOMIC_ACQUIRE) &&
	       __atomic_load_n(&fc->gen, __ATOMIC_RELAXED) == gen;
}

int inject_active(void)
{
	return inject_on && __atomic_load_n(&I.nactive, __ATOMIC_RELAXED) > 0;
}

/* ------------------------------------------------------------- logging */

static struct fault_ctx ctx_of(const struct fault_conn *fc, int i,
			       uint64_t op, int dir)
{
	struct fault_ctx x;

	x.seed = I.seed;
	x.rule = fc->rule_key[i];
	x.host = fc->host_hash;
	x.conn = fc->conn_no[i];
	x.op = op;
	x.bytes = dir ? fc->bytes[dir] : fc->bytes[FDIR_UP] +
					  fc->bytes[FDIR_DOWN];
	x.elapsed_ms = (uint64_t)((clock_now() - fc->start) / 1000000);
	return x;
}

/* One event line per injected fault: what, where, why, and the numbers
 * that make it reproducible.  detail/val: the fault's own figure. */
static void log_fault(const struct fault_conn *fc, int i, enum fault_kind k,
		      uint64_t op, const char *detail, long long val)
{
	const struct fault_spec *s = fc->spec[i];
	struct dl_field f[16];
	int n = 0;

	f[n++] = (struct dl_field){ "event", "fault", 0 };
	f[n++] = (struct dl_field){ "injected", I.dry ? "false" : "true", 0 };
	if (I.dry)
		f[n++] = (struct dl_field){ "dry_run", "true", 0 };
	f[n++] = (struct dl_field){ "fault", fault_kind_name(k), 0 };
	f[n++] = (struct dl_field){ "rule", fc->rule_name[i], 0 };
	f[n++] = (struct dl_field){ "group", 0, s->group };
	f[n++] = (struct dl_field){ "trigger", s->trigger, 0 };
	f[n++] = (struct dl_field){ "fd", 0, fc->fd };
	f[n++] = (struct dl_field){ "host", fc->host, 0 };
	f[n++] = (struct dl_field){ "addr", fc->addr, 0 };
	f[n++] = (struct dl_field){ "port", 0, fc->port };
	f[n++] = (struct dl_field){ "conn", 0, (long long)fc->conn_no[i] };
	f[n++] = (struct dl_field){ "op", 0, (long long)op };
	if (detail && strcmp(detail, "errno") == 0)
		f[n++] = (struct dl_field){ "errno",
			strerrorname_np((int)val) ? strerrorname_np((int)val)
						  : "?", 0 };
	else if (detail)
		f[n++] = (struct dl_field){ detail, 0, val };
	dl_log_fields(f, n);
}

/* Log (spec i, kind k) at most once per connection. */
static int first_time(struct fault_conn *fc, int i, enum fault_kind k)
{
	uint16_t bit = (uint16_t)(1u << k);

	if (fc->once[i] & bit)
		return 0;
	fc->once[i] |= bit;
	return 1;
}

/* Log a per-op decision once, however often the op is retried. */
static int first_for_op(struct fault_conn *fc, enum fault_kind k, int dir)
{
	uint32_t key = (uint32_t)k << 4 | (uint32_t)dir;

	if (fc->last_log_op == fc->op + 1 && fc->last_log_kind == key)
		return 0;
	fc->last_log_op = fc->op + 1;
	fc->last_log_kind = key;
	return 1;
}

/* ------------------------------------------------------------- connect */

static int64_t ms_after(int64_t now, uint32_t ms)
{
	return now + (int64_t)ms * 1000000ll;
}

enum inj_connect inject_connect(int fd, unsigned attempt, int nonblock,
				int64_t now, int64_t *until, int *err)
{
	struct fault_conn *fc = fc_lock(fd);
	enum inj_connect r = INJ_C_NONE;

	*until = 0;
	*err = 0;
	if (!fc)
		return INJ_C_NONE;
	for (int i = 0; i < fc->n && r == INJ_C_NONE; i++) {
		struct fault_spec *s = fc->spec[i];
		struct fault_ctx x = ctx_of(fc, i, attempt, 0);
		enum fault_kind k;

		if (fault_fires(s, FK_BLACKHOLE, &x) && s->bh == FBH_CONNECT)
			k = FK_BLACKHOLE;
		else if (fault_fires(s, FK_REFUSE, &x))
			k = FK_REFUSE;
		else if (fault_fires(s, FK_UNREACHABLE, &x))
			k = FK_UNREACHABLE;
		else if (fault_fires(s, FK_LATENCY, &x) && s->on == FON_CONNECT)
			k = FK_LATENCY;
		else
			continue;
		if (!fault_claim(s))
			continue;
		switch (k) {
		case FK_BLACKHOLE:
			log_fault(fc, i, k, attempt,
				  s->then ? "then_after_ms" : 0,
				  s->then_after_ms);
			*until = s->then ? ms_after(now, s->then_after_ms) : 0;
			*err = s->then == FTHEN_RESET ? ECONNREFUSED : ETIMEDOUT;
			r = INJ_C_FAIL;
			break;
		case FK_REFUSE:
		case FK_UNREACHABLE:
			*err = k == FK_REFUSE ? ECONNREFUSED : s->unreach_err;
			log_fault(fc, i, k, attempt, "delay_ms", s->delay_ms);
			*until = ms_after(now, s->delay_ms);
			r = INJ_C_FAIL;
			break;
		default:
			*until = ms_after(now, fault_jittered_ms(s, &x));
			log_fault(fc, i, k, attempt, "delay_ms",
				  (*until - now) / 1000000);
			r = INJ_C_DELAY;
			break;
		}
	}
	if (I.dry)
		r = INJ_C_NONE;
	if (r != INJ_C_NONE && nonblock) {
		/* Hide the fd until then; a failure is reported by SO_ERROR
		 * (and by the calls) once the time has come. */
		fc->conn_at = *until;
		fc->conn_forever = *until == 0;
		if (r == INJ_C_FAIL) {
			fc->conn_err = *err;
			fc->fake = 1;
		} else {
			*err = 0;
		}
		r = INJ_C_HIDDEN;
	}
	fc_unlock(fc);
	return r;
}

int inject_connecting(int fd)
{
	struct fault_conn *fc = fc_lock(fd);
	int r;

	if (!fc)
		return 0;
	r = fc->conn_forever || fc->fake ||
	    (fc->conn_at && clock_now() < fc->conn_at);
	fc_unlock(fc);
	return r;
}

int inject_so_error(int fd, int *err)
{
	struct fault_conn *fc = fc_lock(fd);
	int r = 0;

	if (!fc)
		return 0;
	if (fc->conn_err && !fc->conn_forever && clock_now() >= fc->conn_at) {
		*err = fc->conn_err;
		fc->conn_err = 0;
		fc->conn_at = 0;
		r = 1;
	} else if (fc->fake && (fc->conn_forever ||
				clock_now() < fc->conn_at)) {
		*err = 0; /* still "connecting" */
		r = 1;
	}
	fc_unlock(fc);
	return r;
}

/* ---------------------------------------------------- ending a connection */

/* Reset (RST now, ECONNRESET from then on) or EOF (reads return 0; the
 * socket reports readable so that a waiting program notices). */
static void end_conn(struct fault_conn *fc, int how)
{
	if (fc->ended)
		return;
	fc->ended = how;
	if (how == FTHEN_RESET) {
		struct sockaddr unspec = { .sa_family = AF_UNSPEC };
		struct linger lg = { 1, 0 };
		REAL(setsockopt)(fc->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		REAL(connect)(fc->fd, &unspec, sizeof(unspec));
	} else {
		REAL(shutdown)(fc->fd, SHUT_RD);
	}
}

/* Which bytes `after_bytes` of a reset/eof group counts: those read
 * (default), those written, or both (0). */
static int end_dir(const struct fault_spec *s, enum fault_kind k)
{
	enum fault_dir d = fault_dir_of(s, k);

	return d == FDIR_BOTH ? 0 : (int)d;
}

/* Fire the reset/eof groups whose triggers hold now; *wake (if given) is
 * lowered to when a time trigger opens.  Returns how the connection
 * ended (0 = it goes on). */
static int check_end(struct fault_conn *fc, int64_t *wake)
{
	for (int i = 0; i < fc->n && !fc->ended; i++) {
		struct fault_spec *s = fc->spec[i];
		enum fault_kind k = (s->kinds & FK_BIT(FK_RESET)) ? FK_RESET
								   : FK_EOF;
		struct fault_ctx x;

		if (!(s->kinds & (FK_BIT(FK_RESET) | FK_BIT(FK_EOF))) ||
		    fc->end_state[i])
			continue; /* decided (a dry run fires only once) */
		x = ctx_of(fc, i, 0, end_dir(s, k));
		/* One roll per connection (op 0): does it end at all? */
		if (s->probability < 1.0 &&
		    !(fault_unit(&x, s->group, (unsigned)k) < s->probability)) {
			fc->end_state[i] = 1;
			continue;
		}
		if (s->nth > 1 && x.conn % s->nth != 0) {
			fc->end_state[i] = 1;
			continue;
		}
		if (!fault_window_open(s, &x)) {
			if (s->for_ms && x.elapsed_ms >=
					 (uint64_t)s->after_ms + s->for_ms)
				fc->end_state[i] = 1;
			else if (wake && x.elapsed_ms < s->after_ms) {
				int64_t t = ms_after(fc->start, s->after_ms);
				if (!*wake || t < *wake)
					*wake = t;
			}
			continue;
		}
		if (!fault_claim(s)) {
			fc->end_state[i] = 1;
			continue;
		}
		fc->end_state[i] = 2;
		log_fault(fc, i, k, fc->op, "bytes", (long long)x.bytes);
		if (!I.dry)
			end_conn(fc, k == FK_RESET ? FTHEN_RESET : FTHEN_EOF);
	}
	return fc->ended;
}

/* The most bytes this call may move in dir before a reset/eof group's
 * after_bytes is reached exactly. */
static size_t end_cap(const struct fault_conn *fc, int dir, size_t cap)
{
	for (int i = 0; i < fc->n; i++) {
		const struct fault_spec *s = fc->spec[i];
		enum fault_kind k = (s->kinds & FK_BIT(FK_RESET)) ? FK_RESET
								   : FK_EOF;

		int d = (s->kinds & (FK_BIT(FK_RESET) | FK_BIT(FK_EOF)))
				? end_dir(s, k) : -1;
		uint64_t moved;

		if (d < 0 || fc->end_state[i] || !s->after_bytes ||
		    (d && d != dir))
			continue;
		moved = d ? fc->bytes[d]
			  : fc->bytes[FDIR_UP] + fc->bytes[FDIR_DOWN];
		if (moved < s->after_bytes && s->after_bytes - moved < cap)
			cap = (size_t)(s->after_bytes - moved);
	}
	return cap;
}

/* Blackholed data: decided per connection when its window opens. */
static void check_blackhole(struct fault_conn *fc, int64_t now)
{
	if (fc->bh || fc->ended)
		return;
	for (int i = 0; i < fc->n; i++) {
		struct fault_spec *s = fc->spec[i];
		struct fault_ctx x = ctx_of(fc, i, 0, 0);

		if (!(s->kinds & FK_BIT(FK_BLACKHOLE)) || s->bh != FBH_DATA ||
		    fc->bh_state[i] == 1)
			continue;
		if (!fault_window_open(s, &x))
			continue; /* not yet (or no longer) */
		if (!fault_fires(s, FK_BLACKHOLE, &x)) {
			fc->bh_state[i] = 1; /* the roll said never */
			continue;
		}
		if (!fault_claim(s)) {
			fc->bh_state[i] = 1;
			continue;
		}
		log_fault(fc, i, FK_BLACKHOLE, fc->op,
			  s->then ? "then_after_ms" : 0, s->then_after_ms);
		if (I.dry) {
			fc->bh_state[i] = 1;
			continue;
		}
		fc->bh = i + 1;
		fc->bh_then_at = s->then ? ms_after(now, s->then_after_ms) : 0;
		return;
	}
}

/* The blackhole's `then` is due: end the connection as it says. */
static void check_bh_then(struct fault_conn *fc, int64_t now)
{
	const struct fault_spec *s;

	if (!fc->bh || !fc->bh_then_at || now < fc->bh_then_at || fc->ended)
		return;
	s = fc->spec[fc->bh - 1];
	fc->bh = 0;
	end_conn(fc, s->then);
}

/* --------------------------------------------------------------- I/O */

/* The delay a latency group puts on the next op in dir, or -1. */
static int64_t latency_for(struct fault_conn *fc, int dir, int *which)
{
	for (int i = 0; i < fc->n; i++) {
		struct fault_spec *s = fc->spec[i];
		struct fault_ctx x;

		if (!(s->kinds & FK_BIT(FK_LATENCY)) || s->on == FON_CONNECT ||
		    !((int)fault_dir_of(s, FK_LATENCY) & dir))
			continue;
		if (s->on == FON_FIRST_BYTE && fc->last_dir == dir)
			continue;
		x = ctx_of(fc, i, fc->op, dir);
		if (!fault_fires(s, FK_LATENCY, &x))
			continue;
		*which = i;
		return (int64_t)fault_jittered_ms(s, &x) * 1000000ll;
	}
	return -1;
}

/* slice and bandwidth act on every call once on: group i acts with kind
 * k on calls in dir now.  Whether it is on for this connection is rolled
 * once (probability, nth, times) when its window first opens; the window
 * still bounds it after. */
static int cont_on(struct fault_conn *fc, int i, enum fault_kind k, int dir)
{
	struct fault_spec *s = fc->spec[i];
	struct fault_ctx x;

	if (!(s->kinds & FK_BIT(k)) || !((int)fault_dir_of(s, k) & dir))
		return 0;
	x = ctx_of(fc, i, 0, dir);
	if (fc->cont_state[i] == 1 || !fault_window_open(s, &x))
		return 0;
	if (!fc->cont_state[i])
		fc->cont_state[i] = fault_fires(s, k, &x) && fault_claim(s)
					    ? 2 : 1;
	return fc->cont_state[i] == 2;
}

/* Data (or EOF) is waiting to be read on fd. */
static int readable(int fd)
{
	char b;
	ssize_t r = REAL(recv)(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

	return r >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Start the latency gate of the current op in dir (data is there). */
static int64_t open_gate(struct fault_conn *fc, int dir, int64_t now)
{
	int i = -1;
	int64_t d;

	if (fc->gate_op[dir] == fc->op + 1)
		return fc->gate[dir];
	d = latency_for(fc, dir, &i);
	if (d < 0)
		return 0;
	fc->gate_op[dir] = fc->op + 1;
	if (!fault_claim(fc->spec[i])) {
		fc->gate[dir] = 0;
		return 0;
	}
	log_fault(fc, i, FK_LATENCY, fc->op, "delay_ms", d / 1000000);
	fc->gate[dir] = I.dry ? 0 : now + d;
	return fc->gate[dir];
}

static void set_wake(int64_t *w, int64_t t)
{
	if (t && (!*w || t < *w))
		*w = t;
}

enum inj_io inject_io(int fd, int wrote, int blocking, int64_t now,
		      struct inj_plan *p)
{
	struct fault_conn *fc = fc_lock(fd);
	int dir = wrote ? FDIR_UP : FDIR_DOWN;
	enum inj_io r = INJ_GO;
	int saved = errno;

	memset(p, 0, sizeof(*p));
	p->cap = (size_t)-1;
	p->peek_cap = (size_t)-1;
	if (!fc)
		return INJ_GO;
	/* The handshake is still hidden (delayed, refused later, or
	 * blackholed). */
	if (fc->conn_forever) {
		p->until = INT64_MAX;
		r = INJ_WAIT;
		goto out;
	}
	if (fc->conn_at && now < fc->conn_at) {
		p->until = fc->conn_at;
		r = INJ_WAIT;
		goto out;
	}
	if (fc->conn_err) {
		p->err = fc->conn_err;
		r = INJ_FAIL;
		goto out;
	}
	if (fc->fake) {
		p->err = ENOTCONN;
		r = INJ_FAIL;
		goto out;
	}
	check_bh_then(fc, now);
	check_end(fc, &p->wake);
	if (fc->ended == FTHEN_RESET) {
		p->err = ECONNRESET;
		r = INJ_FAIL;
		goto out;
	}
	if (fc->ended == FTHEN_EOF && !wrote) {
		r = INJ_EOF;
		goto out;
	}
	check_blackhole(fc, now);
	if (fc->bh) {
		if (wrote) {
			p->swallow = 1;
		} else {
			p->until = fc->bh_then_at ? fc->bh_then_at : INT64_MAX;
			r = INJ_WAIT;
		}
		goto out;
	}
	/* Per-call faults, decided for this op number. */
	for (int i = 0; i < fc->n; i++) {
		struct fault_spec *s = fc->spec[i];
		struct fault_ctx x = ctx_of(fc, i, fc->op, dir);

		if ((s->kinds & FK_BIT(FK_ERROR)) &&
		    ((int)fault_dir_of(s, FK_ERROR) & dir) &&
		    fault_fires(s, FK_ERROR, &x) && fault_claim(s)) {
			if (!I.dry || first_for_op(fc, FK_ERROR, dir))
				log_fault(fc, i, FK_ERROR, fc->op, "errno",
					  s->err);
			if (!I.dry) {
				fc->op++;
				p->err = s->err;
				r = INJ_FAIL;
				goto out;
			}
		}
		if (s->spurious > 0 && cont_on(fc, i, FK_SLICE, dir) &&
		    fault_unit(&x, s->group, 200 + FK_SLICE) < s->spurious) {
			int e = blocking ? EINTR : EAGAIN;
			if (first_for_op(fc, FK_SLICE, dir))
				log_fault(fc, i, FK_SLICE, fc->op, "errno", e);
			if (!I.dry) {
				fc->op++;
				if (e == EAGAIN)
					fc->rearm = 1;
				p->err = e;
				r = INJ_FAIL;
				goto out;
			}
		}
	}
	/* Latency: a read waits from when its data arrived. */
	if (fc->gate_op[dir] != fc->op + 1) {
		int i = -1;
		if (latency_for(fc, dir, &i) >= 0) {
			if (!wrote && !readable(fd)) {
				p->until = 0;
				r = INJ_WAIT;
				goto out;
			}
			open_gate(fc, dir, now);
		}
	}
	if (fc->gate_op[dir] == fc->op + 1 && fc->gate[dir] > now) {
		p->until = fc->gate[dir];
		r = INJ_WAIT;
		goto out;
	}
	/* Bandwidth and slices bound the size. */
	for (int i = 0; i < fc->n; i++) {
		struct fault_spec *s = fc->spec[i];

		if (cont_on(fc, i, FK_BANDWIDTH, dir)) {
			if (first_time(fc, i, FK_BANDWIDTH))
				log_fault(fc, i, FK_BANDWIDTH, fc->op,
					  "bytes_per_s", (long long)s->rate);
			if (!I.dry) {
				if (fc->bw_next[dir] > now) {
					p->until = fc->bw_next[dir];
					r = INJ_WAIT;
					goto out;
				}
				if (fault_bw_chunk(s->rate) < p->cap)
					p->cap = fault_bw_chunk(s->rate);
			}
		}
		if (cont_on(fc, i, FK_SLICE, dir)) {
			if (first_time(fc, i, FK_SLICE))
				log_fault(fc, i, FK_SLICE, fc->op, "max_bytes",
					  s->slice);
			if (!I.dry && s->slice < p->cap) {
				p->cap = s->slice;
				p->sliced = 1;
			}
		}
	}
	if (!I.dry) {
		p->cap = end_cap(fc, dir, p->cap);
		p->peek_cap = end_cap(fc, dir, p->peek_cap);
	}
out:
	fc_unlock(fc);
	errno = saved;
	return r;
}

void inject_io_done(int fd, int wrote, size_t n, int cut)
{
	struct fault_conn *fc = fc_lock(fd);
	int dir = wrote ? FDIR_UP : FDIR_DOWN;
	int64_t now;

	if (!fc)
		return;
	now = clock_now();
	fc->bytes[dir] += n;
	fc->op++;
	fc->last_dir = dir;
	/* After the last bytes before a hidden hangup the kernel will not
	 * signal again by itself: the edge came with the first of them. */
	if (cut || (!wrote && fc->hup_hidden))
		fc->rearm = 1;
	for (int i = 0; i < fc->n; i++) {
		struct fault_spec *s = fc->spec[i];
		if ((s->kinds & FK_BIT(FK_BANDWIDTH)) &&
		    ((int)fault_dir_of(s, FK_BANDWIDTH) & dir) && !I.dry &&
		    fc->cont_state[i] == 2)
			fc->bw_next[dir] = fault_bw_advance(fc->bw_next[dir],
							    now, s->rate, n);
	}
	/* A reset "after N bytes" comes right after the Nth byte, so that
	 * a program waiting for more learns it at once. */
	check_end(fc, 0);
	fc_unlock(fc);
}

/* ------------------------------------------------------------ the waits */

uint32_t inject_hidden(int fd, int64_t now, int64_t *next)
{
	struct fault_conn *fc = fc_lock(fd);
	uint32_t h = 0;

	if (!fc)
		return 0;
	if (fc_expired(fd)) {
		/* The deadline ended it: the program must see it now. */
		fc->conn_forever = 0;
		fc->conn_at = 0;
		fc->bh = 0;
		fc_unlock(fc);
		return 0;
	}
	if (fc->conn_forever) {
		h = INJ_HIDE_ALL;
		goto out;
	}
	if (fc->conn_at && now < fc->conn_at) {
		h = INJ_HIDE_ALL;
		set_wake(next, fc->conn_at);
		goto out;
	}
	if (fc->fake)
		goto out; /* refused: the kernel reports OUT|HUP, SO_ERROR says */
	check_bh_then(fc, now);
	{
		int64_t w = 0;
		check_end(fc, &w);
		set_wake(next, w);
	}
	if (fc->ended)
		goto out;
	check_blackhole(fc, now);
	if (fc->bh) {
		h |= POLLIN;
		set_wake(next, fc->bh_then_at);
	}
	for (int dir = FDIR_UP; dir <= FDIR_DOWN; dir++) {
		uint32_t ev = dir == FDIR_UP ? POLLOUT : POLLIN;
		if (fc->gate_op[dir] == fc->op + 1 && fc->gate[dir] > now) {
			h |= ev;
			set_wake(next, fc->gate[dir]);
		}
		if (fc->bw_next[dir] > now) {
			h |= ev;
			set_wake(next, fc->bw_next[dir]);
		}
	}
out:
	fc_unlock(fc);
	return h;
}

uint32_t inject_observe(int fd, uint32_t revents, int64_t now, int64_t *next)
{
	struct fault_conn *fc;
	uint32_t h = 0;

	if (!(revents & POLLIN) || !(fc = fc_lock(fd)))
		return 0;
	if (!fc->ended && !fc->bh && !fc->fake &&
	    (!fc->conn_at || now >= fc->conn_at)) {
		if ((revents & POLLIN) && fc->gate_op[FDIR_DOWN] != fc->op + 1) {
			int64_t g = open_gate(fc, FDIR_DOWN, now);
			if (g > now) {
				h |= POLLIN;
				set_wake(next, g);
			}
		}
		/* A write's delay starts at the write itself (inject_io), not
		 * when the program waits for writability: that may be for
		 * the handshake. */
	}
	fc_unlock(fc);
	return h;
}

/* Reads are cut short now: a downstream slice or bandwidth group is on
 * for the connection (decided here if no read has asked yet). */
static int reads_capped(struct fault_conn *fc)
{
	if (I.dry)
		return 0;
	for (int i = 0; i < fc->n; i++)
		if (cont_on(fc, i, FK_SLICE, FDIR_DOWN) ||
		    cont_on(fc, i, FK_BANDWIDTH, FDIR_DOWN))
			return 1;
	return 0;
}

uint32_t inject_hup_hidden(int fd, uint32_t revents, uint32_t wanted)
{
	struct fault_conn *fc;
	uint32_t h = 0;
	int queued = 0;

	if (!(revents & (POLLRDHUP | POLLHUP)) || !(wanted & POLLIN) ||
	    !(fc = fc_lock(fd)))
		return 0;
	if (!fc->ended && reads_capped(fc) &&
	    REAL(ioctl)(fd, SIOCINQ, &queued) == 0 && queued > 0)
		h = POLLRDHUP | POLLHUP;
	fc->hup_hidden = h != 0;
	fc_unlock(fc);
	return h;
}

/* --------------------------------------------------------------- epoll */

struct ereg {
	int epfd, fd;
	uint32_t events;	/* as the program registered them */
	epoll_data_t data;
	uint32_t applied;	/* what the kernel has masked now */
	int removed;		/* taken out of the set entirely */
};

static struct ereg *R;
static size_t nR, capR;
static pthread_mutex_t rmu = PTHREAD_MUTEX_INITIALIZER;

static struct ereg *reg_find(int epfd, int fd)
{
	for (size_t i = 0; i < nR; i++)
		if (R[i].epfd == epfd && R[i].fd == fd)
			return &R[i];
	return 0;
}

static void reg_drop(struct ereg *e)
{
	*e = R[nR - 1];
	__atomic_store_n(&nR, nR - 1, __ATOMIC_RELAXED);
}

/* Hiding input hides the peer's FIN too (else a level-triggered set
 * reports it over and over). */
static uint32_t hide_mask(uint32_t h)
{
	return (h & EPOLLIN) ? h | EPOLLRDHUP : h;
}

/* Make the kernel's registration of e show what may be seen now. */
static void reg_apply(struct ereg *e, uint32_t h, int force)
{
	struct epoll_event ev;
	int saved = errno;

	if (h == e->applied && !force)
		return;
	if (h & INJ_HIDE_ALL) {
		if (!e->removed &&
		    REAL(epoll_ctl)(e->epfd, EPOLL_CTL_DEL, e->fd, 0) == 0)
			e->removed = 1;
	} else {
		ev.events = e->events & ~hide_mask(h);
		ev.data = e->data;
		if (e->removed) {
			if (REAL(epoll_ctl)(e->epfd, EPOLL_CTL_ADD, e->fd,
					    &ev) == 0)
				e->removed = 0;
		} else {
			REAL(epoll_ctl)(e->epfd, EPOLL_CTL_MOD, e->fd, &ev);
		}
	}
	e->applied = h;
	errno = saved;
}

int inject_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	struct dl_conn *c = fdtab_peek(fd);
	struct ereg *e;
	int r;

	if (!(c && (conn_state(c) & CONN_SOCK)) ||
	    (ev && (ev->events & EPOLLEXCLUSIVE)))
		return REAL(epoll_ctl)(epfd, op, fd, ev);
	self_lock(&rmu);
	e = reg_find(epfd, fd);
	if (e && e->removed && op != EPOLL_CTL_ADD) {
		/* The kernel does not have it now (hidden): keep the books. */
		if (op == EPOLL_CTL_DEL) {
			reg_drop(e);
		} else if (ev) {
			e->events = ev->events;
			e->data = ev->data;
		}
		self_unlock(&rmu);
		return 0;
	}
	if (op != EPOLL_CTL_DEL && ev && e && e->applied &&
	    !(e->applied & INJ_HIDE_ALL)) {
		struct epoll_event m = *ev;
		m.events &= ~hide_mask(e->applied);
		r = REAL(epoll_ctl)(epfd, op, fd, &m);
	} else {
		r = REAL(epoll_ctl)(epfd, op, fd, ev);
	}
	if (r == 0) {
		if (op == EPOLL_CTL_DEL) {
			if (e)
				reg_drop(e);
		} else if (ev) {
			if (!e) {
				if (nR == capR) {
					size_t cap = capR ? capR * 2 : 64;
					struct ereg *n = realloc(R, cap * sizeof(*R));
					if (!n)
						goto done;
					R = n;
					capR = cap;
				}
				e = &R[nR];
				__atomic_store_n(&nR, nR + 1, __ATOMIC_RELAXED);
				memset(e, 0, sizeof(*e));
				e->epfd = epfd;
				e->fd = fd;
			}
			e->events = ev->events;
			e->data = ev->data;
		}
	}
done:
	self_unlock(&rmu);
	return r;
}

int64_t inject_epoll_prepare(int epfd, int64_t now)
{
	int64_t next = 0;

	self_lock(&rmu);
	for (size_t i = 0; i < nR; i++) {
		struct ereg *e = &R[i];
		struct fault_conn *fc;
		uint32_t h;
		int rearm = 0;

		if (e->epfd != epfd)
			continue;
		h = inject_hidden(e->fd, now, &next);
		if ((fc = fc_lock(e->fd))) {
			rearm = fc->rearm;
			fc->rearm = 0;
			fc_unlock(fc);
		}
		/* Level-triggered sets report again anyway; a one-shot
		 * registration is the program's to re-arm. */
		reg_apply(e, h, rearm && (e->events & (EPOLLET | EPOLLONESHOT)) ==
					    EPOLLET);
	}
	self_unlock(&rmu);
	return next;
}

int inject_epoll_filter(int epfd, struct epoll_event *ev, int n, int64_t now,
			int64_t *next)
{
	int out = 0;

	self_lock(&rmu);
	for (int k = 0; k < n; k++) {
		struct ereg *e = 0;
		uint32_t h;

		for (size_t i = 0; i < nR; i++)
			if (R[i].epfd == epfd && R[i].data.u64 == ev[k].data.u64) {
				e = &R[i];
				break;
			}
		if (e) {
			h = inject_hidden(e->fd, now, next) |
			    inject_observe(e->fd, ev[k].events, now, next);
			if (h) {
				reg_apply(e, h | e->applied, 0);
				if (h & INJ_HIDE_ALL)
					continue;
				ev[k].events &= ~hide_mask(h);
			}
			/* Not in the registration: only this report. */
			ev[k].events &= ~inject_hup_hidden(e->fd, ev[k].events,
							   e->events);
			if (!(ev[k].events & (EPOLLIN | EPOLLOUT | EPOLLPRI |
					      EPOLLERR | EPOLLHUP |
					      EPOLLRDHUP)))
				continue;
		}
		ev[out++] = ev[k];
	}
	self_unlock(&rmu);
	return out;
}

/* ------------------------------------------------------------- closing */

uint32_t inject_detach(int fd, int closing)
{
	struct fault_conn *fc = fc_lock(fd);
	uint32_t slow = 0;
	int which = -1;

	if (fc) {
		for (int i = 0; i < fc->n && closing; i++) {
			struct fault_spec *s = fc->spec[i];
			struct fault_ctx x = ctx_of(fc, i, fc->op, 0);
			if (fault_fires(s, FK_SLOW_CLOSE, &x) && fault_claim(s)) {
				slow = s->slow_close_ms;
				which = i;
				break;
			}
		}
		if (which >= 0)
			log_fault(fc, which, FK_SLOW_CLOSE, fc->op, "delay_ms",
				  slow);
		__atomic_store_n(&fc->active, 0, __ATOMIC_RELEASE);
		__atomic_fetch_sub(&I.nactive, 1, __ATOMIC_RELAXED);
		fc_unlock(fc);
		if (I.dry)
			slow = 0;
	}
	if (inject_on && __atomic_load_n(&nR, __ATOMIC_RELAXED)) {
		self_lock(&rmu);
		for (size_t i = 0; i < nR;)
			if (R[i].fd == fd || R[i].epfd == fd)
				reg_drop(&R[i]);
			else
				i++;
		self_unlock(&rmu);
	}
	return slow;
}

/* ----------------------------------------------------------------- dns */

int inject_dns(const char *node, const struct conf_effective *rule,
	       uint32_t *delay_ms)
{
	struct matched m;
	uint64_t h = fault_hash(node);
	uint64_t lookup[INJ_MAX_SPECS];
	int rc = 0;

	*delay_ms = 0;
	if (!inject_on || !node)
		return 0;
	match_specs(&m, rule, node, 0, 0, 0, ~FK_BIT(FK_DNS));
	for (int i = 0; i < m.n; i++) {
		int j = 0;
		while (j < i && m.rule_key[j] != m.rule_key[i])
			j++;
		lookup[i] = j < i ? lookup[j]
				  : next_no(CNT_DNS, m.rule_key[i], h);
	}
	for (int i = 0; i < m.n; i++) {
		struct fault_spec *s = m.spec[i];
		struct fault_ctx x;
		const char *what;

		memset(&x, 0, sizeof(x));
		x.seed = I.seed;
		x.rule = m.rule_key[i];
		x.host = h;
		x.conn = lookup[i];
		x.elapsed_ms = (uint64_t)((clock_now() - I.t0) / 1000000);
		if (!fault_fires(s, FK_DNS, &x) || !fault_claim(s))
			continue;
		what = s->dns == FDNS_NXDOMAIN ? "nxdomain"
		       : s->dns == FDNS_AGAIN ? "again" : "delay";
		{
			char sb[24];
			struct dl_field f[12];
			int n = 0;

			snprintf(sb, sizeof(sb), "%llu",
				 (unsigned long long)x.conn);
			f[n++] = (struct dl_field){ "event", "fault", 0 };
			f[n++] = (struct dl_field){ "injected",
						    I.dry ? "false" : "true", 0 };
			if (I.dry)
				f[n++] = (struct dl_field){ "dry_run", "true", 0 };
			f[n++] = (struct dl_field){ "fault", "dns", 0 };
			f[n++] = (struct dl_field){ "answer", what, 0 };
			f[n++] = (struct dl_field){ "rule", m.rule_name[i], 0 };
			f[n++] = (struct dl_field){ "group", 0, s->group };
			f[n++] = (struct dl_field){ "trigger", s->trigger, 0 };
			f[n++] = (struct dl_field){ "host", node, 0 };
			f[n++] = (struct dl_field){ "lookup", sb, 0 };
			if (s->dns == FDNS_DELAY)
				f[n++] = (struct dl_field){ "delay_ms", 0,
							    s->delay_ms };
			dl_log_fields(f, n);
		}
		if (I.dry)
			continue;
		*delay_ms = s->delay_ms;
		rc = s->dns == FDNS_NXDOMAIN ? EAI_NONAME
		     : s->dns == FDNS_AGAIN ? EAI_AGAIN : 0;
		break;
	}
	return rc;
}
