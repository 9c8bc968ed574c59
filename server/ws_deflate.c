/*
 * permessage-deflate; see ws_deflate.h.
 */
#include "ws_deflate.h"
#include "http_parse.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* ------------------------------------------------------------ negotiation */

/* A cursor over one header value: RFC 7230 tokens, quoted strings, and
 * the separators ';' ',' '='. */
struct lexer {
	const char *p, *end;
};

static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void skip_ows(struct lexer *lx)
{
	while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t'))
		lx->p++;
}

/* A token into out (NUL-terminated, at most size-1 bytes); false if none
 * or too long. */
static bool token(struct lexer *lx, char *out, size_t size)
{
	size_t n = 0;

	skip_ows(lx);
	while (lx->p < lx->end && is_tchar(*lx->p)) {
		if (n + 1 >= size)
			return false;
		out[n++] = *lx->p++;
	}
	out[n] = '\0';
	return n > 0;
}

/* A parameter value: a token, or a quoted string whose content must be a
 * token (RFC 6455 9.1). */
static bool value(struct lexer *lx, char *out, size_t size)
{
	skip_ows(lx);
	if (lx->p < lx->end && *lx->p == '"') {
		lx->p++;
		if (!token(lx, out, size) || lx->p >= lx->end || *lx->p != '"')
			return false;
		lx->p++;
		return true;
	}
	return token(lx, out, size);
}

/* Past the next ',' outside quotes (or to the end): the next offer. */
static void skip_offer(struct lexer *lx)
{
	bool quoted = false;

	for (; lx->p < lx->end; lx->p++) {
		if (*lx->p == '"')
			quoted = !quoted;
		else if (*lx->p == '\\' && quoted && lx->p + 1 < lx->end)
			lx->p++;
		else if (*lx->p == ',' && !quoted) {
			lx->p++;
			return;
		}
	}
}

/* "8".."15" without leading zeros, else 0. */
static unsigned window_bits(const char *v)
{
	if (strcmp(v, "8") == 0 || strcmp(v, "9") == 0)
		return (unsigned)(v[0] - '0');
	if (v[0] == '1' && v[1] >= '0' && v[1] <= '5' && v[2] == '\0')
		return 10u + (unsigned)(v[1] - '0');
	return 0;
}

struct offer {
	bool deflate;              /* its name is permessage-deflate */
	bool ok;                   /* every parameter valid, none repeated */
	unsigned seen;             /* bit per parameter */
	unsigned server_bits;      /* 0: not asked */
};

static void offer_param(struct offer *o, const char *name, const char *val)
{
	static const char *const known[] = {
		"server_no_context_takeover", "client_no_context_takeover",
		"server_max_window_bits", "client_max_window_bits",
	};
	unsigned i;

	for (i = 0; i < 4 && strcasecmp(name, known[i]) != 0; i++)
		;
	if (i == 4 || (o->seen & (1u << i))) {
		o->ok = false;         /* unknown or repeated */
		return;
	}
	o->seen |= 1u << i;
	if (i < 2 && val != NULL)
		o->ok = false;         /* the takeover flags take no value */
	else if (i == 2 && (val == NULL || (o->server_bits = window_bits(val)) == 0))
		o->ok = false;
	else if (i == 3 && val != NULL && window_bits(val) == 0)
		o->ok = false;
}

/* Parses one offer, leaving lx after it; false at the end of the value. */
static bool next_offer(struct lexer *lx, struct offer *o)
{
	char name[64], val[16];

	memset(o, 0, sizeof(*o));
	skip_ows(lx);
	if (lx->p >= lx->end)
		return false;
	if (!token(lx, name, sizeof(name))) {
		skip_offer(lx);        /* not even a name: nothing to accept */
		return true;
	}
	o->deflate = strcasecmp(name, "permessage-deflate") == 0;
	o->ok = true;
	for (;;) {
		skip_ows(lx);
		if (lx->p >= lx->end)
			return true;
		if (*lx->p == ',') {
			lx->p++;
			return true;
		}
		if (*lx->p != ';' || (lx->p++, !token(lx, name, sizeof(name))))
			break;
		skip_ows(lx);
		if (lx->p < lx->end && *lx->p == '=') {
			lx->p++;
			if (!value(lx, val, sizeof(val)))
				break;
			offer_param(o, name, val);
		} else {
			offer_param(o, name, NULL);
		}
	}
	o->ok = false;                 /* malformed: declined */
	skip_offer(lx);
	return true;
}

bool ws_deflate_negotiate(const struct http_request *req, unsigned *server_bits,
			  char response[WS_DEFLATE_RESPONSE_MAX])
{
	for (size_t i = 0; i < req->n_headers; i++) {
		const struct http_header *h = &req->headers[i];
		struct lexer lx = { h->value.p, h->value.p + h->value.len };
		struct offer o;

		if (!http_str_eq(&h->name, "Sec-WebSocket-Extensions"))
			continue;
		while (next_offer(&lx, &o)) {
			if (!o.deflate || !o.ok || o.server_bits == 8)
				continue;
			*server_bits = o.server_bits ? o.server_bits : WS_DEFLATE_MAX_BITS;
			if (o.server_bits)
				snprintf(response, WS_DEFLATE_RESPONSE_MAX,
					 "permessage-deflate; server_no_context_takeover; "
					 "client_no_context_takeover; server_max_window_bits=%u",
					 o.server_bits);
			else
				snprintf(response, WS_DEFLATE_RESPONSE_MAX,
					 "permessage-deflate; server_no_context_takeover; "
					 "client_no_context_takeover");
			return true;
		}
	}
	return false;
}

