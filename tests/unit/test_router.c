/*
 * Unit tests for the subscription table (router.c): add, find and remove,
 * the AlreadySubscribed rule, fan-out counts, the swap-with-last removal
 * that keeps each route's subscriber array dense, deletion of empty routes,
 * growth and tombstone clean-up of the hash, awkward keys (bytes that need
 * care, the exchange/routing-key boundary, keys too long for the stack
 * buffer) and the per-owner list that keeps subscription order.
 */
#include "router.h"
#include "shared_frame.h"
#include "tap.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An owner as the router sees it: an opaque pointer with its own list. */
struct owner {
	int id;
	struct router_list list;
	size_t got;                      /* deliveries */
	struct shared_frame *last_frame;
};

static size_t n_delivered;

static void count_deliver(void *arg, struct shared_frame *f)
{
	struct owner *o = arg;

	o->got++;
	o->last_frame = f;
	n_delivered++;
}

static void reset_counts(struct owner *o, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		o[i].got = 0;
		o[i].last_frame = NULL;
	}
	n_delivered = 0;
}

/* A dummy frame: the router passes the pointer on and reads only its
 * history position (0: none). */
static struct shared_frame *frame_token(void)
{
	static struct shared_frame token;

	return &token;
}

/* A deterministic generator, so a failure can be replayed. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The owner's list, walked both ways, is exactly want[0..n) in order. */
static int list_is(const struct router_list *l, const char *const *want_rk,
		   size_t n)
{
	const struct router_sub *s, *prev = NULL;
	size_t i = 0;

	if (l->n != n)
		return 0;
	for (s = l->head; s != NULL; prev = s, s = s->next, i++)
		if (i >= n || s->prev != prev ||
		    strcmp(s->routing_key, want_rk[i]) != 0)
			return 0;
	if (i != n || l->tail != prev)
		return 0;
	for (s = l->tail; s != NULL; s = s->prev, i--)
		if (i == 0 || strcmp(s->routing_key, want_rk[i - 1]) != 0)
			return 0;
	return i == 0;
}

/* ------------------------------------------------------------------ cases */

