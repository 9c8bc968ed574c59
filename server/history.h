/*
 * History of published events, kept in memory per exchange and routing key
 * (the embedded mode: no broker), so that a client that was away can resume
 * where it left off and a late joiner can get the last lines.
 *
 * Every event of an exchange with history gets a position: an integer that
 * grows with each event of that exchange (so it grows for each key too),
 * below 2^53 so that JavaScript holds it exactly. Positions are only
 * meaningful within one epoch: a random id drawn when the store is made
 * (a daemon restart), so a resume across a restart is honestly refused.
 *
 * Thread-safe: loops publish and replay concurrently. Frames are shared
 * (struct shared_frame); the store holds one reference per kept event.
 */
#ifndef MYXID_HISTORY_H
#define MYXID_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct shared_frame;

/* What an exchange keeps, per routing key (0: no limit of that kind). */
struct history_limits {
	size_t max_events;       /* events per key */
	size_t max_bytes;        /* frame bytes per key */
	long long max_age_ms;    /* how long an event is kept */
};

/* Longest epoch string (a mirror's may be longer than the store's 16). */
#define HISTORY_EPOCH_MAX 64

struct history_store;        /* every exchange's history, one memory cap */
struct history_log;          /* one exchange's */

/* memory_cap: bytes for all frames and bookkeeping together; the oldest
 * events of the store go first when it is reached. */
struct history_store *history_store_new(size_t memory_cap);
void history_store_free(struct history_store *hs);

/* The epoch of every position this store hands out: 16 hex digits. */
const char *history_store_epoch(const struct history_store *hs);

/* Bytes held now (frames and bookkeeping), for /metrics and tests. */
size_t history_store_bytes(struct history_store *hs);

/* The exchange's log, made on first use with these limits (a later call
 * updates them: a reload). Lives as long as the store. */
struct history_log *history_store_log(struct history_store *hs, const char *exchange,
				      const struct history_limits *limits);

/*
 * Records one event of key: encode(position, arg) makes its frame (with
 * the position in it: subscribers see "o"); the log keeps a reference and
 * the caller gets one. Encoding happens under the log's lock, so positions
 * and the order of the kept events agree even when loops publish at once.
 * position 0 takes the log's next one (the embedded mode); otherwise it
 * is the source's (a mirror of a RabbitMQ stream), and must be above every
 * position already kept. Returns the frame, or NULL if encode did, or if
 * the position is taken (a redelivery) or past 2^53.
 */
typedef struct shared_frame *history_encode_fn(uint64_t position, void *arg);
struct shared_frame *history_append(struct history_log *log, const char *key,
				    uint64_t position, long long now_ms,
				    history_encode_fn *encode, void *arg);

/* A mirror's epoch: its source's identity, the same on every node
 * (at most HISTORY_EPOCH_MAX characters; longer is cut). */
void history_log_set_epoch(struct history_log *log, const char *epoch);
void history_log_epoch(struct history_log *log, char *out, size_t size);

/* The last position handed out by the log (0: none yet). */
uint64_t history_position(struct history_log *log);

/*
 * A replay: the kept events of one key, oldest first, as references the
 * caller owns (history_replay_free drops them).
 */
struct history_replay {
	struct shared_frame **frames;
	uint64_t *positions;
	size_t n;
	uint64_t position;       /* the log's position when it was taken */
	bool complete;           /* nothing the request asked for was lost */
};

/* Events of key after position `after` in epoch `epoch`. complete is false
 * (and nothing is returned) when the epoch is another, `after` is ahead of
 * the log, an event after it was already dropped (limits, age, cap), or
 * more than max events would be replayed. */
void history_since(struct history_log *log, const char *key, const char *epoch,
		   uint64_t after, size_t max, long long now_ms,
		   struct history_replay *out);

/* The last n kept events of key (fewer if fewer are kept). */
void history_last(struct history_log *log, const char *key, size_t n, long long now_ms,
		  struct history_replay *out);

void history_replay_free(struct history_replay *r);

/* Drops what is older than each log's max_age (a periodic sweep: an
 * exchange nobody publishes to keeps nothing past its age either). */
void history_store_expire(struct history_store *hs, long long now_ms);

#endif
