/*
 * Checking a frame the daemon is about to send to browsers: one unmasked,
 * final text frame in the shortest length encoding, holding one strict
 * JSON object (valid UTF-8, RFC 8259). A browser fails the whole WebSocket
 * on anything else, so every reply and every event must pass. Shared by
 * the action and broker-message targets.
 */
#ifndef MYXID_FUZZ_FRAME_CHECK_H
#define MYXID_FUZZ_FRAME_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

/*
 * Check the frame at p (avail bytes available). Returns its total length,
 * or 0 if it is not complete yet. Aborts on a malformed frame. When
 * payload_r is not NULL, *payload_r is the parsed JSON object (the caller
 * puts it) or NULL for a control frame.
 */
size_t fuzz_check_server_frame(const uint8_t *p, size_t avail,
			       json_object **payload_r);

#endif
