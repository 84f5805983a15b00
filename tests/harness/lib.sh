# lib.sh — sourced by every integration test (bash).
#
# Gives each test a private temp dir, its own real xenstored (Debian's C
# xenstored under tests/harness/xsd-preload), the blkback emulator, the libxl
# emulation (xs-libxl) and hotplug scripts run as libxl runs them; tears all
# of it down by pid, detaches the loop devices the test made, and fails the
# test if loop devices leaked.
#
#   . "$H_HARNESS_DIR/lib.sh"   (or a path relative to the test)
#   h_init "$@"
#   h_xenstored_start
#   h_blkback_start
#   ...
#
# Tests never assert on wall-clock time: every timeout here only keeps a
# broken test from hanging.

set -eEuo pipefail

H_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
H_SRC_ROOT=$(cd "$H_LIB_DIR/../.." && pwd)

: "${H_XENSTORED:=/usr/lib/xen-4.17/bin/xenstored}"
: "${H_OXENSTORED:=/usr/lib/xen-4.17/bin/oxenstored}"
: "${H_OXENSTORED_CONF:=/etc/xen/oxenstored.conf}"
: "${H_SCRIPT_DIR:=/etc/xen/scripts}"
: "${H_HOME:=/local/domain/0}"
# libxl's timeouts (LIBXL_INIT_TIMEOUT, LIBXL_DESTROY_TIMEOUT,
# LIBXL_HOTPLUG_TIMEOUT), in seconds.
H_INIT_TIMEOUT=10
H_DESTROY_TIMEOUT=10
H_HOTPLUG_TIMEOUT=40

H_TMP=
H_PIDS=()               # "pid name" of everything we started, in order
H_XSD_PID=
H_BLKBACK_PID=
H_LOOPS_BEFORE=
H__CLEANING=0
H__STATUS=0

# ---------------------------------------------------------------- messages

h_log() { printf '# %s\n' "$*" >&2; }

