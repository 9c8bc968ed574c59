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
#include "config.h"
#include "conn.h"
#include "http_parse.h"
#include "http_reply.h"
#include "identity.h"
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

#define CONTROL_MAX_BODY (256 * 1024)
/* More users than this in one command: 413 (split the list). */
#define CONTROL_MAX_USERS 1000
#define DEFAULT_CLOSE_CODE 4003
#define DEFAULT_CLOSE_REASON "disconnected by the application"

enum control_kind { CTL_DISCONNECT, CTL_UNSUBSCRIBE, CTL_SUBSCRIBERS, CTL_KEYS };

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
static int parse_pair(struct conn *c, struct control_op *op, json_object *doc, bool key_too,
		      const char **why)
{
	if (string_of(doc, "exchange", 255, &op->exchange) != NULL || op->exchange == NULL)
		return *why = "exchange must be a non-empty string", 400;
	if (config_exchange(worker_config(c->w), op->exchange) == NULL)
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
static void forget_cached(struct conn *c, struct control_op *op)
{
	struct runconf *rc = worker_runconf(c->w);

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
	}
	__atomic_add_fetch(&op->n, n, __ATOMIC_RELAXED);
}

static void add_nodes(json_object *o)
{
	json_object_object_add(o, "nodes", json_object_new_int(1));
	json_object_object_add(o, "nodes_answered", json_object_new_int(1));
}

static void answered(void *arg)
{
	struct control_op *op = arg;
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
	} else {
		json_object_object_add(o, counted[op->kind], json_object_new_int64((int64_t)op->n));
	}
	/* Nothing matched a revocation: say so, it may be a wrong id. */
	if ((op->kind == CTL_DISCONNECT || op->kind == CTL_UNSUBSCRIBE) && op->n == 0) {
		status = 404;
		json_object_object_add(o, "error", json_object_new_string(
			op->kind == CTL_DISCONNECT ? "no socket matched" :
			"no matching socket holds that subscription"));
	}
	add_nodes(o);
	if (c != NULL)
		http_reply_json(c, status, NULL, o);
	else
		json_object_put(o);
	op_free(op);
}

/* ------------------------------------------------------------ requests */

static void nodes(struct conn *c)
{
	json_object *o = json_object_new_object(), *list = json_object_new_array();
	json_object *node = json_object_new_object();
	char host[256] = "", name[300];

	gethostname(host, sizeof(host) - 1);
	snprintf(name, sizeof(name), "%s:%ld", host, (long)getpid());
	json_object_object_add(node, "node", json_object_new_string(name));
	json_object_object_add(node, "sockets", json_object_new_int64(metrics_get(M_SOCKETS_OPEN)));
	json_object_object_add(node, "sse_streams", json_object_new_int64(metrics_get(M_SSE_OPEN)));
	json_object_object_add(node, "authenticated",
			       json_object_new_int64(metrics_get(M_SOCKETS_AUTHENTICATED)));
	json_object_object_add(node, "subscriptions", json_object_new_int64(metrics_get(M_SUBSCRIPTIONS)));
	json_object_array_add(list, node);
	json_object_object_add(o, "node_list", list);
	add_nodes(o);
	http_reply_json(c, 200, NULL, o);
}

/* Parse a command's body into op; an HTTP status and why, or 0. */
static int parse(struct conn *c, struct control_op *op, json_object *doc, const char **why)
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
			st = parse_pair(c, op, doc, true, why);
		break;
	case CTL_SUBSCRIBERS:
		st = parse_pair(c, op, doc, true, why);
		break;
	case CTL_KEYS:
		st = parse_pair(c, op, doc, false, why);
		break;
	}
	return st;
}

static bool command_kind(const char *name, size_t len, enum control_kind *kind)
{
	static const struct { const char *name; enum control_kind kind; } names[] = {
		{ "disconnect", CTL_DISCONNECT }, { "unsubscribe", CTL_UNSUBSCRIBE },
		{ "subscribers", CTL_SUBSCRIBERS }, { "keys", CTL_KEYS },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i].name) == len && memcmp(names[i].name, name, len) == 0) {
			*kind = names[i].kind;
			return true;
		}
	return false;
}

int control_api_handle(struct conn *c, const struct http_request *req,
		       const char *buf, size_t avail)
{
	const char *key = worker_config(c->w)->control_key, *why = NULL;
	const char *name = req->target.p + 9;     /* past "/control/" */
	const char *q = memchr(name, '?', req->target.len - 9);
	size_t len = q != NULL ? (size_t)(q - name) : req->target.len - 9;
	enum control_kind kind;
	struct control_op *op;
	json_object *doc;
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
	if (len == 5 && memcmp(name, "nodes", 5) == 0) {
		nodes(c);
		return 1;
	}
	if (!command_kind(name, len, &kind)) {
		http_reply_error(c, 404, NULL, "no such control command (disconnect, unsubscribe, "
				 "subscribers, keys, nodes)");
		return 1;
	}
	if (!http_str_eq(&req->method, "POST")) {
		http_reply_error(c, 405, "Allow: POST\r\n", "control commands are POSTed");
		return 1;
	}
	if ((rc = http_json_body(c, req, buf, avail, CONTROL_MAX_BODY, &doc)) <= 0)
		return rc < 0;
	op = xcalloc(1, sizeof(*op));
	op->kind = kind;
	pthread_mutex_init(&op->lock, NULL);
	op->keys = json_object_new_object();
	op->patterns = json_object_new_object();
	st = parse(c, op, doc, &why);
	json_object_put(doc);
	if (st != 0) {
		http_reply_error(c, st, NULL, "%s", why);
		op_free(op);
		return 1;
	}
	log_info("%s: control %.*s", c->peer, (int)len, name);
	forget_cached(c, op);
	op->wait = http_wait_begin(c);
	worker_broadcast(c->w, run_on_loop, answered, op);
	return 1;
}
