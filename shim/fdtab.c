/* fdtab.c - the fd table (see fdtab.h). */
#include "fdtab.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "log.h"

struct fdtab_slab *fdtab_slabs[FDTAB_MAX / FDTAB_SLAB];
struct dl_cold *fdtab_colds[FDTAB_MAX / FDTAB_SLAB];

int fdtab_limit(void)
{
	return FDTAB_MAX;
}

/* Map a zeroed region of sz bytes (mmap, not malloc: this can run before
 * malloc is usable and from inside a signal-unsafe spot of the program)
 * and publish it in *slot unless another thread did first.  Nothing is
 * written to it: a zeroed entry is an untracked, unfiled one, so a page
 * of the slab becomes resident only once an fd of its own is used.
 * errno kept. */
static void *map_slab(void **slot, size_t sz)
{
	void *m, *expect = 0;
	int saved = errno;

	m = mmap(0, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (m == MAP_FAILED) {
		errno = saved;
		return 0;
	}
	if (!__atomic_compare_exchange_n(slot, &expect, m, 0, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		munmap(m, sz); /* another thread won the race */
		m = expect;
	}
	errno = saved;
	return m;
}

struct dl_conn *fdtab_get(int fd)
{
	static int warned;

	if (fd < 0)
		return 0;
	if (fd >= FDTAB_MAX) {
		int saved = errno;

		if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
			dl_log_warn("fd %d is beyond the table (%d entries); "
				    "such fds pass through without deadlines",
				    fd, FDTAB_MAX);
		errno = saved;
		return 0;
	}
	if (fdtab_peek(fd))
		return fdtab_peek(fd);
	if (!map_slab((void **)&fdtab_slabs[fd >> FDTAB_SLAB_SHIFT],
		      sizeof(struct fdtab_slab)))
		return 0;
	return fdtab_peek(fd);
}

struct dl_cold *fdtab_cold_get(int fd)
{
	if (fd < 0 || fd >= FDTAB_MAX)
		return 0;
	if (fdtab_cold(fd))
		return fdtab_cold(fd);
	if (!map_slab((void **)&fdtab_colds[fd >> FDTAB_SLAB_SHIFT],
		      FDTAB_SLAB * sizeof(struct dl_cold)))
		return 0;
	return fdtab_cold(fd);
}

struct dl_conn *fdtab_heap_ent(int i, int alloc)
{
	return alloc ? fdtab_get(i) : fdtab_peek(i);
}

_Static_assert(sizeof(struct dl_conn) == 64, "one cache line per fd");
_Static_assert(sizeof(struct fdtab_slab) == 16384, "a slab is 4 pages");
_Static_assert(FDTAB_SLAB == (1 << 8), "slab layout in fdtab.h");

uint32_t fdtab_reset(struct dl_conn *c)
{
	uint32_t old = __atomic_load_n(&c->gw, __ATOMIC_ACQUIRE), nw;

	__atomic_store_n(&c->st, 0, __ATOMIC_RELEASE);
	for (int i = 0; i < DL_PH_COUNT; i++)
		__atomic_store_n(&c->dl[i], 0, __ATOMIC_RELAXED);
	__atomic_store_n(&c->rule, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&c->rcvtimeo_ms, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&c->sndtimeo_ms, 0, __ATOMIC_RELAXED);
	do
		nw = ((old >> CONN_GEN_SHIFT) + 1) << CONN_GEN_SHIFT;
	while (!__atomic_compare_exchange_n(&c->gw, &old, nw, 1,
					    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
	return old;
}
