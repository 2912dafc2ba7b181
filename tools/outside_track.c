/* outside_track.c - the program's connections as the listings show them
 * (see outside_int.h; the semantics are in docs/outside.md).
 *
 * Each listing (every interval) updates every connection from its
 * tcp_info; times are back-dated from tcp_info's ages (last data sent,
 * last data received, the SYN's retransmission timer), which the kernel
 * keeps in jiffies: an age is read as "at the end of the tick it names"
 * (ticks.h), so a phase start is never put earlier than it was (a
 * deadline never fires early), and never before the previous listing,
 * which did not show the event yet.
 *
 * The earliest deadline of each connection sits in a binary heap.  When
 * the top falls due between two listings, only the connections due are
 * queried again (one exact sock_diag request each): a byte that moved
 * meanwhile moves the deadline; otherwise the connection is aborted.
 */
#include "outside_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"

struct otrack T;

/* The states a program's connection can be in while it holds the fd
 * (LISTEN is listed apart; TIME_WAIT and request sockets have no fd). */
#define CONN_STATES                                                    \
	((1u << TCP_ESTABLISHED) | (1u << TCP_SYN_SENT) |              \
	 (1u << TCP_FIN_WAIT1) | (1u << TCP_FIN_WAIT2) |               \
	 (1u << TCP_CLOSE_WAIT) | (1u << TCP_LAST_ACK) |               \
	 (1u << TCP_CLOSING))

/* ------------------------------------------------------------------------
 * The heap (key: osock.due)
 */

static void heap_set(size_t i, struct osock *s)
{
	T.heap[i] = s;
	s->heap_idx = (int32_t)i;
}

static void heap_up(size_t i)
{
	struct osock *s = T.heap[i];

	while (i > 0 && T.heap[(i - 1) / 2]->due > s->due) {
		heap_set(i, T.heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(i, s);
}

static void heap_down(size_t i)
{
	struct osock *s = T.heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= T.hn)
			break;
		if (c + 1 < T.hn && T.heap[c + 1]->due < T.heap[c]->due)
			c++;
		if (T.heap[c]->due >= s->due)
			break;
		heap_set(i, T.heap[c]);
		i = c;
	}
	heap_set(i, s);
}

static void heap_remove(struct osock *s)
{
	size_t i = (size_t)s->heap_idx;

	if (s->heap_idx < 0)
		return;
	s->heap_idx = -1;
	if (--T.hn == i)
		return;
	heap_set(i, T.heap[T.hn]);
	heap_up(i);
	heap_down((size_t)T.heap[i]->heap_idx);
}

/* Files s under its due time (0: out of the heap). */
static void heap_file(struct osock *s)
{
	if (!s->due) {
		heap_remove(s);
		return;
	}
	if (s->heap_idx >= 0) {
		heap_up((size_t)s->heap_idx);
		heap_down((size_t)s->heap_idx);
		return;
	}
	if (T.hn == T.hcap) {
		size_t nc = T.hcap ? T.hcap * 2 : 256;
		struct osock **nv = realloc(T.heap, nc * sizeof(*nv));

		if (!nv)
			return;	/* the next listing tries again */
		T.heap = nv;
		T.hcap = nc;
	}
	heap_set(T.hn++, s);
	heap_up(T.hn - 1);
}

int64_t track_due(void)
{
	return T.hn ? T.heap[0]->due : 0;
}

/* ------------------------------------------------------------------------
 * The table (open addressing by cookie)
 */

static size_t slot(uint64_t cookie, size_t cap)
{
	return (size_t)((cookie * 0x9e3779b97f4a7c15ull) >> 17) & (cap - 1);
}

static struct osock **find_slot(uint64_t cookie)
{
	for (size_t i = slot(cookie, T.cap);; i = (i + 1) & (T.cap - 1))
		if (!T.tab[i] || T.tab[i]->cookie == cookie)
			return &T.tab[i];
}

