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

/* Where `make install` puts the library and this program (the Makefile
 * passes LIBDIR and BINDIR; the install target compiles a copy of this
 * program with the values given to it), and the multiarch triplet of the
 * compiler (`gcc -print-multiarch`, empty when it has none). */
#ifndef DL_LIBDIR
#define DL_LIBDIR "/usr/local/lib"
#endif
#ifndef DL_BINDIR
#define DL_BINDIR "/usr/local/bin"
#endif
#ifndef DL_MULTIARCH
#define DL_MULTIARCH ""
#endif
/* The version: the Makefile's VERSION. */
#ifndef DL_VERSION
#error "DL_VERSION is not defined: build with the Makefile"
#endif

#define LIBNAME "libdeadline.so"

enum {
	EXIT_USAGE = 125,
	EXIT_CANNOT_RUN = 126,
	EXIT_NOT_FOUND = 127,
	EXIT_CHECK_FAILED = 2,
};

static const char *prog = "deadline";

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

static void die_usage(const char *fmt, ...)
	__attribute__((noreturn, format(printf, 1, 2)));

/* Prints "deadline: <message>" and a hint, exits 125. */
static void die_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help' for more information.\n", prog);
	exit(EXIT_USAGE);
}

static void die(const char *fmt, ...)
	__attribute__((noreturn, format(printf, 1, 2)));

/* Prints "deadline: <message>" and exits 125: our own failure, not a
 * misuse, so no usage hint. */
static void die(const char *fmt, ...)
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

/* --------------------------------------------------------------- status */

enum {
	STATUS_LOADED = 0,
	STATUS_NOT_LOADED = 1,
	STATUS_NO_PROCESS = 2,
};

/* The whole of a (/proc) file, NUL-terminated, *len bytes without the NUL;
 * NULL with errno set when it cannot be read. */
