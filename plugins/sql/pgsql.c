/*
 * pgsql: authentication and exchange policies answered by PostgreSQL, on
 * the daemon's event loop, never blocking it.
 *
 * One shared object serves both kinds:
 *
 *     auth pgsql {
 *         conninfo "hostaddr=127.0.0.1 port=5432 dbname=app user=myxid password=..."
 *     }
 *     exchange deployment {
 *         policy pgsql {
 *             conninfo "hostaddr=127.0.0.1 port=5432 dbname=app user=myxid password=..."
 *             query "SELECT 1 FROM deployments d JOIN memberships m ON m.project_id = d.project_id WHERE d.uuid = {routing_key} AND m.user_id::text = {user_id}"
 *         }
 *     }
 *
 * Without a query an auth instance runs Authie's session query (see
 * sql_common.c); a policy instance needs one. The other options are those
 * of sql_common.h (pool_size, connect_timeout, query_timeout, queue_max,
 * inactivity_timeout, legacy_tokens).
 *
 * HOW IT TALKS TO POSTGRESQL
 *   libpq's asynchronous API, as dovecot's driver-pgsql does:
 *   PQconnectStartParams + PQconnectPoll with the socket watched through
 *   the host (the socket may change after every poll), then PQsendPrepare
 *   once per connection and PQsendQueryPrepared per request (text
 *   parameters; a NULL value binds SQL NULL), PQflush until it is done,
 *   and PQconsumeInput / PQisBusy / PQgetResult as the socket becomes
 *   readable. Values are always bound, never spliced into SQL, and a
 *   prepared statement cannot hold several statements.
 *
 *   The pool is plugins/lib/pool.c (see pool.h), shared with the MariaDB
 *   driver; this file is libpq's side of it. What it does for pgsql:
 *   a pool of pool_size connections, each running one query at a time.
 *   Requests that find every connection busy wait in a FIFO of at most
 *   queue_max; beyond it they are answered MYXID_ERROR at once.
 *
 *   Each connection has one timer, whose meaning follows its state: the
 *   connect timeout while connecting, the query timeout while a query
 *   runs, the reconnect delay while disconnected. A query that times out
 *   is answered MYXID_ERROR and its connection dropped (PQfinish) and
 *   opened again: PQcancel would block the loop. The backend may go on
 *   running the query until it finishes; a statement_timeout in the
 *   conninfo's options stops it there too.
 *
 *   A failed connection attempt is retried after an exponential backoff
 *   with jitter (100 ms doubling to 5 s). When no connection is up and an
 *   attempt has failed since the last one was, the database counts as
 *   down: waiting requests and new ones are answered MYXID_ERROR at once
 *   (the daemon tells the client AuthUnavailable / PolicyUnavailable)
 *   instead of each waiting for a timeout. Such a request also brings the
 *   next attempt forward (at most one a second), so that the service is
 *   back as soon as the database is, not after the backoff. The first
 *   connection to come back wakes the others.
 *
 *   The first connection is opened from a zero-delay timer, i.e. once the
 *   loop runs ("myxid -t" loads the plugin without connecting); the others
 *   only when requests have to wait, so that a daemon with many SQL
 *   policies holds few idle connections, and so that the CPU time of
 *   opening them (SCRAM: a few ms each, on the loop) is not spent all at
 *   once at startup. An opened connection stays open.
 *
 *   DNS: a host= name is resolved by libpq with a blocking getaddrinfo()
 *   on the loop at every connect. init() warns about it; use hostaddr=.
 *
 * ANSWERS
 *   auth: a row -> the first column is the user id (text), a column named
 *   user_type the user type, and every other non-NULL column an attribute
 *   named after it -> MYXID_ALLOW; no row -> MYXID_NEXT; an error ->
 *   MYXID_ERROR with the server's message (the token cut out of it) as the
 *   reason, which the daemon logs and never sends.
 *   policy: a row -> MYXID_ALLOW; no row -> MYXID_DENY; error -> ERROR.
 *   Every answer goes through req_done(). A request cancelled while queued
 *   is dropped; one cancelled while its query runs is marked, and its
 *   result thrown away.
 *
 * SECRETS
 *   The token is read from the request when its query is sent and never
 *   copied by this plugin but for its hash, on the stack, scrubbed after
 *   use (libpq's own output buffer keeps the bytes it sent until they are
 *   overwritten; nothing can be done about that from here). Neither the
 *   token nor the conninfo (which may hold a password) is ever logged; a
 *   server message that quotes the token has it replaced by "[token]".
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include <myxid/plugin.h>
#include "plugin_options.h"
#include "plugin_util.h"
#include "pool.h"
#include "sql_common.h"

#define MSG_MAX POOL_MSG_MAX

struct pg;

/* One connection: the pool's slot, and libpq's state of it. */
struct pg_conn {
	struct pool_conn pc;          /* first: the pool hands us this */
	PGconn *conn;
	PGresult *res;                /* POOL_BUSY: the result so far */
	bool flushing;                /* POOL_BUSY: PQflush has more to send */
	bool prepared;                /* the query is prepared on this conn */
	bool preparing;               /* POOL_BUSY: the Prepare is in flight */
};

