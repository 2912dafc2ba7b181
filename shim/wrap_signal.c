/* wrap_signal.c - sigaction and signal, so that the shim knows whether an
 * interrupted wait is to be restarted (see signals.h). */
#include <signal.h>

#include "real.h"
#include "signals.h"

DL_EXPORT int sigaction(int sig, const struct sigaction *act,
			struct sigaction *old)
{
	return sig_action(sig, act, old);
}

DL_EXPORT sighandler_t signal(int sig, sighandler_t h)
{
	return sig_signal(sig, h);
}
