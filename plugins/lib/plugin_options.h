/*
 * Table-driven option parsing for the in-tree plugins, in the manner of
 * the daemon's own configuration (server/config.c) and nginx's
 * ngx_command_t: each option is one row naming its key, its type, where in
 * the plugin's struct its value goes (offsetof) and its limits. po_parse()
 * walks a plugin block's options against the table, refuses unknown keys
 * and repeats, converts every value, and blames the offending option line.
 *
 * Compiled into each plugin that uses it, with hidden visibility, like
 * plugin_util (it is not part of the installed ABI).
 *
 * STABILITY: other plugins pick this file up as it is; rows are
 * positional initialisers of struct po_option, so new members are only
 * ever appended at its end, and the meaning of an existing type or flag
 * never changes.
 *
 * Example:
 *
 *     struct opts { unsigned pool_size; unsigned timeout_ms; char *url; };
 *     static const struct po_option rows[] = {
 *         { "pool_size", PO_COUNT, offsetof(struct opts, pool_size), 1, 64,
 *           "pool_size wants a number from 1 to 64", NULL, NULL, 0 },
 *         { "timeout", PO_DURATION_MS, offsetof(struct opts, timeout_ms),
 *           1, 3600000, "timeout wants a time from 1ms to 1h", NULL, NULL, 0 },
 *         { "url", PO_STRING, offsetof(struct opts, url), 0, 0, NULL, NULL,
 *           NULL, PO_REQUIRED },
 *         PO_END
 *     };
 *     static const struct po_table table = { rows, NULL, NULL, false };
 *
 *     defaults first, then
 *     if (po_parse(&table, &o, NULL, host, opts, n_opts, err, err_size,
 *                  bad_opt_r) < 0) ...; and po_free(&table, &o) at the end.
 */
#ifndef MYXID_PLUGIN_OPTIONS_H
#define MYXID_PLUGIN_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <myxid/plugin.h>

#include "plugin_util.h"

/* What a row's value is, and the C type found at its offset. */
enum po_type {
	PO_STRING,      /* char *: a malloc'ed copy, freed by po_free(). Empty
			 * is refused ("KEY needs a value", or the row's bad
			 * message) unless PO_EMPTY_OK. */
	PO_PATH,        /* char *: the path resolved with host->resolve_path
			 * (relative to the config file); empty or too long:
			 * "KEY needs a path" or the row's bad message. */
	PO_OPT,         /* const struct myxid_opt *: the option itself, for
			 * values the plugin checks later (and blames then). */
	PO_BOOL,        /* bool: yes/true/on or no/false/off;
			 * else "KEY wants yes or no" or the bad message. */
	PO_COUNT,       /* unsigned: a decimal number from min to max. */
	PO_SIZE,        /* unsigned: like PO_COUNT, with a k or m suffix. */
	PO_DURATION_MS, /* unsigned: a time (N, Nms, Ns, Nm, Nh; bare N is
			 * seconds) in milliseconds, from min to max ms. */
	PO_SECONDS,     /* unsigned: a time as above that is a whole number
			 * of seconds, stored in seconds, from min to max s. */
	PO_ENUM,        /* unsigned: the index of the value in words[]. */
	PO_CUSTOM       /* parse(base, opt, ...) converts it; nothing at
			 * offset is touched by the parser itself. */
};

/* Row flags. */
#define PO_REQUIRED 0x1u  /* absent: "KEY is required" */
#define PO_EMPTY_OK 0x2u  /* PO_STRING: "" is a value (a blank password) */
#define PO_MULTI    0x4u  /* may be given more than once (PO_CUSTOM, PO_OPT
			   * keeps the last) */

struct po_option {
	const char *name;             /* the key; NULL ends the table */
	enum po_type type;
	size_t offset;                /* offsetof() into the parsed struct */
	unsigned long long min, max;  /* numeric types, in the stored unit */
	/* The whole message for a value that does not parse or is out of
	 * range (printed as is: no format); NULL for the default wording. */
	const char *bad;
	const char *const *words;     /* PO_ENUM: NULL-terminated */
	/* PO_CUSTOM: 0, or -1 with a message in err (the parser blames the
	 * option). base is the struct handed to po_parse(). */
	int (*parse)(void *base, const struct myxid_opt *opt, char *err,
		     size_t err_size);
	unsigned flags;
};

#define PO_END { NULL, PO_STRING, 0, 0, 0, NULL, NULL, NULL, 0 }

struct po_table {
	const struct po_option *rows; /* ends with PO_END */
	/* Appended to 'unknown option "KEY"', e.g. " (only allow)"; NULL
	 * for nothing. */
	const char *unknown_hint;
	/* Keys that another table reads (a plugin parsing in two passes):
	 * neither unknown nor converted here. NULL-terminated, or NULL. */
	const char *const *foreign;
	/* A repeated key: "KEY given twice (first on line N)" when true,
	 * "KEY given twice" when false. */
	bool twice_names_line;
};

/* The most rows a table may have. */
#define PO_MAX_ROWS 32

/*
 * Parse opts into base (whose defaults the caller has set) by table t.
 * seen_r, if not NULL, gets for each row the option that set it (NULL when
 * absent), in the table's order: at least as many entries as rows. host
 * is needed for PO_PATH rows only (may be NULL otherwise). Returns 0, or
 * -1 with a message in err and *bad_opt_r pointing at the culprit (left
 * alone for a missing PO_REQUIRED option). On failure po_free() still
 * frees what was stored.
 */
PU_HIDDEN int po_parse(const struct po_table *t, void *base,
		       const struct myxid_opt **seen_r,
		       const struct myxid_host *host,
		       const struct myxid_opt *opts, size_t n_opts,
		       char *err, size_t err_size,
		       const struct myxid_opt **bad_opt_r);

/* The option that set row `name` according to seen (from po_parse), or
 * NULL. */
PU_HIDDEN const struct myxid_opt *po_seen(const struct po_table *t,
					  const struct myxid_opt *const *seen,
					  const char *name);

/* Free the strings the table's PO_STRING and PO_PATH rows stored in base
 * and set them to NULL. Values that may be secrets are scrubbed first. */
PU_HIDDEN void po_free(const struct po_table *t, void *base);

#endif
