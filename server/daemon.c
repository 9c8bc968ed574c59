/*
 * The process around the workers; see daemon.h.
 *
 * The main thread owns no sockets of clients: it starts the workers, then
 * runs a small event loop of its own for signals. A reload is two-phase:
 * every worker loads the new configuration and plugins beside its running
 * ones, and only if all of them succeed do they all switch; otherwise all
 * keep what they run, so a failed reload never changes who is let in.
 */
#include "daemon.h"
#include "control_api.h"
#include "broker.h"
#include "config.h"
#include "history.h"
#include "presence.h"
#include "ip_table.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "protocols.h"
#include "runconf.h"
#include "session.h"
#include "shared_frame.h"
#include "worker.h"
#include "util.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

/* How long a reload may take before it counts as failed. */
#define RELOAD_WAIT_S 60

/* How long startup waits for the history streams to be read. */
#define HISTORY_WAIT_MS 10000

struct daemon {
	struct event_base *base;          /* the main thread's: signals */
	struct worker **workers;          /* 64 slots, n_workers used */
	struct listener **listeners;      /* one per worker, same slots */
	unsigned n_workers;
	struct broker *broker;
	struct ip_table *ips;
	SSL_CTX *ssl_ctx;
	struct history_store *history;    /* every exchange's kept events */
	struct presence *presence;        /* who is on which key (presence on) */
	struct event *history_sweep;      /* ages them out, once a second */
	struct control_msg *control_queued; /* on the first loop, not yet run */

	pthread_mutex_t lock;             /* the reload barrier and stops */
	pthread_cond_t cond;
	unsigned answers, failures;
	char reload_err[1024];
	unsigned stopped;
	bool stopping;
};

static unsigned cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 64 ? 64 : (unsigned)n;
}

/* ------------------------------------------------------------------ TLS */

