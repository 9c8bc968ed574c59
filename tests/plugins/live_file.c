/*
 * A test-only auth and policy plugin that reads its answers from a file at
 * every request, so a test can grant and revoke while the daemon runs (the
 * periodic re-check, the answer cache). Each question is logged ("asked:
 * auth" / "asked: policy X/K") so a test can count them.
 *
 *   file PATH    lines "token TOKEN USER_ID" and "allow EXCHANGE KEY USER_ID";
 *                a missing file makes every answer MYXID_ERROR (an outage)
 */
#include <stdio.h>
#include <string.h>
#include <myxid/plugin.h>

struct live {
	const struct myxid_host *host;
	struct myxid_instance *inst;
	char path[1024];
};

/* Up to two instances (one auth, one policy) in a test daemon. */
static struct live instances[4];
static int n_instances;

static int init(const struct myxid_host *host, struct myxid_instance *inst,
		const struct myxid_opt *opts, size_t n_opts, void **ctx_r,
		char *err, size_t err_size, const struct myxid_opt **bad_opt_r)
{
	struct live *l;

	if (n_instances == 4) {
		snprintf(err, err_size, "too many instances");
		return -1;
	}
	l = &instances[n_instances++];
	l->host = host;
	l->inst = inst;
	if (n_opts != 1 || strcmp(opts[0].key, "file") != 0) {
		snprintf(err, err_size, "needs exactly one option: file PATH");
		return -1;
	}
	host->resolve_path(&opts[0], opts[0].value, l->path, sizeof(l->path));
	*ctx_r = l;
	return 0;
}

static void deinit(void *ctx)
{
	n_instances--;
}

/* Is a line "w1 w2 w3 [w4]" with these words in the file? -1: no file. */
static int file_has(const struct live *l, const char *w1, const char *w2,
		    const char *w3, char *out, size_t out_size)
{
	char line[1024], a[256], b[256], c[256], d[256];
	FILE *f = fopen(l->path, "r");
	int found = 0;

	if (f == NULL)
		return -1;
	while (!found && fgets(line, sizeof(line), f)) {
		int n = sscanf(line, "%255s %255s %255s %255s", a, b, c, d);
		if (n >= 3 && strcmp(a, w1) == 0 && strcmp(b, w2) == 0 &&
		    (w3 == NULL ? n == 3 : n == 4 && strcmp(c, w3) == 0)) {
			found = 1;
			if (out)
				snprintf(out, out_size, "%s", w3 == NULL ? c : d);
		}
	}
	fclose(f);
	return found;
}

static enum myxid_verdict auth(void *ctx, struct myxid_req *req)
{
	struct live *l = ctx;
	char user[256];
	int r = file_has(l, "token", l->host->req_get(req, "token"), NULL,
			 user, sizeof(user));

	l->host->log(l->inst, MYXID_LOG_NOTICE, "asked: auth");
	if (r < 0)
		return MYXID_ERROR;
	if (r == 0)
		return MYXID_NEXT;
	l->host->req_set_user(req, user, NULL);
	return MYXID_ALLOW;
}

static enum myxid_verdict policy(void *ctx, struct myxid_req *req)
{
	struct live *l = ctx;
	const char *ex = l->host->req_get(req, "exchange");
	const char *rk = l->host->req_get(req, "routing_key");
	const char *user = l->host->req_get(req, "user_id");
	char who[256];
	int r;

	l->host->log(l->inst, MYXID_LOG_NOTICE, "asked: policy %s/%s", ex, rk);
	r = file_has(l, "allow", ex, rk, who, sizeof(who));
	if (r < 0)
		return MYXID_ERROR;
	return r == 1 && user != NULL && strcmp(who, user) == 0 ?
		MYXID_ALLOW : MYXID_DENY;
}

MYXID_PLUGIN_EXPORT const struct myxid_plugin myxid_plugin_entry = {
	.abi_major = MYXID_PLUGIN_ABI_MAJOR,
	.abi_minor = MYXID_PLUGIN_ABI_MINOR,
	.size = sizeof(struct myxid_plugin),
	.kinds = MYXID_KIND_AUTH | MYXID_KIND_POLICY,
	.name = "live_file",
	.version = "1",
	.init = init,
	.deinit = deinit,
	.auth = auth,
	.policy = policy,
};
