/*
 * The http plugin's pooled, non-blocking HTTP/1.1 client: see
 * http_client.h for what it promises. Under it: http_transport (socket and
 * TLS) and http_response (the parser).
 *
 * Here: the calls, their FIFO and deadlines, and dispatch(), which hands
 * waiting calls to idle connections and opens new ones (never more than
 * pool_size in all) for what is left. One connection's life is in
 * http_conn.c; what each request gets is in its result, for the plugin to
 * report.
 */
#define _POSIX_C_SOURCE 200809L

#include "http_pool.h"
#include "plugin_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ the queue */

void hc_queue_push(struct hc_client *c, struct hc_call *k, bool front)
{
	k->queued = true;
	if (front) {
		k->prev = NULL;
		k->next = c->q_head;
		if (c->q_head != NULL)
			c->q_head->prev = k;
		else
			c->q_tail = k;
		c->q_head = k;
	} else {
		k->next = NULL;
		k->prev = c->q_tail;
		if (c->q_tail != NULL)
			c->q_tail->next = k;
		else
			c->q_head = k;
		c->q_tail = k;
	}
	c->q_len++;
}

void hc_queue_unlink(struct hc_client *c, struct hc_call *k)
{
	if (!k->queued)
		return;
	if (k->prev != NULL)
		k->prev->next = k->next;
	else
		c->q_head = k->next;
	if (k->next != NULL)
		k->next->prev = k->prev;
	else
		c->q_tail = k->prev;
	k->prev = k->next = NULL;
	k->queued = false;
	c->q_len--;
}

static void call_free(struct hc_client *c, struct hc_call *k)
{
	c->host->timer_free(&k->timer);
	if (k->body != NULL) {
		pu_scrub(k->body, k->len);
		free(k->body);
	}
	free(k);
}

/* Detach k from everything, free it, then tell its owner (last, so that
 * whatever the callback does finds the client consistent). */
void hc_call_finish(struct hc_client *c, struct hc_call *k, int status,
			const char *body, size_t body_len, const char *error)
{
	hc_done_fn done = k->done;
	void *arg = k->arg;
	struct hc_result res = {
		.status = status, .body = body != NULL ? body : "",
		.body_len = body != NULL ? body_len : 0, .error = error,
	};

	hc_queue_unlink(c, k);
	if (k->conn != NULL)
		k->conn->call = NULL;
	call_free(c, k);
	if (done != NULL)
		done(arg, &res);
}

/* Fail every waiting request with why (taken off the queue first: the
 * callbacks may queue new ones). */
void hc_fail_queue(struct hc_client *c, const char *why)
{
	struct hc_call *list = c->q_head;

	c->q_head = c->q_tail = NULL;
	c->q_len = 0;
	while (list != NULL) {
		struct hc_call *k = list;

		list = k->next;
		k->queued = false;
		k->prev = k->next = NULL;
		hc_call_finish(c, k, 0, NULL, 0, why);
	}
}

/* ------------------------------------------------------------ hc_dispatch */

struct hc_conn *hc_find_state(struct hc_client *c, enum conn_state s)
{
	for (unsigned i = 0; i < c->cfg.pool_size; i++)
		if (c->conns[i].state == s)
			return &c->conns[i];
	return NULL;
}

/* Waiting requests to idle connections; new connections for the rest, as
 * many as are not already on their way. One immediate connect failure
 * ends the round (attempt_failed has answered the queue if need be). */
void hc_dispatch(struct hc_client *c)
{
	struct hc_conn *n;
	unsigned coming = 0;

	while (c->q_head != NULL && (n = hc_find_state(c, C_IDLE)) != NULL) {
		struct hc_call *k = c->q_head;

		hc_queue_unlink(c, k);
		hc_conn_send(n, k);
	}
	for (unsigned i = 0; i < c->cfg.pool_size; i++) {
		enum conn_state s = c->conns[i].state;

		if (s == C_CONNECTING || s == C_TLS)
			coming++;
	}
	while (c->q_len > coming && (n = hc_find_state(c, C_FREE)) != NULL) {
		unsigned before = c->opened;

		hc_conn_open(n);
		if (c->opened == before)
			break;
		coming++;
	}
}

static void kick_cb(void *arg)
{
	hc_dispatch(arg);
}

