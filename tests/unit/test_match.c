/* test_match.c - host globs, CIDR blocks, port ranges (shim/match.c). */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>

#include "match.h"

/* ---------------------------------------------------------------- globs */

Test(match_glob, literal_and_case)
{
	cr_expect(match_glob("example.com", "example.com"));
	cr_expect(match_glob("Example.COM", "eXample.com"));
	cr_expect_not(match_glob("example.com", "example.org"));
	cr_expect_not(match_glob("example.com", "example.co"));
	cr_expect_not(match_glob("example.co", "example.com"));
	cr_expect(match_glob("", ""));
	cr_expect_not(match_glob("", "a"));
	cr_expect_not(match_glob("a", ""));
	cr_expect_not(match_glob(NULL, "a"));
	cr_expect_not(match_glob("a", NULL));
}

Test(match_glob, star_and_question)
{
	cr_expect(match_glob("*", ""));
	cr_expect(match_glob("*", "anything.at.all"));
	cr_expect(match_glob("*.example.com", "api.example.com"));
	cr_expect(match_glob("*.example.com", "a.b.example.com"));
	cr_expect_not(match_glob("*.example.com", "example.com"));
	cr_expect_not(match_glob("*.example.com", "badexample.com"));
	cr_expect(match_glob("api-*.example.com", "api-eu-1.example.com"));
	cr_expect(match_glob("a**b", "ab"));
	cr_expect(match_glob("*a*b*c*", "xxaxxbxxcxx"));
	cr_expect_not(match_glob("*a*b*c*", "xxaxxcxxbxx"));
	cr_expect(match_glob("db?.local", "db1.local"));
	cr_expect_not(match_glob("db?.local", "db.local"));
	cr_expect_not(match_glob("db?.local", "db12.local"));
	cr_expect(match_glob("??", "ab"));
	cr_expect(match_glob("10.0.0.*", "10.0.0.17"));
	cr_expect(match_glob("*:*", "2001:db8::1"));
}

Test(match_glob, classes)
{
	cr_expect(match_glob("db[123].local", "db2.local"));
	cr_expect_not(match_glob("db[123].local", "db4.local"));
	cr_expect(match_glob("db[0-9].local", "db7.local"));
	cr_expect(match_glob("db[a-c0-2]", "dbB"));	/* case-insensitive */
	cr_expect(match_glob("db[A-C]", "dbb"));
	cr_expect_not(match_glob("db[a-c]", "dbd"));
	cr_expect(match_glob("db[!0-9]", "dbx"));
	cr_expect_not(match_glob("db[!0-9]", "db5"));
	cr_expect(match_glob("db[^0-9]", "dbx"));
	cr_expect_not(match_glob("db[^0-9]", "db5"));
	cr_expect(match_glob("x[]]y", "x]y"));		/* ']' first: literal */
	cr_expect(match_glob("x[!]]y", "xay"));
	cr_expect_not(match_glob("x[!]]y", "x]y"));
	cr_expect(match_glob("x[a-]y", "x-y"));	/* trailing '-': literal */
	cr_expect(match_glob("metrics-[0-9][0-9]", "metrics-42"));
	cr_expect_not(match_glob("[ab]", ""));
}

Test(match_glob, escapes_and_malformed)
{
	cr_expect(match_glob("a\\*b", "a*b"));
	cr_expect_not(match_glob("a\\*b", "axb"));
	cr_expect(match_glob("a\\?", "a?"));
	/* A '[' that never closes is an ordinary byte. */
	cr_expect(match_glob("a[b", "a[b"));
	cr_expect_not(match_glob("a[b", "ab"));
	/* A lone trailing backslash matches itself. */
	cr_expect(match_glob("a\\", "a\\"));
}