static SSL_CTX *tls_context(const struct myxid_config *cfg, char *err, size_t err_size)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	unsigned long e;

	if (ctx == NULL) {
		snprintf(err, err_size, "cannot create a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->ssl_certificate) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, cfg->ssl_certificate_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		e = ERR_get_error();
		snprintf(err, err_size, "%s: cannot use ssl_certificate %s / "
			 "ssl_certificate_key %s: %s", cfg->path, cfg->ssl_certificate,
			 cfg->ssl_certificate_key, ERR_reason_error_string(e));
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static bool wants_tls(const struct myxid_config *cfg)
{
	for (size_t i = 0; i < cfg->n_listens; i++)
		if (cfg->listens[i].tls)
			return true;
	return false;
}

/* ----------------------------------------------------------- privileges */

static int drop_privileges(const char *user, char *err, size_t err_size)
{
	struct passwd *pw;

	if (user == NULL)
		return 0;
	if (geteuid() != 0) {
		log_notice("not root: 'user %s' ignored", user);
		return 0;
	}
	pw = getpwnam(user);
	if (pw == NULL) {
		snprintf(err, err_size, "user '%s' does not exist", user);
		return -1;
	}
	/* Groups first: after setuid we may no longer change them. */
	if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
	    setuid(pw->pw_uid) != 0) {
		snprintf(err, err_size, "cannot become user '%s': %s", user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		snprintf(err, err_size, "dropping root to '%s' did not stick", user);
		return -1;
	}
	log_notice("running as user %s", user);
	return 0;
}

/* ---------------------------------------------------------------- broker */

static void binds_to_workers(void *arg)
{
	struct daemon *d = arg;

	for (unsigned i = 0; i < d->n_workers; i++)
		worker_binds_done(d->workers[i]);
}

static void broker_to_workers(void *arg, struct shared_frame *f, uint64_t loops)
{
	struct daemon *d = arg;

	metrics_inc(M_PUBLISHED);
	/* One encoded frame, a reference for each loop it concerns. */
	for (unsigned i = 0; i < d->n_workers; i++)
		if (loops & (1ull << i))
			worker_deliver(d->workers[i], f);
}

/* A control message, from the broker thread to the first loop.  Queued
 * ones are listed (under d->lock) because one that arrives as that loop
 * ends is never run: shutdown frees what is left. */
struct control_msg {
	struct daemon *d;
	struct control_msg *next, **prevp;
	struct worker *w;
	bool reply;
	char reply_to[256], corr[128];
	size_t len;
	char body[];
};

static void control_on_loop(evutil_socket_t fd, short what, void *arg)
{
	struct control_msg *m = arg;

	pthread_mutex_lock(&m->d->lock);
	if (m->next != NULL)
		m->next->prevp = m->prevp;
	*m->prevp = m->next;
	pthread_mutex_unlock(&m->d->lock);
	control_api_remote(m->w, m->reply, m->reply_to[0] ? m->reply_to : NULL,
			   m->corr[0] ? m->corr : NULL, m->body, m->len);
	free(m);
}

static void broker_control_to_worker(void *arg, bool reply, const char *reply_to,
				     const char *corr, const void *body, size_t len)
{
	struct daemon *d = arg;
	struct control_msg *m = xmalloc(sizeof(*m) + len + 1);
	struct timeval zero = { 0, 0 };

	m->w = d->workers[0];
	m->reply = reply;
	snprintf(m->reply_to, sizeof(m->reply_to), "%s", reply_to);
	snprintf(m->corr, sizeof(m->corr), "%s", corr);
	memcpy(m->body, body, len);
	m->body[len] = '\0';
	m->len = len;
	m->d = d;
	pthread_mutex_lock(&d->lock);
	m->next = d->control_queued;
	if (m->next != NULL)
		m->next->prevp = &m->next;
	m->prevp = &d->control_queued;
	d->control_queued = m;
	pthread_mutex_unlock(&d->lock);
	event_base_once(worker_base(m->w), -1, EV_TIMEOUT, control_on_loop, m, &zero);
}

/* After broker_mute(): no more arrive, and the loops have ended. */
static void control_queued_free(struct daemon *d)
{
	while (d->control_queued != NULL) {
		struct control_msg *m = d->control_queued;

		d->control_queued = m->next;
		free(m);
	}
}

static void broker_flush_workers(void *arg)
{
	struct daemon *d = arg;

	for (unsigned i = 0; i < d->n_workers; i++)
		worker_deliveries_flush(d->workers[i]);
}

/* --------------------------------------------------------------- fan-out */

struct fanout {
	struct worker *origin;
	struct shared_frame *f;
	unsigned pending;            /* workers still to publish (atomic) */
	size_t delivered;            /* atomic */
	void (*done)(void *arg, size_t delivered);
	void *arg;
	const char *routing_key;     /* into exchange[] */
	char exchange[];
};

/* One worker's share: its own loop, its own subscribers. */
struct fanout_part {
	struct fanout *fo;
	struct worker *w;
};

static void fanout_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fanout *fo = arg;

	fo->done(fo->arg, fo->delivered);
	shared_frame_unref(fo->f);
	free(fo);
}

static void fanout_part_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fanout_part *part = arg;
	struct fanout *fo = part->fo;
	struct timeval zero = { 0, 0 };
	size_t n = worker_publish_local(part->w, fo->exchange, fo->routing_key, fo->f);

	free(part);
	__atomic_add_fetch(&fo->delivered, n, __ATOMIC_RELAXED);
	if (__atomic_sub_fetch(&fo->pending, 1, __ATOMIC_ACQ_REL) == 0)
		event_base_once(worker_base(fo->origin), -1, EV_TIMEOUT, fanout_done_cb, fo, &zero);
}

/* The workers' fan-out hook (struct worker_hooks). */
static void fanout(void *daemon, struct worker *origin, const char *exchange,
		   const char *routing_key, struct shared_frame *f,
		   worker_fanout_done_fn *done, void *arg)
{
	struct daemon *d = daemon;
	size_t el = strlen(exchange), rl = strlen(routing_key);
	struct fanout *fo = xcalloc(1, sizeof(*fo) + el + rl + 2);
	struct timeval zero = { 0, 0 };

	fo->origin = origin;
	fo->f = shared_frame_ref(f);
	fo->pending = d->n_workers;
	fo->done = done;
	fo->arg = arg;
	memcpy(fo->exchange, exchange, el + 1);
	memcpy(fo->exchange + el + 1, routing_key, rl + 1);
	fo->routing_key = fo->exchange + el + 1;
	for (unsigned i = 0; i < d->n_workers; i++) {
		struct fanout_part *part = xmalloc(sizeof(*part));
		part->fo = fo;
		part->w = d->workers[i];
		event_base_once(worker_base(part->w), -1, EV_TIMEOUT, fanout_part_cb, part, &zero);
	}
}

