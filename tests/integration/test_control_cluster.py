#!/usr/bin/python3
"""
The control API across three nodes on one real RabbitMQ: every node knows
the others (their hellos on the control exchange); a command given to one
node reaches all three and the answer adds their counts and says how many
answered; a user with sockets on all three is disconnected everywhere
within 1 s of one call; an application with only RabbitMQ (pika, as Bunny
would) disconnects a user with a documented message on the control
exchange (from Ruby with Bunny); a node SIGKILLed drops out of the counts within a bounded time,
and meanwhile answers say that only two of three answered.
"""
import asyncio
import json
import subprocess
import sys
import time

sys.dont_write_bytecode = True   # keep the source tree clean

import websockets

from myxidtest import Client, Daemon, http_request
from rabbitmq import (RUBY, Publisher, await_until, broker_config, broker_suite, in_thread,
                      start_node, subscribe_ok, wait_broker)

T = broker_suite(bunny=True)

# What a Ruby application does beside Myxi.push_event (ruby-bunny).
BUNNY_CONTROL = """
require "bunny"; require "json"
b = Bunny.new(ARGV[0], logger: Logger.new(nil)); b.start
b.create_channel.fanout("myxid.control").publish(
  {command: "disconnect", user_id: "1", code: 4002, reason: "from the app"}.to_json)
b.close
"""
R = start_node()
KEY = "ctl-cluster-5b9e1f"
CONF = broker_config(R.url, queue_expires="2s",
                     extra=f"control_key {KEY}\ncontrol_timeout 2s\nworkers 2")
NODES = [Daemon(CONF, name=f"myxid-{i}") for i in range(3)]


def control(node, command, body=None):
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    r = http_request(node.port, "POST" if body is not None else "GET", f"/control/{command}",
                     headers, json.dumps(body) if body is not None else None, timeout=10)
    return r.status, r.json()


async def acontrol(node, command, body=None):
    return await in_thread(control, node, command, body)


async def sockets(token, per_node, key="d1"):
    out = []
    for d in NODES:
        for i in range(per_node):
            c = Client(d.port, label=f"{token}@{d.name}#{i}")
            await c.connect()
            await c.authenticate(token)
            await subscribe_ok(c, "deployment", key)
            out.append(c)
    return out


async def close_code(c, timeout=3.0):
    try:
        while True:
            await asyncio.wait_for(c.ws.recv(), timeout)
    except websockets.exceptions.ConnectionClosed as exc:
        return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else None
    except asyncio.TimeoutError:
        return "still open"


@T.test(timeout=120)
async def one_call_reaches_every_node():
    for d in NODES:
        T.check(await wait_broker(d.port, "up", 30) is not None, f"{d.name} connects")
    ok = await await_until(lambda: all(control(d, "nodes")[1]["nodes"] == 3 for d in NODES), 5)
    T.check(ok, "within 5 s every node knows the other two", [control(d, "nodes") for d in NODES])
    st, body = await acontrol(NODES[1], "nodes")
    T.eq((st, sorted(n["sockets"] for n in body["node_list"]), body["nodes_answered"]),
         (200, [0, 0, 0], 3), "GET /control/nodes on any node lists all three")

    alice = await sockets("demo-alice", 2)
    bob = (await sockets("demo-carol", 1))[0:1]
    st, body = await acontrol(NODES[2], "subscribers", {"exchange": "deployment", "routing_key": "d1"})
    T.eq((st, body["subscribers"], body["nodes"], body["nodes_answered"]), (200, 9, 3, 3),
         "subscribers of d1, asked of one node: 6 of alice + 3 of carol, from 3 of 3 nodes")
    st, body = await acontrol(NODES[0], "keys", {"exchange": "deployment"})
    T.eq((st, body["keys"]), (200, {"d1": 9}), "keys, summed over the nodes")

    t0 = time.monotonic()
    st, body = await acontrol(NODES[0], "disconnect", {"user_id": "1", "code": 4001,
                                                        "reason": "removed from project"})
    T.eq((st, body["disconnected"], body["nodes"], body["nodes_answered"]), (200, 6, 3, 3),
         "disconnect user 1 on node 0: 6 sockets on 3 nodes")
    codes = await asyncio.gather(*(close_code(c) for c in alice))
    took = time.monotonic() - t0
    T.eq(set(codes), {(4001, "removed from project")}, "every one of her sockets sees 4001")
    T.check(took < 1.0, "all six closed within 1 s of the call", f"{took:.3f} s")
    st, body = await acontrol(NODES[1], "subscribers", {"exchange": "deployment", "routing_key": "d1"})
    T.eq(body["subscribers"], 3, "carol's 3 sockets are left")
    for c in bob:
        await c.close()


