/*
 * The RabbitMQ link's thread: the AMQP connection, the consume loop and
 * the commands the loops queued; see broker.h for what the link promises
 * and broker_bindings.c for the loops' side.
 *
 * rabbitmq-c is a blocking library, so all of it runs on one thread that
 * the event loops talk to through a locked command queue and an eventfd.
 * The thread waits in poll() on the AMQP socket and the eventfd, and calls
 * into rabbitmq-c with a zero timeout: that drains what arrived, sends
 * heartbeats when due and notices a dead peer, without ever blocking on
 * the network for longer than an RPC round trip.
 *
 * Channels: 1 consumes, 2 carries topology (declare, bind, unbind), 3
 * publishes. A channel error (a bind to a missing exchange, a publish to
 * one) closes only channel 2 or 3, which is reopened; consuming goes on.
 */
#include "broker_private.h"
#include "history_stream.h"
#include "config.h"
#include "log.h"
#include "event_frame.h"
#include "json_input.h"
#include "shared_frame.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>

/* ------------------------------------------------------------- helpers */

/* "amqp://user:***@host:port/vhost" for logs. */
static void hide_password(const char *url, char *out, size_t size)
{
	const char *scheme = strstr(url, "://"), *at = strrchr(url, '@');
	const char *colon = scheme ? strchr(scheme + 3, ':') : NULL;

	if (scheme && at && colon && colon < at)
		snprintf(out, size, "%.*s:***%s", (int)(colon - url), url, at);
	else
		snprintf(out, size, "%s", url);
}

const char *broker_reply_text(amqp_rpc_reply_t r, char *buf, size_t size)
{
	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL:
		return "ok";
	case AMQP_RESPONSE_NONE:
		return "missing reply";
	case AMQP_RESPONSE_LIBRARY_EXCEPTION:
		return amqp_error_string2(r.library_error);
	case AMQP_RESPONSE_SERVER_EXCEPTION:
		if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
			amqp_channel_close_t *m = r.reply.decoded;
			snprintf(buf, size, "%u %.*s", m->reply_code,
				 (int)m->reply_text.len, (char *)m->reply_text.bytes);
			return buf;
		}
		if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
			amqp_connection_close_t *m = r.reply.decoded;
			snprintf(buf, size, "%u %.*s", m->reply_code,
				 (int)m->reply_text.len, (char *)m->reply_text.bytes);
			return buf;
		}
		return "server error";
	}
	return "unknown error";
}

static void set_state(struct broker *b, enum broker_state s)
{
	__atomic_store_n(&b->state, (int)s, __ATOMIC_RELEASE);
}

/* ---------------------------------------------------------- connection */

static void disconnect(struct broker *b)
{
	if (b->conn == NULL)
		return;
	/* Best effort: the peer may be gone already. */
	amqp_connection_close(b->conn, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(b->conn);
	b->conn = NULL;
}

/* Open a connection to url; 0 or -1 (logged). */
static int connect_url(struct broker *b, const char *url)
{
	struct amqp_connection_info info;
	struct timeval tv = { CONNECT_TIMEOUT_S, 0 }, rpc = { RPC_TIMEOUT_S, 0 };
	char *copy = xstrdup(url), shown[256], buf[256];
	amqp_socket_t *sock;
	amqp_rpc_reply_t r;
	int rc;

	hide_password(url, shown, sizeof(shown));
	amqp_default_connection_info(&info);
	if (amqp_parse_url(copy, &info) != AMQP_STATUS_OK) {
		log_error("broker: cannot parse url %s", shown);
		free(copy);
		return -1;
	}
	/* "amqp://host/" names the empty vhost, which no broker has; users
	 * mean the default one, as pika reads it. */
	if (info.vhost == NULL || info.vhost[0] == '\0')
		info.vhost = "/";
	b->conn = amqp_new_connection();
	if (info.ssl) {
		sock = amqp_ssl_socket_new(b->conn);
		if (sock)
			amqp_ssl_socket_set_verify_peer(sock, 1);
	} else {
		sock = amqp_tcp_socket_new(b->conn);
	}
	if (sock == NULL) {
		log_error("broker: cannot create a socket for %s", shown);
		goto fail;
	}
	rc = amqp_socket_open_noblock(sock, info.host, info.port, &tv);
	if (rc != AMQP_STATUS_OK) {
		log_warn("broker: cannot connect to %s: %s", shown, amqp_error_string2(rc));
		goto fail;
	}
	amqp_set_rpc_timeout(b->conn, &rpc);
	r = amqp_login(b->conn, info.vhost, 0, 131072, (int)b->heartbeat_s,
		       AMQP_SASL_METHOD_PLAIN, info.user, info.password);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		log_warn("broker: login to %s failed: %s", shown,
			 broker_reply_text(r, buf, sizeof(buf)));
		goto fail;
	}
	pthread_mutex_lock(&b->lock);
	snprintf(b->url_shown, sizeof(b->url_shown), "%s", shown);
	pthread_mutex_unlock(&b->lock);
	free(copy);
	return 0;
fail:
	amqp_destroy_connection(b->conn);
	b->conn = NULL;
	free(copy);
	return -1;
}

