/*
 * A pool of database connections on the instance's event loop, shared by
 * the SQL plugins; the drivers (pgsql.c, mysql.c) keep only the wire
 * protocol of their server and plug in through struct pool_vfuncs, as
 * dovecot's drivers do through sql_db_vfuncs.
 *
 * What the pool does:
 *   - a FIFO of waiting requests, at most queue_max long (beyond it: an
 *     error at once);
 *   - size connection slots, each with one timer whose meaning follows its
 *     state: the next attempt (WAIT), the connect deadline (CONNECTING),
 *     the query deadline (BUSY);
 *   - exponential backoff with jitter after a failed attempt (100 ms
 *     doubling to 5 s, each delay between half and all of it, so the slots
 *     do not retry in step);
 *   - outages: when no connection is up and an attempt has failed since
 *     one was, waiting and new requests are answered MYXID_ERROR at once
 *     (the client hears AuthUnavailable / PolicyUnavailable) instead of
 *     each waiting for a timeout; with probe, such a request brings the next
 *     attempt forward (at most one a second); the first connection back
 *     wakes the others;
 *   - cancel: a queued request is dropped, a running one is marked and its
 *     answer thrown away.
 *
 * Every answer goes through host->req_done(), even one given at once:
 * auth()/policy() then return MYXID_PENDING, and the host is the only one
 * that ever tells the client anything.
 *
 * A request's struct is freed (and scrubbed: a driver may copy a token's
 * hash into it) as soon as it is answered or cancelled.
 */
#ifndef MYXID_PLUGIN_POOL_H
#define MYXID_PLUGIN_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <myxid/plugin.h>

#include "plugin_util.h"

#define POOL_MSG_MAX 512

enum pool_state {
	POOL_WAIT,        /* no connection; the timer starts the next attempt */
	POOL_CONNECTING,  /* the driver is connecting; the timer: its deadline */
	POOL_IDLE,        /* connected, no request; the socket is watched */
	POOL_BUSY         /* one request running; the timer: its deadline */
};

/* One request answered MYXID_PENDING. A driver may extend it: its own
 * struct begins with this one and vfuncs.req_size says how large it is. */
struct pool_req {
	struct myxid_req *req;        /* the host's; NULL once cancelled */
	bool is_auth;
	struct pool_req *prev, *next; /* the queue, while queued */
};

struct pool;

/* One connection slot. The driver's connection struct begins with it. */
struct pool_conn {
	struct pool *pool;
	void *driver;                 /* the driver's instance (pool_new) */
	unsigned index;               /* for log lines: 1..size */
	enum pool_state state;
	struct pool_req *cur;         /* POOL_BUSY: the request running */
	/* the pool's own */
	int fd;                       /* the watched socket, or -1 */
	struct myxid_watch *watch;
	unsigned events;
	struct myxid_timer *timer;
	unsigned failures;            /* attempts failed in a row */
	uint64_t up_since;            /* when it last became idle from connecting */
	bool started;                 /* opened at least once (lazy pools) */
};

/* What the pool tells the driver so that it may log in its own words. */
enum pool_event_type {
	POOL_EV_ATTEMPT_FAILED,  /* conn, why, delay_ms, outage_began */
	POOL_EV_LOST,            /* conn, why, level: reconnecting */
	POOL_EV_UP,              /* conn, first (ever), was_down */
	POOL_EV_QUEUE_FAILED,    /* count requests get an error: the outage */
	POOL_EV_QUEUE_FULL       /* count requests wait: one more is refused */
};

struct pool_event {
	enum pool_event_type type;
	const char *why;
	unsigned delay_ms;
	unsigned count;
	int level;
	bool outage_began;
	bool first;
	bool was_down;
};

