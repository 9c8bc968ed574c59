/*
 * The WebSocket opening handshake, client side (see bench_handshake.h).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "bench_handshake.h"

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

uint64_t hs_rand(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1Dull;
}

void hs_new_key(char key[WS_KEY_LEN + 1], uint64_t *rng)
{
	unsigned char raw[16];
	uint64_t a = hs_rand(rng), b = hs_rand(rng);

	memcpy(raw, &a, 8);
	memcpy(raw + 8, &b, 8);
	EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw));
	key[WS_KEY_LEN] = '\0';
}

size_t hs_request(char *buf, size_t size, const char *host, unsigned port,
		  const char *path, const char *key, bool deflate)
{
	int n = snprintf(buf, size,
			 "GET %s HTTP/1.1\r\n"
			 "Host: %s:%u\r\n"
			 "Upgrade: websocket\r\n"
			 "Connection: Upgrade\r\n"
			 "Sec-WebSocket-Key: %s\r\n"
			 "Sec-WebSocket-Version: 13\r\n"
			 "%s"
			 "\r\n", path, host, port, key,
			 deflate ? "Sec-WebSocket-Extensions: permessage-deflate; "
			 "client_no_context_takeover; server_no_context_takeover\r\n" : "");

	return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

/* The value of header name in head (case-insensitive name), trimmed. */
static const char *header_value(const char *head, size_t len, const char *name,
				size_t *vlen)
{
	size_t nlen = strlen(name);
	const char *p = head, *end = head + len;

	while (p < end) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		const char *v;

		if (eol == NULL)
			eol = end;
		if ((size_t)(eol - p) > nlen && p[nlen] == ':' &&
		    strncasecmp(p, name, nlen) == 0) {
			v = p + nlen + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			*vlen = (size_t)(eol - v);
			while (*vlen > 0 && (v[*vlen - 1] == ' ' || v[*vlen - 1] == '\t'))
				(*vlen)--;
			return v;
		}
		p = eol + 2;
	}
	return NULL;
}

const char *hs_check_response(const char *head, size_t len, const char *key)
{
	unsigned char digest[SHA_DIGEST_LENGTH];
	char joined[WS_KEY_LEN + sizeof(WS_GUID)];
	char want[32];
	const char *v;
	size_t vlen;

	if (len < 12 || (memcmp(head, "HTTP/1.1 101", 12) != 0 &&
			 memcmp(head, "HTTP/1.0 101", 12) != 0))
		return "the server did not answer 101";
	v = header_value(head, len, "Sec-WebSocket-Accept", &vlen);
	if (v == NULL)
		return "101 without Sec-WebSocket-Accept";
	memcpy(joined, key, WS_KEY_LEN);
	memcpy(joined + WS_KEY_LEN, WS_GUID, sizeof(WS_GUID) - 1);
	SHA1((const unsigned char *)joined, WS_KEY_LEN + sizeof(WS_GUID) - 1, digest);
	EVP_EncodeBlock((unsigned char *)want, digest, SHA_DIGEST_LENGTH);
	if (vlen != strlen(want) || memcmp(v, want, vlen) != 0)
		return "wrong Sec-WebSocket-Accept";
	return NULL;
}
