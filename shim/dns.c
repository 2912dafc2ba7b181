/* dns.c - name resolution: which name the program resolved to which
 * address (so host rules apply to a connect() that carries only an
 * address), getaddrinfo bounded by a rule's dns_timeout (the lookup runs
 * in a helper thread that may outlive the call), and injected dns faults.
 */
#include "engine_int.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "inject.h"
#include "log.h"
#include "real.h"

/* ------------------------------------------------------------------------
 * Name resolution
 */

/* names_learn* answered r: the first time the table had to drop a name
 * (full, or out of memory), say so once. */
static void note_learnt(int r)
{
	static int warned;

	if (r <= NAMES_LEARNT ||
	    __atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
		return;
	if (r == NAMES_EVICTED)
		dl_log_warn("the table of resolved host names is full (%zu "
			    "addresses, at most %d): the least recently used "
			    "are forgotten, and host rules no longer apply to "
			    "connections to them (reported once)",
			    names_count(), NAMES_MAX_ADDRS);
	else
		dl_log_warn("out of memory for the table of resolved host "
			    "names: host rules do not apply to connections "
			    "to the addresses not learnt (reported once)");
}

void engine_learn_addrinfo(const char *name, const struct addrinfo *res)
{
	int saved = errno;

	/* A numeric lookup teaches nothing (names_learn also refuses
	 * literals): the address keeps the name it was resolved under. */
	if (name && !names_is_literal(name))
		for (const struct addrinfo *ai = res; ai; ai = ai->ai_next)
			if (ai->ai_addr && (ai->ai_family == AF_INET ||
					    ai->ai_family == AF_INET6))
				note_learnt(names_learn(name, ai->ai_addr));
	errno = saved;
}

void engine_learn_hostent(const char *name, const struct hostent *h)
{
	int saved = errno;

	if (!h || !h->h_addr_list)
		return;
	for (char **a = h->h_addr_list; *a; a++) {
		struct sockaddr_storage ss;
		memset(&ss, 0, sizeof(ss));
		if (h->h_addrtype == AF_INET && h->h_length == 4) {
			struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
			v4->sin_family = AF_INET;
			memcpy(&v4->sin_addr, *a, 4);
		} else if (h->h_addrtype == AF_INET6 && h->h_length == 16) {
			struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
			v6->sin6_family = AF_INET6;
			memcpy(&v6->sin6_addr, *a, 16);
		} else {
			continue;
		}
		/* The name asked for (an alias) wins, as with getaddrinfo;
		 * the canonical h_name only names an address still nameless. */
		note_learnt(names_learn_resolved(name, h->h_name,
					    (struct sockaddr *)&ss));
	}
	errno = saved;
}

/* A lookup that may outlive its caller: the last of the two to let go
 * frees it (and the result, if nobody took it). */
struct gai_job {
	pthread_mutex_t m;
	pthread_cond_t cv;
	int refs, done, taken, rc;
	char *node, *service;
	struct addrinfo hints, *res;
	int has_hints;
};

static void gai_unref(struct gai_job *j)
{
	int left;

	pthread_mutex_lock(&j->m);
	left = --j->refs;
	pthread_mutex_unlock(&j->m);
	if (left)
		return;
	if (j->res && !j->taken)
		freeaddrinfo(j->res);
	pthread_cond_destroy(&j->cv);
	pthread_mutex_destroy(&j->m);
	free(j->node);
	free(j->service);
	free(j);
}

static void *gai_thread(void *p)
{
	struct gai_job *j = p;
	int rc = REAL(getaddrinfo)(j->node, j->service,
				   j->has_hints ? &j->hints : 0, &j->res);

	if (rc == 0 &&
	    !(j->has_hints && (j->hints.ai_flags & AI_NUMERICHOST)))
		engine_learn_addrinfo(j->node, j->res);
	pthread_mutex_lock(&j->m);
	j->rc = rc;
	j->done = 1;
	pthread_cond_signal(&j->cv);
	pthread_mutex_unlock(&j->m);
	gai_unref(j);
	return 0;
}

static uint32_t dns_limit_ms(const char *node)
{
	const struct rules_gen *g = rules_now();
	struct conf_effective ef;
	struct conf_peer p;

	if (!E.neff || OBS_ON()) /* observing: no limit */
		return 0;
	/* The rules in force now: a reload applies from the next lookup. */
	if (!g->conf->nrules)
		return E.eff[g->base].dns_timeout_ms;
	memset(&p, 0, sizeof(p));
	p.host = node;
	conf_lookup(g->conf, &p, &ef);
	return ef.dns_timeout_ms;
}

/* An injected dns fault for node: sleeps the delay (at most the lookup's
 * own limit ms, 0 = none) and returns the answer to give, or 0 to
 * resolve.  *ms is lowered by the time spent. */
static int dns_fault(const char *node, uint32_t *ms)
{
	const struct rules_gen *g = rules_now();
	struct conf_effective ef, *e = E.neff ? &E.eff[g->base] : 0;
	uint32_t delay;
	int rc;

	if (E.neff && g->conf->nrules) {
		struct conf_peer p;
		memset(&p, 0, sizeof(p));
		p.host = node;
		conf_lookup(g->conf, &p, &ef);
		e = &ef;
	}
	rc = inject_dns(node, e, &delay);
	if (delay) {
		uint32_t d = *ms && *ms <= delay ? *ms : delay;
		struct timespec ts = { (time_t)(d / 1000),
				       (long)(d % 1000) * 1000000l };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		if (*ms && *ms <= delay) {
			const struct dl_field f[] = {
				{ "event", "dns_timeout", 0 },
				{ "host", node, 0 },
				{ "limit_ms", 0, *ms },
				{ "elapsed_ms", 0, *ms },
			};
			dl_log_fields(f, (int)(sizeof(f) / sizeof(f[0])));
			return EAI_AGAIN;
		}
		if (*ms)
			*ms -= delay;
	}
	return rc;
}

int engine_dns_fault(const char *name)
{
	uint32_t ms = 0;

	return name && inject_on ? dns_fault(name, &ms) : 0;
}

int engine_getaddrinfo(const char *node, const char *service,
		       const struct addrinfo *hints, struct addrinfo **res)
{
	uint32_t ms = node ? dns_limit_ms(node) : 0;
	struct gai_job *j;
	pthread_attr_t attr;
	pthread_condattr_t ca;
	sigset_t all, old;
	pthread_t t;
	struct timespec until;
	int64_t start, end;
	int rc, ok;

	if (node && inject_on && (rc = dns_fault(node, &ms)))
		return rc;
	if (!ms)
		return REAL(getaddrinfo)(node, service, hints, res);
	j = calloc(1, sizeof(*j));
	if (!j)
		return REAL(getaddrinfo)(node, service, hints, res);
	j->node = strdup(node);
	j->service = service ? strdup(service) : 0;
	if (!j->node || (service && !j->service)) {
		free(j->node);
		free(j->service);
		free(j);
		return REAL(getaddrinfo)(node, service, hints, res);
	}
	if (hints) {
		j->hints = *hints;
		j->hints.ai_addr = 0;
		j->hints.ai_canonname = 0;
		j->hints.ai_next = 0;
		j->has_hints = 1;
	}
	j->refs = 2;
	pthread_mutex_init(&j->m, 0);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&j->cv, &ca);
	pthread_condattr_destroy(&ca);
	/* The helper thread must never take the program's signals. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ok = pthread_create(&t, &attr, gai_thread, j) == 0;
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, 0);
	if (!ok) {
		j->refs = 1;
		gai_unref(j);
		return REAL(getaddrinfo)(node, service, hints, res);
	}
	start = clock_now();
	end = start + (int64_t)ms * 1000000ll;
	until.tv_sec = (time_t)(end / 1000000000ll);
	until.tv_nsec = (long)(end % 1000000000ll);
	pthread_mutex_lock(&j->m);
	while (!j->done &&
	       pthread_cond_timedwait(&j->cv, &j->m, &until) != ETIMEDOUT)
		;
	if (j->done) {
		rc = j->rc;
		*res = j->res;
		j->taken = 1;
	} else {
		rc = EAI_AGAIN;
	}
	pthread_mutex_unlock(&j->m);
	if (rc == EAI_AGAIN && !j->taken) {
		const struct dl_field f[] = {
			{ "event", "dns_timeout", 0 },
			{ "host", node, 0 },
			{ "limit_ms", 0, ms },
			{ "elapsed_ms", 0, (clock_now() - start) / 1000000 },
		};
		dl_log_fields(f, (int)(sizeof(f) / sizeof(f[0])));
	}
	gai_unref(j);
	return rc;
}
