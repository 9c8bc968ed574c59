/*
 * The service manager's readiness protocol (sd_notify): one datagram to
 * $NOTIFY_SOCKET, written here so myxid needs no libsystemd. Does nothing
 * when the variable is unset.
 */
#ifndef MYXID_NOTIFY_H
#define MYXID_NOTIFY_H

/* e.g. "READY=1", "RELOADING=1", "STOPPING=1", "STATUS=..." */
void notify_manager(const char *state);

#endif
