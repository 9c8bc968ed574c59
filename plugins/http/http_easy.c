/*
 * One transfer of the http plugin's client: the options of its libcurl
 * easy handle, the body and answer callbacks, and the words for how a
 * transfer failed. hc_header_list() and hc_error_text() are pure and
 * unit-tested (tests/unit/test_http_client.c).
 */
#define _POSIX_C_SOURCE 200809L

#include "http_curl.h"
#include "plugin_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t hc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ------------------------------------------------------------ headers */

void hc_header_list_free(struct curl_slist *list)
{
	for (struct curl_slist *l = list; l != NULL; l = l->next)
		pu_scrub(l->data, strlen(l->data));
	curl_slist_free_all(list);
}

static struct curl_slist *append(struct curl_slist *list, const char *line,
				 bool *oom)
{
	struct curl_slist *grown = curl_slist_append(list, line);

	if (grown == NULL)
		*oom = true;
	return grown != NULL ? grown : list;
}

/* Built per request and scrubbed after it: the extra lines hold the
 * bearer token. "Expect:" stops libcurl asking for 100-continue (a round
 * trip) before larger policy documents. */
struct curl_slist *hc_header_list(const char *extra)
{
	static const char *const ours[] = {
		"Content-Type: application/json", "Accept: application/json",
		"Expect:", NULL
	};
	struct curl_slist *list = NULL;
	bool oom = false;
	char line[8192];

	for (size_t i = 0; ours[i] != NULL; i++)
		list = append(list, ours[i], &oom);
	while (extra != NULL && *extra != '\0' && !oom) {
		size_t n = strcspn(extra, "\r\n");

		if (n > 0 && n < sizeof(line)) {
			memcpy(line, extra, n);
			line[n] = '\0';
			list = append(list, line, &oom);
			pu_scrub(line, n);
		}
		extra += n;
		extra += strspn(extra, "\r\n");
	}
	if (oom) {
		hc_header_list_free(list);
		return NULL;
	}
	return list;
}

/* ------------------------------------------------------------ callbacks */

/* The body goes through a read callback rather than CURLOPT_POSTFIELDS
 * so that libcurl must ask us to rewind it for a retry: the only way to
 * hold its retry of a dead reused connection to exactly one. */
static size_t read_body(char *buf, size_t size, size_t nitems, void *arg)
{
	struct hc_call *k = arg;
	size_t n = size * nitems;

	if (n > k->len - k->sent)
		n = k->len - k->sent;
	memcpy(buf, k->body + k->sent, n);
	k->sent += n;
	return n;
}

static int seek_body(void *arg, curl_off_t offset, int origin)
{
	struct hc_call *k = arg;

	if (origin != SEEK_SET || offset != 0 || ++k->rewinds > 1)
		return CURL_SEEKFUNC_FAIL;
	k->sent = 0;
	return CURL_SEEKFUNC_OK;
}

/* max_body is ours to enforce: libcurl's CURLOPT_MAXFILESIZE catches an
 * announced Content-Length only, not a chunked or close-delimited body. */
static size_t write_answer(char *data, size_t size, size_t nmemb, void *arg)
{
	struct hc_call *k = arg;
	size_t n = size * nmemb;
	size_t max = k->c->cfg.max_body;

	if (n > max - k->answer_len) {
		k->too_big = true;
		return 0;
	}
	if (k->answer_len + n + 1 > k->answer_cap) {
		size_t cap = k->answer_cap ? k->answer_cap : 1024;
		char *p;

		while (cap < k->answer_len + n + 1)
			cap *= 2;
		p = realloc(k->answer, cap);
		if (p == NULL) {
			k->oom = true;
			return 0;
		}
		k->answer = p;
		k->answer_cap = cap;
	}
	memcpy(k->answer + k->answer_len, data, n);
	k->answer_len += n;
	k->answer[k->answer_len] = '\0';
	return n;
}

/* ------------------------------------------------------------ set-up */

static CURLcode tls_options(CURL *e, const struct hc_config *cfg)
{
	CURLcode rc = CURLE_OK;
	long verify = cfg->tls_verify ? 1L : 0L;

	/* libcurl verifies the chain and the host name (or IP address) by
	 * default; tls_verify no is the one way to switch both off. */
	if (cfg->ca_file != NULL)
		rc = curl_easy_setopt(e, CURLOPT_CAINFO, cfg->ca_file);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, verify);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
	return rc;
}

