/*
 * The http plugin's options: see http_options.h.
 */
#define _POSIX_C_SOURCE 200809L

#include "http_options.h"
#include "plugin_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_POOL 256u
#define MAX_QUEUE 1000000u
#define MAX_TIME_MS 3600000ull
#define MAX_BODY (16ull << 20)
#define HEADERS_MAX 8192u

static int parse_bool(const char *s, bool *b)
{
	if (strcmp(s, "yes") == 0 || strcmp(s, "true") == 0 || strcmp(s, "on") == 0)
		*b = true;
	else if (strcmp(s, "no") == 0 || strcmp(s, "false") == 0 ||
		 strcmp(s, "off") == 0)
		*b = false;
	else
		return -1;
	return 0;
}

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

static int one_option(struct http_options *o, const struct myxid_opt *opt,
		      char *err, size_t err_size)
{
	const char *k = opt->key, *v = opt->value;
	unsigned long long n;

	if (strcmp(k, "url") == 0)
		return parse_url(o, v, err, err_size);
	if (strcmp(k, "bearer_token") == 0) {
		if (v[0] == '\0' || strpbrk(v, "\r\n \t") != NULL) {
			pu_err(err, err_size, "bearer_token wants one word");
			return -1;
		}
		return add_secret_header(o, v, err, err_size);
	}
	if (strcmp(k, "header") == 0) {
		if (!header_ok(v)) {
			pu_err(err, err_size, "header wants \"Name: value\" (not "
			       "Host, Content-Length, Connection, "
			       "Transfer-Encoding)");
			return -1;
		}
		if (add_header(o, NULL, NULL, v) < 0) {
			pu_err(err, err_size, "headers too long");
			return -1;
		}
		return 0;
	}
	if (strcmp(k, "pool_size") == 0 || strcmp(k, "queue_max") == 0) {
		bool pool = k[0] == 'p';

		if (pu_parse_number(v, false, pool ? MAX_POOL : MAX_QUEUE, &n) < 0 ||
		    (pool && n == 0)) {
			pu_err(err, err_size, "%s wants a number from %u to %u", k,
			       pool ? 1u : 0u, pool ? MAX_POOL : MAX_QUEUE);
			return -1;
		}
		*(pool ? &o->client.pool_size : &o->client.queue_max) = (unsigned)n;
		return 0;
	}
	if (strcmp(k, "timeout") == 0 || strcmp(k, "connect_timeout") == 0 ||
	    strcmp(k, "idle_timeout") == 0) {
		unsigned *dst = k[0] == 't' ? &o->client.timeout_ms :
			k[0] == 'c' ? &o->client.connect_timeout_ms :
			&o->client.idle_timeout_ms;

		if (pu_parse_duration_ms(v, MAX_TIME_MS, &n) < 0 || n == 0) {
			pu_err(err, err_size, "%s wants a time from 1ms to 1h "
			       "(e.g. 500ms, 3s; a bare number is seconds)", k);
			return -1;
		}
		*dst = (unsigned)n;
		return 0;
	}
	if (strcmp(k, "max_body") == 0) {
		if (pu_parse_number(v, true, MAX_BODY, &n) < 0 || n == 0) {
			pu_err(err, err_size, "max_body wants a size from 1 to 16m");
			return -1;
		}
		o->client.max_body = (size_t)n;
		return 0;
	}
	if (strcmp(k, "ca_file") == 0) {
		return 0;    /* resolved by the caller, who has the option */
	}
	if (strcmp(k, "tls_verify") == 0) {
		if (parse_bool(v, &o->tls_verify) < 0) {
			pu_err(err, err_size, "tls_verify wants yes or no");
			return -1;
		}
		return 0;
	}
	if (strcmp(k, "send_attribute") == 0 || strcmp(k, "send_header") == 0) {
		bool attr = k[5] == 'a';

		if (!pu_valid_name(v, strlen(v))) {
			pu_err(err, err_size, "%s wants a name (letters, digits, '_', "
			       "'-', '.')", k);
			return -1;
		}
		if (attr ? add_name(&o->attrs, &o->n_attrs, v) :
		    add_name(&o->client_headers, &o->n_client_headers, v)) {
			pu_err(err, err_size, "out of memory");
			return -1;
		}
		return 0;
	}
	pu_err(err, err_size, "unknown option \"%s\"", k);
	return -1;
}

