#!/usr/bin/python3
"""
auth_throughput: how many Authenticates per second myxid answers through
each auth plugin: auth_static (the baseline: no database), pgsql (a private
PostgreSQL 15 cluster, tests/integration/pgsql.py) and mysql (a private
MariaDB, tests/integration/mariadb.py, when plugins/.libs/mysql.so exists).

A benchmark, not a test: it prints numbers and writes them to
bench/AUTH-RESULTS.md; its exit status is 1 only when a reply was not the
expected Authenticated / Deauthenticated (or nothing could be measured).

The load comes from bench/authload.c (compiled here into a temporary
directory): one epoll thread, SOCKETS WebSockets each repeating
Authenticate -> Authenticated, Deauthenticate -> Deauthenticated with 10,000
distinct valid tokens (Authie sessions whose token_hash is the token's
SHA-256 in hex, or a tokens file for auth_static). The daemon runs with
auth_cache 0 (every Authenticate reaches the plugin, except in the
"default cache" variant), recheck_interval 0, max_actions_per_second 0,
workers 2 and log_level warning.

For each variant: RUNS runs of WARMUP + DURATION seconds; the median run
(by rate) is reported. During each measured window it samples /proc: the
CPU time of the daemon, of the database's processes (the postmaster and
its backends; mariadbd), of the load generator (its getrusage), and of the
whole machine (/proc/stat, with steal).

    bench/run-auth                      # everything, under 4 minutes
    bench/run-auth --backends pgsql --runs 1 --duration 5
    bench/auth_throughput.py --help

The daemon and plugins are those of myxidtest: $MYXID_BIN (default
server/myxid) and $MYXID_PLUGIN_DIR (default plugins/.libs).
"""

import argparse
import datetime
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True   # keep the source tree clean

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))

from myxidtest import MYXID_BIN, PLUGIN_DIR, Daemon, Suite  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
GOAL = 10000
ACTIVE = {"daemons": [], "loads": [], "suites": []}


def log(msg):
    print(msg, flush=True)


# ------------------------------------------------------------ /proc

def proc_cpu(pid, children=False, kernel_only=False):
    """utime + stime of a process (all its threads) in seconds; with
    children, also cutime + cstime (its reaped children); kernel_only:
    stime (and cstime) alone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # fields[0] is the state (field 3); utime is field 14.
    ticks = int(fields[12]) + (0 if kernel_only else int(fields[11]))
    if children:
        ticks += int(fields[14]) + (0 if kernel_only else int(fields[13]))
    return ticks / CLK_TCK


def child_pids(parent):
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent:
            out.append(int(name))
    return out


def machine_cpu():
    """(busy, steal, total) seconds summed over the CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq
    total = busy + idle + iowait + steal
    return busy / CLK_TCK, steal / CLK_TCK, total / CLK_TCK


class PgCPU:
    """The postmaster and its children (backends, checkpointer, ...): the
    children alive now, plus what the postmaster has reaped."""

    def __init__(self, data_dir):
        self.data_dir = data_dir

    def postmaster(self):
        with open(os.path.join(self.data_dir, "postmaster.pid")) as f:
            return int(f.readline())

    def __call__(self):
        pm = self.postmaster()
        return proc_cpu(pm, children=True) + sum(proc_cpu(p) for p in child_pids(pm))

    def children(self):
        return len(child_pids(self.postmaster()))


# ------------------------------------------------------------ the load

def build_authload(tmp):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        sys.exit("auth_throughput: a C compiler is needed for bench/authload.c")
    out = os.path.join(tmp, "authload")
    subprocess.run([cc, "-O2", "-Wall", "-o", out, os.path.join(HERE, "authload.c")],
                   check=True)
    return out


def make_tokens(n):
    """n distinct tokens (URL-safe, 43 characters) with their user ids."""
    return [(secrets.token_urlsafe(32), 100000 + i) for i in range(n)]


def sha(token):
    return hashlib.sha256(token.encode()).hexdigest()


def write_load_file(path, tokens):
    with open(path, "w") as f:
        for tok, uid in tokens:
            f.write(f"{tok}\t{uid}\tUser\n")


