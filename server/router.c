/*
 * Subscription table: an open-addressing hash of routes keyed by
 * "exchange\0routing_key", each holding a dense array of subscribers so a
 * publish walks contiguous memory. Removal swaps the last subscriber into
 * the hole, so it is O(1) and the array stays dense. The hash is seeded at
 * random so clients cannot pick routing keys that collide.
 *
 * Routes are also grouped per exchange: topic patterns cannot be found by
 * hashing the published key, so a topic publish also walks the exchange's
 * pattern routes, and a fanout publish walks all of its routes. An owner
 * reached through several routes is served once, by publish sequence.
 */
#include "router.h"
#include "shared_frame.h"
#include "metrics.h"
#include "util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct xgroup;

struct route {
	uint64_t hash;
	size_t key_len;              /* exchange + NUL + routing key */
	size_t ex_len;
	struct router_sub **subs;
	size_t n_subs, cap_subs;
	struct xgroup *group;
	struct route *gnext, *gprev; /* the group's list of routes */
	bool pattern;
	size_t pattern_slot;         /* index in group->patterns */
	char key[];                  /* "exchange\0routing_key\0" */
};

/* The routes of one exchange. */
struct xgroup {
	char *name;
	struct route *routes;
	struct route **patterns;
	size_t n_patterns, cap_patterns;
	struct xgroup *next;
};

struct router {
	struct route **slots;        /* NULL = empty; TOMBSTONE = deleted */
	size_t n_slots;              /* power of two */
	size_t n_routes, n_used;     /* routes, routes + tombstones */
	uint64_t seed;
	uint64_t seq;                /* publishes, for per-owner dedupe */
	router_deliver_fn *deliver;
	router_route_fn *hook;
	void *hook_arg;
	struct xgroup *groups;
};

static struct route tombstone_;
#define TOMBSTONE (&tombstone_)

static uint64_t hash_key(uint64_t seed, const char *p, size_t len)
{
	/* FNV-1a with a random start and a final avalanche (splitmix64). */
	uint64_t h = seed ^ 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)p[i];
		h *= 0x100000001b3ull;
	}
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	return h ^ (h >> 31);
}

struct router *router_new(router_deliver_fn *deliver, router_route_fn *hook,
			  void *hook_arg)
{
	struct router *r = xcalloc(1, sizeof(*r));

	r->n_slots = 64;
	r->slots = xcalloc(r->n_slots, sizeof(*r->slots));
	r->seed = random_u64();
	r->deliver = deliver;
	r->hook = hook;
	r->hook_arg = hook_arg;
	return r;
}

static struct xgroup *group_find(const struct router *r, const char *exchange)
{
	for (struct xgroup *g = r->groups; g != NULL; g = g->next)
		if (strcmp(g->name, exchange) == 0)
			return g;
	return NULL;
}

static void group_attach(struct router *r, struct route *rt)
{
	struct xgroup *g = group_find(r, rt->key);

	if (g == NULL) {
		g = xcalloc(1, sizeof(*g));
		g->name = xstrdup(rt->key);
		g->next = r->groups;
		r->groups = g;
	}
	rt->group = g;
	rt->gnext = g->routes;
	if (g->routes)
		g->routes->gprev = rt;
	g->routes = rt;
	if (rt->pattern) {
		if (g->n_patterns == g->cap_patterns) {
			g->cap_patterns = g->cap_patterns ? 2 * g->cap_patterns : 4;
			g->patterns = xrealloc(g->patterns,
					       g->cap_patterns * sizeof(*g->patterns));
		}
		rt->pattern_slot = g->n_patterns;
		g->patterns[g->n_patterns++] = rt;
	}
}

