/* Subscribe answers held until the broker has bound; see bind_wait.h. */
#include "bind_wait.h"
#include "broker.h"
#include "util.h"

#include <stdlib.h>
#include <event2/event.h>

/* How often parked waiters are checked against their deadline. */
#define BIND_WAIT_TICK_MS 100

struct bind_wait {
	struct broker *broker;         /* set by the first park */
	struct event *ev;
	struct bind_waiter *head;
};

static void unlink_waiter(struct bind_wait *bw, struct bind_waiter *wt)
{
	if (wt->prev)
		wt->prev->next = wt->next;
	else
		bw->head = wt->next;
	if (wt->next)
		wt->next->prev = wt->prev;
	wt->next = wt->prev = NULL;
	wt->parked = false;
}

static void arm(struct bind_wait *bw)
{
	struct timeval tick = { 0, BIND_WAIT_TICK_MS * 1000 };

	if (bw->head != NULL)
		event_add(bw->ev, &tick);
}

static void release_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bind_wait *bw = arg;
	uint64_t now = monotonic_ms();
	struct bind_waiter *wt = bw->head, *next;

	(void)fd;
	(void)what;
	for (; wt != NULL; wt = next) {
		next = wt->next;
		if (broker_ticket_done(bw->broker, wt->ticket) || now >= wt->deadline_ms) {
			unlink_waiter(bw, wt);
			/* done() may park or cancel other waiters of this loop;
			 * start over from the head rather than trust next. */
			wt->done(wt);
			next = bw->head;
		}
	}
	arm(bw);
}

struct bind_wait *bind_wait_new(struct event_base *base)
{
	struct bind_wait *bw = xcalloc(1, sizeof(*bw));

	bw->ev = event_new(base, -1, 0, release_cb, bw);
	return bw;
}

void bind_wait_free(struct bind_wait **bwp)
{
	struct bind_wait *bw = *bwp;

	if (bw == NULL)
		return;
	while (bw->head != NULL)
		unlink_waiter(bw, bw->head);
	event_free(bw->ev);
	free(bw);
	*bwp = NULL;
}

void bind_wait_park(struct bind_wait *bw, struct broker *b, struct bind_waiter *wt,
		    uint64_t ticket, void (*done)(struct bind_waiter *wt))
{
	bw->broker = b;         /* the node has one broker link */
	wt->ticket = ticket;
	wt->deadline_ms = monotonic_ms() + BIND_WAIT_MAX_MS;
	wt->done = done;
	wt->parked = true;
	wt->prev = NULL;
	wt->next = bw->head;
	if (bw->head)
		bw->head->prev = wt;
	bw->head = wt;
	arm(bw);
	/* The bind may have completed between broker_bind() and now. */
	event_active(bw->ev, 0, 0);
}

void bind_wait_cancel(struct bind_wait *bw, struct bind_waiter *wt)
{
	if (wt->parked)
		unlink_waiter(bw, wt);
}

void bind_wait_kick(struct bind_wait *bw)
{
	event_active(bw->ev, 0, 0);
}
