/*
 * What the SQL plugins share: see sql_common.h. Compiled into each SQL
 * plugin; every symbol here is hidden, so a plugin still exports only
 * myxid_plugin_entry.
 */
#define _POSIX_C_SOURCE 200809L

#include <myxid/plugin.h>

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif
#include "sql_common.h"
#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#include "pool.h"

#include "plugin_options.h"
#include "plugin_util.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define DEFAULT_POOL_SIZE 4u
#define MAX_POOL_SIZE 64u
#define DEFAULT_TIMEOUT_MS 5000u
#define MAX_TIMEOUT_MS 3600000u           /* 1 h */
#define DEFAULT_QUEUE_MAX 1000u
#define MAX_QUEUE_MAX 1000000u
#define DEFAULT_INACTIVITY_S (12u * 3600u)
#define MAX_INACTIVITY_S (3650u * 86400u) /* ten years */

/* ------------------------------------------------------------ parameters */

static const char *const param_names[SQLP_COUNT] = {
	[SQLP_TOKEN] = "token",
	[SQLP_TOKEN_HASH] = "token_hash",
	[SQLP_INACTIVITY_SECONDS] = "inactivity_seconds",
	[SQLP_EXCHANGE] = "exchange",
	[SQLP_ROUTING_KEY] = "routing_key",
	[SQLP_USER_ID] = "user_id",
	[SQLP_USER_TYPE] = "user_type",
};

static int param_lookup(const char *name, size_t len, enum sql_param *p)
{
	for (int i = 0; i < SQLP_COUNT; i++) {
		if (strlen(param_names[i]) == len &&
		    memcmp(param_names[i], name, len) == 0) {
			*p = (enum sql_param)i;
			return 0;
		}
	}
	return -1;
}

static int is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '_';
}

/* ------------------------------------------------------------ templates */

/*
 * Where a run of text that the template compiler must copy untouched ends:
 * a string literal, a quoted identifier or a comment starting at q[i].
 * Returns the index just past it, i itself when q[i] starts none of them,
 * or (size_t)-1 when it is not closed.
 *
 *   '...'   with '' inside; a backslash escapes the next byte in MySQL,
 *           and in PostgreSQL only in E'...' strings
 *   "..."   (identifiers, or strings in MySQL) with "" inside
 *   `...`   MySQL identifiers
 *   -- to the end of the line, C-style comments, and # to the end of
 *   the line in MySQL
 */
static size_t skip_verbatim(const char *q, size_t i, enum sql_dialect d)
{
	char c = q[i];
	char close;
	bool backslash = false;

	if (c == '-' && q[i + 1] == '-') {
		while (q[i] != '\0' && q[i] != '\n')
			i++;
		return i;
	}
	if (c == '#' && d == SQL_MYSQL) {
		while (q[i] != '\0' && q[i] != '\n')
			i++;
		return i;
	}
	if (c == '/' && q[i + 1] == '*') {
		const char *end = strstr(q + i + 2, "*/");
		return end == NULL ? (size_t)-1 : (size_t)(end - q) + 2;
	}
	if (c == '\'') {
		close = '\'';
		if (d == SQL_MYSQL)
			backslash = true;
		else if (i > 0 && (q[i - 1] == 'E' || q[i - 1] == 'e') &&
			 (i == 1 || !is_name_char(q[i - 2])))
			backslash = true;
	} else if (c == '"') {
		close = '"';
		backslash = d == SQL_MYSQL;
	} else if (c == '`' && d == SQL_MYSQL) {
		close = '`';
	} else {
		return i;
	}
	for (i++;; i++) {
		if (q[i] == '\0')
			return (size_t)-1;
		if (backslash && q[i] == '\\') {
			if (q[i + 1] == '\0')
				return (size_t)-1;
			i++;
			continue;
		}
		if (q[i] == close) {
			if (q[i + 1] == close) {   /* doubled: still inside */
				i++;
				continue;
			}
			return i + 1;
		}
	}
}

/* The position ($n) that name p already has in t, or 0. */
static size_t pg_position(const struct sql_template *t, enum sql_param p)
{
	for (size_t i = 0; i < t->n_params; i++)
		if (t->params[i] == p)
			return i + 1;
	return 0;
}

