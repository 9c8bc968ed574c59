/*
 * Client connections on libevent bufferevents: the opening HTTP request,
 * the WebSocket upgrade, frame I/O, and a lingering close so that a close
 * frame or an error response is not lost to a TCP reset when the peer still
 * had bytes in flight.
 */
#include "conn.h"
#include "config.h"
#include "http_api.h"
#include "http_parse.h"
#include "log.h"
#include "server.h"
#include "session.h"
#include "shared_frame.h"
#include "util.h"
#include "ws_handshake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

/* How long a closing connection waits for the peer's FIN. */
#define LINGER_MS 3000

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg);

static void timer_arm(struct conn *c, unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(c->timer, &tv);
}

static void format_peer(const struct sockaddr *sa, char *out, size_t size)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		evutil_inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		port = ntohs(in->sin_port);
		snprintf(out, size, "%s:%u", ip, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		evutil_inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		port = ntohs(in6->sin6_port);
		snprintf(out, size, "[%s]:%u", ip, port);
	} else {
		snprintf(out, size, "unix");
	}
}

void conn_accept(struct worker *w, int fd, const struct sockaddr *sa, int salen)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	int one = 1;

	c->w = w;
	c->state = CONN_HTTP;
	format_peer(sa, c->peer, sizeof(c->peer));
	/* Frames are small and latency matters more than packet count. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		log_error("%s: cannot create a bufferevent", c->peer);
		evutil_closesocket(fd);
		free(c);
		return;
	}
	c->timer = evtimer_new(w->base, conn_timer_cb, c);
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	timer_arm(c, w->cfg->handshake_timeout_ms);
	worker_conn_added(w, c);
	log_debug("%s: connected", c->peer);
}

static void conn_free(struct conn *c)
{
	if (c->session != NULL)
		log_info("[%s] %s: closed", session_id(c->session), c->peer);
	session_free(&c->session);
	ws_reader_free(&c->reader);
	event_free(c->timer);
	bufferevent_free(c->bev);
	worker_conn_removed(c->w, c);
	free(c->origin);
	free(c);
}

/* Queue raw bytes unless the connection is already closing. */
static void send_frame(struct conn *c, int opcode, const void *payload, size_t len)
{
	uint8_t hdr[WS_MAX_HEADER];
	size_t hlen = ws_header_encode(hdr, opcode, len);
	struct evbuffer *out = bufferevent_get_output(c->bev);

	evbuffer_add(out, hdr, hlen);
	if (len)
		evbuffer_add(out, payload, len);
}

void conn_send_text(struct conn *c, const char *payload, size_t len)
{
	if (c->state == CONN_WS)
		send_frame(c, WS_OP_TEXT, payload, len);
}

void conn_send_shared(struct conn *c, struct shared_frame *f)
{
	if (c->state == CONN_WS)
		shared_frame_send(f, bufferevent_get_output(c->bev));
}

/* Enter CLOSING: no more input is processed; once the output has drained
 * the write side is shut and we wait for the peer's FIN. */
static void begin_linger(struct conn *c)
{
	c->state = CONN_CLOSING;
	timer_arm(c, LINGER_MS);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		conn_write_cb(c->bev, c);
}

void conn_close(struct conn *c, int code, const char *reason)
{
	if (c->state == CONN_CLOSING)
		return;
	if (c->state == CONN_WS && code != 0) {
		uint8_t body[125];
		size_t len = code == WS_CLOSE_NO_STATUS ? 0 :
			ws_close_body(body, code, reason ? reason : "");
		send_frame(c, WS_OP_CLOSE, body, len);
	}
	if (c->session != NULL)
		log_info("[%s] %s: closing (%d%s%s)", session_id(c->session),
			 c->peer, code, reason && *reason ? " " : "",
			 reason ? reason : "");
	begin_linger(c);
}

void conn_free_all(struct worker *w)
{
	while (w->conns != NULL)
		conn_free(w->conns);
}

void conn_close_all(struct worker *w, int code, const char *reason)
{
	for (struct conn *c = w->conns; c != NULL; c = c->next)
		conn_close(c, code, reason);
}

