/* Unit tests: the deadline heap (shim/dlheap.c). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "dlheap.h"

#define N 2000

static struct dl_conn conns[N];

static void setup(void)
{
	memset(conns, 0, sizeof(conns));
	for (int i = 0; i < N; i++)
		conns[i].heap_idx = -1;
}

TestSuite(dlheap, .init = setup);

static void check_invariant(const struct dlheap *h)
{
	for (size_t i = 0; i < h->n; i++) {
		cr_assert_eq(h->v[i].c->heap_idx, (int32_t)i);
		if (i)
			cr_assert_leq(h->v[(i - 1) / 2].key, h->v[i].key);
	}
}

Test(dlheap, empty)
{
	struct dlheap h = { 0 };

	cr_assert_null(dlheap_top(&h));
	dlheap_remove(&h, &conns[0]); /* absent: no-op */
	dlheap_free(&h);
}

Test(dlheap, pops_in_order_under_random_updates)
{
	struct dlheap h = { 0 };
	int64_t last = -1;

	srand(7);
	for (int i = 0; i < N; i++)
		cr_assert_eq(dlheap_update(&h, &conns[i], i, rand() % 100000), 0);
	/* move some earlier, some later, remove some */
	for (int i = 0; i < N; i += 3)
		dlheap_update(&h, &conns[i], i, rand() % 100000);
	for (int i = 1; i < N; i += 7)
		dlheap_remove(&h, &conns[i]);
	check_invariant(&h);
	while (dlheap_top(&h)) {
		const struct dlheap_node *t = dlheap_top(&h);
		cr_assert_geq(t->key, last);
		last = t->key;
		cr_assert_eq(t->fd, (int)(t->c - conns));
		dlheap_remove(&h, t->c);
	}
	for (int i = 0; i < N; i++)
		cr_assert_eq(conns[i].heap_idx, -1);
	dlheap_free(&h);
}

Test(dlheap, remove_middle_keeps_invariant)
{
	struct dlheap h = { 0 };

	for (int i = 0; i < 64; i++)
		dlheap_update(&h, &conns[i], i, 64 - i);
	for (int i = 10; i < 50; i += 2) {
		dlheap_remove(&h, &conns[i]);
		check_invariant(&h);
	}
	cr_assert_eq(h.n, 44);
	dlheap_free(&h);
}
