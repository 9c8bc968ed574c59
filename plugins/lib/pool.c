/*
 * The SQL plugins' connection pool: see pool.h.
 */
#define _POSIX_C_SOURCE 200809L

#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 5000u
#define PROBE_INTERVAL_MS 1000u

struct pool {
	const struct myxid_host *host;
	struct myxid_instance *inst;
	const struct pool_vfuncs *vf;
	void *driver;
	struct pool_settings set;
	unsigned char *slots;         /* set.size structs of vf->conn_size */
	unsigned n_up;                /* connections POOL_IDLE or POOL_BUSY */
	bool down;                    /* see "outages" in pool.h */
	bool ever_up;
	bool dispatching;             /* inside dispatch(): no nesting */
	struct pool_req *q_head;      /* waiting for a free connection */
	struct pool_req *q_tail;
	unsigned q_len;
	uint64_t rng;                 /* xorshift state for the jitter */
	uint64_t last_probe_ms;
	char down_why[POOL_MSG_MAX];  /* why the last attempt failed */
};

static void dispatch(struct pool *p);

static struct pool_conn *slot(const struct pool *p, unsigned i)
{
	return (struct pool_conn *)(void *)(p->slots + (size_t)i * p->vf->conn_size);
}

static void report(struct pool *p, struct pool_conn *c,
		   const struct pool_event *ev)
{
	p->vf->report(p->driver, c, ev);
}

/* ------------------------------------------------------------ requests */

static void queue_push(struct pool *p, struct pool_req *r, bool front)
{
	if (front)
		PU_DLLIST2_PREPEND(&p->q_head, &p->q_tail, r);
	else
		PU_DLLIST2_APPEND(&p->q_head, &p->q_tail, r);
	p->q_len++;
}

static void queue_unlink(struct pool *p, struct pool_req *r)
{
	PU_DLLIST2_REMOVE(&p->q_head, &p->q_tail, r);
	p->q_len--;
}

/* The driver may have copied request values (a token's hash) into it. */
static void req_free(struct pool *p, struct pool_req *r)
{
	if (r == NULL)
		return;
	if (p->vf->req_deinit != NULL)
		p->vf->req_deinit(r);
	pu_scrub(r, p->vf->req_size);
	free(r);
}

/* Answer r (unless it was cancelled) and free it; the host acts on the
 * answer only after we return to it. */
static void finish(struct pool *p, struct pool_req *r, enum myxid_verdict v,
		   const char *reason)
{
	struct myxid_req *req = r->req;

	req_free(p, r);
	if (req != NULL)
		p->host->req_done(req, v, reason);
}

/* Answer every waiting request with an error. */
static void fail_queue(struct pool *p, const char *reason)
{
	struct pool_event ev = { .type = POOL_EV_QUEUE_FAILED,
				 .count = p->q_len };

	if (p->q_head == NULL)
		return;
	report(p, NULL, &ev);
	while (p->q_head != NULL) {
		struct pool_req *r = p->q_head;

		queue_unlink(p, r);
		finish(p, r, MYXID_ERROR, reason);
	}
}

/* ------------------------------------------------------------ connections */

static void conn_io(int fd, unsigned ready, void *arg)
{
	struct pool_conn *c = arg;

	(void)fd;
	if (c->state != POOL_WAIT)
		c->pool->vf->io(c, ready);
}

int pool_conn_watch(struct pool_conn *c, unsigned events, bool force)
{
	const struct myxid_host *host = c->pool->host;
	int fd = c->pool->vf->socket(c);

	if (fd < 0)
		return -1;
	if (c->watch != NULL && fd == c->fd && !force) {
		if (events == c->events)
			return 0;
		if (host->watch_set(c->watch, events) < 0)
			return -1;
		c->events = events;
		return 0;
	}
	host->watch_free(&c->watch);
	c->fd = fd;
	c->events = events;
	c->watch = host->watch_new(c->pool->inst, fd, events, conn_io, c);
	return c->watch != NULL ? 0 : -1;
}

/* Close whatever the slot holds; it ends POOL_WAIT with no timer. */
static void conn_close(struct pool_conn *c, bool gentle)
{
	struct pool *p = c->pool;

	if (c->state == POOL_IDLE || c->state == POOL_BUSY)
		p->n_up--;
	p->host->watch_free(&c->watch);
	c->events = 0;
	c->fd = -1;
	p->host->timer_stop(c->timer);
	p->vf->close(c, gentle);
	c->state = POOL_WAIT;
}

