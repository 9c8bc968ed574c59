/*
 * Publishing through RabbitMQ for myxid-bench: basic.publish on one
 * channel to exchange --exchange (declared by the server, not here), the
 * routing key the key text, the body {"event":"Bench","payload":{"seq":S,
 * "t":T}} as Myxi.push_event would send it. rabbitmq-c blocks, which is
 * fine on the publisher's own thread. No publisher confirms: a message
 * the broker drops shows up as lost deliveries.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <amqp.h>
#include <amqp_tcp_socket.h>

#include "bench_publish.h"
#include "bench_run.h"

static amqp_connection_state_t conn;
static char *url_copy;

/* What an RPC reply means, for messages. */
static const char *reply_text(amqp_rpc_reply_t r)
{
	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL:
		return "ok";
	case AMQP_RESPONSE_LIBRARY_EXCEPTION:
		return amqp_error_string2(r.library_error);
	case AMQP_RESPONSE_SERVER_EXCEPTION:
		return "refused by the broker (login or channel)";
	default:
		return "no reply";
	}
}

static int amqp_open(char *err, size_t err_size)
{
	static char root_vhost[] = "/";
	struct amqp_connection_info info;
	amqp_socket_t *sock;
	amqp_rpc_reply_t r;
	int st;

	url_copy = strdup(run.o.amqp_url);
	if (url_copy == NULL || amqp_parse_url(url_copy, &info) != AMQP_STATUS_OK) {
		snprintf(err, err_size, "invalid --amqp-url");
		return -1;
	}
	/* "amqp://host/" reads as the vhost "", which no broker has. */
	if (*info.vhost == '\0')
		info.vhost = root_vhost;
	conn = amqp_new_connection();
	sock = amqp_tcp_socket_new(conn);
	if (sock == NULL) {
		snprintf(err, err_size, "cannot create an AMQP socket");
		return -1;
	}
	st = amqp_socket_open(sock, info.host, info.port);
	if (st != AMQP_STATUS_OK) {
		snprintf(err, err_size, "connect to %s:%d: %s", info.host, info.port,
			 amqp_error_string2(st));
		return -1;
	}
	r = amqp_login(conn, info.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN,
		       info.user, info.password);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		snprintf(err, err_size, "AMQP login: %s", reply_text(r));
		return -1;
	}
	amqp_channel_open(conn, 1);
	r = amqp_get_rpc_reply(conn);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		snprintf(err, err_size, "AMQP channel: %s", reply_text(r));
		return -1;
	}
	return 0;
}

static int amqp_can_send(void)
{
	return 1;
}

static int amqp_send(uint64_t seq, const char *key, uint64_t t_ns)
{
	char body[256];
	int n = snprintf(body, sizeof(body),
			 "{\"event\":\"Bench\",\"payload\":{\"seq\":%llu,\"t\":%llu}}",
			 (unsigned long long)seq, (unsigned long long)t_ns);
	amqp_bytes_t b = { .len = (size_t)n, .bytes = body };
	int st = amqp_basic_publish(conn, 1, amqp_cstring_bytes(run.o.exchange),
				    amqp_cstring_bytes(key), 0, 0, NULL, b);

	if (st != AMQP_STATUS_OK) {
		fprintf(stderr, "myxid-bench: basic.publish: %s\n", amqp_error_string2(st));
		return -1;
	}
	return 0;
}

static int amqp_poll_fds(struct pollfd *fds, int max)
{
	return 0;
}

static void amqp_on_poll(struct pollfd *fds, int n)
{
}

/* Closing the channel is a round trip behind every publish: once it is
 * answered the broker has routed them all. */
static void amqp_finish(uint64_t deadline_ns)
{
	amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
	amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(conn);
	free(url_copy);
}

const struct pub_backend pub_amqp = {
	.open = amqp_open,
	.can_send = amqp_can_send,
	.send = amqp_send,
	.poll_fds = amqp_poll_fds,
	.on_poll = amqp_on_poll,
	.finish = amqp_finish,
};
