#!/usr/bin/python3
"""
The Myxi protocol over a real client (Python websockets): Welcome, the
built-in actions, tags, errors, authentication through auth_static and the
asynchronous example plugin chained behind it, and exchange policies.
Replies are compared byte for byte (compact JSON, key order as Myxi's).
"""
import asyncio
import json
import sys
import time

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import (Client, Daemon, INVALID_JSON, Suite, authenticated,
                       compact, error, require, standard_config,
                       subscribed, unsubscribed)

require(example_plugin=True)
T = Suite()
D = Daemon(standard_config(example=True))
PORT = D.port


# ------------------------------------------------------------ Welcome, Ping

@T.test
async def welcome_and_ping():
    async with Client(PORT) as a, Client(PORT) as b:
        T.check(a.id != b.id, "two connections get different Welcome ids",
                f"{a.id} {b.id}")
        await a.ping_roundtrip("Ping -> Pong with the tag and the time", tag="p1")
        await a.send("Ping")
        await a.expect_pong(None, "Ping without a tag -> \"tag\":null")
        await a.send("Ping", payload=None, tag=7)
        await a.expect_pong(7, "payload null is treated as {}")
        await a.send("Ping", payload=False, tag=8)
        await a.expect_pong(8, "payload false is treated as {}")
    async with Client(PORT, path="/pushwss?x=1") as c:
        await c.ping_roundtrip("any request path is accepted (Myxi 1.4)")


@T.test
async def tags_are_echoed():
    async with Client(PORT) as c:
        for tag in ["abc123abc", 42, -1.5, {"k": [1, "two", None]}, [1, 2], True,
                    "unicod\u00e9 \u2603", ""]:
            await c.send("Ping", {}, tag)
            await c.expect_pong(tag, f"tag {compact(tag)} echoed as sent")
        await c.send("Nope", {}, {"id": 5})
        await c.expect(error("InvalidAction", {"id": 5}), "InvalidAction echoes an object tag")
        await c.send("Subscribe", {"exchange": "nope", "routing_key": "x"}, 99)
        await c.expect(error("InvalidExchange", 99, "nope"), "error replies echo a number tag")


# ------------------------------------------------------------ bad input

@T.test
async def invalid_action():
    async with Client(PORT) as c:
        await c.send("Frobnicate", {}, "t1")
        await c.expect(error("InvalidAction", "t1"), "unknown action -> InvalidAction")
        await c.send(payload={}, tag="t2")
        await c.expect(error("InvalidAction", "t2"), "missing action -> InvalidAction")
        await c.send(None, {}, "t3")
        await c.expect(error("InvalidAction", "t3"), "null action -> InvalidAction")
        await c.send(123, {}, "t4")
        await c.expect(error("InvalidAction", "t4"), "numeric action -> InvalidAction")
        await c.send("ping", {}, "t5")
        await c.expect(error("InvalidAction", "t5"), "actions are case-sensitive")
        await c.send("Frobnicate")
        await c.expect(error("InvalidAction", None), "no tag -> \"tag\":null")
        await c.send_raw('{"action":"Ping","tag":"x","extra":{"ignored":1}}')
        await c.expect_pong("x", "other top-level keys are ignored")


@T.test
async def invalid_json():
    def nested(depth):
        return '{"a":' * (depth - 1) + '{}' + '}' * (depth - 1)
    async with Client(PORT) as c:
        cases = [
            ("not JSON", "not json at all"),
            ("an array", '[{"action":"Ping"}]'),
            ("a number", "42"),
            ("a string", '"Ping"'),
            ("null", "null"),
            ("an empty message", ""),
            ("white space only", "   "),
            ("trailing garbage", '{"action":"Ping","tag":1} x'),
            ("two objects", '{"action":"Ping"}{"action":"Ping"}'),
            ("a truncated object", '{"action":"Ping"'),
            ("single quotes", "{'action':'Ping'}"),
            ("a trailing comma", '{"action":"Ping",}'),
            ("nesting 40 deep", nested(40)),
            ("nesting 33 deep", nested(33)),
            ("nesting 5000 deep", nested(5000)),
        ]
        for label, text in cases:
            await c.send_raw(text)
            await c.expect(INVALID_JSON, f"{label} -> InvalidJSON without a tag")
        await c.send_raw('{"action":"Ping","tag":"ws"}\r\n ')
        await c.expect_pong("ws", "trailing white space after the object is fine")
        # 32 levels, the documented limit, is still accepted.
        inner = '{"a":' * 30 + '{}' + '}' * 30     # 31 levels under the action
        await c.send_raw('{"action":"Ping","tag":"deep","payload":' + inner + '}')
        await c.expect_pong("deep", "nesting exactly 32 deep is accepted")
        await c.ping_roundtrip("the connection survives bad JSON")


