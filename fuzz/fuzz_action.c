/*
 * Fuzz target: the Myxi action handler (session.c), JSON in, replies out.
 * A session runs on one end of a bufferevent pair, as in
 * tests/unit/test_session.c; the auth and policy plugins are fakes whose
 * answer the input chooses, so the real authz.c machinery (the auth chain,
 * PENDING answers arriving later, cancellation) runs underneath.
 *
 * Input: messages separated by 0xFF (a byte valid UTF-8 never holds); a
 * message that is not valid UTF-8 is skipped, as the frame reader would
 * have closed the socket. A token or routing key chooses its plugin's
 * answer by its first character: a allow, d deny, n next, e error,
 * i answered inline, p pending (answered before the next message),
 * h hanging (cancelled when the session ends); anything else allows. The
 * user id an auth plugin sets is the token itself, so odd bytes reach the
 * replies.
 *
 * Checks: everything the session writes is a well-formed server frame, and
 * every text frame is a strict JSON object with a string "event".
 */
#include "fuzz_check.h"
#include "frame_check.h"
#include "authz.h"
#include "config.h"
#include "event_frame.h"
#include "history.h"
#include "shared_frame.h"
#include "conn.h"
#include "log.h"
#include "plugin_host.h"
#include "router.h"
#include "runconf.h"
#include "worker.h"
#include "session.h"
#include "utf8.h"

#include <string.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#define MAX_MESSAGES 64
#define MAX_PENDING 8

static struct event_base *base;
static struct myxid_config cfg;
static struct conf_exchange conf_ex[3];
static struct exchange_rt ex_rt[3];
static struct myxid_instance inst_auth_a, inst_auth_b, inst_policy;
static struct myxid_instance *auth_chain[2];
static struct runconf rc;
static struct worker *w;
static struct history_store *history;

/* Requests answered PENDING; answered in order, or cancelled. */
static struct myxid_req *pending[MAX_PENDING];

static enum myxid_verdict pend(struct myxid_req *req)
{
	for (int i = 0; i < MAX_PENDING; i++)
		if (pending[i] == NULL) {
			pending[i] = req;
			return MYXID_PENDING;
		}
	return MYXID_ERROR;
}

static enum myxid_verdict answer(struct myxid_req *req, const char *s,
				 bool auth)
{
	const struct myxid_host *h = &plugin_host_services;

	switch (s == NULL ? 'e' : s[0]) {
	case 'd': return MYXID_DENY;
	case 'n': return MYXID_NEXT;
	case 'e': return MYXID_ERROR;
	case 'h': return MYXID_PENDING;   /* never answered */
	case 'p':
		if (auth)
			h->req_set_user(req, s, NULL);
		return pend(req);
	case 'i':
		if (auth)
			h->req_set_user(req, s, "user");
		h->req_done(req, MYXID_ALLOW, NULL);
		return MYXID_PENDING;
	default:
		if (auth) {
			h->req_set_user(req, s, "user");
			h->req_add_attr(req, "role", s);
		}
		return MYXID_ALLOW;
	}
}

static enum myxid_verdict fake_auth(void *ctx, struct myxid_req *req)
{
	return answer(req, plugin_host_services.req_get(req, "token"), true);
}

static enum myxid_verdict fake_policy(void *ctx, struct myxid_req *req)
{
	return answer(req, plugin_host_services.req_get(req, "routing_key"), false);
}

static void fake_cancel(void *ctx, struct myxid_req *req)
{
	for (int i = 0; i < MAX_PENDING; i++)
		if (pending[i] == req)
			pending[i] = NULL;
}

static const struct myxid_plugin fake_plugin = {
	.abi_major = MYXID_PLUGIN_ABI_MAJOR,
	.abi_minor = MYXID_PLUGIN_ABI_MINOR,
	.size = sizeof(struct myxid_plugin),
	.kinds = MYXID_KIND_AUTH | MYXID_KIND_POLICY,
	.name = "fake",
	.version = "fuzz",
	.auth = fake_auth,
	.policy = fake_policy,
	.cancel = fake_cancel,
};

static struct shared_frame *encode_seed(uint64_t position, void *arg)
{
	json_object *o = json_object_new_object();
	struct shared_frame *f;

	json_object_object_add(o, "event", json_object_new_string("Seed"));
	f = event_frame_encode(o, "deployment", arg, position);
	json_object_put(o);
	return f;
}

/* Kept events the inputs' since/history may replay: keys a, ab and x
 * (a resume after 0..6 of the epoch below is sometimes complete). */
static void seed_history(void)
{
	static const char *keys[] = { "a", "ab", "a", "x", "a", "ab" };
	struct history_log *log = history_store_log(history, "deployment",
		&(struct history_limits){ 4, 0, 0 });

	history_log_set_epoch(log, "e");
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		shared_frame_unref(history_append(log, keys[i], 0, 0, encode_seed,
						  (void *)keys[i]));
}

static void noop_cb(evutil_socket_t fd, short what, void *arg)
{
}

