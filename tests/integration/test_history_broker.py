#!/usr/bin/python3
"""
History in broker mode, on a real RabbitMQ stream that two myxid nodes
mirror: numbered log lines, and every client checks it saw lines 1..N
exactly once, in order.

- the stream exists (x-queue-type stream) and both nodes give the same
  epoch; a late joiner on node B gets the last lines published through
  node A's POST /publish;
- the node holding a client is SIGKILLed mid-stream (lines keep coming
  through the other node): the client resumes on the other node,
  recovered, with every line once;
- RabbitMQ is restarted: a client that stayed connected misses nothing and
  sees nothing twice (the mirror resumes at its position), and one that
  was away resumes after it;
- a resume older than the mirror keeps is recovered:false;
- 1,000 clients resume at once on a node restarted under them (a
  reconnect storm): each complete; the time to catch up and RabbitMQ's
  CPU meanwhile are printed;
- myxid-push finds the stream by itself (its events are positioned),
  -H off publishes as Myxi does, -H on without a stream fails clearly;
- a Myxi.push_event-style publish (to the exchange itself) still reaches
  subscribers live, without a position; a publish to the stream through
  the default exchange with the myxid-routing-key header (what a Ruby app
  does to get history) is positioned;
- the stream is deleted under a node, which makes it again: live delivery
  goes on, positions keep growing, and a resume in the old epoch is
  recovered:false instead of being served from the new stream.
"""
import asyncio
import json
import os
import sys
import threading
import time

sys.dont_write_bytecode = True   # keep the source tree clean

import subprocess

from myxidtest import MYXID_BIN, SRCDIR, Client, Daemon, compact, free_port, publish
from rabbitmq import (Publisher, broker_config, broker_suite, start_node, wait_broker)

T = broker_suite()
MYXID_PUSH = os.environ.get("MYXID_PUSH") or os.path.normpath(
    os.path.join(os.path.dirname(MYXID_BIN), "..", "clients", "myxid-push"))
R = start_node()

HISTORY_EXCHANGES = """\
exchange log {
    history {
        events 1000
        age 1h
    }
    policy static {
        allow public
    }
}
exchange short {
    history {
        events 20
    }
    policy static {
        allow public
    }
}
"""
CONF = broker_config(R.url, exchanges=HISTORY_EXCHANGES)
A = Daemon(CONF, name="node-a")
B = Daemon(CONF, name="node-b")


def pub(node, key, n, exchange="log"):
    """POST /publish through node; retried while its broker link is down."""
    for _ in range(200):
        r = publish(node.port, exchange, key, "Line", {"n": n})
        if r.status == 202:
            return
        time.sleep(0.05)
    raise AssertionError(f"publish {n} via {node.name}: {r.status} {r.body!r}")


class Lines(threading.Thread):
    """Lines first..last of key through node, at rate per second."""

    def __init__(self, node, key, first, last, rate):
        super().__init__(daemon=True)
        self.args = (node, key, first, last, rate)
        self.error = None

    def run(self):
        node, key, first, last, rate = self.args
        try:
            t0 = time.monotonic()
            for n in range(first, last + 1):
                pub(node, key, n)
                delay = t0 + (n - first + 1) / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        except Exception as exc:
            self.error = exc


class Reader:
    def __init__(self, key, label):
        self.key, self.label = key, label
        self.lines, self.position, self.epoch, self.c = [], 0, None, None

    async def subscribe(self, node, extra=None):
        self.c = await Client(node.port, label=self.label).connect()
        payload = {"exchange": "log", "routing_key": self.key}
        payload.update(extra or {})
        await self.c.send("Subscribe", payload, "s")
        reply = await self.c.recv_json(10)
        p = reply.get("payload", {})
        self.epoch = p.get("epoch", self.epoch)
        if not extra and "offset" in p:
            self.position = p["offset"]
        return reply

    async def resume(self, node):
        return await self.subscribe(node, {"since": {"offset": self.position,
                                                     "epoch": self.epoch}})

    async def read_until(self, last, timeout=30.0):
        deadline = time.monotonic() + timeout
        while not self.lines or self.lines[-1] < last:
            ev = await self.c.recv_json(max(0.1, deadline - time.monotonic()))
            if ev.get("event") != "Line":
                T.check(False, f"{self.label}: only lines arrive", repr(ev))
                return False
            self.lines.append(ev["payload"]["n"])
            self.position = ev["mq"]["o"]
        return True


