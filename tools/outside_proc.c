/* outside_proc.c - cgroup v2 and /proc for `deadline --outside` (see
 * outside_int.h).
 */
#include "outside_int.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------
 * The inode map
 */

static size_t ino_slot(const struct oinomap *m, uint32_t ino)
{
	return (size_t)(ino * 2654435761u) & (m->cap - 1);
}

struct oino *oino_get(struct oinomap *m, uint32_t ino)
{
	if (!m->cap || !ino)
		return NULL;
	for (size_t i = ino_slot(m, ino);; i = (i + 1) & (m->cap - 1)) {
		if (m->v[i].ino == ino)
			return &m->v[i];
		if (!m->v[i].ino)
			return NULL;
	}
}

static int ino_grow(struct oinomap *m)
{
	struct oinomap n = { 0 };

	n.cap = m->cap ? m->cap * 2 : 256;
	n.v = calloc(n.cap, sizeof(*n.v));
	if (!n.v)
		return -1;
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->v[i].ino)
			continue;
		size_t j = ino_slot(&n, m->v[i].ino);

		while (n.v[j].ino)
			j = (j + 1) & (n.cap - 1);
		n.v[j] = m->v[i];
		n.n++;
	}
	free(m->v);
	*m = n;
	return 0;
}

struct oino *oino_put(struct oinomap *m, uint32_t ino)
{
	struct oino *e = oino_get(m, ino);
	size_t i;

	if (e || !ino)
		return e;
	if ((m->n + 1) * 2 > m->cap && ino_grow(m) < 0)
		return NULL;
	for (i = ino_slot(m, ino); m->v[i].ino; i = (i + 1) & (m->cap - 1))
		;
	memset(&m->v[i], 0, sizeof(m->v[i]));
	m->v[i].ino = ino;
	m->n++;
	return &m->v[i];
}

/* Deletion in linear probing: move later entries of the run back. */
void oino_del(struct oinomap *m, uint32_t ino)
{
	struct oino *e = oino_get(m, ino);
	size_t i, j;

	if (!e)
		return;
	i = (size_t)(e - m->v);
	m->v[i].ino = 0;
	m->n--;
	for (j = (i + 1) & (m->cap - 1); m->v[j].ino;
	     j = (j + 1) & (m->cap - 1)) {
		size_t k = ino_slot(m, m->v[j].ino);

		/* Entry j may fill hole i unless its home lies in (i, j]. */
		if ((j > i && (k <= i || k > j)) || (j < i && k <= i && k > j)) {
			m->v[i] = m->v[j];
			m->v[j].ino = 0;
			i = j;
		}
	}
}

void oino_free(struct oinomap *m)
{
	free(m->v);
	memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------------------
 * Processes
 */

static int push_pid(pid_t **v, size_t *n, size_t *cap, pid_t p)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		pid_t *nv = realloc(*v, nc * sizeof(**v));

		if (!nv)
			return -1;
		*v = nv;
		*cap = nc;
	}
	(*v)[(*n)++] = p;
	return 0;
}

/* ppid of pid from /proc/PID/stat, -1 if unknown. */
static pid_t ppid_of(pid_t pid)
{
	char path[64], buf[512], *rp;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	rp = strrchr(buf, ')');
	if (!rp || !rp[1] || !rp[2] || !rp[3])
		return -1;
	/* ") S PPID ..." */
	return (pid_t)strtol(rp + 4, NULL, 10);
}

size_t proc_tree(pid_t root, pid_t **out)
{
	pid_t *all = NULL, *par = NULL, *v = NULL;
	size_t na = 0, capa = 0, np = 0, capp = 0, n = 0, cap = 0;
	struct dirent *de;
	DIR *d;

	*out = NULL;
	if (kill(root, 0) < 0 && errno == ESRCH)
		return 0;
	d = opendir("/proc");
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		pid_t p;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		p = (pid_t)atoi(de->d_name);
		if (push_pid(&all, &na, &capa, p) < 0 ||
		    push_pid(&par, &np, &capp, ppid_of(p)) < 0)
			break;
	}
	closedir(d);
	if (push_pid(&v, &n, &cap, root) < 0)
		goto done;
	/* Breadth first: each pass adds the children of what is there. */
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < na && k < np; k++)
			if (par[k] == v[i] && all[k] != root &&
			    push_pid(&v, &n, &cap, all[k]) < 0)
				goto done;
done:
	free(all);
	free(par);
	*out = v;
	return v ? n : 0;
}

size_t proc_cgroup_pids(const char *dir, pid_t **out)
{
	char path[PATH_MAX], line[32];
	pid_t *v = NULL;
	size_t n = 0, cap = 0;
	FILE *f;

	*out = NULL;
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (push_pid(&v, &n, &cap, (pid_t)atoi(line)) < 0)
			break;
	fclose(f);
	*out = v;
	return n;
}

/* Calls fn for every socket fd of pid: fn(ino, fd, arg); a nonzero
 * return stops.  Returns that value, or 0. */
