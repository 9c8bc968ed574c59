/*
 * One connection of the http plugin's client: the slot's state machine
 *     FREE -> CONNECTING -> [TLS] -> IDLE <-> SENDING -> READING -> IDLE
 * and back to FREE whenever it fails or the upstream ends it. The slot's
 * timer means the connect timeout while CONNECTING/TLS and the idle
 * timeout while IDLE (a call's own timer is its deadline: http_client.c).
 * Failures are logged here once per change (up -> down, down -> up).
 */
#define _POSIX_C_SOURCE 200809L

#include "http_pool.h"
#include "plugin_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void conn_io(int fd, unsigned ready, void *arg);

static int conn_watch(struct hc_conn *n, unsigned events)
{
	const struct myxid_host *host = n->c->host;

	if (n->watch == NULL) {
		n->watch = host->watch_new(n->c->inst, n->s.fd, events, conn_io, n);
		n->events = events;
		return n->watch != NULL ? 0 : -1;
	}
	if (events == n->events)
		return 0;
	n->events = events;
	return host->watch_set(n->watch, events);
}

static unsigned want_to_events(unsigned want)
{
	return (want & HT_WANT_WRITE) ? MYXID_WATCH_WRITE : MYXID_WATCH_READ;
}

/* Back to FREE. The request on it, if any, is the caller's business. */
void hc_conn_close(struct hc_conn *n)
{
	const struct myxid_host *host = n->c->host;

	host->watch_free(&n->watch);
	n->events = 0;
	host->timer_stop(n->timer);
	ht_close(&n->s);
	if (n->out != NULL) {
		pu_scrub(n->out, n->out_len);
		free(n->out);
		n->out = NULL;
	}
	n->out_len = n->out_off = 0;
	n->served = 0;
	n->call = NULL;
	n->state = C_FREE;
}

static bool any_in_state(const struct hc_client *c, bool up)
{
	for (unsigned i = 0; i < c->cfg.pool_size; i++) {
		enum conn_state s = c->conns[i].state;

		if (up ? (s == C_IDLE || s == C_SENDING || s == C_READING)
		       : (s == C_CONNECTING || s == C_TLS))
			return true;
	}
	return false;
}

/* A connection attempt failed: when nothing else is up or on its way,
 * the upstream is down and the waiting requests learn it now. */
static void attempt_failed(struct hc_conn *n, const char *why)
{
	struct hc_client *c = n->c;

	hc_conn_close(n);
	snprintf(c->last_error, sizeof(c->last_error), "%s", why);
	if (any_in_state(c, true) || any_in_state(c, false))
		return;
	if (!c->down)
		c->host->log(c->inst, MYXID_LOG_WARNING, "upstream %s "
			     "unreachable: %s", c->cfg.host_header, why);
	c->down = true;
	hc_fail_queue(c, c->last_error);
}

/*
 * The connection ended under a request (read or write failure, EOF). The
 * one safe retry: the upstream closed a reused keep-alive connection before
 * answering anything, so the request cannot have been acted on twice
 * in a way that matters (these are read-only questions) and most likely was
 * not seen at all.
 */
static void conn_broke(struct hc_conn *n, const char *why, bool eof)
{
	struct hc_client *c = n->c;
	struct hc_call *k = n->call;
	bool retry = k != NULL && eof && n->served > 0 && !k->retried &&
		!http_response_started(&n->resp);
	char reason[REASON_MAX];

	snprintf(reason, sizeof(reason), "%s", why);
	hc_conn_close(n);
	if (k == NULL)
		return;
	k->conn = NULL;
	if (retry) {
		k->retried = true;
		hc_queue_push(c, k, true);
		c->host->log(c->inst, MYXID_LOG_DEBUG, "keep-alive connection "
			     "closed by the upstream; sending again");
		return;
	}
	snprintf(c->last_error, sizeof(c->last_error), "%s", reason);
	hc_call_finish(c, k, 0, NULL, 0, c->last_error);
}

