/*
 * Presence across nodes: what this node tells the others, and what it
 * keeps of theirs. A message on the control exchange (broker_control.c):
 *
 *   {"presence": NODE, "changes": [[EXCHANGE, KEY, [JOINED], [LEFT]], ...]}
 *   {"presence": NODE, "sync": true, "changes": [[EXCHANGE, KEY, [USERS], []], ...]}
 *
 * JOINED and LEFT are users whose first subscription to the key on NODE
 * came, or whose last went, since NODE's previous message; a sync lists
 * every user NODE has and replaces what the others knew of it. A node
 * sends a sync when it sees a node it did not know (the newcomer learns
 * who is where) and after its own reconnect (messages may have been lost
 * meanwhile). A node that is no longer heard from (no hello for the
 * broker's NODE_TTL, nor any presence message) is dropped with its users.
 *
 * Home loop only, with presence->lock held (presence_remote takes it).
 */
#include "presence.h"
#include "presence_table.h"
#include "broker.h"
#include "event_frame.h"
#include "log.h"
#include "util.h"
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NODE_GRACE_MS 3500

static bool node_has(const struct pentry *e, uint16_t slot, size_t *at)
{
	for (size_t i = 0; i < e->n_nodes; i++)
		if (e->nodes[i] == slot) {
			*at = i;
			return true;
		}
	return false;
}

static void node_add(struct pentry *e, uint16_t slot)
{
	size_t at;

	if (node_has(e, slot, &at))
		return;
	if (e->n_nodes == e->cap_nodes) {
		e->cap_nodes = e->cap_nodes ? (uint16_t)(e->cap_nodes * 2) : 2;
		e->nodes = xrealloc(e->nodes, e->cap_nodes * sizeof(*e->nodes));
	}
	e->nodes[e->n_nodes++] = slot;
}

static bool node_remove(struct pentry *e, uint16_t slot)
{
	size_t at;

	if (!node_has(e, slot, &at))
		return false;
	e->nodes[at] = e->nodes[--e->n_nodes];
	return true;
}

void pcluster_forget_node(struct presence *p, uint16_t slot)
{
	for (size_t i = 0; i < p->n_buckets; i++)
		for (struct pkey *k = p->buckets[i]; k != NULL; k = k->next) {
			bool changed = false;

			for (size_t j = 0; j < k->n; j++)
				changed |= node_remove(&k->users[j], slot);
			if (changed)
				ptable_dirty(p, k);
		}
}

/* The slot of node, made when absent; -1 when the table is full. */
static int node_slot(struct presence *p, const char *node)
{
	int free_slot = -1;

	for (size_t i = 0; i < p->n_nodes; i++) {
		if (strcmp(p->nodes[i].name, node) == 0)
			return (int)i;
		if (free_slot < 0 && p->nodes[i].name[0] == '\0')
			free_slot = (int)i;
	}
	if (free_slot < 0) {
		if (p->n_nodes == PRESENCE_MAX_NODES)
			return -1;
		free_slot = (int)p->n_nodes++;
	}
	snprintf(p->nodes[free_slot].name, sizeof(p->nodes[free_slot].name), "%s", node);
	return free_slot;
}

void pcluster_tick(struct presence *p)
{
	struct broker *b = worker_broker(p->home);
	struct broker_stats st;
	uint64_t now = monotonic_ms();
	unsigned live = broker_live_nodes(b);

	/* A node joined (or this one came back): it needs everyone's users. */
	broker_get_stats(b, &st);
	if (live > p->live_nodes || st.reconnects != p->reconnects)
		p->sync_due = true;
	p->live_nodes = live;
	p->reconnects = st.reconnects;
	for (size_t i = 0; i < p->n_nodes; i++) {
		struct pnode *n = &p->nodes[i];

		if (n->name[0] == '\0' || broker_node_live(b, n->name) ||
		    now - n->heard_ms <= NODE_GRACE_MS)
			continue;
		log_notice("presence: node %s is gone: its users leave", n->name);
		pcluster_forget_node(p, (uint16_t)i);
		n->name[0] = '\0';
	}
	if (p->sync_due && broker_state(b) == BROKER_UP) {
		json_object *all = json_object_new_array();

		p->sync_due = false;
		for (size_t i = 0; i < p->n_buckets; i++)
			for (struct pkey *k = p->buckets[i]; k != NULL; k = k->next) {
				json_object *users = json_object_new_array(), *c;

				for (size_t j = 0; j < k->n; j++)
					if (k->users[j].announced)
						json_object_array_add(users,
							json_object_new_string(k->users[j].user));
				if (json_object_array_length(users) == 0) {
					json_object_put(users);
					continue;
				}
				c = json_object_new_array();
				json_object_array_add(c, json_object_new_string(k->name));
				json_object_array_add(c, json_object_new_string(k->key));
				json_object_array_add(c, users);
				json_object_array_add(c, json_object_new_array());
				json_object_array_add(all, c);
			}
		pcluster_send(p, all, true);
	}
}

