/* engine_int.h - what the engine's files share with each other; the
 * wrappers see only engine.h.
 *
 * The engine is split by concern, one file each:
 *   engine.c   state, start-up (configuration, environment), fork handlers,
 *              which rule applies to a peer
 *   track.c    which fds are tracked: socket, accept, dup, close, flags,
 *              socket options, close_range
 *   connect.c  connect(): the connect deadline, retries with back-off
 *   io.c       the read/write families: attempts, turns, injected faults
 *   io_fast.c  their steady state: one attempt, no lock (io_int.h)
 *   xfer.c     sendfile and splice: attempts for io.c's loop
 *   stream.c   stdio streams on tracked sockets (fdopen)
 *   exchange.c when an HTTP/1 exchange is over (the request deadline met)
 *   wait.c     the shim's private waits (one ppoll per blocked call)
 *   expire.c   the deadline heap, expiry and teardown
 *   reaper.c   in a threaded process, a thread that tears down at the
 *              earliest deadline: waits already in progress end on time
 *   holds.c    the shim's own descriptors: files kept open for orphaned
 *              calls and deferred (slow) closes, high, CLOEXEC, spared
 *   dns.c      name learning, getaddrinfo's dns_timeout, dns faults
 *   stats.c    DEADLINE_STATS counters
 *   observe.c  DEADLINE_OBSERVE: no limits, histograms of each phase
 *              instead (hooks in observe.h)
 *
 * Locking: E.lk guards the deadline heap, the orphan and deferred-close
 * tables and the registry of own descriptors, and serialises teardown
 * against close().  Nothing else is locked; per-fd state is in fdtab (atomics).
 */
#ifndef DL_ENGINE_INT_H
#define DL_ENGINE_INT_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>

#include "clock.h"
#include "conf.h"
#include "dlheap.h"
#include "engine.h"
#include "names.h"
#include "observe.h"
#include "policy.h"
#include "self.h"
#include "signals.h"

/* ---- engine.c: shared state ------------------------------------------ */

/* Counters per rule for DEADLINE_STATS; the histograms (stats.c) hold
 * how long the phases that were met took: [STATS_NBUCKETS] is +Inf. */
#define STATS_NHIST 3		/* connect, first byte, request */
#define STATS_NBUCKETS 14
struct rule_stats {
	uint64_t conns, expiries[DL_PH_COUNT], retries, bytes_in, bytes_out;
	uint64_t hist[STATS_NHIST][STATS_NBUCKETS + 1];
	uint64_t hist_sum_ns[STATS_NHIST];
};

struct engine_state {
	int init_state; /* 0 none, 1 running, 2 done */
	struct conf conf; /* as loaded at start (reload.c: the rules now) */
	/* What each rule resolves to: [0] no rule matched, [i] rule i; each
	 * reload appends its own entries (reload.c).  eff and stats never
	 * move; entries below neff (acquire) never change. */
	struct conf_effective *eff;
	struct rule_stats *stats;
	size_t neff;
	const char *stats_path;
	/* Nonzero while a move does more than turns and deadlines: counters
	 * (stats_path) or the observer (observe_on).  The fast paths' one
	 * check; kept by engine_extra_sync. */
	int moved_extra;
	int have_file; /* DEADLINE_CONFIG was given */
	int any_idle; /* some rule has an idle limit */
	pthread_mutex_t lk;
	struct dlheap heap;
	size_t armed; /* heap.n, readable without lk */
	int64_t next_key; /* the heap's top key, 0 if empty; without lk */
};

extern struct engine_state E;

/* engine_lock / engine_unlock - E.lk, counted in the thread's state so
 * that a signal arriving meanwhile is deferred (signals.h) instead of
 * re-entering the shim under the lock. */
static inline void engine_lock(void)
{
	self_lock(&E.lk);
}

static inline void engine_unlock(void)
{
	self_unlock(&E.lk);
}

/* Before init, and after a bad configuration: no deadlines at all. */
extern struct conf_effective engine_eff_none;

static inline const struct conf_effective *eff_of(const struct dl_conn *c)
{
	uint16_t r = CONN_LOAD(c->rule);

	return r < __atomic_load_n(&E.neff, __ATOMIC_ACQUIRE) ? &E.eff[r]
							      : &engine_eff_none;
}

