/*
 * A request as plugins see it; see plugin_req.h. authz.c drives requests,
 * this file holds only what a plugin can do to one.
 */
#include "plugin_req.h"
#include "identity.h"
#include "log.h"
#include "metrics.h"
#include "plugin_instance.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <event2/event.h>

/* Schedule the event callback to act on req->answer. Keep: an answer is
 * acted on only from the loop, never inside the plugin call that gave it. */
void plugin_req_answer(struct myxid_req *req, enum myxid_verdict v)
{
	if (req->holder != NULL && !req->cached)
		metrics_plugin_answer(req->holder->label, (int)v,
				      monotonic_us() - req->asked_us);
	req->answer = v;
	req->state = REQ_ANSWERED;
	evtimer_del(req->ev);
	event_active(req->ev, EV_TIMEOUT, 1);
}

static const char *verdict_name(enum myxid_verdict v)
{
	switch (v) {
	case MYXID_ALLOW: return "allow";
	case MYXID_DENY: return "deny";
	case MYXID_NEXT: return "next";
	case MYXID_ERROR: return "error";
	case MYXID_PENDING: return "pending";
	}
	return "invalid";
}

/* ------------------------------------------------------ host services */

/* A header kept at the upgrade ("name\0value\0...", "" ends), by name. */
static const char *kept_header(const char *kept, const char *name)
{
	while (kept != NULL && *kept != '\0') {
		const char *value = kept + strlen(kept) + 1;

		if (strcasecmp(kept, name) == 0)
			return value;
		kept = value + strlen(value) + 1;
	}
	return NULL;
}

const char *plugin_req_get(const struct myxid_req *req, const char *key)
{
	const struct identity *id = req->client.identity;

	if (strcmp(key, "token") == 0)
		return req->token;
	if (strcmp(key, "socket_id") == 0)
		return req->client.socket_id;
	if (strcmp(key, "peer") == 0)
		return req->client.peer;
	if (strcmp(key, "origin") == 0)
		return req->client.origin;
	if (strcmp(key, "client_ip") == 0)
		return req->client.client_ip;
	if (strncasecmp(key, "header:", 7) == 0)
		return kept_header(req->client.headers, key + 7);
	if (strcmp(key, "exchange") == 0)
		return req->exchange;
	if (strcmp(key, "routing_key") == 0)
		return req->routing_key;
	if (strcmp(key, "presence") == 0)
		return req->presence ? "1" : NULL;
	if (strcmp(key, "subscribe_token") == 0)
		return req->grant;
	if (req->kind != REQ_POLICY || id == NULL)
		return NULL;
	if (strcmp(key, "user_id") == 0)
		return id->user_id;
	if (strcmp(key, "user_type") == 0)
		return id->user_type;
	if (strncmp(key, "attr:", 5) == 0)
		return identity_attr(id, key + 5);
	return NULL;
}

static bool req_accepts_identity(const struct myxid_req *req)
{
	return req->kind == REQ_AUTH &&
		(req->state == REQ_CALLING || req->state == REQ_PENDING);
}

int plugin_req_set_user(struct myxid_req *req, const char *user_id,
		       const char *user_type)
{
	if (!req_accepts_identity(req) || user_id == NULL || *user_id == '\0')
		return -1;
	if (req->ident == NULL)
		req->ident = xcalloc(1, sizeof(*req->ident));
	free(req->ident->user_id);
	free(req->ident->user_type);
	req->ident->user_id = xstrdup(user_id);
	req->ident->user_type = user_type ? xstrdup(user_type) : NULL;
	return 0;
}

int plugin_req_set_expiry(struct myxid_req *req, long long unix_seconds)
{
	if (!req_accepts_identity(req) || req->ident == NULL || unix_seconds <= 0)
		return -1;
	req->ident->expires_at = unix_seconds;
	return 0;
}

int plugin_req_add_attr(struct myxid_req *req, const char *key,
		       const char *value)
{
	struct identity *id;

	if (!req_accepts_identity(req) || key == NULL || value == NULL)
		return -1;
	if (req->ident == NULL)
		req->ident = xcalloc(1, sizeof(*req->ident));
	id = req->ident;
	id->attrs = xrealloc(id->attrs, (id->n_attrs + 1) * sizeof(*id->attrs));
	id->attrs[id->n_attrs].key = xstrdup(key);
	id->attrs[id->n_attrs].value = xstrdup(value);
	id->n_attrs++;
	return 0;
}

void plugin_req_done(struct myxid_req *req, enum myxid_verdict verdict,
		    const char *reason)
{
	struct myxid_instance *inst = req->holder;

	if (req->state == REQ_ANSWERED) {
		log_error("%s: answered a request twice; ignored", inst->label);
		return;
	}
	if (verdict >= MYXID_PENDING) {
		log_error("%s: req_done with verdict %d; treated as error",
			  inst->label, (int)verdict);
		verdict = MYXID_ERROR;
	}
	if (req->state == REQ_PENDING)
		inst->pending--;
	if (reason != NULL)
		log_msg(verdict == MYXID_ERROR ? MYXID_LOG_WARNING : MYXID_LOG_DEBUG,
			"%s: %s: %s", inst->label, verdict_name(verdict), reason);
	plugin_req_answer(req, verdict);
}
