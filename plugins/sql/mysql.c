/*
 * mysql: Authie sessions and SQL exchange policies on MySQL or MariaDB,
 * without ever blocking the event loop.
 *
 * One shared object serves both kinds of block:
 *
 *     auth mysql {
 *         host 127.0.0.1          # an IP address (see below); the default
 *         port 3306               # the default
 *         # or, instead of host and port: unix_socket /run/mysqld/mysqld.sock
 *         user myxid              # required
 *         password ${MYXID_DB_PASSWORD}
 *         database app
 *         # pool_size, connect_timeout, query_timeout, queue_max,
 *         # inactivity_timeout, legacy_tokens, query: see sql_common.h
 *     }
 *     exchange deployment {
 *         policy mysql {
 *             ...connection options as above...
 *             query "SELECT 1 FROM deployments d JOIN memberships m ON ..."
 *         }
 *     }
 *
 * init() learns from the host (instance_kind, ABI 1.1) which kind of block
 * it serves: an auth block without a query runs Authie's session query, a
 * policy block without one is refused at load. A host older than 1.1
 * cannot say; then a query-less instance refuses (MYXID_ERROR, logged
 * once) to act as a policy.
 *
 * VALUES NEVER MEET SQL TEXT. The query is prepared once per connection
 * (the binary protocol: mysql_stmt_prepare) and every request executes it
 * with its values bound as parameters, so no quoting, escaping, character
 * set or sql_mode question can turn a token or a routing key into SQL.
 *
 * ASYNCHRONOUS. Every step that may wait on the network goes through
 * MariaDB Connector/C's non-blocking calls (MYSQL_OPT_NONBLOCK and the
 * *_start / *_cont pairs): connect, prepare, execute, store_result. The
 * socket (mysql_get_socket) is watched through the host's watch service
 * and MYSQL_WAIT_TIMEOUT through a host timer; the plugin's own connect
 * and query deadlines are host timers too. Fetching rows from a stored
 * result and freeing it involve no I/O. The one blocking call left is the
 * name lookup inside mysql_real_connect when host is a name rather than an
 * address: init() warns about it.
 *
 * POOL. plugins/lib/pool.c (see pool.h): pool_size connections, all
 * opened at start, each running one request at a time; a FIFO of at most
 * queue_max waiting requests; backoff with jitter; fail-fast during an
 * outage; query_timeout drops the connection (the only way to stop
 * waiting). A connection the server drops within a second of accepting it
 * counts as a failed attempt. This file is the MariaDB side of it: the
 * connect-prepare-execute-store steps, and idle connections watched so that
 * a server that goes away is noticed before the next request needs it.
 *
 * SECRETS. A request's values (the token, its hash) are copied out of it
 * only while it waits or runs, and scrubbed after; they are never logged,
 * and server messages passed on as reasons have any quoted part that
 * could hold a request value masked. (What the client library does with
 * its own buffers is out of our hands.)
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mysql.h>
#include <errmsg.h>
#include <mysqld_error.h>

#include <myxid/plugin.h>
#include "plugin_options.h"
#include "plugin_util.h"
#include "pool.h"
#include "sql_common.h"

#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_PORT 3306
#include "mysql_private.h"

/* ------------------------------------------------------------ helpers */

/*
 * The client library's global state: set up by the first instance and
 * released (mysql_library_end) with the last, so unloading the plugin
 * after a reload leaks nothing. Instances may live on several loops.
 */
static pthread_mutex_t lib_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned lib_users;

static int lib_acquire(void)
{
	int r = 0;

	pthread_mutex_lock(&lib_lock);
	if (lib_users == 0 && mysql_library_init(0, NULL, NULL) != 0)
		r = -1;
	else
		lib_users++;
	pthread_mutex_unlock(&lib_lock);
	return r;
}

static void lib_release(void)
{
	pthread_mutex_lock(&lib_lock);
	if (lib_users > 0 && --lib_users == 0)
		mysql_library_end();
	pthread_mutex_unlock(&lib_lock);
}

/*
 * Log a problem at level, unless it is the one logged last and that was
 * less than LOG_REPEAT_MS ago: then at debug level, so a pool retrying
 * against a dead server does not fill the log.
 */
