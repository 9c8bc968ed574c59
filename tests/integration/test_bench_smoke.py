#!/usr/bin/python3
"""
bench/run's tools, scaled down: the load generator (bench/myxid-bench) and
the bare consumer (bench/bare-consumer) against myxid, a private RabbitMQ
node and a private nginx + nchan, with the driver's own server configs
(bench/scenarios.py, bench/peers.py). It checks that the tools work and
that nothing is lost: exit status 0, every socket ready, received ==
expected (computed here, not read back), no errors, the JSON fields
bench/run reads present. It asserts no timings: numbers come from
bench/run, never from a test.

The generator is $MYXID_BENCH, else BUILD/bench/myxid-bench where BUILD
is the build tree of $MYXID_BIN (BUILD/server/myxid).
"""
import json
import os
import subprocess
import sys

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import MYXID_BIN, prerequisite_missing, require

require(websocket_client=False)
BUILD = os.path.dirname(os.path.dirname(os.path.abspath(MYXID_BIN)))
MYXID_BENCH = os.environ.get("MYXID_BENCH") or os.path.join(BUILD, "bench", "myxid-bench")
BARE_CONSUMER = os.path.join(os.path.dirname(MYXID_BENCH), "bare-consumer")
for prog in (MYXID_BENCH, BARE_CONSUMER):
    if not (os.path.isfile(prog) and os.access(prog, os.X_OK)):
        prerequisite_missing(f"{prog} (make builds it; set MYXID_BENCH)")

from rabbitmq import BrokerSuite, broker_block, require_rabbitmq  # noqa: E402

require_rabbitmq()
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import peers  # noqa: E402
import scenarios  # noqa: E402

if peers.nchan_missing():
    prerequisite_missing(peers.nchan_missing())

from rabbitmq import start_node  # noqa: E402  (after the prerequisites)

T = BrokerSuite()

FIELDS = ["connections", "ready", "connect_seconds", "ready_per_second", "published",
          "expected", "received", "lost", "errors", "deliveries_per_second",
          "bytes_per_socket"]
NESTED = {"latency_us": ["p50", "p99", "p999", "max"],
          "server": ["rss_before_kib", "rss_ready_kib", "rss_end_kib", "anon_before_kib",
                     "anon_ready_kib", "cpu_ready_s", "cpu_publish_s"],
          "generator": ["cpu_user_s", "cpu_sys_s"]}
CHURN_NESTED = {"cycle_latency_us": ["p50", "p99", "max"]}


def generate(what, server_args, args, timeout=60):
    """Run the generator; its JSON result (None, with a failed check, if
    it wrote none)."""
    path = os.path.join(T.base, f"{what.replace(' ', '-')}.json")
    cmd = [MYXID_BENCH] + server_args + [str(a) for a in args] + ["--json", path, "--quiet"]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    T.eq(p.returncode, 0, f"{what}: myxid-bench exits 0 (" + " ".join(cmd[1:]) + ")")
    if p.returncode != 0:
        print("\n".join(f"    {ln}" for ln in (p.stdout + p.stderr).splitlines()[-15:]))
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        T.check(False, f"{what}: wrote its JSON result", repr(exc))
        return None


def check_fields(what, r, fields=FIELDS, nested=NESTED):
    missing = [f for f in fields if f not in r]
    for name, subs in nested.items():
        missing += [f"{name}.{s}" for s in subs if s not in (r.get(name) or {})]
    T.eq(missing, [], f"{what}: every JSON field bench/run reads is there")


def check_delivery(what, r, sockets, messages, per_message):
    """Every socket ready and every delivery in, exactly once."""
    if r is None:
        return
    T.eq((r.get("connections"), r.get("ready")), (sockets, sockets),
         f"{what}: {sockets} sockets, all ready")
    T.eq(r.get("published"), messages, f"{what}: {messages} messages published")
    expected = round(messages * per_message)
    T.eq((r.get("expected"), r.get("received")), (expected, expected),
         f"{what}: received == expected == {expected}")
    T.eq((r.get("lost"), r.get("errors")), (0, 0), f"{what}: nothing lost, no errors")
    check_fields(what, r)


@T.test(timeout=60)
def fanout_over_http():
    """Tiny S2: 200 sockets on one key, 200 messages through POST /publish."""
    server = scenarios.Myxid()
    try:
        r = generate("S2", server.generator_args(),
                     ["--connections", 200, "--keys", 1, "--publish", "http",
                      "--messages", 200, "--rate", 0])
        check_delivery("S2 fan-out", r, 200, 200, 200)
    finally:
        server.stop()


@T.test(timeout=60)
def fanout_compressed():
    """Tiny D1: the same with log lines, the clients offering
    permessage-deflate: every message arrives compressed and inflates."""
    server = scenarios.Myxid()
    try:
        r = generate("D1", server.generator_args(),
                     ["--connections", 200, "--keys", 1, "--publish", "http",
                      "--messages", 100, "--rate", 0, "--line-bytes", 300, "--deflate"])
        check_delivery("D1 deflate on", r, 200, 100, 200)
        T.eq(r.get("deflated"), 200 * 100, "D1: every delivery came compressed (RSV1) and inflated")
        T.check(0 < r.get("wire_bytes", 0) / (200 * 100) < 300,
                "D1: fewer bytes on the wire per delivery than the 300-byte line itself",
                r.get("wire_bytes"))
    finally:
        server.stop()


