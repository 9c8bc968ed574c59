/*
 * JWT keys and signature checks; see jwt_keys.h.
 */
#define _POSIX_C_SOURCE 200809L

#include "jwt_keys.h"
#include "jwt_token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

/* A JWKS file is a few keys; anything bigger is a mistake. */
#define MAX_JWKS_BYTES (1024 * 1024)

static const struct jwt_alg algs[] = {
	{ "HS256", JWT_HMAC, EVP_sha256, false, 0, 0 },
	{ "HS384", JWT_HMAC, EVP_sha384, false, 0, 1 },
	{ "HS512", JWT_HMAC, EVP_sha512, false, 0, 2 },
	{ "RS256", JWT_RSA, EVP_sha256, false, 0, 0 },
	{ "RS384", JWT_RSA, EVP_sha384, false, 0, 0 },
	{ "RS512", JWT_RSA, EVP_sha512, false, 0, 0 },
	{ "PS256", JWT_RSA, EVP_sha256, true, 0, 0 },
	{ "ES256", JWT_P256, EVP_sha256, false, 32, 0 },
	{ "ES384", JWT_P384, EVP_sha384, false, 48, 0 },
	{ "EdDSA", JWT_ED25519, NULL, false, 0, 0 },
};

const struct jwt_alg *jwt_alg_find(const char *name)
{
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
		if (strcmp(algs[i].name, name) == 0)
			return &algs[i];
	return NULL;
}

/* ---------------------------------------------------------------- keys */

static struct jwt_key *key_new(struct jwt_keyset *ks)
{
	struct jwt_key *v = realloc(ks->v, (ks->n + 1) * sizeof(*v));

	if (v == NULL)
		return NULL;
	ks->v = v;
	memset(&v[ks->n], 0, sizeof(v[ks->n]));
	return &v[ks->n++];
}

#define N_HMAC (sizeof(((struct jwt_key *)0)->hmac) / sizeof(EVP_MAC_CTX *))

static void hmac_free(struct jwt_key *k)
{
	for (size_t j = 0; j < N_HMAC; j++) {
		EVP_MAC_CTX_free(k->hmac[j]);
		k->hmac[j] = NULL;
	}
}

/* Fill k->hmac[]: 0, or -1. */
static int hmac_key(struct jwt_key *k)
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	int rc = mac != NULL ? 0 : -1;

	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]) && rc == 0; i++) {
		OSSL_PARAM params[2];

		if (algs[i].family != JWT_HMAC)
			continue;
		params[0] = OSSL_PARAM_construct_utf8_string(
			OSSL_MAC_PARAM_DIGEST, (char *)EVP_MD_get0_name(algs[i].md()), 0);
		params[1] = OSSL_PARAM_construct_end();
		k->hmac[algs[i].hmac_slot] = EVP_MAC_CTX_new(mac);
		if (k->hmac[algs[i].hmac_slot] == NULL ||
		    EVP_MAC_init(k->hmac[algs[i].hmac_slot], k->secret, k->secret_len,
				 params) != 1)
			rc = -1;
	}
	EVP_MAC_free(mac);
	return rc;
}

int jwt_keys_add_secret(struct jwt_keyset *ks, const char *secret, size_t len,
			char *err, size_t err_size)
{
	struct jwt_key *k;

	/* RFC 7518 3.2: at least as long as the hash; 32 bytes for HS256. */
	if (len < 32) {
		pu_err(err, err_size, "the secret is %zu bytes; HMAC keys need at least 32", len);
		return -1;
	}
	if ((k = key_new(ks)) == NULL || (k->secret = malloc(len)) == NULL) {
		if (k != NULL)
			ks->n--;
		pu_err(err, err_size, "out of memory");
		return -1;
	}
	k->family = JWT_HMAC;
	memcpy(k->secret, secret, len);
	k->secret_len = len;
	if (hmac_key(k) < 0) {
		hmac_free(k);
		pu_scrub(k->secret, len);
		free(k->secret);
		ks->n--;
		pu_err(err, err_size, "OpenSSL cannot set up HMAC with this secret");
		return -1;
	}
	return 0;
}

