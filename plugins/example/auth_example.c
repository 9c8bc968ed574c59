/*
 * auth_example: an example auth plugin for myxid, written to be copied.
 *
 * It accepts tokens of the form "example-<digits>": the user id is the
 * digits (1 to 18 of them) and the user type "Example". A token without the
 * "example-" prefix is not ours, so it answers MYXID_NEXT and lets the next
 * plugin in the chain try; "example-" followed by anything else is denied.
 *
 * What makes it worth reading is that it answers *asynchronously*, the way
 * a plugin that asks a database or a web service must: auth() returns
 * MYXID_PENDING, and the answer comes later, from a timer standing in for
 * the backend's reply, through host->req_done(). The other half of that
 * contract is cancel(): when the client goes away first, the plugin forgets
 * the request and never answers it.
 *
 * Configuration (the block's lines are this plugin's options):
 *
 *     auth /path/to/auth_example.so {
 *         delay_ms 20        # how long the "backend" takes; default 50
 *     }
 *
 * Build: see Makefile.example and README.md next to this file. The plugin
 * uses only libc and the host table; it never links against the daemon.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <myxid/plugin.h>

#define TOKEN_PREFIX "example-"
#define MAX_DIGITS 18           /* so the id always fits a signed 64-bit int */
#define DEFAULT_DELAY_MS 50
#define MAX_DELAY_MS 60000

struct example;

/*
 * A request we answered MYXID_PENDING and still owe an answer. Everything
 * needed to answer is copied here at auth() time: the token the host lent
 * us is only valid during that call.
 */
struct pending {
	struct example *ex;
	struct myxid_req *req;        /* owned by the host, not by us */
	struct myxid_timer *timer;
	enum myxid_verdict verdict;
	char user_id[MAX_DIGITS + 1];
	struct pending *prev;
	struct pending *next;
};

/* One instance; myxid makes one per event loop, so no locking is needed. */
struct example {
	const struct myxid_host *host;
	struct myxid_instance *inst;
	unsigned delay_ms;
	struct pending *pending;      /* requests awaiting their answer */
};

/* ------------------------------------------------------------ the "backend" */

/*
 * The decision itself. A real plugin would start a query here; this one
 * knows the answer at once and only pretends to wait.
 */
static enum myxid_verdict classify(const char *token, char *user_id)
{
	size_t prefix_len = strlen(TOKEN_PREFIX);
	const char *digits;
	size_t n = 0;

	if (token == NULL || strncmp(token, TOKEN_PREFIX, prefix_len) != 0)
		return MYXID_NEXT;
	digits = token + prefix_len;
	while (n <= MAX_DIGITS && digits[n] >= '0' && digits[n] <= '9')
		n++;
	if (n == 0 || n > MAX_DIGITS || digits[n] != '\0')
		return MYXID_DENY;
	memcpy(user_id, digits, n);
	user_id[n] = '\0';
	return MYXID_ALLOW;
}

/* ------------------------------------------------------------ pending list */

static void pending_link(struct example *ex, struct pending *p)
{
	p->prev = NULL;
	p->next = ex->pending;
	if (ex->pending != NULL)
		ex->pending->prev = p;
	ex->pending = p;
}

static void pending_unlink(struct example *ex, struct pending *p)
{
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		ex->pending = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	p->prev = p->next = NULL;
}

/* Forget p: unlink it and free it with its timer. timer_free() also stops
 * the timer, so its callback can no longer run. */
static void pending_drop(struct example *ex, struct pending *p)
{
	pending_unlink(ex, p);
	ex->host->timer_free(&p->timer);
	free(p);
}

/* ------------------------------------------------------------ answering */

/*
 * The timer fired: the "backend" has answered. Runs on the loop thread, like
 * every callback the host makes, so it is safe to call req_done() here.
 */
static void on_answer(void *arg)
{
	struct pending *p = arg;
	struct example *ex = p->ex;
	const struct myxid_host *host = ex->host;
	struct myxid_req *req = p->req;
	enum myxid_verdict verdict = p->verdict;
	const char *reason = NULL;

	/* Set the identity before req_done(): the host reads it then. It
	 * copies the strings, so p may be freed right after. */
	if (verdict == MYXID_ALLOW &&
	    host->req_set_user(req, p->user_id, "Example") < 0) {
		verdict = MYXID_ERROR;
		reason = "host refused the user id";
	}
	if (verdict == MYXID_DENY)
		reason = "malformed example token";   /* logged, never sent */

	/* Drop our record *before* answering: once req_done() returns the
	 * host may free req, and nothing may still point at it. A one-shot
	 * timer may be freed from its own callback. */
	pending_drop(ex, p);

	host->req_done(req, verdict, reason);
}

/* ------------------------------------------------------------ the ABI calls */

