/*
 * The Myxi protocol on one WebSocket; see session.h, and "The protocol in
 * brief" in README.md for the actions and events (the behaviour is Myxi's,
 * copied). Where Myxi had a bug we do not copy it, and the comment says so.
 *
 * Every reply produced while handling an action carries that action's tag
 * (Myxi 1.4 always sent "tag":null, a regression from its EM era).
 */
#include "session.h"
#include "session_private.h"
#include "recheck.h"
#include "authz.h"
#include "config.h"
#include "conn.h"
#include "json_input.h"
#include "log.h"
#include "metrics.h"
#include "event_frame.h"
#include "reply.h"
#include "router.h"
#include "runconf.h"
#include "worker.h"
#include "shared_frame.h"
#include "util.h"

#include <stdbool.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <json-c/json.h>
#include <event2/event.h>
#include <openssl/crypto.h>

/* Deepest JSON a client may send; json-c recurses while parsing. */
#define ACTION_MAX_DEPTH 32
/* Actions queued behind one that waits for a plugin. */
#define ACTION_QUEUE_MAX 64
/* Keys in one Subscribe routing_keys list. */
#define ROUTING_KEYS_MAX 256
/* AMQP routing keys are short strings. */
#define ROUTING_KEY_MAX_LEN 255
/* Longest token handed to auth plugins. */
#define TOKEN_MAX_LEN 8192

/* Returns true if the action finished, false if it waits for a plugin. */
typedef bool action_fn(struct session *s, json_object *msg, json_object *tag,
		       json_object *payload);


/* ------------------------------------------------------------- lifecycle */

static void auth_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	if (s->ident == NULL)
		conn_close(s->conn, WS_CLOSE_POLICY, "not authenticated in time");
}

/* What conn.c calls on an upgraded connection; see struct conn_handler. */
static void conn_message(struct conn *c, const uint8_t *data, size_t len)
{
	session_on_message(c->session, data, len);
}

static void conn_closed(struct conn *c)
{
	session_free(&c->session);
}

static const char *conn_log_name(const struct conn *c)
{
	return session_id(c->session);
}

static const struct conn_handler session_conn_handler = {
	.message = conn_message,
	.closed = conn_closed,
	.log_name = conn_log_name,
};

/* The sessions of this thread's loop (every loop runs on a thread of its
 * own, and a session is only touched there): what control commands walk. */
static _Thread_local struct session *loop_sessions;

void session_each(void (*fn)(struct session *s, void *arg), void *arg)
{
	struct session *s = loop_sessions, *next;

	for (; s != NULL; s = next) {
		next = s->loop_next;
		fn(s, arg);
	}
}

struct session *session_new(struct conn *c)
{
	struct session *s = xcalloc(1, sizeof(*s));
	json_object *p = json_object_new_object();

	c->handler = &session_conn_handler;
	s->conn = c;
	s->w = c->w;
	random_hex(s->id, 8);
	s->client.socket_id = s->id;
	s->client.peer = c->peer;
	s->client.origin = c->origin;
	s->client.client_ip = c->client_ip;
	s->client.headers = c->plugin_headers;
	s->loop_next = loop_sessions;
	if (loop_sessions != NULL)
		loop_sessions->loop_prev = s;
	loop_sessions = s;
	json_object_object_add(p, "id", json_object_new_string(s->id));
	reply_send(c, "Welcome", false, NULL, p);
	recheck_arm(s);
	s->tokens = 2.0 * (double)worker_config(s->w)->max_actions_per_second;
	s->tokens_ms = monotonic_ms();
	if (worker_config(s->w)->auth_deadline_ms > 0) {
		unsigned ms = worker_config(s->w)->auth_deadline_ms;
		struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
		s->auth_deadline = evtimer_new(worker_base(s->w), auth_deadline_cb, s);
		evtimer_add(s->auth_deadline, &tv);
	}
	return s;
}

static void free_secret(char **p)
{
	if (*p != NULL) {
		OPENSSL_cleanse(*p, strlen(*p));
		free(*p);
		*p = NULL;
	}
}

void session_run_free(struct run *r)
{
	if (r == NULL)
		return;
	authz_cancel(r->req);
	json_object_put(r->msg);
	free(r->rk);
	free_secret(&r->token);
	for (size_t i = 0; i < r->n_pairs; i++)
		free(r->pairs[i]);
	free(r->pairs);
	free(r);
}

