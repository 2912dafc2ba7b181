/* wrap_signal.c - every way a program installs a signal handler, so that
 * each one runs through the shim's trampoline (see signals.h). */
#include <signal.h>

#include "real.h"
#include "signals.h"

sighandler_t sysv_signal(int sig, sighandler_t h);
sighandler_t __sysv_signal(int sig, sighandler_t h);
sighandler_t bsd_signal(int sig, sighandler_t h);

DL_EXPORT int sigaction(int sig, const struct sigaction *act,
			struct sigaction *old)
{
	return sig_action(sig, act, old);
}

DL_EXPORT sighandler_t signal(int sig, sighandler_t h)
{
	return sig_signal(sig, h);
}

DL_EXPORT sighandler_t bsd_signal(int sig, sighandler_t h)
{
	return sig_signal(sig, h);
}

DL_EXPORT sighandler_t sysv_signal(int sig, sighandler_t h)
{
	return sig_sysv_signal(sig, h);
}

DL_EXPORT sighandler_t __sysv_signal(int sig, sighandler_t h)
{
	return sig_sysv_signal(sig, h);
}

DL_EXPORT int siginterrupt(int sig, int flag)
{
	return sig_interrupt(sig, flag);
}