static char *read_all(const char *path, size_t *len)
{
	size_t cap = 8192, n = 0;
	char *buf = malloc(cap);
	int fd, e;

	if (!buf)
		return NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		goto fail;
	for (;;) {
		ssize_t r;

		if (cap - n < 2) {
			char *nb = cap < (256u << 20) ? realloc(buf, cap * 2)
						      : NULL;
			if (!nb) {
				errno = ENOMEM;
				goto fail;
			}
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto fail;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	free(buf);
	errno = e;
	return NULL;
}

/* 1 when a mapped file is libdeadline (libdeadline.so, or a build of it
 * under another name such as libdeadline-asan.so). */
static int is_shim_path(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	return strncmp(base, "libdeadline", 11) == 0 && strstr(base, ".so");
}

/* The process's state letter from /proc/PID/stat ('Z' for a zombie), or
 * 0 when unknown. */
static char proc_state(const char *pid)
{
	char path[64], *st, *rp, c = 0;

	snprintf(path, sizeof(path), "/proc/%s/stat", pid);
	st = read_all(path, NULL);
	if (st && (rp = strrchr(st, ')')) && rp[1] == ' ')
		c = rp[2];
	free(st);
	return c;
}

/* "VAR=value" entries of environ (NUL-separated) whose name is var. */
static const char *env_get(const char *env, size_t len, const char *var)
{
	size_t n = strlen(var);

	for (const char *e = env; e < env + len; e += strlen(e) + 1)
		if (strncmp(e, var, n) == 0 && e[n] == '=')
			return e + n + 1;
	return NULL;
}

/* 1 when the line is a statistics line of process pid: {"pid":N,...}. */
static int stats_line_of(const char *line, long pid)
{
	const char *p = line;
	char *end;
	long v;

	p += strspn(p, " \t");
	if (*p++ != '{')
		return 0;
	p += strspn(p, " \t");
	if (strncmp(p, "\"pid\"", 5) != 0)
		return 0;
	p += 5;
	p += strspn(p, " \t");
	if (*p++ != ':')
		return 0;
	p += strspn(p, " \t");
	if (!isdigit((unsigned char)*p))
		return 0;
	errno = 0;
	v = strtol(p, &end, 10);
	if (errno || v != pid)
		return 0;
	end += strspn(end, " \t");
	return *end == ',' || *end == '}';
}

/* The log: where DEADLINE_LOG says, and whether the process has it open
 * (the shim holds it on a high descriptor of its own). */
static void status_log(const char *pid, const char *dest)
{
	char fddir[64], link[PATH_MAX], target[PATH_MAX];
	char want[2 * PATH_MAX + 2];
	struct dirent *de;
	DIR *d;
	int found = -1, stderr_only;

	stderr_only = !dest || !*dest || strcmp(dest, "stderr") == 0;
	if (dest && strcmp(dest, "off") == 0) {
		printf("log: off (DEADLINE_LOG=off)\n");
		return;
	}
	snprintf(fddir, sizeof(fddir), "/proc/%s/fd", pid);
	d = opendir(fddir);
	if (!d) {
		printf("log: %s (cannot read %s: %s)\n",
		       stderr_only ? "stderr" : dest, fddir, strerror(errno));
		return;
	}
	/* A relative DEADLINE_LOG was opened from the process's cwd. */
	if (!stderr_only && dest[0] != '/') {
		char cwdlink[80];
		ssize_t n;

		snprintf(cwdlink, sizeof(cwdlink), "/proc/%s/cwd", pid);
		n = readlink(cwdlink, link, sizeof(link) - 1);
		link[n > 0 ? n : 0] = '\0';
		snprintf(want, sizeof(want), "%s/%s", link, dest);
	} else if (!stderr_only) {
		snprintf(want, sizeof(want), "%s", dest);
	}
	while ((de = readdir(d))) {
		ssize_t n;
		int fd;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		fd = atoi(de->d_name);
		if (stderr_only && fd != 2)
			continue;
		if (snprintf(link, sizeof(link), "%s/%s", fddir,
			     de->d_name) >= (int)sizeof(link))
			continue;
		n = readlink(link, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (stderr_only) {
			printf("log: stderr (fd 2 is %s)\n", target);
			found = fd;
			break;
		}
		if (strcmp(target, want) == 0) {
			found = fd;
			break;
		}
		/* The path through a symlink, as opened. */
		if (realpath(want, link) && strcmp(target, link) == 0) {
			found = fd;
			break;
		}
	}
	closedir(d);
	if (stderr_only) {
		if (found < 0)
			printf("log: stderr (fd 2 is closed: lines are "
			       "dropped)\n");
	} else if (found >= 0) {
		printf("log: %s (open on fd %d)\n", dest, found);
	} else {
		printf("log: %s (not open in the process)\n", dest);
	}
}

/* DEADLINE_STATS=NAME.prom: the Prometheus counters the process keeps
 * rewriting ("%p" in the name is its pid); the samples that are not 0. */
static void status_prom(const char *pid, const char *file, const char *path)
{
	char name[PATH_MAX], *line = NULL;
	size_t cap = 0, o = 0;
	ssize_t n;
	int shown = 0;
	FILE *f;

	for (const char *p = path; *p && o + strlen(pid) + 1 < sizeof(name);
	     p++) {
		if (p[0] == '%' && p[1] == 'p') {
			o += (size_t)snprintf(name + o, sizeof(name) - o, "%s",
					      pid);
			p++;
		} else {
			name[o++] = *p;
		}
	}
	name[o] = '\0';
	f = fopen(name, "re");
	if (!f) {
		printf("stats: %s (cannot read it: %s)\n", file,
		       strerror(errno));
		return;
	}
	printf("stats: %s (Prometheus, rewritten while it runs), the counters "
	       "that are not 0:\n", file);
	while ((n = getline(&line, &cap, f)) >= 0) {
		const char *v = strrchr(line, ' ');

		if (line[0] == '#' || !v || strstr(line, "_bucket{") ||
		    strtod(v + 1, NULL) == 0)
			continue;
		printf("  %s", line);
		shown++;
	}
	if (!shown)
		printf("  (none yet)\n");
	fclose(f);
	free(line);
}

/* The newest statistics line the process wrote to DEADLINE_STATS. */
static void status_stats(const char *pid, const char *file)
{
	char path[PATH_MAX], *line = NULL, *last = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *f;

	if (!file || !*file) {
		printf("stats: off (DEADLINE_STATS is not set)\n");
		return;
	}
	if (file[0] == '/')
		snprintf(path, sizeof(path), "%s", file);
	else
		snprintf(path, sizeof(path), "/proc/%s/cwd/%s", pid, file);
	if (strlen(path) > 5 && !strcmp(path + strlen(path) - 5, ".prom")) {
		status_prom(pid, file, path);
		return;
	}
	f = fopen(path, "re");
	if (!f) {
		printf("stats: %s (cannot read it: %s)\n", file,
		       strerror(errno));
		return;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		if (n && line[n - 1] == '\n')
			line[n - 1] = '\0';
		if (stats_line_of(line, atol(pid))) {
			free(last);
			last = strdup(line);
		}
	}
	fclose(f);
	free(line);
	if (last)
		printf("stats: %s, newest line of pid %s:\n  %s\n", file, pid,
		       last);
	else
		printf("stats: %s (no line of pid %s yet: the library writes "
		       "one when the process exits)\n", file, pid);
	free(last);
}

/* deadline status PID: is libdeadline in that process, from where, and
 * with what settings. */
static int cmd_status(int argc, char **argv)
{
	char path[64], found[4][PATH_MAX], *maps, *env, *comm, *save = NULL;
	const char *pid, *v;
	size_t envlen = 0;
	int nfound = 0, env_err = 0, ndl = 0;
	struct stat st;
	long pidv;
	char *end;

	if (argc != 2)
		die_usage("status takes exactly one PID argument");
	pid = argv[1];
	errno = 0;
	pidv = strtol(pid, &end, 10);
	if (!isdigit((unsigned char)*pid) || *end || errno || pidv <= 0 ||
	    pidv > INT_MAX)
		die_usage("status: '%s' is not a process ID", pid);

	snprintf(path, sizeof(path), "/proc/%s", pid);
	if (stat(path, &st) < 0) {
		if (errno == ENOENT)
			fprintf(stderr, "%s: status: no process with ID %s\n",
				prog, pid);
		else
			fprintf(stderr, "%s: status: %s: %s\n", prog, path,
				strerror(errno));
		return STATUS_NO_PROCESS;
	}
	snprintf(path, sizeof(path), "/proc/%s/maps", pid);
	maps = read_all(path, NULL);
	if (!maps) {
		int e = errno;

		if (e == ENOENT || e == ESRCH)
			fprintf(stderr, "%s: status: no process with ID %s\n",
				prog, pid);
		else
			fprintf(stderr, "%s: status: cannot read %s: %s%s\n",
				prog, path, strerror(e),
				e == EACCES || e == EPERM
					? " (only root or the process's owner "
					  "may look)" : "");
		return STATUS_NO_PROCESS;
	}
	if (!maps[0] && proc_state(pid) == 'Z') {
		fprintf(stderr, "%s: status: process %s has exited (a zombie "
			"its parent has not reaped)\n", prog, pid);
		free(maps);
		return STATUS_NO_PROCESS;
	}
	for (char *ln = strtok_r(maps, "\n", &save); ln;
	     ln = strtok_r(NULL, "\n", &save)) {
		int off = -1, dup = 0;

		if (sscanf(ln, "%*s %*s %*s %*s %*s %n", &off) < 0 ||
		    off < 0 || ln[off] != '/' || !is_shim_path(ln + off))
			continue;
		for (int i = 0; i < nfound; i++)
			dup |= strcmp(found[i], ln + off) == 0;
		if (!dup && nfound < 4)
			snprintf(found[nfound++], PATH_MAX, "%s", ln + off);
	}
	free(maps);

	snprintf(path, sizeof(path), "/proc/%s/comm", pid);
	comm = read_all(path, NULL);
	if (comm)
		comm[strcspn(comm, "\n")] = '\0';
	printf("pid %s (%s): libdeadline %s", pid, comm ? comm : "?",
	       nfound ? "loaded: " : "not loaded\n");
	free(comm);
	for (int i = 0; i < nfound; i++)
		printf("%s%s", i ? ", " : "", found[i]);
	if (nfound)
		printf("\n");

	snprintf(path, sizeof(path), "/proc/%s/environ", pid);
	env = read_all(path, &envlen);
	if (!env) {
		env_err = errno;
		printf("settings: unknown (cannot read %s: %s)\n", path,
		       strerror(env_err));
	} else {
		printf("settings (its environment when it started):\n");
		for (const char *e = env; e < env + envlen;
		     e += strlen(e) + 1) {
			int is_dl = strncmp(e, "DEADLINE_", 9) == 0;

			if (is_dl || strncmp(e, "LD_PRELOAD=", 11) == 0)
				printf("  %s\n", e);
			ndl += is_dl;
		}
		if (!ndl)
			printf("  (no DEADLINE_* variable: no deadline "
			       "applies)\n");
	}
	if (!nfound) {
		v = env ? env_get(env, envlen, "LD_PRELOAD") : NULL;
		if (v && strstr(v, "libdeadline"))
			printf("note: its LD_PRELOAD names libdeadline, but "
			       "the loader did not load it: a bare name the "
			       "loader cannot find (use the absolute path, "
			       "or 'deadline'), or a setuid, setgid or "
			       "statically linked program\n");
		free(env);
		return STATUS_NOT_LOADED;
	}
	if (env) {
		status_log(pid, env_get(env, envlen, "DEADLINE_LOG"));
		status_stats(pid, env_get(env, envlen, "DEADLINE_STATS"));
	} else {
		printf("log: unknown (environment not readable)\n");
		printf("stats: unknown (environment not readable)\n");
	}
	free(env);
	return STATUS_LOADED;
}

/* ------------------------------------------------------ library lookup */

/* An absolute path as its components, "." and ".." resolved lexically
 * (right for paths derived from /proc/self/exe, which has no symlinks). */
#define MAX_COMPS 128
struct comps {
	char buf[PATH_MAX];
	const char *c[MAX_COMPS];
	size_t n;
};

/* Returns 0, or -1 when path is not absolute or too long. */
static int comps_of(const char *path, struct comps *p)
{
	size_t len = strlen(path);
	char *save = NULL;

	p->n = 0;
	if (path[0] != '/' || len >= sizeof(p->buf))
		return -1;
	memcpy(p->buf, path, len + 1);
	for (char *t = strtok_r(p->buf, "/", &save); t;
	     t = strtok_r(NULL, "/", &save)) {
		if (strcmp(t, ".") == 0)
			continue;
		if (strcmp(t, "..") == 0) {
			if (p->n)
				p->n--;
			continue;
		}
		if (p->n == MAX_COMPS)
			return -1;
		p->c[p->n++] = t;
	}
	return 0;
}

/* Appends s to out at *o; returns -1 when it does not fit. */
static int append(char *out, size_t len, size_t *o, const char *s)
{
	size_t n = strlen(s);

	if (*o + n >= len)
		return -1;
	memcpy(out + *o, s, n + 1);
	*o += n;
	return 0;
}

/* The path of DL_LIBDIR relative to DL_BINDIR ("../lib",
 * "../lib/x86_64-linux-gnu", "." when they are the same directory), so
 * that an installed deadline finds the library installed with it wherever
 * the tree was moved (a DESTDIR stage, a relocated prefix).  Returns 0,
 * or -1 when either is not absolute. */
static int libdir_from_bindir(char *out, size_t len)
{
	static struct comps bin, lib;
	size_t common = 0, o = 0;

	if (comps_of(DL_BINDIR, &bin) < 0 || comps_of(DL_LIBDIR, &lib) < 0)
		return -1;
	while (common < bin.n && common < lib.n &&
	       strcmp(bin.c[common], lib.c[common]) == 0)
		common++;
	out[0] = '\0';
	for (size_t i = common; i < bin.n; i++)
		if (append(out, len, &o, o ? "/.." : "..") < 0)
			return -1;
	for (size_t i = common; i < lib.n; i++)
		if ((o && append(out, len, &o, "/") < 0) ||
		    append(out, len, &o, lib.c[i]) < 0)
			return -1;
	if (!o)
		return append(out, len, &o, ".");
	return 0;
}

/* dir + "/" + rel + "/" LIBNAME, normalised lexically, into out.
 * Returns 0, or -1 when it does not fit. */
static int lib_in(const char *dir, const char *rel, char *out, size_t len)
{
	static struct comps p;
	char joined[PATH_MAX];
	size_t o = 0;
	int n;

	n = snprintf(joined, sizeof(joined), "%s/%s/" LIBNAME, dir,
		     rel ? rel : ".");
	if (n < 0 || (size_t)n >= sizeof(joined) || comps_of(joined, &p) < 0)
		return -1;
	out[0] = '\0';
	for (size_t i = 0; i < p.n; i++)
		if (append(out, len, &o, "/") < 0 ||
		    append(out, len, &o, p.c[i]) < 0)
			return -1;
	return 0;
}

#define MAX_CANDS 6
struct lib_search {
	char cand[MAX_CANDS][PATH_MAX];
	int err[MAX_CANDS];	/* why each was not used (errno) */
	int n;
	char self_err[128];	/* when /proc/self/exe could not be read */
};

static void add_cand(struct lib_search *s, const char *dir, const char *rel)
{
	char path[PATH_MAX];

	if (s->n == MAX_CANDS || lib_in(dir, rel, path, sizeof(path)) < 0)
		return;
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->cand[i], path) == 0)
			return;
	memcpy(s->cand[s->n++], path, strlen(path) + 1);
}

/* Finds libdeadline.so.  Relative to our own executable first, so that a
 * copy of the tree finds its own library: beside it (the build tree), at
 * the installed LIBDIR relative to the installed BINDIR, in ../lib/ and in
 * ../lib/<multiarch>/; then in the LIBDIR this program was installed
 * for.  Writes the canonical path into out.  Returns 0, or -1 when none
 * is readable (s then lists every place looked at, and why). */
static int find_library(struct lib_search *s, char *out, size_t outlen)
{
	char self[PATH_MAX], rel[PATH_MAX], real[PATH_MAX];
	ssize_t n;

	memset(s, 0, sizeof(*s));
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		char *slash;

		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash && self[0] == '/') {
			*slash = '\0';
			if (!self[0])
				memcpy(self, "/", 2);
			add_cand(s, self, NULL);
			if (libdir_from_bindir(rel, sizeof(rel)) == 0)
				add_cand(s, self, rel);
			add_cand(s, self, "../lib");
			if (DL_MULTIARCH[0])
				add_cand(s, self, "../lib/" DL_MULTIARCH);
		}
	} else {
		snprintf(s->self_err, sizeof(s->self_err),
			 "cannot read /proc/self/exe (%s), so not relative to "
			 "this program", n < 0 ? strerror(errno) : "empty");
	}
	add_cand(s, DL_LIBDIR, NULL);
	for (int i = 0; i < s->n; i++) {
		if (access(s->cand[i], R_OK) < 0) {
			s->err[i] = errno;
			continue;
		}
		if (!realpath(s->cand[i], real)) {
			s->err[i] = errno;
			continue;
		}
		if (strlen(real) >= outlen) {
			s->err[i] = ENAMETOOLONG;
			continue;
		}
		memcpy(out, real, strlen(real) + 1);
		return 0;
	}
	return -1;
}