void session_forget_user(struct session *s)
{
	if (s->ident != NULL)
		metrics_add(M_SOCKETS_AUTHENTICATED, -1);
	identity_free(&s->ident);
	s->client.identity = NULL;
	free_secret(&s->token);
}

void session_free(struct session **sp)
{
	struct session *s = *sp;

	if (s == NULL)
		return;
	if (s->run != NULL)
		bind_wait_cancel(worker_bind_wait(s->w), &s->run->bind);
	session_run_free(s->run);
	while (s->q_head != NULL) {
		struct queued *q = s->q_head;
		s->q_head = q->next;
		json_object_put(q->msg);
		free(q);
	}
	while (s->subs.head != NULL)
		session_drop_sub(s, s->subs.head);
	session_forget_user(s);
	if (s->recheck_timer)
		event_free(s->recheck_timer);
	if (s->expiry_timer)
		event_free(s->expiry_timer);
	if (s->auth_deadline)
		event_free(s->auth_deadline);
	worker_session_closed(s->w);
	if (s->loop_prev != NULL)
		s->loop_prev->loop_next = s->loop_next;
	else
		loop_sessions = s->loop_next;
	if (s->loop_next != NULL)
		s->loop_next->loop_prev = s->loop_prev;
	free(s);
	*sp = NULL;
}

const char *session_id(const struct session *s)
{
	return s->id;
}

void session_deliver(void *owner, struct shared_frame *f)
{
	struct session *s = owner;

	conn_send_shared(s->conn, f);
}

/* ------------------------------------------------------------- replies */

void session_send_unsubscribed(struct session *s, json_object *tag,
			      const char *exchange, json_object *rk, bool autom)
{
	json_object *p = json_object_new_object();

	/* "exchange_name", not "exchange": Myxi's JS client reads this key. */
	json_object_object_add(p, "exchange_name", json_object_new_string(exchange));
	json_object_object_add(p, "routing_key", rk);
	json_object_object_add(p, "auto", json_object_new_boolean(autom));
	reply_send(s->conn, "Unsubscribed", true, tag, p);
}

/* Remove every subscription (of one exchange, or all when exchange is
 * NULL), one Unsubscribed each with the stored string key. */
void session_unsubscribe_matching(struct session *s, json_object *tag,
				 const char *exchange, bool autom)
{
	struct router_sub *sub = s->subs.head, *next;

	for (; sub != NULL; sub = next) {
		next = sub->next;
		if (exchange != NULL && strcmp(sub->exchange, exchange) != 0)
			continue;
		session_send_unsubscribed(s, tag, sub->exchange,
				  json_object_new_string(sub->routing_key), autom);
		session_drop_sub(s, sub);
	}
}

/* ------------------------------------------------------------- Subscribe */

static bool subscribe_continue(struct session *s);

/* The broker bound the key (or gave up): now Subscribed is true. */
static void subscribe_bound(struct bind_waiter *wt)
{
	struct run *r = (struct run *)((char *)wt - offsetof(struct run, bind));
	struct session *s = r->owner;

	session_presence_start(s, r->sub, r->topic && strpbrk(r->sub->routing_key, "*#"),
			       r->watch);
	session_history_reply(s->conn, s->w, &r->ask, r->tag, r->exchange, r->key_list ?
			      json_object_array_get_idx(r->keys, r->next_key - 1) : r->keys,
			      r->sub);
	r->sub = NULL;
	if (subscribe_continue(s))
		session_run_finish(s);
}

static void subscribe_answered(void *arg, enum myxid_verdict v,
			       struct identity *unused)
{
	struct session *s = arg;
	struct run *r = s->run;
	json_object *key = r->key_list ?
		json_object_array_get_idx(r->keys, r->next_key - 1) : r->keys;
	const char *exchange = json_object_get_string(r->exchange);
	struct router_sub *sub;
	char *rk = r->rk;
	bool pattern = r->topic && strpbrk(rk, "*#") != NULL;

