/*
 * The running configuration: a loaded config file together with the
 * plugin instances built from it. A reload builds a new one and swaps it
 * in; the old one lives on, reference-counted, until the last plugin
 * request that started under it has finished, so no request ever sees its
 * plugin unloaded under it.
 */
#ifndef MYXID_RUNCONF_H
#define MYXID_RUNCONF_H

#include <stddef.h>

struct event_base;
struct myxid_config;
struct conf_exchange;
struct myxid_instance;
struct answer_cache;
struct history_log;

/* A configured exchange with its policy instance. */
struct exchange_rt {
	const struct conf_exchange *conf;
	struct myxid_instance *policy;
	struct history_log *history;       /* found by worker_history() */
};

struct runconf {
	int refs;                          /* loop thread only */
	struct myxid_config *cfg;          /* owned */
	struct myxid_instance **auths;     /* the auth chain, in order */
	size_t n_auths;
	struct exchange_rt *exchanges;
	size_t n_exchanges;
	struct answer_cache *auth_cache;   /* flushed by a reload: per runconf */
	struct answer_cache *policy_cache;
};

/*
 * Load the plugins cfg names (from plugin_dir) on base. Takes ownership of
 * cfg, also on failure. Returns the runconf with one reference, or NULL
 * with "file:line: problem" in err.
 */
struct runconf *runconf_new(struct event_base *base, struct myxid_config *cfg,
			    const char *plugin_dir, char *err, size_t err_size);

struct runconf *runconf_ref(struct runconf *rc);

/* The next runconfs start with empty answer caches (a reload). */
void runconf_new_epoch(void);

/* Drop a reference; the last one unloads the plugins. *rcp becomes NULL. */
void runconf_unref(struct runconf **rcp);

/* The exchange called name, or NULL. */
struct exchange_rt *runconf_exchange(const struct runconf *rc, const char *name);

#endif