static void die_no_library(const struct lib_search *s)
	__attribute__((noreturn));

/* "cannot find libdeadline.so", every place looked at, what to do; 125. */
static void die_no_library(const struct lib_search *s)
{
	fprintf(stderr, "%s: cannot find %s; looked for:\n", prog, LIBNAME);
	for (int i = 0; i < s->n; i++)
		fprintf(stderr, "  %s (%s)\n", s->cand[i], strerror(s->err[i]));
	if (s->self_err[0])
		fprintf(stderr, "  (%s)\n", s->self_err);
	fprintf(stderr, "%s: install it with 'make install' (LIBDIR=%s for "
		"this build), or preload it yourself: "
		"LD_PRELOAD=/path/to/%s COMMAND\n", prog, DL_LIBDIR, LIBNAME);
	exit(EXIT_USAGE);
}

/* 1 when the space/colon separated list already holds item. */
static int preload_has(const char *list, const char *item)
{
	size_t n = strlen(item);

	while (list && *list) {
		size_t len = strcspn(list, " :");
		if (len == n && strncmp(list, item, n) == 0)
			return 1;
		list += len;
		list += strspn(list, " :");
	}
	return 0;
}

/* Puts lib first in LD_PRELOAD, keeping what was there after it: our
 * wrappers must be the ones the program's calls reach first. */
