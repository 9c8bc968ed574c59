/*
 * Checks and copies of single configuration values: numbers with unit
 * suffixes, ports, broker URLs, owned strings. Used by config.c (the file)
 * and config_env.c (the environment); no configuration struct in sight.
 */
#ifndef MYXID_CONF_VALUE_H
#define MYXID_CONF_VALUE_H

#include <stdbool.h>
#include <stddef.h>

/* A suffix and what it multiplies by; a table ends with a NULL suffix. */
struct conf_unit {
	const char *suffix;
	unsigned long long mult;
};

/* Bare numbers, no suffix. */
extern const struct conf_unit conf_plain_units[];

/* Digits and a suffix from units (any case) into *v: 0, or -1 (no sign,
 * no spaces, no overflow). */
int conf_parse_number(const char *s, const struct conf_unit *units,
		      unsigned long long *v);

/* A port number from 1 to 65535. */
bool conf_valid_port(const char *s);

/* amqp:// or amqps://. */
bool conf_valid_broker_url(const char *u);

/* Replace *dst with a copy of s[0..len), or with NULL for "*": 0, or -1
 * out of memory (*dst unchanged). */
int conf_set_host(char **dst, const char *s, size_t len);

/* Replace *dst with a copy of s: 0, or -1 out of memory. */
int conf_replace(char **dst, const char *s);

#endif
