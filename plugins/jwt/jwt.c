/*
 * auth jwt: authenticates a client by a signed token (a JWT) the
 * application issued, with no backend to ask: the signature, the time
 * claims, the issuer and the audience are checked here, and the user id,
 * type and attributes are read from the claims.
 *
 *     auth jwt {
 *         algorithms ES256 HS256      # required: what may sign; never "none"
 *         secret ${JWT_SECRET}        # HS*: 32 bytes or more
 *         public_key keys/app.pem     # RS*, PS256, ES*, EdDSA (PEM), optional kid
 *         jwks keys/jwks.json         # several keys, picked by the token's kid
 *         issuer https://app.example  # "iss" must be this
 *         audience myxid              # "aud" must hold this
 *         leeway 30s                  # on exp, nbf, iat
 *         user_claim sub              # the user id (default sub)
 *         type_claim role             # the user type, optional
 *         attribute deployments       # attr:deployments from the claim of that name,
 *         attribute teams team_ids    #   or from another claim; lists become a,b,c
 *     }
 *
 * As an exchange's policy ("policy jwt {...}", the same options), it
 * grants subscriptions by a token the Subscribe carries ("token"),
 * Centrifugo's channel tokens: signed like the above, with the
 * subscriber's user id in sub ("" for an anonymous one), "exchange", and
 * "routing_key" or a "routing_keys" list; no token, no subscription. The
 * token is asked again at every re-check, so its exp ends the
 * subscription then.
 *
 * Written against the public plugin.h only, as an integrator's plugin
 * would be. A token that is no JWT at all (not three base64url parts) is
 * left to the next auth plugin; a JWT that fails any check is refused,
 * with one log line saying why (never the token). Keys are read at init,
 * so a reload (SIGHUP) rereads the PEM and JWKS files. The token's "exp"
 * is handed to the daemon (req_set_expiry), which ends the session then.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <myxid/plugin.h>
#include "jwt_keys.h"
#include "jwt_token.h"
#include "plugin_options.h"
#include "plugin_util.h"

#define MAX_ATTRS 32

struct attr_map {
	char *name;          /* attr:NAME */
	char *claim;
};

struct auth_jwt {
	const struct myxid_host *host;
	struct myxid_instance *inst;
	struct jwt_keyset keys;
	const struct jwt_alg *allowed[16];
	size_t n_allowed;
	struct jwt_rules rules;
	char *issuer, *audience, *user_claim, *type_claim, *secret;
	unsigned leeway_s, max_token;
	bool require_exp;
	struct attr_map attrs[MAX_ATTRS];
	size_t n_attrs;
	struct jwt_header_memo memo;  /* this loop's last good header */
};

static void ctx_free(struct auth_jwt *ctx);

/* ------------------------------------------------------------- options */

static int opt_algorithms(void *base, const struct myxid_opt *o, char *err, size_t err_size)
{
	struct auth_jwt *ctx = base;
	char *words = strdup(o->value), *cur = words, *w;
	int rc = 0;

	if (words == NULL) {
		pu_err(err, err_size, "out of memory");
		return -1;
	}
	while (rc == 0 && (w = pu_next_word(&cur)) != NULL) {
		const struct jwt_alg *a = jwt_alg_find(w);

		if (a == NULL) {
			pu_err(err, err_size, "unknown algorithm \"%s\" (HS256 HS384 HS512 RS256 "
			       "RS384 RS512 PS256 ES256 ES384 EdDSA; never none)", w);
			rc = -1;
		} else if (ctx->n_allowed < sizeof(ctx->allowed) / sizeof(ctx->allowed[0])) {
			ctx->allowed[ctx->n_allowed++] = a;
		}
	}
	free(words);
	if (rc == 0 && ctx->n_allowed == 0) {
		pu_err(err, err_size, "algorithms needs at least one algorithm");
		rc = -1;
	}
	return rc;
}

