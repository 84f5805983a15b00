# lib-daemon.sh — sourced after tests/harness/lib.sh by the daemon's tests:
# starting and stopping xen-loopd against the test's private xenstored.

# h_daemon_start [XEN-LOOPD OPTIONS] — start xen-loopd on a private control
# socket; waits until it answers (xen-loopctl status).  Sets H_DAEMON_PID,
# H_DAEMON_LOG and exports XEN_LOOPD_SOCKET.
H__DAEMON_RUNS=0
h_daemon_start() {
	local i
	[ -x "${XEN_LOOPD:-}" ] || h_fail "xen-loopd not built (XEN_LOOPD=${XEN_LOOPD:-unset})"
	H__DAEMON_RUNS=$((H__DAEMON_RUNS + 1))
	H_DAEMON_LOG="$H_TMP/log/xen-loopd.$H__DAEMON_RUNS.log"
	export XEN_LOOPD_SOCKET="$H_TMP/run/control"
	mkdir -p "$H_TMP/run"
	${H_DAEMON_WRAPPER:-} "$XEN_LOOPD" --log-level debug "$@" </dev/null >>"$H_DAEMON_LOG" 2>&1 &
	H_DAEMON_PID=$!
	h_register_pid "$H_DAEMON_PID" xen-loopd
	for ((i = 0; i < 400; i++)); do
		[ -S "$XEN_LOOPD_SOCKET" ] && "$XEN_LOOPCTL" status >/dev/null 2>&1 && return 0
		kill -0 "$H_DAEMON_PID" 2>/dev/null || { cat "$H_DAEMON_LOG" >&2; h_fail "xen-loopd exited at start-up"; }
		sleep 0.05
	done
	h_fail "xen-loopd does not answer on $XEN_LOOPD_SOCKET"
}

# h_daemon_stop — SIGTERM, and the daemon must exit 0 by itself.
h_daemon_stop() {
	local rc=0 i
	[ -n "${H_DAEMON_PID:-}" ] || return 0
	kill -TERM "$H_DAEMON_PID"
	for ((i = 0; i < 200; i++)); do
		kill -0 "$H_DAEMON_PID" 2>/dev/null || break
		sleep 0.05
	done
	wait "$H_DAEMON_PID" || rc=$?
	h__unregister_pid "$H_DAEMON_PID"
	H_DAEMON_PID=
	[ "$rc" = 0 ] || h_fail "xen-loopd exited $rc after SIGTERM"
}

# h_daemon_alive — the daemon is still running.
h_daemon_alive() {
	kill -0 "$H_DAEMON_PID" 2>/dev/null || h_fail "xen-loopd died (log: $H_DAEMON_LOG)"
}

# h_loopctl ARGS — the client against this test's daemon.
h_loopctl() { "$XEN_LOOPCTL" "$@"; }

# h_wait_connected BE — hotplug-status of backend BE becomes connected.
h_wait_connected() { h_wait_node "$1/hotplug-status" connected "${2:-10}"; }

# h_wait_error BE — hotplug-status becomes error; prints hotplug-error.
h_wait_error() {
	h_wait_node "$1/hotplug-status" error "${2:-10}"
	h_read "$1/hotplug-error"
}

# h_assert_published BE — physical-device, physical-device-path and diskseq
# agree with the device itself.
h_assert_published() {
	local be=$1 pd path seq mm
	pd=$(h_read "$be/physical-device") || h_fail "$be/physical-device missing"
	path=$(h_read "$be/physical-device-path") || h_fail "$be/physical-device-path missing"
	seq=$(h_read "$be/diskseq") || h_fail "$be/diskseq missing"
	[ -b "$path" ] || h_fail "$path is not a block device"
	mm=$(stat -c '%t:%T' "$path")
	h_assert_eq "$mm" "$pd" "physical-device of $be"
	h_assert_eq "$(printf '%x' "$(cat "/sys/class/block/${path##*/}/diskseq")")" "$seq" "diskseq of $be"
}

# h_daemon_fds — number of fds the daemon has open.
h_daemon_fds() { ls "/proc/$H_DAEMON_PID/fd" | wc -l; }
