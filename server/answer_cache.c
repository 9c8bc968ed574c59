/*
 * Positive-answer cache; see answer_cache.h. A chained hash keyed by the
 * caller's bytes (a token's SHA-256, never the token itself), with expiry
 * checked on lookup and a sweep of stale entries when the cache is full.
 */
#include "answer_cache.h"
#include "identity.h"
#include "util.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	struct entry *next;
	uint64_t hash;
	uint64_t expires_ms;
	struct identity *id;       /* owned; NULL for a plain "allowed" */
	size_t key_len;
	unsigned char key[];
};

struct answer_cache {
	pthread_mutex_t lock;
	int refs;                  /* atomic */
	unsigned ttl_ms;
	size_t max_entries, n;
	size_t n_buckets;          /* power of two */
	struct entry **buckets;
	uint64_t seed;
};

static uint64_t hash_bytes(uint64_t seed, const unsigned char *p, size_t len)
{
	uint64_t h = seed ^ 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

struct answer_cache *answer_cache_new(unsigned ttl_ms, size_t max_entries)
{
	struct answer_cache *c = xcalloc(1, sizeof(*c));

	c->ttl_ms = ttl_ms;
	c->max_entries = max_entries;
	c->n_buckets = 1024;
	c->buckets = xcalloc(c->n_buckets, sizeof(*c->buckets));
	c->seed = random_u64();
	c->refs = 1;
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

struct answer_cache *answer_cache_ref(struct answer_cache *c)
{
	__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
	return c;
}

static void entry_free(struct entry *e)
{
	identity_free(&e->id);
	free(e);
}

void answer_cache_free(struct answer_cache **cp)
{
	struct answer_cache *c = *cp;

	*cp = NULL;
	if (c == NULL || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	for (size_t i = 0; i < c->n_buckets; i++)
		while (c->buckets[i]) {
			struct entry *e = c->buckets[i];
			c->buckets[i] = e->next;
			entry_free(e);
		}
	free(c->buckets);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static void sweep(struct answer_cache *c, uint64_t now)
{
	for (size_t i = 0; i < c->n_buckets; i++)
		for (struct entry **pp = &c->buckets[i]; *pp;) {
			struct entry *e = *pp;
			if (e->expires_ms > now) {
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			entry_free(e);
			c->n--;
		}
}

static void grow(struct answer_cache *c)
{
	size_t n = c->n_buckets * 2;
	struct entry **b = xcalloc(n, sizeof(*b));

	for (size_t i = 0; i < c->n_buckets; i++)
		while (c->buckets[i]) {
			struct entry *e = c->buckets[i];
			c->buckets[i] = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	free(c->buckets);
	c->buckets = b;
	c->n_buckets = n;
}

int answer_cache_get(struct answer_cache *c, const void *key, size_t key_len,
		     struct identity **id_r)
{
	uint64_t h, now;
	struct entry **pp;
	int found = 0;

	if (c == NULL || c->ttl_ms == 0)
		return 0;
	h = hash_bytes(c->seed, key, key_len);
	now = monotonic_ms();
	pthread_mutex_lock(&c->lock);
	for (pp = &c->buckets[h & (c->n_buckets - 1)]; *pp; pp = &(*pp)->next) {
		struct entry *e = *pp;
		if (e->hash != h || e->key_len != key_len ||
		    memcmp(e->key, key, key_len) != 0)
			continue;
		if (e->expires_ms <= now) {
			*pp = e->next;
			entry_free(e);
			c->n--;
			break;
		}
		if (id_r)
			*id_r = e->id ? identity_copy(e->id) : NULL;
		found = 1;
		break;
	}
	pthread_mutex_unlock(&c->lock);
	return found;
}

void answer_cache_put(struct answer_cache *c, const void *key, size_t key_len,
		      const struct identity *id)
{
	uint64_t h, now = monotonic_ms(), jitter;
	struct entry *e, **pp;

	if (c == NULL || c->ttl_ms == 0)
		return;
	h = hash_bytes(c->seed, key, key_len);
	pthread_mutex_lock(&c->lock);
	/* Replace an older answer for the same key. */
	for (pp = &c->buckets[h & (c->n_buckets - 1)]; *pp; pp = &(*pp)->next)
		if ((*pp)->hash == h && (*pp)->key_len == key_len &&
		    memcmp((*pp)->key, key, key_len) == 0) {
			e = *pp;
			*pp = e->next;
			entry_free(e);
			c->n--;
			break;
		}
	if (c->n >= c->max_entries)
		sweep(c, now);
	if (c->n >= c->max_entries) {
		/* Full of fresh answers: ask the plugin next time. */
		pthread_mutex_unlock(&c->lock);
		return;
	}
	if (c->n >= c->n_buckets)
		grow(c);
	e = xmalloc(sizeof(*e) + key_len);
	e->hash = h;
	jitter = c->ttl_ms / 10;
	e->expires_ms = now + c->ttl_ms - jitter + (jitter ? random_u64() % (2 * jitter + 1) : 0);
	e->id = id ? identity_copy(id) : NULL;
	e->key_len = key_len;
	memcpy(e->key, key, key_len);
	e->next = c->buckets[h & (c->n_buckets - 1)];
	c->buckets[h & (c->n_buckets - 1)] = e;
	c->n++;
	pthread_mutex_unlock(&c->lock);
}

size_t answer_cache_size(const struct answer_cache *c)
{
	return c->n;
}

bool answer_cache_enabled(const struct answer_cache *c)
{
	return c != NULL && c->ttl_ms != 0;
}

size_t answer_cache_forget_if(struct answer_cache *c, answer_cache_pred *pred, void *arg)
{
	size_t n = 0;

	if (c == NULL)
		return 0;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->n_buckets; i++)
		for (struct entry **pp = &c->buckets[i]; *pp;) {
			struct entry *e = *pp;

			if (!pred(arg, e->key, e->key_len, e->id)) {
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			entry_free(e);
			c->n--;
			n++;
		}
	pthread_mutex_unlock(&c->lock);
	return n;
}