/* "public_key PATH [KID]", "jwks PATH": read at once, so an error blames
 * the line. */
static int opt_key_file(void *base, const struct myxid_opt *o, char *err, size_t err_size,
			bool jwks)
{
	struct auth_jwt *ctx = base;
	char *words = strdup(o->value), *cur = words;
	char *path = words ? pu_next_word(&cur) : NULL, *kid = path ? pu_next_word(&cur) : NULL;
	char resolved[4096];
	int rc = -1;

	if (path == NULL || (jwks && kid != NULL) || (kid != NULL && pu_next_word(&cur) != NULL))
		pu_err(err, err_size, jwks ? "jwks wants a path" : "public_key wants a path "
		       "and, optionally, a kid");
	else if (ctx->host->resolve_path(o, path, resolved, sizeof(resolved)) < 0)
		pu_err(err, err_size, "path too long");
	else
		rc = jwks ? jwt_keys_add_jwks(&ctx->keys, resolved, err, err_size) :
			jwt_keys_add_pem(&ctx->keys, resolved, kid, err, err_size);
	free(words);
	return rc;
}

static int opt_public_key(void *base, const struct myxid_opt *o, char *err, size_t err_size)
{
	return opt_key_file(base, o, err, err_size, false);
}

static int opt_jwks(void *base, const struct myxid_opt *o, char *err, size_t err_size)
{
	return opt_key_file(base, o, err, err_size, true);
}

/* "attribute NAME [CLAIM]" */
static int opt_attribute(void *base, const struct myxid_opt *o, char *err, size_t err_size)
{
	struct auth_jwt *ctx = base;
	char *words = strdup(o->value), *cur = words;
	char *name = words ? pu_next_word(&cur) : NULL, *claim = name ? pu_next_word(&cur) : NULL;
	struct attr_map *m = &ctx->attrs[ctx->n_attrs];
	int rc = -1;

	if (name == NULL || (claim != NULL && pu_next_word(&cur) != NULL))
		pu_err(err, err_size, "attribute wants a name and, optionally, the claim it "
		       "comes from");
	else if (!pu_valid_name(name, strlen(name)))
		pu_err(err, err_size, "bad attribute name \"%s\"", name);
	else if (ctx->n_attrs == MAX_ATTRS)
		pu_err(err, err_size, "more than %d attributes", MAX_ATTRS);
	else if ((m->name = strdup(name)) == NULL ||
		 (m->claim = strdup(claim ? claim : name)) == NULL)
		pu_err(err, err_size, "out of memory");
	else
		rc = 0;
	if (rc == 0)
		ctx->n_attrs++;
	else if (m->name != NULL) {
		free(m->name);
		m->name = NULL;
	}
	free(words);
	return rc;
}

static const struct po_option rows[] = {
	{ "algorithms", PO_CUSTOM, 0, 0, 0, NULL, NULL, opt_algorithms, PO_REQUIRED },
	{ "secret", PO_STRING, offsetof(struct auth_jwt, secret), 0, 0, NULL, NULL, NULL, 0 },
	{ "public_key", PO_CUSTOM, 0, 0, 0, NULL, NULL, opt_public_key, PO_MULTI },
	{ "jwks", PO_CUSTOM, 0, 0, 0, NULL, NULL, opt_jwks, PO_MULTI },
	{ "issuer", PO_STRING, offsetof(struct auth_jwt, issuer), 0, 0, NULL, NULL, NULL, 0 },
	{ "audience", PO_STRING, offsetof(struct auth_jwt, audience), 0, 0, NULL, NULL, NULL, 0 },
	{ "leeway", PO_SECONDS, offsetof(struct auth_jwt, leeway_s), 0, 3600,
	  "leeway wants a time from 0 to 1h", NULL, NULL, 0 },
	{ "require_exp", PO_BOOL, offsetof(struct auth_jwt, require_exp), 0, 0, NULL, NULL,
	  NULL, 0 },
	{ "user_claim", PO_STRING, offsetof(struct auth_jwt, user_claim), 0, 0, NULL, NULL,
	  NULL, 0 },
	{ "type_claim", PO_STRING, offsetof(struct auth_jwt, type_claim), 0, 0, NULL, NULL,
	  NULL, 0 },
	{ "attribute", PO_CUSTOM, 0, 0, 0, NULL, NULL, opt_attribute, PO_MULTI },
	/* The daemon hands no plugin a token over 8 KiB. */
	{ "max_token_size", PO_SIZE, offsetof(struct auth_jwt, max_token), 64, 8192,
	  "max_token_size wants a size from 64 to 8k", NULL, NULL, 0 },
	PO_END
};
static const struct po_table table = { rows, NULL, NULL, true };

