/*
 * Unit tests for the reply stage (reply_stage.c) on a real socket pair:
 * staged replies leave in order, one sendmsg() per socket when the loop
 * runs the flush; other output spills them first; what the kernel does not
 * take, and what does not fit the arena, goes through the bufferevent
 * without reordering; a freed socket's replies are dropped. (Which sockets
 * may stage, plain ones with nothing queued, is conn.c's choice.)
 */
#include "reply_stage.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

struct side {
	struct staged_socket s;
	int peer;                  /* the test's end */
};

static void side_open(struct side *s, struct event_base *base, int sndbuf)
{
	int sv[2];

	memset(s, 0, sizeof(*s));
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		abort();
	if (sndbuf > 0)
		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	evutil_make_socket_nonblocking(sv[0]);
	evutil_make_socket_nonblocking(sv[1]);
	s->s.bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	bufferevent_enable(s->s.bev, EV_WRITE);
	s->peer = sv[1];
}

static void side_close(struct side *s)
{
	bufferevent_free(s->s.bev);
	close(s->peer);
}

/* Everything the peer can read now, appended to buf. */
static size_t drain_peer(struct side *s, char *buf, size_t have, size_t cap)
{
	ssize_t n;

	while (have < cap && (n = read(s->peer, buf + have, cap - have)) > 0)
		have += (size_t)n;
	return have;
}

static size_t out_len(struct side *s)
{
	return evbuffer_get_length(bufferevent_get_output(s->s.bev));
}

static bool add(struct reply_stage *st, struct side *s, const char *text)
{
	return reply_stage_add(st, &s->s, "<", 1, text, strlen(text));
}

static void test_order_and_batching(struct event_base *base, struct reply_stage *st)
{
	struct side a, b;
	char buf[256];
	size_t n;

	side_open(&a, base, 0);
	side_open(&b, base, 0);
	ok(add(st, &a, "a1") && add(st, &b, "b1") && add(st, &a, "a2"),
	   "plain sockets with empty output: staged");
	n = drain_peer(&a, buf, 0, sizeof(buf));
	is_int(n, 0, "nothing written before the loop runs the flush");
	event_base_loop(base, EVLOOP_NONBLOCK);
	n = drain_peer(&a, buf, 0, sizeof(buf));
	buf[n] = '\0';
	is_str(buf, "<a1<a2", "a's replies arrive whole and in order");
	n = drain_peer(&b, buf, 0, sizeof(buf));
	buf[n] = '\0';
	is_str(buf, "<b1", "b's reply arrives");
	is_int(out_len(&a) + out_len(&b), 0, "nothing went through the bufferevents");
	ok(a.s.slot == 0 && b.s.slot == 0, "both unstaged after the flush");
	side_close(&a);
	side_close(&b);
}

static void test_spill_keeps_order(struct event_base *base, struct reply_stage *st)
{
	struct side a;
	char buf[256];
	size_t n = 0;

	side_open(&a, base, 0);
	add(st, &a, "first");
	reply_stage_spill(st, &a.s);
	ok(a.s.slot == 0 && out_len(&a) == 6, "spilled into the bufferevent");
	evbuffer_add(bufferevent_get_output(a.s.bev), "<second", 7);
	evbuffer_add(bufferevent_get_output(a.s.bev), "<third", 6);
	for (int i = 0; i < 10 && n < 18; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		n = drain_peer(&a, buf, n, sizeof(buf));
	}
	buf[n] = '\0';
	is_str(buf, "<first<second<third", "spilled replies stay ahead of later output");
	side_close(&a);
}

static void test_partial_write(struct event_base *base, struct reply_stage *st)
{
	struct side a;
	static char want[40000], got[40000];
	char chunk[1001];
	size_t n = 0, len = 0;
	bool staged = true;

	side_open(&a, base, 4096);
	for (int i = 0; i < 39; i++) {
		memset(chunk, 'a' + i % 26, 1000);
		chunk[1000] = '\0';
		staged &= add(st, &a, chunk);
		want[len++] = '<';
		memcpy(want + len, chunk, 1000);
		len += 1000;
	}
	ok(staged, "39 KB staged for one socket");
	event_base_loop(base, EVLOOP_NONBLOCK);
	ok(out_len(&a) > 0, "what the kernel did not take went to the bufferevent "
	   "(%zu bytes)", out_len(&a));
	for (int i = 0; i < 2000 && n < len; i++) {
		n = drain_peer(&a, got, n, sizeof(got));
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
	is_int(n, len, "every byte arrived");
	ok(memcmp(got, want, len) == 0, "in order");
	side_close(&a);
}

static void test_arena_full(struct event_base *base, struct reply_stage *st)
{
	struct side a;
	static char got[80000];
	char chunk[2001];
	size_t n = 0, expect = 0;
	int refused = -1;

	side_open(&a, base, 0);
	memset(chunk, 'x', 2000);
	chunk[2000] = '\0';
	for (int i = 0; i < 36; i++) {
		chunk[0] = (char)('A' + i);
		if (!add(st, &a, chunk)) {
			if (refused < 0)
				refused = i;
			/* The caller's way: after the spilled ones. */
			evbuffer_add(bufferevent_get_output(a.s.bev), "<", 1);
			evbuffer_add(bufferevent_get_output(a.s.bev), chunk, 2000);
		}
		expect += 2001;
	}
	ok(refused > 0 && refused < 36, "the arena (64 KiB) refuses frame %d", refused);
	for (int i = 0; i < 200 && n < expect; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		n = drain_peer(&a, got, n, sizeof(got));
	}
	is_int(n, expect, "every frame arrived");
	{
		bool order = true;

		for (int i = 0; i < 36 && (size_t)i * 2001 + 1 < n; i++)
			order &= got[i * 2001] == '<' && got[i * 2001 + 1] == 'A' + i;
		ok(order, "in the order they were sent");
	}
	side_close(&a);
}

static void test_forget(struct event_base *base, struct reply_stage *st)
{
	struct side a;
	char buf[64];

	side_open(&a, base, 0);
	add(st, &a, "gone");
	reply_stage_forget(st, &a.s);
	event_base_loop(base, EVLOOP_NONBLOCK);
	is_int(drain_peer(&a, buf, 0, sizeof(buf)), 0, "a forgotten socket's replies "
	       "are dropped");
	side_close(&a);
}

int main(void)
{
	struct event_base *base = event_base_new();
	struct reply_stage *st = reply_stage_new(base);

	test_order_and_batching(base, st);
	test_spill_keeps_order(base, st);
	test_partial_write(base, st);
	test_arena_full(base, st);
	test_forget(base, st);
	reply_stage_free(&st);
	event_base_free(base);
	return done_testing();
}
