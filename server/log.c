/*
 * Logging: formats one line, makes it safe to print, and writes it to
 * stderr in a single write() so lines from several threads never interleave.
 */
#include "log.h"
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static int log_level = MYXID_LOG_INFO;
static int to_syslog;

static const char *const level_names[] = {
	"debug", "info", "notice", "warning", "error"
};

void log_set_level(int level)
{
	log_level = level;
}

int log_set_target(int target)
{
	if (target == LOG_TO_SYSLOG && !to_syslog) {
		openlog("myxid", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		to_syslog = 1;
	} else if (target != LOG_TO_SYSLOG && to_syslog) {
		closelog();
		to_syslog = 0;
	}
	return 0;
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
	struct timespec ts;
	struct tm tm;
	size_t n, start, stamp_len;
	int r;

	if (level < log_level)
		return;
	if (level < MYXID_LOG_DEBUG || level > MYXID_LOG_ERROR)
		level = MYXID_LOG_ERROR;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s: ",
		     ts.tv_nsec / 1000000, level_names[level]);
	n += r > 0 ? (size_t)r : 0;
	stamp_len = n;
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
	if (to_syslog) {
		static const int prio[] = {
			LOG_DEBUG, LOG_INFO, LOG_NOTICE, LOG_WARNING, LOG_ERR
		};
		line[n] = '\0';
		/* syslog stamps time and level itself: skip ours. */
		syslog(prio[level], "%s", line + stamp_len);
		return;
	}
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
