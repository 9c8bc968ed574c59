/*
 * Unit tests for the in-tree plugins (auth_static, policy_static) and the
 * integrator's example (auth_example), loaded the way the daemon loads
 * them: dlopen() of the built .so, then only the exported descriptor and a
 * host table (tests/unit/fake_host.c) in between.
 *
 * Environment:
 *   MYXID_PLUGIN_DIR      directory holding auth_static.so, policy_static.so
 *   MYXID_EXAMPLE_PLUGIN  path of auth_example.so
 *   MYXID_SRCDIR          source tree, for etc/demo-tokens (default: cwd)
 */
#define _POSIX_C_SOURCE 200809L

#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <myxid/plugin.h>
#include "fake_host.h"
#include "tap.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static char tmpdir[256];
static char conf_path[512];     /* the "config file" options come from */
static char created[64][512];   /* files to remove at the end */
static size_t n_created;

static struct fake_host fh;

/* ------------------------------------------------------------ helpers */

/* Write a file in the temp dir; its full path goes to path. */
static void write_file(const char *name, const char *content, size_t len,
		       char *path, size_t path_size)
{
	FILE *fp;

	snprintf(path, path_size, "%s/%s", tmpdir, name);
	fp = fopen(path, "w");
	if (fp == NULL || fwrite(content, 1, len, fp) != len || fclose(fp) != 0) {
		printf("Bail out! cannot write %s\n", path);
		exit(1);
	}
	if (n_created < N_ELEMS(created))
		snprintf(created[n_created++], sizeof(created[0]), "%s", path);
}

static void write_text(const char *name, const char *content,
		       char *path, size_t path_size)
{
	write_file(name, content, strlen(content), path, path_size);
}

static void cleanup_tmpdir(void)
{
	size_t i;

	for (i = 0; i < n_created; i++)
		unlink(created[i]);
	rmdir(tmpdir);
}

static int contains(const char *haystack, const char *needle)
{
	return haystack != NULL && strstr(haystack, needle) != NULL;
}

static const struct myxid_plugin *load(const char *path, void **dl_r)
{
	const struct myxid_plugin *p;

	*dl_r = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (*dl_r == NULL) {
		printf("# dlopen: %s\n", dlerror());
		return NULL;
	}
	p = dlsym(*dl_r, MYXID_PLUGIN_SYMBOL);
	if (p == NULL)
		printf("# dlsym: %s\n", dlerror());
	return p;
}

/* The checks the daemon makes before using a descriptor, and a few more. */
static int check_descriptor(const struct myxid_plugin *p, const char *name,
			    unsigned kinds)
{
	size_t i;
	int reserved_null = 1;

	if (!ok(p != NULL, "%s: exports " MYXID_PLUGIN_SYMBOL, name))
		return 0;
	is_int(p->abi_major, MYXID_PLUGIN_ABI_MAJOR, "%s: abi_major", name);
	ok(p->abi_minor <= MYXID_PLUGIN_ABI_MINOR, "%s: abi_minor", name);
	is_int(p->size, sizeof(struct myxid_plugin), "%s: size", name);
	is_int(p->kinds, kinds, "%s: kinds", name);
	is_str(p->name, name, "%s: name", name);
	ok(p->version != NULL && p->version[0] != '\0', "%s: version", name);
	ok(p->init != NULL && p->deinit != NULL, "%s: init and deinit", name);
	ok((p->auth != NULL) == ((kinds & MYXID_KIND_AUTH) != 0),
	   "%s: auth() present iff kind auth", name);
	ok((p->policy != NULL) == ((kinds & MYXID_KIND_POLICY) != 0),
	   "%s: policy() present iff kind policy", name);
	for (i = 0; i < N_ELEMS(p->reserved); i++)
		if (p->reserved[i] != NULL)
			reserved_null = 0;
	ok(reserved_null, "%s: reserved pointers are NULL", name);
	return 1;
}

/* A failed init as the daemon sees it. */
struct init_result {
	int rc;
	void *ctx;
	char err[512];
	const struct myxid_opt *bad;
};

static void try_init(const struct myxid_plugin *p, const struct myxid_opt *opts,
		     size_t n_opts, struct init_result *r)
{
	memset(r, 0, sizeof(*r));
	r->rc = p->init(&fh.host, &fh.inst, opts, n_opts, &r->ctx,
			r->err, sizeof(r->err), &r->bad);
	if (r->rc == 0)
		r->err[0] = '\0';
}

/* ------------------------------------------------------------ auth_static */

static const char good_tokens[] =
	"# a comment, then a blank line and one of blanks\n"
	"\n"
	"   \t \n"
	"demo-alice 1 deployments=d1,d2\n"
	"\ttok-typed\t42 type=Admin team=ops deployments=x   # trailing comment\n"
	"crlf-token 7\r\n"
	"a#b 8\n"
	"no-newline-at-end 9 k=v";

static enum myxid_verdict auth_token(const struct myxid_plugin *p, void *ctx,
				     struct myxid_req *req, const char *token)
{
	fake_req_init(req);
	if (token != NULL)
		fake_req_set(req, "token", token);
	return p->auth(ctx, req);
}

/* Load tokens from a file in the temp dir, by a path relative to the
 * "config file", as a config would. */
