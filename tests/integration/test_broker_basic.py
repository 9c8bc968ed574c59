#!/usr/bin/python3
"""
Broker mode against a real RabbitMQ started here: the exchanges and the
node's one queue myxid declares, Myxi publishers (Ruby Bunny exactly like
Myxi.push_event, and pika) reaching subscribed sockets with "mq",
reference-counted bindings, topic and fanout exchanges, bodies that are not
JSON objects, a huge body, POST /publish through the broker, /healthz,
RABBITMQ_URL, and a channel error that stays with its one binding.
"""
import asyncio
import re
import sys
import time

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import (Client, Daemon, Suite, compact, delivered, publish,
                       require, subscribed)
from rabbitmq import (BrokerSuite, Publisher, await_until, broker_config,
                      bunny_publish, event_body, healthz, in_thread, receive_all,
                      require_rabbitmq, start_node, subscribe_ok,
                      unsubscribe_ok, wait_bindings, wait_broker)

require()
require_rabbitmq(bunny=True)
T = BrokerSuite()
R = start_node()
D = Daemon(broker_config(R.url), name="myxid")
PORT = D.port
QUEUE = None            # the node's queue, found by the first test
DROP_RE = re.compile(r"drop|reject|discard|not a JSON object", re.I)


def queue_bindings(exchange, key):
    """Rows binding (exchange, key) to the daemon's queue."""
    return [r for r in R.list_bindings()
            if r["source_name"] == exchange and r["routing_key"] == key
            and r["destination_name"] == QUEUE]


@T.test(timeout=40)
async def startup_topology():
    took = await wait_broker(PORT, "up", 30)
    T.check(took is not None, "the daemon connects to the broker (/healthz broker up)",
            D.read_log()[-2000:])
    if took is not None:
        print(f"# connected {took:.1f}s after listening")
    status, body = await in_thread(healthz, PORT)
    T.check(status == 200 and isinstance(body, dict) and body.get("status") == "ok"
            and body.get("broker") == "up",
            "/healthz: 200, \"status\":\"ok\", \"broker\":\"up\"", f"{status} {body!r}")

    xs = await in_thread(R.list_exchanges)
    for name, kind, durable in (("deployment", "direct", False), ("public", "direct", False),
                                ("news", "direct", False), ("topics", "topic", False),
                                ("fan", "fanout", False), ("stable", "direct", True)):
        x = xs.get(name)
        T.check(x is not None and x["type"] == kind and x["durable"] is durable
                and x["auto_delete"] is False and x["internal"] is False,
                f"exchange {name} declared at startup: {kind}, "
                f"{'durable' if durable else 'non-durable'}, not auto-delete, unprefixed",
                repr(x))

    queues = await in_thread(R.myxid_queues)
    T.eq(len(queues), 1, "one queue for the node, named myxid.*")
    global QUEUE
    if queues:
        QUEUE, q = next(iter(queues.items()))
        print(f"# the node's queue: {QUEUE}")
        T.check(q["exclusive"] is False and q["auto_delete"] is False,
                "the queue is neither exclusive nor auto-delete (it outlives the connection)",
                repr(q))
        T.eq(q["arguments"].get("x-expires"), 60000, "its x-expires is queue_expires (60s)")
        T.eq(q["consumers"], 1, "the daemon consumes from it")
    conns = await in_thread(R.myxid_connections)
    T.eq(len(conns), 1, "the daemon holds one AMQP connection")
    T.eq([c.get("timeout") for c in conns], [10], "with the configured heartbeat (10s)")


