"""
history_load: the history scenarios' own clients (bench/scenarios.py H3,
H4). Raw WebSocket on asyncio streams, no compression offered and no JSON
parsing beyond the one field counted, so that one Python process can take
replays faster than a daemon sends them on this 2-core machine (a
websockets client per socket could not).

  replay(port, ...)  N sockets each Subscribe with "history": H on a key
                     already holding H events: events/s replayed, time until
                     the last socket has its whole replay
  storm(port, ...)   N sockets subscribed while lines are published; all
                     cut at once, all reconnect and resume with "since";
                     each checks lines 1..M once, in order; time until the
                     last has caught up
"""

import asyncio
import base64
import json
import os
import re
import struct
import time

POS_RE = re.compile(rb'"o":(\d+)')
N_RE = re.compile(rb'"n":(\d+)')


class RawWS:
    def __init__(self, reader, writer):
        self.r, self.w = reader, writer

    @classmethod
    async def open(cls, port, token):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"handshake refused: {head[:80]!r}")
        ws = cls(reader, writer)
        await ws.recv()                  # Welcome
        ws.send({"action": "Authenticate", "payload": {"session_id": token}})
        if b'"Authenticated"' not in await ws.recv():
            raise RuntimeError("not authenticated")
        return ws

    def send(self, obj):
        data = json.dumps(obj, separators=(",", ":")).encode()
        mask = os.urandom(4)
        n = len(data)
        head = (struct.pack("!BB", 0x81, 0x80 | n) if n < 126 else
                struct.pack("!BBH", 0x81, 0x80 | 126, n))
        self.w.write(head + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(data)))

    async def recv(self):
        b0, b1 = await self.r.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", await self.r.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", await self.r.readexactly(8))[0]
        return await self.r.readexactly(n)

    def abort(self):
        self.w.transport.abort()


async def _gather_in_chunks(coros, chunk=250):
    out = []
    for i in range(0, len(coros), chunk):
        out += await asyncio.gather(*coros[i:i + chunk])
    return out


async def _replay(port, token, exchange, keys, sockets, history):
    async def one(i):
        ws = await RawWS.open(port, token)
        t0 = time.monotonic()
        ws.send({"action": "Subscribe", "payload": {"exchange": exchange,
                                                    "routing_key": keys[i % len(keys)],
                                                    "history": history}})
        await ws.recv()                  # Subscribed
        got = 0
        while got < history:
            await ws.recv()
            got += 1
        took = time.monotonic() - t0
        ws.abort()
        return got, took
    t0 = time.monotonic()
    results = await _gather_in_chunks([one(i) for i in range(sockets)])
    wall = time.monotonic() - t0
    events = sum(g for g, _ in results)
    per = sorted(t for _, t in results)
    return {"connections": sockets, "ready": sockets, "received": events,
            "lost": sockets * history - events, "deliveries_per_second": events / wall,
            "wall_s": wall,
            "latency_us": {"p50": per[len(per) // 2] * 1e6, "p99": per[int(len(per) * .99)] * 1e6,
                           "p999": per[-1] * 1e6, "max": per[-1] * 1e6}}


def replay(port, token, exchange, keys, sockets, history):
    return asyncio.run(_replay(port, token, exchange, keys, sockets, history))


class _Reader:
    def __init__(self, key):
        self.key, self.lines, self.position, self.epoch, self.ws = key, [], 0, None, None

    async def subscribe(self, port, token, exchange, since=False):
        self.ws = await RawWS.open(port, token)
        payload = {"exchange": exchange, "routing_key": self.key}
        if since:
            payload["since"] = {"offset": self.position, "epoch": self.epoch}
        self.ws.send({"action": "Subscribe", "payload": payload})
        reply = json.loads(await self.ws.recv())["payload"]
        self.epoch = reply.get("epoch", self.epoch)
        if not since:
            self.position = reply.get("offset", 0)
        return reply

    async def read_until(self, last):
        while not self.lines or self.lines[-1] < last:
            data = await self.ws.recv()
            self.lines.append(int(N_RE.search(data).group(1)))
            self.position = int(POS_RE.search(data).group(1))


async def _storm(port, token, exchange, publish, sockets, keys, lines, rate, cut_at):
    readers = [_Reader(f"storm{i % keys}") for i in range(sockets)]
    await _gather_in_chunks([r.subscribe(port, token, exchange) for r in readers])
    loop = asyncio.get_running_loop()

    def feed(first, last, per_second):
        t0 = time.monotonic()
        for n in range(first, last + 1):
            for k in range(keys):
                publish(f"storm{k}", n)
            if per_second:
                delay = t0 + (n - first + 1) / per_second - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
    # Live lines, then every socket cut at once; the rest is published
    # while they are away, so their resumes have it all to replay.
    await loop.run_in_executor(None, feed, 1, cut_at, rate)
    await asyncio.wait_for(asyncio.gather(*(r.read_until(cut_at) for r in readers)), 60)
    for r in readers:
        r.ws.abort()
    await loop.run_in_executor(None, feed, cut_at + 1, lines, 0)
    t0 = time.monotonic()
    replies = await _gather_in_chunks([r.subscribe(port, token, exchange, since=True)
                                       for r in readers])
    await asyncio.wait_for(asyncio.gather(*(r.read_until(lines) for r in readers)), 120)
    caught_up = time.monotonic() - t0
    bad = sum(1 for r in readers if r.lines != list(range(1, lines + 1)))
    for r in readers:
        r.ws.abort()
    return {"connections": sockets, "ready": sockets, "lost": bad,
            "recovered": sum(1 for x in replies if x.get("recovered") is True),
            "caught_up_s": caught_up, "received": sum(len(r.lines) for r in readers),
            "replayed": sockets * (lines - cut_at)}


def storm(port, token, exchange, publish, sockets, keys, lines, rate, cut_at):
    return asyncio.run(_storm(port, token, exchange, publish, sockets, keys, lines, rate,
                              cut_at))
