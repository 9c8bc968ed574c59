/*
 * Non-blocking TCP and TLS streams for the http plugin: see
 * http_transport.h.
 *
 * OpenSSL is used in its non-blocking way: SSL_connect / SSL_read /
 * SSL_write on a non-blocking socket return SSL_ERROR_WANT_READ or
 * SSL_ERROR_WANT_WRITE, which become HT_AGAIN with the readiness to wait
 * for; the caller calls again when the descriptor is ready. The thread's
 * OpenSSL error queue is shared with the daemon's own TLS listeners on the
 * same loop, so it is cleared before each call and drained after a
 * failure.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "http_transport.h"
#include "plugin_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

/* The last OpenSSL error as text (or fallback), and the queue emptied. */
static void ssl_reason(char *err, size_t err_size, const char *what,
		       const char *fallback)
{
	unsigned long e = ERR_peek_last_error();
	char buf[256];

	if (e != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		pu_err(err, err_size, "%s: %s", what, buf);
	} else {
		pu_err(err, err_size, "%s: %s", what, fallback);
	}
	ERR_clear_error();
}

SSL_CTX *ht_tls_context(const char *ca_file, bool verify, char *err,
			size_t err_size)
{
	SSL_CTX *ctx;

	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		ssl_reason(err, err_size, "TLS context", "cannot create");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* Partial writes and a moving buffer: the client resumes a write
	 * from wherever the previous one stopped. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
			 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	if (ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
			ssl_reason(err, err_size, ca_file, "cannot load the CA file");
			SSL_CTX_free(ctx);
			return NULL;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		ssl_reason(err, err_size, "system CA store", "cannot load");
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int ht_connect(struct ht_stream *s, const struct sockaddr *sa,
	       socklen_t sa_len, char *err, size_t err_size)
{
	int one = 1;

	s->ssl = NULL;
	s->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		       0);
	if (s->fd < 0) {
		pu_err(err, err_size, "socket: %s", strerror(errno));
		return HT_ERROR;
	}
	/* Requests are small and answered one at a time: Nagle would only
	 * delay them. */
	(void)setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(s->fd, sa, sa_len) == 0)
		return HT_DONE;
	if (errno == EINPROGRESS)
		return HT_AGAIN;
	pu_err(err, err_size, "connect: %s", strerror(errno));
	ht_close(s);
	return HT_ERROR;
}

int ht_connect_finish(struct ht_stream *s, char *err, size_t err_size)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	if (soerr == 0)
		return HT_DONE;
	pu_err(err, err_size, "connect: %s", strerror(soerr));
	return HT_ERROR;
}

static bool is_ip_literal(const char *name)
{
	unsigned char addr[16];

	return inet_pton(AF_INET, name, addr) == 1 ||
		inet_pton(AF_INET6, name, addr) == 1;
}

int ht_tls_begin(struct ht_stream *s, SSL_CTX *ctx, const char *server_name,
		 char *err, size_t err_size)
{
	SSL *ssl;
	int ok;

	ERR_clear_error();
	ssl = SSL_new(ctx);
	if (ssl == NULL) {
		ssl_reason(err, err_size, "TLS", "cannot create a session");
		return -1;
	}
	if (is_ip_literal(server_name)) {
		/* No SNI for addresses (RFC 6066); the certificate must name
		 * the address in an IP SAN. */
		ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), server_name);
	} else {
		ok = SSL_set_tlsext_host_name(ssl, server_name) == 1 &&
			SSL_set1_host(ssl, server_name) == 1;
	}
	if (ok != 1 || SSL_set_fd(ssl, s->fd) != 1) {
		ssl_reason(err, err_size, "TLS", "cannot set up the session");
		SSL_free(ssl);
		return -1;
	}
	SSL_set_connect_state(ssl);
	s->ssl = ssl;
	return 0;
}

