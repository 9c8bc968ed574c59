/*
 * Unit tests of what is pure in the http plugin (linked directly: plugins
 * are separate modules). HTTP itself is libcurl's; what is ours and tested
 * here:
 *   - the answer mapping (plugins/http/http_answer.c): status and body to
 *     verdict, identity and the log line;
 *   - the request header list (http_easy.c): ours, then the configured
 *     lines, the secret ones scrubbed when freed;
 *   - the words for a failed transfer (http_easy.c);
 *   - the JSON documents POSTed (http_json.c).
 * The host is a fake: its req_get/req_set_user/req_add_attr work on a
 * table of keys and record what the plugin sets.
 */
#include "http_answer.h"
#include "http_curl.h"
#include "http_json.h"
#include "tap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The fake request: the host owns it; the plugin sees it opaque. */
struct myxid_req {
	const char *const *keys;     /* key, value, key, value, ..., NULL */
	char user_id[64], user_type[64];
	bool have_user, have_type;
	char attrs[512];             /* "k=v;" ... */
};

static const char *fake_get(const struct myxid_req *req, const char *key)
{
	for (size_t i = 0; req->keys != NULL && req->keys[i] != NULL; i += 2)
		if (strcmp(req->keys[i], key) == 0)
			return req->keys[i + 1];
	return NULL;
}

static int fake_set_user(struct myxid_req *req, const char *id,
			 const char *type)
{
	if (id == NULL || id[0] == '\0')
		return -1;
	snprintf(req->user_id, sizeof(req->user_id), "%s", id);
	req->have_user = true;
	req->have_type = type != NULL;
	snprintf(req->user_type, sizeof(req->user_type), "%s", type ? type : "");
	return 0;
}

static int fake_add_attr(struct myxid_req *req, const char *k, const char *v)
{
	size_t n = strlen(req->attrs);

	snprintf(req->attrs + n, sizeof(req->attrs) - n, "%s=%s;", k, v);
	return 0;
}

static const struct myxid_host host = {
	.abi_major = MYXID_PLUGIN_ABI_MAJOR,
	.abi_minor = MYXID_PLUGIN_ABI_MINOR,
	.size = sizeof(struct myxid_host),
	.req_get = fake_get,
	.req_set_user = fake_set_user,
	.req_add_attr = fake_add_attr,
};

/* ------------------------------------------------------------ answers */

struct answer_case {
	const char *what;
	bool is_auth;
	int status;
	const char *body;
	const char *error;            /* the client's, for status 0 */
	enum myxid_verdict want;
	const char *reason;           /* NULL: none */
};

static const struct answer_case answer_cases[] = {
	{ "auth 200 with an identity", true, 200, "{\"user_id\":\"1\"}", NULL,
	  MYXID_ALLOW, NULL },
	{ "auth 401", true, 401, "", NULL, MYXID_DENY, NULL },
	{ "auth 403 with a body", true, 403, "{\"error\":\"x\"}", NULL, MYXID_DENY, NULL },
	{ "auth 204: no opinion", true, 204, "", NULL, MYXID_NEXT, NULL },
	{ "policy 204 is not an answer", false, 204, "", NULL, MYXID_ERROR,
	  "the application answered status 204" },
	{ "policy 200, any body", false, 200, "not even json", NULL, MYXID_ALLOW, NULL },
	{ "policy 403", false, 403, "", NULL, MYXID_DENY, NULL },
	{ "a redirect is not followed", true, 302, "", NULL, MYXID_ERROR,
	  "the application answered a redirect (302); redirects are not "
	  "followed: fix the url" },
	{ "301 for a policy", false, 301, "", NULL, MYXID_ERROR,
	  "the application answered a redirect (301); redirects are not "
	  "followed: fix the url" },
	{ "500", true, 500, "oops", NULL, MYXID_ERROR,
	  "the application answered status 500" },
	{ "no answer", true, 0, "", "connect: Connection refused", MYXID_ERROR,
	  "no answer from the application: connect: Connection refused" },
	{ "no answer, policy", false, 0, "", "no answer within 1000 ms",
	  MYXID_ERROR, "no answer from the application: no answer within 1000 ms" },
	{ "bad JSON", true, 200, "{not json", NULL, MYXID_ERROR,
	  "bad answer from the application (status 200): answer is not valid JSON" },
	{ "trailing bytes", true, 200, "{\"user_id\":\"1\"} x", NULL, MYXID_ERROR,
	  "bad answer from the application (status 200): answer is not valid JSON" },
	{ "empty 200", true, 200, "", NULL, MYXID_ERROR,
	  "bad answer from the application (status 200): answer is empty (200 "
	  "needs a JSON object)" },
	{ "an array", true, 200, "[1,2]", NULL, MYXID_ERROR,
	  "bad answer from the application (status 200): answer is not a JSON object" },
	{ "no user_id", true, 200, "{\"name\":\"x\"}", NULL, MYXID_ERROR,
	  "bad answer from the application (status 200): answer has no \"user_id\"" },
	{ "boolean user_id", true, 200, "{\"user_id\":true}", NULL, MYXID_ERROR,
	  "bad answer from the application (status 200): answer: \"user_id\" is "
	  "not a string or an integer" },
	{ "numeric user_type", true, 200, "{\"user_id\":\"1\",\"user_type\":5}", NULL,
	  MYXID_ERROR, "bad answer from the application (status 200): answer: "
	  "\"user_type\" is not a string or null" },
	{ "an object attribute", true, 200,
	  "{\"user_id\":\"1\",\"attributes\":{\"a\":{\"b\":1}}}", NULL, MYXID_ERROR,
	  "bad answer from the application (status 200): answer: an attribute "
	  "value is not a string, number or boolean" },
};

