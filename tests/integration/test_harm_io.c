/* test_harm_io.c - "do no harm": the shim must not change what a program
 * sees from the I/O flags, from calls with bad arguments, or which host
 * rule applies after the program resolved a name.
 *
 * Classes (test name prefixes):
 *
 *   flags_  issue item 3.  A table of MSG_* combinations through read,
 *           readv, recv, recvfrom, recvmsg and write, writev, send, sendto,
 *           sendmsg, on a blocking and on an O_NONBLOCK socket, against
 *           scripted servers (data already there, data after a pause, peer
 *           closed, peer reset, urgent data; a sink, a slow sink).
 *   errno_  issue items 15 and 8.  Invalid arguments and edge cases of the
 *           wrapped calls (close_range, iovcnt, 0-byte reads, bad fds, NULL
 *           buffers, connect/accept/getsockopt/shutdown/dup/fcntl misuse,
 *           poll/select/epoll with bad sizes), and SO_RCVTIMEO/SO_SNDTIMEO
 *           inherited by accept() from the listening socket.
 *   names_  issue item 11.  Host rules keep matching after gethostbyname of
 *           an alias, after numeric lookups, and after many other names.
 *
 * flags_ and errno_ tests run one program (tests/helpers/harm_io) twice:
 * natively, and under the shim with generous deadlines (5 s: the shim
 * tracks and waits on every socket, but nothing fires); every outcome is a
 * "RESULT <case> ..." line of return values, errno names and bytes, with
 * nothing timing-dependent in it (where timing is the point, a coarse
 * bucket such as "<500ms"), and the two runs must print the same lines.
 * Each case runs in its own process with a 3 s watchdog ("HUNG"), so a
 * call the shim keeps blocked shows up as one differing line.  Where the
 * issue states the native behaviour, the native run is checked against it
 * too, so a kernel that behaves otherwise is reported, not papered over.
 *
 * names_ tests need root: each runs the helper in a private mount
 * namespace (unshare -m) with its own /etc/hosts bind-mounted, against
 * silent servers on 127.0.0.5, 127.0.0.6 and 127.0.0.1, with a
 * configuration file of host rules (request_timeout 400 ms) and no
 * default deadline: the rule applying shows as ETIMEDOUT with the rule's
 * name in the shim's log line, no rule as "HUNG" (the helper's 3 s alarm).
 *
 * Servers listen on loopback, on ports the kernel picks; files go to
 * dl_tmpdir(); every run has a hard timeout.
 */
#include "harness.h"

TestSuite(harm_io, .init = dl_setup, .fini = dl_teardown, .timeout = 30);

/* Deadlines that never fire here but make the shim track every TCP
 * socket and wait on it itself. */
static const char *const generous[] = {
	"DEADLINE_REQUEST_TIMEOUT=5s", "DEADLINE_IDLE_TIMEOUT=5s",
	"DEADLINE_FIRST_BYTE_TIMEOUT=5s", NULL,
};

/* ------------------------------------------------------------------ */
/* Plumbing                                                            */
/* ------------------------------------------------------------------ */

/* The scripted servers of "harm_io serve" on addr (NULL: 127.0.0.1); the
 * "PORTS name=port ..." line goes to ports. */
static struct dl_server *harm_server(const char *addr, char *ports,
				     size_t cap)
{
	struct dl_server *s;

	if (addr)
		s = dl_server_start_ex("harm_io",
				       DL_V("serve", "--addr", addr,
					    "--lifetime", "60"),
				       NULL, 0, 0, 1);
	else
		s = dl_server_start_ex("harm_io",
				       DL_V("serve", "--lifetime", "60"), NULL,
				       0, 0, 1);
	cr_assert(dl_server_line(s, "PORTS ", 5000, ports, cap),
		  "harm_io serve printed no PORTS line: %s", s->buf);
	return s;
}

/* The port of scenario name in a PORTS line, as a string. */
static const char *port_of(const char *ports, const char *name)
{
	static char bufs[4][16];
	static int next;
	char *out = bufs[next++ % 4], key[32];
	const char *p;

	dl_fmt(key, sizeof(key), " %s=", name);
	p = strstr(ports, key);
	cr_assert(p, "no port for '%s' in '%s'", name, ports);
	dl_fmt(out, 16, "%d", atoi(p + strlen(key)));
	return out;
}

