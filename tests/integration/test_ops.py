#!/usr/bin/python3
"""
Running myxid as a service: the TLS listener beside the plain one (real
wss:// and https:// clients), GET /metrics and how its numbers move,
several event loops (workers) that are one service for publishing and
reloading, the SIGTERM drain (1001 spread over drain_time, exit 0),
dropping root to a configured user, and logging to syslog.
"""
import asyncio
import json
import os
import pwd
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import (PLUGIN_DIR, SLOWDOWN, Client, Daemon, Suite, WELCOME_RE,
                       action_text, auth_reply, authenticated, compact, delivered,
                       error, free_port, handshake_request, http_request,
                       hup_and_wait, publish, read_to_eof, require, run_myxid,
                       scrape, standard_config, subscribed, websockets,
                       write_file)

require()
T = Suite()
TMP = T.mkdtemp(prefix="myxidtest-ops-")


# ------------------------------------------------------------ helpers

async def wait_metric(port, name, want, timeout=4.0):
    deadline = time.monotonic() + timeout
    while True:
        got = scrape(port)[1].get(name)
        if got == want or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.02)


async def auth_on_many(port, token, want, what, n=10):
    """n fresh connections (spread over the workers) authenticate with token."""
    got = [await auth_reply(port, token) for _ in range(n)]
    bad = [g for g in got if g != compact(want)]
    return T.check(not bad, f"{what} ({n} connections)",
                   f"want {compact(want)!r}; got {bad[:3]!r}")


def close_code(exc):
    rcvd = getattr(exc, "rcvd", None)
    return rcvd.code if rcvd is not None else getattr(exc, "code", None)


# ------------------------------------------------------------ TLS

def make_cert(dirpath):
    cert, key = os.path.join(dirpath, "c.pem"), os.path.join(dirpath, "k.pem")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-subj", "/CN=localhost", "-keyout", key, "-out", cert,
                        "-days", "1"], capture_output=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError(f"openssl req failed: {p.stderr.decode()[-500:]}")
    return cert, key


def tls_extra(tls_port, cert, key):
    return (f"listen_tls 127.0.0.1:{tls_port}\nssl_certificate {cert}\n"
            f"ssl_certificate_key {key}\nworkers 2\n")


