/* policy.h - deadline limits and their textual forms.
 *
 * Plain C: no interposition, no dlsym, no syscalls beyond what the caller
 * passes in.  Linked into the shim and directly into the unit tests.
 */
#ifndef DL_POLICY_H
#define DL_POLICY_H

#include <stddef.h>
#include <stdint.h>

/* The four deadlines of DESIGN.md, in the order they are reported. */
enum dl_phase {
	DL_PH_CONNECT = 0,
	DL_PH_FIRST_BYTE,
	DL_PH_IDLE,
	DL_PH_REQUEST,
	DL_PH_COUNT
};

/* Limits in milliseconds; 0 means "no limit". */
struct dl_limits {
	uint32_t ms[DL_PH_COUNT];
};

/* Longest limit we accept: 30 days, far below what int64 nanoseconds hold. */
#define DL_DURATION_MAX_MS (30u * 24u * 3600u * 1000u)

/* policy_parse_duration - parse "250ms", "2s", "1m30s", "1.5s", "1h", "750us"
 * (rounded up to whole ms) or a bare number of milliseconds ("400").
 * Returns 0 and stores the value in *ms, or -1 on malformed input (empty,
 * trailing garbage, unknown unit, negative, or above DL_DURATION_MAX_MS);
 * *ms is untouched on error.  Whitespace around the value is allowed.
 */
int policy_parse_duration(const char *s, uint32_t *ms);

/* policy_phase_name - "connect", "first_byte", "idle", "request". */
const char *policy_phase_name(enum dl_phase ph);

/* The environment variable that sets each phase's process-wide limit. */
const char *policy_phase_env(enum dl_phase ph);

/* policy_limits_any - nonzero when at least one limit is set. */
int policy_limits_any(const struct dl_limits *l);

/* Callback used to report a malformed setting; msg is a complete sentence
 * without trailing newline. */
typedef void (*policy_warn_fn)(const char *msg);

/* policy_limits_from_env - fill *l from the DEADLINE_*_TIMEOUT variables,
 * looked up through getenv_fn (secure_getenv in the shim, a fake in tests).
 * A malformed value leaves that limit at 0 and is reported through warn,
 * naming the variable and the value.  Returns the number of bad values.
 */
int policy_limits_from_env(struct dl_limits *l,
			   const char *(*getenv_fn)(const char *name),
			   policy_warn_fn warn);

#endif