/* Run harm_io with args (NULL-terminated array). */
static void harm_run(struct dl_result *r, int preload,
		     const char *const *env, long timeout_ms,
		     const char *const *args)
{
	const char *argv[24];
	int n = 0;

	argv[n++] = dl_helper("harm_io");
	for (; *args && n < 23; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	dl_run(r, argv, env, preload, timeout_ms);
}

/* The native run finished, printed RESULT lines, and none of its cases
 * hung, died or failed to set up. */
static void native_sane(const struct dl_result *nat, int want_lines)
{
	char *lines = dl_lines(nat->out, "RESULT ");
	int n = 0;

	for (const char *p = lines; (p = strchr(p, '\n')); p++)
		n++;
	dl_assert_ok(nat, "native run");
	dl_assert_run(nat, n > 0 && (want_lines < 0 || n == want_lines),
		      "native run: %d RESULT lines, expected %d", n,
		      want_lines);
	dl_assert_run(nat, !strstr(lines, " HUNG after:") &&
		      !strstr(lines, " SIGNAL ") && !strstr(lines, " EXIT "),
		      "a case hung, died or failed to set up without the "
		      "shim: the scenario itself is broken");
	free(lines);
}

/* The RESULT lines of the two runs must be identical; on failure the
 * message lists each differing pair. */
/* A non-blocking write takes what the socket buffers hold at that
 * instant: on a slow sink that is a part, as a rule, but now and then
 * (loopback, buffers that grew) natively all of it.  So a native line
 * with the whole count (c1=<n>/) matches a shim line that has a part
 * (c1=partial/) and is the same otherwise.  The reverse (the shim moving
 * everything where the kernel took a part) still differs. */
static int same_but_native_whole(const char *p, size_t lp, const char *q,
				 size_t lq)
{
	char buf[1024];
	const char *c = memmem(p, lp, " c1=", 4), *e;
	int n;

	if (!c || !memmem(p, lp, ":nonblock:", 10))
		return 0;
	for (e = c + 4; e < p + lp && *e >= '0' && *e <= '9'; e++)
		;
	if (e == c + 4 || e >= p + lp || *e != '/')
		return 0;
	n = snprintf(buf, sizeof(buf), "%.*s c1=partial%.*s",
		     (int)(c - p), p, (int)(p + lp - e), e);
	return n > 0 && (size_t)n == lq && !strncmp(buf, q, lq);
}

static void same_results(const struct dl_result *nat,
			 const struct dl_result *shim, const char *what)
{
	char *a = dl_lines(nat->out, "RESULT "), *b = dl_lines(shim->out,
								"RESULT ");
	size_t cap = strlen(a) + strlen(b) + 256, len = 0;
	char *diff = calloc(1, cap);
	const char *p = a, *q = b;
	int ndiff = 0;

	cr_assert(diff, "out of memory");
	while (*p || *q) {
		size_t lp = strcspn(p, "\n"), lq = strcspn(q, "\n");

		if ((lp != lq || strncmp(p, q, lp)) &&
		    !same_but_native_whole(p, lp, q, lq)) {
			len += (size_t)snprintf(diff + len, cap - len,
						"  native: %.*s\n  shim:   %.*s\n",
						(int)lp, p, (int)lq, q);
			ndiff++;
		}
		p += lp + (p[lp] == '\n');
		q += lq + (q[lq] == '\n');
	}
	dl_assert_run(shim, ndiff == 0 && !dl_sanitizer_report(shim),
		      "%s: %d case(s) differ from native:\n%s", what, ndiff,
		      diff);
	free(diff);
	free(a);
	free(b);
}

/* The native run printed a line starting with want (a claim of the issue
 * about what Linux does). */
static void native_says(const struct dl_result *nat, const char *want)
{
	dl_assert_run(nat, dl_line(nat->out, want) != NULL,
		      "native behaviour differs from the issue's claim: no "
		      "line '%s'", want);
}

/* ------------------------------------------------------------------ */
/* flags_: issue item 3                                                */
/* ------------------------------------------------------------------ */

/* The flags table of one side against one scenario in one mode, native
 * and under the shim.  Read side: 30 cases; write side: 17. */
static void flags_table(const char *side, const char *scen, const char *mode,
			const char *const *native_claims)
{
	struct dl_result nat, shim;
	char ports[512];

	dl_require_shim();
	harm_server(NULL, ports, sizeof(ports));
	const char *port = port_of(ports, scen);
	const char *const args[] = { "flags", side, scen, mode, port, NULL };

	harm_run(&nat, 0, NULL, 8000, args);
	native_sane(&nat, !strcmp(side, "read") ? 30 : 17);
	for (; native_claims && *native_claims; native_claims++)
		native_says(&nat, *native_claims);
	harm_run(&shim, 1, generous, 8000, args);
	dl_assert_run(&shim, shim.exited && shim.code == 0,
		      "harm_io flags under the shim did not finish");
	same_results(&nat, &shim, "flags table");
	dl_result_free(&nat);
	dl_result_free(&shim);
}

/* Issue item 3, the reported case: "ABCDEFGHIJ", 300 ms, "KLMNOPQRST";
 * recv(20, MSG_PEEK|MSG_WAITALL) returns all 20 bytes once they are there
 * (the shim returned ABCDEFGHIJABCDEFGHIJ before the second part came),
 * and a normal recv then returns the same 20. */
Test(harm_io, flags_peek_waitall_split)
{
	struct dl_result nat, shim;
	char ports[512];
	static const char want[] =
		"RESULT peekwaitall peek=20/0/ABCDEFGHIJKLMNOPQRST "
		"next=20/0/ABCDEFGHIJKLMNOPQRST";

	dl_require_shim();
	harm_server(NULL, ports, sizeof(ports));
	const char *const args[] = { "peekwaitall", port_of(ports, "split"),
				     NULL };

	harm_run(&nat, 0, NULL, 8000, args);
	native_sane(&nat, 1);
	native_says(&nat, want);
	harm_run(&shim, 1, generous, 8000, args);
	same_results(&nat, &shim, "MSG_PEEK|MSG_WAITALL across a pause");
}

/* Issue item 3: read side, 20 bytes already queued. */
Test(harm_io, flags_read_ready_block)
{
	flags_table("read", "ready", "block",
		    DL_V("RESULT recv:ERRQUEUE:block:ready c1=-1/EAGAIN/",
			 "RESULT recv:TRUNC:block:ready c1=20/0/....",
			 "RESULT recv:OOB:block:ready c1=-1/EINVAL/"));
}

/* Issue item 3: read side, 20 bytes already queued, O_NONBLOCK. */
Test(harm_io, flags_read_ready_nonblock)
{
	flags_table("read", "ready", "nonblock", NULL);
}

/* Issue item 3: read side, the data comes in two parts, 250 ms apart,
 * after a 500 ms pause: blocking calls wait, PEEK|WAITALL sees both
 * parts. */
Test(harm_io, flags_read_late_block)
{
	flags_table("read", "late", "block",
		    DL_V("RESULT recv:PEEK|WAITALL:block:late "
			 "c1=20/0/ABCDEFGHIJKLMNOPQRST",
			 "RESULT recv:ERRQUEUE:block:late c1=-1/EAGAIN/"));
}

/* Issue item 3: read side, data after a pause, O_NONBLOCK: EAGAIN. */
Test(harm_io, flags_read_late_nonblock)
{
	flags_table("read", "late", "nonblock",
		    DL_V("RESULT recv:0:nonblock:late c1=-1/EAGAIN/"));
}

/* Issue item 3: read side, 10 bytes then the peer's FIN. */
Test(harm_io, flags_read_eof_block)
{
	flags_table("read", "eof", "block",
		    DL_V("RESULT recv:WAITALL:block:eof c1=10/0/ABCDEFGHIJ "
			 "c2=0/0/"));
}

/* Issue item 3: read side, 10 bytes then FIN, O_NONBLOCK. */
Test(harm_io, flags_read_eof_nonblock)
{
	flags_table("read", "eof", "nonblock", NULL);
}

/* Issue item 3: read side, 10 bytes then RST (SO_LINGER 0): the data
 * first, then ECONNRESET once, then end of file. */
Test(harm_io, flags_read_reset_block)
{
	flags_table("read", "reset", "block",
		    DL_V("RESULT recv:0:block:reset c1=10/0/ABCDEFGHIJ "
			 "c2=-1/ECONNRESET/",
			 "RESULT recv:WAITALL:block:reset c1=10/0/ABCDEFGHIJ "
			 "c2=-1/ECONNRESET/"));
}

/* Issue item 3: read side, 10 bytes then RST, O_NONBLOCK. */
Test(harm_io, flags_read_reset_nonblock)
{
	flags_table("read", "reset", "nonblock", NULL);
}

/* Issue item 3: MSG_OOB with urgent data pending ("!" between
 * "ABCDEFGHIJ" and "KLMNOPQRSTUVWXYZ0123"): reads stop at the mark,
 * recv(MSG_OOB) returns the urgent byte once, then EINVAL. */
Test(harm_io, flags_read_urgent_block)
{
	flags_table("read", "urgent", "block",
		    DL_V("RESULT recv:OOB:block:urgent c1=1/0/! c2=-1/EINVAL/",
			 "RESULT recv:WAITALL:block:urgent c1=10/0/ABCDEFGHIJ "
			 "c2=20/0/KLMNOPQRSTUVWXYZ0123"));
}

/* Issue item 3: urgent data pending, O_NONBLOCK. */
Test(harm_io, flags_read_urgent_nonblock)
{
	flags_table("read", "urgent", "nonblock", NULL);
}

/* Issue item 3: write side, 20 bytes to a server that reads everything
 * (MSG_MORE is flushed by the FIN; the urgent byte of MSG_OOB is not
 * inline, so the server reads one byte less). */
Test(harm_io, flags_write_sink_block)
{
	flags_table("write", "sink", "block",
		    DL_V("RESULT send:OOB:block:sink c1=20/0/sigpipe=0 "
			 "srv=short(oob)"));
}

/* Issue item 3: write side, 20 bytes to a sink, O_NONBLOCK. */
Test(harm_io, flags_write_sink_nonblock)
{
	flags_table("write", "sink", "nonblock", NULL);
}

/* Issue item 3: write side, 8 MiB to a server that starts reading after
 * 500 ms (with a 64 KiB receive buffer): a blocking write moves it all, a
 * non-blocking one part. */
Test(harm_io, flags_write_slowsink_block)
{
	flags_table("write", "slowsink", "block",
		    DL_V("RESULT write:0:block:slowsink c1=8388608/0/",
			 "RESULT send:DONTWAIT:block:slowsink c1=partial/0/"));
}

/* Issue item 3: write side, 8 MiB to a slow sink, O_NONBLOCK. */
Test(harm_io, flags_write_slowsink_nonblock)
{
	flags_table("write", "slowsink", "nonblock",
		    DL_V("RESULT write:0:nonblock:slowsink c1=partial/0/"));
}

/* Issue item 3: write side after the peer closed: the first write goes
 * out (the peer answers RST), then EPIPE with SIGPIPE, or without it
 * under MSG_NOSIGNAL (MSG_MORE: one call, the bytes stay corked). */
Test(harm_io, flags_write_eof_block)
{
	flags_table("write", "eof", "block",
		    DL_V("RESULT send:0:block:eof c1=20/0/sigpipe=0 "
			 "c2=-1/EPIPE/sigpipe=1",
			 "RESULT send:NOSIGNAL:block:eof c1=20/0/sigpipe=0 "
			 "c2=-1/EPIPE/sigpipe=0"));
}

/* Issue item 3: write side after the peer closed, O_NONBLOCK. */
Test(harm_io, flags_write_eof_nonblock)
{
	flags_table("write", "eof", "nonblock", NULL);
}

/* Issue item 3: write side after the peer reset: ECONNRESET without
 * SIGPIPE, then EPIPE with SIGPIPE unless MSG_NOSIGNAL. */
Test(harm_io, flags_write_reset_block)
{
	flags_table("write", "reset", "block",
		    DL_V("RESULT send:0:block:reset c1=-1/ECONNRESET/sigpipe=0 "
			 "c2=-1/EPIPE/sigpipe=1",
			 "RESULT send:NOSIGNAL:block:reset "
			 "c1=-1/ECONNRESET/sigpipe=0 c2=-1/EPIPE/sigpipe=0"));
}

/* Issue item 3: write side after the peer reset, O_NONBLOCK. */
Test(harm_io, flags_write_reset_nonblock)
{
	flags_table("write", "reset", "nonblock", NULL);
}

/* ------------------------------------------------------------------ */
/* errno_: issue items 15 and 8                                        */
/* ------------------------------------------------------------------ */

/* One group of "harm_io errno", native and under the shim (env). */
static void errno_group(const char *group, const char *const *env,
			const char *const *native_claims)
{
	struct dl_result nat, shim;
	char ports[512];

	dl_require_shim();
	harm_server(NULL, ports, sizeof(ports));
	const char *const args[] = { "errno", group, port_of(ports, "ready"),
				     port_of(ports, "silent"), NULL };

	harm_run(&nat, 0, NULL, 9000, args);
	native_sane(&nat, -1);
	for (; native_claims && *native_claims; native_claims++)
		native_says(&nat, *native_claims);
	harm_run(&shim, 1, env, 9000, args);
	dl_assert_run(&shim, shim.exited && shim.code == 0,
		      "harm_io errno %s under the shim did not finish", group);
	same_results(&nat, &shim, group);
	dl_result_free(&nat);
	dl_result_free(&shim);
}

/* Issue item 15: close_range(10, 5, 0) fails with EINVAL (the shim
 * returned 0); so do undefined flags. */
Test(harm_io, errno_close_range)
{
	errno_group("close_range", generous,
		    DL_V("RESULT close_range_lo_gt_hi close_range(10,5,0)="
			 "-1/EINVAL",
			 "RESULT close_range_bad_flags close_range(fd,fd,1)="
			 "-1/EINVAL"));
}

/* Issue item 15: readv/writev with iovcnt 1100 or -1 on a tracked socket
 * fail with EINVAL (the shim gave EMSGSIZE); recvmsg/sendmsg with
 * msg_iovlen 1100 fail with EMSGSIZE; the queued data stays. */
Test(harm_io, errno_iovcnt)
{
	errno_group("iovcnt", generous,
		    DL_V("RESULT readv_iovcnt_1100 readv(1100)=-1/EINVAL",
			 "RESULT readv_iovcnt_-1 readv(-1)=-1/EINVAL",
			 "RESULT writev_iovcnt_1100 writev(1100)=-1/EINVAL",
			 "RESULT writev_iovcnt_-1 writev(-1)=-1/EINVAL",
			 "RESULT recvmsg_iovlen_1100 "
			 "recvmsg(iovlen=1100)=-1/EMSGSIZE",
			 "RESULT sendmsg_iovlen_1100 "
			 "sendmsg(iovlen=1100)=-1/EMSGSIZE"));
}

/* Issue item 15: read(fd, buf, 0) (and readv of 0 bytes) right after a
 * write, the server never answering, returns 0 at once; the shim blocked
 * until the deadline (2 s here) and aborted the connection. */
Test(harm_io, errno_read_zero_len_after_write)
{
	errno_group("readzero",
		    DL_V("DEADLINE_REQUEST_TIMEOUT=2s", "DEADLINE_IDLE_TIMEOUT=2s",
			 "DEADLINE_FIRST_BYTE_TIMEOUT=2s"),
		    DL_V("RESULT read_0_after_write read(0)=0/0 <500ms "
			 "then-send=1/0",
			 "RESULT readv_0_after_write readv(len0)=0/0 <500ms "
			 "then-send=1/0"));
}

/* Issue item 15: read/write/recv/send on fd -1, on the number of a
 * tracked socket just closed (EBADF), and on a pipe that reused that
 * number (read/write work, recv/send ENOTSOCK). */
Test(harm_io, errno_bad_fds)
{
	errno_group("badfd", generous,
		    DL_V("RESULT fd_-1 read(-1)=-1/EBADF write(-1)=-1/EBADF "
			 "recv(-1)=-1/EBADF send(-1)=-1/EBADF",
			 "RESULT fd_pipe_reused reused=1 read(pipe)=4/0 "
			 "recv(pipe)=-1/ENOTSOCK"));
}

/* Issue item 15: NULL buffer with len > 0 on a tracked socket with data
 * queued: EFAULT, and the data stays queued. */
Test(harm_io, errno_null_buffer)
{
	errno_group("nullbuf", generous,
		    DL_V("RESULT read_null read(NULL,10)=-1/EFAULT "
			 "left=20/0/ABCDEFGHIJKLMNOPQRST",
			 "RESULT write_send_null write(NULL,10)=-1/EFAULT "
			 "send(NULL,10)=-1/EFAULT"));
}

/* Issue item 15: connect with a too-short addrlen (EINVAL) and with an
 * AF_UNIX address on a TCP socket (EAFNOSUPPORT); the socket still
 * connects afterwards. */
Test(harm_io, errno_connect_args)
{
	errno_group("connect", generous,
		    DL_V("RESULT connect_short_addrlen connect(len=8)=-1/EINVAL",
			 "RESULT connect_af_unix "
			 "connect(AF_UNIX)=-1/EAFNOSUPPORT connect(ok)=0/0"));
}

/* Issue item 15: accept on a socket that is not listening: EINVAL. */
Test(harm_io, errno_accept_not_listening)
{
	errno_group("accept", generous,
		    DL_V("RESULT accept_not_listening accept(fresh)=-1/EINVAL "
			 "accept(connected)=-1/EINVAL"));
}

/* Issue item 15: getsockopt(SO_ERROR) with optlen 2, 0, -1, 4, 8. */
Test(harm_io, errno_getsockopt_short_optlen)
{
	errno_group("getsockopt", generous,
		    DL_V("RESULT so_error_short_optlen "
			 "SO_ERROR(len=2)=0/0/len=2/0000aaaaaa"));
}

/* Issue item 15: poll/ppoll with nfds above RLIMIT_NOFILE, select/pselect
 * with nfds -1, epoll_wait with maxevents 0 or -1: EINVAL, while a
 * tracked socket has a deadline pending (the shim slices such waits). */
Test(harm_io, errno_wait_args)
{
	errno_group("waits", generous,
		    DL_V("RESULT poll_nfds_huge poll(nfds=RLIMIT+1)=-1/EINVAL",
			 "RESULT select_nfds_-1 select(-1)=-1/EINVAL",
			 "RESULT epoll_maxevents epoll_ctl(ADD)=0/0 "
			 "epoll_wait(max=0)=-1/EINVAL"));
}

/* A container whose seccomp profile predates epoll_pwait2 refuses it:
 * with EPERM (older Docker defaults) or ENOSYS.  The program's epoll_wait
 * and epoll_pwait must still work under the shim, which slices them with
 * epoll_pwait2 where the kernel has it (it used to fail them with EPERM),
 * and the program's own epoll_pwait2 must fail as it does natively (the
 * shim used to answer it through epoll_pwait). */
Test(harm_io, errno_epoll_pwait2_refused_by_seccomp)
{
	errno_group("seccomp", generous,
		    DL_V("RESULT epoll_pwait2_eperm epoll_ctl(ADD)=0/0 "
			 "epoll_pwait2=-1/EPERM epoll_wait=1/0 epoll_pwait=1/0 "
			 "left=20/0/ABCDEFGHIJKLMNOPQRST",
			 "RESULT epoll_pwait2_enosys epoll_ctl(ADD)=0/0 "
			 "epoll_pwait2=-1/ENOSYS"));
}

/* Issue item 15: dup2(fd, fd) on a tracked socket returns fd, dup3(fd, fd)
 * EINVAL, dup2 onto -1 and from -1 EBADF; the socket keeps its data. */
Test(harm_io, errno_dup)
{
	errno_group("dup", generous,
		    DL_V("RESULT dup2_same_and_bad dup2(fd,fd)==fd=1/0 "
			 "dup3(fd,fd,0)=-1/EINVAL dup2(fd,-1)=-1/EBADF"));
}

/* Issue item 15: F_GETFL/F_SETFL round trip on a tracked socket: F_GETFL
 * equals native at every step, never an O_NONBLOCK the program did not
 * set. */
Test(harm_io, errno_getfl_round_trip)
{
	errno_group("getfl", generous,
		    DL_V("RESULT getfl_round_trip after-connect=0x2 "
			 "after-read=0x2"));
}

/* Issue item 15: shutdown with a bad `how`: EINVAL, the socket unharmed. */
Test(harm_io, errno_shutdown_bad_how)
{
	errno_group("shutdown", generous,
		    DL_V("RESULT shutdown_bad_how shutdown(3)=-1/EINVAL "
			 "shutdown(-1)=-1/EINVAL"));
}

/* Issue item 8: SO_RCVTIMEO/SO_SNDTIMEO set on the listening socket are
 * inherited by the accepted one; a read from a client that sends nothing
 * (a write that fills the buffer of a client that never reads) ends after
 * 300 ms with EAGAIN (a partial count), not at the shim's 3 s deadline. */
static void sotimeo(const char *which, const char *env)
{
	struct dl_result nat, shim;
	char want[96];
	const char *const args[] = { "sotimeo", which, "--ms", "300", NULL };

	dl_require_shim();
	dl_fmt(want, sizeof(want), "RESULT sotimeo-%s opt=300ms r=%s/%s <2000ms",
	       which, !strcmp(which, "rcv") ? "-1" : "partial",
	       !strcmp(which, "rcv") ? "EAGAIN" : "0");
	harm_run(&nat, 0, NULL, 8000, args);
	native_sane(&nat, 1);
	native_says(&nat, want);
	harm_run(&shim, 1, DL_V(env), 8000, args);
	same_results(&nat, &shim, env);
	dl_result_free(&nat);
	dl_result_free(&shim);
}

/* Issue item 8: inherited SO_RCVTIMEO, request deadline 3 s. */
Test(harm_io, errno_rcvtimeo_inherited_request)
{
	sotimeo("rcv", "DEADLINE_REQUEST_TIMEOUT=3s");
}

/* Issue item 8: inherited SO_RCVTIMEO, idle deadline 3 s. */
Test(harm_io, errno_rcvtimeo_inherited_idle)
{
	sotimeo("rcv", "DEADLINE_IDLE_TIMEOUT=3s");
}

/* Issue item 8: inherited SO_SNDTIMEO, request deadline 3 s. */
Test(harm_io, errno_sndtimeo_inherited_request)
{
	sotimeo("snd", "DEADLINE_REQUEST_TIMEOUT=3s");
}

/* Issue item 8: inherited SO_SNDTIMEO, idle deadline 3 s. */
Test(harm_io, errno_sndtimeo_inherited_idle)
{
	sotimeo("snd", "DEADLINE_IDLE_TIMEOUT=3s");
}

/* ------------------------------------------------------------------ */
/* names_: issue item 11                                               */
/* ------------------------------------------------------------------ */

#define FLOOD 2000

/* Rules by host, 400 ms each (the canonical name's 1500 ms, to tell it
 * apart); no default deadline: without a matching rule nothing fires. */
static const char names_conf[] =
	"rules = (\n"
	"  { name = \"alias\"; host = \"alias.test\"; direction = \"outbound\";"
	" request_timeout = \"400ms\"; },\n"
	"  { name = \"canon\"; host = \"canon.test\"; direction = \"outbound\";"
	" request_timeout = \"1500ms\"; },\n"
	"  { name = \"a\"; host = \"a.test\"; direction = \"outbound\";"
	" request_timeout = \"400ms\"; },\n"
	"  { name = \"lh\"; host = \"localhost\"; direction = \"outbound\";"
	" request_timeout = \"400ms\"; }\n"
	");\n";

/* Runs a command in a private mount namespace with the hosts file bound
 * over /etc/hosts, the shim preloaded only into the command itself:
 * sh -c SCRIPT sh HOSTS PRELOAD CMD... */
static const char names_script[] =
	"h=$1; p=$2; shift 2; "
	"mount --bind \"$h\" /etc/hosts || exit 97; "
	"if [ -n \"$p\" ]; then export LD_PRELOAD=\"$p\"; fi; "
	"exec \"$@\"";

struct names_env {
	char hosts[PATH_MAX];
	char conf_env[PATH_MAX + 32];
	char port5[16], port6[16], port1[16];
};

/* Root, unshare and a bind mount over /etc/hosts, or skip the test; then
 * the hosts file, the configuration file and silent servers on
 * 127.0.0.5, 127.0.0.6 and 127.0.0.1. */
static void names_setup(struct names_env *ne)
{
	char conf[PATH_MAX], ports[512];
	struct dl_result r;
	FILE *f;

	dl_require_shim();
	if (geteuid() != 0)
		cr_skip_test("names_ tests need root (a private mount "
			     "namespace with its own /etc/hosts)");
	dl_fmt(ne->hosts, sizeof(ne->hosts), "%s/hosts", dl_tmpdir());
	f = fopen(ne->hosts, "w");
	cr_assert(f, "open %s: %s", ne->hosts, strerror(errno));
	fprintf(f, "127.0.0.1 localhost\n"
		   "127.0.0.5 canon.test alias.test\n"
		   "127.0.0.6 a.test\n");
	for (int i = 0; i < FLOOD; i++)
		fprintf(f, "127.1.%d.%d h%d.test\n", i >> 8, i & 255, i);
	cr_assert(fclose(f) == 0, "write %s: %s", ne->hosts, strerror(errno));

	dl_run(&r, DL_V("unshare", "-m", "sh", "-c", names_script, "sh",
			ne->hosts, "", "sh", "-c",
			"grep -q '^127.0.0.5 canon.test alias.test$' "
			"/etc/hosts"),
	       NULL, 0, 10000);
	if (!(r.exited && r.code == 0))
		cr_skip_test("names_ tests need 'unshare -m' and a bind mount "
			     "over /etc/hosts, which failed here (exit %d): %s",
			     r.code, r.err);
	dl_result_free(&r);

	dl_fmt(conf, sizeof(conf), "%s/names.conf", dl_tmpdir());
	dl_write_file(conf, names_conf);
	dl_fmt(ne->conf_env, sizeof(ne->conf_env), "DEADLINE_CONFIG=%s", conf);

	harm_server("127.0.0.5", ports, sizeof(ports));
	dl_fmt(ne->port5, sizeof(ne->port5), "%s", port_of(ports, "silent"));
	harm_server("127.0.0.6", ports, sizeof(ports));
	dl_fmt(ne->port6, sizeof(ne->port6), "%s", port_of(ports, "silent"));
	harm_server(NULL, ports, sizeof(ports));
	dl_fmt(ne->port1, sizeof(ne->port1), "%s", port_of(ports, "silent"));
}

/* Run cmd (NULL-terminated) in the namespace under the shim. */
static void names_run(struct dl_result *r, const struct names_env *ne,
		      const char *const *cmd, long timeout_ms)
{
	const char *argv[32];
	int n = 0;

	argv[n++] = "unshare";
	argv[n++] = "-m";
	argv[n++] = "sh";
	argv[n++] = "-c";
	argv[n++] = names_script;
	argv[n++] = "sh";
	argv[n++] = ne->hosts;
	argv[n++] = dl_preload();
	for (; *cmd && n < 31; cmd++)
		argv[n++] = *cmd;
	argv[n] = NULL;
	dl_run(r, argv, DL_V(ne->conf_env), 0, timeout_ms);
	dl_assert_run(r, !(r->exited && r->code == 97),
		      "the bind mount over /etc/hosts failed");
}

/* The rule named rule fired: ETIMEDOUT, logged with rule=<rule>. */
static void assert_rule_fired(const struct dl_result *r, const char *rule,
			      const char *what)
{
	char want[64], log[512] = "";
	const char *ev = strstr(r->err, " event=deadline ");

	/* The shim's log line of the expiry, alone. */
	if (ev) {
		const char *b = ev, *e = ev + strcspn(ev, "\n");

		while (b > r->err && b[-1] != '\n')
			b--;
		dl_fmt(log, sizeof(log), "%.*s", (int)(e - b), b);
	}
	dl_fmt(want, sizeof(want), " rule=%s ", rule);
	dl_assert_run(r, !strstr(r->out, "RESULT names HUNG"),
		      "%s: no rule applied (no deadline fired within 3 s); "
		      "expected rule '%s'", what, rule);
	dl_assert_run(r, dl_line(r->out, "RESULT names r=-1/ETIMEDOUT") != NULL,
		      "%s: expected the read to fail with ETIMEDOUT", what);
	dl_assert_run(r, strstr(log, want) &&
		      strstr(log, " phase=request limit_ms=400 "),
		      "%s: expected rule '%s' (request 400 ms) to fire", what,
		      rule);
}

/* Issue item 11(a): gethostbyname("alias.test") of a name listed as an
 * alias ("127.0.0.5 canon.test alias.test"): the rule on alias.test
 * applies (the shim learnt the canonical name last, so canon.test's rule
 * applied). */
Test(harm_io, names_gethostbyname_alias)
{
	struct names_env ne;
	struct dl_result r;

	names_setup(&ne);
	names_run(&r, &ne, DL_V(dl_helper("harm_io"), "names", "gethostbyname",
				"alias.test", ne.port5),
		  8000);
	dl_assert_run(&r, dl_line(r.out, "RESOLVED alias.test 127.0.0.5 "
					 "canon=canon.test"),
		      "the private /etc/hosts was not used");
	assert_rule_fired(&r, "alias", "gethostbyname(alias.test)");
}

/* Issue item 11(a): the same through gethostbyname_r. */
Test(harm_io, names_gethostbyname_r_alias)
{
	struct names_env ne;
	struct dl_result r;

	names_setup(&ne);
	names_run(&r, &ne, DL_V(dl_helper("harm_io"), "names",
				"gethostbyname_r", "alias.test", ne.port5),
		  8000);
	dl_assert_run(&r, dl_line(r.out, "RESOLVED alias.test 127.0.0.5 "
					 "canon=canon.test"),
		      "the private /etc/hosts was not used");
	assert_rule_fired(&r, "alias", "gethostbyname_r(alias.test)");
}

/* Issue item 11(a), the comparison: getaddrinfo("alias.test") applies the
 * alias rule (it does today). */
Test(harm_io, names_getaddrinfo_alias)
{
	struct names_env ne;
	struct dl_result r;

	names_setup(&ne);
	names_run(&r, &ne, DL_V(dl_helper("harm_io"), "names", "getaddrinfo",
				"alias.test", ne.port5),
		  8000);
	dl_assert_run(&r, dl_line(r.out, "RESOLVED alias.test 127.0.0.5"),
		      "the private /etc/hosts was not used");
	assert_rule_fired(&r, "alias", "getaddrinfo(alias.test)");
}

/* Issue item 11(b): getaddrinfo("a.test"), then getaddrinfo("127.0.0.6",
 * AI_NUMERICHOST) and a connect to it: a numeric lookup teaches no name,
 * so the rule on a.test still applies (it stopped applying). */
Test(harm_io, names_numeric_lookup_keeps_name)
{
	struct names_env ne;
	struct dl_result r;

	names_setup(&ne);
	names_run(&r, &ne, DL_V(dl_helper("harm_io"), "names", "getaddrinfo",
				"a.test", ne.port6, "--numeric", "127.0.0.6"),
		  8000);
	dl_assert_run(&r, dl_line(r.out, "NUMERIC 127.0.0.6"),
		      "the numeric lookup did not run");
	assert_rule_fired(&r, "a", "getaddrinfo(a.test) then "
				   "getaddrinfo(127.0.0.6, AI_NUMERICHOST)");
}

/* Issue item 11(b), the python variant: socket.gethostbyname("a.test"),
 * then socket.create_connection((ip, port)), which looks the numeric
 * address up again. */
Test(harm_io, names_python_gethostbyname_then_connect)
{
	static const char py[] =
		"import signal, socket, sys, os\n"
		"def hung(*a):\n"
		"    print('RESULT names HUNG', flush=True)\n"
		"    os._exit(3)\n"
		"signal.signal(signal.SIGALRM, hung)\n"
		"ip = socket.gethostbyname('a.test')\n"
		"assert ip == '127.0.0.6', ip\n"
		"signal.alarm(3)\n"
		"s = socket.create_connection((ip, int(sys.argv[1])))\n"
		"s.sendall(b'hi')\n"
		"try:\n"
		"    s.recv(10)\n"
		"    print('RESULT names r=data', flush=True)\n"
		"except OSError as e:\n"
		"    import errno\n"
		"    print('RESULT names r=-1/' + errno.errorcode[e.errno],"
		" flush=True)\n";
	struct names_env ne;
	struct dl_result r;

	if (access("/usr/bin/python3", X_OK) != 0)
		cr_skip_test("/usr/bin/python3 is not installed");
	names_setup(&ne);
	names_run(&r, &ne, DL_V("/usr/bin/python3", "-c", py, ne.port6), 10000);
	assert_rule_fired(&r, "a", "python: gethostbyname(a.test), then "
				   "create_connection((ip, port))");
}

/* Issue item 11(c): getaddrinfo("localhost"), then 2000 other names with
 * addresses of their own (h0.test .. h1999.test -> 127.1.x.y): the rule
 * on localhost still applies to a connection to 127.0.0.1 made afterwards
 * (an unrelated name sharing its slot evicted it). */
Test(harm_io, names_eviction_keeps_localhost)
{
	struct names_env ne;
	struct dl_result r;
	char flood[16];

	names_setup(&ne);
	dl_fmt(flood, sizeof(flood), "%d", FLOOD);
	names_run(&r, &ne, DL_V(dl_helper("harm_io"), "names", "getaddrinfo",
				"localhost", ne.port1, "--flood", flood),
		  15000);
	dl_assert_run(&r, dl_line(r.out, "FLOOD "),
		      "the %d other names were not resolved", FLOOD);
	assert_rule_fired(&r, "lh", "getaddrinfo(localhost), 2000 other "
				    "names, connect to 127.0.0.1");
}