static void log_problem(struct mysql_plugin *pl, int level, const char *fmt, ...)
	MYXID_PRINTF(3, 4);
static void log_problem(struct mysql_plugin *pl, int level, const char *fmt, ...)
{
	char msg[REASON_MAX];
	uint64_t t = pu_now_ms();
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
		msg[0] = '\0';
	va_end(ap);
	if (strcmp(msg, pl->last_problem) == 0 &&
	    t - pl->last_problem_ms < LOG_REPEAT_MS) {
		level = MYXID_LOG_DEBUG;
	} else {
		memcpy(pl->last_problem, msg, sizeof(msg));
		pl->last_problem_ms = t;
	}
	pl->host->log(pl->inst, level, "%s", msg);
}

/* Client errors (CR_*, 2000-2999) and the server errors that end the
 * session or invalidate the statement: the connection must be reopened. */
static bool error_breaks_connection(unsigned e)
{
	return (e >= 2000 && e <= 2999) || e == ER_SERVER_SHUTDOWN ||
		e == ER_CONNECTION_KILLED || e == ER_NEED_REPREPARE ||
		e == ER_UNKNOWN_STMT_HANDLER || e == 0;
}

/* ------------------------------------------------------------ jobs */

/* The pool's req_deinit: the blob held the token's hash. */
static void job_deinit(struct pool_req *r)
{
	struct job *j = (struct job *)r;

	if (j->blob != NULL) {
		pu_scrub(j->blob, j->blob_size);
		free(j->blob);
		j->blob = NULL;
	}
}

/* The pool's req_init: copy the request's values for the query's
 * parameters. -1 when out of memory. */
static int job_init(struct pool_req *r, void *driver)
{
	struct mysql_plugin *pl = driver;
	struct job *j = (struct job *)r;
	const struct sql_template *t = &pl->o.query;
	char bufs[SQL_MAX_PARAMS][96];
	const char *vals[SQL_MAX_PARAMS];
	size_t total = 0, off = 0, i;

	for (i = 0; i < t->n_params; i++) {
		vals[i] = sql_param_value(pl->host, r->req, &pl->o, t->params[i],
					  bufs[i], sizeof(bufs[i]));
		if (vals[i] != NULL)
			total += strlen(vals[i]) + 1;
	}
	j->blob_size = total ? total : 1;
	j->blob = malloc(j->blob_size);
	if (j->blob == NULL) {
		pu_scrub(bufs, sizeof(bufs));
		return -1;
	}
	for (i = 0; i < t->n_params; i++) {
		size_t len;

		if (vals[i] == NULL) {
			j->nulls[i] = 1;
			continue;
		}
		len = strlen(vals[i]);
		memcpy(j->blob + off, vals[i], len + 1);
		j->values[i] = j->blob + off;
		j->lens[i] = (unsigned long)len;
		off += len + 1;
	}
	/* bufs held the token's hash */
	pu_scrub(bufs, sizeof(bufs));
	return 0;
}

/* ------------------------------------------------------------ connections */

static void conn_drive(struct conn *c, int status);

static void conn_free_columns(struct conn *c)
{
	for (unsigned i = 0; i < c->n_cols; i++)
		free(c->col_names ? c->col_names[i] : NULL);
	free(c->col_names);
	c->col_names = NULL;
	c->n_cols = 0;
	c->user_type_col = -1;
}

/* The pool's close. gentle: say goodbye (COM_QUIT) to a healthy idle
 * server; otherwise shut the socket first so nothing can block. */
static void conn_close(struct pool_conn *pc, bool gentle)
{
	struct conn *c = (struct conn *)pc;
	struct mysql_plugin *pl = pc->driver;

	if (c->lib_timer != NULL)
		pl->host->timer_stop(c->lib_timer);
	if (c->my != NULL) {
		if (!gentle)
			mariadb_cancel(c->my);
		/* mysql_close() detaches the statement (stmt->mysql = NULL),
		 * after which mysql_stmt_close() only frees memory. */
		mysql_close(c->my);
		c->my = NULL;
	}
	if (c->stmt != NULL) {
		mysql_stmt_close(c->stmt);
		c->stmt = NULL;
	}
	conn_free_columns(c);
	c->step = STEP_NONE;
}

