/* diag.c - netlink sock_diag for the outside mode (see diag.h).
 *
 * A dump is one request (inet_diag_req_v2, with an INET_DIAG_REQ_BYTECODE
 * attribute when filtering by cgroup) and a stream of replies ending with
 * NLMSG_DONE.  A destroy is one SOCK_DESTROY request with NLM_F_ACK.
 */
#include "diag.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>

#define DIAG_BUF (64 * 1024)

uint16_t diag_sport(const struct diag_sock *s)
{
	return ntohs(s->id.idiag_sport);
}

uint16_t diag_dport(const struct diag_sock *s)
{
	return ntohs(s->id.idiag_dport);
}

int diag_open(void)
{
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC,
			NETLINK_SOCK_DIAG);
	int e = errno;

	if (fd < 0) {
		fd = -e;
		errno = e;
	}
	return fd;
}

/* The request of a dump: header, inet_diag_req_v2, bytecode. */
struct dump_req {
	struct nlmsghdr nh;
	struct inet_diag_req_v2 r;
	struct nlattr bc_attr;
	struct inet_diag_bc_op op;
	uint64_t cgroup_id;
} __attribute__((packed));

/* The same in the older TCPDIAG_GETSOCK form, whose dump is the one that
 * lists both families in one walk of the kernel's tables. */
struct dump_req_compat {
	struct nlmsghdr nh;
	struct inet_diag_req r;
	struct nlattr bc_attr;
	struct inet_diag_bc_op op;
	uint64_t cgroup_id;
} __attribute__((packed));

static int send_all(int nl, const void *msg, size_t len)
{
	struct sockaddr_nl k = { .nl_family = AF_NETLINK };
	ssize_t r;

	do
		r = sendto(nl, msg, len, 0, (struct sockaddr *)&k, sizeof(k));
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return (size_t)r == len ? 0 : -EIO;
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void parse_one(const struct nlmsghdr *h, struct diag_sock *s,
		      int64_t t)
{
	const struct inet_diag_msg *m = NLMSG_DATA(h);
	const struct nlattr *a;
	int left;

	memset(s, 0, sizeof(*s));
	s->family = m->idiag_family;
	s->state = m->idiag_state;
	s->timer = m->idiag_timer;
	s->retrans = m->idiag_retrans;
	s->expires_ms = m->idiag_expires;
	s->inode = m->idiag_inode;
	s->t_ns = t;
	s->rqueue = m->idiag_rqueue;
	s->wqueue = m->idiag_wqueue;
	s->id = m->id;
	s->cookie = (uint64_t)m->id.idiag_cookie[0] |
		    (uint64_t)m->id.idiag_cookie[1] << 32;
	a = (const struct nlattr *)((const char *)m + NLMSG_ALIGN(sizeof(*m)));
	left = (int)h->nlmsg_len - NLMSG_LENGTH(sizeof(*m));
	while (left >= (int)sizeof(*a) && a->nla_len >= sizeof(*a) &&
	       a->nla_len <= left) {
		if ((a->nla_type & NLA_TYPE_MASK) == INET_DIAG_INFO) {
			struct tcp_info ti;
			size_t n = a->nla_len - NLA_HDRLEN;

			memset(&ti, 0, sizeof(ti));
			memcpy(&ti, (const char *)a + NLA_HDRLEN,
			       n < sizeof(ti) ? n : sizeof(ti));
			s->has_info = 1;
			s->rto_us = ti.tcpi_rto;
			s->last_data_sent_ms = ti.tcpi_last_data_sent;
			s->last_data_recv_ms = ti.tcpi_last_data_recv;
			s->bytes_acked = ti.tcpi_bytes_acked;
			s->bytes_received = ti.tcpi_bytes_received;
		}
		left -= NLA_ALIGN(a->nla_len);
		a = (const struct nlattr *)((const char *)a +
					    NLA_ALIGN(a->nla_len));
	}
}

/* One request and its replies: a dump (id NULL) or the one socket id
 * names. */
static int request(int nl, int family, uint32_t states, uint64_t cgroup_id,
		   const struct inet_diag_sockid *id, diag_cb cb,
		   diag_between between, void *arg)
{
	static char buf[DIAG_BUF] __attribute__((aligned(8)));
	struct dump_req q;
	struct dump_req_compat qc;
	int saved = errno, rc = 0, stop = 0;
	size_t len = cgroup_id ? sizeof(q) : NLMSG_LENGTH(sizeof(q.r));
	size_t lenc = cgroup_id ? sizeof(qc) : NLMSG_LENGTH(sizeof(qc.r));
	struct nlattr bc_attr = {
		.nla_len = NLA_HDRLEN + sizeof(q.op) + sizeof(q.cgroup_id),
		.nla_type = INET_DIAG_REQ_BYTECODE,
	};
	/* One test: in the cgroup, go to the end (accept); else jump past
	 * it (reject). */
	struct inet_diag_bc_op op = {
		.code = INET_DIAG_BC_CGROUP_COND,
		.yes = sizeof(q.op) + sizeof(q.cgroup_id),
		.no = sizeof(q.op) + sizeof(q.cgroup_id) + 4,
	};

	if (family == AF_UNSPEC) {
		memset(&qc, 0, sizeof(qc));
		qc.nh.nlmsg_len = (uint32_t)lenc;
		qc.nh.nlmsg_type = TCPDIAG_GETSOCK;
		qc.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
		qc.r.idiag_ext = 1u << (INET_DIAG_INFO - 1);
		qc.r.idiag_states = states;
		qc.bc_attr = bc_attr;
		qc.op = op;
		qc.cgroup_id = cgroup_id;
		rc = send_all(nl, &qc, lenc);
		goto sent;
	}
	memset(&q, 0, sizeof(q));
	q.nh.nlmsg_len = (uint32_t)len;
	q.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	q.nh.nlmsg_flags = NLM_F_REQUEST | (id ? 0 : NLM_F_DUMP);
	q.r.sdiag_family = (uint8_t)family;
	q.r.sdiag_protocol = IPPROTO_TCP;
	q.r.idiag_ext = 1u << (INET_DIAG_INFO - 1);
	q.r.idiag_states = states;
	if (id)
		q.r.id = *id;
	q.bc_attr = bc_attr;
	q.op = op;
	q.cgroup_id = cgroup_id;
	rc = send_all(nl, &q, len);
sent:
	if (rc < 0) {
		errno = saved;
		return rc;
	}
	for (int batch = 0;; batch++) {
		ssize_t n;
		int64_t t;
		const struct nlmsghdr *h;

		/* The previous batch is done with (buf is free): the caller
		 * may use the other calls here. */
		if (batch && between)
			between(arg);
		n = recv(nl, buf, sizeof(buf), 0);
		t = mono_ns();

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0) {
			rc = -EIO;
			break;
		}
		for (h = (const struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
		     h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_DONE)
				goto out;
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);

				rc = e->error ? e->error : -EIO;
				goto out;
			}
			if ((h->nlmsg_type != SOCK_DIAG_BY_FAMILY &&
			     h->nlmsg_type != TCPDIAG_GETSOCK) || stop ||
			    h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
				continue;
			{
				struct diag_sock s;

				parse_one(h, &s, t);
				stop = cb(&s, arg);
			}
			/* An exact query has one answer and no DONE. */
			if (id)
				goto out;
		}
	}