@T.test
async def invalid_payload():
    async with Client(PORT) as c:
        for label, payload in [("a string", "x"), ("an array", [1]), ("a number", 5),
                               ("true", True)]:
            await c.send("Ping", payload, "tp")
            await c.expect(error("InvalidPayload", "tp"), f"payload {label} -> InvalidPayload")
        await c.send("Subscribe", ["deployment", "d1"], 3)
        await c.expect(error("InvalidPayload", 3), "Subscribe with an array payload -> InvalidPayload")


@T.test
async def binary_frames_are_json():
    async with Client(PORT) as c:
        await c.ws.send(b'{"action":"Ping","tag":"bin"}')
        await c.expect_pong("bin", "a binary frame carrying an action is handled like text")
        await c.ws.send(b"\xff\xfe not json")
        await c.expect(INVALID_JSON, "a binary frame that is not JSON -> InvalidJSON")


# ------------------------------------------------------------ Authenticate

@T.test
async def authenticate_static():
    for key in ["session_id", "session_token", "token", "sessionID"]:
        async with Client(PORT) as c:
            await c.send("Authenticate", {key: "demo-alice"}, key)
            await c.expect(authenticated("1", key), f"token in payload.{key}")
    async with Client(PORT) as c:
        await c.send("Authenticate", {"session_id": "demo-carol"}, {"n": 1})
        await c.expect(authenticated("3", {"n": 1}, "Admin"),
                       "a token with type= -> user_type in the reply")
        await c.send("Authenticate", {"session_id": "demo-bob"}, "again")
        await c.expect(error("AlreadyAuthenticated", "again"),
                       "a second Authenticate -> AlreadyAuthenticated")
    async with Client(PORT) as c:
        await c.send("Authenticate", {"session_id": "wrong-token"}, 1)
        await c.expect(error("InvalidAuthentication", 1), "unknown token -> InvalidAuthentication")
        await c.send("Authenticate", {}, 2)
        await c.expect(error("InvalidAuthentication", 2), "missing token -> InvalidAuthentication")
        await c.send("Authenticate", tag=3)
        await c.expect(error("InvalidAuthentication", 3), "no payload -> InvalidAuthentication")
        await c.send("Authenticate", {"session_id": 12345}, 4)
        await c.expect(error("InvalidAuthentication", 4), "numeric token -> InvalidAuthentication")
        await c.send("Authenticate", {"session_id": ""}, 5)
        await c.expect(error("InvalidAuthentication", 5), "empty token -> InvalidAuthentication")
        await c.send("Authenticate", {"session_id": "demo-alice "}, 6)
        await c.expect(error("InvalidAuthentication", 6), "token plus a space is not the token")
        await c.send("Authenticate", {"session_id": "demo-alice\u0000junk"}, "nul")
        await c.expect(error("InvalidAuthentication", "nul"),
                       "a NUL inside the token does not cut it down to a valid one")
        await c.send("Authenticate", {"session_id": "demo-bob"}, 7)
        await c.expect(authenticated("2", 7), "a failed attempt does not prevent a later one")


@T.test
async def authenticate_example_plugin_chain():
    async with Client(PORT) as c:
        t0 = time.monotonic()
        await c.send("Authenticate", {"session_id": "example-42"}, "ex")
        await c.expect(authenticated("42", "ex", "Example"),
                       "the example plugin answers asynchronously: user 42 of type Example")
        T.check(time.monotonic() - t0 >= 0.015, "the example plugin's delay_ms is applied",
                f"{time.monotonic() - t0:.3f}s")
    async with Client(PORT) as c:
        await c.send("Authenticate", {"token": "demo-alice"}, "st")
        await c.expect(authenticated("1", "st"), "auth_static first in the chain still answers")
    async with Client(PORT) as c:
        await c.send("Authenticate", {"session_id": "example-abc"}, "bad")
        await c.expect(error("InvalidAuthentication", "bad"),
                       "a malformed example token is denied")
        await c.send("Authenticate", {"session_id": "nobody-knows"}, "next")
        await c.expect(error("InvalidAuthentication", "next"),
                       "a token every plugin passes on (NEXT) is denied")


