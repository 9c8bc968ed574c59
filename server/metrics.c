/*
 * The numbers behind /metrics; see metrics.h.
 */
#include "metrics.h"
#include "log.h"
#include "util.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <myxid/plugin.h>

static const struct {
	const char *name, *type, *help;
} info[M_COUNT] = {
	[M_CONNECTIONS_TOTAL] = { "myxid_connections_total", "counter", "TCP connections accepted" },
	[M_HANDSHAKES_REFUSED] = { "myxid_handshakes_refused_total", "counter", "Requests answered with an HTTP error" },
	[M_LIMIT_REFUSED] = { "myxid_connections_refused_total", "counter", "Upgrades refused by max_connections or max_connections_per_ip" },
	[M_MESSAGES_IN] = { "myxid_messages_received_total", "counter", "WebSocket messages received from clients" },
	[M_BYTES_IN] = { "myxid_received_bytes_total", "counter", "Bytes read from clients" },
	[M_BYTES_OUT] = { "myxid_sent_bytes_total", "counter", "Bytes queued to clients" },
	[M_PUBLISHED] = { "myxid_events_published_total", "counter", "Events fanned out on this node" },
	[M_DELIVERIES] = { "myxid_deliveries_total", "counter", "Event frames queued to sockets" },
	[M_DROPPED_FRAMES] = { "myxid_dropped_frames_total", "counter", "Frames not sent because the socket was closing" },
	[M_SLOW_CLOSES] = { "myxid_slow_socket_closes_total", "counter", "Sockets closed for exceeding max_output_buffer" },
	[M_PING_TIMEOUTS] = { "myxid_ping_timeouts_total", "counter", "Sockets closed for not answering pings" },
	[M_PROTOCOL_CLOSES] = { "myxid_protocol_closes_total", "counter", "Sockets closed for a WebSocket protocol error" },
	[M_RATE_LIMITED] = { "myxid_actions_rate_limited_total", "counter", "Actions refused by max_actions_per_second" },
	[M_AUTH_CACHE_HITS] = { "myxid_auth_cache_hits_total", "counter", "Authentications answered from the cache" },
	[M_POLICY_CACHE_HITS] = { "myxid_policy_cache_hits_total", "counter", "Subscriptions answered from the cache" },
	[M_RELOADS] = { "myxid_reloads_total", "counter", "Successful configuration reloads" },
	[M_RELOAD_FAILURES] = { "myxid_reload_failures_total", "counter", "Reloads that failed and kept the running configuration" },
	[M_HISTORY_REPLAYED] = { "myxid_history_replayed_total", "counter", "Events replayed from history to resuming sockets and late joiners" },
	[M_HISTORY_RECOVERED] = { "myxid_history_recovered_total", "counter", "Resumes (Subscribe with since) that got every missed event" },
	[M_HISTORY_NOT_RECOVERED] = { "myxid_history_not_recovered_total", "counter", "Resumes answered recovered:false (too old, another epoch, no history)" },
	[M_SSE_STREAMS] = { "myxid_sse_streams_total", "counter", "SSE requests answered 200 (a stream of events)" },
	[M_PRESENCE_EVENTS] = { "myxid_presence_events_total", "counter", "Presence events built, each sent to every watcher of its key" },
	[M_SSE_REFUSED] = { "myxid_sse_refused_total", "counter", "SSE requests answered with an error status (token, subscription, limits)" },
	[M_CONNECTIONS_OPEN] = { "myxid_connections", "gauge", "Open TCP connections" },
	[M_SOCKETS_OPEN] = { "myxid_sockets", "gauge", "Open WebSocket connections" },
	[M_SOCKETS_AUTHENTICATED] = { "myxid_sockets_authenticated", "gauge", "Authenticated WebSocket connections" },
	[M_SUBSCRIPTIONS] = { "myxid_subscriptions", "gauge", "Subscriptions held by sockets" },
	[M_HISTORY_BYTES] = { "myxid_history_bytes", "gauge", "Memory held by kept history (frames and bookkeeping)" },
	[M_SSE_OPEN] = { "myxid_sse_streams", "gauge", "Open SSE streams (counted in myxid_sockets too)" },
};

/*
 * Each thread counts into a slab of its own: a delivery updates counters
 * on every fan-out, and one shared cache line bounced between the loops
 * would cost more than the delivery. A scrape sums the slabs. Slabs live
 * as long as the process (threads are few and long-lived).
 */
struct slab {
	int64_t v[M_COUNT];
	struct slab *next;
};

