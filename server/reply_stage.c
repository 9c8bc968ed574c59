/*
 * The reply stage (see reply_stage.h). Records live in one arena per
 * loop, each socket's chained by offset, so staging copies the frame once
 * and allocates nothing.
 */
#include "reply_stage.h"
#include "util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#define STAGE_BYTES (64 * 1024)
#define STAGE_SOCKS 1024
#define STAGE_IOV 32
#define NO_REC UINT32_MAX

struct rec {
	uint32_t next;              /* offset of the socket's next record, or NO_REC */
	uint32_t len;               /* bytes of frame that follow */
};

struct reply_stage {
	struct event *flush;
	struct staged_socket *socks[STAGE_SOCKS];  /* in order; NULL: gone */
	size_t n_socks;
	size_t used;
	_Alignas(8) uint8_t arena[STAGE_BYTES];
};

static struct rec *rec_at(struct reply_stage *st, uint32_t off)
{
	return (struct rec *)(void *)(st->arena + off);
}

static void unstage(struct reply_stage *st, struct staged_socket *s)
{
	st->socks[s->slot - 1] = NULL;
	s->slot = 0;
}

/* s's records from the one at off on, into its output. */
static void spill_from(struct reply_stage *st, struct staged_socket *s, uint32_t off,
		       size_t skip)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);

	for (; off != NO_REC; off = rec_at(st, off)->next) {
		struct rec *r = rec_at(st, off);

		evbuffer_add(out, (uint8_t *)(r + 1) + skip, r->len - skip);
		skip = 0;
	}
}

static void flush_one(struct reply_stage *st, struct staged_socket *s)
{
	struct iovec iov[STAGE_IOV];
	struct msghdr msg = { .msg_iov = iov };
	uint32_t off = s->first;
	size_t n = 0;
	ssize_t sent;

	for (uint32_t o = off; o != NO_REC && n < STAGE_IOV; o = rec_at(st, o)->next) {
		iov[n].iov_base = rec_at(st, o) + 1;
		iov[n++].iov_len = rec_at(st, o)->len;
	}
	msg.msg_iovlen = n;
	/* An error is left for the bufferevent's own I/O to report. */
	sent = sendmsg(bufferevent_getfd(s->bev), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (sent < 0)
		sent = 0;
	/* Whatever the kernel did not take goes the buffered way. */
	while (off != NO_REC && (size_t)sent >= rec_at(st, off)->len) {
		sent -= rec_at(st, off)->len;
		off = rec_at(st, off)->next;
	}
	if (off != NO_REC)
		spill_from(st, s, off, (size_t)sent);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct reply_stage *st = arg;

	for (size_t i = 0; i < st->n_socks; i++) {
		struct staged_socket *s = st->socks[i];

		if (s == NULL)
			continue;
		flush_one(st, s);
		unstage(st, s);
	}
	st->n_socks = 0;
	st->used = 0;
}

struct reply_stage *reply_stage_new(struct event_base *base)
{
	struct reply_stage *st = xmalloc(sizeof(*st));

	st->n_socks = 0;
	st->used = 0;
	st->flush = event_new(base, -1, 0, flush_cb, st);
	return st;
}

void reply_stage_free(struct reply_stage **stp)
{
	if (*stp == NULL)
		return;
	event_free((*stp)->flush);
	free(*stp);
	*stp = NULL;
}

bool reply_stage_add(struct reply_stage *st, struct staged_socket *s,
		     const void *hdr, size_t hlen, const void *payload, size_t len)
{
	size_t need = (sizeof(struct rec) + hlen + len + 7) & ~(size_t)7;
	uint32_t off = (uint32_t)st->used;
	struct rec *r;

	if (s->slot == 0 && st->n_socks == STAGE_SOCKS)
		return false;
	if (STAGE_BYTES - st->used < need) {
		reply_stage_spill(st, s);
		return false;
	}
	r = rec_at(st, off);
	r->next = NO_REC;
	r->len = (uint32_t)(hlen + len);
	memcpy(r + 1, hdr, hlen);
	memcpy((uint8_t *)(r + 1) + hlen, payload, len);
	st->used += need;
	if (s->slot == 0) {
		if (st->n_socks == 0)
			event_active(st->flush, EV_TIMEOUT, 1);
		st->socks[st->n_socks++] = s;
		s->slot = (uint32_t)st->n_socks;
		s->first = off;
	} else {
		rec_at(st, s->last)->next = off;
	}
	s->last = off;
	return true;
}

void reply_stage_spill(struct reply_stage *st, struct staged_socket *s)
{
	if (s->slot == 0)
		return;
	spill_from(st, s, s->first, 0);
	unstage(st, s);
}

void reply_stage_forget(struct reply_stage *st, struct staged_socket *s)
{
	if (s->slot != 0)
		unstage(st, s);
}
