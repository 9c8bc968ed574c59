/*
 * The plain-HTTP side of the listening port: GET /healthz and
 * POST /publish. Every answer is JSON and closes the connection.
 */
#ifndef MYXID_HTTP_API_H
#define MYXID_HTTP_API_H

#include <stddef.h>

struct conn;
struct http_request;

/* Largest POST /publish body. */
#define HTTP_API_MAX_BODY (1024 * 1024)

/*
 * Handle a request whose head is complete; avail bytes (head included) are
 * in buf. Returns 0 if the body is not complete yet (call again with more),
 * 1 once an answer was queued.
 */
int http_api_handle(struct conn *c, const struct http_request *req,
		    const char *buf, size_t avail);


#endif
