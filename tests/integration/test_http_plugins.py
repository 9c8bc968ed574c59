#!/usr/bin/python3
"""
The http plugin ("auth http", "policy http"; plugins/http/http.c) against a
small real application (tests/integration/http_app.py, Python's
http.server on loopback) that answers from a table and can be made slow,
wrong or absent:

- allow, deny (401/403), no opinion (204: the next auth plugin decides);
  integer user ids; attributes; the exact documents POSTed (token, socket
  id, address, Origin, configured headers, the bearer token);
- policies: allowed, denied, anonymous, the attributes sent, odd statuses;
- malformed answers (bad JSON, trailing bytes, wrong types, empty, huge,
  redirects, 500, a closed connection) -> AuthUnavailable and a clear log
  line, never a crash; chunked and close-delimited bodies are fine;
- a slow application: AuthUnavailable after the plugin's timeout, the
  loop answering Pings meanwhile;
- the application down, then restarted: AuthUnavailable at once,
  authenticated sockets carry on, and the plugin comes back by itself;
- keep-alive: 200 sequential Authenticates over at most pool_size TCP
  connections (counted by the application);
- 1,000 concurrent Authenticates over 100 sockets;
- the answer cache applies to the plugin's answers unchanged;
- https with a throwaway CA (verified), an unknown CA and a certificate
  for another name (refused, and logged);
- configuration errors found by "myxid -t";
- the bearer token and the users' tokens never appear in any log.
"""
import asyncio
import ctypes
import errno
import http.client
import json
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import (HERE, PLUGIN_DIR, SLOWDOWN, Client, Daemon, Suite, authenticated, compact,
                       error, free_port, prerequisite_missing, publish, delivered,
                       require, run_myxid, subscribed, unsubscribed)

require()
if not os.path.isfile(os.path.join(PLUGIN_DIR, "http.so")):
    prerequisite_missing(f"http.so in {PLUGIN_DIR}")
T = Suite()

RUN = secrets.token_hex(4)
SECRET = "bearer-" + secrets.token_urlsafe(24)


def tok(name):
    return f"{name}-{RUN}"


# ------------------------------------------------------------ the application

