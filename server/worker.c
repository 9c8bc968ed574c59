/*
 * A worker: one event loop and its plugin instances, subscriptions and
 * deliveries. Its listening sockets and connections belong to its listener
 * (listener.c), above conn. Everything here runs on the worker's thread
 * except the functions documented as thread-safe in worker.h.
 */
#include "worker.h"
#include "bind_wait.h"
#include "broker.h"
#include "config.h"
#include "history.h"
#include "inbox.h"
#include "json_input.h"
#include "log.h"
#include "reply_stage.h"
#include "router.h"
#include "runconf.h"
#include "shared_frame.h"
#include "util.h"

#include <pthread.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

struct worker {
	struct worker_hooks hooks;         /* zero: no daemon around */
	bool bare;                         /* worker_new_bare: borrows base, rc */
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
	struct router *presence_router;    /* watchers of presence: sessions */
	struct presence *presence;         /* shared; NULL: none */
	struct broker *broker;             /* shared; NULL unless in broker mode */
	struct inbox *inbox;               /* deliveries from the broker */
	struct bind_wait *bind_wait;       /* Subscribes waiting for a bind */
	uint64_t bind_ticket;              /* set by the route hook: the bind
					    * the last router_add started */
	struct ip_table *ips;              /* shared per-address counts */
	SSL_CTX *ssl_ctx;                  /* shared; NULL without listen_tls */
	struct history_store *history;     /* shared; NULL: no history */
	struct reply_stage *reply_stage;   /* made on first use */

	router_deliver_fn *deliver;        /* the router's, handed in */
	size_t n_sessions;                 /* upgraded to WebSocket */
	bool draining;                     /* set by the listener's drain */
	struct worker_stats stats;
};

struct worker *worker_new(unsigned index, const struct worker_hooks *hooks,
			  router_deliver_fn *deliver)
{
	struct worker *w = xcalloc(1, sizeof(*w));

	w->index = index;
	w->deliver = deliver;
	if (hooks != NULL)
		w->hooks = *hooks;
	return w;
}

void worker_share(struct worker *w, struct ip_table *ips, SSL_CTX *ssl_ctx,
		  struct history_store *history)
{
	w->ips = ips;
	w->ssl_ctx = ssl_ctx;
	w->history = history;
}

struct history_store *worker_history_store(const struct worker *w)
{
	return w->history;
}

struct history_log *worker_history(struct worker *w, struct exchange_rt *ex)
{
	const struct conf_history *h = &ex->conf->history;

	if (!h->enabled || w->history == NULL)
		return NULL;
	/* In broker mode history is a stream's mirror; one a reload added
	 * has no stream until a restart, so it keeps nothing meanwhile. */
	if (w->broker != NULL && broker_history_stream(w->broker, ex->conf->name) == NULL)
		return NULL;
	/* Found once per running configuration: a reload brings the
	 * exchange's new limits to the same log. */
	if (ex->history == NULL)
		ex->history = history_store_log(w->history, ex->conf->name,
			&(struct history_limits){ h->events, h->bytes, h->age_ms });
	return ex->history;
}

/* ------------------------------------------------------- configuration */

/* Read config_path and build its plugins; NULL with a message on error. */
static struct runconf *load_runconf(struct worker *w, char *err, size_t err_size)
{
	struct myxid_config *cfg = NULL;
	const char *dir;

	if (config_load(w->config_path, &cfg, err, err_size) != 0 ||
	    config_apply_env(cfg, err, err_size) != 0) {
		config_free(&cfg);
		return NULL;
	}
	dir = w->plugin_dir_arg ? w->plugin_dir_arg :
		cfg->plugin_dir ? cfg->plugin_dir : PLUGINDIR;
	return runconf_new(w->base, cfg, dir, err, err_size);
}

static void use_runconf(struct worker *w, struct runconf *rc)
{
	runconf_unref(&w->rc);
	w->rc = rc;
	w->cfg = rc->cfg;
	log_set_level(w->debug ? MYXID_LOG_DEBUG : w->cfg->log_level);
}

