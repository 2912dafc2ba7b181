/* test_ticks.c - dating tcp_info's ages on the tick grid (tools/ticks.c).
 *
 * A simulated kernel: ticks on a grid of CLOCK_MONOTONIC (TICK_NSEC
 * apart, from a phase), jiffies bumped a few µs after each grid point,
 * ages reported as jiffies_to_msecs() does (whole ms, rounded up).
 */
#include <criterion/criterion.h>

#include "../../tools/ticks.h"

#define MS 1000000ll
#define US 1000ll

static uint64_t rng = 88172645463325252ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int64_t uniform(int64_t lo, int64_t hi)	/* [lo, hi] */
{
	return lo + (int64_t)(next() % (uint64_t)(hi - lo + 1));
}

struct kernel {
	int hz;
	int64_t tick, grid, bump;	/* bump: jiffies lag the grid point */
};

static struct kernel kernel(int hz, int64_t grid, int64_t bump)
{
	struct kernel k = { hz, (1000000000ll + hz / 2) / hz, grid, bump };

	return k;
}

static int64_t jiffy(const struct kernel *k, int64_t t)
{
	int64_t x = t - k->grid - k->bump;

	return x >= 0 ? x / k->tick : -((-x + k->tick - 1) / k->tick);
}

static uint32_t to_ms(const struct kernel *k, int64_t j)	/* round up */
{
	return (uint32_t)((j * 1000 + k->hz - 1) / k->hz);
}

/* What the probe of outside.c sees: n boundaries, each located between
 * two reads at most 80 µs apart. */
static size_t probe(const struct kernel *k, int64_t from, int64_t *lo,
		    size_t n)
{
	int64_t j = jiffy(k, from) + 1;

	for (size_t i = 0; i < n; i++, j++)
		lo[i] = k->grid + j * k->tick + k->bump - uniform(0, 80 * US);
	return n;
}

/* Never early; at most one tick and TICKS_LATE_NS late, except for
 * replies read between the grid point the probe put (TICKS_EARLY_NS and
 * the probe's 80 µs before the earliest boundary) and the bump of
 * jiffies: those are taken for the next tick, one tick later still. */
static void dates_right(const struct kernel *k, const struct ticks *tk,
			int64_t worst, int64_t window)
{
	int n = 200000, over = 0;

	for (int i = 0; i < n; i++) {
		int64_t te = uniform(10000 * MS, 20000 * MS);
		int64_t kappa = te + uniform(0, 3000 * MS);
		int64_t now = kappa + (i % 2 ? 0 : uniform(0, 2 * MS));
		uint32_t age = to_ms(k, jiffy(k, kappa) - jiffy(k, te));
		int64_t d = ticks_ago(tk, now, age);

		cr_assert_geq(d, te, "HZ=%d: event at %lld dated %lld: early",
			      k->hz, (long long)te, (long long)d);
		if (now != kappa)
			continue;
		cr_assert_leq(d - te, worst + k->tick,
			      "HZ=%d: dated %lld ns late", k->hz,
			      (long long)(d - te));
		if (d - te > worst)
			over++;
	}
	/* Half of the runs read at kappa. */
	cr_expect_leq(over, (int)((n / 2) * (window * 11 / 10) / k->tick) + 1,
		      "HZ=%d: %d of %d dated more than %lld ns late", k->hz,
		      over, n / 2, (long long)worst);
}

Test(ticks, fits_every_linux_hz_and_dates_within_one_tick)
{
	static const int hzs[] = { 100, 250, 300, 1000 };

	for (size_t h = 0; h < sizeof(hzs) / sizeof(hzs[0]); h++) {
		struct kernel k = kernel(hzs[h], 123456789, 4 * US);
		int64_t lo[8];
		struct ticks tk;

		probe(&k, 5000 * MS, lo, 8);
		cr_assert_eq(ticks_fit(&tk, lo, 8, to_ms(&k, 1)), 1,
			     "HZ=%d not recognised", k.hz);
		cr_expect_eq(tk.hz, k.hz);
		cr_expect_eq(tk.tick_ns, k.tick);
		dates_right(&k, &tk, k.tick + TICKS_LATE_NS,
			    TICKS_EARLY_NS + 80 * US + k.bump);
	}
}

