/*
 * In-memory history; see history.h.
 *
 * Each log keeps, per key, a ring of its events (position, time, frame),
 * and for the whole log a queue of (key, position) in publish order: the
 * front of that queue is the log's oldest event, which is what the age
 * limit and the store's memory cap take first. A key's own limits drop
 * from the key's ring only; the queue entry left behind is stale and is
 * skipped when it reaches the front. Its 16 bytes count against the cap
 * like everything else, so nothing grows without bound.
 *
 * "Lost" bookkeeping decides whether a resume is complete: a key remembers
 * the highest position it dropped, and the log remembers the highest one
 * of the keys it freed (a key made again later cannot prove it lost
 * nothing before it existed, so it starts from that).
 */
#include "history.h"
#include "shared_frame.h"
#include "util.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	uint64_t pos;
	long long time_ms;
	struct shared_frame *frame;   /* one reference, the log's */
};

struct hkey {
	struct hkey *next;            /* hash chain */
	struct entry *ring;
	size_t cap, head, n;
	size_t bytes;                 /* frame bytes kept */
	size_t queued;                /* its entries in the log's order queue */
	uint64_t lost_upto;           /* highest position dropped */
	char name[];
};

struct order {
	struct hkey *key;
	uint64_t pos;
};

struct history_log {
	struct history_log *next;
	struct history_store *hs;
	struct history_limits lim;
	uint64_t position;
	uint64_t freed_lost;          /* highest lost_upto of the keys freed */
	char epoch[HISTORY_EPOCH_MAX + 1];  /* the store's, or a mirror's own */
	struct hkey **buckets;
	size_t n_buckets, n_keys;
	struct order *q;              /* ring, publish order */
	size_t q_cap, q_head, q_n;
	char exchange[];
};

struct history_store {
	pthread_mutex_t mu;           /* everything below and in the logs */
	size_t cap, bytes;
	struct history_log *logs;
	char epoch[17];
};

/* The store's epoch must fit a log's. */
typedef char epoch_fits[HISTORY_EPOCH_MAX >= 16 ? 1 : -1];

#define KEY_OVERHEAD(k) (sizeof(struct hkey) + strlen((k)->name) + 1 + \
			 (k)->cap * sizeof(struct entry) + sizeof(struct hkey *))
#define MAX_POSITION ((UINT64_C(1) << 53) - 1)

struct history_store *history_store_new(size_t memory_cap)
{
	struct history_store *hs = xcalloc(1, sizeof(*hs));

	pthread_mutex_init(&hs->mu, NULL);
	hs->cap = memory_cap;
	snprintf(hs->epoch, sizeof(hs->epoch), "%016" PRIx64, random_u64());
	return hs;
}

const char *history_store_epoch(const struct history_store *hs)
{
	return hs->epoch;
}

size_t history_store_bytes(struct history_store *hs)
{
	size_t n;

	pthread_mutex_lock(&hs->mu);
	n = hs->bytes;
	pthread_mutex_unlock(&hs->mu);
	return n;
}

/* ---------------------------------------------------------------- keys */

static size_t hash(const char *s)
{
	size_t h = 5381;

	while (*s)
		h = h * 33 ^ (unsigned char)*s++;
	return h;
}

static struct hkey **key_slot(struct history_log *log, const char *name)
{
	struct hkey **p = &log->buckets[hash(name) & (log->n_buckets - 1)];

	while (*p != NULL && strcmp((*p)->name, name) != 0)
		p = &(*p)->next;
	return p;
}

static void grow_buckets(struct history_log *log)
{
	size_t n = log->n_buckets ? log->n_buckets * 2 : 64;
	struct hkey **b = xcalloc(n, sizeof(*b));

	for (size_t i = 0; i < log->n_buckets; i++) {
		for (struct hkey *k = log->buckets[i], *next; k != NULL; k = next) {
			next = k->next;
			k->next = b[hash(k->name) & (n - 1)];
			b[hash(k->name) & (n - 1)] = k;
		}
	}
	log->hs->bytes += (n - log->n_buckets) * sizeof(*b);
	free(log->buckets);
	log->buckets = b;
	log->n_buckets = n;
}

static struct hkey *key_get(struct history_log *log, const char *name, bool make)
{
	struct hkey **p, *k;
	size_t len = strlen(name);

	if (log->n_buckets == 0 || log->n_keys >= log->n_buckets) {
		if (!make)
			return log->n_buckets ? *key_slot(log, name) : NULL;
		grow_buckets(log);
	}
	p = key_slot(log, name);
	if (*p != NULL || !make)
		return *p;
	k = xcalloc(1, sizeof(*k) + len + 1);
	memcpy(k->name, name, len + 1);
	k->lost_upto = log->freed_lost;
	*p = k;
	log->n_keys++;
	log->hs->bytes += KEY_OVERHEAD(k);
	return k;
}

static void key_free_if_unused(struct history_log *log, struct hkey *k)
{
	struct hkey **p;

	if (k->n != 0 || k->queued != 0)
		return;
	p = key_slot(log, k->name);
	*p = k->next;
	log->n_keys--;
	if (k->lost_upto > log->freed_lost)
		log->freed_lost = k->lost_upto;
	log->hs->bytes -= KEY_OVERHEAD(k);
	free(k->ring);
	free(k);
}

