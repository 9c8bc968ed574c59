#!/usr/bin/python3
"""
The HTTP side on the WebSocket port: POST /publish delivers to exactly the
subscribers of (exchange, routing key), exactly as a broker message would
({"event","payload"} plus "mq"), every refusal with its status and a JSON
error, GET /healthz, and a large event fanned out to many clients.
"""
import asyncio
import sys
import time

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import (Client, Daemon, PUBLISH_KEY, Suite, compact, delivered,
                       http_raw, http_request, publish, require, standard_config,
                       subscribed, unsubscribed)

require()
T = Suite()
D = Daemon()
PORT = D.port


async def in_thread(fn, *args, **kw):
    return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kw))


def ok_body(n):
    return compact({"ok": True, "delivered": n})


def check_ok(resp, n, what):
    T.check(resp.status == 200 and resp.body.strip() == ok_body(n).encode() and
            resp.headers.get("content-type", "").startswith("application/json"),
            what, f"got {resp!r}, want 200 {ok_body(n)}")


def check_error(resp, status, what):
    try:
        body = resp.json()
    except Exception:
        body = None
    T.check(resp.status == status and isinstance(body, dict) and
            isinstance(body.get("error"), str) and body["error"] and
            resp.headers.get("content-type", "").startswith("application/json"),
            f"{what} -> {status} with a JSON {{\"error\":...}}", repr(resp))


@T.test
async def publish_reaches_only_subscribers():
    async with Client(PORT, label="alice") as alice, Client(PORT, label="bob") as bob, \
            Client(PORT, label="anon") as anon:
        await alice.authenticate("demo-alice")
        await bob.authenticate("demo-bob")
        await alice.send("Subscribe", {"exchange": "deployment", "routing_keys": ["d1", "d2"]}, 1)
        await alice.expect(subscribed("deployment", "d1", 1), "alice subscribes d1")
        await alice.expect(subscribed("deployment", "d2", 1), "alice subscribes d2")
        await bob.send("Subscribe", {"exchange": "deployment", "routing_key": "d3"}, 1)
        await bob.expect(subscribed("deployment", "d3", 1), "bob subscribes d3")
        await anon.send("Subscribe", {"exchange": "public", "routing_key": "d1"}, 1)
        await anon.expect(subscribed("public", "d1", 1), "anon subscribes public/d1")

        payload = {"id": "d1", "status": "deployed", "n": 3, "nested": {"a": [1, None, True]},
                   "text": "caf\u00e9 \u2603 / \"quoted\""}
        resp = await in_thread(publish, PORT, "deployment", "d1", "StatusChanged", payload)
        check_ok(resp, 1, "POST /publish deployment/d1 -> 200 delivered 1")
        await alice.expect(delivered("StatusChanged", payload, "deployment", "d1"),
                           "alice receives exactly the event with mq appended")
        await bob.expect_nothing("bob (d3) receives nothing")
        await anon.expect_nothing("a subscriber of the same key on another exchange receives nothing")

        resp = await in_thread(publish, PORT, "deployment", "d3", "LogLine", {"line": "x"})
        check_ok(resp, 1, "publish to d3 -> delivered 1")
        await bob.expect(delivered("LogLine", {"line": "x"}, "deployment", "d3"), "bob receives d3")
        await alice.expect_nothing("alice receives nothing for d3")

        resp = await in_thread(publish, PORT, "deployment", "d9", "X", {})
        check_ok(resp, 0, "publish to a key nobody follows -> delivered 0")

        resp = await in_thread(http_request, PORT, "POST", "/publish",
                               {"Authorization": f"Bearer {PUBLISH_KEY}"},
                               '{"exchange":"deployment","routing_key":"d2","event":"NoPayload"}')
        check_ok(resp, 1, "publish without a payload")
        await alice.expect(delivered("NoPayload", {}, "deployment", "d2"),
                           "a missing payload is delivered as {}")

        await alice.send("Unsubscribe", {"exchange": "deployment", "routing_key": "d1"}, 2)
        await alice.expect(unsubscribed("deployment", "d1", 2), "alice unsubscribes d1")
        resp = await in_thread(publish, PORT, "deployment", "d1", "StatusChanged", {})
        check_ok(resp, 0, "after Unsubscribe nothing is delivered")
        await alice.expect_nothing("alice receives nothing after Unsubscribe")

        await alice.send("Deauthenticate", tag=3)
        await alice.expect(unsubscribed("deployment", "d2", 3, auto=True), "Deauthenticate drops d2")
        await alice.expect({"event": "Deauthenticated", "tag": 3, "payload": {}}, "Deauthenticated")
        resp = await in_thread(publish, PORT, "deployment", "d2", "StatusChanged", {})
        check_ok(resp, 0, "after Deauthenticate nothing is delivered")
        await alice.ping_roundtrip("alice got nothing in between")


