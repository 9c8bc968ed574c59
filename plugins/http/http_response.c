/*
 * The HTTP/1.x response parser: see http_response.h.
 *
 * The head is read line by line (a bare LF is accepted as well as CRLF);
 * the body by length, by chunks, or to the close. What makes a response
 * unusable rather than merely unwelcome:
 *   - a status line that is not "HTTP/1.0" or "HTTP/1.1", a 3-digit code
 *     from 100 to 599 and a space or end of line;
 *   - a head over max_head, a line over HR_LINE_MAX, a header without ':';
 *   - Content-Length that is not decimal, or given twice differently, or
 *     together with Transfer-Encoding (the classic request smuggling
 *     ambiguity: better refused than guessed);
 *   - a Transfer-Encoding other than chunked, a bad chunk size line;
 *   - a body over max_body (refused as soon as a length says so).
 * Interim 1xx responses are skipped (this client sends no Expect, but an
 * upstream may still send 100 Continue).
 */
#define _POSIX_C_SOURCE 200809L

#include "http_response.h"
#include "plugin_util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static enum hr_result fail(struct http_response *r, const char *why)
{
	r->state = HRS_FAILED;
	r->error = why;
	return HR_FAIL;
}

void http_response_init(struct http_response *r, size_t max_head,
			size_t max_body)
{
	memset(r, 0, sizeof(*r));
	r->max_head = max_head;
	r->max_body = max_body;
	r->state = HRS_STATUS;
}

void http_response_clear(struct http_response *r)
{
	size_t max_head = r->max_head, max_body = r->max_body;

	if (r->body != NULL) {
		pu_scrub(r->body, r->body_cap);
		free(r->body);
	}
	pu_scrub(r->line, sizeof(r->line));
	http_response_init(r, max_head, max_body);
}

bool http_response_started(const struct http_response *r)
{
	return r->head_bytes > 0;
}

/* Make room for n more body bytes (plus the NUL). */
static int body_reserve(struct http_response *r, size_t n)
{
	size_t want = r->body_len + n + 1, cap;
	char *p;

	if (r->body_len + n > r->max_body)
		return -1;
	if (want <= r->body_cap)
		return 0;
	cap = r->body_cap ? r->body_cap : 1024;
	while (cap < want)
		cap *= 2;
	p = malloc(cap);
	if (p == NULL)
		return -1;
	if (r->body != NULL) {
		memcpy(p, r->body, r->body_len);
		pu_scrub(r->body, r->body_cap);
		free(r->body);
	}
	r->body = p;
	r->body_cap = cap;
	return 0;
}

static enum hr_result body_add(struct http_response *r, const char *data,
			       size_t n)
{
	if (r->body_len + n > r->max_body)
		return fail(r, "body over the size limit (max_body)");
	if (body_reserve(r, n) < 0)
		return fail(r, "out of memory for the body");
	memcpy(r->body + r->body_len, data, n);
	r->body_len += n;
	r->body[r->body_len] = '\0';
	return HR_MORE;
}

static const char *trim(char *s, size_t *len)
{
	size_t n = strlen(s);

	while (*s == ' ' || *s == '\t') {
		s++;
		n--;
	}
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	if (len != NULL)
		*len = n;
	return s;
}

static enum hr_result parse_status(struct http_response *r, char *line)
{
	int code;

	if (strncmp(line, "HTTP/1.", 7) != 0 || (line[7] != '0' && line[7] != '1') ||
	    line[8] != ' ')
		return fail(r, "not an HTTP/1.x status line");
	r->http10 = line[7] == '0';
	if (line[9] < '1' || line[9] > '5' || line[10] < '0' || line[10] > '9' ||
	    line[11] < '0' || line[11] > '9' ||
	    (line[12] != ' ' && line[12] != '\0'))
		return fail(r, "bad status code");
	code = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
	r->status = code;
	r->no_body = code < 200 || code == 204 || code == 304;
	r->state = HRS_HEADERS;
	return HR_MORE;
}

/* "a, b ,c": does the comma-separated list hold token (any case)? Sets
 * *last to whether it is the last element. */
