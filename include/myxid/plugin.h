/*
 * myxid plugin ABI: the only header myxid installs.
 *
 * A plugin is a shared object that exports one data symbol,
 *
 *     MYXID_PLUGIN_EXPORT const struct myxid_plugin myxid_plugin_entry = { ... };
 *
 * myxid dlopen()s it (RTLD_NOW | RTLD_LOCAL), reads that descriptor and checks
 * its ABI version before touching anything else. Plugins never link against
 * daemon symbols: everything they may ask of the daemon is in the
 * struct myxid_host table handed to init(). Build plugins with -no-undefined.
 *
 * Two kinds of plugin exist, and one plugin may be both:
 *   auth    - turns the token a client sends with Authenticate into a user
 *             identity (user id, optional user type, attributes);
 *   policy  - decides whether a user may subscribe to (exchange, routing key).
 *
 * VERSIONING (the Varnish rule)
 *   MYXID_PLUGIN_ABI_MAJOR changes when anything is removed or changed
 *   incompatibly; a plugin built for another major is refused.
 *   MYXID_PLUGIN_ABI_MINOR changes when something is appended (a host service,
 *   a descriptor field, a request key); a plugin built for a minor up to the
 *   host's loads. The `size` fields tell either side which trailing members the
 *   other was compiled with. Both structs end with reserved pointers that must
 *   be NULL.
 *
 * THREADS
 *   myxid creates one instance of each configured plugin per event loop. Every
 *   call into an instance (init, auth, policy, cancel, deinit, and the
 *   callbacks of its watches and timers) happens on that loop's thread, one at
 *   a time, so an instance needs no locks. The only host service that may be
 *   called from another thread is post().
 *
 * ASYNCHRONOUS ANSWERS
 *   auth() and policy() either answer at once by returning MYXID_ALLOW,
 *   MYXID_DENY, MYXID_NEXT or MYXID_ERROR, or return MYXID_PENDING and later
 *   call host->req_done() exactly once, on the loop thread. A plugin that must
 *   block (a synchronous client library) runs its own worker thread and comes
 *   back to the loop with post(). myxid never acts on an answer re-entrantly:
 *   a req_done() made inside auth()/policy() is processed after it returns.
 *
 *   myxid owns every struct myxid_req. If the client disconnects or the
 *   request times out, myxid calls the plugin's cancel(); from then on the
 *   plugin must not touch the request nor call req_done() for it.
 *
 * CHAINS
 *   Auth plugins are tried in configuration order: MYXID_NEXT hands the
 *   request to the next one, the first other answer wins, and when every
 *   plugin says MYXID_NEXT the request is denied. MYXID_ERROR means "could not
 *   decide" (database down): the client is told the service is unavailable,
 *   and the chain does not go on, so an outage never widens access.
 *   Each exchange has one policy instance; its MYXID_NEXT is a denial.
 *
 * MEMORY
 *   Every pointer the host passes (options, request values) is borrowed for
 *   the duration of the call; copy what you keep. Strings given to the host
 *   (req_set_user, req_add_attr, req_done's reason) are copied by it.
 *
 * CHANGELOG
 *   1.0 (2026-11-27)  first version.
 *   1.1 (2026-11-28)  host->instance_kind(), so a plugin of both kinds can
 *                     check its options for the block it was loaded for.
 */
#ifndef MYXID_PLUGIN_H_INCLUDED
#define MYXID_PLUGIN_H_INCLUDED

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MYXID_PLUGIN_ABI_MAJOR 1
#define MYXID_PLUGIN_ABI_MINOR 2

/** Name of the data symbol every plugin exports. */
#define MYXID_PLUGIN_SYMBOL "myxid_plugin_entry"

#if defined(__GNUC__)
#define MYXID_PLUGIN_EXPORT __attribute__((visibility("default")))
#define MYXID_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define MYXID_PLUGIN_EXPORT
#define MYXID_PRINTF(f, a)
#endif

/** Answers of auth() and policy(), and of req_done(). */
enum myxid_verdict {
	MYXID_ALLOW = 0,   /**< authenticated / may subscribe */
	MYXID_DENY = 1,    /**< wrong token / may not subscribe */
	MYXID_NEXT = 2,    /**< no opinion: ask the next plugin */
	MYXID_ERROR = 3,   /**< could not decide (backend down, bad data) */
	MYXID_PENDING = 4  /**< answer follows through req_done(); return only */
};