/* Try each URL once, starting after the last one that worked or failed. */
static int connect_any(struct broker *b)
{
	for (size_t i = 0; i < b->n_urls; i++) {
		size_t idx = (b->url_index + i) % b->n_urls;
		if (connect_url(b, b->urls[idx]) == 0) {
			b->url_index = idx;
			return 0;
		}
	}
	/* Next round starts with the next node. */
	b->url_index = (b->url_index + 1) % b->n_urls;
	return -1;
}

static int open_channel(struct broker *b, amqp_channel_t ch)
{
	amqp_channel_open(b->conn, ch);
	return amqp_get_rpc_reply(b->conn).reply_type == AMQP_RESPONSE_NORMAL ? 0 : -1;
}

/*
 * After an RPC failed: if the server closed only channel ch, acknowledge,
 * reopen it and return 0; if the connection is gone, return -1.
 */
static int recover_channel(struct broker *b, amqp_channel_t ch, amqp_rpc_reply_t r)
{
	amqp_channel_close_ok_t ok;

	if (r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION ||
	    r.reply.id != AMQP_CHANNEL_CLOSE_METHOD)
		return -1;
	if (amqp_send_method(b->conn, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) != AMQP_STATUS_OK)
		return -1;
	return open_channel(b, ch);
}

static int declare_exchanges(struct broker *b)
{
	char buf[256];

	for (size_t i = 0; i < b->n_exchanges; i++) {
		const struct xdecl *x = &b->exchanges[i];
		amqp_rpc_reply_t r;

		amqp_exchange_declare(b->conn, CH_TOPOLOGY, amqp_cstring_bytes(x->name),
				      amqp_cstring_bytes(x->type), 0, x->durable, 0, 0,
				      amqp_empty_table);
		r = amqp_get_rpc_reply(b->conn);
		if (r.reply_type == AMQP_RESPONSE_NORMAL)
			continue;
		/* Usually PRECONDITION_FAILED: it exists with another type or
		 * durability. Its bindings may still work, so go on. */
		log_error("broker: cannot declare %s exchange '%s'%s: %s", x->type,
			  x->name, x->durable ? " (durable)" : "",
			  broker_reply_text(r, buf, sizeof(buf)));
		if (recover_channel(b, CH_TOPOLOGY, r) != 0)
			return -1;
	}
	return 0;
}

static int declare_queue(struct broker *b)
{
	amqp_table_entry_t arg;
	amqp_table_t args = { 1, &arg };
	amqp_rpc_reply_t r;
	char buf[256];

	arg.key = amqp_cstring_bytes("x-expires");
	arg.value.kind = AMQP_FIELD_KIND_I32;
	arg.value.value.i32 = (int32_t)b->expires_ms;
	/* Not exclusive: the queue must survive our connection dropping. */
	amqp_queue_declare(b->conn, CH_CONSUME, amqp_cstring_bytes(b->queue),
			   0, 0, 0, 0, args);
	r = amqp_get_rpc_reply(b->conn);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		log_error("broker: cannot declare queue %s: %s", b->queue,
			  broker_reply_text(r, buf, sizeof(buf)));
		return -1;
	}
	/* Acknowledged, not auto-acked: a message the broker has handed to
	 * its side of a connection that then drops is requeued, not lost. */
	amqp_basic_qos(b->conn, CH_CONSUME, 0, PREFETCH, 0);
	r = amqp_get_rpc_reply(b->conn);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		log_error("broker: cannot set the prefetch count: %s",
			  broker_reply_text(r, buf, sizeof(buf)));
		return -1;
	}
	b->ack_tag = 0;
	b->unacked = 0;
	amqp_basic_consume(b->conn, CH_CONSUME, amqp_cstring_bytes(b->queue),
			   amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
	r = amqp_get_rpc_reply(b->conn);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		log_error("broker: cannot consume from %s: %s", b->queue,
			  broker_reply_text(r, buf, sizeof(buf)));
		return -1;
	}
	return 0;
}

