/*
 * Unit tests of the http plugin's response parser (plugins/http/http_response.c,
 * linked directly: plugins are separate modules). Every response is also
 * fed one byte at a time, so that no state depends on how reads split.
 */
#include "http_response.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

struct outcome {
	enum hr_result res;
	int status;
	int keep_alive;
	char body[256];
	size_t body_len;
	size_t used;
	const char *error;
};

/* Feed text in pieces of step bytes (0: all at once); then EOF if eof. */
static struct outcome parse(const char *text, size_t len, size_t step,
			    int eof, size_t max_body)
{
	struct http_response r;
	struct outcome o;
	size_t off = 0;

	memset(&o, 0, sizeof(o));
	http_response_init(&r, 4096, max_body);
	o.res = HR_MORE;
	while (off < len) {
		size_t n = step == 0 || len - off < step ? len - off : step;
		size_t used = 0;

		o.res = http_response_feed(&r, text + off, n, &used);
		o.used = off + used;
		off += n;
		if (o.res != HR_MORE)
			break;
	}
	if (o.res == HR_MORE && eof)
		o.res = http_response_eof(&r);
	o.status = r.status;
	o.keep_alive = r.keep_alive;
	o.error = r.error;
	if (o.res == HR_COMPLETE && r.body != NULL) {
		o.body_len = r.body_len;
		memcpy(o.body, r.body, r.body_len < 255 ? r.body_len : 255);
	}
	http_response_clear(&r);
	return o;
}

struct ok_case {
	const char *what;
	const char *text;
	int eof;
	int status;
	int keep_alive;
	const char *body;
};

static const struct ok_case ok_cases[] = {
	{ "Content-Length body, keep-alive by default",
	  "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: application/json\r\n\r\n{\"user_id\":1}",
	  0, 200, 1, "{\"user_id\":1}" },
	{ "chunked body with an extension and trailers",
	  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\nX-T: 1\r\n\r\n",
	  0, 200, 1, "{\"a\":1}" },
	{ "Connection: close ends keep-alive",
	  "HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
	  0, 403, 0, "" },
	{ "HTTP/1.0 without keep-alive is not reused",
	  "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}", 0, 200, 0, "{}" },
	{ "HTTP/1.0 with Connection: keep-alive is",
	  "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\n{}", 0, 200, 1, "{}" },
	{ "no length: body to the close, not reused",
	  "HTTP/1.1 200 OK\r\n\r\n{\"x\":true}", 1, 200, 0, "{\"x\":true}" },
	{ "204 has no body",
	  "HTTP/1.1 204 No Content\r\n\r\n", 0, 204, 1, "" },
	{ "100 Continue is skipped",
	  "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 401 Unauthorized\r\nContent-Length: 1\r\n\r\nx", 0, 401, 1, "x" },
	{ "bare LF line ends are accepted",
	  "HTTP/1.1 200 OK\nContent-Length: 2\n\n{}", 0, 200, 1, "{}" },
	{ "a 302 is parsed like any status (the caller refuses it)",
	  "HTTP/1.1 302 Found\r\nLocation: http://example/\r\nContent-Length: 0\r\n\r\n", 0, 302, 1, "" },
	{ "same Content-Length twice is fine",
	  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\n{}", 0, 200, 1, "{}" },
};

struct bad_case {
	const char *what;
	const char *text;
	int eof;
	const char *error;
};

static const struct bad_case bad_cases[] = {
	{ "not HTTP", "SSH-2.0-OpenSSH\r\n", 0, "not an HTTP/1.x status line" },
	{ "HTTP/2 status line", "HTTP/2 200\r\n\r\n", 0, "not an HTTP/1.x status line" },
	{ "bad code", "HTTP/1.1 2x0 OK\r\n\r\n", 0, "bad status code" },
	{ "code 600", "HTTP/1.1 600 X\r\n\r\n", 0, "bad status code" },
	{ "header without colon", "HTTP/1.1 200 OK\r\nBroken\r\n\r\n", 0, "malformed header line" },
	{ "bad Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", 0, "Content-Length is not a number" },
	{ "two different lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 0,
	  "two different Content-Length headers" },
	{ "length and chunked", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 0,
	  "both Content-Length and Transfer-Encoding" },
	{ "gzip transfer coding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 0,
	  "unsupported Transfer-Encoding" },
	{ "body over max_body by length", "HTTP/1.1 200 OK\r\nContent-Length: 65\r\n\r\n", 0,
	  "body over the size limit (max_body)" },
	{ "body over max_body by chunks", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n"
	  "0123456789012345678901234567890123456789012345678901234567890123\r\n1\r\nx\r\n0\r\n\r\n", 0,
	  "body over the size limit (max_body)" },
	{ "body over max_body to the close", "HTTP/1.1 200 OK\r\n\r\n"
	  "01234567890123456789012345678901234567890123456789012345678901234", 1,
	  "body over the size limit (max_body)" },
	{ "bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, "bad chunk size line" },
	{ "chunk longer than said", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", 0,
	  "chunk data longer than its size" },
	{ "closed before the end of the body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 1,
	  "connection closed in the middle of the response" },
	{ "closed with nothing", "", 1, "connection closed without a response" },
};

int main(void)
{
	static const size_t steps[] = { 0, 1, 7 };
	char big[6000];
	struct outcome o;

	for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
		const struct ok_case *c = &ok_cases[i];

		for (size_t s = 0; s < 3; s++) {
			o = parse(c->text, strlen(c->text), steps[s], c->eof, 64);
			ok(o.res == HR_COMPLETE && o.status == c->status &&
			   o.keep_alive == c->keep_alive &&
			   o.body_len == strlen(c->body) &&
			   memcmp(o.body, c->body, o.body_len) == 0,
			   "%s (pieces of %zu)", c->what, steps[s]);
		}
	}
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];

		for (size_t s = 0; s < 3; s++) {
			o = parse(c->text, strlen(c->text), steps[s], c->eof, 64);
			ok(o.res == HR_FAIL && o.error != NULL &&
			   strcmp(o.error, c->error) == 0,
			   "refused: %s (pieces of %zu; got %s)", c->what, steps[s],
			   o.error ? o.error : "(no error)");
		}
	}

	/* Bytes after a complete response are not consumed. */
	o = parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}EXTRA", 45, 0, 0, 64);
	is_int(o.res, HR_COMPLETE, "a response followed by extra bytes is complete");
	is_int(o.used, 40, "... and the extra bytes are left unused");

	/* A head over max_head (4096 here). */
	memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
	memset(big + 20, 'a', sizeof(big) - 20);
	o = parse(big, sizeof(big), 0, 0, 64);
	ok(o.res == HR_FAIL && o.error != NULL &&
	   (strcmp(o.error, "response head over the size limit") == 0),
	   "a head over max_head is refused (%s)", o.error ? o.error : "-");

	/* A NUL byte inside a header. */
	o = parse("HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n", 27, 0, 0, 64);
	ok(o.res == HR_FAIL, "a NUL byte in the head is refused");

	return done_testing();
}
