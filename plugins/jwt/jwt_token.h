/*
 * A JSON Web Token taken apart (RFC 7519, compact JWS of RFC 7515) and its
 * registered claims checked, without any key: pure functions, so the unit
 * test and the fuzz target drive them directly. Verifying the signature
 * is jwt_keys.h's.
 *
 * Strict on purpose: base64url without padding and without stray bits,
 * a header that is a JSON object with a string "alg" and no "crit" (no
 * extension is understood, so none may be required), a payload that is a
 * JSON object, and numbers for the time claims.
 */
#ifndef MYXID_JWT_TOKEN_H
#define MYXID_JWT_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#include "plugin_util.h"

struct jwt_parsed {
	char alg[16];                 /* the header's "alg" */
	char kid[128];                /* its "kid", "" when absent */
	const char *signing_input;    /* "HEADER.PAYLOAD", in the token */
	size_t signing_len;
	unsigned char *sig;           /* the signature bytes (malloc'ed) */
	size_t sig_len;
	json_object *claims;          /* the payload (owned) */
};

/*
 * Does token look like a compact JWT at all (three base64url parts)? A
 * token that does not is someone else's (the next auth plugin's).
 */
PU_HIDDEN bool jwt_looks_like(const char *token, size_t len);

/*
 * The last good header seen, taken apart. An issuer's tokens share one
 * header ({"alg":"HS256","typ":"JWT"}, its kid), so a plugin instance keeps
 * it and skips decoding and parsing it again. All zero: nothing kept.
 */
struct jwt_header_memo {
	char raw[192];                /* the header part, as in the token */
	size_t raw_len;
	char alg[16];
	char kid[128];
};

/* Take token apart into out: 0, or -1 with *why (a static phrase for the
 * log, never holding token data). memo (NULL: none) is read and updated. */
PU_HIDDEN int jwt_parse(const char *token, size_t len, struct jwt_header_memo *memo,
			struct jwt_parsed *out, const char **why);
PU_HIDDEN void jwt_parsed_free(struct jwt_parsed *p);

/* What jwt_check_claims() demands. */
struct jwt_rules {
	const char *issuer;           /* "iss" must equal it; NULL: not checked */
	const char *audience;         /* "aud" (a string or a list) must hold it */
	unsigned leeway_s;            /* on exp, nbf and iat */
	bool require_exp;             /* a token without "exp" is refused */
};

/* 0 if the claims hold at now (Unix seconds), with *exp_r the expiry (0:
 * none); else -1 with *why. */
PU_HIDDEN int jwt_check_claims(json_object *claims, const struct jwt_rules *r,
			       int64_t now, int64_t *exp_r, const char **why);

/*
 * A claim as text (malloc'ed): a string as it is, an integer in decimal,
 * true/false, and an array of those joined with ',' (for attributes that
 * policies read as comma lists); NULL when absent, of another type, or
 * holding a NUL or a ','-bearing item in a list.
 */
PU_HIDDEN char *jwt_claim_text(json_object *claims, const char *name);

/* base64url (no padding) into out (at least len * 3 / 4 + 1 bytes): the
 * byte count, or -1 when it is not strict base64url. */
PU_HIDDEN long jwt_b64url_decode(const char *in, size_t len, unsigned char *out);

#endif
