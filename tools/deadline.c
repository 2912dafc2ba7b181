/* deadline - run a command with libdeadline preloaded, check a config,
 * or say whether a running process has the library loaded.
 *
 *   deadline [OPTIONS] [--] COMMAND [ARGS...]
 *   deadline check FILE
 *   deadline status PID
 *
 * Exit status follows timeout(1) and env(1): the command's own status
 * (we exec it), 125 for our usage errors, 126 when the command exists but
 * cannot be run, 127 when it is not found.  `check` exits 0 or 2;
 * `status` exits 0 (loaded), 1 (not loaded) or 2 (no such process, or
 * /proc not readable).
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <ctype.h>
#include <dirent.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "obsdata.h"
#include "outside.h"
#include "policy.h"
#include "tool.h"

/* The version: the Makefile's VERSION. */
#ifndef DL_VERSION
#error "DL_VERSION is not defined: build with the Makefile"
#endif

const char *prog = "deadline";

static void usage(FILE *f)
{
	fprintf(f,
"Usage: %s [OPTIONS] [--] COMMAND [ARGS...]\n"
"       %s check FILE\n"
"       %s status PID\n"
"       %s observe -o FILE [--interval D] [OPTIONS] [--] COMMAND [ARGS...]\n"
"       %s suggest FILE... [--quantile Q] [--margin M]\n"
"       %s report FILE... -o report.html [--log LOG.json] [--csv OUT.csv]\n"
"\n"
"Run COMMAND with libdeadline preloaded, so that its TCP connections get\n"
"deadlines without changing the program.\n"
"\n"
"Options:\n"
"  --config FILE      per-host rules (libconfig); sets DEADLINE_CONFIG\n"
"  --connect D        connect deadline      (DEADLINE_CONNECT_TIMEOUT)\n"
"  --first-byte D     first-byte deadline   (DEADLINE_FIRST_BYTE_TIMEOUT)\n"
"  --idle D           idle deadline         (DEADLINE_IDLE_TIMEOUT)\n"
"  --request D        request deadline      (DEADLINE_REQUEST_TIMEOUT)\n"
"  --log FILE         libdeadline's log: a file (appended), \"stderr\"\n"
"                     (default) or \"off\" (DEADLINE_LOG)\n"
"  --log-format FMT   \"text\" (logfmt, the default) or \"json\"\n"
"                     (DEADLINE_LOG_FORMAT)\n"
"  --stats FILE       append one JSON line of per-rule counters per\n"
"                     process to FILE (DEADLINE_STATS)\n"
"  --teardown MODE    \"reset\" (RST) or \"close\" (FIN) for every\n"
"                     connection; beats the file (DEADLINE_TEARDOWN)\n"
"  --debug            debug lines in the log (DEADLINE_DEBUG=1)\n"
"  --strict           DEADLINE_STRICT=1\n"
"  --fault SPEC       inject faults, e.g. 'host=api.test latency=200ms\n"
"                     jitter=50ms p=0.5'; repeatable (DEADLINE_FAULTS)\n"
"  --seed N           seed for fault decisions (DEADLINE_SEED)\n"
"  --dry-run          log the faults that would be injected, inject none\n"
"                     (DEADLINE_FAULTS_DRY_RUN=1)\n"
"  --outside          enforce the deadlines from outside the program\n"
"                     (sock_diag, SOCK_DESTROY; root or CAP_NET_ADMIN):\n"
"                     for static and Go binaries (docs/outside.md)\n"
"  --pid PID          with --outside: follow running process PID and its\n"
"                     children instead of running COMMAND\n"
"  --interval D       with --outside: how often the sockets are listed\n"
"                     (default 100ms)\n"
"  -h, --help         show this help and exit\n"
"  -V, --version      show the version and exit\n"
"\n"
"D is a duration: 250ms, 2s, 1m30s, 1.5s, or a number of milliseconds.\n"
"The command-line limits override the configuration file.\n"
"\n"
"'check FILE' reports every error in FILE with its line (exit 2), or\n"
"prints the effective rules (exit 0).\n"
"\n"
"'status PID' says whether process PID has libdeadline loaded and from\n"
"where, its DEADLINE_* settings, its log file and its last statistics\n"
"line: exit 0 (loaded), 1 (not loaded), 2 (no such process, or not\n"
"allowed to look).\n"
"\n"
"'observe' runs COMMAND enforcing no deadline, recording how long each\n"
"phase takes per host into FILE; 'suggest' prints a configuration from\n"
"such files; 'report' draws them as one HTML page (docs/observe.md; each\n"
"takes --help).\n"
"\n"
"Exit status: COMMAND's, or 125 (deadline's own error), 126 (COMMAND\n"
"cannot be run), 127 (COMMAND not found).\n",
		prog, prog, prog, prog, prog, prog);
}

