/*
 * Who may connect: the Origin allowlist (browsers send Origin, so a page on
 * another site cannot open sockets with a user's cookies) and the trusted
 * proxies whose X-Forwarded-For names the real client.
 */
#ifndef MYXID_ACCESS_RULES_H
#define MYXID_ACCESS_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct conf_strlist;

/*
 * Does origin (len bytes, as sent) match one of the patterns? A pattern is
 * "scheme://host[:port]" where a star matches any run of characters except
 * a slash: "https://" followed by "*.example.com" matches every subdomain.
 * An empty list allows every origin.
 */
bool origin_allowed(const struct conf_strlist *patterns, const char *origin,
		    size_t len);

/* Is the address sa inside one of the CIDRs ("10.0.0.0/8", "::1")? */
bool address_trusted(const struct conf_strlist *cidrs, const struct sockaddr *sa);

/*
 * The client's address from an X-Forwarded-For value written by trusted
 * proxies: the rightmost entry that is not itself a trusted proxy. Writes
 * it into out and returns true, or false if the header holds nothing usable.
 */
bool forwarded_client(const struct conf_strlist *cidrs, const char *xff,
		      size_t len, char *out, size_t out_size);

#endif
