/* engine.c - deadline enforcement (see engine.h).
 *
 * How a tracked socket is driven
 *   The open file is never left in O_NONBLOCK (stdio reads inside glibc,
 *   dups and children share it): reads and writes use MSG_DONTWAIT, and
 *   only connect() flips O_NONBLOCK for the one call.  When a call of a
 *   blocking program would block, the calling thread waits in its own
 *   private epoll set for the remaining time, then retries.
 *
 * Expiry
 *   The connection is aborted with connect(AF_UNSPEC) (RST, fd stays valid,
 *   every waiter in any thread wakes) or shutdown(SHUT_RDWR) (FIN), the fd
 *   leaves the private epoll set, and I/O fails with ETIMEDOUT until the
 *   program closes the fd.  The shim never closes a program's fd.
 *
 * Locking
 *   One mutex (lk) guards the deadline heap and serialises teardown against
 *   close(), so a number cannot be torn down after the program reused it.
 *   The fast path (fd untracked, or data ready) takes no lock.
 */
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netdb.h>

#include "conf.h"
#include "dlheap.h"
#include "inject.h"
#include "log.h"
#include "names.h"
#include "policy.h"
#include "real.h"
#include "signals.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

int engine_enabled_flag = -1; /* -1 not initialised, 0 off, 1 on */

/* Counters per rule for DEADLINE_STATS. */
struct rule_stats {
	uint64_t conns, expiries[DL_PH_COUNT], retries, bytes_in, bytes_out;
};

static struct {
	int init_state; /* 0 none, 1 running, 2 done */
	struct conf conf;
	/* What each rule resolves to: [0] no rule matched, [i] rule i. */
	struct conf_effective *eff;
	struct rule_stats *stats;
	size_t neff;
	const char *stats_path;
	int have_file; /* DEADLINE_CONFIG was given */
	int any_idle; /* some rule has an idle limit */
	pthread_mutex_t lk;
	struct dlheap heap;
	size_t armed; /* heap.n, readable without lk */
	int64_t next_key; /* the heap's top key, 0 if empty; without lk */
	pthread_key_t tls_key;
	int tls_key_ok;
} E = {
	.lk = PTHREAD_MUTEX_INITIALIZER,
};

/* Before init, and after a bad configuration: no deadlines at all. */
static struct conf_effective eff_none = { .err = ETIMEDOUT,
					  .rule_name = "none" };

/* ------------------------------------------------------------------------
 * Clock, limits
 */

int64_t engine_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static const struct conf_effective *eff_of(const struct dl_conn *c)
{
	uint16_t r = CONN_LOAD(c->rule);

	return r < E.neff ? &E.eff[r] : &eff_none;
}

static const struct dl_limits *limits_of(const struct dl_conn *c)
{
	return &eff_of(c)->limits;
}

static int xerrno_of(const struct dl_conn *c)
{
	return eff_of(c)->err ? eff_of(c)->err : ETIMEDOUT;
}

static void count(uint64_t *ctr, uint64_t n)
{
	if (E.stats_path)
		__atomic_fetch_add(ctr, n, __ATOMIC_RELAXED);
}

static struct rule_stats *stats_of(const struct dl_conn *c)
{
	static struct rule_stats sink;

	uint16_t r = CONN_LOAD(c->rule);

	return E.stats && r < E.neff ? &E.stats[r] : &sink;
}

/* Which rule applies to a connection to/from addr.  0 = none matched. */
static uint16_t rule_for(int fd, const struct sockaddr *addr, socklen_t len,
			 int inbound)
{
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	struct conf_peer p;
	const struct conf_rule *r;
	char host[NAMES_NAME_MAX + 1];

	if (!E.conf.nrules || !addr || !E.neff)
		return 0;
	memset(&p, 0, sizeof(p));
	p.host = names_lookup(addr, host, sizeof(host)) ? host : 0;
	p.addr = addr;
	p.addrlen = len;
	p.inbound = inbound;
	if (inbound && getsockname(fd, (struct sockaddr *)&local, &llen) == 0) {
		p.local = (struct sockaddr *)&local;
		p.locallen = llen;
	}
	r = conf_match(&E.conf, &p);
	return r && r->index < E.neff ? r->index : 0;
}

/* Fault injection for a connection to/from addr under rule: set up when
 * some fault group applies.  Returns 1 if fd has fault state. */
static int faults_attach(int fd, struct dl_conn *c, uint16_t rule,
			 const struct sockaddr *addr, socklen_t len,
			 int inbound, int probe_only)
{
	char host[NAMES_NAME_MAX + 1];
	const char *h = names_lookup(addr, host, sizeof(host)) ? host : 0;
	const struct conf_effective *e = rule < E.neff ? &E.eff[rule] : 0;

	if (probe_only)
		return inject_wants(e, h, addr, len, inbound);
	return inject_attach(fd, conn_gen(c), e, h, addr, len, inbound);
}

/* Does anything apply to this rule?  (Limits, or connect retries.) */
static int rule_active(uint16_t rule)
{
	const struct conf_effective *e = rule < E.neff ? &E.eff[rule] : &eff_none;

	return policy_limits_any(&e->limits) || e->connect_retries;
}

/* ------------------------------------------------------------------------
 * Private epoll sets: one per thread, registered so that fork and the
 * program's close-everything calls can find them.
 */

#define MAX_PRIVATE 1024

static int private_fds[MAX_PRIVATE] = { [0 ... MAX_PRIVATE - 1] = -1 };
static int private_dead[MAX_PRIVATE]; /* the program closed that number */
static int private_hi; /* slots in use are below this */

struct tl_wait {
	int epfd;
	int slot;
	uint64_t reg_tag; /* fd | gen << 32 of the live registration */
	uint32_t last_events; /* what the last private wait reported */
	int hold_fd, hold_of; /* an orphaned call of this thread: its hold,
			       * and the program's fd it stands for */
	int reg_fd;
	uint32_t reg_events;
	int64_t fault_wake; /* a timed fault is due then: end waits by it */
};

static __thread struct tl_wait tw __attribute__((tls_model("initial-exec"))) =
	{ .epfd = -1, .slot = -1, .reg_fd = -1, .hold_fd = -1 };

static void private_release(struct tl_wait *t)
{
	if (t->epfd >= 0) {
		pthread_mutex_lock(&E.lk);
		if (t->slot >= 0 && private_fds[t->slot] == t->epfd &&
		    !private_dead[t->slot])
			REAL(close)(t->epfd);
		if (t->slot >= 0) {
			private_fds[t->slot] = -1;
			private_dead[t->slot] = 0;
		}
		pthread_mutex_unlock(&E.lk);
	}
	t->epfd = -1;
	t->slot = -1;
	t->reg_fd = -1;
	t->reg_tag = 0;
}

static void tls_destructor(void *p)
{
	(void)p;
	private_release(&tw);
}

/* Returns the calling thread's epoll fd, creating it if needed; -1 with
 * errno on failure. */
static int private_epfd(void)
{
	int fd, slot = -1;

	if (tw.epfd >= 0 && (tw.slot < 0 ||
			     !__atomic_load_n(&private_dead[tw.slot],
					      __ATOMIC_ACQUIRE)))
		return tw.epfd;
	if (tw.epfd >= 0) /* the program closed our number: forget it */
		private_release(&tw);
	fd = epoll_create1(EPOLL_CLOEXEC);
	if (fd < 0)
		return -1;
	pthread_mutex_lock(&E.lk);
	for (int i = 0; i < MAX_PRIVATE; i++)
		if (private_fds[i] < 0) {
			private_fds[i] = fd;
			private_dead[i] = 0;
			slot = i;
			if (i >= private_hi)
				__atomic_store_n(&private_hi, i + 1,
						 __ATOMIC_RELEASE);
			break;
		}
	pthread_mutex_unlock(&E.lk);
	tw.epfd = fd;
	tw.slot = slot;
	tw.reg_fd = -1;
	tw.reg_tag = 0;
	if (E.tls_key_ok)
		pthread_setspecific(E.tls_key, &tw);
	return fd;
}

/* The program closed/replaced fd: if it was one of ours, never use that
 * number again (its owner thread makes a new set on its next wait). */
static void private_forget(int fd)
{
	int hi = __atomic_load_n(&private_hi, __ATOMIC_ACQUIRE), hit = 0;

	/* Lock-free look first: close() of ordinary files must stay cheap. */
	for (int i = 0; i < hi; i++)
		if (__atomic_load_n(&private_fds[i], __ATOMIC_RELAXED) == fd)
			hit = 1;
	if (hit) {
		pthread_mutex_lock(&E.lk);
		for (int i = 0; i < hi; i++)
			if (private_fds[i] == fd)
				__atomic_store_n(&private_dead[i], 1,
						 __ATOMIC_RELEASE);
		pthread_mutex_unlock(&E.lk);
	}
	if (tw.epfd == fd) {
		tw.epfd = -1;
		tw.reg_fd = -1;
	}
	dl_log_forget_fd(fd);
}

/* ------------------------------------------------------------------------
 * Deferred closes (injected slow_close on non-blocking sockets): a private
 * dup keeps the socket open until its time; one helper thread closes them.
 * The dups live in private_fds, so close_range spares them and a program
 * that closes the number itself only marks the slot dead.
 */

#define MAX_DEFERRED 256

static int app_nonblocking(int fd, struct dl_conn *c, int *flp);

static struct {
	int fd, slot;
	int64_t due;
} deferred[MAX_DEFERRED];
static int ndeferred;
static int reaper_running;
static pthread_cond_t reaper_cv;

static void *reaper(void *p)
{
	(void)p;
	pthread_mutex_lock(&E.lk);
	for (;;) {
		int64_t now = engine_now(), first = 0;
		struct timespec ts;

		for (int i = 0; i < ndeferred;) {
			if (deferred[i].due <= now) {
				int s = deferred[i].slot;
				if (private_fds[s] == deferred[i].fd &&
				    !private_dead[s])
					REAL(close)(deferred[i].fd);
				private_fds[s] = -1;
				private_dead[s] = 0;
				deferred[i] = deferred[--ndeferred];
				continue;
			}
			if (!first || deferred[i].due < first)
				first = deferred[i].due;
			i++;
		}
		if (!ndeferred) {
			reaper_running = 0;
			break;
		}
		ts.tv_sec = (time_t)(first / 1000000000ll);
		ts.tv_nsec = (long)(first % 1000000000ll);
		pthread_cond_timedwait(&reaper_cv, &E.lk, &ts);
	}
	pthread_mutex_unlock(&E.lk);
	return 0;
}

static void sleep_ms(uint32_t ms)
{
	int64_t t = engine_now() + (int64_t)ms * 1000000ll;
	struct timespec ts = { (time_t)(t / 1000000000ll),
			       (long)(t % 1000000000ll) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, 0) == EINTR)
		;
}

