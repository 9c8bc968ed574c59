#!/usr/bin/python3
"""
The session databases killed with SIGKILL (a crash: PostgreSQL's
postmaster and every backend, MariaDB's mariadbd) and started again while
60 WebSockets keep sending Authenticate (then Deauthenticate) as fast as
they are answered, and 20 sockets authenticated before the crash stay
subscribed:

- before the crash every Authenticate is Authenticated;
- every Authenticate gets exactly one answer, Authenticated or Error
  AuthUnavailable (never InvalidAuthentication, never silence, never a
  closed socket), within auth_timeout;
- while the database is down the answer is AuthUnavailable;
- after the restart every loader is Authenticated again (the plugin
  reconnects by itself);
- the sockets authenticated before keep their subscriptions: events
  published during and after the outage reach all of them, Ping works;
- the daemon never dies, its log stays one line per event and holds no token.

test_pgsql.py / test_mysql.py database_killed_and_restarted cover the
same with one request at a time (and PolicyUnavailable, re-checks); this
file adds the sustained load and the SIGKILL of every server process.
"""
import asyncio
import hashlib
import os
import secrets
import signal
import sys
import time

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import (HERE, PLUGIN_DIR, PUBLISH_KEY, Client, Daemon, NoMessage,
                       authenticated, compact, delivered, error, prerequisite_missing,
                       publish, require, subscribed)
from hostile import LogWatch
from mariadb import MariaDB, require_mariadb, sql_string
from pgsql import AUTHIE_SCHEMA, PgCluster, PgSuite, require_pgsql, sql_literal
from services import kill_pid_files, start_watchdog

require()
require_pgsql()
require_mariadb()
for so in ("pgsql.so", "mysql.so"):
    if not os.path.isfile(os.path.join(PLUGIN_DIR, so)):
        prerequisite_missing(f"{so} in {PLUGIN_DIR}")


class SqlFaultSuite(PgSuite):
    """PgSuite (clusters stopped at the end, a watchdog) that also owns a
    MariaDB server: MariaDB registers in .servers, killed with the rest,
    and a second watchdog SIGKILLs it if this program dies."""

    what = "the PostgreSQL clusters and the MariaDB server"

    def __init__(self):
        super().__init__()
        self.servers = self.services
        self.maria_watchdog = start_watchdog(self.base, kill_pid_files("server*"))

    def describe(self, service):
        return f"mariadb {service.port}" if isinstance(service, MariaDB) else \
            super().describe(service)


T = SqlFaultSuite()
N_LOAD, N_KEPT = 60, 20
AUTH_TIMEOUT = 2.0
RUN = secrets.token_hex(4)
TOKENS = [(f"load-{RUN}-{i}-{secrets.token_urlsafe(16)}", 5000 + i)
          for i in range(N_LOAD + N_KEPT)]


def sha(token):
    return hashlib.sha256(token.encode()).hexdigest()


# ------------------------------------------------------------ the databases

PG = PgCluster()
PG.start()
PG.load(AUTHIE_SCHEMA)
PG.sql("INSERT INTO authie_sessions (token_hash, user_id, user_type, active, "
       "last_activity_at, created_at, updated_at) VALUES\n" +
       ",\n".join(f"({sql_literal(sha(t))}, {uid}, 'User', true, now(), now(), now())"
                  for t, uid in TOKENS) + ";\n"
       f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {PG.user};\n")

DB = MariaDB()
DB.start()
DB.setup(os.path.join(HERE, "authie_schema_mysql.sql"))
DB.sql("INSERT INTO authie_sessions (token_hash, user_id, user_type, active, last_activity_at, "
       "login_at, created_at, updated_at) VALUES\n" +
       ",\n".join(f"({sql_string(sha(t))}, {uid}, 'User', 1, UTC_TIMESTAMP(), UTC_TIMESTAMP(), "
                  "UTC_TIMESTAMP(), UTC_TIMESTAMP())" for t, uid in TOKENS) + ";\n")


def sigkill_postgres():
    """SIGKILL the postmaster and every process it started (a crash of the
    whole server, not pg_ctl's orderly immediate stop)."""
    with open(os.path.join(PG.data, "postmaster.pid")) as f:
        master = int(f.readline())
    victims = [master]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rpartition(")")[2].split()[1]) == master:
                        victims.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{p}") and not _zombie(p) for p in victims):
        if time.monotonic() > deadline:
            raise RuntimeError("postgres processes survived SIGKILL")
        time.sleep(0.02)
    print(f"# postgresql: SIGKILL to the postmaster and {len(victims) - 1} children", flush=True)


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except OSError:
        return True