/* Bind or unbind; a channel error is logged and survived. -1: link lost. */
static int do_binding(struct broker *b, bool bind, const char *ex, const char *key)
{
	amqp_rpc_reply_t r;
	char buf[256];

	if (bind)
		amqp_queue_bind(b->conn, CH_TOPOLOGY, amqp_cstring_bytes(b->queue),
				amqp_cstring_bytes(ex), amqp_cstring_bytes(key),
				amqp_empty_table);
	else
		amqp_queue_unbind(b->conn, CH_TOPOLOGY, amqp_cstring_bytes(b->queue),
				  amqp_cstring_bytes(ex), amqp_cstring_bytes(key),
				  amqp_empty_table);
	r = amqp_get_rpc_reply(b->conn);
	if (r.reply_type == AMQP_RESPONSE_NORMAL) {
		log_debug("broker: %s %s/%s", bind ? "bound" : "unbound", ex, key);
		return 0;
	}
	log_error("broker: cannot %s %s/%s: %s", bind ? "bind" : "unbind", ex, key,
		  broker_reply_text(r, buf, sizeof(buf)));
	return recover_channel(b, CH_TOPOLOGY, r);
}

/*
 * Everything after login: channels, exchanges, the queue, and every binding
 * the node needs. Commands queued while unlinked are dropped: the binding
 * table already says what must be bound.
 */
static int link_up(struct broker *b)
{
	struct binding *snap = NULL;
	size_t n = 0;

	if (open_channel(b, CH_CONSUME) || open_channel(b, CH_TOPOLOGY) ||
	    open_channel(b, CH_PUBLISH) || declare_exchanges(b) || declare_queue(b) ||
	    broker_control_link_up(b) || broker_streams_link_up(b))
		return -1;
	pthread_mutex_lock(&b->lock);
	for (struct cmd *c = b->q_head, *next, **pp = &b->q_head; c; c = next) {
		next = c->next;
		if (c->kind == CMD_PUBLISH) {
			pp = &c->next;
			continue;
		}
		*pp = next;
		broker_cmd_free(c);
	}
	b->q_tail = NULL;
	for (struct cmd *c = b->q_head; c; c = c->next)
		b->q_tail = c;
	for (size_t i = 0; i < BINDING_BUCKETS; i++)
		for (struct binding *bd = b->buckets[i]; bd; bd = bd->next) {
			struct binding *copy = xcalloc(1, sizeof(*copy));
			copy->exchange = xstrdup(bd->exchange);
			copy->key = xstrdup(bd->key);
			copy->next = snap;
			snap = copy;
			n++;
		}
	b->linked = true;
	pthread_mutex_unlock(&b->lock);

	/* Bindings added meanwhile come as commands; duplicates are harmless. */
	while (snap != NULL) {
		struct binding *bd = snap;
		int rc = do_binding(b, true, bd->exchange, bd->key);
		snap = bd->next;
		free(bd->exchange);
		free(bd->key);
		free(bd);
		if (rc != 0) {
			while (snap) {
				bd = snap;
				snap = bd->next;
				free(bd->exchange);
				free(bd->key);
				free(bd);
			}
			return -1;
		}
	}
	log_notice("broker: connected to %s, queue %s, %zu binding(s) restored",
		   b->url_shown, b->queue, n);
	return 0;
}

static void link_down(struct broker *b)
{
	uint64_t seq;

	pthread_mutex_lock(&b->lock);
	b->linked = false;
	seq = b->cmd_seq;
	pthread_mutex_unlock(&b->lock);
	/* Binds still queued will be made from the table on reconnect; no
	 * Subscribe waits for them meanwhile. */
	broker_finish_through(b, seq);
	broker_streams_link_down(b);
	disconnect(b);
}

/* ------------------------------------------------------------ running */

/* A control message: JSON, not persistent, with its reply_to and
 * correlation_id. */
