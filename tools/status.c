/* status.c - `deadline status PID...`: is libdeadline loaded in a
 * running process, where do its lines go, and its last counters.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tool.h"

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
int cmd_status(int argc, char **argv)
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
