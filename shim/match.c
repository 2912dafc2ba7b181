/* match.c - host globs, CIDR blocks and port ranges. */
#include "match.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Longest CIDR text we accept; anything longer cannot be an address. */
#define CIDR_TEXT_MAX 63

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ASCII-only folding: host names are ASCII (IDNs travel as punycode), and
 * the C library's tolower() would drag the locale into a hot path. */
static unsigned char fold(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* ---------------------------------------------------------------- globs */

/* Matches the bracket expression starting at p (just after '[') against
 * c.  Returns the position just past the closing ']' and stores the result
 * in *hit, or NULL when there is no closing ']' (the caller then treats
 * '[' as an ordinary byte). */
static const char *class_match(const char *p, unsigned char c, int *hit)
{
	int neg = 0, found = 0, first = 1;

	if (*p == '!' || *p == '^') {
		neg = 1;
		p++;
	}
	for (;;) {
		unsigned char lo, hi;

		if (!*p)
			return NULL;
		if (*p == ']' && !first)
			break;
		first = 0;
		if (*p == '\\' && p[1])
			p++;
		lo = fold((unsigned char)*p++);
		hi = lo;
		if (p[0] == '-' && p[1] && p[1] != ']') {
			p++;
			if (*p == '\\' && p[1])
				p++;
			hi = fold((unsigned char)*p++);
		}
		if (c >= lo && c <= hi)
			found = 1;
	}
	*hit = found ^ neg;
	return p + 1;
}

/* Matches one pattern element (not '*') at *pp against c; advances *pp
 * past the element.  Returns 1 on a hit. */
static int elem_match(const char **pp, unsigned char c)
{
	const char *p = *pp;
	int hit;

	switch (*p) {
	case '?':
		*pp = p + 1;
		return 1;
	case '[': {
		const char *end = class_match(p + 1, c, &hit);
		if (end) {
			*pp = end;
			return hit;
		}
		break;
	}
	case '\\':
		if (p[1])
			p++;
		break;
	default:
		break;
	}
	*pp = p + 1;
	return fold((unsigned char)*p) == c;
}

int match_glob(const char *pattern, const char *name)
{
	const char *p, *n, *star_p = NULL, *star_n = NULL;

	if (!pattern || !name)
		return 0;
	p = pattern;
	n = name;
	/* Classic single-backtrack-point matcher: on a mismatch, only the
	 * most recent '*' is retried one byte further, because an earlier
	 * '*' could only absorb what the later one can.  That bounds the
	 * work by len(pattern) * len(name) with no recursion. */
	while (*n) {
		if (*p == '*') {
			while (*p == '*')
				p++;
			if (!*p)
				return 1;
			star_p = p;
			star_n = n;
			continue;
		}
		if (*p) {
			const char *q = p;
			if (elem_match(&q, fold((unsigned char)*n))) {
				p = q;
				n++;
				continue;
			}
		}
		if (!star_p)
			return 0;
		p = star_p;
		n = ++star_n;
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}

static int host_byte_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == ':';
}

/* A byte as it may appear in a one-line message: itself, or \xNN. */
static const char *byte_text(unsigned char c, char buf[8])
{
	if (c >= 0x20 && c < 0x7f)
		snprintf(buf, 8, "%c", c);
	else
		snprintf(buf, 8, "\\x%02x", c);
	return buf;
}

int match_glob_check(const char *pattern, char *err, size_t errlen)
{
	const char *p = pattern;

	if (!p || !*p) {
		set_err(err, errlen, "empty host pattern");
		return -1;
	}
	if (strlen(p) > MATCH_HOST_MAX) {
		set_err(err, errlen, "host pattern longer than %d bytes",
			MATCH_HOST_MAX);
		return -1;
	}
	/* Control bytes nowhere, not even escaped or in a [class]: they
	 * cannot be in a name, and would break messages and `deadline check`
	 * output into several lines. */
	for (const char *q = p; *q; q++)
		if ((unsigned char)*q < 0x20 || *q == 0x7f) {
			set_err(err, errlen,
				"byte 0x%02x cannot appear in a host name",
				(unsigned char)*q);
			return -1;
		}
	while (*p) {
		unsigned char c = (unsigned char)*p;

		if (c == '*' || c == '?') {
			p++;
		} else if (c == '\\') {
			if (!p[1]) {
				set_err(err, errlen,
					"host pattern ends with a lone '\\'");
				return -1;
			}
			p += 2;
		} else if (c == '[') {
			const char *q = p + 1;
			int first = 1;

			if (*q == '!' || *q == '^')
				q++;
			for (;;) {
				unsigned char lo, hi;

				if (!*q) {
					set_err(err, errlen,
						"unterminated '[' in host "
						"pattern");
					return -1;
				}
				if (*q == ']' && !first)
					break;
				first = 0;

				if (*q == '\\' && q[1])
					q++;
				lo = fold((unsigned char)*q++);
				if (q[0] == '-' && q[1] && q[1] != ']') {
					q++;
					if (*q == '\\' && q[1])
						q++;
					hi = fold((unsigned char)*q++);
					if (lo > hi) {
						char a[8], b[8];
						set_err(err, errlen,
							"reversed range "
							"'%s-%s' in host "
							"pattern",
							byte_text(lo, a),
							byte_text(hi, b));
						return -1;
					}
				}
			}
			p = q + 1;
		} else if (host_byte_ok(c)) {
			p++;
		} else {
			if (c >= 0x20 && c < 0x7f)
				set_err(err, errlen,
					"character '%c' cannot appear in a "
					"host name", c);
			else
				set_err(err, errlen,
					"byte 0x%02x cannot appear in a host "
					"name", c);
			return -1;
		}
	}
	return 0;
}

/* ----------------------------------------------------------------- CIDR */

int match_cidr_parse(const char *s, struct match_cidr *out,
		     char *err, size_t errlen)
{
	char buf[CIDR_TEXT_MAX + 1];
	struct match_cidr c;
	const char *slash;
	size_t alen, n;
	unsigned maxp, prefix;

	if (!s || !*s) {
		set_err(err, errlen, "empty address");
		return -1;
	}
	n = strnlen(s, CIDR_TEXT_MAX + 1);
	if (n > CIDR_TEXT_MAX) {
		set_err(err, errlen, "too long to be an address");
		return -1;
	}
	slash = strchr(s, '/');
	alen = slash ? (size_t)(slash - s) : n;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	memset(&c, 0, sizeof(c));

	if (strchr(buf, '%')) {
		set_err(err, errlen, "IPv6 zone ids ('%%...') are not "
			"supported");
		return -1;
	}
	if (strchr(buf, ':')) {
		c.family = AF_INET6;
		maxp = 128;
		if (inet_pton(AF_INET6, buf, c.addr) != 1) {
			set_err(err, errlen, "not a valid IPv6 address");
			return -1;
		}
	} else {
		c.family = AF_INET;
		maxp = 32;
		/* inet_pton, unlike inet_aton, insists on four decimal
		 * parts: "10/8" or "010.1.1.1" are refused, not guessed. */
		if (inet_pton(AF_INET, buf, c.addr) != 1) {
			set_err(err, errlen, "not a valid IPv4 address "
				"(expected a.b.c.d)");
			return -1;
		}
	}

	prefix = maxp;
	if (slash) {
		const char *q = slash + 1;
		unsigned v = 0;
		int digits = 0;

		if (!*q) {
			set_err(err, errlen, "missing prefix length after "
				"'/'");
			return -1;
		}
		for (; *q >= '0' && *q <= '9'; q++) {
			if (++digits > 3)
				break;
			v = v * 10 + (unsigned)(*q - '0');
		}
		if (*q && digits <= 3) {
			set_err(err, errlen, "prefix length must be a number "
				"0..%u", maxp);
			return -1;
		}
		if (digits > 3 || v > maxp) {
			set_err(err, errlen, "prefix length out of range "
				"0..%u for %s", maxp,
				maxp == 32 ? "IPv4" : "IPv6");
			return -1;
		}
		prefix = v;
	}
	c.prefix = (uint8_t)prefix;
	/* Clear host bits so matching and printing never see them. */
	for (unsigned i = 0; i < maxp / 8; i++) {
		unsigned keep = prefix >= (i + 1) * 8 ? 8
				: prefix > i * 8 ? prefix - i * 8 : 0;
		c.addr[i] &= (uint8_t)(0xff00u >> keep);
	}
	*out = c;
	return 0;
}

/* 1 when the first `prefix` bits of a and b agree. */
static int prefix_eq(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	unsigned full = prefix / 8, rest = prefix % 8;

	if (memcmp(a, b, full) != 0)
		return 0;
	if (!rest)
		return 1;
	return ((a[full] ^ b[full]) & (uint8_t)(0xff00u >> rest)) == 0;
}

/* Extracts the raw address: 4 bytes for AF_INET, 16 for AF_INET6.
 * memcpy rather than a cast: the application's buffer may be unaligned. */
static int sockaddr_bytes(const struct sockaddr *sa, socklen_t salen,
			  uint8_t out[16], int *family, uint16_t *port)
{
	sa_family_t fam;

	if (!sa || salen < (socklen_t)sizeof(sa_family_t))
		return -1;
	/* Not &sa->sa_family: even naming a member of a misaligned struct
	 * is undefined behaviour. */
	memcpy(&fam, (const char *)sa + offsetof(struct sockaddr, sa_family),
	       sizeof(fam));
	if (fam == AF_INET && salen >= (socklen_t)sizeof(struct sockaddr_in)) {
		struct sockaddr_in in;
		memcpy(&in, sa, sizeof(in));
		memcpy(out, &in.sin_addr, 4);
		*family = AF_INET;
		*port = ntohs(in.sin_port);
		return 0;
	}
	if (fam == AF_INET6 &&
	    salen >= (socklen_t)sizeof(struct sockaddr_in6)) {
		struct sockaddr_in6 in6;
		memcpy(&in6, sa, sizeof(in6));
		memcpy(out, &in6.sin6_addr, 16);
		*family = AF_INET6;
		*port = ntohs(in6.sin6_port);
		return 0;
	}
	return -1;
}

static const uint8_t v4mapped_prefix[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

int match_cidr(const struct match_cidr *c, const struct sockaddr *sa,
	       socklen_t salen)
{
	uint8_t a[16];
	int fam;
	uint16_t port;

	if (!c || sockaddr_bytes(sa, salen, a, &fam, &port) < 0)
		return 0;
	if (c->family == AF_INET) {
		if (c->prefix > 32)
			return 0;
		if (fam == AF_INET)
			return prefix_eq(a, c->addr, c->prefix);
		if (memcmp(a, v4mapped_prefix, 12) == 0)
			return prefix_eq(a + 12, c->addr, c->prefix);
		return 0;
	}
	if (c->family == AF_INET6) {
		if (c->prefix > 128)
			return 0;
		if (fam == AF_INET) {
			uint8_t m[16];
			memcpy(m, v4mapped_prefix, 12);
			memcpy(m + 12, a, 4);
			return prefix_eq(m, c->addr, c->prefix);
		}
		return prefix_eq(a, c->addr, c->prefix);
	}
	return 0;
}

char *match_cidr_format(const struct match_cidr *c, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (!len)
		return buf;
	if (!c || (c->family != AF_INET && c->family != AF_INET6) ||
	    !inet_ntop(c->family, c->addr, a, sizeof(a))) {
		snprintf(buf, len, "?");
		return buf;
	}
	snprintf(buf, len, "%s/%u", a, (unsigned)c->prefix);
	return buf;
}

/* ---------------------------------------------------------------- ports */

int match_ports_from_int(long long v, struct match_ports *out,
			 char *err, size_t errlen)
{
	if (v < 1 || v > 65535) {
		set_err(err, errlen, "port %lld is out of range 1..65535", v);
		return -1;
	}
	out->lo = out->hi = (uint16_t)v;
	return 0;
}

/* Reads one decimal port at *pp; -1 (with err) on no digits or > 65535. */
static int read_port(const char **pp, unsigned *v, char *err, size_t errlen)
{
	const char *p = *pp;
	unsigned x = 0;
	int digits = 0;

	while (*p == ' ' || *p == '\t')
		p++;
	while (*p >= '0' && *p <= '9') {
		/* Cap before overflow; the range check below rejects it. */
		if (x <= 65535)
			x = x * 10 + (unsigned)(*p - '0');
		p++;
		digits++;
	}
	if (!digits) {
		set_err(err, errlen, "expected a port number or a range "
			"like 8000-8999");
		return -1;
	}
	if (x < 1 || x > 65535) {
		set_err(err, errlen, "port out of range 1..65535");
		return -1;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	*pp = p;
	*v = x;
	return 0;
}

int match_ports_parse(const char *s, struct match_ports *out,
		      char *err, size_t errlen)
{
	const char *p = s;
	unsigned lo, hi;

	if (!s || !*s) {
		set_err(err, errlen, "empty port");
		return -1;
	}
	if (read_port(&p, &lo, err, errlen) < 0)
		return -1;
	hi = lo;
	if (*p == '-') {
		p++;
		if (read_port(&p, &hi, err, errlen) < 0)
			return -1;
	}
	if (*p) {
		set_err(err, errlen, "expected a port number or a range like "
			"8000-8999");
		return -1;
	}
	if (lo > hi) {
		set_err(err, errlen, "range %u-%u is reversed (low > high)",
			lo, hi);
		return -1;
	}
	out->lo = (uint16_t)lo;
	out->hi = (uint16_t)hi;
	return 0;
}

int match_ports(const struct match_ports *r, uint16_t port)
{
	return r && port >= r->lo && port <= r->hi;
}

char *match_ports_format(const struct match_ports *r, char *buf, size_t len)
{
	if (!len)
		return buf;
	if (r->lo == r->hi)
		snprintf(buf, len, "%u", (unsigned)r->lo);
	else
		snprintf(buf, len, "%u-%u", (unsigned)r->lo, (unsigned)r->hi);
	return buf;
}

/* ------------------------------------------------------------ sockaddrs */

int match_sockaddr_port(const struct sockaddr *sa, socklen_t salen,
			uint16_t *port)
{
	uint8_t a[16];
	int fam;

	return sockaddr_bytes(sa, salen, a, &fam, port);
}

int match_sockaddr_ntop(const struct sockaddr *sa, socklen_t salen,
			char *buf, size_t len)
{
	uint8_t a[16];
	int fam;
	uint16_t port;

	if (!len)
		return -1;
	buf[0] = '\0';
	if (sockaddr_bytes(sa, salen, a, &fam, &port) < 0)
		return -1;
	if (fam == AF_INET6 && memcmp(a, v4mapped_prefix, 12) == 0) {
		fam = AF_INET;
		memmove(a, a + 12, 4);
	}
	if (!inet_ntop(fam, a, buf, (socklen_t)len)) {
		buf[0] = '\0';
		return -1;
	}
	return 0;
}
