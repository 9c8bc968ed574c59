/*
 * Publishing over HTTP for myxid-bench: POST to --publish-url over
 * --publish-conns keep-alive connections, one request in flight on each
 * (no pipelining: myxid answers "Connection: close" and would drop
 * requests queued behind the first; such a connection is reopened for the
 * next request). A non-2xx answer counts the message as refused.
 *
 * Bodies: --mode myxi, myxid's POST /publish:
 *   {"exchange":X,"routing_key":KEY,"event":"Bench","payload":{"seq":S,"t":T}}
 * --mode plain (an nchan publisher; %k in the URL's path is the key):
 *   {"seq":S,"t":T}
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_publish.h"
#include "bench_run.h"

#define IN_SIZE 8192

struct hconn {
	int fd;                          /* -1: not connected */
	bool busy;                       /* a request awaits its answer */
	uint64_t seq;                    /* the message of that request */
	size_t in_len;
	char in[IN_SIZE];
};

static struct hconn *hc;
static unsigned n_hc;
static struct sockaddr_in addr;
static char host[64];
static unsigned port;
static char path[1024];

static int parse_url(const char *url, char *err, size_t err_size)
{
	const char *p, *slash, *colon;
	size_t hl;

	if (strncmp(url, "http://", 7) != 0) {
		snprintf(err, err_size, "--publish-url must start with http://");
		return -1;
	}
	p = url + 7;
	slash = strchr(p, '/');
	if (slash == NULL)
		slash = p + strlen(p);
	colon = memchr(p, ':', (size_t)(slash - p));
	hl = (size_t)((colon ? colon : slash) - p);
	if (hl == 0 || hl >= sizeof(host)) {
		snprintf(err, err_size, "--publish-url: bad host");
		return -1;
	}
	memcpy(host, p, hl);
	host[hl] = '\0';
	port = colon ? (unsigned)atoi(colon + 1) : 80;
	snprintf(path, sizeof(path), "%s", *slash ? slash : "/");
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)port);
	if (port == 0 || port > 65535 || inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
		snprintf(err, err_size, "--publish-url: the host must be an IPv4 "
			 "address and the port a number");
		return -1;
	}
	return 0;
}

/* A blocking connect (loopback: immediate), then non-blocking use. */
static int hconn_connect(struct hconn *h)
{
	int one = 1;

	h->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (h->fd < 0)
		return -1;
	if (connect(h->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int e = errno;

		close(h->fd);
		h->fd = -1;
		errno = e;
		return -1;
	}
	setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(h->fd, F_SETFL, fcntl(h->fd, F_GETFL) | O_NONBLOCK);
	h->in_len = 0;
	return 0;
}

static void hconn_close(struct hconn *h)
{
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
	h->in_len = 0;
}

static int http_open(char *err, size_t err_size)
{
	if (parse_url(run.o.publish_url, err, err_size) != 0)
		return -1;
	n_hc = run.o.publish_conns;
	hc = calloc(n_hc, sizeof(*hc));
	if (hc == NULL) {
		snprintf(err, err_size, "out of memory");
		return -1;
	}
	for (unsigned i = 0; i < n_hc; i++) {
		if (hconn_connect(&hc[i]) != 0) {
			snprintf(err, err_size, "connect to %s:%u: %s", host, port,
				 strerror(errno));
			return -1;
		}
	}
	return 0;
}

static struct hconn *free_conn(void)
{
	for (unsigned i = 0; i < n_hc; i++)
		if (!hc[i].busy)
			return &hc[i];
	return NULL;
}

static int http_can_send(void)
{
	return free_conn() != NULL;
}

/* Write all of buf on a non-blocking socket (a request is small: the
 * socket buffer takes it at once nearly always). */
static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -1;
			poll(&pfd, 1, 1000);
			continue;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * --line-bytes: what a deployment log's lines look like (the payload the
 * compression benchmark needs: repetitive, but not the same bytes twice),
 * made from seq and cut to n bytes. Nothing in it needs JSON escaping.
 */
