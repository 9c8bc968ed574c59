#!/usr/bin/python3
"""
The control API on one daemon with two event loops (sockets on both):
disconnect by user id, user ids, session token, its SHA-256 and socket id,
with the close code and reason the client sees, and the auth cache cleared
so the revoked token is asked again; unsubscribe a user from a key (the
socket gets Unsubscribed auto:true and no more events); subscriber counts
exact while sockets come and go; the keys of an exchange; the node list;
SSE streams are disconnected too; bad requests get their status (wrong or
missing key 401, malformed JSON 400, unknown user 404, an unknown exchange
404, a list over 1,000 users 413, GET on a command 405, no control_key
404); the control key never reaches the log.
"""
import asyncio
import hashlib
import json
import os
import subprocess
import sys

sys.dont_write_bytecode = True   # keep the source tree clean

import websockets

from myxidtest import (PUBLISH_KEY, Client, Daemon, Suite, http_request, publish, require,
                       scrape)

require()
T = Suite()

CONTROL_KEY = "ctl-7d1e0c9b44a2f3aa"
CONF = f"""\
publish_key {PUBLISH_KEY}
control_key {CONTROL_KEY}
workers 2
auth_cache 60s
auth static {{
    tokens_file tokens
}}
exchange deployment {{
    policy static {{
        allow attribute deployments
    }}
}}
"""
TOKENS = "demo-alice 1 deployments=d1,d2\ndemo-bob 2 deployments=d1,d3\ndemo-carol 3 deployments=d1\n"

D = Daemon(CONF, files={"tokens": TOKENS})


def control(command, body=None, key=CONTROL_KEY, method="POST", raw=None, port=None):
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    r = http_request(port or D.port, method, f"/control/{command}", headers, data)
    return r.status, (r.json() if r.body.strip() else None)


async def user(token, keys=("d1",), label=None):
    """A socket authenticated with token and subscribed to keys. Enough of
    them land on both loops (SO_REUSEPORT spreads connections)."""
    c = Client(D.port, label=label or token)
    await c.connect()
    await c.authenticate(token)
    for k in keys:
        raw = await c.subscribe("deployment", k)
        T.check(raw.startswith('{"event":"Subscribed"'), f"setup: {c.label} subscribes {k}", raw)
    return c


