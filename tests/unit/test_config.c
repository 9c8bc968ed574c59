/*
 * Unit tests for the configuration reader (conf_parse.c and config.c): each
 * case writes a file into a fresh temporary directory, loads it, and checks
 * the values or the exact "file:line: message" it is refused with.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "config.h"
#include "conf_parse.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/myxid-test-config-XXXXXX";
static char path[128];
static char err[1024];

/* Write len bytes of text to dir/name; the full path is left in path. */
static void write_bytes(const char *name, const char *text, size_t len)
{
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(2);
	}
}

/* Load text as a config file; NULL with err set when it is refused. */
static struct myxid_config *load(const char *text)
{
	struct myxid_config *cfg;

	write_bytes("t.conf", text, strlen(text));
	err[0] = '\0';
	if (config_load(path, &cfg, err, sizeof err) != 0)
		return NULL;
	return cfg;
}

/* Check that text is refused with "path:" followed by want. */
static void refuse(const char *text, const char *want)
{
	struct myxid_config *cfg = load(text);
	char full[1024];

	snprintf(full, sizeof full, "%s:%s", path, want);
	ok(cfg == NULL, "refused: %s", want);
	is_str(err, full, "  message: %s", want);
	config_free(&cfg);
}

/* Load text that must be accepted, failing the test with err if not. */
static struct myxid_config *load_ok(const char *text, const char *what)
{
	struct myxid_config *cfg = load(text);

	if (!ok(cfg != NULL, "accepted: %s", what))
		printf("#   error: %s\n", err);
	return cfg;
}

/* ------------------------------------------------------------ cases */

static const char example[] =
	"listen 127.0.0.1:5005          # repeatable; \"[::1]:5005\", \"*:5005\"\n"
	"plugin_dir /usr/lib/myxid/plugins\n"
	"publish_key demo-publish-key   # Bearer key for POST /publish\n"
	"max_message_size 64k           # largest WebSocket message (1009 beyond)\n"
	"max_handshake_size 8k          # largest HTTP request head (431 beyond)\n"
	"handshake_timeout 10s\n"
	"auth_timeout 5s                # how long a plugin may take to answer\n"
	"log_level info                 # debug|info|notice|warning|error\n"
	"auth static {                  # chained in file order\n"
	"    tokens_file demo-tokens    # free-form plugin options\n"
	"}\n"
	"exchange deployment {\n"
	"    type direct                # direct|topic|fanout\n"
	"    durable no\n"
	"    policy static {            # exactly one per exchange (required)\n"
	"        allow attribute deployments\n"
	"    }\n"
	"}\n";

static void test_example(void)
{
	struct myxid_config *cfg = load_ok(example, "the example in config.h");
	const struct conf_exchange *x;
	const struct myxid_opt *o;

	if (cfg == NULL)
		return;
	is_str(cfg->path, path, "path kept as given");
	is_int(cfg->n_listens, 1, "one listen");
	is_str(cfg->listens[0].host, "127.0.0.1", "listen host");
	is_str(cfg->listens[0].port, "5005", "listen port");
	is_int(cfg->listens[0].pos.line, 1, "listen line");
	ok(cfg->listens[0].pos.file == cfg->path, "listen file is the config's path");
	is_str(cfg->plugin_dir, "/usr/lib/myxid/plugins", "plugin_dir");
	is_str(cfg->publish_key, "demo-publish-key", "publish_key");
	is_int(cfg->max_message_size, 65536, "max_message_size 64k");
	is_int(cfg->max_handshake_size, 8192, "max_handshake_size 8k");
	is_int(cfg->handshake_timeout_ms, 10000, "handshake_timeout 10s");
	is_int(cfg->auth_timeout_ms, 5000, "auth_timeout 5s");
	is_int(cfg->log_level, MYXID_LOG_INFO, "log_level info");

	is_int(cfg->n_auths, 1, "one auth block");
	is_str(cfg->auths[0].name, "static", "auth name");
	is_int(cfg->auths[0].pos.line, 9, "auth line");
	is_int(cfg->auths[0].n_opts, 1, "auth has one option");
	o = &cfg->auths[0].opts[0];
	is_str(o->key, "tokens_file", "auth option key");
	is_str(o->value, "demo-tokens", "auth option value, comment dropped");
	is_str(o->file, path, "auth option file");
	is_int(o->line, 10, "auth option line");

	is_int(cfg->n_exchanges, 1, "one exchange");
	x = config_exchange(cfg, "deployment");
	ok(x == &cfg->exchanges[0], "config_exchange finds it");
	ok(config_exchange(cfg, "deploymen") == NULL, "config_exchange: no prefix match");
	ok(config_exchange(cfg, "other") == NULL, "config_exchange: unknown name");
	if (x == NULL)
		goto out;
	is_str(x->name, "deployment", "exchange name");
	is_int(x->pos.line, 12, "exchange line");
	is_int(x->type, EXCHANGE_DIRECT, "exchange type");
	ok(!x->durable, "exchange not durable");
	is_str(x->policy.name, "static", "policy name");
	is_int(x->policy.pos.line, 15, "policy line");
	is_int(x->policy.n_opts, 1, "policy has one option");
	o = &x->policy.opts[0];
	is_str(o->key, "allow", "policy option key");
	is_str(o->value, "attribute deployments", "policy option value");
	is_int(o->line, 16, "policy option line");
out:
	config_free(&cfg);
	ok(cfg == NULL, "config_free clears the pointer");
	config_free(&cfg);
	ok(1, "config_free(NULL) is harmless");
}

