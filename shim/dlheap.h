/* dlheap.h - binary min-heap of connections keyed by deadline.
 *
 * The heap holds fd numbers and keeps no memory of its own: the slot at
 * position i is stored in the entry of fd number i (dl_conn.heap_fd,
 * heap_key), and each filed entry knows its position (conn_heap_idx).  So a
 * tracked connection costs the heap nothing beyond its 64-byte entry.
 * Positions 0..n-1 need entries: ent(i, 1) may map them (the fd table
 * does: positions are at most as many as the numbers filed).
 *
 * Keys are 32 bits: units of DLHEAP_UNIT_NS (1.024 us) from h->base,
 * rounded up, saturating.  The key is a lower bound (within one unit) of
 * the connection's earliest deadline: moving a deadline later need not
 * touch the heap (the entry is re-filed when it surfaces), moving it
 * earlier must.  Fine units keep expiries in deadline order (connections
 * opened microseconds apart expire in that order).  Keys cover 73 minutes
 * from base: dlheap_rebase moves base forward (O(n), at most every 36
 * minutes of a process's life); a deadline beyond the range is filed at
 * its end, a lower bound still, and filed exactly once it surfaces.  Plain
 * C; the caller serialises.
 */
#ifndef DL_DLHEAP_H
#define DL_DLHEAP_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"

#define DLHEAP_SHIFT 10
#define DLHEAP_UNIT_NS (1ll << DLHEAP_SHIFT)

struct dlheap {
	size_t n;
	int64_t base; /* ns; 0 = not yet set (dlheap_update sets it) */
	/* The entry of fd (or heap position) i; alloc: map it if needed.
	 * NULL when it does not exist (or cannot be mapped). */
	struct dl_conn *(*ent)(int i, int alloc);
};

/* dlheap_key - the key for an absolute deadline dl (ns). */
static inline uint32_t dlheap_key(const struct dlheap *h, int64_t dl)
{
	int64_t d = dl - h->base;

	if (d <= 0)
		return 0;
	d = (d + DLHEAP_UNIT_NS - 1) >> DLHEAP_SHIFT;
	return d > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

/* dlheap_time - the time (ns) a key stands for. */
static inline int64_t dlheap_time(const struct dlheap *h, uint32_t key)
{
	return h->base + ((int64_t)key << DLHEAP_SHIFT);
}

/* dlheap_update - file fd (whose entry is c) under deadline dl, inserting
 * it or moving it.  O(log n).  Returns 0, or -1 when a position's entry
 * cannot be mapped (c unchanged). */
int dlheap_update(struct dlheap *h, struct dl_conn *c, int fd, int64_t dl);

/* dlheap_remove - take c out if present. O(log n). */
void dlheap_remove(struct dlheap *h, struct dl_conn *c);

/* dlheap_top - the fd filed earliest (its time in *t), or -1 when the heap
 * is empty.  O(1). */
int dlheap_top(const struct dlheap *h, int64_t *t);

/* dlheap_rebase - keep keys in range: once now is far past base, move
 * base up to shortly before now (O(n)).  Order is kept. */
void dlheap_rebase(struct dlheap *h, int64_t now);

/* dlheap_clear - forget every entry (not filed), as after a fork. */
void dlheap_clear(struct dlheap *h);

#endif
