/*
 * Auth and policy requests: the daemon's side of the asynchronous plugin
 * contract. A request walks the auth chain (or asks one exchange's policy),
 * may wait for a plugin's req_done(), is timed out, and is cancelled when the
 * client leaves. Its completion callback always runs from the event loop,
 * never inside authz_*_start(), so callers need not guard against
 * re-entrance.
 */
#ifndef MYXID_AUTHZ_H
#define MYXID_AUTHZ_H

#include <stddef.h>
#include <myxid/plugin.h>
#include "identity.h"

struct worker;
struct identity;
struct myxid_req;
struct myxid_instance;

/* Facts about the client that plugins may read. Borrowed; must outlive the
 * request (the session owns them and cancels its requests before freeing). */
struct authz_client {
	const char *socket_id;
	const char *peer;
	const char *origin;               /* may be NULL */
	const char *client_ip;            /* X-Forwarded-For's, behind a trusted proxy */
	const char *headers;              /* conn.h plugin_headers; may be NULL */
	const struct identity *identity;  /* NULL if anonymous */
};

/*
 * The result. verdict is MYXID_ALLOW, MYXID_DENY or MYXID_ERROR (NEXT from
 * every plugin and timeouts are folded into DENY and ERROR). For auth, on
 * ALLOW, *id is a new identity the callee takes over.
 */
typedef void authz_done_fn(void *arg, enum myxid_verdict verdict,
			   struct identity *id);

/* Flags: skip the answer cache (the periodic re-check must see revocations;
 * its answer still refreshes the cache). */
#define AUTHZ_FRESH 0x1u

struct myxid_req *authz_auth_start(struct worker *w,
				   const struct authz_client *client,
				   const char *token, unsigned flags,
				   authz_done_fn *done, void *arg);

struct myxid_req *authz_policy_start(struct worker *w,
				     struct myxid_instance *policy,
				     const struct authz_client *client,
				     const char *exchange,
				     const char *routing_key, unsigned flags,
				     authz_done_fn *done, void *arg);

/* Abandon a request; done will not be called. */
void authz_cancel(struct myxid_req *req);

/* The request services of the host table (plugin_host.c publishes them). */
const char *authz_req_get(const struct myxid_req *req, const char *key);
int authz_req_set_user(struct myxid_req *req, const char *user_id,
		       const char *user_type);
int authz_req_add_attr(struct myxid_req *req, const char *key,
		       const char *value);
void authz_req_done(struct myxid_req *req, enum myxid_verdict verdict,
		    const char *reason);

#endif
