/*
 * What a session's subscription holds beside its route, and dropping it:
 * its part in presence (presence.h: its user counts as present, and it may
 * watch) and the token it was granted with (asked again at re-checks).
 *
 * The router_sub remembers the user it counted (sub->member), not the
 * session's current identity, so that whatever happens to the session
 * between subscribe and unsubscribe (a re-check, an expiry), the count it
 * added is the count it takes back.
 */
#include "presence.h"
#include "router.h"
#include "runconf.h"
#include "session_private.h"
#include "config.h"
#include "identity.h"
#include "util.h"
#include "worker.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

void session_presence_start(struct session *s, struct router_sub *sub, bool pattern,
			    bool watch)
{
	struct presence *p = worker_presence(s->w);
	struct exchange_rt *ex = runconf_exchange(worker_runconf(s->w), sub->exchange);

	/* A pattern names no one key to be present on. */
	if (p == NULL || ex == NULL || !ex->conf->presence || pattern)
		return;
	if (s->ident != NULL && s->ident->user_id != NULL)
		sub->member = xstrdup(s->ident->user_id);
	sub->watching = watch && router_add(worker_presence_router(s->w), s, &s->watching,
					    sub->exchange, sub->routing_key, false) != NULL;
	if (sub->member != NULL || sub->watching)
		presence_change(p, sub->exchange, sub->routing_key, sub->member, sub->watching,
				+1);
}

void session_drop_sub(struct session *s, struct router_sub *sub)
{
	if (sub->member != NULL || sub->watching)
		presence_change(worker_presence(s->w), sub->exchange, sub->routing_key,
				sub->member, sub->watching, -1);
	if (sub->watching) {
		struct router_sub *w = router_find(&s->watching, sub->exchange,
						   sub->routing_key);

		if (w != NULL)
			router_remove(worker_presence_router(s->w), &s->watching, w);
	}
	free(sub->member);
	sub->member = NULL;
	if (sub->grant != NULL) {
		OPENSSL_cleanse(sub->grant, strlen(sub->grant));
		free(sub->grant);
		sub->grant = NULL;
	}
	router_remove(worker_router(s->w), &s->subs, sub);
}
