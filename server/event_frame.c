/*
 * Event -> frame encoding; see event_frame.h.
 */
#include "event_frame.h"
#include "json_input.h"
#include "shared_frame.h"
#include "utf8.h"
#include "util.h"

#include <string.h>

/* Deeper nesting than this is refused (json-c recurses while parsing). */
#define PUBLISH_MAX_DEPTH 64

struct shared_frame *event_frame_encode(json_object *event, const char *exchange,
					const char *routing_key, uint64_t position)
{
	json_object *mq = json_object_new_object();
	struct shared_frame *f;
	const char *s;
	size_t len;

	json_object_object_add(mq, "e", json_object_new_string(exchange));
	json_object_object_add(mq, "rk", json_object_new_string(routing_key));
	if (position != 0)
		json_object_object_add(mq, "o", json_object_new_int64((int64_t)position));
	json_object_object_add(event, "mq", mq);
	s = json_object_to_json_string_length(event, EVENT_FRAME_JSON_FLAGS, &len);
	f = shared_frame_event(s, len, exchange, routing_key);
	f->position = position;
	return f;
}

struct shared_frame *event_frame_encode_body(const char *body, size_t len,
					     const char *exchange,
					     const char *routing_key,
					     uint64_t position, const char **why)
{
	json_object *o;
	struct shared_frame *f = NULL;

	/* AMQP names may hold any byte, but the event carries them as JSON
	 * strings in a text frame: invalid UTF-8 there makes browsers fail
	 * the socket of every subscriber a fanout or "#" reaches. */
	if (!utf8_valid(exchange, strlen(exchange)) ||
	    !utf8_valid(routing_key, strlen(routing_key))) {
		*why = "exchange or routing key is not valid UTF-8";
		return NULL;
	}
	o = json_input_parse(body, len, PUBLISH_MAX_DEPTH);
	if (o == NULL)
		*why = "body is not valid JSON";
	else if (!json_object_is_type(o, json_type_object))
		*why = "body is not a JSON object";
	else
		f = event_frame_encode(o, exchange, routing_key, position);
	json_object_put(o);
	return f;
}

char *event_frame_routing_key(json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null:
		return xstrdup("");
	case json_type_string: {
		const char *p = json_object_get_string(v);
		size_t len = (size_t)json_object_get_string_len(v);
		/* A NUL would silently cut the key short everywhere downstream. */
		return memchr(p, '\0', len) ? NULL : xstrndup(p, len);
	}
	case json_type_boolean:
	case json_type_int:
	case json_type_double:
		/* As written by the client for numbers, as Ruby prints them. */
		return xstrdup(json_object_to_json_string_ext(v, EVENT_FRAME_JSON_FLAGS));
	default:
		return NULL;
	}
}
