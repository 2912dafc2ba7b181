/* inject.c - fault injection at run time (see inject.h): state, loading,
 * connection numbers, matching, the per-fd table, dns faults.  What a
 * connection's calls meet is in inject_io.c, what the program's waits may
 * see in inject_wait.c; shared internals in inject_int.h.
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
 *
 * Locking: ft_mu (allocating table entries) and counters_mu (the
 * connection and lookup numbers) are leaf locks; an entry's own mutex is
 * taken by fc_lock.  All through self_lock()/self_unlock().
 *
 * errno: inject_attach and inject_dup keep it; inject_load and inject_dns
 * may change it.
 */
#include "inject_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fdtab.h"
#include "log.h"
#include "names.h"
#include "self.h"

/* Every file rule index (1..CONF_MAX_RULES) and spec position
 * (0..CONF_MAX_RULES-1) has a key of its own. */
_Static_assert(CONF_MAX_RULES <= FAULT_KEY_INDEX_MAX,
	       "rule indices beyond what fault_group_key keeps apart");

int inject_on_flag;

struct inject_state I;

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

/* DEADLINE_SEED and DEADLINE_FAULTS_DRY_RUN, read by inject_load. */
static uint64_t env_seed;
static int env_seed_ok, env_dry;
static char env_seed_bad[33]; /* an unusable DEADLINE_SEED, said when used */

static void arm(const struct conf *file);

