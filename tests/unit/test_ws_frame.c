/*
 * Unit tests for the RFC 6455 frame reader and encoders. Every reader case
 * is a byte string plus the expected close code and the expected trace of
 * callbacks; each case is run fed all at once, one byte at a time, split in
 * two at every position and (when short) in three at every pair of
 * positions, and all of those runs must produce the same trace and code.
 * That is the property the connection code relies on: TCP may cut the
 * stream anywhere.
 */
#include "ws_frame.h"
#include "utf8.h"
#include "tap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FIN 0x80
#define RSV1 0x40
#define RSV2 0x20
#define RSV3 0x10

/* ------------------------------------------------------------ byte strings */

struct bytes {
	uint8_t *p;
	size_t len, cap;
};

static void bytes_add(struct bytes *b, const void *data, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap < b->len + n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (!b->p)
			abort();
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
}

static void bytes_byte(struct bytes *b, uint8_t v)
{
	bytes_add(b, &v, 1);
}

static void bytes_reset(struct bytes *b)
{
	b->len = 0;
}

static void bytes_free(struct bytes *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------ frame building */

/* How the payload length is written: shortest form, or forced. */
enum width { W_MIN, W_7, W_16, W_64 };

/* Masks vary from frame to frame so unmasking bugs cannot hide behind a
 * constant key. */
static uint8_t mask_seed = 0x37;

static void next_mask(uint8_t mask[4])
{
	int i;

	for (i = 0; i < 4; i++) {
		mask_seed = (uint8_t)(mask_seed * 167 + 13);
		mask[i] = mask_seed;
	}
}

static void put_header(struct bytes *b, uint8_t b0, int masked, enum width w,
		       uint64_t len, const uint8_t mask[4])
{
	uint8_t m = masked ? 0x80 : 0;
	int i;

	if (w == W_MIN)
		w = len <= 125 ? W_7 : len <= 0xFFFF ? W_16 : W_64;
	bytes_byte(b, b0);
	if (w == W_7) {
		bytes_byte(b, (uint8_t)(m | len));
	} else if (w == W_16) {
		bytes_byte(b, m | 126);
		bytes_byte(b, (uint8_t)(len >> 8));
		bytes_byte(b, (uint8_t)len);
	} else {
		bytes_byte(b, m | 127);
		for (i = 7; i >= 0; i--)
			bytes_byte(b, (uint8_t)(len >> (8 * i)));
	}
	if (masked)
		bytes_add(b, mask, 4);
}

static void put_masked(struct bytes *b, const void *payload, size_t len,
		       const uint8_t mask[4])
{
	const uint8_t *s = payload;
	size_t i;

	for (i = 0; i < len; i++)
		bytes_byte(b, s[i] ^ mask[i & 3]);
}

/* A complete masked frame with a length in the form w. */
static void put_frame_w(struct bytes *b, uint8_t b0, enum width w,
			const void *payload, size_t len)
{
	uint8_t mask[4];

	next_mask(mask);
	put_header(b, b0, 1, w, len, mask);
	put_masked(b, payload, len, mask);
}

static void put_frame(struct bytes *b, uint8_t b0, const void *payload, size_t len)
{
	put_frame_w(b, b0, W_MIN, payload, len);
}

/* Frames with a string payload are the common case in the tests. */
static void put_str(struct bytes *b, uint8_t b0, const char *s)
{
	put_frame(b, b0, s, strlen(s));
}

static void put_close(struct bytes *b, int code, const char *reason, size_t rlen)
{
	uint8_t body[200];

	body[0] = (uint8_t)(code >> 8);
	body[1] = (uint8_t)code;
	memcpy(body + 2, reason, rlen);
	put_frame(b, FIN | WS_OP_CLOSE, body, 2 + rlen);
}

static void put_unmasked(struct bytes *b, uint8_t b0, const char *s)
{
	put_header(b, b0, 0, W_MIN, strlen(s), NULL);
	bytes_add(b, s, strlen(s));
}

/* ------------------------------------------------------------ trace */

/* The callbacks append a line per event to a text trace, so a whole run
 * can be compared with one string comparison. */
struct trace {
	char text[4096];
	size_t len;
};

/* Runs are many and short: clearing the whole buffer each time would
 * dominate the test's run time. */
static void trace_reset(struct trace *t)
{
	t->len = 0;
	t->text[0] = '\0';
}

static void trace_printf(struct trace *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void trace_printf(struct trace *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->len >= sizeof t->text - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(t->text + t->len, sizeof t->text - t->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		t->len += (size_t)n < sizeof t->text - t->len ? (size_t)n
							      : sizeof t->text - 1 - t->len;
}

/* Short payloads are shown (escaped); long ones as length and hash. */
static void trace_data(struct trace *t, const uint8_t *d, size_t len)
{
	size_t i;

	if (len > 48) {
		uint32_t h = 2166136261u;

		for (i = 0; i < len; i++)
			h = (h ^ d[i]) * 16777619u;
		trace_printf(t, "[%zu bytes fnv %08x]", len, (unsigned)h);
		return;
	}
	trace_printf(t, "'");
	for (i = 0; i < len; i++) {
		if (d[i] >= 0x20 && d[i] < 0x7F && d[i] != '\\')
			trace_printf(t, "%c", d[i]);
		else
			trace_printf(t, "\\x%02X", d[i]);
	}
	trace_printf(t, "'");
}

/* One event: its kind and payload. The callbacks log through this, and the
 * tests use it to build expected traces for payloads too long to spell
 * out. */
static void expect(struct trace *t, const char *kind, const void *p, size_t n)
{
	trace_printf(t, "%s ", kind);
	trace_data(t, p, n);
	trace_printf(t, ";");
}

static void on_message(void *arg, int opcode, const uint8_t *data, size_t len)
{
	if (!data)
		trace_printf(arg, "NULL DATA;");
	expect(arg, opcode == WS_OP_TEXT ? "text" :
	       opcode == WS_OP_BINARY ? "bin" : "??", data, len);
}

static void on_ping(void *arg, const uint8_t *data, size_t len)
{
	expect(arg, "ping", data, len);
}

static void on_pong(void *arg, const uint8_t *data, size_t len)
{
	expect(arg, "pong", data, len);
}

static void on_close(void *arg, int code, const char *reason, size_t len)
{
	char kind[32];

	snprintf(kind, sizeof kind, "close %d", code);
	expect(arg, kind, reason, len);
}

static const struct ws_reader_callbacks callbacks = {
	on_message, on_ping, on_pong, on_close,
};

/* ------------------------------------------------------------ runs */

/*
 * Feed in[0..len) cut at cuts[0..ncuts) (ascending). Returns the first
 * non-zero code; a second non-zero code, or a missing reason, is recorded
 * in the trace so it shows up as a mismatch.
 */
static int run_cuts(const struct bytes *in, size_t max, const size_t *cuts,
		    size_t ncuts, struct trace *t)
{
	struct ws_reader r;
	size_t i, from = 0;
	int first = 0;

	trace_reset(t);
	ws_reader_init(&r, max, &callbacks, t);
	for (i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : in->len;
		const char *why = NULL;
		int rc = ws_reader_feed(&r, in->p + from, to - from, &why);

		if (rc && first)
			trace_printf(t, "SECOND ERROR %d;", rc);
		if (rc && (!why || !*why))
			trace_printf(t, "NO REASON;");
		if (rc && !first)
			first = rc;
		from = to;
	}
	ws_reader_free(&r);
	return first;
}

static int run_bytewise(const struct bytes *in, size_t max, struct trace *t)
{
	size_t *cuts = malloc((in->len + 1) * sizeof *cuts);
	size_t i;
	int rc;

	for (i = 0; i < in->len; i++)
		cuts[i] = i;
	rc = run_cuts(in, max, cuts, in->len, t);
	free(cuts);
	return rc;
}

static int same_as(int rc, const struct trace *t, int want_rc, const struct trace *want)
{
	return rc == want_rc && strcmp(t->text, want->text) == 0;
}

/* All two-way splits; for big inputs a sample that still covers every
 * header position and the payload at varied offsets. */
static int splits_agree(const struct bytes *in, size_t max, int want_rc,
			const struct trace *want)
{
	struct trace t;
	size_t cut[2], i, j;
	size_t step = in->len <= 4096 ? 1 : in->len / 97;

	for (i = 0; i <= in->len; i += (i < 32 ? 1 : step)) {
		cut[0] = i;
		if (!same_as(run_cuts(in, max, cut, 1, &t), &t, want_rc, want)) {
			printf("# differs when split at %zu: %s\n", i, t.text);
			return 0;
		}
	}
	if (in->len > 48)
		return 1;
	for (i = 0; i <= in->len; i++) {
		for (j = i; j <= in->len; j++) {
			cut[0] = i;
			cut[1] = j;
			if (!same_as(run_cuts(in, max, cut, 2, &t), &t, want_rc, want)) {
				printf("# differs when split at %zu,%zu\n", i, j);
				return 0;
			}
		}
	}
	return 1;
}

/* The main assertion: expected result all at once, and the same result
 * however the input is cut. */
static void check(const char *name, const struct bytes *in, size_t max,
		  int want_rc, const char *want_trace)
{
	struct trace whole, t;
	int rc = run_cuts(in, max, NULL, 0, &whole);
	int rc1;

	is_int(rc, want_rc, "%s: close code", name);
	is_str(whole.text, want_trace, "%s: callbacks", name);
	rc1 = run_bytewise(in, max, &t);
	ok(same_as(rc1, &t, rc, &whole), "%s: byte at a time is the same", name);
	if (!same_as(rc1, &t, rc, &whole))
		printf("# bytewise: %d %s\n", rc1, t.text);
	ok(splits_agree(in, max, rc, &whole), "%s: every split is the same", name);
}

#define BIG (1024 * 1024)

/* ------------------------------------------------------------ cases */

static void test_basic(void)
{
	struct bytes b = { 0 };

	put_str(&b, FIN | WS_OP_TEXT, "Hello");
	check("single text frame", &b, BIG, 0, "text 'Hello';");

	bytes_reset(&b);
	put_frame(&b, FIN | WS_OP_BINARY, "\xFF\x00\xC0\xAF", 4);
	check("binary is not UTF-8 checked", &b, BIG, 0, "bin '\\xFF\\x00\\xC0\\xAF';");

	bytes_reset(&b);
	put_str(&b, FIN | WS_OP_TEXT, "");
	put_str(&b, FIN | WS_OP_BINARY, "");
	check("empty messages", &b, BIG, 0, "text '';bin '';");

	bytes_reset(&b);
	put_str(&b, FIN | WS_OP_TEXT, "{\"a\":1}");
	put_str(&b, FIN | WS_OP_PING, "hb");
	put_str(&b, FIN | WS_OP_BINARY, "{\"b\":2}");
	put_str(&b, FIN | WS_OP_PONG, "");
	check("several frames in one read", &b, BIG, 0,
	      "text '{\"a\":1}';ping 'hb';bin '{\"b\":2}';pong '';");

	bytes_reset(&b);
	put_str(&b, FIN | WS_OP_PING, "");
	check("empty ping", &b, BIG, 0, "ping '';");

	bytes_free(&b);
}

static void test_fragmentation(void)
{
	struct bytes b = { 0 };

	put_str(&b, WS_OP_TEXT, "Hel");
	put_str(&b, WS_OP_CONT, "lo, ");
	put_str(&b, FIN | WS_OP_CONT, "world");
	check("text in three fragments", &b, BIG, 0, "text 'Hello, world';");

	bytes_reset(&b);
	put_str(&b, WS_OP_TEXT, "Hel");
	put_str(&b, FIN | WS_OP_PING, "p");
	put_str(&b, WS_OP_CONT, "lo");
	put_str(&b, FIN | WS_OP_PONG, "q");
	put_str(&b, FIN | WS_OP_PING, "");
	put_str(&b, FIN | WS_OP_CONT, "!");
	check("control frames between fragments are delivered at once", &b, BIG, 0,
	      "ping 'p';pong 'q';ping '';text 'Hello!';");

	bytes_reset(&b);
	put_str(&b, WS_OP_BINARY, "ab");
	put_str(&b, FIN | WS_OP_CONT, "cd");
	put_str(&b, FIN | WS_OP_TEXT, "next");
	check("fragmented binary, then a new message", &b, BIG, 0,
	      "bin 'abcd';text 'next';");

	bytes_reset(&b);
	put_str(&b, WS_OP_TEXT, "");
	put_str(&b, WS_OP_CONT, "");
	put_str(&b, FIN | WS_OP_CONT, "");
	check("empty fragments", &b, BIG, 0, "text '';");

	bytes_reset(&b);
	put_str(&b, WS_OP_TEXT, "ab");
	put_close(&b, 1001, "bye", 3);
	put_str(&b, FIN | WS_OP_CONT, "cd");
	check("close in the middle of a message", &b, BIG, 0, "close 1001 'bye';");

	bytes_free(&b);
}

static void test_protocol_errors(void)
{
	static const uint8_t rsv[] = { RSV1, RSV2, RSV3 };
	struct bytes b = { 0 };
	char name[64];
	size_t i;
	int op;

	put_unmasked(&b, FIN | WS_OP_TEXT, "Hi");
	check("unmasked text frame", &b, BIG, WS_CLOSE_PROTOCOL, "");
	bytes_reset(&b);
	put_str(&b, FIN | WS_OP_TEXT, "ok");
	put_unmasked(&b, FIN | WS_OP_PING, "");
	check("unmasked ping after a good frame", &b, BIG, WS_CLOSE_PROTOCOL, "text 'ok';");

	for (i = 0; i < sizeof rsv; i++) {
		bytes_reset(&b);
		put_str(&b, FIN | rsv[i] | WS_OP_TEXT, "x");
		snprintf(name, sizeof name, "RSV bit 0x%02X set", rsv[i]);
		check(name, &b, BIG, WS_CLOSE_PROTOCOL, "");
	}
	bytes_reset(&b);
	put_str(&b, FIN | RSV1 | WS_OP_PING, "x");
	check("RSV1 on a ping", &b, BIG, WS_CLOSE_PROTOCOL, "");

	for (op = 3; op <= 0xF; op++) {
		if (op >= WS_OP_CLOSE && op <= WS_OP_PONG)
			continue;
		bytes_reset(&b);
		put_str(&b, (uint8_t)(FIN | op), "x");
		snprintf(name, sizeof name, "reserved opcode 0x%X", op);
		check(name, &b, BIG, WS_CLOSE_PROTOCOL, "");
	}

	for (op = WS_OP_CLOSE; op <= WS_OP_PONG; op++) {
		bytes_reset(&b);
		put_str(&b, (uint8_t)op, "");
		snprintf(name, sizeof name, "control opcode 0x%X without FIN", op);
		check(name, &b, BIG, WS_CLOSE_PROTOCOL, "");
	}

	bytes_reset(&b);
	put_str(&b, FIN | WS_OP_CONT, "x");
	check("continuation with nothing to continue", &b, BIG, WS_CLOSE_PROTOCOL, "");
	bytes_reset(&b);
	put_str(&b, WS_OP_CONT, "x");
	check("non-final continuation with nothing to continue", &b, BIG,
	      WS_CLOSE_PROTOCOL, "");
	bytes_reset(&b);
	put_str(&b, FIN | WS_OP_TEXT, "done");
	put_str(&b, FIN | WS_OP_CONT, "x");
	check("continuation after a complete message", &b, BIG, WS_CLOSE_PROTOCOL,
	      "text 'done';");

	bytes_reset(&b);
	put_str(&b, WS_OP_TEXT, "a");
	put_str(&b, FIN | WS_OP_TEXT, "b");
	check("new text frame inside a fragmented message", &b, BIG,
	      WS_CLOSE_PROTOCOL, "");
	bytes_reset(&b);
	put_str(&b, WS_OP_BINARY, "a");
	put_str(&b, FIN | WS_OP_PING, "p");
	put_str(&b, WS_OP_BINARY, "b");
	check("new binary frame inside a fragmented message", &b, BIG,
	      WS_CLOSE_PROTOCOL, "ping 'p';");

	bytes_free(&b);
}

static void test_control_lengths(void)
{
	struct bytes b = { 0 };
	uint8_t payload[126];
	char name[64];
	int op;
	struct trace want = { { 0 }, 0 };

	memset(payload, 'p', sizeof payload);
	put_frame(&b, FIN | WS_OP_PING, payload, 125);
	put_frame(&b, FIN | WS_OP_PONG, payload, 125);
	expect(&want, "ping", payload, 125);
	expect(&want, "pong", payload, 125);
	check("125-byte ping and pong", &b, 10, 0, want.text);

	for (op = WS_OP_CLOSE; op <= WS_OP_PONG; op++) {
		bytes_reset(&b);
		put_frame(&b, (uint8_t)(FIN | op), payload, 126);
		snprintf(name, sizeof name, "126-byte control frame 0x%X", op);
		check(name, &b, BIG, WS_CLOSE_PROTOCOL, "");
	}
	/* 7-bit length 127 on a control frame, with only the 64-bit length
	 * following: refused without waiting for the rest. */
	bytes_reset(&b);
	bytes_byte(&b, FIN | WS_OP_PING);
	bytes_byte(&b, 0x80 | 127);
	check("ping with a 64-bit length marker", &b, BIG, WS_CLOSE_PROTOCOL, "");

	bytes_free(&b);
}

static void test_close(void)
{
	static const int valid[] = {
		1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
		1012, 1013, 1014, 3000, 3999, 4000, 4999,
	};
	static const int invalid[] = {
		0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999,
		5000, 65535,
	};
	struct bytes b = { 0 };
	char name[64], want[64];
	char reason[123];
	struct trace t;
	size_t i;

	put_str(&b, FIN | WS_OP_CLOSE, "");
	check("close without a body", &b, BIG, 0, "close 1005 '';");

	bytes_reset(&b);
	put_close(&b, 1000, "bye", 3);
	put_str(&b, FIN | WS_OP_TEXT, "ignored");
	put_unmasked(&b, FIN | WS_OP_TEXT, "also ignored");
	check("close with a reason; input after it is ignored", &b, BIG, 0,
	      "close 1000 'bye';");

	bytes_reset(&b);
	put_str(&b, FIN | WS_OP_CLOSE, "x");
	check("close body of 1 byte", &b, BIG, WS_CLOSE_PROTOCOL, "");

	for (i = 0; i < sizeof valid / sizeof valid[0]; i++) {
		bytes_reset(&b);
		put_close(&b, valid[i], "", 0);
		snprintf(name, sizeof name, "close code %d accepted", valid[i]);
		snprintf(want, sizeof want, "close %d '';", valid[i]);
		check(name, &b, BIG, 0, want);
	}
	for (i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
		bytes_reset(&b);
		put_close(&b, invalid[i], "", 0);
		snprintf(name, sizeof name, "close code %d refused", invalid[i]);
		check(name, &b, BIG, WS_CLOSE_PROTOCOL, "");
	}

	bytes_reset(&b);
	put_close(&b, 1000, "\xE2\x82\xAC ok", 6);
	check("close reason in UTF-8", &b, BIG, 0, "close 1000 '\\xE2\\x82\\xAC ok';");
	bytes_reset(&b);
	put_close(&b, 1000, "bad \xC0\xAF", 6);
	check("close reason not UTF-8", &b, BIG, WS_CLOSE_BAD_DATA, "");
	bytes_reset(&b);
	put_close(&b, 1000, "cut \xE2\x82", 6);
	check("close reason ends inside a code point", &b, BIG, WS_CLOSE_BAD_DATA, "");

	memset(reason, 'r', sizeof reason);
	bytes_reset(&b);
	put_close(&b, 4000, reason, sizeof reason);
	trace_reset(&t);
	expect(&t, "close 4000", reason, sizeof reason);
	check("close with a 123-byte reason", &b, BIG, 0, t.text);

	bytes_free(&b);
}

static void test_utf8_text(void)
{
	struct bytes b = { 0 };

	put_str(&b, FIN | WS_OP_TEXT, "\xC0\xAF");
	check("overlong in text", &b, BIG, WS_CLOSE_BAD_DATA, "");
	bytes_reset(&b);
	put_str(&b, FIN | WS_OP_TEXT, "\xED\xA0\x80");
	check("surrogate in text", &b, BIG, WS_CLOSE_BAD_DATA, "");
	bytes_reset(&b);
	put_str(&b, FIN | WS_OP_TEXT, "\xF4\x90\x80\x80");
	check("above U+10FFFF in text", &b, BIG, WS_CLOSE_BAD_DATA, "");
	bytes_reset(&b);
	put_str(&b, FIN | WS_OP_TEXT, "ok \xE2\x82");
	check("text ends inside a code point", &b, BIG, WS_CLOSE_BAD_DATA, "");

	bytes_reset(&b);
	put_str(&b, WS_OP_TEXT, "\xE2");
	put_str(&b, FIN | WS_OP_PING, "");
	put_str(&b, WS_OP_CONT, "\x82");
	put_str(&b, FIN | WS_OP_CONT, "\xAC");
	check("code point split across fragments", &b, BIG, 0,
	      "ping '';text '\\xE2\\x82\\xAC';");

	bytes_reset(&b);
	put_str(&b, WS_OP_TEXT, "ok \xE2\x82");
	put_str(&b, FIN | WS_OP_CONT, "");
	check("fragments end inside a code point", &b, BIG, WS_CLOSE_BAD_DATA, "");

	/* Only the first fragment exists: the error must not wait for FIN. */
	bytes_reset(&b);
	put_str(&b, WS_OP_TEXT, "bad \xC0\xAF");
	check("invalid first fragment fails before the message ends", &b, BIG,
	      WS_CLOSE_BAD_DATA, "");

	/* Only part of one frame exists: the error must not wait for its end. */
	bytes_reset(&b);
	{
		uint8_t mask[4] = { 1, 2, 3, 4 };

		put_header(&b, FIN | WS_OP_TEXT, 1, W_MIN, 100, mask);
		put_masked(&b, "\xFF", 1, mask);
	}
	check("invalid bytes fail before the frame ends", &b, BIG, WS_CLOSE_BAD_DATA, "");

	bytes_free(&b);
}

static void fill_pattern(uint8_t *p, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

static void test_lengths(void)
{
	static const struct {
		size_t len;
		enum width w;
		const char *name;
	} good[] = {
		{ 0, W_7, "7-bit length 0" },
		{ 125, W_7, "7-bit length 125" },
		{ 126, W_16, "16-bit length 126" },
		{ 300, W_16, "16-bit length 300" },
		{ 65535, W_16, "16-bit length 65535" },
		{ 65536, W_64, "64-bit length 65536" },
		{ 70001, W_64, "64-bit length 70001" },
	};
	static const struct {
		uint64_t len;
		enum width w;
		const char *name;
	} nonminimal[] = {
		{ 0, W_16, "16-bit length 0 (non-minimal)" },
		{ 125, W_16, "16-bit length 125 (non-minimal)" },
		{ 0, W_64, "64-bit length 0 (non-minimal)" },
		{ 125, W_64, "64-bit length 125 (non-minimal)" },
		{ 65535, W_64, "64-bit length 65535 (non-minimal)" },
	};
	struct bytes b = { 0 };
	uint8_t *payload = malloc(70001);
	struct trace want;
	size_t i;

	fill_pattern(payload, 70001, 7);
	for (i = 0; i < sizeof good / sizeof good[0]; i++) {
		bytes_reset(&b);
		put_frame_w(&b, FIN | WS_OP_BINARY, good[i].w, payload, good[i].len);
		trace_reset(&want);
		expect(&want, "bin", payload, good[i].len);
		check(good[i].name, &b, BIG, 0, want.text);
	}

	/* Only the header is given: the verdict needs nothing more. */
	for (i = 0; i < sizeof nonminimal / sizeof nonminimal[0]; i++) {
		uint8_t mask[4] = { 0, 0, 0, 0 };

		bytes_reset(&b);
		put_header(&b, FIN | WS_OP_BINARY, 1, nonminimal[i].w,
			   nonminimal[i].len, mask);
		check(nonminimal[i].name, &b, BIG, WS_CLOSE_PROTOCOL, "");
	}

	bytes_reset(&b);
	put_header(&b, FIN | WS_OP_BINARY, 1, W_64, UINT64_C(1) << 63, payload);
	check("64-bit length with the top bit set", &b, SIZE_MAX, WS_CLOSE_PROTOCOL, "");
	bytes_reset(&b);
	put_header(&b, FIN | WS_OP_BINARY, 1, W_64, UINT64_MAX, payload);
	check("64-bit length all ones", &b, SIZE_MAX, WS_CLOSE_PROTOCOL, "");
	bytes_reset(&b);
	put_header(&b, FIN | WS_OP_BINARY, 1, W_64, UINT64_C(1) << 62, payload);
	check("huge 64-bit length over the limit", &b, BIG, WS_CLOSE_TOO_BIG, "");

	/* Unmasking at every alignment: one long frame, the split tests cut
	 * it everywhere, and the mask key is not symmetric. */
	bytes_reset(&b);
	put_frame(&b, FIN | WS_OP_BINARY, payload, 301);
	put_frame(&b, FIN | WS_OP_BINARY, payload + 5, 17);
	trace_reset(&want);
	expect(&want, "bin", payload, 301);
	expect(&want, "bin", payload + 5, 17);
	check("unmasking at every split offset", &b, BIG, 0, want.text);

	free(payload);
	bytes_free(&b);
}

static void test_max_message(void)
{
	struct bytes b = { 0 };
	uint8_t payload[1001];
	struct trace want = { { 0 }, 0 };
	uint8_t mask[4] = { 9, 8, 7, 6 };

	fill_pattern(payload, sizeof payload, 3);

	put_frame(&b, FIN | WS_OP_BINARY, payload, 1000);
	expect(&want, "bin", payload, 1000);
	check("message exactly at max_message", &b, 1000, 0, want.text);
	bytes_reset(&b);
	put_frame(&b, FIN | WS_OP_BINARY, payload, 1001);
	check("message one byte over max_message", &b, 1000, WS_CLOSE_TOO_BIG, "");
	bytes_reset(&b);
	put_header(&b, FIN | WS_OP_TEXT, 1, W_MIN, 1001, mask);
	check("over the limit is refused from the header alone", &b, 1000,
	      WS_CLOSE_TOO_BIG, "");

	bytes_reset(&b);
	put_frame(&b, WS_OP_BINARY, payload, 600);
	put_frame(&b, FIN | WS_OP_PING, payload, 100);
	put_frame(&b, FIN | WS_OP_CONT, payload + 600, 400);
	trace_reset(&want);
	expect(&want, "ping", payload, 100);
	expect(&want, "bin", payload, 1000);
	check("fragments summing exactly to max_message; pings do not count",
	      &b, 1000, 0, want.text);

	bytes_reset(&b);
	put_frame(&b, WS_OP_TEXT, "aaaaaaaaaa", 10);
	put_frame(&b, WS_OP_CONT, payload, 0);
	put_header(&b, FIN | WS_OP_CONT, 1, W_MIN, 991, mask);
	check("fragments summing to one over max_message", &b, 1000,
	      WS_CLOSE_TOO_BIG, "");

	bytes_reset(&b);
	put_frame(&b, WS_OP_BINARY, payload, 600);
	put_header(&b, FIN | WS_OP_CONT, 1, W_64, INT64_MAX, mask);
	check("a huge fragment after a small one does not wrap the sum", &b, 1000,
	      WS_CLOSE_TOO_BIG, "");

	bytes_reset(&b);
	put_str(&b, FIN | WS_OP_TEXT, "");
	put_str(&b, FIN | WS_OP_PING, "pp");
	put_str(&b, FIN | WS_OP_TEXT, "x");
	check("max_message 0 allows only empty messages", &b, 0, WS_CLOSE_TOO_BIG,
	      "text '';ping 'pp';");

	bytes_free(&b);
}

/* Direct checks on the reader's private state: memory behaviour is part of
 * the contract even though the callbacks cannot see it. */
static void test_buffer_reuse(void)
{
	struct bytes b = { 0 };
	struct ws_reader r;
	struct trace t = { { 0 }, 0 };
	uint8_t *big = malloc(200000);
	uint8_t mask[4] = { 1, 2, 3, 4 };
	uint8_t *kept;
	const char *why = NULL;

	fill_pattern(big, 200000, 11);
	ws_reader_init(&r, 1 << 20, &callbacks, &t);

	put_str(&b, FIN | WS_OP_TEXT, "first");
	is_int(ws_reader_feed(&r, b.p, b.len, &why), 0, "small message");
	ok(r.msg == NULL && r.msg_cap == 0,
	   "an idle reader holds no buffer after a message (%zu)", r.msg_cap);
	bytes_reset(&b);
	put_str(&b, FIN | WS_OP_TEXT, "second");
	put_str(&b, WS_OP_BINARY, "third");
	is_int(ws_reader_feed(&r, b.p, b.len, &why), 0, "a message and half of another");
	kept = r.msg;
	ok(kept != NULL && r.msg_cap <= 4096,
	   "a message in progress has a small buffer (%zu)", r.msg_cap);
	bytes_reset(&b);
	put_str(&b, FIN | WS_OP_CONT, " part");
	is_int(ws_reader_feed(&r, b.p, b.len, &why), 0, "the rest of it");
	ok(r.msg == NULL, "and gives it back once the message is whole");

	bytes_reset(&b);
	put_frame(&b, FIN | WS_OP_BINARY, big, 200000);
	is_int(ws_reader_feed(&r, b.p, b.len, &why), 0, "200 KB message");
	ok(r.msg == NULL && r.msg_cap == 0, "no buffer kept after it (%zu)", r.msg_cap);

	/* A header announcing a huge frame must not allocate for it up front:
	 * memory follows the bytes that actually arrive. */
	bytes_reset(&b);
	put_header(&b, FIN | WS_OP_BINARY, 1, W_64, 900000, mask);
	bytes_add(&b, big, 10);
	is_int(ws_reader_feed(&r, b.p, b.len, &why), 0, "start of a 900 KB frame");
	ok(r.msg_cap <= 64 * 1024, "no allocation ahead of the data (%zu)", r.msg_cap);
	ws_reader_free(&r);
	ok(r.msg == NULL && r.msg_cap == 0, "free releases the buffer");

	bytes_free(&b);
	free(big);
}

static void test_after_error(void)
{
	struct bytes b = { 0 };
	struct ws_reader r;
	struct trace t = { { 0 }, 0 };
	const char *why = NULL;

	ws_reader_init(&r, BIG, &callbacks, &t);
	put_unmasked(&b, FIN | WS_OP_TEXT, "x");
	is_int(ws_reader_feed(&r, b.p, b.len, &why), WS_CLOSE_PROTOCOL, "error reported");
	ok(why != NULL && strstr(why, "mask") != NULL, "reason names the problem: %s", why);
	bytes_reset(&b);
	put_str(&b, FIN | WS_OP_TEXT, "later");
	why = NULL;
	is_int(ws_reader_feed(&r, b.p, b.len, &why), 0, "input after an error returns 0");
	is_str(t.text, "", "and produces no callbacks");
	ok(why == NULL, "and sets no reason");
	ws_reader_free(&r);

	/* A reader without a pong handler, and feeds with NULL why. */
	{
		static const struct ws_reader_callbacks no_pong = {
			on_message, on_ping, NULL, on_close,
		};

		trace_reset(&t);
		ws_reader_init(&r, BIG, &no_pong, &t);
		bytes_reset(&b);
		put_str(&b, FIN | WS_OP_PONG, "ignored");
		put_str(&b, FIN | WS_OP_TEXT, "after");
		is_int(ws_reader_feed(&r, b.p, b.len, NULL), 0, "pong without a handler");
		is_str(t.text, "text 'after';", "pong dropped, message delivered");
		is_int(ws_reader_feed(&r, NULL, 0, NULL), 0, "empty feed");
		bytes_reset(&b);
		put_unmasked(&b, FIN | WS_OP_TEXT, "x");
		is_int(ws_reader_feed(&r, b.p, b.len, NULL), WS_CLOSE_PROTOCOL,
		       "error with a NULL why pointer");
		ws_reader_free(&r);
	}
	bytes_free(&b);
}

/* ------------------------------------------------------------ encoders */

static void test_header_encode(void)
{
	static const struct {
		uint64_t len;
		size_t hlen;
		const char *bytes;
	} cases[] = {
		{ 0, 2, "\x81\x00" },
		{ 1, 2, "\x81\x01" },
		{ 125, 2, "\x81\x7D" },
		{ 126, 4, "\x81\x7E\x00\x7E" },
		{ 65535, 4, "\x81\x7E\xFF\xFF" },
		{ 65536, 10, "\x81\x7F\x00\x00\x00\x00\x00\x01\x00\x00" },
		{ UINT64_C(0x0102030405060708), 10, "\x81\x7F\x01\x02\x03\x04\x05\x06\x07\x08" },
	};
	uint8_t out[WS_MAX_HEADER];
	size_t i, n;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		memset(out, 0xEE, sizeof out);
		n = ws_header_encode(out, WS_OP_TEXT, cases[i].len);
		is_int(n, cases[i].hlen, "header for %llu is %zu bytes",
		       (unsigned long long)cases[i].len, cases[i].hlen);
		ok(memcmp(out, cases[i].bytes, n) == 0, "header bytes for %llu",
		   (unsigned long long)cases[i].len);
	}
	ws_header_encode(out, WS_OP_BINARY, 0);
	is_int(out[0], 0x82, "binary: FIN + opcode 2");
	ws_header_encode(out, WS_OP_CLOSE, 0);
	is_int(out[0], 0x88, "close: FIN + opcode 8");
	ws_header_encode(out, WS_OP_PING, 0);
	is_int(out[0], 0x89, "ping: FIN + opcode 9");
	ws_header_encode(out, WS_OP_PONG, 0);
	is_int(out[0], 0x8A, "pong: FIN + opcode A");
}

/* The reader must accept what the encoder writes, once masked the way a
 * client would. */
static void test_encode_roundtrip(void)
{
	static const size_t lens[] = { 0, 125, 126, 65535, 65536 };
	uint8_t *payload = malloc(65536);
	struct bytes b = { 0 };
	uint8_t hdr[WS_MAX_HEADER];
	uint8_t mask[4] = { 0xA1, 0xB2, 0xC3, 0xD4 };
	size_t i, n;

	fill_pattern(payload, 65536, 5);
	for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		struct trace t, want = { { 0 }, 0 };
		int rc;

		bytes_reset(&b);
		n = ws_header_encode(hdr, WS_OP_BINARY, lens[i]);
		hdr[1] |= 0x80;
		bytes_add(&b, hdr, n);
		bytes_add(&b, mask, 4);
		put_masked(&b, payload, lens[i], mask);
		rc = run_cuts(&b, BIG, NULL, 0, &t);
		expect(&want, "bin", payload, lens[i]);
		ok(rc == 0 && strcmp(t.text, want.text) == 0,
		   "encoded %zu-byte header reads back", lens[i]);
	}
	free(payload);
	bytes_free(&b);
}

static void test_close_body(void)
{
	uint8_t out[125];
	char reason[200];
	size_t n;

	n = ws_close_body(out, 1000, NULL);
	is_int(n, 2, "no reason: 2 bytes");
	ok(out[0] == 0x03 && out[1] == 0xE8, "1000 big-endian");
	n = ws_close_body(out, 4999, "bye");
	is_int(n, 5, "short reason");
	ok(out[0] == 0x13 && out[1] == 0x87 && memcmp(out + 2, "bye", 3) == 0,
	   "4999 and the reason");

	memset(reason, 'a', sizeof reason);
	reason[123] = '\0';
	is_int(ws_close_body(out, 1000, reason), 125, "123-byte reason kept whole");
	reason[123] = 'a';
	reason[124] = '\0';
	is_int(ws_close_body(out, 1000, reason), 125, "124-byte reason cut to 123");

	/* A 3-byte euro sign placed to end at 123, 124 and 125 bytes. */
	memset(reason, 'a', sizeof reason);
	memcpy(reason + 120, "\xE2\x82\xAC", 4);
	is_int(ws_close_body(out, 1000, reason), 125, "euro ending at 123 kept");
	memset(reason, 'a', sizeof reason);
	memcpy(reason + 121, "\xE2\x82\xAC", 4);
	is_int(ws_close_body(out, 1000, reason), 2 + 121, "euro ending at 124 dropped whole");
	ok(utf8_valid(out + 2, 121), "truncated reason is valid UTF-8");
	memset(reason, 'a', sizeof reason);
	memcpy(reason + 122, "\xE2\x82\xAC", 4);
	is_int(ws_close_body(out, 1000, reason), 2 + 122, "euro ending at 125 dropped whole");
	memset(reason, 'a', sizeof reason);
	memcpy(reason + 120, "\xF0\x9F\x98\x80", 5);
	is_int(ws_close_body(out, 1000, reason), 2 + 120, "emoji across the cut dropped whole");

	/* And the result is a close frame the reader accepts. */
	{
		struct bytes b = { 0 };
		struct trace t;

		n = ws_close_body(out, 1001, "going away");
		put_frame(&b, FIN | WS_OP_CLOSE, out, n);
		is_int(run_cuts(&b, BIG, NULL, 0, &t), 0, "close body reads back");
		is_str(t.text, "close 1001 'going away';", "code and reason read back");
		bytes_free(&b);
	}
}

static void test_close_code_valid(void)
{
	static const int valid[] = {
		1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012,
		1013, 1014, 3000, 3500, 3999, 4000, 4999,
	};
	static const int invalid[] = {
		-1, 0, 999, 1004, 1005, 1006, 1015, 1016, 1999, 2000, 2999,
		5000, 65535, 70000,
	};
	size_t i;
	int all = 1;

	for (i = 0; i < sizeof valid / sizeof valid[0]; i++)
		if (!ws_close_code_valid(valid[i])) {
			printf("# %d should be valid\n", valid[i]);
			all = 0;
		}
	ok(all, "valid close codes accepted");
	all = 1;
	for (i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
		if (ws_close_code_valid(invalid[i])) {
			printf("# %d should be invalid\n", invalid[i]);
			all = 0;
		}
	ok(all, "invalid close codes refused");
}

int main(void)
{
	test_basic();
	test_fragmentation();
	test_protocol_errors();
	test_control_lengths();
	test_close();
	test_utf8_text();
	test_lengths();
	test_max_message();
	test_buffer_reuse();
	test_after_error();
	test_header_encode();
	test_encode_roundtrip();
	test_close_body();
	test_close_code_valid();
	return done_testing();
}