static void group_detach(struct route *rt)
{
	struct xgroup *g = rt->group;

	if (rt->gprev)
		rt->gprev->gnext = rt->gnext;
	else
		g->routes = rt->gnext;
	if (rt->gnext)
		rt->gnext->gprev = rt->gprev;
	if (rt->pattern) {
		struct route *last = g->patterns[--g->n_patterns];
		g->patterns[rt->pattern_slot] = last;
		last->pattern_slot = rt->pattern_slot;
	}
}

void router_free(struct router **rp)
{
	struct router *r = *rp;

	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n_slots; i++) {
		struct route *rt = r->slots[i];
		if (rt == NULL || rt == TOMBSTONE)
			continue;
		for (size_t j = 0; j < rt->n_subs; j++)
			free(rt->subs[j]);
		free(rt->subs);
		free(rt);
	}
	while (r->groups != NULL) {
		struct xgroup *g = r->groups;
		r->groups = g->next;
		free(g->patterns);
		free(g->name);
		free(g);
	}
	free(r->slots);
	free(r);
	*rp = NULL;
}

/* Build the lookup key into buf (or a heap buffer if it does not fit). */
static char *make_key(const char *ex, const char *rk, char *buf, size_t bufsize,
		      size_t *len_r, size_t *ex_len_r)
{
	size_t el = strlen(ex), rl = strlen(rk);
	char *k = el + rl + 2 <= bufsize ? buf : xmalloc(el + rl + 2);

	memcpy(k, ex, el + 1);
	memcpy(k + el + 1, rk, rl + 1);
	*len_r = el + 1 + rl;
	*ex_len_r = el;
	return k;
}

static size_t probe(const struct router *r, uint64_t h, const char *key,
		    size_t len, int *found)
{
	size_t mask = r->n_slots - 1, i = h & mask, first_free = SIZE_MAX;

	for (;;) {
		struct route *rt = r->slots[i];
		if (rt == NULL) {
			*found = 0;
			return first_free != SIZE_MAX ? first_free : i;
		}
		if (rt == TOMBSTONE) {
			if (first_free == SIZE_MAX)
				first_free = i;
		} else if (rt->hash == h && rt->key_len == len &&
			   memcmp(rt->key, key, len) == 0) {
			*found = 1;
			return i;
		}
		i = (i + 1) & mask;
	}
}

static void rehash(struct router *r, size_t n_slots)
{
	struct route **old = r->slots;
	size_t old_n = r->n_slots;

	r->slots = xcalloc(n_slots, sizeof(*r->slots));
	r->n_slots = n_slots;
	r->n_used = r->n_routes;
	for (size_t i = 0; i < old_n; i++) {
		struct route *rt = old[i];
		size_t j;
		if (rt == NULL || rt == TOMBSTONE)
			continue;
		for (j = rt->hash & (n_slots - 1); r->slots[j] != NULL;
		     j = (j + 1) & (n_slots - 1))
			;
		r->slots[j] = rt;
	}
	free(old);
}

static struct route *route_lookup(const struct router *r, const char *ex,
				  const char *rk)
{
	char buf[512];
	size_t len, ex_len, i;
	char *key = make_key(ex, rk, buf, sizeof(buf), &len, &ex_len);
	uint64_t h = hash_key(r->seed, key, len);
	int found;

	i = probe(r, h, key, len, &found);
	if (key != buf)
		free(key);
	return found ? r->slots[i] : NULL;
}

static struct route *route_get_or_create(struct router *r, const char *ex,
					 const char *rk, bool pattern)
{
	char buf[512];
	size_t len, ex_len, i;
	char *key = make_key(ex, rk, buf, sizeof(buf), &len, &ex_len);
	uint64_t h = hash_key(r->seed, key, len);
	struct route *rt;
	int found;

	i = probe(r, h, key, len, &found);
	if (found) {
		rt = r->slots[i];
	} else {
		rt = xcalloc(1, sizeof(*rt) + len + 1);
		rt->hash = h;
		rt->key_len = len;
		rt->ex_len = ex_len;
		rt->pattern = pattern;
		memcpy(rt->key, key, len + 1);
		if (r->slots[i] == NULL)
			r->n_used++;
		r->slots[i] = rt;
		r->n_routes++;
		group_attach(r, rt);
		if (r->hook)
			r->hook(r->hook_arg, ex, rk, true);
		/* Keep the load (tombstones included) under 3/4. */
		if (r->n_used * 4 >= r->n_slots * 3)
			rehash(r, r->n_routes * 4 >= r->n_slots * 2 ?
			       r->n_slots * 2 : r->n_slots);
	}
	if (key != buf)
		free(key);
	return rt;
}