/* Map an SSL_* result to HT_AGAIN/HT_EOF/HT_ERROR. */
static int ssl_outcome(struct ht_stream *s, int rc, unsigned *want,
		       const char *what, char *err, size_t err_size)
{
	int e = SSL_get_error(s->ssl, rc);
	int saved = errno;

	switch (e) {
	case SSL_ERROR_WANT_READ:
		*want = HT_WANT_READ;
		return HT_AGAIN;
	case SSL_ERROR_WANT_WRITE:
		*want = HT_WANT_WRITE;
		return HT_AGAIN;
	case SSL_ERROR_ZERO_RETURN:
		ERR_clear_error();
		return HT_EOF;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_last_error() == 0) {
			/* An EOF without close_notify: what most servers do. */
			if (saved == 0 || saved == ECONNRESET || saved == EPIPE) {
				ERR_clear_error();
				return HT_EOF;
			}
			pu_err(err, err_size, "%s: %s", what, strerror(saved));
			return HT_ERROR;
		}
		ssl_reason(err, err_size, what, "system error");
		return HT_ERROR;
	default:
		ssl_reason(err, err_size, what, "protocol error");
		return HT_ERROR;
	}
}

int ht_tls_handshake(struct ht_stream *s, unsigned *want, char *err,
		     size_t err_size)
{
	int rc, res, e;
	long vr;

	ERR_clear_error();
	errno = 0;
	rc = SSL_connect(s->ssl);
	if (rc == 1)
		return HT_DONE;
	e = SSL_get_error(s->ssl, rc);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return ssl_outcome(s, rc, want, "TLS handshake", err, err_size);
	/* Only now: with tls_verify no, a failed check is recorded but the
	 * handshake goes on. */
	vr = SSL_get_verify_result(s->ssl);
	if (vr != X509_V_OK) {
		pu_err(err, err_size, "TLS handshake: certificate verification "
		       "failed: %s", X509_verify_cert_error_string(vr));
		ERR_clear_error();
		return HT_ERROR;
	}
	res = ssl_outcome(s, rc, want, "TLS handshake", err, err_size);
	if (res == HT_EOF) {
		pu_err(err, err_size, "TLS handshake: the server closed the "
		       "connection");
		return HT_ERROR;
	}
	return res;
}

ssize_t ht_read(struct ht_stream *s, void *buf, size_t n, unsigned *want,
		char *err, size_t err_size)
{
	ssize_t got;

	if (s->ssl != NULL) {
		int rc, cap = n > 1u << 30 ? 1 << 30 : (int)n;

		ERR_clear_error();
		errno = 0;
		rc = SSL_read(s->ssl, buf, cap);
		if (rc > 0)
			return rc;
		return ssl_outcome(s, rc, want, "TLS read", err, err_size);
	}
	got = recv(s->fd, buf, n, 0);
	if (got > 0)
		return got;
	if (got == 0)
		return HT_EOF;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
		*want = HT_WANT_READ;
		return HT_AGAIN;
	}
	if (errno == ECONNRESET)
		return HT_EOF;
	pu_err(err, err_size, "read: %s", strerror(errno));
	return HT_ERROR;
}

ssize_t ht_write(struct ht_stream *s, const void *buf, size_t n,
		 unsigned *want, char *err, size_t err_size)
{
	ssize_t put;

	if (s->ssl != NULL) {
		int rc, cap = n > 1u << 30 ? 1 << 30 : (int)n;

		ERR_clear_error();
		errno = 0;
		rc = SSL_write(s->ssl, buf, cap);
		if (rc > 0)
			return rc;
		return ssl_outcome(s, rc, want, "TLS write", err, err_size);
	}
	put = send(s->fd, buf, n, MSG_NOSIGNAL);
	if (put > 0)
		return put;
	if (put == 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
		*want = HT_WANT_WRITE;
		return HT_AGAIN;
	}
	if (errno == EPIPE || errno == ECONNRESET)
		return HT_EOF;
	pu_err(err, err_size, "write: %s", strerror(errno));
	return HT_ERROR;
}

void ht_close(struct ht_stream *s)
{
	if (s->ssl != NULL) {
		SSL_free(s->ssl);
		s->ssl = NULL;
		ERR_clear_error();
	}
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
	}
}
