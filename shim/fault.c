/* fault.c - fault injection decisions (see fault.h). */
#include "fault.h"


#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[FK_COUNT] = {
	[FK_LATENCY] = "latency",	[FK_BANDWIDTH] = "bandwidth",
	[FK_REFUSE] = "refuse",		[FK_UNREACHABLE] = "unreachable",
	[FK_BLACKHOLE] = "blackhole",	[FK_RESET] = "reset",
	[FK_EOF] = "eof",		[FK_ERROR] = "error",
	[FK_SLICE] = "slice",		[FK_SLOW_CLOSE] = "slow_close",
	[FK_DNS] = "dns",
};

const char *fault_kind_name(enum fault_kind k)
{
	return (unsigned)k < FK_COUNT ? kind_names[k] : "?";
}

int fault_kind_parse(const char *key)
{
	for (int k = 0; key && k < FK_COUNT; k++)
		if (strcmp(key, kind_names[k]) == 0)
			return k;
	return -1;
}

enum fault_dir fault_dir_of(const struct fault_spec *s, enum fault_kind k)
{
	if (s->dir)
		return (enum fault_dir)s->dir;
	return (k == FK_ERROR || k == FK_SLICE) ? FDIR_BOTH : FDIR_DOWN;
}

/* Whole seconds when that is exact, else milliseconds. */
static unsigned ms_or_s(uint32_t ms)
{
	return ms % 1000 ? ms : ms / 1000;
}

void fault_describe_trigger(struct fault_spec *s)
{
	char *b = s->trigger;
	size_t n = sizeof(s->trigger), o = 0;

#define PUT(...)                                                            \
	do {                                                                 \
		if (o < n) {                                                 \
			int k_ = snprintf(b + o, n - o, __VA_ARGS__);        \
			o = k_ < 0 ? n : o + (size_t)k_;                     \
		}                                                            \
	} while (0)
	b[0] = 0;
	if (s->probability < 1.0)
		PUT("%sprobability=%g", o ? " " : "", s->probability);
	if (s->nth > 1)
		PUT("%snth=%u", o ? " " : "", s->nth);
	if (s->after_bytes)
		PUT("%safter_bytes=%llu", o ? " " : "",
		    (unsigned long long)s->after_bytes);
	if (s->after_ms)
		PUT("%safter=%u%s", o ? " " : "", ms_or_s(s->after_ms),
		    s->after_ms % 1000 ? "ms" : "s");
	if (s->for_ms)
		PUT("%sfor=%u%s", o ? " " : "", ms_or_s(s->for_ms),
		    s->for_ms % 1000 ? "ms" : "s");
	if (s->times)
		PUT("%stimes=%u", o ? " " : "", s->times);
	if (!o)
		PUT("always");
#undef PUT
}

uint64_t fault_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; s && *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

/* ------------------------------------------------------------ group keys */

/* The three ranges of fault.h, disjoint over the whole index domain. */
_Static_assert(FAULT_KEY_SPEC_BASE > 0 &&
		       FAULT_KEY_SPEC_BASE + FAULT_KEY_INDEX_MAX <
			       FAULT_KEY_FILE_HIGH + FAULT_KEY_SPEC_BASE,
	       "spec keys overlap the keys of file rules >= 1000");
_Static_assert((uint64_t)FAULT_KEY_FILE_HIGH + FAULT_KEY_INDEX_MAX <
		       FAULT_KEY_INVALID,
	       "file rule keys reach FAULT_KEY_INVALID");

uint32_t fault_group_key(enum fault_source src, unsigned index)
{
	if (index > FAULT_KEY_INDEX_MAX)
		return FAULT_KEY_INVALID;
	if (src == FSRC_SPEC)
		return FAULT_KEY_SPEC_BASE + index;
	if (src != FSRC_FILE)
		return FAULT_KEY_INVALID;
	/* Below the spec range a file rule keeps its index as its key, as
	 * it always had: same seed, same decisions. */
	return index < FAULT_KEY_SPEC_BASE ? index : FAULT_KEY_FILE_HIGH + index;
}

struct keyat {
	uint32_t key;
	size_t at;
};

static int keyat_cmp(const void *a, const void *b)
{
	const struct keyat *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->at < y->at ? -1 : x->at > y->at;
}

