/*
 * authload: the load generator of bench/auth_throughput.py.
 *
 * It opens SOCKETS WebSockets to myxid and keeps each one busy with
 * Authenticate / Deauthenticate pairs: it writes DEPTH pairs at once (one
 * write each), and every time a pair's Deauthenticated comes back it writes
 * the next, with the next token of the list. The daemon handles a socket's
 * actions in order, so a socket has at most one Authenticate at a plugin;
 * the concurrency the database sees is the number of sockets.
 *
 * Every reply is compared, byte for byte, with the one expected:
 *
 *   {"event":"Authenticated","tag":"a","payload":{"user_id":"U","user_type":"T"}}
 *   {"event":"Deauthenticated","tag":"d","payload":{}}
 *
 * Anything else (AuthUnavailable, a close, a dropped connection) is an
 * error; the first few are printed.
 *
 * One thread, epoll, raw sockets: masked frames written by hand, replies
 * parsed only as far as the frame header. It costs a few microseconds of
 * CPU per Authenticate, far less than the daemon, so that on a 2-core
 * machine the load generator is not what is measured; it reports its own
 * CPU time (getrusage) for the window so that this can be checked.
 *
 * Phases: WARMUP seconds of load (connections, the plugins' pools, caches),
 * then DURATION seconds measured. "START" and "END" lines on stdout mark
 * the window (the driver samples /proc on them), then one "RESULT {json}"
 * line: completed Authenticates in the window, errors, latency percentiles
 * (from the write of a pair to its Authenticated), user and system CPU.
 *
 *   authload -p PORT -f TOKENS [-n SOCKETS] [-k DEPTH] [-w WARMUP] [-d DURATION]
 *
 * TOKENS: one "TOKEN<TAB>USER_ID<TAB>USER_TYPE" a line (USER_TYPE may be
 * empty: no user_type in the reply). Tokens must be plain ASCII without
 * quotes or backslashes (they are put in JSON as they are).
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_DEPTH 64
#define IN_SIZE 65536
#define OUT_SIZE 65536
#define MAX_ERROR_SAMPLES 5

static const char DEAUTH_JSON[] = "{\"action\":\"Deauthenticate\",\"tag\":\"d\"}";
static const char DEAUTH_REPLY[] =
	"{\"event\":\"Deauthenticated\",\"tag\":\"d\",\"payload\":{}}";

struct token {
	char *auth_json;        /* the Authenticate action */
	size_t auth_len;
	char *expect;           /* the Authenticated reply */
	size_t expect_len;
};

enum state { ST_CONNECTING, ST_HANDSHAKE, ST_WELCOME, ST_RUNNING, ST_DEAD };

struct pending {
	uint64_t sent_ns;
	unsigned tok;
};

struct conn {
	int fd;
	enum state state;
	unsigned char mask[4];
	unsigned next_tok;
	struct pending q[MAX_DEPTH];   /* pairs in flight, oldest first */
	unsigned qh, qn;
	int awaiting_deauth;           /* the oldest pair's Authenticated came */
	size_t in_len;
	size_t out_off, out_len;
	unsigned char in[IN_SIZE];
	unsigned char out[OUT_SIZE];
};

static struct token *tokens;
static unsigned n_tokens;
static struct conn *conns;
static unsigned n_conns, depth = 1;
static int port;
static int epfd;
static int measuring, stopping;

static unsigned long long completed, errors_window, errors_total, dead_conns;
static uint32_t *lat_us;
static size_t lat_n, lat_cap;
static char *error_samples[MAX_ERROR_SAMPLES];
static unsigned n_error_samples;

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("authload: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);

	if (p == NULL)
		die("out of memory");
	return p;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void note_error(struct conn *c, const char *what, const unsigned char *data,
		       size_t len)
{
	errors_total++;
	if (measuring)
		errors_window++;
	if (n_error_samples < MAX_ERROR_SAMPLES) {
		char *s = xmalloc(len + 128);
		int n = snprintf(s, 128, "socket %u: %s: ", (unsigned)(c - conns), what);

		memcpy(s + n, data, len > 300 ? 300 : len);
		s[n + (len > 300 ? 300 : len)] = '\0';
		for (char *p = s; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == '"' || *p == '\\')
				*p = ' ';
		error_samples[n_error_samples++] = s;
	}
}

static void conn_dead(struct conn *c, const char *why)
{
	if (c->state == ST_DEAD)
		return;
	if (!stopping)
		note_error(c, "connection lost", (const unsigned char *)why, strlen(why));
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->state = ST_DEAD;
	dead_conns++;
}

/* ------------------------------------------------------------ output */

static void flush_out(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT,
							  .data.ptr = c };
				epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
				return;
			}
			conn_dead(c, strerror(errno));
			return;
		}
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
}

