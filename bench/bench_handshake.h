/*
 * The client side of the RFC 6455 opening handshake, for myxid-bench: the
 * GET request with a fresh Sec-WebSocket-Key, and the check of the 101
 * response's Sec-WebSocket-Accept.
 */
#ifndef BENCH_HANDSHAKE_H
#define BENCH_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WS_KEY_LEN 24                     /* base64 of 16 bytes */

/* A new random key (24 characters and a NUL) from the caller's PRNG state. */
void hs_new_key(char key[WS_KEY_LEN + 1], uint64_t *rng);

/* Write the request for path into buf (offering permessage-deflate
 * without context takeover when deflate); returns its length, or 0 if it
 * does not fit. */
size_t hs_request(char *buf, size_t size, const char *host, unsigned port,
		  const char *path, const char *key, bool deflate);

/*
 * Check a response head (up to and excluding the blank line) against key.
 * Returns NULL when it is a 101 with the right Sec-WebSocket-Accept, or a
 * static text saying what is wrong.
 */
const char *hs_check_response(const char *head, size_t len, const char *key);

/* xorshift64*: the bench's cheap PRNG (masks, keys); state never 0. */
uint64_t hs_rand(uint64_t *state);

#endif
