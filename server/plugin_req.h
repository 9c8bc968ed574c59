/*
 * A request as plugins see it: struct myxid_req, what a plugin may read of
 * it (req_get), the identity an auth plugin builds on it (req_set_user,
 * req_add_attr) and its one answer (req_done), the request services of the
 * host table. authz.c starts, drives and frees requests; this module sits
 * below plugin_host so that the host table can name these services without
 * including authz.
 *
 * The fields are for authz.c and plugin_req.c only; everyone else holds a
 * request as an opaque pointer.
 */
#ifndef MYXID_PLUGIN_REQ_H
#define MYXID_PLUGIN_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <myxid/plugin.h>

struct event;
struct identity;
struct runconf;
struct worker;
struct myxid_instance;

/* Facts about the client that plugins may read. Borrowed; must outlive the
 * request (the session owns them and cancels its requests before freeing). */
struct req_client {
	const char *socket_id;
	const char *peer;
	const char *origin;               /* may be NULL */
	const char *client_ip;            /* X-Forwarded-For's, behind a trusted proxy */
	const char *headers;              /* conn.h plugin_headers; may be NULL */
	const struct identity *identity;  /* NULL if anonymous */
};

enum req_kind { REQ_AUTH, REQ_POLICY };

enum req_state {
	REQ_CALLING,    /* inside a plugin's auth()/policy() */
	REQ_PENDING,    /* a plugin said PENDING; the timer is the timeout */
	REQ_ANSWERED,   /* answer in req->answer, event activated */
};

/* Called once with the request's result; see authz_done_fn in authz.h. */
typedef void req_done_fn(void *arg, enum myxid_verdict verdict,
			 struct identity *id);

struct myxid_req {
	enum req_kind kind;
	enum req_state state;
	struct worker *w;
	struct runconf *rc;             /* the plugins this request uses */
	struct req_client client;
	char *token;
	char *exchange;
	char *routing_key;
	bool presence;                  /* policy: presence is asked for too */
	char *grant;                    /* policy: the Subscribe's token (secret) */
	size_t next_plugin;             /* auth: chain position */
	struct myxid_instance *holder;  /* the instance asked last */
	enum myxid_verdict answer;
	uint64_t asked_us;              /* when the holder was asked */
	bool cached;                    /* the answer came from the cache */
	unsigned char *cache_key;       /* where an ALLOW is remembered */
	size_t cache_key_len;
	struct identity *ident;         /* auth: built by the plugin */
	struct event *ev;               /* owned; drives the request (authz.c) */
	req_done_fn *done;
	void *done_arg;
};

/* Keep v as req's answer and activate req->ev, so that authz.c acts on it
 * from the loop, never inside the plugin call that gave it. */
void plugin_req_answer(struct myxid_req *req, enum myxid_verdict v);

/* The request services of the host table (plugin_host.c publishes them). */
const char *plugin_req_get(const struct myxid_req *req, const char *key);
int plugin_req_set_user(struct myxid_req *req, const char *user_id,
			const char *user_type);
int plugin_req_set_expiry(struct myxid_req *req, long long unix_seconds);
int plugin_req_add_attr(struct myxid_req *req, const char *key,
			const char *value);
void plugin_req_done(struct myxid_req *req, enum myxid_verdict verdict,
		     const char *reason);

#endif