void die_usage(const char *fmt, ...)
	__attribute__((noreturn, format(printf, 1, 2)));

/* Prints "deadline: <message>" and a hint, exits 125. */
void die_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help' for more information.\n", prog);
	exit(EXIT_USAGE);
}

void die(const char *fmt, ...)
	__attribute__((noreturn, format(printf, 1, 2)));

/* Prints "deadline: <message>" and exits 125: our own failure, not a
 * misuse, so no usage hint. */
void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_USAGE);
}

/* ------------------------------------------------------------ durations */

/* Writes ms in the shortest form policy_parse_duration reads back:
 * "-" for none, "250ms", "1.5s", "1m30s", "2h".  Returns buf. */
static char *fmt_ms(uint32_t ms, char *buf, size_t len)
{
	unsigned h, m, s, f;
	size_t o = 0;

	if (!ms) {
		snprintf(buf, len, "-");
		return buf;
	}
	if (ms < 1000) {
		snprintf(buf, len, "%ums", ms);
		return buf;
	}
	h = ms / 3600000u;
	m = ms / 60000u % 60u;
	s = ms / 1000u % 60u;
	f = ms % 1000u;
	buf[0] = '\0';
	if (h)
		o += (size_t)snprintf(buf + o, len - o, "%uh", h);
	if (m && o < len)
		o += (size_t)snprintf(buf + o, len - o, "%um", m);
	if ((s || f) && o < len) {
		if (f) {
			char fr[8];
			size_t n;

			snprintf(fr, sizeof(fr), "%03u", f);
			for (n = strlen(fr); n > 1 && fr[n - 1] == '0'; n--)
				fr[n - 1] = '\0';
			snprintf(buf + o, len - o, "%u.%ss", s, fr);
		} else {
			snprintf(buf + o, len - o, "%us", s);
		}
	}
	return buf;
}

/* ---------------------------------------------------------------- check */

static const char *env_lookup(const char *name)
{
	return getenv(name);
}

static void env_warn(const char *msg)
{
	fprintf(stderr, "%s: warning: %s\n", prog, msg);
}

/* Prints every load error of c to stderr.  Returns how many there were. */
static size_t print_errors(const struct conf *c)
{
	for (size_t i = 0; i < c->nerrors; i++)
		fprintf(stderr, "%s\n", c->errors[i]);
	if (c->errors_dropped)
		fprintf(stderr, "%s: ... and %zu more errors\n",
			c->path ? c->path : "?", c->errors_dropped);
	return c->nerrors + c->errors_dropped;
}

#define NCOLS 11
/* Cell width: the FAULTS cell of a rule with many groups is the widest. */
#define CELL 512

/* The FAULTS cell: each group's faults and its triggers, e.g.
 * "latency+slice (probability=0.5)". */
static void fault_summary(const struct conf_effective *e, char *buf,
			  size_t len)
{
	size_t o = 0;

	buf[0] = 0;
	for (uint16_t g = 0; g < e->nfaults && o < len; g++) {
		const struct fault_spec *f = &e->faults[g];
		int n = snprintf(buf + o, len - o, "%s", g ? "; " : "");
		o = n < 0 ? len : o + (size_t)n;
		for (int k = 0, first = 1; k < FK_COUNT && o < len; k++) {
			if (!(f->kinds & FK_BIT(k)))
				continue;
			n = snprintf(buf + o, len - o, "%s%s", first ? "" : "+",
				     fault_kind_name((enum fault_kind)k));
			o = n < 0 ? len : o + (size_t)n;
			first = 0;
		}
		if (o < len && strcmp(f->trigger, "always") != 0) {
			n = snprintf(buf + o, len - o, " (%s)", f->trigger);
			o = n < 0 ? len : o + (size_t)n;
		}
	}
	if (!e->nfaults)
		snprintf(buf, len, "-");
}

