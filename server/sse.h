/*
 * The Server-Sent Events transport: a session whose client cannot speak
 * WebSocket (a proxy breaks the upgrade) reads the same events as an HTTP
 * response of type text/event-stream.
 *
 * GET sse_path?token=T&subscribe=EXCHANGE:KEY... (see sse_query.h) opens a
 * session exactly like a WebSocket's: the token goes through Authenticate
 * and each subscription through Subscribe, in order, with the same
 * plugins, caches, limits and re-checks. The HTTP status waits for their
 * answers: 200 and the stream once all succeeded, else 401 (token), 403
 * (a subscription denied), 400 (a bad request) or 503 (a backend or the
 * daemon unavailable), with the Error's payload as a JSON body.
 *
 * Every message a WebSocket client would get (Welcome, Authenticated,
 * Subscribed, events) is one SSE message: "event: NAME" and "data: JSON",
 * the JSON being byte for byte the WebSocket text. A message that moves a
 * subscription's position carries "id:", listing every subscription's
 * position (sse_query.h): a reconnecting EventSource's Last-Event-ID
 * resumes all of them. A published event's SSE form is made once and
 * shared by every stream, like its WebSocket frame.
 */
#ifndef MYXID_SSE_H
#define MYXID_SSE_H

struct conn;
struct http_request;

/* Answer GET on sse_path: start a stream, or an error status. */
void sse_open(struct conn *c, const struct http_request *req);

#endif
