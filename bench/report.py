#!/usr/bin/env python3
"""Gathers the phases of one benchmark run (bench/run.sh) into one JSON
document and prints the table.

    report.py RESULTS_DIR OUT.json
    report.py --loopdevs RESULTS_DIR   the loop device numbers it published
    report.py --show RESULT.json       the table of a stored run again

RESULTS_DIR holds NNN.json (one per loopd-bench phase) and meta.json.
"""
import glob
import json
import math
import os
import statistics
import sys
import textwrap

MODES = ["stock", "script", "watch"]
COST_MODES = MODES + ["none"]
MODEL = (
    "libxl 4.17 as one toolstack process (one libxl context, one xenstore "
    "connection) starting every domain of a scenario at once: each disk's "
    "backend is written in its own transaction as libxl__device_disk_add "
    "writes it, back to back; each disk's hotplug script is started as soon "
    "as its backend reaches InitWait, so all scripts of all domains run "
    "concurrently (the stock script then serialises on its global lock); "
    "a domain's disks are complete when hotplug-status is connected and "
    "their script has exited. Teardown: online=0/state=5 for every disk at "
    "once, wait for state 6, script remove, then the device's xenstore "
    "directories go in one transaction."
)


def pct(values, p):
    """Nearest-rank percentile."""
    if not values:
        return None
    v = sorted(values)
    rank = max(1, min(len(v), math.ceil(p / 100.0 * len(v))))
    return v[rank - 1]


def summarise(phases):
    """One scenario/action/mode: the median total over its runs, latency
    percentiles over every disk of every run."""
    if not phases:
        return None
    totals = [p["total_ms"] for p in phases]
    samples = [x for p in phases for x in p.get("latency_ms_samples", [])]
    out = {
        "runs": len(phases),
        "disks": phases[0]["disks"],
        "domains": phases[0]["domains"],
        "total_ms": statistics.median(totals),
        "total_ms_min": min(totals),
        "total_ms_max": max(totals),
        "writes_ms": statistics.median(p["writes_ms"] for p in phases),
        # From the toolstack's last backend write to the last disk complete.
        "after_writes_ms": statistics.median(p["total_ms"] - p["writes_ms"] for p in phases),
        "latency_p50_ms": pct(samples, 50),
        "latency_p99_ms": pct(samples, 99),
        "latency_mean_ms": statistics.fmean(samples) if samples else None,
        "failures": sum(p["failures"] for p in phases),
    }
    if phases[0]["action"] == "attach":
        out["loops_bound"] = max(p.get("loops_bound", 0) for p in phases)
        script = [x for p in phases for x in [p.get("script_ms", {}).get("p50")] if x is not None]
        if script:
            out["script_p50_ms"] = statistics.median(script)
    else:
        out["loops_left_at_end"] = max(p.get("loops_left_at_end", 0) for p in phases)
        gone = [p["loops_gone_ms"] for p in phases if p.get("loops_gone_ms") is not None]
        out["loops_gone_ms"] = statistics.median(gone) if gone else None
    return out


def strip_bulk(p):
    if p["label"].startswith(("hold-", "release-")):
        return {k: v for k, v in p.items() if not k.endswith("_samples") and k != "loopdevs"}
    return p


def ratio(a, b):
    if a is None or b is None or b <= 0:
        return None
    return a / b


def fmt(v, unit="", digits=1):
    if v is None:
        return "-"
    return f"{v:.{digits}f}{unit}"


def loopdevs(rdir):
    """The numbers of the loop devices the phases in rdir published."""
    seen = set()
    for f in glob.glob(os.path.join(rdir, "[0-9][0-9][0-9].json")):
        try:
            seen.update(json.load(open(f)).get("loopdevs", []))
        except ValueError:
            pass
    for d in sorted(seen):
        if d.startswith("/dev/loop") and d[9:].isdigit():
            print(d[9:])