/* Append one masked client frame (opcode op) to the output buffer. */
static void put_frame(struct conn *c, int op, const char *data, size_t len)
{
	unsigned char *p;

	if (c->out_off > 0 && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + len + 14 > OUT_SIZE) {
		if (c->out_off > 0) {
			memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->out_off = 0;
		}
		if (c->out_len + len + 14 > OUT_SIZE)
			die("output buffer full (a token too long?)");
	}
	p = c->out + c->out_len;
	*p++ = (unsigned char)(0x80 | op);
	if (len < 126) {
		*p++ = (unsigned char)(0x80 | len);
	} else if (len < 65536) {
		*p++ = 0x80 | 126;
		*p++ = (unsigned char)(len >> 8);
		*p++ = (unsigned char)len;
	} else {
		die("frame too long");
	}
	memcpy(p, c->mask, 4);
	p += 4;
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)data[i] ^ c->mask[i & 3];
	c->out_len = (size_t)(p + len - c->out);
}

static void send_pair(struct conn *c, uint64_t t)
{
	struct token *tk = &tokens[c->next_tok];
	unsigned slot = (c->qh + c->qn) % MAX_DEPTH;

	c->q[slot].sent_ns = t;
	c->q[slot].tok = c->next_tok;
	c->qn++;
	c->next_tok = (c->next_tok + n_conns) % n_tokens;
	put_frame(c, 1, tk->auth_json, tk->auth_len);
	put_frame(c, 1, DEAUTH_JSON, sizeof(DEAUTH_JSON) - 1);
}

/* ------------------------------------------------------------ input */

static void record_latency(uint64_t ns)
{
	if (lat_n == lat_cap) {
		lat_cap = lat_cap ? lat_cap * 2 : 65536;
		lat_us = realloc(lat_us, lat_cap * sizeof(*lat_us));
		if (lat_us == NULL)
			die("out of memory");
	}
	lat_us[lat_n++] = (uint32_t)(ns / 1000);
}

static void on_text(struct conn *c, const unsigned char *data, size_t len, uint64_t t)
{
	if (c->state == ST_WELCOME) {
		static const char welcome[] = "{\"event\":\"Welcome\"";

		if (len < sizeof(welcome) - 1 || memcmp(data, welcome, sizeof(welcome) - 1)) {
			note_error(c, "not a Welcome", data, len);
			conn_dead(c, "no Welcome");
			return;
		}
		c->state = ST_RUNNING;
		for (unsigned i = 0; i < depth; i++)
			send_pair(c, t);
		return;
	}
	if (c->qn == 0) {
		note_error(c, "unexpected message", data, len);
		return;
	}
	if (!c->awaiting_deauth) {
		struct token *tk = &tokens[c->q[c->qh].tok];

		if (len == tk->expect_len && memcmp(data, tk->expect, len) == 0) {
			if (measuring) {
				completed++;
				record_latency(t - c->q[c->qh].sent_ns);
			}
		} else {
			note_error(c, "Authenticate answered", data, len);
		}
		c->awaiting_deauth = 1;
		return;
	}
	if (len != sizeof(DEAUTH_REPLY) - 1 || memcmp(data, DEAUTH_REPLY, len) != 0)
		note_error(c, "Deauthenticate answered", data, len);
	c->awaiting_deauth = 0;
	c->qh = (c->qh + 1) % MAX_DEPTH;
	c->qn--;
	if (!stopping)
		send_pair(c, t);
}

