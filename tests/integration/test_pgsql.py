#!/usr/bin/python3
"""
The PostgreSQL plugin (plugins/sql/pgsql.c) against a real, private PostgreSQL
15 cluster (tests/integration/pgsql.py) holding Authie's authie_sessions
and the article's projects / memberships / deployments
(tests/integration/authie_schema.sql):

- Authie's default session query: hashed, unknown, inactive, expired, idle
  and fresh transient sessions, persistent sessions, legacy plaintext
  tokens (legacy_tokens yes/no), inactivity_timeout, non-ASCII and very
  long tokens; a custom query's extra columns become attributes;
- SQL injection through tokens and routing keys: denied, and the client
  never sees SQL (nor does the log see the token);
- the deployment policy: a row per membership allows, none denies, and
  changes in the database count at once (no cache);
- the loop stays responsive while queries are slow (pg_sleep); query
  timeout, queue_max and cancellation;
- 1000 concurrent Authenticates over 100 sockets with pool_size 4;
- configuration errors found by "myxid -t";
- the database killed and restarted: AuthUnavailable / PolicyUnavailable at
  once, subscriptions and deliveries kept, then the plugin reconnects.
"""
import asyncio
import hashlib
import json
import os
import secrets
import signal
import sys
import time
import uuid

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import (PLUGIN_DIR, PUBLISH_KEY, Client, Daemon, authenticated, compact,
                       delivered, error, publish, require, run_myxid, subscribed)
from pgsql import AUTHIE_SCHEMA, PgCluster, PgSuite, require_pgsql, sql_literal

require()
require_pgsql()
T = PgSuite()

# ------------------------------------------------------------ the data

RUN = secrets.token_hex(4)
NOW = "(now() AT TIME ZONE 'UTC')"


def tok(name):
    return f"{name}-{RUN}-{secrets.token_urlsafe(24)}"


# name: (token, user_id, user_type, active, expires_at, last_activity_at, stored as)
SESSIONS = {
    "valid": (tok("valid"), 1, "User", True, f"{NOW} + interval '30 days'", NOW, "hash"),
    "fresh": (tok("fresh"), 2, "User", True, "NULL", f"{NOW} - interval '1 hour'", "hash"),
    "no_activity": (tok("noact"), 3, "Admin", True, "NULL", "NULL", "hash"),
    "inactive": (tok("inactive"), 4, "User", False, f"{NOW} + interval '30 days'", NOW, "hash"),
    "expired": (tok("expired"), 5, "User", True, f"{NOW} - interval '1 minute'", NOW, "hash"),
    "idle": (tok("idle"), 6, "User", True, "NULL", f"{NOW} - interval '13 hours'", "hash"),
    "persistent_old": (tok("persist"), 7, "User", True, f"{NOW} + interval '1 day'",
                       f"{NOW} - interval '3 days'", "hash"),
    "legacy": (tok("legacy"), 8, "User", True, "NULL", NOW, "plain"),
    "unicode": ("ünïcödé-токен-🔑-" + RUN, 9, "User", True, "NULL", NOW, "hash"),
    "unicode_legacy": ("légacy-ключ-🗝-" + RUN, 10, "User", True, "NULL", NOW, "plain"),
    "long": ("L" * 8000 + secrets.token_hex(96), 11, "User", True, "NULL", NOW, "hash"),
    "no_type": (tok("notype"), 12, None, True, "NULL", NOW, "hash"),
    "hour_idle": (tok("houridle"), 13, "User", True, "NULL", f"{NOW} - interval '1 hour'", "hash"),
    "member_b": (tok("memberb"), 2, "User", True, "NULL", NOW, "hash"),
    # Sessions for the outage test: never used before it (no cache anyway).
    "outage_1": (tok("out1"), 21, "User", True, "NULL", NOW, "hash"),
    "outage_2": (tok("out2"), 22, "User", True, "NULL", NOW, "hash"),
    "outage_3": (tok("out3"), 23, "User", True, "NULL", NOW, "hash"),
    "after_outage": (tok("after"), 24, "User", True, "NULL", NOW, "hash"),
}
assert len(SESSIONS["long"][0]) == 8192
BULK = [(tok(f"bulk{i}"), 1000 + i) for i in range(200)]


def sha(token):
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def session_row(token, user_id, user_type, active, expires, activity, stored):
    hashed, plain = (sql_literal(sha(token)), "NULL") if stored == "hash" else \
        ("NULL", sql_literal(token))
    utype = sql_literal(user_type) if user_type else "NULL"
    return (f"({plain}, {hashed}, {user_id}, {utype}, {'true' if active else 'false'}, "
            f"{expires}, {activity}, {NOW}, {NOW})")