static void test_answers(void)
{
	for (size_t i = 0; i < sizeof(answer_cases) / sizeof(answer_cases[0]); i++) {
		const struct answer_case *a = &answer_cases[i];
		struct myxid_req req = { 0 };
		struct hc_result res = {
			.status = a->status, .body = a->body,
			.body_len = strlen(a->body), .error = a->error,
		};
		const char *reason = "unset";
		char buf[512];
		enum myxid_verdict v;

		v = ha_verdict(&host, &req, a->is_auth, &res, buf, sizeof(buf),
			       &reason);
		is_int(v, a->want, "%s: verdict", a->what);
		if (a->reason == NULL)
			ok(reason == NULL, "%s: no reason (%s)", a->what,
			   reason ? reason : "-");
		else
			is_str(reason, a->reason, "%s: the log line", a->what);
	}
}

static void test_identity(void)
{
	struct myxid_req req = { 0 };
	const char *body = "{\"user_id\":42,\"user_type\":\"User\",\"attributes\":"
		"{\"deployments\":\"d1,d2\",\"n\":7,\"admin\":false}}";
	struct hc_result res = { .status = 200, .body = body,
				 .body_len = strlen(body) };
	const char *reason;
	char buf[256];

	is_int(ha_verdict(&host, &req, true, &res, buf, sizeof(buf), &reason),
	       MYXID_ALLOW, "a full identity: ALLOW");
	is_str(req.user_id, "42", "an integer user_id becomes text");
	is_str(req.user_type, "User", "the user_type");
	is_str(req.attrs, "deployments=d1,d2;n=7;admin=false;",
	       "attributes: strings, numbers and booleans as text");

	memset(&req, 0, sizeof(req));
	body = "{\"user_id\":\"9\",\"user_type\":null}";
	res.body = body;
	res.body_len = strlen(body);
	is_int(ha_verdict(&host, &req, true, &res, buf, sizeof(buf), &reason),
	       MYXID_ALLOW, "user_type null: ALLOW");
	ok(req.have_user && !req.have_type, "... with no user_type");

	/* The answer's bytes never reach the log line. */
	memset(&req, 0, sizeof(req));
	body = "{\"user_id\":\"\",\"echo\":\"tok-SECRET\"}";
	res.body = body;
	res.body_len = strlen(body);
	ha_verdict(&host, &req, true, &res, buf, sizeof(buf), &reason);
	ok(reason != NULL && strstr(reason, "SECRET") == NULL,
	   "a bad answer's reason quotes none of it (%s)", reason ? reason : "-");
}

/* ------------------------------------------------------------ headers */

static size_t list_len(const struct curl_slist *l)
{
	size_t n = 0;

	for (; l != NULL; l = l->next)
		n++;
	return n;
}

static void test_headers(void)
{
	struct curl_slist *l = hc_header_list("Authorization: Bearer s3cret\r\n"
					      "X-Myxid-Node: a b\r\n");
	const struct curl_slist *p = l;

	is_int(list_len(l), 5, "three of ours and the two configured");
	is_str(p->data, "Content-Type: application/json", "Content-Type first");
	p = p->next;
	is_str(p->data, "Accept: application/json", "Accept");
	p = p->next;
	is_str(p->data, "Expect:", "no Expect: 100-continue round trip");
	p = p->next;
	is_str(p->data, "Authorization: Bearer s3cret", "the bearer token line");
	p = p->next;
	is_str(p->data, "X-Myxid-Node: a b", "a configured line, spaces kept");
	hc_header_list_free(l);

	l = hc_header_list("");
	is_int(list_len(l), 3, "no configured headers: ours only");
	hc_header_list_free(l);
	l = hc_header_list(NULL);
	is_int(list_len(l), 3, "NULL is no configured headers");
	hc_header_list_free(l);
}

