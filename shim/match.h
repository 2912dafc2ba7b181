/* match.h - host globs, CIDR blocks and port ranges for per-host rules.
 *
 * Plain C: no interposition, no dlsym, no allocation, no syscalls.  Every
 * function is safe to call from any thread and from inside an interposed
 * call (nothing here takes a lock or calls malloc).
 *
 * Parsers write a one-line, printable error message into a caller buffer;
 * they never print.
 */
#ifndef DL_MATCH_H
#define DL_MATCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest host pattern and host name we look at (a DNS name is <= 253). */
#define MATCH_HOST_MAX 255

/* Room for any CIDR in text form: "ffff:...:255.255.255.255/128" + NUL. */
#define MATCH_CIDR_STRLEN 50

/* match_glob - case-insensitive shell glob of a host name.
 * Supports '*' (any run, dots included), '?' (one byte), '[abc]', '[a-z]',
 * '[!x]' / '[^x]' (a ']' right after '[' or '[!' is literal), and '\' to
 * quote the next byte.  A '[' without a closing ']' matches itself.
 * Runs in O(len(pattern) * len(name)) time without recursion.
 * Returns 1 on match, 0 otherwise (also when either argument is NULL).
 */
int match_glob(const char *pattern, const char *name);

/* match_glob_check - 0 if pattern is a well-formed host glob, else -1 with a
 * reason in err (unterminated '[', dangling '\', reversed range, a byte that
 * cannot appear in a host name).  err may be NULL.
 */
int match_glob_check(const char *pattern, char *err, size_t errlen);

/* An address block.  addr holds the network in network byte order with the
 * host bits cleared; for AF_INET only addr[0..3] are used. */
struct match_cidr {
	uint8_t family;	/* AF_INET or AF_INET6 */
	uint8_t prefix;	/* 0..32 or 0..128 */
	uint8_t addr[16];
};

/* match_cidr_parse - parse "10.0.0.0/8", "fd00::/8", or a bare address
 * (taken as /32 or /128).  Host bits beyond the prefix are ignored, as in
 * iptables.  IPv6 zone ids ("%eth0") are rejected.
 * Returns 0 and fills *out, or -1 with a reason in err (out untouched).
 */
int match_cidr_parse(const char *s, struct match_cidr *out,
		     char *err, size_t errlen);

/* match_cidr - 1 when the socket address falls in the block, else 0.
 * An IPv4 block also matches v4-mapped IPv6 addresses (::ffff:a.b.c.d); an
 * IPv6 block sees a plain IPv4 address as its v4-mapped form, so
 * ::ffff:0:0/96 matches all IPv4.  salen guards against short addresses
 * handed to connect(): too short, NULL or non-IP families give 0.
 */
int match_cidr(const struct match_cidr *c, const struct sockaddr *sa,
	       socklen_t salen);

/* match_cidr_format - "10.0.0.0/8" into buf (>= MATCH_CIDR_STRLEN is always
 * enough).  Returns buf; on a too-small buffer the text is truncated. */
char *match_cidr_format(const struct match_cidr *c, char *buf, size_t len);

/* A closed range of TCP ports, 1 <= lo <= hi <= 65535. */
struct match_ports {
	uint16_t lo;
	uint16_t hi;
};

/* match_ports_parse - "8080" or "8000-8999" (spaces around '-' allowed).
 * Returns 0 and fills *out, or -1 with a reason in err (out untouched). */
int match_ports_parse(const char *s, struct match_ports *out,
		      char *err, size_t errlen);

/* match_ports_from_int - the integer form ("port = 443;").  Same contract
 * as match_ports_parse. */
int match_ports_from_int(long long v, struct match_ports *out,
			 char *err, size_t errlen);

/* match_ports - 1 when port (host byte order) is inside the range. */
int match_ports(const struct match_ports *r, uint16_t port);

/* match_ports_format - "443" or "8000-8999" into buf.  Returns buf. */
char *match_ports_format(const struct match_ports *r, char *buf, size_t len);

/* match_sockaddr_port - the port of an AF_INET/AF_INET6 address in host
 * byte order into *port.  Returns 0, or -1 when sa is NULL, too short or
 * of another family. */
int match_sockaddr_port(const struct sockaddr *sa, socklen_t salen,
			uint16_t *port);

/* match_sockaddr_ntop - the address as text ("192.0.2.1", "2001:db8::1");
 * a v4-mapped IPv6 address is written in its dotted IPv4 form so one host
 * pattern covers both.  Returns 0, or -1 (buf set to "") for non-IP or
 * short addresses.  len >= 46 (INET6_ADDRSTRLEN) always suffices. */
int match_sockaddr_ntop(const struct sockaddr *sa, socklen_t salen,
			char *buf, size_t len);

#endif