static int conn_socket(struct pool_conn *pc)
{
	struct conn *c = (struct conn *)pc;

	return c->my != NULL ? (int)mysql_get_socket(c->my) : -1;
}

/* An attempt to open the connection failed (connect, handshake, prepare). */
static void conn_fail(struct conn *c, const char *fmt, ...) MYXID_PRINTF(2, 3);
static void conn_fail(struct conn *c, const char *fmt, ...)
{
	char why[REASON_MAX];
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(why, sizeof(why), fmt, ap) < 0)
		why[0] = '\0';
	va_end(ap);
	pool_attempt_failed(&c->pc, why);
}

/* A working connection broke (or must be recycled): its request, if any,
 * is answered ERROR in this plugin's words, and the pool reconnects. */
static void conn_lost(struct conn *c, const char *why)
{
	if (c->pc.cur != NULL) {
		char reason[REASON_MAX + 64];

		snprintf(reason, sizeof(reason), "connection lost: %s", why);
		pool_conn_answer(&c->pc, MYXID_ERROR, reason);
	}
	pool_conn_lost(&c->pc, why, MYXID_LOG_INFO);
}

/* The pool's query_timeout: the server may still be working on it; the
 * only way to stop waiting is a new connection. */
static void conn_timed_out(struct pool_conn *pc, unsigned ms)
{
	char reason[REASON_MAX];

	snprintf(reason, sizeof(reason), "query timed out after %u ms", ms);
	pool_conn_answer(pc, MYXID_ERROR, reason);
	conn_lost((struct conn *)pc, "query timed out");
}

static void on_lib_timer(void *arg);

static int conn_init(struct pool_conn *pc)
{
	struct conn *c = (struct conn *)pc;
	struct mysql_plugin *pl = pc->driver;

	c->user_type_col = -1;
	c->lib_timer = pl->host->timer_new(pl->inst, on_lib_timer, c);
	return c->lib_timer != NULL ? 0 : -1;
}

static void conn_deinit(struct pool_conn *pc)
{
	struct conn *c = (struct conn *)pc;

	((struct mysql_plugin *)pc->driver)->host->timer_free(&c->lib_timer);
}

/* The pool's events, in this plugin's words (and with its repeat
 * filter, so a pool retrying against a dead server does not fill the
 * log). */
static void report(void *driver, struct pool_conn *c,
		   const struct pool_event *ev)
{
	struct mysql_plugin *pl = driver;

	switch (ev->type) {
	case POOL_EV_ATTEMPT_FAILED:
		if (pool_n_up(pl->pool) > 0)
			log_problem(pl, MYXID_LOG_WARNING, "connection %u: %s",
				    c->index, ev->why);
		else if (ev->outage_began)
			log_problem(pl, MYXID_LOG_WARNING, "database %s "
				    "unavailable: %s", pl->where, ev->why);
		else
			log_problem(pl, MYXID_LOG_DEBUG, "connection %u: %s; "
				    "retry in %u ms", c->index, ev->why,
				    ev->delay_ms);
		return;
	case POOL_EV_LOST:
		pl->host->log(pl->inst, MYXID_LOG_INFO, "connection %u closed: "
			      "%s", c->index, ev->why);
		return;
	case POOL_EV_UP:
		if (ev->first) {
			pl->host->log(pl->inst, MYXID_LOG_INFO, "connected to %s "
				      "(server %s)", pl->where,
				      mysql_get_server_info(((struct conn *)c)->my));
		} else if (ev->was_down) {
			pl->host->log(pl->inst, MYXID_LOG_NOTICE, "database %s "
				      "reachable again", pl->where);
			pl->last_problem[0] = '\0';
		}
		pl->ever_up = true;
		return;
	case POOL_EV_QUEUE_FAILED:
		pl->host->log(pl->inst, MYXID_LOG_WARNING, "answering %u waiting "
			      "request(s) with an error: database unavailable",
			      ev->count);
		return;
	case POOL_EV_QUEUE_FULL:
		log_problem(pl, MYXID_LOG_WARNING, "%u requests already wait for "
			    "a connection (queue_max): answering with an error",
			    ev->count);
		return;
	}
}

