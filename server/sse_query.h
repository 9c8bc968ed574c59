/*
 * What an SSE request asks for: GET sse_path?token=T&subscribe=EXCHANGE:KEY
 * (repeated) [&last_event_id=ID] [&history=N,...], plus the Last-Event-ID
 * header a reconnecting EventSource sends (it wins over the parameter).
 *
 * An event id lists, in the order of the subscribe parameters, where each
 * subscription stands: "EPOCH/POSITION" items joined by ",", an item
 * empty for a subscription without history. history lists the same way
 * how many past events a subscription wants first (a late joiner).
 */
#ifndef MYXID_SSE_QUERY_H
#define MYXID_SSE_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_request;

struct sse_sub {
	char *exchange;
	char *routing_key;
	bool since;                /* resume after since_epoch/since_offset */
	char *since_epoch;
	uint64_t since_offset;
	unsigned history;          /* the last N events first, or 0 */
};

struct sse_query {
	char *token;               /* NULL: none given */
	struct sse_sub *subs;
	size_t n_subs;
};

/*
 * Parse req's target and headers into q (owned by q: sse_query_free()).
 * max_subs bounds the subscribe parameters. Returns NULL, or a short
 * message saying what is wrong (the request gets 400).
 */
const char *sse_query_parse(const struct http_request *req, size_t max_subs,
			    struct sse_query *q);

void sse_query_free(struct sse_query *q);

/* The value of cookie name in req's Cookie headers (malloc'd, surrounding
 * quotes removed), or NULL. */
char *sse_cookie(const struct http_request *req, const char *name);

/* Can epoch stand in an event id (no ",", "/", spaces or controls)? */
bool sse_epoch_ok(const char *epoch);

#endif
