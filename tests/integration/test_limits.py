#!/usr/bin/python3
"""
The limits that keep myxid up under hostile or careless clients: the
connection caps (total, per client address, X-Forwarded-For from trusted
proxies only) answered with 503 before the upgrade, subscriptions per
socket, actions per second, message size, the per-socket output cap that
closes a client which stops reading (memory stays bounded, other clients
are not held up), server pings and their timeout, the authentication
deadline, the Origin allowlist, and running out of file descriptors
(accepting pauses instead of spinning).
"""
import asyncio
import os
import resource
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import (PLUGIN_DIR, Client, Daemon, OP_CLOSE, OP_PING, OP_TEXT, RawWS,
                       Suite, action_text, check_pong, compact, delivered,
                       encode_frame, error, expect_close, handshake_request,
                       http_raw, http_request, publish, require,
                       run_myxid, scrape, standard_config, subscribed, unsubscribed)
from hostile import cpu_seconds, open_fds, vm_rss_kb

require()
T = Suite()


# ------------------------------------------------------------ helpers

def metric(port, name):
    return scrape(port)[1].get(name)


def wait_metric(port, name, want, timeout=4.0):
    """Poll /metrics until name == want; the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        got = metric(port, name)
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


def upgrade(port, headers=None):
    """An upgrade request that is expected to be refused: the response."""
    return http_raw(port, handshake_request(port, headers=headers))


def refused_503(resp, what):
    T.eq(resp.status, 503, f"{what} -> 503")
    T.check(resp.headers.get("retry-after", "").isdigit(),
            f"{what}: the 503 has a Retry-After", repr(resp))
    T.check("sec-websocket-accept" not in resp.headers and resp.complete,
            f"{what}: a complete answer, no upgrade", repr(resp))


def read_until_end(sock, timeout):
    """Read until EOF or reset: ("eof"|"reset"|"timeout", bytes read)."""
    deadline = time.monotonic() + timeout
    data = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return "timeout", bytes(data)
        sock.settimeout(left)
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            return "reset", bytes(data)
        except (socket.timeout, TimeoutError):
            return "timeout", bytes(data)
        if not chunk:
            return "eof", bytes(data)
        data += chunk


# ------------------------------------------------------------ connections

@T.test
def max_connections():
    d = Daemon(standard_config(extra="max_connections 3\nworkers 1"), name="maxconn")
    open_ws = [RawWS(d.port) for _ in range(3)]
    T.check(all(ws.welcome for ws in open_ws), "3 WebSockets open under max_connections 3")
    refused_503(upgrade(d.port), "the 4th upgrade")
    refused_503(upgrade(d.port), "the 5th upgrade")
    T.eq(http_request(d.port, "GET", "/healthz").status, 200,
         "plain HTTP (/healthz) still works at the limit")
    T.eq(metric(d.port, "myxid_connections_refused_total"), 2.0,
         "/metrics myxid_connections_refused_total counts both refusals")
    T.check("connection limit reached" in d.read_log(), "the refusal is logged")
    open_ws.pop().close()
    T.eq(wait_metric(d.port, "myxid_sockets", 2.0), 2.0,
         "a socket closed by its client is no longer counted")
    try:
        with RawWS(d.port) as again:
            T.check(again.welcome is not None, "after one closes, a new upgrade is accepted")
            refused_503(upgrade(d.port), "at the limit again")
    except AssertionError as exc:
        T.check(False, "after one closes, a new upgrade is accepted", str(exc))
    for ws in open_ws:
        ws.close()
    T.eq(metric(d.port, "myxid_connections_refused_total"), 3.0,
         "myxid_connections_refused_total after three refusals")
    d.stop()


@T.test
def max_connections_per_ip_with_trusted_proxy():
    d = Daemon(standard_config(extra="max_connections_per_ip 2\n"
                               "trusted_proxy 127.0.0.1/32\nworkers 1"), name="perip")
    xff = lambda ip: {"X-Forwarded-For": ip}
    a = [RawWS(d.port, headers=xff("10.0.0.1")) for _ in range(2)]
    T.check(True, "client 10.0.0.1 (via the trusted proxy) opens 2 sockets")
    refused_503(upgrade(d.port, xff("10.0.0.1")), "a 3rd socket for 10.0.0.1")
    b = [RawWS(d.port, headers=xff("10.0.0.2")) for _ in range(2)]
    T.check(True, "client 10.0.0.2 has its own 2 sockets")
    refused_503(upgrade(d.port, xff("10.0.0.2")), "a 3rd socket for 10.0.0.2")
    # Entries added by trusted proxies (the rightmost) are skipped.
    refused_503(upgrade(d.port, xff("10.0.0.1, 127.0.0.1")),
                "'10.0.0.1, 127.0.0.1' is client 10.0.0.1")
    own = [RawWS(d.port) for _ in range(2)]
    T.check(True, "the proxy's own requests (no X-Forwarded-For) count as 127.0.0.1")
    refused_503(upgrade(d.port), "a 3rd socket for 127.0.0.1 itself")
    T.check("(client 10.0.0.2)" in d.read_log(),
            "the log names the forwarded client", d.read_log()[-1500:])
    T.eq(metric(d.port, "myxid_connections_refused_total"), 4.0,
         "myxid_connections_refused_total counts the per-address refusals")
    a.pop().close()
    T.eq(wait_metric(d.port, "myxid_sockets", 5.0), 5.0, "setup: one socket of 10.0.0.1 closed")
    try:
        with RawWS(d.port, headers=xff("10.0.0.1")):
            T.check(True, "10.0.0.1 may open one again")
    except AssertionError as exc:
        T.check(False, "10.0.0.1 may open one again", str(exc))
    for ws in a + b + own:
        ws.close()
    d.stop()


@T.test
def x_forwarded_for_from_untrusted_peer_is_ignored():
    d = Daemon(standard_config(extra="max_connections_per_ip 2\n"
                               "trusted_proxy 10.9.9.0/24\nworkers 1"), name="untrusted")
    a = RawWS(d.port, headers={"X-Forwarded-For": "10.0.0.1"})
    b = RawWS(d.port, headers={"X-Forwarded-For": "10.0.0.2"})
    refused_503(upgrade(d.port, {"X-Forwarded-For": "10.0.0.3"}),
                "an untrusted peer's X-Forwarded-For does not make a new client")
    T.check("(client 127.0.0.1)" in d.read_log(), "the log names the real peer",
            d.read_log()[-1500:])
    a.close()
    b.close()
    d.stop()


# ------------------------------------------------------------ per socket

MISC = None


def misc():
    global MISC
    if MISC is None:
        MISC = Daemon(standard_config(max_message_size="1k",
                                      extra="max_subscriptions 3\n"
                                            "max_actions_per_second 5\nworkers 1"),
                      name="persocket")
    return MISC


@T.test
async def max_subscriptions():
    d = misc()
    async with Client(d.port) as c:
        for i, key in enumerate("abc"):
            await c.send("Subscribe", {"exchange": "public", "routing_key": key}, f"s{i}")
            await c.expect(subscribed("public", key, f"s{i}"), f"subscription {i + 1} of 3")
        await c.send("Subscribe", {"exchange": "public", "routing_key": "d"}, "s3")
        await c.expect(error("TooManySubscriptions", "s3", "public", "d"),
                       "the 4th Subscribe -> TooManySubscriptions")
        await c.send("Subscribe", {"exchange": "public", "routing_keys": ["e", "f"]}, "s4")
        await c.expect(error("TooManySubscriptions", "s4", "public", "e"),
                       "a routing_keys list beyond the limit: key e refused")
        await c.expect(error("TooManySubscriptions", "s4", "public", "f"),
                       "a routing_keys list beyond the limit: key f refused")
        await c.send("Unsubscribe", {"exchange": "public", "routing_key": "a"}, "u")
        await c.expect(unsubscribed("public", "a", "u"), "unsubscribe one")
        await c.send("Subscribe", {"exchange": "public", "routing_key": "d"}, "s5")
        await c.expect(subscribed("public", "d", "s5"), "then a new Subscribe fits again")
    T.eq(wait_metric(d.port, "myxid_subscriptions", 0.0), 0.0,
         "myxid_subscriptions back to 0 after the socket closed")


@T.test
def rate_limit():
    d = misc()

    before = metric(d.port, "myxid_actions_rate_limited_total") or 0.0
    with RawWS(d.port) as ws:
        n = 30
        burst = b"".join(encode_frame(OP_TEXT, action_text("Ping", tag=f"p{i}"))
                         for i in range(n))
        ws.send(burst)        # one write: all arrive "in a moment"
        replies = [ws.recv_text() for _ in range(n)]
        pongs = [i for i, r in enumerate(replies) if r.startswith('{"event":"Pong"')]
        limited = [i for i, r in enumerate(replies)
                   if r == compact(error("RateLimited", f"p{i}"))]
        T.check(all(i in pongs for i in range(10)),
                "max_actions_per_second 5: the first 10 (2R) Pings of a burst get Pong",
                "\n".join(replies[:12]))
        for i in range(10):
            check_pong(replies[i], f"p{i}", f"burst Ping {i}: its own Pong")
        T.check(len(limited) >= 1, f"the excess gets RateLimited ({len(limited)} of {n})",
                "\n".join(replies))
        T.check(len(pongs) + len(limited) == n,
                "every other reply is exactly {\"event\":\"Error\",\"tag\":T,"
                "\"payload\":{\"error\":\"RateLimited\"}}",
                "\n".join(r for i, r in enumerate(replies) if i not in pongs + limited))
        T.check(len(pongs) <= 12, f"no more than ~2R answered ({len(pongs)})")
        T.eq(metric(d.port, "myxid_actions_rate_limited_total"), before + len(limited),
             "myxid_actions_rate_limited_total counts them")
        time.sleep(1.1)
        ws.send_frame(OP_TEXT, action_text("Ping", tag="later"))
        check_pong(ws.recv_text(), "later", "a second later, Ping works again")
        ws.send(b"".join(encode_frame(OP_TEXT, action_text("Ping", tag=f"q{i}"))
                         for i in range(3)))
        for i in range(3):
            check_pong(ws.recv_text(), f"q{i}", f"refilled: Ping q{i} answered")


@T.test
def max_message_size():
    d = misc()
    with RawWS(d.port) as ws:
        head = '{"action":"Ping","tag":"big","x":"'
        msg = head + "a" * (1024 - len(head) - 2) + '"}'
        ws.send_frame(OP_TEXT, msg)
        check_pong(ws.recv_text(), "big", "a message of exactly max_message_size (1k)")
        ws.send_frame(OP_TEXT, msg[:-2] + 'a"}')
        expect_close(ws, 1009, "max_message_size + 1 -> close 1009")


# ------------------------------------------------------------ slow consumer

def slow_subscriber(port, routing_key):
    """A raw WebSocket with a tiny receive buffer, subscribed to
    public/routing_key, that the caller then stops reading."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    s.sendall(handshake_request(port))
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    if not buf.startswith(b"HTTP/1.1 101 "):
        raise AssertionError(f"slow client refused: {buf!r}")
    s.sendall(encode_frame(OP_TEXT, action_text(
        "Subscribe", {"exchange": "public", "routing_key": routing_key}, "slow")))
    while b'"Subscribed"' not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise AssertionError("slow client: closed before Subscribed")
        buf += chunk
    return s


