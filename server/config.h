/*
 * The daemon's configuration: read from a file into a struct myxid_config
 * that is immutable once loaded (a reload builds a new one and swaps).
 *
 * The file format: one directive per line, "key value...", '#' starts a
 * comment, "${NAME}" is replaced by the environment variable NAME (an unset
 * variable is an error), values may be double-quoted ("a b" with \" and \\
 * escapes). Blocks are "key args {" ... "}". Unknown keys are errors, and
 * every error is reported as "file:line: problem".
 *
 *   listen 127.0.0.1:5005          # repeatable; "[::1]:5005", "*:5005"
 *   plugin_dir /usr/lib/myxid/plugins
 *   publish_key demo-publish-key   # Bearer key for POST /publish
 *   max_message_size 64k           # largest WebSocket message (1009 beyond)
 *   max_handshake_size 8k          # largest HTTP request head (431 beyond)
 *   handshake_timeout 10s
 *   auth_timeout 5s                # how long a plugin may take to answer
 *   auth_cache 60s                 # reuse an allowed token for this long (0: off)
 *   policy_cache 60s               # reuse an allowed subscription (0: off)
 *   recheck_interval 60s           # re-check sessions and subscriptions (0: off)
 *   log_level info                 # debug|info|notice|warning|error
 *   log stderr                     # stderr|syslog
 *   syslog_address /dev/log       # or another unix socket path, or host:port (UDP)
 *   listen_tls 0.0.0.0:5443        # repeatable; needs the two below
 *   ssl_certificate cert.pem
 *   ssl_certificate_key key.pem
 *   max_connections 10000          # WebSockets at once; 503 beyond
 *   max_connections_per_ip 1000    # 0: no limit
 *   max_subscriptions 1024         # per socket
 *   max_actions_per_second 50      # per socket, burst of twice that; 0: off
 *   max_output_buffer 1m           # a socket queueing more is closed (4008)
 *   ping_interval 30s              # 0: no server pings
 *   ping_timeout 10s
 *   auth_deadline 0                # close sockets not authenticated in time
 *   drain_time 5s                  # SIGTERM closes sockets over this time
 *   allow_origin https://app.example.com  # repeatable, "*" wildcards; none: any
 *   plugin_header Cookie           # repeatable: upgrade headers kept for
 *                                  # plugins (req_get "header:NAME")
 *   trusted_proxy 127.0.0.1/32     # repeatable; their X-Forwarded-For counts
 *   user myxid                     # drop root after binding
 *   workers 0                      # event loops; 0: one per CPU
 *   static_dir demo                # serve this directory's files over GET/HEAD
 *                                  # ("/" is index.html); off by default
 *   client_js myxid.js             # the browser client, served at /myxid.js
 *                                  # (both: relative to this file's directory)
 *   auth static {                  # chained in file order
 *       tokens_file demo-tokens    # free-form plugin options
 *   }
 *   broker rabbitmq {              # broker mode (else RABBITMQ_URL, if set)
 *       url amqp://guest:guest@127.0.0.1:5672    # repeatable: cluster nodes
 *       queue_expires 60s          # the node queue outlives a lost link
 *       heartbeat 10s              # 0 turns AMQP heartbeats off
 *       queue_prefix myxid
 *   }
 *   websocket_compression on       # permessage-deflate when a client offers it
 *   websocket_compression_min_size 256   # smaller frames are sent plain
 *   websocket_compression_level 1  # zlib level 1-9 (each frame is compressed once)
 *   sse on                         # GET /events?token=..&subscribe=EXCHANGE:KEY
 *   sse_path /events
 *   sse_keepalive 15s              # a comment line this often; 0: none
 *   sse_token_cookie NAME          # the token from this cookie when token= is absent
 *   history_memory 64m             # all history kept in memory, at most
 *   history_max_replay 1000        # events one Subscribe may replay
 *   presence_interval 1s           # Presence events per key at most this often
 *   presence_max_users 100         # user ids listed in one Presence event
 *   exchange deployment {
 *       type direct                # direct|topic|fanout
 *       durable no
 *       presence on                # who is here: to subscribers asking presence
 *       history {                  # keep events: resume, late joiners
 *           events 1000            # per routing key (0: no count limit)
 *           bytes 1m               # per routing key
 *           age 1h
 *           stream_bytes 1g        # broker mode: the stream's retention
 *           epoch 1                # broker mode: change it if the stream
 *       }                          # is ever deleted
 *       policy static {            # exactly one per exchange (required)
 *           allow attribute deployments
 *       }
 *   }
 *
 * Sizes take k/m suffixes (1024-based); times take ms/s/m/h suffixes
 * (bare numbers are seconds).
 */
