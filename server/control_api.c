/*
 * The control API; see control_api.h.
 *
 * A command is parsed and checked on the loop that received it, the
 * answer caches are cleared of what it revokes (so a reconnect asks the
 * plugins again), and it then runs on every loop through
 * worker_broadcast(); the last loop's share answers the client, on this
 * loop, if it is still there.
 */
#include "control_api.h"
#include "answer_cache.h"
#include "broker.h"
#include "config.h"
#include "conn.h"
#include "http_parse.h"
#include "http_reply.h"
#include "identity.h"
#include "json_input.h"
#include "presence.h"
#include "log.h"
#include "metrics.h"
#include "router.h"
#include "runconf.h"
#include "session_control.h"
#include "util.h"
#include "worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/sha.h>
#include <event2/event.h>

#define CONTROL_MAX_BODY (256 * 1024)
/* More users than this in one command: 413 (split the list). */
#define CONTROL_MAX_USERS 1000
#define DEFAULT_CLOSE_CODE 4003
#define DEFAULT_CLOSE_REASON "disconnected by the application"

enum control_kind { CTL_DISCONNECT, CTL_UNSUBSCRIBE, CTL_SUBSCRIBERS, CTL_KEYS, CTL_NODES };

/* One command, owned by the request until its answer is sent. */
struct control_op {
	enum control_kind kind;
	struct control_target t;
	char **user_ids;
	char *token, *socket_id;
	unsigned char sha[SHA256_DIGEST_LENGTH];
	int code;
	char *reason, *exchange, *routing_key;
	size_t n;                   /* atomic: sockets acted on, or subscribers */
	pthread_mutex_t lock;       /* CTL_KEYS: keys, merged from every loop */
	json_object *keys, *patterns;
	struct http_wait *wait;
	/* Across nodes (a broker): the asking node's side ... */
	struct worker *origin;
	char corr[33];
	unsigned expected, answered;  /* nodes alive when asked, and answers */
	struct event *deadline;
	json_object *node_list;
	struct control_op *next;      /* in the table of commands waiting */
	/* ... and a node's side of a command it received. */
	char *reply_to, *reply_corr;
};

static void op_free(struct control_op *op)
{
	for (size_t i = 0; i < op->t.n_user_ids; i++)
		free(op->user_ids[i]);
	free(op->user_ids);
	free(op->socket_id);
	if (op->token != NULL) {
		memset(op->token, 0, strlen(op->token));
		free(op->token);
	}
	free(op->reason);
	free(op->exchange);
	free(op->routing_key);
	json_object_put(op->keys);
	json_object_put(op->patterns);
	json_object_put(op->node_list);
	free(op->reply_to);
	free(op->reply_corr);
	if (op->deadline != NULL)
		event_free(op->deadline);
	pthread_mutex_destroy(&op->lock);
	free(op);
}

/* ------------------------------------------------------------- parsing */

static const char *string_of(json_object *doc, const char *name, size_t max, char **out)
{
	json_object *v;

	if (!json_object_object_get_ex(doc, name, &v))
		return NULL;
	if (!json_object_is_type(v, json_type_string) && !json_object_is_type(v, json_type_int))
		return "must be a string";
	if (json_object_get_string_len(v) == 0 || (size_t)json_object_get_string_len(v) > max)
		return "is empty or too long";
	*out = xstrdup(json_object_get_string(v));
	return NULL;
}

static bool hex32(const char *s, unsigned char out[32])
{
	if (strlen(s) != 64)
		return false;
	for (int i = 0; i < 32; i++) {
		int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out[i] = (unsigned char)(hi * 16 + lo);
	}
	return true;
}

/* WHO: exactly one way of naming the sockets. Returns an HTTP status (400
 * or 413) with *why, or 0. */