int fault_keys_distinct(const uint32_t *keys, size_t n, size_t *a,
			size_t *b)
{
	struct keyat *v;
	int ok = 1;

	for (size_t i = 0; i < n; i++)
		if (keys[i] == FAULT_KEY_INVALID) {
			if (a)
				*a = i;
			if (b)
				*b = i;
			return 0;
		}
	if (n < 2)
		return 1;
	v = malloc(n * sizeof(*v));
	if (!v)
		return -1;
	for (size_t i = 0; i < n; i++)
		v[i] = (struct keyat){ keys[i], i };
	qsort(v, n, sizeof(*v), keyat_cmp);
	for (size_t i = 1; i < n && ok; i++)
		if (v[i].key == v[i - 1].key) {
			if (a)
				*a = v[i - 1].at;
			if (b)
				*b = v[i].at;
			ok = 0;
		}
	free(v);
	return ok;
}

/* splitmix64's finaliser: a bijection that spreads every input bit. */
static uint64_t mix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t fault_roll(const struct fault_ctx *x, unsigned group, unsigned salt)
{
	uint64_t h = mix(x->seed);

	h = mix(h ^ x->rule);
	h = mix(h ^ x->host);
	h = mix(h ^ x->conn);
	h = mix(h ^ x->op);
	h = mix(h ^ ((uint64_t)group << 32 | salt));
	return h;
}

double fault_unit(const struct fault_ctx *x, unsigned group, unsigned salt)
{
	return (double)(fault_roll(x, group, salt) >> 11) * 0x1.0p-53;
}

int fault_window_open(const struct fault_spec *s, const struct fault_ctx *x)
{
	if (s->nth > 1 && (x->conn == 0 || x->conn % s->nth != 0))
		return 0;
	if (x->bytes < s->after_bytes)
		return 0;
	if (x->elapsed_ms < s->after_ms)
		return 0;
	if (s->for_ms && x->elapsed_ms >= (uint64_t)s->after_ms + s->for_ms)
		return 0;
	return 1;
}

int fault_fires(const struct fault_spec *s, enum fault_kind k,
		const struct fault_ctx *x)
{
	if (!(s->kinds & FK_BIT(k)) || !fault_window_open(s, x))
		return 0;
	if (s->probability >= 1.0)
		return 1;
	if (s->probability <= 0.0)
		return 0;
	return fault_unit(x, s->group, (unsigned)k) < s->probability;
}

int fault_claim(struct fault_spec *s)
{
	uint32_t old;

	if (!s->times)
		return 1;
	old = __atomic_load_n(&s->fired, __ATOMIC_RELAXED);
	do {
		if (old >= s->times)
			return 0;
	} while (!__atomic_compare_exchange_n(&s->fired, &old, old + 1, 1,
					      __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED));
	return 1;
}

uint32_t fault_jittered_ms(const struct fault_spec *s,
			   const struct fault_ctx *x)
{
	int64_t v = s->latency_ms;

	if (s->jitter_ms) {
		uint64_t span = 2ull * s->jitter_ms + 1;
		v += (int64_t)(fault_roll(x, s->group, 100 + FK_LATENCY) %
			       span) - (int64_t)s->jitter_ms;
	}
	return v < 0 ? 0 : (uint32_t)v;
}

size_t fault_bw_chunk(uint64_t rate)
{
	uint64_t c = rate / 50;

	if (c < 1)
		c = 1;
	if (c > (1u << 20))
		c = 1u << 20;
	return (size_t)c;
}

int64_t fault_bw_advance(int64_t next, int64_t now, uint64_t rate, size_t n)
{
	/* A call that comes a little late (by less than one chunk's time:
	 * the program was busy, or the machine did not run it at once)
	 * keeps the schedule, so the next ones catch up and the rate holds
	 * on a busy machine.  A connection idle for longer does not bank
	 * credit: the clock restarts from now.  Either way a burst is at
	 * most two chunks. */
	int64_t base, grace;

	if (!rate)
		return next > now ? next : now;
	grace = (int64_t)((double)fault_bw_chunk(rate) * 1e9 / (double)rate);
	base = next && next >= now - grace ? next : now;
	return base + (int64_t)((double)n * 1e9 / (double)rate);
}

