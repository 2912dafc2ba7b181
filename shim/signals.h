/* signals.h - the program's signal handlers, run through one trampoline.
 *
 * Every handler the program installs for an asynchronous signal (through
 * sigaction, signal, sysv_signal, siginterrupt, bsd_signal) runs through
 * a trampoline of the shim's; sigaction() still reports the program's own
 * handler and flags.  The trampoline
 *  - notes, per thread, that a handler without SA_RESTART ran, so that an
 *    interrupted private wait ends with EINTR exactly when the kernel's
 *    blocking call would (signal(7));
 *  - defers the handler while its thread holds one of the shim's locks
 *    (it runs when the lock is released), so a handler that calls write()
 *    or close() never deadlocks on the shim;
 *  - gives back the thread's place in a private wait before the handler
 *    runs (and takes it again if the handler returns), so a handler that
 *    leaves by siglongjmp leaves nothing counted behind.
 * Synchronous signals (SIGSEGV, SIGBUS, ...) are never touched.
 */
#ifndef DL_SIGNALS_H
#define DL_SIGNALS_H

#include <signal.h>

/* sig_action - sigaction() as the program asked, through the trampoline.
 * Same return value and errno as sigaction. */
int sig_action(int sig, const struct sigaction *act, struct sigaction *old);

/* The BSD and System V installers, as glibc defines them, through
 * sig_action: signal (SA_RESTART unless siginterrupt said otherwise),
 * sysv_signal (SA_RESETHAND | SA_NODEFER), siginterrupt. */
sighandler_t sig_signal(int sig, sighandler_t h);
sighandler_t sig_sysv_signal(int sig, sighandler_t h);
int sig_interrupt(int sig, int flag);

/* Call before a private wait; after EINTR, sig_interrupted_norestart()
 * says whether a handler without SA_RESTART ran meanwhile. */
void sig_wait_begin(void);
int sig_interrupted_norestart(void);

/* sig_run_deferred - run the handlers deferred while the calling thread
 * held a shim lock; called when it releases its last one. */
void sig_run_deferred(void);

#endif
