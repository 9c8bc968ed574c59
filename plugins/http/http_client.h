/*
 * The http plugin's client: POSTs JSON to one upstream (the application)
 * on the instance's event loop, through the host's watches and timers
 * only, never blocking. The HTTP itself is libcurl's multi interface
 * (http_multi.c ties it to the host's loop, http_easy.c sets up each
 * transfer); what is ours:
 *
 *   - at most pool_size requests in flight, hence at most pool_size
 *     connections (libcurl keeps them alive and reuses them); requests that
 *     find every slot busy wait in a FIFO of at most queue_max;
 *   - every request has one deadline (timeout) covering its wait, the
 *     connect, TLS, the send and the whole answer; a connection attempt
 *     also has connect_timeout;
 *   - one retry, and only where it is safe: a request written on a reused
 *     keep-alive connection that the upstream closed before answering a
 *     single byte is sent again on a new connection (libcurl's own rule;
 *     we refuse a second rewind of the body, so never more than once);
 *   - redirects are not followed: a 3xx is handed back like any status;
 *   - when a connection attempt fails and no request is in flight, every
 *     waiting request is answered with that failure at once (the upstream
 *     is down: no point waiting for the deadline).
 *
 * Callbacks are never called from inside hc_post() or hc_abandon():
 * libcurl only moves a transfer when the loop calls us back, so the caller
 * may answer a request before its own call returns without re-entrancy
 * surprises.
 *
 * Ownership: the client copies the request body and scrubs it once done;
 * the result handed to the callback is borrowed for the call.
 */
#ifndef MYXID_HTTP_CLIENT_H
#define MYXID_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <myxid/plugin.h>

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

struct hc_config {
	const char *url;               /* http[s]://host[:port]/path */
	const char *upstream;          /* "host:port", for log lines */
	const char *ca_file;           /* NULL: the system's store */
	bool tls_verify;
	const char *extra_headers;     /* "Name: value\r\n"...; may hold a secret */
	unsigned pool_size;
	unsigned queue_max;
	unsigned timeout_ms;
	unsigned connect_timeout_ms;
	unsigned idle_timeout_ms;
	size_t max_body;
};

/* What became of a request. status is the HTTP status, or 0 when there is
 * no answer, and then error says why (a static or client-owned string). */
struct hc_result {
	int status;
	const char *body;      /* NUL-terminated; "" when none */
	size_t body_len;
	const char *error;
};

typedef void (*hc_done_fn)(void *arg, const struct hc_result *res);

struct hc_client;
struct hc_call;

/* A client for cfg (copied; the strings too). NULL with a reason. */
struct hc_client *hc_new(const struct myxid_host *host,
			 struct myxid_instance *inst, const struct hc_config *cfg,
			 char *err, size_t err_size);

/* Close every connection and free; pending calls are dropped without
 * their callbacks. */
void hc_free(struct hc_client *c);

/*
 * POST body (len bytes of JSON) and call done(arg, result) exactly once,
 * later, unless the call is abandoned first. Returns the call, or NULL
 * (out of memory, or queue_max requests already wait: *why says which)
 * and then done will not be called.
 */
struct hc_call *hc_post(struct hc_client *c, const char *body, size_t len,
			hc_done_fn done, void *arg, const char **why);

/* Forget a call: its callback will not be called. */
void hc_abandon(struct hc_client *c, struct hc_call *call);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
