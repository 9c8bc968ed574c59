/*
 * The server side of the RFC 6455 opening handshake: deciding whether a
 * parsed HTTP request is a valid WebSocket upgrade, and computing
 * Sec-WebSocket-Accept.
 */
#ifndef MYXID_WS_HANDSHAKE_H
#define MYXID_WS_HANDSHAKE_H

#include "http_parse.h"

/* base64(SHA-1(key + GUID)) is always 28 characters. */
#define WS_ACCEPT_LEN 28

/*
 * Is req a WebSocket upgrade request at all (Upgrade: websocket and
 * Connection containing "upgrade")? Plain HTTP requests go to the HTTP side.
 */
int ws_is_upgrade(const struct http_request *req);

/*
 * Check a request that asked for an upgrade. Returns 0 if it is valid, with
 * the accept value in accept_out (WS_ACCEPT_LEN + 1 bytes, NUL-terminated).
 * Otherwise returns the HTTP status to answer and sets *why:
 *   405  method is not GET
 *   400  HTTP/1.0, missing Host, missing/invalid Sec-WebSocket-Key (must be
 *        base64 of exactly 16 bytes), Upgrade/Connection malformed
 *   426  Sec-WebSocket-Version is not 13 (answer with
 *        "Sec-WebSocket-Version: 13")
 */
int ws_handshake_check(const struct http_request *req, char *accept_out,
		       const char **why);

/* Compute the accept value for a key (no validation). */
void ws_accept_compute(const char *key, size_t key_len, char *accept_out);

#endif
