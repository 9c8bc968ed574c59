/*
 * Fuzz target: a message from RabbitMQ becoming the event browsers get.
 * The publisher controls the routing key and the body; the daemon parses
 * the body strictly, appends "mq":{"e","rk"}, frames it once and fans it out
 * through the router, where topic patterns (written by clients, also
 * untrusted) are matched against the key.
 *
 * Input: byte 0 picks the exchange kind, byte 1 the length of a client's
 * topic pattern, byte 2 the length of the routing key; then the pattern,
 * the key, and the body. The key is cut and terminated the way
 * broker_thread.c's handle_delivery() does (256-byte buffer, "%.*s").
 *
 * Checks: a body that is a strict JSON object, under a UTF-8 key, gives
 * exactly one frame: a valid text frame carrying the right "mq"; anything
 * else gives no frame and a reason; every frame a subscriber is handed is
 * that frame.
 */
#include "fuzz_check.h"
#include "frame_check.h"
#include "json_input.h"
#include "event_frame.h"
#include "redelivery.h"
#include "router.h"
#include "shared_frame.h"
#include "utf8.h"

#include <string.h>

static struct router *router;
static struct router_list subs;
static struct shared_frame *expected;
static size_t delivered;

static void deliver(void *owner, struct shared_frame *f)
{
	FUZZ_CHECK(f == expected);
	delivered++;
}

static void check_event(const struct shared_frame *f, const char *exchange,
			const char *rk)
{
	json_object *o = NULL, *mq, *v;

	FUZZ_CHECK(fuzz_check_server_frame(f->data, f->len, &o) == f->len);
	FUZZ_CHECK(o != NULL);
	FUZZ_CHECK(json_object_object_get_ex(o, "mq", &mq));
	FUZZ_CHECK(json_object_object_get_ex(mq, "e", &v));
	FUZZ_CHECK(strcmp(json_object_get_string(v), exchange) == 0);
	FUZZ_CHECK(json_object_object_get_ex(mq, "rk", &v));
	FUZZ_CHECK(strcmp(json_object_get_string(v), rk) == 0);
	json_object_put(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const exchanges[] = { "deployment", "news", "fan" };
	static const enum router_match how[] = { ROUTER_EXACT, ROUTER_TOPIC,
						 ROUTER_FANOUT };
	char pattern[256], key[256];
	size_t plen, klen, kind;
	struct router_sub *sub;
	const char *why = NULL;
	struct shared_frame *f;
	struct redelivery seen;

	if (router == NULL)
		router = router_new(deliver, NULL, NULL);
	if (size < 3)
		return 0;
	kind = data[0] % 3;
	plen = data[1];
	klen = data[2];
	data += 3;
	size -= 3;
	if (plen > size)
		plen = size;
	snprintf(pattern, sizeof pattern, "%.*s", (int)plen, (const char *)data);
	data += plen;
	size -= plen;
	if (klen > size)
		klen = size;
	/* broker_thread.c drops a key holding a NUL before it gets this far. */
	if (memchr(data, '\0', klen) != NULL)
		return 0;
	snprintf(key, sizeof key, "%.*s", (int)klen, (const char *)data);
	data += klen;
	size -= klen;

	/* The fingerprint that recognises redeliveries reads every byte. */
	redelivery_init(&seen, 4);
	redelivery_handled(&seen, redelivery_fingerprint(exchanges[kind],
		strlen(exchanges[kind]), key, klen, data, size));
	redelivery_free(&seen);

	/* Patterns are matched as written; the router must cope with any. */
	(void)topic_match(pattern, key);
	sub = router_add(router, &subs, &subs, exchanges[kind], pattern,
			 kind == 1);

	char *body = (char *)fuzz_dup(data, size);
	f = event_frame_encode_body(body, size, exchanges[kind], key, 0, &why);
	free(body);
	if (f == NULL) {
		FUZZ_CHECK(why != NULL);
		/* Refused: the key is not UTF-8, or the body no JSON object. */
		json_object *o = json_input_parse(data, size, 64);
		FUZZ_CHECK(!utf8_valid(key, strlen(key)) ||
			   !json_object_is_type(o, json_type_object));
		json_object_put(o);
	} else {
		check_event(f, exchanges[kind], key);
		expected = f;
		delivered = 0;
		size_t n = router_publish(router, exchanges[kind], key, how[kind], f);
		FUZZ_CHECK(n == delivered && n <= 1);
		if (kind == 2 || strcmp(pattern, key) == 0)
			FUZZ_CHECK(n == 1);
		expected = NULL;
		shared_frame_unref(f);
	}
	if (sub != NULL)
		router_remove(router, &subs, sub);
	FUZZ_CHECK(router_route_count(router) == 0);
	return 0;
}