static void set_preload(const char *lib)
{
	const char *old = getenv("LD_PRELOAD");
	char *v;
	size_t n;

	if (strpbrk(lib, " :"))
		die("cannot preload %s: LD_PRELOAD cannot carry a path "
			  "with a space or a colon", lib);
	if (old && preload_has(old, lib))
		return;
	if (!old || !*old) {
		setenv("LD_PRELOAD", lib, 1);
		return;
	}
	n = strlen(lib) + 1 + strlen(old) + 1;
	v = malloc(n);
	if (!v)
		die("out of memory");
	snprintf(v, n, "%s:%s", lib, old);
	setenv("LD_PRELOAD", v, 1);
	free(v);
}

/* --------------------------------------------------- command inspection */

/* Finds the file execvp would run.  Returns 0 with the path in out,
 * EACCES when a match exists but is not executable, ENOENT otherwise. */
static int resolve_command(const char *cmd, char *out, size_t outlen)
{
	const char *path, *p;
	int seen_eacces = 0;

	if (!*cmd)
		return ENOENT;
	if (strchr(cmd, '/')) {
		if (access(cmd, F_OK) < 0)
			return ENOENT;
		snprintf(out, outlen, "%s", cmd);
		return access(cmd, X_OK) == 0 ? 0 : EACCES;
	}
	path = getenv("PATH");
	if (!path)
		path = "/bin:/usr/bin";
	for (p = path;; ) {
		size_t len = strcspn(p, ":");
		char cand[PATH_MAX];
		struct stat st;
		int n;

		/* An empty element means the current directory. */
		if (len == 0)
			n = snprintf(cand, sizeof(cand), "%s", cmd);
		else
			n = snprintf(cand, sizeof(cand), "%.*s/%s", (int)len,
				     p, cmd);
		if (n > 0 && (size_t)n < sizeof(cand) &&
		    stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
			if (access(cand, X_OK) == 0) {
				snprintf(out, outlen, "%s", cand);
				return 0;
			}
			seen_eacces = 1;
		}
		if (!p[len])
			break;
		p += len + 1;
	}
	return seen_eacces ? EACCES : ENOENT;
}