static void row_cells(const struct conf *c, const struct conf_rule *r,
		      char cells[NCOLS][CELL])
{
	struct conf_effective e;
	int k = 0;

	conf_effective(c, r, &e);
	snprintf(cells[k++], CELL, "%s", e.rule_name);
	if (r)
		conf_rule_describe(r, cells[k++], CELL);
	else
		snprintf(cells[k++], CELL, "(no rule matched)");
	for (int ph = 0; ph < DL_PH_COUNT; ph++)
		fmt_ms(e.limits.ms[ph], cells[k++], CELL);
	fmt_ms(e.dns_timeout_ms, cells[k++], CELL);
	snprintf(cells[k++], CELL, "%s",
		 conf_errno_name(e.err) ? conf_errno_name(e.err) : "?");
	snprintf(cells[k++], CELL, "%s", conf_teardown_name(e.teardown));
	if (e.connect_retries) {
		char b[32], m[32];
		snprintf(cells[k++], CELL, "%u (%s..%s)", e.connect_retries,
			 fmt_ms(e.backoff_base_ms, b, sizeof(b)),
			 fmt_ms(e.backoff_max_ms, m, sizeof(m)));
	} else {
		snprintf(cells[k++], CELL, "0");
	}
	fault_summary(&e, cells[k++], CELL);
}

static int cmd_check(int argc, char **argv)
{
	static const char *const heads[NCOLS] = {
		"NAME", "MATCH", "CONNECT", "FIRST_BYTE", "IDLE", "REQUEST",
		"DNS", "ERRNO", "TEARDOWN", "RETRIES", "FAULTS",
	};
	char (*cells)[NCOLS][CELL];
	size_t width[NCOLS], nrows;
	struct dl_limits env;
	struct conf c;
	int env_set;

	if (argc != 2)
		die_usage("check takes exactly one FILE argument");
	conf_init(&c);
	if (conf_load(&c, argv[1]) < 0) {
		size_t n = print_errors(&c);
		fprintf(stderr, "%s: %s: %zu error%s\n", prog, argv[1], n,
			n == 1 ? "" : "s");
		conf_free(&c);
		return EXIT_CHECK_FAILED;
	}
	/* Show what the program would really get, environment included. */
	policy_limits_from_env(&env, env_lookup, env_warn);
	env_set = policy_limits_any(&env);
	conf_apply_env_overrides(&c, &env);

	nrows = c.nrules + 2;	/* header, rules, defaults */
	cells = calloc(nrows, sizeof(*cells));
	if (!cells) {
		fprintf(stderr, "%s: out of memory\n", prog);
		conf_free(&c);
		return EXIT_CHECK_FAILED;
	}
	for (int k = 0; k < NCOLS; k++)
		snprintf(cells[0][k], CELL, "%s", heads[k]);
	for (size_t i = 0; i < c.nrules; i++)
		row_cells(&c, &c.rules[i], cells[i + 1]);
	row_cells(&c, NULL, cells[nrows - 1]);

	for (int k = 0; k < NCOLS; k++) {
		width[k] = 0;
		for (size_t i = 0; i < nrows; i++)
			if (strlen(cells[i][k]) > width[k])
				width[k] = strlen(cells[i][k]);
	}
	for (size_t i = 0; i < nrows; i++) {
		for (int k = 0; k < NCOLS - 1; k++)
			printf("%-*s  ", (int)width[k], cells[i][k]);
		printf("%s\n", cells[i][NCOLS - 1]);
	}
	if (c.has_seed)
		printf("seed: %lld\n", c.seed);
	if (env_set)
		printf("note: DEADLINE_*_TIMEOUT variables in the environment "
		       "override the file; they are included above.\n");
	free(cells);
	conf_free(&c);
	return 0;
}

/* ----------------------------------------------------------------- run */

/* Makes a relative path absolute, because the command may chdir before
 * the shim opens it.  Returns a malloc'd string. */
static char *absolute_path(const char *p)
{
	char cwd[PATH_MAX], *r;
	size_t n;

	if (p[0] == '/' || !getcwd(cwd, sizeof(cwd)))
		return strdup(p);
	n = strlen(cwd) + 1 + strlen(p) + 1;
	r = malloc(n);
	if (r)
		snprintf(r, n, "%s/%s", cwd, p);
	return r;
}

/* absolute_path(), keeping the log's special values ("stderr", "off"). */
static char *absolute(const char *p)
{
	if (strcmp(p, "stderr") == 0 || strcmp(p, "off") == 0)
		return strdup(p);
	return absolute_path(p);
}

static void set_duration_env(const char *opt, const char *val,
			     enum dl_phase ph)
{
	char buf[32];
	uint32_t ms;

	if (policy_parse_duration(val, &ms) < 0)
		die_usage("invalid duration for --%s: '%s' (use e.g. 250ms, "
			  "2s, 1m30s, 1.5s, or a number of milliseconds)",
			  opt, val);
	snprintf(buf, sizeof(buf), "%ums", ms);
	setenv(policy_phase_env(ph), buf, 1);
}

