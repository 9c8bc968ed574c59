/*
 * myxid-push: publish one event to RabbitMQ exactly as Myxi.push_event
 * does, for shell scripts and deploy hooks:
 *
 *   myxid-push [options] EXCHANGE ROUTING_KEY EVENT [JSON_PAYLOAD]
 *
 * The body is {"event":EVENT,"payload":PAYLOAD} byte for byte as Ruby's
 * to_json writes it, published with Bunny's default properties to an
 * exchange declared the way Myxi declares it. Publisher confirms make exit
 * status 0 mean the broker has the message; 1 is a broker problem, 2 bad
 * usage or input.
 */
#include "json_input.h"
#include "utf8.h"

#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <json-c/json.h>
#include <json-c/printbuf.h>
#include <openssl/x509.h>

#include <float.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "history_stream.h"
#include <unistd.h>

#define PROG "myxid-push"
#define EXIT_BROKER 1
#define EXIT_USAGE 2

/* What Bunny, and so Myxi, uses when RABBITMQ_URL is unset. */
#define DEFAULT_URL "amqp://guest:guest@localhost:5672/"
#define DEFAULT_TIMEOUT 10
#define MAX_TIMEOUT 3600
#define CHANNEL 1
/* Where the history stream is looked for: a 404 closes the channel. */
#define PROBE_CHANNEL 2
/* Exchange names and routing keys are AMQP short strings. */
#define SHORTSTR_MAX 255
/* myxid drops broker bodies nesting deeper than 64 levels (publish.c); the
 * body wraps the payload in one more. */
#define PAYLOAD_MAX_DEPTH 63
#define JSON_SPACE " \t\r\n"

struct options {
	const char *urls;       /* one URL or a comma-separated list */
	const char *type;       /* exchange type */
	const char *cacert;
	bool durable;
	bool insecure;
	bool verbose;
	int timeout;            /* seconds, for each wait on a broker */
	const char *exchange;
	const char *routing_key;
	const char *event;
	const char *payload;    /* JSON text, or NULL for {} */
	const char *history;    /* auto, on or off: publish to the stream */
	const char *prefix;     /* myxid's queue_prefix: names the stream */
	char stream[2 * SHORTSTR_MAX];   /* PREFIX.history.EXCHANGE */
	bool to_stream;         /* decided: the stream, not the exchange */
};

struct broker_url {
	char *parsed;           /* amqp_parse_url's copy; info points into it */
	struct amqp_connection_info info;
	char masked[512];       /* for messages: the password shown as *** */
};

/* Global so that the SIGALRM handler honours it too. */
static volatile sig_atomic_t quiet;

static const char usage_text[] =
	"usage: " PROG " [-u URL] [-t TYPE] [-d] [-T SECONDS] [-q|-v] [--cacert FILE]\n"
	"                  [--insecure] [-H auto|on|off] [--prefix PREFIX]\n"
	"                  EXCHANGE ROUTING_KEY EVENT [JSON_PAYLOAD]\n"
	"\n"
	"Publish {\"event\":EVENT,\"payload\":JSON_PAYLOAD} as Myxi.push_event does.\n"
	"\n"
	"  -u, --url URL       broker URL, or a comma-separated list tried in order\n"
	"                      (default: $RABBITMQ_URL, else " DEFAULT_URL ")\n"
	"  -t, --type TYPE     exchange type: direct (default), topic or fanout\n"
	"  -d, --durable       the exchange is durable\n"
	"  -T, --timeout SECS  wait at most this long for each broker step (default 10)\n"
	"      --cacert FILE   CA certificates for amqps:// (default: the system's)\n"
	"      --insecure      do not verify the amqps:// server's certificate\n"
	"  -H, --history WHEN  publish to the exchange's history stream\n"
	"                      (PREFIX.history.EXCHANGE, kept and positioned by\n"
	"                      myxid): auto (default: if it exists), on, or off\n"
	"      --prefix PREFIX myxid's queue_prefix (default myxid)\n"
	"  -q, --quiet         print no broker errors; the exit status tells\n"
	"  -v, --verbose       print one line once the broker has the message\n"
	"  -h, --help          this text\n"
	"  -V, --version       the version\n"
	"\n"
	"JSON_PAYLOAD is any JSON value (default {}). Exit status: 0 published and\n"
	"confirmed, 1 no broker reachable or it refused, 2 bad usage or input.\n";

