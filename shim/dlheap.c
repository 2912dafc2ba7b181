/* dlheap.c - deadline heap (see dlheap.h). */
#include "dlheap.h"

/* Rebase once base is this far behind (36 minutes): keys then still
 * reach as far ahead of now. */
#define REBASE_AFTER_NS (1ll << (DLHEAP_SHIFT + 31))
/* A new base lies this long before now. */
#define REBASE_MARGIN_NS 1000000000ll

/* The entry holding the slot at position i (mapped when growing). */
static struct dl_conn *slot(const struct dlheap *h, size_t i)
{
	return h->ent((int)i, 0);
}

static uint32_t key_at(const struct dlheap *h, size_t i)
{
	return slot(h, i)->heap_key;
}

/* Put (fd, key) at position i and tell fd's entry where it is. */
static void place(const struct dlheap *h, size_t i, int fd, uint32_t key)
{
	struct dl_conn *s = slot(h, i);

	s->heap_fd = fd;
	s->heap_key = key;
	conn_set_heap_idx(h->ent(fd, 0), (int32_t)i);
}

static void sift_up(struct dlheap *h, size_t i)
{
	struct dl_conn *s = slot(h, i);
	int fd = s->heap_fd;
	uint32_t key = s->heap_key;

	while (i > 0) {
		size_t p = (i - 1) / 2;
		struct dl_conn *ps = slot(h, p);

		if (ps->heap_key <= key)
			break;
		place(h, i, ps->heap_fd, ps->heap_key);
		i = p;
	}
	place(h, i, fd, key);
}

static void sift_down(struct dlheap *h, size_t i)
{
	struct dl_conn *s = slot(h, i);
	int fd = s->heap_fd;
	uint32_t key = s->heap_key;

	for (;;) {
		size_t l = 2 * i + 1, m = i;
		uint32_t mk = key;

		if (l < h->n && key_at(h, l) < mk) {
			m = l;
			mk = key_at(h, l);
		}
		if (l + 1 < h->n && key_at(h, l + 1) < mk)
			m = l + 1;
		if (m == i)
			break;
		place(h, i, slot(h, m)->heap_fd, slot(h, m)->heap_key);
		i = m;
	}
	place(h, i, fd, key);
}

/* Is c filed, at a position whose slot names fd? */
static int filed(const struct dlheap *h, const struct dl_conn *c, int fd)
{
	int32_t i = conn_heap_idx(c);

	return i >= 0 && (size_t)i < h->n && slot(h, (size_t)i)->heap_fd == fd;
}

int dlheap_update(struct dlheap *h, struct dl_conn *c, int fd, int64_t dl)
{
	uint32_t key;
	struct dl_conn *s;

	/* The caller sets base (shortly before now) first; else keys
	 * reach 36 minutes either side of the first deadline. */
	if (!h->base)
		h->base = dl - REBASE_AFTER_NS * 2;
	key = dlheap_key(h, dl);
	if (filed(h, c, fd)) {
		size_t i = (size_t)conn_heap_idx(c);
		uint32_t old;

		s = slot(h, i);
		old = s->heap_key;
		s->heap_key = key;
		if (key < old)
			sift_up(h, i);
		else
			sift_down(h, i);
		return 0;
	}
	if (h->n >= (size_t)INT32_MAX || !(s = h->ent((int)h->n, 1)))
		return -1;
	s->heap_fd = fd;
	s->heap_key = key;
	conn_set_heap_idx(c, (int32_t)h->n);
	sift_up(h, h->n++);
	return 0;
}

void dlheap_remove(struct dlheap *h, struct dl_conn *c)
{
	int32_t i = conn_heap_idx(c);
	struct dl_conn *last;
	int lfd;

	if (i < 0)
		return;
	if ((size_t)i >= h->n || h->ent(slot(h, (size_t)i)->heap_fd, 0) != c) {
		conn_set_heap_idx(c, -1); /* stale (not ours to move) */
		return;
	}
	conn_set_heap_idx(c, -1);
	if ((size_t)i == --h->n)
		return;
	last = slot(h, h->n);
	lfd = last->heap_fd;
	place(h, (size_t)i, lfd, last->heap_key);
	sift_down(h, (size_t)i);
	/* The moved slot may also belong higher up than the hole. */
	sift_up(h, (size_t)conn_heap_idx(h->ent(lfd, 0)));
}

int dlheap_top(const struct dlheap *h, int64_t *t)
{
	struct dl_conn *s;

	if (!h->n)
		return -1;
	s = slot(h, 0);
	if (t)
		*t = dlheap_time(h, s->heap_key);
	return s->heap_fd;
}

void dlheap_rebase(struct dlheap *h, int64_t now)
{
	int64_t nb = now - REBASE_MARGIN_NS;
	uint32_t delta;

	if (!h->base || nb - h->base < REBASE_AFTER_NS)
		return;
	delta = (uint32_t)((nb - h->base) >> DLHEAP_SHIFT);
	for (size_t i = 0; i < h->n; i++) {
		struct dl_conn *s = slot(h, i);

		s->heap_key = s->heap_key > delta ? s->heap_key - delta : 0;
	}
	h->base += (int64_t)delta << DLHEAP_SHIFT;
}

void dlheap_clear(struct dlheap *h)
{
	for (size_t i = 0; i < h->n; i++) {
		struct dl_conn *c = h->ent(slot(h, i)->heap_fd, 0);

		if (c)
			conn_set_heap_idx(c, -1);
	}
	h->n = 0;
}
