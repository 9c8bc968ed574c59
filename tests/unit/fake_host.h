/*
 * A stand-in for the daemon's side of the plugin ABI, for unit tests that
 * load real plugin .so files: a struct myxid_host whose services record
 * what the plugin did (log lines, identity, attributes, answers) and run
 * its timers and fd watches on a small poll() loop the test drives.
 *
 * The plugins only ever see struct myxid_req and struct myxid_instance as
 * opaque pointers, so this header is free to define them for the tests.
 */
#ifndef MYXID_FAKE_HOST_H
#define MYXID_FAKE_HOST_H

#include <stddef.h>
#include <pthread.h>
#include <myxid/plugin.h>

#define FAKE_REQ_MAX_KV 16
#define FAKE_REQ_MAX_ATTRS 16

struct fake_host;

/* A request: values the plugin may read, and what it answered. */
struct myxid_req {
	/* input, set with fake_req_set(); the strings are borrowed */
	const char *keys[FAKE_REQ_MAX_KV];
	const char *values[FAKE_REQ_MAX_KV];
	size_t n_kv;

	/* req_set_user / req_add_attr, copied */
	int n_set_user;
	char *user_id;
	char *user_type;
	char *attr_keys[FAKE_REQ_MAX_ATTRS];
	char *attr_values[FAKE_REQ_MAX_ATTRS];
	size_t n_attrs;

	/* req_done */
	int n_done;                     /* more than 1 is a plugin bug */
	enum myxid_verdict verdict;
	char *reason;
	long long done_at_ms;           /* fake_host_now_ms() at req_done */

	int cancelled;                  /* set by fake_req_cancel() */
	int n_done_after_cancel;        /* any is a plugin bug */
	int n_bad_calls;                /* invalid arguments to a service */
};

struct myxid_instance {
	struct fake_host *fh;
};

struct fake_post;

struct fake_host {
	struct myxid_host host;         /* hand &fh->host to init() */
	struct myxid_instance inst;     /* and &fh->inst */

	char log[8192];                 /* every log line, '\n'-separated */
	size_t log_len;
	int n_logs;
	int verbose;                    /* also print log lines to stderr */

	struct myxid_timer *timers;
	struct myxid_watch *watches;
	int live_timers;                /* created and not yet freed */
	int live_watches;
	unsigned long next_watch_id;

	pthread_mutex_t post_lock;      /* post() is the thread-safe service */
	struct fake_post *posts;
	int wake[2];                    /* pipe that interrupts poll() */
};

/* Fill in the host table; verbose comes from env FAKE_HOST_VERBOSE. */
int fake_host_init(struct fake_host *fh);
/* Free what the plugin left (tests then check live_timers etc. first). */
void fake_host_fini(struct fake_host *fh);

/* Run timers, watches and posts until none is armed (returns 0) or max_ms
 * have passed (returns 1). */
int fake_host_run(struct fake_host *fh, unsigned max_ms);

/* Does the captured log contain needle? */
int fake_host_log_has(const struct fake_host *fh, const char *needle);
void fake_host_log_clear(struct fake_host *fh);

long long fake_host_now_ms(void);

void fake_req_init(struct myxid_req *req);
/* Add or replace a value; value NULL removes it. Borrowed, not copied. */
void fake_req_set(struct myxid_req *req, const char *key, const char *value);
/* An attribute the plugin added, or NULL. */
const char *fake_req_attr(const struct myxid_req *req, const char *key);
/* Mark req cancelled and call the plugin's cancel(), as the daemon would. */
void fake_req_cancel(struct myxid_req *req, const struct myxid_plugin *p,
		     void *ctx);
/* Free the copies; the req can be reused after fake_req_init(). */
void fake_req_fini(struct myxid_req *req);

#endif