/* Every allowed algorithm needs a key of its family, or it could never
 * verify anything: a configuration mistake, said at once. */
static int check_keys(struct auth_jwt *ctx, char *err, size_t err_size)
{
	static const char *const family_names[] = {
		"HMAC secret (secret, or an oct key in a JWKS)", "RSA key", "P-256 key",
		"P-384 key", "Ed25519 key"
	};

	for (size_t i = 0; i < ctx->n_allowed; i++) {
		bool found = false;

		for (size_t k = 0; k < ctx->keys.n && !found; k++)
			found = ctx->keys.v[k].family == ctx->allowed[i]->family;
		if (!found) {
			pu_err(err, err_size, "algorithms lists %s but no %s is configured",
			       ctx->allowed[i]->name, family_names[ctx->allowed[i]->family]);
			return -1;
		}
	}
	return 0;
}

static int jwt_init(const struct myxid_host *host, struct myxid_instance *inst,
		    const struct myxid_opt *opts, size_t n_opts, void **ctx_r,
		    char *err, size_t err_size, const struct myxid_opt **bad_opt_r)
{
	struct auth_jwt *ctx;

	if (pu_check_host(host, err, err_size) < 0)
		return -1;
	if (host->abi_minor < 2) {
		pu_err(err, err_size, "needs myxid's plugin ABI 1.2 (token expiry)");
		return -1;
	}
	if ((ctx = calloc(1, sizeof(*ctx))) == NULL) {
		pu_err(err, err_size, "out of memory");
		return -1;
	}
	ctx->host = host;
	ctx->inst = inst;
	ctx->require_exp = true;
	ctx->max_token = 8192;
	if (po_parse(&table, ctx, NULL, host, opts, n_opts, err, err_size, bad_opt_r) < 0 ||
	    (ctx->secret != NULL &&
	     jwt_keys_add_secret(&ctx->keys, ctx->secret, strlen(ctx->secret), err, err_size) < 0) ||
	    check_keys(ctx, err, err_size) < 0) {
		ctx_free(ctx);
		return -1;
	}
	ctx->rules.issuer = ctx->issuer;
	ctx->rules.audience = ctx->audience;
	ctx->rules.leeway_s = ctx->leeway_s;
	ctx->rules.require_exp = ctx->require_exp;
	host->log(inst, MYXID_LOG_INFO, "%zu key(s), %zu algorithm(s)", ctx->keys.n,
		  ctx->n_allowed);
	*ctx_r = ctx;
	return 0;
}

static void ctx_free(struct auth_jwt *ctx)
{
	if (ctx == NULL)
		return;
	jwt_keys_free(&ctx->keys);
	for (size_t i = 0; i < ctx->n_attrs; i++) {
		free(ctx->attrs[i].name);
		free(ctx->attrs[i].claim);
	}
	po_free(&table, ctx);
	free(ctx);
}

static void jwt_deinit(void *ctx)
{
	ctx_free(ctx);
}

/* ---------------------------------------------------------------- auth */

