/*
 * Event encoding; see reply.h.
 */
#include "reply.h"
#include "conn.h"
#include "log.h"

#include <string.h>

void reply_send(struct conn *c, const char *event, bool with_tag,
		json_object *tag, json_object *payload)
{
	json_object *o = json_object_new_object();
	const char *s;
	size_t len;

	json_object_object_add(o, "event", json_object_new_string(event));
	if (with_tag)
		json_object_object_add(o, "tag", json_object_get(tag));
	json_object_object_add(o, "payload",
			       payload ? payload : json_object_new_object());
	s = json_object_to_json_string_length(o, REPLY_JSON_FLAGS, &len);
	conn_send_text(c, s, len);
	json_object_put(o);
}

void reply_error(struct conn *c, json_object *tag, const char *code,
		 unsigned with, json_object *exchange, json_object *routing_key)
{
	json_object *p = json_object_new_object();

	json_object_object_add(p, "error", json_object_new_string(code));
	if (with & REPLY_EXCHANGE)
		json_object_object_add(p, "exchange", json_object_get(exchange));
	if (with & REPLY_ROUTING_KEY)
		json_object_object_add(p, "routing_key", json_object_get(routing_key));
	reply_send(c, "Error", true, tag, p);
}