# h_fail MESSAGE — fail the test now (runs h_cleanup through the EXIT trap).
h_fail() {
	local i where="${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}"
	# Name the line in the test (or its own library), not in lib.sh.
	for ((i = 1; i < ${#BASH_SOURCE[@]}; i++)); do
		if [ "${BASH_SOURCE[$i]}" != "${BASH_SOURCE[0]}" ]; then
			where="${BASH_SOURCE[$i]##*/}:${BASH_LINENO[$((i - 1))]}"
			break
		fi
	done
	printf 'FAIL: %s (%s)\n' "$*" "$where" >&2
	exit 1
}

# h_skip REASON — skip the test (exit 77), loudly; under CI=true a skip is a
# failure, since CI must run everything.
h_skip() {
	printf '\n*** SKIP: %s ***\n\n' "$*" >&2
	if [ "${CI:-}" = true ]; then
		printf 'CI=true: refusing to skip; failing instead.\n' >&2
		exit 1
	fi
	exit 77
}

h__on_err() {
	local rc=$1 line=$2 cmd=$3
	[ "$H__CLEANING" = 1 ] && return 0
	printf 'lib.sh: status %s at %s:%s: %s\n' "$rc" "${BASH_SOURCE[1]##*/}" "$line" "$cmd" >&2
}

# ---------------------------------------------------------------- binaries

# h__find VAR RELPATH — VAR from the environment (meson sets it), else the
# first build directory of this tree that has RELPATH.
h__find() {
	local var=$1 rel=$2 d
	if [ -n "${!var:-}" ]; then
		return 0
	fi
	for d in ${H_BUILD_DIR:+"$H_BUILD_DIR"} "$H_SRC_ROOT/build" "$H_SRC_ROOT"/build*; do
		if [ -x "$d/$rel" ] || [ -f "$d/$rel" ]; then
			printf -v "$var" '%s' "$d/$rel"
			export "${var?}"
			return 0
		fi
	done
	return 1
}

h__find_binaries() {
	h__find XSD_PRELOAD tests/harness/xsd-preload.so || true
	h__find OXSD_PRELOAD tests/harness/oxsd-preload.so || true
	h__find BLKBACK_EMU tests/harness/blkback-emu || true
	h__find XS_LIBXL tests/harness/xs-libxl || true
	h__find XS_PROXY tests/harness/xs-proxy || true
	h__find XEN_LOOPD src/xen-loopd || true
	h__find XEN_LOOPD_CRASH src/xen-loopd-crash || true
	h__find XEN_LOOPCTL src/xen-loopctl || true
	h__find BLOCK_LOOPD src/block-loopd || true
}

# ---------------------------------------------------------------- loop devices

# Configured loop devices, one "loopN<TAB>backing file" a line, sorted.
h_loop_state() {
	local d b
	for d in /sys/block/loop*; do
		[ -e "$d/loop/backing_file" ] || continue
		b=$(cat "$d/loop/backing_file" 2>/dev/null) || continue
		printf '%s\t%s\n' "${d##*/}" "$b"
	done | sort
}

# Loop devices (/dev/loopN) whose backing file is under $H_TMP.
h_loops_in_tmp() {
	[ -n "$H_TMP" ] || return 0
	h_loop_state | awk -F '\t' -v t="$H_TMP/" 'index($2, t) == 1 { print "/dev/" $1 }'
}

# h_loop_backing DEV — the backing file of /dev/loopN (empty if unbound).
h_loop_backing() {
	local n=${1##*/}
	cat "/sys/block/$n/loop/backing_file" 2>/dev/null || true
}

# h_loop_count_for FILE — how many loop devices are bound to FILE.
h_loop_count_for() {
	h_loop_state | awk -F '\t' -v f="$1" '$2 == f { n++ } END { print n + 0 }'
}

# h_assert_no_loops — no loop device of this test is bound (within 5 s).
h_assert_no_loops() {
	local left i
	# A detach of a device still open (losetup -d, autoclear) completes when
	# its last opener closes it: give that a moment.
	for ((i = 0; i < 100; i++)); do
		left=$(h_loops_in_tmp)
		[ -z "$left" ] && return 0
		sleep 0.05
	done
	h_fail "loop devices left: $(echo $left)"
}

# h_sparse_file NAME SIZE — a sparse image in $H_TMP/images; prints its path.
h_sparse_file() {
	local f="$H_TMP/images/$1"
	mkdir -p "$(dirname "$f")"
	truncate -s "$2" "$f" || h_fail "cannot create $f"
	printf '%s\n' "$f"
}

# ---------------------------------------------------------------- processes

# h_on_cleanup CMD — h_cleanup runs CMD (newest first) before it kills the
# registered processes; for what a pid cannot stop (services of a service
# manager, mounts).
H_CLEANUP_HOOKS=()
h_on_cleanup() {
	H_CLEANUP_HOOKS+=("$1")
}

# h_register_pid PID [NAME] — h_cleanup kills PID (TERM, then KILL).
h_register_pid() {
	H_PIDS+=("$1 ${2:-pid$1}")
}

# h_unregister_pid PID — forget PID (the test stopped it itself).
h_unregister_pid() {
	local i
	for i in "${!H_PIDS[@]}"; do
		if [ "${H_PIDS[$i]%% *}" = "$1" ]; then
			unset 'H_PIDS[i]'
		fi
	done
	H_PIDS=("${H_PIDS[@]}")
}
h__unregister_pid() { h_unregister_pid "$@"; }

# h__pid_state PID — the process state letter (R, S, Z, ...), empty if gone.
h__pid_state() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	stat=${stat##*) }
	printf '%s\n' "${stat%% *}"
}

# h__pid_alive PID — running, and not a zombie waiting for us.
h__pid_alive() {
	local st
	st=$(h__pid_state "$1")
	[ -n "$st" ] && [ "$st" != Z ]
}

# h_kill_pid PID [GRACE] — TERM, wait up to GRACE seconds (default 5),
# then KILL; reaps it if it is ours and forgets it.
h_kill_pid() {
	local pid=$1 grace=${2:-5} i
	if h__pid_alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < grace * 20; i++)); do
			h__pid_alive "$pid" || break
			sleep 0.05
		done
		if h__pid_alive "$pid"; then
			h_log "pid $pid ignored SIGTERM; killing"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	wait "$pid" 2>/dev/null || true
	h_unregister_pid "$pid"
}

# h_wait_file FILE PID WHAT [TIMEOUT] — until FILE exists; fails the test
# if PID dies first.
h_wait_file() {
	local file=$1 pid=$2 what=$3 timeout=${4:-10} i
	for ((i = 0; i < timeout * 20; i++)); do
		[ -e "$file" ] && return 0
		h__pid_alive "$pid" || h_fail "$what exited before it was ready"
		sleep 0.05
	done
	h_fail "$what not ready after ${timeout} s"
}

# h_wait_until TIMEOUT WHAT CMD [ARGS] — poll CMD (every 50 ms) until it
# succeeds; fails the test naming WHAT after TIMEOUT seconds.  CMD runs each
# time: wrap a check that needs $(...) in a function.
h_wait_until() {
	local timeout=$1 what=$2 i
	shift 2
	for ((i = 0; i < timeout * 20; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	"$@" || h_fail "timed out after ${timeout} s waiting for $what"
}

# ---------------------------------------------------------------- set-up

# h_init [ARGS] — every test calls this first, with "$@".
h_init() {
	local missing=() c

	# A private mount namespace keeps the stock scripts' lock directory and
	# log (/run/xen-hotplug, /var/log/xen) inside $H_TMP.  H_NO_NS=1 opts out.
	if [ "$(id -u)" = 0 ] && [ -z "${H_IN_NS:-}" ] && [ "${H_NO_NS:-0}" != 1 ] &&
	   unshare --mount --propagation private true 2>/dev/null; then
		export H_IN_NS=1
		exec unshare --mount --propagation private -- "$BASH" "$0" "$@"
	fi

	if [ "$(id -u)" != 0 ]; then
		h_skip "integration tests need root (loop devices, mknod, a private xenstored); run them as root"
	fi

	h__find_binaries
	# The project's own helpers must be there: a build problem, never a skip.
	for c in XSD_PRELOAD OXSD_PRELOAD BLKBACK_EMU XS_LIBXL; do
		if [ -z "${!c:-}" ] || [ ! -e "${!c}" ]; then
			printf 'FAIL: harness binary %s not found (%s); build the tree with meson first\n' \
				"$c" "${!c:-not set}" >&2
			exit 1
		fi
	done

	case ${H_XENSTORED_KIND:-c} in
	c) [ -x "$H_XENSTORED" ] || missing+=("xenstored ($H_XENSTORED; Debian package xen-utils-4.17)") ;;
	ocaml) [ -x "$H_OXENSTORED" ] || missing+=("oxenstored ($H_OXENSTORED; Debian package xen-utils-4.17)") ;;
	*) h_fail "H_XENSTORED_KIND=${H_XENSTORED_KIND}: c or ocaml" ;;
	esac
	if [ ! -e /dev/loop-control ]; then
		modprobe loop 2>/dev/null || true
		[ -e /dev/loop-control ] || missing+=("/dev/loop-control (the loop kernel module)")
	fi
	for c in losetup xenstore-read xenstore-write xenstore-list xenstore-rm xenstore-ls \
		 xenstore-exists flock timeout stat truncate awk comm unshare; do
		command -v "$c" >/dev/null 2>&1 || missing+=("command $c")
	done
	if [ "${#missing[@]}" -gt 0 ]; then
		printf 'missing: %s\n' "${missing[@]}" >&2
		h_skip "required pieces are missing (listed above); tools/install-deps.sh installs them"
	fi

	H_TMP=$(mktemp -d "${TMPDIR:-/tmp}/xen-loopd-test.XXXXXX")
	chmod 0755 "$H_TMP"
	mkdir -p "$H_TMP/tmp" "$H_TMP/log"
	export H_TMP
	# Children (the emulator's device nodes, mktemp in scripts) stay inside.
	export TMPDIR="$H_TMP/tmp"

	H_LOOPS_BEFORE=$(h_loop_state)

	trap 'h__on_err $? $LINENO "$BASH_COMMAND"' ERR
	trap 'h_cleanup' EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM

	if [ -n "${H_IN_NS:-}" ]; then
		mkdir -p "$H_TMP/xen-hotplug" /run/xen-hotplug /var/log/xen
		mount --bind "$H_TMP/xen-hotplug" /run/xen-hotplug
		mount --bind "$H_TMP/log" /var/log/xen
	fi
	h_log "test dir $H_TMP"
}

# ---------------------------------------------------------------- xenstored

# h_xenstored_start — a fresh, empty xenstored of this test's own; exports
# XENSTORED_PATH and sets H_XSD_PID.  H_XENSTORED_KIND chooses which: c
# (default, Debian's C xenstored under xsd-preload) or ocaml (oxenstored,
# Debian's default, under oxsd-preload).  Dom0's entries are written as
# xen-init-dom0 writes them.  H_XSD_TRACE=1 keeps a full trace (the C one's
# -T, oxenstored's access log) in $H_TMP/xenstored/trace.
h_xenstored_start() {
	local dir="$H_TMP/xenstored" i
	mkdir -p "$dir"
	rm -f "$dir/socket" "$dir/pid"

	case ${H_XENSTORED_KIND:-c} in
	c) h__xenstored_c "$dir" ;;
	ocaml) h__xenstored_ocaml "$dir" ;;
	*) h_fail "H_XENSTORED_KIND=${H_XENSTORED_KIND}: c or ocaml" ;;
	esac
	h_register_pid "$H_XSD_PID" xenstored
	export XENSTORED_PATH="$dir/socket"

	for ((i = 0; i < 200; i++)); do
		if [ -S "$dir/socket" ] && xenstore-ls / >/dev/null 2>&1; then
			break
		fi
		if ! h__pid_alive "$H_XSD_PID"; then
			cat "$H_TMP/log/xenstored.log" >&2 || true
			h_fail "xenstored exited at start-up (log above)"
		fi
		sleep 0.05
	done
	xenstore-ls / >/dev/null 2>&1 || h_fail "xenstored does not answer on $dir/socket"
	h_log "xenstored ($(h_xenstored_kind)) pid $H_XSD_PID on $XENSTORED_PATH"
	xenstore-write /local/domain/0/domid 0 /local/domain/0/name Domain-0
}

