/*
 * The MariaDB driver's private parts, shared by mysql.c (the connection
 * steps, the pool's driver side, init) and mysql_result.c (reading the
 * session row, masking server messages). Not for anything else.
 */
#ifndef MYXID_MYSQL_PRIVATE_H
#define MYXID_MYSQL_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <mysql.h>
#include <myxid/plugin.h>
#include "plugin_util.h"
#include "pool.h"
#include "sql_common.h"

#define CHARSET "utf8mb4"
#define FETCH_CAP 255            /* column bytes fetched before asking again */
#define REASON_MAX 400
#define LOG_REPEAT_MS 30000      /* the same problem is logged again after */
#define SHORT_LIVED_MS 1000      /* a connection lost sooner counts as failed */

struct mysql_plugin;

/* One request: the values to bind are copied here (the request's own are
 * only lent during auth()/policy()); the pool scrubs it when finished. */
struct job {
	struct pool_req pr;             /* first: the pool's part */
	char *values[SQL_MAX_PARAMS];   /* NULL binds SQL NULL */
	unsigned long lens[SQL_MAX_PARAMS];
	my_bool nulls[SQL_MAX_PARAMS];
	char *blob;                     /* holds every value */
	size_t blob_size;
};

/* Where a connection is in its non-blocking call sequence. */
enum conn_step {
	STEP_NONE,
	STEP_CONNECTING,  /* mysql_real_connect_start/_cont */
	STEP_PREPARING,   /* mysql_stmt_prepare_start/_cont */
	STEP_EXECUTING,   /* mysql_stmt_execute_start/_cont */
	STEP_STORING      /* mysql_stmt_store_result_start/_cont */
};

struct conn {
	struct pool_conn pc;            /* first: the pool's slot */
	enum conn_step step;
	MYSQL *my;
	MYSQL_STMT *stmt;
	struct myxid_timer *lib_timer;  /* the library's MYSQL_WAIT_TIMEOUT */
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
	struct pool *pool;
	bool ever_up;
	bool kind_warned;
	char last_problem[REASON_MAX];
	uint64_t last_problem_ms;
};

/* The stored result holds a row: hand its identity to the host. On
 * failure, MYXID_ERROR with the reason written. */
PU_HIDDEN enum myxid_verdict mysql_auth_row(struct conn *c, struct myxid_req *req,
					    char *reason, size_t reason_size);

/* A server message fit to be logged as a request's reason: every quoted
 * part that could show one of j's values becomes '?'. */
PU_HIDDEN void mysql_mask_message(const char *msg, const struct job *j, char *out,
				  size_t size);

#endif