	r->req = NULL;
	r->rk = NULL;
	/* The route hook sets it if router_add() starts a broker bind. */
	(void)worker_take_bind_ticket(s->w);
	if (v == MYXID_ERROR) {
		reply_error(s->conn, r->tag, "PolicyUnavailable",
			    REPLY_EXCHANGE | REPLY_ROUTING_KEY, r->exchange, key);
	} else if (v != MYXID_ALLOW) {
		/* An anonymous client may be allowed once it authenticates;
		 * Myxi's JS client keeps such a subscription and retries it. */
		reply_error(s->conn, r->tag,
			    s->ident ? "SubscriptionDenied" : "AuthRequired",
			    REPLY_EXCHANGE | REPLY_ROUTING_KEY, r->exchange, key);
	} else if ((sub = router_add(worker_router(s->w), s, &s->subs, exchange, rk,
				     pattern)) == NULL) {
		reply_error(s->conn, r->tag, "AlreadySubscribed",
			    REPLY_EXCHANGE | REPLY_ROUTING_KEY, r->exchange, key);
	} else {
		uint64_t ticket = worker_take_bind_ticket(s->w);

		log_debug("[%s] subscribed to %s/%s", s->id, exchange, rk);
		if (r->grant != NULL)
			sub->grant = xstrdup(r->grant);
		session_history_hold(s->w, sub);
		if (ticket != 0) {
			free(rk);
			r->owner = s;
			r->sub = sub;
			bind_wait_park(worker_bind_wait(s->w), worker_broker(s->w), &r->bind,
				       ticket, subscribe_bound);
			return;
		}
		/* With Subscribed: a Presence event never comes before it. */
		session_presence_start(s, sub, pattern, r->watch);
		session_history_reply(s->conn, s->w, &r->ask, r->tag, r->exchange, key, sub);
	}
	free(rk);
	if (subscribe_continue(s))
		session_run_finish(s);
}

/* Handle keys until one needs a plugin's answer; true when all are done. */
static bool subscribe_continue(struct session *s)
{
	struct run *r = s->run;
	struct exchange_rt *ex;

	while (r->next_key < r->n_keys) {
		json_object *key = r->key_list ?
			json_object_array_get_idx(r->keys, r->next_key) : r->keys;
		r->next_key++;
		/* Looked up per key: a reload may come between two keys. */
		ex = json_input_string(r->exchange) != NULL ?
			runconf_exchange(worker_runconf(s->w), json_input_string(r->exchange)) :
			NULL;
		if (ex == NULL) {
			reply_error(s->conn, r->tag, "InvalidExchange",
				    r->has_exchange ? REPLY_EXCHANGE : 0,
				    r->exchange, NULL);
			continue;
		}
		r->rk = event_frame_routing_key(key);
		if (r->rk == NULL || strlen(r->rk) > ROUTING_KEY_MAX_LEN) {
			reply_error(s->conn, r->tag, "InvalidRoutingKey",
				    REPLY_EXCHANGE | REPLY_ROUTING_KEY, r->exchange, key);
			free(r->rk);
			r->rk = NULL;
			continue;
		}
		if (s->subs.n >= worker_config(s->w)->max_subscriptions) {
			reply_error(s->conn, r->tag, "TooManySubscriptions",
				    REPLY_EXCHANGE | REPLY_ROUTING_KEY, r->exchange, key);
			free(r->rk);
			r->rk = NULL;
			continue;
		}
		r->topic = ex->conf->type == EXCHANGE_TOPIC;
		r->watch = r->presence && ex->conf->presence;
		r->req = authz_policy_start(s->w, ex->policy, &s->client,
					    json_object_get_string(r->exchange), r->rk, r->grant,
					    r->watch ? AUTHZ_PRESENCE : 0,
					    subscribe_answered, s);
		return false;
	}
	return true;
}

