/*
 * Turning a published event into the frame subscribers receive: the event
 * object with "mq":{"e":EXCHANGE,"rk":ROUTING_KEY} appended (Myxi's shape;
 * "o":POSITION too for an exchange with history),
 * encoded once into a shared frame. Pure encoding: no router, no worker, so
 * the broker thread can use it as well as the loops.
 */
#ifndef MYXID_EVENT_FRAME_H
#define MYXID_EVENT_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

struct shared_frame;

/* Every JSON the daemon writes: compact, and "/" left unescaped as Ruby's
 * to_json does. */
#define EVENT_FRAME_JSON_FLAGS \
	(JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* Encode event (a JSON object; "mq" is set on it, with "o": position
 * unless position is 0: an exchange without history). Never fails. */
struct shared_frame *event_frame_encode(json_object *event, const char *exchange,
					const char *routing_key, uint64_t position);

/*
 * Parse a broker message body and encode it. Returns NULL with *why set
 * when the body is not a JSON object.
 */
struct shared_frame *event_frame_encode_body(const char *body, size_t len,
					     const char *exchange,
					     const char *routing_key,
					     uint64_t position, const char **why);

/* Ruby's to_s of a JSON routing key (1234 -> "1234", null -> "",
 * true -> "true", strings as they are). Returns a new string, or NULL for
 * objects, arrays and strings holding NUL, which make no routing key. */
char *event_frame_routing_key(json_object *v);

#endif
