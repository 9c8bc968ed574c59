/*
 * The fake daemon side of the plugin ABI for unit tests: see fake_host.h.
 * Simple over fast: lists are scanned, time is CLOCK_MONOTONIC, and the
 * loop is one poll() at a time. The ABI's opaque timer and watch types are
 * defined here, as the daemon defines its own.
 */
#define _POSIX_C_SOURCE 200809L

#include "fake_host.h"

#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct myxid_timer {
	struct fake_host *fh;
	void (*cb)(void *arg);
	void *arg;
	int armed;
	long long due_ms;
	struct myxid_timer *next;
};

struct myxid_watch {
	struct fake_host *fh;
	unsigned long id;       /* survives the watch being freed mid-loop */
	int fd;
	unsigned events;
	void (*cb)(int fd, unsigned ready, void *arg);
	void *arg;
	struct myxid_watch *next;
};

struct fake_post {
	void (*cb)(void *arg);
	void *arg;
	struct fake_post *next;
};

long long fake_host_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

/* ------------------------------------------------------------ log */

static void fh_log(struct myxid_instance *inst, int level, const char *fmt, ...)
	MYXID_PRINTF(3, 4);

static void fh_log(struct myxid_instance *inst, int level, const char *fmt, ...)
{
	struct fake_host *fh = inst->fh;
	char line[1024];
	size_t len;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fh->n_logs++;
	if (fh->verbose)
		fprintf(stderr, "[plugin %d] %s\n", level, line);
	len = strlen(line);
	/* Keep what fits; the tests look for short phrases. */
	if (fh->log_len + len + 2 <= sizeof(fh->log)) {
		memcpy(fh->log + fh->log_len, line, len);
		fh->log_len += len;
		fh->log[fh->log_len++] = '\n';
		fh->log[fh->log_len] = '\0';
	}
}

int fake_host_log_has(const struct fake_host *fh, const char *needle)
{
	return strstr(fh->log, needle) != NULL;
}

void fake_host_log_clear(struct fake_host *fh)
{
	fh->log[0] = '\0';
	fh->log_len = 0;
	fh->n_logs = 0;
}

/* ------------------------------------------------------------ requests */

void fake_req_init(struct myxid_req *req)
{
	memset(req, 0, sizeof(*req));
}

void fake_req_set(struct myxid_req *req, const char *key, const char *value)
{
	size_t i;

	for (i = 0; i < req->n_kv; i++)
		if (strcmp(req->keys[i], key) == 0)
			break;
	if (value == NULL) {
		if (i < req->n_kv) {
			req->n_kv--;
			req->keys[i] = req->keys[req->n_kv];
			req->values[i] = req->values[req->n_kv];
		}
		return;
	}
	if (i == FAKE_REQ_MAX_KV)
		abort();        /* a test bug, not a plugin one */
	req->keys[i] = key;
	req->values[i] = value;
	if (i == req->n_kv)
		req->n_kv++;
}

const char *fake_req_attr(const struct myxid_req *req, const char *key)
{
	size_t i;

	for (i = 0; i < req->n_attrs; i++)
		if (strcmp(req->attr_keys[i], key) == 0)
			return req->attr_values[i];
	return NULL;
}

void fake_req_cancel(struct myxid_req *req, const struct myxid_plugin *p,
		     void *ctx)
{
	req->cancelled = 1;
	if (p->cancel != NULL)
		p->cancel(ctx, req);
}

void fake_req_fini(struct myxid_req *req)
{
	size_t i;

	free(req->user_id);
	free(req->user_type);
	for (i = 0; i < req->n_attrs; i++) {
		free(req->attr_keys[i]);
		free(req->attr_values[i]);
	}
	free(req->reason);
	memset(req, 0, sizeof(*req));
}

static const char *fh_req_get(const struct myxid_req *req, const char *key)
{
	size_t i;

	for (i = 0; i < req->n_kv; i++)
		if (strcmp(req->keys[i], key) == 0)
			return req->values[i];
	return NULL;
}

