#!/usr/bin/python3
"""
Several myxid nodes on one real RabbitMQ behave as one service: three
daemons (different ports), one queue each; an event published once reaches
each subscriber on every node exactly once (from a publisher and from
POST /publish on any node); killing one node (SIGKILL) disturbs neither the
others nor their sockets, and its queue goes away after queue_expires.
"""
import asyncio
import sys
import time

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import Client, Daemon, compact, delivered, publish
from rabbitmq import (Publisher, await_until, broker_config, broker_suite, in_thread,
                      receive_all, start_node, subscribe_ok, wait_broker)

T = broker_suite()
R = start_node()
EXPIRES = 2.0
NODES = [Daemon(broker_config(R.url, queue_expires=f"{EXPIRES:.0f}s"), name=f"myxid-{i}")
         for i in range(3)]


def queues_bound_to(exchange, key):
    return {q for x, k, q in R.myxid_bindings() if x == exchange and k == key}


def consumed_queues(n):
    """The names of the myxid queues with a consumer, if there are n."""
    names = {name for name, q in R.myxid_queues().items() if q["consumers"] > 0}
    return names if len(names) == n else None


@T.test(timeout=150)
async def three_nodes_one_broker():
    for d in NODES:
        T.check(await wait_broker(d.port, "up", 30) is not None,
                f"{d.name} connects to the broker", d.read_log()[-2000:])
    queues = await in_thread(R.myxid_queues)
    T.eq(len(queues), 3, "three nodes, three queues (one per node, not per socket)")
    T.check(all(q["arguments"].get("x-expires") == int(EXPIRES * 1000) for q in queues.values()),
            f"each with x-expires {int(EXPIRES * 1000)}", repr(queues))

    clients = [Client(d.port, label=f"on-{d.name}") for d in NODES]
    extra = Client(NODES[0].port, label="second-on-myxid-0")
    for c in clients + [extra]:
        await c.connect()
    try:
        for c in clients + [extra]:
            await subscribe_ok(c, "public", "all")
        T.check(await await_until(lambda: len(queues_bound_to("public", "all")) == 3, 15),
                "public/all is bound once to each node's queue",
                repr(await in_thread(R.myxid_bindings)))

        with Publisher(R.url) as p:
            p.publish("public", "all", "Once", {"n": 0})
            want = delivered("Once", {"n": 0}, "public", "all")
            for c in clients + [extra]:
                await c.expect(want, f"{c.label} receives the event")
            for c in clients + [extra]:
                await c.expect_nothing(f"{c.label}: exactly once", 0.5 if c is extra else 0.1)

            n = 30
            for i in range(n):
                p.publish("public", "all", "Seq", {"i": i})
            want = [compact(delivered("Seq", {"i": i}, "public", "all")) for i in range(n)]
            for c in clients + [extra]:
                got = await receive_all(c, n, 10)
                T.eq(got, want, f"{c.label}: {n} events, each once, in order")
            for c in clients + [extra]:
                await c.expect_nothing(f"{c.label}: no duplicates", 0.1)

        for i, d in enumerate(NODES):
            r = await in_thread(publish, d.port, "public", "all", "Posted", {"via": i})
            T.eq(r.status, 202, f"POST /publish on {d.name} -> 202")
            want = delivered("Posted", {"via": i}, "public", "all")
            for c in clients + [extra]:
                await c.expect(want, f"POST /publish on {d.name} reaches {c.label}")
            for c in clients + [extra]:
                await c.expect_nothing(f"... once ({c.label})", 0.3 if c is clients[-1] else 0.05)

        # Kill -9 one node: the others go on.
        victim, survivors = NODES[0], NODES[1:]
        victim.kill()
        T.daemons.remove(victim)
        t_kill = time.monotonic()
        with Publisher(R.url) as p:
            p.publish("public", "all", "AfterKill", {})
        want = delivered("AfterKill", {}, "public", "all")
        for c in clients[1:]:
            await c.expect(want, f"after one node is killed, {c.label} still receives")
            await c.expect_nothing(f"{c.label}: once", 0.1)
        for c in clients[1:]:
            await c.ping_roundtrip(f"{c.label}'s WebSocket was not disturbed")
        for d in survivors:
            T.check(d.alive(), f"{d.name} still runs")

        # The victim's queue is the one nobody consumes any more.
        consumed = await await_until(lambda: consumed_queues(2), 10, 0.1)
        victim_queue = (set(queues) - set(consumed or ())).pop() if consumed else None
        T.check(victim_queue is not None, "the killed node's queue loses its consumer",
                repr(await in_thread(R.myxid_queues)))
        gone = await await_until(lambda: victim_queue not in R.myxid_queues(), 20, 0.2)
        T.check(gone, f"the killed node's queue goes away after queue_expires ({EXPIRES:.0f}s)",
                repr(await in_thread(R.myxid_queues)))
        if gone:
            print(f"# the killed node's queue went away {time.monotonic() - t_kill:.1f}s "
                  "after the kill")
        left = await in_thread(R.myxid_queues)
        T.eq(len(left), 2, "the two other queues remain")
        with Publisher(R.url) as p:
            p.publish("public", "all", "Later", {})
        for c in clients[1:]:
            await c.expect(delivered("Later", {}, "public", "all"),
                           f"{c.label} still receives later on")
    finally:
        for c in clients[1:]:
            await c.close()


T.run()
