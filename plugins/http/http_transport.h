/*
 * The byte stream under the http plugin's client: a non-blocking TCP
 * socket, optionally wrapped in TLS (OpenSSL driven by readiness, never
 * blocking). Knows nothing of HTTP, pools or the host; the client watches
 * the descriptor and calls these when it is ready.
 *
 * Every function that can fail writes a one-line reason into err; none of
 * them logs. The reasons never contain application data.
 */
#ifndef MYXID_HTTP_TRANSPORT_H
#define MYXID_HTTP_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

/* What a stream waits for before the call can make progress. */
#define HT_WANT_READ  0x1u
#define HT_WANT_WRITE 0x2u

/* Results of the I/O calls. */
#define HT_DONE   1    /* finished (connected, handshake over) */
#define HT_AGAIN  0    /* wait for *want, then call again */
#define HT_ERROR -1    /* failed: see err */
#define HT_EOF   -2    /* the peer closed (reads only) */

struct ht_stream {
	int fd;                   /* -1 when closed */
	SSL *ssl;                 /* NULL for plain TCP */
};

/*
 * A client TLS context: peer verification on unless verify is false,
 * trusting ca_file (PEM) if given, else the system's default store.
 * NULL with a reason in err.
 */
SSL_CTX *ht_tls_context(const char *ca_file, bool verify, char *err,
			size_t err_size);

/* Open a non-blocking socket and start connecting. HT_DONE (connected at
 * once), HT_AGAIN (wait for writability, then ht_connect_finish) or
 * HT_ERROR. s->fd is set unless HT_ERROR. */
int ht_connect(struct ht_stream *s, const struct sockaddr *sa,
	       socklen_t sa_len, char *err, size_t err_size);

/* The socket became writable after HT_AGAIN: HT_DONE or HT_ERROR. */
int ht_connect_finish(struct ht_stream *s, char *err, size_t err_size);

/*
 * Put TLS on a connected stream: SNI and certificate name check against
 * server_name (an IP literal is checked against the certificate's IP
 * addresses instead). 0, or -1 with a reason.
 */
int ht_tls_begin(struct ht_stream *s, SSL_CTX *ctx, const char *server_name,
		 char *err, size_t err_size);

/* Drive the handshake: HT_DONE, HT_AGAIN (*want set) or HT_ERROR (with
 * the verification failure spelled out when that is the cause). */
int ht_tls_handshake(struct ht_stream *s, unsigned *want, char *err,
		     size_t err_size);

/* Read up to n bytes: the count (> 0), HT_AGAIN (*want set), HT_EOF or
 * HT_ERROR. */
ssize_t ht_read(struct ht_stream *s, void *buf, size_t n, unsigned *want,
		char *err, size_t err_size);

/* Write up to n bytes: the count (> 0), HT_AGAIN (*want set), HT_EOF
 * (the peer had closed: reset or broken pipe) or HT_ERROR. */
ssize_t ht_write(struct ht_stream *s, const void *buf, size_t n,
		 unsigned *want, char *err, size_t err_size);

/* Close (no TLS close_notify wait: the loop must not block) and free. */
void ht_close(struct ht_stream *s);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
