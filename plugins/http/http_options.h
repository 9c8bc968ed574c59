/*
 * The http plugin's options, checked and turned into the client's
 * configuration (see myxid-http(7) for what each means):
 *
 *   url https://app.internal:8443/myxid/auth   (required; http or https)
 *   bearer_token SECRET         Authorization: Bearer SECRET (never logged)
 *   header "X-Name: value"      extra request header; repeatable
 *   pool_size 8                 connections to the application, 1..256
 *   queue_max 4096              requests waiting for a connection
 *   timeout 3s                  per request, from arrival to the last byte
 *   connect_timeout 1s          per connection attempt
 *   idle_timeout 15s            keep-alive connections unused this long close
 *   max_body 64k                largest answer body
 *   ca_file ca.pem              trust these CAs (default: the system's)
 *   tls_verify yes              no: accept any certificate (tests only!)
 *   send_attribute NAME         policy: pass the user's attribute NAME; repeatable
 *   send_header NAME            pass the client's upgrade header NAME (kept by
 *                               the daemon's plugin_header NAME); repeatable
 *
 * The host name in url is left to libcurl, which looks it up when it
 * opens a connection (its threaded resolver: never blocking the loop) and
 * tries every address it gets.
 */
#ifndef MYXID_HTTP_OPTIONS_H
#define MYXID_HTTP_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <myxid/plugin.h>

#include "http_client.h"

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

struct http_options {
	struct hc_config client;     /* its strings point into this struct */
	bool https;
	char *host;                  /* as written in the url, unbracketed */
	char *port;
	char *host_header;
	char *path;
	char *url;                   /* scheme://host_header path */
	char *headers;               /* "Name: value\r\n"...; holds the secret */
	char *ca_file;               /* resolved path, or NULL */
	bool tls_verify;
	unsigned max_body;            /* client.max_body, as the table parses it */
	char **attrs;                /* send_attribute names */
	size_t n_attrs;
	char **client_headers;       /* send_header names */
	size_t n_client_headers;
};

/* Parse and check opts. 0, or -1 with a message
 * (and *bad_opt_r when one option is to blame). */
int http_options_parse(struct http_options *o, const struct myxid_host *host,
		       struct myxid_instance *inst, const struct myxid_opt *opts,
		       size_t n_opts, char *err, size_t err_size,
		       const struct myxid_opt **bad_opt_r);

void http_options_free(struct http_options *o);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