static void control_props(amqp_basic_properties_t *props, const struct cmd *c)
{
	props->_flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
	props->content_type = amqp_cstring_bytes("application/json");
	props->delivery_mode = 1;
	if (c->reply_to != NULL) {
		props->_flags |= AMQP_BASIC_REPLY_TO_FLAG;
		props->reply_to = amqp_cstring_bytes(c->reply_to);
	}
	if (c->corr != NULL) {
		props->_flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
		props->correlation_id = amqp_cstring_bytes(c->corr);
	}
}

static int run_commands(struct broker *b)
{
	struct cmd *list;
	uint64_t done = 0;

	pthread_mutex_lock(&b->lock);
	list = b->q_head;
	b->q_head = b->q_tail = NULL;
	b->q_publish_bytes = 0;
	pthread_mutex_unlock(&b->lock);

	while (list != NULL) {
		struct cmd *c = list;
		int rc = 0;

		list = c->next;
		if (c->kind == CMD_PUBLISH) {
			amqp_bytes_t body = { c->len, c->body };
			amqp_basic_properties_t props;
			amqp_table_entry_t rk;

			/* What Bunny sends for Myxi.push_event, so consumers
			 * cannot tell our publishes from a Myxi app's. */
			memset(&props, 0, sizeof(props));
			props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
				AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_PRIORITY_FLAG;
			props.content_type = amqp_cstring_bytes("application/octet-stream");
			props.delivery_mode = 2;
			props.priority = 0;
			if (c->to_stream)   /* through the default exchange */
				history_stream_props(&props, &rk, c->key);
			if (c->control)
				control_props(&props, c);
			rc = amqp_basic_publish(b->conn, CH_PUBLISH,
						amqp_cstring_bytes(c->to_stream ? "" : c->exchange),
						amqp_cstring_bytes(c->to_stream ? c->exchange : c->key),
						0, 0, &props, body);
			if (rc != AMQP_STATUS_OK) {
				log_warn("broker: publish to %s/%s failed: %s", c->exchange,
					 c->key, amqp_error_string2(rc));
				rc = -1;
			}
		} else {
			rc = do_binding(b, c->kind == CMD_BIND, c->exchange, c->key);
			if (c->seq > done)
				done = c->seq;
		}
		broker_cmd_free(c);
		if (rc != 0) {
			/* The link is gone: the rest is rebuilt from the table on
			 * reconnect (bindings) or lost (publishes, logged). */
			while (list) {
				c = list;
				list = c->next;
				if (c->kind == CMD_PUBLISH)
					log_warn("broker: publish to %s/%s lost with the connection",
						 c->exchange, c->key);
				broker_cmd_free(c);
			}
			return -1;     /* link_down() finishes every ticket */
		}
	}
	if (done != 0)
		broker_finish_through(b, done);
	return 0;
}

void broker_log_drop(struct broker *b, const char *ex, const char *key,
		     const char *why)
{
	uint64_t now = monotonic_ms();

	__atomic_add_fetch(&b->stats.rejected, 1, __ATOMIC_RELAXED);
	b->drops_unlogged++;
	/* At most one line a second: a bad publisher must not flood the log. */
	if (now - b->drop_log_ms < 1000)
		return;
	log_warn("broker: dropped a message from %s/%s: %s (%llu dropped since the "
		 "last report)", ex, key, why, (unsigned long long)b->drops_unlogged);
	b->drop_log_ms = now;
	b->drops_unlogged = 0;
}

/*
 * The loops a message to ex/key concerns. A direct exchange's key names
 * one binding, whose loops are known; for topic and fanout exchanges
 * (patterns) and exchanges the configuration does not declare, every loop
 * looks for itself.
 */
static uint64_t loops_for(struct broker *b, const char *ex, const char *key)
{
	uint64_t loops = b->all_loops;

	for (size_t i = 0; i < b->n_exchanges; i++) {
		if (strcmp(b->exchanges[i].name, ex) != 0)
			continue;
		if (b->exchanges[i].direct) {
			struct binding *bd;

			pthread_mutex_lock(&b->lock);
			bd = *broker_binding_slot(b, ex, key);
			loops = bd != NULL ? bd->loops : 0;
			pthread_mutex_unlock(&b->lock);
		}
		break;
	}
	return loops;
}

/* The sink's calls run under the lock, so that once broker_mute() has
 * returned none is still running into loops that are going away. */
