/* clock.h - the shim's one clock: CLOCK_MONOTONIC in nanoseconds.
 *
 * A leaf module: it includes nothing of the shim, so every other module
 * (engine, injector, wrappers) may use it without importing the engine.
 * Every function here is async-signal-safe and leaves errno untouched
 * except where it says otherwise.
 */
#ifndef DL_CLOCK_H
#define DL_CLOCK_H

#include <errno.h>
#include <stdint.h>
#include <time.h>

#define CLOCK_NS_PER_SEC 1000000000ll
#define CLOCK_NS_PER_MS 1000000ll

/* clock_now - monotonic time, ns. */
static inline int64_t clock_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * CLOCK_NS_PER_SEC + ts.tv_nsec;
}

/* clock_ts - an absolute time in ns as a timespec. */
static inline struct timespec clock_ts(int64_t ns)
{
	struct timespec ts = { (time_t)(ns / CLOCK_NS_PER_SEC),
			       (long)(ns % CLOCK_NS_PER_SEC) };

	return ts;
}

/* clock_sleep_until - sleep until the monotonic time t (ns), through any
 * signal handlers (EINTR resumes the sleep).  errno is preserved. */
static inline void clock_sleep_until(int64_t t)
{
	struct timespec ts = clock_ts(t);
	int saved = errno;

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, 0) == EINTR)
		;
	errno = saved;
}

#endif
