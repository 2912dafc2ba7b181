/* names.h - which name the program resolved to which address.
 *
 * Learnt from the resolver calls the program makes (getaddrinfo,
 * gethostbyname*), so that a rule on `host = "api.example.com"` applies to
 * a connect() that only carries an address.
 *
 * One name per address: the same address learnt again under another name
 * takes the newer name.  A different address never displaces a known one
 * while the table has room; it grows (malloc, so never from a signal
 * handler) up to NAMES_MAX_ADDRS addresses.  Full, it forgets the least
 * recently used address (learnt, or looked up by a connection) to make
 * room, and says so in names_learn's answer, for the caller to log: this
 * file does no logging.  Numeric names (address literals) are never learnt.
 * Thread-safe (one mutex); plain C otherwise.
 */
#ifndef DL_NAMES_H
#define DL_NAMES_H

#include <stddef.h>
#include <sys/socket.h>

#define NAMES_NAME_MAX 255
#define NAMES_MAX_ADDRS 65536

/* What names_learn* did. */
#define NAMES_IGNORED (-1) /* nothing to learn: see names_learn */
#define NAMES_LEARNT 0
#define NAMES_EVICTED 1 /* learnt; the table was full, so the least
			 * recently used address was forgotten */
#define NAMES_DROPPED 2 /* not learnt: out of memory */

/* names_learn - remember that name resolved to sa (AF_INET or AF_INET6;
 * v4-mapped IPv6 is stored as IPv4), replacing any name sa had.  Names
 * longer than NAMES_NAME_MAX are truncated.  Returns NAMES_LEARNT,
 * NAMES_EVICTED or NAMES_DROPPED; NAMES_IGNORED for another family, an
 * empty name, or a numeric one (names_is_literal). */
int names_learn(const char *name, const struct sockaddr *sa);

/* names_learn_resolved - a lookup of `asked` answered sa under the
 * canonical name `canon` (may be NULL): asked is learnt as names_learn
 * does (the name the program asked for wins); canon only if sa still has
 * no name.  Returns the worse of the two answers (the higher one). */
int names_learn_resolved(const char *asked, const char *canon,
			 const struct sockaddr *sa);

/* names_is_literal - 1 if name is an address, not a name: IPv4 (also the
 * inet_aton forms getaddrinfo takes, such as 127.1), IPv6, scoped IPv6
 * (fe80::1%lo).  Looking one up teaches nothing. */
int names_is_literal(const char *name);

/* names_lookup - the name last learnt for sa into buf (NUL-terminated,
 * truncated to len).  Returns 1 if known, else 0 (buf untouched).  Counts
 * as a use of sa (see above). */
int names_lookup(const struct sockaddr *sa, char *buf, size_t len);

/* names_next_addr - another address learnt for name, after `cur` in the
 * order learnt (wrapping round), with cur's port.  Returns 1 and fills
 * out and outlen (outlen in: capacity) when there is one different from
 * cur, else 0.  Used for connect retries.  O(addresses of name). */
int names_next_addr(const char *name, const struct sockaddr *cur,
		    struct sockaddr *out, socklen_t *outlen);

/* names_count - addresses known.  names_dropped - addresses forgotten or
 * not learnt for want of room, since start (or names_clear). */
size_t names_count(void);
unsigned long names_dropped(void);

/* names_set_limit - tests: hold at most max addresses (0, or above
 * NAMES_MAX_ADDRS: NAMES_MAX_ADDRS).  Call it on an empty table. */
void names_set_limit(size_t max);

/* names_clear - forget everything, free the memory, restore the limit
 * (tests; fork children keep the table). */
void names_clear(void);

/* names_fork_prepare / names_fork_release - hold the table's lock across
 * fork() (taken after the engine's lock, released in parent and child),
 * so a child never inherits it held by a thread it does not have. */
void names_fork_prepare(void);
void names_fork_release(void);

#endif