static void check_config_for_run(const char *path)
{
	struct conf c;
	char *abs;

	conf_init(&c);
	if (conf_load(&c, path) < 0) {
		print_errors(&c);
		conf_free(&c);
		fprintf(stderr, "%s: %s has errors; not running the "
			"command (see '%s check %s')\n", prog, path, prog,
			path);
		exit(EXIT_USAGE);
	}
	conf_free(&c);
	abs = absolute_path(path);
	if (!abs)
		die("out of memory");
	setenv("DEADLINE_CONFIG", abs, 1);
	free(abs);
}

/* Checks the --fault specs as the library will read them, so that a typo
 * stops here with its spec number rather than in the program's log. */
static void check_faults_for_run(const char *specs)
{
	const char *err = NULL;
	char *text = fault_specs_to_conf(specs, &err);
	struct conf c;

	if (!text)
		die("--fault: %s", err);
	conf_init(&c);
	if (conf_load_mem(&c, text, strlen(text), "--fault") < 0) {
		print_errors(&c);
		fprintf(stderr, "(--fault:N is the Nth --fault option)\n");
		conf_free(&c);
		free(text);
		exit(EXIT_USAGE);
	}
	conf_free(&c);
	free(text);
	setenv("DEADLINE_FAULTS", specs, 1);
}

/* Appends one --fault spec to the ';'-separated list. */
static char *add_fault(char *list, const char *spec)
{
	size_t a = list ? strlen(list) : 0, b = strlen(spec);
	char *n;

	if (strchr(spec, ';'))
		die_usage("--fault '%s': one fault per --fault (';' is not "
			  "allowed; repeat the option)", spec);
	n = realloc(list, a + b + 2);
	if (!n)
		die("out of memory");
	if (a)
		n[a++] = ';';
	memcpy(n + a, spec, b + 1);
	return n;
}

enum {
	OPT_CONFIG = 256, OPT_CONNECT, OPT_FIRST_BYTE, OPT_IDLE, OPT_REQUEST,
	OPT_LOG, OPT_STRICT, OPT_FAULT, OPT_SEED, OPT_DRY_RUN, OPT_LOG_FORMAT,
	OPT_STATS, OPT_TEARDOWN, OPT_DEBUG, OPT_OUTSIDE, OPT_PID, OPT_INTERVAL,
};

static const struct option long_opts[] = {
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "connect", required_argument, NULL, OPT_CONNECT },
	{ "first-byte", required_argument, NULL, OPT_FIRST_BYTE },
	{ "idle", required_argument, NULL, OPT_IDLE },
	{ "request", required_argument, NULL, OPT_REQUEST },
	{ "log", required_argument, NULL, OPT_LOG },
	{ "log-format", required_argument, NULL, OPT_LOG_FORMAT },
	{ "stats", required_argument, NULL, OPT_STATS },
	{ "teardown", required_argument, NULL, OPT_TEARDOWN },
	{ "debug", no_argument, NULL, OPT_DEBUG },
	{ "strict", no_argument, NULL, OPT_STRICT },
	{ "fault", required_argument, NULL, OPT_FAULT },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "outside", no_argument, NULL, OPT_OUTSIDE },
	{ "pid", required_argument, NULL, OPT_PID },
	{ "interval", required_argument, NULL, OPT_INTERVAL },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

