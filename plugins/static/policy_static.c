/*
 * policy_static: decides subscriptions to one exchange from fixed rules in
 * its configuration block, one "allow RULE" per line:
 *
 *     allow public              anyone, even without authenticating
 *     allow authenticated       any authenticated user
 *     allow attribute NAME      the routing key is one of the comma-separated
 *                               values of the user's attribute NAME
 *     allow key PATTERN         the routing key matches PATTERN, where '*'
 *                               matches any run of characters and
 *                               {user_id}, {user_type}, {attr:NAME} stand for
 *                               the user's values
 *
 * The first rule that matches allows; when none does, the answer is deny.
 *
 * On an exchange with presence on, a subscriber that also asks to see who
 * is subscribed must in addition match one "presence RULE" line (same
 * rules), when the block has any; without one, every subscriber may see.
 *
 *     presence attribute staff_of    only staff see who else is watching
 * A placeholder whose value is missing or empty makes its rule not match,
 * and values are matched as plain text: a '*' in a user's attribute is not
 * a wildcard. A PATTERN is one word; '{' and '}' only delimit
 * placeholders. Attribute lists are matched exactly, spaces included, and
 * empty items match nothing.
 *
 * Rules are compiled at init so policy() does no parsing and no allocation.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdlib.h>
#include <string.h>

#include <myxid/plugin.h>
#include "plugin_options.h"
#include "plugin_util.h"

/* Bounds a pattern so policy() can keep its per-call state on the stack. */
#define MAX_SEGS 32

/* How the host names a user's attribute in req_get(). */
#define ATTR_PREFIX "attr:"
#define ATTR_PREFIX_LEN (sizeof(ATTR_PREFIX) - 1)

enum rule_kind {
	RULE_PUBLIC,
	RULE_AUTHENTICATED,
	RULE_ATTRIBUTE,
	RULE_KEY
};

/* A compiled pattern is a list of segments: literal text, a star, or a
 * placeholder, which is kept as the request key that yields its value. */
enum seg_kind {
	SEG_TEXT,
	SEG_STAR,
	SEG_VAR
};

struct seg {
	enum seg_kind kind;
	char *text;             /* SEG_TEXT: the text; SEG_VAR: request key */
};

struct rule {
	enum rule_kind kind;
	char *attr_key;         /* RULE_ATTRIBUTE: "attr:NAME" */
	struct seg *segs;       /* RULE_KEY */
	size_t n_segs;
	int presence;           /* a "presence" line: checked for watchers only */
};

struct policy_static {
	const struct myxid_host *host;
	struct rule *rules;
	size_t n_rules;
	size_t n_presence;      /* of n_rules, "presence" lines */
};

/* ------------------------------------------------------------ rules */

static void rule_free(struct rule *r)
{
	size_t i;

	for (i = 0; i < r->n_segs; i++)
		free(r->segs[i].text);
	free(r->segs);
	free(r->attr_key);
	memset(r, 0, sizeof(*r));
}

static void ctx_free(struct policy_static *ctx)
{
	size_t i;

	if (ctx == NULL)
		return;
	for (i = 0; i < ctx->n_rules; i++)
		rule_free(&ctx->rules[i]);
	free(ctx->rules);
	free(ctx);
}

/* "attr:" + name, the request key under which the host offers it. */
static char *attr_key(const char *name, size_t len)
{
	char *key = malloc(ATTR_PREFIX_LEN + len + 1);

	if (key == NULL)
		return NULL;
	memcpy(key, ATTR_PREFIX, ATTR_PREFIX_LEN);
	memcpy(key + ATTR_PREFIX_LEN, name, len);
	key[ATTR_PREFIX_LEN + len] = '\0';
	return key;
}

/* Appends a segment, taking over text (NULL for a star; NULL for anything
 * else means its allocation failed). */
static int add_seg(struct rule *r, enum seg_kind kind, char *text,
		   char *err, size_t err_size)
{
	if (kind != SEG_STAR && text == NULL) {
		pu_err(err, err_size, "out of memory");
		return -1;
	}
	if (r->n_segs == MAX_SEGS) {
		free(text);
		pu_err(err, err_size, "pattern has more than %d parts", MAX_SEGS);
		return -1;
	}
	r->segs[r->n_segs].kind = kind;
	r->segs[r->n_segs].text = text;
	r->n_segs++;
	return 0;
}

