/* signals.c - the trampoline for the program's handlers (see signals.h). */
#include "signals.h"

#include <errno.h>
#include <string.h>

#include "conn.h"
#include "real.h"
#include "self.h"

#define NSIG_MAX 65

/* The program's own handler for signals we trampoline. */
struct app_handler {
	int active; /* our trampoline is installed for this signal */
	int siginfo; /* the program asked for SA_SIGINFO */
	int restart; /* ... and SA_RESTART */
	int flags; /* its sa_flags */
	sigset_t mask; /* its sa_mask */
	void (*handler)(int);
	void (*action)(int, siginfo_t *, void *);
};

static struct app_handler app[NSIG_MAX];
static sigset_t sigintr; /* siginterrupt(sig, 1) was called */
static __thread volatile sig_atomic_t norestart_ran
	__attribute__((tls_model("initial-exec")));

static void call_app(const struct app_handler *h, int sig, siginfo_t *si,
		     void *ctx)
{
	if (h->siginfo && h->action)
		h->action(sig, si, ctx);
	else if (!h->siginfo && h->handler)
		h->handler(sig);
}

static void trampoline(int sig, siginfo_t *si, void *ctx)
{
	int saved = errno;
	struct app_handler h;
	struct self_wait outer;

	if (sig <= 0 || sig >= NSIG_MAX)
		return;
	h = app[sig];
	if (!h.restart)
		norestart_ran = 1;
	if (dl_self.vfork_child) {
		/* A vfork child's handler: the state is the parent's. */
		call_app(&h, sig, si, ctx);
		errno = saved;
		return;
	}
	if (dl_self.locks) {
		/* The thread is inside the shim's locked section: the
		 * handler runs when the lock is released (a standard signal
		 * pending twice is delivered once, as by the kernel). */
		int n = dl_self.npend;

		for (int i = 0; i < n; i++)
			if (dl_self.pend[i].sig == sig && sig < SIGRTMIN)
				n = -1;
		if (n >= 0 && n < SELF_PENDING_MAX) {
			dl_self.pend[n].sig = sig;
			if (si)
				dl_self.pend[n].si = *si;
			else
				memset(&dl_self.pend[n].si, 0, sizeof(*si));
			__atomic_signal_fence(__ATOMIC_SEQ_CST);
			dl_self.npend = n + 1;
		}
		errno = saved;
		return;
	}
	/* A wait this thread is counted in is given back while the handler
	 * runs: if it leaves by siglongjmp, nothing stays counted. */
	outer = dl_self.w;
	if (outer.wait_c) {
		dl_self.w.wait_c = 0;
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		conn_wait_leave(outer.wait_c, outer.wait_gen);
	}
	dl_self.w.hold_fd = -1;
	dl_self.w.fault_wake = 0;
	errno = saved;
	dl_self.in_handler++;
	call_app(&h, sig, si, ctx);
	dl_self.in_handler--;
	saved = errno;
	/* The handler returned: the interrupted call carries on as it was
	 * (if its fd was closed meanwhile, its wait sees the new
	 * generation and is no longer counted). */
	if (outer.wait_c && !conn_wait_enter(outer.wait_c, outer.wait_gen))
		outer.wait_c = 0;
	dl_self.w = outer;
	errno = saved;
}

void sig_run_deferred(void)
{
	int saved = errno;

	while (dl_self.npend > 0 && !dl_self.locks) {
		int sig = dl_self.pend[0].sig;
		siginfo_t si = dl_self.pend[0].si;
		struct app_handler h = app[sig];
		sigset_t block, old;

		for (int i = 1; i < dl_self.npend; i++)
			dl_self.pend[i - 1] = dl_self.pend[i];
		dl_self.npend--;
		if (!h.active)
			continue; /* the program changed the disposition */
		if (!h.restart)
			dl_self.intr = 1;
		/* As the kernel runs it: its mask, and the signal itself
		 * blocked unless SA_NODEFER. */
		block = h.mask;
		if (!(h.flags & SA_NODEFER))
			sigaddset(&block, sig);
		pthread_sigmask(SIG_BLOCK, &block, &old);
		call_app(&h, sig, &si, 0);
		pthread_sigmask(SIG_SETMASK, &old, 0);
	}
	errno = saved;
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
	       act->sa_handler != SIG_IGN;
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

	if (sig <= 0 || sig >= NSIG_MAX || self_outside()) {
		/* A vfork child's dispositions are its own, but the table
		 * here is its parent's: leave it alone. */
		r = REAL(sigaction)(sig, act, old);
		if (r == 0 && sig > 0 && sig < NSIG_MAX)
			report_app(old, &app[sig]);
		return r;
	}
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
	self_deferred_hook = sig_run_deferred;
	/* Record the program's handler before the trampoline can run. */
	app[sig].siginfo = (act->sa_flags & SA_SIGINFO) != 0;
	app[sig].restart = (act->sa_flags & SA_RESTART) != 0;
	app[sig].flags = act->sa_flags;
	app[sig].mask = act->sa_mask;
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

/* A handler installed the way glibc's one-call installers do: the
 * previous handler is returned, SIG_ERR with errno on failure. */
static sighandler_t install(int sig, sighandler_t h, int block_self, int flags)
{
	struct sigaction act, oact;

	if (h == SIG_ERR || sig <= 0 || sig >= NSIG_MAX) {
		errno = EINVAL;
		return SIG_ERR;
	}
	memset(&act, 0, sizeof(act));
	act.sa_handler = h;
	sigemptyset(&act.sa_mask);
	if (block_self)
		sigaddset(&act.sa_mask, sig);
	act.sa_flags = flags;
	if (sig_action(sig, &act, &oact) < 0)
		return SIG_ERR;
	return oact.sa_handler;
}

/* What glibc's signal() installs: the handler with only the signal itself
 * blocked, SA_RESTART unless siginterrupt(sig, 1) was called. */
sighandler_t sig_signal(int sig, sighandler_t h)
{
	int intr = sig > 0 && sig < NSIG_MAX && sigismember(&sigintr, sig);

	return install(sig, h, 1, intr ? 0 : SA_RESTART);
}

/* What glibc's sysv_signal() installs: one-shot, not deferred, not
 * restarted. */
sighandler_t sig_sysv_signal(int sig, sighandler_t h)
{
	return install(sig, h, 0, SA_RESETHAND | SA_NODEFER);
}

/* glibc's siginterrupt(): flips SA_RESTART of the installed handler and
 * remembers the choice for later signal() calls. */
int sig_interrupt(int sig, int flag)
{
	struct sigaction act;

	if (sig <= 0 || sig >= NSIG_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (sig_action(sig, 0, &act) < 0)
		return -1;
	if (flag) {
		if (!self_outside())
			sigaddset(&sigintr, sig);
		act.sa_flags &= ~SA_RESTART;
	} else {
		if (!self_outside())
			sigdelset(&sigintr, sig);
		act.sa_flags |= SA_RESTART;
	}
	return sig_action(sig, &act, 0);
}

void sig_wait_begin(void)
{
	norestart_ran = 0;
}

int sig_interrupted_norestart(void)
{
	return norestart_ran != 0;
}