static int parse_who(struct control_op *op, json_object *doc, const char **why)
{
	json_object *list;
	char *one = NULL, *sha = NULL;
	int given = 0;
	const char *bad;

	if ((bad = string_of(doc, "user_id", 255, &one)) != NULL)
		return *why = "user_id must be a non-empty string", 400;
	if (one != NULL) {
		given++;
		op->user_ids = xmalloc(sizeof(char *));
		op->user_ids[op->t.n_user_ids++] = one;
	}
	if (json_object_object_get_ex(doc, "user_ids", &list)) {
		size_t n;

		given++;
		if (!json_object_is_type(list, json_type_array) ||
		    (n = json_object_array_length(list)) == 0)
			return *why = "user_ids must be a non-empty list of strings", 400;
		if (n > CONTROL_MAX_USERS)
			return *why = "user_ids holds more than 1000 users: split the list", 413;
		op->user_ids = xrealloc(op->user_ids, (op->t.n_user_ids + n) * sizeof(char *));
		for (size_t i = 0; i < n; i++) {
			json_object *u = json_object_array_get_idx(list, i);

			if (!json_object_is_type(u, json_type_string) || json_object_get_string_len(u) == 0)
				return *why = "user_ids must be a non-empty list of strings", 400;
			op->user_ids[op->t.n_user_ids++] = xstrdup(json_object_get_string(u));
		}
	}
	if ((bad = string_of(doc, "session_token", 4096, &op->token)) != NULL)
		return *why = "session_token must be a non-empty string", 400;
	given += op->token != NULL;
	if ((bad = string_of(doc, "session_token_sha256", 64, &sha)) != NULL ||
	    (sha != NULL && !hex32(sha, op->sha))) {
		free(sha);
		return *why = "session_token_sha256 must be 64 hex digits (SHA-256 of the token)", 400;
	}
	given += sha != NULL;
	if ((bad = string_of(doc, "socket_id", 64, &op->socket_id)) != NULL)
		return *why = "socket_id must be a non-empty string", 400;
	given += op->socket_id != NULL;
	if (given != 1) {
		free(sha);
		return *why = "name the sockets with exactly one of user_id, user_ids, "
			"session_token, session_token_sha256 or socket_id", 400;
	}
	op->t.user_ids = (const char *const *)op->user_ids;
	op->t.token = op->token;
	op->t.token_sha256 = sha != NULL ? op->sha : NULL;
	op->t.socket_id = op->socket_id;
	free(sha);
	return 0;
}

static int parse_close(struct control_op *op, json_object *doc, const char **why)
{
	json_object *v;

	op->code = DEFAULT_CLOSE_CODE;
	if (json_object_object_get_ex(doc, "code", &v)) {
		int64_t code = json_object_get_int64(v);

		/* What an application may send (RFC 6455 7.4). */
		if (!json_object_is_type(v, json_type_int) ||
		    (code != 1000 && (code < 3000 || code > 4999)))
			return *why = "code must be 1000 or 3000-4999", 400;
		op->code = (int)code;
	}
	if (json_object_object_get_ex(doc, "reason", &v)) {
		/* A close frame holds at most 123 bytes of reason. */
		if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) > 123)
			return *why = "reason must be a string of at most 123 bytes", 400;
		op->reason = xstrdup(json_object_get_string(v));
	} else {
		op->reason = xstrdup(DEFAULT_CLOSE_REASON);
	}
	return 0;
}

/* exchange (configured) and, when key_too, routing_key. */
static int parse_pair(const struct myxid_config *cfg, struct control_op *op, json_object *doc,
		      bool key_too, const char **why)
{
	if (string_of(doc, "exchange", 255, &op->exchange) != NULL || op->exchange == NULL)
		return *why = "exchange must be a non-empty string", 400;
	if (config_exchange(cfg, op->exchange) == NULL)
		return *why = "no such exchange in the configuration", 404;
	if (key_too && (string_of(doc, "routing_key", 255, &op->routing_key) != NULL ||
			op->routing_key == NULL))
		return *why = "routing_key must be a non-empty string", 400;
	return 0;
}

/* ------------------------------------------------------- answer caches */

static bool cached_for(void *arg, const void *key, size_t key_len, const struct identity *id)
{
	const struct control_op *op = arg;

	if (op->t.token != NULL || op->t.token_sha256 != NULL) {
		unsigned char d[SHA256_DIGEST_LENGTH];
		const unsigned char *want = op->t.token_sha256;

		if (op->t.token != NULL) {
			SHA256((const unsigned char *)op->t.token, strlen(op->t.token), d);
			want = d;
		}
		return key_len == SHA256_DIGEST_LENGTH && memcmp(key, want, key_len) == 0;
	}
	for (size_t i = 0; i < op->t.n_user_ids && id != NULL && id->user_id != NULL; i++)
		if (strcmp(id->user_id, op->t.user_ids[i]) == 0)
			return true;
	return false;
}