#ifndef MYXID_CONFIG_H
#define MYXID_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <myxid/plugin.h>

enum exchange_type { EXCHANGE_DIRECT = 0, EXCHANGE_TOPIC, EXCHANGE_FANOUT };

/* Where a directive came from; file points to a string owned by the config. */
struct conf_pos {
	const char *file;
	unsigned line;
};

struct conf_listen {
	char *host;              /* NULL or "*" means every address */
	char *port;              /* decimal, as written */
	bool tls;                /* listen_tls: wss:// and https:// */
	struct conf_pos pos;
};

/* A repeatable directive's values, in file order. */
struct conf_strlist {
	char **v;
	size_t n;
};

enum log_target { LOG_TO_STDERR = 0, LOG_TO_SYSLOG };

/* An "auth NAME {...}" or "policy NAME {...}" block. */
struct conf_plugin {
	char *name;              /* as written: "static" or "/abs/path.so" */
	struct conf_pos pos;
	struct myxid_opt *opts;  /* one per line of the block; strings owned */
	size_t n_opts;
};

/* An exchange's "history {...}" block: what is kept per routing key. */
struct conf_history {
	bool enabled;            /* the block was given */
	size_t events;           /* per key (1000; 0: no count limit) */
	size_t bytes;            /* frame bytes per key (1 MiB; 0: none) */
	unsigned age_ms;         /* (1 h; 0: none) */
	size_t stream_bytes;     /* broker mode: the stream's size (1 GiB) */
	char *epoch;             /* broker mode: bump after deleting the
				  * stream (NULL: "1") */
};

struct conf_exchange {
	char *name;
	struct conf_pos pos;
	enum exchange_type type;
	bool durable;
	bool presence;           /* join/leave of users to opted-in watchers */
	struct conf_plugin policy;
	struct conf_history history;
};

/* The "broker rabbitmq {...}" block, or RABBITMQ_URL when there is none. */
struct conf_broker {
	bool enabled;                    /* broker mode */
	char **urls;                     /* amqp:// or amqps://, tried in order */
	size_t n_urls;
	unsigned queue_expires_ms;       /* x-expires of the node's queue; 60 s */
	unsigned heartbeat_ms;           /* AMQP heartbeat; 10 s, 0 = off */
	char *queue_prefix;              /* node queue name prefix; "myxid" */
	struct conf_pos pos;
};

struct myxid_config {
	char *path;                      /* the file as given */
	struct conf_listen *listens;     /* at least one (default *:5005) */
	size_t n_listens;
	char *plugin_dir;                /* NULL: the compiled-in default */
	char *publish_key;               /* NULL: POST /publish is disabled */
	char *control_key;               /* the control API's bearer key, or NULL: off */
	unsigned control_timeout_ms;     /* how long a command waits for other nodes (1 s) */
	size_t max_message_size;         /* default 64 KiB */
	size_t max_handshake_size;       /* default 8 KiB */
	unsigned handshake_timeout_ms;   /* default 10 s */
	unsigned auth_timeout_ms;        /* default 5 s */
	unsigned auth_cache_ms;          /* keep an allowed token; 60 s, 0 = off */
	unsigned policy_cache_ms;        /* keep an allowed subscribe; 60 s */
	unsigned recheck_interval_ms;    /* Myxi's "touch"; 60 s, 0 = off */
	int log_level;                   /* enum myxid_log_level; default info */
	struct conf_plugin *auths;       /* in file order; may be empty */
	size_t n_auths;
	struct conf_exchange *exchanges;
	size_t n_exchanges;
	struct conf_broker broker;

