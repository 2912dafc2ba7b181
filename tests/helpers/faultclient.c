/* faultclient - echo clients for the fault-injection checks
 * (tests/realworld/test_faults.c), against echod.
 *
 *   faultclient repro HOST PORT [--conns 200] [--threads 20] [--rounds 6]
 *                               [--size 24]
 *       --conns connections, taken in turn by --threads threads.  On each
 *       connection: --rounds times, write one --size byte line (write()
 *       until all of it is out) and read its echo (read() until --size
 *       bytes), comparing the bytes; the first failure ends the
 *       connection.  Every connection makes the same calls whatever its
 *       number, so that the faults it meets depend on the seed and on its
 *       number only, never on which thread got it.  Prints
 *         OUTCOMES conns=<n> rounds=<total rounds done> <what>=<count>...
 *       where <what> is "ok" or how a connection ended: "<ERRNO>@w",
 *       "<ERRNO>@r" (a failing write/read), "EOF@r", "MISMATCH", sorted by
 *       name.  Exit 0 unless a connection could not be made or an echo
 *       came back different (1).
 *
 *   faultclient pair --a HOST --aport N [--b HOST --bport M] [--rounds 100]
 *                    [--asize 2000] [--bsize 32]
 *       one connection to A and (optionally) one to B, both open at once;
 *       --rounds rounds of: a round on B (while B works), then one on A.
 *       A round writes a line and reads its echo, timed.  Prints
 *         A ok=<rounds ok> rounds=<n> bytes=<echoed> sum=<fnv-1a 64 hex>
 *           short_r=<reads that got less than asked> short_w=<same, writes>
 *           rtt_med_us=<median> rtt_p90_us=<90th percentile> rtt_max_us=<max>
 *         B ok=<rounds ok> err=<ERRNO of the failure, or none> short_r=..
 *           short_w=.. rtt_min_us=.. rtt_max_us=..
 *       The lines' bytes are the same in every run, so sum is too.  Exit 0
 *       when every A round came back intact, else 1.
 */
#include "helpers.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

static struct {
	const char *host, *bhost;
	int port, bport;
	long conns, threads, rounds;
	long size, bsize;
} opt = {
	.conns = 200,
	.threads = 20,
	.rounds = 6,
	.size = 24,
	.bsize = 32,
};

static void usage(void)
{
	fprintf(stderr,
		"usage: faultclient repro HOST PORT [--conns N] [--threads T] "
		"[--rounds R] [--size S]\n"
		"       faultclient pair --a HOST --aport N [--b HOST --bport M] "
		"[--rounds R] [--asize S] [--bsize S]\n");
	exit(2);
}

/* The line for (conn, round): size - 1 letters and '\n', the same in
 * every run. */
static void make_line(char *buf, long size, uint64_t conn, uint64_t round)
{
	for (long j = 0; j < size - 1; j++)
		buf[j] = (char)('a' + hp_mix64(conn << 40 ^ round << 20 ^
					       (uint64_t)j) % 26);
	buf[size - 1] = '\n';
}

/* write() until n bytes are out; counts the calls that moved less than
 * asked.  0, or -1 with errno. */
static int write_all(int fd, const char *p, size_t n, long *shorts)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0)
			return -1;
		if ((size_t)w < n)
			(*shorts)++;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* read() until n bytes are in.  0, or -1 with errno (0 = end of file). */
