/*
 * What the fuzz targets share: the libFuzzer entry point's declaration and
 * FUZZ_CHECK, an assertion that stays on in every build. A failed check is
 * a finding, so it aborts: libFuzzer then keeps the input as a crash file,
 * and the replay test (replay_main.c) fails on it.
 */
#ifndef MYXID_FUZZ_CHECK_H
#define MYXID_FUZZ_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: fuzz check failed: %s\n", \
			__FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

/* An exact-size heap copy of the input, so that reading one byte past the
 * end is caught by AddressSanitizer (libFuzzer's own buffer is exact-size
 * too; the replay program's is not). The caller frees it. */
static inline uint8_t *fuzz_dup(const uint8_t *data, size_t size)
{
	uint8_t *p = calloc(size ? size : 1, 1);   /* a 0-byte input is one NUL */

	FUZZ_CHECK(p != NULL);
	for (size_t i = 0; i < size; i++)
		p[i] = data[i];
	return p;
}

#endif
