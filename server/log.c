/*
 * Logging: formats one line and makes it safe to print. Once the daemon
 * runs, lines go to the logging thread (log_writer.c), so no event loop
 * ever waits for stderr or syslog; before that (startup, "myxid -t", unit
 * tests) they are written to stderr here, in a single write() so lines
 * from several threads never interleave.
 */
#include "log.h"
#include "log_writer.h"
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int log_level = MYXID_LOG_INFO;

void log_set_level(int level)
{
	log_level = level;
}

int log_set_target(int target, const char *syslog_address, char *err, size_t err_size)
{
	struct log_sink sink = {
		.syslog = target == LOG_TO_SYSLOG,
		.address = syslog_address,
	};

	return log_writer_start(&sink, err, err_size);
}

void log_shutdown(int timeout_ms)
{
	log_writer_stop(timeout_ms);
}

unsigned long long log_lines_dropped(void)
{
	return log_writer_dropped();
}

int log_get_level(void)
{
	return log_level;
}

int log_level_enabled(int level)
{
	return level >= log_level;
}

void log_vmsg(int level, const char *prefix, const char *fmt, va_list ap)
{
	char line[2048];
	size_t n, start, stamp_len;
	int r;

	if (level < log_level)
		return;
	if (level < MYXID_LOG_DEBUG || level > MYXID_LOG_ERROR)
		level = MYXID_LOG_ERROR;
	n = stamp_len = log_writer_stamp(line, sizeof(line), level);
	r = snprintf(line + n, sizeof(line) - n, "%s%s",
		     prefix ? prefix : "", prefix ? ": " : "");
	n += r > 0 ? (size_t)r : 0;
	start = n;
	r = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	if (r < 0)
		r = 0;
	n += (size_t)r < sizeof(line) - n - 1 ? (size_t)r : sizeof(line) - n - 2;
	/* Client-supplied text must not forge extra lines or terminal escapes. */
	for (size_t i = start; i < n; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c < 0x20 || c == 0x7f)
			line[i] = '?';
	}
	if (log_writer_put(level, line, n, stamp_len))
		return;
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0) {
		/* nowhere left to report it */
	}
}

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, NULL, fmt, ap);
	va_end(ap);
}