/* The request key for placeholder name[0..len) into *key_r (NULL if out of
 * memory), or -1 if there is no such placeholder. */
static int placeholder_key(const char *name, size_t len, char **key_r)
{
	if (len == 7 && memcmp(name, "user_id", 7) == 0)
		*key_r = strdup("user_id");
	else if (len == 9 && memcmp(name, "user_type", 9) == 0)
		*key_r = strdup("user_type");
	else if (len > ATTR_PREFIX_LEN &&
		 memcmp(name, ATTR_PREFIX, ATTR_PREFIX_LEN) == 0 &&
		 pu_valid_name(name + ATTR_PREFIX_LEN, len - ATTR_PREFIX_LEN))
		*key_r = attr_key(name + ATTR_PREFIX_LEN, len - ATTR_PREFIX_LEN);
	else
		return -1;
	return 0;
}

/* "{...}" at *p: adds the placeholder and moves *p past it. */
static int compile_placeholder(struct rule *r, const char **p,
			       char *err, size_t err_size)
{
	const char *name = *p + 1;
	const char *close = strchr(name, '}');
	char *key;

	if (close == NULL) {
		pu_err(err, err_size, "unclosed '{' in pattern");
		return -1;
	}
	if (placeholder_key(name, (size_t)(close - name), &key) < 0) {
		pu_err(err, err_size, "unknown placeholder {%.*s} (want {user_id}, "
		       "{user_type} or {attr:NAME})", (int)(close - name), name);
		return -1;
	}
	*p = close + 1;
	return add_seg(r, SEG_VAR, key, err, err_size);
}

/* Literal text up to the next special character. */
static int compile_text(struct rule *r, const char **p,
			char *err, size_t err_size)
{
	size_t len = strcspn(*p, "*{}");
	char *text = strndup(*p, len);

	*p += len;
	return add_seg(r, SEG_TEXT, text, err, err_size);
}

