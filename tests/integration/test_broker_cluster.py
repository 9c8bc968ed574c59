#!/usr/bin/python3
"""
Past one broker: a two-node RabbitMQ cluster on loopback (B joined to A
with rabbitmqctl join_cluster), myxid configured with both URLs, A first.
It connects to A; when A is SIGKILLed it fails over to B, declares its
queue and every binding there and keeps delivering; with A back in the
cluster and B stopped cleanly, it fails over to A again.
"""
import asyncio
import sys
import time

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import Client, Daemon, Suite, delivered
from rabbitmq import (Publisher, await_until, broker_config, broker_suite, in_thread,
                      start_cluster, subscribe_ok, wait_bindings, wait_broker)

T = broker_suite()
A, B = start_cluster()
D = Daemon(broker_config([A.url, B.url]), name="myxid")
PORT = D.port
WANT = {("public", "cl"), ("deployment", "d1"), ("topics", "news.#")}


def connected_to(node):
    """The daemon's connection terminates on node (its name ends with the
    node's AMQP port); asked of the node itself."""
    try:
        conns = node.myxid_connections()
    except Exception:
        return False
    return any(c["name"].endswith(f":{node.port}") for c in conns)


async def failover(dead, to, what):
    t0 = time.monotonic()
    ok = await await_until(lambda: connected_to(to), 30, 0.1)
    took = time.monotonic() - t0
    T.check(ok, f"{what}: myxid connects to the next node", D.read_log()[-3000:])
    if ok:
        print(f"# {what}: connected to {to.nodename} {took:.1f}s later")
    T.check(await wait_broker(PORT, "up", 15) is not None, f"{what}: /healthz broker up")
    qs = await in_thread(to.myxid_queues)
    T.check(len(qs) == 1 and next(iter(qs.values()))["consumers"] == 1,
            f"{what}: its queue is declared on {to.nodename} and consumed", repr(qs))
    T.check(await wait_bindings(to, WANT), f"{what}: every binding is restored",
            repr(await in_thread(to.myxid_bindings)))


async def deliver_all(node, clients, tag):
    c1, c2, c3 = clients
    with Publisher(node.url) as p:
        p.publish("public", "cl", "E", {"via": tag})
        p.publish("deployment", "d1", "E", {"via": tag})
        p.publish("topics", "news.a.b", "E", {"via": tag}, declare="topic")
    await c1.expect(delivered("E", {"via": tag}, "public", "cl"),
                    f"published to {tag}: public/cl delivered")
    await c2.expect(delivered("E", {"via": tag}, "deployment", "d1"),
                    f"published to {tag}: deployment/d1 delivered")
    await c3.expect(delivered("E", {"via": tag}, "topics", "news.a.b"),
                    f"published to {tag}: news.a.b delivered through news.#")
    for c in clients:
        await c.expect_nothing(f"published to {tag}: once ({c.label})", 0.1)


@T.test(timeout=240)
async def cluster_failover():
    T.eq(await in_thread(A.running_nodes), sorted([A.nodename, B.nodename]),
         "setup: A and B run as one cluster")
    T.check(await wait_broker(PORT, "up", 30) is not None, "myxid connects",
            D.read_log()[-2000:])
    T.check(await in_thread(connected_to, A), "to the first URL (node A)")
    async with Client(PORT, label="c1") as c1, Client(PORT, label="c2") as c2, \
            Client(PORT, label="c3") as c3:
        clients = (c1, c2, c3)
        await subscribe_ok(c1, "public", "cl")
        await c2.authenticate("demo-alice")
        await subscribe_ok(c2, "deployment", "d1")
        await subscribe_ok(c3, "topics", "news.#")
        T.check(await wait_bindings(A, WANT), "setup: bound on A")
        await deliver_all(A, clients, "A")
        await deliver_all(B, clients, "B (the cluster routes to A's queue)")

        await in_thread(A.kill)
        await failover(A, B, "A killed")
        for c in clients:
            await c.ping_roundtrip(f"{c.label}'s WebSocket stays open")
        await deliver_all(B, clients, "B after the failover")

        await in_thread(A.start)
        T.check(await await_until(lambda: A.running_nodes() == sorted([A.nodename, B.nodename]),
                                  60, 0.5),
                "setup: A is back in the cluster")
        T.check(await in_thread(connected_to, B), "myxid stays on B while it runs")
        await in_thread(B.stop)
        print(f"# {B.nodename} stopped (rabbitmqctl stop)")
        await failover(B, A, "B stopped")
        for c in clients:
            await c.ping_roundtrip(f"{c.label}'s WebSocket stays open (2)")
        await deliver_all(A, clients, "A after the second failover")


T.run()