# h_xenstored_kind — c or ocaml: which xenstored h_xenstored_start runs.
h_xenstored_kind() { printf '%s\n' "${H_XENSTORED_KIND:-c}"; }

# h__xenstored_c DIR — start the C xenstored in DIR; sets H_XSD_PID.
h__xenstored_c() {
	local dir=$1 trace=()
	echo 1 >"$dir/xsd_port"
	truncate -s 4096 "$dir/xsd_kva"
	[ "${H_XSD_TRACE:-0}" = 1 ] && trace=(-T "$dir/trace")
	# An inherited XENSTORED_PATH would move xenstored's own socket there.
	env -u XENSTORED_PATH XENSTORED_RUNDIR="$dir" XENSTORED_ROOTDIR="$dir" LD_PRELOAD="$XSD_PRELOAD" \
		"$H_XENSTORED" -N -F "$dir/pid" "${trace[@]}" </dev/null >>"$H_TMP/log/xenstored.log" 2>&1 &
	H_XSD_PID=$!
}

# h__xenstored_ocaml DIR — start oxenstored in DIR with a private copy of
# Debian's configuration (its quotas and limits as shipped; only the paths
# moved into DIR); sets H_XSD_PID.
h__xenstored_ocaml() {
	local dir=$1 nfiles=0
	[ -x "$H_OXENSTORED" ] || h_skip "oxenstored is missing ($H_OXENSTORED; Debian package xen-utils-4.17)"
	[ -f "$H_OXENSTORED_CONF" ] || h_skip "$H_OXENSTORED_CONF is missing (Debian package xen-utils-common)"
	# oxenstored reads the port as a bare number: no newline.
	printf 1 >"$dir/xsd_port"
	truncate -s 4096 "$dir/xsd_kva"
	[ "${H_XSD_TRACE:-0}" = 1 ] && nfiles=2
	{
		grep -Ev '^[[:space:]]*(pid-file|xenstored-kva|xenstored-port|xenstored-log-file|access-log-file|access-log-nb-files|access-log-read-ops|access-log-transactions-ops)[[:space:]]*=' \
			"$H_OXENSTORED_CONF"
		printf '%s\n' "pid-file = $dir/pid" "xenstored-kva = $dir/xsd_kva" \
			"xenstored-port = $dir/xsd_port" "xenstored-log-file = $H_TMP/log/xenstored.log" \
			"access-log-file = $dir/trace" "access-log-nb-files = $nfiles" \
			"access-log-read-ops = true" "access-log-transactions-ops = true"
	} >"$dir/oxenstored.conf"
	env -u XENSTORED_PATH XENSTORED_RUNDIR="$dir" LD_PRELOAD="$OXSD_PRELOAD" \
		"$H_OXENSTORED" --no-fork --config-file "$dir/oxenstored.conf" \
		</dev/null >>"$H_TMP/log/xenstored.log" 2>&1 &
	H_XSD_PID=$!
}

