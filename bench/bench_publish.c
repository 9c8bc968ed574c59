/*
 * The publisher thread: pacing (--rate), the window (--rate 0), the
 * accounting of what is expected; the back ends do the talking.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "bench_publish.h"
#include "bench_run.h"

#define MAX_POLL 64

static pthread_t thread;
static const struct pub_backend *be;

void publish_refused(uint64_t seq)
{
	uint64_t want = run.key_ready[seq % run.o.keys];

	__atomic_add_fetch(&run.publish_failed, 1, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&run.expected, want, __ATOMIC_RELAXED);
	/* It will never complete by deliveries: free its window place. */
	__atomic_add_fetch(&run.complete, 1, __ATOMIC_RELAXED);
}

/* Messages handed over whose deliveries are not all in. */
static uint64_t outstanding(void)
{
	return __atomic_load_n(&run.published, __ATOMIC_RELAXED) -
	       __atomic_load_n(&run.complete, __ATOMIC_SEQ_CST);
}

/* Wait until deadline_ns for the back end's sockets or the window's
 * eventfd, and handle what came. */
static void wait_some(uint64_t deadline_ns)
{
	struct pollfd fds[MAX_POLL + 1];
	uint64_t now = now_ns(), left = deadline_ns > now ? deadline_ns - now : 0, junk;
	struct timespec ts = { (time_t)(left / 1000000000u), (long)(left % 1000000000u) };
	int n;

	fds[0].fd = run.wake_fd;
	fds[0].events = POLLIN;
	n = be->poll_fds(fds + 1, MAX_POLL);
	if (ppoll(fds, (nfds_t)n + 1, &ts, NULL) <= 0)
		return;
	if (fds[0].revents & POLLIN) {
		if (read(run.wake_fd, &junk, sizeof(junk)) < 0) {
			/* EAGAIN: another wake-up took it already. */
		}
	}
	be->on_poll(fds + 1, n);
}

/* Wait until message j may go; false to give up (the window stayed full
 * and no delivery at all came for --drain seconds: they are being lost). */
static bool wait_turn(uint64_t j, uint64_t t0)
{
	uint64_t stall_ns = (uint64_t)(run.o.drain_s * 1e9), since = now_ns();
	uint64_t got = __atomic_load_n(&run.received, __ATOMIC_RELAXED);

	for (;;) {
		uint64_t now = now_ns(), deadline = now + 10000000;
		uint64_t due = run.o.rate > 0 ? t0 + (uint64_t)((double)j * 1e9 / run.o.rate)
					      : now;
		bool window_ok = run.o.rate > 0 || outstanding() < run.o.window;
		bool send_ok = be->can_send();

		if (window_ok && send_ok && now >= due)
			return true;
		/* A message completes only with its last delivery: with many
		 * sockets that can take long while deliveries flow. */
		if (window_ok || __atomic_load_n(&run.received, __ATOMIC_RELAXED) != got) {
			got = __atomic_load_n(&run.received, __ATOMIC_RELAXED);
			since = now;
		} else if (now - since > stall_ns) {
			fprintf(stderr, "myxid-bench: no delivery for %.1f s with the window "
				"full: publishing stopped after %llu messages\n",
				run.o.drain_s, (unsigned long long)j);
			return false;
		}
		/* Ask to be woken by the next completed message, then look again
		 * before sleeping, so that a completion in between is not missed. */
		__atomic_store_n(&run.publisher_waiting, true, __ATOMIC_SEQ_CST);
		if (!window_ok && outstanding() < run.o.window) {
			__atomic_store_n(&run.publisher_waiting, false, __ATOMIC_RELAXED);
			continue;
		}
		if (window_ok && send_ok && due < deadline)
			deadline = due;
		wait_some(deadline);
		__atomic_store_n(&run.publisher_waiting, false, __ATOMIC_RELAXED);
	}
}

static void *publisher_main(void *arg)
{
	char err[256], key[256];
	uint64_t t0;

	if (be->open(err, sizeof(err)) != 0) {
		fprintf(stderr, "myxid-bench: publisher: %s\n", err);
		__atomic_store_n(&run.publishing_done, true, __ATOMIC_RELEASE);
		return NULL;
	}
	t0 = now_ns();
	__atomic_store_n(&run.t_first_publish, t0, __ATOMIC_RELAXED);
	for (uint64_t j = 0; j < run.o.messages; j++) {
		uint64_t want = run.key_ready[j % run.o.keys];

		if (!wait_turn(j, t0))
			break;
		bench_key_text((unsigned)(j % run.o.keys), key, sizeof(key));
		__atomic_add_fetch(&run.expected, want, __ATOMIC_RELAXED);
		__atomic_add_fetch(&run.published, 1, __ATOMIC_RELAXED);
		if (want == 0)          /* nobody on this key: done already */
			__atomic_add_fetch(&run.complete, 1, __ATOMIC_RELAXED);
		if (be->send(j, key, now_ns()) != 0) {
			publish_refused(j);
			break;
		}
	}
	be->finish(now_ns() + (uint64_t)(run.o.drain_s * 1e9));
	__atomic_store_n(&run.publishing_done, true, __ATOMIC_RELEASE);
	return NULL;
}

int publish_start(void)
{
	be = run.o.publish == PUB_AMQP ? &pub_amqp : &pub_http;
	run.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (run.wake_fd < 0) {
		fprintf(stderr, "myxid-bench: eventfd: %s\n", strerror(errno));
		return -1;
	}
	if (pthread_create(&thread, NULL, publisher_main, NULL) != 0) {
		fprintf(stderr, "myxid-bench: cannot start the publisher\n");
		return -1;
	}
	return 0;
}

void publish_join(void)
{
	pthread_join(thread, NULL);
}