@T.test
async def actions_queue_behind_pending_auth():
    async with Client(PORT) as c:
        # Sent back to back without waiting for the asynchronous answer.
        await c.send("Authenticate", {"session_id": "example-7"}, 1)
        await c.send("Subscribe", {"exchange": "user", "routing_key": "user.7"}, 2)
        await c.send("Ping", tag=3)
        await c.send("ListSubscriptions", tag=4)
        await c.expect(authenticated("7", 1, "Example"), "1st reply: Authenticated")
        await c.expect(subscribed("user", "user.7", 2),
                       "2nd reply: Subscribed (handled after auth completed)")
        await c.expect_pong(3, "3rd reply: Pong")
        await c.expect({"event": "YourSubscriptions", "tag": 4,
                        "payload": {"subscriptions": {"user": ["user.7"]}}},
                       "4th reply: YourSubscriptions")


@T.test
async def client_leaves_during_pending_auth():
    for i in range(5):
        c = Client(PORT)
        await c.connect()
        await c.send("Authenticate", {"session_id": f"example-{100 + i}"}, i)
        c.ws.transport.abort()          # gone without a close frame
    await asyncio.sleep(0.1)            # past the plugin's 20 ms
    async with Client(PORT) as c:
        await c.send("Authenticate", {"session_id": "example-5"}, "after")
        await c.expect(authenticated("5", "after", "Example"),
                       "the daemon is fine after clients left mid-authentication")
    T.check(D.alive(), "the daemon is still running")


# ------------------------------------------------------------ Subscribe

@T.test
async def subscribe_replies():
    async with Client(PORT) as c:
        await c.authenticate("demo-alice")
        await c.send("Subscribe", {"exchange": "deployment", "routing_key": "d1"}, "s1")
        await c.expect(subscribed("deployment", "d1", "s1"), "Subscribed, exact")
        await c.send("Subscribe", {"exchange": "deployment", "routing_key": "d1"}, "s2")
        await c.expect(error("AlreadySubscribed", "s2", "deployment", "d1"),
                       "the same pair again -> AlreadySubscribed")
        await c.send("Subscribe", {"exchange": "deployment", "routing_key": "d3"}, "s3")
        await c.expect(error("SubscriptionDenied", "s3", "deployment", "d3"),
                       "a key outside the user's attribute -> SubscriptionDenied")
        await c.send("Subscribe", {"exchange": "nope", "routing_key": "d1"}, "s4")
        await c.expect(error("InvalidExchange", "s4", "nope"), "unknown exchange -> InvalidExchange")
        await c.send("Subscribe", {"exchange": "deployment",
                                   "routing_keys": ["d2", "d3", "d1"]}, "s5")
        await c.expect(subscribed("deployment", "d2", "s5"), "routing_keys: 1st key Subscribed")
        await c.expect(error("SubscriptionDenied", "s5", "deployment", "d3"),
                       "routing_keys: 2nd key denied")
        await c.expect(error("AlreadySubscribed", "s5", "deployment", "d1"),
                       "routing_keys: 3rd key already subscribed")
        await c.send("Subscribe", {"exchange": "nope", "routing_keys": ["a", "b"]}, "s6")
        await c.expect(error("InvalidExchange", "s6", "nope"), "routing_keys on an unknown exchange: 1st")
        await c.expect(error("InvalidExchange", "s6", "nope"), "routing_keys on an unknown exchange: 2nd")
        await c.send("Subscribe", {"exchange": "deployment", "routing_keys": []}, "s7")
        await c.expect_nothing("routing_keys [] -> no reply")
        await c.send("Subscribe", {"exchange": "deployment", "routing_key": {"a": 1}}, "s8")
        got = json.loads(await c.recv())
        T.check(got.get("event") == "Error" and got.get("tag") == "s8" and
                got["payload"].get("error") == "InvalidRoutingKey" and
                got["payload"].get("exchange") == "deployment",
                "an object routing key -> InvalidRoutingKey", repr(got))
        await c.send("ListSubscriptions", tag="l")
        await c.expect({"event": "YourSubscriptions", "tag": "l",
                        "payload": {"subscriptions": {"deployment": ["d1", "d2"]}}},
                       "ListSubscriptions after all that")
        # routing_key (singular) holding an array is not a list of keys.
        await c.send("Subscribe", {"exchange": "public", "routing_key": ["a", "b"]}, "s9")
        got = json.loads(await c.recv())
        T.check(got.get("event") == "Error" and got.get("tag") == "s9" and
                got["payload"].get("error") == "InvalidRoutingKey",
                "an array routing key -> InvalidRoutingKey", repr(got))
        await c.ping_roundtrip("nothing else was sent for the array key")