static void check_defaults(const struct myxid_config *cfg, const char *what)
{
	is_int(cfg->n_listens, 1, "%s: one default listen", what);
	is_str(cfg->listens[0].host, NULL, "%s: on every address", what);
	is_str(cfg->listens[0].port, "5005", "%s: port 5005", what);
	ok(cfg->listens[0].pos.file == cfg->path, "%s: default listen has a file", what);
	is_str(cfg->plugin_dir, NULL, "%s: plugin_dir unset", what);
	is_str(cfg->publish_key, NULL, "%s: publish_key unset", what);
	is_int(cfg->max_message_size, 64 * 1024, "%s: max_message_size", what);
	is_int(cfg->max_handshake_size, 8 * 1024, "%s: max_handshake_size", what);
	is_int(cfg->handshake_timeout_ms, 10000, "%s: handshake_timeout", what);
	is_int(cfg->auth_timeout_ms, 5000, "%s: auth_timeout", what);
	is_int(cfg->log_level, MYXID_LOG_INFO, "%s: log_level", what);
	is_int(cfg->n_auths, 0, "%s: no auth", what);
	is_int(cfg->n_exchanges, 0, "%s: no exchange", what);
}

static void test_defaults(void)
{
	static const char *const texts[][2] = {
		{ "", "empty file" },
		{ "# only a comment\n\n   \t\n# another\n", "comments and blank lines" },
		{ "\n\n", "blank lines" },
	};
	struct myxid_config *cfg;
	size_t i;

	for (i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		cfg = load_ok(texts[i][0], texts[i][1]);
		if (cfg != NULL)
			check_defaults(cfg, texts[i][1]);
		config_free(&cfg);
	}
	cfg = load_ok("exchange e {\n policy p {\n }\n}\n", "exchange defaults");
	if (cfg != NULL) {
		is_int(cfg->exchanges[0].type, EXCHANGE_DIRECT, "type defaults to direct");
		ok(!cfg->exchanges[0].durable, "durable defaults to no");
		is_int(cfg->exchanges[0].policy.n_opts, 0, "an empty policy block has no options");
	}
	config_free(&cfg);
}

static void test_listen(void)
{
	static const char *const good[][3] = {
		/* text, host, port */
		{ "listen 127.0.0.1:80\n", "127.0.0.1", "80" },
		{ "listen [::1]:6000\n", "::1", "6000" },
		{ "listen [::]:1\n", "::", "1" },
		{ "listen *:7000\n", NULL, "7000" },
		{ "listen 8000\n", NULL, "8000" },
		{ "listen example.org:65535\n", "example.org", "65535" },
	};
	struct myxid_config *cfg;
	size_t i;

	for (i = 0; i < sizeof good / sizeof good[0]; i++) {
		cfg = load_ok(good[i][0], good[i][0]);
		if (cfg == NULL)
			continue;
		is_int(cfg->n_listens, 1, "  one listen");
		is_str(cfg->listens[0].host, good[i][1], "  host");
		is_str(cfg->listens[0].port, good[i][2], "  port");
		config_free(&cfg);
	}

	cfg = load_ok("listen 1\n# x\nlisten [::1]:2\nlisten 3\n", "three listens");
	if (cfg != NULL) {
		is_int(cfg->n_listens, 3, "listen is repeatable");
		is_str(cfg->listens[2].port, "3", "listens in file order");
		is_int(cfg->listens[1].pos.line, 3, "each listen has its line");
	}
	config_free(&cfg);

	refuse("\nlisten 0\n", "2: bad listen address '0': the port must be a number from 1 to 65535");
	refuse("listen 65536\n", "1: bad listen address '65536': the port must be a number from 1 to 65535");
	refuse("listen 99999999999999999999999\n", "1: bad listen address '99999999999999999999999': the port must be a number from 1 to 65535");
	refuse("listen -1\n", "1: bad listen address '-1': the port must be a number from 1 to 65535");
	refuse("listen +80\n", "1: bad listen address '+80': the port must be a number from 1 to 65535");
	refuse("listen host:\n", "1: bad listen address 'host:': the port must be a number from 1 to 65535");
	refuse("listen host:http\n", "1: bad listen address 'host:http': the port must be a number from 1 to 65535");
	refuse("listen :80\n", "1: bad listen address ':80': the host is empty");
	refuse("listen []:80\n", "1: bad listen address '[]:80': the host is empty");
	refuse("listen ::1:80\n", "1: bad listen address '::1:80': write an IPv6 address as [address]:port");
	refuse("listen [::1]80\n", "1: bad listen address '[::1]80': write an IPv6 address as [address]:port");
	refuse("listen [::1\n", "1: bad listen address '[::1': write an IPv6 address as [address]:port");
	refuse("listen\n", "1: 'listen' takes exactly one argument (0 given)");
	refuse("listen 1 2\n", "1: 'listen' takes exactly one argument (2 given)");
}

