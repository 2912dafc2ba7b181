/* signals.h - did a handler without SA_RESTART interrupt our wait?
 *
 * The kernel restarts a blocking socket call interrupted by a handler
 * installed with SA_RESTART and fails it with EINTR otherwise; the shim's
 * private epoll wait is never restarted by the kernel, so the shim must
 * know which kind of handler ran.  Handlers the program installs without
 * SA_RESTART (for asynchronous signals) are run through a trampoline that
 * notes, per thread, that one ran; sigaction() still reports the
 * program's own handler.
 */
#ifndef DL_SIGNALS_H
#define DL_SIGNALS_H

#include <signal.h>

/* sig_action - sigaction() as the program asked, trampolining handlers
 * without SA_RESTART.  Same return value and errno as sigaction. */
int sig_action(int sig, const struct sigaction *act, struct sigaction *old);

/* sig_signal - signal() (BSD semantics: SA_RESTART, so no trampoline);
 * reports the program's handler where a trampoline was installed. */
sighandler_t sig_signal(int sig, sighandler_t h);

/* Call before a private wait; after EINTR, sig_interrupted_norestart()
 * says whether a handler without SA_RESTART ran meanwhile. */
void sig_wait_begin(void);
int sig_interrupted_norestart(void);

#endif