@T.test
async def subscribe_routing_key_types():
    async with Client(PORT) as c:
        await c.authenticate("demo-carol")
        await c.send("Subscribe", {"exchange": "deployment", "routing_key": 12}, "n")
        await c.expect(subscribed("deployment", 12, "n"), "a numeric key is echoed as a number")
        await c.send("Subscribe", {"exchange": "deployment", "routing_key": "12"}, "s")
        await c.expect(error("AlreadySubscribed", "s", "deployment", "12"),
                       "\"12\" is the same subscription as 12 (stored as a string)")
        await c.send("Subscribe", {"exchange": "public", "routing_key": True}, "b")
        await c.expect(subscribed("public", True, "b"), "a boolean key is echoed as sent")
        await c.send("Subscribe", {"exchange": "public"}, "none")
        await c.expect(subscribed("public", None, "none"), "a missing key is subscribed as \"\"")
        await c.send("ListSubscriptions", tag="l")
        await c.expect({"event": "YourSubscriptions", "tag": "l",
                        "payload": {"subscriptions": {"deployment": ["12"],
                                                      "public": ["true", ""]}}},
                       "keys are listed as strings")


@T.test
async def subscribe_policies():
    async with Client(PORT) as anon, Client(PORT) as bob:
        await bob.authenticate("demo-bob")
        await anon.send("Subscribe", {"exchange": "deployment", "routing_key": "d3"}, 1)
        await anon.expect(error("AuthRequired", 1, "deployment", "d3"),
                          "attribute policy, anonymous -> AuthRequired")
        await bob.send("Subscribe", {"exchange": "deployment", "routing_key": "d3"}, 1)
        await bob.expect(subscribed("deployment", "d3", 1), "attribute policy, bob -> d3")
        await bob.send("Subscribe", {"exchange": "deployment", "routing_key": "d1"}, 2)
        await bob.expect(error("SubscriptionDenied", 2, "deployment", "d1"),
                         "attribute policy, bob -> d1 denied")
        await anon.send("Subscribe", {"exchange": "public", "routing_key": "any"}, 2)
        await anon.expect(subscribed("public", "any", 2), "allow public, anonymous -> Subscribed")
        await anon.send("Subscribe", {"exchange": "members", "routing_key": "m"}, 3)
        await anon.expect(error("AuthRequired", 3, "members", "m"),
                          "allow authenticated, anonymous -> AuthRequired")
        await bob.send("Subscribe", {"exchange": "members", "routing_key": "m"}, 3)
        await bob.expect(subscribed("members", "m", 3), "allow authenticated, bob -> Subscribed")
        await bob.send("Subscribe", {"exchange": "user", "routing_key": "user.2"}, 4)
        await bob.expect(subscribed("user", "user.2", 4), "key user.{user_id}: own key")
        await bob.send("Subscribe", {"exchange": "user", "routing_key": "user.1"}, 5)
        await bob.expect(error("SubscriptionDenied", 5, "user", "user.1"),
                         "key user.{user_id}: another user's key")
        await bob.send("Subscribe", {"exchange": "user", "routing_key": "user.22"}, 6)
        await bob.expect(error("SubscriptionDenied", 6, "user", "user.22"),
                         "key user.{user_id}: no prefix match")
        await anon.send("Subscribe", {"exchange": "user", "routing_key": "user."}, 6)
        await anon.expect(error("AuthRequired", 6, "user", "user."),
                          "key user.{user_id}, anonymous -> AuthRequired")
        await anon.send("Subscribe", {"exchange": "news", "routing_key": "news.sports"}, 7)
        await anon.expect(subscribed("news", "news.sports", 7), "key news.*: glob matches")
        await anon.send("Subscribe", {"exchange": "news", "routing_key": "sports.news"}, 8)
        await anon.expect(error("AuthRequired", 8, "news", "sports.news"),
                          "key news.*: no match, anonymous -> AuthRequired")
        await bob.send("Subscribe", {"exchange": "news", "routing_key": "newsx"}, 9)
        await bob.expect(error("SubscriptionDenied", 9, "news", "newsx"),
                         "key news.*: no match, authenticated -> SubscriptionDenied")


# ------------------------------------------------------------ Unsubscribe

async def subscribe_all(c, pairs):
    for ex, rk in pairs:
        await c.send("Subscribe", {"exchange": ex, "routing_key": rk}, "setup")
        await c.expect(subscribed(ex, rk, "setup"), f"setup: subscribe {ex}/{rk}")


async def expect_list(c, subs, what):
    await c.send("ListSubscriptions", tag="list")
    await c.expect({"event": "YourSubscriptions", "tag": "list",
                    "payload": {"subscriptions": subs}}, what)


