/*
 * History on RabbitMQ streams: each exchange with a history block has one
 * stream, <queue_prefix>.history.<exchange>, shared by every node. Events
 * reach it through the default exchange (routing key = the stream's name,
 * the event's routing key in the "myxid-routing-key" header): POST
 * /publish and myxid-push publish so; Myxi.push_event publishers, which
 * publish to the exchange itself, stay live-only.
 *
 * Every node consumes every stream and mirrors it into the daemon's
 * history store (the log the embedded mode would use, with the stream's
 * offsets + 1 as positions and an epoch derived from the stream's name),
 * then hands each event to its loops like any delivery: live delivery and
 * replay come from the same ordered source, so the seam logic of
 * session_history.c holds unchanged, and a client may resume on any node.
 *
 * Cost: each node reads every message of every history stream once (not
 * per socket, not per key); RabbitMQ keeps each stream once, bounded by
 * age and stream_bytes.
 */
#include "broker_private.h"
#include "config.h"
#include "event_frame.h"
#include "history.h"
#include "history_stream.h"
#include "log.h"
#include "redelivery.h"
#include "shared_frame.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY_HEADER HISTORY_STREAM_KEY_HEADER
/* Unacknowledged stream messages in flight to us, per consumer. */
#define STREAM_PREFETCH 1000
/* A stream that delivered nothing for this long has been read up to now. */
#define CAUGHT_UP_IDLE_MS 300
/* A consumer resumed at the last message read gets that message at once
 * from the same stream; a stream that holds nothing there was remade. */
#define VERIFY_MS 3000
/* RabbitMQ (3.10) does not cancel a stream's consumers when the stream is
 * deleted: how often each stream is looked for. */
#define STREAM_CHECK_MS 5000

typedef char epoch_fits[sizeof(((struct xstream *)0)->epoch) == HISTORY_EPOCH_MAX + 1 ? 1 : -1];

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 0x100000001b3ull;
	return h;
}

void broker_streams_init(struct broker *b, const struct myxid_config *cfg,
			 struct history_store *store)
{
	size_t n = 0;

	for (size_t i = 0; i < cfg->n_exchanges; i++)
		n += cfg->exchanges[i].history.enabled;
	if (n == 0 || store == NULL)
		return;
	b->streams = xcalloc(n, sizeof(*b->streams));
	for (size_t i = 0; i < cfg->n_exchanges; i++) {
		const struct conf_exchange *x = &cfg->exchanges[i];
		const struct conf_history *h = &x->history;
		struct xstream *st;
		if (!h->enabled)
			continue;
		st = &b->streams[b->n_streams++];
		st->exchange = xstrdup(x->name);
		snprintf(st->name, sizeof(st->name), "%s.history.%s",
			 cfg->broker.queue_prefix, x->name);
		st->age_s = (h->age_ms + 999) / 1000;
		st->max_bytes = h->stream_bytes;
		st->log = history_store_log(store, x->name,
			&(struct history_limits){ h->events, h->bytes, h->age_ms });
		/* The same on every node and across restarts of either side;
		 * "epoch" in the config changes it once a stream is remade. */
		snprintf(st->epoch, sizeof(st->epoch), "s%016" PRIx64 "-%s", fnv1a(st->name),
			 h->epoch ? h->epoch : "1");
		history_log_set_epoch(st->log, st->epoch);
		st->last_offset = -1;
	}
}

void broker_streams_free(struct broker *b)
{
	for (size_t i = 0; i < b->n_streams; i++)
		free(b->streams[i].exchange);
	free(b->streams);
	b->streams = NULL;
	b->n_streams = 0;
}

