/* names.c - address -> name table (see names.h).
 *
 * Two hashed tables, chained through indices (1-based; 0 = none):
 *   ents  one entry per address: its name, its place in that name's list
 *         of addresses (learning order, for names_next_addr) and in the
 *         use order (least recently used first, for eviction when full);
 *   nms   one entry per distinct name (ASCII case-insensitive), holding
 *         the string and its list of addresses.  Every name has at least
 *         one address, so nms never needs more room than ents.
 * Entries are never freed one by one: a full table reuses its least
 * recently used entry.  Both arrays grow by doubling up to the limit.
 */
#include "names.h"
#include "self.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct ent {
	uint64_t seq; /* learning order */
	uint32_t name; /* index in nms */
	uint32_t hnext; /* next in the address's bucket */
	uint32_t nprev, nnext; /* the name's addresses, in learning order */
	uint32_t uprev, unext; /* use order: uprev is less recent */
	uint8_t fam;
	uint8_t addr[16];
};

struct nm {
	char *s;
	size_t len;
	uint32_t hnext; /* next in the name's bucket; free list when unused */
	uint32_t head, tail; /* its addresses, oldest learnt first */
};

static pthread_mutex_t lk = PTHREAD_MUTEX_INITIALIZER;
static struct ent *ents; /* [0] unused */
static struct nm *nms; /* [0] unused */
static uint32_t *abkt, *nbkt; /* buckets: address, name */
static uint32_t nbkts; /* a power of two */
static uint32_t cap; /* room in ents and nms (besides [0]) */
static uint32_t nents; /* ents[1..nents] are in use */
static uint32_t nms_hi, nms_free; /* nms[1..nms_hi] handed out; free list */
static uint32_t lru_old, lru_new;
static uint64_t next_seq;
static size_t limit = NAMES_MAX_ADDRS;
static unsigned long ndropped;

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

static uint32_t addr_hash(int fam, const uint8_t addr[16])
{
	uint32_t h = 2166136261u ^ (uint32_t)fam;

	for (int i = 0; i < 16; i++)
		h = (h ^ addr[i]) * 16777619u;
	return h ^ (h >> 15);
}

static unsigned char lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c | 0x20) : c;
}

static uint32_t name_hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ lower((unsigned char)s[i])) * 16777619u;
	return h ^ (h >> 15);
}

