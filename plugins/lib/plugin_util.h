/*
 * Small helpers shared by the in-tree plugins: error formatting, word
 * splitting, a line reader for data files, number and time parsing, a
 * monotonic clock and a UTF-8 check.
 *
 * Plugins may not use daemon symbols, so this file is compiled into each
 * plugin that needs it. Everything here has hidden visibility: the only
 * symbol a plugin exports stays myxid_plugin_entry. Third-party plugins
 * should not include this; it is not part of the installed ABI.
 */
#ifndef MYXID_PLUGIN_UTIL_H
#define MYXID_PLUGIN_UTIL_H

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <myxid/plugin.h>

#if defined(__GNUC__)
#define PU_HIDDEN __attribute__((visibility("hidden")))
#else
#define PU_HIDDEN
#endif

/*
 * Intrusive doubly-linked lists, as dovecot's llist.h: an item has prev
 * and next members. DLLIST: the list is its first item (*head); DLLIST2
 * keeps a tail too, for FIFOs. Removing leaves the item unlinked.
 */
#define PU_DLLIST_PREPEND(head, item) do { \
	(item)->prev = NULL; \
	(item)->next = *(head); \
	if (*(head) != NULL) \
		(*(head))->prev = (item); \
	*(head) = (item); \
} while (0)

#define PU_DLLIST_REMOVE(head, item) do { \
	if ((item)->prev != NULL) \
		(item)->prev->next = (item)->next; \
	else \
		*(head) = (item)->next; \
	if ((item)->next != NULL) \
		(item)->next->prev = (item)->prev; \
	(item)->prev = (item)->next = NULL; \
} while (0)

#define PU_DLLIST2_PREPEND(head, tail, item) do { \
	if (*(head) == NULL) \
		*(tail) = (item); \
	PU_DLLIST_PREPEND(head, item); \
} while (0)

#define PU_DLLIST2_APPEND(head, tail, item) do { \
	(item)->next = NULL; \
	(item)->prev = *(tail); \
	if (*(tail) != NULL) \
		(*(tail))->next = (item); \
	else \
		*(head) = (item); \
	*(tail) = (item); \
} while (0)

#define PU_DLLIST2_REMOVE(head, tail, item) do { \
	if ((item)->next == NULL) \
		*(tail) = (item)->prev; \
	PU_DLLIST_REMOVE(head, item); \
} while (0)

/* Format a message into err (err_size bytes, always NUL-terminated when
 * err_size > 0; long messages are cut). */
PU_HIDDEN void pu_err(char *err, size_t err_size, const char *fmt, ...)
	MYXID_PRINTF(3, 4);

/* Blame one option: point *bad_opt_r at opt, format the message into err
 * and return -1, so init() can say "return pu_opt_fail(...)". */
PU_HIDDEN int pu_opt_fail(const struct myxid_opt *opt,
			  const struct myxid_opt **bad_opt_r,
			  char *err, size_t err_size, const char *fmt, ...)
	MYXID_PRINTF(5, 6);

/* 0 if the host speaks our ABI major and its table holds every service the
 * in-tree plugins call; else -1 with a message. */
PU_HIDDEN int pu_check_host(const struct myxid_host *host,
			    char *err, size_t err_size);

/* Space or tab: the only separators in option values and data files. */
PU_HIDDEN int pu_is_blank(char c);

/* 1 if name[0..len) is a usable attribute name: non-empty, made of
 * letters, digits, '_', '-' and '.'. Policy rules name attributes as
 * attr:NAME, so both plugins must agree on what a name is. */
PU_HIDDEN int pu_valid_name(const char *name, size_t len);

/*
 * Split in place: returns the next blank-separated word of *cursor,
 * NUL-terminated, and advances *cursor past it; NULL when none is left.
 */
PU_HIDDEN char *pu_next_word(char **cursor);

/* Overwrite memory that held secrets, in a way the compiler keeps. */
PU_HIDDEN void pu_scrub(void *p, size_t n);

/*
 * A data file read line by line, for "PATH:LINE: problem" errors.
 * pu_file_next() hands out only lines with content: the line end (LF or
 * CRLF) is removed, a '#' that starts a word begins a comment running to
 * the end of the line, and blank lines are skipped.
 */
struct pu_file {
	FILE *fp;
	char *path;      /* copy of the path, for messages */
	char *buf;       /* getline() buffer; scrubbed on close */
	size_t cap;
	unsigned line;   /* number of the line last returned */
	char iobuf[4096]; /* stdio buffer, so it can be scrubbed too */
};

/* 0, or -1 with "PATH: reason" in err. */
PU_HIDDEN int pu_file_open(struct pu_file *f, const char *path,
			   char *err, size_t err_size);

/* 1 with the next line in *line_r (valid until the next call; words may be
 * split in place), 0 at end of file, or -1 with "PATH:LINE: reason". */
PU_HIDDEN int pu_file_next(struct pu_file *f, char **line_r,
			   char *err, size_t err_size);

/* Format "PATH:LINE: message" for the line last returned; returns -1. */
PU_HIDDEN int pu_file_fail(const struct pu_file *f, char *err,
			   size_t err_size, const char *fmt, ...)
	MYXID_PRINTF(4, 5);

/* Close and scrub: the buffers may have held tokens. Safe to call twice,
 * but the struct must not move while the file is open. */
PU_HIDDEN void pu_file_close(struct pu_file *f);

/* A time option: "N" (seconds) or N with ms, s, m or h, into milliseconds,
 * at most max_ms. 0, or -1 if malformed or too large. */
PU_HIDDEN int pu_parse_duration_ms(const char *s, unsigned long long max_ms,
				   unsigned long long *ms_r);

/* A decimal count, or with size = true a size that may end in k or m
 * (1024-based), at most max. 0, or -1 if malformed or too large. */
PU_HIDDEN int pu_parse_number(const char *s, bool size, unsigned long long max,
			      unsigned long long *v_r);

/* CLOCK_MONOTONIC in milliseconds: for deadlines and rate limits. */
PU_HIDDEN uint64_t pu_now_ms(void);

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF):
 * identities end up in JSON text frames. */
PU_HIDDEN bool pu_utf8_valid(const unsigned char *s, size_t len);

/* The length (1-4) of the valid UTF-8 sequence at s, which has avail
 * bytes, or 0 if there is none. */
PU_HIDDEN size_t pu_utf8_seq(const unsigned char *s, size_t avail);

#endif
