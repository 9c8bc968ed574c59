/*
 * A worker's listening sockets (SO_REUSEPORT: the kernel spreads
 * connections over the workers), the connections accepted on them, and the
 * SIGTERM drain that closes those a slice at a time. It sits above conn and
 * the protocols, so the worker below it never names a connection.
 */
#ifndef MYXID_LISTENER_H
#define MYXID_LISTENER_H

#include <stddef.h>

struct worker;
struct listener;
struct conn_handler;

/* A listener for w; every connection it accepts starts with handler
 * (borrowed, a static table). Nothing listens until listener_bind(). */
struct listener *listener_new(struct worker *w, const struct conn_handler *handler);

/* Bind the listen directives of w's configuration. 0, or -1 with
 * "file:line: problem". */
int listener_bind(struct listener *ls, char *err, size_t err_size);

/* Thread-safe: stop accepting and close the connections over drain_time;
 * w's loop ends when the last one is gone. */
void listener_post_drain(struct listener *ls);

/* Free what is still open, then ls (NULL is fine); *ls becomes NULL. Call
 * before worker_free(), on a loop that no longer runs. */
void listener_free(struct listener **ls);

#endif