/* ------------------------------------------------------------ messages */

static void vsay(const char *fmt, va_list ap)
{
	fputs(PROG ": ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

/* A broker problem: -q silences it, the exit status still tells. */
static void complain(const char *fmt, ...)
{
	va_list ap;

	if (quiet)
		return;
	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
}

/* Bad usage or input is a bug in the calling script: always said. */
static void usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
	fputs("Try '" PROG " --help'.\n", stderr);
	exit(EXIT_USAGE);
}

static void *must(void *p)
{
	if (p == NULL) {
		fputs(PROG ": out of memory\n", stderr);
		exit(EXIT_BROKER);
	}
	return p;
}

/* rabbitmq-c's send path has no timeout (a broker under a resource alarm
 * stops reading), so an alarm bounds the publish. Async-signal-safe only. */
static void on_alarm(int sig)
{
	static const char msg[] = PROG ": timed out talking to the broker\n";

	if (!quiet)
		(void)!write(STDERR_FILENO, msg, sizeof msg - 1);
	_exit(EXIT_BROKER);
}

/* ------------------------------------------------------------ arguments */

static int parse_timeout(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (end == s || *end != '\0' || v < 1 || v > MAX_TIMEOUT)
		usage_error("timeout must be 1 to %d seconds: %s", MAX_TIMEOUT, s);
	return (int)v;
}

static void check_shortstr(const char *what, const char *s)
{
	if (strlen(s) > SHORTSTR_MAX)
		usage_error("%s is longer than %d bytes", what, SHORTSTR_MAX);
}

static void check_args(struct options *o)
{
	if (strcmp(o->type, "direct") != 0 && strcmp(o->type, "topic") != 0 &&
	    strcmp(o->type, "fanout") != 0)
		usage_error("exchange type must be direct, topic or fanout: %s", o->type);
	if (*o->exchange == '\0')
		usage_error("EXCHANGE must not be empty");
	check_shortstr("EXCHANGE", o->exchange);
	check_shortstr("ROUTING_KEY", o->routing_key);
	/* Ruby's to_json raises on a string that is not UTF-8. */
	if (!utf8_valid(o->event, strlen(o->event)))
		usage_error("EVENT is not valid UTF-8");
	if (strcmp(o->history, "auto") != 0 && strcmp(o->history, "on") != 0 &&
	    strcmp(o->history, "off") != 0)
		usage_error("--history must be auto, on or off: %s", o->history);
	check_shortstr("PREFIX", o->prefix);
	snprintf(o->stream, sizeof(o->stream), "%s.history.%s", o->prefix, o->exchange);
	if (strcmp(o->history, "off") != 0)
		check_shortstr("the stream name", o->stream);
	if (o->urls == NULL)
		o->urls = getenv("RABBITMQ_URL");
	if (o->urls == NULL || *o->urls == '\0')
		o->urls = DEFAULT_URL;
}

static void parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "type", required_argument, NULL, 't' },
		{ "durable", no_argument, NULL, 'd' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "cacert", required_argument, NULL, 'C' },
		{ "insecure", no_argument, NULL, 'k' },
		{ "history", required_argument, NULL, 'H' },
		{ "prefix", required_argument, NULL, 'P' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	int c, n;

	/* "+": options end at the first operand, so a payload such as -1 or
	 * an event name starting with '-' is never taken for an option. */
	while ((c = getopt_long(argc, argv, "+u:t:dT:H:qvhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'u': o->urls = optarg; break;
		case 't': o->type = optarg; break;
		case 'd': o->durable = true; break;
		case 'T': o->timeout = parse_timeout(optarg); break;
		case 'C': o->cacert = optarg; break;
		case 'k': o->insecure = true; break;
		case 'H': o->history = optarg; break;
		case 'P': o->prefix = optarg; break;
		case 'q': quiet = 1; break;
		case 'v': o->verbose = true; break;
		case 'h': fputs(usage_text, stdout); exit(0);
		case 'V': puts(PROG " " PACKAGE_VERSION); exit(0);
		default: fputs(usage_text, stderr); exit(EXIT_USAGE);
		}
	}
	n = argc - optind;
	if (n < 3 || n > 4)
		usage_error("expected EXCHANGE ROUTING_KEY EVENT [JSON_PAYLOAD]");
	o->exchange = argv[optind];
	o->routing_key = argv[optind + 1];
	o->event = argv[optind + 2];
	o->payload = n == 4 ? argv[optind + 3] : NULL;
	check_args(o);
}

/* ------------------------------------------------------------ the body */

/*
 * Ruby's Float#to_s, which to_json uses: the shortest digits that read back
 * as the same double, in fixed notation (always with a fraction) unless the
 * exponent is large or small. json-c would write a parsed number as it was
 * typed, so 1.50 or 1E3 would differ from what a Ruby publisher sends.
 * out needs 32 bytes.
 */
static void ruby_float_text(double d, char *out)
{
	char e[32], digits[20];
	int prec, decpt, i, n = 0;
	const char *p;

	for (prec = 0; prec < 17; prec++) {
		snprintf(e, sizeof e, "%.*e", prec, d);
		if (strtod(e, NULL) == d)
			break;
	}
	/* e is "-d.ddde+XX": keep the digits, less trailing zeros. */
	for (p = e; *p != 'e'; p++)
		if (*p >= '0' && *p <= '9')
			digits[n++] = *p;
	while (n > 1 && digits[n - 1] == '0')
		n--;
	decpt = atoi(p + 1) + 1;        /* digits before the point */

	if (signbit(d))
		*out++ = '-';
	/* Float#to_s's own limits: a fraction, or up to DBL_DIG integer
	 * digits, or down to 0.0001. */
	if (decpt > 0 && (decpt < n || decpt <= DBL_DIG)) {
		for (i = 0; i < decpt; i++)
			*out++ = i < n ? digits[i] : '0';
		*out++ = '.';
		for (i = decpt; i < n || i == decpt; i++)
			*out++ = i < n ? digits[i] : '0';
	} else if (decpt <= 0 && decpt > -4) {
		*out++ = '0';
		*out++ = '.';
		for (i = decpt; i < n; i++)
			*out++ = i < 0 ? '0' : digits[i];
	} else {
		*out++ = digits[0];
		*out++ = '.';
		for (i = 1; i < n || i == 1; i++)
			*out++ = i < n ? digits[i] : '0';
		out += sprintf(out, "e%+03d", decpt - 1);
	}
	*out = '\0';
}

static int ruby_float_serializer(json_object *o, struct printbuf *pb,
				 int level, int flags)
{
	char text[32];

	ruby_float_text(json_object_get_double(o), text);
	return printbuf_memappend(pb, text, (int)strlen(text));
}

/*
 * Have json-c write o's numbers as Ruby would. False if an integer did not
 * fit in 64 bits: json-c clamps those silently (to INT64_MIN or
 * UINT64_MAX, so those two exact values are refused too), Ruby would not.
 */
static bool rubify_numbers(json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_double:
		json_object_set_serializer(o, ruby_float_serializer, NULL, NULL);
		return true;
	case json_type_int:
		return json_object_get_int64(o) != INT64_MIN &&
			json_object_get_uint64(o) != UINT64_MAX;
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(o); i++)
			if (!rubify_numbers(json_object_array_get_idx(o, i)))
				return false;
		return true;
	case json_type_object: {
		json_object_object_foreach(o, key, val) {
			(void)key;
			if (!rubify_numbers(val))
				return false;
		}
		return true;
	}
	default:
		return true;
	}
}