static void *auth_static_new(const struct myxid_plugin *p, const char *name,
			     const char *content)
{
	char path[512];
	struct myxid_opt o[] = { { "tokens_file", name, conf_path, 3 } };
	struct init_result r;

	write_text(name, content, path, sizeof(path));
	try_init(p, o, 1, &r);
	if (r.rc != 0)
		printf("# init: %s\n", r.err);
	return r.rc == 0 ? r.ctx : NULL;
}

static void test_auth_static_known(const struct myxid_plugin *p, void *ctx)
{
	struct myxid_req req;

	is_int(auth_token(p, ctx, &req, "demo-alice"), MYXID_ALLOW, "known token allowed");
	is_str(req.user_id, "1", "user id set");
	ok(req.user_type == NULL, "no user type when none given");
	is_int(req.n_attrs, 1, "one attribute");
	is_str(fake_req_attr(&req, "deployments"), "d1,d2", "attribute value kept whole");
	is_int(req.n_done, 0, "synchronous answer: req_done not called");
	fake_req_fini(&req);

	is_int(auth_token(p, ctx, &req, "tok-typed"), MYXID_ALLOW, "typed token allowed");
	is_str(req.user_id, "42", "typed: user id");
	is_str(req.user_type, "Admin", "typed: user type from type=");
	is_int(req.n_attrs, 2, "typed: type= is not an attribute");
	is_str(fake_req_attr(&req, "team"), "ops", "typed: first attribute");
	is_str(fake_req_attr(&req, "deployments"), "x", "typed: comment cut off");
	is_str(req.attr_keys[0], "team", "attributes keep file order");
	fake_req_fini(&req);

	is_int(auth_token(p, ctx, &req, "crlf-token"), MYXID_ALLOW, "CRLF line end stripped");
	is_str(req.user_id, "7", "CRLF: user id without CR");
	fake_req_fini(&req);
	is_int(auth_token(p, ctx, &req, "a#b"), MYXID_ALLOW, "'#' inside a word is not a comment");
	fake_req_fini(&req);
	is_int(auth_token(p, ctx, &req, "no-newline-at-end"), MYXID_ALLOW,
	       "last line without newline");
	is_str(fake_req_attr(&req, "k"), "v", "last line: attribute");
	fake_req_fini(&req);
}

static void test_auth_static_unknown(const struct myxid_plugin *p, void *ctx)
{
	static const char *const misses[] = {
		"nope", "", "demo-alic", "demo-alicex", "demo-alice ",
		"Demo-alice", "crlf-token\r", "1", "a",
	};
	struct myxid_req req;
	size_t i;

	for (i = 0; i < N_ELEMS(misses); i++) {
		is_int(auth_token(p, ctx, &req, misses[i]), MYXID_NEXT,
		       "unknown token #%zu -> NEXT", i);
		ok(req.n_set_user == 0 && req.n_attrs == 0 && req.n_done == 0,
		   "unknown token #%zu: identity untouched", i);
		fake_req_fini(&req);
	}
	is_int(auth_token(p, ctx, &req, NULL), MYXID_NEXT, "no token at all -> NEXT");
	fake_req_fini(&req);
}

/* A host that refuses the identity must not turn into an ALLOW. */
static int refuse_user(struct myxid_req *req, const char *user_id,
		       const char *user_type)
{
	return -1;
}

static void test_auth_static_host_refuses(const struct myxid_plugin *p, void *ctx)
{
	int (*saved)(struct myxid_req *, const char *, const char *) =
		fh.host.req_set_user;
	struct myxid_req req;

	fh.host.req_set_user = refuse_user;
	is_int(auth_token(p, ctx, &req, "demo-alice"), MYXID_ERROR,
	       "host refusing the user id -> ERROR");
	fake_req_fini(&req);
	fh.host.req_set_user = saved;
}

static void test_auth_static_bulk(const struct myxid_plugin *p)
{
	static char content[300 * 32];
	size_t len = 0;
	int i, found = 0;
	void *ctx;

	for (i = 0; i < 300; i++)
		len += (size_t)snprintf(content + len, sizeof(content) - len,
					"bulk-%d u%d n=%d\n", i, i, i);
	ctx = auth_static_new(p, "bulk", content);
	if (!ok(ctx != NULL, "300 tokens load"))
		return;
	for (i = 0; i < 300; i++) {
		struct myxid_req req;
		char token[32], uid[16];

		snprintf(token, sizeof(token), "bulk-%d", i);
		snprintf(uid, sizeof(uid), "u%d", i);
		if (auth_token(p, ctx, &req, token) == MYXID_ALLOW &&
		    req.user_id != NULL && strcmp(req.user_id, uid) == 0)
			found++;
		fake_req_fini(&req);
	}
	is_int(found, 300, "every one of 300 tokens finds its own user");
	p->deinit(ctx);
}

/* A file that init must refuse, with "PATH:LINE: want" in the message.
 * len 0 means the content is a C string. */
