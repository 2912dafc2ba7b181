/* fdtab.c - the fd table (see fdtab.h). */
#include "fdtab.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "log.h"

struct fdtab_slab *fdtab_slabs[FDTAB_MAX / FDTAB_SLAB];

int fdtab_limit(void)
{
	return FDTAB_MAX;
}

struct dl_conn *fdtab_get(int fd)
{
	static int warned;
	struct fdtab_slab *slab, *expect = 0;
	size_t sz = sizeof(struct fdtab_slab);
	int saved = errno;

	if (fd < 0)
		return 0;
	if (fd >= FDTAB_MAX) {
		if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
			dl_log_warn("fd %d is beyond the table (%d entries); "
				    "such fds pass through without deadlines",
				    fd, FDTAB_MAX);
		return 0;
	}
	if (fdtab_peek(fd))
		return fdtab_peek(fd);
	/* mmap, not malloc: this can run before malloc is usable and from
	 * inside a signal-unsafe spot of the program. */
	slab = mmap(0, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		    -1, 0);
	if (slab == MAP_FAILED) {
		errno = saved;
		return 0;
	}
	for (int i = 0; i < FDTAB_SLAB; i++)
		slab->conn[i].heap_idx = -1;
	if (!__atomic_compare_exchange_n(&fdtab_slabs[fd >> FDTAB_SLAB_SHIFT],
					 &expect, slab, 0, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		munmap(slab, sz); /* another thread won the race */
	errno = saved;
	return fdtab_peek(fd);
}

_Static_assert(sizeof(struct dl_conn) == 64, "one cache line per fd");
_Static_assert(FDTAB_SLAB == (1 << 8), "slab layout in fdtab.h");

uint32_t fdtab_reset(struct dl_conn *c)
{
	uint32_t old = __atomic_load_n(&c->gw, __ATOMIC_ACQUIRE), nw;

	__atomic_store_n(&c->st, 0, __ATOMIC_RELEASE);
	for (int i = 0; i < DL_PH_COUNT; i++)
		__atomic_store_n(&c->dl[i], 0, __ATOMIC_RELAXED);
	__atomic_store_n(&c->rule, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&c->ino, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&c->rcvtimeo_ms, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&c->sndtimeo_ms, 0, __ATOMIC_RELAXED);
	do
		nw = ((old >> CONN_GEN_SHIFT) + 1) << CONN_GEN_SHIFT;
	while (!__atomic_compare_exchange_n(&c->gw, &old, nw, 1,
					    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
	return old;
}
