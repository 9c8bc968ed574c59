/*
 * Per-address socket counts; see ip_table.h. A chained hash of address
 * strings; an address whose count drops to zero is removed, so the table
 * holds only addresses with open sockets.
 */
#include "ip_table.h"
#include "util.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define IP_BUCKETS 4096

struct ip_entry {
	struct ip_entry *next;
	size_t count;
	char ip[];
};

struct ip_table {
	pthread_mutex_t lock;
	struct ip_entry *buckets[IP_BUCKETS];
	uint64_t seed;
};

static struct ip_entry **slot(struct ip_table *t, const char *ip)
{
	uint64_t h = t->seed ^ 0xcbf29ce484222325ull;
	struct ip_entry **pp;

	for (const char *p = ip; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
	for (pp = &t->buckets[h % IP_BUCKETS]; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->ip, ip) == 0)
			break;
	return pp;
}

struct ip_table *ip_table_new(void)
{
	struct ip_table *t = xcalloc(1, sizeof(*t));

	t->seed = random_u64();
	pthread_mutex_init(&t->lock, NULL);
	return t;
}

void ip_table_free(struct ip_table **tp)
{
	struct ip_table *t = *tp;

	if (t == NULL)
		return;
	for (size_t i = 0; i < IP_BUCKETS; i++)
		while (t->buckets[i]) {
			struct ip_entry *e = t->buckets[i];
			t->buckets[i] = e->next;
			free(e);
		}
	pthread_mutex_destroy(&t->lock);
	free(t);
	*tp = NULL;
}

int ip_table_take(struct ip_table *t, const char *ip, size_t limit)
{
	struct ip_entry **pp;
	int ok = 1;

	pthread_mutex_lock(&t->lock);
	pp = slot(t, ip);
	if (*pp == NULL) {
		size_t len = strlen(ip);
		*pp = xcalloc(1, sizeof(**pp) + len + 1);
		memcpy((*pp)->ip, ip, len + 1);
	}
	if (limit != 0 && (*pp)->count >= limit)
		ok = 0;
	else
		(*pp)->count++;
	if ((*pp)->count == 0) {
		struct ip_entry *e = *pp;
		*pp = e->next;
		free(e);
	}
	pthread_mutex_unlock(&t->lock);
	return ok;
}

void ip_table_release(struct ip_table *t, const char *ip)
{
	struct ip_entry **pp, *e;

	pthread_mutex_lock(&t->lock);
	pp = slot(t, ip);
	e = *pp;
	if (e != NULL && --e->count == 0) {
		*pp = e->next;
		free(e);
	}
	pthread_mutex_unlock(&t->lock);
}