static void expect_file_error(const struct myxid_plugin *p, const char *name,
			      const char *content, size_t len, unsigned line,
			      const char *want)
{
	char path[512], where[600];
	struct myxid_opt o[] = { { "tokens_file", name, conf_path, 3 } };
	struct init_result r;

	write_file(name, content, len != 0 ? len : strlen(content), path, sizeof(path));
	try_init(p, o, 1, &r);
	snprintf(where, sizeof(where), "%s:%u: ", path, line);
	is_int(r.rc, -1, "%s: init fails", name);
	ok(strncmp(r.err, where, strlen(where)) == 0 && contains(r.err, want),
	   "%s: error is \"%s%s...\" (got \"%s\")", name, where, want, r.err);
	ok(!contains(r.err, "SECRET"), "%s: error does not show a token", name);
	ok(r.bad == NULL, "%s: no option blamed for the file's content", name);
	if (r.rc == 0)
		p->deinit(r.ctx);
}

static void test_auth_static_file_errors(const struct myxid_plugin *p)
{
	static const char nul[] = "x 1\nSECRET-y\0 2\n";

	expect_file_error(p, "dup", "SECRET-x 1\nSECRET-y 2\n# c\nSECRET-x 3\n", 0, 4,
			  "duplicate token (first on line 1)");
	expect_file_error(p, "no-uid", "SECRET-x 1\n\nSECRET-lonely\n", 0, 3,
			  "missing user id");
	expect_file_error(p, "uid-attr", "SECRET-x a=b\n", 0, 1, "missing user id");
	expect_file_error(p, "bad-attr", "SECRET-x 1 nonsense\n", 0, 1,
			  "bad attribute \"nonsense\"");
	expect_file_error(p, "empty-name", "SECRET-x 1 =v\n", 0, 1, "bad attribute");
	expect_file_error(p, "empty-value", "SECRET-x 1 k=\n", 0, 1, "bad attribute");
	expect_file_error(p, "bad-name", "SECRET-x 1 k!=v\n", 0, 1, "bad attribute");
	expect_file_error(p, "type-twice", "SECRET-x 1 type=a type=b\n", 0, 1,
			  "type given twice");
	expect_file_error(p, "attr-twice", "SECRET-x 1 a=1 b=2 a=3\n", 0, 1,
			  "attribute \"a\" given twice");
	expect_file_error(p, "nul", nul, sizeof(nul) - 1, 2, "NUL byte");
}

static void test_auth_static_options(const struct myxid_plugin *p)
{
	char path[512];
	struct init_result r;
	struct myxid_opt missing[] = { { "tokens_file", "does-not-exist", conf_path, 5 } };
	struct myxid_opt unknown[] = {
		{ "tokens_file", "good", conf_path, 5 },
		{ "colour", "blue", conf_path, 6 },
	};
	struct myxid_opt twice[] = {
		{ "tokens_file", "good", conf_path, 5 },
		{ "tokens_file", "good", conf_path, 6 },
	};
	struct myxid_opt empty[] = { { "tokens_file", "", conf_path, 5 } };
	char small[8];
	const struct myxid_opt *bad = NULL;
	void *ctx = NULL;
	struct myxid_opt no_uid[] = { { "tokens_file", "no-uid", conf_path, 5 } };

	try_init(p, missing, 1, &r);
	snprintf(path, sizeof(path), "%s/does-not-exist: ", tmpdir);
	is_int(r.rc, -1, "missing file: init fails");
	ok(strncmp(r.err, path, strlen(path)) == 0 &&
	   contains(r.err, "No such file"), "missing file: \"%s\"", r.err);
	ok(r.bad == &missing[0], "missing file: tokens_file option blamed");

	try_init(p, unknown, 2, &r);
	is_int(r.rc, -1, "unknown option: init fails");
	ok(r.bad == &unknown[1], "unknown option: that option blamed");
	ok(contains(r.err, "colour"), "unknown option: named (%s)", r.err);

	try_init(p, NULL, 0, &r);
	is_int(r.rc, -1, "no options: init fails");
	ok(contains(r.err, "tokens_file is required"), "no options: \"%s\"", r.err);
	ok(r.bad == NULL, "no options: no option blamed");

	try_init(p, twice, 2, &r);
	ok(r.rc == -1 && r.bad == &twice[1], "tokens_file twice: second blamed");
	try_init(p, empty, 1, &r);
	ok(r.rc == -1 && r.bad == &empty[0], "tokens_file without a path: blamed");

	/* The daemon may pass a small buffer: the message is cut, not run
	 * past its end. */
	memset(small, 'X', sizeof(small));
	ok(p->init(&fh.host, &fh.inst, no_uid, 1, &ctx, small, sizeof(small), &bad) == -1 &&
	   memchr(small, '\0', sizeof(small)) != NULL, "small err buffer: cut and terminated");
}

