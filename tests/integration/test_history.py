#!/usr/bin/python3
"""
History in the embedded mode (no broker), with Debian's Python websockets:
numbered log lines published over POST /publish, and every client checks
that it saw lines 1..N exactly once, in order, whatever happened to its
connection.

- a late joiner (Subscribe with "history": N) gets the last N lines, then
  live ones, with no gap or duplicate at the seam;
- a client whose TCP connection is cut mid-stream resumes with "since" and
  gets "recovered": true and every line it missed;
- 1,000 clients cut at once resume at once (a reconnect storm), each
  complete (200 under valgrind);
- a resume older than what is kept, from another epoch (a restart of the
  daemon), ahead of the log, on a topic pattern or on an exchange without
  history is answered "recovered": false with nothing replayed;
- hostile "since" and "history" values get an exact Error, and the socket
  goes on working;
- 100,000 keys of history stay under history_memory (20,000 under
  valgrind, still past the cap).
"""
import asyncio
import json
import re
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import (PUBLISH_KEY, WRAPPER, Client, Daemon, Suite, compact, publish,
                       require, scrape)
from hostile import asan_in

require()
T = Suite()

CONF = f"""\
publish_key {PUBLISH_KEY}
workers 2
history_max_replay 1000
auth static {{
    tokens_file tokens
}}
exchange log {{
    history {{
        events 500
        age 1h
    }}
    policy static {{
        allow public
    }}
}}
exchange short {{
    history {{
        events 20
    }}
    policy static {{
        allow public
    }}
}}
exchange topics {{
    type topic
    history {{
        events 100
    }}
    policy static {{
        allow public
    }}
}}
exchange plain {{
    policy static {{
        allow public
    }}
}}
"""

D = Daemon(CONF)
# Under valgrind (scripts/valgrind.sh) the crowds are smaller: the same
# paths, in the time memcheck allows.
STORM = 200 if WRAPPER else 1000
KEYS = 20000 if WRAPPER else 100000
EPOCH_RE = re.compile(r"^[0-9a-f]{16}$")


def pub(exchange, key, n, port=None):
    r = publish(port or D.port, exchange, key, "Line", {"n": n})
    if r.status != 200:
        raise AssertionError(f"publish {n}: {r.status} {r.body!r}")


class Publisher(threading.Thread):
    """Publishes lines 1..count of exchange/key at rate per second."""

    def __init__(self, exchange, key, count, rate):
        super().__init__(daemon=True)
        self.exchange, self.key, self.count, self.rate = exchange, key, count, rate
        self.done = threading.Event()
        self.error = None

    def run(self):
        try:
            t0 = time.monotonic()
            for n in range(1, self.count + 1):
                pub(self.exchange, self.key, n)
                delay = t0 + n / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        except Exception as exc:  # reported by the test
            self.error = exc
        self.done.set()


class Reader:
    """One subscriber's view: the lines it got, its position and epoch."""

    def __init__(self, exchange, key, label):
        self.exchange, self.key, self.label = exchange, key, label
        self.lines = []
        self.position = 0
        self.epoch = None
        self.replies = []
        self.client = None

    async def subscribe(self, extra=None):
        self.client = await Client(D.port, label=self.label).connect()
        payload = {"exchange": self.exchange, "routing_key": self.key}
        payload.update(extra or {})
        await self.client.send("Subscribe", payload, "s")
        reply = await self.client.recv_json()
        self.replies.append(reply)
        p = reply.get("payload", {})
        if reply.get("event") == "Subscribed":
            self.epoch = p.get("epoch")
            if not extra and "offset" in p:
                self.position = p["offset"]    # nothing older is owed
        return reply

    async def resume(self):
        return await self.subscribe({"since": {"offset": self.position, "epoch": self.epoch}})

    async def read_until(self, last, timeout=20.0):
        """Collect lines until line `last` arrived; False on a bad frame."""
        deadline = time.monotonic() + timeout
        while not self.lines or self.lines[-1] < last:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            ev = await self.client.recv_json(left)
            if ev.get("event") != "Line" or ev["mq"]["rk"] != self.key:
                T.check(False, f"{self.label}: only lines arrive", repr(ev))
                return False
            self.lines.append(ev["payload"]["n"])
            self.position = ev["mq"]["o"]
        return True

    def cut(self):
        """Drop the TCP connection without a close handshake."""
        self.client.ws.transport.abort()


