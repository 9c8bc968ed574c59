/*
 * Event encoding; see reply.h.
 */
#include "reply.h"
#include "conn.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

/* Most replies (Authenticated, Subscribed, Pong...) fit here; a larger one
 * (YourSubscriptions for many keys) takes one malloc. */
#define REPLY_LOCAL 1024

void reply_send(struct conn *c, const char *event, bool with_tag,
		json_object *tag, json_object *payload)
{
	/*
	 * The envelope is written by hand around json-c's text of tag and
	 * payload: wrapping them in a json-c object cost a hash table, two
	 * entries and a print buffer per reply, a tenth of an Authenticate's
	 * CPU. The shape is exactly what json-c's compact output of that
	 * object was.
	 */
	char local[REPLY_LOCAL], *buf = local;
	size_t elen = strlen(event), tlen = 0, plen = 2, need, n;
	const char *t = NULL, *p = "{}";

	if (with_tag)
		t = json_object_to_json_string_length(tag, REPLY_JSON_FLAGS, &tlen);
	if (payload != NULL)
		p = json_object_to_json_string_length(payload, REPLY_JSON_FLAGS, &plen);
	need = sizeof "{\"event\":\"\",\"tag\":,\"payload\":}" + elen + tlen + plen;
	if (need > sizeof local && (buf = malloc(need)) == NULL) {
		log_error("reply: out of memory for a %zu-byte %s event", need, event);
		json_object_put(payload);
		return;
	}
	n = 0;
	memcpy(buf + n, "{\"event\":\"", 10), n += 10;
	memcpy(buf + n, event, elen), n += elen;
	buf[n++] = '"';
	if (with_tag) {
		memcpy(buf + n, ",\"tag\":", 7), n += 7;
		memcpy(buf + n, t, tlen), n += tlen;
	}
	memcpy(buf + n, ",\"payload\":", 11), n += 11;
	memcpy(buf + n, p, plen), n += plen;
	buf[n++] = '}';
	conn_send_text(c, buf, n);
	if (buf != local)
		free(buf);
	json_object_put(payload);
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
