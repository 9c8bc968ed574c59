/*
 * bare-consumer: the broker's own ceiling for bench/run's S3 scenario.
 *
 * It consumes the way myxid's broker link does (server/broker_thread.c), minus
 * everything myxid does with a message: one named queue (not exclusive,
 * x-expires 60 s) bound to K routing keys of a direct exchange, manual
 * acknowledgements, prefetch 2048, acks batched every 512 deliveries with
 * "multiple" set (and whatever is pending when the socket runs dry). It
 * does not parse the bodies. So whatever rate myxid reaches in S3, the
 * difference to this one is what myxid's own work costs.
 *
 *   bare-consumer --url amqp://guest:guest@127.0.0.1:PORT --exchange bench
 *                 --keys K [--key-format k%d] [--messages M]
 *                 [--timeout SECONDS] [--idle SECONDS]
 *
 * Once the queue is bound and the consumer registered it prints
 * "bare-consumer: ready" on stderr (the driver starts publishing then).
 * It stops after M messages, or when none came for --idle seconds after
 * the first one (default 5), or after --timeout seconds in all (default
 * 120), and prints one JSON line on stdout: messages, messages_per_second
 * over the window from the first delivery to the last, the window, and
 * its own CPU. Exit status: 0 if M messages came (or M was not given and
 * at least one did), 1 otherwise, 2 for bad usage or a broker error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <amqp.h>
#include <amqp_tcp_socket.h>

/* The values of server/broker_thread.c: keep them in step. */
#define PREFETCH 2048
#define ACK_BATCH (PREFETCH / 4)
#define QUEUE_EXPIRES_MS 60000
#define CHANNEL 1
#define POLL_MS 100

struct options {
	const char *url;
	const char *exchange;
	const char *key_format;
	long keys;
	long messages;          /* 0: no count to wait for */
	double timeout_s;
	double idle_s;
};

struct tally {
	uint64_t messages;
	uint64_t redelivered;
	uint64_t bytes;
	uint64_t acks;          /* ack frames sent */
	double first;           /* CLOCK_MONOTONIC seconds of the first delivery */
	double last;
	bool timed_out;
};

static void die(int status, const char *fmt, ...)
{
	va_list ap;

	fputs("bare-consumer: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A library call's reply: dies (status 2) unless it is a normal one. */
static void check_reply(amqp_rpc_reply_t r, const char *what)
{
	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL:
		return;
	case AMQP_RESPONSE_LIBRARY_EXCEPTION:
		die(2, "%s: %s", what, amqp_error_string2(r.library_error));
		break;
	case AMQP_RESPONSE_SERVER_EXCEPTION:
		if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
			amqp_channel_close_t *m = r.reply.decoded;
			die(2, "%s: channel closed: %u %.*s", what, m->reply_code,
			    (int)m->reply_text.len, (char *)m->reply_text.bytes);
		}
		if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
			amqp_connection_close_t *m = r.reply.decoded;
			die(2, "%s: connection closed: %u %.*s", what, m->reply_code,
			    (int)m->reply_text.len, (char *)m->reply_text.bytes);
		}
		die(2, "%s: server method 0x%08x", what, r.reply.id);
		break;
	default:
		die(2, "%s: no reply", what);
	}
}

static void usage(void)
{
	fputs("usage: bare-consumer --url AMQP_URL --exchange X --keys K [--key-format k%d]\n"
	      "                     [--messages M] [--timeout SECONDS] [--idle SECONDS]\n", stderr);
	exit(2);
}

