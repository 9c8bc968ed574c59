/*
 * The running daemon: a worker is one event loop with its listeners, its
 * plugin instances, its subscription table and its connections.
 */
#ifndef MYXID_SERVER_H
#define MYXID_SERVER_H

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

struct worker_stats {
	uint64_t connections_total;
	uint64_t published;
	uint64_t delivered;
};

struct worker {
	struct event_base *base;
	struct runconf *rc;                /* current configuration and plugins */
	const struct myxid_config *cfg;    /* rc->cfg, for brevity */
	const char *config_path;
	const char *plugin_dir_arg;        /* -P, or NULL to follow the config */
	bool debug;                        /* -d: keep debug logging on reload */

	struct router *router;
	struct broker *broker;             /* NULL unless in broker mode */
	struct inbox *inbox;               /* deliveries from the broker */
	struct evconnlistener **listeners;
	size_t n_listeners;

	struct conn *conns;                /* every open connection */
	size_t n_conns;
	size_t n_sessions;                 /* upgraded to WebSocket */
	bool draining;                     /* shutting down */
	struct event *drain_timer;
	struct event *sig_term, *sig_int, *sig_hup;
	struct worker_stats stats;
};

/*
 * Load the configuration file and its plugins into w (no sockets yet).
 * Used by both the daemon and "myxid -t". Returns 0, or -1 with
 * "file:line: problem" in err.
 */
int worker_init(struct worker *w, const char *config_path,
		const char *plugin_dir_arg, bool debug,
		char *err, size_t err_size);

/* In broker mode, start the RabbitMQ link (it connects in the background).
 * 0, or -1 with a message. */
int worker_start_broker(struct worker *w, char *err, size_t err_size);

/* Bind the listeners. 0, or -1 with a message. */
int worker_listen(struct worker *w, char *err, size_t err_size);

/* Run until shut down; returns the exit status. */
int worker_run(struct worker *w);

void worker_destroy(struct worker *w);

/* Connection bookkeeping, called by conn.c. */
void worker_conn_added(struct worker *w, struct conn *c);
void worker_conn_removed(struct worker *w, struct conn *c);

#endif
