/*
 * RFC 6455 framing for the server side: an incremental reader that turns
 * the bytes a client sends into messages and control frames, and the small
 * encoders for what the server sends back. The reader is a push parser: the
 * connection hands it whatever the socket produced, split anywhere, and it
 * keeps just enough state (the partial header, the bytes still owed for the
 * current frame, the message being reassembled) to behave exactly as if
 * everything had arrived at once. Every rule violation is decided from the
 * header alone where the RFC allows it, so an oversized or malformed frame
 * is refused before any of its payload is buffered.
 */
#include "ws_frame.h"
#include "utf8.h"
#include "ws_deflate.h"

#include <stdlib.h>
#include <string.h>

/* Header byte 0 */
#define WS_FIN   0x80
#define WS_RSV   0x70
#define WS_OPMASK 0x0F
/* Header byte 1 */
#define WS_MASKED 0x80
#define WS_LEN7   0x7F

#define WS_LEN16_MARK 126
#define WS_LEN64_MARK 127
#define WS_MAX_CONTROL 125
#define WS_MASK_LEN 4

/* First size of a message buffer (it doubles as pieces arrive); the
 * buffer is freed when the message has been handled, see msg_reset(). */
#define WS_MSG_MIN  1024

/* Close bodies are a 2-byte code plus a reason. */
#define WS_CLOSE_REASON_MAX (WS_MAX_CONTROL - 2)

static int is_control(int opcode)
{
	return (opcode & 0x08) != 0;
}

static int is_known_opcode(int opcode)
{
	switch (opcode) {
	case WS_OP_CONT:
	case WS_OP_TEXT:
	case WS_OP_BINARY:
	case WS_OP_CLOSE:
	case WS_OP_PING:
	case WS_OP_PONG:
		return 1;
	default:
		return 0;
	}
}

int ws_close_code_valid(int code)
{
	if (code >= 1000 && code <= 1003)
		return 1;
	/* 1004 is reserved; 1005 and 1006 are never sent on the wire. 1012-1014
	 * were registered with IANA after the RFC and are sent by real servers;
	 * 1015 is, like 1005, a local-only value. */
	if (code >= 1007 && code <= 1014)
		return 1;
	/* 3000-3999 IANA-registered, 4000-4999 private use. */
	return code >= 3000 && code <= 4999;
}

void ws_reader_init(struct ws_reader *r, size_t max_message,
		    const struct ws_reader_callbacks *cb, void *arg)
{
	memset(r, 0, sizeof *r);
	r->max_message = max_message;
	r->cb = cb;
	r->arg = arg;
	r->utf8_state = UTF8_ACCEPT;
}

void ws_reader_allow_deflate(struct ws_reader *r)
{
	r->deflate = 1;
}

void ws_reader_free(struct ws_reader *r)
{
	free(r->msg);
	r->msg = NULL;
	r->msg_len = r->msg_cap = 0;
}

static int fail(struct ws_reader *r, int code, const char *reason,
		const char **why)
{
	r->done = 1;
	if (why)
		*why = reason;
	return code;
}

/* ------------------------------------------------------------ header */

static size_t ext_len_bytes(const struct ws_reader *r)
{
	switch (r->hdr[1] & WS_LEN7) {
	case WS_LEN16_MARK:
		return 2;
	case WS_LEN64_MARK:
		return 8;
	default:
		return 0;
	}
}

/* Header bytes needed in total: only known once byte 1 is in. */
static size_t header_need(const struct ws_reader *r)
{
	if (r->hdr_have < 2)
		return 2;
	return 2 + ext_len_bytes(r) + WS_MASK_LEN;
}