Test(ticks, a_later_bump_than_the_probe_saw_is_still_not_early)
{
	/* The probe saw jiffies bumped 4 µs after the grid; later ticks
	 * come up to 150 µs late (an interrupt delayed). */
	struct kernel k = kernel(250, 777, 4 * US), late = k;
	int64_t lo[6];
	struct ticks tk;

	probe(&k, 100 * MS, lo, 6);
	cr_assert_eq(ticks_fit(&tk, lo, 6, 4), 1);
	late.bump = 150 * US;
	dates_right(&late, &tk, k.tick + TICKS_LATE_NS,
		    TICKS_EARLY_NS + 80 * US + late.bump);
}

Test(ticks, improves_on_one_tick_after_now_minus_the_age)
{
	struct kernel k = kernel(250, 31337, 3 * US);
	int64_t lo[8], sum_phase = 0, sum_plain = 0;
	struct ticks tk, plain = { .tick_ns = 4 * MS };

	probe(&k, 0, lo, 8);
	cr_assert_eq(ticks_fit(&tk, lo, 8, 4), 1);
	for (int i = 0; i < 100000; i++) {
		int64_t te = uniform(1000 * MS, 2000 * MS);
		int64_t now = te + uniform(0, 1000 * MS);
		uint32_t age = to_ms(&k, jiffy(&k, now) - jiffy(&k, te));
		int64_t a = ticks_ago(&tk, now, age);
		int64_t b = ticks_ago(&plain, now, age);

		if (a > now)
			a = now;	/* as outside_track.c clamps */
		if (b > now)
			b = now;
		sum_phase += a - te;
		sum_plain += b - te;
	}
	/* About half a tick late on average, against one. */
	cr_expect_lt(sum_phase / 100000, 2 * MS + 2 * TICKS_LATE_NS,
		     "mean %lld ns", (long long)(sum_phase / 100000));
	cr_expect_gt(sum_plain / 100000, 3500 * US, "mean %lld ns",
		     (long long)(sum_plain / 100000));
}

Test(ticks, without_the_phase_one_tick_after_now_minus_the_age)
{
	struct kernel k = kernel(250, 5, 2 * US);
	int64_t lo[2];
	struct ticks tk;

	probe(&k, 0, lo, 2);
	cr_expect_eq(ticks_fit(&tk, lo, 2, 4), 0, "two boundaries are few");
	cr_expect_eq(tk.hz, 0);
	cr_expect_eq(tk.tick_ns, 4 * MS);
	dates_right(&k, &tk, 2 * k.tick, 0);
	cr_expect_eq(ticks_ago(&tk, 100 * MS, 8), 96 * MS);
}

Test(ticks, refuses_what_no_linux_grid_explains)
{
	struct ticks tk;
	int64_t scattered[5] = { 0, 4 * MS + 900 * US, 9 * MS + 300 * US,
				 12 * MS, 17 * MS + 2 * MS / 3 };
	int64_t grid4[5] = { 1 * MS, 5 * MS, 9 * MS, 13 * MS, 17 * MS };

	cr_expect_eq(ticks_fit(&tk, scattered, 5, 4), 0);
	cr_expect_eq(tk.tick_ns, 4 * MS);
	/* A step no HZ gives: the coarsest tick Linux has. */
	cr_expect_eq(ticks_fit(&tk, grid4, 5, 7), 0);
	cr_expect_eq(tk.tick_ns, 10 * MS);
	cr_expect_eq(ticks_fit(&tk, grid4, 5, 3), 0, "HZ=300 shows 3 and 4");
	cr_expect_eq(tk.tick_ns, 10 * MS);
	cr_expect_eq(ticks_fit(&tk, grid4, 5, 0), 0);
	cr_expect_eq(tk.tick_ns, 10 * MS);
	cr_expect_eq(ticks_fit(&tk, grid4, 5, 40), 0);
	cr_expect_eq(tk.tick_ns, 10 * MS);
	/* 4 ms steps on a 4 ms grid: HZ=250, not 300. */
	cr_expect_eq(ticks_fit(&tk, grid4, 5, 4), 1);
	cr_expect_eq(tk.hz, 250);
}
