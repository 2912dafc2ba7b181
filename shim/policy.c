/* policy.c - durations, phase names, process-wide limits from the env. */
#include "policy.h"

#include <stdio.h>
#include <string.h>

static const char *const phase_names[DL_PH_COUNT] = {
	"connect", "first_byte", "idle", "request",
};

static const char *const phase_envs[DL_PH_COUNT] = {
	"DEADLINE_CONNECT_TIMEOUT",
	"DEADLINE_FIRST_BYTE_TIMEOUT",
	"DEADLINE_IDLE_TIMEOUT",
	"DEADLINE_REQUEST_TIMEOUT",
};

const char *policy_phase_name(enum dl_phase ph)
{
	return (unsigned)ph < DL_PH_COUNT ? phase_names[ph] : "?";
}

const char *policy_phase_env(enum dl_phase ph)
{
	return (unsigned)ph < DL_PH_COUNT ? phase_envs[ph] : "?";
}

int policy_limits_any(const struct dl_limits *l)
{
	for (int i = 0; i < DL_PH_COUNT; i++)
		if (l->ms[i])
			return 1;
	return 0;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Nanoseconds per unit; NULL-terminated by an empty name. */
static const struct {
	const char *name;
	uint64_t ns;
} units[] = {
	{ "ns", 1ull },
	{ "us", 1000ull },
	{ "\xc2\xb5s", 1000ull }, /* U+00B5 micro sign, as Go accepts */
	{ "ms", 1000000ull },
	{ "s", 1000000000ull },
	{ "m", 60ull * 1000000000ull },
	{ "h", 3600ull * 1000000000ull },
	{ "", 0 },
};

/* Longest unit name that prefixes p ("ms" before "m"); 0 if none. */
static uint64_t match_unit(const char *p, size_t *len)
{
	uint64_t best = 0;
	size_t best_len = 0;

	for (int i = 0; units[i].ns; i++) {
		size_t n = strlen(units[i].name);
		if (n > best_len && strncmp(p, units[i].name, n) == 0) {
			best = units[i].ns;
			best_len = n;
		}
	}
	*len = best_len;
	return best;
}

/* Parses "123" or "1.25" at *pp into an integer part and a fraction
 * expressed in units of 1e-9 (so "1.25" -> int 1, frac 250000000).
 * Returns -1 when no digits are present or the integer part overflows. */
static int parse_number(const char **pp, uint64_t *ip, uint64_t *frac_e9)
{
	const char *p = *pp;
	uint64_t v = 0, f = 0, scale = 100000000ull;
	int digits = 0;

	while (is_digit(*p)) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
		p++;
		digits++;
	}
	if (*p == '.') {
		p++;
		while (is_digit(*p)) {
			f += (uint64_t)(*p - '0') * scale;
			scale /= 10;
			p++;
			digits++;
		}
	}
	if (!digits)
		return -1;
	*pp = p;
	*ip = v;
	*frac_e9 = f;
	return 0;
}

int policy_parse_duration(const char *s, uint32_t *ms)
{
	const uint64_t max_ns = (uint64_t)DL_DURATION_MAX_MS * 1000000ull;
	uint64_t total_ns = 0;
	const char *p;
	int terms = 0;

	if (!s)
		return -1;
	p = s;
	while (is_space(*p))
		p++;

	for (;;) {
		uint64_t ip, frac, unit, term;
		size_t ulen;

		if (parse_number(&p, &ip, &frac) < 0)
			return -1;
		unit = match_unit(p, &ulen);
		if (!unit) {
			/* A bare number is milliseconds, but only on its own. */
			if (terms)
				return -1;
			unit = 1000000ull;
		}
		p += ulen;
		if (ip > max_ns / unit)
			return -1;
		term = ip * unit;
		/* frac is in 1e-9 of a unit: scale without overflowing. */
		term += (unit >= 1000000000ull) ? frac * (unit / 1000000000ull)
						: (frac * unit + 999999999ull) / 1000000000ull;
		total_ns += term;
		if (total_ns > max_ns)
			return -1;
		terms++;
		if (!ulen)
			break;
		if (!is_digit(*p) && *p != '.')
			break;
	}
	while (is_space(*p))
		p++;
	if (*p)
		return -1;
	*ms = (uint32_t)((total_ns + 999999ull) / 1000000ull);
	return 0;
}

int policy_limits_from_env(struct dl_limits *l,
			   const char *(*getenv_fn)(const char *name),
			   policy_warn_fn warn)
{
	int bad = 0;

	memset(l, 0, sizeof(*l));
	for (int i = 0; i < DL_PH_COUNT; i++) {
		const char *v = getenv_fn(phase_envs[i]);
		uint32_t ms;

		if (!v || !*v)
			continue;
		if (policy_parse_duration(v, &ms) == 0) {
			l->ms[i] = ms;
			continue;
		}
		bad++;
		if (warn) {
			char msg[256];
			snprintf(msg, sizeof(msg),
				 "%s=\"%.64s\" is not a duration (try 250ms, 2s, "
				 "1m30s, 1.5s or a number of milliseconds); "
				 "that deadline is off",
				 phase_envs[i], v);
			warn(msg);
		}
	}
	return bad;
}
