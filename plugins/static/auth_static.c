/*
 * auth_static: authenticates clients against a fixed list of tokens read
 * from a file at init (a reload re-runs init). Meant for demos, tests and
 * small deployments; see etc/demo-tokens for the file format:
 *
 *     TOKEN USER_ID [type=USER_TYPE] [NAME=VALUE ...]
 *
 * Tokens are secrets. They are kept only as SHA-256 digests, looked up by
 * the first bytes of the digest and confirmed with CRYPTO_memcmp, so the
 * time a lookup takes says nothing useful about the stored tokens; they
 * never appear in logs or error messages.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <myxid/plugin.h>
#include "plugin_options.h"
#include "plugin_util.h"

#define DIGEST_LEN 32  /* SHA-256 */
#define PREFIX_LEN 8   /* bytes of digest the search may compare openly */

struct attr {
	char *name;
	char *value;
};

struct entry {
	unsigned char digest[DIGEST_LEN];
	unsigned line;          /* where it was defined, for duplicates */
	char *user_id;
	char *user_type;        /* NULL if not given */
	struct attr *attrs;
	size_t n_attrs;
};

struct auth_static {
	const struct myxid_host *host;
	struct myxid_instance *inst;
	struct entry *entries;  /* sorted by digest */
	size_t n_entries;
};

static int digest_token(const char *token, unsigned char out[DIGEST_LEN])
{
	unsigned int len = 0;

	if (EVP_Digest(token, strlen(token), out, &len, EVP_sha256(), NULL) != 1)
		return -1;
	return len == DIGEST_LEN ? 0 : -1;
}

/* ------------------------------------------------------------ entries */

static void entry_free(struct entry *e)
{
	size_t i;

	for (i = 0; i < e->n_attrs; i++) {
		free(e->attrs[i].name);
		free(e->attrs[i].value);
	}
	free(e->attrs);
	free(e->user_id);
	free(e->user_type);
	memset(e, 0, sizeof(*e));
}

static void ctx_free(struct auth_static *ctx)
{
	size_t i;

	if (ctx == NULL)
		return;
	for (i = 0; i < ctx->n_entries; i++)
		entry_free(&ctx->entries[i]);
	free(ctx->entries);
	free(ctx);
}

/* Is name[0..len) already an attribute of e? */
static int has_attr(const struct entry *e, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < e->n_attrs; i++)
		if (strlen(e->attrs[i].name) == len &&
		    memcmp(e->attrs[i].name, name, len) == 0)
			return 1;
	return 0;
}

/* Appends a copy of name[0..name_len)=value to e. */
static int add_attr(struct entry *e, const char *name, size_t name_len,
		    const char *value)
{
	struct attr *grown;
	struct attr *a;

	grown = realloc(e->attrs, (e->n_attrs + 1) * sizeof(*grown));
	if (grown == NULL)
		return -1;
	e->attrs = grown;
	a = &e->attrs[e->n_attrs];
	a->name = strndup(name, name_len);
	a->value = strdup(value);
	if (a->name == NULL || a->value == NULL) {
		free(a->name);
		free(a->value);
		return -1;
	}
	e->n_attrs++;
	return 0;
}

/* One "type=X" or "NAME=VALUE" word of a line. */
static int parse_attr(struct entry *e, const char *word, const struct pu_file *f,
		      char *err, size_t err_size)
{
	const char *eq = strchr(word, '=');
	size_t name_len;
	const char *value;

	if (eq == NULL || !pu_valid_name(word, (size_t)(eq - word)) ||
	    eq[1] == '\0')
		return pu_file_fail(f, err, err_size,
				    "bad attribute \"%s\" (want NAME=VALUE)", word);
	name_len = (size_t)(eq - word);
	value = eq + 1;
	if (name_len == 4 && strncmp(word, "type", 4) == 0) {
		if (e->user_type != NULL)
			return pu_file_fail(f, err, err_size, "type given twice");
		e->user_type = strdup(value);
		if (e->user_type == NULL)
			return pu_file_fail(f, err, err_size, "out of memory");
		return 0;
	}
	/* Policies read one value per name, so a second one would be lost. */
	if (has_attr(e, word, name_len))
		return pu_file_fail(f, err, err_size,
				    "attribute \"%.*s\" given twice",
				    (int)name_len, word);
	if (add_attr(e, word, name_len, value) < 0)
		return pu_file_fail(f, err, err_size, "out of memory");
	return 0;
}

