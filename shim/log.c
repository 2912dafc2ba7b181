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
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
static int log_json;
static const char *log_dest = "stderr";	/* for dl_log_dest */
static int log_inited;		/* dl_log_init claimed */
static int log_ready;		/* dl_log_init done: the fields below are set */
static int log_off;		/* DEADLINE_LOG=off */
static pid_t log_owner;		/* the process whose fd table file_fd is in */

static int file_fd = -1;	/* the log file's own number, -1 when none */
static dev_t file_dev;
static ino_t file_ino;
static int file_kind;
static int file_users;		/* writers that may be using file_fd */
static int move_lock;		/* serialises dl_log_evict/forget */

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

/* write() to a pipe or FIFO with SIGPIPE held back: a reader that went
 * away costs the line, not the program.  A SIGPIPE already pending before
 * the write is left alone. */
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
	r = REAL(write)(fd, buf, n);
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
static void write_stderr(const char *buf, size_t n)
{
	if (!err_ok || !fd_is(2, err_dev, err_ino) ||
	    !write_kind(2, err_kind, buf, n))
		drop();
}

static void give_up_line(int fd, const char *why);

/* The file behind number fd is gone (closed or replaced by the program,
 * or it cannot be moved): stop using it.  Never closes or writes fd. */
static void file_give_up(int fd, const char *why)
{
	if (!__atomic_compare_exchange_n(&file_fd, &fd, -1, 0,
					 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		return;
	give_up_line(fd, why);
}

/* 1 if a line is to be formatted and written (initialising on demand:
 * another library's constructor may log before ours ran). */
static int log_start(void)
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

/* Where log_write put a line. */
enum { WENT_STDERR, WENT_FILE };

/* Writes one formatted line (log_start said yes).  Returns WENT_FILE when
 * the line went to (or was meant for, and dropped at) the log file,
 * WENT_STDERR when the stderr rule took it. */
static int log_write(const char *buf, size_t n)
{
	/* A few tries: the file may move (dl_log_evict) under us. */
	for (int tries = 0; tries < 3; tries++) {
		int fd, ok = 0;

		__atomic_add_fetch(&file_users, 1, __ATOMIC_SEQ_CST);
		fd = __atomic_load_n(&file_fd, __ATOMIC_SEQ_CST);
		if (fd >= 0 && fd_is(fd, file_dev, file_ino)) {
			if (!write_kind(fd, file_kind, buf, n))
				drop();
			ok = 1;
		}
		__atomic_sub_fetch(&file_users, 1, __ATOMIC_SEQ_CST);
		if (ok)
			return WENT_FILE;
		if (fd < 0)
			break;
		if (fd != __atomic_load_n(&file_fd, __ATOMIC_SEQ_CST))
			continue;	/* moved meanwhile: try the new number */
		/* The number no longer holds our file: the program closed it
		 * through a path the shim cannot see.  It is the program's
		 * now.  (A vfork child leaves the parent's state alone.) */
		if (owner_here())
			file_give_up(fd, "was closed or replaced by the program");
		break;
	}
	write_stderr(buf, n);
	return WENT_STDERR;
}

/* A configuration line: the log, and a copy on the starting stderr when
 * the log went to a file that is not that stderr.  The copy is not
 * counted as dropped when it cannot be written: the line was logged. */
static void log_write_conf(const char *buf, size_t n)
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
		if (fd >= 0)
			log_dest = dest;
	}
	__atomic_store_n(&log_ready, 1, __ATOMIC_RELEASE);
	/* Configuration trouble of the log itself. */
	if (*warn)
		dl_log_conf(DL_CONF_WARNING, NULL, "%s", warn);
	if (fmt && *fmt && !log_json && strcmp(fmt, "logfmt") != 0)
		dl_log_conf(DL_CONF_WARNING, NULL, "DEADLINE_LOG_FORMAT=\"%.32s\" "
			    "is not logfmt or json; using logfmt", fmt);
	errno = saved;
}

/* ------------------------------------------------------------------------
 * Formatting
 *
 * A line is built in a buffer on the stack, one piece at a time: a piece
 * (a field's key, a character, a number) goes in whole or not at all,
 * and the last LINE_TAIL bytes are kept for what closes the line (a
 * string's quote, "truncated", the JSON object's brace, the newline), so
 * a line that is too long is cut, never broken: a JSON line always
 * parses.
 */

#define LINE_BYTES 1024
#define LINE_TAIL 32

struct line {
	char b[LINE_BYTES];
	size_t n;
	int cut;	/* a piece did not fit: nothing more goes in */
};

const char *dl_log_dest(void)
{
	return log_off ? "off" : dl_log_fd() >= 0 ? log_dest : "stderr";
}

const char *dl_log_format(void)
{
	return log_json ? "json" : "logfmt";
}

/* Appends s[0..len) if it fits before the tail; else marks the line cut.
 * Returns 1 if it went in. */
