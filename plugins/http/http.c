/*
 * http: authentication and exchange policies answered by the application
 * over HTTP(S), as Centrifugo's proxy and nchan's nchan_authorize_request
 * do. One shared object serves both kinds:
 *
 *     auth http {
 *         url http://127.0.0.1:3000/myxid/authenticate
 *         bearer_token ${MYXID_APP_SECRET}
 *     }
 *     exchange deployment {
 *         policy http {
 *             url http://127.0.0.1:3000/myxid/subscribe
 *             bearer_token ${MYXID_APP_SECRET}
 *             send_attribute account_id
 *         }
 *     }
 *
 * Options: http_options.h. The documents and answers: http_json.h and
 * doc/myxid-http.7 (the stable interface). The client (libcurl's multi
 * interface on the loop): http_client.h. What an answer means:
 * http_answer.h.
 *
 * ANSWERS
 *   auth:   200 + identity -> ALLOW; 401 or 403 -> DENY; 204 -> NEXT (no
 *           opinion: the next auth plugin decides); anything else, a bad
 *           identity, no answer in time, the application down -> ERROR,
 *           which the client sees as AuthUnavailable.
 *   policy: 200 -> ALLOW; 401 or 403 -> DENY; anything else -> ERROR
 *           (PolicyUnavailable).
 *   A 3xx is never followed (an error like any unexpected status). The
 *   reason of every ERROR goes to the daemon's log through req_done.
 *
 * SECRETS
 *   The token and bearer_token are never logged; the buffers that held
 *   them are scrubbed. Reasons quote no byte of the application's answer
 *   (it might echo the token).
 *
 * One instance per event loop: pool_size and queue_max are per loop.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <myxid/plugin.h>
#include "http_answer.h"
#include "http_client.h"
#include "http_json.h"
#include "http_options.h"
#include "plugin_util.h"

struct hp;

/* A request answered MYXID_PENDING and still owed an answer. */
struct hp_req {
	struct hp *hp;
	struct myxid_req *req;
	struct hc_call *call;
	bool is_auth;
	struct hp_req *prev, *next;
};

struct hp {
	const struct myxid_host *host;
	struct myxid_instance *inst;
	struct http_options o;
	struct hc_client *client;
	struct hp_req *pending;
};

static void pending_unlink(struct hp *hp, struct hp_req *r)
{
	PU_DLLIST_REMOVE(&hp->pending, r);
}

static void answered(void *arg, const struct hc_result *res)
{
	struct hp_req *r = arg;
	struct hp *hp = r->hp;
	struct myxid_req *req = r->req;
	bool is_auth = r->is_auth;
	char buf[512];
	const char *reason;
	enum myxid_verdict v;

	pending_unlink(hp, r);
	free(r);
	v = ha_verdict(hp->host, req, is_auth, res, buf, sizeof(buf), &reason);
	hp->host->req_done(req, v, reason);
}

/* Answer now, through req_done() like every other answer. */
static enum myxid_verdict answer_now(struct hp *hp, struct myxid_req *req,
				     enum myxid_verdict v, const char *reason)
{
	hp->host->req_done(req, v, reason);
	return MYXID_PENDING;
}

static enum myxid_verdict submit(struct hp *hp, struct myxid_req *req,
				 bool is_auth)
{
	struct jbuf b = { 0 };
	struct hp_req *r;
	const char *why = NULL;

	if (is_auth)
		hj_auth_request(&b, hp->host, req, hp->o.client_headers,
				hp->o.n_client_headers);
	else
		hj_policy_request(&b, hp->host, req, hp->o.attrs, hp->o.n_attrs,
				  hp->o.client_headers, hp->o.n_client_headers);
	r = calloc(1, sizeof(*r));
	if (b.oom || r == NULL) {
		jb_free(&b);
		free(r);
		return answer_now(hp, req, MYXID_ERROR, "out of memory");
	}
	r->hp = hp;
	r->req = req;
	r->is_auth = is_auth;
	r->call = hc_post(hp->client, b.p, b.len, answered, r, &why);
	jb_free(&b);
	if (r->call == NULL) {
		free(r);
		return answer_now(hp, req, MYXID_ERROR, why);
	}
	PU_DLLIST_PREPEND(&hp->pending, r);
	return MYXID_PENDING;
}