static int declare_stream(struct broker *b, struct xstream *st)
{
	amqp_table_entry_t args[3];
	amqp_table_t table = { 0, args };
	amqp_rpc_reply_t r;
	char buf[256], age[32];

	args[table.num_entries].key = amqp_cstring_bytes("x-queue-type");
	args[table.num_entries].value.kind = AMQP_FIELD_KIND_UTF8;
	args[table.num_entries++].value.value.bytes = amqp_cstring_bytes("stream");
	args[table.num_entries].key = amqp_cstring_bytes("x-max-length-bytes");
	args[table.num_entries].value.kind = AMQP_FIELD_KIND_I64;
	args[table.num_entries++].value.value.i64 = (int64_t)st->max_bytes;
	if (st->age_s) {
		snprintf(age, sizeof(age), "%us", st->age_s);
		args[table.num_entries].key = amqp_cstring_bytes("x-max-age");
		args[table.num_entries].value.kind = AMQP_FIELD_KIND_UTF8;
		args[table.num_entries++].value.value.bytes = amqp_cstring_bytes(age);
	}
	amqp_queue_declare(b->conn, CH_STREAM, amqp_cstring_bytes(st->name), 0, 1, 0, 0,
			   table);
	r = amqp_get_rpc_reply(b->conn);
	if (r.reply_type == AMQP_RESPONSE_NORMAL)
		return 0;
	/* Another node (or an older configuration) made it with other
	 * limits: RabbitMQ keeps those; use the stream as it is. */
	log_error("broker: cannot declare stream %s as configured (%s); using it as it is",
		  st->name, broker_reply_text(r, buf, sizeof(buf)));
	if (amqp_channel_open(b->conn, CH_STREAM) == NULL ||
	    amqp_get_rpc_reply(b->conn).reply_type != AMQP_RESPONSE_NORMAL)
		return -1;
	amqp_queue_declare(b->conn, CH_STREAM, amqp_cstring_bytes(st->name), 1, 1, 0, 0,
			   amqp_empty_table);
	r = amqp_get_rpc_reply(b->conn);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		log_error("broker: stream %s: %s", st->name, broker_reply_text(r, buf, sizeof(buf)));
		return -1;
	}
	return 0;
}

/* Consume from where the mirror stands: the last message read, again, to
 * tell the stream is the same one (stream_recognised), or (first start,
 * or a new stream) as far back as the history's age. */
static int consume_stream(struct broker *b, struct xstream *st)
{
	amqp_table_entry_t arg;
	amqp_table_t table = { 1, &arg };
	uint64_t pos = history_position(st->log);
	amqp_rpc_reply_t r;
	char buf[256];

	arg.key = amqp_cstring_bytes("x-stream-offset");
	st->verify_ms = 0;
	if (st->last_offset >= 0) {
		arg.value.kind = AMQP_FIELD_KIND_I64;
		arg.value.value.i64 = st->last_offset;
		st->verify_ms = monotonic_ms();
	} else if (st->age_s) {
		arg.value.kind = AMQP_FIELD_KIND_TIMESTAMP;
		arg.value.value.u64 = (uint64_t)time(NULL) - st->age_s;
	} else {
		arg.value.kind = AMQP_FIELD_KIND_UTF8;
		arg.value.value.bytes = amqp_cstring_bytes("first");
	}
	st->started_s = (uint64_t)time(NULL);
	amqp_basic_consume(b->conn, CH_STREAM, amqp_cstring_bytes(st->name),
			   amqp_cstring_bytes(st->name), 0, 0, 0, table);
	r = amqp_get_rpc_reply(b->conn);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		log_error("broker: cannot consume stream %s: %s", st->name,
			  broker_reply_text(r, buf, sizeof(buf)));
		return -1;
	}
	st->consuming = true;
	log_info("broker: mirroring stream %s from position %" PRIu64, st->name, pos);
	return 0;
}

int broker_streams_link_up(struct broker *b)
{
	amqp_rpc_reply_t r;

	if (b->n_streams == 0)
		return 0;
	if (amqp_channel_open(b->conn, CH_STREAM) == NULL ||
	    amqp_get_rpc_reply(b->conn).reply_type != AMQP_RESPONSE_NORMAL)
		return -1;
	/* Streams need a prefetch, and manual acknowledgements for credit. */
	amqp_basic_qos(b->conn, CH_STREAM, 0, STREAM_PREFETCH, 0);
	r = amqp_get_rpc_reply(b->conn);
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		return -1;
	b->stream_ack_tag = 0;
	b->stream_unacked = 0;
	b->stream_rx_ms = monotonic_ms();
	b->stream_relink = false;
	b->stream_check_ms = monotonic_ms();
	for (size_t i = 0; i < b->n_streams; i++)
		if (declare_stream(b, &b->streams[i]) || consume_stream(b, &b->streams[i]))
			return -1;
	return 0;
}

void broker_streams_link_down(struct broker *b)
{
	for (size_t i = 0; i < b->n_streams; i++)
		b->streams[i].consuming = false;
}

static struct xstream *stream_of(struct broker *b, amqp_bytes_t tag)
{
	for (size_t i = 0; i < b->n_streams; i++)
		if (strlen(b->streams[i].name) == tag.len &&
		    memcmp(b->streams[i].name, tag.bytes, tag.len) == 0)
			return &b->streams[i];
	return NULL;
}