struct pg {
	const struct myxid_host *host;
	struct myxid_instance *inst;
	struct sql_options o;
	bool has_query;               /* a query option (else Authie's) */
	char *conninfo;               /* may hold a password: scrubbed */
	const struct myxid_opt *conninfo_opt; /* during init() only */
	const char *kw[4];            /* PQconnectStartParams arguments */
	const char *kw_values[4];
	struct pool *pool;
	bool warned_policy;
	bool warned_columns;
};

/* ------------------------------------------------------------ messages */

/*
 * libpq's messages end in a newline and may span lines: make one line of
 * src in dst, cutting every occurrence of secret (if any) out of it.
 */
static void clean_msg(char *dst, size_t size, const char *src,
		      const char *secret)
{
	size_t o = 0, secret_len = secret != NULL ? strlen(secret) : 0;
	bool space = false;

	if (size == 0)
		return;
	if (src == NULL)
		src = "";
	while (*src != '\0' && o + 1 < size) {
		if (secret_len > 0 && strncmp(src, secret, secret_len) == 0) {
			static const char mark[] = "[token]";
			size_t n = sizeof(mark) - 1;

			if (o + n >= size)
				break;
			memcpy(dst + o, mark, n);
			o += n;
			src += secret_len;
			space = false;
			continue;
		}
		if (*src == '\n' || *src == '\r' || *src == '\t') {
			space = o > 0;
			src++;
			continue;
		}
		if (space) {
			dst[o++] = ' ';
			space = false;
			if (o + 1 >= size)
				break;
		}
		dst[o++] = *src++;
	}
	dst[o] = '\0';
}

static void notice_cb(void *arg, const char *message)
{
	struct pg *pg = arg;
	char line[MSG_MAX];

	clean_msg(line, sizeof(line), message, NULL);
	pg->host->log(pg->inst, MYXID_LOG_DEBUG, "server notice: %s", line);
}

/* ------------------------------------------------------------ results */

/* The reason logged for a failed query: SQLSTATE and the server's
 * message, with the request's token (and its hash) cut out. */
static void error_reason(struct pg *pg, const struct pool_req *r,
			 const PGresult *res, char *out, size_t size)
{
	const char *token = r->req ? pg->host->req_get(r->req, "token") : NULL;
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	char msg[MSG_MAX], tmp[MSG_MAX], hash[65];

	if (primary == NULL)
		primary = PQresultErrorMessage(res);
	clean_msg(tmp, sizeof(tmp), primary, token);
	if (token != NULL && token[0] != '\0') {
		sql_sha256_hex(token, strlen(token), hash);
		clean_msg(msg, sizeof(msg), tmp, hash);
		pu_scrub(hash, sizeof(hash));
	} else {
		memcpy(msg, tmp, sizeof(msg));
	}
	snprintf(out, size, "query failed: %s%s%s", state ? state : "",
		 state ? ": " : "", msg);
	pu_scrub(tmp, sizeof(tmp));
	pu_scrub(msg, sizeof(msg));
}

