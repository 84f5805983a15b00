#!/usr/bin/env python3
"""Gathers the phases of one benchmark run (bench/run.sh) into one JSON
document and prints the table.

    report.py RESULTS_DIR OUT.json [--previous OLD.json]
    report.py --combine OUT.json C.json OCAML.json [--previous OLD.json] [--wall-s N]
    report.py --loopdevs RESULTS_DIR   the loop device numbers it published
    report.py --show RESULT.json       the table of a stored run again

RESULTS_DIR holds NNN.json (one per loopd-bench phase), meta.json, xl.json
and xsprobe-N.json.  --combine puts two runs of one build, on the C
xenstored and on oxenstored, into one document, side by side; --previous
adds the comparison with an earlier run (on the C xenstored).
"""
import glob
import json
import math
import os
import statistics
import sys
import textwrap

MODES = ["stock", "script", "watch"]
XL_MODES = ["stock", "script", "empty", "noop"]
XL_NAMES = {"stock": "stock block", "script": "block-loopd", "empty": "script= empty", "noop": "no-op script"}
# A difference of two medians of wall-clock times below this is noise: a
# ratio over it is taken over this much.
XL_RESOLUTION_MS = 0.1
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
    """Every sample is kept; only the bulk phases' device lists go (the
    cleanup has used them)."""
    if p["label"].startswith(("hold-", "release-")):
        return {k: v for k, v in p.items() if k != "loopdevs"}
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


def opt(args, name, default=None):
    """The value of --name in args (removed from it)."""
    if name in args:
        i = args.index(name)
        v = args[i + 1]
        del args[i:i + 2]
        return v
    return default