int sql_template_compile(struct sql_template *t, enum sql_dialect d,
			 const char *query, char *err, size_t err_size)
{
	size_t len, i = 0, o = 0;
	char *out;

	memset(t, 0, sizeof(*t));
	if (query == NULL)
		query = "";
	len = strlen(query);
	i = 0;
	while (query[i] == ' ' || query[i] == '\t' || query[i] == '\n' ||
	       query[i] == '\r')
		i++;
	if (query[i] == '\0') {
		pu_err(err, err_size, "the query is empty");
		return -1;
	}
	/* "{x}" is at least three bytes and "$16" at most three. */
	out = malloc(len + 1);
	if (out == NULL) {
		pu_err(err, err_size, "out of memory");
		return -1;
	}
	i = 0;
	while (query[i] != '\0') {
		size_t end = skip_verbatim(query, i, d);
		enum sql_param p;
		size_t name_len, pos;

		if (end == (size_t)-1) {
			pu_err(err, err_size, "unterminated quote or comment "
			       "at offset %zu of the query", i);
			goto fail;
		}
		if (end > i) {
			memcpy(out + o, query + i, end - i);
			o += end - i;
			i = end;
			continue;
		}
		if (d == SQL_PGSQL && query[i] == '$' &&
		    query[i + 1] >= '0' && query[i + 1] <= '9' &&
		    (i == 0 || !is_name_char(query[i - 1]))) {
			pu_err(err, err_size, "positional parameter $%c in the "
			       "query: write {name} parameters instead",
			       query[i + 1]);
			goto fail;
		}
		if (d == SQL_MYSQL && query[i] == '?') {
			pu_err(err, err_size, "placeholder ? in the query: "
			       "write {name} parameters instead");
			goto fail;
		}
		if (query[i] != '{') {
			out[o++] = query[i++];
			continue;
		}
		for (name_len = 0; is_name_char(query[i + 1 + name_len]); name_len++)
			;
		if (name_len == 0 || query[i + 1 + name_len] != '}') {
			pu_err(err, err_size, "'{' at offset %zu of the query "
			       "does not start a {name} parameter", i);
			goto fail;
		}
		if (param_lookup(query + i + 1, name_len, &p) < 0) {
			pu_err(err, err_size, "unknown parameter {%.*s} (known: "
			       "token, token_hash, inactivity_seconds, exchange, "
			       "routing_key, user_id, user_type)",
			       (int)name_len, query + i + 1);
			goto fail;
		}
		i += name_len + 2;
		if (d == SQL_PGSQL) {
			pos = pg_position(t, p);
			if (pos == 0) {
				/* Only SQLP_COUNT distinct names exist. */
				t->params[t->n_params++] = p;
				pos = t->n_params;
			}
			o += (size_t)sprintf(out + o, "$%zu", pos);
		} else {
			if (t->n_params == SQL_MAX_PARAMS) {
				pu_err(err, err_size, "more than %d parameters "
				       "in the query", SQL_MAX_PARAMS);
				goto fail;
			}
			t->params[t->n_params++] = p;
			out[o++] = '?';
		}
	}
	out[o] = '\0';
	t->sql = out;
	return 0;
fail:
	free(out);
	memset(t, 0, sizeof(*t));
	return -1;
}

/* ------------------------------------------------------------ Authie */

/*
 * myxi-protocol.md 5.3: the session is active, not expired (persistent
 * sessions), and not idle (transient sessions with a last activity), all in
 * UTC because Rails stores UTC. The user id is turned into text so the first
 * column reads the same whatever the column's integer type.
 */
#define PG_AUTHIE_SELECT \
	"SELECT user_id::text AS user_id, user_type FROM authie_sessions\n"
#define PG_AUTHIE_TAIL \
	"   AND active = TRUE\n" \
	"   AND (expires_at IS NULL OR expires_at > (now() AT TIME ZONE 'UTC'))\n" \
	"   AND NOT (expires_at IS NULL AND last_activity_at IS NOT NULL\n" \
	"            AND last_activity_at < (now() AT TIME ZONE 'UTC')\n" \
	"                - make_interval(secs => CAST({inactivity_seconds} AS bigint)))\n" \
	" LIMIT 1"