/* The value of header name, or NULL if absent or not of kind. */
static const amqp_field_value_t *header(const amqp_basic_properties_t *p, const char *name)
{
	if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
		return NULL;
	for (int i = 0; i < p->headers.num_entries; i++) {
		const amqp_table_entry_t *e = &p->headers.entries[i];
		if (e->key.len == strlen(name) && memcmp(e->key.bytes, name, e->key.len) == 0)
			return &e->value;
	}
	return NULL;
}

/*
 * The stream is not the one mirrored: remade (deleted, or RabbitMQ's data
 * lost), or it dropped messages this node never read (retention, while
 * the link was down). Its offsets no longer say what this node kept, so
 * the mirror takes an epoch of its own: resumes from before are answered
 * recovered:false here rather than served wrongly. Positions keep growing
 * (base), so subscriptions' seen positions and the log stay valid.
 */
static void mirror_restart(struct broker *b, struct xstream *st, bool remade,
			   const char *why)
{
	char epoch[HISTORY_EPOCH_MAX + 1];

	/* st->epoch is at most 50 characters (an epoch setting, 32 at most) */
	snprintf(epoch, sizeof(epoch), "%.50s.%012" PRIx64, st->epoch,
		 (uint64_t)(random_u64() & 0xffffffffffffull));
	history_log_set_epoch(st->log, epoch);
	if (remade) {
		/* Read the new stream from its start: nothing of it was read. */
		st->base = history_position(st->log);
		st->last_offset = -1;
		b->stream_relink = true;
	}
	log_error("broker: stream %s %s; this node's history of %s goes on under "
		  "epoch %s (resumes from before it: recovered:false)", st->name, why,
		  st->exchange, epoch);
}

/*
 * The first message of a consumer resumed at last_offset: the same stream
 * gives that message again (already mirrored: skipped). true: skip it.
 */
static bool stream_recognised(struct broker *b, struct xstream *st, int64_t offset,
			      uint64_t fp)
{
	st->verify_ms = 0;
	if (offset == st->last_offset && fp == st->last_fp)
		return true;
	if (offset > st->last_offset) {
		mirror_restart(b, st, false, "lost messages this node never read "
			       "(retention passed it while disconnected)");
		return false;
	}
	mirror_restart(b, st, true, "is not the one this node mirrored (remade)");
	return true;
}

int broker_streams_check(struct broker *b)
{
	uint64_t now = monotonic_ms();
	amqp_rpc_reply_t r;
	char buf[256];

	if (b->n_streams == 0 || now - b->stream_check_ms < STREAM_CHECK_MS)
		return 0;
	b->stream_check_ms = now;
	for (size_t i = 0; i < b->n_streams; i++) {
		/* Passive: a 404 closes the channel, but we relink then anyway. */
		amqp_queue_declare(b->conn, CH_TOPOLOGY, amqp_cstring_bytes(b->streams[i].name),
				   1, 1, 0, 0, amqp_empty_table);
		r = amqp_get_rpc_reply(b->conn);
		if (r.reply_type != AMQP_RESPONSE_NORMAL) {
			log_error("broker: history stream %s is gone (%s); linking again to "
				  "make it", b->streams[i].name,
				  broker_reply_text(r, buf, sizeof(buf)));
			return -1;
		}
	}
	return 0;
}

bool broker_streams_relink(struct broker *b)
{
	bool r = b->stream_relink;

	b->stream_relink = false;
	return r;
}

struct stream_body {
	const amqp_envelope_t *env;
	const char *exchange, *key;
	const char *why;
};

/* What recognises a message when it is read again: its body, routing key
 * header and timestamp. */
static uint64_t stream_fingerprint(const amqp_envelope_t *env, const amqp_field_value_t *rk)
{
	const amqp_basic_properties_t *p = &env->message.properties;
	uint64_t ts = (p->_flags & AMQP_BASIC_TIMESTAMP_FLAG) ? p->timestamp : 0;
	bool text = rk != NULL && (rk->kind == AMQP_FIELD_KIND_UTF8 ||
				   rk->kind == AMQP_FIELD_KIND_BYTES);

	return redelivery_fingerprint(&ts, sizeof(ts), text ? rk->value.bytes.bytes : "",
				      text ? rk->value.bytes.len : 0,
				      env->message.body.bytes, env->message.body.len);
}

static struct shared_frame *encode_at(uint64_t position, void *arg)
{
	struct stream_body *sb = arg;

	return event_frame_encode_body(sb->env->message.body.bytes, sb->env->message.body.len,
				       sb->exchange, sb->key, position, &sb->why);
}

