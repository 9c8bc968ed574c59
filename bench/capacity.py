#!/usr/bin/python3
"""
capacity: the capacity model of bench/CAPACITY.md, as code.

  bench/capacity.py [RESULTS.md]

Fits the model's costs to one bench/run's cluster runs (N1, N2, N3 and S3,
S4 from the same file), checks what it predicts for 1 to 6 nodes against
the runs it was not fitted on, and projects 1M and 10M sockets. bench/run
puts the check into RESULTS.md; CAPACITY.md explains the model and quotes
the projection.

Fitted on:   node memory per socket: the largest N1 run; per node: every
             N1 node before its first socket. RabbitMQ ETS per binding: the
             largest N1 run. RabbitMQ work per message: N2 publish once with
             1 node and with every node bound (reductions = a + b x nodes).
Checked on:  N1's 1, 2, 3, 6-node runs of 12,000 sockets (node memory,
             bindings, ETS), N2 publish once with 2 and 3 nodes and with a
             tenth of the sockets (reductions, queue deliveries).
"""

import json
import math
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def load_records(path):
    """Every run's JSON record in a RESULTS.md."""
    with open(path) as f:
        text = f.read()
    out = []
    for block in re.findall(r"```json\n(.*?)\n```", text, re.S):
        try:
            out.append(json.loads(block))
        except ValueError:
            pass
    return out


def n1_runs(records):
    return [r for r in records if r.get("scenario") == "N1 cluster" and "nodes" in r
            and r.get("exit_status") == 0]


def node_grew(r):
    return sum(r["node_kib_ready"]) - sum(r["node_kib_before"])


def bindings_added(r):
    return r["broker_ready"]["bindings"] - r["broker_before"]["bindings"]


def once_runs(records):
    return [r for r in records if r.get("scenario") == "N2 publish once" and
            r.get("published")]


def fit(records):
    """The model's costs from one run's records; None where a run is missing."""
    p = {}
    n1 = n1_runs(records)
    if n1:
        big = max(n1, key=lambda r: r["sockets"])
        # A node's memory grows per socket and per key it binds (its key
        # table, its subscriber lists): both from the two largest runs,
        # which differ in sockets per bound key; one run: per socket only.
        two = sorted(n1, key=lambda r: r["sockets"])[-2:]
        (s1, k1, g1), (s2, k2, g2) = [(r["sockets"], bindings_added(r), node_grew(r))
                                      for r in (two if len(two) == 2 else two * 2)]
        det = s1 * k2 - s2 * k1
        if det and len(two) == 2:
            p["node_kib_per_socket"] = (g1 * k2 - g2 * k1) / det
            p["node_kib_per_key"] = (s1 * g2 - s2 * g1) / det
            p["fitted_memory_on"] = " and ".join(f"{r['sockets']:,} sockets on {r['nodes']} nodes"
                                                 for r in two)
        else:
            p["node_kib_per_socket"] = node_grew(big) / big["sockets"]
            p["node_kib_per_key"] = 0.0
            p["fitted_memory_on"] = f"{big['sockets']:,} sockets on {big['nodes']} nodes"
        before = [k for r in n1 for k in r["node_kib_before"]]
        p["node_kib_base"] = sum(before) / len(before)
        p["ets_kib_per_binding"] = ((big["rabbit_kib_ready"]["ets"] -
                                     big["rabbit_kib_before"]["ets"]) / bindings_added(big))
    once = [r for r in once_runs(records) if "tenth" not in r.get("label", "")]
    if len(once) >= 2:
        lo, hi = min(once, key=lambda r: r["bound"]), max(once, key=lambda r: r["bound"])
        rl = lo["broker_reductions"] / lo["published"]
        rh = hi["broker_reductions"] / hi["published"]
        p["red_per_node"] = (rh - rl) / (hi["bound"] - lo["bound"])
        p["red_base"] = rl - p["red_per_node"] * lo["bound"]
        p["fitted_work_on"] = f"{lo['bound']} and {hi['bound']} nodes bound"
    fan = [r for r in records if r.get("scenario") == "N2 fan-out" and
           r.get("label") == "one key" and r.get("received")]
    if fan:
        r = max(fan, key=lambda r: r["bound"])
        p["node_us_per_delivery_burst"] = r["nodes_cpu_s"] * 1e6 / r["received"]
    if once:
        r = min(once, key=lambda r: r["bound"])
        p["node_us_per_delivery_paced"] = r["nodes_cpu_s"] * 1e6 / r["received"]
    fo = [r for r in records if r.get("scenario") == "N3 failover" and r.get("all_back_s")]
    if fo:
        r = fo[0]
        p["reconnects_per_s"] = r["killed_share"] / r["all_back_s"]
    for r in records:
        if r.get("scenario") == "S3 many keys" and "bare" in r:
            # One queue, one consumer, as fast as RabbitMQ goes: its rate,
            # and its CPU per message (the sampled window includes the
            # 10,000 binds before: an upper bound).
            p["queue_msgs_per_s"] = r["bare"]["messages_per_second"]
            cpu = (r.get("others") or {}).get("rabbitmq", {}).get("cpu_s")
            if cpu and r["bare"].get("messages"):
                p["broker_us_per_message"] = cpu * 1e6 / r["bare"]["messages"]
        if r.get("scenario") == "S4 churn, auth static" and "result" in r:
            p["subscribes_per_s_node"] = r["result"].get("cycles_per_second")
    return p