int main(int argc, char **argv)
{
	char lib[PATH_MAX], cmdpath[PATH_MAX];
	static struct lib_search search;
	const char *config = NULL, *logfile = NULL, *statsfile = NULL;
	char *faults = NULL;
	int strict = 0, opt, rc, outside = 0;
	struct outside_opts oo = { 0, 0 };

	if (argc >= 2 && strcmp(argv[1], "check") == 0)
		return cmd_check(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "status") == 0)
		return cmd_status(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "suggest") == 0)
		return suggest_cmd(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "report") == 0)
		return report_cmd(argc - 1, argv + 1);
	/* observe returns in the child that runs the command (tools/observe.c). */
	if (argc >= 2 && strcmp(argv[1], "observe") == 0)
		observe_cmd(&argc, &argv);

	/* '+': stop at the first non-option, which starts the command. */
	/* ':' and opterr = 0: we word the messages (getopt would name
	 * argv[0], which may be a long path). */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:hV", long_opts, NULL)) != -1) {
		switch (opt) {
		case OPT_CONFIG:
			config = optarg;
			break;
		case OPT_CONNECT:
			set_duration_env("connect", optarg, DL_PH_CONNECT);
			break;
		case OPT_FIRST_BYTE:
			set_duration_env("first-byte", optarg,
					 DL_PH_FIRST_BYTE);
			break;
		case OPT_IDLE:
			set_duration_env("idle", optarg, DL_PH_IDLE);
			break;
		case OPT_REQUEST:
			set_duration_env("request", optarg, DL_PH_REQUEST);
			break;
		case OPT_LOG:
			logfile = optarg;
			break;
		case OPT_LOG_FORMAT:
			/* The shim's names are logfmt and json; "text" is
			 * the friendlier name of logfmt. */
			if (strcmp(optarg, "text") == 0 ||
			    strcmp(optarg, "logfmt") == 0)
				setenv("DEADLINE_LOG_FORMAT", "logfmt", 1);
			else if (strcmp(optarg, "json") == 0)
				setenv("DEADLINE_LOG_FORMAT", "json", 1);
			else
				die_usage("invalid value for --log-format: "
					  "'%s' (use text or json)", optarg);
			break;
		case OPT_STATS:
			if (!*optarg)
				die_usage("--stats needs a file name");
			statsfile = optarg;
			break;
		case OPT_TEARDOWN:
			if (strcmp(optarg, "reset") != 0 &&
			    strcmp(optarg, "close") != 0)
				die_usage("invalid value for --teardown: '%s' "
					  "(use reset or close)", optarg);
			setenv("DEADLINE_TEARDOWN", optarg, 1);
			break;
		case OPT_DEBUG:
			setenv("DEADLINE_DEBUG", "1", 1);
			break;
		case OPT_STRICT:
			strict = 1;
			break;
		case OPT_FAULT:
			faults = add_fault(faults, optarg);
			break;
		case OPT_SEED: {
			char *end;
			errno = 0;
			(void)strtoull(optarg, &end, 0);
			if (errno || end == optarg || *end || *optarg == '-')
				die_usage("--seed '%s': not a non-negative "
					  "integer", optarg);
			setenv("DEADLINE_SEED", optarg, 1);
			break;
		}
		case OPT_DRY_RUN:
			setenv("DEADLINE_FAULTS_DRY_RUN", "1", 1);
			break;
		case OPT_OUTSIDE:
			outside = 1;
			break;
		case OPT_PID: {
			char *end;
			long v;

			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v <= 0 ||
			    v > INT_MAX)
				die_usage("--pid '%s': not a process id", optarg);
			oo.pid = (pid_t)v;
			break;
		}
		case OPT_INTERVAL:
			if (policy_parse_duration(optarg, &oo.interval_ms) < 0 ||
			    !oo.interval_ms || oo.interval_ms > 10000)
				die_usage("invalid duration for --interval: '%s' "
					  "(1ms to 10s)", optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("deadline (libdeadline) %s\n", DL_VERSION);
			return 0;
		case ':':
			die_usage("option '%s' requires an argument",
				  argv[optind - 1]);
		default:
			if (optopt)
				die_usage("unrecognized option '-%c'", optopt);
			die_usage("unrecognized option '%s'", argv[optind - 1]);
		}
	}
	if ((oo.pid || oo.interval_ms) && !outside)
		die_usage("--pid and --interval go with --outside");
	if (outside && faults)
		die_usage("--fault cannot be used with --outside (faults are "
			  "injected from inside the program)");
	if (oo.pid && optind < argc)
		die_usage("--pid PID follows a running process: no COMMAND");
	if (optind >= argc && !oo.pid)
		die_usage("missing command");

	if (config)
		check_config_for_run(config);
	if (faults) {
		check_faults_for_run(faults);
		free(faults);
	}
	if (logfile) {
		char *abs = absolute(logfile);
		if (!abs)
			die("out of memory");
		setenv("DEADLINE_LOG", abs, 1);
		free(abs);
	}
	if (statsfile) {
		char *abs = absolute_path(statsfile);
		if (!abs)
			die("out of memory");
		setenv("DEADLINE_STATS", abs, 1);
		free(abs);
	}
	if (strict)
		setenv("DEADLINE_STRICT", "1", 1);
	if (outside)
		return outside_run(&oo, oo.pid ? NULL : argv + optind);
	if (find_library(&search, lib, sizeof(lib)) < 0)
		die_no_library(&search);

	rc = resolve_command(argv[optind], cmdpath, sizeof(cmdpath));
	if (rc == ENOENT) {
		fprintf(stderr, "%s: %s: command not found\n", prog,
			argv[optind]);
		return EXIT_NOT_FOUND;
	}
	if (rc == 0)
		warn_unreachable(argv[optind], cmdpath);
	set_preload(lib);

	execvp(argv[optind], argv + optind);
	rc = errno;
	fprintf(stderr, "%s: %s: %s\n", prog, argv[optind], strerror(rc));
	return rc == ENOENT || rc == ENOTDIR ? EXIT_NOT_FOUND
					     : EXIT_CANNOT_RUN;
}
