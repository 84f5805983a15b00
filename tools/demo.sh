#!/bin/bash
# tools/demo.sh — xen-loopd at work, on a machine without Xen.
#
#   tools/demo.sh [--no-bench] [--build DIR] [--xenstored c|ocaml]   (as root)
#
# Starts a private xenstored (Debian's own, the C one or with --xenstored
# ocaml the OCaml oxenstored, under the test harness's preload libraries), the blkback emulator and xen-loopd; starts three domains that
# share a read-only base image and have a read-write data disk each, some
# disks through block-loopd as libxl runs it and some through the daemon's
# xenstore watch; shows `xen-loopctl list` and `status`; tears everything
# down; then runs the benchmark against the stock block script in its quick
# form (--no-bench skips it).
#
# It never talks to a host's real xenstored, even where Xen runs: every
# xenstore client here (the daemon included) is pointed at the private one.
# Everything runs in a private mount namespace, and on exit — success,
# failure or Ctrl-C — every process it started is stopped, every loop device
# it made is gone and its temporary directory is removed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build
BENCH=1

usage() {
	cat <<EOF
Usage: tools/demo.sh [--no-bench] [--build DIR] [--xenstored c|ocaml]
  --no-bench   skip the benchmark against the stock block script
  --build DIR  the meson build directory (default: build)
  --xenstored c|ocaml
               run on Debian's C xenstored (default) or on oxenstored
Run as root, after: meson setup build && meson compile -C build
EOF
}
while [ $# -gt 0 ]; do
	case $1 in
	--no-bench) BENCH=0 ;;
	--build) BUILD=${2:?--build needs a directory}; shift ;;
	--build=*) BUILD=${1#*=} ;;
	--xenstored) H_XENSTORED_KIND=${2:-}; shift ;;
	--xenstored=*) H_XENSTORED_KIND=${1#*=} ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
case ${H_XENSTORED_KIND:=c} in
c) XSD_BIN=/usr/lib/xen-4.17/bin/xenstored ;;
ocaml) XSD_BIN=/usr/lib/xen-4.17/bin/oxenstored ;;
*) usage >&2; exit 2 ;;
esac
export H_XENSTORED_KIND

die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

# Checked here, before anything starts, with messages for a person.
if [ -z "${DEMO_CHECKED:-}" ]; then
	[ "$(id -u)" = 0 ] || die "run it as root (it sets up loop devices and a private xenstored)"
	for b in src/xen-loopd src/xen-loopctl tests/harness/blkback-emu tests/harness/xs-libxl \
		tests/harness/xsd-preload.so tests/harness/oxsd-preload.so; do
		[ -e "$BUILD/$b" ] ||
			die "$BUILD/$b is missing: build first (meson setup build && meson compile -C build)"
	done
	[ -x "$XSD_BIN" ] ||
		die "Debian's $XSD_BIN is missing (package xen-utils-4.17): run tools/install-deps.sh"
	command -v xenstore-ls >/dev/null || die "xenstore-ls is missing: run tools/install-deps.sh"
	export DEMO_CHECKED=1
fi

# The caller's TMPDIR, for the benchmark (the harness points TMPDIR into
# the demonstration's own temp dir).
export DEMO_TMPDIR=${DEMO_TMPDIR-${TMPDIR:-}}
export H_BUILD_DIR=$BUILD
export XEN_LOOPD=$BUILD/src/xen-loopd XEN_LOOPCTL=$BUILD/src/xen-loopctl BLOCK_LOOPD=$BUILD/src/block-loopd
export PATH=$BUILD/src:$PATH
# Never inherit a xenstored from the caller: the harness points every
# client at the private one.
unset XENSTORED_PATH

# The integration tests' harness: private mount namespace (h_init re-runs
# this script inside it), temp dir, xenstored, blkback emulator, libxl
# emulation, and the teardown on every exit.
. "$ROOT/tests/harness/lib.sh"
. "$ROOT/tests/daemon/lib-daemon.sh"

# The harness's own progress notes are for tests; here they go to a log,
# unless something fails.
h_log() {
	if [ "${H__CLEANING:-0}" = 1 ] || [ -z "${H_TMP:-}" ] || [ ! -d "$H_TMP/log" ]; then
		printf '# %s\n' "$*" >&2
	else
		printf '# %s\n' "$*" >>"$H_TMP/log/harness.log"
	fi
}

