#!/usr/bin/python3
"""
The MySQL/MariaDB plugin (plugins/sql/mysql.c, loaded as "auth mysql" and
"policy mysql") against a private MariaDB started by this program
(mariadb.py), with Authie's session table and the article's application
(authie_schema_mysql.sql):

- Authie's rules: valid, unknown, inactive, expired and idle sessions, the
  inactivity timeout, legacy plaintext tokens (legacy_tokens yes/no),
  non-ASCII and oversized tokens, columns as attributes;
- SQL injection through tokens and routing keys gets nowhere: the client
  only ever sees InvalidAuthentication / SubscriptionDenied, the tables are
  intact, and no token reaches the log;
- the deployment exchange's policy (a row means allowed) per membership;
- the loop stays responsive while a query sleeps, a slow query times out
  and its connection is replaced, a cancelled request is dropped cleanly;
- a thousand concurrent Authenticates are all answered correctly;
- the database killed (SIGKILL) and restarted: AuthUnavailable at once,
  authenticated sockets keep their subscriptions and deliveries, the pool
  reconnects; revocations are picked up by the periodic re-check;
- configuration mistakes are refused with their line (myxid -t).
"""
import asyncio
import hashlib
import os
import signal
import socket
import sys
import time
import uuid

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import (HERE, PLUGIN_DIR, PUBLISH_KEY, Client, Daemon, authenticated,
                       compact, delivered, error, free_port, publish, require,
                       prerequisite_missing, run_myxid, subscribed, unsubscribed)
from mariadb import MariaDB, MariaDBError, MariaDBSuite, require_mariadb, sql_string

require()
require_mariadb()
if not os.path.isfile(os.path.join(PLUGIN_DIR, "mysql.so")):
    prerequisite_missing(f"mysql.so in {PLUGIN_DIR} (configure found no libmariadb "
                         "with the non-blocking API?)")

T = MariaDBSuite()
SCHEMA = os.path.join(HERE, "authie_schema_mysql.sql")
try:
    DB = MariaDB().start()
    DB.setup(SCHEMA)
except (MariaDBError, OSError) as exc:
    T.check(False, "a private MariaDB starts", repr(exc))
    T.kill_servers()
    print(f"{T.passed} passed, {T.failed} failed", flush=True)
    sys.exit(1)

POLICY_QUERY = ("SELECT 1 FROM deployments d JOIN memberships m ON m.project_id = d.project_id "
                "WHERE d.uuid = {routing_key} AND m.user_id = {user_id}")
# Sleeps two seconds for the routing key "slow", answers at once otherwise.
SLEEPY_QUERY = "SELECT 1 FROM DUAL WHERE SLEEP(IF({routing_key} = 'slow', 2, 0)) = 0"


def sha(token):
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def conn_opts(indent="    ", port=None, extra=()):
    lines = ["host 127.0.0.1", f"port {port or DB.port}", f"user {DB.user}",
             f"password {DB.password}", f"database {DB.database}"] + list(extra)
    return "".join(f"{indent}{line}\n" for line in lines)


def policy_block(query, extra=(), port=None):
    q = f'        query "{query}"\n' if query is not None else ""
    return ("    policy mysql {\n" + conn_opts("        ", port, extra) + q + "    }\n")


def config(auth_extra=(), *, recheck="0", port=None, exchanges=None, workers=1):
    """The daemon: no answer cache (every request reaches the database),
    auth mysql, and the exchanges (default: deployment, sleepy, hasty).
    One event loop unless said otherwise, so that a Ping answered during a
    slow query proves that very loop is free."""
    if exchanges is None:
        exchanges = (
            "exchange deployment {\n" + policy_block(POLICY_QUERY, port=port) + "}\n"
            "exchange sleepy {\n" + policy_block(SLEEPY_QUERY, ["pool_size 2"], port) + "}\n"
            "exchange hasty {\n" +
            policy_block(SLEEPY_QUERY, ["pool_size 1", "query_timeout 500ms"], port) + "}\n")
    return (f"workers {workers}\n"
            f"publish_key {PUBLISH_KEY}\nmax_message_size 2m\nauth_timeout 5s\n"
            f"auth_cache 0\npolicy_cache 0\nrecheck_interval {recheck}\nlog_level info\n"
            "auth mysql {\n" + conn_opts(extra=auth_extra, port=port) + "}\n" + exchanges)


# ------------------------------------------------------------ test data

_sessions = []


def session_row(token, user_id, *, user_type="User", active=1,
                expires="UTC_TIMESTAMP() + INTERVAL 30 DAY",
                last_activity="UTC_TIMESTAMP()", legacy=False):
    """One authie_sessions row: Authie >= 3 keeps only the token's hash,
    Authie <= 2 (legacy) only the plain token."""
    return (f"({sql_string(token) if legacy else 'NULL'}, "
            f"{'NULL' if legacy else sql_string(sha(token))}, {user_id}, "
            f"{sql_string(user_type)}, {active}, {expires or 'NULL'}, "
            f"{last_activity or 'NULL'}, UTC_TIMESTAMP(), UTC_TIMESTAMP(), UTC_TIMESTAMP())")


