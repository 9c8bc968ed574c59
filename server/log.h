/*
 * Logging for the daemon: one line per event on stderr, with a level.
 * Messages are sanitised (control characters become '?') because they often
 * quote client input, and a log line must stay one line.
 */
#ifndef MYXID_LOG_H
#define MYXID_LOG_H

#include <stdarg.h>
#include <myxid/plugin.h>   /* enum myxid_log_level */

void log_set_level(int level);

/* enum log_target (config.h): stderr, or syslog (facility daemon).
 * Returns 0, or -1 if the target cannot be used. */
int log_set_target(int target);
int log_get_level(void);
int log_level_enabled(int level);

void log_msg(int level, const char *fmt, ...) MYXID_PRINTF(2, 3);
void log_vmsg(int level, const char *prefix, const char *fmt, va_list ap);

#define log_debug(...)  log_msg(MYXID_LOG_DEBUG, __VA_ARGS__)
#define log_info(...)   log_msg(MYXID_LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_msg(MYXID_LOG_NOTICE, __VA_ARGS__)
#define log_warn(...)   log_msg(MYXID_LOG_WARNING, __VA_ARGS__)
#define log_error(...)  log_msg(MYXID_LOG_ERROR, __VA_ARGS__)

#endif