out:
	errno = saved;
	return rc;
}

int diag_dump(int nl, int family, uint32_t states, uint64_t cgroup_id,
	      diag_cb cb, diag_between between, void *arg)
{
	return request(nl, family, states, cgroup_id, NULL, cb, between, arg);
}

static int copy_cb(const struct diag_sock *s, void *arg)
{
	*(struct diag_sock *)arg = *s;
	return 1;
}

int diag_get(int nl, const struct diag_sock *s, struct diag_sock *out)
{
	int rc;

	out->family = 0;
	rc = request(nl, s->family, ~0u, 0, &s->id, copy_cb, NULL, out);

	if (rc == 0 && !out->family)
		rc = -ENOENT;
	return rc;
}

/* Sends a SOCK_DESTROY for (family, id) and reads the kernel's answer. */
static int destroy_id(int nl, int family, const struct inet_diag_sockid *id)
{
	struct {
		struct nlmsghdr nh;
		struct inet_diag_req_v2 r;
	} q;
	char buf[512] __attribute__((aligned(8)));
	int saved = errno, rc;

	memset(&q, 0, sizeof(q));
	q.nh.nlmsg_len = sizeof(q);
	q.nh.nlmsg_type = SOCK_DESTROY;
	q.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	q.r.sdiag_family = (uint8_t)family;
	q.r.sdiag_protocol = IPPROTO_TCP;
	q.r.idiag_states = ~0u;
	q.r.id = *id;
	rc = send_all(nl, &q, sizeof(q));
	while (rc == 0) {
		ssize_t n = recv(nl, buf, sizeof(buf), 0);
		const struct nlmsghdr *h = (const struct nlmsghdr *)buf;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (!NLMSG_OK(h, (size_t)n)) {
			rc = -EIO;
			break;
		}
		if (h->nlmsg_type == NLMSG_ERROR) {
			rc = ((const struct nlmsgerr *)NLMSG_DATA(h))->error;
			break;
		}
	}
	errno = saved;
	return rc;
}

int diag_destroy(int nl, const struct diag_sock *s)
{
	return destroy_id(nl, s->family, &s->id);
}

int diag_destroy_tuple(int nl, uint32_t src, uint16_t sport, uint32_t dst,
		       uint16_t dport)
{
	struct inet_diag_sockid id;

	memset(&id, 0, sizeof(id));
	id.idiag_sport = sport;
	id.idiag_dport = dport;
	id.idiag_src[0] = src;
	id.idiag_dst[0] = dst;
	id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	return destroy_id(nl, AF_INET, &id);
}