def run_load(opts, port, db_cpu, daemon, warmup=None, during=None, load_file=None,
             depth=None):
    """One run of authload against port; returns the result dict with
    the CPU seconds of the window added."""
    cmd = [opts.authload, "-p", str(port), "-f", load_file or opts.load_file,
           "-n", str(opts.sockets),
           "-k", str(depth or opts.depth), "-w", str(warmup if warmup is not None else opts.warmup),
           "-d", str(opts.duration)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ACTIVE["loads"].append(p)
    samples, result, side = {}, None, None

    def sample():
        return {"wall": time.monotonic(), "daemon": proc_cpu(daemon.proc.pid),
                "daemon_sys": proc_cpu(daemon.proc.pid, kernel_only=True),
                "db": db_cpu() if db_cpu else 0.0, "machine": machine_cpu()}

    for line in p.stdout:
        line = line.strip()
        if line == "START":
            samples["start"] = sample()
            if during:
                side = during(daemon)
        elif line == "END":
            samples["end"] = sample()
        elif line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
    stderr = p.stderr.read()
    p.wait()
    ACTIVE["loads"].remove(p)
    if side is not None:
        side.finish()
    if result is None or "start" not in samples or "end" not in samples:
        raise RuntimeError(f"authload failed (exit {p.returncode}): {stderr.strip()}")
    a, b = samples["start"], samples["end"]
    busy = b["machine"][0] - a["machine"][0]
    steal = b["machine"][1] - a["machine"][1]
    result.update({
        "wall": b["wall"] - a["wall"],
        "daemon_cpu": b["daemon"] - a["daemon"],
        "daemon_sys_cpu": b["daemon_sys"] - a["daemon_sys"],
        "db_cpu": (b["db"] - a["db"]) if db_cpu else None,
        "load_cpu": result["user_cpu"] + result["sys_cpu"],
        "machine_busy": busy,
        "machine_steal": steal,
        "stderr": stderr.strip(),
    })
    return result


class Profile:
    """perf record -a -g for a few seconds of a run (a run that is not
    counted): where the two cores go, by command, by library, and inside
    the PostgreSQL backends (parse, analyze, plan, execute)."""

    PG_STAGES = [
        ("PostgresMain", "the backends' main loop (the rest: kernel, scheduler)"),
        ("raw_parser", "parsing (Parse message)"),
        ("parse_analyze_varparams", "parse analysis (Parse message)"),
        ("pg_plan_query", "planning (Bind message, for an unnamed statement)"),
        ("standard_ExecutorRun", "executing: the index scan"),
        ("CommitTransactionCommand", "transaction commit"),
        ("pq_getbyte", "reading the socket"),
        ("secure_write", "writing the socket"),
    ]

    def __init__(self, seconds, path):
        self.path = path
        self.proc = subprocess.Popen(
            ["perf", "record", "-a", "-g", "-F", "997", "-o", path, "--", "sleep", str(seconds)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def finish(self):
        self.proc.wait()

    def _report(self, *args, lines=20):
        p = subprocess.run(["perf", "report", "-i", self.path, "--stdio", "-q", "-g", "none",
                            *args], capture_output=True, text=True)
        rows = [ln.rstrip() for ln in p.stdout.splitlines() if ln.strip()]
        return rows[:lines]

    def _by_dso(self, comm, lines=12):
        """Sums of --sort dso,sym by library ("--sort dso" alone gives
        kernel samples to a user-space library when call graphs were
        recorded)."""
        sums = {}
        for row in self._report("--no-children", "--comms", comm, "--percentage", "relative",
                                "--sort", "dso,sym", lines=100000):
            f = row.split()
            if len(f) >= 2 and f[0].endswith("%"):
                try:
                    sums[f[1]] = sums.get(f[1], 0.0) + float(f[0].rstrip("%"))
                except ValueError:
                    pass
        top = sorted(sums.items(), key=lambda kv: -kv[1])[:lines]
        return [f"{v:8.2f}%  {k}" for k, v in top]

    def report(self):
        parts = [("by command (all CPUs; swapper = idle)",
                  self._report("--no-children", "--sort", "comm", lines=10)),
                 ("myxid, by library (% of myxid)", self._by_dso("myxid")),
                 ("myxid, by symbol (% of myxid)",
                  self._report("--no-children", "--comms", "myxid", "--percentage", "relative",
                               "--sort", "dso,sym", lines=20))]
        rows = self._report("--children", "--comms", "postgres", "--percentage", "relative",
                            "--sort", "sym", lines=100000)
        found = {}
        for row in rows:
            f = row.split()
            if len(f) >= 4 and f[0].endswith("%"):
                found.setdefault(f[-1], f[0])
        if found.get("PostgresMain"):
            stage_rows = [f"{found.get(fn, '-'):>8}  {fn:<26} {what}"
                          for fn, what in self.PG_STAGES]
            parts.append(("PostgreSQL, inclusive time of stages (% of all postgres samples)",
                          stage_rows))
        parts.append(("PostgreSQL, by symbol (% of postgres)",
                      self._report("--no-children", "--comms", "postgres,mariadbd",
                                   "--percentage", "relative", "--sort", "dso,sym", lines=15)))
        return parts


# ------------------------------------------------------------ the daemon

WORKERS = 2
BASE_SETTINGS = [
    ("policy_cache", "0"), ("recheck_interval", "0"), ("max_actions_per_second", "0"),
    ("max_connections_per_ip", "0"), ("ping_interval", "0"), ("workers", str(WORKERS)),
    ("auth_timeout", "5s"), ("log_level", "warning"),
]


def daemon_config(auth_block, cache, extra=()):
    settings = list(BASE_SETTINGS) + list(extra)
    if cache is not None:
        settings.insert(0, ("auth_cache", cache))
    text = "".join(f"{k} {v}\n" for k, v in settings)
    return (text + auth_block +
            "exchange public {\n    policy static {\n        allow public\n    }\n}\n")


def start_daemon(conf, name, files=None):
    d = Daemon(conf, name=name, files=files)
    ACTIVE["daemons"].append(d)
    return d


def stop_daemon(d):
    """SIGTERM and wait; no checks printed (this is no test)."""
    if d.proc is not None and d.proc.poll() is None:
        d.proc.send_signal(signal.SIGTERM)
        try:
            d.proc.wait(15)
        except subprocess.TimeoutExpired:
            d.proc.kill()
            d.proc.wait()
    if d.suite is not None and d in d.suite.daemons:
        d.suite.daemons.remove(d)
    d.log.close()
    ACTIVE["daemons"].remove(d)


# ------------------------------------------------------------ variants

class Variant:
    def __init__(self, backend, label, auth_block, runs, cache=None, pool=None,
                 extra=(), files=None, warmup=None, load_file=None, depth=None):
        self.backend, self.label, self.auth_block = backend, label, auth_block
        self.depth = depth                     # None: --depth
        self.runs, self.cache, self.pool, self.extra = runs, cache, pool, extra
        self.files, self.warmup, self.load_file = files, warmup, load_file
        self.results = []
        self.profile = None
        self.error = None

    def median(self):
        ok = sorted(self.results, key=lambda r: r["rate"])
        return ok[(len(ok) - 1) // 2] if ok else None


def measure(opts, variant, db_cpu, profile=False):
    # cache None: auth_cache 0; "default": no auth_cache line (60 s).
    conf = daemon_config(variant.auth_block, None if variant.cache == "default" else "0",
                         variant.extra)
    d = start_daemon(conf, f"myxid-{variant.backend}", files=variant.files)
    try:
        for i in range(variant.runs):
            r = run_load(opts, d.port, db_cpu, d, warmup=variant.warmup,
                         load_file=variant.load_file, depth=variant.depth)
            variant.results.append(r)
            log(f"#   {variant.label}: run {i + 1}/{variant.runs}: {r['rate']:8.0f}/s  "
                f"p50 {r['p50_us'] / 1000:.1f} ms  p99 {r['p99_us'] / 1000:.1f} ms  "
                f"errors {r['errors']}  cpu: daemon {r['daemon_cpu']:.1f}s "
                f"db {fmt_cpu(r['db_cpu'])} load {r['load_cpu']:.1f}s "
                f"machine {r['machine_busy']:.1f}s (steal {r['machine_steal']:.1f}s)")
            for s in r["error_samples"]:
                log(f"#     error: {s}")
            time.sleep(0.3)
        if profile:
            path = os.path.join(opts.tmp, f"perf-{variant.backend}.data")
            secs = min(5.0, opts.duration)
            holder = {}

            def during(daemon):
                holder["p"] = Profile(secs, path)
                return holder["p"]
            r = run_load(opts, d.port, db_cpu, d, during=during)
            variant.profile = holder["p"].report()
            variant.profile_rate = r["rate"]
            log(f"#   {variant.label}: profiled run (perf record -a, {secs:.0f} s, not counted):"
                f" {r['rate']:.0f}/s")
    finally:
        stop_daemon(d)


def fmt_cpu(v):
    return "n/a" if v is None else f"{v:.1f}s"


def bench_static(opts, tokens, variants):
    T = Suite("auth_throughput-static")
    ACTIVE["suites"].append(T)
    files = {"tokens": "".join(f"{t} {uid} type=User\n" for t, uid in tokens)}
    v = Variant("static", "auth_static", "auth static {\n    tokens_file tokens\n}\n",
                opts.runs, files=files)
    variants.append(v)
    log("# auth_static (baseline, no database)")
    measure(opts, v, None)
    T.cleanup()


JWT_SECRET = "bench-secret-" + "k" * 40


def bench_jwt(opts, tokens, variants):
    """auth jwt: the same users, as HS256 and as ES256 tokens (minted with
    Debian's python3-jwt), checked by signature alone."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    T = Suite("auth_throughput-jwt")
    ACTIVE["suites"].append(T)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    block = ("auth jwt {\n    algorithms HS256 ES256\n    secret " + JWT_SECRET +
             "\n    public_key p256.pem\n    type_claim role\n}\n")
    exp = int(time.time()) + 86400
    for alg, signer in (("HS256", JWT_SECRET), ("ES256", key)):
        path = os.path.join(opts.tmp, f"jwt-{alg}.tsv")
        with open(path, "w") as f:
            for _, uid in tokens:
                tok = jwt.encode({"sub": str(uid), "role": "User", "exp": exp}, signer,
                                 algorithm=alg)
                f.write(f"{tok}\t{uid}\tUser\n")
        v = Variant("jwt", f"jwt {alg}", block, opts.runs, files={"p256.pem": pem.decode()},
                    load_file=path)
        variants.append(v)
        log(f"# auth jwt, {alg} (no backend)")
        measure(opts, v, None)
        if alg == "HS256" and opts.jwt_depth > 1 and opts.jwt_depth != opts.depth:
            # The same, with several pairs written back to back on each
            # socket: the syscalls and loopback TCP segments a message costs
            # on both sides are shared by the pairs of one read.
            v = Variant("jwt", f"jwt HS256, {opts.jwt_depth} in flight per socket", block,
                        opts.runs, files={"p256.pem": pem.decode()}, load_file=path,
                        depth=opts.jwt_depth)
            variants.append(v)
            log(f"# auth jwt, HS256, {opts.jwt_depth} pairs in flight per socket")
            measure(opts, v, None)
        # The plugin's own part, one thread, no daemon (bench/jwt_verify.c).
        verify = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(MYXID_BIN))),
                              "bench", "jwt_verify")
        if os.access(verify, os.X_OK):
            pem_path = os.path.join(opts.tmp, "p256.pem")
            with open(pem_path, "wb") as f:
                f.write(pem)
            keyarg = ["-s", JWT_SECRET] if alg == "HS256" else ["-k", pem_path]
            out = subprocess.run([verify, "-a", alg, *keyarg, "-f", path, "-t", "3"],
                                 capture_output=True, text=True)
            opts.jwt_verify.append((out.stdout or out.stderr).strip())
            log(f"#   plugin alone: {opts.jwt_verify[-1]}")
    T.cleanup()


def sql_block(kind, lines):
    return f"auth {kind} {{\n" + "".join(f"    {ln}\n" for ln in lines) + "}\n"


def pools(opts):
    return [opts.pool] + [p for p in opts.other_pools if p != opts.pool]


# Authie's query as plugins/sql/sql_common.c has it (PG_AUTHIE_SELECT + TAIL,
# legacy_tokens no), with pgbench variables where the plugin binds $1, $2.
PG_AUTHIE_QUERY = """\
SELECT user_id::text AS user_id, user_type FROM authie_sessions
 WHERE token_hash = :token_hash
   AND active = TRUE
   AND (expires_at IS NULL OR expires_at > (now() AT TIME ZONE 'UTC'))
   AND NOT (expires_at IS NULL AND last_activity_at IS NOT NULL
            AND last_activity_at < (now() AT TIME ZONE 'UTC')
                - make_interval(secs => CAST(:inactivity_seconds AS bigint)))
 LIMIT 1;
"""


def pgbench(opts, pg, pgsql, mode, clients, token, db_cpu):
    """PostgreSQL alone: pgbench runs the plugin's query over TCP as the
    daemon's role, "-M extended" as the plugin sends it (an unnamed
    statement: parsed, analyzed and planned every time) or "-M prepared"
    (parsed once per connection, then a cached plan). The token is always
    the same one (pgbench variables cannot be picked from a list); every
    row is in shared buffers anyway."""
    exe = os.path.join(pgsql.PG_BIN, "pgbench")
    script = os.path.join(opts.tmp, "authie.pgbench")
    with open(script, "w") as f:
        f.write(PG_AUTHIE_QUERY)
    env = dict(os.environ, PGPASSWORD=pg.password)
    cmd = [exe, "-n", "-M", mode, "-c", str(clients), "-j", "1", "-T", str(int(opts.duration)),
           "-f", script, "-D", f"token_hash={sha(token)}", "-D", "inactivity_seconds=43200",
           "-h", "127.0.0.1", "-p", str(pg.port), "-U", pg.user, pg.dbname]
    before = db_cpu.children()
    t0, db0, m0 = time.monotonic(), db_cpu(), machine_cpu()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=env)
    ACTIVE["loads"].append(p)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    ACTIVE["loads"].remove(p)
    # pgbench's backends exit after it: their CPU time counts once the
    # postmaster has reaped them (its cutime).
    deadline = time.monotonic() + 10
    while db_cpu.children() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    db1, m1 = db_cpu(), machine_cpu()
    tx = tps = None
    for line in out.splitlines():
        if line.startswith("number of transactions actually processed:"):
            tx = int(line.split(":")[1].split()[0])
        elif line.startswith("tps =") and tps is None:
            tps = float(line.split()[2])
        elif line.startswith("number of failed transactions:") and \
                int(line.split(":")[1].split()[0]) != 0:
            raise RuntimeError(f"pgbench: {line}")
    if p.returncode != 0 or tx is None or tps is None:
        raise RuntimeError(f"pgbench exited {p.returncode}: {out.strip()[-500:]}")
    bench_cpu = ru.ru_utime + ru.ru_stime
    r = {"mode": mode, "clients": clients, "tx": tx, "tps": tps, "db_cpu": db1 - db0,
         "bench_cpu": bench_cpu, "wall": time.monotonic() - t0}
    r["others"] = max(0.0, (m1[0] - m0[0]) - r["db_cpu"] - bench_cpu)
    log(f"#   pgbench -M {mode}, {clients} clients: {tps:8.0f} queries/s  cpu: PostgreSQL "
        f"{r['db_cpu']:.1f}s pgbench {bench_cpu:.1f}s others {r['others']:.1f}s")
    return r


def bench_pgsql(opts, tokens, variants):
    import pgsql
    missing = [p for p in (pgsql.INITDB, pgsql.PG_CTL, pgsql.POSTGRES) if not os.access(p, os.X_OK)]
    if missing or pgsql.PSQL is None or not os.path.isfile(pgsql.PGSQL_PLUGIN):
        log(f"# pgsql: skipped (missing: {', '.join(missing) or pgsql.PSQL or pgsql.PGSQL_PLUGIN})")
        return
    T = pgsql.PgSuite("auth_throughput-pgsql")
    ACTIVE["suites"].append(T)
    install_signals()
    try:
        pg = pgsql.PgCluster(suite=T).start(quiet=True)
        t0 = time.monotonic()
        pg.load(pgsql.AUTHIE_SCHEMA)
        now = "(now() AT TIME ZONE 'UTC')"
        rows = ",\n".join(f"('{sha(t)}', {uid}, 'User', true, {now} + interval '30 days', "
                          f"{now}, {now}, {now}, {now})" for t, uid in tokens)
        pg.sql("INSERT INTO authie_sessions (token_hash, user_id, user_type, active, "
               "expires_at, last_activity_at, login_at, created_at, updated_at) VALUES\n"
               + rows + ";\n"
               f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {pg.user};\nANALYZE;\n")
        count = pg.sql("SELECT count(*) FROM authie_sessions").strip()
        version = pg.sql("SHOW server_version").strip()
        log(f"# pgsql: PostgreSQL {version} on port {pg.port}, {count} sessions loaded "
            f"in {time.monotonic() - t0:.1f}s")
        opts.versions["pgsql"] = f"PostgreSQL {version}"
        db_cpu = PgCPU(pg.data)
        conninfo = pg.conf_conninfo()
        for i, pool in enumerate(pools(opts)):
            v = Variant("pgsql", f"pgsql pool_size {pool}",
                        sql_block("pgsql", [f"conninfo {conninfo}", f"pool_size {pool}"]),
                        opts.runs if i == 0 else 1, pool=pool)
            variants.append(v)
            measure(opts, v, db_cpu, profile=(i == 0 and opts.profile))
        if opts.cached_run:
            v = Variant("pgsql", f"pgsql pool_size {opts.pool}, auth_cache default (60s)",
                        sql_block("pgsql", [f"conninfo {conninfo}", f"pool_size {opts.pool}"]),
                        1, cache="default", pool=opts.pool, warmup=max(opts.warmup, 3))
            variants.append(v)
            measure(opts, v, db_cpu)
        if opts.pgbench:
            # As many connections as the daemon's pools: a pool per worker.
            clients = opts.pool * WORKERS
            for mode in ("extended", "prepared"):
                try:
                    opts.pgbench_results.append(
                        pgbench(opts, pg, pgsql, mode, clients, tokens[0][0], db_cpu))
                except (RuntimeError, OSError) as exc:
                    log(f"#   pgbench -M {mode}: failed: {exc}")
    finally:
        T.cleanup()


def bench_mysql(opts, tokens, variants):
    plugin = os.path.join(PLUGIN_DIR, "mysql.so")
    if not os.path.isfile(plugin):
        log(f"# mysql: skipped ({plugin} does not exist)")
        return
    try:
        import mariadb
    except ImportError as exc:
        log(f"# mysql: skipped (tests/integration/mariadb.py: {exc})")
        return
    if mariadb.MARIADBD is None or mariadb.INSTALL_DB is None or mariadb.CLIENT is None:
        log("# mysql: skipped (no MariaDB server, installer or client)")
        return
    T = mariadb.MariaDBSuite("auth_throughput-mysql")
    ACTIVE["suites"].append(T)
    install_signals()
    try:
        db = mariadb.MariaDB(suite=T).start(quiet=True)
        db.setup(os.path.join(TOP, "tests", "integration", "authie_schema_mysql.sql"))
        t0 = time.monotonic()
        now = "UTC_TIMESTAMP()"
        rows = ",\n".join(f"('{sha(t)}', {uid}, 'User', 1, {now} + INTERVAL 30 DAY, "
                          f"{now}, {now}, {now}, {now})" for t, uid in tokens)
        db.sql("INSERT INTO authie_sessions (token_hash, user_id, user_type, active, "
               "expires_at, last_activity_at, login_at, created_at, updated_at) VALUES\n"
               + rows + ";\nANALYZE TABLE authie_sessions;\n")
        count = db.query("SELECT count(*) FROM authie_sessions")[0][0]
        version = db.query("SELECT VERSION()")[0][0]
        log(f"# mysql: MariaDB {version} on port {db.port}, {count} sessions loaded "
            f"in {time.monotonic() - t0:.1f}s")
        opts.versions["mysql"] = f"MariaDB {version}"
        pid = db.proc.pid

        def db_cpu():
            return proc_cpu(pid)
        conn = ["host 127.0.0.1", f"port {db.port}", f"user {db.user}",
                f"password {db.password}", f"database {db.database}"]
        for i, pool in enumerate(pools(opts)):
            v = Variant("mysql", f"mysql pool_size {pool}",
                        sql_block("mysql", conn + [f"pool_size {pool}"]),
                        opts.runs if i == 0 else 1, pool=pool)
            variants.append(v)
            measure(opts, v, db_cpu, profile=(i == 0 and opts.profile and opts.profile_mysql))
    finally:
        T.cleanup()


# ------------------------------------------------------------ reporting

COLUMNS = ["variant", "runs", "auth/s (median)", "all runs", "p50 ms", "p99 ms", "errors",
           "daemon CPU s", "DB CPU s", "load gen CPU s", "others CPU s", "steal s",
           "daemon µs/auth", "DB µs/auth", "load µs/auth", "idle-machine est. /s"]


def others_cpu(m):
    """CPU of the machine in the window not spent by the daemon, the
    database or the load generator: other processes (and interrupts)."""
    return max(0.0, m["machine_busy"] - m["daemon_cpu"] - (m["db_cpu"] or 0) - m["load_cpu"])


def idle_estimate(m):
    """Authenticates/s the machine's CPUs would allow if nothing else ran:
    all CPUs divided by the CPU one Authenticate cost (daemon + database +
    load generator) in this run. An estimate: costs measured under
    contention are somewhat inflated, and kernel work done outside these
    processes is not counted."""
    cost = m["daemon_cpu"] + (m["db_cpu"] or 0) + m["load_cpu"]
    return os.cpu_count() * m["completed"] / cost if cost > 0 else 0.0


def table_rows(variants):
    rows = []
    for v in variants:
        m = v.median()
        if m is None:
            rows.append([v.label, "0", "failed: " + (v.error or "?")] + [""] * (len(COLUMNS) - 3))
            continue
        n = m["completed"] or 1
        rows.append([
            v.label, str(len(v.results)), f"{m['rate']:.0f}",
            " / ".join(f"{r['rate']:.0f}" for r in v.results),
            f"{m['p50_us'] / 1000:.2f}", f"{m['p99_us'] / 1000:.2f}",
            str(sum(r["errors_total"] for r in v.results)),
            f"{m['daemon_cpu']:.2f}", fmt_cpu(m["db_cpu"]).rstrip("s"),
            f"{m['load_cpu']:.2f}", f"{others_cpu(m):.2f}", f"{m['machine_steal']:.2f}",
            f"{m['daemon_cpu'] / n * 1e6:.0f}",
            "n/a" if m["db_cpu"] is None else f"{m['db_cpu'] / n * 1e6:.0f}",
            f"{m['load_cpu'] / n * 1e6:.0f}", f"{idle_estimate(m):.0f}",
        ])
    return rows


PGB_COLUMNS = ["pgbench -M", "clients", "queries/s", "PostgreSQL CPU s", "pgbench CPU s",
               "others CPU s", "PostgreSQL µs/query", "idle-machine est. /s"]


def pgbench_rows(results):
    rows = []
    for r in results:
        n = r["tx"] or 1
        cost = r["db_cpu"] + r["bench_cpu"]
        rows.append([r["mode"], str(r["clients"]), f"{r['tps']:.0f}", f"{r['db_cpu']:.2f}",
                     f"{r['bench_cpu']:.2f}", f"{r['others']:.2f}",
                     f"{r['db_cpu'] / n * 1e6:.0f}",
                     f"{os.cpu_count() * n / cost:.0f}" if cost else "?"])
    return rows


def text_table(rows, columns=COLUMNS):
    widths = [max(len(columns[i]), *(len(r[i]) for r in rows)) for i in range(len(columns))]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in rows])


def md_table(rows, columns=COLUMNS):
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def machine_info():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) // 1024} MiB"
    return {"nproc": os.cpu_count(), "model": model, "mem": mem,
            "kernel": os.uname().release}


def daemon_description():
    """The daemon's version, and the commit it was built from when that
    can be told: the source tree's (when MYXID_BIN is in it) or that of
    the build tree (a git checkout, or a COMMIT file beside it, as an
    export made with "git archive" can have)."""
    try:
        version = subprocess.run([MYXID_BIN, "--version"], capture_output=True,
                                 text=True, timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        version = "?"
    build = os.path.dirname(os.path.dirname(os.path.abspath(MYXID_BIN)))
    commit = None
    if os.path.exists(os.path.join(build, ".git")):
        try:
            commit = subprocess.run(["git", "-C", build, "rev-parse", "--short", "HEAD"],
                                    capture_output=True, text=True).stdout.strip()
            dirty = subprocess.run(["git", "-C", build, "status", "--porcelain", "--",
                                    "server", "plugins", "include"],
                                   capture_output=True, text=True).stdout.strip()
            if dirty:
                commit += " with local changes in server/, plugins/ or include/"
        except OSError:
            pass
    elif os.path.isfile(os.path.join(build, "COMMIT")):
        with open(os.path.join(build, "COMMIT")) as f:
            commit = f.read().strip()[:12]
    return f"{version}, {MYXID_BIN}" + (f", built from {commit}" if commit else "")


JWT_GOAL = 100000


def jwt_verdict(variants):
    """The auth jwt goal: 100,000 HS256 Authenticates/s on this machine,
    judged on each HS256 variant (one pair in flight per socket, several)."""
    hs = [v for v in variants if v.label.startswith("jwt HS256") and v.median()]
    out = ""
    for v in hs:
        m = v.median()
        wall = m["wall"] or 1
        met = "MET" if m["rate"] >= JWT_GOAL else "NOT MET"
        depth = v.label.split(", ", 1)[1] if ", " in v.label else "one pair in flight per socket"
        runs = " / ".join(f"{r['rate']:,.0f}" for r in v.results)
        out += (f"\n\nGoal of {JWT_GOAL:,} Authenticates/s with auth jwt HS256, {depth}: "
                f"**{met}**: median {m['rate']:,.0f}/s (runs: {runs}). "
                f"The machine was busy {m['machine_busy'] / wall:.2f} of "
                f"{os.cpu_count()} CPUs (daemon {m['daemon_cpu'] / wall:.2f}, load generator "
                f"{m['load_cpu'] / wall:.2f}); one Authenticate+Deauthenticate cost "
                f"{m['daemon_cpu'] / max(m['completed'], 1) * 1e6:.1f} µs of daemon CPU, so an "
                f"idle machine would allow about {idle_estimate(m):,.0f}/s." + jwt_floor(m))
    if hs:
        out += ("\n\nbench/jwt_verify measures the plugin's own part (parse, verify, claims) "
                "without the daemon.")
    return out


def jwt_floor(m):
    """What no change to the daemon's own code can go below: the load
    generator's CPU and the daemon's kernel time (its socket reads and
    writes), per Authenticate+Deauthenticate, on this machine's CPUs."""
    n = max(m["completed"], 1)
    load = m["load_cpu"] / n * 1e6
    ksys = m["daemon_sys_cpu"] / n * 1e6
    user = (m["daemon_cpu"] - m["daemon_sys_cpu"]) / n * 1e6
    ceiling = (os.cpu_count() or 1) / max((load + ksys) / 1e6, 1e-9)
    return (f"\n\nWhere the time goes, per Authenticate+Deauthenticate: the daemon "
            f"{user:.1f} µs in user space and {ksys:.1f} µs in the kernel, the load generator "
            f"{load:.1f} µs (user {m['user_cpu'] / n * 1e6:.1f}, kernel {m['sys_cpu'] / n * 1e6:.1f}). "
            f"The load generator and the daemon's kernel time alone would cap this machine at "
            f"about {ceiling:,.0f}/s with no daemon user time at all.")


def verdict(opts, variants):
    return pg_verdict(opts, variants) + jwt_verdict(variants)


def pg_verdict(opts, variants):
    pg = [v for v in variants if v.backend == "pgsql" and v.cache is None and v.median()]
    if not pg:
        return "PostgreSQL was not measured: the goal (10,000/s) is unknown."
    best = max(pg, key=lambda v: v.median()["rate"])
    main = pg[0].median()
    rate = main["rate"]
    est = idle_estimate(main)
    wall = main["wall"] or 1
    met = "MET" if rate >= GOAL else "NOT MET"
    text = (f"Goal of {GOAL:,} Authenticates/s through PostgreSQL (auth_cache 0, "
            f"{pg[0].label}): **{met}**: median {rate:,.0f}/s "
            f"(best variant: {best.label}, {best.median()['rate']:,.0f}/s). "
            f"During the median run the machine was busy {main['machine_busy'] / wall:.2f} of "
            f"{os.cpu_count()} CPUs: daemon {main['daemon_cpu'] / wall:.2f}, PostgreSQL "
            f"{(main['db_cpu'] or 0) / wall:.2f}, load generator "
            f"{main['load_cpu'] / wall:.2f}, other processes {others_cpu(main) / wall:.2f} "
            f"(steal {main['machine_steal'] / wall:.2f}). "
            f"One Authenticate cost {main['daemon_cpu'] / max(main['completed'], 1) * 1e6:.0f} µs "
            f"of daemon CPU and {(main['db_cpu'] or 0) / max(main['completed'], 1) * 1e6:.0f} µs "
            f"of PostgreSQL CPU, so even an idle machine would allow about {est:,.0f}/s"
            f"{'' if est >= GOAL else ' (still below the goal)'}.")
    return text


def write_results(opts, variants, path):
    info = machine_info()
    rows = table_rows(variants)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Authenticate throughput (bench/auth_throughput.py)",
        "",
        "Measured numbers, written by `bench/run-auth`; see bench/README.md for the",
        "method and for how to read them. Re-running overwrites this file.",
        "",
        f"- date: {now}",
        f"- machine: {info['nproc']} CPUs ({info['model']}), {info['mem']}, "
        f"Linux {info['kernel']}",
        f"- myxid: {daemon_description()}; plugins from {PLUGIN_DIR}",
        f"- background load before the run: {opts.background:.2f} of {info['nproc']} CPUs busy",
        "- databases: " + (", ".join(f"{k}: {v}" for k, v in opts.versions.items()) or "none"),
        "- daemon settings: auth_cache 0 (unless said), " +
        ", ".join(f"{k} {v}" for k, v in BASE_SETTINGS),
        f"- load: bench/authload, {opts.sockets} WebSockets, {opts.depth} "
        f"Authenticate+Deauthenticate pair(s) in flight per socket (unless the variant "
        f"says otherwise), {opts.tokens} distinct "
        f"valid tokens; {opts.warmup:g} s warm-up then {opts.duration:g} s measured per run",
        f"- the row's numbers are those of its median run (by rate); CPU seconds are for "
        f"the measured window (~{opts.duration:g} s), out of {info['nproc']} × "
        f"{opts.duration:g} s available",
        "",
        md_table(rows),
        "",
        "`others CPU s`: CPU of the machine in the window spent by neither the daemon, nor",
        "the database, nor the load generator (other processes: the machine is shared).",
        "`idle-machine est. /s`: all CPUs divided by the CPU one Authenticate cost",
        "(daemon + database + load generator) in that run; what the machine would do",
        "with nothing else running, if CPU is the limit.",
        "",
        verdict(opts, variants),
        "",
    ]
    if opts.jwt_verify:
        lines += ["## auth jwt's own part (bench/jwt_verify)", "",
                  "Parse, key, signature, claims and user id for each of the same tokens, "
                  "one thread, no daemon, 3 s:", "", "```"] + opts.jwt_verify + ["```", ""]
    if opts.pgbench_results:
        lines += ["## PostgreSQL alone (pgbench)", "",
                  "The plugin's Authie query over TCP as the daemon's role, "
                  f"{opts.pgbench_results[0]['clients']} connections (the daemon's "
                  f"pool_size {opts.pool} × {WORKERS} workers), {opts.duration:g} s each: "
                  "`extended` sends it as the plugin does (PQsendQueryParams: an unnamed "
                  "statement, parsed, analyzed and planned for every query); `prepared` "
                  "parses it once per connection and reuses the plan.", "",
                  md_table(pgbench_rows(opts.pgbench_results), PGB_COLUMNS), ""]
    profiled = [v for v in variants if v.profile]
    for v in profiled:
        lines += [f"## Profile: {v.label} (perf record -a, an extra run at "
                  f"{v.profile_rate:,.0f}/s, not counted above)", ""]
        for title, rep in v.profile:
            lines += [f"{title}:", "", "```"] + rep + ["```", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


# ------------------------------------------------------------ main

def background_load(seconds=2.0):
    """Busy CPUs (of os.cpu_count()) before we start anything: other
    people's builds and tests share this machine."""
    a = machine_cpu()
    time.sleep(seconds)
    b = machine_cpu()
    return (b[0] - a[0]) / seconds


def cleanup_everything():
    for p in list(ACTIVE["loads"]):
        if p.poll() is None:
            p.kill()
    for d in list(ACTIVE["daemons"]):
        d.kill()
    for s in ACTIVE["suites"]:
        for stop in ("stop_clusters", "kill_servers"):
            if hasattr(s, stop):
                try:
                    getattr(s, stop)()
                except Exception:
                    pass


def on_signal(signum, frame):
    log(f"# {signal.Signals(signum).name}: stopping")
    cleanup_everything()
    os._exit(1)


def install_signals():
    """After the suites' own handlers: ours also stops the daemons and
    the load generator."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="static,jwt,pgsql,mysql",
                    help="comma-separated: static, jwt, pgsql, mysql (default: all)")
    ap.add_argument("--runs", type=int, default=3, help="runs of the main variants (3)")
    ap.add_argument("--duration", type=float, default=10, help="measured seconds a run (10)")
    ap.add_argument("--warmup", type=float, default=2, help="warm-up seconds a run (2)")
    ap.add_argument("--sockets", type=int, default=200, help="WebSockets (200)")
    ap.add_argument("--depth", type=int, default=1,
                    help="pairs in flight per socket (1; the daemon queues the rest)")
    ap.add_argument("--jwt-depth", type=int, default=4,
                    help="pairs in flight per socket of the extra HS256 variant (4; 1: none)")
    ap.add_argument("--tokens", type=int, default=10000, help="distinct tokens (10000)")
    ap.add_argument("--pool", type=int, default=8, help="pool_size of the main variant (8)")
    ap.add_argument("--other-pools", default="4,16",
                    help="pool sizes also tried, one run each (4,16; '' for none)")
    ap.add_argument("--no-cached-run", dest="cached_run", action="store_false",
                    help="skip the pgsql run with the default auth_cache")
    ap.add_argument("--no-profile", dest="profile", action="store_false",
                    help="skip the extra perf-profiled pgsql run")
    ap.add_argument("--no-pgbench", dest="pgbench", action="store_false",
                    help="skip PostgreSQL alone (pgbench, extended vs prepared)")
    ap.add_argument("--profile-mysql", action="store_true",
                    help="also profile the main mysql variant")
    ap.add_argument("--output", default=os.path.join(HERE, "AUTH-RESULTS.md"),
                    help="the results file (bench/AUTH-RESULTS.md; '' for none)")
    opts = ap.parse_args()
    opts.other_pools = [int(x) for x in opts.other_pools.split(",") if x.strip()]
    opts.versions = {}
    opts.pgbench_results = []
    opts.jwt_verify = []
    backends = [b.strip() for b in opts.backends.split(",") if b.strip()]
    for b in backends:
        if b not in ("static", "jwt", "pgsql", "mysql"):
            ap.error(f"unknown backend {b!r}")
    if opts.profile and shutil.which("perf") is None:
        log("# perf not found: no profile")
        opts.profile = False
    if not os.access(MYXID_BIN, os.X_OK):
        sys.exit(f"auth_throughput: no daemon at {MYXID_BIN}: build the tree, or set "
                 "MYXID_BIN and MYXID_PLUGIN_DIR (bench/run-auth --build-dir DIR)")

    install_signals()
    started = time.monotonic()
    opts.tmp = tempfile.mkdtemp(prefix="myxid-bench-")
    try:
        opts.authload = build_authload(opts.tmp)
        opts.load_file = os.path.join(opts.tmp, "tokens.tsv")
        tokens = make_tokens(opts.tokens)
        write_load_file(opts.load_file, tokens)
        info = machine_info()
        opts.background = background_load()
        log(f"# background load before the benchmark: {opts.background:.2f} of "
            f"{info['nproc']} CPUs busy" + ("  (WARNING: the machine is not idle; "
                                            "the rates will be lower than it can do)"
                                            if opts.background > 0.2 else ""))
        log(f"# {info['nproc']} CPUs ({info['model']}); myxid {MYXID_BIN}; "
            f"{opts.sockets} sockets, {opts.tokens} tokens, "
            f"{opts.runs} x ({opts.warmup:g}+{opts.duration:g}) s")
        variants = []
        for b in backends:
            try:
                {"static": bench_static, "jwt": bench_jwt, "pgsql": bench_pgsql,
                 "mysql": bench_mysql}[b](
                    opts, tokens, variants)
            except Exception as exc:   # one backend failing does not hide the others
                log(f"# {b}: failed: {exc!r}")
                if variants and variants[-1].backend == b and not variants[-1].results:
                    variants[-1].error = str(exc).splitlines()[0][:80]
        rows = table_rows(variants)
        log("")
        log(text_table(rows))
        if opts.pgbench_results:
            log("")
            log("PostgreSQL alone (pgbench, the plugin's query):")
            log(text_table(pgbench_rows(opts.pgbench_results), PGB_COLUMNS))
        log("")
        log(verdict(opts, variants).replace("**", ""))
        if opts.output:
            write_results(opts, variants, opts.output)
            log(f"# written to {opts.output}")
        log(f"# {time.monotonic() - started:.0f}s")
        bad = sum(r["errors_total"] for v in variants for r in v.results)
        return 0 if variants and bad == 0 and all(v.results for v in variants) else 1
    finally:
        cleanup_everything()
        shutil.rmtree(opts.tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