/* Remember the auth query's columns: the first is the user id, one named
 * user_type the type, the others attributes named after them. */
static int conn_read_columns(struct conn *c)
{
	struct mysql_plugin *pl = c->pc.driver;
	MYSQL_RES *meta = mysql_stmt_result_metadata(c->stmt);
	MYSQL_FIELD *f;
	unsigned i, n;

	if (meta == NULL)
		return -1;
	n = mysql_num_fields(meta);
	f = mysql_fetch_fields(meta);
	c->col_names = calloc(n, sizeof(*c->col_names));
	if (c->col_names == NULL || f == NULL) {
		mysql_free_result(meta);
		return -1;
	}
	c->n_cols = n;
	c->user_type_col = -1;
	for (i = 1; i < n; i++) {
		const char *name = f[i].name ? f[i].name : "";

		if (c->user_type_col < 0 && strcasecmp(name, "user_type") == 0) {
			c->user_type_col = (int)i;
			continue;
		}
		if (!pu_valid_name(name, strlen(name))) {
			if (!pl->ever_up)
				pl->host->log(pl->inst, MYXID_LOG_WARNING,
					      "column %u (\"%s\") is not a usable "
					      "attribute name (letters, digits, "
					      "'_', '-', '.'): ignored", i + 1, name);
			continue;
		}
		c->col_names[i] = strdup(name);
		if (c->col_names[i] == NULL) {
			mysql_free_result(meta);
			return -1;
		}
	}
	mysql_free_result(meta);
	return 0;
}

static void conn_prepared(struct conn *c)
{
	struct mysql_plugin *pl = c->pc.driver;
	unsigned long n_params;

	if (c->ret_int != 0) {
		/* The query itself is wrong, or a table is missing: the
		 * server's message names the problem, and holds no value. */
		conn_fail(c, "cannot prepare the query: [%u] %s",
			  mysql_stmt_errno(c->stmt), mysql_stmt_error(c->stmt));
		return;
	}
	n_params = mysql_stmt_param_count(c->stmt);
	if (n_params != pl->o.query.n_params) {
		conn_fail(c, "the server counts %lu parameter(s) in the query, "
			  "myxid bound %zu (a literal '?' in the query?)",
			  n_params, pl->o.query.n_params);
		return;
	}
	if (mysql_stmt_field_count(c->stmt) == 0) {
		conn_fail(c, "the query returns no rows (it must be a SELECT)");
		return;
	}
	if (conn_read_columns(c) != 0) {
		conn_fail(c, "cannot read the query's columns (out of memory?)");
		return;
	}
	c->step = STEP_NONE;
	pool_conn_up(&c->pc);
}

static void conn_connected(struct conn *c)
{
	struct mysql_plugin *pl = c->pc.driver;
	const char *cs;
	int status;

	if (c->ret_my == NULL) {
		conn_fail(c, "%s", mysql_error(c->my));
		return;
	}
	/* Strings are bound as utf8mb4: refuse a server that answers in
	 * another character set rather than compare mangled values. */
	cs = mysql_character_set_name(c->my);
	if (cs == NULL || strcmp(cs, CHARSET) != 0) {
		conn_fail(c, "the connection's character set is %s, not " CHARSET,
			  cs ? cs : "unknown");
		return;
	}
	c->stmt = mysql_stmt_init(c->my);
	if (c->stmt == NULL) {
		conn_fail(c, "mysql_stmt_init failed (out of memory)");
		return;
	}
	c->step = STEP_PREPARING;
	status = mysql_stmt_prepare_start(&c->ret_int, c->stmt, pl->o.query.sql,
					  (unsigned long)strlen(pl->o.query.sql));
	conn_drive(c, status);
}

