/* wrap_signal.c - learn which handlers restart interrupted calls.
 *
 * The kernel restarts a blocking socket call after a handler installed
 * with SA_RESTART; the shim's private epoll wait never is restarted, so it
 * needs to know what the program asked for (see private_wait).
 */
#include <signal.h>

#include "engine.h"
#include "real.h"

static int do_sigaction(int sig, const struct sigaction *act,
			struct sigaction *old)
{
	int r = REAL(sigaction)(sig, act, old);

	if (r == 0 && act) {
		if (act->sa_handler == SIG_DFL || act->sa_handler == SIG_IGN)
			engine_on_sigaction(sig, -1);
		else
			engine_on_sigaction(sig,
					    (act->sa_flags & SA_RESTART) != 0);
	}
	return r;
}

DL_EXPORT int sigaction(int sig, const struct sigaction *act,
			struct sigaction *old)
{
	return do_sigaction(sig, act, old);
}

/* glibc's signal() has BSD semantics: SA_RESTART. */
static sighandler_t do_signal(int sig, sighandler_t h)
{
	sighandler_t r = REAL(signal)(sig, h);

	if (r != SIG_ERR)
		engine_on_sigaction(sig, (h == SIG_DFL || h == SIG_IGN) ? -1 : 1);
	return r;
}

DL_EXPORT sighandler_t signal(int sig, sighandler_t h)
{
	return do_signal(sig, h);
}
