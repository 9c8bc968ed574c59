/*
 * The HTTP side: GET /healthz for load balancers and supervisors, and
 * POST /publish, which delivers an event exactly as a broker message would.
 * Every answer is a small JSON document; errors are {"error": "..."} with a
 * 4xx status that says what to fix.
 */
#include "http_api.h"
#include "control_api.h"
#include "sse.h"
#include "broker.h"
#include "config.h"
#include "conn.h"
#include "http_parse.h"
#include "http_reply.h"
#include "json_input.h"
#include "log.h"
#include "metrics.h"
#include "event_frame.h"
#include "history.h"
#include "reply.h"
#include "runconf.h"
#include "worker.h"
#include "shared_frame.h"
#include "static_files.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <json-c/json.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

static bool path_is(const struct http_request *req, const char *path)
{
	size_t n = strlen(path), len = req->target.len;
	const char *q = memchr(req->target.p, '?', len);

	if (q != NULL)
		len = (size_t)(q - req->target.p);
	return len == n && memcmp(req->target.p, path, n) == 0;
}

static void add_plugin_health(void *arg, const char *label, int failing)
{
	json_object_object_add(arg, label, json_object_new_string(failing ? "failing" : "ok"));
}

static void handle_healthz(struct conn *c)
{
	struct broker *b = worker_broker(c->w);
	json_object *o = json_object_new_object();
	enum broker_state bs = b ? broker_state(b) : BROKER_STOPPED;
	bool degraded = b != NULL && bs != BROKER_UP;
	json_object *plugins = json_object_new_object();
	int failing = metrics_plugin_health(add_plugin_health, plugins);
	const char *status = worker_draining(c->w) ? "draining" :
		degraded || failing ? "degraded" : "ok";

	json_object_object_add(o, "status", json_object_new_string(status));
	json_object_object_add(o, "connections",
			       json_object_new_int64(metrics_get(M_CONNECTIONS_OPEN)));
	json_object_object_add(o, "sessions",
			       json_object_new_int64(metrics_get(M_SOCKETS_OPEN)));
	json_object_object_add(o, "broker", json_object_new_string(
				       b == NULL ? "off" :
				       bs == BROKER_UP ? "up" : "connecting"));
	/* Plugins answer "failing" while their backend is down: sockets
	 * already open still get events, so that alone is no 503. */
	json_object_object_add(o, "plugins", plugins);
	/* A node that cannot reach the broker delivers nothing: tell the
	 * load balancer. */
	http_reply_json(c, worker_draining(c->w) || degraded ? 503 : 200, NULL, o);
}

static void publish_via_broker(struct conn *c, json_object *event,
			       const char *exchange, const char *key)
{
	size_t len;
	const char *body = json_object_to_json_string_length(event, REPLY_JSON_FLAGS,
							     &len);
	json_object *o;

	struct broker *b = worker_broker(c->w);
	/* An exchange with history goes to its stream, which every node
	 * mirrors: positions, resume and late joiners on every node. */
	int rc = broker_history_stream(b, exchange) != NULL ?
		broker_publish_history(b, exchange, key, body, len) :
		broker_publish(b, exchange, key, body, len);

	if (rc != 0) {
		http_reply_error(c, 503, "Retry-After: 1\r\n",
				 "the broker is not connected; try again");
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	json_object_object_add(o, "queued", json_object_new_boolean(1));
	http_reply_json(c, 202, NULL, o);
}

static void reply_delivered(struct conn *c, size_t n)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(1));
	json_object_object_add(o, "delivered", json_object_new_int64((int64_t)n));
	http_reply_json(c, 200, NULL, o);
}

static void publish_done(void *arg, size_t delivered)
{
	struct conn *c = http_wait_end(arg);

	if (c != NULL)
		reply_delivered(c, delivered);
}

/* One publish without a broker: the event, then its frame for every loop. */
struct publish_event {
	struct conn *c;
	json_object *event;
	const char *exchange, *key;
	size_t delivered;          /* one loop: delivered at once */
	bool waiting;              /* several: publish_done answers */
};

