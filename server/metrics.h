/*
 * Counters and gauges for GET /metrics (Prometheus text format 0.0.4).
 * Updated from every event loop and the broker thread with relaxed atomic
 * adds: a scrape sees each number exact, if not all of them at one instant.
 */
#ifndef MYXID_METRICS_H
#define MYXID_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum metric {
	/* counters */
	M_CONNECTIONS_TOTAL,      /* TCP connections accepted */
	M_HANDSHAKES_REFUSED,     /* HTTP errors before an upgrade */
	M_LIMIT_REFUSED,          /* 503: connection limits */
	M_MESSAGES_IN,            /* WebSocket messages from clients */
	M_BYTES_IN,
	M_BYTES_OUT,
	M_PUBLISHED,              /* events handed to local fan-out */
	M_DELIVERIES,             /* frames queued to sockets */
	M_DROPPED_FRAMES,         /* frames not queued: socket closing */
	M_SLOW_CLOSES,            /* sockets closed over max_output_buffer */
	M_PING_TIMEOUTS,
	M_PROTOCOL_CLOSES,        /* closed for a protocol violation */
	M_RATE_LIMITED,           /* actions refused by max_actions_per_second */
	M_AUTH_CACHE_HITS,
	M_POLICY_CACHE_HITS,
	M_RELOADS,
	M_RELOAD_FAILURES,
	M_HISTORY_REPLAYED,       /* events replayed to resuming or late sockets */
	M_HISTORY_RECOVERED,      /* resumes that got every missed event */
	M_HISTORY_NOT_RECOVERED,  /* resumes answered recovered:false */
	M_SSE_STREAMS,            /* SSE requests answered 200 */
	M_SSE_REFUSED,            /* SSE requests answered with an error status */
	M_PRESENCE_EVENTS,        /* Presence events built (one per key per flush) */
	/* gauges */
	M_CONNECTIONS_OPEN,       /* TCP connections, upgraded or not */
	M_SOCKETS_OPEN,           /* upgraded WebSockets */
	M_SOCKETS_AUTHENTICATED,
	M_SUBSCRIPTIONS,
	M_HISTORY_BYTES,          /* memory held by history (swept each second) */
	M_SSE_OPEN,               /* SSE streams sending events (also in M_SOCKETS_OPEN) */
	M_COUNT
};

void metrics_add(enum metric m, int64_t delta);
static inline void metrics_inc(enum metric m) { metrics_add(m, 1); }
int64_t metrics_get(enum metric m);

/* One plugin answer: verdict as enum myxid_verdict, latency in µs. */
void metrics_plugin_answer(const char *label, int verdict, uint64_t micros);

/* For /healthz: call fn for each plugin seen, with failing = its latest
 * answer was an error (backend down, timeouts). Returns how many fail. */
int metrics_plugin_health(void (*fn)(void *arg, const char *label, int failing),
			  void *arg);

/*
 * The broker link's numbers as /metrics shows them. A plain copy the caller
 * takes from the broker: metrics sits below the broker (which counts into
 * it) and must not include it back.
 */
struct metrics_broker {
	bool connected;
	uint64_t received, rejected, published, reconnects, duplicates;
	uint64_t bindings;
};

/* The whole exposition (malloc'd, NUL-terminated); b is NULL without a
 * broker. */
char *metrics_render(const struct metrics_broker *b, size_t *len_r);

#endif
