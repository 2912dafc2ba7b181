/* inject.h - fault injection at run time: the engine's hooks.
 *
 * fault.c decides; this module keeps the per-connection fault state, asks
 * for decisions at the right moments, logs every injected fault, and
 * tells the engine and the wait wrappers what to do: fail a call, wait
 * until a time, move at most N bytes, or hide an fd's readiness from the
 * program's poll/select/epoll until a delay has passed (so that an event
 * loop is never put to sleep).  Nothing here runs unless some fault is
 * configured (inject_on).
 */
#ifndef DL_INJECT_H
#define DL_INJECT_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "conf.h"

/* Nonzero when some fault is configured (file or DEADLINE_FAULTS).  It
 * may turn on while the program runs (a reload that brings the first
 * fault groups): read with acquire, so that whoever sees it on sees the
 * injector's state set up (a plain load on x86). */
extern int inject_on_flag;
#define inject_on (__atomic_load_n(&inject_on_flag, __ATOMIC_ACQUIRE))

/* inject_load - read DEADLINE_FAULTS, DEADLINE_SEED and
 * DEADLINE_FAULTS_DRY_RUN; file is the loaded configuration (its seed and
 * whether any rule has faults).  When faults are configured, arms the
 * faults line (inject_announce).  Returns -1 when DEADLINE_FAULTS is malformed (reported),
 * else 0. */
int inject_load(const struct conf *file);

/* inject_reload - a reloaded configuration: if the program started with
 * no fault group and file has some, set the injector up as at start
 * (DEADLINE_SEED, the file's seed, or a random one) and turn it on, for
 * connections started from now on.  Called by one thread at a time. */
void inject_reload(const struct conf *file);

/* The `event=faults` line (seed, where it came from, dry run) is logged
 * once per process, when the process tracks its first connection (or
 * meets its first dns fault), not at load: a process that never uses the
 * network says nothing.  A forked child logs its own when it tracks one.
 * inject_announce costs one relaxed atomic load once the line is out. */
extern int inject_unannounced;
void inject_announce_now(void);
static inline void inject_announce(void)
{
	if (__builtin_expect(__atomic_load_n(&inject_unannounced,
					     __ATOMIC_RELAXED), 0))
		inject_announce_now();
}

/* inject_atfork_child - in a fork()ed child: its first tracked connection
 * logs the faults line again (with the child's pid). */
void inject_atfork_child(void);

/* inject_spec_count - how many DEADLINE_FAULTS specs are in use. */
int inject_spec_count(void);

/* --- connections ---------------------------------------------------- */

/* inject_wants - nonzero when faults apply to a connection to/from addr
 * whose file rule is given (its faults and name); host is the learnt
 * name or NULL. */
int inject_wants(const struct conf_effective *rule, const char *host,
		 const struct sockaddr *addr, socklen_t len, int inbound);

/* inject_attach - set up fault state for fd (generation gen), same
 * arguments as inject_wants.  Returns 1 if fd now has fault state. */
int inject_attach(int fd, uint32_t gen, const struct conf_effective *rule,
		  const char *host, const struct sockaddr *addr,
		  socklen_t len, int inbound);

/* inject_dup - newfd (generation gen) is a copy of oldfd (dup family):
 * it gets oldfd's fault state as it stands, and goes on with it on its
 * own (its own counts of bytes and operations from here). */
void inject_dup(int oldfd, int newfd, uint32_t gen);

/* inject_has - fd carries fault state for generation gen. */
int inject_has(int fd, uint32_t gen);

/* inject_detach - the program closes fd (closing = 1), or the number is
 * reused.  Returns the slow_close delay to apply (ms; 0 = none), decided
 * and logged only when closing. */
uint32_t inject_detach(int fd, int closing);

/* --- connect -------------------------------------------------------- */

enum inj_connect {
	INJ_C_NONE = 0,	/* connect normally */
	INJ_C_DELAY,	/* blocking: wait until *until, then connect */
	INJ_C_FAIL,	/* blocking: wait until *until, then fail with *err */
	INJ_C_HIDDEN,	/* non-blocking: state set; return -1 EINPROGRESS
			 * (*err = 0: call the real connect first) */
};

