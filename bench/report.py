"""
report: bench/run's table, its verdict on the issue's targets, and
bench/RESULTS.md. A run record (scenarios.Runner) holds the generator's
JSON ("result"), the driver's /proc sampling of the server ("sampled",
see procstat.py) and, for the bare consumer, its own JSON ("bare");
records with "not_run" say why a size was not measured.
"""

import datetime
import json
import os
import subprocess

from auth_throughput import daemon_description, machine_info, md_table, text_table as table
from procstat import kib_per_socket

COLUMNS = ["scenario", "server", "sockets", "rate", "deliveries/s", "p50 ms", "p99 ms",
           "p99.9 ms", "max ms", "lost", "KiB/socket", "server CPU s", "µs/delivery",
           "gen CPU s", "vs peer", "run"]
DEBIAN_PACKAGES = ["nginx-light", "libnginx-mod-nchan", "rabbitmq-server",
                   "libevent-2.1-7", "librabbitmq4", "postgresql-15"]


# ------------------------------------------------------------ figures of a run

def ok(rec):
    return "not_run" not in rec and rec["exit_status"] == 0


def failure(rec):
    """Why a run failed, shortly ("" if it did not)."""
    if "not_run" in rec:
        return ""
    if "bare" in rec:
        b = rec["bare"]
        if b["exit_status"] != 0 or rec["exit_status"] != 0:
            return f"bare got {b['messages']}/{b['expected']}, publisher exit {rec['exit_status']}"
        return ""
    if rec["exit_status"] == 0:
        return ""
    r = rec["result"]
    why = []
    if r.get("ready", 0) < r.get("connections", rec["sockets"]):
        why.append(f"ready {r.get('ready', 0)}/{r.get('connections', rec['sockets'])}")
    for field in ("lost", "errors"):
        if r.get(field):
            why.append(f"{field} {r[field]}")
    return ", ".join(why) or f"exit {rec['exit_status']}"


def rate(rec):
    """Deliveries (S4: cycles; bare consumer: messages) per second."""
    if "bare" in rec:
        return rec["bare"]["messages_per_second"]
    r = rec["result"]
    if "cycles_per_second" in r and "churn" in rec["scenario"]:
        return r["cycles_per_second"]
    return r.get("deliveries_per_second")


def latency_ms(rec):
    """(p50, p99, p99.9, max) in ms, None where not measured."""
    if "bare" in rec:
        return (None,) * 4
    r = rec["result"]
    lat = r.get("cycle_latency_us") if "churn" in rec["scenario"] else r.get("latency_us")
    if not lat:
        return (None,) * 4
    return tuple(lat.get(k) / 1000 if lat.get(k) is not None else None
                 for k in ("p50", "p99", "p999", "max"))


def kib(rec):
    if "not_run" in rec or "bare" in rec or not rec["scenario"].startswith("S1"):
        return None
    return kib_per_socket(rec["sampled"], rec["result"].get("ready", 0))


def cpu_per_delivery(rec):
    """Server CPU µs per delivery (S2, S3: the whole run's CPU, connecting
    included, over the deliveries)."""
    if not rec["scenario"].startswith(("S2", "S3", "H", "D")):
        return None
    n = rec["bare"]["messages"] if "bare" in rec else rec["result"].get("received")
    return server_cpu(rec) / n * 1e6 if n else None


def gen_cpu(rec):
    g = rec["result"].get("generator") or {}
    if not g:
        return None
    return g.get("cpu_user_s", 0) + g.get("cpu_sys_s", 0)


def server_cpu(rec):
    if "bare" in rec:
        return rec["bare"]["cpu_user_s"] + rec["bare"]["cpu_sys_s"]
    return rec["sampled"]["cpu_s"]


def lost(rec):
    if "bare" in rec:
        return rec["bare"]["expected"] - rec["bare"]["messages"]
    r = rec["result"]
    if "churn" in rec["scenario"]:
        return r.get("errors")
    return r.get("lost")


def find(records, scenario, server, sockets=None):
    for rec in records:
        if (rec["scenario"] == scenario and rec["server"] == server and "not_run" not in rec
                and (sockets is None or rec["sockets"] == sockets)):
            return rec
    return None


