/* Unit tests: the address -> name table (shim/names.c). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
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

/* 10.a.b.c for i, distinct for i < 2^24 */
static struct sockaddr_in nth_v4(unsigned i)
{
	struct sockaddr_in a;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(0x0a000000u | (i & 0xffffffu));
	return a;
}

static const char *name_of(const void *sa, char *buf, size_t len)
{
	if (!names_lookup((const struct sockaddr *)sa, buf, len))
		snprintf(buf, len, "(none)");
	return buf;
}

Test(names, other_addresses_never_evict_a_name)
{
	struct sockaddr_in lo = v4("127.0.0.1", 80);
	struct sockaddr_in6 lo6 = v6("::1", 80);
	char buf[64], want[64];

	cr_assert_eq(names_learn("localhost", (struct sockaddr *)&lo),
		     NAMES_LEARNT);
	cr_assert_eq(names_learn("localhost", (struct sockaddr *)&lo6),
		     NAMES_LEARNT);
	for (unsigned i = 0; i < 5000; i++) {
		struct sockaddr_in a = nth_v4(i);
		snprintf(buf, sizeof(buf), "host%u.test", i);
		cr_assert_eq(names_learn(buf, (struct sockaddr *)&a),
			     NAMES_LEARNT);
	}
	cr_assert_str_eq(name_of(&lo, buf, sizeof(buf)), "localhost");
	cr_assert_str_eq(name_of(&lo6, buf, sizeof(buf)), "localhost");
	for (unsigned i = 0; i < 5000; i++) {
		struct sockaddr_in a = nth_v4(i);
		snprintf(want, sizeof(want), "host%u.test", i);
		cr_assert_str_eq(name_of(&a, buf, sizeof(buf)), want);
	}
	cr_assert_eq(names_count(), 5002);
	cr_assert_eq(names_dropped(), 0);
}

Test(names, same_address_takes_the_newest_name)
{
	struct sockaddr_in a = v4("127.0.0.7", 80), b = v4("127.0.0.8", 80);
	char buf[64];

	names_learn("old.test", (struct sockaddr *)&a);
	names_learn("old.test", (struct sockaddr *)&b);
	cr_assert_eq(names_learn("new.test", (struct sockaddr *)&a),
		     NAMES_LEARNT);
	cr_assert_str_eq(name_of(&a, buf, sizeof(buf)), "new.test");
	cr_assert_str_eq(name_of(&b, buf, sizeof(buf)), "old.test");
	cr_assert_eq(names_count(), 2);
	/* a left old.test's addresses: no retry from b goes there */
	{
		struct sockaddr_in out;
		socklen_t len = sizeof(out);
		cr_assert_not(names_next_addr("old.test",
					      (struct sockaddr *)&b,
					      (struct sockaddr *)&out, &len));
	}
	/* the newest spelling of the same name */
	names_learn("NEW.test", (struct sockaddr *)&a);
	cr_assert_str_eq(name_of(&a, buf, sizeof(buf)), "NEW.test");
	/* old.test has no address left; its name is gone, then reused */
	names_learn("x.test", (struct sockaddr *)&b);
	names_learn("old.test", (struct sockaddr *)&b);
	cr_assert_str_eq(name_of(&b, buf, sizeof(buf)), "old.test");
}

Test(names, literals_are_recognised)
{
	static const char *const lit[] = {
		"127.0.0.1", "0.0.0.0", "::1", "::", "2001:db8::7",
		"::ffff:127.0.0.1", "fe80::1%lo", "fe80::1%2",
		"127.1", "0x7f000001", "2130706433", "0x7f.1",
	};
	static const char *const name[] = {
		"localhost", "a.test", "deadbeef", "cafe", "1.2.3.4.example",
		"fe80::1x", "fe80::1x%lo", "127.0.0.1.nip.io", "1a.test", "",
		"127.0.0.1 x", "x%lo",
	};

	for (size_t i = 0; i < sizeof(lit) / sizeof(lit[0]); i++)
		cr_assert(names_is_literal(lit[i]), "%s", lit[i]);
	for (size_t i = 0; i < sizeof(name) / sizeof(name[0]); i++)
		cr_assert_not(names_is_literal(name[i]), "%s", name[i]);
	cr_assert_not(names_is_literal(NULL));
}