def exactly_once(lines, first, last):
    return lines == list(range(first, last + 1))


@T.test
async def late_joiner_gets_the_last_lines_then_live():
    for n in range(1, 11):
        pub("log", "late", n)
    async with Client(D.port) as c:
        await c.send("Subscribe", {"exchange": "log", "routing_key": "late", "history": 3}, "s")
        got = await c.recv_json()
        p = got.get("payload", {})
        T.check(EPOCH_RE.match(str(p.get("epoch"))), "Subscribed carries a 16-hex epoch", got)
        offset = p.get("offset")
        T.eq(got, {"event": "Subscribed", "tag": "s",
                   "payload": {"exchange": "log", "routing_key": "late",
                               "epoch": p.get("epoch"), "offset": offset}},
             "Subscribed: exchange, routing_key, epoch, offset (no recovered without since)")
        raws = [await c.recv() for _ in range(3)]
        T.eq([json.loads(r)["payload"]["n"] for r in raws], [8, 9, 10],
             "the last 3 lines follow, oldest first")
        first = json.loads(raws[0])["mq"]["o"]
        T.eq(raws[0], compact({"event": "Line", "payload": {"n": 8},
                               "mq": {"e": "log", "rk": "late", "o": first}}),
             "a replayed line is the frame as published, with its position")
        T.eq(json.loads(raws[2])["mq"]["o"], offset,
             "the newest replayed line is at the reply's offset")
        pub("log", "late", 11)
        ev = await c.recv_json()
        T.eq((ev["payload"]["n"], ev["mq"]["o"] > offset), (11, True),
             "then the next live line, at a higher position")
        await c.expect_nothing("no duplicate at the seam")
    async with Client(D.port) as c:
        await c.send("Subscribe", {"exchange": "log", "routing_keys": ["late", "nobody"],
                                   "history": 2}, "s")
        got = [await c.recv_json() for _ in range(4)]
        T.eq([(g["event"], g["payload"].get("routing_key", g["payload"].get("n")))
              for g in got],
             [("Subscribed", "late"), ("Line", 10), ("Line", 11), ("Subscribed", "nobody")],
             "routing_keys: each key's Subscribed, then its own lines")


@T.test(timeout=60)
async def a_cut_connection_resumes_without_loss():
    pubr = Publisher("log", "cut", 300, 100)
    r = Reader("log", "cut", "cut")
    await r.subscribe()
    pubr.start()
    T.check(await r.read_until(60), "60 lines before the cut")
    r.cut()
    await asyncio.sleep(0.5)          # lines go on being published meanwhile
    reply = await r.resume()
    T.eq((reply["event"], reply["payload"].get("recovered")), ("Subscribed", True),
         "the resume is recovered")
    T.check(await r.read_until(150), "lines up to 150 after the resume")
    r.cut()
    await asyncio.sleep(0.3)
    reply = await r.resume()
    T.eq(reply["payload"].get("recovered"), True, "a second cut resumes too")
    T.check(await r.read_until(300), "every line arrives")
    await asyncio.get_running_loop().run_in_executor(None, pubr.done.wait, 30)
    T.check(pubr.error is None, "the publisher never failed", pubr.error)
    T.check(exactly_once(r.lines, 1, 300), "lines 1..300 exactly once, in order",
            f"{len(r.lines)} lines; first wrong at "
            f"{next((i for i, n in enumerate(r.lines) if n != i + 1), None)}")
    await r.client.close()


