/*
 * The periodic re-check (Myxi's "touch"): every recheck_interval, each
 * session asks its auth chain again about its token, bypassing the answer
 * cache, then asks each subscription's policy again.
 *
 *   token no longer valid  -> Error SessionExpired, every subscription
 *                             dropped (Unsubscribed, auto: true), anonymous
 *   subscription refused   -> Unsubscribed with auto: true
 *   plugin error (outage)  -> nothing changes: an outage never logs anyone
 *                             out
 *
 * It runs as an action in the session's queue, so it never interleaves
 * with the client's own actions. Unlike Myxi's touch, it walks a snapshot
 * of the subscriptions (so none is skipped) and a failing plugin cannot
 * take the process down. Timers are jittered per session so the checks of
 * many sessions do not reach the database at the same instant.
 */
#include "recheck.h"
#include "session_private.h"
#include "config.h"
#include "identity.h"
#include "conn.h"
#include "log.h"
#include "reply.h"
#include "runconf.h"
#include "worker.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <event2/event.h>

static void recheck_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	recheck_arm(s);
	session_queue_recheck(s);
}

static void expiry_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	session_queue_recheck(arg);
}

void recheck_arm_expiry(struct session *s)
{
	struct timeval now, tv;
	long long ms;

	if (s->ident == NULL || s->ident->expires_at == 0)
		return;
	if (s->expiry_timer == NULL)
		s->expiry_timer = evtimer_new(worker_base(s->w), expiry_timer_cb, s);
	/* Wall-clock time, as the credential's; 1 ms past its second so
	 * that the plugin, reading whole seconds, sees it over. */
	gettimeofday(&now, NULL);
	ms = s->ident->expires_at * 1000 - ((long long)now.tv_sec * 1000 + now.tv_usec / 1000) + 1;
	if (ms < 0)
		ms = 0;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000 * 1000);
	evtimer_add(s->expiry_timer, &tv);
}

void recheck_arm(struct session *s)
{
	unsigned ms = worker_config(s->w)->recheck_interval_ms;
	uint64_t jitter = ms / 10;
	struct timeval tv;

	if (ms == 0)
		return;
	if (s->recheck_timer == NULL)
		s->recheck_timer = evtimer_new(worker_base(s->w), recheck_timer_cb, s);
	ms = ms - (unsigned)jitter + (unsigned)(random_u64() % (2 * jitter + 1));
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(s->recheck_timer, &tv);
}

static void check_next_pair(struct session *s);

static void pair_answered(void *arg, enum myxid_verdict v, struct identity *unused)
{
	struct session *s = arg;
	struct run *r = s->run;
	const char *ex = r->pairs[r->next_pair - 1];
	const char *rk = ex + strlen(ex) + 1;
	struct router_sub *sub;

	r->req = NULL;
	sub = router_find(&s->subs, ex, rk);
	if (v == MYXID_DENY && sub != NULL) {
		log_info("[%s] %s: subscription %s/%s revoked", s->id, s->conn->peer,
			 ex, rk);
		session_send_unsubscribed(s, NULL, ex, json_object_new_string(rk), true);
		session_drop_sub(s, sub);
	}
	check_next_pair(s);
}

/* Ask the policy about the next subscription of the snapshot. */
static void check_next_pair(struct session *s)
{
	struct run *r = s->run;

	while (r->next_pair < r->n_pairs) {
		const char *ex = r->pairs[r->next_pair++];
		const char *rk = ex + strlen(ex) + 1;
		struct router_sub *sub = router_find(&s->subs, ex, rk);
		struct exchange_rt *x = runconf_exchange(worker_runconf(s->w), ex);

		if (sub == NULL)
			continue;            /* gone since the snapshot */
		if (x == NULL) {
			/* A reload removed the exchange. */
			session_send_unsubscribed(s, NULL, ex, json_object_new_string(rk), true);
			session_drop_sub(s, sub);
			continue;
		}
		/* A watcher is asked as it subscribed: a user who may no
		 * longer see presence loses the subscription it came with. */
		r->req = authz_policy_start(s->w, x->policy, &s->client, ex, rk, sub->grant,
					    AUTHZ_FRESH | (sub->watching ? AUTHZ_PRESENCE : 0),
					    pair_answered, s);
		return;
	}
	session_run_finish(s);
}

static void expire(struct session *s)
{
	json_object *p = json_object_new_object();

	log_info("[%s] %s: session of user %s expired", s->id, s->conn->peer,
		 s->ident->user_id);
	json_object_object_add(p, "error", json_object_new_string("SessionExpired"));
	reply_send(s->conn, "Error", true, NULL, p);
	session_unsubscribe_matching(s, NULL, NULL, true);
	session_forget_user(s);
}

static void token_answered(void *arg, enum myxid_verdict v, struct identity *id)
{
	struct session *s = arg;
	struct run *r = s->run;

	r->req = NULL;
	if (v == MYXID_ALLOW && strcmp(id->user_id, s->ident->user_id) == 0) {
		/* Still valid: take the fresh attributes. */
		identity_free(&s->ident);
		s->ident = id;
		s->client.identity = id;
		recheck_arm_expiry(s);
	} else if (v == MYXID_ALLOW || v == MYXID_DENY) {
		/* The token now names nobody, or somebody else. */
		identity_free(&id);
		expire(s);
		session_run_finish(s);
		return;
	}
	check_next_pair(s);
}

void recheck_start(struct session *s)
{
	struct run *r = xcalloc(1, sizeof(*r));
	size_t i = 0;

	s->run = r;
	r->pairs = xcalloc(s->subs.n ? s->subs.n : 1, sizeof(*r->pairs));
	for (struct router_sub *sub = s->subs.head; sub; sub = sub->next, i++) {
		size_t el = strlen(sub->exchange), kl = strlen(sub->routing_key);
		r->pairs[i] = xmalloc(el + kl + 2);
		memcpy(r->pairs[i], sub->exchange, el + 1);
		memcpy(r->pairs[i] + el + 1, sub->routing_key, kl + 1);
	}
	r->n_pairs = i;
	if (s->ident != NULL && s->token != NULL)
		r->req = authz_auth_start(s->w, &s->client, s->token, AUTHZ_FRESH,
					  token_answered, s);
	else
		check_next_pair(s);
}