/* A row of an auth query into the request's identity. NULL, or why not. */
static const char *set_identity(struct pg *pg, struct myxid_req *req,
				const PGresult *res)
{
	const struct myxid_host *host = pg->host;
	int n_fields = PQnfields(res);
	int type_col = PQfnumber(res, "user_type");
	const char *user_id, *user_type = NULL;

	if (n_fields < 1 || PQgetisnull(res, 0, 0))
		return "the query's first column (the user id) is NULL";
	user_id = PQgetvalue(res, 0, 0);
	if (user_id[0] == '\0')
		return "the query's first column (the user id) is empty";
	if (type_col > 0 && !PQgetisnull(res, 0, type_col) &&
	    PQgetvalue(res, 0, type_col)[0] != '\0')
		user_type = PQgetvalue(res, 0, type_col);
	if (host->req_set_user(req, user_id, user_type) < 0)
		return "the host refused the user id";
	for (int i = 1; i < n_fields; i++) {
		const char *name = PQfname(res, i);

		if (i == type_col || PQgetisnull(res, 0, i))
			continue;
		if (name == NULL || !pu_valid_name(name, strlen(name))) {
			if (!pg->warned_columns)
				host->log(pg->inst, MYXID_LOG_WARNING,
					  "query column %d has no usable name "
					  "(\"%s\"): not an attribute; name it "
					  "with AS", i + 1, name ? name : "");
			pg->warned_columns = true;
			continue;
		}
		if (host->req_add_attr(req, name, PQgetvalue(res, 0, i)) < 0)
			return "the host refused an attribute";
	}
	return NULL;
}

/* The query of c's request ended with res (may be NULL): answer it. */
static void answer_result(struct pg_conn *c, const PGresult *res)
{
	struct pg *pg = c->pc.driver;
	struct pool_req *r = c->pc.cur;
	char reason[MSG_MAX];
	const char *why;

	if (r == NULL || r->req == NULL) {      /* cancelled meanwhile */
		pool_conn_answer(&c->pc, MYXID_ERROR, NULL);
		return;
	}
	if (res == NULL) {
		pool_conn_answer(&c->pc, MYXID_ERROR, "the query returned no result");
		return;
	}
	switch (PQresultStatus(res)) {
	case PGRES_TUPLES_OK:
		break;
	case PGRES_COMMAND_OK:
		pool_conn_answer(&c->pc, MYXID_ERROR, "the query returned no "
				 "result set (not a SELECT?)");
		return;
	default:
		error_reason(pg, r, res, reason, sizeof(reason));
		pool_conn_answer(&c->pc, MYXID_ERROR, reason);
		return;
	}
	if (!r->is_auth) {
		pool_conn_answer(&c->pc, PQntuples(res) > 0 ? MYXID_ALLOW :
				 MYXID_DENY, NULL);
		return;
	}
	if (PQntuples(res) == 0) {
		pool_conn_answer(&c->pc, MYXID_NEXT, NULL);
		return;
	}
	why = set_identity(pg, r->req, res);
	pool_conn_answer(&c->pc, why == NULL ? MYXID_ALLOW : MYXID_ERROR, why);
}

/* ------------------------------------------------------------ connections */

/* The pool's close: free libpq's side of the connection. */
static void pg_close(struct pool_conn *pc, bool gentle)
{
	struct pg_conn *c = (struct pg_conn *)pc;

	(void)gentle;           /* PQfinish says goodbye without waiting */
	if (c->res != NULL) {
		PQclear(c->res);
		c->res = NULL;
	}
	if (c->conn != NULL) {
		PQfinish(c->conn);
		c->conn = NULL;
	}
	c->flushing = false;
	c->prepared = false;
	c->preparing = false;
}

static int pg_socket(struct pool_conn *pc)
{
	return PQsocket(((struct pg_conn *)pc)->conn);
}

/* libpq's messages end in a newline and may span lines. */
static void attempt_failed(struct pg_conn *c, const char *msg)
{
	char why[MSG_MAX];

	clean_msg(why, sizeof(why), msg, NULL);
	pool_attempt_failed(&c->pc, why);
}

static void conn_lost(struct pg_conn *c, const char *msg, int level)
{
	char why[MSG_MAX];

	clean_msg(why, sizeof(why), msg, NULL);
	pool_conn_lost(&c->pc, why, level);
}

static void pg_connect(struct pool_conn *pc)
{
	struct pg_conn *c = (struct pg_conn *)pc;
	struct pg *pg = pc->driver;

	c->conn = PQconnectStartParams(pg->kw, pg->kw_values, 1);
	if (c->conn == NULL) {
		attempt_failed(c, "out of memory");
		return;
	}
	if (PQstatus(c->conn) == CONNECTION_BAD) {
		attempt_failed(c, PQerrorMessage(c->conn));
		return;
	}
	PQsetNoticeProcessor(c->conn, notice_cb, pg);
	if (PQsetnonblocking(c->conn, 1) != 0) {
		attempt_failed(c, PQerrorMessage(c->conn));
		return;
	}
	/* libpq's docs: before the first PQconnectPoll, act as if it had
	 * answered PGRES_POLLING_WRITING. */
	if (pool_conn_watch(pc, MYXID_WATCH_WRITE, true) < 0)
		attempt_failed(c, "cannot watch the socket");
}