def main():
    if sys.argv[1] == "--loopdevs":
        return loopdevs(sys.argv[2])
    if sys.argv[1] == "--show":
        # A stored run, summarised again by this version of the report.
        old = json.load(open(sys.argv[2]))
        return print_table(build(old["meta"], old["phases"]))
    rdir, out_path = sys.argv[1], sys.argv[2]
    meta = json.load(open(os.path.join(rdir, "meta.json")))
    probes = {}
    for f in glob.glob(os.path.join(rdir, "xsprobe-*.json")):
        probes[os.path.basename(f)[len("xsprobe-"):-len(".json")]] = json.load(open(f))
    if probes:
        meta["xs_probe"] = probes
    xl = os.path.join(rdir, "xl.json")
    if os.path.exists(xl):
        meta["real_xl"] = json.load(open(xl))
    phases = []
    for f in sorted(glob.glob(os.path.join(rdir, "[0-9][0-9][0-9].json"))):
        phases.append(json.load(open(f)))
    doc = build(meta, phases)
    with open(out_path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print_table(doc)


def build(meta, phases):
    """The summary of one run from its phases."""

    def pick(label, action, mode):
        return [p for p in phases if p["label"] == label and p["action"] == action and p["mode"] == mode]

    scenarios = {}
    for label in ("start-40-shared-ro", "start-8-rw"):
        scenarios[label] = {}
        for action in ("attach", "detach"):
            scenarios[label][action] = {
                m: summarise(pick(label, action, m)) for m in MODES + ["none"]
            }
    # Time the hotplug mechanism adds over the toolstack's own part.
    for label, sc in scenarios.items():
        floor = sc["attach"].get("none")
        for m in MODES:
            s = sc["attach"].get(m)
            if s and floor:
                s["added_ms"] = max(s["total_ms"] - floor["total_ms"], 0.0)

    attach_cost = {}
    levels = sorted({int(p["label"].split("-")[-1]) for p in phases if p["label"].startswith("attach-held-")})
    for m in COST_MODES:
        attach_cost[m] = {}
        for lv in levels:
            s = summarise(pick(f"attach-held-{lv}", "attach", m))
            if s:
                attach_cost[m][str(lv)] = {
                    "disks": s["disks"],
                    "p50_ms": s["latency_p50_ms"],
                    "p99_ms": s["latency_p99_ms"],
                    "mean_ms": s["latency_mean_ms"],
                    "script_p50_ms": s.get("script_p50_ms"),
                }
                # What one attach costs xenstored and the daemon (CPU time,
                # system calls), which other work on the host does not skew.
                ph = pick(f"attach-held-{lv}", "attach", m)
                n = sum(p["disks"] for p in ph)
                for proc in ("xen-loopd", "xenstored"):
                    w = [p["work"][proc] for p in ph if proc in p.get("work", {})]
                    if w and n:
                        key = "daemon" if proc == "xen-loopd" else "xenstored"
                        attach_cost[m][str(lv)][f"{key}_cpu_us_per_disk"] = 1000 * sum(x["cpu_ms"] for x in w) / n
                        attach_cost[m][str(lv)][f"{key}_syscalls_per_disk"] = sum(x["syscalls"] for x in w) / n
    bulk = {}
    for p in phases:
        if p["label"].startswith("hold-") or p["label"].startswith("release-"):
            bulk[f'{p["label"]} {p["mode"]} {p["action"]}'] = {
                "disks": p["disks"], "total_ms": p["total_ms"],
                "latency_p50_ms": p["latency_ms"].get("p50"),
                "latency_p99_ms": p["latency_ms"].get("p99"),
            }

    ratios = {}
    for label, sc in scenarios.items():
        for action in ("attach", "detach"):
            st = sc[action].get("stock")
            for m in ("script", "watch"):
                s = sc[action].get(m)
                if st and s:
                    ratios[f"{label} {action} total, stock/{m}"] = ratio(st["total_ms"], s["total_ms"])
                    if action == "attach":
                        ratios[f"{label} attach after last write, stock/{m}"] = ratio(
                            st["after_writes_ms"], s["after_writes_ms"])
                        if "added_ms" in s:
                            ratios[f"{label} attach added, stock/{m}"] = ratio(st.get("added_ms"), s["added_ms"])

    def growth(m):
        c = attach_cost.get(m, {})
        if "0" not in c or len(c) < 2:
            return None
        top = max(c, key=int)
        return {"from": 0, "to": int(top), "p50_ratio": ratio(c[top]["p50_ms"], c["0"]["p50_ms"])}

    # Debian's real xl, one disk at a time into a running guest.
    real_xl = {}
    for m, v in meta.get("real_xl", {}).get("modes", {}).items():
        real_xl[m] = {}
        for action in ("attach", "detach"):
            x = v.get(action + "_ms_samples", [])
            if x:
                real_xl[m][action] = {"rounds": len(x), "p50_ms": pct(x, 50), "p99_ms": pct(x, 99),
                                      "mean_ms": statistics.fmean(x), "max_ms": max(x)}
    for action in ("attach", "detach"):
        st, s = real_xl.get("stock", {}).get(action), real_xl.get("script", {}).get(action)
        if st and s:
            ratios[f"real xl block-{action}, one disk, p50, stock/script"] = ratio(st["p50_ms"], s["p50_ms"])

    rss = meta.get("rss", {})
    s40 = scenarios["start-40-shared-ro"]["attach"]
    targets = []

    def target(name, value, ok, goal):
        targets.append({"target": name, "goal": goal, "value": value, "met": bool(ok) if value is not None else None})

    r = ratios.get("start-40-shared-ro attach total, stock/watch")
    target("40-disk shared start, watch vs stock (total)", r, r is not None and r >= 100, ">= 100x")
    r = ratios.get("start-40-shared-ro attach total, stock/script")
    target("40-disk shared start, script vs stock (total)", r, r is not None and r >= 20, ">= 20x")
    # The same, counting only what follows the toolstack's last backend
    # write: the hotplug part, without the toolstack's own transactions.
    r = ratios.get("start-40-shared-ro attach after last write, stock/watch")
    target("40-disk shared start, watch vs stock (after the last write)", r, r is not None and r >= 100, ">= 100x")
    r = ratios.get("start-40-shared-ro attach after last write, stock/script")
    target("40-disk shared start, script vs stock (after the last write)", r, r is not None and r >= 20, ">= 20x")
    w = s40.get("watch")
    v = w["latency_p50_ms"] if w else None
    target("per-disk latency p50, watch, 40-disk start", v, v is not None and v < 1.5, "< 1.5 ms")
    v = scenarios["start-8-rw"]["attach"]["watch"]
    v = v["latency_p50_ms"] if v else None
    target("per-disk latency p50, watch, 8-disk start", v, v is not None and v < 1.5, "< 1.5 ms")
    c = attach_cost.get("watch", {}).get("0")
    v = c["p50_ms"] if c else None
    target("per-disk latency p50, watch, one disk on an idle host", v, v is not None and v < 1.5, "< 1.5 ms")
    for m in ("watch", "script"):
        g = growth(m)
        v = g["p50_ratio"] if g else None
        target(f"attach cost flat 0 -> {g['to'] if g else '?'} held ({m}, p50 ratio)", v,
               v is not None and v <= 1.25, "<= 1.25x")
    g = growth("none")
    if g:
        targets.append({"target": f"(for reference) the floor's own growth 0 -> {g['to']} held, p50 ratio",
                        "goal": "-", "value": g["p50_ratio"], "met": None})
    # What grows: the daemon's own work per attach, or xenstored's.
    w = attach_cost.get("watch", {})
    if "0" in w and len(w) > 1:
        top = max(w, key=int)
        for key, what in (("daemon_syscalls_per_disk", "xen-loopd system calls"),
                          ("daemon_cpu_us_per_disk", "xen-loopd CPU time"),
                          ("xenstored_cpu_us_per_disk", "xenstored CPU time")):
            if key in w["0"] and key in w[top]:
                targets.append({"target": f"(for reference) watch attach, {what} per disk, 0 -> {top} held, ratio",
                                "goal": "-", "value": ratio(w[top][key], w["0"][key]), "met": None})
    # Why it grows: xenstored's own time per request, as its store grows.
    probe = meta.get("xs_probe", {})
    if "0" in probe and len(probe) > 1:
        top = max(probe, key=int)
        for key, what in (("read_us", "a read"), ("publish_tx_us", "the publishing transaction")):
            targets.append({"target": f"(for reference) xenstored round trip for {what}, 0 -> {top} held, ratio",
                            "goal": "-", "value": ratio(probe[top][key], probe["0"][key]), "met": None})
    v = rss.get("vmhwm_kib")
    v = v / 1024.0 if v else None
    target(f"daemon peak RSS holding {rss.get('devices')} devices", v, v is not None and v < 16, "< 16 MiB")

    doc = {
        "meta": meta,
        "model": MODEL,
        "scenarios": scenarios,
        "attach_cost": attach_cost,
        "real_xl": real_xl,
        "bulk": bulk,
        "rss": rss,
        "ratios": ratios,
        "targets": targets,
        # Per-disk samples only where they are few; bulk phases keep their
        # percentiles.
        "phases": [strip_bulk(p) for p in phases],
    }
    return doc


def print_table(doc):
    meta, sc = doc["meta"], doc["scenarios"]
    L = []
    L.append(f"xen-loopd benchmark  {meta['date']}  commit {meta['commit']}  "
             f"kernel {meta['host']['kernel']}  {meta['host']['cpus']} CPUs"
             + ("  (quick)" if meta.get("quick") else ""))
    # Results from before the choice was offered ran on the C xenstored.
    L.append("xenstored: " + {"c": "Debian's C xenstored", "ocaml": "oxenstored (OCaml)"}.get(
        meta.get("xenstored", "c"), meta.get("xenstored", "c")))
    L.append(f"load average at start {meta.get('loadavg_start')}, at end {meta.get('loadavg_end')}"
             "  (other work on the host skews every figure)")
    if meta.get("stock_losetup_races"):
        L.append(f"the stock script lost its loop device to another process {meta['stock_losetup_races']} "
                 "time(s) (losetup -f, then losetup: its race); those attaches were run again")
    L.append("")
    L.extend(textwrap.wrap("Model: " + doc["model"], 78))
    L.extend(textwrap.wrap("floor = the stock column's backends with no script run and no daemon "
                           "(the toolstack's writes and blkback's InitWait only); "
                           "added = total - floor.", 78))
    L.append("")
    hdr = f"{'':34}{'stock':>12}{'script':>12}{'watch':>12}{'floor':>12}"
    titles = {
        "start-40-shared-ro": "40 domains x 1 read-only disk of one image",
        "start-8-rw": "1 domain x 8 read-write disks of distinct images",
    }
    for label, title in titles.items():
        for action in ("attach", "detach"):
            row = sc[label][action]
            runs = "/".join(str(row[m]["runs"]) if row.get(m) else "0" for m in MODES)
            L.append(f"{title}: {'domain start' if action == 'attach' else 'teardown'}"
                     f"  (runs {runs})")
            L.append(hdr)

            def line(name, key, unit=" ms", digits=1, modes=MODES + ["none"]):
                cells = []
                for m in MODES + ["none"]:
                    s = row.get(m)
                    cells.append(fmt(s.get(key) if s and m in modes else None, unit, digits))
                L.append(f"  {name:32}" + "".join(f"{c:>12}" for c in cells))
            line("total (median)", "total_ms")
            if action == "attach":
                line("toolstack writes", "writes_ms")
                line("after the last write", "after_writes_ms")
                line("added by hotplug", "added_ms", modes=MODES)
            line("per-disk p50", "latency_p50_ms", digits=2)
            line("per-disk p99", "latency_p99_ms", digits=2)
            if action == "attach":
                line("loop devices", "loops_bound", "", 0, modes=MODES)
            else:
                line("loop devices left at the end", "loops_left_at_end", "", 0, modes=MODES)
            L.append("")
    L.append("Attach cost as the host holds N devices (one-disk domain starts, one at a time;")
    L.append("per-disk latency p50 / p99, ms)")
    ac = doc["attach_cost"]
    levels = sorted({int(k) for m in COST_MODES for k in ac.get(m, {})})
    L.append(f"  {'held':>6}" + "".join(f"{m if m != 'none' else 'floor':>22}" for m in COST_MODES))
    for lv in levels:
        cells = []
        for m in COST_MODES:
            c = ac.get(m, {}).get(str(lv))
            cells.append(f"{fmt(c['p50_ms'], '', 2)} / {fmt(c['p99_ms'], '', 2)}" if c else "-")
        L.append(f"  {lv:>6}" + "".join(f"{c:>22}" for c in cells))
    L.append("")
    L.append("Work per attach at each level: CPU time (us) and system calls of xen-loopd;")
    L.append("CPU time (us) of xenstored (what the host's other load does not change)")
    L.append(f"  {'held':>6}" + "".join(f"{m + ' loopd':>18}{m + ' xsd':>12}" for m in ("script", "watch", "none")))
    for lv in levels:
        cells = []
        for m in ("script", "watch", "none"):
            c = ac.get(m, {}).get(str(lv), {})
            d = (f"{c['daemon_cpu_us_per_disk']:.0f} us/{c['daemon_syscalls_per_disk']:.0f}"
                 if "daemon_cpu_us_per_disk" in c else "-")
            x = f"{c['xenstored_cpu_us_per_disk']:.0f} us" if "xenstored_cpu_us_per_disk" in c else "-"
            cells.append(f"{d:>18}{x:>12}")
        L.append(f"  {lv:>6}" + "".join(cells))
    probe = doc["meta"].get("xs_probe", {})
    if probe:
        L.append("")
        L.append("xenstored alone at each level (a probe's own requests, one at a time):")
        L.append(f"  {'held':>6}{'read':>14}{'publish transaction':>24}")
        for lv in sorted(probe, key=int):
            p = probe[lv]
            L.append(f"  {int(lv):>6}{p['read_us']:>11.1f} us{p['publish_tx_us']:>21.1f} us")
    rx = doc.get("real_xl", {})
    if rx:
        L.append("")
        L.append("Debian's real xl (xen-utils-4.17), one disk at a time into a running guest;")
        L.append("xl's whole run, its own start included (ms)")
        L.append(f"  {'':26}{'rounds':>8}{'p50':>10}{'p99':>10}{'max':>10}")
        for m in ("stock", "script"):
            for action in ("attach", "detach"):
                c = rx.get(m, {}).get(action)
                if c:
                    name = f"{'block-loopd' if m == 'script' else 'stock'} block-{action}"
                    L.append(f"  {name:26}{c['rounds']:>8}{fmt(c['p50_ms']):>10}{fmt(c['p99_ms']):>10}"
                             f"{fmt(c['max_ms']):>10}")
    L.append("")
    rss = doc["rss"]
    if rss.get("vmhwm_kib"):
        L.append(f"Memory: xen-loopd holding {rss.get('daemon_devices')} devices, {rss.get('fds')} fds open: "
                 f"peak RSS (VmHWM) {rss['vmhwm_kib'] / 1024:.1f} MiB, RSS now {rss['vmrss_kib'] / 1024:.1f} MiB")
        if not rss.get("list_ok", True):
            L.append(f"  xen-loopctl list --json at {rss.get('daemon_devices')} devices: "
                     f"{rss.get('list_error', '').strip()}")
    for k, v in doc["bulk"].items():
        if k.startswith("hold-") and "watch" in k:
            L.append(f"  bulk: {k}: {v['disks']} disks in {v['total_ms']:.0f} ms")
        if k.startswith("release-") and "watch" in k:
            L.append(f"  bulk: {k}: {v['disks']} disks torn down in {v['total_ms']:.0f} ms")
    L.append("")
    L.append("Ratios (stock time / mode time, same run)")
    for k, v in doc["ratios"].items():
        L.append(f"  {k:58}{fmt(v, 'x'):>9}")
    L.append("")
    L.append("Targets")
    for t in doc["targets"]:
        mark = {True: "met", False: "NOT MET", None: "n/a"}[t["met"]]
        val = t["value"]
        L.append(f"  [{mark:>7}] {t['target']}: {fmt(val, '', 2)} (goal {t['goal']})")
    print("\n".join(L))


if __name__ == "__main__":
    main()