static int check_byte0(struct ws_reader *r, const char **why)
{
	uint8_t b = r->hdr[0];
	int opcode = b & WS_OPMASK;

	r->fin = (b & WS_FIN) != 0;
	r->opcode = opcode;
	/* RSV1 only on the first frame of a data message, and only once
	 * permessage-deflate is agreed (RFC 7692 6.1). */
	if ((b & WS_RSV & ~WS_RSV1) || ((b & WS_RSV1) &&
	    (!r->deflate || is_control(opcode) || opcode == WS_OP_CONT)))
		return fail(r, WS_CLOSE_PROTOCOL, "reserved bits set", why);
	if (!is_known_opcode(opcode))
		return fail(r, WS_CLOSE_PROTOCOL, "reserved opcode", why);
	if (is_control(opcode)) {
		if (!r->fin)
			return fail(r, WS_CLOSE_PROTOCOL, "fragmented control frame", why);
		return 0;
	}
	if (opcode == WS_OP_CONT) {
		if (!r->msg_opcode)
			return fail(r, WS_CLOSE_PROTOCOL, "nothing to continue", why);
		return 0;
	}
	if (r->msg_opcode)
		return fail(r, WS_CLOSE_PROTOCOL, "expected a continuation frame", why);
	r->msg_opcode = opcode;
	r->msg_deflated = (b & WS_RSV1) != 0;
	r->msg_len = 0;
	r->utf8_state = UTF8_ACCEPT;
	return 0;
}

static int check_byte1(struct ws_reader *r, const char **why)
{
	unsigned len7 = r->hdr[1] & WS_LEN7;

	if (!(r->hdr[1] & WS_MASKED))
		return fail(r, WS_CLOSE_PROTOCOL, "client frame not masked", why);
	if (is_control(r->opcode) && len7 > WS_MAX_CONTROL)
		return fail(r, WS_CLOSE_PROTOCOL, "control frame too long", why);
	if (r->opcode == WS_OP_CLOSE && len7 == 1)
		return fail(r, WS_CLOSE_PROTOCOL, "close frame with a 1-byte body", why);
	return 0;
}

static uint64_t read_be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	while (n--)
		v = (v << 8) | *p++;
	return v;
}

/* The payload length is complete: decode it, insist on the shortest form
 * (RFC 6455 5.2), and refuse an over-limit message before buffering any of
 * it. */
static int check_length(struct ws_reader *r, const char **why)
{
	size_t ext = ext_len_bytes(r);
	uint64_t len = ext ? read_be(r->hdr + 2, ext) : (r->hdr[1] & WS_LEN7);

	if (ext == 8 && (len >> 63))
		return fail(r, WS_CLOSE_PROTOCOL, "64-bit length has its top bit set", why);
	if ((ext == 2 && len < WS_LEN16_MARK) || (ext == 8 && len <= 0xFFFF))
		return fail(r, WS_CLOSE_PROTOCOL, "length not minimally encoded", why);
	/* msg_len never exceeds max_message, so the subtraction cannot wrap,
	 * and comparing in 64 bits avoids adding lengths that could. */
	if (!is_control(r->opcode) && len > (uint64_t)(r->max_message - r->msg_len))
		return fail(r, WS_CLOSE_TOO_BIG, "message too big", why);
	r->remaining = len;
	return 0;
}

static void header_complete(struct ws_reader *r)
{
	memcpy(r->mask, r->hdr + r->hdr_have - WS_MASK_LEN, WS_MASK_LEN);
	r->mask_pos = 0;
	r->ctl_len = 0;
}

/* Take one header byte and apply every check that byte makes possible, so
 * errors surface at the same byte however the input was split. */
static int header_byte(struct ws_reader *r, uint8_t b, const char **why)
{
	size_t ext;

	r->hdr[r->hdr_have++] = b;
	if (r->hdr_have == 1)
		return check_byte0(r, why);
	if (r->hdr_have == 2) {
		int rc = check_byte1(r, why);

		if (rc || ext_len_bytes(r))
			return rc;
		return check_length(r, why);
	}
	ext = ext_len_bytes(r);
	if (ext && r->hdr_have == 2 + ext)
		return check_length(r, why);
	if (r->hdr_have == header_need(r))
		header_complete(r);
	return 0;
}

/* ------------------------------------------------------------ payload */

/*
 * XOR p[0..n) with the mask, starting pos bytes into it. The key is rotated
 * once so the bulk can go eight bytes at a time; both the data and the
 * doubled key are loaded with memcpy so byte order does not matter.
 */
