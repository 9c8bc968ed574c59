/*
 * The logging thread: the only place that writes log lines to stderr or to
 * syslog. log.c hands it finished lines through a bounded queue, so an
 * event loop never waits for a slow journald, a full /dev/log queue or a
 * stderr pipe nobody drains (nginx sends syslog on a non-blocking socket
 * and drops what does not fit, for the same reason). A line that finds the
 * queue full is dropped and counted; the next line that gets written is
 * preceded by one saying how many were dropped.
 */
#ifndef MYXID_LOG_WRITER_H
#define MYXID_LOG_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where lines go. For syslog, address is NULL or "" (/dev/log), an
 * absolute path of a unix datagram socket, or HOST:PORT / [V6]:PORT (UDP,
 * resolved here, at startup). */
struct log_sink {
	bool syslog;
	const char *address;
};

/* Starts the thread (or points the running one at a new sink). Until it
 * runs, log.c writes stderr itself (startup, "myxid -t", tests). Returns 0,
 * or -1 with a message in err (the sink cannot be used). */
int log_writer_start(const struct log_sink *sink, char *err, size_t err_size);

/* Queues one line (no newline; level is enum myxid_log_level; its first
 * stamp_len bytes are the time and level, which syslog adds itself). Never
 * blocks on I/O. false when the writer was never started (the caller then
 * writes stderr itself: nothing runs yet that could be held up). */
bool log_writer_put(int level, const char *line, size_t len, size_t stamp_len);

/* Writes "2026-12-04T22:47:13.123Z level: " into buf; returns its length. */
size_t log_writer_stamp(char *buf, size_t size, int level);

/* Writes what is queued for at most timeout_ms, then stops the thread
 * (or leaves it behind if it is stuck in a write: the process is exiting). */
void log_writer_stop(int timeout_ms);

/* Lines dropped because the queue was full, since start. */
uint64_t log_writer_dropped(void);

#endif