static void route_delete(struct router *r, struct route *rt)
{
	int found;
	size_t i = probe(r, rt->hash, rt->key, rt->key_len, &found);

	if (found)
		r->slots[i] = TOMBSTONE;
	r->n_routes--;
	group_detach(rt);
	if (r->hook)
		r->hook(r->hook_arg, rt->key, rt->key + rt->ex_len + 1, false);
	free(rt->subs);
	free(rt);
}

struct router_sub *router_find(const struct router_list *list,
			       const char *exchange, const char *routing_key)
{
	for (struct router_sub *s = list->head; s != NULL; s = s->next)
		if (strcmp(s->exchange, exchange) == 0 &&
		    strcmp(s->routing_key, routing_key) == 0)
			return s;
	return NULL;
}

struct router_sub *router_add(struct router *r, void *owner,
			      struct router_list *list, const char *exchange,
			      const char *routing_key, bool pattern)
{
	struct router_sub *sub;
	struct route *rt;

	if (router_find(list, exchange, routing_key) != NULL)
		return NULL;
	rt = route_get_or_create(r, exchange, routing_key, pattern);
	if (rt->n_subs == rt->cap_subs) {
		rt->cap_subs = rt->cap_subs ? rt->cap_subs * 2 : 4;
		rt->subs = xrealloc(rt->subs, rt->cap_subs * sizeof(*rt->subs));
	}
	sub = xcalloc(1, sizeof(*sub));
	sub->route = rt;
	sub->slot = rt->n_subs;
	sub->owner = owner;
	sub->list = list;
	sub->exchange = rt->key;
	sub->routing_key = rt->key + rt->ex_len + 1;
	rt->subs[rt->n_subs++] = sub;

	sub->prev = list->tail;
	if (list->tail)
		list->tail->next = sub;
	else
		list->head = sub;
	list->tail = sub;
	list->n++;
	metrics_inc(M_SUBSCRIPTIONS);
	return sub;
}

void router_remove(struct router *r, struct router_list *list,
		   struct router_sub *sub)
{
	struct route *rt = sub->route;
	struct router_sub *last = rt->subs[--rt->n_subs];

	rt->subs[sub->slot] = last;
	last->slot = sub->slot;

	if (sub->prev)
		sub->prev->next = sub->next;
	else
		list->head = sub->next;
	if (sub->next)
		sub->next->prev = sub->prev;
	else
		list->tail = sub->prev;
	list->n--;
	free(sub);
	metrics_add(M_SUBSCRIPTIONS, -1);

	if (rt->n_subs == 0)
		route_delete(r, rt);
}

/* Deliver to a route's subscribers not yet served by this publish. */
static size_t deliver_route(struct router *r, struct route *rt,
			    struct shared_frame *f)
{
	size_t n = 0;

	/* A delivery may not unsubscribe (sessions defer closing), so the
	 * array is stable while we walk it. */
	for (size_t i = 0; i < rt->n_subs; i++) {
		struct router_sub *sub = rt->subs[i];
		if (sub->list->last_seq == r->seq)
			continue;
		/* Positioned frames reach each loop in position order (one
		 * ordered source: the history's lock, or the broker thread), so
		 * only what a replay already sent is at or below seen. */
		if (f->position != 0 && f->position <= sub->seen)
			continue;
		sub->list->last_seq = r->seq;
		r->deliver(sub->owner, f);
		n++;
	}
	return n;
}

