/*
 * Plugin loading and the host-services table; see plugin_host.h and the
 * contract in include/myxid/plugin.h.
 */
#include "plugin_host.h"
#include "config.h"
#include "log.h"
#include "plugin_req.h"
#include "util.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>

struct myxid_watch {
	struct event_base *base;
	struct event *ev;
	int fd;
	void (*cb)(int fd, unsigned ready, void *arg);
	void *arg;
};

struct myxid_timer {
	struct event *ev;
	void (*cb)(void *arg);
	void *arg;
};

struct posted {
	void (*cb)(void *arg);
	void *arg;
};

/* ------------------------------------------------------------ services */

static void host_log(struct myxid_instance *inst, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, inst ? inst->label : "plugin", fmt, ap);
	va_end(ap);
}

static void watch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct myxid_watch *w = arg;
	unsigned ready = 0;

	if (what & EV_READ)
		ready |= MYXID_WATCH_READ;
	if (what & EV_WRITE)
		ready |= MYXID_WATCH_WRITE;
	w->cb(w->fd, ready, w->arg);
}

static int host_watch_set(struct myxid_watch *w, unsigned events)
{
	short what = EV_PERSIST;

	if (w->ev != NULL) {
		event_free(w->ev);
		w->ev = NULL;
	}
	if (events == 0)
		return 0;
	if (events & MYXID_WATCH_READ)
		what |= EV_READ;
	if (events & MYXID_WATCH_WRITE)
		what |= EV_WRITE;
	w->ev = event_new(w->base, w->fd, what, watch_cb, w);
	if (w->ev == NULL || event_add(w->ev, NULL) != 0)
		return -1;
	return 0;
}

static struct myxid_watch *host_watch_new(struct myxid_instance *inst, int fd,
					  unsigned events,
					  void (*cb)(int, unsigned, void *),
					  void *arg)
{
	struct myxid_watch *w = xcalloc(1, sizeof(*w));

	w->base = inst->base;
	w->fd = fd;
	w->cb = cb;
	w->arg = arg;
	if (host_watch_set(w, events) != 0) {
		if (w->ev)
			event_free(w->ev);
		free(w);
		return NULL;
	}
	return w;
}

static void host_watch_free(struct myxid_watch **wp)
{
	if (*wp == NULL)
		return;
	if ((*wp)->ev != NULL)
		event_free((*wp)->ev);
	free(*wp);
	*wp = NULL;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct myxid_timer *t = arg;

	t->cb(t->arg);
}

static struct myxid_timer *host_timer_new(struct myxid_instance *inst,
					  void (*cb)(void *), void *arg)
{
	struct myxid_timer *t = xcalloc(1, sizeof(*t));

	t->cb = cb;
	t->arg = arg;
	t->ev = evtimer_new(inst->base, timer_cb, t);
	if (t->ev == NULL) {
		free(t);
		return NULL;
	}
	return t;
}

static void host_timer_start(struct myxid_timer *t, unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(t->ev, &tv);
}

static void host_timer_stop(struct myxid_timer *t)
{
	evtimer_del(t->ev);
}

static void host_timer_free(struct myxid_timer **tp)
{
	if (*tp == NULL)
		return;
	event_free((*tp)->ev);
	free(*tp);
	*tp = NULL;
}

static void posted_cb(evutil_socket_t fd, short what, void *arg)
{
	struct posted *p = arg;
	void (*cb)(void *) = p->cb;
	void *cb_arg = p->arg;

	free(p);
	cb(cb_arg);
}

static int host_post(struct myxid_instance *inst, void (*cb)(void *), void *arg)
{
	/* event_base_once is thread-safe because main() enables libevent's
	 * pthread locking before any base exists. */
	struct posted *p = malloc(sizeof(*p));
	struct timeval zero = { 0, 0 };

	if (p == NULL)
		return -1;
	p->cb = cb;
	p->arg = arg;
	if (event_base_once(inst->base, -1, EV_TIMEOUT, posted_cb, p, &zero) != 0) {
		free(p);
		return -1;
	}
	return 0;
}

static int host_resolve_path(const struct myxid_opt *opt, const char *path,
			     char *out, size_t out_size)
{
	const char *file = opt && opt->file ? opt->file : "";
	const char *slash = strrchr(file, '/');
	int n;

	if (path[0] == '/' || slash == NULL)
		n = snprintf(out, out_size, "%s", path);
	else
		n = snprintf(out, out_size, "%.*s/%s", (int)(slash - file), file, path);
	return n < 0 || (size_t)n >= out_size ? -1 : 0;
}

static unsigned host_instance_kind(const struct myxid_instance *inst)
{
	return inst->kind;
}

const struct myxid_host plugin_host_services = {
	.abi_major = MYXID_PLUGIN_ABI_MAJOR,
	.abi_minor = MYXID_PLUGIN_ABI_MINOR,
	.size = sizeof(struct myxid_host),
	.log = host_log,
	.req_get = plugin_req_get,
	.req_set_user = plugin_req_set_user,
	.req_add_attr = plugin_req_add_attr,
	.req_done = plugin_req_done,
	.watch_new = host_watch_new,
	.watch_set = host_watch_set,
	.watch_free = host_watch_free,
	.timer_new = host_timer_new,
	.timer_start = host_timer_start,
	.timer_stop = host_timer_stop,
	.timer_free = host_timer_free,
	.post = host_post,
	.resolve_path = host_resolve_path,
	.instance_kind = host_instance_kind,
	.req_set_expiry = plugin_req_set_expiry,
};