static void setup(void)
{
	static char names[3][12] = { "deployment", "news", "fan" };
	static char labels[3][8] = { "auth_a", "auth_b", "policy" };

	log_set_level(MYXID_LOG_ERROR + 1);
	base = event_base_new();
	FUZZ_CHECK(base != NULL);
	cfg.max_message_size = 64 * 1024;
	cfg.max_handshake_size = 8 * 1024;
	cfg.handshake_timeout_ms = 10000;
	/* Long enough that no plugin timeout fires: runs stay repeatable. */
	cfg.auth_timeout_ms = 600000;
	cfg.max_subscriptions = 8;
	cfg.max_output_buffer = 1024 * 1024;
	cfg.max_connections = 10;
	cfg.log_level = MYXID_LOG_ERROR;
	for (int i = 0; i < 3; i++) {
		conf_ex[i].name = names[i];
		ex_rt[i].conf = &conf_ex[i];
		ex_rt[i].policy = &inst_policy;
	}
	conf_ex[1].type = EXCHANGE_TOPIC;
	conf_ex[2].type = EXCHANGE_FANOUT;
	/* History on all three (fanout and topic patterns are refused it), so
	 * since/history reach the store: a few events kept per key. */
	for (int i = 0; i < 3; i++)
		conf_ex[i].history = (struct conf_history){ .enabled = true, .events = 4 };
	cfg.history_max_replay = 3;
	inst_auth_a = (struct myxid_instance){ .desc = &fake_plugin,
		.label = labels[0], .base = base, .kind = MYXID_KIND_AUTH };
	inst_auth_b = (struct myxid_instance){ .desc = &fake_plugin,
		.label = labels[1], .base = base, .kind = MYXID_KIND_AUTH };
	inst_policy = (struct myxid_instance){ .desc = &fake_plugin,
		.label = labels[2], .base = base, .kind = MYXID_KIND_POLICY };
	auth_chain[0] = &inst_auth_a;
	auth_chain[1] = &inst_auth_b;
	rc.refs = 1 << 30;    /* static: never freed */
	rc.cfg = &cfg;
	rc.auths = auth_chain;
	rc.n_auths = 2;
	rc.exchanges = ex_rt;
	rc.n_exchanges = 3;
	w = worker_new_bare(base, &rc, session_deliver);
	history = history_store_new(1 << 20);
	worker_share(w, NULL, NULL, history);
	seed_history();
}

static void pump(void)
{
	for (int i = 0; i < 4; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
}

/* Check and drop every complete frame the session wrote. */
static void drain_replies(struct bufferevent *ours)
{
	struct evbuffer *in = bufferevent_get_input(ours);

	for (;;) {
		size_t avail = evbuffer_get_length(in), n;
		json_object *o = NULL, *ev;
		const uint8_t *p;

		if (avail == 0)
			return;
		p = evbuffer_pullup(in, -1);
		n = fuzz_check_server_frame(p, avail, &o);
		FUZZ_CHECK(n > 0);   /* the session writes whole frames */
		if (o != NULL) {
			FUZZ_CHECK(json_object_object_get_ex(o, "event", &ev));
			FUZZ_CHECK(json_object_is_type(ev, json_type_string));
			json_object_put(o);
		}
		evbuffer_drain(in, n);
	}
}

/* Answer the first request waiting, if any. */
static void answer_pending(void)
{
	for (int i = 0; i < MAX_PENDING; i++) {
		struct myxid_req *req = pending[i];
		if (req != NULL) {
			pending[i] = NULL;
			plugin_host_services.req_done(req, MYXID_ALLOW, NULL);
			return;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char peer[] = "127.0.0.1:9";
	struct bufferevent *pair[2];
	struct conn c;
	size_t start = 0;
	int n_messages = 0;

	if (base == NULL)
		setup();
	FUZZ_CHECK(bufferevent_pair_new(base, 0, pair) == 0);
	bufferevent_enable(pair[1], EV_READ);
	memset(&c, 0, sizeof c);
	c.w = w;
	c.bev = pair[0];
	c.state = CONN_WS;
	c.timer = evtimer_new(base, noop_cb, NULL);
	snprintf(c.peer, sizeof c.peer, "%s", peer);
	worker_session_opened(w);
	c.session = session_new(&c);
	pump();
	drain_replies(pair[1]);

	while (start <= size && n_messages < MAX_MESSAGES &&
	       c.state == CONN_WS) {
		const uint8_t *end = memchr(data + start, 0xFF, size - start);
		size_t len = end ? (size_t)(end - (data + start)) : size - start;
		uint8_t *msg = fuzz_dup(data + start, len);

		if (utf8_valid(msg, len)) {
			session_on_message(c.session, msg, len);
			n_messages++;
		}
		free(msg);
		pump();
		answer_pending();
		pump();
		drain_replies(pair[1]);
		start += len + 1;
	}
	for (int i = 0; i < MAX_PENDING && c.state == CONN_WS; i++) {
		answer_pending();
		pump();
	}
	drain_replies(pair[1]);

	session_free(&c.session);
	FUZZ_CHECK(router_route_count(worker_router(w)) == 0);
	for (int i = 0; i < MAX_PENDING; i++)
		FUZZ_CHECK(pending[i] == NULL);
	FUZZ_CHECK(inst_auth_a.pending + inst_auth_b.pending +
		   inst_policy.pending == 0);
	event_free(c.timer);
	bufferevent_free(pair[0]);
	bufferevent_free(pair[1]);
	pump();
	return 0;
}