/* "TOKEN USER_ID [attributes]" into e; the caller frees e on failure. */
static int parse_line(struct entry *e, char *line, const struct pu_file *f,
		      char *err, size_t err_size)
{
	char *cursor = line;
	char *token = pu_next_word(&cursor);
	char *user_id = pu_next_word(&cursor);
	char *word;

	e->line = f->line;
	if (user_id == NULL)
		return pu_file_fail(f, err, err_size, "missing user id");
	/* "TOKEN a=b" forgot the user id: refuse it rather than create a
	 * user called "a=b". */
	if (strchr(user_id, '=') != NULL)
		return pu_file_fail(f, err, err_size,
				    "missing user id (found attribute \"%s\")",
				    user_id);
	if (digest_token(token, e->digest) < 0)
		return pu_file_fail(f, err, err_size, "SHA-256 failed");
	e->user_id = strdup(user_id);
	if (e->user_id == NULL)
		return pu_file_fail(f, err, err_size, "out of memory");
	while ((word = pu_next_word(&cursor)) != NULL)
		if (parse_attr(e, word, f, err, err_size) < 0)
			return -1;
	return 0;
}

/* Appends e (moved, not copied) to ctx->entries, growing it by doubling. */
static int append_entry(struct auth_static *ctx, size_t *cap,
			const struct entry *e)
{
	if (ctx->n_entries == *cap) {
		size_t new_cap = *cap ? *cap * 2 : 16;
		struct entry *grown;

		grown = realloc(ctx->entries, new_cap * sizeof(*grown));
		if (grown == NULL)
			return -1;
		ctx->entries = grown;
		*cap = new_cap;
	}
	ctx->entries[ctx->n_entries++] = *e;
	return 0;
}

/* Parses every line of f into ctx->entries: 0, or -1 with a message. */
static int load_lines(struct auth_static *ctx, struct pu_file *f,
		      char *err, size_t err_size)
{
	size_t cap = 0;
	char *line;
	int r;

	while ((r = pu_file_next(f, &line, err, err_size)) > 0) {
		struct entry e;

		memset(&e, 0, sizeof(e));
		if (parse_line(&e, line, f, err, err_size) < 0) {
			entry_free(&e);
			return -1;
		}
		if (append_entry(ctx, &cap, &e) < 0) {
			entry_free(&e);
			return pu_file_fail(f, err, err_size, "out of memory");
		}
	}
	return r;
}

static int cmp_entries(const void *a, const void *b)
{
	const struct entry *x = a;
	const struct entry *y = b;

	return memcmp(x->digest, y->digest, DIGEST_LEN);
}

/* Sort for the lookup; equal digests end up side by side. */
static int sort_and_check(struct auth_static *ctx, const char *path,
			  char *err, size_t err_size)
{
	size_t i;

	if (ctx->n_entries > 1)
		qsort(ctx->entries, ctx->n_entries, sizeof(*ctx->entries),
		      cmp_entries);
	for (i = 1; i < ctx->n_entries; i++) {
		const struct entry *a = &ctx->entries[i - 1];
		const struct entry *b = &ctx->entries[i];

		if (memcmp(a->digest, b->digest, DIGEST_LEN) != 0)
			continue;
		/* qsort is not stable: name the later line as the culprit. */
		pu_err(err, err_size, "%s:%u: duplicate token (first on line %u)",
		       path, a->line > b->line ? a->line : b->line,
		       a->line < b->line ? a->line : b->line);
		return -1;
	}
	return 0;
}

/* Reads and indexes an opened tokens file, then closes it. */
static int load_file(struct auth_static *ctx, struct pu_file *f,
		     char *err, size_t err_size)
{
	int r = load_lines(ctx, f, err, err_size);

	if (r == 0)
		r = sort_and_check(ctx, f->path, err, err_size);
	pu_file_close(f);
	return r;
}

/* ------------------------------------------------------------ init */

/* The one option; any other is refused, so a typo cannot go unnoticed. */
struct static_opts {
	const struct myxid_opt *tokens_file;
};

static const struct po_option static_rows[] = {
	{ "tokens_file", PO_OPT, offsetof(struct static_opts, tokens_file), 0,
	  0, "tokens_file needs a path", NULL, NULL, PO_REQUIRED },
	PO_END
};
static const struct po_table static_table = {
	static_rows, " (only tokens_file)", NULL, false
};

