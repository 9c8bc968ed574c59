/*
 * myxid-bench's publisher: one thread that publishes --messages messages,
 * at --rate per second or, with --rate 0, as fast as the deliveries come
 * back (at most --window messages not yet fully delivered), through one of
 * the back ends below. Message j goes to key j % --keys and carries
 * {"seq":j,"t":T}, T = now_ns() just before it is handed over.
 */
#ifndef BENCH_PUBLISH_H
#define BENCH_PUBLISH_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

/* A way to publish. Every function runs on the publisher thread. */
struct pub_backend {
	/* Connect; 0, or -1 with err filled. */
	int (*open)(char *err, size_t err_size);
	/* Can a message go now (HTTP: a connection is free)? */
	int (*can_send)(void);
	/* Hand message seq over; 0, or -1 when publishing cannot go on
	 * (the back end printed why). */
	int (*send)(uint64_t seq, const char *key, uint64_t t_ns);
	/* The descriptors to wait on for the back end's own progress (HTTP
	 * responses); returns how many were put in fds. */
	int (*poll_fds)(struct pollfd *fds, int max);
	/* Handle what poll() reported on those. */
	void (*on_poll)(struct pollfd *fds, int n);
	/* Wait (at most until deadline_ns) for answers still due, then close. */
	void (*finish)(uint64_t deadline_ns);
};

extern const struct pub_backend pub_http;
extern const struct pub_backend pub_amqp;

/* Start the publisher thread; 0, or -1 after printing why. */
int publish_start(void);

/* Wait for the publisher to finish (run.publishing_done is then set). */
void publish_join(void);

/* Back ends: a message was refused (it is then not expected). */
void publish_refused(uint64_t seq);

#endif
