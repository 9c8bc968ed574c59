/*
 * SSE request parameters; see sse_query.h.
 */
#include "sse_query.h"
#include "http_parse.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* Positions are JSON integers below 2^53 (history.h). */
#define POSITION_MAX ((1ULL << 53) - 1)
/* More than any history keeps (history_max_replay bounds it further). */
#define HISTORY_ASK_MAX 1000000

/* application/x-www-form-urlencoded value -> malloc'd string; NULL for a
 * bad escape or a NUL byte (which could not reach a plugin intact). */
static char *decode(const char *p, size_t len)
{
	char *out = xmalloc(len + 1), *o = out;

	for (size_t i = 0; i < len; i++) {
		if (p[i] == '+') {
			*o++ = ' ';
		} else if (p[i] == '%') {
			int hi = i + 2 < len ? hex_digit(p[i + 1]) : -1;
			int lo = i + 2 < len ? hex_digit(p[i + 2]) : -1;

			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				free(out);
				return NULL;
			}
			*o++ = (char)(hi * 16 + lo);
			i += 2;
		} else {
			*o++ = p[i];
		}
	}
	*o = '\0';
	return out;
}

bool sse_epoch_ok(const char *epoch)
{
	if (*epoch == '\0')
		return false;
	for (const unsigned char *p = (const unsigned char *)epoch; *p; p++)
		if (*p <= ' ' || *p == ',' || *p == '/' || *p == 0x7f)
			return false;
	return true;
}

/* The n-th comma-separated item of list (borrowed), or NULL past the end. */
static const char *item(const char *list, size_t n, size_t *len)
{
	const char *p = list;

	for (size_t i = 0; i < n; i++) {
		p = strchr(p, ',');
		if (p == NULL)
			return NULL;
		p++;
	}
	*len = strcspn(p, ",");
	return p;
}

static size_t count_items(const char *list)
{
	size_t n = 1;

	for (const char *p = list; *p; p++)
		n += *p == ',';
	return n;
}

static bool parse_uint(const char *p, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 16)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

/* "EPOCH/POSITION" or "" into sub. */
static const char *set_since(struct sse_sub *sub, const char *p, size_t len)
{
	const char *slash = memchr(p, '/', len);
	uint64_t off;

	if (len == 0)
		return NULL;
	if (slash == NULL || slash == p ||
	    !parse_uint(slash + 1, len - (size_t)(slash + 1 - p), POSITION_MAX, &off))
		return "bad event id: each item is EPOCH/POSITION or empty";
	sub->since = true;
	sub->since_epoch = xstrndup(p, (size_t)(slash - p));
	sub->since_offset = off;
	if (!sse_epoch_ok(sub->since_epoch))
		return "bad event id: bad epoch";
	return NULL;
}

static const char *set_history(struct sse_sub *sub, const char *p, size_t len)
{
	uint64_t n;

	if (len == 0)
		return NULL;
	if (!parse_uint(p, len, HISTORY_ASK_MAX, &n))
		return "bad history: each item is a count or empty";
	sub->history = (unsigned)n;
	return NULL;
}

static const char *add_sub(struct sse_query *q, char *v, size_t max_subs)
{
	char *colon = strchr(v, ':');
	struct sse_sub *sub;

	if (colon == NULL || colon == v)
		return "bad subscribe: EXCHANGE:ROUTING_KEY";
	if (q->n_subs >= max_subs)
		return "too many subscribe parameters (max_subscriptions)";
	q->subs = xrealloc(q->subs, (q->n_subs + 1) * sizeof(*q->subs));
	sub = &q->subs[q->n_subs++];
	memset(sub, 0, sizeof(*sub));
	*colon = '\0';
	sub->exchange = xstrdup(v);
	sub->routing_key = xstrdup(colon + 1);
	return NULL;
}

