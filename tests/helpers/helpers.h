/* helpers.h - small static inline helpers shared by the test programs in
 * tests/helpers/ (stallsrv, dlclient, ctorlib).
 *
 * Everything here is plain libc; nothing knows about the shim.  The
 * programs refuse any address outside 127.0.0.0/8 and ::1, so a typo in a
 * test can never send traffic off the machine.
 */
#ifndef DL_HELPERS_H
#define DL_HELPERS_H

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Time                                                                */
/* ------------------------------------------------------------------ */

/* Monotonic clock in nanoseconds (the shim uses the same clock). */
static inline uint64_t hp_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Whole milliseconds elapsed since t0 (rounded down, so a deadline that
 * fired no earlier than its limit never reads as early). */
static inline long hp_ms_since(uint64_t t0)
{
	return (long)((hp_now_ns() - t0) / 1000000u);
}

/* The first two fields of the schedstat file open on fd (a thread's, from
 * /proc): ns on the CPU and ns runnable but waiting for it.  1 when read,
 * 0 (both left 0) when fd is < 0 or unreadable. */
static inline int hp_schedstat(int fd, uint64_t *run, uint64_t *wait)
{
	char buf[128];
	unsigned long long r, w;
	ssize_t n = fd < 0 ? -1 : pread(fd, buf, sizeof(buf) - 1, 0);

	*run = *wait = 0;
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if (sscanf(buf, "%llu %llu", &r, &w) != 2)
		return 0;
	*run = r;
	*wait = w;
	return 1;
}

/* Sleep for ms milliseconds, resuming after signals. */
static inline void hp_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* ------------------------------------------------------------------ */
/* Errors and arguments                                                */
/* ------------------------------------------------------------------ */

/* Symbolic errno name ("ETIMEDOUT"); "E?" when glibc has none. */
static inline const char *hp_errname(int e)
{
	const char *n = e ? strerrorname_np(e) : "0";

	return n ? n : "E?";
}

/* Print "PROG: message" to stderr and exit 2 (a usage or setup error,
 * distinct from exit 1 = "my checks failed"). */
__attribute__((format(printf, 1, 2), noreturn))
static inline void hp_die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", program_invocation_short_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* Parse a decimal integer in [min, max] or die naming what it was for. */
static inline long long hp_num(const char *s, long long min, long long max,
			       const char *what)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		hp_die("bad %s '%s' (want %lld..%lld)", what, s, min, max);
	return v;
}

/* Decode C-style escapes (\r \n \t \\ \0 \xHH) into a new buffer; the
 * decoded length goes to *len.  Used for --send arguments. */
static inline char *hp_unescape(const char *s, size_t *len)
{
	char *out = malloc(strlen(s) + 1);
	size_t n = 0;

	if (!out)
		hp_die("out of memory");
	while (*s) {
		if (*s != '\\' || !s[1]) {
			out[n++] = *s++;
			continue;
		}
		s++;
		switch (*s) {
		case 'r': out[n++] = '\r'; s++; break;
		case 'n': out[n++] = '\n'; s++; break;
		case 't': out[n++] = '\t'; s++; break;
		case '0': out[n++] = '\0'; s++; break;
		case 'x': {
			char hex[3] = { 0, 0, 0 };

			if (s[1] && s[2]) {
				hex[0] = s[1];
				hex[1] = s[2];
				out[n++] = (char)strtol(hex, NULL, 16);
				s += 3;
			} else {
				out[n++] = 'x';
				s++;
			}
			break;
		}
		default: out[n++] = *s++; break;
		}
	}
	out[n] = '\0';
	*len = n;
	return out;
}

/* ------------------------------------------------------------------ */
/* Output                                                              */
/* ------------------------------------------------------------------ */

/* printf to stdout and flush, under a lock, so that the lines of
 * concurrent threads never interleave and the test reading the pipe sees
 * each line as soon as it is printed.  The lock is one per program (each
 * helper is one file).  Not for a forked child, which may inherit the lock
 * or stdio's own held by another thread: echod, whose children print,
 * keeps its own say() that makes one write(2) per line. */
