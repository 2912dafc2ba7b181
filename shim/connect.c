/* connect.c - connect() under a connect deadline.
 *
 * A blocking program's connect is driven non-blocking (O_NONBLOCK for the
 * one call, restored exactly) and waits in the private set until the
 * handshake completes or the connect deadline passes; a rule's
 * connect_retries then try again (the next address learnt for the name)
 * after a jittered back-off.  An event loop's connect passes through and
 * learns the result from SO_ERROR, which reports the expiry errno after a
 * teardown.  This is where a connection starts being tracked and its
 * first deadlines are armed.
 */
#include "engine_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <unistd.h>

#include "inject.h"
#include "log.h"
#include "real.h"

/* ------------------------------------------------------------------------
 * connect
 */

/* Wait for the handshake a blocking connect() started. */
static int connect_wait(int fd, struct dl_conn *c)
{
	for (;;) {
		int err = 0;
		socklen_t el = sizeof(err);
		uint32_t gen = conn_gen(c);
		struct dl_conn snap;
		int hold;

		switch (wait_private(fd, c, POLLOUT,
				     CONN_LOAD(c->sndtimeo_ms))) {
		case W_ORPHANED:
			/* Closed during its own connect: nothing to finish. */
			hold = holds_orphan_take(c, gen, &snap);
			if (hold >= 0)
				holds_close(hold);
			errno = EBADF;
			return -1;
		case W_READY:
			break;
		case W_EXPIRED:
			return -1;
		case W_APP_TIMEOUT:
			errno = EINPROGRESS; /* what the kernel says */
			return -1;
		case W_INTR:
			errno = EINTR;
			return -1;
		case W_ERROR:
			return -1;
		}
		/* A connecting socket reports POLLOUT alone once the
		 * handshake succeeded; a failure comes with ERR/HUP. */
		if (dl_self.w.last_events & (POLLERR | POLLHUP)) {
			if (REAL(getsockopt)(fd, SOL_SOCKET, SO_ERROR, &err,
					     &el) < 0)
				return -1;
			if (err) {
				errno = err;
				return -1;
			}
		}
		conn_connected(c);
		observe_connected(fd, c);
		/* The kernel still says "connecting" until connect() is
		 * called again; done lazily if the program ever does. */
		__atomic_fetch_or(&c->st, CONN_UNSETTLED, __ATOMIC_ACQ_REL);
		return 0;
	}
}

/* Is fd still in its handshake (TCP_INFO: SYN sent)?  A connect() that
 * returned 0 at once with TCP_FASTOPEN_CONNECT set and a cookie known has
 * sent nothing yet: the first write's SYN carries the data
 * (connect_write); until its handshake is done the connection is still
 * connecting, under its connect deadline.  errno kept. */
static int connect_syn_sent(int fd)
{
	struct tcp_info ti;
	socklen_t l = sizeof(ti);
	int saved = errno, r;

	memset(&ti, 0, sizeof(ti));
	r = REAL(getsockopt)(fd, IPPROTO_TCP, TCP_INFO, &ti, &l) == 0 &&
	    ti.tcpi_state == TCP_SYN_SENT;
	errno = saved;
	return r;
}

/* Where a faulted connection goes, for the log: a fault may keep its
 * connect() from reaching the kernel, which then cannot say (expire.c
 * asks it, SO_PEERNAME, for every other connection).  Costs a cold entry
 * (fdtab.h) only for such connections. */
static void remember_peer(int fd, const struct sockaddr *addr, socklen_t len)
{
	struct dl_cold *p = fdtab_cold_get(fd);

	if (!p)
		return;
	memset(&p->addr, 0, sizeof(p->addr));
	memcpy(&p->addr, addr, len < sizeof(p->addr) ? len : sizeof(p->addr));
}

/* One blocking attempt: O_NONBLOCK for the connect() call only, restored
 * exactly as it was, then the private wait.  fl: the file's flags. */
