/*
 * Auth and policy requests; see authz.h for the contract.
 *
 * A request is driven by one libevent timer event. While a plugin holds it
 * (PENDING) the event is the timeout; when an answer is known the event is
 * activated, so the answer is acted on from the loop, never inside the
 * plugin call that produced it. That one rule makes a plugin that answers
 * synchronously, one that calls req_done() from inside auth(), and one that
 * answers much later all take the same path.
 */
#include "authz.h"
#include "answer_cache.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "plugin_host.h"
#include "plugin_req.h"
#include "runconf.h"
#include "worker.h"
#include "util.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

static void req_free(struct myxid_req *req)
{
	event_free(req->ev);
	runconf_unref(&req->rc);
	identity_free(&req->ident);
	if (req->token != NULL) {
		/* The token is a credential: do not leave it in freed memory. */
		OPENSSL_cleanse(req->token, strlen(req->token));
		free(req->token);
	}
	free(req->exchange);
	free(req->routing_key);
	if (req->grant != NULL) {
		OPENSSL_cleanse(req->grant, strlen(req->grant));
		free(req->grant);
	}
	free(req->cache_key);
	free(req);
}

/* Ask inst; returns with req answered or pending. */
static void ask(struct myxid_req *req, struct myxid_instance *inst)
{
	enum myxid_verdict v;
	struct timeval tv;
	unsigned ms = req->rc->cfg->auth_timeout_ms;

	req->holder = inst;
	req->state = REQ_CALLING;
	req->asked_us = monotonic_us();
	if (req->kind == REQ_AUTH)
		v = inst->desc->auth(inst->ctx, req);
	else
		v = inst->desc->policy(inst->ctx, req);
	if (req->state == REQ_ANSWERED)
		return;                  /* req_done() came inside the call */
	if (v == MYXID_PENDING) {
		req->state = REQ_PENDING;
		inst->pending++;
		tv.tv_sec = ms / 1000;
		tv.tv_usec = (ms % 1000) * 1000;
		evtimer_add(req->ev, &tv);
		return;
	}
	if (v > MYXID_PENDING) {
		log_error("%s: returned invalid verdict %d", inst->label, (int)v);
		v = MYXID_ERROR;
	}
	plugin_req_answer(req, v);
}

static void remember(struct myxid_req *req, const struct identity *id)
{
	struct answer_cache *c = req->kind == REQ_AUTH ? req->rc->auth_cache :
		req->rc->policy_cache;

	if (!req->cached)
		answer_cache_put(c, req->cache_key, req->cache_key_len, id);
}

static void deliver(struct myxid_req *req, enum myxid_verdict v)
{
	struct identity *id = NULL;

	if (v == MYXID_ALLOW && req->kind == REQ_AUTH) {
		if (req->ident == NULL || req->ident->user_id == NULL) {
			log_error("%s: allowed without setting a user id; denying",
				  req->holder->label);
			v = MYXID_ERROR;
		} else {
			id = req->ident;
			req->ident = NULL;
		}
	}
	if (v == MYXID_ALLOW)
		remember(req, id);
	req->done(req->done_arg, v, id);
	req_free(req);
}

static void req_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct myxid_req *req = arg;
	enum myxid_verdict v;

	if (req->state == REQ_PENDING) {
		/* Timed out: take the request back from the plugin. */
		struct myxid_instance *inst = req->holder;
		log_warn("%s: no answer within %u ms", inst->label,
			 req->rc->cfg->auth_timeout_ms);
		if (inst->desc->cancel != NULL)
			inst->desc->cancel(inst->ctx, req);
		inst->pending--;
		metrics_plugin_answer(inst->label, MYXID_ERROR,
				      monotonic_us() - req->asked_us);
		deliver(req, MYXID_ERROR);
		return;
	}
	v = req->answer;
	if (v == MYXID_NEXT && req->kind == REQ_AUTH &&
	    req->next_plugin < req->rc->n_auths) {
		identity_free(&req->ident);
		ask(req, req->rc->auths[req->next_plugin++]);
		return;
	}
	if (v == MYXID_NEXT)
		v = MYXID_DENY;   /* nobody vouched for it */
	deliver(req, v);
}

static struct myxid_req *req_new(struct worker *w, enum req_kind kind,
				 const struct req_client *client,
				 authz_done_fn *done, void *arg)
{
	struct myxid_req *req = xcalloc(1, sizeof(*req));

	req->kind = kind;
	req->w = w;
	req->rc = runconf_ref(worker_runconf(w));
	req->client = *client;
	req->done = done;
	req->done_arg = arg;
	req->ev = evtimer_new(worker_base(w), req_event_cb, req);
	return req;
}