static struct osock *lookup(uint64_t cookie)
{
	return T.cap ? *find_slot(cookie) : NULL;
}

static int grow(void)
{
	size_t oc = T.cap, nc = oc ? oc * 2 : 1024;
	struct osock **old = T.tab;

	T.tab = calloc(nc, sizeof(*T.tab));
	if (!T.tab) {
		T.tab = old;
		return -1;
	}
	T.cap = nc;
	for (size_t i = 0; i < oc; i++)
		if (old[i])
			*find_slot(old[i]->cookie) = old[i];
	free(old);
	return 0;
}

static struct osock *insert(uint64_t cookie)
{
	struct osock *s;

	if ((T.n + 1) * 2 > T.cap && grow() < 0)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->cookie = cookie;
	s->heap_idx = -1;
	*find_slot(cookie) = s;
	T.n++;
	return s;
}

/* Counts s's bytes into its rule and frees it.  Removing from linear
 * probing: re-insert the rest of the run. */
static void drop(struct osock *s)
{
	struct osock **p = find_slot(s->cookie);
	size_t i = (size_t)(p - T.tab);

	if (s->rule < T.neff) {
		T.stats[s->rule].bytes_in += s->r;
		T.stats[s->rule].bytes_out += s->w - s->wbase;
	}
	heap_remove(s);
	T.tab[i] = NULL;
	T.n--;
	for (i = (i + 1) & (T.cap - 1); T.tab[i]; i = (i + 1) & (T.cap - 1)) {
		struct osock *m = T.tab[i];

		T.tab[i] = NULL;
		*find_slot(m->cookie) = m;
	}
	free(s);
}

/* ------------------------------------------------------------------------
 * Who and where
 */

/* The address of one end as a sockaddr (v4-mapped v6 shown as v4). */
static void sockaddr_of(const struct diag_sock *d, int local,
			struct sockaddr_storage *ss, socklen_t *len)
{
	const uint32_t *a = local ? d->id.idiag_src : d->id.idiag_dst;
	uint16_t port = local ? d->id.idiag_sport : d->id.idiag_dport;

	memset(ss, 0, sizeof(*ss));
	if (d->family == AF_INET6 && !(a[0] == 0 && a[1] == 0 &&
				       a[2] == htonl(0xffff))) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = port;
		memcpy(&s6->sin6_addr, a, 16);
		*len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = port;
		s4->sin_addr.s_addr = d->family == AF_INET6 ? a[3] : a[0];
		*len = sizeof(*s4);
	}
}

/* 16 bytes of an end's address, IPv4 as v4-mapped. */
static void addr16(const struct diag_sock *d, int local, uint8_t out[16])
{
	const uint32_t *a = local ? d->id.idiag_src : d->id.idiag_dst;

	if (d->family == AF_INET6) {
		memcpy(out, a, 16);
		return;
	}
	memset(out, 0, 10);
	out[10] = out[11] = 0xff;
	memcpy(out + 12, a, 4);
}

static int is_any(const uint8_t a[16])
{
	static const uint8_t v4any[16] = { [10] = 0xff, [11] = 0xff };
	static const uint8_t v6any[16];

	return !memcmp(a, v4any, 16) || !memcmp(a, v6any, 16);
}

static int ours(const struct diag_sock *d);

static int lis_cb(const struct diag_sock *d, void *arg)
{
	struct olisten *l;

	(void)arg;
	if (!ours(d))
		return 0;
	if (T.nlis == T.caplis) {
		size_t nc = T.caplis ? T.caplis * 2 : 16;
		struct olisten *nv = realloc(T.lis, nc * sizeof(*nv));

		if (!nv)
			return 0;
		T.lis = nv;
		T.caplis = nc;
	}
	l = &T.lis[T.nlis++];
	addr16(d, 1, l->addr);
	l->port = diag_sport(d);
	return 0;
}

