/*
 * The configuration's meaning: walks the tree conf_parse.c reads and fills
 * a struct myxid_config, checking every value. Directives are described by
 * tables (name, shape, handler, field offset, limits), in the manner of
 * nginx's ngx_command_t, so adding one is adding a row.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "config.h"
#include "conf_parse.h"
#include "conf_value.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <errno.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define DEFAULT_PORT "5005"

/* set_keyword stores an int into an enum exchange_type field. */
typedef char enum_is_int[sizeof(enum exchange_type) == sizeof(int) ? 1 : -1];

struct loader {
	struct myxid_config *cfg;
	char *err;
	size_t err_size;
};

/*
 * A directive's handler: check node n (args[1] is its value) and store it
 * in field, the directive's member of the struct being filled. spec is the
 * table row's extra: limits, or the words allowed.
 */
typedef int conf_set_fn(struct loader *ld, const struct conf_node *n,
			void *field, const void *spec);

struct conf_cmd {
	const char *name;
	unsigned flags;
	conf_set_fn *set;
	size_t offset;
	const void *spec;
};

#define CMD_BLOCK 0x1u   /* "name arg {" ... "}" rather than "name arg" */
#define CMD_MULTI 0x2u   /* may be given more than once */
#define CMD_BARE 0x4u    /* a block without an argument: "name {" */

/* A number suffix; the first matching row in a table wins. */
/* The spec of a size or time directive. */
struct conf_num {
	const char *what;
	const struct conf_unit *units;
	unsigned long long min, max;
};

/* The spec of a keyword directive: the words and what they mean. */
struct conf_keyword {
	const char *word;
	int value;
};

static const struct conf_unit size_units[] = {
	{ "m", 1024 * 1024 }, { "k", 1024 }, { "", 1 }, { NULL, 0 }
};

/* Bare numbers are seconds; "m" is minutes, as in nginx. */
static const struct conf_unit time_units[] = {
	{ "h", 3600000 }, { "m", 60000 }, { "s", 1000 }, { "ms", 1 },
	{ "", 1000 }, { NULL, 0 }
};

/* 125 bytes is the largest control frame, so any message size covers it. */
static const struct conf_num message_size = {
	"size", size_units, 125, 64 * 1024 * 1024
};
static const struct conf_num handshake_size = {
	"size", size_units, 1024, 64 * 1024
};
static const struct conf_num timeout = { "time", time_units, 1, 3600000 };
/* Cache lifetimes and intervals: 0 turns the feature off; at most a day. */
static const struct conf_num cache_time = { "time", time_units, 0, 86400000 };

/* Counts: connections, subscriptions, actions. */
static const struct conf_num count_limit = { "number", conf_plain_units, 0, 10000000 };
static const struct conf_num positive_count = { "number", conf_plain_units, 1, 10000000 };
static const struct conf_num output_size = {
	"size", size_units, 64 * 1024, 1024 * 1024 * 1024
};
static const struct conf_num worker_count = { "number", conf_plain_units, 0, 64 };
static const struct conf_num compression_min = { "size", size_units, 0, 64 * 1024 * 1024 };
static const struct conf_num compression_level = { "number", conf_plain_units, 1, 9 };
static const struct conf_num history_memory = {
	"size", size_units, 64 * 1024, 64ull * 1024 * 1024 * 1024
};

static const struct conf_keyword log_targets[] = {
	{ "stderr", LOG_TO_STDERR }, { "syslog", LOG_TO_SYSLOG }, { NULL, 0 }
};

static const struct conf_keyword log_levels[] = {
	{ "debug", MYXID_LOG_DEBUG }, { "info", MYXID_LOG_INFO },
	{ "notice", MYXID_LOG_NOTICE }, { "warning", MYXID_LOG_WARNING },
	{ "error", MYXID_LOG_ERROR }, { NULL, 0 }
};

static const struct conf_keyword exchange_types[] = {
	{ "direct", EXCHANGE_DIRECT }, { "topic", EXCHANGE_TOPIC },
	{ "fanout", EXCHANGE_FANOUT }, { NULL, 0 }
};

static const struct conf_keyword booleans[] = {
	{ "yes", 1 }, { "no", 0 }, { "true", 1 }, { "false", 0 },
	{ "on", 1 }, { "off", 0 }, { NULL, 0 }
};

/* ------------------------------------------------------------ helpers */

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int fail(struct loader *ld, const struct conf_node *n,
		const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conf_verr(ld->err, ld->err_size, ld->cfg->path, n ? n->line : 0,
		  fmt, ap);
	va_end(ap);
	return -1;
}

static int oom(struct loader *ld, const struct conf_node *n)
{
	return fail(ld, n, "out of memory");
}