/* A policy answer: "exchange\0key\0user_id\0user_type". */
static bool policy_for(void *arg, const void *key, size_t key_len, const struct identity *unused)
{
	const struct control_op *op = arg;
	const char *ex = key, *end = ex + key_len;
	const char *rk = memchr(ex, '\0', key_len), *user;

	if (rk == NULL || ++rk >= end || (user = memchr(rk, '\0', (size_t)(end - rk))) == NULL ||
	    ++user >= end)
		return false;
	if (op->exchange != NULL && (strcmp(ex, op->exchange) != 0 || strcmp(rk, op->routing_key) != 0))
		return false;
	for (size_t i = 0; i < op->t.n_user_ids; i++)
		if (strcmp(user, op->t.user_ids[i]) == 0)
			return true;
	return false;
}

/* What the command revokes is asked again next time, not taken from a
 * cache that still says yes. */
static void forget_cached(struct worker *w, struct control_op *op)
{
	struct runconf *rc = worker_runconf(w);

	if (op->kind == CTL_DISCONNECT && op->t.socket_id == NULL)
		answer_cache_forget_if(rc->auth_cache, cached_for, op);
	if (op->t.user_ids != NULL)
		answer_cache_forget_if(rc->policy_cache, policy_for, op);
}

/* ------------------------------------------------------------- running */

static void add_key(void *arg, const char *routing_key, size_t n, bool pattern)
{
	struct control_op *op = arg;
	json_object *into = pattern ? op->patterns : op->keys, *v;
	int64_t before = json_object_object_get_ex(into, routing_key, &v) ?
		json_object_get_int64(v) : 0;

	json_object_object_add(into, routing_key, json_object_new_int64(before + (int64_t)n));
}

static void run_on_loop(struct worker *w, void *arg)
{
	struct control_op *op = arg;
	size_t n = 0;

	switch (op->kind) {
	case CTL_DISCONNECT:
		n = session_control_disconnect(&op->t, op->code, op->reason);
		break;
	case CTL_UNSUBSCRIBE:
		n = session_control_unsubscribe(&op->t, op->exchange, op->routing_key);
		break;
	case CTL_SUBSCRIBERS:
		n = router_count(worker_router(w), op->exchange, op->routing_key);
		break;
	case CTL_KEYS:
		pthread_mutex_lock(&op->lock);
		router_each_key(worker_router(w), op->exchange, add_key, op);
		pthread_mutex_unlock(&op->lock);
		break;
	case CTL_NODES:
		break;
	}
	__atomic_add_fetch(&op->n, n, __ATOMIC_RELAXED);
}

static int parse(const struct myxid_config *cfg, struct control_op *op, json_object *doc,
		 const char **why);
static bool command_kind(const char *name, size_t len, enum control_kind *kind);
static struct control_op *op_new(enum control_kind kind, struct worker *w);

/* This node, as a control answer or a line of node_list. */
static json_object *this_node(struct worker *w)
{
	json_object *node = json_object_new_object();
	char host[256] = "", name[300];
	struct broker *b = worker_broker(w);

	if (b != NULL) {
		snprintf(name, sizeof(name), "%s", broker_node_id(b));
	} else {
		gethostname(host, sizeof(host) - 1);
		snprintf(name, sizeof(name), "%s:%ld", host, (long)getpid());
	}
	json_object_object_add(node, "node", json_object_new_string(name));
	json_object_object_add(node, "sockets", json_object_new_int64(metrics_get(M_SOCKETS_OPEN)));
	json_object_object_add(node, "sse_streams", json_object_new_int64(metrics_get(M_SSE_OPEN)));
	json_object_object_add(node, "authenticated",
			       json_object_new_int64(metrics_get(M_SOCKETS_AUTHENTICATED)));
	json_object_object_add(node, "subscriptions", json_object_new_int64(metrics_get(M_SUBSCRIPTIONS)));
	return node;
}

static const char *const command_names[] = {
	[CTL_DISCONNECT] = "disconnect", [CTL_UNSUBSCRIBE] = "unsubscribe",
	[CTL_SUBSCRIBERS] = "subscribers", [CTL_KEYS] = "keys", [CTL_NODES] = "nodes",
};