static void test_values(void)
{
	static const struct {
		const char *text;
		size_t offset;     /* of a size_t or unsigned field */
		int is_size;
		unsigned long long want;
	} good[] = {
#define SZ(f) offsetof(struct myxid_config, f), 1
#define MS(f) offsetof(struct myxid_config, f), 0
		{ "max_message_size 125\n", SZ(max_message_size), 125 },
		{ "max_message_size 1K\n", SZ(max_message_size), 1024 },
		{ "max_message_size 2m\n", SZ(max_message_size), 2 << 20 },
		{ "max_message_size 64M\n", SZ(max_message_size), 64 << 20 },
		{ "max_handshake_size 1k\n", SZ(max_handshake_size), 1024 },
		{ "max_handshake_size 65536\n", SZ(max_handshake_size), 65536 },
		{ "handshake_timeout 3\n", MS(handshake_timeout_ms), 3000 },
		{ "handshake_timeout 1ms\n", MS(handshake_timeout_ms), 1 },
		{ "handshake_timeout 250MS\n", MS(handshake_timeout_ms), 250 },
		{ "handshake_timeout 2m\n", MS(handshake_timeout_ms), 120000 },
		{ "auth_timeout 1h\n", MS(auth_timeout_ms), 3600000 },
		{ "auth_timeout 60m\n", MS(auth_timeout_ms), 3600000 },
		{ "auth_timeout 007s\n", MS(auth_timeout_ms), 7000 },
#undef SZ
#undef MS
	};
	static const char *const levels[] = { "debug", "info", "notice", "warning", "error" };
	struct myxid_config *cfg;
	char text[128];
	unsigned long long got;
	size_t i;

	for (i = 0; i < sizeof good / sizeof good[0]; i++) {
		cfg = load_ok(good[i].text, good[i].text);
		if (cfg == NULL)
			continue;
		if (good[i].is_size)
			got = *(size_t *)((char *)cfg + good[i].offset);
		else
			got = *(unsigned *)((char *)cfg + good[i].offset);
		is_int(got, good[i].want, "  value");
		config_free(&cfg);
	}
	for (i = 0; i < sizeof levels / sizeof levels[0]; i++) {
		snprintf(text, sizeof text, "log_level %s\n", levels[i]);
		cfg = load_ok(text, text);
		if (cfg != NULL)
			is_int(cfg->log_level, MYXID_LOG_DEBUG + (int)i, "  level %s", levels[i]);
		config_free(&cfg);
	}

	refuse("max_message_size 124\n", "1: 'max_message_size' must be between 125 and 64m");
	refuse("max_message_size 65m\n", "1: 'max_message_size' must be between 125 and 64m");
	refuse("max_message_size 0\n", "1: 'max_message_size' must be between 125 and 64m");
	refuse("max_message_size 12x\n", "1: bad size '12x' for 'max_message_size'");
	refuse("max_message_size -5\n", "1: bad size '-5' for 'max_message_size'");
	refuse("max_message_size 1.5k\n", "1: bad size '1.5k' for 'max_message_size'");
	refuse("max_message_size k\n", "1: bad size 'k' for 'max_message_size'");
	refuse("max_message_size 64kb\n", "1: bad size '64kb' for 'max_message_size'");
	refuse("max_message_size 99999999999999999999\n", "1: bad size '99999999999999999999' for 'max_message_size'");
	refuse("max_message_size 18014398509481984m\n", "1: bad size '18014398509481984m' for 'max_message_size'");
	refuse("max_handshake_size 1023\n", "1: 'max_handshake_size' must be between 1k and 64k");
	refuse("max_handshake_size 65537\n", "1: 'max_handshake_size' must be between 1k and 64k");
	refuse("handshake_timeout 0\n", "1: 'handshake_timeout' must be between 1ms and 1h");
	refuse("handshake_timeout 0ms\n", "1: 'handshake_timeout' must be between 1ms and 1h");
	refuse("auth_timeout 3601\n", "1: 'auth_timeout' must be between 1ms and 1h");
	refuse("auth_timeout 2h\n", "1: 'auth_timeout' must be between 1ms and 1h");
	refuse("auth_timeout 5d\n", "1: bad time '5d' for 'auth_timeout'");
	refuse("auth_timeout 5sec\n", "1: bad time '5sec' for 'auth_timeout'");
	refuse("auth_timeout -1s\n", "1: bad time '-1s' for 'auth_timeout'");
	refuse("auth_timeout 10 s\n", "1: 'auth_timeout' takes exactly one argument (2 given)");
	refuse("log_level verbose\n", "1: bad value 'verbose' for 'log_level' (debug|info|notice|warning|error)");
	refuse("log_level\n", "1: 'log_level' takes exactly one argument (0 given)");
	refuse("publish_key \"\"\n", "1: 'publish_key' has an empty argument");
	refuse("plugin_dir /a\nplugin_dir /b\n", "2: duplicate 'plugin_dir' (first at line 1)");
	refuse("log_level info\n\nlog_level debug\n", "3: duplicate 'log_level' (first at line 1)");
}