@T.test(timeout=45)
async def slow_consumer_is_closed():
    d = Daemon(standard_config(extra="max_output_buffer 64k\nworkers 1"), name="slow")
    pid = d.proc.pid
    slow = slow_subscriber(d.port, "flood")
    n, pad = 1000, "x" * 8000          # 8 MB for a client that reads nothing
    got, pong, errors = [], [], []
    async with Client(d.port, label="good") as good:
        await good.send("Subscribe", {"exchange": "public", "routing_key": "flood"}, "s")
        await good.expect(subscribed("public", "flood", "s"), "setup: the good client subscribes")
        rss0 = vm_rss_kb(pid)

        def flood():
            # A well-behaved client keeps up with the stream; pace the
            # publisher to it so that only the non-reader falls behind.
            for i in range(n):
                deadline = time.monotonic() + 10
                while i - len(got) > 4 and time.monotonic() < deadline:
                    time.sleep(0.0005)
                r = publish(d.port, "public", "flood", "Flood", {"n": i, "pad": pad})
                if r.status != 200:
                    errors.append((i, r))
                    return

        async def reader():
            while len(got) < n:
                raw = await good.recv(timeout=10)
                if raw.startswith('{"event":"Pong"'):
                    pong.append((raw, len(got)))
                    continue
                got.append(raw)
                if len(got) == 100:
                    await good.send("Ping", tag="mid")

        read_task = asyncio.create_task(reader())
        await asyncio.to_thread(flood)
        try:
            await asyncio.wait_for(read_task, 15)
        except Exception as exc:
            T.error("the good client read the whole flood", exc)
        T.check(not errors, "every POST /publish answered 200", repr(errors[:1]))
        bad = [i for i, raw in enumerate(got)
               if raw != compact(delivered("Flood", {"n": i, "pad": pad}, "public", "flood"))]
        T.check(len(got) == n and not bad,
                f"the good client received all {n} events, in order, once each",
                f"received {len(got)}; first wrong at {bad[:1]}")
        T.check(len(pong) == 1 and pong[0][1] < n,
                "its Ping sent during the flood was answered during the flood",
                repr([(p[0], p[1]) for p in pong]))
        if pong:
            check_pong(pong[0][0], "mid", "the Pong has the Ping's tag")
        m = scrape(d.port)[1]
        T.check(m.get("myxid_slow_socket_closes_total", 0) >= 1,
                "/metrics myxid_slow_socket_closes_total >= 1",
                repr(m.get("myxid_slow_socket_closes_total")))
        T.check("too slow" in d.read_log(), "the slow close is logged")
        grown = (vm_rss_kb(pid) - rss0) / 1024
        T.check(grown < 100, f"the daemon's RSS stays bounded (grew {grown:.1f} MB "
                "for 8 MB sent to a non-reader)")
        how, data = await asyncio.to_thread(read_until_end, slow, 10)
        T.check(how in ("eof", "reset"),
                f"the non-reading client's connection is ended by the daemon ({how})",
                f"read {len(data)} bytes without an end")
        T.check(len(data) < 6 * 1024 * 1024,
                f"it got only what was buffered before its cap ({len(data)} bytes)")
        i = data.rfind(b"\x88\x02\x0f\xa8")
        print(f"# the non-reader {'did' if i >= 0 else 'did not'} find close 4008 "
              "at the end of what it read", flush=True)
        slow.close()
        T.eq(await asyncio.to_thread(wait_metric, d.port, "myxid_sockets", 1.0), 1.0,
             "afterwards only the good client is counted")
        await good.ping_roundtrip("the good client is still up")
    d.stop()


