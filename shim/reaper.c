/* reaper.c - deadlines on time for waits that are already in progress.
 *
 * A wait computes its end when it starts: the program's poll, select or
 * epoll_wait is cut at the earliest deadline armed at that moment
 * (wrap_wait.c).  In a single-threaded program nothing can arm an earlier
 * one while it waits.  In a threaded one another thread can: a Java NIO
 * selector thread sits in epoll_wait while an executor thread writes the
 * request that starts the first-byte deadline.  Nothing would end that
 * wait at the deadline.
 *
 * So, in a threaded process only, one thread of the shim's ("dl-reaper",
 * started the first time a deadline becomes the earliest while the
 * process has more than one thread) sleeps until the earliest deadline
 * and tears down what is due then.  A torn-down socket reports HUP|ERR in
 * every wait that includes it, in any thread: the kernel wakes the
 * program's own wait, with nothing added to what the program waits on.
 * A wait that does not include the socket is not disturbed.
 *
 * Costs: none in a single-threaded process (__libc_single_threaded) and
 * none while no deadline is armed.  Otherwise a futex wake when a
 * deadline becomes earlier than the one the reaper sleeps until; no
 * descriptor.  The reaper blocks every signal, so no signal meant for the
 * program is ever delivered to it.  A fork child has no reaper; it starts
 * its own when it needs one.
 */
#include "engine_int.h"

#include <errno.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/single_threaded.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The futex word the reaper sleeps on: bumped to wake it. */
static uint32_t reaper_seq;
/* What the reaper does: REAPER_AWAKE while it works, else asleep until
 * that time (0: with nothing armed, until woken). */
#define REAPER_AWAKE (-1)
static int64_t reaper_until = REAPER_AWAKE;
/* 0 not started, 1 started (or starting). */
static int reaper_started;

static void *reaper_main(void *arg)
{
	(void)arg;
	for (;;) {
		uint32_t seq = __atomic_load_n(&reaper_seq, __ATOMIC_SEQ_CST);
		int64_t next;
		struct timespec ts;

		__atomic_store_n(&reaper_until, REAPER_AWAKE, __ATOMIC_SEQ_CST);
		next = engine_expire_due(clock_now());
		__atomic_store_n(&reaper_until, next, __ATOMIC_SEQ_CST);
		/* A kick after the load above: look again, do not sleep. */
		if (__atomic_load_n(&reaper_seq, __ATOMIC_SEQ_CST) != seq)
			continue;
		if (next)
			ts = clock_ts(next);
		/* Absolute CLOCK_MONOTONIC (no FUTEX_CLOCK_REALTIME). */
		syscall(SYS_futex, &reaper_seq,
			FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, seq,
			next ? &ts : NULL, NULL, FUTEX_BITSET_MATCH_ANY);
	}
	return NULL;
}

static void reaper_start(void)
{
	pthread_attr_t at;
	pthread_t t;
	sigset_t all, old;
	int saved = errno;

	if (__atomic_exchange_n(&reaper_started, 1, __ATOMIC_ACQ_REL))
		return;
	/* Born with every signal blocked: it never takes one of the
	 * program's. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_attr_init(&at) == 0) {
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		/* Room for a batch of expiries and their log lines, with
		 * sanitizer redzones. */
		pthread_attr_setstacksize(&at, 256 * 1024);
		if (pthread_create(&t, &at, reaper_main, NULL) == 0)
			pthread_setname_np(t, "dl-reaper");
		else
			__atomic_store_n(&reaper_started, 0, __ATOMIC_RELEASE);
		pthread_attr_destroy(&at);
	} else {
		__atomic_store_n(&reaper_started, 0, __ATOMIC_RELEASE);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = saved;
}

void reaper_note(int64_t before, int64_t after)
{
	int64_t until;

	/* Only a deadline that became the earliest matters, and only
	 * where another thread can be waiting meanwhile. */
	if (!after || (before && after >= before) || __libc_single_threaded)
		return;
	if (!__atomic_load_n(&reaper_started, __ATOMIC_ACQUIRE)) {
		/* pthread_create is not async-signal-safe: not from a
		 * handler (a later deadline starts it), nor while this
		 * thread holds a lock of the shim's. */
		if (dl_self.in_handler || dl_self.locks)
			return;
		reaper_start();
		return; /* it looks at the heap first thing */
	}
	until = __atomic_load_n(&reaper_until, __ATOMIC_SEQ_CST);
	if (until > 0 && after >= until)
		return; /* it wakes up in time for it anyway */
	__atomic_fetch_add(&reaper_seq, 1, __ATOMIC_SEQ_CST);
	if (until != REAPER_AWAKE)
		syscall(SYS_futex, &reaper_seq, FUTEX_WAKE | FUTEX_PRIVATE_FLAG,
			1, NULL, NULL, 0);
}

void reaper_atfork_child(void)
{
	reaper_started = 0;
	reaper_until = REAPER_AWAKE;
	reaper_seq = 0;
}