struct elf_facts {
	int is_elf;
	int has_interp;	/* PT_INTERP present: dynamically linked */
	int is_go;	/* Go build-id note or buildinfo section */
};

static int read_at(int fd, void *buf, size_t len, off_t off)
{
	ssize_t n = pread(fd, buf, len, off);
	return n == (ssize_t)len ? 0 : -1;
}

/* Looks for Go's marker sections by name; bounded reads only.
 * T is Elf64 or Elf32; both share the logic through this macro. */
#define SCAN_ELF(EHDR, PHDR, SHDR)                                          \
	do {                                                                 \
		EHDR eh;                                                     \
		if (read_at(fd, &eh, sizeof(eh), 0) < 0)                     \
			return;                                              \
		if (eh.e_phentsize == sizeof(PHDR) && eh.e_phnum < 4096) {   \
			for (unsigned i = 0; i < eh.e_phnum; i++) {          \
				PHDR ph;                                     \
				if (read_at(fd, &ph, sizeof(ph),             \
					    (off_t)(eh.e_phoff +             \
						    i * sizeof(ph))) < 0)    \
					break;                               \
				if (ph.p_type == PT_INTERP)                  \
					f->has_interp = 1;                   \
			}                                                    \
		}                                                            \
		if (eh.e_shentsize == sizeof(SHDR) && eh.e_shnum &&          \
		    eh.e_shnum < 4096 && eh.e_shstrndx < eh.e_shnum) {       \
			SHDR strh;                                           \
			char *names;                                         \
			if (read_at(fd, &strh, sizeof(strh),                 \
				    (off_t)(eh.e_shoff + eh.e_shstrndx *     \
						       sizeof(strh))) < 0 || \
			    strh.sh_size == 0 || strh.sh_size > (1u << 20))  \
				return;                                      \
			names = malloc((size_t)strh.sh_size + 1);            \
			if (!names)                                          \
				return;                                      \
			if (read_at(fd, names, (size_t)strh.sh_size,         \
				    (off_t)strh.sh_offset) == 0) {           \
				names[strh.sh_size] = '\0';                  \
				for (unsigned i = 0; i < eh.e_shnum; i++) {  \
					SHDR sh;                             \
					const char *nm;                      \
					if (read_at(fd, &sh, sizeof(sh),     \
						    (off_t)(eh.e_shoff +     \
							    i * sizeof(sh))) \
					    < 0)                             \
						break;                       \
					if (sh.sh_name >= strh.sh_size)      \
						continue;                    \
					nm = names + sh.sh_name;             \
					if (!strcmp(nm, ".note.go.buildid")  \
					    || !strcmp(nm, ".go.buildinfo")) \
						f->is_go = 1;                \
				}                                            \
			}                                                    \
			free(names);                                         \
		}                                                            \
	} while (0)