struct pool_vfuncs {
	size_t conn_size;   /* the driver's connection struct */
	size_t req_size;    /* the driver's request struct */
	/* Set up a new slot's own fields (its pool fields are set). 0 or -1. */
	int (*conn_init)(struct pool_conn *c);
	/* Release what conn_init made; the connection is closed already. */
	void (*conn_deinit)(struct pool_conn *c);
	/* Start an attempt: the slot is POOL_CONNECTING and the connect
	 * deadline runs. Ends with pool_conn_up() or pool_attempt_failed(). */
	void (*connect)(struct pool_conn *c);
	/* The socket the connection uses now, or -1. */
	int (*socket)(struct pool_conn *c);
	/* The watched socket is ready (MYXID_WATCH_* bits), in any state but
	 * POOL_WAIT: on an idle connection, the server said something. */
	void (*io)(struct pool_conn *c, unsigned ready);
	/* Run c->cur on c (POOL_BUSY, the query deadline runs). Ends with
	 * pool_conn_done(), pool_conn_lost() or pool_conn_bounce(). */
	void (*send)(struct pool_conn *c);
	/* Close the connection, freeing the driver's state of it; the pool
	 * has dropped the watch and stopped the timer. gentle: it is healthy
	 * and idle, say goodbye. */
	void (*close)(struct pool_conn *c, bool gentle);
	/* Optional: fill the driver's part of a new request. 0 or -1. */
	int (*req_init)(struct pool_req *r, void *driver);
	/* Optional: free what req_init allocated (the pool scrubs the rest). */
	void (*req_deinit)(struct pool_req *r);
	/* Optional: the query deadline (ms) passed; the driver answers and
	 * drops the connection in its own words. Without it the pool answers
	 * "query took longer than N ms" and drops it. */
	void (*query_timeout)(struct pool_conn *c, unsigned ms);
	/* Log an event in the driver's words. */
	void (*report)(void *driver, struct pool_conn *c,
		       const struct pool_event *ev);
};

struct pool_settings {
	unsigned size;               /* connections */
	unsigned queue_max;
	unsigned connect_timeout_ms;
	unsigned query_timeout_ms;
	/* Open one connection at start and the others only when requests
	 * wait, rather than all at start. */
	bool lazy;
	/* During an outage a request brings the next attempt forward. */
	bool probe;
	/* A connection lost sooner than this after it came up counts as a
	 * failed attempt (backoff), so a server that accepts and drops at
	 * once is not hammered; 0: never. */
	unsigned short_lived_ms;
};

/* A new pool; the first attempts start once the loop runs (a zero-delay
 * timer: "myxid -t" never connects). NULL with a message in err. */
PU_HIDDEN struct pool *pool_new(const struct myxid_host *host,
				struct myxid_instance *inst,
				const struct pool_vfuncs *vf, void *driver,
				const struct pool_settings *set,
				char *err, size_t err_size);

/* Close every connection and drop every request without answering (the
 * host has cancelled them all by deinit). */
PU_HIDDEN void pool_free(struct pool *p);

/* auth()/policy(): queue req, or answer it at once (outage, queue full). */
PU_HIDDEN enum myxid_verdict pool_submit(struct pool *p, struct myxid_req *req,
					 bool is_auth);

/* Answer now, through req_done() like every other answer. */
PU_HIDDEN enum myxid_verdict pool_answer_now(struct pool *p,
					     struct myxid_req *req,
					     enum myxid_verdict v,
					     const char *reason);

PU_HIDDEN void pool_cancel(struct pool *p, struct myxid_req *req);

/* Connections up (idle or busy). */
PU_HIDDEN unsigned pool_n_up(const struct pool *p);

/* ---- for the driver, about one connection ---- */

/* Watch the connection's current socket for events. force makes a new
 * watch even when the fd number is the same: while connecting, a client
 * library may close its socket and open another under that number. 0, or
 * -1 (the caller treats the connection as broken). */
PU_HIDDEN int pool_conn_watch(struct pool_conn *c, unsigned events,
			      bool force);

/* The connection is ready for requests. */
PU_HIDDEN void pool_conn_up(struct pool_conn *c);

/* The attempt failed (why: one line, no secret): retry after the backoff. */
PU_HIDDEN void pool_attempt_failed(struct pool_conn *c, const char *why);

/* An established connection is gone: its request is answered MYXID_ERROR
 * with why, and a new one is tried at once. level: of the log line. */
PU_HIDDEN void pool_conn_lost(struct pool_conn *c, const char *why, int level);

/* c->cur could not even be sent: it goes back to the head of the queue
 * for another connection, and this one is lost. */
PU_HIDDEN void pool_conn_bounce(struct pool_conn *c, const char *why,
				int level);

/* Answer c->cur (unless it was cancelled) and stop its deadline; the
 * connection stays POOL_BUSY (to be lost, or made idle). */
PU_HIDDEN void pool_conn_answer(struct pool_conn *c, enum myxid_verdict v,
				const char *reason);

/* The connection is free again: watch it and give it the next request. */
PU_HIDDEN void pool_conn_idle(struct pool_conn *c);

/* pool_conn_answer() then pool_conn_idle(). */
PU_HIDDEN void pool_conn_done(struct pool_conn *c, enum myxid_verdict v,
			      const char *reason);

/* Run c->cur again from the start, with a fresh deadline (after a step of
 * the driver's own, such as preparing the statement). */
PU_HIDDEN void pool_conn_rerun(struct pool_conn *c);

#endif