/* The pool's connect: the connect deadline runs already. */
static void conn_connect(struct pool_conn *pc)
{
	struct conn *c = (struct conn *)pc;
	struct mysql_plugin *pl = pc->driver;
	unsigned int proto = pl->unix_socket ? MYSQL_PROTOCOL_SOCKET :
		MYSQL_PROTOCOL_TCP;
	unsigned int no = 0;
	my_bool off = 0;
	int status;

	c->my = mysql_init(NULL);
	if (c->my == NULL) {
		conn_fail(c, "mysql_init failed (out of memory)");
		return;
	}
	if (mysql_options(c->my, MYSQL_OPT_NONBLOCK, 0) != 0 ||
	    mysql_options(c->my, MYSQL_SET_CHARSET_NAME, CHARSET) != 0 ||
	    mysql_options(c->my, MYSQL_OPT_PROTOCOL, &proto) != 0 ||
	    mysql_options(c->my, MYSQL_OPT_LOCAL_INFILE, &no) != 0 ||
	    mysql_options(c->my, MYSQL_OPT_RECONNECT, &off) != 0) {
		conn_fail(c, "cannot set the connection options: %s",
			  mysql_error(c->my));
		return;
	}
	c->step = STEP_CONNECTING;
	/* No CLIENT_MULTI_STATEMENTS: one statement per query, always. */
	status = mysql_real_connect_start(&c->ret_my, c->my, pl->hostname,
					  pl->user, pl->password, pl->database,
					  pl->port, pl->unix_socket, 0);
	conn_drive(c, status);
}

/* ------------------------------------------------------------ results */

/* store_result finished: answer the job, and get ready for the next. */
static void conn_stored(struct conn *c)
{
	struct job *j = (struct job *)c->pc.cur;
	char reason[REASON_MAX + 64] = "";
	enum myxid_verdict v;
	bool more;

	c->step = STEP_NONE;
	if (c->ret_int != 0) {
		unsigned e = mysql_stmt_errno(c->stmt);
		char masked[REASON_MAX];

		mysql_mask_message(mysql_stmt_error(c->stmt), j, masked, sizeof(masked));
		if (error_breaks_connection(e)) {
			conn_lost(c, masked);
			return;
		}
		snprintf(reason, sizeof(reason), "query failed: [%u] %s", e, masked);
		mysql_stmt_free_result(c->stmt);
		pool_conn_done(&c->pc, MYXID_ERROR, reason);
		return;
	}
	if (j == NULL || j->pr.req == NULL) {
		v = MYXID_ERROR;                 /* cancelled: nobody to tell */
	} else if (mysql_stmt_num_rows(c->stmt) == 0) {
		v = j->pr.is_auth ? MYXID_NEXT : MYXID_DENY;
	} else if (!j->pr.is_auth) {
		v = MYXID_ALLOW;
	} else {
		v = mysql_auth_row(c, j->pr.req, reason, sizeof(reason));
	}
	more = mysql_stmt_more_results(c->stmt);
	if (!more)
		mysql_stmt_free_result(c->stmt);   /* buffered: no I/O */
	pool_conn_answer(&c->pc, v, reason[0] ? reason : NULL);
	if (more) {
		/* A CALL or the like: the rest would have to be read before
		 * the next execute. Start afresh instead. */
		log_problem(c->pc.driver, MYXID_LOG_WARNING, "the query returned "
			    "more than one result; use a single SELECT");
		conn_lost(c, "more than one result");
		return;
	}
	pool_conn_idle(&c->pc);
}

static void conn_executed(struct conn *c)
{
	int status;

	if (c->ret_int != 0) {
		/* reuse the store path's error handling */
		conn_stored(c);
		return;
	}
	c->step = STEP_STORING;
	status = mysql_stmt_store_result_start(&c->ret_int, c->stmt);
	conn_drive(c, status);
}

/* The pool's send: run the request on idle connection c (its deadline
 * runs already). */
