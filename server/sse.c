/*
 * Server-Sent Events; see sse.h.
 *
 * The stream drives its session with the actions a WebSocket client would
 * send (Authenticate, then one Subscribe at a time, each after the answer
 * to the one before) and reads the answers out of the session's output,
 * which conn.c hands it instead of framing it. Until the last answer, the
 * output is held: the status line must come first, and it depends on them.
 */
#include "sse.h"
#include "config.h"
#include "conn.h"
#include "http_parse.h"
#include "json_input.h"
#include "log.h"
#include "metrics.h"
#include "shared_frame.h"
#include "sse_query.h"
#include "util.h"
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>
#include <event2/buffer.h>

/* An EventSource that loses its stream asks again after this long. */
#define RETRY_MS 2000

enum sse_phase {
	SSE_AUTHENTICATING,   /* Authenticate sent, or about to be */
	SSE_SUBSCRIBING,      /* Subscribe `next` sent, or about to be */
	SSE_LIVE,             /* 200 sent: messages go out as they come */
	SSE_DONE              /* refused, or closing */
};

struct sse_position {
	char *epoch;          /* NULL: the subscription has no history */
	uint64_t offset;
};

struct sse_stream {
	enum sse_phase phase;
	struct sse_query q;
	struct sse_position *pos;   /* one per subscription, query order */
	size_t next;                /* the subscription answered next */
	bool action_due;            /* the next action waits for the tick */
	struct evbuffer *held;      /* the stream's start, before the status */
	char *id;                   /* the "id: ...\n" line, or "" */
	size_t id_len, id_cap;
	bool id_stale;              /* a position moved since id was made */
	bool counted;               /* in M_SSE_OPEN */
};

/* ------------------------------------------------------------ formatting */

/*
 * The event name of a message's JSON, borrowed from it. Replies start with
 * it (reply.c); a publisher's body may put it anywhere, so that needs a
 * parse, done once per published event. Names that could break the SSE
 * framing (line breaks) are left out: the message is then unnamed.
 */
static size_t event_name(const char *json, size_t len, const char **name,
			 char *buf, size_t size)
{
	static const char lead[] = "{\"event\":\"";
	const char *end;
	json_object *o, *v;
	size_t n = 0;

	if (len > sizeof(lead) && memcmp(json, lead, sizeof(lead) - 1) == 0 &&
	    (end = memchr(json + sizeof(lead) - 1, '"', len - (sizeof(lead) - 1))) != NULL &&
	    memchr(json, '\\', (size_t)(end - json)) == NULL) {
		*name = json + sizeof(lead) - 1;
		return (size_t)(end - *name);
	}
	o = json_input_parse(json, len, 64);
	if (o != NULL && json_object_object_get_ex(o, "event", &v) &&
	    json_object_is_type(v, json_type_string)) {
		const char *s = json_object_get_string(v);

		n = strlen(s);
		if (n >= size || strpbrk(s, "\r\n") != NULL)
			n = 0;
		else
			memcpy(buf, s, n + 1);
	}
	json_object_put(o);
	*name = buf;
	return n;
}

static void put_message(struct evbuffer *out, const char *name, size_t nlen,
			const char *json, size_t len)
{
	if (nlen) {
		evbuffer_add(out, "event: ", 7);
		evbuffer_add(out, name, nlen);
		evbuffer_add(out, "\n", 1);
	}
	evbuffer_add(out, "data: ", 6);
	evbuffer_add(out, json, len);
	evbuffer_add(out, "\n\n", 2);
}

/* The event as an SSE message, made by the first stream that sends it. */
static struct shared_frame *sse_form(struct shared_frame *f)
{
	struct shared_frame *v = __atomic_load_n(&f->sse, __ATOMIC_ACQUIRE);
	struct evbuffer *b;
	const char *json, *name;
	char buf[256];
	size_t len, nlen;

	if (v != NULL)
		return v;
	json = (const char *)shared_frame_payload(f, &len);
	nlen = event_name(json, len, &name, buf, sizeof(buf));
	b = evbuffer_new();
	put_message(b, name, nlen, json, len);
	v = shared_frame_raw(evbuffer_pullup(b, -1), evbuffer_get_length(b));
	evbuffer_free(b);
	return shared_frame_install(&f->sse, v);
}

