/*
 * The receiving side of myxid-bench's sockets: reads into the thread's
 * scratch buffer, the 101 head, frames parsed in place (a cut frame's tail
 * kept in the socket's stash), and the protocol's steps: Welcome,
 * [Authenticated], Subscribed, then deliveries, of which only "seq": and
 * "t": are read (and the position "o": with --resume). Compressed messages (permessage-deflate, --deflate) are
 * inflated first, into a buffer of the thread's, with one zlib stream per
 * thread reset for each message (no context takeover was agreed).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "bench_run.h"
#include "bench_ws_conn.h"

/* ------------------------------------------------------------ protocol */

/* Digits after needle in data; returns false when absent. */
static bool find_number(const unsigned char *data, size_t len, const char *needle,
			size_t nlen, uint64_t *v)
{
	const unsigned char *p = memmem(data, len, needle, nlen), *end = data + len;
	uint64_t x = 0;

	if (p == NULL)
		return false;
	p += nlen;
	if (p >= end || *p < '0' || *p > '9')
		return false;
	while (p < end && *p >= '0' && *p <= '9')
		x = x * 10 + (uint64_t)(*p++ - '0');
	*v = x;
	return true;
}

static void send_subscribe(struct wsconn *c)
{
	char key[256];

	bench_key_text(c->key, key, sizeof(key));
	c->state = S_SUBSCRIBE;
	if (c->away && run.o.resume && c->epoch[0])
		wsc_send_text(c, "{\"action\":\"Subscribe\",\"tag\":\"s\",\"payload\":"
			      "{\"exchange\":\"%s\",\"routing_key\":\"%s\",\"since\":"
			      "{\"offset\":%llu,\"epoch\":\"%s\"}}}", run.o.exchange, key,
			      (unsigned long long)c->pos, c->epoch);
	else
		wsc_send_text(c, "{\"action\":\"Subscribe\",\"tag\":\"s\",\"payload\":"
			      "{\"exchange\":\"%s\",\"routing_key\":\"%s\"}}",
			      run.o.exchange, key);
}

/*
 * --resume: where the socket's key is. The first Subscribed gives the
 * epoch and the position before any event (events carry "o" afterwards);
 * the one after a failover must say "recovered":true, or what was
 * published meanwhile is gone for this socket.
 */
static void note_subscribed(struct wsconn *c, const unsigned char *data, size_t len)
{
	const unsigned char *e = memmem(data, len, "\"epoch\":\"", 9), *end;

	if (c->away) {
		if (memmem(data, len, "\"recovered\":true", 16) == NULL)
			__atomic_add_fetch(&run.not_recovered, 1, __ATOMIC_RELAXED);
		return;
	}
	if (e == NULL)
		return;
	e += 9;
	end = memchr(e, '"', (size_t)(data + len - e));
	if (end == NULL || (size_t)(end - e) >= sizeof(c->epoch))
		return;
	memcpy(c->epoch, e, (size_t)(end - e));
	c->epoch[end - e] = '\0';
	find_number(data, len, "\"offset\":", 9, &c->pos);
}

static void became_ready(struct wsconn *c, uint64_t now)
{
	struct worker *w = c->w;

	if (run.o.churn_s > 0) {
		/* A cycle is done; close politely and let the server close the
		 * TCP connection first (its side then keeps the TIME_WAIT). */
		hist_add(&w->cycle, now - c->t_start);
		__atomic_add_fetch(&run.cycles, 1, __ATOMIC_RELAXED);
		c->state = S_CLOSING;
		c->t_start = now;        /* the tick's deadline for the close */
		wsc_send_frame(c, 8, "\x03\xe8", 2);
		return;
	}
	if (c->away) {
		wsc_back(c, now);
		return;
	}
	c->state = S_READY;
	__atomic_add_fetch(&run.key_ready[c->key], 1, __ATOMIC_RELAXED);
	bench_atomic_max(&run.t_last_ready, now);
	__atomic_add_fetch(&run.ready, 1, __ATOMIC_RELAXED);
	wsc_handshake_over(c);
}

static void on_delivery(struct wsconn *c, const unsigned char *data, size_t len,
			uint64_t now)
{
	uint64_t seq, t;

	if (!find_number(data, len, "\"seq\":", 6, &seq) ||
	    !find_number(data, len, "\"t\":", 4, &t)) {
		__atomic_add_fetch(&run.bad_frames, 1, __ATOMIC_RELAXED);
		bench_note("socket %u: a message without seq and t: %.*s", c->index,
			   (int)(len > 200 ? 200 : len), (const char *)data);
		return;
	}
	if (run.o.resume)
		find_number(data, len, "\"o\":", 4, &c->pos);
	bench_count_delivery(seq, t, now, &c->w->lat);
}