/* ------------------------------------------------------------ zlib */

/* Each loop's thread keeps its streams; they go with the thread. */
struct zstate {
	z_stream inf;
	bool inf_ready;
	uint8_t *out;
	size_t out_cap;
	z_stream def[WS_DEFLATE_VARIANTS];
	int def_level[WS_DEFLATE_VARIANTS];   /* 0: not made */
};

static pthread_key_t zkey;
static pthread_once_t zkey_once = PTHREAD_ONCE_INIT;

static void zstate_free(void *p)
{
	struct zstate *z = p;

	if (z->inf_ready)
		inflateEnd(&z->inf);
	for (int i = 0; i < WS_DEFLATE_VARIANTS; i++)
		if (z->def_level[i])
			deflateEnd(&z->def[i]);
	free(z->out);
	free(z);
}

static void zkey_make(void)
{
	pthread_key_create(&zkey, zstate_free);
}

static struct zstate *zstate(void)
{
	struct zstate *z;

	pthread_once(&zkey_once, zkey_make);
	z = pthread_getspecific(zkey);
	if (z == NULL && (z = calloc(1, sizeof(*z))) != NULL)
		pthread_setspecific(zkey, z);
	return z;
}

/* Room for need bytes of output. */
static bool out_reserve(struct zstate *z, size_t need)
{
	size_t cap = z->out_cap ? z->out_cap : 4096;
	uint8_t *p;

	if (need <= z->out_cap)
		return true;
	while (cap < need)
		cap *= 2;
	if ((p = realloc(z->out, cap)) == NULL)
		return false;
	z->out = p;
	z->out_cap = cap;
	return true;
}

enum ws_inflate_status ws_inflate_message(const uint8_t *in, size_t len, size_t max,
					  const uint8_t **out, size_t *out_len)
{
	static const uint8_t tail[4] = { 0x00, 0x00, 0xff, 0xff };
	struct zstate *z = zstate();
	size_t have = 0;
	int rc = Z_OK;

	if (z == NULL)
		return WS_INFLATE_NO_MEMORY;
	if (!z->inf_ready) {
		if (inflateInit2(&z->inf, -WS_DEFLATE_MAX_BITS) != Z_OK)
			return WS_INFLATE_NO_MEMORY;
		z->inf_ready = true;
	} else {
		inflateReset(&z->inf);
	}
	/* The message, then the empty block RFC 7692 7.2.2 has us append. */
	for (int part = 0; part < 2; part++) {
		z->inf.next_in = (Bytef *)(part ? tail : in);
		z->inf.avail_in = (uInt)(part ? sizeof(tail) : len);
		while (z->inf.avail_in > 0 && rc != Z_STREAM_END) {
			/* One byte beyond max tells "too big" from "exactly max". */
			size_t room = max + 1 - have;
			if (!out_reserve(z, have + (room < 65536 ? room : 65536)))
				return WS_INFLATE_NO_MEMORY;
			z->inf.next_out = z->out + have;
			z->inf.avail_out = (uInt)(z->out_cap - have < room ? z->out_cap - have : room);
			rc = inflate(&z->inf, Z_SYNC_FLUSH);
			have = (size_t)(z->inf.next_out - z->out);
			if (have > max)
				return WS_INFLATE_TOO_BIG;
			if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
				return WS_INFLATE_BAD_DATA;
			if (rc == Z_BUF_ERROR && z->inf.avail_out > 0)
				return WS_INFLATE_BAD_DATA;   /* no progress possible */
		}
	}
	*out = z->out ? z->out : tail;
	*out_len = have;
	return WS_INFLATE_OK;
}

uint8_t *ws_deflate_message(const uint8_t *in, size_t len, unsigned bits, int level,
			    size_t *out_len)
{
	struct zstate *z = zstate();
	unsigned i = bits - WS_DEFLATE_MIN_BITS;
	z_stream *s;
	uint8_t *buf;
	size_t cap;

	if (z == NULL || bits < WS_DEFLATE_MIN_BITS || bits > WS_DEFLATE_MAX_BITS)
		return NULL;
	s = &z->def[i];
	if (z->def_level[i] != level) {
		if (z->def_level[i])
			deflateEnd(s);
		z->def_level[i] = 0;
		if (deflateInit2(s, level, Z_DEFLATED, -(int)bits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
			return NULL;
		z->def_level[i] = level;
	} else {
		deflateReset(s);
	}
	/* A sync flush adds at most a few bytes past deflateBound. */
	cap = deflateBound(s, (uLong)len) + 16;
	if ((buf = malloc(cap)) == NULL)
		return NULL;
	s->next_in = (Bytef *)in;
	s->avail_in = (uInt)len;
	s->next_out = buf;
	s->avail_out = (uInt)cap;
	if (deflate(s, Z_SYNC_FLUSH) != Z_OK || s->avail_in != 0 || s->total_out < 4) {
		free(buf);
		return NULL;
	}
	*out_len = (size_t)s->total_out - 4;   /* the 00 00 ff ff */
	return buf;
}
