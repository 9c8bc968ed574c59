/*
 * Fuzz target: a token given to "auth jwt" (plugins/jwt/jwt_token.c), the
 * only part of the plugin that reads untrusted bytes before a signature
 * has been checked: splitting, base64url, the header and payload JSON,
 * and the claims.
 *
 * Checks: a token that parses has a NUL-free alg shorter than its buffer,
 * a signing input that is the token up to the second dot, and a payload
 * that is a JSON object; checking its claims either passes with an expiry
 * after now - leeway or fails with a reason; every claim as text is NUL-
 * free. Only a token that looks like a JWT parses. The header memo the
 * plugin keeps (carried from input to input here, so inputs sharing a
 * header meet it) gives the same answer as parsing afresh.
 */
#include "fuzz_check.h"
#include "jwt_token.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf = fuzz_dup(data, size);
	const char *tok = (const char *)buf, *why = NULL;
	struct jwt_parsed t;
	struct jwt_rules rules = { "iss", "aud", 5, size % 2 == 0 };
	static const char *const names[] = { "sub", "aud", "deployments", "role", "exp" };
	static struct jwt_header_memo memo;
	struct jwt_parsed m;
	const char *m_why = NULL;
	int64_t exp = -1;
	int rc = jwt_parse(tok, size, NULL, &t, &why);

	FUZZ_CHECK((jwt_parse(tok, size, &memo, &m, &m_why) == 0) == (rc == 0));
	if (rc == 0) {
		FUZZ_CHECK(strcmp(m.alg, t.alg) == 0 && strcmp(m.kid, t.kid) == 0);
		jwt_parsed_free(&m);
	}
	if (rc < 0) {
		FUZZ_CHECK(why != NULL && m_why != NULL);
		free(buf);
		return 0;
	}
	FUZZ_CHECK(jwt_looks_like(tok, size));
	FUZZ_CHECK(strlen(t.alg) < sizeof(t.alg));
	FUZZ_CHECK(t.signing_input == tok && t.signing_len < size && tok[t.signing_len] == '.');
	FUZZ_CHECK(json_object_is_type(t.claims, json_type_object));
	FUZZ_CHECK(t.sig_len > 0);
	if (jwt_check_claims(t.claims, &rules, 1700000000, &exp, &why) == 0)
		FUZZ_CHECK(exp == 0 || exp > 1700000000 - 5);
	else
		FUZZ_CHECK(why != NULL);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char *v = jwt_claim_text(t.claims, names[i]);

		FUZZ_CHECK(v == NULL || strlen(v) < 1u << 20);
		free(v);
	}
	jwt_parsed_free(&t);
	free(buf);
	return 0;
}