def predict_node_mib(p, sockets, nodes, node_keys):
    """node_keys: the keys each node binds, summed over the nodes."""
    return (nodes * p["node_kib_base"] + sockets * p["node_kib_per_socket"] +
            node_keys * p["node_kib_per_key"]) / 1024


def predict_reductions(p, bound):
    return p["red_base"] + p["red_per_node"] * bound


def check(records, p):
    """[what, nodes, predicted, measured, measured/predicted] for the runs
    the model was not fitted on."""
    rows = []
    n1 = n1_runs(records)
    fitted = sorted(n1, key=lambda r: r["sockets"])[-2:]
    for r in sorted(n1, key=lambda r: (r["sockets"], r["nodes"])):
        if any(r is f for f in fitted) or "node_kib_per_socket" not in p:
            continue
        meas = sum(r["node_kib_ready"]) / 1024
        pred = predict_node_mib(p, r["sockets"], r["nodes"], r["keys"] * r["nodes"])
        rows.append([f"nodes' memory, {r['sockets']:,} sockets, {r['keys']:,} keys (MiB)",
                     r["nodes"], pred, meas])
        rows.append([f"RabbitMQ bindings, {r['keys']:,} keys on every node", r["nodes"],
                     r["keys"] * r["nodes"], bindings_added(r)])
        ets = r["rabbit_kib_ready"]["ets"] - r["rabbit_kib_before"]["ets"]
        rows.append(["RabbitMQ ETS growth (KiB)", r["nodes"],
                     p["ets_kib_per_binding"] * bindings_added(r), ets])
    if "red_base" in p:
        once = once_runs(records)
        for r in sorted(once, key=lambda r: (r["bound"], r["sockets"])):
            fitted = r["bound"] in (min(x["bound"] for x in once if "tenth" not in x["label"]),
                                    max(x["bound"] for x in once)) and "tenth" not in r["label"]
            dpm = sum(x["broker_messages_total"] for x in r["per_node"]) / r["published"]
            rows.append([f"RabbitMQ deliveries per message, {r['sockets']:,} sockets",
                         r["bound"], r["bound"], dpm])
            if not fitted:
                rows.append([f"RabbitMQ reductions per message, {r['sockets']:,} sockets",
                             r["bound"], predict_reductions(p, r["bound"]),
                             r["broker_reductions"] / r["published"]])
    return [row + [row[3] / row[2] if row[2] else None] for row in rows]


# ------------------------------------------------------------ projection

# A production node and the load the projection assumes (CAPACITY.md says
# why): a deploy-log page has ~10 viewers; a tenth of the keys are live at
# once, at 5 lines/s each.
NODE_CORES = 8
NODE_MEM_GIB = 32
MEM_USE = 0.7                 # of the node's memory, for sockets
CPU_USE = 0.5                 # of its cores, for deliveries (headroom for storms)
PER_KEY = 10
ACTIVE = 0.1
RATE = 5.0
BROKER_CPU_USE = 0.5          # of a RabbitMQ core
BROKER_NODE_CORES = 16        # a RabbitMQ node's cores
QUEUE_USE = 0.5               # of what one queue carried to the bare consumer (S3)


def nodes_binding(nodes, per_key, sticky):
    """Distinct nodes holding a key's sockets: 1 when the load balancer
    routes by key, else per_key sockets placed at random over nodes."""
    if sticky or nodes <= 1:
        return 1.0
    return nodes * (1 - (1 - 1 / nodes) ** per_key)


