/* inject_int.h - what the fault injection files share; not API.
 *
 * inject.h is the API (the engine's and the wait wrappers' hooks).  Behind
 * it the run-time injection is split by job:
 *   inject.c       state, loading (DEADLINE_FAULTS, DEADLINE_SEED, dry
 *                  run), connection and lookup numbers, which fault groups
 *                  match a connection, the per-fd table (attach, dup, has),
 *                  dns faults;
 *   inject_io.c    what a connection's calls meet: connect, reads and
 *                  writes (latency, bandwidth, slice, error, blackhole),
 *                  its end (reset, eof), close (slow_close); one log line
 *                  per injected fault;
 *   inject_wait.c  what the program's poll/select/epoll may see: events
 *                  hidden while a fault holds a call back, hangups hidden
 *                  behind cut-short reads, and the epoll registrations
 *                  masked and restored to match.
 *
 * Contract for everything declared here:
 *   - internal to shim/inject*.c: the engine and the wrappers use inject.h;
 *     shared are the state I, struct fault_conn and the fc_ functions on
 *     it, and ereg_forget; everything else stays static;
 *   - an entry is used only between fc_lock() and fc_unlock(), never two
 *     entries at once; its mutex is a leaf lock as far as the engine goes
 *     (no engine lock is taken under it).  The epoll registry's lock
 *     (inject_wait.c) is taken before an entry's, never under one;
 *   - every lock is taken with self_lock()/self_unlock() (self.h), so a
 *     signal arriving meanwhile is deferred instead of re-entering;
 *   - the fc_ functions below may change errno (a reset is sent with
 *     real calls); the API calls that promise to keep it save it.
 */
#ifndef DL_INJECT_INT_H
#define DL_INJECT_INT_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>

#include "conf.h"
#include "fault.h"
#include "inject.h"
#include "names.h"
#include "self.h"

#define INJ_MAX_SPECS 16
#define NDIR 3 /* indexed by enum fault_dir: [FDIR_UP], [FDIR_DOWN] */
_Static_assert(FK_COUNT <= 16, "fault_conn.once holds a bit per kind");

/* ---- inject.c: state -------------------------------------------------- */

struct inject_state {
	struct conf specs;	/* DEADLINE_FAULTS, one rule per spec */
	int have_specs;
	uint64_t seed;
	const char *seed_from;	/* "env", "config" or "random" */
	int dry;
	_Atomic int nactive;
	int64_t t0;		/* process start, for dns windows */
};

extern struct inject_state I;

/* One connection's fault state: an entry of the table indexed by fd
 * number (inject.c), reused after. */
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
	uint64_t op;		/* calls that moved data or met a fault */
	uint64_t bytes[NDIR];
	/* Injected failures (error, spurious) at the current offset,
	 * bytes[dir]: the retry count of the per-call decisions there. */
	uint32_t tries[NDIR];
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

/* fc_lock - the entry for fd if it carries fault state for the socket
 * the number holds now; locked.  NULL otherwise. */
struct fault_conn *fc_lock(int fd);

static inline void fc_unlock(struct fault_conn *fc)
{
	self_unlock(&fc->mu);
}

/* ---- inject_io.c: the state a connection's calls move on -------------- */

/* fc_check_end - fire the reset/eof groups whose triggers hold now; *wake
 * (if given) is lowered to when a time trigger opens.  Returns how the
 * connection ended (0 = it goes on). */
int fc_check_end(struct fault_conn *fc, int64_t *wake);
/* fc_check_blackhole - blackholed data: decided per connection when its
 * window opens. */
void fc_check_blackhole(struct fault_conn *fc, int64_t now);
/* fc_check_bh_then - the blackhole's `then` is due: end the connection as
 * it says. */
void fc_check_bh_then(struct fault_conn *fc, int64_t now);
/* fc_cont_on - slice or bandwidth group i acts with kind k on calls in
 * dir now (whether it is on for the connection is rolled once). */
int fc_cont_on(struct fault_conn *fc, int i, enum fault_kind k, int dir);
/* fc_open_gate - start the latency gate of the current op in dir (data is
 * there); returns when the op may start (0 = no delay). */
int64_t fc_open_gate(struct fault_conn *fc, int dir, int64_t now);

/* ---- inject_wait.c: the epoll registry -------------------------------- */

/* ereg_forget - fd is closed: drop its registrations, and every
 * registration in it when it is an epoll set. */
void ereg_forget(int fd);

#endif