static bool list_has(const char *value, const char *token, bool *last)
{
	size_t tlen = strlen(token);
	bool found = false;
	const char *p = value;

	if (last != NULL)
		*last = false;
	while (*p != '\0') {
		const char *start, *end;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		start = p;
		while (*p != '\0' && *p != ',')
			p++;
		end = p;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (end == start)
			continue;
		if ((size_t)(end - start) == tlen &&
		    strncasecmp(start, token, tlen) == 0) {
			found = true;
			if (last != NULL)
				*last = true;
		} else if (last != NULL) {
			*last = false;
		}
	}
	return found;
}

static enum hr_result parse_length(struct http_response *r, const char *v)
{
	unsigned long long n = 0;

	if (*v == '\0')
		return fail(r, "empty Content-Length");
	for (const char *p = v; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return fail(r, "Content-Length is not a number");
		n = n * 10 + (unsigned long long)(*p - '0');
		if (n > (1ull << 50))
			return fail(r, "Content-Length too large");
	}
	if (r->has_length && r->length != n)
		return fail(r, "two different Content-Length headers");
	r->has_length = true;
	r->length = n;
	return HR_MORE;
}

static enum hr_result parse_header(struct http_response *r, char *line)
{
	char *colon = strchr(line, ':');
	const char *value;
	bool last;

	if (colon == NULL || colon == line || line[0] == ' ' || line[0] == '\t')
		return fail(r, "malformed header line");
	*colon = '\0';
	value = trim(colon + 1, NULL);
	if (strcasecmp(line, "Content-Length") == 0)
		return parse_length(r, value);
	if (strcasecmp(line, "Transfer-Encoding") == 0) {
		bool chunked = list_has(value, "chunked", &last);

		if (!chunked || !last)
			return fail(r, "unsupported Transfer-Encoding");
		r->chunked = true;
		return HR_MORE;
	}
	if (strcasecmp(line, "Connection") == 0) {
		if (list_has(value, "close", NULL))
			r->conn_close = true;
		if (list_has(value, "keep-alive", NULL))
			r->conn_keep_alive = true;
	}
	return HR_MORE;
}

/* The blank line after the headers: decide how the body is framed. */
static enum hr_result end_of_head(struct http_response *r)
{
	if (r->status < 200) {          /* interim: the real one follows */
		size_t max_head = r->max_head, max_body = r->max_body;
		size_t seen = r->head_bytes;

		http_response_init(r, max_head, max_body);
		r->head_bytes = seen;
		return HR_MORE;
	}
	if (r->chunked && r->has_length)
		return fail(r, "both Content-Length and Transfer-Encoding");
	r->keep_alive = r->http10 ? r->conn_keep_alive && !r->conn_close
				  : !r->conn_close;
	if (r->no_body) {
		r->state = HRS_DONE;
		return HR_COMPLETE;
	}
	if (r->chunked) {
		r->state = HRS_CHUNK_SIZE;
		return HR_MORE;
	}
	if (r->has_length) {
		if (r->length > r->max_body)
			return fail(r, "body over the size limit (max_body)");
		if (body_reserve(r, (size_t)r->length) < 0)
			return fail(r, "out of memory for the body");
		r->body[0] = '\0';
		r->state = r->length == 0 ? HRS_DONE : HRS_BODY_LEN;
		return r->length == 0 ? HR_COMPLETE : HR_MORE;
	}
	/* Neither: the body runs to the close, and the connection ends. */
	r->keep_alive = false;
	r->state = HRS_BODY_EOF;
	return HR_MORE;
}

static enum hr_result parse_chunk_size(struct http_response *r, char *line)
{
	unsigned long long n = 0;
	const char *p = line;

	if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
	      (*p >= 'A' && *p <= 'F')))
		return fail(r, "bad chunk size line");
	for (; *p != '\0' && *p != ';' && *p != ' ' && *p != '\t'; p++) {
		int d;

		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else if (*p >= 'A' && *p <= 'F')
			d = *p - 'A' + 10;
		else
			return fail(r, "bad chunk size line");
		n = n * 16 + (unsigned long long)d;
		if (n > (1ull << 50))
			return fail(r, "chunk size too large");
	}
	if (n == 0) {
		r->state = HRS_TRAILERS;
		return HR_MORE;
	}
	if (r->body_len + n > r->max_body)
		return fail(r, "body over the size limit (max_body)");
	r->chunk_left = n;
	r->state = HRS_CHUNK_DATA;
	return HR_MORE;
}

