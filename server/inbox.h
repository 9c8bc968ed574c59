/*
 * Deliveries handed to an event loop by another thread (the broker's): a
 * locked list drained by one libevent event, so the loop processes them
 * in order, in batches, on its own thread.
 */
#ifndef MYXID_INBOX_H
#define MYXID_INBOX_H

struct event_base;
struct shared_frame;
struct inbox;

typedef void inbox_handle_fn(void *arg, const char *exchange,
			     const char *routing_key, struct shared_frame *f);

struct inbox *inbox_new(struct event_base *base, inbox_handle_fn *handle,
			void *arg);

/* Drop what is still queued and free. */
void inbox_free(struct inbox **ib);

/* Thread-safe: queue f (a reference is taken) for the loop. */
void inbox_post(struct inbox *ib, const char *exchange,
		const char *routing_key, struct shared_frame *f);

#endif