/* Parse the frames in c->in; returns with the incomplete rest kept. */
static void parse_frames(struct conn *c, uint64_t t)
{
	size_t off = 0;

	while (c->state == ST_WELCOME || c->state == ST_RUNNING) {
		unsigned char *b = c->in + off;
		size_t avail = c->in_len - off, hdr = 2;
		uint64_t plen;
		int op;

		if (avail < 2)
			break;
		op = b[0] & 0x0f;
		if (b[1] & 0x80) {
			conn_dead(c, "the server masked a frame");
			return;
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
		if (hdr + plen > IN_SIZE) {
			conn_dead(c, "a frame larger than the input buffer");
			return;
		}
		if (avail < hdr + plen)
			break;
		if (!(b[0] & 0x80)) {
			conn_dead(c, "a fragmented message (not expected here)");
			return;
		}
		switch (op) {
		case 1:
		case 2:
			on_text(c, b + hdr, (size_t)plen, t);
			break;
		case 8:
			note_error(c, "the server closed the socket", b + hdr, (size_t)plen);
			conn_dead(c, "close frame");
			return;
		case 9:
			put_frame(c, 10, (const char *)b + hdr, (size_t)plen);
			break;
		default:
			break;
		}
		off += hdr + (size_t)plen;
	}
	if (c->state == ST_DEAD)
		return;
	if (off > 0) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
}

static void on_handshake(struct conn *c, uint64_t t)
{
	unsigned char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
	size_t head;

	if (end == NULL) {
		if (c->in_len == IN_SIZE)
			conn_dead(c, "handshake response too long");
		return;
	}
	if (c->in_len < 12 || memcmp(c->in, "HTTP/1.1 101", 12) != 0) {
		note_error(c, "handshake refused", c->in, (size_t)(end - c->in));
		conn_dead(c, "handshake refused");
		return;
	}
	head = (size_t)(end - c->in) + 4;
	memmove(c->in, c->in + head, c->in_len - head);
	c->in_len -= head;
	c->state = ST_WELCOME;
	parse_frames(c, t);
}

static void on_readable(struct conn *c)
{
	for (;;) {
		ssize_t n = read(c->fd, c->in + c->in_len, IN_SIZE - c->in_len);
		uint64_t t;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				conn_dead(c, strerror(errno));
			return;
		}
		if (n == 0) {
			conn_dead(c, "end of stream");
			return;
		}
		c->in_len += (size_t)n;
		t = now_ns();
		if (c->state == ST_HANDSHAKE)
			on_handshake(c, t);
		else
			parse_frames(c, t);
		if (c->state == ST_DEAD)
			return;
		if (c->out_len > c->out_off)
			flush_out(c);
		if (c->state == ST_DEAD || (size_t)n < IN_SIZE / 2)
			return;
	}
}

static void on_connected(struct conn *c)
{
	static const char request[] =
		"GET / HTTP/1.1\r\n"
		"Host: 127.0.0.1\r\n"
		"Upgrade: websocket\r\n"
		"Connection: Upgrade\r\n"
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		"Sec-WebSocket-Version: 13\r\n"
		"\r\n";
	int err = 0;
	socklen_t len = sizeof(err);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
		conn_dead(c, err ? strerror(err) : "connect failed");
		return;
	}
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
	c->state = ST_HANDSHAKE;
	memcpy(c->out, request, sizeof(request) - 1);
	c->out_off = 0;
	c->out_len = sizeof(request) - 1;
	flush_out(c);
}

static void conn_open(struct conn *c, unsigned i)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
	int one = 1;
	uint32_t m = 0x9e3779b9u * (i + 1);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memcpy(c->mask, &m, 4);
	c->next_tok = i % n_tokens;
	c->state = ST_CONNECTING;
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
		die("connect: %s", strerror(errno));
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
}

/* ------------------------------------------------------------ setup */

static void load_tokens(const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, alloc = 0;
	ssize_t n;

	if (f == NULL)
		die("%s: %s", path, strerror(errno));
	while ((n = getline(&line, &cap, f)) > 0) {
		char *tok, *uid, *utype;
		struct token *t;

		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0)
			continue;
		tok = line;
		uid = strchr(tok, '\t');
		if (uid == NULL)
			die("%s: a line without a user id", path);
		*uid++ = '\0';
		utype = strchr(uid, '\t');
		if (utype != NULL)
			*utype++ = '\0';
		if (strpbrk(tok, "\"\\") != NULL)
			die("%s: a token with a quote or backslash", path);
		if (n_tokens == alloc) {
			alloc = alloc ? alloc * 2 : 1024;
			tokens = realloc(tokens, alloc * sizeof(*tokens));
			if (tokens == NULL)
				die("out of memory");
		}
		t = &tokens[n_tokens++];
		if (asprintf(&t->auth_json, "{\"action\":\"Authenticate\",\"tag\":\"a\","
			     "\"payload\":{\"session_id\":\"%s\"}}", tok) < 0)
			die("out of memory");
		t->auth_len = strlen(t->auth_json);
		if (utype != NULL && *utype != '\0') {
			if (asprintf(&t->expect, "{\"event\":\"Authenticated\",\"tag\":\"a\","
				     "\"payload\":{\"user_id\":\"%s\",\"user_type\":\"%s\"}}",
				     uid, utype) < 0)
				die("out of memory");
		} else if (asprintf(&t->expect, "{\"event\":\"Authenticated\",\"tag\":\"a\","
				    "\"payload\":{\"user_id\":\"%s\"}}", uid) < 0) {
			die("out of memory");
		}
		t->expect_len = strlen(t->expect);
	}
	free(line);
	fclose(f);
	if (n_tokens == 0)
		die("%s: no tokens", path);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static double pct(double p)
{
	size_t i;

	if (lat_n == 0)
		return 0;
	i = (size_t)(p / 100.0 * (double)(lat_n - 1) + 0.5);
	return lat_us[i];
}

