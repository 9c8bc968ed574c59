/*
 * A loop's listening sockets, the connections accepted on them, and the
 * drain that closes those on SIGTERM; see listener.h. Runs on the worker's
 * thread, except listener_post_drain().
 */
#include "listener.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "util.h"
#include "worker.h"

#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
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

struct listener {
	struct worker *w;
	const struct conn_handler *handler;  /* what new connections start with */
	struct evconnlistener **socks;
	size_t n_socks;
	struct conn_list conns;              /* every open connection */
	bool draining;                       /* shutting down */
	struct event *drain_timer;
	unsigned drain_step, drain_steps;
};

/* While draining, the loop ends with its last connection. */
static void conns_emptied(void *arg)
{
	struct listener *ls = arg;

	if (ls->draining)
		event_base_loopbreak(worker_base(ls->w));
}

struct listener *listener_new(struct worker *w, const struct conn_handler *handler)
{
	struct listener *ls = xcalloc(1, sizeof(*ls));

	ls->w = w;
	ls->handler = handler;
	ls->conns.emptied = conns_emptied;
	ls->conns.arg = ls;
	return ls;
}

static void close_sockets(struct listener *ls)
{
	for (size_t i = 0; i < ls->n_socks; i++)
		evconnlistener_free(ls->socks[i]);
	ls->n_socks = 0;
}

/* ------------------------------------------------------------ accepting */

static void accept_connection(struct evconnlistener *l, evutil_socket_t fd,
			      struct sockaddr *sa, int salen, void *arg, bool tls)
{
	struct listener *ls = arg;

	conn_accept(&ls->conns, ls->handler, ls->w, fd, sa, salen, tls);
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
	struct listener *ls = arg;
	int e = EVUTIL_SOCKET_ERROR();
	struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };

	if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
		/* Retrying at once would spin: the pending connection stays
		 * in the backlog. Pause, and let closing sockets free fds. */
		log_warn("accept: %s; pausing new connections for %d ms",
			 evutil_socket_error_to_string(e), ACCEPT_PAUSE_MS);
		evconnlistener_disable(l);
		event_base_once(worker_base(ls->w), -1, EV_TIMEOUT, resume_accepting, l, &tv);
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

static int bind_one(struct listener *ls, const struct addrinfo *ai,
		    const struct conf_listen *cl, char *err, size_t err_size)
{
	int one = 1;
	evutil_socket_t fd = -1;
	struct evconnlistener *l;

	if (worker_index(ls->w) == 0 && probe_free(ai) != 0)
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
	l = evconnlistener_new(worker_base(ls->w), cl->tls ? accept_tls_cb : accept_cb, ls,
			       LEV_OPT_CLOSE_ON_FREE, LISTEN_BACKLOG, fd);
	if (l == NULL)
		goto fail;
	evconnlistener_set_error_cb(l, accept_error_cb);
	ls->socks = xrealloc(ls->socks, (ls->n_socks + 1) * sizeof(*ls->socks));
	ls->socks[ls->n_socks++] = l;
	return 0;
fail:
	snprintf(err, err_size, "%s:%u: cannot listen on %s:%s: %s", cl->pos.file,
		 cl->pos.line, cl->host ? cl->host : "*", cl->port, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

int listener_bind(struct listener *ls, char *err, size_t err_size)
{
	const struct myxid_config *cfg = worker_config(ls->w);

	for (size_t i = 0; i < cfg->n_listens; i++) {
		const struct conf_listen *cl = &cfg->listens[i];
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
			if (bind_one(ls, ai, cl, err, err_size) != 0) {
				freeaddrinfo(res);
				return -1;
			}
		}
		freeaddrinfo(res);
		if (worker_index(ls->w) == 0)
			log_notice("listening on %s:%s%s", host ? host : "*", cl->port,
				   cl->tls ? " (TLS)" : "");
	}
	return 0;
}

/* ---------------------------------------------------------------- drain */

/*
 * SIGTERM: close sockets a slice at a time over drain_time, so clients do
 * not all reconnect to the other nodes at the same instant, then give the
 * last ones a moment to answer the close frame.
 */
static void drain_step_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener *ls = arg;
	unsigned steps = ls->drain_steps;
	unsigned ms = worker_config(ls->w)->drain_time_ms / steps;
	size_t open = 0, todo;
	struct timeval tv;

	if (ls->drain_step >= steps) {
		if (ls->conns.n > 0)
			log_notice("%zu connection(s) did not close in time", ls->conns.n);
		event_base_loopbreak(worker_base(ls->w));
		return;
	}
	for (struct conn *c = ls->conns.first; c != NULL; c = c->next)
		open += c->state != CONN_CLOSING;
	todo = (open + (steps - ls->drain_step) - 1) / (steps - ls->drain_step);
	for (struct conn *c = ls->conns.first; c != NULL && todo > 0; c = c->next) {
		if (c->state == CONN_CLOSING)
			continue;
		conn_close(c, 1001, "server shutting down");
		todo--;
	}
	ls->drain_step++;
	if (ls->drain_step == steps)
		ms = DRAIN_LINGER_MS;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(ls->drain_timer, &tv);
}

static void begin_drain(struct listener *ls)
{
	if (ls->draining)
		return;
	ls->draining = true;
	worker_set_draining(ls->w);
	close_sockets(ls);
	if (ls->conns.n == 0) {
		event_base_loopbreak(worker_base(ls->w));
		return;
	}
	/* One socket a step when there are few, so the closes still spread
	 * over the whole drain_time. */
	ls->drain_steps = ls->conns.n < DRAIN_STEPS_MAX ? (unsigned)ls->conns.n :
		DRAIN_STEPS_MAX;
	ls->drain_timer = evtimer_new(worker_base(ls->w), drain_step_cb, ls);
	drain_step_cb(-1, 0, ls);
}

static void posted_drain(evutil_socket_t fd, short what, void *arg)
{
	begin_drain(arg);
}

void listener_post_drain(struct listener *ls)
{
	struct timeval zero = { 0, 0 };

	event_base_once(worker_base(ls->w), -1, EV_TIMEOUT, posted_drain, ls, &zero);
}

void listener_free(struct listener **lp)
{
	struct listener *ls = *lp;

	if (ls == NULL)
		return;
	/* Connections still open after the drain go before the worker: their
	 * sessions hold subscriptions and plugin requests. */
	ls->draining = false;
	conn_free_all(&ls->conns);
	close_sockets(ls);
	free(ls->socks);
	if (ls->drain_timer)
		event_free(ls->drain_timer);
	free(ls);
	*lp = NULL;
}