	/* Limits: every one has a safe default. */
	size_t max_connections;          /* WebSockets at once (10000) */
	size_t max_connections_per_ip;   /* per client address (1000; 0 = off) */
	size_t max_subscriptions;        /* per socket (1024) */
	size_t max_actions_per_second;   /* per socket, burst 2x (50; 0 = off) */
	size_t max_output_buffer;        /* queued bytes per socket (1 MiB) */
	unsigned ping_interval_ms;       /* server pings (30 s; 0 = off) */
	unsigned ping_timeout_ms;        /* silence after a ping that closes (10 s) */
	unsigned auth_deadline_ms;       /* close if not authenticated (0 = off) */
	unsigned drain_time_ms;          /* SIGTERM spreads closes over it (5 s) */

	/* Edges */
	struct conf_strlist allow_origins;    /* empty: any Origin */
	struct conf_strlist plugin_headers;   /* upgrade headers plugins may read */
	struct conf_strlist trusted_proxies;  /* CIDRs whose X-Forwarded-For counts */
	char *ssl_certificate;           /* PEM chain, for listen_tls */
	char *ssl_certificate_key;
	char *user;                      /* drop privileges to it after binding */
	int log_target;                  /* enum log_target */
	char *syslog_address;            /* NULL: /dev/log */
	unsigned workers;                /* event loops (0: one per CPU) */
	char *static_dir;                /* files served over GET/HEAD, or NULL */
	char *client_js;                 /* served as /myxid.js, or NULL */

	/* permessage-deflate (RFC 7692) */
	bool websocket_compression;      /* offer accepted when a client makes one (on) */
	size_t websocket_compression_min_size;  /* smaller frames go plain (256) */
	unsigned websocket_compression_level;   /* zlib level, 1-9 (1) */

	/* Server-Sent Events, the fallback for networks that break WebSocket */
	bool sse;                        /* GET sse_path streams events (on) */
	char *sse_path;                  /* NULL: "/events" */
	unsigned sse_keepalive_ms;       /* a comment this often (15 s; 0 = none) */
	char *sse_token_cookie;          /* no token= in the query: this cookie's value */

	/* History (exchanges with a history block) */
	size_t history_memory;           /* every exchange's together (64 MiB) */
	size_t history_max_replay;       /* events one resume or late join may
					  * replay (1000) */

	/* Presence (exchanges with "presence on") */
	unsigned presence_interval_ms;   /* one Presence event per key this
					  * often, at most (1 s) */
	size_t presence_max_users;       /* user ids one event lists (100) */

	/* private: storage for strings referenced from conf_pos etc. */
	char **strings;
	size_t n_strings;
};

/*
 * Load and check path. Returns 0 and *cfg_r, or -1 with "file:line: problem"
 * (or "file: problem" when no line applies) in err.
 */
int config_load(const char *path, struct myxid_config **cfg_r,
		char *err, size_t err_size);

/*
 * Apply Myxi's environment overrides: MYXI_PORT, else PORT, replaces the
 * port of every listen; MYXI_BIND_ADDRESS replaces the host; RABBITMQ_URL
 * (a URL, or several separated by commas) turns broker mode on when the
 * file has no broker block. Returns 0, or -1 with a message when a value
 * is invalid.
 */
int config_apply_env(struct myxid_config *cfg, char *err, size_t err_size);

/* Append url to b's list (an owned copy): 0, or -1 out of memory. */
int config_add_broker_url(struct conf_broker *b, const char *url);

void config_free(struct myxid_config **cfg);

/* The exchange named name, or NULL. */
const struct conf_exchange *config_exchange(const struct myxid_config *cfg,
					    const char *name);

#endif