/* json-c's null is a NULL object, which json_input_parse also returns for
 * bad input: tell them apart by the text. */
static bool is_json_null(const char *s)
{
	s += strspn(s, JSON_SPACE);
	if (strncmp(s, "null", 4) != 0)
		return false;
	s += 4;
	return s[strspn(s, JSON_SPACE)] == '\0';
}

/* Parse the payload into *out; NULL, or what is wrong with it. */
static const char *parse_payload(const char *text, json_object **out)
{
	size_t len = strlen(text);
	char *padded = must(malloc(len + 2));

	/* json-c finishes a number at the top level only at a delimiter. */
	memcpy(padded, text, len);
	strcpy(padded + len, " ");
	*out = json_input_parse(padded, len + 1, PAYLOAD_MAX_DEPTH);
	free(padded);
	if (*out == NULL)
		return is_json_null(text) ? NULL :
			"is not valid JSON (strict, UTF-8, finite numbers, "
			"at most 63 levels deep)";
	if (!rubify_numbers(*out)) {
		json_object_put(*out);
		return "has an integer that does not fit in 64 bits";
	}
	return NULL;
}

/* The body, or exit 2 if the payload is not JSON that Ruby could send. */
static char *build_body(const struct options *o)
{
	json_object *body, *payload = NULL;
	const char *why;
	char *text;

	if (o->payload == NULL)
		payload = json_object_new_object();
	else if ((why = parse_payload(o->payload, &payload)) != NULL)
		usage_error("JSON_PAYLOAD %s", why);
	/* json-c keeps insertion order: event first, as Ruby's hash has it.
	 * Ruby's to_json leaves "/" and non-ASCII alone. */
	body = json_object_new_object();
	json_object_object_add(body, "event", json_object_new_string(o->event));
	json_object_object_add(body, "payload", payload);
	text = must(strdup(json_object_to_json_string_ext(body,
			JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)));
	json_object_put(body);
	return text;
}

