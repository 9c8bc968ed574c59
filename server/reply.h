/*
 * Encoding the events the daemon sends to a client, in Myxi's exact shape:
 * compact JSON, keys in the order Myxi writes them,
 *     {"event":NAME,"tag":TAG,"payload":{...}}
 * with the tag key left out only where Myxi leaves it out (Welcome,
 * InvalidJSON).
 */
#ifndef MYXID_REPLY_H
#define MYXID_REPLY_H

#include <stdbool.h>
#include <json-c/json.h>
#include "event_frame.h"

struct conn;

/* Events are written exactly as published ones are (event_frame.h). */
#define REPLY_JSON_FLAGS EVENT_FRAME_JSON_FLAGS

/*
 * Send an event. event is a plain name (nothing JSON would escape). With
 * with_tag, the "tag" key is written (tag NULL gives null); tag is
 * borrowed. payload is consumed (NULL gives {}).
 */
void reply_send(struct conn *c, const char *event, bool with_tag,
		json_object *tag, json_object *payload);

/* Which context keys an Error payload carries (JSON null is a NULL
 * json_object, so presence cannot be told from the pointer). */
#define REPLY_EXCHANGE    0x1u
#define REPLY_ROUTING_KEY 0x2u

/* Send {"event":"Error","tag":TAG,"payload":{"error":CODE}} plus the
 * "exchange" and "routing_key" keys named in with (values borrowed). */
void reply_error(struct conn *c, json_object *tag, const char *code,
		 unsigned with, json_object *exchange, json_object *routing_key);

#endif
