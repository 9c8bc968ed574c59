/*
 * Subscribed means bound: a Subscribe that makes the node bind a new
 * routing key to its queue is answered once RabbitMQ has confirmed the
 * binding, so an event the application publishes right after the browser
 * saw Subscribed is not dropped by the broker as unroutable (Myxi's
 * subscribe bound synchronously, and its clients rely on that order).
 *
 * The session parks a waiter with the broker's ticket for the bind; the
 * broker thread kicks every loop when binds complete, and the loop
 * releases the waiters whose ticket is done. A broker that does not answer
 * (frozen, partitioned) must not hold Subscribe forever: after
 * BIND_WAIT_MAX_MS the waiter is released anyway and the binding follows
 * when the broker comes back.
 *
 * One per worker; everything but bind_wait_kick() runs on its loop.
 */
#ifndef MYXID_BIND_WAIT_H
#define MYXID_BIND_WAIT_H

#include <stdbool.h>
#include <stdint.h>

#define BIND_WAIT_MAX_MS 1000

struct broker;
struct event_base;
struct bind_wait;

struct bind_waiter {
	struct bind_waiter *next, *prev;   /* private */
	uint64_t ticket;
	uint64_t deadline_ms;
	bool parked;
	void (*done)(struct bind_waiter *wt);   /* called once, on the loop */
};

struct bind_wait *bind_wait_new(struct event_base *base);
/* Waiters still parked are dropped without their callback. */
void bind_wait_free(struct bind_wait **bw);

/* Park wt until b reports ticket done (or BIND_WAIT_MAX_MS pass). */
void bind_wait_park(struct bind_wait *bw, struct broker *b, struct bind_waiter *wt,
		    uint64_t ticket, void (*done)(struct bind_waiter *wt));

/* Unpark without calling done (the session is going away). */
void bind_wait_cancel(struct bind_wait *bw, struct bind_waiter *wt);

/* Any thread: binds have completed, look at the waiters. */
void bind_wait_kick(struct bind_wait *bw);

#endif