/* Router hook: the node's queue follows what local sockets subscribe to. */
static void route_changed(void *arg, const char *exchange,
			  const char *routing_key, bool added)
{
	struct worker *w = arg;

	if (w->broker == NULL)
		return;
	if (added)
		w->bind_ticket = broker_bind(w->broker, w->index, exchange, routing_key);
	else
		broker_unbind(w->broker, w->index, exchange, routing_key);
}

size_t worker_publish_local(struct worker *w, const char *exchange,
			    const char *routing_key, struct shared_frame *f)
{
	const struct exchange_rt *ex = runconf_exchange(w->rc, exchange);
	enum router_match how = ROUTER_EXACT;
	size_t n;

	if (ex != NULL && ex->conf->type == EXCHANGE_TOPIC)
		how = ROUTER_TOPIC;
	else if (ex != NULL && ex->conf->type == EXCHANGE_FANOUT)
		how = ROUTER_FANOUT;
	n = router_publish(w->router, exchange, routing_key, how, f);

	w->stats.published++;
	w->stats.delivered += n;
	return n;
}


/* Loop thread: fan a broker frame out. */
static void inbox_delivery(void *arg, struct shared_frame *f)
{
	worker_publish_local(arg, f->exchange, f->routing_key, f);
}

/*
 * A worker's loop. With epoll's change list, a socket whose write event is
 * removed after a write round and added again when the next frame is
 * queued in the same loop turn costs no epoll_ctl() at all: under fan-out
 * that is most sockets, and epoll_ctl() was a seventh of the daemon's CPU.
 * (The change list's caveat is dup()ed descriptors; myxid never dups one.)
 */
static struct event_base *new_loop(void)
{
	struct event_config *cfg = event_config_new();
	struct event_base *base;

	if (cfg == NULL)
		return NULL;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

int worker_init(struct worker *w, const char *config_path,
		const char *plugin_dir_arg, bool debug,
		char *err, size_t err_size)
{
	struct runconf *rc;

	w->config_path = config_path;
	w->plugin_dir_arg = plugin_dir_arg;
	w->debug = debug;
	w->base = new_loop();
	if (w->base == NULL) {
		snprintf(err, err_size, "cannot create an event loop");
		return -1;
	}
	w->router = router_new(w->deliver, route_changed, w);
	w->presence_router = router_new(w->deliver, NULL, NULL);
	rc = load_runconf(w, err, err_size);
	if (rc == NULL)
		return -1;
	use_runconf(w, rc);
	return 0;
}

struct worker *worker_new_bare(struct event_base *base, struct runconf *rc,
				router_deliver_fn *deliver)
{
	struct worker *w = worker_new(0, NULL, deliver);

	w->bare = true;
	w->base = base;
	w->rc = rc;
	w->cfg = rc->cfg;
	w->router = router_new(w->deliver, route_changed, w);
	w->presence_router = router_new(w->deliver, NULL, NULL);
	return w;
}

void worker_use_broker(struct worker *w)
{
	w->inbox = inbox_new(w->base, inbox_delivery, w);
	w->bind_wait = bind_wait_new(w->base);
}

void worker_set_broker(struct worker *w, struct broker *b)
{
	w->broker = b;
}

void worker_binds_done(struct worker *w)
{
	bind_wait_kick(w->bind_wait);
}

void worker_deliver(struct worker *w, struct shared_frame *f)
{
	inbox_post(w->inbox, f);
}

void worker_deliveries_flush(struct worker *w)
{
	inbox_flush(w->inbox);
}

int worker_reload_prepare(struct worker *w, char *err, size_t err_size)
{
	w->next_rc = load_runconf(w, err, err_size);
	return w->next_rc ? 0 : -1;
}

void worker_reload_commit(struct worker *w)
{
	if (w->next_rc != NULL)
		use_runconf(w, w->next_rc);
	w->next_rc = NULL;
}

void worker_reload_abort(struct worker *w)
{
	runconf_unref(&w->next_rc);
}



/* ------------------------------------------------------------ lifecycle */

struct posted_fn {
	struct worker *w;
	void (*fn)(struct worker *w);
};

static void posted_fn_cb(evutil_socket_t fd, short what, void *arg)
{
	struct posted_fn *p = arg;

	p->fn(p->w);
	free(p);
}

void worker_post(struct worker *w, void (*fn)(struct worker *w))
{
	struct posted_fn *p = xmalloc(sizeof(*p));
	struct timeval zero = { 0, 0 };

	p->w = w;
	p->fn = fn;
	event_base_once(w->base, -1, EV_TIMEOUT, posted_fn_cb, p, &zero);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	json_input_thread_init();
	if (event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY) < 0)
		log_error("worker %u: event loop failed", w->index);
	json_input_thread_done();
	if (w->hooks.stopped != NULL)
		w->hooks.stopped(w->hooks.arg, w);
	return NULL;
}

