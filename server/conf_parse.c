/*
 * The configuration tokenizer: turns a file into a tree of directives
 * (conf_parse.h states the syntax). It knows no directive names; what a
 * directive means, and which may hold blocks, is config.c's business.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "conf_parse.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growing string: the word being built. */
struct sbuf {
	char *p;
	size_t len;
	size_t cap;
};

struct parser {
	FILE *f;
	const char *file;
	unsigned line;
	char *buf;                 /* the current line, NUL-terminated */
	char *err;
	size_t err_size;

	/* The current line once split: its words and its braces. */
	struct sbuf word;
	char **words;
	size_t n_words;
	bool opens;                /* ended with a bare "{" */
	bool closes;               /* held a bare "}" */

	/* open[0] is the root; open[depth] receives the next directive. */
	struct conf_node *open[CONF_MAX_DEPTH + 1];
	size_t depth;
};

void conf_verr(char *err, size_t err_size, const char *file, unsigned line,
	       const char *fmt, va_list ap)
{
	int n;

	if (err == NULL || err_size == 0)
		return;
	if (line > 0)
		n = snprintf(err, err_size, "%s:%u: ", file, line);
	else
		n = snprintf(err, err_size, "%s: ", file);
	if (n < 0 || (size_t)n >= err_size)
		return;
	vsnprintf(err + n, err_size - (size_t)n, fmt, ap);
}

void conf_err(char *err, size_t err_size, const char *file, unsigned line,
	      const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conf_verr(err, err_size, file, line, fmt, ap);
	va_end(ap);
}

void *conf_grow(void *arr, size_t n, size_t size)
{
	size_t cap;

	/* n is 0 or a power of two exactly when the array is full. */
	if ((n & (n - 1)) != 0)
		return arr;
	cap = n ? n * 2 : 1;
	if (cap > SIZE_MAX / size)
		return NULL;
	return realloc(arr, cap * size);
}

/* Report a problem on the current line; always -1, to return it. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int fail(struct parser *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conf_verr(p->err, p->err_size, p->file, p->line, fmt, ap);
	va_end(ap);
	return -1;
}

static int oom(struct parser *p)
{
	return fail(p, "out of memory");
}

/* ------------------------------------------------------------ reading */

/*
 * Read the next line into p->buf without its line ending. Returns 1 for a
 * line, 0 at the end of the file, -1 on error.
 */
static int read_line(struct parser *p)
{
	size_t len = 0;
	int c;

	p->line++;
	errno = 0;
	while ((c = getc(p->f)) != EOF && c != '\n') {
		if (c == '\0')
			return fail(p, "NUL byte in the file (not a text file?)");
		/* One byte spare for the '\r' of a CRLF ending. */
		if (len > CONF_LINE_MAX)
			return fail(p, "line longer than %d bytes", CONF_LINE_MAX);
		p->buf[len++] = (char)c;
	}
	if (c == EOF && ferror(p->f)) {
		conf_err(p->err, p->err_size, p->file, 0, "%s",
			 strerror(errno ? errno : EIO));
		return -1;
	}
	if (c == EOF && len == 0)
		return 0;
	if (len > 0 && p->buf[len - 1] == '\r')
		len--;
	if (len > CONF_LINE_MAX)
		return fail(p, "line longer than %d bytes", CONF_LINE_MAX);
	p->buf[len] = '\0';
	return 1;
}

/* ------------------------------------------------------------ words */

static int put_bytes(struct parser *p, const char *s, size_t n)
{
	struct sbuf *w = &p->word;
	char *grown;
	size_t cap;

	if (w->cap - w->len <= n) {
		cap = w->cap ? w->cap : 64;
		while (cap - w->len <= n)
			cap *= 2;
		grown = realloc(w->p, cap);
		if (grown == NULL)
			return oom(p);
		w->p = grown;
		w->cap = cap;
	}
	memcpy(w->p + w->len, s, n);
	w->len += n;
	w->p[w->len] = '\0';
	return 0;
}

