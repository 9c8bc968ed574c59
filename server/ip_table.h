/*
 * How many WebSockets each client address holds, for
 * max_connections_per_ip. One table for the whole daemon, shared by the
 * event loops (calls lock it; they come only at connect and close).
 */
#ifndef MYXID_IP_TABLE_H
#define MYXID_IP_TABLE_H

#include <stddef.h>

struct ip_table;

struct ip_table *ip_table_new(void);
void ip_table_free(struct ip_table **t);

/* Count one more socket for ip unless it already has limit (0: none).
 * Returns 1 if counted, 0 if over the limit. */
int ip_table_take(struct ip_table *t, const char *ip, size_t limit);

/* The socket of ip is gone. */
void ip_table_release(struct ip_table *t, const char *ip);

#endif
