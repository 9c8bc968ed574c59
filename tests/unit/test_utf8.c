/*
 * Unit tests for the incremental UTF-8 validator: the classic boundary and
 * malformation vectors, state carried across calls (every split point of
 * every vector must agree with the one-shot answer), the word-at-a-time
 * ASCII path at every alignment, and an exhaustive comparison against a
 * straightforward decode-and-check reference over all 1-, 2- and 3-byte
 * inputs, every code point, and random byte soup.
 */
#include "utf8.h"
#include "tap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct vec {
	const char *name;
	const char *bytes;
	size_t len;
	int valid;
};

#define V(name, lit, valid) { name, lit, sizeof(lit) - 1, valid }

static const struct vec vectors[] = {
	V("empty", "", 1),
	V("ASCII", "hello, {\"json\": 1}", 1),
	V("NUL is a valid code point", "a\0b", 1),
	V("U+007F", "\x7F", 1),
	V("U+0080", "\xC2\x80", 1),
	V("U+00A9 copyright", "\xC2\xA9", 1),
	V("U+07FF", "\xDF\xBF", 1),
	V("U+0800", "\xE0\xA0\x80", 1),
	V("U+20AC euro", "\xE2\x82\xAC", 1),
	V("U+D7FF last before surrogates", "\xED\x9F\xBF", 1),
	V("U+E000 first after surrogates", "\xEE\x80\x80", 1),
	V("U+FFFD", "\xEF\xBF\xBD", 1),
	V("U+FFFF", "\xEF\xBF\xBF", 1),
	V("U+10000", "\xF0\x90\x80\x80", 1),
	V("U+1F600 emoji", "\xF0\x9F\x98\x80", 1),
	V("U+10FFFF", "\xF4\x8F\xBF\xBF", 1),
	V("mixed text", "Gr\xC3\xBC\xC3\x9F" "e \xE2\x82\xAC \xF0\x9F\x98\x80!", 1),
	V("Greek kosme", "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5", 1),

	V("overlong '/' C0 AF", "\xC0\xAF", 0),
	V("overlong C1 BF", "\xC1\xBF", 0),
	V("overlong NUL C0 80", "\xC0\x80", 0),
	V("overlong 3-byte E0 80 AF", "\xE0\x80\xAF", 0),
	V("overlong 3-byte E0 9F BF", "\xE0\x9F\xBF", 0),
	V("overlong 4-byte F0 80 80 AF", "\xF0\x80\x80\xAF", 0),
	V("overlong 4-byte F0 8F BF BF", "\xF0\x8F\xBF\xBF", 0),
	V("surrogate U+D800 ED A0 80", "\xED\xA0\x80", 0),
	V("surrogate U+DBFF", "\xED\xAF\xBF", 0),
	V("surrogate U+DC00", "\xED\xB0\x80", 0),
	V("surrogate U+DFFF", "\xED\xBF\xBF", 0),
	V("surrogate pair as CESU-8", "\xED\xA0\xBD\xED\xB8\x80", 0),
	V("U+110000 F4 90 80 80", "\xF4\x90\x80\x80", 0),
	V("F5 lead", "\xF5\x80\x80\x80", 0),
	V("5-byte form F8", "\xF8\x88\x80\x80\x80", 0),
	V("6-byte form FC", "\xFC\x84\x80\x80\x80\x80", 0),
	V("FE", "\xFE", 0),
	V("FF", "\xFF", 0),
	V("stray continuation 80", "\x80", 0),
	V("stray continuation BF after ASCII", "abc\xBF", 0),
	V("extra continuation", "\xC2\xA9\xA9", 0),
	V("truncated 2-byte", "\xC2", 0),
	V("truncated 3-byte", "\xE2\x82", 0),
	V("truncated 4-byte", "\xF0\x9F\x98", 0),
	V("truncated then ASCII", "\xC2" "A", 0),
	V("truncated 3-byte then ASCII", "\xE2\x82" "A", 0),
	V("lead after lead", "\xE2\xE2\x82\xAC", 0),
	V("invalid after valid text", "valid \xE2\x82\xAC then \xC0\xAF", 0),
};

/*
 * A deliberately different formulation: decode each sequence to a code
 * point and check it, rather than walk a state table.
 */