static enum myxid_verdict hp_auth(void *ctx, struct myxid_req *req)
{
	struct hp *hp = ctx;
	const char *token = hp->host->req_get(req, "token");

	/* Not ours to refuse: another plugin in the chain may know it. */
	if (token == NULL || token[0] == '\0')
		return MYXID_NEXT;
	return submit(hp, req, true);
}

static enum myxid_verdict hp_policy(void *ctx, struct myxid_req *req)
{
	return submit(ctx, req, false);
}

static void hp_cancel(void *ctx, struct myxid_req *req)
{
	struct hp *hp = ctx;

	for (struct hp_req *r = hp->pending; r != NULL; r = r->next) {
		if (r->req == req) {
			pending_unlink(hp, r);
			hc_abandon(hp->client, r->call);
			free(r);
			return;
		}
	}
}

static void hp_free(struct hp *hp)
{
	if (hp == NULL)
		return;
	hc_free(hp->client);     /* drops the calls: no callback runs */
	while (hp->pending != NULL) {
		struct hp_req *r = hp->pending;

		pending_unlink(hp, r);
		free(r);
	}
	http_options_free(&hp->o);
	free(hp);
}

static void hp_deinit(void *ctx)
{
	hp_free(ctx);
}

static int hp_init(const struct myxid_host *host, struct myxid_instance *inst,
		   const struct myxid_opt *opts, size_t n_opts, void **ctx_r,
		   char *err, size_t err_size, const struct myxid_opt **bad_opt_r)
{
	unsigned kind = MYXID_KIND_AUTH | MYXID_KIND_POLICY;
	struct hp *hp;

	if (pu_check_host(host, err, err_size) < 0)
		return -1;
	if (host->abi_minor >= 1)
		kind = host->instance_kind(inst);
	hp = calloc(1, sizeof(*hp));
	if (hp == NULL) {
		pu_err(err, err_size, "out of memory");
		return -1;
	}
	hp->host = host;
	hp->inst = inst;
	if (http_options_parse(&hp->o, host, inst, opts, n_opts, err, err_size,
			       bad_opt_r) < 0)
		goto fail;
	if (kind == MYXID_KIND_AUTH && hp->o.n_attrs > 0) {
		for (size_t i = 0; i < n_opts; i++)
			if (strcmp(opts[i].key, "send_attribute") == 0)
				*bad_opt_r = &opts[i];
		pu_err(err, err_size, "send_attribute belongs in a policy block");
		goto fail;
	}
	hp->client = hc_new(host, inst, &hp->o.client, err, err_size);
	if (hp->client == NULL)
		goto fail;
	host->log(inst, MYXID_LOG_INFO, "POST %s://%s%.*s, %u connection(s), "
		  "timeout %u ms%s", hp->o.https ? "https" : "http",
		  hp->o.client.upstream, (int)strcspn(hp->o.path, "?"), hp->o.path,
		  hp->o.client.pool_size, hp->o.client.timeout_ms,
		  hp->o.https ? (hp->o.tls_verify ? ", certificate verified" :
				 ", certificate NOT verified") : "");
	*ctx_r = hp;
	return 0;
fail:
	hp_free(hp);
	return -1;
}

MYXID_PLUGIN_EXPORT const struct myxid_plugin myxid_plugin_entry = {
	.abi_major = MYXID_PLUGIN_ABI_MAJOR,
	.abi_minor = MYXID_PLUGIN_ABI_MINOR,
	.size = sizeof(struct myxid_plugin),
	.kinds = MYXID_KIND_AUTH | MYXID_KIND_POLICY,
	.name = "http",
	.version = "1.0",
	.init = hp_init,
	.deinit = hp_deinit,
	.auth = hp_auth,
	.policy = hp_policy,
	.cancel = hp_cancel,
};