def add_sessions(rows):
    DB.sql("INSERT INTO authie_sessions (token, token_hash, user_id, user_type, active, "
           "expires_at, last_activity_at, login_at, created_at, updated_at) VALUES\n" +
           ",\n".join(rows) + ";\n")


def add_session(token, user_id, **kw):
    add_sessions([session_row(token, user_id, **kw)])


PROJECT_A, PROJECT_B = 1, 2
DEP_A1, DEP_A2, DEP_B1 = (str(uuid.uuid4()) for _ in range(3))
DB.sql(f"""
INSERT INTO projects (id, name) VALUES ({PROJECT_A}, 'alpha'), ({PROJECT_B}, 'beta');
INSERT INTO deployments (uuid, project_id) VALUES
  ('{DEP_A1}', {PROJECT_A}), ('{DEP_A2}', {PROJECT_A}), ('{DEP_B1}', {PROJECT_B});
-- user 1 in alpha, user 2 in beta, user 3 in both, user 4 in alpha (re-check test)
INSERT INTO memberships (user_id, project_id) VALUES
  (1, {PROJECT_A}), (2, {PROJECT_B}), (3, {PROJECT_A}), (3, {PROJECT_B}), (4, {PROJECT_A});
""")
add_sessions([session_row("pol-u1", 1), session_row("pol-u2", 2), session_row("pol-u3", 3),
              session_row("rc-u4", 4)])

D = Daemon(config(), name="myxid")


def marker_free_log(d, marker="INJ"):
    return marker not in d.read_log()


# ------------------------------------------------------------ Authie's rules

SESSION_CASES = [
    # (token, row options or None for no row, expected reply builder, what)
    ("s-valid", dict(user_id=101), lambda t: authenticated("101", t, "User"),
     "a valid session (token_hash = SHA-256 of the token): Authenticated"),
    ("s-unknown", None, lambda t: error("InvalidAuthentication", t),
     "an unknown token: InvalidAuthentication"),
    ("s-inactive", dict(user_id=102, active=0), lambda t: error("InvalidAuthentication", t),
     "an invalidated session (active = 0): InvalidAuthentication"),
    ("s-expired", dict(user_id=103, expires="UTC_TIMESTAMP() - INTERVAL 1 MINUTE"),
     lambda t: error("InvalidAuthentication", t),
     "an expired persistent session: InvalidAuthentication"),
    ("s-persistent-old", dict(user_id=104, expires="UTC_TIMESTAMP() + INTERVAL 1 DAY",
                              last_activity="UTC_TIMESTAMP() - INTERVAL 3 DAY"),
     lambda t: authenticated("104", t, "User"),
     "a persistent session is not idle, however old its last activity"),
    ("s-idle", dict(user_id=105, expires=None,
                    last_activity="UTC_TIMESTAMP() - INTERVAL 13 HOUR"),
     lambda t: error("InvalidAuthentication", t),
     "a transient session idle for 13 h (> 12 h): InvalidAuthentication"),
    ("s-fresh", dict(user_id=106, expires=None,
                     last_activity="UTC_TIMESTAMP() - INTERVAL 11 HOUR"),
     lambda t: authenticated("106", t, "User"),
     "a transient session active 11 h ago: Authenticated"),
    ("s-never-active", dict(user_id=107, expires=None, last_activity=None),
     lambda t: authenticated("107", t, "User"),
     "a transient session without last activity never idles"),
    ("s-no-type", dict(user_id=108, user_type=None), lambda t: authenticated("108", t),
     "user_type NULL: Authenticated without a user_type"),
    ("s-admin", dict(user_id=109, user_type="Admin"), lambda t: authenticated("109", t, "Admin"),
     "the user type comes from the row"),
    ("s-bigint", dict(user_id=9007199254740993), lambda t: authenticated("9007199254740993", t, "User"),
     "a BIGINT user id past 2^53 arrives digit for digit"),
    ("s-legacy", dict(user_id=110, legacy=True), lambda t: error("InvalidAuthentication", t),
     "a legacy plaintext token with legacy_tokens off: InvalidAuthentication"),
]


def add_case_rows(cases):
    add_sessions([session_row(tok, **opts) for tok, opts, _, _ in cases if opts is not None])


add_case_rows(SESSION_CASES)


@T.test
async def authie_session_rules():
    for i, (token, _, want, what) in enumerate(SESSION_CASES):
        async with Client(D.port) as c:
            await c.send("Authenticate", {"session_id": token}, i)
            await c.expect(want(i), what)
    T.check(d_alive(D), "the daemon is fine")


def d_alive(d):
    return d.proc is not None and d.proc.poll() is None