/* Inbound: the local end is one of the program's listening sockets. */
static int inbound(const struct diag_sock *d)
{
	uint8_t a[16];

	addr16(d, 1, a);
	for (size_t i = 0; i < T.nlis; i++)
		if (T.lis[i].port == diag_sport(d) &&
		    (is_any(T.lis[i].addr) || !memcmp(T.lis[i].addr, a, 16)))
			return 1;
	return 0;
}

static uint16_t rule_for(const struct diag_sock *d, int in)
{
	struct sockaddr_storage peer, local;
	socklen_t pl, ll;
	struct conf_peer p;
	const struct conf_rule *r;

	if (!T.conf.nrules)
		return 0;
	sockaddr_of(d, 0, &peer, &pl);
	sockaddr_of(d, 1, &local, &ll);
	memset(&p, 0, sizeof(p));
	p.addr = (struct sockaddr *)&peer;	/* host: no name is known */
	p.addrlen = pl;
	p.local = (struct sockaddr *)&local;
	p.locallen = ll;
	p.inbound = in;
	r = conf_match(&T.conf, &p);
	return r && r->index < T.neff ? r->index : 0;
}

/* ------------------------------------------------------------------------
 * Phases
 */

static int64_t clamp(int64_t t, int64_t lo, int64_t hi)
{
	return t < lo ? lo : t > hi ? hi : t;
}

/* When something tcp_info dates "age_ms ago" happened, at the latest. */
static int64_t ago(int64_t now, uint32_t age_ms)
{
	return ticks_ago(&T.ticks, now, age_ms);
}

/* When a pending connect started: its SYN timer was armed at connect()
 * for one RTO and has expires_ms left (first SYN only). */
static int64_t syn_start(const struct diag_sock *d, int64_t now)
{
	uint32_t rto_ms = d->rto_us / 1000;

	if (d->has_info && d->retrans == 0 && d->timer == 1 &&
	    rto_ms >= d->expires_ms)
		return ago(now, rto_ms - d->expires_ms);
	return now;
}

static const struct dl_limits *limits_of(const struct osock *s)
{
	return &T.eff[s->rule < T.neff ? s->rule : 0].limits;
}

/* The earliest armed deadline of s into s->due / s->due_ph. */
static void compute_due(struct osock *s)
{
	const struct dl_limits *l = limits_of(s);
	int64_t start[DL_PH_COUNT] = {
		[DL_PH_CONNECT] = s->connecting ? s->t_conn : 0,
		[DL_PH_FIRST_BYTE] = s->t_fb,
		[DL_PH_IDLE] = s->t_move,
		[DL_PH_REQUEST] = s->t_req,
	};

	s->due = 0;
	for (int ph = 0; ph < DL_PH_COUNT; ph++) {
		int64_t t;

		if (!l->ms[ph] || !start[ph])
			continue;
		t = start[ph] + (int64_t)l->ms[ph] * CLOCK_NS_PER_MS;
		if (!s->due || t < s->due) {
			s->due = t;
			s->due_ph = (uint8_t)ph;
		}
	}
}

static void on_write(struct osock *s, int64_t t)
{
	if (!s->inbound && s->turn == TURN_READ)
		s->t_req = t;	/* a new request on a kept-alive connection */
	s->turn = TURN_WROTE;
	s->t_fb = t;		/* the peer's first byte is awaited */
	if (t > s->t_move)
		s->t_move = t;
}

static void on_read(struct osock *s, int64_t t)
{
	if (s->inbound && s->turn == TURN_WROTE)
		s->t_req = t;	/* the client's next request */
	s->turn = TURN_READ;
	s->t_fb = 0;
	if (t > s->t_move)
		s->t_move = t;
}

