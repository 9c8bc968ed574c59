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
 * runs on every event loop of this daemon; the answers say how many nodes
 * were asked and answered.
 */
#ifndef MYXID_CONTROL_API_H
#define MYXID_CONTROL_API_H

#include <stddef.h>

struct conn;
struct http_request;

/* A request under /control/ (head complete, avail bytes in buf): 0 while
 * its body is incomplete, 1 once answered or under way. */
int control_api_handle(struct conn *c, const struct http_request *req,
		       const char *buf, size_t avail);

#endif