size_t router_publish(struct router *r, const char *exchange,
		      const char *routing_key, enum router_match how,
		      struct shared_frame *f)
{
	struct route *rt = route_lookup(r, exchange, routing_key);
	struct xgroup *g;
	size_t n = 0;

	r->seq++;
	if (rt != NULL && how != ROUTER_FANOUT)
		n += deliver_route(r, rt, f);
	if (how == ROUTER_EXACT || (g = group_find(r, exchange)) == NULL)
		return n;
	if (how == ROUTER_FANOUT) {
		for (rt = g->routes; rt != NULL; rt = rt->gnext)
			n += deliver_route(r, rt, f);
		return n;
	}
	for (size_t i = 0; i < g->n_patterns; i++)
		if (topic_match(g->patterns[i]->key + g->patterns[i]->ex_len + 1,
				routing_key))
			n += deliver_route(r, g->patterns[i], f);
	return n;
}

/* The word starting at s: its length, and in *next the next word's start,
 * or NULL after the last word ("" is one empty word). */
static size_t word_at(const char *s, const char **next)
{
	const char *dot = strchr(s, '.');

	*next = dot ? dot + 1 : NULL;
	return dot ? (size_t)(dot - s) : strlen(s);
}

static bool is_word(const char *w, size_t len, char c)
{
	return len == 1 && *w == c;
}

/*
 * AMQP 0-9-1 topic matching: words split by '.', '*' is exactly one word,
 * '#' zero or more words. Like glob matching, only the last '#' seen is
 * ever retried (with one more word each time): any earlier '#' could only
 * take words the last one can take too. So a match costs at most
 * pattern words x key words steps; the recursive form it replaces was
 * exponential on patterns such as "#.#.#.#" against a long key, which a
 * client could subscribe to and stall a loop with (found by fuzzing).
 */
bool topic_match(const char *p, const char *k)
{
	const char *hash_p = NULL, *hash_k = NULL;  /* after the last '#'; its words end */
	bool hashed = false;

	/* p == NULL: the pattern is used up; k == NULL: the key is. */
	while (k != NULL) {
		const char *pn = NULL, *kn;
		size_t pl = p ? word_at(p, &pn) : 0, kl = word_at(k, &kn);

		if (p != NULL && is_word(p, pl, '#')) {
			if (pn == NULL)
				return true;
			hashed = true;
			hash_p = pn;
			hash_k = k;
			p = pn;
			continue;
		}
		if (p != NULL && (is_word(p, pl, '*') ||
				  (pl == kl && memcmp(p, k, kl) == 0))) {
			p = pn;
			k = kn;
			continue;
		}
		if (!hashed)
			return false;
		/* The last '#' takes one more word of the key. */
		word_at(hash_k, &hash_k);
		k = hash_k;
		p = hash_p;
	}
	/* The key is used up: what is left of the pattern must be all '#'. */
	while (p != NULL) {
		const char *pn;
		size_t pl = word_at(p, &pn);

		if (!is_word(p, pl, '#'))
			return false;
		p = pn;
	}
	return true;
}

size_t router_route_count(const struct router *r)
{
	return r->n_routes;
}

size_t router_count(const struct router *r, const char *exchange, const char *routing_key)
{
	struct route *rt = route_lookup(r, exchange, routing_key);

	return rt != NULL ? rt->n_subs : 0;
}

void router_each_key(const struct router *r, const char *exchange,
		     router_key_fn *fn, void *arg)
{
	const struct xgroup *g = group_find(r, exchange);

	for (const struct route *rt = g ? g->routes : NULL; rt != NULL; rt = rt->gnext)
		if (rt->n_subs > 0)
			fn(arg, rt->key + rt->ex_len + 1, rt->n_subs, rt->pattern);
}