static void test_auth_static_misc(const struct myxid_plugin *p)
{
	struct myxid_req req;
	struct init_result r;
	void *ctx;
	const char *srcdir = getenv("MYXID_SRCDIR");
	char cwd[256];
	char demo[512];
	struct myxid_opt o[] = { { "tokens_file", demo, conf_path, 1 } };

	fake_host_log_clear(&fh);
	ctx = auth_static_new(p, "empty", "# nothing yet\n");
	ok(ctx != NULL, "file with no tokens loads");
	ok(fake_host_log_has(&fh, "no tokens in"), "and says so in the log");
	if (ctx != NULL) {
		is_int(auth_token(p, ctx, &req, "demo-alice"), MYXID_NEXT,
		       "no tokens: everything is NEXT");
		fake_req_fini(&req);
		p->deinit(ctx);
	}

	/* etc/demo-tokens as shipped, by absolute path (a relative one would
	 * be taken from the config file's directory). */
	if (srcdir == NULL || srcdir[0] == '\0')
		srcdir = getcwd(cwd, sizeof(cwd)) != NULL ? cwd : ".";
	snprintf(demo, sizeof(demo), "%s/etc/demo-tokens", srcdir);
	try_init(p, o, 1, &r);
	if (!ok(r.rc == 0, "etc/demo-tokens loads (%s)", r.err))
		return;
	ok(auth_token(p, r.ctx, &req, "demo-alice") == MYXID_ALLOW &&
	   contains(req.user_id, "1") && strlen(req.user_id) == 1 &&
	   contains(fake_req_attr(&req, "deployments"), "d1,d2"),
	   "demo-alice is user 1 with deployments d1,d2");
	fake_req_fini(&req);
	ok(auth_token(p, r.ctx, &req, "demo-bob") == MYXID_ALLOW &&
	   contains(req.user_id, "2") &&
	   contains(fake_req_attr(&req, "deployments"), "d3"),
	   "demo-bob is user 2 with deployments d3");
	fake_req_fini(&req);
	p->deinit(r.ctx);
}

static void test_auth_static(const char *dir)
{
	char path[512];
	void *dl, *ctx;
	const struct myxid_plugin *p;
	struct myxid_host saved = fh.host;
	struct init_result r;
	struct myxid_opt o[] = { { "tokens_file", "good", conf_path, 3 } };

	snprintf(path, sizeof(path), "%s/auth_static.so", dir);
	p = load(path, &dl);
	if (!check_descriptor(p, "auth_static", MYXID_KIND_AUTH))
		return;

	fake_host_log_clear(&fh);
	ctx = auth_static_new(p, "good", good_tokens);
	if (ok(ctx != NULL, "tokens file with comments, blanks, CRLF loads")) {
		ok(fake_host_log_has(&fh, "5 token(s) loaded"), "init logs the count");
		ok(!fake_host_log_has(&fh, "demo-alice"), "init does not log tokens");
		test_auth_static_known(p, ctx);
		test_auth_static_unknown(p, ctx);
		test_auth_static_host_refuses(p, ctx);
		p->deinit(ctx);
	}
	test_auth_static_bulk(p);
	test_auth_static_file_errors(p);
	test_auth_static_options(p);
	test_auth_static_misc(p);

	fh.host.abi_major = MYXID_PLUGIN_ABI_MAJOR + 1;
	try_init(p, o, 1, &r);
	ok(r.rc == -1 && contains(r.err, "ABI"), "host of another ABI major refused");
	fh.host = saved;
	dlclose(dl);
}

/* ------------------------------------------------------------ policy_static */

/* A policy instance from allow rules. */
static void *policy_new(const struct myxid_plugin *p, const char *const *rules,
			size_t n)
{
	struct myxid_opt o[16];
	struct init_result r;
	size_t i;

	for (i = 0; i < n && i < N_ELEMS(o); i++) {
		o[i].key = "allow";
		o[i].value = rules[i];
		o[i].file = conf_path;
		o[i].line = (unsigned)(10 + i);
	}
	try_init(p, o, n, &r);
	if (r.rc != 0)
		printf("# init: %s\n", r.err);
	return r.rc == 0 ? r.ctx : NULL;
}

/* The user a policy request is about; NULL fields are absent. */
struct user {
	const char *id;
	const char *type;
	const char *attr_name;    /* one attribute is enough for these tests */
	const char *attr_value;
};

static const struct user anon = { NULL, NULL, NULL, NULL };
static const struct user alice = { "1", NULL, "deployments", "d1,d2" };
static const struct user staff = { "7", "Staff", "team", "ops" };

/* Requests where policy() called req_done or set an identity: a bug. */
static int policy_side_effects;

/* A Subscribe to deployment/key by u, or a presence watch of it. */
static enum myxid_verdict ask(const struct myxid_plugin *p, void *ctx,
			      const struct user *u, const char *key, bool presence)
{
	struct myxid_req req;
	/* Borrowed by the fake request: it must live as long as req. */
	char attr_key[64];
	enum myxid_verdict v;

	fake_req_init(&req);
	fake_req_set(&req, "exchange", "deployment");
	if (key != NULL)
		fake_req_set(&req, "routing_key", key);
	if (presence)
		fake_req_set(&req, "presence", "1");
	if (u->id != NULL)
		fake_req_set(&req, "user_id", u->id);
	if (u->type != NULL)
		fake_req_set(&req, "user_type", u->type);
	if (u->attr_name != NULL) {
		snprintf(attr_key, sizeof(attr_key), "attr:%s", u->attr_name);
		fake_req_set(&req, attr_key, u->attr_value);
	}
	v = p->policy(ctx, &req);
	if (req.n_done != 0 || req.n_set_user != 0 || req.n_attrs != 0)
		policy_side_effects++;
	fake_req_fini(&req);
	return v;
}

static enum myxid_verdict decide(const struct myxid_plugin *p, void *ctx,
				 const struct user *u, const char *key)
{
	return ask(p, ctx, u, key, false);
}

