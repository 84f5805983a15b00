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
XSD_KINDS=
LIBXL_DIR=${XEN_LIBXL_DIR:-}
PREVIOUS=
usage() {
	cat <<EOF
Usage: bench/run.sh [--quick] [--json FILE] [--build DIR] [--repeat N]
                    [--xenstored c|ocaml|both] [--libxl DIR] [--previous FILE]
  --quick      a smaller run (fewer repeats, held levels 0 and 100, 1024
               devices for the memory figure, 5 real-xl rounds); for a first
               look
  --json FILE  write the results there (default bench/results/latest.json)
  --build DIR  the meson build directory (default: build)
  --repeat N   runs of each daemon-mode domain start (default 5, quick 2)
  --xenstored c|ocaml|both
               every phase on Debian's C xenstored, on oxenstored (Debian's
               default xenstored), or on both, one after the other, reported
               side by side (default both; H_XENSTORED_KIND, see
               tests/harness/README.md)
  --libxl DIR  the empty-script libxenlight for the real-xl phase (default
               build-test-libxl/lib, where tools/run-tests.sh's libxl stage
               builds it; tests/libxl/build-libxl.sh DIR builds one in
               DIR/lib); without it that column is left out
  --previous FILE
               an earlier run to compare with (default: the JSON file this
               run replaces, if there is one)
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
	--xenstored) XSD_KINDS=${2:-}; shift ;;
	--xenstored=*) XSD_KINDS=${1#*=} ;;
	--libxl) LIBXL_DIR=${2:-}; shift ;;
	--libxl=*) LIBXL_DIR=${1#*=} ;;
	--previous) PREVIOUS=${2:-}; shift ;;
	--previous=*) PREVIOUS=${1#*=} ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
case ${XSD_KINDS:=both} in
c | ocaml | both) ;;
*) echo "bench/run.sh: --xenstored takes c, ocaml or both, not '$XSD_KINDS'" >&2; exit 2 ;;
esac
case $REPEAT in
'' | [1-9] | [1-9][0-9]) ;;
*) echo "bench/run.sh: --repeat takes a number from 1 to 99, not '$REPEAT'" >&2; exit 2 ;;
esac
# Paths given are kept across the re-execution in a mount namespace.
: "${JSON_OUT:=$BENCH_DIR/results/latest.json}"
case $JSON_OUT in /*) ;; *) JSON_OUT=$PWD/$JSON_OUT ;; esac
: "${BUILD_DIR:=$SRC_ROOT/build}"
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$PWD/$BUILD_DIR ;; esac
: "${LIBXL_DIR:=$SRC_ROOT/build-test-libxl/lib}"
case $LIBXL_DIR in /*) ;; *) LIBXL_DIR=$PWD/$LIBXL_DIR ;; esac
if [ -z "$PREVIOUS" ] && [ -z "${B_CHILD:-}" ] && [ -s "$JSON_OUT" ]; then
	PREVIOUS=$JSON_OUT
fi
case $PREVIOUS in '' | /*) ;; *) PREVIOUS=$PWD/$PREVIOUS ;; esac
[ -z "$PREVIOUS" ] || [ -r "$PREVIOUS" ] || { echo "bench/run.sh: cannot read $PREVIOUS" >&2; exit 2; }

# Both xenstoreds: this script once for each, one after the other (each in a
# harness of its own), then one report with the two side by side.
if [ "$XSD_KINDS" = both ]; then
	[ "$(id -u)" = 0 ] || { echo "bench/run.sh: must run as root (loop devices, a private xenstored)" >&2; exit 2; }
	both_dir=$(mktemp -d "${TMPDIR:-/tmp}/loopd-bench-both.XXXXXX")
	# What a finished half wrote is kept if the other fails.
	trap 'if [ -n "${both_ok:-}" ]; then rm -rf "$both_dir"; else echo "bench/run.sh: what was measured is in $both_dir" >&2; fi' EXIT
	[ -n "$PREVIOUS" ] && cp "$PREVIOUS" "$both_dir/previous.json"
	child=()
	[ "$QUICK" = 1 ] && child+=(--quick)
	[ -n "$REPEAT" ] && child+=(--repeat "$REPEAT")
	start=$SECONDS
	for kind in c ocaml; do
		echo "bench/run.sh: every phase on the $kind xenstored" >&2
		B_CHILD=1 bash "$BENCH_DIR/run.sh" "${child[@]}" --build "$BUILD_DIR" --libxl "$LIBXL_DIR" \
			--xenstored "$kind" --json "$both_dir/$kind.json" >"$both_dir/$kind.txt"
	done
	mkdir -p "$(dirname "$JSON_OUT")"
	python3 "$BENCH_DIR/report.py" --combine "$JSON_OUT" "$both_dir/c.json" "$both_dir/ocaml.json" \
		${PREVIOUS:+--previous "$both_dir/previous.json"} --wall-s $((SECONDS - start))
	echo "bench/run.sh: results in $JSON_OUT" >&2
	both_ok=1
	exit 0
fi
export H_XENSTORED_KIND=$XSD_KINDS

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
	HELD_LEVELS=(0 100 1000 4096)
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
h_init --json "$JSON_OUT" --build "$BUILD_DIR" --repeat "$REPEAT" --xenstored "$XSD_KINDS" \
	--libxl "$LIBXL_DIR" ${PREVIOUS:+--previous "$PREVIOUS"} $([ "$QUICK" = 1 ] && echo --quick)

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

# proc_work — "name cpu_ns rw_syscalls" for xenstored and the daemon: time on
# a CPU (schedstat) and read/write system calls (io), for what each phase
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

# Every system call of xenstored and the daemon, counted by the kernel
# (perf stat on the raw_syscalls:sys_enter tracepoint, per process) in the
# phases that measure the work of one attach.  /proc/PID/io counts only the
# read and write kinds.  Without a working perf the phase says so.
PERF_OK=0
if command -v perf >/dev/null && perf stat -x, -e raw_syscalls:sys_enter -- true >/dev/null 2>&1; then
	PERF_OK=1
fi
PERF_PIDS=()
# count_start — one perf stat per process, attached before the phase starts.
count_start() {
	local name pid
	PERF_PIDS=()
	[ "$PERF_OK" = 1 ] || return 0
	for name in xenstored xen-loopd; do
		case $name in
		xenstored) pid=$H_XSD_PID ;;
		*) pid=${H_DAEMON_PID:-} ;;
		esac
		[ -n "$pid" ] || continue
		perf stat -x, -e raw_syscalls:sys_enter -p "$pid" -o "$H_TMP/perf.$name" </dev/null \
			>/dev/null 2>>"$H_TMP/log/perf.log" &
		PERF_PIDS+=("$!:$name")
		h_register_pid "$!" "perf stat $name"
	done
	# perf opens its counters a moment after it starts; a phase begun
	# before that would go partly uncounted.
	sleep 0.3
}
# count_stop — COUNTED gets "name syscalls" for each counted process (not
# run in a subshell: it must wait for its own perf processes).
count_stop() {
	local e pid name n
	COUNTED=
	for e in "${PERF_PIDS[@]}"; do
		pid=${e%%:*} name=${e#*:}
		kill -INT "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		h_unregister_pid "$pid"
		n=$(awk -F, '$3 == "raw_syscalls:sys_enter" { print $1 }' "$H_TMP/perf.$name" 2>/dev/null)
		case $n in '' | *[!0-9]*) ;; *) COUNTED+="$name $n"$'\n' ;; esac
	done
	PERF_PIDS=()
}

PHASE=0
STOCK_RETRIES=0
# drive LABEL ACTION MODE DISKFILE [LOOPD-BENCH OPTIONS] — one timed phase;
# its JSON goes to $RESULTS.  A phase with failed disks fails the run, but
# for one: the stock script's `losetup -f` then `losetup DEV FILE` loses its
# device when another process on the host sets up a loop device in between
# (its known race); such an attach is torn down and run again, up to 9 times
# (29 for the held devices), and the count is reported.
drive() {
	local label=$1 action=$2 mode=$3 disks=$4 out script=() attempt tries=1 work_before pid rc
	local count=0 counted=
	shift 4
	# The attach-cost phases count every system call (count_start).
	case $label:$action in attach-held-*:attach) count=1 ;; esac
	PHASE=$((PHASE + 1))
	out=$(printf '%s/%03d.json' "$RESULTS" "$PHASE")
	case $mode in
	# The floor writes the stock script's backends but runs nothing (and
	# a running xen-loopd leaves a disk with a foreign script alone).
	stock | none) script=(--script "$STOCK_SCRIPT") ;;
	script) script=(--script "$BLOCK_LOOPD") ;;
	esac
	[ "$mode" = stock ] && [ "$action" = attach ] && tries=10
	# Setting up the held devices (100 at once) loses the race most often.
	[ "$mode" = stock ] && [ "$action" = attach ] && [ "${label#hold-}" != "$label" ] && tries=30
	for ((attempt = 1; ; attempt++)); do
		[ "$count" = 1 ] && count_start
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
		counted=
		[ "$count" = 1 ] && count_stop && counted=$COUNTED
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
	B_WORK_BEFORE=$work_before B_WORK_AFTER=$(proc_work) B_COUNTED=$counted python3 - "$out" <<'EOF' >&2
import json, os, sys
r = json.load(open(sys.argv[1]))
def parse(s):
    return {l.split()[0]: (int(l.split()[1]), int(l.split()[2])) for l in s.splitlines() if l.strip()}
before, after = parse(os.environ["B_WORK_BEFORE"]), parse(os.environ["B_WORK_AFTER"])
counted = {l.split()[0]: int(l.split()[1]) for l in os.environ["B_COUNTED"].splitlines() if l.strip()}
# syscalls: every system call where perf counted them, else the read and
# write kinds of /proc/PID/io (what runs before this one reported).
r["work"] = {}
for n in after:
    if n not in before:
        continue
    rw = after[n][1] - before[n][1]
    r["work"][n] = {"cpu_ms": (after[n][0] - before[n][0]) / 1e6, "rw_syscalls": rw,
                    "syscalls": counted.get(n, rw),
                    "syscalls_source": "perf raw_syscalls:sys_enter" if n in counted else "/proc/PID/io syscr+syscw"}
# The host's load as the phase ended: other work on the host skews times.
r["loadavg"] = open("/proc/loadavg").read().split()[:3]
json.dump(r, open(sys.argv[1], "w"), indent=1)
lat = r.get("latency_ms", {})
print("# %-28s %-6s %-6s %4d disks  total %9.1f ms  p50 %8.2f ms  p99 %8.2f ms" % (
    r["label"], r["mode"], r["action"], r["disks"], r["total_ms"],
    lat.get("p50", 0), lat.get("p99", 0)))
EOF
}

# ---------------------------------------------------------------- set-up

LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
# The host's loop devices: free ones are handed out before the kernel
# creates any, which makes attaching at few held devices cheaper.
# (Globs, not ls: devices come and go meanwhile.)
host_loops=(/sys/block/loop*)
host_loops_bound=(/sys/block/loop*/loop)
HOST_LOOPS=${#host_loops[@]}
HOST_LOOPS_BOUND=${#host_loops_bound[@]}
[ -e "${host_loops[0]:-}" ] || HOST_LOOPS=0
[ -e "${host_loops_bound[0]:-}" ] || HOST_LOOPS_BOUND=0
h_log "benchmark dir $H_TMP (quick=$QUICK, repeat=$REPEAT, load average $LOADAVG_START)"
h_xenstored_start
h_blkback_start

SHARED_IMG=$(h_sparse_file shared.img 128M)
disks_shared "$H_TMP/disks/shared" 1 "$SHARED_DOMAINS" "$SHARED_IMG"
disks_rw "$H_TMP/disks/rw" 100 "$RW_DISKS" "$RW_DISKS" rw 64M
# Disks for the attach cost: one-disk domains, attached one at a time.
MAXK=$((K_DAEMON > K_STOCK ? K_DAEMON : K_STOCK))
disks_rw "$H_TMP/disks/probe" 200 "$MAXK" 1 probe 1M
# The devices the host holds meanwhile: 8 rw disks to a domain.  (With 4,
# the 1024 domains of 4096 devices make backend/vbd a directory longer
# than a xenstore message: oxenstored sends it whole, and libxenstore, in
# the driver as in libxl, drops the connection when libxl's path cleanup
# lists that directory on a detach.)
disks_rw "$H_TMP/disks/held" 1000 "$RSS_DEVICES" 8 held 1M

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
# one disk at a time into a running guest, in alternate rounds of the same
# run: the stock script; block-loopd; an empty script= with the empty-script
# libxenlight (contrib/libxl), served by the daemon's watch; and a script
# that does nothing (/bin/true), the toolstack's own floor: xl's start, its
# transaction, the wait for InitWait, a fork and exec, the teardown.  The
# daemon leaves the stock script's and the no-op's disks alone.  Each time
# is xl's whole run, its own start included; a failed xl fails the run.
# Besides the time, the CPU time xenstored and the daemon spent on each xl
# command (schedstat), which the host's other load hardly changes.
XL_MODES=(stock script noop)
XL_LIBXL=
if [ -f "$LIBXL_DIR/libxenlight.so.4.17" ]; then
	XL_LIBXL=$LIBXL_DIR
	XL_MODES=(stock script empty noop)
else
	h_log "real xl: no empty-script libxenlight in $LIBXL_DIR, so no column for it; build it with" \
		"tests/libxl/build-libxl.sh build-test-libxl (or RUN_TESTS_STAGES=libxl tools/run-tests.sh)," \
		"or give --libxl DIR"
fi
h_log "the real xl: one disk at a time into a running guest, ${XL_MODES[*]}"
. "$SRC_ROOT/tests/harness/lib-xl.sh"
h_xl_init
ln -s /bin/true "$H_XL_DIR/scripts/noop"
if [ -n "$XL_LIBXL" ]; then
	so=$(LD_LIBRARY_PATH=$XL_LIBXL ldd "$H_XL" | awk '$1 == "libxenlight.so.4.17" { print $3 }')
	[ "$so" = "$XL_LIBXL/libxenlight.so.4.17" ] ||
		h_fail "xl loads libxenlight from '$so', not from $XL_LIBXL"
fi
XL_DOMID=9001
h_xl_domain "$XL_DOMID"
XL_IMG=$(h_sparse_file xl.img 64M)
# cpu_ns PID — time on a CPU so far.
cpu_ns() { local c; read -r c _ <"/proc/$1/schedstat"; echo "$c"; }
# xl_run MODE ARGS — h_xl, with the empty-script library for MODE empty;
# sets XL_RESULT to "wall_us xenstored_cpu_ns daemon_cpu_ns".
xl_run() {
	local mode=$1 t0 t1 x0 d0 rc=0
	shift
	x0=$(cpu_ns "$H_XSD_PID") d0=$(cpu_ns "$H_DAEMON_PID")
	t0=${EPOCHREALTIME/./}
	if [ "$mode" = empty ]; then
		LD_LIBRARY_PATH=$XL_LIBXL${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} h_xl "$@" || rc=$?
	else
		h_xl "$@" || rc=$?
	fi
	t1=${EPOCHREALTIME/./}
	[ "$rc" = 0 ] || return "$rc"
	XL_RESULT="$((t1 - t0)) $(($(cpu_ns "$H_XSD_PID") - x0)) $(($(cpu_ns "$H_DAEMON_PID") - d0))"
}
for ((r = 1; r <= XL_ROUNDS; r++)); do
	for mode in "${XL_MODES[@]}"; do
		case $mode in
		stock) spec=$(h_xl_disk_spec xvda "$XL_IMG" w) ;;
		script) spec=$(h_xl_disk_spec xvda "$XL_IMG" w block-loopd) ;;
		noop) spec=$(h_xl_disk_spec xvda "$XL_IMG" w noop) ;;
		empty) spec=$(h_xl_disk_spec xvda "$XL_IMG" w "" "script=") ;;
		esac
		xl_run "$mode" block-attach "$XL_DOMID" "$spec" ||
			h_fail "real xl, $mode, round $r: xl block-attach failed: $(tr '\n' ' ' <"$H_XL_ERR")"
		a=$XL_RESULT
		# Once, outside the timing: the backend's script is the mode's.
		if [ "$r" = 1 ]; then
			case $mode in
			stock) want=/etc/xen/scripts/block ;;
			script) want=/etc/xen/scripts/block-loopd ;;
			noop) want=/etc/xen/scripts/noop ;;
			empty) want= ;;
			esac
			got=$(xenstore-read "$(h_xl_be "$XL_DOMID" xvda)/script" 2>&1) ||
				h_fail "real xl, $mode: no backend script node: $got"
			[ "$got" = "$want" ] || h_fail "real xl, $mode: the backend's script is '$got', not '$want'"
		fi
		xl_run "$mode" block-detach "$XL_DOMID" xvda ||
			h_fail "real xl, $mode, round $r: xl block-detach failed: $(tr '\n' ' ' <"$H_XL_ERR")"
		printf '%s attach %s\n%s detach %s\n' "$mode" "$a" "$mode" "$XL_RESULT"
	done
	# The loop device goes with blkback's close (autoclear), the stock
	# script's with its remove: none may be left before the next round.
	[ -z "$(losetup -j "$XL_IMG")" ] || h_wait_until 10 "the loop device of $XL_IMG to go" \
		bash -c "[ -z \"\$(losetup -j '$XL_IMG')\" ]"