async def closed_with(c, code, reason, what):
    try:
        await asyncio.wait_for(c.ws.recv(), 3)
        while True:
            await asyncio.wait_for(c.ws.recv(), 3)
    except websockets.exceptions.ConnectionClosed as exc:
        return T.eq((exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else None, (code, reason), what)
    except asyncio.TimeoutError:
        return T.check(False, what, "still open after 3 s")


async def still_open(c, what):
    try:
        await c.ws.send('{"action":"Ping","tag":"p"}')
        raw = await c.recv(3)
        return T.check('"Pong"' in raw, what, raw)
    except Exception as exc:   # noqa: BLE001 - the check says what went wrong
        return T.check(False, what, repr(exc))


@T.test
async def disconnect_a_user_everywhere():
    alices = [await user("demo-alice", label=f"alice{i}") for i in range(6)]
    bob = await user("demo-bob")
    st, body = control("disconnect", {"user_id": "1", "code": 4401, "reason": "logged out"})
    T.eq((st, body), (200, {"disconnected": 6, "nodes": 1, "nodes_answered": 1}),
         "disconnect {user_id: 1}: all 6 of her sockets (spread over the two loops)")
    for i, a in enumerate(alices):
        await closed_with(a, 4401, "logged out", f"alice{i} sees 4401 'logged out'")
    await still_open(bob, "bob's socket is untouched")
    st, body = control("disconnect", {"user_id": "1"})
    T.eq((st, body["disconnected"], body["error"]), (404, 0, "no socket matched"),
         "the same user again: 404, nothing matched")
    await bob.close()


@T.test
async def disconnect_by_token_hash_socket_and_list():
    a, b, c = await user("demo-alice"), await user("demo-bob"), await user("demo-carol")
    st, body = control("disconnect", {"session_token": "demo-alice"})
    T.eq((st, body["disconnected"]), (200, 1), "by session_token")
    await closed_with(a, 4003, "disconnected by the application",
                      "the default code and reason: 4003")
    digest = hashlib.sha256(b"demo-bob").hexdigest()
    st, body = control("disconnect", {"session_token_sha256": digest})
    T.eq((st, body["disconnected"]), (200, 1), "by session_token_sha256")
    await closed_with(b, 4003, "disconnected by the application", "bob closed")
    st, body = control("disconnect", {"socket_id": c.id, "code": 1000, "reason": ""})
    T.eq((st, body["disconnected"]), (200, 1), "by socket_id (Welcome's id)")
    await closed_with(c, 1000, "", "carol closed with 1000")
    xs = [await user("demo-alice"), await user("demo-bob"), await user("demo-carol")]
    st, body = control("disconnect", {"user_ids": ["1", "3", "nobody"]})
    T.eq((st, body["disconnected"]), (200, 2), "by user_ids: alice and carol")
    await still_open(xs[1], "bob, not in the list, stays")
    for x in xs:
        await x.close()


@T.test
async def a_revoked_token_is_asked_again():
    # auth_cache 60s: a second Authenticate with a token is answered from
    # the cache; after the user is disconnected it must reach the plugin
    # again (which, for an application that revoked it, now says no).
    def hits():
        return scrape(D.port)[1].get("myxid_auth_cache_hits_total", 0)
    a = await user("demo-carol")
    before = hits()
    b = await user("demo-carol")
    T.eq(hits(), before + 1, "setup: a second Authenticate is a cache hit")
    st, _ = control("disconnect", {"user_id": "3"})
    T.eq(st, 200, "carol disconnected")
    before = hits()
    c = await user("demo-carol")
    T.eq(hits(), before, "her token is asked of the plugin again, not taken from the cache")
    for x in (a, b, c):
        await x.close()


@T.test
async def unsubscribe_a_user_from_a_key():
    a = await user("demo-alice", keys=("d1", "d2"))
    b = await user("demo-bob", keys=("d1",))
    st, body = control("unsubscribe", {"user_id": "1", "exchange": "deployment", "routing_key": "d1"})
    T.eq((st, body["unsubscribed"]), (200, 1), "unsubscribe alice from d1")
    await a.expect({"event": "Unsubscribed", "tag": None,
                    "payload": {"exchange_name": "deployment", "routing_key": "d1", "auto": True}},
                   "alice gets Unsubscribed auto:true")
    publish(D.port, "deployment", "d1", "Line", {"n": 1})
    publish(D.port, "deployment", "d2", "Line", {"n": 2})
    got = await a.recv_json()
    T.eq((got["payload"], got["mq"]["rk"]), ({"n": 2}, "d2"), "she still gets d2, and not d1")
    got = await b.recv_json()
    T.eq(got["payload"], {"n": 1}, "bob still gets d1")
    st, body = control("unsubscribe", {"user_id": "1", "exchange": "deployment", "routing_key": "d1"})
    T.eq(st, 404, "again: nobody holds it, 404")
    st, body = control("unsubscribe", {"user_id": "1", "exchange": "nope", "routing_key": "d1"})
    T.eq(st, 404, "an unknown exchange: 404")
    await a.close()
    await b.close()


@T.test
async def counts_follow_sockets():
    def count(key):
        st, body = control("subscribers", {"exchange": "deployment", "routing_key": key})
        T.eq(st, 200, f"subscribers {key}: 200")
        return body["subscribers"]
    T.eq(count("d3"), 0, "nobody on d3 yet")
    socks = [await user("demo-bob", keys=("d3",)) for _ in range(5)]
    T.eq(count("d3"), 5, "5 sockets on d3")
    for s in socks[:2]:
        await s.close()
    await asyncio.sleep(0.2)
    T.eq(count("d3"), 3, "3 after two close")
    more = [await user("demo-alice", keys=("d1", "d2")) for _ in range(2)]
    st, body = control("keys", {"exchange": "deployment"})
    T.eq((st, body["keys"], body["patterns"]), (200, {"d1": 2, "d2": 2, "d3": 3}, {}),
         "keys of deployment with their counts")
    st, body = control("nodes", method="GET")
    T.eq((st, len(body["node_list"]), body["node_list"][0]["sockets"],
          body["node_list"][0]["subscriptions"]), (200, 1, 5, 7),
         "nodes: this one, 5 sockets, 7 subscriptions")
    for s in socks[2:] + more:
        await s.close()


@T.test
async def sse_streams_are_disconnected_too():
    r, w = await asyncio.open_connection("127.0.0.1", D.port)
    w.write(b"GET /events?token=demo-alice&subscribe=deployment:d1 HTTP/1.1\r\nHost: x\r\n"
            b"Accept: text/event-stream\r\n\r\n")
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
    T.check(head.startswith(b"HTTP/1.1 200"), "setup: an SSE stream as alice", head[:40])
    await asyncio.sleep(0.2)
    st, body = control("disconnect", {"user_id": "1"})
    T.eq((st, body["disconnected"]), (200, 1), "the SSE stream counts")
    rest = await asyncio.wait_for(r.read(), 5)
    T.check(rest.endswith(b"\n\n") or rest == b"", "and its stream ends", rest[-80:])
    w.close()


@T.test
def bad_requests():
    T.eq(control("disconnect", {"user_id": "1"}, key=None)[0], 401, "no key: 401")
    T.eq(control("disconnect", {"user_id": "1"}, key=PUBLISH_KEY)[0], 401,
         "the publish key is not the control key: 401")
    st, body = control("disconnect", raw="{not json")
    T.eq(st, 400, "malformed JSON: 400")
    T.eq(control("disconnect", {})[0], 400, "nobody named: 400")
    T.eq(control("disconnect", {"user_id": "1", "socket_id": "x"})[0], 400, "two ways at once: 400")
    T.eq(control("disconnect", {"user_id": "1", "code": 1006})[0], 400, "a reserved close code: 400")
    T.eq(control("disconnect", {"user_id": "1", "reason": "x" * 200})[0], 400, "a reason over 123 bytes: 400")
    T.eq(control("disconnect", {"session_token_sha256": "abc"})[0], 400, "a bad digest: 400")
    T.eq(control("disconnect", {"user_ids": [str(i) for i in range(1001)]})[0], 413,
         "1,001 users in one list: 413")
    T.eq(control("disconnect", {"user_ids": [1, 2]})[0], 400, "user_ids of numbers: 400")
    T.eq(control("subscribers", {"exchange": "deployment"})[0], 400, "subscribers without a key: 400")
    T.eq(control("keys", {"exchange": "nope"})[0], 404, "keys of an unknown exchange: 404")
    T.eq(control("disconnect", method="GET")[0], 405, "GET on a command: 405")
    T.eq(control("explode", {})[0], 404, "an unknown command: 404")
    T.eq(control("disconnect", {"user_id": "no-such-user"})[0], 404, "an unknown user: 404")
    T.check(CONTROL_KEY not in D.read_log(), "the control key never reaches the log")
    T.check("control API: missing or wrong control key" in D.read_log(),
            "a wrong key is logged, without the key")


MYXID_CTL = os.environ.get("MYXID_CTL") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "myxid-ctl")


