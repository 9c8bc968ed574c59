"""
cluster_failover: N3, a node leaving and one joining under load (bench/run;
see cluster.py).

  N3 failover   SIZE subscribed sockets over N nodes, held. The last node is
                SIGKILLed: its generator (myxid-bench --failover) reconnects
                each of its sockets to one of the other nodes after the JS
                client's backoff and jitter, and subscribes it again. Then a
                new node joins and a new generator puts the dead node's
                share of sockets on it.

Measured: the time from the SIGKILL until every socket is subscribed again
(the generator's own clock, the same CLOCK_MONOTONIC as ours), how long
each socket was away (p50/p99/max), the attempts that failed, the time
until the newcomer's sockets are all subscribed; and that nothing else
moved: the other generators' sockets saw no error (they would fail their
run), every node still counts its sockets.
"""

import json
import os
import subprocess
import time

from cluster import (Cluster, gauges, nodes_for, run_generators, split, subscriptions,
                     table_section)

BACK_TIMEOUT_S = 180


def wait_subscribed(nodes, want, timeout):
    """Seconds until the nodes hold want subscriptions in all, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if subscriptions(nodes) >= want:
            return time.monotonic() - t0
        time.sleep(0.05)
    return None


def join(opts, make_node, cluster, share, keys, tag):
    """A new node, and a new generator with share sockets on it (they
    subscribe and leave). Returns (seconds until all were ready by the
    generator's count, its exit status, its output tail)."""
    node = make_node()
    cluster.nodes.append(node)
    time.sleep(1)                          # its link to RabbitMQ up
    cmd = [str(a) for a in [opts.bench] + node.generator_args() + [
        "--connections", share, "--sources", max(1, -(-share // 5000)), "--keys", keys,
        "--publish", "none", "--json", os.path.join(opts.tmp, f"{tag}-join.json"), "--quiet"]]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=300)
    try:
        with open(os.path.join(opts.tmp, f"{tag}-join.json")) as f:
            connect_s = json.load(f).get("connect_seconds")
    except (OSError, ValueError):
        connect_s = None
    return connect_s, p.returncode, (p.stdout + p.stderr).strip()[-800:]


def failover_urls(nodes):
    return ",".join(f"ws://127.0.0.1:{s.daemon.port}/" for s in nodes)


def n3_failover(opts, plan, runner, make_node, with_rabbit, clear_queues, log,
                make_history_node=None):
    """The held round; then, given make_history_node, the history round."""
    def run(rabbit, block, broker):
        held_round(rabbit, block)
        if make_history_node is not None:
            history_round(rabbit, block)

    def add(rec):
        rec["summary"] = line(rec)
        runner.cluster.append(rec)
        log(rec["summary"])

    def history_round(rabbit, block):
        """Lines published through the first node the whole time (its
        exchange keeps history, on a RabbitMQ stream every node mirrors);
        the last node SIGKILLed in the middle; its sockets resume on the
        others with "since" (myxid-bench --resume). Every socket must get
        every line exactly once."""
        size, keys = plan.n3h_sockets, plan.n3_keys
        n = max(2, nodes_for(size, opts.nodes, least=3))
        counts = split(size, n)
        m, r = plan.n3h_messages, plan.n3h_rate
        clear_queues(rabbit)
        cluster = Cluster(lambda: make_history_node(block), n)
        survivors, victim, seen = cluster.nodes[:-1], cluster.nodes[-1], {}
        try:
            time.sleep(1)

            def load(i):
                if i == 0:
                    return ["--publish", "http", "--messages", m, "--rate", r, "--drain", 60]
                more = (["--failover", failover_urls(survivors), "--resume"]
                        if i == n - 1 else [])
                return ["--expect", m, "--drain", 60] + more

            def during():
                time.sleep(plan.n3h_kill_after)
                seen["kill_ns"] = time.monotonic_ns()
                victim.daemon.proc.kill()
                victim.daemon.proc.wait()
                # Only while lines still flow: the generators leave once
                # every line is in (their own clocks say when all were back).
                seen["back_s"] = wait_subscribed(survivors, size,
                                                 max(1.0, m / r - plan.n3h_kill_after))
                seen["sockets_after"] = gauges(survivors, "myxid_sockets")
            results, ready_s, before = run_generators(
                opts, cluster.nodes, counts, keys, f"n3h-{size}",
                lambda: {"sockets": gauges(cluster.nodes, "myxid_sockets")}, load,
                during=during)
        finally:
            cluster.stop()
        rec = record(size, n, keys, counts, ready_s, before, seen, results)
        js = [x.get("json", {}) for x in results]
        rec.update(scenario="N3 failover, history", messages=m, rate=r,
                   expected=sum(j.get("expected", 0) for j in js),
                   received=sum(j.get("received", 0) for j in js),
                   lost=sum(j.get("lost", 0) for j in js),
                   duplicates=sum(j.get("duplicates", 0) for j in js),
                   not_recovered=(js[-1].get("failover") or {}).get("not_recovered"))
        if rec["lost"] or rec["duplicates"] or rec["not_recovered"] or not rec["expected"]:
            rec["exit_status"] = 1
        add(rec)

    def held_round(rabbit, block):
        size, keys = plan.n3_sockets, plan.n3_keys
        n = max(2, nodes_for(size, opts.nodes, least=3))
        counts = split(size, n)
        tag = f"n3-{size}"
        clear_queues(rabbit)
        cluster = Cluster(lambda: make_node(block), n)
        victim = cluster.nodes[-1]
        survivors = cluster.nodes[:-1]
        seen = {}
        try:
            time.sleep(1)

            def load(i):
                if i < n - 1:
                    return ["--publish", "none"]
                return ["--publish", "none", "--failover", failover_urls(survivors)]

            def measure():
                return {"sockets": gauges(cluster.nodes, "myxid_sockets")}

            def storm():
                seen["kill_ns"] = time.monotonic_ns()
                victim.daemon.proc.kill()
                victim.daemon.proc.wait()
                seen["back_s"] = wait_subscribed(survivors, size, BACK_TIMEOUT_S)
                time.sleep(1)              # late errors on the others show up
                seen["sockets_after"] = gauges(survivors, "myxid_sockets")
                seen["join"] = join(opts, lambda: make_node(block), cluster, counts[-1],
                                    keys, tag)
            results, ready_s, before = run_generators(opts, cluster.nodes, counts, keys, tag,
                                                      measure, load, storm)
        finally:
            cluster.stop()
        add(record(size, n, keys, counts, ready_s, before, seen, results))
    with_rabbit("N3 failover", runner, plan, run)


def record(size, n, keys, counts, ready_s, before, seen, results):
    js = [r.get("json", {}) for r in results]
    fo = js[-1].get("failover", {}) if js else {}
    kill = seen.get("kill_ns")
    others_errors = sum(j.get("socket_errors", 0) for j in js[:-1])
    others_failed = sum(1 for r in results[:-1] if r["exit_status"] != 0)
    join_s, join_status, join_out = seen.get("join", (None, 0, "no node joined"))
    back_s = ((fo["t_last_back_ns"] - kill) / 1e9
              if kill and fo.get("t_last_back_ns", 0) > kill else None)
    ok = (ready_s is not None and fo.get("lost_server") == counts[-1] and
          fo.get("reconnected") == counts[-1] and results[-1]["exit_status"] == 0 and
          others_failed == 0 and others_errors == 0 and join_status == 0 and
          ("join" in seen or "kill_ns" in seen))
    return {
        "scenario": "N3 failover", "server": f"myxid x {n}", "sockets": size, "nodes": n,
        "keys": keys, "ready_s": ready_s, "killed_share": counts[-1],
        "sockets_before": before["sockets"], "sockets_after": seen.get("sockets_after"),
        "lost_server": fo.get("lost_server"), "reconnected": fo.get("reconnected"),
        "retries": fo.get("retries"),
        "first_lost_ms": ((fo["t_first_lost_ns"] - kill) / 1e6
                          if kill and fo.get("t_first_lost_ns", 0) > kill else None),
        "all_back_s": back_s, "all_back_seen_s": seen.get("back_s"),
        "away_ms": fo.get("away_ms"), "others_socket_errors": others_errors,
        "others_failed": others_failed, "join_ready_s": join_s, "join_status": join_status,
        "join_output": join_out, "exit_status": 0 if ok else 1, "generators": results,
    }


COLUMNS = ["round", "sockets", "nodes", "sockets on the killed node", "all back after s",
           "each away p50 / p99 / max ms", "failed attempts", "other nodes' socket errors",
           "sockets per survivor after", "joining node: its share ready in s",
           "events: deliveries expected / lost / duplicated / sockets not resumed"]


def row(rec):
    away = rec.get("away_ms") or {}
    after = rec.get("sockets_after") or []
    history = "expected" in rec
    return ["events flowing, history" if history else "held",
            f"{rec['sockets']:,}", str(rec["nodes"]), f"{rec['killed_share']:,}",
            "not all" if rec["all_back_s"] is None else f"{rec['all_back_s']:.2f}",
            " / ".join("-" if away.get(k) is None else f"{away[k]:,.0f}"
                       for k in ("p50", "p99", "max")),
            str(rec.get("retries")), str(rec["others_socket_errors"]),
            f"{min(after):,}-{max(after):,}" if after and None not in after else "-",
            "-" if rec["join_ready_s"] is None else f"{rec['join_ready_s']:.2f}",
            (f"{rec['expected']:,} / {rec['lost']:,} / {rec['duplicates']:,} / "
             f"{rec['not_recovered']}") if history else "-"]


def line(rec):
    return f"# {rec['scenario']}: " + ", ".join(f"{c} {v}" for c, v in zip(COLUMNS, row(rec)))


def section(records, md_table):
    return table_section(
        "Cluster (N3): a node SIGKILLed under load, then one joining",
        "The killed node's sockets reconnect to the others after the JS client's "
        "backoff (a random wait in [d/2, d], d = 0.5 s doubling per attempt, as "
        "clients/js/myxid.js); \"all back\" is from the SIGKILL to the last one "
        "subscribed again. The other nodes' generators fail their run on any "
        "socket error; none did when the column says 0.",
        [row(r) for r in records if r.get("scenario", "").startswith("N3 failover")],
        COLUMNS, md_table)
