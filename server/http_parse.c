/*
 * A strict HTTP/1.x request-head parser (RFC 9112 grammar, none of the
 * historical leniencies except bare LF line ends). It is re-run from the
 * start of the buffer on every read, so it keeps no state: a cursor walks
 * the buffer and every byte is checked against the grammar as soon as it is
 * seen. Running out of bytes anywhere is "need more", never an error, so any
 * prefix of a valid head parses as incomplete, while garbage (a TLS hello on
 * the plain port, a NUL, a folded header) is refused at the first bad byte
 * instead of after the size limit. Heads are capped at a few KiB by the
 * caller, so the rescanning costs nothing that matters.
 */
#include "http_parse.h"

#include <string.h>

enum { P_ERR = -1, P_MORE = 0, P_OK = 1 };

struct cursor {
	const char *p, *end;
	int status;
	const char *why;
};

static int fail(struct cursor *c, int status, const char *why)
{
	c->status = status;
	c->why = why;
	return P_ERR;
}

/* ------------------------------------------------------------ classes */

/* tchar from RFC 9110 5.6.2: the characters allowed in methods and header
 * names. */
static int is_tchar(unsigned char ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9'))
		return 1;
	return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* The request-target is ASCII by definition (RFC 3986); anything else must
 * be percent-encoded, so raw high bytes are refused too. */
static int is_target_char(unsigned char ch)
{
	return ch > 0x20 && ch < 0x7F;
}

/* field-vchar / SP / HTAB; obs-text (>= 0x80) is tolerated in values
 * because it is opaque to us and some clients send raw UTF-8. */
static int is_value_char(unsigned char ch)
{
	return ch == '\t' || (ch >= 0x20 && ch != 0x7F);
}

static int is_ows(char ch)
{
	return ch == ' ' || ch == '\t';
}

static char lower(char ch)
{
	return (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
}

/* ------------------------------------------------------------ pieces */

/* CRLF or a bare LF. A CR followed by anything else is an error. */
static int eat_eol(struct cursor *c, const char *why_other)
{
	if (c->p == c->end)
		return P_MORE;
	if (*c->p == '\n') {
		c->p++;
		return P_OK;
	}
	if (*c->p != '\r')
		return fail(c, 400, why_other);
	if (c->p + 1 == c->end)
		return P_MORE;
	if (c->p[1] != '\n')
		return fail(c, 400, "bare CR");
	c->p += 2;
	return P_OK;
}

/* One or more bytes of class is_ok, ending at (and consuming) SP. */
static int eat_word(struct cursor *c, int (*is_ok)(unsigned char),
		    struct http_str *out, const char *why)
{
	const char *start = c->p;

	while (c->p < c->end && is_ok((unsigned char)*c->p))
		c->p++;
	if (c->p == c->end)
		return P_MORE;
	if (c->p == start || *c->p != ' ')
		return fail(c, 400, why);
	out->p = start;
	out->len = (size_t)(c->p - start);
	c->p++;
	return P_OK;
}

/*
 * "HTTP/" DIGIT "." DIGIT, checked byte by byte against a pattern so a
 * wrong prefix fails early. Only a well-formed version with a major other
 * than 1 earns 505; anything else is plain garbage.
 */
static int eat_version(struct cursor *c, int *minor)
{
	static const char pattern[] = "HTTP/#.#";
	const char *start = c->p;
	size_t i;
	int rc;

	for (i = 0; pattern[i]; i++, c->p++) {
		if (c->p == c->end)
			return P_MORE;
		if (pattern[i] == '#' ? !(*c->p >= '0' && *c->p <= '9')
				      : *c->p != pattern[i])
			return fail(c, 400, "malformed HTTP version");
	}
	rc = eat_eol(c, "malformed HTTP version");
	if (rc != P_OK)
		return rc;
	if (start[5] != '1')
		return fail(c, 505, "only HTTP/1.x is supported");
	*minor = start[7] - '0';
	return P_OK;
}

static int eat_request_line(struct cursor *c, struct http_request *req)
{
	int rc = eat_word(c, is_tchar, &req->method, "malformed method");

	if (rc == P_OK)
		rc = eat_word(c, is_target_char, &req->target, "malformed request-target");
	if (rc == P_OK)
		rc = eat_version(c, &req->version_minor);
	return rc;
}

/* name ":" OWS value OWS EOL, with the value trimmed. */
static int eat_header(struct cursor *c, struct http_header *h)
{
	const char *start = c->p, *vstart, *vend;
	int rc;

	while (c->p < c->end && is_tchar((unsigned char)*c->p))
		c->p++;
	if (c->p == c->end)
		return P_MORE;
	if (*c->p != ':' || c->p == start)
		return fail(c, 400, is_ows(*c->p) ? "whitespace before colon"
						  : "malformed header name");
	h->name.p = start;
	h->name.len = (size_t)(c->p - start);
	c->p++;

	while (c->p < c->end && is_ows(*c->p))
		c->p++;
	vstart = c->p;
	while (c->p < c->end && is_value_char((unsigned char)*c->p))
		c->p++;
	vend = c->p;
	rc = eat_eol(c, "control character in header value");
	if (rc != P_OK)
		return rc;
	while (vend > vstart && is_ows(vend[-1]))
		vend--;
	h->value.p = vstart;
	h->value.len = (size_t)(vend - vstart);
	return P_OK;
}

/* Headers up to and including the empty line that ends the head. */
static int eat_headers(struct cursor *c, struct http_request *req)
{
	for (;;) {
		int rc;

		if (c->p == c->end)
			return P_MORE;
		if (*c->p == '\r' || *c->p == '\n')
			return eat_eol(c, "bare CR");
		/* RFC 9112 5.2: a server must reject obs-fold with 400 (or
		 * unfold it, which would mean copying). */
		if (is_ows(*c->p))
			return fail(c, 400, "obsolete line folding");
		if (req->n_headers == HTTP_MAX_HEADERS)
			return fail(c, 431, "too many header fields");
		rc = eat_header(c, &req->headers[req->n_headers]);
		if (rc != P_OK)
			return rc;
		req->n_headers++;
	}
}

int http_parse_request(const char *buf, size_t len, struct http_request *req,
		       int *status, const char **why)
{
	struct cursor c = { buf, len ? buf + len : buf, 0, NULL };
	int rc;

	req->n_headers = 0;
	req->head_len = 0;
	rc = eat_request_line(&c, req);
	if (rc == P_OK)
		rc = eat_headers(&c, req);
	if (rc == P_OK)
		req->head_len = (size_t)(c.p - buf);
	if (rc == P_ERR) {
		if (status)
			*status = c.status;
		if (why)
			*why = c.why;
	}
	return rc;
}

/* ------------------------------------------------------------ lookups */

static int mem_eq_nocase(const char *a, const char *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (lower(a[i]) != lower(b[i]))
			return 0;
	return 1;
}

int http_str_eq(const struct http_str *s, const char *lit)
{
	size_t n = strlen(lit);

	return s->len == n && mem_eq_nocase(s->p, lit, n);
}

const struct http_header *http_find_header(const struct http_request *req,
					   const char *name)
{
	size_t i;

	for (i = 0; i < req->n_headers; i++)
		if (http_str_eq(&req->headers[i].name, name))
			return &req->headers[i];
	return NULL;
}

/* Elements are separated by commas and may be padded with OWS; empty
 * elements are allowed by the list grammar (RFC 9110 5.6.1). */
int http_has_token(const struct http_str *value, const char *tok)
{
	const char *p, *end;
	size_t tok_len = strlen(tok);

	if (!value || !value->p)
		return 0;
	p = value->p;
	end = p + value->len;
	while (p < end) {
		const char *elem, *elem_end;

		while (p < end && is_ows(*p))
			p++;
		elem = p;
		while (p < end && *p != ',')
			p++;
		elem_end = p;
		while (elem_end > elem && is_ows(elem_end[-1]))
			elem_end--;
		if ((size_t)(elem_end - elem) == tok_len &&
		    mem_eq_nocase(elem, tok, tok_len))
			return 1;
		if (p < end)
			p++;
	}
	return 0;
}
