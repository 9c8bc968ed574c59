/*
 * The RabbitMQ link as the event loops use it: the binding table (which
 * loops want which exchange/key), the locked command queue to the broker
 * thread, publishing, and the link's state and numbers. Everything here is
 * called from the loops (or the daemon) and never blocks on the network:
 * it takes b->lock briefly and wakes the thread. See broker_private.h.
 */
#include "broker_private.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned bucket_of(const char *ex, const char *key)
{
	return (unsigned)(hash_pair(ex, key) % BINDING_BUCKETS);
}

struct binding **broker_binding_slot(struct broker *b, const char *ex,
				     const char *key)
{
	struct binding **pp = &b->buckets[bucket_of(ex, key)];

	while (*pp != NULL && (strcmp((*pp)->exchange, ex) != 0 ||
			       strcmp((*pp)->key, key) != 0))
		pp = &(*pp)->next;
	return pp;
}

void broker_cmd_free(struct cmd *c)
{
	free(c->exchange);
	free(c->key);
	free(c->body);
	free(c->reply_to);
	free(c->corr);
	free(c);
}

void broker_wake(struct broker *b)
{
	uint64_t one = 1;

	if (write(b->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("broker: cannot wake the broker thread: %s", strerror(errno));
}

/* Queue a command; caller holds the lock. */
static void enqueue(struct broker *b, struct cmd *c)
{
	if (b->q_tail)
		b->q_tail->next = c;
	else
		b->q_head = c;
	b->q_tail = c;
}

/*
 * Bind tickets up to seq are done (bound, failed, or dropped with the
 * link): tell the loops, which release the Subscribes waiting on them.
 * The callback runs under the lock so broker_set_progress(NULL) can be
 * sure no call is still running once it returns.
 */
void broker_finish_through(struct broker *b, uint64_t seq)
{
	pthread_mutex_lock(&b->lock);
	if (seq > __atomic_load_n(&b->done_seq, __ATOMIC_RELAXED)) {
		__atomic_store_n(&b->done_seq, seq, __ATOMIC_RELEASE);
		if (b->progress != NULL)
			b->progress(b->progress_arg);
	}
	pthread_mutex_unlock(&b->lock);
}

static struct cmd *cmd_new(enum cmd_kind kind, const char *ex, const char *key)
{
	struct cmd *c = xcalloc(1, sizeof(*c));

	c->kind = kind;
	c->exchange = xstrdup(ex);
	c->key = xstrdup(key);
	return c;
}

uint64_t broker_bind(struct broker *b, unsigned loop, const char *ex,
		     const char *key)
{
	struct binding **pp, *bd;
	bool notify = false;
	uint64_t ticket;

	pthread_mutex_lock(&b->lock);
	pp = broker_binding_slot(b, ex, key);
	if (*pp == NULL) {
		bd = xcalloc(1, sizeof(*bd));
		bd->exchange = xstrdup(ex);
		bd->key = xstrdup(key);
		*pp = bd;
		b->n_bindings++;
		if (b->linked) {
			struct cmd *c = cmd_new(CMD_BIND, ex, key);
			c->seq = bd->ticket = ++b->cmd_seq;
			enqueue(b, c);
			notify = true;
		}
	}
	(*pp)->loops |= 1ull << loop;
	/* A second subscriber of a key whose bind is still on its way waits
	 * for the same ticket. */
	ticket = (*pp)->ticket;
	pthread_mutex_unlock(&b->lock);
	if (notify)
		broker_wake(b);
	return broker_ticket_done(b, ticket) ? 0 : ticket;
}

bool broker_ticket_done(const struct broker *b, uint64_t ticket)
{
	return ticket <= __atomic_load_n(&b->done_seq, __ATOMIC_ACQUIRE);
}

void broker_set_progress(struct broker *b, broker_progress_fn *fn, void *arg)
{
	pthread_mutex_lock(&b->lock);
	b->progress = fn;
	b->progress_arg = arg;
	pthread_mutex_unlock(&b->lock);
}

void broker_unbind(struct broker *b, unsigned loop, const char *ex,
		   const char *key)
{
	struct binding **pp, *bd;
	bool notify = false;

	pthread_mutex_lock(&b->lock);
	pp = broker_binding_slot(b, ex, key);
	bd = *pp;
	if (bd != NULL)
		bd->loops &= ~(1ull << loop);
	if (bd != NULL && bd->loops == 0) {
		*pp = bd->next;
		b->n_bindings--;
		free(bd->exchange);
		free(bd->key);
		free(bd);
		if (b->linked) {
			enqueue(b, cmd_new(CMD_UNBIND, ex, key));
			notify = true;
		}
	}
	pthread_mutex_unlock(&b->lock);
	if (notify)
		broker_wake(b);
}

/* Queue the publish c (ours: freed here if refused) with a copy of body. */
static int publish(struct broker *b, struct cmd *c, const char *body, size_t len)
{
	pthread_mutex_lock(&b->lock);
	if (!b->linked || b->q_publish_bytes + len > PUBLISH_QUEUE_MAX) {
		pthread_mutex_unlock(&b->lock);
		broker_cmd_free(c);
		return -1;
	}
	c->body = xmalloc(len ? len : 1);
	memcpy(c->body, body, len);
	c->len = len;
	enqueue(b, c);
	b->q_publish_bytes += len;
	if (!c->control)
		b->stats.published++;
	pthread_mutex_unlock(&b->lock);
	broker_wake(b);
	return 0;
}

int broker_publish(struct broker *b, const char *ex, const char *key,
		   const char *body, size_t len)
{
	return publish(b, cmd_new(CMD_PUBLISH, ex, key), body, len);
}

int broker_control_send(struct broker *b, const char *exchange, const char *routing_key,
			const char *reply_to, const char *corr, const char *body, size_t len)
{
	struct cmd *c = cmd_new(CMD_PUBLISH, exchange, routing_key);

	c->control = true;
	c->reply_to = reply_to ? xstrdup(reply_to) : NULL;
	c->corr = corr ? xstrdup(corr) : NULL;
	return publish(b, c, body, len);
}

int broker_publish_history(struct broker *b, const char *ex, const char *key,
			   const char *body, size_t len)
{
	const char *stream = broker_history_stream(b, ex);
	struct cmd *c;

	if (stream == NULL)
		return -1;
	c = cmd_new(CMD_PUBLISH, stream, key);
	c->to_stream = true;
	return publish(b, c, body, len);
}

enum broker_state broker_state(const struct broker *b)
{
	return (enum broker_state)__atomic_load_n(&b->state, __ATOMIC_ACQUIRE);
}

void broker_describe(const struct broker *b, char *out, size_t size)
{
	struct broker *mb = (struct broker *)b;

	pthread_mutex_lock(&mb->lock);
	snprintf(out, size, "%s", b->url_shown[0] ? b->url_shown : "");
	pthread_mutex_unlock(&mb->lock);
}

void broker_get_stats(const struct broker *b, struct broker_stats *st)
{
	struct broker *mb = (struct broker *)b;

	pthread_mutex_lock(&mb->lock);
	*st = b->stats;
	st->received = __atomic_load_n(&b->stats.received, __ATOMIC_RELAXED);
	st->rejected = __atomic_load_n(&b->stats.rejected, __ATOMIC_RELAXED);
	st->reconnects = __atomic_load_n(&b->stats.reconnects, __ATOMIC_RELAXED);
	st->duplicates = __atomic_load_n(&b->stats.duplicates, __ATOMIC_RELAXED);
	st->bindings = b->n_bindings;
	pthread_mutex_unlock(&mb->lock);
}
