/*
 * The JSON the http plugin exchanges with the application: the documents
 * it POSTs (built here by hand, so that the buffer holding a token is ours
 * to scrub) and the reading of the application's authentication answer
 * (with json-c, strict mode). The shapes are documented in myxid-http(7)
 * and are a stable interface.
 */
#ifndef MYXID_HTTP_JSON_H
#define MYXID_HTTP_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <myxid/plugin.h>

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

/* A growing text buffer; scrubbed when freed (it may hold a token). */
struct jbuf {
	char *p;
	size_t len, cap;
	bool oom;                 /* an append failed: the text is unusable */
};

void jb_free(struct jbuf *b);

/* Append raw text. */
void jb_raw(struct jbuf *b, const char *s);

/* Append s as a JSON string ("..." with escapes), or null when s is
 * NULL. Bytes that are not valid UTF-8 become U+FFFD. */
void jb_str(struct jbuf *b, const char *s);

/* Append ,"key": when not first, "key": otherwise; then the value. */
void jb_key(struct jbuf *b, const char *key, bool first);

/*
 * The Authenticate document for req:
 *   {"action":"authenticate","token":..,"socket_id":..,"remote_addr":..,
 *    "client_ip":..,"origin":..[,"headers":{NAME:..|null}]}
 * (headers: the send_header names given, when there are any)
 */
void hj_auth_request(struct jbuf *b, const struct myxid_host *host,
		     const struct myxid_req *req, char *const *headers,
		     size_t n_headers);

/*
 * The Subscribe document for req, with the user's attributes named in
 * attrs (n_attrs names) that the user has:
 *   {"action":"subscribe","exchange":..,"routing_key":..,"socket_id":..,
 *    "remote_addr":..,"origin":..,"user":null|{"user_id":..,
 *    "user_type":..|null,"attributes":{..}}}
 */
void hj_policy_request(struct jbuf *b, const struct myxid_host *host,
		       const struct myxid_req *req, char *const *attrs,
		       size_t n_attrs, char *const *headers, size_t n_headers);

/*
 * Read a 200 answer to an Authenticate (body, len bytes) into req's
 * identity: {"user_id": string or integer, "user_type": string or null,
 * "attributes": {name: string, number or boolean}}. NULL on success, else
 * why the answer is unusable (static text, never the answer's bytes).
 */
const char *hj_auth_answer(const struct myxid_host *host, struct myxid_req *req,
			   const char *body, size_t len);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
