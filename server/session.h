/*
 * The Myxi protocol on one WebSocket: Welcome, the actions a client sends
 * (Subscribe, Unsubscribe, ListSubscriptions, Ping, Authenticate,
 * Deauthenticate) and the events sent back, byte-compatible with Myxi.
 *
 * Actions run strictly in the order they arrive. One that waits for a
 * plugin holds the ones behind it in a bounded queue, so a client that sends
 * Authenticate and Subscribe back to back gets them handled in that order.
 */
#ifndef MYXID_SESSION_H
#define MYXID_SESSION_H

#include <stddef.h>
#include <stdint.h>

struct conn;
struct shared_frame;

/* A session on c, just upgraded: sends Welcome and installs the session's
 * handler on c, so that conn.c hands it c's messages and its end. The
 * caller stores the result in c->session. */
struct session *session_new(struct conn *c);

/* Unsubscribe everything, cancel pending plugin requests, free. */
void session_free(struct session **s);

/* The 16-hex-digit id sent in Welcome. */
const char *session_id(const struct session *s);

/* A complete data message from the client. */
void session_on_message(struct session *s, const uint8_t *data, size_t len);

/* Router callback: deliver a published frame. */
void session_deliver(void *session, struct shared_frame *f);

#endif