def main():
    args = sys.argv[1:]
    if args[0] == "--loopdevs":
        return loopdevs(args[1])
    if args[0] == "--show":
        # A stored run, summarised again by this version of the report.
        old = json.load(open(args[1]))
        if "runs" in old:
            return print_combined(old)
        return print_table(build(old["meta"], old["phases"], old.get("previous")))
    prev_path = opt(args, "--previous")
    previous = previous_summary(json.load(open(prev_path))) if prev_path else None
    if args[0] == "--combine":
        wall = opt(args, "--wall-s")
        out_path, c_path, o_path = args[1:4]
        doc = combine(json.load(open(c_path)), json.load(open(o_path)), previous,
                      int(wall) if wall else None)
        with open(out_path, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        return print_combined(doc)
    rdir, out_path = args[0], args[1]
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
    doc = build(meta, phases, previous)
    with open(out_path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print_table(doc)


def build(meta, phases, previous=None):
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
                        c = attach_cost[m][str(lv)]
                        c[f"{key}_cpu_us_per_disk"] = 1000 * sum(x["cpu_ms"] for x in w) / n
                        c[f"{key}_syscalls_per_disk"] = sum(x["syscalls"] for x in w) / n
                        # Runs before every system call was counted had
                        # only the read and write kinds (/proc/PID/io).
                        c[f"{key}_rw_syscalls_per_disk"] = sum(x.get("rw_syscalls", x["syscalls"]) for x in w) / n
                        c["syscalls_source"] = w[0].get("syscalls_source", "/proc/PID/io syscr+syscw")
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
                c = {"rounds": len(x), "p50_ms": pct(x, 50), "p99_ms": pct(x, 99),
                     "mean_ms": statistics.fmean(x), "max_ms": max(x)}
                for who in ("xenstored", "daemon"):
                    y = v.get(f"{action}_{who}_cpu_us_samples")
                    if y:
                        c[f"{who}_cpu_us_p50"] = pct(y, 50)
                        c[f"{who}_cpu_us_mean"] = statistics.fmean(y)
                real_xl[m][action] = c
    # What each way of serving the disk adds over the no-op script (the
    # toolstack's own part, xl's start included): medians subtracted, and
    # the CPU xenstored and the daemon spent, means subtracted.
    for m in real_xl:
        for action in ("attach", "detach"):
            c, f = real_xl[m].get(action), real_xl.get("noop", {}).get(action)
            if c and f and m != "noop":
                c["added_ms"] = c["p50_ms"] - f["p50_ms"]
                if "xenstored_cpu_us_mean" in c and "xenstored_cpu_us_mean" in f:
                    c["added_cpu_us"] = (c["xenstored_cpu_us_mean"] + c.get("daemon_cpu_us_mean", 0)
                                         - f["xenstored_cpu_us_mean"] - f.get("daemon_cpu_us_mean", 0))
    for action in ("attach", "detach"):
        st = real_xl.get("stock", {}).get(action)
        for m in ("script", "empty"):
            s_ = real_xl.get(m, {}).get(action)
            if st and s_:
                ratios[f"real xl block-{action}, one disk, p50, stock/{m}"] = ratio(st["p50_ms"], s_["p50_ms"])
                if "added_ms" in st and "added_ms" in s_:
                    ratios[f"real xl block-{action}, one disk, added over no-op, stock/{m}"] = ratio(
                        st["added_ms"], max(s_["added_ms"], XL_RESOLUTION_MS))

    rss = meta.get("rss", {})
    s40 = scenarios["start-40-shared-ro"]["attach"]
    targets = []

    def target(name, value, ok, goal, note=None):
        t = {"target": name, "goal": goal, "value": value, "met": bool(ok) if value is not None else None}
        if note:
            t["note"] = note
        targets.append(t)

    def ref(name, value):
        targets.append({"target": "(for reference) " + name, "goal": "-", "value": value, "met": None})

    # Counted over the floor: what the hotplug step adds to the toolstack's
    # own writes and blkback's InitWait.
    for m, goal in (("script", 50), ("watch", 200)):
        r = ratios.get(f"start-40-shared-ro attach added, stock/{m}")
        w, f = s40.get(m), s40.get("none")
        note = None
        if w and f and w["total_ms"] <= f["total_ms"]:
            # added_ms is clipped at 0: say so rather than print a bare n/a.
            note = (f"the mode's total, {w['total_ms']:.1f} ms, was at or below the floor's, "
                    f"{f['total_ms']:.1f} ms, in this run: what it adds is within the noise, "
                    "and no ratio can be formed")
        target(f"40-disk shared start, added over the floor, stock / {'block-loopd' if m == 'script' else m}",
               r, r is not None and r >= goal, f">= {goal}x", note)
    for m in ("script", "watch"):
        w = s40.get(m)
        v = w["latency_p99_ms"] if w else None
        target(f"per-disk p99, {'block-loopd' if m == 'script' else m}, 40-disk start", v,
               v is not None and v <= 2, "<= 2 ms")
    # The daemon's own work per attach as the host holds more devices.
    for m in ("watch", "script"):
        c = attach_cost.get(m, {})
        if "0" not in c or len(c) < 2:
            continue
        top = max(c, key=int)
        for key, what in (("daemon_cpu_us_per_disk", "CPU time"), ("daemon_syscalls_per_disk", "system calls")):
            if key in c["0"] and key in c[top]:
                v = ratio(c[top][key], c["0"][key])
                name = f"daemon {what} per attach ({'block-loopd' if m == 'script' else m}), {top} held / 0 held"
                if top == "4096":
                    target(name, v, v is not None and v <= 1.1, "<= 1.1x")
                else:
                    ref(name + " (the target is at 4096)", v)
    xa = {m: real_xl.get(m, {}).get("attach") for m in real_xl}
    v = xa["script"]["added_ms"] if xa.get("script") and "added_ms" in xa["script"] else None
    target("real xl block-attach, one disk: block-loopd added over a no-op script", v,
           v is not None and v <= 5, "<= 5 ms")
    r = ratios.get("real xl block-attach, one disk, added over no-op, stock/script")
    target("real xl block-attach, one disk: stock added / block-loopd added", r,
           r is not None and r >= 100, ">= 100x",
           f"block-loopd's added time, under {XL_RESOLUTION_MS} ms, is counted as {XL_RESOLUTION_MS} ms"
           if r is not None and v is not None and v < XL_RESOLUTION_MS else None)
    if xa.get("empty") and "added_ms" in xa["empty"]:
        ref("real xl block-attach, one disk: empty script= (watch) added over a no-op script, ms",
            xa["empty"]["added_ms"])
    for m in ("script", "empty"):
        if xa.get(m) and "added_cpu_us" in xa[m]:
            ref(f"real xl block-attach: xenstored + daemon CPU added over a no-op script, "
                f"{'block-loopd' if m == 'script' else 'empty script='}, us", xa[m]["added_cpu_us"])
    for m in ("watch", "script"):
        g = growth(m)
        if g:
            ref(f"per-disk latency p50 ({m}), {g['to']} held / 0 held", g["p50_ratio"])
    g = growth("none")
    if g:
        ref(f"the floor's own growth, {g['to']} held / 0 held, p50", g["p50_ratio"])
    w = attach_cost.get("watch", {})
    if "0" in w and len(w) > 1:
        top = max(w, key=int)
        if "xenstored_cpu_us_per_disk" in w["0"]:
            ref(f"watch attach, xenstored CPU time per disk, {top} held / 0 held",
                ratio(w[top]["xenstored_cpu_us_per_disk"], w["0"]["xenstored_cpu_us_per_disk"]))
    # Why it grows: xenstored's own time per request, as its store grows.
    probe = meta.get("xs_probe", {})
    if "0" in probe and len(probe) > 1:
        top = max(probe, key=int)
        for key, what in (("read_us", "a read"), ("publish_tx_us", "the publishing transaction")):
            ref(f"xenstored round trip for {what}, {top} held / 0 held", ratio(probe[top][key], probe["0"][key]))
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
        # Every phase with every sample.
        "phases": [strip_bulk(p) for p in phases],
    }
    if previous:
        doc["previous"] = previous
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
    hl = meta.get("host_loop_devices_at_start")
    if hl:
        L.append(f"loop devices on the host at start: {hl['all']}, {hl['bound']} of them bound "
                 "(free ones are handed out before the kernel creates any: they make attaching at "
                 "few held devices cheaper)")
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
    L.append("CPU time (us) of xenstored (what the host's other load does not change);")
    L.append(f"system calls counted by {meta.get('syscalls_counted_by', '/proc/PID/io syscr+syscw')}")
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
        L.append("xl's whole run, its own start included (ms); added = p50 - the no-op script's p50;")
        L.append("CPU: xenstored + xen-loopd per command, mean (us)")
        L.append(f"  {'':28}{'rounds':>7}{'p50':>9}{'p99':>9}{'max':>9}{'added':>9}{'CPU':>9}")
        for m in XL_MODES:
            for action in ("attach", "detach"):
                c = rx.get(m, {}).get(action)
                if c:
                    cpu = c.get("xenstored_cpu_us_mean", 0) + c.get("daemon_cpu_us_mean", 0)
                    L.append(f"  {XL_NAMES[m] + ' block-' + action:28}{c['rounds']:>7}{fmt(c['p50_ms']):>9}"
                             f"{fmt(c['p99_ms']):>9}{fmt(c['max_ms']):>9}{fmt(c.get('added_ms')):>9}"
                             f"{fmt(cpu, '', 0):>9}")
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
        if t.get("note"):
            L.append(f"            ({t['note']})")
    if doc.get("previous") and meta.get("xenstored", "c") == "c":
        L.append("")
        L.extend(before_after_lines(doc["previous"], doc))
    print("\n".join(L))


def previous_summary(old):
    """What a before/after needs of an earlier run: its C-xenstored figures
    (runs from before oxenstored was measured ran on the C one)."""
    if "runs" in old:
        old = old["runs"]["c"]
    meta = old["meta"]
    out = {"commit": meta.get("commit"), "date": meta.get("date"),
           "loadavg_start": meta.get("loadavg_start"), "loadavg_end": meta.get("loadavg_end"),
           "scenarios": {}, "attach_cost": {}}
    keys = ("total_ms", "added_ms", "after_writes_ms", "latency_p50_ms", "latency_p99_ms")
    for label, sc in old["scenarios"].items():
        for action, row in sc.items():
            for m, v in row.items():
                if v:
                    out["scenarios"].setdefault(label, {}).setdefault(action, {})[m] = {
                        k: v.get(k) for k in keys if v.get(k) is not None}
    for m, levels in old["attach_cost"].items():
        for lv, c in levels.items():
            out["attach_cost"].setdefault(m, {})[lv] = {
                "p50_ms": c.get("p50_ms"), "p99_ms": c.get("p99_ms"),
                "daemon_cpu_us_per_disk": c.get("daemon_cpu_us_per_disk"),
                "daemon_rw_syscalls_per_disk": c.get("daemon_rw_syscalls_per_disk",
                                                     c.get("daemon_syscalls_per_disk")),
                "script_p50_ms": c.get("script_p50_ms")}
    return out


def before_after(prev, doc):
    """Rows (name, before, after, unit) of script and watch mode: an
    earlier run against this one (both on the C xenstored)."""
    rows = []
    names = {"start-40-shared-ro": "40-disk start", "start-8-rw": "8-rw-disk start"}
    for label, short in names.items():
        for action in ("attach", "detach"):
            for m in ("script", "watch"):
                b = prev["scenarios"].get(label, {}).get(action, {}).get(m)
                a = doc["scenarios"].get(label, {}).get(action, {}).get(m)
                if not (a and b):
                    continue
                what = short if action == "attach" else short.replace("start", "teardown")
                keys = [("total_ms", "total"), ("added_ms", "added over the floor"),
                        ("latency_p50_ms", "per-disk p50"), ("latency_p99_ms", "per-disk p99")]
                if action == "detach":
                    keys = keys[:1]
                for k, kn in keys:
                    if b.get(k) is not None and a.get(k) is not None:
                        rows.append((f"{m:6} {what}, {kn}", b[k], a[k], "ms"))
    for m in ("script", "watch"):
        for lv in sorted(prev["attach_cost"].get(m, {}), key=int):
            b, a = prev["attach_cost"][m][lv], doc["attach_cost"].get(m, {}).get(lv)
            if not a:
                continue
            rows.append((f"{m:6} one attach at {lv} held, p50", b["p50_ms"], a["p50_ms"], "ms"))
            if b.get("daemon_cpu_us_per_disk") is not None and "daemon_cpu_us_per_disk" in a:
                rows.append((f"{m:6} daemon CPU per attach at {lv} held", b["daemon_cpu_us_per_disk"],
                             a["daemon_cpu_us_per_disk"], "us"))
            if b.get("daemon_rw_syscalls_per_disk") is not None and "daemon_rw_syscalls_per_disk" in a:
                rows.append((f"{m:6} daemon read/write calls per attach at {lv} held",
                             b["daemon_rw_syscalls_per_disk"], a["daemon_rw_syscalls_per_disk"], ""))
    return rows


def before_after_lines(prev, doc):
    L = [f"Before / after: the run of {prev['date']} (commit {prev['commit']}, load "
         f"{prev.get('loadavg_start')} -> {prev.get('loadavg_end')}) against this one, C xenstored",
         f"  {'':58}{'before':>10}{'after':>10}{'after/before':>14}"]
    for name, b, a, unit in before_after(prev, doc):
        L.append(f"  {name:58}{fmt(b, '', 2):>10}{fmt(a, '', 2):>10}{fmt(ratio(a, b), 'x', 2):>14}")
    return L


def combine(c, o, previous, wall_s):
    """One document of two runs, on the C xenstored and on oxenstored."""
    runs = {"c": c, "ocaml": o}
    for d in runs.values():
        d.pop("previous", None)
    meta = {"date": c["meta"]["date"], "commit": c["meta"]["commit"], "host": c["meta"]["host"],
            "quick": c["meta"].get("quick"), "wall_s": wall_s,
            "loadavg": {k: [d["meta"].get("loadavg_start"), d["meta"].get("loadavg_end")]
                        for k, d in runs.items()},
            "order": "every phase on the C xenstored, then every phase on oxenstored"}
    targets = []
    for k, d in runs.items():
        for t in d["targets"]:
            targets.append(dict(t, xenstored=k))
    # The real xl on oxenstored as on the C xenstored: each figure of the
    # real-xl targets within 1.5x of the other's.
    for m, what in (("script", "block-loopd"), ("stock", "stock block")):
        a = c.get("real_xl", {}).get(m, {}).get("attach", {}).get("added_ms")
        b = o.get("real_xl", {}).get(m, {}).get("attach", {}).get("added_ms")
        v = None
        if a is not None and b is not None:
            a, b = max(a, XL_RESOLUTION_MS), max(b, XL_RESOLUTION_MS)
            v = b / a
        targets.append({"target": f"real xl block-attach, {what} added over a no-op script, oxenstored / C",
                        "goal": "1/1.5 .. 1.5x", "value": v, "xenstored": "both",
                        "met": (1 / 1.5 <= v <= 1.5) if v is not None else None})
    for name in ("real xl block-attach, one disk: block-loopd added over a no-op script",
                 "real xl block-attach, one disk: stock added / block-loopd added"):
        met = [t["met"] for t in targets if t["target"] == name and t["xenstored"] in ("c", "ocaml")]
        targets.append({"target": name + ": met on both xenstoreds", "goal": "both", "value": None,
                        "xenstored": "both", "met": all(met) if met and None not in met else None})
    doc = {"meta": meta, "runs": runs, "targets": targets}
    if previous:
        doc["previous"] = previous
    return doc


def print_combined(doc):
    c, o = doc["runs"]["c"], doc["runs"]["ocaml"]
    meta = doc["meta"]
    L = [f"xen-loopd benchmark  {meta['date']}  commit {meta['commit']}  kernel {meta['host']['kernel']}  "
         f"{meta['host']['cpus']} CPUs" + ("  (quick)" if meta.get("quick") else "")
         + (f"  {meta['wall_s'] // 60} min {meta['wall_s'] % 60} s" if meta.get("wall_s") else ""),
         "Every phase on Debian's C xenstored, then every phase on oxenstored (Debian's default);",
         "side by side below, each run in full after that.",
         f"load average, start -> end: C run {' '.join(meta['loadavg']['c'][0].split())} -> "
         f"{' '.join(meta['loadavg']['c'][1].split())}; oxenstored run "
         f"{' '.join(meta['loadavg']['ocaml'][0].split())} -> {' '.join(meta['loadavg']['ocaml'][1].split())}",
         "(the host is shared: wall-clock figures move with its load; CPU times and system",
         "call counts hardly do)", ""]

    def row(name, fc, fo, unit="", digits=1):
        L.append(f"  {name:52}{fmt(fc, unit, digits):>19}{fmt(fo, unit, digits):>19}")

    hdr = f"  {'':52}{'C xenstored':>19}{'oxenstored':>19}"
    names = {"stock": "stock", "script": "block-loopd", "watch": "watch", "none": "floor"}
    for label, title in (("start-40-shared-ro", "40 domains x 1 read-only disk of one image, domain start"),
                         ("start-8-rw", "1 domain x 8 read-write disks, domain start")):
        L.append(title)
        L.append(hdr)
        for m in ("stock", "script", "watch", "none"):
            a, b = c["scenarios"][label]["attach"].get(m), o["scenarios"][label]["attach"].get(m)
            if not (a and b):
                continue
            row(f"{names[m]}: total", a["total_ms"], b["total_ms"], " ms")
            if m != "none":
                row(f"{names[m]}: added over the floor", a.get("added_ms"), b.get("added_ms"), " ms")
            row(f"{names[m]}: per-disk p50 / p99", None, None)
            L[-1] = (f"  {names[m] + ': per-disk p50 / p99':52}"
                     f"{fmt(a['latency_p50_ms'], '', 2) + ' / ' + fmt(a['latency_p99_ms'], '', 2):>19}"
                     f"{fmt(b['latency_p50_ms'], '', 2) + ' / ' + fmt(b['latency_p99_ms'], '', 2):>19}")
        a, b = c["scenarios"][label]["detach"], o["scenarios"][label]["detach"]
        for m in ("stock", "script", "watch", "none"):
            if a.get(m) and b.get(m):
                row(f"{names[m]}: teardown total", a[m]["total_ms"], b[m]["total_ms"], " ms")
        L.append("")
    L.append("Attach cost as the host holds N devices: one-disk domain starts, one at a time")
    L.append(hdr)
    ca, oa = c["attach_cost"], o["attach_cost"]
    for m in COST_MODES:
        for lv in sorted(set(ca.get(m, {})) | set(oa.get(m, {})), key=int):
            a, b = ca.get(m, {}).get(lv, {}), oa.get(m, {}).get(lv, {})
            row(f"{names[m]} at {lv}: per-disk p50, ms", a.get("p50_ms"), b.get("p50_ms"), "", 2)
            if m in ("script", "watch"):
                row(f"{names[m]} at {lv}: daemon CPU per attach, us", a.get("daemon_cpu_us_per_disk"),
                    b.get("daemon_cpu_us_per_disk"), "", 0)
                row(f"{names[m]} at {lv}: daemon system calls per attach", a.get("daemon_syscalls_per_disk"),
                    b.get("daemon_syscalls_per_disk"), "", 1)
            if m != "stock":
                row(f"{names[m]} at {lv}: xenstored CPU per attach, us", a.get("xenstored_cpu_us_per_disk"),
                    b.get("xenstored_cpu_us_per_disk"), "", 0)
    L.append("")
    L.append("Debian's real xl, one disk at a time into a running guest: p50 of xl's whole run, ms;")
    L.append("added = p50 minus the no-op script's p50")
    L.append(hdr)
    for m in XL_MODES:
        for action in ("attach", "detach"):
            a = c.get("real_xl", {}).get(m, {}).get(action)
            b = o.get("real_xl", {}).get(m, {}).get(action)
            if a or b:
                row(f"{XL_NAMES[m]}: block-{action} p50", (a or {}).get("p50_ms"), (b or {}).get("p50_ms"), "", 1)
                if m != "noop":
                    row(f"{XL_NAMES[m]}: block-{action} added", (a or {}).get("added_ms"),
                        (b or {}).get("added_ms"), "", 1)
    L.append("")
    row("daemon peak RSS, MiB", c["rss"].get("vmhwm_kib", 0) / 1024, o["rss"].get("vmhwm_kib", 0) / 1024, "", 1)
    L.append("")
    L.append("Targets (counted over the floor; checked here, never by a test)")
    for t in doc["targets"]:
        mark = {True: "met", False: "NOT MET", None: "n/a"}[t["met"]]
        k = {"c": "C", "ocaml": "ox", "both": "C+ox"}[t["xenstored"]]
        L.append(f"  [{mark:>7}] {k:4} {t['target']}: {fmt(t['value'], '', 2)} (goal {t['goal']})")
        if t.get("note"):
            L.append(f"            ({t['note']})")
    if doc.get("previous"):
        L.append("")
        L.extend(before_after_lines(doc["previous"], c))
    print("\n".join(L))
    for k, d in (("C xenstored", c), ("oxenstored", o)):
        print("\n" + "=" * 78 + f"\nThe run on the {k}, in full\n" + "=" * 78)
        print_table(d)


if __name__ == "__main__":
    main()