static int name_eq(const struct nm *m, const char *s, size_t n)
{
	if (m->len != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (lower((unsigned char)m->s[i]) != lower((unsigned char)s[i]))
			return 0;
	return 1;
}

/* ---- lookups (lk held) --------------------------------------------- */

static uint32_t find_ent(int fam, const uint8_t addr[16])
{
	if (!nbkts)
		return 0;
	for (uint32_t e = abkt[addr_hash(fam, addr) & (nbkts - 1)]; e;
	     e = ents[e].hnext)
		if (ents[e].fam == fam && memcmp(ents[e].addr, addr, 16) == 0)
			return e;
	return 0;
}

static uint32_t find_name(const char *s, size_t n)
{
	if (!nbkts)
		return 0;
	for (uint32_t m = nbkt[name_hash(s, n) & (nbkts - 1)]; m;
	     m = nms[m].hnext)
		if (name_eq(&nms[m], s, n))
			return m;
	return 0;
}

/* ---- the use order ------------------------------------------------- */

static void use_unlink(uint32_t e)
{
	struct ent *x = &ents[e];

	if (x->uprev)
		ents[x->uprev].unext = x->unext;
	else
		lru_old = x->unext;
	if (x->unext)
		ents[x->unext].uprev = x->uprev;
	else
		lru_new = x->uprev;
	x->uprev = x->unext = 0;
}

static void use_append(uint32_t e)
{
	ents[e].uprev = lru_new;
	ents[e].unext = 0;
	if (lru_new)
		ents[lru_new].unext = e;
	else
		lru_old = e;
	lru_new = e;
}

static void touch(uint32_t e)
{
	if (lru_new != e) {
		use_unlink(e);
		use_append(e);
	}
}

/* ---- a name's addresses -------------------------------------------- */

/* Take e off its name's list; the name goes when it has none left. */
static void name_unlink(uint32_t e)
{
	struct ent *x = &ents[e];
	uint32_t m = x->name;
	struct nm *n = &nms[m];

	if (x->nprev)
		ents[x->nprev].nnext = x->nnext;
	else
		n->head = x->nnext;
	if (x->nnext)
		ents[x->nnext].nprev = x->nprev;
	else
		n->tail = x->nprev;
	x->nprev = x->nnext = 0;
	x->name = 0;
	if (!n->head) {
		uint32_t *p = &nbkt[name_hash(n->s, n->len) & (nbkts - 1)];
		while (*p != m)
			p = &nms[*p].hnext;
		*p = n->hnext;
		free(n->s);
		memset(n, 0, sizeof(*n));
		n->hnext = nms_free;
		nms_free = m;
	}
}

/* Put e at the end of name m's list: learnt most recently. */
static void name_append(uint32_t e, uint32_t m)
{
	struct nm *n = &nms[m];

	ents[e].name = m;
	ents[e].nprev = n->tail;
	ents[e].nnext = 0;
	if (n->tail)
		ents[n->tail].nnext = e;
	else
		n->head = e;
	n->tail = e;
	ents[e].seq = ++next_seq;
}

/* A new name entry owning the string s (n bytes); there is always room:
 * names never outnumber addresses. */
static uint32_t name_add(char *s, size_t n)
{
	uint32_t m, b = name_hash(s, n) & (nbkts - 1);

	if (nms_free) {
		m = nms_free;
		nms_free = nms[m].hnext;
	} else {
		m = ++nms_hi;
	}
	nms[m].s = s;
	nms[m].len = n;
	nms[m].head = nms[m].tail = 0;
	nms[m].hnext = nbkt[b];
	nbkt[b] = m;
	return m;
}

/* Take e out of the address buckets, its name's list and the use order:
 * it is about to hold another address. */
static void ent_forget(uint32_t e)
{
	uint32_t *p = &abkt[addr_hash(ents[e].fam, ents[e].addr) & (nbkts - 1)];

	while (*p != e)
		p = &ents[*p].hnext;
	*p = ents[e].hnext;
	name_unlink(e);
	use_unlink(e);
}

/* Room for twice as many addresses, at most `limit`.  Returns 1 if the
 * table grew; 0 leaves it as it was (at the limit, or out of memory). */
static int grow(void)
{
	uint32_t ncap = cap ? cap * 2 : 64, nb = 1;
	uint32_t *na, *nn;
	void *p;

	if (ncap > limit)
		ncap = (uint32_t)limit;
	if (ncap <= cap)
		return 0;
	while (nb < ncap)
		nb <<= 1;
	p = realloc(ents, (ncap + 1) * sizeof(*ents));
	if (!p)
		return 0;
	ents = p;
	p = realloc(nms, (ncap + 1) * sizeof(*nms));
	if (!p)
		return 0;
	nms = p;
	na = calloc(nb, sizeof(*na));
	nn = calloc(nb, sizeof(*nn));
	if (!na || !nn) {
		free(na);
		free(nn);
		return 0;
	}
	memset(&ents[cap ? cap + 1 : 0], 0,
	       (ncap - cap + !cap) * sizeof(*ents));
	memset(&nms[cap ? cap + 1 : 0], 0, (ncap - cap + !cap) * sizeof(*nms));
	for (uint32_t e = 1; e <= nents; e++) {
		uint32_t b = addr_hash(ents[e].fam, ents[e].addr) & (nb - 1);
		ents[e].hnext = na[b];
		na[b] = e;
	}
	for (uint32_t m = 1; m <= nms_hi; m++) {
		uint32_t b;
		if (!nms[m].s)
			continue;
		b = name_hash(nms[m].s, nms[m].len) & (nb - 1);
		nms[m].hnext = nn[b];
		nn[b] = m;
	}
	/* (Free name entries keep their free-list links in hnext.) */
	free(abkt);
	free(nbkt);
	abkt = na;
	nbkt = nn;
	nbkts = nb;
	cap = ncap;
	return 1;
}

/* ---- learning ------------------------------------------------------ */

int names_is_literal(const char *name)
{
	unsigned char a[16];
	char buf[64];
	const char *pct;
	size_t n;
	struct in_addr in;

	if (!name || !*name)
		return 0;
	if (inet_pton(AF_INET, name, a) == 1)
		return 1;
	/* IPv6, with or without a zone: fe80::1%lo, fe80::1%2 */
	pct = strchr(name, '%');
	n = pct ? (size_t)(pct - name) : strlen(name);
	if (n < sizeof(buf) && memchr(name, ':', n)) {
		memcpy(buf, name, n);
		buf[n] = 0;
		if (inet_pton(AF_INET6, buf, a) == 1)
			return 1;
	}
	/* What else getaddrinfo reads as IPv4 (inet_aton, whole string):
	 * 127.1, 0x7f.1, 2130706433. */
	return name[strspn(name, "0123456789abcdefABCDEFxX.")] == 0 &&
	       inet_aton(name, &in) != 0;
}

/* Learn name (n bytes) for the address; weak: only if it has no name. */
static int learn_locked(const char *name, size_t n, int fam,
			const uint8_t addr[16], int weak)
{
	uint32_t e = find_ent(fam, addr), m;
	char *s = 0;
	int r = NAMES_LEARNT;

	if (e) {
		if (weak)
			return NAMES_IGNORED;
		touch(e);
		m = ents[e].name;
		if (name_eq(&nms[m], name, n)) {
			/* Same name (the newest spelling); last learnt. */
			memcpy(nms[m].s, name, n);
			if (nms[m].tail != e) {
				name_unlink(e); /* m keeps another address */
				name_append(e, m);
			} else {
				ents[e].seq = ++next_seq;
			}
			return NAMES_LEARNT;
		}
		m = find_name(name, n);
		if (!m) {
			s = malloc(n + 1);
			if (!s) {
				ndropped++;
				return NAMES_DROPPED; /* keeps its old name */
			}
			memcpy(s, name, n);
			s[n] = 0;
		}
		name_unlink(e);
		if (!m)
			m = name_add(s, n);
		name_append(e, m);
		return NAMES_LEARNT;
	}
	/* A new address.  Copy the name first: making room may free the
	 * entry of the same name (when it was that name's last address). */
	s = malloc(n + 1);
	if (!s) {
		ndropped++;
		return NAMES_DROPPED;
	}
	memcpy(s, name, n);
	s[n] = 0;
	if (nents < limit && (nents < cap || grow())) {
		e = ++nents;
	} else if (lru_old) {
		/* Full (or out of memory): forget the least recently used. */
		e = lru_old;
		ent_forget(e);
		ndropped++;
		r = NAMES_EVICTED;
	} else {
		free(s);
		ndropped++;
		return NAMES_DROPPED;
	}
	m = find_name(name, n);
	if (m)
		free(s);
	else
		m = name_add(s, n);
	ents[e].fam = (uint8_t)fam;
	memcpy(ents[e].addr, addr, 16);
	{
		uint32_t b = addr_hash(fam, addr) & (nbkts - 1);
		ents[e].hnext = abkt[b];
		abkt[b] = e;
	}
	name_append(e, m);
	use_append(e);
	return r;
}

static int learn(const char *name, const struct sockaddr *sa, int weak)
{
	uint8_t addr[16];
	int fam = key_of(sa, addr, 0), r;
	size_t n;

	if (!fam || !name || !*name || names_is_literal(name))
		return NAMES_IGNORED;
	n = strnlen(name, NAMES_NAME_MAX);
	self_lock(&lk);
	r = learn_locked(name, n, fam, addr, weak);
	self_unlock(&lk);
	return r;
}

int names_learn(const char *name, const struct sockaddr *sa)
{
	return learn(name, sa, 0);
}

int names_learn_resolved(const char *asked, const char *canon,
			 const struct sockaddr *sa)
{
	int r = learn(asked, sa, 0), r2;

	if (!canon || (asked && strcmp(canon, asked) == 0))
		return r;
	r2 = learn(canon, sa, 1);
	return r2 > r ? r2 : r;
}

/* ---- questions ----------------------------------------------------- */

int names_lookup(const struct sockaddr *sa, char *buf, size_t len)
{
	uint8_t addr[16];
	int fam = key_of(sa, addr, 0), found = 0;
	uint32_t e;

	if (!fam || !len)
		return 0;
	self_lock(&lk);
	e = find_ent(fam, addr);
	if (e) {
		const struct nm *m = &nms[ents[e].name];
		size_t n = m->len < len - 1 ? m->len : len - 1;
		memcpy(buf, m->s, n);
		buf[n] = 0;
		touch(e);
		found = 1;
	}
	self_unlock(&lk);
	return found;
}

static socklen_t make_addr(int fam, const uint8_t addr[16], uint16_t port,
			   struct sockaddr *out, socklen_t cap_)
{
	if (fam == AF_INET && cap_ >= sizeof(struct sockaddr_in)) {
		struct sockaddr_in a;
		memset(&a, 0, sizeof(a));
		a.sin_family = AF_INET;
		a.sin_port = port;
		memcpy(&a.sin_addr, addr, 4);
		memcpy(out, &a, sizeof(a));
		return sizeof(a);
	}
	if (fam == AF_INET6 && cap_ >= sizeof(struct sockaddr_in6)) {
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
	uint64_t cseq = 0;
	uint32_t e, m, after = 0, first = 0;
	socklen_t n = 0;

	if (!name || !cfam)
		return 0;
	self_lock(&lk);
	e = find_ent(cfam, caddr);
	if (e)
		cseq = ents[e].seq;
	m = find_name(name, strnlen(name, NAMES_NAME_MAX));
	/* The next one learnt after cur, else the first one (wrap round);
	 * the list is in learning order. */
	for (e = m ? nms[m].head : 0; e; e = ents[e].nnext) {
		const struct ent *s = &ents[e];
		if (s->fam == cfam && memcmp(s->addr, caddr, 16) == 0)
			continue;
		/* A socket of one family cannot connect to the other. */
		if (s->fam != cfam && cur->sa_family != AF_INET6)
			continue;
		if (!first)
			first = e;
		if (s->seq > cseq) {
			after = e;
			break;
		}
	}
	if (!after)
		after = first;
	if (after) {
		uint8_t a[16];
		int fam = ents[after].fam;
		memcpy(a, ents[after].addr, 16);
		if (cur->sa_family == AF_INET6 && fam == AF_INET) {
			/* v6 socket: reach the v4 peer v4-mapped */
			memmove(a + 12, a, 4);
			memset(a, 0, 10);
			a[10] = a[11] = 0xff;
			fam = AF_INET6;
		}
		n = make_addr(fam, a, port, out, *outlen);
	}
	self_unlock(&lk);
	if (!n)
		return 0;
	*outlen = n;
	return 1;
}

size_t names_count(void)
{
	size_t n;

	self_lock(&lk);
	n = nents;
	self_unlock(&lk);
	return n;
}

unsigned long names_dropped(void)
{
	unsigned long n;

	self_lock(&lk);
	n = ndropped;
	self_unlock(&lk);
	return n;
}

void names_set_limit(size_t max)
{
	self_lock(&lk);
	limit = max && max < NAMES_MAX_ADDRS ? max : NAMES_MAX_ADDRS;
	self_unlock(&lk);
}

void names_clear(void)
{
	self_lock(&lk);
	for (uint32_t m = 1; m <= nms_hi; m++)
		free(nms[m].s);
	free(ents);
	free(nms);
	free(abkt);
	free(nbkt);
	ents = 0;
	nms = 0;
	abkt = nbkt = 0;
	nbkts = cap = nents = nms_hi = nms_free = 0;
	lru_old = lru_new = 0;
	next_seq = 0;
	limit = NAMES_MAX_ADDRS;
	ndropped = 0;
	self_unlock(&lk);
}

void names_fork_prepare(void)
{
	pthread_mutex_lock(&lk);
}

void names_fork_release(void)
{
	pthread_mutex_unlock(&lk);
}