@T.test
async def routing_key_types():
    async with Client(PORT, label="carol") as carol, Client(PORT, label="anon") as anon:
        await carol.authenticate("demo-carol")
        await carol.send("Subscribe", {"exchange": "deployment", "routing_key": 12}, 1)
        await carol.expect(subscribed("deployment", 12, 1), "carol subscribes to the number 12")
        resp = await in_thread(publish, PORT, "deployment", 12, "Num", {"k": 1})
        check_ok(resp, 1, "publish with the number 12")
        await carol.expect(delivered("Num", {"k": 1}, "deployment", "12"),
                           "\"rk\" is the string \"12\" for a numeric routing_key")
        resp = await in_thread(publish, PORT, "deployment", "12", "Str", {"k": 2})
        check_ok(resp, 1, "publish with the string \"12\"")
        await carol.expect(delivered("Str", {"k": 2}, "deployment", "12"),
                           "the string \"12\" reaches the subscriber of 12")
        await anon.send("Subscribe", {"exchange": "public", "routing_key": ""}, 1)
        await anon.expect(subscribed("public", "", 1), "anon subscribes to the empty key")
        resp = await in_thread(publish, PORT, "public", "", "Empty", [1, 2])
        check_ok(resp, 1, "publish to the empty key with an array payload")
        await anon.expect(delivered("Empty", [1, 2], "public", ""),
                          "an array payload passes through unchanged")
        resp = await in_thread(publish, PORT, "public", {"a": 1}, "Bad", {})
        check_error(resp, 400, "an object routing_key")