void broker_stream_delivery(struct broker *b, const amqp_envelope_t *env)
{
	struct xstream *st = stream_of(b, env->consumer_tag);
	const amqp_field_value_t *off, *rk;
	struct stream_body sb = { env, NULL, NULL, NULL };
	struct shared_frame *f;
	uint64_t fp;
	char key[256];

	b->stream_ack_tag = env->delivery_tag;
	b->stream_unacked++;
	b->stream_rx_ms = monotonic_ms();
	/* After a mirror restart the rest of this link's deliveries would be
	 * read from the middle of the new stream: they come again. */
	if (st == NULL || b->stream_relink)
		return;
	if ((env->message.properties._flags & AMQP_BASIC_TIMESTAMP_FLAG) &&
	    env->message.properties.timestamp >= st->started_s)
		/* Published after we started reading: the rest is live. */
		__atomic_store_n(&st->caught_up, true, __ATOMIC_RELEASE);
	off = header(&env->message.properties, "x-stream-offset");
	rk = header(&env->message.properties, KEY_HEADER);
	if (off == NULL || (off->kind != AMQP_FIELD_KIND_I64 && off->kind != AMQP_FIELD_KIND_U64) ||
	    off->value.i64 < 0) {
		broker_log_drop(b, st->exchange, "?", "stream message without x-stream-offset");
		return;
	}
	fp = stream_fingerprint(env, rk);
	if (st->verify_ms != 0 && stream_recognised(b, st, off->value.i64, fp))
		return;
	st->last_offset = off->value.i64;
	st->last_fp = fp;
	if (rk == NULL || (rk->kind != AMQP_FIELD_KIND_UTF8 && rk->kind != AMQP_FIELD_KIND_BYTES) ||
	    rk->value.bytes.len >= sizeof(key) ||
	    memchr(rk->value.bytes.bytes, '\0', rk->value.bytes.len) != NULL) {
		broker_log_drop(b, st->exchange, "?", "stream message without a valid "
				KEY_HEADER " header (a string of at most 255 bytes)");
		return;
	}
	memcpy(key, rk->value.bytes.bytes, rk->value.bytes.len);
	key[rk->value.bytes.len] = '\0';
	sb.exchange = st->exchange;
	sb.key = key;
	__atomic_add_fetch(&b->stats.received, 1, __ATOMIC_RELAXED);
	f = history_append(st->log, key, st->base + (uint64_t)off->value.i64 + 1,
			   (long long)monotonic_ms(), encode_at, &sb);
	if (f == NULL) {
		if (sb.why != NULL)
			broker_log_drop(b, st->exchange, key, sb.why);
		else
			__atomic_add_fetch(&b->stats.duplicates, 1, __ATOMIC_RELAXED);
		return;
	}
	broker_sink_deliver(b, f, b->all_loops);
	shared_frame_unref(f);
	if (++b->unflushed >= HANDOFF_BATCH)
		broker_flush_sink(b);
}

int broker_streams_ack(struct broker *b)
{
	if (b->stream_unacked == 0)
		return 0;
	b->stream_unacked = 0;
	return amqp_basic_ack(b->conn, CH_STREAM, b->stream_ack_tag, 1) == AMQP_STATUS_OK ?
		0 : -1;
}

void broker_streams_tick(struct broker *b)
{
	uint64_t now = monotonic_ms();
	bool idle = now - b->stream_rx_ms >= CAUGHT_UP_IDLE_MS;

	for (size_t i = 0; i < b->n_streams; i++) {
		struct xstream *st = &b->streams[i];

		if (st->consuming && st->verify_ms != 0 && now - st->verify_ms >= VERIFY_MS) {
			st->verify_ms = 0;
			mirror_restart(b, st, true, "does not hold the last message this "
				       "node read (remade)");
		}
		if (st->consuming && idle && st->verify_ms == 0)
			__atomic_store_n(&st->caught_up, true, __ATOMIC_RELEASE);
	}
}

bool broker_history_ready(struct broker *b)
{
	if (b->n_streams == 0)
		return true;
	/* Unreachable at start: waiting longer would only delay the
	 * sockets; resumes are refused (recovered:false) until it is read. */
	if (broker_state(b) != BROKER_UP)
		return __atomic_load_n(&b->tried, __ATOMIC_ACQUIRE);
	for (size_t i = 0; i < b->n_streams; i++)
		if (!__atomic_load_n(&b->streams[i].caught_up, __ATOMIC_ACQUIRE))
			return false;
	return true;
}

const char *broker_history_stream(const struct broker *b, const char *exchange)
{
	for (size_t i = 0; i < b->n_streams; i++)
		if (strcmp(b->streams[i].exchange, exchange) == 0)
			return b->streams[i].name;
	return NULL;
}