static void call_deadline(void *arg)
{
	struct hc_call *k = arg;
	struct hc_client *c = k->c;
	bool waited = k->queued;

	if (k->conn != NULL) {
		struct hc_conn *n = k->conn;

		n->call = NULL;
		k->conn = NULL;
		hc_conn_close(n);     /* its answer would come too late to use */
	}
	snprintf(c->deadline_msg, sizeof(c->deadline_msg), "no answer within "
		 "%u ms%s", c->cfg.timeout_ms,
		 waited ? " (still waiting for a connection)" : "");
	hc_call_finish(c, k, 0, NULL, 0, c->deadline_msg);
	hc_dispatch(c);
}

/* ------------------------------------------------------------ the API */

struct hc_call *hc_post(struct hc_client *c, const char *body, size_t len,
			hc_done_fn done, void *arg, const char **why)
{
	struct hc_call *k;

	if (c->q_len >= c->cfg.queue_max && hc_find_state(c, C_IDLE) == NULL) {
		*why = "too many requests waiting for a connection (queue_max)";
		return NULL;
	}
	k = calloc(1, sizeof(*k));
	if (k != NULL)
		k->body = malloc(len > 0 ? len : 1);
	if (k != NULL && k->body != NULL)
		k->timer = c->host->timer_new(c->inst, call_deadline, k);
	if (k == NULL || k->body == NULL || k->timer == NULL) {
		if (k != NULL)
			free(k->body);
		free(k);
		*why = "out of memory";
		return NULL;
	}
	memcpy(k->body, body, len);
	k->len = len;
	k->c = c;
	k->done = done;
	k->arg = arg;
	hc_queue_push(c, k, false);
	c->host->timer_start(k->timer, c->cfg.timeout_ms);
	c->host->timer_start(c->kick, 0);
	return k;
}

void hc_abandon(struct hc_client *c, struct hc_call *k)
{
	if (k->queued) {
		hc_queue_unlink(c, k);
		call_free(c, k);
		return;
	}
	/* On a connection: the answer (or the deadline) frees it. */
	k->done = NULL;
}

static void cfg_free(struct hc_config *cfg)
{
	free((char *)cfg->host_header);
	free((char *)cfg->path);
	free((char *)cfg->server_name);
	if (cfg->extra_headers != NULL) {
		pu_scrub((char *)cfg->extra_headers, strlen(cfg->extra_headers));
		free((char *)cfg->extra_headers);
	}
}

void hc_free(struct hc_client *c)
{
	if (c == NULL)
		return;
	for (unsigned i = 0; c->conns != NULL && i < c->cfg.pool_size; i++) {
		struct hc_conn *n = &c->conns[i];
		struct hc_call *k = n->call;

		if (n->timer != NULL)
			hc_conn_close(n);
		if (k != NULL)
			call_free(c, k);
		http_response_clear(&n->resp);
		c->host->timer_free(&n->timer);
	}
	while (c->q_head != NULL) {
		struct hc_call *k = c->q_head;

		hc_queue_unlink(c, k);
		call_free(c, k);
	}
	c->host->timer_free(&c->kick);
	free(c->conns);
	cfg_free(&c->cfg);
	free(c);
}

struct hc_client *hc_new(const struct myxid_host *host,
			 struct myxid_instance *inst, const struct hc_config *cfg,
			 char *err, size_t err_size)
{
	struct hc_client *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		pu_err(err, err_size, "out of memory");
		return NULL;
	}
	c->host = host;
	c->inst = inst;
	c->cfg = *cfg;
	c->cfg.host_header = strdup(cfg->host_header);
	c->cfg.path = strdup(cfg->path);
	c->cfg.server_name = strdup(cfg->server_name);
	c->cfg.extra_headers = strdup(cfg->extra_headers ? cfg->extra_headers : "");
	c->conns = calloc(cfg->pool_size, sizeof(*c->conns));
	c->kick = host->timer_new(inst, kick_cb, c);
	if (c->cfg.host_header == NULL || c->cfg.path == NULL ||
	    c->cfg.server_name == NULL || c->cfg.extra_headers == NULL ||
	    c->conns == NULL || c->kick == NULL) {
		pu_err(err, err_size, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < cfg->pool_size; i++) {
		struct hc_conn *n = &c->conns[i];

		n->c = c;
		n->s.fd = -1;
		n->state = C_FREE;
		http_response_init(&n->resp, HEAD_MAX, cfg->max_body);
		n->timer = host->timer_new(inst, hc_conn_timer, n);
		if (n->timer == NULL) {
			pu_err(err, err_size, "cannot create a timer");
			goto fail;
		}
	}
	return c;
fail:
	hc_free(c);
	return NULL;
}