def daemon_config(auth_block):
    return (f"workers 1\npublish_key {PUBLISH_KEY}\nauth_timeout {int(AUTH_TIMEOUT)}s\n"
            "auth_cache 0\npolicy_cache 0\nrecheck_interval 0\nlog_level info\n"
            "max_actions_per_second 0\n" + auth_block +
            "exchange members {\n    policy static {\n        allow authenticated\n    }\n}\n")


PG_AUTH = f"auth pgsql {{\n    conninfo {PG.conf_conninfo()}\n}}\n"
MY_AUTH = ("auth mysql {\n    host 127.0.0.1\n" + f"    port {DB.port}\n    user {DB.user}\n"
           f"    password {DB.password}\n    database {DB.database}\n" + "}\n")


# ------------------------------------------------------------ the load

class Load:
    """N_LOAD clients, each: Authenticate, and if that worked Deauthenticate,
    again and again. Every answer is recorded as (sent at, latency, kind)."""

    def __init__(self, port):
        self.port = port
        self.records = [[] for _ in range(N_LOAD)]
        self.problems = []
        self.stop = False

    async def worker(self, i):
        token, uid = TOKENS[i]
        ok_reply = lambda tag: compact(authenticated(str(uid), tag, "User"))
        try:
            async with Client(self.port, label=f"load{i}") as c:
                n = 0
                while not self.stop:
                    tag = f"{i}.{n}"
                    n += 1
                    t0 = time.monotonic()
                    await c.send("Authenticate", {"session_id": token}, tag)
                    try:
                        raw = await c.recv(AUTH_TIMEOUT + 3)
                    except NoMessage:
                        self.problems.append((i, tag, "no answer"))
                        return
                    took = time.monotonic() - t0
                    if raw == ok_reply(tag):
                        self.records[i].append((t0, took, "ok"))
                        await c.send("Deauthenticate", tag="d")
                        raw = await c.recv(3)
                        if raw != '{"event":"Deauthenticated","tag":"d","payload":{}}':
                            self.problems.append((i, tag, raw))
                            return
                    elif raw == compact(error("AuthUnavailable", tag)):
                        self.records[i].append((t0, took, "unavailable"))
                        await asyncio.sleep(0.05)
                    else:
                        self.problems.append((i, tag, raw))
                        return
        except Exception as exc:  # noqa: BLE001 - judged by the test
            self.problems.append((i, None, repr(exc)))

    def start(self):
        self.tasks = [asyncio.create_task(self.worker(i)) for i in range(N_LOAD)]

    async def finish(self):
        self.stop = True
        await asyncio.gather(*self.tasks)

    def between(self, t0, t1):
        return [r for rs in self.records for r in rs if t0 <= r[0] < t1]


