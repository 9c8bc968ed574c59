/*
 * The state one myxid-bench run shares between its threads: the options
 * (set by main before any thread starts, read-only afterwards) and the
 * counters the socket threads, the publisher and main update with atomics.
 *
 * Delivery accounting: every published message j has a slot in
 * run.delivered[j], counted up by the socket threads; a message is
 * "complete" when its count reaches the number of ready sockets on its
 * key (run.key_ready[key]). Counts beyond that are duplicates. The
 * publisher's window (--rate 0) is published - complete. With --expect
 * (a cluster's other nodes) nothing is published here: every message is
 * expected from the start, published by the generator of another node.
 */
#ifndef BENCH_RUN_H
#define BENCH_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "bench_stats.h"

enum bench_mode { MODE_MYXI = 0, MODE_PLAIN };

/* A server's address (loopback, IPv4). */
struct bench_target {
	char host[64];
	uint16_t port;
};

/* --url and up to this many --failover servers less one. */
#define BENCH_MAX_TARGETS 16
enum bench_pub { PUB_NONE = 0, PUB_AMQP, PUB_HTTP };

struct bench_opts {
	/* target[0]: --url; after it the --failover servers, where a ready
	 * socket whose server went away reconnects, as a browser behind a load
	 * balancer would. path (--url's) may hold %k (plain mode). */
	struct bench_target target[BENCH_MAX_TARGETS];
	unsigned n_targets;
	char *path;
	enum bench_mode mode;
	unsigned connections;
	unsigned sources;
	unsigned concurrency;
	char *token;                 /* NULL: no Authenticate */
	char *exchange;
	unsigned keys;
	char *key_format;
	enum bench_pub publish;
	char *amqp_url;
	char *publish_url;
	char *publish_key;
	unsigned publish_conns;      /* parallel HTTP publish connections */
	uint64_t messages;
	bool expect_only;            /* --expect: another generator publishes
				      * the messages; only count them here */
	double rate;                 /* messages/s; 0: window flow control */
	unsigned window;
	double hold_s, drain_s, churn_s;
	char *hold_until;            /* ready: wait for this file, then hold_s */
	bool resume;                 /* failover: Subscribe with "since" */
	int server_pid;              /* 0: none */
	unsigned threads;
	char *json_path;
	bool quiet;
	bool deflate;                /* offer permessage-deflate */
	unsigned line_bytes;         /* a log line this long in each payload */
};

/* Counters; all updated with __atomic builtins (relaxed is enough). */
struct bench_run {
	struct bench_opts o;

	/* Connection phase (and churn). */
	uint64_t ready;              /* sockets that reached ready */
	uint64_t failed;             /* sockets that never did */
	uint64_t t_last_ready;       /* now_ns() of the last one */
	uint64_t *key_ready;         /* per key: ready sockets subscribed */
	uint64_t cycles;             /* churn: completed cycles */

	/* Failover (--failover): sockets whose server went away while ready,
	 * those subscribed again on another server, reconnect attempts that
	 * failed, and when the first went and the last came back. */
	uint64_t lost_server;
	uint64_t reconnected;
	uint64_t retries;
	uint64_t not_recovered;      /* --resume: Subscribed "recovered":false */
	uint64_t t_first_lost;
	uint64_t t_last_back;

	/* Delivery phase. */
	uint32_t *delivered;         /* per message: deliveries counted */
	uint64_t published;          /* messages handed to the server */
	uint64_t publish_failed;     /* refused by the server (not expected) */
	uint64_t expected;           /* sum of key_ready over published */
	uint64_t complete;           /* messages with every delivery in */
	uint64_t received;           /* deliveries counted (no duplicates) */
	uint64_t duplicates;
	uint64_t bad_frames;         /* could not find seq/t, or seq unknown */
	uint64_t conn_errors;        /* lost sockets, refusals, bad replies */
	uint64_t wire_bytes;         /* read from the sockets once ready */
	uint64_t deflated;           /* compressed messages received */
	uint64_t t_first_publish;
	uint64_t t_last_delivery;
	bool publishing_done;
	bool stop;                   /* socket threads: leave the loop */

	/* Wakes the publisher when it waits on the window (an eventfd). */
	int wake_fd;
	bool publisher_waiting;
};

extern struct bench_run run;

/* The key text of key number k (printf of --key-format), into buf. */
void bench_key_text(unsigned k, char *buf, size_t size);

/* Print one error line (the first few of each kind only). */
void bench_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* *at = max(*at, v), atomically (threads race to note the latest time). */
void bench_atomic_max(uint64_t *at, uint64_t v);

/* Socket threads: a delivery of message seq sent at t_ns arrived at now. */
void bench_count_delivery(uint64_t seq, uint64_t t_ns, uint64_t now,
			  struct bench_hist *lat);

#endif
