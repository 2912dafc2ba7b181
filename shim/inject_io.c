/* inject_io.c - what a faulted connection's calls meet (see inject.h,
 * inject_int.h): connect (latency, refuse, unreachable, blackholed
 * handshake), the end of a connection (reset, eof, a blackhole's `then`),
 * reads and writes (latency, bandwidth, slice, spurious errors, injected
 * errors, blackholed data), close (slow_close); and the log line each
 * injected fault writes.
 *
 * Every decision is taken under the connection's entry lock (fc_lock, a
 * leaf lock) and counted in its operation number, so that the same calls
 * meet the same faults (inject.c).  A reset is sent with the real calls
 * (SO_LINGER 0, connect(AF_UNSPEC)), never by closing the fd.
 *
 * errno: inject_io keeps it; inject_io_done and inject_detach may change
 * it (a reset or eof sent); the connect hooks report through *err.
 */
#include "inject_int.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#include "clock.h"
#include "log.h"
#include "real.h"

/* ------------------------------------------------------------- logging */

static struct fault_ctx ctx_of(const struct fault_conn *fc, int i,
			       uint64_t op, int dir)
{
	struct fault_ctx x;

	x.seed = I.seed;
	x.rule = fc->rule_key[i];
	x.host = fc->host_hash;
	x.conn = fc->conn_no[i];
	x.op = op;
	x.bytes = dir ? fc->bytes[dir] : fc->bytes[FDIR_UP] +
					  fc->bytes[FDIR_DOWN];
	x.elapsed_ms = (uint64_t)((clock_now() - fc->start) / 1000000);
	return x;
}

/* What a per-call decision on data in dir (FDIR_UP/FDIR_DOWN) is keyed
 * to: where in the stream the call starts (the offset, bytes[dir]) and
 * how many injected failures met the program there before, never how
 * many calls it took to get there.  How the kernel splits a response
 * into reads depends on when its packets arrive; the offsets at which the
 * program asks again after a whole message do not.  (dir in the top
 * bits keeps these keys apart from the connect attempts, which are
 * small numbers.) */
static uint64_t data_key(const struct fault_conn *fc, int dir)
{
	return (uint64_t)dir << 60 |
	       (fc->bytes[dir] & ((1ull << 52) - 1)) << 8 |
	       (fc->tries[dir] < 0xff ? fc->tries[dir] : 0xff);
}

/* One event line per injected fault: what, where, why, and the numbers
 * that make it reproducible.  detail/val: the fault's own figure; dir:
 * the direction of a per-call decision on data (its offset is logged),
 * 0 for the others. */
static void log_fault(const struct fault_conn *fc, int i, enum fault_kind k,
		      uint64_t op, int dir, const char *detail, long long val)
{
	const struct fault_spec *s = fc->spec[i];
	struct dl_field f[16];
	int n = 0;

	f[n++] = (struct dl_field){ "event", "fault", 0 };
	f[n++] = (struct dl_field){ "injected", DL_BOOL(!I.dry), 0 };
	if (I.dry)
		f[n++] = (struct dl_field){ "dry_run", DL_TRUE, 0 };
	f[n++] = (struct dl_field){ "fault", fault_kind_name(k), 0 };
	f[n++] = (struct dl_field){ "rule", fc->rule_name[i], 0 };
	f[n++] = (struct dl_field){ "group", 0, s->group };
	f[n++] = (struct dl_field){ "trigger", s->trigger, 0 };
	f[n++] = (struct dl_field){ "fd", 0, fc->fd };
	f[n++] = (struct dl_field){ "host", fc->host, 0 };
	f[n++] = (struct dl_field){ "addr", fc->addr, 0 };
	f[n++] = (struct dl_field){ "port", 0, fc->port };
	f[n++] = (struct dl_field){ "conn", 0, (long long)fc->conn_no[i] };
	f[n++] = (struct dl_field){ "op", 0, (long long)op };
	if (dir == FDIR_UP || dir == FDIR_DOWN) {
		f[n++] = (struct dl_field){ "dir",
			dir == FDIR_UP ? "up" : "down", 0 };
		f[n++] = (struct dl_field){ "offset", 0,
					    (long long)fc->bytes[dir] };
	}
	if (detail && strcmp(detail, "errno") == 0)
		f[n++] = (struct dl_field){ "errno",
			strerrorname_np((int)val) ? strerrorname_np((int)val)
						  : "?", 0 };
	else if (detail)
		f[n++] = (struct dl_field){ detail, 0, val };
	dl_log_fields(f, n);
}