static void test_basics(void)
{
	struct router *r = router_new(count_deliver, NULL, NULL);
	struct owner o[3] = { { .id = 0 }, { .id = 1 }, { .id = 2 } };
	struct router_sub *a, *b, *c;

	ok(r != NULL, "router_new");
	is_int(router_route_count(r), 0, "a new router has no routes");
	is_int(router_publish(r, "x", "1", ROUTER_EXACT, frame_token()), 0,
	       "publish with no routes reaches nobody");

	a = router_add(r, &o[0], &o[0].list, "x", "1", false);
	ok(a != NULL, "add x/1");
	ok(a && a->owner == &o[0], "  sub->owner");
	is_str(a ? a->exchange : NULL, "x", "  sub->exchange");
	is_str(a ? a->routing_key : NULL, "1", "  sub->routing_key");
	ok(o[0].list.head == a && o[0].list.tail == a && o[0].list.n == 1,
	   "  owner list holds it");
	is_int(router_route_count(r), 1, "  one route");

	ok(router_find(&o[0].list, "x", "1") == a, "find x/1");
	ok(router_find(&o[0].list, "x", "2") == NULL, "find x/2: none");
	ok(router_find(&o[0].list, "y", "1") == NULL, "find y/1: none");
	ok(router_find(&o[1].list, "x", "1") == NULL,
	   "find looks only at the owner's own list");

	ok(router_add(r, &o[0], &o[0].list, "x", "1", false) == NULL,
	   "AlreadySubscribed: a duplicate pair gives NULL");
	is_int(o[0].list.n, 1, "  the list is unchanged");
	is_int(router_route_count(r), 1, "  still one route");

	b = router_add(r, &o[1], &o[1].list, "x", "1", false);
	ok(b != NULL, "a second owner on the same pair");
	is_int(router_route_count(r), 1, "  shares the route");
	ok(b && a && b->exchange == a->exchange,
	   "  both point into the route's key");
	c = router_add(r, &o[0], &o[0].list, "x", "2", false);
	ok(c != NULL, "the first owner on another key");
	is_int(router_route_count(r), 2, "  two routes");

	reset_counts(o, 3);
	is_int(router_publish(r, "x", "1", ROUTER_EXACT, frame_token()), 2, "publish x/1 -> 2");
	ok(o[0].got == 1 && o[1].got == 1 && o[2].got == 0,
	   "  each subscriber once, nobody else");
	ok(o[0].last_frame == frame_token(), "  the frame is passed through");
	reset_counts(o, 3);
	is_int(router_publish(r, "x", "2", ROUTER_EXACT, frame_token()), 1, "publish x/2 -> 1");
	ok(o[0].got == 1 && o[1].got == 0, "  only the x/2 subscriber");
	is_int(router_publish(r, "y", "1", ROUTER_EXACT, frame_token()), 0,
	       "publish y/1 -> 0 (exchange is part of the key)");
	is_int(router_publish(r, "x", "", ROUTER_EXACT, frame_token()), 0,
	       "publish x/\"\" -> 0");
	is_int(router_publish(r, "x", "10", ROUTER_EXACT, frame_token()), 0,
	       "publish x/10 -> 0 (no prefix match)");

	router_remove(r, &o[0].list, a);
	is_int(router_route_count(r), 2, "remove one of two on x/1: route stays");
	ok(router_find(&o[0].list, "x", "1") == NULL, "  gone from the list");
	ok(o[0].list.head == c && o[0].list.tail == c && o[0].list.n == 1,
	   "  the other subscription remains");
	reset_counts(o, 3);
	is_int(router_publish(r, "x", "1", ROUTER_EXACT, frame_token()), 1, "  publish x/1 -> 1");
	ok(o[0].got == 0 && o[1].got == 1, "  only the remaining subscriber");

	a = router_add(r, &o[0], &o[0].list, "x", "1", false);
	ok(a != NULL, "re-adding after removal works");
	ok(o[0].list.head == c && o[0].list.tail == a,
	   "  and goes to the end of the owner's list");

	router_remove(r, &o[1].list, b);
	router_remove(r, &o[0].list, a);
	is_int(router_route_count(r), 1, "last subscriber gone: route deleted");
	is_int(router_publish(r, "x", "1", ROUTER_EXACT, frame_token()), 0,
	       "  publish to the deleted route reaches nobody");
	router_remove(r, &o[0].list, c);
	is_int(router_route_count(r), 0, "all removed: no routes");
	ok(o[0].list.head == NULL && o[0].list.tail == NULL && o[0].list.n == 0,
	   "  the owner's list is empty");
	router_free(&r);
	ok(r == NULL, "router_free clears the pointer");
	router_free(&r);
	ok(1, "router_free(NULL) is harmless");
}

/* Many owners on one route; remove them in a scrambled order, checking
 * after every removal that exactly the remaining ones are reached. */
