/*
 * Unit tests for the HTTP request-head parser and the WebSocket opening
 * handshake built on it: what a valid head parses to, that every prefix of
 * a valid head is merely incomplete, the status for each kind of malformed
 * head, the header lookup helpers, and each refusal of ws_handshake_check
 * with the RFC 6455 sample key as the known answer.
 */
#include "http_parse.h"
#include "ws_handshake.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

struct result {
	int rc, status;
	const char *why;
	struct http_request req;
};

static int parse_n(const char *buf, size_t len, struct result *res)
{
	res->status = 0;
	res->why = NULL;
	res->rc = http_parse_request(buf, len, &res->req, &res->status, &res->why);
	return res->rc;
}

static int parse(const char *s, struct result *res)
{
	return parse_n(s, strlen(s), res);
}

/* Does the http_str hold exactly lit (case-sensitively)? */
static int str_is(const struct http_str *s, const char *lit)
{
	return s->len == strlen(lit) && memcmp(s->p, lit, s->len) == 0;
}

/* Every proper prefix of a complete head must ask for more. */
static int prefixes_incomplete(const char *buf, size_t head_len)
{
	struct result res;
	size_t n;

	for (n = 0; n < head_len; n++) {
		if (parse_n(buf, n, &res) != 0) {
			printf("# prefix of %zu bytes gave %d (%s)\n", n, res.rc,
			       res.why ? res.why : "");
			return 0;
		}
	}
	return 1;
}

/* ------------------------------------------------------------ valid heads */

static void test_valid(void)
{
	static const char head[] =
		"GET /chat?room=1&x=%20 HTTP/1.1\r\n"
		"Host: example.com:8080\r\n"
		"Upgrade:websocket\r\n"
		"Connection: \t keep-alive, Upgrade \t \r\n"
		"X-Empty:\r\n"
		"X-Blank:   \r\n"
		"X-Tab: a\tb\r\n"
		"X-Utf8: caf\xC3\xA9\r\n"
		"\r\n";
	static const char body[] = "{\"body\":1}";
	char buf[sizeof head + sizeof body];
	struct result res;
	const struct http_request *req = &res.req;

	snprintf(buf, sizeof buf, "%s%s", head, body);
	is_int(parse(buf, &res), 1, "complete head");
	ok(str_is(&req->method, "GET"), "method");
	ok(str_is(&req->target, "/chat?room=1&x=%20"), "target as sent");
	is_int(req->version_minor, 1, "HTTP/1.1");
	is_int(req->n_headers, 7, "seven headers");
	is_int(req->head_len, sizeof head - 1, "head_len ends after the blank line");
	ok(str_is(&req->headers[0].name, "Host") &&
	   str_is(&req->headers[0].value, "example.com:8080"), "Host header");
	ok(str_is(&req->headers[1].value, "websocket"), "value without a leading space");
	ok(str_is(&req->headers[2].value, "keep-alive, Upgrade"), "value trimmed of SP and HTAB");
	is_int(req->headers[3].value.len, 0, "empty value");
	is_int(req->headers[4].value.len, 0, "all-blank value is empty");
	ok(str_is(&req->headers[5].value, "a\tb"), "inner HTAB kept");
	ok(str_is(&req->headers[6].value, "caf\xC3\xA9"), "obs-text kept in a value");
	ok(prefixes_incomplete(buf, sizeof head - 1), "every prefix of the head is incomplete");

	is_int(parse("POST /publish HTTP/1.0\nHost: h\nContent-Length: 2\n\nhi", &res), 1,
	       "bare LF line ends");
	is_int(res.req.version_minor, 0, "HTTP/1.0");
	ok(str_is(&res.req.method, "POST"), "POST");
	is_int(res.req.head_len, strlen("POST /publish HTTP/1.0\nHost: h\nContent-Length: 2\n\n"),
	       "head_len with bare LF");

	is_int(parse("GET / HTTP/1.1\r\nA: 1\nB: 2\r\n\n", &res), 1, "mixed line ends");
	is_int(res.req.n_headers, 2, "both headers");

	is_int(parse("GET * HTTP/1.1\r\n\r\n", &res), 1, "no headers at all");
	is_int(res.req.n_headers, 0, "zero headers");
	is_int(parse("OPTIONS * HTTP/1.9\r\n\r\n", &res), 1, "any HTTP/1.x minor");
	is_int(res.req.version_minor, 9, "minor 9");
	is_int(parse("M-SEARCH! http://h/p HTTP/1.1\r\nX~_.'|`^#$%&*+-!: v\r\n\r\n", &res), 1,
	       "every tchar in method and name");
}

