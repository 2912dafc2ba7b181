/* self.h - what the calling thread is doing with the shim: the state that
 * host-process safety turns on.  A leaf module (plain TLS, no calls into
 * the shim), read by the wrappers' gate, the engine and the signal
 * trampoline.
 *
 * Three classes of hazard are decided here, once, for every wrapper:
 *  - a vfork child (or a clone(CLONE_VM) child) runs on the parent's
 *    memory: nothing it runs through a wrapper may change the shim's state,
 *    so the gate sends all its calls straight to libc (self_outside);
 *  - a signal handler that re-enters the shim while its thread holds one
 *    of the shim's locks would deadlock: the trampoline defers such a
 *    handler until the lock is released (self.locks, self.npend);
 *  - a non-local exit (siglongjmp from a handler, pthread_cancel) out of a
 *    private wait must not leave the wait counted: the count is held only
 *    while the thread is blocked in the kernel, and the trampoline and a
 *    cancellation cleanup give it back (self.w.wait_c).
 */
#ifndef DL_SELF_H
#define DL_SELF_H

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>
#include <unistd.h>

struct dl_conn;

#define SELF_PENDING_MAX 4

/* What the thread's call in progress keeps about its waits: a signal
 * handler that re-enters the shim runs with a fresh one, and the
 * interrupted call gets its own back when the handler returns. */
struct self_wait {
	/* The private wait this thread is counted in (conn_wait_enter). */
	struct dl_conn *wait_c;
	uint32_t wait_gen;
	uint32_t last_events; /* what the last private wait reported (POLL*) */
	int hold_fd, hold_of; /* an orphaned call of this thread: its hold,
			       * and the program's fd it stands for */
	int64_t fault_wake; /* a timed fault is due then: end waits by it */
};

struct dl_self {
	int vfork_child; /* set across vfork(): in the child it stays set */
	int locks; /* shim locks this thread holds */
	int intr; /* a deferred handler without SA_RESTART ran: the next
		   * private wait ends with EINTR, as the kernel's would */
	int npend; /* handlers deferred while a lock was held */
	struct {
		int sig;
		siginfo_t si;
	} pend[SELF_PENDING_MAX];
	struct self_wait w; /* the call in progress (saved by the trampoline) */
	int in_handler; /* signal handlers of the program's running (nested);
			 * one left by siglongjmp stays counted */
};

extern __thread struct dl_self dl_self __attribute__((tls_model("initial-exec")));

/* The gate's one word, nonzero while some thread may be outside:
 * SELF_GATE_VM_CLONE once a clone(CLONE_VM) child (not a thread) was made
 * (such a child shares memory but not the TLS flag, so the gate asks for
 * the pid from then on), plus SELF_GATE_VFORK per vfork() in progress. */
#define SELF_GATE_VM_CLONE 1
#define SELF_GATE_VFORK 2
extern int self_gate;
extern pid_t self_pid; /* this process (set at start and in fork children) */

/* self_outside_slow - self_outside when the gate word is set. */
int self_outside_slow(void) __attribute__((noinline, cold));

/* self_gate_clear - no thread can be outside: the one load of the hot
 * wrappers, which leave the rest to self_outside out of line. */
static inline int self_gate_clear(void)
{
	return !__atomic_load_n(&self_gate, __ATOMIC_RELAXED);
}

/* self_outside - nonzero when the calling thread must not touch the
 * shim's state at all: it is a vfork or clone(CLONE_VM) child running on
 * its parent's memory.  One load while no such child was ever made. */
static inline int self_outside(void)
{
	if (__builtin_expect(!self_gate_clear(), 0))
		return self_outside_slow();
	return 0;
}

/* Run when a thread releases its last shim lock with handlers deferred
 * (set by the signal layer; NULL where there is none, as in unit tests). */
extern void (*self_deferred_hook)(void);

/* self_lock / self_unlock - every lock of the shim's, counted so that the
 * signal trampoline defers a handler arriving meanwhile (a handler that
 * re-entered the shim could wait for the very lock its thread holds). */
static inline void self_lock(pthread_mutex_t *m)
{
	dl_self.locks++;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	pthread_mutex_lock(m);
}

static inline void self_unlock(pthread_mutex_t *m)
{
	pthread_mutex_unlock(m);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (!--dl_self.locks && __builtin_expect(dl_self.npend, 0) &&
	    self_deferred_hook)
		self_deferred_hook();
}

#endif