@T.test(timeout=60)
def churn_with_authenticate():
    """Tiny S4: 2 s of connect, Authenticate, Subscribe, close."""
    server = scenarios.Myxid(extra=[("auth_cache", "0")])
    try:
        r = generate("S4", server.generator_args(),
                     ["--connections", 20, "--keys", 10, "--churn", 2])
        if r is not None:
            T.check(r.get("cycles", 0) > 0, "S4 churn: cycles completed",
                    f"cycles: {r.get('cycles')!r}")
            T.eq(r.get("errors"), 0, "S4 churn: no errors")
            check_fields("S4 churn", r, ["cycles", "cycles_per_second", "errors"],
                         CHURN_NESTED)
    finally:
        server.stop()


@T.test(timeout=120)
def many_keys_through_rabbitmq():
    """Tiny S3: 100 keys, one socket each, messages published to RabbitMQ;
    then the bare consumer on the same keys, fed by the same publisher
    (through a myxid with one socket), gets every one of them."""
    node = start_node()
    block = scenarios.STATIC_AUTH + broker_block(node.url) + "\n"
    pub = ["--publish", "amqp", "--amqp-url", node.url, "--keys", 100]
    server = scenarios.Myxid(auth_block=block)
    try:
        # --hold: myxid answers Subscribed before its broker link has bound the key
        r = generate("S3", server.generator_args(),
                     ["--connections", 100, "--messages", 1000, "--rate", 0, "--hold", 2] + pub)
        check_delivery("S3 many keys", r, 100, 1000, 1)
    finally:
        server.stop()
    consumer = peers.BareConsumer(BARE_CONSUMER, node.url, scenarios.EXCHANGE, 100, 1000,
                                  timeout=60).start()
    server = scenarios.Myxid(auth_block=block)
    try:
        target = scenarios.BareTarget(server, consumer)
        r = generate("S3 bare publisher", target.generator_args(),
                     ["--connections", 1, "--messages", 1000, "--rate", 0, "--hold", 1] + pub)
        # the one socket is on key 0: 10 of the 1000 messages
        check_delivery("S3 publisher's own socket", r, 1, 1000, 0.01)
        b = consumer.wait(timeout=60)
        T.eq((b["exit_status"], b["messages"], b["expected"], b["keys"], b["redelivered"]),
             (0, 1000, 1000, 100, 0), "bare consumer: every message, once, from 100 keys")
        T.check(b["acks"] >= 2 and b["prefetch"] == 2048 and b["ack_batch"] == 512,
                "bare consumer: myxid's prefetch and batched acks", repr(b))
    finally:
        server.stop()
        consumer.stop()


@T.test(timeout=120)
def tiny_cluster():
    """Tiny N1: 300 sockets over 2 nodes on one RabbitMQ, 20 keys; the
    generators hold their sockets (--hold-until) until measured."""
    import cluster
    from types import SimpleNamespace
    node = start_node()
    block = scenarios.STATIC_AUTH + broker_block(node.url) + "\n"
    scenarios.clear_queues(node)        # the S3 test's, with their bindings
    nodes = cluster.Cluster(lambda: scenarios.Myxid(auth_block=block), 2)
    held = []
    try:
        def measure():
            held.append(cluster.subscriptions(nodes.nodes))
            return cluster.broker_counts(node, scenarios.EXCHANGE)
        opts = SimpleNamespace(bench=MYXID_BENCH, tmp=T.base)
        results, ready_s, counts = cluster.run_generators(
            opts, nodes.nodes, cluster.split(300, 2), 20, "tiny", measure)
    finally:
        nodes.stop()
    T.check(ready_s is not None, "N1: every socket subscribed across the nodes",
            repr([r["output"] for r in results]))
    T.eq(held, [300], "N1: all 300 still held while measured")
    T.eq([(r["exit_status"], r.get("json", {}).get("ready")) for r in results],
         [(0, 150), (0, 150)], "N1: each generator: its 150 sockets ready, exit 0")
    T.eq((counts["queues"], counts["bindings"]), (2, 40),
         "N1: RabbitMQ holds a queue per node and every key bound on both")


def tiny_cluster_nodes(n):
    """n myxid nodes on the suite's RabbitMQ, with no queue of an earlier
    test left bound."""
    import cluster
    node = start_node()
    scenarios.clear_queues(node)
    block = scenarios.STATIC_AUTH + broker_block(node.url) + "\n"
    return node, block, cluster.Cluster(lambda: scenarios.Myxid(auth_block=block), n)