/* ------------------------------------------------------------ broker URLs */

/* url with its password replaced by ***, for messages. */
static void mask_url(const char *url, char *out, size_t size)
{
	const char *scheme = strstr(url, "://");
	const char *auth = scheme != NULL ? scheme + 3 : url;
	size_t len = strcspn(auth, "/?#");
	const char *at = NULL, *colon;

	for (size_t i = 0; i < len; i++)
		if (auth[i] == '@')
			at = auth + i;
	colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	if (colon == NULL)
		snprintf(out, size, "%s", url);
	else
		snprintf(out, size, "%.*s***%s", (int)(colon + 1 - url), url, at);
}

static void parse_url(char *text, struct broker_url *u)
{
	static char root_vhost[] = "/";

	mask_url(text, u->masked, sizeof u->masked);
	u->parsed = must(strdup(text));
	if (amqp_parse_url(u->parsed, &u->info) != AMQP_STATUS_OK)
		usage_error("invalid broker URL: %s", u->masked);
	/* rabbitmq-c (and Bunny) read "amqp://host/" as the vhost "", which
	 * no broker has; the user means "/", as pika reads it. */
	if (*u->info.vhost == '\0')
		u->info.vhost = root_vhost;
}

/* Parse every URL of the comma-separated list up front, so that a typo in
 * the second is reported even while the first answers. */
static struct broker_url *parse_urls(const char *list, size_t *count)
{
	size_t max = 1, n = 0;
	struct broker_url *urls;
	char *copy, *tok, *save;

	for (const char *p = list; *p != '\0'; p++)
		max += *p == ',';
	urls = must(calloc(max, sizeof *urls));
	copy = must(strdup(list));
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		tok += strspn(tok, " \t");
		tok[strcspn(tok, " \t")] = '\0';
		if (*tok != '\0')
			parse_url(tok, &urls[n++]);
	}
	free(copy);
	if (n == 0)
		usage_error("no broker URL in '%s'", list);
	*count = n;
	return urls;
}

static void free_urls(struct broker_url *urls, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(urls[i].parsed);
	free(urls);
}

/* ------------------------------------------------------------ replies */

