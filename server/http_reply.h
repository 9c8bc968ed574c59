/*
 * What the plain-HTTP endpoints (http_api.c, control_api.c) share: JSON
 * answers, the bearer-key check, the JSON body of a request, and answers
 * that wait for the other event loops while the client may go away.
 */
#ifndef MYXID_HTTP_REPLY_H
#define MYXID_HTTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>
#include <myxid/plugin.h>       /* MYXID_PRINTF */

struct conn;
struct http_request;

/* Send o (consumed) as the JSON body; extra_headers as conn_http_reply. */
void http_reply_json(struct conn *c, int status, const char *extra_headers, json_object *o);

/* {"error": printf(fmt, ...)} with status. */
void http_reply_error(struct conn *c, int status, const char *extra_headers,
		      const char *fmt, ...) MYXID_PRINTF(4, 5);

/* Does the request carry "Authorization: Bearer <key>"? (constant time) */
bool http_bearer_ok(const struct http_request *req, const char *key);

/*
 * The request's JSON body, at most max bytes: returns 0 while it is not
 * all there (call again), -1 once an error was answered (no
 * Content-Length, too large, not JSON), 1 with *doc (the caller's).
 */
int http_json_body(struct conn *c, const struct http_request *req, const char *buf,
		   size_t avail, size_t max, json_object **doc);

/* An answer waiting for the other loops: the connection stops reading
 * meanwhile; http_wait_end() gives it back (NULL if it went away) and
 * frees the wait. */
struct http_wait;
struct http_wait *http_wait_begin(struct conn *c);
struct conn *http_wait_end(struct http_wait *wait);

/* c is being freed: its waiting answer, if any, has nobody to go to. */
void http_wait_forget(struct conn *c);

#endif