static int read_n(int fd, char *p, size_t n, long *shorts)
{
	while (n) {
		ssize_t r = read(fd, p, n);

		if (r <= 0) {
			if (r == 0)
				errno = 0;
			return -1;
		}
		if ((size_t)r < n)
			(*shorts)++;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int connect_to(const char *host, int port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	hp_loopback(host, port, &ss, &len);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		hp_die("socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* ------------------------------------------------------------- repro */

#define MAX_OUTCOMES 32

static struct {
	char name[32];
	long n;
} outcomes[MAX_OUTCOMES];
static int noutcomes;
static long total_rounds;
static int setup_failed;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_long next_conn;

static void record(const char *what, long rounds)
{
	int i;

	pthread_mutex_lock(&out_mu);
	total_rounds += rounds;
	for (i = 0; i < noutcomes; i++)
		if (!strcmp(outcomes[i].name, what))
			break;
	if (i == noutcomes && noutcomes < MAX_OUTCOMES)
		snprintf(outcomes[noutcomes++].name, sizeof(outcomes[0].name),
			 "%s", what);
	if (i < MAX_OUTCOMES)
		outcomes[i].n++;
	pthread_mutex_unlock(&out_mu);
}

static void *repro_thread(void *unused)
{
	char *line = malloc((size_t)opt.size), *back = malloc((size_t)opt.size);

	(void)unused;
	if (!line || !back)
		hp_die("out of memory");
	for (;;) {
		long c = atomic_fetch_add(&next_conn, 1), r;
		char what[32] = "ok";
		long shorts = 0;
		int fd;

		if (c >= opt.conns)
			break;
		fd = connect_to(opt.host, opt.port);
		if (fd < 0) {
			fprintf(stderr, "faultclient: connect: %s\n",
				strerror(errno));
			pthread_mutex_lock(&out_mu);
			setup_failed = 1;
			pthread_mutex_unlock(&out_mu);
			record("CONNECT", 0);
			continue;
		}
		for (r = 0; r < opt.rounds; r++) {
			/* The content depends on the round only: any thread
			 * may hold any connection number. */
			make_line(line, opt.size, 1, (uint64_t)r);
			if (write_all(fd, line, (size_t)opt.size, &shorts) < 0) {
				snprintf(what, sizeof(what), "%s@w",
					 hp_errname(errno));
				break;
			}
			if (read_n(fd, back, (size_t)opt.size, &shorts) < 0) {
				snprintf(what, sizeof(what), "%s@r",
					 errno ? hp_errname(errno) : "EOF");
				break;
			}
			if (memcmp(line, back, (size_t)opt.size)) {
				snprintf(what, sizeof(what), "MISMATCH");
				break;
			}
		}
		close(fd);
		record(what, r);
	}
	free(line);
	free(back);
	return NULL;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const char *)a), ((const char *)b));
}

static int cmd_repro(void)
{
	pthread_t *t = calloc((size_t)opt.threads, sizeof(*t));
	int bad = 0;

	if (!t)
		hp_die("out of memory");
	for (long i = 0; i < opt.threads; i++)
		if (pthread_create(&t[i], NULL, repro_thread, NULL))
			hp_die("pthread_create failed");
	for (long i = 0; i < opt.threads; i++)
		pthread_join(t[i], NULL);
	free(t);
	qsort(outcomes, (size_t)noutcomes, sizeof(outcomes[0]), by_name);
	printf("OUTCOMES conns=%ld rounds=%ld", opt.conns, total_rounds);
	for (int i = 0; i < noutcomes; i++) {
		printf(" %s=%ld", outcomes[i].name, outcomes[i].n);
		if (!strcmp(outcomes[i].name, "MISMATCH"))
			bad = 1;
	}
	printf("\n");
	fflush(stdout);
	return bad || setup_failed;
}

/* -------------------------------------------------------------- pair */

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

/* One timed round on fd; returns 0 (and *us), or -1 with errno. */
static int round_trip(int fd, const char *line, char *back, long size,
		      long *us, long *sr, long *sw)
{
	uint64_t t0 = hp_now_ns();

	if (write_all(fd, line, (size_t)size, sw) < 0 ||
	    read_n(fd, back, (size_t)size, sr) < 0)
		return -1;
	*us = (long)((hp_now_ns() - t0) / 1000u);
	return 0;
}

static int cmd_pair(void)
{
	long *rtt = calloc((size_t)opt.rounds + 1, sizeof(long));
	char *line = malloc((size_t)(opt.size > opt.bsize ? opt.size : opt.bsize));
	char *back = malloc((size_t)(opt.size > opt.bsize ? opt.size : opt.bsize));
	long a_ok = 0, a_sr = 0, a_sw = 0, b_ok = 0, b_sr = 0, b_sw = 0;
	long b_min = -1, b_max = -1;
	unsigned long long bytes = 0;
	uint64_t sum = 1469598103934665603ull;
	const char *b_err = "none";
	int fa, fb = -1;

	if (!rtt || !line || !back)
		hp_die("out of memory");
	fa = connect_to(opt.host, opt.port);
	if (fa < 0)
		hp_die("connect A %s:%d: %s", opt.host, opt.port,
		       strerror(errno));
	if (opt.bhost) {
		fb = connect_to(opt.bhost, opt.bport);
		if (fb < 0)
			b_err = hp_errname(errno);
	}
	for (long r = 0; r < opt.rounds; r++) {
		long us;

		if (fb >= 0) {
			make_line(line, opt.bsize, 2, (uint64_t)r);
			if (round_trip(fb, line, back, opt.bsize, &us, &b_sr,
				       &b_sw) < 0) {
				b_err = errno ? hp_errname(errno) : "EOF";
				close(fb);
				fb = -1;
			} else if (memcmp(line, back, (size_t)opt.bsize)) {
				b_err = "MISMATCH";
				close(fb);
				fb = -1;
			} else {
				b_ok++;
				if (b_min < 0 || us < b_min)
					b_min = us;
				if (us > b_max)
					b_max = us;
			}
		}
		make_line(line, opt.size, 1, (uint64_t)r);
		if (round_trip(fa, line, back, opt.size, &us, &a_sr, &a_sw) < 0) {
			fprintf(stderr, "faultclient: A round %ld: %s\n", r,
				errno ? hp_errname(errno) : "EOF");
			break;
		}
		for (long j = 0; j < opt.size; j++) {
			sum ^= (unsigned char)back[j];
			sum *= 1099511628211ull;
		}
		bytes += (unsigned long long)opt.size;
		if (memcmp(line, back, (size_t)opt.size)) {
			fprintf(stderr, "faultclient: A round %ld: echo differs\n",
				r);
			break;
		}
		rtt[a_ok++] = us;
	}
	qsort(rtt, (size_t)a_ok, sizeof(long), cmp_long);
	printf("A ok=%ld rounds=%ld bytes=%llu sum=%016llx short_r=%ld "
	       "short_w=%ld rtt_med_us=%ld rtt_p90_us=%ld rtt_max_us=%ld\n",
	       a_ok, opt.rounds, bytes, (unsigned long long)sum, a_sr, a_sw,
	       a_ok ? rtt[a_ok / 2] : -1L, a_ok ? rtt[a_ok * 9 / 10] : -1L,
	       a_ok ? rtt[a_ok - 1] : -1L);
	if (opt.bhost)
		printf("B ok=%ld err=%s short_r=%ld short_w=%ld rtt_min_us=%ld "
		       "rtt_max_us=%ld\n", b_ok, b_err, b_sr, b_sw, b_min,
		       b_max);
	fflush(stdout);
	close(fa);
	if (fb >= 0)
		close(fb);
	free(rtt);
	free(line);
	free(back);
	return a_ok == opt.rounds ? 0 : 1;
}

/* -------------------------------------------------------------- main */

int main(int argc, char **argv)
{
	int i = 2, pair;

	signal(SIGPIPE, SIG_IGN);
	if (argc < 2)
		usage();
	pair = !strcmp(argv[1], "pair");
	if (!pair && strcmp(argv[1], "repro"))
		usage();
	if (!pair) {
		if (argc < 4)
			usage();
		opt.host = argv[2];
		opt.port = (int)hp_num(argv[3], 1, 65535, "port");
		i = 4;
	} else {
		opt.rounds = 100;
		opt.size = 2000;
	}
	for (; i < argc; i += 2) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			usage();
		if (!strcmp(a, "--conns"))
			opt.conns = (long)hp_num(v, 1, 100000, a);
		else if (!strcmp(a, "--threads"))
			opt.threads = (long)hp_num(v, 1, 1000, a);
		else if (!strcmp(a, "--rounds"))
			opt.rounds = (long)hp_num(v, 1, 1000000, a);
		else if (!strcmp(a, "--size") || !strcmp(a, "--asize"))
			opt.size = (long)hp_num(v, 2, 4000, a); /* echod: 4 KiB lines */
		else if (!strcmp(a, "--bsize"))
			opt.bsize = (long)hp_num(v, 2, 4000, a);
		else if (pair && !strcmp(a, "--a"))
			opt.host = v;
		else if (pair && !strcmp(a, "--aport"))
			opt.port = (int)hp_num(v, 1, 65535, a);
		else if (pair && !strcmp(a, "--b"))
			opt.bhost = v;
		else if (pair && !strcmp(a, "--bport"))
			opt.bport = (int)hp_num(v, 1, 65535, a);
		else
			usage();
	}
	if (pair && (!opt.host || !opt.port || (opt.bhost && !opt.bport)))
		usage();
	return pair ? cmd_pair() : cmd_repro();
}