static void test_too_many_headers(void)
{
	size_t cap = 64 * (HTTP_MAX_HEADERS + 2) + 64;
	char *buf = malloc(cap);
	size_t len;
	struct result res;
	int i;

	len = (size_t)snprintf(buf, cap, "GET / HTTP/1.1\r\n");
	for (i = 0; i < HTTP_MAX_HEADERS; i++)
		len += (size_t)snprintf(buf + len, cap - len, "X-H%d: %d\r\n", i, i);
	snprintf(buf + len, cap - len, "\r\n");
	is_int(parse(buf, &res), 1, "exactly HTTP_MAX_HEADERS headers");
	is_int(res.req.n_headers, HTTP_MAX_HEADERS, "all of them stored");
	ok(str_is(&res.req.headers[HTTP_MAX_HEADERS - 1].value, "63"), "the last one intact");

	snprintf(buf + len, cap - len, "X-One-More: x\r\n\r\n");
	is_int(parse(buf, &res), -1, "one header too many");
	is_int(res.status, 431, "431");
	ok(res.why != NULL, "with a reason");

	free(buf);
}

/* ------------------------------------------------------------ malformed */

struct bad_case {
	const char *name;
	const char *head;
	int status;
};

static const struct bad_case bad_cases[] = {
	{ "( in method", "GE(T / HTTP/1.1\r\n\r\n", 400 },
	{ "empty method", " / HTTP/1.1\r\n\r\n", 400 },
	{ "leading empty line", "\r\nGET / HTTP/1.1\r\n\r\n", 400 },
	{ "tab after method", "GET\t/ HTTP/1.1\r\n\r\n", 400 },
	{ "two spaces after method", "GET  / HTTP/1.1\r\n\r\n", 400 },
	{ "space inside target", "GET /a b HTTP/1.1\r\n\r\n", 400 },
	{ "tab inside target", "GET /a\tb HTTP/1.1\r\n\r\n", 400 },
	{ "control char in target", "GET /a\x01 HTTP/1.1\r\n\r\n", 400 },
	{ "DEL in target", "GET /a\x7F HTTP/1.1\r\n\r\n", 400 },
	{ "raw UTF-8 in target", "GET /caf\xC3\xA9 HTTP/1.1\r\n\r\n", 400 },
	{ "no version", "GET /\r\n\r\n", 400 },
	{ "HTTP/2.0", "GET / HTTP/2.0\r\n\r\n", 505 },
	{ "HTTP/0.9", "GET / HTTP/0.9\r\n\r\n", 505 },
	{ "HTTP/3.1", "GET / HTTP/3.1\r\n\r\n", 505 },
	{ "HTTP/2 without minor", "GET / HTTP/2\r\n\r\n", 400 },
	{ "HTTP/1 without minor", "GET / HTTP/1\r\n\r\n", 400 },
	{ "HTTP/1.10", "GET / HTTP/1.10\r\n\r\n", 400 },
	{ "HTTP/11.1", "GET / HTTP/11.1\r\n\r\n", 400 },
	{ "lowercase http", "GET / http/1.1\r\n\r\n", 400 },
	{ "garbage version", "GET / FOO/1.1\r\n\r\n", 400 },
	{ "space after version", "GET / HTTP/1.1 \r\n\r\n", 400 },
	{ "TLS hello on the plain port", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400 },
	{ "space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400 },
	{ "tab before colon", "GET / HTTP/1.1\r\nHost\t: x\r\n\r\n", 400 },
	{ "space inside a name", "GET / HTTP/1.1\r\nX Y: x\r\n\r\n", 400 },
	{ "non-token char in name", "GET / HTTP/1.1\r\nX@Y: x\r\n\r\n", 400 },
	{ "empty name", "GET / HTTP/1.1\r\n: x\r\n\r\n", 400 },
	{ "no colon", "GET / HTTP/1.1\r\nHost\r\n\r\n", 400 },
	{ "control char in value", "GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n", 400 },
	{ "ESC in value", "GET / HTTP/1.1\r\nX: a\x1Bz\r\n\r\n", 400 },
	{ "DEL in value", "GET / HTTP/1.1\r\nX: a\x7Fz\r\n\r\n", 400 },
	{ "bare CR in value", "GET / HTTP/1.1\r\nX: a\rz\r\n\r\n", 400 },
	{ "bare CR ending the request line", "GET / HTTP/1.1\rHost: x\r\n\r\n", 400 },
	{ "CR CR LF", "GET / HTTP/1.1\r\nX: a\r\r\n\r\n", 400 },
	{ "bare CR as the blank line", "GET / HTTP/1.1\r\nX: a\r\n\rX", 400 },
	{ "obs-fold with SP", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400 },
	{ "obs-fold with HTAB", "GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", 400 },
	{ "whitespace before the first header", "GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400 },
};

/* The same request with a NUL at each offset of its head. */
static void test_nul_everywhere(void)
{
	static const char head[] = "GET /x HTTP/1.1\r\nHost: h\r\nX: v v\r\n\r\n";
	char buf[sizeof head];
	struct result res;
	size_t i;
	int all = 1;

	for (i = 0; i < sizeof head - 1; i++) {
		memcpy(buf, head, sizeof head);
		buf[i] = '\0';
		if (parse_n(buf, sizeof head - 1, &res) != -1 || res.status != 400) {
			printf("# NUL at %zu: rc %d status %d\n", i, res.rc, res.status);
			all = 0;
		}
	}
	ok(all, "a NUL anywhere in the head is a 400");
	is_int(parse_n("GET / HTTP/1.1\r\n\r\n\0\0", 20, &res), 1, "NUL after the head is the body's business");
}

static void test_malformed(void)
{
	size_t i;

	for (i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
		const struct bad_case *c = &bad_cases[i];
		struct result res;

		parse(c->head, &res);
		ok(res.rc == -1 && res.status == c->status && res.why && *res.why,
		   "%s: %d", c->name, c->status);
		if (res.rc != -1 || res.status != c->status)
			printf("# got rc %d status %d\n", res.rc, res.status);
	}
	test_nul_everywhere();
}

/* Garbage should be refused at the first bad byte, not after the caller's
 * size limit. */
static void test_early_errors(void)
{
	struct result res;

	is_int(parse("\x16\x03", &res), -1, "TLS record refused after two bytes");
	is_int(parse("GET /a\x01", &res), -1, "bad target refused before the line ends");
	is_int(parse("GET / HTTQ", &res), -1, "bad version refused at the first wrong byte");
	is_int(parse("GET / HTTP/1.1\r\nX: a\x01", &res), -1, "bad value refused mid-line");
	is_int(parse("GET / HTTP/1.1\r\nX: 1\r\n ", &res), -1, "fold refused at its first byte");
	ok(res.why && strstr(res.why, "folding"), "and called folding: %s", res.why);
	parse("GET / HTTP/1.1\r\nHost : x\r\n\r\n", &res);
	ok(res.why && strstr(res.why, "colon"), "space before colon named: %s", res.why);
	is_int(parse("GET / HTTP/2.0", &res), 0, "a well-formed version waits for its line end");
	is_int(parse("GET / HTTP/1.1\r", &res), 0, "CR waits for its LF");
}

/* ------------------------------------------------------------ helpers */

static void test_helpers(void)
{
	static const struct {
		const char *value;
		const char *tok;
		int want;
	} tokens[] = {
		{ "keep-alive, Upgrade", "upgrade", 1 },
		{ "Upgrade", "upgrade", 1 },
		{ "UPGRADE", "upgrade", 1 },
		{ "  upgrade  ", "upgrade", 1 },
		{ "\tupgrade\t,\tkeep-alive", "upgrade", 1 },
		{ "keep-alive,upgrade", "upgrade", 1 },
		{ "keep-alive ,  upgrade ,x", "upgrade", 1 },
		{ ",,upgrade,,", "upgrade", 1 },
		{ "upgrade-foo", "upgrade", 0 },
		{ "foo-upgrade", "upgrade", 0 },
		{ "upgradex, keep-alive", "upgrade", 0 },
		{ "up grade", "upgrade", 0 },
		{ "keep-alive", "upgrade", 0 },
		{ "", "upgrade", 0 },
		{ ",", "upgrade", 0 },
		{ "upgrad", "upgrade", 0 },
		{ "websocket", "websocket", 1 },
		{ "WebSocket", "websocket", 1 },
		{ "websocket/13", "websocket", 0 },
	};
	struct http_str s;
	struct result res;
	const struct http_header *h;
	size_t i;

	for (i = 0; i < sizeof tokens / sizeof tokens[0]; i++) {
		s.p = tokens[i].value;
		s.len = strlen(tokens[i].value);
		is_int(http_has_token(&s, tokens[i].tok), tokens[i].want,
		       "\"%s\" %s token %s", tokens[i].value,
		       tokens[i].want ? "has" : "lacks", tokens[i].tok);
	}
	/* The value is not NUL-terminated: the match must stop at len. */
	s.p = "upgrade-foo";
	s.len = 7;
	ok(http_has_token(&s, "upgrade"), "token check respects len");
	s.p = NULL;
	s.len = 0;
	ok(!http_has_token(&s, "upgrade"), "empty value");
	ok(!http_has_token(NULL, "upgrade"), "NULL value");

	s.p = "Content-LENGTH";
	s.len = strlen(s.p);
	ok(http_str_eq(&s, "content-length"), "str_eq ignores case");
	ok(!http_str_eq(&s, "content-lengt"), "str_eq: shorter literal");
	ok(!http_str_eq(&s, "content-lengthx"), "str_eq: longer literal");
	s.len = 7;
	ok(http_str_eq(&s, "CONTENT"), "str_eq respects len");

	parse("GET / HTTP/1.1\r\nhost: first\r\nHOST: second\r\nX: y\r\n\r\n", &res);
	h = http_find_header(&res.req, "Host");
	ok(h != NULL && str_is(&h->value, "first"), "find_header: first match, any case");
	ok(http_find_header(&res.req, "Missing") == NULL, "find_header: absent");
	ok(http_find_header(&res.req, "Hos") == NULL, "find_header: no prefix match");
}

/* ------------------------------------------------------------ handshake */

#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static void test_accept(void)
{
	char out[WS_ACCEPT_LEN + 1];

	memset(out, 'X', sizeof out);
	ws_accept_compute(RFC_KEY, strlen(RFC_KEY), out);
	is_str(out, RFC_ACCEPT, "RFC 6455 sample accept value");
	is_int(strlen(out), WS_ACCEPT_LEN, "28 characters");
}

/* Parse head and run the handshake check; returns its status. */
static int handshake(const char *head, char *accept, const char **why)
{
	struct result res;

	if (parse(head, &res) != 1) {
		printf("# test request did not parse: %s\n", res.why ? res.why : "incomplete");
		return -1;
	}
	*why = NULL;
	return ws_handshake_check(&res.req, accept, why);
}

struct hs_case {
	const char *name;
	const char *head;
	int status;
};

#define LINE_HOST "Host: server.example.com\r\n"
#define LINE_UPGRADE "Upgrade: websocket\r\n"
#define LINE_CONN "Connection: Upgrade\r\n"
#define LINE_KEY "Sec-WebSocket-Key: " RFC_KEY "\r\n"
#define LINE_VERSION "Sec-WebSocket-Version: 13\r\n"
#define GOOD_LINE "GET /chat HTTP/1.1\r\n"
#define GOOD_REST LINE_HOST LINE_UPGRADE LINE_CONN LINE_KEY LINE_VERSION "\r\n"

static const struct hs_case hs_cases[] = {
	{ "RFC sample request", GOOD_LINE GOOD_REST, 0 },
	{ "Firefox-style Connection and header case",
	  GOOD_LINE "host: h\r\nupgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\n"
	  "sec-websocket-key: " RFC_KEY "\r\nsec-websocket-version: 13\r\n"
	  "Origin: http://example.com\r\n\r\n", 0 },
	{ "Connection split over two lines",
	  GOOD_LINE LINE_HOST LINE_UPGRADE "Connection: keep-alive\r\nConnection: upgrade\r\n"
	  LINE_KEY LINE_VERSION "\r\n", 0 },
	{ "HTTP/1.2 is still 1.1 or later", "GET /chat HTTP/1.2\r\n" GOOD_REST, 0 },
	{ "POST", "POST /chat HTTP/1.1\r\n" GOOD_REST, 405 },
	{ "lowercase get", "get /chat HTTP/1.1\r\n" GOOD_REST, 405 },
	{ "HTTP/1.0", "GET /chat HTTP/1.0\r\n" GOOD_REST, 400 },
	{ "no Host", GOOD_LINE LINE_UPGRADE LINE_CONN LINE_KEY LINE_VERSION "\r\n", 400 },
	{ "two Host headers", GOOD_LINE LINE_HOST GOOD_REST, 400 },
	{ "Upgrade is not websocket",
	  GOOD_LINE LINE_HOST "Upgrade: h2c\r\n" LINE_CONN LINE_KEY LINE_VERSION "\r\n", 400 },
	{ "Connection lacks upgrade",
	  GOOD_LINE LINE_HOST LINE_UPGRADE "Connection: keep-alive\r\n" LINE_KEY LINE_VERSION "\r\n", 400 },
	{ "no Sec-WebSocket-Version",
	  GOOD_LINE LINE_HOST LINE_UPGRADE LINE_CONN LINE_KEY "\r\n", 426 },
	{ "Sec-WebSocket-Version 8",
	  GOOD_LINE LINE_HOST LINE_UPGRADE LINE_CONN LINE_KEY "Sec-WebSocket-Version: 8\r\n\r\n", 426 },
	{ "Sec-WebSocket-Version 013",
	  GOOD_LINE LINE_HOST LINE_UPGRADE LINE_CONN LINE_KEY "Sec-WebSocket-Version: 013\r\n\r\n", 426 },
	{ "Sec-WebSocket-Version 13, 8",
	  GOOD_LINE LINE_HOST LINE_UPGRADE LINE_CONN LINE_KEY "Sec-WebSocket-Version: 13, 8\r\n\r\n", 426 },
	{ "Sec-WebSocket-Version empty",
	  GOOD_LINE LINE_HOST LINE_UPGRADE LINE_CONN LINE_KEY "Sec-WebSocket-Version:\r\n\r\n", 426 },
	{ "Sec-WebSocket-Version twice",
	  GOOD_LINE LINE_HOST LINE_UPGRADE LINE_CONN LINE_KEY LINE_VERSION LINE_VERSION "\r\n", 400 },
	{ "no Sec-WebSocket-Key",
	  GOOD_LINE LINE_HOST LINE_UPGRADE LINE_CONN LINE_VERSION "\r\n", 400 },
	{ "Sec-WebSocket-Key twice",
	  GOOD_LINE LINE_HOST LINE_UPGRADE LINE_CONN LINE_KEY LINE_KEY LINE_VERSION "\r\n", 400 },
};

/* Keys that are not base64 of exactly 16 bytes. */
static const char *const bad_keys[] = {
	"",
	"dGhlIHNhbXBsZSBub25jZQ=",      /* 23 chars */
	"dGhlIHNhbXBsZSBub25jZQ===",    /* 25 chars */
	"dGhlIHNhbXBsZSBub25jZQAA",     /* 24 chars, 18 bytes */
	"dGhlIHNhbXBsZSBub25jZ===",     /* 15 bytes and a stray '=' */
	"dGhlIHNhbXBsZSBub25j=Q==",     /* '=' inside the data */
	"dGhlIHNhbXBsZSBub25jZ-==",     /* base64url, not base64 */
	"dGhlIHNhbXBsZSBub25jZ_==",
	"dGhlIHNhbXBsZSBub 25jZ==",
	"dGhlIHNhbXBsZSBub25jZQ",       /* unpadded */
	"c2FtcGxlIG5vbmNlIHRoYXQgaXMgdG9vIGxvbmc=", /* a longer nonce */
};

static void test_handshake(void)
{
	char accept[WS_ACCEPT_LEN + 1];
	const char *why;
	char head[512];
	size_t i;

	for (i = 0; i < sizeof hs_cases / sizeof hs_cases[0]; i++) {
		const struct hs_case *c = &hs_cases[i];
		int status;

		memset(accept, 0, sizeof accept);
		status = handshake(c->head, accept, &why);
		is_int(status, c->status, "handshake: %s", c->name);
		if (c->status == 0)
			is_str(accept, RFC_ACCEPT, "handshake: %s: accept value", c->name);
		else
			ok(why != NULL && *why, "handshake: %s: reason given", c->name);
	}

	for (i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
		snprintf(head, sizeof head, GOOD_LINE LINE_HOST LINE_UPGRADE LINE_CONN
			 "Sec-WebSocket-Key: %s\r\n" LINE_VERSION "\r\n", bad_keys[i]);
		is_int(handshake(head, accept, &why), 400, "bad key \"%s\"", bad_keys[i]);
	}

	/* A key is only hashed, so any 16-byte nonce works and yields a
	 * different answer. */
	snprintf(head, sizeof head, GOOD_LINE LINE_HOST LINE_UPGRADE LINE_CONN
		 "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n" LINE_VERSION "\r\n");
	is_int(handshake(head, accept, &why), 0, "all-zero nonce is a valid key");
	ok(strlen(accept) == WS_ACCEPT_LEN && strcmp(accept, RFC_ACCEPT) != 0,
	   "and gets its own accept value");
}

static void test_is_upgrade(void)
{
	static const struct {
		const char *headers;
		int want;
	} cases[] = {
		{ "Upgrade: websocket\r\nConnection: Upgrade\r\n", 1 },
		{ "Upgrade: WEBSOCKET\r\nConnection: keep-alive, upgrade\r\n", 1 },
		{ "Upgrade: foo, websocket\r\nConnection: upgrade\r\n", 1 },
		{ "Upgrade: websocket\r\n", 0 },
		{ "Connection: Upgrade\r\n", 0 },
		{ "Upgrade: websocket\r\nConnection: keep-alive\r\n", 0 },
		{ "Upgrade: websockets\r\nConnection: upgrade\r\n", 0 },
		{ "Upgrade: h2c\r\nConnection: upgrade, HTTP2-Settings\r\n", 0 },
		{ "", 0 },
	};
	char head[256];
	struct result res;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(head, sizeof head, "GET / HTTP/1.1\r\nHost: h\r\n%s\r\n",
			 cases[i].headers);
		parse(head, &res);
		is_int(ws_is_upgrade(&res.req), cases[i].want, "is_upgrade case %zu", i);
	}
}

int main(void)
{
	test_valid();
	test_too_many_headers();
	test_malformed();
	test_early_errors();
	test_helpers();
	test_accept();
	test_handshake();
	test_is_upgrade();
	return done_testing();
}
