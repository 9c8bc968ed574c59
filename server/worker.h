/*
 * A worker: one event loop on its own thread, with its own plugin
 * instances and subscription table; its listener (listener.h, above conn)
 * holds its listening sockets and connections. Workers
 * share only the broker link, the per-address connection counts and the
 * TLS context, all thread-safe. See daemon.c for the process around them.
 *
 * struct worker is private to worker.c: the modules running on the loop
 * reach what they need through the accessors below, and the daemon above
 * reaches back only through the hooks it hands in.
 */
#ifndef MYXID_WORKER_H
#define MYXID_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "router.h"

struct event_base;
struct myxid_config;
struct router;
struct runconf;
struct broker;
struct bind_wait;
struct ip_table;
struct shared_frame;
struct reply_stage;
struct worker;
struct exchange_rt;
struct history_store;
struct history_log;
struct presence;
typedef struct ssl_ctx_st SSL_CTX;

struct worker_stats {
	uint64_t published;
	uint64_t delivered;
};

typedef void worker_fanout_done_fn(void *arg, size_t delivered);
/* A task run on every worker's thread (worker_broadcast). */
typedef void worker_each_fn(struct worker *w, void *arg);
typedef void worker_done_fn(void *arg);

/*
 * What a worker calls in the process around it. The daemon sets them; the
 * worker sits below the daemon and never includes it. A worker without
 * hooks (myxid -t, unit tests) fans out to its own subscribers only.
 */
struct worker_hooks {
	/* Deliver f to the subscribers of every worker; then, on origin's
	 * thread, call done(done_arg, total deliveries). */
	void (*fanout)(void *arg, struct worker *origin, const char *exchange,
		       const char *routing_key, struct shared_frame *f,
		       worker_fanout_done_fn *done, void *done_arg);
	/* Run each(w, op) on every worker's thread; then, on origin's
	 * thread, done(op). */
	void (*broadcast)(void *arg, struct worker *origin, worker_each_fn *each,
			  worker_done_fn *done, void *op);
	/* Called on the worker's thread as its loop ends. */
	void (*stopped)(void *arg, struct worker *w);
	void *arg;
};

/* A new, empty worker number index (hooks copied; may be NULL). Its router
 * hands frames to subscribers with deliver (session_deliver; the worker
 * sits below the sessions and is given it). */
struct worker *worker_new(unsigned index, const struct worker_hooks *hooks,
			  router_deliver_fn *deliver);

/*
 * Set up w: its loop, and the configuration file with its plugins. Used by
 * the daemon and "myxid -t". Returns 0, or -1 with "file:line: problem".
 */
int worker_init(struct worker *w, const char *config_path,
		const char *plugin_dir_arg, bool debug,
		char *err, size_t err_size);

/*
 * A worker around a loop and a running configuration that the caller owns
 * and keeps alive: nothing is loaded, nothing listens. For unit tests and
 * fuzz targets, which drive sessions on it directly.
 */
struct worker *worker_new_bare(struct event_base *base, struct runconf *rc,
				router_deliver_fn *deliver);

/* The process-wide pieces w uses: per-address counts, TLS and the history
 * store (either may be NULL). */
void worker_share(struct worker *w, struct ip_table *ips, SSL_CTX *ssl_ctx,
		  struct history_store *history);

/* Accept broker deliveries into w's loop (call before the broker starts),
 * then, once it runs, hand w the broker for binds and publishing. */
void worker_use_broker(struct worker *w);
void worker_set_broker(struct worker *w, struct broker *b);

/* Run w's loop on its own thread until it is drained. */
int worker_start(struct worker *w);
void worker_join(struct worker *w);

/* Thread-safe request, carried out on w's thread. */
void worker_post(struct worker *w, void (*fn)(struct worker *w));

/* Reload, in two phases so that all workers switch or none does:
 * prepare loads the next configuration (on w's thread); commit or abort. */
int worker_reload_prepare(struct worker *w, char *err, size_t err_size);
void worker_reload_commit(struct worker *w);
void worker_reload_abort(struct worker *w);

/* Broker thread: binds completed; w releases the Subscribes waiting. */
void worker_binds_done(struct worker *w);

/* Broker thread: queue a frame for w's subscribers; w's loop sees the
 * frames queued when worker_deliveries_flush() wakes it. */
void worker_deliver(struct worker *w, struct shared_frame *f);
void worker_deliveries_flush(struct worker *w);

/* Close what is left and free w (NULL is fine); *w becomes NULL. A bare
 * worker leaves its loop and configuration to their owner. */
void worker_free(struct worker **w);

/* ------------------------------------------------ for modules on the loop */

struct event_base *worker_base(const struct worker *w);
/* The loop's reply stage (reply_stage.h), made on first use. */
struct reply_stage *worker_reply_stage(struct worker *w);
unsigned worker_index(const struct worker *w);
void *worker_hooks_arg(const struct worker *w);
struct runconf *worker_runconf(const struct worker *w);
const struct myxid_config *worker_config(const struct worker *w);
struct router *worker_router(const struct worker *w);
/* Sessions watching presence, by (exchange, key): only Presence events
 * are published here (presence.c). */
struct router *worker_presence_router(const struct worker *w);
struct presence *worker_presence(const struct worker *w);    /* or NULL */
void worker_set_presence(struct worker *w, struct presence *p);
struct broker *worker_broker(const struct worker *w);        /* or NULL */
struct bind_wait *worker_bind_wait(const struct worker *w);  /* or NULL */
struct ip_table *worker_ips(const struct worker *w);
SSL_CTX *worker_ssl_ctx(const struct worker *w);             /* or NULL */
struct history_store *worker_history_store(const struct worker *w);  /* or NULL */
/* ex's history log, or NULL when it keeps none (or w has no store). */
struct history_log *worker_history(struct worker *w, struct exchange_rt *ex);
bool worker_draining(const struct worker *w);
void worker_set_draining(struct worker *w);   /* by the listener's drain */
const struct worker_stats *worker_stats(const struct worker *w);

/* Upgraded connections, counted by conn.c and session.c (limits). */
void worker_session_opened(struct worker *w);
void worker_session_closed(struct worker *w);
size_t worker_session_count(const struct worker *w);

/* The broker's ticket for the bind that the last router_add() on w's
 * router started, or 0; reading it clears it. */
uint64_t worker_take_bind_ticket(struct worker *w);

/* Deliver f to w's local subscribers; returns how many got it. */
size_t worker_publish_local(struct worker *w, const char *exchange,
			    const char *routing_key, struct shared_frame *f);

/* Does w have other workers to fan out to (worker_fanout)? If not, a
 * publish is delivered with worker_publish_local() alone. */
bool worker_has_fanout(const struct worker *w);

/* each(w', op) on every worker w' (each on its own thread), then done(op)
 * on w's thread; without a daemon around, on w alone and at once. */
void worker_broadcast(struct worker *w, worker_each_fn *each, worker_done_fn *done,
		      void *op);

/* The daemon's fan-out over every worker (see struct worker_hooks). */
void worker_fanout(struct worker *w, const char *exchange,
		   const char *routing_key, struct shared_frame *f,
		   worker_fanout_done_fn *done, void *done_arg);

#endif
