/*
 * A test-only auth plugin whose answer is set by its options, to exercise
 * the daemon's side of the plugin contract: chaining, errors, timeouts and
 * cancellation.
 *
 *   answer allow|deny|next|error|never|invalid
 *       allow: user "t-<token>"; never: return PENDING and never answer
 *       (the daemon must time out and cancel); invalid: return a verdict
 *       that does not exist.
 */
#include <stdio.h>
#include <string.h>
#include <myxid/plugin.h>

struct auth_test {
	const struct myxid_host *host;
	struct myxid_instance *inst;
	char answer[16];
};

static struct auth_test the_instance;   /* one instance per test daemon */

static int init(const struct myxid_host *host, struct myxid_instance *inst,
		const struct myxid_opt *opts, size_t n_opts, void **ctx_r,
		char *err, size_t err_size, const struct myxid_opt **bad_opt_r)
{
	struct auth_test *t = &the_instance;

	t->host = host;
	t->inst = inst;
	snprintf(t->answer, sizeof(t->answer), "allow");
	for (size_t i = 0; i < n_opts; i++) {
		if (strcmp(opts[i].key, "answer") != 0) {
			snprintf(err, err_size, "unknown option '%s'", opts[i].key);
			*bad_opt_r = &opts[i];
			return -1;
		}
		snprintf(t->answer, sizeof(t->answer), "%s", opts[i].value);
	}
	*ctx_r = t;
	return 0;
}

static void deinit(void *ctx)
{
}

static enum myxid_verdict auth(void *ctx, struct myxid_req *req)
{
	struct auth_test *t = ctx;
	char user[128];

	if (strcmp(t->answer, "allow") == 0) {
		snprintf(user, sizeof(user), "t-%s", t->host->req_get(req, "token"));
		t->host->req_set_user(req, user, NULL);
		return MYXID_ALLOW;
	}
	if (strcmp(t->answer, "deny") == 0)
		return MYXID_DENY;
	if (strcmp(t->answer, "next") == 0)
		return MYXID_NEXT;
	if (strcmp(t->answer, "never") == 0)
		return MYXID_PENDING;
	if (strcmp(t->answer, "invalid") == 0)
		return (enum myxid_verdict)42;
	return MYXID_ERROR;
}

static void cancel(void *ctx, struct myxid_req *req)
{
	struct auth_test *t = ctx;

	t->host->log(t->inst, MYXID_LOG_NOTICE, "request cancelled");
}

MYXID_PLUGIN_EXPORT const struct myxid_plugin myxid_plugin_entry = {
	.abi_major = MYXID_PLUGIN_ABI_MAJOR,
	.abi_minor = MYXID_PLUGIN_ABI_MINOR,
	.size = sizeof(struct myxid_plugin),
	.kinds = MYXID_KIND_AUTH,
	.name = "auth_test",
	.version = "1",
	.init = init,
	.deinit = deinit,
	.auth = auth,
	.cancel = cancel,
};
