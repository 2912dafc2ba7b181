/* engine.c - the engine's state, start-up and fork handling, and which
 * rule applies to a peer (see engine.h for the calls the wrappers make,
 * engine_int.h for how the engine is split).
 *
 * How a tracked socket is driven
 *   The open file is never left in O_NONBLOCK (stdio reads inside glibc,
 *   dups and children share it): reads and writes use MSG_DONTWAIT, and
 *   only connect() flips O_NONBLOCK for the one call.  When a call of a
 *   blocking program would block, the calling thread waits in its own
 *   private epoll set for the remaining time, then retries.
 *
 * Expiry
 *   The connection is aborted with connect(AF_UNSPEC) (RST, fd stays valid,
 *   every waiter in any thread wakes) or shutdown(SHUT_RDWR) (FIN), the fd
 *   leaves the private epoll set, and I/O fails with ETIMEDOUT until the
 *   program closes the fd.  The shim never closes a program's fd.
 *
 * Locking
 *   One mutex (lk) guards the deadline heap and serialises teardown against
 *   close(), so a number cannot be torn down after the program reused it.
 *   The fast path (fd untracked, or data ready) takes no lock.
 */
#include "engine_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inject.h"
#include "log.h"
#include "real.h"

int engine_enabled_flag = -1; /* -1 not initialised, 0 off, 1 on */

/* The version the DEADLINE_DEBUG start-up line reports: the Makefile's
 * VERSION, passed as -DDL_VERSION. */
#ifndef DL_VERSION
#error "DL_VERSION is not defined: build with the Makefile"
#endif

static int conf_unused;	/* DEADLINE_CONFIG had errors: not used */

struct engine_state E = {
	.lk = PTHREAD_MUTEX_INITIALIZER,
};

struct conf_effective engine_eff_none = { .err = ETIMEDOUT,
					  .rule_name = "none" };

/* ------------------------------------------------------------------------
 * Which rule applies
 */

uint16_t engine_rule_for(int fd, const struct sockaddr *addr, socklen_t len,
			 int inbound)
{
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	struct conf_peer p;
	const struct conf_rule *r;
	const struct rules_gen *g;
	char host[NAMES_NAME_MAX + 1];

	/* A changed DEADLINE_CONFIG applies from the next connection on. */
	live_poll();
	g = rules_now();
	if (!g->conf->nrules || !addr)
		return (uint16_t)g->base;
	memset(&p, 0, sizeof(p));
	p.host = names_lookup(addr, host, sizeof(host)) ? host : 0;
	p.addr = addr;
	p.addrlen = len;
	p.inbound = inbound;
	if (inbound && getsockname(fd, (struct sockaddr *)&local, &llen) == 0) {
		p.local = (struct sockaddr *)&local;
		p.locallen = llen;
	}
	r = conf_match(g->conf, &p);
	return (uint16_t)(g->base + (r ? r->index : 0));
}

/* Fault injection for a connection to/from addr under rule: set up when
 * some fault group applies.  Returns 1 if fd has fault state. */
int engine_faults_attach(int fd, struct dl_conn *c, uint16_t rule,
			 const struct sockaddr *addr, socklen_t len,
			 int inbound, int probe_only)
{
	char host[NAMES_NAME_MAX + 1];
	const char *h = names_lookup(addr, host, sizeof(host)) ? host : 0;
	const struct conf_effective *e =
		rule < __atomic_load_n(&E.neff, __ATOMIC_ACQUIRE) ? &E.eff[rule]
								  : 0;

	if (probe_only)
		return inject_wants(e, h, addr, len, inbound);
	return inject_attach(fd, conn_gen(c), e, h, addr, len, inbound);
}

/* Does anything apply to this rule?  (Limits, or connect retries.) */
int engine_rule_active(uint16_t rule)
{
	const struct conf_effective *e =
		rule < __atomic_load_n(&E.neff, __ATOMIC_ACQUIRE)
			? &E.eff[rule]
			: &engine_eff_none;

	return policy_limits_any(&e->limits) || e->connect_retries ||
	       OBS_ON(); /* observing tracks every connection */
}

/* ------------------------------------------------------------------------
 * Initialisation and fork
 */

static void warn_cb(const char *msg)
{
	dl_log_conf(DL_CONF_WARNING, NULL, "%s", msg);
}

static const char *env_get(const char *name)
{
	return secure_getenv(name);
}

static void fork_epoch_bump(void)
{
	__atomic_fetch_add(&track_fork_epoch, 1, __ATOMIC_RELAXED);
}

static void atfork_prepare(void)
{
	engine_lock();
	names_fork_prepare();
}

static void atfork_parent(void)
{
	fork_epoch_bump();
	names_fork_release();
	engine_unlock();
}

static void atfork_child(void)
{
	__atomic_store_n(&self_pid, getpid(), __ATOMIC_RELAXED);
	/* The parent's threads in vfork() are not here. */
	__atomic_and_fetch(&self_gate, SELF_GATE_VM_CLONE, __ATOMIC_RELAXED);
	inject_atfork_child();
	fork_epoch_bump();
	holds_atfork_child();
	expire_atfork_child();
	reaper_atfork_child();
	live_atfork_child();
	names_fork_release();
	engine_unlock();
}

static int config_load(void);

