/*
 * The control API: what the application does to live connections, over
 * HTTP on the listening port with its own key (control_key), JSON in and
 * out (myxid-control(7) lists every status):
 *
 *   POST /control/disconnect   {WHO, "code": 4003, "reason": "..."}
 *   POST /control/unsubscribe  {WHO, "exchange": X, "routing_key": K}
 *   POST /control/subscribers  {"exchange": X, "routing_key": K}
 *   POST /control/keys         {"exchange": X}
 *   GET  /control/nodes
 *
 * WHO is one of "user_id", "user_ids" (a list), "session_token",
 * "session_token_sha256" (hex) or "socket_id" (Welcome's id). A command
 * runs on every event loop of this daemon and, with a broker, of every
 * node (through the control exchange, broker_control.c); the answers say
 * how many nodes were alive and how many answered within control_timeout.
 */
#ifndef MYXID_CONTROL_API_H
#define MYXID_CONTROL_API_H

#include <stdbool.h>
#include <stddef.h>

struct conn;
struct http_request;

/* A request under /control/ (head complete, avail bytes in buf): 0 while
 * its body is incomplete, 1 once answered or under way. */
int control_api_handle(struct conn *c, const struct http_request *req,
		       const char *buf, size_t avail);

/*
 * With a broker, a command goes to every node through the control
 * exchange, and each answers the node that asked. This takes what the
 * broker thread received, on loop w: a command to run here (reply false;
 * answered to reply_to with corr when both are set), or an answer to one
 * of this node's commands (reply true).
 */
struct worker;
void control_api_remote(struct worker *w, bool reply, const char *reply_to,
			const char *corr, const char *body, size_t len);

#endif