/* Between half and all of the backoff, so the slots do not retry in step. */
static unsigned backoff_delay(struct pool *p, unsigned failures)
{
	unsigned d = BACKOFF_MIN_MS;
	uint64_t x = p->rng;

	for (unsigned k = 1; k < failures && d < BACKOFF_MAX_MS; k++)
		d *= 2;
	if (d > BACKOFF_MAX_MS)
		d = BACKOFF_MAX_MS;
	/* xorshift64: jitter only, nothing secret depends on it */
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	p->rng = x;
	return d / 2 + (unsigned)(x % (d / 2 + 1));
}

void pool_attempt_failed(struct pool_conn *c, const char *why)
{
	struct pool *p = c->pool;
	struct pool_event ev = { .type = POOL_EV_ATTEMPT_FAILED, .why = why };
	char reason[POOL_MSG_MAX + 32];

	conn_close(c, false);
	c->failures++;
	ev.delay_ms = backoff_delay(p, c->failures);
	p->host->timer_start(c->timer, ev.delay_ms);
	if (p->n_up == 0) {
		snprintf(p->down_why, sizeof(p->down_why), "%s", why);
		ev.outage_began = !p->down;
		p->down = true;
	}
	report(p, c, &ev);
	if (p->n_up > 0)
		return;
	snprintf(reason, sizeof(reason), "database unavailable: %s", why);
	fail_queue(p, reason);
}

void pool_conn_lost(struct pool_conn *c, const char *why, int level)
{
	struct pool *p = c->pool;
	struct pool_req *r = c->cur;
	struct pool_event ev = { .type = POOL_EV_LOST, .why = why,
				 .level = level };
	bool brief = p->set.short_lived_ms > 0 &&
		pu_now_ms() - c->up_since < p->set.short_lived_ms;

	c->cur = NULL;
	conn_close(c, false);
	report(p, c, &ev);
	if (brief) {
		c->failures++;
		p->host->timer_start(c->timer, backoff_delay(p, c->failures));
	} else {
		/* Reconnect at once: the attempt tells whether the server
		 * is still there. */
		c->failures = 0;
		p->host->timer_start(c->timer, 0);
	}
	if (r != NULL)
		finish(p, r, MYXID_ERROR, why);
}

void pool_conn_bounce(struct pool_conn *c, const char *why, int level)
{
	struct pool_req *r = c->cur;

	c->cur = NULL;
	if (r != NULL)
		queue_push(c->pool, r, true);
	pool_conn_lost(c, why, level);
}

/* The server is back: try the slots deep in their backoff now. */
static void kick_waiting(struct pool *p)
{
	for (unsigned i = 0; i < p->set.size; i++) {
		struct pool_conn *c = slot(p, i);

		if (c->state == POOL_WAIT && c->failures > 0)
			p->host->timer_start(c->timer, 0);
	}
}

void pool_conn_up(struct pool_conn *c)
{
	struct pool *p = c->pool;
	struct pool_event ev = { .type = POOL_EV_UP, .was_down = p->down,
				 .first = !p->ever_up };

	p->host->timer_stop(c->timer);
	if (pool_conn_watch(c, MYXID_WATCH_READ, true) < 0) {
		pool_attempt_failed(c, "cannot watch the socket");
		return;
	}
	c->state = POOL_IDLE;
	c->failures = 0;
	c->up_since = pu_now_ms();
	p->n_up++;
	p->down = false;
	p->ever_up = true;
	report(p, c, &ev);
	if (ev.was_down)
		kick_waiting(p);
	dispatch(p);
}

void pool_conn_answer(struct pool_conn *c, enum myxid_verdict v,
		      const char *reason)
{
	struct pool_req *r = c->cur;

	if (r == NULL)
		return;
	c->cur = NULL;
	c->pool->host->timer_stop(c->timer);
	finish(c->pool, r, v, reason);
}

void pool_conn_idle(struct pool_conn *c)
{
	c->state = POOL_IDLE;
	if (pool_conn_watch(c, MYXID_WATCH_READ, false) < 0) {
		pool_conn_lost(c, "cannot watch the socket", MYXID_LOG_ERROR);
		return;
	}
	dispatch(c->pool);
}