/* inject_connect - what the connect attempt number `attempt` (0-based)
 * of fd meets.  nonblock: the program's socket is non-blocking (then the
 * state that hides the fd is set here).  *until = 0 means "forever"
 * (only a deadline ends it). */
enum inj_connect inject_connect(int fd, unsigned attempt, int nonblock,
				int64_t now, int64_t *until, int *err);

/* inject_connecting - fd's handshake is still hidden by a fault (delayed,
 * failing later, or blackholed): the connect deadline is not met yet. */
int inject_connecting(int fd);

/* inject_so_error - SO_ERROR for fd when an injected connect failure is
 * pending: 1 and *err (cleared, as the kernel does), else 0. */
int inject_so_error(int fd, int *err);

/* --- reads and writes ----------------------------------------------- */

enum inj_io {
	INJ_GO = 0,	/* transfer at most p->cap bytes (p->swallow: pretend
			 * the write went out) */
	INJ_FAIL,	/* fail with p->err */
	INJ_EOF,	/* a read returns 0 */
	INJ_WAIT,	/* not before p->until (0: until data is readable);
			 * a non-blocking call gets EAGAIN */
};

struct inj_plan {
	size_t cap;
	/* For MSG_PEEK: only a reset/eof point bounds it.  A peek moves
	 * nothing; cut short by slice or bandwidth, a program peeking for a
	 * whole header would spin forever. */
	size_t peek_cap;
	int sliced;	/* cap comes from `slice`: return the short count */
	int swallow;
	int err;
	int64_t until;
	int64_t wake;	/* a timed fault is due then: bound any wait by it */
};

/* inject_io - plan one attempt of a read (wrote = 0) or write on fd.
 * blocking: the call may wait (else waiting means EAGAIN and readiness is
 * hidden from the program's waits until the fault allows). */
enum inj_io inject_io(int fd, int wrote, int blocking, int64_t now,
		      struct inj_plan *p);

/* inject_io_done - n > 0 bytes moved (or were swallowed); cut: the
 * plan's cap made the call return less than it asked for. */
void inject_io_done(int fd, int wrote, size_t n, int cut);

/* --- the program's waits -------------------------------------------- */

#define INJ_HIDE_ALL 0x80000000u

/* inject_active - some connection has fault state now. */
int inject_active(void);

/* inject_hidden - events (POLLIN/POLLOUT bits, which equal EPOLLIN/
 * EPOLLOUT, or INJ_HIDE_ALL) the program must not see on fd at `now`,
 * after firing the timed faults that are due.  *next is lowered to when
 * that may change (0 = never). */
uint32_t inject_hidden(int fd, int64_t now, int64_t *next);

/* inject_observe - the program's wait found revents on fd: returns the
 * events to hide (a read delayed from when its data arrived starts now). */
uint32_t inject_observe(int fd, uint32_t revents, int64_t now, int64_t *next);

/* inject_hup_hidden - the hangup bits (POLLRDHUP|POLLHUP) to hide from
 * revents of a program waiting for `wanted` on fd: while reads are cut
 * short (slice, bandwidth) and unread bytes remain.  A program may take
 * a short read after a hangup for the end of the stream (haproxy does):
 * from the kernel that is true, from a sliced read it is not. */
uint32_t inject_hup_hidden(int fd, uint32_t revents, uint32_t wanted);

/* epoll: registrations are recorded while faults are configured, so that
 * hidden events can be masked in the program's own set (EPOLL_CTL_MOD or
 * DEL, restored when the fault allows). */
int inject_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
/* Apply masks due at now to epfd's registrations; returns when the next
 * change is due (ns, 0 = none). */
int64_t inject_epoll_prepare(int epfd, int64_t now);
/* Drop hidden events from ev[0..n); returns the new count; lowers *next. */
int inject_epoll_filter(int epfd, struct epoll_event *ev, int n, int64_t now,
			int64_t *next);

/* --- names ---------------------------------------------------------- */

/* inject_dns - a dns fault for node (rule matched by host): returns 0 to
 * resolve normally after *delay_ms, else an EAI_* code to return after
 * *delay_ms. */
int inject_dns(const char *node, const struct conf_effective *rule,
	       uint32_t *delay_ms);

#endif
