/*
 * Static files for the HTTP side: GET and HEAD of the files under one
 * configured directory (static_dir), and of the browser client
 * (client_js, served as /myxid.js). No directory listings, no dotfiles, no
 * way out of the root: "..", NUL, encoded slashes and backslashes are
 * refused before the file system is asked, and the realpath of what is
 * found must still be inside the root's realpath.
 */
#ifndef MYXID_STATIC_FILES_H
#define MYXID_STATIC_FILES_H

#include <stdbool.h>
#include <stddef.h>

struct conn;
struct http_request;

/* Largest file served (the whole file is read into memory). */
#define STATIC_FILES_MAX_SIZE (8 * 1024 * 1024)

/*
 * Map the request-target target[0..len) (query and fragment allowed) to a
 * file under root. Returns 0 with the file's real path in out, or an HTTP
 * status: 400 for a malformed or unsafe path, 404 when there is no such
 * regular file (directories without index.html, dotfiles, anything outside
 * root).
 */
int static_files_resolve(const char *root, const char *target, size_t len,
			 char *out, size_t out_size);

/* The Content-Type for path, by its extension. */
const char *static_files_type(const char *path);

/*
 * Answer the request with the file at path (head: headers only). Returns 0
 * once the answer is queued, or an HTTP status (404, 403) for the caller to
 * answer.
 */
int static_files_send(struct conn *c, const char *path, bool head);

/*
 * GET or HEAD on root: resolve and send. Returns 0 once answered, or the
 * status for the caller to answer.
 */
int static_files_serve(struct conn *c, const char *root,
		       const struct http_request *req, bool head);

#endif
