"""
cluster: myxid as several nodes on one RabbitMQ, driven as one cluster
(bench/run's N scenarios; scenarios.py runs them). This file: starting the
nodes, driving one generator per node, reading the broker, and N1;
cluster_fanout.py: N2; cluster_failover.py: N3.

  N1 cluster    SIZE subscribed sockets in all over N nodes (one myxid and
                one generator per ~16,000 sockets: RLIMIT_NOFILE here is
                20,000 a process), every node holding sockets on every one
                of KEYS keys, so every node binds every key. Measured once
                all are subscribed: the nodes' memory per socket, and
                RabbitMQ's memory per binding with its queues, bindings
                and connections counted.

One generator (bench/myxid-bench) per node, started together; each holds
its ready sockets (--hold-until) until the driver has measured the whole
cluster, which it knows from the nodes' own myxid_subscriptions gauges.
"""

import json
import math
import os
import subprocess
import time

from myxidtest import scrape
from procstat import status_kib

# Sockets a myxid node and a generator each hold at most in these runs.
PER_NODE = 16000
READY_TIMEOUT_S = 600


def nodes_for(sockets, asked=None, least=2):
    return asked or max(least, math.ceil(sockets / PER_NODE))


def split(total, n):
    """total as n near-equal whole parts."""
    base, extra = divmod(total, n)
    return [base + (1 if i < extra else 0) for i in range(n)]


def memory_kib(pid):
    """Private plus shared resident memory of pid, KiB."""
    st = status_kib(pid)
    return st.get("RssAnon", 0) + st.get("RssShmem", 0)


def gauges(nodes, name):
    """A metric of each node (None for a node that does not answer)."""
    out = []
    for node in nodes:
        try:
            out.append(int(scrape(node.daemon.port)[1].get(name, 0)))
        except OSError:
            out.append(None)
    return out


def subscriptions(nodes):
    return sum(v or 0 for v in gauges(nodes, "myxid_subscriptions"))


def table_section(title, intro, rows, columns, md_table):
    """A cluster scenario's part of RESULTS.md ([] without rows)."""
    if not rows:
        return []
    return [f"## {title}", "", intro, "", md_table(rows, columns), ""]