static bool action_subscribe(struct session *s, json_object *msg,
			     json_object *tag, json_object *payload)
{
	struct run *r = xcalloc(1, sizeof(*r));
	json_object *ex = NULL, *keys = NULL;
	const char *code, *why;

	r->has_exchange = json_object_object_get_ex(payload, "exchange", &ex);
	/* Only a JSON true asks for presence: Myxi's clients never send it. */
	r->presence = json_object_object_get_ex(payload, "presence", &keys) &&
		json_object_is_type(keys, json_type_boolean) && json_object_get_boolean(keys);
	keys = NULL;
	/* A subscription token (a policy such as jwt's grants with it). */
	if (json_object_object_get_ex(payload, "token", &keys) &&
	    json_object_is_type(keys, json_type_string))
		r->grant = json_object_get_string(keys);
	keys = NULL;
	r->msg = json_object_get(msg);
	r->tag = tag;
	r->exchange = ex;
	if (json_object_object_get_ex(payload, "routing_keys", &keys) &&
	    json_object_is_type(keys, json_type_array)) {
		r->key_list = true;
		r->n_keys = json_object_array_length(keys);
		if (r->n_keys > ROUTING_KEYS_MAX) {
			reply_error(s->conn, tag, "TooManyRoutingKeys",
				    REPLY_EXCHANGE, ex, NULL);
			session_run_free(r);
			return true;
		}
	} else {
		json_object_object_get_ex(payload, "routing_key", &keys);
		r->n_keys = 1;
	}
	r->keys = keys;
	code = history_ask_parse(&r->ask, payload,
				 worker_config(s->w)->history_max_replay, &why);
	if (code != NULL) {
		log_info("[%s] Subscribe refused: %s", s->id, why);
		reply_error(s->conn, tag, code, REPLY_EXCHANGE, ex, NULL);
		session_run_free(r);
		return true;
	}
	s->run = r;
	if (subscribe_continue(s)) {
		s->run = NULL;
		session_run_free(r);
		return true;
	}
	return false;
}

/* ----------------------------------------------------------- Unsubscribe */

static void unsubscribe_one(struct session *s, json_object *tag,
			    const char *exchange, json_object *key)
{
	char *rk = event_frame_routing_key(key);
	struct router_sub *sub;

	if (rk == NULL) {
		json_object *ex = json_object_new_string(exchange);
		reply_error(s->conn, tag, "InvalidRoutingKey",
			    REPLY_EXCHANGE | REPLY_ROUTING_KEY, ex, key);
		json_object_put(ex);
		return;
	}
	sub = router_find(&s->subs, exchange, rk);
	if (sub != NULL)
		session_drop_sub(s, sub);
	free(rk);
	/* Like Myxi, confirm even if there was nothing to remove. */
	session_send_unsubscribed(s, tag, exchange, json_object_get(key), false);
}

static bool action_unsubscribe(struct session *s, json_object *msg,
			       json_object *tag, json_object *payload)
{
	json_object *ex = NULL, *key = NULL, *keys = NULL;
	const char *exchange;

	json_object_object_get_ex(payload, "exchange", &ex);
	if (ex == NULL || json_object_is_type(ex, json_type_null)) {
		session_unsubscribe_matching(s, tag, NULL, false);
		return true;
	}
	if (json_input_string(ex) == NULL) {
		reply_error(s->conn, tag, "InvalidExchange",
			    REPLY_EXCHANGE, ex, NULL);
		return true;
	}
	exchange = json_object_get_string(ex);
	/* Myxi honoured routing_keys only when routing_key was also present,
	 * and otherwise dropped the whole exchange: fixed here. */
	if (json_object_object_get_ex(payload, "routing_keys", &keys) &&
	    json_object_is_type(keys, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(keys); i++)
			unsubscribe_one(s, tag, exchange,
					json_object_array_get_idx(keys, i));
	} else if (json_object_object_get_ex(payload, "routing_key", &key) &&
		   !json_object_is_type(key, json_type_null)) {
		unsubscribe_one(s, tag, exchange, key);
	} else {
		session_unsubscribe_matching(s, tag, exchange, false);
	}
	return true;
}

/* ------------------------------------------------------ the simple ones */

static bool action_list(struct session *s, json_object *msg, json_object *tag,
			json_object *payload)
{
	json_object *map = json_object_new_object(), *p = json_object_new_object();

	for (struct router_sub *sub = s->subs.head; sub != NULL; sub = sub->next) {
		json_object *keys;
		if (!json_object_object_get_ex(map, sub->exchange, &keys)) {
			keys = json_object_new_array();
			json_object_object_add(map, sub->exchange, keys);
		}
		json_object_array_add(keys, json_object_new_string(sub->routing_key));
	}
	json_object_object_add(p, "subscriptions", map);
	reply_send(s->conn, "YourSubscriptions", true, tag, p);
	return true;
}