int worker_start(struct worker *w)
{
	return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : -1;
}

void worker_join(struct worker *w)
{
	pthread_join(w->thread, NULL);
}

void worker_free(struct worker **wp)
{
	struct worker *w = *wp;

	if (w == NULL)
		return;
	if (w->base == NULL) {           /* worker_init failed early */
		free(w);
		*wp = NULL;
		return;
	}
	inbox_free(&w->inbox);
	bind_wait_free(&w->bind_wait);
	runconf_unref(&w->next_rc);
	if (!w->bare)
		runconf_unref(&w->rc);
	router_free(&w->router);
	router_free(&w->presence_router);
	reply_stage_free(&w->reply_stage);
	if (w->base && !w->bare)
		event_base_free(w->base);
	free(w);
	*wp = NULL;
}

/* ---------------------------------------------- for modules on the loop */

struct event_base *worker_base(const struct worker *w) { return w->base; }

struct reply_stage *worker_reply_stage(struct worker *w)
{
	if (w->reply_stage == NULL)
		w->reply_stage = reply_stage_new(w->base);
	return w->reply_stage;
}
unsigned worker_index(const struct worker *w) { return w->index; }
void *worker_hooks_arg(const struct worker *w) { return w->hooks.arg; }
struct runconf *worker_runconf(const struct worker *w) { return w->rc; }
const struct myxid_config *worker_config(const struct worker *w) { return w->cfg; }
struct router *worker_router(const struct worker *w) { return w->router; }
struct router *worker_presence_router(const struct worker *w) { return w->presence_router; }
struct presence *worker_presence(const struct worker *w) { return w->presence; }
void worker_set_presence(struct worker *w, struct presence *p) { w->presence = p; }
struct broker *worker_broker(const struct worker *w) { return w->broker; }
struct bind_wait *worker_bind_wait(const struct worker *w) { return w->bind_wait; }
struct ip_table *worker_ips(const struct worker *w) { return w->ips; }
SSL_CTX *worker_ssl_ctx(const struct worker *w) { return w->ssl_ctx; }
bool worker_draining(const struct worker *w) { return w->draining; }
void worker_set_draining(struct worker *w) { w->draining = true; }
const struct worker_stats *worker_stats(const struct worker *w) { return &w->stats; }

void worker_session_opened(struct worker *w)
{
	w->n_sessions++;
}

void worker_session_closed(struct worker *w)
{
	w->n_sessions--;
}

size_t worker_session_count(const struct worker *w)
{
	return w->n_sessions;
}

uint64_t worker_take_bind_ticket(struct worker *w)
{
	uint64_t t = w->bind_ticket;

	w->bind_ticket = 0;
	return t;
}

bool worker_has_fanout(const struct worker *w)
{
	return w->hooks.fanout != NULL;
}

void worker_broadcast(struct worker *w, worker_each_fn *each, worker_done_fn *done,
		      void *op)
{
	if (w->hooks.broadcast == NULL) {
		each(w, op);
		done(op);
		return;
	}
	w->hooks.broadcast(w->hooks.arg, w, each, done, op);
}

void worker_fanout(struct worker *w, const char *exchange,
		   const char *routing_key, struct shared_frame *f,
		   worker_fanout_done_fn *done, void *done_arg)
{
	w->hooks.fanout(w->hooks.arg, w, exchange, routing_key, f, done, done_arg);
}
