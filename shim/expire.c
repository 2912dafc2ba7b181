/* expire.c - the deadline heap, expiry and teardown.
 *
 * Every tracked connection with a deadline armed is filed in one heap
 * under its earliest deadline (a lower bound: a deadline that moved later
 * is corrected when it reaches the top).  Expiry aborts the connection
 * (connect(AF_UNSPEC): RST, fd stays valid, every waiter wakes; or
 * shutdown: FIN), takes it out of the private set, marks it so that every
 * later call fails with the expiry errno, and logs one line.  The shim
 * never closes a program's fd.  Heap and teardown under E.lk; the log
 * line is written after the lock is released.
 *
 * Where expiry happens: in a wait (the shim's own, wait.c, or the
 * program's poll/select/epoll, wrap_wait.c), and at any call that finds
 * its connection's deadline passed when it would otherwise answer EAGAIN
 * (expire_overdue: io.c, SO_ERROR in connect.c), so that a program that
 * never waits where the shim can cut the wait is still cut off.
 */
#include "engine_int.h"

#include <netinet/tcp.h>

#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "inject.h"
#include "log.h"
#include "real.h"

/* The mark a torn-down socket carries: a TCP_NOTSENT_LOWAT no program
 * sets, harmless on a connection that sends nothing more. */
#define EXPIRE_MARK 0x7dead1e5

/* Expiry lines written after the lock is released and not yet out.  The
 * teardown is visible at once (the program's waits wake up), the line a
 * moment later: a thread that learns of an expiry another thread made
 * gives that line the moment it needs (expire_log_settle), so the log
 * says why before the program reacts, and an exit() does not lose it. */
static int expire_logging;

/* Wait (at most 20 ms, yielding) for the expiry lines in flight. */
static void expire_log_settle(void)
{
	int64_t end;

	if (!__atomic_load_n(&expire_logging, __ATOMIC_ACQUIRE))
		return;
	end = clock_now() + 20 * CLOCK_NS_PER_MS;
	while (__atomic_load_n(&expire_logging, __ATOMIC_ACQUIRE) &&
	       clock_now() < end)
		sched_yield();
}

__attribute__((destructor)) static void expire_at_exit(void)
{
	expire_log_settle();
}

/* ------------------------------------------------------------------------
 * The deadline heap
 */

int64_t engine_next_pub;

void expire_heap_sync_locked(void)
{
	int64_t t = 0;

	if (dlheap_top(&E.heap, &t) < 0)
		t = 0;
	__atomic_store_n(&E.next_key, t, __ATOMIC_RELEASE);
	__atomic_store_n(&E.armed, E.heap.n, __ATOMIC_RELEASE);
	__atomic_store_n(&engine_next_pub, t, __ATOMIC_RELEASE);
}

/* Caller holds lk: the heap's entries are the fd table's, its keys count
 * from a base shortly before now. */
static void heap_ready_locked(void)
{
	if (!E.heap.ent)
		E.heap.ent = fdtab_heap_ent;
	if (!E.heap.base)
		E.heap.base = clock_now() - CLOCK_NS_PER_SEC;
}

/* File c under its earliest deadline (or take it out when none).  Only
 * fd's own entry is filed: the deadlines an orphaned call carries on with
 * (holds.c) bound its own waits, which compute their end from them. */
void expire_refile(int fd, struct dl_conn *c)
{
	int64_t dl, before, after;

	if (c != fdtab_peek(fd))
		return;
	engine_lock();
	heap_ready_locked();
	dl = conn_deadline(c, 0);
	before = E.next_key;
	if (!dl)
		dlheap_remove(&E.heap, c);
	else if (dlheap_update(&E.heap, c, fd, dl) < 0)
		dl_log_warn("out of memory for the deadline heap; fd %d is "
			    "only bounded in blocking calls", fd);
	expire_heap_sync_locked();
	after = E.next_key;
	engine_unlock();
	/* A new earliest deadline: waits already in progress in other
	 * threads must end by it too (reaper.c). */
	reaper_note(before, after);
}

/* The program waits on fd now (any kind of wait): idle starts. */
void expire_arm_idle(int fd, struct dl_conn *c, int64_t now)
{
	if (conn_on_wait(c, limits_of(c), now))
		expire_refile(fd, c);
}

/* The program is about to wait on fd in its own poll/select: an idle
 * deadline starts now unless one is running. */
void engine_waiting_on(int fd, int64_t now)
{
	struct dl_conn *c = fdtab_tracked(fd);

	if (c && !(conn_state(c) & CONN_EXPIRED))
		expire_arm_idle(fd, c, now);
}

