/*
 * Unit tests for the in-memory history (history.c): positions grow per
 * exchange and reach the encoder; resume after a position gives exactly the
 * later events of that key, in order; a resume is refused (incomplete) for
 * another epoch, a position from the future, or once an event after it was
 * dropped by the count, byte or age limit or the store's memory cap; a
 * late joiner gets the last N; 100,000 keys stay under the cap; concurrent
 * publishers keep positions and kept order in step; every frame reference
 * taken is given back. A mirror (positions from a RabbitMQ stream) keeps
 * the source's positions, drops redeliveries, has its own epoch and cannot
 * vouch for anything before its first event.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* memmem */
#endif
#include "history.h"
#include "shared_frame.h"
#include "tap.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct shared_frame *encode(uint64_t position, void *arg)
{
	char text[96];
	int n = snprintf(text, sizeof(text), "{\"n\":%s,\"o\":%llu}", (const char *)arg,
			 (unsigned long long)position);

	return shared_frame_event(text, (size_t)n, "x", "k");
}

/* Publish one event of key with text n at time now; returns its position
 * (0 if none was made). */
static uint64_t put(struct history_log *log, const char *key, const char *n, long long now)
{
	struct shared_frame *f = history_append(log, key, 0, now, encode, (void *)n);
	uint64_t pos = 0;

	if (f != NULL) {
		const char *o = memmem(f->data, f->len, "\"o\":", 4);
		pos = o ? strtoull(o + 4, NULL, 10) : 0;
		shared_frame_unref(f);
	}
	return pos;
}

/* The replayed positions, as "1,3,5". */
static const char *positions(const struct history_replay *r)
{
	static char buf[1024];
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < r->n && n < sizeof(buf) - 24; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%llu", i ? "," : "",
				      (unsigned long long)r->positions[i]);
	return buf;
}

static uint64_t put_at(struct history_log *log, const char *key, uint64_t at, const char *n)
{
	struct shared_frame *f = history_append(log, key, at, 1000, encode, (void *)n);

	if (f == NULL)
		return 0;
	shared_frame_unref(f);
	return at;
}

static void test_mirror(void)
{
	struct history_store *hs = history_store_new(1 << 20);
	struct history_log *log = history_store_log(hs, "m", &(struct history_limits){ 0 });
	struct history_replay r;
	char ep[HISTORY_EPOCH_MAX + 1];

	history_log_set_epoch(log, "stream:myxid.history.m:1");
	history_log_epoch(log, ep, sizeof(ep));
	is_str(ep, "stream:myxid.history.m:1", "a mirror has the epoch it was given");
	ok(put_at(log, "a", 41, "1") == 41, "the source's position is kept");
	ok(put_at(log, "b", 45, "2") == 45, "positions may skip (other sources' messages)");
	ok(put_at(log, "a", 45, "3") == 0, "a redelivered position is refused");
	ok(put_at(log, "a", 44, "3") == 0, "an older position is refused");
	ok(put_at(log, "a", 50, "4") == 50, "and the next one is kept");
	ok(history_position(log) == 50, "the log's position is the source's");

	history_since(log, "a", ep, 41, 100, 1000, &r);
	ok(r.complete && strcmp(positions(&r), "50") == 0, "resume after 41: 50 (%s)", positions(&r));
	history_replay_free(&r);
	history_since(log, "a", ep, 39, 100, 1000, &r);
	ok(!r.complete && r.n == 0, "before the mirror's first event: not complete");
	history_replay_free(&r);
	history_since(log, "zz", ep, 40, 100, 1000, &r);
	ok(r.complete && r.n == 0, "a key never seen, after the mirror's start: complete, empty");
	history_replay_free(&r);
	history_since(log, "a", history_store_epoch(hs), 41, 100, 1000, &r);
	ok(!r.complete, "the store's own epoch is not the mirror's");
	history_replay_free(&r);
	history_store_free(hs);
}