static void parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "exchange", required_argument, NULL, 'x' },
		{ "keys", required_argument, NULL, 'k' },
		{ "key-format", required_argument, NULL, 'f' },
		{ "messages", required_argument, NULL, 'm' },
		{ "timeout", required_argument, NULL, 't' },
		{ "idle", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	*o = (struct options){ "amqp://guest:guest@127.0.0.1:5672", "bench", "k%d",
			       1, 0, 120, 5 };
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'u': o->url = optarg; break;
		case 'x': o->exchange = optarg; break;
		case 'k': o->keys = strtol(optarg, NULL, 10); break;
		case 'f': o->key_format = optarg; break;
		case 'm': o->messages = strtol(optarg, NULL, 10); break;
		case 't': o->timeout_s = strtod(optarg, NULL); break;
		case 'i': o->idle_s = strtod(optarg, NULL); break;
		default: usage();
		}
	}
	if (optind != argc || o->keys < 1 || o->messages < 0 || o->timeout_s <= 0 ||
	    o->idle_s <= 0)
		usage();
	/* One %d and no other conversion: it is handed to snprintf. */
	{
		const char *p = strchr(o->key_format, '%');
		if (p == NULL || p[1] != 'd' || strchr(p + 2, '%') != NULL)
			die(2, "--key-format needs exactly one %%d");
	}
}

/* Log in and open the channel; the connection is the caller's to close. */
static amqp_connection_state_t connect_broker(const char *url)
{
	struct amqp_connection_info info;
	amqp_connection_state_t conn;
	amqp_socket_t *sock;
	char *copy = strdup(url);

	if (copy == NULL || amqp_parse_url(copy, &info) != AMQP_STATUS_OK)
		die(2, "cannot parse --url %s", url);
	if (info.ssl)
		die(2, "amqps:// is not supported here");
	conn = amqp_new_connection();
	sock = amqp_tcp_socket_new(conn);
	if (sock == NULL)
		die(2, "out of memory");
	if (amqp_socket_open(sock, info.host, info.port) != AMQP_STATUS_OK)
		die(2, "cannot connect to %s:%d", info.host, info.port);
	check_reply(amqp_login(conn, info.vhost, 0, AMQP_DEFAULT_FRAME_SIZE, 0,
			       AMQP_SASL_METHOD_PLAIN, info.user, info.password),
		    "login");
	amqp_channel_open(conn, CHANNEL);
	check_reply(amqp_get_rpc_reply(conn), "channel.open");
	free(copy);
	return conn;
}

/* The exchange as myxid declares a config "exchange" (direct, not durable),
 * a queue like its node queue, K bindings, then prefetch and consume.
 * Returns the queue's name (the caller frees it). */
