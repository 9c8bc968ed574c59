#!/usr/bin/python3
"""
Presence on one node (two loops), with Python websockets: an exchange with
"presence on" counts every identified subscriber of a key as present, once
per user however many sockets; a subscriber that asked with
"presence": true and whose policy allows it (policy_static's "presence"
rule) gets Presence events with exact users, count, joined and left; a
policy that refuses presence refuses that Subscribe; events are merged and
rate-limited to one per presence_interval per key; an exchange without
presence sends none and builds none (the metric does not move); the control
API's disconnect and unsubscribe make users leave.
"""
import asyncio
import json
import sys
import time

sys.dont_write_bytecode = True   # keep the source tree clean

import websockets

from myxidtest import (Client, Daemon, NoMessage, Suite, compact, hup_and_wait, http_request,
                       scrape, standard_config, write_file)

T = Suite()

INTERVAL = 0.4
KEY = "presence-ctl-7c1d"
BURST = 20

TOKENS = "\n".join(
    ["demo-alice  1  watch=r1,r2,r3", "demo-bob    2  watch=r1,r2,r3", "demo-carol  3"] +
    [f"tok-u{i}  u{i}" for i in range(BURST)]) + "\n"

CONF = standard_config(extra=f"""
workers 2
control_key {KEY}
presence_interval {int(INTERVAL * 1000)}ms
presence_max_users 5
exchange room {{
    presence on
    policy static {{
        allow authenticated
        presence attribute watch
    }}
}}
exchange lobby {{
    presence on
    policy static {{
        allow public
    }}
}}
exchange plain {{
    policy static {{
        allow authenticated
    }}
}}
exchange talk {{
    type topic
    presence on
    policy static {{
        allow public
    }}
}}
""")
D = Daemon(CONF, files={"tokens": TOKENS}, name="presence")


def presence(exchange, key, users, count, joined, left):
    return compact({"event": "Presence",
                    "payload": {"exchange": exchange, "routing_key": key, "users": users,
                                "count": count, "joined": joined, "left": left},
                    "mq": {"e": exchange, "rk": key}})


async def member(token, exchange, key, watch=False, label=None):
    """A socket of token's user subscribed to (exchange, key); with watch,
    it asked for presence."""
    c = Client(D.port, label=label or f"{token}:{key}")
    await c.connect()
    if token is not None:
        await c.authenticate(token)
    payload = {"exchange": exchange, "routing_key": key}
    if watch:
        payload["presence"] = True
    raw = await c.request("Subscribe", payload, "s")
    T.check(raw.startswith('{"event":"Subscribed"'), f"setup: {c.label} subscribed", raw)
    return c


async def next_presence(c, timeout=3.0):
    """The next message, which must be a Presence event (its text)."""
    try:
        return await c.recv(timeout)
    except NoMessage:
        return "<no Presence>"


async def presences_within(c, seconds):
    """Every Presence payload c receives within seconds, with when."""
    out = []
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return out
        try:
            raw = await asyncio.wait_for(c.ws.recv(), left)
        except asyncio.TimeoutError:
            return out
        m = json.loads(raw)
        if m.get("event") == "Presence":
            out.append((time.monotonic(), m["payload"]))