@T.test
def output_buffer_minimum():
    for value, ok in (("64k", 0), ("63k", 1)):
        d = Daemon(standard_config(extra=f"max_output_buffer {value}"), start=False,
                   name=f"outbuf-{value}")
        rc, _, err = run_myxid(["-t", "-c", d.conf_path, "-P", PLUGIN_DIR])
        T.check(rc == ok and (ok == 0 or "max_output_buffer" in err),
                f"myxid -t: max_output_buffer {value} -> exit {ok}", f"{rc} {err}")
        d.stop()


# ------------------------------------------------------------ pings

@T.test
async def ping_timeout():
    d = Daemon(standard_config(extra="ping_interval 300ms\nping_timeout 300ms\nworkers 1"),
               name="pings")

    def silent_client():
        out = {}
        with RawWS(d.port) as ws:
            t0 = time.monotonic()
            ws.sock.settimeout(4)
            close, before = ws.read_close()
            out["elapsed"] = time.monotonic() - t0
            out["close"], out["before"] = close, before
            out["eof"] = ws.at_eof(3)
        return out

    async with Client(d.port, label="answering") as c:
        res_task = asyncio.create_task(asyncio.to_thread(silent_client))
        await asyncio.sleep(2.0)
        await c.ping_roundtrip("a client that answers pings is still up after 2 s")
        res = await res_task
    pings = [f for f in res["before"] if getattr(f, "opcode", None) == OP_PING]
    T.check(pings and all(f.payload == b"myxid" for f in pings),
            "the silent client received ping frames (opcode 9, payload 'myxid')",
            repr(res["before"]))
    code = res["close"].close_code if res["close"] is not None else None
    T.check(code == 4000, "then close code 4000",
            f"got {res['close']!r} after {res['before']!r}")
    T.check(0.45 <= res["elapsed"] <= 1.5,
            f"closed after about interval + timeout ({res['elapsed']:.2f} s, want ~0.6)")
    T.check(res["eof"], "and the TCP connection ends")
    T.check(metric(d.port, "myxid_ping_timeouts_total") >= 1,
            "/metrics myxid_ping_timeouts_total >= 1")
    T.eq(metric(d.port, "myxid_ping_timeouts_total"), 1.0,
         "only the silent client timed out")
    d.stop()