void broker_flush_sink(struct broker *b)
{
	if (b->unflushed == 0)
		return;
	b->unflushed = 0;
	pthread_mutex_lock(&b->lock);
	if (!b->muted)
		b->sink.flush(b->sink.arg);
	pthread_mutex_unlock(&b->lock);
}

void broker_sink_deliver(struct broker *b, struct shared_frame *f, uint64_t loops)
{
	pthread_mutex_lock(&b->lock);
	if (!b->muted)
		b->sink.deliver(b->sink.arg, f, loops);
	pthread_mutex_unlock(&b->lock);
}

void broker_mute(struct broker *b)
{
	pthread_mutex_lock(&b->lock);
	b->muted = true;
	pthread_mutex_unlock(&b->lock);
}

static void handle_delivery(struct broker *b, const amqp_envelope_t *env)
{
	char ex[256], key[256];
	const char *why = NULL;
	struct shared_frame *f;
	uint64_t fp, loops;

	if (broker_control_delivery(b, env))
		return;
	b->ack_tag = env->delivery_tag;
	b->unacked++;
	fp = redelivery_fingerprint(env->exchange.bytes, env->exchange.len,
				    env->routing_key.bytes, env->routing_key.len,
				    env->message.body.bytes, env->message.body.len);
	if (env->redelivered && redelivery_seen(&b->handled, fp)) {
		__atomic_add_fetch(&b->stats.duplicates, 1, __ATOMIC_RELAXED);
		return;
	}
	redelivery_handled(&b->handled, fp);
	snprintf(ex, sizeof(ex), "%.*s", (int)env->exchange.len,
		 (const char *)env->exchange.bytes);
	snprintf(key, sizeof(key), "%.*s", (int)env->routing_key.len,
		 (const char *)env->routing_key.bytes);
	__atomic_add_fetch(&b->stats.received, 1, __ATOMIC_RELAXED);
	/* A NUL cuts key short: the event would reach another key's
	 * subscribers. */
	if (memchr(env->routing_key.bytes, '\0', env->routing_key.len) != NULL) {
		broker_log_drop(b, ex, key, "routing key holds a NUL byte");
		return;
	}
	loops = loops_for(b, ex, key);
	if (loops == 0)
		return;       /* unbound since it was published: nobody here */
	f = event_frame_encode_body(env->message.body.bytes, env->message.body.len,
				ex, key, 0, &why);
	if (f == NULL) {
		broker_log_drop(b, ex, key, why);
		return;
	}
	broker_sink_deliver(b, f, loops);
	shared_frame_unref(f);
	if (++b->unflushed >= HANDOFF_BATCH)
		broker_flush_sink(b);
}

/* Acknowledge everything handled so far in one frame. -1: link lost. */
static int ack_handled(struct broker *b)
{
	if (broker_streams_ack(b) != 0)
		return -1;
	if (b->unacked == 0)
		return 0;
	b->unacked = 0;
	return amqp_basic_ack(b->conn, CH_CONSUME, b->ack_tag, 1) == AMQP_STATUS_OK ? 0 : -1;
}

