/* Unit tests: per-connection deadline transitions (shim/conn.c). */
#include <criterion/criterion.h>
#include <string.h>

#include "conn.h"

#define MS 1000000ll

static int64_t fake_now;
static int clock_calls;

static int64_t fake_clock(void)
{
	clock_calls++;
	return fake_now;
}

static struct dl_conn c;
static struct dl_limits lim;

static void setup(void)
{
	memset(&c, 0, sizeof(c));	/* not filed */
	memset(&lim, 0, sizeof(lim));
	fake_now = 1000 * MS;
	clock_calls = 0;
}

TestSuite(conn, .init = setup);

Test(conn, outbound_start_arms_connect_and_request)
{
	enum dl_phase ph;

	lim.ms[DL_PH_CONNECT] = 100;
	lim.ms[DL_PH_REQUEST] = 500;
	conn_start(&c, &lim, 0, 1, fake_now);
	cr_assert(conn_state(&c) & CONN_TRACKED);
	cr_assert(conn_state(&c) & CONN_CONNECTING);
	cr_assert_eq(conn_deadline(&c, &ph), fake_now + 100 * MS);
	cr_assert_eq(ph, DL_PH_CONNECT);
	conn_connected(&c);
	cr_assert_eq(conn_deadline(&c, &ph), fake_now + 500 * MS);
	cr_assert_eq(ph, DL_PH_REQUEST);
}

Test(conn, no_limits_means_no_deadline)
{
	conn_start(&c, &lim, 0, 1, fake_now);
	cr_assert_eq(conn_deadline(&c, 0), 0);
}

Test(conn, first_write_completes_connect_without_restarting_request)
{
	lim.ms[DL_PH_REQUEST] = 500;
	conn_start(&c, &lim, 0, 1, fake_now);
	fake_now += 200 * MS;
	conn_on_write(&c, &lim, 10, fake_clock);
	cr_assert_not(conn_state(&c) & CONN_CONNECTING);
	cr_assert_eq(conn_deadline(&c, 0), 1000 * MS + 500 * MS);
	cr_assert_eq(clock_calls, 0, "no clock read when nothing to compute");
}

Test(conn, write_after_read_starts_new_request)
{
	lim.ms[DL_PH_REQUEST] = 500;
	conn_start(&c, &lim, 0, 0, fake_now);
	conn_on_write(&c, &lim, 5, fake_clock);
	conn_on_read(&c, &lim, 5, fake_clock);
	fake_now += 300 * MS;
	conn_on_write(&c, &lim, 5, fake_clock); /* keep-alive: next request */
	cr_assert_eq(conn_deadline(&c, 0), fake_now + 500 * MS);
	/* more writes in the same turn do not restart it */
	fake_now += 100 * MS;
	conn_on_write(&c, &lim, 5, fake_clock);
	cr_assert_eq(conn_deadline(&c, 0), fake_now - 100 * MS + 500 * MS);
}

Test(conn, finished_exchange_meets_request_until_next_write)
{
	lim.ms[DL_PH_REQUEST] = 500;
	lim.ms[DL_PH_IDLE] = 200;
	conn_start(&c, &lim, 0, 0, fake_now);
	__atomic_fetch_or(&c.st, CONN_H1 | CONN_EPOLLED, __ATOMIC_RELAXED);
	conn_on_write(&c, &lim, 5, fake_clock);
	conn_on_read(&c, &lim, 5, fake_clock);
	conn_exchange_over(&c);
	/* Idle (an event loop's socket) still runs; request does not. */
	cr_assert_eq(conn_deadline(&c, 0), fake_now + 200 * MS);
	cr_assert_eq(c.dl[DL_PH_REQUEST], 0);
	fake_now += 1000 * MS;
	/* The next request: its deadline must be filed again (returns 1). */
	cr_assert_eq(conn_on_write(&c, &lim, 5, fake_clock), 1);
	cr_assert_eq(c.dl[DL_PH_REQUEST], fake_now + 500 * MS);
	/* A new file on the number: nothing of the old one's following;
	 * an accepted one is never followed (exchange.c). */
	conn_start(&c, &lim, 0, 0, fake_now);
	cr_assert_not(conn_state(&c) & (CONN_H1 | CONN_H1OFF));
	conn_start(&c, &lim, 1, 0, fake_now);
	cr_assert_eq(conn_state(&c) & (CONN_H1 | CONN_H1OFF), CONN_H1OFF);
}

