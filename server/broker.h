/*
 * The RabbitMQ link: one thread that owns the AMQP connection, so the
 * event loops never wait on the broker.
 *
 * The node has one queue (not one per socket, as Myxi had): named
 * "<prefix>.<host>.<random>", non-exclusive, with x-expires, so it outlives a
 * dropped connection (messages published meanwhile wait in it) and vanishes
 * on its own once the node is gone. Bindings are counted per (exchange,
 * routing key) over the whole node's loops: bound when the first local
 * subscriber arrives, unbound when the last leaves, and all restored after
 * a reconnect. Channel errors on a binding close only the topology channel,
 * which is reopened; consuming goes on.
 *
 * Every function here may be called from any thread and never blocks on
 * the network.
 */
#ifndef MYXID_BROKER_H
#define MYXID_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct myxid_config;
struct shared_frame;
struct broker;
struct history_store;

enum broker_state {
	BROKER_CONNECTING,   /* never connected yet, or trying again */
	BROKER_UP,
	BROKER_STOPPED
};

/*
 * Where deliveries go, called on the broker thread. deliver() gets each
 * message that is a JSON object, encoded once with "mq" appended (f knows
 * its exchange and routing key), and the loops it concerns (bit i: loop
 * i); it takes a reference to f if it keeps it. flush() follows a batch of
 * deliver() calls: the time to wake the loops.
 */
struct broker_sink {
	void (*deliver)(void *arg, struct shared_frame *f, uint64_t loops);
	void (*flush)(void *arg);
	/* A control command from the control exchange (reply false; answer
	 * to reply_to with corr when both are set), or an answer to one of
	 * ours (reply true, corr names it). body is not NUL-terminated. */
	void (*control)(void *arg, bool reply, const char *reply_to, const char *corr,
			const void *body, size_t len);
	void *arg;
};

/*
 * Start the link for cfg's broker block and exchanges (cfg must outlive the
 * broker: a reload keeps the broker of the first configuration), for
 * n_loops event loops (at most 64). Returns NULL only if the thread cannot
 * be created.
 */
struct broker *broker_start(const struct myxid_config *cfg,
			    const struct broker_sink *sink, unsigned n_loops,
			    struct history_store *history);

/*
 * History (exchanges with a history block) lives on RabbitMQ streams that
 * every node mirrors into history (broker_stream.c). Has every stream been
 * read up to the time it started (or did the first connection attempt
 * fail)? The daemon waits for it before serving, so that a resume is not
 * refused for want of reading.
 */
bool broker_history_ready(struct broker *b);

/* The stream of exchange's history, or NULL when it keeps none. */
const char *broker_history_stream(const struct broker *b, const char *exchange);

/* Queue body for exchange's history stream (through the default exchange,
 * routing_key in the "myxid-routing-key" header): kept, positioned, and
 * delivered by every node. 0, or -1 as broker_publish. */
int broker_publish_history(struct broker *b, const char *exchange,
			   const char *routing_key, const char *body, size_t len);

/* No more calls into the sink (the loops are going): returns once none is
 * running. Bindings and publishing go on until broker_stop(). */
void broker_mute(struct broker *b);

/* Stop the thread, close the connection (the queue expires on its own). */
void broker_stop(struct broker **b);

/*
 * Bind / unbind of the node queue on behalf of a loop, which calls each
 * once per (exchange, routing key) when its first local subscriber comes
 * and its last goes (the router's hook); the queue stays bound while any
 * loop holds the key, and messages for a direct exchange's key go only to
 * the loops that hold it. broker_bind returns 0 when the binding is in
 * place (or the link is down: it is made from the table on reconnect),
 * else a ticket that broker_ticket_done() reports done once RabbitMQ has
 * answered the bind.
 */
uint64_t broker_bind(struct broker *b, unsigned loop, const char *exchange,
		     const char *routing_key);
bool broker_ticket_done(const struct broker *b, uint64_t ticket);

/* fn(arg) is called on the broker thread whenever bind tickets complete;
 * it must only wake a loop. NULL stops the calls (and waits for one in
 * progress). */
typedef void broker_progress_fn(void *arg);
void broker_set_progress(struct broker *b, broker_progress_fn *fn, void *arg);
void broker_unbind(struct broker *b, unsigned loop, const char *exchange,
		   const char *routing_key);

/*
 * Queue body for publishing to exchange with routing_key, with the message
 * properties Bunny sets for Myxi.push_event. Returns 0 if accepted, -1 if the broker
 * is not connected or too much is already waiting.
 */
int broker_publish(struct broker *b, const char *exchange,
		   const char *routing_key, const char *body, size_t len);

/*
 * The control exchange (broker_control.c): "<queue_prefix>.control", a
 * fanout every node's queue is bound to. broker_control_send() queues body
 * for exchange/routing_key with reply_to and correlation_id when not NULL
 * (0, or -1 as broker_publish). A node is named by its queue.
 */
int broker_control_send(struct broker *b, const char *exchange, const char *routing_key,
			const char *reply_to, const char *corr, const char *body, size_t len);
const char *broker_control_exchange(const struct broker *b);
const char *broker_node_id(const struct broker *b);
/* Nodes heard from lately (their hellos), this one included once linked. */
unsigned broker_live_nodes(struct broker *b);
/* Has node (a queue name) said hello lately? */
bool broker_node_live(struct broker *b, const char *node);

enum broker_state broker_state(const struct broker *b);

/* For /healthz and logs: the URL in use (password hidden), or NULL. */
void broker_describe(const struct broker *b, char *out, size_t size);

struct broker_stats {
	uint64_t received;       /* deliveries from the queue */
	uint64_t rejected;       /* not JSON objects: dropped and logged */
	uint64_t published;      /* via broker_publish */
	uint64_t reconnects;
	uint64_t duplicates;     /* redelivered after a drop, already handled: dropped */
	uint64_t bindings;       /* current (exchange, key) pairs */
};
void broker_get_stats(const struct broker *b, struct broker_stats *st);

#endif
