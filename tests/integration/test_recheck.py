#!/usr/bin/python3
"""
The daemon's answer cache and periodic re-check, with a test plugin that
reads its answers from a file at every question (tests/plugins/live_file.c)
and logs each one:

- allowed answers are cached for auth_cache / policy_cache (the plugin is
  asked once), denials are not, and 0 turns caching off;
- every recheck_interval the token and each subscription are asked again,
  past the cache: a revoked subscription gets Unsubscribed (auto: true),
  a revoked token gets Error SessionExpired and loses every subscription,
  and a plugin outage changes nothing.
"""
import asyncio
import os
import sys
import time

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import (Client, Daemon, Suite, authenticated, compact, delivered,
                       error, publish, require, subscribed, unsubscribed)

require()
T = Suite()
TEST_PLUGINS = os.environ.get("MYXID_TEST_PLUGIN_DIR") or os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plugins", ".libs"))
LIVE = os.path.join(TEST_PLUGINS, "live_file.so")


def config(auth_cache="60s", policy_cache="60s", recheck="0"):
    return (f"publish_key demo-publish-key\n"
            f"auth_cache {auth_cache}\npolicy_cache {policy_cache}\n"
            f"recheck_interval {recheck}\n"
            f"auth {LIVE} {{\n    file answers\n}}\n"
            f"exchange x {{\n    policy {LIVE} {{\n        file answers\n    }}\n}}\n")


def write_answers(d, lines):
    path = os.path.join(d.dir, "answers")
    with open(path + ".tmp", "w") as f:
        f.write("".join(line + "\n" for line in lines))
    os.replace(path + ".tmp", path)       # never a half-written file


def asked(d, what):
    return d.read_log().count(f"asked: {what}")


ANSWERS = ["token t1 7", "allow x k1 7", "allow x k2 7", "allow x k3 7"]


@T.test
async def allowed_answers_are_cached():
    d = Daemon(config(), files={"answers": "\n".join(ANSWERS) + "\n"}, name="cache")
    for i in range(3):
        async with Client(d.port) as c:
            await c.send("Authenticate", {"session_id": "t1"}, i)
            await c.expect(authenticated("7", i), f"connection {i + 1}: authenticated")
            await c.send("Subscribe", {"exchange": "x", "routing_key": "k1"}, "s")
            await c.expect(subscribed("x", "k1", "s"), f"connection {i + 1}: subscribed")
    T.eq(asked(d, "auth"), 1, "the auth plugin was asked once for three logins")
    T.eq(asked(d, "policy x/k1"), 1, "the policy was asked once for three subscribes")
    for i in range(2):
        async with Client(d.port) as c:
            await c.send("Authenticate", {"session_id": "nobody"}, "n")
            await c.expect(error("InvalidAuthentication", "n"), "an unknown token is refused")
    T.eq(asked(d, "auth"), 3, "a refusal is not cached: asked again each time")
    d.stop()

    d = Daemon(config(auth_cache="0", policy_cache="0"),
               files={"answers": "\n".join(ANSWERS) + "\n"}, name="nocache")
    for i in range(2):
        async with Client(d.port) as c:
            await c.authenticate("t1")
    T.eq(asked(d, "auth"), 2, "auth_cache 0: asked at every login")
    d.stop()


@T.test
async def recheck_revokes_subscriptions_then_the_session():
    d = Daemon(config(recheck="300ms"), files={"answers": "\n".join(ANSWERS) + "\n"},
               name="recheck")
    async with Client(d.port) as c:
        await c.authenticate("t1")
        await c.send("Subscribe", {"exchange": "x", "routing_keys": ["k1", "k2", "k3"]}, "s")
        for k in ["k1", "k2", "k3"]:
            await c.expect(subscribed("x", k, "s"), f"setup: subscribed to {k}")
        before = asked(d, "auth")
        # A re-check with nothing changed says nothing and asks past the cache.
        await c.expect_nothing("an unchanged re-check sends nothing", timeout=0.8)
        T.check(asked(d, "auth") > before, "the re-check asked the auth plugin again "
                "(the cache does not hide revocations)")

        write_answers(d, ["token t1 7", "allow x k1 7", "allow x k3 7"])
        await c.expect(unsubscribed("x", "k2", None, auto=True),
                       "a revoked subscription: Unsubscribed with auto true, tag null",
                       timeout=3)
        r = publish(d.port, "x", "k1", "E", {"n": 1})
        await c.expect(delivered("E", {"n": 1}, "x", "k1"), "k1 (still allowed) is kept")
        await c.send("ListSubscriptions", tag="l")
        await c.expect({"event": "YourSubscriptions", "tag": "l",
                        "payload": {"subscriptions": {"x": ["k1", "k3"]}}},
                       "k2 is gone, k1 and k3 stay (no key skipped)")

        # An outage: the plugin errors; nothing may change.
        os.unlink(os.path.join(d.dir, "answers"))
        await c.expect_nothing("a plugin outage during re-checks changes nothing",
                               timeout=1.0)
        await c.send("ListSubscriptions", tag="l2")
        await c.expect({"event": "YourSubscriptions", "tag": "l2",
                        "payload": {"subscriptions": {"x": ["k1", "k3"]}}},
                       "  the subscriptions survived the outage")

        write_answers(d, ["allow x k1 7", "allow x k3 7"])      # token revoked
        await c.expect(compact({"event": "Error", "tag": None,
                                "payload": {"error": "SessionExpired"}}),
                       "a revoked token: Error SessionExpired", timeout=3)
        got = {await c.recv(), await c.recv()}
        T.eq(got, {compact(unsubscribed("x", k, None, auto=True)) for k in ["k1", "k3"]},
             "  and every subscription dropped with auto true")
        await c.send("Subscribe", {"exchange": "x", "routing_key": "k1"}, "again")
        await c.expect(error("AuthRequired", "again", "x", "k1"),
                       "  the socket is anonymous afterwards")
        T.check(d.alive(), "the daemon is fine")
    d.stop()


T.run()