/* Directives in the wrong place or shape, each with its line. */
static void test_structure(void)
{
	refuse("listen 1\n\nfoo bar\n", "3: unknown directive 'foo'");
	refuse("Listen 1\n", "1: unknown directive 'Listen'");
	refuse("\"\" x\n", "1: unknown directive ''");
	refuse("exchange e {\n policy p {\n }\n colour red\n}\n", "4: unknown directive 'colour'");
	refuse("exchange e {\n listen 1\n policy p {\n }\n}\n", "2: unknown directive 'listen'");
	refuse("type topic\n", "1: unknown directive 'type'");
	refuse("log_level info {\n}\n", "1: 'log_level' does not take a block");
	refuse("\nauth static\n", "2: 'auth' needs a block: end the line with '{'");
	refuse("exchange e\n", "1: 'exchange' needs a block: end the line with '{'");
	refuse("auth {\n}\n", "1: 'auth' takes exactly one argument (0 given)");
	refuse("auth a b {\n}\n", "1: 'auth' takes exactly one argument (2 given)");
	refuse("exchange e {\n policy {\n }\n}\n", "2: 'policy' takes exactly one argument (0 given)");
	refuse("auth static {\n a 1\n b {\n }\n}\n", "3: a plugin option cannot open a block");
	refuse("exchange e {\n policy p {\n  x {\n  }\n }\n}\n", "3: a plugin option cannot open a block");
}

/* Errors of the tokenizer, each with its line. */
static void test_syntax(void)
{
	refuse("listen 1\npublish_key \"abc\n", "2: unterminated quoted string");
	refuse("publish_key \"abc\\\"\n", "1: unterminated quoted string");
	refuse("publish_key \"abc\\\n", "1: unterminated quoted string");
	refuse("\n\npublish_key \"a\\nb\"\n", "3: unknown escape '\\n' in a quoted string (only \\\" and \\\\)");
	refuse("publish_key \"a\"b\n", "1: expected a space after a closing '\"'");
	refuse("publish_key a\"b\"\n", "1: unexpected '\"' inside a word (quote the whole word)");
	refuse("listen 1\nauth static {\n a b\n", "2: unterminated block 'auth' (missing '}')");
	refuse("exchange e {\n policy p {\n }\n", "1: unterminated block 'exchange' (missing '}')");
	refuse("exchange e {\n policy p {\n}\n", "1: unterminated block 'exchange' (missing '}')");
	refuse("listen 1\n}\n", "2: unexpected '}'");
	refuse("auth a {\n}\n}\n", "3: unexpected '}'");
	refuse("auth a {\n x }\n}\n", "2: '}' must be alone on its line");
	refuse("auth a {\n} x\n", "2: '}' must be alone on its line");
	refuse("auth a {\n}\n} {\n", "3: '}' must be alone on its line");
	refuse("auth a { x\n}\n", "1: '{' must be the last word on its line");
	refuse("auth a { {\n}\n", "1: '{' must be the last word on its line");
	refuse("auth a { }\n", "1: '{' must be the last word on its line");
	refuse("auth a\n{\n}\n", "2: '{' without a directive before it");
	refuse("a {\nb {\nc {\nd {\ne {\nf {\ng {\nh {\ni {\n",
	       "9: blocks nested too deeply");
	refuse("publish_key ${1X}\n", "1: bad variable reference (write ${NAME}, NAME made of letters, digits and '_')");
	refuse("publish_key ${X\n", "1: bad variable reference (write ${NAME}, NAME made of letters, digits and '_')");
	refuse("publish_key ${}\n", "1: bad variable reference (write ${NAME}, NAME made of letters, digits and '_')");
	refuse("publish_key \"${A-B}\"\n", "1: bad variable reference (write ${NAME}, NAME made of letters, digits and '_')");
}

/* newlines empty lines, a comment line of len bytes, then end. */
static char *long_line(size_t newlines, size_t len, const char *end)
{
	char *s = malloc(newlines + len + strlen(end) + 1);

	if (s == NULL)
		exit(2);
	memset(s, '\n', newlines);
	memset(s + newlines, 'x', len);
	s[newlines] = '#';
	strcpy(s + newlines + len, end);
	return s;
}

static void test_file_errors(void)
{
	struct myxid_config *cfg = NULL;
	char want[512];
	char *big;

	snprintf(path, sizeof path, "%s/missing.conf", dir);
	ok(config_load(path, &cfg, err, sizeof err) == -1 && cfg == NULL, "a missing file is refused");
	snprintf(want, sizeof want, "%s: No such file or directory", path);
	is_str(err, want, "  message: path: strerror");

	ok(config_load(dir, &cfg, err, sizeof err) == -1 && cfg == NULL, "a directory is refused");
	snprintf(want, sizeof want, "%s: Is a directory", dir);
	is_str(err, want, "  message: path: strerror");

	write_bytes("t.conf", "listen 1\nlog_\0level info\n", 25);
	ok(config_load(path, &cfg, err, sizeof err) == -1, "a NUL byte is refused");
	snprintf(want, sizeof want, "%s:2: NUL byte in the file (not a text file?)", path);
	is_str(err, want, "  message");

	/* A line of exactly CONF_LINE_MAX bytes is fine, with or without CR. */
	big = long_line(0, CONF_LINE_MAX, "\r\nlisten 9\n");
	cfg = load_ok(big, "a line of CONF_LINE_MAX bytes and CRLF");
	if (cfg != NULL)
		is_str(cfg->listens[0].port, "9", "  the next line is read");
	config_free(&cfg);
	free(big);

	snprintf(want, sizeof want, "1: line longer than %d bytes", CONF_LINE_MAX);
	big = long_line(0, CONF_LINE_MAX + 1, "\nlisten 9\n");
	refuse(big, want);
	free(big);
	big = long_line(0, CONF_LINE_MAX + 1, "\r\n");
	refuse(big, want);
	free(big);
	snprintf(want, sizeof want, "4: line longer than %d bytes", CONF_LINE_MAX);
	big = long_line(3, 3 * CONF_LINE_MAX, "");
	refuse(big, want);
	free(big);

	err[0] = 'x';
	ok(config_load(path, &cfg, err, 0) == -1, "a zero-sized err is left alone");
	ok(err[0] == 'x', "  err untouched");
	ok(config_load(path, &cfg, err, 8) == -1, "a short err is truncated");
	is_int(strlen(err), 7, "  err NUL-terminated");
}

