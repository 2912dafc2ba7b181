/* conf.h - per-host rules loaded from a libconfig file.
 *
 * Plain C: no interposition, no dlsym; the only syscalls are the ones that
 * read the configuration file.  Never prints, never exits: every problem
 * becomes a "FILE:LINE: message" string in struct conf's error list and the
 * caller decides what to show.
 *
 * Life cycle: conf_init() -> conf_load() -> [conf_apply_env_overrides()]
 * -> any number of conf_match()/conf_effective()/conf_lookup() calls, from
 * any thread, concurrently (they only read) -> conf_free().
 *
 * Merging, highest precedence first, per value:
 *   1. DEADLINE_*_TIMEOUT environment variables (the four limits only),
 *      folded in once by conf_apply_env_overrides();
 *   2. the first rule that matches the connection;
 *   3. the `defaults` group;
 *   4. built-ins: no limit, ETIMEDOUT, reset, no retries.
 *
 * The `faults` key (one group, or a list of groups) is parsed into
 * struct fault_spec (fault.h), checked like everything else, and picked
 * whole: a rule's faults replace the defaults' faults.
 *
 * Implemented by conf_load.c, conf_parse.c, conf_faults.c, conf_check.c
 * and conf_rules.c; conf_int.h says which does what.
 */
#ifndef DL_CONF_H
#define DL_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "fault.h"
#include "match.h"
#include "policy.h"

/* Bounds that keep a hostile file from costing unbounded time or memory. */
#define CONF_MAX_FILE_BYTES	(1024 * 1024)
#define CONF_MAX_LINES		65535	/* libconfig keeps lines in 16 bits */
#define CONF_MAX_RULES		1024
#define CONF_MAX_CIDRS		64	/* per rule */
#define CONF_MAX_ERRORS		64	/* later ones are counted, not kept */
#define CONF_NAME_MAX		63	/* rule name, bytes */
#define CONF_MAX_RETRIES	100
#define CONF_MAX_FAULTS		16	/* fault groups per rule */

/* Built-in retry back-off, used when connect_retries > 0 and neither the
 * rule nor defaults say otherwise. */
#define CONF_BACKOFF_BASE_MS	100u
#define CONF_BACKOFF_MAX_MS	5000u

enum conf_direction {
	CONF_DIR_ANY = 0,
	CONF_DIR_OUTBOUND,
	CONF_DIR_INBOUND,
};

/* How a connection whose deadline passed is ended. */
enum conf_teardown {
	CONF_TEARDOWN_RESET = 0,	/* RST (SO_LINGER 0 / AF_UNSPEC connect) */
	CONF_TEARDOWN_CLOSE,		/* orderly FIN */
};

/* Bits of conf_values.set: which fields the group wrote explicitly.
 * The four limit bits are (1u << enum dl_phase). */
#define CONF_SET_LIMIT(ph)	(1u << (ph))
#define CONF_SET_ERRNO		(1u << 4)
#define CONF_SET_TEARDOWN	(1u << 5)
#define CONF_SET_DNS		(1u << 6)
#define CONF_SET_RETRIES	(1u << 7)
#define CONF_SET_BACKOFF_BASE	(1u << 8)
#define CONF_SET_BACKOFF_MAX	(1u << 9)
#define CONF_SET_FAULTS		(1u << 10)

/* The per-rule keys, as written in one group (a rule or `defaults`).
 * A field is meaningful only when its CONF_SET_* bit is in `set`. */
struct conf_values {
	uint32_t set;
	struct dl_limits limits;	/* ms, 0 = no limit */
	int err;			/* errno value, e.g. ETIMEDOUT */
	enum conf_teardown teardown;
	uint32_t dns_timeout_ms;
	uint32_t connect_retries;	/* 0..CONF_MAX_RETRIES */
	uint32_t backoff_base_ms;
	uint32_t backoff_max_ms;
	struct fault_spec *faults;	/* owned; nfaults groups */
	uint16_t nfaults;
};

struct conf_rule {
	char name[CONF_NAME_MAX + 1];	/* given, or "rule#N" */
	uint16_t index;			/* 1-based position in the file */
	uint32_t line;			/* line of the rule's '{' */
	char *host;			/* glob, NULL = any host */
	struct match_cidr *cidrs;	/* any of them; NULL/0 = any address */
	uint16_t ncidrs;
	uint8_t has_ports;
	struct match_ports ports;
	enum conf_direction direction;
	struct conf_values v;
};

struct conf {
	char *path;			/* as given to conf_load, for messages */
	struct conf_values defaults;
	struct conf_rule *rules;
	size_t nrules;
	int has_seed;
	long long seed;			/* for fault injection decisions */
	/* Error list: "FILE:LINE: message", one line each, printable. */
	char **errors;
	size_t nerrors;
	size_t errors_dropped;		/* beyond CONF_MAX_ERRORS */
};

/* What a connection to a given peer gets, every value resolved. */
struct conf_effective {
	struct dl_limits limits;
	int err;
	enum conf_teardown teardown;
	uint32_t dns_timeout_ms;	/* 0 = no limit */
	uint32_t connect_retries;
	uint32_t backoff_base_ms;
	uint32_t backoff_max_ms;	/* >= backoff_base_ms */
	struct fault_spec *faults;	/* owned by the conf; NULL = none */
	uint16_t nfaults;
	const char *rule_name;		/* "defaults" if no rule matched; owned
					 * by the conf (valid until conf_free) */
	uint16_t rule_index;		/* 1-based; 0 = no rule matched */
};