/* The whole answer is in: hand it over, keep or close the connection. */
static void conn_answered(struct hc_conn *n, bool reusable)
{
	struct hc_client *c = n->c;
	struct hc_call *k = n->call;

	n->served++;
	n->call = NULL;
	if (k != NULL)
		k->conn = NULL;
	if (reusable && conn_watch(n, MYXID_WATCH_READ) == 0) {
		n->state = C_IDLE;
		c->host->timer_start(n->timer, c->cfg.idle_timeout_ms);
	} else {
		/* The parser keeps the body: hc_conn_close leaves it alone. */
		hc_conn_close(n);
	}
	if (k != NULL)
		hc_call_finish(c, k, n->resp.status, n->resp.body,
			    n->resp.body_len, NULL);
	http_response_clear(&n->resp);
}

static void conn_read(struct hc_conn *n)
{
	char buf[READ_CHUNK];
	char err[REASON_MAX];

	for (;;) {
		unsigned want = 0;
		ssize_t got = ht_read(&n->s, buf, sizeof(buf), &want, err,
				      sizeof(err));
		enum hr_result r;
		size_t used = 0;

		if (got == HT_AGAIN) {
			if (conn_watch(n, want_to_events(want)) < 0)
				conn_broke(n, "cannot watch the socket", false);
			return;
		}
		if (got == HT_ERROR) {
			conn_broke(n, err, false);
			return;
		}
		if (got == HT_EOF) {
			if (http_response_eof(&n->resp) == HR_COMPLETE) {
				conn_answered(n, false);
			} else {
				snprintf(err, sizeof(err), "bad answer: %s",
					 n->resp.error);
				conn_broke(n, err, !http_response_started(&n->resp));
			}
			return;
		}
		r = http_response_feed(&n->resp, buf, (size_t)got, &used);
		pu_scrub(buf, (size_t)got);
		if (r == HR_FAIL) {
			snprintf(err, sizeof(err), "bad answer: %s", n->resp.error);
			conn_broke(n, err, false);
			return;
		}
		if (r == HR_COMPLETE) {
			/* Bytes after the answer: we never asked for them. */
			conn_answered(n, n->resp.keep_alive && used == (size_t)got);
			return;
		}
	}
}

static void conn_write(struct hc_conn *n)
{
	char err[REASON_MAX];

	while (n->out_off < n->out_len) {
		unsigned want = 0;
		ssize_t put = ht_write(&n->s, n->out + n->out_off,
				       n->out_len - n->out_off, &want, err,
				       sizeof(err));

		if (put == HT_AGAIN) {
			if (conn_watch(n, want_to_events(want)) < 0)
				conn_broke(n, "cannot watch the socket", false);
			return;
		}
		if (put == HT_EOF) {
			conn_broke(n, "connection closed by the upstream", true);
			return;
		}
		if (put < 0) {
			conn_broke(n, err, false);
			return;
		}
		n->out_off += (size_t)put;
	}
	pu_scrub(n->out, n->out_len);
	free(n->out);
	n->out = NULL;
	n->out_len = n->out_off = 0;
	n->state = C_READING;
	conn_read(n);
}

/* Send k on the idle connection n. */
void hc_conn_send(struct hc_conn *n, struct hc_call *k)
{
	struct hc_client *c = n->c;
	char head[1024];
	int head_len;

	c->host->timer_stop(n->timer);
	http_response_clear(&n->resp);
	head_len = snprintf(head, sizeof(head),
			    "POST %s HTTP/1.1\r\nHost: %s\r\n"
			    "User-Agent: myxid\r\nAccept: application/json\r\n"
			    "Content-Type: application/json\r\n"
			    "Content-Length: %zu\r\n", c->cfg.path,
			    c->cfg.host_header, k->len);
	n->call = k;
	k->conn = n;
	n->state = C_SENDING;
	if (head_len < 0 || (size_t)head_len >= sizeof(head)) {
		conn_broke(n, "request head too long", false);
		return;
	}
	n->out_len = (size_t)head_len + strlen(c->cfg.extra_headers) + 2 + k->len;
	n->out = malloc(n->out_len);
	if (n->out == NULL) {
		n->out_len = 0;
		conn_broke(n, "out of memory", false);
		return;
	}
	memcpy(n->out, head, (size_t)head_len);
	memcpy(n->out + head_len, c->cfg.extra_headers,
	       strlen(c->cfg.extra_headers));
	memcpy(n->out + n->out_len - k->len - 2, "\r\n", 2);
	memcpy(n->out + n->out_len - k->len, k->body, k->len);
	n->out_off = 0;
	conn_write(n);
}