static void conn_run(struct pool_conn *pc)
{
	struct conn *c = (struct conn *)pc;
	struct mysql_plugin *pl = pc->driver;
	struct job *j = (struct job *)pc->cur;
	size_t i, n = pl->o.query.n_params;
	int status;

	memset(c->binds, 0, sizeof(c->binds));
	for (i = 0; i < n; i++) {
		c->binds[i].buffer_type = MYSQL_TYPE_STRING;
		c->binds[i].buffer = j->values[i];
		c->binds[i].buffer_length = j->lens[i];
		c->binds[i].length = &j->lens[i];
		c->binds[i].is_null = &j->nulls[i];
	}
	if (n > 0 && mysql_stmt_bind_param(c->stmt, c->binds) != 0) {
		char reason[REASON_MAX];

		snprintf(reason, sizeof(reason), "cannot bind the parameters: %s",
			 mysql_stmt_error(c->stmt));
		pool_conn_done(pc, MYXID_ERROR, reason);
		return;
	}
	c->step = STEP_EXECUTING;
	status = mysql_stmt_execute_start(&c->ret_int, c->stmt);
	conn_drive(c, status);
}

/* ------------------------------------------------------------ the engine */

/* An operation finished (status 0) or must wait for the socket/timer. */
static void conn_drive(struct conn *c, int status)
{
	const struct myxid_host *host = ((struct mysql_plugin *)c->pc.driver)->host;
	unsigned events = 0;

	if (status != 0) {
		if (status & (MYSQL_WAIT_READ | MYSQL_WAIT_EXCEPT))
			events |= MYXID_WATCH_READ;
		if (status & MYSQL_WAIT_WRITE)
			events |= MYXID_WATCH_WRITE;
		if (status & MYSQL_WAIT_TIMEOUT)
			host->timer_start(c->lib_timer,
					  mysql_get_timeout_value_ms(c->my));
		else
			host->timer_stop(c->lib_timer);
		/* While connecting the library may close its socket and open
		 * another (the next address), possibly under the same number:
		 * a fresh watch each time, so none is left on a dead socket. */
		if (pool_conn_watch(&c->pc, events,
				    c->step == STEP_CONNECTING) != 0) {
			if (c->pc.state == POOL_CONNECTING)
				conn_fail(c, "cannot watch the socket");
			else
				conn_lost(c, "cannot watch the socket");
		}
		return;
	}
	host->timer_stop(c->lib_timer);
	switch (c->step) {
	case STEP_CONNECTING:
		conn_connected(c);
		break;
	case STEP_PREPARING:
		conn_prepared(c);
		break;
	case STEP_EXECUTING:
		conn_executed(c);
		break;
	case STEP_STORING:
		conn_stored(c);
		break;
	case STEP_NONE:
		break;
	}
}

/* The library's wait is over (ready: MYSQL_WAIT_* bits): continue. */
static void conn_resume(struct conn *c, int ready)
{
	int status;

	switch (c->step) {
	case STEP_CONNECTING:
		status = mysql_real_connect_cont(&c->ret_my, c->my, ready);
		break;
	case STEP_PREPARING:
		status = mysql_stmt_prepare_cont(&c->ret_int, c->stmt, ready);
		break;
	case STEP_EXECUTING:
		status = mysql_stmt_execute_cont(&c->ret_int, c->stmt, ready);
		break;
	case STEP_STORING:
		status = mysql_stmt_store_result_cont(&c->ret_int, c->stmt, ready);
		break;
	default:
		return;
	}
	conn_drive(c, status);
}

/* The pool's io: the socket is ready. */
static void on_io(struct pool_conn *pc, unsigned ready)
{
	struct conn *c = (struct conn *)pc;
	int st = 0;

	if (pc->state == POOL_IDLE) {
		/* Nothing was asked: the server closed the connection or
		 * sent its last words (wait_timeout, shutdown, KILL). */
		conn_lost(c, "closed by the server");
		return;
	}
	if (ready & MYXID_WATCH_READ)
		st |= MYSQL_WAIT_READ;
	if (ready & MYXID_WATCH_WRITE)
		st |= MYSQL_WAIT_WRITE;
	conn_resume(c, st);
}

static void on_lib_timer(void *arg)
{
	conn_resume(arg, MYSQL_WAIT_TIMEOUT);
}

/* ------------------------------------------------------------ requests */

static void conn_connect(struct pool_conn *pc);
static void conn_run(struct pool_conn *pc);
static void on_io(struct pool_conn *pc, unsigned ready);

