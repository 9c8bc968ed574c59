#!/usr/bin/python3
"""
scenarios: the push benchmarks of bench/run, side by side with nchan and a
bare RabbitMQ consumer in the same run. Prints one table and writes
bench/RESULTS.md (date, machine, table, targets, raw JSON of every run).

  S1 capacity   10k, 50k, 100k authenticated, subscribed sockets (myxid, nchan)
  S2 fan-out    one key, 10k subscribers, publish as fast as the server keeps
                up; then at 100,000 deliveries/s for the latency (myxid, nchan)
  S3 many keys  10k keys, one subscriber each, fed through RabbitMQ (myxid,
                and the bare consumer on the same broker: its ceiling)
  S4 churn      connect, Authenticate, Subscribe, close, continuously; auth
                static and PostgreSQL (myxid)
  H1 history    S2 fan-out with the exchange's history off and on, interleaved
                (off, on, off, on): what keeping and positioning costs
  H2 history    the same on 100 keys of 100 subscribers
  H3 replay     sockets each asking for the last 1,000 events (history): events
                replayed per second
  H4 storm      1,000 sockets cut at once while lines flow, all resuming with
                "since": time until every one has every line (checked once each)
  H5 broker     broker mode, 10,000 keys over POST /publish, history off (the
                exchange) and on (its stream, mirrored by the node)
  D1 deflate    S2's fan-out of 300-byte deployment-log lines, the clients
                offering permessage-deflate or not (off, on, off, on)
  C1 control    the control API holding S2's sockets (1 node, then 3 nodes on
                RabbitMQ): latency of a subscriber count, and of
                disconnecting every socket of the user
  N1 cluster    50k and 100k subscribed sockets over several nodes on one
                RabbitMQ (one node per 16,000 sockets, or --nodes N): memory
                per socket in the nodes and per binding in RabbitMQ
                (bench/cluster.py)
  N2 fan-out    12,000 sockets on one node, then over 6 nodes: one key, then
                keys of 10 sockets; and publish once: one key bound by 1, 2,
                3, 6 nodes at 20 messages/s, every delivery checked on every
                node, RabbitMQ's work per message (bench/cluster_fanout.py)
  N3 failover   100,000 sockets over 7 nodes; the last node SIGKILLed, its
                sockets back on the others with the JS client's backoff;
                then a node joins (bench/cluster_failover.py)

Everything runs on loopback and is started here: myxid from the build tree
($MYXID_BIN, $MYXID_PLUGIN_DIR; bench/run --build-dir DIR), a private
RabbitMQ node (tests/integration/rabbitmq.py), a private PostgreSQL
cluster (tests/integration/pgsql.py), nginx with nchan from
bench/peers/nchan.conf. The load is bench/myxid-bench (found beside the
daemon: BUILD/bench/myxid-bench, or $MYXID_BENCH).

A benchmark, not a test: the exit status is 1 only when a run failed (a
socket not ready, a delivery lost, an error), never for a missed target.
"""

import argparse
import json
import os
import resource
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
sys.path.insert(0, HERE)

from myxidtest import MYXID_BIN, Daemon, read_text  # noqa: E402
from auth_throughput import background_load, sha, sql_block  # noqa: E402
import capacity  # noqa: E402
import cluster  # noqa: E402
import cluster_failover  # noqa: E402
import cluster_fanout  # noqa: E402
import peers  # noqa: E402
import report  # noqa: E402
from procstat import Sampler  # noqa: E402

TOKEN = "bench-token-7f3a9c"     # the one token every generated socket uses
USER_ID = 4242
PUBLISH_KEY = "bench-publish-key"
CONTROL_KEY = "bench-control-key"
EXCHANGE = "bench"
CPUS = os.cpu_count() or 1
# Sockets one process may hold besides its other files (listeners, logs,
# eventfds, the broker link): what a size needs below RLIMIT_NOFILE.
FD_MARGIN = 1000

ACTIVE = {"generators": [], "daemons": [], "suites": []}


def log(msg=""):
    print(msg, flush=True)


# ------------------------------------------------------------ plan

