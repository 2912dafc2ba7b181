/* wrap_dns.c - name resolution: learn which name maps to which address
 * (so host rules apply to a connect() that carries only an address),
 * bound getaddrinfo by a rule's dns_timeout, and inject dns faults.
 */
#include <errno.h>
#include <netdb.h>
#include <string.h>

#include "engine.h"
#include "real.h"

/* ---- getaddrinfo ------------------------------------------------------ */

static int do_getaddrinfo(const char *node, const char *service,
			  const struct addrinfo *hints, struct addrinfo **res)
{
	int r;

	if (!engine_enabled())
		return REAL(getaddrinfo)(node, service, hints, res);
	r = engine_getaddrinfo(node, service, hints, res);
	/* AI_NUMERICHOST: node is an address, which teaches nothing. */
	if (r == 0 && node && !(hints && (hints->ai_flags & AI_NUMERICHOST)))
		engine_learn_addrinfo(node, *res);
	return r;
}

DL_EXPORT int getaddrinfo(const char *node, const char *service,
			  const struct addrinfo *hints, struct addrinfo **res)
{
	return do_getaddrinfo(node, service, hints, res);
}

/* ---- gethostbyname family -------------------------------------------- */

/* An injected dns answer, as h_errno: HOST_NOT_FOUND, TRY_AGAIN, or 0 to
 * resolve (after any injected delay). */
static int hostent_fault(const char *name)
{
	int rc = engine_enabled() ? engine_dns_fault(name) : 0;

	return rc == EAI_NONAME ? HOST_NOT_FOUND
	       : rc ? TRY_AGAIN : 0;
}

static struct hostent *do_gethostbyname2(const char *name, int af, int two)
{
	int herr = hostent_fault(name);
	struct hostent *h;

	if (herr) {
		h_errno = herr;
		return 0;
	}
	h = two ? REAL(gethostbyname2)(name, af) : REAL(gethostbyname)(name);
	if (h && engine_enabled())
		engine_learn_hostent(name, h);
	return h;
}

DL_EXPORT struct hostent *gethostbyname(const char *name)
{
	return do_gethostbyname2(name, AF_INET, 0);
}

DL_EXPORT struct hostent *gethostbyname2(const char *name, int af)
{
	return do_gethostbyname2(name, af, 1);
}

static int do_gethostbyname2_r(const char *name, int af, struct hostent *ret,
			       char *buf, size_t buflen,
			       struct hostent **result, int *h_errnop, int two)
{
	int herr = hostent_fault(name), r;

	if (herr) {
		/* As glibc answers: not found is a success without a
		 * result; a temporary failure returns EAGAIN. */
		if (result)
			*result = 0;
		if (h_errnop)
			*h_errnop = herr;
		return herr == TRY_AGAIN ? EAGAIN : 0;
	}
	r = two ? REAL(gethostbyname2_r)(name, af, ret, buf, buflen, result,
					 h_errnop)
		: REAL(gethostbyname_r)(name, ret, buf, buflen, result,
					h_errnop);
	if (r == 0 && result && *result && engine_enabled())
		engine_learn_hostent(name, *result);
	return r;
}

DL_EXPORT int gethostbyname_r(const char *name, struct hostent *ret, char *buf,
			      size_t buflen, struct hostent **result,
			      int *h_errnop)
{
	return do_gethostbyname2_r(name, AF_INET, ret, buf, buflen, result,
				   h_errnop, 0);
}

DL_EXPORT int gethostbyname2_r(const char *name, int af, struct hostent *ret,
			       char *buf, size_t buflen,
			       struct hostent **result, int *h_errnop)
{
	return do_gethostbyname2_r(name, af, ret, buf, buflen, result,
				   h_errnop, 1);
}