/* The family of a public key, or -1 (a private key works too: its public
 * half is what is used). */
static int family_of(EVP_PKEY *pkey)
{
	char group[32];
	size_t len;

	if (EVP_PKEY_is_a(pkey, "RSA") && EVP_PKEY_get_bits(pkey) >= 2048)
		return JWT_RSA;
	if (EVP_PKEY_is_a(pkey, "ED25519"))
		return JWT_ED25519;
	if (EVP_PKEY_is_a(pkey, "EC") &&
	    EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
					   sizeof(group), &len) == 1) {
		if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)
			return JWT_P256;
		if (strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0)
			return JWT_P384;
	}
	return -1;
}

static int add_pkey(struct jwt_keyset *ks, EVP_PKEY *pkey, const char *kid, const char *where,
		    char *err, size_t err_size)
{
	int fam = family_of(pkey);
	struct jwt_key *k;

	if (fam < 0) {
		pu_err(err, err_size, "%s: not an RSA (2048 bits or more), P-256, P-384 or "
		       "Ed25519 key", where);
		EVP_PKEY_free(pkey);
		return -1;
	}
	if ((k = key_new(ks)) == NULL || (kid != NULL && (k->kid = strdup(kid)) == NULL)) {
		if (k != NULL)
			ks->n--;
		EVP_PKEY_free(pkey);
		pu_err(err, err_size, "out of memory");
		return -1;
	}
	k->family = (enum jwt_family)fam;
	k->pkey = pkey;
	return 0;
}

int jwt_keys_add_pem(struct jwt_keyset *ks, const char *path, const char *kid,
		     char *err, size_t err_size)
{
	FILE *fp = fopen(path, "r");
	EVP_PKEY *pkey;

	if (fp == NULL) {
		pu_err(err, err_size, "%s: cannot open", path);
		return -1;
	}
	pkey = PEM_read_PUBKEY(fp, NULL, NULL, NULL);
	fclose(fp);
	if (pkey == NULL) {
		pu_err(err, err_size, "%s: no PEM public key (-----BEGIN PUBLIC KEY-----)", path);
		return -1;
	}
	return add_pkey(ks, pkey, kid, path, err, err_size);
}

/* A base64url member of a JWK, decoded (malloc'ed); NULL if absent or bad. */
static unsigned char *jwk_bytes(json_object *jwk, const char *name, size_t *len)
{
	json_object *v;
	unsigned char *out;
	long n;

	if (!json_object_object_get_ex(jwk, name, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	out = malloc((size_t)json_object_get_string_len(v) * 3 / 4 + 1);
	if (out == NULL)
		return NULL;
	n = jwt_b64url_decode(json_object_get_string(v), (size_t)json_object_get_string_len(v),
			      out);
	if (n <= 0) {
		free(out);
		return NULL;
	}
	*len = (size_t)n;
	return out;
}

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *pkey = NULL;

	if (params == NULL || pctx == NULL || EVP_PKEY_fromdata_init(pctx) != 1 ||
	    EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		pkey = NULL;
	EVP_PKEY_CTX_free(pctx);
	OSSL_PARAM_free(params);
	return pkey;
}

static EVP_PKEY *rsa_jwk(json_object *jwk)
{
	size_t nl = 0, el = 0;
	unsigned char *n = jwk_bytes(jwk, "n", &nl), *e = jwk_bytes(jwk, "e", &el);
	BIGNUM *bn = n ? BN_bin2bn(n, (int)nl, NULL) : NULL;
	BIGNUM *be = e ? BN_bin2bn(e, (int)el, NULL) : NULL;
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY *pkey = NULL;

	if (bn != NULL && be != NULL && bld != NULL &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) == 1 &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) == 1)
		pkey = from_params("RSA", bld);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	free(n);
	free(e);
	return pkey;
}

