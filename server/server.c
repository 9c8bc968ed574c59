/*
 * A worker: one event loop, its listening sockets, its plugin instances and
 * its connections; plus the signal handling that drains it on SIGTERM.
 */
#include "server.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "plugin_host.h"
#include "broker.h"
#include "inbox.h"
#include "publish.h"
#include "router.h"
#include "runconf.h"
#include "session.h"
#include "util.h"

#include <errno.h>
#include <stdbool.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

/* How long SIGTERM waits for clients to finish the close handshake. */
#define DRAIN_MS 5000
/* How long accepting pauses when the process is out of descriptors. */
#define ACCEPT_PAUSE_MS 500
#define LISTEN_BACKLOG 1024

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
		broker_bind(w->broker, exchange, routing_key);
	else
		broker_unbind(w->broker, exchange, routing_key);
}

/* Broker thread: hand the frame to the loop. */
static void broker_delivery(void *arg, const char *exchange,
			    const char *routing_key, struct shared_frame *f)
{
	struct worker *w = arg;

	inbox_post(w->inbox, exchange, routing_key, f);
}

/* Loop thread: fan the frame out. */
static void inbox_delivery(void *arg, const char *exchange,
			   const char *routing_key, struct shared_frame *f)
{
	publish_local(arg, exchange, routing_key, f);
}

int worker_init(struct worker *w, const char *config_path,
		const char *plugin_dir_arg, bool debug,
		char *err, size_t err_size)
{
	struct runconf *rc;

	w->config_path = config_path;
	w->plugin_dir_arg = plugin_dir_arg;
	w->debug = debug;
	w->router = router_new(session_deliver, route_changed, w);
	rc = load_runconf(w, err, err_size);
	if (rc == NULL)
		return -1;
	use_runconf(w, rc);
	return 0;
}

int worker_start_broker(struct worker *w, char *err, size_t err_size)
{
	if (!w->cfg->broker.enabled)
		return 0;
	w->inbox = inbox_new(w->base, inbox_delivery, w);
	w->broker = broker_start(w->cfg, broker_delivery, w);
	if (w->broker == NULL) {
		snprintf(err, err_size, "cannot start the broker link");
		return -1;
	}
	return 0;
}

static bool same_listens(const struct myxid_config *a, const struct myxid_config *b)
{
	if (a->n_listens != b->n_listens)
		return false;
	for (size_t i = 0; i < a->n_listens; i++) {
		const struct conf_listen *x = &a->listens[i], *y = &b->listens[i];
		if (strcmp(x->port, y->port) != 0 ||
		    (x->host == NULL) != (y->host == NULL) ||
		    (x->host && strcmp(x->host, y->host) != 0))
			return false;
	}
	return true;
}

/*
 * SIGHUP: build the new configuration beside the running one and swap
 * only if all of it loads. A failed reload changes nothing, so it can
 * never open access that the running configuration closes.
 */
static void worker_reload(struct worker *w)
{
	char err[1024];
	struct runconf *rc = load_runconf(w, err, sizeof(err));

	if (rc == NULL) {
		log_error("reload failed, keeping the running configuration: %s", err);
		return;
	}
	if (!same_listens(w->cfg, rc->cfg))
		log_warn("reload: listen addresses change only at restart");
	if (w->cfg->broker.enabled != rc->cfg->broker.enabled ||
	    w->cfg->n_exchanges != rc->cfg->n_exchanges)
		log_warn("reload: broker settings and the exchanges declared on the "
			 "broker change only at restart");
	use_runconf(w, rc);
	log_notice("configuration reloaded from %s: %zu auth plugin(s), "
		   "%zu exchange(s)", w->config_path, rc->n_auths, rc->n_exchanges);
}

/* ------------------------------------------------------------ listening */

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd,
		      struct sockaddr *sa, int salen, void *arg)
{
	struct worker *w = arg;

	w->stats.connections_total++;
	conn_accept(w, fd, sa, salen);
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

static int bind_one(struct worker *w, const struct addrinfo *ai,
		    const struct conf_listen *cl, char *err, size_t err_size)
{
	int one = 1;
	evutil_socket_t fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
				    ai->ai_protocol);
	struct evconnlistener *l;

	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
	    evutil_make_socket_nonblocking(fd) != 0)
		goto fail;
	l = evconnlistener_new(w->base, accept_cb, w, LEV_OPT_CLOSE_ON_FREE,
			       LISTEN_BACKLOG, fd);
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
		log_notice("listening on %s:%s", host ? host : "*", cl->port);
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

static void drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	log_notice("%zu connection(s) did not close in time; exiting", w->n_conns);
	event_base_loopbreak(w->base);
}

static void begin_drain(struct worker *w, const char *why)
{
	struct timeval tv = { DRAIN_MS / 1000, (DRAIN_MS % 1000) * 1000 };

	if (w->draining)
		return;
	log_notice("%s: closing %zu connection(s) and exiting", why, w->n_conns);
	w->draining = true;
	for (size_t i = 0; i < w->n_listeners; i++)
		evconnlistener_free(w->listeners[i]);
	w->n_listeners = 0;
	conn_close_all(w, 1001, "server shutting down");
	if (w->n_conns == 0) {
		event_base_loopbreak(w->base);
		return;
	}
	w->drain_timer = evtimer_new(w->base, drain_timeout_cb, w);
	evtimer_add(w->drain_timer, &tv);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct worker *w = arg;

	if (sig == SIGHUP) {
		worker_reload(w);
		return;
	}
	begin_drain(w, sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

int worker_run(struct worker *w)
{
	w->sig_term = evsignal_new(w->base, SIGTERM, signal_cb, w);
	w->sig_int = evsignal_new(w->base, SIGINT, signal_cb, w);
	w->sig_hup = evsignal_new(w->base, SIGHUP, signal_cb, w);
	evsignal_add(w->sig_term, NULL);
	evsignal_add(w->sig_int, NULL);
	evsignal_add(w->sig_hup, NULL);
	log_notice("myxid " PACKAGE_VERSION " ready");
	if (event_base_dispatch(w->base) < 0) {
		log_error("event loop failed");
		return 1;
	}
	log_notice("stopped");
	return 0;
}

void worker_destroy(struct worker *w)
{
	/* Connections still open after the drain go first: their sessions
	 * hold subscriptions and plugin requests. */
	w->draining = false;
	conn_free_all(w);
	for (size_t i = 0; i < w->n_listeners; i++)
		evconnlistener_free(w->listeners[i]);
	free(w->listeners);
	/* Sessions are gone; so are their bindings. Stop the link, then drop
	 * what it had handed over. */
	broker_stop(&w->broker);
	inbox_free(&w->inbox);
	runconf_unref(&w->rc);
	w->cfg = NULL;
	router_free(&w->router);
	if (w->drain_timer)
		event_free(w->drain_timer);
	if (w->sig_term) {
		event_free(w->sig_term);
		event_free(w->sig_int);
		event_free(w->sig_hup);
	}
}