@T.test(timeout=120)
async def a_reconnect_storm_loses_nothing():
    readers = [Reader("log", f"storm{i % 10}", f"storm-{i}") for i in range(STORM)]
    for chunk in range(0, STORM, 100):
        await asyncio.gather(*(r.subscribe() for r in readers[chunk:chunk + 100]))
    pubs = [Publisher("log", f"storm{k}", 60, 30) for k in range(10)]
    for p in pubs:
        p.start()
    ok = await asyncio.gather(*(r.read_until(20, 30) for r in readers))
    T.check(all(ok), f"all {STORM} clients read 20 lines")
    for r in readers:
        r.cut()
    t0 = time.monotonic()
    replies = []
    for chunk in range(0, STORM, 250):
        replies += await asyncio.gather(*(r.resume() for r in readers[chunk:chunk + 250]))
    T.eq(sum(1 for x in replies if x["payload"].get("recovered") is True), STORM,
         f"all {STORM} resumes are recovered")
    ok = await asyncio.gather(*(r.read_until(60, 40) for r in readers))
    took = time.monotonic() - t0
    bad = [r.label for r in readers if not exactly_once(r.lines, 1, 60)]
    T.check(all(ok) and not bad, "every client has lines 1..60 exactly once, in order",
            f"{len(bad)} incomplete: {bad[:5]}")
    print(f"# storm: {STORM} clients resumed and caught up in {took:.2f}s")
    for r in readers:
        await r.client.close()


@T.test
async def resumes_that_history_cannot_cover():
    for n in range(1, 51):
        pub("short", "k", n)
    r = Reader("short", "k", "short")
    reply = await r.subscribe()
    epoch, offset = reply["payload"]["epoch"], reply["payload"]["offset"]
    cases = [
        ("older than the 20 kept", {"offset": offset - 30, "epoch": epoch}, False),
        ("another epoch", {"offset": offset - 5, "epoch": "0123456789abcdef"}, False),
        ("ahead of the log", {"offset": offset + 1000, "epoch": epoch}, False),
        ("within the kept 20", {"offset": offset - 5, "epoch": epoch}, True),
        ("at the log's position", {"offset": offset, "epoch": epoch}, True),
    ]
    for what, since, recovered in cases:
        async with Client(D.port) as c:
            await c.send("Subscribe", {"exchange": "short", "routing_key": "k",
                                       "since": since}, "s")
            got = await c.recv_json()
            T.eq(got, {"event": "Subscribed", "tag": "s",
                       "payload": {"exchange": "short", "routing_key": "k",
                                   "epoch": epoch, "offset": offset, "recovered": recovered}},
                 f"{what}: recovered {str(recovered).lower()}")
            want = 5 if what == "within the kept 20" else 0
            lines = []
            for _ in range(want):
                lines.append((await c.recv_json())["payload"]["n"])
            T.eq(lines, list(range(46, 51))[:want], f"{what}: {want} lines replayed")
            await c.expect_nothing(f"{what}: nothing more")
    await r.client.close()
    async with Client(D.port) as c:
        await c.send("Subscribe", {"exchange": "plain", "routing_key": "k",
                                   "since": {"offset": 1, "epoch": epoch}}, "s")
        await c.expect({"event": "Subscribed", "tag": "s",
                        "payload": {"exchange": "plain", "routing_key": "k",
                                    "recovered": False}},
                       "an exchange without history: recovered false, no epoch or offset")
        await c.send("Subscribe", {"exchange": "topics", "routing_key": "a.*",
                                   "since": {"offset": 0, "epoch": epoch}}, "s2")
        await c.expect({"event": "Subscribed", "tag": "s2",
                        "payload": {"exchange": "topics", "routing_key": "a.*",
                                    "recovered": False}},
                       "a topic pattern: history is per key, so recovered false")