/* One rule, many requests: each case is user, key, expected verdict. */
struct policy_case {
	const struct user *u;
	const char *key;
	enum myxid_verdict want;
};

static void check_rule(const struct myxid_plugin *p, const char *rule,
		       const struct policy_case *cases, size_t n)
{
	void *ctx = policy_new(p, &rule, 1);
	size_t i;

	if (!ok(ctx != NULL, "allow %s: compiles", rule))
		return;
	for (i = 0; i < n; i++) {
		const struct policy_case *c = &cases[i];

		is_int(decide(p, ctx, c->u, c->key), c->want,
		       "allow %s: user %s, key \"%s\" -> %s", rule,
		       c->u->id ? c->u->id : "(anon)", c->key ? c->key : "(none)",
		       c->want == MYXID_ALLOW ? "allow" : "deny");
	}
	p->deinit(ctx);
}

#define CHECK_RULE(p, rule, ...) do { \
	static const struct policy_case cases_[] = { __VA_ARGS__ }; \
	check_rule(p, rule, cases_, N_ELEMS(cases_)); \
} while (0)

#define A MYXID_ALLOW
#define D MYXID_DENY

static void test_policy_rules(const struct myxid_plugin *p)
{
	static const struct user star_user = { "*", NULL, "deployments", "*,d?" };
	static const struct user spaced = { "3", NULL, "deployments", "d1, d2,,d3" };
	static const struct user empty_id = { "", NULL, NULL, NULL };
	static const struct user attr_only = { NULL, NULL, "deployments", "d1" };

	CHECK_RULE(p, "public",
		   { &anon, "x", A }, { &alice, "anything", A }, { &anon, NULL, A });
	CHECK_RULE(p, "authenticated",
		   { &anon, "x", D }, { &alice, "x", A }, { &staff, "", A },
		   { &empty_id, "x", D });
	CHECK_RULE(p, "attribute deployments",
		   { &alice, "d1", A }, { &alice, "d2", A }, { &alice, "d3", D },
		   { &alice, "d1,d2", D }, { &alice, "d", D }, { &alice, "", D },
		   { &alice, NULL, D }, { &anon, "d1", D }, { &staff, "d1", D },
		   { &attr_only, "d1", D },
		   { &spaced, "d1", A }, { &spaced, "d2", D }, { &spaced, " d2", A },
		   { &spaced, "", D }, { &spaced, "d3", A },
		   { &star_user, "anything", D }, { &star_user, "*", A },
		   { &star_user, "d?", A }, { &star_user, "d1", D });
	CHECK_RULE(p, "key user.{user_id}",
		   { &alice, "user.1", A }, { &alice, "user.2", D },
		   { &alice, "user.1x", D }, { &alice, "user.", D },
		   { &alice, "xuser.1", D }, { &anon, "user.", D },
		   { &anon, "user.1", D }, { &empty_id, "user.", D },
		   { &star_user, "user.x", D }, { &star_user, "user.*", A });
	CHECK_RULE(p, "key feed.*",
		   { &anon, "feed.a", A }, { &anon, "feed.", A },
		   { &anon, "feed.a.b", A }, { &anon, "feed", D },
		   { &anon, "xfeed.a", D }, { &anon, NULL, D });
	CHECK_RULE(p, "key *",
		   { &anon, "", A }, { &anon, "a.b", A }, { &anon, NULL, D });
	CHECK_RULE(p, "key exact",
		   { &anon, "exact", A }, { &anon, "exactly", D }, { &anon, "", D });
	CHECK_RULE(p, "key a*b**c",
		   { &anon, "abc", A }, { &anon, "aXbYbZc", A },
		   { &anon, "abcbc", A }, { &anon, "acb", D },
		   { &anon, "ab", D }, { &anon, "aXbYcZ", D },
		   { &anon, "aXc", D }, { &anon, "ac", D });
	CHECK_RULE(p, "key *.{user_id}",
		   { &alice, "x.1", A }, { &alice, ".1", A }, { &alice, "a.1.1", A },
		   { &alice, "x.2", D }, { &alice, "x.1.2", D });
	CHECK_RULE(p, "key *.{user_id}.*",
		   { &alice, "a.1.b", A }, { &alice, ".1.", A }, { &alice, "a.2.1.b", A },
		   { &alice, "a.2.b", D }, { &alice, "a1b", D }, { &alice, ".1", D });
	CHECK_RULE(p, "key {user_type}.{user_id}.*",
		   { &staff, "Staff.7.a", A }, { &staff, "Staff.7.", A },
		   { &staff, "staff.7.a", D }, { &alice, ".1.a", D },
		   { &alice, "Staff.1.a", D });
	CHECK_RULE(p, "key {attr:team}-*-{user_id}",
		   { &staff, "ops-x-7", A }, { &staff, "ops--7", A },
		   { &staff, "ops-7", D }, { &staff, "ops-x-77", D },
		   { &alice, "ops-x-1", D }, { &anon, "--", D });
	CHECK_RULE(p, "key d{attr:deployments}",
		   { &alice, "dd1,d2", A }, { &alice, "dd1", D });
}

