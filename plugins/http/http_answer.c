/*
 * The application's answer as a verdict: see http_answer.h.
 */
#define _POSIX_C_SOURCE 200809L

#include "http_answer.h"
#include "http_json.h"

#include <stdio.h>

/* The verdict for a status other than 200. */
static enum myxid_verdict status_verdict(int status, bool is_auth, char *buf,
					 size_t size, const char **reason)
{
	if (status == 401 || status == 403)
		return MYXID_DENY;
	if (status == 204 && is_auth)
		return MYXID_NEXT;
	/* libcurl is never told to follow: a 3xx lands here like any status. */
	if (status >= 300 && status < 400)
		snprintf(buf, size, "the application answered a redirect (%d); "
			 "redirects are not followed: fix the url", status);
	else
		snprintf(buf, size, "the application answered status %d", status);
	*reason = buf;
	return MYXID_ERROR;
}

enum myxid_verdict ha_verdict(const struct myxid_host *host,
			      struct myxid_req *req, bool is_auth,
			      const struct hc_result *res, char *buf,
			      size_t size, const char **reason)
{
	const char *why;

	*reason = NULL;
	if (res->status == 0) {
		snprintf(buf, size, "no answer from the application: %s",
			 res->error != NULL ? res->error : "unknown error");
		*reason = buf;
		return MYXID_ERROR;
	}
	if (res->status != 200)
		return status_verdict(res->status, is_auth, buf, size, reason);
	if (!is_auth)
		return MYXID_ALLOW;
	why = hj_auth_answer(host, req, res->body, res->body_len);
	if (why != NULL) {
		snprintf(buf, size, "bad answer from the application "
			 "(status 200): %s", why);
		*reason = buf;
		return MYXID_ERROR;
	}
	return MYXID_ALLOW;
}