@T.test(timeout=40)
async def a_restarted_daemon_refuses_old_positions():
    pub("log", "restart", 1)
    r = Reader("log", "restart", "restart")
    reply = await r.subscribe({"history": 1})
    line1 = await r.client.recv_json()
    T.eq(line1["payload"], {"n": 1}, "line 1 before the restart")
    old_epoch, old_offset = reply["payload"]["epoch"], line1["mq"]["o"]
    await r.client.close()
    D.stop()
    D.start()
    pub("log", "restart", 2)
    async with Client(D.port) as c:
        await c.send("Subscribe", {"exchange": "log", "routing_key": "restart",
                                   "since": {"offset": old_offset, "epoch": old_epoch}}, "s")
        got = await c.recv_json()
        p = got["payload"]
        T.check(p.get("epoch") != old_epoch and EPOCH_RE.match(p.get("epoch", "")),
                "a restart draws a new epoch", got)
        T.eq((p.get("recovered"), p.get("offset")), (False, 1),
             "a resume from before the restart: recovered false at the new offset")
        await c.expect_nothing("nothing is replayed")
        pub("log", "restart", 3)
        ev = await c.recv_json()
        T.eq((ev["payload"], ev["mq"]["o"]), ({"n": 3}, 2), "live lines go on")


@T.test(timeout=60)
async def concurrent_publishers_arrive_in_position_order():
    """Publishes to one key from four connections at once (spread over the
    daemon's two loops): a subscriber gets each once, in position order.
    (Before the fix the loops' fan-outs could cross, and an event whose
    position was below one already delivered was dropped as a replay's.)"""
    async with Client(D.port) as c:
        await c.send("Subscribe", {"exchange": "log", "routing_key": "conc"}, "s")
        await c.recv_json()

        def worker(base):
            for i in range(100):
                pub("log", "conc", base + i)
        ts = [threading.Thread(target=worker, args=(k * 1000,)) for k in range(4)]
        for t in ts:
            t.start()
        got, positions = [], []
        try:
            while len(got) < 400:
                ev = await c.recv_json(10)
                got.append(ev["payload"]["n"])
                positions.append(ev["mq"]["o"])
        except Exception as exc:
            T.check(False, "400 lines arrive", f"{len(got)} arrived: {exc!r}")
        for t in ts:
            t.join()
        T.eq(sorted(got), sorted(k * 1000 + i for k in range(4) for i in range(100)),
             "each of the 400 lines once")
        T.check(positions == sorted(positions) and len(set(positions)) == len(positions),
                "in strictly growing position order", positions[:20])


HOSTILE = [
    ({"since": "x"}, "InvalidSince"),
    ({"since": []}, "InvalidSince"),
    ({"since": {}}, "InvalidSince"),
    ({"since": {"offset": 1}}, "InvalidSince"),
    ({"since": {"epoch": "e"}}, "InvalidSince"),
    ({"since": {"offset": -1, "epoch": "e"}}, "InvalidSince"),
    ({"since": {"offset": 2 ** 53, "epoch": "e"}}, "InvalidSince"),
    ({"since": {"offset": 10 ** 30, "epoch": "e"}}, "InvalidSince"),
    ({"since": {"offset": 1.5, "epoch": "e"}}, "InvalidSince"),
    ({"since": {"offset": "1", "epoch": "e"}}, "InvalidSince"),
    ({"since": {"offset": True, "epoch": "e"}}, "InvalidSince"),
    ({"since": {"offset": 1, "epoch": 7}}, "InvalidSince"),
    ({"since": {"offset": 1, "epoch": None}}, "InvalidSince"),
    ({"since": {"offset": 1, "epoch": "e" * 65}}, "InvalidSince"),
    ({"since": {"offset": 1, "epoch": "e" * 60000}}, "InvalidSince"),
    ({"since": {"offset": 1, "epoch": "a\u0000b"}}, "InvalidSince"),
    ({"history": -1}, "InvalidHistory"),
    ({"history": 1001}, "InvalidHistory"),
    ({"history": 10 ** 30}, "InvalidHistory"),
    ({"history": "3"}, "InvalidHistory"),
    ({"history": 2.5}, "InvalidHistory"),
    ({"history": [3]}, "InvalidHistory"),
]


