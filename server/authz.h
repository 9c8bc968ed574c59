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
#include "plugin_req.h"

struct worker;
struct identity;
struct myxid_req;
struct myxid_instance;

/*
 * The result. verdict is MYXID_ALLOW, MYXID_DENY or MYXID_ERROR (NEXT from
 * every plugin and timeouts are folded into DENY and ERROR). For auth, on
 * ALLOW, *id is a new identity the callee takes over.
 */
typedef req_done_fn authz_done_fn;

/* Flags: skip the answer cache (the periodic re-check must see revocations;
 * its answer still refreshes the cache). */
#define AUTHZ_FRESH 0x1u
/* Policy: the subscriber also asks for presence (req_get("presence") is
 * "1"); cached apart from a plain subscribe. */
#define AUTHZ_PRESENCE 0x2u

struct myxid_req *authz_auth_start(struct worker *w,
				   const struct req_client *client,
				   const char *token, unsigned flags,
				   authz_done_fn *done, void *arg);

/* grant: the signed token a Subscribe carried for this subscription (a
 * secret, req_get("subscribe_token")), or NULL; answers are cached per
 * grant. */
struct myxid_req *authz_policy_start(struct worker *w,
				     struct myxid_instance *policy,
				     const struct req_client *client,
				     const char *exchange,
				     const char *routing_key, const char *grant,
				     unsigned flags, authz_done_fn *done, void *arg);

/* Abandon a request; done will not be called. */
void authz_cancel(struct myxid_req *req);

#endif
