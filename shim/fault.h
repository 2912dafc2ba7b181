/* fault.h - what fault injection decides, in plain C.
 *
 * A `faults` group in a rule holds one or more fault groups (a group, or a
 * list of groups).  Each group names one or more faults and the triggers
 * they share.  This module holds the parsed form, the decisions (which are
 * pure functions of the seed and of counters the caller keeps, so that a
 * run is reproducible whatever the thread timing), the bandwidth clock and
 * the translation of `deadline --fault` shortcuts into configuration text.
 * No syscalls, no locks, no interposition; unit-tested directly.
 */
#ifndef DL_FAULT_H
#define DL_FAULT_H

#include <stddef.h>
#include <stdint.h>

/* Fault kinds; a group's `kinds` is a mask of (1u << FK_*). */
enum fault_kind {
	FK_LATENCY = 0,
	FK_BANDWIDTH,
	FK_REFUSE,
	FK_UNREACHABLE,
	FK_BLACKHOLE,
	FK_RESET,
	FK_EOF,
	FK_ERROR,
	FK_SLICE,
	FK_SLOW_CLOSE,
	FK_DNS,
	FK_COUNT
};

#define FK_BIT(k) (1u << (k))
/* Faults decided once, when the connection is made. */
#define FK_CONNECT_MASK                                                     \
	(FK_BIT(FK_REFUSE) | FK_BIT(FK_UNREACHABLE))

/* Directions.  upstream = program -> peer (writes), downstream = peer ->
 * program (reads). */
enum fault_dir {
	FDIR_UP = 1,
	FDIR_DOWN = 2,
	FDIR_BOTH = 3,
};

/* Where latency applies. */
enum fault_on {
	FON_FIRST_BYTE = 0,	/* first transfer of each turn */
	FON_CONNECT,		/* the handshake */
	FON_EVERY,		/* every read/write call */
};

/* What a blackhole swallows. */
enum fault_bh {
	FBH_DATA = 0,		/* reads get nothing, writes vanish */
	FBH_CONNECT,		/* the handshake never completes */
};

enum fault_then {
	FTHEN_NONE = 0,
	FTHEN_RESET,
	FTHEN_EOF,
};

enum fault_dns {
	FDNS_NONE = 0,
	FDNS_NXDOMAIN,
	FDNS_AGAIN,
	FDNS_DELAY,
};

#define FAULT_TRIGGER_TEXT 80

/* One fault group, as parsed.  Meaningful fields depend on `kinds`. */
struct fault_spec {
	uint32_t kinds;
	uint32_t line;			/* where the group starts */
	uint16_t group;			/* 1-based position in its rule */
	/* latency */
	uint32_t latency_ms, jitter_ms;
	uint8_t on;			/* enum fault_on */
	/* direction: latency (every/first_byte), bandwidth, error, slice,
	 * and which bytes `after_bytes` counts */
	uint8_t dir;			/* enum fault_dir; 0 = kind default */
	/* bandwidth, bytes per second */
	uint64_t rate;
	/* refuse / unreachable / dns delay */
	uint32_t delay_ms;
	int unreach_err;		/* EHOSTUNREACH or ENETUNREACH */
	/* blackhole */
	uint8_t bh;			/* enum fault_bh */
	uint8_t then;			/* enum fault_then */
	uint32_t then_after_ms;
	/* error */
	int err;
	/* slice */
	uint32_t slice;
	double spurious;		/* chance of EINTR/EAGAIN per call */
	/* slow_close */
	uint32_t slow_close_ms;
	/* dns */
	uint8_t dns;			/* enum fault_dns */
	/* triggers */
	double probability;		/* 0..1; 1 when not given */
	uint32_t nth;			/* every nth connection; 0 = all */
	uint64_t after_bytes;
	uint32_t after_ms;
	uint32_t for_ms;		/* 0 = no end */
	uint32_t times;			/* process-wide cap; 0 = none */
	uint32_t fired;			/* firings so far (atomic) */
	char trigger[FAULT_TRIGGER_TEXT]; /* "always", "probability=0.3 nth=2" */
};

/* The name a kind has in the configuration ("latency", ...). */
const char *fault_kind_name(enum fault_kind k);
/* fault_kind_parse - the kind for a configuration key, or -1. */
int fault_kind_parse(const char *key);

/* The effective direction of a group for kind k (its `direction`, or the
 * kind's default: downstream for latency, bandwidth and after_bytes
 * counting, both for error and slice). */
enum fault_dir fault_dir_of(const struct fault_spec *s, enum fault_kind k);

/* fault_describe_trigger - fill s->trigger from the trigger fields. */
void fault_describe_trigger(struct fault_spec *s);

/* --- group keys ----------------------------------------------------
 *
 * A decision of a group is a roll of (seed, key, host, conn, op, group,
 * salt), and its connection number counts per (key, host), where the key
 * names the rule the group comes from and `group` its position there.
 * Groups of two different rules must never share a key: they would draw
 * identical numbers and share one connection counter, so that two p=0.5
 * groups meant to be independent fire together (50 % of connections
 * delayed instead of 75 %) and only the first ever logs.
 *
 * fault_group_key is the one way to make a key, and it is injective over
 * its whole domain: (source, index) with index 0..FAULT_KEY_INDEX_MAX.
 * Three disjoint ranges:
 *   file rule index i < 1000 (0 = defaults)   i               0 .. 999
 *   DEADLINE_FAULTS spec i (0-based)          1000 + i        1000 .. 66535
 *   file rule index i >= 1000                 0x20000 + i     132072 ..
 * The first two are the keys of earlier versions (same seed, same
 * decisions); only file rules from the 1000th on (which used to collide
 * with the specs) moved. */
