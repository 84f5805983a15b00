#!/bin/bash
# The real-Xen stage: Debian's Xen 4.17 hypervisor under qemu-system-x86_64
# (software emulation; KVM is not needed), Debian's 6.1 kernel as dom0 with
# the real xenstored, xl and xen-blkback, xen-loopd and block-loopd in dom0,
# and PV guests whose xen-blkfront reads and writes the disks.  The
# scenarios (scenarios.sh) run unattended in dom0 and report on the serial
# console, which this script follows; README.md says what they cover.
#
# Environment: XEN_LOOPD, XEN_LOOPCTL, BLOCK_LOOPD (the programs put into
# dom0), XEN_STAGE_DIR (work directory: package cache, images, console
# log, timings; default build/tests/xen/stage), XEN_STAGE_TIMEOUT (seconds
# for the whole run in QEMU, default 900), XEN_STAGE_CYCLES (block-loopd
# hot-plug cycles, default 20), XEN_STAGE_STOCK_CYCLES (stock script
# cycles, default 5), XEN_STAGE_LIBXL (a directory with a libxenlight built
# with the empty-script change: runs scenario 6; build-images.sh; default
# XEN_STAGE_LIBXL_DEFAULT when it holds one).
#
# Output: every step on stdout, the console log in
# $XEN_STAGE_DIR/console.log (kept), the timings in
# $XEN_STAGE_DIR/timings.json.  Exit 0 on PASS, 1 on FAIL, 77 when QEMU or
# the packages cannot be had (a failure under CI=true).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${XEN_STAGE_DIR:-$root/build/tests/xen/stage}
limit=${XEN_STAGE_TIMEOUT:-900}
cycles=${XEN_STAGE_CYCLES:-20}
stock_cycles=${XEN_STAGE_STOCK_CYCLES:-5}

skip() {
	echo "SKIP: $*"
	if [ "${CI:-}" = true ]; then
		echo "FAIL: CI=true: the real-Xen stage must run"
		exit 1
	fi
	exit 77
}
die() { echo "FAIL: $*"; exit 1; }

# Scenario 6's libxl: the one named, or the one the libxl stage builds.
if [ -z "${XEN_STAGE_LIBXL:-}" ] && [ -f "${XEN_STAGE_LIBXL_DEFAULT:-/nonexistent}/libxenlight.so.4.17" ]; then
	export XEN_STAGE_LIBXL=$XEN_STAGE_LIBXL_DEFAULT
fi

