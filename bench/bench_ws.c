/*
 * myxid-bench's WebSocket client connections (see bench_ws.h).
 *
 * Raw non-blocking sockets, one libevent event each (no bufferevents: at
 * 20,000 sockets their buffers would cost more memory than the server's).
 * Reads go into the thread's scratch buffer and frames are parsed in
 * place; only the tail of a frame cut by a read is kept per socket, in a
 * small stash allocated while needed.
 *
 * This file: opening, writing, closing, the threads; bench_ws_input.c:
 * reading and the protocol's steps.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "bench_run.h"
#include "bench_ws.h"
#include "bench_ws_conn.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define CLOSE_TIMEOUT_NS 2000000000ull   /* churn: our close unanswered */
/* The JS client's reconnect delays (clients/js/myxid.js DEFAULTS). */
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000

static struct worker *workers;
static unsigned n_workers;
static struct sockaddr_in server_addr[BENCH_MAX_TARGETS];

static void on_event(evutil_socket_t fd, short what, void *arg);

/* ------------------------------------------------------------ life cycle */

static void watch(struct wsconn *c, short what)
{
	event_del(&c->ev);
	event_assign(&c->ev, c->w->base, c->fd, what | EV_PERSIST, on_event, c);
	event_add(&c->ev, NULL);
}

void wsc_close(struct wsconn *c)
{
	if (c->fd >= 0) {
		event_del(&c->ev);
		close(c->fd);
		c->fd = -1;
	}
	free(c->stash);
	free(c->out);
	c->stash = c->out = NULL;
	c->stash_len = c->out_len = 0;
}

/* The next sockets of the first pass, within the concurrency. A connect
 * that fails at once comes back here through wsc_handshake_over(): the flag
 * keeps that from recursing once per socket. */
static void open_more(struct worker *w)
{
	if (w->opening)
		return;
	w->opening = true;
	while (w->next < w->n && w->inflight < w->limit &&
	       !__atomic_load_n(&run.stop, __ATOMIC_RELAXED)) {
		w->inflight++;
		wsc_open(&w->conns[w->next++]);
	}
	w->opening = false;
}

/* A first-pass handshake ended (ready or failed): make room for the next.
 * Churn does not count: its failed sockets are reopened by the tick. */
void wsc_handshake_over(struct wsconn *c)
{
	if (run.o.churn_s > 0)
		return;
	c->w->inflight--;
	open_more(c->w);
}

/* The JS client's _backoff(attempt), in nanoseconds. */
static uint64_t backoff_ns(struct worker *w, unsigned attempt)
{
	uint64_t base = BACKOFF_MIN_MS << (attempt < 16 ? attempt : 16);

	if (base > BACKOFF_MAX_MS)
		base = BACKOFF_MAX_MS;
	return (base / 2 + hs_rand(&w->rng) % (base / 2 + 1)) * 1000000u;
}

/*
 * Failover: c's server went away (c was ready), or a reconnect attempt
 * failed. Close, and try again later on one of the other servers: the
 * first attempt on socket number modulo their count, each retry on the
 * next one. The tick reopens it when its time comes.
 */
static void fail_over(struct wsconn *c, bool was_ready)
{
	uint64_t now = now_ns();
	unsigned others = run.o.n_targets - 1;

	if (was_ready) {
		c->away = true;
		c->attempts = 0;
		c->t_lost = now;
		if (__atomic_fetch_add(&run.lost_server, 1, __ATOMIC_RELAXED) == 0)
			__atomic_store_n(&run.t_first_lost, now, __ATOMIC_RELAXED);
		c->target = 1 + c->index % others;
	} else {
		__atomic_add_fetch(&run.retries, 1, __ATOMIC_RELAXED);
		c->target = 1 + c->target % others;
	}
	wsc_close(c);
	c->state = S_DEAD;
	c->retry_at = now + backoff_ns(c->w, c->attempts++);
	c->w->away++;
}

void wsc_back(struct wsconn *c, uint64_t now)
{
	c->away = false;
	c->state = S_READY;
	hist_add(&c->w->back, now - c->t_lost);
	__atomic_add_fetch(&run.reconnected, 1, __ATOMIC_RELAXED);
	bench_atomic_max(&run.t_last_back, now);
}

/* Something went wrong with c: count it, close, and go on (or, with
 * --failover, try another server). */
void wsc_fail(struct wsconn *c, const char *why, const void *data, size_t len)
{
	enum ws_state was = c->state;

	if (__atomic_load_n(&run.stop, __ATOMIC_RELAXED) && was == S_READY) {
		wsc_close(c);
		c->state = S_DEAD;
		return;
	}
	if (run.o.n_targets > 1 && (was == S_READY || c->away)) {
		fail_over(c, was == S_READY);
		return;
	}
	__atomic_add_fetch(&run.conn_errors, 1, __ATOMIC_RELAXED);
	bench_note("socket %u: %s%s%.*s", c->index, why, len ? ": " : "",
		   (int)(len > 200 ? 200 : len), (const char *)data);
	wsc_close(c);
	c->state = S_DEAD;
	if (was != S_READY && was != S_CLOSING && run.o.churn_s == 0) {
		__atomic_add_fetch(&run.failed, 1, __ATOMIC_RELAXED);
		wsc_handshake_over(c);
	}
}

