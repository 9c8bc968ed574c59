/*
 * Origin allowlist and trusted proxies; see access_rules.h.
 */
#include "access_rules.h"
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>

/* Glob with '*' not crossing '/'; case-insensitive as hosts are. */
static bool glob_match(const char *p, const char *s, size_t len)
{
	const char *star = NULL, *resume = NULL, *end = s + len;

	while (s < end) {
		if (*p == '*') {
			star = p++;
			resume = s;
		} else if (*p != '\0' && (*p | 0x20) == (*s | 0x20)) {
			p++;
			s++;
		} else if (star != NULL && *resume != '/') {
			p = star + 1;
			s = ++resume;
		} else {
			return false;
		}
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}

bool origin_allowed(const struct conf_strlist *patterns, const char *origin,
		    size_t len)
{
	if (patterns->n == 0)
		return true;
	for (size_t i = 0; i < patterns->n; i++)
		if (glob_match(patterns->v[i], origin, len))
			return true;
	return false;
}

/* Parse "addr[/bits]" into family, 16 address bytes and a prefix length. */
static bool parse_cidr(const char *s, int *family, unsigned char addr[16],
		       int *bits)
{
	char buf[64];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);

	if (alen >= sizeof(buf))
		return false;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	*family = strchr(buf, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(*family, buf, addr) != 1)
		return false;
	*bits = slash ? atoi(slash + 1) : (*family == AF_INET6 ? 128 : 32);
	return true;
}

static bool prefix_equal(const unsigned char *a, const unsigned char *b, int bits)
{
	int bytes = bits / 8, rest = bits % 8;

	if (memcmp(a, b, (size_t)bytes) != 0)
		return false;
	return rest == 0 ||
		((a[bytes] ^ b[bytes]) & (unsigned char)(0xff << (8 - rest))) == 0;
}

static bool in_cidrs(const struct conf_strlist *cidrs, int family,
		     const unsigned char *addr)
{
	for (size_t i = 0; i < cidrs->n; i++) {
		unsigned char net[16];
		int f, bits;
		if (parse_cidr(cidrs->v[i], &f, net, &bits) && f == family &&
		    prefix_equal(addr, net, bits))
			return true;
	}
	return false;
}

bool address_trusted(const struct conf_strlist *cidrs, const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return in_cidrs(cidrs, AF_INET,
				(const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr);
	if (sa->sa_family == AF_INET6)
		return in_cidrs(cidrs, AF_INET6,
				(const unsigned char *)&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return false;
}

bool forwarded_client(const struct conf_strlist *cidrs, const char *xff,
		      size_t len, char *out, size_t out_size)
{
	/* Walk from the right: entries added by our own proxies come last. */
	while (len > 0) {
		size_t end = len, start;
		unsigned char addr[16];
		char ip[64];
		int family;

		while (end > 0 && (xff[end - 1] == ' ' || xff[end - 1] == '\t'))
			end--;
		start = end;
		while (start > 0 && xff[start - 1] != ',')
			start--;
		len = start > 0 ? start - 1 : 0;
		while (start < end && (xff[start] == ' ' || xff[start] == '\t'))
			start++;
		if (end - start == 0 || end - start >= sizeof(ip))
			return false;
		memcpy(ip, xff + start, end - start);
		ip[end - start] = '\0';
		family = strchr(ip, ':') ? AF_INET6 : AF_INET;
		if (inet_pton(family, ip, addr) != 1)
			return false;      /* garbage: trust nothing further left */
		if (!in_cidrs(cidrs, family, addr)) {
			snprintf(out, out_size, "%s", ip);
			return true;
		}
	}
	return false;
}
