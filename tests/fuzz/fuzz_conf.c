/* fuzz_conf - libFuzzer harness for the configuration loader.
 *
 * Feeds arbitrary bytes to conf_load_mem() and, when a file is accepted,
 * runs every read-only entry point the engine uses on it (conf_lookup for
 * IPv4, IPv6 and v4-mapped peers in both directions, conf_rule_describe,
 * conf_effective) and checks the loader's promises:
 *   - on error: no rules, at least one message, every message printable;
 *   - on success: no messages, rule names unique and printable, backoff
 *     base <= max in every effective result.
 * A broken promise is a crash (__builtin_trap), so libFuzzer keeps the input.
 *
 * Built by `make fuzz` with clang -fsanitize=fuzzer,address,undefined
 * against the core sources (CORE_SRCS: shim/conf_*.c, shim/match.c,
 * shim/policy.c, shim/fault.c) and -lconfig.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

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

static void check_printable(const char *s)
{
	if (lax_messages)
		return;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			__builtin_trap();
}

static void lookup_all(const struct conf *c)
{
	static const char *const v4[] = { "127.0.0.1", "10.1.2.3", "0.0.0.0",
					   "255.255.255.255" };
	static const char *const v6[] = { "::1", "fd00::7", "::ffff:10.1.2.3",
					  "2001:db8::1" };
	static const char *const hosts[] = { NULL, "api.example.com",
					     "db.internal", "" };
	static const uint16_t ports[] = { 1, 80, 6379, 65535 };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
	struct conf_effective eff;

	for (unsigned i = 0; i < 4; i++) {
		for (int inbound = 0; inbound < 2; inbound++) {
			struct conf_peer p = { .host = hosts[i],
					       .inbound = inbound };

			inet_pton(AF_INET, v4[i], &sin.sin_addr);
			sin.sin_port = htons(ports[i]);
			p.addr = (const struct sockaddr *)&sin;
			p.addrlen = sizeof(sin);
			p.local = (const struct sockaddr *)&sin;
			p.locallen = sizeof(sin);
			conf_lookup(c, &p, &eff);
			if (eff.backoff_base_ms > eff.backoff_max_ms ||
			    !eff.rule_name)
				__builtin_trap();

			inet_pton(AF_INET6, v6[i], &sin6.sin6_addr);
			sin6.sin6_port = htons(ports[3 - i]);
			p.addr = (const struct sockaddr *)&sin6;
			p.addrlen = sizeof(sin6);
			p.local = NULL;
			p.locallen = 0;
			conf_lookup(c, &p, &eff);
			if (eff.backoff_base_ms > eff.backoff_max_ms)
				__builtin_trap();

			/* A short address must never be read past its end. */
			p.addrlen = 4;
			conf_lookup(c, &p, &eff);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf c;
	char buf[256];
	int rc;

	conf_init(&c);
	rc = conf_load_mem(&c, (const char *)data, size, "fuzz.conf");
	if (rc < 0) {
		if (c.nrules || (!c.nerrors && !c.errors_dropped))
			__builtin_trap();
	} else {
		if (c.nerrors)
			__builtin_trap();
		for (size_t i = 0; i < c.nrules; i++) {
			const struct conf_rule *r = &c.rules[i];

			check_printable(r->name);
			for (size_t j = 0; j < i; j++)
				if (!strcmp(r->name, c.rules[j].name))
					__builtin_trap();
			conf_rule_describe(r, buf, sizeof(buf));
			check_printable(buf);
			conf_rule_describe(r, buf, 8);
		}
		lookup_all(&c);
		struct dl_limits env = { { 1000, 0, 5, 0 } };
		conf_apply_env_overrides(&c, &env);
		lookup_all(&c);
	}
	for (size_t i = 0; i < c.nerrors; i++)
		check_printable(c.errors[i]);
	conf_free(&c);
	if (c.nrules || c.nerrors || c.errors)
		__builtin_trap();
	return 0;
}
