/*
 * Shared pieces of the plain-HTTP endpoints; see http_reply.h.
 */
#include "http_reply.h"
#include "conn.h"
#include "http_parse.h"
#include "json_input.h"
#include "reply.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

/* Deeper JSON than this is refused (json-c recurses while parsing). */
#define BODY_MAX_DEPTH 64

void http_reply_json(struct conn *c, int status, const char *extra_headers, json_object *o)
{
	size_t len;
	const char *s = json_object_to_json_string_length(o, REPLY_JSON_FLAGS, &len);
	char *body = xmalloc(len + 1);

	/* A trailing newline keeps curl output readable. */
	memcpy(body, s, len);
	body[len] = '\n';
	conn_http_reply(c, status, "application/json", extra_headers, body, len + 1);
	free(body);
	json_object_put(o);
}

void http_reply_error(struct conn *c, int status, const char *extra_headers,
		      const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	json_object *o = json_object_new_object();

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_object_object_add(o, "error", json_object_new_string(msg));
	http_reply_json(c, status, extra_headers, o);
}

bool http_bearer_ok(const struct http_request *req, const char *key)
{
	const struct http_header *h = http_find_header(req, "Authorization");

	if (key == NULL || h == NULL || h->value.len < 7 ||
	    strncasecmp(h->value.p, "Bearer ", 7) != 0)
		return false;
	return secret_equal(h->value.p + 7, h->value.len - 7, key, strlen(key));
}

/* Content-Length as a number; -1 if absent, -2 if malformed. */
static long long content_length(const struct http_request *req)
{
	const struct http_header *h = http_find_header(req, "Content-Length");
	long long n = 0;

	if (h == NULL)
		return -1;
	if (h->value.len == 0 || h->value.len > 12)
		return -2;
	for (size_t i = 0; i < h->value.len; i++) {
		if (h->value.p[i] < '0' || h->value.p[i] > '9')
			return -2;
		n = n * 10 + (h->value.p[i] - '0');
	}
	return n;
}

int http_json_body(struct conn *c, const struct http_request *req, const char *buf,
		   size_t avail, size_t max, json_object **doc)
{
	long long len;

	*doc = NULL;
	if (http_find_header(req, "Transfer-Encoding") != NULL) {
		http_reply_error(c, 411, NULL, "send the body with a Content-Length");
		return -1;
	}
	len = content_length(req);
	if (len < 0) {
		http_reply_error(c, len == -1 ? 411 : 400, NULL,
				 len == -1 ? "Content-Length is required" :
				 "Content-Length is not a number");
		return -1;
	}
	if ((unsigned long long)len > max) {
		http_reply_error(c, 413, NULL, "body larger than %zu bytes", max);
		return -1;
	}
	if (avail - req->head_len < (size_t)len)
		return 0;
	*doc = json_input_parse(buf + req->head_len, (size_t)len, BODY_MAX_DEPTH);
	if (*doc == NULL) {
		http_reply_error(c, 400, NULL, "body is not valid JSON");
		return -1;
	}
	return 1;
}

struct http_wait {
	struct conn *c;            /* NULL once the connection is gone */
};

struct http_wait *http_wait_begin(struct conn *c)
{
	c->http_wait = xcalloc(1, sizeof(*c->http_wait));
	c->http_wait->c = c;
	bufferevent_disable(c->bev, EV_READ);
	evtimer_del(c->timer);
	return c->http_wait;
}

struct conn *http_wait_end(struct http_wait *wait)
{
	struct conn *c = wait->c;

	free(wait);
	if (c == NULL)
		return NULL;
	c->http_wait = NULL;
	/* Read again, so the client's close is seen at once. */
	bufferevent_enable(c->bev, EV_READ);
	return c;
}

void http_wait_forget(struct conn *c)
{
	if (c->http_wait != NULL)
		c->http_wait->c = NULL;
}
