/*
 * The plugins' option table (plugins/lib/plugin_options.c): each type,
 * the messages a user sees, and which option line gets the blame.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "plugin_options.h"
#include "tap.h"

struct conf {
	unsigned count;
	unsigned ms;
	unsigned secs;
	unsigned mode;
	bool flag;
	char *name;
	char *secret;
	const struct myxid_opt *raw;
	int customs;
};

static const char *const modes[] = { "fast", "safe", "slow", NULL };

static int count_custom(void *base, const struct myxid_opt *opt, char *err,
			size_t err_size)
{
	struct conf *c = base;

	if (strcmp(opt->value, "bad") == 0) {
		pu_err(err, err_size, "custom refused %s", opt->value);
		return -1;
	}
	c->customs++;
	return 0;
}

static const struct po_option rows[] = {
	{ "count", PO_COUNT, offsetof(struct conf, count), 1, 64,
	  "count wants 1 to 64", NULL, NULL, 0 },
	{ "ms", PO_DURATION_MS, offsetof(struct conf, ms), 1, 3600000, NULL,
	  NULL, NULL, 0 },
	{ "secs", PO_SECONDS, offsetof(struct conf, secs), 1, 86400, NULL,
	  NULL, NULL, 0 },
	{ "mode", PO_ENUM, offsetof(struct conf, mode), 0, 0, NULL, modes,
	  NULL, 0 },
	{ "flag", PO_BOOL, offsetof(struct conf, flag), 0, 0, NULL, NULL,
	  NULL, 0 },
	{ "name", PO_STRING, offsetof(struct conf, name), 0, 0, NULL, NULL,
	  NULL, PO_REQUIRED },
	{ "secret", PO_STRING, offsetof(struct conf, secret), 0, 0, NULL, NULL,
	  NULL, PO_EMPTY_OK },
	{ "raw", PO_OPT, offsetof(struct conf, raw), 0, 0, NULL, NULL, NULL, 0 },
	{ "custom", PO_CUSTOM, 0, 0, 0, NULL, NULL, count_custom, PO_MULTI },
	PO_END
};

static const char *const foreign[] = { "theirs", NULL };
static const struct po_table table = { rows, " (see the manual)", foreign,
				       true };
static const struct po_table plain = { rows, NULL, NULL, false };

/* Parse "key value" pairs (NULL-terminated) with t; the message or "". */
static int run(const struct po_table *t, struct conf *c, const char **kv,
	       char *err, size_t err_size, unsigned *bad_line)
{
	static struct myxid_opt opts[16]; /* outlive run(): PO_OPT points here */
	const struct myxid_opt *bad = NULL;
	size_t n = 0;
	int rc;

	for (; kv[0] != NULL; kv += 2, n++) {
		opts[n].key = kv[0];
		opts[n].value = kv[1];
		opts[n].file = "t.conf";
		opts[n].line = (unsigned)n + 1;
	}
	memset(c, 0, sizeof(*c));
	err[0] = '\0';
	rc = po_parse(t, c, NULL, NULL, opts, n, err, err_size, &bad);
	*bad_line = bad ? bad->line : 0;
	return rc;
}

static void refuse(const struct po_table *t, const char **kv, const char *want,
		   unsigned want_line)
{
	struct conf c;
	char err[256];
	unsigned line;

	is_int(run(t, &c, kv, err, sizeof(err), &line), -1, "refused: %s", want);
	is_str(err, want, "  message");
	is_int(line, want_line, "  blames line %u", want_line);
	po_free(t, &c);
}

int main(void)
{
	struct conf c;
	char err[256];
	unsigned line;
	const char *good[] = { "count", "8", "ms", "250ms", "secs", "2m",
		"mode", "slow", "flag", "on", "name", "x", "secret", "",
		"raw", "anything", "custom", "a", "custom", "b", "theirs", "1",
		NULL };

	is_int(run(&table, &c, good, err, sizeof(err), &line), 0, "all types parse");
	is_int(c.count, 8, "count");
	is_int(c.ms, 250, "duration in ms");
	is_int(c.secs, 120, "seconds");
	is_int(c.mode, 2, "enum index");
	ok(c.flag, "bool");
	is_str(c.name, "x", "string copied");
	is_str(c.secret, "", "empty string allowed where PO_EMPTY_OK");
	ok(c.raw != NULL && strcmp(c.raw->value, "anything") == 0, "option kept");
	is_int(c.customs, 2, "custom parser, twice with PO_MULTI");
	po_free(&table, &c);
	ok(c.name == NULL && c.secret == NULL, "po_free clears the strings");

	refuse(&table, (const char *[]){ "name", "x", "colour", "red", NULL },
	       "unknown option \"colour\" (see the manual)", 2);
	refuse(&plain, (const char *[]){ "name", "x", "theirs", "1", NULL },
	       "unknown option \"theirs\"", 2);
	refuse(&table, (const char *[]){ "name", "x", "count", "1", "count", "2", NULL },
	       "count given twice (first on line 2)", 3);
	refuse(&plain, (const char *[]){ "name", "x", "name", "y", NULL },
	       "name given twice", 2);
	refuse(&table, (const char *[]){ "name", "x", "count", "65", NULL },
	       "count wants 1 to 64", 2);
	refuse(&table, (const char *[]){ "name", "x", "count", "0", NULL },
	       "count wants 1 to 64", 2);
	refuse(&table, (const char *[]){ "name", "x", "ms", "2h", NULL },
	       "ms has a bad value", 2);
	refuse(&table, (const char *[]){ "name", "x", "secs", "1500ms", NULL },
	       "secs has a bad value", 2);
	refuse(&table, (const char *[]){ "name", "x", "mode", "quick", NULL },
	       "mode wants fast, safe or slow", 2);
	refuse(&table, (const char *[]){ "name", "x", "flag", "maybe", NULL },
	       "flag wants yes or no", 2);
	refuse(&table, (const char *[]){ "name", "", NULL },
	       "name needs a value", 1);
	refuse(&table, (const char *[]){ "name", "x", "custom", "bad", NULL },
	       "custom refused bad", 2);
	refuse(&table, (const char *[]){ "count", "3", NULL },
	       "name is required", 0);
	return done_testing();
}
