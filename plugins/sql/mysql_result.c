/*
 * The MariaDB driver's results: the session row read column by column into
 * the request's identity, and server messages masked before they become a
 * request's reason (they may quote a token).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mysql_private.h"
#include "plugin_util.h"

/* Does the quoted part q[0..n) of a server message possibly show one of
 * j's values? Masking too much costs nothing; showing a token would. */
static bool quote_is_sensitive(const char *q, size_t n, const struct job *j)
{
	size_t i, v;

	for (i = 0; i < n; i++)
		if (q[i] == '\\' || (unsigned char)q[i] < 0x20 ||
		    (unsigned char)q[i] >= 0x7F)
			return true;
	if (j == NULL || n == 0)
		return false;
	for (v = 0; v < SQL_MAX_PARAMS; v++) {
		const char *val = j->values[v];
		size_t len = j->lens[v];

		if (val == NULL || len == 0)
			continue;
		/* the value inside the quote, or the quote inside the value */
		if (len <= n) {
			for (i = 0; i + len <= n; i++)
				if (memcmp(q + i, val, len) == 0)
					return true;
		} else {
			for (i = 0; i + n <= len; i++)
				if (memcmp(val + i, q, n) == 0)
					return true;
		}
	}
	return false;
}

/*
 * A server message fit to be logged as a request's reason: every part in
 * quotes that could show a bound value is replaced by '?'. An unterminated
 * quote hides the rest of the message.
 */
void mysql_mask_message(const char *msg, const struct job *j, char *out,
			 size_t size)
{
	size_t o = 0;
	const char *s = msg;

	if (size == 0)
		return;
	while (*s != '\0' && o + 1 < size) {
		if (*s == '\'' || *s == '"' || *s == '`') {
			char quote = *s;
			const char *end = strchr(s + 1, quote);
			size_t n = end ? (size_t)(end - s - 1) : strlen(s + 1);
			bool hide = end == NULL ||
				quote_is_sensitive(s + 1, n, j);
			const char *part = hide ? "?" : s + 1;
			size_t part_len = hide ? 1 : n;

			if (o + part_len + 2 >= size)
				break;
			out[o++] = quote;
			memcpy(out + o, part, part_len);
			o += part_len;
			out[o++] = quote;
			if (end == NULL)
				break;
			s = end + 1;
			continue;
		}
		out[o++] = *s++;
	}
	out[o] = '\0';
}

/* One column of the fetched row as a NUL-terminated string in *out
 * (malloc'ed; NULL for SQL NULL). 0, or -1 on failure. */
static int fetch_column(struct conn *c, unsigned col, const MYSQL_BIND *b,
			char **out)
{
	unsigned long len = *b->length;
	char *s;

	*out = NULL;
	if (*b->is_null)
		return 0;
	s = malloc((size_t)len + 1);
	if (s == NULL)
		return -1;
	if (len <= FETCH_CAP) {
		memcpy(s, b->buffer, len);
	} else {
		MYSQL_BIND big;
		unsigned long got = 0;
		my_bool null = 0;

		memset(&big, 0, sizeof(big));
		big.buffer_type = MYSQL_TYPE_STRING;
		big.buffer = s;
		big.buffer_length = len + 1;
		big.length = &got;
		big.is_null = &null;
		if (mysql_stmt_fetch_column(c->stmt, &big, col, 0) != 0 ||
		    got != len) {
			free(s);
			return -1;
		}
	}
	s[len] = '\0';
	if (memchr(s, '\0', len) != NULL || !pu_utf8_valid((unsigned char *)s, len)) {
		free(s);
		return 1;       /* binary, not text */
	}
	*out = s;
	return 0;
}

/* The stored result holds a row: hand its identity to the host. */
enum myxid_verdict mysql_auth_row(struct conn *c, struct myxid_req *req,
				   char *reason, size_t reason_size)
{
	struct mysql_plugin *pl = c->pc.driver;
	const struct myxid_host *host = pl->host;
	unsigned n = c->n_cols, i;
	MYSQL_BIND *b = calloc(n, sizeof(*b));
	unsigned long *lens = calloc(n, sizeof(*lens));
	my_bool *nulls = calloc(n, sizeof(*nulls));
	char *bufs = malloc((size_t)n * (FETCH_CAP + 1));
	char **vals = calloc(n, sizeof(*vals));
	enum myxid_verdict v = MYXID_ERROR;
	int r;

	if (b == NULL || lens == NULL || nulls == NULL || bufs == NULL ||
	    vals == NULL) {
		snprintf(reason, reason_size, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		b[i].buffer_type = MYSQL_TYPE_STRING;
		b[i].buffer = bufs + (size_t)i * (FETCH_CAP + 1);
		b[i].buffer_length = FETCH_CAP;
		b[i].length = &lens[i];
		b[i].is_null = &nulls[i];
	}
	if (mysql_stmt_bind_result(c->stmt, b) != 0) {
		snprintf(reason, reason_size, "cannot bind the result: %s",
			 mysql_stmt_error(c->stmt));
		goto out;
	}
	r = mysql_stmt_fetch(c->stmt);
	if (r != 0 && r != MYSQL_DATA_TRUNCATED) {
		snprintf(reason, reason_size, "cannot fetch the row: %s",
			 r == MYSQL_NO_DATA ? "no data" : mysql_stmt_error(c->stmt));
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (i != 0 && (int)i != c->user_type_col && c->col_names[i] == NULL)
			continue;
		r = fetch_column(c, i, &b[i], &vals[i]);
		if (r < 0) {
			snprintf(reason, reason_size, "cannot fetch column %u", i + 1);
			goto out;
		}
		if (r > 0 && (i == 0 || (int)i == c->user_type_col)) {
			snprintf(reason, reason_size, "column %u is not UTF-8 text", i + 1);
			goto out;
		}
		if (r > 0)
			host->log(pl->inst, MYXID_LOG_DEBUG, "attribute %s is "
				  "not UTF-8 text: left out", c->col_names[i]);
	}
	if (vals[0] == NULL || vals[0][0] == '\0') {
		snprintf(reason, reason_size, "the session's user id is NULL or empty");
		goto out;
	}
	if (host->req_set_user(req, vals[0], c->user_type_col >= 0 ?
			       vals[c->user_type_col] : NULL) != 0) {
		snprintf(reason, reason_size, "the host refused the user id");
		goto out;
	}
	for (i = 1; i < n; i++) {
		if (vals[i] == NULL || c->col_names[i] == NULL)
			continue;
		if (host->req_add_attr(req, c->col_names[i], vals[i]) != 0) {
			snprintf(reason, reason_size, "the host refused attribute %s",
				 c->col_names[i]);
			goto out;
		}
	}
	v = MYXID_ALLOW;
out:
	if (vals != NULL)
		for (i = 0; i < n; i++)
			free(vals[i]);
	free(vals);
	free(bufs);
	free(nulls);
	free(lens);
	free(b);
	return v;
}