class Plan:
    """The sizes of one run: full (about 15 minutes at most) or --quick."""

    def __init__(self, quick):
        self.quick = quick
        self.s1_sizes = [2000] if quick else [10000, 50000, 100000]
        self.s1_keys = 200 if quick else 1000
        self.hold = 1 if quick else 2
        self.s2_subscribers = 2000 if quick else 10000
        # 3M deliveries: a few seconds at myxid's target, about two minutes
        # for a server at 25,000/s (what nchan did on the shared machine).
        self.s2_messages = 200 if quick else 300
        # 100,000 deliveries/s: messages/s times subscribers.
        self.lat_rate = 100000 / self.s2_subscribers
        self.lat_messages = int(self.lat_rate * (2 if quick else 5))
        # The same 100,000 deliveries/s on many keys of 100 subscribers each.
        self.lat_keys = self.s2_subscribers // 100
        self.lat_keys_rate = self.lat_rate * self.lat_keys
        self.lat_keys_messages = self.lat_messages * self.lat_keys
        self.s3_keys = 2000 if quick else 10000
        self.s3_messages = 20000 if quick else 200000
        # As deep as myxid's prefetch: a deeper pipeline only queues in the broker.
        self.s3_window = 2048
        self.s3_hold = 2
        self.churn_s = 3 if quick else 10
        self.churn_sockets = 100 if quick else 200
        # N1: every node holds sockets on every key, so binds every key.
        self.n1_sizes = [2000] if quick else [50000, 100000]
        self.n1_keys = 100 if quick else 1000
        self.n1_sweep_sockets = 600 if quick else 12000
        self.n1_sweep_nodes = [1, 3] if quick else [1, 2, 3, 6]
        # N2: S2's size over the nodes, one key (12,000 sockets x 300
        # messages: 3.6M deliveries), then keys of 10 sockets; publish
        # once at 20 messages/s (120,000 deliveries/s over 6,000 sockets).
        self.n2_nodes = 3 if quick else 6
        self.n2_sockets = 600 if quick else 12000
        self.n2_messages = 50 if quick else 300
        self.n2_key_messages = 600 if quick else 24000
        self.n2_once_sockets = 300 if quick else 6000
        self.n2_once_messages = 40 if quick else 400
        self.n2_once_rate = 20
        self.n2_big_sockets = 1500 if quick else 100000
        self.n2_big_messages = 20 if quick else 100
        # N3: one node SIGKILLed under the 100,000 sockets.
        self.n3_sockets = 1500 if quick else 100000
        self.n3_keys = 50 if quick else 1000
        # ... and with events flowing (history on): 100 messages/s over the
        # keys (10,000 deliveries/s at 100,000 sockets) for 20 s, the node
        # killed 5 s in.
        self.n3h_sockets = 1500 if quick else 100000
        self.n3h_messages = 300 if quick else 2000
        self.n3h_rate = 100
        self.n3h_kill_after = 1 if quick else 5