static bool action_ping(struct session *s, json_object *msg, json_object *tag,
			json_object *payload)
{
	json_object *p = json_object_new_object();

	json_object_object_add(p, "time", json_object_new_int64((int64_t)time(NULL)));
	reply_send(s->conn, "Pong", true, tag, p);
	return true;
}

/* ---------------------------------------------------------- Authenticate */

static void auth_answered(void *arg, enum myxid_verdict v, struct identity *id)
{
	struct session *s = arg;
	struct run *r = s->run;
	json_object *p;

	r->req = NULL;
	if (v == MYXID_ALLOW) {
		s->ident = id;
		s->client.identity = id;
		metrics_inc(M_SOCKETS_AUTHENTICATED);
		s->token = r->token;         /* for the periodic re-check */
		r->token = NULL;
		log_info("[%s] %s: authenticated as user %s%s%s", s->id,
			 s->conn->peer, id->user_id, id->user_type ? " of type " : "",
			 id->user_type ? id->user_type : "");
		p = json_object_new_object();
		json_object_object_add(p, "user_id", json_object_new_string(id->user_id));
		if (id->user_type != NULL)
			json_object_object_add(p, "user_type",
					       json_object_new_string(id->user_type));
		reply_send(s->conn, "Authenticated", true, r->tag, p);
		recheck_arm_expiry(s);
	} else {
		log_info("[%s] %s: authentication %s", s->id, s->conn->peer,
			 v == MYXID_ERROR ? "could not be checked" : "refused");
		reply_error(s->conn, r->tag, v == MYXID_ERROR ? "AuthUnavailable" :
			    "InvalidAuthentication", 0, NULL, NULL);
	}
	session_run_finish(s);
}

static const char *find_token(json_object *payload)
{
	/* Myxi's README used both spellings, and integrators use "token". */
	static const char *const keys[] = {
		"session_id", "session_token", "token", "sessionID"
	};
	json_object *v;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (json_object_object_get_ex(payload, keys[i], &v) &&
		    json_object_is_type(v, json_type_string)) {
			const char *t = json_object_get_string(v);
			/* "\u0000" inside would cut the token short for every
			 * plugin: "secret\u0000junk" must not pass as "secret". */
			if (strlen(t) != (size_t)json_object_get_string_len(v))
				return NULL;
			return t;
		}
	return NULL;
}

static bool action_authenticate(struct session *s, json_object *msg,
				json_object *tag, json_object *payload)
{
	const char *token = find_token(payload);
	struct run *r;

	if (s->ident != NULL) {
		reply_error(s->conn, tag, "AlreadyAuthenticated", 0, NULL, NULL);
		return true;
	}
	if (token == NULL || *token == '\0' || strlen(token) > TOKEN_MAX_LEN) {
		reply_error(s->conn, tag, "InvalidAuthentication", 0, NULL, NULL);
		return true;
	}
	r = xcalloc(1, sizeof(*r));
	r->msg = json_object_get(msg);
	r->tag = tag;
	r->token = xstrdup(token);
	s->run = r;
	r->req = authz_auth_start(s->w, &s->client, token, 0, auth_answered, s);
	return false;
}

static bool action_deauthenticate(struct session *s, json_object *msg,
				  json_object *tag, json_object *payload)
{
	if (s->ident != NULL) {
		/* What was allowed for the user is not allowed for nobody. */
		session_unsubscribe_matching(s, tag, NULL, true);
		log_info("[%s] %s: deauthenticated user %s", s->id, s->conn->peer,
			 s->ident->user_id);
		session_forget_user(s);
	}
	reply_send(s->conn, "Deauthenticated", true, tag, NULL);
	return true;
}

/* ------------------------------------------------------------- dispatch */

static const struct {
	const char *name;
	action_fn *fn;
} actions[] = {
	{ "Subscribe", action_subscribe },
	{ "Unsubscribe", action_unsubscribe },
	{ "ListSubscriptions", action_list },
	{ "Ping", action_ping },
	{ "Authenticate", action_authenticate },
	{ "Deauthenticate", action_deauthenticate },
};