static EVP_PKEY *ec_jwk(json_object *jwk, const char *crv)
{
	const char *group = strcmp(crv, "P-256") == 0 ? "prime256v1" :
		strcmp(crv, "P-384") == 0 ? "secp384r1" : NULL;
	size_t half = strcmp(crv, "P-256") == 0 ? 32 : 48, xl = 0, yl = 0;
	unsigned char *x = jwk_bytes(jwk, "x", &xl), *y = jwk_bytes(jwk, "y", &yl);
	unsigned char point[1 + 2 * 48];
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY *pkey = NULL;

	if (group != NULL && x != NULL && y != NULL && xl == half && yl == half && bld != NULL) {
		/* The uncompressed point: 0x04 || x || y. */
		point[0] = 4;
		memcpy(point + 1, x, half);
		memcpy(point + 1 + half, y, half);
		if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) == 1 &&
		    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point,
						     1 + 2 * half) == 1)
			pkey = from_params("EC", bld);
	}
	OSSL_PARAM_BLD_free(bld);
	free(x);
	free(y);
	return pkey;
}

/* One JWK: 1 added, 0 skipped (not for signatures, or a type we do not
 * take), -1 bad. */
static int add_jwk(struct jwt_keyset *ks, json_object *jwk, const char *path, size_t i,
		   char *err, size_t err_size)
{
	json_object *kty, *use, *kid, *crv;
	const char *t, *kid_s = NULL;
	EVP_PKEY *pkey = NULL;
	char where[300];

	snprintf(where, sizeof(where), "%s: key %zu", path, i);
	if (!json_object_is_type(jwk, json_type_object) ||
	    !json_object_object_get_ex(jwk, "kty", &kty) || !json_object_is_type(kty, json_type_string)) {
		pu_err(err, err_size, "%s: not a JWK (no \"kty\")", where);
		return -1;
	}
	if (json_object_object_get_ex(jwk, "use", &use) &&
	    strcmp(json_object_get_string(use), "sig") != 0)
		return 0;
	if (json_object_object_get_ex(jwk, "kid", &kid) && json_object_is_type(kid, json_type_string))
		kid_s = json_object_get_string(kid);
	t = json_object_get_string(kty);
	if (strcmp(t, "oct") == 0) {
		size_t len = 0;
		unsigned char *k = jwk_bytes(jwk, "k", &len);
		int rc = k ? jwt_keys_add_secret(ks, (const char *)k, len, err, err_size) : -1;

		if (k != NULL)
			pu_scrub(k, len);
		free(k);
		if (rc == 0 && kid_s != NULL && (ks->v[ks->n - 1].kid = strdup(kid_s)) == NULL)
			rc = -1;
		if (rc < 0 && k == NULL)
			pu_err(err, err_size, "%s: an oct key without a base64url \"k\"", where);
		return rc < 0 ? -1 : 1;
	}
	crv = NULL;
	json_object_object_get_ex(jwk, "crv", &crv);
	if (strcmp(t, "RSA") == 0)
		pkey = rsa_jwk(jwk);
	else if (strcmp(t, "EC") == 0 && crv != NULL)
		pkey = ec_jwk(jwk, json_object_get_string(crv));
	else if (strcmp(t, "OKP") == 0 && crv != NULL &&
		 strcmp(json_object_get_string(crv), "Ed25519") == 0) {
		size_t len = 0;
		unsigned char *x = jwk_bytes(jwk, "x", &len);

		if (x != NULL && len == 32)
			pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, len);
		free(x);
	} else {
		return 0;
	}
	if (pkey == NULL) {
		pu_err(err, err_size, "%s: a %s key whose members do not make a key", where, t);
		return -1;
	}
	return add_pkey(ks, pkey, kid_s, where, err, err_size) < 0 ? -1 : 1;
}