static struct slab *slabs;          /* prepended under slabs_lock */
static pthread_mutex_t slabs_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread struct slab *mine;

static struct slab *my_slab(void)
{
	struct slab *s = aligned_alloc(64, (sizeof(struct slab) + 63) / 64 * 64);

	if (s == NULL)
		abort();
	memset(s, 0, sizeof(*s));
	pthread_mutex_lock(&slabs_lock);
	s->next = slabs;
	__atomic_store_n(&slabs, s, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&slabs_lock);
	return mine = s;
}

void metrics_add(enum metric m, int64_t delta)
{
	struct slab *s = mine ? mine : my_slab();

	/* Only this thread writes its slab; readers load it relaxed. */
	__atomic_store_n(&s->v[m], s->v[m] + delta, __ATOMIC_RELAXED);
}

int64_t metrics_get(enum metric m)
{
	int64_t sum = 0;

	for (struct slab *s = __atomic_load_n(&slabs, __ATOMIC_ACQUIRE); s; s = s->next)
		sum += __atomic_load_n(&s->v[m], __ATOMIC_RELAXED);
	return sum;
}

/* ---------------------------------------------------------- plugins */

static const double bucket_s[] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5
};
#define N_BUCKETS (sizeof(bucket_s) / sizeof(bucket_s[0]))
#define MAX_PLUGINS 128

struct plugin_stats {
	char label[96];
	int64_t answers[5];            /* per verdict */
	int64_t buckets[N_BUCKETS];    /* not cumulative; summed when rendered */
	int64_t count;
	int64_t sum_us;
	int failing;                   /* the latest answer was an error */
};

static struct plugin_stats plugins[MAX_PLUGINS];
static int n_plugins;               /* grows under plugins_lock only */
static pthread_mutex_t plugins_lock = PTHREAD_MUTEX_INITIALIZER;

static struct plugin_stats *plugin_slot(const char *label)
{
	int n = __atomic_load_n(&n_plugins, __ATOMIC_ACQUIRE);
	struct plugin_stats *ps = NULL;

	for (int i = 0; i < n; i++)
		if (strcmp(plugins[i].label, label) == 0)
			return &plugins[i];
	pthread_mutex_lock(&plugins_lock);
	for (int i = 0; i < n_plugins; i++)
		if (strcmp(plugins[i].label, label) == 0)
			ps = &plugins[i];
	if (ps == NULL && n_plugins < MAX_PLUGINS) {
		ps = &plugins[n_plugins];
		snprintf(ps->label, sizeof(ps->label), "%s", label);
		__atomic_store_n(&n_plugins, n_plugins + 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&plugins_lock);
	return ps;
}

void metrics_plugin_answer(const char *label, int verdict, uint64_t micros)
{
	struct plugin_stats *ps = plugin_slot(label);
	size_t b = 0;

	if (ps == NULL)
		return;
	if (verdict >= 0 && verdict < 5)
		__atomic_add_fetch(&ps->answers[verdict], 1, __ATOMIC_RELAXED);
	__atomic_store_n(&ps->failing, verdict == MYXID_ERROR, __ATOMIC_RELAXED);
	while (b < N_BUCKETS && (double)micros / 1e6 > bucket_s[b])
		b++;
	if (b < N_BUCKETS)
		__atomic_add_fetch(&ps->buckets[b], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&ps->count, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&ps->sum_us, (int64_t)micros, __ATOMIC_RELAXED);
}

int metrics_plugin_health(void (*fn)(void *arg, const char *label, int failing),
			  void *arg)
{
	int n = __atomic_load_n(&n_plugins, __ATOMIC_ACQUIRE), bad = 0;

	for (int i = 0; i < n; i++) {
		int failing = __atomic_load_n(&plugins[i].failing, __ATOMIC_RELAXED);
		bad += failing;
		fn(arg, plugins[i].label, failing);
	}
	return bad;
}

/* ---------------------------------------------------------- rendering */

struct out {
	char *buf;
	size_t len, cap;
};

static void emit(struct out *o, const char *fmt, ...) MYXID_PRINTF(2, 3);

static void emit(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		o->cap = o->cap * 2 + (n > 0 ? (size_t)n : 0);
		o->buf = xrealloc(o->buf, o->cap);
	}
}