static void describe_status(int status, char *why, size_t size)
{
	const char *hint = "";

	if (status == AMQP_STATUS_SSL_PEER_VERIFY_FAILED ||
	    status == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED)
		hint = " (see --cacert and --insecure)";
	/* rabbitmq-c says only "a socket error occurred", and leaves errno
	 * stale: this is what it means when connecting. */
	if (status == AMQP_STATUS_SOCKET_ERROR)
		hint = " (connection refused or host unreachable)";
	snprintf(why, size, "%s%s", amqp_error_string2(status), hint);
}

/* A connection.close's or channel.close's reply code and text (RabbitMQ's
 * text starts with the code's name); 0 for any other method. */
static int close_reason(const amqp_method_t *m, char *why, size_t size)
{
	const amqp_connection_close_t *cc = m->decoded;
	const amqp_channel_close_t *ch = m->decoded;
	amqp_bytes_t text;
	int code;

	if (m->id == AMQP_CONNECTION_CLOSE_METHOD) {
		code = cc->reply_code;
		text = cc->reply_text;
	} else if (m->id == AMQP_CHANNEL_CLOSE_METHOD) {
		code = ch->reply_code;
		text = ch->reply_text;
	} else {
		snprintf(why, size, "unexpected %s", amqp_method_name(m->id));
		return 0;
	}
	snprintf(why, size, "%.*s", (int)text.len, (const char *)text.bytes);
	return code;
}

/* Why an RPC failed; returns the broker's reply code, if it sent one. */
static int describe_reply(amqp_rpc_reply_t r, char *why, size_t size)
{
	switch (r.reply_type) {
	case AMQP_RESPONSE_SERVER_EXCEPTION:
		return close_reason(&r.reply, why, size);
	case AMQP_RESPONSE_LIBRARY_EXCEPTION:
		describe_status(r.library_error, why, size);
		return 0;
	default:
		snprintf(why, size, "no reply");
		return 0;
	}
}

/* ------------------------------------------------------------ the broker */

/* An amqps:// socket verifying the server against --cacert, else the
 * system's CAs (rabbitmq-c 0.11 loads none by itself). */
static amqp_socket_t *tls_socket(amqp_connection_state_t conn,
				 const struct options *o, char *why, size_t size)
{
	amqp_socket_t *sock = amqp_ssl_socket_new(conn);
	const char *ca = o->cacert;

	if (sock == NULL) {
		snprintf(why, size, "cannot set up TLS");
		return NULL;
	}
	if (o->insecure) {
		amqp_ssl_socket_set_verify_peer(sock, 0);
		amqp_ssl_socket_set_verify_hostname(sock, 0);
		return sock;
	}
	if (ca == NULL)
		ca = getenv(X509_get_default_cert_file_env());
	if (ca == NULL)
		ca = X509_get_default_cert_file();
	if (amqp_ssl_socket_set_cacert(sock, ca) != AMQP_STATUS_OK) {
		snprintf(why, size, "cannot load CA certificates from %s", ca);
		return NULL;
	}
	return sock;
}

/* Connect, log in and open our channel; NULL and why if any step fails. */
static amqp_connection_state_t open_broker(const struct broker_url *u,
					   const struct options *o,
					   char *why, size_t size)
{
	struct timeval tv = { .tv_sec = o->timeout };
	amqp_connection_state_t conn = must(amqp_new_connection());
	amqp_socket_t *sock;
	amqp_rpc_reply_t r;
	int status;

	/* The socket timeout covers TCP connect and TLS handshake; these two
	 * the AMQP handshake and every RPC after it. */
	amqp_set_handshake_timeout(conn, &tv);
	amqp_set_rpc_timeout(conn, &tv);
	if (u->info.ssl)
		sock = tls_socket(conn, o, why, size);
	else if ((sock = amqp_tcp_socket_new(conn)) == NULL)
		snprintf(why, size, "out of memory");
	if (sock == NULL)
		goto fail;
	status = amqp_socket_open_noblock(sock, u->info.host, u->info.port, &tv);
	if (status != AMQP_STATUS_OK) {
		describe_status(status, why, size);
		goto fail;
	}
	r = amqp_login(conn, u->info.vhost, 0, AMQP_DEFAULT_FRAME_SIZE, 0,
		       AMQP_SASL_METHOD_PLAIN, u->info.user, u->info.password);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		describe_reply(r, why, size);
		goto fail;
	}
	amqp_channel_open(conn, CHANNEL);
	r = amqp_get_rpc_reply(conn);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		describe_reply(r, why, size);
		goto fail;
	}
	return conn;