/* The program registered fd in (or removed it from) one of its epoll
 * sets: while registered it is waited on by every epoll_wait, so idle runs
 * from the last byte that moved. */
void engine_on_epoll_ctl(int op, int fd)
{
	struct dl_conn *c = fdtab_tracked(fd);
	int saved = errno;

	if (!c)
		return;
	if (op == EPOLL_CTL_DEL) {
		__atomic_fetch_and(&c->st, ~(uint32_t)CONN_EPOLLED,
				   __ATOMIC_ACQ_REL);
		return;
	}
	__atomic_fetch_or(&c->st, CONN_EPOLLED, __ATOMIC_ACQ_REL);
	engine_waiting_on(fd, clock_now());
	errno = saved;
}

int engine_idle_watch(void)
{
	return E.any_idle;
}

/* ------------------------------------------------------------------------
 * Expiry
 */


/* Where fd's connection goes, as the kernel knows it: SO_PEERNAME also
 * answers while the handshake is still in progress (getpeername does not),
 * so nothing need be kept for it.  0, or -1 when unknown. */
static int peer_of(int fd, struct sockaddr_storage *ss)
{
	/* The kernel refuses a buffer longer than the address: IPv4 first. */
	socklen_t sl = sizeof(struct sockaddr_in);

	memset(ss, 0, sizeof(*ss));
	if (REAL(getsockopt)(fd, SOL_SOCKET, SO_PEERNAME, ss, &sl) < 0)
		return -1;
	if (ss->ss_family == AF_INET6) {
		sl = sizeof(struct sockaddr_in6);
		if (REAL(getsockopt)(fd, SOL_SOCKET, SO_PEERNAME, ss, &sl) < 0)
			return -1;
	}
	return 0;
}

void expire_describe_addr(const struct sockaddr *sa, struct expiry *x)
{
	char *host = x->addr;
	size_t hlen = sizeof(x->addr);

	x->port = 0;
	snprintf(host, hlen, "-");
	snprintf(x->host, sizeof(x->host), "-");
	if (!sa)
		return;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &a->sin_addr, host, (socklen_t)hlen);
		x->port = ntohs(a->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &a->sin6_addr, host, (socklen_t)hlen);
		x->port = ntohs(a->sin6_port);
	} else {
		return;
	}
	if (!names_lookup(sa, x->host, sizeof(x->host)))
		snprintf(x->host, sizeof(x->host), "%s", x->addr);
}

/* The peer as text (address, name the program resolved, port). */
void expire_describe_peer(int fd, struct expiry *x)
{
	struct sockaddr_storage ss;
	struct dl_cold *cold = fdtab_cold(fd);

	/* A faulted connect may never have reached the kernel: the address
	 * it was given; else ask while still connected (or connecting). */
	if (cold && cold->addr.sin6_family) {
		memset(&ss, 0, sizeof(ss));
		memcpy(&ss, &cold->addr, sizeof(cold->addr));
	} else if (peer_of(fd, &ss) < 0) {
		expire_describe_addr(0, x);
		return;
	}
	expire_describe_addr((struct sockaddr *)&ss, x);
}

/* Does fd still hold the socket c was tracking?  The inode recorded for a
 * socket the shim did not see created, else (every close of a socket it
 * saw created goes through the shim, which then forgets it) yes. */
static int same_socket(int fd)
{
	struct dl_cold *cold = fdtab_cold(fd);
	uint64_t ino = cold ? CONN_LOAD(cold->ino) : 0;

	return !ino || track_inode_of(fd) == ino;
}

/* Abort fd's connection.  Caller holds lk and has marked c expired.
 * Returns 0, or -1 when the number no longer holds the tracked socket. */
static int teardown_locked(int fd, struct dl_conn *c, struct expiry *x)
{
	struct sockaddr unspec = { .sa_family = AF_UNSPEC };

	if (!same_socket(fd))
		return -1;
	expire_describe_peer(fd, x);
	/* Mark the socket, so that its other numbers and the processes
	 * sharing it know it was the shim that ended it (expire_adopt). */
	{
		int mark = EXPIRE_MARK;
		REAL(setsockopt)(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &mark,
				 sizeof(mark));
	}
	if (eff_of(c)->teardown == CONF_TEARDOWN_CLOSE)
		REAL(shutdown)(fd, SHUT_RDWR);
	else
		REAL(connect)(fd, &unspec, sizeof(unspec));
	/* Every thread waiting on the socket wakes (it now reports HUP|ERR)
	 * and its wait ends with the expiry errno. */
	return 0;
}