static void log_line(uint64_t seq, unsigned n, char *out)
{
	static const char *const steps[] = {
		"Step 7/12 : RUN bundle install --jobs 4 --retry 3",
		"Fetching gem metadata from https://rubygems.org/..........",
		"Installing nokogiri 1.15.4 with native extensions",
		"remote: Compressing objects: 100% (1234/1234), done.",
		"== 20261204120000 AddIndexToEvents: migrating =========== (0.0123s)",
		"Sending build context to Docker daemon  412.3MB",
		"Successfully tagged registry.example.com/app/web:9f8e7d6",
		"[web.1] Listening on http://0.0.0.0:3000, CTRL+C to stop",
	};
	size_t at = 0;

	for (uint64_t i = seq; at < n; i++) {
		int k = snprintf(out + at, n + 1 - at, "%s2026-12-05 04:%02u:%02u.%03u "
				 "[deploy-%u] %s (line %llu)", at ? " | " : "",
				 (unsigned)(i / 60 % 60), (unsigned)(i % 60), (unsigned)(i * 37 % 1000),
				 (unsigned)(seq % 97), steps[i % 8], (unsigned long long)i);
		if (k < 0)
			break;
		at += (size_t)k;
	}
	out[n] = '\0';
}

static int http_send(uint64_t seq, const char *key, uint64_t t_ns)
{
	struct hconn *h = free_conn();
	char body[4096], p[1280], req[6144], line[3008] = "";
	const char *s = path;
	size_t plen = 0, klen = strlen(key);
	int blen, rlen;

	while (*s && plen + klen + 1 < sizeof(p)) {
		if (s[0] == '%' && s[1] == 'k') {
			memcpy(p + plen, key, klen);
			plen += klen;
			s += 2;
		} else {
			p[plen++] = *s++;
		}
	}
	p[plen] = '\0';
	if (run.o.line_bytes)
		log_line(seq, run.o.line_bytes, line);
	if (run.o.mode == MODE_PLAIN)
		blen = snprintf(body, sizeof(body), "{\"seq\":%llu,\"t\":%llu}",
				(unsigned long long)seq, (unsigned long long)t_ns);
	else
		blen = snprintf(body, sizeof(body), "{\"exchange\":\"%s\",\"routing_key\":"
				"\"%s\",\"event\":\"Bench\",\"payload\":{\"seq\":%llu,"
				"\"t\":%llu%s%s%s}}", run.o.exchange, key,
				(unsigned long long)seq, (unsigned long long)t_ns,
				run.o.line_bytes ? ",\"line\":\"" : "", line,
				run.o.line_bytes ? "\"" : "");
	rlen = snprintf(req, sizeof(req),
			"POST %s HTTP/1.1\r\n"
			"Host: %s:%u\r\n"
			"%s%s%s"
			"Content-Type: application/json\r\n"
			"Content-Length: %d\r\n"
			"\r\n%s", p, host, port,
			run.o.publish_key ? "Authorization: Bearer " : "",
			run.o.publish_key ? run.o.publish_key : "",
			run.o.publish_key ? "\r\n" : "", blen, body);
	if (rlen <= 0 || (size_t)rlen >= sizeof(req))
		return -1;
	/* A kept-alive connection the server has since closed fails the
	 * write (or the answer): one fresh connection is tried. */
	for (int attempt = 0; attempt < 2; attempt++) {
		if (h->fd < 0 && hconn_connect(h) != 0)
			break;
		if (write_all(h->fd, req, (size_t)rlen) == 0) {
			h->busy = true;
			h->seq = seq;
			return 0;
		}
		hconn_close(h);
	}
	fprintf(stderr, "myxid-bench: POST to %s:%u: %s\n", host, port, strerror(errno));
	return -1;
}

static int http_poll_fds(struct pollfd *fds, int max)
{
	int n = 0;

	for (unsigned i = 0; i < n_hc && n < max; i++) {
		if (hc[i].busy && hc[i].fd >= 0) {
			fds[n].fd = hc[i].fd;
			fds[n].events = POLLIN;
			fds[n].revents = 0;
			n++;
		}
	}
	return n;
}

