/*
 * The identity of an authenticated client; see identity.h.
 */
#include "identity.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

void identity_free(struct identity **idp)
{
	struct identity *id = *idp;

	if (id == NULL)
		return;
	for (size_t i = 0; i < id->n_attrs; i++) {
		free(id->attrs[i].key);
		free(id->attrs[i].value);
	}
	free(id->attrs);
	free(id->user_id);
	free(id->user_type);
	free(id);
	*idp = NULL;
}

struct identity *identity_copy(const struct identity *id)
{
	struct identity *c = xcalloc(1, sizeof(*c));

	c->user_id = xstrdup(id->user_id);
	c->user_type = id->user_type ? xstrdup(id->user_type) : NULL;
	c->attrs = xcalloc(id->n_attrs, sizeof(*c->attrs));
	for (size_t i = 0; i < id->n_attrs; i++) {
		c->attrs[i].key = xstrdup(id->attrs[i].key);
		c->attrs[i].value = xstrdup(id->attrs[i].value);
	}
	c->n_attrs = id->n_attrs;
	c->expires_at = id->expires_at;
	return c;
}

const char *identity_attr(const struct identity *id, const char *key)
{
	if (id == NULL)
		return NULL;
	for (size_t i = 0; i < id->n_attrs; i++)
		if (strcmp(id->attrs[i].key, key) == 0)
			return id->attrs[i].value;
	return NULL;
}