def broker_memory(rabbit):
    """RabbitMQ's own account of its memory, KiB, after a garbage collection
    of every Erlang process (RSS moves by megabytes with the collector):
    {"total": ..., "ets": ...}; bindings live in ETS tables."""
    out = rabbit.eval("[erlang:garbage_collect(P) || P <- erlang:processes()], "
                      "{erlang:memory(total), erlang:memory(ets)}.").strip()
    total, ets = (int(x) for x in out.strip("{}").split(","))
    return {"total": total // 1024, "ets": ets // 1024}


def broker_counts(rabbit, exchange):
    """What RabbitMQ holds for the nodes: their queues, their bindings to
    exchange (each also binds the control exchange), their links."""
    bound = rabbit.myxid_bindings()
    return {"queues": len(rabbit.myxid_queues()),
            "bindings": sum(1 for x, _, _ in bound if x == exchange),
            "other_bindings": sum(1 for x, _, _ in bound if x != exchange),
            "connections": len(rabbit.list_connections())}


class Cluster:
    """N myxid nodes (make_node() each) on one RabbitMQ; stop() them all."""

    def __init__(self, make_node, n):
        self.nodes = []
        try:
            for _ in range(n):
                self.nodes.append(make_node())
        except Exception:
            self.stop()
            raise

    def pids(self):
        return [n.daemon.proc.pid for n in self.nodes]

    def stop(self):
        for node in self.nodes:
            node.stop()
        self.nodes = []


def run_generators(opts, nodes, counts, keys, tag, measure, load=None, wait=None,
                   during=None):
    """One generator per node, together; measure() once every socket is
    subscribed (or the wait timed out), then let them go. load(i): the
    generator of node i's own arguments (default: publish nothing); wait:
    called after measure() and before they go (what happens while they
    hold); during: called once they go (while they publish). Returns
    (results, seconds until all were subscribed or None, measure()'s)."""
    go = os.path.join(opts.tmp, f"{tag}.go")
    procs = []
    t0 = time.monotonic()
    for i, (node, n) in enumerate(zip(nodes, counts)):
        path = os.path.join(opts.tmp, f"{tag}-{i}.json")
        cmd = ([opts.bench] + node.generator_args() +
               ["--connections", str(n), "--sources", str(max(1, -(-n // 5000))),
                "--keys", str(keys), "--hold-until", go, "--json", path, "--quiet"] +
               [str(a) for a in (load(i) if load else ["--publish", "none"])])
        procs.append((subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True), path))
    want, ready_s = sum(counts), None
    last, since = -1, t0
    try:
        # Until all are subscribed; not after a generator ended (it holds
        # until the file exists, so it failed) or 30 s without progress.
        while time.monotonic() - t0 < READY_TIMEOUT_S:
            now, got = time.monotonic(), subscriptions(nodes)
            if got >= want:
                ready_s = now - t0
                break
            if got != last:
                last, since = got, now
            if now - since > 30 or any(p.poll() is not None for p, _ in procs):
                break
            time.sleep(0.25)
        measured = measure()
        if wait is not None:
            wait()
    finally:
        with open(go, "w"):
            pass
    if during is not None:
        during()
    results = []
    for p, path in procs:
        try:
            out, _ = p.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        result = {"exit_status": p.returncode, "output": (out or "").strip()[-1500:]}
        try:
            with open(path) as f:
                result["json"] = json.load(f)
        except (OSError, ValueError):
            pass
        results.append(result)
    return results, ready_s, measured


def n1_cluster(opts, plan, runner, make_node, exchange, with_rabbit, clear_queues, log):
    """S1 across nodes: memory per socket in the nodes and in RabbitMQ.
    clear_queues(rabbit) deletes the queues earlier nodes left (they
    outlive their node by x-expires, with every binding)."""
    # The sizes at one node per PER_NODE sockets; then (unless --nodes)
    # the same sockets on 1 to 6 nodes, what the capacity model is checked
    # against (bench/capacity.py).
    runs = [(size, nodes_for(size, opts.nodes)) for size in plan.n1_sizes]
    if not opts.nodes:
        runs += [(plan.n1_sweep_sockets, n) for n in plan.n1_sweep_nodes]

    def run(rabbit, block, broker):
        for size, n in runs:
            keys = plan.n1_keys
            clear_queues(rabbit)
            cluster = Cluster(lambda: make_node(block), n)
            try:
                time.sleep(1)                  # every node's link up, its queue declared
                node_before = [memory_kib(p) for p in cluster.pids()]
                rabbit_before = broker_memory(rabbit)
                counts_before = broker_counts(rabbit, exchange)

                def measure():
                    return {"node_kib": [memory_kib(p) for p in cluster.pids()],
                            "rabbit_kib": broker_memory(rabbit),
                            "counts": broker_counts(rabbit, exchange),
                            "subscriptions": subscriptions(cluster.nodes)}
                results, ready_s, m = run_generators(
                    opts, cluster.nodes, split(size, n), keys, f"n1-{size}-{n}", measure)
            finally:
                cluster.stop()
            rec = n1_record(size, n, keys, ready_s, node_before, rabbit_before,
                            counts_before, m, results)
            rec["summary"] = n1_line(rec)
            runner.cluster.append(rec)
            log(rec["summary"])
    with_rabbit("N1 cluster", runner, plan, run)


def n1_record(size, n, keys, ready_s, node_before, rabbit_before, counts_before, m,
              results):
    failed = [r for r in results if r["exit_status"] != 0]
    node_grew = sum(m["node_kib"]) - sum(node_before)
    bindings = m["counts"]["bindings"] - counts_before["bindings"]
    rabbit_grew = m["rabbit_kib"]["total"] - rabbit_before["total"]
    return {
        "scenario": "N1 cluster", "server": f"myxid x {n}", "sockets": size,
        "nodes": n, "keys": keys, "ready_s": round(ready_s, 1) if ready_s else None,
        "subscribed": m["subscriptions"],
        "node_kib_before": node_before, "node_kib_ready": m["node_kib"],
        "node_kib_per_socket": round(node_grew / size, 2) if size else None,
        "rabbit_kib_before": rabbit_before, "rabbit_kib_ready": m["rabbit_kib"],
        "rabbit_kib_per_binding": round(rabbit_grew / bindings, 2) if bindings > 0 else None,
        "rabbit_ets_kib_per_binding": round((m["rabbit_kib"]["ets"] - rabbit_before["ets"]) /
                                            bindings, 2) if bindings > 0 else None,
        "broker_before": counts_before, "broker_ready": m["counts"],
        "exit_status": 1 if failed or m["subscriptions"] < size else 0,
        "generators": results,
    }


N1_COLUMNS = ["sockets", "nodes", "keys", "all subscribed after s", "node KiB/socket",
              "nodes MiB (all)", "RabbitMQ queues / bindings / connections",
              "RabbitMQ grew MiB (Erlang, after GC)", "RabbitMQ KiB/binding (all / ETS)", "failed generators"]


def n1_row(rec):
    b = rec["broker_ready"]
    return [f"{rec['sockets']:,}", str(rec["nodes"]), f"{rec['keys']:,}",
            "not all" if rec["ready_s"] is None else f"{rec['ready_s']:.1f}",
            f"{rec['node_kib_per_socket']:.2f}",
            f"{sum(rec['node_kib_ready']) / 1024:.0f}",
            f"{b['queues']} / {b['bindings']:,} / {b['connections']}",
            f"{(rec['rabbit_kib_ready']['total'] - rec['rabbit_kib_before']['total']) / 1024:.1f}"
            f" (ETS {(rec['rabbit_kib_ready']['ets'] - rec['rabbit_kib_before']['ets']) / 1024:.1f})",
            "n/a" if rec["rabbit_kib_per_binding"] is None
            else f"{rec['rabbit_kib_per_binding']:.2f} / {rec['rabbit_ets_kib_per_binding']:.2f}",
            str(sum(1 for g in rec["generators"] if g["exit_status"] != 0))]


def n1_line(rec):
    return ("# N1 cluster: " + ", ".join(f"{c} {v}" for c, v in zip(N1_COLUMNS, n1_row(rec))))


def section(records, md_table):
    """The cluster table for RESULTS.md ([] without N1 runs)."""
    return table_section(
        "Cluster (N1): several nodes on one RabbitMQ",
        "Memory once every socket is subscribed, against the same processes "
        "before the first socket; RabbitMQ's growth is divided by the bindings "
        "the nodes added (its queues and connections existed before).",
        [n1_row(r) for r in records if r.get("scenario") == "N1 cluster" and "nodes" in r],
        N1_COLUMNS, md_table)
