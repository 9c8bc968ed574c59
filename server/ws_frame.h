/*
 * RFC 6455 framing: an incremental reader for client->server frames and the
 * encoder for server->client frame headers.
 *
 * The reader owns no socket. The connection feeds it whatever bytes arrived,
 * in pieces of any size; it calls back once per complete data message (after
 * reassembling fragments and validating text as UTF-8) and once per control
 * frame. Protocol violations end the reader with the close code the RFC
 * prescribes; the connection then sends that close frame.
 */
#ifndef MYXID_WS_FRAME_H
#define MYXID_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum ws_opcode {
	WS_OP_CONT = 0x0,
	WS_OP_TEXT = 0x1,
	WS_OP_BINARY = 0x2,
	WS_OP_CLOSE = 0x8,
	WS_OP_PING = 0x9,
	WS_OP_PONG = 0xA
};

/* Close codes used by the daemon (RFC 6455 section 7.4.1). */
#define WS_CLOSE_NORMAL        1000
#define WS_CLOSE_GOING_AWAY    1001
#define WS_CLOSE_PROTOCOL      1002
#define WS_CLOSE_UNSUPPORTED   1003
#define WS_CLOSE_NO_STATUS     1005  /* never sent on the wire */
#define WS_CLOSE_BAD_DATA      1007
#define WS_CLOSE_POLICY        1008
#define WS_CLOSE_TOO_BIG       1009
#define WS_CLOSE_INTERNAL      1011

struct ws_reader_callbacks {
	/* A complete data message. opcode is WS_OP_TEXT (already checked to be
	 * valid UTF-8) or WS_OP_BINARY. data is valid until the callback
	 * returns. */
	void (*on_message)(void *arg, int opcode, const uint8_t *data, size_t len);
	/* A ping; payload <= 125 bytes. The connection answers with a pong
	 * carrying the same bytes. */
	void (*on_ping)(void *arg, const uint8_t *data, size_t len);
	/* A pong (ignored by most callers; may be NULL). */
	void (*on_pong)(void *arg, const uint8_t *data, size_t len);
	/* A valid close frame. code is WS_CLOSE_NO_STATUS when the frame had no
	 * body; reason is valid UTF-8 of reason_len bytes (not NUL-terminated).
	 * The reader ignores everything after it. */
	void (*on_close)(void *arg, int code, const char *reason, size_t reason_len);
};

struct ws_reader {
	/* configuration */
	size_t max_message;           /* largest message (sum of fragments) */
	const struct ws_reader_callbacks *cb;
	void *arg;

	/* state: private to ws_frame.c */
	uint8_t hdr[14];              /* header bytes gathered so far */
	size_t hdr_have;
	int opcode;                   /* opcode of the current frame */
	int fin;
	uint64_t remaining;           /* payload bytes of the current frame left */
	uint8_t mask[4];
	unsigned mask_pos;
	int msg_opcode;               /* WS_OP_TEXT/BINARY while assembling, else 0 */
	uint8_t *msg;                 /* assembled data message (owned) */
	size_t msg_len, msg_cap;
	uint32_t utf8_state;
	uint8_t ctl[125];             /* payload of the current control frame */
	size_t ctl_len;
	int done;                     /* close seen or error: ignore input */
	int deflate;                  /* permessage-deflate was negotiated */
	int msg_deflated;             /* the message being assembled is */
};

void ws_reader_init(struct ws_reader *r, size_t max_message,
		    const struct ws_reader_callbacks *cb, void *arg);
void ws_reader_free(struct ws_reader *r);

/* After the handshake agreed on permessage-deflate: RSV1 may mark a
 * compressed message, which is inflated (at most max_message bytes) before
 * it is checked and delivered. */
void ws_reader_allow_deflate(struct ws_reader *r);

/*
 * Feed bytes. Returns 0 when all of them were consumed (callbacks may have
 * run), or a close code (WS_CLOSE_PROTOCOL, WS_CLOSE_BAD_DATA,
 * WS_CLOSE_TOO_BIG) on a violation, with a short reason in *why (static
 * string, suitable as the close frame's reason). After an error or a close
 * frame further input is ignored and 0 is returned.
 */
int ws_reader_feed(struct ws_reader *r, const void *data, size_t len,
		   const char **why);

/*
 * Encode the header of an unmasked server frame with FIN set. out must hold
 * WS_MAX_HEADER bytes. Returns the header length (2, 4 or 10).
 */
#define WS_MAX_HEADER 10
size_t ws_header_encode(uint8_t *out, int opcode, uint64_t payload_len);

/* The length of the server frame header at frame (2, 4 or 10). */
size_t ws_header_len(const uint8_t *frame);

/* RSV1: the message is compressed (permessage-deflate). */
#define WS_RSV1 0x40

/*
 * Build a close frame body (2-byte code + reason, reason truncated to fit in
 * 123 bytes at a UTF-8 boundary). out must hold 125 bytes. Returns its length.
 */
size_t ws_close_body(uint8_t *out, int code, const char *reason);

/* Is code acceptable in a close frame received from a peer? */
int ws_close_code_valid(int code);

#endif
