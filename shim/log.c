/* log.c - logging (see log.h for where lines go and where they never go).
 *
 * State: the log file's number (file_fd, -1 when none) is the only thing
 * that changes after start-up, always by compare-and-swap, and only in
 * the process that owns it (not in a vfork child, which shares our memory
 * but not our fd table).  The identities of the log file and of the
 * starting stderr are written once, before log_ready is published.
 *
 * A writer counts itself in file_users before it loads file_fd and out
 * after its write; whoever moves the file off a number waits (bounded)
 * for file_users to drain before that number can be closed or handed to
 * the program, so no line lands on a number between its fstat check and
 * its write.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "log_int.h"
#include "real.h"

/* The log file goes at the top of RLIMIT_NOFILE's soft limit, but no
 * higher than this: the kernel sizes every process's fd table (and copies
 * it on each fork) up to the highest open number. */
#define LOG_FD_CEIL 4096
/* ...and never below this: 0..9 are the numbers shells and programs
 * dup2() onto by name. */
#define LOG_FD_FLOOR 10

/* How a destination is written. */
enum { KIND_PLAIN, KIND_PIPE, KIND_SOCK };

int dl_log_debug_on;
const char dl_log_true[] = "true";
const char dl_log_false[] = "false";
int log_json;
const char *log_dest = "stderr";	/* for dl_log_dest */
static int log_inited;		/* dl_log_init claimed */
static int log_ready;		/* dl_log_init done: the fields below are set */
int log_off;			/* DEADLINE_LOG=off */
static pid_t log_owner;		/* the process whose fd table file_fd is in */

static int file_fd = -1;	/* the log file's own number, -1 when none */
static dev_t file_dev;
static ino_t file_ino;
static int file_kind;
static int file_users;		/* writers that may be using file_fd */
static int move_lock;		/* serialises dl_log_evict/forget/reopen */
/* Odd while a reopen replaces the file behind file_fd and its identity
 * (file_dev, file_ino, file_kind, read atomically): a writer that saw it
 * change retries instead of taking the number for the program's. */
static unsigned file_seq;
static const char *file_path;	/* DEADLINE_LOG, to notice rotation */
static char file_path_buf[4096];

static int err_ok;		/* fd 2 was open at start */
static dev_t err_dev;
static ino_t err_ino;
static int err_kind;

static unsigned long log_dropped_n;

static int kind_of(const struct stat *st)
{
	if (S_ISFIFO(st->st_mode))
		return KIND_PIPE;
	if (S_ISSOCK(st->st_mode))
		return KIND_SOCK;
	return KIND_PLAIN;
}

