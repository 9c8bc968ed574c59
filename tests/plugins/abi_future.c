/*
 * A test-only plugin that claims the next major ABI version: the daemon
 * must refuse to load it and name both versions.
 */
#include <myxid/plugin.h>

static int init(const struct myxid_host *host, struct myxid_instance *inst,
		const struct myxid_opt *opts, size_t n_opts, void **ctx_r,
		char *err, size_t err_size, const struct myxid_opt **bad_opt_r)
{
	return -1;
}

static void deinit(void *ctx)
{
}

static enum myxid_verdict auth(void *ctx, struct myxid_req *req)
{
	return MYXID_ALLOW;
}

MYXID_PLUGIN_EXPORT const struct myxid_plugin myxid_plugin_entry = {
	.abi_major = MYXID_PLUGIN_ABI_MAJOR + 1,
	.abi_minor = 0,
	.size = sizeof(struct myxid_plugin),
	.kinds = MYXID_KIND_AUTH,
	.name = "abi_future",
	.version = "1",
	.init = init,
	.deinit = deinit,
	.auth = auth,
};