/* Log (spec i, kind k) at most once per connection. */
static int first_time(struct fault_conn *fc, int i, enum fault_kind k)
{
	uint16_t bit = (uint16_t)(1u << k);

	if (fc->once[i] & bit)
		return 0;
	fc->once[i] |= bit;
	return 1;
}

/* Log a per-op decision once, however often the op is retried. */
static int first_for_op(struct fault_conn *fc, enum fault_kind k, int dir)
{
	uint32_t key = (uint32_t)k << 4 | (uint32_t)dir;

	if (fc->last_log_op == fc->op + 1 && fc->last_log_kind == key)
		return 0;
	fc->last_log_op = fc->op + 1;
	fc->last_log_kind = key;
	return 1;
}

/* ------------------------------------------------------------- connect */

static int64_t ms_after(int64_t now, uint32_t ms)
{
	return now + (int64_t)ms * 1000000ll;
}

enum inj_connect inject_connect(int fd, unsigned attempt, int nonblock,
				int64_t now, int64_t *until, int *err)
{
	struct fault_conn *fc = fc_lock(fd);
	enum inj_connect r = INJ_C_NONE;

	*until = 0;
	*err = 0;
	if (!fc)
		return INJ_C_NONE;
	for (int i = 0; i < fc->n && r == INJ_C_NONE; i++) {
		struct fault_spec *s = fc->spec[i];
		struct fault_ctx x = ctx_of(fc, i, attempt, 0);
		enum fault_kind k;

		if (fault_fires(s, FK_BLACKHOLE, &x) && s->bh == FBH_CONNECT)
			k = FK_BLACKHOLE;
		else if (fault_fires(s, FK_REFUSE, &x))
			k = FK_REFUSE;
		else if (fault_fires(s, FK_UNREACHABLE, &x))
			k = FK_UNREACHABLE;
		else if (fault_fires(s, FK_LATENCY, &x) && s->on == FON_CONNECT)
			k = FK_LATENCY;
		else
			continue;
		if (!fault_claim(s))
			continue;
		switch (k) {
		case FK_BLACKHOLE:
			log_fault(fc, i, k, attempt, 0,
				  s->then ? "then_after_ms" : 0,
				  s->then_after_ms);
			*until = s->then ? ms_after(now, s->then_after_ms) : 0;
			*err = s->then == FTHEN_RESET ? ECONNREFUSED : ETIMEDOUT;
			r = INJ_C_FAIL;
			break;
		case FK_REFUSE:
		case FK_UNREACHABLE:
			*err = k == FK_REFUSE ? ECONNREFUSED : s->unreach_err;
			log_fault(fc, i, k, attempt, 0, "delay_ms", s->delay_ms);
			*until = ms_after(now, s->delay_ms);
			r = INJ_C_FAIL;
			break;
		default:
			*until = ms_after(now, fault_jittered_ms(s, &x));
			log_fault(fc, i, k, attempt, 0, "delay_ms",
				  (*until - now) / 1000000);
			r = INJ_C_DELAY;
			break;
		}
	}
	if (I.dry)
		r = INJ_C_NONE;
	if (r != INJ_C_NONE && nonblock) {
		/* Hide the fd until then; a failure is reported by SO_ERROR
		 * (and by the calls) once the time has come. */
		fc->conn_at = *until;
		fc->conn_forever = *until == 0;
		if (r == INJ_C_FAIL) {
			fc->conn_err = *err;
			fc->fake = 1;
		} else {
			*err = 0;
		}
		r = INJ_C_HIDDEN;
	}
	fc_unlock(fc);
	return r;
}