static int connect_blocking_once(int fd, struct dl_conn *c,
				 const struct sockaddr *addr, socklen_t len,
				 int fl, unsigned attempt)
{
	int r, e, saved = errno;

	if (inject_on && inject_has(fd, conn_gen(c))) {
		int64_t until;
		int ferr;
		enum inj_connect k = inject_connect(fd, attempt, 0, clock_now(),
						    &until, &ferr);

		if (k == INJ_C_DELAY || k == INJ_C_FAIL) {
			switch (wait_until(fd, c, until ? until : INT64_MAX,
					   CONN_LOAD(c->sndtimeo_ms))) {
			case W_READY:
				break;
			case W_EXPIRED:
				return -1;
			case W_APP_TIMEOUT:
				errno = EINPROGRESS;
				return -1;
			case W_INTR:
				errno = EINTR;
				return -1;
			default:
				errno = EBADF;
				return -1;
			}
			if (k == INJ_C_FAIL) {
				errno = ferr;
				return -1;
			}
		}
		errno = saved;
	}

	if (REAL(fcntl64)(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return REAL(connect)(fd, addr, len);
	r = REAL(connect)(fd, addr, len);
	e = errno;
	REAL(fcntl64)(fd, F_SETFL, fl);
	if (r == 0) {
		if (!connect_syn_sent(fd))
			conn_connected(c);
		errno = saved;
		return 0;
	}
	if (e != EINPROGRESS) {
		errno = e;
		return -1;
	}
	errno = saved;
	return connect_wait(fd, c);
}

static int retryable(const struct dl_conn *c, int e)
{
	if (e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH)
		return 1;
	/* A connect deadline, not the request deadline, may be retried. */
	return (conn_state(c) & CONN_EXPIRED) &&
	       conn_expired_phase(c) == DL_PH_CONNECT;
}

/* Full jitter: uniform in [0, min(max, base * 2^attempt)] ms. */
static uint32_t backoff_ms(const struct conf_effective *e, unsigned attempt)
{
	static __thread uint64_t rng;
	uint64_t cap = e->backoff_base_ms ? e->backoff_base_ms : 1;

	while (attempt-- && cap < e->backoff_max_ms)
		cap *= 2;
	if (e->backoff_max_ms && cap > e->backoff_max_ms)
		cap = e->backoff_max_ms;
	if (!rng)
		rng = (uint64_t)clock_now() ^ ((uint64_t)getpid() << 32) ^
		      (uint64_t)(uintptr_t)&rng;
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % (cap + 1));
}

static void log_retry(int fd, const struct dl_conn *c, unsigned attempt,
		      const struct sockaddr *cur, const struct sockaddr *next,
		      int err, uint32_t wait_ms)
{
	struct expiry x;
	char nexta[INET6_ADDRSTRLEN] = "-";

	/* The attempt that failed: the kernel forgot where it went. */
	expire_describe_addr(cur, &x);
	if (next->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)next)->sin_addr,
			  nexta, sizeof(nexta));
	else if (next->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
			  &((const struct sockaddr_in6 *)next)->sin6_addr, nexta,
			  sizeof(nexta));
	{
		const struct dl_field f[] = {
			{ "event", "retry", 0 },
			{ "fd", 0, fd },
			{ "host", x.host, 0 },
			{ "addr", x.addr, 0 },
			{ "port", 0, x.port },
			{ "rule", eff_of(c)->rule_name, 0 },
			{ "attempt", 0, attempt },
			{ "error", strerrorname_np(err) ? strerrorname_np(err) : "?", 0 },
			{ "next_addr", nexta, 0 },
			{ "backoff_ms", 0, wait_ms },
		};
		dl_log_fields(f, (int)(sizeof(f) / sizeof(f[0])));
	}
}

/* Sleep ms, or less if the request deadline comes first.  Returns 0, or -1
 * when the request deadline would pass (no time left to retry). */
static int backoff_sleep(const struct dl_conn *c, uint32_t ms)
{
	int64_t now = clock_now();
	int64_t until = now + (int64_t)ms * 1000000ll;
	int64_t req = __atomic_load_n(&c->dl[DL_PH_REQUEST], __ATOMIC_RELAXED);
	struct timespec ts;

	if (req && until >= req)
		return -1;
	ts.tv_sec = (time_t)(until / 1000000000ll);
	ts.tv_nsec = (long)(until % 1000000000ll);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, 0) == EINTR)
		;
	return 0;
}

/* Start tracking fd's connection to addr (outbound): its rule, the
 * connect and request deadlines from now, its faults (*faulted, when
 * faulted is not NULL).  NULL when nothing applies or fd is not a TCP
 * socket: the caller passes the call through.  errno may change. */