/* A text or binary message, by state. */
static void on_message(struct wsconn *c, const unsigned char *data, size_t len,
		       uint64_t now)
{
#define HAS(event) (memmem(data, len, "\"event\":\"" event "\"", \
			   sizeof("\"event\":\"" event "\"") - 1) != NULL)
	switch (c->state) {
	case S_READY:
		on_delivery(c, data, len, now);
		break;
	case S_WELCOME:
		if (!HAS("Welcome")) {
			wsc_fail(c, "expected Welcome, got", data, len);
		} else if (run.o.token != NULL) {
			c->state = S_AUTH;
			wsc_send_text(c, "{\"action\":\"Authenticate\",\"tag\":\"a\","
				  "\"payload\":{\"token\":\"%s\"}}", run.o.token);
		} else {
			send_subscribe(c);
		}
		break;
	case S_AUTH:
		if (!HAS("Authenticated"))
			wsc_fail(c, "expected Authenticated, got", data, len);
		else
			send_subscribe(c);
		break;
	case S_SUBSCRIBE:
		if (!HAS("Subscribed")) {
			wsc_fail(c, "expected Subscribed, got", data, len);
			break;
		}
		if (run.o.resume)
			note_subscribed(c, data, len);
		became_ready(c, now);
		break;
	default:
		break;
	}
#undef HAS
}

/* A compressed message (RFC 7692 7.2.2: the sender dropped the final
 * 00 00 ff ff, given back here); false when it does not inflate. */
static bool inflate_message(struct worker *w, const unsigned char *data, size_t len,
			    const unsigned char **out, size_t *out_len)
{
	static const unsigned char tail[4] = { 0x00, 0x00, 0xff, 0xff };
	z_stream *z = w->inflater;
	int rc;

	if (z == NULL) {
		z = calloc(1, sizeof(*z));
		w->inflated = malloc(SCRATCH_SIZE);
		if (z == NULL || w->inflated == NULL || inflateInit2(z, -15) != Z_OK) {
			fprintf(stderr, "myxid-bench: cannot set up zlib\n");
			exit(1);
		}
		w->inflater = z;
	}
	inflateReset(z);
	z->next_out = w->inflated;
	z->avail_out = SCRATCH_SIZE;
	z->next_in = (unsigned char *)data;
	z->avail_in = (uInt)len;
	rc = inflate(z, Z_SYNC_FLUSH);
	if (rc == Z_OK || rc == Z_BUF_ERROR) {
		z->next_in = (unsigned char *)tail;
		z->avail_in = sizeof(tail);
		rc = inflate(z, Z_SYNC_FLUSH);
	}
	if ((rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END) || z->avail_out == 0)
		return false;
	*out = w->inflated;
	*out_len = SCRATCH_SIZE - z->avail_out;
	return true;
}

/* The 101 head; returns bytes used, 0 to wait for more, -1 if c failed. */
static ssize_t parse_head(struct wsconn *c, const unsigned char *buf, size_t len,
			  uint64_t now)
{
	const unsigned char *end = memmem(buf, len, "\r\n\r\n", 4);
	const char *why;

	if (end == NULL) {
		if (len > MAX_HEAD) {
			wsc_fail(c, "response head too long", NULL, 0);
			return -1;
		}
		return 0;
	}
	why = hs_check_response((const char *)buf, (size_t)(end - buf), c->wskey);
	if (why != NULL) {
		size_t l = (size_t)(end - buf);
		const unsigned char *eol = memmem(buf, l, "\r\n", 2);

		wsc_fail(c, why, buf, eol ? (size_t)(eol - buf) : l);
		return -1;
	}
	if (run.o.mode == MODE_PLAIN)
		became_ready(c, now);
	else
		c->state = S_WELCOME;
	return end + 4 - buf;
}