int inject_load(const struct conf *file)
{
	const char *specs = secure_getenv("DEADLINE_FAULTS");
	const char *seed = secure_getenv("DEADLINE_SEED");
	int bad = 0;

	I.t0 = clock_now();
	/* Read now, kept for a reload (a program may rewrite its
	 * environment meanwhile). */
	env_dry = env_flag("DEADLINE_FAULTS_DRY_RUN");
	if (seed && *seed) {
		char *end;
		errno = 0;
		env_seed = strtoull(seed, &end, 0);
		if (errno || *end)
			snprintf(env_seed_bad, sizeof(env_seed_bad), "%s",
				 seed);
		else
			env_seed_ok = 1;
	}
	conf_init(&I.specs);
	if (specs && *specs) {
		const char *err = 0;
		char *text = fault_specs_to_conf(specs, &err);

		if (!text) {
			dl_log_conf(DL_CONF_ERROR, "DEADLINE_FAULTS",
				    "DEADLINE_FAULTS: %s", err);
			bad = 1;
		} else if (conf_load_mem(&I.specs, text, strlen(text),
					 "DEADLINE_FAULTS") < 0) {
			for (size_t i = 0; i < I.specs.nerrors; i++)
				dl_log_conf(DL_CONF_ERROR, "DEADLINE_FAULTS",
					    "%s (fault spec = line)",
					    I.specs.errors[i]);
			if (I.specs.errors_dropped)
				dl_log_conf(DL_CONF_ERROR, "DEADLINE_FAULTS",
					    "DEADLINE_FAULTS: %zu more errors "
					    "not shown", I.specs.errors_dropped);
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
		if (bad)
			dl_log_conf(DL_CONF_IGNORED, "DEADLINE_FAULTS",
				    "DEADLINE_FAULTS: not used; none of its "
				    "faults is injected");
	}
	if (!I.have_specs && !(file && conf_has_faults(file)))
		return bad ? -1 : 0;
	{
		/* Groups of two rules sharing a key would draw the same
		 * numbers: never run so.  (fault_group_key cannot make two
		 * alike; this keeps a change from slipping through.) */
		char msg[2 * CONF_NAME_MAX + 32];

		if (conf_fault_keys_check(file, I.have_specs ? &I.specs : 0,
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
	arm(file);
	return bad ? -1 : 0;
}

/* The seed (DEADLINE_SEED as read at start, else the file's, else a
 * random one), then on. */
static void arm(const struct conf *file)
{
	const char *source = "random";

	if (env_seed_ok) {
		I.seed = env_seed;
		source = "env";
	} else if (env_seed_bad[0]) {
		dl_log_conf(DL_CONF_WARNING, NULL, "DEADLINE_SEED=\"%s\" is "
			    "not an integer; using a random seed",
			    env_seed_bad);
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
		/* 53 bits: every JSON reader holds the logged number exactly
		 * (a rounded seed would replay other faults). */
		I.seed &= ((uint64_t)1 << 53) - 1;
	}
	I.seed_from = source;
	I.dry = env_dry;
	__atomic_store_n(&inject_on_flag, 1, __ATOMIC_RELEASE);
	/* The faults line waits for the first tracked connection (or the
	 * first dns fault): a process that never uses the network logs
	 * nothing. */
	__atomic_store_n(&inject_unannounced, 1, __ATOMIC_RELEASE);
}

void inject_reload(const struct conf *file)
{
	if (inject_on || !conf_has_faults(file))
		return;
	/* DEADLINE_FAULTS was empty at start (else the injector would be
	 * on): only the file's groups. */
	I.t0 = clock_now();
	arm(file);
}

int inject_unannounced;

void inject_announce_now(void)
{
	char sb[24];
	struct dl_field f[] = {
		{ "event", "faults", 0 },
		{ "seed", 0, (long long)I.seed },
		{ "seed_from", I.seed_from, 0 },
		{ "dry_run", DL_BOOL(I.dry), 0 },
	};

	if (!__atomic_exchange_n(&inject_unannounced, 0, __ATOMIC_ACQ_REL))
		return;		/* another thread logged it */
	if (I.seed > (uint64_t)LLONG_MAX) {
		/* Beyond a signed 64-bit number: the digits, as a string. */
		snprintf(sb, sizeof(sb), "%llu", (unsigned long long)I.seed);
		f[1].str = sb;
	}
	dl_log_fields(f, (int)(sizeof(f) / sizeof(f[0])));
}

void inject_atfork_child(void)
{
	/* Each process that goes on to track a connection logs its own
	 * faults line (with its own pid). */
	if (inject_on)
		__atomic_store_n(&inject_unannounced, 1, __ATOMIC_RELAXED);
}

int inject_spec_count(void)
{
	return inject_on && I.have_specs ? (int)I.specs.nrules : 0;
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

/* Under counters_mu: the next number of (what, rule, host). */
static uint64_t next_no_locked(enum counted what, uint32_t rule,
			       uint64_t host)
{
	uint64_t h = host ^ ((uint64_t)rule * 0x9e3779b97f4a7c15ull) ^
		     ((uint64_t)what << 61);
	size_t i;

	h ^= h >> 29;
	i = (size_t)(h % NCOUNTERS);
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
		return ++counters[i].n;
	}
	return 0;
}

/* Number one connection (or lookup) for each of the n rules it matched:
 * out[i] for rule[i], one number per rule however many groups it has.
 * All in one step, so that threads connecting at once cannot take the
 * 4th number of one rule and the 5th of another: the k-th connection
 * to a host is the k-th of every rule it matches, and behaves as one
 * whole from run to run, whichever thread makes it. */
static void number_rules(enum counted what, const uint32_t *rule, int n,
			 uint64_t host, uint64_t *out)
{
	self_lock(&counters_mu);
	for (int i = 0; i < n; i++) {
		int j = 0;

		while (j < i && rule[j] != rule[i])
			j++;
		out[i] = j < i ? out[j] : next_no_locked(what, rule[i], host);
	}
	self_unlock(&counters_mu);
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
struct fault_conn *fc_lock(int fd)
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
	number_rules(CNT_CONN, fc->rule_key, fc->n, fc->host_hash, fc->conn_no);
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
	number_rules(CNT_DNS, m.rule_key, m.n, h, lookup);
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
		inject_announce();
		{
			struct dl_field f[12];
			int n = 0;

			f[n++] = (struct dl_field){ "event", "fault", 0 };
			f[n++] = (struct dl_field){ "injected", DL_BOOL(!I.dry),
						    0 };
			if (I.dry)
				f[n++] = (struct dl_field){ "dry_run", DL_TRUE,
							    0 };
			f[n++] = (struct dl_field){ "fault", "dns", 0 };
			f[n++] = (struct dl_field){ "answer", what, 0 };
			f[n++] = (struct dl_field){ "rule", m.rule_name[i], 0 };
			f[n++] = (struct dl_field){ "group", 0, s->group };
			f[n++] = (struct dl_field){ "trigger", s->trigger, 0 };
			f[n++] = (struct dl_field){ "host", node, 0 };
			f[n++] = (struct dl_field){ "lookup", 0,
						    (long long)x.conn };
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