static void unmask(uint8_t *p, size_t n, const uint8_t mask[4], unsigned *pos)
{
	uint8_t key[8];
	uint64_t k, w;
	size_t i;

	for (i = 0; i < sizeof key; i++)
		key[i] = mask[(*pos + i) & 3];
	memcpy(&k, key, sizeof k);
	for (i = 0; i + sizeof w <= n; i += sizeof w) {
		memcpy(&w, p + i, sizeof w);
		w ^= k;
		memcpy(p + i, &w, sizeof w);
	}
	for (; i < n; i++)
		p[i] ^= key[i & 7];
	*pos = (unsigned)((*pos + n) & 3);
}

/* Make room for need bytes, doubling so a message arriving in many small
 * pieces costs a logarithmic number of reallocations. */
static int msg_reserve(struct ws_reader *r, size_t need)
{
	size_t cap = r->msg_cap ? r->msg_cap : WS_MSG_MIN;
	uint8_t *p;

	if (need <= r->msg_cap)
		return 0;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
	/* No point holding more than a message may ever need. */
	if (cap > r->max_message)
		cap = r->max_message;
	p = realloc(r->msg, cap);
	if (!p)
		return -1;
	r->msg = p;
	r->msg_cap = cap;
	return 0;
}

static void msg_reset(struct ws_reader *r)
{
	r->msg_opcode = 0;
	r->msg_deflated = 0;
	r->msg_len = 0;
	r->utf8_state = UTF8_ACCEPT;
	/* An idle socket holds no message buffer: clients send a few small
	 * actions in a socket's life, while a server holds many thousands of
	 * sockets, so a kilobyte kept per socket would be most of its memory. */
	free(r->msg);
	r->msg = NULL;
	r->msg_cap = 0;
}

static int data_payload(struct ws_reader *r, const uint8_t *src, size_t n,
			const char **why)
{
	uint8_t *dst;

	if (msg_reserve(r, r->msg_len + n) < 0)
		return fail(r, WS_CLOSE_INTERNAL, "out of memory", why);
	dst = r->msg + r->msg_len;
	memcpy(dst, src, n);
	unmask(dst, n, r->mask, &r->mask_pos);
	r->msg_len += n;
	/* Checking each piece as it lands rejects bad text without waiting
	 * for the rest of the message. */
	if (r->msg_opcode == WS_OP_TEXT && !r->msg_deflated &&
	    utf8_feed(&r->utf8_state, dst, n) == UTF8_REJECT)
		return fail(r, WS_CLOSE_BAD_DATA, "invalid UTF-8 in text message", why);
	return 0;
}

static void control_payload(struct ws_reader *r, const uint8_t *src, size_t n)
{
	uint8_t *dst = r->ctl + r->ctl_len;

	memcpy(dst, src, n);
	unmask(dst, n, r->mask, &r->mask_pos);
	r->ctl_len += n;
}

static int payload(struct ws_reader *r, const uint8_t *src, size_t n,
		   const char **why)
{
	r->remaining -= n;
	if (is_control(r->opcode)) {
		control_payload(r, src, n);
		return 0;
	}
	return data_payload(r, src, n, why);
}

/* ------------------------------------------------------------ frame end */

static int deliver_close(struct ws_reader *r, const char **why)
{
	const struct ws_reader_callbacks *cb = r->cb;
	int code = WS_CLOSE_NO_STATUS;
	const char *reason = "";
	size_t reason_len = 0;

	if (r->ctl_len >= 2) {
		code = (r->ctl[0] << 8) | r->ctl[1];
		reason = (const char *)r->ctl + 2;
		reason_len = r->ctl_len - 2;
		if (!ws_close_code_valid(code))
			return fail(r, WS_CLOSE_PROTOCOL, "invalid close code", why);
		if (!utf8_valid(reason, reason_len))
			return fail(r, WS_CLOSE_BAD_DATA, "close reason is not UTF-8", why);
	}
	/* Set first so a callback that feeds more input sees a closed reader. */
	r->done = 1;
	if (cb && cb->on_close)
		cb->on_close(r->arg, code, reason, reason_len);
	return 0;
}

static int finish_control(struct ws_reader *r, const char **why)
{
	const struct ws_reader_callbacks *cb = r->cb;

	switch (r->opcode) {
	case WS_OP_CLOSE:
		return deliver_close(r, why);
	case WS_OP_PING:
		if (cb && cb->on_ping)
			cb->on_ping(r->arg, r->ctl, r->ctl_len);
		return 0;
	default:
		if (cb && cb->on_pong)
			cb->on_pong(r->arg, r->ctl, r->ctl_len);
		return 0;
	}
}