@T.test(timeout=40)
async def hostile_since_and_history_get_an_error():
    async with Client(D.port, max_size=2 ** 20) as c:
        for extra, code in HOSTILE:
            payload = {"exchange": "log", "routing_key": "h"}
            payload.update(extra)
            await c.send("Subscribe", payload, "t")
            await c.expect({"event": "Error", "tag": "t",
                            "payload": {"error": code, "exchange": "log"}},
                           f"{json.dumps(extra)[:60]} -> {code}")
        await c.send("Subscribe", {"exchange": "log", "routing_key": "h", "since": None,
                                   "history": 0}, "ok")
        got = await c.recv_json()
        T.eq((got["event"], "recovered" in got["payload"]), ("Subscribed", False),
             "since null and history 0 are a plain Subscribe")
        await c.ping_roundtrip("the socket still works")
    T.check(D.alive(), "the daemon is alive")


def publish_many(port, docs, threads=8):
    """POST /publish every doc (one connection each: the API answers with
    Connection: close), from a few threads at once."""
    def worker(part):
        for d in part:
            body = compact(d).encode()
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall((f"POST /publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                       f"{PUBLISH_KEY}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
                      + body)
            head = s.recv(64)
            s.close()
            if not head.startswith(b"HTTP/1.1 200"):
                raise AssertionError(head)
    errors = []

    def run(part):
        try:
            worker(part)
        except Exception as exc:
            errors.append(exc)
    ts = [threading.Thread(target=run, args=(docs[i::threads],)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


@T.test(timeout=120)
async def many_keys_stay_under_the_cap():
    cap = (2 if WRAPPER else 8) * 1024 * 1024
    d = Daemon(f"publish_key {PUBLISH_KEY}\nworkers 1\nhistory_memory {cap // 1024}k\n"
               "log_level warning\n"
               "exchange many {\n history {\n  events 2\n }\n policy static {\n"
               "  allow public\n }\n}\n", name="many")
    rss0 = rss_kib(d.proc.pid)
    docs = [{"exchange": "many", "routing_key": f"key-{i}", "event": "Line",
             "payload": {"n": i, "text": "x" * 100}} for i in range(KEYS)]
    loop = asyncio.get_running_loop()
    t0 = time.monotonic()
    await loop.run_in_executor(None, publish_many, d.port, docs)
    print(f"# {KEYS} publishes took {time.monotonic() - t0:.1f}s")
    await asyncio.sleep(1.5)          # the sweep updates the gauge each second
    _, m = scrape(d.port)
    held = m.get("myxid_history_bytes", -1)
    T.check(0 < held <= cap, f"myxid_history_bytes is under history_memory ({cap >> 20} MiB)",
            f"{held:.0f} bytes")
    grown = rss_kib(d.proc.pid) - rss0
    # Memory a tool keeps is not the daemon's: memcheck's, or the
    # AddressSanitizer's quarantine of freed blocks (256 MiB).
    if not WRAPPER and not asan_in(d.proc.pid):
        T.check(grown < 3 * cap // 1024, "the daemon grew by less than 3x the cap",
                f"{grown} KiB")
    print(f"# {KEYS} keys: history holds {held / 1048576:.2f} MiB, RSS grew {grown} KiB")
    async with Client(d.port) as c:
        await c.send("Subscribe", {"exchange": "many", "routing_key": f"key-{KEYS - 1}",
                                   "history": 5}, "s")
        got = await c.recv_json()
        ev = await c.recv_json()
        T.eq((got["event"], ev["payload"]["n"]), ("Subscribed", KEYS - 1),
             "the newest key's line is kept")
        await c.send("Subscribe", {"exchange": "many", "routing_key": "key-0",
                                   "since": {"offset": 0, "epoch": got["payload"]["epoch"]}},
                     "s0")
        got = await c.recv_json()
        T.eq(got["payload"].get("recovered"), False,
             "the oldest key's line went to make room: recovered false")
    d.stop()


if __name__ == "__main__":
    T.run()