#define MY_AUTHIE_SELECT \
	"SELECT CAST(user_id AS CHAR) AS user_id, user_type FROM authie_sessions\n"
#define MY_AUTHIE_TAIL \
	"   AND active = TRUE\n" \
	"   AND (expires_at IS NULL OR expires_at > UTC_TIMESTAMP())\n" \
	"   AND NOT (expires_at IS NULL AND last_activity_at IS NOT NULL\n" \
	"            AND last_activity_at < UTC_TIMESTAMP()\n" \
	"                - INTERVAL CAST({inactivity_seconds} AS SIGNED) SECOND)\n" \
	" LIMIT 1"

const char *sql_authie_query(enum sql_dialect d, bool legacy_tokens)
{
	static const char *const queries[2][2] = {
		{
			PG_AUTHIE_SELECT
			" WHERE token_hash = {token_hash}\n" PG_AUTHIE_TAIL,
			PG_AUTHIE_SELECT
			" WHERE (token_hash = {token_hash} OR token = {token})\n"
			PG_AUTHIE_TAIL,
		},
		{
			MY_AUTHIE_SELECT
			" WHERE token_hash = {token_hash}\n" MY_AUTHIE_TAIL,
			MY_AUTHIE_SELECT
			" WHERE (token_hash = {token_hash} OR token = {token})\n"
			MY_AUTHIE_TAIL,
		},
	};

	return queries[d == SQL_MYSQL ? 1 : 0][legacy_tokens ? 1 : 0];
}

/* ------------------------------------------------------------ options */

/* Every message says what the option wants, as the daemon's own config
 * errors do. */
static const struct po_option common_rows[] = {
	{ "pool_size", PO_COUNT, offsetof(struct sql_options, pool_size), 1,
	  MAX_POOL_SIZE, "pool_size wants a number of connections from 1 to 64",
	  NULL, NULL, 0 },
	{ "connect_timeout", PO_DURATION_MS,
	  offsetof(struct sql_options, connect_timeout_ms), 1, MAX_TIMEOUT_MS,
	  "connect_timeout wants a time from 1ms to 1h (e.g. 500ms, 5s, 2m; "
	  "a bare number is seconds)", NULL, NULL, 0 },
	{ "query_timeout", PO_DURATION_MS,
	  offsetof(struct sql_options, query_timeout_ms), 1, MAX_TIMEOUT_MS,
	  "query_timeout wants a time from 1ms to 1h (e.g. 500ms, 5s, 2m; "
	  "a bare number is seconds)", NULL, NULL, 0 },
	{ "queue_max", PO_COUNT, offsetof(struct sql_options, queue_max), 0,
	  MAX_QUEUE_MAX, "queue_max wants a number of requests from 0 to "
	  "1000000", NULL, NULL, 0 },
	{ "inactivity_timeout", PO_SECONDS,
	  offsetof(struct sql_options, inactivity_s), 1, MAX_INACTIVITY_S,
	  "inactivity_timeout wants a whole number of seconds from 1s to 3650 "
	  "days (e.g. 12h, 30m, 3600)", NULL, NULL, 0 },
	{ "legacy_tokens", PO_BOOL, offsetof(struct sql_options, legacy_tokens),
	  0, 0, "legacy_tokens wants yes or no", NULL, NULL, 0 },
	{ "query", PO_OPT, offsetof(struct sql_options, query_opt), 0, 0, NULL,
	  NULL, NULL, 0 },
	PO_END
};

const char *const sql_option_keys[] = {
	"pool_size", "connect_timeout", "query_timeout", "queue_max",
	"inactivity_timeout", "legacy_tokens", "query", NULL
};

