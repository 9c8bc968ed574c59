#!/usr/bin/python3
"""
Broker outages against a real RabbitMQ started (and killed) here: the
broker absent when myxid starts, the broker SIGKILLed under subscribed
sockets and started again, and the AMQP connection alone closed from the
broker's side (rabbitmqctl close_connection) while events keep coming: no
WebSocket is lost, every binding comes back, no event published while the
broker is up is lost.
"""
import asyncio
import json
import re
import sys
import time

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import (Client, Daemon, NoMessage, check_pong, compact, delivered, publish,
                       require, scrape)
from rabbitmq import (BrokerSuite, Publisher, RabbitNode, Streamer, broker_config,
                      healthz, in_thread, receive_all, require_rabbitmq, subscribe_ok,
                      unsubscribe_ok, wait_bindings, wait_broker)

require()
require_rabbitmq()
T = BrokerSuite()
R = RabbitNode()          # not started yet: the first test starts it
D = Daemon(broker_config(R.url), name="myxid")
PORT = D.port
RECONNECT_WITHIN = 10.0   # seconds after the broker is back (backoff is <= 5 s)


def check_degraded(what):
    status, body = healthz(PORT)
    return T.check(status == 503 and isinstance(body, dict) and
                   body.get("status") == "degraded" and body.get("broker") == "connecting",
                   f"{what}: /healthz 503 \"status\":\"degraded\", \"broker\":\"connecting\"",
                   f"{status} {body!r}")


def check_publish_refused(what):
    r = publish(PORT, "public", "x", "E", {})
    try:
        body = r.json()
    except Exception:
        body = None
    return T.check(r.status == 503 and isinstance(body, dict) and
                   isinstance(body.get("error"), str), f"{what}: POST /publish -> 503 JSON error",
                   repr(r))


async def broker_back(what):
    """Wait for the daemon to be connected again after R came back; check
    it takes at most RECONNECT_WITHIN seconds."""
    took = await wait_broker(PORT, "up", 30)
    T.check(took is not None and took <= RECONNECT_WITHIN,
            f"{what}: reconnected within {RECONNECT_WITHIN:.0f}s of the broker being up",
            f"took {took}" + ("" if took is not None else "\n" + D.read_log()[-3000:]))
    if took is not None:
        print(f"# {what}: reconnected {took:.2f}s after the broker was up")
    return took is not None


@T.test(timeout=240)
async def broker_absent_at_start():
    T.check(D.alive(), "myxid starts while the broker is down")
    await asyncio.sleep(0.5)
    check_degraded("broker down at start")
    log = D.read_log()
    T.check(any(re.search(r"broker", line, re.I) and re.search(r"connect", line, re.I)
                for line in log.splitlines()),
            "the log says the broker cannot be reached", log[-2000:])
    check_publish_refused("broker down")
    async with Client(PORT, label="early") as c, Client(PORT, label="alice") as a:
        await c.ping_roundtrip("WebSockets are served without a broker")
        await subscribe_ok(c, "public", "early")
        await a.authenticate("demo-alice")
        await subscribe_ok(a, "deployment", "d1")

        await in_thread(R.start)
        if not await broker_back("broker started late"):
            return
        T.check(await wait_bindings(R, {("public", "early"), ("deployment", "d1")}),
                "subscriptions made during the outage are bound", R.myxid_bindings())
        with Publisher(R.url) as p:
            p.publish("public", "early", "Late", {"n": 1})
            p.publish("deployment", "d1", "Late", {"n": 2})
        await c.expect(delivered("Late", {"n": 1}, "public", "early"),
                       "an event reaches the socket that subscribed before the broker came")
        await a.expect(delivered("Late", {"n": 2}, "deployment", "d1"),
                       "(and the authenticated one)")
        r = await in_thread(publish, PORT, "public", "early", "Posted", {})
        T.eq(r.status, 202, "POST /publish -> 202 once connected")
        await c.expect(delivered("Posted", {}, "public", "early"), "and it is delivered")
        status, body = await in_thread(healthz, PORT)
        T.check(status == 200 and body.get("status") == "ok" and body.get("broker") == "up",
                "/healthz 200 ok, broker up", f"{status} {body!r}")


