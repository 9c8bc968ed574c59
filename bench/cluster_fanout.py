"""
cluster_fanout: N2, publishing to a cluster (bench/run; see cluster.py).

  N2 fan-out     the same sockets on one node, then spread over every node:
                 one key that every socket holds, then many keys of 10
                 sockets; published over AMQP as fast as the first node
                 delivers. Deliveries/s and p50/p99 over all the nodes.
                 Then one key at N1's largest size (100,000 sockets, 7
                 nodes).
  N2 publish once  every node up; the key's sockets on 1, 2, 3 ... all of
                 them, at a fixed rate; then all nodes with a tenth of the
                 sockets. Every socket must get every message exactly once,
                 and RabbitMQ's work per message (its own counters: queue
                 deliveries, Erlang reductions) must follow the nodes that
                 bind the key, not the sockets.

The first node's generator publishes (straight into RabbitMQ, as Myxi's
publishers do); every other node's generator counts the same messages
(myxid-bench --expect), so each message is checked on every socket of
every node. The generators share CLOCK_MONOTONIC, so their latency
histograms merge into one, and the cluster's delivery time runs from the
first publish to the last delivery anywhere.
"""

import time

from myxidtest import scrape
from procstat import reading

from cluster import Cluster, broker_counts, nodes_for, run_generators, split, table_section


def broker_work(rabbit):
    """RabbitMQ's own totals so far: messages received from publishers,
    deliveries to consumers (a message sent to N queues and consumed is N),
    and Erlang reductions (its unit of work), plus the CPU seconds of its
    process (which include the schedulers' busy-waiting)."""
    out = rabbit.eval(
        "M = rabbit_global_counters:overview(), "
        "A = maps:get([{protocol,amqp091}], M), "
        "Q = maps:get([{protocol,amqp091},{queue_type,rabbit_classic_queue}], M), "
        "{R, _} = erlang:statistics(exact_reductions), "
        "{maps:get(messages_received_total, A), maps:get(messages_delivered_total, Q), R}.")
    received, delivered, reductions = (int(x) for x in out.strip().strip("{}").split(","))
    return {"received": received, "delivered": delivered, "reductions": reductions,
            "cpu_s": reading([rabbit.pid])["cpu_s"]}


def node_counters(nodes):
    """Per node: messages taken from RabbitMQ, deliveries to sockets, and
    the duplicates its broker link dropped."""
    out = []
    for node in nodes:
        m = scrape(node.daemon.port)[1]
        out.append({k: int(m.get(f"myxid_{k}", 0))
                    for k in ("broker_messages_total", "deliveries_total",
                              "broker_duplicates_total")})
    return out