static struct dl_conn *connect_track(int fd, struct dl_conn *c, uint32_t st,
				     const struct sockaddr *addr, socklen_t len,
				     int *faulted)
{
	uint16_t rule = engine_rule_for(fd, addr, len, 0);
	int f = inject_on && engine_faults_attach(fd, c, rule, addr, len, 0, 1);

	if (!engine_rule_active(rule) && !f)
		return 0;
	if (!(st & CONN_SOCK)) {
		if (!track_sock_is_tcp(fd) || !(c = fdtab_get(fd)))
			return 0;
		__atomic_store_n(&c->st, CONN_SOCK, __ATOMIC_RELEASE);
	}
	CONN_STORE(c->rule, rule);
	/* A socket the shim saw created (socket(), accept()) is forgotten at
	 * its every close; any other could be closed where the shim cannot
	 * see, and its number reused: its inode tells. */
	track_cold_clear(fd);
	if (!(st & CONN_SOCK)) {
		struct dl_cold *cold = fdtab_cold_get(fd);

		if (cold)
			CONN_STORE(cold->ino, track_inode_of(fd));
	}
	if (f)
		remember_peer(fd, addr, len);
	conn_start(c, limits_of(c), 0, 1, clock_now());
	observe_conn(fd, c, addr, len, 0);
	stats_count(&stats_of(c)->conns, 1);
	inject_announce();	/* the faults line, once per process */
	DL_DEBUG("track fd=%d outbound rule=%s limits_ms=%u/%u/%u/%u", fd,
		 eff_of(c)->rule_name, limits_of(c)->ms[0], limits_of(c)->ms[1],
		 limits_of(c)->ms[2], limits_of(c)->ms[3]);
	expire_refile(fd, c);
	if (f)
		f = engine_faults_attach(fd, c, rule, addr, len, 0, 0);
	if (faulted)
		*faulted = f;
	return c;
}

int engine_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	struct dl_conn *c = fdtab_peek(fd);
	uint32_t st = c ? conn_state(c) : 0;
	int fl = -1, r, e, saved = errno, faulted = 0;

	dl_self.intr = 0; /* only a handler deferred during this call counts */
	if ((st & CONN_EXPIRED) && expire_fail(fd, c))
		return -1;
	if (!addr || len < sizeof(sa_family_t) ||
	    (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)) {
		r = REAL(connect)(fd, addr, len);
		if (st && addr && addr->sa_family == AF_UNSPEC) {
			/* The program dissolved the association itself. */
			e = errno;
			engine_on_close(fd);
			__atomic_store_n(&c->st,
					 st & (CONN_SOCK | CONN_NONBLOCK |
					       CONN_NBKNOWN | CONN_SHARED),
					 __ATOMIC_RELEASE);
			errno = e;
		}
		return r;
	}
	if ((st & CONN_TRACKED) && (st & CONN_CONNECTING)) {
		/* A second connect() while the handshake runs. */
		if (!track_app_nonblocking(fd, c, 0)) {
			r = connect_wait(fd, c);
			if (r < 0 && errno != EINTR &&
			    !(conn_state(c) & CONN_EXPIRED)) {
				e = errno;
				engine_on_close(fd);
				errno = e;
			}
			return r;
		}
		r = REAL(connect)(fd, addr, len);
		if (r == 0 || errno == EISCONN) {
			e = errno;
			conn_connected(c);
			errno = e;
		}
		return r;
	}
	if (st & CONN_TRACKED) {
		if (st & CONN_UNSETTLED) {
			/* Leave the state a native blocking connect leaves
			 * (this returns 0), so the answer below is EISCONN. */
			REAL(connect)(fd, addr, len);
			__atomic_fetch_and(&c->st, ~(uint32_t)CONN_UNSETTLED,
					   __ATOMIC_ACQ_REL);
			errno = saved;
		}
		return REAL(connect)(fd, addr, len);
	}
	c = connect_track(fd, c, st, addr, len, &faulted);
	if (!c) {
		errno = saved;
		return REAL(connect)(fd, addr, len);
	}
	errno = saved;

	if (track_app_nonblocking(fd, c, &fl)) {
		if (faulted) {
			int64_t until;
			int ferr;

			if (inject_connect(fd, 0, 1, clock_now(), &until,
					   &ferr) == INJ_C_HIDDEN) {
				/* Delayed: the handshake starts now, its
				 * outcome is hidden until then.  Failed or
				 * blackholed: no handshake at all. */
				if (!ferr)
					REAL(connect)(fd, addr, len);
				errno = EINPROGRESS;
				return -1;
			}
		}
		/* Event loops learn the result later (SO_ERROR): no retries. */
		r = REAL(connect)(fd, addr, len);
		e = errno;
		if (r == 0 && !connect_syn_sent(fd))
			conn_connected(c);
		else if (r < 0 && e != EINPROGRESS && e != EINTR)
			engine_on_close(fd);
		errno = e;
		return r;
	}
	if (fl < 0) {
		errno = saved;
		return REAL(connect)(fd, addr, len);
	}
	{
		const struct conf_effective *ef = eff_of(c);
		struct sockaddr_storage cur;
		socklen_t curlen = len < sizeof(cur) ? len : sizeof(cur);
		char name[NAMES_NAME_MAX + 1];
		int have_name = names_lookup(addr, name, sizeof(name));

		memcpy(&cur, addr, curlen);
		for (unsigned attempt = 1;; attempt++) {
			struct sockaddr_storage next;
			socklen_t nlen = sizeof(next);
			int64_t req;
			uint32_t wait;

			r = connect_blocking_once(fd, c, (struct sockaddr *)&cur,
						  curlen, fl, attempt - 1);
			if (r == 0 || errno == EINTR)
				return r;
			e = errno;
			if (attempt > ef->connect_retries || !retryable(c, e))
				break;
			/* Next: another address the program resolved for
			 * that name, after a jittered back-off. */
			next = cur;
			nlen = curlen;
			if (have_name)
				names_next_addr(name, (struct sockaddr *)&cur,
						(struct sockaddr *)&next, &nlen);
			wait = backoff_ms(ef, attempt - 1);
			log_retry(fd, c, attempt, (struct sockaddr *)&cur,
				  (struct sockaddr *)&next, e, wait);
			stats_count(&stats_of(c)->retries, 1);
			if (backoff_sleep(c, wait) < 0)
				break;
			cur = next;
			curlen = nlen;
			{
				/* A failed handshake leaves the socket
				 * "connecting"; dissolve it so it may try
				 * again. */
				struct sockaddr unspec = { .sa_family = AF_UNSPEC };
				REAL(connect)(fd, &unspec, sizeof(unspec));
			}
			/* A fresh connect deadline; the request one runs on. */
			req = __atomic_load_n(&c->dl[DL_PH_REQUEST],
					      __ATOMIC_RELAXED);
			conn_start(c, limits_of(c), 0, 1, clock_now());
			if (req)
				__atomic_store_n(&c->dl[DL_PH_REQUEST], req,
						 __ATOMIC_RELAXED);
			remember_peer(fd, (struct sockaddr *)&cur, curlen);
			expire_refile(fd, c);
		}
	}
	/* Failed for good.  A deadline keeps the fd expired (ETIMEDOUT until
	 * close); a refusal leaves nothing to bound. */
	if (!(conn_state(c) & CONN_EXPIRED))
		engine_on_close(fd);
	errno = e;
	return -1;
}