/*
 * Where n was written. The file is the config's own copy of the path, as
 * the tree (and its copy) is freed once loading ends.
 */
static struct conf_pos pos_of(const struct loader *ld,
			      const struct conf_node *n)
{
	struct conf_pos pos = { ld->cfg->path, n->line };

	return pos;
}

/* Hand s (malloc'ed, may be NULL) to the config, which frees it last. */
static const char *keep(struct loader *ld, char *s)
{
	struct myxid_config *cfg = ld->cfg;
	char **strings;

	strings = s ? conf_grow(cfg->strings, cfg->n_strings, sizeof *strings)
		    : NULL;
	if (strings == NULL) {
		free(s);
		return NULL;
	}
	cfg->strings = strings;
	cfg->strings[cfg->n_strings++] = s;
	return s;
}

/* words[0..n) joined by single spaces, "" when n is 0; malloc'ed. */
static char *join(char *const *words, size_t n)
{
	size_t i, len = 1;
	char *s, *end;

	for (i = 0; i < n; i++)
		len += strlen(words[i]) + 1;
	s = malloc(len);
	if (s == NULL)
		return NULL;
	end = s;
	for (i = 0; i < n; i++) {
		if (i > 0)
			*end++ = ' ';
		memcpy(end, words[i], strlen(words[i]));
		end += strlen(words[i]);
	}
	*end = '\0';
	return s;
}

/* v written with the largest suffix of units that divides it: "64k". */
static void format_number(char *buf, size_t size, unsigned long long v,
			  const struct conf_unit *units)
{
	for (; units->suffix != NULL; units++) {
		if (v % units->mult == 0) {
			snprintf(buf, size, "%llu%s", v / units->mult,
				 units->suffix);
			return;
		}
	}
	snprintf(buf, size, "%llu", v);
}

/* ------------------------------------------------------------ blocks */

static const struct conf_cmd *find_cmd(const struct conf_cmd *cmds,
				       const char *name)
{
	for (; cmds->name != NULL; cmds++) {
		if (strcmp(cmds->name, name) == 0)
			return cmds;
	}
	return NULL;
}

/* The first directive before kids[i] with the same name, or NULL. */
static const struct conf_node *earlier(const struct conf_node *block,
				       size_t i)
{
	size_t j;

	for (j = 0; j < i; j++) {
		if (strcmp(block->kids[j]->args[0], block->kids[i]->args[0]) == 0)
			return block->kids[j];
	}
	return NULL;
}

/* Every directive takes exactly one non-empty argument, and a block if
 * (and only if) its row says so. */
static int check_shape(struct loader *ld, const struct conf_node *n,
		       const struct conf_cmd *cmd)
{
	if ((cmd->flags & CMD_BARE) && n->n_args != 1)
		return fail(ld, n, "'%s' takes no argument (%zu given)",
			    cmd->name, n->n_args - 1);
	if (!(cmd->flags & CMD_BARE) && n->n_args != 2)
		return fail(ld, n, "'%s' takes exactly one argument (%zu given)",
			    cmd->name, n->n_args - 1);
	if (!(cmd->flags & CMD_BARE) && n->args[1][0] == '\0')
		return fail(ld, n, "'%s' has an empty argument", cmd->name);
	if ((cmd->flags & CMD_BLOCK) && !n->block)
		return fail(ld, n, "'%s' needs a block: end the line with '{'",
			    cmd->name);
	if (!(cmd->flags & CMD_BLOCK) && n->block)
		return fail(ld, n, "'%s' does not take a block", cmd->name);
	return 0;
}

