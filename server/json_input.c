/*
 * Strict JSON input; see json_input.h.
 */
#include "json_input.h"
#include "utf8.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Does s match JSON's number grammar, -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)? */
static bool json_number_text(const char *s)
{
	if (*s == '-')
		s++;
	if (*s == '0')
		s++;
	else if (*s >= '1' && *s <= '9')
		while (*s >= '0' && *s <= '9')
			s++;
	else
		return false;
	if (*s == '.') {
		s++;
		if (!(*s >= '0' && *s <= '9'))
			return false;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (!(*s >= '0' && *s <= '9'))
			return false;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	return *s == '\0';
}

static bool tree_valid(json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_double:
		/* json-c serialises a parsed double from its original text. */
		return isfinite(json_object_get_double(o)) &&
			json_number_text(json_object_to_json_string(o));
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(o); i++)
			if (!tree_valid(json_object_array_get_idx(o, i)))
				return false;
		return true;
	case json_type_object: {
		json_object_object_foreach(o, key, val) {
			(void)key;
			if (!tree_valid(val))
				return false;
		}
		return true;
	}
	default:
		return true;
	}
}

json_object *json_input_parse(const void *data, size_t len, int max_depth)
{
	const char *p = data;
	json_tokener *tok;
	json_object *o;
	size_t end;

	if (len > INT32_MAX || !utf8_valid(p, len))
		return NULL;
	tok = json_tokener_new_ex(max_depth);
	if (tok == NULL)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, p, (int)len);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	while (o != NULL && end < len &&
	       (p[end] == ' ' || p[end] == '\t' || p[end] == '\r' || p[end] == '\n'))
		end++;
	if (o != NULL && (end != len || !tree_valid(o))) {
		json_object_put(o);
		o = NULL;
	}
	return o;
}