@T.test(timeout=40)
async def bunny_publisher():
    async with Client(PORT, label="widgets") as c:
        await subscribe_ok(c, "public", "w1")
        await c.send("Subscribe", {"exchange": "public", "routing_key": 12}, "n")
        await c.expect(subscribed("public", 12, "n"), "setup: subscribe with a numeric key")
        T.check(await wait_bindings(R, {("public", "w1"), ("public", "12")}),
                "the subscriptions are bound (public/w1, public/\"12\")", R.myxid_bindings())

        r = await in_thread(bunny_publish, R.url_vhost, "public", "w1", "WidgetQtyChanged",
                            {"quantity": 5})
        T.check(r.returncode == 0, "bunny_publish.rb publishes", r.stderr.decode())
        await c.expect(delivered("WidgetQtyChanged", {"quantity": 5}, "public", "w1"),
                       "Myxi.push_event via Bunny reaches the socket with mq", timeout=5)

        r = await in_thread(bunny_publish, R.url_vhost, "public", "12", "Numbered", {"id": 12})
        T.check(r.returncode == 0, "bunny_publish.rb publishes (Integer key)", r.stderr.decode())
        await c.expect(delivered("Numbered", {"id": 12}, "public", "12"),
                       "routing key 12 (Integer#to_s) arrives as \"rk\":\"12\"", timeout=5)

        payload = {"name": "Zoë ☃", "path": "/a/b", "list": [1, True, None, -2.5],
                   "nested": {"text": "line\nbreak \"quoted\" \\"}, "empty": {}}
        r = await in_thread(bunny_publish, R.url_vhost, "public", "w1", "Unicode", payload)
        T.check(r.returncode == 0, "bunny_publish.rb publishes (unicode)", r.stderr.decode())
        await c.expect(delivered("Unicode", payload, "public", "w1"),
                       "a payload with unicode, slashes, escapes and nesting, intact",
                       timeout=5)
        await c.expect_nothing("each event arrives once", 0.3)


@T.test(timeout=40)
async def pika_publisher():
    async with Client(PORT, label="p") as c:
        await subscribe_ok(c, "public", "p1")
        T.check(await wait_bindings(R, {("public", "p1")}), "setup: public/p1 bound")
        with Publisher(R.url) as p:
            p.publish("public", "p1", "FromPika", {"x": [1, 2]})
            await c.expect(delivered("FromPika", {"x": [1, 2]}, "public", "p1"),
                           "a pika publisher (Myxi's body) reaches the socket with mq")
            p.publish_raw("public", "p1", '{"event":"E","payload":{},"extra":1}')
            await c.expect('{"event":"E","payload":{},"extra":1,"mq":{"e":"public","rk":"p1"}}',
                           "other keys of the body pass through, mq appended")
            p.publish_raw("public", "p1", '{"custom":true}')
            await c.expect('{"custom":true,"mq":{"e":"public","rk":"p1"}}',
                           "any JSON object is delivered (Myxi: hash['mq'] = ...)")
            for i in range(20):
                p.publish("public", "p1", "Seq", {"i": i})
            got = await receive_all(c, 20, 10)
            T.eq(got, [compact(delivered("Seq", {"i": i}, "public", "p1")) for i in range(20)],
                 "20 events in a row arrive in order")
            await c.expect_nothing("nothing more", 0.3)

            # A burst without confirms: deliveries arrive packed together,
            # and nothing else follows to wake the daemon up; what the
            # AMQP library has buffered must not wait for the next
            # heartbeat (10 s).
            ch = p.conn.channel()
            n = 500
            for i in range(n):
                ch.basic_publish("public", "p1", event_body("Burst", {"i": i}))
            p.conn.process_data_events(0)
            t0 = time.monotonic()
            got = await receive_all(c, n, 3)
            T.eq(got, [compact(delivered("Burst", {"i": i}, "public", "p1")) for i in range(n)],
                 f"a burst of {n} arrives whole, in order, within 3s (buffered frames "
                 "are drained)")
            print(f"# a burst of {n}: {time.monotonic() - t0:.2f}s after publishing")
            for k in range(5):
                for i in range(3):
                    ch.basic_publish("public", "p1", event_body("Trio", {"k": k, "i": i}))
                p.conn.process_data_events(0)
                got = await receive_all(c, 3, 1)
                T.eq(len(got), 3, f"3 events published together arrive within 1s (round {k})")
            ch.close()