static void test_env_expansion(void)
{
	struct myxid_config *cfg;

	setenv("MYXID_TEST_KEY", "s3cret", 1);
	setenv("MYXID_TEST_SPACES", "a  b", 1);
	setenv("MYXID_TEST_BRACE", "{", 1);
	setenv("MYXID_TEST_EMPTY", "", 1);
	setenv("MYXID_TEST_PORT", "7777", 1);
	unsetenv("MYXID_TEST_UNSET");

	cfg = load_ok("publish_key ${MYXID_TEST_KEY}\n", "a bare ${NAME}");
	if (cfg != NULL)
		is_str(cfg->publish_key, "s3cret", "  expanded");
	config_free(&cfg);

	cfg = load_ok("publish_key \"<${MYXID_TEST_KEY}>${MYXID_TEST_KEY}\"\n", "${NAME} in quotes");
	if (cfg != NULL)
		is_str(cfg->publish_key, "<s3cret>s3cret", "  expanded twice");
	config_free(&cfg);

	cfg = load_ok("publish_key x${MYXID_TEST_SPACES}y\n", "a value with spaces");
	if (cfg != NULL)
		is_str(cfg->publish_key, "xa  by", "  stays one word");
	config_free(&cfg);

	cfg = load_ok("publish_key ${MYXID_TEST_BRACE}\n", "a value that is a brace");
	if (cfg != NULL)
		is_str(cfg->publish_key, "{", "  is a word, not a block");
	config_free(&cfg);

	cfg = load_ok("listen 127.0.0.1:${MYXID_TEST_PORT}\n", "${NAME} inside a word");
	if (cfg != NULL)
		is_str(cfg->listens[0].port, "7777", "  expanded");
	config_free(&cfg);

	cfg = load_ok("publish_key a$b$\nplugin_dir \"$ {x}\"\n", "a '$' without '{'");
	if (cfg != NULL) {
		is_str(cfg->publish_key, "a$b$", "  kept in a bare word");
		is_str(cfg->plugin_dir, "$ {x}", "  kept in quotes");
	}
	config_free(&cfg);

	cfg = load_ok("auth a {\n k x${MYXID_TEST_EMPTY}y ${MYXID_TEST_EMPTY}\n}\n", "an empty variable");
	if (cfg != NULL)
		is_str(cfg->auths[0].opts[0].value, "xy ", "  expands to nothing");
	config_free(&cfg);

	refuse("listen 1\n\npublish_key ${MYXID_TEST_UNSET}\n", "3: environment variable 'MYXID_TEST_UNSET' is not set");
	refuse("publish_key \"${MYXID_TEST_UNSET}\"\n", "1: environment variable 'MYXID_TEST_UNSET' is not set");
	refuse("# ${MYXID_TEST_UNSET}\nauth a {\n k v ${MYXID_TEST_UNSET}\n}\n", "3: environment variable 'MYXID_TEST_UNSET' is not set");
	refuse("publish_key ${MYXID_TEST_EMPTY}\n", "1: 'publish_key' has an empty argument");

	cfg = load_ok("publish_key x # ${MYXID_TEST_UNSET}\n", "a comment is not expanded");
	config_free(&cfg);
}

