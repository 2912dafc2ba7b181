/* fdtab.h - per-fd connection state, indexed by fd number.
 *
 * Slabs of FDTAB_SLAB entries are mapped on first use and never move or go
 * away, so a pointer to an entry stays valid for the life of the process
 * and lookups need no lock.  Entries are hints: whoever hands out a new fd
 * number (socket, accept, dup...) resets the entry.
 */
#ifndef DL_FDTAB_H
#define DL_FDTAB_H

#include <netinet/in.h>

#include "conn.h"

/* Cold per-fd data, read only when logging: where the connection goes. */
struct dl_peer {
	struct sockaddr_in6 addr; /* sockaddr_in fits too; family 0 = unknown */
};

/* A slab: hot entries first (one cache line each), then the cold ones. */
struct fdtab_slab {
	struct dl_conn conn[1 << 8];
	struct dl_peer peer[1 << 8];
};

#define FDTAB_SLAB_SHIFT 8
#define FDTAB_SLAB (1 << FDTAB_SLAB_SHIFT)
#define FDTAB_MAX (1 << 20) /* Linux's default nr_open */

extern struct fdtab_slab *fdtab_slabs[FDTAB_MAX / FDTAB_SLAB];

/* fdtab_peek - the entry for fd if its slab exists, else NULL.  No
 * allocation; the fast-path lookup. */
static inline struct dl_conn *fdtab_peek(int fd)
{
	struct fdtab_slab *slab;

	if ((unsigned)fd >= FDTAB_MAX)
		return 0;
	slab = __atomic_load_n(&fdtab_slabs[fd >> FDTAB_SLAB_SHIFT],
			       __ATOMIC_ACQUIRE);
	return slab ? &slab->conn[fd & (FDTAB_SLAB - 1)] : 0;
}

/* fdtab_peer - the cold entry beside fdtab_peek(fd); NULL likewise. */
static inline struct dl_peer *fdtab_peer(int fd)
{
	struct fdtab_slab *slab;

	if ((unsigned)fd >= FDTAB_MAX)
		return 0;
	slab = __atomic_load_n(&fdtab_slabs[fd >> FDTAB_SLAB_SHIFT],
			       __ATOMIC_ACQUIRE);
	return slab ? &slab->peer[fd & (FDTAB_SLAB - 1)] : 0;
}

/* fdtab_tracked - the entry for fd if deadlines apply to it, else NULL. */
static inline struct dl_conn *fdtab_tracked(int fd)
{
	struct dl_conn *c = fdtab_peek(fd);

	return c && (conn_state(c) & CONN_TRACKED) ? c : 0;
}

/* fdtab_get - the entry for fd, mapping its slab if needed.  NULL when fd
 * is beyond the table (reported once) or memory is short.  errno kept. */
struct dl_conn *fdtab_get(int fd);

/* fdtab_reset - forget everything about fd (a new file took the number):
 * a new generation, no waiters.  Returns the old generation word (its
 * waiter count tells whether threads still wait on the old file).  The
 * caller removes the entry from the deadline heap first. */
uint32_t fdtab_reset(struct dl_conn *c);

/* fdtab_limit - highest fd number + 1 that can be tracked. */
int fdtab_limit(void);

#endif