static int finish_data(struct ws_reader *r, const char **why)
{
	static const uint8_t empty[1];
	const struct ws_reader_callbacks *cb = r->cb;

	const uint8_t *data = r->msg ? r->msg : empty;
	size_t len = r->msg_len;

	if (!r->fin)
		return 0;
	if (r->msg_deflated) {
		switch (ws_inflate_message(data, len, r->max_message, &data, &len)) {
		case WS_INFLATE_OK:
			break;
		case WS_INFLATE_TOO_BIG:
			return fail(r, WS_CLOSE_TOO_BIG, "message too big once inflated", why);
		case WS_INFLATE_BAD_DATA:
			return fail(r, WS_CLOSE_BAD_DATA, "invalid deflate data", why);
		default:
			return fail(r, WS_CLOSE_INTERNAL, "out of memory", why);
		}
		if (r->msg_opcode == WS_OP_TEXT && !utf8_valid((const char *)data, len))
			return fail(r, WS_CLOSE_BAD_DATA, "invalid UTF-8 in text message", why);
	} else if (r->msg_opcode == WS_OP_TEXT && r->utf8_state != UTF8_ACCEPT) {
		return fail(r, WS_CLOSE_BAD_DATA, "text message ends inside a UTF-8 sequence", why);
	}
	/* Callers should not have to special-case a NULL pointer for an empty
	 * message that never needed a buffer. */
	if (cb && cb->on_message)
		cb->on_message(r->arg, r->msg_opcode, data, len);
	msg_reset(r);
	return 0;
}

static int finish_frame(struct ws_reader *r, const char **why)
{
	r->hdr_have = 0;
	if (is_control(r->opcode))
		return finish_control(r, why);
	return finish_data(r, why);
}

/* ------------------------------------------------------------ feed */

int ws_reader_feed(struct ws_reader *r, const void *data, size_t len,
		   const char **why)
{
	const uint8_t *p = data;
	const uint8_t *end = len ? p + len : p;
	int rc;

	while (!r->done) {
		if (r->hdr_have < header_need(r)) {
			if (p == end)
				break;
			rc = header_byte(r, *p++, why);
		} else if (r->remaining > 0) {
			size_t n = (size_t)(end - p);

			if (n == 0)
				break;
			if (n > r->remaining)
				n = (size_t)r->remaining;
			rc = payload(r, p, n, why);
			p += n;
		} else {
			rc = finish_frame(r, why);
		}
		if (rc)
			return rc;
	}
	return 0;
}

/* ------------------------------------------------------------ encoding */

size_t ws_header_encode(uint8_t *out, int opcode, uint64_t payload_len)
{
	size_t i;

	out[0] = (uint8_t)(WS_FIN | (opcode & WS_OPMASK));
	if (payload_len <= WS_MAX_CONTROL) {
		out[1] = (uint8_t)payload_len;
		return 2;
	}
	if (payload_len <= 0xFFFF) {
		out[1] = WS_LEN16_MARK;
		out[2] = (uint8_t)(payload_len >> 8);
		out[3] = (uint8_t)payload_len;
		return 4;
	}
	out[1] = WS_LEN64_MARK;
	for (i = 0; i < 8; i++)
		out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
	return 10;
}

size_t ws_header_len(const uint8_t *frame)
{
	switch (frame[1] & WS_LEN7) {
	case WS_LEN16_MARK:
		return 4;
	case WS_LEN64_MARK:
		return 10;
	default:
		return 2;
	}
}

/* The longest prefix of s, at most max bytes, that does not end inside a
 * UTF-8 sequence: back off over continuation bytes at the cut. */
static size_t utf8_prefix(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n <= max)
		return n;
	n = max;
	while (n > 0 && ((uint8_t)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

size_t ws_close_body(uint8_t *out, int code, const char *reason)
{
	size_t n = reason ? utf8_prefix(reason, WS_CLOSE_REASON_MAX) : 0;

	out[0] = (uint8_t)(code >> 8);
	out[1] = (uint8_t)code;
	memcpy(out + 2, reason ? reason : "", n);
	return 2 + n;
}