@T.test(timeout=60)
async def subscribed_means_bound():
    """Myxi's Subscribe bound the queue before answering, and apps publish
    as soon as the page says it is subscribed: an event published right
    after Subscribed (a new key, bound for this socket) must arrive, on
    one socket and on a second socket of the other loop subscribing to a
    key whose bind is still on its way."""
    n = 40
    async with Client(PORT, label="sb") as c, Client(PORT, label="sb2") as c2:
        with Publisher(R.url) as p:
            lost = []
            for i in range(n):
                key = f"fresh-{i}"
                await subscribe_ok(c, "public", key)
                p.publish("public", key, "Right", {"i": i})
                got = await receive_all(c, 1, 3)
                if got != [compact(delivered("Right", {"i": i}, "public", key))]:
                    lost.append((key, got))
            T.check(not lost, f"{n} events published right after Subscribed of a new key "
                    "all arrive", repr(lost[:5]))
            lost = []
            for i in range(n):
                key = f"both-{i}"
                await c.send("Subscribe", {"exchange": "public", "routing_key": key}, "s")
                await c2.send("Subscribe", {"exchange": "public", "routing_key": key}, "s")
                answers = [await c.recv(), await c2.recv()]
                p.publish("public", key, "Both", {"i": i})
                a = await receive_all(c, 1, 3)
                b = await receive_all(c2, 1, 3)
                want = [compact(delivered("Both", {"i": i}, "public", key))]
                if answers != [compact(subscribed("public", key, "s"))] * 2 or \
                        a != want or b != want:
                    lost.append((key, answers, a, b))
            T.check(not lost, f"two sockets subscribing to the same new key at once: both "
                    f"get the event published right after their Subscribed ({n} keys)",
                    repr(lost[:5]))


@T.test(timeout=120)
async def refcounted_bindings():
    # Several sockets, so that (with several workers) some are on different
    # event loops: the node's refcount is over all of them.
    n = 6
    group = [Client(PORT, label=f"r{i}") for i in range(n)]
    for c in group:
        await c.connect()
        await c.authenticate("demo-alice")
        await subscribe_ok(c, "deployment", "d1")
    last = group[-1]
    try:
        T.check(await wait_bindings(R, {("deployment", "d1")}), "deployment/d1 is bound")
        rows = await in_thread(queue_bindings, "deployment", "d1")
        T.eq(len(rows), 1, f"{n} sockets on d1: one binding (deployment -> the node's queue)")

        await unsubscribe_ok(group[0], "deployment", "d1")
        # A barrier through the broker link: once d2 is bound, an unbind of
        # d1 sent before it would have happened too.
        await subscribe_ok(last, "deployment", "d2")
        T.check(await wait_bindings(R, {("deployment", "d2")}), "setup: deployment/d2 bound")
        rows = await in_thread(queue_bindings, "deployment", "d1")
        T.eq(len(rows), 1, "first unsubscribe of several: the binding stays")

        for i, c in enumerate(group[1:-1]):
            if i % 2:
                await unsubscribe_ok(c, "deployment", "d1")
            else:
                await c.close()                 # a disconnect counts as an unsubscribe
        await subscribe_ok(last, "public", "barrier")
        T.check(await wait_bindings(R, {("public", "barrier")}), "setup: public/barrier bound")
        rows = await in_thread(queue_bindings, "deployment", "d1")
        T.eq(len(rows), 1, f"{n - 1} of {n} leave (unsubscribe or disconnect): "
             "the binding stays")
        with Publisher(R.url) as p:
            p.publish("deployment", "d1", "StillBound", {})
        await last.expect(delivered("StillBound", {}, "deployment", "d1"),
                          "the remaining subscriber still receives")
        await group[0].expect_nothing("one that unsubscribed does not", 0.3)

        await unsubscribe_ok(last, "deployment", "d1")
        T.check(await wait_bindings(R, set(), {("deployment", "d1")}),
                "the last unsubscribe: the binding is gone", R.myxid_bindings())

        async with Client(PORT, label="again") as again:
            await again.authenticate("demo-alice")
            await subscribe_ok(again, "deployment", "d1")
            T.check(await wait_bindings(R, {("deployment", "d1")}),
                    "a new subscriber binds it again")
            with Publisher(R.url) as p:
                p.publish("deployment", "d1", "Rebound", {})
            await again.expect(delivered("Rebound", {}, "deployment", "d1"), "and receives")
            await last.expect_nothing("the earlier subscribers do not", 0.2)
        T.check(await wait_bindings(R, set(), {("deployment", "d1")}),
                "its disconnect, the last subscriber's: the binding is gone",
                R.myxid_bindings())
        await last.close()
        T.check(await wait_bindings(R, set(), {("deployment", "d2"), ("public", "barrier")}),
                "a socket's other bindings go with it")
    finally:
        for c in group:
            await c.close()