def off_round(rec, records):
    """The "... off" run of the same round as rec (an "... on" run)."""
    return next((r for r in records if r["scenario"] == rec["scenario"][:-2] + "off" and
                 r.get("load") == rec["load"] and "not_run" not in r), None)


def wire_per_delivery(rec):
    r = rec["result"]
    return r["wire_bytes"] / r["received"] if r.get("received") and "wire_bytes" in r else None


def peer_ratio(rec, records):
    """myxid against the peer of its scenario: (text, value) or (None, None)."""
    if rec["server"] != "myxid" or "not_run" in rec:
        return None, None
    sc = rec["scenario"]
    if sc.startswith("S1"):
        other = find(records, sc, "nchan", rec["sockets"])
        a, b = kib(rec), other and kib(other)
        if a is not None and b:
            return f"mem {a / b:.2f}× nchan", a / b
    elif sc == "S2 fan-out":
        other = find(records, sc, "nchan", rec["sockets"])
        if other and rate(other) and rate(rec) is not None:
            return f"{rate(rec) / rate(other):.2f}× nchan", rate(rec) / rate(other)
    elif sc.startswith("S2 latency"):
        other = find(records, sc, "nchan", rec["sockets"])
        a, b = latency_ms(rec)[1], other and latency_ms(other)[1]
        if a is not None and b:
            return f"p99 {a / b:.2f}× nchan", a / b
    elif sc.startswith(("H1", "H2", "H5", "D1")) and sc.endswith(" on"):
        off = off_round(rec, records)
        if off and rate(off) and rate(rec) is not None:
            what = sc.rsplit(", ", 1)[1][:-3]
            return f"{rate(rec) / rate(off):.2f}× {what} off", rate(rec) / rate(off)
    elif sc.startswith("S3"):
        other = find(records, sc, "bare consumer")
        if other and rate(other) and rate(rec) is not None:
            return f"{rate(rec) / rate(other):.2f}× bare", rate(rec) / rate(other)
    return None, None


# ------------------------------------------------------------ the table

def fmt(v, spec=",.0f"):
    return "-" if v is None else format(v, spec)


def row(rec, records):
    if "not_run" in rec:
        short = rec["not_run"].split(" (")[0]
        return [rec["scenario"], rec["server"], fmt(rec["sockets"], ","), "-", "-", "-", "-",
                "-", "-", "-", "-", "-", "-", "-", "-", f"not run: {short}"]
    r = rec["result"]
    sockets = fmt(rec["sockets"], ",")
    if ("bare" not in rec and "churn" not in rec["scenario"] and r.get("ready") is not None
            and r.get("ready") != rec["sockets"]):
        sockets = f"{r['ready']:,}/{rec['sockets']:,}"
    unit = " cyc/s" if "churn" in rec["scenario"] else ""
    lat = latency_ms(rec)
    return [rec["scenario"], rec["server"], sockets, rec["load"],
            fmt(rate(rec)) + (unit if rate(rec) is not None else ""),
            *(fmt(v, ".2f") for v in lat), fmt(lost(rec), ","), fmt(kib(rec), ".2f"),
            fmt(server_cpu(rec), ".2f"), fmt(cpu_per_delivery(rec), ".2f"),
            fmt(gen_cpu(rec), ".2f"),
            peer_ratio(rec, records)[0] or "-", "FAILED: " + failure(rec) if failure(rec) else "ok"]


def text_table(records):
    if not records:                     # only cluster runs (bench/cluster.py)
        return "(no single-node runs)"
    return table([row(r, records) for r in records], COLUMNS)


def one_line(rec):
    """A progress line for a finished run."""
    r = row(rec, [])
    per_s = r[4] if r[4].endswith("/s") else r[4] + "/s"
    return (f"# {r[0]} {r[1]} {r[2]} sockets, {r[3]}: {per_s}  p99 {r[6]} ms  lost {r[9]}  "
            f"KiB/socket {r[10]}  CPU server {r[11]} s ({r[12]} µs/delivery), "
            f"generator {r[13]} s" +
            "".join(f", {k} {v['cpu_s']:.2f} s" for k, v in rec.get("others", {}).items()) +
            f"  {r[15]}")


# ------------------------------------------------------------ targets

def _verdict(rec, met):
    if rec is None:
        return "not run"
    if not ok(rec):
        return f"missed (the run failed: {failure(rec)})"
    return "met" if met else "missed"


