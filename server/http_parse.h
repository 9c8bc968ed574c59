/*
 * A strict parser for one HTTP/1.1 request head (request line + headers),
 * used for the WebSocket upgrade and the small HTTP side (/healthz,
 * /publish). It works on a contiguous buffer and is called again when more
 * bytes arrive; it allocates nothing and points into the caller's buffer.
 */
#ifndef MYXID_HTTP_PARSE_H
#define MYXID_HTTP_PARSE_H

#include <stddef.h>

#define HTTP_MAX_HEADERS 64

struct http_str {
	const char *p;   /* into the caller's buffer, not NUL-terminated */
	size_t len;
};

struct http_header {
	struct http_str name;
	struct http_str value;  /* leading/trailing spaces and tabs trimmed */
};

struct http_request {
	struct http_str method;
	struct http_str target;     /* request-target as sent, e.g. "/a?b" */
	int version_minor;          /* HTTP/1.x */
	struct http_header headers[HTTP_MAX_HEADERS];
	size_t n_headers;
	size_t head_len;            /* bytes of the head, final CRLFCRLF included */
};

/*
 * Parse buf[0..len). Returns:
 *    1  a complete head; req is filled, req->head_len says where the body
 *       (or the first WebSocket frame) begins;
 *    0  incomplete: call again with more bytes (the caller enforces a size
 *       limit and a time limit);
 *   -1  malformed: *status is the HTTP status to answer (400, 431 for too
 *       many headers, 505 for a version other than HTTP/1.x) and *why a
 *       short static explanation.
 * Bare LF line endings are accepted; obsolete line folding is rejected.
 */
int http_parse_request(const char *buf, size_t len, struct http_request *req,
		       int *status, const char **why);

/* The first header named name (case-insensitive), or NULL. */
const struct http_header *http_find_header(const struct http_request *req,
					   const char *name);

/* Does header value contain token tok in its comma-separated list
 * (case-insensitive)? e.g. "keep-alive, Upgrade" has "upgrade". */
int http_has_token(const struct http_str *value, const char *tok);

/* Case-insensitive comparison of s with a NUL-terminated literal. */
int http_str_eq(const struct http_str *s, const char *lit);

#endif