static void test_policy_several(const struct myxid_plugin *p)
{
	static const char *const rules[] = {
		"attribute deployments", "key user.{user_id}", "key   public.*",
	};
	void *ctx = policy_new(p, rules, N_ELEMS(rules));

	if (!ok(ctx != NULL, "three rules compile"))
		return;
	is_int(decide(p, ctx, &alice, "d2"), A, "several rules: first matches");
	is_int(decide(p, ctx, &alice, "user.1"), A, "several rules: second matches");
	is_int(decide(p, ctx, &anon, "public.news"), A, "several rules: third matches");
	is_int(decide(p, ctx, &alice, "d3"), D, "several rules: none matches -> DENY");
	p->deinit(ctx);
}

/* "presence RULE" lines: only for a request asking presence, and only
 * once an allow rule matched. */
static enum myxid_verdict decide_presence(const struct myxid_plugin *p, void *ctx,
					  const struct user *u, const char *key)
{
	return ask(p, ctx, u, key, true);
}

static void test_policy_presence(const struct myxid_plugin *p)
{
	struct myxid_opt o[] = {
		{ "allow", "authenticated", conf_path, 30 },
		{ "presence", "attribute deployments", conf_path, 31 },
	};
	struct myxid_opt only[] = { { "presence", "public", conf_path, 40 } };
	struct init_result r;
	void *plain = policy_new(p, (const char *const[]){ "authenticated" }, 1);

	try_init(p, o, 2, &r);
	if (!ok(r.rc == 0 && plain != NULL, "allow + presence rules compile")) {
		printf("# %s\n", r.err);
		return;
	}
	is_int(decide(p, r.ctx, &staff, "d1"), A, "presence rules: a plain subscribe "
	       "needs only an allow rule");
	is_int(decide_presence(p, r.ctx, &alice, "d1"), A, "presence asked: allow and "
	       "presence rule match -> ALLOW");
	is_int(decide_presence(p, r.ctx, &staff, "d1"), D, "presence asked: allow matches, "
	       "no presence rule does -> DENY");
	is_int(decide_presence(p, r.ctx, &anon, "d1"), D, "presence asked: no allow rule "
	       "matches -> DENY");
	is_int(decide_presence(p, plain, &staff, "d1"), A, "no presence lines: presence is "
	       "allowed to every subscriber");
	p->deinit(r.ctx);
	p->deinit(plain);
	try_init(p, only, 1, &r);
	ok(r.rc == -1 && contains(r.err, "no allow rules"), "only presence lines: refused "
	   "(\"%s\")", r.err);
}

static void expect_rule_error(const struct myxid_plugin *p, const char *rule,
			      const char *want)
{
	struct myxid_opt o[] = {
		{ "allow", "public", conf_path, 20 },
		{ "allow", rule, conf_path, 21 },
	};
	struct init_result r;

	try_init(p, o, 2, &r);
	ok(r.rc == -1 && r.bad == &o[1] && contains(r.err, want),
	   "bad rule \"allow %s\" blamed: \"%s\"", rule, r.err);
	if (r.rc == 0)
		p->deinit(r.ctx);
}

static void test_policy_errors(const struct myxid_plugin *p)
{
	struct myxid_opt unknown[] = {
		{ "allow", "public", conf_path, 20 },
		{ "deny", "public", conf_path, 21 },
	};
	struct init_result r;
	char many[200];
	size_t i;

	try_init(p, NULL, 0, &r);
	ok(r.rc == -1 && contains(r.err, "no allow rules") && r.bad == NULL,
	   "no rules: init fails (%s)", r.err);
	try_init(p, unknown, 2, &r);
	ok(r.rc == -1 && r.bad == &unknown[1] && contains(r.err, "deny"),
	   "unknown option blamed (%s)", r.err);

	expect_rule_error(p, "", "needs a rule");
	expect_rule_error(p, "everyone", "unknown rule \"everyone\"");
	expect_rule_error(p, "public please", "takes no argument");
	expect_rule_error(p, "authenticated x", "takes no argument");
	expect_rule_error(p, "attribute", "exactly one");
	expect_rule_error(p, "attribute a b", "exactly one");
	expect_rule_error(p, "attribute a=b", "bad attribute name");
	expect_rule_error(p, "key", "exactly one");
	expect_rule_error(p, "key a b", "exactly one");
	expect_rule_error(p, "key a{bogus}", "unknown placeholder {bogus}");
	expect_rule_error(p, "key a{user_id", "unclosed");
	expect_rule_error(p, "key a}b", "without '{'");
	expect_rule_error(p, "key {attr:}", "unknown placeholder");
	expect_rule_error(p, "key {attr:a b}", "exactly one");
	expect_rule_error(p, "key {}", "unknown placeholder");

	/* Patterns are bounded so policy() never allocates. */
	strcpy(many, "key ");
	for (i = 0; i < 40; i++)
		strcat(many, "a*");
	expect_rule_error(p, many, "more than");
}

static void test_policy_static(const char *dir)
{
	char path[512];
	void *dl;
	const struct myxid_plugin *p;

	snprintf(path, sizeof(path), "%s/policy_static.so", dir);
	p = load(path, &dl);
	if (!check_descriptor(p, "policy_static", MYXID_KIND_POLICY))
		return;
	test_policy_rules(p);
	test_policy_several(p);
	test_policy_presence(p);
	test_policy_errors(p);
	is_int(policy_side_effects, 0, "policy() only answers: no req_done, no identity");
	dlclose(dl);
}