void engine_slow_close(int fd, uint32_t ms)
{
	struct dl_conn *c = fdtab_tracked(fd);
	int saved = errno, h, slot = -1;

	if (!ms)
		return;
	if (!c || !app_nonblocking(fd, c, 0) ||
	    (h = REAL(fcntl64)(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		sleep_ms(ms); /* close() takes the time, as with SO_LINGER */
		errno = saved;
		return;
	}
	pthread_mutex_lock(&E.lk);
	for (int i = 0; i < MAX_PRIVATE && ndeferred < MAX_DEFERRED; i++)
		if (private_fds[i] < 0) {
			private_fds[i] = h;
			private_dead[i] = 0;
			slot = i;
			if (i >= private_hi)
				__atomic_store_n(&private_hi, i + 1,
						 __ATOMIC_RELEASE);
			break;
		}
	if (slot >= 0) {
		deferred[ndeferred].fd = h;
		deferred[ndeferred].slot = slot;
		deferred[ndeferred].due = engine_now() +
					  (int64_t)ms * 1000000ll;
		ndeferred++;
		if (!reaper_running) {
			pthread_attr_t attr;
			pthread_condattr_t ca;
			pthread_t t;
			sigset_t all, old;

			pthread_condattr_init(&ca);
			pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
			pthread_cond_init(&reaper_cv, &ca);
			pthread_condattr_destroy(&ca);
			sigfillset(&all);
			pthread_sigmask(SIG_SETMASK, &all, &old);
			pthread_attr_init(&attr);
			pthread_attr_setdetachstate(&attr,
						    PTHREAD_CREATE_DETACHED);
			reaper_running =
				pthread_create(&t, &attr, reaper, 0) == 0;
			pthread_attr_destroy(&attr);
			pthread_sigmask(SIG_SETMASK, &old, 0);
		} else {
			pthread_cond_signal(&reaper_cv);
		}
		if (!reaper_running) { /* no thread: undo, block instead */
			ndeferred--;
			private_fds[slot] = -1;
			slot = -1;
		}
	}
	pthread_mutex_unlock(&E.lk);
	if (slot < 0) {
		REAL(close)(h);
		sleep_ms(ms);
	}
	errno = saved;
}

/* ------------------------------------------------------------------------
 * Orphans: the program closed an fd while one of its threads was blocked
 * on it in the shim.  In the kernel that call holds a reference to the
 * file, so the socket lives on until the call returns; the shim keeps the
 * same promise with a private dup that the blocked call takes over.
 */

#define MAX_ORPHANS 64

struct orphan {
	struct dl_conn *c;
	uint32_t gen;
	int hold;
	struct dl_conn snap; /* the deadlines as they were at close() */
};

static struct orphan orphans[MAX_ORPHANS]; /* under E.lk */

/* Caller holds lk: keep fd's file alive for the waiters of (c, gen), who
 * carry on with the deadlines in snap. */
static void orphan_add_locked(int fd, struct dl_conn *c, uint32_t gen,
			      const struct dl_conn *snap)
{
	for (int i = 0; i < MAX_ORPHANS; i++) {
		if (orphans[i].c)
			continue;
		orphans[i].hold = REAL(fcntl64)(fd, F_DUPFD_CLOEXEC, 0);
		if (orphans[i].hold < 0)
			return;
		orphans[i].c = c;
		orphans[i].gen = gen;
		orphans[i].snap = *snap;
		DL_DEBUG("fd=%d closed while a call waits on it: held as fd=%d",
			 fd, orphans[i].hold);
		return;
	}
}

/* Take over the hold for (c, gen) and the deadlines it carried; -1 if
 * none. */
static int orphan_take(struct dl_conn *c, uint32_t gen, struct dl_conn *snap)
{
	int hold = -1;

	pthread_mutex_lock(&E.lk);
	for (int i = 0; i < MAX_ORPHANS; i++)
		if (orphans[i].c == c && orphans[i].gen == gen) {
			hold = orphans[i].hold;
			*snap = orphans[i].snap;
			orphans[i].c = 0;
			break;
		}
	pthread_mutex_unlock(&E.lk);
	return hold;
}

/* ------------------------------------------------------------------------
 * Initialisation and fork
 */

static void warn_cb(const char *msg)
{
	dl_log_warn("%s", msg);
}

static const char *env_get(const char *name)
{
	return secure_getenv(name);
}

static void heap_sync_locked(void);

static void atfork_prepare(void)
{
	pthread_mutex_lock(&E.lk);
}

static void atfork_parent(void)
{
	pthread_mutex_unlock(&E.lk);
}

static void atfork_child(void)
{
	/* The child shares the parent's epoll instances (and their interest
	 * lists): drop every one of them, the child makes its own. */
	for (int i = 0; i < MAX_PRIVATE; i++) {
		if (private_fds[i] >= 0 && !private_dead[i])
			REAL(close)(private_fds[i]);
		private_fds[i] = -1;
		private_dead[i] = 0;
	}
	tw.epfd = -1;
	tw.slot = -1;
	tw.reg_fd = -1;
	tw.reg_tag = 0;
	/* The parent's reaper closes the deferred sockets; the child's
	 * copies (closed above with the other private fds) must not keep
	 * them open longer. */
	ndeferred = 0;
	reaper_running = 0;
	/* The connections are shared with the parent, which may well meet
	 * the deadlines the child inherited: the child must not abort them
	 * from its stale heap while waiting on something else.  It keeps the
	 * deadlines, and enforces one only where it waits on that socket
	 * itself (its blocking call, or its own poll/select/epoll, which file
	 * the socket again) - as a forking daemon's child does. */
	for (size_t i = 0; i < E.heap.n; i++)
		E.heap.v[i].c->heap_idx = -1;
	E.heap.n = 0;
	heap_sync_locked();
	pthread_mutex_unlock(&E.lk);
}

static int config_load(void);

void engine_init(void)
{
	int saved = errno;
	int expect = 0;

	if (!__atomic_compare_exchange_n(&E.init_state, &expect, 1, 0,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		/* Another thread is initialising: pass through until done. */
		errno = saved;
		return;
	}
	dl_real_bind();
	dl_log_init();
	E.tls_key_ok = pthread_key_create(&E.tls_key, tls_destructor) == 0;
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	__atomic_store_n(&E.init_state, 2, __ATOMIC_RELEASE);
	__atomic_store_n(&engine_enabled_flag, config_load() ? 1 : 0,
			 __ATOMIC_RELEASE);
	errno = saved;
}

static int env_flag(const char *name)
{
	const char *v = secure_getenv(name);

	return v && *v && strcmp(v, "0") != 0;
}

/* Read DEADLINE_CONFIG and the DEADLINE_* variables into E.  Returns 1 if
 * anything is to be enforced.  Bad input is reported once; then the shim
 * passes everything through, or with DEADLINE_STRICT=1 the process exits
 * with status 2 (this runs before main). */
static int config_load(void)
{
	struct dl_limits env;
	const char *path = secure_getenv("DEADLINE_CONFIG");
	int bad = policy_limits_from_env(&env, env_get, warn_cb);
	int active = 0;

	conf_init(&E.conf);
	if (path && *path) {
		E.have_file = 1;
		if (conf_load(&E.conf, path) < 0) {
			for (size_t i = 0; i < E.conf.nerrors; i++)
				dl_log_event("%s", E.conf.errors[i]);
			if (E.conf.errors_dropped)
				dl_log_event("%s: %zu more errors not shown",
					     path, E.conf.errors_dropped);
			if (!E.conf.nerrors)
				dl_log_event("%s: cannot load: %s", path,
					     strerror(errno));
			bad++;
		}
	}
	if (bad) {
		if (env_flag("DEADLINE_STRICT")) {
			dl_log_event("DEADLINE_STRICT is set: exiting (status 2)");
			_exit(2);
		}
		if (E.have_file && E.conf.nerrors) {
			dl_log_event("%s: configuration not used; passing "
				     "everything through", path);
			conf_free(&E.conf);
			return 0;
		}
	}
	conf_apply_env_overrides(&E.conf, &env);
	E.neff = E.conf.nrules + 1;
	E.eff = calloc(E.neff, sizeof(*E.eff));
	if (!E.eff) {
		E.neff = 0;
		dl_log_warn("out of memory at start; passing everything through");
		return 0;
	}
	conf_effective(&E.conf, 0, &E.eff[0]);
	if (!E.have_file)
		E.eff[0].rule_name = "env";
	for (size_t i = 0; i < E.conf.nrules; i++)
		if (E.conf.rules[i].index < E.neff)
			conf_effective(&E.conf, &E.conf.rules[i],
				       &E.eff[E.conf.rules[i].index]);
	{
		const char *td = secure_getenv("DEADLINE_TEARDOWN");
		if (td && *td) {
			int fin = strcmp(td, "close") == 0;
			if (!fin && strcmp(td, "reset") != 0)
				dl_log_warn("DEADLINE_TEARDOWN=\"%.32s\" is not "
					    "reset or close; using reset", td);
			for (size_t i = 0; i < E.neff; i++)
				E.eff[i].teardown = fin ? CONF_TEARDOWN_CLOSE
							: CONF_TEARDOWN_RESET;
		}
	}
	if (inject_load(&E.conf) < 0 && env_flag("DEADLINE_STRICT")) {
		dl_log_event("DEADLINE_STRICT is set: exiting (status 2)");
		_exit(2);
	}
	if (inject_on)
		active = 1;
	for (size_t i = 0; i < E.neff; i++) {
		if (rule_active((uint16_t)i) || E.eff[i].dns_timeout_ms)
			active = 1;
		if (E.eff[i].limits.ms[DL_PH_IDLE])
			E.any_idle = 1;
	}
	E.stats_path = secure_getenv("DEADLINE_STATS");
	if (E.stats_path && !*E.stats_path)
		E.stats_path = 0;
	if (E.stats_path) {
		E.stats = calloc(E.neff, sizeof(*E.stats));
		if (!E.stats)
			E.stats_path = 0;
	}
	return active;
}

__attribute__((constructor(101))) static void engine_ctor(void)
{
	engine_init();
}

/* ------------------------------------------------------------------------
 * The deadline heap
 */

static void heap_sync_locked(void)
{
	const struct dlheap_node *top = dlheap_top(&E.heap);

	__atomic_store_n(&E.next_key, top ? top->key : 0, __ATOMIC_RELEASE);
	__atomic_store_n(&E.armed, E.heap.n, __ATOMIC_RELEASE);
}

/* File c under its earliest deadline (or take it out when none). */
static void refile(int fd, struct dl_conn *c)
{
	int64_t dl = conn_deadline(c, 0);

	pthread_mutex_lock(&E.lk);
	if (!dl)
		dlheap_remove(&E.heap, c);
	else if (dlheap_update(&E.heap, c, fd, dl) < 0)
		dl_log_warn("out of memory for the deadline heap; fd %d is "
			    "only bounded in blocking calls", fd);
	heap_sync_locked();
	pthread_mutex_unlock(&E.lk);
}

/* Re-file c only if its earliest deadline moved earlier than `before` (the
 * earliest before the change): its heap key is a lower bound of `before`,
 * hence of anything later, so most changes take no lock. */
static void refile_if_earlier(int fd, struct dl_conn *c, int64_t before)
{
	int64_t after = conn_deadline(c, 0);

	if (after && (!before || after < before))
		refile(fd, c);
}

/* The program waits on fd now (any kind of wait): idle starts. */
static void arm_idle(int fd, struct dl_conn *c, int64_t now)
{
	int64_t before = conn_deadline(c, 0);

	if (conn_on_wait(c, limits_of(c), now))
		refile_if_earlier(fd, c, before);
}

/* The program is about to wait on fd in its own poll/select: an idle
 * deadline starts now unless one is running. */
void engine_waiting_on(int fd, int64_t now)
{
	struct dl_conn *c = fdtab_tracked(fd);

	if (c && !(conn_state(c) & CONN_EXPIRED))
		arm_idle(fd, c, now);
}

/* The program registered fd in (or removed it from) one of its epoll
 * sets: while registered it is waited on by every epoll_wait, so idle runs
 * from the last byte that moved. */
void engine_on_epoll_ctl(int op, int fd)
{
	struct dl_conn *c = fdtab_tracked(fd);
	int saved = errno;

	if (!c)
		return;
	if (op == EPOLL_CTL_DEL) {
		__atomic_fetch_and(&c->st, ~(uint32_t)CONN_EPOLLED,
				   __ATOMIC_ACQ_REL);
		return;
	}
	__atomic_fetch_or(&c->st, CONN_EPOLLED, __ATOMIC_ACQ_REL);
	engine_waiting_on(fd, engine_now());
	errno = saved;
}

int engine_idle_watch(void)
{
	return E.any_idle;
}

int64_t engine_next_due(void)
{
	return __atomic_load_n(&E.next_key, __ATOMIC_ACQUIRE);
}

int engine_armed(void)
{
	return __atomic_load_n(&E.armed, __ATOMIC_ACQUIRE) != 0;
}

/* ------------------------------------------------------------------------
 * Expiry
 */

static uint64_t inode_of(int fd)
{
	struct stat sb;

	return fstat(fd, &sb) == 0 ? (uint64_t)sb.st_ino : 0;
}

struct expiry {
	int fd;
	enum dl_phase ph;
	uint32_t limit_ms;
	int64_t elapsed_ns;
	const char *rule;
	char addr[INET6_ADDRSTRLEN];
	char host[NAMES_NAME_MAX + 1]; /* the name resolved, else addr */
	int port;
};

/* The peer as text (address, name the program resolved, port). */
static void describe_peer(int fd, struct expiry *x)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct dl_peer *p = fdtab_peer(fd);
	char *host = x->addr;
	size_t hlen = sizeof(x->addr);
	int *port = &x->port;

	*port = 0;
	snprintf(host, hlen, "-");
	snprintf(x->host, sizeof(x->host), "-");
	/* The address connect() was given; else ask while still connected. */
	if (p && p->addr.sin6_family)
		memcpy(&ss, &p->addr, sizeof(p->addr));
	else if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
		return;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &a->sin_addr, host, (socklen_t)hlen);
		*port = ntohs(a->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &a->sin6_addr, host, (socklen_t)hlen);
		*port = ntohs(a->sin6_port);
	}
	if (!names_lookup((struct sockaddr *)&ss, x->host, sizeof(x->host)))
		snprintf(x->host, sizeof(x->host), "%s", x->addr);
}