Test(conn, first_byte_runs_from_last_write_to_first_read)
{
	enum dl_phase ph;

	lim.ms[DL_PH_FIRST_BYTE] = 200;
	conn_start(&c, &lim, 0, 0, fake_now);
	cr_assert_eq(conn_deadline(&c, 0), 0);
	cr_assert_eq(conn_on_write(&c, &lim, 3, fake_clock), 1,
		     "arming first byte moves the deadline earlier");
	fake_now += 50 * MS;
	conn_on_write(&c, &lim, 3, fake_clock); /* last byte counts */
	cr_assert_eq(conn_deadline(&c, &ph), fake_now + 200 * MS);
	cr_assert_eq(ph, DL_PH_FIRST_BYTE);
	conn_on_read(&c, &lim, 1, fake_clock);
	cr_assert_eq(conn_deadline(&c, 0), 0);
}

Test(conn, zero_byte_moves_change_nothing)
{
	lim.ms[DL_PH_FIRST_BYTE] = 200;
	conn_start(&c, &lim, 0, 0, fake_now);
	cr_assert_eq(conn_on_write(&c, &lim, 0, fake_clock), 0);
	cr_assert_eq(conn_on_read(&c, &lim, -1, fake_clock), 0);
	cr_assert_eq(conn_deadline(&c, 0), 0);
}

Test(conn, idle_armed_by_wait_and_disarmed_by_bytes)
{
	lim.ms[DL_PH_IDLE] = 300;
	conn_start(&c, &lim, 0, 0, fake_now);
	cr_assert_eq(conn_on_wait(&c, &lim, fake_now), 1);
	/* a second wait does not push it further */
	cr_assert_eq(conn_on_wait(&c, &lim, fake_now + 100 * MS), 0);
	cr_assert_eq(conn_deadline(&c, 0), fake_now + 300 * MS);
	conn_on_read(&c, &lim, 1, fake_clock);
	cr_assert_eq(conn_deadline(&c, 0), 0);
	cr_assert_eq(conn_on_wait(&c, &lim, fake_now + 150 * MS), 1);
	cr_assert_eq(conn_deadline(&c, 0), fake_now + 450 * MS);
}

Test(conn, inbound_mirrors_roles)
{
	enum dl_phase ph;

	lim.ms[DL_PH_FIRST_BYTE] = 100;
	lim.ms[DL_PH_REQUEST] = 1000;
	conn_start(&c, &lim, 1, 0, fake_now);
	cr_assert(conn_state(&c) & CONN_INBOUND);
	/* the client owes its first byte */
	cr_assert_eq(conn_deadline(&c, &ph), fake_now + 100 * MS);
	cr_assert_eq(ph, DL_PH_FIRST_BYTE);
	conn_on_read(&c, &lim, 10, fake_clock);
	cr_assert_eq(conn_deadline(&c, &ph), fake_now + 1000 * MS);
	/* the daemon answers: now it waits for the next request's byte */
	fake_now += 400 * MS;
	conn_on_write(&c, &lim, 10, fake_clock);
	cr_assert_eq(conn_deadline(&c, &ph), fake_now + 100 * MS);
	cr_assert_eq(ph, DL_PH_FIRST_BYTE);
	/* read after write: a new inbound request */
	fake_now += 50 * MS;
	conn_on_read(&c, &lim, 10, fake_clock);
	cr_assert_eq(conn_deadline(&c, &ph), fake_now + 1000 * MS);
	cr_assert_eq(ph, DL_PH_REQUEST);
}

Test(conn, expire_once_and_remember_phase)
{
	lim.ms[DL_PH_IDLE] = 1;
	conn_start(&c, &lim, 0, 0, fake_now);
	cr_assert_eq(conn_expire(&c, DL_PH_IDLE), 1);
	cr_assert_eq(conn_expire(&c, DL_PH_REQUEST), 0);
	cr_assert_eq(conn_expired_phase(&c), DL_PH_IDLE);
	cr_assert(conn_state(&c) & CONN_EXPIRED);
}

Test(conn, restart_clears_previous_state)
{
	lim.ms[DL_PH_CONNECT] = 100;
	conn_start(&c, &lim, 1, 0, fake_now);
	conn_expire(&c, DL_PH_CONNECT);
	conn_start(&c, &lim, 0, 1, fake_now);
	cr_assert_not(conn_state(&c) & (CONN_EXPIRED | CONN_INBOUND));
	cr_assert(conn_state(&c) & CONN_CONNECTING);
}

