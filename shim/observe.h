/* observe.h - DEADLINE_OBSERVE: measure what the deadlines would see,
 * enforce none (docs/observe.md).
 *
 * Two parts:
 *  - the histogram buckets and the file format, plain C shared with the
 *    deadline tool (tools/observe.c reads and merges what the shim
 *    writes);
 *  - the engine's hooks, one call at each point where a phase starts or
 *    ends.  Each is an inline test of one global (observe_on) that is
 *    zero unless the process observes: one predictable branch.
 *
 * Buckets (HDR-histogram style, "log-linear"): a value in microseconds
 * below 128 has a bucket of its own; above, each power of two [2^m,
 * 2^(m+1)) is split into OBS_SUB (64) equal sub-buckets, so a bucket is
 * at most 1/64 (1.6 %) of the values it holds wide.  Values from 2^32 us
 * (about 71.6 minutes) on share the last bucket.
 */
#ifndef DL_OBSERVE_H
#define DL_OBSERVE_H

#include <stdint.h>
#include <sys/socket.h>

#include "conn.h"
#include "policy.h"

/* ---- buckets ---------------------------------------------------------- */

#define OBS_FORMAT_VERSION 1
#define OBS_SUB_BITS 6
#define OBS_SUB (1u << OBS_SUB_BITS)		/* sub-buckets per power of two */
#define OBS_LINEAR (2u * OBS_SUB)		/* exact buckets 0..127 us */
#define OBS_MAX_BIT 31				/* last power of two split */
#define OBS_NB (OBS_LINEAR + (OBS_MAX_BIT - OBS_SUB_BITS) * OBS_SUB)
						/* 1728 buckets */

/* obs_bucket - the bucket of a value in microseconds. */
static inline unsigned obs_bucket(uint64_t us)
{
	unsigned m, shift;

	if (us < OBS_LINEAR)
		return (unsigned)us;
	m = 63u - (unsigned)__builtin_clzll(us);
	if (m > OBS_MAX_BIT)
		return OBS_NB - 1;
	shift = m - OBS_SUB_BITS;
	return OBS_LINEAR + (m - OBS_SUB_BITS - 1) * OBS_SUB +
	       (unsigned)((us >> shift) - OBS_SUB);
}

/* obs_bucket_low / obs_bucket_high - the values (us) bucket i holds:
 * low <= v < high (the last bucket also holds everything above). */
static inline uint64_t obs_bucket_low(unsigned i)
{
	unsigned m;

	if (i < OBS_LINEAR)
		return i;
	m = (i - OBS_LINEAR) / OBS_SUB + OBS_SUB_BITS + 1;
	return (uint64_t)(OBS_SUB + (i - OBS_LINEAR) % OBS_SUB)
	       << (m - OBS_SUB_BITS);
}

static inline uint64_t obs_bucket_high(unsigned i)
{
	unsigned m;

	if (i < OBS_LINEAR)
		return (uint64_t)i + 1;
	m = (i - OBS_LINEAR) / OBS_SUB + OBS_SUB_BITS + 1;
	return obs_bucket_low(i) + (1ull << (m - OBS_SUB_BITS));
}

/* The phases observed, in file order; the first four are enum dl_phase's
 * (a deadline each), by their config names. */
#define OBS_NPH DL_PH_COUNT

/* ---- the shim's hooks --------------------------------------------------- */

struct dl_conn;

/* Nonzero while this process observes (DEADLINE_OBSERVE set and usable). */
extern int observe_on;
/* What every connection's limits are while observing: none. */
extern const struct dl_limits observe_no_limits;

/* observe_start - at start-up, after the configuration: read
 * DEADLINE_OBSERVE and DEADLINE_OBSERVE_INTERVAL.  Returns 1 if the
 * process observes (then the engine must run, with no limit enforced). */
int observe_start(void);

void observe_conn_slow(int fd, struct dl_conn *c, const struct sockaddr *addr,
		       socklen_t len, int inbound);
void observe_connected_slow(int fd, struct dl_conn *c);
void observe_moved_slow(int fd, struct dl_conn *c, int wrote);
void observe_over_slow(int fd, struct dl_conn *c);
void observe_closed_slow(int fd, struct dl_conn *c);

#define OBS_ON() __builtin_expect(__atomic_load_n(&observe_on, __ATOMIC_RELAXED), 0)

/* observe_conn - fd's connection to (outbound) or from (inbound) addr
 * starts being tracked now (connect called, or accept returned). */
static inline void observe_conn(int fd, struct dl_conn *c,
				const struct sockaddr *addr, socklen_t len,
				int inbound)
{
	if (OBS_ON())
		observe_conn_slow(fd, c, addr, len, inbound);
}

/* observe_connected - a blocking connect's handshake completed (an event
 * loop's is taken at the first byte that moves, as the connect deadline
 * is met there). */
static inline void observe_connected(int fd, struct dl_conn *c)
{
	if (OBS_ON())
		observe_connected_slow(fd, c);
}

/* observe_moved - bytes moved on fd (wrote: the program wrote them). */
static inline void observe_moved(int fd, struct dl_conn *c, int wrote)
{
	if (OBS_ON())
		observe_moved_slow(fd, c, wrote);
}

/* observe_over - every request sent on fd had its whole response
 * (exchange.c): the request is over. */
static inline void observe_over(int fd, struct dl_conn *c)
{
	if (OBS_ON())
		observe_over_slow(fd, c);
}

/* observe_closed - the program closes fd (or its number is reused): the
 * request running, if any, ends now. */
static inline void observe_closed(int fd, struct dl_conn *c)
{
	if (OBS_ON())
		observe_closed_slow(fd, c);
}

#endif
