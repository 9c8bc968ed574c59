/*
 * Unit tests for the cross-thread inbox (inbox.c) on a real libevent
 * loop: posts are not seen before a flush, one flush hands over a whole
 * batch in order, frames posted by another thread all arrive in order
 * while the loop drains concurrently, every reference taken is given back,
 * and freeing an inbox drops what it still holds.
 */
#include "inbox.h"
#include "shared_frame.h"
#include "tap.h"

#include <pthread.h>
#include <stdlib.h>
#include <event2/event.h>
#include <event2/thread.h>

#define THREAD_FRAMES 100000

struct sink {
	struct event_base *base;
	size_t got;
	size_t out_of_order;
	long last;            /* the number in the last routing key seen */
	size_t stop_at;
};

static void handle(void *arg, struct shared_frame *f)
{
	struct sink *s = arg;
	long n = strtol(f->routing_key, NULL, 10);

	if (n != s->last + 1)
		s->out_of_order++;
	s->last = n;
	if (++s->got == s->stop_at)
		event_base_loopbreak(s->base);
}

static struct shared_frame *frame(long n)
{
	char key[32];

	snprintf(key, sizeof(key), "%ld", n);
	return shared_frame_event("{}", 2, "ex", key);
}

struct poster {
	struct inbox *ib;
	struct shared_frame **frames;
};

static void *post_all(void *arg)
{
	struct poster *p = arg;

	for (long i = 0; i < THREAD_FRAMES; i++) {
		inbox_post(p->ib, p->frames[i]);
		if (i % 37 == 36 || i == THREAD_FRAMES - 1)
			inbox_flush(p->ib);
	}
	return NULL;
}

int main(void)
{
	struct sink s = { 0 };
	struct shared_frame *f[10];
	struct inbox *ib;

	evthread_use_pthreads();
	s.base = event_base_new();
	ib = inbox_new(s.base, handle, &s);

	/* Posted, not flushed: the loop is not woken. */
	for (long i = 0; i < 10; i++) {
		f[i] = frame(i);
		inbox_post(ib, f[i]);
	}
	event_base_loop(s.base, EVLOOP_NONBLOCK);
	is_int(s.got, 0, "nothing is handled before a flush");
	is_int(__atomic_load_n(&f[3]->refs, __ATOMIC_RELAXED), 2,
	       "a posted frame holds a reference for the loop");
	is_str(f[7]->exchange, "ex", "the frame carries its exchange");
	is_str(f[7]->routing_key, "7", "and its routing key");

	s.last = -1;
	inbox_flush(ib);
	inbox_flush(ib);
	event_base_loop(s.base, EVLOOP_NONBLOCK);
	is_int(s.got, 10, "one flush hands the whole batch over");
	is_int(s.out_of_order, 0, "in the order posted");
	is_int(__atomic_load_n(&f[3]->refs, __ATOMIC_RELAXED), 1,
	       "the loop's references are given back once handled");
	inbox_flush(ib);
	event_base_loop(s.base, EVLOOP_NONBLOCK);
	is_int(s.got, 10, "a flush with nothing posted hands nothing over");

	/* Another thread posts while the loop drains. */
	{
		struct poster p = { ib, calloc(THREAD_FRAMES, sizeof(*p.frames)) };
		pthread_t t;
		size_t refs_left = 0;

		for (long i = 0; i < THREAD_FRAMES; i++)
			p.frames[i] = frame(i);
		s.got = 0;
		s.last = -1;
		s.stop_at = THREAD_FRAMES;
		pthread_create(&t, NULL, post_all, &p);
		event_base_loop(s.base, EVLOOP_NO_EXIT_ON_EMPTY);
		pthread_join(t, NULL);
		is_int(s.got, THREAD_FRAMES, "%d frames posted by another thread all arrive",
		       THREAD_FRAMES);
		is_int(s.out_of_order, 0, "in order");
		for (long i = 0; i < THREAD_FRAMES; i++) {
			refs_left += __atomic_load_n(&p.frames[i]->refs, __ATOMIC_RELAXED) != 1;
			shared_frame_unref(p.frames[i]);
		}
		is_int(refs_left, 0, "every reference the inbox took is given back");
		free(p.frames);
	}

	/* Freeing drops what was never handled. */
	inbox_post(ib, f[0]);
	inbox_post(ib, f[1]);
	inbox_flush(ib);
	inbox_free(&ib);
	ok(ib == NULL, "inbox_free clears the pointer");
	is_int(__atomic_load_n(&f[0]->refs, __ATOMIC_RELAXED) +
	       __atomic_load_n(&f[1]->refs, __ATOMIC_RELAXED), 2,
	       "freeing the inbox drops the references it held");
	for (int i = 0; i < 10; i++)
		shared_frame_unref(f[i]);
	event_base_free(s.base);
	return done_testing();
}
