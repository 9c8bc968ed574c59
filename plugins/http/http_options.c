/*
 * The http plugin's options: see http_options.h.
 */
#define _POSIX_C_SOURCE 200809L

#include "http_options.h"
#include "plugin_options.h"
#include "plugin_util.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_POOL 256u
#define MAX_QUEUE 1000000u
#define MAX_TIME_MS 3600000ull
#define MAX_BODY (16ull << 20)
#define HEADERS_MAX 8192u

/* http[s]://host[:port][/path]: no user info, no fragment. */
static int parse_url(struct http_options *o, const char *url, char *err,
		     size_t err_size)
{
	const char *p, *host_end, *path;
	size_t host_len;

	if (strncmp(url, "https://", 8) == 0) {
		o->https = true;
		p = url + 8;
	} else if (strncmp(url, "http://", 7) == 0) {
		p = url + 7;
	} else {
		pu_err(err, err_size, "url must start with http:// or https://");
		return -1;
	}
	path = p + strcspn(p, "/?");
	if (memchr(p, '@', (size_t)(path - p)) != NULL) {
		pu_err(err, err_size, "no credentials in the url: use "
		       "bearer_token or header");
		return -1;
	}
	if (strpbrk(url, "# \t\r\n") != NULL) {
		pu_err(err, err_size, "the url holds a fragment, a space or a "
		       "line break");
		return -1;
	}
	if (*p == '[') {
		host_end = memchr(p, ']', (size_t)(path - p));
		if (host_end == NULL) {
			pu_err(err, err_size, "unclosed [ in the url");
			return -1;
		}
		o->host = strndup(p + 1, (size_t)(host_end - p - 1));
		host_end++;
	} else {
		host_end = p + strcspn(p, ":/?");
		o->host = strndup(p, (size_t)(host_end - p));
	}
	if (o->host == NULL || o->host[0] == '\0') {
		pu_err(err, err_size, "the url has no host");
		return -1;
	}
	if (*host_end == ':' && host_end + 1 < path) {
		unsigned long long port;
		char *digits = strndup(host_end + 1, (size_t)(path - host_end - 1));

		if (digits == NULL || pu_parse_number(digits, false, 65535, &port) < 0 ||
		    port == 0) {
			free(digits);
			pu_err(err, err_size, "bad port in the url");
			return -1;
		}
		o->port = digits;
	} else if (host_end != path) {
		pu_err(err, err_size, "bad host or port in the url");
		return -1;
	} else {
		o->port = strdup(o->https ? "443" : "80");
	}
	host_len = strlen(o->host) + strlen(o->port) + 4;
	o->host_header = malloc(host_len);
	o->path = *path == '/' ? strdup(path) : malloc(strlen(path) + 2);
	if (o->port == NULL || o->host_header == NULL || o->path == NULL) {
		pu_err(err, err_size, "out of memory");
		return -1;
	}
	if (*path != '/')
		sprintf(o->path, "/%s", path);
	snprintf(o->host_header, host_len, strchr(o->host, ':') ? "[%s]:%s" : "%s:%s",
		 o->host, o->port);
	return 0;
}

/* The url as libcurl takes it, rebuilt from the checked parts. */
static int make_url(struct http_options *o, char *err, size_t err_size)
{
	size_t len = strlen(o->host_header) + strlen(o->path) + 10;

	o->url = malloc(len);
	if (o->url == NULL) {
		pu_err(err, err_size, "out of memory");
		return -1;
	}
	snprintf(o->url, len, "%s://%s%s", o->https ? "https" : "http",
		 o->host_header, o->path);
	return 0;
}

/* libcurl reads ca_file only when it connects: find a missing or
 * unreadable one now, while the configuration is checked. */
static int check_ca_file(const char *path, char *err, size_t err_size)
{
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		pu_err(err, err_size, "cannot read ca_file %s: %s", path,
		       strerror(errno));
		return -1;
	}
	fclose(f);
	return 0;
}

/* Append "line\r\n" to the extra headers. */
static int add_header(struct http_options *o, const char *name,
		      const char *value, const char *line)
{
	size_t have = o->headers ? strlen(o->headers) : 0;
	size_t add = (line ? strlen(line) : strlen(name) + 2 + strlen(value)) + 2;
	char *p;

	if (have + add > HEADERS_MAX)
		return -1;
	p = malloc(have + add + 1);
	if (p == NULL)
		return -1;
	if (have > 0)
		memcpy(p, o->headers, have);
	if (line != NULL)
		sprintf(p + have, "%s\r\n", line);
	else
		sprintf(p + have, "%s: %s\r\n", name, value);
	if (o->headers != NULL) {
		pu_scrub(o->headers, have);
		free(o->headers);
	}
	o->headers = p;
	return 0;
}

