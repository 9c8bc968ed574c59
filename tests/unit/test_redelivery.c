/*
 * Unit tests for the redelivery ring (redelivery.c): a redelivered message
 * already handled is recognised once per handled copy, one never handled
 * is not, the ring forgets what is older than its size, and the
 * fingerprint separates exchange, key and body.
 */
#include "redelivery.h"
#include "tap.h"

#include <string.h>

static uint64_t fp(const char *ex, const char *key, const char *body)
{
	return redelivery_fingerprint(ex, strlen(ex), key, strlen(key), body, strlen(body));
}

int main(void)
{
	struct redelivery r;

	redelivery_init(&r, 4);
	redelivery_handled(&r, fp("public", "k", "{\"seq\":1}"));
	redelivery_handled(&r, fp("public", "k", "{\"seq\":2}"));
	ok(redelivery_seen(&r, fp("public", "k", "{\"seq\":2}")), "a handled message is recognised");
	ok(!redelivery_seen(&r, fp("public", "k", "{\"seq\":2}")), "only once per handled copy");
	ok(!redelivery_seen(&r, fp("public", "k", "{\"seq\":3}")), "an unseen message is not");
	ok(redelivery_seen(&r, fp("public", "k", "{\"seq\":1}")), "order does not matter");

	redelivery_handled(&r, fp("public", "k", "{}"));
	redelivery_handled(&r, fp("public", "k", "{}"));
	ok(redelivery_seen(&r, fp("public", "k", "{}")), "two identical handled: first copy");
	ok(redelivery_seen(&r, fp("public", "k", "{}")), "two identical handled: second copy");
	ok(!redelivery_seen(&r, fp("public", "k", "{}")), "two identical handled: no third");

	for (int i = 0; i < 5; i++) {
		char body[16];
		snprintf(body, sizeof(body), "{\"n\":%d}", i);
		redelivery_handled(&r, fp("x", "y", body));
	}
	ok(!redelivery_seen(&r, fp("x", "y", "{\"n\":0}")), "the ring forgets beyond its size");
	ok(redelivery_seen(&r, fp("x", "y", "{\"n\":1}")), "and keeps the last size entries");
	ok(redelivery_seen(&r, fp("x", "y", "{\"n\":4}")), "(the newest too)");

	ok(fp("ab", "c", "{}") != fp("a", "bc", "{}"), "exchange/key boundary is in the fingerprint");
	ok(fp("a", "b", "{}") != fp("a", "c", "{}"), "routing key is in the fingerprint");
	ok(fp("a", "b", "") != 0, "a fingerprint is never the empty-slot marker");
	redelivery_free(&r);
	return done_testing();
}
