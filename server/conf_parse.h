/*
 * The configuration file's syntax without its meaning: reads a file into a
 * tree of directives (words, nested blocks, and the file and line of each).
 * config.c walks the tree and decides what the directives mean.
 *
 * The rules, line by line:
 *   - words are separated by spaces and tabs; a line may end in CRLF;
 *   - a '#' at the start of a word begins a comment (inside a word, as in
 *     "key#1", it is an ordinary character, so a secret is never cut short);
 *   - "double quotes" make one word of anything, with \" and \\ as the only
 *     escapes; a quoted string ends on its line;
 *   - ${NAME} is replaced by the environment variable NAME, in quoted and
 *     bare words alike (an unset variable is an error, and the value is not
 *     split into words);
 *   - a bare "{" as the last word opens a block under that line's directive;
 *     a bare "}" alone on its line closes it.
 * A line is at most CONF_LINE_MAX bytes, and a NUL byte is an error.
 */
#ifndef MYXID_CONF_PARSE_H
#define MYXID_CONF_PARSE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#define CONF_LINE_MAX 65536   /* bytes in one line, its line ending excluded */
#define CONF_MAX_DEPTH 8      /* nested blocks; the format uses two */

struct conf_node {
	char **args;              /* args[0] is the directive's name */
	size_t n_args;            /* >= 1 (0 only for the tree's root) */
	const char *file;         /* owned by the tree */
	unsigned line;
	bool block;               /* the line opened a block (maybe empty) */
	struct conf_node **kids;  /* the block's directives, in file order */
	size_t n_kids;
};

struct conf_tree {
	char *file;               /* the path as given */
	struct conf_node root;    /* its kids are the top-level directives */
};

/*
 * Read path into *tree_r. Returns 0, or -1 with "file:line: problem" in err
 * ("file: problem" when the file cannot be read at all).
 */
int conf_parse_file(const char *path, struct conf_tree **tree_r,
		    char *err, size_t err_size);

void conf_tree_free(struct conf_tree **tree);

/* Write "file:line: message" into err, or "file: message" when line is 0. */
#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
void conf_err(char *err, size_t err_size, const char *file, unsigned line,
	      const char *fmt, ...);

#if defined(__GNUC__)
__attribute__((format(printf, 5, 0)))
#endif
void conf_verr(char *err, size_t err_size, const char *file, unsigned line,
	       const char *fmt, va_list ap);

/*
 * Make room for element number n (counting from 0) in arr, an array of
 * elements of size bytes that has n elements and is only ever grown by this
 * function. Capacities are powers of two, so n alone says whether arr is
 * full and no capacity needs storing beside it. Returns the array, perhaps
 * moved, or NULL (arr is then untouched). The new slot is not initialised.
 */
void *conf_grow(void *arr, size_t n, size_t size);

#endif