LEGACY_CASES = [
    ("l-legacy", dict(user_id=201, legacy=True), lambda t: authenticated("201", t, "User"),
     "legacy_tokens yes: a plaintext token (Authie <= 2) authenticates"),
    ("l-hashed", dict(user_id=202), lambda t: authenticated("202", t, "User"),
     "legacy_tokens yes: hashed tokens still authenticate"),
    ("l-legacy-inactive", dict(user_id=203, legacy=True, active=0),
     lambda t: error("InvalidAuthentication", t),
     "legacy_tokens yes: the active flag still applies"),
    ("l-idle-40m", dict(user_id=204, expires=None,
                        last_activity="UTC_TIMESTAMP() - INTERVAL 40 MINUTE"),
     lambda t: error("InvalidAuthentication", t),
     "inactivity_timeout 30m: a transient session idle for 40 min is refused"),
    ("l-idle-10m", dict(user_id=205, expires=None,
                        last_activity="UTC_TIMESTAMP() - INTERVAL 10 MINUTE"),
     lambda t: authenticated("205", t, "User"),
     "inactivity_timeout 30m: one active 10 min ago is accepted"),
    ("l-\u043a\u043b\u044e\u0447-\U0001f511", dict(user_id=206, legacy=True),
     lambda t: authenticated("206", t, "User"),
     "a non-ASCII plaintext token (utf8mb4) authenticates"),
]
add_case_rows(LEGACY_CASES)


@T.test
async def legacy_tokens_and_inactivity_timeout():
    d = Daemon(config(["legacy_tokens yes", "inactivity_timeout 30m"]), name="legacy")
    for i, (token, _, want, what) in enumerate(LEGACY_CASES):
        async with Client(d.port) as c:
            await c.send("Authenticate", {"session_id": token}, i)
            await c.expect(want(i), what)
    async with Client(d.port) as c:
        await c.send("Authenticate", {"session_id": "L-LEGACY"}, "case")
        raw = await c.recv()
        T.check(raw in (compact(error("InvalidAuthentication", "case")),
                        compact(authenticated("201", "case", "User"))),
                "a case variant of a legacy token gets an ordinary answer "
                "(Authie on MySQL compares in the column's collation)", raw)
    d.stop()


NON_ASCII = [
    "\u043f\u0430\u0440\u043e\u043b\u044c-\U0001f511-\u043a\u043b\u044e\u0447",
    "caf\u00e9 \u2603 \u00a0nbsp",
    "\u4e2d\u6587\u4ee4\u724c\U00020000",
]


@T.test
async def non_ascii_and_oversized_tokens():
    add_sessions([session_row(tok, 300 + i) for i, tok in enumerate(NON_ASCII)] +
                 [session_row("x" * 8192, 399)])
    for i, tok in enumerate(NON_ASCII):
        async with Client(D.port) as c:
            await c.send("Authenticate", {"session_id": tok}, i)
            await c.expect(authenticated(str(300 + i), i, "User"),
                           f"non-ASCII token {i + 1} (hashed as UTF-8) authenticates")
    async with Client(D.port) as c:
        await c.send("Authenticate", {"session_id": "x" * 8192}, "8k")
        await c.expect(authenticated("399", "8k", "User"),
                       "a token of exactly 8 KiB authenticates")
    for size, label in ((8193, "8 KiB + 1 byte"), (1 << 20, "1 MiB")):
        async with Client(D.port) as c:
            await c.send("Authenticate", {"session_id": "x" * size}, label)
            await c.expect(error("InvalidAuthentication", label),
                           f"a {label} token: InvalidAuthentication", timeout=5)
            await c.ping_roundtrip(f"  the socket stays usable after the {label} token")


# ------------------------------------------------------------ injection

INJECTIONS = [
    "' OR '1'='1",
    "' OR 1=1 -- ",
    "\\' OR 1=1 -- ",
    "\\\\' OR 1=1 -- ",
    "' OR 1=1 #",
    "\" OR \"\"=\"",
    "'; DROP TABLE authie_sessions; -- ",
    "') OR ('a'='a",
    "' UNION SELECT 1, 'Admin' -- ",
    "1' AND SLEEP(3) -- ",
    "%", "_", "*", "?", "??", "\\", "'", "''", "\\'",
    "{token}", "{token_hash}", "{user_id}",
    "\u00bf' OR 1=1 -- ",          # the 0xbf27 trick, as UTF-8
    "\u00bf\\' OR 1=1 -- ",
    "\u5f27' OR 1=1 -- ",
    "\u8a5e\u5ba1' OR 1=1 #",
    "\u2019 OR 1=1 -- ",           # quotes that are not quotes
    "\u02bc OR 1=1 -- ",
    "\uff07 OR 1=1 -- ",
    "x\x1a' OR 1=1 -- ",
    "\t\r\n' OR 1=1 #",
    "/*!50000 ' OR 1=1 */",
]
# A marker in every string, looked for in the daemon's log afterwards.
INJECTIONS = [s + " INJ" for s in INJECTIONS]


