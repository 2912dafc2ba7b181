/* fuzz_parsers - libFuzzer harness for the small text parsers.
 *
 * The first input byte picks the parser, the rest (made NUL-terminated) is
 * its text:
 *   0  policy_parse_duration: success means a value <= DL_DURATION_MAX_MS
 *   1  match_cidr_parse: success round-trips through match_cidr_format,
 *      and match_cidr on sample addresses stays in bounds
 *   2  match_glob_check + match_glob: the text is "pattern\nname"
 *   3  match_ports_parse: success means 1 <= lo <= hi, and round-trips
 *      through match_ports_format
 *   4  conf_errno_parse / conf_errno_name agree with each other
 *   5  conf_edit_distance of "a\nb" stays within its cap
 * and, for a first byte of 0xf0 and above (so that older inputs keep
 * their meaning):
 *   6  fault_specs_to_conf: the text it makes always loads or fails
 *      cleanly, with messages naming a line within the spec count
 *   7  fault_parse_rate: success means 1 <= rate <= 1e15, *rate untouched
 *      on error
 * Error messages must be NUL-terminated, printable and within the buffer.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "fault.h"
#include "match.h"
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* FUZZ_LAX_MESSAGES=1: do not trap on unprintable error messages (set by
 * run-fuzz while a known regression of that kind is open, so that the
 * fuzzing time still hunts for other bugs). */
static int lax_messages;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *v = getenv("FUZZ_LAX_MESSAGES");

	(void)argc;
	(void)argv;
	lax_messages = v && *v && strcmp(v, "0") != 0;
	return 0;
}

static void check_msg(const char *err, size_t cap)
{
	size_t n = strnlen(err, cap);

	if (n == cap)
		__builtin_trap();
	if (lax_messages)
		return;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)err[i] < 0x20)
			__builtin_trap();
}

static void fuzz_cidr(const char *s)
{
	struct match_cidr c, c2;
	char err[128] = "", text[MATCH_CIDR_STRLEN], e2[128];
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };

	if (match_cidr_parse(s, &c, err, sizeof(err)) < 0) {
		check_msg(err, sizeof(err));
		return;
	}
	if ((c.family == AF_INET && c.prefix > 32) ||
	    (c.family == AF_INET6 && c.prefix > 128) ||
	    (c.family != AF_INET && c.family != AF_INET6))
		__builtin_trap();
	match_cidr_format(&c, text, sizeof(text));
	if (match_cidr_parse(text, &c2, e2, sizeof(e2)) < 0 ||
	    c2.family != c.family || c2.prefix != c.prefix ||
	    memcmp(c2.addr, c.addr, c.family == AF_INET ? 4 : 16))
		__builtin_trap();
	inet_pton(AF_INET, "10.1.2.3", &sin.sin_addr);
	inet_pton(AF_INET6, "::ffff:10.1.2.3", &sin6.sin6_addr);
	match_cidr(&c, (struct sockaddr *)&sin, sizeof(sin));
	match_cidr(&c, (struct sockaddr *)&sin6, sizeof(sin6));
	match_cidr(&c, (struct sockaddr *)&sin6, 8);
	match_cidr(&c, NULL, 0);
}

static void fuzz_glob(char *s)
{
	char err[128] = "";
	char *nl = strchr(s, '\n');
	const char *name = "api.example.com";

	if (nl) {
		*nl = '\0';
		name = nl + 1;
	}
	if (match_glob_check(s, err, sizeof(err)) < 0)
		check_msg(err, sizeof(err));
	match_glob_check(s, NULL, 0);
	match_glob(s, name);
	match_glob(s, s);
	match_glob(name, s);
}

static void fuzz_ports(const char *s)
{
	struct match_ports p, p2;
	char err[128] = "", text[32], e2[128];

	if (match_ports_parse(s, &p, err, sizeof(err)) < 0) {
		check_msg(err, sizeof(err));
		return;
	}
	if (p.lo < 1 || p.lo > p.hi)
		__builtin_trap();
	match_ports_format(&p, text, sizeof(text));
	if (match_ports_parse(text, &p2, e2, sizeof(e2)) < 0 ||
	    p2.lo != p.lo || p2.hi != p.hi)
		__builtin_trap();
	if (!match_ports(&p, p.lo) || !match_ports(&p, p.hi))
		__builtin_trap();
}

/* `deadline --fault` text: one rule per spec, spec N on line N, and
 * whatever the specs hold, the result parses or fails with messages. */
static void fuzz_specs(const char *s)
{
	const char *err = NULL;
	char *text = fault_specs_to_conf(s, &err);
	struct conf c;
	unsigned long lines = 1;

	if (!text)
		return;
	for (const char *p = s; *p; p++)
		lines += *p == ';';
	conf_init(&c);
	if (conf_load_mem(&c, text, strlen(text), "f") < 0) {
		for (size_t i = 0; i < c.nerrors; i++) {
			unsigned long l = strtoul(c.errors[i] + 2, NULL, 10);
			check_msg(c.errors[i], 4096);
			if (strncmp(c.errors[i], "f:", 2) == 0 && l > lines)
				__builtin_trap();
		}
	} else if (c.nrules > lines) {
		__builtin_trap();
	}
	conf_free(&c);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;
	uint32_t ms = 12345;

	if (size < 1 || size > 4096)
		return 0;
	s = malloc(size);
	if (!s)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	switch (data[0] >= 0xf0 ? 6 + (data[0] & 1) : data[0] % 6) {
	case 0:
		if (policy_parse_duration(s, &ms) == 0) {
			if (ms > DL_DURATION_MAX_MS)
				__builtin_trap();
		} else if (ms != 12345) {
			__builtin_trap(); /* untouched on error */
		}
		break;
	case 1:
		fuzz_cidr(s);
		break;
	case 2:
		fuzz_glob(s);
		break;
	case 3:
		fuzz_ports(s);
		break;
	case 4: {
		int e = conf_errno_parse(s);
		const char *n = e >= 0 ? conf_errno_name(e) : NULL;

		if (e >= 0 && (!n || strcmp(n, s)))
			__builtin_trap();
		break;
	}
	case 5: {
		char *nl = strchr(s, '\n');
		const char *b = "connect_timeout";

		if (nl) {
			*nl = '\0';
			b = nl + 1;
		}
		if (conf_edit_distance(s, b, 4) > 4)
			__builtin_trap();
		break;
	}
	case 6:
		fuzz_specs(s);
		break;
	case 7: {
		uint64_t r = 777;
		if (fault_parse_rate(s, &r) == 0) {
			if (r < 1 || r > 1000000000000000ull)
				__builtin_trap();
		} else if (r != 777) {
			__builtin_trap();
		}
		break;
	}
	}
	free(s);
	return 0;
}
