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
struct conf_exchange;
struct myxid_instance;
struct router;
struct conn;

/* A configured exchange as a worker runs it. */
struct exchange_rt {
	const struct conf_exchange *conf;
	struct myxid_instance *policy;
};

struct worker_stats {
	uint64_t connections_total;
	uint64_t published;
	uint64_t delivered;
};

struct worker {
	struct event_base *base;
	const struct myxid_config *cfg;
	const char *plugin_dir;

	struct myxid_instance **auths;     /* the auth chain, in order */
	size_t n_auths;
	struct exchange_rt *exchanges;
	size_t n_exchanges;

	struct router *router;
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

/* The runtime exchange called name, or NULL. */
struct exchange_rt *worker_exchange(struct worker *w, const char *name);

/*
 * Load plugins for cfg into w (no sockets). Used by both the daemon and
 * "myxid -t". Returns 0, or -1 with a message in err.
 */
int worker_init(struct worker *w, const struct myxid_config *cfg,
		const char *plugin_dir, char *err, size_t err_size);

/* Bind the listeners. 0, or -1 with a message. */
int worker_listen(struct worker *w, char *err, size_t err_size);

/* Run until shut down; returns the exit status. */
int worker_run(struct worker *w);

void worker_destroy(struct worker *w);

/* Connection bookkeeping, called by conn.c. */
void worker_conn_added(struct worker *w, struct conn *c);
void worker_conn_removed(struct worker *w, struct conn *c);

#endif
