/*
 * The wire contract of a history stream message (broker mode), shared by
 * the daemon (broker_thread.c publishes, broker_stream.c reads) and
 * myxid-push: the body is what Myxi.push_event publishes; the event's
 * routing key travels in a header, since the stream is reached through the
 * default exchange; the timestamp lets a starting node's mirror tell it has
 * caught up.
 */
#ifndef MYXID_HISTORY_STREAM_H
#define MYXID_HISTORY_STREAM_H

#include <stdint.h>
#include <time.h>
#include <amqp.h>

#define HISTORY_STREAM_KEY_HEADER "myxid-routing-key"

/* Adds the header (in *rk, which must outlive the publish) and the
 * timestamp to props. */
static inline void history_stream_props(amqp_basic_properties_t *props,
					amqp_table_entry_t *rk, const char *routing_key)
{
	rk->key = amqp_cstring_bytes(HISTORY_STREAM_KEY_HEADER);
	rk->value.kind = AMQP_FIELD_KIND_UTF8;
	rk->value.value.bytes = amqp_cstring_bytes(routing_key);
	props->_flags |= AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_TIMESTAMP_FLAG;
	props->headers = (amqp_table_t){ 1, rk };
	props->timestamp = (uint64_t)time(NULL);
}

#endif