/** Bits of myxid_plugin.kinds. */
#define MYXID_KIND_AUTH   0x1u
#define MYXID_KIND_POLICY 0x2u

/** Log levels for host->log(). */
enum myxid_log_level {
	MYXID_LOG_DEBUG = 0,
	MYXID_LOG_INFO = 1,
	MYXID_LOG_NOTICE = 2,
	MYXID_LOG_WARNING = 3,
	MYXID_LOG_ERROR = 4
};

/** Bits for fd watches. */
#define MYXID_WATCH_READ  0x1u
#define MYXID_WATCH_WRITE 0x2u

/**
 * One option from the plugin's configuration block. Each line
 * "key value words" of the block becomes one option: key is the first word,
 * value the rest of the line (after ${ENV} expansion), "" when absent.
 * file and line locate it for error messages.
 */
struct myxid_opt {
	const char *key;
	const char *value;
	const char *file;
	unsigned line;
};

struct myxid_instance; /**< opaque: one plugin instance, as the host sees it */
struct myxid_req;      /**< opaque: one auth or policy request, owned by the host */
struct myxid_watch;    /**< opaque: an fd watch on the instance's loop */
struct myxid_timer;    /**< opaque: a one-shot timer on the instance's loop */

/*
 * Request keys readable with req_get(). Every key returns NULL when it has no
 * value for this request.
 *   "token"        auth: the session token the client sent (secret: never log)
 *   "socket_id"    the connection's 16-hex-digit id (as in Welcome)
 *   "peer"         the client's address, "ip" or "ip:port"
 *   "client_ip"    the client's IP: X-Forwarded-For's when the TCP peer is a
 *                  trusted_proxy, else the peer's (myxid >= 0.2)
 *   "origin"       the Origin header of the WebSocket upgrade
 *   "header:NAME"  an upgrade request header named (case-insensitively) by a
 *                  plugin_header directive, else NULL (myxid >= 0.2)
 *   "exchange"     policy: the exchange name
 *   "routing_key"  policy: the routing key as a string
 *   "subscribe_token"  policy: the signed token the Subscribe carried for
 *                  this subscription ("token"), a secret; NULL if none
 *                  (myxid >= 0.2)
 *   "presence"     policy: "1" when the subscriber also asks to see who is
 *                  subscribed to the key (an exchange with presence on);
 *                  a policy that ignores it lets every subscriber see
 *                  (myxid >= 0.2)
 *   "user_id"      policy: the authenticated user's id (NULL if anonymous)
 *   "user_type"    policy: the user's type, if the auth plugin gave one
 *   "attr:NAME"    policy: the user's attribute NAME
 */

/** Services the daemon offers a plugin; passed to init(). */
struct myxid_host {
	unsigned abi_major;    /**< MYXID_PLUGIN_ABI_MAJOR of the daemon */
	unsigned abi_minor;    /**< MYXID_PLUGIN_ABI_MINOR of the daemon */
	size_t size;           /**< sizeof(struct myxid_host) in the daemon */

	/** Log one line, prefixed with the instance's name. No newline needed. */
	void (*log)(struct myxid_instance *inst, int level, const char *fmt, ...)
		MYXID_PRINTF(3, 4);

	/** Read a request value (see the key list above); borrowed. */
	const char *(*req_get)(const struct myxid_req *req, const char *key);

	/**
	 * Auth only, before answering MYXID_ALLOW: set the identity. user_id is
	 * required, user_type may be NULL. Returns 0, or -1 on bad arguments.
	 */
	int (*req_set_user)(struct myxid_req *req, const char *user_id,
			    const char *user_type);

	/** Auth only: attach an attribute to the identity. 0 or -1. */
	int (*req_add_attr)(struct myxid_req *req, const char *key,
			    const char *value);

	/**
	 * Finish a request that was answered MYXID_PENDING. Exactly once, on the
	 * loop thread, never after cancel(). reason (may be NULL) is logged, and
	 * is never shown to the client.
	 */
	void (*req_done)(struct myxid_req *req, enum myxid_verdict verdict,
			 const char *reason);