/* The HTTP answer, once every node (or this one alone) has answered. */
static void reply_to_client(struct control_op *op)
{
	struct conn *c = http_wait_end(op->wait);
	json_object *o = json_object_new_object();
	static const char *const counted[] = {
		[CTL_DISCONNECT] = "disconnected", [CTL_UNSUBSCRIBE] = "unsubscribed",
		[CTL_SUBSCRIBERS] = "subscribers",
	};
	int status = 200;

	if (op->exchange != NULL)
		json_object_object_add(o, "exchange", json_object_new_string(op->exchange));
	if (op->routing_key != NULL)
		json_object_object_add(o, "routing_key", json_object_new_string(op->routing_key));
	if (op->kind == CTL_KEYS) {
		json_object_object_add(o, "keys", json_object_get(op->keys));
		json_object_object_add(o, "patterns", json_object_get(op->patterns));
	} else if (op->kind == CTL_NODES) {
		json_object_object_add(o, "node_list", json_object_get(op->node_list));
	} else {
		json_object_object_add(o, counted[op->kind], json_object_new_int64((int64_t)op->n));
	}
	if (op->answered == 0) {
		/* The command went out, but no node (not even this one, through
		 * the broker) answered in time: a count of 0 would be a guess. */
		status = 503;
		json_object_object_add(o, "error", json_object_new_string(
			"no node answered within control_timeout (is the broker link up?)"));
	} else if ((op->kind == CTL_DISCONNECT || op->kind == CTL_UNSUBSCRIBE) && op->n == 0) {
		/* Nothing matched a revocation: say so, it may be a wrong id. */
		status = 404;
		json_object_object_add(o, "error", json_object_new_string(
			op->kind == CTL_DISCONNECT ? "no socket matched" :
			"no matching socket holds that subscription"));
	}
	json_object_object_add(o, "nodes", json_object_new_int((int)op->expected));
	json_object_object_add(o, "nodes_answered", json_object_new_int((int)op->answered));
	if (c != NULL)
		http_reply_json(c, status, NULL, o);
	else
		json_object_put(o);
	op_free(op);
}

/* One daemon, no broker: the loops' shares are all there is. */
static void answered_here(void *arg)
{
	struct control_op *op = arg;

	op->expected = op->answered = 1;
	if (op->kind == CTL_NODES)
		json_object_array_add(op->node_list, this_node(op->origin));
	reply_to_client(op);
}

/* ----------------------------------------------- across nodes: the asker */

/* Commands of this process waiting for the nodes' answers. */
static pthread_mutex_t waiting_lock = PTHREAD_MUTEX_INITIALIZER;
static struct control_op *waiting;

/* Take op out of the table; false if it already was (answered). */
static bool unlist(struct control_op *op)
{
	bool found = false;

	pthread_mutex_lock(&waiting_lock);
	for (struct control_op **pp = &waiting; *pp; pp = &(*pp)->next)
		if (*pp == op) {
			*pp = op->next;
			found = true;
			break;
		}
	pthread_mutex_unlock(&waiting_lock);
	return found;
}

static void finish_on_origin(evutil_socket_t fd, short what, void *arg)
{
	reply_to_client(arg);
}

/* Not every node answered in time: answer with those that did. */
static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct control_op *op = arg;

	if (unlist(op)) {
		log_notice("control %s: %u of %u nodes answered within %u ms",
			   command_names[op->kind], op->answered, op->expected,
			   worker_config(op->origin)->control_timeout_ms);
		reply_to_client(op);
	}
}

/* One node's answer: {"node":..,"n":N} (+ keys, patterns, or its gauges). */
static void merge_answer(struct control_op *op, json_object *a)
{
	json_object *v, *keys;

	if (json_object_object_get_ex(a, "n", &v))
		op->n += (size_t)json_object_get_int64(v);
	if (op->kind == CTL_KEYS) {
		for (int k = 0; k < 2; k++) {
			json_object *into = k ? op->patterns : op->keys;

			if (!json_object_object_get_ex(a, k ? "patterns" : "keys", &keys) ||
			    !json_object_is_type(keys, json_type_object))
				continue;
			json_object_object_foreach(keys, name, count) {
				int64_t before = json_object_object_get_ex(into, name, &v) ?
					json_object_get_int64(v) : 0;

				json_object_object_add(into, name, json_object_new_int64(
					before + json_object_get_int64(count)));
			}
		}
	}
	if (op->kind == CTL_NODES && json_object_object_get_ex(a, "node", &v))
		json_object_array_add(op->node_list, json_object_get(a));
	op->answered++;
}

static void answer_arrived(struct worker *w, const char *corr, const char *body, size_t len)
{
	json_object *a = json_input_parse(body, len, 16);
	struct control_op *op;
	bool done = false;

	pthread_mutex_lock(&waiting_lock);
	for (op = waiting; op != NULL && strcmp(op->corr, corr) != 0; op = op->next)
		;
	if (op != NULL && a != NULL && json_object_is_type(a, json_type_object)) {
		merge_answer(op, a);
		if (op->answered >= op->expected) {
			struct control_op **pp = &waiting;

			while (*pp != op)
				pp = &(*pp)->next;
			*pp = op->next;
			done = true;
		}
	}
	pthread_mutex_unlock(&waiting_lock);
	json_object_put(a);
	if (done) {
		struct timeval zero = { 0, 0 };

		/* The deadline is freed there, on its own loop. */
		event_base_once(worker_base(op->origin), -1, EV_TIMEOUT, finish_on_origin, op, &zero);
	}
	(void)w;
}