/* Options that may be given once only. */
static bool single(const char *key)
{
	static const char *const once[] = {
		"url", "bearer_token", "pool_size", "queue_max", "timeout",
		"connect_timeout", "idle_timeout", "max_body", "ca_file",
		"tls_verify", NULL
	};

	for (size_t i = 0; once[i] != NULL; i++)
		if (strcmp(key, once[i]) == 0)
			return true;
	return false;
}

static int set_ca_file(struct http_options *o, const struct myxid_host *host,
		       const struct myxid_opt *opt, char *err, size_t err_size)
{
	char path[4096];

	if (opt->value[0] == '\0' ||
	    host->resolve_path(opt, opt->value, path, sizeof(path)) < 0) {
		pu_err(err, err_size, "ca_file wants a path");
		return -1;
	}
	o->ca_file = strdup(path);
	if (o->ca_file == NULL) {
		pu_err(err, err_size, "out of memory");
		return -1;
	}
	return 0;
}

int http_options_parse(struct http_options *o, const struct myxid_host *host,
		       struct myxid_instance *inst, const struct myxid_opt *opts,
		       size_t n_opts, char *err, size_t err_size,
		       const struct myxid_opt **bad_opt_r)
{
	const struct myxid_opt *url_opt = NULL;
	char why[512];

	memset(o, 0, sizeof(*o));
	o->client.pool_size = 8;
	o->client.queue_max = 4096;
	o->client.timeout_ms = 3000;
	o->client.connect_timeout_ms = 1000;
	o->client.idle_timeout_ms = 15000;
	o->client.max_body = 64 * 1024;
	o->tls_verify = true;
	for (size_t i = 0; i < n_opts; i++) {
		const struct myxid_opt *opt = &opts[i];

		if (single(opt->key)) {
			for (size_t j = 0; j < i; j++)
				if (strcmp(opts[j].key, opt->key) == 0)
					return pu_opt_fail(opt, bad_opt_r, err, err_size,
							   "%s given twice (first on "
							   "line %u)", opt->key,
							   opts[j].line);
		}
		if (strcmp(opt->key, "url") == 0)
			url_opt = opt;
		if ((strcmp(opt->key, "ca_file") == 0 ?
		     set_ca_file(o, host, opt, why, sizeof(why)) :
		     one_option(o, opt, why, sizeof(why))) < 0)
			return pu_opt_fail(opt, bad_opt_r, err, err_size, "%s", why);
	}
	if (url_opt == NULL) {
		pu_err(err, err_size, "url is required, e.g. url "
		       "http://127.0.0.1:3000/myxid/auth");
		return -1;
	}
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
	    check_ca_file(o->ca_file, why, sizeof(why)) < 0) {
		for (size_t i = 0; i < n_opts; i++)
			if (strcmp(opts[i].key, "ca_file") == 0)
				*bad_opt_r = &opts[i];
		pu_err(err, err_size, "%s", why);
		return -1;
	}
	if (make_url(o, err, err_size) < 0)
		return -1;
	o->client.url = o->url;
	o->client.upstream = o->host_header;
	o->client.ca_file = o->https ? o->ca_file : NULL;
	o->client.tls_verify = o->tls_verify;
	o->client.extra_headers = o->headers != NULL ? o->headers : "";
	return 0;
}

void http_options_free(struct http_options *o)
{
	free(o->host);
	free(o->port);
	free(o->host_header);
	free(o->path);
	if (o->headers != NULL) {
		pu_scrub(o->headers, strlen(o->headers));
		free(o->headers);
	}
	free(o->ca_file);
	free(o->url);
	for (size_t i = 0; i < o->n_attrs; i++)
		free(o->attrs[i]);
	free(o->attrs);
	for (size_t i = 0; i < o->n_client_headers; i++)
		free(o->client_headers[i]);
	free(o->client_headers);
	memset(o, 0, sizeof(*o));
}