#define MANY 200
static void test_swap_removal(void)
{
	struct router *r = router_new(count_deliver, NULL, NULL);
	static struct owner o[MANY];
	struct router_sub *subs[MANY];
	int live[MANY], order[MANY];
	int bad_sets = 0, bad_counts = 0, bad_slots = 0;

	memset(o, 0, sizeof(o));
	for (int i = 0; i < MANY; i++) {
		o[i].id = i;
		subs[i] = router_add(r, &o[i], &o[i].list, "big", "k", false);
		live[i] = 1;
		order[i] = i;
	}
	/* Also a bystander route, which must never be reached. */
	struct owner by = { .id = -1 };
	struct router_sub *bys = router_add(r, &by, &by.list, "big", "other", false);

	is_int(router_route_count(r), 2, "%d subscribers share one route", MANY);
	for (int i = 0; i < MANY; i++)
		if (subs[i] == NULL || subs[i]->slot != (size_t)i)
			bad_slots++;
	is_int(bad_slots, 0, "slots are assigned in order");
	reset_counts(o, MANY);
	is_int(router_publish(r, "big", "k", ROUTER_EXACT, frame_token()), MANY,
	       "publish reaches all %d", MANY);

	/* A few fixed positions first (middle, first, last), then shuffled. */
	int fixed[] = { MANY / 2, 0, MANY - 1, 1, MANY / 3 };
	int nf = (int)(sizeof(fixed) / sizeof(fixed[0]));
	for (int i = 0; i < nf; i++) {
		int j = fixed[i];
		int t = order[i];
		for (int k = 0; k < MANY; k++)
			if (order[k] == j) {
				order[k] = t;
				break;
			}
		order[i] = j;
	}
	for (int i = MANY - 1; i > nf; i--) {
		int j = nf + (int)(rng() % (uint64_t)(i - nf + 1));
		int t = order[i];
		order[i] = order[j];
		order[j] = t;
	}

	for (int step = 0; step < MANY; step++) {
		int victim = order[step];
		size_t want = (size_t)(MANY - step - 1), n;

		router_remove(r, &o[victim].list, subs[victim]);
		live[victim] = 0;
		reset_counts(o, MANY);
		by.got = 0;
		n = router_publish(r, "big", "k", ROUTER_EXACT, frame_token());
		if (n != want || n_delivered != want || by.got != 0)
			bad_counts++;
		for (int k = 0; k < MANY; k++)
			if (o[k].got != (size_t)live[k])
				bad_sets++;
		if (step == 0) {
			is_int(n, want, "after removing #%d (middle): %zu reached",
			       victim, want);
			is_int(bad_sets, 0, "  exactly the remaining subscribers");
		}
	}
	is_int(bad_counts, 0, "every publish during removal counted right");
	is_int(bad_sets, 0, "every publish reached exactly the remaining set");
	is_int(router_route_count(r), 1, "the emptied route is deleted");
	by.got = 0;
	is_int(router_publish(r, "big", "other", ROUTER_EXACT, frame_token()), 1,
	       "the bystander route still works");
	router_remove(r, &by.list, bys);
	is_int(router_route_count(r), 0, "no routes left");
	router_free(&r);
}

/* One owner with several subscriptions: its list keeps subscription order
 * through removals at the head, middle and tail. */
static void test_owner_list_order(void)
{
	struct router *r = router_new(count_deliver, NULL, NULL);
	struct owner o = { .id = 0 }, other = { .id = 1 };
	const char *keys[] = { "k0", "k1", "k2", "k3", "k4", "k5" };
	struct router_sub *s[6];

	for (int i = 0; i < 6; i++) {
		s[i] = router_add(r, &o, &o.list, i % 2 ? "odd" : "even", keys[i], false);
		/* interleave another owner's subscriptions on the same routes */
		router_add(r, &other, &other.list, i % 2 ? "odd" : "even", keys[i], false);
	}
	ok(list_is(&o.list, keys, 6), "the owner's list is in subscription order");
	{
		const char *want[] = { "k0", "k1", "k3", "k4", "k5" };
		router_remove(r, &o.list, s[2]);
		ok(list_is(&o.list, want, 5), "remove from the middle keeps order");
	}
	{
		const char *want[] = { "k1", "k3", "k4", "k5" };
		router_remove(r, &o.list, s[0]);
		ok(list_is(&o.list, want, 4), "remove the head keeps order");
	}
	{
		const char *want[] = { "k1", "k3", "k4" };
		router_remove(r, &o.list, s[5]);
		ok(list_is(&o.list, want, 3), "remove the tail keeps order");
	}
	{
		const char *want[] = { "k1", "k3", "k4", "k0" };
		s[0] = router_add(r, &o, &o.list, "even", "k0", false);
		ok(list_is(&o.list, want, 4), "a new subscription is appended");
	}
	ok(strcmp(o.list.head->exchange, "odd") == 0 &&
	   strcmp(o.list.tail->exchange, "even") == 0,
	   "each entry keeps its own exchange");
	is_int(router_route_count(r), 6,
	       "routes survive while the other owner is on them");
	ok(list_is(&other.list, keys, 6), "the other owner's list is untouched");
	while (other.list.head != NULL)
		router_remove(r, &other.list, other.list.head);
	is_int(router_route_count(r), 4, "the other owner leaves: 4 routes left");
	while (o.list.head != NULL)
		router_remove(r, &o.list, o.list.tail);
	ok(list_is(&o.list, NULL, 0), "removing from the tail empties the list");
	is_int(router_route_count(r), 0, "and every route");
	router_free(&r);
}