static int fh_req_set_user(struct myxid_req *req, const char *user_id,
			   const char *user_type)
{
	if (user_id == NULL || user_id[0] == '\0') {
		req->n_bad_calls++;
		return -1;
	}
	free(req->user_id);
	free(req->user_type);
	req->user_id = strdup(user_id);
	req->user_type = dup_or_null(user_type);
	req->n_set_user++;
	return 0;
}

static int fh_req_add_attr(struct myxid_req *req, const char *key,
			   const char *value)
{
	if (key == NULL || value == NULL || req->n_attrs == FAKE_REQ_MAX_ATTRS) {
		req->n_bad_calls++;
		return -1;
	}
	req->attr_keys[req->n_attrs] = strdup(key);
	req->attr_values[req->n_attrs] = strdup(value);
	req->n_attrs++;
	return 0;
}

static void fh_req_done(struct myxid_req *req, enum myxid_verdict verdict,
			const char *reason)
{
	if (verdict == MYXID_PENDING || (unsigned)verdict > MYXID_PENDING)
		req->n_bad_calls++;
	if (req->cancelled)
		req->n_done_after_cancel++;
	req->n_done++;
	req->verdict = verdict;
	free(req->reason);
	req->reason = dup_or_null(reason);
	req->done_at_ms = fake_host_now_ms();
}

/* ------------------------------------------------------------ timers */

static struct myxid_timer *fh_timer_new(struct myxid_instance *inst,
					void (*cb)(void *arg), void *arg)
{
	struct fake_host *fh = inst->fh;
	struct myxid_timer *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->fh = fh;
	t->cb = cb;
	t->arg = arg;
	t->next = fh->timers;
	fh->timers = t;
	fh->live_timers++;
	return t;
}

static void fh_timer_start(struct myxid_timer *t, unsigned ms)
{
	t->armed = 1;
	t->due_ms = fake_host_now_ms() + ms;
}

static void fh_timer_stop(struct myxid_timer *t)
{
	t->armed = 0;
}