/* Abort fd's connection.  Caller holds lk and has marked c expired.
 * Returns 0, or -1 when the number no longer holds the tracked socket. */
static int teardown_locked(int fd, struct dl_conn *c, struct expiry *x)
{
	struct sockaddr unspec = { .sa_family = AF_UNSPEC };

	uint64_t ino = CONN_LOAD(c->ino);

	if (ino && inode_of(fd) != ino)
		return -1;
	describe_peer(fd, x);
	if (eff_of(c)->teardown == CONF_TEARDOWN_CLOSE)
		REAL(shutdown)(fd, SHUT_RDWR);
	else
		REAL(connect)(fd, &unspec, sizeof(unspec));
	/* Leave the private set of this thread; other threads' waits wake up
	 * (the socket now reports HUP|ERR) and leave theirs. */
	if (tw.reg_fd == fd) {
		if (tw.epfd >= 0)
			REAL(epoll_ctl)(tw.epfd, EPOLL_CTL_DEL, fd, 0);
		tw.reg_fd = -1;
		tw.reg_tag = 0;
	}
	return 0;
}

static void log_expiry(const struct expiry *x)
{
	const struct dl_field f[] = {
		{ "event", "deadline", 0 },
		{ "fd", 0, x->fd },
		{ "host", x->host, 0 },
		{ "addr", x->addr, 0 },
		{ "port", 0, x->port },
		{ "rule", x->rule, 0 },
		{ "phase", policy_phase_name(x->ph), 0 },
		{ "limit_ms", 0, x->limit_ms },
		{ "elapsed_ms", 0, x->elapsed_ns / 1000000 },
	};

	dl_log_fields(f, (int)(sizeof(f) / sizeof(f[0])));
}

/* If the connect phase is due but the handshake in fact completed (an
 * event-loop program has not touched the socket since), it is met. */
static int connect_done(int fd, struct dl_conn *c)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (inject_on && inject_connecting(fd))
		return 0; /* the program does not see it connected yet */
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
		return 0;
	conn_connected(c);
	return 1;
}

/* Expire c if its deadline passed by now.  Caller holds lk.  Returns 1 and
 * fills x when it tore the connection down. */
static int expire_locked(int fd, struct dl_conn *c, int64_t now,
			 struct expiry *x)
{
	enum dl_phase ph;
	int64_t dl;

	for (;;) {
		dl = conn_deadline(c, &ph);
		if (!dl) {
			dlheap_remove(&E.heap, c);
			heap_sync_locked();
			return 0;
		}
		if (dl > now) {
			if (c->heap_idx >= 0)
				dlheap_update(&E.heap, c, fd, dl);
			return 0;
		}
		if (ph == DL_PH_CONNECT && connect_done(fd, c))
			continue;
		break;
	}
	dlheap_remove(&E.heap, c);
	heap_sync_locked();
	if (!conn_expire(c, ph))
		return 0; /* another thread got there first */
	/* An orphaned call waits on the shim's hold: name the program's fd. */
	x->fd = fd == tw.hold_fd ? tw.hold_of : fd;
	x->ph = ph;
	x->limit_ms = limits_of(c)->ms[ph];
	x->rule = eff_of(c)->rule_name;
	count(&stats_of(c)->expiries[ph], 1);
	x->elapsed_ns = now - (dl - (int64_t)x->limit_ms * 1000000ll);
	if (teardown_locked(fd, c, x) < 0) {
		fdtab_reset(c);
		return 0;
	}
	return 1;
}

int64_t engine_expire_due(int64_t now)
{
	struct expiry xs[16];
	int nx = 0, more = 1;
	int64_t next = __atomic_load_n(&E.next_key, __ATOMIC_ACQUIRE);

	/* Nothing due yet (the top key is a lower bound): no lock. */
	if (next > now || (!next && !engine_armed()))
		return next;

	while (more) {
		more = 0;
		pthread_mutex_lock(&E.lk);
		for (;;) {
			const struct dlheap_node *top = dlheap_top(&E.heap);
			struct dl_conn *c;
			int fd;
			int64_t dl;

			if (!top) {
				next = 0;
				break;
			}
			if (top->key > now) {
				next = top->key;
				break;
			}
			c = top->c;
			fd = top->fd;
			dl = conn_deadline(c, 0);
			if (!dl) {
				dlheap_remove(&E.heap, c);
				/* A deadline armed meanwhile by a thread that
				 * saw c filed must not be lost. */
				__atomic_thread_fence(__ATOMIC_SEQ_CST);
				if ((dl = conn_deadline(c, 0)))
					dlheap_update(&E.heap, c, fd, dl);
				continue;
			}
			if (dl != top->key) {
				/* The key was a lower bound (the deadline moved
				 * later): file it exactly first, so that what
				 * expires in one pass goes in deadline order. */
				dlheap_update(&E.heap, c, fd, dl);
				continue;
			}
			if (nx == 16) {
				more = 1;
				break;
			}
			/* Leaves c expired, out of the heap, or re-filed. */
			if (expire_locked(fd, c, now, &xs[nx]))
				nx++;
		}
		heap_sync_locked();
		pthread_mutex_unlock(&E.lk);
		for (int i = 0; i < nx; i++)
			log_expiry(&xs[i]);
		nx = 0;
	}
	return next;
}

/* Expire fd now (the caller saw its deadline pass).  Returns 1 if it is
 * (now or already) expired. */
static int expire_one(int fd, struct dl_conn *c, int64_t now)
{
	struct expiry x;
	int done;

	pthread_mutex_lock(&E.lk);
	done = expire_locked(fd, c, now, &x);
	pthread_mutex_unlock(&E.lk);
	if (done)
		log_expiry(&x);
	return (conn_state(c) & CONN_EXPIRED) != 0;
}

/* The call the program made on an expired fd.  Verifies the number still
 * holds the torn-down socket (glibc may have closed it internally, e.g.
 * fclose on an fdopen'd socket) before failing. */
static int expired_fail(int fd, struct dl_conn *c)
{
	int saved = errno;

	uint64_t ino = CONN_LOAD(c->ino);

	if (ino && inode_of(fd) != ino) {
		engine_on_close(fd);
		errno = saved;
		return 0; /* stale: the caller passes the call through */
	}
	errno = xerrno_of(c);
	return 1;
}

int engine_fail_expired(int fd)
{
	struct dl_conn *c = fdtab_tracked(fd);

	return c && (conn_state(c) & CONN_EXPIRED) && expired_fail(fd, c);
}

/* ------------------------------------------------------------------------
 * Tracking
 */

static int sock_is_tcp(int fd)
{
	int v = 0, dom = 0;
	socklen_t l = sizeof(v), dl = sizeof(dom);

	if (REAL(getsockopt)(fd, SOL_SOCKET, SO_TYPE, &v, &l) < 0 ||
	    v != SOCK_STREAM)
		return 0;
	if (REAL(getsockopt)(fd, SOL_SOCKET, SO_DOMAIN, &dom, &dl) < 0)
		return 0;
	return dom == AF_INET || dom == AF_INET6;
}

