/*
 * The presence table (private to presence.c and presence_cluster.c): per
 * (exchange, key), the users present, who knows about them, and what the
 * watchers and the other nodes were last told. Everything here is under
 * presence->lock.
 */
#ifndef MYXID_PRESENCE_TABLE_H
#define MYXID_PRESENCE_TABLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

struct event;
struct worker;

struct pentry {
	char *user;
	int local;               /* this node's subscriptions of the user */
	bool announced;          /* the other nodes were told local > 0 */
	bool shown;              /* the watchers were told the user is here */
	uint16_t n_nodes, cap_nodes;
	uint16_t *nodes;         /* slots of other nodes that have the user */
};

struct pkey {
	struct pkey *next;       /* hash chain */
	struct pkey *dirty_next; /* on presence->dirty while dirty */
	bool dirty;
	bool new_watcher;        /* owes its watchers the current users */
	size_t watchers;         /* watching subscriptions, every loop */
	struct pentry *users;    /* sorted by user */
	size_t n, cap;
	const char *key;         /* into name, after the exchange's NUL */
	char name[];             /* "exchange\0key" */
};

struct pnode {
	char name[256];          /* its queue, "" for a free slot */
	uint64_t heard_ms;
};

#define PRESENCE_MAX_NODES 256

struct presence {
	pthread_mutex_t lock;
	struct pkey **buckets;
	size_t n_buckets, n_keys;
	struct pkey *dirty;
	struct pnode nodes[PRESENCE_MAX_NODES];
	size_t n_nodes;          /* slots in use at most this far */

	struct worker *home;
	struct event *flush_ev, *tick_ev;
	bool armed;
	uint64_t last_flush_ms;
	unsigned live_nodes;     /* broker_live_nodes() at the last tick */
	uint64_t reconnects;     /* the broker's, at the last tick */
	bool sync_due;           /* send every announced user (a new node) */
};

/* The key's record, made when make is true (else NULL if absent). */
struct pkey *ptable_key(struct presence *p, const char *exchange, const char *key,
			bool make);
/* The user's entry in k, made when make is true. */
struct pentry *ptable_entry(struct pkey *k, const char *user, bool make);
/* Flush k with the next timer run. */
void ptable_dirty(struct presence *p, struct pkey *k);
/* Arm the flush timer (rate-limited to presence_interval). */
void ptable_schedule(struct presence *p);

/* presence_cluster.c, on the home loop, lock held. */
void pcluster_tick(struct presence *p);
/* Apply a node's changes ([[exchange, key, [joined], [left]], ...]); a
 * sync replaces everything known of the node. */
void pcluster_merge(struct presence *p, const char *node, bool sync,
		    json_object *changes);
/* Tell the other nodes: changes as above (taken). */
void pcluster_send(struct presence *p, json_object *changes, bool sync);
/* Forget that node slot has users (it is gone, or syncing). */
void pcluster_forget_node(struct presence *p, uint16_t slot);

#endif
