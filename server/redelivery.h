/*
 * Telling a redelivered AMQP message we already fanned out from one we
 * never saw.
 *
 * The consumer acknowledges in batches, so when the AMQP connection drops
 * the broker requeues what it had not yet seen acknowledged -- including
 * messages we had already delivered to browsers. They come back flagged
 * "redelivered". The broker holds at most `prefetch` unacknowledged
 * messages for us, so a redelivered message we already handled is among
 * the last `prefetch` we handled: this remembers a fingerprint (exchange,
 * routing key, body) of each of those, in a fixed ring, and a redelivered
 * message whose fingerprint is there is dropped once per remembered copy.
 *
 * The cost of the scheme: a redelivered message identical, byte for byte,
 * to one handled within the last `prefetch` messages is taken for that one.
 * Events that carry an id or a timestamp never collide.
 *
 * Owned and used by the broker thread only; no locking.
 */
#ifndef MYXID_REDELIVERY_H
#define MYXID_REDELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct redelivery {
	uint64_t *seen;         /* ring of fingerprints; 0 = empty slot */
	size_t size;
	size_t next;
};

/* size: the consumer's prefetch count. */
void redelivery_init(struct redelivery *r, size_t size);
void redelivery_free(struct redelivery *r);

uint64_t redelivery_fingerprint(const void *ex, size_t ex_len,
				const void *key, size_t key_len,
				const void *body, size_t body_len);

/* Remember a message that was handled. */
void redelivery_handled(struct redelivery *r, uint64_t fp);

/* For a message the broker flags as redelivered: true if it was handled
 * already (the remembered copy is used up). */
bool redelivery_seen(struct redelivery *r, uint64_t fp);

#endif
