/* names.c - address -> name table (see names.h). */
#include "names.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

struct slot {
	uint8_t family; /* 0 = empty */
	uint8_t addr[16];
	uint32_t seq; /* learning order, for names_next_addr */
	char name[NAMES_NAME_MAX + 1];
};

static struct slot slots[NAMES_SLOTS];
static uint32_t next_seq = 1;
static pthread_mutex_t lk = PTHREAD_MUTEX_INITIALIZER;

/* Address bytes with v4-mapped IPv6 folded to IPv4.  Returns the family
 * (AF_INET/AF_INET6) or 0 for anything else. */
static int key_of(const struct sockaddr *sa, uint8_t addr[16], uint16_t *port)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0,
					    0, 0, 0, 0, 0xff, 0xff };

	memset(addr, 0, 16);
	if (!sa)
		return 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
		memcpy(addr, &a->sin_addr, 4);
		if (port)
			*port = a->sin_port;
		return AF_INET;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
		if (port)
			*port = a->sin6_port;
		if (memcmp(a->sin6_addr.s6_addr, mapped, 12) == 0) {
			memcpy(addr, a->sin6_addr.s6_addr + 12, 4);
			return AF_INET;
		}
		memcpy(addr, a->sin6_addr.s6_addr, 16);
		return AF_INET6;
	}
	return 0;
}

static size_t hash_of(int family, const uint8_t addr[16])
{
	uint32_t h = 2166136261u ^ (uint32_t)family;

	for (int i = 0; i < 16; i++)
		h = (h ^ addr[i]) * 16777619u;
	return h % NAMES_SLOTS;
}

void names_learn(const char *name, const struct sockaddr *sa)
{
	uint8_t addr[16];
	int fam = key_of(sa, addr, 0);
	struct slot *s;

	if (!fam || !name || !*name)
		return;
	pthread_mutex_lock(&lk);
	s = &slots[hash_of(fam, addr)];
	s->family = (uint8_t)fam;
	memcpy(s->addr, addr, 16);
	s->seq = next_seq++;
	strncpy(s->name, name, NAMES_NAME_MAX);
	s->name[NAMES_NAME_MAX] = 0;
	pthread_mutex_unlock(&lk);
}

int names_lookup(const struct sockaddr *sa, char *buf, size_t len)
{
	uint8_t addr[16];
	int fam = key_of(sa, addr, 0), found = 0;
	struct slot *s;

	if (!fam || !len)
		return 0;
	pthread_mutex_lock(&lk);
	s = &slots[hash_of(fam, addr)];
	if (s->family == fam && memcmp(s->addr, addr, 16) == 0) {
		strncpy(buf, s->name, len - 1);
		buf[len - 1] = 0;
		found = 1;
	}
	pthread_mutex_unlock(&lk);
	return found;
}

static socklen_t make_addr(int fam, const uint8_t addr[16], uint16_t port,
			   struct sockaddr *out, socklen_t cap)
{
	if (fam == AF_INET && cap >= sizeof(struct sockaddr_in)) {
		struct sockaddr_in a;
		memset(&a, 0, sizeof(a));
		a.sin_family = AF_INET;
		a.sin_port = port;
		memcpy(&a.sin_addr, addr, 4);
		memcpy(out, &a, sizeof(a));
		return sizeof(a);
	}
	if (fam == AF_INET6 && cap >= sizeof(struct sockaddr_in6)) {
		struct sockaddr_in6 a;
		memset(&a, 0, sizeof(a));
		a.sin6_family = AF_INET6;
		a.sin6_port = port;
		memcpy(&a.sin6_addr, addr, 16);
		memcpy(out, &a, sizeof(a));
		return sizeof(a);
	}
	return 0;
}

int names_next_addr(const char *name, const struct sockaddr *cur,
		    struct sockaddr *out, socklen_t *outlen)
{
	uint8_t caddr[16];
	uint16_t port = 0;
	int cfam = key_of(cur, caddr, &port);
	uint32_t cseq = 0;
	const struct slot *after = 0, *first = 0;
	socklen_t n = 0;

	if (!name || !cfam)
		return 0;
	pthread_mutex_lock(&lk);
	for (size_t i = 0; i < NAMES_SLOTS; i++) {
		const struct slot *s = &slots[i];
		if (s->family == cfam && memcmp(s->addr, caddr, 16) == 0)
			cseq = s->seq;
	}
	/* The next one learnt after cur, else the first one (wrap round). */
	for (size_t i = 0; i < NAMES_SLOTS; i++) {
		const struct slot *s = &slots[i];
		if (!s->family || strcasecmp(s->name, name) != 0)
			continue;
		if (s->family == cfam && memcmp(s->addr, caddr, 16) == 0)
			continue;
		/* A socket of one family cannot connect to the other. */
		if (s->family != cfam && cur->sa_family != AF_INET6)
			continue;
		if (s->seq > cseq && (!after || s->seq < after->seq))
			after = s;
		if (!first || s->seq < first->seq)
			first = s;
	}
	if (!after)
		after = first;
	if (after) {
		uint8_t a[16];
		int fam = after->family;
		memcpy(a, after->addr, 16);
		if (cur->sa_family == AF_INET6 && fam == AF_INET) {
			/* v6 socket: reach the v4 peer v4-mapped */
			memmove(a + 12, a, 4);
			memset(a, 0, 10);
			a[10] = a[11] = 0xff;
			fam = AF_INET6;
		}
		n = make_addr(fam, a, port, out, *outlen);
	}
	pthread_mutex_unlock(&lk);
	if (!n)
		return 0;
	*outlen = n;
	return 1;
}

void names_clear(void)
{
	pthread_mutex_lock(&lk);
	memset(slots, 0, sizeof(slots));
	next_seq = 1;
	pthread_mutex_unlock(&lk);
}