static void conn_poll(struct pg_conn *c)
{
	switch (PQconnectPoll(c->conn)) {
	case PGRES_POLLING_OK:
		pool_conn_up(&c->pc);
		return;
	case PGRES_POLLING_READING:
		if (pool_conn_watch(&c->pc, MYXID_WATCH_READ, true) < 0)
			attempt_failed(c, "cannot watch the socket");
		return;
	case PGRES_POLLING_WRITING:
	case PGRES_POLLING_ACTIVE:
		if (pool_conn_watch(&c->pc, MYXID_WATCH_WRITE, true) < 0)
			attempt_failed(c, "cannot watch the socket");
		return;
	case PGRES_POLLING_FAILED:
	default:
		attempt_failed(c, PQerrorMessage(c->conn));
		return;
	}
}

/* The query on c is complete (PQgetResult said NULL). */
/* The query on c is complete (PQgetResult said NULL). */
static void query_done(struct pg_conn *c)
{
	PGresult *res = c->res;

	c->res = NULL;
	if (PQstatus(c->conn) != CONNECTION_OK) {
		char why[MSG_MAX];

		clean_msg(why, sizeof(why), PQerrorMessage(c->conn), NULL);
		answer_result(c, res);
		PQclear(res);
		pool_conn_lost(&c->pc, why, MYXID_LOG_NOTICE);
		return;
	}
	if (c->preparing) {
		c->preparing = false;
		if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK) {
			/* Prepared: now run the request, on this connection. */
			PQclear(res);
			c->prepared = true;
			pool_conn_rerun(&c->pc);
			return;
		}
		/* A query that cannot be prepared cannot run: answer its error. */
	}
	answer_result(c, res);
	PQclear(res);
	pool_conn_idle(&c->pc);
}

static void conn_read(struct pg_conn *c)
{
	if (!PQconsumeInput(c->conn)) {
		conn_lost(c, PQerrorMessage(c->conn), MYXID_LOG_NOTICE);
		return;
	}
	while (!PQisBusy(c->conn)) {
		PGresult *res = PQgetResult(c->conn);

		if (res == NULL) {
			query_done(c);
			return;
		}
		/* One statement gives one result; keep the first, or the
		 * first error. */
		if (c->res == NULL) {
			c->res = res;
		} else if (PQresultStatus(res) == PGRES_FATAL_ERROR &&
			   PQresultStatus(c->res) != PGRES_FATAL_ERROR) {
			PQclear(c->res);
			c->res = res;
		} else {
			PQclear(res);
		}
	}
	if (PQstatus(c->conn) != CONNECTION_OK)
		conn_lost(c, PQerrorMessage(c->conn), MYXID_LOG_NOTICE);
}

/* libpq's rule for a non-blocking send: while PQflush says 1, wait for
 * either readiness; on read, consume input first, then flush again. */
static void conn_busy_io(struct pg_conn *c, unsigned ready)
{
	if (c->flushing) {
		int f;

		if ((ready & MYXID_WATCH_READ) && !PQconsumeInput(c->conn)) {
			conn_lost(c, PQerrorMessage(c->conn), MYXID_LOG_NOTICE);
			return;
		}
		f = PQflush(c->conn);
		if (f < 0) {
			conn_lost(c, PQerrorMessage(c->conn), MYXID_LOG_NOTICE);
			return;
		}
		if (f > 0)
			return;
		c->flushing = false;
		if (pool_conn_watch(&c->pc, MYXID_WATCH_READ, false) < 0) {
			conn_lost(c, "cannot watch the socket", MYXID_LOG_ERROR);
			return;
		}
	}
	conn_read(c);
}

/* Something arrived on an idle connection: most likely the server closing
 * it (shutdown, pg_terminate_backend), so that is noticed at once rather
 * than by the next query. */