/* Enough routes to force several rehashes, then removal of all. */
#define NKEYS 50000
#define NOWNERS 1000
static void test_many_routes(void)
{
	struct router *r = router_new(count_deliver, NULL, NULL);
	static struct owner o[NOWNERS];
	char ex[32], rk[32];
	int add_fail = 0, find_fail = 0, pub_fail = 0;

	memset(o, 0, sizeof(o));
	for (int i = 0; i < NKEYS; i++) {
		snprintf(ex, sizeof ex, "ex%d", i % 7);
		snprintf(rk, sizeof rk, "key-%d", i);
		if (router_add(r, &o[i % NOWNERS], &o[i % NOWNERS].list, ex, rk, false) == NULL)
			add_fail++;
	}
	is_int(add_fail, 0, "%d distinct routes added", NKEYS);
	is_int(router_route_count(r), NKEYS, "  route count %d", NKEYS);

	for (int i = 0; i < NKEYS; i++) {
		struct owner *ow = &o[i % NOWNERS];
		size_t before = ow->got;

		snprintf(ex, sizeof ex, "ex%d", i % 7);
		snprintf(rk, sizeof rk, "key-%d", i);
		if (i % 97 == 0 && router_find(&ow->list, ex, rk) == NULL)
			find_fail++;
		if (router_publish(r, ex, rk, ROUTER_EXACT, frame_token()) != 1 ||
		    ow->got != before + 1)
			pub_fail++;
	}
	is_int(find_fail, 0, "  every sampled route is found in its owner's list");
	is_int(pub_fail, 0, "  every route publishes to its one subscriber");
	snprintf(rk, sizeof rk, "key-%d", 3);
	is_int(router_publish(r, "ex4", rk, ROUTER_EXACT, frame_token()), 0,
	       "  right key, wrong exchange: nobody");
	snprintf(rk, sizeof rk, "key-%d", NKEYS);
	is_int(router_publish(r, "ex0", rk, ROUTER_EXACT, frame_token()), 0,
	       "  a key never added: nobody");

	/* Remove every other route first (tombstones among live entries). */
	for (int k = 0; k < NOWNERS; k++) {
		struct router_sub *s = o[k].list.head, *next;
		int j = 0;
		for (; s != NULL; s = next, j++) {
			next = s->next;
			if (j % 2 == 0)
				router_remove(r, &o[k].list, s);
		}
	}
	is_int(router_route_count(r), NKEYS / 2, "half removed: %d routes",
	       NKEYS / 2);
	pub_fail = 0;
	for (int i = 0; i < NKEYS; i++) {
		size_t want = (i / NOWNERS) % 2 ? 1 : 0;
		snprintf(ex, sizeof ex, "ex%d", i % 7);
		snprintf(rk, sizeof rk, "key-%d", i);
		if (router_publish(r, ex, rk, ROUTER_EXACT, frame_token()) != want)
			pub_fail++;
	}
	is_int(pub_fail, 0, "  exactly the remaining half still publish");

	for (int k = 0; k < NOWNERS; k++)
		while (o[k].list.head != NULL)
			router_remove(r, &o[k].list, o[k].list.head);
	is_int(router_route_count(r), 0, "all removed: no routes");
	pub_fail = 0;
	for (int i = 0; i < NKEYS; i += 13) {
		snprintf(ex, sizeof ex, "ex%d", i % 7);
		snprintf(rk, sizeof rk, "key-%d", i);
		if (router_publish(r, ex, rk, ROUTER_EXACT, frame_token()) != 0)
			pub_fail++;
	}
	is_int(pub_fail, 0, "  and nothing publishes");

	/* The table is full of tombstones now; it must still work. */
	ok(router_add(r, &o[0], &o[0].list, "ex0", "key-0", false) != NULL,
	   "re-adding into a table of tombstones");
	is_int(router_publish(r, "ex0", "key-0", ROUTER_EXACT, frame_token()), 1, "  publishes");
	router_remove(r, &o[0].list, o[0].list.head);
	is_int(router_route_count(r), 0, "  and is removed again");
	router_free(&r);
}

/* Churn: a small live set, many distinct keys added and removed, so the
 * table fills with tombstones and must clean them up without growing
 * without bound or looping forever on lookup. */