@T.test(timeout=240)
async def broker_killed_under_subscribers():
    if not R.alive():
        await in_thread(R.start)
        await wait_broker(PORT, "up", 30)
    async with Client(PORT, label="a") as a, Client(PORT, label="b") as b, \
            Client(PORT, label="c") as c:
        await subscribe_ok(a, "public", "o1")
        await subscribe_ok(a, "public", "o2")
        await b.authenticate("demo-alice")
        await subscribe_ok(b, "deployment", "d1")
        await subscribe_ok(b, "topics", "news.*")
        await subscribe_ok(c, "public", "o1")
        T.check(await wait_bindings(R, {("public", "o1"), ("public", "o2"), ("deployment", "d1"),
                                        ("topics", "news.*")}), "setup: bound")
        with Publisher(R.url) as p:
            p.publish("public", "o1", "Before", {})
        await a.expect(delivered("Before", {}, "public", "o1"), "setup: delivery before the kill")
        await c.expect(delivered("Before", {}, "public", "o1"), "setup: delivery before (c)")

        await in_thread(R.kill)
        t_kill = time.monotonic()
        gone = await wait_broker(PORT, "connecting", 15)
        T.check(gone is not None, "the daemon notices the broker is gone (/healthz)")
        if gone is not None:
            print(f"# noticed the kill after {time.monotonic() - t_kill:.2f}s")
        check_degraded("broker killed")
        check_publish_refused("broker killed")
        for x in (a, b, c):
            await x.ping_roundtrip(f"{x.label}'s WebSocket stays open and answers Ping")
        # Changes while the broker is away take effect when it is back.
        await unsubscribe_ok(a, "public", "o2")
        await subscribe_ok(c, "public", "o3")
        async with Client(PORT, label="d") as d:
            await d.ping_roundtrip("a new WebSocket is accepted during the outage")
            await subscribe_ok(d, "public", "o4")
            await asyncio.sleep(1.0)          # an outage of a few seconds, with backoff
            for x in (a, b, c, d):
                await x.expect_nothing(f"{x.label}: nothing arrives during the outage", 0.05)

            await in_thread(R.start)
            if not await broker_back("broker killed and restarted"):
                return
            xs = await in_thread(R.list_exchanges)
            T.check(all(name in xs for name in ("deployment", "public", "topics", "fan")) and
                    xs["topics"]["type"] == "topic" and xs["fan"]["type"] == "fanout",
                    "the exchanges are declared again", repr(xs))
            qs = await in_thread(R.myxid_queues)
            T.check(len(qs) == 1 and next(iter(qs.values()))["consumers"] == 1,
                    "the node's queue is declared again and consumed", repr(qs))
            T.check(await wait_bindings(R, {("public", "o1"), ("deployment", "d1"),
                                            ("topics", "news.*"), ("public", "o3"),
                                            ("public", "o4")}, {("public", "o2")}),
                    "every binding is restored, with the outage's subscribes and not its "
                    "unsubscribe", R.myxid_bindings())
            with Publisher(R.url) as p:
                for key in ("o1", "o2", "o3", "o4"):
                    p.publish("public", key, "After", {"k": key})
                p.publish("deployment", "d1", "After", {"k": "d1"})
                p.publish("topics", "news.world", "After", {"k": "news"}, declare="topic")
            await a.expect(delivered("After", {"k": "o1"}, "public", "o1"),
                           "after recovery: a receives o1")
            await c.expect(delivered("After", {"k": "o1"}, "public", "o1"),
                           "after recovery: c receives o1")
            await c.expect(delivered("After", {"k": "o3"}, "public", "o3"),
                           "after recovery: c receives o3, subscribed during the outage")
            await d.expect(delivered("After", {"k": "o4"}, "public", "o4"),
                           "after recovery: the socket opened during the outage receives o4")
            await b.expect(delivered("After", {"k": "d1"}, "deployment", "d1"),
                           "after recovery: b receives deployment/d1")
            await b.expect(delivered("After", {"k": "news"}, "topics", "news.world"),
                           "after recovery: b receives news.world through news.*")
            for x in (a, b, c, d):
                await x.expect_nothing(f"{x.label}: nothing else (o2 was unsubscribed)", 0.2)
        status, body = await in_thread(healthz, PORT)
        T.check(status == 200 and body.get("broker") == "up", "/healthz up again",
                f"{status} {body!r}")