#undef A
#undef D

/* ------------------------------------------------------------ auth_example */

static void *example_new(const struct myxid_plugin *p, const char *delay)
{
	struct myxid_opt o[] = { { "delay_ms", delay, conf_path, 2 } };
	struct init_result r;

	try_init(p, o, delay != NULL ? 1 : 0, &r);
	if (r.rc != 0)
		printf("# init: %s\n", r.err);
	return r.rc == 0 ? r.ctx : NULL;
}

/* Start one request, run the loop until it is answered. */
static enum myxid_verdict example_answer(const struct myxid_plugin *p, void *ctx,
					 const char *token, struct myxid_req *req,
					 long long *elapsed_ms)
{
	long long start = fake_host_now_ms();
	enum myxid_verdict v = auth_token(p, ctx, req, token);

	if (v != MYXID_PENDING)
		return v;
	if (req->n_done != 0)
		return MYXID_ERROR;     /* answered inside auth(): a bug */
	fake_host_run(&fh, 1000);
	*elapsed_ms = req->done_at_ms - start;
	return req->n_done == 1 ? req->verdict : MYXID_ERROR;
}

static void test_example_answers(const struct myxid_plugin *p, void *ctx)
{
	struct myxid_req req;
	long long ms = 0;

	is_int(auth_token(p, ctx, &req, "example-42"), MYXID_PENDING, "example-42 -> PENDING");
	ok(req.n_done == 0 && fh.live_timers == 1, "not answered yet; one timer armed");
	fake_host_run(&fh, 1000);
	is_int(req.n_done, 1, "answered exactly once");
	is_int(req.verdict, MYXID_ALLOW, "answer is ALLOW");
	is_str(req.user_id, "42", "user id is the digits");
	is_str(req.user_type, "Example", "user type Example");
	is_int(fh.live_timers, 0, "timer freed after answering");
	fake_req_fini(&req);

	is_int(example_answer(p, ctx, "example-7", &req, &ms), MYXID_ALLOW, "example-7 allowed");
	ok(ms >= 18 && ms < 500, "answer came after the 20 ms delay (%lld ms)", ms);
	fake_req_fini(&req);

	is_int(example_answer(p, ctx, "example-123456789012345678", &req, &ms), MYXID_ALLOW,
	       "18 digits allowed");
	is_str(req.user_id, "123456789012345678", "18 digits: user id");
	fake_req_fini(&req);

	is_int(example_answer(p, ctx, "example-1234567890123456789", &req, &ms), MYXID_DENY,
	       "19 digits denied");
	ok(req.n_set_user == 0, "denied: no identity set");
	ok(req.reason != NULL && !contains(req.reason, "example-"),
	   "denied: a reason, without the token");
	fake_req_fini(&req);
	is_int(example_answer(p, ctx, "example-", &req, &ms), MYXID_DENY, "no digits denied");
	fake_req_fini(&req);
	is_int(example_answer(p, ctx, "example-12a", &req, &ms), MYXID_DENY, "non-digit denied");
	fake_req_fini(&req);
	is_int(example_answer(p, ctx, "example--1", &req, &ms), MYXID_DENY, "sign denied");
	fake_req_fini(&req);

	is_int(auth_token(p, ctx, &req, "demo-alice"), MYXID_NEXT, "other token -> NEXT at once");
	ok(req.n_done == 0 && fh.live_timers == 0, "NEXT: no timer, no req_done");
	fake_req_fini(&req);
	is_int(auth_token(p, ctx, &req, "Example-1"), MYXID_NEXT, "prefix is case-sensitive");
	fake_req_fini(&req);
	is_int(auth_token(p, ctx, &req, NULL), MYXID_NEXT, "no token -> NEXT");
	fake_req_fini(&req);
}

static void test_example_cancel(const struct myxid_plugin *p, void *ctx)
{
	struct myxid_req a, b, c;

	auth_token(p, ctx, &a, "example-1");
	auth_token(p, ctx, &b, "example-2");
	auth_token(p, ctx, &c, "example-x");
	is_int(fh.live_timers, 3, "three requests pending");
	fake_req_cancel(&a, p, ctx);
	fake_req_cancel(&c, p, ctx);
	is_int(fh.live_timers, 1, "cancel frees the timer at once");
	is_int(fake_host_run(&fh, 1000), 0, "loop runs dry");
	ok(a.n_done == 0 && c.n_done == 0, "cancelled requests never answered");
	ok(a.n_set_user == 0, "cancelled request never touched");
	ok(b.n_done == 1 && b.verdict == MYXID_ALLOW, "the other one still answered");
	is_int(a.n_done_after_cancel + b.n_done_after_cancel + c.n_done_after_cancel, 0,
	       "no req_done after cancel");

	/* The daemon does not cancel answered requests, but a plugin that
	 * cannot find one must shrug. */
	fake_req_cancel(&b, p, ctx);
	is_int(b.n_done, 1, "cancel of an answered request is harmless");
	fake_req_fini(&a);
	fake_req_fini(&b);
	fake_req_fini(&c);

	/* Cancelling the middle one of three exercises the list unlinking. */
	auth_token(p, ctx, &a, "example-1");
	auth_token(p, ctx, &b, "example-2");
	auth_token(p, ctx, &c, "example-3");
	fake_req_cancel(&b, p, ctx);
	fake_host_run(&fh, 1000);
	ok(a.n_done == 1 && b.n_done == 0 && c.n_done == 1, "middle one cancelled");
	fake_req_fini(&a);
	fake_req_fini(&b);
	fake_req_fini(&c);
}

