/*
 * The presence table and its flush; see presence.h. The other nodes'
 * side (messages, node table) is presence_cluster.c.
 *
 * Why one flush timer for every key: it is the rate limit. Changes only
 * mark their key dirty; the timer runs at most once per presence_interval
 * and turns each dirty key into one Presence event (merging what happened
 * meanwhile) and this node's changes into one message for the other
 * nodes. The first change after a quiet interval flushes at once.
 */
#include "presence.h"
#include "presence_table.h"
#include "broker.h"
#include "config.h"
#include "event_frame.h"
#include "log.h"
#include "metrics.h"
#include "router.h"
#include "shared_frame.h"
#include "util.h"
#include "worker.h"

#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#define TICK_MS 1000

struct presence *presence_new(void)
{
	struct presence *p = xcalloc(1, sizeof(*p));

	pthread_mutex_init(&p->lock, NULL);
	p->n_buckets = 64;
	p->buckets = xcalloc(p->n_buckets, sizeof(*p->buckets));
	return p;
}

static void entry_free(struct pentry *e)
{
	free(e->user);
	free(e->nodes);
}

void presence_free(struct presence **pp)
{
	struct presence *p = *pp;

	if (p == NULL)
		return;
	if (p->flush_ev != NULL)
		event_free(p->flush_ev);
	if (p->tick_ev != NULL)
		event_free(p->tick_ev);
	for (size_t i = 0; i < p->n_buckets; i++)
		while (p->buckets[i] != NULL) {
			struct pkey *k = p->buckets[i];

			p->buckets[i] = k->next;
			for (size_t j = 0; j < k->n; j++)
				entry_free(&k->users[j]);
			free(k->users);
			free(k);
		}
	free(p->buckets);
	pthread_mutex_destroy(&p->lock);
	free(p);
	*pp = NULL;
}

/* ------------------------------------------------------------- table */

static size_t key_hash(const char *exchange, const char *key)
{
	return (size_t)hash_pair(exchange, key);
}

static void grow_buckets(struct presence *p)
{
	size_t n = p->n_buckets * 2;
	struct pkey **b = xcalloc(n, sizeof(*b));

	for (size_t i = 0; i < p->n_buckets; i++)
		while (p->buckets[i] != NULL) {
			struct pkey *k = p->buckets[i];
			size_t h = key_hash(k->name, k->key) & (n - 1);

			p->buckets[i] = k->next;
			k->next = b[h];
			b[h] = k;
		}
	free(p->buckets);
	p->buckets = b;
	p->n_buckets = n;
}

struct pkey *ptable_key(struct presence *p, const char *exchange, const char *key,
			bool make)
{
	size_t h = key_hash(exchange, key) & (p->n_buckets - 1);
	size_t el = strlen(exchange), kl = strlen(key);
	struct pkey *k;

	for (k = p->buckets[h]; k != NULL; k = k->next)
		if (strcmp(k->name, exchange) == 0 && strcmp(k->key, key) == 0)
			return k;
	if (!make)
		return NULL;
	k = xcalloc(1, sizeof(*k) + el + kl + 2);
	memcpy(k->name, exchange, el + 1);
	memcpy(k->name + el + 1, key, kl + 1);
	k->key = k->name + el + 1;
	k->next = p->buckets[h];
	p->buckets[h] = k;
	if (++p->n_keys > p->n_buckets * 2)
		grow_buckets(p);
	return k;
}

