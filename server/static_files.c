/*
 * Static files: the demo page (static_dir) and the browser client
 * (client_js). Small files read whole and answered with Connection: close,
 * like every other plain HTTP answer of the daemon.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE   /* realpath(), O_NOFOLLOW */
#endif

#include "static_files.h"
#include "conn.h"
#include "http_parse.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

/*
 * Percent-decode target[0..len) (an origin-form path, query and fragment
 * already cut off) into out. Refuses what could change the path's shape
 * once decoded: %2F, backslashes (raw or encoded), NUL, bad escapes.
 */
static int decode_path(const char *target, size_t len, char *out, size_t out_size)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		char ch = target[i];

		if (ch == '%') {
			int hi, lo;

			if (i + 2 >= len)
				return 400;
			hi = hex_digit(target[i + 1]);
			lo = hex_digit(target[i + 2]);
			if (hi < 0 || lo < 0)
				return 400;
			ch = (char)(hi * 16 + lo);
			i += 2;
			if (ch == '/')
				return 400;
		}
		if (ch == '\0' || ch == '\\')
			return 400;
		if (n + 1 >= out_size)
			return 400;
		out[n++] = ch;
	}
	out[n] = '\0';
	return 0;
}

/* 400 for a ".." segment, 404 for any other segment starting with a dot
 * (".", ".git", ".htpasswd"), else 0. */
static int check_segments(const char *path)
{
	const char *seg = path;

	while (*seg != '\0') {
		const char *end;
		size_t n;

		while (*seg == '/')
			seg++;
		end = strchr(seg, '/');
		n = end ? (size_t)(end - seg) : strlen(seg);
		if (n == 2 && seg[0] == '.' && seg[1] == '.')
			return 400;
		if (n > 0 && seg[0] == '.')
			return 404;
		seg += n;
	}
	return 0;
}

int static_files_resolve(const char *root, const char *target, size_t len,
			 char *out, size_t out_size)
{
	char decoded[PATH_MAX], real_root[PATH_MAX], candidate[PATH_MAX * 2 + 16];
	char real[PATH_MAX];
	size_t root_len, i;
	struct stat st;
	int rc;

	for (i = 0; i < len; i++) {
		if (target[i] == '?' || target[i] == '#')
			break;
	}
	len = i;
	if (len == 0 || target[0] != '/')
		return 400;
	rc = decode_path(target, len, decoded, sizeof(decoded));
	if (rc == 0)
		rc = check_segments(decoded);
	if (rc != 0)
		return rc;
	if (realpath(root, real_root) == NULL)
		return 404;
	root_len = strlen(real_root);
	if (root_len == 1)      /* "/" itself */
		root_len = 0;
	snprintf(candidate, sizeof(candidate), "%s%s%s", real_root, decoded,
		 decoded[strlen(decoded) - 1] == '/' ? "index.html" : "");
	if (strlen(candidate) >= PATH_MAX || realpath(candidate, real) == NULL)
		return 404;
	/* Symbolic links may point anywhere: what they lead to must be inside. */
	if (strncmp(real, real_root, root_len) != 0 || real[root_len] != '/')
		return 404;
	if (stat(real, &st) != 0 || !S_ISREG(st.st_mode))
		return 404;
	if (strlen(real) >= out_size)
		return 404;
	memcpy(out, real, strlen(real) + 1);
	return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

const char *static_files_type(const char *path)
{
	static const struct { const char *ext, *type; } types[] = {
		{ ".html", "text/html; charset=utf-8" },
		{ ".htm", "text/html; charset=utf-8" },
		{ ".js", "text/javascript; charset=utf-8" },
		{ ".mjs", "text/javascript; charset=utf-8" },
		{ ".css", "text/css; charset=utf-8" },
		{ ".svg", "image/svg+xml" },
		{ ".png", "image/png" },
		{ ".ico", "image/x-icon" },
		{ ".json", "application/json" },
		{ ".txt", "text/plain; charset=utf-8" },
		{ ".md", "text/plain; charset=utf-8" },
	};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (ends_with(path, types[i].ext))
			return types[i].type;
	}
	return "application/octet-stream";
}

int static_files_send(struct conn *c, const char *path, bool head)
{
	struct evbuffer *out;
	struct stat st;
	char *body = NULL;
	size_t got = 0;
	int fd;

	if (c->state != CONN_HTTP)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return errno == EACCES ? 403 : 404;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return 404;
	}
	if (st.st_size > STATIC_FILES_MAX_SIZE) {
		close(fd);
		return 403;
	}
	if (!head && st.st_size > 0) {
		body = malloc((size_t)st.st_size);
		if (body == NULL) {
			close(fd);
			return 403;
		}
		while (got < (size_t)st.st_size) {
			ssize_t r = read(fd, body + got, (size_t)st.st_size - got);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		if (got != (size_t)st.st_size) {
			/* It changed under us: better nothing than half a file. */
			free(body);
			close(fd);
			return 404;
		}
	}
	close(fd);
	out = bufferevent_get_output(c->bev);
	evbuffer_add_printf(out,
			    "HTTP/1.1 200 OK\r\n"
			    "Server: myxid/" PACKAGE_VERSION "\r\n"
			    "Content-Type: %s\r\n"
			    "Content-Length: %lld\r\n"
			    "Cache-Control: no-cache\r\n"
			    "X-Content-Type-Options: nosniff\r\n"
			    "Connection: close\r\n"
			    "\r\n",
			    static_files_type(path), (long long)st.st_size);
	if (body != NULL)
		evbuffer_add(out, body, got);
	free(body);
	log_debug("%s: served %s", c->peer, path);
	/* A plain HTTP connection: flush, then close (no close frame). */
	conn_close(c, 0, NULL);
	return 0;
}

int static_files_serve(struct conn *c, const char *root,
		       const struct http_request *req, bool head)
{
	char path[PATH_MAX];
	int rc = static_files_resolve(root, req->target.p, req->target.len,
				      path, sizeof(path));

	return rc != 0 ? rc : static_files_send(c, path, head);
}