@T.test(timeout=60)
async def injection_through_tokens():
    before = DB.query("SELECT COUNT(*) FROM authie_sessions")[0][0]
    d = Daemon(config(["legacy_tokens yes"]), name="inject")
    for daemon, label in ((D, "hashed"), (d, "legacy")):
        async with Client(daemon.port) as c:
            t0 = time.monotonic()
            for i, tok in enumerate(INJECTIONS):
                await c.send("Authenticate", {"session_id": tok}, i)
                await c.expect(error("InvalidAuthentication", i),
                               f"{label}: token {tok!r} is just a wrong token")
            T.check(time.monotonic() - t0 < 3.0,
                    f"{label}: no injected SLEEP ran", f"{time.monotonic() - t0:.1f}s")
    # A real session whose token is an attack string matches itself only.
    evil = "' OR 1=1 -- INJ"
    add_sessions([session_row(evil, 401), session_row(evil + "-legacy", 402, legacy=True)])
    async with Client(D.port) as c:
        await c.send("Authenticate", {"session_id": evil}, "e")
        await c.expect(authenticated("401", "e", "User"),
                       "a token that looks like SQL is compared as a value")
    async with Client(d.port) as c:
        await c.send("Authenticate", {"session_id": evil + "-legacy"}, "e")
        await c.expect(authenticated("402", "e", "User"),
                       "  also against the plaintext column")
    T.eq(DB.query("SELECT COUNT(*) FROM authie_sessions")[0][0], str(int(before) + 2),
         "the session table is intact")
    async with Client(D.port) as c:
        await c.send("Authenticate", {"session_id": "s-valid"}, "v")
        await c.expect(authenticated("101", "v", "User"), "valid tokens still work afterwards")
    d.stop()
    T.check(marker_free_log(D) and marker_free_log(d), "no token reached the daemon's log",
            [line for line in (D.read_log() + d.read_log()).splitlines() if "INJ" in line])


# ------------------------------------------------------------ policies

@T.test(timeout=60)
async def deployment_policy():
    async with Client(D.port, label="u1") as u1, Client(D.port, label="u2") as u2, \
            Client(D.port, label="u3") as u3, Client(D.port, label="anon") as anon:
        await u1.authenticate("pol-u1")
        await u2.authenticate("pol-u2")
        await u3.authenticate("pol-u3")
        await u1.send("Subscribe", {"exchange": "deployment", "routing_key": DEP_A1}, 1)
        await u1.expect(subscribed("deployment", DEP_A1, 1),
                        "a member of the project may follow its deployment")
        await u1.send("Subscribe", {"exchange": "deployment", "routing_key": DEP_B1}, 2)
        await u1.expect(error("SubscriptionDenied", 2, "deployment", DEP_B1),
                        "not a member of the project: SubscriptionDenied")
        unknown = str(uuid.uuid4())
        await u1.send("Subscribe", {"exchange": "deployment", "routing_key": unknown}, 3)
        await u1.expect(error("SubscriptionDenied", 3, "deployment", unknown),
                        "an unknown deployment: SubscriptionDenied")
        for i, key in enumerate((DEP_A2.upper(), DEP_A2 + " ", " " + DEP_A2)):
            await u1.send("Subscribe", {"exchange": "deployment", "routing_key": key}, f"v{i}")
            await u1.expect(error("SubscriptionDenied", f"v{i}", "deployment", key),
                            f"a variant of an allowed key ({key!r}) is not that key")
        await u2.send("Subscribe", {"exchange": "deployment", "routing_key": DEP_A1}, 1)
        await u2.expect(error("SubscriptionDenied", 1, "deployment", DEP_A1),
                        "user 2 (beta only) may not follow alpha's deployment")
        await u3.send("Subscribe", {"exchange": "deployment",
                                    "routing_keys": [DEP_A1, DEP_B1]}, 1)
        await u3.expect(subscribed("deployment", DEP_A1, 1), "user 3 (both): alpha's")
        await u3.expect(subscribed("deployment", DEP_B1, 1), "user 3 (both): beta's")
        await anon.send("Subscribe", {"exchange": "deployment", "routing_key": DEP_A1}, 1)
        await anon.expect(error("AuthRequired", 1, "deployment", DEP_A1),
                          "anonymous ({user_id} is NULL): AuthRequired")

        resp = await asyncio.to_thread(publish, D.port, "deployment", DEP_A1,
                                       "StatusChanged", {"status": "deployed"})
        T.eq(resp.status, 200, "POST /publish to alpha's deployment")
        want = delivered("StatusChanged", {"status": "deployed"}, "deployment", DEP_A1)
        await u1.expect(want, "user 1 receives it")
        await u3.expect(want, "user 3 receives it")
        await u2.expect_nothing("user 2 receives nothing")

        t0 = time.monotonic()
        for i, key in enumerate(INJECTIONS + [DEP_B1 + "' OR '1'='1", f"{DEP_B1}' -- ",
                                              "' OR m.user_id = m.user_id -- INJ"]):
            await u1.send("Subscribe", {"exchange": "deployment", "routing_key": key}, i)
            await u1.expect(error("SubscriptionDenied", i, "deployment", key),
                            f"routing key {key!r}: SubscriptionDenied")
        T.check(time.monotonic() - t0 < 3.0, "no injected SLEEP ran",
                f"{time.monotonic() - t0:.1f}s")
        await u1.send("ListSubscriptions", tag="l")
        await u1.expect({"event": "YourSubscriptions", "tag": "l",
                         "payload": {"subscriptions": {"deployment": [DEP_A1]}}},
                        "user 1 follows exactly what was allowed")
    T.check(marker_free_log(D), "no routing key of the attacks reached the log",
            [line for line in D.read_log().splitlines() if "INJ" in line])


