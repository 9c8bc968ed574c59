/*
 * What a Subscribe asks of an exchange's history, and the Subscribed reply
 * that answers it: "since" (resume after a position of an epoch) or
 * "history" (a late joiner's last N events), then the replay itself, with
 * the seam to live delivery closed by the subscription's position (see
 * router_sub.seen).
 */
#ifndef MYXID_SESSION_HISTORY_H
#define MYXID_SESSION_HISTORY_H

#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>
#include "history.h"

struct conn;
struct worker;
struct router_sub;

/* Parsed from one Subscribe; applies to each of its keys (positions grow
 * per exchange, so one position means the same for all of them). */
struct history_ask {
	bool since;                           /* resume */
	uint64_t after;
	char epoch[HISTORY_EPOCH_MAX + 1];
	size_t last;                          /* late joiner: last N (0: no) */
};

/* Reads "since" and "history" from payload into ask. Returns NULL, or the
 * Error code to answer (InvalidSince, InvalidHistory) with *why. */
const char *history_ask_parse(struct history_ask *ask, json_object *payload,
			      size_t max_replay, const char **why);

/* A new subscription of a key whose exchange keeps history waits for its
 * replay: positioned frames are held back until session_history_reply(). */
void session_history_hold(struct worker *w, struct router_sub *sub);

/* Sends Subscribed for sub (key as the client wrote it, exchange as the
 * client wrote it; tag borrowed), adding epoch, offset and recovered as
 * ask and the history call for, then the events replayed. */
void session_history_reply(struct conn *c, struct worker *w, const struct history_ask *ask,
			   json_object *tag, json_object *exchange,
			   json_object *key, struct router_sub *sub);

#endif