/* A positional list (event id, history) applied to the subscriptions. */
static const char *apply_list(struct sse_query *q, const char *list,
			      const char *(*set)(struct sse_sub *, const char *, size_t),
			      const char *what)
{
	size_t len;
	const char *why;

	if (list == NULL)
		return NULL;
	if (count_items(list) != q->n_subs)
		return what;
	for (size_t i = 0; i < q->n_subs; i++) {
		const char *p = item(list, i, &len);

		if ((why = set(&q->subs[i], p, len)) != NULL)
			return why;
	}
	return NULL;
}

const char *sse_query_parse(const struct http_request *req, size_t max_subs,
			    struct sse_query *q)
{
	const char *p = memchr(req->target.p, '?', req->target.len);
	const char *end = req->target.p + req->target.len, *why = NULL;
	const struct http_header *h = http_find_header(req, "Last-Event-ID");
	char *last_id = NULL, *history = NULL;

	memset(q, 0, sizeof(*q));
	for (p = p ? p + 1 : end; p < end && why == NULL; ) {
		const char *amp = memchr(p, '&', (size_t)(end - p)), *eq;
		const char *stop = amp ? amp : end;
		char *v;

		eq = memchr(p, '=', (size_t)(stop - p));
		if (eq == NULL) {
			p = stop + 1;
			continue;
		}
		v = decode(eq + 1, (size_t)(stop - eq - 1));
		if (v == NULL) {
			why = "bad percent-encoding in the query";
			break;
		}
#define NAME_IS(lit) ((size_t)(eq - p) == sizeof(lit) - 1 && memcmp(p, lit, sizeof(lit) - 1) == 0)
		if (NAME_IS("subscribe")) {
			why = add_sub(q, v, max_subs);
			free(v);
		} else if (NAME_IS("token")) {
			free(q->token);
			q->token = v;
		} else if (NAME_IS("last_event_id")) {
			free(last_id);
			last_id = v;
		} else if (NAME_IS("history")) {
			free(history);
			history = v;
		} else {
			free(v);      /* others are the application's (cache busters) */
		}
#undef NAME_IS
		p = stop + 1;
	}
	if (why == NULL && h != NULL) {
		free(last_id);
		last_id = xstrndup(h->value.p, h->value.len);
	}
	if (why == NULL && last_id != NULL && *last_id == '\0') {
		free(last_id);          /* EventSource sends "" before any id */
		last_id = NULL;
	}
	if (why == NULL)
		why = apply_list(q, last_id, set_since,
				 "bad event id: one item per subscribe parameter");
	if (why == NULL)
		why = apply_list(q, history, set_history,
				 "bad history: one item per subscribe parameter");
	free(last_id);
	free(history);
	if (why != NULL)
		sse_query_free(q);
	return why;
}

void sse_query_free(struct sse_query *q)
{
	for (size_t i = 0; i < q->n_subs; i++) {
		free(q->subs[i].exchange);
		free(q->subs[i].routing_key);
		free(q->subs[i].since_epoch);
	}
	free(q->subs);
	free(q->token);
	memset(q, 0, sizeof(*q));
}

char *sse_cookie(const struct http_request *req, const char *name)
{
	size_t nlen = strlen(name);

	/* RFC 6265 5.4: "name=value" pairs separated by "; ". */
	for (size_t i = 0; i < req->n_headers; i++) {
		const struct http_header *h = &req->headers[i];
		const char *p = h->value.p, *end = p + h->value.len;

		if (!http_str_eq(&h->name, "Cookie"))
			continue;
		while (p < end) {
			const char *semi = memchr(p, ';', (size_t)(end - p));
			const char *stop = semi ? semi : end;

			while (p < stop && (*p == ' ' || *p == '\t'))
				p++;
			if ((size_t)(stop - p) > nlen && memcmp(p, name, nlen) == 0 &&
			    p[nlen] == '=') {
				const char *v = p + nlen + 1;
				size_t vlen = (size_t)(stop - v);

				if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
					v++;
					vlen -= 2;
				}
				return memchr(v, '\0', vlen) ? NULL : xstrndup(v, vlen);
			}
			p = stop + 1;
		}
	}
	return NULL;
}