async def wait_mirrored(node, exchange, key, last, timeout=20):
    """Until node's mirror has line `last` of exchange/key (it was published
    through the other node, so it reaches this one a moment later)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with Client(node.port) as c:
            await c.send("Subscribe", {"exchange": exchange, "routing_key": key,
                                       "history": 1}, "w")
            got = await c.recv_json(10)
            if got["payload"].get("offset", 0) > 0:
                ev = await c.recv_json(10)
                if ev["payload"]["n"] == last:
                    return True
        await asyncio.sleep(0.1)
    return False


async def saw_all(reader, last, who):
    """reader gets lines up to last, then nothing more, and has seen
    1..last exactly once, in order."""
    T.check(await reader.read_until(last), f"{who} gets lines up to {last}")
    await reader.c.expect_nothing(f"{who}: nothing more (no line repeated)", 1.0)
    T.check(once_in_order(reader.lines, 1, last), f"{who} saw 1..{last} exactly once, in order",
            where_wrong(reader.lines, 1))


def once_in_order(lines, first, last):
    return lines == list(range(first, last + 1))


def where_wrong(lines, first):
    i = next((i for i, n in enumerate(lines) if n != first + i), None)
    return f"{len(lines)} lines; first wrong at {i}: {lines[max(0, (i or 0) - 3):(i or 0) + 3]}"


@T.test(timeout=90)
async def stream_epoch_and_late_joiner():
    for d in (A, B):
        T.check(await wait_broker(d.port, "up", 30) is not None, f"{d.name} is up")
    queues = R.list_queues()
    T.check("myxid.history.log" in json.dumps(queues), "the stream myxid.history.log exists",
            queues)
    for n in range(1, 11):
        pub(A, "late", n)
    T.check(await wait_mirrored(B, "log", "late", 10), "node B's mirror has the 10 lines")
    async with Client(B.port) as c:
        await c.send("Subscribe", {"exchange": "log", "routing_key": "late", "history": 3}, "s")
        got = await c.recv_json(10)
        epoch = got["payload"].get("epoch", "")
        T.check(epoch.startswith("s") and epoch.endswith("-1") and len(epoch) == 19,
                "node B: a stream epoch (s<16 hex>-1)", got)
        lines = [await c.recv_json(10) for _ in range(3)]
        T.eq([ev["payload"]["n"] for ev in lines], [8, 9, 10],
             "a late joiner on node B gets the last 3 lines published through node A")
        T.eq(lines[-1]["mq"]["o"], got["payload"]["offset"],
             "the newest line's position is the reply's offset")
        T.eq(sorted(lines[-1]["mq"]), ["e", "o", "rk"], "lines carry e, rk and o")
    async with Client(A.port) as c:
        await c.send("Subscribe", {"exchange": "log", "routing_key": "late"}, "s")
        got = await c.recv_json(10)
        T.eq(got["payload"].get("epoch"), epoch, "node A gives the same epoch")


@T.test(timeout=120)
async def sigkill_the_clients_node_and_resume_on_the_other():
    r = Reader("kill", "kill")
    await r.subscribe(A)
    feed = Lines(B, "kill", 1, 200, 50)
    feed.start()
    T.check(await r.read_until(50), "lines up to 50 on node A")
    A.kill()
    await asyncio.sleep(0.5)
    reply = await r.resume(B)
    T.eq((reply["event"], reply["payload"].get("recovered")), ("Subscribed", True),
         "resumed on node B: recovered")
    T.check(await r.read_until(200, 40), "every line arrives")
    await asyncio.get_running_loop().run_in_executor(None, feed.join, 30)
    T.check(feed.error is None, "the publisher never failed", feed.error)
    T.check(once_in_order(r.lines, 1, 200), "lines 1..200 exactly once, in order across the kill",
            where_wrong(r.lines, 1))
    await r.c.close()
    A.start()
    T.check(await wait_broker(A.port, "up", 30) is not None, "node A restarted")


@T.test(timeout=240)
async def rabbitmq_restart_loses_and_repeats_nothing():
    stay = Reader("restart", "stays")
    away = Reader("restart", "away")
    await stay.subscribe(A)
    await away.subscribe(B)
    for n in range(1, 31):
        pub(B, "restart", n)
    T.check(await stay.read_until(30) and await away.read_until(30), "30 lines before")
    await away.c.close()
    R.stop()
    R.start()
    for d in (A, B):
        T.check(await wait_broker(d.port, "up", 60) is not None,
                f"{d.name} reconnected after the RabbitMQ restart")
    for n in range(31, 61):
        pub(A, "restart", n)
    await saw_all(stay, 60, "the client that stayed")
    reply = await away.resume(B)
    T.eq(reply["payload"].get("recovered"), True, "the client away during it resumes, recovered")
    T.check(await away.read_until(60), "and gets lines 31..60")
    T.check(once_in_order(away.lines, 1, 60), "it too saw 1..60 exactly once",
            where_wrong(away.lines, 1))
    await stay.c.close()
    await away.c.close()


@T.test(timeout=60)
async def older_than_kept_is_not_recovered():
    for n in range(1, 51):
        pub(A, "k", n, exchange="short")
    T.check(await wait_mirrored(B, "short", "k", 50), "node B's mirror has the 50 lines")
    async with Client(B.port) as c:
        await c.send("Subscribe", {"exchange": "short", "routing_key": "k", "history": 20}, "s")
        got = await c.recv_json(10)
        lines = [await c.recv_json(10) for _ in range(20)]
    T.eq([ev["payload"]["n"] for ev in lines], list(range(31, 51)),
         "node B keeps the last 20 of the 50 lines")
    first = lines[0]["mq"]["o"]
    async with Client(B.port) as c:
        await c.send("Subscribe", {"exchange": "short", "routing_key": "k",
                                   "since": {"offset": first - 5, "epoch": got["payload"]["epoch"]}},
                     "s")
        got = await c.recv_json(10)
        T.eq(got["payload"].get("recovered"), False,
             "a resume older than the 20 kept: recovered false")
        await c.expect_nothing("nothing replayed", 0.5)


@T.test(timeout=60)
async def myxi_publishers_stay_live_and_stream_publishers_get_history():
    async with Client(A.port) as c:
        await c.send("Subscribe", {"exchange": "log", "routing_key": "ruby"}, "s")
        await c.recv_json(10)
        with Publisher(R.url) as p:
            p.publish("log", "ruby", "Line", {"n": 1})    # Myxi.push_event: the exchange
            await c.expect({"event": "Line", "payload": {"n": 1},
                            "mq": {"e": "log", "rk": "ruby"}},
                           "a Myxi.push_event publish arrives live, without a position")
            import pika
            props = pika.BasicProperties(headers={"myxid-routing-key": "ruby"},
                                         timestamp=int(time.time()))
            p.publish_raw("", "myxid.history.log", compact({"event": "Line",
                                                             "payload": {"n": 2}}),
                          declare=None, properties=props)
            ev = await c.recv_json(10)
            T.eq((ev["payload"], sorted(ev["mq"])), ({"n": 2}, ["e", "o", "rk"]),
                 "a publish to the stream (default exchange, myxid-routing-key) is positioned")
            p.publish_raw("", "myxid.history.log", compact({"event": "Line"}),
                          declare=None)
            await c.expect_nothing("one without the header is dropped (and logged)", 0.5)
    T.check("without a valid myxid-routing-key header" in A.read_log(),
            "the drop is logged")


def beam_cpu_seconds(node):
    """CPU time RabbitMQ's Erlang VM has used so far (utime + stime)."""
    with open(f"/proc/{node.read_pid()}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@T.test(timeout=240)
async def a_thousand_clients_resume_after_a_node_restart():
    keys = [f"storm{k}" for k in range(10)]
    readers = [Reader(keys[i % 10], f"storm-{i}") for i in range(1000)]
    for chunk in range(0, 1000, 100):
        await asyncio.gather(*(r.subscribe(A) for r in readers[chunk:chunk + 100]))
    feeds = [Lines(B, k, 1, 80, 20) for k in keys]
    for f in feeds:
        f.start()
    ok = await asyncio.gather(*(r.read_until(20, 60) for r in readers))
    T.check(all(ok), "1,000 clients on node A read 20 lines")
    A.stop()                     # SIGTERM: sockets are drained with 1001
    for r in readers:
        r.c.ws.transport.abort()  # unread lines may hold the close frame back
    A.start()
    cpu0, t0 = beam_cpu_seconds(R), time.monotonic()
    replies = []
    for chunk in range(0, 1000, 250):
        replies += await asyncio.gather(*(r.resume(A) for r in readers[chunk:chunk + 250]))
    T.eq(sum(1 for x in replies if x["payload"].get("recovered") is True), 1000,
         "all 1,000 resumes on the restarted node are recovered")
    ok = await asyncio.gather(*(r.read_until(80, 60) for r in readers))
    took, cpu = time.monotonic() - t0, beam_cpu_seconds(R) - cpu0
    bad = [r.label for r in readers if not once_in_order(r.lines, 1, 80)]
    T.check(all(ok) and not bad, "every client has lines 1..80 exactly once, in order",
            f"{len(bad)} incomplete: {bad[:5]}")
    print(f"# storm: 1,000 clients resumed on a restarted node and caught up in {took:.2f}s;"
          f" RabbitMQ used {cpu:.2f}s of CPU meanwhile")
    for f in feeds:
        f.join(30)
    for r in readers:
        r.c.ws.transport.abort()


def push(*args):
    return subprocess.run([MYXID_PUSH, "-u", R.url] + list(args), capture_output=True,
                          timeout=30, stdin=subprocess.DEVNULL)


@T.test(timeout=60)
async def myxid_push_finds_the_stream():
    async with Client(B.port) as c:
        await c.send("Subscribe", {"exchange": "log", "routing_key": "push"}, "s")
        await c.recv_json(10)
        p = push("-v", "log", "push", "Line", '{"n":1}')
        T.check(p.returncode == 0, "myxid-push exits 0", p.stderr)
        T.check(b"to the history stream myxid.history.log" in p.stdout,
                "it found the exchange's stream by itself", p.stdout)
        ev = await c.recv_json(10)
        T.eq((ev["payload"], sorted(ev["mq"])), ({"n": 1}, ["e", "o", "rk"]),
             "its event is positioned")
        p = push("-H", "off", "log", "push", "Line", '{"n":2}')
        T.check(p.returncode == 0, "myxid-push -H off exits 0", p.stderr)
        await c.expect({"event": "Line", "payload": {"n": 2},
                        "mq": {"e": "log", "rk": "push"}},
                       "-H off publishes to the exchange as Myxi does: live, no position")
    p = push("-H", "on", "deployment", "d1", "Line")
    T.check(p.returncode == 1 and b"no history stream myxid.history.deployment" in p.stderr,
            "-H on for an exchange without history fails with a clear message", p.stderr)


@T.test(timeout=90)
async def the_demo_config_in_broker_mode_survives_a_restart():
    """scripts/demo.sh --broker: etc/myxid.conf with RABBITMQ_URL. A page
    that asked for the last 50 lines resumes after myxid restarts and
    loses nothing."""
    port = free_port()
    d = Daemon(start=False, env={"MYXI_PORT": str(port), "RABBITMQ_URL": R.url},
               name="demo-broker")
    d.conf_path = os.path.join(SRCDIR, "etc", "myxid.conf")
    d.start(wait_port=port)
    d.port = port
    T.check(await wait_broker(port, "up", 30) is not None, "the demo config runs in broker mode")

    def demo_pub(n):
        r = publish(port, "deployment", "d1", "LogLine", {"line": f"line {n}"},
                    key="demo-publish-key")
        assert r.status == 202, r.status

    for n in range(1, 6):
        demo_pub(n)
    c = await Client(port).connect()
    await c.send("Authenticate", {"session_id": "demo-alice"}, "a")
    await c.recv_json(10)
    await c.send("Subscribe", {"exchange": "deployment", "routing_key": "d1", "history": 50}, "s")
    sub = (await c.recv_json(10))["payload"]
    got = [await c.recv_json(10) for _ in range(5)]
    T.eq([g["payload"]["line"] for g in got], [f"line {n}" for n in range(1, 6)],
         "the page gets the last lines first")
    d.stop()
    await c.close()
    d.start(wait_port=port)
    for n in range(6, 9):
        demo_pub(n)
    c = await Client(port).connect()
    await c.send("Authenticate", {"session_id": "demo-alice"}, "a")
    await c.recv_json(10)
    await c.send("Subscribe", {"exchange": "deployment", "routing_key": "d1", "since": {
        "offset": got[-1]["mq"]["o"], "epoch": sub["epoch"]}}, "s")
    reply = (await c.recv_json(10))["payload"]
    got = [await c.recv_json(10) for _ in range(3)]
    T.eq((reply.get("recovered"), [g["payload"]["line"] for g in got]),
         (True, ["line 6", "line 7", "line 8"]),
         "after a restart of myxid the page resumes: recovered, nothing lost")
    await c.close()
    d.stop()


async def wait_log(node, text, count, timeout=30.0):
    """Until node's log holds text count times."""
    deadline = time.monotonic() + timeout
    while node.read_log().count(text) < count:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


@T.test(timeout=120)
async def a_remade_stream_keeps_live_delivery_and_refuses_old_resumes():
    # Last: node A's mirror of "log" takes an epoch of its own here. Node B
    # is stopped: RabbitMQ 3.10 does not cancel a deleted stream's
    # consumers, so only a node that finds it gone (404) remakes it, and a
    # node whose stream another node remade first would not notice.
    mirroring = "mirroring stream myxid.history.log"
    restarted = "this node's history of log goes on under epoch"
    B.stop()
    r = Reader("remade", "remade")
    await r.subscribe(A)
    for n in range(1, 11):
        pub(A, "remade", n)
    T.check(await r.read_until(10), "lines 1..10 before the stream is deleted")
    old_epoch, old_position = r.epoch, r.position
    before = A.read_log().count(mirroring)
    R.ctl("delete_queue", "myxid.history.log")
    # Until node A has made the stream again, publishes to it go nowhere.
    T.check(await wait_log(A, "history stream myxid.history.log is gone", 1),
            "node A finds the stream gone and says so")
    T.check(await wait_log(A, mirroring, before + 1), "node A consumes the stream made again")
    for n in range(11, 21):
        pub(A, "remade", n)
    T.check(await wait_log(A, restarted, 1),
            "node A sees the stream is not the one it mirrored, and says so")
    for n in range(21, 31):
        pub(A, "remade", n)
    await saw_all(r, 30, "live delivery goes on: the subscriber")
    T.check(r.position > old_position, "positions keep growing",
            (old_position, r.position))
    old = Reader("remade", "old")
    old.epoch, old.position = old_epoch, old_position - 5
    reply = await old.resume(A)
    T.eq(reply["payload"].get("recovered"), False,
         "a resume in the old stream's epoch is refused, not served from the new one")
    await old.c.expect_nothing("nothing replayed", 0.5)
    fresh = Reader("remade", "fresh")
    await fresh.subscribe(A)
    T.check(fresh.epoch != old_epoch and fresh.epoch.startswith(old_epoch + "."),
            "node A's mirror has an epoch of its own", (old_epoch, fresh.epoch))
    await fresh.c.close()
    reply = await fresh.resume(A)
    T.eq(reply["payload"].get("recovered"), True, "a resume in the new epoch is recovered")
    pub(A, "remade", 31)
    T.check(await fresh.read_until(31) and fresh.lines == [31], "then live", fresh.lines)
    for c in (r.c, old.c, fresh.c):
        await c.close()
    B.start()

if __name__ == "__main__":
    T.run()