/* -------------------------------------------------------------- loading */

static const char *kind_name(unsigned kind)
{
	return kind == MYXID_KIND_AUTH ? "auth" : "policy";
}

/* Where is the shared object for name? Writes the path; 0 or -1. */
static int find_plugin(const char *plugin_dir, const char *name, unsigned kind,
		       char *path, size_t size)
{
	if (strchr(name, '/') != NULL) {
		snprintf(path, size, "%s", name);
		return 0;
	}
	snprintf(path, size, "%s/%s.so", plugin_dir, name);
	if (access(path, R_OK) == 0)
		return 0;
	snprintf(path, size, "%s/%s_%s.so", plugin_dir, kind_name(kind), name);
	if (access(path, R_OK) == 0)
		return 0;
	return -1;
}

/* Check what the descriptor promises before trusting any other field. */
static const char *check_descriptor(const struct myxid_plugin *d, unsigned kind,
				    char *buf, size_t size)
{
	if (d->abi_major != MYXID_PLUGIN_ABI_MAJOR ||
	    d->abi_minor > MYXID_PLUGIN_ABI_MINOR) {
		snprintf(buf, size, "built for plugin ABI %u.%u, but this myxid "
			 "provides %u.%u", d->abi_major, d->abi_minor,
			 MYXID_PLUGIN_ABI_MAJOR, MYXID_PLUGIN_ABI_MINOR);
		return buf;
	}
	if (d->size < offsetof(struct myxid_plugin, reserved))
		return "descriptor is truncated (wrong size field)";
	if ((d->kinds & kind) == 0) {
		snprintf(buf, size, "is not a%s %s plugin",
			 kind == MYXID_KIND_AUTH ? "n" : "", kind_name(kind));
		return buf;
	}
	if (d->init == NULL || d->deinit == NULL ||
	    (kind == MYXID_KIND_AUTH && d->auth == NULL) ||
	    (kind == MYXID_KIND_POLICY && d->policy == NULL))
		return "descriptor lacks a required function";
	return NULL;
}

struct myxid_instance *plugin_instance_new(struct event_base *base,
					   const char *plugin_dir,
					   const struct conf_plugin *cp,
					   unsigned kind,
					   const char *label_suffix,
					   char *err, size_t err_size)
{
	char path[4096], why_buf[256], perr[512] = "";
	const char *why;
	const struct myxid_opt *bad = NULL;
	struct myxid_instance *inst;
	const struct myxid_plugin *d;
	void *dl;
	size_t label_len;

	if (find_plugin(plugin_dir, cp->name, kind, path, sizeof(path)) != 0) {
		snprintf(err, err_size, "%s:%u: %s plugin '%s' not found in %s "
			 "(tried %s.so and %s_%s.so)", cp->pos.file, cp->pos.line,
			 kind_name(kind), cp->name, plugin_dir, cp->name,
			 kind_name(kind), cp->name);
		return NULL;
	}
	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (dl == NULL) {
		snprintf(err, err_size, "%s:%u: cannot load %s: %s", cp->pos.file,
			 cp->pos.line, path, dlerror());
		return NULL;
	}
	d = dlsym(dl, MYXID_PLUGIN_SYMBOL);
	why = d == NULL ? "is not a myxid plugin (no " MYXID_PLUGIN_SYMBOL ")" :
		check_descriptor(d, kind, why_buf, sizeof(why_buf));
	if (why != NULL) {
		snprintf(err, err_size, "%s:%u: %s %s", cp->pos.file, cp->pos.line,
			 path, why);
		dlclose(dl);
		return NULL;
	}

	inst = xcalloc(1, sizeof(*inst));
	inst->desc = d;
	inst->dl = dl;
	inst->base = base;
	inst->kind = kind;
	label_len = strlen(d->name) + (label_suffix ? strlen(label_suffix) + 2 : 0) + 1;
	inst->label = xmalloc(label_len);
	snprintf(inst->label, label_len, label_suffix ? "%s(%s)" : "%s", d->name,
		 label_suffix ? label_suffix : "");
	if (d->init(&plugin_host_services, inst, cp->opts, cp->n_opts, &inst->ctx,
		    perr, sizeof(perr), &bad) != 0) {
		snprintf(err, err_size, "%s:%u: %s: %s",
			 bad ? bad->file : cp->pos.file,
			 bad ? bad->line : cp->pos.line, inst->label,
			 perr[0] ? perr : "initialisation failed");
		free(inst->label);
		free(inst);
		dlclose(dl);
		return NULL;
	}
	log_debug("%s: loaded %s (version %s)", inst->label, path,
		  d->version ? d->version : "?");
	return inst;
}

void plugin_instance_free(struct myxid_instance **ip)
{
	struct myxid_instance *inst = *ip;

	if (inst == NULL)
		return;
	inst->desc->deinit(inst->ctx);
	dlclose(inst->dl);
	free(inst->label);
	free(inst);
	*ip = NULL;
}
