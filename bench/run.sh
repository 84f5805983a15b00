#!/bin/bash
# bench/run.sh — the benchmark of xen-loopd against the stock block script
# (see bench/README.md).  Run as root from the source tree, after
# `meson setup build && meson compile -C build`:
#
#   bench/run.sh [--quick] [--json FILE] [--build DIR] [--repeat N]
#                [--xenstored c|ocaml]
#
# Everything runs on a private xenstored with the blkback emulator (the
# integration tests' harness, tests/harness/lib.sh), in a private mount
# namespace; the stock script's lock and log stay in the benchmark's temp
# dir.  On exit — success, failure or Ctrl-C — every process started here
# is stopped, every loop device bound to its images is detached, the unbound
# loop devices it added are removed again, and the temp dir goes.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC_ROOT=$(cd "$BENCH_DIR/.." && pwd)

QUICK=0
JSON_OUT=
BUILD_DIR=
REPEAT=
usage() {
	cat <<EOF
Usage: bench/run.sh [--quick] [--json FILE] [--build DIR] [--repeat N] [--xenstored c|ocaml]
  --quick      a smaller run (fewer repeats, held levels 0 and 100, 1024
               devices for the memory figure); for a first look
  --json FILE  write the results there (default bench/results/latest.json)
  --build DIR  the meson build directory (default: build)
  --repeat N   runs of each daemon-mode domain start (default 5, quick 2)
  --xenstored c|ocaml
               the xenstored to run on: Debian's C xenstored (default) or
               oxenstored, Debian's default (H_XENSTORED_KIND, see
               tests/harness/README.md)