int jwt_keys_add_jwks(struct jwt_keyset *ks, const char *path, char *err, size_t err_size)
{
	FILE *fp = fopen(path, "r");
	char *buf;
	size_t len;
	json_object *doc, *keys;
	int added = 0;

	if (fp == NULL) {
		pu_err(err, err_size, "%s: cannot open", path);
		return -1;
	}
	buf = malloc(MAX_JWKS_BYTES + 1);
	len = buf ? fread(buf, 1, MAX_JWKS_BYTES + 1, fp) : 0;
	fclose(fp);
	if (buf == NULL || len > MAX_JWKS_BYTES) {
		free(buf);
		pu_err(err, err_size, "%s: larger than 1 MiB", path);
		return -1;
	}
	buf[len] = '\0';
	doc = json_tokener_parse(buf);
	free(buf);
	if (doc == NULL || !json_object_object_get_ex(doc, "keys", &keys) ||
	    !json_object_is_type(keys, json_type_array)) {
		json_object_put(doc);
		pu_err(err, err_size, "%s: not a JWKS document ({\"keys\": [...]})", path);
		return -1;
	}
	for (size_t i = 0; i < json_object_array_length(keys); i++) {
		int rc = add_jwk(ks, json_object_array_get_idx(keys, i), path, i, err, err_size);

		if (rc < 0) {
			json_object_put(doc);
			return -1;
		}
		added += rc;
	}
	json_object_put(doc);
	if (added == 0) {
		pu_err(err, err_size, "%s: no signing key it holds is usable", path);
		return -1;
	}
	return 0;
}

void jwt_keys_free(struct jwt_keyset *ks)
{
	for (size_t i = 0; i < ks->n; i++) {
		EVP_PKEY_free(ks->v[i].pkey);
		if (ks->v[i].secret != NULL)
			pu_scrub(ks->v[i].secret, ks->v[i].secret_len);
		free(ks->v[i].secret);
		free(ks->v[i].kid);
		hmac_free(&ks->v[i]);
	}
	free(ks->v);
	ks->v = NULL;
	ks->n = 0;
}

/* ------------------------------------------------------------ verifying */

static bool hmac_ok(const struct jwt_key *k, const struct jwt_alg *a, const void *input,
		    size_t len, const unsigned char *sig, size_t sig_len)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	size_t mac_len = 0;
	EVP_MAC_CTX *ctx = k->hmac[a->hmac_slot];
	/* No key: the context starts again with the one it was given. */
	bool ok = EVP_MAC_init(ctx, NULL, 0, NULL) == 1 &&
		  EVP_MAC_update(ctx, input, len) == 1 &&
		  EVP_MAC_final(ctx, mac, &mac_len, sizeof(mac)) == 1;

	return ok && mac_len == sig_len && CRYPTO_memcmp(mac, sig, sig_len) == 0;
}

/* JWS ECDSA signatures are r || s; OpenSSL wants DER. */
static unsigned char *ecdsa_der(const struct jwt_alg *a, const unsigned char *sig,
				size_t sig_len, size_t *der_len)
{
	ECDSA_SIG *es;
	BIGNUM *r, *s;
	unsigned char *der = NULL;
	int n;

	if (sig_len != 2 * a->ec_half || (es = ECDSA_SIG_new()) == NULL)
		return NULL;
	r = BN_bin2bn(sig, (int)a->ec_half, NULL);
	s = BN_bin2bn(sig + a->ec_half, (int)a->ec_half, NULL);
	if (r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(es);
		return NULL;
	}
	n = i2d_ECDSA_SIG(es, &der);
	ECDSA_SIG_free(es);
	if (n <= 0)
		return NULL;
	*der_len = (size_t)n;
	return der;
}

bool jwt_verify(const struct jwt_key *k, const struct jwt_alg *a, const void *input,
		size_t len, const unsigned char *sig, size_t sig_len)
{
	EVP_MD_CTX *ctx;
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *der = NULL;
	bool ok = false;

	if (k->family != a->family)
		return false;
	if (a->family == JWT_HMAC)
		return hmac_ok(k, a, input, len, sig, sig_len);
	if (a->ec_half > 0) {
		if ((der = ecdsa_der(a, sig, sig_len, &sig_len)) == NULL)
			return false;
		sig = der;
	}
	ctx = EVP_MD_CTX_new();
	if (ctx != NULL && EVP_DigestVerifyInit(ctx, &pctx, a->md ? a->md() : NULL, NULL,
						k->pkey) == 1 &&
	    (!a->pss || (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
			 EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1)))
		ok = EVP_DigestVerify(ctx, sig, sig_len, input, len) == 1;
	EVP_MD_CTX_free(ctx);
	OPENSSL_free(der);
	return ok;
}