void engine_on_socket(int fd, int domain, int type, int protocol)
{
	struct dl_conn *c;
	int saved = errno;

	engine_on_newfd(fd);
	if ((domain != AF_INET && domain != AF_INET6) ||
	    (type & 0xf) != SOCK_STREAM ||
	    (protocol != 0 && protocol != IPPROTO_TCP &&
	     protocol != 262 /* IPPROTO_MPTCP */))
		return;
	c = fdtab_get(fd);
	if (c)
		__atomic_store_n(&c->st,
				 CONN_SOCK | CONN_NBKNOWN | CONN_FLKNOWN |
					 ((type & SOCK_NONBLOCK) ? CONN_NONBLOCK : 0),
				 __ATOMIC_RELEASE);
	errno = saved;
}

void engine_on_newfd(int fd)
{
	struct dl_conn *c = fdtab_peek(fd);

	if (c && (conn_state(c) || c->heap_idx >= 0))
		engine_on_close(fd);
}

void engine_on_close(int fd)
{
	struct dl_conn *c = fdtab_peek(fd);
	int saved = errno;

	if (tw.reg_fd == fd) {
		/* Closing the last fd of a file drops its registrations; a
		 * dup'd one would linger (and is handled if it fires). */
		if (tw.epfd >= 0 && c && (conn_state(c) & CONN_SHARED))
			REAL(epoll_ctl)(tw.epfd, EPOLL_CTL_DEL, fd, 0);
		tw.reg_fd = -1;
		tw.reg_tag = 0;
	}
	if (inject_on)
		inject_detach(fd, 0);
	if (!c || (!conn_state(c) && c->heap_idx < 0)) {
		/* Not a socket we know: maybe one of the shim's own fds. */
		if (__atomic_load_n(&E.init_state, __ATOMIC_ACQUIRE) == 2)
			private_forget(fd);
		errno = saved;
		return;
	}
	pthread_mutex_lock(&E.lk);
	dlheap_remove(&E.heap, c);
	heap_sync_locked();
	{
		/* What a thread still blocked on this file would carry on
		 * with (see orphans). */
		struct dl_conn snap;
		uint32_t old;

		memset(&snap, 0, sizeof(snap));
		snap.heap_idx = -1;
		snap.rule = CONN_LOAD(c->rule);
		snap.ino = CONN_LOAD(c->ino);
		snap.rcvtimeo_ms = CONN_LOAD(c->rcvtimeo_ms);
		snap.sndtimeo_ms = CONN_LOAD(c->sndtimeo_ms);
		for (int p = 0; p < DL_PH_COUNT; p++)
			snap.dl[p] = CONN_LOAD(c->dl[p]);
		snap.st = conn_state(c);
		old = fdtab_reset(c);
		if (old & CONN_WAITERS_MAX)
			orphan_add_locked(fd, c, old >> CONN_GEN_SHIFT, &snap);
	}
	pthread_mutex_unlock(&E.lk);
	if (fdtab_peer(fd))
		fdtab_peer(fd)->addr.sin6_family = 0;
	errno = saved;
}

void engine_on_dup(int oldfd, int newfd)
{
	struct dl_conn *o = fdtab_peek(oldfd), *n;
	int saved = errno;

	engine_on_newfd(newfd);
	if (!o || !conn_state(o))
		return;
	n = fdtab_get(newfd);
	if (!n)
		return;
	/* The copy shares the socket: same deadlines, expiring on its own
	 * (expiry of either aborts the shared connection). */
	for (int i = 0; i < DL_PH_COUNT; i++)
		__atomic_store_n(&n->dl[i],
				 __atomic_load_n(&o->dl[i], __ATOMIC_RELAXED),
				 __ATOMIC_RELAXED);
	CONN_STORE(n->rule, CONN_LOAD(o->rule));
	CONN_STORE(n->ino, CONN_LOAD(o->ino));
	*fdtab_peer(newfd) = *fdtab_peer(oldfd);
	CONN_STORE(n->rcvtimeo_ms, CONN_LOAD(o->rcvtimeo_ms));
	CONN_STORE(n->sndtimeo_ms, CONN_LOAD(o->sndtimeo_ms));
	__atomic_fetch_or(&o->st, CONN_SHARED, __ATOMIC_ACQ_REL);
	__atomic_store_n(&n->st, conn_state(o), __ATOMIC_RELEASE);
	if (conn_deadline(n, 0))
		refile(newfd, n);
	if (inject_on)
		inject_dup(oldfd, newfd, conn_gen(n));
	errno = saved;
}