/* ------------------------------------------------------------- broadcast */

/* A task for every loop (worker_broadcast), answered on its origin's. */
struct bcast {
	struct worker *origin;
	unsigned pending;            /* workers still to run it (atomic) */
	worker_each_fn *each;
	worker_done_fn *done;
	void *op;
};

struct bcast_part {
	struct bcast *bc;
	struct worker *w;
};

static void bcast_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bcast *bc = arg;

	bc->done(bc->op);
	free(bc);
}

static void bcast_part_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bcast_part *part = arg;
	struct bcast *bc = part->bc;
	struct timeval zero = { 0, 0 };

	bc->each(part->w, bc->op);
	free(part);
	if (__atomic_sub_fetch(&bc->pending, 1, __ATOMIC_ACQ_REL) == 0)
		event_base_once(worker_base(bc->origin), -1, EV_TIMEOUT, bcast_done_cb, bc, &zero);
}

static void broadcast(void *daemon, struct worker *origin, worker_each_fn *each,
		      worker_done_fn *done, void *op)
{
	struct daemon *d = daemon;
	struct bcast *bc = xcalloc(1, sizeof(*bc));
	struct timeval zero = { 0, 0 };

	bc->origin = origin;
	bc->pending = d->n_workers;
	bc->each = each;
	bc->done = done;
	bc->op = op;
	for (unsigned i = 0; i < d->n_workers; i++) {
		struct bcast_part *part = xmalloc(sizeof(*part));

		part->bc = bc;
		part->w = d->workers[i];
		event_base_once(worker_base(part->w), -1, EV_TIMEOUT, bcast_part_cb, part, &zero);
	}
}

/* -------------------------------------------------------------- reloads */

static void reload_prepare_on_worker(struct worker *w)
{
	struct daemon *d = worker_hooks_arg(w);
	char err[1024];
	int rc = worker_reload_prepare(w, err, sizeof(err));

	pthread_mutex_lock(&d->lock);
	if (rc != 0 && d->failures++ == 0)
		snprintf(d->reload_err, sizeof(d->reload_err), "%s", err);
	d->answers++;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

static void reload(struct daemon *d)
{
	struct timespec deadline;
	bool ok;

	notify_manager("RELOADING=1");
	runconf_new_epoch();
	pthread_mutex_lock(&d->lock);
	d->answers = d->failures = 0;
	pthread_mutex_unlock(&d->lock);
	for (unsigned i = 0; i < d->n_workers; i++)
		worker_post(d->workers[i], reload_prepare_on_worker);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += RELOAD_WAIT_S;
	pthread_mutex_lock(&d->lock);
	while (d->answers < d->n_workers &&
	       pthread_cond_timedwait(&d->cond, &d->lock, &deadline) == 0)
		;
	ok = d->answers == d->n_workers && d->failures == 0;
	if (d->answers < d->n_workers)
		snprintf(d->reload_err, sizeof(d->reload_err), "workers did not "
			 "finish loading within %d s", RELOAD_WAIT_S);
	pthread_mutex_unlock(&d->lock);
	/* Posted after every prepare, so each worker sees its own first. */
	for (unsigned i = 0; i < d->n_workers; i++)
		worker_post(d->workers[i], ok ? worker_reload_commit : worker_reload_abort);
	if (ok) {
		metrics_inc(M_RELOADS);
		log_notice("configuration reloaded by %u worker(s)", d->n_workers);
	} else {
		metrics_inc(M_RELOAD_FAILURES);
		log_error("reload failed, keeping the running configuration: %s",
			  d->reload_err);
	}
	notify_manager("READY=1");
}

/* --------------------------------------------------------------- signals */

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	if (sig == SIGHUP) {
		reload(d);
		return;
	}
	if (d->stopping)
		return;
	d->stopping = true;
	notify_manager("STOPPING=1");
	log_notice("%s: draining connections over %u ms, then exiting",
		   sig == SIGTERM ? "SIGTERM" : "SIGINT",
		   worker_config(d->workers[0])->drain_time_ms);
	for (unsigned i = 0; i < d->n_workers; i++)
		listener_post_drain(d->listeners[i]);
}