static void fh_timer_free(struct myxid_timer **tp)
{
	struct myxid_timer *t = *tp;
	struct myxid_timer **pp;

	if (t == NULL)
		return;
	for (pp = &t->fh->timers; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	t->fh->live_timers--;
	free(t);
	*tp = NULL;
}

/* The armed timer due first, or NULL. */
static struct myxid_timer *next_timer(const struct fake_host *fh)
{
	struct myxid_timer *t;
	struct myxid_timer *best = NULL;

	for (t = fh->timers; t != NULL; t = t->next)
		if (t->armed && (best == NULL || t->due_ms < best->due_ms))
			best = t;
	return best;
}

/* Fire due timers one at a time, looking again after each callback, since
 * a callback may free or start any timer, itself included. */
static int fire_timers(struct fake_host *fh)
{
	struct myxid_timer *t;
	int fired = 0;

	while ((t = next_timer(fh)) != NULL && t->due_ms <= fake_host_now_ms()) {
		t->armed = 0;
		t->cb(t->arg);
		fired++;
	}
	return fired;
}

/* ------------------------------------------------------------ watches */

static struct myxid_watch *fh_watch_new(struct myxid_instance *inst, int fd,
					unsigned events,
					void (*cb)(int fd, unsigned ready, void *arg),
					void *arg)
{
	struct fake_host *fh = inst->fh;
	struct myxid_watch *w;

	if (fd < 0 || cb == NULL)
		return NULL;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return NULL;
	w->fh = fh;
	w->id = ++fh->next_watch_id;
	w->fd = fd;
	w->events = events;
	w->cb = cb;
	w->arg = arg;
	w->next = fh->watches;
	fh->watches = w;
	fh->live_watches++;
	return w;
}

static int fh_watch_set(struct myxid_watch *w, unsigned events)
{
	w->events = events;
	return 0;
}

static void fh_watch_free(struct myxid_watch **wp)
{
	struct myxid_watch *w = *wp;
	struct myxid_watch **pp;

	if (w == NULL)
		return;
	for (pp = &w->fh->watches; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	w->fh->live_watches--;
	free(w);
	*wp = NULL;
}

static struct myxid_watch *watch_by_id(const struct fake_host *fh,
				      unsigned long id)
{
	struct myxid_watch *w;

	for (w = fh->watches; w != NULL; w = w->next)
		if (w->id == id)
			return w;
	return NULL;
}

static int active_watches(const struct fake_host *fh)
{
	const struct myxid_watch *w;
	int n = 0;

	for (w = fh->watches; w != NULL; w = w->next)
		if (w->events != 0)
			n++;
	return n;
}

/* ------------------------------------------------------------ post */

static int fh_post(struct myxid_instance *inst, void (*cb)(void *arg), void *arg)
{
	struct fake_host *fh = inst->fh;
	struct fake_post *p = calloc(1, sizeof(*p));
	struct fake_post **pp;
	ssize_t n;

	if (p == NULL)
		return -1;
	p->cb = cb;
	p->arg = arg;
	pthread_mutex_lock(&fh->post_lock);
	for (pp = &fh->posts; *pp != NULL; pp = &(*pp)->next)
		;
	*pp = p;
	pthread_mutex_unlock(&fh->post_lock);
	/* A full pipe already means "wake up"; nothing is lost. */
	n = write(fh->wake[1], "", 1);
	(void)n;
	return 0;
}

static int has_posts(struct fake_host *fh)
{
	int any;

	pthread_mutex_lock(&fh->post_lock);
	any = fh->posts != NULL;
	pthread_mutex_unlock(&fh->post_lock);
	return any;
}

/* Take the queue under the lock, run it outside, so callbacks may post. */
static int run_posts(struct fake_host *fh)
{
	struct fake_post *p;
	int ran = 0;

	pthread_mutex_lock(&fh->post_lock);
	p = fh->posts;
	fh->posts = NULL;
	pthread_mutex_unlock(&fh->post_lock);
	while (p != NULL) {
		struct fake_post *next = p->next;

		p->cb(p->arg);
		free(p);
		p = next;
		ran++;
	}
	return ran;
}

/* ------------------------------------------------------------ paths */

/* Relative paths are taken from the directory of the option's file; an
 * option without a file leaves them relative to the cwd. */
static int fh_resolve_path(const struct myxid_opt *opt, const char *path,
			   char *out, size_t out_size)
{
	const char *slash = opt != NULL && opt->file != NULL ?
		strrchr(opt->file, '/') : NULL;
	int n;

	if (path[0] == '/' || slash == NULL)
		n = snprintf(out, out_size, "%s", path);
	else
		n = snprintf(out, out_size, "%.*s/%s",
			     (int)(slash - opt->file), opt->file, path);
	return n < 0 || (size_t)n >= out_size ? -1 : 0;
}

/* ------------------------------------------------------------ loop */

static void drain_wake(struct fake_host *fh)
{
	char buf[64];

	while (read(fh->wake[0], buf, sizeof(buf)) > 0)
		;
}

/* Milliseconds poll() may sleep: until the next timer or the deadline. */
static int poll_timeout(const struct fake_host *fh, long long deadline)
{
	const struct myxid_timer *t = next_timer(fh);
	long long now = fake_host_now_ms();
	long long until = deadline;

	if (t != NULL && t->due_ms < until)
		until = t->due_ms;
	return until > now ? (int)(until - now) : 0;
}

/* One poll() over the wake pipe and the active watches. */
static void poll_once(struct fake_host *fh, int timeout)
{
	struct pollfd pfd[64];
	unsigned long ids[64];
	struct myxid_watch *w;
	nfds_t n = 1;
	nfds_t i;

	pfd[0].fd = fh->wake[0];
	pfd[0].events = POLLIN;
	for (w = fh->watches; w != NULL && n < 64; w = w->next) {
		if (w->events == 0)
			continue;
		pfd[n].fd = w->fd;
		pfd[n].events = (short)(((w->events & MYXID_WATCH_READ) ? POLLIN : 0) |
					((w->events & MYXID_WATCH_WRITE) ? POLLOUT : 0));
		ids[n++] = w->id;
	}
	if (poll(pfd, n, timeout) <= 0)
		return;
	if (pfd[0].revents != 0)
		drain_wake(fh);
	for (i = 1; i < n; i++) {
		unsigned ready = 0;

		if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
			ready |= MYXID_WATCH_READ;
		if (pfd[i].revents & (POLLOUT | POLLERR))
			ready |= MYXID_WATCH_WRITE;
		/* An earlier callback may have freed or paused this one. */
		w = watch_by_id(fh, ids[i]);
		if (w != NULL && (ready &= w->events) != 0)
			w->cb(w->fd, ready, w->arg);
	}
}

int fake_host_run(struct fake_host *fh, unsigned max_ms)
{
	long long deadline = fake_host_now_ms() + max_ms;

	for (;;) {
		run_posts(fh);
		fire_timers(fh);
		if (next_timer(fh) == NULL && active_watches(fh) == 0 &&
		    !has_posts(fh))
			return 0;
		if (fake_host_now_ms() >= deadline)
			return 1;
		poll_once(fh, poll_timeout(fh, deadline));
	}
}

/* ------------------------------------------------------------ setup */

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static unsigned fh_instance_kind(const struct myxid_instance *inst)
{
	return MYXID_KIND_AUTH | MYXID_KIND_POLICY;
}

int fake_host_init(struct fake_host *fh)
{
	const char *v = getenv("FAKE_HOST_VERBOSE");

	memset(fh, 0, sizeof(*fh));
	fh->host.abi_major = MYXID_PLUGIN_ABI_MAJOR;
	fh->host.abi_minor = MYXID_PLUGIN_ABI_MINOR;
	fh->host.size = sizeof(fh->host);
	fh->host.log = fh_log;
	fh->host.req_get = fh_req_get;
	fh->host.req_set_user = fh_req_set_user;
	fh->host.req_add_attr = fh_req_add_attr;
	fh->host.req_done = fh_req_done;
	fh->host.watch_new = fh_watch_new;
	fh->host.watch_set = fh_watch_set;
	fh->host.watch_free = fh_watch_free;
	fh->host.timer_new = fh_timer_new;
	fh->host.timer_start = fh_timer_start;
	fh->host.timer_stop = fh_timer_stop;
	fh->host.timer_free = fh_timer_free;
	fh->host.post = fh_post;
	fh->host.resolve_path = fh_resolve_path;
	fh->host.instance_kind = fh_instance_kind;
	fh->inst.fh = fh;
	fh->verbose = v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
	if (pipe(fh->wake) < 0)
		return -1;
	if (set_nonblock(fh->wake[0]) < 0 || set_nonblock(fh->wake[1]) < 0)
		return -1;
	return pthread_mutex_init(&fh->post_lock, NULL) == 0 ? 0 : -1;
}

void fake_host_fini(struct fake_host *fh)
{
	while (fh->timers != NULL) {
		struct myxid_timer *t = fh->timers;

		fh_timer_free(&t);
	}
	while (fh->watches != NULL) {
		struct myxid_watch *w = fh->watches;

		fh_watch_free(&w);
	}
	while (fh->posts != NULL) {
		struct fake_post *p = fh->posts;

		fh->posts = p->next;
		free(p);
	}
	pthread_mutex_destroy(&fh->post_lock);
	close(fh->wake[0]);
	close(fh->wake[1]);
}
