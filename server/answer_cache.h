/*
 * A cache of positive plugin answers, so that a reconnect storm does not
 * become a database storm. Only "allowed" is cached: a denial is asked
 * again every time, so a newly granted permission works at once (the
 * RabbitMQ auth-cache default). Entries live for a TTL with +-10% jitter so
 * the entries made in one burst do not all expire together, and a hit does
 * not extend an entry, so a revoked grant dies with its TTL. A reload
 * starts with an empty cache.
 */
#ifndef MYXID_ANSWER_CACHE_H
#define MYXID_ANSWER_CACHE_H

#include <stdbool.h>
#include <stddef.h>

struct identity;
struct answer_cache;

/*
 * ttl_ms 0 makes a cache that never holds anything; so does a NULL cache
 * in get and put. A cache is shared by the event loops: it is locked
 * inside and reference-counted (answer_cache_free drops one reference).
 */
struct answer_cache *answer_cache_new(unsigned ttl_ms, size_t max_entries);
struct answer_cache *answer_cache_ref(struct answer_cache *c);
void answer_cache_free(struct answer_cache **c);

/*
 * Is key cached and fresh? Returns 1 and, if id_r is not NULL, a copy of
 * the cached identity (the caller's, NULL if none was cached), or 0.
 */
int answer_cache_get(struct answer_cache *c, const void *key, size_t key_len,
		     struct identity **id_r);

/* Remember key as allowed, with an identity (copied) or NULL. */
void answer_cache_put(struct answer_cache *c, const void *key, size_t key_len,
		      const struct identity *id);

size_t answer_cache_size(const struct answer_cache *c);

/* Can c hold anything? When not, a caller need not build keys at all. */
bool answer_cache_enabled(const struct answer_cache *c);

/* Drop every entry pred(arg, key, key_len, identity or NULL) is true of
 * (a revoked user's, control commands); returns how many. */
typedef bool answer_cache_pred(void *arg, const void *key, size_t key_len,
			       const struct identity *id);
size_t answer_cache_forget_if(struct answer_cache *c, answer_cache_pred *pred, void *arg);

#endif
