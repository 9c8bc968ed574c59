#!/usr/bin/python3
"""
Logging never blocks the event loops. A syslog socket that is never read
(a unix socket queues 10 datagrams, then a blocking sender waits) and a
stderr pipe that is never drained (64 KiB, then write() waits), each while
1,000 clients connect, authenticate, subscribe and receive events: every
client is served and its pings answered, the lines that could not be
written are counted in myxid_log_lines_dropped_total, SIGTERM exits within
the drain time, and once the reader reads again lines flow again, led by
one saying how many were dropped.
"""
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True   # keep the source tree clean

import websockets

from myxidtest import (MYXID_BIN, PLUGIN_DIR, SLOWDOWN, Daemon, DEFAULT_TOKENS, Suite,
                       free_port, port_open, publish, scrape, standard_config)

T = Suite()
CLIENTS = 1000
DRAIN = 1            # drain_time, seconds


def dropped(port):
    return int(scrape(port)[1].get("myxid_log_lines_dropped_total", -1))


async def crowd(port, n):
    """n clients, each authenticated and subscribed to deployment/d1."""
    gate = asyncio.Semaphore(100)
    url = f"ws://127.0.0.1:{port}/"

    async def one(i):
        async with gate:
            ws = await websockets.connect(url, open_timeout=30 * SLOWDOWN, ping_interval=None,
                                          close_timeout=2, max_queue=None)
            await ws.recv()                                   # Welcome
            await ws.send(json.dumps({"action": "Authenticate", "tag": "a",
                                      "payload": {"session_id": "demo-alice"}}))
            auth = json.loads(await ws.recv())
            await ws.send(json.dumps({"action": "Subscribe", "tag": "s",
                                      "payload": {"exchange": "deployment", "routing_key": "d1"}}))
            sub = json.loads(await ws.recv())
            return ws, auth.get("event") == "Authenticated" and sub.get("event") == "Subscribed"

    results = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), 120 * SLOWDOWN)
    return [ws for ws, _ in results], sum(ok for _, ok in results)


async def served(port, sockets, what):
    """Events reach every socket, and every socket's ping is answered."""
    for k in range(3):
        r = publish(port, "deployment", "d1", "LogLine", {"n": k})
        T.eq(r.json(), {"ok": True, "delivered": len(sockets)}, f"{what}: publish {k} delivered to all")
    async def three(ws):
        return [await ws.recv() for _ in range(3)]
    got = await asyncio.gather(*(asyncio.wait_for(three(ws), 30 * SLOWDOWN) for ws in sockets),
                               return_exceptions=True)
    complete = sum(1 for g in got if not isinstance(g, Exception) and
                   [json.loads(m)["payload"]["n"] for m in g] == [0, 1, 2])
    T.eq(complete, len(sockets), f"{what}: every client received the 3 events, in order")
    t0 = time.monotonic()
    waiters = [await ws.ping() for ws in sockets]
    pongs = await asyncio.gather(*(asyncio.wait_for(w, 10 * SLOWDOWN) for w in waiters),
                                 return_exceptions=True)
    answered = sum(1 for p in pongs if not isinstance(p, Exception))
    T.eq(answered, len(sockets), f"{what}: every client's ping answered "
         f"({time.monotonic() - t0:.2f}s for all)")


async def close_all(sockets):
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