static int put(struct line *l, const char *s, size_t len)
{
	if (l->cut || l->n + len > sizeof(l->b) - LINE_TAIL) {
		l->cut = 1;
		return 0;
	}
	memcpy(l->b + l->n, s, len);
	l->n += len;
	return 1;
}

static int put_str(struct line *l, const char *s)
{
	return put(l, s, strlen(s));
}

/* Appends what closes the line, into the tail (always fits: callers put
 * less than LINE_TAIL bytes of it in all). */
static void put_tail(struct line *l, const char *s)
{
	size_t len = strlen(s);

	if (l->n + len > sizeof(l->b))
		len = sizeof(l->b) - l->n;
	memcpy(l->b + l->n, s, len);
	l->n += len;
}

/* The length of the valid UTF-8 sequence at p (at most left bytes), or 0
 * when the byte at p does not start one. */
static size_t utf8_len(const unsigned char *p, size_t left)
{
	unsigned char c = p[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (left < len)
		return 0;
	/* The second byte's range excludes overlong forms, surrogates and
	 * code points above U+10FFFF. */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

/* The characters of v, escaped: JSON string contents (quote, backslash
 * and control bytes escaped, invalid UTF-8 as U+FFFD) or, in logfmt,
 * quote and backslash escaped and control bytes as \u00XX.  Stops where
 * the line is full. */
static void put_escaped(struct line *l, const char *v)
{
	const unsigned char *p = (const unsigned char *)v;
	size_t left = strlen(v);

	while (left && !l->cut) {
		unsigned char ch = *p;
		size_t k = 1;

		if (ch == '"' || ch == '\\') {
			char esc[2] = { '\\', (char)ch };
			put(l, esc, 2);
		} else if (ch < 0x20 || ch == 0x7f) {
			char esc[8];
			int m = snprintf(esc, sizeof(esc), "\\u%04x", ch);
			put(l, esc, (size_t)m);
		} else if (ch < 0x80 || !log_json) {
			put(l, (const char *)p, 1);
		} else if ((k = utf8_len(p, left)) > 0) {
			put(l, (const char *)p, k);
		} else {
			k = 1;
			put(l, "\\ufffd", 6);
		}
		p += k;
		left -= k;
	}
}

/* A string value is always quoted in JSON; in logfmt when it is empty or
 * has spaces, quotes, '=' or backslashes. */
static int needs_quotes(const char *v)
{
	return log_json || !*v || strpbrk(v, " \"=\\") != 0;
}

/* ' key=' or ',"key":', with the value's opening quote (keys are the
 * shim's own identifiers): in one piece, so that a key never goes in
 * without the start of its value. */
static void field_str(struct line *l, const char *key, const char *v)
{
	char k[80];
	int quote = needs_quotes(v);
	int m = snprintf(k, sizeof(k), log_json ? ",\"%s\":%s" : " %s=%s",
			 key, quote ? "\"" : "");

	if (m <= 0 || (size_t)m >= sizeof(k) || !put(l, k, (size_t)m)) {
		l->cut = 1;
		return;
	}
	put_escaped(l, v);
	if (quote)
		put_tail(l, "\"");
}

/* key and value go in together, or neither does. */
static void field_raw(struct line *l, const char *key, const char *v)
{
	char k[112];
	int m = snprintf(k, sizeof(k), log_json ? ",\"%s\":%s" : " %s=%s",
			 key, v);

	if (m > 0 && (size_t)m < sizeof(k))
		put(l, k, (size_t)m);
	else
		l->cut = 1;
}

static void field_num(struct line *l, const char *key, long long v)
{
	char num[24];

	snprintf(num, sizeof(num), "%lld", v);
	field_raw(l, key, num);
}

static void field(struct line *l, const struct dl_field *f)
{
	if (!f->str)
		field_num(l, f->key, f->num);
	else if (f->str == dl_log_true || f->str == dl_log_false)
		field_raw(l, f->key, f->str);
	else
		field_str(l, f->key, f->str);
}

/* UTC calendar time of t, computed here rather than by gmtime_r, which
 * takes glibc's time-zone lock and may open /etc/localtime on first use
 * (neither is safe in a signal handler, and an open would take one of the
 * program's numbers for a moment).  Days to civil date: H. Hinnant's
 * algorithm, proleptic Gregorian. */
struct dl_utc {
	int year, mon, mday, hour, min, sec;
};

static void utc_of(time_t t, struct dl_utc *u)
{
	long long days = (long long)t / 86400, secs = (long long)t % 86400;
	long long era, doe, yoe, doy, mp, y;

	if (secs < 0) {
		secs += 86400;
		days--;
	}
	u->hour = (int)(secs / 3600);
	u->min = (int)(secs / 60 % 60);
	u->sec = (int)(secs % 60);
	days += 719468;
	era = (days >= 0 ? days : days - 146096) / 146097;
	doe = days - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	u->mday = (int)(doy - (153 * mp + 2) / 5 + 1);
	u->mon = (int)(mp < 10 ? mp + 3 : mp - 9);
	u->year = (int)(y + (u->mon <= 2));
}

/* The start of an event line: time and pid. */
static void line_head(struct line *l)
{
	char when[64];
	struct timespec ts;
	struct dl_utc tm;

	l->n = 0;
	l->cut = 0;
	clock_gettime(CLOCK_REALTIME, &ts);
	utc_of(ts.tv_sec, &tm);
	snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		 tm.year, tm.mon, tm.mday, tm.hour, tm.min, tm.sec,
		 (long)(ts.tv_nsec / 1000000) % 1000);
	put_str(l, log_json ? "{\"time\":\"" : "libdeadline: time=");
	put_str(l, when);
	put_str(l, log_json ? "\"" : "");
	field_num(l, "pid", (long long)getpid());
}

/* Closes an event line; returns its length. */
static size_t line_end(struct line *l)
{
	if (l->cut)
		put_tail(l, log_json ? ",\"truncated\":true" :
				       " truncated=true");
	put_tail(l, log_json ? "}\n" : "\n");
	return l->n;
}

/* A text line.  JSON: {"time","pid","event":event[,"source","line"],
 * "msg"}.  logfmt: "libdeadline: <prefix><text>", control bytes as \xNN
 * so that a line stays one line. */
static void format_text(struct line *l, const char *event,
			const char *prefix, const char *source,
			const char *text)
{
	if (log_json) {
		line_head(l);
		field_str(l, "event", event);
		if (source) {
			size_t sl = strlen(source);

			field_str(l, "source", source);
			if (strncmp(text, source, sl) == 0 && text[sl] == ':') {
				const char *p = text + sl + 1;
				char *end;
				unsigned long line = strtoul(p, &end, 10);

				if (end != p && *p >= '0' && *p <= '9' &&
				    end[0] == ':' && end[1] == ' ') {
					field_num(l, "line", (long long)line);
					text = end + 2;
				} else if (*p == ' ') {
					text = p + 1;
				}
			}
		}
		field_str(l, "msg", text);
		line_end(l);
		return;
	}
	l->n = 0;
	l->cut = 0;
	put_str(l, "libdeadline: ");
	put_str(l, prefix);
	for (const unsigned char *p = (const unsigned char *)text;
	     *p && !l->cut; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			char esc[8];
			int m = snprintf(esc, sizeof(esc), "\\x%02x", *p);
			put(l, esc, (size_t)m);
		} else {
			put(l, (const char *)p, 1);
		}
	}
	put_tail(l, "\n");
}