EOF
}
while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1 ;;
	--json) JSON_OUT=$2; shift ;;
	--json=*) JSON_OUT=${1#*=} ;;
	--build) BUILD_DIR=$2; shift ;;
	--build=*) BUILD_DIR=${1#*=} ;;
	--repeat) REPEAT=$2; shift ;;
	--repeat=*) REPEAT=${1#*=} ;;
	--xenstored) H_XENSTORED_KIND=${2:-}; shift ;;
	--xenstored=*) H_XENSTORED_KIND=${1#*=} ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
case ${H_XENSTORED_KIND:=c} in
c | ocaml) export H_XENSTORED_KIND ;;
*) echo "bench/run.sh: --xenstored takes c or ocaml, not '$H_XENSTORED_KIND'" >&2; exit 2 ;;
esac
# Paths given are kept across the re-execution in a mount namespace.
: "${JSON_OUT:=$BENCH_DIR/results/latest.json}"
case $JSON_OUT in /*) ;; *) JSON_OUT=$PWD/$JSON_OUT ;; esac
: "${BUILD_DIR:=$SRC_ROOT/build}"
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$PWD/$BUILD_DIR ;; esac
if [ "$QUICK" = 1 ]; then
	: "${REPEAT:=2}"
	HELD_LEVELS=(0 100)
	STOCK_LEVELS=(0)
	RSS_DEVICES=1024
	K_DAEMON=10
	K_STOCK=5
	XL_ROUNDS=5
else
	: "${REPEAT:=5}"
	HELD_LEVELS=(0 100 1000)
	STOCK_LEVELS=(0 100)
	RSS_DEVICES=4096
	K_DAEMON=20
	K_STOCK=10
	XL_ROUNDS=20
fi
SHARED_DOMAINS=40
RW_DISKS=8
export H_BUILD_DIR=$BUILD_DIR

for b in src/xen-loopd src/xen-loopctl src/block-loopd bench/loopd-bench tests/harness/blkback-emu \
	 tests/harness/xsd-preload.so tests/harness/oxsd-preload.so tests/harness/xs-libxl tests/harness/xl-preload.so; do
	if [ ! -e "$BUILD_DIR/$b" ]; then
		echo "bench/run.sh: $BUILD_DIR/$b is missing; run meson setup and meson compile first" >&2
		exit 2
	fi
done
if [ "$(id -u)" != 0 ]; then
	echo "bench/run.sh: must run as root (loop devices, a private xenstored)" >&2
	exit 2
fi
XEN_LOOPD=$BUILD_DIR/src/xen-loopd
XEN_LOOPCTL=$BUILD_DIR/src/xen-loopctl
LOOPD_BENCH=$BUILD_DIR/bench/loopd-bench
export XEN_LOOPD XEN_LOOPCTL

# The harness: private namespace, temp dir, xenstored, blkback emulator,
# the daemon; and its teardown on every exit.
. "$SRC_ROOT/tests/harness/lib.sh"
. "$SRC_ROOT/tests/daemon/lib-daemon.sh"
# Devices the harness finds bound to our images at exit are detached, which
# it reports as a leak; the benchmark's cleanup handles them first.
export H_ALLOW_LEFTOVER_LOOPS=1
LOOPS_AT_START=$(ls /sys/block | sed -n 's/^loop\([0-9]\+\)$/\1/p')
h_init --json "$JSON_OUT" --build "$BUILD_DIR" --repeat "$REPEAT" $([ "$QUICK" = 1 ] && echo --quick)

# Runs first among the exit handlers (before the harness stops its
# processes): stop everything, let autoclear work, detach what is still
# bound to our images, then remove the unbound loop devices this run added.
bench_teardown() {
	local i p n left new=() ours=
	set +e
	# What is bound to our images now (a phase cut short has not said).
	[ -n "${IMAGES:-}" ] && ours=$("$LOOPD_BENCH" bound-loops "$IMAGES/")
	for ((i = ${#H_PIDS[@]} - 1; i >= 0; i--)); do
		p=${H_PIDS[$i]%% *}
		[ -n "$p" ] && h_kill_pid "$p"
	done
	# The stock script's devices have no autoclear: detach them now; wait
	# a little for the others to clear themselves.
	for p in $(h_loops_in_tmp); do
		[ "$(cat "/sys/block/${p#/dev/}/loop/autoclear" 2>/dev/null)" = 0 ] && losetup -d "$p" 2>/dev/null
	done
	for ((i = 0; i < 100; i++)); do
		left=$(h_loops_in_tmp)
		[ -z "$left" ] && break
		sleep 0.05
	done
	for p in $left; do
		losetup -d "$p" 2>/dev/null
	done
	# Loop devices this run published that did not exist before it and are
	# unbound now (the stock script and the daemon add devices when none is
	# free).  The kernel refuses to remove a device that is open or bound.
	if [ -d "${RESULTS:-}" ]; then
		local -A before=()
		for n in $LOOPS_AT_START; do
			before[$n]=1
		done
		for n in $ours $(python3 "$BENCH_DIR/report.py" --loopdevs "$RESULTS"); do
			[ -n "${before[$n]:-}" ] && continue
			[ -e "/sys/block/loop$n/loop/backing_file" ] || new+=("$n")
		done
	fi
	if [ "${#new[@]}" -gt 0 ]; then
		n=$(printf '%s\n' "${new[@]}" | sort -u | xargs "$LOOPD_BENCH" remove-loops |
			awk '{ s += $1 } END { print s + 0 }')
		h_log "removed $n unbound loop devices this run added"
	fi
	return 0
}
h_on_cleanup bench_teardown

RESULTS=$H_TMP/results
IMAGES=$H_TMP/images
mkdir -p "$RESULTS" "$IMAGES" "$H_TMP/bin" "$H_TMP/disks"
BLOCK_LOOPD=$H_TMP/bin/block-loopd
ln -s "$BUILD_DIR/src/block-loopd" "$BLOCK_LOOPD"
STOCK_SCRIPT=$H_SCRIPT_DIR/block
[ -x "$STOCK_SCRIPT" ] || h_fail "$STOCK_SCRIPT not found (Debian package xen-utils-common)"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# ---------------------------------------------------------------- disks

# A disk list for loopd-bench: `domid vdev params mode` a line.
VDEVS=(xvda xvdb xvdc xvdd xvde xvdf xvdg xvdh)

# disks_shared FILE FIRST_DOMID N IMAGE — N domains, one read-only disk each.
disks_shared() {
	local f=$1 first=$2 n=$3 img=$4 d
	: >"$f"
	for ((d = first; d < first + n; d++)); do
		printf '%d xvda %s r\n' "$d" "$img" >>"$f"
	done
}

# disks_rw FILE FIRST_DOMID N PER_DOMAIN NAME SIZE — N rw disks of distinct
# images, PER_DOMAIN to a domain.
disks_rw() {
	local f=$1 first=$2 n=$3 per=$4 name=$5 size=$6 i dom img files=()
	: >"$f"
	for ((i = 0; i < n; i++)); do
		dom=$((first + i / per))
		img="$IMAGES/$name-$dom-$((i % per)).img"
		files+=("$img")
		printf '%d %s %s w\n' "$dom" "${VDEVS[$((i % per))]}" "$img" >>"$f"
	done
	printf '%s\0' "${files[@]}" | xargs -0 truncate -s "$size"
}

# lines FILE FROM TO — lines FROM..TO (1-based) of FILE.
lines() { sed -n "$2,$3p" "$1"; }

# ---------------------------------------------------------------- the driver

# proc_work — "name cpu_ns syscalls" for xenstored and the daemon: time on a
# CPU (schedstat) and read/write system calls (io), for what each phase
# costs them whatever else runs on the host.
proc_work() {
	local name pid cpu r w
	for name in xenstored xen-loopd; do
		case $name in
		xenstored) pid=$H_XSD_PID ;;
		*) pid=${H_DAEMON_PID:-} ;;
		esac
		[ -n "$pid" ] && [ -r "/proc/$pid/schedstat" ] || continue
		read -r cpu _ </proc/"$pid"/schedstat
		r=$(awk '$1 == "syscr:" { print $2 }' "/proc/$pid/io")
		w=$(awk '$1 == "syscw:" { print $2 }' "/proc/$pid/io")
		printf '%s %s %s\n' "$name" "$cpu" "$((r + w))"
	done
}

PHASE=0
STOCK_RETRIES=0
# drive LABEL ACTION MODE DISKFILE [LOOPD-BENCH OPTIONS] — one timed phase;
# its JSON goes to $RESULTS.  A phase with failed disks fails the run, but
# for one: the stock script's `losetup -f` then `losetup DEV FILE` loses its
# device when another process on the host sets up a loop device in between
# (its known race); such an attach is torn down and run again, up to 9 times,
# and the count is reported.
drive() {
	local label=$1 action=$2 mode=$3 disks=$4 out script=() attempt tries=1 work_before pid rc
	shift 4
	PHASE=$((PHASE + 1))
	out=$(printf '%s/%03d.json' "$RESULTS" "$PHASE")
	case $mode in
	# The floor writes the stock script's backends but runs nothing (and
	# a running xen-loopd leaves a disk with a foreign script alone).
	stock | none) script=(--script "$STOCK_SCRIPT") ;;
	script) script=(--script "$BLOCK_LOOPD") ;;
	esac
	[ "$mode" = stock ] && [ "$action" = attach ] && tries=10
	for ((attempt = 1; ; attempt++)); do
		work_before=$(proc_work)
		# In the background, so that a signal to this script is acted on
		# at once (the teardown stops the driver, which kills its scripts).
		"$LOOPD_BENCH" "$action" --mode "$mode" "${script[@]}" --disks "$disks" \
			--loop-prefix "$IMAGES/" --label "$label" --out "$out" "$@" \
			2>>"$H_TMP/log/loopd-bench.log" </dev/null &
		pid=$!
		h_register_pid "$pid" loopd-bench
		rc=0
		wait "$pid" || rc=$?
		h_unregister_pid "$pid"
		[ "$rc" = 0 ] && break
		if [ "$attempt" -ge "$tries" ] || ! grep -q 'losetup.*failed' "$out" 2>/dev/null; then
			h_fail "phase $label ($action, $mode) failed: $(cat "$out" 2>/dev/null || echo 'no result')"
		fi
		STOCK_RETRIES=$((STOCK_RETRIES + 1))
		h_log "$label: the stock script lost a loop device to another process (its losetup race); again"
		mv "$out" "$out.lost-race-$attempt"
		"$LOOPD_BENCH" detach --mode "$mode" "${script[@]}" --disks "$disks" \
			--loop-prefix "$IMAGES/" --label retry --out "$out.cleanup-$attempt" \
			2>>"$H_TMP/log/loopd-bench.log" </dev/null || h_fail "tearing down $label after the race failed"
	done
	# The work of xenstored and the daemon goes into the phase's JSON; one
	# line of progress per phase.
	B_WORK_BEFORE=$work_before B_WORK_AFTER=$(proc_work) python3 - "$out" <<'EOF' >&2
import json, os, sys
r = json.load(open(sys.argv[1]))
def parse(s):
    return {l.split()[0]: (int(l.split()[1]), int(l.split()[2])) for l in s.splitlines() if l.strip()}
before, after = parse(os.environ["B_WORK_BEFORE"]), parse(os.environ["B_WORK_AFTER"])
r["work"] = {n: {"cpu_ms": (after[n][0] - before[n][0]) / 1e6, "syscalls": after[n][1] - before[n][1]}
             for n in after if n in before}
json.dump(r, open(sys.argv[1], "w"), indent=1)
lat = r.get("latency_ms", {})
print("# %-28s %-6s %-6s %4d disks  total %9.1f ms  p50 %8.2f ms  p99 %8.2f ms" % (
    r["label"], r["mode"], r["action"], r["disks"], r["total_ms"],
    lat.get("p50", 0), lat.get("p99", 0)))
EOF
}

# ---------------------------------------------------------------- set-up

LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
h_log "benchmark dir $H_TMP (quick=$QUICK, repeat=$REPEAT, load average $LOADAVG_START)"
h_xenstored_start
h_blkback_start

SHARED_IMG=$(h_sparse_file shared.img 128M)
disks_shared "$H_TMP/disks/shared" 1 "$SHARED_DOMAINS" "$SHARED_IMG"
disks_rw "$H_TMP/disks/rw" 100 "$RW_DISKS" "$RW_DISKS" rw 64M
# Disks for the attach cost: one-disk domains, attached one at a time.
MAXK=$((K_DAEMON > K_STOCK ? K_DAEMON : K_STOCK))
disks_rw "$H_TMP/disks/probe" 200 "$MAXK" 1 probe 1M
# The devices the host holds meanwhile: 4 rw disks to a domain.
disks_rw "$H_TMP/disks/held" 1000 "$RSS_DEVICES" 4 held 1M

# attach_cost MODE LEVEL K — K one-disk domain starts, one at a time, then
# their teardown.
attach_cost() {
	local mode=$1 level=$2 k=$3 f="$H_TMP/disks/probe.$3"
	lines "$H_TMP/disks/probe" 1 "$k" >"$f"
	drive "attach-held-$level" attach "$mode" "$f" --sequential
	drive "attach-held-$level" detach "$mode" "$f"
}

# settle — until xenstored, the emulator and the daemon have used no CPU
# for 0.2 s (at most 10 s): what a bulk phase set off is over.
settle() {
	local i p cur prev=
	for ((i = 0; i < 50; i++)); do
		cur=0
		for p in $H_XSD_PID $H_BLKBACK_PID ${H_DAEMON_PID:-}; do
			[ -r "/proc/$p/stat" ] && cur=$((cur + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
		done
		[ "$cur" = "$prev" ] && return 0
		prev=$cur
		sleep 0.2
	done
}

# populate MODE FROM TO — the host comes to hold TO devices (from FROM).
populate() {
	local mode=$1 from=$2 to=$3 f="$H_TMP/disks/held.$2-$3"
	[ "$to" -gt "$from" ] || return 0
	lines "$H_TMP/disks/held" $((from + 1)) "$to" >"$f"
	drive "hold-$to" attach "$mode" "$f"
	settle
}

# unpopulate MODE N — tear the N held devices down again.
unpopulate() {
	local mode=$1 n=$2 f="$H_TMP/disks/held.0-$2.all"
	[ "$n" -gt 0 ] || return 0
	lines "$H_TMP/disks/held" 1 "$n" >"$f"
	drive "release-$n" detach "$mode" "$f"
}

# ---------------------------------------------------------------- stock

h_log "stock block script (no daemon running)"
drive start-40-shared-ro attach stock "$H_TMP/disks/shared"
drive start-40-shared-ro detach stock "$H_TMP/disks/shared"
drive start-8-rw attach stock "$H_TMP/disks/rw"
drive start-8-rw detach stock "$H_TMP/disks/rw"
held=0
for level in "${STOCK_LEVELS[@]}"; do
	populate stock "$held" "$level"
	held=$level
	attach_cost stock "$level" "$K_STOCK"
done
unpopulate stock "$held"

h_log "the floor: the same backends with no script and no daemon"
for ((r = 1; r <= REPEAT; r++)); do
	drive start-40-shared-ro attach none "$H_TMP/disks/shared"
	drive start-40-shared-ro detach none "$H_TMP/disks/shared"
	drive start-8-rw attach none "$H_TMP/disks/rw"
	drive start-8-rw detach none "$H_TMP/disks/rw"
done

# ---------------------------------------------------------------- daemon

h_log "xen-loopd: script mode (block-loopd) and watch mode"
h_daemon_start --log-level info
for ((r = 1; r <= REPEAT; r++)); do
	for mode in script watch; do
		drive start-40-shared-ro attach "$mode" "$H_TMP/disks/shared"
		drive start-40-shared-ro detach "$mode" "$H_TMP/disks/shared"
		drive start-8-rw attach "$mode" "$H_TMP/disks/rw"
		drive start-8-rw detach "$mode" "$H_TMP/disks/rw"
	done
done
# ---------------------------------------------------------------- real xl

# Debian's real `xl block-attach` and `block-detach` (tests/harness/lib-xl.sh),
# one disk at a time into a running guest: the stock script and block-loopd
# in alternate rounds of the same run (the daemon leaves the stock script's
# disks alone).  Each time is xl's whole run, its own start included.
h_log "the real xl: one disk at a time into a running guest, stock and block-loopd"
. "$SRC_ROOT/tests/harness/lib-xl.sh"
h_xl_init
XL_DOMID=9001
h_xl_domain "$XL_DOMID"
XL_IMG=$(h_sparse_file xl.img 64M)
xl_ms() { echo $(($(date +%s%N) / 1000000)); }
for ((r = 1; r <= XL_ROUNDS; r++)); do
	for mode in stock script; do
		xl_script=block
		[ "$mode" = script ] && xl_script=block-loopd
		t0=$(xl_ms)
		h_xl block-attach "$XL_DOMID" "$(h_xl_disk_spec xvda "$XL_IMG" w "$xl_script")" &&
			rc=0 || rc=$?
		t1=$(xl_ms)
		if [ "$rc" = 0 ] && h_xl block-detach "$XL_DOMID" xvda; then
			printf '%s attach %s\n%s detach %s\n' "$mode" $((t1 - t0)) "$mode" $(($(xl_ms) - t1))
		else
			h_fail "real xl, $mode, round $r: xl failed: $(grep -v '^libxl: debug' "$H_XL_ERR" | tr '\n' ' ')"
		fi
	done
done >"$H_TMP/xl-times"
python3 - "$H_TMP/xl-times" "$RESULTS/xl.json" <<'EOF'
import json, sys
r = {}
for line in open(sys.argv[1]):
    mode, action, ms = line.split()
    r.setdefault(mode, {}).setdefault(action + "_ms_samples", []).append(int(ms))
json.dump({"domains": 1, "disks_per_round": 1, "modes": r}, open(sys.argv[2], "w"))
EOF
h_log "real xl: $XL_ROUNDS rounds of each done"

held=0
for level in "${HELD_LEVELS[@]}"; do
	populate watch "$held" "$level"
	held=$level
	# xenstored's own cost per request at this level, nothing else running.
	"$LOOPD_BENCH" xs-probe >"$RESULTS/xsprobe-$level.json" || h_fail "xs-probe at $level held failed"
	# The floor at this level too: how xenstored's own cost grows with
	# what the store holds.
	for mode in none watch script; do
		attach_cost "$mode" "$level" "$K_DAEMON"
	done
done

h_log "memory: the daemon holding $RSS_DEVICES devices"
populate watch "$held" "$RSS_DEVICES"
held=$RSS_DEVICES
status=$(cat "/proc/$H_DAEMON_PID/status")
fds=$(ls "/proc/$H_DAEMON_PID/fd" | wc -l)
devices=$(h_loopctl status --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["devices"])')
# `list` answers in one message of at most 1 MiB (doc/protocol.md).
if list_err=$(h_loopctl list --json 2>&1 >/dev/null); then
	list_ok=True
else
	list_ok=False
fi
unpopulate watch "$held"
h_daemon_stop

# ---------------------------------------------------------------- report

kb() { awk -v k="$1:" '$1 == k { print $2 }' <<<"$status"; }
B_LIST_ERROR=$list_err B_CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo) \
B_COMMIT=$(git -C "$SRC_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown) \
B_LOAD_START=$LOADAVG_START B_LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg) \
python3 - "$RESULTS/meta.json" <<EOF
import json, os, sys
e = os.environ
json.dump({
    "quick": $QUICK == 1,
    "repeat": $REPEAT,
    "stock_losetup_races": $STOCK_RETRIES,
    "loadavg_start": e["B_LOAD_START"],
    "loadavg_end": e["B_LOAD_END"],
    "rss": {"devices": $RSS_DEVICES, "daemon_devices": $devices, "fds": $fds,
            "list_ok": $list_ok, "list_error": e["B_LIST_ERROR"],
            "vmhwm_kib": $(kb VmHWM), "vmrss_kib": $(kb VmRSS)},
    "host": {"kernel": "$(uname -r)", "cpus": $(nproc), "cpu": e["B_CPU"]},
    "commit": e["B_COMMIT"],
    "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
    "stock_script": "$STOCK_SCRIPT",
    "xenstored": "$H_XENSTORED_KIND",
}, open(sys.argv[1], "w"))
EOF
mkdir -p "$(dirname "$JSON_OUT")"
python3 "$BENCH_DIR/report.py" "$RESULTS" "$JSON_OUT"
h_log "results in $JSON_OUT"
