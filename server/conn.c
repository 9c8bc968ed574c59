/*
 * Client connections on libevent bufferevents (plain or TLS): the opening
 * HTTP request, the WebSocket upgrade with its limits and checks, frame
 * I/O with a capped output queue, server pings, and a lingering close so
 * that a close frame or an error response is not lost to a TCP reset when
 * the peer still had bytes in flight.
 */
#include "conn.h"
#include "access_rules.h"
#include "config.h"
#include "http_parse.h"
#include "ip_table.h"
#include "log.h"
#include "metrics.h"
#include "worker.h"
#include "shared_frame.h"
#include "util.h"
#include "ws_handshake.h"
#include "ws_deflate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/ssl.h>

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

/* "ip:port" for logs, and the bare ip for limits and plugins. */
static void format_peer(const struct sockaddr *sa, char *peer, size_t psize,
			char *ip, size_t isize)
{
	unsigned port = 0;

	snprintf(ip, isize, "?");
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		evutil_inet_ntop(AF_INET, &in->sin_addr, ip, isize);
		port = ntohs(in->sin_port);
		snprintf(peer, psize, "%s:%u", ip, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		evutil_inet_ntop(AF_INET6, &in6->sin6_addr, ip, isize);
		port = ntohs(in6->sin6_port);
		snprintf(peer, psize, "[%s]:%u", ip, port);
	} else {
		snprintf(peer, psize, "unix");
	}
}

static struct bufferevent *new_bev(struct worker *w, int fd, bool tls)
{
	SSL *ssl;

	if (!tls)
		return bufferevent_socket_new(worker_base(w), fd, BEV_OPT_CLOSE_ON_FREE);
	ssl = SSL_new(worker_ssl_ctx(w));
	if (ssl == NULL)
		return NULL;
	return bufferevent_openssl_socket_new(worker_base(w), fd, ssl,
					      BUFFEREVENT_SSL_ACCEPTING,
					      BEV_OPT_CLOSE_ON_FREE);
}

static void list_add(struct conn_list *list, struct conn *c)
{
	c->list = list;
	c->next = list->first;
	if (list->first)
		list->first->prev = c;
	list->first = c;
	list->n++;
}

/* The owner hears of the last one going (a drain ends with it). */
static void list_remove(struct conn *c)
{
	struct conn_list *list = c->list;

	if (c->prev)
		c->prev->next = c->next;
	else
		list->first = c->next;
	if (c->next)
		c->next->prev = c->prev;
	list->n--;
	if (list->n == 0 && list->emptied != NULL)
		list->emptied(list->arg);
}

/* The session's name, for log lines about an upgraded connection. */
static const char *log_name(const struct conn *c)
{
	return c->handler->log_name(c);
}

void conn_accept(struct conn_list *list, const struct conn_handler *handler,
		 struct worker *w, int fd, const struct sockaddr *sa, int salen,
		 bool tls)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	int one = 1;

	c->w = w;
	c->handler = handler;
	c->state = CONN_HTTP;
	c->tls = tls;
	format_peer(sa, c->peer, sizeof(c->peer), c->client_ip, sizeof(c->client_ip));
	c->proxied = address_trusted(&worker_config(w)->trusted_proxies, sa);
	/* Frames are small and latency matters more than packet count. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->bev = new_bev(w, fd, tls);
	if (c->bev == NULL) {
		log_error("%s: cannot create a bufferevent", c->peer);
		evutil_closesocket(fd);
		free(c);
		return;
	}
	if (tls)
		bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	outq_init(&c->outq);
	c->timer = evtimer_new(worker_base(w), conn_timer_cb, c);
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	/* Called back when the output is nearly drained, to refill it. */
	bufferevent_setwatermark(c->bev, EV_WRITE, OUTQ_BATCH / 4, 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	timer_arm(c, worker_config(w)->handshake_timeout_ms);
	list_add(list, c);
	metrics_inc(M_CONNECTIONS_TOTAL);
	metrics_inc(M_CONNECTIONS_OPEN);
	log_debug("%s: connected%s", c->peer, tls ? " (TLS)" : "");
}