/* The id line, remade only after a position moved. */
static void make_id(struct sse_stream *st)
{
	size_t need = 8;
	bool any = false;

	st->id_stale = false;
	for (size_t i = 0; i < st->q.n_subs; i++)
		need += (st->pos[i].epoch ? strlen(st->pos[i].epoch) + 22 : 0) + 1;
	if (need > st->id_cap) {
		st->id_cap = need * 2;
		st->id = xrealloc(st->id, st->id_cap);
	}
	st->id_len = (size_t)snprintf(st->id, st->id_cap, "id: ");
	for (size_t i = 0; i < st->q.n_subs; i++) {
		const struct sse_position *p = &st->pos[i];

		if (i)
			st->id[st->id_len++] = ',';
		if (p->epoch != NULL) {
			st->id_len += (size_t)snprintf(st->id + st->id_len, st->id_cap - st->id_len,
						       "%s/%llu", p->epoch,
						       (unsigned long long)p->offset);
			any = true;
		}
	}
	st->id[st->id_len++] = '\n';
	if (!any)
		st->id_len = 0;
}

static void put_id(struct sse_stream *st, struct evbuffer *out)
{
	if (!st->id_stale)
		return;
	make_id(st);
	if (st->id_len)
		evbuffer_add(out, st->id, st->id_len);
}

/* A positioned event moves the subscription(s) it was published to. */
static void moved(struct sse_stream *st, const struct shared_frame *f)
{
	for (size_t i = 0; i < st->q.n_subs; i++) {
		struct sse_sub *s = &st->q.subs[i];

		if (st->pos[i].epoch != NULL && strcmp(s->exchange, f->exchange) == 0 &&
		    strcmp(s->routing_key, f->routing_key) == 0) {
			st->pos[i].offset = f->position;
			st->id_stale = true;
		}
	}
}

/* --------------------------------------------------------------- status */

static void headers_cors(struct conn *c, char *buf, size_t size)
{
	/* An allowed Origin (conn_admit() refused the others) may read the
	 * stream and the refusals from a page of its own. */
	if (c->origin != NULL)
		snprintf(buf, size, "Access-Control-Allow-Origin: %s\r\n"
			 "Access-Control-Allow-Credentials: true\r\nVary: Origin\r\n",
			 c->origin);
	else
		buf[0] = '\0';
}

static void refuse(struct conn *c, int status, const char *json, size_t len)
{
	struct sse_stream *st = c->stream_state;
	char extra[600];

	st->phase = SSE_DONE;
	headers_cors(c, extra, sizeof(extra) - 20);
	if (status == 503)
		strcat(extra, "Retry-After: 5\r\n");
	metrics_inc(M_SSE_REFUSED);
	conn_http_reply(c, status, "application/json", extra, json, len);
}

static void go_live(struct conn *c)
{
	struct sse_stream *st = c->stream_state;
	struct evbuffer *out = conn_output(c);
	char cors[600];

	headers_cors(c, cors, sizeof(cors));
	evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\n"
			    "Server: myxid/" PACKAGE_VERSION "\r\n"
			    "Content-Type: text/event-stream; charset=utf-8\r\n"
			    "Cache-Control: no-cache, no-store\r\n"
			    "X-Accel-Buffering: no\r\n"
			    "Connection: close\r\n"
			    "%s\r\nretry: %d\n\n", cors, RETRY_MS);
	evbuffer_add_buffer(out, st->held);
	st->phase = SSE_LIVE;
	metrics_inc(M_SSE_STREAMS);
	metrics_inc(M_SSE_OPEN);
	st->counted = true;
	if (worker_config(c->w)->sse_keepalive_ms)
		conn_stream_wake(c, worker_config(c->w)->sse_keepalive_ms);
}

/* The status an Error answer to our action gets. */
static int error_status(const char *code)
{
	static const struct { const char *code; int status; } map[] = {
		{ "InvalidAuthentication", 401 }, { "SessionExpired", 401 },
		{ "AuthRequired", 401 }, { "SubscriptionDenied", 403 },
		{ "AuthUnavailable", 503 }, { "PolicyUnavailable", 503 },
		{ "RateLimited", 429 },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(code, map[i].code) == 0)
			return map[i].status;
	return 400;
}

/* Subscribed: where this subscription starts (a resume that was
 * recovered starts where it asked; the replay moves it from there). */
static void subscribed(struct sse_stream *st, json_object *payload)
{
	struct sse_sub *s = &st->q.subs[st->next];
	json_object *epoch, *offset, *rec;
	bool recovered;

	if (!json_object_object_get_ex(payload, "epoch", &epoch) ||
	    !json_object_object_get_ex(payload, "offset", &offset) ||
	    !sse_epoch_ok(json_object_get_string(epoch)))
		return;
	recovered = json_object_object_get_ex(payload, "recovered", &rec) &&
		json_object_get_boolean(rec);
	st->pos[st->next].epoch = xstrdup(json_object_get_string(epoch));
	st->pos[st->next].offset = recovered ? s->since_offset :
		(uint64_t)json_object_get_int64(offset);
	st->id_stale = true;
}

/*
 * An answer while the status is pending: Authenticated or Subscribed moves
 * on to the next action (at the next tick: the session is still inside the
 * action that answered), an Error refuses the request (returns true).
 */
