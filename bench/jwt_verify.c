/*
 * jwt_verify: the auth jwt plugin's own part of an Authenticate, without
 * the daemon: take the token apart, find the key, check the signature and
 * the claims, read the user id. One thread, tokens from a file (one per
 * line, as bench/auth_throughput.py writes them: TOKEN<TAB>...), keys as
 * the plugin loads them.
 *
 *   bench/jwt_verify -a HS256 -s SECRET  -f tokens.tsv [-t SECONDS]
 *   bench/jwt_verify -a ES256 -k key.pem -f tokens.tsv [-t SECONDS]
 *
 * Prints verifications per second and µs per verification.
 */
#define _POSIX_C_SOURCE 200809L

#include "jwt_keys.h"
#include "jwt_token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	const char *alg_name = "HS256", *secret = NULL, *pem = NULL, *file = NULL;
	double seconds = 3, t0, t;
	struct jwt_keyset ks = { NULL, 0 };
	struct jwt_rules rules = { NULL, NULL, 0, true };
	struct jwt_header_memo memo = { 0 };  /* as the plugin instance keeps */
	const struct jwt_alg *alg;
	char **tokens = NULL, *line = NULL, err[256];
	size_t n = 0, cap = 0, lcap = 0, done = 0, bad = 0;
	FILE *fp;
	int c;

	while ((c = getopt(argc, argv, "a:s:k:f:t:")) != -1) {
		switch (c) {
		case 'a': alg_name = optarg; break;
		case 's': secret = optarg; break;
		case 'k': pem = optarg; break;
		case 'f': file = optarg; break;
		case 't': seconds = atof(optarg); break;
		default: return 2;
		}
	}
	alg = jwt_alg_find(alg_name);
	if (alg == NULL || file == NULL || (secret == NULL) == (pem == NULL)) {
		fprintf(stderr, "usage: jwt_verify -a ALG (-s SECRET | -k PEM) -f TOKENS [-t S]\n");
		return 2;
	}
	if ((secret ? jwt_keys_add_secret(&ks, secret, strlen(secret), err, sizeof(err)) :
	     jwt_keys_add_pem(&ks, pem, NULL, err, sizeof(err))) < 0) {
		fprintf(stderr, "jwt_verify: %s\n", err);
		return 1;
	}
	if ((fp = fopen(file, "r")) == NULL) {
		perror(file);
		return 1;
	}
	while (getline(&line, &lcap, fp) > 0) {
		line[strcspn(line, "\t\n")] = '\0';
		if (n == cap && (tokens = realloc(tokens, (cap = cap ? cap * 2 : 1024) *
					      sizeof(*tokens))) == NULL)
			return 1;
		tokens[n++] = strdup(line);
	}
	fclose(fp);
	if (n == 0)
		return 1;
	t0 = now();
	do {
		for (int i = 0; i < 1000; i++, done++) {
			const char *tok = tokens[done % n], *why;
			struct jwt_parsed p;
			int64_t exp;
			char *user;

			if (jwt_parse(tok, strlen(tok), &memo, &p, &why) < 0) {
				bad++;
				continue;
			}
			if (!jwt_verify(&ks.v[0], alg, p.signing_input, p.signing_len, p.sig,
					p.sig_len) ||
			    jwt_check_claims(p.claims, &rules, (int64_t)time(NULL), &exp, &why) < 0)
				bad++;
			user = jwt_claim_text(p.claims, "sub");
			free(user);
			jwt_parsed_free(&p);
		}
		t = now() - t0;
	} while (t < seconds);
	printf("%s: %zu verifications in %.2f s: %.0f/s, %.2f us each, %zu failed\n",
	       alg_name, done, t, (double)done / t, t * 1e6 / (double)done, bad);
	jwt_keys_free(&ks);
	return bad ? 1 : 0;
}
