/*
 * The handler a connection starts with; see protocols.h. An upgrade
 * replaces it with the session's (session_new installs that).
 */
#include "protocols.h"
#include "conn.h"
#include "http_api.h"
#include "http_reply.h"
#include "session.h"

static void open_session(struct conn *c)
{
	c->session = session_new(c);
}

const struct conn_handler protocols_handler = {
	.request = http_api_handle,
	.max_body = HTTP_API_MAX_BODY,
	.upgraded = open_session,
	/* A POST /publish may still wait for its fan-out when c goes. */
	.closed = http_wait_forget,
};
