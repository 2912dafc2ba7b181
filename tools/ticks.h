/* ticks.h - dating what tcp_info says "N ms ago" (deadline --outside).
 *
 * The kernel keeps tcp_info's ages (last data sent, last data received,
 * a SYN timer's time left) in jiffies, HZ of them a second, and reports
 * them in whole ms rounded up.  An age therefore says which tick an event
 * fell in, not when in it.  The ticks fall on a fixed grid of
 * CLOCK_MONOTONIC (the tick timer runs on it, TICK_NSEC apart): once the
 * grid's phase is known, an event is dated to the end of its tick, at
 * most one tick late and never early.  Without the phase, the date is
 * "now minus the age, plus one tick": at most two ticks late.
 *
 * Plain arithmetic, unit-tested in tests/unit/test_ticks.c; outside.c
 * measures the boundaries on its probe connection and outside_track.c
 * dates with ticks_ago().
 */
#ifndef DL_TICKS_H
#define DL_TICKS_H

#include <stddef.h>
#include <stdint.h>

/* A tick boundary must be located at least this closely (between two
 * back-to-back reads) to count towards the phase. */
#define TICKS_TIGHT_NS 100000ll

/* Where the grid is put, against the boundaries seen: TICKS_EARLY_NS
 * before the earliest, so that the tick a reply was read in is never
 * taken for an earlier one; and the end of an event's tick is taken
 * TICKS_LATE_NS after the grid point, which covers the boundary's
 * location (TICKS_TIGHT_NS) and the tick interrupt's lateness (the
 * kernel bumps jiffies in it, a few µs after the grid point here). */
#define TICKS_EARLY_NS 50000ll
#define TICKS_LATE_NS 300000ll

struct ticks {
	int64_t tick_ns;	/* one tick, or the coarsest step seen */
	int hz;			/* 0: HZ not known, nor the phase */
	int64_t phase_ns;	/* a grid point (CLOCK_MONOTONIC),
				 * TICKS_EARLY_NS included; when hz != 0 */
};

/* ticks_fit - what the probe showed: the lower ends lo[0..n) of tick
 * boundaries each located within TICKS_TIGHT_NS, ascending, and the
 * largest step of a ms age between two reads (step_ms, 0 if none).
 * Sets tk: the phase when HZ is one Linux offers (100, 250, 300, 1000),
 * agrees with step_ms, and at least three boundaries fit its grid within
 * TICKS_TIGHT_NS; otherwise only tick_ns: step_ms when it is a whole
 * tick of some HZ (1, 4 or 10 ms), else 10 ms, the coarsest Linux has.
 * Returns 1 when the phase is known, else 0. */
int ticks_fit(struct ticks *tk, const int64_t *lo, size_t n,
	      uint32_t step_ms);

/* ticks_ago - the latest time at which happened an event a reply read
 * at or before now dates age_ms ago.  Never earlier than the event
 * (given the reply was computed no later than now), and at most one tick
 * and TICKS_LATE_NS later (two ticks without the phase). */
int64_t ticks_ago(const struct ticks *tk, int64_t now, uint32_t age_ms);

#endif
