/*
 * Loading plugins and serving them: dlopen() with the ABI check, one
 * instance per configured block and event loop, and the host-services table
 * of include/myxid/plugin.h.
 */
#ifndef MYXID_PLUGIN_HOST_H
#define MYXID_PLUGIN_HOST_H

#include <stddef.h>
#include <myxid/plugin.h>
#include "plugin_instance.h"

struct event_base;
struct conf_plugin;

/*
 * Find the shared object for block cp of the given kind (MYXID_KIND_AUTH or
 * MYXID_KIND_POLICY), load it, check it, and run its init with the block's
 * options. plugin_dir is where relative names are looked up: NAME.so first,
 * then "auth_NAME.so" / "policy_NAME.so"; a name with a '/' is a path.
 * label_suffix (may be NULL) is appended to the log label. Returns the
 * instance, or NULL with "file:line: problem" in err.
 */
struct myxid_instance *plugin_instance_new(struct event_base *base,
					   const char *plugin_dir,
					   const struct conf_plugin *cp,
					   unsigned kind,
					   const char *label_suffix,
					   char *err, size_t err_size);

/* deinit and unload; *inst becomes NULL. */
void plugin_instance_free(struct myxid_instance **inst);

/* The host-services table given to every plugin. */
extern const struct myxid_host plugin_host_services;

#endif
