/*
 * The control exchange: how control commands reach every node.
 *
 * "<queue_prefix>.control" is a fanout exchange every node's queue is
 * bound to. A command published there (by a node's control API, or by an
 * application with Bunny) reaches every node, each of which runs it and,
 * when the message has reply_to and correlation_id, answers the asking
 * node's queue directly (the default exchange). Every node also says
 * "hello" there every HELLO_MS, so each knows which nodes are alive: a
 * node not heard from for NODE_TTL_MS no longer counts.
 *
 * A node that hears a new node says hello at once, so a node that starts
 * knows the others within a round trip.
 *
 * Broker thread only, except the node table (under b->lock) and the
 * publishing functions, which queue commands like broker_publish().
 */
#include "broker.h"
#include "broker_private.h"
#include "log.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HELLO_MS 1000
#define NODE_TTL_MS 3500

void broker_control_init(struct broker *b, const char *queue_prefix)
{
	snprintf(b->control_exchange, sizeof(b->control_exchange), "%s.control", queue_prefix);
}

const char *broker_control_exchange(const struct broker *b)
{
	return b->control_exchange;
}

const char *broker_node_id(const struct broker *b)
{
	return b->queue;
}

int broker_control_link_up(struct broker *b)
{
	amqp_rpc_reply_t r;
	char buf[256];

	amqp_exchange_declare(b->conn, CH_TOPOLOGY, amqp_cstring_bytes(b->control_exchange),
			      amqp_cstring_bytes("fanout"), 0, 0, 0, 0, amqp_empty_table);
	r = amqp_get_rpc_reply(b->conn);
	if (r.reply_type == AMQP_RESPONSE_NORMAL) {
		amqp_queue_bind(b->conn, CH_TOPOLOGY, amqp_cstring_bytes(b->queue),
				amqp_cstring_bytes(b->control_exchange), amqp_empty_bytes,
				amqp_empty_table);
		r = amqp_get_rpc_reply(b->conn);
	}
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		log_error("broker: cannot set up the control exchange %s: %s",
			  b->control_exchange, broker_reply_text(r, buf, sizeof(buf)));
		return -1;
	}
	b->hello_ms = 0;
	return 0;
}

static bool bytes_eq(amqp_bytes_t b, const char *s)
{
	return b.len == strlen(s) && memcmp(b.bytes, s, b.len) == 0;
}

static void copy_prop(char *out, size_t size, bool present, amqp_bytes_t v)
{
	if (!present || v.len >= size || memchr(v.bytes, '\0', v.len) != NULL)
		out[0] = '\0';
	else
		snprintf(out, size, "%.*s", (int)v.len, (const char *)v.bytes);
}

/* A hello: {"hello":NODE}. */
static bool hello(struct broker *b, const amqp_envelope_t *env)
{
	static const char lead[] = "{\"hello\":\"";
	const char *p = env->message.body.bytes, *end;
	size_t len = env->message.body.len;
	char node[256];

	if (len <= sizeof(lead) || memcmp(p, lead, sizeof(lead) - 1) != 0)
		return false;
	end = memchr(p + sizeof(lead) - 1, '"', len - (sizeof(lead) - 1));
	if (end == NULL || (size_t)(end - p) - (sizeof(lead) - 1) >= sizeof(node))
		return true;
	snprintf(node, sizeof(node), "%.*s", (int)(end - p - (sizeof(lead) - 1)),
		 p + sizeof(lead) - 1);
	broker_node_seen(b, node);
	return true;
}

bool broker_control_delivery(struct broker *b, const amqp_envelope_t *env)
{
	const amqp_basic_properties_t *p = &env->message.properties;
	char reply_to[256], corr[128];
	bool is_reply;

	is_reply = env->exchange.len == 0 && bytes_eq(env->routing_key, b->queue);
	if (!is_reply && !bytes_eq(env->exchange, b->control_exchange))
		return false;
	b->ack_tag = env->delivery_tag;
	b->unacked++;
	if (!is_reply && hello(b, env))
		return true;
	copy_prop(reply_to, sizeof(reply_to), p->_flags & AMQP_BASIC_REPLY_TO_FLAG, p->reply_to);
	copy_prop(corr, sizeof(corr), p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG,
		  p->correlation_id);
	if (is_reply && corr[0] == '\0') {
		broker_log_drop(b, "", b->queue, "a message to this node's queue that is no "
				"control answer (no correlation_id)");
		return true;
	}
	pthread_mutex_lock(&b->lock);
	if (b->sink.control != NULL && !b->muted)
		b->sink.control(b->sink.arg, is_reply, reply_to, corr, env->message.body.bytes,
				env->message.body.len);
	pthread_mutex_unlock(&b->lock);
	return true;
}

/* ----------------------------------------------------------- node table */

void broker_node_seen(struct broker *b, const char *node)
{
	uint64_t now = monotonic_ms();
	size_t i;

	pthread_mutex_lock(&b->lock);
	for (i = 0; i < b->n_nodes && strcmp(b->nodes[i].name, node) != 0; i++)
		;
	if (i == b->n_nodes) {
		if (b->n_nodes == MAX_NODES) {
			pthread_mutex_unlock(&b->lock);
			return;
		}
		snprintf(b->nodes[i].name, sizeof(b->nodes[i].name), "%s", node);
		b->n_nodes++;
		log_info("broker: node %s joined", node);
		/* Say hello at once: the newcomer learns of this node now, not
		 * a HELLO_MS later. */
		b->hello_ms = 0;
	}
	b->nodes[i].seen_ms = now;
	pthread_mutex_unlock(&b->lock);
}

bool broker_node_live(struct broker *b, const char *node)
{
	uint64_t now = monotonic_ms();
	bool live = false;

	pthread_mutex_lock(&b->lock);
	for (size_t i = 0; i < b->n_nodes; i++)
		if (strcmp(b->nodes[i].name, node) == 0) {
			live = now - b->nodes[i].seen_ms <= NODE_TTL_MS;
			break;
		}
	pthread_mutex_unlock(&b->lock);
	return live;
}

unsigned broker_live_nodes(struct broker *b)
{
	uint64_t now = monotonic_ms();
	unsigned n = 0;

	pthread_mutex_lock(&b->lock);
	for (size_t i = 0; i < b->n_nodes;) {
		if (now - b->nodes[i].seen_ms <= NODE_TTL_MS) {
			n++;
			i++;
			continue;
		}
		log_notice("broker: node %s not heard from for %u ms: it no longer counts",
			   b->nodes[i].name, NODE_TTL_MS);
		b->nodes[i] = b->nodes[--b->n_nodes];
	}
	pthread_mutex_unlock(&b->lock);
	return n;
}

/* ---------------------------------------------------------- publishing */

/* A hello every HELLO_MS while linked (broker thread). */
void broker_control_tick(struct broker *b)
{
	char body[300];
	uint64_t now = monotonic_ms();
	int n;

	if (now - b->hello_ms < HELLO_MS)
		return;
	b->hello_ms = now;
	n = snprintf(body, sizeof(body), "{\"hello\":\"%s\"}", b->queue);
	broker_control_send(b, b->control_exchange, "", NULL, NULL, body, (size_t)n);
}
