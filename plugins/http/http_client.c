/*
 * The http plugin's client: see http_client.h for what it promises. Under
 * it: http_multi.c (libcurl on the host's loop) and http_easy.c (one
 * transfer).
 *
 * Here: the calls, their FIFO and deadlines while they wait, the slots
 * (at most pool_size transfers in libcurl at once) and what each finished
 * transfer becomes, for the plugin to report.
 */
#define _POSIX_C_SOURCE 200809L

#include "http_curl.h"
#include "plugin_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ the lists */

/* The FIFO (q_head/q_tail) and the active list share this: an active
 * call's list has no tail. */
static void list_push(struct hc_call **head, struct hc_call **tail,
		      struct hc_call *k)
{
	k->next = NULL;
	k->prev = tail != NULL ? *tail : NULL;
	if (tail == NULL) {
		k->next = *head;
		if (*head != NULL)
			(*head)->prev = k;
		*head = k;
		return;
	}
	if (*tail != NULL)
		(*tail)->next = k;
	else
		*head = k;
	*tail = k;
}

static void list_unlink(struct hc_call **head, struct hc_call **tail,
			struct hc_call *k)
{
	if (k->prev != NULL)
		k->prev->next = k->next;
	else
		*head = k->next;
	if (k->next != NULL)
		k->next->prev = k->prev;
	else if (tail != NULL)
		*tail = k->prev;
	k->prev = k->next = NULL;
}

/* Off whichever list holds k; an active call's easy handle leaves the
 * multi (never from inside a libcurl callback: see http_multi.c). */
static void detach(struct hc_client *c, struct hc_call *k)
{
	if (k->active) {
		list_unlink(&c->active, NULL, k);
		c->n_active--;
		k->active = false;
		curl_multi_remove_handle(c->multi, k->easy);
	} else {
		list_unlink(&c->q_head, &c->q_tail, k);
		c->q_len--;
	}
}

static void call_free(struct hc_client *c, struct hc_call *k)
{
	c->host->timer_free(&k->timer);
	hc_easy_release(k);
	if (k->body != NULL) {
		pu_scrub(k->body, k->len);
		free(k->body);
	}
	if (k->answer != NULL) {
		pu_scrub(k->answer, k->answer_len);
		free(k->answer);
	}
	free(k);
}

/* Detach k, tell its owner, then free it (the result borrows k's answer). */
static void finish(struct hc_client *c, struct hc_call *k, int status,
		   const char *error)
{
	struct hc_result res = {
		.status = status,
		.body = k->answer != NULL && status != 0 ? k->answer : "",
		.body_len = status != 0 ? k->answer_len : 0,
		.error = error,
	};

	detach(c, k);
	if (k->done != NULL)
		k->done(k->arg, &res);
	call_free(c, k);
}

/* ------------------------------------------------------------ slots */

/* Hand k to libcurl with what is left of its deadline. */
static int start(struct hc_client *c, struct hc_call *k)
{
	uint64_t waited = hc_now_ms() - k->arrived_ms;

	k->budget_ms = waited < c->cfg.timeout_ms ?
		c->cfg.timeout_ms - (unsigned)waited : 1;
	if (hc_easy_setup(c, k) < 0)
		return -1;
	if (curl_multi_add_handle(c->multi, k->easy) != CURLM_OK) {
		hc_easy_release(k);
		return -1;
	}
	c->host->timer_stop(k->timer);
	list_push(&c->active, NULL, k);
	k->active = true;
	c->n_active++;
	return 0;
}

/* Waiting calls into the free slots, oldest first. */
static void dispatch(struct hc_client *c)
{
	while (c->q_head != NULL && c->n_active < c->cfg.pool_size) {
		struct hc_call *k = c->q_head;

		list_unlink(&c->q_head, &c->q_tail, k);
		c->q_len--;
		if (start(c, k) < 0) {
			list_push(&c->q_head, &c->q_tail, k);  /* for finish() */
			c->q_len++;
			finish(c, k, 0, "out of memory");
		}
	}
}

/* Fail every waiting call with why (taken off the queue one by one: the
 * callbacks may queue new ones, which stay). */
static void fail_queue(struct hc_client *c, const char *why)
{
	unsigned n = c->q_len;

	while (n-- > 0 && c->q_head != NULL)
		finish(c, c->q_head, 0, why);
}

static void deadline_while_waiting(void *arg)
{
	struct hc_call *k = arg;
	char why[96];

	snprintf(why, sizeof(why), "no answer within %u ms (still waiting for "
		 "a connection)", k->c->cfg.timeout_ms);
	finish(k->c, k, 0, why);
}

/* ------------------------------------------------------------ outcomes */

/* A timeout is the request's deadline, unless libcurl gave up earlier:
 * then it was connect_timeout, and the upstream is unreachable. */
static bool timeout_text(struct hc_client *c, struct hc_call *k, char *out,
			 size_t size)
{
	curl_off_t took_us = 0;

	curl_easy_getinfo(k->easy, CURLINFO_TOTAL_TIME_T, &took_us);
	if (took_us / 1000 + 5 < (curl_off_t)k->budget_ms) {
		snprintf(out, size, "no connection within %u ms",
			 c->cfg.connect_timeout_ms);
		return true;
	}
	snprintf(out, size, "no answer within %u ms", c->cfg.timeout_ms);
	return false;
}