static void scan_elf_fd(int fd, struct elf_facts *f)
{
	unsigned char ident[EI_NIDENT];

	if (read_at(fd, ident, sizeof(ident), 0) < 0 ||
	    memcmp(ident, ELFMAG, SELFMAG) != 0)
		return;
	/* A foreign byte order cannot run here anyway: exec will say so. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	if (ident[EI_DATA] != ELFDATA2LSB)
		return;
#else
	if (ident[EI_DATA] != ELFDATA2MSB)
		return;
#endif
	f->is_elf = 1;
	if (ident[EI_CLASS] == ELFCLASS64)
		SCAN_ELF(Elf64_Ehdr, Elf64_Phdr, Elf64_Shdr);
	else if (ident[EI_CLASS] == ELFCLASS32)
		SCAN_ELF(Elf32_Ehdr, Elf32_Phdr, Elf32_Shdr);
	else
		f->is_elf = 0;
}

#undef SCAN_ELF

/* Warns about programs the shim cannot act on: static binaries (no loader
 * to honour LD_PRELOAD), setuid/setgid ones (the loader drops it), and Go
 * programs (raw system calls bypass libc). */
static void warn_unreachable(const char *shown, const char *path)
{
	struct elf_facts f = { 0, 0, 0 };
	struct stat st;
	int fd;

	if (stat(path, &st) == 0 &&
	    (((st.st_mode & S_ISUID) && st.st_uid != getuid()) ||
	     ((st.st_mode & S_ISGID) && st.st_gid != getgid())))
		fprintf(stderr, "%s: warning: %s is setuid or setgid; the "
			"loader ignores LD_PRELOAD for it, so libdeadline "
			"cannot act on it\n", prog, shown);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		scan_elf_fd(fd, &f);
	close(fd);
	if (!f.is_elf)
		return;
	if (!f.has_interp)
		fprintf(stderr, "%s: warning: %s is statically linked; "
			"libdeadline cannot act on it\n", prog, shown);
	else if (f.is_go)
		fprintf(stderr, "%s: warning: %s is a Go program; Go makes "
			"system calls directly, so libdeadline cannot act on "
			"its sockets\n", prog, shown);
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