/* One complete line of the head, chunk framing or trailers. */
static enum hr_result on_line(struct http_response *r, char *line)
{
	switch (r->state) {
	case HRS_STATUS:
		return parse_status(r, line);
	case HRS_HEADERS:
		return line[0] == '\0' ? end_of_head(r) : parse_header(r, line);
	case HRS_CHUNK_SIZE:
		return parse_chunk_size(r, line);
	case HRS_CHUNK_END:
		if (line[0] != '\0')
			return fail(r, "chunk data longer than its size");
		r->state = HRS_CHUNK_SIZE;
		return HR_MORE;
	case HRS_TRAILERS:
		if (line[0] != '\0')
			return HR_MORE;    /* trailers are read and ignored */
		r->state = HRS_DONE;
		return HR_COMPLETE;
	default:
		return fail(r, "parser in a bad state");
	}
}

static bool line_state(enum hr_state s)
{
	return s == HRS_STATUS || s == HRS_HEADERS || s == HRS_CHUNK_SIZE ||
		s == HRS_CHUNK_END || s == HRS_TRAILERS;
}

/* Take bytes of a line; HR_MORE with *n consumed, or a line's result. */
static enum hr_result take_line(struct http_response *r, const char *data,
				size_t len, size_t *n)
{
	const char *nl = memchr(data, '\n', len);
	size_t take = nl != NULL ? (size_t)(nl - data) + 1 : len;
	bool in_head = r->state == HRS_STATUS || r->state == HRS_HEADERS;

	*n = take;
	if (in_head) {
		r->head_bytes += take;
		if (r->head_bytes > r->max_head)
			return fail(r, "response head over the size limit");
	}
	if (r->line_len + take > sizeof(r->line))
		return fail(r, "line too long");
	memcpy(r->line + r->line_len, data, take);
	r->line_len += take;
	if (nl == NULL)
		return HR_MORE;
	/* Cut the LF, and a CR before it. */
	r->line_len--;
	if (r->line_len > 0 && r->line[r->line_len - 1] == '\r')
		r->line_len--;
	r->line[r->line_len] = '\0';
	if (memchr(r->line, '\0', r->line_len) != NULL)
		return fail(r, "NUL byte in the response head");
	r->line_len = 0;
	return on_line(r, r->line);
}

enum hr_result http_response_feed(struct http_response *r, const char *data,
				  size_t len, size_t *used)
{
	size_t i = 0;

	*used = 0;
	if (r->state == HRS_FAILED)
		return HR_FAIL;
	if (r->state == HRS_DONE)
		return HR_COMPLETE;
	while (i < len) {
		enum hr_result res = HR_MORE;
		size_t n = 0;

		if (line_state(r->state)) {
			res = take_line(r, data + i, len - i, &n);
		} else if (r->state == HRS_BODY_LEN) {
			n = len - i < r->length ? len - i : (size_t)r->length;
			res = body_add(r, data + i, n);
			r->length -= n;
			if (res == HR_MORE && r->length == 0) {
				r->state = HRS_DONE;
				res = HR_COMPLETE;
			}
		} else if (r->state == HRS_CHUNK_DATA) {
			n = len - i < r->chunk_left ? len - i : (size_t)r->chunk_left;
			res = body_add(r, data + i, n);
			r->chunk_left -= n;
			if (res == HR_MORE && r->chunk_left == 0)
				r->state = HRS_CHUNK_END;
		} else if (r->state == HRS_BODY_EOF) {
			n = len - i;
			res = body_add(r, data + i, n);
		}
		i += n;
		if (res == HR_FAIL)
			return HR_FAIL;
		if (res == HR_COMPLETE) {
			*used = i;
			return HR_COMPLETE;
		}
	}
	*used = i;
	return HR_MORE;
}

enum hr_result http_response_eof(struct http_response *r)
{
	if (r->state == HRS_DONE)
		return HR_COMPLETE;
	if (r->state == HRS_BODY_EOF) {
		if (body_reserve(r, 0) < 0)
			return fail(r, "out of memory for the body");
		r->body[r->body_len] = '\0';
		r->state = HRS_DONE;
		return HR_COMPLETE;
	}
	if (r->state == HRS_FAILED)
		return HR_FAIL;
	return fail(r, r->head_bytes == 0 ? "connection closed without a response"
					  : "connection closed in the middle of the response");
}
