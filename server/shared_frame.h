/*
 * An encoded server->client WebSocket frame that many sockets send.
 *
 * A published event is serialised and framed once; every subscriber's
 * output buffer then takes a reference to the same bytes instead of a copy.
 * The reference count is atomic because frames are handed between event
 * loop threads.
 */
#ifndef MYXID_SHARED_FRAME_H
#define MYXID_SHARED_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include "ws_deflate.h"

struct evbuffer;

struct shared_frame {
	int refs;              /* atomic */
	size_t len;            /* header + payload */
	/* Where the event was published: it travels with the frame from the
	 * broker thread to the loops, so handing it over needs nothing else. */
	const char *exchange;  /* in this allocation, after data */
	const char *routing_key;
	/* Its position in the exchange's history ("mq":{"o":..}), or 0: set
	 * once by the encoder, before the frame is shared. */
	uint64_t position;
	/* permessage-deflate copies, one per window size, made by the first
	 * socket that needs one and shared by all (atomic; see
	 * shared_frame_deflated()). */
	struct shared_frame *deflated[WS_DEFLATE_VARIANTS];
	/* The event as an SSE message, made by the first SSE stream that
	 * needs it and shared by all (atomic; see shared_frame_install()). */
	struct shared_frame *sse;
	uint8_t data[];
};

/* A text frame holding payload, published to exchange/routing_key (all
 * copied once). The caller owns one reference. */
struct shared_frame *shared_frame_event(const char *payload, size_t len,
					const char *exchange,
					const char *routing_key);

/*
 * The frame compressed for sockets that negotiated permessage-deflate with
 * a 2^bits window: compressed once, at level, by whichever loop asks
 * first, then shared (f keeps it). Returns f itself when compressing does
 * not make it smaller or fails: send the plain frame then.
 */
struct shared_frame *shared_frame_deflated(struct shared_frame *f, unsigned bits,
					   int level);

/* f's payload (the event's JSON text), past the WebSocket header. */
const uint8_t *shared_frame_payload(const struct shared_frame *f, size_t *len);

/* Bytes framed for another transport (an SSE message): no WebSocket
 * header, no names. The caller owns one reference. */
struct shared_frame *shared_frame_raw(const void *data, size_t len);

/* Store v in *slot (a variant of a shared frame) unless another loop
 * stored one first: returns the one stored, and drops v if it lost. */
struct shared_frame *shared_frame_install(struct shared_frame **slot,
					  struct shared_frame *v);

struct shared_frame *shared_frame_ref(struct shared_frame *f);
void shared_frame_unref(struct shared_frame *f);

/*
 * Append the frame to out. Small frames are copied (cheaper than the
 * reference bookkeeping); larger ones are added by reference, holding a
 * reference until out has sent them. Returns 0 or -1.
 */
int shared_frame_send(struct shared_frame *f, struct evbuffer *out);

#endif
