/* signals.c - SA_RESTART bookkeeping (see signals.h). */
#include "signals.h"

#include <errno.h>
#include <string.h>

#include "real.h"

#define NSIG_MAX 65

/* The program's own handler for signals we trampoline. */
struct app_handler {
	int active; /* our trampoline is installed for this signal */
	int siginfo; /* the program asked for SA_SIGINFO */
	void (*handler)(int);
	void (*action)(int, siginfo_t *, void *);
};

static struct app_handler app[NSIG_MAX];
static __thread volatile sig_atomic_t norestart_ran
	__attribute__((tls_model("initial-exec")));

static void trampoline(int sig, siginfo_t *si, void *ctx)
{
	int saved = errno;
	const struct app_handler *h;

	norestart_ran = 1;
	if (sig <= 0 || sig >= NSIG_MAX)
		return;
	h = &app[sig];
	errno = saved;
	if (h->siginfo && h->action)
		h->action(sig, si, ctx);
	else if (!h->siginfo && h->handler)
		h->handler(sig);
}

/* Synchronous signals come from a fault in the thread itself and cannot
 * interrupt a wait; crash handlers (ASan's among them) stay untouched. */
static int asynchronous(int sig)
{
	return sig != SIGSEGV && sig != SIGBUS && sig != SIGFPE &&
	       sig != SIGILL && sig != SIGTRAP && sig != SIGSYS &&
	       sig > 0 && sig < NSIG_MAX;
}

static int wants_trampoline(int sig, const struct sigaction *act)
{
	return act && asynchronous(sig) && act->sa_handler != SIG_DFL &&
	       act->sa_handler != SIG_IGN && !(act->sa_flags & SA_RESTART) &&
	       !(act->sa_flags & SA_RESETHAND);
}

/* Put the program's handler back into what the kernel reported. */
static void report_app(struct sigaction *old, const struct app_handler *prev)
{
	if (!old || !prev->active || old->sa_sigaction != trampoline)
		return;
	if (prev->siginfo) {
		old->sa_sigaction = prev->action;
	} else {
		old->sa_handler = prev->handler;
		old->sa_flags &= ~SA_SIGINFO;
	}
}

int sig_action(int sig, const struct sigaction *act, struct sigaction *old)
{
	struct app_handler prev;
	struct sigaction mine;
	int r;

	if (sig <= 0 || sig >= NSIG_MAX)
		return REAL(sigaction)(sig, act, old);
	prev = app[sig];
	if (!wants_trampoline(sig, act)) {
		r = REAL(sigaction)(sig, act, old);
		if (r == 0) {
			report_app(old, &prev);
			if (act)
				app[sig].active = 0;
		}
		return r;
	}
	/* Record the program's handler before the trampoline can run. */
	app[sig].siginfo = (act->sa_flags & SA_SIGINFO) != 0;
	app[sig].handler = act->sa_handler;
	app[sig].action = act->sa_sigaction;
	mine = *act;
	mine.sa_sigaction = trampoline;
	mine.sa_flags |= SA_SIGINFO;
	r = REAL(sigaction)(sig, &mine, old);
	if (r == 0) {
		app[sig].active = 1;
		report_app(old, &prev);
	} else {
		app[sig] = prev;
	}
	return r;
}

/* The same handler slot read as the one-argument kind (struct sigaction
 * keeps both in a union; signal() speaks only that kind). */
static sighandler_t as_handler(void (*action)(int, siginfo_t *, void *))
{
	struct sigaction t;

	memset(&t, 0, sizeof(t));
	t.sa_sigaction = action;
	return t.sa_handler;
}

sighandler_t sig_signal(int sig, sighandler_t h)
{
	sighandler_t r;
	struct app_handler prev;

	if (sig <= 0 || sig >= NSIG_MAX)
		return REAL(signal)(sig, h);
	prev = app[sig];
	r = REAL(signal)(sig, h);
	if (r == SIG_ERR)
		return r;
	app[sig].active = 0;
	if (prev.active && r == as_handler(trampoline))
		r = prev.siginfo ? as_handler(prev.action) : prev.handler;
	return r;
}

void sig_wait_begin(void)
{
	norestart_ran = 0;
}

int sig_interrupted_norestart(void)
{
	return norestart_ran != 0;
}