/* A new connection: when it started, by what tcp_info says. */
static void start(struct osock *s, const struct diag_sock *d, int64_t now)
{
	int64_t lo = T.t_prev_list ? T.t_prev_list : now, t;

	s->inbound = (uint8_t)inbound(d);
	s->rule = rule_for(d, s->inbound);
	if (s->rule < T.neff)
		T.stats[s->rule].conns++;
	if (T.first) {
		/* Already there when we attached: clocks start now, and
		 * the bytes so far are the baseline. */
		s->connecting = d->state == TCP_SYN_SENT;
		s->t_conn = s->t_req = s->t_move = now;
		s->w = s->wbase = d->bytes_acked + d->wqueue;
		s->r = d->bytes_received;
		s->rd = s->r - d->rqueue;
		if (s->r || s->w)
			s->turn = d->last_data_recv_ms < d->last_data_sent_ms
					  ? TURN_READ : TURN_WROTE;
		return;
	}
	if (d->state == TCP_SYN_SENT) {
		s->connecting = 1;
		t = clamp(syn_start(d, now), lo, now);
	} else {
		/* Established before we saw it: lsndtime was set when the
		 * handshake completed (or later, at data), so no earlier. */
		t = clamp(ago(now, d->last_data_sent_ms), lo, now);
	}
	s->t_conn = s->t_req = s->t_move = t;
	/* Events of the first sample are dated from the start on. */
	s->t_sample = t;
	/* An outbound connection's SYN counts in bytes_acked (or, while
	 * pending, in the write queue): one byte nobody wrote. */
	s->wbase = s->w = s->inbound ? 0 : 1;
	if (s->inbound)
		s->t_fb = t;	/* the client's first byte */
}

/* Folds a fresh sample of s in. */
static void update(struct osock *s, const struct diag_sock *d, int64_t now)
{
	uint64_t w = d->bytes_acked + d->wqueue, r = d->bytes_received;
	uint64_t rd = r >= d->rqueue ? r - d->rqueue : 0;
	int64_t lo = s->t_sample ? s->t_sample : now;
	int dw = w > s->w, dr = r > s->r;
	int64_t tw = clamp(ago(now, d->last_data_sent_ms), lo, now);
	int64_t tr = clamp(ago(now, d->last_data_recv_ms), lo, now);

	if (s->connecting && d->state != TCP_SYN_SENT)
		s->connecting = 0;
	if (dw && dr && tr < tw) {
		on_read(s, tr);
		on_write(s, tw);
	} else {
		if (dw)
			on_write(s, tw);
		if (dr)
			on_read(s, tr);
	}
	/* The program consumed queued bytes: they moved for it. */
	if (rd > s->rd && now > s->t_move)
		s->t_move = now;
	if (w > s->w)
		s->w = w;
	if (r > s->r)
		s->r = r;
	if (rd > s->rd)
		s->rd = rd;
	s->last = *d;
	s->t_sample = now;
	compute_due(s);
}

/* ------------------------------------------------------------------------
 * Expiry
 */

/* The process and fd holding inode ino, for the log line: the inode map,
 * checked with one readlink.  On a miss every socket of the program's
 * processes is mapped at once, so that a burst of expiries costs one walk
 * of /proc, not one each (it is on the way to the abort).  A launch's
 * group keeps no map otherwise: it is rebuilt whole, holding only the
 * sockets open now; the inode mode's listings prune theirs. */
static void holder(uint32_t ino, pid_t *pid, int *fd)
{
	struct oino *e = oino_get(&T.inos, ino);

	*pid = 0;
	*fd = -1;
	if (!e || !e->pid || !proc_fd_holds(e->pid, e->fd, ino)) {
		pid_t *pids = NULL;
		size_t n = T.cg_dir ? proc_cgroup_pids(T.cg_dir, &pids)
				    : proc_tree(T.root, &pids);

		if (T.cgroup_id)
			oino_free(&T.inos);
		proc_scan_sockets(&T.inos, pids, n);
		free(pids);
		e = oino_get(&T.inos, ino);
	}
	if (e && e->pid) {
		*pid = e->pid;
		*fd = e->fd;
	}
}

