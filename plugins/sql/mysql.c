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
 * The ABI does not tell init() which kind of block it serves: without a
 * query an instance runs Authie's session query as an auth plugin, and
 * refuses (MYXID_ERROR, logged once) to act as a policy, which needs one.
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
 * POOL. pool_size connections, each running one request at a time; a
 * request that finds none idle waits in a FIFO of at most queue_max
 * entries (beyond that: MYXID_ERROR at once). A connection that fails is
 * retried with exponential backoff and jitter. While no connection is up
 * and the last attempt failed (an outage), requests are answered
 * MYXID_ERROR at once instead of waiting for the daemon's auth_timeout. A
 * query that outlives query_timeout is answered MYXID_ERROR and its
 * connection is dropped and reopened (the only way to stop waiting for
 * it). Idle connections are watched too, so a server that goes away is
 * noticed before the next request needs it.
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
#include <time.h>

#include <mysql.h>
#include <errmsg.h>
#include <mysqld_error.h>

#include <myxid/plugin.h>
#include "plugin_options.h"
#include "plugin_util.h"
#include "sql_common.h"

#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_PORT 3306
#define CHARSET "utf8mb4"
#define BACKOFF_MIN_MS 100u      /* first retry after a failed attempt */
#define BACKOFF_MAX_MS 5000u
#define FETCH_CAP 255            /* column bytes fetched before asking again */
#define REASON_MAX 400
#define LOG_REPEAT_MS 30000      /* the same problem is logged again after */
#define SHORT_LIVED_MS 1000      /* a connection lost sooner counts as failed */

struct mysql_plugin;
struct conn;

/* One request: the values to bind are copied here (the request's own are
 * only lent during auth()/policy()) and scrubbed when it is finished. */
struct job {
	struct myxid_req *req;          /* NULL once cancelled */
	bool is_auth;
	struct conn *conn;              /* running on; NULL while queued */
	struct job *prev, *next;        /* the wait queue */
	char *values[SQL_MAX_PARAMS];   /* NULL binds SQL NULL */
	unsigned long lens[SQL_MAX_PARAMS];
	my_bool nulls[SQL_MAX_PARAMS];
	char *blob;                     /* holds every value */
	size_t blob_size;
};

enum conn_state {
	CS_DOWN,        /* no connection; c->timer brings the next attempt */
	CS_CONNECTING,  /* mysql_real_connect_start/_cont */
	CS_PREPARING,   /* mysql_stmt_prepare_start/_cont */
	CS_IDLE,        /* ready; the socket is watched for a close */
	CS_EXECUTING,   /* mysql_stmt_execute_start/_cont */
	CS_STORING      /* mysql_stmt_store_result_start/_cont */
};

struct conn {
	struct mysql_plugin *pl;
	unsigned index;
	enum conn_state state;
	MYSQL *my;
	MYSQL_STMT *stmt;
	int fd;                         /* the socket c->watch is on */
	struct myxid_watch *watch;
	unsigned watch_events;
	struct myxid_timer *timer;      /* deadline when busy, backoff when down */
	struct myxid_timer *lib_timer;  /* the library's MYSQL_WAIT_TIMEOUT */
	unsigned failures;              /* attempts failed in a row */
	uint64_t up_since;              /* now_ms() when it became ready */
	bool in_next;                   /* inside conn_next(): no nesting */
	struct job *job;
	MYSQL *ret_my;                  /* results of the _start/_cont calls */
	int ret_int;
	MYSQL_BIND binds[SQL_MAX_PARAMS];
	/* auth: the statement's result columns */
	unsigned n_cols;
	int user_type_col;              /* -1: none */
	char **col_names;               /* NULL where the column is no attribute */
};

struct mysql_plugin {
	const struct myxid_host *host;
	struct myxid_instance *inst;
	struct sql_options o;
	bool query_given;
	char *hostname;                 /* NULL with unix_socket */
	unsigned port;
	char *user;
	char *password;
	char *database;
	char *unix_socket;
	char where[300];                /* "127.0.0.1:3306/db" for messages */