static int compile_pattern(struct rule *r, const char *pattern,
			   char *err, size_t err_size)
{
	const char *p = pattern;

	r->segs = calloc(MAX_SEGS, sizeof(*r->segs));
	if (r->segs == NULL) {
		pu_err(err, err_size, "out of memory");
		return -1;
	}
	while (*p != '\0') {
		int rc = 0;

		if (*p == '*') {
			/* "**" means "*"; collapsing keeps pieces non-trivial. */
			if (r->n_segs == 0 || r->segs[r->n_segs - 1].kind != SEG_STAR)
				rc = add_seg(r, SEG_STAR, NULL, err, err_size);
			p++;
		} else if (*p == '{') {
			rc = compile_placeholder(r, &p, err, err_size);
		} else if (*p == '}') {
			pu_err(err, err_size, "'}' without '{' in pattern");
			rc = -1;
		} else {
			rc = compile_text(r, &p, err, err_size);
		}
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* "public", "authenticated", "attribute NAME" or "key PATTERN" into r. */
static int compile_rule(struct rule *r, char *words, char *err, size_t err_size)
{
	char *kind = pu_next_word(&words);
	char *arg = pu_next_word(&words);
	char *extra = pu_next_word(&words);

	if (kind == NULL) {
		pu_err(err, err_size, "allow needs a rule: public, authenticated, "
		       "attribute NAME or key PATTERN");
		return -1;
	}
	if (strcmp(kind, "public") == 0 || strcmp(kind, "authenticated") == 0) {
		r->kind = strcmp(kind, "public") == 0 ? RULE_PUBLIC
						       : RULE_AUTHENTICATED;
		if (arg == NULL)
			return 0;
		pu_err(err, err_size, "allow %s takes no argument", kind);
		return -1;
	}
	if (strcmp(kind, "attribute") != 0 && strcmp(kind, "key") != 0) {
		pu_err(err, err_size, "unknown rule \"%s\" (want public, "
		       "authenticated, attribute or key)", kind);
		return -1;
	}
	if (arg == NULL || extra != NULL) {
		pu_err(err, err_size, "allow %s takes exactly one %s", kind,
		       strcmp(kind, "key") == 0 ? "pattern" : "attribute name");
		return -1;
	}
	if (strcmp(kind, "key") == 0) {
		r->kind = RULE_KEY;
		return compile_pattern(r, arg, err, err_size);
	}
	r->kind = RULE_ATTRIBUTE;
	if (!pu_valid_name(arg, strlen(arg))) {
		pu_err(err, err_size, "bad attribute name \"%s\"", arg);
		return -1;
	}
	r->attr_key = attr_key(arg, strlen(arg));
	if (r->attr_key == NULL) {
		pu_err(err, err_size, "out of memory");
		return -1;
	}
	return 0;
}

/* Compiles one "allow" option; the value is copied because splitting it
 * into words writes into it. */
static int add_rule(void *base, const struct myxid_opt *o, char *err,
		    size_t err_size)
{
	struct policy_static *ctx = base;
	struct rule *r = &ctx->rules[ctx->n_rules];
	char *words = strdup(o->value);
	int rc;

	if (words == NULL) {
		pu_err(err, err_size, "out of memory");
		return -1;
	}
	memset(r, 0, sizeof(*r));
	rc = compile_rule(r, words, err, err_size);
	free(words);
	if (rc < 0) {
		rule_free(r);
		return -1;
	}
	ctx->n_rules++;
	return 0;
}

static int add_presence_rule(void *base, const struct myxid_opt *o, char *err,
			     size_t err_size)
{
	struct policy_static *ctx = base;

	if (add_rule(base, o, err, err_size) < 0)
		return -1;
	ctx->rules[ctx->n_rules - 1].presence = 1;
	ctx->n_presence++;
	return 0;
}

/* ------------------------------------------------------------ init */

/* Each allow line is one rule, tried in order. */
static const struct po_option static_rows[] = {
	{ "allow", PO_CUSTOM, 0, 0, 0, NULL, NULL, add_rule, PO_MULTI },
	{ "presence", PO_CUSTOM, 0, 0, 0, NULL, NULL, add_presence_rule, PO_MULTI },
	PO_END
};
static const struct po_table static_table = {
	static_rows, " (allow or presence)", NULL, false
};

static int static_init(const struct myxid_host *host, struct myxid_instance *inst,
		       const struct myxid_opt *opts, size_t n_opts, void **ctx_r,
		       char *err, size_t err_size,
		       const struct myxid_opt **bad_opt_r)
{
	struct policy_static *ctx;

	if (pu_check_host(host, err, err_size) < 0)
		return -1;
	ctx = calloc(1, sizeof(*ctx));
	if (ctx != NULL && n_opts > 0)
		ctx->rules = calloc(n_opts, sizeof(*ctx->rules));
	if (ctx == NULL || (n_opts > 0 && ctx->rules == NULL)) {
		ctx_free(ctx);
		pu_err(err, err_size, "out of memory");
		return -1;
	}
	ctx->host = host;
	if (po_parse(&static_table, ctx, NULL, host, opts, n_opts, err,
		     err_size, bad_opt_r) < 0) {
		ctx_free(ctx);
		return -1;
	}
	/* An empty policy would deny everything, which is never what a
	 * config that declares the exchange means. */
	if (ctx->n_rules == ctx->n_presence) {
		ctx_free(ctx);
		pu_err(err, err_size, "no allow rules: every subscription would "
		       "be denied");
		return -1;
	}
	*ctx_r = ctx;
	return 0;
}

static void static_deinit(void *ctx)
{
	ctx_free(ctx);
}

/* ------------------------------------------------------------ policy */

/* A user value, or NULL if absent: an empty value counts as absent so that
 * "user.{user_id}" can never match "user.". */
static const char *get_value(const struct policy_static *ctx,
			     const struct myxid_req *req, const char *key)
{
	const char *v = ctx->host->req_get(req, key);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

/* Is key one of the comma-separated items of list? Items are compared
 * exactly, spaces included; empty items match nothing. */
static int list_contains(const char *list, const char *key)
{
	size_t key_len = strlen(key);

	for (;;) {
		size_t len = strcspn(list, ",");

		if (len > 0 && len == key_len && memcmp(list, key, len) == 0)
			return 1;
		if (list[len] == '\0')
			return 0;
		list += len + 1;
	}
}

/*
 * A pattern as values to match: texts and placeholder values, with stars
 * marked by a NULL value. Placeholder values are matched as plain text, so
 * a '*' in a user's attribute is never a wildcard.
 */
struct expanded {
	const char *val[MAX_SEGS];
	size_t len[MAX_SEGS];
	size_t n;
};

/* 0, or -1 if a placeholder has no value (the rule does not apply). */
static int expand(const struct policy_static *ctx, const struct rule *r,
		  const struct myxid_req *req, struct expanded *x)
{
	size_t i;

	for (i = 0; i < r->n_segs; i++) {
		const struct seg *s = &r->segs[i];
		const char *v = NULL;

		if (s->kind == SEG_TEXT)
			v = s->text;
		else if (s->kind == SEG_VAR && (v = get_value(ctx, req, s->text)) == NULL)
			return -1;
		x->val[i] = v;
		x->len[i] = v != NULL ? strlen(v) : 0;
	}
	x->n = r->n_segs;
	return 0;
}

/* The star-free run of segments starting at i ends at the returned index. */
static size_t piece_end(const struct expanded *x, size_t i)
{
	while (i < x->n && x->val[i] != NULL)
		i++;
	return i;
}

static size_t piece_len(const struct expanded *x, size_t from, size_t to)
{
	size_t len = 0;

	for (; from < to; from++)
		len += x->len[from];
	return len;
}

/* Do segments [from, to) match key at s? The caller checked the length. */
static int piece_at(const struct expanded *x, size_t from, size_t to,
		    const char *s)
{
	for (; from < to; from++) {
		if (memcmp(s, x->val[from], x->len[from]) != 0)
			return 0;
		s += x->len[from];
	}
	return 1;
}

/*
 * Glob match with '*' only: the piece before the first star is anchored at
 * the start, the one after the last star at the end, and each piece between
 * is taken at its leftmost place, which leaves the most room for the rest,
 * so no backtracking is ever needed.
 */
static int glob_match(const struct expanded *x, const char *key)
{
	size_t key_len = strlen(key);
	size_t end = piece_end(x, 0);
	size_t len = piece_len(x, 0, end);
	size_t pos;

	if (len > key_len || !piece_at(x, 0, end, key))
		return 0;
	if (end == x->n)
		return len == key_len;
	pos = len;
	for (;;) {
		size_t from = end + 1;  /* past the star */

		end = piece_end(x, from);
		len = piece_len(x, from, end);
		if (end == x->n)
			return key_len - pos >= len &&
				piece_at(x, from, end, key + key_len - len);
		while (pos + len <= key_len && !piece_at(x, from, end, key + pos))
			pos++;
		if (pos + len > key_len)
			return 0;
		pos += len;
	}
}

static int rule_matches(const struct policy_static *ctx, const struct rule *r,
			const struct myxid_req *req)
{
	const char *key = ctx->host->req_get(req, "routing_key");
	const char *list;
	struct expanded x;

	switch (r->kind) {
	case RULE_PUBLIC:
		return 1;
	case RULE_AUTHENTICATED:
		return get_value(ctx, req, "user_id") != NULL;
	case RULE_ATTRIBUTE:
		list = ctx->host->req_get(req, r->attr_key);
		return key != NULL && list != NULL &&
			get_value(ctx, req, "user_id") != NULL &&
			list_contains(list, key);
	case RULE_KEY:
		return key != NULL && expand(ctx, r, req, &x) == 0 &&
			glob_match(&x, key);
	}
	return 0;
}

static enum myxid_verdict static_policy(void *vctx, struct myxid_req *req)
{
	const struct policy_static *ctx = vctx;
	int allowed = 0, watching = ctx->n_presence > 0 &&
		ctx->host->req_get(req, "presence") != NULL;
	size_t i;

	for (i = 0; i < ctx->n_rules && !allowed; i++)
		allowed = !ctx->rules[i].presence && rule_matches(ctx, &ctx->rules[i], req);
	if (!allowed || !watching)
		return allowed ? MYXID_ALLOW : MYXID_DENY;
	for (i = 0; i < ctx->n_rules; i++)
		if (ctx->rules[i].presence && rule_matches(ctx, &ctx->rules[i], req))
			return MYXID_ALLOW;
	return MYXID_DENY;
}

MYXID_PLUGIN_EXPORT const struct myxid_plugin myxid_plugin_entry = {
	.abi_major = MYXID_PLUGIN_ABI_MAJOR,
	.abi_minor = MYXID_PLUGIN_ABI_MINOR,
	.size = sizeof(struct myxid_plugin),
	.kinds = MYXID_KIND_POLICY,
	.name = "policy_static",
	.version = "1.0",
	.init = static_init,
	.deinit = static_deinit,
	.auth = NULL,
	.policy = static_policy,
	.cancel = NULL,
};