void wsc_open(struct wsconn *c)
{
	struct sockaddr_in src = { .sin_family = AF_INET };
	int one = 1;
	uint64_t r = hs_rand(&c->w->rng);

	c->t_start = now_ns();
	memcpy(c->mask, &r, 4);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		c->state = S_CONNECTING;
		wsc_fail(c, "socket", strerror(errno), strlen(strerror(errno)));
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* The port is picked at connect(), per destination: each source
	 * address has its own ~28,000 ports towards the server. */
	setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	src.sin_addr.s_addr = htonl(0x7f000001u + c->index % run.o.sources);
	c->state = S_CONNECTING;
	if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) < 0 ||
	    (connect(c->fd, (struct sockaddr *)&server_addr[c->target],
		     sizeof(server_addr[0])) < 0 &&
	     errno != EINPROGRESS)) {
		const char *e = strerror(errno);

		wsc_fail(c, "connect", e, strlen(e));
		return;
	}
	event_assign(&c->ev, c->w->base, c->fd, EV_WRITE | EV_PERSIST, on_event, c);
	event_add(&c->ev, NULL);
}

/* ------------------------------------------------------------ output */

/* Write, keeping what the socket does not take for EV_WRITE. */
static void conn_write(struct wsconn *c, const void *data, size_t len)
{
	ssize_t n = 0;

	if (c->out_len == 0) {
		n = write(c->fd, data, len);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			const char *e = strerror(errno);

			wsc_fail(c, "write", e, strlen(e));
			return;
		}
		if (n < 0)
			n = 0;
		if ((size_t)n == len)
			return;
	}
	c->out = realloc(c->out, c->out_len + len - (size_t)n);
	if (c->out == NULL) {
		fprintf(stderr, "myxid-bench: out of memory\n");
		exit(1);
	}
	memcpy(c->out + c->out_len, (const char *)data + n, len - (size_t)n);
	c->out_len += len - (size_t)n;
	watch(c, EV_READ | EV_WRITE);
}

static void flush_out(struct wsconn *c)
{
	ssize_t n = write(c->fd, c->out, c->out_len);

	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR) {
			const char *e = strerror(errno);

			wsc_fail(c, "write", e, strlen(e));
		}
		return;
	}
	memmove(c->out, c->out + n, c->out_len - (size_t)n);
	c->out_len -= (size_t)n;
	if (c->out_len == 0) {
		free(c->out);
		c->out = NULL;
		watch(c, EV_READ);
	}
}

/* RFC 6455 5.3: client frames are masked. */
void wsc_send_frame(struct wsconn *c, int opcode, const void *data, size_t len)
{
	unsigned char f[MAX_OUT_FRAME], *p = f;
	const unsigned char *d = data;

	*p++ = (unsigned char)(0x80 | opcode);
	if (len < 126) {
		*p++ = (unsigned char)(0x80 | len);
	} else {
		*p++ = 0x80 | 126;
		*p++ = (unsigned char)(len >> 8);
		*p++ = (unsigned char)len;
	}
	memcpy(p, c->mask, 4);
	p += 4;
	for (size_t i = 0; i < len; i++)
		p[i] = d[i] ^ c->mask[i & 3];
	conn_write(c, f, (size_t)(p - f) + len);
}

void wsc_send_text(struct wsconn *c, const char *fmt, ...)
{
	char text[MAX_OUT_FRAME - 16];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof(text))
		wsc_send_frame(c, 1, text, (size_t)n);
}

/* The opening handshake's GET (%k in the path: the key text). */
static void send_request(struct wsconn *c)
{
	char path[1024], req[2048], key[256];
	const char *p = run.o.path;
	size_t len = 0, klen;

	/* Plain mode subscribes by URL. */
	bench_key_text(c->key, key, sizeof(key));
	klen = strlen(key);
	while (*p && len + klen + 1 < sizeof(path)) {
		if (p[0] == '%' && p[1] == 'k') {
			memcpy(path + len, key, klen);
			len += klen;
			p += 2;
		} else {
			path[len++] = *p++;
		}
	}
	path[len] = '\0';
	hs_new_key(c->wskey, &c->w->rng);
	len = hs_request(req, sizeof(req), run.o.target[c->target].host,
			 run.o.target[c->target].port, path, c->wskey,
			 run.o.deflate);
	c->state = S_HANDSHAKE;
	conn_write(c, req, len);
}

