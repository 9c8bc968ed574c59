/*
 * A worker: one event loop, its listening sockets, its plugin instances and
 * its connections. Everything here runs on the worker's thread except the
 * functions documented as thread-safe in worker.h.
 */
#include "worker.h"
#include "bind_wait.h"
#include "broker.h"
#include "config.h"
#include "conn.h"
#include "inbox.h"
#include "log.h"
#include "router.h"
#include "runconf.h"
#include "session.h"
#include "shared_frame.h"
#include "util.h"

#include <pthread.h>

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

/* How long accepting pauses when the process is out of descriptors. */
#define ACCEPT_PAUSE_MS 500
#define LISTEN_BACKLOG 1024
/* SIGTERM closes sockets in at most this many steps over drain_time. */
#define DRAIN_STEPS_MAX 100
/* After the last close frame: time for clients to answer it. */
#define DRAIN_LINGER_MS 3000

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
};

struct worker *worker_new(unsigned index, const struct worker_hooks *hooks)
{
	struct worker *w = xcalloc(1, sizeof(*w));

	w->index = index;
	if (hooks != NULL)
		w->hooks = *hooks;
	return w;
}

void worker_share(struct worker *w, struct ip_table *ips, SSL_CTX *ssl_ctx)
{
	w->ips = ips;
	w->ssl_ctx = ssl_ctx;
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
	w->router = router_new(session_deliver, route_changed, w);
	rc = load_runconf(w, err, err_size);
	if (rc == NULL)
		return -1;
	use_runconf(w, rc);
	return 0;
}

struct worker *worker_new_bare(struct event_base *base, struct runconf *rc)
{
	struct worker *w = worker_new(0, NULL);

	w->bare = true;
	w->base = base;
	w->rc = rc;
	w->cfg = rc->cfg;
	w->router = router_new(session_deliver, route_changed, w);
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

/* ------------------------------------------------------------ listening */

static void accept_connection(struct evconnlistener *l, evutil_socket_t fd,
			      struct sockaddr *sa, int salen, void *arg, bool tls)
{
	struct worker *w = arg;

	w->stats.connections_total++;
	conn_accept(w, fd, sa, salen, tls);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd,
		      struct sockaddr *sa, int salen, void *arg)
{
	accept_connection(l, fd, sa, salen, arg, false);
}

static void accept_tls_cb(struct evconnlistener *l, evutil_socket_t fd,
			  struct sockaddr *sa, int salen, void *arg)
{
	accept_connection(l, fd, sa, salen, arg, true);
}

static void resume_accepting(evutil_socket_t fd, short what, void *arg)
{
	evconnlistener_enable(arg);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct worker *w = arg;
	int e = EVUTIL_SOCKET_ERROR();
	struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };

	if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
		/* Retrying at once would spin: the pending connection stays
		 * in the backlog. Pause, and let closing sockets free fds. */
		log_warn("accept: %s; pausing new connections for %d ms",
			 evutil_socket_error_to_string(e), ACCEPT_PAUSE_MS);
		evconnlistener_disable(l);
		event_base_once(w->base, -1, EV_TIMEOUT, resume_accepting, l, &tv);
		return;
	}
	log_warn("accept: %s", evutil_socket_error_to_string(e));
}

/*
 * SO_REUSEPORT would let a second myxid bind the same port and silently
 * take half the connections: before the workers bind, check with a plain
 * socket that nobody holds the address.
 */
static int probe_free(const struct addrinfo *ai)
{
	int one = 1, rc = 0, e = 0;
	evutil_socket_t fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
				    ai->ai_protocol);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		e = errno;
		rc = -1;
	}
	close(fd);
	errno = e;
	return rc;
}

static int bind_one(struct worker *w, const struct addrinfo *ai,
		    const struct conf_listen *cl, char *err, size_t err_size)
{
	int one = 1;
	evutil_socket_t fd = -1;
	struct evconnlistener *l;

	if (w->index == 0 && probe_free(ai) != 0)
		goto fail;
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* Each worker has its own socket on the port; the kernel balances. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
	    evutil_make_socket_nonblocking(fd) != 0)
		goto fail;
	l = evconnlistener_new(w->base, cl->tls ? accept_tls_cb : accept_cb, w,
			       LEV_OPT_CLOSE_ON_FREE, LISTEN_BACKLOG, fd);
	if (l == NULL)
		goto fail;
	evconnlistener_set_error_cb(l, accept_error_cb);
	w->listeners = xrealloc(w->listeners,
				(w->n_listeners + 1) * sizeof(*w->listeners));
	w->listeners[w->n_listeners++] = l;
	return 0;