/* ------------------------------------------------------------------------
 * Writes that make the handshake: TCP Fast Open
 *
 * sendto/sendmsg with MSG_FASTOPEN connect and send in one call (the data
 * rides on the SYN when the kernel has a cookie for the server); with
 * TCP_FASTOPEN_CONNECT, connect() returns at once and the first write
 * does it.  Either way the write is where the handshake happens: it is
 * made with MSG_DONTWAIT, and a blocking program then waits for the
 * handshake in the private set under the connect deadline (connect_wait)
 * before the rest of its data goes like any write.  Not retried: the
 * request may already have reached the server in the SYN.
 */

/* The write as one attempt that does not wait (MSG_DONTWAIT). */
static ssize_t cw_attempt(int fd, struct dl_io *io)
{
	struct msghdr m;

	if (io->xfer)
		return io->xfer(fd, io, 0, io->len, 1);
	switch (io->op) {
	case OP_WRITE:
		return REAL(send)(fd, io->buf, io->len, MSG_DONTWAIT);
	case OP_SEND:
		return REAL(send)(fd, io->buf, io->len, io->flags | MSG_DONTWAIT);
	case OP_SENDTO:
		return REAL(sendto)(fd, io->buf, io->len, io->flags | MSG_DONTWAIT,
				    io->to, io->tolen);
	case OP_WRITEV:
		memset(&m, 0, sizeof(m));
		m.msg_iov = (struct iovec *)io->iov;
		m.msg_iovlen = (size_t)io->iovcnt;
		return REAL(sendmsg)(fd, &m, MSG_DONTWAIT);
	case OP_SENDMSG:
		return REAL(sendmsg)(fd, io->msg, io->flags | MSG_DONTWAIT);
	default:
		errno = EINVAL;
		return -1;
	}
}

