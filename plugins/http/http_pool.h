/*
 * Inside the http plugin's client (http_client.c: the queue, dispatch and
 * the API; http_conn.c: one connection's state machine). Not for the
 * plugin itself: it sees http_client.h only.
 *
 * Ownership: the client owns its connection slots (conns) and every call
 * until the call's callback has been called or the call is abandoned; a
 * call on a connection is pointed at by both (k->conn, n->call).
 */
#ifndef MYXID_HTTP_POOL_H
#define MYXID_HTTP_POOL_H

#include <stdbool.h>
#include <stddef.h>

#include "http_client.h"
#include "http_response.h"
#include "http_transport.h"

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

#define HEAD_MAX 16384u
#define READ_CHUNK 16384u
#define REASON_MAX 256

enum conn_state { C_FREE, C_CONNECTING, C_TLS, C_IDLE, C_SENDING, C_READING };

struct hc_conn;

struct hc_call {
	struct hc_client *c;
	struct hc_call *prev, *next;  /* the queue, while queued */
	bool queued;
	struct hc_conn *conn;         /* while on a connection */
	char *body;                   /* owned; scrubbed */
	size_t len;
	hc_done_fn done;              /* NULL once abandoned */
	void *arg;
	struct myxid_timer *timer;    /* the deadline */
	bool retried;
};

struct hc_conn {
	struct hc_client *c;
	enum conn_state state;
	struct ht_stream s;
	struct myxid_watch *watch;
	unsigned events;
	struct myxid_timer *timer;
	struct hc_call *call;
	char *out;                    /* the request being written; scrubbed */
	size_t out_len, out_off;
	unsigned served;              /* answers read on this connection */
	struct http_response resp;
};

struct hc_client {
	const struct myxid_host *host;
	struct myxid_instance *inst;
	struct hc_config cfg;         /* strings owned */
	struct hc_conn *conns;
	struct hc_call *q_head, *q_tail;
	unsigned q_len;
	struct myxid_timer *kick;     /* runs dispatch() from the loop */
	bool down;                    /* the last attempt failed, none is up */
	unsigned opened;
	char last_error[REASON_MAX];
	char deadline_msg[96];
};

/* The FIFO of calls waiting for a connection (http_client.c). */
void hc_queue_push(struct hc_client *c, struct hc_call *k, bool front);
void hc_queue_unlink(struct hc_client *c, struct hc_call *k);

/* Detach k, free it, then call its callback (if not abandoned). */
void hc_call_finish(struct hc_client *c, struct hc_call *k, int status,
		    const char *body, size_t body_len, const char *error);

/* Answer every waiting call with why. */
void hc_fail_queue(struct hc_client *c, const char *why);

/* Give waiting calls to idle connections; open more if allowed. */
void hc_dispatch(struct hc_client *c);

/* The first slot in state s, or NULL. */
struct hc_conn *hc_find_state(struct hc_client *c, enum conn_state s);

/* One connection (http_conn.c): start one in the free slot n; send k on
 * the idle n; back to FREE (the call on it is the caller's business); the
 * slot's timer callback. */
void hc_conn_open(struct hc_conn *n);
void hc_conn_send(struct hc_conn *n, struct hc_call *k);
void hc_conn_close(struct hc_conn *n);
void hc_conn_timer(void *arg);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