Test(names, numeric_lookup_teaches_nothing)
{
	struct sockaddr_in a = v4("127.0.0.5", 80), u = v4("127.0.0.6", 80);
	struct sockaddr_in6 s = v6("fe80::1", 80), m = v6("::ffff:127.0.0.5", 0);
	char buf[64];

	names_learn("a.test", (struct sockaddr *)&a);
	/* getaddrinfo("127.0.0.5"), as socket.create_connection((ip, port)) */
	cr_assert_eq(names_learn("127.0.0.5", (struct sockaddr *)&a),
		     NAMES_IGNORED);
	cr_assert_eq(names_learn("::ffff:127.0.0.5", (struct sockaddr *)&m),
		     NAMES_IGNORED);
	cr_assert_eq(names_learn("127.5", (struct sockaddr *)&a),
		     NAMES_IGNORED);
	cr_assert_str_eq(name_of(&a, buf, sizeof(buf)), "a.test");
	cr_assert_eq(names_learn("fe80::1%lo", (struct sockaddr *)&s),
		     NAMES_IGNORED);
	cr_assert_eq(names_learn("127.0.0.6", (struct sockaddr *)&u),
		     NAMES_IGNORED);
	cr_assert_not(names_lookup((struct sockaddr *)&s, buf, sizeof(buf)));
	cr_assert_not(names_lookup((struct sockaddr *)&u, buf, sizeof(buf)));
	cr_assert_eq(names_count(), 1);
}

/* What gethostbyname("alias.test") learns for 127.0.0.5 when /etc/hosts
 * says "127.0.0.5 canon.test alias.test": the alias, as getaddrinfo. */
Test(names, asked_name_beats_canonical)
{
	struct sockaddr_in a = v4("127.0.0.5", 80), b = v4("127.0.0.6", 80),
			   c = v4("127.0.0.7", 80), out;
	socklen_t len = sizeof(out);
	char buf[64];

	cr_assert_eq(names_learn_resolved("alias.test", "canon.test",
					  (struct sockaddr *)&a),
		     NAMES_LEARNT);
	cr_assert_str_eq(name_of(&a, buf, sizeof(buf)), "alias.test");
	cr_assert_eq(names_learn_resolved("alias.test", "canon.test",
					  (struct sockaddr *)&b),
		     NAMES_LEARNT);
	cr_assert_str_eq(name_of(&b, buf, sizeof(buf)), "alias.test");
	/* the alias's addresses are one list, in order */
	cr_assert(names_next_addr("alias.test", (struct sockaddr *)&a,
				  (struct sockaddr *)&out, &len));
	cr_assert_eq(out.sin_addr.s_addr, b.sin_addr.s_addr);
	/* asking for the canonical name itself: it is the name asked */
	names_learn_resolved("canon.test", "canon.test", (struct sockaddr *)&a);
	cr_assert_str_eq(name_of(&a, buf, sizeof(buf)), "canon.test");
	/* the canonical name only names an address that has none */
	cr_assert_eq(names_learn_resolved("127.0.0.7", "canon7.test",
					  (struct sockaddr *)&c),
		     NAMES_LEARNT);
	cr_assert_str_eq(name_of(&c, buf, sizeof(buf)), "canon7.test");
	cr_assert_eq(names_learn_resolved(NULL, "other.test",
					  (struct sockaddr *)&b),
		     NAMES_IGNORED);
	cr_assert_str_eq(name_of(&b, buf, sizeof(buf)), "alias.test");
	/* the old order (canonical learnt last, unconditionally) is gone */
	names_learn_resolved("alias2.test", "canon.test", (struct sockaddr *)&c);
	cr_assert_str_eq(name_of(&c, buf, sizeof(buf)), "alias2.test");
}

Test(names, full_table_forgets_least_recently_used_and_says_so)
{
	struct sockaddr_in a[10];
	char buf[64];

	names_set_limit(8);
	for (unsigned i = 0; i < 8; i++) {
		a[i] = nth_v4(i);
		snprintf(buf, sizeof(buf), "n%u.test", i);
		cr_assert_eq(names_learn(buf, (struct sockaddr *)&a[i]),
			     NAMES_LEARNT);
	}
	/* a connection to n0 uses it: n1 is now the least recently used */
	cr_assert_str_eq(name_of(&a[0], buf, sizeof(buf)), "n0.test");
	/* relearning a known address needs no room */
	cr_assert_eq(names_learn("n3.test", (struct sockaddr *)&a[3]),
		     NAMES_LEARNT);
	cr_assert_eq(names_dropped(), 0);
	a[8] = nth_v4(8);
	cr_assert_eq(names_learn("n8.test", (struct sockaddr *)&a[8]),
		     NAMES_EVICTED);
	cr_assert_eq(names_count(), 8);
	cr_assert_eq(names_dropped(), 1);
	cr_assert_not(names_lookup((struct sockaddr *)&a[1], buf, sizeof(buf)));
	cr_assert_str_eq(name_of(&a[0], buf, sizeof(buf)), "n0.test");
	cr_assert_str_eq(name_of(&a[8], buf, sizeof(buf)), "n8.test");
	/* next: n2 (learnt before, untouched since) */
	a[9] = nth_v4(9);
	cr_assert_eq(names_learn("n0.test", (struct sockaddr *)&a[9]),
		     NAMES_EVICTED);
	cr_assert_not(names_lookup((struct sockaddr *)&a[2], buf, sizeof(buf)));
	cr_assert_eq(names_dropped(), 2);
	{
		struct sockaddr_in out;
		socklen_t len = sizeof(out);
		cr_assert(names_next_addr("n0.test", (struct sockaddr *)&a[0],
					  (struct sockaddr *)&out, &len));
		cr_assert_eq(out.sin_addr.s_addr, a[9].sin_addr.s_addr);
	}
}