@T.test(timeout=180)
def tiny_publish_once():
    """Tiny N2: 300 sockets on one key over 2 of 3 nodes; the first node's
    generator publishes 30 messages into RabbitMQ, the second's counts them
    (--expect). Every socket gets each once; each bound node takes each
    from RabbitMQ once, the third none."""
    import cluster_fanout
    from types import SimpleNamespace
    rabbit, _, nodes = tiny_cluster_nodes(3)
    try:
        opts = SimpleNamespace(bench=MYXID_BENCH, tmp=T.base)
        rec = cluster_fanout.fanout_round(opts, rabbit, scenarios.EXCHANGE, nodes.nodes, 2, 300,
                                          1, 30, 0, 64, "tiny-n2")
    finally:
        nodes.stop()
    got = [(r["exit_status"], r.get("json", {}).get("expected"), r.get("json", {}).get("received"),
            r.get("json", {}).get("duplicates")) for r in rec["generators"]]
    T.check(got == [(0, 150 * 30, 150 * 30, 0)] * 2,
            "N2: both generators (publisher, --expect) got 30 x 150 deliveries, no duplicate",
            repr(got) + "\n" + "\n".join(r["output"] for r in rec["generators"]))
    T.eq([p["broker_messages_total"] for p in rec["per_node"]], [30, 30, 0],
         "N2: each bound node took each message from RabbitMQ once, the unbound one none")
    T.eq((rec["published"], rec["received"], rec["exit_status"]), (30, 300 * 30, 0),
         "N2: the round's record: 30 published, 9,000 deliveries, passed")
    T.check(rec["latency_us"][50] is not None and rec["deliveries_per_s"],
            "N2: latency merged over the generators, a cluster delivery rate")


@T.test(timeout=180)
def tiny_failover():
    """Tiny N3: 300 sockets over 3 nodes; the third is SIGKILLed, its 100
    sockets come back on the other two (myxid-bench --failover), which
    then hold all 300; the others' generators see no error; a new node
    joins and takes 100 more. Then again with lines flowing on an exchange
    with history: the moved sockets resume with since, nothing is lost."""
    import cluster_failover
    from types import SimpleNamespace
    rabbit = start_node()
    block = scenarios.STATIC_AUTH + broker_block(rabbit.url) + "\n"
    runner = SimpleNamespace(cluster=[])
    opts = SimpleNamespace(bench=MYXID_BENCH, tmp=T.base, nodes=3)
    plan = SimpleNamespace(n3_sockets=300, n3_keys=10, n3h_sockets=300, n3h_messages=200,
                           n3h_rate=100, n3h_kill_after=0.5)
    cluster_failover.n3_failover(opts, plan, runner,
                                 lambda b: scenarios.Myxid(auth_block=b),
                                 lambda name, r, p, fn: fn(rabbit, block, {}),
                                 scenarios.clear_queues, lambda msg: None,
                                 lambda b: scenarios.Myxid(auth_block=b, history=True))
    T.eq([r.get("scenario") for r in runner.cluster], ["N3 failover", "N3 failover, history"],
         "N3: two rounds, held and with events flowing")
    rec = runner.cluster[0] if runner.cluster else {}
    got = (rec.get("killed_share"), rec.get("lost_server"), rec.get("reconnected"))
    T.check(got == (100, 100, 100), "N3: the killed node's 100 sockets lost it and all came back",
            repr(got) + "\n" + "\n".join(g["output"] for g in rec.get("generators", [])))
    T.eq(sum(rec.get("sockets_after") or [0]), 300, "N3: the two survivors hold all 300")
    T.eq((rec.get("others_socket_errors"), rec.get("others_failed")), (0, 0),
         "N3: the other nodes' generators saw no socket error")
    T.check((rec.get("join_status"), rec.get("exit_status")) == (0, 0),
            "N3: the joining node took its 100; the round passed", rec.get("join_output"))
    T.check(rec.get("all_back_s") is not None and rec["all_back_s"] > 0.2,
            "N3: all back after the first backoff at least (0.25 s)", repr(rec.get("all_back_s")))
    hist = runner.cluster[1] if len(runner.cluster) > 1 else {}
    got = tuple(hist.get(k) for k in ("reconnected", "expected", "lost", "duplicates",
                                      "not_recovered", "exit_status"))
    # 200 lines over 10 keys, 30 sockets a key: 6,000 deliveries.
    T.check(got == (100, 6000, 0, 0, 0, 0),
            "N3 history: the killed node's 100 sockets resumed elsewhere (since), every "
            "socket got every line once",
            repr(got) + "\n" + "\n".join(g["output"] for g in hist.get("generators", [])))


@T.test(timeout=60)
def plain_mode_against_nchan():
    """The nchan peer: 200 sockets on 4 channels, 100 messages."""
    nchan = scenarios.NchanTarget(2, 4096, T.base).start()
    try:
        r = generate("nchan", nchan.generator_args(),
                     ["--connections", 200, "--keys", 4, "--publish", "http",
                      "--messages", 100, "--rate", 0])
        # message j goes to key j % 4: 25 messages per key, 50 sockets each
        check_delivery("nchan plain", r, 200, 100, 50)
        T.eq(len(nchan.worker_pids()), 2, "nchan: the template's 2 workers run")
    finally:
        nchan.stop()


T.run()