static size_t cw_total(const struct dl_io *io)
{
	const struct iovec *v = io->op == OP_WRITEV ? io->iov
			      : io->op == OP_SENDMSG ? io->msg->msg_iov : 0;
	size_t n = io->op == OP_WRITEV ? (size_t)io->iovcnt
		 : io->op == OP_SENDMSG ? io->msg->msg_iovlen : 0, t = 0;

	if (!v)
		return io->len;
	for (size_t i = 0; i < n; i++)
		t += v[i].iov_len;
	return t;
}

/* n bytes of io went out (on the SYN while still connecting: the connect
 * deadline stays armed until the handshake is done). */
static void cw_sent(int fd, struct dl_conn *c, struct dl_io *io, ssize_t n,
		    int connecting)
{
	int64_t cdl = __atomic_load_n(&c->dl[DL_PH_CONNECT], __ATOMIC_RELAXED);
	int earlier;

	if (n <= 0)
		return;
	stats_count(&stats_of(c)->bytes_out, (uint64_t)n);
	if (!connecting)
		observe_moved(fd, c, 1);
	earlier = conn_on_write(c, limits_of(c), n, clock_now);
	if (connecting && cdl) {
		__atomic_store_n(&c->dl[DL_PH_CONNECT], cdl, __ATOMIC_RELAXED);
		__atomic_fetch_or(&c->st, CONN_CONNECTING, __ATOMIC_ACQ_REL);
	}
	if (earlier)
		expire_refile(fd, c);
	exchange_moved(fd, c, 1, io->xfer ? 0 : io, 0, (size_t)n);
}

/* The rest of io after its first off bytes, as a plain write on the
 * connection now established (no MSG_FASTOPEN, no address). */
static ssize_t cw_rest(int fd, struct dl_io *io, size_t off)
{
	struct dl_io rest = *io;
	struct msghdr m;
	struct iovec small[8], *iv = small;
	const struct iovec *src = 0;
	size_t cnt = 0;
	ssize_t r;

	rest.flags &= ~MSG_FASTOPEN;
	rest.to = 0;
	rest.tolen = 0;
	if (io->xfer) {
		rest.len -= off;
		rest.xfinal = 0;
		return engine_io(fd, &rest);
	}
	if (io->op != OP_WRITEV && io->op != OP_SENDMSG) {
		rest.op = OP_SEND;
		rest.buf = (char *)io->buf + off;
		rest.len -= off;
		return engine_io(fd, &rest);
	}
	memset(&m, 0, sizeof(m));
	if (io->op == OP_WRITEV) {
		src = io->iov;
		cnt = (size_t)io->iovcnt;
		rest.flags = 0;
	} else {
		src = io->msg->msg_iov;
		cnt = io->msg->msg_iovlen;
		if (!off) { /* nothing went yet: ancillary data goes now */
			m.msg_control = io->msg->msg_control;
			m.msg_controllen = io->msg->msg_controllen;
		}
	}
	while (cnt && off >= src->iov_len) {
		off -= src->iov_len;
		src++;
		cnt--;
	}
	if (cnt > sizeof(small) / sizeof(small[0]) &&
	    !(iv = malloc(cnt * sizeof(*iv))))
		return -1;
	for (size_t i = 0; i < cnt; i++)
		iv[i] = src[i];
	if (cnt) {
		iv[0].iov_base = (char *)iv[0].iov_base + off;
		iv[0].iov_len -= off;
	}
	m.msg_iov = iv;
	m.msg_iovlen = cnt;
	rest.op = OP_SENDMSG;
	rest.msg = &m;
	r = engine_io(fd, &rest);
	if (iv != small) {
		int e = errno;
		free(iv);
		errno = e;
	}
	return r;
}

/* r bytes of io went: write the rest (a blocking write moves it all),
 * and report the whole, or the rest's error if nothing went before it. */
static ssize_t cw_finish(int fd, struct dl_io *io, ssize_t r, int saved)
{
	ssize_t w = cw_rest(fd, io, (size_t)r);

	if (w < 0 && r == 0)
		return -1;
	errno = saved;
	return r + (w > 0 ? w : 0);
}

