/*
 * A worker: one event loop on its own thread, with its own listening
 * sockets (SO_REUSEPORT: the kernel spreads connections over the workers),
 * its own plugin instances, subscription table and connections. Workers
 * share only the broker link, the per-address connection counts and the
 * TLS context, all thread-safe. See daemon.c for the process around them.
 */
#ifndef MYXID_SERVER_H
#define MYXID_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct event;
struct evconnlistener;
struct myxid_config;
struct router;
struct conn;
struct runconf;
struct broker;
struct inbox;
struct ip_table;
struct daemon;
struct shared_frame;
typedef struct ssl_ctx_st SSL_CTX;

struct worker_stats {
	uint64_t connections_total;
	uint64_t published;
	uint64_t delivered;
};

struct worker {
	struct daemon *d;                  /* NULL in unit tests */
	unsigned index;
	pthread_t thread;
	struct event_base *base;
	struct runconf *rc;                /* current configuration and plugins */
	const struct myxid_config *cfg;    /* rc->cfg, for brevity */
	struct runconf *next_rc;           /* a reload being prepared */
	const char *config_path;
	const char *plugin_dir_arg;        /* -P, or NULL to follow the config */
	bool debug;                        /* -d: keep debug logging on reload */

	struct router *router;
	struct broker *broker;             /* shared; NULL unless in broker mode */
	struct inbox *inbox;               /* deliveries from the broker */
	struct bind_wait *bind_wait;       /* Subscribes waiting for a bind */
	uint64_t bind_ticket;              /* set by the route hook: the bind
					    * the last router_add started */
	struct ip_table *ips;              /* shared per-address counts */
	SSL_CTX *ssl_ctx;                  /* shared; NULL without listen_tls */

	struct evconnlistener **listeners;
	size_t n_listeners;

	struct conn *conns;                /* every open connection */
	size_t n_conns;
	size_t n_sessions;                 /* upgraded to WebSocket */
	bool draining;                     /* shutting down */
	struct event *drain_timer;
	unsigned drain_step, drain_steps;
	struct worker_stats stats;
	/* Loop turns that queued data frames, told apart by the loop's cached
	 * clock (constant within a turn): conn.c's choice of direct writes. */
	uint64_t turn_clock;
	uint32_t turn;
};

/*
 * Set up w: its loop, and the configuration file with its plugins. Used by
 * the daemon and "myxid -t". Returns 0, or -1 with "file:line: problem".
 */
int worker_init(struct worker *w, const char *config_path,
		const char *plugin_dir_arg, bool debug,
		char *err, size_t err_size);

/* Bind w's listeners (SO_REUSEPORT). 0, or -1 with a message. */
int worker_listen(struct worker *w, char *err, size_t err_size);

/* Accept broker deliveries into w's loop (call before the broker starts). */
void worker_use_broker(struct worker *w, struct broker *b);

/* Run w's loop on its own thread until it is drained. */
int worker_start(struct worker *w);
void worker_join(struct worker *w);

/* Thread-safe requests, carried out on w's thread. */
void worker_post_drain(struct worker *w);
void worker_post(struct worker *w, void (*fn)(struct worker *w));

/* Reload, in two phases so that all workers switch or none does:
 * prepare loads into w->next_rc (on w's thread); commit or abort. */
int worker_reload_prepare(struct worker *w, char *err, size_t err_size);
void worker_reload_commit(struct worker *w);
void worker_reload_abort(struct worker *w);

/* Broker thread: binds completed; w releases the Subscribes waiting. */
void worker_binds_done(struct worker *w);

/* Broker thread: queue a frame for w's subscribers; w's loop sees the
 * frames queued when worker_deliveries_flush() wakes it. */
void worker_deliver(struct worker *w, struct shared_frame *f);
void worker_deliveries_flush(struct worker *w);

void worker_destroy(struct worker *w);

/* Connection bookkeeping, called by conn.c. */
void worker_conn_added(struct worker *w, struct conn *c);
void worker_conn_removed(struct worker *w, struct conn *c);

#endif
