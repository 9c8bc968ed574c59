/*
 * Inside bench_ws: a client socket and its thread, shared by the two files
 * that drive them: bench_ws.c (opening, writing, closing, the threads) and
 * bench_ws_input.c (reading, frames, the protocol's steps). Nothing else
 * includes this.
 */
#ifndef BENCH_WS_CONN_H
#define BENCH_WS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "bench_handshake.h"
#include "bench_stats.h"

#define SCRATCH_SIZE (256 * 1024)
#define MAX_HEAD 8192                    /* largest 101 response head */
#define MAX_OUT_FRAME 2048               /* our frames: actions, pongs */

enum ws_state {
	S_IDLE = 0, S_CONNECTING, S_HANDSHAKE, S_WELCOME, S_AUTH, S_SUBSCRIBE,
	S_READY, S_CLOSING, S_DEAD
};

struct worker;

/* One client socket. stash and out are its own (malloc'd while needed,
 * freed by wsc_close); it belongs to one worker and is only touched on
 * that worker's thread. */
struct wsconn {
	int fd;
	enum ws_state state;
	unsigned index;                  /* global socket number */
	unsigned key;                    /* key number: index % keys */
	unsigned char mask[4];
	uint64_t t_start;                /* connect() of this cycle */
	unsigned target;                 /* run.o.target[] it connects to */
	/* Failover: away since t_lost, trying again at retry_at, attempt
	 * number attempts (the backoff's exponent). */
	bool away;
	unsigned attempts;
	uint64_t t_lost, retry_at;
	/* --resume: the key's history position of the last event received
	 * (or of the first Subscribed), and the epoch it belongs to. */
	uint64_t pos;
	char epoch[72];
	unsigned char *stash;            /* a partial frame (or head) */
	size_t stash_len;
	unsigned char *out;              /* bytes write() did not take */
	size_t out_len;
	char wskey[WS_KEY_LEN + 1];
	struct worker *w;
	struct event ev;
};

struct worker {
	unsigned id;
	pthread_t thread;
	struct event_base *base;
	struct event *tick;
	struct wsconn *conns;
	unsigned n;                      /* sockets of this thread */
	unsigned next;                   /* next to open (first pass) */
	unsigned inflight;               /* handshakes under way */
	unsigned limit;                  /* this thread's share of concurrency */
	bool opening;                    /* inside open_more() */
	uint64_t rng;
	unsigned char *scratch;          /* SCRATCH_SIZE: every read lands here */
	void *inflater;                  /* z_stream for compressed messages, made
					  * at the first one (lives as the thread) */
	unsigned char *inflated;         /* SCRATCH_SIZE: a message inflated */
	struct bench_hist lat;           /* publish to receive */
	struct bench_hist cycle;         /* churn: connect to Subscribed */
	struct bench_hist back;          /* failover: server lost to Subscribed */
	unsigned away;                   /* failover: sockets waiting to retry */
};

/* bench_ws.c */
void wsc_open(struct wsconn *c);
void wsc_close(struct wsconn *c);
/* Count an error (printing the first few), close c, go on with the next. */
void wsc_fail(struct wsconn *c, const char *why, const void *data, size_t len);
/* A socket back from failover is subscribed again (bench_ws_input.c). */
void wsc_back(struct wsconn *c, uint64_t now);
/* A first-pass handshake ended, ready or failed. */
void wsc_handshake_over(struct wsconn *c);
/* One masked frame; len < MAX_OUT_FRAME - 8. */
void wsc_send_frame(struct wsconn *c, int opcode, const void *data, size_t len);
void wsc_send_text(struct wsconn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* bench_ws_input.c: the socket is readable. */
void wsc_on_readable(struct wsconn *c);

#endif