def targets(records, opts):
    """[(target, measured, verdict)] for the issue's targets."""
    out = []
    s1 = [r for r in records if r["scenario"] == "S1 capacity" and r["server"] == "myxid"]
    run = [r for r in s1 if "not_run" not in r]
    largest = max(run, key=lambda r: r["sockets"]) if run else None
    big = [r for r in s1 if r["sockets"] >= 100000]
    if big and "not_run" not in big[0]:
        out.append(("≥100,000 subscribed sockets (S1)", f"{big[0]['result'].get('ready', 0):,} ready",
                    _verdict(big[0], big[0]["result"].get("ready") == 100000)))
    else:
        why = big[0]["not_run"] if big else "not planned (--quick or --only)"
        got = (f"largest run: {largest['result'].get('ready', 0):,} of {largest['sockets']:,} "
               "ready" if largest else "no S1 run")
        out.append(("≥100,000 subscribed sockets (S1)", got, f"not run: {why}"))
    k = largest and kib(largest)
    out.append(("≤3 KiB of myxid's user-space memory per subscribed socket (S1, largest run)",
                f"{k:.2f} KiB at {largest['sockets']:,} sockets" if k is not None else "-",
                _verdict(largest, k is not None and k <= 3)))
    s2 = find(records, "S2 fan-out", "myxid")
    v = s2 and rate(s2)
    out.append(("S2 ≥1,000,000 deliveries/s", f"{v:,.0f}/s" if v else "-",
                _verdict(s2, v is not None and v >= 1e6)))
    text, ratio = peer_ratio(s2, records) if s2 else (None, None)
    out.append(("S2 ≥1.5× nchan's deliveries/s (same run)", text or "-",
                _verdict(s2 if ratio is not None else None, ratio is not None and ratio >= 1.5)))
    both = [r for r in run if find(records, "S1 capacity", "nchan", r["sockets"])]
    mem = max(both, key=lambda r: r["sockets"]) if both else None
    text, ratio = peer_ratio(mem, records) if mem else (None, None)
    out.append(("≤0.5× nchan's memory per socket (S1, largest size both ran)",
                f"{text} at {mem['sockets']:,}" if text else "-",
                _verdict(mem if ratio is not None else None, ratio is not None and ratio <= 0.5)))
    s3 = find(records, "S3 many keys", "myxid")
    text, ratio = peer_ratio(s3, records) if s3 else (None, None)
    bare = find(records, "S3 many keys", "bare consumer")
    if bare is not None and not ok(bare):
        s3_verdict = f"missed (the bare consumer run failed: {failure(bare)})"
    else:
        s3_verdict = _verdict(s3 if ratio is not None else None, ratio is not None and ratio >= 0.9)
    out.append(("S3 ≥0.9× the bare consumer's rate", text or "-", s3_verdict))
    for sc, shape in (("S2 latency", "one key, every socket on it"),
                      ("S2 latency, many keys", "100 sockets on each key")):
        lat = find(records, sc, "myxid")
        p99 = lat and latency_ms(lat)[1]
        out.append((f"p99 publish→receive ≤5 ms at 100,000 deliveries/s ({sc}: {shape})",
                    f"p99 {p99:.2f} ms at {rate(lat):,.0f} deliveries/s" if p99 is not None
                    else "-", _verdict(lat, p99 is not None and p99 <= 5)))
    out += history_targets(records)
    out += deflate_targets(records)
    if opts.quick:
        out = [(t, m + " (quick sizes)" if m != "-" else m, v) for t, m, v in out]
    return out


def history_targets(records):
    """Issue 14: history may cost at most 15% of deliveries/s, every round
    (H1, H2: embedded; H5: broker mode, its stream)."""
    out = []
    for sc in ("H1 fan-out", "H2 fan-out", "H5 broker", "H5 broker, RabbitMQ on its own CPU"):
        on = [r for r in records if r["scenario"] == f"{sc}, history on" and "not_run" not in r]
        ratios = [x for x in (peer_ratio(r, records)[1] for r in on) if x is not None]
        target = f"{sc}: history on ≥0.85× history off's deliveries/s (every round)"
        if not ratios:
            out.append((target, "-", "not run"))
            continue
        measured = ", ".join(f"{x:.2f}×" for x in ratios)
        worst = next((r for r in on if not ok(r)), on[0])
        out.append((target, measured, _verdict(worst, min(ratios) >= 0.85)))
    return out