fail:
	amqp_destroy_connection(conn);
	return NULL;
}

/* The first broker of the list that lets us in, or NULL. */
static amqp_connection_state_t connect_any(const struct broker_url *urls,
					   size_t n, const struct options *o,
					   const struct broker_url **used)
{
	char why[512];

	for (size_t i = 0; i < n; i++) {
		amqp_connection_state_t conn = open_broker(&urls[i], o, why, sizeof why);

		if (conn != NULL) {
			*used = &urls[i];
			return conn;
		}
		complain("cannot connect to %s: %s", urls[i].masked, why);
	}
	return NULL;
}

/* As Myxi does before publishing: Bunny's ch.direct(name), i.e. passive
 * false, non-durable, no auto-delete, not internal, no arguments, unless
 * -t/-d say the exchange was made otherwise. */
static bool declare_exchange(amqp_connection_state_t conn, const struct options *o)
{
	amqp_rpc_reply_t r;
	char why[512];

	amqp_exchange_declare(conn, CHANNEL, amqp_cstring_bytes(o->exchange),
			      amqp_cstring_bytes(o->type), 0, o->durable, 0, 0,
			      amqp_empty_table);
	r = amqp_get_rpc_reply(conn);
	if (r.reply_type == AMQP_RESPONSE_NORMAL)
		return true;
	if (describe_reply(r, why, sizeof why) == AMQP_PRECONDITION_FAILED)
		complain("exchange '%s' exists but is not a %s %s exchange (%s); "
			 "use -t TYPE and -d to match how it was declared",
			 o->exchange, o->durable ? "durable" : "non-durable",
			 o->type, why);
	else
		complain("cannot declare exchange '%s': %s", o->exchange, why);
	return false;
}

/*
 * Does the exchange keep history (myxid declared its stream)? A passive
 * declare, on a channel of its own since "not found" closes it. Decides
 * o->to_stream; false only when --history on and there is no stream.
 */
static bool find_stream(amqp_connection_state_t conn, struct options *o)
{
	amqp_rpc_reply_t r;
	char why[512];

	o->to_stream = false;
	if (strcmp(o->history, "off") == 0)
		return true;
	amqp_channel_open(conn, PROBE_CHANNEL);
	r = amqp_get_rpc_reply(conn);
	if (r.reply_type == AMQP_RESPONSE_NORMAL) {
		amqp_queue_declare(conn, PROBE_CHANNEL, amqp_cstring_bytes(o->stream),
				   1, 0, 0, 0, amqp_empty_table);
		r = amqp_get_rpc_reply(conn);
		if (r.reply_type == AMQP_RESPONSE_NORMAL) {
			o->to_stream = true;
			amqp_channel_close(conn, PROBE_CHANNEL, AMQP_REPLY_SUCCESS);
			return true;
		}
	}
	describe_reply(r, why, sizeof why);
	if (strcmp(o->history, "on") == 0) {
		complain("no history stream %s (%s): is the exchange's history on in "
			 "myxid, with queue_prefix %s?", o->stream, why, o->prefix);
		return false;
	}
	return true;
}

static struct timeval time_left(const struct timespec *end)
{
	struct timespec now;
	long long us;

	clock_gettime(CLOCK_MONOTONIC, &now);
	us = (long long)(end->tv_sec - now.tv_sec) * 1000000 +
		(end->tv_nsec - now.tv_nsec) / 1000;
	if (us < 0)
		us = 0;
	return (struct timeval){ .tv_sec = us / 1000000, .tv_usec = us % 1000000 };
}