def merged_percentiles(results, points=(50, 99, 99.9)):
    """Percentiles (µs) of every generator's latency histogram together."""
    counts = {}
    for r in results:
        for mid, n in r.get("json", {}).get("latency_hist", []):
            counts[mid] = counts.get(mid, 0) + n
    total = sum(counts.values())
    out = {}
    for p in points:
        rank, seen = max(1, -(-total * p // 100)), 0
        out[p] = None
        for mid in sorted(counts):
            seen += counts[mid]
            if seen >= rank:
                out[p] = mid / 1000.0
                break
    return out


def wait_unbound(rabbit, exchange, timeout=60):
    """Until no node binds a key of exchange: the last round's nodes unbind
    once their sockets are gone, and a binding left over would count a
    node too many."""
    deadline = time.monotonic() + timeout
    while broker_counts(rabbit, exchange)["bindings"] and time.monotonic() < deadline:
        time.sleep(0.2)


def fanout_round(opts, rabbit, exchange, nodes, bound, sockets, keys, messages, rate, window,
                 tag):
    """sockets on the first `bound` of nodes; the first node's generator
    publishes messages (rate 0: window flow), the others --expect them.
    Returns the round's record (without scenario or label)."""
    wait_unbound(rabbit, exchange)
    counts = split(sockets, bound)
    users = nodes[:bound]

    def load(i):
        if i == 0:
            return ["--publish", "amqp", "--amqp-url", rabbit.url, "--messages", messages,
                    "--rate", rate, "--window", window, "--drain", 60]
        return ["--expect", messages, "--drain", 60]

    def measure():
        return {"broker": broker_work(rabbit), "nodes": node_counters(nodes),
                "node_cpu_s": reading([n.daemon.proc.pid for n in nodes])["cpu_s"]}
    results, ready_s, before = run_generators(opts, users, counts, keys, tag, measure, load)
    after = measure()
    return fanout_record(nodes, bound, sockets, keys, messages, rate, window, ready_s,
                         results, before, after)


def fanout_record(nodes, bound, sockets, keys, messages, rate, window, ready_s, results,
                  before, after):
    js = [r.get("json", {}) for r in results]
    first = js[0].get("t_first_publish_ns") if js else None
    last = max((j.get("t_last_delivery_ns", 0) for j in js), default=0)
    span = (last - first) / 1e9 if first and last > first else None
    received = sum(j.get("received", 0) for j in js)
    b0, b1 = before["broker"], after["broker"]
    published = js[0].get("published", 0) if js else 0
    per_node = [{k: a[k] - b[k] for k in a} for a, b in zip(after["nodes"], before["nodes"])]
    failed = [r for r in results if r["exit_status"] != 0]
    # Once per node: each bound node took every message from RabbitMQ
    # once, the others none, and no node saw a duplicate.
    once = (all(p["broker_messages_total"] == published for p in per_node[:bound]) and
            all(p["broker_messages_total"] == 0 for p in per_node[bound:]) and
            not any(p["broker_duplicates_total"] for p in per_node))
    return {
        "server": f"myxid x {len(nodes)}", "nodes": len(nodes), "bound": bound,
        "sockets": sockets, "keys": keys, "messages": messages, "published": published,
        "rate": rate, "window": window, "ready_s": ready_s,
        "expected": sum(j.get("expected", 0) for j in js), "received": received,
        "lost": sum(j.get("lost", 0) for j in js),
        "duplicates": sum(j.get("duplicates", 0) for j in js),
        "errors": sum(j.get("errors", 0) for j in js),
        "delivery_s": span, "deliveries_per_s": received / span if span else None,
        "latency_us": merged_percentiles(results),
        "broker_received": b1["received"] - b0["received"],
        "broker_delivered": b1["delivered"] - b0["delivered"],
        "broker_reductions": b1["reductions"] - b0["reductions"],
        "broker_cpu_s": round(b1["cpu_s"] - b0["cpu_s"], 3),
        "nodes_cpu_s": round(after["node_cpu_s"] - before["node_cpu_s"], 3),
        "per_node": per_node, "once_per_node": once,
        "exit_status": 1 if failed or received == 0 or not once else 0,
        "generators": results,
    }


def per_message(rec, total):
    return total / rec["published"] if rec["published"] else None


# Rows: what a reader compares. RabbitMQ's deliveries per message are the
# nodes' own count of what it delivered them (its global counter also
# holds the nodes' hellos on the control exchange, kept in the JSON);
# its reductions per message should follow the bound nodes.
COLUMNS = ["round", "nodes bound / up", "sockets", "keys", "messages", "deliveries/s",
           "p50 ms", "p99 ms", "lost / dup", "RabbitMQ deliveries per message",
           "RabbitMQ reductions per message", "RabbitMQ CPU ms", "nodes CPU s",
           "messages each bound node took"]


def row(rec):
    lat = rec["latency_us"]
    ms = lambda v: "-" if v is None else f"{v / 1000:.2f}"   # noqa: E731
    dpm = per_message(rec, sum(p["broker_messages_total"] for p in rec["per_node"]))
    rpm = per_message(rec, rec["broker_reductions"])
    node_msgs = sorted({p["broker_messages_total"] for p in rec["per_node"][:rec["bound"]]})
    return [rec["label"], f"{rec['bound']} / {rec['nodes']}", f"{rec['sockets']:,}",
            f"{rec['keys']:,}", f"{rec['messages']:,}" +
            (f" at {rec['rate']:g}/s" if rec["rate"] else ""),
            "-" if rec["deliveries_per_s"] is None else f"{rec['deliveries_per_s']:,.0f}",
            ms(lat.get(50)), ms(lat.get(99)), f"{rec['lost']} / {rec['duplicates']}",
            "-" if dpm is None else f"{dpm:.2f}", "-" if rpm is None else f"{rpm:,.0f}",
            f"{rec['broker_cpu_s'] * 1000:,.0f}", f"{rec['nodes_cpu_s']:.1f}",
            " ".join(f"{n:,}" for n in node_msgs)]


def line(rec):
    return "# " + rec["scenario"] + ": " + ", ".join(f"{c} {v}" for c, v in zip(COLUMNS, row(rec)))


def n2_fanout(opts, plan, runner, make_node, exchange, with_rabbit, clear_queues, log):
    def add(rec, scenario, label):
        rec.update(scenario=scenario, label=label)
        rec["summary"] = line(rec)
        runner.cluster.append(rec)
        log(rec["summary"])

    def run(rabbit, block, broker):
        n = opts.nodes or plan.n2_nodes
        clear_queues(rabbit)
        cluster = Cluster(lambda: make_node(block), n)
        def one(scenario, label, bound, sockets, keys, messages, rate, window):
            add(fanout_round(opts, rabbit, exchange, cluster.nodes, bound, sockets, keys,
                             messages, rate, window, f"n2-{len(runner.cluster)}"),
                scenario, label)
        try:
            time.sleep(1)                  # every node's link up, its queue declared
            s = plan.n2_sockets
            for bound in (1, n):
                one("N2 fan-out", "one key", bound, s, 1, plan.n2_messages, 0, 64)
            for bound in (1, n):
                one("N2 fan-out", "many keys, 10 sockets each", bound, s, max(1, s // 10),
                    plan.n2_key_messages, 0, 2048)
            s, m, r = plan.n2_once_sockets, plan.n2_once_messages, plan.n2_once_rate
            for bound in sorted({b for b in (1, 2, 3, n) if b <= n}):
                one("N2 publish once", "one key", bound, s, 1, m, r, 64)
            one("N2 publish once", "one key, a tenth of the sockets", n, s // 10, 1, m, r, 64)
        finally:
            cluster.stop()
        # The same fan-out at N1's largest size: one node per PER_NODE
        # sockets, every socket on one key.
        big = plan.n2_big_sockets
        clear_queues(rabbit)
        cluster = Cluster(lambda: make_node(block), nodes_for(big, opts.nodes))
        try:
            time.sleep(1)
            one("N2 fan-out", "one key, N1's largest size", len(cluster.nodes), big, 1,
                plan.n2_big_messages, 0, 64)
        finally:
            cluster.stop()
    with_rabbit("N2 fan-out", runner, plan, run)


def section(records, md_table):
    return table_section(
        "Cluster (N2): publishing once to every node",
        "One generator per bound node; the first publishes into RabbitMQ, the "
        "others count the same messages. Deliveries/s: every delivery on every "
        "node, from the first publish to the last delivery anywhere; p50/p99 over "
        "all of them. RabbitMQ's deliveries and reductions are its own counters "
        "over the round, divided by the messages it received.",
        [row(r) for r in records if r.get("scenario", "").startswith("N2")],
        COLUMNS, md_table)
