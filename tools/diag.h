/* diag.h - TCP sockets seen from outside: netlink sock_diag (INET_DIAG).
 *
 * The outside mode of `deadline` (outside.c) lists a program's TCP
 * sockets with their tcp_info through these calls, and aborts one with
 * SOCK_DESTROY.  Plain C over one netlink socket each; no allocation
 * beyond the receive buffer of a dump.  Every function returns 0 or a
 * negative errno value and leaves errno as it found it.
 */
#ifndef DL_DIAG_H
#define DL_DIAG_H

#include <stdint.h>
#include <linux/inet_diag.h>

/* One socket of a dump: what outside.c needs of inet_diag_msg and
 * tcp_info, in host byte order where it computes with it. */
struct diag_sock {
	uint8_t family;		/* AF_INET or AF_INET6 */
	uint8_t state;		/* TCP_ESTABLISHED, TCP_SYN_SENT, ... */
	uint8_t timer;		/* idiag_timer: 1 = retransmit timer */
	uint8_t retrans;	/* idiag_retrans */
	uint32_t expires_ms;	/* idiag_expires: ms until the timer fires */
	uint32_t inode;		/* 0: no struct socket (not accepted yet,
				 * or closed by the program: an orphan) */
	uint32_t rqueue;	/* received, not yet read by the program */
	uint32_t wqueue;	/* written by the program, not yet acked */
	uint64_t cookie;
	int64_t t_ns;		/* CLOCK_MONOTONIC just after the reply came:
				 * no earlier than the kernel's ages above
				 * were taken */
	struct inet_diag_sockid id;	/* as the kernel gave it: for destroy */
	int has_info;		/* the fields below are valid */
	uint32_t rto_us;	/* tcpi_rto */
	uint32_t last_data_sent_ms;
	uint32_t last_data_recv_ms;
	uint64_t bytes_acked;
	uint64_t bytes_received;
};

/* diag_sock_ports - local and remote port (host order). */
uint16_t diag_sport(const struct diag_sock *s);
uint16_t diag_dport(const struct diag_sock *s);

/* diag_open - a NETLINK_SOCK_DIAG socket (close-on-exec), or -errno. */
int diag_open(void);

/* Called once per socket of a dump; a nonzero return stops the dump
 * early (diag_dump then returns 0 after draining the reply). */
typedef int (*diag_cb)(const struct diag_sock *s, void *arg);

/* Called between two batches of a dump (one receive each, a few hundred
 * sockets): the sockets of the batches before were all passed to the
 * callback, and the other calls of this file may be used meanwhile on
 * another netlink socket (a long listing need not hold up the rest). */
typedef void (*diag_between)(void *arg);

/* diag_dump - list the TCP sockets of one family (AF_UNSPEC: both, in
 * one walk of the kernel's tables, listening sockets first) in the
 * states of the mask (bit 1 << TCP_xxx), with tcp_info.  cgroup_id
 * nonzero: only the sockets created in that cgroup v2
 * (INET_DIAG_BC_CGROUP_COND; the kernel filters).  between: NULL, or
 * called between batches.  Returns 0, or -errno: -EINVAL when the kernel
 * rejects the filter, -EPERM/-EACCES when not allowed. */
int diag_dump(int nl, int family, uint32_t states, uint64_t cgroup_id,
	      diag_cb cb, diag_between between, void *arg);

/* diag_get - a fresh sample of the one socket s names (same cookie):
 * 0, or -ENOENT when it is gone. */
int diag_get(int nl, const struct diag_sock *s, struct diag_sock *out);

/* diag_destroy - abort the socket s names (SOCK_DESTROY): its owner's
 * pending and later calls fail with ECONNABORTED, the peer gets a RST.
 * Returns 0, -ENOENT when it is gone, -EOPNOTSUPP when the kernel lacks
 * CONFIG_INET_DIAG_DESTROY, -EPERM without CAP_NET_ADMIN. */
int diag_destroy(int nl, const struct diag_sock *s);

/* diag_destroy_tuple - the same for an IPv4 4-tuple (ports and addresses
 * in network order), any cookie: the start-up probe. */
int diag_destroy_tuple(int nl, uint32_t src, uint16_t sport, uint32_t dst,
		       uint16_t dport);

#endif
