/*
 * Checks and copies of single values, shared by the configuration file
 * (config.c) and the environment's overrides (config_env.c). Nothing here
 * knows struct myxid_config, so both can sit above it.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "conf_value.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const struct conf_unit conf_plain_units[] = { { "", 1 }, { NULL, 0 } };

/* Replace *dst with a copy of s[0..len), or with NULL for "*". */
int conf_set_host(char **dst, const char *s, size_t len)
{
	char *copy = NULL;

	if (len != 1 || s[0] != '*') {
		copy = strndup(s, len);
		if (copy == NULL)
			return -1;
	}
	free(*dst);
	*dst = copy;
	return 0;
}

int conf_replace(char **dst, const char *s)
{
	char *copy = strdup(s);

	if (copy == NULL)
		return -1;
	free(*dst);
	*dst = copy;
	return 0;
}

/*
 * Parse digits and a suffix from units (any case) into *v. No sign, no
 * spaces, no overflow.
 */
int conf_parse_number(const char *s, const struct conf_unit *units,
			unsigned long long *v)
{
	unsigned long long n = 0;
	unsigned d;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		d = (unsigned)(*s - '0');
		if (n > (ULLONG_MAX - d) / 10)
			return -1;
		n = n * 10 + d;
	}
	for (; units->suffix != NULL; units++) {
		if (strcasecmp(s, units->suffix) != 0)
			continue;
		if (n > ULLONG_MAX / units->mult)
			return -1;
		*v = n * units->mult;
		return 0;
	}
	return -1;
}

bool conf_valid_port(const char *s)
{
	unsigned long long port;

	return conf_parse_number(s, conf_plain_units, &port) == 0 &&
	       port >= 1 && port <= 65535;
}

bool conf_valid_broker_url(const char *u)
{
	return strncmp(u, "amqp://", 7) == 0 || strncmp(u, "amqps://", 8) == 0;
}
