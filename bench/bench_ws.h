/*
 * The WebSocket side of myxid-bench: --threads socket threads, each with
 * its own event_base, its share of the --connections sockets and its own
 * read scratch buffer.
 *
 * Normal runs: each thread opens its sockets, at most its share of
 * --concurrency handshakes at a time, takes each through the handshake
 * (myxi: Welcome, [Authenticate], Subscribe, Subscribed; plain: the 101),
 * then keeps it open and counts deliveries until ws_stop().
 *
 * Churn (--churn): every socket cycles connect, handshake, ..., Subscribed,
 * close, again, until ws_stop().
 *
 * Failover (--failover): a ready socket whose server closes or drops it
 * reconnects, after the Myxi JS client's backoff (clients/js/myxid.js:
 * attempt k waits a random time in [d/2, d], d = min(30 s, 0.5 s * 2^k)),
 * to one of the other servers, spread over them by socket number as a load
 * balancer would, and subscribes again to the same key.
 */
#ifndef BENCH_WS_H
#define BENCH_WS_H

#include "bench_stats.h"

/* Start the threads (run.o is set). Returns 0, or -1 after printing why. */
int ws_start(void);

/* Make every thread leave its loop and wait for them. */
void ws_stop(void);

/* Add the threads' delivery latencies, churn cycle times and failover
 * times (server lost to subscribed again) into these. */
void ws_merge(struct bench_hist *latency, struct bench_hist *cycle, struct bench_hist *back);

#endif