static void test_quotes_comments(void)
{
	struct myxid_config *cfg;

	cfg = load_ok("publish_key \"a b # not a comment\"  # a comment\n", "'#' in quotes");
	if (cfg != NULL)
		is_str(cfg->publish_key, "a b # not a comment", "  kept");
	config_free(&cfg);

	cfg = load_ok("publish_key \"say \\\"hi\\\" \\\\o/\"\n", "escapes");
	if (cfg != NULL)
		is_str(cfg->publish_key, "say \"hi\" \\o/", "  unescaped");
	config_free(&cfg);

	cfg = load_ok("publish_key key#1\nplugin_dir a\\b\n", "'#' and '\\' inside a bare word");
	if (cfg != NULL) {
		is_str(cfg->publish_key, "key#1", "  '#' is not a comment there");
		is_str(cfg->plugin_dir, "a\\b", "  '\\' is not an escape there");
	}
	config_free(&cfg);

	cfg = load_ok("\t publish_key\t\tk  \t\n  # indented comment\n", "tabs and spaces");
	if (cfg != NULL)
		is_str(cfg->publish_key, "k", "  separate words");
	config_free(&cfg);
	refuse("listen 1#x\n", "1: bad listen address '1#x': the port must be a number from 1 to 65535");

	cfg = load_ok("listen 1 #x\npublish_key k#\n#listen 2\n", "'#' after a space");
	if (cfg != NULL) {
		is_int(cfg->n_listens, 1, "  a commented-out line is skipped");
		is_str(cfg->publish_key, "k#", "  a trailing '#' is part of the word");
	}
	config_free(&cfg);

	cfg = load_ok("auth a {\n k \"{\"\n k2 \"}\"\n}\n", "quoted braces are words");
	if (cfg != NULL && cfg->auths[0].n_opts == 2) {
		is_str(cfg->auths[0].opts[0].value, "{", "  quoted '{'");
		is_str(cfg->auths[0].opts[1].value, "}", "  quoted '}'");
	}
	config_free(&cfg);

	cfg = load_ok("listen 1\r\nauth a {\r\n k v\r\n}\r\nexchange e {\r\n policy p {\r\n }\r\n}\r\n", "CRLF line endings");
	if (cfg != NULL) {
		is_str(cfg->listens[0].port, "1", "  no CR in values");
		is_str(cfg->auths[0].opts[0].value, "v", "  no CR in options");
	}
	config_free(&cfg);

	cfg = load_ok("auth a {\n}\nlisten 42", "no newline at the end");
	if (cfg != NULL)
		is_str(cfg->listens[0].port, "42", "  the last line is read");
	config_free(&cfg);

	cfg = load_ok("auth a {\n  # comment in a block\n\n}\n", "comments in a block");
	if (cfg != NULL)
		is_int(cfg->auths[0].n_opts, 0, "  are not options");
	config_free(&cfg);
}

static void test_plugin_options(void)
{
	static const char text[] =
		"auth static {\n"
		"  tokens_file   demo-tokens\n"
		"  flag\n"
		"\n"
		"  list a\t b   c   # comment\n"
		"  quoted \"x  y\" z\n"
		"  empty \"\"\n"
		"  flag again\n"
		"}\n"
		"auth /usr/lib/myxid/auth_http.so {\n"
		"}\n"
		"auth \"my plugin\" {\n"
		"  url http://h/a#b\n"
		"}\n";
	static const char *const want[][3] = {
		/* key, value, line */
		{ "tokens_file", "demo-tokens", "2" },
		{ "flag", "", "3" },
		{ "list", "a b c", "5" },
		{ "quoted", "x  y z", "6" },
		{ "empty", "", "7" },
		{ "flag", "again", "8" },
	};
	struct myxid_config *cfg = load_ok(text, "plugin options");
	const struct conf_plugin *p;
	size_t i;

	if (cfg == NULL)
		return;
	is_int(cfg->n_auths, 3, "three auth blocks");
	p = &cfg->auths[0];
	is_int(p->n_opts, 6, "one option per line");
	for (i = 0; i < 6 && i < p->n_opts; i++) {
		is_str(p->opts[i].key, want[i][0], "option %zu key", i);
		is_str(p->opts[i].value, want[i][1], "option %zu value", i);
		is_int(p->opts[i].line, atoi(want[i][2]), "option %zu line", i);
		ok(p->opts[i].file == cfg->path, "option %zu file", i);
	}
	is_str(cfg->auths[1].name, "/usr/lib/myxid/auth_http.so", "auths in file order");
	is_int(cfg->auths[1].n_opts, 0, "an empty auth block");
	is_int(cfg->auths[1].pos.line, 10, "its line");
	is_str(cfg->auths[2].name, "my plugin", "a quoted plugin name");
	is_str(cfg->auths[2].opts[0].value, "http://h/a#b", "'#' inside a value");
	config_free(&cfg);

	refuse("auth a {\n \"\" v\n}\n", "2: empty plugin option name");
}