Test(names, full_at_the_real_bound)
{
	struct sockaddr_in lo = v4("127.0.0.1", 80), a;
	char buf[64];

	cr_assert_eq(names_learn("localhost", (struct sockaddr *)&lo),
		     NAMES_LEARNT);
	for (unsigned i = 0; i < NAMES_MAX_ADDRS - 1; i++) {
		a = nth_v4(i);
		cr_assert_eq(names_learn("many.test", (struct sockaddr *)&a),
			     NAMES_LEARNT);
		if (i % 1000 == 0) /* localhost stays in use */
			name_of(&lo, buf, sizeof(buf));
	}
	cr_assert_eq(names_count(), NAMES_MAX_ADDRS);
	cr_assert_eq(names_dropped(), 0);
	name_of(&lo, buf, sizeof(buf));
	a = nth_v4(NAMES_MAX_ADDRS);
	cr_assert_eq(names_learn("one-more.test", (struct sockaddr *)&a),
		     NAMES_EVICTED);
	cr_assert_eq(names_count(), NAMES_MAX_ADDRS);
	cr_assert_eq(names_dropped(), 1);
	cr_assert_str_eq(name_of(&lo, buf, sizeof(buf)), "localhost");
	cr_assert_str_eq(name_of(&a, buf, sizeof(buf)), "one-more.test");
	a = nth_v4(0); /* the least recently used went */
	cr_assert_not(names_lookup((struct sockaddr *)&a, buf, sizeof(buf)));
}

Test(names, relearnt_address_moves_to_the_end_of_the_order)
{
	struct sockaddr_in a = v4("127.0.0.2", 0), b = v4("127.0.0.3", 0),
			   c = v4("127.0.0.4", 0), out;
	socklen_t len = sizeof(out);

	names_learn("multi.test", (struct sockaddr *)&a);
	names_learn("multi.test", (struct sockaddr *)&b);
	names_learn("multi.test", (struct sockaddr *)&c);
	names_learn("MULTI.test", (struct sockaddr *)&a); /* now b, c, a */
	cr_assert(names_next_addr("multi.test", (struct sockaddr *)&c,
				  (struct sockaddr *)&out, &len));
	cr_assert_eq(out.sin_addr.s_addr, a.sin_addr.s_addr);
	len = sizeof(out);
	cr_assert(names_next_addr("Multi.Test", (struct sockaddr *)&a,
				  (struct sockaddr *)&out, &len));
	cr_assert_eq(out.sin_addr.s_addr, b.sin_addr.s_addr, "wraps round");
}

Test(names, next_addr_families)
{
	struct sockaddr_in a = v4("127.0.0.2", 0), cur = v4("127.0.0.2", 81);
	struct sockaddr_in6 s = v6("::1", 0), cur6 = v6("::1", 82), out6;
	struct sockaddr_in out;
	socklen_t len = sizeof(out);
	char ip[64];

	names_learn("dual.test", (struct sockaddr *)&s);
	names_learn("dual.test", (struct sockaddr *)&a);
	/* a v4 socket cannot go to ::1 */
	cr_assert_not(names_next_addr("dual.test", (struct sockaddr *)&cur,
				      (struct sockaddr *)&out, &len));
	/* a v6 socket reaches 127.0.0.2 v4-mapped */
	len = sizeof(out6);
	cr_assert(names_next_addr("dual.test", (struct sockaddr *)&cur6,
				  (struct sockaddr *)&out6, &len));
	inet_ntop(AF_INET6, &out6.sin6_addr, ip, sizeof(ip));
	cr_assert_str_eq(ip, "::ffff:127.0.0.2");
	cr_assert_eq(ntohs(out6.sin6_port), 82);
	/* an unknown current address: the first learnt */
	cur6 = v6("2001:db8::9", 83);
	len = sizeof(out6);
	cr_assert(names_next_addr("dual.test", (struct sockaddr *)&cur6,
				  (struct sockaddr *)&out6, &len));
	inet_ntop(AF_INET6, &out6.sin6_addr, ip, sizeof(ip));
	cr_assert_str_eq(ip, "::1");
}