/* 1 if fd is open on the file (dev, ino). */
static int fd_is(int fd, dev_t dev, ino_t ino)
{
	struct stat st;

	return fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

static int owner_here(void)
{
	return getpid() == __atomic_load_n(&log_owner, __ATOMIC_RELAXED);
}

static void atfork_child(void)
{
	/* A real fork: our own copy of the memory and of the fd table. */
	__atomic_store_n(&log_owner, getpid(), __ATOMIC_RELAXED);
	__atomic_store_n(&file_users, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&move_lock, 0, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------------
 * Writing one line
 */

/* 1 if n bytes might not fit at once in the pipe fd, whose file the
 * program may have left blocking (its stderr).  FIONREAD counts bytes but
 * the pipe's ring holds pages: a write that does not fit in the last
 * page's tail takes a new page, so a 64 KB pipe of 164-byte lines is full
 * at 62,976 bytes.  Room is asked for n plus n per page of the ring, which
 * covers the shim's own lines; the program's own writes to the same pipe
 * can still leave less.  Only where RWF_NOWAIT is missing. */
static int pipe_would_block(int fd, size_t n)
{
	int fl = REAL(fcntl64)(fd, F_GETFL), used = 0, cap;

	if (fl < 0 || (fl & O_NONBLOCK))
		return 0;	/* the write itself answers EAGAIN */
	cap = REAL(fcntl64)(fd, F_GETPIPE_SZ);
	if (cap <= 0 || REAL(ioctl)(fd, FIONREAD, &used) < 0)
		return 0;
	return used < 0 || used > cap ||
	       (size_t)(cap - used) < n + (size_t)(cap / 4096) * n;
}

/* 1 until the kernel refuses RWF_NOWAIT on a pipe (before Linux 5.x, or a
 * seccomp policy without pwritev2). */
static int pipe_nowait_ok = 1;

/* One write of the line to a pipe that never blocks, whatever the
 * O_NONBLOCK flag the program's file has (which is not ours to change):
 * pwritev2 with RWF_NOWAIT answers EAGAIN where a write would wait for
 * the reader.  A full pipe (a stuck reader) costs the line, never a wait
 * of the program.  Offset -1: the current position (a pipe has none). */
static ssize_t pipe_write_nowait(int fd, const char *buf, size_t n)
{
	if (__atomic_load_n(&pipe_nowait_ok, __ATOMIC_RELAXED)) {
		struct iovec v = { (void *)buf, n };
		long r = syscall(SYS_pwritev2, fd, &v, 1, -1L, 0L, RWF_NOWAIT);

		if (r >= 0 || (errno != EOPNOTSUPP && errno != EINVAL &&
			       errno != ENOSYS && errno != EPERM))
			return (ssize_t)r;
		__atomic_store_n(&pipe_nowait_ok, 0, __ATOMIC_RELAXED);
	}
	if (pipe_would_block(fd, n)) {
		errno = EAGAIN;
		return -1;
	}
	return REAL(write)(fd, buf, n);
}

/* pipe_write_nowait with SIGPIPE held back: a reader that went away
 * costs the line, not the program.  A SIGPIPE already pending before the
 * write is left alone. */
static ssize_t write_pipe(int fd, const char *buf, size_t n)
{
	sigset_t pipe_set, old, pending;
	int was_pending, e;
	ssize_t r;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigemptyset(&pending);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE) == 1;
	if (pthread_sigmask(SIG_BLOCK, &pipe_set, &old) != 0)
		return -1;
	r = pipe_write_nowait(fd, buf, n);
	e = errno;
	if (r < 0 && e == EPIPE && !was_pending) {
		struct timespec zero = { 0, 0 };

		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 &&
		       errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = e;
	return r;
}

static int write_kind(int fd, int kind, const char *buf, size_t n)
{
	ssize_t r;

	if (kind == KIND_SOCK)
		r = REAL(send)(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	else if (kind == KIND_PIPE)
		r = write_pipe(fd, buf, n);
	else
		r = REAL(write)(fd, buf, n);
	/* A short write to a log is not worth retrying. */
	return r >= 0;
}

static void drop(void)
{
	__atomic_add_fetch(&log_dropped_n, 1, __ATOMIC_RELAXED);
}

/* The stderr rule: fd 2, only while it is the file the program started
 * with. */
void log_write_stderr(const char *buf, size_t n)
{
	if (!err_ok || !fd_is(2, err_dev, err_ino) ||
	    !write_kind(2, err_kind, buf, n))
		drop();
}

/* The file behind number fd is gone (closed or replaced by the program,
 * or it cannot be moved): stop using it.  Never closes or writes fd. */
static void file_give_up(int fd, const char *why)
{
	if (!__atomic_compare_exchange_n(&file_fd, &fd, -1, 0,
					 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		return;
	log_give_up_line(fd, why);
}

/* 1 if a line is to be formatted and written (initialising on demand:
 * another library's constructor may log before ours ran). */
int log_start(void)
{
	if (!__atomic_load_n(&log_ready, __ATOMIC_ACQUIRE)) {
		dl_log_init();
		if (!__atomic_load_n(&log_ready, __ATOMIC_ACQUIRE)) {
			/* Another thread is initialising right now. */
			drop();
			return 0;
		}
	}
	return !log_off;
}

static void reopen_if_rotated(void);

/* Writes one formatted line (log_start said yes).  Returns WENT_FILE when
 * the line went to (or was meant for, and dropped at) the log file,
 * WENT_STDERR when the stderr rule took it. */
int log_write(const char *buf, size_t n)
{
	reopen_if_rotated();
	/* A few tries: the file may move (dl_log_evict) or be reopened
	 * under us. */
	for (int tries = 0; tries < 3; tries++) {
		int fd, ok = 0;
		unsigned seq;

		__atomic_add_fetch(&file_users, 1, __ATOMIC_SEQ_CST);
		seq = __atomic_load_n(&file_seq, __ATOMIC_SEQ_CST);
		fd = __atomic_load_n(&file_fd, __ATOMIC_SEQ_CST);
		if (fd >= 0 && !(seq & 1) &&
		    fd_is(fd, __atomic_load_n(&file_dev, __ATOMIC_SEQ_CST),
			  __atomic_load_n(&file_ino, __ATOMIC_SEQ_CST))) {
			if (!write_kind(fd, __atomic_load_n(&file_kind,
							    __ATOMIC_SEQ_CST),
					buf, n))
				drop();
			ok = 1;
		}
		__atomic_sub_fetch(&file_users, 1, __ATOMIC_SEQ_CST);
		if (ok)
			return WENT_FILE;
		if (fd < 0)
			break;
		if (fd != __atomic_load_n(&file_fd, __ATOMIC_SEQ_CST) ||
		    (seq & 1) || seq != __atomic_load_n(&file_seq,
							__ATOMIC_SEQ_CST)) {
			sched_yield();
			continue;	/* moved or reopened meanwhile */
		}
		/* The number no longer holds our file: the program closed it
		 * through a path the shim cannot see.  It is the program's
		 * now.  (A vfork child leaves the parent's state alone.) */
		if (owner_here())
			file_give_up(fd, "was closed or replaced by the program");
		break;
	}
	log_write_stderr(buf, n);
	return WENT_STDERR;
}

/* A configuration line: the log, and a copy on the starting stderr when
 * the log went to a file that is not that stderr.  The copy is not
 * counted as dropped when it cannot be written: the line was logged. */
void log_write_conf(const char *buf, size_t n)
{
	if (log_write(buf, n) != WENT_FILE)
		return;
	if (!err_ok || (err_dev == file_dev && err_ino == file_ino))
		return;
	if (fd_is(2, err_dev, err_ino))
		write_kind(2, err_kind, buf, n);
}

/* ------------------------------------------------------------------------
 * The log file's number
 */

static int move_lock_take(void);
static void move_lock_drop(int held);

/* A copy of fd (close-on-exec) at a free number near the top of the soft
 * RLIMIT_NOFILE (capped at LOG_FD_CEIL), never below LOG_FD_FLOOR; -1 if
 * there is none. */
static int dup_high(int fd)
{
	struct rlimit rl;
	long top = LOG_FD_CEIL, base, step = 1;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)top)
		top = (long)rl.rlim_cur;
	base = top - 1;
	for (int i = 0; i < 6 && base >= LOG_FD_FLOOR; i++) {
		int r = REAL(fcntl64)(fd, F_DUPFD_CLOEXEC, (int)base);

		if (r >= 0)
			return r;
		if (errno == EBADF)
			break;
		/* EMFILE: [base, top) is full; look a little lower. */
		base -= step;
		step *= 4;
	}
	return -1;
}

/* Waits (bounded) until no writer may still be using an old number. */
static void quiesce(void)
{
	for (int i = 0; i < 200; i++) {
		if (__atomic_load_n(&file_users, __ATOMIC_SEQ_CST) == 0)
			return;
		/* A writer interrupted by the signal handler we run in cannot
		 * finish: give up after a few yields. */
		sched_yield();
	}
}

/* 1 if the move lock was taken (bounded spin: the holder may be the very
 * thread a signal handler interrupted). */
static int move_lock_take(void)
{
	for (int i = 0; i < 200; i++) {
		if (!__atomic_exchange_n(&move_lock, 1, __ATOMIC_ACQUIRE))
			return 1;
		sched_yield();
	}
	return 0;
}

static void move_lock_drop(int held)
{
	if (held)
		__atomic_store_n(&move_lock, 0, __ATOMIC_RELEASE);
}

/* Moves the log file off number fd if fd is its number; closes fd
 * afterwards only when close_old (and only if fd still held our file). */
static void move_off(int fd, int close_old)
{
	int held, nfd, cur;

	if (fd < 0 || fd != __atomic_load_n(&file_fd, __ATOMIC_SEQ_CST))
		return;
	if (!owner_here())
		return;		/* vfork child: the parent's log, not ours */
	held = move_lock_take();
	cur = fd;
	if (fd != __atomic_load_n(&file_fd, __ATOMIC_SEQ_CST)) {
		move_lock_drop(held);
		return;
	}
	if (!fd_is(fd, file_dev, file_ino)) {
		/* Already the program's: never touch it again. */
		move_lock_drop(held);
		file_give_up(fd, "was closed or replaced by the program");
		quiesce();
		return;
	}
	nfd = dup_high(fd);
	if (nfd >= 0) {
		if (__atomic_compare_exchange_n(&file_fd, &cur, nfd, 0,
						__ATOMIC_SEQ_CST,
						__ATOMIC_SEQ_CST)) {
			quiesce();
			if (close_old)
				REAL(close)(fd);
		} else {
			REAL(close)(nfd);	/* our own copy, unused */
		}
		move_lock_drop(held);
		return;
	}
	move_lock_drop(held);
	file_give_up(fd, "is wanted by the program and no other number is "
		     "free");
	quiesce();
	if (close_old)
		REAL(close)(fd);
}

int dl_log_fd_high(int fd)
{
	return dup_high(fd);
}

/* ------------------------------------------------------------------------
 * Rotation: logrotate (or an operator) renamed or removed the file and
 * maybe created a new one.  Looked at before every line (one stat): when
 * DEADLINE_LOG no longer names the open file, the path is opened again
 * (created if missing) and put on the log's own number with dup3, so the
 * number never changes.  `copytruncate` needs nothing: the file is
 * written with O_APPEND, so lines go to its new end.
 */
static void reopen_if_rotated(void)
{
	struct stat st, nst;
	int fd, cur, nfd, held;

	cur = __atomic_load_n(&file_fd, __ATOMIC_SEQ_CST);
	if (!file_path || cur < 0 || !owner_here())
		return;
	if (stat(file_path, &st) == 0 &&
	    st.st_dev == __atomic_load_n(&file_dev, __ATOMIC_SEQ_CST) &&
	    st.st_ino == __atomic_load_n(&file_ino, __ATOMIC_SEQ_CST))
		return;
	/* A program that closed its stdio expects its next open() to
	 * return 0, 1 or 2: the shim takes none of them, even for a moment. */
	for (int i = 0; i <= 2; i++)
		if (REAL(fcntl64)(i, F_GETFD) < 0)
			return;
	if (__atomic_exchange_n(&move_lock, 1, __ATOMIC_ACQUIRE))
		return;		/* someone else moves or reopens it */
	held = 1;
	if (cur != __atomic_load_n(&file_fd, __ATOMIC_SEQ_CST) ||
	    !fd_is(cur, file_dev, file_ino)) {
		move_lock_drop(held);
		return;
	}
	fd = open(file_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
				     O_NONBLOCK | O_NOCTTY, 0644);
	if (fd < 0) {
		move_lock_drop(held);
		return;		/* keep writing the old file */
	}
	/* Off the low number at once, then onto ours (the program cannot
	 * close ours meanwhile: its close() waits for move_lock). */
	nfd = dup_high(fd);
	REAL(close)(fd);
	if (nfd < 0 || fstat(nfd, &nst) < 0) {
		if (nfd >= 0)
			REAL(close)(nfd);
		move_lock_drop(held);
		return;
	}
	__atomic_add_fetch(&file_seq, 1, __ATOMIC_SEQ_CST);
	if (REAL(dup3)(nfd, cur, O_CLOEXEC) == cur) {
		__atomic_store_n(&file_dev, nst.st_dev, __ATOMIC_SEQ_CST);
		__atomic_store_n(&file_ino, nst.st_ino, __ATOMIC_SEQ_CST);
		__atomic_store_n(&file_kind, kind_of(&nst), __ATOMIC_SEQ_CST);
	}
	__atomic_add_fetch(&file_seq, 1, __ATOMIC_SEQ_CST);
	REAL(close)(nfd);
	move_lock_drop(held);
}

int dl_log_fd(void)
{
	return __atomic_load_n(&file_fd, __ATOMIC_SEQ_CST);
}

int dl_log_owns(int fd)
{
	return fd >= 0 && fd == __atomic_load_n(&file_fd, __ATOMIC_SEQ_CST);
}

void dl_log_evict(int fd)
{
	int saved = errno;

	move_off(fd, 1);
	errno = saved;
}

void dl_log_forget_fd(int fd)
{
	int saved = errno;

	move_off(fd, 0);
	errno = saved;
}

unsigned long dl_log_dropped(void)
{
	return __atomic_load_n(&log_dropped_n, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------------
 * Start-up
 */

/* Opens DEADLINE_LOG=path without blocking and moves it high.  Returns the
 * fd, or -1 with a warning in warn[]. */
static int open_log_file(const char *path, char *warn, size_t cap)
{
	struct stat st;
	int fd, hi;

	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK |
			      O_NOCTTY, 0644);
	if (fd < 0) {
		if (errno == ENXIO)
			snprintf(warn, cap, "DEADLINE_LOG=%s: a FIFO with no "
				 "reader (or a socket); logging to stderr",
				 path);
		else
			snprintf(warn, cap, "DEADLINE_LOG=%s: cannot open: %s; "
				 "logging to stderr", path, strerror(errno));
		return -1;
	}
	hi = dup_high(fd);
	if (hi >= 0) {
		REAL(close)(fd);
		fd = hi;
	}
	/* Otherwise keep the low number: better than no log. */
	if (fstat(fd, &st) < 0) {
		snprintf(warn, cap, "DEADLINE_LOG=%s: cannot stat: %s; logging "
			 "to stderr", path, strerror(errno));
		REAL(close)(fd);
		return -1;
	}
	file_dev = st.st_dev;
	file_ino = st.st_ino;
	file_kind = kind_of(&st);
	return fd;
}

void dl_log_init(void)
{
	const char *dest, *dbg, *fmt;
	char warn[512] = "";
	struct stat st;
	int saved = errno;

	if (__atomic_exchange_n(&log_inited, 1, __ATOMIC_ACQ_REL))
		return;
	log_owner = getpid();
	pthread_atfork(NULL, NULL, atfork_child);
	dbg = secure_getenv("DEADLINE_DEBUG");
	dl_log_debug_on = dbg && *dbg && strcmp(dbg, "0") != 0;
	fmt = secure_getenv("DEADLINE_LOG_FORMAT");
	log_json = fmt && strcmp(fmt, "json") == 0;
	/* The stderr the program started with: before opening anything,
	 * which could take number 2 if it is free. */
	if (fstat(2, &st) == 0) {
		err_dev = st.st_dev;
		err_ino = st.st_ino;
		err_kind = kind_of(&st);
		err_ok = 1;
	}
	dest = secure_getenv("DEADLINE_LOG");
	if (dest && strcmp(dest, "off") == 0) {
		log_off = 1;
		log_dest = "off";
	} else if (dest && *dest && strcmp(dest, "stderr") != 0) {
		int fd = open_log_file(dest, warn, sizeof(warn));

		__atomic_store_n(&file_fd, fd, __ATOMIC_SEQ_CST);
		if (fd >= 0) {
			log_dest = dest;
			/* A FIFO or a device is not rotated.  A copy: some
			 * daemons write their process title over the
			 * environment (redis-server, nginx). */
			if (file_kind == KIND_PLAIN &&
			    strlen(dest) < sizeof(file_path_buf)) {
				memcpy(file_path_buf, dest, strlen(dest) + 1);
				file_path = file_path_buf;
				log_dest = file_path;
			}
		}
	}
	log_rate_init();
	__atomic_store_n(&log_ready, 1, __ATOMIC_RELEASE);
	/* Configuration trouble of the log itself. */
	if (*warn)
		dl_log_conf(DL_CONF_WARNING, NULL, "%s", warn);
	if (log_rate_bad())
		dl_log_conf(DL_CONF_WARNING, NULL, "DEADLINE_LOG_RATE=\"%.32s\" "
			    "is not a number of lines; using 100",
			    secure_getenv("DEADLINE_LOG_RATE"));
	if (fmt && *fmt && !log_json && strcmp(fmt, "logfmt") != 0)
		dl_log_conf(DL_CONF_WARNING, NULL, "DEADLINE_LOG_FORMAT=\"%.32s\" "
			    "is not logfmt or json; using logfmt", fmt);
	errno = saved;
}

