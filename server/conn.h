/*
 * One client TCP connection: the HTTP request that opens it, then either
 * a WebSocket session or a single plain HTTP exchange, then an orderly
 * close. Connections are freed only from their own event callbacks, never
 * from inside code that might still be using them, so conn_close() is safe
 * to call from anywhere.
 *
 * conn sits below the protocols spoken on it: it calls them only through
 * the handler table the layer above installs (the listener's at accept,
 * the session's at the upgrade), never by name.
 */
#ifndef MYXID_CONN_H
#define MYXID_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <stdbool.h>
#include "outq.h"
#include "reply_stage.h"
#include "ws_frame.h"

struct worker;
struct bufferevent;
struct event;
struct session;
struct shared_frame;
struct http_request;
struct http_wait;

struct conn;

/*
 * What runs on a connection. The listener gives each new connection the
 * table of protocols.c (request, upgraded, closed); session_new() installs
 * the session's (message, closed, log_name). Members a table does not need
 * are NULL.
 */
struct conn_handler {
	/* CONN_HTTP, a plain request (no upgrade) with avail bytes, head
	 * included, in buf. Returns 0 while the body is not complete (called
	 * again with more), 1 once an answer was queued. */
	int (*request)(struct conn *c, const struct http_request *req,
		       const char *buf, size_t avail);
	size_t max_body;      /* a body longer than this is answered 413 */
	/* The handshake was answered: start the WebSocket protocol. */
	void (*upgraded)(struct conn *c);
	/* CONN_WS: one complete text or binary message. */
	void (*message)(struct conn *c, const uint8_t *data, size_t len);
	/* c is about to be freed: let go of what hangs on it. */
	void (*closed)(struct conn *c);
	/* The "[name]" of log lines about an upgraded connection. */
	const char *(*log_name)(const struct conn *c);
};

/*
 * The open connections of one loop. Its owner (listener.c) walks it to
 * drain and frees what is left; conn.c links a connection in at accept and
 * out as it frees it, then calls emptied (may be NULL) if it was the last.
 */
struct conn_list {
	struct conn *first;
	size_t n;
	void (*emptied)(void *arg);
	void *arg;
};

enum conn_state {
	CONN_HTTP,      /* reading the request head (and a body, for /publish) */
	CONN_WS,        /* upgraded */
	CONN_STREAM,    /* a session over a one-way stream (SSE): see conn_stream */
	CONN_CLOSING    /* flushing what is queued, then lingering for EOF */
};

/*
 * A transport other than WebSocket under a session (sse.c's): how the
 * session's messages are written, what the connection's timer does, and
 * what happens at a close. conn_send_text() and conn_send_shared() hand
 * their messages to it in CONN_STREAM.
 */
struct conn_stream {
	void (*text)(struct conn *c, const char *json, size_t len);
	void (*shared)(struct conn *c, struct shared_frame *f);
	/* The timer fired; returns ms until it should fire again (0: never). */
	unsigned (*tick)(struct conn *c);
	/* conn_close() was called (before the lingering close). */
	void (*closing)(struct conn *c, int code, const char *reason);
	/* c is about to be freed: free the transport's state. */
	void (*freed)(struct conn *c);
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
	const struct conn_handler *handler;  /* borrowed, static tables */
	struct conn_list *list;        /* the list c is on, owned above */
	struct session *session;       /* in CONN_WS; session.c's to set and free */
	struct http_wait *http_wait;   /* an answer waiting for the other loops */
	uint64_t last_rx_ms;           /* when the peer last sent anything */
	uint32_t frame_turn;           /* the loop turn (conn.c) of the last
					* data frame, the frames queued in it, and
					* whether the turn before had several */
	uint16_t turn_frames;
	bool burst;
	struct staged_socket staged;   /* replies held for one write */
	uint8_t deflate_bits;          /* permessage-deflate's window, or 0: off */
	const struct conn_stream *stream;  /* CONN_STREAM's transport (static) */
	void *stream_state;            /* its state, owned by it */
	int shut_wr;                   /* we sent FIN */
	int peer_gone;                 /* peer sent FIN while we still write */
	struct conn *next, *prev;      /* on list */
};

/* Take over an accepted socket onto list, served by handler; tls: wrap it
 * in the worker's SSL_CTX. */
void conn_accept(struct conn_list *list, const struct conn_handler *handler,
		 struct worker *w, int fd, const struct sockaddr *sa, int salen,
		 bool tls);

/* Queue a text frame (payload copied). */
void conn_send_text(struct conn *c, const char *payload, size_t len);

/* Queue a shared frame (no copy for large frames). */
void conn_send_shared(struct conn *c, struct shared_frame *f);

/*
 * Admit a client that will hold a session (limits, draining, Origin) and
 * keep its headers for plugins: 0, or the HTTP status already answered.
 */
int conn_admit(struct conn *c, const struct http_request *req);

/*
 * Start a session over a stream transport on an admitted connection whose
 * request (head_len bytes) has been handled: the transport gets the
 * session's output from now on; first tick after tick_ms (0: none).
 */
void conn_stream_start(struct conn *c, const struct http_request *req,
		       const struct conn_stream *stream, void *state, unsigned tick_ms);

/* Room for len more bytes in c's output? If not, c is closed as a slow
 * consumer (counted and logged) and false is returned. */
bool conn_output_room(struct conn *c, size_t len);

/* Fire c's stream tick in ms (0: at the next loop turn). */
void conn_stream_wake(struct conn *c, unsigned ms);

/* c's output buffer (for a stream transport's writes). */
struct evbuffer *conn_output(struct conn *c);

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

/* Free every connection on list at once (final teardown). */
void conn_free_all(struct conn_list *list);

#endif