def die_with_parent():
    """In the child: SIGKILL when the test program dies, however it dies."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG


class App:
    """http_app.py on a fixed loopback port; restartable."""

    def __init__(self, tls=None, keepalive_timeout=None):
        self.port = free_port()
        self.tls = tls            # (cert, key, ca) or None
        self.keepalive_timeout = keepalive_timeout
        self.proc = None
        self.settings = {}

    def start(self):
        cmd = [sys.executable, os.path.join(HERE, "http_app.py"), "--port", str(self.port)]
        if self.tls:
            cmd += ["--cert", self.tls[0], "--key", self.tls[1]]
        if self.keepalive_timeout:
            cmd += ["--keepalive-timeout", str(self.keepalive_timeout)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     preexec_fn=die_with_parent)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("READY"):
            raise RuntimeError(f"http_app did not start: {line!r}")
        if self.settings:
            self.config(**self.settings)
        return self

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None:
            self.proc.stdout.close()
        self.proc = None

    def _call(self, method, path, body=None):
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.tls[2])
            ctx.check_hostname = False
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=5, context=ctx)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request(method, path, body=None if body is None else json.dumps(body),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            return json.loads(r.read())
        finally:
            conn.close()

    def config(self, **settings):
        """Merge settings; they survive a restart."""
        self.settings.update(settings)
        return self._call("POST", "/_config", settings)

    def stats(self):
        return self._call("GET", "/_stats")

    def reset(self):
        return self._call("POST", "/_reset", {})

    @property
    def base(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"


APPS = []


def new_app(**kw):
    app = App(**kw).start()
    APPS.append(app)
    return app


ALICE = {"user_id": "1", "user_type": "User",
         "attributes": {"deployments": "d1,d2", "n": 7, "admin": False, "none": None}}
TOKENS = {
    tok("alice"): {"json": ALICE},
    tok("int"): {"json": {"user_id": 42}},
    tok("401"): {"status": 401},
    tok("403"): {"status": 403, "raw": '{"error":"revoked"}'},
    tok("204"): {"status": 204},
    "demo-bob": {"status": 204},      # no opinion: auth static knows bob
    tok("chunked"): {"chunked": ['{"user_id"', ':"77",', '"user_type":null}']},
    tok("nolength"): {"no_length": '{"user_id":"78"}'},
    tok("slow"): {"json": {"user_id": "5"}, "delay": 2.5},
}
BAD_ANSWERS = [
    ("badjson", {"raw": "{not json"}, "answer is not valid JSON"),
    ("trailing", {"raw": '{"user_id":"1"} x'}, "answer is not valid JSON"),
    ("booluid", {"json": {"user_id": True}}, '"user_id" is not a string or an integer'),
    ("nouid", {"json": {"name": "x"}}, 'answer has no "user_id"'),
    ("emptyuid", {"json": {"user_id": ""}}, '"user_id" is empty'),
    ("array", {"json": [1, 2]}, "answer is not a JSON object"),
    ("attrsarray", {"json": {"user_id": "1", "attributes": [1]}}, '"attributes" is not an object'),
    ("attrobject", {"json": {"user_id": "1", "attributes": {"a": {"b": 1}}}},
     "an attribute value is not a string, number or boolean"),
    ("attrname", {"json": {"user_id": "1", "attributes": {"bad name": "x"}}},
     "an attribute name is not usable"),
    ("typenum", {"json": {"user_id": "1", "user_type": 5}}, '"user_type" is not a string or null'),
    ("empty", {"status": 200, "raw": ""}, "answer is empty"),
    ("huge", {"huge": 200000}, "body over the size limit (max_body)"),
    ("redirect", {"redirect": "http://127.0.0.1:1/auth"},
     "the application answered a redirect (302); redirects are not followed"),
    ("500", {"status": 500, "raw": "oops"}, "the application answered status 500"),
    ("close", {"close": True}, "connection closed without a response"),
]
for name, answer, _ in BAD_ANSWERS:
    TOKENS[tok(name)] = answer
BULK = {tok(f"bulk{i}"): 1000 + i for i in range(200)}
for t, uid in BULK.items():
    TOKENS[t] = {"json": {"user_id": str(uid), "user_type": "User"}}
PERMISSIONS = {"1": ["deployment/d1"], "": ["deployment/open"]}

APP = new_app()
APP.config(tokens=TOKENS, permissions=PERMISSIONS)


# ------------------------------------------------------------ the daemons

def auth_block(app, opts=(), path="/auth"):
    lines = [f"url {app.base}{path}", f"bearer_token {SECRET}"] + list(opts)
    return "auth http {\n" + "".join(f"    {x}\n" for x in lines) + "}\n"


def config(app=APP, auth_opts=("pool_size 4", "timeout 1s"), top=None, policy_opts=(),
           static=True):
    settings = {"workers": "1", "auth_timeout": "5s", "auth_cache": "0",
                "policy_cache": "0", "recheck_interval": "0", "log_level": "info",
                "publish_key": "demo-publish-key", "max_actions_per_second": "0"}
    settings.update(top or {})
    text = "".join(f"{k} {v}\n" for k, v in settings.items())
    text += auth_block(app, auth_opts)
    if static:
        text += "auth static {\n    tokens_file tokens\n}\n"
    popts = [f"url {app.base}/policy", f"bearer_token {SECRET}", "send_attribute deployments",
             "send_attribute missing", "pool_size 2"] + list(policy_opts)
    if not any(o.startswith("timeout ") for o in policy_opts):
        popts.append("timeout 1s")
    text += ("exchange deployment {\n    policy http {\n" +
             "".join(f"        {x}\n" for x in popts) + "    }\n}\n")
    text += "exchange public {\n    policy static {\n        allow public\n    }\n}\n"
    return text


D = Daemon(config(auth_opts=["pool_size 4", "timeout 1s",
                             'header "X-Myxid-Node: test-node"',
                             "send_header Cookie", "send_header X-Not-Sent",
                             "send_header X-Not-Kept"],
                  top={"plugin_header": "Cookie\nplugin_header X-Not-Sent"}), name="http")


async def auth_answer(port, token, tag="a", timeout=5.0):
    async with Client(port) as c:
        await c.send("Authenticate", {"session_id": token}, tag)
        return await c.recv(timeout)


def last_request(app):
    s = app.stats()
    return s["bodies"][-1], s["headers"][-1]


# ------------------------------------------------------------ auth

@T.test
async def allow_deny_and_no_opinion():
    cases = [
        (tok("alice"), authenticated("1", 1, "User"), "200 with an identity: Authenticated"),
        (tok("int"), authenticated("42", 2), "an integer user_id becomes text; no user_type"),
        (tok("401"), error("InvalidAuthentication", 3), "401: InvalidAuthentication"),
        (tok("403"), error("InvalidAuthentication", 4), "403: InvalidAuthentication"),
        (tok("unknown"), error("InvalidAuthentication", 5), "the app's 403 for an unknown token"),
        ("demo-bob", authenticated("2", 6), "204: no opinion; auth static (next in the chain) knows bob"),
        (tok("204"), error("InvalidAuthentication", 7), "204 and nobody else knows it: refused"),
        (tok("chunked"), authenticated("77", 8), "a chunked answer; user_type null"),
        (tok("nolength"), authenticated("78", 9), "an answer delimited by the close"),
    ]
    for token, want, what in cases:
        T.eq(await auth_answer(D.port, token, want["tag"]), compact(want), what)


@T.test
async def the_authenticate_document():
    async with Client(D.port, origin="https://app.example",
                      extra_headers={"Cookie": "sid=s3cr3t; theme=dark",
                                     "X-Not-Kept": "the daemon does not keep it"}) as c:
        await c.send("Authenticate", {"session_id": tok("alice")}, "x")
        await c.expect(authenticated("1", "x", "User"), "setup: authenticated")
        body, headers = last_request(APP)
        host, port = c.ws.local_address[:2]
        T.eq(body, {"action": "authenticate", "token": tok("alice"), "socket_id": c.id,
                    "remote_addr": f"{host}:{port}", "client_ip": host,
                    "origin": "https://app.example",
                    "headers": {"Cookie": "sid=s3cr3t; theme=dark", "X-Not-Sent": None,
                                "X-Not-Kept": None}},
             "the POSTed document: token, socket id, client address, Origin, and the "
             "send_header headers the daemon keeps (plugin_header), null when absent")
        T.eq(headers.get("Authorization"), f"Bearer {SECRET}", "the bearer token identifies myxid")
        T.eq(headers.get("X-Myxid-Node"), "test-node", "a configured header is sent")
        T.eq(headers.get("Content-Type"), "application/json", "Content-Type: application/json")
        T.eq(headers.get("Host"), f"127.0.0.1:{APP.port}", "Host is the url's")
        T.eq(headers.get("Content-Length"), str(len(compact(body).encode())),
             "Content-Length; the document is compact JSON")


@T.test
async def bad_answers_are_errors():
    for i, (name, _, reason) in enumerate(BAD_ANSWERS):
        T.eq(await auth_answer(D.port, tok(name), i), compact(error("AuthUnavailable", i)),
             f"{name}: AuthUnavailable")
    await asyncio.sleep(0.2)
    log = D.read_log()
    for name, _, reason in BAD_ANSWERS:
        T.check(reason in log, f"{name}: the log says why ({reason})", log[-3000:])
    async with Client(D.port) as c:
        await c.authenticate(tok("alice"))
        await c.ping_roundtrip("the daemon and the pool are fine afterwards")


@T.test
async def one_retry_on_a_reused_connection():
    APP.reset()
    T.eq(await auth_answer(D.port, tok("alice"), 1), compact(authenticated("1", 1, "User")),
         "setup: a keep-alive connection is open")
    T.eq(await auth_answer(D.port, tok("close"), 2), compact(error("AuthUnavailable", 2)),
         "the application closes without answering, twice: AuthUnavailable")
    bodies = [b["token"] for b in APP.stats()["bodies"]]
    T.eq(bodies, [tok("alice"), tok("close"), tok("close")],
         "closed unanswered on a reused connection: sent once more, on a new one, and no more")
    T.eq(APP.stats()["connections"], 2, "(the reused connection and the new one)")
    T.eq(await auth_answer(D.port, tok("alice"), 3), compact(authenticated("1", 3, "User")),
         "the pool is fine afterwards")


@T.test(timeout=30)
async def slow_application_times_out():
    async with Client(D.port, label="slow") as a, Client(D.port, label="pinger") as b:
        t0 = time.monotonic()
        await a.send("Authenticate", {"session_id": tok("slow")}, "s")
        rtts = []
        for i in range(8):
            t1 = time.monotonic()
            await b.ping_roundtrip(f"ping {i} while the application is slow", tag=f"p{i}")
            rtts.append(time.monotonic() - t1)
            await asyncio.sleep(0.05)
        T.check(max(rtts) < 0.1, "the loop answers Pings within 100 ms meanwhile",
                f"{[round(x * 1000, 1) for x in rtts]} ms")
        await a.expect(error("AuthUnavailable", "s"), "past the plugin's timeout: AuthUnavailable")
        took = time.monotonic() - t0
        T.check(0.9 <= took < 1.8, "after about timeout (1s)", f"{took:.2f}s")
        await b.send("Authenticate", {"session_id": tok("alice")}, "n")
        await b.expect(authenticated("1", "n", "User"), "the next Authenticate is answered")
    T.check("no answer within 1000 ms" in D.read_log(), "the timeout is logged",
            D.read_log()[-2000:])


@T.test(timeout=30)
async def cancel_in_flight():
    """Clients that leave while their request is in flight (the daemon
    cancels it: the plugin drops the transfer at once), and while requests
    wait for a connection: nothing is answered to anyone, the daemon and
    the pool go on."""
    APP.reset()
    leavers = [await Client(D.port, label=f"leaver{i}").connect() for i in range(6)]
    for i, c in enumerate(leavers):       # pool_size 4: two of them wait
        await c.send("Authenticate", {"session_id": tok("slow")}, i)
    await asyncio.sleep(0.3)
    await asyncio.gather(*[c.close() for c in leavers])
    async with Client(D.port) as c:
        await c.ping_roundtrip("the daemon answers after the cancels")
    T.eq(await auth_answer(D.port, tok("alice"), "after"),
         compact(authenticated("1", "after", "User")), "and the plugin too")
    before = len(D.read_log())
    await asyncio.sleep(1.2)              # past the plugin's timeout (1s)
    T.check("no answer within" not in D.read_log()[before:],
            "no cancelled request times out later: they are gone", D.read_log()[before:])


# ------------------------------------------------------------ policy

@T.test
async def policy_allow_deny_and_document():
    async with Client(D.port, label="alice") as alice, Client(D.port, label="anon") as anon:
        await alice.authenticate(tok("alice"))
        await alice.send("Subscribe", {"exchange": "deployment", "routing_key": "d1"}, 1)
        await alice.expect(subscribed("deployment", "d1", 1), "200: Subscribed")
        body, headers = last_request(APP)
        host, port = alice.ws.local_address[:2]
        T.eq(body, {"action": "subscribe", "exchange": "deployment", "routing_key": "d1",
                    "socket_id": alice.id, "remote_addr": f"{host}:{port}", "client_ip": host,
                    "origin": None,
                    "user": {"user_id": "1", "user_type": "User",
                             "attributes": {"deployments": "d1,d2"}}},
             "the POSTed document: exchange, key, the user and the attributes asked for")
        T.eq(headers.get("Authorization"), f"Bearer {SECRET}", "the policy sends the bearer token")
        await alice.send("Subscribe", {"exchange": "deployment", "routing_key": "d3"}, 2)
        await alice.expect(error("SubscriptionDenied", 2, "deployment", "d3"), "403: SubscriptionDenied")
        for i, (code, what) in enumerate([(500, "500"), (302, "a redirect"), (204, "204"),
                                          (404, "404")]):
            key = f"status-{code}"
            await alice.send("Subscribe", {"exchange": "deployment", "routing_key": key}, key)
            await alice.expect(error("PolicyUnavailable", key, "deployment", key),
                               f"{what}: PolicyUnavailable")
        await anon.send("Subscribe", {"exchange": "deployment", "routing_key": "d1"}, 3)
        await anon.expect(error("AuthRequired", 3, "deployment", "d1"),
                          "anonymous and refused: AuthRequired")
        T.eq(last_request(APP)[0]["user"], None, "anonymous: \"user\": null")
        await anon.send("Subscribe", {"exchange": "deployment", "routing_key": "open"}, 4)
        await anon.expect(subscribed("deployment", "open", 4), "the app may allow anonymous users")
    T.check("the application answered status 500" in D.read_log(), "the 500 is logged")


# ------------------------------------------------------------ keep-alive and load

@T.test(timeout=60)
async def keep_alive_reuse():
    APP.reset()
    async with Client(D.port) as c:
        for i in range(200):
            await c.send("Authenticate", {"session_id": tok("alice")}, i)
            await c.send("Deauthenticate", tag=f"d{i}")
            raw = await c.recv()
            if raw != compact(authenticated("1", i, "User")):
                T.check(False, f"Authenticate {i}", raw)
                break
            await c.recv()
    s = APP.stats()
    T.eq(s["requests"], 200, "200 sequential Authenticates reach the application")
    T.check(1 <= s["connections"] <= 4, "over at most pool_size (4) TCP connections",
            f"{s['connections']} connections")
    print(f"# 200 sequential Authenticates: {s['connections']} TCP connection(s)", flush=True)


@T.test(timeout=120)
async def thousand_concurrent_authenticates():
    d = Daemon(config(auth_opts=["pool_size 4", "timeout 20s"], top={"auth_timeout": "30s"}),
               name="load")
    APP.reset()
    n_sockets, per_socket = 100, 10
    tokens = list(BULK.items())
    clients = await asyncio.gather(*[Client(d.port, label=f"c{i}").connect()
                                     for i in range(n_sockets)])
    expected = {}
    t0 = time.monotonic()
    for i, c in enumerate(clients):
        batch = []
        for j in range(per_socket):
            k = i * per_socket + j
            if k % 5 == 4:
                token, want = tok(f"nope{k}"), error("InvalidAuthentication", k)
            else:
                token, uid = tokens[k % len(tokens)]
                want = authenticated(str(uid), k, "User")
            expected[k] = compact(want)
            batch.append(compact({"action": "Authenticate", "tag": k,
                                  "payload": {"session_id": token}}))
            batch.append(compact({"action": "Deauthenticate", "tag": f"d{k}"}))
        for text in batch:
            await c.send_raw(text)

    async def collect(c):
        got = {}
        for _ in range(2 * per_socket):
            msg = json.loads(raw := await c.recv(60))
            if msg.get("event") != "Deauthenticated":
                got[msg.get("tag")] = raw
        return got

    answers = {}
    for r in await asyncio.gather(*[collect(c) for c in clients]):
        answers.update(r)
    took = time.monotonic() - t0
    wrong = [(k, answers.get(k), want) for k, want in expected.items() if answers.get(k) != want]
    T.check(not wrong, f"all {len(expected)} Authenticates answered correctly "
            f"({n_sockets} sockets, pool_size 4)", repr(wrong[:5]))
    s = APP.stats()
    T.eq(s["requests"], 1000, "each reached the application once")
    T.check(s["connections"] <= 4, "over at most 4 connections", f"{s['connections']}")
    print(f"# 1000 concurrent Authenticates in {took:.2f}s ({1000 / took:.0f}/s) over "
          f"{s['connections']} connection(s)", flush=True)
    await asyncio.gather(*[c.close() for c in clients])
    d.stop()


@T.test
async def answer_cache_applies():
    d = Daemon(config(top={"auth_cache": "60s"}), name="cache")
    APP.reset()
    for i in range(3):
        T.eq(await auth_answer(d.port, tok("alice"), i), compact(authenticated("1", i, "User")),
             f"Authenticate {i + 1}")
    T.eq(APP.stats()["requests"], 1, "auth_cache: the application is asked once")
    d.stop()


# ------------------------------------------------------------ outage

@T.test(timeout=40)
async def application_down_and_back():
    app = new_app()
    app.config(tokens=TOKENS, permissions=PERMISSIONS)
    d = Daemon(config(app=app), name="outage")
    async with Client(d.port, label="old") as old:
        await old.authenticate(tok("alice"))
        await old.send("Subscribe", {"exchange": "public", "routing_key": "news"}, "s")
        await old.expect(subscribed("public", "news", "s"), "setup: subscribed")
        app.kill()
        for i in range(3):
            t0 = time.monotonic()
            T.eq(await auth_answer(d.port, tok("alice"), i), compact(error("AuthUnavailable", i)),
                 f"application down: AuthUnavailable ({i + 1})")
            T.check(time.monotonic() - t0 < 0.5, "... at once (connection refused)",
                    f"{time.monotonic() - t0:.2f}s")
        await old.ping_roundtrip("the authenticated socket carries on")
        r = publish(d.port, "public", "news", "Flash", {"n": 1})
        T.eq(r.status, 200, "publish during the outage")
        await old.expect(delivered("Flash", {"n": 1}, "public", "news"),
                         "... and the old socket receives it")
        log = d.read_log()
        T.check(re.search(r"upstream 127\.0\.0\.1:\d+ unreachable: connect: Connection refused", log),
                "the outage is logged once, clearly", log[-2000:])
        app.start()
        T.eq(await auth_answer(d.port, tok("alice"), "b"), compact(authenticated("1", "b", "User")),
             "the application restarted: Authenticate works again")
        await old.send("Subscribe", {"exchange": "deployment", "routing_key": "d1"}, "p")
        await old.expect(subscribed("deployment", "d1", "p"), "so does the policy")
    T.check("reachable again" in d.read_log(), "the recovery is logged", d.read_log()[-1500:])
    d.stop()
    app.kill()


# ------------------------------------------------------------ addresses

class HostsDaemon(Daemon):
    """A daemon that sees its own /etc/hosts: unshare(1) gives it a private
    user and mount namespace in which hosts_path is bind-mounted there."""

    def __init__(self, conf, hosts_path, **kw):
        self.hosts_path = hosts_path
        super().__init__(conf, **kw)

    def command(self):
        return (UNSHARE + [self.hosts_path]) + super().command()


UNSHARE = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
           'mount --bind "$0" /etc/hosts && exec "$@"']


def can_unshare():
    try:
        return subprocess.run(UNSHARE + ["/etc/hosts", "true"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@T.test(timeout=30 * SLOWDOWN)
async def every_address_is_tried():
    """A name with two addresses, the first refusing (::1: the application
    listens on 127.0.0.1 only): the request goes to the second."""
    if not can_unshare():
        print("# SKIP every_address_is_tried: unshare --user --mount is not allowed here, "
              "and /etc/hosts is not ours to change", flush=True)
        return
    hosts = os.path.join(T.mkdtemp(), "hosts")
    with open(hosts, "w") as f:
        f.write("::1 multi.test\n127.0.0.1 multi.test\n")
    order = subprocess.run(UNSHARE + [hosts, "getent", "ahosts", "multi.test"],
                           capture_output=True, text=True).stdout.split()
    T.check(order[:1] == ["::1"], "setup: multi.test resolves to ::1 first", order)
    T.check("127.0.0.1" in order, "setup: ... and to 127.0.0.1", order)
    with socket.socket(socket.AF_INET6) as probe:
        T.eq(probe.connect_ex(("::1", APP.port)), errno.ECONNREFUSED,
             "setup: the application's port refuses on ::1")
    APP.reset()
    conf = config().replace(f"url {APP.base}/auth",
                            f"url http://multi.test:{APP.port}/auth")
    d = HostsDaemon(conf, hosts, name="two-addresses")
    for i in range(3):
        T.eq(await auth_answer(d.port, tok("alice"), i), compact(authenticated("1", i, "User")),
             f"multi.test: Authenticated through the second address ({i + 1})")
    s = APP.stats()
    T.eq(s["requests"], 3, "the application got the three requests")
    T.eq(s["headers"][-1].get("Host"), f"multi.test:{APP.port}", "Host is the url's name")
    T.check("unreachable" not in d.read_log(), "no outage is logged", d.read_log()[-1500:])
    d.stop()


# ------------------------------------------------------------ https

def make_certs(dirpath):
    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, cwd=dirpath,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "otherca"):
        run("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2",
            "-subj", f"/CN=myxid test {ca}")
    for name, san, ca in (("server", "IP:127.0.0.1", "ca"),
                          ("wrongname", "DNS:other.example", "ca"),
                          ("foreign", "IP:127.0.0.1", "otherca")):
        with open(os.path.join(dirpath, f"{name}.ext"), "w") as f:
            f.write(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n")
        run("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")
    return {n: (os.path.join(dirpath, f"{n}.pem"), os.path.join(dirpath, f"{n}.key"),
                os.path.join(dirpath, "otherca.pem" if n == "foreign" else "ca.pem"))
            for n in ("server", "wrongname", "foreign")}


@T.test(timeout=60 * SLOWDOWN)
async def https_upstreams():
    certs = make_certs(T.mkdtemp())
    ca = certs["server"][2]
    good = new_app(tls=certs["server"])
    good.config(tokens=TOKENS, permissions=PERMISSIONS)
    slow = 3.0 * SLOWDOWN     # TLS handshakes under valgrind take seconds
    # libcurl loads the CA store and does the handshake within the connect
    # time (connect_timeout, 1s by default): under valgrind that is seconds.
    ct = f"connect_timeout {2 * SLOWDOWN}s"
    d = Daemon(config(app=good, auth_opts=["pool_size 2", f"timeout {2 * SLOWDOWN}s", ct,
                                           f"ca_file {ca}"],
                      policy_opts=[f"ca_file {ca}", f"timeout {2 * SLOWDOWN}s", ct]), name="https")
    async with Client(d.port) as c:
        await c.send("Authenticate", {"session_id": tok("alice")}, 1)
        await c.expect(authenticated("1", 1, "User"), "https with the CA in ca_file: Authenticated",
                       timeout=slow)
        await c.send("Subscribe", {"exchange": "deployment", "routing_key": "d1"}, 2)
        await c.expect(subscribed("deployment", "d1", 2), "... and the policy over https too",
                       timeout=slow)
    APP_CONNS = good.stats()["connections"]
    T.check(APP_CONNS == 2, "one TLS connection each for the auth and the policy",
            f"{APP_CONNS}")
    d.stop()

    # The system store (144 CAs) is loaded when the first https connection
    # opens: ~40 ms natively, seconds under valgrind, on the loop.
    system = Daemon(config(app=good, auth_opts=[f"timeout {4 * SLOWDOWN}s",
                                                f"connect_timeout {4 * SLOWDOWN}s"],
                           top={"auth_timeout": f"{5 * SLOWDOWN}s"}),
                    name="https-system-ca")
    T.eq(await auth_answer(system.port, tok("alice"), 3, 6.0 * SLOWDOWN),
         compact(error("AuthUnavailable", 3)),
         "a CA that is not trusted (the system store): AuthUnavailable")
    system.stop()
    # libcurl's words (OpenSSL's verify result behind "SSL certificate problem").
    T.check("certificate verification failed: SSL certificate problem: unable to get local "
            "issuer certificate" in system.read_log(), "the log says the certificate was not verified",
            system.read_log()[-1500:])
    good.kill()

    for name, reason in (("wrongname", "certificate verification failed: SSL: no alternative "
                          "certificate subject name matches target host name '127.0.0.1'"),
                         ("foreign", "certificate verification failed: SSL certificate problem: "
                          "unable to get local issuer certificate")):
        bad = new_app(tls=certs[name])
        bad.config(tokens=TOKENS)
        d = Daemon(config(app=bad, auth_opts=[f"timeout {2 * SLOWDOWN}s", ct,
                                                     f"ca_file {ca}"]),
                   name=name)
        T.eq(await auth_answer(d.port, tok("alice"), name, slow),
             compact(error("AuthUnavailable", name)),
             f"{name}: AuthUnavailable")
        d.stop()
        T.check(reason in d.read_log(), f"{name}: logged ({reason})", d.read_log()[-1500:])
        bad.kill()


@T.test(timeout=40 * SLOWDOWN)
async def periodic_recheck_asks_the_app_again():
    """The daemon's periodic re-check works through the http plugin as
    through any: a permission the app withdraws drops that subscription,
    a session the app revokes ends in SessionExpired."""
    app = new_app()
    tokens = {tok("rc"): {"json": {"user_id": "9", "user_type": "User"}}}
    app.config(tokens=tokens, permissions={"9": ["deployment/r1", "deployment/r2"]})
    d = Daemon(config(app=app, top={"recheck_interval": "1s"}), name="http-recheck")
    async with Client(d.port) as c:
        await c.authenticate(tok("rc"))
        for k in ("r1", "r2"):
            await c.send("Subscribe", {"exchange": "deployment", "routing_key": k}, k)
            await c.expect(subscribed("deployment", k, k), f"setup: subscribed to {k}")
        app.config(permissions={"9": ["deployment/r1"]})
        await c.expect(unsubscribed("deployment", "r2", None, auto=True),
                       "the app withdraws r2: Unsubscribed (auto) at the next re-check",
                       timeout=4 * SLOWDOWN)
        app.config(tokens={})
        await c.expect(compact({"event": "Error", "tag": None,
                                "payload": {"error": "SessionExpired"}}),
                       "the app revokes the session: Error SessionExpired",
                       timeout=4 * SLOWDOWN)
        await c.expect(unsubscribed("deployment", "r1", None, auto=True),
                       "  and its last subscription is dropped", timeout=2 * SLOWDOWN)
    d.stop()
    app.kill()


# ------------------------------------------------------------ configuration

def check_config(what, block, want_err):
    dirpath = T.mkdtemp()
    conf = os.path.join(dirpath, "myxid.conf")
    with open(conf, "w") as f:
        f.write("listen 127.0.0.1:1\n" + block)
    rc, _, err = run_myxid(["-t", "-c", conf, "-P", PLUGIN_DIR])
    if want_err is None:
        T.eq(rc, 0, f"{what}: accepted")
        return
    T.eq(rc, 1, f"{what}: refused")
    T.check(want_err in err, f"{what}: the message says so", err)


@T.test(timeout=20 * SLOWDOWN)
def configuration_errors():
    def auth(*lines):
        return "auth http {\n" + "".join(f"    {x}\n" for x in lines) + "}\n"
    check_config("a good block", auth("url http://127.0.0.1:9/auth", "timeout 500ms"), None)
    check_config("no url", auth("timeout 1s"), "url is required")
    check_config("ftp url", auth("url ftp://127.0.0.1/"), "url must start with http:// or https://")
    check_config("credentials in the url", auth("url http://u:p@127.0.0.1/"),
                 "no credentials in the url")
    check_config("bad port", auth("url http://127.0.0.1:99999/"), "bad port in the url")
    check_config("timeout 0", auth("url http://127.0.0.1/", "timeout 0"), "timeout wants a time")
    check_config("pool_size 0", auth("url http://127.0.0.1/", "pool_size 0"),
                 "pool_size wants a number from 1 to 256")
    check_config("url twice", auth("url http://127.0.0.1/", "url http://127.0.0.1/"),
                 "url given twice")
    check_config("unknown option", auth("url http://127.0.0.1/", "bogus 1"),
                 'unknown option "bogus"')
    check_config("send_attribute in an auth block",
                 auth("url http://127.0.0.1/", "send_attribute a"),
                 "send_attribute belongs in a policy block")
    check_config("a header with a line break is impossible; a bad header name",
                 auth("url http://127.0.0.1/", 'header "Bad Name: x"'), "header wants")
    check_config("a missing ca_file", auth("url https://127.0.0.1/", "ca_file /nonexistent.pem"),
                 "/nonexistent.pem")


# ------------------------------------------------------------ secrets

@T.test
def secrets_never_logged():
    D.stop()
    leaked = []
    for d in T.all_daemons:
        log = d.read_log()
        for token in [SECRET] + list(TOKENS):
            if token.endswith(RUN) or token == SECRET:
                if token in log:
                    leaked.append((d.name, token))
    T.check(not leaked, "neither the bearer token nor any user token is in any daemon log",
            repr(leaked[:5]))
    T.check(len(T.all_daemons) >= 6, "(several daemons' logs were searched)")


try:
    T.run()
finally:
    for a in APPS:
        a.kill()