void pool_conn_done(struct pool_conn *c, enum myxid_verdict v,
		    const char *reason)
{
	pool_conn_answer(c, v, reason);
	pool_conn_idle(c);
}

void pool_conn_rerun(struct pool_conn *c)
{
	c->pool->host->timer_start(c->timer, c->pool->set.query_timeout_ms);
	c->pool->vf->send(c);
}

static void conn_start(struct pool_conn *c)
{
	c->state = POOL_CONNECTING;
	c->pool->host->timer_start(c->timer, c->pool->set.connect_timeout_ms);
	c->pool->vf->connect(c);
}

static void conn_timer(void *arg)
{
	struct pool_conn *c = arg;
	struct pool *p = c->pool;
	char why[96];

	switch (c->state) {
	case POOL_WAIT:
		conn_start(c);
		return;
	case POOL_CONNECTING:
		snprintf(why, sizeof(why), "no connection within %u ms",
			 p->set.connect_timeout_ms);
		pool_attempt_failed(c, why);
		return;
	case POOL_BUSY:
		/* Cancelling would block the loop; a new connection is the
		 * only way to stop waiting. The server may finish the query
		 * anyway. */
		if (p->vf->query_timeout != NULL) {
			p->vf->query_timeout(c, p->set.query_timeout_ms);
			return;
		}
		snprintf(why, sizeof(why), "query took longer than %u ms",
			 p->set.query_timeout_ms);
		pool_conn_lost(c, why, MYXID_LOG_WARNING);
		return;
	case POOL_IDLE:
		return;
	}
}

/* ------------------------------------------------------------ dispatch */

/* Requests are waiting: open slots never opened yet, as many as the
 * requests not already covered by connections on their way up. */
static void wake_more(struct pool *p)
{
	unsigned coming = 0, want;

	for (unsigned i = 0; i < p->set.size; i++) {
		const struct pool_conn *c = slot(p, i);

		if (c->started && (c->state == POOL_WAIT ||
				   c->state == POOL_CONNECTING))
			coming++;
	}
	want = p->q_len > coming ? p->q_len - coming : 0;
	for (unsigned i = 0; i < p->set.size && want > 0; i++) {
		struct pool_conn *c = slot(p, i);

		if (!c->started) {
			c->started = true;
			p->host->timer_start(c->timer, 0);
			want--;
		}
	}
}

static struct pool_conn *find_idle(const struct pool *p)
{
	for (unsigned i = 0; i < p->set.size; i++)
		if (slot(p, i)->state == POOL_IDLE)
			return slot(p, i);
	return NULL;
}

/* Give waiting requests to idle connections, in order. A driver may
 * answer at once and so come back here: the outer loop goes on. */
static void dispatch(struct pool *p)
{
	struct pool_conn *c;

	if (p->dispatching)
		return;
	p->dispatching = true;
	while (p->q_head != NULL && (c = find_idle(p)) != NULL) {
		struct pool_req *r = p->q_head;

		queue_unlink(p, r);
		c->cur = r;
		c->state = POOL_BUSY;
		pool_conn_rerun(c);
	}
	p->dispatching = false;
	if (p->q_head != NULL)
		wake_more(p);
}

/* ------------------------------------------------------------ requests */

enum myxid_verdict pool_answer_now(struct pool *p, struct myxid_req *req,
				   enum myxid_verdict v, const char *reason)
{
	p->host->req_done(req, v, reason);
	return MYXID_PENDING;
}

/*
 * The database is down and a request wants it: try again now rather than
 * after the backoff, unless an attempt is under way or the last probe is
 * less than PROBE_INTERVAL_MS old. The request itself is answered at once.
 */
static void probe(struct pool *p)
{
	uint64_t now = pu_now_ms();
	struct pool_conn *waiting = NULL;

	if (now - p->last_probe_ms < PROBE_INTERVAL_MS)
		return;
	for (unsigned i = 0; i < p->set.size; i++) {
		struct pool_conn *c = slot(p, i);

		if (c->state == POOL_CONNECTING)
			return;
		if (c->started && c->state == POOL_WAIT && waiting == NULL)
			waiting = c;
	}
	if (waiting == NULL)
		return;
	p->last_probe_ms = now;
	p->host->timer_start(waiting->timer, 0);
}

