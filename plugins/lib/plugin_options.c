/*
 * Table-driven plugin options: see plugin_options.h. Only libc, like
 * plugin_util.c, so that any plugin may link it.
 */
#define _POSIX_C_SOURCE 200809L

#include "plugin_options.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A path option's buffer: PATH_MAX where the platform has one. */
#define PO_PATH_MAX 4096

static void *field(void *base, const struct po_option *row)
{
	return (char *)base + row->offset;
}

static bool listed(const char *key, const char *const *list)
{
	for (; list != NULL && *list != NULL; list++)
		if (strcmp(key, *list) == 0)
			return true;
	return false;
}

/* The row's own message if it has one, else the default wording. */
static int bad_value(const struct po_option *row, const char *fallback,
		     char *err, size_t err_size)
{
	if (row->bad != NULL)
		pu_err(err, err_size, "%s", row->bad);
	else
		pu_err(err, err_size, "%s %s", row->name, fallback);
	return -1;
}

static int parse_bool(const char *v, bool *b)
{
	if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 ||
	    strcmp(v, "on") == 0)
		*b = true;
	else if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0 ||
		 strcmp(v, "off") == 0)
		*b = false;
	else
		return -1;
	return 0;
}

/* The numeric types, into *n in the row's unit. 0 or -1. */
static int parse_numeric(const struct po_option *row, const char *v,
			 unsigned long long *n)
{
	switch (row->type) {
	case PO_COUNT:
	case PO_SIZE:
		if (pu_parse_number(v, row->type == PO_SIZE, row->max, n) < 0)
			return -1;
		break;
	case PO_DURATION_MS:
		if (pu_parse_duration_ms(v, row->max, n) < 0)
			return -1;
		break;
	case PO_SECONDS:
		if (row->max > ULLONG_MAX / 1000 ||
		    pu_parse_duration_ms(v, row->max * 1000, n) < 0 ||
		    *n % 1000 != 0)
			return -1;
		*n /= 1000;
		break;
	default:
		return -1;
	}
	return *n < row->min ? -1 : 0;
}

static int parse_enum(const struct po_option *row, const char *v,
		      char *err, size_t err_size)
{
	size_t o = 0;

	for (unsigned i = 0; row->words != NULL && row->words[i] != NULL; i++) {
		if (strcmp(v, row->words[i]) == 0)
			return (int)i;
	}
	if (row->bad != NULL)
		return bad_value(row, NULL, err, err_size);
	/* "KEY wants a, b or c" */
	o = (size_t)snprintf(err, err_size, "%s wants", row->name);
	for (unsigned i = 0; row->words != NULL && row->words[i] != NULL &&
		     o < err_size; i++)
		o += (size_t)snprintf(err + o, err_size - o, "%s%s",
				      i == 0 ? " " : row->words[i + 1] ? ", " :
				      " or ", row->words[i]);
	return -1;
}

/* A copy of a string or path value into *dst. 0 or -1. */
static int store_string(const struct po_option *row,
			const struct myxid_host *host,
			const struct myxid_opt *opt, char **dst,
			char *err, size_t err_size)
{
	char path[PO_PATH_MAX];
	const char *v = opt->value;

	if (row->type == PO_PATH) {
		if (v[0] == '\0' || host == NULL ||
		    host->resolve_path(opt, v, path, sizeof(path)) != 0)
			return bad_value(row, "needs a path", err, err_size);
		v = path;
	} else if (v[0] == '\0' && !(row->flags & PO_EMPTY_OK)) {
		return bad_value(row, "needs a value", err, err_size);
	}
	if (*dst != NULL) {     /* PO_MULTI: the last one wins */
		pu_scrub(*dst, strlen(*dst));
		free(*dst);
	}
	*dst = strdup(v);
	if (*dst == NULL) {
		pu_err(err, err_size, "out of memory");
		return -1;
	}
	return 0;
}