/* Hand f to the subscribers: with several loops through the daemon's
 * fan-out (publish_done answers), else at once. */
static void dispatch(struct publish_event *pe, struct shared_frame *f)
{
	struct conn *c = pe->c;

	if (!worker_has_fanout(c->w)) {
		pe->delivered = worker_publish_local(c->w, pe->exchange, pe->key, f);
		return;
	}
	worker_fanout(c->w, pe->exchange, pe->key, f, publish_done, http_wait_begin(c));
	pe->waiting = true;
}

/*
 * What history_append() calls under the history's lock once the position
 * is known (and do_publish directly without history). The frame is handed
 * to the loops right here: so every loop gets an exchange's events in
 * position order, even when loops publish at once, which the replay seam
 * (router_sub.seen) relies on.
 */
static struct shared_frame *encode_at(uint64_t position, void *arg)
{
	struct publish_event *pe = arg;
	struct shared_frame *f = event_frame_encode(pe->event, pe->exchange, pe->key, position);

	dispatch(pe, f);
	return f;
}

static void do_publish(struct conn *c, json_object *doc)
{
	json_object *ex, *rk = NULL, *event, *payload = NULL, *o;
	struct exchange_rt *xrt;
	struct history_log *log;
	struct publish_event pe;
	struct shared_frame *f;
	char *key;

	if (!json_object_is_type(doc, json_type_object)) {
		http_reply_error(c, 400, NULL, "body must be a JSON object");
		return;
	}
	if (!json_object_object_get_ex(doc, "exchange", &ex) ||
	    json_input_string(ex) == NULL) {
		http_reply_error(c, 400, NULL, "\"exchange\" must be a string without NUL");
		return;
	}
	if (!json_object_object_get_ex(doc, "event", &event) ||
	    !json_object_is_type(event, json_type_string)) {
		http_reply_error(c, 400, NULL, "\"event\" must be a string");
		return;
	}
	json_object_object_get_ex(doc, "routing_key", &rk);
	key = event_frame_routing_key(rk);
	if (key == NULL) {
		http_reply_error(c, 400, NULL, "\"routing_key\" must be a string or a number");
		return;
	}
	xrt = runconf_exchange(worker_runconf(c->w), json_object_get_string(ex));
	if (xrt == NULL) {
		http_reply_error(c, 404, NULL, "unknown exchange '%s'",
				 json_object_get_string(ex));
		free(key);
		return;
	}
	json_object_object_get_ex(doc, "payload", &payload);
	/* Exactly what Myxi.push_event publishes: {"event":..,"payload":..}. */
	o = json_object_new_object();
	json_object_object_add(o, "event", json_object_get(event));
	json_object_object_add(o, "payload", payload ? json_object_get(payload) :
			       json_object_new_object());
	if (worker_broker(c->w) != NULL) {
		/* Through the broker, so every node delivers it. */
		publish_via_broker(c, o, json_object_get_string(ex), key);
		json_object_put(o);
		free(key);
		return;
	}
	log = worker_history(c->w, xrt);
	pe = (struct publish_event){ c, o, json_object_get_string(ex), key, 0, false };
	log_debug("%s: publishing %s to %s/%s", c->peer,
		  json_object_get_string(event), json_object_get_string(ex), key);
	f = log != NULL ? history_append(log, key, 0, (long long)monotonic_ms(), encode_at, &pe) :
		encode_at(0, &pe);
	json_object_put(o);
	if (f == NULL) {
		http_reply_error(c, 507, NULL, "the exchange's history has run out of positions (2^53)");
		free(key);
		return;
	}
	metrics_inc(M_PUBLISHED);
	if (!pe.waiting)
		reply_delivered(c, pe.delivered);
	shared_frame_unref(f);
	free(key);
}