static struct entry *key_at(struct hkey *k, size_t i)
{
	return &k->ring[(k->head + i) % k->cap];
}

/* Drops the key's oldest event (limits, age or the cap). */
static void key_drop_front(struct history_log *log, struct hkey *k)
{
	struct entry *e = key_at(k, 0);

	k->lost_upto = e->pos;
	k->bytes -= e->frame->len;
	log->hs->bytes -= e->frame->len;
	shared_frame_unref(e->frame);
	k->head = (k->head + 1) % k->cap;
	k->n--;
}

static void key_push(struct history_log *log, struct hkey *k, const struct entry *e)
{
	if (k->n == k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 4;
		struct entry *ring = xmalloc(cap * sizeof(*ring));
		for (size_t i = 0; i < k->n; i++)
			ring[i] = *key_at(k, i);
		log->hs->bytes += (cap - k->cap) * sizeof(*ring);
		free(k->ring);
		k->ring = ring;
		k->cap = cap;
		k->head = 0;
	}
	*key_at(k, k->n) = *e;
	k->n++;
	k->bytes += e->frame->len;
	log->hs->bytes += e->frame->len;
}

/* ---------------------------------------------------------------- order */

static void order_push(struct history_log *log, struct hkey *k, uint64_t pos)
{
	if (log->q_n == log->q_cap) {
		size_t cap = log->q_cap ? log->q_cap * 2 : 64;
		struct order *q = xmalloc(cap * sizeof(*q));
		for (size_t i = 0; i < log->q_n; i++)
			q[i] = log->q[(log->q_head + i) % log->q_cap];
		log->hs->bytes += (cap - log->q_cap) * sizeof(*q);
		free(log->q);
		log->q = q;
		log->q_cap = cap;
		log->q_head = 0;
	}
	log->q[(log->q_head + log->q_n) % log->q_cap] = (struct order){ k, pos };
	log->q_n++;
	k->queued++;
}

/* The front of the order queue, live: stale entries (already dropped by
 * their key's limits) are popped on the way. NULL when empty. */
static struct order *order_front(struct history_log *log)
{
	while (log->q_n > 0) {
		struct order *o = &log->q[log->q_head];
		if (o->key->n > 0 && key_at(o->key, 0)->pos == o->pos)
			return o;
		log->q_head = (log->q_head + 1) % log->q_cap;
		log->q_n--;
		o->key->queued--;
		key_free_if_unused(log, o->key);
	}
	return NULL;
}

/* Drops the log's oldest event. */
static void log_drop_oldest(struct history_log *log)
{
	struct order *o = order_front(log);

	if (o == NULL)
		return;
	key_drop_front(log, o->key);
	(void)order_front(log);       /* pops o, now stale */
}

static long long oldest_time(struct history_log *log)
{
	struct order *o = order_front(log);

	return o ? key_at(o->key, 0)->time_ms : -1;
}

static void log_expire(struct history_log *log, long long now_ms)
{
	long long t;

	if (log->lim.max_age_ms <= 0)
		return;
	while ((t = oldest_time(log)) >= 0 && t < now_ms - log->lim.max_age_ms)
		log_drop_oldest(log);
}

/* Over the store's cap: the store's oldest events go, whichever log. */
static void store_fit(struct history_store *hs)
{
	while (hs->cap != 0 && hs->bytes > hs->cap) {
		struct history_log *oldest = NULL;
		long long best = -1;
		for (struct history_log *l = hs->logs; l != NULL; l = l->next) {
			long long t = oldest_time(l);
			if (t >= 0 && (oldest == NULL || t < best)) {
				oldest = l;
				best = t;
			}
		}
		if (oldest == NULL)
			return;
		log_drop_oldest(oldest);
	}
}

/* ---------------------------------------------------------------- API */

struct history_log *history_store_log(struct history_store *hs, const char *exchange,
				      const struct history_limits *limits)
{
	struct history_log *log;
	size_t len = strlen(exchange);

	pthread_mutex_lock(&hs->mu);
	for (log = hs->logs; log != NULL; log = log->next)
		if (strcmp(log->exchange, exchange) == 0)
			break;
	if (log == NULL) {
		log = xcalloc(1, sizeof(*log) + len + 1);
		memcpy(log->exchange, exchange, len + 1);
		log->hs = hs;
		memcpy(log->epoch, hs->epoch, sizeof(hs->epoch));
		log->next = hs->logs;
		hs->logs = log;
	}
	log->lim = *limits;
	pthread_mutex_unlock(&hs->mu);
	return log;
}

/* The key's own limits, after an append. */
static void key_fit(struct history_log *log, struct hkey *k)
{
	while ((log->lim.max_events != 0 && k->n > log->lim.max_events) ||
	       (log->lim.max_bytes != 0 && k->bytes > log->lim.max_bytes && k->n > 0))
		key_drop_front(log, k);
}