static void log_expiry(const struct expiry *x)
{
	const struct dl_field f[] = {
		{ "event", "deadline", 0 },
		{ "fd", 0, x->fd },
		{ "host", x->host, 0 },
		{ "addr", x->addr, 0 },
		{ "port", 0, x->port },
		{ "rule", x->rule, 0 },
		{ "phase", policy_phase_name(x->ph), 0 },
		{ "limit_ms", 0, x->limit_ms },
		{ "elapsed_ms", 0, x->elapsed_ns / 1000000 },
	};

	dl_log_fields(f, (int)(sizeof(f) / sizeof(f[0])));
}

/* If the connect phase is due but the handshake in fact completed (an
 * event-loop program has not touched the socket since), it is met. */
static int connect_done(int fd, struct dl_conn *c)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (inject_on && inject_connecting(fd))
		return 0; /* the program does not see it connected yet */
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
		return 0;
	conn_connected(c);
	return 1;
}

/* Expire c if its deadline passed by now.  Caller holds lk.  Returns 1 and
 * fills x when it tore the connection down. */
static int expire_locked(int fd, struct dl_conn *c, int64_t now,
			 struct expiry *x)
{
	enum dl_phase ph;
	int64_t dl;

	heap_ready_locked();
	for (;;) {
		dl = conn_deadline(c, &ph);
		if (!dl) {
			dlheap_remove(&E.heap, c);
			/* A deadline armed meanwhile by a thread that saw c
			 * filed must not be lost (conn.c: the other side). */
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			if ((dl = conn_deadline(c, 0)) && c == fdtab_peek(fd))
				dlheap_update(&E.heap, c, fd, dl);
			expire_heap_sync_locked();
			return 0;
		}
		if (dl > now) {
			if (conn_heap_idx(c) >= 0)
				dlheap_update(&E.heap, c, fd, dl);
			return 0;
		}
		if (ph == DL_PH_CONNECT && connect_done(fd, c))
			continue;
		break;
	}
	dlheap_remove(&E.heap, c);
	expire_heap_sync_locked();
	if (!conn_expire(c, ph))
		return 0; /* another thread got there first */
	/* An orphaned call waits on the shim's hold: name the program's fd. */
	x->fd = fd == dl_self.w.hold_fd ? dl_self.w.hold_of : fd;
	x->ph = ph;
	x->limit_ms = limits_of(c)->ms[ph];
	x->rule = eff_of(c)->rule_name;
	stats_count(&stats_of(c)->expiries[ph], 1);
	x->elapsed_ns = now - (dl - (int64_t)x->limit_ms * 1000000ll);
	if (teardown_locked(fd, c, x) < 0) {
		fdtab_reset(c);
		track_cold_clear(fd);
		return 0;
	}
	return 1;
}

/* engine_expire_due when the heap's top is due: the pass under the lock. */
static __attribute__((noinline)) int64_t expire_due_locked(int64_t now)
{
	struct expiry xs[16];
	int nx = 0, more = 1;
	int64_t next = 0;

	while (more) {
		more = 0;
		engine_lock();
		heap_ready_locked();
		dlheap_rebase(&E.heap, now);
		/* Counted before any teardown is visible (see above). */
		__atomic_add_fetch(&expire_logging, 1, __ATOMIC_SEQ_CST);
		for (;;) {
			int64_t t, dl;
			int fd = dlheap_top(&E.heap, &t);
			struct dl_conn *c;

			if (fd < 0) {
				next = 0;
				break;
			}
			if (t > now) {
				next = t;
				break;
			}
			c = fdtab_peek(fd);
			dl = conn_deadline(c, 0);
			if (!dl) {
				dlheap_remove(&E.heap, c);
				/* A deadline armed meanwhile by a thread that
				 * saw c filed must not be lost. */
				__atomic_thread_fence(__ATOMIC_SEQ_CST);
				if ((dl = conn_deadline(c, 0)))
					dlheap_update(&E.heap, c, fd, dl);
				continue;
			}
			if (dlheap_time(&E.heap, dlheap_key(&E.heap, dl)) != t) {
				/* The key was a lower bound (the deadline moved
				 * later): file it exactly first, so that what
				 * expires in one pass goes in deadline order. */
				dlheap_update(&E.heap, c, fd, dl);
				continue;
			}
			if (nx == 16) {
				more = 1;
				break;
			}
			/* Leaves c expired, out of the heap, or re-filed. */
			if (expire_locked(fd, c, now, &xs[nx]))
				nx++;
		}
		expire_heap_sync_locked();
		engine_unlock();
		for (int i = 0; i < nx; i++)
			log_expiry(&xs[i]);
		__atomic_sub_fetch(&expire_logging, 1, __ATOMIC_RELEASE);
		nx = 0;
	}
	return next;
}

