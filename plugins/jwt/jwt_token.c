/*
 * Taking a JWT apart and checking its claims; see jwt_token.h.
 */
#define _POSIX_C_SOURCE 200809L

#include "jwt_token.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* JSON nesting a header or payload may have: claims are flat, and a
 * deeply nested document is an attack on the parser, not a token. */
#define MAX_DEPTH 8

/* Each base64url character's value plus one; 0: not base64url. A table,
 * not comparisons: every token is scanned twice (looks_like, decode). */
static const unsigned char B64URL[256] = {
	['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
	['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
	['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
	['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
	['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
	['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
	['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
	['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
};

static int b64url_value(unsigned char c)
{
	return (int)B64URL[c] - 1;
}

long jwt_b64url_decode(const char *in, size_t len, unsigned char *out)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	long n = 0;

	/* One character left over carries 6 bits: no whole byte. */
	if (len % 4 == 1)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int v = b64url_value((unsigned char)in[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	/* Stray bits must be zero, or two spellings decode alike. */
	if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
		return -1;
	return n;
}

bool jwt_looks_like(const char *token, size_t len)
{
	size_t dots = 0;

	for (size_t i = 0; i < len; i++) {
		if (token[i] == '.')
			dots++;
		else if (b64url_value((unsigned char)token[i]) < 0)
			return false;
	}
	return dots == 2;
}

/* Decode one part and parse it as a JSON object; NULL when either fails. */
static json_object *json_part(const char *p, size_t len)
{
	unsigned char local[1024];    /* most payloads: no malloc */
	unsigned char *buf = len * 3 / 4 + 1 <= sizeof(local) ? local : malloc(len * 3 / 4 + 1);
	json_tokener *tok;
	json_object *o = NULL;
	long n;

	if (buf == NULL)
		return NULL;
	n = jwt_b64url_decode(p, len, buf);
	if (n > 0 && memchr(buf, '\0', (size_t)n) == NULL &&
	    (tok = json_tokener_new_ex(MAX_DEPTH)) != NULL) {
		json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
		o = json_tokener_parse_ex(tok, (const char *)buf, (int)n);
		/* All of it, and nothing after the document. */
		if (o != NULL && (json_tokener_get_error(tok) != json_tokener_success ||
				  json_tokener_get_parse_end(tok) != (size_t)n ||
				  !json_object_is_type(o, json_type_object))) {
			json_object_put(o);
			o = NULL;
		}
		json_tokener_free(tok);
	}
	if (buf != local)
		free(buf);
	return o;
}

static int header_fields(json_object *h, struct jwt_parsed *out, const char **why)
{
	json_object *v;

	if (!json_object_object_get_ex(h, "alg", &v) || !json_object_is_type(v, json_type_string) ||
	    (size_t)json_object_get_string_len(v) >= sizeof(out->alg))
		return *why = "the header has no usable \"alg\"", -1;
	memcpy(out->alg, json_object_get_string(v), (size_t)json_object_get_string_len(v) + 1);
	if (json_object_object_get_ex(h, "crit", NULL))
		return *why = "the header requires extensions (\"crit\")", -1;
	if (json_object_object_get_ex(h, "typ", &v) &&
	    (!json_object_is_type(v, json_type_string) ||
	     (strcasecmp(json_object_get_string(v), "JWT") != 0 &&
	      strcasecmp(json_object_get_string(v), "application/jwt") != 0)))
		return *why = "the header's \"typ\" is not JWT", -1;
	if (json_object_object_get_ex(h, "kid", &v)) {
		if (!json_object_is_type(v, json_type_string) ||
		    (size_t)json_object_get_string_len(v) >= sizeof(out->kid) ||
		    json_object_get_string_len(v) == 0)
			return *why = "the header's \"kid\" is not a short string", -1;
		memcpy(out->kid, json_object_get_string(v),
		       (size_t)json_object_get_string_len(v) + 1);
	}
	return 0;
}

/* The header part [token, token + hlen) into out's alg and kid: 0, or -1
 * with *why. */
static int take_header(const char *token, size_t hlen, struct jwt_header_memo *memo,
		       struct jwt_parsed *out, const char **why)
{
	json_object *header;
	int rc;

	if (memo != NULL && memo->raw_len == hlen && memcmp(memo->raw, token, hlen) == 0) {
		memcpy(out->alg, memo->alg, sizeof(out->alg));
		memcpy(out->kid, memo->kid, sizeof(out->kid));
		return 0;
	}
	header = json_part(token, hlen);
	if (header == NULL)
		return *why = "the header is not base64url of a JSON object", -1;
	rc = header_fields(header, out, why);
	json_object_put(header);
	if (rc == 0 && memo != NULL && hlen <= sizeof(memo->raw)) {
		memcpy(memo->raw, token, hlen);
		memo->raw_len = hlen;
		memcpy(memo->alg, out->alg, sizeof(memo->alg));
		memcpy(memo->kid, out->kid, sizeof(memo->kid));
	}
	return rc;
}

int jwt_parse(const char *token, size_t len, struct jwt_header_memo *memo,
	      struct jwt_parsed *out, const char **why)
{
	const char *dot1, *dot2;
	long n;

	memset(out, 0, sizeof(*out));
	dot1 = memchr(token, '.', len);
	dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
	if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
		return *why = "not three dot-separated parts", -1;
	if (take_header(token, (size_t)(dot1 - token), memo, out, why) < 0)
		return -1;
	out->claims = json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	if (out->claims == NULL)
		return *why = "the payload is not base64url of a JSON object", -1;
	out->sig = malloc((len - (size_t)(dot2 + 1 - token)) * 3 / 4 + 1);
	if (out->sig == NULL) {
		jwt_parsed_free(out);
		return *why = "out of memory", -1;
	}
	n = jwt_b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), out->sig);
	if (n <= 0) {
		jwt_parsed_free(out);
		return *why = "the signature is missing or not base64url", -1;
	}
	out->sig_len = (size_t)n;
	out->signing_input = token;
	out->signing_len = (size_t)(dot2 - token);
	return 0;
}

void jwt_parsed_free(struct jwt_parsed *p)
{
	json_object_put(p->claims);
	free(p->sig);
	memset(p, 0, sizeof(*p));
}

/* ------------------------------------------------------------- claims */

/* A NumericDate claim: 1 and *v when present and a sane number, 0 when
 * absent, -1 when present but not one. */
static int numeric_date(json_object *claims, const char *name, int64_t *v)
{
	json_object *o;
	double d;

	if (!json_object_object_get_ex(claims, name, &o))
		return 0;
	if (!json_object_is_type(o, json_type_int) && !json_object_is_type(o, json_type_double))
		return -1;
	d = json_object_get_double(o);
	/* Beyond year 9999, or negative: no date anybody issues. */
	if (!isfinite(d) || d < 0 || d > 253402300799.0)
		return -1;
	*v = (int64_t)d;
	return 1;
}

static bool audience_holds(json_object *aud, const char *want)
{
	if (json_object_is_type(aud, json_type_string))
		return strcmp(json_object_get_string(aud), want) == 0;
	if (!json_object_is_type(aud, json_type_array))
		return false;
	for (size_t i = 0; i < json_object_array_length(aud); i++) {
		json_object *a = json_object_array_get_idx(aud, i);

		if (json_object_is_type(a, json_type_string) &&
		    strcmp(json_object_get_string(a), want) == 0)
			return true;
	}
	return false;
}

int jwt_check_claims(json_object *claims, const struct jwt_rules *r, int64_t now,
		     int64_t *exp_r, const char **why)
{
	int64_t exp = 0, nbf = 0, iat = 0;
	int has_exp = numeric_date(claims, "exp", &exp);
	int has_nbf = numeric_date(claims, "nbf", &nbf);
	int has_iat = numeric_date(claims, "iat", &iat);
	json_object *v;

	if (has_exp < 0 || has_nbf < 0 || has_iat < 0)
		return *why = "exp, nbf or iat is not a NumericDate", -1;
	if (has_exp == 0 && r->require_exp)
		return *why = "the token has no \"exp\"", -1;
	if (has_exp && now >= exp + (int64_t)r->leeway_s)
		return *why = "the token has expired", -1;
	if (has_nbf && now + (int64_t)r->leeway_s < nbf)
		return *why = "the token is not valid yet (nbf)", -1;
	if (has_iat && now + (int64_t)r->leeway_s < iat)
		return *why = "the token was issued in the future (iat)", -1;
	if (r->issuer != NULL && (!json_object_object_get_ex(claims, "iss", &v) ||
				  !json_object_is_type(v, json_type_string) ||
				  strcmp(json_object_get_string(v), r->issuer) != 0))
		return *why = "wrong issuer (iss)", -1;
	if (r->audience != NULL && (!json_object_object_get_ex(claims, "aud", &v) ||
				    !audience_holds(v, r->audience)))
		return *why = "wrong audience (aud)", -1;
	*exp_r = has_exp ? exp + (int64_t)r->leeway_s : 0;
	return 0;
}

/* One scalar as text into buf; false for other types. */
static bool scalar_text(json_object *o, char *buf, size_t size, const char **s)
{
	switch (json_object_get_type(o)) {
	case json_type_string:
		*s = json_object_get_string(o);
		return strlen(*s) == (size_t)json_object_get_string_len(o);
	case json_type_int:
		snprintf(buf, size, "%lld", (long long)json_object_get_int64(o));
		*s = buf;
		return true;
	case json_type_boolean:
		*s = json_object_get_boolean(o) ? "true" : "false";
		return true;
	default:
		return false;
	}
}

char *jwt_claim_text(json_object *claims, const char *name)
{
	json_object *o;
	char buf[32], *out;
	const char *s;
	size_t len = 0, n;

	if (!json_object_object_get_ex(claims, name, &o))
		return NULL;
	if (!json_object_is_type(o, json_type_array))
		return scalar_text(o, buf, sizeof(buf), &s) ? strdup(s) : NULL;
	n = json_object_array_length(o);
	for (size_t i = 0; i < n; i++) {
		if (!scalar_text(json_object_array_get_idx(o, i), buf, sizeof(buf), &s) ||
		    strchr(s, ',') != NULL)
			return NULL;
		len += strlen(s) + 1;
	}
	out = malloc(len + 1);
	if (out == NULL)
		return NULL;
	out[0] = '\0';
	for (size_t i = 0, at = 0; i < n; i++) {
		scalar_text(json_object_array_get_idx(o, i), buf, sizeof(buf), &s);
		at += (size_t)sprintf(out + at, "%s%s", i ? "," : "", s);
	}
	return out;
}