/* Does the head (status line and headers) carry "Connection: close"? */
static bool head_says_close(const char *head, size_t len)
{
	const char *p = head;

	if (len >= 8 && memcmp(head, "HTTP/1.0", 8) == 0)
		return true;    /* good enough: no keep-alive from 1.0 peers here */
	while ((p = memmem(p, len - (size_t)(p - head), "\r\n", 2)) != NULL) {
		p += 2;
		if ((size_t)(head + len - p) >= 17 && strncasecmp(p, "Connection: close", 17) == 0)
			return true;
	}
	return false;
}

static long head_content_length(const char *head, size_t len)
{
	const char *p = head;

	while ((p = memmem(p, len - (size_t)(p - head), "\r\n", 2)) != NULL) {
		p += 2;
		if ((size_t)(head + len - p) >= 15 && strncasecmp(p, "Content-Length:", 15) == 0)
			return strtol(p + 15, NULL, 10);
	}
	return 0;
}

/* Take a complete answer off h->in, if there is one. */
static void take_answer(struct hconn *h)
{
	char *end = memmem(h->in, h->in_len, "\r\n\r\n", 4);
	size_t head, total;
	long cl;
	int status;

	if (end == NULL)
		return;
	head = (size_t)(end - h->in) + 4;
	cl = head_content_length(h->in, head - 2);
	total = head + (size_t)(cl > 0 ? cl : 0);
	if (h->in_len < total)
		return;
	status = h->in_len > 12 ? atoi(h->in + 9) : 0;
	if (status < 200 || status > 299) {
		char *eol = memchr(h->in, '\r', head);
		size_t blen = total - head > 200 ? 200 : total - head;

		while (blen > 0 && (h->in[head + blen - 1] == '\n' || h->in[head + blen - 1] == '\r'))
			blen--;
		bench_note("publish of message %llu refused: %.*s %.*s",
			   (unsigned long long)h->seq, (int)(eol ? eol - h->in : 40), h->in,
			   (int)blen, h->in + head);
		publish_refused(h->seq);
	}
	h->busy = false;
	if (head_says_close(h->in, head - 2)) {
		hconn_close(h);
		return;
	}
	memmove(h->in, h->in + total, h->in_len - total);
	h->in_len -= total;
}

static void http_on_poll(struct pollfd *fds, int n)
{
	for (int i = 0; i < n; i++) {
		struct hconn *h = NULL;
		ssize_t r;

		if (fds[i].revents == 0)
			continue;
		for (unsigned k = 0; k < n_hc; k++)
			if (hc[k].fd == fds[i].fd)
				h = &hc[k];
		if (h == NULL)
			continue;
		r = recv(h->fd, h->in + h->in_len, IN_SIZE - h->in_len, 0);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0 || (h->in_len += (size_t)r) == IN_SIZE) {
			if (h->busy) {
				bench_note("publish of message %llu: the connection %s",
					   (unsigned long long)h->seq,
					   r <= 0 ? "closed without an answer" :
					   "sent an answer too large");
				publish_refused(h->seq);
				h->busy = false;
			}
			hconn_close(h);
			continue;
		}
		take_answer(h);
	}
}

static void http_finish(uint64_t deadline_ns)
{
	struct pollfd fds[64];
	int n;

	while ((n = http_poll_fds(fds, 64)) > 0 && now_ns() < deadline_ns) {
		if (poll(fds, (nfds_t)n, 100) > 0)
			http_on_poll(fds, n);
	}
	for (unsigned i = 0; i < n_hc; i++) {
		if (hc[i].busy) {
			bench_note("publish of message %llu: no answer in time",
				   (unsigned long long)hc[i].seq);
			publish_refused(hc[i].seq);
			hc[i].busy = false;
		}
		hconn_close(&hc[i]);
	}
}

const struct pub_backend pub_http = {
	.open = http_open,
	.can_send = http_can_send,
	.send = http_send,
	.poll_fds = http_poll_fds,
	.on_poll = http_on_poll,
	.finish = http_finish,
};