/* Run one action; true if it finished. Consumes msg. */
static bool dispatch(struct session *s, json_object *msg)
{
	json_object *name = NULL, *tag = NULL, *payload = NULL, *empty = NULL;
	bool finished = true;
	size_t i;

	json_object_object_get_ex(msg, "action", &name);
	json_object_object_get_ex(msg, "tag", &tag);
	json_object_object_get_ex(msg, "payload", &payload);
	for (i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
		if (json_input_string(name) != NULL &&
		    strcmp(json_input_string(name), actions[i].name) == 0)
			break;
	if (i == sizeof(actions) / sizeof(actions[0])) {
		reply_error(s->conn, tag, "InvalidAction", 0, NULL, NULL);
	} else if (payload == NULL || json_object_is_type(payload, json_type_null) ||
		   (json_object_is_type(payload, json_type_boolean) &&
		    !json_object_get_boolean(payload))) {
		/* Myxi: json['payload'] || {} */
		empty = json_object_new_object();
		json_object_object_add(msg, "payload", empty);
		log_debug("[%s] action %s", s->id, actions[i].name);
		finished = actions[i].fn(s, msg, tag, empty);
	} else if (!json_object_is_type(payload, json_type_object)) {
		reply_error(s->conn, tag, "InvalidPayload", 0, NULL, NULL);
	} else {
		log_debug("[%s] action %s", s->id, actions[i].name);
		finished = actions[i].fn(s, msg, tag, payload);
	}
	json_object_put(msg);
	return finished;
}

/* Run queued actions until one has to wait. */
static void run_next(struct session *s)
{
	while (s->run == NULL && s->q_head != NULL) {
		struct queued *q = s->q_head;
		s->q_head = q->next;
		if (s->q_head == NULL)
			s->q_tail = NULL;
		if (q->msg == NULL) {
			s->recheck_queued = false;
			recheck_start(s);
		} else {
			s->q_len--;
			dispatch(s, q->msg);
		}
		free(q);
	}
}

void session_run_finish(struct session *s)
{
	session_run_free(s->run);
	s->run = NULL;
	run_next(s);
}

static void enqueue(struct session *s, json_object *msg)
{
	struct queued *q = xcalloc(1, sizeof(*q));

	q->msg = msg;
	if (s->q_tail)
		s->q_tail->next = q;
	else
		s->q_head = q;
	s->q_tail = q;
}

/* The re-check waits its turn like an action, so it never races one. */
void session_queue_recheck(struct session *s)
{
	if (s->recheck_queued)
		return;
	s->recheck_queued = true;
	enqueue(s, NULL);
	run_next(s);
}

static json_object *parse_action(const uint8_t *data, size_t len)
{
	json_object *o = json_input_parse(data, len, ACTION_MAX_DEPTH);

	if (o != NULL && !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		o = NULL;
	}
	return o;
}

/* max_actions_per_second: a token bucket holding two seconds' worth. */
static bool take_token(struct session *s)
{
	double rate = (double)worker_config(s->w)->max_actions_per_second;
	uint64_t now = monotonic_ms();

	if (rate <= 0)
		return true;
	s->tokens += rate * (double)(now - s->tokens_ms) / 1000.0;
	if (s->tokens > 2 * rate)
		s->tokens = 2 * rate;
	s->tokens_ms = now;
	if (s->tokens < 1.0)
		return false;
	s->tokens -= 1.0;
	return true;
}

void session_on_message(struct session *s, const uint8_t *data, size_t len)
{
	json_object *msg = parse_action(data, len);

	if (msg == NULL) {
		json_object *p = json_object_new_object();
		json_object_object_add(p, "error", json_object_new_string("InvalidJSON"));
		reply_send(s->conn, "Error", false, NULL, p);
		return;
	}
	if (!take_token(s)) {
		json_object *tag = NULL;
		json_object_object_get_ex(msg, "tag", &tag);
		metrics_inc(M_RATE_LIMITED);
		reply_error(s->conn, tag, "RateLimited", 0, NULL, NULL);
		json_object_put(msg);
		return;
	}
	if (s->run == NULL && s->q_head == NULL) {
		dispatch(s, msg);
		return;
	}
	if (s->q_len >= ACTION_QUEUE_MAX) {
		json_object_put(msg);
		conn_close(s->conn, WS_CLOSE_POLICY, "too many actions in flight");
		return;
	}
	s->q_len++;
	enqueue(s, msg);
}
