/*
 * What a new connection is served by: a plain HTTP request goes to the HTTP
 * API (http_api.c), a WebSocket upgrade starts a session (session.c). The
 * listener hands this table to every connection it accepts; conn.c calls
 * through it and so includes neither protocol.
 */
#ifndef MYXID_PROTOCOLS_H
#define MYXID_PROTOCOLS_H

struct conn_handler;

extern const struct conn_handler protocols_handler;

#endif