async def outage(name, auth_block, crash, restart):
    d = Daemon(daemon_config(auth_block), name=name)
    log = LogWatch(d)
    kept = []
    for j in range(N_KEPT):
        token, uid = TOKENS[N_LOAD + j]
        c = await Client(d.port, label=f"kept{j}").connect()
        await c.send("Authenticate", {"session_id": token}, "a")
        await c.expect(authenticated(str(uid), "a", "User"), f"setup: kept socket {j} authenticates")
        await c.send("Subscribe", {"exchange": "members", "routing_key": "k"}, "s")
        await c.expect(subscribed("members", "k", "s"), f"setup: kept socket {j} subscribes")
        kept.append(c)

    load = Load(d.port)
    load.start()
    await asyncio.sleep(1.5)
    t_crash = time.monotonic()
    await asyncio.to_thread(crash)
    t_dead = time.monotonic()
    await asyncio.sleep(3.0)
    r = publish(d.port, "members", "k", "During", {"db": "down"})
    T.eq(r.status, 200, f"{name} down: POST /publish -> 200")
    for c in kept:
        await c.expect(delivered("During", {"db": "down"}, "members", "k"),
                       f"{name} down: {c.label} still receives its events")
    await kept[0].ping_roundtrip(f"{name} down: an authenticated socket answers Ping")
    t_restart = time.monotonic()
    await asyncio.to_thread(restart)
    t_up = time.monotonic()
    back = {}
    while time.monotonic() - t_up < 15 and len(back) < N_LOAD and not load.problems:
        for i, rs in enumerate(load.records):
            if i not in back and any(r[0] >= t_up and r[2] == "ok" for r in rs):
                back[i] = min(r[0] + r[1] for r in rs if r[0] >= t_up and r[2] == "ok") - t_up
        await asyncio.sleep(0.1)
    await load.finish()

    T.check(not load.problems, f"{name}: every Authenticate got exactly Authenticated or "
            "AuthUnavailable, in time, on a socket that stayed open", repr(load.problems[:5]))
    # Answered before the crash began (a request in flight at the kill
    # may rightly be AuthUnavailable).
    before = [r for r in load.between(0, t_crash) if r[0] + r[1] < t_crash]
    T.check(len(before) >= N_LOAD and all(r[2] == "ok" for r in before),
            f"{name} up: all {len(before)} Authenticates before the crash were Authenticated",
            repr([r for r in before if r[2] != "ok"][:3]))
    down = load.between(t_dead + 0.5, t_restart)
    T.check(len(down) >= N_LOAD and all(r[2] == "unavailable" for r in down),
            f"{name} down: all {len(down)} Authenticates answered AuthUnavailable",
            repr([r for r in down if r[2] != "unavailable"][:3]))
    every = [r for rs in load.records for r in rs]
    slowest = max(r[1] for r in every) if every else None
    T.check(slowest is not None and slowest <= AUTH_TIMEOUT + 0.5,
            f"{name}: no answer took longer than auth_timeout ({slowest and round(slowest, 3)} s "
            f"slowest of {len(every)})")
    T.eq(len(back), N_LOAD, f"{name} restarted: every loading socket is Authenticated again")
    if back:
        print(f"# {name}: database up again; loaders authenticated after "
              f"{min(back.values()):.2f}..{max(back.values()):.2f} s; "
              f"{len(every)} Authenticates in all ({len(down)} during the outage)", flush=True)
    r = publish(d.port, "members", "k", "After", {"db": "up"})
    for c in kept:
        await c.expect(delivered("After", {"db": "up"}, "members", "k"),
                       f"{name} restarted: {c.label} still subscribed")
        await c.close()
    T.check(d.alive(), f"{name}: the daemon never died")
    log.check(f"{name} outage", [t.encode() for t, _ in TOKENS])
    d.stop()
    print(f"# {name}: crash took {t_dead - t_crash:.2f} s, restart {t_up - t_restart:.2f} s",
          flush=True)


@T.test(timeout=120)
async def postgresql_sigkilled_under_load():
    await outage("postgresql", PG_AUTH, sigkill_postgres, lambda: PG.start(quiet=True))


@T.test(timeout=120)
async def mariadb_sigkilled_under_load():
    await outage("mariadb", MY_AUTH, DB.kill, lambda: DB.start(quiet=True))


T.run()