static int ref_valid(const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t b = p[i];
		size_t len, k;
		uint32_t cp, min;

		if (b < 0x80) {
			i++;
			continue;
		} else if (b >= 0xC2 && b <= 0xDF) {
			len = 2, cp = b & 0x1F, min = 0x80;
		} else if (b >= 0xE0 && b <= 0xEF) {
			len = 3, cp = b & 0x0F, min = 0x800;
		} else if (b >= 0xF0 && b <= 0xF4) {
			len = 4, cp = b & 0x07, min = 0x10000;
		} else {
			return 0;
		}
		if (n - i < len)
			return 0;
		for (k = 1; k < len; k++) {
			if ((p[i + k] & 0xC0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		i += len;
	}
	return 1;
}

static size_t encode(uint32_t cp, uint8_t *out)
{
	if (cp < 0x80) {
		out[0] = (uint8_t)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (uint8_t)(0xC0 | (cp >> 6));
		out[1] = (uint8_t)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (uint8_t)(0xE0 | (cp >> 12));
		out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (uint8_t)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (uint8_t)(0xF0 | (cp >> 18));
	out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (uint8_t)(0x80 | (cp & 0x3F));
	return 4;
}

/* Feed in two calls split at cut; is the end state ACCEPT? */
static int split_valid(const uint8_t *p, size_t len, size_t cut)
{
	uint32_t st = UTF8_ACCEPT;

	utf8_feed(&st, p, cut);
	utf8_feed(&st, p + cut, len - cut);
	return st == UTF8_ACCEPT;
}

/* Feed one byte per call. */
static int bytewise_valid(const uint8_t *p, size_t len)
{
	uint32_t st = UTF8_ACCEPT;
	size_t i;

	for (i = 0; i < len; i++)
		utf8_feed(&st, p + i, 1);
	return st == UTF8_ACCEPT;
}

static void test_vectors(void)
{
	size_t i, cut;

	for (i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
		const struct vec *v = &vectors[i];
		const uint8_t *p = (const uint8_t *)v->bytes;
		int splits_agree = 1;

		is_int(utf8_valid(p, v->len), v->valid, "%s: %s", v->name,
		       v->valid ? "valid" : "invalid");
		is_int(ref_valid(p, v->len), v->valid, "%s: reference agrees", v->name);
		for (cut = 0; cut <= v->len; cut++)
			if (split_valid(p, v->len, cut) != v->valid)
				splits_agree = 0;
		if (bytewise_valid(p, v->len) != v->valid)
			splits_agree = 0;
		ok(splits_agree, "%s: same answer at every split and bytewise", v->name);
	}
}

static void test_state(void)
{
	uint32_t st = UTF8_ACCEPT;
	const uint8_t euro[] = { 0xE2, 0x82, 0xAC };
	const uint8_t bad[] = { 0xC0 };
	const uint8_t good[] = { 'a' };

	utf8_feed(&st, euro, 1);
	ok(st != UTF8_ACCEPT && st != UTF8_REJECT, "mid code point: neither accept nor reject");
	utf8_feed(&st, euro + 1, 1);
	ok(st != UTF8_ACCEPT && st != UTF8_REJECT, "still mid code point after 2 of 3");
	is_int(utf8_feed(&st, euro + 2, 1), UTF8_ACCEPT, "code point completed in a third call");
	is_int(st, UTF8_ACCEPT, "state written back");

	st = UTF8_ACCEPT;
	is_int(utf8_feed(&st, bad, 1), UTF8_REJECT, "C0 rejects");
	is_int(utf8_feed(&st, good, 1), UTF8_REJECT, "reject is sticky");
	is_int(utf8_feed(&st, NULL, 0), UTF8_REJECT, "empty feed keeps reject");

	st = UTF8_ACCEPT;
	is_int(utf8_feed(&st, NULL, 0), UTF8_ACCEPT, "empty feed with NULL is fine");
	ok(utf8_valid(NULL, 0), "utf8_valid(NULL, 0)");

	st = 0xDEADu;
	is_int(utf8_feed(&st, good, 1), UTF8_REJECT, "garbage state is treated as reject");
}

/* Put a single bad byte at every offset and alignment of a long ASCII run,
 * so the eight-at-a-time path must hand over to the table correctly. */
static void test_ascii_fast_path(void)
{
	uint8_t buf[80];
	size_t start, pos, len;
	int all = 1;

	for (start = 0; start < 8; start++) {
		for (len = 0; len + start <= sizeof buf; len++) {
			memset(buf, 'x', sizeof buf);
			if (!utf8_valid(buf + start, len))
				all = 0;
			for (pos = 0; pos < len; pos++) {
				buf[start + pos] = 0x80;
				if (utf8_valid(buf + start, len))
					all = 0;
				buf[start + pos] = 'x';
			}
		}
	}
	ok(all, "ASCII runs: valid, and one stray byte anywhere is caught");

	all = 1;
	for (pos = 0; pos + 2 <= sizeof buf; pos++) {
		memset(buf, 'y', sizeof buf);
		buf[pos] = 0xC3;
		buf[pos + 1] = 0xA9;
		if (!utf8_valid(buf, sizeof buf))
			all = 0;
		buf[pos + 1] = 'y';
		if (utf8_valid(buf, sizeof buf))
			all = 0;
	}
	ok(all, "a 2-byte sequence at every offset in ASCII; and its truncation");
}

static void test_every_code_point(void)
{
	uint8_t buf[4];
	uint32_t cp;
	int all = 1;

	for (cp = 0; cp <= 0x10FFFF; cp++) {
		size_t n = encode(cp, buf);
		int want = !(cp >= 0xD800 && cp <= 0xDFFF);

		if (utf8_valid(buf, n) != want) {
			all = 0;
			printf("# code point U+%04X misjudged\n", (unsigned)cp);
			break;
		}
	}
	ok(all, "every scalar value is valid, every surrogate is not");
}

static void test_exhaustive_short(void)
{
	static const uint8_t class_edges[] = {
		0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0,
		0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0,
		0xF1, 0xF3, 0xF4, 0xF5, 0xFF,
	};
	uint8_t b[3];
	unsigned x, y, z;
	int all = 1;

	for (x = 0; x < 256 && all; x++) {
		b[0] = (uint8_t)x;
		if (utf8_valid(b, 1) != ref_valid(b, 1))
			all = 0;
		for (y = 0; y < 256 && all; y++) {
			b[1] = (uint8_t)y;
			if (utf8_valid(b, 2) != ref_valid(b, 2))
				all = 0;
		}
	}
	ok(all, "all 1- and 2-byte inputs agree with the reference");

	/* Inputs starting with ASCII or a continuation are covered by the
	 * shorter cases; the interesting ones start with a lead byte. The
	 * third byte only needs the edges of each byte class. */
	for (x = 0xC0; x < 256 && all; x++) {
		b[0] = (uint8_t)x;
		for (y = 0; y < 256 && all; y++) {
			b[1] = (uint8_t)y;
			for (z = 0; z < sizeof class_edges; z++) {
				b[2] = class_edges[z];
				if (utf8_valid(b, 3) != ref_valid(b, 3)) {
					printf("# mismatch at %02X %02X %02X\n", x, y, b[2]);
					all = 0;
					break;
				}
			}
		}
	}
	ok(all, "3-byte inputs with a lead byte agree with the reference");
}

/* Random strings drawn mostly from interesting bytes, so that valid
 * multi-byte sequences are common enough to matter. */
static void test_random(void)
{
	static const uint8_t pool[] = {
		'a', 'z', 0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
		0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF,
		0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF,
	};
	uint8_t buf[24];
	unsigned seed = 12345;
	int agree = 1, splits = 1, n_valid = 0;
	int iter;

	for (iter = 0; iter < 200000; iter++) {
		size_t len, i;
		int want;

		seed = seed * 1103515245u + 12345u;
		len = (seed >> 16) % sizeof buf;
		for (i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			buf[i] = pool[(seed >> 16) % sizeof pool];
		}
		want = ref_valid(buf, len);
		n_valid += want;
		if (utf8_valid(buf, len) != want)
			agree = 0;
		if (split_valid(buf, len, len / 2) != want ||
		    split_valid(buf, len, len / 3) != want)
			splits = 0;
	}
	ok(agree, "random inputs agree with the reference");
	ok(splits, "random inputs: split feeding agrees");
	ok(n_valid > 1000, "random inputs included valid ones (%d)", n_valid);
}

int main(void)
{
	test_vectors();
	test_state();
	test_ascii_fast_path();
	test_every_code_point();
	test_exhaustive_short();
	test_random();
	return done_testing();
}