async def stop_within_drain(proc, what):
    """SIGTERM; the clients keep answering (close frames) meanwhile."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = await asyncio.to_thread(proc.wait, timeout=(DRAIN + 5) * SLOWDOWN)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
        T.check(False, f"{what}: SIGTERM exits within the drain time", "still running: killed")
        return
    took = time.monotonic() - t0
    # drain_time, plus at most a second for the log thread's last flush,
    # plus slack.
    T.check(rc == 0 and took < DRAIN + 1 + 3 * SLOWDOWN,
            f"{what}: SIGTERM exits 0 within the drain time ({took:.2f}s)", rc)


# ------------------------------------------------------------ syslog

@T.test(timeout=240)
async def syslog_never_read():
    path = os.path.join(T.mkdtemp(prefix="myxidtest-syslog-"), "log")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)                      # bound, and not read for now
    try:
        d = Daemon(standard_config(extra=f"log syslog\nsyslog_address {path}\n"
                                         f"drain_time {DRAIN}s\nworkers 2"),
                   name="syslog never read")
        sockets, ok = await crowd(d.port, CLIENTS)
        T.eq(ok, CLIENTS, f"{CLIENTS} clients authenticated and subscribed while syslog is not read")
        await served(d.port, sockets, "syslog not read")
        n = dropped(d.port)
        T.check(n > 0, f"myxid_log_lines_dropped_total counts the lines syslog could not take ({n})")

        # Read again: lines flow, led by the count of what was dropped.
        got = []
        listener.settimeout(0.2)

        def reader():
            end = time.monotonic() + 20 * SLOWDOWN
            while time.monotonic() < end:
                try:
                    got.append(listener.recv(65536).decode("utf-8", "replace"))
                except socket.timeout:
                    continue
                except OSError:
                    return
                seen = [i for i, g in enumerate(got) if "log line(s) dropped" in g]
                if seen and any("WebSocket opened" in g for g in got[seen[0] + 1:]):
                    return
        t = threading.Thread(target=reader)
        t.start()
        await close_all(sockets)
        await asyncio.sleep(0.5)
        async with websockets.connect(f"ws://127.0.0.1:{d.port}/", open_timeout=10) as ws:
            await ws.recv()
        await asyncio.to_thread(t.join)
        report = [g for g in got if "log line(s) dropped" in g]
        T.check(len(report) >= 1 and report[0].startswith("<28>"),
                "syslog read again: a warning says how many lines were dropped", "\n".join(got[:3]))
        after = got[got.index(report[0]) + 1:] if report else []
        T.check(any(g.startswith("<30>") and "myxid[" in g and "WebSocket opened" in g for g in after),
                "syslog read again: new lines arrive after it", "\n".join(got[-3:]))
        await stop_within_drain(d.proc, "syslog not read")
        d.stop(expect_rc=0)
    finally:
        listener.close()


# ------------------------------------------------------------ stderr

@T.test(timeout=240)
async def stderr_never_drained():
    d = Daemon(standard_config(extra=f"drain_time {DRAIN}s\nworkers 2"), start=False,
               name="stderr pipe never drained")
    # The daemon's stderr (and stdout) is a pipe this test does not read.
    proc = subprocess.Popen([MYXID_BIN, "-c", d.conf_path, "-P", PLUGIN_DIR],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=d.dir, env=d.env)
    try:
        deadline = time.monotonic() + 10 * SLOWDOWN
        while not port_open(d.port) and time.monotonic() < deadline:
            time.sleep(0.02)
        sockets, ok = await crowd(d.port, CLIENTS)
        T.eq(ok, CLIENTS, f"{CLIENTS} clients authenticated and subscribed while stderr is not drained")
        await served(d.port, sockets, "stderr not drained")
        n = dropped(d.port)
        T.check(n > 0, f"myxid_log_lines_dropped_total counts the lines stderr could not take ({n})")
        # SIGTERM with every client still connected and stderr still full:
        # the drain closes them, and the exit does not wait for the pipe.
        await stop_within_drain(proc, "stderr not drained, 1,000 clients connected")
        await asyncio.gather(*(asyncio.wait_for(ws.wait_closed(), 10 * SLOWDOWN)
                                        for ws in sockets), return_exceptions=True)
        codes = [ws.close_code for ws in sockets]
        T.eq(codes.count(1001), len(sockets), "every client was closed with 1001 by the drain")
        out = proc.stderr.read().decode("utf-8", "replace")
        T.check(" ready: " in out, "what stderr took is there, whole lines", out[:300])
        T.check("Sanitizer" not in out and "runtime error" not in out, "no sanitizer report")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    T.run()