__attribute__((format(printf, 1, 2)))
static inline void hp_say(const char *fmt, ...)
{
	static pthread_mutex_t hp_say_lock = PTHREAD_MUTEX_INITIALIZER;
	va_list ap;

	pthread_mutex_lock(&hp_say_lock);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
	pthread_mutex_unlock(&hp_say_lock);
}

/* ------------------------------------------------------------------ */
/* Addresses: loopback only                                            */
/* ------------------------------------------------------------------ */

/* Fill ss and len for host:port.  host must be a numeric 127.0.0.0/8 or ::1
 * address; anything else is refused (exit 2), per the test network rule. */
static inline void hp_loopback(const char *host, int port,
			       struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (port < 0 || port > 65535)
		hp_die("bad port %d", port);
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		if ((ntohl(sin->sin_addr.s_addr) >> 24) != 127)
			hp_die("refusing non-loopback address %s", host);
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
		return;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		if (!IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
			hp_die("refusing non-loopback address %s", host);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		return;
	}
	hp_die("not a numeric loopback address: %s", host);
}

/* ------------------------------------------------------------------ */
/* Deterministic data                                                  */
/* ------------------------------------------------------------------ */

/* The byte stream for a seed is a pure function of the byte offset, so a
 * reader can verify any chunking of it: block b (8 bytes) is a 64-bit mix
 * of (seed, b), stored little-endian. */
static inline uint64_t hp_mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static inline unsigned char hp_pattern_byte(uint64_t seed, uint64_t off)
{
	uint64_t v = hp_mix64(seed * 0x100000001b3ull ^ (off >> 3));

	return (unsigned char)(v >> ((off & 7) * 8));
}

/* Fill buf with n bytes of the stream for seed, starting at offset off. */
static inline void hp_pattern_fill(uint64_t seed, uint64_t off, void *buf,
				   size_t n)
{
	unsigned char *p = buf;
	size_t i = 0;

	while (i < n && ((off + i) & 7))
		p[i] = hp_pattern_byte(seed, off + i), i++;
	while (n - i >= 8) {
		uint64_t v = hp_mix64(seed * 0x100000001b3ull ^ ((off + i) >> 3));

		for (int k = 0; k < 8; k++)
			p[i + (size_t)k] = (unsigned char)(v >> (k * 8));
		i += 8;
	}
	while (i < n)
		p[i] = hp_pattern_byte(seed, off + i), i++;
}

/* Index of the first byte of buf that differs from the stream, or -1. */
static inline long long hp_pattern_check(uint64_t seed, uint64_t off,
					 const void *buf, size_t n)
{
	unsigned char tmp[4096];
	const unsigned char *p = buf;
	size_t done = 0;

	while (done < n) {
		size_t k = n - done < sizeof(tmp) ? n - done : sizeof(tmp);

		hp_pattern_fill(seed, off + done, tmp, k);
		if (memcmp(tmp, p + done, k)) {
			for (size_t i = 0; i < k; i++)
				if (tmp[i] != p[done + i])
					return (long long)(done + i);
		}
		done += k;
	}
	return -1;
}

/* ------------------------------------------------------------------ */
/* I/O                                                                 */
/* ------------------------------------------------------------------ */

/* send() everything (MSG_NOSIGNAL); returns 0, or -1 with errno set.
 * EINTR is not retried: callers that test signals want to see it. */
static inline int hp_send_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* read() exactly n bytes from a blocking socket, retrying EINTR; returns
 * 0, or -1 with errno set (EPROTO at an early end-of-file). */
static inline int hp_read_full(int fd, void *buf, size_t n)
{
	char *p = buf;
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, p + got, n - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0) {
			errno = EPROTO;
			return -1;
		}
		got += (size_t)r;
	}
	return 0;
}

/* The local port of a bound socket (the kernel picked it: we bind 0). */
static inline int hp_bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		hp_die("getsockname: %s", strerror(errno));
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

#endif