static void test_churn(void)
{
	struct router *r = router_new(count_deliver, NULL, NULL);
	struct owner o = { .id = 0 };
	char rk[32];
	int fail = 0;

	for (int i = 0; i < 200000; i++) {
		struct router_sub *s;
		snprintf(rk, sizeof rk, "churn-%d", i);
		s = router_add(r, &o, &o.list, "c", rk, false);
		if (s == NULL)
			fail++;
		if (o.list.n > 8)
			router_remove(r, &o.list, o.list.head);
	}
	is_int(fail, 0, "200000 add/remove cycles");
	is_int(router_route_count(r), 8, "  8 routes live");
	fail = 0;
	for (int i = 200000 - 8; i < 200000; i++) {
		snprintf(rk, sizeof rk, "churn-%d", i);
		if (router_publish(r, "c", rk, ROUTER_EXACT, frame_token()) != 1)
			fail++;
	}
	is_int(fail, 0, "  the live ones publish");
	is_int(router_publish(r, "c", "churn-0", ROUTER_EXACT, frame_token()), 0,
	       "  an old one does not");
	router_free(&r);
	ok(1, "router_free with live subscriptions (leak-checked under ASan)");
}

/* Keys with bytes that need care, and the exchange/routing-key boundary. */
static void test_special_keys(void)
{
	struct router *r = router_new(count_deliver, NULL, NULL);
	struct owner o[8];
	struct {
		const char *ex, *rk;
	} pairs[] = {
		{ "a", "bc" },
		{ "ab", "c" },
		{ "abc", "" },
		{ "", "abc" },
		{ "", "" },
		{ "x y\t\"\\/", "*.#.\x01\x7f" },
		{ "\xc3\xa9xchange", "\xe2\x82\xac.\xf0\x9f\x98\x80" },
		{ "a\nb", "{\"json\":[1,2]}" },
	};
	size_t n = sizeof(pairs) / sizeof(pairs[0]);
	int fail = 0;

	memset(o, 0, sizeof(o));
	for (size_t i = 0; i < n; i++)
		if (router_add(r, &o[i], &o[i].list, pairs[i].ex, pairs[i].rk, false) == NULL)
			fail++;
	is_int(fail, 0, "keys with special bytes are added");
	is_int(router_route_count(r), n,
	       "  as %zu distinct routes (a/bc, ab/c, abc/, /abc differ)", n);
	for (size_t i = 0; i < n; i++) {
		reset_counts(o, 8);
		is_int(router_publish(r, pairs[i].ex, pairs[i].rk, ROUTER_EXACT, frame_token()), 1,
		       "publish to pair %zu reaches one", i);
		ok(o[i].got == 1, "  the right one");
		is_str(o[i].list.head->exchange, pairs[i].ex, "  exchange kept");
		is_str(o[i].list.head->routing_key, pairs[i].rk,
		       "  routing key kept");
	}
	for (size_t i = 0; i < n; i++)
		router_remove(r, &o[i].list, o[i].list.head);
	is_int(router_route_count(r), 0, "all removed");
	router_free(&r);
}

