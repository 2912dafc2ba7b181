/* stats.c - DEADLINE_STATS: per-rule counters, counted with relaxed
 * atomics where events happen (stats_count), written as one JSON line
 * per process at exit.
 */
#include "engine_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "real.h"

/* Where counts for an unknown rule go. */
struct rule_stats stats_sink;

/* ------------------------------------------------------------------------
 * Statistics (DEADLINE_STATS): one JSON line per process at exit.
 */

__attribute__((destructor)) static void stats_write(void)
{
	char buf[256];
	int fd, n, saved = errno;

	if (!E.stats_path || !E.stats)
		return;
	/* Never block at exit (a FIFO with no reader): O_NONBLOCK. */
	fd = open(E.stats_path,
		  O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NONBLOCK | O_NOCTTY,
		  0644);
	if (fd < 0) {
		dl_log_warn("DEADLINE_STATS=%s: cannot open: %s", E.stats_path,
			    strerror(errno));
		return;
	}
	/* One write per rule would interleave with other processes: build
	 * the line in pieces but write it once per rule group. */
	n = snprintf(buf, sizeof(buf), "{\"pid\":%d,\"rules\":[", (int)getpid());
	REAL(write)(fd, buf, (size_t)n);
	for (size_t i = 0; i < E.neff; i++) {
		const struct rule_stats *st = &E.stats[i];
		n = snprintf(buf, sizeof(buf),
			     "%s{\"rule\":\"%s\",\"connections\":%llu,"
			     "\"expiries\":{\"connect\":%llu,\"first_byte\":%llu,"
			     "\"idle\":%llu,\"request\":%llu},\"retries\":%llu,"
			     "\"bytes_in\":%llu,\"bytes_out\":%llu}",
			     i ? "," : "", E.eff[i].rule_name,
			     (unsigned long long)st->conns,
			     (unsigned long long)st->expiries[DL_PH_CONNECT],
			     (unsigned long long)st->expiries[DL_PH_FIRST_BYTE],
			     (unsigned long long)st->expiries[DL_PH_IDLE],
			     (unsigned long long)st->expiries[DL_PH_REQUEST],
			     (unsigned long long)st->retries,
			     (unsigned long long)st->bytes_in,
			     (unsigned long long)st->bytes_out);
		if (n > 0)
			REAL(write)(fd, buf, (size_t)n < sizeof(buf) ? (size_t)n
								       : sizeof(buf) - 1);
	}
	REAL(write)(fd, "]}\n", 3);
	REAL(close)(fd);
	errno = saved;
}
