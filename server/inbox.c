/*
 * Cross-thread delivery queue; see inbox.h.
 */
#include "inbox.h"
#include "log.h"
#include "shared_frame.h"
#include "util.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

struct item {
	struct item *next;
	struct shared_frame *f;
	const char *routing_key;     /* points into exchange[] */
	char exchange[];             /* "exchange\0routing_key\0" */
};

struct inbox {
	pthread_mutex_t lock;
	struct item *head, *tail;
	struct event *ev;
	inbox_handle_fn *handle;
	void *arg;
};

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct inbox *ib = arg;
	struct item *list;

	pthread_mutex_lock(&ib->lock);
	list = ib->head;
	ib->head = ib->tail = NULL;
	pthread_mutex_unlock(&ib->lock);
	while (list != NULL) {
		struct item *it = list;
		list = it->next;
		ib->handle(ib->arg, it->exchange, it->routing_key, it->f);
		shared_frame_unref(it->f);
		free(it);
	}
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
	while (ib->head != NULL) {
		struct item *it = ib->head;
		ib->head = it->next;
		shared_frame_unref(it->f);
		free(it);
	}
	event_free(ib->ev);
	pthread_mutex_destroy(&ib->lock);
	free(ib);
}

void inbox_post(struct inbox *ib, const char *exchange,
		const char *routing_key, struct shared_frame *f)
{
	size_t el = strlen(exchange), rl = strlen(routing_key);
	struct item *it = xmalloc(sizeof(*it) + el + rl + 2);
	bool was_empty;

	it->next = NULL;
	it->f = shared_frame_ref(f);
	memcpy(it->exchange, exchange, el + 1);
	memcpy(it->exchange + el + 1, routing_key, rl + 1);
	it->routing_key = it->exchange + el + 1;
	pthread_mutex_lock(&ib->lock);
	was_empty = ib->head == NULL;
	if (ib->tail)
		ib->tail->next = it;
	else
		ib->head = it;
	ib->tail = it;
	pthread_mutex_unlock(&ib->lock);
	/* One activation drains everything queued until it runs. */
	if (was_empty)
		event_active(ib->ev, 0, 0);
}
