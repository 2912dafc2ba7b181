/* libsearch.c - where libdeadline.so is, and what the command is.
 *
 * The library is looked for relative to this program first (a copy of
 * the tree finds its own), then where it was installed; the command is
 * resolved as execvp would and looked at (ELF: static, Go; setuid) so
 * that a program the shim cannot act on is said so before it runs.
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
int find_library(struct lib_search *s, char *out, size_t outlen)
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

void die_no_library(const struct lib_search *s)
	__attribute__((noreturn));

/* "cannot find libdeadline.so", every place looked at, what to do; 125. */
void die_no_library(const struct lib_search *s)
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
void set_preload(const char *lib)
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
int resolve_command(const char *cmd, char *out, size_t outlen)
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
void warn_unreachable(const char *shown, const char *path)
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
