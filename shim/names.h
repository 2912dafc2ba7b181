/* names.h - which name the program resolved to which address.
 *
 * Learnt from the resolver calls the program makes (getaddrinfo,
 * gethostbyname*), so that a rule on `host = "api.example.com"` applies to
 * a connect() that only carries an address.  Bounded: a fixed table,
 * newest entry wins a slot.  Thread-safe (one mutex); plain C otherwise.
 */
#ifndef DL_NAMES_H
#define DL_NAMES_H

#include <stddef.h>
#include <sys/socket.h>

#define NAMES_SLOTS 1024
#define NAMES_NAME_MAX 255

/* names_learn - remember that name resolved to sa (AF_INET or AF_INET6;
 * v4-mapped IPv6 is stored as IPv4).  Other families are ignored. */
void names_learn(const char *name, const struct sockaddr *sa);

/* names_lookup - the name last learnt for sa into buf (NUL-terminated,
 * truncated to len).  Returns 1 if known, else 0 (buf untouched). */
int names_lookup(const struct sockaddr *sa, char *buf, size_t len);

/* names_next_addr - another address learnt for name, after `cur` in the
 * order learnt (wrapping round), with cur's port.  Returns 1 and fills
 * out and outlen (outlen in: capacity) when there is one different from
 * cur, else 0.  Used for connect retries. */
int names_next_addr(const char *name, const struct sockaddr *cur,
		    struct sockaddr *out, socklen_t *outlen);

/* names_clear - forget everything (tests; fork children keep the table). */
void names_clear(void);

#endif