static amqp_bytes_t set_up_queue(amqp_connection_state_t conn, const struct options *o)
{
	amqp_table_entry_t arg;
	amqp_table_t args = { 1, &arg };
	amqp_queue_declare_ok_t *ok;
	char key[256];
	long i;

	amqp_exchange_declare(conn, CHANNEL, amqp_cstring_bytes(o->exchange),
			      amqp_cstring_bytes("direct"), 0, 0, 0, 0, amqp_empty_table);
	check_reply(amqp_get_rpc_reply(conn), "exchange.declare");

	arg.key = amqp_cstring_bytes("x-expires");
	arg.value.kind = AMQP_FIELD_KIND_I32;
	arg.value.value.i32 = QUEUE_EXPIRES_MS;
	ok = amqp_queue_declare(conn, CHANNEL, amqp_empty_bytes, 0, 0, 0, 0, args);
	check_reply(amqp_get_rpc_reply(conn), "queue.declare");
	/* The broker's generated name; copied before the pool is reused. */
	amqp_bytes_t queue = amqp_bytes_malloc_dup(ok->queue);

	for (i = 0; i < o->keys; i++) {
		snprintf(key, sizeof(key), o->key_format, (int)i);
		amqp_queue_bind(conn, CHANNEL, queue, amqp_cstring_bytes(o->exchange),
				amqp_cstring_bytes(key), amqp_empty_table);
		check_reply(amqp_get_rpc_reply(conn), "queue.bind");
		amqp_maybe_release_buffers(conn);
	}
	amqp_basic_qos(conn, CHANNEL, 0, PREFETCH, 0);
	check_reply(amqp_get_rpc_reply(conn), "basic.qos");
	amqp_basic_consume(conn, CHANNEL, queue, amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
	check_reply(amqp_get_rpc_reply(conn), "basic.consume");
	fprintf(stderr, "bare-consumer: ready: queue %.*s, %ld keys bound\n",
		(int)queue.len, (char *)queue.bytes, o->keys);
	return queue;
}

/* Acknowledge everything up to tag in one frame. */
static void ack_through(amqp_connection_state_t conn, uint64_t tag, struct tally *t)
{
	if (amqp_basic_ack(conn, CHANNEL, tag, 1) != AMQP_STATUS_OK)
		die(2, "basic.ack failed");
	t->acks++;
}

static void consume(amqp_connection_state_t conn, const struct options *o, struct tally *t)
{
	double start = now_s();
	uint64_t last_tag = 0, unacked = 0;

	for (;;) {
		struct timeval tv = { 0, POLL_MS * 1000 };
		amqp_envelope_t env;
		amqp_rpc_reply_t r;
		double now;

		amqp_maybe_release_buffers(conn);
		r = amqp_consume_message(conn, &env, &tv, 0);
		now = now_s();
		if (r.reply_type == AMQP_RESPONSE_NORMAL) {
			if (t->messages == 0)
				t->first = now;
			t->last = now;
			t->messages++;
			t->bytes += env.message.body.len;
			if (env.redelivered)
				t->redelivered++;
			last_tag = env.delivery_tag;
			amqp_destroy_envelope(&env);
			if (++unacked >= ACK_BATCH) {
				ack_through(conn, last_tag, t);
				unacked = 0;
			}
			if (o->messages && t->messages >= (uint64_t)o->messages)
				break;
			continue;
		}
		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
		    r.library_error == AMQP_STATUS_TIMEOUT) {
			/* The socket ran dry: acknowledge what is pending, as
			 * myxid does, so the broker never waits on us. */
			if (unacked) {
				ack_through(conn, last_tag, t);
				unacked = 0;
			}
			if (t->messages && now - t->last >= o->idle_s)
				break;
		} else {
			check_reply(r, "basic.consume");
		}
		if (now - start >= o->timeout_s) {
			t->timed_out = true;
			break;
		}
	}
	if (unacked)
		ack_through(conn, last_tag, t);
}

static double tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void report(const struct options *o, const struct tally *t)
{
	struct rusage ru;
	double window = t->messages > 1 ? t->last - t->first : 0;

	getrusage(RUSAGE_SELF, &ru);
	printf("{\"messages\":%llu,\"expected\":%ld,\"keys\":%ld,\"bytes\":%llu,"
	       "\"redelivered\":%llu,\"window_seconds\":%.6f,\"messages_per_second\":%.1f,"
	       "\"prefetch\":%d,\"ack_batch\":%d,\"acks\":%llu,\"timed_out\":%s,"
	       "\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f}\n",
	       (unsigned long long)t->messages, o->messages, o->keys,
	       (unsigned long long)t->bytes, (unsigned long long)t->redelivered, window,
	       window > 0 ? (double)(t->messages - 1) / window : 0.0, PREFETCH, ACK_BATCH,
	       (unsigned long long)t->acks, t->timed_out ? "true" : "false",
	       tv_s(ru.ru_utime), tv_s(ru.ru_stime));
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct options o;
	struct tally t = { 0 };
	amqp_connection_state_t conn;
	amqp_bytes_t queue;

	parse_options(argc, argv, &o);
	conn = connect_broker(o.url);
	queue = set_up_queue(conn, &o);
	consume(conn, &o, &t);
	report(&o, &t);
	/* Gone now rather than in 60 s: a later run on the same broker must
	 * not route its messages into it too. */
	amqp_queue_delete(conn, CHANNEL, queue, 0, 0);
	amqp_bytes_free(queue);
	amqp_channel_close(conn, CHANNEL, AMQP_REPLY_SUCCESS);
	amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(conn);
	if (o.messages)
		return t.messages == (uint64_t)o.messages ? 0 : 1;
	return t.messages > 0 ? 0 : 1;
}
