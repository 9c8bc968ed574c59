/*
 * The http plugin's JSON documents: see http_json.h.
 */
#define _POSIX_C_SOURCE 200809L

#include "http_json.h"
#include "plugin_util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#define USER_ID_MAX 1024u

/* ------------------------------------------------------------ building */

void jb_free(struct jbuf *b)
{
	if (b->p != NULL) {
		pu_scrub(b->p, b->cap);
		free(b->p);
	}
	memset(b, 0, sizeof(*b));
}

static void jb_put(struct jbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		/* Not realloc: the old block may hold a token. */
		p = malloc(cap);
		if (p == NULL) {
			b->oom = true;
			return;
		}
		if (b->p != NULL) {
			memcpy(p, b->p, b->len);
			pu_scrub(b->p, b->cap);
			free(b->p);
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void jb_raw(struct jbuf *b, const char *s)
{
	jb_put(b, s, strlen(s));
}

void jb_str(struct jbuf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	char esc[8];

	if (s == NULL) {
		jb_raw(b, "null");
		return;
	}
	jb_put(b, "\"", 1);
	while (*p != '\0') {
		size_t run = 0, n;

		/* Copy plain bytes in runs. */
		while (p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' &&
		       p[run] != '\\')
			run++;
		if (run > 0) {
			jb_put(b, (const char *)p, run);
			p += run;
			continue;
		}
		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			jb_put(b, esc, 2);
			p++;
		} else if (*p < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", *p);
			jb_put(b, esc, 6);
			p++;
		} else if ((n = pu_utf8_seq(p, 4)) > 0) {
			/* 4 is safe: the terminating NUL fails the continuation
			 * check before anything past it is read. */
			jb_put(b, (const char *)p, n);
			p += n;
		} else {
			jb_raw(b, "\\ufffd");
			p++;
		}
	}
	jb_put(b, "\"", 1);
}

void jb_key(struct jbuf *b, const char *key, bool first)
{
	if (!first)
		jb_put(b, ",", 1);
	jb_str(b, key);
	jb_put(b, ":", 1);
}

/* The request keys every document carries, and the client's headers
 * named by send_header. */
static void common_fields(struct jbuf *b, const struct myxid_host *host,
			  const struct myxid_req *req, char *const *headers,
			  size_t n_headers)
{
	char key[256];

	jb_key(b, "socket_id", false);
	jb_str(b, host->req_get(req, "socket_id"));
	jb_key(b, "remote_addr", false);
	jb_str(b, host->req_get(req, "peer"));
	jb_key(b, "client_ip", false);
	jb_str(b, host->req_get(req, "client_ip"));
	jb_key(b, "origin", false);
	jb_str(b, host->req_get(req, "origin"));
	if (n_headers == 0)
		return;
	jb_key(b, "headers", false);
	jb_raw(b, "{");
	for (size_t i = 0; i < n_headers; i++) {
		snprintf(key, sizeof(key), "header:%s", headers[i]);
		jb_key(b, headers[i], i == 0);
		jb_str(b, host->req_get(req, key));
	}
	jb_raw(b, "}");
}

void hj_auth_request(struct jbuf *b, const struct myxid_host *host,
		     const struct myxid_req *req, char *const *headers,
		     size_t n_headers)
{
	jb_raw(b, "{\"action\":\"authenticate\"");
	jb_key(b, "token", false);
	jb_str(b, host->req_get(req, "token"));
	common_fields(b, host, req, headers, n_headers);
	jb_raw(b, "}");
}

void hj_policy_request(struct jbuf *b, const struct myxid_host *host,
		       const struct myxid_req *req, char *const *attrs,
		       size_t n_attrs, char *const *headers, size_t n_headers)
{
	const char *user_id = host->req_get(req, "user_id");
	bool first = true;
	char key[256];

	jb_raw(b, "{\"action\":\"subscribe\"");
	jb_key(b, "exchange", false);
	jb_str(b, host->req_get(req, "exchange"));
	jb_key(b, "routing_key", false);
	jb_str(b, host->req_get(req, "routing_key"));
	common_fields(b, host, req, headers, n_headers);
	jb_key(b, "user", false);
	if (user_id == NULL) {
		jb_raw(b, "null}");
		return;
	}
	jb_raw(b, "{");
	jb_key(b, "user_id", true);
	jb_str(b, user_id);
	jb_key(b, "user_type", false);
	jb_str(b, host->req_get(req, "user_type"));
	jb_key(b, "attributes", false);
	jb_raw(b, "{");
	for (size_t i = 0; i < n_attrs; i++) {
		const char *v;

		snprintf(key, sizeof(key), "attr:%s", attrs[i]);
		v = host->req_get(req, key);
		if (v == NULL)
			continue;
		jb_key(b, attrs[i], first);
		jb_str(b, v);
		first = false;
	}
	jb_raw(b, "}}}");
}

/* ------------------------------------------------------------ answers */

/* A scalar as attribute text into buf: NULL if its type is not one. */
static const char *scalar_text(json_object *v, char *buf, size_t size)
{
	switch (json_object_get_type(v)) {
	case json_type_string:
		return json_object_get_string(v);
	case json_type_int:
		snprintf(buf, size, "%" PRId64, json_object_get_int64(v));
		return buf;
	case json_type_boolean:
		return json_object_get_boolean(v) ? "true" : "false";
	case json_type_double:
		/* The number as the application wrote it. */
		return json_object_get_string(v);
	default:
		return NULL;
	}
}

static const char *set_attributes(const struct myxid_host *host,
				  struct myxid_req *req, json_object *attrs)
{
	char buf[32];

	if (attrs == NULL || json_object_get_type(attrs) == json_type_null)
		return NULL;
	if (!json_object_is_type(attrs, json_type_object))
		return "answer: \"attributes\" is not an object";
	json_object_object_foreach(attrs, name, value) {
		const char *text;

		if (!pu_valid_name(name, strlen(name)))
			return "answer: an attribute name is not usable "
			       "(letters, digits, '_', '-', '.')";
		if (value == NULL || json_object_get_type(value) == json_type_null)
			continue;
		text = scalar_text(value, buf, sizeof(buf));
		if (text == NULL)
			return "answer: an attribute value is not a string, "
			       "number or boolean";
		if (host->req_add_attr(req, name, text) < 0)
			return "answer: the host refused an attribute";
	}
	return NULL;
}

static const char *set_identity(const struct myxid_host *host,
				struct myxid_req *req, json_object *doc)
{
	json_object *uid = NULL, *utype = NULL, *attrs = NULL;
	const char *user_id, *user_type = NULL;
	char buf[32];

	if (!json_object_is_type(doc, json_type_object))
		return "answer is not a JSON object";
	if (!json_object_object_get_ex(doc, "user_id", &uid) || uid == NULL)
		return "answer has no \"user_id\"";
	if (json_object_is_type(uid, json_type_string)) {
		user_id = json_object_get_string(uid);
		if (user_id[0] == '\0')
			return "answer: \"user_id\" is empty";
		if ((size_t)json_object_get_string_len(uid) != strlen(user_id))
			return "answer: \"user_id\" holds a NUL character";
		if (strlen(user_id) > USER_ID_MAX)
			return "answer: \"user_id\" is longer than 1024 bytes";
	} else if (json_object_is_type(uid, json_type_int)) {
		snprintf(buf, sizeof(buf), "%" PRId64, json_object_get_int64(uid));
		user_id = buf;
	} else {
		return "answer: \"user_id\" is not a string or an integer";
	}
	if (json_object_object_get_ex(doc, "user_type", &utype) && utype != NULL) {
		if (!json_object_is_type(utype, json_type_string))
			return "answer: \"user_type\" is not a string or null";
		user_type = json_object_get_string(utype);
		if (user_type[0] == '\0')
			user_type = NULL;
	}
	if (host->req_set_user(req, user_id, user_type) < 0)
		return "answer: the host refused the user id";
	(void)json_object_object_get_ex(doc, "attributes", &attrs);
	return set_attributes(host, req, attrs);
}

static size_t parse_end(json_tokener *tok)
{
#if defined(JSON_C_VERSION_NUM) && JSON_C_VERSION_NUM >= ((0 << 16) | (15 << 8))
	return json_tokener_get_parse_end(tok);
#else
	return (size_t)tok->char_offset;
#endif
}

const char *hj_auth_answer(const struct myxid_host *host, struct myxid_req *req,
			   const char *body, size_t len)
{
	json_tokener *tok;
	json_object *doc;
	const char *why = NULL;
	size_t end;

	if (len == 0)
		return "answer is empty (200 needs a JSON object)";
	if (strlen(body) != len)
		return "answer holds a NUL byte";
	tok = json_tokener_new_ex(32);
	if (tok == NULL)
		return "out of memory";
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	doc = json_tokener_parse_ex(tok, body, (int)len);
	if (doc == NULL || json_tokener_get_error(tok) != json_tokener_success) {
		why = "answer is not valid JSON";
	} else {
		end = parse_end(tok);
		while (end < len && (body[end] == ' ' || body[end] == '\t' ||
				     body[end] == '\r' || body[end] == '\n'))
			end++;
		why = end == len ? set_identity(host, req, doc)
				 : "answer has bytes after the JSON value";
	}
	json_object_put(doc);
	json_tokener_free(tok);
	return why;
}