void engine_on_setfl(int fd, int flags)
{
	struct dl_conn *c = fdtab_peek(fd);
	uint32_t old, nw, fl;

	if (!c || !conn_state(c))
		return;
	/* Only O_NONBLOCK changed: the other flags stay known. */
	fl = (flags & ~(O_NONBLOCK | O_ACCMODE)) ? 0 : CONN_FLKNOWN;
	old = conn_state(c);
	do {
		nw = (flags & O_NONBLOCK)
			     ? (old | CONN_NONBLOCK | CONN_NBKNOWN)
			     : ((old & ~CONN_NONBLOCK) | CONN_NBKNOWN);
		nw = (nw & ~CONN_FLKNOWN) | (old & fl);
	} while (nw != old &&
	       !__atomic_compare_exchange_n(&c->st, &old, nw, 1,
					    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
}

static uint32_t timeval_ms(const void *val, socklen_t len)
{
	const struct timeval *tv = val;
	uint64_t ms;

	if (!val || len < sizeof(*tv) || tv->tv_sec < 0 || tv->tv_usec < 0)
		return 0;
	ms = (uint64_t)tv->tv_sec * 1000u + ((uint64_t)tv->tv_usec + 999u) / 1000u;
	return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

void engine_on_sockopt(int fd, int level, int name, const void *val,
		       socklen_t len)
{
	struct dl_conn *c;

	if (level != SOL_SOCKET)
		return;
	if (name != SO_RCVTIMEO && name != SO_SNDTIMEO
#ifdef SO_RCVTIMEO_NEW
	    && name != SO_RCVTIMEO_NEW && name != SO_SNDTIMEO_NEW
#endif
	)
		return;
	c = fdtab_get(fd);
	if (!c)
		return;
#ifdef SO_RCVTIMEO_NEW
	if (name == SO_RCVTIMEO || name == SO_RCVTIMEO_NEW)
#else
	if (name == SO_RCVTIMEO)
#endif
		CONN_STORE(c->rcvtimeo_ms, timeval_ms(val, len));
	else
		CONN_STORE(c->sndtimeo_ms, timeval_ms(val, len));
}

void engine_on_accept(int lfd, int fd, int flags)
{
	struct dl_conn *l = fdtab_peek(lfd), *c;
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	uint16_t rule = 0;
	int saved = errno, faulted = 0;

	engine_on_newfd(fd);
	if (!(l && (conn_state(l) & CONN_SOCK)) && !sock_is_tcp(fd)) {
		errno = saved;
		return;
	}
	if ((E.conf.nrules || inject_on) &&
	    getpeername(fd, (struct sockaddr *)&peer, &plen) == 0) {
		rule = rule_for(fd, (struct sockaddr *)&peer, plen, 1);
		faulted = inject_on && faults_attach(fd, 0, rule,
						     (struct sockaddr *)&peer,
						     plen, 1, 1);
	}
	if ((!rule_active(rule) && !faulted) || !(c = fdtab_get(fd))) {
		errno = saved;
		return;
	}
	/* accept() never inherits the listener's O_NONBLOCK on Linux. */
	__atomic_store_n(&c->st,
			 CONN_SOCK | CONN_NBKNOWN | CONN_FLKNOWN |
				 ((flags & SOCK_NONBLOCK) ? CONN_NONBLOCK : 0),
			 __ATOMIC_RELEASE);
	CONN_STORE(c->rule, rule);
	CONN_STORE(c->ino, inode_of(fd));
	conn_start(c, limits_of(c), 1, 0, engine_now());
	count(&stats_of(c)->conns, 1);
	DL_DEBUG("track fd=%d inbound rule=%s limits_ms=%u/%u/%u/%u", fd,
		 eff_of(c)->rule_name, limits_of(c)->ms[0], limits_of(c)->ms[1],
		 limits_of(c)->ms[2], limits_of(c)->ms[3]);
	refile(fd, c);
	if (faulted)
		faults_attach(fd, c, rule, (struct sockaddr *)&peer, plen, 1, 0);
	errno = saved;
}

/* Does the program see fd as non-blocking?  Trusts what the shim saw the
 * program set; otherwise asks the kernel (only on the would-block path). */
static int app_nonblocking(int fd, struct dl_conn *c, int *flp)
{
	int fl;

	uint32_t st = conn_state(c);

	/* Known from socket()/accept4() and every F_SETFL/FIONBIO since.  But
	 * O_NONBLOCK lives on the open file: after a dup the program may
	 * change it through the other number, so then ask the kernel. */
	if ((st & (CONN_NBKNOWN | CONN_SHARED)) == CONN_NBKNOWN &&
	    (!flp || (st & CONN_FLKNOWN))) {
		if (flp)
			*flp = O_RDWR | ((st & CONN_NONBLOCK) ? O_NONBLOCK : 0);
		return (st & CONN_NONBLOCK) != 0;
	}
	fl = REAL(fcntl64)(fd, F_GETFL);
	if (flp)
		*flp = fl;
	if (fl < 0)
		return 0;
	engine_on_setfl(fd, fl);
	return (fl & O_NONBLOCK) != 0;
}

/* ------------------------------------------------------------------------
 * The private wait
 */

enum wait_result {
	W_READY = 0,
	W_EXPIRED, /* torn down; errno is the expiry errno */
	W_APP_TIMEOUT, /* the program's own SO_RCVTIMEO/SO_SNDTIMEO */
	W_INTR,
	W_ERROR, /* errno set */
	W_ORPHANED, /* the program closed the fd meanwhile (see orphans) */
};

/* The fd expired: it leaves this thread's private set (EPOLL_CTL_DEL). */
static enum wait_result wait_expired(int fd, const struct dl_conn *c)
{
	if (tw.reg_fd == fd) {
		REAL(epoll_ctl)(tw.epfd, EPOLL_CTL_DEL, fd, 0);
		tw.reg_fd = -1;
		tw.reg_tag = 0;
	}
	errno = xerrno_of(c);
	return W_EXPIRED;
}

static int to_epoll_ms(int64_t ns)
{
	int64_t ms = (ns + 999999) / 1000000;

	return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* Wait in the private epoll set for events on fd, bounded by c's
 * deadlines and by app_ms (the program's own socket timeout, 0 = none).
 * Registration persists between waits of the same thread on the same fd,
 * so a blocking ping-pong costs one epoll_wait per round trip. */
static enum wait_result private_wait_counted(int fd, struct dl_conn *c,
					     uint32_t events, uint32_t app_ms);

static enum wait_result private_wait(int fd, struct dl_conn *c,
				     uint32_t events, uint32_t app_ms)
{
	uint32_t gen = conn_gen(c);
	enum wait_result w;

	if (!conn_wait_enter(c, gen))
		return conn_gen(c) != gen ? W_ORPHANED
					  : private_wait_counted(fd, c, events,
								 app_ms);
	w = private_wait_counted(fd, c, events, app_ms);
	conn_wait_leave(c, gen);
	if (conn_gen(c) != gen && w != W_EXPIRED)
		return W_ORPHANED;
	return w;
}

static enum wait_result private_wait_counted(int fd, struct dl_conn *c,
					     uint32_t events, uint32_t app_ms)
{
	int saved = errno;
	uint64_t tag = (uint64_t)(uint32_t)fd | ((uint64_t)conn_gen(c) << 32);
	int64_t now = engine_now();
	int64_t app_dl = app_ms ? now + (int64_t)app_ms * 1000000ll : 0;
	struct epoll_event ev;
	int epfd;

	arm_idle(fd, c, now);
	epfd = private_epfd();
	/* No fd left for an epoll set (RLIMIT_NOFILE reached): wait with
	 * poll() on the one fd instead; the shim's trouble stays its own. */
	if (epfd < 0)
		goto registered;
	if (tw.reg_tag != tag || tw.reg_events != events) {
		ev.events = events;
		ev.data.u64 = tag;
		if (tw.reg_fd == fd && tw.reg_tag == tag) {
			if (REAL(epoll_ctl)(epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
				epfd = -1;
		} else {
			if (tw.reg_fd >= 0)
				REAL(epoll_ctl)(epfd, EPOLL_CTL_DEL, tw.reg_fd,
						0);
			tw.reg_fd = -1;
			if (REAL(epoll_ctl)(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 &&
			    (errno != EEXIST ||
			     REAL(epoll_ctl)(epfd, EPOLL_CTL_MOD, fd, &ev) < 0))
				epfd = -1;
		}
		if (epfd >= 0) {
			tw.reg_fd = fd;
			tw.reg_tag = tag;
			tw.reg_events = events;
		} else {
			/* Could not register (ENOMEM, ...): poll() below. */
			errno = saved;
		}
	}
registered:

	for (;;) {
		int64_t dl, until;
		int n;

		if (conn_gen(c) != (uint32_t)(tag >> 32))
			return W_READY; /* closed under us: the caller sorts it */
		if (conn_state(c) & CONN_EXPIRED)
			return wait_expired(fd, c);
		dl = conn_deadline(c, 0);
		if (dl && now >= dl) {
			if (expire_one(fd, c, now))
				return wait_expired(fd, c);
			if (!(conn_state(c) & CONN_TRACKED))
				return W_READY; /* the number was reused */
			dl = conn_deadline(c, 0); /* e.g. connect was done */
		}
		if (app_dl && now >= app_dl)
			return W_APP_TIMEOUT;
		if (tw.fault_wake && now >= tw.fault_wake)
			return W_READY; /* the caller asks the injector again */
		until = dl;
		if (app_dl && (!until || app_dl < until))
			until = app_dl;
		if (tw.fault_wake && (!until || tw.fault_wake < until))
			until = tw.fault_wake;
		sig_wait_begin();
		if (epfd >= 0) {
			n = REAL(epoll_wait)(epfd, &ev, 1,
					       until ? to_epoll_ms(until - now)
						     : -1);
		} else {
			struct pollfd pfd = { .fd = fd, .events = (short)events };
			n = REAL(poll)(&pfd, 1,
				       until ? to_epoll_ms(until - now) : -1);
			ev.events = (uint32_t)pfd.revents;
			ev.data.u64 = tag;
		}
		if (n < 0) {
			if (errno != EINTR)
				return W_ERROR;
			/* The kernel restarts a blocking socket call after an
			 * SA_RESTART handler, unless the socket has a timeout
			 * (signal(7)); so do we. */
			if (app_ms || sig_interrupted_norestart())
				return W_INTR;
		} else if (n == 1 && ev.data.u64 != tag) {
			/* A registration the program's close left behind:
			 * start a clean set. */
			private_release(&tw);
			return private_wait_counted(fd, c, events, app_ms);
		} else if (n == 1) {
			tw.last_events = ev.events;
			if (conn_gen(c) != (uint32_t)(tag >> 32))
				return W_READY; /* closed under us */
			if (conn_state(c) & CONN_EXPIRED)
				return wait_expired(fd, c);
			return W_READY;
		}
		now = engine_now();
	}
}

/* Wait until t (INT64_MAX: until a deadline ends it) without events: an
 * injected delay.  Bounded by c's deadlines and by app_ms (the program's
 * own socket timeout).  Sleeps in short slices so that an expiry or close
 * by another thread is noticed. */
static enum wait_result wait_until(int fd, struct dl_conn *c, int64_t t,
				   uint32_t app_ms)
{
	uint32_t gen = conn_gen(c);
	int64_t now = engine_now();
	int64_t app_dl = app_ms ? now + (int64_t)app_ms * 1000000ll : 0;

	arm_idle(fd, c, now); /* the program waits on the socket */
	for (;;) {
		int64_t dl, until;
		struct timespec ts;

		if (conn_gen(c) != gen)
			return W_ORPHANED;
		if (conn_state(c) & CONN_EXPIRED)
			return wait_expired(fd, c);
		dl = conn_deadline(c, 0);
		if (dl && now >= dl) {
			if (expire_one(fd, c, now))
				return wait_expired(fd, c);
			now = engine_now();
			continue;
		}
		if (now >= t)
			return W_READY;
		if (app_dl && now >= app_dl)
			return W_APP_TIMEOUT;
		until = t;
		if (dl && dl < until)
			until = dl;
		if (app_dl && app_dl < until)
			until = app_dl;
		if (until - now > 50000000ll)
			until = now + 50000000ll;
		ts.tv_sec = (time_t)(until / 1000000000ll);
		ts.tv_nsec = (long)(until % 1000000000ll);
		sig_wait_begin();
		if (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, 0) ==
			    EINTR &&
		    (app_ms || sig_interrupted_norestart()))
			return W_INTR;
		now = engine_now();
	}
}

/* ------------------------------------------------------------------------
 * connect
 */

/* Wait for the handshake a blocking connect() started. */
static int connect_wait(int fd, struct dl_conn *c)
{
	for (;;) {
		int err = 0;
		socklen_t el = sizeof(err);
		uint32_t gen = conn_gen(c);
		struct dl_conn snap;
		int hold;

		switch (private_wait(fd, c, EPOLLOUT,
				     CONN_LOAD(c->sndtimeo_ms))) {
		case W_ORPHANED:
			/* Closed during its own connect: nothing to finish. */
			hold = orphan_take(c, gen, &snap);
			if (hold >= 0)
				REAL(close)(hold);
			errno = EBADF;
			return -1;
		case W_READY:
			break;
		case W_EXPIRED:
			return -1;
		case W_APP_TIMEOUT:
			errno = EINPROGRESS; /* what the kernel says */
			return -1;
		case W_INTR:
			errno = EINTR;
			return -1;
		case W_ERROR:
			return -1;
		}
		/* A connecting socket reports EPOLLOUT alone once the
		 * handshake succeeded; a failure comes with ERR/HUP. */
		if (tw.last_events & (EPOLLERR | EPOLLHUP)) {
			if (REAL(getsockopt)(fd, SOL_SOCKET, SO_ERROR, &err,
					     &el) < 0)
				return -1;
			if (err) {
				errno = err;
				return -1;
			}
		}
		conn_connected(c);
		/* The kernel still says "connecting" until connect() is
		 * called again; done lazily if the program ever does. */
		__atomic_fetch_or(&c->st, CONN_UNSETTLED, __ATOMIC_ACQ_REL);
		return 0;
	}
}

/* Where fd is connecting to, for the log (a connect that never completes
 * has no peer address to ask for). */
static void remember_peer(int fd, const struct sockaddr *addr, socklen_t len)
{
	struct dl_peer *p = fdtab_peer(fd);

	if (!p)
		return;
	memset(&p->addr, 0, sizeof(p->addr));
	memcpy(&p->addr, addr, len < sizeof(p->addr) ? len : sizeof(p->addr));
}

/* One blocking attempt: O_NONBLOCK for the connect() call only, restored
 * exactly as it was, then the private wait.  fl: the file's flags. */
static int connect_blocking_once(int fd, struct dl_conn *c,
				 const struct sockaddr *addr, socklen_t len,
				 int fl, unsigned attempt)
{
	int r, e, saved = errno;

	if (inject_on && inject_has(fd, conn_gen(c))) {
		int64_t until;
		int ferr;
		enum inj_connect k = inject_connect(fd, attempt, 0, engine_now(),
						    &until, &ferr);

		if (k == INJ_C_DELAY || k == INJ_C_FAIL) {
			switch (wait_until(fd, c, until ? until : INT64_MAX,
					   CONN_LOAD(c->sndtimeo_ms))) {
			case W_READY:
				break;
			case W_EXPIRED:
				return -1;
			case W_APP_TIMEOUT:
				errno = EINPROGRESS;
				return -1;
			case W_INTR:
				errno = EINTR;
				return -1;
			default:
				errno = EBADF;
				return -1;
			}
			if (k == INJ_C_FAIL) {
				errno = ferr;
				return -1;
			}
		}
		errno = saved;
	}

	if (REAL(fcntl64)(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return REAL(connect)(fd, addr, len);
	r = REAL(connect)(fd, addr, len);
	e = errno;
	REAL(fcntl64)(fd, F_SETFL, fl);
	if (r == 0) {
		conn_connected(c);
		errno = saved;
		return 0;
	}
	if (e != EINPROGRESS) {
		errno = e;
		return -1;
	}
	errno = saved;
	return connect_wait(fd, c);
}

static int retryable(const struct dl_conn *c, int e)
{
	if (e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH)
		return 1;
	/* A connect deadline, not the request deadline, may be retried. */
	return (conn_state(c) & CONN_EXPIRED) &&
	       conn_expired_phase(c) == DL_PH_CONNECT;
}

/* Full jitter: uniform in [0, min(max, base * 2^attempt)] ms. */
static uint32_t backoff_ms(const struct conf_effective *e, unsigned attempt)
{
	static __thread uint64_t rng;
	uint64_t cap = e->backoff_base_ms ? e->backoff_base_ms : 1;

	while (attempt-- && cap < e->backoff_max_ms)
		cap *= 2;
	if (e->backoff_max_ms && cap > e->backoff_max_ms)
		cap = e->backoff_max_ms;
	if (!rng)
		rng = (uint64_t)engine_now() ^ ((uint64_t)getpid() << 32) ^
		      (uint64_t)(uintptr_t)&rng;
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % (cap + 1));
}

static void log_retry(int fd, const struct dl_conn *c, unsigned attempt,
		      const struct sockaddr *next, int err, uint32_t wait_ms)
{
	struct expiry x;
	char nexta[INET6_ADDRSTRLEN] = "-";

	describe_peer(fd, &x);
	if (next->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)next)->sin_addr,
			  nexta, sizeof(nexta));
	else if (next->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
			  &((const struct sockaddr_in6 *)next)->sin6_addr, nexta,
			  sizeof(nexta));
	{
		const struct dl_field f[] = {
			{ "event", "retry", 0 },
			{ "fd", 0, fd },
			{ "host", x.host, 0 },
			{ "addr", x.addr, 0 },
			{ "port", 0, x.port },
			{ "rule", eff_of(c)->rule_name, 0 },
			{ "attempt", 0, attempt },
			{ "error", strerrorname_np(err) ? strerrorname_np(err) : "?", 0 },
			{ "next_addr", nexta, 0 },
			{ "backoff_ms", 0, wait_ms },
		};
		dl_log_fields(f, (int)(sizeof(f) / sizeof(f[0])));
	}
}

/* Sleep ms, or less if the request deadline comes first.  Returns 0, or -1
 * when the request deadline would pass (no time left to retry). */
static int backoff_sleep(const struct dl_conn *c, uint32_t ms)
{
	int64_t now = engine_now();
	int64_t until = now + (int64_t)ms * 1000000ll;
	int64_t req = __atomic_load_n(&c->dl[DL_PH_REQUEST], __ATOMIC_RELAXED);
	struct timespec ts;

	if (req && until >= req)
		return -1;
	ts.tv_sec = (time_t)(until / 1000000000ll);
	ts.tv_nsec = (long)(until % 1000000000ll);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, 0) == EINTR)
		;
	return 0;
}

int engine_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	struct dl_conn *c = fdtab_peek(fd);
	uint32_t st = c ? conn_state(c) : 0;
	int fl = -1, r, e, saved = errno, faulted = 0;
	uint16_t rule;

	if ((st & CONN_EXPIRED) && expired_fail(fd, c))
		return -1;
	if (!addr || len < sizeof(sa_family_t) ||
	    (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)) {
		r = REAL(connect)(fd, addr, len);
		if (st && addr && addr->sa_family == AF_UNSPEC) {
			/* The program dissolved the association itself. */
			e = errno;
			engine_on_close(fd);
			__atomic_store_n(&c->st,
					 st & (CONN_SOCK | CONN_NONBLOCK |
					       CONN_NBKNOWN | CONN_SHARED),
					 __ATOMIC_RELEASE);
			errno = e;
		}
		return r;
	}
	if ((st & CONN_TRACKED) && (st & CONN_CONNECTING)) {
		/* A second connect() while the handshake runs. */
		if (!app_nonblocking(fd, c, 0)) {
			r = connect_wait(fd, c);
			if (r < 0 && errno != EINTR &&
			    !(conn_state(c) & CONN_EXPIRED)) {
				e = errno;
				engine_on_close(fd);
				errno = e;
			}
			return r;
		}
		r = REAL(connect)(fd, addr, len);
		if (r == 0 || errno == EISCONN) {
			e = errno;
			conn_connected(c);
			errno = e;
		}
		return r;
	}
	if (st & CONN_TRACKED) {
		if (st & CONN_UNSETTLED) {
			/* Leave the state a native blocking connect leaves
			 * (this returns 0), so the answer below is EISCONN. */
			REAL(connect)(fd, addr, len);
			__atomic_fetch_and(&c->st, ~(uint32_t)CONN_UNSETTLED,
					   __ATOMIC_ACQ_REL);
			errno = saved;
		}
		return REAL(connect)(fd, addr, len);
	}
	rule = rule_for(fd, addr, len, 0);
	faulted = inject_on && faults_attach(fd, c, rule, addr, len, 0, 1);
	if (!rule_active(rule) && !faulted)
		return REAL(connect)(fd, addr, len);
	if (!(st & CONN_SOCK)) {
		if (!sock_is_tcp(fd) || !(c = fdtab_get(fd))) {
			errno = saved;
			return REAL(connect)(fd, addr, len);
		}
		__atomic_store_n(&c->st, CONN_SOCK, __ATOMIC_RELEASE);
	}
	CONN_STORE(c->rule, rule);
	CONN_STORE(c->ino, inode_of(fd));
	remember_peer(fd, addr, len);
	conn_start(c, limits_of(c), 0, 1, engine_now());
	count(&stats_of(c)->conns, 1);
	DL_DEBUG("track fd=%d outbound rule=%s limits_ms=%u/%u/%u/%u", fd,
		 eff_of(c)->rule_name, limits_of(c)->ms[0], limits_of(c)->ms[1],
		 limits_of(c)->ms[2], limits_of(c)->ms[3]);
	refile(fd, c);
	if (faulted)
		faulted = faults_attach(fd, c, rule, addr, len, 0, 0);
	errno = saved;

	if (app_nonblocking(fd, c, &fl)) {
		if (faulted) {
			int64_t until;
			int ferr;

			if (inject_connect(fd, 0, 1, engine_now(), &until,
					   &ferr) == INJ_C_HIDDEN) {
				/* Delayed: the handshake starts now, its
				 * outcome is hidden until then.  Failed or
				 * blackholed: no handshake at all. */
				if (!ferr)
					REAL(connect)(fd, addr, len);
				errno = EINPROGRESS;
				return -1;
			}
		}
		/* Event loops learn the result later (SO_ERROR): no retries. */
		r = REAL(connect)(fd, addr, len);
		e = errno;
		if (r == 0)
			conn_connected(c);
		else if (e != EINPROGRESS && e != EINTR)
			engine_on_close(fd);
		errno = e;
		return r;
	}
	if (fl < 0) {
		errno = saved;
		return REAL(connect)(fd, addr, len);
	}
	{
		const struct conf_effective *ef = eff_of(c);
		struct sockaddr_storage cur;
		socklen_t curlen = len < sizeof(cur) ? len : sizeof(cur);
		char name[NAMES_NAME_MAX + 1];
		int have_name = names_lookup(addr, name, sizeof(name));

		memcpy(&cur, addr, curlen);
		for (unsigned attempt = 1;; attempt++) {
			struct sockaddr_storage next;
			socklen_t nlen = sizeof(next);
			int64_t req;
			uint32_t wait;

			r = connect_blocking_once(fd, c, (struct sockaddr *)&cur,
						  curlen, fl, attempt - 1);
			if (r == 0 || errno == EINTR)
				return r;
			e = errno;
			if (attempt > ef->connect_retries || !retryable(c, e))
				break;
			/* Next: another address the program resolved for
			 * that name, after a jittered back-off. */
			next = cur;
			nlen = curlen;
			if (have_name)
				names_next_addr(name, (struct sockaddr *)&cur,
						(struct sockaddr *)&next, &nlen);
			wait = backoff_ms(ef, attempt - 1);
			log_retry(fd, c, attempt, (struct sockaddr *)&next, e,
				  wait);
			count(&stats_of(c)->retries, 1);
			if (backoff_sleep(c, wait) < 0)
				break;
			cur = next;
			curlen = nlen;
			{
				/* A failed handshake leaves the socket
				 * "connecting"; dissolve it so it may try
				 * again. */
				struct sockaddr unspec = { .sa_family = AF_UNSPEC };
				REAL(connect)(fd, &unspec, sizeof(unspec));
			}
			/* A fresh connect deadline; the request one runs on. */
			req = __atomic_load_n(&c->dl[DL_PH_REQUEST],
					      __ATOMIC_RELAXED);
			conn_start(c, limits_of(c), 0, 1, engine_now());
			if (req)
				__atomic_store_n(&c->dl[DL_PH_REQUEST], req,
						 __ATOMIC_RELAXED);
			remember_peer(fd, (struct sockaddr *)&cur, curlen);
			refile(fd, c);
		}
	}
	/* Failed for good.  A deadline keeps the fd expired (ETIMEDOUT until
	 * close); a refusal leaves nothing to bound. */
	if (!(conn_state(c) & CONN_EXPIRED))
		engine_on_close(fd);
	errno = e;
	return -1;
}

int engine_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	struct dl_conn *c = fdtab_tracked(fd);

	if (c && inject_on && level == SOL_SOCKET && name == SO_ERROR && val &&
	    len && *len >= sizeof(int) && !(conn_state(c) & CONN_EXPIRED)) {
		int err;
		if (inject_so_error(fd, &err)) {
			*(int *)val = err;
			*len = sizeof(int);
			return 0;
		}
	}

	if (c && (conn_state(c) & CONN_EXPIRED) && level == SOL_SOCKET &&
	    name == SO_ERROR && val && len && *len >= sizeof(int)) {
		int saved = errno;
		if (expired_fail(fd, c)) {
			*(int *)val = xerrno_of(c);
			*len = sizeof(int);
			errno = saved;
			return 0;
		}
		errno = saved;
	}
	return REAL(getsockopt)(fd, level, name, val, len);
}

/* ------------------------------------------------------------------------
 * Reads and writes
 */

static int is_write_op(enum dl_op op)
{
	return op >= OP_WRITE;
}

/* The call exactly as the program made it. */
static ssize_t io_real(int fd, const struct dl_io *io)
{
	switch (io->op) {
	case OP_READ:
		return REAL(read)(fd, io->buf, io->len);
	case OP_READV:
		return REAL(readv)(fd, io->iov, io->iovcnt);
	case OP_RECV:
		return REAL(recv)(fd, io->buf, io->len, io->flags);
	case OP_RECVFROM:
		return REAL(recvfrom)(fd, io->buf, io->len, io->flags, io->from,
				      io->fromlen);
	case OP_RECVMSG:
		return REAL(recvmsg)(fd, io->msg, io->flags);
	case OP_WRITE:
		return REAL(write)(fd, io->buf, io->len);
	case OP_WRITEV:
		return REAL(writev)(fd, io->iov, io->iovcnt);
	case OP_SEND:
		return REAL(send)(fd, io->buf, io->len, io->flags);
	case OP_SENDTO:
		return REAL(sendto)(fd, io->buf, io->len, io->flags, io->to,
				    io->tolen);
	case OP_SENDMSG:
		return REAL(sendmsg)(fd, io->msg, io->flags);
	}
	errno = EINVAL;
	return -1;
}

/* One non-blocking attempt, skipping the first `done` bytes (a blocking
 * write or MSG_WAITALL read resumes where the last attempt stopped) and
 * moving at most cap bytes (an injected slice or bandwidth limit). */
static ssize_t io_attempt(int fd, const struct dl_io *io, size_t done,
			  size_t cap)
{
	int fl = io->flags | MSG_DONTWAIT;
	struct msghdr m;
	struct iovec small[8], *iv = small;
	const struct iovec *src;
	int cnt, first = done == 0;
	size_t n = io->len - done < cap ? io->len - done : cap;
	ssize_t r;

	switch (io->op) {
	case OP_READ:
		return REAL(recv)(fd, (char *)io->buf + done, n, MSG_DONTWAIT);
	case OP_RECV:
		return REAL(recv)(fd, (char *)io->buf + done, n, fl);
	case OP_RECVFROM:
		return REAL(recvfrom)(fd, (char *)io->buf + done, n, fl, io->from,
				      io->fromlen);
	case OP_WRITE:
		return REAL(send)(fd, (const char *)io->buf + done, n,
				  MSG_DONTWAIT);
	case OP_SEND:
		return REAL(send)(fd, (const char *)io->buf + done, n, fl);
	case OP_SENDTO:
		return REAL(sendto)(fd, (const char *)io->buf + done, n, fl,
				    io->to, io->tolen);
	case OP_READV:
	case OP_WRITEV:
		memset(&m, 0, sizeof(m));
		src = io->iov;
		cnt = io->iovcnt;
		fl = MSG_DONTWAIT;
		break;
	case OP_RECVMSG:
	case OP_SENDMSG:
		m = *io->msg;
		src = m.msg_iov;
		cnt = (int)m.msg_iovlen;
		if (done) { /* ancillary data went with the first part */
			m.msg_control = 0;
			m.msg_controllen = 0;
		}
		break;
	default:
		errno = EINVAL;
		return -1;
	}
	if (done || cap != (size_t)-1) {
		/* Skip what was transferred already; keep at most cap. */
		size_t left = cap;

		while (cnt > 0 && done >= src->iov_len) {
			done -= src->iov_len;
			src++;
			cnt--;
		}
		if (cnt > (int)(sizeof(small) / sizeof(small[0]))) {
			iv = malloc((size_t)cnt * sizeof(*iv));
			if (!iv)
				return -1;
		}
		for (int i = 0; i < cnt; i++)
			iv[i] = src[i];
		if (cnt) {
			iv[0].iov_base = (char *)iv[0].iov_base + done;
			iv[0].iov_len -= done;
		}
		for (int i = 0; i < cnt; i++) {
			if (iv[i].iov_len >= left) {
				iv[i].iov_len = left;
				cnt = i + 1;
				break;
			}
			left -= iv[i].iov_len;
		}
		src = iv;
	}
	m.msg_iov = (struct iovec *)src;
	m.msg_iovlen = (size_t)cnt;
	if (is_write_op(io->op))
		r = REAL(sendmsg)(fd, &m, fl);
	else {
		r = REAL(recvmsg)(fd, &m, fl);
		if (io->op == OP_RECVMSG && r >= 0 && first) {
			io->msg->msg_flags = m.msg_flags;
			io->msg->msg_namelen = m.msg_namelen;
			io->msg->msg_controllen = m.msg_controllen;
		}
	}
	if (iv != small) {
		int e = errno;
		free(iv);
		errno = e;
	}
	return r;
}

static size_t io_total(const struct dl_io *io)
{
	const struct iovec *v;
	size_t n, t = 0;

	switch (io->op) {
	case OP_READV:
	case OP_WRITEV:
		v = io->iov;
		n = io->iovcnt > 0 ? (size_t)io->iovcnt : 0;
		break;
	case OP_RECVMSG:
	case OP_SENDMSG:
		v = io->msg->msg_iov;
		n = io->msg->msg_iovlen;
		break;
	default:
		return io->len;
	}
	for (size_t i = 0; i < n; i++)
		t += v[i].iov_len;
	return t;
}

static void note_moved(int fd, struct dl_conn *c, int wrote, ssize_t n)
{
	if (n > 0)
		count(wrote ? &stats_of(c)->bytes_out : &stats_of(c)->bytes_in,
		      (uint64_t)n);
	int64_t before = conn_deadline(c, 0);
	int earlier = wrote ? conn_on_write(c, limits_of(c), n, engine_now)
			    : conn_on_read(c, limits_of(c), n, engine_now);

	if (earlier)
		refile_if_earlier(fd, c, before);
}

/* Ask the injector about the next attempt of a faulted call.  Returns 1
 * to go on (with *cap, *swallow, *sliced set), 0 when the loop should ask
 * again (after a wait), -1 when the call ends with *rp (errno set). */
static int io_fault_step(int *fdp, struct dl_conn *c, struct dl_io *io,
			 int blocking, size_t done, size_t *cap, int *swallow,
			 int *sliced, ssize_t *rp)
{
	int fd = *fdp, wrote = is_write_op(io->op);
	uint32_t app_ms = wrote ? CONN_LOAD(c->sndtimeo_ms)
				: CONN_LOAD(c->rcvtimeo_ms);
	struct inj_plan p;
	enum wait_result w;

	switch (inject_io(fd, wrote, blocking, engine_now(), &p)) {
	case INJ_GO:
		*cap = (io->flags & MSG_PEEK) ? p.peek_cap : p.cap;
		*swallow = p.swallow;
		*sliced = (io->flags & MSG_PEEK) ? 0 : p.sliced;
		tw.fault_wake = p.wake;
		return 1;
	case INJ_FAIL:
		if (done) {
			*rp = (ssize_t)done;
			return -1;
		}
		errno = p.err;
		*rp = -1;
		return -1;
	case INJ_EOF:
		*rp = (ssize_t)done;
		return -1;
	case INJ_WAIT:
		break;
	}
	if (!blocking) {
		/* An event loop: its poll/epoll will not see the fd ready
		 * before the fault allows. */
		arm_idle(fd, c, engine_now());
		if (done) {
			*rp = (ssize_t)done;
			return -1;
		}
		errno = EAGAIN;
		*rp = -1;
		return -1;
	}
	if (p.until == 0) {
		tw.fault_wake = p.wake;
		w = private_wait(fd, c, EPOLLIN, app_ms);
		tw.fault_wake = 0;
	} else {
		w = wait_until(fd, c, p.until, app_ms);
	}
	switch (w) {
	case W_READY:
		return 0;
	case W_EXPIRED:
		*rp = -1;
		return -1;
	case W_APP_TIMEOUT:
		errno = EAGAIN;
		break;
	case W_INTR:
		errno = EINTR;
		break;
	case W_ORPHANED:
		errno = EBADF;
		break;
	case W_ERROR:
		break;
	}
	*rp = done ? (ssize_t)done : -1;
	return -1;
}

ssize_t engine_io(int fd, struct dl_io *io)
{
	struct dl_conn *c = fdtab_tracked(fd);
	struct dl_conn orphan_conn; /* deadlines of an orphaned call */
	int wrote = is_write_op(io->op);
	size_t want = 0, done = 0;
	int keep_going; /* blocking semantics: all of it (writes, WAITALL) */
	int saved = errno, hold = -1, faulted, blocking = 0;
	ssize_t r;

	if (!c)
		return io_real(fd, io);
	if ((conn_state(c) & CONN_EXPIRED)) {
		if (expired_fail(fd, c))
			return -1;
		return io_real(fd, io);
	}
	faulted = inject_on && inject_has(fd, conn_gen(c));
	/* Nothing can fire during this call: the real call, untouched. */
	if (!faulted && !conn_deadline(c, 0) &&
	    !limits_of(c)->ms[DL_PH_IDLE]) {
		r = io_real(fd, io);
		if (r > 0) {
			int e = errno;
			note_moved(fd, c, wrote, r);
			errno = e;
		}
		return r;
	}
	keep_going = wrote || ((io->flags & MSG_WAITALL) &&
			       (io->op == OP_RECV || io->op == OP_RECVFROM ||
				io->op == OP_RECVMSG));
	if ((conn_state(c) & (CONN_NONBLOCK | CONN_NBKNOWN | CONN_SHARED)) ==
	    (CONN_NONBLOCK | CONN_NBKNOWN))
		keep_going = 0; /* an event loop takes partial transfers */
	if (keep_going || faulted)
		want = io_total(io);
	if (faulted)
		blocking = !(io->flags & MSG_DONTWAIT) &&
			   !app_nonblocking(fd, c, 0);

	/* A blocking program reading right after it wrote is waiting for an
	 * answer that is rarely there yet: wait first, skip a doomed try. */
	if (!faulted && !wrote && !(io->flags & (MSG_DONTWAIT | MSG_PEEK)) &&
	    (conn_state(c) & (CONN_TURN_WROTE | CONN_NBKNOWN | CONN_NONBLOCK |
			      CONN_SHARED | CONN_EXPIRED)) ==
		    (CONN_TURN_WROTE | CONN_NBKNOWN))
		goto wait;
	for (;;) {
		enum wait_result w;
		size_t cap = (size_t)-1;
		int swallow = 0, sliced = 0;

		if (faulted && hold < 0) {
			int k = io_fault_step(&fd, c, io, blocking, done, &cap,
					      &swallow, &sliced, &r);
			if (k < 0)
				goto out;
			if (k == 0)
				continue;
		}
		if (swallow) /* blackholed: the bytes vanish */
			r = (ssize_t)(want - done < cap ? want - done : cap);
		else
			r = io_attempt(fd, io, done, cap);
		if (r >= 0) {
			note_moved(fd, c, wrote, r);
			if (faulted && r > 0 && hold < 0 &&
			    !(io->flags & MSG_PEEK))
				inject_io_done(fd, wrote, (size_t)r,
					       cap != (size_t)-1 &&
						       (size_t)r == cap &&
						       cap < want - done);
			done += (size_t)r;
			if (!keep_going || r == 0 || done >= want || sliced ||
			    (io->flags & MSG_DONTWAIT))
				break;
			continue;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			if (errno == ENOTSOCK) { /* number reused behind us */
				engine_on_close(fd);
				errno = saved;
				return io_real(fd, io);
			}
			if (done)
				break;
			r = -1;
			goto out;
		}
		if ((io->flags & MSG_DONTWAIT) || app_nonblocking(fd, c, 0)) {
			/* An event loop will wait for this fd: idle runs. */
			arm_idle(fd, c, engine_now());
			if (done)
				break;
			errno = EAGAIN;
			r = -1;
			goto out;
		}
wait:
		{
			uint32_t gen = conn_gen(c);

			w = private_wait(fd, c, wrote ? EPOLLOUT : EPOLLIN,
					 wrote ? CONN_LOAD(c->sndtimeo_ms)
					       : CONN_LOAD(c->rcvtimeo_ms));
			if (w == W_ORPHANED && hold < 0) {
				/* Carry on with the file the call holds. */
				hold = orphan_take(c, gen, &orphan_conn);
				if (hold < 0) {
					errno = EBADF;
					r = -1;
					goto out;
				}
				tw.hold_fd = hold;
				tw.hold_of = fd;
				fd = hold;
				c = &orphan_conn;
				continue;
			}
		}
		if (w == W_READY)
			continue;
		r = -1;
		if (w == W_EXPIRED)
			goto out;
		if (done)
			break; /* partial transfer: report it, like the kernel */
		if (w == W_APP_TIMEOUT)
			errno = EAGAIN;
		else if (w == W_INTR)
			errno = EINTR;
		goto out;
	}
	errno = saved;
	r = (ssize_t)done;
out:
	tw.fault_wake = 0;
	if (hold >= 0) {
		/* The call returns: its reference to the file goes, and with
		 * it the registrations the close left in our set. */
		int e = errno;
		REAL(close)(hold);
		tw.hold_fd = -1;
		private_release(&tw);
		errno = e;
	}
	return r;
}

/* ------------------------------------------------------------------------
 * Name resolution
 */

void engine_learn_addrinfo(const char *name, const struct addrinfo *res)
{
	int saved = errno;

	for (const struct addrinfo *ai = res; ai; ai = ai->ai_next)
		if (ai->ai_addr && (ai->ai_family == AF_INET ||
				    ai->ai_family == AF_INET6))
			names_learn(name, ai->ai_addr);
	errno = saved;
}

void engine_learn_hostent(const char *name, const struct hostent *h)
{
	int saved = errno;

	if (!h || !h->h_addr_list)
		return;
	for (char **a = h->h_addr_list; *a; a++) {
		struct sockaddr_storage ss;
		memset(&ss, 0, sizeof(ss));
		if (h->h_addrtype == AF_INET && h->h_length == 4) {
			struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
			v4->sin_family = AF_INET;
			memcpy(&v4->sin_addr, *a, 4);
		} else if (h->h_addrtype == AF_INET6 && h->h_length == 16) {
			struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
			v6->sin6_family = AF_INET6;
			memcpy(&v6->sin6_addr, *a, 16);
		} else {
			continue;
		}
		names_learn(name, (struct sockaddr *)&ss);
		if (h->h_name && strcmp(h->h_name, name) != 0)
			names_learn(h->h_name, (struct sockaddr *)&ss);
	}
	errno = saved;
}

/* A lookup that may outlive its caller: the last of the two to let go
 * frees it (and the result, if nobody took it). */
struct gai_job {
	pthread_mutex_t m;
	pthread_cond_t cv;
	int refs, done, taken, rc;
	char *node, *service;
	struct addrinfo hints, *res;
	int has_hints;
};

static void gai_unref(struct gai_job *j)
{
	int left;

	pthread_mutex_lock(&j->m);
	left = --j->refs;
	pthread_mutex_unlock(&j->m);
	if (left)
		return;
	if (j->res && !j->taken)
		freeaddrinfo(j->res);
	pthread_cond_destroy(&j->cv);
	pthread_mutex_destroy(&j->m);
	free(j->node);
	free(j->service);
	free(j);
}

static void *gai_thread(void *p)
{
	struct gai_job *j = p;
	int rc = REAL(getaddrinfo)(j->node, j->service,
				   j->has_hints ? &j->hints : 0, &j->res);

	if (rc == 0)
		engine_learn_addrinfo(j->node, j->res);
	pthread_mutex_lock(&j->m);
	j->rc = rc;
	j->done = 1;
	pthread_cond_signal(&j->cv);
	pthread_mutex_unlock(&j->m);
	gai_unref(j);
	return 0;
}

static uint32_t dns_limit_ms(const char *node)
{
	struct conf_effective ef;
	struct conf_peer p;

	if (!E.neff)
		return 0;
	if (!E.conf.nrules)
		return E.eff[0].dns_timeout_ms;
	memset(&p, 0, sizeof(p));
	p.host = node;
	conf_lookup(&E.conf, &p, &ef);
	return ef.dns_timeout_ms;
}

/* An injected dns fault for node: sleeps the delay (at most the lookup's
 * own limit ms, 0 = none) and returns the answer to give, or 0 to
 * resolve.  *ms is lowered by the time spent. */
static int dns_fault(const char *node, uint32_t *ms)
{
	struct conf_effective ef, *e = E.neff ? &E.eff[0] : 0;
	uint32_t delay;
	int rc;

	if (E.neff && E.conf.nrules) {
		struct conf_peer p;
		memset(&p, 0, sizeof(p));
		p.host = node;
		conf_lookup(&E.conf, &p, &ef);
		e = &ef;
	}
	rc = inject_dns(node, e, &delay);
	if (delay) {
		uint32_t d = *ms && *ms <= delay ? *ms : delay;
		struct timespec ts = { (time_t)(d / 1000),
				       (long)(d % 1000) * 1000000l };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		if (*ms && *ms <= delay) {
			const struct dl_field f[] = {
				{ "event", "dns_timeout", 0 },
				{ "host", node, 0 },
				{ "limit_ms", 0, *ms },
				{ "elapsed_ms", 0, *ms },
			};
			dl_log_fields(f, (int)(sizeof(f) / sizeof(f[0])));
			return EAI_AGAIN;
		}
		if (*ms)
			*ms -= delay;
	}
	return rc;
}

int engine_dns_fault(const char *name)
{
	uint32_t ms = 0;

	return name && inject_on ? dns_fault(name, &ms) : 0;
}

int engine_getaddrinfo(const char *node, const char *service,
		       const struct addrinfo *hints, struct addrinfo **res)
{
	uint32_t ms = node ? dns_limit_ms(node) : 0;
	struct gai_job *j;
	pthread_attr_t attr;
	pthread_condattr_t ca;
	sigset_t all, old;
	pthread_t t;
	struct timespec until;
	int64_t start, end;
	int rc, ok;

	if (node && inject_on && (rc = dns_fault(node, &ms)))
		return rc;
	if (!ms)
		return REAL(getaddrinfo)(node, service, hints, res);
	j = calloc(1, sizeof(*j));
	if (!j)
		return REAL(getaddrinfo)(node, service, hints, res);
	j->node = strdup(node);
	j->service = service ? strdup(service) : 0;
	if (!j->node || (service && !j->service)) {
		free(j->node);
		free(j->service);
		free(j);
		return REAL(getaddrinfo)(node, service, hints, res);
	}
	if (hints) {
		j->hints = *hints;
		j->hints.ai_addr = 0;
		j->hints.ai_canonname = 0;
		j->hints.ai_next = 0;
		j->has_hints = 1;
	}
	j->refs = 2;
	pthread_mutex_init(&j->m, 0);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&j->cv, &ca);
	pthread_condattr_destroy(&ca);
	/* The helper thread must never take the program's signals. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ok = pthread_create(&t, &attr, gai_thread, j) == 0;
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, 0);
	if (!ok) {
		j->refs = 1;
		gai_unref(j);
		return REAL(getaddrinfo)(node, service, hints, res);
	}
	start = engine_now();
	end = start + (int64_t)ms * 1000000ll;
	until.tv_sec = (time_t)(end / 1000000000ll);
	until.tv_nsec = (long)(end % 1000000000ll);
	pthread_mutex_lock(&j->m);
	while (!j->done &&
	       pthread_cond_timedwait(&j->cv, &j->m, &until) != ETIMEDOUT)
		;
	if (j->done) {
		rc = j->rc;
		*res = j->res;
		j->taken = 1;
	} else {
		rc = EAI_AGAIN;
	}
	pthread_mutex_unlock(&j->m);
	if (rc == EAI_AGAIN && !j->taken) {
		const struct dl_field f[] = {
			{ "event", "dns_timeout", 0 },
			{ "host", node, 0 },
			{ "limit_ms", 0, ms },
			{ "elapsed_ms", 0, (engine_now() - start) / 1000000 },
		};
		dl_log_fields(f, (int)(sizeof(f) / sizeof(f[0])));
	}
	gai_unref(j);
	return rc;
}

/* ------------------------------------------------------------------------
 * Statistics (DEADLINE_STATS): one JSON line per process at exit.
 */

__attribute__((destructor)) static void stats_write(void)
{
	char buf[256];
	int fd, n, saved = errno;

	if (!E.stats_path || !E.stats)
		return;
	fd = open(E.stats_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
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
	errno = saved;
}

/* ------------------------------------------------------------------------
 * close_range with the shim's own fds spared
 */

int engine_close_range(unsigned lo, unsigned hi, int flags)
{
	int spare[MAX_PRIVATE + 1], ns = 0, r = 0;
	unsigned start = lo;
	int saved = errno;

	if (flags & CLOSE_RANGE_CLOEXEC)
		return REAL(close_range) ? REAL(close_range)(lo, hi, flags)
					 : (int)syscall(SYS_close_range, lo, hi,
							flags);
	/* Forget tracked sockets in the range. */
	for (unsigned s = lo >> FDTAB_SLAB_SHIFT;
	     s < FDTAB_MAX / FDTAB_SLAB && s <= (hi >> FDTAB_SLAB_SHIFT); s++) {
		if (!__atomic_load_n(&fdtab_slabs[s], __ATOMIC_ACQUIRE))
			continue;
		for (unsigned i = 0; i < FDTAB_SLAB; i++) {
			unsigned fd = (s << FDTAB_SLAB_SHIFT) | i;
			if (fd >= lo && fd <= hi)
				engine_on_newfd((int)fd);
		}
	}
	pthread_mutex_lock(&E.lk);
	for (int i = 0; i < MAX_PRIVATE; i++)
		if (private_fds[i] >= 0 && !private_dead[i] &&
		    (unsigned)private_fds[i] >= lo && (unsigned)private_fds[i] <= hi)
			spare[ns++] = private_fds[i];
	pthread_mutex_unlock(&E.lk);
	if (dl_log_fd() > 2 && (unsigned)dl_log_fd() >= lo &&
	    (unsigned)dl_log_fd() <= hi)
		spare[ns++] = dl_log_fd();
	/* Sort the few spared numbers and close the gaps between them. */
	for (int i = 1; i < ns; i++)
		for (int j = i; j > 0 && spare[j - 1] > spare[j]; j--) {
			int t = spare[j];
			spare[j] = spare[j - 1];
			spare[j - 1] = t;
		}
	for (int i = 0; i <= ns && r == 0; i++) {
		unsigned end = i < ns ? (unsigned)spare[i] : hi;
		if (i < ns && (unsigned)spare[i] == start) {
			start++;
			continue;
		}
		if (i < ns)
			end--;
		if (start <= end && start <= hi)
			r = REAL(close_range) ? REAL(close_range)(start, end, flags)
					      : (int)syscall(SYS_close_range,
							     start, end, flags);
		if (i < ns)
			start = (unsigned)spare[i] + 1;
		if (i < ns && spare[i] == INT_MAX)
			break;
	}
	if (r == 0)
		errno = saved;
	return r;
}