# h_xenstored_stop — stop it (its store is gone with it).  By pid, never
# by name; oxenstored ignores SIGTERM while a transaction is open, so it
# gets SIGKILL after a short grace.
h_xenstored_stop() {
	[ -n "$H_XSD_PID" ] || return 0
	h_kill_pid "$H_XSD_PID" 2
	H_XSD_PID=
	rm -f "$H_TMP/xenstored/socket"
}

# h_xenstored_restart — stop, then start a fresh, empty one.
h_xenstored_restart() {
	h_xenstored_stop
	h_xenstored_start
}

# h_xs_proxy_start — tests/harness/xs-proxy between the test's xenstored and
# the clients given $H_PROXY_SOCKET as XENSTORED_PATH, to break the
# protocol on request: files in $H_PROXY_CTL (stall, drop-after-commit,
# fail-read) say how.
h_xs_proxy_start() {
	local dir="$H_TMP/xs-proxy"
	mkdir -p "$dir/ctl"
	rm -f "$dir/ready"
	"$XS_PROXY" --listen "$dir/socket" --upstream "$XENSTORED_PATH" --control "$dir/ctl" \
		--ready-file "$dir/ready" --log "$H_TMP/log/xs-proxy.log" </dev/null &
	H_PROXY_PID=$!
	h_register_pid "$H_PROXY_PID" xs-proxy
	h_wait_file "$dir/ready" "$H_PROXY_PID" xs-proxy
	H_PROXY_SOCKET="$dir/socket"
	H_PROXY_CTL="$dir/ctl"
}