enum fault_source {
	FSRC_FILE = 0,		/* a file rule: its 1-based index; 0 = defaults */
	FSRC_SPEC,		/* a DEADLINE_FAULTS spec: its 0-based position */
};

#define FAULT_KEY_INDEX_MAX	0xffffu	/* largest index a key can hold */
#define FAULT_KEY_SPEC_BASE	1000u	/* spec i: 1000 + i */
#define FAULT_KEY_FILE_HIGH	0x20000u /* file rule i >= 1000: this + i */
#define FAULT_KEY_INVALID	0xffffffffu

/* fault_group_key - the key of the groups of rule `index` of src;
 * FAULT_KEY_INVALID for an index above FAULT_KEY_INDEX_MAX. */
uint32_t fault_group_key(enum fault_source src, unsigned index);

/* fault_keys_distinct - 1 when keys[0..n) are pairwise distinct and none
 * is FAULT_KEY_INVALID; else 0, with *a < *b (if given) two positions
 * whose keys are equal (or a == b, the position of an invalid key).
 * Allocates a copy: returns -1 when out of memory. */
int fault_keys_distinct(const uint32_t *keys, size_t n, size_t *a,
			size_t *b);

/* Where a decision is made: everything it may depend on. */
struct fault_ctx {
	uint64_t seed;
	uint32_t rule;		/* the group's key: fault_group_key() */
	uint64_t host;		/* fault_hash() of the host as the log names it */
	uint64_t conn;		/* 1-based connection number for (rule, host) */
	uint64_t op;		/* operation number on the connection */
	uint64_t bytes;		/* bytes moved so far in the counted direction */
	uint64_t elapsed_ms;	/* since the connection started */
};

/* fault_hash - FNV-1a of a string (NULL hashes as ""). */
uint64_t fault_hash(const char *s);

/* fault_roll - a uniform 64-bit value determined by ctx's seed, rule,
 * host, conn and op, and by group and salt (kind, purpose). */
uint64_t fault_roll(const struct fault_ctx *x, unsigned group, unsigned salt);

/* fault_unit - fault_roll scaled to [0, 1). */
double fault_unit(const struct fault_ctx *x, unsigned group, unsigned salt);

/* fault_window_open - the connection-level triggers hold: nth, the
 * after/for window and after_bytes.  (Probability and times are decided
 * by fault_fires.) */
int fault_window_open(const struct fault_spec *s, const struct fault_ctx *x);

/* fault_fires - every trigger of s holds for kind k at ctx, counting the
 * probability roll; does not count toward `times` (the caller claims a
 * firing with fault_claim once it acts). */
int fault_fires(const struct fault_spec *s, enum fault_kind k,
		const struct fault_ctx *x);

/* fault_claim - take one of s's `times` firings.  Returns 1 when allowed
 * (always, without a cap), 0 when the cap is reached.  Thread-safe. */
int fault_claim(struct fault_spec *s);

/* fault_jittered_ms - latency plus a deterministic jitter in
 * [-jitter, +jitter], never below 0. */
uint32_t fault_jittered_ms(const struct fault_spec *s,
			   const struct fault_ctx *x);

/* fault_bw_chunk - the most bytes one call may move at rate bytes/s
 * (about 20 ms worth, at least 1). */
size_t fault_bw_chunk(uint64_t rate);

/* fault_bw_advance - the bandwidth clock: a transfer of n bytes allowed
 * at `now` moves the clock `next` (ns, 0 = idle) to when the next may
 * start.  A transfer late by up to one chunk's time keeps the schedule
 * (the rate holds when the program is not run at once); later than
 * that, the clock restarts from now.  Returns the new value. */
int64_t fault_bw_advance(int64_t next, int64_t now, uint64_t rate, size_t n);

/* fault_parse_rate - "100KB", "1.5MB/s", "64KiB", "800kbit", "12345"
 * (bytes/s).  K/M/G are powers of 1000, Ki/Mi/Gi of 1024; "bit" divides
 * by 8.  Returns 0 and sets *rate (>= 1), or -1. */
int fault_parse_rate(const char *s, uint64_t *rate);

/* fault_specs_to_conf - translate `deadline --fault` shortcuts into
 * configuration text: one rule per spec, one per line, so that a message
 * about line N is about spec N.  specs: shortcuts separated by ';' (each
 * "key=value key=value ..."; a key alone means key=true; p = probability;
 * host, cidr, port, direction and name go to the rule, the rest to its
 * faults group).  Returns a malloc'd NUL-terminated string, or NULL with
 * *err pointing to a static message (out of memory; or a blank around an
 * '=', "fault spec N: spaces are not allowed around '=' (write
 * latency=100ms)", kept in a static buffer that the next call may
 * overwrite). */
char *fault_specs_to_conf(const char *specs, const char **err);

#endif
