/*
 * Replies to a socket's actions, held until the loop has run the callbacks
 * it had ready, then written with one system call per socket.
 *
 * Queued in the bufferevent's output, a reply to an idle socket costs an
 * epoll_ctl() to arm its write event, a wake-up, and another epoll_ctl()
 * to disarm it: three system calls around the one write, for every
 * Authenticate or Subscribe (the answer comes from a plugin's callback,
 * not from the read). The stage is one arena per loop; a flush event,
 * activated with the first staged reply, runs after the callbacks already
 * queued and writes each socket's replies in one sendmsg().
 *
 * Only text frames for a plain (not TLS) socket with nothing else queued
 * are staged. Any other output for a socket first moves its staged bytes
 * into its bufferevent (reply_stage_spill), so the order never changes.
 */
#ifndef MYXID_REPLY_STAGE_H
#define MYXID_REPLY_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bufferevent;
struct event_base;
struct reply_stage;

/* What a socket carries for the stage (embedded in it, zeroed at first). */
struct staged_socket {
	struct bufferevent *bev;       /* its fd and output: set before each add */
	uint32_t slot;                 /* reply_stage.c's: 1 + index, 0: none */
	uint32_t first, last;          /* its records in the arena */
};

struct reply_stage *reply_stage_new(struct event_base *base);

/* Writes nothing: call once no socket of the loop is left. */
void reply_stage_free(struct reply_stage **st);

/* Stage the frame hdr+payload for s, a plain socket: the caller checks
 * that one not staged yet has nothing queued. False if it cannot be: the
 * caller queues it the usual way, after s's staged replies, now spilled. */
bool reply_stage_add(struct reply_stage *st, struct staged_socket *s,
		     const void *hdr, size_t hlen, const void *payload, size_t len);

/* Move s's staged replies to its bufferevent's output. */
void reply_stage_spill(struct reply_stage *st, struct staged_socket *s);

/* s is being freed: drop its staged replies. */
void reply_stage_forget(struct reply_stage *st, struct staged_socket *s);

#endif