int fault_parse_rate(const char *s, uint64_t *rate)
{
	char *end;
	double v, mul = 1;

	if (!s)
		return -1;
	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s) && *s != '.')
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v <= 0)
		return -1;
	s = end;
	while (isspace((unsigned char)*s))
		s++;
	if (*s == 'K' || *s == 'k')
		mul = 1e3, s++;
	else if (*s == 'M')
		mul = 1e6, s++;
	else if (*s == 'G')
		mul = 1e9, s++;
	if (mul > 1 && *s == 'i')
		mul = mul == 1e3 ? 1024.0 : mul == 1e6 ? 1048576.0
						       : 1073741824.0,
		s++;
	if (strncmp(s, "bit", 3) == 0)
		mul /= 8, s += 3;
	else if (*s == 'B')
		s++;
	if (strcmp(s, "/s") == 0)
		s += 2;
	while (isspace((unsigned char)*s))
		s++;
	if (*s)
		return -1;
	v *= mul;
	if (v < 1 || v > 1e15)
		return -1;
	*rate = (uint64_t)v;
	return 0;
}

/* ---------------------------------------------- `deadline --fault` text */

struct sbuf {
	char *p;
	size_t n, cap;
	int oom;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t cap = (b->cap ? b->cap * 2 : 256) + n;
		char *q = realloc(b->p, cap);
		if (!q) {
			b->oom = 1;
			return;
		}
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = 0;
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

/* A value as libconfig text: numbers and booleans bare, the rest quoted
 * (control bytes and quotes escaped, so a spec stays on its line). */
static void sb_value(struct sbuf *b, const char *v, size_t n)
{
	char tmp[64], *end;
	int numeric = 0;

	if (n && n < sizeof(tmp)) {
		memcpy(tmp, v, n);
		tmp[n] = 0;
		if (strcmp(tmp, "true") == 0 || strcmp(tmp, "false") == 0) {
			sb_str(b, tmp);
			return;
		}
		if (isdigit((unsigned char)tmp[0]) ||
		    (tmp[0] == '.' && isdigit((unsigned char)tmp[1]))) {
			strtod(tmp, &end);
			numeric = *end == 0;
		}
	}
	if (numeric) {
		/* libconfig reads "0.5" as a float and "7" as an integer. */
		sb_put(b, v, n);
		return;
	}
	sb_put(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];
		if (ch == '"' || ch == '\\') {
			char e[2] = { '\\', (char)ch };
			sb_put(b, e, 2);
		} else if (ch < 0x20 || ch == 0x7f) {
			char e[5];
			snprintf(e, sizeof(e), "\\x%02x", ch);
			sb_put(b, e, 4);
		} else {
			sb_put(b, (const char *)&ch, 1);
		}
	}
	sb_put(b, "\"", 1);
}

static int is_rule_key(const char *k, size_t kn, const char *v, size_t vn)
{
	static const char *const rk[] = { "host", "cidr", "port", "name", 0 };

	for (int i = 0; rk[i]; i++)
		if (strlen(rk[i]) == kn && memcmp(rk[i], k, kn) == 0)
			return 1;
	/* `direction` is the rule's when it says which way connections go,
	 * the fault's when it says which way data goes. */
	if (kn == 9 && memcmp(k, "direction", 9) == 0)
		return (vn == 7 && memcmp(v, "inbound", 7) == 0) ||
		       (vn == 8 && memcmp(v, "outbound", 8) == 0);
	return 0;
}

/* Appends the `key = value;` pairs of one spec that go to the rule
 * (rule = 1) or to its faults group (rule = 0). */
static void emit_pairs(struct sbuf *b, const char *s, const char *e, int rule)
{
	while (s < e) {
		const char *k, *v, *ke, *ve;

		while (s < e && isspace((unsigned char)*s))
			s++;
		if (s >= e)
			break;
		k = s;
		while (s < e && !isspace((unsigned char)*s) && *s != '=')
			s++;
		ke = s;
		if (s < e && *s == '=') {
			v = ++s;
			while (s < e && !isspace((unsigned char)*s))
				s++;
			ve = s;
		} else {
			v = "true";
			ve = v + 4;
		}
		if (is_rule_key(k, (size_t)(ke - k), v, (size_t)(ve - v)) !=
		    rule)
			continue;
		if (ke - k == 1 && *k == 'p')
			sb_str(b, "probability");
		else if (ke == k)
			sb_str(b, "_");	/* "=x": reported as an unknown key */
		else {
			/* Keys are identifiers; anything else is reported by
			 * the loader as it stands (escaped). */
			for (const char *q = k; q < ke; q++) {
				char ch = isalnum((unsigned char)*q) ||
						  *q == '_' ? *q : '_';
				sb_put(b, &ch, 1);
			}
		}
		sb_str(b, " = ");
		sb_value(b, v, (size_t)(ve - v));
		sb_str(b, "; ");
	}
}