static double tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void usage(void)
{
	fputs("usage: authload -p PORT -f TOKENS [-n SOCKETS] [-k DEPTH] [-w WARMUP_S] "
	      "[-d DURATION_S]\n", stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	const char *token_path = NULL;
	double warmup = 2, duration = 10, window;
	uint64_t t0, t_start = 0, t_end = 0;
	struct rusage ru0, ru1;
	struct epoll_event evs[256];
	int opt;

	n_conns = 200;
	while ((opt = getopt(argc, argv, "p:f:n:k:w:d:")) != -1) {
		switch (opt) {
		case 'p': port = atoi(optarg); break;
		case 'f': token_path = optarg; break;
		case 'n': n_conns = (unsigned)atoi(optarg); break;
		case 'k': depth = (unsigned)atoi(optarg); break;
		case 'w': warmup = atof(optarg); break;
		case 'd': duration = atof(optarg); break;
		default: usage();
		}
	}
	if (port <= 0 || token_path == NULL || n_conns == 0 || depth == 0 ||
	    depth > MAX_DEPTH || duration <= 0)
		usage();
	load_tokens(token_path);
	if (OUT_SIZE < depth * 2 * 1100)
		die("-k too large for the output buffer");

	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1: %s", strerror(errno));
	conns = calloc(n_conns, sizeof(*conns));
	if (conns == NULL)
		die("out of memory");
	t0 = now_ns();
	for (unsigned i = 0; i < n_conns; i++)
		conn_open(&conns[i], i);

	for (;;) {
		uint64_t t = now_ns(), next;
		int timeout_ms, n;

		if (!measuring && t_start == 0 && t >= t0 + (uint64_t)(warmup * 1e9)) {
			measuring = 1;
			t_start = t;
			getrusage(RUSAGE_SELF, &ru0);
			printf("START\n");
			fflush(stdout);
		}
		if (measuring && t >= t_start + (uint64_t)(duration * 1e9)) {
			measuring = 0;
			t_end = t;
			getrusage(RUSAGE_SELF, &ru1);
			printf("END\n");
			fflush(stdout);
			break;
		}
		if (dead_conns == n_conns) {
			fprintf(stderr, "authload: every connection is gone\n");
			if (measuring) {
				t_end = t;
				getrusage(RUSAGE_SELF, &ru1);
			}
			break;
		}
		next = t_start ? t_start + (uint64_t)(duration * 1e9)
			       : t0 + (uint64_t)(warmup * 1e9);
		timeout_ms = next > t ? (int)((next - t) / 1000000) + 1 : 0;
		if (timeout_ms > 100)
			timeout_ms = 100;
		n = epoll_wait(epfd, evs, 256, timeout_ms);
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;

			if (c->state == ST_DEAD)
				continue;
			if (c->state == ST_CONNECTING) {
				on_connected(c);
				continue;
			}
			if (evs[i].events & EPOLLOUT) {
				struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

				flush_out(c);
				if (c->state != ST_DEAD && c->out_off == c->out_len)
					epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
			}
			if (c->state != ST_DEAD && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				on_readable(c);
		}
	}
	stopping = 1;

	window = t_end > t_start && t_start ? (double)(t_end - t_start) / 1e9 : 0;
	qsort(lat_us, lat_n, sizeof(*lat_us), cmp_u32);
	printf("RESULT {\"completed\":%llu,\"seconds\":%.4f,\"rate\":%.1f,"
	       "\"errors\":%llu,\"errors_total\":%llu,\"dead_sockets\":%llu,"
	       "\"sockets\":%u,\"depth\":%u,\"tokens\":%u,"
	       "\"p50_us\":%.0f,\"p90_us\":%.0f,\"p99_us\":%.0f,\"p999_us\":%.0f,"
	       "\"max_us\":%.0f,\"user_cpu\":%.4f,\"sys_cpu\":%.4f,\"error_samples\":[",
	       completed, window, window > 0 ? (double)completed / window : 0.0,
	       errors_window, errors_total, dead_conns, n_conns, depth, n_tokens,
	       pct(50), pct(90), pct(99), pct(99.9), lat_n ? (double)lat_us[lat_n - 1] : 0.0,
	       t_start && t_end ? tv_s(ru1.ru_utime) - tv_s(ru0.ru_utime) : 0.0,
	       t_start && t_end ? tv_s(ru1.ru_stime) - tv_s(ru0.ru_stime) : 0.0);
	for (unsigned i = 0; i < n_error_samples; i++)
		printf("%s\"%s\"", i ? "," : "", error_samples[i]);
	printf("]}\n");
	fflush(stdout);
	return errors_total > 0 ? 1 : 0;
}
