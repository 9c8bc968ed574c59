/* Fingerprints of recently handled AMQP messages; see redelivery.h. */
#include "redelivery.h"
#include "util.h"

#include <stdlib.h>

void redelivery_init(struct redelivery *r, size_t size)
{
	r->seen = xcalloc(size ? size : 1, sizeof(*r->seen));
	r->size = size ? size : 1;
	r->next = 0;
}

void redelivery_free(struct redelivery *r)
{
	free(r->seen);
	r->seen = NULL;
}

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
	while (n--)
		h = (h ^ *p++) * 1099511628211ull;
	return h;
}

uint64_t redelivery_fingerprint(const void *ex, size_t ex_len,
				const void *key, size_t key_len,
				const void *body, size_t body_len)
{
	uint64_t h = 1469598103934665603ull;
	unsigned char sep = 0xff;   /* never in a name: keeps ("ab","c") != ("a","bc") */

	h = fnv1a(h, ex, ex_len);
	h = fnv1a(h, &sep, 1);
	h = fnv1a(h, key, key_len);
	h = fnv1a(h, &sep, 1);
	h = fnv1a(h, body, body_len);
	return h ? h : 1;          /* 0 marks an empty slot */
}

void redelivery_handled(struct redelivery *r, uint64_t fp)
{
	r->seen[r->next] = fp;
	r->next = (r->next + 1) % r->size;
}

bool redelivery_seen(struct redelivery *r, uint64_t fp)
{
	/* Only redelivered messages get here -- after a reconnect, never on
	 * the steady path -- so a linear scan is fine. */
	for (size_t i = 0; i < r->size; i++) {
		if (r->seen[i] == fp) {
			r->seen[i] = 0;
			return true;
		}
	}
	return false;
}
