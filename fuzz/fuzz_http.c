/*
 * Fuzz target: the HTTP request-head parser and what the daemon does with a
 * parsed head before any plugin sees it (upgrade detection, the WebSocket
 * handshake check, the Origin match, X-Forwarded-For, an SSE request's
 * query and Last-Event-ID).
 *
 * Beyond "no crash", it checks the parser's contract: every string points
 * inside the head; a complete head parses the same when more bytes follow;
 * a prefix of a complete head is "incomplete", never "malformed" (the
 * daemon calls the parser again as bytes arrive, so an early -1 would
 * reject a valid request that arrived in pieces).
 */
#include "fuzz_check.h"
#include "access_rules.h"
#include "config.h"
#include "http_parse.h"
#include "sse_query.h"
#include "ws_handshake.h"

#include <string.h>

static void check_str(const struct http_str *s, const char *buf, size_t head_len)
{
	FUZZ_CHECK(s->len <= head_len);
	if (s->len > 0)
		FUZZ_CHECK(s->p >= buf && s->p + s->len <= buf + head_len);
}

static int parse(const char *buf, size_t len, struct http_request *req)
{
	int status = 0;
	const char *why = NULL;
	int r = http_parse_request(buf, len, req, &status, &why);

	FUZZ_CHECK(r == -1 || r == 0 || r == 1);
	if (r == -1)
		FUZZ_CHECK(why != NULL &&
			   (status == 400 || status == 431 || status == 505));
	return r;
}

/* Parse the first len bytes from their own exact-size buffer. */
static int parse_prefix(const char *buf, size_t len, size_t *head_len)
{
	struct http_request req;
	char *copy = (char *)fuzz_dup((const uint8_t *)buf, len);
	int r = parse(copy, len, &req);

	*head_len = r == 1 ? req.head_len : 0;
	free(copy);
	return r;
}

/* What sse_query_parse() promises: at most max subscriptions, each with
 * an exchange and a key, a since only with an epoch fit for an id. */
static void use_sse_query(const struct http_request *req)
{
	struct sse_query q;

	if (sse_query_parse(req, 4, &q) != NULL) {
		FUZZ_CHECK(q.subs == NULL && q.n_subs == 0 && q.token == NULL);
		return;
	}
	FUZZ_CHECK(q.n_subs <= 4);
	for (size_t i = 0; i < q.n_subs; i++) {
		FUZZ_CHECK(q.subs[i].exchange[0] != '\0' && q.subs[i].routing_key != NULL);
		if (q.subs[i].since)
			FUZZ_CHECK(sse_epoch_ok(q.subs[i].since_epoch) &&
				   q.subs[i].since_offset < (1ULL << 53));
	}
	sse_query_free(&q);
}

static void use_head(const struct http_request *req)
{
	static char pattern_a[] = "https://*.example.com", pattern_b[] = "http://localhost:*";
	static char *patterns[] = { pattern_a, pattern_b };
	static char cidr_a[] = "127.0.0.0/8", cidr_b[] = "::1";
	static char *cidrs[] = { cidr_a, cidr_b };
	const struct conf_strlist origins = { patterns, 2 };
	const struct conf_strlist proxies = { cidrs, 2 };
	const struct http_header *h;
	char accept[WS_ACCEPT_LEN + 1], client[64];
	const char *why = NULL;
	int status;

	if (ws_is_upgrade(req)) {
		status = ws_handshake_check(req, accept, &why);
		if (status == 0)
			FUZZ_CHECK(strlen(accept) == WS_ACCEPT_LEN);
		else
			FUZZ_CHECK(why != NULL && (status == 400 || status == 405 ||
						   status == 426));
	}
	h = http_find_header(req, "origin");
	if (h != NULL)
		(void)origin_allowed(&origins, h->value.p, h->value.len);
	h = http_find_header(req, "x-forwarded-for");
	if (h != NULL && forwarded_client(&proxies, h->value.p, h->value.len,
					  client, sizeof client))
		FUZZ_CHECK(memchr(client, '\0', sizeof client) != NULL);
	h = http_find_header(req, "connection");
	if (h != NULL)
		(void)http_has_token(&h->value, "upgrade");
	use_sse_query(req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = (char *)fuzz_dup(data, size);
	struct http_request req;
	size_t head_len = 0, split = 0, got;
	int r;

	memset(&req, 0, sizeof req);
	r = parse(buf, size, &req);
	if (r == 1) {
		FUZZ_CHECK(req.head_len > 0 && req.head_len <= size);
		FUZZ_CHECK(req.n_headers <= HTTP_MAX_HEADERS);
		FUZZ_CHECK(req.method.len > 0);
		check_str(&req.method, buf, req.head_len);
		check_str(&req.target, buf, req.head_len);
		for (size_t i = 0; i < req.n_headers; i++) {
			check_str(&req.headers[i].name, buf, req.head_len);
			check_str(&req.headers[i].value, buf, req.head_len);
		}
		use_head(&req);
		head_len = req.head_len;

		/* The head alone parses the same. */
		FUZZ_CHECK(parse_prefix(buf, head_len, &got) == 1 && got == head_len);
		/* One byte short of it is incomplete. */
		FUZZ_CHECK(parse_prefix(buf, head_len - 1, &got) == 0);
	}

	/* A prefix at a point chosen by the input itself. */
	for (size_t i = 0; i < size; i++)
		split = split * 31 + data[i];
	if (size > 0) {
		split %= size;
		r = parse_prefix(buf, split, &got);
		if (head_len > 0 && split < head_len)
			FUZZ_CHECK(r == 0);
		if (r == 1)
			FUZZ_CHECK(head_len == got);
	}
	free(buf);
	return 0;
}
