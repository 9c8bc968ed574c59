/*
 * Incremental UTF-8 validation for WebSocket text messages and close
 * reasons. A small deterministic automaton: every byte is mapped to a class,
 * and (state, class) gives the next state. The states that are neither
 * ACCEPT nor REJECT remember how many continuation bytes are still owed and,
 * right after a lead byte whose second byte is restricted, which range that
 * byte must fall in. That restriction is what rules out overlong forms,
 * UTF-16 surrogates and code points above U+10FFFF without ever decoding a
 * code point. Runs of ASCII, the common case for JSON, are skipped a machine
 * word at a time.
 */
#include "utf8.h"

#include <string.h>

/*
 * Byte classes. Only the continuation range is split three ways, because the
 * lead bytes E0, ED, F0 and F4 each allow only part of it as the next byte.
 */
enum {
	C_ASCII,  /* 00..7F */
	C_CONT1,  /* 80..8F */
	C_CONT2,  /* 90..9F */
	C_CONT3,  /* A0..BF */
	C_BAD,    /* C0..C1, F5..FF: can never appear */
	C_L2,     /* C2..DF: lead of a 2-byte sequence */
	C_E0,     /* E0: 3-byte, second byte A0..BF (else overlong) */
	C_L3,     /* E1..EC, EE..EF: 3-byte, any continuation */
	C_ED,     /* ED: 3-byte, second byte 80..9F (else surrogate) */
	C_F0,     /* F0: 4-byte, second byte 90..BF (else overlong) */
	C_L4,     /* F1..F3: 4-byte, any continuation */
	C_F4,     /* F4: 4-byte, second byte 80..8F (else > U+10FFFF) */
	N_CLASSES
};

/* States 0 and 1 are UTF8_ACCEPT and UTF8_REJECT from the header. */
enum {
	S_ACCEPT = UTF8_ACCEPT,
	S_REJECT = UTF8_REJECT,
	S_NEED1,  /* one continuation byte owed */
	S_NEED2,
	S_NEED3,
	S_E0,     /* after E0: A0..BF, then one more */
	S_ED,     /* after ED: 80..9F, then one more */
	S_F0,     /* after F0: 90..BF, then two more */
	S_F4,     /* after F4: 80..8F, then two more */
	N_STATES
};

static const uint8_t byte_class[256] = {
	/* 00..7F */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	/* 80..8F */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	/* 90..9F */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	/* A0..BF */
	3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
	3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
	/* C0..DF */
	4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
	5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
	/* E0..EF */
	6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 7,
	/* F0..FF */
	9, 10, 10, 10, 11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};

/* Short aliases so the table reads as a grid. */
#define A  S_ACCEPT
#define R  S_REJECT
#define N1 S_NEED1
#define N2 S_NEED2
#define N3 S_NEED3
static const uint8_t next_state[N_STATES][N_CLASSES] = {
	/*          ASCII CONT1 CONT2 CONT3 BAD  L2    E0    L3    ED    F0    L4    F4 */
	[S_ACCEPT] = { A,   R,    R,    R,    R,   N1,   S_E0, N2,   S_ED, S_F0, N3,   S_F4 },
	[S_REJECT] = { R,   R,    R,    R,    R,   R,    R,    R,    R,    R,    R,    R },
	[S_NEED1]  = { R,   A,    A,    A,    R,   R,    R,    R,    R,    R,    R,    R },
	[S_NEED2]  = { R,   N1,   N1,   N1,   R,   R,    R,    R,    R,    R,    R,    R },
	[S_NEED3]  = { R,   N2,   N2,   N2,   R,   R,    R,    R,    R,    R,    R,    R },
	[S_E0]     = { R,   R,    R,    N1,   R,   R,    R,    R,    R,    R,    R,    R },
	[S_ED]     = { R,   N1,   N1,   R,    R,   R,    R,    R,    R,    R,    R,    R },
	[S_F0]     = { R,   R,    N2,   N2,   R,   R,    R,    R,    R,    R,    R,    R },
	[S_F4]     = { R,   N2,   R,    R,    R,   R,    R,    R,    R,    R,    R,    R },
};
#undef A
#undef R
#undef N1
#undef N2
#undef N3

/*
 * Step over ASCII bytes. Eight at a time while possible: memcpy keeps the
 * loads legal at any alignment and compiles to a plain load.
 */
static const uint8_t *skip_ascii(const uint8_t *p, const uint8_t *end)
{
	const uint64_t high_bits = UINT64_C(0x8080808080808080);
	uint64_t w;

	while ((size_t)(end - p) >= sizeof w) {
		memcpy(&w, p, sizeof w);
		if (w & high_bits)
			break;
		p += sizeof w;
	}
	while (p < end && *p < 0x80)
		p++;
	return p;
}

uint32_t utf8_feed(uint32_t *state, const uint8_t *p, size_t len)
{
	uint32_t s = *state;
	const uint8_t *end;

	/* An out-of-range state can only come from a caller bug; never index
	 * the table with it. */
	if (s >= N_STATES)
		s = S_REJECT;
	if (len == 0 || s == S_REJECT)
		return *state = s;

	end = p + len;
	while (p < end) {
		if (s == S_ACCEPT) {
			p = skip_ascii(p, end);
			if (p == end)
				break;
		}
		s = next_state[s][byte_class[*p++]];
		if (s == S_REJECT)
			break;
	}
	return *state = s;
}

int utf8_valid(const void *p, size_t len)
{
	uint32_t state = UTF8_ACCEPT;

	return utf8_feed(&state, p, len) == UTF8_ACCEPT;
}
