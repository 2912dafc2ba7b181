/* Unit tests: the deadline heap (shim/dlheap.c). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "dlheap.h"

#define N 2000
#define U DLHEAP_UNIT_NS

/* The heap keeps its slots in the entries, like the fd table's. */
static struct dl_conn conns[N];

static struct dl_conn *ent(int i, int alloc)
{
	(void)alloc;
	return i >= 0 && i < N ? &conns[i] : 0;
}

static void setup(void)
{
	memset(conns, 0, sizeof(conns));	/* not filed */
}

TestSuite(dlheap, .init = setup);

static struct dlheap mk(void)
{
	struct dlheap h = { .base = 1000 * U, .ent = ent };

	return h;
}

static void check_invariant(const struct dlheap *h)
{
	for (size_t i = 0; i < h->n; i++) {
		cr_assert_eq(conn_heap_idx(&conns[conns[i].heap_fd]), (int32_t)i);
		if (i)
			cr_assert_leq(conns[(i - 1) / 2].heap_key,
				      conns[i].heap_key);
	}
}

Test(dlheap, empty)
{
	struct dlheap h = mk();

	cr_assert_eq(dlheap_top(&h, 0), -1);
	dlheap_remove(&h, &conns[0]); /* absent: no-op */
}

Test(dlheap, keys_round_up_and_saturate)
{
	struct dlheap h = mk();

	cr_assert_eq(dlheap_key(&h, h.base - 5), 0);
	cr_assert_eq(dlheap_key(&h, h.base + 1), 1);
	cr_assert_eq(dlheap_key(&h, h.base + U), 1);
	cr_assert_eq(dlheap_key(&h, h.base + U + 1), 2);
	cr_assert_eq(dlheap_key(&h, h.base + (int64_t)U * UINT32_MAX * 2),
		     UINT32_MAX);
	/* a key's time is never before its deadline, and at most one unit
	 * after it */
	for (int64_t d = h.base; d < h.base + 3 * U; d += U / 3) {
		int64_t t = dlheap_time(&h, dlheap_key(&h, d));
		cr_assert_geq(t, d);
		cr_assert_lt(t - d, U);
	}
}

Test(dlheap, pops_in_order_under_random_updates)
{
	struct dlheap h = mk();
	int64_t last = -1, t;
	int fd;

	srand(7);
	for (int i = 0; i < N; i++)
		cr_assert_eq(dlheap_update(&h, &conns[i], i,
					   h.base + (rand() % 100000) * U), 0);
	/* move some earlier, some later, remove some */
	for (int i = 0; i < N; i += 3)
		dlheap_update(&h, &conns[i], i, h.base + (rand() % 100000) * U);
	for (int i = 1; i < N; i += 7)
		dlheap_remove(&h, &conns[i]);
	check_invariant(&h);
	while ((fd = dlheap_top(&h, &t)) >= 0) {
		cr_assert_geq(t, last);
		last = t;
		cr_assert_neq(conn_heap_idx(&conns[fd]), -1);
		dlheap_remove(&h, &conns[fd]);
	}
	for (int i = 0; i < N; i++)
		cr_assert_eq(conn_heap_idx(&conns[i]), -1);
}

Test(dlheap, remove_middle_keeps_invariant)
{
	struct dlheap h = mk();

	for (int i = 0; i < 64; i++)
		dlheap_update(&h, &conns[i], i, h.base + (64 - i) * U);
	for (int i = 10; i < 50; i += 2) {
		dlheap_remove(&h, &conns[i]);
		check_invariant(&h);
	}
	cr_assert_eq(h.n, 44);
}

Test(dlheap, rebase_keeps_times_and_order)
{
	struct dlheap h = mk();
	int64_t now = h.base + (1ll << (DLHEAP_SHIFT + 31)) + (1ll << 30), t;
	int64_t want[8];

	for (int i = 0; i < 8; i++) {
		want[i] = now + (i * 7919 % 8) * 1000 * U;
		dlheap_update(&h, &conns[i], i, want[i]);
	}
	dlheap_update(&h, &conns[8], 8, h.base + 5 * U); /* long overdue */
	dlheap_rebase(&h, now);
	cr_assert_gt(h.base, now - 2000000000ll);
	cr_assert_leq(h.base, now);
	check_invariant(&h);
	cr_assert_eq(dlheap_top(&h, &t), 8, "the overdue one stays first");
	cr_assert_leq(t, now);
	dlheap_remove(&h, &conns[8]);
	for (int i = 0; i < 8; i++) {
		int fd = dlheap_top(&h, &t);
		cr_assert_geq(t, want[fd]);
		cr_assert_lt(t - want[fd], U);
		dlheap_remove(&h, &conns[fd]);
	}
}

Test(dlheap, far_deadline_is_filed_at_the_range_end)
{
	struct dlheap h = mk();
	int64_t far = h.base + (1ll << (DLHEAP_SHIFT + 33)), t;

	dlheap_update(&h, &conns[0], 0, far);
	cr_assert_eq(dlheap_top(&h, &t), 0);
	cr_assert_lt(t, far, "a lower bound of the deadline");
	cr_assert_gt(t, h.base + (1ll << (DLHEAP_SHIFT + 31)));
}

Test(dlheap, clear_forgets_all)
{
	struct dlheap h = mk();

	for (int i = 0; i < 10; i++)
		dlheap_update(&h, &conns[i], i, h.base + i * U);
	dlheap_clear(&h);
	cr_assert_eq(h.n, 0);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(conn_heap_idx(&conns[i]), -1);
}
