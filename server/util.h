/*
 * Small helpers shared by the daemon: allocation that never returns NULL
 * (out of memory is fatal for a daemon that cannot shed load safely at that
 * point, as in redis and dovecot), random ids, and monotonic time.
 */
#ifndef MYXID_UTIL_H
#define MYXID_UTIL_H

#include <stddef.h>
#include <stdint.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Fill out with 2*nbytes lowercase hex digits and a NUL, from a CSPRNG. */
void random_hex(char *out, size_t nbytes);

/* Random 64-bit value from a CSPRNG (hash seeds, jitter). */
uint64_t random_u64(void);

/* Milliseconds / microseconds on the monotonic clock. */
uint64_t monotonic_ms(void);
uint64_t monotonic_us(void);

/* Compare two byte strings without leaking where they differ (lengths may
 * differ; the comparison time depends only on the lengths). 1 if equal. */
int secret_equal(const void *a, size_t alen, const void *b, size_t blen);

/* The value of one hexadecimal digit, or -1. */
int hex_digit(char ch);

/* FNV-1a of "a", a separator and "b": where an (exchange, key) pair goes
 * in a hash table. */
uint64_t hash_pair(const char *a, const char *b);

#endif
