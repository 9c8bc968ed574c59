/*
 * Presence: which users are subscribed to a key, told to the subscribers
 * that asked for it, on exchanges configured with "presence on".
 *
 * Every subscription of an identified user to an exact key of such an
 * exchange counts the user as present on that key; a user with several
 * sockets, on several loops or nodes, is present once. A socket that
 * subscribed with "presence": true (and whose policy allowed it) is a
 * watcher: it receives
 *
 *   {"event":"Presence","payload":{"exchange":X,"routing_key":K,
 *     "users":[...],"count":N,"joined":[...],"left":[...]},"mq":{...}}
 *
 * at most once per presence_interval per key, when someone joined or left
 * (or it just started watching). users lists at most presence_max_users
 * ids, sorted; count is exact. Changes within one interval are merged, so
 * a user who comes and goes in between is in neither list.
 *
 * One table per process, shared by its loops under a lock: subscribing and
 * unsubscribing are rare next to publishing, and a key without watchers
 * costs one lookup. The table's timer runs on the home loop (the first);
 * it also sends this node's changes to the other nodes through the control
 * exchange, and merges theirs (presence_remote), so the users of every
 * node count; a node that stops saying hello drops out with its users.
 *
 * Nothing of this runs for an exchange without "presence on".
 */
#ifndef MYXID_PRESENCE_H
#define MYXID_PRESENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>

struct presence;
struct worker;

struct presence *presence_new(void);
void presence_free(struct presence **p);

/* Run the table's timer on home's loop (call on home's thread, before the
 * loops serve). Without a home (myxid -t, unit tests) nothing is sent. */
void presence_attach(struct presence *p, struct worker *home);

/*
 * Any loop: a subscription to (exchange, key) came (delta +1) or went (-1):
 * one of user's (NULL: nobody's, an anonymous socket), watching or not. In
 * one step, so that a new watcher's first event already counts its own
 * user. A new watcher makes the watchers get the current users at the
 * next flush.
 */
void presence_change(struct presence *p, const char *exchange, const char *key,
		     const char *user, bool watcher, int delta);

/* Home loop: a presence message of another node, from the control
 * exchange ({"presence": NODE, ...}, see presence_cluster.c). */
void presence_remote(struct presence *p, json_object *msg);

#endif