# ---------------------------------------------------------------- blkback

# h_blkback_start [EMULATOR OPTIONS] — start the blkback emulator, wait until
# its watch is set; sets H_BLKBACK_PID and H_BLKBACK_LOG (a new log file for
# each start, in $H_TMP/log).
H__BLKBACK_RUNS=0
h_blkback_start() {
	local ready
	H__BLKBACK_RUNS=$((H__BLKBACK_RUNS + 1))
	ready="$H_TMP/blkback.ready.$H__BLKBACK_RUNS"
	H_BLKBACK_LOG="$H_TMP/log/blkback.$H__BLKBACK_RUNS.log"
	rm -f "$ready"
	"$BLKBACK_EMU" --ready-file "$ready" --log "$H_BLKBACK_LOG" "$@" </dev/null &
	H_BLKBACK_PID=$!
	h_register_pid "$H_BLKBACK_PID" blkback-emu
	h_wait_file "$ready" "$H_BLKBACK_PID" "blkback-emu"
}

# h_blkback_open_count — how many block devices the emulator holds open.
h_blkback_open_count() {
	[ -n "$H_BLKBACK_PID" ] || { echo 0; return 0; }
	find "/proc/$H_BLKBACK_PID/fd" -lname '*/blkback-emu.*' 2>/dev/null | wc -l
}

h_blkback_stop() {
	[ -n "$H_BLKBACK_PID" ] || return 0
	h_kill_pid "$H_BLKBACK_PID"
	H_BLKBACK_PID=
}

