/*
 * Fuzz target: the incremental WebSocket frame reader with its UTF-8
 * validation, as a differential check. The same byte stream is fed once in
 * one piece and once cut at points chosen by the input; both runs must
 * report the same messages, control frames and verdict, since TCP may cut
 * a stream anywhere. Every reported message must also obey the reader's
 * contract (text is valid UTF-8, sizes are within the limits).
 *
 * Input: byte 0 picks max_message, byte 1 seeds the cutting points and
 * (its low bit) turns permessage-deflate on, so RSV1 messages go through
 * the inflater (whose output limit and errors must not depend on the
 * cuts either); the rest is the stream of client frames.
 */
#include "fuzz_check.h"
#include "utf8.h"
#include "ws_frame.h"

#include <stdbool.h>
#include <string.h>

/* What a run reported, serialised: one record per callback. */
struct trace {
	uint8_t *p;
	size_t len, cap;
	size_t max_message;
};

static void put(struct trace *t, const void *data, size_t len)
{
	if (t->len + len > t->cap) {
		size_t cap = t->cap ? t->cap : 256;
		while (cap < t->len + len)
			cap *= 2;
		t->p = realloc(t->p, cap);
		FUZZ_CHECK(t->p != NULL);
		t->cap = cap;
	}
	if (len > 0)
		memcpy(t->p + t->len, data, len);
	t->len += len;
}

static void record(struct trace *t, uint8_t kind, int code, const void *data,
		   size_t len)
{
	put(t, &kind, 1);
	put(t, &code, sizeof code);
	put(t, &len, sizeof len);
	put(t, data, len);
}

static void on_message(void *arg, int opcode, const uint8_t *data, size_t len)
{
	struct trace *t = arg;

	FUZZ_CHECK(opcode == WS_OP_TEXT || opcode == WS_OP_BINARY);
	FUZZ_CHECK(len <= t->max_message);
	if (opcode == WS_OP_TEXT)
		FUZZ_CHECK(utf8_valid(data, len));
	record(t, 'm', opcode, data, len);
}

static void on_ping(void *arg, const uint8_t *data, size_t len)
{
	FUZZ_CHECK(len <= 125);
	record(arg, 'i', 0, data, len);
}

static void on_pong(void *arg, const uint8_t *data, size_t len)
{
	FUZZ_CHECK(len <= 125);
	record(arg, 'o', 0, data, len);
}

static void on_close(void *arg, int code, const char *reason, size_t len)
{
	FUZZ_CHECK(code == WS_CLOSE_NO_STATUS || ws_close_code_valid(code));
	FUZZ_CHECK(len <= 123 && utf8_valid(reason, len));
	FUZZ_CHECK(code != WS_CLOSE_NO_STATUS || len == 0);
	record(arg, 'c', code, reason, len);
}

static const struct ws_reader_callbacks callbacks = {
	.on_message = on_message,
	.on_ping = on_ping,
	.on_pong = on_pong,
	.on_close = on_close,
};

/* Feed one piece from an exact-size copy; keep the first verdict. */
static void feed(struct ws_reader *r, const uint8_t *p, size_t len,
		 int *verdict, const char **why)
{
	uint8_t *copy = fuzz_dup(p, len);
	const char *w = NULL;
	int v = ws_reader_feed(r, copy, len, &w);

	free(copy);
	if (v != 0) {
		FUZZ_CHECK(v == WS_CLOSE_PROTOCOL || v == WS_CLOSE_BAD_DATA ||
			   v == WS_CLOSE_TOO_BIG);
		FUZZ_CHECK(w != NULL);
		FUZZ_CHECK(*verdict == 0);   /* further input is ignored */
		*verdict = v;
		*why = w;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct trace whole = { 0 }, cut = { 0 };
	struct ws_reader a, b;
	const char *why_a = NULL, *why_b = NULL;
	int verdict_a = 0, verdict_b = 0;
	uint32_t rng;
	size_t max_message, pos = 0;
	bool deflate;

	if (size < 2)
		return 0;
	/* Small limits reach "too big" often; 0 stands for the default. */
	max_message = data[0] == 0 ? 64 * 1024 : (size_t)data[0] * 3;
	rng = data[1] * 2654435761u + 1;
	deflate = data[1] & 1;
	data += 2;
	size -= 2;
	whole.max_message = cut.max_message = max_message;

	ws_reader_init(&a, max_message, &callbacks, &whole);
	if (deflate)
		ws_reader_allow_deflate(&a);
	feed(&a, data, size, &verdict_a, &why_a);

	ws_reader_init(&b, max_message, &callbacks, &cut);
	if (deflate)
		ws_reader_allow_deflate(&b);
	while (pos < size) {
		size_t n;
		rng = rng * 1103515245u + 12345u;
		/* Mostly short pieces (headers split mid-way), some empty,
		 * now and then a long one. */
		n = (rng >> 16) % 8 == 0 ? (rng >> 8) % 512 : (rng >> 16) % 5;
		if (n > size - pos)
			n = size - pos;
		feed(&b, data + pos, n, &verdict_b, &why_b);
		pos += n;
	}

	FUZZ_CHECK(verdict_a == verdict_b);
	FUZZ_CHECK(verdict_a == 0 || strcmp(why_a, why_b) == 0);
	FUZZ_CHECK(whole.len == cut.len);
	FUZZ_CHECK(whole.len == 0 || memcmp(whole.p, cut.p, whole.len) == 0);

	ws_reader_free(&a);
	ws_reader_free(&b);
	free(whole.p);
	free(cut.p);
	return 0;
}
