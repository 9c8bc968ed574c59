/*
 * Control commands on one loop's sessions; see session_control.h.
 */
#include "session_control.h"
#include "conn.h"
#include "identity.h"
#include "log.h"
#include "router.h"
#include "session.h"
#include "session_private.h"
#include "util.h"
#include "worker.h"

#include <string.h>
#include <openssl/sha.h>

struct walk {
	const struct control_target *t;
	int code;
	const char *reason;
	const char *exchange, *routing_key;   /* unsubscribe */
	size_t n;
};

static bool matches(const struct session *s, const struct control_target *t)
{
	if (t->socket_id != NULL && strcmp(s->id, t->socket_id) != 0)
		return false;
	if (t->user_ids != NULL) {
		size_t i = 0;

		if (s->ident == NULL || s->ident->user_id == NULL)
			return false;
		while (i < t->n_user_ids && strcmp(s->ident->user_id, t->user_ids[i]) != 0)
			i++;
		if (i == t->n_user_ids)
			return false;
	}
	if (t->token != NULL &&
	    (s->token == NULL || !secret_equal(s->token, strlen(s->token), t->token, strlen(t->token))))
		return false;
	if (t->token_sha256 != NULL) {
		unsigned char d[SHA256_DIGEST_LENGTH];

		if (s->token == NULL)
			return false;
		SHA256((const unsigned char *)s->token, strlen(s->token), d);
		if (!secret_equal(d, sizeof(d), t->token_sha256, SHA256_DIGEST_LENGTH))
			return false;
	}
	return true;
}

static void disconnect_one(struct session *s, void *arg)
{
	struct walk *wk = arg;

	if (!matches(s, wk->t))
		return;
	log_notice("[%s] %s: disconnected by a control command (%d %s)", s->id,
		   s->conn->peer, wk->code, wk->reason);
	conn_close(s->conn, wk->code, wk->reason);
	wk->n++;
}

size_t session_control_disconnect(const struct control_target *t, int code,
				  const char *reason)
{
	struct walk wk = { t, code, reason, NULL, NULL, 0 };

	session_each(disconnect_one, &wk);
	return wk.n;
}

static void unsubscribe_one(struct session *s, void *arg)
{
	struct walk *wk = arg;
	struct router_sub *sub;

	if (!matches(s, wk->t) || (sub = router_find(&s->subs, wk->exchange, wk->routing_key)) == NULL)
		return;
	/* A Subscribe still waiting for the broker's bind holds this
	 * subscription: it is left alone (and not counted), the policy cache
	 * was cleared, so the next re-check decides. */
	if (s->run != NULL && s->run->sub == sub) {
		log_info("[%s] %s: control unsubscribe from %s/%s skipped: its Subscribe "
			 "is still waiting for the broker", s->id, s->conn->peer,
			 wk->exchange, wk->routing_key);
		return;
	}
	log_info("[%s] %s: subscription %s/%s dropped by a control command", s->id,
		 s->conn->peer, wk->exchange, wk->routing_key);
	session_send_unsubscribed(s, NULL, wk->exchange, json_object_new_string(wk->routing_key),
				  true);
	session_drop_sub(s, sub);
	wk->n++;
}

size_t session_control_unsubscribe(const struct control_target *t, const char *exchange,
				   const char *routing_key)
{
	struct walk wk = { t, 0, NULL, exchange, routing_key, 0 };

	session_each(unsubscribe_one, &wk);
	return wk.n;
}