	struct conn *conns;
	unsigned n_conns;
	unsigned n_up;                  /* connections idle or busy */
	bool outage;                    /* none up and the last attempt failed */
	bool ever_up;
	bool kind_warned;

	struct job *q_head, *q_tail;
	unsigned q_len;

	uint64_t rng;
	char last_problem[REASON_MAX];
	uint64_t last_problem_ms;
};

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

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t rng_next(struct mysql_plugin *pl)
{
	/* xorshift64: jitter only, nothing secret depends on it */
	uint64_t x = pl->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	pl->rng = x;
	return x;
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
	uint64_t t = now_ms();
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

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF):
 * identities end up in JSON text frames. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			n = 1;
			cp = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			n = 2;
			cp = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += n + 1;
	}
	return true;
}

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
static void mask_message(const char *msg, const struct job *j, char *out,
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

/* Client errors (CR_*, 2000-2999) and the server errors that end the
 * session or invalidate the statement: the connection must be reopened. */
static bool error_breaks_connection(unsigned e)
{
	return (e >= 2000 && e <= 2999) || e == ER_SERVER_SHUTDOWN ||
		e == ER_CONNECTION_KILLED || e == ER_NEED_REPREPARE ||
		e == ER_UNKNOWN_STMT_HANDLER || e == 0;
}

/* ------------------------------------------------------------ jobs */

static void job_free(struct job *j)
{
	if (j == NULL)
		return;
	if (j->blob != NULL) {
		pu_scrub(j->blob, j->blob_size);
		free(j->blob);
	}
	pu_scrub(j, sizeof(*j));
	free(j);
}

/* Copy the request's values for the query's parameters. NULL on failure
 * (out of memory, or a value the query cannot do without). */
static struct job *job_new(struct mysql_plugin *pl, struct myxid_req *req,
			   bool is_auth)
{
	const struct sql_template *t = &pl->o.query;
	char bufs[SQL_MAX_PARAMS][96];
	const char *vals[SQL_MAX_PARAMS];
	size_t total = 0, off = 0, i;
	struct job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return NULL;
	j->req = req;
	j->is_auth = is_auth;
	for (i = 0; i < t->n_params; i++) {
		vals[i] = sql_param_value(pl->host, req, &pl->o, t->params[i],
					  bufs[i], sizeof(bufs[i]));
		if (vals[i] != NULL)
			total += strlen(vals[i]) + 1;
	}
	j->blob_size = total ? total : 1;
	j->blob = malloc(j->blob_size);
	if (j->blob == NULL) {
		pu_scrub(bufs, sizeof(bufs));
		free(j);
		return NULL;
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
	return j;
}

static void queue_push(struct mysql_plugin *pl, struct job *j)
{
	j->next = NULL;
	j->prev = pl->q_tail;
	if (pl->q_tail != NULL)
		pl->q_tail->next = j;
	else
		pl->q_head = j;
	pl->q_tail = j;
	pl->q_len++;
}

static void queue_unlink(struct mysql_plugin *pl, struct job *j)
{
	if (j->prev != NULL)
		j->prev->next = j->next;
	else
		pl->q_head = j->next;
	if (j->next != NULL)
		j->next->prev = j->prev;
	else
		pl->q_tail = j->prev;
	j->prev = j->next = NULL;
	pl->q_len--;
}

/* Answer every queued request ERROR: no connection is coming soon. */
static void queue_fail_all(struct mysql_plugin *pl, const char *why)
{
	unsigned n = pl->q_len;

	if (n == 0)
		return;
	pl->host->log(pl->inst, MYXID_LOG_WARNING,
		      "answering %u waiting request(s) with an error: %s", n, why);
	while (pl->q_head != NULL) {
		struct job *j = pl->q_head;
		struct myxid_req *req = j->req;

		queue_unlink(pl, j);
		job_free(j);
		if (req != NULL)
			pl->host->req_done(req, MYXID_ERROR, NULL);
	}
}

/* ------------------------------------------------------------ connections */

static void conn_drive(struct conn *c, int status);
static void conn_next(struct conn *c);
static void conn_lost(struct conn *c, const char *why);

static void conn_free_columns(struct conn *c)
{
	for (unsigned i = 0; i < c->n_cols; i++)
		free(c->col_names ? c->col_names[i] : NULL);
	free(c->col_names);
	c->col_names = NULL;
	c->n_cols = 0;
	c->user_type_col = -1;
}

/* Close whatever is open; the connection ends up CS_DOWN with no timer
 * running. gentle: say goodbye (COM_QUIT) to a healthy idle server;
 * otherwise shut the socket first so nothing can block. */
static void conn_close(struct conn *c, bool gentle)
{
	struct mysql_plugin *pl = c->pl;
	const struct myxid_host *host = pl->host;

	if (c->state == CS_IDLE || c->state == CS_EXECUTING ||
	    c->state == CS_STORING)
		pl->n_up--;
	host->watch_free(&c->watch);
	c->watch_events = 0;
	c->fd = -1;
	if (c->lib_timer != NULL)
		host->timer_stop(c->lib_timer);
	if (c->timer != NULL)
		host->timer_stop(c->timer);
	if (c->my != NULL) {
		if (!(gentle && c->state == CS_IDLE))
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
	c->state = CS_DOWN;
}

static void conn_schedule(struct conn *c, unsigned delay_ms)
{
	c->pl->host->timer_start(c->timer, delay_ms);
}

static unsigned backoff_ms(struct conn *c)
{
	unsigned d = BACKOFF_MIN_MS;
	unsigned k;

	for (k = 1; k < c->failures && d < BACKOFF_MAX_MS; k++)
		d *= 2;
	if (d > BACKOFF_MAX_MS)
		d = BACKOFF_MAX_MS;
	/* between half and all of it, so the pool does not retry in step */
	return d / 2 + (unsigned)(rng_next(c->pl) % (d / 2 + 1));
}

/*
 * An attempt to open the connection failed (connect, handshake, prepare,
 * or the connect deadline). Retry later; if nothing is up, this is an
 * outage: waiting requests are answered at once, and so are new ones
 * until a connection comes back.
 */
static void conn_fail(struct conn *c, const char *fmt, ...) MYXID_PRINTF(2, 3);
static void conn_fail(struct conn *c, const char *fmt, ...)
{
	struct mysql_plugin *pl = c->pl;
	char why[REASON_MAX];
	va_list ap;
	unsigned delay;

	va_start(ap, fmt);
	if (vsnprintf(why, sizeof(why), fmt, ap) < 0)
		why[0] = '\0';
	va_end(ap);
	conn_close(c, false);
	c->failures++;
	delay = backoff_ms(c);
	if (pl->n_up == 0) {
		if (!pl->outage)
			log_problem(pl, MYXID_LOG_WARNING, "database %s unavailable: %s",
				    pl->where, why);
		else
			log_problem(pl, MYXID_LOG_DEBUG, "connection %u: %s; retry in %u ms",
				    c->index, why, delay);
		pl->outage = true;
		queue_fail_all(pl, "database unavailable");
	} else {
		log_problem(pl, MYXID_LOG_WARNING, "connection %u: %s", c->index, why);
	}
	conn_schedule(c, delay);
}

static void on_io(int fd, unsigned ready, void *arg);

/* (Re)arm the socket watch for MYXID_WATCH_* events; -1 on failure. The
 * library may change sockets while it connects, so the fd is checked. */
static int conn_watch_fd(struct conn *c, unsigned events)
{
	const struct myxid_host *host = c->pl->host;
	int fd = (int)mysql_get_socket(c->my);

	if (fd < 0)
		return -1;
	if (c->watch != NULL && c->fd != fd)
		host->watch_free(&c->watch);
	if (c->watch == NULL) {
		c->watch = host->watch_new(c->pl->inst, fd, events, on_io, c);
		if (c->watch == NULL)
			return -1;
		c->fd = fd;
		c->watch_events = events;
		return 0;
	}
	if (c->watch_events != events) {
		if (host->watch_set(c->watch, events) != 0)
			return -1;
		c->watch_events = events;
	}
	return 0;
}

/* Finish the running job: forget it, then answer (if not cancelled). */
static void conn_finish_job(struct conn *c, enum myxid_verdict v,
			    const char *reason)
{
	struct job *j = c->job;
	struct myxid_req *req;

	if (j == NULL)
		return;
	req = j->req;
	c->job = NULL;
	c->pl->host->timer_stop(c->timer);
	job_free(j);
	if (req != NULL)
		c->pl->host->req_done(req, v, reason);
}

/*
 * A working connection broke (or must be recycled). Its request, if any,
 * is answered ERROR; a new connection is tried at once. Only if that
 * attempt fails does an outage begin.
 */
static void conn_lost(struct conn *c, const char *why)
{
	struct mysql_plugin *pl = c->pl;
	bool brief = c->state != CS_DOWN && now_ms() - c->up_since < SHORT_LIVED_MS;

	if (c->job != NULL) {
		char reason[REASON_MAX + 64];

		snprintf(reason, sizeof(reason), "connection lost: %s", why);
		conn_finish_job(c, MYXID_ERROR, reason);
	}
	pl->host->log(pl->inst, MYXID_LOG_INFO, "connection %u closed: %s",
		      c->index, why);
	conn_close(c, false);
	/* A server that drops every connection right after accepting it
	 * would otherwise be hammered: count that as a failed attempt. */
	if (brief) {
		c->failures++;
		conn_schedule(c, backoff_ms(c));
	} else {
		c->failures = 0;
		conn_schedule(c, 0);
	}
}

/* c has just become idle: watch its socket for a close, and give it the
 * requests that wait. */
static void conn_idle(struct conn *c)
{
	if (c->state != CS_IDLE)
		return;
	if (conn_watch_fd(c, MYXID_WATCH_READ) != 0) {
		conn_lost(c, "cannot watch the socket");
		return;
	}
	conn_next(c);
}

/* The connection is ready: count it up and give it work. */
static void conn_up(struct conn *c)
{
	struct mysql_plugin *pl = c->pl;
	bool was_outage = pl->outage;

	c->pl->host->timer_stop(c->timer);
	c->state = CS_IDLE;
	c->up_since = now_ms();
	pl->n_up++;
	pl->outage = false;
	if (!pl->ever_up) {
		pl->ever_up = true;
		pl->host->log(pl->inst, MYXID_LOG_INFO,
			      "connected to %s (server %s)", pl->where,
			      mysql_get_server_info(c->my));
	} else if (was_outage) {
		pl->host->log(pl->inst, MYXID_LOG_NOTICE,
			      "database %s reachable again", pl->where);
		pl->last_problem[0] = '\0';
		/* The others may be deep in their backoff: try them now. */
		for (unsigned i = 0; i < pl->n_conns; i++) {
			struct conn *o = &pl->conns[i];

			if (o->state == CS_DOWN) {
				o->failures = 0;
				conn_schedule(o, 0);
			}
		}
	}
	conn_idle(c);
}

/* Remember the auth query's columns: the first is the user id, one named
 * user_type the type, the others attributes named after them. */
static int conn_read_columns(struct conn *c)
{
	struct mysql_plugin *pl = c->pl;
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
	struct mysql_plugin *pl = c->pl;
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
	conn_up(c);
}

static void conn_connected(struct conn *c)
{
	struct mysql_plugin *pl = c->pl;
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
	c->state = CS_PREPARING;
	status = mysql_stmt_prepare_start(&c->ret_int, c->stmt, pl->o.query.sql,
					  (unsigned long)strlen(pl->o.query.sql));
	conn_drive(c, status);
}

static void conn_connect(struct conn *c)
{
	struct mysql_plugin *pl = c->pl;
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
	c->state = CS_CONNECTING;
	conn_schedule(c, pl->o.connect_timeout_ms);
	/* No CLIENT_MULTI_STATEMENTS: one statement per query, always. */
	status = mysql_real_connect_start(&c->ret_my, c->my, pl->hostname,
					  pl->user, pl->password, pl->database,
					  pl->port, pl->unix_socket, 0);
	conn_drive(c, status);
}

/* ------------------------------------------------------------ results */

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
	if (memchr(s, '\0', len) != NULL || !utf8_valid((unsigned char *)s, len)) {
		free(s);
		return 1;       /* binary, not text */
	}
	*out = s;
	return 0;
}

/* The stored result holds a row: hand its identity to the host. */
static enum myxid_verdict auth_row(struct conn *c, struct myxid_req *req,
				   char *reason, size_t reason_size)
{
	struct mysql_plugin *pl = c->pl;
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

/* store_result finished: answer the job, and get ready for the next. */
static void conn_stored(struct conn *c)
{
	struct job *j = c->job;
	char reason[REASON_MAX + 64] = "";
	enum myxid_verdict v;
	bool more;

	if (c->ret_int != 0) {
		unsigned e = mysql_stmt_errno(c->stmt);
		char masked[REASON_MAX];

		mask_message(mysql_stmt_error(c->stmt), j, masked, sizeof(masked));
		if (error_breaks_connection(e)) {
			conn_lost(c, masked);
			return;
		}
		snprintf(reason, sizeof(reason), "query failed: [%u] %s", e, masked);
		mysql_stmt_free_result(c->stmt);
		c->state = CS_IDLE;
		conn_finish_job(c, MYXID_ERROR, reason);
		conn_idle(c);
		return;
	}
	if (j == NULL || j->req == NULL) {
		v = MYXID_ERROR;                 /* cancelled: nobody to tell */
	} else if (mysql_stmt_num_rows(c->stmt) == 0) {
		v = j->is_auth ? MYXID_NEXT : MYXID_DENY;
	} else if (!j->is_auth) {
		v = MYXID_ALLOW;
	} else {
		v = auth_row(c, j->req, reason, sizeof(reason));
	}
	more = mysql_stmt_more_results(c->stmt);
	if (!more)
		mysql_stmt_free_result(c->stmt);   /* buffered: no I/O */
	c->state = CS_IDLE;
	conn_finish_job(c, v, reason[0] ? reason : NULL);
	if (more) {
		/* A CALL or the like: the rest would have to be read before
		 * the next execute. Start afresh instead. */
		log_problem(c->pl, MYXID_LOG_WARNING, "the query returned more "
			    "than one result; use a single SELECT");
		conn_lost(c, "more than one result");
		return;
	}
	conn_idle(c);
}

static void conn_executed(struct conn *c)
{
	int status;

	if (c->ret_int != 0) {
		/* reuse the store path's error handling */
		conn_stored(c);
		return;
	}
	c->state = CS_STORING;
	status = mysql_stmt_store_result_start(&c->ret_int, c->stmt);
	conn_drive(c, status);
}

/* Start job j on idle connection c. */
static void conn_run(struct conn *c, struct job *j)
{
	struct mysql_plugin *pl = c->pl;
	size_t i, n = pl->o.query.n_params;
	int status;

	c->job = j;
	j->conn = c;
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
		conn_finish_job(c, MYXID_ERROR, reason);
		return;
	}
	c->state = CS_EXECUTING;
	conn_schedule(c, pl->o.query_timeout_ms);
	status = mysql_stmt_execute_start(&c->ret_int, c->stmt);
	conn_drive(c, status);
}

/* Give idle connection c the requests that wait, oldest first. */
static void conn_next(struct conn *c)
{
	struct mysql_plugin *pl = c->pl;

	if (c->in_next)
		return;          /* the loop below goes on */
	c->in_next = true;
	while (c->state == CS_IDLE && pl->q_head != NULL) {
		struct job *j = pl->q_head;

		queue_unlink(pl, j);
		conn_run(c, j);
	}
	c->in_next = false;
}

/* ------------------------------------------------------------ the engine */

/* An operation finished (status 0) or must wait for the socket/timer. */
static void conn_drive(struct conn *c, int status)
{
	unsigned events = 0;

	if (status != 0) {
		if (status & (MYSQL_WAIT_READ | MYSQL_WAIT_EXCEPT))
			events |= MYXID_WATCH_READ;
		if (status & MYSQL_WAIT_WRITE)
			events |= MYXID_WATCH_WRITE;
		if (status & MYSQL_WAIT_TIMEOUT)
			c->pl->host->timer_start(c->lib_timer,
						 mysql_get_timeout_value_ms(c->my));
		else
			c->pl->host->timer_stop(c->lib_timer);
		/* While connecting the library may close its socket and open
		 * another (the next address), possibly under the same number:
		 * a fresh watch each time, so none is left on a dead socket. */
		if (c->state == CS_CONNECTING)
			c->pl->host->watch_free(&c->watch);
		if (conn_watch_fd(c, events) != 0) {
			if (c->state == CS_CONNECTING || c->state == CS_PREPARING)
				conn_fail(c, "cannot watch the socket");
			else
				conn_lost(c, "cannot watch the socket");
		}
		return;
	}
	c->pl->host->timer_stop(c->lib_timer);
	switch (c->state) {
	case CS_CONNECTING:
		conn_connected(c);
		break;
	case CS_PREPARING:
		conn_prepared(c);
		break;
	case CS_EXECUTING:
		conn_executed(c);
		break;
	case CS_STORING:
		conn_stored(c);
		break;
	case CS_DOWN:
	case CS_IDLE:
		break;
	}
}

/* The library's wait is over (ready: MYSQL_WAIT_* bits): continue. */
static void conn_resume(struct conn *c, int ready)
{
	int status;

	switch (c->state) {
	case CS_CONNECTING:
		status = mysql_real_connect_cont(&c->ret_my, c->my, ready);
		break;
	case CS_PREPARING:
		status = mysql_stmt_prepare_cont(&c->ret_int, c->stmt, ready);
		break;
	case CS_EXECUTING:
		status = mysql_stmt_execute_cont(&c->ret_int, c->stmt, ready);
		break;
	case CS_STORING:
		status = mysql_stmt_store_result_cont(&c->ret_int, c->stmt, ready);
		break;
	default:
		return;
	}
	conn_drive(c, status);
}

static void on_io(int fd, unsigned ready, void *arg)
{
	struct conn *c = arg;
	int st = 0;

	(void)fd;
	if (c->state == CS_IDLE) {
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

/* c->timer: the next attempt when down, the deadline when busy. */
static void on_timer(void *arg)
{
	struct conn *c = arg;
	struct mysql_plugin *pl = c->pl;
	char reason[REASON_MAX];

	switch (c->state) {
	case CS_DOWN:
		conn_connect(c);
		break;
	case CS_CONNECTING:
	case CS_PREPARING:
		conn_fail(c, "no connection within %u ms", pl->o.connect_timeout_ms);
		break;
	case CS_EXECUTING:
	case CS_STORING:
		snprintf(reason, sizeof(reason), "query timed out after %u ms",
			 pl->o.query_timeout_ms);
		conn_finish_job(c, MYXID_ERROR, reason);
		/* The server may still be working on it; the only way to stop
		 * waiting is a new connection. */
		conn_lost(c, "query timed out");
		break;
	case CS_IDLE:
		break;
	}
}

/* ------------------------------------------------------------ requests */

static struct conn *idle_conn(struct mysql_plugin *pl)
{
	for (unsigned i = 0; i < pl->n_conns; i++)
		if (pl->conns[i].state == CS_IDLE)
			return &pl->conns[i];
	return NULL;
}

static enum myxid_verdict submit(struct mysql_plugin *pl, struct myxid_req *req,
				 bool is_auth)
{
	struct job *j;
	struct conn *c;

	if (pl->n_up == 0 && pl->outage)
		return MYXID_ERROR;     /* at once: the database is down */
	if (pl->q_len >= pl->o.queue_max && idle_conn(pl) == NULL) {
		log_problem(pl, MYXID_LOG_WARNING, "%u requests already wait for "
			    "a connection (queue_max): answering with an error",
			    pl->q_len);
		return MYXID_ERROR;
	}
	j = job_new(pl, req, is_auth);
	if (j == NULL) {
		pl->host->log(pl->inst, MYXID_LOG_ERROR, "out of memory");
		return MYXID_ERROR;
	}
	c = idle_conn(pl);
	if (c != NULL && pl->q_head == NULL) {
		conn_run(c, j);          /* may even answer at once: allowed */
		return MYXID_PENDING;
	}
	queue_push(pl, j);
	if (c != NULL)
		conn_next(c);
	return MYXID_PENDING;
}

static enum myxid_verdict mysql_auth(void *ctx, struct myxid_req *req)
{
	struct mysql_plugin *pl = ctx;
	const char *token = pl->host->req_get(req, "token");

	if (token == NULL || token[0] == '\0')
		return MYXID_NEXT;
	return submit(pl, req, true);
}

static enum myxid_verdict mysql_policy(void *ctx, struct myxid_req *req)
{
	struct mysql_plugin *pl = ctx;

	if (!pl->query_given) {
		if (!pl->kind_warned)
			pl->host->log(pl->inst, MYXID_LOG_ERROR, "a policy needs a "
				      "query option (a row means allowed); "
				      "every subscription is refused");
		pl->kind_warned = true;
		return MYXID_ERROR;
	}
	return submit(pl, req, false);
}

static void mysql_cancel(void *ctx, struct myxid_req *req)
{
	struct mysql_plugin *pl = ctx;
	struct job *j;

	for (j = pl->q_head; j != NULL; j = j->next) {
		if (j->req == req) {
			queue_unlink(pl, j);
			job_free(j);
			return;
		}
	}
	/* Running: the query goes on, its answer is dropped. */
	for (unsigned i = 0; i < pl->n_conns; i++) {
		struct conn *c = &pl->conns[i];

		if (c->job != NULL && c->job->req == req) {
			c->job->req = NULL;
			return;
		}
	}
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
	unsigned i;

	if (pl == NULL)
		return;
	for (i = 0; i < pl->n_conns; i++) {
		struct conn *c = &pl->conns[i];

		/* No request is pending by now (the host cancels them
		 * first); drop anything left without answering. */
		job_free(c->job);
		c->job = NULL;
		conn_close(c, true);
		pl->host->timer_free(&c->timer);
		pl->host->timer_free(&c->lib_timer);
	}
	while (pl->q_head != NULL) {
		struct job *j = pl->q_head;

		queue_unlink(pl, j);
		job_free(j);
	}
	free(pl->conns);
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
	struct mysql_plugin *pl;
	unsigned i;

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
	pl->rng = (uint64_t)now_ms() ^ ((uint64_t)(uintptr_t)pl << 16) ^
		0x9E3779B97F4A7C15ull;
	pl->conns = calloc(pl->o.pool_size, sizeof(*pl->conns));
	if (pl->conns == NULL) {
		pu_err(err, err_size, "out of memory");
		plugin_free(pl);
		return -1;
	}
	pl->n_conns = pl->o.pool_size;
	for (i = 0; i < pl->n_conns; i++) {
		struct conn *c = &pl->conns[i];

		c->pl = pl;
		c->index = i + 1;
		c->fd = -1;
		c->user_type_col = -1;
		c->state = CS_DOWN;
		c->timer = host->timer_new(inst, on_timer, c);
		c->lib_timer = host->timer_new(inst, on_lib_timer, c);
		if (c->timer == NULL || c->lib_timer == NULL) {
			pu_err(err, err_size, "cannot create timers");
			plugin_free(pl);
			return -1;
		}
	}
	/* Connect from the loop, not from here: "myxid -t" and a reload
	 * that is refused never touch the database. */
	for (i = 0; i < pl->n_conns; i++)
		conn_schedule(&pl->conns[i], 0);
	host->log(inst, MYXID_LOG_INFO, "%u connection(s) to %s%s", pl->n_conns,
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
