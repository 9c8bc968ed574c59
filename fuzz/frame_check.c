/* Checking frames sent to browsers; see frame_check.h. */
#include "frame_check.h"
#include "fuzz_check.h"
#include "json_input.h"
#include "ws_frame.h"

size_t fuzz_check_server_frame(const uint8_t *p, size_t avail,
			       json_object **payload_r)
{
	size_t hl = 2;
	uint64_t len;
	int opcode;
	json_object *o = NULL;

	if (payload_r != NULL)
		*payload_r = NULL;
	if (avail < 2)
		return 0;
	FUZZ_CHECK((p[0] & 0xF0) == 0x80);     /* FIN, no RSV bits */
	FUZZ_CHECK((p[1] & 0x80) == 0);        /* unmasked */
	opcode = p[0] & 0x0F;
	len = p[1] & 0x7F;
	if (len == 126) {
		hl = 4;
		if (avail < hl)
			return 0;
		len = (uint64_t)p[2] << 8 | p[3];
		FUZZ_CHECK(len >= 126);
	} else if (len == 127) {
		hl = 10;
		if (avail < hl)
			return 0;
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | p[2 + i];
		FUZZ_CHECK(len > 0xFFFF && len >> 63 == 0);
	}
	if (avail - hl < len)
		return 0;
	if (opcode == WS_OP_TEXT) {
		/* 128: deeper than anything the daemon writes. */
		o = json_input_parse(p + hl, (size_t)len, 128);
		FUZZ_CHECK(o != NULL && json_object_is_type(o, json_type_object));
	} else {
		FUZZ_CHECK(opcode == WS_OP_CLOSE || opcode == WS_OP_PING);
		FUZZ_CHECK(len <= 125);
	}
	if (payload_r != NULL)
		*payload_r = o;
	else
		json_object_put(o);
	return hl + (size_t)len;
}