static bool answer(struct conn *c, const char *name, size_t nlen,
		   const char *json, size_t len)
{
	struct sse_stream *st = c->stream_state;
	bool authed = nlen == 13 && memcmp(name, "Authenticated", 13) == 0;
	bool subbed = nlen == 10 && memcmp(name, "Subscribed", 10) == 0;
	json_object *o, *p = NULL, *code;

	if (nlen == 5 && memcmp(name, "Error", 5) == 0) {
		o = json_input_parse(json, len, 64);
		if (o != NULL && json_object_object_get_ex(o, "payload", &p) &&
		    json_object_object_get_ex(p, "error", &code)) {
			size_t blen;
			const char *body = json_object_to_json_string_length(
				p, JSON_C_TO_STRING_PLAIN, &blen);

			refuse(c, error_status(json_object_get_string(code)), body, blen);
		}
		json_object_put(o);
		return true;
	}
	if (st->phase == SSE_AUTHENTICATING && authed) {
		st->phase = SSE_SUBSCRIBING;
	} else if (st->phase == SSE_SUBSCRIBING && subbed) {
		o = json_input_parse(json, len, 64);
		if (o != NULL && json_object_object_get_ex(o, "payload", &p))
			subscribed(st, p);
		json_object_put(o);
		st->next++;
	} else {
		return false;
	}
	st->action_due = true;
	conn_stream_wake(c, 0);
	return false;
}

/* ------------------------------------------------------------ transport */

static void held_bounded(struct conn *c);

static void stream_text(struct conn *c, const char *json, size_t len)
{
	struct sse_stream *st = c->stream_state;
	const char *name;
	char buf[256];
	size_t nlen = event_name(json, len, &name, buf, sizeof(buf));
	struct evbuffer *out;

	if (st->phase == SSE_DONE)
		return;
	if (st->phase != SSE_LIVE) {
		if (answer(c, name, nlen, json, len))
			return;       /* refused: the status is sent */
		put_id(st, st->held);
		put_message(st->held, name, nlen, json, len);
		return;
	}
	if (!conn_output_room(c, len + nlen + 16 + (st->id_stale ? st->id_cap : 0)))
		return;
	out = conn_output(c);
	put_id(st, out);
	put_message(out, name, nlen, json, len);
	metrics_add(M_BYTES_OUT, (int64_t)(len + nlen + 16));
}

static void stream_shared(struct conn *c, struct shared_frame *f)
{
	struct sse_stream *st = c->stream_state;
	struct shared_frame *v;

	if (st->phase == SSE_DONE) {
		metrics_inc(M_DROPPED_FRAMES);
		return;
	}
	v = sse_form(f);
	if (st->phase == SSE_LIVE && !conn_output_room(c, v->len + st->id_len + 32))
		return;
	if (f->position != 0)
		moved(st, f);
	if (st->phase != SSE_LIVE) {
		put_id(st, st->held);
		evbuffer_add(st->held, v->data, v->len);
		held_bounded(c);
	} else {
		put_id(st, conn_output(c));
		shared_frame_send(v, conn_output(c));
	}
	metrics_inc(M_DELIVERIES);
	metrics_add(M_BYTES_OUT, (int64_t)v->len);
}

/* What waits for the status (replays of many subscriptions) is bounded
 * like a socket's output. */
static void held_bounded(struct conn *c)
{
	struct sse_stream *st = c->stream_state;
	static const char body[] = "{\"error\":\"TooMuchHistory\",\"message\":\"the replays "
		"asked for do not fit max_output_buffer: ask for less history\"}";

	if (st->phase != SSE_DONE &&
	    evbuffer_get_length(st->held) > worker_config(c->w)->max_output_buffer)
		refuse(c, 503, body, sizeof(body) - 1);
}

/* The next action, sent from the loop (never from inside the session). */
static void act(struct conn *c)
{
	struct sse_stream *st = c->stream_state;
	json_object *o = json_object_new_object(), *p = json_object_new_object();
	const char *s;
	size_t len;

	st->action_due = false;
	if (st->phase == SSE_AUTHENTICATING) {
		json_object_object_add(o, "action", json_object_new_string("Authenticate"));
		json_object_object_add(p, "session_id", json_object_new_string(st->q.token));
	} else {
		struct sse_sub *sub = &st->q.subs[st->next];

		json_object_object_add(o, "action", json_object_new_string("Subscribe"));
		json_object_object_add(p, "exchange", json_object_new_string(sub->exchange));
		json_object_object_add(p, "routing_key", json_object_new_string(sub->routing_key));
		if (sub->since) {
			json_object *since = json_object_new_object();

			json_object_object_add(since, "epoch", json_object_new_string(sub->since_epoch));
			json_object_object_add(since, "offset",
					       json_object_new_int64((int64_t)sub->since_offset));
			json_object_object_add(p, "since", since);
		} else if (sub->history) {
			json_object_object_add(p, "history", json_object_new_int64(sub->history));
		}
	}
	json_object_object_add(o, "payload", p);
	s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
	c->handler->message(c, (const uint8_t *)s, len);
	json_object_put(o);
}

