/*
 * What the PostgreSQL and MySQL plugins share: their options, the query
 * templates with named parameters, Authie's default session query, and the
 * SHA-256 token hash. Compiled into each SQL plugin (never a daemon symbol).
 *
 * Queries are written with named parameters in braces, which are turned
 * into the driver's bound parameters ($1.. for libpq, ? for MySQL) and never
 * spliced into the SQL text:
 *
 *   {token}              the raw token (auth)
 *   {token_hash}         lowercase hex SHA-256 of the token (Authie >= 3)
 *   {inactivity_seconds} the inactivity_timeout option, in seconds
 *   {exchange}           the exchange (policy)
 *   {routing_key}        the routing key (policy)
 *   {user_id}            the authenticated user's id (policy)
 *   {user_type}          the user's type, or NULL (policy)
 *
 * An auth query returns the user id in its first column, optionally the
 * user type in a column named user_type; any other column becomes an
 * attribute named after the column. No row: the plugin answers NEXT.
 * A policy query allows the subscription if it returns at least one row.
 */
#ifndef MYXID_SQL_COMMON_H
#define MYXID_SQL_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <myxid/plugin.h>

enum sql_dialect { SQL_PGSQL, SQL_MYSQL };

enum sql_param {
	SQLP_TOKEN,
	SQLP_TOKEN_HASH,
	SQLP_INACTIVITY_SECONDS,
	SQLP_EXCHANGE,
	SQLP_ROUTING_KEY,
	SQLP_USER_ID,
	SQLP_USER_TYPE,
	SQLP_COUNT
};

#define SQL_MAX_PARAMS 16

/* A query turned into the dialect's SQL and the parameter to bind at each
 * position. */
struct sql_template {
	char *sql;                          /* owned */
	enum sql_param params[SQL_MAX_PARAMS];
	size_t n_params;
};

/*
 * Options every SQL plugin takes (the connection options are the
 * driver's own and are handed back in *driver_opts for the driver to read):
 *   pool_size N            connections (default 4, 1..64)
 *   connect_timeout T      default 5s
 *   query_timeout T        default 5s
 *   queue_max N            requests waiting for a free connection (1000)
 *   inactivity_timeout T   Authie's session_inactivity_timeout (12h)
 *   legacy_tokens yes|no   also match Authie < 3's plaintext token column
 *   query "SQL"            the auth or policy query (required for policy)
 * Times take ms/s/m/h suffixes (bare numbers are seconds).
 */
struct sql_options {
	unsigned pool_size;
	unsigned connect_timeout_ms;
	unsigned query_timeout_ms;
	unsigned queue_max;
	unsigned inactivity_s;
	bool legacy_tokens;
	bool has_query;                     /* a query option (else Authie's) */
	const struct myxid_opt *query_opt;  /* that option: borrowed, so
					     * valid during init() only */
	struct sql_template query;
};

/* The keys sql_options_parse() reads, NULL-terminated: a driver parsing
 * its own options leaves these alone. */
extern const char *const sql_option_keys[];

/*
 * Parse the common options out of opts; options the driver must read
 * (conninfo, host, ...) are those whose key is in driver_keys (a
 * NULL-terminated list) and are left for the driver. Anything else is an
 * error. kind is MYXID_KIND_AUTH or MYXID_KIND_POLICY (an auth plugin
 * without a query gets Authie's default query). Returns 0, or -1 with a
 * message in err and *bad_opt_r set.
 */
int sql_options_parse(struct sql_options *o, enum sql_dialect d, unsigned kind,
		      const struct myxid_opt *opts, size_t n_opts,
		      const char *const *driver_keys, char *err, size_t err_size,
		      const struct myxid_opt **bad_opt_r);

void sql_options_free(struct sql_options *o);

/* Turn a query with {names} into t for dialect d. 0, or -1 with a message. */
int sql_template_compile(struct sql_template *t, enum sql_dialect d,
			 const char *query, char *err, size_t err_size);

/* Authie's session query for d (see myxi-protocol.md section 5). */
const char *sql_authie_query(enum sql_dialect d, bool legacy_tokens);

/*
 * The value of parameter p for a request, formatted into buf where needed
 * (token hash, inactivity seconds). NULL binds SQL NULL.
 */
const char *sql_param_value(const struct myxid_host *host,
			    const struct myxid_req *req,
			    const struct sql_options *o, enum sql_param p,
			    char *buf, size_t buf_size);

/* Lowercase hex SHA-256 of s into out (65 bytes). */
void sql_sha256_hex(const char *s, size_t len, char out[65]);

struct pool;

/* The ABI's auth() of a pool-backed SQL plugin: a request without a token
 * is not ours to refuse (another plugin in the chain may know it). */
enum myxid_verdict sql_auth(const struct myxid_host *host, struct pool *pool,
			    struct myxid_req *req);

/* The ABI's policy(): without a query (only a host older than ABI 1.1
 * loads a query-less block as a policy) every subscription fails, and the
 * error is logged once (*warned). */
enum myxid_verdict sql_policy(const struct myxid_host *host,
					struct myxid_instance *inst, struct pool *pool,
					bool has_query, bool *warned,
					struct myxid_req *req);

#endif