async def stream_across_drops(what, n, interval, drops, key):
    """Stream n events to one subscriber while the broker closes the
    daemon's AMQP connection `drops` times; every event must arrive, in
    order, once. Deliveries the broker had handed to a dying connection
    come back (acknowledged consumption); those already delivered to the
    browser are recognised and not delivered twice."""
    if not R.alive():
        await in_thread(R.start)
        await wait_broker(PORT, "up", 30)
    async with Client(PORT, label=key) as s:
        await subscribe_ok(s, "public", key)
        T.check(await wait_bindings(R, {("public", key)}), f"{what}: setup: bound")
        queue_before = set(await in_thread(R.myxid_queues))
        conns = await in_thread(R.myxid_connections)
        _, m0 = await in_thread(scrape, PORT)
        # Read while the drops happen, as a browser does: a client that
        # stops reading stops answering pings (websockets queues at most
        # 32 messages), and the daemon rightly closes it as dead.
        receiver = asyncio.create_task(receive_all(s, n, 150))
        st = Streamer(R.url, "public", key, "Tick", n, interval)
        st.start()
        pause = n * interval / (drops + 1)
        for drop in range(drops):
            await asyncio.sleep(pause)
            closed = await in_thread(R.close_connections)
            T.eq(len(closed), 1, f"{what}: drop {drop + 1}: rabbitmqctl close_connection "
                 "closes the daemon's connection")
            await wait_broker(PORT, "up", 10)
        await in_thread(st.join, 60)
        T.check(st.error is None and st.published == n, f"{what}: setup: {n} events published",
                repr(st.error))
        got = await receiver
        want = [compact(delivered("Tick", {"seq": i}, "public", key)) for i in range(n)]
        T.check(got == want, f"{what}: all {n} events published across {drops} drops arrive, "
                "in order, once",
                f"got {len(got)}; missing seq: "
                f"{sorted(set(range(n)) - {json.loads(m)['payload']['seq'] for m in got})[:20]}")
        await s.expect_nothing(f"{what}: no duplicates", 0.3)
        _, m1 = await in_thread(scrape, PORT)
        dup = m1.get("myxid_broker_duplicates_total", 0) - m0.get("myxid_broker_duplicates_total", 0)
        print(f"# {what}: {dup:.0f} redelivered events recognised as already delivered")
        await s.ping_roundtrip(f"{what}: the WebSocket stayed open")
        after = await in_thread(R.myxid_connections)
        T.check(len(after) == 1 and after[0]["name"] != (conns[0]["name"] if conns else None),
                f"{what}: the daemon reconnected (a new AMQP connection)", repr(after))
        T.eq(set(await in_thread(R.myxid_queues)), queue_before,
             f"{what}: the node's queue survived the drops (same name)")


@T.test(timeout=300)
async def connection_drop_loses_nothing():
    await stream_across_drops("steady stream", 120, 0.025, 3, "stream")


@T.test(timeout=300)
async def connection_drop_mid_burst():
    await stream_across_drops("burst", 5000, 0.0002, 2, "burst")


@T.test(timeout=120)
async def published_while_disconnected():
    """A deterministic gap: the daemon's connection is closed while a vhost
    connection limit keeps it from coming back; what is published
    meanwhile waits in its queue and arrives after it reconnects."""
    if not R.alive():
        await in_thread(R.start)
        await wait_broker(PORT, "up", 30)
    async with Client(PORT, label="g") as g:
        await subscribe_ok(g, "public", "gap")
        T.check(await wait_bindings(R, {("public", "gap")}), "setup: bound")
        (queue,) = list(await in_thread(R.myxid_queues)) or [None]
        with Publisher(R.url) as p:
            count = len(await in_thread(R.list_connections))
            try:
                await in_thread(R.ctl, "set_vhost_limits", "-p", "/",
                                json.dumps({"max-connections": count - 1}))
                closed = await in_thread(R.close_connections)
                T.eq(len(closed), 1, "setup: the daemon's connection is closed")
                T.check(await wait_broker(PORT, "connecting", 10) is not None,
                        "the daemon is disconnected (its reconnects are refused)")
                for i in range(10):
                    p.publish("public", "gap", "Gap", {"i": i})
                qs = await in_thread(R.myxid_queues)
                q = qs.get(queue)
                T.check(q is not None and q["messages"] == 10 and q["consumers"] == 0,
                        "published while disconnected: 10 events wait in the node's queue",
                        repr(qs))
                await g.expect_nothing("nothing arrives while disconnected", 0.2)
            finally:
                await in_thread(R.ctl, "clear_vhost_limits", "-p", "/", check=False)
            t0 = time.monotonic()
            up = await wait_broker(PORT, "up", 20)
            T.check(up is not None, "the daemon reconnects once allowed", D.read_log()[-2000:])
            if up is not None:
                print(f"# reconnected {time.monotonic() - t0:.2f}s after the limit was lifted")
            got = await receive_all(g, 10, 10)
            T.eq(got, [compact(delivered("Gap", {"i": i}, "public", "gap")) for i in range(10)],
                 "the 10 events published while disconnected arrive after reconnecting, "
                 "in order")
            await g.expect_nothing("once", 0.3)