/* Where user is in k->users, or would go. */
static size_t entry_slot(const struct pkey *k, const char *user, bool *found)
{
	size_t lo = 0, hi = k->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(k->users[mid].user, user);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

struct pentry *ptable_entry(struct pkey *k, const char *user, bool make)
{
	bool found;
	size_t i = entry_slot(k, user, &found);

	if (found || !make)
		return found ? &k->users[i] : NULL;
	if (k->n == k->cap) {
		k->cap = k->cap ? k->cap * 2 : 4;
		k->users = xrealloc(k->users, k->cap * sizeof(*k->users));
	}
	memmove(&k->users[i + 1], &k->users[i], (k->n - i) * sizeof(*k->users));
	memset(&k->users[i], 0, sizeof(*k->users));
	k->users[i].user = xstrdup(user);
	k->n++;
	return &k->users[i];
}

static void unlink_key(struct presence *p, struct pkey *k)
{
	size_t h = key_hash(k->name, k->key) & (p->n_buckets - 1);
	struct pkey **pp = &p->buckets[h];

	while (*pp != k)
		pp = &(*pp)->next;
	*pp = k->next;
	p->n_keys--;
	free(k->users);
	free(k);
}

void ptable_schedule(struct presence *p)
{
	uint64_t now, due;
	unsigned interval;
	struct timeval tv;

	if (p->home == NULL || p->armed)
		return;
	interval = worker_config(p->home)->presence_interval_ms;
	now = monotonic_ms();
	due = p->last_flush_ms + interval;
	tv.tv_sec = due > now ? (time_t)((due - now) / 1000) : 0;
	tv.tv_usec = due > now ? (suseconds_t)((due - now) % 1000 * 1000) : 0;
	p->armed = true;
	event_add(p->flush_ev, &tv);
}

void ptable_dirty(struct presence *p, struct pkey *k)
{
	if (!k->dirty) {
		k->dirty = true;
		k->dirty_next = p->dirty;
		p->dirty = k;
	}
	ptable_schedule(p);
}

/* --------------------------------------------------------- from loops */

void presence_change(struct presence *p, const char *exchange, const char *key,
		     const char *user, bool watcher, int delta)
{
	struct pkey *k;

	pthread_mutex_lock(&p->lock);
	k = ptable_key(p, exchange, key, true);
	if (user != NULL)
		ptable_entry(k, user, true)->local += delta;
	if (watcher) {
		k->watchers += (size_t)delta;
		k->new_watcher |= delta > 0;
	}
	/* Also for a watcher leaving: the flush frees a key left empty. */
	ptable_dirty(p, k);
	pthread_mutex_unlock(&p->lock);
}

/* -------------------------------------------------------------- flush */

/* A Presence event for the watchers of one key, built under the lock and
 * sent after it. */
struct pframe {
	struct shared_frame *f;
	char *exchange, *key;
};

static void deliver_on_loop(struct worker *w, void *arg)
{
	struct pframe *pf = arg;

	router_publish(worker_presence_router(w), pf->exchange, pf->key, ROUTER_EXACT,
		       pf->f);
}

static void pframe_free(void *arg)
{
	struct pframe *pf = arg;

	shared_frame_unref(pf->f);
	free(pf->exchange);
	free(pf->key);
	free(pf);
}

static json_object *event_for(const struct pkey *k, json_object *joined,
			      json_object *left, size_t max_users)
{
	json_object *ev = json_object_new_object(), *pl = json_object_new_object();
	json_object *users = json_object_new_array();
	size_t count = 0;

	for (size_t i = 0; i < k->n; i++) {
		if (!k->users[i].shown)
			continue;
		if (count++ < max_users)
			json_object_array_add(users, json_object_new_string(k->users[i].user));
	}
	json_object_object_add(pl, "exchange", json_object_new_string(k->name));
	json_object_object_add(pl, "routing_key", json_object_new_string(k->key));
	json_object_object_add(pl, "users", users);
	json_object_object_add(pl, "count", json_object_new_int64((int64_t)count));
	json_object_object_add(pl, "joined", joined);
	json_object_object_add(pl, "left", left);
	json_object_object_add(ev, "event", json_object_new_string("Presence"));
	json_object_object_add(ev, "payload", pl);
	return ev;
}

/* Work out k's changes: for the watchers (a frame, or NULL) and for the
 * other nodes (added to changes). Drops entries and the key once unused. */
static struct pframe *flush_key(struct presence *p, struct pkey *k, json_object *changes,
				size_t max_users)
{
	json_object *joined = json_object_new_array(), *left = json_object_new_array();
	json_object *ann_join = json_object_new_array(), *ann_left = json_object_new_array();
	struct pframe *pf = NULL;
	size_t kept = 0;

	for (size_t i = 0; i < k->n; i++) {
		struct pentry *e = &k->users[i];
		bool here = e->local > 0, present = here || e->n_nodes > 0;

		if (here != e->announced)
			json_object_array_add(here ? ann_join : ann_left,
					      json_object_new_string(e->user));
		e->announced = here;
		if (present != e->shown && json_object_array_length(present ? joined : left) <
		    max_users)
			json_object_array_add(present ? joined : left,
					      json_object_new_string(e->user));
		e->shown = present;
		if (!present && e->local == 0)
			entry_free(e);
		else
			k->users[kept++] = *e;
	}
	k->n = kept;
	if (json_object_array_length(ann_join) + json_object_array_length(ann_left) > 0) {
		json_object *c = json_object_new_array();

		json_object_array_add(c, json_object_new_string(k->name));
		json_object_array_add(c, json_object_new_string(k->key));
		json_object_array_add(c, json_object_get(ann_join));
		json_object_array_add(c, json_object_get(ann_left));
		json_object_array_add(changes, c);
	}
	json_object_put(ann_join);
	json_object_put(ann_left);
	if (k->watchers > 0 && (k->new_watcher || json_object_array_length(joined) +
				json_object_array_length(left) > 0)) {
		json_object *ev = event_for(k, json_object_get(joined), json_object_get(left),
					    max_users);

		pf = xmalloc(sizeof(*pf));
		pf->f = event_frame_encode(ev, k->name, k->key, 0);
		pf->exchange = xstrdup(k->name);
		pf->key = xstrdup(k->key);
		json_object_put(ev);
		metrics_inc(M_PRESENCE_EVENTS);
	}
	json_object_put(joined);
	json_object_put(left);
	k->new_watcher = false;
	k->dirty = false;
	if (k->n == 0 && k->watchers == 0)
		unlink_key(p, k);
	return pf;
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct presence *p = arg;
	size_t max_users = worker_config(p->home)->presence_max_users, n = 0, cap = 0;
	struct pframe **frames = NULL;
	json_object *changes = json_object_new_array();
	struct pkey *k;

	pthread_mutex_lock(&p->lock);
	p->armed = false;
	p->last_flush_ms = monotonic_ms();
	while ((k = p->dirty) != NULL) {
		struct pframe *pf;

		p->dirty = k->dirty_next;
		if ((pf = flush_key(p, k, changes, max_users)) == NULL)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			frames = xrealloc(frames, cap * sizeof(*frames));
		}
		frames[n++] = pf;
	}
	pthread_mutex_unlock(&p->lock);
	if (json_object_array_length(changes) > 0 && worker_broker(p->home) != NULL)
		pcluster_send(p, json_object_get(changes), false);
	json_object_put(changes);
	for (size_t i = 0; i < n; i++)
		worker_broadcast(p->home, deliver_on_loop, pframe_free, frames[i]);
	free(frames);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct presence *p = arg;

	pthread_mutex_lock(&p->lock);
	pcluster_tick(p);
	pthread_mutex_unlock(&p->lock);
}

void presence_attach(struct presence *p, struct worker *home)
{
	struct timeval tick = { TICK_MS / 1000, TICK_MS % 1000 * 1000 };

	p->home = home;
	p->flush_ev = evtimer_new(worker_base(home), flush_cb, p);
	if (worker_broker(home) != NULL) {
		p->tick_ev = event_new(worker_base(home), -1, EV_PERSIST, tick_cb, p);
		event_add(p->tick_ev, &tick);
	}
}
