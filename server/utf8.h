/*
 * Incremental UTF-8 validation (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF). The state carries a code point split across
 * calls, so text split over WebSocket fragments validates exactly as if it
 * came in one piece.
 */
#ifndef MYXID_UTF8_H
#define MYXID_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define UTF8_ACCEPT 0u   /* at a code point boundary: valid so far */
#define UTF8_REJECT 1u   /* invalid; stays rejected */

/*
 * Feed len bytes. *state starts at UTF8_ACCEPT. Returns the new state:
 * UTF8_ACCEPT, UTF8_REJECT, or another value meaning "valid so far but in the
 * middle of a code point". A message is valid iff the final state is
 * UTF8_ACCEPT.
 */
uint32_t utf8_feed(uint32_t *state, const uint8_t *p, size_t len);

/* Convenience: is the whole buffer valid UTF-8? */
int utf8_valid(const void *p, size_t len);

#endif