static bool allowed(const struct auth_jwt *ctx, const struct jwt_alg *a)
{
	for (size_t i = 0; i < ctx->n_allowed; i++)
		if (ctx->allowed[i] == a)
			return true;
	return false;
}

/* A key of a's family (with the token's kid, when both have one) that
 * signed it. */
static bool signature_ok(const struct auth_jwt *ctx, const struct jwt_alg *a,
			 const struct jwt_parsed *t)
{
	for (size_t i = 0; i < ctx->keys.n; i++) {
		const struct jwt_key *k = &ctx->keys.v[i];

		if (k->family != a->family ||
		    (t->kid[0] != '\0' && k->kid != NULL && strcmp(k->kid, t->kid) != 0))
			continue;
		if (jwt_verify(k, a, t->signing_input, t->signing_len, t->sig, t->sig_len))
			return true;
	}
	return false;
}

static enum myxid_verdict refuse(const struct auth_jwt *ctx, struct myxid_req *req,
				 const char *why)
{
	const char *sid = ctx->host->req_get(req, "socket_id");
	const char *ex = ctx->host->req_get(req, "exchange");

	if (ex != NULL)
		ctx->host->log(ctx->inst, MYXID_LOG_INFO, "[%s] subscription token for %s/%s "
			       "refused: %s", sid ? sid : "-", ex,
			       ctx->host->req_get(req, "routing_key"), why);
	else
		ctx->host->log(ctx->inst, MYXID_LOG_INFO, "[%s] token refused: %s",
			       sid ? sid : "-", why);
	return MYXID_DENY;
}

/* Now in whole seconds. Not time(): Linux serves it from a coarse clock
 * that can lag a tick behind the issuer's, and a token issued "now" would
 * look issued in the future. */
static int64_t now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}

/* Parse token into t and check its algorithm, signature and registered
 * claims: NULL (t to be freed), or why not (t freed). */
static const char *verify(struct auth_jwt *ctx, const char *token, size_t len,
			  struct jwt_parsed *t, int64_t *exp)
{
	const struct jwt_alg *a;
	const char *why = NULL;

	if (len > ctx->max_token)
		return "longer than max_token_size";
	if (jwt_parse(token, len, &ctx->memo, t, &why) < 0)
		return why;
	a = jwt_alg_find(t->alg);
	if (a == NULL || !allowed(ctx, a))
		why = "its algorithm is not one of algorithms";
	else if (!signature_ok(ctx, a, t))
		why = "no configured key verifies its signature";
	else if (jwt_check_claims(t->claims, &ctx->rules, now_s(), exp, &why) == 0)
		return NULL;
	jwt_parsed_free(t);
	return why;
}

/* The user from the checked claims: id, type, attributes, expiry. */
static enum myxid_verdict grant(const struct auth_jwt *ctx, struct myxid_req *req,
				json_object *claims, int64_t exp)
{
	char *user = jwt_claim_text(claims, ctx->user_claim ? ctx->user_claim : "sub");
	char *type = ctx->type_claim ? jwt_claim_text(claims, ctx->type_claim) : NULL;
	int rc = user != NULL && user[0] != '\0' ?
		ctx->host->req_set_user(req, user, type && type[0] ? type : NULL) : -1;

	free(user);
	free(type);
	if (rc < 0)
		return refuse(ctx, req, "no usable user id claim");
	for (size_t i = 0; i < ctx->n_attrs; i++) {
		char *v = jwt_claim_text(claims, ctx->attrs[i].claim);

		if (v != NULL && ctx->host->req_add_attr(req, ctx->attrs[i].name, v) < 0)
			rc = -1;
		free(v);
	}
	if (rc == 0 && exp > 0)
		rc = ctx->host->req_set_expiry(req, (long long)exp);
	if (rc < 0) {
		ctx->host->log(ctx->inst, MYXID_LOG_ERROR, "the host refused the identity");
		return MYXID_ERROR;
	}
	return MYXID_ALLOW;
}