static CURLcode transfer_options(CURL *e, struct hc_call *k)
{
	const struct hc_config *cfg = &k->c->cfg;
	/* libcurl counts idle time in whole seconds: round up, so that a
	 * connection is never dropped before idle_timeout. */
	long idle_s = (long)((cfg->idle_timeout_ms + 999) / 1000);
	CURLcode rc = CURLE_OK;

#define SET(opt, val) if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, val)
	SET(CURLOPT_URL, cfg->url);
	SET(CURLOPT_PATH_AS_IS, 1L);                /* the path as written */
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_NOSIGNAL, 1L);                  /* threads: no SIGALRM */
	SET(CURLOPT_PRIVATE, k);
	SET(CURLOPT_ERRORBUFFER, k->errbuf);
	SET(CURLOPT_USERAGENT, "myxid");
	SET(CURLOPT_HTTPHEADER, k->headers);
	SET(CURLOPT_POST, 1L);
	SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)k->len);
	SET(CURLOPT_READFUNCTION, read_body);
	SET(CURLOPT_READDATA, k);
	SET(CURLOPT_SEEKFUNCTION, seek_body);
	SET(CURLOPT_SEEKDATA, k);
	SET(CURLOPT_WRITEFUNCTION, write_answer);
	SET(CURLOPT_WRITEDATA, k);
	SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)cfg->max_body);
	SET(CURLOPT_TIMEOUT_MS, (long)k->budget_ms);
	SET(CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->connect_timeout_ms);
	SET(CURLOPT_MAXAGE_CONN, idle_s > 0 ? idle_s : 1L);
	/* Removing a transfer still resolving would otherwise wait for the
	 * resolver thread, on the loop; this leaves the thread to finish. */
	SET(CURLOPT_QUICK_EXIT, 1L);
#undef SET
	if (rc == CURLE_OK)
		rc = tls_options(e, cfg);
	return rc;
}

int hc_easy_setup(struct hc_client *c, struct hc_call *k)
{
	k->errbuf[0] = '\0';
	k->headers = hc_header_list(c->cfg.extra_headers);
	k->easy = curl_easy_init();
	if (k->headers == NULL || k->easy == NULL ||
	    transfer_options(k->easy, k) != CURLE_OK) {
		hc_easy_release(k);
		return -1;
	}
	return 0;
}

void hc_easy_release(struct hc_call *k)
{
	if (k->easy != NULL)
		curl_easy_cleanup(k->easy);
	k->easy = NULL;
	hc_header_list_free(k->headers);
	k->headers = NULL;
}

/* ------------------------------------------------------------ outcome */

bool hc_error_text(CURLcode rc, long os_errno, const char *errbuf,
		   bool too_big, char *out, size_t size)
{
	const char *detail = errbuf != NULL && errbuf[0] != '\0' ? errbuf :
		curl_easy_strerror(rc);

	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		/* Every address was tried; errno is the last attempt's. */
		if (os_errno != 0)
			snprintf(out, size, "connect: %s", strerror((int)os_errno));
		else
			snprintf(out, size, "connect: %s", detail);
		return true;
	case CURLE_COULDNT_RESOLVE_HOST:
		snprintf(out, size, "cannot resolve: %s", detail);
		return true;
	case CURLE_PEER_FAILED_VERIFICATION:
		snprintf(out, size, "certificate verification failed: %s", detail);
		return true;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		snprintf(out, size, "TLS handshake: %s", detail);
		return true;
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_FAIL_REWIND:     /* our refusal of a second retry */
		snprintf(out, size, "connection closed without a response");
		return false;
	case CURLE_PARTIAL_FILE:
		snprintf(out, size, "connection closed in the middle of the "
			 "response");
		return false;
	case CURLE_WRITE_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
		snprintf(out, size, too_big || rc == CURLE_FILESIZE_EXCEEDED ?
			 "body over the size limit (max_body)" :
			 "out of memory for the body");
		return false;
	default:
		snprintf(out, size, "%s", detail);
		return false;
	}
}