def nofile_limit():
    """Raise our soft RLIMIT_NOFILE to the hard one (children inherit it);
    return the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# ------------------------------------------------------------ servers

EXCHANGE_BLOCK = f"""\
exchange {EXCHANGE} {{
    type direct
    durable no
    policy static {{
        allow authenticated
    }}
}}
"""
# The same exchange keeping history (H scenarios): 1,000 events per key.
HISTORY_BLOCK = EXCHANGE_BLOCK.replace("    durable no\n",
                                       "    durable no\n    history {\n        events 1000\n    }\n")

# What would refuse or slow a benchmark's sockets: off or raised. The
# per-IP limit is off (all sockets come from 127.0.0.x); pings and
# re-checks are off (nothing to measure there); logs at warning.
MYXID_SETTINGS = [
    ("publish_key", PUBLISH_KEY), ("workers", str(CPUS)), ("log_level", "warning"),
    ("max_connections", "200000"), ("max_connections_per_ip", "0"),
    ("max_actions_per_second", "0"), ("max_output_buffer", "4m"),
    ("ping_interval", "0"), ("recheck_interval", "0"), ("handshake_timeout", "60s"),
]
STATIC_AUTH = "auth static {\n    tokens_file tokens\n}\n"
# D1's payload: a deployment-log line this long in each event.
DEFLATE_LINE = 300


class Myxid:
    """myxid (myxidtest.Daemon) with the bench config."""

    name = "myxid"

    def __init__(self, auth_block=STATIC_AUTH, extra=(), history=False):
        text = "".join(f"{k} {v}\n" for k, v in MYXID_SETTINGS + list(extra))
        conf = text + auth_block + (HISTORY_BLOCK if history else EXCHANGE_BLOCK)
        self.daemon = Daemon(conf, name="myxid-bench-target",
                             files={"tokens": f"{TOKEN} {USER_ID} type=User\n"})
        ACTIVE["daemons"].append(self)

    def pids(self):
        return [self.daemon.proc.pid]

    def generator_args(self):
        port = self.daemon.port
        return ["--url", f"ws://127.0.0.1:{port}/", "--mode", "myxi", "--token", TOKEN,
                "--exchange", EXCHANGE, "--publish-url", f"http://127.0.0.1:{port}/publish",
                "--publish-key", PUBLISH_KEY, "--server-pid", str(self.daemon.proc.pid)]

    def log_tail(self, lines=20):
        return "\n".join(read_text(self.daemon.log_path).splitlines()[-lines:])

    def stop(self):
        """SIGTERM and wait; no checks printed (a test's suite, if any,
        forgets it too, so nothing restarts it)."""
        d = self.daemon
        peers.stop_process(d.proc)
        if d.suite is not None and d in d.suite.daemons:
            d.suite.daemons.remove(d)
        d.log.close()
        if self in ACTIVE["daemons"]:
            ACTIVE["daemons"].remove(self)

        shutil.rmtree(d.dir, ignore_errors=True)


class NchanTarget(peers.Nchan):
    def generator_args(self):
        return ["--url", self.sub_url, "--mode", "plain", "--publish-url", self.pub_url]


# ------------------------------------------------------------ one run

class Runner:
    """Runs myxid-bench against a server and keeps every run's record."""

    def __init__(self, opts):
        self.opts = opts
        self.records = []
        self.cluster = []      # the N scenarios' records (bench/cluster.py)
        self.count = 0

    def run(self, scenario, server, sockets, load, args, timeout=600, quiet=False,
            others=None, cpus=None):
        """One generator run; returns its record (also kept). others:
        {name: pids} also sampled (the broker), as record["others"]. cpus:
        the server and the generator run on these CPUs only."""
        self.count += 1
        json_path = os.path.join(self.opts.tmp, f"run{self.count}.json")
        # One source address per 5,000 sockets: connect() searches for a
        # free ephemeral port, which costs more and more CPU as one
        # address's range fills up (with the TIME_WAITs of earlier runs).
        sources = ["--sources", str(max(1, min(254, -(-sockets // 5000))))]
        cmd = ([self.opts.bench] + server.generator_args() + ["--connections", str(sockets)]
               + sources
               + [str(a) for a in args] + ["--json", json_path, "--quiet"])
        sampler = Sampler(server.pids).start()
        side = {name: Sampler(pids).start() for name, pids in (others or {}).items()}
        t0 = time.monotonic()
        if cpus:
            pin(server.pids() if callable(server.pids) else server.pids, cpus)
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True,
                             preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        ACTIVE["generators"].append(p)
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
            out += f"\n(killed after {timeout} s)"
        ACTIVE["generators"].remove(p)
        sampled = sampler.stop()
        side = {name: s.stop() for name, s in side.items()}
        result = {}
        try:
            with open(json_path) as f:
                result = json.load(f)
        except (OSError, ValueError) as exc:
            out += f"\n(no JSON result: {exc})"
        rec = {"scenario": scenario, "server": server.name, "sockets": sockets,
               "load": load, "command": " ".join(cmd), "exit_status": p.returncode,
               "wall_s": round(time.monotonic() - t0, 2), "result": result,
               "sampled": sampled, "output": out.strip()[-3000:]}
        if side:
            rec["others"] = side
        self.records.append(rec)
        if not quiet:
            log(report.one_line(rec))
        if p.returncode != 0:
            for line in out.strip().splitlines()[-8:]:
                log(f"#     {line}")
            if hasattr(server, "log_tail"):
                for line in server.log_tail().splitlines():
                    log(f"#     {server.name}: {line}")
        return rec

    def not_run(self, scenario, server, sockets, why):
        rec = {"scenario": scenario, "server": server, "sockets": sockets,
               "not_run": why}
        self.records.append(rec)
        log(f"# {scenario} {server} {sockets:,}: not run: {why}")
        return rec


def with_server(make, fn):
    """Start a server, run fn(server), always stop it."""
    server = make()
    try:
        if isinstance(server, peers.Nchan):
            server.start()
        return fn(server)
    finally:
        server.stop()


# ------------------------------------------------------------ scenarios

def s1_capacity(opts, plan, runner):
    fit = (opts.nofile - FD_MARGIN) // 1000 * 1000
    sizes = sorted(set(plan.s1_sizes + ([fit] if not plan.quick and
                                         plan.s1_sizes[0] < fit < max(plan.s1_sizes) else [])))
    why = (f"RLIMIT_NOFILE hard limit {opts.nofile} per process (one process holds at "
           f"most ~{fit:,} sockets; raising it needs CAP_SYS_RESOURCE, which is dropped here)")
    load = ["--keys", plan.s1_keys, "--publish", "http", "--messages", plan.s1_keys,
            "--hold", plan.hold, "--rate", 0]
    for n in sizes:
        if n > fit:
            for name in ("myxid", "nchan"):
                runner.not_run("S1 capacity", name, n, why)
            continue
        with_server(Myxid, lambda s: runner.run("S1 capacity", s, n, "hold", load))
        if opts.nchan:
            with_server(opts.make_nchan,
                        lambda s: runner.run("S1 capacity", s, n, "hold", load))


def s2_fanout(opts, plan, runner):
    n = plan.s2_subscribers
    # --drain: a server slower than the offered rate still delivers all
    # (late); the latencies say how late.
    flat = ["--keys", 1, "--publish", "http", "--messages", plan.s2_messages, "--rate", 0,
            "--threads", opts.gen_threads, "--drain", 30]
    lat = ["--keys", 1, "--publish", "http", "--messages", plan.lat_messages,
           "--rate", f"{plan.lat_rate:g}", "--threads", opts.gen_threads, "--drain", 60]
    lat_load = f"{plan.lat_rate:g} msg/s = {plan.lat_rate * n:,.0f} deliveries/s"
    keys = ["--keys", plan.lat_keys, "--publish", "http", "--messages", plan.lat_keys_messages,
            "--rate", f"{plan.lat_keys_rate:g}", "--threads", opts.gen_threads, "--drain", 60]
    keys_load = (f"{plan.lat_keys} keys, {plan.lat_keys_rate:g} msg/s = "
                 f"{plan.lat_keys_rate * n / plan.lat_keys:,.0f} deliveries/s")
    for make in [Myxid] + ([opts.make_nchan] if opts.nchan else []):
        with_server(make, lambda s: (runner.run("S2 fan-out", s, n, "max", flat),
                                     runner.run("S2 latency", s, n, lat_load, lat),
                                     runner.run("S2 latency, many keys", s, n, keys_load, keys)))


def pin(pids, cpus):
    """Every thread of these processes onto cpus (threads started later
    inherit it from the thread that starts them)."""
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                os.sched_setaffinity(int(tid), cpus)
            except (ProcessLookupError, PermissionError):
                pass


def with_rabbit(scenario, runner, plan, fn):
    """A private RabbitMQ node for one scenario: fn(node, block, broker)
    with the node, myxid's broker block and the {name: pids} to sample;
    the node is always stopped. Not run without RabbitMQ installed."""
    import rabbitmq
    if rabbitmq.RABBITMQ_SERVER is None or rabbitmq.RABBITMQCTL is None:
        runner.not_run(scenario, "myxid", plan.s3_keys, "no RabbitMQ installed")
        return
    T = rabbitmq.BrokerSuite("bench-" + scenario.split()[0].lower())
    ACTIVE["suites"].append(T)
    install_signals()
    try:
        node = rabbitmq.RabbitNode(suite=T).start(quiet=True)
        log(f"# {scenario.split()[0]}: RabbitMQ node on port {node.port}")
        fn(node, STATIC_AUTH + rabbitmq.broker_block(node.url) + "\n", {"rabbitmq": [node.pid]})
    finally:
        T.kill_services()
        T.cleanup()
        ACTIVE["suites"].remove(T)


def s3_many_keys(opts, plan, runner):
    def run(node, block, broker):
        k, m = plan.s3_keys, plan.s3_messages
        pub = ["--publish", "amqp", "--amqp-url", node.url, "--keys", k]
        # myxid answers Subscribed once RabbitMQ has bound the key; the
        # short hold only lets the broker settle after 10,000 binds.
        load = ["--messages", m, "--rate", 0, "--window", plan.s3_window,
                "--hold", plan.s3_hold] + pub
        clear_queues(node)
        with_server(lambda: Myxid(auth_block=block),
                    lambda s: runner.run("S3 many keys", s, k, f"max, window {plan.s3_window}",
                                         load, others=broker))
        clear_queues(node)
        bare_consumer_run(opts, runner, block, node, k, m, pub, 1, broker)
    with_rabbit("S3 many keys", runner, plan, run)


class BareTarget:
    """The bare consumer as a run's server: the generator publishes through
    a myxid (one socket, on key 0: what paces its window) while the bare
    consumer gets every message. The same publisher as S3's myxid run;
    myxid itself handles 1/K of the messages on the side."""

    name = "bare consumer"

    def __init__(self, myxid, consumer):
        self.myxid, self.consumer = myxid, consumer

    def generator_args(self):
        return self.myxid.generator_args()

    def pids(self):
        return [self.consumer.proc.pid]


def clear_queues(node):
    """Delete every queue: the node queue a stopped myxid leaves behind
    (x-expires 60 s) keeps its bindings, and would get a copy of every
    message of the next run."""
    for q in node.list_queues():
        node.ctl("delete_queue", q["name"])
        if q.get("messages"):
            log(f"#   deleted queue {q['name']} with {q['messages']} messages in it")


def bare_consumer_run(opts, runner, myxid_block, node, keys, messages, pub, hold, others):
    """The same publisher, the same broker, the bare consumer: the broker's
    own rate for S3's messages."""
    consumer = peers.BareConsumer(opts.bare, node.url, EXCHANGE, keys, messages).start()
    try:
        def run(server):
            return runner.run("S3 many keys", BareTarget(server, consumer), 1,
                              "max, same publisher",
                              ["--messages", messages, "--rate", 0, "--hold", hold] + pub,
                              quiet=True, others=others)
        rec = with_server(lambda: Myxid(auth_block=myxid_block), run)
        rec["bare"] = consumer.wait(timeout=300)
        rec["sockets"] = keys
        log(report.one_line(rec))
    finally:
        consumer.stop()


def s4_churn(opts, plan, runner):
    churn = ["--churn", plan.churn_s, "--keys", 100]
    n = plan.churn_sockets
    # auth_cache 0: every cycle's Authenticate reaches the plugin.
    nocache = [("auth_cache", "0"), ("policy_cache", "0")]
    with_server(lambda: Myxid(extra=nocache),
                lambda s: runner.run("S4 churn, auth static", s, n, f"{n} sockets cycling",
                                     churn))
    import pgsql
    missing = [p for p in (pgsql.INITDB, pgsql.PG_CTL, pgsql.POSTGRES) if not os.access(p, os.X_OK)]
    if missing or pgsql.PSQL is None or not os.path.isfile(pgsql.PGSQL_PLUGIN):
        runner.not_run("S4 churn, auth pgsql", "myxid", n,
                       f"missing: {', '.join(missing) or pgsql.PSQL or pgsql.PGSQL_PLUGIN}")
        return
    T = pgsql.PgSuite("bench-s4")
    ACTIVE["suites"].append(T)
    install_signals()
    try:
        pg = pgsql.PgCluster(suite=T).start(quiet=True)
        pg.load(pgsql.AUTHIE_SCHEMA)
        now = "(now() AT TIME ZONE 'UTC')"
        pg.sql("INSERT INTO authie_sessions (token_hash, user_id, user_type, active, "
               "expires_at, last_activity_at, login_at, created_at, updated_at) VALUES "
               f"('{sha(TOKEN)}', {USER_ID}, 'User', true, {now} + interval '30 days', "
               f"{now}, {now}, {now}, {now});\n"
               f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {pg.user};\n")
        opts.versions["postgresql"] = pg.sql("SHOW server_version").strip()
        block = sql_block("pgsql", [f"conninfo {pg.conf_conninfo()}", "pool_size 8"])
        with_server(lambda: Myxid(auth_block=block, extra=nocache),
                    lambda s: runner.run("S4 churn, auth pgsql", s, n,
                                         f"{n} sockets cycling", churn))
    finally:
        T.kill_services()
        T.cleanup()
        ACTIVE["suites"].remove(T)


# ------------------------------------------------------------ history

def h_cost(opts, plan, runner, name, keys):
    """S2's fan-out with history off and on, interleaved twice, so drift in
    the shared machine's load hits both alike."""
    n = plan.s2_subscribers
    load = ["--keys", keys, "--publish", "http", "--messages", plan.s2_messages * keys,
            "--rate", 0, "--threads", opts.gen_threads, "--drain", 30]
    for rnd in (1, 2):
        for hist in (False, True):
            with_server(lambda: Myxid(history=hist),
                        lambda s: runner.run(f"{name}, history {'on' if hist else 'off'}",
                                             s, n, f"max, {keys} key(s), round {rnd}", load))


def h1_fanout(opts, plan, runner):
    h_cost(opts, plan, runner, "H1 fan-out", 1)


def h2_keys(opts, plan, runner):
    h_cost(opts, plan, runner, "H2 fan-out", plan.s2_subscribers // 100)


def history_record(runner, scenario, server, sockets, load, result, sampled):
    rec = {"scenario": scenario, "server": "myxid", "sockets": sockets, "load": load,
           "command": "bench/history_load.py", "result": result, "sampled": sampled,
           "exit_status": 0 if result.get("lost") == 0 else 1, "wall_s": result.get("wall_s")}
    runner.records.append(rec)
    log(report.one_line(rec))
    return rec


def h3_replay(opts, plan, runner):
    import history_load
    sockets, history = (200, 1000) if plan.quick else (1000, 1000)
    keys = [f"r{i}" for i in range(10)]

    def run(s):
        port = s.daemon.port
        for k in keys:      # 1,000 events kept on each key
            for n in range(history):
                publish_http(port, k, n)
        sampler = Sampler(s.pids).start()
        result = history_load.replay(port, TOKEN, EXCHANGE, keys, sockets, history)
        return history_record(runner, "H3 replay", s, sockets,
                              f"history {history} on {len(keys)} keys", result, sampler.stop())
    with_server(lambda: Myxid(history=True, extra=[("history_max_replay", "1000")]), run)


def h4_storm(opts, plan, runner):
    import history_load
    sockets = 200 if plan.quick else 1000

    def run(s):
        port = s.daemon.port
        sampler = Sampler(s.pids).start()
        result = history_load.storm(port, TOKEN, EXCHANGE, lambda k, n: publish_http(port, k, n),
                                    sockets, 10, 100, 20, 20)
        result["deliveries_per_second"] = result["replayed"] / result["caught_up_s"]
        result["latency_us"] = {"p50": None, "p99": None, "p999": None,
                                "max": result["caught_up_s"] * 1e6}
        return history_record(runner, "H4 storm", s, sockets,
                              "cut at line 20 of 100, resume with since", result,
                              sampler.stop())
    with_server(lambda: Myxid(history=True), run)


def publish_http(port, key, n):
    """One POST /publish of {"n": n} (a line) to key, checked."""
    import http.client
    body = json.dumps({"exchange": EXCHANGE, "routing_key": key, "event": "Line",
                       "payload": {"n": n, "seq": n, "t": 0}})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", "/publish", body, {"Authorization": f"Bearer {PUBLISH_KEY}",
                                         "Content-Type": "application/json"})
    status = c.getresponse().status
    c.close()
    if status != 200:
        raise RuntimeError(f"publish to {key}: HTTP {status}")


def h5_broker(opts, plan, runner):
    """Broker mode: S3's 10,000 keys (one subscriber each), published over
    POST /publish, history off (to the exchange) and on (to its stream,
    mirrored by the node before delivery), interleaved twice. Then again
    with RabbitMQ on a CPU of its own (myxid and the generator on the
    other): a stream costs the broker more CPU than a queue, and on shared
    CPUs that slows myxid down too; this layout shows what is left when
    the broker has its own host, as in production."""
    layouts = [("", None, None)]
    if len(os.sched_getaffinity(0)) >= 2:
        cpus = sorted(os.sched_getaffinity(0))
        layouts.append((", RabbitMQ on its own CPU", {cpus[0]}, {cpus[1]}))

    def run(node, block, broker):
        k, m = plan.s3_keys, plan.s3_messages // 4
        load = ["--keys", k, "--publish", "http", "--messages", m, "--rate", 0,
                "--window", plan.s3_window, "--hold", plan.s3_hold, "--drain", 60]
        for name, ours, theirs in layouts:
            pin(broker["rabbitmq"], theirs or os.sched_getaffinity(0))
            for rnd in (1, 2):
                for hist in (False, True):
                    clear_queues(node)
                    with_server(lambda: Myxid(auth_block=block, history=hist),
                                lambda s: runner.run(
                                    f"H5 broker{name}, history {'on' if hist else 'off'}", s, k,
                                    f"max, {k} keys, round {rnd}", load, others=broker,
                                    cpus=ours))
    with_rabbit("H5 broker", runner, plan, run)

def d1_deflate(opts, plan, runner):
    """S2's fan-out of deployment-log lines (a 300-byte line in each
    payload), the clients offering permessage-deflate or not, interleaved
    twice: deliveries/s, bytes on the wire and CPU per delivery."""
    n = plan.s2_subscribers
    load = ["--keys", 1, "--publish", "http", "--messages", plan.s2_messages, "--rate", 0,
            "--threads", opts.gen_threads, "--drain", 30, "--line-bytes", DEFLATE_LINE]
    for rnd in (1, 2):
        for on in (False, True):
            with_server(Myxid, lambda s: runner.run(
                f"D1 fan-out, deflate {'on' if on else 'off'}", s, n,
                f"max, {DEFLATE_LINE}-byte log lines, round {rnd}",
                load + (["--deflate"] if on else [])))


def control_call(port, command, body=None, timeout=30):
    """One control API call: (status, answer, seconds)."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.monotonic()
    c.request("POST" if body is not None else "GET", f"/control/{command}",
              json.dumps(body) if body is not None else None,
              {"Authorization": f"Bearer {CONTROL_KEY}", "Content-Type": "application/json"})
    r = c.getresponse()
    answer = json.loads(r.read() or b"null")
    took = time.monotonic() - t0
    c.close()
    return r.status, answer, took


def control_round(opts, runner, servers, n, label):
    """S2's n sockets spread over servers (one user, one key), held by one
    generator per server; then 50 subscriber counts and one disconnect of
    the user, asked of the first server, until no server holds a socket."""
    port = servers[0].daemon.port
    gens = []
    for i, s in enumerate(servers):
        share = n * (i + 1) // len(servers) - n * i // len(servers)
        cmd = [opts.bench] + s.generator_args() + [
            "--connections", share, "--keys", 1, "--publish", "none", "--hold", 120,
            "--sources", max(1, -(-share // 5000)), "--quiet"]
        gens.append(subprocess.Popen([str(a) for a in cmd], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL))

    def held():
        return sum(x["sockets"] for x in control_call(port, "nodes")[1]["node_list"])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            st, a, _ = control_call(port, "subscribers", {"exchange": EXCHANGE,
                                                          "routing_key": "k0"})
            if st == 200 and a["subscribers"] >= n and a["nodes_answered"] == len(servers):
                break
            time.sleep(0.2)
        sampler = Sampler(lambda: [p for s in servers for p in s.pids()]).start()
        counts = sorted(control_call(port, "subscribers", {
            "exchange": EXCHANGE, "routing_key": "k0"})[2] for _ in range(50))
        st, a, took = control_call(port, "disconnect", {"user_id": str(USER_ID)})
        t0 = time.monotonic() - took
        while held() > 0 and time.monotonic() - t0 < 60:
            time.sleep(0.005)
        gone = time.monotonic() - t0
        sampled = sampler.stop()
    finally:
        for g in gens:
            g.kill()
            g.wait()
    ms = lambda x: x * 1000   # noqa: E731
    result = {"deliveries_per_second": n / gone if gone else None, "lost": 0,
              "received": n, "wall_s": gone,
              "latency_us": {"p50": counts[25] * 1e6, "p99": counts[49] * 1e6,
                             "p999": counts[49] * 1e6, "max": counts[-1] * 1e6},
              "control": {"nodes": len(servers), "nodes_answered": a.get("nodes_answered"),
                          "count_p50_ms": ms(counts[25]), "count_max_ms": ms(counts[-1]),
                          "disconnect_answer_ms": ms(took), "disconnected": a.get("disconnected"),
                          "all_closed_ms": ms(gone)}}
    log(f"# C1 {label}: count p50 {ms(counts[25]):.2f} ms, max {ms(counts[-1]):.2f} ms; "
        f"disconnect of {a.get('disconnected')} sockets on {a.get('nodes_answered')} node(s) "
        f"answered in {ms(took):.1f} ms, all closed after {ms(gone):.1f} ms")
    rec = {"scenario": f"C1 control, {label}", "server": "myxid", "sockets": n,
           "load": "count x50, then disconnect the user",
           "command": "bench/scenarios.py control_round", "result": result, "sampled": sampled,
           "exit_status": 0 if a.get("disconnected") == n else 1, "wall_s": gone}
    runner.records.append(rec)
    log(report.one_line(rec))


def c1_control(opts, plan, runner):
    """The control API with S2's sockets (one user, one key): the latency
    of a subscriber count, and of disconnecting every socket of the user,
    on one node alone, then on three nodes over RabbitMQ."""
    n = plan.s2_subscribers
    extra = [("control_key", CONTROL_KEY)]
    with_server(lambda: Myxid(extra=extra),
                lambda s: control_round(opts, runner, [s], n, "1 node"))

    def three(node, block, broker):
        servers = []
        try:
            for _ in range(3):
                servers.append(Myxid(auth_block=block, extra=extra))
            control_round(opts, runner, servers, n, "3 nodes")
        finally:
            for s in servers:
                s.stop()
    with_rabbit("C1 control", runner, plan, three)


def n1_cluster(opts, plan, runner):
    cluster.n1_cluster(opts, plan, runner, lambda block: Myxid(auth_block=block), EXCHANGE,
                       with_rabbit, clear_queues, log)


def n2_fanout(opts, plan, runner):
    cluster_fanout.n2_fanout(opts, plan, runner, lambda block: Myxid(auth_block=block),
                             EXCHANGE, with_rabbit, clear_queues, log)
    if opts.nchan:
        # nchan beside it: the same sockets on one key, in one nginx (its
        # workers share the channel through their shared memory).
        n = plan.n2_sockets
        flat = ["--keys", 1, "--publish", "http", "--messages", plan.n2_messages, "--rate", 0,
                "--threads", opts.gen_threads, "--drain", 30]
        with_server(opts.make_nchan, lambda s: runner.run("N2 fan-out, one nginx", s, n, "max",
                                                          flat))


def n3_failover(opts, plan, runner):
    cluster_failover.n3_failover(opts, plan, runner, lambda block: Myxid(auth_block=block),
                                 with_rabbit, clear_queues, log,
                                 lambda block: Myxid(auth_block=block, history=True))


SCENARIOS = {"S1": s1_capacity, "S2": s2_fanout, "S3": s3_many_keys, "S4": s4_churn,
             "H1": h1_fanout, "H2": h2_keys, "H3": h3_replay, "H4": h4_storm,
             "H5": h5_broker, "D1": d1_deflate, "C1": c1_control, "N1": n1_cluster,
             "N2": n2_fanout, "N3": n3_failover}
CLUSTER = ["N1", "N2", "N3"]


# ------------------------------------------------------------ signals

def cleanup_everything():
    for p in list(ACTIVE["generators"]):
        if p.poll() is None:
            p.kill()
    for d in list(ACTIVE["daemons"]):
        d.daemon.kill()
    for peer in list(peers.ACTIVE):
        peer.stop()
    for s in list(ACTIVE["suites"]):
        try:
            s.kill_services()
        except Exception:
            pass


def on_signal(signum, frame):
    log(f"# {signal.Signals(signum).name}: stopping")
    cleanup_everything()
    os._exit(1)


def install_signals():
    """After the service suites' own handlers: ours stops everything."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)


# ------------------------------------------------------------ main

def find_bench():
    env = os.environ.get("MYXID_BENCH")
    if env:
        return env
    build = os.path.dirname(os.path.dirname(os.path.abspath(MYXID_BIN)))
    return os.path.join(build, "bench", "myxid-bench")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="small sizes, a couple of minutes; writes no file unless --output")
    ap.add_argument("--only", default=None,
                    help="scenarios, e.g. S1,S2 (all; with --nodes: the N ones)")
    ap.add_argument("--nodes", type=int, default=None,
                    help="N scenarios: this many myxid nodes (N1: at every size; "
                         f"default one per {cluster.PER_NODE:,} sockets; N2: "
                         "default 6); alone, runs the N scenarios only")
    ap.add_argument("--no-nchan", dest="nchan", action="store_false",
                    help="skip the nchan runs")
    ap.add_argument("--gen-threads", type=int, default=CPUS,
                    help=f"generator threads for S2 ({CPUS})")
    ap.add_argument("--output", default=None,
                    help="results file (bench/RESULTS.md; with --quick: none)")
    opts = ap.parse_args()
    if opts.only is None:
        opts.only = ",".join(CLUSTER if opts.nodes else SCENARIOS)
    if opts.nodes is not None and opts.nodes < 1:
        ap.error("--nodes wants 1 or more")
    opts.only = [s.strip().upper() for s in opts.only.split(",") if s.strip()]
    for s in opts.only:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s!r} ({', '.join(SCENARIOS)})")
    if opts.output is None and not opts.quick:
        opts.output = os.path.join(HERE, "RESULTS.md")
    return opts


def main():
    opts = parse_args()
    plan = Plan(opts.quick)
    opts.bench = find_bench()
    opts.bare = os.path.join(os.path.dirname(opts.bench), "bare-consumer")
    for prog in (MYXID_BIN, opts.bench, opts.bare):
        if not os.access(prog, os.X_OK):
            sys.exit(f"scenarios: {prog} is missing: build the tree (make), or give "
                     "bench/run --build-dir DIR, or set MYXID_BIN (and MYXID_BENCH)")
    why_no_nchan = peers.nchan_missing()
    if opts.nchan and why_no_nchan:
        log(f"# nchan: skipped ({why_no_nchan})")
        opts.nchan = False
    opts.nofile = nofile_limit()
    opts.versions = {}
    install_signals()
    started = time.monotonic()
    opts.tmp = tempfile.mkdtemp(prefix="myxid-scenarios-")
    opts.make_nchan = lambda: NchanTarget(CPUS, opts.nofile, opts.tmp)
    opts.background = background_load()
    log(f"# background load: {opts.background:.2f} of {CPUS} CPUs busy; "
        f"RLIMIT_NOFILE {opts.nofile}; myxid {MYXID_BIN}; generator {opts.bench}")
    runner = Runner(opts)
    try:
        for name in opts.only:
            try:
                SCENARIOS[name](opts, plan, runner)
            except Exception as exc:   # one scenario failing does not hide the others
                log(f"# {name}: failed: {exc!r}")
                runner.not_run(name, "-", 0, f"failed: {str(exc).splitlines()[0][:200]}")
    finally:
        cleanup_everything()
    opts.elapsed = time.monotonic() - started
    log("")
    log(report.text_table(runner.records))
    for rec in runner.cluster:
        log(rec["summary"])
    log("")
    targets = report.targets(runner.records, opts)
    log(report.text_targets(targets))
    if opts.output:
        report.write_results(opts.output, runner.records, targets, opts, plan,
                             cluster.section(runner.cluster, report.md_table) +
                             cluster_fanout.section(runner.cluster, report.md_table) +
                             cluster_failover.section(runner.cluster, report.md_table) +
                             capacity.section(runner.records + runner.cluster),
                             runner.cluster)
        log(f"# written to {opts.output}")
    log(f"# {opts.elapsed:.0f}s")
    shutil.rmtree(opts.tmp, ignore_errors=True)
    failed = [r for r in runner.records + runner.cluster
              if "not_run" not in r and r["exit_status"] != 0]
    return 1 if failed or not (runner.records or runner.cluster) else 0


if __name__ == "__main__":
    sys.exit(main())