@T.test(timeout=120)
async def keys_shared_across_loops():
    """A direct exchange's message goes only to the event loops that have a
    subscriber for its key. 16 sockets on one key land on both loops (the
    kernel spreads them; all on one loop is a 1 in 32,768 chance); they
    leave one by one, and after each departure every remaining socket, on
    whichever loop, still gets the next event and no departed one does:
    so a loop that loses its last subscriber stops getting the key while
    the other keeps it."""
    n = 16
    group = [Client(PORT, label=f"l{i}") for i in range(n)]
    try:
        for c in group:
            await c.connect()
            await subscribe_ok(c, "public", "shared")
        T.check(await wait_bindings(R, {("public", "shared")}), "setup: public/shared bound")
        bad = []
        with Publisher(R.url) as p:
            for i in range(n):
                p.publish("public", "shared", "Left", {"gone": i})
                want = [compact(delivered("Left", {"gone": i}, "public", "shared"))]
                rest = group[i:]
                gots = await asyncio.gather(*(receive_all(c, 1, 3) for c in rest))
                bad += [(i, c.label, got) for c, got in zip(rest, gots) if got != want]
                if i % 2:
                    await unsubscribe_ok(group[i], "public", "shared")
                else:
                    await group[i].close()
            p.publish("public", "shared", "Late", {})
            for c in group[1::2]:
                await c.expect_nothing(f"{c.label}: nothing after it unsubscribed", 0.05)
        T.check(not bad, f"{n} sockets leave one key one by one: after each departure, "
                "each of the others gets the next event once", repr(bad[:5]))
        T.check(await wait_bindings(R, set(), {("public", "shared")}),
                "the last departure unbinds the key", R.myxid_bindings())
    finally:
        for c in group:
            await c.close()


@T.test(timeout=40)
async def topic_patterns():
    async with Client(PORT, label="star") as star, Client(PORT, label="hash") as hsh, \
            Client(PORT, label="both") as both, Client(PORT, label="exact") as exact:
        await subscribe_ok(star, "topics", "news.*")
        await subscribe_ok(hsh, "topics", "news.#")
        await subscribe_ok(both, "topics", "news.*", "s1")
        await subscribe_ok(both, "topics", "news.#", "s2")
        await subscribe_ok(exact, "topics", "news.sport")
        T.check(await wait_bindings(R, {("topics", "news.*"), ("topics", "news.#"),
                                        ("topics", "news.sport")}),
                "the patterns are bound as given", R.myxid_bindings())
        with Publisher(R.url) as p:
            p.publish("topics", "news.sport", "Goal", {"n": 1}, declare="topic")
            want = delivered("Goal", {"n": 1}, "topics", "news.sport")
            await star.expect(want, "news.sport reaches news.*")
            await hsh.expect(want, "news.sport reaches news.#")
            await both.expect(want, "news.sport reaches a socket on news.* and news.#")
            await exact.expect(want, "news.sport reaches the exact key on a topic exchange")
            await both.expect_nothing("... once", 0.4)

            p.publish("topics", "news.sport.football", "Deep", {"n": 2}, declare="topic")
            want = delivered("Deep", {"n": 2}, "topics", "news.sport.football")
            await hsh.expect(want, "news.sport.football reaches news.#")
            await both.expect(want, "news.sport.football reaches the socket with both, once")
            await star.expect_nothing("news.sport.football does not reach news.*", 0.4)
            await both.expect_nothing("(no second copy)", 0.1)
            await exact.expect_nothing("nor news.sport", 0.1)

            p.publish("topics", "weather", "Rain", {}, declare="topic")
            for c in (star, hsh, both, exact):
                await c.expect_nothing(f"weather reaches nobody ({c.label})", 0.15)