/* DEADLINE_STATS, and its format (stats.c). */
static void stats_path_load(void)
{
	/* A copy: some daemons write their process title over the
	 * environment (redis-server, nginx). */
	static char buf[4096];
	const char *v = secure_getenv("DEADLINE_STATS");

	E.stats_path = 0;
	if (v && *v && strlen(v) < sizeof(buf)) {
		memcpy(buf, v, strlen(v) + 1);
		E.stats_path = buf;
	}
	stats_start();
	engine_extra_sync();
}

void engine_extra_sync(void)
{
	__atomic_store_n(&E.moved_extra,
			 E.stats_path != 0 ||
				 __atomic_load_n(&observe_on, __ATOMIC_RELAXED),
			 __ATOMIC_RELAXED);
}

/* DEADLINE_DEBUG: one line at load saying the shim is active, and with
 * what.  Only then does it cost anything (a readlink of /proc/self/exe). */
static void log_start_line(int enabled)
{
	char exe[512];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	const char *path = secure_getenv("DEADLINE_CONFIG");
	const struct dl_field f[] = {
		{ "event", "start", 0 },
		{ "version", DL_VERSION, 0 },
		{ "exe", n > 0 ? exe : program_invocation_name, 0 },
		{ "config", path && *path ? path : "none", 0 },
		{ "config_used", DL_BOOL(path && *path && !conf_unused), 0 },
		{ "rules", 0, (long long)E.conf.nrules },
		{ "fault_specs", 0, (long long)inject_spec_count() },
		{ "faults", DL_BOOL(inject_on), 0 },
		{ "enforcing", DL_BOOL(enabled), 0 },
		{ "log", dl_log_dest(), 0 },
		{ "log_format", dl_log_format(), 0 },
	};

	if (n > 0)
		exe[n] = '\0';
	dl_log_fields(f, (int)(sizeof(f) / sizeof(f[0])));
}

void engine_init(void)
{
	int saved = errno;
	int expect = 0;

	if (!__atomic_compare_exchange_n(&E.init_state, &expect, 1, 0,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		/* Another thread is initialising: pass through until done. */
		errno = saved;
		return;
	}
	dl_real_bind();
	__atomic_store_n(&self_pid, getpid(), __ATOMIC_RELAXED);
	/* The configuration reader's own I/O must not come back here. */
	conf_set_io(REAL(read), REAL(close));
	dl_log_init();
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	__atomic_store_n(&E.init_state, 2, __ATOMIC_RELEASE);
	{
		int on = config_load();

		__atomic_store_n(&engine_enabled_flag, on ? 1 : 0,
				 __ATOMIC_RELEASE);
		if (dl_log_debug_on)
			log_start_line(on);
		live_start();
	}
	errno = saved;
}

static int env_flag(const char *name)
{
	const char *v = secure_getenv(name);

	return v && *v && strcmp(v, "0") != 0;
}

/* Read DEADLINE_CONFIG and the DEADLINE_* variables into E.  Returns 1 if
 * anything is to be enforced.  Bad input is reported once; then the shim
 * passes everything through, or with DEADLINE_STRICT=1 the process exits
 * with status 2 (this runs before main). */
static int config_load(void)
{
	struct dl_limits env;
	const char *path = secure_getenv("DEADLINE_CONFIG");
	int bad = policy_limits_from_env(&env, env_get, warn_cb);
	int active = 0;

	conf_init(&E.conf);
	if (path && *path) {
		E.have_file = 1;
		if (conf_load(&E.conf, path) < 0) {
			for (size_t i = 0; i < E.conf.nerrors; i++)
				dl_log_conf(DL_CONF_ERROR, path, "%s",
					    E.conf.errors[i]);
			if (E.conf.errors_dropped)
				dl_log_conf(DL_CONF_ERROR, path,
					    "%s: %zu more errors not shown",
					    path, E.conf.errors_dropped);
			if (!E.conf.nerrors)
				dl_log_conf(DL_CONF_ERROR, path,
					    "%s: cannot load: %s", path,
					    strerror(errno));
			bad++;
		}
	}
	if (bad) {
		if (env_flag("DEADLINE_STRICT")) {
			dl_log_conf(DL_CONF_EXIT, NULL, "DEADLINE_STRICT is "
				    "set: exiting (status 2)");
			_exit(2);
		}
		if (E.have_file && E.conf.nerrors) {
			dl_log_conf(DL_CONF_IGNORED, path, "%s: configuration "
				    "not used; passing everything through",
				    path);
			conf_free(&E.conf);
			conf_unused = 1;
			/* Nothing applies; a fixed file is picked up by
			 * the reload check (reload.c). */
			stats_path_load();
			if (rules_start(&E.conf, path, 0, &env) < 0) {
				E.stats_path = 0;
				engine_extra_sync();
			}
			return 0;
		}
	}
	conf_apply_env_overrides(&E.conf, &env);
	stats_path_load();
	active = rules_start(&E.conf, path, 1, &env);
	if (active < 0) {
		E.stats_path = 0;
		engine_extra_sync();
		dl_log_warn("out of memory at start; passing everything through");
		return 0;
	}
	if (inject_load(&E.conf) < 0 && env_flag("DEADLINE_STRICT")) {
		dl_log_conf(DL_CONF_EXIT, NULL, "DEADLINE_STRICT is set: "
			    "exiting (status 2)");
		_exit(2);
	}
	if (inject_on)
		active = 1;
	active |= observe_start();
	return active;
}

__attribute__((constructor(101))) static void engine_ctor(void)
{
	engine_init();
}