@T.test(timeout=40)
async def tls_listener():
    tmp = T.mkdtemp()
    cert, key = make_cert(tmp)
    tls_port = free_port()
    d = Daemon(standard_config(extra=tls_extra(tls_port, cert, key)), name="tls")
    ctx = ssl.create_default_context(cafile=cert)
    ws = await websockets.connect(f"wss://127.0.0.1:{tls_port}/", ssl=ctx,
                                  server_hostname="localhost", open_timeout=5,
                                  close_timeout=2, ping_interval=None,
                                  max_size=8 * 1024 * 1024)
    try:
        welcome = await asyncio.wait_for(ws.recv(), 3)
        T.check(WELCOME_RE.match(welcome), "wss:// client (verifying the certificate) gets Welcome",
                repr(welcome))
        await ws.send(action_text("Authenticate", {"session_id": "demo-alice"}, "a"))
        T.eq(await asyncio.wait_for(ws.recv(), 3), compact(authenticated("1", "a")),
             "authenticates over TLS")
        await ws.send(action_text("Subscribe", {"exchange": "deployment",
                                                "routing_key": "d1"}, "s"))
        T.eq(await asyncio.wait_for(ws.recv(), 3), compact(subscribed("deployment", "d1", "s")),
             "subscribes over TLS")
        r = publish(d.port, "deployment", "d1", "Deployed", {"id": 7})
        T.eq(r.status, 200, "POST /publish over plain HTTP")
        T.eq(await asyncio.wait_for(ws.recv(), 3),
             compact(delivered("Deployed", {"id": 7}, "deployment", "d1")),
             "the TLS client receives the event published over plain HTTP")
        big = "y" * 300000
        publish(d.port, "deployment", "d1", "Big", {"data": big})
        T.eq(await asyncio.wait_for(ws.recv(), 5),
             compact(delivered("Big", {"data": big}, "deployment", "d1")),
             "a 300 KB event arrives whole over TLS")
        async with Client(d.port, label="plain") as c:
            await c.ping_roundtrip("plain ws:// still works on the other port")
        await ws.send(action_text("Ping", tag="p"))
        T.check((await asyncio.wait_for(ws.recv(), 3)).startswith('{"event":"Pong","tag":"p"'),
                "the TLS socket is still up")
    finally:
        await ws.close()

    def https_healthz():
        with urllib.request.urlopen(f"https://localhost:{tls_port}/healthz",
                                    context=ctx, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    status, body = await asyncio.to_thread(https_healthz)
    T.eq(status, 200, "https GET /healthz over TLS: 200")
    T.eq(body.get("status"), "ok", "https GET /healthz: status ok")

    def plaintext_to_tls_port():
        with socket.create_connection(("127.0.0.1", tls_port), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            t0 = time.monotonic()
            data = read_to_eof(s, 5)
            return data, time.monotonic() - t0
    data, took = await asyncio.to_thread(plaintext_to_tls_port)
    T.check(took < 4.5 and b"HTTP/1.1 200" not in data,
            "plain HTTP sent to the TLS port is dropped, not answered or left hanging",
            f"{took:.1f}s {data[:100]!r}")
    T.check(d.alive(), "the daemon is still running")

    rc, _, err = run_myxid(["-t", "-c", d.conf_path, "-P", PLUGIN_DIR])
    T.eq(rc, 0, "myxid -t accepts the TLS configuration")
    missing = os.path.join(tmp, "missing-key.pem")
    bad = os.path.join(tmp, "bad.conf")
    with open(bad, "w") as f:
        f.write(f"listen 127.0.0.1:{free_port()}\n" +
                standard_config(extra=tls_extra(free_port(), cert, missing)).replace(
                    "tokens_file tokens", f"tokens_file {d.dir}/tokens"))
    rc, _, err = run_myxid(["-t", "-c", bad, "-P", PLUGIN_DIR])
    T.eq(rc, 1, "myxid -t with a missing key file exits 1")
    T.check(missing in err, "and names the file", err)
    try:
        rc, _, err = run_myxid(["-c", bad, "-P", PLUGIN_DIR], timeout=5)
    except subprocess.TimeoutExpired:
        rc, err = None, "still running after 5 s"
    T.eq(rc, 1, "starting with a missing key file exits 1")
    T.check(missing in err, "naming the file", err)
    with open(bad, "w") as f:
        f.write(f"listen 127.0.0.1:{free_port()}\nlisten_tls 127.0.0.1:{free_port()}\n" +
                standard_config())
    rc, _, err = run_myxid(["-t", "-c", bad, "-P", PLUGIN_DIR])
    T.check(rc == 1 and "ssl_certificate" in err,
            "listen_tls without a certificate: myxid -t exits 1 saying so", f"{rc} {err}")
    d.stop()


# ------------------------------------------------------------ metrics

@T.test(timeout=30)
async def metrics_content():
    d = Daemon(standard_config(extra="workers 1"), name="metrics")
    r, m = scrape(d.port)
    T.eq(r.status, 200, "GET /metrics: 200")
    T.check(r.headers.get("content-type", "").startswith("text/plain"),
            "GET /metrics: text/plain", repr(r.headers))
    text = r.body.decode()
    for name, kind in (("myxid_sockets", "gauge"), ("myxid_sockets_authenticated", "gauge"),
                       ("myxid_subscriptions", "gauge"), ("myxid_deliveries_total", "counter"),
                       ("myxid_reloads_total", "counter"),
                       ("myxid_plugin_answers_total", "counter"),
                       ("myxid_plugin_latency_seconds", "histogram")):
        T.check(f"# TYPE {name} {kind}\n" in text and f"# HELP {name} " in text,
                f"HELP and TYPE {kind} for {name}")
    want0 = {"myxid_sockets": 0, "myxid_sockets_authenticated": 0, "myxid_subscriptions": 0,
             "myxid_deliveries_total": 0, "myxid_reloads_total": 0,
             "myxid_connections": 1, "myxid_slow_socket_closes_total": 0,
             "myxid_ping_timeouts_total": 0}
    T.eq({k: m.get(k) for k in want0}, want0, "a fresh daemon's values")
    T.check(not any(line.startswith("myxid_broker_") for line in text.splitlines()),
            "no broker: no myxid_broker_connected value")
    T.eq(http_request(d.port, "POST", "/metrics", body="").status, 405, "POST /metrics -> 405")

    allow = 'myxid_plugin_answers_total{plugin="auth_static",answer="allow"}'
    nxt = 'myxid_plugin_answers_total{plugin="auth_static",answer="next"}'
    inf = 'myxid_plugin_latency_seconds_bucket{plugin="auth_static",le="+Inf"}'
    count = 'myxid_plugin_latency_seconds_count{plugin="auth_static"}'
    async with Client(d.port, label="a") as a, Client(d.port, label="b") as b:
        m = scrape(d.port)[1]
        T.eq((m.get("myxid_sockets"), m.get("myxid_sockets_authenticated"),
              m.get("myxid_connections")), (2, 0, 3),
             "two sockets open: myxid_sockets 2, authenticated 0, connections 3")
        await a.authenticate("demo-alice")
        await b.send("Authenticate", {"session_id": "nobody-knows"}, "x")
        await b.expect(error("InvalidAuthentication", "x"), "setup: an unknown token is refused")
        m = scrape(d.port)[1]
        T.eq(m.get("myxid_sockets_authenticated"), 1, "one authenticated: gauge 1")
        T.eq((m.get(allow), m.get(nxt)), (1, 1),
             'auth_static answers: allow 1, next 1 (labels plugin="auth_static")')
        T.eq((m.get(inf), m.get(count)), (2, 2), "latency histogram: +Inf bucket and count 2")
        T.eq(m.get('myxid_plugin_latency_seconds_bucket{plugin="auth_static",le="5"}'), 2,
             "latency histogram: cumulative le=5 bucket 2")
        buckets = [v for k, v in m.items()
                   if k.startswith('myxid_plugin_latency_seconds_bucket{plugin="auth_static"')]
        T.check(len(buckets) >= 10 and buckets == sorted(buckets),
                "latency buckets are cumulative", repr(buckets))
        for key in ("d1", "d2"):
            await a.send("Subscribe", {"exchange": "deployment", "routing_key": key}, key)
            await a.expect(subscribed("deployment", key, key), f"setup: subscribe {key}")
        T.eq(scrape(d.port)[1].get("myxid_subscriptions"), 2, "two subscriptions: gauge 2")
        T.eq(publish(d.port, "deployment", "d1", "E", {}).json(),
             {"ok": True, "delivered": 1}, "publish to d1")
        await a.expect(delivered("E", {}, "deployment", "d1"), "setup: delivered")
        m = scrape(d.port)[1]
        T.eq((m.get("myxid_deliveries_total"), m.get("myxid_events_published_total")),
             (1, 1), "one delivery, one event published")
        T.check(await hup_and_wait(d, "configuration reloaded"), "setup: SIGHUP reload")
        m = scrape(d.port)[1]
        T.eq((m.get("myxid_reloads_total"), m.get("myxid_sockets")), (1, 2),
             "after SIGHUP: myxid_reloads_total 1, the sockets stay")
        conf = open(d.conf_path).read()
        with open(d.conf_path, "w") as f:
            f.write(conf + "frobnicate yes\n")
        T.check(await hup_and_wait(d, "reload failed"), "setup: a failing reload")
        with open(d.conf_path, "w") as f:
            f.write(conf)
        m = scrape(d.port)[1]
        T.eq((m.get("myxid_reloads_total"), m.get("myxid_reload_failures_total")), (1, 1),
             "a failed reload: myxid_reload_failures_total 1, reloads unchanged")
        await a.send("Unsubscribe", {"exchange": "deployment", "routing_key": "d1"}, "u")
        await a.recv()
        T.eq(scrape(d.port)[1].get("myxid_subscriptions"), 1, "unsubscribed one: gauge 1")
        # a: Authenticate, 2 Subscribe, Unsubscribe; b: Authenticate
        T.eq(scrape(d.port)[1].get("myxid_messages_received_total"), 5,
             "myxid_messages_received_total counts the 5 client messages")
    T.eq(await wait_metric(d.port, "myxid_sockets", 0), 0, "both closed: myxid_sockets 0")
    # (the POST /publish connection may linger; publish_connections_are_released)
    await wait_metric(d.port, "myxid_connections", 1, timeout=4)
    m = scrape(d.port)[1]
    T.eq((m.get("myxid_sockets_authenticated"), m.get("myxid_subscriptions"),
          m.get("myxid_connections")), (0, 0, 1),
         "and authenticated 0, subscriptions 0, connections 1 (this request)")
    body = json.loads(http_request(d.port, "GET", "/healthz").body)
    T.eq((body.get("status"), body.get("sessions")), ("ok", 0), "/healthz agrees")
    d.stop()


@T.test(timeout=20)
async def publish_connections_are_released():
    """A POST /publish whose client has read the answer and closed must
    not keep its connection (descriptor and request body) any longer
    than a GET does."""
    d = Daemon(standard_config(extra="workers 1"), name="pubconns")
    for i in range(50):
        publish(d.port, "public", "nobody", "E", {"n": i, "pad": "z" * 10000})
    got = await wait_metric(d.port, "myxid_connections", 1, timeout=1.0)
    T.eq(got, 1, "50 finished POST /publish connections are released within 1 s "
         "(myxid_connections back to 1)")
    d.stop()


# ------------------------------------------------------------ workers

@T.test(timeout=40)
async def workers_are_one_service():
    d = Daemon(standard_config(extra="workers 2"), name="workers")
    T.check("ready: 2 worker(s)" in d.read_log(), "workers 2: two event loops start")
    clients = [Client(d.port, label=f"c{i}") for i in range(20)]
    for c in clients:
        await c.connect()
    try:
        for c in clients:
            await c.send("Subscribe", {"exchange": "public", "routing_key": "all"}, "s")
        for c in clients:
            await c.expect(subscribed("public", "all", "s"), f"setup: {c.label} subscribes")
        replies = [publish(d.port, "public", "all", "Hello", {"n": n}).json()
                   for n in range(4)]
        T.eq(replies, [{"ok": True, "delivered": 20}] * 4,
             'each POST /publish answers {"ok":true,"delivered":20}')
        missing = []
        for c in clients:
            for n in range(4):
                try:
                    raw = await c.recv(3)
                except Exception as exc:
                    raw = repr(exc)
                if raw != compact(delivered("Hello", {"n": n}, "public", "all")):
                    missing.append((c.label, n, raw))
        T.check(not missing, "all 20 clients receive every event, in order", repr(missing[:3]))
        extra = []
        for c in clients:
            try:
                extra.append(await c.recv(0.05))
            except Exception:
                pass
        T.check(not extra, "and exactly once", repr(extra[:3]))
        m = scrape(d.port)[1]
        T.eq(m.get("myxid_deliveries_total"), 80, "myxid_deliveries_total: 4 events x 20 sockets")
        T.eq(m.get("myxid_events_published_total"), 4,
             "myxid_events_published_total counts 4 events (not one per worker)")

        # SIGHUP with two loops: every one switches.
        write_file(d, "tokens", "demo-new 9\n")
        T.check(await hup_and_wait(d, "configuration reloaded"), "SIGHUP reload (logged)")
        await auth_on_many(d.port, "demo-new", authenticated("9", "t"),
                           "a token added before the reload is accepted")
        await auth_on_many(d.port, "demo-alice", error("InvalidAuthentication", "t"),
                           "a token removed before the reload is refused")
        # A broken configuration: nothing changes, on any loop.
        conf = open(d.conf_path).read()
        with open(d.conf_path, "w") as f:
            f.write(conf + "frobnicate yes\n")
        write_file(d, "tokens", "demo-new 9\ndemo-sneaky 10\n")
        T.check(await hup_and_wait(d, "reload failed"), "a broken config: 'reload failed' logged")
        await auth_on_many(d.port, "demo-new", authenticated("9", "t"),
                           "the running tokens still work")
        await auth_on_many(d.port, "demo-sneaky", error("InvalidAuthentication", "t"),
                           "a token added with the broken config is not let in")
        await clients[0].ping_roundtrip("the sockets opened before the reloads are up")
        r = publish(d.port, "public", "all", "After", {})
        T.eq(r.json(), {"ok": True, "delivered": 20}, "all 20 still subscribed after the reloads")
    finally:
        for c in clients:
            await c.close()
    d.stop()


# ------------------------------------------------------------ SIGTERM

async def drain(n, workers, name):
    """SIGTERM with n clients: (sorted close times after the signal,
    close codes, first line of a new upgrade during the drain, exit time)."""
    d = Daemon(standard_config(extra=f"drain_time 1s\nworkers {workers}"), name=name)
    clients = [Client(d.port, label=f"c{i}") for i in range(n)]
    for c in clients:
        await c.connect()

    async def closed_at(c):
        try:
            while True:
                await c.ws.recv()
        except websockets.exceptions.ConnectionClosed as exc:
            return time.monotonic(), close_code(exc)

    waits = [asyncio.create_task(asyncio.wait_for(closed_at(c), 8)) for c in clients]
    t0 = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.3)

    def try_new():
        try:
            s = socket.create_connection(("127.0.0.1", d.port), timeout=2)
        except ConnectionRefusedError:
            return "refused"
        with s:
            s.sendall(handshake_request(d.port))
            head = read_to_eof(s, 3)
            return head.split(b"\r\n", 1)[0].decode("latin-1")
    during = await asyncio.to_thread(try_new)
    results = []
    for w in waits:
        try:
            results.append(await w)
        except Exception as exc:
            results.append((None, repr(exc)))
    try:
        await asyncio.to_thread(d.proc.wait, 5)
    except subprocess.TimeoutExpired:
        pass
    took = time.monotonic() - t0
    d.stop()
    for c in clients:
        await c.close()
    times = sorted(t - t0 for t, _ in results if t is not None)
    return times, [code for _, code in results], during, took


@T.test(timeout=30)
async def sigterm_drain():
    times, codes, during, took = await drain(20, 1, "drain")
    T.check(during == "refused" or " 503 " in during,
            "a new connection during the drain is refused (503 or refused)", during)
    T.eq(codes, [1001] * 20, "all 20 clients receive close 1001")
    if times:
        T.check(times[-1] - times[0] >= 0.5,
                f"the closes are spread (first {times[0]:.2f} s, last {times[-1]:.2f} s)")
        T.check(times[-1] <= 2.0, f"all closed within drain_time ({times[-1]:.2f} s)")
    T.check(took < 4.5, f"the daemon exits within drain_time + a few seconds ({took:.1f} s)")


@T.test(timeout=30)
async def sigterm_drain_few_sockets_per_worker():
    # workers 2 is the default (one per CPU) on a 2-core machine.
    times, codes, during, took = await drain(10, 2, "drain2")
    T.eq(codes, [1001] * 10, "workers 2: all 10 clients receive close 1001")
    if times:
        T.check(times[-1] - times[0] >= 0.5,
                "workers 2, 10 sockets: the closes are spread over drain_time 1s "
                f"(first {times[0]:.2f} s, last {times[-1]:.2f} s)")
    T.check(took < 4.5, f"the daemon exits within drain_time + a few seconds ({took:.1f} s)")


# ------------------------------------------------------------ user

def nobody():
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        return None


@T.test
async def drop_privileges():
    if os.geteuid() != 0 or nobody() is None:
        print("# skipped: not root, or no user 'nobody'", flush=True)
        return
    pw = nobody()
    d = Daemon(standard_config(extra="user nobody\nworkers 2"), name="user")
    # It listens before it drops root: wait until it says it is ready.
    deadline = time.monotonic() + 5
    while "ready:" not in d.read_log() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    with open(f"/proc/{d.proc.pid}/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    T.eq(status["Uid"].split(), [str(pw.pw_uid)] * 4, "user nobody: Uid is nobody's (all four)")
    T.eq(status["Gid"].split(), [str(pw.pw_gid)] * 4, "and Gid is nobody's group")
    uids = set()
    for tid in os.listdir(f"/proc/{d.proc.pid}/task"):
        with open(f"/proc/{d.proc.pid}/task/{tid}/status") as f:
            uids.update(line.split()[1] for line in f if line.startswith("Uid:"))
    T.eq(uids, {str(pw.pw_uid)}, "every thread (the workers too) runs as nobody")
    T.check("running as user nobody" in d.read_log(), "the log says so")
    async with Client(d.port) as c:
        await c.authenticate("demo-alice")
        await c.ping_roundtrip("it still serves")
    d.stop()

    conf = os.path.join(T.mkdtemp(), "myxid.conf")
    with open(conf, "w") as f:
        f.write(f"listen 127.0.0.1:{free_port()}\n" +
                standard_config(extra="user no-such-user").replace(
                    "tokens_file tokens", f"tokens_file {d.dir}/tokens"))
    try:
        rc, _, err = run_myxid(["-c", conf, "-P", PLUGIN_DIR], timeout=5)
    except subprocess.TimeoutExpired:
        rc, err = None, "still running after 5 s"
    T.eq(rc, 1, "user no-such-user: exit 1")
    T.check("no-such-user" in err, "with a message naming it", err)


# ------------------------------------------------------------ syslog

def syslog_lines(listener, until, seconds):
    """Datagrams read while the daemon runs (a reader that keeps up, as
    syslogd does), until one satisfies until() or seconds pass."""
    got = []
    listener.settimeout(0.1)
    end = time.monotonic() + seconds * SLOWDOWN
    while time.monotonic() < end and not any(until(g) for g in got):
        try:
            got.append(listener.recv(65536).decode("utf-8", "replace"))
        except socket.timeout:
            pass
    return got


async def syslog_to(address, listener, what):
    extra = "log syslog\nworkers 1" + (f"\nsyslog_address {address}" if address else "")
    d = Daemon(standard_config(extra=extra), name=f"syslog ({what})")
    opened = lambda g: "WebSocket opened" in g
    async with Client(d.port) as c:
        await c.ping_roundtrip(f"log syslog ({what}): the daemon serves")
        got = await asyncio.to_thread(syslog_lines, listener, opened, 10)
    pid = d.proc.pid
    d.stop()
    T.check("WebSocket opened" not in d.read_log(),
            f"log syslog ({what}): lifecycle lines no longer go to stderr", d.read_log()[-800:])
    line = next((g for g in got if opened(g)), "")
    # <30>: facility daemon (3), severity info (6); then "Mmm dd hh:mm:ss ".
    T.check(re.match(rf"<30>[A-Z][a-z][a-z] [ 0-9]\d \d\d:\d\d:\d\d myxid\[{pid}\]: ", line)
            is not None, f"log syslog ({what}): a lifecycle line arrives, as syslog() formats it, "
            f"tagged myxid[{pid}]", "\n".join(got[-5:]) or "(nothing arrived)")


@T.test
async def syslog():
    """log syslog: lines reach the syslog socket. The test is the syslog
    daemon: it binds the socket and reads while myxid runs; lines that never
    arrive fail it."""
    path = os.path.join(TMP, "syslog.sock")
    own = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    own.bind(path)
    try:
        await syslog_to(path, own, "syslog_address")
    finally:
        own.close()
    # The default, /dev/log, where the test may take it (root, no syslogd).
    if os.path.exists("/dev/log") or os.geteuid() != 0:
        print("# /dev/log belongs to the system (or not root): the default address "
              "is not checked here", flush=True)
        return
    dev = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dev.bind("/dev/log")
    try:
        await syslog_to(None, dev, "/dev/log")
    finally:
        dev.close()
        os.unlink("/dev/log")


T.run()