static void test_resume(void)
{
	struct history_store *hs = history_store_new(1 << 20);
	struct history_limits lim = { .max_events = 100 };
	struct history_log *log = history_store_log(hs, "deployment", &lim);
	const char *epoch = history_store_epoch(hs);
	struct history_replay r;

	ok(strlen(epoch) == 16, "the epoch is 16 hex digits (%s)", epoch);
	is_int(history_position(log), 0, "a new log is at position 0");
	is_int(put(log, "d1", "a", 1000), 1, "the first event is position 1, given to the encoder");
	is_int(put(log, "d2", "b", 1000), 2, "positions grow per exchange, across keys");
	is_int(put(log, "d1", "c", 1001), 3, "and again for d1");
	is_int(put(log, "d1", "d", 1002), 4, "and again");

	history_since(log, "d1", epoch, 1, 100, 1003, &r);
	ok(r.complete, "resume d1 after 1: complete");
	is_str(positions(&r), "3,4", "resume d1 after 1: exactly 3 and 4, in order");
	is_int(r.position, 4, "the replay says where the log is");
	ok(memmem(r.frames[0]->data, r.frames[0]->len, "\"n\":c", 5) != NULL,
	   "the kept frame is the one encoded");
	history_replay_free(&r);

	history_since(log, "d1", epoch, 4, 100, 1003, &r);
	ok(r.complete && r.n == 0, "resume at the latest position: complete, nothing to replay");
	history_replay_free(&r);
	history_since(log, "d1", epoch, 0, 100, 1003, &r);
	is_str(positions(&r), "1,3,4", "resume from 0: everything of d1");
	history_replay_free(&r);
	history_since(log, "d9", epoch, 2, 100, 1003, &r);
	ok(r.complete && r.n == 0, "a key with no events: complete, empty");
	history_replay_free(&r);

	history_since(log, "d1", "0123456789abcdef", 1, 100, 1003, &r);
	ok(!r.complete && r.n == 0, "another epoch: not complete, nothing replayed");
	history_replay_free(&r);
	history_since(log, "d1", NULL, 1, 100, 1003, &r);
	ok(!r.complete, "no epoch: not complete");
	history_replay_free(&r);
	history_since(log, "d1", epoch, 5, 100, 1003, &r);
	ok(!r.complete && r.n == 0, "a position from the future: not complete");
	history_replay_free(&r);
	history_since(log, "d1", epoch, 0, 2, 1003, &r);
	ok(!r.complete && r.n == 0, "more to replay than allowed: not complete, nothing (no unbounded replay)");
	history_replay_free(&r);

	history_last(log, "d1", 2, 1003, &r);
	is_str(positions(&r), "3,4", "the last 2 of d1");
	history_replay_free(&r);
	history_last(log, "d1", 50, 1003, &r);
	is_str(positions(&r), "1,3,4", "the last 50 of d1: the 3 kept");
	history_replay_free(&r);
	history_last(log, "none", 5, 1003, &r);
	ok(r.complete && r.n == 0, "the last events of an unknown key: none");
	history_replay_free(&r);
	history_store_free(hs);
}