@T.test
async def columns_become_attributes():
    query = ("SELECT user_id, user_type, CONCAT('proj-', user_id) AS projects, "
             "NULL AS nothing, 'x' AS `bad name` FROM authie_sessions "
             "WHERE token_hash = {token_hash} AND active = 1 LIMIT 1")
    exchanges = "exchange attrs {\n    policy static {\n        allow attribute projects\n    }\n}\n"
    d = Daemon(config([f'query "{query}"'], exchanges=exchanges), name="attrs")
    async with Client(d.port) as c:
        await c.send("Authenticate", {"session_id": "s-admin"}, "a")
        await c.expect(authenticated("109", "a", "Admin"),
                       "a query of one's own: first column the user id, user_type the type")
        await c.send("Subscribe", {"exchange": "attrs", "routing_key": "proj-109"}, 1)
        await c.expect(subscribed("attrs", "proj-109", 1),
                       "another column became an attribute a policy can read")
        await c.send("Subscribe", {"exchange": "attrs", "routing_key": "proj-1"}, 2)
        await c.expect(error("SubscriptionDenied", 2, "attrs", "proj-1"),
                       "  with the row's value, not another")
    d.stop()
    T.check("bad name" in d.read_log() and "not a usable attribute name" in d.read_log(),
            "a column whose name cannot be an attribute is named in a warning", d.read_log())


# ------------------------------------------------------------ the loop

@T.test
async def loop_stays_responsive_during_a_slow_query():
    async with Client(D.port, label="slow") as slow, Client(D.port, label="pinger") as pinger, \
            Client(D.port, label="other") as other:
        await slow.authenticate("pol-u1")
        t0 = time.monotonic()
        await slow.send("Subscribe", {"exchange": "sleepy", "routing_key": "slow"}, "s")
        await asyncio.sleep(0.1)
        worst = 0.0
        for i in range(8):
            t = time.monotonic()
            await pinger.send("Ping", tag=i)
            await pinger.expect_pong(i, f"ping {i + 1} during the 2 s query")
            worst = max(worst, time.monotonic() - t)
            await asyncio.sleep(0.15)
        T.check(worst < 0.1, "every Ping answered within 100 ms", f"worst {worst * 1000:.0f} ms")
        t = time.monotonic()
        await other.send("Authenticate", {"session_id": "pol-u2"}, "a")
        await other.expect(authenticated("2", "a", "User"), "an Authenticate meanwhile")
        T.check(time.monotonic() - t < 0.5, "  is answered at once (its own pool)",
                f"{time.monotonic() - t:.3f}s")
        t = time.monotonic()
        await other.send("Subscribe", {"exchange": "sleepy", "routing_key": "fast"}, "f")
        await other.expect(subscribed("sleepy", "fast", "f"),
                           "a quick query on the same exchange (second connection)")
        T.check(time.monotonic() - t < 0.5, "  is not queued behind the slow one",
                f"{time.monotonic() - t:.3f}s")
        await slow.expect(subscribed("sleepy", "slow", "s"), "the slow query answers",
                          timeout=5)
        took = time.monotonic() - t0
        T.check(1.8 <= took < 4.0, "  after about 2 s", f"{took:.2f}s")


@T.test
async def query_timeout_drops_the_connection():
    async with Client(D.port) as c:
        await c.authenticate("pol-u1")
        t0 = time.monotonic()
        await c.send("Subscribe", {"exchange": "hasty", "routing_key": "slow"}, "s")
        await c.expect(error("PolicyUnavailable", "s", "hasty", "slow"),
                       "a query past query_timeout (500 ms): PolicyUnavailable")
        took = time.monotonic() - t0
        T.check(0.4 <= took < 1.5, "  after about 500 ms", f"{took:.2f}s")
        await c.send("Subscribe", {"exchange": "hasty", "routing_key": "fast"}, "f")
        await c.expect(subscribed("hasty", "fast", "f"),
                       "the next query runs on a new connection", timeout=5)
    T.check("query timed out after 500 ms" in D.read_log(), "the timeout is logged")