static void test_exchanges(void)
{
	struct myxid_config *cfg;
	char name[300], text[400];

	cfg = load_ok("exchange a {\n type topic\n durable yes\n policy p {\n }\n}\n"
		     "exchange b {\n policy q {\n  allow public\n }\n type FANOUT\n durable On\n}\n"
		     "exchange c {\n durable false\n policy r {\n }\n}\n",
		     "three exchanges");
	if (cfg != NULL) {
		is_int(cfg->n_exchanges, 3, "three exchanges");
		is_int(cfg->exchanges[0].type, EXCHANGE_TOPIC, "type topic");
		ok(cfg->exchanges[0].durable, "durable yes");
		is_int(cfg->exchanges[1].type, EXCHANGE_FANOUT, "type FANOUT (any case)");
		ok(cfg->exchanges[1].durable, "durable On");
		is_str(cfg->exchanges[1].policy.name, "q", "policy before other keys");
		is_str(cfg->exchanges[1].policy.opts[0].value, "public", "policy option");
		ok(!cfg->exchanges[2].durable, "durable false");
		ok(config_exchange(cfg, "c") == &cfg->exchanges[2], "config_exchange c");
	}
	config_free(&cfg);

	refuse("listen 1\nexchange deployment {\n type direct\n}\n",
	       "2: exchange 'deployment' has no policy (write `policy static { allow public }` for an open exchange)");
	refuse("exchange e {\n policy a {\n }\n\n policy b {\n }\n}\n",
	       "5: duplicate 'policy' (first at line 2)");
	refuse("exchange e {\n policy a {\n }\n}\nexchange f {\n policy a {\n }\n}\nexchange e {\n policy a {\n }\n}\n",
	       "9: duplicate exchange 'e' (first at line 1)");
	refuse("exchange e {\n type direct\n type topic\n policy p {\n }\n}\n",
	       "3: duplicate 'type' (first at line 2)");
	refuse("exchange e {\n type queue\n}\n",
	       "2: bad value 'queue' for 'type' (direct|topic|fanout)");
	refuse("exchange e {\n durable maybe\n}\n",
	       "2: bad value 'maybe' for 'durable' (yes|no|true|false|on|off)");
	refuse("exchange e {\n policy p\n}\n",
	       "2: 'policy' needs a block: end the line with '{'");
	refuse("exchange \"a b\" {\n}\n",
	       "1: bad exchange name 'a b' (1-255 printable ASCII characters, no spaces)");
	refuse("exchange caf\xc3\xa9 {\n}\n",
	       "1: bad exchange name 'caf\xc3\xa9' (1-255 printable ASCII characters, no spaces)");
	refuse("exchange \"a\tb\" {\n}\n",
	       "1: bad exchange name 'a\tb' (1-255 printable ASCII characters, no spaces)");
	refuse("exchange \"\" {\n}\n", "1: 'exchange' has an empty argument");

	memset(name, 'n', 255);
	name[255] = '\0';
	snprintf(text, sizeof text, "exchange %s {\n policy p {\n }\n}\n", name);
	cfg = load_ok(text, "a 255-byte exchange name");
	if (cfg != NULL)
		ok(config_exchange(cfg, name) != NULL, "  found");
	config_free(&cfg);
	strcat(name, "n");
	snprintf(text, sizeof text, "exchange %s {\n policy p {\n }\n}\n", name);
	ok(load(text) == NULL, "a 256-byte exchange name is refused");
	ok(strstr(err, ":1: bad exchange name 'nnn") != NULL, "  with its line");

	cfg = load_ok("exchange !#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ {\n policy p {\n }\n}\n",
		     "an exchange name of punctuation");
	if (cfg != NULL)
		is_str(cfg->exchanges[0].name, "!#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", "  kept");
	config_free(&cfg);
}

static void test_env_overrides(void)
{
	struct myxid_config *cfg;
	size_t i;

	unsetenv("MYXI_PORT");
	unsetenv("PORT");
	unsetenv("MYXI_BIND_ADDRESS");
	cfg = load_ok("listen 127.0.0.1:1\nlisten [::1]:2\n", "two listens");
	if (cfg == NULL)
		return;
	is_int(config_apply_env(cfg, err, sizeof err), 0, "no variables: nothing to do");
	is_str(cfg->listens[1].port, "2", "  port untouched");

	setenv("PORT", "3000", 1);
	is_int(config_apply_env(cfg, err, sizeof err), 0, "PORT");
	for (i = 0; i < 2; i++)
		is_str(cfg->listens[i].port, "3000", "  replaces listen %zu's port", i);
	is_str(cfg->listens[0].host, "127.0.0.1", "  host untouched");

	setenv("MYXI_PORT", "4000", 1);
	is_int(config_apply_env(cfg, err, sizeof err), 0, "MYXI_PORT and PORT");
	is_str(cfg->listens[1].port, "4000", "  MYXI_PORT wins");

	setenv("MYXI_PORT", "", 1);
	setenv("PORT", "5000", 1);
	is_int(config_apply_env(cfg, err, sizeof err), 0, "empty MYXI_PORT");
	is_str(cfg->listens[1].port, "5000", "  is ignored");

	setenv("MYXI_BIND_ADDRESS", "0.0.0.0", 1);
	is_int(config_apply_env(cfg, err, sizeof err), 0, "MYXI_BIND_ADDRESS");
	for (i = 0; i < 2; i++)
		is_str(cfg->listens[i].host, "0.0.0.0", "  replaces listen %zu's host", i);
	setenv("MYXI_BIND_ADDRESS", "*", 1);
	is_int(config_apply_env(cfg, err, sizeof err), 0, "MYXI_BIND_ADDRESS *");
	is_str(cfg->listens[0].host, NULL, "  means every address");
	setenv("MYXI_BIND_ADDRESS", "", 1);
	setenv("MYXI_PORT", "6000", 1);
	is_int(config_apply_env(cfg, err, sizeof err), 0, "empty MYXI_BIND_ADDRESS");
	is_str(cfg->listens[0].host, NULL, "  is ignored");
	is_str(cfg->listens[0].port, "6000", "  port still applied");

	setenv("MYXI_PORT", "0", 1);
	is_int(config_apply_env(cfg, err, sizeof err), -1, "MYXI_PORT=0");
	is_str(err, "MYXI_PORT: bad port '0' (a number from 1 to 65535)", "  message");
	is_str(cfg->listens[0].port, "6000", "  nothing changed");
	unsetenv("MYXI_PORT");
	setenv("PORT", "http", 1);
	is_int(config_apply_env(cfg, err, sizeof err), -1, "PORT=http");
	is_str(err, "PORT: bad port 'http' (a number from 1 to 65535)", "  message");
	setenv("PORT", "65536", 1);
	is_int(config_apply_env(cfg, err, sizeof err), -1, "PORT=65536");
	config_free(&cfg);

	setenv("PORT", "8080", 1);
	cfg = load_ok("", "no listen");
	if (cfg != NULL) {
		is_int(config_apply_env(cfg, err, sizeof err), 0, "PORT with the default listen");
		is_str(cfg->listens[0].port, "8080", "  replaces 5005");
	}
	config_free(&cfg);
	unsetenv("PORT");
	unsetenv("MYXI_BIND_ADDRESS");
}

