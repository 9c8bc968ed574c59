/*
 * The session's insides, shared by session.c (client actions) and
 * recheck.c (the periodic re-check that runs as an action of its own).
 */
#ifndef MYXID_SESSION_PRIVATE_H
#define MYXID_SESSION_PRIVATE_H

#include "bind_wait.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>
#include "authz.h"
#include "router.h"
#include "session_history.h"

struct event;

/* An action waiting in line; msg is NULL for a re-check. */
struct queued {
	json_object *msg;
	struct queued *next;
};

/* The action in progress, when it waits for a plugin. */
struct run {
	json_object *msg;          /* holds tag and payload alive */
	json_object *tag;
	json_object *exchange;     /* Subscribe */
	bool has_exchange;         /* the key was present (maybe null) */
	json_object *keys;         /* Subscribe: routing_keys, or the single key */
	bool key_list;             /* keys came from routing_keys[] */
	size_t next_key, n_keys;
	char *rk;                  /* the key being checked, as a string */
	bool topic;                /* its exchange is a topic exchange */
	bool presence;             /* Subscribe: "presence": true */
	bool watch;                /* the policy is asked about presence too */
	const char *grant;         /* Subscribe: its "token" (in msg), or NULL */
	char *token;               /* Authenticate: kept for re-checks */
	char **pairs;              /* re-check: "exchange\0key" of each sub */
	size_t n_pairs, next_pair;
	struct myxid_req *req;
	struct history_ask ask;    /* Subscribe: since / history */
	struct router_sub *sub;    /* Subscribe: the one waiting for its bind */
	struct bind_waiter bind;   /* Subscribe: waiting for the broker's bind */
	struct session *owner;     /* for bind.done */
};

struct session {
	struct conn *conn;
	struct worker *w;
	char id[17];
	struct identity *ident;
	char *token;               /* the token that authenticated it (secret) */
	struct req_client client;
	struct router_list subs;
	struct router_list watching;   /* in the loop's presence router */
	struct run *run;
	struct queued *q_head, *q_tail;
	size_t q_len;
	struct event *recheck_timer;
	struct event *expiry_timer;    /* the credential's end (recheck.c) */
	bool recheck_queued;
	struct event *auth_deadline;   /* auth_deadline: close if anonymous */
	double tokens;                 /* max_actions_per_second bucket */
	uint64_t tokens_ms;            /* when it was last refilled */
	struct session *loop_next, *loop_prev;  /* the loop's sessions */
};

/* fn(s, arg) for every session of the calling thread's loop; fn may close
 * (not free) the session it is given. */
void session_each(void (*fn)(struct session *s, void *arg), void *arg);

/* Free a finished or abandoned run (cancels its plugin request). */
void session_run_free(struct run *r);

/* The current run is over: free it and start what is queued. */
void session_run_finish(struct session *s);

/* One Unsubscribed event; rk is consumed. */
void session_send_unsubscribed(struct session *s, json_object *tag,
		       const char *exchange, json_object *rk, bool autom);

/* Unsubscribe from one exchange (or all, with NULL), one event each. */
void session_unsubscribe_matching(struct session *s, json_object *tag,
			  const char *exchange, bool autom);

/* After sub is made: count the user present on its pair, and watch it
 * when watch (the policy allowed presence), on an exchange with presence
 * on (session_subs.c). */
void session_presence_start(struct session *s, struct router_sub *sub, bool pattern,
			    bool watch);

/* Remove one subscription, and its user from presence. */
void session_drop_sub(struct session *s, struct router_sub *sub);

/* Forget the user: identity and token. */
void session_forget_user(struct session *s);

/* Queue a re-check behind whatever the client already asked for. */
void session_queue_recheck(struct session *s);

#endif