/* Authorization: Bearer TOKEN, built where it can be scrubbed. */
static int add_secret_header(struct http_options *o, const char *token,
			     char *err, size_t err_size)
{
	size_t len = strlen(token) + 8;
	char *value = malloc(len);
	int rc;

	if (value == NULL) {
		pu_err(err, err_size, "out of memory");
		return -1;
	}
	snprintf(value, len, "Bearer %s", token);
	rc = add_header(o, "Authorization", value, NULL);
	pu_scrub(value, len);
	free(value);
	if (rc < 0)
		pu_err(err, err_size, "bearer_token too long");
	return rc;
}

/* "Name: value" with a token name and no line breaks. */
static bool header_ok(const char *line)
{
	const char *colon = strchr(line, ':');

	if (colon == NULL || colon == line || strpbrk(line, "\r\n") != NULL)
		return false;
	for (const char *p = line; p < colon; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return false;
	/* Those the client writes itself. */
	return strncasecmp(line, "Content-Length:", 15) != 0 &&
		strncasecmp(line, "Host:", 5) != 0 &&
		strncasecmp(line, "Transfer-Encoding:", 18) != 0 &&
		strncasecmp(line, "Connection:", 11) != 0;
}

/* Append a copy of name to a list of names. 0, or -1 out of memory. */
static int add_name(char ***list, size_t *n, const char *name)
{
	char **a = realloc(*list, (*n + 1) * sizeof(*a));

	if (a == NULL)
		return -1;
	*list = a;
	if ((a[*n] = strdup(name)) == NULL)
		return -1;
	(*n)++;
	return 0;
}

/* ------------------------------------------------------------ the table */

static int opt_url(void *base, const struct myxid_opt *opt, char *err,
		   size_t err_size)
{
	return parse_url(base, opt->value, err, err_size);
}

static int opt_bearer(void *base, const struct myxid_opt *opt, char *err,
		      size_t err_size)
{
	if (opt->value[0] == '\0' || strpbrk(opt->value, "\r\n \t") != NULL) {
		pu_err(err, err_size, "bearer_token wants one word");
		return -1;
	}
	return add_secret_header(base, opt->value, err, err_size);
}

static int opt_header(void *base, const struct myxid_opt *opt, char *err,
		      size_t err_size)
{
	if (!header_ok(opt->value)) {
		pu_err(err, err_size, "header wants \"Name: value\" (not Host, "
		       "Content-Length, Connection, Transfer-Encoding)");
		return -1;
	}
	if (add_header(base, NULL, NULL, opt->value) < 0) {
		pu_err(err, err_size, "headers too long");
		return -1;
	}
	return 0;
}

/* send_attribute and send_header: a list of names each. */
static int opt_name(void *base, const struct myxid_opt *opt, char *err,
		    size_t err_size)
{
	struct http_options *o = base;
	bool attr = strcmp(opt->key, "send_attribute") == 0;

	if (!pu_valid_name(opt->value, strlen(opt->value))) {
		pu_err(err, err_size, "%s wants a name (letters, digits, '_', "
		       "'-', '.')", opt->key);
		return -1;
	}
	if (attr ? add_name(&o->attrs, &o->n_attrs, opt->value) :
	    add_name(&o->client_headers, &o->n_client_headers, opt->value)) {
		pu_err(err, err_size, "out of memory");
		return -1;
	}
	return 0;
}

#define TIME_BAD(k) k " wants a time from 1ms to 1h (e.g. 500ms, 3s; a " \
	"bare number is seconds)"
#define AT(field) offsetof(struct http_options, field)

static const struct po_option rows[] = {
	{ "url", PO_CUSTOM, 0, 0, 0, NULL, NULL, opt_url, PO_REQUIRED },
	{ "bearer_token", PO_CUSTOM, 0, 0, 0, NULL, NULL, opt_bearer, 0 },
	{ "header", PO_CUSTOM, 0, 0, 0, NULL, NULL, opt_header, PO_MULTI },
	{ "pool_size", PO_COUNT, AT(client.pool_size), 1, MAX_POOL,
	  "pool_size wants a number from 1 to 256", NULL, NULL, 0 },
	{ "queue_max", PO_COUNT, AT(client.queue_max), 0, MAX_QUEUE,
	  "queue_max wants a number from 0 to 1000000", NULL, NULL, 0 },
	{ "timeout", PO_DURATION_MS, AT(client.timeout_ms), 1, MAX_TIME_MS,
	  TIME_BAD("timeout"), NULL, NULL, 0 },
	{ "connect_timeout", PO_DURATION_MS, AT(client.connect_timeout_ms), 1,
	  MAX_TIME_MS, TIME_BAD("connect_timeout"), NULL, NULL, 0 },
	{ "idle_timeout", PO_DURATION_MS, AT(client.idle_timeout_ms), 1,
	  MAX_TIME_MS, TIME_BAD("idle_timeout"), NULL, NULL, 0 },
	{ "max_body", PO_SIZE, AT(max_body), 1, MAX_BODY,
	  "max_body wants a size from 1 to 16m", NULL, NULL, 0 },
	{ "ca_file", PO_PATH, AT(ca_file), 0, 0, "ca_file wants a path", NULL,
	  NULL, 0 },
	{ "tls_verify", PO_BOOL, AT(tls_verify), 0, 0,
	  "tls_verify wants yes or no", NULL, NULL, 0 },
	{ "send_attribute", PO_CUSTOM, 0, 0, 0, NULL, NULL, opt_name, PO_MULTI },
	{ "send_header", PO_CUSTOM, 0, 0, 0, NULL, NULL, opt_name, PO_MULTI },
	PO_END
};

static const struct po_table table = { rows, NULL, NULL, true };

/* ------------------------------------------------------------ the API */

int http_options_parse(struct http_options *o, const struct myxid_host *host,
		       struct myxid_instance *inst, const struct myxid_opt *opts,
		       size_t n_opts, char *err, size_t err_size,
		       const struct myxid_opt **bad_opt_r)
{
	const struct myxid_opt *seen[PO_MAX_ROWS];
	char why[512];

	memset(o, 0, sizeof(*o));
	o->client.pool_size = 8;
	o->client.queue_max = 4096;
	o->client.timeout_ms = 3000;
	o->client.connect_timeout_ms = 1000;
	o->client.idle_timeout_ms = 15000;
	o->max_body = 64 * 1024;
	o->tls_verify = true;
	if (po_parse(&table, o, seen, host, opts, n_opts, err, err_size,
		     bad_opt_r) < 0)
		return -1;
	if (o->client.connect_timeout_ms > o->client.timeout_ms)
		o->client.connect_timeout_ms = o->client.timeout_ms;
	if (!o->https && (o->ca_file != NULL || !o->tls_verify))
		host->log(inst, MYXID_LOG_WARNING, "ca_file and tls_verify apply "
			  "to https:// urls only");
	if (o->https && !o->tls_verify)
		host->log(inst, MYXID_LOG_WARNING, "tls_verify no: the "
			  "application's certificate is not checked; anyone "
			  "on the path can answer for it");
	if (o->https && o->ca_file != NULL &&
	    check_ca_file(o->ca_file, why, sizeof(why)) < 0)
		return pu_opt_fail(po_seen(&table, seen, "ca_file"), bad_opt_r,
				   err, err_size, "%s", why);
	if (make_url(o, err, err_size) < 0)
		return -1;
	o->client.url = o->url;
	o->client.upstream = o->host_header;
	o->client.ca_file = o->https ? o->ca_file : NULL;
	o->client.tls_verify = o->tls_verify;
	o->client.max_body = o->max_body;
	o->client.extra_headers = o->headers != NULL ? o->headers : "";
	return 0;
}

void http_options_free(struct http_options *o)
{
	po_free(&table, o);
	free(o->host);
	free(o->port);
	free(o->host_header);
	free(o->path);
	if (o->headers != NULL) {
		pu_scrub(o->headers, strlen(o->headers));
		free(o->headers);
	}
	free(o->url);
	for (size_t i = 0; i < o->n_attrs; i++)
		free(o->attrs[i]);
	free(o->attrs);
	for (size_t i = 0; i < o->n_client_headers; i++)
		free(o->client_headers[i]);
	free(o->client_headers);
	memset(o, 0, sizeof(*o));
}
