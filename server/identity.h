/*
 * Who a client is after a successful Authenticate: a user id, an optional
 * user type and the attributes the auth plugin attached. Built by an auth
 * request, owned by the session, copied into and out of the answer cache.
 */
#ifndef MYXID_IDENTITY_H
#define MYXID_IDENTITY_H

#include <stddef.h>

struct identity_attr {
	char *key;
	char *value;
};

struct identity {
	char *user_id;
	char *user_type;                /* may be NULL */
	struct identity_attr *attrs;
	size_t n_attrs;
	long long expires_at;           /* Unix seconds the credential ends
					 * (req_set_expiry); 0: it does not */
};

/* Free *id and everything it holds; *id becomes NULL. NULL is fine. */
void identity_free(struct identity **id);

/* A deep copy (the caller owns it). */
struct identity *identity_copy(const struct identity *id);

/* The value of attribute key, or NULL (also for a NULL identity). */
const char *identity_attr(const struct identity *id, const char *key);

#endif