/* Who the program is talking to. */
struct conf_peer {
	const char *host;		/* name the program resolved, or NULL */
	const struct sockaddr *addr;	/* remote address, or NULL */
	socklen_t addrlen;
	/* Local address: only used to match `port` on inbound sockets, where
	 * the interesting port is the one the daemon listens on.  May be
	 * NULL (then an inbound rule with `port` does not match). */
	const struct sockaddr *local;
	socklen_t locallen;
	int inbound;			/* 1 for accept()ed sockets */
};

/* conf_init - an empty configuration: no rules, nothing set.  Using it as
 * is gives the built-ins, i.e. pure pass-through. */
void conf_init(struct conf *c);

/* conf_load - read and check the libconfig file at path into c, which must
 * have been conf_init()ed; anything it held before is released first.
 * Reads at most CONF_MAX_FILE_BYTES.  Returns 0 on success.  Returns -1 if
 * there was any error: all of them are in c->errors (a file that cannot be
 * read leaves errno from open/read), and c holds no rules and no defaults,
 * so it behaves as an empty configuration - a half-understood file never
 * half-applies.  On allocation failure errno is ENOMEM and the list may be
 * short or, at worst, empty.  Call conf_free() in both cases.
 */
int conf_load(struct conf *c, const char *path);

/* conf_load_mem - as conf_load, but the text is data[0..len) (need not be
 * NUL-terminated; a NUL byte inside is an error).  name stands for the
 * file name in messages and c->path.  This is the fuzzing entry point.
 */
int conf_load_mem(struct conf *c, const char *data, size_t len,
		  const char *name);

/* conf_free - release everything c owns and leave it conf_init()ed. */
void conf_free(struct conf *c);

/* conf_set_io - the read and close conf_load uses on the file it opens.
 * The defaults are libc's read and close, by their plain names; inside
 * libdeadline.so those names resolve to the shim's own exported wrappers,
 * so the shim passes its real-function pointers here instead.  NULL for
 * either restores its default.  Call it before the loads it should affect
 * (the shim: once, at start-up).  It is not a data race with a load
 * running meanwhile, but that load may still use the old functions.
 * Does not touch errno.
 */
void conf_set_io(ssize_t (*rd)(int, void *, size_t), int (*cl)(int));

/* conf_apply_env_overrides - fold process-wide limits (from
 * policy_limits_from_env) into defaults and into every rule, so that they
 * beat anything the file says.  Limits that are 0 are "unset" and change
 * nothing; hence the environment can add or change a limit but cannot
 * lift one the file sets.  Call once, after conf_load and before sharing c
 * between threads.  env may be NULL (no-op).
 */
void conf_apply_env_overrides(struct conf *c, const struct dl_limits *env);

/* conf_match - the first rule, in file order, whose every match key fits
 * the peer: host glob (against p->host and against the address as text),
 * any cidr, port (remote port outbound, local port inbound), direction.
 * Returns NULL when no rule matches (use defaults).  No allocation, no
 * locks, no errno change; the result lives as long as c.
 */
const struct conf_rule *conf_match(const struct conf *c,
				   const struct conf_peer *p);

/* conf_effective - resolve rule r (NULL = no rule matched) against
 * defaults and built-ins into *out. */
void conf_effective(const struct conf *c, const struct conf_rule *r,
		    struct conf_effective *out);

/* conf_lookup - conf_match then conf_effective.  Returns the rule (or
 * NULL), *out always filled. */
const struct conf_rule *conf_lookup(const struct conf *c,
				    const struct conf_peer *p,
				    struct conf_effective *out);

/* conf_errno_name - "ETIMEDOUT" for an errno value the config accepts,
 * NULL for others. */
const char *conf_errno_name(int err);

/* conf_errno_parse - the errno value of a name the config accepts
 * (exact, upper case), or -1. */
int conf_errno_parse(const char *name);

/* conf_teardown_name / conf_direction_name - the config spelling. */
const char *conf_teardown_name(enum conf_teardown t);
const char *conf_direction_name(enum conf_direction d);

/* conf_rule_describe - the rule's match keys as one line, e.g.
 * "host=*.example.com cidr=10.0.0.0/8 port=443 outbound", or "*" for a
 * rule that matches everything.  Truncates to len.  Returns buf. */
char *conf_rule_describe(const struct conf_rule *r, char *buf, size_t len);

/* conf_edit_distance - Levenshtein distance between a and b, ASCII case
 * folded, capped at cap (returns cap when it is at least that).  Used for
 * "did you mean" hints; exposed for tests. */
unsigned conf_edit_distance(const char *a, const char *b, unsigned cap);

/* conf_fault_keys_check - the keys of every rule that can carry fault
 * groups, as the shim makes them: `defaults` and each rule of file
 * (FSRC_FILE, by its index), each rule of specs (FSRC_SPEC, by position);
 * either may be NULL.  Returns 0 when they are all distinct, -1 with the
 * two rules named in msg ("rule#1000 and fault#1") when two share one,
 * -2 when out of memory. */
int conf_fault_keys_check(const struct conf *file, const struct conf *specs,
			  char *msg, size_t cap);

#endif