static void conn_free(struct conn *c)
{
	reply_stage_forget(worker_reply_stage(c->w), &c->staged);
	if (c->session != NULL) {
		log_info("[%s] %s: closed", log_name(c), c->peer);
		metrics_add(M_SOCKETS_OPEN, -1);
	}
	if (c->handler->closed != NULL)
		c->handler->closed(c);
	if (c->stream != NULL)
		c->stream->freed(c);
	if (c->ip_counted)
		ip_table_release(worker_ips(c->w), c->client_ip);
	ws_reader_free(&c->reader);
	outq_free(&c->outq);
	event_free(c->timer);
	bufferevent_free(c->bev);
	list_remove(c);
	metrics_add(M_CONNECTIONS_OPEN, -1);
	free(c->origin);
	free(c->plugin_headers);
	free(c);
}

/* ---------------------------------------------------------------- output */

/* A control frame: straight to the output, ahead of the data backlog. */
static void send_control(struct conn *c, int opcode, const void *payload, size_t len)
{
	uint8_t hdr[WS_MAX_HEADER];
	size_t hlen = ws_header_encode(hdr, opcode, len);
	struct evbuffer *out = bufferevent_get_output(c->bev);

	reply_stage_spill(worker_reply_stage(c->w), &c->staged);
	evbuffer_add(out, hdr, hlen);
	if (len)
		evbuffer_add(out, payload, len);
	metrics_add(M_BYTES_OUT, (int64_t)(hlen + len));
}

/*
 * Room for frame_len more bytes of data? If not, the socket cannot keep up:
 * drop what waits and close it, rather than let its buffer grow without
 * bound (the classic way push servers run out of memory).
 */
bool conn_output_room(struct conn *c, size_t frame_len)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t pending = outq_pending(&c->outq, out);

	/* An idle socket takes any one frame, even one larger than the cap:
	 * being slow means having a backlog. */
	if (pending == 0 || pending + frame_len <= worker_config(c->w)->max_output_buffer)
		return true;
	log_info("[%s] %s: too slow (%zu bytes waiting); closing", log_name(c),
		 c->peer, pending);
	metrics_inc(M_SLOW_CLOSES);
	outq_drop(&c->outq);
	conn_close(c, CLOSE_SLOW, "slow consumer: output buffer full");
	return false;
}

/* A reply for a plain socket with nothing queued: held for one write at
 * the end of the loop's turn (reply_stage.h). */
static bool stage_reply(struct conn *c, const uint8_t *hdr, size_t hlen,
			const char *payload, size_t len)
{
	if (c->tls || (c->staged.slot == 0 &&
		       outq_pending(&c->outq, bufferevent_get_output(c->bev)) != 0))
		return false;
	c->staged.bev = c->bev;
	return reply_stage_add(worker_reply_stage(c->w), &c->staged, hdr, hlen,
			       payload, len);
}

void conn_send_text(struct conn *c, const char *payload, size_t len)
{
	uint8_t hdr[WS_MAX_HEADER];
	size_t hlen;
	struct evbuffer *dst;

	if (c->state == CONN_STREAM) {
		c->stream->text(c, payload, len);
		return;
	}
	if (c->state != CONN_WS)
		return;
	hlen = ws_header_encode(hdr, WS_OP_TEXT, len);
	if (!conn_output_room(c, hlen + len))
		return;
	metrics_add(M_BYTES_OUT, (int64_t)(hlen + len));
	if (stage_reply(c, hdr, hlen, payload, len))
		return;
	dst = outq_target(&c->outq, bufferevent_get_output(c->bev), hlen + len);
	evbuffer_add(dst, hdr, hlen);
	evbuffer_add(dst, payload, len);
}

/*
 * Loop turns that queued data frames, told apart by the loop's cached clock
 * (constant within a turn): write_if_idle()'s choice of direct writes.
 * Per thread, as every loop runs on a thread of its own.
 */
static _Thread_local struct {
	uint64_t clock;
	uint32_t n;
} loop_turn;

