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

/* Cold per-fd data, needed for few connections: mapped per slab only
 * when one of its numbers needs it, so a connection costs nothing here
 * unless it does. */
struct dl_cold {
	/* The socket's inode, for a socket the shim did not see created
	 * (inherited, made before the shim started): then nothing else says
	 * that the number still holds it.  0 = not needed / unknown. */
	uint64_t ino;
	/* Where a faulted connection goes, for log lines: an injected fault
	 * may keep connect() from reaching the kernel, which then cannot
	 * tell (family 0 = unknown).  Others ask the kernel (SO_PEERNAME). */
	struct sockaddr_in6 addr;
};

/* A slab: one cache line per fd, 16 KiB. */
struct fdtab_slab {
	struct dl_conn conn[1 << 8];
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

/* fdtab_cold - fd's cold entry if its slab of cold entries exists, else
 * NULL (then every field reads as 0); fdtab_cold_get maps it (NULL when
 * memory is short).  errno kept. */
extern struct dl_cold *fdtab_colds[FDTAB_MAX / FDTAB_SLAB];

static inline struct dl_cold *fdtab_cold(int fd)
{
	struct dl_cold *s;

	if ((unsigned)fd >= FDTAB_MAX)
		return 0;
	s = __atomic_load_n(&fdtab_colds[fd >> FDTAB_SLAB_SHIFT],
			    __ATOMIC_ACQUIRE);
	return s ? &s[fd & (FDTAB_SLAB - 1)] : 0;
}

struct dl_cold *fdtab_cold_get(int fd);

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

/* fdtab_heap_ent - the entry of number i for the deadline heap
 * (dlheap.ent): alloc maps its slab if needed. */
struct dl_conn *fdtab_heap_ent(int i, int alloc);

#endif