/* ------------------------------------------------------------ events */

static void on_connected(struct wsconn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
		const char *e = strerror(err ? err : errno);

		wsc_fail(c, "connect", e, strlen(e));
		return;
	}
	watch(c, EV_READ);
	send_request(c);
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
	struct wsconn *c = arg;

	if (c->state == S_CONNECTING) {
		on_connected(c);
		return;
	}
	if ((what & EV_WRITE) && c->out_len > 0)
		flush_out(c);
	if ((what & EV_READ) && c->fd >= 0)
		wsc_on_readable(c);
}

/* ------------------------------------------------------------ threads */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	uint64_t now;

	if (__atomic_load_n(&run.stop, __ATOMIC_RELAXED)) {
		event_base_loopbreak(w->base);
		return;
	}
	if (w->away > 0) {
		/* Failover: the sockets whose retry time has come. */
		now = now_ns();
		for (unsigned i = 0; i < w->n && w->away > 0; i++) {
			struct wsconn *c = &w->conns[i];

			if (c->away && c->state == S_DEAD && c->retry_at <= now) {
				w->away--;
				wsc_open(c);
			}
		}
		return;
	}
	if (run.o.churn_s == 0)
		return;
	/* Churn: sockets that failed start their next cycle from here, and a
	 * server that leaves our close unanswered is given up on. */
	now = now_ns();
	for (unsigned i = 0; i < w->n; i++) {
		struct wsconn *c = &w->conns[i];

		if (c->state == S_DEAD)
			wsc_open(c);
		else if (c->state == S_CLOSING && now - c->t_start > CLOSE_TIMEOUT_NS)
			wsc_fail(c, "the server did not close the connection within 2 s",
				 NULL, 0);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	open_more(w);
	event_base_dispatch(w->base);
	for (unsigned i = 0; i < w->n; i++)
		wsc_close(&w->conns[i]);
	return NULL;
}

int ws_start(void)
{
	struct timeval tick = { 0, 20000 };
	unsigned n = run.o.connections, t = run.o.threads;

	for (unsigned i = 0; i < run.o.n_targets; i++) {
		server_addr[i].sin_family = AF_INET;
		server_addr[i].sin_port = htons(run.o.target[i].port);
		if (inet_pton(AF_INET, run.o.target[i].host, &server_addr[i].sin_addr) != 1) {
			fprintf(stderr, "myxid-bench: %s is not an IPv4 address\n",
				run.o.target[i].host);
			return -1;
		}
	}
	n_workers = t;
	workers = calloc(t, sizeof(*workers));
	if (workers == NULL)
		return -1;
	for (unsigned i = 0; i < t; i++) {
		struct worker *w = &workers[i];
		struct event_config *cfg = event_config_new();
		unsigned first = (unsigned)((uint64_t)n * i / t);
		unsigned last = (unsigned)((uint64_t)n * (i + 1) / t);

		/* Nothing crosses threads through libevent: no locks. */
		event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
		w->base = event_base_new_with_config(cfg);
		event_config_free(cfg);
		w->id = i;
		w->n = last - first;
		w->conns = calloc(w->n ? w->n : 1, sizeof(*w->conns));
		w->scratch = malloc(SCRATCH_SIZE);
		w->rng = 0x9e3779b97f4a7c15ull * (i + 1) ^ now_ns();
		if (w->rng == 0)
			w->rng = 1;
		w->limit = run.o.churn_s > 0 ? w->n
			 : (run.o.concurrency * (i + 1) / t - run.o.concurrency * i / t);
		if (w->limit == 0)
			w->limit = 1;
		if (w->base == NULL || w->conns == NULL || w->scratch == NULL) {
			fprintf(stderr, "myxid-bench: cannot set up thread %u\n", i);
			return -1;
		}
		for (unsigned j = 0; j < w->n; j++) {
			w->conns[j].fd = -1;
			w->conns[j].w = w;
			w->conns[j].index = first + j;
			w->conns[j].key = (first + j) % run.o.keys;
		}
		w->tick = event_new(w->base, -1, EV_PERSIST, on_tick, w);
		event_add(w->tick, &tick);
	}
	for (unsigned i = 0; i < t; i++) {
		if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
			fprintf(stderr, "myxid-bench: pthread_create failed\n");
			return -1;
		}
	}
	return 0;
}

void ws_stop(void)
{
	__atomic_store_n(&run.stop, true, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < n_workers; i++)
		pthread_join(workers[i].thread, NULL);
}

void ws_merge(struct bench_hist *latency, struct bench_hist *cycle, struct bench_hist *back)
{
	for (unsigned i = 0; i < n_workers; i++) {
		hist_merge(latency, &workers[i].lat);
		hist_merge(cycle, &workers[i].cycle);
		hist_merge(back, &workers[i].back);
	}
}