static int each_socket(pid_t pid, int (*fn)(uint32_t, int, void *),
		       void *arg)
{
	char dir[64], link[96], target[64];
	struct dirent *de;
	int rc = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	d = opendir(dir);
	if (!d)
		return 0;
	while (!rc && (de = readdir(d))) {
		ssize_t n;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		if (snprintf(link, sizeof(link), "%s/%s", dir, de->d_name) >=
		    (int)sizeof(link))
			continue;
		n = readlink(link, target, sizeof(target) - 1);
		if (n < 9 || strncmp(target, "socket:[", 8) != 0)
			continue;
		target[n] = '\0';
		rc = fn((uint32_t)strtoul(target + 8, NULL, 10),
			atoi(de->d_name), arg);
	}
	closedir(d);
	return rc;
}

struct scan_arg {
	struct oinomap *m;
	pid_t pid;
	size_t found;
};

static int scan_one(uint32_t ino, int fd, void *arg)
{
	struct scan_arg *a = arg;
	struct oino *e = oino_put(a->m, ino);

	if (e && !e->pid) {
		e->pid = a->pid;
		e->fd = fd;
		e->misses = 0;
	}
	a->found++;
	return 0;
}

size_t proc_scan_sockets(struct oinomap *m, const pid_t *pids, size_t n)
{
	struct scan_arg a = { m, 0, 0 };

	for (size_t i = 0; i < m->cap; i++)
		m->v[i].pid = 0;
	for (size_t i = 0; i < n; i++) {
		a.pid = pids[i];
		each_socket(pids[i], scan_one, &a);
	}
	return a.found;
}

int proc_fd_holds(pid_t pid, int fd, uint32_t ino)
{
	char link[64], target[64], want[32];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int)pid, fd);
	snprintf(want, sizeof(want), "socket:[%u]", ino);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return 0;
	target[n] = '\0';
	return strcmp(target, want) == 0;
}

/* ------------------------------------------------------------------------
 * cgroup v2
 */

int cg_mount(char *buf, size_t len)
{
	char line[4096];
	FILE *f = fopen("/proc/self/mountinfo", "re");
	int rc = -1;

	if (!f)
		return -1;
	/* "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS... - FSTYPE SOURCE ..." */
	while (rc < 0 && fgets(line, sizeof(line), f)) {
		char *dash = strstr(line, " - "), *mp;
		int field = 0;

		if (!dash || strncmp(dash + 3, "cgroup2 ", 8) != 0)
			continue;
		for (mp = line; *mp && field < 4; mp++)
			if (*mp == ' ')
				field++;
		if (field == 4) {
			size_t n = strcspn(mp, " ");

			if (n < len) {
				memcpy(buf, mp, n);
				buf[n] = '\0';
				rc = 0;
			}
		}
	}
	fclose(f);
	return rc;
}

/* Our own v2 group, relative to the mount ("0::/path"). */
static int own_group(char *buf, size_t len)
{
	char line[4096];
	FILE *f = fopen("/proc/self/cgroup", "re");
	int rc = -1;

	if (!f)
		return -1;
	while (rc < 0 && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3) != 0)
			continue;
		line[strcspn(line, "\n")] = '\0';
		if (strlen(line + 3) < len) {
			snprintf(buf, len, "%s", line + 3);
			rc = 0;
		}
	}
	fclose(f);
	return rc;
}

/* Empty groups of supervisors that are gone (killed before cleaning). */
static void sweep_stale(const char *parent)
{
	struct dirent *de;
	DIR *d = opendir(parent);

	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[PATH_MAX];
		long pid;

		if (strncmp(de->d_name, "deadline-outside.", 17) != 0)
			continue;
		pid = strtol(de->d_name + 17, NULL, 10);
		if (pid <= 0 || (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", parent, de->d_name) <
		    (int)sizeof(path))
			rmdir(path);	/* fails (EBUSY) if still populated */
	}
	closedir(d);
}

int cg_create(const char *mnt, char *dir, size_t len, uint64_t *id)
{
	char own[PATH_MAX], parent[PATH_MAX];
	struct stat st;

	if (own_group(own, sizeof(own)) < 0)
		return -ENOENT;
	/* "/" is the root: the new group goes at the top. */
	if (snprintf(parent, sizeof(parent), "%s%s", mnt,
		     strcmp(own, "/") == 0 ? "" : own) >= (int)sizeof(parent))
		return -ENAMETOOLONG;
	sweep_stale(parent);
	if (snprintf(dir, len, "%s/deadline-outside.%d", parent,
		     (int)getpid()) >= (int)len)
		return -ENAMETOOLONG;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	if (stat(dir, &st) < 0)
		return -errno;
	*id = (uint64_t)st.st_ino;
	return 0;
}

int cg_remove(const char *dir)
{
	char parent[PATH_MAX], path[PATH_MAX];
	pid_t *pids;
	size_t n;
	int moved = 0;
	char *slash;

	snprintf(parent, sizeof(parent), "%s", dir);
	slash = strrchr(parent, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	if (snprintf(path, sizeof(path), "%s/cgroup.procs", parent) >=
	    (int)sizeof(path))
		return -1;
	/* A process may fork while we move: a few rounds. */
	for (int round = 0; round < 5; round++) {
		n = proc_cgroup_pids(dir, &pids);
		for (size_t i = 0; i < n; i++) {
			int fd = open(path, O_WRONLY | O_CLOEXEC);

			if (fd < 0)
				break;
			if (dprintf(fd, "%d\n", (int)pids[i]) > 0)
				moved++;
			close(fd);
		}
		free(pids);
		if (rmdir(dir) == 0)
			return moved;
		if (errno != EBUSY)
			return -1;
		usleep(10000);
	}
	return -1;
}
