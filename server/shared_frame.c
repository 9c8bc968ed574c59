/*
 * Reference-counted, encode-once frames; see shared_frame.h.
 */
#include "shared_frame.h"
#include "util.h"
#include "ws_frame.h"

#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

/* Below this size a memcpy into the socket's buffer beats libevent's
 * per-reference chain allocation. */
#define SHARE_BY_REFERENCE_MIN 1024

struct shared_frame *shared_frame_event(const char *payload, size_t len,
					const char *exchange,
					const char *routing_key)
{
	uint8_t hdr[WS_MAX_HEADER];
	size_t hlen = ws_header_encode(hdr, WS_OP_TEXT, len);
	size_t el = strlen(exchange) + 1, rl = strlen(routing_key) + 1;
	struct shared_frame *f = xmalloc(sizeof(*f) + hlen + len + el + rl);
	char *names = (char *)f->data + hlen + len;

	__atomic_store_n(&f->refs, 1, __ATOMIC_RELAXED);
	f->len = hlen + len;
	f->position = 0;
	memcpy(f->data, hdr, hlen);
	memcpy(f->data + hlen, payload, len);
	f->exchange = memcpy(names, exchange, el);
	f->routing_key = memcpy(names + el, routing_key, rl);
	return f;
}

struct shared_frame *shared_frame_ref(struct shared_frame *f)
{
	__atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
	return f;
}

void shared_frame_unref(struct shared_frame *f)
{
	if (f != NULL && __atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(f);
}

static void release_reference(const void *data, size_t len, void *arg)
{
	shared_frame_unref(arg);
}

int shared_frame_send(struct shared_frame *f, struct evbuffer *out)
{
	if (f->len < SHARE_BY_REFERENCE_MIN)
		return evbuffer_add(out, f->data, f->len);
	shared_frame_ref(f);
	if (evbuffer_add_reference(out, f->data, f->len, release_reference, f) != 0) {
		shared_frame_unref(f);
		return -1;
	}
	return 0;
}