fail:
	snprintf(err, err_size, "%s:%u: cannot listen on %s:%s: %s", cl->pos.file,
		 cl->pos.line, cl->host ? cl->host : "*", cl->port, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

int worker_listen(struct worker *w, char *err, size_t err_size)
{
	for (size_t i = 0; i < w->cfg->n_listens; i++) {
		const struct conf_listen *cl = &w->cfg->listens[i];
		const char *host = cl->host && strcmp(cl->host, "*") != 0 ? cl->host : NULL;
		struct addrinfo hints, *res, *ai;
		int r;

		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE;
		/* Startup, before the loop runs: a blocking lookup is fine. */
		r = getaddrinfo(host, cl->port, &hints, &res);
		if (r != 0) {
			snprintf(err, err_size, "%s:%u: cannot resolve '%s': %s",
				 cl->pos.file, cl->pos.line, host ? host : "*",
				 gai_strerror(r));
			return -1;
		}
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			if (bind_one(w, ai, cl, err, err_size) != 0) {
				freeaddrinfo(res);
				return -1;
			}
		}
		freeaddrinfo(res);
		if (w->index == 0)
			log_notice("listening on %s:%s%s", host ? host : "*", cl->port,
				   cl->tls ? " (TLS)" : "");
	}
	return 0;
}

/* ------------------------------------------------------------ lifecycle */

void worker_conn_added(struct worker *w, struct conn *c)
{
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->n_conns++;
}

void worker_conn_removed(struct worker *w, struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->n_conns--;
	if (w->draining && w->n_conns == 0)
		event_base_loopbreak(w->base);
}

/*
 * SIGTERM: close sockets a slice at a time over drain_time, so clients do
 * not all reconnect to the other nodes at the same instant, then give the
 * last ones a moment to answer the close frame.
 */
static void drain_step_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	unsigned steps = w->drain_steps, ms = w->cfg->drain_time_ms / steps;
	size_t open = 0, todo;
	struct timeval tv;

	if (w->drain_step >= steps) {
		if (w->n_conns > 0)
			log_notice("%zu connection(s) did not close in time", w->n_conns);
		event_base_loopbreak(w->base);
		return;
	}
	for (struct conn *c = w->conns; c != NULL; c = c->next)
		open += c->state != CONN_CLOSING;
	todo = (open + (steps - w->drain_step) - 1) / (steps - w->drain_step);
	for (struct conn *c = w->conns; c != NULL && todo > 0; c = c->next) {
		if (c->state == CONN_CLOSING)
			continue;
		conn_close(c, 1001, "server shutting down");
		todo--;
	}
	w->drain_step++;
	if (w->drain_step == steps)
		ms = DRAIN_LINGER_MS;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(w->drain_timer, &tv);
}

static void begin_drain(struct worker *w)
{
	if (w->draining)
		return;
	w->draining = true;
	for (size_t i = 0; i < w->n_listeners; i++)
		evconnlistener_free(w->listeners[i]);
	w->n_listeners = 0;
	if (w->n_conns == 0) {
		event_base_loopbreak(w->base);
		return;
	}
	/* One socket a step when there are few, so the closes still spread
	 * over the whole drain_time. */
	w->drain_steps = w->n_conns < DRAIN_STEPS_MAX ? (unsigned)w->n_conns : DRAIN_STEPS_MAX;
	w->drain_timer = evtimer_new(w->base, drain_step_cb, w);
	drain_step_cb(-1, 0, w);
}

static void posted_drain(evutil_socket_t fd, short what, void *arg)
{
	begin_drain(arg);
}

void worker_post_drain(struct worker *w)
{
	struct timeval zero = { 0, 0 };

	event_base_once(w->base, -1, EV_TIMEOUT, posted_drain, w, &zero);
}

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

	if (event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY) < 0)
		log_error("worker %u: event loop failed", w->index);
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
	/* Connections still open after the drain go first: their sessions
	 * hold subscriptions and plugin requests. */
	w->draining = false;
	conn_free_all(w);
	for (size_t i = 0; i < w->n_listeners; i++)
		evconnlistener_free(w->listeners[i]);
	free(w->listeners);
	inbox_free(&w->inbox);
	bind_wait_free(&w->bind_wait);
	runconf_unref(&w->next_rc);
	if (!w->bare)
		runconf_unref(&w->rc);
	router_free(&w->router);
	if (w->drain_timer)
		event_free(w->drain_timer);
	if (w->base && !w->bare)
		event_base_free(w->base);
	free(w);
	*wp = NULL;
}

/* ---------------------------------------------- for modules on the loop */

struct event_base *worker_base(const struct worker *w) { return w->base; }
unsigned worker_index(const struct worker *w) { return w->index; }
void *worker_hooks_arg(const struct worker *w) { return w->hooks.arg; }
struct runconf *worker_runconf(const struct worker *w) { return w->rc; }
const struct myxid_config *worker_config(const struct worker *w) { return w->cfg; }
struct router *worker_router(const struct worker *w) { return w->router; }
struct broker *worker_broker(const struct worker *w) { return w->broker; }
struct bind_wait *worker_bind_wait(const struct worker *w) { return w->bind_wait; }
struct ip_table *worker_ips(const struct worker *w) { return w->ips; }
SSL_CTX *worker_ssl_ctx(const struct worker *w) { return w->ssl_ctx; }
bool worker_draining(const struct worker *w) { return w->draining; }
const struct worker_stats *worker_stats(const struct worker *w) { return &w->stats; }
struct conn *worker_conns(const struct worker *w) { return w->conns; }

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

void worker_fanout(struct worker *w, const char *exchange,
		   const char *routing_key, struct shared_frame *f,
		   worker_fanout_done_fn *done, void *done_arg)
{
	w->hooks.fanout(w->hooks.arg, w, exchange, routing_key, f, done, done_arg);
}
