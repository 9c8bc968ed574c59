/*
 * Helpers shared by the in-tree plugins: see plugin_util.h. Only libc is
 * used here, because policy_static links this file without OpenSSL.
 */
#define _POSIX_C_SOURCE 200809L

#include "plugin_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void pu_verr(char *err, size_t err_size, const char *fmt, va_list ap)
{
	if (err == NULL || err_size == 0)
		return;
	/* vsnprintf already cuts and terminates; a failed format leaves
	 * whatever it wrote, so give the caller an empty string instead. */
	if (vsnprintf(err, err_size, fmt, ap) < 0)
		err[0] = '\0';
}

void pu_err(char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pu_verr(err, err_size, fmt, ap);
	va_end(ap);
}

int pu_opt_fail(const struct myxid_opt *opt, const struct myxid_opt **bad_opt_r,
		char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	if (bad_opt_r != NULL)
		*bad_opt_r = opt;
	va_start(ap, fmt);
	pu_verr(err, err_size, fmt, ap);
	va_end(ap);
	return -1;
}

int pu_check_host(const struct myxid_host *host, char *err, size_t err_size)
{
	/* A host of another major may lay the table out differently, and one
	 * that is too small lacks services we would call blindly. */
	if (host == NULL || host->abi_major != MYXID_PLUGIN_ABI_MAJOR) {
		pu_err(err, err_size, "host ABI major %u, plugin needs %u",
		       host != NULL ? host->abi_major : 0u,
		       (unsigned)MYXID_PLUGIN_ABI_MAJOR);
		return -1;
	}
	if (host->size < offsetof(struct myxid_host, reserved)) {
		pu_err(err, err_size, "host service table too small (%zu bytes)",
		       host->size);
		return -1;
	}
	return 0;
}

int pu_is_blank(char c)
{
	return c == ' ' || c == '\t';
}

int pu_valid_name(const char *name, size_t len)
{
	size_t i;

	if (len == 0)
		return 0;
	for (i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
			return 0;
	}
	return 1;
}

char *pu_next_word(char **cursor)
{
	char *p = *cursor;
	char *word;

	while (pu_is_blank(*p))
		p++;
	if (*p == '\0') {
		*cursor = p;
		return NULL;
	}
	word = p;
	while (*p != '\0' && !pu_is_blank(*p))
		p++;
	if (*p != '\0')
		*p++ = '\0';
	*cursor = p;
	return word;
}

void pu_scrub(void *p, size_t n)
{
	/* Writing through a volatile pointer stops the compiler from dropping
	 * a memset into memory that is about to be freed. */
	volatile unsigned char *v = p;

	while (n-- > 0)
		*v++ = 0;
}

int pu_file_open(struct pu_file *f, const char *path, char *err, size_t err_size)
{
	memset(f, 0, sizeof(*f));
	f->path = strdup(path);
	if (f->path == NULL) {
		pu_err(err, err_size, "%s: out of memory", path);
		return -1;
	}
	f->fp = fopen(path, "r");
	if (f->fp == NULL) {
		pu_err(err, err_size, "%s: %s", path, strerror(errno));
		pu_file_close(f);
		return -1;
	}
	/* stdio's own buffer would keep copies of the tokens after fclose();
	 * hand it one we can scrub. */
	setvbuf(f->fp, f->iobuf, _IOFBF, sizeof(f->iobuf));
	return 0;
}

/* Cut the line at a '#' that starts a word, so "a#b" stays a word. */
static void strip_comment(char *line)
{
	char *p;

	for (p = line; *p != '\0'; p++) {
		if (*p == '#' && (p == line || pu_is_blank(p[-1]))) {
			*p = '\0';
			return;
		}
	}
}

static int is_blank_line(const char *line)
{
	while (pu_is_blank(*line))
		line++;
	return *line == '\0';
}

/* getline() failed: end of file (0) or a read error (-1). */
static int read_end(const struct pu_file *f, char *err, size_t err_size)
{
	int saved = errno;

	if (!ferror(f->fp))
		return 0;
	pu_err(err, err_size, "%s: %s", f->path,
	       strerror(saved != 0 ? saved : EIO));
	return -1;
}

