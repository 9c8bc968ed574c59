/*
 * Turning a published event into the frame subscribers receive: the event
 * object with "mq":{"e":EXCHANGE,"rk":ROUTING_KEY} appended (Myxi's shape),
 * encoded once, and handed to the subscription table.
 */
#ifndef MYXID_PUBLISH_H
#define MYXID_PUBLISH_H

#include <stddef.h>
#include <json-c/json.h>

struct worker;
struct shared_frame;

/* Encode event (a JSON object; "mq" is set on it). Never fails. */
struct shared_frame *publish_encode(json_object *event, const char *exchange,
				    const char *routing_key);

/*
 * Parse a broker message body and encode it. Returns NULL with *why set
 * when the body is not a JSON object.
 */
struct shared_frame *publish_encode_body(const char *body, size_t len,
					 const char *exchange,
					 const char *routing_key,
					 const char **why);

/* Deliver f to w's local subscribers; returns how many got it. */
size_t publish_local(struct worker *w, const char *exchange,
		     const char *routing_key, struct shared_frame *f);

/* Ruby's to_s of a JSON routing key (1234 -> "1234", null -> "",
 * true -> "true", strings as they are). Returns a new string, or NULL for
 * objects, arrays and strings holding NUL, which make no routing key. */
char *publish_routing_key_string(json_object *v);

#endif