DEPLOYMENTS = {name: str(uuid.uuid4()) for name in ("a1", "a2", "b1", "c1")}
DEPLOYMENT_QUERY = ("SELECT 1 FROM deployments d JOIN memberships m ON m.project_id = "
                    "d.project_id WHERE d.uuid = {routing_key} AND m.user_id::text = {user_id}")


def load_fixtures(pg):
    pg.load(AUTHIE_SCHEMA)
    rows = [session_row(*s) for s in SESSIONS.values()]
    rows += [session_row(t, uid, "User", True, "NULL", NOW, "hash") for t, uid in BULK]
    pg.sql("INSERT INTO authie_sessions (token, token_hash, user_id, user_type, active, "
           "expires_at, last_activity_at, created_at, updated_at) VALUES\n" +
           ",\n".join(rows) + ";\n"
           "INSERT INTO projects (id, name) VALUES (1, 'alpha'), (2, 'beta'), (3, 'gamma');\n"
           "INSERT INTO memberships (user_id, project_id) VALUES (1, 1), (2, 2), (21, 1);\n"
           "INSERT INTO deployments (uuid, project_id) VALUES " +
           ", ".join(f"({sql_literal(u)}, {p})" for u, p in
                     ((DEPLOYMENTS["a1"], 1), (DEPLOYMENTS["a2"], 1),
                      (DEPLOYMENTS["b1"], 2), (DEPLOYMENTS["c1"], 3))) + ";\n"
           # The daemon's role reads, and nothing else.
           f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {PG.user};\n")


PG = PgCluster()
PG.start()
load_fixtures(PG)


def token_of(name):
    return SESSIONS[name][0]


# ------------------------------------------------------------ the daemons

def plugin_block(kind_line, opts, indent="", conninfo=None):
    ci = conninfo or PG.conf_conninfo()
    body = "".join(f"{indent}    {line}\n" for line in [f"conninfo {ci}"] + list(opts))
    return f"{indent}{kind_line} {{\n{body}{indent}}}\n"


def exchange(name, query, opts=()):
    lines = [f'query "{query}"'] if query is not None else []
    return (f"exchange {name} {{\n" +
            plugin_block("policy pgsql", lines + list(opts), indent="    ") + "}\n")


SLOW_QUERY = ("SELECT 1 FROM pg_sleep(CASE WHEN {routing_key} LIKE 'slow%' THEN 2 ELSE 0 END) "
              "WHERE {routing_key} <> 'deny'")


def daemon_accepts(line):
    """Does this myxid know the top-level directive line?"""
    path = os.path.join(T.mkdtemp(), "probe.conf")
    with open(path, "w") as f:
        f.write(f"listen 127.0.0.1:1\n{line}\n")
    return run_myxid(["-t", "-c", path, "-P", PLUGIN_DIR])[0] == 0


# One event loop, so one instance of each plugin: pool_size and queue_max
# mean what the tests expect. (A daemon with several has an instance, a
# pool and a queue per loop; thousand_concurrent_authenticates uses two.)
MULTI_WORKERS = daemon_accepts("workers 2")


def config(auth_opts=(), top=None, exchanges=None, auth=True):
    """The daemon's configuration: the answer cache and the re-check are
    off (so that every request reaches the plugin) unless top says
    otherwise."""
    settings = {"publish_key": PUBLISH_KEY, "max_message_size": "2m", "auth_timeout": "5s",
                "auth_cache": "0", "policy_cache": "0", "recheck_interval": "0",
                "log_level": "info"}
    if MULTI_WORKERS:
        settings["workers"] = "1"
    settings.update(top or {})
    text = "".join(f"{k} {v}\n" for k, v in settings.items())
    if auth:
        text += plugin_block("auth pgsql", auth_opts)
    if exchanges is None:
        exchanges = (exchange("deployment", DEPLOYMENT_QUERY) +
                     exchange("slow", SLOW_QUERY, ["pool_size 2"]))
    return text + exchanges


def authed(name, tag):
    _, uid, utype = SESSIONS[name][:3]
    return authenticated(str(uid), tag, utype)


D = Daemon(config(), name="pgsql")


async def auth_answer(port, token, tag="a", timeout=5.0):
    async with Client(port) as c:
        await c.send("Authenticate", {"session_id": token}, tag)
        return await c.recv(timeout)


# ------------------------------------------------------------ Authie sessions

AUTHIE_CASES = [
    ("valid", True, "a persistent session found by token_hash"),
    ("fresh", True, "a transient session active an hour ago"),
    ("no_activity", True, "a transient session without last_activity_at never idles"),
    ("persistent_old", True, "a persistent session is not checked for inactivity"),
    ("no_type", True, "a session without user_type: no user_type in the answer"),
    ("hour_idle", True, "idle for an hour: within the default 12 h"),
    ("inactive", False, "active = false is refused"),
    ("expired", False, "expires_at in the past is refused"),
    ("idle", False, "a transient session idle for 13 h is refused"),
    ("legacy", False, "a plaintext (Authie 2) token is refused without legacy_tokens"),
    ("unicode_legacy", False, "a non-ASCII plaintext token is refused without legacy_tokens"),
]


@T.test
async def authie_default_query():
    for i, (name, ok, what) in enumerate(AUTHIE_CASES):
        want = authed(name, i) if ok else error("InvalidAuthentication", i)
        T.eq(await auth_answer(D.port, token_of(name), i), compact(want), what)
    T.eq(await auth_answer(D.port, tok("unknown"), "u"),
         compact(error("InvalidAuthentication", "u")), "an unknown token is refused")
    # The hash itself is not a token.
    T.eq(await auth_answer(D.port, sha(token_of("valid")), "h"),
         compact(error("InvalidAuthentication", "h")), "the token's hash is not a token")


@T.test
async def session_changes_count_at_once():
    token = tok("changing")
    PG.sql("INSERT INTO authie_sessions (token_hash, user_id, user_type, active) VALUES "
           f"({sql_literal(sha(token))}, 77, 'User', true)")
    T.eq(await auth_answer(D.port, token, 1), compact(authenticated("77", 1, "User")),
         "a session created a moment ago is found")
    PG.sql(f"UPDATE authie_sessions SET active = false WHERE token_hash = {sql_literal(sha(token))}")
    T.eq(await auth_answer(D.port, token, 2), compact(error("InvalidAuthentication", 2)),
         "once invalidated (active = false) it is refused")


@T.test
async def legacy_tokens_and_inactivity_timeout():
    d = Daemon(config(auth_opts=["legacy_tokens yes", "inactivity_timeout 30m"]),
               name="legacy")
    cases = [
        ("legacy", True, "legacy_tokens yes: a plaintext token is found"),
        ("unicode_legacy", True, "legacy_tokens yes: a non-ASCII plaintext token too"),
        ("valid", True, "legacy_tokens yes: hashed tokens still work"),
        ("fresh", False, "inactivity_timeout 30m: idle for an hour is refused"),
        ("hour_idle", False, "inactivity_timeout 30m: so is this one"),
        ("no_activity", True, "inactivity_timeout 30m: no last_activity_at still passes"),
        ("expired", False, "legacy_tokens yes: an expired session stays refused"),
        ("long", True, "legacy_tokens yes: an 8192-byte token is also compared with "
         "the varchar(255) token column without an error"),
    ]
    for i, (name, ok, what) in enumerate(cases):
        want = authed(name, i) if ok else error("InvalidAuthentication", i)
        T.eq(await auth_answer(d.port, token_of(name), i), compact(want), what)
    d.stop()


@T.test
async def non_ascii_and_long_tokens():
    T.eq(await auth_answer(D.port, token_of("unicode"), "u"), compact(authed("unicode", "u")),
         "a non-ASCII token is hashed over its UTF-8 bytes and found")
    T.eq(await auth_answer(D.port, "ünknöwn-токен-🔑", "v"),
         compact(error("InvalidAuthentication", "v")), "an unknown non-ASCII token is refused")
    T.eq(await auth_answer(D.port, token_of("long"), "l"), compact(authed("long", "l")),
         "an 8192-byte token (the longest the daemon passes on) is found")
    T.eq(await auth_answer(D.port, "x" * 8193, "x"), compact(error("InvalidAuthentication", "x")),
         "an 8193-byte token is refused")
    T.eq(await auth_answer(D.port, "y" * (1 << 20), "m"), compact(error("InvalidAuthentication", "m")),
         "a 1 MiB token is refused")


@T.test
async def custom_query_columns_become_attributes():
    query = ("SELECT user_id::text AS uid, 'Member' AS user_type, "
             f"'{DEPLOYMENTS['c1']},' || user_id AS deployments, NULL AS nothing, 42 "
             "FROM authie_sessions WHERE token_hash = {token_hash} AND active")
    exchanges = ("exchange byattr {\n    policy static {\n        allow attribute deployments\n"
                 "    }\n}\n")
    d = Daemon(config(auth_opts=[f'query "{query}"'], exchanges=exchanges), name="attrs")
    async with Client(d.port) as c:
        await c.send("Authenticate", {"session_id": token_of("valid")}, 1)
        await c.expect(authenticated("1", 1, "Member"),
                       "the first column is the user id; user_type is the type")
        await c.send("Subscribe", {"exchange": "byattr", "routing_key": DEPLOYMENTS["c1"]}, 2)
        await c.expect(subscribed("byattr", DEPLOYMENTS["c1"], 2),
                       "another column became an attribute a policy can use")
        await c.send("Subscribe", {"exchange": "byattr", "routing_key": "1"}, 3)
        await c.expect(subscribed("byattr", "1", 3), "... with its whole value")
    d.stop()
    log = d.read_log()
    T.check("no usable name" in log and '"?column?"' in log,
            "an unnamed column is skipped, with a warning", log[-2000:])


# ------------------------------------------------------------ SQL injection

INJECTIONS = [
    "' OR '1'='1",
    "' OR 1=1 --",
    "x'; DROP TABLE authie_sessions; --",
    "'); DELETE FROM memberships; --",
    "\\'; SELECT pg_sleep(10); --",
    "$1",
    "{token}",
    "' UNION SELECT '1', 'User' --",
    "1; UPDATE authie_sessions SET active = true",
    "\" OR \"\"=\"",
]


def sessions_fingerprint():
    return PG.sql("SELECT count(*), count(*) FILTER (WHERE active), "
                  "md5(string_agg(id || ':' || active, ',' ORDER BY id)) FROM authie_sessions")


@T.test
async def sql_injection_tokens():
    before = sessions_fingerprint()
    d = Daemon(config(auth_opts=["legacy_tokens yes"]), name="inject")
    for i, token in enumerate(INJECTIONS):
        T.eq(await auth_answer(d.port, token, i), compact(error("InvalidAuthentication", i)),
             f"token {token!r} is just an unknown token")
    d.stop()
    T.eq(sessions_fingerprint(), before, "the sessions table is untouched")


@T.test
async def sql_injection_routing_keys():
    async with Client(D.port) as c:
        await c.authenticate(token_of("valid"))
        for i, key in enumerate(INJECTIONS + [DEPLOYMENTS["a1"] + "' OR '1'='1"]):
            await c.send("Subscribe", {"exchange": "deployment", "routing_key": key}, i)
            await c.expect(error("SubscriptionDenied", i, "deployment", key),
                           f"routing key {key!r} is denied")
    T.eq(PG.sql("SELECT count(*) FROM memberships").strip(), "3", "memberships untouched")


@T.test
async def query_errors_leak_nothing():
    # A query that casts the token: a token that is no number makes the
    # server fail with a message quoting the value.
    query = ("SELECT user_id::text FROM authie_sessions WHERE user_id = CAST({token} AS bigint) "
             "AND token_hash = {token_hash}")
    d = Daemon(config(auth_opts=[f'query "{query}"']), name="errors")
    secret = "s3cr3t-" + RUN + "-'; DROP TABLE x; --"
    T.eq(await auth_answer(d.port, secret, "e"), compact(error("AuthUnavailable", "e")),
         "a query error is AuthUnavailable for the client, nothing more")
    d.stop()
    log = d.read_log()
    T.check("22P02" in log and "invalid input syntax" in log,
            "the log says what the server said", log[-2000:])
    T.check(secret not in log and sha(secret) not in log,
            "the token (and its hash) are cut out of the logged message", log[-2000:])
    T.check("[token]" in log, "where the token was, the log says [token]", log[-2000:])


# ------------------------------------------------------------ the policy

@T.test
async def deployment_policy_follows_memberships():
    a1, a2, b1, c1 = (DEPLOYMENTS[k] for k in ("a1", "a2", "b1", "c1"))
    async with Client(D.port, label="alice") as alice, Client(D.port, label="bob") as bob, \
            Client(D.port, label="anon") as anon:
        await alice.authenticate(token_of("valid"))        # user 1: project alpha
        await bob.authenticate(token_of("member_b"))       # user 2: project beta
        cases = [
            (alice, a1, True, "a member may follow her project's deployment"),
            (alice, a2, True, "... and the project's other deployment"),
            (alice, b1, False, "not another project's"),
            (alice, str(uuid.uuid4()), False, "nor an unknown deployment"),
            (bob, b1, True, "bob follows beta's deployment"),
            (bob, a1, False, "but not alpha's"),
        ]
        for i, (c, key, ok, what) in enumerate(cases):
            await c.send("Subscribe", {"exchange": "deployment", "routing_key": key}, i)
            want = subscribed("deployment", key, i) if ok else \
                error("SubscriptionDenied", i, "deployment", key)
            await c.expect(want, what)
        await anon.send("Subscribe", {"exchange": "deployment", "routing_key": a1}, "n")
        await anon.expect(error("AuthRequired", "n", "deployment", a1),
                          "anonymous: no row for a NULL user id (AuthRequired)")

        r = publish(D.port, "deployment", a1, "DeploymentUpdated", {"state": "running"})
        T.eq(r.status, 200, "publish to a deployment")
        await alice.expect(delivered("DeploymentUpdated", {"state": "running"}, "deployment", a1),
                           "the member receives it")
        await bob.expect_nothing("bob does not")

        PG.sql("INSERT INTO memberships (user_id, project_id) VALUES (1, 3)")
        await alice.send("Subscribe", {"exchange": "deployment", "routing_key": c1}, "g")
        await alice.expect(subscribed("deployment", c1, "g"),
                           "a membership added in the database counts at once")
        PG.sql("DELETE FROM memberships WHERE user_id = 1 AND project_id = 3")
        await bob.send("Subscribe", {"exchange": "deployment", "routing_key": c1}, "r")
        await bob.expect(error("SubscriptionDenied", "r", "deployment", c1),
                         "and so does one removed (for a new subscription)")



# ------------------------------------------------------------ slow queries

async def ping_times(c, n=10, gap=0.05):
    rtts = []
    for i in range(n):
        t0 = time.monotonic()
        await c.send("Ping", tag=f"p{i}")
        raw = await c.recv(3)
        rtts.append(time.monotonic() - t0)
        if not raw.startswith('{"event":"Pong"'):
            T.check(False, "a Pong", raw)
        await asyncio.sleep(gap)
    return rtts


@T.test(timeout=30)
async def slow_policy_keeps_loop_responsive():
    async with Client(D.port, label="slow") as a, Client(D.port, label="pinger") as b:
        await a.authenticate(token_of("valid"))
        t0 = time.monotonic()
        await a.send("Subscribe", {"exchange": "slow", "routing_key": "slow-1"}, "s")
        rtts = await ping_times(b)
        T.check(max(rtts) < 0.1, "Pings on another socket are answered within 100 ms "
                "while a policy query sleeps", f"{[round(x * 1000, 1) for x in rtts]} ms")
        await b.authenticate(token_of("fresh"))
        await b.send("Subscribe", {"exchange": "slow", "routing_key": "fast"}, "f")
        t1 = time.monotonic()
        await b.expect(subscribed("slow", "fast", "f"),
                       "the same exchange answers a quick query meanwhile (another connection)")
        T.check(time.monotonic() - t1 < 0.5, "... at once", f"{time.monotonic() - t1:.3f}s")
        await a.expect(subscribed("slow", "slow-1", "s"), "the slow subscription is allowed")
        took = time.monotonic() - t0
        T.check(1.9 <= took < 3.5, "after the query's 2 s", f"{took:.2f}s")


@T.test(timeout=30)
async def slow_auth_keeps_loop_responsive():
    query = ("SELECT '42' AS user_id FROM pg_sleep(CASE WHEN {token} = 'slow' THEN 2 ELSE 0 END)")
    d = Daemon(config(auth_opts=[f'query "{query}"']), name="slowauth")
    async with Client(d.port, label="slow") as a, Client(d.port, label="pinger") as b:
        # Warm up: the first connection is opened (and SCRAM computed).
        T.eq(await auth_answer(d.port, "warm", "w"), compact(authenticated("42", "w")),
             "setup: a quick Authenticate")
        t0 = time.monotonic()
        await a.send("Authenticate", {"session_id": "slow"}, "s")
        rtts = await ping_times(b)
        T.check(max(rtts) < 0.1, "Pings are answered within 100 ms while an auth query sleeps",
                f"{[round(x * 1000, 1) for x in rtts]} ms")
        t1 = time.monotonic()
        await b.send("Authenticate", {"session_id": "quick"}, "q")
        await b.expect(authenticated("42", "q"), "another Authenticate is answered meanwhile")
        T.check(time.monotonic() - t1 < 0.5, "... at once", f"{time.monotonic() - t1:.3f}s")
        await a.expect(authenticated("42", "s"), "the slow one is answered")
        T.check(time.monotonic() - t0 >= 1.9, "after the query's 2 s")
    d.stop()


@T.test(timeout=30)
async def query_timeout_drops_the_connection():
    ex = exchange("slow", SLOW_QUERY, ["pool_size 1", "query_timeout 300ms"])
    d = Daemon(config(exchanges=ex), name="qtimeout")
    async with Client(d.port) as c:
        await c.authenticate(token_of("valid"))
        t0 = time.monotonic()
        await c.send("Subscribe", {"exchange": "slow", "routing_key": "slow-x"}, 1)
        await c.expect(error("PolicyUnavailable", 1, "slow", "slow-x"),
                       "a query past query_timeout is an error (PolicyUnavailable)")
        took = time.monotonic() - t0
        T.check(0.25 <= took < 1.5, "answered after about query_timeout", f"{took:.3f}s")
        await c.send("Subscribe", {"exchange": "slow", "routing_key": "quick"}, 2)
        await c.expect(subscribed("slow", "quick", 2),
                       "the only connection was replaced: the next query runs")
    d.stop()
    T.check("query took longer than 300 ms" in d.read_log(), "the timeout is logged",
            d.read_log()[-1500:])


@T.test(timeout=30)
async def queue_max_and_fifo():
    ex = exchange("slow", SLOW_QUERY.replace("THEN 2", "THEN 1"),
                  ["pool_size 1", "queue_max 2"])
    d = Daemon(config(exchanges=ex), name="queue")
    clients = [await Client(d.port, label=f"c{i}").connect() for i in range(5)]
    try:
        for i, c in enumerate(clients):
            await c.authenticate(token_of("valid"))
        t0 = time.monotonic()
        for i, c in enumerate(clients):
            await c.send("Subscribe", {"exchange": "slow", "routing_key": f"slow-{i}"}, i)
            await asyncio.sleep(0.05)     # arrive in this order
        for i in (3, 4):
            await clients[i].expect(error("PolicyUnavailable", i, "slow", f"slow-{i}"),
                                    f"request {i + 1}: 1 running + 2 queued: refused at once",
                                    timeout=1.0)
        done = []
        for i in (0, 1, 2):
            await clients[i].expect(subscribed("slow", f"slow-{i}", i),
                                    f"request {i + 1} is answered", timeout=5)
            done.append(time.monotonic() - t0)
        T.check(done[0] < done[1] < done[2] and done[2] >= 2.8,
                "one after the other, in order (1 s each)", repr(done))
    finally:
        for c in clients:
            await c.close()
    d.stop()


@T.test(timeout=30)
async def cancelled_requests_are_forgotten():
    ex = exchange("slow", SLOW_QUERY.replace("THEN 2", "THEN 1"), ["pool_size 1"])
    d = Daemon(config(exchanges=ex), name="cancel")
    running = await Client(d.port, label="running").connect()
    queued = await Client(d.port, label="queued").connect()
    last = await Client(d.port, label="last").connect()
    for c in (running, queued, last):
        await c.authenticate(token_of("valid"))
    await running.send("Subscribe", {"exchange": "slow", "routing_key": "slow-r"}, 1)
    await asyncio.sleep(0.1)
    await queued.send("Subscribe", {"exchange": "slow", "routing_key": "slow-q"}, 2)
    await asyncio.sleep(0.1)
    await last.send("Subscribe", {"exchange": "slow", "routing_key": "last"}, 3)
    await asyncio.sleep(0.1)
    # Leave while one query runs and one waits.
    running.ws.transport.abort()
    queued.ws.transport.abort()
    t0 = time.monotonic()
    await last.expect(subscribed("slow", "last", 3),
                      "the request behind a cancelled one is answered", timeout=5)
    took = time.monotonic() - t0
    T.check(took < 1.5, "right after the running query ends (the queued one is "
            "dropped, not run)", f"{took:.2f}s")
    await last.ping_roundtrip("the daemon is fine")
    await last.close()
    d.stop()
    T.check("twice" not in d.read_log(), "no request is answered twice", d.read_log()[-1500:])


# ------------------------------------------------------------ many at once

@T.test(timeout=90)
async def thousand_concurrent_authenticates():
    n_sockets, per_socket = 100, 10
    d = D
    if MULTI_WORKERS:
        d = Daemon(config(top={"workers": "2"}), name="workers")
    clients = await asyncio.gather(*[Client(d.port, label=f"c{i}").connect()
                                     for i in range(n_sockets)])
    expected = {}
    t0 = time.monotonic()
    for i, c in enumerate(clients):
        batch = []
        for j in range(per_socket):
            k = i * per_socket + j
            if k % 5 == 4:
                token, want = f"nope-{k}-{RUN}", error("InvalidAuthentication", k)
            else:
                token, uid = BULK[k % len(BULK)]
                want = authenticated(str(uid), k, "User")
            expected[k] = compact(want)
            batch.append(compact({"action": "Authenticate", "tag": k,
                                  "payload": {"session_id": token}}))
            batch.append(compact({"action": "Deauthenticate", "tag": f"d{k}"}))
        for text in batch:
            await c.send_raw(text)

    async def collect(i, c):
        got = {}
        for _ in range(2 * per_socket):
            raw = await c.recv(60)
            msg = json.loads(raw)
            if msg.get("event") != "Deauthenticated":
                got[msg.get("tag")] = raw
        return got

    results = await asyncio.gather(*[collect(i, c) for i, c in enumerate(clients)])
    took = time.monotonic() - t0
    answers = {}
    for r in results:
        answers.update(r)
    wrong = [(k, answers.get(k), want) for k, want in expected.items() if answers.get(k) != want]
    loops = "2 event loops" if d is not D else "1 event loop"
    T.check(not wrong, f"all {len(expected)} Authenticates answered correctly "
            f"({n_sockets} sockets, pool_size 4, {loops})", repr(wrong[:5]))
    print(f"# {len(expected)} Authenticates in {took:.2f}s "
          f"({len(expected) / took:.0f}/s, with the Deauthenticates between)", flush=True)
    await asyncio.gather(*[c.close() for c in clients])
    if d is not D:
        d.stop()


# ------------------------------------------------------------ configuration

def check_config(what, block, want_err, want_line=None):
    dirpath = T.mkdtemp()
    conf = os.path.join(dirpath, "myxid.conf")
    text = "listen 127.0.0.1:1\n" + block
    with open(conf, "w") as f:
        f.write(text)
    rc, out, err = run_myxid(["-t", "-c", conf, "-P", PLUGIN_DIR])
    if want_err is None:
        T.eq(rc, 0, f"{what}: accepted")
        return err
    T.eq(rc, 1, f"{what}: refused")
    T.check(want_err in err, f"{what}: the message says so", err)
    if want_line is not None:
        T.check(f"{conf}:{want_line}:" in err, f"{what}: names line {want_line}", err)
    return err


@T.test
def configuration_errors():
    ci = PG.conf_conninfo()
    check_config("an unknown option",
                 f"auth pgsql {{\n    conninfo {ci}\n    pool_sise 4\n}}\n",
                 'unknown option "pool_sise"', 4)
    check_config("an unknown {parameter}",
                 f'auth pgsql {{\n    conninfo {ci}\n    query "SELECT {{nope}}"\n}}\n',
                 "unknown parameter {nope}", 4)
    check_config("pool_size 0", f"auth pgsql {{\n    conninfo {ci}\n    pool_size 0\n}}\n",
                 "pool_size wants", 4)
    check_config("a bad time", f"auth pgsql {{\n    conninfo {ci}\n    query_timeout soon\n}}\n",
                 "query_timeout wants", 4)
    check_config("no conninfo", "auth pgsql {\n    pool_size 2\n}\n", "conninfo is required")
    check_config("a bad conninfo", "auth pgsql {\n    conninfo \"nonsense=1\"\n}\n",
                 "bad conninfo", 3)
    check_config("conninfo twice", f"auth pgsql {{\n    conninfo {ci}\n    conninfo {ci}\n}}\n",
                 "conninfo given twice", 4)
    check_config("legacy_tokens with a query",
                 f'auth pgsql {{\n    conninfo {ci}\n    legacy_tokens yes\n'
                 f'    query "SELECT 1"\n}}\n', "legacy_tokens applies only", 4)
    check_config("a $1 in a query",
                 f'auth pgsql {{\n    conninfo {ci}\n    query "SELECT $1"\n}}\n',
                 "write {name} parameters", 4)
    err = check_config("host= a name", 'auth pgsql {\n    conninfo "host=db.invalid dbname=x"\n}\n'
                       + exchange("deployment", DEPLOYMENT_QUERY), None)
    T.check("blocking DNS lookup" in err and "hostaddr" in err,
            "host= a name: a warning recommends hostaddr=", err)
    check_config("a policy without a query", exchange("noquery", None),
                 "query is required")
    err = check_config("a policy", exchange("deployment", DEPLOYMENT_QUERY), None)
    T.check("blocking DNS" not in err, "hostaddr=: no DNS warning", err)


@T.test(timeout=30)
async def reload_replaces_the_connections():
    d = Daemon(config(), name="reload")
    T.eq(await auth_answer(d.port, token_of("valid"), 1), compact(authed("valid", 1)),
         "before the reload")
    for i in range(3):
        d.proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(0.3)
    T.eq(await auth_answer(d.port, token_of("valid"), 2), compact(authed("valid", 2)),
         "after three reloads (old pools closed, new ones connected)")
    d.stop()


# ------------------------------------------------------------ outage (last)

@T.test(timeout=60)
async def database_killed_and_restarted():
    a1, a2 = DEPLOYMENTS["a1"], DEPLOYMENTS["a2"]
    d = Daemon(config(top={"recheck_interval": "1s"}), name="outage")
    sub = await Client(d.port, label="subscriber").connect()
    await sub.authenticate(token_of("valid"))
    await sub.send("Subscribe", {"exchange": "deployment", "routing_key": a1}, "s")
    await sub.expect(subscribed("deployment", a1, "s"), "setup: subscribed before the outage")

    PG.kill()
    for i, name in enumerate(("outage_1", "outage_2", "outage_3")):
        t0 = time.monotonic()
        got = await auth_answer(d.port, token_of(name), f"o{i}")
        took = time.monotonic() - t0
        T.eq(got, compact(error("AuthUnavailable", f"o{i}")),
             f"database down: Authenticate {i + 1} answers AuthUnavailable")
        T.check(took < 1.0, f"... promptly (attempt {i + 1})", f"{took:.3f}s")
        await asyncio.sleep(0.2)
    t0 = time.monotonic()
    await sub.send("Subscribe", {"exchange": "deployment", "routing_key": a2}, "s2")
    await sub.expect(error("PolicyUnavailable", "s2", "deployment", a2),
                     "database down: Subscribe answers PolicyUnavailable")
    T.check(time.monotonic() - t0 < 1.0, "... promptly", f"{time.monotonic() - t0:.3f}s")

    for n in range(2):
        r = publish(d.port, "deployment", a1, "Tick", {"n": n})
        T.eq(r.status, 200, f"database down: POST /publish {n + 1}")
        await sub.expect(delivered("Tick", {"n": n}, "deployment", a1),
                         f"database down: the existing subscription still delivers ({n + 1})")
        await asyncio.sleep(1.5)       # re-checks run (and fail) meanwhile
    await sub.send("ListSubscriptions", tag="l")
    listed = json.loads(await sub.recv())
    T.check(json.dumps(listed).count(a1) == 1, "the subscription survived the re-checks",
            repr(listed))

    # The backoff has grown to seconds by now; a request while the
    # database is down brings the next attempt forward (once a second).
    PG.start()
    t0 = time.monotonic()
    ok = None
    while time.monotonic() - t0 < 15:
        got = await auth_answer(d.port, token_of("after_outage"), "back")
        if got == compact(authed("after_outage", "back")):
            ok = time.monotonic() - t0
            break
        await asyncio.sleep(0.2)
    T.check(ok is not None, "database restarted: the plugin reconnects and "
            "Authenticate works again", f"last answer {got}")
    T.check(ok is not None and ok < 2.0, "... within 2 s (demand brings the "
            "reconnection forward)", f"{ok}")
    t0 = time.monotonic()
    back = None
    for i in range(25):
        await sub.send("Subscribe", {"exchange": "deployment", "routing_key": a2}, f"s{i}")
        got = await sub.recv()
        if got == compact(subscribed("deployment", a2, f"s{i}")):
            back = time.monotonic() - t0
            break
        T.eq(got, compact(error("PolicyUnavailable", f"s{i}", "deployment", a2)),
             "until then: PolicyUnavailable")
        await asyncio.sleep(0.2)
    T.check(back is not None and back < 2.0, "and policies work again within 2 s", f"{back}")
    print(f"# after the restart: authentication back in {ok or -1:.2f}s, "
          f"policies in {back or -1:.2f}s",
          flush=True)
    r = publish(d.port, "deployment", a1, "Tick", {"n": "after"})
    await sub.expect(delivered("Tick", {"n": "after"}, "deployment", a1),
                     "the old subscription still delivers")
    # The other daemon had no request during the outage: its first one
    # may find the database still counted down (and bring the retry
    # forward), or its backoff may have brought it back already.
    t0 = time.monotonic()
    while True:
        got = await auth_answer(D.port, token_of("valid"), "m")
        if got == compact(authed("valid", "m")) or time.monotonic() - t0 > 3:
            break
        T.eq(got, compact(error("AuthUnavailable", "m")), "the other daemon: until then, "
             "AuthUnavailable")
        await asyncio.sleep(0.2)
    T.eq(got, compact(authed("valid", "m")), "the other daemon's pool reconnected too")
    await sub.close()
    d.stop()
    log = d.read_log()
    T.check("database unavailable" in log and "database reachable again" in log,
            "the outage and the recovery are logged once each way", log[-3000:])


@T.test
def no_token_in_any_log():
    leaked = []
    for daemon in T.all_daemons:
        log = daemon.read_log()
        for name, s in SESSIONS.items():
            if s[0] in log:
                leaked.append((daemon.name, name))
        for token, _ in BULK[:20]:
            if token in log:
                leaked.append((daemon.name, "bulk"))
    T.check(not leaked, "no token appears in any daemon's log", repr(leaked))


T.run()