@T.test
def refusals():
    good = compact({"exchange": "deployment", "routing_key": "d1", "event": "E", "payload": {}})
    auth = {"Authorization": f"Bearer {PUBLISH_KEY}", "Content-Type": "application/json"}
    check_error(http_request(PORT, "POST", "/publish", {"Authorization": "Bearer wrong"}, good),
                401, "a wrong publish key")
    check_error(http_request(PORT, "POST", "/publish", {}, good), 401, "no Authorization")
    check_error(http_request(PORT, "POST", "/publish",
                             {"Authorization": f"Basic {PUBLISH_KEY}"}, good),
                401, "a Basic Authorization with the key")
    check_error(http_request(PORT, "POST", "/publish",
                             {"Authorization": f"Bearer {PUBLISH_KEY}x"}, good),
                401, "the key with an extra character")
    check_error(http_request(PORT, "POST", "/publish",
                             {"Authorization": f"Bearer {PUBLISH_KEY[:-1]}"}, good),
                401, "a prefix of the key")
    check_error(http_request(PORT, "POST", "/publish", auth, "{not json"), 400, "bad JSON")
    check_error(http_request(PORT, "POST", "/publish", auth, good + "x"), 400,
                "JSON followed by garbage")
    check_error(http_request(PORT, "POST", "/publish", auth, "[1,2]"), 400, "a JSON array body")
    check_error(http_request(PORT, "POST", "/publish", auth, ""), 400, "an empty body")
    check_error(http_request(PORT, "POST", "/publish", auth,
                             compact({"routing_key": "d1", "event": "E"})), 400, "no exchange")
    check_error(http_request(PORT, "POST", "/publish", auth,
                             compact({"exchange": "deployment", "routing_key": "d1"})),
                400, "no event")
    check_error(http_request(PORT, "POST", "/publish", auth,
                             compact({"exchange": "nope", "routing_key": "d1", "event": "E"})),
                404, "an unknown exchange")
    check_error(http_request(PORT, "GET", "/publish", auth), 405, "GET /publish")
    resp = http_raw(PORT, (f"POST /publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                           f"{PUBLISH_KEY}\r\n\r\n").encode() + good.encode(), shut_wr=True)
    check_error(resp, 411, "no Content-Length")
    resp = http_raw(PORT, (f"POST /publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                           f"{PUBLISH_KEY}\r\nContent-Length: {1024 * 1024 + 1}\r\n\r\n").encode())
    check_error(resp, 413, "Content-Length of 1 MiB + 1")
    resp = http_raw(PORT, (f"POST /publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                           f"{PUBLISH_KEY}\r\nContent-Length: 99999999999999999999\r\n\r\n").encode())
    T.check(resp.status in (400, 413), "an absurd Content-Length -> 400 or 413", repr(resp))
    check_error(http_request(PORT, "GET", "/nope"), 404, "an unknown path")
    check_error(http_request(PORT, "POST", "/", auth, good), 404, "POST /")


@T.test
def body_in_pieces():
    doc = compact({"exchange": "deployment", "routing_key": "d9", "event": "E", "payload": {}})
    head = (f"POST /publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {PUBLISH_KEY}\r\n"
            f"Content-Length: {len(doc)}\r\n\r\n").encode()
    resp = http_raw(PORT, None, chunks=[head, doc[:10].encode(), doc[10:].encode()], pause=0.1)
    check_ok(resp, 0, "head and body in three writes")


@T.test
def body_of_1mib():
    # A body of exactly 1 MiB (white space padding) is accepted.
    doc = compact({"exchange": "deployment", "routing_key": "d9", "event": "E", "payload": {}})
    body = doc.encode() + b" " * (1024 * 1024 - len(doc))
    resp = http_request(PORT, "POST", "/publish", {"Authorization": f"Bearer {PUBLISH_KEY}"},
                        body, timeout=10)
    check_ok(resp, 0, "a body of exactly 1 MiB is accepted")


@T.test
def body_over_1mib():
    doc = compact({"exchange": "deployment", "routing_key": "d9", "event": "E", "payload": {}})
    body = doc.encode() + b" " * (1024 * 1024 + 1 - len(doc))
    resp = http_request(PORT, "POST", "/publish", {"Authorization": f"Bearer {PUBLISH_KEY}"},
                        body, timeout=10)
    check_error(resp, 413, "a body of 1 MiB + 1 sent in full")


@T.test
def healthz():
    resp = http_request(PORT, "GET", "/healthz")
    body = None
    try:
        body = resp.json()
    except Exception:
        pass
    T.check(resp.status == 200 and isinstance(body, dict) and body.get("status") == "ok" and
            resp.headers.get("content-type", "").startswith("application/json"),
            "GET /healthz -> 200 JSON with \"status\":\"ok\"", repr(resp))
    resp = http_request(PORT, "GET", "/healthz?verbose=1")
    T.eq(resp.status, 200, "GET /healthz with a query string")
    resp = http_request(PORT, "POST", "/healthz", body="")
    T.eq(resp.status, 405, "POST /healthz -> 405")


@T.test(timeout=40)
async def large_event_to_many():
    n = 50
    clients = [Client(PORT, label=f"fan{i}") for i in range(n)]
    try:
        await asyncio.gather(*(c.connect() for c in clients))
        for c in clients:
            await c.send("Subscribe", {"exchange": "public", "routing_key": "big"}, "b")
        replies = await asyncio.gather(*(c.recv() for c in clients))
        T.check(all(r == compact(subscribed("public", "big", "b")) for r in replies),
                f"{n} clients subscribed public/big")
        blob = "".join(chr(0x41 + (i * 7) % 26) for i in range(200_000))
        payload = {"blob": blob, "unicode": "\u00e9" * 1000, "list": list(range(1000))}
        t0 = time.monotonic()
        resp = await in_thread(publish, PORT, "public", "big", "Big", payload)
        check_ok(resp, n, f"a 200 KB event -> delivered {n}")
        want = compact(delivered("Big", payload, "public", "big"))
        got = await asyncio.gather(*(c.recv(timeout=15) for c in clients),
                                   return_exceptions=True)
        intact = sum(1 for g in got if g == want)
        T.eq(intact, n, f"all {n} clients received the 200 KB event intact")
        print(f"# fan-out of {len(want)} bytes to {n} clients took "
              f"{time.monotonic() - t0:.2f}s")
        await clients[0].ping_roundtrip("connections still answer afterwards")
    finally:
        await asyncio.gather(*(c.close() for c in clients if c.ws), return_exceptions=True)


@T.test
def publishing_disabled():
    d = Daemon(standard_config(publish_key=None), name="myxid (no publish_key)")
    check_error(publish(d.port, "deployment", "d1", "E", {}), 403,
                "POST /publish with no publish_key configured")
    check_error(publish(d.port, "deployment", "d1", "E", {}, key=None), 403,
                "the same without Authorization")
    resp = http_request(d.port, "GET", "/healthz")
    T.eq(resp.status, 200, "healthz still works there")
    d.stop()


if __name__ == "__main__":
    T.run()