def deflate_targets(records):
    """Issue 15: with deflate, CPU per delivery at most 1.5× without (every
    round); and what it saves on the wire (measured, no target)."""
    on = [r for r in records if r["scenario"] == "D1 fan-out, deflate on" and "not_run" not in r]
    pairs = [(off_round(r, records), r) for r in on]
    pairs = [(a, b) for a, b in pairs if a is not None]
    cpu = [(cpu_per_delivery(b), cpu_per_delivery(a)) for a, b in pairs]
    cpu = [x / y for x, y in cpu if x and y]
    wire = [(wire_per_delivery(a), wire_per_delivery(b)) for a, b in pairs]
    target = "D1: CPU per delivery with deflate ≤1.5× without (every round)"
    if not cpu:
        return [(target, "-", "not run"),
                ("D1: bytes on the wire per delivery, deflate off → on", "-", "not run")]
    worst = next((r for r in on if not ok(r)), on[0])
    saved = ", ".join(f"{a:.0f} → {b:.0f} B ({b / a:.2f}×)" for a, b in wire if a and b)
    return [(target, ", ".join(f"{x:.2f}×" for x in cpu), _verdict(worst, max(cpu) <= 1.5)),
            ("D1: bytes on the wire per delivery, deflate off → on", saved or "-", "measured")]


def text_targets(targets):
    return "Targets:\n" + "\n".join(f"  {v.upper() if v in ('met', 'missed') else v}: {t}: {m}"
                                    for t, m, v in targets)


# ------------------------------------------------------------ RESULTS.md

def debian_versions():
    out = []
    for pkg in DEBIAN_PACKAGES:
        p = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg],
                           capture_output=True, text=True)
        out.append(f"{pkg} {p.stdout.strip() if p.returncode == 0 else '(not installed)'}")
    return ", ".join(out)


def write_results(path, records, targets, opts, plan, sections=(), more_records=()):
    """sections: markdown lines put after the targets (the cluster table);
    more_records: runs of their own shape, listed with the others at the end."""
    info = machine_info()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Push benchmarks (bench/run)",
        "",
        "Measured numbers, written by `bench/run`" + (" --quick" if plan.quick else "") +
        "; bench/README.md says what each scenario does and how to read the table. "
        "Re-running overwrites this file.",
        "",
        f"- date: {now} (took {opts.elapsed:.0f} s)",
        f"- machine: {info['nproc']} CPUs ({info['model']}), {info['mem']}, "
        f"Linux {info['kernel']}; RLIMIT_NOFILE hard limit {opts.nofile}",
        f"- background load before the run: {opts.background:.2f} of {info['nproc']} CPUs busy "
        "(the machine is shared; the generator runs on the same CPUs as the servers)",
        f"- myxid: {daemon_description()}",
        f"- Debian packages: {debian_versions()}"
        + "".join(f"; {k} {v}" for k, v in opts.versions.items()),
        "",
        md_table([row(r, records) for r in records], COLUMNS),
        "",
        "## Targets",
        "",
        md_table([[t, m, v] for t, m, v in targets], ["target", "measured", "verdict"]),
        "",
    ]
    lines += list(sections)
    skipped = sorted({r["not_run"] for r in records if "not_run" in r})
    if skipped:
        lines += ["Not run:", ""] + [f"- {why}" for why in skipped] + [""]
    # What limits the figures: written by hand from profiles (bench/LIMITS.md),
    # carried into every results file so a missed target never stands alone.
    limits = os.path.join(os.path.dirname(os.path.abspath(__file__)), "LIMITS.md")
    if os.path.exists(limits):
        with open(limits) as f:
            lines += [f.read().rstrip(), ""]
    lines += ["## Details: every run", "",
              "The generator's command and JSON result, the driver's /proc sampling of the "
              "server (`sampled`), and the bare consumer's JSON (`bare`).", ""]
    for i, rec in enumerate(list(records) + list(more_records), 1):
        lines += [f"### {i}. {rec['scenario']}, {rec['server']}, {rec['sockets']:,} sockets",
                  "", "```json", json.dumps({k: v for k, v in rec.items() if k != "output"},
                                            indent=1, sort_keys=True), "```", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))