Test(match_glob, no_catastrophic_backtracking)
{
	char name[4096 + 1], pat[512];
	struct timespec t0, t1;
	size_t o = 0;
	double ms;

	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	for (int i = 0; i < 100; i++) {
		pat[o++] = 'a';
		pat[o++] = '*';
	}
	pat[o++] = 'b';
	pat[o] = '\0';
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_expect_not(match_glob(pat, name));
	cr_expect(match_glob(pat + 1, name) == 0);
	name[sizeof(name) - 2] = 'b';
	cr_expect(match_glob(pat, name));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
	     (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	/* A recursive matcher needs ~C(4096,100) steps here; a linear one
	 * needs about a million.  Generous bound for sanitizer builds. */
	cr_expect_lt(ms, 2000.0, "took %.1f ms", ms);
}

Test(match_glob, check)
{
	char err[128];

	cr_expect_eq(match_glob_check("*.example.com", err, sizeof(err)), 0);
	cr_expect_eq(match_glob_check("db[0-9]-?.x_y:z", err, sizeof(err)),
		     0);
	cr_expect_eq(match_glob_check("a\\*", err, sizeof(err)), 0);
	cr_expect_eq(match_glob_check("", err, sizeof(err)), -1);
	cr_expect_str_eq(err, "empty host pattern");
	cr_expect_eq(match_glob_check("[a-z", err, sizeof(err)), -1);
	cr_expect_str_eq(err, "unterminated '[' in host pattern");
	cr_expect_eq(match_glob_check("[z-a]", err, sizeof(err)), -1);
	cr_expect_str_eq(err, "reversed range 'z-a' in host pattern");
	cr_expect_eq(match_glob_check("a\\", err, sizeof(err)), -1);
	cr_expect_str_eq(err, "host pattern ends with a lone '\\'");
	cr_expect_eq(match_glob_check("a/b", err, sizeof(err)), -1);
	cr_expect_str_eq(err, "character '/' cannot appear in a host name");
	cr_expect_eq(match_glob_check("a\tb", err, sizeof(err)), -1);
	cr_expect_str_eq(err, "byte 0x09 cannot appear in a host name");
	cr_expect_eq(match_glob_check("caf\xc3\xa9", NULL, 0), -1);

	char long_pat[MATCH_HOST_MAX + 2];
	memset(long_pat, 'a', sizeof(long_pat) - 1);
	long_pat[sizeof(long_pat) - 1] = '\0';
	cr_expect_eq(match_glob_check(long_pat, err, sizeof(err)), -1);
	long_pat[MATCH_HOST_MAX] = '\0';
	cr_expect_eq(match_glob_check(long_pat, err, sizeof(err)), 0);
}

/* ----------------------------------------------------------------- CIDR */

static struct sockaddr_in sin4(const char *a, uint16_t port)
{
	struct sockaddr_in s;

	memset(&s, 0, sizeof(s));
	s.sin_family = AF_INET;
	s.sin_port = htons(port);
	cr_assert_eq(inet_pton(AF_INET, a, &s.sin_addr), 1);
	return s;
}

static struct sockaddr_in6 sin6(const char *a, uint16_t port)
{
	struct sockaddr_in6 s;

	memset(&s, 0, sizeof(s));
	s.sin6_family = AF_INET6;
	s.sin6_port = htons(port);
	cr_assert_eq(inet_pton(AF_INET6, a, &s.sin6_addr), 1);
	return s;
}

static struct match_cidr cidr(const char *s)
{
	struct match_cidr c;
	char err[128] = "";

	cr_assert_eq(match_cidr_parse(s, &c, err, sizeof(err)), 0,
		     "'%s': %s", s, err);
	return c;
}

static int in4(const char *rule, const char *addr)
{
	struct match_cidr c = cidr(rule);
	struct sockaddr_in a = sin4(addr, 80);

	return match_cidr(&c, (struct sockaddr *)&a, sizeof(a));
}

static int in6(const char *rule, const char *addr)
{
	struct match_cidr c = cidr(rule);
	struct sockaddr_in6 a = sin6(addr, 80);

	return match_cidr(&c, (struct sockaddr *)&a, sizeof(a));
}

static void cidr_err(const char *s, const char *want)
{
	struct match_cidr c;
	char err[128] = "";

	memset(&c, 0x5a, sizeof(c));
	cr_expect_eq(match_cidr_parse(s, &c, err, sizeof(err)), -1,
		     "'%s' should be rejected", s);
	cr_expect_str_eq(err, want, "'%s'", s);
	cr_expect_eq(c.family, 0x5a, "out touched on error");
}

Test(match_cidr, parse_and_format)
{
	char buf[MATCH_CIDR_STRLEN];
	struct match_cidr c;

	c = cidr("10.0.0.0/8");
	cr_expect_eq(c.family, AF_INET);
	cr_expect_eq(c.prefix, 8);
	cr_expect_str_eq(match_cidr_format(&c, buf, sizeof(buf)), "10.0.0.0/8");
	c = cidr("192.168.1.7");
	cr_expect_eq(c.prefix, 32);
	cr_expect_str_eq(match_cidr_format(&c, buf, sizeof(buf)),
			 "192.168.1.7/32");
	c = cidr("fd00::/8");
	cr_expect_eq(c.family, AF_INET6);
	cr_expect_str_eq(match_cidr_format(&c, buf, sizeof(buf)), "fd00::/8");
	c = cidr("2001:db8::1");
	cr_expect_eq(c.prefix, 128);
	/* Host bits are cleared. */
	c = cidr("10.1.2.3/8");
	cr_expect_str_eq(match_cidr_format(&c, buf, sizeof(buf)), "10.0.0.0/8");
	c = cidr("10.255.255.255/12");
	cr_expect_str_eq(match_cidr_format(&c, buf, sizeof(buf)),
			 "10.240.0.0/12");
	c = cidr("2001:db8:ffff::1/33");
	cr_expect_str_eq(match_cidr_format(&c, buf, sizeof(buf)),
			 "2001:db8:8000::/33");
	c = cidr("0.0.0.0/0");
	cr_expect_eq(c.prefix, 0);
	c = cidr("::/0");
	cr_expect_eq(c.prefix, 0);
	c = cidr("::ffff:0:0/96");
	cr_expect_eq(c.family, AF_INET6);
}

Test(match_cidr, parse_errors)
{
	cidr_err("", "empty address");
	cidr_err("10.0.0.0/33", "prefix length out of range 0..32 for IPv4");
	cidr_err("fd00::/129", "prefix length out of range 0..128 for IPv6");
	cidr_err("10.0.0.0/1000", "prefix length out of range 0..32 for IPv4");
	cidr_err("10.0.0.0/", "missing prefix length after '/'");
	cidr_err("10.0.0.0/-1", "prefix length must be a number 0..32");
	cidr_err("10.0.0.0/8x", "prefix length must be a number 0..32");
	cidr_err("10.0.0.0/8/8", "prefix length must be a number 0..32");
	cidr_err("10.0.0.0/ 8", "prefix length must be a number 0..32");
	cidr_err("10.0.0/8", "not a valid IPv4 address (expected a.b.c.d)");
	cidr_err("10.0.0.256", "not a valid IPv4 address (expected a.b.c.d)");
	cidr_err("1.2.3.4.5", "not a valid IPv4 address (expected a.b.c.d)");
	cidr_err("example.com", "not a valid IPv4 address (expected a.b.c.d)");
	cidr_err("/8", "not a valid IPv4 address (expected a.b.c.d)");
	cidr_err("fd00::g/8", "not a valid IPv6 address");
	cidr_err("1:2:3:4:5:6:7:8:9", "not a valid IPv6 address");
	cidr_err("fe80::1%eth0", "IPv6 zone ids ('%...') are not supported");
	cidr_err("1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:"
		 "dddd/128", "too long to be an address");
}

Test(match_cidr, ipv4)
{
	cr_expect(in4("10.0.0.0/8", "10.1.2.3"));
	cr_expect(in4("10.0.0.0/8", "10.255.255.255"));
	cr_expect_not(in4("10.0.0.0/8", "11.0.0.0"));
	cr_expect_not(in4("10.0.0.0/8", "9.255.255.255"));
	cr_expect(in4("192.168.1.128/25", "192.168.1.200"));
	cr_expect_not(in4("192.168.1.128/25", "192.168.1.127"));
	cr_expect(in4("192.168.1.7", "192.168.1.7"));
	cr_expect_not(in4("192.168.1.7", "192.168.1.8"));
	cr_expect(in4("0.0.0.0/0", "203.0.113.9"));
	cr_expect(in4("10.0.0.0/7", "11.0.0.1"));
}

Test(match_cidr, ipv6)
{
	cr_expect(in6("fd00::/8", "fd12:3456::1"));
	cr_expect_not(in6("fd00::/8", "fe80::1"));
	cr_expect(in6("2001:db8::/32", "2001:db8:ffff::1"));
	cr_expect_not(in6("2001:db8::/33", "2001:db8:8000::1"));
	cr_expect(in6("2001:db8::1", "2001:db8::1"));
	cr_expect_not(in6("2001:db8::1", "2001:db8::2"));
	cr_expect(in6("::/0", "::1"));
	/* Different families never mix unless v4-mapped. */
	cr_expect_not(in6("10.0.0.0/8", "fd00::1"));
	cr_expect_not(in4("fd00::/8", "10.0.0.1"));
	cr_expect(in4("::/1", "10.0.0.1"));	/* mapped form starts with 0 */
}

Test(match_cidr, v4_mapped_both_ways)
{
	/* IPv4 rule, v4-mapped peer (a dual-stack socket). */
	cr_expect(in6("10.0.0.0/8", "::ffff:10.9.8.7"));
	cr_expect_not(in6("10.0.0.0/8", "::ffff:11.9.8.7"));
	cr_expect(in6("127.0.0.1", "::ffff:127.0.0.1"));
	/* ... but not v4-compatible or NAT64 forms. */
	cr_expect_not(in6("10.0.0.0/8", "::10.9.8.7"));
	cr_expect_not(in6("10.0.0.0/8", "64:ff9b::10.9.8.7"));
	/* IPv6 rule covering the mapped space, plain IPv4 peer. */
	cr_expect(in4("::ffff:0:0/96", "198.51.100.1"));
	cr_expect(in4("::ffff:10.0.0.0/104", "10.1.1.1"));
	cr_expect_not(in4("::ffff:10.0.0.0/104", "11.1.1.1"));
	cr_expect(in4("::/0", "10.0.0.1"));
	cr_expect_not(in4("fd00::/8", "10.0.0.1"));
}

Test(match_cidr, odd_sockaddrs)
{
	struct match_cidr c = cidr("0.0.0.0/0"), c6 = cidr("::/0");
	struct sockaddr_in a = sin4("10.0.0.1", 1);
	struct sockaddr_in6 a6 = sin6("::1", 1);
	struct sockaddr_un un;

	cr_expect(match_cidr(&c, (struct sockaddr *)&a, sizeof(a)));
	cr_expect_not(match_cidr(&c, (struct sockaddr *)&a, sizeof(a) - 1));
	cr_expect_not(match_cidr(&c6, (struct sockaddr *)&a6, sizeof(a6) - 1));
	cr_expect_not(match_cidr(&c, NULL, sizeof(a)));
	cr_expect_not(match_cidr(NULL, (struct sockaddr *)&a, sizeof(a)));
	cr_expect_not(match_cidr(&c, (struct sockaddr *)&a, 0));
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	cr_expect_not(match_cidr(&c, (struct sockaddr *)&un, sizeof(un)));
	cr_expect_not(match_cidr(&c6, (struct sockaddr *)&un, sizeof(un)));

	/* An unaligned copy in a byte buffer still works. */
	unsigned char raw[sizeof(a) + 1];
	memcpy(raw + 1, &a, sizeof(a));
	cr_expect(match_cidr(&c, (struct sockaddr *)(void *)(raw + 1),
			     sizeof(a)));
}

/* ---------------------------------------------------------------- ports */

static struct match_ports ports(const char *s)
{
	struct match_ports r;
	char err[128] = "";

	cr_assert_eq(match_ports_parse(s, &r, err, sizeof(err)), 0,
		     "'%s': %s", s, err);
	return r;
}

static void ports_err(const char *s, const char *want)
{
	struct match_ports r = { 7, 7 };
	char err[128] = "";

	cr_expect_eq(match_ports_parse(s, &r, err, sizeof(err)), -1,
		     "'%s' should be rejected", s);
	cr_expect_str_eq(err, want, "'%s'", s);
	cr_expect(r.lo == 7 && r.hi == 7, "out touched on error");
}

Test(match_ports, parse)
{
	struct match_ports r;
	char buf[16];

	r = ports("8080");
	cr_expect(r.lo == 8080 && r.hi == 8080);
	cr_expect_str_eq(match_ports_format(&r, buf, sizeof(buf)), "8080");
	r = ports("8000-8999");
	cr_expect(r.lo == 8000 && r.hi == 8999);
	cr_expect_str_eq(match_ports_format(&r, buf, sizeof(buf)),
			 "8000-8999");
	r = ports(" 80 - 90 ");
	cr_expect(r.lo == 80 && r.hi == 90);
	r = ports("1-65535");
	cr_expect(r.lo == 1 && r.hi == 65535);
	r = ports("443-443");
	cr_expect(r.lo == 443 && r.hi == 443);
}

Test(match_ports, parse_errors)
{
	ports_err("", "empty port");
	ports_err("0", "port out of range 1..65535");
	ports_err("65536", "port out of range 1..65535");
	ports_err("99999999999999999999", "port out of range 1..65535");
	ports_err("abc", "expected a port number or a range like 8000-8999");
	ports_err("80-", "expected a port number or a range like 8000-8999");
	ports_err("-80", "expected a port number or a range like 8000-8999");
	ports_err("80-90-100",
		  "expected a port number or a range like 8000-8999");
	ports_err("80x", "expected a port number or a range like 8000-8999");
	ports_err("9000-8000", "range 9000-8000 is reversed (low > high)");
	ports_err("1-0", "port out of range 1..65535");
}

Test(match_ports, integers_and_matching)
{
	struct match_ports r;
	char err[128];

	cr_expect_eq(match_ports_from_int(443, &r, err, sizeof(err)), 0);
	cr_expect(r.lo == 443 && r.hi == 443);
	cr_expect_eq(match_ports_from_int(65535, &r, err, sizeof(err)), 0);
	cr_expect_eq(match_ports_from_int(1, &r, err, sizeof(err)), 0);
	cr_expect_eq(match_ports_from_int(0, &r, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "port 0 is out of range 1..65535");
	cr_expect_eq(match_ports_from_int(65536, &r, err, sizeof(err)), -1);
	cr_expect_eq(match_ports_from_int(-443, &r, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "port -443 is out of range 1..65535");

	r = ports("8000-8999");
	cr_expect(match_ports(&r, 8000));
	cr_expect(match_ports(&r, 8999));
	cr_expect(match_ports(&r, 8500));
	cr_expect_not(match_ports(&r, 7999));
	cr_expect_not(match_ports(&r, 9000));
	cr_expect_not(match_ports(NULL, 8000));
}

Test(match_sockaddr, port_and_text)
{
	struct sockaddr_in a = sin4("192.0.2.1", 8080);
	struct sockaddr_in6 b = sin6("2001:db8::1", 443);
	struct sockaddr_in6 m = sin6("::ffff:192.0.2.9", 25);
	char buf[64];
	uint16_t port = 0;

	cr_expect_eq(match_sockaddr_port((struct sockaddr *)&a, sizeof(a),
					 &port), 0);
	cr_expect_eq(port, 8080);
	cr_expect_eq(match_sockaddr_port((struct sockaddr *)&b, sizeof(b),
					 &port), 0);
	cr_expect_eq(port, 443);
	cr_expect_eq(match_sockaddr_port(NULL, 0, &port), -1);

	cr_expect_eq(match_sockaddr_ntop((struct sockaddr *)&a, sizeof(a),
					 buf, sizeof(buf)), 0);
	cr_expect_str_eq(buf, "192.0.2.1");
	cr_expect_eq(match_sockaddr_ntop((struct sockaddr *)&b, sizeof(b),
					 buf, sizeof(buf)), 0);
	cr_expect_str_eq(buf, "2001:db8::1");
	cr_expect_eq(match_sockaddr_ntop((struct sockaddr *)&m, sizeof(m),
					 buf, sizeof(buf)), 0);
	cr_expect_str_eq(buf, "192.0.2.9");
	cr_expect_eq(match_sockaddr_ntop((struct sockaddr *)&a, 3, buf,
					 sizeof(buf)), -1);
	cr_expect_str_eq(buf, "");
}