/* A token of a spec for a message: at most 32 bytes, control and
 * non-ASCII bytes as \xNN. */
static void msg_token(char *out, size_t cap, const char *t, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n && i < 32 && o + 5 < cap; i++) {
		unsigned char ch = (unsigned char)t[i];
		if (ch > 0x20 && ch < 0x7f && ch != '\\')
			out[o++] = (char)ch;
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
	}
	if (n > 32 && o + 4 < cap) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = 0;
}

/* The message of fault_specs_to_conf about a spaced '='. */
static char spaced_msg[384];

/* The first token (a run of non-blanks) at or after p, before e; NULL
 * when there is none. */
static const char *spec_token(const char *p, const char *e, size_t *n)
{
	while (p < e && isspace((unsigned char)*p))
		p++;
	*n = 0;
	while (p + *n < e && !isspace((unsigned char)p[*n]))
		(*n)++;
	return *n ? p : NULL;
}

/* 0, or -1 with spaced_msg set when spec number no (s..e) has a blank
 * before or after an '=' ("latency = 100ms", "latency =100ms", "latency=
 * 100ms").  Each such spelling was an error anyway (an empty key, or an
 * empty value followed by a word without '='), so it is reported as what
 * it is.  The spaces are not accepted instead because a key alone is a
 * valid spec word ("refuse", "reset"): "name= reset" would have two
 * readings. */
static int spaced_equals(const char *s, const char *e, int no)
{
	const char *prev = NULL, *cur, *next;
	size_t pn = 0, cn, nn;
	char k[140], v[140];

	for (cur = spec_token(s, e, &cn); cur; prev = cur, pn = cn,
	     cur = next, cn = nn) {
		int prev_plain = prev && !memchr(prev, '=', pn);
		int next_plain, eq_last;

		next = spec_token(cur + cn, e, &nn);
		next_plain = next && !memchr(next, '=', nn);
		eq_last = cn > 1 && cur[cn - 1] == '=' &&
			  memchr(cur, '=', cn) == cur + cn - 1;
		k[0] = v[0] = 0;
		if (cur[0] == '=') {
			if (prev_plain)
				msg_token(k, sizeof(k), prev, pn);
			if (cn > 1)
				msg_token(v, sizeof(v), cur + 1, cn - 1);
			else if (next_plain)
				msg_token(v, sizeof(v), next, nn);
		} else if (eq_last && next_plain) {
			msg_token(k, sizeof(k), cur, cn - 1);
			msg_token(v, sizeof(v), next, nn);
		} else {
			continue;
		}
		if (k[0] && v[0])
			snprintf(spaced_msg, sizeof(spaced_msg), "fault spec "
				 "%d: spaces are not allowed around '=' "
				 "(write %s=%s)", no, k, v);
		else
			snprintf(spaced_msg, sizeof(spaced_msg), "fault spec "
				 "%d: spaces are not allowed around '=' "
				 "(write key=value, e.g. latency=100ms)", no);
		return -1;
	}
	return 0;
}

char *fault_specs_to_conf(const char *specs, const char **err)
{
	struct sbuf b = { 0 };
	const char *s = specs ? specs : "";
	int no = 1;

	/* First the spellings the translation below would garble. */
	for (const char *p = s, *q = NULL;; p = q + 1, no++) {
		q = strchr(p, ';');
		if (spaced_equals(p, q ? q : p + strlen(p), no) < 0) {
			*err = spaced_msg;
			return NULL;
		}
		if (!q)
			break;
	}

	/* Spec N on line N: ";" always starts a new line. */
	sb_str(&b, "rules = ( ");
	for (int first = 1, piece = 0;; piece++) {
		const char *e = strchr(s, ';');
		const char *end = e ? e : s + strlen(s);
		const char *t = s;

		if (piece)
			sb_str(&b, "\n");
		while (t < end && isspace((unsigned char)*t))
			t++;
		if (t < end) {
			sb_str(&b, first ? "{ " : ", { ");
			first = 0;
			emit_pairs(&b, s, end, 1);
			sb_str(&b, "faults = { ");
			emit_pairs(&b, s, end, 0);
			sb_str(&b, "}; }");
		}
		if (!e)
			break;
		s = e + 1;
	}
	sb_str(&b, " );\n");
	if (b.oom) {
		free(b.p);
		*err = "out of memory";
		return NULL;
	}
	return b.p;
}
