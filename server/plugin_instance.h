/*
 * What the daemon knows of one plugin instance. plugin_host.c creates and
 * frees instances; the struct sits in a header of its own, below both the
 * loader and the requests, so that a request (plugin_req.c) can name the
 * instance holding it without including the loader that serves it.
 */
#ifndef MYXID_PLUGIN_INSTANCE_H
#define MYXID_PLUGIN_INSTANCE_H

#include <myxid/plugin.h>

struct event_base;

/* Plugins see it as opaque. */
struct myxid_instance {
	const struct myxid_plugin *desc;
	void *ctx;                  /* the plugin's own state */
	void *dl;                   /* dlopen handle, closed on free */
	char *label;                /* "auth_static" or "policy_static(deployment)" */
	struct event_base *base;
	unsigned kind;              /* MYXID_KIND_AUTH or MYXID_KIND_POLICY */
	int pending;                /* requests answered PENDING, not yet done */
};

#endif