/* Formats and writes a text line; conf: also to stderr (log_write_conf). */
static void emit(const char *event, const char *prefix, const char *source,
		 int conf, const char *fmt, va_list ap)
{
	char text[1024];
	struct line l;
	int saved = errno;

	if (!log_start()) {
		errno = saved;
		return;
	}
	if (vsnprintf(text, sizeof(text), fmt, ap) < 0)
		text[0] = '\0';
	format_text(&l, event, prefix, source, text);
	if (conf)
		log_write_conf(l.b, l.n);
	else
		log_write(l.b, l.n);
	errno = saved;
}

/* The warning of file_give_up: on stderr only (the file is gone). */
static void give_up_line(int fd, const char *why)
{
	char text[160];
	struct line l;

	snprintf(text, sizeof(text), "DEADLINE_LOG: the log file's descriptor "
		 "%d %s; logging to stderr", fd, why);
	format_text(&l, "warning", "warning: ", NULL, text);
	write_stderr(l.b, l.n);
}

void dl_log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit("warning", "warning: ", NULL, 0, fmt, ap);
	va_end(ap);
}

void dl_log_conf(enum dl_conf_kind kind, const char *source,
		 const char *fmt, ...)
{
	static const char *const events[] = {
		[DL_CONF_ERROR] = "config_error",
		[DL_CONF_WARNING] = "config_warning",
		[DL_CONF_IGNORED] = "config_ignored",
		[DL_CONF_EXIT] = "config_exit",
	};
	va_list ap;

	va_start(ap, fmt);
	emit(events[kind], kind == DL_CONF_WARNING ? "warning: " : "", source,
	     1, fmt, ap);
	va_end(ap);
}

void dl_log_debugf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit("debug", "debug: ", NULL, 0, fmt, ap);
	va_end(ap);
}

void dl_log_fields(const struct dl_field *f, int nf)
{
	struct line l;
	int saved = errno;

	if (!log_start()) {
		errno = saved;
		return;
	}
	line_head(&l);
	for (int i = 0; i < nf; i++)
		field(&l, &f[i]);
	line_end(&l);
	log_write(l.b, l.n);
	errno = saved;
}