/* Keys around and beyond the 512-byte stack buffer of the lookup. */
static void test_long_keys(void)
{
	struct router *r = router_new(count_deliver, NULL, NULL);
	struct owner o[6];
	/* el + rl + 2 bytes are needed; 512 fits the buffer, 513 does not. */
	size_t rk_lens[] = { 509, 510, 511, 600, 5000, 100000 };
	char *rks[6];
	int nl = 6;

	memset(o, 0, sizeof(o));
	for (int i = 0; i < nl; i++) {
		rks[i] = malloc(rk_lens[i] + 1);
		memset(rks[i], 'a' + i, rk_lens[i]);
		rks[i][rk_lens[i]] = '\0';
		ok(router_add(r, &o[i], &o[i].list, "e", rks[i], false) != NULL,
		   "add e/<%zu bytes>", rk_lens[i]);
	}
	is_int(router_route_count(r), nl, "%d long routes", nl);
	for (int i = 0; i < nl; i++) {
		reset_counts(o, 6);
		is_int(router_publish(r, "e", rks[i], ROUTER_EXACT, frame_token()), 1,
		       "publish e/<%zu bytes>", rk_lens[i]);
		ok(o[i].got == 1, "  reaches its owner");
		is_int(strlen(o[i].list.head->routing_key), rk_lens[i],
		       "  stored key has full length");
		ok(router_find(&o[i].list, "e", rks[i]) == o[i].list.head,
		   "  found");
		ok(router_add(r, &o[i], &o[i].list, "e", rks[i], false) == NULL,
		   "  duplicate refused");
	}
	/* A key differing only in its last byte is another route. */
	rks[4][rk_lens[4] - 1] = 'Z';
	is_int(router_publish(r, "e", rks[4], ROUTER_EXACT, frame_token()), 0,
	       "a long key differing in the last byte: nobody");
	rks[4][rk_lens[4] - 1] = 'a' + 4;
	/* Long exchange too. */
	{
		char *ex = malloc(700);
		memset(ex, 'E', 699);
		ex[699] = '\0';
		ok(router_add(r, &o[0], &o[0].list, ex, "k", false) != NULL,
		   "add <699-byte exchange>/k");
		is_int(router_publish(r, ex, "k", ROUTER_EXACT, frame_token()), 1, "  publishes");
		router_remove(r, &o[0].list, o[0].list.tail);
		free(ex);
	}
	for (int i = 0; i < nl; i++) {
		router_remove(r, &o[i].list, o[i].list.head);
		is_int(router_publish(r, "e", rks[i], ROUTER_EXACT, frame_token()), 0,
		       "removed e/<%zu bytes>", rk_lens[i]);
		free(rks[i]);
	}
	is_int(router_route_count(r), 0, "no routes left");
	router_free(&r);
}

/* Route hook: records the pairs bound and unbound, as the broker link would. */
static int hook_added, hook_removed;
static char hook_last[128];

static void record_hook(void *arg, const char *ex, const char *rk, bool added)
{
	if (added)
		hook_added++;
	else
		hook_removed++;
	snprintf(hook_last, sizeof(hook_last), "%s %s/%s",
		 added ? "bind" : "unbind", ex, rk);
}

static void test_topic_match(void)
{
	static const struct { const char *p, *k; bool want; } t[] = {
		{ "news.*", "news.sport", true },
		{ "news.*", "news.sport.football", false },
		{ "news.*", "news", false },
		{ "news.#", "news.sport.football", true },
		{ "news.#", "news", true },
		{ "#", "", true },
		{ "#", "a.b.c", true },
		{ "*", "a", true },
		{ "*", "a.b", false },
		{ "a.*.c", "a.b.c", true },
		{ "a.#.c", "a.c", true },
		{ "a.#.c", "a.b.d.c", true },
		{ "a.#.c", "a.b.d", false },
		{ "#.c", "x.y.c", true },
		{ "a.b", "a.bc", false },
		{ "a.b", "a", false },
		{ "a", "a.b", false },
		{ "a.#.#", "a", true },
		{ "*.#", "a", true },
		{ "ab*", "abc", false },   /* '*' only as a whole word */
		{ "a.#b", "a.#b", true },  /* '#' only as a whole word */
		{ "#.b.#.c", "a.b.x.b.c", true },
		{ "#.b.#.c", "a.b.x.b.d", false },
		{ "*.#.*", "a", false },
		{ "*.#.*", "a.b", true },
		{ "#.*", "", true },
		{ "#.a.#.a", "a.a.a", true },
		{ "", "", true },
		{ "", "a", false },
	};
	char pattern[200], key[200];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		is_int(topic_match(t[i].p, t[i].k), t[i].want, "topic '%s' vs '%s'",
		       t[i].p, t[i].k);

	/* Found by fuzz_broker_msg: a pattern of many '#' words against a long
	 * key took exponential time (the loop stalled); now it is quick. */
	strcpy(pattern, "#");
	for (int i = 0; i < 30; i++)
		strcat(pattern, ".#");
	strcat(pattern, ".x");
	strcpy(key, "a");
	for (int i = 0; i < 60; i++)
		strcat(key, ".a");
	ok(!topic_match(pattern, key), "'#.#...#.x' (31 '#') vs 61 words: no match, no stall");
	key[strlen(key) - 1] = 'x';
	ok(topic_match(pattern, key), "  and a match when the last word is x");
}