/*
 * Write a frame at once to a plain socket whose output is empty, unless it
 * is in a burst; returns the bytes the kernel took (the caller queues the
 * rest). Through the bufferevent, a frame for an idle socket costs an
 * epoll_ctl() to arm its write event, a wake-up, and another epoll_ctl()
 * to disarm it: three system calls around the one write, for every frame
 * when each socket gets one frame at a time (many keys, or one key at a
 * modest rate). A socket that got several frames in its previous loop turn
 * is in a burst: its frames keep the buffered path, where a turn's frames
 * leave in one writev(), and so do the second and later frames of a turn.
 */
static size_t write_if_idle(struct conn *c, const uint8_t *data, size_t len)
{
	struct timeval tv;
	uint64_t clock;
	ssize_t n;

	event_base_gettimeofday_cached(worker_base(c->w), &tv);
	clock = (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
	if (clock != loop_turn.clock) {
		loop_turn.clock = clock;
		loop_turn.n++;
	}
	if (c->frame_turn != loop_turn.n) {
		c->burst = c->frame_turn + 1 == loop_turn.n && c->turn_frames > 1;
		c->frame_turn = loop_turn.n;
		c->turn_frames = 0;
	}
	if (c->turn_frames < UINT16_MAX)
		c->turn_frames++;
	if (c->tls || c->burst || c->turn_frames > 1 ||
	    outq_pending(&c->outq, bufferevent_get_output(c->bev)) != 0)
		return 0;
	/* An error is left for the bufferevent's own write to report. */
	n = send(bufferevent_getfd(c->bev), data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	return n > 0 ? (size_t)n : 0;
}

void conn_send_shared(struct conn *c, struct shared_frame *f)
{
	size_t sent;

	if (c->state == CONN_STREAM) {
		c->stream->shared(c, f);
		return;
	}
	if (c->state != CONN_WS) {
		metrics_inc(M_DROPPED_FRAMES);
		return;
	}
	/* Compressed once per frame and window, whoever asks first. */
	if (c->deflate_bits && f->len >= worker_config(c->w)->websocket_compression_min_size)
		f = shared_frame_deflated(f, c->deflate_bits,
					  (int)worker_config(c->w)->websocket_compression_level);
	if (!conn_output_room(c, f->len))
		return;
	reply_stage_spill(worker_reply_stage(c->w), &c->staged);
	sent = write_if_idle(c, f->data, f->len);
	if (sent > 0 && sent < f->len)
		evbuffer_add(bufferevent_get_output(c->bev), f->data + sent, f->len - sent);
	else if (sent == 0)
		shared_frame_send(f, outq_target(&c->outq, bufferevent_get_output(c->bev),
						 f->len));
	metrics_inc(M_DELIVERIES);
	metrics_add(M_BYTES_OUT, (int64_t)f->len);
}

/* ----------------------------------------------------------------- close */

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
	reply_stage_spill(worker_reply_stage(c->w), &c->staged);
	if (c->state == CONN_WS && code != 0) {
		uint8_t body[125];
		size_t len = code == WS_CLOSE_NO_STATUS ? 0 :
			ws_close_body(body, code, reason ? reason : "");
		send_control(c, WS_OP_CLOSE, body, len);
	}
	if (c->state == CONN_STREAM)
		c->stream->closing(c, code, reason);
	if (c->session != NULL)
		log_info("[%s] %s: closing (%d%s%s)", log_name(c),
			 c->peer, code, reason && *reason ? " " : "",
			 reason ? reason : "");
	begin_linger(c);
}

void conn_free_all(struct conn_list *list)
{
	while (list->first != NULL)
		conn_free(list->first);
}

static const char *status_text(int status)
{
	switch (status) {
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 202: return "Accepted";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
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

	if (c->state != CONN_HTTP && c->state != CONN_STREAM)
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
	if (status >= 400) {
		log_info("%s: HTTP %d", c->peer, status);
		metrics_inc(M_HANDSHAKES_REFUSED);
	}
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

	metrics_inc(M_MESSAGES_IN);
	/* Myxi treats binary frames as JSON text too. */
	if (c->state == CONN_WS)
		c->handler->message(c, data, len);
}

static void on_ws_ping(void *arg, const uint8_t *data, size_t len)
{
	struct conn *c = arg;

	if (c->state == CONN_WS)
		send_control(c, WS_OP_PONG, data, len);
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

	c->last_rx_ms = monotonic_ms();
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
				metrics_inc(M_PROTOCOL_CLOSES);
				conn_close(c, code, why);
			}
		}
		metrics_add(M_BYTES_IN, (int64_t)used);
		evbuffer_drain(in, used);
	}
	if (c->state != CONN_WS)
		evbuffer_drain(in, evbuffer_get_length(in));
}