static bool is_name_char(char c, bool first)
{
	if (c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))
		return true;
	return !first && c >= '0' && c <= '9';
}

/*
 * *s points at '$'. Append "${NAME}"'s value, or a lone '$' as itself, and
 * move *s past what was consumed.
 */
static int expand(struct parser *p, const char **s)
{
	const char *name = *s + 2;
	const char *value;
	size_t len = 0;
	char *copy;

	if ((*s)[1] != '{') {
		(*s)++;
		return put_bytes(p, "$", 1);
	}
	while (is_name_char(name[len], len == 0))
		len++;
	if (len == 0 || name[len] != '}')
		return fail(p, "bad variable reference (write ${NAME}, NAME made of letters, digits and '_')");
	copy = strndup(name, len);
	if (copy == NULL)
		return oom(p);
	value = getenv(copy);
	if (value == NULL) {
		fail(p, "environment variable '%s' is not set", copy);
		free(copy);
		return -1;
	}
	free(copy);
	*s = name + len + 1;
	return put_bytes(p, value, strlen(value));
}

/* Move the finished word into the line's list. */
static int end_word(struct parser *p)
{
	char **words;
	char *w = p->word.p ? p->word.p : strdup("");

	if (w == NULL)
		return oom(p);
	if (p->opens) {
		free(w);
		memset(&p->word, 0, sizeof p->word);
		return fail(p, "'{' must be the last word on its line");
	}
	memset(&p->word, 0, sizeof p->word);
	words = conf_grow(p->words, p->n_words, sizeof *words);
	if (words == NULL) {
		free(w);
		return oom(p);
	}
	p->words = words;
	p->words[p->n_words++] = w;
	return 0;
}

/* A word in double quotes; *s points at the opening quote. */
static int scan_quoted(struct parser *p, const char **s)
{
	const char *c = *s + 1;

	for (;;) {
		if (*c == '\0' || (*c == '\\' && c[1] == '\0'))
			return fail(p, "unterminated quoted string");
		if (*c == '"')
			break;
		if (*c == '$') {
			if (expand(p, &c))
				return -1;
			continue;
		}
		if (*c == '\\') {
			if (c[1] != '"' && c[1] != '\\')
				return fail(p, "unknown escape '\\%c' in a quoted string (only \\\" and \\\\)", c[1]);
			c++;
		}
		if (put_bytes(p, c, 1))
			return -1;
		c++;
	}
	c++;
	if (*c != '\0' && *c != ' ' && *c != '\t')
		return fail(p, "expected a space after a closing '\"'");
	*s = c;
	return end_word(p);
}

/* An unquoted word; a lone "{" or "}" in it is a brace, not a word. */
static int scan_bare(struct parser *p, const char **s)
{
	const char *start = *s;
	const char *c = start;
	bool brace = (*c == '{' || *c == '}') &&
		     (c[1] == '\0' || c[1] == ' ' || c[1] == '\t');

	if (brace) {
		*s = c + 1;
		if (p->opens)
			return fail(p, "'{' must be the last word on its line");
		if (*c == '{')
			p->opens = true;
		else
			p->closes = true;
		return 0;
	}
	while (*c != '\0' && *c != ' ' && *c != '\t') {
		if (*c == '"')
			return fail(p, "unexpected '\"' inside a word (quote the whole word)");
		if (*c == '$') {
			if (expand(p, &c))
				return -1;
			continue;
		}
		if (put_bytes(p, c, 1))
			return -1;
		c++;
	}
	*s = c;
	return end_word(p);
}

/* Split p->buf into p->words, p->opens and p->closes. */
static int split_line(struct parser *p)
{
	const char *s = p->buf;
	int rc;

	p->opens = p->closes = false;
	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0' || *s == '#')
			return 0;
		rc = *s == '"' ? scan_quoted(p, &s) : scan_bare(p, &s);
		if (rc)
			return -1;
	}
}

/* ------------------------------------------------------------ the tree */