# ------------------------------------------------------------ auth deadline

@T.test
async def auth_deadline():
    d = Daemon(standard_config(extra="auth_deadline 500ms\nworkers 1"), name="deadline")

    def anonymous():
        with RawWS(d.port) as ws:
            t0 = time.monotonic()
            ws.send_frame(OP_TEXT, action_text("Authenticate", {"session_id": "wrong"}, "a"))
            reply = ws.recv_text()
            ws.send_frame(OP_TEXT, action_text("Ping", tag="p"))
            pong = ws.recv_text()
            f = expect_close(ws, 1008, "an unauthenticated socket is closed with 1008")
            return reply, pong, time.monotonic() - t0, f

    async with Client(d.port, label="authed") as c:
        await c.authenticate("demo-alice")
        reply, pong, elapsed, f = await asyncio.to_thread(anonymous)
        T.eq(reply, compact(error("InvalidAuthentication", "a")),
             "setup: a wrong token is refused")
        check_pong(pong, "p", "an active but anonymous socket still answers before the deadline")
        T.check(0.35 <= elapsed <= 1.5, f"after about 0.5 s ({elapsed:.2f} s)")
        await asyncio.sleep(0.3)
        await c.ping_roundtrip("the authenticated socket stays past the deadline")
    d.stop()