LOOPS_AT_START=$(ls /sys/block | sed -n 's/^loop\([0-9]\+\)$/\1/p' | sort)
h_init --build "$BUILD" $([ "$BENCH" = 0 ] && echo --no-bench)

# Runs first in the harness's teardown: stop what runs, let autoclear act,
# then remove the loop devices this run added that are unbound now (the
# kernel adds one when no free device is left).
demo_teardown() {
	local i p n
	set +e
	for ((i = ${#H_PIDS[@]} - 1; i >= 0; i--)); do
		p=${H_PIDS[$i]%% *}
		[ -n "$p" ] && h_kill_pid "$p"
	done
	for ((i = 0; i < 100; i++)); do
		[ -z "$(h_loops_in_tmp)" ] && break
		sleep 0.05
	done
	for n in $(comm -13 <(printf '%s\n' "$LOOPS_AT_START") \
		<(ls /sys/block | sed -n 's/^loop\([0-9]\+\)$/\1/p' | sort)); do
		[ -e "/sys/block/loop$n/loop/backing_file" ] && continue
		python3 -c 'import fcntl, os, sys
fd = os.open("/dev/loop-control", os.O_RDWR)
fcntl.ioctl(fd, 0x4C81, int(sys.argv[1]))  # LOOP_CTL_REMOVE' "$n" 2>/dev/null || true
	done
	return 0
}
h_on_cleanup demo_teardown

# ---------------------------------------------------------------- output

if [ -t 1 ]; then B=$'\e[1m' N=$'\e[0m'; else B= N=; fi
STEP=0
heading() {
	STEP=$((STEP + 1))
	printf '\n%s== %d. %s%s\n' "$B" "$STEP" "$*" "$N"
}
say() { printf '   %s\n' "$*"; }
# show CMD... — print the command, then run it, its output indented.
show() {
	printf '\n   %s$ %s%s\n' "$B" "$*" "$N"
	"$@" 2>&1 | sed 's/^/   /'
}

# ---------------------------------------------------------------- helpers

SCRIPT=$H_TMP/bin/block-loopd
VDEVS=(xvda xvdb)

# start_domain DOMID NAME MODE — a domain start as libxl 4.17 performs it:
# the domain's xenstore directories, then per disk the backend in one
# transaction, the wait for InitWait, and in script mode `block-loopd add`
# run exactly as libxl runs a hotplug script.  MODE is script or watch.
# Disks: xvda = the shared base image (read-only), xvdb = its data disk.
start_domain() {
	local domid=$1 name=$2 mode=$3 vdev params m script be
	h_xs domain --domid "$domid" --name "$name" >/dev/null
	for vdev in "${VDEVS[@]}"; do
		if [ "$vdev" = xvda ]; then
			params=$BASE m=r
		else
			params=$IMAGES/$name-data.img m=w
		fi
		# Watch mode: a toolstack that runs no script and writes an empty
		# script node (libxl with contrib/libxl's change, or one that only
		# writes xenstore).  Stock libxl cannot: it always runs a script.
		[ "$mode" = script ] && script=$SCRIPT || script=
		h_xs add --home "$H_HOME" --domid "$domid" --vdev "$vdev" --params "$params" \
			--mode "$m" --script "$script" >/dev/null
		be=$(h_be_path "$domid" "$(h_devid "$vdev")")
		if [ "$mode" = script ]; then
			# libxl waits for exactly InitWait, then runs the script.
			h_wait_node "$be/state" 2
			h_run_hotplug "$SCRIPT" add "$domid" "$(h_devid "$vdev")" 2>>"$H_TMP/log/hotplug.log" ||
				h_fail "block-loopd add failed for $be: $(h_read_default "$be/hotplug-error" '?')"
		fi
	done
}

# stop_domain DOMID MODE — libxl's teardown of every disk: online=0 and
# state 5, the wait for blkback's 6, `block-loopd remove` in script mode,
# then the directories go.
stop_domain() {
	local domid=$1 mode=$2 vdev devid
	for vdev in "${VDEVS[@]}"; do
		devid=$(h_devid "$vdev")
		h_xs remove --home "$H_HOME" --domid "$domid" --devid "$devid" \
			--stage close --timeout "$H_DESTROY_TIMEOUT" ||
			h_fail "the backend of domain $domid disk $vdev did not close"
		if [ "$mode" = script ]; then
			h_run_hotplug "$SCRIPT" remove "$domid" "$devid" 2>>"$H_TMP/log/hotplug.log" ||
				h_fail "block-loopd remove failed for domain $domid disk $vdev"
		fi
		h_xs remove --home "$H_HOME" --domid "$domid" --devid "$devid" --stage destroy
	done
}

connected() {
	local d v
	for d in "$@"; do
		for v in "${VDEVS[@]}"; do
			[ "$(h_read_default "$(h_be_path "$d" "$(h_devid "$v")")/hotplug-status" "")" = connected ] ||
				return 1
		done
	done
}

blkback_holds() {
	local d v
	for d in "$@"; do
		for v in "${VDEVS[@]}"; do
			h__state_at_least "$(h_be_path "$d" "$(h_devid "$v")")/state" 4 || return 1
		done
	done
}

no_users() { [[ $(h_loopctl list) == "No loop devices"* ]]; }
not_holding() { [[ $(h_loopctl list) != *"*"* ]]; }
no_loops() { [ -z "$(h_loops_in_tmp)" ]; }

# ---------------------------------------------------------------- the run

printf '%sxen-loopd demonstration%s\n' "$B" "$N"
say "Everything below runs against a private xenstored, with real loop devices"
say "and an emulator playing the kernel's blkback driver."
if [ -e /proc/xen/capabilities ]; then
	say "This host runs Xen: its own xenstored is not touched, nor its domains."
fi

heading "A private xenstored, the blkback emulator and xen-loopd"
h_xenstored_start
case ${XENSTORED_PATH:-} in
"$H_TMP"/*) ;;
*) h_fail "the private xenstored is not in use (XENSTORED_PATH=${XENSTORED_PATH:-unset})" ;;
esac
say "$([ "$H_XENSTORED_KIND" = ocaml ] && echo oxenstored || echo xenstored) (pid $H_XSD_PID) answers on $XENSTORED_PATH"
HOLD=$H_TMP/blkback-hold-off
touch "$HOLD"
h_blkback_start --hold-off "$HOLD"
say "blkback emulator (pid $H_BLKBACK_PID) watches /local/domain/0/backend/vbd;"
say "it waits before opening devices, so that the holding rule can be seen"
h_daemon_start --log-level info
say "xen-loopd (pid $H_DAEMON_PID), control socket $XEN_LOOPD_SOCKET"
mkdir -p "$H_TMP/bin"
ln -s "$BLOCK_LOOPD" "$SCRIPT"
show xen-loopctl status

heading "Three domains start: one shared read-only image, a read-write disk each"
IMAGES=$H_TMP/images
BASE=$(h_sparse_file base.img 1G)
for name in web1 web2 web3; do
	h_sparse_file "$name-data.img" 256M >/dev/null
done
say "xvda = $BASE (read-only, all three domains)"
say "xvdb = $IMAGES/webN-data.img (read-write, one per domain)"
say "domain 1 (web1), domain 2 (web2): script=block-loopd, run as libxl runs it"
start_domain 1 web1 script
start_domain 2 web2 script
say "domain 3 (web3): empty script, as a toolstack that runs no hotplug script writes it;"
say "  the daemon's watch claims it"
start_domain 3 web3 watch
h_wait_until 10 "every disk to be published" connected 1 2 3
say "every disk is published (hotplug-status = connected)"
show xen-loopctl list
say "Four loop devices serve six disks: the base image is set up once and"
say "shared.  '*' marks users whose blkback has not opened the device yet:"
say "xen-loopd holds it open for them, so autoclear cannot remove it early."

heading "blkback opens the devices; the daemon lets go of them"
rm -f "$HOLD"
h_wait_until 10 "blkback to connect every disk" blkback_holds 1 2 3
h_wait_until 10 "the daemon to see it" not_holding
show xen-loopctl list
say "HELD is 'no': blkback holds each device itself, and the kernel removes"
say "it (autoclear) when the last domain using it lets go."
be=$(h_be_path 1 51712)
printf '\n   %s$ xenstore-ls %s%s   (the nodes xen-loopd wrote)\n' "$B" "$be" "$N"
xenstore-ls "$be" | grep -E '^(params|script|mode|state|physical-device|physical-device-path|diskseq|hotplug-status) ' |
	sed 's/^/   /'

heading "The sharing rule: a read-write user of a shared image is refused"
say "domain 4 asks for the base image read-write, through block-loopd"
h_xs domain --domid 4 --name intruder >/dev/null
h_xs add --home "$H_HOME" --domid 4 --vdev xvda --params "$BASE" --mode w --script "$SCRIPT" >/dev/null
be=$(h_be_path 4 51712)
h_wait_until "$H_INIT_TIMEOUT" "InitWait on $be" h__state_at_least "$be/state" 2
rc=0
h_run_hotplug "$SCRIPT" add 4 51712 2>>"$H_TMP/log/hotplug.log" || rc=$?
[ "$rc" = 1 ] || h_fail "block-loopd add should have failed with status 1 (got $rc)"
say "block-loopd exited $rc; libxl reads the reason from xenstore:"
say "  hotplug-status = $(h_read "$be/hotplug-status")"
say "  hotplug-error  = $(h_read "$be/hotplug-error")"
h_xs remove --home "$H_HOME" --domid 4 --devid 51712 --stage close --timeout "$H_DESTROY_TIMEOUT" || true
h_xs remove --home "$H_HOME" --domid 4 --devid 51712 --stage destroy
say "loop devices bound to the base image: $(h_loop_count_for "$BASE")"

heading "The daemon's view"
show xen-loopctl status
printf '\n   %s$ xen-loopctl list --json%s   (the first device)\n' "$B" "$N"
json=$(xen-loopctl list --json)
printf '%s\n' "$json" | sed -n '1,/^    },$/p' | sed 's/^/   /'
printf '   ...\n'

heading "Teardown, as libxl does it"
stop_domain 1 script
say "domain 1 is gone: its data disk's device went, the base image stays shared"
show xen-loopctl list
stop_domain 2 script
stop_domain 3 watch
h_wait_until 10 "every device to be released" no_users
h_wait_until 10 "the kernel to remove the loop devices" no_loops
say "domains 2 and 3 are gone too"
show xen-loopctl list
say "loop devices left bound to the demonstration's images: $(h_loops_in_tmp | wc -l)"
h_daemon_stop
h_blkback_stop
h_xenstored_stop
say "xen-loopd, the blkback emulator and xenstored are stopped"

heading "Benchmark: xen-loopd against the stock block script"
if [ "$BENCH" = 0 ]; then
	say "skipped (--no-bench)"
elif [ ! -f "$ROOT/bench/run.sh" ] || [ ! -f "$ROOT/bench/report.py" ]; then
	say "skipped: the benchmark (bench/run.sh) is not complete in this tree yet"
else
	say "bench/run.sh --quick: the same disks on a fresh private xenstored, through"
	say "/etc/xen/scripts/block, block-loopd and watch mode (about a minute)"
	printf '\n'
	# A run of its own: its own namespace, temp dir and xenstored (an
	# inherited XENSTORED_PATH would be taken by its xenstored as the
	# socket to create).  Its report comes on stdout, kept for the end; of
	# its log, the line per timed phase is shown as it goes (all of it is
	# kept, and its end shown if it fails).
	bench_log=$H_TMP/log/bench.log
	if env -u XENSTORED_PATH -u H_IN_NS -u H_TMP -u XEN_LOOPD_SOCKET -u TMPDIR \
		${DEMO_TMPDIR:+TMPDIR="$DEMO_TMPDIR"} \
		bash "$ROOT/bench/run.sh" --quick --build "$BUILD" --xenstored "$H_XENSTORED_KIND" --json "$H_TMP/bench.json" \
		</dev/null 2>&1 >"$H_TMP/bench.report" | tee "$bench_log" |
		{ grep --line-buffered -E '^# [a-z0-9-]+ +(stock|script|watch|none) ' || true; } |
		sed -u 's/^# /   /'; then
		rc=0
	else
		rc=${PIPESTATUS[0]}
	fi
	printf '\n'
	sed 's/^/   /' "$H_TMP/bench.report"
	[ "$rc" = 0 ] || h_fail "the benchmark failed (exit $rc; the end of its log is below)"
fi

printf '\n%sDone.%s What the demonstration started is stopped and removed on exit.\n' "$B" "$N"