void pcluster_send(struct presence *p, json_object *changes, bool sync)
{
	struct broker *b = worker_broker(p->home);
	json_object *msg = json_object_new_object();
	const char *body;
	size_t len;

	json_object_object_add(msg, "presence", json_object_new_string(broker_node_id(b)));
	if (sync)
		json_object_object_add(msg, "sync", json_object_new_boolean(true));
	json_object_object_add(msg, "changes", changes);
	body = json_object_to_json_string_length(msg, EVENT_FRAME_JSON_FLAGS, &len);
	if (broker_control_send(b, broker_control_exchange(b), "", NULL, NULL, body, len) != 0) {
		/* Lost: the others get everything with the next sync. */
		log_warn("presence: the broker took no update (%zu bytes); a full one "
			 "follows once it does", len);
		p->sync_due = true;
	}
	json_object_put(msg);
}

/* One [EXCHANGE, KEY, [JOINED], [LEFT]]; false when malformed. */
static bool merge_change(struct presence *p, uint16_t slot, json_object *c)
{
	json_object *ex, *key, *lists[2];
	struct pkey *k;

	if (!json_object_is_type(c, json_type_array) || json_object_array_length(c) != 4)
		return false;
	ex = json_object_array_get_idx(c, 0);
	key = json_object_array_get_idx(c, 1);
	lists[0] = json_object_array_get_idx(c, 2);
	lists[1] = json_object_array_get_idx(c, 3);
	if (!json_object_is_type(ex, json_type_string) ||
	    !json_object_is_type(key, json_type_string) ||
	    !json_object_is_type(lists[0], json_type_array) ||
	    !json_object_is_type(lists[1], json_type_array))
		return false;
	k = ptable_key(p, json_object_get_string(ex), json_object_get_string(key), true);
	for (int l = 0; l < 2; l++)
		for (size_t i = 0; i < json_object_array_length(lists[l]); i++) {
			json_object *u = json_object_array_get_idx(lists[l], i);
			struct pentry *e;

			if (!json_object_is_type(u, json_type_string))
				continue;
			e = ptable_entry(k, json_object_get_string(u), l == 0);
			if (e == NULL)
				continue;
			if (l == 0)
				node_add(e, slot);
			else
				node_remove(e, slot);
		}
	/* Also when nothing changed: a flush frees a key made for nothing. */
	ptable_dirty(p, k);
	return true;
}

void pcluster_merge(struct presence *p, const char *node, bool sync, json_object *changes)
{
	int slot = node_slot(p, node);
	size_t bad = 0;

	if (slot < 0) {
		log_warn("presence: more than %d nodes; %s is not counted", PRESENCE_MAX_NODES,
			 node);
		return;
	}
	p->nodes[slot].heard_ms = monotonic_ms();
	if (sync)
		pcluster_forget_node(p, (uint16_t)slot);
	for (size_t i = 0; i < json_object_array_length(changes); i++)
		bad += !merge_change(p, (uint16_t)slot, json_object_array_get_idx(changes, i));
	if (bad > 0)
		log_warn("presence: %zu malformed change(s) from node %s ignored", bad, node);
}

void presence_remote(struct presence *p, json_object *msg)
{
	json_object *node = NULL, *changes = NULL, *sync = NULL;
	struct broker *b = p->home ? worker_broker(p->home) : NULL;

	if (b == NULL)
		return;
	if (!json_object_object_get_ex(msg, "presence", &node) ||
	    !json_object_is_type(node, json_type_string) ||
	    !json_object_object_get_ex(msg, "changes", &changes) ||
	    !json_object_is_type(changes, json_type_array)) {
		log_warn("control exchange: a malformed presence message dropped");
		return;
	}
	/* The control exchange is a fanout: this node's own come back. */
	if (strcmp(json_object_get_string(node), broker_node_id(b)) == 0)
		return;
	json_object_object_get_ex(msg, "sync", &sync);
	pthread_mutex_lock(&p->lock);
	pcluster_merge(p, json_object_get_string(node), json_object_get_boolean(sync), changes);
	pthread_mutex_unlock(&p->lock);
}