struct shared_frame *history_append(struct history_log *log, const char *key,
				    uint64_t position, long long now_ms,
				    history_encode_fn *encode, void *arg)
{
	struct history_store *hs = log->hs;
	struct shared_frame *f;
	struct hkey *k;
	uint64_t pos;

	pthread_mutex_lock(&hs->mu);
	pos = position ? position : log->position + 1;
	if (pos <= log->position || pos > MAX_POSITION) {
		/* Already kept (a mirror's redelivery), or 2^53 events: a
		 * JavaScript number cannot hold the next one. */
		pthread_mutex_unlock(&hs->mu);
		return NULL;
	}
	f = encode(pos, arg);
	if (f == NULL) {
		pthread_mutex_unlock(&hs->mu);
		return NULL;
	}
	/* A mirror that starts in the middle of its source cannot prove that
	 * any key lost nothing before its first event. */
	if (log->position == 0 && pos > 1)
		log->freed_lost = pos - 1;
	log->position = pos;
	log_expire(log, now_ms);
	k = key_get(log, key, true);
	key_push(log, k, &(struct entry){ pos, now_ms, shared_frame_ref(f) });
	order_push(log, k, pos);
	key_fit(log, k);
	store_fit(hs);
	pthread_mutex_unlock(&hs->mu);
	return f;
}

void history_log_set_epoch(struct history_log *log, const char *epoch)
{
	pthread_mutex_lock(&log->hs->mu);
	snprintf(log->epoch, sizeof(log->epoch), "%s", epoch);
	pthread_mutex_unlock(&log->hs->mu);
}

void history_log_epoch(struct history_log *log, char *out, size_t size)
{
	pthread_mutex_lock(&log->hs->mu);
	snprintf(out, size, "%s", log->epoch);
	pthread_mutex_unlock(&log->hs->mu);
}

uint64_t history_position(struct history_log *log)
{
	uint64_t p;

	pthread_mutex_lock(&log->hs->mu);
	p = log->position;
	pthread_mutex_unlock(&log->hs->mu);
	return p;
}

/* Copies entries [from, k->n) of key into out (references). */
static void replay_copy(struct hkey *k, size_t from, struct history_replay *out)
{
	size_t n = k->n - from;

	out->frames = xmalloc((n ? n : 1) * sizeof(*out->frames));
	out->positions = xmalloc((n ? n : 1) * sizeof(*out->positions));
	for (size_t i = 0; i < n; i++) {
		struct entry *e = key_at(k, from + i);
		out->frames[i] = shared_frame_ref(e->frame);
		out->positions[i] = e->pos;
	}
	out->n = n;
}

void history_since(struct history_log *log, const char *key, const char *epoch,
		   uint64_t after, size_t max, long long now_ms,
		   struct history_replay *out)
{
	struct history_store *hs = log->hs;
	struct hkey *k;
	size_t from;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&hs->mu);
	log_expire(log, now_ms);
	out->position = log->position;
	if (epoch == NULL || strcmp(epoch, log->epoch) != 0 || after > log->position)
		goto done;
	k = key_get(log, key, false);
	if (k == NULL) {
		/* Nothing kept: complete unless a freed key may have been it. */
		out->complete = after >= log->freed_lost;
		goto done;
	}
	if (after < k->lost_upto)
		goto done;
	for (from = 0; from < k->n && key_at(k, from)->pos <= after; from++)
		;
	if (k->n - from > max)
		goto done;
	replay_copy(k, from, out);
	out->complete = true;
done:
	pthread_mutex_unlock(&hs->mu);
}

void history_last(struct history_log *log, const char *key, size_t n, long long now_ms,
		  struct history_replay *out)
{
	struct history_store *hs = log->hs;
	struct hkey *k;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&hs->mu);
	log_expire(log, now_ms);
	out->position = log->position;
	k = key_get(log, key, false);
	if (k != NULL)
		replay_copy(k, k->n > n ? k->n - n : 0, out);
	out->complete = true;
	pthread_mutex_unlock(&hs->mu);
}

void history_replay_free(struct history_replay *r)
{
	for (size_t i = 0; i < r->n; i++)
		shared_frame_unref(r->frames[i]);
	free(r->frames);
	free(r->positions);
	memset(r, 0, sizeof(*r));
}

void history_store_expire(struct history_store *hs, long long now_ms)
{
	pthread_mutex_lock(&hs->mu);
	for (struct history_log *l = hs->logs; l != NULL; l = l->next)
		log_expire(l, now_ms);
	pthread_mutex_unlock(&hs->mu);
}

void history_store_free(struct history_store *hs)
{
	struct history_log *log, *next;

	if (hs == NULL)
		return;
	for (log = hs->logs; log != NULL; log = next) {
		next = log->next;
		for (size_t i = 0; i < log->n_buckets; i++) {
			for (struct hkey *k = log->buckets[i], *kn; k != NULL; k = kn) {
				kn = k->next;
				while (k->n > 0)
					key_drop_front(log, k);
				free(k->ring);
				free(k);
			}
		}
		free(log->buckets);
		free(log->q);
		free(log);
	}
	pthread_mutex_destroy(&hs->mu);
	free(hs);
}
