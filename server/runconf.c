/*
 * Running configurations; see runconf.h.
 */
#include "runconf.h"
#include "answer_cache.h"
#include "config.h"
#include "plugin_host.h"
#include "util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Entries per cache: bounded memory whatever the clients do. */
#define CACHE_MAX_ENTRIES 100000

/*
 * The runconfs built for one epoch (the start, then each reload) share
 * their caches, so every event loop benefits from an answer any of them
 * got; a new epoch starts empty, which is how a reload flushes them.
 */
static pthread_mutex_t epoch_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned epoch, cached_epoch = (unsigned)-1;
static struct answer_cache *epoch_auth, *epoch_policy;

void runconf_new_epoch(void)
{
	pthread_mutex_lock(&epoch_lock);
	epoch++;
	pthread_mutex_unlock(&epoch_lock);
}

static void shared_caches(struct runconf *rc)
{
	pthread_mutex_lock(&epoch_lock);
	if (cached_epoch != epoch) {
		answer_cache_free(&epoch_auth);
		answer_cache_free(&epoch_policy);
		epoch_auth = answer_cache_new(rc->cfg->auth_cache_ms, CACHE_MAX_ENTRIES);
		epoch_policy = answer_cache_new(rc->cfg->policy_cache_ms, CACHE_MAX_ENTRIES);
		cached_epoch = epoch;
	}
	rc->auth_cache = answer_cache_ref(epoch_auth);
	rc->policy_cache = answer_cache_ref(epoch_policy);
	pthread_mutex_unlock(&epoch_lock);
}

struct runconf *runconf_new(struct event_base *base, struct myxid_config *cfg,
			    const char *plugin_dir, char *err, size_t err_size)
{
	struct runconf *rc = xcalloc(1, sizeof(*rc));

	rc->refs = 1;
	rc->cfg = cfg;
	shared_caches(rc);
	rc->auths = xcalloc(cfg->n_auths, sizeof(*rc->auths));
	for (size_t i = 0; i < cfg->n_auths; i++) {
		rc->auths[i] = plugin_instance_new(base, plugin_dir, &cfg->auths[i],
						   MYXID_KIND_AUTH, NULL,
						   err, err_size);
		if (rc->auths[i] == NULL)
			goto fail;
		rc->n_auths++;
	}
	rc->exchanges = xcalloc(cfg->n_exchanges, sizeof(*rc->exchanges));
	for (size_t i = 0; i < cfg->n_exchanges; i++) {
		struct exchange_rt *ex = &rc->exchanges[i];
		ex->conf = &cfg->exchanges[i];
		ex->policy = plugin_instance_new(base, plugin_dir, &ex->conf->policy,
						 MYXID_KIND_POLICY, ex->conf->name,
						 err, err_size);
		if (ex->policy == NULL)
			goto fail;
		rc->n_exchanges++;
	}
	return rc;
fail:
	runconf_unref(&rc);
	return NULL;
}

struct runconf *runconf_ref(struct runconf *rc)
{
	rc->refs++;
	return rc;
}

void runconf_unref(struct runconf **rcp)
{
	struct runconf *rc = *rcp;

	*rcp = NULL;
	if (rc == NULL || --rc->refs > 0)
		return;
	for (size_t i = 0; i < rc->n_auths; i++)
		plugin_instance_free(&rc->auths[i]);
	free(rc->auths);
	for (size_t i = 0; i < rc->n_exchanges; i++)
		plugin_instance_free(&rc->exchanges[i].policy);
	free(rc->exchanges);
	answer_cache_free(&rc->auth_cache);
	answer_cache_free(&rc->policy_cache);
	config_free(&rc->cfg);
	free(rc);
}

struct exchange_rt *runconf_exchange(const struct runconf *rc, const char *name)
{
	for (size_t i = 0; i < rc->n_exchanges; i++)
		if (strcmp(rc->exchanges[i].conf->name, name) == 0)
			return &rc->exchanges[i];
	return NULL;
}