static void conn_idle_input(struct pg_conn *c)
{
	if (!PQconsumeInput(c->conn)) {
		conn_lost(c, PQerrorMessage(c->conn), MYXID_LOG_NOTICE);
		return;
	}
	(void)PQisBusy(c->conn);        /* parse it (notices, status) */
	if (PQstatus(c->conn) != CONNECTION_OK)
		conn_lost(c, PQerrorMessage(c->conn), MYXID_LOG_NOTICE);
}

static void pg_io(struct pool_conn *pc, unsigned ready)
{
	struct pg_conn *c = (struct pg_conn *)pc;

	switch (pc->state) {
	case POOL_CONNECTING:
		conn_poll(c);
		return;
	case POOL_IDLE:
		conn_idle_input(c);
		return;
	case POOL_BUSY:
		conn_busy_io(c, ready);
		return;
	case POOL_WAIT:
		return;
	}
}

/*
 * Send the request on c. If it cannot even be handed to libpq the
 * connection is broken and the request was never sent: the pool gives it
 * to another connection.
 */
static void pg_send(struct pool_conn *pc)
{
	struct pg_conn *c = (struct pg_conn *)pc;
	struct pg *pg = pc->driver;
	const struct sql_template *t = &pg->o.query;
	const char *values[SQL_MAX_PARAMS];
	char bufs[SQL_MAX_PARAMS][72];
	int ok, f;

	if (!c->prepared) {
		/*
		 * Parse and plan once per connection: an unnamed statement is
		 * planned again for every request, and that planning is most of
		 * the server's CPU per Authenticate. The request waits on this
		 * connection for the Prepare, then runs (query_done).
		 */
		ok = PQsendPrepare(c->conn, "myxid", t->sql, (int)t->n_params, NULL);
		c->preparing = ok != 0;
	} else {
		for (size_t i = 0; i < t->n_params; i++)
			values[i] = sql_param_value(pg->host, pc->cur->req, &pg->o,
						    t->params[i], bufs[i],
						    sizeof(bufs[i]));
		ok = PQsendQueryPrepared(c->conn, "myxid", (int)t->n_params, values,
					 NULL, NULL, 0);
		/* the token's hash; libpq has its own copy now */
		pu_scrub(bufs, sizeof(bufs));
	}
	if (!ok) {
		char why[MSG_MAX];

		clean_msg(why, sizeof(why), PQerrorMessage(c->conn), NULL);
		pool_conn_bounce(pc, why, MYXID_LOG_NOTICE);
		return;
	}
	f = PQflush(c->conn);
	if (f < 0) {
		conn_lost(c, PQerrorMessage(c->conn), MYXID_LOG_NOTICE);
		return;
	}
	c->flushing = f > 0;
	if (pool_conn_watch(pc, MYXID_WATCH_READ |
			    (c->flushing ? MYXID_WATCH_WRITE : 0), false) < 0)
		conn_lost(c, "cannot watch the socket", MYXID_LOG_ERROR);
}

static int pg_conn_init(struct pool_conn *pc)
{
	(void)pc;
	return 0;
}

static void pg_conn_deinit(struct pool_conn *pc)
{
	(void)pc;
}

/* The pool's events, in this plugin's words. */
static void pg_report(void *driver, struct pool_conn *c,
		      const struct pool_event *ev)
{
	struct pg *pg = driver;
	const struct myxid_host *host = pg->host;

	switch (ev->type) {
	case POOL_EV_ATTEMPT_FAILED:
		host->log(pg->inst, MYXID_LOG_DEBUG, "connection %u: %s; next "
			  "attempt in %u ms", c->index, ev->why, ev->delay_ms);
		if (ev->outage_began)
			host->log(pg->inst, MYXID_LOG_WARNING, "database "
				  "unavailable: %s (requests fail until it is "
				  "back)", ev->why);
		return;
	case POOL_EV_LOST:
		host->log(pg->inst, ev->level, "connection %u: %s; reconnecting",
			  c->index, ev->why);
		return;
	case POOL_EV_UP:
		if (ev->was_down)
			host->log(pg->inst, MYXID_LOG_NOTICE, "database reachable "
				  "again");
		else if (ev->first)
			host->log(pg->inst, MYXID_LOG_INFO, "connected (PostgreSQL "
				  "server version %d)",
				  PQserverVersion(((struct pg_conn *)c)->conn));
		return;
	case POOL_EV_QUEUE_FAILED:
	case POOL_EV_QUEUE_FULL:
		return;         /* the answers' reasons say it */
	}
}