static void log_expiry(const struct osock *s, int64_t now, int64_t start,
		       pid_t pid, int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char addr[INET6_ADDRSTRLEN] = "-";
	uint16_t port = 0;
	const struct conf_effective *e = &T.eff[s->rule < T.neff ? s->rule : 0];

	sockaddr_of(&s->last, 0, &ss, &sl);
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &a->sin_addr, addr, sizeof(addr));
		port = ntohs(a->sin_port);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &a->sin6_addr, addr, sizeof(addr));
		port = ntohs(a->sin6_port);
	}
	{
		const struct dl_field f[] = {
			{ "event", "deadline", 0 },
			{ "fd", 0, fd },
			{ "host", addr, 0 },
			{ "addr", addr, 0 },
			{ "port", 0, port },
			{ "rule", e->rule_name, 0 },
			{ "phase", policy_phase_name((enum dl_phase)s->due_ph), 0 },
			{ "limit_ms", 0, limits_of(s)->ms[s->due_ph] },
			{ "elapsed_ms", 0, (now - start) / CLOCK_NS_PER_MS },
			{ "mode", "outside", 0 },
			{ "target_pid", 0, pid },
			{ "direction", s->inbound ? "inbound" : "outbound", 0 },
		};

		dl_log_fields(f, (int)(sizeof(f) / sizeof(f[0])));
	}
}

/* s is due at now (fresh sample): abort it.  Returns 1 when it was. */
static int expire(struct osock *s, int64_t now)
{
	int64_t start;
	pid_t pid;
	int rc, fd;

	switch (s->due_ph) {
	case DL_PH_CONNECT:
		start = s->t_conn;
		break;
	case DL_PH_FIRST_BYTE:
		start = s->t_fb;
		break;
	case DL_PH_IDLE:
		start = s->t_move;
		break;
	default:
		start = s->t_req;
		break;
	}
	/* Who holds it, before the program can react and close it. */
	holder(s->last.inode, &pid, &fd);
	rc = diag_destroy(T.nl_kill, &s->last);
	if (rc == -ENOENT)
		return 0;	/* closed meanwhile: nothing to end */
	if (rc < 0) {
		dl_log_warn("outside: cannot abort the connection to port %u: "
			    "%s", diag_dport(&s->last), strerror(-rc));
		s->due = 0;	/* once: never retried in a loop */
		heap_file(s);
		return 0;
	}
	log_expiry(s, now, start, pid, fd);
	if (s->rule < T.neff)
		T.stats[s->rule].expiries[s->due_ph]++;
	T.expired++;
	return 1;
}

/* ------------------------------------------------------------------------
 * Listings
 */

/* Whether a listed socket is the program's (inode mode: by its fd). */
static int ours(const struct diag_sock *d)
{
	struct oino *e;

	if (!d->inode)
		return 0;	/* not accepted yet, or the program closed it */
	if (T.cgroup_id)
		return 1;
	e = oino_get(&T.inos, d->inode);
	if (!e) {
		e = oino_put(&T.inos, d->inode);
		T.rescan = 1;
		return 0;
	}
	e->seen = T.gen;
	if (!e->pid && e->misses < 2)
		T.rescan = 1;	/* not found yet: fd install may race */
	return e->pid != 0;
}

static int conn_cb(const struct diag_sock *d, void *arg)
{
	/* Ages are relative to when the kernel wrote the reply, and d->t_ns
	 * is no earlier: dating from it never puts an event too early. */
	int64_t now = d->t_ns;
	struct osock *s;

	(void)arg;

	if (!ours(d))
		return 0;
	s = lookup(d->cookie);
	if (s && s->ended)
		return 0;	/* not seen: dropped at the listing's end */
	if (!s) {
		s = insert(d->cookie);
		if (!s)
			return 0;
		start(s, d, now);
	}
	s->seen = T.gen;
	update(s, d, now);
	heap_file(s);
	return 0;
}