def ctl(*args, key=CONTROL_KEY):
    env = dict(os.environ, MYXID_URL=f"http://127.0.0.1:{D.port}")
    env.pop("MYXID_CONTROL_KEY", None)
    if key is not None:
        env["MYXID_CONTROL_KEY"] = key
    p = subprocess.run([MYXID_CTL] + list(args), env=env, capture_output=True, text=True,
                       timeout=20)
    return p.returncode, p.stdout, p.stderr


@T.test
async def the_command_line():
    a = await user("demo-alice", keys=("d1", "d2"))
    b = await user("demo-bob", keys=("d1",))
    rc, out, err = ctl("subscribers", "deployment", "d1")
    T.eq((rc, json.loads(out)["subscribers"]), (0, 2), "myxid-ctl subscribers deployment d1")
    rc, out, err = ctl("keys", "deployment")
    T.eq((rc, json.loads(out)["keys"]), (0, {"d1": 2, "d2": 1}), "myxid-ctl keys deployment")
    rc, out, err = ctl("nodes")
    T.eq((rc, json.loads(out)["node_list"][0]["sockets"]), (0, 2), "myxid-ctl nodes")
    rc, out, err = ctl("unsubscribe", "--user", "1", "deployment", "d2")
    T.eq((rc, json.loads(out)["unsubscribed"]), (0, 1), "myxid-ctl unsubscribe --user 1 deployment d2")
    rc, out, err = ctl("disconnect", "--user", "1", "--user", "2", "--code", "4001",
                       "--reason", "maintenance")
    T.eq((rc, json.loads(out)["disconnected"]), (0, 2), "myxid-ctl disconnect --user 1 --user 2")
    await closed_with(b, 4001, "maintenance", "bob sees the code and reason given on the command line")
    rc, out, err = ctl("disconnect", "--user", "1")
    T.eq(rc, 1, "nothing matched: exit status 1")
    T.check('"no socket matched"' in err and "HTTP 404" in err, "and the answer on stderr")
    rc, out, err = ctl("nodes", key="wrong")
    T.eq(rc, 1, "a wrong key: exit status 1")
    T.check("HTTP 401" in err, "HTTP 401 on stderr")
    rc, out, err = ctl("nodes", key=None)
    T.eq(rc, 2, "no key at all: usage error, exit status 2")
    rc, out, err = ctl("disconnect")
    T.eq(rc, 2, "disconnect without WHO: exit status 2")
    rc, out, err = ctl("disconnect", "--user", "1", "--code", "1006")
    T.eq(rc, 2, "a reserved code refused before asking: exit status 2")
    await a.close()


@T.test
def off_without_a_control_key():
    d = Daemon(f"publish_key {PUBLISH_KEY}\n" + CONF.split("\n", 2)[2], files={"tokens": TOKENS},
               name="nokey")
    st, body = control("nodes", method="GET", port=d.port)
    T.eq(st, 404, "no control_key: the control API answers 404")
    T.check("control API is off" in body["error"], "and says why", body)
    d.stop()


if __name__ == "__main__":
    T.run()