/* Connected (and TLS done): serve the queue or wait, idle. */
static void conn_ready(struct hc_conn *n)
{
	struct hc_client *c = n->c;

	c->host->timer_stop(n->timer);
	if (c->down)
		c->host->log(c->inst, MYXID_LOG_NOTICE, "upstream %s reachable "
			     "again", c->cfg.host_header);
	c->down = false;
	n->state = C_IDLE;
	if (conn_watch(n, MYXID_WATCH_READ) < 0) {
		attempt_failed(n, "cannot watch the socket");
		return;
	}
	if (c->q_head != NULL) {
		struct hc_call *k = c->q_head;

		hc_queue_unlink(c, k);
		hc_conn_send(n, k);
		return;
	}
	c->host->timer_start(n->timer, c->cfg.idle_timeout_ms);
}

static void conn_handshake(struct hc_conn *n)
{
	char err[REASON_MAX];
	unsigned want = 0;
	int r = ht_tls_handshake(&n->s, &want, err, sizeof(err));

	if (r == HT_DONE) {
		conn_ready(n);
	} else if (r == HT_AGAIN) {
		if (conn_watch(n, want_to_events(want)) < 0)
			attempt_failed(n, "cannot watch the socket");
	} else {
		attempt_failed(n, err);
	}
}

static void conn_connected(struct hc_conn *n)
{
	struct hc_client *c = n->c;
	char err[REASON_MAX];

	if (c->cfg.tls == NULL) {
		conn_ready(n);
		return;
	}
	if (ht_tls_begin(&n->s, c->cfg.tls, c->cfg.server_name, err,
			 sizeof(err)) < 0) {
		attempt_failed(n, err);
		return;
	}
	n->state = C_TLS;
	conn_handshake(n);
}

/* Start a connection in the free slot n. */
void hc_conn_open(struct hc_conn *n)
{
	struct hc_client *c = n->c;
	char err[REASON_MAX];
	int r;

	r = ht_connect(&n->s, (const struct sockaddr *)&c->cfg.addr,
		       c->cfg.addr_len, err, sizeof(err));
	if (r == HT_ERROR) {
		attempt_failed(n, err);
		return;
	}
	c->opened++;
	n->served = 0;
	n->state = C_CONNECTING;
	c->host->timer_start(n->timer, c->cfg.connect_timeout_ms);
	if (r == HT_DONE) {
		conn_connected(n);
		return;
	}
	if (conn_watch(n, MYXID_WATCH_WRITE) < 0)
		attempt_failed(n, "cannot watch the socket");
}

/* Input on an idle connection: the upstream closing it (or junk, which
 * makes it unusable too). */
static void conn_idle_input(struct hc_conn *n)
{
	char buf[256], err[REASON_MAX];
	unsigned want = 0;
	ssize_t got = ht_read(&n->s, buf, sizeof(buf), &want, err, sizeof(err));

	if (got == HT_AGAIN) {
		(void)conn_watch(n, want_to_events(want));
		return;
	}
	if (got > 0)
		n->c->host->log(n->c->inst, MYXID_LOG_NOTICE, "the upstream sent "
				"%zd bytes nobody asked for; connection closed", got);
	pu_scrub(buf, sizeof(buf));
	hc_conn_close(n);
}

static void conn_io(int fd, unsigned ready, void *arg)
{
	struct hc_conn *n = arg;
	struct hc_client *c = n->c;
	char err[REASON_MAX];

	(void)fd;
	(void)ready;
	switch (n->state) {
	case C_CONNECTING:
		if (ht_connect_finish(&n->s, err, sizeof(err)) == HT_DONE)
			conn_connected(n);
		else
			attempt_failed(n, err);
		break;
	case C_TLS:
		conn_handshake(n);
		break;
	case C_IDLE:
		conn_idle_input(n);
		break;
	case C_SENDING:
		conn_write(n);
		break;
	case C_READING:
		conn_read(n);
		break;
	case C_FREE:
		break;
	}
	hc_dispatch(c);
}

void hc_conn_timer(void *arg)
{
	struct hc_conn *n = arg;
	struct hc_client *c = n->c;
	char why[96];

	if (n->state == C_CONNECTING || n->state == C_TLS) {
		snprintf(why, sizeof(why), "no connection within %u ms",
			 c->cfg.connect_timeout_ms);
		attempt_failed(n, why);
	} else if (n->state == C_IDLE) {
		hc_conn_close(n);
	}
	hc_dispatch(c);
}