def control(command, body):
    r = http_request(D.port, "POST", f"/control/{command}",
                     {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
                     json.dumps(body))
    return r.status, r.json()


def presence_events():
    return scrape(D.port)[1].get("myxid_presence_events_total")


@T.test(timeout=40)
async def joins_and_leaves_once_per_user():
    alice = await member("demo-alice", "room", "r1", watch=True)
    await alice.expect(presence("room", "r1", ["1"], 1, ["1"], []),
                       "a watcher gets the users at once: itself, joined")
    bob = await member("demo-bob", "room", "r1", watch=True)
    want = presence("room", "r1", ["1", "2"], 2, ["2"], [])
    await bob.expect(want, "the second watcher gets both users (it joined)")
    await alice.expect(want, "the first watcher: bob joined")
    alice2 = await member("demo-alice", "room", "r1", label="alice's 2nd socket")
    await alice.expect_nothing("alice's second socket on the key: nobody joined", 2 * INTERVAL + 0.3)
    await bob.expect_nothing("... nor for bob")

    carol_w = Client(D.port, label="carol watching")
    await carol_w.connect()
    await carol_w.authenticate("demo-carol")
    raw = await carol_w.request("Subscribe", {"exchange": "room", "routing_key": "r1",
                                              "presence": True}, "s")
    T.eq(json.loads(raw), {"event": "Error", "tag": "s",
                           "payload": {"error": "SubscriptionDenied", "exchange": "room",
                                       "routing_key": "r1"}},
         "carol may subscribe but not see presence (no 'watch' attribute): that Subscribe "
         "is refused")
    raw = await carol_w.request("Subscribe", {"exchange": "room", "routing_key": "r1"}, "s2")
    T.check(raw.startswith('{"event":"Subscribed"'), "without presence carol subscribes", raw)
    want = presence("room", "r1", ["1", "2", "3"], 3, ["3"], [])
    await alice.expect(want, "carol (not a watcher) is present all the same: joined")
    await bob.expect(want, "bob sees her join too")
    await carol_w.expect_nothing("carol receives no Presence", 2 * INTERVAL)

    await alice2.close()
    await alice.expect_nothing("alice closes one of her two sockets: she is still here",
                               2 * INTERVAL + 0.3)
    await carol_w.close()
    want = presence("room", "r1", ["1", "2"], 2, [], ["3"])
    await alice.expect(want, "carol's socket closed: left")
    await bob.expect(want, "bob sees her leave too")
    raw = await bob.request("Unsubscribe", {"exchange": "room", "routing_key": "r1"}, "u")
    T.check(json.loads(raw)["event"] == "Unsubscribed", "bob unsubscribes", raw)
    await alice.expect(presence("room", "r1", ["1"], 1, [], ["2"]),
                       "bob unsubscribed: left")
    await bob.expect_nothing("bob, no longer subscribed, gets nothing more", 2 * INTERVAL)
    await alice.close()
    await bob.close()


@T.test(timeout=40)
async def merged_and_rate_limited():
    bob = await member("demo-bob", "room", "r2", watch=True)
    await bob.expect(presence("room", "r2", ["2"], 1, ["2"], []), "bob watches r2")
    t0 = time.monotonic()
    crowd = await asyncio.gather(*(member(f"tok-u{i}", "room", "r2") for i in range(BURST)))
    took = time.monotonic() - t0
    got = await presences_within(bob, 3 * INTERVAL + 0.5)
    joined = [u for _, p in got for u in p["joined"]]
    T.check(1 <= len(got) <= int(took / INTERVAL) + 2,
            f"{BURST} users joined in {took:.2f} s: {len(got)} Presence event(s), at most one "
            f"per {INTERVAL} s", [p for _, p in got])
    gaps = [b[0] - a[0] for a, b in zip(got, got[1:])]
    T.check(all(g >= INTERVAL * 0.8 for g in gaps), "consecutive events are an interval apart",
            gaps)
    last = got[-1][1] if got else {}
    T.eq((last.get("count"), len(last.get("users", [])), last.get("left")), (BURST + 1, 5, []),
         "the last says 21 users, lists presence_max_users (5) of them")
    T.check(all(len(p["joined"]) <= 5 for _, p in got), "each joined list is capped at 5 too",
            [p["joined"] for _, p in got])
    T.check(set(joined) <= {f"u{i}" for i in range(BURST)} and len(set(joined)) == len(joined),
            "joined lists name crowd users, each once", joined)

    # Coming and going within one interval is no change at all.
    await asyncio.sleep(INTERVAL + 0.1)
    x = await member("tok-u0", "room", "r2", label="u0 again")
    await x.close()
    await bob.expect_nothing("u0 (already here) opens and closes another socket within an "
                             "interval: no event", 2 * INTERVAL + 0.3)
    await asyncio.gather(*(c.close() for c in crowd))
    got = await presences_within(bob, 3 * INTERVAL + 0.5)
    T.check(got and got[-1][1]["count"] == 1 and got[-1][1]["users"] == ["2"],
            "the crowd closed: the users go back to bob alone", [p for _, p in got])
    await bob.close()


@T.test(timeout=30)
async def nothing_without_presence():
    before = presence_events()
    T.check(before is not None and before > 0, "myxid_presence_events_total is exported", before)
    alice = await member("demo-alice", "plain", "r1", watch=True)
    bob = await member("demo-bob", "plain", "r1", watch=True)
    await alice.expect_nothing("an exchange without presence: no Presence event, even when "
                               "asked for", 2 * INTERVAL + 0.3)
    await bob.close()
    await alice.expect_nothing("... nor when somebody leaves", 2 * INTERVAL)
    T.eq(presence_events(), before, "and none was built (the counter did not move)")
    # A pattern names no key to be present on.
    t1 = await member(None, "talk", "a.*", watch=True, label="pattern watcher")
    await t1.expect_nothing("a topic pattern with presence: no Presence", 2 * INTERVAL)
    t2 = await member("demo-alice", "talk", "a.b", watch=True)
    await t2.expect(presence("talk", "a.b", ["1"], 1, ["1"], []),
                    "an exact key of a topic exchange has presence")
    await t1.expect_nothing("the pattern subscriber is no watcher of a.b")
    for c in (alice, t1, t2):
        await c.close()


@T.test(timeout=30)
async def anonymous_watchers_and_control():
    anon = await member(None, "lobby", "hall", watch=True, label="anonymous watcher")
    await anon.expect(presence("lobby", "hall", [], 0, [], []),
                      "an anonymous watcher (allow public) gets the empty room; it counts "
                      "nobody (no user id)")
    bob = await member("demo-bob", "lobby", "hall")
    await anon.expect(presence("lobby", "hall", ["2"], 1, ["2"], []), "bob joins the hall")
    carol = await member("demo-carol", "lobby", "hall")
    await anon.expect(presence("lobby", "hall", ["2", "3"], 2, ["3"], []), "carol joins")
    st, body = await asyncio.to_thread(control, "unsubscribe", {"user_id": "3", "exchange": "lobby",
                                                                 "routing_key": "hall"})
    T.eq((st, body.get("unsubscribed")), (200, 1), "control unsubscribe of carol from the hall")
    await anon.expect(presence("lobby", "hall", ["2"], 1, [], ["3"]),
                      "the control API's unsubscribe: carol left")
    st, body = await asyncio.to_thread(control, "disconnect", {"user_id": "2"})
    T.eq((st, body.get("disconnected")), (200, 1), "control disconnect of bob")
    await anon.expect(presence("lobby", "hall", [], 0, [], ["2"]),
                      "the control API's disconnect: bob left")
    for c in (anon, bob, carol):
        try:
            await c.close()
        except websockets.exceptions.WebSocketException:
            pass


@T.test(timeout=40)
async def a_recheck_applies_the_presence_rule():
    d = Daemon(CONF + "recheck_interval 1s\n", files={"tokens": TOKENS}, name="presence-recheck")
    c = Client(d.port, label="alice watching r3")
    await c.connect()
    await c.authenticate("demo-alice")
    raw = await c.request("Subscribe", {"exchange": "room", "routing_key": "r3",
                                        "presence": True}, "s")
    T.check(raw.startswith('{"event":"Subscribed"'), "alice may watch r3", raw)
    await c.expect(presence("room", "r3", ["1"], 1, ["1"], []), "and watches it")
    write_file(d, "tokens", TOKENS.replace("demo-alice  1  watch=r1,r2,r3",
                                           "demo-alice  1  watch=r1,r2"))
    T.check(await hup_and_wait(d, "configuration reloaded"), "reload: alice may no longer "
            "see presence on r3")
    await c.expect({"event": "Unsubscribed", "tag": None, "payload": {"exchange_name": "room",
                    "routing_key": "r3", "auto": True}},
                   "the next re-check asks the policy about presence too: the watching "
                   "subscription is revoked", timeout=4)
    await c.close()


@T.test(timeout=20)
def configuration_errors():
    from myxidtest import run_myxid
    import os
    import tempfile
    d = tempfile.mkdtemp(prefix="myxidtest-")
    T.tmpdirs.append(d)
    cases = [
        ("exchange x {\n presence maybe\n policy static {\n allow public\n }\n}\n",
         "presence takes on or off"),
        ("presence_interval 0\n", "presence_interval must be positive"),
        ("exchange x {\n policy static {\n presence public\n }\n}\n",
         "a policy block with only presence rules"),
    ]
    for i, (text, what) in enumerate(cases):
        path = os.path.join(d, f"c{i}.conf")
        with open(path, "w") as f:
            f.write(text)
        rc, out, err = run_myxid(["-t", "-c", path])
        T.check(rc != 0 and (":2:" in err or ":3:" in err or ":1:" in err or "presence" in err),
                f"myxid -t refuses it: {what}", err)


if __name__ == "__main__":
    T.run()