/* While observing (observe.c) no limit applies to any connection. */
static inline const struct dl_limits *limits_of(const struct dl_conn *c)
{
	if (OBS_ON())
		return &observe_no_limits;
	return &eff_of(c)->limits;
}

/* The errno a call on c's expired connection fails with. */
static inline int xerrno_of(const struct dl_conn *c)
{
	return eff_of(c)->err ? eff_of(c)->err : ETIMEDOUT;
}

/* engine_rule_for - the rule for a connection of fd to/from addr (inbound:
 * accepted), by host name learnt, address, port and direction; 0 = none
 * matched.  errno may change. */
uint16_t engine_rule_for(int fd, const struct sockaddr *addr, socklen_t len,
			 int inbound);
/* engine_faults_attach - fault state for fd under rule when some fault
 * group applies (probe_only: only say whether one would).  Returns 1 if
 * fd has (or would have) fault state. */
int engine_faults_attach(int fd, struct dl_conn *c, uint16_t rule,
			 const struct sockaddr *addr, socklen_t len,
			 int inbound, int probe_only);
/* engine_rule_active - does anything (limits, connect retries) apply? */
int engine_rule_active(uint16_t rule);

/* engine_extra_sync - E.moved_extra from E.stats_path and observe_on;
 * called wherever either changes. */
void engine_extra_sync(void);

/* ---- stats.c --------------------------------------------------------- */

extern struct rule_stats stats_sink;

static inline void stats_count(uint64_t *ctr, uint64_t n)
{
	if (E.stats_path)
		__atomic_fetch_add(ctr, n, __ATOMIC_RELAXED);
}

static inline struct rule_stats *stats_of(const struct dl_conn *c)
{
	uint16_t r = CONN_LOAD(c->rule);

	return E.stats && r < __atomic_load_n(&E.neff, __ATOMIC_ACQUIRE)
		       ? &E.stats[r]
		       : &stats_sink;
}

/* stats_start - choose the format (after E.stats_path is set);
 * stats_write_live - rewrite the Prometheus file now (0, or -1). */
extern int stats_prom;
void stats_start(void);
int stats_write_live(void);

/* The duration histograms are fed through conn_met_hook (conn.h): the
 * phase started at its deadline minus its limit, and was met then. */

/* ---- reload.c: the rules now, and reloading them ----------------------- */

/* One generation of rules: the configuration and where its entries
 * start in E.eff (its defaults; rule i at base + i).  Immutable once
 * published, and never freed (a connection may still use its entries). */
struct rules_gen {
	const struct conf *conf;
	uint32_t base;
	uint32_t number;	/* 0 at start, then 1, 2, ... */
};

/* rules_now - the generation new connections use. */
const struct rules_gen *rules_now(void);
/* rules_start - publish generation 0 from c (env overrides applied, or
 * used = 0: the file was bad, nothing applies).  Returns 1 if anything is
 * to be enforced, 0 if not, -1 out of memory. */
int rules_start(const struct conf *c, const char *path, int used,
		const struct dl_limits *env);
/* rules_check - DEADLINE_CONFIG changed since it was last looked at?
 * Then load it whole and publish it, or keep the rules and log why.
 * At most one caller at a time; others return at once. */
void rules_check(void);
/* rules_atfork_child - no check is running in the child. */
void rules_atfork_child(void);
/* rules_reload_counts - reloads applied and refused so far. */
void rules_reload_counts(unsigned *ok, unsigned *bad);

/* ---- live.c: what a long-running process gets while it runs --------- */

/* live_start - after the configuration: read DEADLINE_STATS_INTERVAL and
 * decide whether anything is to be done while the program runs. */
void live_start(void);
/* live_poll - on a path that starts a connection: in a threaded process
 * start the live thread, else do what is due (reload check, counters). */
extern int live_on;
void live_poll_slow(void);
static inline void live_poll(void)
{
	if (__builtin_expect(__atomic_load_n(&live_on, __ATOMIC_RELAXED), 0))
		live_poll_slow();
}
/* live_atfork_child - the child has no live thread. */
void live_atfork_child(void);
/* live_open_own - open path for the shim's own use at a high number
 * (never 0..2, never left at a low number the program could reuse).
 * -1 with errno when it cannot. */