int inject_connecting(int fd)
{
	struct fault_conn *fc = fc_lock(fd);
	int r;

	if (!fc)
		return 0;
	r = fc->conn_forever || fc->fake ||
	    (fc->conn_at && clock_now() < fc->conn_at);
	fc_unlock(fc);
	return r;
}

int inject_so_error(int fd, int *err)
{
	struct fault_conn *fc = fc_lock(fd);
	int r = 0;

	if (!fc)
		return 0;
	if (fc->conn_err && !fc->conn_forever && clock_now() >= fc->conn_at) {
		*err = fc->conn_err;
		fc->conn_err = 0;
		fc->conn_at = 0;
		r = 1;
	} else if (fc->fake && (fc->conn_forever ||
				clock_now() < fc->conn_at)) {
		*err = 0; /* still "connecting" */
		r = 1;
	}
	fc_unlock(fc);
	return r;
}

/* ---------------------------------------------------- ending a connection */

/* Reset (RST now, ECONNRESET from then on) or EOF (reads return 0; the
 * socket reports readable so that a waiting program notices). */
static void end_conn(struct fault_conn *fc, int how)
{
	if (fc->ended)
		return;
	fc->ended = how;
	if (how == FTHEN_RESET) {
		struct sockaddr unspec = { .sa_family = AF_UNSPEC };
		struct linger lg = { 1, 0 };
		REAL(setsockopt)(fc->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		REAL(connect)(fc->fd, &unspec, sizeof(unspec));
	} else {
		REAL(shutdown)(fc->fd, SHUT_RD);
	}
}

/* Which bytes `after_bytes` of a reset/eof group counts: those read
 * (default), those written, or both (0). */
static int end_dir(const struct fault_spec *s, enum fault_kind k)
{
	enum fault_dir d = fault_dir_of(s, k);

	return d == FDIR_BOTH ? 0 : (int)d;
}

/* Fire the reset/eof groups whose triggers hold now; *wake (if given) is
 * lowered to when a time trigger opens.  Returns how the connection
 * ended (0 = it goes on). */
int fc_check_end(struct fault_conn *fc, int64_t *wake)
{
	for (int i = 0; i < fc->n && !fc->ended; i++) {
		struct fault_spec *s = fc->spec[i];
		enum fault_kind k = (s->kinds & FK_BIT(FK_RESET)) ? FK_RESET
								   : FK_EOF;
		struct fault_ctx x;

		if (!(s->kinds & (FK_BIT(FK_RESET) | FK_BIT(FK_EOF))) ||
		    fc->end_state[i])
			continue; /* decided (a dry run fires only once) */
		x = ctx_of(fc, i, 0, end_dir(s, k));
		/* One roll per connection (op 0): does it end at all? */
		if (s->probability < 1.0 &&
		    !(fault_unit(&x, s->group, (unsigned)k) < s->probability)) {
			fc->end_state[i] = 1;
			continue;
		}
		if (s->nth > 1 && x.conn % s->nth != 0) {
			fc->end_state[i] = 1;
			continue;
		}
		if (!fault_window_open(s, &x)) {
			if (s->for_ms && x.elapsed_ms >=
					 (uint64_t)s->after_ms + s->for_ms)
				fc->end_state[i] = 1;
			else if (wake && x.elapsed_ms < s->after_ms) {
				int64_t t = ms_after(fc->start, s->after_ms);
				if (!*wake || t < *wake)
					*wake = t;
			}
			continue;
		}
		if (!fault_claim(s)) {
			fc->end_state[i] = 1;
			continue;
		}
		fc->end_state[i] = 2;
		log_fault(fc, i, k, fc->op, 0, "bytes", (long long)x.bytes);
		if (!I.dry)
			end_conn(fc, k == FK_RESET ? FTHEN_RESET : FTHEN_EOF);
	}
	return fc->ended;
}

/* The most bytes this call may move in dir before a reset/eof group's
 * after_bytes is reached exactly. */
static size_t end_cap(const struct fault_conn *fc, int dir, size_t cap)
{
	for (int i = 0; i < fc->n; i++) {
		const struct fault_spec *s = fc->spec[i];
		enum fault_kind k = (s->kinds & FK_BIT(FK_RESET)) ? FK_RESET
								   : FK_EOF;

		int d = (s->kinds & (FK_BIT(FK_RESET) | FK_BIT(FK_EOF)))
				? end_dir(s, k) : -1;
		uint64_t moved;

		if (d < 0 || fc->end_state[i] || !s->after_bytes ||
		    (d && d != dir))
			continue;
		moved = d ? fc->bytes[d]
			  : fc->bytes[FDIR_UP] + fc->bytes[FDIR_DOWN];
		if (moved < s->after_bytes && s->after_bytes - moved < cap)
			cap = (size_t)(s->after_bytes - moved);
	}
	return cap;
}

/* Blackholed data: decided per connection when its window opens. */
void fc_check_blackhole(struct fault_conn *fc, int64_t now)
{
	if (fc->bh || fc->ended)
		return;
	for (int i = 0; i < fc->n; i++) {
		struct fault_spec *s = fc->spec[i];
		struct fault_ctx x = ctx_of(fc, i, 0, 0);

		if (!(s->kinds & FK_BIT(FK_BLACKHOLE)) || s->bh != FBH_DATA ||
		    fc->bh_state[i] == 1)
			continue;
		if (!fault_window_open(s, &x))
			continue; /* not yet (or no longer) */
		if (!fault_fires(s, FK_BLACKHOLE, &x)) {
			fc->bh_state[i] = 1; /* the roll said never */
			continue;
		}
		if (!fault_claim(s)) {
			fc->bh_state[i] = 1;
			continue;
		}
		log_fault(fc, i, FK_BLACKHOLE, fc->op, 0,
			  s->then ? "then_after_ms" : 0, s->then_after_ms);
		if (I.dry) {
			fc->bh_state[i] = 1;
			continue;
		}
		fc->bh = i + 1;
		fc->bh_then_at = s->then ? ms_after(now, s->then_after_ms) : 0;
		return;
	}
}

/* The blackhole's `then` is due: end the connection as it says. */
void fc_check_bh_then(struct fault_conn *fc, int64_t now)
{
	const struct fault_spec *s;

	if (!fc->bh || !fc->bh_then_at || now < fc->bh_then_at || fc->ended)
		return;
	s = fc->spec[fc->bh - 1];
	fc->bh = 0;
	end_conn(fc, s->then);
}

/* --------------------------------------------------------------- I/O */

/* The delay a latency group puts on the next op in dir, or -1. */
static int64_t latency_for(struct fault_conn *fc, int dir, int *which)
{
	for (int i = 0; i < fc->n; i++) {
		struct fault_spec *s = fc->spec[i];
		struct fault_ctx x;

		if (!(s->kinds & FK_BIT(FK_LATENCY)) || s->on == FON_CONNECT ||
		    !((int)fault_dir_of(s, FK_LATENCY) & dir))
			continue;
		if (s->on == FON_FIRST_BYTE && fc->last_dir == dir)
			continue;
		x = ctx_of(fc, i, data_key(fc, dir), dir);
		if (!fault_fires(s, FK_LATENCY, &x))
			continue;
		*which = i;
		return (int64_t)fault_jittered_ms(s, &x) * 1000000ll;
	}
	return -1;
}

/* slice and bandwidth act on every call once on: group i acts with kind
 * k on calls in dir now.  Whether it is on for this connection is rolled
 * once (probability, nth, times) when its window first opens; the window
 * still bounds it after. */
int fc_cont_on(struct fault_conn *fc, int i, enum fault_kind k, int dir)
{
	struct fault_spec *s = fc->spec[i];
	struct fault_ctx x;

	if (!(s->kinds & FK_BIT(k)) || !((int)fault_dir_of(s, k) & dir))
		return 0;
	x = ctx_of(fc, i, 0, dir);
	if (fc->cont_state[i] == 1 || !fault_window_open(s, &x))
		return 0;
	if (!fc->cont_state[i])
		fc->cont_state[i] = fault_fires(s, k, &x) && fault_claim(s)
					    ? 2 : 1;
	return fc->cont_state[i] == 2;
}

/* Data (or EOF) is waiting to be read on fd. */
static int readable(int fd)
{
	char b;
	ssize_t r = REAL(recv)(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

	return r >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Start the latency gate of the current op in dir (data is there). */
int64_t fc_open_gate(struct fault_conn *fc, int dir, int64_t now)
{
	int i = -1;
	int64_t d;

	if (fc->gate_op[dir] == fc->op + 1)
		return fc->gate[dir];
	d = latency_for(fc, dir, &i);
	if (d < 0)
		return 0;
	fc->gate_op[dir] = fc->op + 1;
	if (!fault_claim(fc->spec[i])) {
		fc->gate[dir] = 0;
		return 0;
	}
	log_fault(fc, i, FK_LATENCY, fc->op, dir, "delay_ms", d / 1000000);
	fc->gate[dir] = I.dry ? 0 : now + d;
	return fc->gate[dir];
}

enum inj_io inject_io(int fd, int wrote, int blocking, int64_t now,
		      struct inj_plan *p)
{
	struct fault_conn *fc = fc_lock(fd);
	int dir = wrote ? FDIR_UP : FDIR_DOWN;
	enum inj_io r = INJ_GO;
	int saved = errno;

	memset(p, 0, sizeof(*p));
	p->cap = (size_t)-1;
	p->peek_cap = (size_t)-1;
	if (!fc)
		return INJ_GO;
	/* The handshake is still hidden (delayed, refused later, or
	 * blackholed). */
	if (fc->conn_forever) {
		p->until = INT64_MAX;
		r = INJ_WAIT;
		goto out;
	}
	if (fc->conn_at && now < fc->conn_at) {
		p->until = fc->conn_at;
		r = INJ_WAIT;
		goto out;
	}
	if (fc->conn_err) {
		p->err = fc->conn_err;
		r = INJ_FAIL;
		goto out;
	}
	if (fc->fake) {
		p->err = ENOTCONN;
		r = INJ_FAIL;
		goto out;
	}
	fc_check_bh_then(fc, now);
	fc_check_end(fc, &p->wake);
	if (fc->ended == FTHEN_RESET) {
		p->err = ECONNRESET;
		r = INJ_FAIL;
		goto out;
	}
	if (fc->ended == FTHEN_EOF && !wrote) {
		r = INJ_EOF;
		goto out;
	}
	fc_check_blackhole(fc, now);
	if (fc->bh) {
		if (wrote) {
			p->swallow = 1;
		} else {
			p->until = fc->bh_then_at ? fc->bh_then_at : INT64_MAX;
			r = INJ_WAIT;
		}
		goto out;
	}
	/* Per-call faults, decided for this op number. */
	for (int i = 0; i < fc->n; i++) {
		struct fault_spec *s = fc->spec[i];
		struct fault_ctx x = ctx_of(fc, i, data_key(fc, dir), dir);

		if ((s->kinds & FK_BIT(FK_ERROR)) &&
		    ((int)fault_dir_of(s, FK_ERROR) & dir) &&
		    fault_fires(s, FK_ERROR, &x) && fault_claim(s)) {
			if (!I.dry || first_for_op(fc, FK_ERROR, dir))
				log_fault(fc, i, FK_ERROR, fc->op, dir, "errno",
					  s->err);
			if (!I.dry) {
				fc->op++;
				fc->tries[dir]++;
				p->err = s->err;
				r = INJ_FAIL;
				goto out;
			}
		}
		if (s->spurious > 0 && fc_cont_on(fc, i, FK_SLICE, dir) &&
		    fault_unit(&x, s->group, 200 + FK_SLICE) < s->spurious) {
			int e = blocking ? EINTR : EAGAIN;
			if (first_for_op(fc, FK_SLICE, dir))
				log_fault(fc, i, FK_SLICE, fc->op, dir, "errno", e);
			if (!I.dry) {
				fc->op++;
				fc->tries[dir]++;
				if (e == EAGAIN)
					fc->rearm = 1;
				p->err = e;
				r = INJ_FAIL;
				goto out;
			}
		}
	}
	/* Latency: a read waits from when its data arrived. */
	if (fc->gate_op[dir] != fc->op + 1) {
		int i = -1;
		if (latency_for(fc, dir, &i) >= 0) {
			if (!wrote && !readable(fd)) {
				p->until = 0;
				r = INJ_WAIT;
				goto out;
			}
			fc_open_gate(fc, dir, now);
		}
	}
	if (fc->gate_op[dir] == fc->op + 1 && fc->gate[dir] > now) {
		p->until = fc->gate[dir];
		r = INJ_WAIT;
		goto out;
	}
	/* Bandwidth and slices bound the size. */
	for (int i = 0; i < fc->n; i++) {
		struct fault_spec *s = fc->spec[i];

		if (fc_cont_on(fc, i, FK_BANDWIDTH, dir)) {
			if (first_time(fc, i, FK_BANDWIDTH))
				log_fault(fc, i, FK_BANDWIDTH, fc->op, 0,
					  "bytes_per_s", (long long)s->rate);
			if (!I.dry) {
				if (fc->bw_next[dir] > now) {
					p->until = fc->bw_next[dir];
					r = INJ_WAIT;
					goto out;
				}
				if (fault_bw_chunk(s->rate) < p->cap)
					p->cap = fault_bw_chunk(s->rate);
			}
		}
		if (fc_cont_on(fc, i, FK_SLICE, dir)) {
			if (first_time(fc, i, FK_SLICE))
				log_fault(fc, i, FK_SLICE, fc->op, 0, "max_bytes",
					  s->slice);
			if (!I.dry && s->slice < p->cap) {
				p->cap = s->slice;
				p->sliced = 1;
			}
		}
	}
	if (!I.dry) {
		p->cap = end_cap(fc, dir, p->cap);
		p->peek_cap = end_cap(fc, dir, p->peek_cap);
	}
out:
	fc_unlock(fc);
	errno = saved;
	return r;
}

void inject_io_done(int fd, int wrote, size_t n, int cut)
{
	struct fault_conn *fc = fc_lock(fd);
	int dir = wrote ? FDIR_UP : FDIR_DOWN;
	int64_t now;

	if (!fc)
		return;
	now = clock_now();
	fc->bytes[dir] += n;
	fc->tries[dir] = 0;
	fc->op++;
	fc->last_dir = dir;
	/* After the last bytes before a hidden hangup the kernel will not
	 * signal again by itself: the edge came with the first of them. */
	if (cut || (!wrote && fc->hup_hidden))
		fc->rearm = 1;
	for (int i = 0; i < fc->n; i++) {
		struct fault_spec *s = fc->spec[i];
		if ((s->kinds & FK_BIT(FK_BANDWIDTH)) &&
		    ((int)fault_dir_of(s, FK_BANDWIDTH) & dir) && !I.dry &&
		    fc->cont_state[i] == 2)
			fc->bw_next[dir] = fault_bw_advance(fc->bw_next[dir],
							    now, s->rate, n);
	}
	/* A reset "after N bytes" comes right after the Nth byte, so that
	 * a program waiting for more learns it at once. */
	fc_check_end(fc, 0);
	fc_unlock(fc);
}

/* ------------------------------------------------------------- closing */

uint32_t inject_detach(int fd, int closing)
{
	struct fault_conn *fc = fc_lock(fd);
	uint32_t slow = 0;
	int which = -1;

	if (fc) {
		for (int i = 0; i < fc->n && closing; i++) {
			struct fault_spec *s = fc->spec[i];
			struct fault_ctx x = ctx_of(fc, i, fc->op, 0);
			if (fault_fires(s, FK_SLOW_CLOSE, &x) && fault_claim(s)) {
				slow = s->slow_close_ms;
				which = i;
				break;
			}
		}
		if (which >= 0)
			log_fault(fc, which, FK_SLOW_CLOSE, fc->op, 0, "delay_ms",
				  slow);
		__atomic_store_n(&fc->active, 0, __ATOMIC_RELEASE);
		__atomic_fetch_sub(&I.nactive, 1, __ATOMIC_RELAXED);
		fc_unlock(fc);
		if (I.dry)
			slow = 0;
	}
	ereg_forget(fd);
	return slow;
}