static void test_topic_and_fanout(void)
{
	struct router *r = router_new(count_deliver, record_hook, NULL);
	struct owner o[4] = { { 0 }, { 1 }, { 2 }, { 3 } };
	struct router_sub *a, *b;

	hook_added = hook_removed = 0;
	a = router_add(r, &o[0], &o[0].list, "news", "news.*", true);
	router_add(r, &o[1], &o[1].list, "news", "news.#", true);
	b = router_add(r, &o[2], &o[2].list, "news", "news.sport", false);
	/* One owner through two matching patterns: served once. */
	router_add(r, &o[3], &o[3].list, "news", "news.*", true);
	router_add(r, &o[3], &o[3].list, "news", "#", true);
	is_int(hook_added, 4, "four distinct pairs were bound");
	reset_counts(o, 4);
	is_int(router_publish(r, "news", "news.sport", ROUTER_TOPIC, frame_token()), 4,
	       "news.sport: *, #, the exact key and the double match, once each");
	is_int(o[3].got, 1, "  the owner with two matching patterns got it once");
	reset_counts(o, 4);
	is_int(router_publish(r, "news", "news.sport.football", ROUTER_TOPIC,
			      frame_token()), 2, "news.sport.football: only # patterns");
	is_int(o[0].got, 0, "  news.* did not match two words");
	reset_counts(o, 4);
	is_int(router_publish(r, "news", "news.sport", ROUTER_EXACT, frame_token()), 1,
	       "a direct publish ignores patterns");
	reset_counts(o, 4);
	is_int(router_publish(r, "news", "anything", ROUTER_FANOUT, frame_token()), 4,
	       "fanout reaches every owner of the exchange once");
	is_int(router_publish(r, "other", "news.sport", ROUTER_TOPIC, frame_token()), 0,
	       "another exchange gets nothing");
	router_remove(r, &o[0].list, a);
	router_remove(r, &o[2].list, b);
	is_int(hook_removed, 1, "removing the only news.sport subscriber unbinds it");
	is_str(hook_last, "unbind news/news.sport", "  and the hook names the pair");
	reset_counts(o, 4);
	is_int(router_publish(r, "news", "news.sport", ROUTER_TOPIC, frame_token()), 2,
	       "after removals, the remaining patterns still match");
	router_free(&r);
}

/* History positions: a subscription gets a positioned frame once, and
 * never one at or below what it has already seen (the replay seam). */
static void test_positions(void)
{
	struct router *r = router_new(count_deliver, NULL, NULL);
	struct owner o[2] = { { .id = 0 }, { .id = 1 } };
	struct shared_frame f[4];
	struct router_sub *a, *b;

	memset(f, 0, sizeof(f));
	for (int i = 0; i < 4; i++)
		f[i].position = (uint64_t)i + 1;
	a = router_add(r, &o[0], &o[0].list, "x", "k", false);
	b = router_add(r, &o[1], &o[1].list, "x", "k", false);
	b->seen = 2;                        /* a replay went up to 2 */
	reset_counts(o, 2);
	for (int i = 0; i < 4; i++)
		router_publish(r, "x", "k", ROUTER_EXACT, &f[i]);
	ok(o[0].got == 4, "a fresh subscription gets 1..4 (%zu)", o[0].got);
	ok(o[1].got == 2, "one whose replay reached 2 gets 3 and 4 (%zu)", o[1].got);
	reset_counts(o, 2);
	router_publish(r, "x", "k", ROUTER_EXACT, &f[1]);
	ok(o[0].got == 1 && o[1].got == 0, "position 2 again reaches only the one that had no replay");
	b->seen = UINT64_MAX;               /* held while its replay is pending */
	router_publish(r, "x", "k", ROUTER_EXACT, frame_token());
	ok(o[1].got == 1, "a held subscription still gets unpositioned frames");
	router_free(&r);
}

int main(void)
{
	test_basics();
	test_swap_removal();
	test_owner_list_order();
	test_many_routes();
	test_churn();
	test_special_keys();
	test_long_keys();
	test_topic_match();
	test_topic_and_fanout();
	test_positions();
	return done_testing();
}