/* Send the command to every node (this one too, through the fanout). */
static bool ask_nodes(struct control_op *op, json_object *doc)
{
	struct broker *b = worker_broker(op->origin);
	unsigned ms = worker_config(op->origin)->control_timeout_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	const char *body;
	size_t len;

	random_hex(op->corr, 16);
	op->expected = broker_live_nodes(b);
	if (op->expected == 0)
		op->expected = 1;     /* ourselves, before our first hello */
	json_object_object_add(doc, "command", json_object_new_string(command_names[op->kind]));
	body = json_object_to_json_string_length(doc, JSON_C_TO_STRING_PLAIN, &len);
	op->deadline = evtimer_new(worker_base(op->origin), deadline_cb, op);
	pthread_mutex_lock(&waiting_lock);
	op->next = waiting;
	waiting = op;
	pthread_mutex_unlock(&waiting_lock);
	if (broker_control_send(b, broker_control_exchange(b), "", broker_node_id(b), op->corr,
				body, len) != 0) {
		unlist(op);
		return false;
	}
	evtimer_add(op->deadline, &tv);
	return true;
}

/* ---------------------------------------- across nodes: every node's side */

/* This node's share is done: answer the asking node. */
static void remote_done(void *arg)
{
	struct control_op *op = arg;
	struct broker *b = worker_broker(op->origin);
	json_object *a = op->kind == CTL_NODES ? this_node(op->origin) : json_object_new_object();
	const char *body;
	size_t len;

	if (op->kind != CTL_NODES) {
		json_object_object_add(a, "node", json_object_new_string(broker_node_id(b)));
		json_object_object_add(a, "n", json_object_new_int64((int64_t)op->n));
	}
	if (op->kind == CTL_KEYS) {
		json_object_object_add(a, "keys", json_object_get(op->keys));
		json_object_object_add(a, "patterns", json_object_get(op->patterns));
	}
	body = json_object_to_json_string_length(a, JSON_C_TO_STRING_PLAIN, &len);
	if (op->reply_to != NULL && op->reply_corr != NULL &&
	    broker_control_send(b, "", op->reply_to, NULL, op->reply_corr, body, len) != 0)
		log_warn("control %s: the answer to %s could not be queued",
			 command_names[op->kind], op->reply_to);
	json_object_put(a);
	op_free(op);
}

/* A command from the control exchange (another node's, or an
 * application's: no reply_to, nobody waits). */
static void command_arrived(struct worker *w, const char *reply_to, const char *corr,
			    const char *body, size_t len)
{
	json_object *doc = json_input_parse(body, len, 16), *cmd;
	struct control_op *op = NULL;
	enum control_kind kind;
	const char *why = "not a JSON object with a \"command\"";

	/* Presence changes of another node share the exchange (presence.h). */
	if (doc != NULL && json_object_is_type(doc, json_type_object) &&
	    json_object_object_get_ex(doc, "presence", NULL) && worker_presence(w) != NULL) {
		presence_remote(worker_presence(w), doc);
		json_object_put(doc);
		return;
	}
	if (doc != NULL && json_object_is_type(doc, json_type_object) &&
	    json_object_object_get_ex(doc, "command", &cmd) &&
	    json_object_is_type(cmd, json_type_string)) {
		const char *name = json_object_get_string(cmd);

		why = "unknown command";
		if (command_kind(name, strlen(name), &kind)) {
			op = op_new(kind, w);
			if (parse(worker_config(w), op, doc, &why) != 0) {
				op_free(op);
				op = NULL;
			}
		}
	}
	json_object_put(doc);
	if (op == NULL) {
		log_warn("control exchange: a message dropped (%s): %.*s", why,
			 (int)(len > 200 ? 200 : len), body);
		return;
	}
	op->reply_to = reply_to ? xstrdup(reply_to) : NULL;
	op->reply_corr = corr ? xstrdup(corr) : NULL;
	log_info("control %s from the control exchange", command_names[op->kind]);
	forget_cached(w, op);
	worker_broadcast(w, run_on_loop, remote_done, op);
}

