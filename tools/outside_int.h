/* outside_int.h - internals of `deadline --outside` (see outside.h).
 *
 * Three rooms:
 *   outside.c        start-up checks, the rules, running or attaching to
 *                    the program, the main loop, signals, statistics;
 *   outside_track.c  the table of the program's connections, built from
 *                    each listing; the four phases from tcp_info; the
 *                    deadline heap; expiry (SOCK_DESTROY and the log line);
 *   outside_proc.c   cgroup v2 (find, create, remove) and /proc (which
 *                    socket inodes belong to a process tree, which fd).
 * Single-threaded: the supervisor is one loop.
 */
#ifndef DL_OUTSIDE_INT_H
#define DL_OUTSIDE_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <netinet/in.h>

#include "conf.h"
#include "diag.h"
#include "outside.h"
#include "ticks.h"

/* ------------------------------------------------------------- proc */

/* Socket inodes of the followed processes: inode -> (pid, fd). */
struct oino {
	uint32_t ino;
	pid_t pid;		/* 0: seen in a listing, not ours (foreign) */
	int fd;
	uint8_t misses;		/* rescans that did not find it */
	uint32_t seen;		/* listing generation it was last seen in */
};

struct oinomap {
	struct oino *v;		/* open addressing, ino 0 = empty */
	size_t cap, n;
};

struct oino *oino_get(struct oinomap *m, uint32_t ino);
struct oino *oino_put(struct oinomap *m, uint32_t ino); /* NULL: no memory */
void oino_del(struct oinomap *m, uint32_t ino);
void oino_free(struct oinomap *m);

/* proc_tree - pid and its live descendants (the ppid in /proc/PID/stat)
 * into *out (malloc'd); returns the count, 0 if pid is gone. */
size_t proc_tree(pid_t pid, pid_t **out);

/* proc_cgroup_pids - the pids in cgroup directory dir (cgroup.procs). */
size_t proc_cgroup_pids(const char *dir, pid_t **out);

/* proc_scan_sockets - every socket fd of the pids into m: entries of
 * other pids are marked foreign first (pid 0), those found get their
 * owner.  Returns the number of socket fds found. */
size_t proc_scan_sockets(struct oinomap *m, const pid_t *pids, size_t n);

/* proc_fd_holds - whether fd of pid is socket inode ino now. */
int proc_fd_holds(pid_t pid, int fd, uint32_t ino);

/* cg_mount - where cgroup v2 is mounted (from /proc/self/mountinfo) into
 * buf; -1 when it is not. */
int cg_mount(char *buf, size_t len);

/* cg_create - a new group "deadline-outside.<our pid>" beside the
 * supervisor's own cgroup v2 group: its path into dir, its id (the
 * directory's inode) into *id.  Also removes empty groups left by
 * supervisors that died.  0, or -errno. */
int cg_create(const char *mnt, char *dir, size_t len, uint64_t *id);

/* cg_remove - move whatever processes are still in dir to its parent,
 * then remove it.  Returns the number of processes moved, -1 when the
 * group could not be removed (errno). */
int cg_remove(const char *dir);

/* ------------------------------------------------------------ track */

enum { TURN_NONE = 0, TURN_WROTE, TURN_READ };

/* One followed connection. */
struct osock {
	uint64_t cookie;
	struct diag_sock last;	/* the latest sample */
	uint32_t seen;		/* listing generation */
	uint16_t rule;		/* index into the effective rules */
	uint8_t inbound;
	uint8_t connecting;
	uint8_t turn;
	uint8_t ended;		/* aborted or gone during a listing: the
				 * listing's later batches may still show it */
	int64_t t_sample;	/* when the latest sample was taken */
	int64_t t_conn;		/* connect started (ns, monotonic) */
	int64_t t_req;		/* request started */
	int64_t t_fb;		/* first byte awaited since; 0 = not armed */
	int64_t t_move;		/* last byte moved */
	uint64_t w, r, rd;	/* written (acked + queued), received, read */
	uint64_t wbase;		/* w that the program did not write */
	int64_t due;		/* earliest deadline, 0 = none */
	uint8_t due_ph;		/* its phase */
	int32_t heap_idx;
};

/* Counters of one rule, as the shim's DEADLINE_STATS writes them. */
struct ostats {
	uint64_t conns;
	uint64_t expiries[DL_PH_COUNT];
	uint64_t bytes_in, bytes_out;
};

/* A listening socket of the program: connections to its port are
 * inbound. */
struct olisten {
	uint8_t addr[16];	/* v4 as v4-mapped; all zero = any */
	uint16_t port;
};

struct otrack {
	/* Set up by outside.c. */
	struct conf conf;
	struct conf_effective *eff;	/* [0] = defaults ("env" with no file) */
	size_t neff;
	struct ostats *stats;
	int nl;			/* netlink: listings and targeted queries */
	int nl_kill;		/* netlink: SOCK_DESTROY */
	uint64_t cgroup_id;	/* nonzero: the kernel filters by cgroup */
	const char *cg_dir;	/* the group (cgroup mode), for fd look-ups */
	pid_t root;		/* the program (launch) or the attached pid */
	int attach;		/* following a process that was already running */
	struct ticks ticks;	/* how tcp_info's ms ages are dated */
	int64_t interval_ns;

	/* Inode mode (no cgroup filter): which sockets are the program's. */
	struct oinomap inos;
	int rescan;		/* an unknown inode was listed */
	int listing;		/* a listing is running (track_list) */

	/* The table, open addressing by cookie. */
	struct osock **tab;
	size_t cap, n;
	struct osock **heap;
	size_t hn, hcap;
	struct olisten *lis;
	size_t nlis, caplis;
	uint32_t gen;
	int64_t t_list;		/* the latest listing started */
	int64_t t_prev_list;	/* the one before */
	int first;		/* the first listing of an attach: baseline */
	/* Connections aborted so far. */
	uint64_t expired;
};

extern struct otrack T;

/* track_list - one full listing: find new connections, update every
 * one, expire what is due.  0, or -errno when a listing failed. */
int track_list(void);

/* track_due - the earliest deadline (ns), 0 when none. */
int64_t track_due(void);

/* track_expire_due - re-query the connections whose deadline is at or
 * before now (one targeted sock_diag query each) and abort those still
 * due. */
void track_expire_due(int64_t now);

/* track_forget_all - count every followed connection's bytes into the
 * statistics and empty the table (at exit). */
void track_forget_all(void);

#endif
