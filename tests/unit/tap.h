/*
 * A minimal TAP producer for the unit tests, run by automake's tap-driver.
 * Each ok()/is_int()/is_str() is one test point; done_testing() prints the
 * plan and returns the exit status (non-zero if anything failed).
 */
#ifndef MYXID_TAP_H
#define MYXID_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

#define ok(cond, ...) tap_ok_(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...) tap_is_int_((long long)(got), (long long)(want), __FILE__, __LINE__, __VA_ARGS__)
#define is_str(got, want, ...) tap_is_str_((got), (want), __FILE__, __LINE__, __VA_ARGS__)

/* Print one test point; detail (may be NULL) explains a failure. */
static int __attribute__((unused))
tap_point_(int pass, const char *file, int line, const char *detail,
	   const char *fmt, va_list ap)
{
	tap_n++;
	printf("%sok %d - ", pass ? "" : "not ", tap_n);
	vprintf(fmt, ap);
	printf("\n");
	if (!pass) {
		tap_failed++;
		printf("#   failed at %s:%d%s%s\n", file, line,
		       detail ? ": " : "", detail ? detail : "");
	}
	fflush(stdout);
	return pass;
}

static int __attribute__((format(printf, 4, 5), unused))
tap_ok_(int pass, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pass = tap_point_(pass, file, line, NULL, fmt, ap);
	va_end(ap);
	return pass;
}

static int __attribute__((format(printf, 5, 6), unused))
tap_is_int_(long long got, long long want, const char *file, int line, const char *fmt, ...)
{
	char detail[96];
	va_list ap;
	int pass;

	snprintf(detail, sizeof(detail), "got %lld, want %lld", got, want);
	va_start(ap, fmt);
	pass = tap_point_(got == want, file, line, detail, fmt, ap);
	va_end(ap);
	return pass;
}

static int __attribute__((format(printf, 5, 6), unused))
tap_is_str_(const char *got, const char *want, const char *file, int line, const char *fmt, ...)
{
	char detail[1024];
	va_list ap;
	int pass = (got == NULL && want == NULL) ||
		(got != NULL && want != NULL && strcmp(got, want) == 0);

	snprintf(detail, sizeof(detail), "got \"%s\", want \"%s\"",
		 got ? got : "(null)", want ? want : "(null)");
	va_start(ap, fmt);
	pass = tap_point_(pass, file, line, detail, fmt, ap);
	va_end(ap);
	return pass;
}

static int __attribute__((unused))
done_testing(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