/* POST /publish; returns 0 while the body is incomplete. */
static int handle_publish(struct conn *c, const struct http_request *req,
			  const char *buf, size_t avail)
{
	json_object *doc;
	int rc;

	if (worker_config(c->w)->publish_key == NULL) {
		http_reply_error(c, 403, NULL, "publishing over HTTP is disabled "
				 "(no publish_key in the configuration)");
		return 1;
	}
	if (!http_bearer_ok(req, worker_config(c->w)->publish_key)) {
		http_reply_error(c, 401, "WWW-Authenticate: Bearer\r\n",
				 "missing or wrong publish key "
				 "(send Authorization: Bearer <publish_key>)");
		return 1;
	}
	rc = http_json_body(c, req, buf, avail, HTTP_API_MAX_BODY, &doc);
	if (rc <= 0)
		return rc < 0;
	do_publish(c, doc);
	json_object_put(doc);
	return 1;
}

/* The broker's numbers, copied for the renderer (which is below the
 * broker and does not know it). */
static void broker_numbers(const struct broker *b, struct metrics_broker *mb)
{
	struct broker_stats st;

	broker_get_stats(b, &st);
	mb->connected = broker_state(b) == BROKER_UP;
	mb->received = st.received;
	mb->rejected = st.rejected;
	mb->published = st.published;
	mb->reconnects = st.reconnects;
	mb->duplicates = st.duplicates;
	mb->bindings = st.bindings;
}

static void handle_metrics(struct conn *c)
{
	struct metrics_broker mb;
	size_t len;
	char *text;

	if (worker_broker(c->w) != NULL)
		broker_numbers(worker_broker(c->w), &mb);
	text = metrics_render(worker_broker(c->w) != NULL ? &mb : NULL, &len);

	conn_http_reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL,
			text, len);
	free(text);
}

/*
 * /myxid.js (client_js) and the files of static_dir; returns false to let
 * the caller answer 404. Other methods on a file that exists get 405.
 */
static bool static_request(struct conn *c, const struct http_request *req,
			   bool get)
{
	const struct myxid_config *cfg = worker_config(c->w);
	bool head = http_str_eq(&req->method, "HEAD");
	int rc;

	if (cfg->client_js != NULL && path_is(req, "/myxid.js")) {
		rc = get ? static_files_send(c, cfg->client_js, head) : 405;
	} else if (cfg->static_dir != NULL) {
		char path[4096];

		rc = static_files_resolve(cfg->static_dir, req->target.p,
					  req->target.len, path, sizeof(path));
		if (rc == 404)
			return false;
		if (rc == 0)
			rc = get ? static_files_send(c, path, head) : 405;
	} else {
		return false;
	}
	if (rc == 405)
		http_reply_error(c, 405, "Allow: GET, HEAD\r\n",
				 "use GET or HEAD on static files");
	else if (rc == 400)
		http_reply_error(c, 400, NULL, "bad path");
	else if (rc != 0)
		http_reply_error(c, rc, NULL, "cannot serve this file");
	return true;
}

int http_api_handle(struct conn *c, const struct http_request *req,
		    const char *buf, size_t avail)
{
	bool get = http_str_eq(&req->method, "GET") || http_str_eq(&req->method, "HEAD");

	if (path_is(req, "/metrics")) {
		if (get)
			handle_metrics(c);
		else
			http_reply_error(c, 405, "Allow: GET, HEAD\r\n", "use GET on /metrics");
		return 1;
	}
	if (path_is(req, "/healthz")) {
		if (get)
			handle_healthz(c);
		else
			http_reply_error(c, 405, "Allow: GET, HEAD\r\n",
					 "use GET on /healthz");
		return 1;
	}
	if (path_is(req, "/publish")) {
		if (http_str_eq(&req->method, "POST"))
			return handle_publish(c, req, buf, avail);
		http_reply_error(c, 405, "Allow: POST\r\n", "use POST on /publish");
		return 1;
	}
	if (req->target.len > 9 && memcmp(req->target.p, "/control/", 9) == 0)
		return control_api_handle(c, req, buf, avail);
	if (worker_config(c->w)->sse &&
	    path_is(req, worker_config(c->w)->sse_path ? worker_config(c->w)->sse_path : "/events")) {
		sse_open(c, req);
		return 1;
	}
	if (static_request(c, req, get))
		return 1;
	http_reply_error(c, 404, NULL, "no such resource; WebSocket clients "
			 "must send an Upgrade request");
	return 1;
}
