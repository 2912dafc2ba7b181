/* dlheap.h - binary min-heap of connections keyed by deadline.
 *
 * The key is a lower bound of the connection's earliest deadline: moving a
 * deadline later need not touch the heap (the entry is re-filed when it
 * surfaces), moving it earlier must.  Plain C; the caller serialises.
 */
#ifndef DL_DLHEAP_H
#define DL_DLHEAP_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"

struct dlheap_node {
	int64_t key;
	struct dl_conn *c;
	int fd;
};

struct dlheap {
	struct dlheap_node *v;
	size_t n, cap;
};

/* dlheap_update - file c (for fd) under key, inserting it or moving it.
 * O(log n).  Returns 0, or -1 when the heap cannot grow (c unchanged). */
int dlheap_update(struct dlheap *h, struct dl_conn *c, int fd, int64_t key);

/* dlheap_remove - take c out if present. O(log n). */
void dlheap_remove(struct dlheap *h, struct dl_conn *c);

/* dlheap_top - the earliest node, or NULL when empty. O(1). */
static inline const struct dlheap_node *dlheap_top(const struct dlheap *h)
{
	return h->n ? &h->v[0] : 0;
}

/* dlheap_free - release the storage (entries keep stale heap_idx). */
void dlheap_free(struct dlheap *h);

#endif