static const struct pool_vfuncs pg_vfuncs = {
	.conn_size = sizeof(struct pg_conn),
	.req_size = sizeof(struct pool_req),
	.conn_init = pg_conn_init,
	.conn_deinit = pg_conn_deinit,
	.connect = pg_connect,
	.socket = pg_socket,
	.io = pg_io,
	.send = pg_send,
	.close = pg_close,
	.report = pg_report,
};

/* ------------------------------------------------------------ the ABI */

static enum myxid_verdict pg_auth(void *ctx, struct myxid_req *req)
{
	struct pg *pg = ctx;

	return sql_auth(pg->host, pg->pool, req);
}

static enum myxid_verdict pg_policy(void *ctx, struct myxid_req *req)
{
	struct pg *pg = ctx;

	return sql_policy(pg->host, pg->inst, pg->pool, pg->has_query, &pg->warned_policy, req);
}

static void pg_cancel(void *ctx, struct myxid_req *req)
{
	pool_cancel(((struct pg *)ctx)->pool, req);
}

static void pg_free(struct pg *pg)
{
	if (pg == NULL)
		return;
	pool_free(pg->pool);
	sql_options_free(&pg->o);
	if (pg->conninfo != NULL) {
		pu_scrub(pg->conninfo, strlen(pg->conninfo));
		free(pg->conninfo);
	}
	free(pg);
}

static void pg_deinit(void *ctx)
{
	pg_free(ctx);
}

static bool is_ip_literal(const char *s, size_t len)
{
	char buf[64];
	unsigned char addr[16];

	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return inet_pton(AF_INET, buf, addr) == 1 ||
		inet_pton(AF_INET6, buf, addr) == 1;
}

/*
 * Check the conninfo with libpq's own parser, warn about host names (a
 * blocking DNS lookup at every connect) and log where we connect, without
 * the password. 0, or -1 with a message.
 */
static int check_conninfo(struct pg *pg, const char *conninfo, char *err,
			  size_t err_size)
{
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
	const char *host = NULL, *hostaddr = NULL, *port = NULL;
	const char *dbname = NULL, *user = NULL;
	const char *names = NULL;
	size_t names_len = 0;

	if (opts == NULL) {
		char msg[MSG_MAX];

		clean_msg(msg, sizeof(msg), perr ? perr : "out of memory", NULL);
		pu_err(err, err_size, "bad conninfo: %s", msg);
		PQfreemem(perr);
		return -1;
	}
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL || o->val[0] == '\0')
			continue;
		if (strcmp(o->keyword, "host") == 0)
			host = o->val;
		else if (strcmp(o->keyword, "hostaddr") == 0)
			hostaddr = o->val;
		else if (strcmp(o->keyword, "port") == 0)
			port = o->val;
		else if (strcmp(o->keyword, "dbname") == 0)
			dbname = o->val;
		else if (strcmp(o->keyword, "user") == 0)
			user = o->val;
	}
	if (host == NULL)
		host = getenv("PGHOST");
	if (hostaddr == NULL)
		hostaddr = getenv("PGHOSTADDR");
	if ((hostaddr == NULL || hostaddr[0] == '\0') && host != NULL) {
		/* host may be a comma-separated list; a path or an IP
		 * literal is not looked up. */
		for (const char *p = host; *p != '\0';) {
			size_t len = strcspn(p, ",");

			if (len > 0 && p[0] != '/' && p[0] != '@' &&
			    !is_ip_literal(p, len) && names == NULL) {
				names = p;
				names_len = len;
			}
			p += len;
			if (*p == ',')
				p++;
		}
	}
	if (names != NULL)
		pg->host->log(pg->inst, MYXID_LOG_WARNING, "host=%.*s is a name: "
			      "libpq resolves it with a blocking DNS lookup on "
			      "the event loop at every connection attempt; give "
			      "hostaddr=IP (keep host= for TLS verification)",
			      (int)names_len, names);
	pg->host->log(pg->inst, MYXID_LOG_INFO, "%u connection(s) to %s%s%s "
		      "database %s as %s; %s", pg->o.pool_size,
		      hostaddr ? hostaddr : host ? host : "(default socket)",
		      port ? ":" : "", port ? port : "",
		      dbname ? dbname : "(default)", user ? user : "(default)",
		      pg->has_query ? "query from the configuration" :
		      pg->o.legacy_tokens ?
		      "Authie's session query (token_hash, or legacy token)" :
		      "Authie's session query (token_hash)");
	PQconninfoFree(opts);
	return 0;
}

