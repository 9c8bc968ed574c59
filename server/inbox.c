/*
 * Cross-thread frame queue; see inbox.h.
 */
#include "inbox.h"
#include "shared_frame.h"
#include "util.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <event2/event.h>

/* After a burst the loop's array is freed rather than kept at its peak
 * once it holds more than this many slots. */
#define INBOX_KEEP_SLOTS 4096

struct batch {
	struct shared_frame **f;     /* one reference each */
	size_t n, cap;
};

struct inbox {
	pthread_mutex_t lock;
	struct batch posted;         /* under lock: filled by posters */
	bool wake_pending;           /* under lock: an activation is on its way */
	struct batch handling;       /* the loop's own, empty between drains */
	struct event *ev;
	inbox_handle_fn *handle;
	void *arg;
};

static void batch_drop(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		shared_frame_unref(b->f[i]);
	b->n = 0;
}

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct inbox *ib = arg;
	struct batch b;

	/* Swap arrays: posters fill the emptied one while we work. */
	pthread_mutex_lock(&ib->lock);
	b = ib->posted;
	ib->posted = ib->handling;
	ib->wake_pending = false;
	pthread_mutex_unlock(&ib->lock);

	for (size_t i = 0; i < b.n; i++)
		ib->handle(ib->arg, b.f[i]);
	batch_drop(&b);
	if (b.cap > INBOX_KEEP_SLOTS) {
		free(b.f);
		b.f = NULL;
		b.cap = 0;
	}
	ib->handling = b;
}

struct inbox *inbox_new(struct event_base *base, inbox_handle_fn *handle,
			void *arg)
{
	struct inbox *ib = xcalloc(1, sizeof(*ib));

	pthread_mutex_init(&ib->lock, NULL);
	ib->ev = event_new(base, -1, 0, drain_cb, ib);
	ib->handle = handle;
	ib->arg = arg;
	return ib;
}

void inbox_free(struct inbox **ibp)
{
	struct inbox *ib = *ibp;

	if (ib == NULL)
		return;
	*ibp = NULL;
	batch_drop(&ib->posted);
	free(ib->posted.f);
	free(ib->handling.f);
	event_free(ib->ev);
	pthread_mutex_destroy(&ib->lock);
	free(ib);
}

void inbox_post(struct inbox *ib, struct shared_frame *f)
{
	shared_frame_ref(f);
	pthread_mutex_lock(&ib->lock);
	if (ib->posted.n == ib->posted.cap) {
		ib->posted.cap = ib->posted.cap ? ib->posted.cap * 2 : 64;
		ib->posted.f = xrealloc(ib->posted.f,
					ib->posted.cap * sizeof(*ib->posted.f));
	}
	ib->posted.f[ib->posted.n++] = f;
	pthread_mutex_unlock(&ib->lock);
}

void inbox_flush(struct inbox *ib)
{
	bool wake;

	pthread_mutex_lock(&ib->lock);
	wake = ib->posted.n > 0 && !ib->wake_pending;
	if (wake)
		ib->wake_pending = true;
	pthread_mutex_unlock(&ib->lock);
	/* One activation handles everything posted until it runs. */
	if (wake)
		event_active(ib->ev, 0, 0);
}
