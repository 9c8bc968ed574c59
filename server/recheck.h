/*
 * The periodic re-check of a session's token and subscriptions; see
 * recheck.c. Runs on the session's loop, as an action of its own.
 */
#ifndef MYXID_RECHECK_H
#define MYXID_RECHECK_H

struct session;

/* Arm s's next re-check (jittered), if recheck_interval is set. */
void recheck_arm(struct session *s);

/* Run a re-check now, as the session's current action. */
void recheck_start(struct session *s);

/* The session's credential ends at s->ident->expires_at: re-check it
 * then (the plugin refusing it ends the session with SessionExpired). */
void recheck_arm_expiry(struct session *s);

#endif
