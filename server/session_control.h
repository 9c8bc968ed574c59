/*
 * What the control API does to the sessions of one event loop: close the
 * sockets of a user, a session token or a socket id, or drop a user's
 * subscription to a key. Called on the loop's own thread (through
 * worker_broadcast), once per loop.
 */
#ifndef MYXID_SESSION_CONTROL_H
#define MYXID_SESSION_CONTROL_H

#include <stddef.h>

/* Which sessions a command is about: those matching every field set. */
struct control_target {
	const char *const *user_ids;  /* any of these users, or NULL */
	size_t n_user_ids;
	const char *token;         /* the session token itself, or NULL */
	const unsigned char *token_sha256;  /* its SHA-256 (32 bytes), or NULL */
	const char *socket_id;     /* Welcome's id, or NULL */
};

/* Close the matching sockets with code and reason (what the client sees);
 * returns how many. */
size_t session_control_disconnect(const struct control_target *t, int code,
				  const char *reason);

/* Drop the matching sessions' subscription to exchange/routing_key (each
 * gets Unsubscribed with "auto": true, as a revoked one); returns how
 * many. */
size_t session_control_unsubscribe(const struct control_target *t, const char *exchange,
				   const char *routing_key);

#endif