int live_open_own(const char *path, int flags, int mode);

/* A growing text (the counters file, the observations): live_put appends
 * like printf; on a failed allocation the text is marked oom and later
 * puts do nothing.  Free p when done. */
struct live_text {
	char *p;
	size_t n, cap;
	int oom;
};
void live_put(struct live_text *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* live_replace - write t whole to tmp (opened with live_open_own; at_exit:
 * with a plain open when that says EBUSY, stdio being closed), then rename
 * it to name, so that a reader sees the old file or the new one, never a
 * part.  Returns 0, or an errno (tmp removed). */
int live_replace(const char *name, const char *tmp,
		 const struct live_text *t, int at_exit);

/* ---- wait.c: the private waits ---------------------------------------- */

enum wait_result {
	W_READY = 0,
	W_EXPIRED, /* torn down; errno is the expiry errno */
	W_APP_TIMEOUT, /* the program's own SO_RCVTIMEO/SO_SNDTIMEO */
	W_INTR,
	W_ERROR, /* errno set */
	W_ORPHANED, /* the program closed the fd meanwhile (see holds.c) */
};


/* wait_private - wait for events on fd, bounded by c's deadlines and by
 * app_ms (the program's own socket timeout, 0 = none). */
enum wait_result wait_private(int fd, struct dl_conn *c, uint32_t events,
			      uint32_t app_ms);
/* wait_until - wait until t (INT64_MAX: until a deadline ends it) without
 * events: an injected delay, bounded likewise. */
enum wait_result wait_until(int fd, struct dl_conn *c, int64_t t,
			    uint32_t app_ms);

/* ---- expire.c: the deadline heap and teardown ----------------------- */

/* What one expiry reports in its log line. */
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

/* Caller holds E.lk: publish the heap's top and size for lock-free readers. */
void expire_heap_sync_locked(void);
/* File c under its earliest deadline (or take it out when none). */
void expire_refile(int fd, struct dl_conn *c);
/* The program waits on fd now (any kind of wait): idle starts. */
void expire_arm_idle(int fd, struct dl_conn *c, int64_t now);
/* Expire fd now if its deadline passed; 1 if it is (now or already)
 * expired. */
int expire_one(int fd, struct dl_conn *c, int64_t now);
/* A call that would answer EAGAIN at now: expire fd if its deadline
 * passed.  1 with errno the expiry errno if expired, else 0. */
int expire_overdue(int fd, struct dl_conn *c, int64_t now);
/* The program's call on an expired fd: 1 with errno set to fail it, 0 if
 * the number no longer holds the torn-down socket (pass it through). */
int expire_fail(int fd, struct dl_conn *c);
/* expire_adopt - fd's connection was torn down through another number
 * or by another process (its socket carries the shim's teardown mark):
 * c becomes expired too, and 1 is returned with errno the expiry errno;
 * else 0, errno untouched.  One getsockopt. */
int expire_adopt(int fd, struct dl_conn *c);
/* The peer of fd as text, for log lines. */
void expire_describe_peer(int fd, struct expiry *x);
/* The address sa (NULL: unknown) as text, likewise. */
void expire_describe_addr(const struct sockaddr *sa, struct expiry *x);
/* expire_atfork_child - the child keeps no heap of its own (see there). */
void expire_atfork_child(void);

/* ---- reaper.c: deadlines on time for waits already in progress ------- */

/* reaper_note - the earliest deadline went from before to after (ns, 0 =
 * none), E.lk not held: in a threaded process, make sure something tears
 * down at `after` whatever the other threads are waiting in. */
void reaper_note(int64_t before, int64_t after);
/* reaper_atfork_child - the child has no reaper thread. */
void reaper_atfork_child(void);

/* ---- holds.c: files kept open for the program ------------------------- */

/* Caller holds E.lk: keep fd's file alive for the waiters of (c, gen). */
void holds_orphan_add_locked(int fd, struct dl_conn *c, uint32_t gen,
			     const struct dl_conn *snap);
/* Take over the hold for (c, gen) and the deadlines it carried; -1 if
 * none. */
int holds_orphan_take(struct dl_conn *c, uint32_t gen, struct dl_conn *snap);
/* holds_close - close an own descriptor (an orphan's hold, once taken). */
void holds_close(int h);
#define HOLDS_MAX 512 /* own descriptors at most */

/* holds_list - the own descriptors now (for close_range to spare); at
 * most cap of them into out.  Returns how many. */
int holds_list(int *out, int cap);
/* holds_atfork_child - the child closes the own descriptors it inherited. */
void holds_atfork_child(void);

/* io_vec - the vector of a vectored io (readv/writev, recvmsg/sendmsg)
 * with its count in *n; NULL for the others (io->buf, io->len). */
static inline const struct iovec *io_vec(const struct dl_io *io, size_t *n)
{
	switch (io->op) {
	case OP_READV:
	case OP_WRITEV:
		*n = io->iovcnt > 0 ? (size_t)io->iovcnt : 0;
		return io->iov;
	case OP_RECVMSG:
	case OP_SENDMSG:
		*n = io->msg->msg_iovlen;
		return io->msg->msg_iov;
	default:
		*n = 0;
		return 0;
	}
}

/* ---- exchange.c: when a request is over ------------------------------ */

/* exchange_moved - n bytes (n > 0) of io, from offset off, moved on c
 * (wrote: the program's, else the peer's).  io NULL: bytes the shim
 * cannot see moved (sendfile, splice).  Follows the connection's
 * HTTP/1 exchanges and meets the request deadline when they are over. */
void exchange_moved(int fd, struct dl_conn *c, int wrote,
		    const struct dl_io *io, size_t off, size_t n);

/* exchange_write_begin / exchange_write_end - around a write on c, from
 * before its system call to after its exchange_moved: a thread reading
 * the answer meanwhile waits for the question to be accounted first.
 * begin returns 1 when it marked c (a connection whose exchanges may be
 * followed), and only then is end called. */
int exchange_write_begin(struct dl_conn *c);
void exchange_write_end(struct dl_conn *c);

/* ---- connect.c ------------------------------------------------------- */

/* connect_write - a write on c while it is connecting: the one that
 * makes a TCP Fast Open handshake, or waits for a pending one.  Bounded
 * by the connect deadline, which it leaves armed until the handshake is
 * done; began: this call started the connection (sendto MSG_FASTOPEN).
 * Returns what the kernel's blocking or non-blocking call would. */
ssize_t connect_write(int fd, struct dl_conn *c, struct dl_io *io, int began);

/* ---- track.c ---------------------------------------------------------- */

/* Bumped at every fork, in parent and child.  O_NONBLOCK lives on the
 * open file, which a fork shares: what the shim learnt of it before may
 * be changed by the other process at any time since. */
extern uint16_t track_fork_epoch;

/* The fork epoch now.  Every read goes through here: a fork on another
 * thread bumps it at any time (atfork handlers), so a plain read would
 * be a data race. */
static inline uint16_t track_epoch_now(void)
{
	return __atomic_load_n(&track_fork_epoch, __ATOMIC_RELAXED);
}

/* track_shared - nonzero when c's open file may be used through another
 * number or by another process (dup, fork): then nothing cached about
 * the file is trusted.  An entry from before a fork becomes shared. */
static inline int track_shared(struct dl_conn *c)
{
	uint32_t st = conn_state(c);

	if (__builtin_expect(CONN_LOAD(c->nb_epoch) != track_epoch_now() &&
			     !(st & CONN_SHARED), 0)) {
		__atomic_fetch_or(&c->st, CONN_SHARED, __ATOMIC_ACQ_REL);
		return 1;
	}
	return (st & CONN_SHARED) != 0;
}

/* Does the program see fd as non-blocking?  *flp: the file's flags. */
int track_app_nonblocking(int fd, struct dl_conn *c, int *flp);
/* Is fd a TCP socket over IPv4/IPv6? */
int track_sock_is_tcp(int fd);
/* fd's inode number, 0 if unknown. */
uint64_t track_inode_of(int fd);
/* track_cold_clear - fd's cold entry (fdtab.h) says nothing any more. */
void track_cold_clear(int fd);

#endif