static void render_plugins(struct out *o)
{
	static const char *const verdicts[] = { "allow", "deny", "next", "error", "pending" };
	int n = __atomic_load_n(&n_plugins, __ATOMIC_ACQUIRE);

	emit(o, "# HELP myxid_plugin_answers_total Plugin answers by verdict\n"
	     "# TYPE myxid_plugin_answers_total counter\n");
	for (int i = 0; i < n; i++)
		for (int v = 0; v < 4; v++)
			emit(o, "myxid_plugin_answers_total{plugin=\"%s\",answer=\"%s\"} %lld\n",
			     plugins[i].label, verdicts[v],
			     (long long)__atomic_load_n(&plugins[i].answers[v], __ATOMIC_RELAXED));
	emit(o, "# HELP myxid_plugin_latency_seconds Time from asking a plugin to its answer\n"
	     "# TYPE myxid_plugin_latency_seconds histogram\n");
	for (int i = 0; i < n; i++) {
		int64_t cum = 0;
		for (size_t b = 0; b < N_BUCKETS; b++) {
			cum += __atomic_load_n(&plugins[i].buckets[b], __ATOMIC_RELAXED);
			emit(o, "myxid_plugin_latency_seconds_bucket{plugin=\"%s\",le=\"%g\"} %lld\n",
			     plugins[i].label, bucket_s[b], (long long)cum);
		}
		emit(o, "myxid_plugin_latency_seconds_bucket{plugin=\"%s\",le=\"+Inf\"} %lld\n"
		     "myxid_plugin_latency_seconds_sum{plugin=\"%s\"} %.6f\n"
		     "myxid_plugin_latency_seconds_count{plugin=\"%s\"} %lld\n",
		     plugins[i].label,
		     (long long)__atomic_load_n(&plugins[i].count, __ATOMIC_RELAXED),
		     plugins[i].label,
		     (double)__atomic_load_n(&plugins[i].sum_us, __ATOMIC_RELAXED) / 1e6,
		     plugins[i].label,
		     (long long)__atomic_load_n(&plugins[i].count, __ATOMIC_RELAXED));
	}
}

static void render_broker(struct out *o, const struct metrics_broker *b)
{
	emit(o, "# HELP myxid_broker_connected 1 if the RabbitMQ link is up (absent without a broker)\n"
	     "# TYPE myxid_broker_connected gauge\n");
	if (b == NULL)
		return;
	emit(o, "myxid_broker_connected %d\n", b->connected);
	emit(o, "# HELP myxid_broker_messages_total Messages consumed from the node queue\n"
	     "# TYPE myxid_broker_messages_total counter\n"
	     "myxid_broker_messages_total %llu\n"
	     "# HELP myxid_broker_rejected_total Broker messages dropped (not a JSON object)\n"
	     "# TYPE myxid_broker_rejected_total counter\n"
	     "myxid_broker_rejected_total %llu\n"
	     "# HELP myxid_broker_published_total Events published through the broker\n"
	     "# TYPE myxid_broker_published_total counter\n"
	     "myxid_broker_published_total %llu\n"
	     "# HELP myxid_broker_reconnects_total Times the broker link was lost\n"
	     "# TYPE myxid_broker_reconnects_total counter\n"
	     "myxid_broker_reconnects_total %llu\n"
	     "# HELP myxid_broker_duplicates_total Redelivered after a reconnect but "
	     "already delivered: dropped\n"
	     "# TYPE myxid_broker_duplicates_total counter\n"
	     "myxid_broker_duplicates_total %llu\n"
	     "# HELP myxid_broker_bindings Bindings of the node queue\n"
	     "# TYPE myxid_broker_bindings gauge\n"
	     "myxid_broker_bindings %llu\n",
	     (unsigned long long)b->received, (unsigned long long)b->rejected,
	     (unsigned long long)b->published, (unsigned long long)b->reconnects,
	     (unsigned long long)b->duplicates, (unsigned long long)b->bindings);
}

char *metrics_render(const struct metrics_broker *b, size_t *len_r)
{
	struct out o = { xmalloc(8192), 0, 8192 };

	for (int m = 0; m < M_COUNT; m++)
		emit(&o, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", info[m].name,
		     info[m].help, info[m].name, info[m].type, info[m].name,
		     (long long)metrics_get((enum metric)m));
	emit(&o, "# HELP myxid_log_lines_dropped_total Log lines dropped because the "
	     "log target did not keep up\n"
	     "# TYPE myxid_log_lines_dropped_total counter\n"
	     "myxid_log_lines_dropped_total %llu\n", log_lines_dropped());
	render_plugins(&o);
	render_broker(&o, b);
	*len_r = o.len;
	return o.buf;
}
