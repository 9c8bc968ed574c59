/*
 * Logging for the daemon: one line per event on stderr or syslog, with a
 * level. No call blocks on I/O once the daemon runs (log_writer.h): a line
 * that cannot be written in time is dropped and counted.
 * Messages are sanitised (control characters become '?') because they often
 * quote client input, and a log line must stay one line.
 */
#ifndef MYXID_LOG_H
#define MYXID_LOG_H

#include <stdarg.h>
#include <myxid/plugin.h>   /* enum myxid_log_level */

void log_set_level(int level);

/* Starts the logging thread and points it at target (enum log_target,
 * config.h): stderr, or syslog (facility daemon) at syslog_address (NULL:
 * /dev/log; a unix datagram socket path; or host:port, UDP). Until then
 * lines are written to stderr directly. Returns 0, or -1 with a message. */
int log_set_target(int target, const char *syslog_address, char *err, size_t err_size);

/* Writes what is queued for at most timeout_ms and stops the thread. */
void log_shutdown(int timeout_ms);

/* Lines dropped because the log target did not keep up (/metrics). */
unsigned long long log_lines_dropped(void);
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
