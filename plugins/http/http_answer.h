/*
 * What the application's answer means for a request: the verdict the
 * plugin hands to req_done() and, for an error, the one log line saying
 * why. Pure (no I/O), so the whole mapping is unit-tested
 * (tests/unit/test_http_client.c); the rules are in http.c's ANSWERS.
 */
#ifndef MYXID_HTTP_ANSWER_H
#define MYXID_HTTP_ANSWER_H

#include <stdbool.h>
#include <stddef.h>
#include <myxid/plugin.h>

#include "http_client.h"

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

/*
 * The verdict for res. An auth 200 reads the identity into req (through
 * host->req_set_user and req_add_attr). *reason is NULL, or for an
 * ERROR the reason, formatted into buf (size bytes).
 */
enum myxid_verdict ha_verdict(const struct myxid_host *host,
			      struct myxid_req *req, bool is_auth,
			      const struct hc_result *res, char *buf,
			      size_t size, const char **reason);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