enum myxid_verdict pool_submit(struct pool *p, struct myxid_req *req,
			       bool is_auth)
{
	struct pool_req *r;
	char reason[POOL_MSG_MAX + 32];

	if (p->n_up == 0 && p->down) {
		if (p->set.probe)
			probe(p);
		snprintf(reason, sizeof(reason), "database unavailable: %s",
			 p->down_why);
		return pool_answer_now(p, req, MYXID_ERROR, reason);
	}
	if (p->q_len >= p->set.queue_max && (p->q_head != NULL ||
					     find_idle(p) == NULL)) {
		struct pool_event ev = { .type = POOL_EV_QUEUE_FULL,
					 .count = p->q_len };

		report(p, NULL, &ev);
		snprintf(reason, sizeof(reason), "%u requests already wait for "
			 "a connection (queue_max)", p->q_len);
		return pool_answer_now(p, req, MYXID_ERROR, reason);
	}
	r = calloc(1, p->vf->req_size);
	if (r == NULL)
		return pool_answer_now(p, req, MYXID_ERROR, "out of memory");
	r->req = req;
	r->is_auth = is_auth;
	if (p->vf->req_init != NULL && p->vf->req_init(r, p->driver) < 0) {
		req_free(p, r);
		return pool_answer_now(p, req, MYXID_ERROR, "out of memory");
	}
	queue_push(p, r, false);
	dispatch(p);
	return MYXID_PENDING;
}

void pool_cancel(struct pool *p, struct myxid_req *req)
{
	for (struct pool_req *r = p->q_head; r != NULL; r = r->next) {
		if (r->req == req) {
			queue_unlink(p, r);
			req_free(p, r);
			return;
		}
	}
	/* Running: the query cannot be recalled without blocking; its answer
	 * will be thrown away. */
	for (unsigned i = 0; i < p->set.size; i++) {
		struct pool_req *r = slot(p, i)->cur;

		if (r != NULL && r->req == req) {
			r->req = NULL;
			return;
		}
	}
}

unsigned pool_n_up(const struct pool *p)
{
	return p->n_up;
}

/* ------------------------------------------------------------ life */

void pool_free(struct pool *p)
{
	if (p == NULL)
		return;
	for (unsigned i = 0; p->slots != NULL && i < p->set.size; i++) {
		struct pool_conn *c = slot(p, i);

		if (c->pool == NULL)
			break;                  /* pool_new stopped here */
		req_free(p, c->cur);    /* never answered: the host is done */
		c->cur = NULL;
		if (c->timer != NULL)
			conn_close(c, c->state == POOL_IDLE);
		p->host->timer_free(&c->timer);
		p->vf->conn_deinit(c);
	}
	free(p->slots);
	while (p->q_head != NULL) {
		struct pool_req *r = p->q_head;

		queue_unlink(p, r);
		req_free(p, r);
	}
	free(p);
}

static int slot_init(struct pool *p, unsigned i)
{
	struct pool_conn *c = slot(p, i);

	c->pool = p;
	c->driver = p->driver;
	c->index = i + 1;
	c->fd = -1;
	c->state = POOL_WAIT;
	c->timer = p->host->timer_new(p->inst, conn_timer, c);
	if (c->timer == NULL || p->vf->conn_init(c) < 0)
		return -1;
	/* Connect once the loop runs (never under "myxid -t"); a lazy pool
	 * opens the others as the demand comes. */
	if (i == 0 || !p->set.lazy) {
		c->started = true;
		p->host->timer_start(c->timer, 0);
	}
	return 0;
}

struct pool *pool_new(const struct myxid_host *host,
		      struct myxid_instance *inst, const struct pool_vfuncs *vf,
		      void *driver, const struct pool_settings *set,
		      char *err, size_t err_size)
{
	struct pool *p = calloc(1, sizeof(*p));

	if (p == NULL || set->size == 0 ||
	    (p->slots = calloc(set->size, vf->conn_size)) == NULL) {
		free(p);
		pu_err(err, err_size, "out of memory");
		return NULL;
	}
	p->host = host;
	p->inst = inst;
	p->vf = vf;
	p->driver = driver;
	p->set = *set;
	p->rng = pu_now_ms() ^ ((uint64_t)(uintptr_t)p << 16) ^
		0x9E3779B97F4A7C15ull;
	for (unsigned i = 0; i < set->size; i++) {
		if (slot_init(p, i) < 0) {
			pool_free(p);
			pu_err(err, err_size, "cannot create the connections' "
			       "timers");
			return NULL;
		}
	}
	return p;
}
