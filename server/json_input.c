/*
 * Strict JSON input; see json_input.h.
 */
#include "json_input.h"
#include "utf8.h"

#include <locale.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/*
 * An RFC 8259 syntax check run before json-c parses, because json-c's
 * strict mode still takes single quotes, raw control characters in strings,
 * NaN, Infinity and "1.", and would then echo some of them to browsers as
 * invalid JSON. Iterative, with an explicit depth limit.
 */
struct scan {
	const unsigned char *p, *end;
};

static void skip_ws(struct scan *sc)
{
	while (sc->p < sc->end && (*sc->p == ' ' || *sc->p == '\t' ||
				   *sc->p == '\n' || *sc->p == '\r'))
		sc->p++;
}

static bool scan_literal(struct scan *sc, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(sc->end - sc->p) < n || memcmp(sc->p, word, n) != 0)
		return false;
	sc->p += n;
	return true;
}

static bool scan_digits(struct scan *sc)
{
	const unsigned char *start = sc->p;

	while (sc->p < sc->end && *sc->p >= '0' && *sc->p <= '9')
		sc->p++;
	return sc->p > start;
}

static bool scan_number(struct scan *sc)
{
	if (sc->p < sc->end && *sc->p == '-')
		sc->p++;
	if (sc->p < sc->end && *sc->p == '0')
		sc->p++;
	else if (!(sc->p < sc->end && *sc->p >= '1' && *sc->p <= '9') ||
		 !scan_digits(sc))
		return false;
	if (sc->p < sc->end && *sc->p == '.') {
		sc->p++;
		if (!scan_digits(sc))
			return false;
	}
	if (sc->p < sc->end && (*sc->p == 'e' || *sc->p == 'E')) {
		sc->p++;
		if (sc->p < sc->end && (*sc->p == '+' || *sc->p == '-'))
			sc->p++;
		if (!scan_digits(sc))
			return false;
	}
	return true;
}

static bool is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		(c >= 'A' && c <= 'F');
}

/* A string; UTF-8 validity was checked on the whole input already. */
static bool scan_string(struct scan *sc)
{
	sc->p++;                       /* the opening quote */
	while (sc->p < sc->end) {
		unsigned char c = *sc->p++;
		if (c == '"')
			return true;
		if (c < 0x20)
			return false;      /* raw control characters */
		if (c != '\\')
			continue;
		if (sc->p >= sc->end)
			return false;
		c = *sc->p++;
		if (c == 'u') {
			if (sc->end - sc->p < 4 || !is_hex(sc->p[0]) || !is_hex(sc->p[1]) ||
			    !is_hex(sc->p[2]) || !is_hex(sc->p[3]))
				return false;
			sc->p += 4;
		} else if (!strchr("\"\\/bfnrt", c) || c == '\0') {
			return false;
		}
	}
	return false;
}

static bool scan_scalar(struct scan *sc)
{
	switch (*sc->p) {
	case '"': return scan_string(sc);
	case 't': return scan_literal(sc, "true");
	case 'f': return scan_literal(sc, "false");
	case 'n': return scan_literal(sc, "null");
	default: return scan_number(sc);
	}
}

static bool json_syntax_ok(const void *data, size_t len, int max_depth)
{
	struct scan sc = { data, (const unsigned char *)data + len };
	char stack[256];               /* '{' or '[' per open level */
	int depth = 0;

	if (max_depth > (int)sizeof(stack))
		max_depth = (int)sizeof(stack);
	for (;;) {
		/* Expect a value. */
		skip_ws(&sc);
		if (sc.p >= sc.end)
			return false;
		if (*sc.p == '{' || *sc.p == '[') {
			if (depth >= max_depth)
				return false;
			stack[depth++] = (char)*sc.p++;
			skip_ws(&sc);
			if (sc.p < sc.end && *sc.p == (stack[depth - 1] == '{' ? '}' : ']')) {
				sc.p++;
				depth--;
				goto after_value;
			}
			if (stack[depth - 1] == '[')
				continue;
			goto member_key;
		}
		if (!scan_scalar(&sc))
			return false;
after_value:
		skip_ws(&sc);
		if (depth == 0)
			return sc.p == sc.end;
		if (sc.p >= sc.end)
			return false;
		if (*sc.p == ',') {
			sc.p++;
			if (stack[depth - 1] == '[')
				continue;
			skip_ws(&sc);
			goto member_key;
		}
		if (*sc.p != (stack[depth - 1] == '{' ? '}' : ']'))
			return false;
		sc.p++;
		depth--;
		goto after_value;
member_key:
		if (sc.p >= sc.end || *sc.p != '"' || !scan_string(&sc))
			return false;
		skip_ws(&sc);
		if (sc.p >= sc.end || *sc.p++ != ':')
			return false;
	}
}

const char *json_input_string(json_object *o)
{
	const char *s;

	if (!json_object_is_type(o, json_type_string))
		return NULL;
	s = json_object_get_string(o);
	return strlen(s) == (size_t)json_object_get_string_len(o) ? s : NULL;
}

/* json_syntax_ok() caps nesting at its stack's size before json-c sees the
 * text, so one tokener this deep serves every caller's max_depth. */
#define TOKENER_DEPTH 257

static __thread json_tokener *thread_tok;
static __thread locale_t thread_locale;

void json_input_thread_init(void)
{
	if (thread_locale == (locale_t)0) {
		thread_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
		if (thread_locale != (locale_t)0)
			uselocale(thread_locale);
	}
	if (thread_tok == NULL) {
		thread_tok = json_tokener_new_ex(TOKENER_DEPTH);
		if (thread_tok != NULL)
			json_tokener_set_flags(thread_tok, JSON_TOKENER_STRICT);
	}
}

void json_input_thread_done(void)
{
	if (thread_tok != NULL) {
		json_tokener_free(thread_tok);
		thread_tok = NULL;
	}
	if (thread_locale != (locale_t)0) {
		uselocale(LC_GLOBAL_LOCALE);
		freelocale(thread_locale);
		thread_locale = (locale_t)0;
	}
}

json_object *json_input_parse(const void *data, size_t len, int max_depth)
{
	const char *p = data;
	json_tokener *tok = thread_tok;
	json_object *o;
	size_t end;

	/* Nothing is no JSON; and an empty broker body may come as NULL,
	 * on which even NULL + 0 is undefined. */
	if (len == 0 || len > INT32_MAX || !utf8_valid(p, len) ||
	    !json_syntax_ok(p, len, max_depth))
		return NULL;
	if (tok != NULL) {
		json_tokener_reset(tok);
	} else {
		tok = json_tokener_new_ex(TOKENER_DEPTH);
		if (tok == NULL)
			return NULL;
		json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	}
	o = json_tokener_parse_ex(tok, p, (int)len);
	end = json_tokener_get_parse_end(tok);
	if (tok != thread_tok)
		json_tokener_free(tok);
	while (o != NULL && end < len &&
	       (p[end] == ' ' || p[end] == '\t' || p[end] == '\r' || p[end] == '\n'))
		end++;
	if (o != NULL && end != len) {
		json_object_put(o);
		o = NULL;
	}
	return o;
}