/* An exchange's history block and the store's limits. */
static void test_history(void)
{
	struct myxid_config *cfg;
	const struct conf_history *h;

	cfg = load_ok("exchange e {\n policy p {\n }\n}\n", "no history");
	if (cfg != NULL) {
		ok(!cfg->exchanges[0].history.enabled, "an exchange keeps no history by default");
		is_int(cfg->history_memory, 64 * 1024 * 1024, "history_memory defaults to 64m");
		is_int(cfg->history_max_replay, 1000, "history_max_replay defaults to 1000");
	}
	config_free(&cfg);
	cfg = load_ok("exchange e {\n history {\n }\n policy p {\n }\n}\n", "an empty history block");
	if (cfg != NULL) {
		h = &cfg->exchanges[0].history;
		ok(h->enabled, "history on");
		ok(h->events == 1000 && h->bytes == 1024 * 1024 && h->age_ms == 3600000,
		   "defaults: 1000 events, 1m, 1h per key");
		ok(h->stream_bytes == 1024ull * 1024 * 1024 && h->epoch == NULL,
		   "stream defaults: 1g, epoch unset");
	}
	config_free(&cfg);
	cfg = load_ok("history_memory 1m\nhistory_max_replay 50\n"
		      "exchange e {\n history {\n  events 0\n  bytes 0\n  age 10m\n"
		      "  stream_bytes 5m\n  epoch two.2\n }\n policy p {\n }\n}\n",
		      "every history directive");
	if (cfg != NULL) {
		h = &cfg->exchanges[0].history;
		ok(cfg->history_memory == 1024 * 1024 && cfg->history_max_replay == 50,
		   "history_memory and history_max_replay read");
		ok(h->events == 0 && h->bytes == 0 && h->age_ms == 600000,
		   "events 0, bytes 0, age 10m");
		ok(h->stream_bytes == 5 * 1024 * 1024, "stream_bytes 5m");
		is_str(h->epoch, "two.2", "epoch");
	}
	config_free(&cfg);
	refuse("exchange e {\n history on {\n }\n policy p {\n }\n}\n",
	       "2: 'history' takes no argument (1 given)");
	refuse("exchange e {\n history {\n  events 0\n  bytes 0\n  age 0\n }\n policy p {\n }\n}\n",
	       "2: history needs at least one limit (events, bytes or age)");
	refuse("exchange e {\n history {\n  epoch a/b\n }\n policy p {\n }\n}\n",
	       "2: history epoch must be 1-32 letters, digits, '_', '-' or '.'");
	refuse("exchange e {\n history {\n  colour red\n }\n policy p {\n }\n}\n",
	       "3: unknown directive 'colour'");
	refuse("history_max_replay 0\n", "1: 'history_max_replay' must be between 1 and 10000000");
	refuse("history_memory 1k\n", "1: 'history_memory' must be between 64k and 65536m");
}

/* The SSE endpoint's directives. */
static void test_sse(void)
{
	struct myxid_config *cfg;

	cfg = load_ok("", "no sse directives");
	if (cfg != NULL) {
		ok(cfg->sse && cfg->sse_path == NULL && cfg->sse_keepalive_ms == 15000,
		   "sse on, at /events, keepalive 15s by default");
	}
	config_free(&cfg);
	cfg = load_ok("sse off\nsse_path /push/events\nsse_keepalive 0\n", "every sse directive");
	if (cfg != NULL) {
		ok(!cfg->sse && cfg->sse_keepalive_ms == 0, "sse off, keepalive 0");
		is_str(cfg->sse_path, "/push/events", "sse_path");
	}
	config_free(&cfg);
	refuse("sse_path events\n", "1: 'sse_path' must be a path starting with '/' (no query, "
	       "no spaces, at most 200 characters)");
	refuse("sse_path /a?b\n", "1: 'sse_path' must be a path starting with '/' (no query, "
	       "no spaces, at most 200 characters)");
	cfg = load_ok("control_key k-123\ncontrol_timeout 250ms\n", "control_key");
	if (cfg != NULL) {
		is_str(cfg->control_key, "k-123", "control_key read (no control API without it)");
		is_int(cfg->control_timeout_ms, 250, "control_timeout 250ms");
	}
	config_free(&cfg);
	refuse("sse maybe\n", "1: bad value 'maybe' for 'sse' (yes|no|true|false|on|off)");
}

int main(void)
{
	/* The daemon's own overrides must not leak in from the caller. */
	unsetenv("MYXI_PORT");
	unsetenv("PORT");
	unsetenv("MYXI_BIND_ADDRESS");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	test_example();
	test_defaults();
	test_listen();
	test_values();
	test_structure();
	test_syntax();
	test_file_errors();
	test_env_expansion();
	test_quotes_comments();
	test_plugin_options();
	test_exchanges();
	test_env_overrides();
	test_history();
	test_sse();

	snprintf(path, sizeof path, "%s/t.conf", dir);
	unlink(path);
	rmdir(dir);
	return done_testing();
}
