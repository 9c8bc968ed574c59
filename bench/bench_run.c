/*
 * The run-wide state of myxid-bench and the helpers every thread uses on
 * it (see bench_run.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "bench_run.h"

#define MAX_NOTES 10                     /* error lines printed per run */

struct bench_run run;

static unsigned notes;

void bench_key_text(unsigned k, char *buf, size_t size)
{
	/* The format was checked to hold exactly one %d (see main). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	snprintf(buf, size, run.o.key_format, (int)k);
#pragma GCC diagnostic pop
}

void bench_note(const char *fmt, ...)
{
	va_list ap;

	if (__atomic_fetch_add(&notes, 1, __ATOMIC_RELAXED) >= MAX_NOTES)
		return;
	va_start(ap, fmt);
	flockfile(stderr);
	fputs("myxid-bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	funlockfile(stderr);
	va_end(ap);
}

void bench_atomic_max(uint64_t *at, uint64_t v)
{
	uint64_t seen = __atomic_load_n(at, __ATOMIC_RELAXED);

	while (v > seen && !__atomic_compare_exchange_n(at, &seen, v, true, __ATOMIC_RELAXED,
							 __ATOMIC_RELAXED))
		;
}

void bench_count_delivery(uint64_t seq, uint64_t t_ns, uint64_t now,
			  struct bench_hist *lat)
{
	uint64_t want, got;

	if (seq >= run.o.messages || run.delivered == NULL) {
		__atomic_add_fetch(&run.bad_frames, 1, __ATOMIC_RELAXED);
		bench_note("a delivery of unknown message %llu", (unsigned long long)seq);
		return;
	}
	/* --expect: message 0's stamp is when that other generator began. */
	if (seq == 0 && run.o.expect_only)
		__atomic_store_n(&run.t_first_publish, t_ns, __ATOMIC_RELAXED);
	want = run.key_ready[seq % run.o.keys];
	got = __atomic_add_fetch(&run.delivered[seq], 1, __ATOMIC_RELAXED);
	if (got > want) {
		__atomic_add_fetch(&run.duplicates, 1, __ATOMIC_RELAXED);
		bench_note("message %llu delivered more often than subscribed (%llu)",
			   (unsigned long long)seq, (unsigned long long)got);
		return;
	}
	__atomic_add_fetch(&run.received, 1, __ATOMIC_RELAXED);
	hist_add(lat, now > t_ns ? now - t_ns : 0);
	bench_atomic_max(&run.t_last_delivery, now);
	if (got == want) {
		/* Sequentially consistent with the publisher's "waiting" flag:
		 * either it sees this completion or we see it waiting. */
		__atomic_add_fetch(&run.complete, 1, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&run.publisher_waiting, __ATOMIC_SEQ_CST)) {
			uint64_t one = 1;

			if (write(run.wake_fd, &one, sizeof(one)) < 0) {
				/* An eventfd only fails when its counter is full: the
				 * publisher is already woken. */
			}
		}
	}
}