/* One log line per change of the upstream's state, not one per request. */
static void note_upstream(struct hc_client *c, bool unreachable,
			  const char *why)
{
	if (unreachable && !c->down)
		c->host->log(c->inst, MYXID_LOG_WARNING, "upstream %s "
			     "unreachable: %s", c->cfg.upstream, why);
	else if (!unreachable && why == NULL && c->down)
		c->host->log(c->inst, MYXID_LOG_NOTICE, "upstream %s reachable "
			     "again", c->cfg.upstream);
	if (unreachable)
		c->down = true;
	else if (why == NULL)
		c->down = false;
}

void hc_transfer_done(struct hc_client *c, CURL *easy, CURLcode rc)
{
	struct hc_call *k = NULL;
	char why[HC_REASON_MAX];
	long status = 0, os_errno = 0;
	bool unreachable;

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&k);
	if (rc == CURLE_OK) {
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
		note_upstream(c, false, NULL);
		finish(c, k, (int)status, NULL);
		dispatch(c);
		return;
	}
	curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &os_errno);
	if (rc == CURLE_OPERATION_TIMEDOUT)
		unreachable = timeout_text(c, k, why, sizeof(why));
	else
		unreachable = hc_error_text(rc, os_errno, k->errbuf, k->too_big,
					    why, sizeof(why));
	note_upstream(c, unreachable, why);
	finish(c, k, 0, why);
	if (unreachable && c->n_active == 0)
		fail_queue(c, why);
	dispatch(c);
}

/* ------------------------------------------------------------ the API */

static struct hc_call *call_new(struct hc_client *c, const char *body,
				size_t len, hc_done_fn done, void *arg)
{
	struct hc_call *k = calloc(1, sizeof(*k));

	if (k == NULL)
		return NULL;
	k->body = malloc(len > 0 ? len : 1);
	k->timer = c->host->timer_new(c->inst, deadline_while_waiting, k);
	if (k->body == NULL || k->timer == NULL) {
		c->host->timer_free(&k->timer);
		free(k->body);
		free(k);
		return NULL;
	}
	memcpy(k->body, body, len);
	k->len = len;
	k->c = c;
	k->done = done;
	k->arg = arg;
	k->arrived_ms = hc_now_ms();
	return k;
}

struct hc_call *hc_post(struct hc_client *c, const char *body, size_t len,
			hc_done_fn done, void *arg, const char **why)
{
	bool slot = c->n_active < c->cfg.pool_size;
	struct hc_call *k;

	if (!slot && c->q_len >= c->cfg.queue_max) {
		*why = "too many requests waiting for a connection (queue_max)";
		return NULL;
	}
	k = call_new(c, body, len, done, arg);
	if (k == NULL || (slot && start(c, k) < 0)) {
		if (k != NULL)
			call_free(c, k);
		*why = "out of memory";
		return NULL;
	}
	if (!slot) {
		list_push(&c->q_head, &c->q_tail, k);
		c->q_len++;
		c->host->timer_start(k->timer, c->cfg.timeout_ms);
	}
	return k;
}

/* Safe at any time but from inside libcurl's callbacks, which never call
 * the plugin: a transfer in flight is removed from the multi at once. */
void hc_abandon(struct hc_client *c, struct hc_call *k)
{
	detach(c, k);
	call_free(c, k);
	dispatch(c);
}

static void cfg_free(struct hc_config *cfg)
{
	free((char *)cfg->url);
	free((char *)cfg->upstream);
	free((char *)cfg->ca_file);
	if (cfg->extra_headers != NULL) {
		pu_scrub((char *)cfg->extra_headers, strlen(cfg->extra_headers));
		free((char *)cfg->extra_headers);
	}
}

void hc_free(struct hc_client *c)
{
	if (c == NULL)
		return;
	while (c->active != NULL) {
		struct hc_call *k = c->active;

		detach(c, k);
		call_free(c, k);
	}
	while (c->q_head != NULL) {
		struct hc_call *k = c->q_head;

		detach(c, k);
		call_free(c, k);
	}
	hc_multi_close(c);
	cfg_free(&c->cfg);
	free(c);
}

static char *dup_or_null(const char *s, bool *oom)
{
	char *d = s != NULL ? strdup(s) : NULL;

	if (s != NULL && d == NULL)
		*oom = true;
	return d;
}

struct hc_client *hc_new(const struct myxid_host *host,
			 struct myxid_instance *inst, const struct hc_config *cfg,
			 char *err, size_t err_size)
{
	struct hc_client *c = calloc(1, sizeof(*c));
	bool oom = false;

	if (c == NULL) {
		pu_err(err, err_size, "out of memory");
		return NULL;
	}
	c->host = host;
	c->inst = inst;
	c->cfg = *cfg;
	c->cfg.url = dup_or_null(cfg->url, &oom);
	c->cfg.upstream = dup_or_null(cfg->upstream, &oom);
	c->cfg.ca_file = dup_or_null(cfg->ca_file, &oom);
	c->cfg.extra_headers = dup_or_null(cfg->extra_headers ?
					   cfg->extra_headers : "", &oom);
	if (oom) {
		pu_err(err, err_size, "out of memory");
		goto fail;
	}
	if (hc_multi_open(c, err, err_size) < 0)
		goto fail;
	return c;
fail:
	hc_free(c);
	return NULL;
}
