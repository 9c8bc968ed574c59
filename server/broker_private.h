/*
 * The RabbitMQ link's private state, shared by its two files: the thread
 * (broker_thread.c: connection, consume loop, command runner) and the
 * loops' side (broker_bindings.c: binding table, command queue, publish,
 * stats). Nothing else includes it; the rest of the daemon sees broker.h.
 *
 * Locking: the fields under "shared, under lock" are taken with b->lock
 * from both sides; "the thread's own" are touched by the broker thread
 * only, so it needs no lock for them.
 */
#ifndef MYXID_BROKER_PRIVATE_H
#define MYXID_BROKER_PRIVATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <amqp.h>
#include "broker.h"
#include "redelivery.h"

struct history_store;
struct history_log;
struct myxid_config;

#define CH_CONSUME 1
#define CH_TOPOLOGY 2
#define CH_PUBLISH 3
#define CH_STREAM 4       /* history streams' consumers (broker_stream.c) */

#define CONNECT_TIMEOUT_S 5
#define RPC_TIMEOUT_S 10
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 5000
/* Publishes accepted but not yet written, in bytes. */
#define PUBLISH_QUEUE_MAX (64u * 1024 * 1024)
#define BINDING_BUCKETS 4096
/* Unacknowledged deliveries the broker may have in flight to us; acks go
 * back in batches of a quarter of it, so the pipe never runs dry. */
#define PREFETCH 2048
#define ACK_BATCH (PREFETCH / 4)
/* Deliveries handed to the loops before they are woken, at most; a read
 * that brings fewer is handed over when it is drained. */
#define HANDOFF_BATCH 64

enum cmd_kind { CMD_BIND, CMD_UNBIND, CMD_PUBLISH };

struct cmd {
	enum cmd_kind kind;
	struct cmd *next;
	uint64_t seq;            /* CMD_BIND: the ticket it completes */
	char *exchange;
	char *key;
	char *body;
	size_t len;
	bool to_stream;          /* CMD_PUBLISH: exchange is a history stream,
				  * reached through the default exchange */
	bool control;            /* CMD_PUBLISH: a control message (JSON) */
	char *reply_to, *corr;   /* its properties, or NULL */
};

/* Nodes a node keeps track of (their hellos on the control exchange). */
#define MAX_NODES 256
struct node_seen {
	char name[256];
	uint64_t seen_ms;
};

struct binding {
	struct binding *next;
	uint64_t loops;         /* bit i: loop i has local subscribers */
	uint64_t ticket;        /* its bind command; done once done_seq >= it */
	char *exchange;
	char *key;
};

struct xdecl {
	char *name;
	const char *type;
	bool direct;            /* routing key == binding key */
	bool durable;
};

/*
 * An exchange's history on RabbitMQ: a stream every node mirrors into the
 * daemon's history store (broker_stream.c). Positions are the stream's
 * offsets + 1, the same on every node.
 */
struct xstream {
	char *exchange;
	char name[256];                /* <queue_prefix>.history.<exchange> */
	struct history_log *log;       /* the mirror, in the daemon's store */
	unsigned age_s;                /* x-max-age (0: none) */
	uint64_t max_bytes;            /* x-max-length-bytes */
	uint64_t started_s;            /* the consumer's start (wall clock) */
	bool consuming;                /* consume-ok seen on this link */
	bool caught_up;                /* read up to when it started */
	char epoch[65];                /* the mirror's, while it is the stream's */
	/* Positions are base + offset + 1; base stays 0 unless the stream
	 * turned out not to be the one mirrored (remade), when positions go
	 * on from the mirror's under an epoch of this node's own. */
	uint64_t base;
	int64_t last_offset;           /* the last message read (-1: none) */
	uint64_t last_fp;              /* its fingerprint */
	uint64_t verify_ms;            /* resumed at last_offset, waiting to read
					* it again to recognise the stream (0: no) */
};

struct broker {
	/* set at start, read-only afterwards */
	char **urls;
	size_t n_urls;
	unsigned heartbeat_s;
	unsigned expires_ms;
	char queue[256];
	struct xdecl *exchanges;
	size_t n_exchanges;
	struct broker_sink sink;
	uint64_t all_loops;
	struct xstream *streams;        /* exchanges with history */
	size_t n_streams;
	pthread_t thread;
	int wake_fd;