/* Strict decimal, so "20ms" or "-1" is an error rather than a surprise. */
static int parse_delay(const char *s, unsigned *out)
{
	unsigned long v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > MAX_DELAY_MS)
			return -1;
	}
	*out = (unsigned)v;
	return 0;
}

/*
 * init(): check the host, read the options, create the instance.
 * On failure write a message into err and, when one option is to blame,
 * point *bad_opt_r at it: myxid then prints its file and line.
 */
static int example_init(const struct myxid_host *host, struct myxid_instance *inst,
			const struct myxid_opt *opts, size_t n_opts, void **ctx_r,
			char *err, size_t err_size,
			const struct myxid_opt **bad_opt_r)
{
	struct example *ex;
	unsigned delay_ms = DEFAULT_DELAY_MS;
	size_t i;

	/* The host's size says which services it has. Myxid refuses plugins
	 * built for a newer minor, but checking what we call costs nothing
	 * and is the habit to keep when a plugin needs a service added in a
	 * later minor. */
	if (host->abi_major != MYXID_PLUGIN_ABI_MAJOR ||
	    host->size < offsetof(struct myxid_host, timer_free) +
			 sizeof(host->timer_free)) {
		snprintf(err, err_size, "host lacks the services this plugin needs");
		return -1;
	}

	for (i = 0; i < n_opts; i++) {
		if (strcmp(opts[i].key, "delay_ms") != 0) {
			snprintf(err, err_size, "unknown option \"%s\"", opts[i].key);
			*bad_opt_r = &opts[i];
			return -1;
		}
		if (parse_delay(opts[i].value, &delay_ms) < 0) {
			snprintf(err, err_size, "delay_ms wants a whole number "
				 "of milliseconds up to %d", MAX_DELAY_MS);
			*bad_opt_r = &opts[i];
			return -1;
		}
	}

	ex = calloc(1, sizeof(*ex));
	if (ex == NULL) {
		snprintf(err, err_size, "out of memory");
		return -1;
	}
	ex->host = host;
	ex->inst = inst;          /* the handle for log(), timers, watches */
	ex->delay_ms = delay_ms;
	*ctx_r = ex;
	host->log(inst, MYXID_LOG_INFO, "answering after %u ms", delay_ms);
	return 0;
}

/* myxid cancels every pending request before deinit(), so the list should
 * be empty here; emptying it anyway keeps a host bug from leaking. */
static void example_deinit(void *ctx)
{
	struct example *ex = ctx;

	while (ex->pending != NULL)
		pending_drop(ex, ex->pending);
	free(ex);
}

static enum myxid_verdict example_auth(void *ctx, struct myxid_req *req)
{
	struct example *ex = ctx;
	const struct myxid_host *host = ex->host;
	struct pending *p;
	char user_id[MAX_DIGITS + 1];
	enum myxid_verdict verdict;

	/* The token is secret: read it, decide, never log it. */
	verdict = classify(host->req_get(req, "token"), user_id);

	/* Not our kind of token: say so at once, no need to wait. */
	if (verdict == MYXID_NEXT)
		return MYXID_NEXT;

	/* Ours: "ask the backend" and answer when it replies. Any failure to
	 * set that up is MYXID_ERROR, never a guess. */
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return MYXID_ERROR;
	p->ex = ex;
	p->req = req;
	p->verdict = verdict;
	memcpy(p->user_id, user_id, sizeof(user_id));
	p->timer = host->timer_new(ex->inst, on_answer, p);
	if (p->timer == NULL) {
		free(p);
		host->log(ex->inst, MYXID_LOG_ERROR, "could not create a timer");
		return MYXID_ERROR;
	}
	pending_link(ex, p);
	host->timer_start(p->timer, ex->delay_ms);
	return MYXID_PENDING;
}

/*
 * The client went away or the host's auth timeout expired. From now on req
 * may be freed at any moment: find our record, stop its timer, and forget
 * it. A request we already answered is not in the list, and that is fine.
 */
static void example_cancel(void *ctx, struct myxid_req *req)
{
	struct example *ex = ctx;
	struct pending *p;

	for (p = ex->pending; p != NULL; p = p->next) {
		if (p->req == req) {
			pending_drop(ex, p);
			return;
		}
	}
}

/* The one symbol myxid looks for. It checks abi_major/abi_minor/size first,
 * so those three must come first and hold this header's values. */
MYXID_PLUGIN_EXPORT const struct myxid_plugin myxid_plugin_entry = {
	.abi_major = MYXID_PLUGIN_ABI_MAJOR,
	.abi_minor = MYXID_PLUGIN_ABI_MINOR,
	.size = sizeof(struct myxid_plugin),
	.kinds = MYXID_KIND_AUTH,
	.name = "auth_example",
	.version = "1.0",
	.init = example_init,
	.deinit = example_deinit,
	.auth = example_auth,
	.policy = NULL,             /* not a policy plugin */
	.cancel = example_cancel,   /* required: we answer MYXID_PENDING */
};
