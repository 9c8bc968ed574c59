/*
 * One client TCP connection: the HTTP request that opens it, then either
 * a WebSocket session or a single plain HTTP exchange, then an orderly
 * close. Connections are freed only from their own event callbacks, never
 * from inside code that might still be using them, so conn_close() is safe
 * to call from anywhere.
 */
#ifndef MYXID_CONN_H
#define MYXID_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <stdbool.h>
#include "outq.h"
#include "ws_frame.h"

struct worker;
struct bufferevent;
struct event;
struct session;
struct shared_frame;
struct http_request;
struct publish_wait;

enum conn_state {
	CONN_HTTP,      /* reading the request head (and a body, for /publish) */
	CONN_WS,        /* upgraded */
	CONN_CLOSING    /* flushing what is queued, then lingering for EOF */
};

struct conn {
	struct worker *w;
	struct bufferevent *bev;
	enum conn_state state;
	bool tls;
	char peer[80];                 /* "ip:port" of the TCP peer */
	char client_ip[64];            /* the client (X-Forwarded-For if trusted) */
	bool ip_counted;               /* holds a max_connections_per_ip slot */
	bool proxied;                  /* the TCP peer is a trusted proxy */
	char *origin;                  /* Origin of the upgrade, or NULL */
	char *plugin_headers;          /* "name\0value\0..." kept for plugins, "" ends; or NULL */
	struct event *timer;           /* handshake, ping or close deadline */
	struct ws_reader reader;
	struct outq outq;
	struct session *session;       /* in CONN_WS */
	struct publish_wait *publish_wait;  /* a POST /publish in flight */
	uint64_t last_rx_ms;           /* when the peer last sent anything */
	uint32_t frame_turn;           /* the loop turn (conn.c) of the last
					* data frame, the frames queued in it, and
					* whether the turn before had several */
	uint16_t turn_frames;
	bool burst;
	int shut_wr;                   /* we sent FIN */
	int peer_gone;                 /* peer sent FIN while we still write */
	struct conn *next, *prev;      /* the worker's list */
};

/* Take over an accepted socket; tls: wrap it in the worker's SSL_CTX. */
void conn_accept(struct worker *w, int fd, const struct sockaddr *sa, int salen,
		 bool tls);

/* Queue a text frame (payload copied). */
void conn_send_text(struct conn *c, const char *payload, size_t len);

/* Queue a shared frame (no copy for large frames). */
void conn_send_shared(struct conn *c, struct shared_frame *f);

/* Close codes of our own (documented in myxid.conf(5)). */
#define CLOSE_PING_TIMEOUT 4000   /* no answer to our pings */
#define CLOSE_SLOW 4008           /* output over max_output_buffer */

/*
 * Close: for a WebSocket, send a close frame with code and reason (code 0
 * sends none); then flush, shut down writing, and free once the peer closes
 * or a short linger time passes. Idempotent.
 */
void conn_close(struct conn *c, int code, const char *reason);

/* Answer a plain HTTP request (Connection: close) and close. extra_headers
 * are complete "Name: value\r\n" lines or NULL. */
void conn_http_reply(struct conn *c, int status, const char *content_type,
		     const char *extra_headers, const char *body, size_t len);

/* Free every connection of w at once (final teardown). */
void conn_free_all(struct worker *w);

/* conn_close() every connection of w (shutdown). */
void conn_close_all(struct worker *w, int code, const char *reason);

#endif