# ---------------------------------------------------------------- xenstore

# h_xs ARGS — run xs-libxl (add, remove, domain, wait, wait-gone, read, exists).
h_xs() { "$XS_LIBXL" "$@"; }

# h_read PATH — print the value; status 1 if absent.
h_read() { xenstore-read "$1" 2>/dev/null; }

# h_read_default PATH DEFAULT
h_read_default() { xenstore-read "$1" 2>/dev/null || printf '%s\n' "$2"; }

# h_exists PATH
h_exists() { xenstore-exists "$1" >/dev/null 2>&1; }

# h_wait_node PATH VALUE [TIMEOUT] — through a watch; fails the test on
# timeout, naming what the node held.
h_wait_node() {
	"$XS_LIBXL" wait "$1" "$2" --timeout "${3:-$H_INIT_TIMEOUT}" ||
		h_fail "waiting for $1 = $2"
}

# h_wait_gone PATH [TIMEOUT]
h_wait_gone() {
	"$XS_LIBXL" wait-gone "$1" --timeout "${2:-$H_INIT_TIMEOUT}" ||
		h_fail "waiting for $1 to go"
}

# h_backend_domid — the backend domain: the domid in $H_HOME (a test that
# plays a driver domain sets H_HOME=/local/domain/N), else 0.
h_backend_domid() {
	local d=${H_HOME#/local/domain/}
	case $d in
	'' | *[!0-9]*) echo 0 ;;
	*) echo "$d" ;;
	esac
}

# h__state_at_least PATH N — the XenbusState in PATH is N or later.
h__state_at_least() {
	local v
	v=$(h_read "$1") || return 1
	case $v in '' | *[!0-9]*) return 1 ;; esac
	[ "$v" -ge "$2" ]
}

# h_be_path DOMID DEVID — the backend directory, as libxl names it.
h_be_path() { printf '%s/backend/vbd/%s/%s\n' "$H_HOME" "$1" "$2"; }

# h_devid VDEV — libxl's device number for a vdev (xvda -> 51712).
h_devid() {
	local v=$1 l p
	case $v in
	[0-9]*) printf '%s\n' "$v"; return 0 ;;
	xvd[a-p] | xvd[a-p][0-9] | xvd[a-p][0-9][0-9]) ;;
	*) h_fail "h_devid: unsupported vdev $v (use a number)" ;;
	esac
	l=${v:3:1}
	p=${v:4}
	l=$(($(printf '%d' "'$l") - 97))
	printf '%d\n' $(((202 << 8) | (l << 4) | ${p:-0}))
}

# ---------------------------------------------------------------- assertions

# h_assert_eq EXPECTED ACTUAL [WHAT]
h_assert_eq() {
	[ "$1" = "$2" ] || h_fail "${3:-value}: expected \"$1\", got \"$2\""
}

# h_assert_node PATH EXPECTED — the node holds EXPECTED.
h_assert_node() {
	local v
	v=$(h_read "$1") || h_fail "$1 is absent (expected \"$2\")"
	[ "$v" = "$2" ] || h_fail "$1: expected \"$2\", got \"$v\""
}

# h_assert_absent PATH
h_assert_absent() {
	! h_exists "$1" || h_fail "$1 exists: \"$(h_read "$1" || true)\""
}

# ---------------------------------------------------------------- libxl

