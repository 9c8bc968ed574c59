/*
 * The server half of the RFC 6455 opening handshake (section 4.2). Given a
 * request head already parsed by http_parse.c, decide whether it asks for a
 * WebSocket at all, whether the request is one we may accept, and compute
 * Sec-WebSocket-Accept. Each refusal maps to the status the RFC asks for, so
 * the connection code only has to write the answer.
 */
#include "ws_handshake.h"

#include <string.h>

#include <openssl/evp.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define SHA1_LEN 20

/* A 16-byte nonce in base64 is 22 data characters and "==". */
#define WS_KEY_LEN 24
#define WS_KEY_DATA 22

/* Does any header called name list tok? Connection may legitimately be
 * split over several header lines. */
static int any_header_has_token(const struct http_request *req,
				const char *name, const char *tok)
{
	size_t i;

	for (i = 0; i < req->n_headers; i++)
		if (http_str_eq(&req->headers[i].name, name) &&
		    http_has_token(&req->headers[i].value, tok))
			return 1;
	return 0;
}

/* How many headers are called name; *first gets the first of them. */
static size_t count_header(const struct http_request *req, const char *name,
			   const struct http_header **first)
{
	size_t i, n = 0;

	*first = NULL;
	for (i = 0; i < req->n_headers; i++) {
		if (!http_str_eq(&req->headers[i].name, name))
			continue;
		if (n++ == 0)
			*first = &req->headers[i];
	}
	return n;
}

/* Exact, case-sensitive match: methods are case-sensitive (RFC 9110 9.1),
 * unlike header names and tokens. */
static int str_is(const struct http_str *s, const char *lit)
{
	size_t n = strlen(lit);

	return s->len == n && memcmp(s->p, lit, n) == 0;
}

int ws_is_upgrade(const struct http_request *req)
{
	return any_header_has_token(req, "Upgrade", "websocket") &&
	       any_header_has_token(req, "Connection", "upgrade");
}

static int is_base64_char(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	       (ch >= '0' && ch <= '9') || ch == '+' || ch == '/';
}

/*
 * Exactly the shape of base64 for 16 bytes. The spare low bits of the last
 * data character are not required to be zero: the key is only ever hashed
 * as text, and common decoders accept such keys too.
 */
static int key_valid(const struct http_str *key)
{
	size_t i;

	if (key->len != WS_KEY_LEN)
		return 0;
	for (i = 0; i < WS_KEY_DATA; i++)
		if (!is_base64_char(key->p[i]))
			return 0;
	return key->p[WS_KEY_DATA] == '=' && key->p[WS_KEY_DATA + 1] == '=';
}

/* 0 on success; the only possible failure is OpenSSL running out of
 * memory. */
static int accept_compute(const char *key, size_t key_len, char *accept_out)
{
	unsigned char md[SHA1_LEN];
	unsigned int md_len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int good;

	good = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) &&
	       EVP_DigestUpdate(ctx, key, key_len) &&
	       EVP_DigestUpdate(ctx, WS_GUID, sizeof WS_GUID - 1) &&
	       EVP_DigestFinal_ex(ctx, md, &md_len) && md_len == SHA1_LEN;
	EVP_MD_CTX_free(ctx);
	if (!good) {
		accept_out[0] = '\0';
		return -1;
	}
	/* 20 bytes encode to exactly WS_ACCEPT_LEN characters plus NUL. */
	EVP_EncodeBlock((unsigned char *)accept_out, md, SHA1_LEN);
	return 0;
}

void ws_accept_compute(const char *key, size_t key_len, char *accept_out)
{
	accept_compute(key, key_len, accept_out);
}

static int refuse(int status, const char *reason, const char **why)
{
	if (why)
		*why = reason;
	return status;
}

int ws_handshake_check(const struct http_request *req, char *accept_out,
		       const char **why)
{
	const struct http_header *h;

	if (!str_is(&req->method, "GET"))
		return refuse(405, "WebSocket upgrade requires GET", why);
	if (req->version_minor < 1)
		return refuse(400, "WebSocket upgrade requires HTTP/1.1", why);
	/* RFC 9112 3.2: no Host, or more than one, is a 400. */
	if (count_header(req, "Host", &h) != 1)
		return refuse(400, "exactly one Host header is required", why);
	if (!ws_is_upgrade(req))
		return refuse(400, "Upgrade/Connection headers do not ask for websocket", why);
	/* RFC 6455 11.3.1 and 11.3.5: neither may appear more than once. */
	switch (count_header(req, "Sec-WebSocket-Version", &h)) {
	case 0:
		return refuse(426, "missing Sec-WebSocket-Version", why);
	case 1:
		if (!str_is(&h->value, "13"))
			return refuse(426, "unsupported Sec-WebSocket-Version", why);
		break;
	default:
		return refuse(400, "duplicate Sec-WebSocket-Version", why);
	}
	if (count_header(req, "Sec-WebSocket-Key", &h) != 1 || !key_valid(&h->value))
		return refuse(400, "missing or invalid Sec-WebSocket-Key", why);
	if (accept_compute(h->value.p, h->value.len, accept_out) < 0)
		return refuse(500, "out of memory", why);
	return 0;
}
