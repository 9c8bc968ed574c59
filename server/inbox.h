/*
 * Frames handed to an event loop by another thread (the broker's): posts
 * go into a locked array that the loop swaps out and handles in order, on
 * its own thread. Posting does not wake the loop; the poster flushes once
 * per batch (a broker read usually brings many messages), so a busy link
 * costs one wake-up per batch, not one per message, and no allocation per
 * message once the arrays have grown.
 */
#ifndef MYXID_INBOX_H
#define MYXID_INBOX_H

struct event_base;
struct shared_frame;
struct inbox;

/* Called on the loop for each frame posted; f->exchange and
 * f->routing_key say where it was published. */
typedef void inbox_handle_fn(void *arg, struct shared_frame *f);

struct inbox *inbox_new(struct event_base *base, inbox_handle_fn *handle,
			void *arg);

/* Drop what is still queued and free. */
void inbox_free(struct inbox **ib);

/* Thread-safe: queue f (a reference is taken) for the loop. */
void inbox_post(struct inbox *ib, struct shared_frame *f);

/* Thread-safe: wake the loop if something was posted since it last
 * looked. */
void inbox_flush(struct inbox *ib);

#endif