static void all_stopped_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	pthread_mutex_lock(&d->lock);
	if (d->stopped == d->n_workers)
		event_base_loopbreak(d->base);
	pthread_mutex_unlock(&d->lock);
}

/* The workers' stopped hook: called on a worker's thread as its loop ends. */
static void worker_stopped(void *daemon, struct worker *w)
{
	struct daemon *d = daemon;
	struct timeval zero = { 0, 0 };

	pthread_mutex_lock(&d->lock);
	d->stopped++;
	pthread_mutex_unlock(&d->lock);
	event_base_once(d->base, -1, EV_TIMEOUT, all_stopped_cb, d, &zero);
}

/* ---------------------------------------------------------------- main */

/*
 * Before serving, read the history streams up to now, so that a client
 * resuming on this node (another one died) finds what it missed. Bounded:
 * a broker that cannot be reached must not keep the sockets out.
 */
static void wait_for_history(struct broker *b)
{
	uint64_t start = monotonic_ms();

	while (!broker_history_ready(b)) {
		if (monotonic_ms() - start >= HISTORY_WAIT_MS) {
			log_warn("history: the streams are not read up to now after %d s; "
				 "serving anyway (resumes may be answered recovered:false "
				 "until they are)", HISTORY_WAIT_MS / 1000);
			return;
		}
		usleep(10000);
	}
	if (monotonic_ms() - start > 100)
		log_info("history: streams read up to now in %llu ms",
			 (unsigned long long)(monotonic_ms() - start));
}

/* An exchange nobody publishes to must still forget events past its age. */
static void history_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	static int64_t shown;    /* this timer is the gauge's only writer */
	int64_t bytes;

	history_store_expire(d->history, (long long)monotonic_ms());
	bytes = (int64_t)history_store_bytes(d->history);
	metrics_add(M_HISTORY_BYTES, bytes - shown);
	shown = bytes;
}

static int check_only(const char *path, const char *plugin_dir, bool debug)
{
	struct worker *w = worker_new(0, NULL, session_deliver);
	char err[1024];
	SSL_CTX *ctx = NULL;
	int rc;

	rc = worker_init(w, path, plugin_dir, debug, err, sizeof(err));
	if (rc == 0 && wants_tls(worker_config(w)) &&
	    (ctx = tls_context(worker_config(w), err, sizeof(err))) == NULL)
		rc = -1;
	if (rc == 0)
		fprintf(stderr, "myxid: the configuration file %s syntax is ok\n"
			"myxid: configuration file %s test is successful\n", path, path);
	else
		fprintf(stderr, "myxid: %s\n", err);
	SSL_CTX_free(ctx);
	worker_free(&w);
	return rc == 0 ? 0 : 1;
}

static int start_workers(struct daemon *d, const char *path, const char *plugin_dir,
			 bool debug, char *err, size_t err_size)
{
	const struct worker_hooks hooks = { fanout, broadcast, worker_stopped, d };
	const struct myxid_config *cfg;

	d->workers = xcalloc(64, sizeof(*d->workers));
	d->listeners = xcalloc(64, sizeof(*d->listeners));
	d->workers[0] = worker_new(0, &hooks, session_deliver);
	if (worker_init(d->workers[0], path, plugin_dir, debug, err, err_size) != 0)
		return -1;
	cfg = worker_config(d->workers[0]);
	d->n_workers = cfg->workers ? cfg->workers : cpu_count();
	if (log_set_target(cfg->log_target, cfg->syslog_address, err, err_size) != 0)
		return -1;
	if (wants_tls(cfg) && (d->ssl_ctx = tls_context(cfg, err, err_size)) == NULL)
		return -1;
	d->ips = ip_table_new();
	/* Always made: a reload may give an exchange history. */
	d->history = history_store_new(cfg->history_memory);
	d->presence = presence_new();
	for (unsigned i = 0; i < d->n_workers; i++) {
		struct worker *w;

		if (i > 0)
			d->workers[i] = worker_new(i, &hooks, session_deliver);
		w = d->workers[i];
		if (i > 0 && worker_init(w, path, plugin_dir, debug, err, err_size) != 0)
			return -1;
		worker_share(w, d->ips, d->ssl_ctx, d->history);
		worker_set_presence(w, d->presence);
		d->listeners[i] = listener_new(w, &protocols_handler);
		if (listener_bind(d->listeners[i], err, err_size) != 0)
			return -1;
	}
	return 0;
}