/* Apply the directives of block to base, the struct that cmds describe. */
static int apply_block(struct loader *ld, const struct conf_node *block,
		       const struct conf_cmd *cmds, void *base)
{
	const struct conf_node *n, *first;
	const struct conf_cmd *cmd;
	size_t i;

	for (i = 0; i < block->n_kids; i++) {
		n = block->kids[i];
		cmd = find_cmd(cmds, n->args[0]);
		if (cmd == NULL)
			return fail(ld, n, "unknown directive '%s'", n->args[0]);
		if (check_shape(ld, n, cmd))
			return -1;
		first = (cmd->flags & CMD_MULTI) ? NULL : earlier(block, i);
		if (first != NULL)
			return fail(ld, n, "duplicate '%s' (first at line %u)",
				    cmd->name, first->line);
		if (cmd->set(ld, n, (char *)base + cmd->offset, cmd->spec))
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ values */

static int set_string(struct loader *ld, const struct conf_node *n,
		      void *field, const void *spec)
{
	return conf_replace(field, n->args[1]) ? oom(ld, n) : 0;
}

/* A URL path of our own (sse_path): absolute, no query, nothing to escape. */
static int set_url_path(struct loader *ld, const struct conf_node *n,
			void *field, const void *spec)
{
	const char *p = n->args[1];

	if (p[0] != '/' || strlen(p) > 200 || strpbrk(p, "?#% \t") != NULL)
		return fail(ld, n, "'%s' must be a path starting with '/' (no query, "
			    "no spaces, at most 200 characters)", n->args[0]);
	return set_string(ld, n, field, spec);
}

/* What a path directive must name: spec of set_path. */
enum path_kind { PATH_DIR, PATH_FILE };
static const enum path_kind path_dir = PATH_DIR, path_file = PATH_FILE;

/*
 * A path, relative to the configuration file's directory unless absolute;
 * it must exist now (a directory or a regular file, as spec says), so
 * that `myxid -t` catches a typo.
 */
static int set_path(struct loader *ld, const struct conf_node *n,
		    void *field, const void *spec)
{
	const char *p = n->args[1], *slash = strrchr(ld->cfg->path, '/');
	enum path_kind kind = *(const enum path_kind *)spec;
	size_t dir_len = p[0] != '/' && slash ? (size_t)(slash - ld->cfg->path) : 0;
	char *full = malloc(dir_len + strlen(p) + 2);
	struct stat st;

	if (full == NULL)
		return oom(ld, n);
	if (dir_len > 0)
		sprintf(full, "%.*s/%s", (int)dir_len, ld->cfg->path, p);
	else
		strcpy(full, p);
	errno = 0;
	if (stat(full, &st) != 0 || (kind == PATH_DIR ? !S_ISDIR(st.st_mode) :
				     !S_ISREG(st.st_mode))) {
		int e = errno;

		fail(ld, n, "'%s': %s is not %s%s%s", n->args[0], full,
		     kind == PATH_DIR ? "a directory" : "a file",
		     e ? ": " : "", e ? strerror(e) : "");
		free(full);
		return -1;
	}
	free(*(char **)field);
	*(char **)field = full;
	return 0;
}

static int get_number(struct loader *ld, const struct conf_node *n,
		      const struct conf_num *num, unsigned long long *v)
{
	char lo[32], hi[32];

	if (conf_parse_number(n->args[1], num->units, v))
		return fail(ld, n, "bad %s '%s' for '%s'", num->what,
			    n->args[1], n->args[0]);
	if (*v >= num->min && *v <= num->max)
		return 0;
	format_number(lo, sizeof lo, num->min, num->units);
	format_number(hi, sizeof hi, num->max, num->units);
	return fail(ld, n, "'%s' must be between %s and %s", n->args[0], lo,
		    hi);
}

static int set_size(struct loader *ld, const struct conf_node *n,
		    void *field, const void *spec)
{
	unsigned long long v;

	if (get_number(ld, n, spec, &v))
		return -1;
	*(size_t *)field = (size_t)v;
	return 0;
}

static int set_size_unsigned(struct loader *ld, const struct conf_node *n,
			     void *field, const void *spec)
{
	unsigned long long v;

	if (get_number(ld, n, spec, &v))
		return -1;
	*(unsigned *)field = (unsigned)v;
	return 0;
}

static int set_time(struct loader *ld, const struct conf_node *n,
		    void *field, const void *spec)
{
	unsigned long long v;

	if (get_number(ld, n, spec, &v))
		return -1;
	*(unsigned *)field = (unsigned)v;
	return 0;
}

static int get_keyword(struct loader *ld, const struct conf_node *n,
		       const struct conf_keyword *words, int *v)
{
	const struct conf_keyword *k;
	char list[128];
	size_t len = 0;

	for (k = words; k->word != NULL; k++) {
		if (strcasecmp(k->word, n->args[1]) == 0) {
			*v = k->value;
			return 0;
		}
	}
	list[0] = '\0';
	for (k = words; k->word != NULL && len < sizeof list; k++)
		len += (size_t)snprintf(list + len, sizeof list - len, "%s%s",
					k == words ? "" : "|", k->word);
	return fail(ld, n, "bad value '%s' for '%s' (%s)", n->args[1],
		    n->args[0], list);
}

static int set_keyword(struct loader *ld, const struct conf_node *n,
		       void *field, const void *spec)
{
	return get_keyword(ld, n, spec, field);
}

static int set_bool(struct loader *ld, const struct conf_node *n,
		    void *field, const void *spec)
{
	int v;

	if (get_keyword(ld, n, spec, &v))
		return -1;
	*(bool *)field = v != 0;
	return 0;
}

/*
 * "host:port", "[v6]:port", "*:port" or "port". Returns NULL with *host
 * (NULL for none), *host_len and *port set, or what is wrong.
 */
static const char *split_listen(const char *s, const char **host,
				size_t *host_len, const char **port)
{
	const char *colon = strrchr(s, ':');

	*host = NULL;
	*host_len = 0;
	*port = s;
	if (s[0] == '[') {
		colon = strchr(s, ']');
		if (colon == NULL || colon[1] != ':')
			return "write an IPv6 address as [address]:port";
		colon++;
		*host = s + 1;
		*host_len = (size_t)(colon - s) - 2;
	} else if (colon != NULL) {
		if (strchr(s, ':') != colon)
			return "write an IPv6 address as [address]:port";
		*host = s;
		*host_len = (size_t)(colon - s);
	}
	if (colon != NULL)
		*port = colon + 1;
	if (*host != NULL && *host_len == 0)
		return "the host is empty";
	if (!conf_valid_port(*port))
		return "the port must be a number from 1 to 65535";
	return NULL;
}

static int set_strlist(struct loader *ld, const struct conf_node *n,
		       void *field, const void *spec)
{
	struct conf_strlist *l = field;
	char **v = conf_grow(l->v, l->n, sizeof *v);

	if (v == NULL)
		return oom(ld, n);
	l->v = v;
	l->v[l->n] = strdup(n->args[1]);
	if (l->v[l->n] == NULL)
		return oom(ld, n);
	l->n++;
	return 0;
}

/* a.b.c.d/len or an IPv6 address/len (a bare address is a /32 or /128). */
static bool valid_cidr(const char *s)
{
	char buf[64];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned char addr[16];
	int family, max;
	char *end;
	long bits;

	if (alen == 0 || alen >= sizeof(buf))
		return false;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	family = strchr(buf, ':') ? AF_INET6 : AF_INET;
	max = family == AF_INET6 ? 128 : 32;
	if (inet_pton(family, buf, addr) != 1)
		return false;
	if (slash == NULL)
		return true;
	bits = strtol(slash + 1, &end, 10);
	return *end == '\0' && slash[1] != '\0' && bits >= 0 && bits <= max;
}

static int set_proxy(struct loader *ld, const struct conf_node *n,
		     void *field, const void *spec)
{
	if (!valid_cidr(n->args[1]))
		return fail(ld, n, "bad trusted_proxy '%s' (an address or CIDR, e.g. 10.0.0.0/8)",
			    n->args[1]);
	return set_strlist(ld, n, field, spec);
}

static int set_origin(struct loader *ld, const struct conf_node *n,
		      void *field, const void *spec)
{
	if (strncmp(n->args[1], "http://", 7) != 0 &&
	    strncmp(n->args[1], "https://", 8) != 0 && strcmp(n->args[1], "*") != 0)
		return fail(ld, n, "bad allow_origin '%s' (scheme://host[:port], '*' wildcards allowed)",
			    n->args[1]);
	return set_strlist(ld, n, field, spec);
}

static int set_listen_tls(struct loader *ld, const struct conf_node *n,
			  void *field, const void *spec);

static int set_listen(struct loader *ld, const struct conf_node *n,
		      void *field, const void *spec)
{
	struct myxid_config *cfg = ld->cfg;
	struct conf_listen *l;
	const char *host, *port, *why;
	size_t host_len;

	why = split_listen(n->args[1], &host, &host_len, &port);
	if (why != NULL)
		return fail(ld, n, "bad listen address '%s': %s", n->args[1], why);
	l = conf_grow(cfg->listens, cfg->n_listens, sizeof *l);
	if (l == NULL)
		return oom(ld, n);
	cfg->listens = l;
	l = &cfg->listens[cfg->n_listens++];
	memset(l, 0, sizeof *l);
	l->pos = pos_of(ld, n);
	if ((host != NULL && conf_set_host(&l->host, host, host_len)) ||
	    conf_replace(&l->port, port))
		return oom(ld, n);
	return 0;
}

static int set_listen_tls(struct loader *ld, const struct conf_node *n,
			  void *field, const void *spec)
{
	if (set_listen(ld, n, field, spec))
		return -1;
	ld->cfg->listens[ld->cfg->n_listens - 1].tls = true;
	return 0;
}

/* ------------------------------------------------------------ plugins */

static int add_opt(struct loader *ld, struct conf_plugin *p,
		   const struct conf_node *n)
{
	struct myxid_opt *opt;

	if (n->block)
		return fail(ld, n, "a plugin option cannot open a block");
	if (n->args[0][0] == '\0')
		return fail(ld, n, "empty plugin option name");
	opt = conf_grow(p->opts, p->n_opts, sizeof *opt);
	if (opt == NULL)
		return oom(ld, n);
	p->opts = opt;
	opt = &p->opts[p->n_opts++];
	opt->key = keep(ld, strdup(n->args[0]));
	opt->value = keep(ld, join(n->args + 1, n->n_args - 1));
	opt->file = ld->cfg->path;
	opt->line = n->line;
	return opt->key && opt->value ? 0 : oom(ld, n);
}

/* "auth NAME {" or "policy NAME {": every line is an option for NAME. */
static int set_plugin(struct loader *ld, const struct conf_node *n,
		      void *field, const void *spec)
{
	struct conf_plugin *p = field;
	size_t i;

	p->pos = pos_of(ld, n);
	if (conf_replace(&p->name, n->args[1]))
		return oom(ld, n);
	for (i = 0; i < n->n_kids; i++) {
		if (add_opt(ld, p, n->kids[i]))
			return -1;
	}
	return 0;
}

static int set_auth(struct loader *ld, const struct conf_node *n,
		    void *field, const void *spec)
{
	struct myxid_config *cfg = ld->cfg;
	struct conf_plugin *p;

	p = conf_grow(cfg->auths, cfg->n_auths, sizeof *p);
	if (p == NULL)
		return oom(ld, n);
	cfg->auths = p;
	p = &cfg->auths[cfg->n_auths++];
	memset(p, 0, sizeof *p);
	return set_plugin(ld, n, p, spec);
}

/* ------------------------------------------------------------ exchanges */

/* Per key: 0 turns that limit off (another one must bound it). */
static const struct conf_num history_count = { "number", conf_plain_units, 0, 1000000 };
static const struct conf_num history_size = { "size", size_units, 0, 1024 * 1024 * 1024 };
static const struct conf_num history_age = { "time", time_units, 0, 30u * 86400000 };
static const struct conf_num stream_size = {
	"size", size_units, 1024 * 1024, 1024ull * 1024 * 1024 * 1024
};

static const struct conf_cmd history_cmds[] = {
	{ "events", 0, set_size, offsetof(struct conf_history, events), &history_count },
	{ "bytes", 0, set_size, offsetof(struct conf_history, bytes), &history_size },
	{ "age", 0, set_time, offsetof(struct conf_history, age_ms), &history_age },
	{ "stream_bytes", 0, set_size, offsetof(struct conf_history, stream_bytes),
	  &stream_size },
	{ "epoch", 0, set_string, offsetof(struct conf_history, epoch), NULL },
	{ NULL, 0, NULL, 0, NULL }
};

/* "history {": this exchange keeps its events for resume and late joiners. */
static int set_history(struct loader *ld, const struct conf_node *n,
		       void *field, const void *spec)
{
	struct conf_history *h = field;

	h->enabled = true;
	h->events = 1000;
	h->bytes = 1024 * 1024;
	h->age_ms = 3600000;
	h->stream_bytes = 1024ull * 1024 * 1024;
	if (apply_block(ld, n, history_cmds, h))
		return -1;
	if (h->events == 0 && h->bytes == 0 && h->age_ms == 0)
		return fail(ld, n, "history needs at least one limit (events, bytes or age)");
	if (h->epoch != NULL && (strlen(h->epoch) > 32 || strspn(h->epoch,
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") !=
			strlen(h->epoch)))
		return fail(ld, n, "history epoch must be 1-32 letters, digits, '_', '-' or '.'");
	return 0;
}

/* Keep: typed command tables (nginx's ngx_command_t), each error as file:line. */
static const struct conf_cmd exchange_cmds[] = {
	{ "history", CMD_BLOCK | CMD_BARE, set_history,
	  offsetof(struct conf_exchange, history), NULL },
	{ "type", 0, set_keyword, offsetof(struct conf_exchange, type),
	  exchange_types },
	{ "durable", 0, set_bool, offsetof(struct conf_exchange, durable),
	  booleans },
	{ "presence", 0, set_bool, offsetof(struct conf_exchange, presence),
	  booleans },
	{ "policy", CMD_BLOCK, set_plugin,
	  offsetof(struct conf_exchange, policy), NULL },
	{ NULL, 0, NULL, 0, NULL }
};

/* 1..255 bytes of printable ASCII, no spaces: safe in logs and frames. */
static bool valid_exchange_name(const char *s)
{
	size_t len;

	for (len = 0; s[len] != '\0'; len++) {
		if (s[len] <= ' ' || s[len] > '~')
			return false;
	}
	return len >= 1 && len <= 255;
}

static int set_exchange(struct loader *ld, const struct conf_node *n,
			void *field, const void *spec)
{
	struct myxid_config *cfg = ld->cfg;
	const struct conf_exchange *dup;
	struct conf_exchange *x;

	if (!valid_exchange_name(n->args[1]))
		return fail(ld, n, "bad exchange name '%s' (1-255 printable ASCII characters, no spaces)",
			    n->args[1]);
	dup = config_exchange(cfg, n->args[1]);
	if (dup != NULL)
		return fail(ld, n, "duplicate exchange '%s' (first at line %u)",
			    n->args[1], dup->pos.line);
	x = conf_grow(cfg->exchanges, cfg->n_exchanges, sizeof *x);
	if (x == NULL)
		return oom(ld, n);
	cfg->exchanges = x;
	x = &cfg->exchanges[cfg->n_exchanges++];
	memset(x, 0, sizeof *x);
	x->pos = pos_of(ld, n);
	x->type = EXCHANGE_DIRECT;    /* the defaults */
	x->durable = false;
	if (conf_replace(&x->name, n->args[1]))
		return oom(ld, n);
	if (apply_block(ld, n, exchange_cmds, x))
		return -1;
	if (x->policy.name == NULL)
		return fail(ld, n, "exchange '%s' has no policy (write `policy static { allow public }` for an open exchange)",
			    x->name);
	return 0;
}

/* ------------------------------------------------------------ the broker */

static const struct conf_num heartbeat = { "time", time_units, 0, 3600000 };

int config_add_broker_url(struct conf_broker *b, const char *url)
{
	char **urls = conf_grow(b->urls, b->n_urls, sizeof *urls);

	if (urls == NULL)
		return -1;
	b->urls = urls;
	b->urls[b->n_urls] = strdup(url);
	if (b->urls[b->n_urls] == NULL)
		return -1;
	b->n_urls++;
	return 0;
}

static int set_url(struct loader *ld, const struct conf_node *n,
		   void *field, const void *spec)
{
	struct conf_broker *b = field;

	if (!conf_valid_broker_url(n->args[1]))
		return fail(ld, n, "bad broker url '%s' (amqp://user:pass@host:port/vhost)",
			    n->args[1]);
	return config_add_broker_url(b, n->args[1]) ? oom(ld, n) : 0;
}

static const struct conf_cmd broker_cmds[] = {
	{ "url", CMD_MULTI, set_url, 0, NULL },
	{ "queue_expires", 0, set_time,
	  offsetof(struct conf_broker, queue_expires_ms), &timeout },
	{ "heartbeat", 0, set_time, offsetof(struct conf_broker, heartbeat_ms),
	  &heartbeat },
	{ "queue_prefix", 0, set_string,
	  offsetof(struct conf_broker, queue_prefix), NULL },
	{ NULL, 0, NULL, 0, NULL }
};

static int set_broker(struct loader *ld, const struct conf_node *n,
		      void *field, const void *spec)
{
	struct conf_broker *b = field;

	if (strcmp(n->args[1], "rabbitmq") != 0)
		return fail(ld, n, "unknown broker '%s' (only 'rabbitmq' is supported)",
			    n->args[1]);
	b->enabled = true;
	b->pos = pos_of(ld, n);
	if (apply_block(ld, n, broker_cmds, b))
		return -1;
	if (b->n_urls == 0)
		return fail(ld, n, "the broker block needs at least one 'url'");
	return 0;
}

/* ------------------------------------------------------------ the file */

#define TOP(field) offsetof(struct myxid_config, field)

static const struct conf_cmd top_cmds[] = {
	{ "listen", CMD_MULTI, set_listen, 0, NULL },
	{ "plugin_dir", 0, set_string, TOP(plugin_dir), NULL },
	{ "publish_key", 0, set_string, TOP(publish_key), NULL },
	{ "control_key", 0, set_string, TOP(control_key), NULL },
	{ "control_timeout", 0, set_time, TOP(control_timeout_ms), &timeout },
	{ "max_message_size", 0, set_size, TOP(max_message_size),
	  &message_size },
	{ "max_handshake_size", 0, set_size, TOP(max_handshake_size),
	  &handshake_size },
	{ "handshake_timeout", 0, set_time, TOP(handshake_timeout_ms),
	  &timeout },
	{ "auth_timeout", 0, set_time, TOP(auth_timeout_ms), &timeout },
	{ "auth_cache", 0, set_time, TOP(auth_cache_ms), &cache_time },
	{ "policy_cache", 0, set_time, TOP(policy_cache_ms), &cache_time },
	{ "recheck_interval", 0, set_time, TOP(recheck_interval_ms), &cache_time },
	{ "log_level", 0, set_keyword, TOP(log_level), log_levels },
	{ "auth", CMD_BLOCK | CMD_MULTI, set_auth, 0, NULL },
	{ "exchange", CMD_BLOCK | CMD_MULTI, set_exchange, 0, NULL },
	{ "broker", CMD_BLOCK, set_broker, TOP(broker), NULL },
	{ "listen_tls", CMD_MULTI, set_listen_tls, 0, NULL },
	{ "ssl_certificate", 0, set_string, TOP(ssl_certificate), NULL },
	{ "ssl_certificate_key", 0, set_string, TOP(ssl_certificate_key), NULL },
	{ "log", 0, set_keyword, TOP(log_target), log_targets },
	{ "syslog_address", 0, set_string, TOP(syslog_address), NULL },
	{ "max_connections", 0, set_size, TOP(max_connections), &positive_count },
	{ "max_connections_per_ip", 0, set_size, TOP(max_connections_per_ip),
	  &count_limit },
	{ "max_subscriptions", 0, set_size, TOP(max_subscriptions), &positive_count },
	{ "max_actions_per_second", 0, set_size, TOP(max_actions_per_second),
	  &count_limit },
	{ "max_output_buffer", 0, set_size, TOP(max_output_buffer), &output_size },
	{ "ping_interval", 0, set_time, TOP(ping_interval_ms), &cache_time },
	{ "ping_timeout", 0, set_time, TOP(ping_timeout_ms), &timeout },
	{ "auth_deadline", 0, set_time, TOP(auth_deadline_ms), &cache_time },
	{ "drain_time", 0, set_time, TOP(drain_time_ms), &cache_time },
	{ "allow_origin", CMD_MULTI, set_origin, TOP(allow_origins), NULL },
	{ "trusted_proxy", CMD_MULTI, set_proxy, TOP(trusted_proxies), NULL },
	{ "plugin_header", CMD_MULTI, set_strlist, TOP(plugin_headers), NULL },
	{ "user", 0, set_string, TOP(user), NULL },
	{ "workers", 0, set_size_unsigned, TOP(workers), &worker_count },
	{ "static_dir", 0, set_path, TOP(static_dir), &path_dir },
	{ "client_js", 0, set_path, TOP(client_js), &path_file },
	{ "websocket_compression", 0, set_bool, TOP(websocket_compression), booleans },
	{ "websocket_compression_min_size", 0, set_size, TOP(websocket_compression_min_size),
	  &compression_min },
	{ "websocket_compression_level", 0, set_size_unsigned,
	  TOP(websocket_compression_level), &compression_level },
	{ "sse", 0, set_bool, TOP(sse), booleans },
	{ "sse_path", 0, set_url_path, TOP(sse_path), NULL },
	{ "sse_keepalive", 0, set_time, TOP(sse_keepalive_ms), &cache_time },
	{ "sse_token_cookie", 0, set_string, TOP(sse_token_cookie), NULL },
	{ "history_memory", 0, set_size, TOP(history_memory), &history_memory },
	{ "history_max_replay", 0, set_size, TOP(history_max_replay), &positive_count },
	{ "presence_interval", 0, set_time, TOP(presence_interval_ms), &timeout },
	{ "presence_max_users", 0, set_size, TOP(presence_max_users), &positive_count },
	{ NULL, 0, NULL, 0, NULL }
};

static struct myxid_config *config_new(const char *path)
{
	struct myxid_config *cfg = calloc(1, sizeof *cfg);

	if (cfg == NULL)
		return NULL;
	cfg->path = strdup(path);
	if (cfg->path == NULL) {
		free(cfg);
		return NULL;
	}
	cfg->max_message_size = 64 * 1024;
	cfg->max_handshake_size = 8 * 1024;
	cfg->handshake_timeout_ms = 10000;
	cfg->auth_timeout_ms = 5000;
	cfg->auth_cache_ms = 60000;
	cfg->policy_cache_ms = 60000;
	cfg->recheck_interval_ms = 60000;
	cfg->max_connections = 10000;
	cfg->max_connections_per_ip = 1000;
	cfg->max_subscriptions = 1024;
	cfg->max_actions_per_second = 50;
	cfg->max_output_buffer = 1024 * 1024;
	cfg->ping_interval_ms = 30000;
	cfg->ping_timeout_ms = 10000;
	cfg->drain_time_ms = 5000;
	cfg->log_level = MYXID_LOG_INFO;
	cfg->control_timeout_ms = 1000;
	cfg->sse = true;
	cfg->sse_keepalive_ms = 15000;
	cfg->websocket_compression = true;
	cfg->websocket_compression_min_size = 256;
	cfg->websocket_compression_level = 1;
	cfg->history_memory = 64 * 1024 * 1024;
	cfg->history_max_replay = 1000;
	cfg->presence_interval_ms = 1000;
	cfg->presence_max_users = 100;
	cfg->broker.queue_expires_ms = 60000;
	cfg->broker.heartbeat_ms = 10000;
	return cfg;
}

/* With no listen directive, listen on every address at the default port. */
static int default_listen(struct myxid_config *cfg)
{
	cfg->listens = calloc(1, sizeof *cfg->listens);
	if (cfg->listens == NULL)
		return -1;
	cfg->n_listens = 1;
	cfg->listens[0].pos.file = cfg->path;
	cfg->listens[0].port = strdup(DEFAULT_PORT);
	return cfg->listens[0].port ? 0 : -1;
}

/* listen_tls needs a certificate and key, and they need a listen_tls. */
static int check_tls(struct loader *ld)
{
	const struct myxid_config *cfg = ld->cfg;
	bool any = false;

	for (size_t i = 0; i < cfg->n_listens; i++)
		any |= cfg->listens[i].tls;
	if (any && (cfg->ssl_certificate == NULL || cfg->ssl_certificate_key == NULL)) {
		conf_err(ld->err, ld->err_size, cfg->path, 0,
			 "listen_tls needs ssl_certificate and ssl_certificate_key");
		return -1;
	}
	return 0;
}

int config_load(const char *path, struct myxid_config **cfg_r,
		char *err, size_t err_size)
{
	struct loader ld = { NULL, err, err_size };
	struct conf_tree *tree;
	int rc;

	*cfg_r = NULL;
	if (conf_parse_file(path, &tree, err, err_size))
		return -1;
	ld.cfg = config_new(path);
	if (ld.cfg == NULL) {
		conf_tree_free(&tree);
		conf_err(err, err_size, path, 0, "out of memory");
		return -1;
	}
	rc = apply_block(&ld, &tree->root, top_cmds, ld.cfg);
	if (rc == 0 && ld.cfg->n_listens == 0 && default_listen(ld.cfg))
		rc = oom(&ld, NULL);
	if (rc == 0)
		rc = check_tls(&ld);
	if (rc == 0 && ld.cfg->broker.queue_prefix == NULL &&
	    conf_replace(&ld.cfg->broker.queue_prefix, "myxid"))
		rc = oom(&ld, NULL);
	conf_tree_free(&tree);
	if (rc)
		config_free(&ld.cfg);
	*cfg_r = ld.cfg;
	return rc;
}

static void free_plugin(struct conf_plugin *p)
{
	free(p->name);
	free(p->opts);
}

void config_free(struct myxid_config **cfg_p)
{
	struct myxid_config *cfg = cfg_p ? *cfg_p : NULL;
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < cfg->n_listens; i++) {
		free(cfg->listens[i].host);
		free(cfg->listens[i].port);
	}
	for (i = 0; i < cfg->n_auths; i++)
		free_plugin(&cfg->auths[i]);
	for (i = 0; i < cfg->n_exchanges; i++) {
		free(cfg->exchanges[i].name);
		free(cfg->exchanges[i].history.epoch);
		free_plugin(&cfg->exchanges[i].policy);
	}
	for (i = 0; i < cfg->n_strings; i++)
		free(cfg->strings[i]);
	free(cfg->listens);
	free(cfg->auths);
	free(cfg->exchanges);
	free(cfg->strings);
	for (i = 0; i < cfg->broker.n_urls; i++)
		free(cfg->broker.urls[i]);
	free(cfg->broker.urls);
	free(cfg->broker.queue_prefix);
	for (i = 0; i < cfg->allow_origins.n; i++)
		free(cfg->allow_origins.v[i]);
	free(cfg->allow_origins.v);
	for (i = 0; i < cfg->trusted_proxies.n; i++)
		free(cfg->trusted_proxies.v[i]);
	free(cfg->trusted_proxies.v);
	for (i = 0; i < cfg->plugin_headers.n; i++)
		free(cfg->plugin_headers.v[i]);
	free(cfg->plugin_headers.v);
	free(cfg->ssl_certificate);
	free(cfg->ssl_certificate_key);
	free(cfg->user);
	free(cfg->syslog_address);
	free(cfg->plugin_dir);
	free(cfg->static_dir);
	free(cfg->sse_path);
	free(cfg->sse_token_cookie);
	free(cfg->client_js);
	free(cfg->publish_key);
	free(cfg->control_key);
	free(cfg->path);
	free(cfg);
	*cfg_p = NULL;
}

const struct conf_exchange *config_exchange(const struct myxid_config *cfg,
					    const char *name)
{
	size_t i;

	for (i = 0; i < cfg->n_exchanges; i++) {
		if (strcmp(cfg->exchanges[i].name, name) == 0)
			return &cfg->exchanges[i];
	}
	return NULL;
}
