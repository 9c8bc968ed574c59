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
	memset(f->deflated, 0, sizeof(f->deflated));
	f->sse = NULL;
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
	if (f == NULL || __atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (int i = 0; i < WS_DEFLATE_VARIANTS; i++)
		if (f->deflated[i] != NULL && f->deflated[i] != f)
			shared_frame_unref(f->deflated[i]);
	shared_frame_unref(f->sse);
	free(f);
}

const uint8_t *shared_frame_payload(const struct shared_frame *f, size_t *len)
{
	size_t hlen = ws_header_len(f->data);

	*len = f->len - hlen;
	return f->data + hlen;
}

struct shared_frame *shared_frame_raw(const void *data, size_t len)
{
	struct shared_frame *r = xmalloc(sizeof(*r) + len);

	memset(r, 0, sizeof(*r));
	r->refs = 1;
	r->len = len;
	memcpy(r->data, data, len);
	return r;
}

struct shared_frame *shared_frame_install(struct shared_frame **slot,
					  struct shared_frame *v)
{
	struct shared_frame *none = NULL;

	/* Two loops may build it at once: the first stored wins. */
	if (__atomic_compare_exchange_n(slot, &none, v, false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE))
		return v;
	shared_frame_unref(v);
	return none;
}

/* A frame of its own for the compressed bytes: RSV1 set in its header
 * (RFC 7692 6), no names (it travels only with its plain frame). */
static struct shared_frame *deflated_copy(const uint8_t *z, size_t zlen, uint8_t opcode)
{
	uint8_t hdr[WS_MAX_HEADER];
	size_t hlen = ws_header_encode(hdr, opcode, zlen);
	struct shared_frame *d = xmalloc(sizeof(*d) + hlen + zlen);

	memset(d, 0, sizeof(*d));
	d->refs = 1;
	d->len = hlen + zlen;
	hdr[0] |= WS_RSV1;
	memcpy(d->data, hdr, hlen);
	memcpy(d->data + hlen, z, zlen);
	return d;
}

struct shared_frame *shared_frame_deflated(struct shared_frame *f, unsigned bits,
					   int level)
{
	struct shared_frame **slot = &f->deflated[bits - WS_DEFLATE_MIN_BITS];
	struct shared_frame *d = __atomic_load_n(slot, __ATOMIC_ACQUIRE), *none = NULL;
	size_t hlen = ws_header_len(f->data), zlen;
	uint8_t *z;

	if (d != NULL)
		return d;
	z = ws_deflate_message(f->data + hlen, f->len - hlen, bits, level, &zlen);
	d = z != NULL && zlen < f->len - hlen ?
		deflated_copy(z, zlen, f->data[0] & 0x0f) : f;
	free(z);
	/* Two loops may compress at once: the first stored wins. The frame
	 * itself (not worth compressing) holds no extra reference. */
	if (d == f) {
		if (!__atomic_compare_exchange_n(slot, &none, d, false, __ATOMIC_ACQ_REL,
						 __ATOMIC_ACQUIRE))
			d = none;
		return d;
	}
	return shared_frame_install(slot, d);
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
