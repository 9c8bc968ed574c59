/*
 * Output queue with control-frame priority; see outq.h.
 */
#include "outq.h"
#include "util.h"

#include <stdlib.h>
#include <event2/buffer.h>

void outq_init(struct outq *q)
{
	q->backlog = NULL;
	q->lens = NULL;
	q->head = q->n = q->cap = 0;
}

void outq_free(struct outq *q)
{
	if (q->backlog)
		evbuffer_free(q->backlog);
	free(q->lens);
	outq_init(q);
}

struct evbuffer *outq_target(struct outq *q, struct evbuffer *out,
			     size_t frame_len)
{
	if (q->n == 0 && evbuffer_get_length(out) < OUTQ_BATCH)
		return out;
	if (q->backlog == NULL)
		q->backlog = evbuffer_new();
	if (q->n == q->cap) {
		/* Grow the ring, unwrapping it. */
		size_t cap = q->cap ? 2 * q->cap : 16;
		uint32_t *v = xmalloc(cap * sizeof(*v));
		for (size_t i = 0; i < q->n; i++)
			v[i] = q->lens[(q->head + i) % q->cap];
		free(q->lens);
		q->lens = v;
		q->head = 0;
		q->cap = cap;
	}
	q->lens[(q->head + q->n++) % q->cap] = (uint32_t)frame_len;
	return q->backlog;
}

void outq_refill(struct outq *q, struct evbuffer *out)
{
	size_t move = 0, have = evbuffer_get_length(out);

	while (q->n > 0 && have + move < OUTQ_BATCH) {
		move += q->lens[q->head];
		q->head = (q->head + 1) % q->cap;
		q->n--;
	}
	if (move > 0)
		evbuffer_remove_buffer(q->backlog, out, move);
}

size_t outq_pending(const struct outq *q, const struct evbuffer *out)
{
	return evbuffer_get_length(out) +
		(q->backlog ? evbuffer_get_length(q->backlog) : 0);
}

void outq_drop(struct outq *q)
{
	if (q->backlog)
		evbuffer_drain(q->backlog, evbuffer_get_length(q->backlog));
	q->head = q->n = 0;
}