static void *learner(void *p)
{
	unsigned base = (unsigned)(uintptr_t)p;
	char name[32], buf[64];

	for (unsigned i = 0; i < 2000; i++) {
		struct sockaddr_in a = nth_v4(base + i);
		snprintf(name, sizeof(name), "t%u.test", (base + i) % 97);
		names_learn(name, (struct sockaddr *)&a);
		names_lookup((struct sockaddr *)&a, buf, sizeof(buf));
	}
	return 0;
}

Test(names, threads)
{
	pthread_t t[4];

	for (unsigned i = 0; i < 4; i++)
		pthread_create(&t[i], 0, learner, (void *)(uintptr_t)(i * 2000));
	for (unsigned i = 0; i < 4; i++)
		pthread_join(t[i], 0);
	cr_assert_eq(names_count(), 8000);
	for (unsigned i = 0; i < 8000; i++) {
		struct sockaddr_in a = nth_v4(i);
		char want[32], buf[64];
		snprintf(want, sizeof(want), "t%u.test", i % 97);
		cr_assert_str_eq(name_of(&a, buf, sizeof(buf)), want);
	}
}

/* Random learning, lookups and retries against a plain model: which name
 * each address has, the least recently used one going when full, and the
 * learning order names_next_addr walks. */
static void model_run(int ADDRS, int NAMES, int LIMIT, unsigned seed)
{
	int mname[512];
	unsigned long muse[512], mseq[512], t = 0, s = 0, drops = 0;
	char nm[32], buf[64];

	names_clear();
	for (int i = 0; i < ADDRS; i++)
		mname[i] = -1;
	names_set_limit((size_t)LIMIT);
	for (int op = 0; op < 50000; op++) {
		int i, k, n = 0;
		struct sockaddr_in a;

		seed = seed * 1103515245u + 12345u;
		i = (int)((seed >> 8) % ADDRS);
		k = (int)((seed >> 20) % NAMES);
		a = nth_v4((unsigned)i);
		snprintf(nm, sizeof(nm), "n%d.test", k);
		switch ((seed >> 28) % 3) {
		case 0: { /* learn */
			int want = NAMES_LEARNT;
			for (int j = 0; j < ADDRS; j++)
				n += mname[j] >= 0;
			if (mname[i] < 0 && n == LIMIT) {
				int old = -1;
				for (int j = 0; j < ADDRS; j++)
					if (mname[j] >= 0 &&
					    (old < 0 || muse[j] < muse[old]))
						old = j;
				mname[old] = -1;
				want = NAMES_EVICTED;
				drops++;
			}
			cr_assert_eq(names_learn(nm, (struct sockaddr *)&a),
				     want, "op %d", op);
			mname[i] = k;
			muse[i] = ++t;
			mseq[i] = ++s;
			break;
		}
		case 1: /* lookup */
			if (mname[i] < 0) {
				cr_assert_not(names_lookup((struct sockaddr *)&a,
							   buf, sizeof(buf)),
					      "op %d", op);
			} else {
				char want[32];
				snprintf(want, sizeof(want), "n%d.test",
					 mname[i]);
				cr_assert_str_eq(name_of(&a, buf, sizeof(buf)),
						 want, "op %d", op);
				muse[i] = ++t;
			}
			break;
		default: { /* the retry after i, for name k */
			unsigned long cseq = mname[i] >= 0 ? mseq[i] : 0;
			int after = -1, first = -1;
			struct sockaddr_in out;
			socklen_t len = sizeof(out);
			for (int j = 0; j < ADDRS; j++) {
				if (j == i || mname[j] != k)
					continue;
				if (first < 0 || mseq[j] < mseq[first])
					first = j;
				if (mseq[j] > cseq &&
				    (after < 0 || mseq[j] < mseq[after]))
					after = j;
			}
			if (after < 0)
				after = first;
			if (after < 0) {
				cr_assert_not(names_next_addr(
						      nm, (struct sockaddr *)&a,
						      (struct sockaddr *)&out,
						      &len),
					      "op %d", op);
			} else {
				struct sockaddr_in w = nth_v4((unsigned)after);
				cr_assert(names_next_addr(
						  nm, (struct sockaddr *)&a,
						  (struct sockaddr *)&out, &len),
					  "op %d", op);
				cr_assert_eq(out.sin_addr.s_addr,
					     w.sin_addr.s_addr, "op %d", op);
			}
		}
		}
	}
	cr_assert_eq(names_dropped(), drops);
	cr_assert(drops > 0);
}

Test(names, matches_a_model)
{
	model_run(48, 6, 24, 12345); /* few names, each many addresses */
	model_run(300, 200, 150, 777); /* mostly one address a name; grows */
	model_run(512, 3, 500, 99);
}