/* Frames in buf; returns bytes used (a cut frame stays), -1 if c failed. */
static ssize_t parse_frames(struct wsconn *c, const unsigned char *buf, size_t len,
			    uint64_t now)
{
	size_t off = 0;

	while (c->fd >= 0) {
		const unsigned char *b = buf + off;
		size_t avail = len - off, hdr = 2;
		uint64_t plen;

		if (avail < 2)
			break;
		if (b[1] & 0x80) {
			wsc_fail(c, "the server masked a frame", NULL, 0);
			return -1;
		}
		plen = b[1] & 0x7f;
		if (plen == 126) {
			hdr = 4;
			if (avail < hdr)
				break;
			plen = ((uint64_t)b[2] << 8) | b[3];
		} else if (plen == 127) {
			hdr = 10;
			if (avail < hdr)
				break;
			plen = 0;
			for (int i = 2; i < 10; i++)
				plen = (plen << 8) | b[i];
		}
		if (plen > SCRATCH_SIZE / 2) {
			wsc_fail(c, "a frame larger than the read buffer", NULL, 0);
			return -1;
		}
		if (avail < hdr + plen)
			break;
		switch (b[0] & 0x0f) {
		case 1:
		case 2:
			if (b[0] & 0x40) {      /* RSV1: compressed */
				const unsigned char *m;
				size_t mlen;

				if (!inflate_message(c->w, b + hdr, (size_t)plen, &m, &mlen)) {
					wsc_fail(c, "a compressed message that does not inflate",
						 NULL, 0);
					return -1;
				}
				__atomic_add_fetch(&run.deflated, 1, __ATOMIC_RELAXED);
				on_message(c, m, mlen, now);
			} else {
				on_message(c, b + hdr, (size_t)plen, now);
			}
			break;
		case 8:
			if (c->state == S_CLOSING)
				break;   /* the answer to ours: its FIN follows */
			wsc_fail(c, "the server closed the socket", b + hdr + (plen > 2 ? 2 : plen),
				  plen > 2 ? (size_t)plen - 2 : 0);
			return -1;
		case 9:
			if (plen <= 125)
				wsc_send_frame(c, 10, b + hdr, (size_t)plen);
			break;
		default:                 /* pong, continuation: nothing to do */
			break;
		}
		off += hdr + (size_t)plen;
	}
	return c->fd >= 0 ? (ssize_t)off : -1;
}

/* The server closed the connection. */
static void on_eof(struct wsconn *c)
{
	if (c->state == S_CLOSING) {
		wsc_close(c);
		c->state = S_IDLE;
		if (!__atomic_load_n(&run.stop, __ATOMIC_RELAXED))
			wsc_open(c);
		return;
	}
	wsc_fail(c, "the server closed the connection", NULL, 0);
}

/* Keep the unparsed tail (a cut frame) for the next read. */
static void keep_tail(struct wsconn *c, const unsigned char *rest, size_t len)
{
	if (len == 0) {
		free(c->stash);
		c->stash = NULL;
		c->stash_len = 0;
		return;
	}
	/* The old stash, if any, is at least stash_len long. */
	if (len > c->stash_len) {
		free(c->stash);
		c->stash = malloc(len);
		if (c->stash == NULL) {
			fprintf(stderr, "myxid-bench: out of memory\n");
			exit(1);
		}
	}
	memmove(c->stash, rest, len);
	c->stash_len = len;
}

void wsc_on_readable(struct wsconn *c)
{
	unsigned char *buf = c->w->scratch;

	/* Level-triggered: a read that fills less than asked drained the
	 * socket; the loop comes back for the rest otherwise. */
	for (int rounds = 0; rounds < 8 && c->fd >= 0; rounds++) {
		size_t have = c->stash_len, space = SCRATCH_SIZE - have;
		ssize_t n, used;
		uint64_t now;

		if (have > 0)
			memcpy(buf, c->stash, have);
		n = read(c->fd, buf + have, space);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR) {
				const char *e = strerror(errno);

				wsc_fail(c, "read", e, strlen(e));
			}
			return;
		}
		if (n == 0) {
			on_eof(c);
			return;
		}
		now = now_ns();
		if (c->state == S_READY)
			__atomic_add_fetch(&run.wire_bytes, (uint64_t)n, __ATOMIC_RELAXED);
		have += (size_t)n;
		used = 0;
		if (c->state == S_HANDSHAKE && (used = parse_head(c, buf, have, now)) < 0)
			return;
		if (c->state != S_HANDSHAKE) {
			ssize_t more = parse_frames(c, buf + used, have - (size_t)used, now);

			if (more < 0)
				return;
			used += more;
		}
		keep_tail(c, buf + used, have - (size_t)used);
		if ((size_t)n < space)
			return;
	}
}