static enum myxid_verdict jwt_auth(void *vctx, struct myxid_req *req)
{
	struct auth_jwt *ctx = vctx;
	const char *token = ctx->host->req_get(req, "token"), *why;
	struct jwt_parsed t;
	enum myxid_verdict v;
	size_t len = token ? strlen(token) : 0;
	int64_t exp = 0;

	/* Not a JWT: another plugin in the chain may know it. */
	if (len == 0 || !jwt_looks_like(token, len))
		return MYXID_NEXT;
	if ((why = verify(ctx, token, len, &t, &exp)) != NULL)
		return refuse(ctx, req, why);
	v = grant(ctx, req, t.claims, exp);
	jwt_parsed_free(&t);
	return v;
}

/* ------------------------------------------------------------- policy */

/* Does the grant name this exchange and key ("routing_key", or a list in
 * "routing_keys"), for this user? */
static const char *grant_covers(const struct auth_jwt *ctx, struct myxid_req *req,
				json_object *claims)
{
	const char *ex = ctx->host->req_get(req, "exchange");
	const char *key = ctx->host->req_get(req, "routing_key");
	const char *user = ctx->host->req_get(req, "user_id");
	char *v = jwt_claim_text(claims, ctx->user_claim ? ctx->user_claim : "sub");
	bool same_user = v != NULL && strcmp(v, user ? user : "") == 0;
	json_object *keys;

	free(v);
	if (!same_user)
		return "it was issued to another user (sub)";
	v = jwt_claim_text(claims, "exchange");
	same_user = v != NULL && ex != NULL && strcmp(v, ex) == 0;
	free(v);
	if (!same_user)
		return "it grants another exchange";
	v = jwt_claim_text(claims, "routing_key");
	if (v != NULL && key != NULL && strcmp(v, key) == 0) {
		free(v);
		return NULL;
	}
	free(v);
	if (key != NULL && json_object_object_get_ex(claims, "routing_keys", &keys) &&
	    json_object_is_type(keys, json_type_array))
		for (size_t i = 0; i < json_object_array_length(keys); i++) {
			json_object *k = json_object_array_get_idx(keys, i);

			if (json_object_is_type(k, json_type_string) &&
			    strcmp(json_object_get_string(k), key) == 0)
				return NULL;
		}
	return "it grants another routing key";
}

/* A Subscribe's own token: signed by a configured key, for this user,
 * exchange and key. No token, no subscription. */
static enum myxid_verdict jwt_policy(void *vctx, struct myxid_req *req)
{
	struct auth_jwt *ctx = vctx;
	const char *token = ctx->host->req_get(req, "subscribe_token"), *why;
	struct jwt_parsed t;
	size_t len = token ? strlen(token) : 0;
	int64_t exp = 0;

	if (len == 0)
		return refuse(ctx, req, "the Subscribe carried no token");
	if (!jwt_looks_like(token, len))
		return refuse(ctx, req, "not a JWT");
	if ((why = verify(ctx, token, len, &t, &exp)) != NULL)
		return refuse(ctx, req, why);
	why = grant_covers(ctx, req, t.claims);
	jwt_parsed_free(&t);
	return why != NULL ? refuse(ctx, req, why) : MYXID_ALLOW;
}

MYXID_PLUGIN_EXPORT const struct myxid_plugin myxid_plugin_entry = {
	.abi_major = MYXID_PLUGIN_ABI_MAJOR,
	.abi_minor = MYXID_PLUGIN_ABI_MINOR,
	.size = sizeof(struct myxid_plugin),
	.kinds = MYXID_KIND_AUTH | MYXID_KIND_POLICY,
	.name = "jwt",
	.version = "1.0",
	.init = jwt_init,
	.deinit = jwt_deinit,
	.auth = jwt_auth,
	.policy = jwt_policy,
	.cancel = NULL,
};