static int static_init(const struct myxid_host *host, struct myxid_instance *inst,
		       const struct myxid_opt *opts, size_t n_opts, void **ctx_r,
		       char *err, size_t err_size,
		       const struct myxid_opt **bad_opt_r)
{
	struct static_opts o = { NULL };
	const struct myxid_opt *file_opt;
	struct auth_static *ctx;
	struct pu_file f;
	char path[4096];

	if (pu_check_host(host, err, err_size) < 0)
		return -1;
	if (po_parse(&static_table, &o, NULL, host, opts, n_opts, err,
		     err_size, bad_opt_r) < 0)
		return -1;
	file_opt = o.tokens_file;
	if (host->resolve_path(file_opt, file_opt->value, path, sizeof(path)) < 0)
		return pu_opt_fail(file_opt, bad_opt_r, err, err_size,
				   "tokens_file path too long");
	/* A file that cannot be opened is the option's fault; a bad line is
	 * the file's, and its message already says where. */
	if (pu_file_open(&f, path, err, err_size) < 0) {
		*bad_opt_r = file_opt;
		return -1;
	}
	ctx = calloc(1, sizeof(*ctx));
	if (ctx == NULL) {
		pu_file_close(&f);
		pu_err(err, err_size, "out of memory");
		return -1;
	}
	ctx->host = host;
	ctx->inst = inst;
	if (load_file(ctx, &f, err, err_size) < 0) {
		ctx_free(ctx);
		return -1;
	}
	/* Legal (tokens may come later, with a reload) but worth a word. */
	if (ctx->n_entries == 0)
		host->log(inst, MYXID_LOG_NOTICE, "no tokens in %s: every token "
			  "goes to the next plugin", path);
	else
		host->log(inst, MYXID_LOG_INFO, "%zu token(s) loaded from %s",
			  ctx->n_entries, path);
	*ctx_r = ctx;
	return 0;
}

static void static_deinit(void *ctx)
{
	ctx_free(ctx);
}

/* ------------------------------------------------------------ auth */

/*
 * The search compares only PREFIX_LEN bytes of digests with an ordinary
 * memcmp, which an attacker can time; that only tells them where the digest
 * of their own guess falls, which does not help find a token. The full
 * digest is then compared in constant time. Several tokens may share a
 * prefix, so every candidate is checked.
 */
static const struct entry *lookup(const struct auth_static *ctx,
				  const unsigned char digest[DIGEST_LEN])
{
	size_t lo = 0;
	size_t hi = ctx->n_entries;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (memcmp(ctx->entries[mid].digest, digest, PREFIX_LEN) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < ctx->n_entries; lo++) {
		const struct entry *e = &ctx->entries[lo];

		if (memcmp(e->digest, digest, PREFIX_LEN) != 0)
			break;
		if (CRYPTO_memcmp(e->digest, digest, DIGEST_LEN) == 0)
			return e;
	}
	return NULL;
}

/* Hands the entry's identity to the host. A refusal is an ERROR, never an
 * ALLOW with half an identity. */
static enum myxid_verdict grant(const struct auth_static *ctx,
				const struct entry *e, struct myxid_req *req)
{
	const struct myxid_host *host = ctx->host;
	size_t i;

	if (host->req_set_user(req, e->user_id, e->user_type) < 0) {
		host->log(ctx->inst, MYXID_LOG_ERROR,
			  "host refused user id from line %u", e->line);
		return MYXID_ERROR;
	}
	for (i = 0; i < e->n_attrs; i++) {
		if (host->req_add_attr(req, e->attrs[i].name,
				       e->attrs[i].value) < 0) {
			host->log(ctx->inst, MYXID_LOG_ERROR,
				  "host refused attribute %s from line %u",
				  e->attrs[i].name, e->line);
			return MYXID_ERROR;
		}
	}
	return MYXID_ALLOW;
}

static enum myxid_verdict static_auth(void *vctx, struct myxid_req *req)
{
	const struct auth_static *ctx = vctx;
	const char *token = ctx->host->req_get(req, "token");
	unsigned char digest[DIGEST_LEN];
	const struct entry *e;

	/* Not ours to refuse: another plugin in the chain may know it. */
	if (token == NULL || token[0] == '\0')
		return MYXID_NEXT;
	if (digest_token(token, digest) < 0) {
		ctx->host->log(ctx->inst, MYXID_LOG_ERROR, "SHA-256 failed");
		return MYXID_ERROR;
	}
	e = lookup(ctx, digest);
	OPENSSL_cleanse(digest, sizeof(digest));
	if (e == NULL)
		return MYXID_NEXT;
	return grant(ctx, e, req);
}

MYXID_PLUGIN_EXPORT const struct myxid_plugin myxid_plugin_entry = {
	.abi_major = MYXID_PLUGIN_ABI_MAJOR,
	.abi_minor = MYXID_PLUGIN_ABI_MINOR,
	.size = sizeof(struct myxid_plugin),
	.kinds = MYXID_KIND_AUTH,
	.name = "auth_static",
	.version = "1.0",
	.init = static_init,
	.deinit = static_deinit,
	.auth = static_auth,
	.policy = NULL,
	.cancel = NULL,
};
