/* Unit tests: the address -> name table (shim/names.c). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <string.h>

#include "names.h"

static struct sockaddr_in v4(const char *ip, int port)
{
	struct sockaddr_in a;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, ip, &a.sin_addr);
	return a;
}

static struct sockaddr_in6 v6(const char *ip, int port)
{
	struct sockaddr_in6 a;

	memset(&a, 0, sizeof(a));
	a.sin6_family = AF_INET6;
	a.sin6_port = htons((uint16_t)port);
	inet_pton(AF_INET6, ip, &a.sin6_addr);
	return a;
}

TestSuite(names, .init = names_clear);

Test(names, learn_and_lookup_v4_v6_and_mapped)
{
	struct sockaddr_in a = v4("127.0.0.2", 80);
	struct sockaddr_in6 b = v6("::1", 443), m = v6("::ffff:127.0.0.2", 1);
	char buf[64];

	names_learn("api.test", (struct sockaddr *)&a);
	names_learn("six.test", (struct sockaddr *)&b);
	cr_assert(names_lookup((struct sockaddr *)&a, buf, sizeof(buf)));
	cr_assert_str_eq(buf, "api.test");
	cr_assert(names_lookup((struct sockaddr *)&b, buf, sizeof(buf)));
	cr_assert_str_eq(buf, "six.test");
	/* a v4-mapped IPv6 address is the IPv4 one */
	cr_assert(names_lookup((struct sockaddr *)&m, buf, sizeof(buf)));
	cr_assert_str_eq(buf, "api.test");
}

Test(names, unknown_and_truncated)
{
	struct sockaddr_in a = v4("127.0.0.9", 80);
	char buf[4] = "xyz";

	cr_assert_not(names_lookup((struct sockaddr *)&a, buf, sizeof(buf)));
	cr_assert_str_eq(buf, "xyz");
	names_learn("longname.test", (struct sockaddr *)&a);
	cr_assert(names_lookup((struct sockaddr *)&a, buf, sizeof(buf)));
	cr_assert_str_eq(buf, "lon");
}

Test(names, next_addr_rotates_in_learning_order)
{
	struct sockaddr_in a = v4("127.0.0.2", 0), b = v4("127.0.0.3", 0),
			   c = v4("127.0.0.4", 0), cur = v4("127.0.0.2", 8080);
	struct sockaddr_in out;
	socklen_t len = sizeof(out);
	char ip[32];

	names_learn("multi.test", (struct sockaddr *)&a);
	names_learn("multi.test", (struct sockaddr *)&b);
	names_learn("multi.test", (struct sockaddr *)&c);
	cr_assert(names_next_addr("multi.test", (struct sockaddr *)&cur,
				  (struct sockaddr *)&out, &len));
	inet_ntop(AF_INET, &out.sin_addr, ip, sizeof(ip));
	cr_assert_str_eq(ip, "127.0.0.3");
	cr_assert_eq(ntohs(out.sin_port), 8080, "keeps the port");
	cur = out;
	len = sizeof(out);
	names_next_addr("multi.test", (struct sockaddr *)&cur,
			(struct sockaddr *)&out, &len);
	inet_ntop(AF_INET, &out.sin_addr, ip, sizeof(ip));
	cr_assert_str_eq(ip, "127.0.0.4");
	cur = out;
	len = sizeof(out);
	names_next_addr("multi.test", (struct sockaddr *)&cur,
			(struct sockaddr *)&out, &len);
	inet_ntop(AF_INET, &out.sin_addr, ip, sizeof(ip));
	cr_assert_str_eq(ip, "127.0.0.2", "wraps round");
}

Test(names, next_addr_none_when_single)
{
	struct sockaddr_in a = v4("127.0.0.2", 80), out;
	socklen_t len = sizeof(out);

	names_learn("one.test", (struct sockaddr *)&a);
	cr_assert_not(names_next_addr("one.test", (struct sockaddr *)&a,
				      (struct sockaddr *)&out, &len));
	cr_assert_not(names_next_addr("other.test", (struct sockaddr *)&a,
				      (struct sockaddr *)&out, &len));
}