int daemon_main(const char *path, const char *plugin_dir, bool debug, bool test_only)
{
	struct daemon d;
	char err[1024];
	struct event *sigs[3] = { NULL, NULL, NULL };
	int status = 1, signums[3] = { SIGTERM, SIGINT, SIGHUP };
	unsigned started = 0;

	if (test_only)
		return check_only(path, plugin_dir, debug);
	memset(&d, 0, sizeof(d));
	pthread_mutex_init(&d.lock, NULL);
	pthread_cond_init(&d.cond, NULL);
	d.base = event_base_new();
	/* Before the listeners open: a supervisor's SIGTERM that comes as soon
	 * as the port answers must stop us cleanly, not kill us. Signals are
	 * handled once the loop runs. */
	for (int i = 0; i < 3; i++) {
		sigs[i] = evsignal_new(d.base, signums[i], signal_cb, &d);
		evsignal_add(sigs[i], NULL);
	}
	if (start_workers(&d, path, plugin_dir, debug, err, sizeof(err)) != 0 ||
	    drop_privileges(worker_config(d.workers[0])->user, err, sizeof(err)) != 0) {
		fprintf(stderr, "myxid: %s\n", err);
		goto out;
	}
	if (worker_config(d.workers[0])->broker.enabled) {
		struct broker_sink sink = { broker_to_workers, broker_flush_workers,
					    broker_control_to_worker, &d };

		for (unsigned i = 0; i < d.n_workers; i++)
			worker_use_broker(d.workers[i]);
		d.broker = broker_start(worker_config(d.workers[0]), &sink, d.n_workers,
					d.history);
		if (d.broker == NULL) {
			fprintf(stderr, "myxid: cannot start the broker link\n");
			goto out;
		}
		for (unsigned i = 0; i < d.n_workers; i++)
			worker_set_broker(d.workers[i], d.broker);
		broker_set_progress(d.broker, binds_to_workers, &d);
		wait_for_history(d.broker);
	}
	/* Its timer runs on the first loop, which also takes the control
	 * exchange's messages. */
	presence_attach(d.presence, d.workers[0]);
	for (; started < d.n_workers; started++)
		if (worker_start(d.workers[started]) != 0) {
			log_error("cannot start worker thread %u", started);
			break;
		}
	if (started == d.n_workers) {
		d.history_sweep = event_new(d.base, -1, EV_PERSIST, history_sweep_cb, &d);
		event_add(d.history_sweep, &(struct timeval){ 1, 0 });
		log_notice("myxid " PACKAGE_VERSION " ready: %u worker(s)", d.n_workers);
		notify_manager("READY=1");
		event_base_loop(d.base, EVLOOP_NO_EXIT_ON_EMPTY);
		status = 0;
	} else {
		for (unsigned i = 0; i < started; i++)
			listener_post_drain(d.listeners[i]);
	}
	for (unsigned i = 0; i < started; i++)
		worker_join(d.workers[i]);
	log_notice("stopped");
out:
	for (int i = 0; i < 3; i++)
		if (sigs[i] != NULL)
			event_free(sigs[i]);
	if (d.history_sweep != NULL)
		event_free(d.history_sweep);
	/* Workers unbind as their sessions go, so the broker stops last;
	 * it must not wake loops that are gone. */
	if (d.broker != NULL) {
		broker_set_progress(d.broker, NULL, NULL);
		broker_mute(d.broker);
	}
	control_queued_free(&d);
	/* Sessions leave presence as they go: the table outlives them, and
	 * its timers go before the first loop's base. */
	for (unsigned i = 0; i < 64 && d.listeners; i++)
		listener_free(&d.listeners[i]);
	presence_free(&d.presence);
	for (unsigned i = 0; i < 64 && d.workers; i++)
		worker_free(&d.workers[i]);
	broker_stop(&d.broker);
	ip_table_free(&d.ips);
	history_store_free(d.history);
	SSL_CTX_free(d.ssl_ctx);
	free(d.workers);
	free(d.listeners);
	event_base_free(d.base);
	pthread_cond_destroy(&d.cond);
	pthread_mutex_destroy(&d.lock);
	/* Whatever the log target still takes within a second; a stuck one
	 * does not hold up the exit. */
	log_shutdown(1000);
	return status;
}