/* A frame that is not a delivery arrived: channel or connection trouble. */
static int handle_other_frame(struct broker *b)
{
	amqp_frame_t frame;
	struct timeval zero = { 0, 0 };
	char buf[256];

	if (amqp_simple_wait_frame_noblock(b->conn, &frame, &zero) != AMQP_STATUS_OK)
		return -1;
	if (frame.frame_type != AMQP_FRAME_METHOD)
		return 0;
	switch (frame.payload.method.id) {
	case AMQP_CHANNEL_CLOSE_METHOD: {
		amqp_rpc_reply_t r = { AMQP_RESPONSE_SERVER_EXCEPTION, frame.payload.method, 0 };
		log_error("broker: channel %u closed by the server: %s", frame.channel,
			  broker_reply_text(r, buf, sizeof(buf)));
		if (frame.channel == CH_CONSUME || frame.channel == CH_STREAM)
			return -1;
		return recover_channel(b, frame.channel, r);
	}
	case AMQP_CONNECTION_CLOSE_METHOD: {
		amqp_rpc_reply_t r = { AMQP_RESPONSE_SERVER_EXCEPTION, frame.payload.method, 0 };
		amqp_connection_close_ok_t ok;
		log_error("broker: connection closed by the server: %s",
			  broker_reply_text(r, buf, sizeof(buf)));
		amqp_send_method(b->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
		return -1;
	}
	case AMQP_BASIC_CANCEL_METHOD: {
		/* A stream consumer's tag is the stream's name; the node
		 * queue's is the server's (amq.ctag-...). */
		amqp_bytes_t tag = ((amqp_basic_cancel_t *)frame.payload.method.decoded)->consumer_tag;
		log_error("broker: the server cancelled our consumer %.*s (queue %s or a "
			  "history stream deleted?)", (int)tag.len, (const char *)tag.bytes, b->queue);
		return -1;
	}
	default:
		return 0;
	}
}

/* Read what is available; -1 when the link is lost. */
static int drain_deliveries(struct broker *b)
{
	for (;;) {
		struct timeval zero = { 0, 0 };
		amqp_envelope_t env;
		amqp_rpc_reply_t r;

		amqp_maybe_release_buffers(b->conn);
		r = amqp_consume_message(b->conn, &env, &zero, 0);
		if (r.reply_type == AMQP_RESPONSE_NORMAL) {
			if (env.channel == CH_STREAM)
				broker_stream_delivery(b, &env);
			else
				handle_delivery(b, &env);
			amqp_destroy_envelope(&env);
			if ((b->unacked >= ACK_BATCH || b->stream_unacked >= ACK_BATCH) &&
			    ack_handled(b) != 0)
				return -1;
			continue;
		}
		if (r.reply_type != AMQP_RESPONSE_LIBRARY_EXCEPTION)
			return -1;
		if (r.library_error == AMQP_STATUS_TIMEOUT)
			return ack_handled(b);
		if (r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
			if (handle_other_frame(b) != 0)
				return -1;
			continue;
		}
		log_warn("broker: connection lost: %s", amqp_error_string2(r.library_error));
		return -1;
	}
}

/* Deliveries are handed to the loops in batches: one wake-up for all the
 * messages of a read (or HANDOFF_BATCH of them), however it ends. */
static int consume_available(struct broker *b)
{
	int rc = drain_deliveries(b);

	broker_flush_sink(b);
	return rc;
}

static bool stopping(struct broker *b)
{
	bool s;

	pthread_mutex_lock(&b->lock);
	s = b->stopping;
	pthread_mutex_unlock(&b->lock);
	return s;
}

/* Wait for the socket (if any) or a wake-up, at most ms. */
static void wait_io(struct broker *b, int ms)
{
	struct pollfd p[2] = { { b->wake_fd, POLLIN, 0 }, { -1, POLLIN, 0 } };
	uint64_t v;

	if (b->conn != NULL)
		p[1].fd = amqp_get_sockfd(b->conn);
	if (poll(p, 2, ms) > 0 && (p[0].revents & POLLIN)) {
		if (read(b->wake_fd, &v, sizeof(v)) < 0) {
			/* EAGAIN: someone else drained it */
		}
	}
}

static int serve(struct broker *b)
{
	/* Wake often enough for rabbitmq-c to send heartbeats on time. */
	int tick = b->heartbeat_s ? (int)(b->heartbeat_s * 1000 / 4) : 1000;

	if (tick > 1000)
		tick = 1000;
	for (;;) {
		if (stopping(b))
			return ack_handled(b), 0;
		if (run_commands(b) != 0 || consume_available(b) != 0)
			return -1;
		broker_streams_tick(b);
		broker_control_tick(b);
		/* A remade stream is read from its start on a new link; a
		 * deleted one is made again by one. */
		if (broker_streams_relink(b) || broker_streams_check(b) != 0)
			return -1;
		/* Keep: poll only once rabbitmq-c's own buffers are drained, or
		 * frames it already read would wait a whole tick. */
		if (!amqp_frames_enqueued(b->conn) && !amqp_data_in_buffer(b->conn))
			wait_io(b, tick);
	}
}

static void *broker_main(void *arg)
{
	struct broker *b = arg;
	unsigned backoff = BACKOFF_MIN_MS;
	bool announced = false;

	json_input_thread_init();       /* every message is parsed here */
	while (!stopping(b)) {
		if (connect_any(b) == 0 && link_up(b) == 0) {
			set_state(b, BROKER_UP);
			__atomic_store_n(&b->tried, true, __ATOMIC_RELEASE);
			backoff = BACKOFF_MIN_MS;
			announced = false;
			if (serve(b) == 0)
				break;
			__atomic_add_fetch(&b->stats.reconnects, 1, __ATOMIC_RELAXED);
			log_warn("broker: link to %s lost; reconnecting", b->url_shown);
		}
		link_down(b);
		set_state(b, BROKER_CONNECTING);
		__atomic_store_n(&b->tried, true, __ATOMIC_RELEASE);
		if (!announced) {
			log_warn("broker: not connected; retrying with backoff "
				 "(WebSockets stay up, events wait in the broker)");
			announced = true;
		}
		/* Exponential backoff with jitter, so a restarted broker is not
		 * hit by every node at the same instant. */
		wait_io(b, (int)(backoff / 2 + random_u64() % (backoff / 2 + 1)));
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
	link_down(b);
	set_state(b, BROKER_STOPPED);
	json_input_thread_done();
	return NULL;
}

/* --------------------------------------------------------------- public */

static const char *type_name(enum exchange_type t)
{
	return t == EXCHANGE_TOPIC ? "topic" : t == EXCHANGE_FANOUT ? "fanout" : "direct";
}

struct broker *broker_start(const struct myxid_config *cfg,
			    const struct broker_sink *sink, unsigned n_loops,
			    struct history_store *history)
{
	struct broker *b = xcalloc(1, sizeof(*b));
	char host[64] = "host", id[17];

	b->n_urls = cfg->broker.n_urls;
	b->urls = xcalloc(b->n_urls, sizeof(*b->urls));
	for (size_t i = 0; i < b->n_urls; i++)
		b->urls[i] = xstrdup(cfg->broker.urls[i]);
	b->heartbeat_s = (cfg->broker.heartbeat_ms + 999) / 1000;
	b->expires_ms = cfg->broker.queue_expires_ms;
	gethostname(host, sizeof(host) - 1);
	random_hex(id, 8);
	broker_control_init(b, cfg->broker.queue_prefix);
	snprintf(b->queue, sizeof(b->queue), "%s.%s.%s", cfg->broker.queue_prefix,
		 host, id);
	b->n_exchanges = cfg->n_exchanges;
	b->exchanges = xcalloc(b->n_exchanges, sizeof(*b->exchanges));
	for (size_t i = 0; i < b->n_exchanges; i++) {
		b->exchanges[i].name = xstrdup(cfg->exchanges[i].name);
		b->exchanges[i].type = type_name(cfg->exchanges[i].type);
		b->exchanges[i].direct = cfg->exchanges[i].type == EXCHANGE_DIRECT;
		b->exchanges[i].durable = cfg->exchanges[i].durable;
	}
	broker_streams_init(b, cfg, history);
	b->sink = *sink;
	b->all_loops = n_loops >= 64 ? ~0ull : (1ull << n_loops) - 1;
	b->state = BROKER_CONNECTING;
	redelivery_init(&b->handled, PREFETCH);
	pthread_mutex_init(&b->lock, NULL);
	b->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (b->wake_fd < 0 || pthread_create(&b->thread, NULL, broker_main, b) != 0) {
		log_error("broker: cannot start the broker thread: %s", strerror(errno));
		if (b->wake_fd >= 0)
			close(b->wake_fd);
		b->thread = 0;
		broker_stop(&b);
		return NULL;
	}
	return b;
}

void broker_stop(struct broker **bp)
{
	struct broker *b = *bp;

	if (b == NULL)
		return;
	*bp = NULL;
	if (b->thread) {
		pthread_mutex_lock(&b->lock);
		b->stopping = true;
		pthread_mutex_unlock(&b->lock);
		broker_wake(b);
		pthread_join(b->thread, NULL);
		close(b->wake_fd);
	}
	while (b->q_head) {
		struct cmd *c = b->q_head;
		b->q_head = c->next;
		broker_cmd_free(c);
	}
	for (size_t i = 0; i < BINDING_BUCKETS; i++)
		while (b->buckets[i]) {
			struct binding *bd = b->buckets[i];
			b->buckets[i] = bd->next;
			free(bd->exchange);
			free(bd->key);
			free(bd);
		}
	for (size_t i = 0; i < b->n_urls; i++)
		free(b->urls[i]);
	free(b->urls);
	for (size_t i = 0; i < b->n_exchanges; i++)
		free(b->exchanges[i].name);
	free(b->exchanges);
	redelivery_free(&b->handled);
	broker_streams_free(b);
	pthread_mutex_destroy(&b->lock);
	free(b);
}