@T.test
async def unsubscribe_forms():
    async with Client(PORT) as c:
        await c.send("Unsubscribe", {}, "empty")
        await c.expect_nothing("Unsubscribe {} with nothing subscribed -> no reply")
        await c.send("ListSubscriptions", tag=0)
        await c.expect({"event": "YourSubscriptions", "tag": 0,
                        "payload": {"subscriptions": {}}}, "no subscriptions -> {}")
        await c.authenticate("demo-alice")
        await subscribe_all(c, [("deployment", "d1"), ("deployment", "d2"),
                                ("public", "p1"), ("public", 5), ("news", "news.a")])
        await expect_list(c, {"deployment": ["d1", "d2"], "public": ["p1", "5"],
                              "news": ["news.a"]}, "YourSubscriptions, in order")
        await c.send("Unsubscribe", {"exchange": "deployment", "routing_key": "d1"}, "u1")
        await c.expect(unsubscribed("deployment", "d1", "u1"), "Unsubscribe one key")
        await c.send("Unsubscribe", {"exchange": "deployment", "routing_key": "d1"}, "u2")
        await c.expect(unsubscribed("deployment", "d1", "u2"),
                       "Unsubscribe a key not subscribed still confirms")
        await c.send("Unsubscribe", {"exchange": "nope", "routing_key": 9}, "u3")
        await c.expect(unsubscribed("nope", 9, "u3"),
                       "Unsubscribe on an unknown exchange confirms, key as sent")
        await c.send("Unsubscribe", {"exchange": "public", "routing_keys": ["p1", "zz"]}, "u4")
        await c.expect(unsubscribed("public", "p1", "u4"), "routing_keys without routing_key: 1st")
        await c.expect(unsubscribed("public", "zz", "u4"), "routing_keys without routing_key: 2nd")
        await expect_list(c, {"deployment": ["d2"], "public": ["5"], "news": ["news.a"]},
                          "routing_keys removed only those keys (Myxi's bug fixed)")
        await subscribe_all(c, [("public", "p2")])
        await c.send("Unsubscribe", {"exchange": "public"}, "u5")
        await c.expect(unsubscribed("public", "5", "u5"),
                       "{exchange}: each stored key, as a string (1)")
        await c.expect(unsubscribed("public", "p2", "u5"),
                       "{exchange}: each stored key, as a string (2)")
        await c.send("Unsubscribe", {"exchange": "public"}, "u6")
        await c.expect_nothing("{exchange} with nothing left -> no reply")
        await subscribe_all(c, [("deployment", "d1")])
        await c.send("Unsubscribe", {}, "u7")
        await c.expect(unsubscribed("deployment", "d2", "u7"), "{} -> all (1)")
        await c.expect(unsubscribed("news", "news.a", "u7"), "{} -> all (2)")
        await c.expect(unsubscribed("deployment", "d1", "u7"), "{} -> all (3)")
        await expect_list(c, {}, "nothing left after Unsubscribe {}")
        await c.send("Unsubscribe", tag="u8")
        await c.expect_nothing("Unsubscribe without payload and nothing subscribed -> no reply")
        await c.ping_roundtrip("still in order afterwards")


# ------------------------------------------------------------ Deauthenticate

@T.test
async def deauthenticate():
    async with Client(PORT) as c:
        await c.send("Deauthenticate", tag="d0")
        await c.expect({"event": "Deauthenticated", "tag": "d0", "payload": {}},
                       "Deauthenticate when anonymous -> Deauthenticated")
        await c.authenticate("demo-alice")
        await subscribe_all(c, [("deployment", "d1"), ("public", "p")])
        await c.send("Deauthenticate", {}, "d1")
        await c.expect(unsubscribed("deployment", "d1", "d1", auto=True),
                       "Deauthenticate: Unsubscribed auto:true (1)")
        await c.expect(unsubscribed("public", "p", "d1", auto=True),
                       "Deauthenticate: Unsubscribed auto:true (2)")
        await c.expect({"event": "Deauthenticated", "tag": "d1", "payload": {}},
                       "then Deauthenticated")
        await expect_list(c, {}, "no subscriptions after Deauthenticate")
        await c.send("Subscribe", {"exchange": "deployment", "routing_key": "d1"}, "s")
        await c.expect(error("AuthRequired", "s", "deployment", "d1"),
                       "anonymous again after Deauthenticate")
        await c.send("Authenticate", {"session_id": "demo-bob"}, "re")
        await c.expect(authenticated("2", "re"), "can authenticate again, as someone else")
        await c.send("Subscribe", {"exchange": "deployment", "routing_key": "d3"}, "s2")
        await c.expect(subscribed("deployment", "d3", "s2"), "with the new user's rights")


if __name__ == "__main__":
    T.run()