Test(conn, epolled_socket_restarts_idle_when_bytes_move)
{
	lim.ms[DL_PH_IDLE] = 300;
	conn_start(&c, &lim, 0, 0, fake_now);
	__atomic_fetch_or(&c.st, CONN_EPOLLED, __ATOMIC_RELAXED);
	conn_on_wait(&c, &lim, fake_now);
	fake_now += 200 * MS;
	conn_on_read(&c, &lim, 1, fake_clock);
	/* registered in an epoll set: always waited on, so idle runs on */
	cr_assert_eq(conn_deadline(&c, 0), fake_now + 300 * MS);
}

static int met_ph[8], met_n;
static int64_t met_dl[8];

static void record_met(const struct dl_conn *cc, enum dl_phase ph, int64_t dl)
{
	(void)cc;
	if (met_n < 8) {
		met_ph[met_n] = ph;
		met_dl[met_n++] = dl;
	}
}

Test(conn, met_hook_sees_each_met_phase_once)
{
	lim.ms[DL_PH_CONNECT] = 100;
	lim.ms[DL_PH_FIRST_BYTE] = 200;
	lim.ms[DL_PH_REQUEST] = 500;
	met_n = 0;
	conn_met_hook = record_met;
	conn_start(&c, &lim, 0, 1, fake_now);
	conn_connected(&c);
	conn_connected(&c); /* already met: nothing */
	conn_on_write(&c, &lim, 5, fake_clock);
	fake_now += 10 * MS;
	conn_on_read(&c, &lim, 5, fake_clock);
	conn_on_read(&c, &lim, 5, fake_clock); /* first byte already met */
	conn_exchange_over(&c);
	conn_exchange_over(&c);
	conn_met_hook = 0;
	cr_assert_eq(met_n, 3, "%d phases met", met_n);
	cr_assert(met_ph[0] == DL_PH_CONNECT &&
		  met_dl[0] == fake_now - 10 * MS + 100 * MS);
	cr_assert(met_ph[1] == DL_PH_FIRST_BYTE &&
		  met_dl[1] == fake_now - 10 * MS + 200 * MS);
	cr_assert(met_ph[2] == DL_PH_REQUEST &&
		  met_dl[2] == fake_now - 10 * MS + 500 * MS);
}

/* Deadlines that move later are only stored: a connection filed in the
 * deadline heap is not re-filed (the heap catches up when its key comes
 * due); one not filed, or a deadline armed earlier than the others, is. */
Test(conn, later_moves_need_no_refile_earlier_ones_do)
{
	lim.ms[DL_PH_IDLE] = 300;
	lim.ms[DL_PH_REQUEST] = 1000;
	lim.ms[DL_PH_FIRST_BYTE] = 100;
	conn_start(&c, &lim, 0, 0, fake_now);
	__atomic_fetch_or(&c.st, CONN_EPOLLED, __ATOMIC_RELAXED);
	cr_assert_eq(conn_on_write(&c, &lim, 1, fake_clock), 1,
		     "not filed yet");
	conn_set_heap_idx(&c, 0); /* filed (under its earliest deadline, first byte) */
	fake_now += 10 * MS;
	cr_assert_eq(conn_on_write(&c, &lim, 1, fake_clock), 0,
		     "idle and first byte move later");
	cr_assert_eq(c.dl[DL_PH_IDLE], fake_now + 300 * MS);
	cr_assert_eq(c.dl[DL_PH_FIRST_BYTE], fake_now + 100 * MS);
	conn_on_read(&c, &lim, 1, fake_clock); /* first byte met */
	cr_assert_eq(c.dl[DL_PH_FIRST_BYTE], 0);
	fake_now += 10 * MS;
	/* first byte armed again, before idle and request: re-file */
	cr_assert_eq(conn_on_write(&c, &lim, 1, fake_clock), 1);
	lim.ms[DL_PH_FIRST_BYTE] = 5000;
	conn_on_read(&c, &lim, 1, fake_clock);
	/* armed again after every other deadline: no re-filing */
	cr_assert_eq(conn_on_write(&c, &lim, 1, fake_clock), 0);
}

Test(conn, deadline_is_the_earliest_armed)
{
	enum dl_phase ph;

	c.dl[DL_PH_REQUEST] = 500;
	c.dl[DL_PH_IDLE] = 700;
	cr_assert_eq(conn_deadline(&c, &ph), 500);
	cr_assert_eq(ph, DL_PH_REQUEST);
	c.dl[DL_PH_CONNECT] = 500; /* ties: the first phase */
	cr_assert_eq(conn_deadline(&c, &ph), 500);
	cr_assert_eq(ph, DL_PH_CONNECT);
	c.dl[DL_PH_FIRST_BYTE] = 1;
	cr_assert_eq(conn_deadline(&c, &ph), 1);
	cr_assert_eq(ph, DL_PH_FIRST_BYTE);
}
