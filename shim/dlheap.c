/* dlheap.c - deadline heap (see dlheap.h). */
#include "dlheap.h"

#include <stdlib.h>

static void place(struct dlheap *h, size_t i, struct dlheap_node nd)
{
	h->v[i] = nd;
	nd.c->heap_idx = (int32_t)i;
}

static void sift_up(struct dlheap *h, size_t i)
{
	struct dlheap_node nd = h->v[i];

	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (h->v[p].key <= nd.key)
			break;
		place(h, i, h->v[p]);
		i = p;
	}
	place(h, i, nd);
}

static void sift_down(struct dlheap *h, size_t i)
{
	struct dlheap_node nd = h->v[i];

	for (;;) {
		size_t l = 2 * i + 1, m = i;
		int64_t mk = nd.key;

		if (l < h->n && h->v[l].key < mk) {
			m = l;
			mk = h->v[l].key;
		}
		if (l + 1 < h->n && h->v[l + 1].key < mk)
			m = l + 1;
		if (m == i)
			break;
		place(h, i, h->v[m]);
		i = m;
	}
	place(h, i, nd);
}

int dlheap_update(struct dlheap *h, struct dl_conn *c, int fd, int64_t key)
{
	int32_t i = c->heap_idx;

	if (i >= 0 && (size_t)i < h->n && h->v[i].c == c) {
		int64_t old = h->v[i].key;
		h->v[i].key = key;
		h->v[i].fd = fd;
		if (key < old)
			sift_up(h, (size_t)i);
		else
			sift_down(h, (size_t)i);
		return 0;
	}
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 64;
		struct dlheap_node *v = realloc(h->v, cap * sizeof(*v));
		if (!v)
			return -1;
		h->v = v;
		h->cap = cap;
	}
	h->v[h->n] = (struct dlheap_node){ key, c, fd };
	sift_up(h, h->n++);
	return 0;
}

void dlheap_remove(struct dlheap *h, struct dl_conn *c)
{
	int32_t i = c->heap_idx;
	struct dl_conn *moved;

	if (i < 0 || (size_t)i >= h->n || h->v[i].c != c)
		return;
	c->heap_idx = -1;
	if ((size_t)i == --h->n)
		return;
	moved = h->v[h->n].c;
	place(h, (size_t)i, h->v[h->n]);
	sift_down(h, (size_t)i);
	/* The moved node may also belong higher up than the hole. */
	sift_up(h, (size_t)moved->heap_idx);
}

void dlheap_free(struct dlheap *h)
{
	free(h->v);
	h->v = 0;
	h->n = h->cap = 0;
}