/* Inode mode: who owns the inodes the listing showed. */
static void rescan(void)
{
	pid_t *pids;
	size_t n = proc_tree(T.root, &pids);

	proc_scan_sockets(&T.inos, pids, n);
	free(pids);
	for (size_t i = 0; i < T.inos.cap; i++) {
		struct oino *e = &T.inos.v[i];

		if (e->ino && !e->pid && e->misses < 2)
			e->misses++;
	}
	T.rescan = 0;
}

/* Entries of the inode map no listing showed lately. */
static void prune_inos(void)
{
	for (size_t i = 0; i < T.inos.cap;) {
		struct oino *e = &T.inos.v[i];

		if (e->ino && T.gen - e->seen > 2 && !e->pid) {
			oino_del(&T.inos, e->ino);
			continue;	/* slot i was refilled */
		}
		i++;
	}
}

/* s is done with: aborted, or gone.  During a listing, the batches the
 * kernel already filled may still show it: it stays in the table, marked,
 * until the listing's end drops what it did not see. */
static void end(struct osock *s)
{
	if (!T.listing) {
		drop(s);
		return;
	}
	s->ended = 1;
	s->due = 0;
	heap_remove(s);
}

/* Ends the connections due at now, asking over netlink socket nl. */
static void expire_due(int nl, int64_t now)
{
	while (T.hn && T.heap[0]->due <= now) {
		struct osock *s = T.heap[0];
		struct diag_sock d;

		/* The listing may be up to an interval old: ask again. */
		if (diag_get(nl, &s->last, &d) < 0 || !d.inode) {
			end(s);
			continue;
		}
		now = d.t_ns;
		update(s, &d, now);
		if (s->due && s->due <= now) {
			expire(s, now);
			end(s);
			continue;
		}
		heap_file(s);
	}
}

/* One dump of both families: listening sockets come first (the kernel
 * walks its listening table before the established one), so a
 * connection's direction is known when it is met. */
static int list_cb(const struct diag_sock *d, void *arg)
{
	if (d->state == TCP_LISTEN)
		return lis_cb(d, arg);
	return conn_cb(d, arg);
}

/* Between two batches of a listing: what fell due meanwhile is ended
 * now, not after the whole walk (milliseconds with thousands of
 * sockets); the listing's own netlink socket is busy, the other one
 * asks. */
static void list_between(void *arg)
{
	(void)arg;
	expire_due(T.nl_kill, clock_now());
}

static int list_all(void)
{
	T.nlis = 0;
	return diag_dump(T.nl, AF_UNSPEC, CONN_STATES | (1u << TCP_LISTEN),
			 T.cgroup_id, list_cb, list_between, NULL);
}

int track_list(void)
{
	int64_t now = clock_now();
	int rc;

	T.gen++;
	T.t_prev_list = T.t_list;
	T.t_list = now;
	T.listing = 1;
	rc = list_all();
	if (rc == 0 && T.rescan) {
		/* New inodes: find their owners, then list again so that
		 * they are followed from this very listing. */
		rescan();
		rc = list_all();
	}
	T.listing = 0;
	if (rc < 0)
		return rc;
	/* Gone from the listing: closed by the program, or ended. */
	for (size_t i = 0; i < T.cap;) {
		struct osock *s = T.tab[i];

		if (s && s->seen != T.gen) {
			drop(s);
			continue;	/* slot i may hold another now */
		}
		i++;
	}
	if (!T.cgroup_id)
		prune_inos();
	T.first = 0;
	track_expire_due(clock_now());
	return 0;
}

void track_expire_due(int64_t now)
{
	expire_due(T.nl, now);
}

void track_forget_all(void)
{
	for (size_t i = 0; i < T.cap;) {
		if (T.tab[i]) {
			drop(T.tab[i]);
			continue;
		}
		i++;
	}
}