done >"$H_TMP/xl-times"
python3 - "$H_TMP/xl-times" "$RESULTS/xl.json" <<'EOF'
import json, sys
r = {}
for line in open(sys.argv[1]):
    mode, action, us, xsd, loopd = line.split()
    m = r.setdefault(mode, {})
    m.setdefault(action + "_ms_samples", []).append(int(us) / 1000)
    m.setdefault(action + "_xenstored_cpu_us_samples", []).append(int(xsd) / 1000)
    m.setdefault(action + "_daemon_cpu_us_samples", []).append(int(loopd) / 1000)
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
B_LOAD_START=$LOADAVG_START B_LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg) B_XL_LIBXL=$XL_LIBXL \
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
    "wall_s": $SECONDS,
    "syscalls_counted_by": "perf raw_syscalls:sys_enter" if $PERF_OK == 1 else "/proc/PID/io syscr+syscw",
    "real_xl_libxl_empty": e["B_XL_LIBXL"] or None,
    "host_loop_devices_at_start": {"all": $HOST_LOOPS, "bound": $HOST_LOOPS_BOUND},
}, open(sys.argv[1], "w"))
EOF
mkdir -p "$(dirname "$JSON_OUT")"
python3 "$BENCH_DIR/report.py" "$RESULTS" "$JSON_OUT" ${PREVIOUS:+--previous "$PREVIOUS"}
h_log "results in $JSON_OUT"
