/*
 * The process: the configuration as loaded at start, the worker threads,
 * the broker link they share, signals (SIGTERM drains, SIGHUP reloads all
 * workers or none), privilege dropping and service-manager notification.
 */
#ifndef MYXID_DAEMON_H
#define MYXID_DAEMON_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Run myxid with the configuration at config_path. test_only: load and
 * check everything (plugins included), print the verdict, and return.
 * Returns the process exit status.
 */
int daemon_main(const char *config_path, const char *plugin_dir_arg,
		bool debug, bool test_only);

#endif