/* connect_write (engine_int.h), between the marks. */
static ssize_t cw_write(int fd, struct dl_conn *c, struct dl_io *io, int began)
{
	int blocking = !(io->flags & MSG_DONTWAIT) &&
		       !track_app_nonblocking(fd, c, 0);
	int saved = errno, e;
	ssize_t r;

	r = cw_attempt(fd, io);
	e = errno;
	if (r < 0 && e != EINPROGRESS && e != EAGAIN && e != EWOULDBLOCK) {
		/* Refused, unreachable...: nothing left to bound. */
		if (began && e != EINTR && !(conn_state(c) & CONN_EXPIRED))
			engine_on_close(fd);
		errno = e;
		return -1;
	}
	if (r >= 0 && !connect_syn_sent(fd)) {
		/* Connected already: an ordinary write. */
		conn_connected(c);
		cw_sent(fd, c, io, r, 0);
		if (!blocking || (size_t)r >= cw_total(io)) {
			errno = saved;
			return r;
		}
		return cw_finish(fd, io, r, saved);
	}
	/* The handshake runs; r bytes (if any) went on the SYN. */
	cw_sent(fd, c, io, r, 1);
	if (!blocking) {
		if (r >= 0) {
			errno = saved;
			return r;
		}
		/* A connection past its deadline never answers EAGAIN. */
		if (e != EINPROGRESS && expire_overdue(fd, c, clock_now()))
			return -1;
		errno = e;
		return -1;
	}
	if (connect_wait(fd, c) < 0) {
		/* The handshake failed or its deadline passed: the kernel
		 * reports that, whatever the SYN carried. */
		e = errno;
		if (began && e != EINTR && !(conn_state(c) & CONN_EXPIRED))
			engine_on_close(fd);
		errno = e;
		return -1;
	}
	if (r < 0)
		r = 0;
	if ((size_t)r >= cw_total(io)) {
		errno = saved;
		return r;
	}
	return cw_finish(fd, io, r, saved);
}

/* A reply another thread reads must wait for this write's account
 * (exchange.c): from before the attempt to after cw_sent. */
ssize_t connect_write(int fd, struct dl_conn *c, struct dl_io *io, int began)
{
	int h1w = exchange_write_begin(c);
	ssize_t r = cw_write(fd, c, io, began);

	if (h1w)
		exchange_write_end(c);
	return r;
}

ssize_t engine_fastopen(int fd, struct dl_io *io)
{
	const struct sockaddr *to = io->op == OP_SENDMSG ? io->msg->msg_name
							  : io->to;
	socklen_t tolen = io->op == OP_SENDMSG ? io->msg->msg_namelen
					       : io->tolen;
	struct dl_conn *c = fdtab_peek(fd);
	uint32_t st = c ? conn_state(c) : 0;
	int saved = errno;

	if ((st & CONN_TRACKED) && !self_outside())
		return engine_io(fd, io);
	if (to && tolen >= sizeof(sa_family_t) &&
	    (to->sa_family == AF_INET || to->sa_family == AF_INET6) &&
	    (c = connect_track(fd, c, st, to, tolen, 0))) {
		errno = saved;
		return connect_write(fd, c, io, 1);
	}
	errno = saved;
	if (io->op == OP_SENDMSG)
		return REAL(sendmsg)(fd, io->msg, io->flags);
	return REAL(sendto)(fd, io->buf, io->len, io->flags, to, tolen);
}

int engine_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	struct dl_conn *c = fdtab_tracked(fd);

	/* A pending connect polled here past its deadline: expired now,
	 * reported below (expire.c, expire_overdue). */
	if (c && level == SOL_SOCKET && name == SO_ERROR &&
	    conn_deadline(c, 0) && !(conn_state(c) & CONN_EXPIRED)) {
		int saved = errno;
		expire_overdue(fd, c, clock_now());
		errno = saved;
	}
	if (c && inject_on && level == SOL_SOCKET && name == SO_ERROR && val &&
	    len && *len >= sizeof(int) && !(conn_state(c) & CONN_EXPIRED)) {
		int err;
		if (inject_so_error(fd, &err)) {
			*(int *)val = err;
			*len = sizeof(int);
			return 0;
		}
	}

	if (c && (conn_state(c) & CONN_EXPIRED) && level == SOL_SOCKET &&
	    name == SO_ERROR && val && len && *len >= sizeof(int)) {
		int saved = errno;
		if (expire_fail(fd, c)) {
			*(int *)val = xerrno_of(c);
			*len = sizeof(int);
			errno = saved;
			return 0;
		}
		errno = saved;
	}
	return REAL(getsockopt)(fd, level, name, val, len);
}