def project(p, sockets, sticky):
    keys = sockets / PER_KEY
    msgs = keys * ACTIVE * RATE
    deliveries = msgs * PER_KEY
    # Worker loops scale with cores (one per core, nothing shared on the
    # delivery path): the 2-core figure per core, times the node's cores.
    by_cpu = NODE_CORES * CPU_USE * 1e6 / (p["node_us_per_delivery_paced"] * deliveries / sockets)
    mem_kib = NODE_MEM_GIB * 1024 * 1024 * MEM_USE

    def short(n):
        """What n nodes cannot do: a node's memory holds its sockets and
        every key it binds; its CPU delivers their events; its queue (one
        Erlang process) carries the messages of every key it binds."""
        b = nodes_binding(n, PER_KEY, sticky)
        per_socket = p["node_kib_per_socket"] + p["node_kib_per_key"] * b / PER_KEY
        out = []
        if sockets / n * per_socket > mem_kib:
            out.append("memory")
        if sockets / n > by_cpu:
            out.append("CPU")
        if msgs * b / n > QUEUE_USE * p["queue_msgs_per_s"]:
            out.append("its RabbitMQ queue")
        return out
    nodes = 1
    while short(nodes) and nodes < 100000:
        nodes += 1
    limit = ", ".join(short(nodes - 1)) if nodes > 1 else "-"
    b = nodes_binding(nodes, PER_KEY, sticky)
    bindings = keys * b
    # RabbitMQ's CPU per message with one queue bound (S3), scaled by its
    # work per message with b queues bound (N2's reductions).
    us = p["broker_us_per_message"] * predict_reductions(p, b) / predict_reductions(p, 1)
    broker_cores = msgs * us / 1e6 / BROKER_CPU_USE
    node_kib = sockets * p["node_kib_per_socket"] + bindings * p["node_kib_per_key"]
    return {"sockets": sockets, "placement": "by key" if sticky else "at random",
            "nodes": nodes, "limit": limit, "node_mem_gib": node_kib / 2**20 / nodes,
            "messages_per_s": msgs, "deliveries_per_s": deliveries,
            "nodes_per_key": b, "bindings": bindings,
            "ets_gib": bindings * p["ets_kib_per_binding"] / 2**20,
            "queue_deliveries_per_s": msgs * b, "broker_cores": broker_cores,
            "broker_nodes": math.ceil(broker_cores / BROKER_NODE_CORES),
            "per_queue_msgs_per_s": msgs * b / nodes}


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if isinstance(v, int) or abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.2f}"


def md_table(rows, cols):
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


CHECK_COLUMNS = ["prediction", "nodes", "model", "measured", "measured / model"]
PROJ_COLUMNS = ["sockets", "sockets placed", "nodes (8 cores, 32 GiB)", "bound by",
                "GiB per node",
                "messages/s in", "deliveries/s out", "nodes binding a key", "bindings",
                "RabbitMQ ETS GiB", "queue deliveries/s", "RabbitMQ cores",
                "RabbitMQ nodes (16 cores)", "queues / connections",
                "messages/s per node queue"]


def section(records):
    """The model check for RESULTS.md ([] without N1 and N2 runs)."""
    p = fit(records)
    if "node_kib_per_socket" not in p or "red_base" not in p:
        return []
    return ["## Capacity model, checked (bench/capacity.py, bench/CAPACITY.md)", "",
            f"Fitted on this run: {p['node_kib_per_socket']:.2f} KiB per socket and "
            f"{p['node_kib_per_key']:.2f} KiB per key bound in a node "
            f"({p['fitted_memory_on']}), {p['node_kib_base']:,.0f} KiB per idle node, "
            f"{p['ets_kib_per_binding']:.2f} KiB of RabbitMQ ETS per binding; RabbitMQ "
            f"{p['red_base']:,.0f} + {p['red_per_node']:,.0f} x nodes bound reductions per "
            f"message ({p['fitted_work_on']}). Every row below is a run it was not fitted on.",
            "", md_table(check(records, p), CHECK_COLUMNS), ""]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "RESULTS.md")
    records = load_records(path)
    p = fit(records)
    print(f"# fitted on {path}:")
    for k, v in p.items():
        print(f"#   {k}: {fmt(v) if not isinstance(v, str) else v}")
    print("\n".join(section(records)))
    need = ("node_kib_per_socket", "red_base", "node_us_per_delivery_paced",
            "queue_msgs_per_s", "broker_us_per_message")
    if all(k in p for k in need):
        rows = []
        for sockets in (1_000_000, 10_000_000):
            for sticky in (False, True):
                x = project(p, sockets, sticky)
                rows.append([x["sockets"], x["placement"], x["nodes"], x["limit"],
                             x["node_mem_gib"],
                             x["messages_per_s"], x["deliveries_per_s"], x["nodes_per_key"],
                             x["bindings"], x["ets_gib"], x["queue_deliveries_per_s"],
                             x["broker_cores"], x["broker_nodes"],
                             f"{x['nodes']} / {x['nodes']}", x["per_queue_msgs_per_s"]])
        print("## Projection\n")
        print(md_table(rows, PROJ_COLUMNS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