	/* shared, under lock */
	pthread_mutex_t lock;
	struct cmd *q_head, *q_tail;
	size_t q_publish_bytes;
	struct binding *buckets[BINDING_BUCKETS];
	size_t n_bindings;
	bool linked;            /* connected, bindings restored: take commands */
	uint64_t cmd_seq;       /* last bind ticket handed out */
	broker_progress_fn *progress;   /* binds completed: called on our thread */
	void *progress_arg;
	bool muted;                    /* broker_mute(): the sink is gone */
	bool stopping;
	char url_shown[256];
	struct broker_stats stats;
	int state;              /* enum broker_state */
	struct node_seen nodes[MAX_NODES];
	size_t n_nodes;

	uint64_t done_seq;      /* atomic: bind tickets up to this are done */

	/* the thread's own */
	amqp_connection_state_t conn;
	size_t url_index;
	uint64_t drop_log_ms;   /* when a dropped message was last logged */
	uint64_t drops_unlogged;
	struct redelivery handled;  /* fingerprints of the last PREFETCH handled */
	uint64_t ack_tag;           /* highest delivery tag handled, not yet acked */
	unsigned unacked;
	unsigned unflushed;         /* handed to the sink since its last flush */
	uint64_t stream_ack_tag;    /* the same, for CH_STREAM */
	unsigned stream_unacked;
	uint64_t stream_rx_ms;      /* last stream delivery (monotonic) */
	bool tried;                 /* a first connection attempt has ended */
	bool stream_relink;         /* a mirror restarted: consume streams anew */
	uint64_t stream_check_ms;   /* when the streams were last looked for */
	char control_exchange[300];  /* set at start */
	uint64_t hello_ms;          /* when this node last said hello */
};

/* broker_control.c */
void broker_control_init(struct broker *b, const char *queue_prefix);
int broker_control_link_up(struct broker *b);
/* A delivery from the control exchange, or an answer to this node: handled
 * (and counted for the ack); false for any other delivery. */
bool broker_control_delivery(struct broker *b, const amqp_envelope_t *env);
void broker_control_tick(struct broker *b);
void broker_node_seen(struct broker *b, const char *node);

/* The binding of ex/key, or where to link a new one; caller holds the lock. */
struct binding **broker_binding_slot(struct broker *b, const char *ex,
				     const char *key);

void broker_cmd_free(struct cmd *c);

/* Wake the broker thread's poll() (thread-safe, never blocks). */
void broker_wake(struct broker *b);

/* Bind tickets up to seq are done; broker thread only. */
void broker_finish_through(struct broker *b, uint64_t seq);

/* broker_stream.c, on the broker thread: */
/* The history streams from cfg's exchanges, their mirrors in store. */
void broker_streams_init(struct broker *b, const struct myxid_config *cfg,
			 struct history_store *store);
void broker_streams_free(struct broker *b);
/* Declare and consume every stream (after a (re)connect): -1 link lost. */
int broker_streams_link_up(struct broker *b);
void broker_streams_link_down(struct broker *b);
/* One delivery on CH_STREAM: mirrored, then handed to the loops. */
void broker_stream_delivery(struct broker *b, const amqp_envelope_t *env);
/* Acknowledge what CH_STREAM delivered. -1: link lost. */
int broker_streams_ack(struct broker *b);
/* Streams with nothing delivered for a while have caught up; one that
 * does not deliver its last read message again was remade. */
void broker_streams_tick(struct broker *b);
/* A mirror restarted: the link must be made again to read from the start
 * of the new stream (checked and cleared by the thread). */
bool broker_streams_relink(struct broker *b);
/* Every few seconds: are the streams still there? -1: link again. */
int broker_streams_check(struct broker *b);
/* Deliveries are over: hand what was batched to the loops (thread's). */
void broker_flush_sink(struct broker *b);
/* Hand f to the sink (under b->lock, unless muted: see broker_mute). */
void broker_sink_deliver(struct broker *b, struct shared_frame *f, uint64_t loops);
/* A message dropped: counted, and logged at most once a second. */
void broker_log_drop(struct broker *b, const char *ex, const char *key, const char *why);
const char *broker_reply_text(amqp_rpc_reply_t r, char *buf, size_t size);

#endif
