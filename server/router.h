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

#include <stddef.h>

struct shared_frame;
struct route;

struct router_sub {
	struct route *route;
	size_t slot;                  /* index in route->subs */
	void *owner;
	const char *exchange;         /* points into route's key */
	const char *routing_key;      /* points into route's key */
	struct router_sub *next, *prev;  /* the owner's list */
};

struct router_list {
	struct router_sub *head, *tail;
	size_t n;
};

typedef void router_deliver_fn(void *owner, struct shared_frame *f);

struct router *router_new(router_deliver_fn *deliver);
void router_free(struct router **r);

/* Subscribe owner; returns NULL if it already is subscribed to that pair. */
struct router_sub *router_add(struct router *r, void *owner,
			      struct router_list *list, const char *exchange,
			      const char *routing_key);

/* owner's subscription to the pair, or NULL. */
struct router_sub *router_find(const struct router_list *list,
			       const char *exchange, const char *routing_key);

/* Remove one subscription (frees sub). */
void router_remove(struct router *r, struct router_list *list,
		   struct router_sub *sub);

/* Deliver f to every subscriber of the pair; returns how many got it. */
size_t router_publish(struct router *r, const char *exchange,
		      const char *routing_key, struct shared_frame *f);

/* Number of distinct (exchange, routing key) pairs with subscribers. */
size_t router_route_count(const struct router *r);

#endif