int sql_options_parse(struct sql_options *o, enum sql_dialect d, unsigned kind,
		      const struct myxid_opt *opts, size_t n_opts,
		      const char *const *driver_keys, char *err, size_t err_size,
		      const struct myxid_opt **bad_opt_r)
{
	const struct po_table table = { common_rows, NULL, driver_keys, true };
	const struct myxid_opt *seen[PO_MAX_ROWS];
	const struct myxid_opt *query_opt, *legacy_opt;
	char why[512];

	memset(o, 0, sizeof(*o));
	o->pool_size = DEFAULT_POOL_SIZE;
	o->connect_timeout_ms = DEFAULT_TIMEOUT_MS;
	o->query_timeout_ms = DEFAULT_TIMEOUT_MS;
	o->queue_max = DEFAULT_QUEUE_MAX;
	o->inactivity_s = DEFAULT_INACTIVITY_S;
	if (po_parse(&table, o, seen, NULL, opts, n_opts, err, err_size,
		     bad_opt_r) < 0)
		return -1;

	query_opt = o->query_opt;
	o->has_query = query_opt != NULL;
	legacy_opt = po_seen(&table, seen, "legacy_tokens");
	if (query_opt != NULL) {
		/* The flag only shapes the default query; a query of one's own
		 * says {token} itself. Better told than ignored. */
		if (legacy_opt != NULL && o->legacy_tokens)
			return pu_opt_fail(legacy_opt, bad_opt_r, err,
					   err_size, "legacy_tokens applies only "
					   "to the default Authie query; with "
					   "your own query, match {token} in it");
		if (sql_template_compile(&o->query, d, query_opt->value, why,
					 sizeof(why)) < 0)
			return pu_opt_fail(query_opt, bad_opt_r, err, err_size,
					   "%s", why);
		return 0;
	}
	if (!(kind & MYXID_KIND_AUTH)) {
		pu_err(err, err_size, "query is required (a policy query: a "
		       "row means the subscription is allowed)");
		return -1;
	}
	if (sql_template_compile(&o->query, d,
				 sql_authie_query(d, o->legacy_tokens),
				 why, sizeof(why)) < 0) {
		pu_err(err, err_size, "default query: %s", why);
		return -1;
	}
	return 0;
}

void sql_options_free(struct sql_options *o)
{
	if (o == NULL)
		return;
	free(o->query.sql);
	memset(o, 0, sizeof(*o));
}

/* ------------------------------------------------------------ values */

void sql_sha256_hex(const char *s, size_t len, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;

	if (EVP_Digest(s, len, md, &md_len, EVP_sha256(), NULL) != 1 ||
	    md_len != 32) {
		/* Never happens; if it did, a value no hex column holds. */
		memset(out, 'x', 64);
		out[64] = '\0';
		pu_scrub(md, sizeof(md));
		return;
	}
	for (unsigned i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0x0f];
	}
	out[64] = '\0';
	pu_scrub(md, sizeof(md));
}

const char *sql_param_value(const struct myxid_host *host,
			    const struct myxid_req *req,
			    const struct sql_options *o, enum sql_param p,
			    char *buf, size_t buf_size)
{
	const char *token;

	switch (p) {
	case SQLP_TOKEN:
		return host->req_get(req, "token");
	case SQLP_TOKEN_HASH:
		token = host->req_get(req, "token");
		if (token == NULL || buf_size < 65)
			return NULL;
		sql_sha256_hex(token, strlen(token), buf);
		return buf;
	case SQLP_INACTIVITY_SECONDS:
		if (buf_size == 0)
			return NULL;
		snprintf(buf, buf_size, "%u", o->inactivity_s);
		return buf;
	case SQLP_EXCHANGE:
		return host->req_get(req, "exchange");
	case SQLP_ROUTING_KEY:
		return host->req_get(req, "routing_key");
	case SQLP_USER_ID:
		return host->req_get(req, "user_id");
	case SQLP_USER_TYPE:
		return host->req_get(req, "user_type");
	case SQLP_COUNT:
		break;
	}
	return NULL;
}

enum myxid_verdict sql_auth(const struct myxid_host *host, struct pool *pool,
			    struct myxid_req *req)
{
	const char *token = host->req_get(req, "token");

	if (token == NULL || token[0] == '\0')
		return MYXID_NEXT;
	return pool_submit(pool, req, true);
}

enum myxid_verdict sql_policy(const struct myxid_host *host, struct myxid_instance *inst,
			      struct pool *pool, bool has_query, bool *warned,
			      struct myxid_req *req)
{
	if (!has_query) {
		if (!*warned)
			host->log(inst, MYXID_LOG_ERROR, "a policy needs a query option "
				  "(a row means allowed); every subscription fails "
				  "until it has one");
		*warned = true;
		return pool_answer_now(pool, req, MYXID_ERROR, "no policy query");
	}
	return pool_submit(pool, req, false);
}