@T.test(timeout=120)
async def broker_frozen():
    """SIGSTOP the broker: its TCP connections stay open but nothing
    answers. The event loops must not notice (nothing of AMQP runs on
    them); heartbeats (2s here) tell the daemon the link is dead; after
    SIGCONT it reconnects and restores its bindings."""
    if not R.alive():
        await in_thread(R.start)
    f = Daemon(broker_config(R.url, heartbeat="2s"), name="myxid-hb")
    T.check(await wait_broker(f.port, "up", 30) is not None, "setup: myxid-hb connects")
    async with Client(f.port, label="frozen") as c:
        await subscribe_ok(c, "public", "frz")
        T.check(await wait_bindings(R, {("public", "frz")}), "setup: bound")
        await in_thread(R.freeze)
        t0 = time.monotonic()
        try:
            await c.ping_roundtrip("broker frozen: Ping is answered at once")
            await subscribe_ok(c, "public", "frz2", "s2")
            T.check(time.monotonic() - t0 < 2, "broker frozen: Subscribe answered at once",
                    f"{time.monotonic() - t0:.2f}s")
            t1 = time.monotonic()
            r = await in_thread(publish, f.port, "public", "frz", "Frozen", {})
            T.check(r.status in (202, 503) and time.monotonic() - t1 < 2,
                    "broker frozen: POST /publish answers at once (202 or 503)",
                    f"{r!r} after {time.monotonic() - t1:.2f}s")
            noticed = await wait_broker(f.port, "connecting", 20)
            T.check(noticed is not None, "heartbeats reveal the dead link (/healthz connecting)",
                    f.read_log()[-2000:])
            print(f"# frozen broker noticed after {time.monotonic() - t0:.1f}s (heartbeat 2s)")
            # The kernel may already have resumed the broker (a stopped
            # process in a process group that becomes orphaned gets SIGCONT),
            # so the event posted while frozen may come before the Pong.
            await c.send("Ping", tag="ping")
            early = []
            while True:
                try:
                    raw = await c.recv(3)
                except NoMessage:
                    raw = None
                if raw is None or '"Pong"' in raw:
                    check_pong(raw or "<no Pong within 3s>", "ping",
                               "the WebSocket is still served")
                    break
                early.append(raw)
        finally:
            await in_thread(R.thaw)
        t2 = time.monotonic()
        up = await wait_broker(f.port, "up", 30)
        T.check(up is not None, "after SIGCONT the daemon reconnects", f.read_log()[-2000:])
        if up is not None:
            print(f"# reconnected {time.monotonic() - t2:.1f}s after SIGCONT")
        T.check(await wait_bindings(R, {("public", "frz"), ("public", "frz2")}),
                "its bindings, including the one made while frozen, are there",
                R.myxid_bindings())
        with Publisher(R.url) as p:
            p.publish("public", "frz", "Thawed", {})
            p.publish("public", "frz2", "Thawed", {})
        got = early + await receive_all(c, 3 - len(early), 5)
        want = [compact(delivered("Thawed", {}, "public", "frz")),
                compact(delivered("Thawed", {}, "public", "frz2"))]
        T.check(got[-2:] == want and len(got) in (2, 3) and
                (len(got) == 2 or got[0] == compact(delivered("Frozen", {}, "public", "frz"))),
                "events published after the thaw are delivered (and the one posted while "
                "frozen at most once)", repr(got))
    f.stop()


T.run()