/* One option by its row into base. 0, or -1 with a message. */
static int convert(const struct po_option *row, void *base,
		   const struct myxid_host *host, const struct myxid_opt *opt,
		   char *err, size_t err_size)
{
	unsigned long long n;
	int i;

	switch (row->type) {
	case PO_STRING:
	case PO_PATH:
		return store_string(row, host, opt, field(base, row), err,
				    err_size);
	case PO_OPT:
		if (opt->value[0] == '\0' && !(row->flags & PO_EMPTY_OK) &&
		    row->bad != NULL)
			return bad_value(row, NULL, err, err_size);
		*(const struct myxid_opt **)field(base, row) = opt;
		return 0;
	case PO_BOOL:
		if (parse_bool(opt->value, field(base, row)) < 0)
			return bad_value(row, "wants yes or no", err, err_size);
		return 0;
	case PO_ENUM:
		if ((i = parse_enum(row, opt->value, err, err_size)) < 0)
			return -1;
		*(unsigned *)field(base, row) = (unsigned)i;
		return 0;
	case PO_CUSTOM:
		return row->parse(base, opt, err, err_size);
	case PO_COUNT:
	case PO_SIZE:
	case PO_DURATION_MS:
	case PO_SECONDS:
		break;
	}
	if (parse_numeric(row, opt->value, &n) < 0 || n > UINT_MAX)
		return bad_value(row, "has a bad value", err, err_size);
	*(unsigned *)field(base, row) = (unsigned)n;
	return 0;
}

static int find_row(const struct po_table *t, const char *key)
{
	for (int i = 0; t->rows[i].name != NULL; i++)
		if (strcmp(t->rows[i].name, key) == 0)
			return i;
	return -1;
}

int po_parse(const struct po_table *t, void *base,
	     const struct myxid_opt **seen_r, const struct myxid_host *host,
	     const struct myxid_opt *opts, size_t n_opts, char *err,
	     size_t err_size, const struct myxid_opt **bad_opt_r)
{
	const struct myxid_opt *seen[PO_MAX_ROWS] = { NULL };
	char why[512];
	int i;

	for (size_t k = 0; k < n_opts; k++) {
		const struct myxid_opt *opt = &opts[k];

		if (listed(opt->key, t->foreign))
			continue;
		i = find_row(t, opt->key);
		if (i < 0 || i >= PO_MAX_ROWS)
			return pu_opt_fail(opt, bad_opt_r, err, err_size,
					   "unknown option \"%s\"%s", opt->key,
					   t->unknown_hint ? t->unknown_hint : "");
		if (seen[i] != NULL && !(t->rows[i].flags & PO_MULTI)) {
			if (t->twice_names_line)
				return pu_opt_fail(opt, bad_opt_r, err, err_size,
						   "%s given twice (first on "
						   "line %u)", opt->key,
						   seen[i]->line);
			return pu_opt_fail(opt, bad_opt_r, err, err_size,
					   "%s given twice", opt->key);
		}
		seen[i] = opt;
		if (convert(&t->rows[i], base, host, opt, why, sizeof(why)) < 0)
			return pu_opt_fail(opt, bad_opt_r, err, err_size, "%s",
					   why);
	}
	for (i = 0; t->rows[i].name != NULL && i < PO_MAX_ROWS; i++) {
		if (seen_r != NULL)
			seen_r[i] = seen[i];
		if ((t->rows[i].flags & PO_REQUIRED) && seen[i] == NULL) {
			pu_err(err, err_size, "%s is required", t->rows[i].name);
			return -1;
		}
	}
	return 0;
}

const struct myxid_opt *po_seen(const struct po_table *t,
				const struct myxid_opt *const *seen,
				const char *name)
{
	int i = find_row(t, name);

	return i >= 0 && i < PO_MAX_ROWS ? seen[i] : NULL;
}

void po_free(const struct po_table *t, void *base)
{
	for (const struct po_option *row = t->rows; row->name != NULL; row++) {
		char **s;

		if (row->type != PO_STRING && row->type != PO_PATH)
			continue;
		s = field(base, row);
		/* Any of them may be a password or a key: never left behind
		 * in freed memory. */
		if (*s != NULL) {
			pu_scrub(*s, strlen(*s));
			free(*s);
			*s = NULL;
		}
	}
}