static void test_limits(void)
{
	struct history_store *hs = history_store_new(1 << 20);
	struct history_limits lim = { .max_events = 3, .max_age_ms = 1000 };
	struct history_log *log = history_store_log(hs, "x", &lim);
	const char *epoch = history_store_epoch(hs);
	struct history_replay r;

	for (int i = 0; i < 5; i++)
		put(log, "k", "e", 100);              /* positions 1..5; 1 and 2 dropped */
	history_last(log, "k", 10, 100, &r);
	is_str(positions(&r), "3,4,5", "max_events 3: the newest 3 are kept");
	history_replay_free(&r);
	history_since(log, "k", epoch, 1, 100, 100, &r);
	ok(!r.complete && r.n == 0, "resume after 1: event 2 was dropped, so not complete");
	history_replay_free(&r);
	history_since(log, "k", epoch, 2, 100, 100, &r);
	ok(r.complete && !strcmp(positions(&r), "3,4,5"), "resume after 2: complete, 3..5");
	history_replay_free(&r);

	put(log, "k", "e", 900);                      /* 6 */
	history_since(log, "k", epoch, 5, 100, 1200, &r);
	ok(r.complete && !strcmp(positions(&r), "6"), "age: events of t=100 expire at t=1200; 6 (t=900) stays");
	history_replay_free(&r);
	history_since(log, "k", epoch, 4, 100, 1200, &r);
	ok(!r.complete, "age: resume after 4 is not complete once 5 expired");
	history_replay_free(&r);
	history_store_expire(hs, 5000);
	history_since(log, "k", epoch, 6, 100, 5000, &r);
	ok(r.complete && r.n == 0, "after the sweep: nothing kept, resume at the end still complete");
	history_replay_free(&r);
	history_since(log, "k", epoch, 5, 100, 5000, &r);
	ok(!r.complete, "after the sweep: a key freed with losses cannot prove an earlier resume");
	history_replay_free(&r);

	/* Bytes per key. */
	struct history_limits blim = { .max_bytes = 30 };
	struct history_log *b = history_store_log(hs, "bytes", &blim);
	put(b, "k", "1", 0);
	put(b, "k", "2", 0);
	put(b, "k", "3", 0);
	history_last(b, "k", 10, 0, &r);
	ok(r.n == 2 && !strcmp(positions(&r), "2,3"),
	   "max_bytes 30: the newest two 15-byte frames are kept (%s)", positions(&r));
	history_replay_free(&r);
	history_store_free(hs);
}

static void test_memory_cap(void)
{
	size_t cap = 8 << 20;
	struct history_store *hs = history_store_new(cap);
	struct history_limits lim = { .max_events = 10 };
	struct history_log *log = history_store_log(hs, "x", &lim);
	const char *epoch = history_store_epoch(hs);
	struct history_replay r;
	char key[32];
	size_t peak = 0;
	uint64_t before_last = 0;

	for (int i = 0; i < 100000; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		before_last = history_position(log);
		put(log, key, "e", i);
		put(log, key, "f", i);
		if (history_store_bytes(hs) > peak)
			peak = history_store_bytes(hs);
	}
	ok(peak <= cap, "100,000 keys x 2 events: memory never above the 8 MiB cap (peak %zu)", peak);
	history_since(log, "key-99999", epoch, before_last, 100, 100000, &r);
	ok(r.complete && r.n == 2, "the newest key is kept whole: a resume from before it is complete");
	history_replay_free(&r);
	history_since(log, "key-0", epoch, 0, 100, 100000, &r);
	ok(!r.complete && r.n == 0, "the oldest key was dropped for the cap: resume refused");
	history_replay_free(&r);
	history_store_free(hs);
}

struct writer {
	struct history_log *log;
	int id;
};

static void *write_many(void *arg)
{
	struct writer *w = arg;

	for (int i = 0; i < 20000; i++)
		put(w->log, w->id % 2 ? "odd" : "even", "t", 0);
	return NULL;
}

static void test_threads(void)
{
	struct history_store *hs = history_store_new(64 << 20);
	struct history_limits lim = { .max_events = 100000 };
	struct history_log *log = history_store_log(hs, "x", &lim);
	pthread_t t[4];
	struct writer w[4];
	struct history_replay r;
	int sorted = 1;

	for (int i = 0; i < 4; i++) {
		w[i] = (struct writer){ log, i };
		pthread_create(&t[i], NULL, write_many, &w[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	is_int(history_position(log), 80000, "4 threads x 20,000 events: position 80,000");
	history_last(log, "odd", 100000, 0, &r);
	for (size_t i = 1; i < r.n; i++)
		if (r.positions[i] <= r.positions[i - 1])
			sorted = 0;
	ok(r.n == 40000 && sorted, "a key's kept events are in position order (%zu)", r.n);
	history_replay_free(&r);
	history_store_free(hs);
}

int main(void)
{
	test_resume();
	test_mirror();
	test_limits();
	test_memory_cap();
	test_threads();
	return done_testing();
}
