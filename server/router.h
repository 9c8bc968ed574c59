/*
 * The subscription table of one event loop: which subscribers want which
 * (exchange, routing key), and fan-out of a shared frame to all of them.
 *
 * A subscriber is an opaque owner pointer (a session) that embeds a
 * struct router_list of its own subscriptions, kept in subscription order.
 * All calls happen on the loop's thread.
 */
#ifndef MYXID_ROUTER_H
#define MYXID_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct shared_frame;
struct route;

struct router_list;

struct router_sub {
	struct route *route;
	size_t slot;                  /* index in route->subs */
	void *owner;
	struct router_list *list;     /* the owner's list this sub is on */
	const char *exchange;         /* points into route's key */
	const char *routing_key;      /* points into route's key */
	/* The history position its replay reached (UINT64_MAX while the
	 * replay is pending): frames at or below it are not delivered again,
	 * which closes the seam between a replay and live delivery. Frames
	 * arrive in position order, so nothing later can be at or below. */
	uint64_t seen;
	/* Presence (presence.h), kept by the owner: the user it counts as
	 * present on the pair (owned; NULL: none), and whether the owner
	 * also watches the pair in its loop's presence router. */
	char *member;
	bool watching;
	/* The signed token the subscription was granted with (a secret,
	 * owned by the owner; NULL: none), asked again at each re-check. */
	char *grant;
	struct router_sub *next, *prev;  /* the owner's list */
};

struct router_list {
	struct router_sub *head, *tail;
	size_t n;
	uint64_t last_seq;            /* the last publish delivered: dedupe */
};

typedef void router_deliver_fn(void *owner, struct shared_frame *f);

/* Told when a pair gets its first subscriber (added) or loses its last. */
typedef void router_route_fn(void *arg, const char *exchange,
			     const char *routing_key, bool added);

/* How a published routing key finds subscriptions. */
enum router_match {
	ROUTER_EXACT,     /* direct exchanges: the same key */
	ROUTER_TOPIC,     /* topic: the same key, or a pattern matching it */
	ROUTER_FANOUT     /* fanout: every subscription of the exchange */
};

struct router *router_new(router_deliver_fn *deliver, router_route_fn *hook,
			  void *hook_arg);
void router_free(struct router **r);

/* Subscribe owner; returns NULL if it already is subscribed to that pair.
 * pattern: routing_key is an AMQP topic pattern ('*' one word, '#' any). */
struct router_sub *router_add(struct router *r, void *owner,
			      struct router_list *list, const char *exchange,
			      const char *routing_key, bool pattern);

/* owner's subscription to the pair, or NULL. */
struct router_sub *router_find(const struct router_list *list,
			       const char *exchange, const char *routing_key);

/* Remove one subscription (frees sub). */
void router_remove(struct router *r, struct router_list *list,
		   struct router_sub *sub);

/* Deliver f to every matching subscriber, each owner at most once, and
 * a positioned frame only to subscriptions that have not seen it;
 * returns how many got it. */
size_t router_publish(struct router *r, const char *exchange,
		      const char *routing_key, enum router_match how,
		      struct shared_frame *f);

/* Does an AMQP topic pattern match key? */
bool topic_match(const char *pattern, const char *key);

/* Subscriptions to exactly this pair (a pattern is a pair of its own). */
size_t router_count(const struct router *r, const char *exchange,
		    const char *routing_key);

/* fn(arg, routing key, subscriptions, is it a pattern) for every routing
 * key of exchange that has subscribers. */
typedef void router_key_fn(void *arg, const char *routing_key, size_t n, bool pattern);
void router_each_key(const struct router *r, const char *exchange,
		     router_key_fn *fn, void *arg);

/* Number of distinct (exchange, routing key) pairs with subscribers. */
size_t router_route_count(const struct router *r);

#endif
