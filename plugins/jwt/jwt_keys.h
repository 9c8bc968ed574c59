/*
 * The keys a JWT may be signed with, and checking a signature with one,
 * through OpenSSL's EVP API.
 *
 * Every key has a family (an HMAC secret, an RSA, P-256, P-384 or Ed25519
 * public key), and an algorithm is tried only with keys of its own family:
 * the "alg confusion" attack (an RS256 public key used as an HS256 secret)
 * has nothing to work with, since no PEM or JWKS public key is ever an
 * HMAC secret. Which algorithms may be used at all is the configuration's
 * list; "none" is not an algorithm here.
 */
#ifndef MYXID_JWT_KEYS_H
#define MYXID_JWT_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/evp.h>

#include "plugin_util.h"

enum jwt_family { JWT_HMAC, JWT_RSA, JWT_P256, JWT_P384, JWT_ED25519 };

struct jwt_alg {
	const char *name;             /* "HS256" ... */
	enum jwt_family family;
	const EVP_MD *(*md)(void);    /* NULL for EdDSA */
	bool pss;                     /* RSASSA-PSS (PS256) */
	size_t ec_half;               /* ES*: bytes of r and of s */
	unsigned hmac_slot;           /* HS*: its jwt_key.hmac[] entry */
};

/* The algorithm named name, or NULL (none, or not supported). */
PU_HIDDEN const struct jwt_alg *jwt_alg_find(const char *name);

struct jwt_key {
	enum jwt_family family;
	char *kid;                    /* NULL: matches any token's kid */
	EVP_PKEY *pkey;               /* public keys */
	unsigned char *secret;        /* HMAC (scrubbed when freed) */
	size_t secret_len;
	/* HS256, HS384, HS512 contexts keyed with secret once and restarted
	 * for each token: HMAC() would look the algorithm up (under OpenSSL's
	 * locks), allocate a context and hash the key every time. A keyset
	 * belongs to one plugin instance, so to one loop thread. */
	EVP_MAC_CTX *hmac[3];
};

struct jwt_keyset {
	struct jwt_key *v;
	size_t n;
};

/* 0, or -1 with a message in err. */
PU_HIDDEN int jwt_keys_add_secret(struct jwt_keyset *ks, const char *secret, size_t len,
				  char *err, size_t err_size);
PU_HIDDEN int jwt_keys_add_pem(struct jwt_keyset *ks, const char *path, const char *kid,
			       char *err, size_t err_size);
/* Every usable key of a JWKS document (RFC 7517) file. */
PU_HIDDEN int jwt_keys_add_jwks(struct jwt_keyset *ks, const char *path, char *err,
				size_t err_size);
PU_HIDDEN void jwt_keys_free(struct jwt_keyset *ks);

/* Is sig a's signature of input by k? k's family must be a's. */
PU_HIDDEN bool jwt_verify(const struct jwt_key *k, const struct jwt_alg *a,
			  const void *input, size_t len, const unsigned char *sig,
			  size_t sig_len);

#endif