@T.test(timeout=90)
async def counts_stay_exact_while_sockets_come_and_go():
    import random
    rng = random.Random(7)
    held = []

    def count():
        st, body = control(NODES[rng.randrange(3)], "subscribers",
                           {"exchange": "deployment", "routing_key": "d2"})
        return st, body["subscribers"], body["nodes_answered"]
    wrong = []
    for step in range(20):
        if held and rng.random() < 0.4:
            for _ in range(rng.randint(1, len(held))):
                await held.pop(rng.randrange(len(held))).close()
        else:
            for _ in range(rng.randint(1, 3)):
                d = NODES[rng.randrange(3)]
                c = Client(d.port, label=f"churn{step}@{d.name}")
                await c.connect()
                await c.authenticate("demo-alice")
                await subscribe_ok(c, "deployment", "d2")
                held.append(c)
        # A close is seen by the node a moment later: wait for it.
        ok = await await_until(lambda: count() == (200, len(held), 3), 3)
        if not ok:
            wrong.append((step, len(held), count()))
    T.eq(wrong, [], "20 rounds of sockets opened and closed on random nodes: the count, asked of "
         "a random node, is exact every time (within 3 s of the change, 3 of 3 answering)")
    for c in held:
        await c.close()


@T.test(timeout=60)
async def an_application_with_only_rabbitmq():
    alice = await sockets("demo-alice", 1)
    p = await in_thread(subprocess.run, [RUBY, "-e", BUNNY_CONTROL, R.url], capture_output=True,
                        timeout=30, stdin=subprocess.DEVNULL)
    T.eq(p.returncode, 0, "Bunny publishes {command: disconnect, user_id: 1} to myxid.control")
    codes = await asyncio.gather(*(close_code(c) for c in alice))
    T.eq(codes, [(4002, "from the app")] * 3,
         "that message on the control exchange disconnects her on every node")
    with Publisher(R.url) as p:
        p.publish_raw("myxid.control", "", "not json", declare="fanout")
    await asyncio.sleep(0.5)
    T.check(all("control exchange: a message dropped" in d.read_log() for d in NODES),
            "a bad control message is logged by each node, and dropped")


@T.test(timeout=90)
async def a_dead_node_drops_out():
    NODES[2].kill()                  # SIGKILL
    T.daemons.remove(NODES[2])
    t0 = time.monotonic()
    st, body = await acontrol(NODES[0], "subscribers", {"exchange": "deployment", "routing_key": "d1"})
    T.check(st == 200 and body["nodes_answered"] <= body["nodes"],
            "right after the kill: an answer, from the nodes that answered by the deadline", body)
    ok = await await_until(lambda: control(NODES[0], "nodes")[1]["nodes"] == 2, 15)
    took = time.monotonic() - t0
    T.check(ok, "the dead node drops out of the node count", control(NODES[0], "nodes"))
    T.check(took < 6.0, "within 6 s (hellos every 1 s, a node counts for 3.5 s)", f"{took:.1f} s")
    st, body = await acontrol(NODES[1], "subscribers", {"exchange": "deployment", "routing_key": "d1"})
    T.eq((st, body["nodes"], body["nodes_answered"]), (200, 2, 2), "then 2 of 2 answer")


if __name__ == "__main__":
    T.run()
