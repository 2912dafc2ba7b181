/* ticks.c - dating tcp_info's ages on the kernel's tick grid (ticks.h). */
#include "ticks.h"

#define NS_PER_SEC 1000000000ll
#define NS_PER_MS 1000000ll

/* The kernel's TICK_NSEC for hz. */
static int64_t tick_of(int hz)
{
	return (NS_PER_SEC + hz / 2) / hz;
}

/* x mod m in [0, m). */
static int64_t mod(int64_t x, int64_t m)
{
	int64_t r = x % m;

	return r < 0 ? r + m : r;
}

/* Whether every boundary lies within TICKS_TIGHT_NS of lo[0]'s grid. */
static int on_grid(const int64_t *lo, size_t n, int64_t tick)
{
	for (size_t i = 1; i < n; i++) {
		int64_t r = mod(lo[i] - lo[0], tick);

		if (r > TICKS_TIGHT_NS && tick - r > TICKS_TIGHT_NS)
			return 0;
	}
	return 1;
}

int ticks_fit(struct ticks *tk, const int64_t *lo, size_t n,
	      uint32_t step_ms)
{
	/* The largest ms step of an age: 1000/HZ rounded up. */
	static const struct { int hz; uint32_t step_ms; } cand[] = {
		{ 1000, 1 }, { 300, 4 }, { 250, 4 }, { 100, 10 },
	};
	int64_t tick, min_off;

	tk->hz = 0;
	tk->phase_ns = 0;
	/* Without the phase: the step when it is one HZ gives whole (a
	 * 3 ms step may be HZ=300's 3.3 ms), else the coarsest tick. */
	tk->tick_ns = step_ms == 1 || step_ms == 4 || step_ms == 10
			      ? step_ms * NS_PER_MS : 10 * NS_PER_MS;
	if (n < 3)
		return 0;
	for (size_t c = 0; c < sizeof(cand) / sizeof(cand[0]); c++) {
		if (cand[c].step_ms != step_ms ||
		    !on_grid(lo, n, tick_of(cand[c].hz)))
			continue;
		tk->hz = cand[c].hz;
		break;
	}
	if (!tk->hz)
		return 0;
	tick = tick_of(tk->hz);
	/* The earliest of the boundaries, folded onto lo[0]'s tick: each
	 * lower end is no later than its boundary. */
	min_off = 0;
	for (size_t i = 1; i < n; i++) {
		int64_t r = mod(lo[i] - lo[0], tick);

		if (r > tick / 2)
			r -= tick;
		if (r < min_off)
			min_off = r;
	}
	tk->tick_ns = tick;
	tk->phase_ns = lo[0] + min_off - TICKS_EARLY_NS;
	return 1;
}

int64_t ticks_ago(const struct ticks *tk, int64_t now, uint32_t age_ms)
{
	int64_t start, ticks;

	if (!tk->hz)
		return now - (int64_t)age_ms * NS_PER_MS + tk->tick_ns;
	/* The reply was computed in the tick that began at start, or in
	 * an earlier one (which only dates later); the age, rounded up to
	 * ms, is that many whole ticks (floor); the event's tick ended
	 * ticks - 1 ticks after start's, TICKS_LATE_NS counted. */
	start = now - mod(now - tk->phase_ns, tk->tick_ns);
	ticks = (int64_t)age_ms * tk->hz / 1000;
	return start - (ticks - 1) * tk->tick_ns + TICKS_LATE_NS;
}