/* ------------------------------------------------------------- handshake */

/*
 * The upgrade headers named by plugin_header, for plugins (req_get
 * "header:NAME"): one block, nothing at all unless configured and sent,
 * since a socket's memory is mostly what it keeps from its handshake.
 */
static void keep_plugin_headers(struct conn *c, const struct http_request *req)
{
	const struct conf_strlist *names = &worker_config(c->w)->plugin_headers;
	size_t size = 1, at = 0;
	const struct http_header *h;

	for (size_t i = 0; i < names->n; i++)
		if ((h = http_find_header(req, names->v[i])) != NULL)
			size += strlen(names->v[i]) + h->value.len + 2;
	if (size == 1)
		return;
	c->plugin_headers = xmalloc(size);
	for (size_t i = 0; i < names->n; i++) {
		if ((h = http_find_header(req, names->v[i])) == NULL)
			continue;
		memcpy(c->plugin_headers + at, names->v[i], strlen(names->v[i]) + 1);
		at += strlen(names->v[i]) + 1;
		memcpy(c->plugin_headers + at, h->value.p, h->value.len);
		at += h->value.len;
		c->plugin_headers[at++] = '\0';
	}
	c->plugin_headers[at] = '\0';
}

/* Who is the client: behind a trusted proxy, the one it names. */
static void client_address(struct conn *c, const struct http_request *req)
{
	const struct http_header *xff = http_find_header(req, "X-Forwarded-For");

	if (c->proxied && xff != NULL)
		forwarded_client(&worker_config(c->w)->trusted_proxies, xff->value.p,
				 xff->value.len, c->client_ip, sizeof(c->client_ip));
}

int conn_admit(struct conn *c, const struct http_request *req)
{
	const struct myxid_config *cfg = worker_config(c->w);
	const struct http_header *origin = http_find_header(req, "Origin");

	if (origin != NULL && !origin_allowed(&cfg->allow_origins, origin->value.p,
					      origin->value.len)) {
		http_error(c, 403, "this Origin may not open WebSockets here", NULL);
		return 403;
	}
	if (worker_draining(c->w)) {
		http_error(c, 503, "shutting down", "Retry-After: 5\r\n");
		return 503;
	}
	/* Counted over every event loop: the limits are the whole daemon's. */
	if ((size_t)metrics_get(M_SOCKETS_OPEN) >= cfg->max_connections ||
	    !ip_table_take(worker_ips(c->w), c->client_ip, cfg->max_connections_per_ip)) {
		metrics_inc(M_LIMIT_REFUSED);
		log_notice("%s: connection limit reached (client %s)", c->peer,
			   c->client_ip);
		http_error(c, 503, "too many connections", "Retry-After: 5\r\n");
		return 503;
	}
	c->ip_counted = true;
	if (origin != NULL)
		c->origin = xstrndup(origin->value.p, origin->value.len);
	keep_plugin_headers(c, req);
	return 0;
}

static void arm_ping(struct conn *c)
{
	if (worker_config(c->w)->ping_interval_ms > 0)
		timer_arm(c, worker_config(c->w)->ping_interval_ms);
}