int64_t engine_expire_due(int64_t now)
{
	int64_t next = __atomic_load_n(&E.next_key, __ATOMIC_ACQUIRE);

	/* Nothing due yet (the top key is a lower bound): no lock. */
	if (__builtin_expect(next > now, 1) || !next)
		return next;
	return expire_due_locked(now);
}

/* Expire fd now (the caller saw its deadline pass).  Returns 1 if it is
 * (now or already) expired. */
int expire_one(int fd, struct dl_conn *c, int64_t now)
{
	struct expiry x;
	int done;

	engine_lock();
	__atomic_add_fetch(&expire_logging, 1, __ATOMIC_SEQ_CST);
	done = expire_locked(fd, c, now, &x);
	engine_unlock();
	if (done)
		log_expiry(&x);
	__atomic_sub_fetch(&expire_logging, 1, __ATOMIC_RELEASE);
	return (conn_state(c) & CONN_EXPIRED) != 0;
}

/* A call on fd that would answer EAGAIN (a read or write with nothing to
 * move, an injected hold, SO_ERROR polled on a pending connect) checks
 * fd's own deadline against now, the clock the call read anyway.  Past
 * it, fd is expired here exactly as a wait would expire it: the same
 * teardown, the same log line (elapsed_ms measured to now, so it shows how
 * late the call came), and the call fails.  Only fd: the other overdue
 * connections go at their own next call or in the next wait.  Returns 1
 * with errno the expiry errno when fd is (now or already) expired, else 0
 * with errno untouched; no lock, no system call unless the deadline has
 * passed. */
int expire_overdue(int fd, struct dl_conn *c, int64_t now)
{
	int64_t dl = conn_deadline(c, 0);
	int saved = errno;

	if (__builtin_expect(!dl || now < dl, 1))
		return 0;
	if (!expire_one(fd, c, now)) {
		/* Met after all (a connect that completed unseen), or the
		 * number holds another file now. */
		errno = saved;
		return 0;
	}
	errno = xerrno_of(c);
	return 1;
}

/* The call the program made on an expired fd.  Verifies the number still
 * holds the torn-down socket (glibc may have closed it internally, e.g.
 * fclose on an fdopen'd socket) before failing. */
int expire_adopt(int fd, struct dl_conn *c)
{
	int v = 0, saved = errno;
	socklen_t l = sizeof(v);

	if (REAL(getsockopt)(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, &l) < 0 ||
	    v != EXPIRE_MARK) {
		errno = saved;
		return 0;
	}
	conn_expire(c, DL_PH_REQUEST);
	errno = xerrno_of(c);
	return 1;
}

/* Does fd still hold the socket the shim tore down?  Its recorded inode
 * says so, or (none recorded) the mark the teardown left, or, where the
 * mark could not be set, that fd is still a TCP socket.  errno kept. */
static int still_torn_down(int fd)
{
	struct dl_cold *cold = fdtab_cold(fd);
	uint64_t ino = cold ? CONN_LOAD(cold->ino) : 0;
	int v = 0, saved = errno, r;
	socklen_t l = sizeof(v);

	if (ino)
		r = track_inode_of(fd) == ino;
	else
		r = (REAL(getsockopt)(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v,
				      &l) == 0 && v == EXPIRE_MARK) ||
		    track_sock_is_tcp(fd);
	errno = saved;
	return r;
}

int expire_fail(int fd, struct dl_conn *c)
{
	int saved = errno;

	if (!still_torn_down(fd)) {
		engine_on_close(fd);
		errno = saved;
		return 0; /* stale: the caller passes the call through */
	}
	expire_log_settle();
	errno = xerrno_of(c);
	return 1;
}

int engine_fail_expired(int fd)
{
	struct dl_conn *c = fdtab_tracked(fd);

	return c && (conn_state(c) & CONN_EXPIRED) && expire_fail(fd, c);
}

/* The connections are shared with the parent, which may well meet the
 * deadlines the child inherited: the child must not abort them from its
 * stale heap while waiting on something else.  It keeps the deadlines, and
 * enforces one only where it waits on that socket itself (its blocking
 * call, or its own poll/select/epoll, which file the socket again) - as a
 * forking daemon's child does.  Runs in the fork child with E.lk held. */
void expire_atfork_child(void)
{
	if (E.heap.ent)
		dlheap_clear(&E.heap);
	expire_heap_sync_locked();
}