/* Wait for the broker's verdict on our one message (delivery tag 1). */
static bool wait_confirm(amqp_connection_state_t conn, int timeout)
{
	struct timespec end;
	char why[512];

	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += timeout;
	for (;;) {
		struct timeval tv = time_left(&end);
		amqp_frame_t f;
		int status = amqp_simple_wait_frame_noblock(conn, &f, &tv);

		if (status == AMQP_STATUS_TIMEOUT) {
			complain("the broker did not confirm the message within %d s", timeout);
			return false;
		}
		if (status != AMQP_STATUS_OK) {
			describe_status(status, why, sizeof why);
			complain("lost the broker before it confirmed the message: %s", why);
			return false;
		}
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue;
		switch (f.payload.method.id) {
		case AMQP_BASIC_ACK_METHOD:
			return true;
		case AMQP_BASIC_NACK_METHOD:
			complain("the broker refused the message (basic.nack)");
			return false;
		case AMQP_CHANNEL_CLOSE_METHOD:
		case AMQP_CONNECTION_CLOSE_METHOD:
			close_reason(&f.payload.method, why, sizeof why);
			complain("the broker did not take the message: %s", why);
			return false;
		default:        /* e.g. connection.blocked: the ack may come */
			continue;
		}
	}
}

/*
 * Publish body as Bunny's publish with only :routing_key does: not
 * mandatory, and Bunny's default properties (persistent, priority 0,
 * application/octet-stream), which Myxi's publishers therefore send.
 */
static bool publish(amqp_connection_state_t conn, const struct options *o,
		    const char *body)
{
	amqp_basic_properties_t props = {
		._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
			AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_PRIORITY_FLAG,
		.content_type = amqp_cstring_bytes("application/octet-stream"),
		.delivery_mode = 2,
		.priority = 0,
	};
	amqp_table_entry_t rk;
	amqp_rpc_reply_t r;
	char why[512];
	bool ok;
	int status;

	amqp_confirm_select(conn, CHANNEL);
	r = amqp_get_rpc_reply(conn);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		describe_reply(r, why, sizeof why);
		complain("cannot turn on publisher confirms: %s", why);
		return false;
	}
	/* A backstop only: wait_confirm's own deadline comes first. */
	alarm((unsigned)o->timeout + 1);
	if (o->to_stream)
		history_stream_props(&props, &rk, o->routing_key);
	status = amqp_basic_publish(conn, CHANNEL,
				    amqp_cstring_bytes(o->to_stream ? "" : o->exchange),
				    amqp_cstring_bytes(o->to_stream ? o->stream : o->routing_key),
				    0, 0, &props, amqp_cstring_bytes(body));
	if (status != AMQP_STATUS_OK) {
		describe_status(status, why, sizeof why);
		complain("cannot publish: %s", why);
		ok = false;
	} else {
		ok = wait_confirm(conn, o->timeout);
	}
	alarm(0);
	return ok;
}

/* Close politely, but the outcome is decided: no long wait for close-ok
 * (a blocked broker never sends it). */
static void close_broker(amqp_connection_state_t conn)
{
	struct timeval tv = { .tv_sec = 1 };

	amqp_set_rpc_timeout(conn, &tv);
	amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(conn);
}

int main(int argc, char **argv)
{
	struct options o = { .type = "direct", .timeout = DEFAULT_TIMEOUT,
			     .history = "auto", .prefix = "myxid" };
	const struct broker_url *used = NULL;
	amqp_connection_state_t conn;
	struct broker_url *urls;
	size_t n;
	char *body;
	bool ok;

	/* A broker that went away is an error to report, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_alarm);
	parse_args(argc, argv, &o);
	body = build_body(&o);
	urls = parse_urls(o.urls, &n);

	conn = connect_any(urls, n, &o, &used);
	ok = conn != NULL && declare_exchange(conn, &o) && find_stream(conn, &o) &&
		publish(conn, &o, body);
	if (conn != NULL)
		close_broker(conn);
	if (ok && o.verbose && !quiet)
		printf("published %s to %s %s with routing key %s via %s\n",
		       o.event, o.to_stream ? "the history stream" : "exchange",
		       o.to_stream ? o.stream : o.exchange, o.routing_key, used->masked);
	free_urls(urls, n);
	free(body);
	return ok ? 0 : EXIT_BROKER;
}