for v in cycles stock_cycles limit; do
	[[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -gt 0 ] || die "$v must be a positive integer, not '${!v}'"
done
qemu=$(command -v qemu-system-x86_64) || skip "qemu-system-x86_64 is missing (tools/install-deps.sh)"
for v in XEN_LOOPD XEN_LOOPCTL BLOCK_LOOPD; do
	[ -x "${!v:-}" ] || die "$v does not name a built program (${!v:-unset})"
done

mkdir -p "$work" || die "cannot create $work"
work=$(cd "$work" && pwd)
console=$work/console.log
timings=$work/timings.json
rm -f "$console" "$timings"

echo "== building the images in $work"
b_start=$SECONDS
if ! "$here/build-images.sh" "$work" "$XEN_LOOPD" "$XEN_LOOPCTL" "$BLOCK_LOOPD"; then
	# Without the packages (no network, no apt lists) the stage cannot run.
	if ! ls "$work"/cache/xen-hypervisor-*.deb >/dev/null 2>&1 || ! ls "$work"/cache/linux-image-*.deb >/dev/null 2>&1; then
		skip "the hypervisor and kernel packages could not be downloaded"
	fi
	die "build-images.sh failed"
fi
echo "== images built in $((SECONDS - b_start)) s"
qemu_version=$("$qemu" --version | head -n1)
echo "== $qemu_version; host: $(nproc) CPUs, QEMU runs without KVM (TCG)"
cat "$work/versions"

qpid=
stop_qemu() {
	[ -n "$qpid" ] || return 0
	kill -TERM "$qpid" 2>/dev/null
	for _ in $(seq 50); do
		kill -0 "$qpid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$qpid" 2>/dev/null
	wait "$qpid" 2>/dev/null
	qpid=
}
trap stop_qemu EXIT
trap 'stop_qemu; exit 1' INT TERM HUP

# Xen: serial console, fixed dom0 memory, no reboot; xsave=0 avoids memory
# corruption seen with two domains under this QEMU.  QEMU: no SMAP/SMEP
# (dom0 crashes at its first instruction with them), one CPU.
xen_cmdline="console=com1 dom0_mem=1024M,max:1024M dom0_max_vcpus=1 noreboot iommu=0 xsave=0"
dom0_cmdline="console=hvc0 quiet xentest.cycles=$cycles xentest.stock_cycles=$stock_cycles"
echo "== booting: xen $xen_cmdline; dom0 $dom0_cmdline"
start=$SECONDS
"$qemu" -machine pc -cpu max,-smap,-smep -smp 1 -m 2048 \
	-display none -monitor none -serial "file:$console" -nic none -no-reboot \
	-kernel "$work/xen.elf" -append "$xen_cmdline" \
	-initrd "$work/vmlinux $dom0_cmdline,$work/dom0.cpio" </dev/null >"$work/qemu.log" 2>&1 &
qpid=$!

# Follow the console: print the steps as they come, stop at the result.
result=
boot_s=
seen=0
while :; do
	if [ -f "$console" ]; then
		mapfile -t lines < <(tail -n "+$((seen + 1))" "$console" | tr -d '\r')
		# Only whole lines: the last one may still be written.
		n=${#lines[@]}
		if [ "$n" -gt 0 ] && [ "$(tail -c1 "$console" | od -An -c | tr -d ' ')" != '\n' ]; then
			n=$((n - 1))
		fi
		for ((i = 0; i < n; i++)); do
			l=${lines[i]}
			case $l in
			*"XENTEST "*)
				[ -n "$boot_s" ] || boot_s=$((SECONDS - start))
				l=${l#*XENTEST }
				printf '[%4d s] %s\n' $((SECONDS - start)) "$l"
				case $l in "RESULT "*) result=${l#RESULT } ;; esac
				;;
			esac
		done
		seen=$((seen + n))
	fi
	[ -n "$result" ] && break
	if ! kill -0 "$qpid" 2>/dev/null; then
		echo "QEMU exited before a result:"
		cat "$work/qemu.log"
		break
	fi
	if [ $((SECONDS - start)) -ge "$limit" ]; then
		echo "no result after $limit s"
		break
	fi
	sleep 0.5
done
run_s=$((SECONDS - start))

# dom0 powers off after the result; QEMU then exits by itself.
for _ in $(seq 100); do
	kill -0 "$qpid" 2>/dev/null || break
	sleep 0.1
done
stop_qemu

python3 - "$console" "$timings" "$qemu_version" "$work/versions" "$run_s" "${result:-none}" "${boot_s:-0}" <<'PY'
import json, statistics, sys, time
console, out, qemu, versions, run_s, result, boot_s = sys.argv[1:]
steps = {}
for line in open(console, errors="replace"):
    if "XENTEST TIME " in line:
        f = line.split("XENTEST TIME ", 1)[1].split()
        if len(f) == 2:
            steps.setdefault(f[0], []).append(float(f[1]))
summary = {}
for k, v in steps.items():
    summary[k] = {"n": len(v), "min_ms": min(v), "p50_ms": statistics.median(v),
                  "mean_ms": round(statistics.fmean(v), 3), "max_ms": max(v)}
doc = {
    "what": "real Xen 4.17 under QEMU (TCG, no KVM): per-step times in dom0, xen-loopd's block-loopd and the stock block script on the same boot",
    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "result": result,
    "run_seconds": int(run_s),
    "boot_to_dom0_scenarios_seconds": int(boot_s),
    "qemu": qemu,
    "packages": dict(l.split(None, 1) for l in open(versions).read().splitlines() if l),
    "steps_ms": steps,
    "summary": summary,
}
json.dump(doc, open(out, "w"), indent=1, sort_keys=True)
for k in sorted(summary):
    s = summary[k]
    print(f"  {k:28} n={s['n']:3}  p50 {s['p50_ms']:9.1f} ms  min {s['min_ms']:9.1f}  max {s['max_ms']:9.1f}")
PY
echo "== timings: $timings"

case $result in
PASS)
	echo "PASS: real Xen stage ($run_s s in QEMU); console log $console"
	exit 0
	;;
*)
	echo "FAIL: real Xen stage (result: ${result:-none}); the console log is kept: $console"
	grep -v '^(XEN) ' "$console" | tail -n 200
	exit 1
	;;
esac