static const struct pool_vfuncs vfuncs = {
	.conn_size = sizeof(struct conn),
	.req_size = sizeof(struct job),
	.conn_init = conn_init,
	.conn_deinit = conn_deinit,
	.connect = conn_connect,
	.socket = conn_socket,
	.io = on_io,
	.send = conn_run,
	.close = conn_close,
	.req_init = job_init,
	.req_deinit = job_deinit,
	.query_timeout = conn_timed_out,
	.report = report,
};

static enum myxid_verdict mysql_auth(void *ctx, struct myxid_req *req)
{
	struct mysql_plugin *pl = ctx;

	return sql_auth(pl->host, pl->pool, req);
}

static enum myxid_verdict mysql_policy(void *ctx, struct myxid_req *req)
{
	struct mysql_plugin *pl = ctx;

	return sql_policy(pl->host, pl->inst, pl->pool, pl->query_given, &pl->kind_warned, req);
}

static void mysql_cancel(void *ctx, struct myxid_req *req)
{
	pool_cancel(((struct mysql_plugin *)ctx)->pool, req);
}

/* ------------------------------------------------------------ init */

/* The connection options; sql_common reads the others. */
static const struct po_option my_rows[] = {
	{ "host", PO_STRING, offsetof(struct mysql_plugin, hostname), 0, 0,
	  NULL, NULL, NULL, 0 },
	{ "port", PO_COUNT, offsetof(struct mysql_plugin, port), 1, 65535,
	  "port must be 1 to 65535", NULL, NULL, 0 },
	{ "user", PO_STRING, offsetof(struct mysql_plugin, user), 0, 0, NULL,
	  NULL, NULL, 0 },
	/* may be empty; given twice is still a mistake */
	{ "password", PO_STRING, offsetof(struct mysql_plugin, password), 0, 0,
	  NULL, NULL, NULL, PO_EMPTY_OK },
	{ "database", PO_STRING, offsetof(struct mysql_plugin, database), 0, 0,
	  NULL, NULL, NULL, 0 },
	{ "unix_socket", PO_PATH, offsetof(struct mysql_plugin, unix_socket),
	  0, 0, NULL, NULL, NULL, 0 },
	PO_END
};
static const struct po_table my_table = { my_rows, NULL, sql_option_keys,
					  false };
static const char *const driver_keys[] = {
	"host", "port", "user", "password", "database", "unix_socket", NULL
};

static int read_driver_opts(struct mysql_plugin *pl, const struct myxid_opt *opts,
			    size_t n_opts, char *err, size_t err_size,
			    const struct myxid_opt **bad)
{
	const struct myxid_opt *seen[PO_MAX_ROWS];
	const struct myxid_opt *host_opt, *port_opt, *sock_opt;

	if (po_parse(&my_table, pl, seen, pl->host, opts, n_opts, err, err_size,
		     bad) < 0)
		return -1;
	host_opt = po_seen(&my_table, seen, "host");
	port_opt = po_seen(&my_table, seen, "port");
	sock_opt = po_seen(&my_table, seen, "unix_socket");
	if (sock_opt != NULL && host_opt != NULL)
		return pu_opt_fail(sock_opt, bad, err, err_size,
				   "give host or unix_socket, not both");
	if (sock_opt != NULL && port_opt != NULL)
		return pu_opt_fail(port_opt, bad, err, err_size,
				   "port means nothing with unix_socket");
	if (pl->user == NULL) {
		pu_err(err, err_size, "user is required");
		return -1;
	}
	if (pl->unix_socket == NULL && pl->hostname == NULL) {
		pl->hostname = strdup(DEFAULT_HOST);
		if (pl->hostname == NULL) {
			pu_err(err, err_size, "out of memory");
			return -1;
		}
	}
	if (pl->port == 0)
		pl->port = DEFAULT_PORT;
	if (pl->hostname != NULL) {
		unsigned char addr[16];

		if (inet_pton(AF_INET, pl->hostname, addr) != 1 &&
		    inet_pton(AF_INET6, pl->hostname, addr) != 1)
			pl->host->log(pl->inst, MYXID_LOG_WARNING,
				      "host \"%s\" is a name, not an IP address: "
				      "every connection attempt looks it up with "
				      "a blocking DNS query on the event loop; "
				      "give an IP address", pl->hostname);
		snprintf(pl->where, sizeof(pl->where), "%s%s%s:%u/%s",
			 strchr(pl->hostname, ':') ? "[" : "", pl->hostname,
			 strchr(pl->hostname, ':') ? "]" : "", pl->port,
			 pl->database ? pl->database : "");
	} else {
		snprintf(pl->where, sizeof(pl->where), "%s/%s", pl->unix_socket,
			 pl->database ? pl->database : "");
	}
	return 0;
}

