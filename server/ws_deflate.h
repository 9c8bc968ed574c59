/*
 * permessage-deflate (RFC 7692): choosing an offer in the opening
 * handshake, and the zlib work on whole messages.
 *
 * myxid always answers with server_no_context_takeover and
 * client_no_context_takeover: every message is compressed on its own, so
 * a published frame is compressed once and the same bytes go to every
 * subscriber (whatever each socket sent before), and a socket keeps no
 * inflate state between messages. The zlib streams are per thread (one
 * per event loop) and reset for each message.
 */
#ifndef MYXID_WS_DEFLATE_H
#define MYXID_WS_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_request;

/* The windows zlib can write raw deflate with: 2^9 .. 2^15 bytes. */
#define WS_DEFLATE_MIN_BITS 9
#define WS_DEFLATE_MAX_BITS 15
#define WS_DEFLATE_VARIANTS (WS_DEFLATE_MAX_BITS - WS_DEFLATE_MIN_BITS + 1)

/* Longest Sec-WebSocket-Extensions value we answer with. */
#define WS_DEFLATE_RESPONSE_MAX 128

/*
 * The first acceptable permessage-deflate offer of req's
 * Sec-WebSocket-Extensions headers, as RFC 7692 section 5 and 7.1 decide:
 * an offer with an unknown, repeated or invalid parameter is declined (the
 * next one is tried), as is server_max_window_bits=8 (zlib cannot write an
 * 8-bit window). Returns true with the window bits our frames may use in
 * *server_bits and the response header value in response; false if no
 * offer is acceptable (the socket is then uncompressed).
 */
bool ws_deflate_negotiate(const struct http_request *req, unsigned *server_bits,
			  char response[WS_DEFLATE_RESPONSE_MAX]);

enum ws_inflate_status {
	WS_INFLATE_OK = 0,
	WS_INFLATE_TOO_BIG,       /* past max: a deflate bomb stops there */
	WS_INFLATE_BAD_DATA,      /* not valid deflate data */
	WS_INFLATE_NO_MEMORY
};

/*
 * Inflate one whole compressed message (its frames' payloads joined) into
 * this thread's buffer, refusing to produce more than max bytes. Returns
 * WS_INFLATE_OK with *out (valid until this thread's next call) and
 * *out_len, or why not.
 */
enum ws_inflate_status ws_inflate_message(const uint8_t *in, size_t len, size_t max,
		       const uint8_t **out, size_t *out_len);

/*
 * Deflate one whole message with a window of 2^bits bytes at level (1-9),
 * as RFC 7692 7.2.1 says: the final empty block's 00 00 ff ff removed.
 * Returns a malloc'd buffer with *out_len, or NULL (out of memory).
 */
uint8_t *ws_deflate_message(const uint8_t *in, size_t len, unsigned bits, int level,
			    size_t *out_len);

#endif