static struct myxid_timer *no_timer(struct myxid_instance *inst,
				    void (*cb)(void *arg), void *arg)
{
	return NULL;
}

static void test_example_failures(const struct myxid_plugin *p, void *ctx)
{
	struct myxid_timer *(*saved)(struct myxid_instance *, void (*)(void *), void *) =
		fh.host.timer_new;
	struct myxid_req req;

	fh.host.timer_new = no_timer;
	is_int(auth_token(p, ctx, &req, "example-1"), MYXID_ERROR, "no timer -> ERROR");
	fake_req_fini(&req);
	fh.host.timer_new = saved;

	fh.host.req_set_user = refuse_user;
	auth_token(p, ctx, &req, "example-1");
	fake_host_run(&fh, 1000);
	ok(req.n_done == 1 && req.verdict == MYXID_ERROR,
	   "host refusing the user id -> ERROR through req_done");
	fake_req_fini(&req);
}

static void test_example_options(const struct myxid_plugin *p)
{
	static const char *const bad[] = { "", "abc", "20ms", "-1", "60001", "99999999999999999999" };
	struct myxid_opt unknown[] = { { "delay", "20", conf_path, 4 } };
	struct init_result r;
	struct myxid_req req;
	long long ms = 0;
	size_t i;
	void *ctx;

	for (i = 0; i < N_ELEMS(bad); i++) {
		struct myxid_opt o[] = {
			{ "delay_ms", "5", conf_path, 3 },
			{ "delay_ms", bad[i], conf_path, 4 },
		};

		try_init(p, o, 2, &r);
		ok(r.rc == -1 && r.bad == &o[1], "delay_ms \"%s\" refused and blamed", bad[i]);
	}
	try_init(p, unknown, 1, &r);
	ok(r.rc == -1 && r.bad == &unknown[0] && contains(r.err, "delay"),
	   "unknown option blamed (%s)", r.err);

	ctx = example_new(p, "0");
	if (ok(ctx != NULL, "delay_ms 0 accepted")) {
		is_int(example_answer(p, ctx, "example-5", &req, &ms), MYXID_ALLOW,
		       "delay 0: still answered through req_done");
		fake_req_fini(&req);
		p->deinit(ctx);
	}
	ctx = example_new(p, NULL);
	if (ok(ctx != NULL, "no options: defaults")) {
		is_int(example_answer(p, ctx, "example-5", &req, &ms), MYXID_ALLOW,
		       "default delay: allowed");
		ok(ms >= 45, "default delay is about 50 ms (%lld ms)", ms);
		fake_req_fini(&req);

		/* The daemon cancels first; deinit still must not leak. */
		auth_token(p, ctx, &req, "example-6");
		p->deinit(ctx);
		is_int(fh.live_timers, 0, "deinit frees leftover timers");
		is_int(req.n_done, 0, "and answers nothing");
		fake_req_fini(&req);
	}

	fh.host.size = offsetof(struct myxid_host, timer_new);
	try_init(p, NULL, 0, &r);
	ok(r.rc == -1, "host without timers refused (%s)", r.err);
	fh.host.size = sizeof(fh.host);
}

static void test_auth_example(const char *path)
{
	void *dl, *ctx;
	const struct myxid_plugin *p;
	struct myxid_host saved = fh.host;

	p = load(path, &dl);
	if (!check_descriptor(p, "auth_example", MYXID_KIND_AUTH))
		return;
	ok(p->cancel != NULL, "auth_example: has cancel()");
	ctx = example_new(p, "20");
	if (ok(ctx != NULL, "auth_example: init with delay_ms 20")) {
		test_example_answers(p, ctx);
		test_example_cancel(p, ctx);
		test_example_failures(p, ctx);
		fh.host = saved;
		p->deinit(ctx);
	}
	test_example_options(p);
	fh.host = saved;
	dlclose(dl);
}

/* ------------------------------------------------------------ main */

int main(void)
{
	const char *dir = getenv("MYXID_PLUGIN_DIR");
	const char *example = getenv("MYXID_EXAMPLE_PLUGIN");
	const char *tmp = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/myxid-test-plugins-XXXXXX",
		 tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	if (mkdtemp(tmpdir) == NULL || fake_host_init(&fh) < 0) {
		printf("Bail out! cannot set up %s\n", tmpdir);
		return 1;
	}
	snprintf(conf_path, sizeof(conf_path), "%s/myxid.conf", tmpdir);

	if (ok(dir != NULL, "MYXID_PLUGIN_DIR is set")) {
		test_auth_static(dir);
		test_policy_static(dir);
	}
	if (ok(example != NULL, "MYXID_EXAMPLE_PLUGIN is set"))
		test_auth_example(example);

	is_int(fh.live_timers, 0, "no timers left behind");
	is_int(fh.live_watches, 0, "no watches left behind");
	fake_host_fini(&fh);
	cleanup_tmpdir();
	return done_testing();
}