# ------------------------------------------------------------ origin

@T.test
def origin_allowlist():
    d = Daemon(standard_config(extra="allow_origin https://app.example.com\n"
                               "allow_origin https://*.example.org\nworkers 1"), name="origin")
    for origin in ("https://app.example.com", "https://x.example.org",
                   "https://a.b.example.org", None):
        hdrs = {"Origin": origin} if origin else None
        try:
            with RawWS(d.port, headers=hdrs) as ws:
                T.check(ws.welcome is not None, f"Origin {origin or '(none)'} -> 101")
        except AssertionError as exc:
            T.check(False, f"Origin {origin or '(none)'} -> 101", str(exc))
    for origin in ("https://evil.com", "http://app.example.com",
                   "https://app.example.com.evil.com", "https://evil.com/x.example.org",
                   "https://example.org"):
        r = upgrade(d.port, {"Origin": origin})
        T.eq(r.status, 403, f"Origin {origin} -> 403")
    d.stop()


# ------------------------------------------------------------ descriptors

@T.test(timeout=30)
async def fd_exhaustion():
    d = Daemon(standard_config(handshake_timeout="60s", extra="workers 1"), name="fds")
    pid = d.proc.pid
    base_fds = open_fds(pid)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (64, 64))
    socks = []
    try:
        for _ in range(100):
            socks.append(socket.create_connection(("127.0.0.1", d.port), timeout=2))
        await asyncio.sleep(0.5)
        cpu0 = cpu_seconds(pid)
        await asyncio.sleep(2.0)
        spent = cpu_seconds(pid) - cpu0
        T.check(open_fds(pid) <= 64, f"the daemon holds no more than its limit "
                f"({open_fds(pid)} fds; {base_fds} at start)")
        T.check(spent < 1.0, f"out of descriptors, it does not spin ({spent:.2f} s CPU in 2 s)")
        T.check("pausing new connections" in d.read_log(),
                "the log says it paused accepting", d.read_log()[-1500:])
        T.check(d.alive(), "the daemon is still running")
    finally:
        for s in socks:
            s.close()
    async with Client(d.port) as c:
        await c.ping_roundtrip("after they close, a normal client connects and gets Pong")
    deadline = time.monotonic() + 5
    while open_fds(pid) > base_fds + 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    T.check(open_fds(pid) <= base_fds + 2,
            f"its descriptors are released ({open_fds(pid)}, {base_fds} at start)")
    d.stop()


T.run()