@T.test
async def cancelled_requests_are_dropped():
    # sleepy has two connections: two slow queries run, a third waits.
    clients = [Client(D.port, label=f"c{i}") for i in range(3)]
    for c in clients:
        await c.connect()
        await c.authenticate("pol-u1")
        await c.send("Subscribe", {"exchange": "sleepy", "routing_key": "slow"}, "s")
    await asyncio.sleep(0.3)
    for c in clients:
        c.ws.transport.abort()          # gone while running / waiting
    await asyncio.sleep(2.5)
    async with Client(D.port) as c:
        await c.authenticate("pol-u1")
        await c.send("Subscribe", {"exchange": "sleepy", "routing_key": "fast"}, "f")
        await c.expect(subscribed("sleepy", "fast", "f"),
                       "after cancelled requests the exchange answers normally")
    log = D.read_log()
    T.check("twice" not in log and "after cancel" not in log,
            "no answer came for a cancelled request", log[-3000:])
    T.check(d_alive(D), "the daemon is fine")


@T.test(timeout=90)
async def a_thousand_concurrent_authenticates():
    n_users, n_sockets, per_socket = 50, 100, 10
    add_sessions([session_row(f"bulk-{i}", 5000 + i) for i in range(n_users)])
    # Two event loops, so two plugin instances with a pool each.
    d = Daemon(config(workers=2), name="bulk")
    clients = [Client(d.port, label=f"bulk{i}") for i in range(n_sockets)]
    await asyncio.gather(*(c.connect() for c in clients))
    plan = {}
    t0 = time.monotonic()

    async def drive(k, c):
        expected = []
        for j in range(per_socket):
            n = k * per_socket + j
            if n % 2 == 0:
                token, want = f"bulk-{(n // 2) % n_users}", \
                    authenticated(str(5000 + (n // 2) % n_users), n, "User")
            else:
                token, want = f"bulk-nope-{n}", error("InvalidAuthentication", n)
            await c.send("Authenticate", {"session_id": token}, n)
            await c.send("Deauthenticate", tag=f"d{n}")
            expected += [compact(want), compact({"event": "Deauthenticated", "tag": f"d{n}", "payload": {}})]
        got = [await c.recv(timeout=30) for _ in expected]
        plan[k] = (got, expected)

    await asyncio.gather(*(drive(k, c) for k, c in enumerate(clients)))
    took = time.monotonic() - t0
    bad = [(k, g, e) for k, (gs, es) in plan.items() for g, e in zip(gs, es) if g != e]
    T.check(not bad, f"{n_sockets * per_socket} Authenticates over {n_sockets} sockets "
            "all answered correctly", bad[:5])
    print(f"# {n_sockets * per_socket} Authenticates in {took:.2f}s "
          f"({n_sockets * per_socket / took:.0f}/s)", flush=True)
    await asyncio.gather(*(c.close() for c in clients))
    d.stop()


@T.test
async def a_failing_query_is_an_error():
    # Fails when run (not when prepared): a subquery with two rows.
    query = ("SELECT 1 FROM DUAL WHERE {routing_key} IS NOT NULL "
             "AND 1 = (SELECT 1 UNION ALL SELECT 2)")
    exchanges = "exchange broken {\n" + policy_block(query, ["pool_size 1"]) + "}\n"
    d = Daemon(config(exchanges=exchanges), name="broken")
    async with Client(d.port) as c:
        await c.authenticate("pol-u1")
        for i in range(3):
            key = f"k{i}' OR 'x INJ"
            await c.send("Subscribe", {"exchange": "broken", "routing_key": key}, i)
            await c.expect(error("PolicyUnavailable", i, "broken", key),
                           f"a query that fails: PolicyUnavailable ({i + 1})")
    d.stop()
    log = d.read_log()
    T.check("query failed: [1242]" in log, "the server's error is logged as the reason", log)
    T.check("connection 1 closed" not in log, "  and the connection is kept", log)
    T.check(marker_free_log(d), "  without the routing key", log)


@T.test
async def reload_while_a_query_runs():
    async with Client(D.port, label="slow") as slow, Client(D.port, label="other") as other:
        await slow.authenticate("pol-u1")
        await slow.send("Subscribe", {"exchange": "sleepy", "routing_key": "slow"}, "s")
        await asyncio.sleep(0.3)
        D.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while "configuration reloaded" not in D.read_log() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        T.check("configuration reloaded" in D.read_log(), "SIGHUP: the configuration reloads")
        await other.send("Authenticate", {"session_id": "pol-u2"}, "a")
        await other.expect(authenticated("2", "a", "User"),
                           "the new instances answer (they connect on their own)")
        await slow.expect(subscribed("sleepy", "slow", "s"),
                          "the query that ran across the reload is still answered", timeout=5)
        await slow.ping_roundtrip("the socket is fine")
    T.check(d_alive(D), "the daemon is fine")


# ------------------------------------------------------------ configuration

def check_config(body, what, want_rc, want_text, name="bad.conf"):
    path = os.path.join(T.mkdtemp(), name)
    with open(path, "w") as f:
        f.write(f"listen 127.0.0.1:{free_port()}\n" + body)
    rc, out, err = run_myxid(["-t", "-c", path, "-P", PLUGIN_DIR])
    T.eq(rc, want_rc, what)
    T.check(want_text in err, f"  the message says {want_text!r}", err)
    return err


@T.test
def configuration_mistakes():
    base = "auth mysql {\n" + conn_opts()
    check_config(base + "    colour blue\n}\n", "an unknown option is refused", 1,
                 "bad.conf:8: mysql: unknown option \"colour\"")
    check_config(base + "    unix_socket /tmp/x.sock\n}\n", "host and unix_socket: refused",
                 1, "give host or unix_socket, not both")
    check_config(base.replace("    port", "    port 0\n    #") + "}\n",
                 "port 0 is refused", 1, "port must be 1 to 65535")
    check_config("auth mysql {\n    host 127.0.0.1\n}\n", "a missing user is refused", 1,
                 "user is required")
    check_config(base + '    query "SELECT user_id FROM t WHERE token = ?"\n}\n',
                 "a raw ? placeholder is refused", 1, "placeholder ?")
    err = check_config(base.replace("host 127.0.0.1", "host localhost") + "}\n",
                       "a host name is accepted", 0, "is a name, not an IP address")
    T.check(DB.password not in err, "  the password is not printed", err)


@T.test
async def database_down_at_start():
    closed = free_port()
    exchanges = "exchange deployment {\n" + policy_block(POLICY_QUERY, port=closed) + "}\n"
    d = Daemon(config(port=closed, exchanges=exchanges), name="nodb")
    await asyncio.sleep(0.3)
    async with Client(d.port) as c:
        t0 = time.monotonic()
        await c.send("Authenticate", {"session_id": "s-valid"}, "a")
        await c.expect(error("AuthUnavailable", "a"), "no database: AuthUnavailable")
        T.check(time.monotonic() - t0 < 0.5, "  at once, not after auth_timeout",
                f"{time.monotonic() - t0:.3f}s")
        await c.send("Subscribe", {"exchange": "deployment", "routing_key": DEP_A1}, "s")
        await c.expect(error("PolicyUnavailable", "s", "deployment", DEP_A1),
                       "  and a policy: PolicyUnavailable")
    d.stop()
    T.check("unavailable" in d.read_log(), "the outage is logged", d.read_log())
    # A policy block without a query is refused when the config is loaded.
    conf = os.path.join(T.mkdtemp(), "myxid.conf")
    with open(conf, "w") as f:
        f.write("listen 127.0.0.1:1\nexchange noquery {\n" + policy_block(None) + "}\n")
    rc, out, err = run_myxid(["-t", "-c", conf, "-P", PLUGIN_DIR])
    T.check(rc == 1 and "query is required" in err,
            "a policy block without a query: myxid -t refuses it", err)


@T.test
async def a_silent_server_times_out():
    # Accepts TCP connections (the kernel does, into the backlog) but never
    # says a word: every attempt ends at connect_timeout.
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    port = silent.getsockname()[1]
    try:
        d = Daemon(config(["connect_timeout 500ms"], port=port, exchanges=""), name="silent")
        async with Client(d.port) as c:
            t0 = time.monotonic()
            await c.send("Authenticate", {"session_id": "s-valid"}, "a")
            await c.expect(error("AuthUnavailable", "a"),
                           "a server that never answers: AuthUnavailable", timeout=4)
            took = time.monotonic() - t0
            T.check(took < 1.5, "  once connect_timeout (500 ms) has passed, not auth_timeout",
                    f"{took:.2f}s")
            t0 = time.monotonic()
            await c.send("Authenticate", {"session_id": "s-valid"}, "b")
            await c.expect(error("AuthUnavailable", "b"), "  and at once afterwards")
            T.check(time.monotonic() - t0 < 0.5, "  (the outage is known)",
                    f"{time.monotonic() - t0:.2f}s")
        d.stop()
        T.check("no connection within 500 ms" in d.read_log(), "the timeout is logged",
                d.read_log())
    finally:
        silent.close()


# ------------------------------------------------------------ outages

@T.test(timeout=60)
async def revocation_by_periodic_recheck():
    d = Daemon(config(recheck="1s"), name="recheck")
    async with Client(d.port) as c:
        await c.authenticate("rc-u4")
        await c.send("Subscribe", {"exchange": "deployment",
                                   "routing_keys": [DEP_A1, DEP_A2]}, "s")
        await c.expect(subscribed("deployment", DEP_A1, "s"), "setup: subscribed A1")
        await c.expect(subscribed("deployment", DEP_A2, "s"), "setup: subscribed A2")
        await c.expect_nothing("nothing changes while nothing changes", timeout=1.5)
        DB.sql(f"DELETE FROM memberships WHERE user_id = 4 AND project_id = {PROJECT_A}")
        got = {await c.recv(timeout=4), await c.recv(timeout=4)}
        T.eq(got, {compact(unsubscribed("deployment", k, None, auto=True))
                   for k in (DEP_A1, DEP_A2)},
             "membership removed: both subscriptions dropped by the re-check (auto)")
        await c.send("Subscribe", {"exchange": "deployment", "routing_key": DEP_A1}, "t")
        await c.expect(error("SubscriptionDenied", "t", "deployment", DEP_A1),
                       "  and refused when asked again")
        DB.sql("UPDATE authie_sessions SET active = 0 WHERE token_hash = "
               f"{sql_string(sha('rc-u4'))}")
        await c.expect(compact({"event": "Error", "tag": None,
                                "payload": {"error": "SessionExpired"}}),
                       "the session invalidated: Error SessionExpired", timeout=4)
    d.stop()


@T.test(timeout=120)
async def database_killed_and_restarted():
    d = Daemon(config(["connect_timeout 2s"]), name="outage")
    add_sessions([session_row("outage-fresh", 601), session_row("outage-later", 602)])
    async with Client(d.port, label="kept") as kept:
        await kept.authenticate("pol-u1")
        await kept.send("Subscribe", {"exchange": "deployment", "routing_key": DEP_A1}, "s")
        await kept.expect(subscribed("deployment", DEP_A1, "s"), "setup: subscribed")

        DB.kill()
        worst = 0.0
        for i in range(5):
            async with Client(d.port) as c:
                t0 = time.monotonic()
                await c.send("Authenticate", {"session_id": "outage-fresh"}, f"t{i}")
                await c.expect(compact({"event": "Error", "tag": f"t{i}",
                                        "payload": {"error": "AuthUnavailable"}}),
                               f"database down: Authenticate {i + 1} -> AuthUnavailable")
                worst = max(worst, time.monotonic() - t0)
        T.check(worst < 0.5, "  each answered at once", f"worst {worst * 1000:.0f} ms")

        resp = await asyncio.to_thread(publish, d.port, "deployment", DEP_A1, "Still",
                                       {"n": 1})
        T.eq(resp.status, 200, "POST /publish during the outage")
        await kept.expect(delivered("Still", {"n": 1}, "deployment", DEP_A1),
                          "an authenticated socket keeps its subscription and deliveries")
        await kept.send("Subscribe", {"exchange": "deployment", "routing_key": DEP_A2}, "p")
        await kept.expect(error("PolicyUnavailable", "p", "deployment", DEP_A2),
                          "a new subscription during the outage: PolicyUnavailable")
        await kept.ping_roundtrip("the socket is fine")
        await asyncio.sleep(1.5)          # a few reconnect attempts fail
        async with Client(d.port) as c:
            t0 = time.monotonic()
            await c.send("Authenticate", {"session_id": "outage-fresh"}, "later")
            await c.expect(error("AuthUnavailable", "later"),
                           "still down 1.5 s later: AuthUnavailable")
            T.check(time.monotonic() - t0 < 0.5, "  at once",
                    f"{time.monotonic() - t0:.3f}s")

        DB.start()
        t0 = time.monotonic()
        ok = False
        while time.monotonic() - t0 < 20 and not ok:
            async with Client(d.port) as c:
                await c.send("Authenticate", {"session_id": "outage-later"}, "back")
                raw = await c.recv(timeout=6)
            ok = raw == compact(authenticated("602", "back", "User"))
            if not ok:
                await asyncio.sleep(0.2)
        T.check(ok, "database back: Authenticate works again", raw)
        print(f"# authenticated again {time.monotonic() - t0:.1f}s after the restart",
              flush=True)
        # Each instance reconnects on its own backoff (at most 5 s).
        t1 = time.monotonic()
        while True:
            await kept.send("Subscribe", {"exchange": "deployment", "routing_key": DEP_A2}, "q")
            raw = await kept.recv(timeout=6)
            if raw != compact(error("PolicyUnavailable", "q", "deployment", DEP_A2)) or \
                    time.monotonic() - t1 > 15:
                break
            await asyncio.sleep(0.2)
        T.eq(raw, compact(subscribed("deployment", DEP_A2, "q")), "  and so do policies")
        resp = await asyncio.to_thread(publish, d.port, "deployment", DEP_A1, "After",
                                       {"n": 2})
        await kept.expect(delivered("After", {"n": 2}, "deployment", DEP_A1),
                          "  the old subscription still delivers")
    d.stop()
    log = d.read_log()
    T.check("unavailable" in log and "reachable again" in log,
            "the outage and the recovery are logged", log[-3000:])


T.run()
