/*
 * The process: the configuration as loaded at start, the worker threads,
 * the broker link they share, signals (SIGTERM drains, SIGHUP reloads all
 * workers or none), privilege dropping and service-manager notification.
 */
#ifndef MYXID_DAEMON_H
#define MYXID_DAEMON_H

#include <stdbool.h>
#include <stddef.h>

struct daemon;
struct worker;

/*
 * Run myxid with the configuration at config_path. test_only: load and
 * check everything (plugins included), print the verdict, and return.
 * Returns the process exit status.
 */
int daemon_main(const char *config_path, const char *plugin_dir_arg,
		bool debug, bool test_only);

struct shared_frame;

/*
 * Deliver f to the subscribers of every worker; then, on origin's thread,
 * call done(arg, total deliveries). f gets a reference per worker.
 */
void daemon_fanout(struct worker *origin, const char *exchange,
		   const char *routing_key, struct shared_frame *f,
		   void (*done)(void *arg, size_t delivered), void *arg);

/* Called on a worker's thread as its loop ends. */
void daemon_worker_stopped(struct daemon *d, struct worker *w);

#endif
