/* outside.h - `deadline --outside`: the same deadlines, enforced from
 * outside the program (docs/outside.md).
 *
 * For programs LD_PRELOAD cannot reach (static and Go binaries) and for
 * processes already running.  The supervisor lists the program's TCP
 * sockets with netlink sock_diag, follows the four phases from tcp_info,
 * and aborts a connection whose deadline passed with SOCK_DESTROY.
 */
#ifndef DL_OUTSIDE_H
#define DL_OUTSIDE_H

#include <stdint.h>
#include <sys/types.h>

struct outside_opts {
	pid_t pid;		/* attach to this process; 0: run argv */
	uint32_t interval_ms;	/* listing interval; 0: the default */
};

#define OUTSIDE_INTERVAL_MS 100u

/* outside_run - enforce the deadlines of the environment and of
 * DEADLINE_CONFIG (as `deadline` set them from its options) on argv, run
 * in a cgroup of its own, or on process o->pid and its descendants.
 * Logs as the shim does (DEADLINE_LOG, DEADLINE_LOG_FORMAT), writes
 * DEADLINE_STATS at the end.  Returns the exit status for `deadline`:
 * the command's (128 + signal when killed), 0 after detaching from a
 * process, 125 when the outside mode cannot work here (the reason on
 * stderr), 126/127 when the command cannot be run / is not found. */
int outside_run(const struct outside_opts *o, char **argv);

#endif