/* Answer from the cache if it can; true if it did. */
static bool answer_from_cache(struct myxid_req *req, unsigned flags)
{
	struct answer_cache *c = req->kind == REQ_AUTH ? req->rc->auth_cache :
		req->rc->policy_cache;
	struct identity *id = NULL;

	if ((flags & AUTHZ_FRESH) ||
	    !answer_cache_get(c, req->cache_key, req->cache_key_len, &id))
		return false;
	/* A credential past its end is no answer, whatever the cache's ttl. */
	if (id != NULL && id->expires_at != 0 && (long long)time(NULL) >= id->expires_at) {
		identity_free(&id);
		return false;
	}
	req->cached = true;
	metrics_inc(req->kind == REQ_AUTH ? M_AUTH_CACHE_HITS : M_POLICY_CACHE_HITS);
	if (req->kind == REQ_AUTH)
		req->ident = id;
	else
		identity_free(&id);
	plugin_req_answer(req, MYXID_ALLOW);
	return true;
}

struct myxid_req *authz_auth_start(struct worker *w,
				   const struct req_client *client,
				   const char *token, unsigned flags,
				   authz_done_fn *done, void *arg)
{
	struct myxid_req *req = req_new(w, REQ_AUTH, client, done, arg);

	req->token = xstrdup(token);
	/* The cache holds a digest, never the token; with auth_cache 0 there
	 * is no key to make (a SHA-256 per Authenticate saved). */
	if (answer_cache_enabled(req->rc->auth_cache)) {
		req->cache_key_len = SHA256_DIGEST_LENGTH;
		req->cache_key = xmalloc(SHA256_DIGEST_LENGTH);
		SHA256((const unsigned char *)token, strlen(token), req->cache_key);
	}
	if (answer_from_cache(req, flags))
		return req;
	if (req->rc->n_auths == 0)
		plugin_req_answer(req, MYXID_NEXT);
	else
		ask(req, req->rc->auths[req->next_plugin++]);
	return req;
}

/* "exchange\0key\0user_id\0user_type": one answer per user and pair. */
static void policy_cache_key(struct myxid_req *req)
{
	const struct identity *id = req->client.identity;
	const char *parts[4] = {
		req->exchange, req->routing_key,
		id ? id->user_id : "", id && id->user_type ? id->user_type : ""
	};
	size_t len = 0, off = 0;

	for (int i = 0; i < 4; i++)
		len += strlen(parts[i]) + 1;
	/* An answer given for a grant is no answer without it: the grant's
	 * digest (never the grant) goes before the flag byte. */
	if (req->grant != NULL)
		len += SHA256_DIGEST_LENGTH;
	req->cache_key = xmalloc(len);
	for (int i = 0; i < 4; i++) {
		size_t n = strlen(parts[i]) + 1;
		memcpy(req->cache_key + off, parts[i], n);
		off += n;
	}
	if (req->grant != NULL)
		SHA256((const unsigned char *)req->grant, strlen(req->grant),
		       req->cache_key + off - 1);
	/* Anonymous and authenticated askers must never share an entry, nor
	 * a plain subscribe and one asking for presence. */
	req->cache_key[len - 1] = (unsigned char)((id ? 1 : 0) | (req->presence ? 2 : 0));
	req->cache_key_len = len;
}

struct myxid_req *authz_policy_start(struct worker *w,
				     struct myxid_instance *policy,
				     const struct req_client *client,
				     const char *exchange,
				     const char *routing_key, const char *grant,
				     unsigned flags, authz_done_fn *done, void *arg)
{
	struct myxid_req *req = req_new(w, REQ_POLICY, client, done, arg);

	req->exchange = xstrdup(exchange);
	req->routing_key = xstrdup(routing_key);
	req->grant = grant ? xstrdup(grant) : NULL;
	req->presence = (flags & AUTHZ_PRESENCE) != 0;
	if (answer_cache_enabled(req->rc->policy_cache))
		policy_cache_key(req);
	if (!answer_from_cache(req, flags))
		ask(req, policy);
	return req;
}

void authz_cancel(struct myxid_req *req)
{
	if (req == NULL)
		return;
	if (req->state == REQ_PENDING) {
		struct myxid_instance *inst = req->holder;
		if (inst->desc->cancel != NULL)
			inst->desc->cancel(inst->ctx, req);
		inst->pending--;
	}
	req_free(req);
}
