/*
 * Subscribe's history: resume and late joiners; see session_history.h.
 *
 * The seam between a replay and live delivery: positions grow per
 * exchange, and a frame's position is given (and the frame kept in the
 * history) before any loop delivers it. So a replay taken at some moment
 * holds every event of the key up to the log's position then, and the
 * subscription then ignores positioned frames at or below that position
 * (router_sub.seen): each event is seen once, in order. While the
 * subscription waits for its reply (a broker bind), it ignores them all;
 * the replay taken afterwards covers what it ignored.
 */
#include "session_history.h"
#include "config.h"
#include "conn.h"
#include "json_input.h"
#include "metrics.h"
#include "reply.h"
#include "router.h"
#include "runconf.h"
#include "shared_frame.h"
#include "util.h"
#include "worker.h"

#include <string.h>

/* JavaScript holds integers exactly below 2^53. */
#define POSITION_MAX ((INT64_C(1) << 53) - 1)

const char *history_ask_parse(struct history_ask *ask, json_object *payload,
			      size_t max_replay, const char **why)
{
	json_object *since = NULL, *n = NULL, *off, *ep;
	int64_t v;

	memset(ask, 0, sizeof(*ask));
	if (json_object_object_get_ex(payload, "since", &since) && since != NULL) {
		if (!json_object_is_type(since, json_type_object) ||
		    !json_object_object_get_ex(since, "offset", &off) ||
		    !json_object_object_get_ex(since, "epoch", &ep)) {
			*why = "since must be {\"offset\": POSITION, \"epoch\": EPOCH}";
			return "InvalidSince";
		}
		v = json_object_get_int64(off);
		if (!json_object_is_type(off, json_type_int) || v < 0 || v > POSITION_MAX) {
			*why = "since.offset must be an integer from 0 to 2^53-1";
			return "InvalidSince";
		}
		if (json_input_string(ep) == NULL ||
		    (size_t)json_object_get_string_len(ep) > HISTORY_EPOCH_MAX) {
			*why = "since.epoch must be a string of at most 64 characters";
			return "InvalidSince";
		}
		ask->since = true;
		ask->after = (uint64_t)v;
		memcpy(ask->epoch, json_object_get_string(ep),
		       (size_t)json_object_get_string_len(ep) + 1);
	}
	if (json_object_object_get_ex(payload, "history", &n) && n != NULL) {
		v = json_object_get_int64(n);
		if (!json_object_is_type(n, json_type_int) || v < 0 ||
		    (uint64_t)v > max_replay) {
			*why = "history must be an integer from 0 to history_max_replay";
			return "InvalidHistory";
		}
		ask->last = (size_t)v;
	}
	return NULL;
}

/* The history that covers sub, or NULL: per key, so not a topic pattern
 * and not a fanout exchange (whose subscriptions get every key). */
static struct history_log *sub_history(struct worker *w, const struct router_sub *sub)
{
	struct exchange_rt *ex = runconf_exchange(worker_runconf(w), sub->exchange);

	if (ex == NULL || ex->conf->type == EXCHANGE_FANOUT ||
	    (ex->conf->type == EXCHANGE_TOPIC && strpbrk(sub->routing_key, "*#")))
		return NULL;
	return worker_history(w, ex);
}

void session_history_hold(struct worker *w, struct router_sub *sub)
{
	if (sub_history(w, sub) != NULL)
		sub->seen = UINT64_MAX;
}

/* Drops the oldest events until the replay fits budget bytes; returns
 * whether it had to. A replay must not close its socket as a slow reader. */
static bool trim_to(struct history_replay *rp, size_t budget)
{
	size_t total = 0, keep = rp->n;

	while (keep > 0 && total + rp->frames[keep - 1]->len <= budget)
		total += rp->frames[--keep]->len;
	if (keep == 0)
		return false;
	for (size_t i = 0; i < keep; i++)
		shared_frame_unref(rp->frames[i]);
	memmove(rp->frames, rp->frames + keep, (rp->n - keep) * sizeof(*rp->frames));
	memmove(rp->positions, rp->positions + keep, (rp->n - keep) * sizeof(*rp->positions));
	rp->n -= keep;
	return true;
}

void session_history_reply(struct conn *c, struct worker *w, const struct history_ask *ask,
			   json_object *tag, json_object *exchange,
			   json_object *key, struct router_sub *sub)
{
	const struct myxid_config *cfg = worker_config(w);
	struct history_log *log = sub_history(w, sub);
	struct history_replay rp;
	json_object *p = json_object_new_object();
	long long now = (long long)monotonic_ms();
	char epoch[HISTORY_EPOCH_MAX + 1];

	memset(&rp, 0, sizeof(rp));
	json_object_object_add(p, "exchange", json_object_get(exchange));
	json_object_object_add(p, "routing_key", json_object_get(key));
	if (log != NULL) {
		if (ask->since)
			history_since(log, sub->routing_key, ask->epoch, ask->after,
				      cfg->history_max_replay, now, &rp);
		else if (ask->last > 0)
			history_last(log, sub->routing_key, ask->last, now, &rp);
		else
			rp.position = history_position(log);
		if (trim_to(&rp, cfg->max_output_buffer / 2) && ask->since) {
			/* Too much to send at once: the page must refetch. */
			history_replay_free(&rp);
			rp.position = history_position(log);
		}
		history_log_epoch(log, epoch, sizeof(epoch));
		json_object_object_add(p, "epoch", json_object_new_string(epoch));
		json_object_object_add(p, "offset", json_object_new_int64((int64_t)rp.position));
		sub->seen = rp.position;
	}
	if (ask->since) {
		json_object_object_add(p, "recovered", json_object_new_boolean(rp.complete));
		metrics_inc(rp.complete ? M_HISTORY_RECOVERED : M_HISTORY_NOT_RECOVERED);
	}
	reply_send(c, "Subscribed", true, tag, p);
	for (size_t i = 0; i < rp.n; i++)
		conn_send_shared(c, rp.frames[i]);
	metrics_add(M_HISTORY_REPLAYED, (int64_t)rp.n);
	history_replay_free(&rp);
}
