#!/usr/bin/python3
"""
Presence across nodes on one real RabbitMQ: a user subscribed on one node
is present for the watchers of every node, once however many nodes hold
sockets of that user; a node that starts late learns who is already
there; a node SIGKILLed takes its users with it (they leave) within a
bounded time; a malformed presence message on the control exchange is
logged and dropped.
"""
import asyncio
import json
import sys
import time

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import Client, Daemon, compact
from rabbitmq import Publisher, broker_config, broker_suite, start_node, wait_broker

T = broker_suite()
R = start_node()
INTERVAL = 0.3
CONF = broker_config(R.url, queue_expires="2s", extra=f"""
workers 2
presence_interval {int(INTERVAL * 1000)}ms
exchange room {{
    presence on
    policy static {{
        allow authenticated
    }}
}}
""")
NODES = [Daemon(CONF, name=f"myxid-{i}") for i in range(3)]


def presence(key, users, joined, left):
    return compact({"event": "Presence",
                    "payload": {"exchange": "room", "routing_key": key, "users": users,
                                "count": len(users), "joined": joined, "left": left},
                    "mq": {"e": "room", "rk": key}})


async def member(node, token, key, watch=False):
    c = Client(node.port, label=f"{token}@{node.name}")
    await c.connect()
    await c.authenticate(token)
    payload = {"exchange": "room", "routing_key": key}
    if watch:
        payload["presence"] = True
    raw = await c.request("Subscribe", payload, "s")
    T.check(raw.startswith('{"event":"Subscribed"'), f"setup: {c.label} subscribed", raw)
    return c


async def until_users(c, users, timeout):
    """Read Presence events until one lists users; (seconds, last payload)."""
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        try:
            raw = await asyncio.wait_for(c.ws.recv(), timeout - (time.monotonic() - t0))
        except asyncio.TimeoutError:
            break
        last = json.loads(raw)
        if last.get("event") == "Presence" and last["payload"]["users"] == users:
            return time.monotonic() - t0, last["payload"]
    return None, last


@T.test(timeout=90)
async def once_per_user_across_nodes():
    for d in NODES:
        T.check(await wait_broker(d.port, "up", 30) is not None, f"{d.name} connects")
    await asyncio.sleep(1.5)         # every node has heard every hello
    alice = await member(NODES[0], "demo-alice", "r1", watch=True)
    await alice.expect(presence("r1", ["1"], ["1"], []), "alice watches r1 on node 0")
    t0 = time.monotonic()
    bob1 = await member(NODES[1], "demo-bob", "r1")
    await alice.expect(presence("r1", ["1", "2"], ["2"], []),
                       "bob subscribes on node 1: alice, on node 0, sees him join")
    T.check(time.monotonic() - t0 < 1.5, "within 1.5 s", f"{time.monotonic() - t0:.2f} s")
    bob2 = await member(NODES[2], "demo-bob", "r1")
    alice_n1 = await member(NODES[1], "demo-alice", "r1")
    await alice.expect_nothing("bob on node 2 too, alice on node 1 too: nobody new",
                               4 * INTERVAL + 0.5)
    await bob1.close()
    await alice.expect_nothing("bob closes his node-1 socket: he is still on node 2",
                               4 * INTERVAL + 0.5)
    await bob2.close()
    await alice.expect(presence("r1", ["1"], [], ["2"]), "and his node-2 one: bob left")
    carol = await member(NODES[2], "demo-carol", "r1", watch=True)
    await carol.expect(presence("r1", ["1", "3"], ["3"], []),
                       "carol watches on node 2: alice (nodes 0 and 1) and herself")
    await alice.expect(presence("r1", ["1", "3"], ["3"], []), "alice sees carol join")
    await alice_n1.close()
    await alice.expect_nothing("alice's node-1 socket goes; she is still on node 0",
                               4 * INTERVAL + 0.5)
    await alice.close()
    await carol.close()


@T.test(timeout=90)
async def a_late_node_and_a_dead_node():
    alice = await member(NODES[0], "demo-alice", "r2", watch=True)
    await alice.expect(presence("r2", ["1"], ["1"], []), "alice watches r2 on node 0")
    carol = await member(NODES[2], "demo-carol", "r2")
    await alice.expect(presence("r2", ["1", "3"], ["3"], []), "carol, on node 2, joins")
    late = Daemon(CONF, name="myxid-late")
    T.check(await wait_broker(late.port, "up", 30) is not None, "a fourth node starts")
    bob = await member(late, "demo-bob", "r2", watch=True)
    took, last = await until_users(bob, ["1", "2", "3"], 6)
    T.check(took is not None, "bob, watching on the new node, learns within 6 s that alice "
            "and carol (older nodes) are here", last)
    await alice.expect(presence("r2", ["1", "2", "3"], ["2"], []),
                       "and the older nodes see bob join from the new one")

    NODES[2].kill()                  # SIGKILL: carol's node
    T.daemons.remove(NODES[2])
    t0 = time.monotonic()
    took, last = await until_users(alice, ["1", "2"], 10)
    T.check(took is not None and last["left"] == ["3"],
            "node 2 SIGKILLed: carol leaves, for the watchers of node 0", last)
    T.check(took is not None and time.monotonic() - t0 < 7,
            "within 7 s (hellos every 1 s, a node counts for 3.5 s)", f"{took}")
    took, last = await until_users(bob, ["1", "2"], 5)
    T.check(took is not None, "... and of the new node", last)
    await alice.close()
    await bob.close()
    try:
        await carol.close()          # its node is gone
    except Exception:
        pass


@T.test(timeout=30)
async def malformed_presence_messages():
    with Publisher(R.url) as p:
        p.publish_raw("myxid.control", "", json.dumps({"presence": 5}).encode(), declare="fanout")
        p.publish_raw("myxid.control", "", json.dumps(
            {"presence": "someone", "changes": [["room", "r3", "not a list", []], 7]}).encode(),
            declare="fanout")
    await asyncio.sleep(1.0)
    for d in NODES[:2]:
        log = d.read_log()
        T.check("a malformed presence message dropped" in log,
                f"{d.name} logs a presence message without a node name", log[-600:])
        T.check("2 malformed change(s) from node someone ignored" in log,
                f"{d.name} logs the malformed changes", log[-600:])
    alice = await member(NODES[0], "demo-alice", "r3", watch=True)
    await alice.expect(presence("r3", ["1"], ["1"], []), "presence still works afterwards")
    await alice.close()


if __name__ == "__main__":
    T.run()