static void upgrade(struct conn *c, const struct http_request *req,
		    const char *accept)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	const struct myxid_config *cfg = worker_config(c->w);
	char ext[WS_DEFLATE_RESPONSE_MAX];
	unsigned bits = 0;

	client_address(c, req);
	if (conn_admit(c, req) != 0)
		return;
	if (!cfg->websocket_compression || !ws_deflate_negotiate(req, &bits, ext))
		bits = 0;
	evbuffer_add_printf(bufferevent_get_output(c->bev),
			    "HTTP/1.1 101 Switching Protocols\r\n"
			    "Upgrade: websocket\r\n"
			    "Connection: Upgrade\r\n"
			    "Sec-WebSocket-Accept: %s\r\n"
			    "%s%s%s"
			    "\r\n", accept, bits ? "Sec-WebSocket-Extensions: " : "",
			    bits ? ext : "", bits ? "\r\n" : "");
	evbuffer_drain(in, req->head_len);
	evtimer_del(c->timer);
	ws_reader_init(&c->reader, worker_config(c->w)->max_message_size,
		       &reader_callbacks, c);
	c->deflate_bits = (uint8_t)bits;
	if (bits)
		ws_reader_allow_deflate(&c->reader);
	c->state = CONN_WS;
	c->last_rx_ms = monotonic_ms();
	worker_session_opened(c->w);
	metrics_inc(M_SOCKETS_OPEN);
	c->handler->upgraded(c);
	log_info("[%s] %s: WebSocket opened%s%s%s", log_name(c), c->peer,
		 strcmp(c->client_ip, "?") && c->proxied ? " for " : "",
		 c->proxied ? c->client_ip : "", c->tls ? " (TLS)" : "");
	arm_ping(c);
	/* Frames may have arrived in the same read as the request. */
	feed_frames(c);
}

void conn_stream_start(struct conn *c, const struct http_request *req,
		       const struct conn_stream *stream, void *state, unsigned tick_ms)
{
	evbuffer_drain(bufferevent_get_input(c->bev), req->head_len);
	evtimer_del(c->timer);
	c->stream = stream;
	c->stream_state = state;
	c->state = CONN_STREAM;
	c->last_rx_ms = monotonic_ms();
	worker_session_opened(c->w);
	metrics_inc(M_SOCKETS_OPEN);
	c->handler->upgraded(c);
	if (tick_ms)
		timer_arm(c, tick_ms);
}

void conn_stream_wake(struct conn *c, unsigned ms)
{
	timer_arm(c, ms);
}

struct evbuffer *conn_output(struct conn *c)
{
	return bufferevent_get_output(c->bev);
}

static void handle_request(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t avail = evbuffer_get_length(in);
	size_t limit = worker_config(c->w)->max_handshake_size;
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
		client_address(c, &req);
		if (c->handler->request(c, &req, buf, avail) == 0 &&
		    avail > req.head_len + c->handler->max_body)
			http_error(c, 413, "body too large", NULL);
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
	case CONN_STREAM:   /* a one-way stream: what the client sends is ignored */
	case CONN_CLOSING:
		evbuffer_drain(in, evbuffer_get_length(in));
		break;
	}
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *out = bufferevent_get_output(bev);

	if (c->state == CONN_WS) {
		outq_refill(&c->outq, out);
		return;
	}
	if (c->state != CONN_CLOSING || evbuffer_get_length(out) != 0)
		return;
	if (c->peer_gone || c->tls) {
		/* TLS has its own close_notify; a half-close would cut it. */
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

/* In CONN_WS the timer paces server pings and notices a silent peer. */
static void ping_tick(struct conn *c)
{
	const struct myxid_config *cfg = worker_config(c->w);
	uint64_t silent = monotonic_ms() - c->last_rx_ms;

	if (silent >= (uint64_t)cfg->ping_interval_ms + cfg->ping_timeout_ms) {
		log_info("[%s] %s: no answer to pings for %llu ms", log_name(c),
			 c->peer, (unsigned long long)silent);
		metrics_inc(M_PING_TIMEOUTS);
		conn_close(c, CLOSE_PING_TIMEOUT, "ping timeout");
		return;
	}
	if (silent >= cfg->ping_interval_ms)
		send_control(c, WS_OP_PING, "myxid", 5);
	/* Next look: at the deadline if a ping is out, else an interval on. */
	timer_arm(c, silent >= cfg->ping_interval_ms ?
		  (unsigned)(cfg->ping_interval_ms + cfg->ping_timeout_ms - silent) :
		  (unsigned)(cfg->ping_interval_ms - silent));
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	if (c->state == CONN_HTTP)
		http_error(c, 408, "request not received in time", NULL);
	else if (c->state == CONN_WS)
		ping_tick(c);
	else if (c->state == CONN_STREAM) {
		unsigned next = c->stream->tick(c);

		if (next && c->state == CONN_STREAM)
			timer_arm(c, next);
	} else
		conn_free(c);
}
