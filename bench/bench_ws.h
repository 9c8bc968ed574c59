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
 */
#ifndef BENCH_WS_H
#define BENCH_WS_H

#include "bench_stats.h"

/* Start the threads (run.o is set). Returns 0, or -1 after printing why. */
int ws_start(void);

/* Make every thread leave its loop and wait for them. */
void ws_stop(void);

/* Add the threads' delivery latencies and churn cycle times into these. */
void ws_merge(struct bench_hist *latency, struct bench_hist *cycle);

#endif
