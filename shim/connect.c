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
		/* The kernel still says "connecting" until connect() is
		 * called again; done lazily if the program ever does. */
		__atomic_fetch_or(&c->st, CONN_UNSETTLED, __ATOMIC_ACQ_REL);
		return 0;
	}
}

/* Where fd is connecting to, for the log (a connect that never completes
 * has no peer address to ask for). */
static void remember_peer(int fd, const struct sockaddr *addr, socklen_t len)
{
	struct dl_peer *p = fdtab_peer(fd);

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
		      const struct sockaddr *next, int err, uint32_t wait_ms)
{
	struct expiry x;
	char nexta[INET6_ADDRSTRLEN] = "-";

	expire_describe_peer(fd, &x);
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

int engine_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	struct dl_conn *c = fdtab_peek(fd);
	uint32_t st = c ? conn_state(c) : 0;
	int fl = -1, r, e, saved = errno, faulted = 0;
	uint16_t rule;

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
	rule = engine_rule_for(fd, addr, len, 0);
	faulted = inject_on && engine_faults_attach(fd, c, rule, addr, len, 0, 1);
	if (!engine_rule_active(rule) && !faulted)
		return REAL(connect)(fd, addr, len);
	if (!(st & CONN_SOCK)) {
		if (!track_sock_is_tcp(fd) || !(c = fdtab_get(fd))) {
			errno = saved;
			return REAL(connect)(fd, addr, len);
		}
		__atomic_store_n(&c->st, CONN_SOCK, __ATOMIC_RELEASE);
	}
	CONN_STORE(c->rule, rule);
	CONN_STORE(c->ino, track_inode_of(fd));
	remember_peer(fd, addr, len);
	conn_start(c, limits_of(c), 0, 1, clock_now());
	stats_count(&stats_of(c)->conns, 1);
	inject_announce();	/* the faults line, once per process */
	DL_DEBUG("track fd=%d outbound rule=%s limits_ms=%u/%u/%u/%u", fd,
		 eff_of(c)->rule_name, limits_of(c)->ms[0], limits_of(c)->ms[1],
		 limits_of(c)->ms[2], limits_of(c)->ms[3]);
	expire_refile(fd, c);
	if (faulted)
		faulted = engine_faults_attach(fd, c, rule, addr, len, 0, 0);
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
		if (r == 0)
			conn_connected(c);
		else if (e != EINPROGRESS && e != EINTR)
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
			log_retry(fd, c, attempt, (struct sockaddr *)&next, e,
				  wait);
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
