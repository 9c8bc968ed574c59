/*
 * A socket's outgoing data frames, kept so control frames are not starved:
 * data frames go to the bufferevent's output only while it holds less than
 * a batch; beyond that they wait in a backlog and move over, whole frames
 * at a time, as the output drains. Control frames (pong, ping, close) are
 * always appended to the output directly, where only whole frames ever
 * sit, so they overtake the backlog.
 */
#ifndef MYXID_OUTQ_H
#define MYXID_OUTQ_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* Output bytes below which data frames are written straight through. */
#define OUTQ_BATCH (64 * 1024)

struct outq {
	struct evbuffer *backlog;
	uint32_t *lens;            /* ring: length of each backlog frame */
	size_t head, n, cap;
};

void outq_init(struct outq *q);
void outq_free(struct outq *q);

/* Where to write the next data frame of frame_len bytes: out itself, or the
 * backlog (the frame is then recorded). Write the whole frame there. */
struct evbuffer *outq_target(struct outq *q, struct evbuffer *out,
			     size_t frame_len);

/* Move whole backlog frames into out while it holds less than a batch. */
void outq_refill(struct outq *q, struct evbuffer *out);

/* Bytes waiting: out plus the backlog. */
size_t outq_pending(const struct outq *q, const struct evbuffer *out);

/* Forget the backlog (the socket is being closed for being slow). */
void outq_drop(struct outq *q);

#endif