static const char *status_text(int status)
{
	switch (status) {
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 426: return "Upgrade Required";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

void conn_http_reply(struct conn *c, int status, const char *content_type,
		     const char *extra_headers, const char *body, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	if (c->state != CONN_HTTP)
		return;
	evbuffer_add_printf(out,
			    "HTTP/1.1 %d %s\r\n"
			    "Server: myxid/" PACKAGE_VERSION "\r\n"
			    "Content-Type: %s\r\n"
			    "Content-Length: %zu\r\n"
			    "Cache-Control: no-store\r\n"
			    "Connection: close\r\n"
			    "%s\r\n",
			    status, status_text(status), content_type, len,
			    extra_headers ? extra_headers : "");
	evbuffer_add(out, body, len);
	if (status >= 400)
		log_info("%s: HTTP %d", c->peer, status);
	begin_linger(c);
}

static void http_error(struct conn *c, int status, const char *why,
		       const char *extra_headers)
{
	char body[256];
	int n = snprintf(body, sizeof(body), "%d %s: %s\n", status,
			 status_text(status), why);

	conn_http_reply(c, status, "text/plain; charset=utf-8", extra_headers,
			body, (size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1);
}

/* ---------------------------------------------------------------- frames */

static void on_ws_message(void *arg, int opcode, const uint8_t *data, size_t len)
{
	struct conn *c = arg;

	/* Myxi treats binary frames as JSON text too. */
	if (c->state == CONN_WS)
		session_on_message(c->session, data, len);
}

static void on_ws_ping(void *arg, const uint8_t *data, size_t len)
{
	struct conn *c = arg;

	if (c->state == CONN_WS)
		send_frame(c, WS_OP_PONG, data, len);
}

static void on_ws_close(void *arg, int code, const char *reason, size_t len)
{
	struct conn *c = arg;

	/* Echo the peer's code; a close without one is answered without one. */
	conn_close(c, code, "");
}

static const struct ws_reader_callbacks reader_callbacks = {
	.on_message = on_ws_message,
	.on_ping = on_ws_ping,
	.on_pong = NULL,
	.on_close = on_ws_close,
};

static void feed_frames(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer_iovec vec[8];
	int n;

	while (c->state == CONN_WS && evbuffer_get_length(in) > 0) {
		size_t used = 0;
		n = evbuffer_peek(in, -1, NULL, vec, 8);
		if (n > 8)
			n = 8;
		for (int i = 0; i < n && c->state == CONN_WS; i++) {
			const char *why = NULL;
			int code = ws_reader_feed(&c->reader, vec[i].iov_base,
						  vec[i].iov_len, &why);
			used += vec[i].iov_len;
			if (code != 0) {
				log_info("%s: protocol error: %s", c->peer, why);
				conn_close(c, code, why);
			}
		}
		evbuffer_drain(in, used);
	}
	if (c->state != CONN_WS)
		evbuffer_drain(in, evbuffer_get_length(in));
}

/* ------------------------------------------------------------- handshake */

static void upgrade(struct conn *c, const struct http_request *req,
		    const char *accept)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	const struct http_header *origin = http_find_header(req, "Origin");

	if (origin != NULL)
		c->origin = xstrndup(origin->value.p, origin->value.len);
	evbuffer_add_printf(bufferevent_get_output(c->bev),
			    "HTTP/1.1 101 Switching Protocols\r\n"
			    "Upgrade: websocket\r\n"
			    "Connection: Upgrade\r\n"
			    "Sec-WebSocket-Accept: %s\r\n"
			    "\r\n", accept);
	evbuffer_drain(in, req->head_len);
	evtimer_del(c->timer);
	ws_reader_init(&c->reader, c->w->cfg->max_message_size,
		       &reader_callbacks, c);
	c->state = CONN_WS;
	c->w->n_sessions++;
	c->session = session_new(c);
	log_info("[%s] %s: WebSocket opened", session_id(c->session), c->peer);
	/* Frames may have arrived in the same read as the request. */
	feed_frames(c);
}

static void handle_request(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t avail = evbuffer_get_length(in);
	size_t limit = c->w->cfg->max_handshake_size;
	size_t look = avail < limit ? avail : limit;
	struct http_request req;
	char accept[WS_ACCEPT_LEN + 1];
	const char *why = NULL, *buf;
	int status = 0, r;

	buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)look);
	r = http_parse_request(buf, look, &req, &status, &why);
	if (r == 0) {
		if (avail >= limit)
			http_error(c, 431, "request head too large", NULL);
		return;
	}
	if (r < 0) {
		http_error(c, status, why, NULL);
		return;
	}
	if (!ws_is_upgrade(&req)) {
		/* Pulling up the body may move the head: parse it again there,
		 * since req points into the old memory. */
		buf = (const char *)evbuffer_pullup(in, -1);
		http_parse_request(buf, look, &req, &status, &why);
		if (http_api_handle(c, &req, buf, avail) == 0 &&
		    avail > req.head_len + HTTP_API_MAX_BODY)
			http_error(c, 413, "body too large", NULL);
		return;
	}
	if (c->w->draining) {
		http_error(c, 503, "shutting down", NULL);
		return;
	}
	status = ws_handshake_check(&req, accept, &why);
	if (status == 426)
		http_error(c, 426, why, "Sec-WebSocket-Version: 13\r\n");
	else if (status == 405)
		http_error(c, 405, why, "Allow: GET\r\n");
	else if (status != 0)
		http_error(c, status, why, NULL);
	else
		upgrade(c, &req, accept);
}

/* ------------------------------------------------------------- callbacks */

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	switch (c->state) {
	case CONN_HTTP:
		handle_request(c);
		break;
	case CONN_WS:
		feed_frames(c);
		break;
	case CONN_CLOSING:
		evbuffer_drain(in, evbuffer_get_length(in));
		break;
	}
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->state != CONN_CLOSING ||
	    evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	if (c->peer_gone) {
		conn_free(c);
	} else if (!c->shut_wr) {
		c->shut_wr = 1;
		shutdown(bufferevent_getfd(bev), SHUT_WR);
	}
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if ((what & BEV_EVENT_EOF) && c->state == CONN_CLOSING &&
	    evbuffer_get_length(bufferevent_get_output(bev)) != 0) {
		/* The peer half-closed after its request: finish our answer. */
		c->peer_gone = 1;
		bufferevent_disable(bev, EV_READ);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (c->state == CONN_WS)
			log_debug("%s: connection lost without a close frame", c->peer);
		conn_free(c);
	}
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	if (c->state == CONN_HTTP)
		http_error(c, 408, "request not received in time", NULL);
	else if (c->state == CONN_CLOSING)
		conn_free(c);
}