void control_api_remote(struct worker *w, bool reply, const char *reply_to,
			const char *corr, const char *body, size_t len)
{
	if (reply)
		answer_arrived(w, corr, body, len);
	else
		command_arrived(w, reply_to, corr, body, len);
}

/* ------------------------------------------------------------ requests */

/* Parse a command's body into op; an HTTP status and why, or 0. */
static int parse(const struct myxid_config *cfg, struct control_op *op, json_object *doc,
		 const char **why)
{
	int st = 0;

	if (!json_object_is_type(doc, json_type_object))
		return *why = "the body must be a JSON object", 400;
	switch (op->kind) {
	case CTL_DISCONNECT:
		if ((st = parse_who(op, doc, why)) == 0)
			st = parse_close(op, doc, why);
		break;
	case CTL_UNSUBSCRIBE:
		if ((st = parse_who(op, doc, why)) == 0)
			st = parse_pair(cfg, op, doc, true, why);
		break;
	case CTL_SUBSCRIBERS:
		st = parse_pair(cfg, op, doc, true, why);
		break;
	case CTL_KEYS:
		st = parse_pair(cfg, op, doc, false, why);
		break;
	case CTL_NODES:
		break;
	}
	return st;
}

static bool command_kind(const char *name, size_t len, enum control_kind *kind)
{
	for (size_t i = 0; i < sizeof(command_names) / sizeof(command_names[0]); i++)
		if (strlen(command_names[i]) == len && memcmp(command_names[i], name, len) == 0) {
			*kind = (enum control_kind)i;
			return true;
		}
	return false;
}

static struct control_op *op_new(enum control_kind kind, struct worker *w)
{
	struct control_op *op = xcalloc(1, sizeof(*op));

	op->kind = kind;
	op->origin = w;
	pthread_mutex_init(&op->lock, NULL);
	op->keys = json_object_new_object();
	op->patterns = json_object_new_object();
	op->node_list = json_object_new_array();
	return op;
}

int control_api_handle(struct conn *c, const struct http_request *req,
		       const char *buf, size_t avail)
{
	const char *key = worker_config(c->w)->control_key, *why = NULL;
	const char *name = req->target.p + 9;     /* past "/control/" */
	const char *q = memchr(name, '?', req->target.len - 9);
	size_t len = q != NULL ? (size_t)(q - name) : req->target.len - 9;
	bool get = http_str_eq(&req->method, "GET");
	enum control_kind kind;
	struct control_op *op;
	json_object *doc = NULL;
	int rc, st;

	if (key == NULL) {
		http_reply_error(c, 404, NULL, "the control API is off (no control_key in the "
				 "configuration)");
		return 1;
	}
	/* The key itself is never logged: only that it was wrong. */
	if (!http_bearer_ok(req, key)) {
		log_notice("%s: control API: missing or wrong control key", c->peer);
		http_reply_error(c, 401, "WWW-Authenticate: Bearer\r\n", "missing or wrong "
				 "control key (send Authorization: Bearer <control_key>)");
		return 1;
	}
	if (!command_kind(name, len, &kind)) {
		http_reply_error(c, 404, NULL, "no such control command (disconnect, unsubscribe, "
				 "subscribers, keys, nodes)");
		return 1;
	}
	if (kind == CTL_NODES && get) {
		doc = json_object_new_object();
	} else if (!http_str_eq(&req->method, "POST")) {
		http_reply_error(c, 405, "Allow: POST\r\n", "control commands are POSTed");
		return 1;
	} else if ((rc = http_json_body(c, req, buf, avail, CONTROL_MAX_BODY, &doc)) <= 0) {
		return rc < 0;
	}
	op = op_new(kind, c->w);
	st = parse(worker_config(c->w), op, doc, &why);
	if (st != 0) {
		json_object_put(doc);
		http_reply_error(c, st, NULL, "%s", why);
		op_free(op);
		return 1;
	}
	log_info("%s: control %s", c->peer, command_names[kind]);
	op->wait = http_wait_begin(c);
	if (worker_broker(c->w) == NULL) {
		forget_cached(c->w, op);
		worker_broadcast(c->w, run_on_loop, answered_here, op);
	} else if (!ask_nodes(op, doc)) {
		struct conn *back = http_wait_end(op->wait);

		op->wait = NULL;
		op_free(op);
		if (back != NULL)
			http_reply_error(back, 503, "Retry-After: 1\r\n",
					 "the broker is not connected: the command cannot reach "
					 "the other nodes");
	}
	json_object_put(doc);
	return 1;
}