@T.test(timeout=30)
async def fanout_exchange():
    async with Client(PORT, label="fa") as fa, Client(PORT, label="fb") as fb:
        await subscribe_ok(fa, "fan", "a")
        await subscribe_ok(fb, "fan", "b")
        T.check(await wait_bindings(R, {("fan", "a"), ("fan", "b")}), "setup: fan bound")
        with Publisher(R.url) as p:
            p.publish("fan", "zzz", "Broadcast", {"k": "v"}, declare="fanout")
        want = delivered("Broadcast", {"k": "v"}, "fan", "zzz")
        await fa.expect(want, "fanout: a subscriber of the exchange receives any key")
        await fb.expect(want, "fanout: so does one subscribed with another key")
        await fa.expect_nothing("once", 0.3)
        await fb.expect_nothing("once (b)", 0.1)


@T.test(timeout=60)
async def bad_bodies():
    async with Client(PORT, label="bad") as c:
        await subscribe_ok(c, "public", "bad")
        T.check(await wait_bindings(R, {("public", "bad")}), "setup: public/bad bound")
        log_before = D.read_log()
        bodies = [
            (b"not json", "not JSON"),
            (b"[1,2,3]", "a JSON array"),
            (b'"a string"', "a JSON string"),
            (b"42", "a number"),
            (b"null", "null"),
            (b"", "an empty body"),
            (b'{"event":"X","payload":"\xff\xfe"}', "invalid UTF-8"),
            (b'{"event":"X","payload":"\xed\xa0\x80"}', "an encoded surrogate"),
            (b'{"event":"N","payload":NaN}', "NaN"),
            (b'{"event":"I","payload":-Infinity}', "-Infinity"),
            (b'{"event":"T","payload":{', "a truncated object"),
            (b'{"event":"A"} {"event":"B"}', "two objects"),
            (b'{"event":"C",}', "a trailing comma"),
        ]
        with Publisher(R.url) as p:
            for body, _ in bodies:
                p.publish_raw("public", "bad", body)
            p.publish("public", "bad", "Good", {"after": "bad"})
            await c.expect(delivered("Good", {"after": "bad"}, "public", "bad"),
                           "bodies that are not JSON objects are dropped: " +
                           ", ".join(what for _, what in bodies), timeout=5)
            await c.expect_nothing("nothing else arrives", 0.3)
            T.check(D.alive(), "the daemon is alive")
            logged = await await_until(lambda: [
                line for line in D.read_log()[len(log_before):].splitlines()
                if DROP_RE.search(line)], 5, 0.1)
            T.check(logged, "the log says a message was dropped",
                    D.read_log()[len(log_before):][-2000:] or "(no new log lines)")

            before = D.read_log()
            for i in range(300):
                p.publish_raw("public", "bad", b"[%d]" % i)
            p.publish("public", "bad", "Good", {"after": 300})
            await c.expect(delivered("Good", {"after": 300}, "public", "bad"),
                           "300 more bad bodies: still flowing", timeout=10)
            await asyncio.sleep(1.0)             # for log lines still on their way
            lines = [line for line in D.read_log()[len(before):].splitlines()
                     if DROP_RE.search(line)]
            T.check(len(lines) <= 30, "the drop log line is rate-limited (<= 30 lines for 300)",
                    f"{len(lines)} lines:\n" + "\n".join(lines[:10]))
        status, body = await in_thread(healthz, PORT)
        T.check(status == 200 and body.get("broker") == "up", "still healthy and connected",
                f"{status} {body!r}")