static unsigned stream_tick(struct conn *c)
{
	struct sse_stream *st = c->stream_state;

	if (st->phase == SSE_LIVE) {
		/* Proxies close idle responses; a comment is ignored by clients. */
		if (conn_output_room(c, 16))
			evbuffer_add(conn_output(c), ": keepalive\n\n", 13);
		return worker_config(c->w)->sse_keepalive_ms;
	}
	if (!st->action_due || st->phase == SSE_DONE)
		return 0;
	if (st->phase == SSE_SUBSCRIBING && st->next == st->q.n_subs)
		go_live(c);
	else
		act(c);
	return 0;
}

static void stream_closing(struct conn *c, int code, const char *reason)
{
	struct sse_stream *st = c->stream_state;
	json_object *p;
	const char *s;
	size_t len;

	if (st->phase == SSE_LIVE || st->phase == SSE_DONE)
		return;
	/* Closed before it was answered (draining, a deadline): say so. */
	p = json_object_new_object();
	json_object_object_add(p, "error", json_object_new_string("Closing"));
	json_object_object_add(p, "code", json_object_new_int(code));
	json_object_object_add(p, "reason", json_object_new_string(reason ? reason : ""));
	s = json_object_to_json_string_length(p, JSON_C_TO_STRING_PLAIN, &len);
	refuse(c, 503, s, len);
	json_object_put(p);
}

static void stream_freed(struct conn *c)
{
	struct sse_stream *st = c->stream_state;

	if (st->counted)
		metrics_add(M_SSE_OPEN, -1);
	for (size_t i = 0; i < st->q.n_subs; i++)
		free(st->pos[i].epoch);
	free(st->pos);
	sse_query_free(&st->q);
	if (st->held != NULL)
		evbuffer_free(st->held);
	free(st->id);
	free(st);
	c->stream_state = NULL;
}

static const struct conn_stream sse_transport = {
	.text = stream_text,
	.shared = stream_shared,
	.tick = stream_tick,
	.closing = stream_closing,
	.freed = stream_freed,
};

/* --------------------------------------------------------------- opening */

static void bad_request(struct conn *c, int status, const char *code, const char *why)
{
	json_object *p = json_object_new_object();
	const char *s;
	size_t len;

	json_object_object_add(p, "error", json_object_new_string(code));
	json_object_object_add(p, "message", json_object_new_string(why));
	s = json_object_to_json_string_length(p, JSON_C_TO_STRING_PLAIN, &len);
	metrics_inc(M_SSE_REFUSED);
	conn_http_reply(c, status, "application/json", NULL, s, len);
	json_object_put(p);
}

void sse_open(struct conn *c, const struct http_request *req)
{
	const struct myxid_config *cfg = worker_config(c->w);
	const struct http_header *accept = http_find_header(req, "Accept");
	struct sse_stream *st;
	struct sse_query q;
	const char *why;

	if (!http_str_eq(&req->method, "GET")) {
		bad_request(c, 405, "MethodNotAllowed", "use GET for an event stream");
		return;
	}
	if (accept != NULL && !http_has_token(&accept->value, "text/event-stream") &&
	    !http_has_token(&accept->value, "*/*")) {
		bad_request(c, 406, "NotAcceptable", "this resource is text/event-stream");
		return;
	}
	if ((why = sse_query_parse(req, cfg->max_subscriptions, &q)) != NULL) {
		bad_request(c, 400, "BadRequest", why);
		return;
	}
	if (q.token == NULL && cfg->sse_token_cookie != NULL)
		q.token = sse_cookie(req, cfg->sse_token_cookie);
	if (conn_admit(c, req) != 0) {
		metrics_inc(M_SSE_REFUSED);
		sse_query_free(&q);
		return;
	}
	st = xcalloc(1, sizeof(*st));
	st->q = q;
	st->pos = xcalloc(q.n_subs ? q.n_subs : 1, sizeof(*st->pos));
	st->held = evbuffer_new();
	st->phase = q.token != NULL ? SSE_AUTHENTICATING : SSE_SUBSCRIBING;
	st->action_due = true;
	conn_stream_start(c, req, &sse_transport, st, 0);
	conn_stream_wake(c, 0);
	log_info("[%s] %s: SSE stream requested (%zu subscriptions)",
		 c->handler->log_name ? c->handler->log_name(c) : "-", c->peer, q.n_subs);
}