static void plugin_free(struct mysql_plugin *pl)
{
	if (pl == NULL)
		return;
	/* No request is pending by now (the host cancels them first). */
	pool_free(pl->pool);
	sql_options_free(&pl->o);
	po_free(&my_table, pl);    /* scrubs the password */
	free(pl);
	lib_release();
}

static int mysql_plugin_init(const struct myxid_host *host,
			     struct myxid_instance *inst,
			     const struct myxid_opt *opts, size_t n_opts,
			     void **ctx_r, char *err, size_t err_size,
			     const struct myxid_opt **bad_opt_r)
{
	struct pool_settings settings = { .short_lived_ms = SHORT_LIVED_MS };
	struct mysql_plugin *pl;

	if (pu_check_host(host, err, err_size) < 0)
		return -1;
	if (lib_acquire() != 0) {
		pu_err(err, err_size, "cannot initialise the MariaDB client library");
		return -1;
	}
	pl = calloc(1, sizeof(*pl));
	if (pl == NULL) {
		lib_release();
		pu_err(err, err_size, "out of memory");
		return -1;
	}
	pl->host = host;
	pl->inst = inst;
	/* An auth query defaults to Authie's; a policy needs its own. A
	 * host older than ABI 1.1 cannot say which block this is. */
	if (sql_options_parse(&pl->o, SQL_MYSQL, host->abi_minor >= 1 ?
			      host->instance_kind(inst) :
			      MYXID_KIND_AUTH | MYXID_KIND_POLICY, opts, n_opts,
			      driver_keys, err, err_size, bad_opt_r) != 0) {
		free(pl);
		lib_release();
		return -1;
	}
	pl->query_given = pl->o.has_query;
	if (read_driver_opts(pl, opts, n_opts, err, err_size, bad_opt_r) != 0 ||
	    pl->o.pool_size == 0) {
		if (pl->o.pool_size == 0)
			pu_err(err, err_size, "pool_size must be at least 1");
		plugin_free(pl);
		return -1;
	}
	settings.size = pl->o.pool_size;
	settings.queue_max = pl->o.queue_max;
	settings.connect_timeout_ms = pl->o.connect_timeout_ms;
	settings.query_timeout_ms = pl->o.query_timeout_ms;
	/* All connections open from the loop, not from here: "myxid -t" and
	 * a reload that is refused never touch the database. */
	pl->pool = pool_new(host, inst, &vfuncs, pl, &settings, err, err_size);
	if (pl->pool == NULL) {
		plugin_free(pl);
		return -1;
	}
	host->log(inst, MYXID_LOG_INFO, "%u connection(s) to %s%s", pl->o.pool_size,
		  pl->where, pl->query_given ? "" : " (Authie sessions)");
	*ctx_r = pl;
	return 0;
}

static void mysql_plugin_deinit(void *ctx)
{
	plugin_free(ctx);
}

MYXID_PLUGIN_EXPORT const struct myxid_plugin myxid_plugin_entry = {
	.abi_major = MYXID_PLUGIN_ABI_MAJOR,
	.abi_minor = MYXID_PLUGIN_ABI_MINOR,
	.size = sizeof(struct myxid_plugin),
	.kinds = MYXID_KIND_AUTH | MYXID_KIND_POLICY,
	.name = "mysql",
	.version = "1.0",
	.init = mysql_plugin_init,
	.deinit = mysql_plugin_deinit,
	.auth = mysql_auth,
	.policy = mysql_policy,
	.cancel = mysql_cancel,
};