static void free_words(char **words, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(words[i]);
	free(words);
}

static void free_kids(struct conf_node *n)
{
	size_t i;

	for (i = 0; i < n->n_kids; i++) {
		free_kids(n->kids[i]);
		free_words(n->kids[i]->args, n->kids[i]->n_args);
		free(n->kids[i]);
	}
	free(n->kids);
}

/* Hang the line's words as a new directive under the innermost block. */
static struct conf_node *add_node(struct parser *p)
{
	struct conf_node *parent = p->open[p->depth];
	struct conf_node **kids;
	struct conf_node *n = calloc(1, sizeof *n);

	kids = n ? conf_grow(parent->kids, parent->n_kids, sizeof *kids) : NULL;
	if (kids == NULL) {
		free(n);
		oom(p);
		return NULL;
	}
	parent->kids = kids;
	parent->kids[parent->n_kids++] = n;
	n->args = p->words;
	n->n_args = p->n_words;
	n->file = p->file;
	n->line = p->line;
	n->block = p->opens;
	p->words = NULL;
	p->n_words = 0;
	return n;
}

static int close_block(struct parser *p)
{
	if (p->n_words > 0 || p->opens)
		return fail(p, "'}' must be alone on its line");
	if (p->depth == 0)
		return fail(p, "unexpected '}'");
	p->depth--;
	return 0;
}

/* Put the split line into the tree. */
static int take_line(struct parser *p)
{
	struct conf_node *n;

	if (p->closes)
		return close_block(p);
	if (p->n_words == 0)
		return p->opens ? fail(p, "'{' without a directive before it") : 0;
	if (p->opens && p->depth == CONF_MAX_DEPTH)
		return fail(p, "blocks nested too deeply");
	n = add_node(p);
	if (n == NULL)
		return -1;
	if (n->block)
		p->open[++p->depth] = n;
	return 0;
}

static int parse_lines(struct parser *p)
{
	const struct conf_node *n;
	int rc;

	while ((rc = read_line(p)) > 0) {
		if (split_line(p) || take_line(p))
			return -1;
	}
	if (rc < 0)
		return -1;
	if (p->depth > 0) {
		n = p->open[p->depth];
		conf_err(p->err, p->err_size, p->file, n->line,
			 "unterminated block '%s' (missing '}')", n->args[0]);
		return -1;
	}
	return 0;
}

void conf_tree_free(struct conf_tree **tree)
{
	if (tree == NULL || *tree == NULL)
		return;
	free_kids(&(*tree)->root);
	free((*tree)->file);
	free(*tree);
	*tree = NULL;
}

/* Read the whole file into tree; tree and file are the caller's to free. */
static int parse_file(struct parser *p, struct conf_tree *tree)
{
	int rc;

	p->f = fopen(tree->file, "r");
	if (p->f == NULL) {
		conf_err(p->err, p->err_size, p->file, 0, "%s", strerror(errno));
		return -1;
	}
	/* One byte for a CRLF's '\r', one for the NUL. */
	p->buf = malloc(CONF_LINE_MAX + 2);
	rc = p->buf ? parse_lines(p) : oom(p);
	free(p->buf);
	free(p->word.p);
	free_words(p->words, p->n_words);
	fclose(p->f);
	return rc;
}

int conf_parse_file(const char *path, struct conf_tree **tree_r,
		    char *err, size_t err_size)
{
	struct parser p;
	struct conf_tree *tree = calloc(1, sizeof *tree);

	*tree_r = NULL;
	if (tree != NULL)
		tree->file = strdup(path);
	if (tree == NULL || tree->file == NULL) {
		free(tree);
		conf_err(err, err_size, path, 0, "out of memory");
		return -1;
	}
	memset(&p, 0, sizeof p);
	p.file = tree->file;
	p.err = err;
	p.err_size = err_size;
	p.open[0] = &tree->root;
	if (parse_file(&p, tree)) {
		conf_tree_free(&tree);
		return -1;
	}
	*tree_r = tree;
	return 0;
}