# h_run_hotplug SCRIPT add|remove DOMID DEVID — run a hotplug script exactly
# as libxl 4.17 (or xl devd) runs it: XENBUS_PATH relative to the caller's
# home (absolute when H_HOME is not dom0's), stdin on /dev/null, stdout to
# the caller's stderr, killed after 40 s; returns the script's exit status.
# SCRIPT not starting with / is in $H_SCRIPT_DIR.
h_run_hotplug() {
	local script=$1 action=$2 domid=$3 devid=$4 rc=0
	case $script in
	/*) ;;
	*) script="$H_SCRIPT_DIR/$script" ;;
	esac
	# Relative paths resolve against the caller's home; every connection to
	# the test's xenstored is dom0's, so a driver domain's home is spelt out.
	local base=backend
	[ "$H_HOME" = /local/domain/0 ] || base="$H_HOME/backend"
	script=$script XENBUS_TYPE=vbd XENBUS_PATH="$base/vbd/$domid/$devid" \
		XENBUS_BASE_PATH="$base" \
		timeout -s KILL "$H_HOTPLUG_TIMEOUT" "$script" "$action" </dev/null >&2 || rc=$?
	if [ "$rc" != 0 ]; then
		h_log "$script $action for $domid/$devid exited $rc: $(h_read_default \
			"$(h_be_path "$domid" "$devid")/hotplug-error" "(no hotplug-error)")"
	fi
	return "$rc"
}

# h_libxl_add_disk DOMID VDEV PARAMS MODE [SCRIPT] [-- XS-LIBXL ADD OPTIONS]
# — libxl's device_disk_add: the guest's directories if missing, the one
# transaction, the wait for InitWait (10 s), then the hotplug script `add`
# (SCRIPT "-" writes no script node and runs none, as for watch mode).
# Returns the script's status; sets H_BE to the backend path.
h_libxl_add_disk() {
	local domid=$1 vdev=$2 params=$3 mode=$4 script=${5:-block} devid
	shift 4
	[ $# -gt 0 ] && shift
	[ "${1:-}" = -- ] && shift
	devid=$(h_devid "$vdev")
	H_BE=$(h_be_path "$domid" "$devid")

	h_exists "/local/domain/$domid/name" || "$XS_LIBXL" domain --domid "$domid"
	if [ "$script" = - ]; then
		"$XS_LIBXL" add --home "$H_HOME" --backend-domid "$(h_backend_domid)" \
			--domid "$domid" --vdev "$vdev" --params "$params" --mode "$mode" \
			--no-script "$@" >/dev/null
	else
		"$XS_LIBXL" add --home "$H_HOME" --backend-domid "$(h_backend_domid)" \
			--domid "$domid" --vdev "$vdev" --params "$params" --mode "$mode" \
			--script "$script" "$@" >/dev/null
	fi
	# No script to run: only wait until blkback has taken the disk up.
	if [ "$script" = - ]; then
		h_wait_until "$H_INIT_TIMEOUT" "backend $H_BE to reach InitWait (is blkback-emu running?)" \
			h__state_at_least "$H_BE/state" 2
		return 0
	fi
	# libxl (devstate_callback) waits for state to be exactly InitWait and
	# keeps waiting on any other value: a backend that passed 2 before it
	# looked fails the add after 10 s, as with the real libxl.
	"$XS_LIBXL" wait "$H_BE/state" 2 --timeout "$H_INIT_TIMEOUT" || {
		h_log "libxl would fail the add: $H_BE/state never read as InitWait"
		return 4
	}
	# libxl runs what the backend's script node names.
	h_run_hotplug "$(h_read "$H_BE/script")" add "$domid" "$devid"
}

# h_libxl_remove_disk DOMID VDEV|DEVID [--force] — libxl's device remove:
# online=0 and state=5 in one transaction, wait for 6 (10 s, then once more
# after dropping the frontend), the hotplug script `remove` (only if the
# backend closed, and only if it names a script), then the directories go.
# Returns the script's status (libxl itself ignores it), 3 if the backend
# never closed (libxl then destroys without running the script).
h_libxl_remove_disk() {
	local domid=$1 devid rc=0 src=0 script
	devid=$(h_devid "$2")
	shift 2
	local be
	be=$(h_be_path "$domid" "$devid")
	script=$(h_read_default "$be/script" "")
	"$XS_LIBXL" remove --home "$H_HOME" --domid "$domid" --devid "$devid" \
		--stage close --timeout "$H_DESTROY_TIMEOUT" "$@" || rc=$?
	if [ "$rc" = 0 ] && [ -n "$script" ]; then
		h_run_hotplug "$script" remove "$domid" "$devid" || src=$?
	fi
	"$XS_LIBXL" remove --home "$H_HOME" --domid "$domid" --devid "$devid" --stage destroy
	case $rc in
	0 | 2) return "$src" ;;
	*) return "$rc" ;;
	esac
}

# ---------------------------------------------------------------- teardown

# H_DUMP_EXTRA: commands whose output the diagnostics add (a test's or a
# helper's, e.g. the service manager's view of the daemon).
h__dump() {
	local f
	h_log "---- diagnostics ----"
	if [ -n "$H_XSD_PID" ] && h__pid_alive "$H_XSD_PID"; then
		h_log "xenstore $H_HOME/backend:"
		xenstore-ls -f "$H_HOME/backend" >&2 2>/dev/null || true
	fi
	for f in "$H_TMP"/log/*; do
		[ -s "$f" ] || continue
		h_log "$f (last 40 lines):"
		tail -n 40 "$f" >&2 || true
	done
	for f in ${H_DUMP_EXTRA[@]+"${H_DUMP_EXTRA[@]}"}; do
		h_log "$f:"
		eval "$f" >&2 || true
	done
	h_log "loop devices:"
	h_loop_state >&2 || true
}

# h_cleanup — runs from the EXIT trap: kills everything started (newest
# first), detaches this test's loop devices, removes $H_TMP (kept with
# H_KEEP_TMP=1), and fails the test if loop devices leaked or the set of
# loop devices changed.
h_cleanup() {
	local rc=$? i pid left after lost new
	[ "$H__CLEANING" = 1 ] && return 0
	H__CLEANING=1
	# A reader of our stderr going away must not cut the teardown short.
	trap '' PIPE
	set +eE
	trap - ERR

	[ "$rc" != 0 ] && [ "$rc" != 77 ] && [ -n "$H_TMP" ] && h__dump

	for ((i = ${#H_CLEANUP_HOOKS[@]} - 1; i >= 0; i--)); do
		eval "${H_CLEANUP_HOOKS[$i]}" || true
	done

	for ((i = ${#H_PIDS[@]} - 1; i >= 0; i--)); do
		pid=${H_PIDS[$i]%% *}
		# oxenstored ignores SIGTERM while a transaction is open.
		[ "$pid" = "$H_XSD_PID" ] && { h_kill_pid "$pid" 2; continue; }
		[ -n "$pid" ] && h_kill_pid "$pid"
	done

	if [ -n "$H_TMP" ]; then
		# Autoclear can lag the last close a little.
		for ((i = 0; i < 50; i++)); do
			left=$(h_loops_in_tmp)
			[ -z "$left" ] && break
			sleep 0.1
		done
		if [ -n "$left" ]; then
			if [ "${H_ALLOW_LEFTOVER_LOOPS:-0}" != 1 ]; then
				printf 'FAIL: loop devices left bound to files of this test: %s\n' "$(echo $left)" >&2
				[ "$rc" = 0 ] && rc=1
			fi
			for pid in $left; do
				losetup -d "$pid" 2>/dev/null || true
			done
		fi

		after=$(h_loop_state)
		if [ "$after" != "$H_LOOPS_BEFORE" ]; then
			lost=$(comm -23 <(printf '%s\n' "$H_LOOPS_BEFORE") <(printf '%s\n' "$after"))
			new=$(comm -13 <(printf '%s\n' "$H_LOOPS_BEFORE") <(printf '%s\n' "$after"))
			printf '%s: the set of loop devices changed during the test\n' \
				"$([ "${CI:-}" = true ] && echo FAIL || echo WARNING)" >&2
			[ -n "$lost" ] && printf '  gone or rebound: %s\n' "$lost" >&2
			[ -n "$new" ] && printf '  new: %s\n' "$new" >&2
			# Off CI other users of this host may change loop devices too.
			if [ "${CI:-}" = true ] && [ "$rc" = 0 ]; then
				rc=1
			fi
		fi

		if [ -n "${H_IN_NS:-}" ]; then
			umount /run/xen-hotplug 2>/dev/null || true
			umount /var/log/xen 2>/dev/null || true
		fi
		if [ "${H_KEEP_TMP:-0}" = 1 ]; then
			h_log "keeping $H_TMP"
		else
			rm -rf "$H_TMP"
		fi
	fi
	exit "$rc"
}