@T.test(timeout=60)
async def huge_body():
    # A node of its own whose sockets may queue such a frame (the default
    # max_output_buffer, 1 MiB, closes a socket sent more with 4008).
    d = Daemon(broker_config(R.url, extra="max_output_buffer 16m"), name="myxid-big")
    T.check(await wait_broker(d.port, "up", 30) is not None, "setup: myxid-big connects")
    blob = "0123456789abcdef" * (5 * 1024 * 1024 // 16)
    body = compact({"event": "Huge", "payload": {"blob": blob, "n": 1}})
    async with Client(d.port, label="big", max_size=16 * 1024 * 1024) as c:
        await subscribe_ok(c, "public", "huge")
        T.check(await wait_bindings(R, {("public", "huge")}), "setup: public/huge bound")
        with Publisher(R.url) as p:
            t0 = time.monotonic()
            p.publish_raw("public", "huge", body)
            got = await c.recv(30)
            want = body[:-1] + ',"mq":{"e":"public","rk":"huge"}}'
            T.check(got == want, f"a {len(body) // 1024} KiB body is delivered intact",
                    f"got {len(got)} bytes, want {len(want)}: {got[:80]!r}...{got[-80:]!r}")
            print(f"# 5 MiB through the broker in {time.monotonic() - t0:.2f}s")
            p.publish("public", "huge", "Small", {})
            await c.expect(delivered("Small", {}, "public", "huge"), "and a small one after it")
    d.stop()


@T.test(timeout=90)
async def publish_endpoint_and_rabbitmq_url():
    # A second node configured the Myxi way: RABBITMQ_URL, a list whose
    # first broker is down, the vhost spelt as Bunny's default.
    dead = f"amqp://guest:guest@127.0.0.1:{free_port_closed()}/"
    before = set(await in_thread(R.myxid_queues))
    e = Daemon(broker_config(None), name="myxid-env",
               env={"RABBITMQ_URL": f"{dead},{R.url_vhost}"})
    took = await wait_broker(e.port, "up", 30)
    T.check(took is not None, "RABBITMQ_URL (a list, first down) turns broker mode on; "
            "the next URL is used", e.read_log()[-2000:])
    new = set(await in_thread(R.myxid_queues)) - before
    T.eq(len(new), 1, "the second node declares a queue of its own")

    async with Client(PORT, label="on-D") as cd, Client(e.port, label="on-E") as ce:
        await subscribe_ok(cd, "public", "via-http")
        await subscribe_ok(ce, "public", "via-http")
        T.check(await wait_bindings(R, {("public", "via-http")}), "setup: bound")
        T.check(await await_until(
            lambda: len({q for x, k, q in R.myxid_bindings() if k == "via-http"}) == 2, 15),
            "setup: bound to both queues")
        r = await in_thread(publish, PORT, "public", "via-http", "Posted", {"p": 1})
        T.check(r.status == 202 and r.body.strip() == b'{"ok":true,"queued":true}' and
                r.headers.get("content-type", "").startswith("application/json"),
                "POST /publish in broker mode -> 202 {\"ok\":true,\"queued\":true}", repr(r))
        want = delivered("Posted", {"p": 1}, "public", "via-http")
        await cd.expect(want, "the publishing node delivers it (through the broker)", 5)
        await ce.expect(want, "so does the other node", 5)
        await cd.expect_nothing("once: not also delivered locally", 0.5)
        await ce.expect_nothing("once on the other node", 0.1)

        r = await in_thread(publish, PORT, "public", "12", "NumKey", {}, extra={})
        T.eq(r.status, 202, "POST /publish, another key -> 202")
        r = await in_thread(publish, PORT, "nosuch", "k", "E", {})
        T.eq(r.status, 404, "POST /publish to an unknown exchange -> 404, as without a broker")
    e.stop()


@T.test(timeout=60)
async def url_forms():
    # The config's example form, with a trailing "/": the default vhost.
    d = Daemon(broker_config(R.url + "/"), name="myxid-slash")
    T.check(await wait_broker(d.port, "up", 15) is not None,
            "url amqp://guest:guest@127.0.0.1:PORT/ (trailing slash) connects to vhost /",
            d.read_log()[-2000:])
    d.stop()
    # A vhost the broker does not have, a wrong password: the daemon runs,
    # says why in its log, and keeps trying.
    for url, what in ((R.url + "/nosuch", "a vhost the broker does not have"),
                      (R.url.replace("guest@", "wrong@"), "a wrong password")):
        d = Daemon(broker_config(url), name="myxid-refused")
        await asyncio.sleep(1.5)
        status, body = await in_thread(healthz, d.port)
        T.check(d.alive() and status == 503 and isinstance(body, dict) and
                body.get("broker") == "connecting",
                f"{what}: the daemon runs, /healthz 503 broker connecting", f"{status} {body!r}")
        async with Client(d.port, label="refused") as c:
            await c.ping_roundtrip(f"{what}: WebSockets are served")
        log = d.read_log()
        T.check(re.search(r"broker.*(login|refused|denied|access|vhost|not found|ACCESS)",
                          log, re.I), f"{what}: the log says why", log[-2000:])
        d.stop()


@T.test(timeout=40)
async def reload_keeps_the_link():
    import signal as _signal
    conns = await in_thread(R.myxid_connections)
    async with Client(PORT, label="hup") as c:
        await subscribe_ok(c, "public", "hup")
        T.check(await wait_bindings(R, {("public", "hup")}), "setup: bound")
        before = D.read_log().count("configuration reloaded")
        D.proc.send_signal(_signal.SIGHUP)
        T.check(await await_until(lambda: D.read_log().count("configuration reloaded") > before,
                                  10, 0.05), "SIGHUP reloads", D.read_log()[-2000:])
        with Publisher(R.url) as p:
            p.publish("public", "hup", "AfterHup", {})
        await c.expect(delivered("AfterHup", {}, "public", "hup"),
                       "a subscription made before the reload still receives")
        await subscribe_ok(c, "public", "hup2")
        T.check(await wait_bindings(R, {("public", "hup"), ("public", "hup2")}),
                "bindings before and after the reload are there")
        T.eq([x["name"] for x in await in_thread(R.myxid_connections)],
             [x["name"] for x in conns], "the same AMQP connection: the link was kept")
        status, body = await in_thread(healthz, PORT)
        T.eq((status, body.get("broker") if isinstance(body, dict) else None), (200, "up"),
             "/healthz after the reload")


def free_port_closed():
    from myxidtest import free_port
    return free_port()


@T.test(timeout=60)
async def channel_error_stays_with_its_binding():
    async with Client(PORT, label="ok") as ok, Client(PORT, label="victim") as victim:
        await subscribe_ok(ok, "public", "ce-ok")
        T.check(await wait_bindings(R, {("public", "ce-ok")}), "setup: public/ce-ok bound")
        with Publisher(R.url) as p:
            p.exchange_delete("doomed")       # behind myxid's back
            await subscribe_ok(victim, "doomed", "x")     # its bind gets a 404
            await subscribe_ok(victim, "public", "ce-victim")
            await subscribe_ok(ok, "public", "ce-after")
            T.check(await wait_bindings(R, {("public", "ce-after"), ("public", "ce-victim")}),
                    "binds after the failed one still work", R.myxid_bindings())
            p.publish("public", "ce-ok", "Still", {})
            await ok.expect(delivered("Still", {}, "public", "ce-ok"),
                            "a subscription made before the channel error still receives")
            p.publish("public", "ce-after", "After", {})
            await ok.expect(delivered("After", {}, "public", "ce-after"),
                            "a subscription made after it receives")
            p.publish("public", "ce-victim", "Victim", {})
            await victim.expect(delivered("Victim", {}, "public", "ce-victim"),
                                "the socket whose bind failed keeps its other subscriptions")
        await ok.ping_roundtrip("the sockets stay up")
        await victim.ping_roundtrip("the sockets stay up (victim)")
        T.eq(broker_state_now(), "up", "the daemon stays connected")
        queues = await in_thread(R.myxid_queues)
        T.check(QUEUE in queues and queues[QUEUE]["consumers"] == 1,
                "the node's queue is still consumed", repr(queues))


def broker_state_now():
    status, body = healthz(PORT)
    return body.get("broker") if isinstance(body, dict) else None


T.run()