/* conninfo is checked whole by libpq (check_conninfo), so the table only
 * finds it; the common options are sql_common's. */
static const struct po_option pg_rows[] = {
	{ "conninfo", PO_OPT, offsetof(struct pg, conninfo_opt), 0, 0, NULL,
	  NULL, NULL, 0 },
	PO_END
};
static const struct po_table pg_table = { pg_rows, NULL, sql_option_keys,
					  true };

static int pg_init(const struct myxid_host *host, struct myxid_instance *inst,
		   const struct myxid_opt *opts, size_t n_opts, void **ctx_r,
		   char *err, size_t err_size, const struct myxid_opt **bad_opt_r)
{
	static const char *const driver_keys[] = { "conninfo", NULL };
	struct pool_settings settings = { .lazy = true, .probe = true };
	const struct myxid_opt *conninfo_opt;
	struct pg *pg;

	if (pu_check_host(host, err, err_size) < 0)
		return -1;
	pg = calloc(1, sizeof(*pg));
	if (pg == NULL) {
		pu_err(err, err_size, "out of memory");
		return -1;
	}
	pg->host = host;
	pg->inst = inst;
	if (po_parse(&pg_table, pg, NULL, host, opts, n_opts, err, err_size,
		     bad_opt_r) < 0)
		goto fail;
	/* An auth query defaults to Authie's; a policy needs its own. A
	 * host older than ABI 1.1 cannot say which block this is. */
	if (sql_options_parse(&pg->o, SQL_PGSQL, host->abi_minor >= 1 ?
			      host->instance_kind(inst) :
			      MYXID_KIND_AUTH | MYXID_KIND_POLICY, opts, n_opts,
			      driver_keys, err, err_size, bad_opt_r) < 0)
		goto fail;
	pg->has_query = pg->o.has_query;
	conninfo_opt = pg->conninfo_opt;
	if (conninfo_opt == NULL) {
		pu_err(err, err_size, "conninfo is required, e.g. conninfo "
		       "\"hostaddr=127.0.0.1 port=5432 dbname=app user=myxid "
		       "password=secret\"");
		goto fail;
	}
	if (check_conninfo(pg, conninfo_opt->value, err, err_size) < 0) {
		*bad_opt_r = conninfo_opt;
		goto fail;
	}
	pg->conninfo = strdup(conninfo_opt->value);
	if (pg->conninfo == NULL) {
		pu_err(err, err_size, "out of memory");
		goto fail;
	}
	/* Earlier keywords are defaults the conninfo may override. */
	pg->kw[0] = "client_encoding";
	pg->kw_values[0] = "UTF8";
	pg->kw[1] = "fallback_application_name";
	pg->kw_values[1] = "myxid";
	pg->kw[2] = "dbname";
	pg->kw_values[2] = pg->conninfo;
	pg->kw[3] = NULL;
	pg->kw_values[3] = NULL;
	/* Lazy: a daemon with many SQL policies holds few idle connections,
	 * and the CPU of opening them (SCRAM: a few ms each, on the loop) is
	 * not spent all at once at startup. */
	settings.size = pg->o.pool_size;
	settings.queue_max = pg->o.queue_max;
	settings.connect_timeout_ms = pg->o.connect_timeout_ms;
	settings.query_timeout_ms = pg->o.query_timeout_ms;
	pg->pool = pool_new(host, inst, &pg_vfuncs, pg, &settings, err,
			    err_size);
	if (pg->pool == NULL)
		goto fail;
	*ctx_r = pg;
	return 0;
fail:
	pg_free(pg);
	return -1;
}

MYXID_PLUGIN_EXPORT const struct myxid_plugin myxid_plugin_entry = {
	.abi_major = MYXID_PLUGIN_ABI_MAJOR,
	.abi_minor = MYXID_PLUGIN_ABI_MINOR,
	.size = sizeof(struct myxid_plugin),
	.kinds = MYXID_KIND_AUTH | MYXID_KIND_POLICY,
	.name = "pgsql",
	.version = "1.0",
	.init = pg_init,
	.deinit = pg_deinit,
	.auth = pg_auth,
	.policy = pg_policy,
	.cancel = pg_cancel,
};