int pu_file_next(struct pu_file *f, char **line_r, char *err, size_t err_size)
{
	ssize_t len;

	for (;;) {
		errno = 0;
		len = getline(&f->buf, &f->cap, f->fp);
		if (len < 0)
			return read_end(f, err, err_size);
		f->line++;
		/* A NUL inside a line would silently cut it short: a binary
		 * or corrupt file is better refused than half-read. */
		if (strlen(f->buf) != (size_t)len)
			return pu_file_fail(f, err, err_size, "NUL byte in line");
		if (len > 0 && f->buf[len - 1] == '\n')
			f->buf[--len] = '\0';
		if (len > 0 && f->buf[len - 1] == '\r')
			f->buf[--len] = '\0';
		strip_comment(f->buf);
		if (!is_blank_line(f->buf)) {
			*line_r = f->buf;
			return 1;
		}
	}
}

int pu_file_fail(const struct pu_file *f, char *err, size_t err_size,
		 const char *fmt, ...)
{
	va_list ap;
	char msg[256];

	va_start(ap, fmt);
	pu_verr(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pu_err(err, err_size, "%s:%u: %s", f->path, f->line, msg);
	return -1;
}

void pu_file_close(struct pu_file *f)
{
	if (f->fp != NULL)
		fclose(f->fp);
	pu_scrub(f->iobuf, sizeof(f->iobuf));
	if (f->buf != NULL) {
		pu_scrub(f->buf, f->cap);
		free(f->buf);
	}
	free(f->path);
	memset(f, 0, sizeof(*f));
}

/* Leading decimal digits of s into *v (stopping over max); where they end. */
static const char *digits(const char *s, unsigned long long max,
			  unsigned long long *v)
{
	*v = 0;
	if (*s < '0' || *s > '9')
		return NULL;
	for (; *s >= '0' && *s <= '9'; s++) {
		*v = *v * 10 + (unsigned long long)(*s - '0');
		if (*v > max)
			return NULL;
	}
	return s;
}

int pu_parse_duration_ms(const char *s, unsigned long long max_ms,
			 unsigned long long *ms_r)
{
	unsigned long long v, mul;
	const char *p = digits(s, max_ms, &v);

	if (p == NULL)
		return -1;
	if (strcmp(p, "ms") == 0)
		mul = 1;
	else if (*p == '\0' || strcmp(p, "s") == 0)
		mul = 1000;
	else if (strcmp(p, "m") == 0)
		mul = 60000;
	else if (strcmp(p, "h") == 0)
		mul = 3600000;
	else
		return -1;
	if (v > max_ms / mul)
		return -1;
	*ms_r = v * mul;
	return 0;
}

int pu_parse_number(const char *s, bool size, unsigned long long max,
		    unsigned long long *v_r)
{
	unsigned long long v;
	const char *p = digits(s, max, &v);

	if (p == NULL)
		return -1;
	if (size && (*p == 'k' || *p == 'K') && p[1] == '\0')
		v = v > max / 1024 ? max + 1 : v * 1024;
	else if (size && (*p == 'm' || *p == 'M') && p[1] == '\0')
		v = v > max / (1024 * 1024) ? max + 1 : v * 1024 * 1024;
	else if (*p != '\0')
		return -1;
	if (v > max)
		return -1;
	*v_r = v;
	return 0;
}

uint64_t pu_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

size_t pu_utf8_seq(const unsigned char *s, size_t avail)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (avail < n)
		return 0;
	for (size_t k = 1; k < n; k++) {
		if ((s[k] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[k] & 0x3F);
	}
	/* overlong forms, code points past U+10FFFF, surrogates */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

bool pu_utf8_valid(const unsigned char *s, size_t len)
{
	for (size_t i = 0, n; i < len; i += n)
		if ((n = pu_utf8_seq(s + i, len - i)) == 0)
			return false;
	return true;
}