/* ------------------------------------------------------------ errors */

struct error_case {
	CURLcode rc;
	long os_errno;
	const char *errbuf;
	bool too_big;
	const char *want;
	bool unreachable;
};

static const struct error_case error_cases[] = {
	{ CURLE_COULDNT_CONNECT, ECONNREFUSED, "Failed to connect", false,
	  "connect: Connection refused", true },
	{ CURLE_COULDNT_CONNECT, 0, "Failed to connect to x port 1", false,
	  "connect: Failed to connect to x port 1", true },
	{ CURLE_COULDNT_RESOLVE_HOST, 0, "Could not resolve host: nowhere", false,
	  "cannot resolve: Could not resolve host: nowhere", true },
	{ CURLE_PEER_FAILED_VERIFICATION, 0, "SSL certificate problem: x", false,
	  "certificate verification failed: SSL certificate problem: x", true },
	{ CURLE_SSL_CONNECT_ERROR, 0, "handshake failure", false,
	  "TLS handshake: handshake failure", true },
	{ CURLE_GOT_NOTHING, 0, "Empty reply from server", false,
	  "connection closed without a response", false },
	{ CURLE_SEND_FAIL_REWIND, 0, "seek callback returned error 1", false,
	  "connection closed without a response", false },
	{ CURLE_PARTIAL_FILE, 0, "transfer closed", false,
	  "connection closed in the middle of the response", false },
	{ CURLE_WRITE_ERROR, 0, "Failure writing output", true,
	  "body over the size limit (max_body)", false },
	{ CURLE_FILESIZE_EXCEEDED, 0, "Maximum file size exceeded", false,
	  "body over the size limit (max_body)", false },
	{ CURLE_WRITE_ERROR, 0, "Failure writing output", false,
	  "out of memory for the body", false },
	{ CURLE_WEIRD_SERVER_REPLY, 0, "", false,
	  NULL /* curl_easy_strerror's words */, false },
};

static void test_errors(void)
{
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
		const struct error_case *e = &error_cases[i];
		const char *want = e->want ? e->want : curl_easy_strerror(e->rc);
		char out[HC_REASON_MAX];
		bool down;

		down = hc_error_text(e->rc, e->os_errno, e->errbuf, e->too_big,
				     out, sizeof(out));
		is_str(out, want, "curl error %d: the words", (int)e->rc);
		is_int(down, e->unreachable, "curl error %d: unreachable or not",
		       (int)e->rc);
	}
}

/* ------------------------------------------------------------ documents */

static void test_documents(void)
{
	static const char *const keys[] = {
		"token", "t\"ok\n", "socket_id", "0123456789abcdef",
		"peer", "127.0.0.1:5000", "client_ip", "127.0.0.1",
		"header:Cookie", "sid=1", "exchange", "deployment",
		"routing_key", "d1", "user_id", "7", "attr:a", "x", NULL
	};
	char *names[] = { "Cookie", "X-Absent" };
	char *attrs[] = { "a", "missing" };
	struct myxid_req req = { .keys = keys };
	struct jbuf b = { 0 };

	hj_auth_request(&b, &host, &req, names, 2);
	ok(!b.oom, "the auth document is built");
	is_str(b.p, "{\"action\":\"authenticate\",\"token\":\"t\\\"ok\\u000a\","
	       "\"socket_id\":\"0123456789abcdef\",\"remote_addr\":"
	       "\"127.0.0.1:5000\",\"client_ip\":\"127.0.0.1\",\"origin\":null,"
	       "\"headers\":{\"Cookie\":\"sid=1\",\"X-Absent\":null}}",
	       "the auth document: escapes, null for what is absent");
	jb_free(&b);
	ok(b.p == NULL, "freed");

	hj_policy_request(&b, &host, &req, attrs, 2, NULL, 0);
	is_str(b.p, "{\"action\":\"subscribe\",\"exchange\":\"deployment\","
	       "\"routing_key\":\"d1\",\"socket_id\":\"0123456789abcdef\","
	       "\"remote_addr\":\"127.0.0.1:5000\",\"client_ip\":\"127.0.0.1\","
	       "\"origin\":null,\"user\":{\"user_id\":\"7\",\"user_type\":null,"
	       "\"attributes\":{\"a\":\"x\"}}}",
	       "the policy document: only the attributes the user has");
	jb_free(&b);
}

int main(void)
{
	test_answers();
	test_identity();
	test_headers();
	test_errors();
	test_documents();
	return done_testing();
}
