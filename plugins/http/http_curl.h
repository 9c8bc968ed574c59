/*
 * Inside the http plugin's client (http_client.c: the FIFO, the slots and
 * the API; http_multi.c: libcurl's multi handle on the host's loop;
 * http_easy.c: one transfer's options, callbacks and outcome). Not for the
 * plugin itself: it sees http_client.h only.
 *
 * Ownership: the client owns every call until the call's callback has
 * been called or the call is abandoned. An active call owns its easy
 * handle, which is in the client's multi handle exactly while active.
 */
#ifndef MYXID_HTTP_CURL_H
#define MYXID_HTTP_CURL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "http_client.h"

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

#define HC_REASON_MAX (CURL_ERROR_SIZE + 96)

struct hc_sock;

struct hc_call {
	struct hc_client *c;
	struct hc_call *prev, *next;  /* the FIFO, or the active list */
	bool active;                  /* its easy handle is in the multi */
	char *body;                   /* owned; scrubbed */
	size_t len, sent;
	unsigned rewinds;             /* libcurl's retries that resent the body */
	char *answer;                 /* the body received, NUL-terminated */
	size_t answer_len, answer_cap;
	bool too_big, oom;
	hc_done_fn done;
	void *arg;
	struct myxid_timer *timer;    /* the deadline while it waits */
	uint64_t arrived_ms;
	unsigned budget_ms;           /* CURLOPT_TIMEOUT_MS given to libcurl */
	CURL *easy;
	struct curl_slist *headers;   /* scrubbed: may hold the bearer token */
	char errbuf[CURL_ERROR_SIZE];
};

struct hc_client {
	const struct myxid_host *host;
	struct myxid_instance *inst;
	struct hc_config cfg;         /* strings owned */
	CURLM *multi;
	struct myxid_timer *curl_timer;
	struct hc_sock *socks;        /* the sockets libcurl asked us to watch */
	struct hc_call *q_head, *q_tail;
	unsigned q_len;
	struct hc_call *active;
	unsigned n_active;
	bool down;                    /* the last attempt failed */
};

/* http_multi.c: a multi handle whose sockets and timer are the host's. */
int hc_multi_open(struct hc_client *c, char *err, size_t err_size);
void hc_multi_close(struct hc_client *c);

/* http_client.c: a transfer libcurl has finished with rc. */
void hc_transfer_done(struct hc_client *c, CURL *easy, CURLcode rc);

/* http_easy.c: set up k's easy handle (budget_ms set); 0 or -1. */
int hc_easy_setup(struct hc_client *c, struct hc_call *k);

/* The easy handle and header list freed, the header values scrubbed. */
void hc_easy_release(struct hc_call *k);

/* The request headers: ours, then the "Name: value\r\n" lines of extra.
 * NULL when out of memory. */
struct curl_slist *hc_header_list(const char *extra);

/* Scrub and free a header list. */
void hc_header_list_free(struct curl_slist *list);

/*
 * What a transfer that ended with rc (not CURLE_OK, not a timeout) means,
 * in words for the log: os_errno and errbuf are libcurl's, too_big says
 * our write callback refused the body. Returns true when the upstream
 * could not be reached at all (connect, name, TLS), which is worth one log
 * line of its own.
 */
bool hc_error_text(CURLcode rc, long os_errno, const char *errbuf,
		   bool too_big, char *out, size_t size);

/* The monotonic clock in ms. */
uint64_t hc_now_ms(void);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
