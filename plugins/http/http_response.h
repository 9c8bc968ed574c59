/*
 * An incremental parser for one HTTP/1.x response, as the http plugin's
 * client reads it from an upstream: bytes go in as they arrive, in pieces
 * of any size, and out come the status, whether the connection may be
 * reused, and the body (Content-Length, chunked, or up to the close).
 *
 * Limits are the caller's: the head (status line and headers) and the body
 * are each capped, and a response beyond either is an error, so a hostile
 * or broken upstream costs at most max_head + max_body bytes. Pure code:
 * no I/O, no host services, so the unit tests link it directly.
 *
 * Errors are reported as static strings (never a copy of the upstream's
 * bytes, which might echo a token back).
 */
#ifndef MYXID_HTTP_RESPONSE_H
#define MYXID_HTTP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

enum hr_result {
	HR_MORE = 0,       /* all input used; the response is not complete */
	HR_COMPLETE = 1,   /* a whole response; *used says how much was read */
	HR_FAIL = -1       /* malformed or over a limit: see r->error */
};

enum hr_state {
	HRS_STATUS, HRS_HEADERS, HRS_BODY_LEN, HRS_CHUNK_SIZE, HRS_CHUNK_DATA,
	HRS_CHUNK_END, HRS_TRAILERS, HRS_BODY_EOF, HRS_DONE, HRS_FAILED
};

#define HR_LINE_MAX 8192

struct http_response {
	/* Set by http_response_init. */
	size_t max_head;           /* status line + headers, bytes */
	size_t max_body;           /* decoded body, bytes */

	/* The result, valid once HR_COMPLETE was returned. */
	int status;                /* 100..599 */
	bool keep_alive;           /* the connection may carry another request */
	char *body;                /* NUL-terminated; owned (scrubbed on free) */
	size_t body_len;
	const char *error;         /* why HR_FAIL: a static string */

	/* Parser state. */
	enum hr_state state;
	bool http10;
	bool conn_close;
	bool conn_keep_alive;
	bool chunked;
	bool has_length;
	bool no_body;              /* 1xx, 204, 304 */
	unsigned long long length; /* Content-Length, or what is left of it */
	unsigned long long chunk_left;
	size_t head_bytes;
	size_t body_cap;
	size_t line_len;
	char line[HR_LINE_MAX];
};

void http_response_init(struct http_response *r, size_t max_head,
			size_t max_body);

/*
 * Parse data[0..len). On HR_COMPLETE *used is the number of bytes that
 * belonged to the response (bytes after it are not the caller's to keep:
 * this client never pipelines, so they make the connection unusable).
 */
enum hr_result http_response_feed(struct http_response *r, const char *data,
				  size_t len, size_t *used);

/* The upstream closed the connection: HR_COMPLETE if the body ran to the
 * close, else HR_FAIL. */
enum hr_result http_response_eof(struct http_response *r);

/* Bytes of the response seen so far (0: the upstream sent nothing). */
bool http_response_started(const struct http_response *r);

/* Scrub and free the body; the struct may be initialised again. */
void http_response_clear(struct http_response *r);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