	/**
	 * Watch fd for MYXID_WATCH_READ / MYXID_WATCH_WRITE. The callback gets
	 * the bits that are ready. The watch is persistent until changed with
	 * watch_set() (events 0 pauses it) or freed. NULL on failure. The fd stays
	 * the caller's to close, after watch_free().
	 */
	struct myxid_watch *(*watch_new)(struct myxid_instance *inst, int fd,
					 unsigned events,
					 void (*cb)(int fd, unsigned ready, void *arg),
					 void *arg);
	int (*watch_set)(struct myxid_watch *w, unsigned events);
	void (*watch_free)(struct myxid_watch **w);

	/**
	 * A one-shot timer; timer_start re-arms it (ms from now). NULL on
	 * failure. A watch or timer may be freed from inside its own callback.
	 */
	struct myxid_timer *(*timer_new)(struct myxid_instance *inst,
					 void (*cb)(void *arg), void *arg);
	void (*timer_start)(struct myxid_timer *t, unsigned ms);
	void (*timer_stop)(struct myxid_timer *t);
	void (*timer_free)(struct myxid_timer **t);

	/**
	 * The only thread-safe service: run cb(arg) soon on the instance's loop
	 * thread. Returns 0, or -1 if it could not be queued.
	 */
	int (*post)(struct myxid_instance *inst, void (*cb)(void *arg), void *arg);

	/**
	 * Resolve path as written in option opt: relative paths are taken from
	 * the directory of the configuration file that holds the option. Writes
	 * a NUL-terminated path into out; returns 0, or -1 if it does not fit.
	 */
	int (*resolve_path)(const struct myxid_opt *opt, const char *path,
			    char *out, size_t out_size);

	/**
	 * Since 1.1: the kind of block this instance was loaded for,
	 * MYXID_KIND_AUTH or MYXID_KIND_POLICY (callable from init on).
	 * Check host->abi_minor >= 1 before using it.
	 */
	unsigned (*instance_kind)(const struct myxid_instance *inst);

	/**
	 * Since 1.2, auth only, after req_set_user(): the credential is valid
	 * until unix_seconds (a signed token's "exp"). At that time the session
	 * is checked again (as by recheck_interval, past every cache) and, once
	 * the plugin refuses the token, ends with SessionExpired; the answer
	 * cache never serves the identity past it. Returns 0, or -1 (no user
	 * set yet, not an auth request, or a time not after 0). Check
	 * host->abi_minor >= 2 before using it.
	 */
	int (*req_set_expiry)(struct myxid_req *req, long long unix_seconds);

	void *reserved[6];
};

/** The descriptor a plugin exports as myxid_plugin_entry. */
struct myxid_plugin {
	/* These three must stay first: they protect the rest. */
	unsigned abi_major;    /**< set to MYXID_PLUGIN_ABI_MAJOR */
	unsigned abi_minor;    /**< set to MYXID_PLUGIN_ABI_MINOR */
	size_t size;           /**< set to sizeof(struct myxid_plugin) */

	unsigned kinds;        /**< MYXID_KIND_AUTH and/or MYXID_KIND_POLICY */
	const char *name;      /**< short name, e.g. "auth_static" */
	const char *version;   /**< the plugin's own version string */

	/**
	 * Create an instance from its options. On success store the instance
	 * state in *ctx_r and return 0. On failure return -1 with a message in
	 * err (err_size bytes, NUL-terminated) and, if one option is to blame,
	 * point *bad_opt_r at it so the daemon can print its file and line.
	 * inst identifies this instance to the host services; keep it.
	 */
	int (*init)(const struct myxid_host *host, struct myxid_instance *inst,
		    const struct myxid_opt *opts, size_t n_opts, void **ctx_r,
		    char *err, size_t err_size, const struct myxid_opt **bad_opt_r);

	/** Free the instance. No request of it is pending by then. */
	void (*deinit)(void *ctx);

	/** Auth kind: check req's "token". See ASYNCHRONOUS ANSWERS. */
	enum myxid_verdict (*auth)(void *ctx, struct myxid_req *req);

	/** Policy kind: may req's user subscribe to exchange/routing_key? */
	enum myxid_verdict (*policy)(void *ctx, struct myxid_req *req);

	/** Forget a pending request (client gone, or timed out). May be NULL
	 *  for plugins that never answer MYXID_PENDING. */
	void (*cancel)(void *ctx, struct myxid_req *req);

	void *reserved[8];
};

#ifdef __cplusplus
}
#endif

#endif /* MYXID_PLUGIN_H_INCLUDED */
