# lib-daemon.sh — sourced after tests/harness/lib.sh by the daemon's tests:
# starting and stopping xen-loopd against the test's private xenstored.

# h_daemon_start [XEN-LOOPD OPTIONS] — start xen-loopd on a private control
# socket; waits until it answers (xen-loopctl status).  Sets H_DAEMON_PID,
# H_DAEMON_LOG and exports XEN_LOOPD_SOCKET.  H_DAEMON_BIN, when set, is run
# instead of $XEN_LOOPD: H_DAEMON_BIN=$XEN_LOOPD_CRASH for a test that needs
# crash or stop points (the installed daemon has none).
H__DAEMON_RUNS=0
h_daemon_start() {
	local i
	local bin=${H_DAEMON_BIN:-${XEN_LOOPD:-}}
	[ -x "$bin" ] || h_fail "xen-loopd not built (XEN_LOOPD=${XEN_LOOPD:-unset}, H_DAEMON_BIN=${H_DAEMON_BIN:-unset})"
	H__DAEMON_RUNS=$((H__DAEMON_RUNS + 1))
	H_DAEMON_LOG="$H_TMP/log/xen-loopd.$H__DAEMON_RUNS.log"
	export XEN_LOOPD_SOCKET="$H_TMP/run/control"
	mkdir -p "$H_TMP/run"
	${H_DAEMON_WRAPPER:-} "$bin" --log-level debug "$@" </dev/null >>"$H_DAEMON_LOG" 2>&1 &
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

# h_wait_busy BE — hotplug-status becomes busy (refused by the sharing
# rule, as the stock script says it); prints hotplug-error.
h_wait_busy() {
	h_wait_node "$1/hotplug-status" busy "${2:-10}"
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

# ---------------------------------------------------------------- systemd

# h_systemd_user_start — a private `systemd --user` service manager for this
# test.  In the test's own mount namespace /run/systemd is a fresh tmpfs with
# system/ in it (what systemd checks for), so the host never sees it.
h_systemd_user_start() {
	local i state
	[ -n "${H_IN_NS:-}" ] || h_skip "needs the test's private mount namespace (unshare)"
	command -v systemd-run >/dev/null || h_skip "systemd-run is missing (package systemd)"
	[ -x /lib/systemd/systemd ] || h_skip "/lib/systemd/systemd is missing (package systemd)"
	mount -t tmpfs -o mode=0755 tmpfs /run/systemd
	h_on_cleanup "umount -l /run/systemd"
	mkdir -p /run/systemd/system
	export XDG_RUNTIME_DIR="$H_TMP/xdg"
	mkdir -p -m 0700 "$XDG_RUNTIME_DIR"
	/lib/systemd/systemd --user --log-target=console </dev/null >>"$H_TMP/log/systemd-user.log" 2>&1 &
	H_SYSTEMD_PID=$!
	h_register_pid "$H_SYSTEMD_PID" "systemd --user"
	for ((i = 0; i < 200; i++)); do
		state=$(systemctl --user is-system-running 2>/dev/null || true)
		case $state in running | degraded) return 0 ;; esac
		kill -0 "$H_SYSTEMD_PID" 2>/dev/null || h_fail "systemd --user exited (log: $H_TMP/log/systemd-user.log)"
		sleep 0.05
	done
	h_fail "systemd --user did not come up (state: $state)"
}

# h_daemon_service_start [XEN-LOOPD OPTIONS] — xen-loopd as a Type=notify
# service of that manager, with an fd store and automatic restarts, as
# hotplug/xen-loopd.service runs it.  Waits until it is ready.  The array
# H_DAEMON_SERVICE_PROPS adds systemd-run options (-p NAME=VALUE ...).
H_UNIT=xen-loopd-test
h_daemon_service_start() {
	H_DAEMON_LOG="$H_TMP/log/xen-loopd.service.log"
	export XEN_LOOPD_SOCKET="$H_TMP/run/control"
	mkdir -p "$H_TMP/run" "$H_TMP/crash"
	h_on_cleanup "systemctl --user stop $H_UNIT.service 2>/dev/null; systemctl --user reset-failed $H_UNIT.service 2>/dev/null"
	systemd-run --user --quiet --unit="$H_UNIT" \
		-p Type=notify -p FileDescriptorStoreMax=4096 \
		-p Restart=always -p RestartSec=100ms -p StartLimitIntervalSec=0 \
		-p StandardOutput="append:$H_DAEMON_LOG" -p StandardError="append:$H_DAEMON_LOG" \
		${H_DAEMON_SERVICE_PROPS[@]+"${H_DAEMON_SERVICE_PROPS[@]}"} \
		--setenv=XENSTORED_PATH="$XENSTORED_PATH" --setenv=XEN_LOOPD_SOCKET="$XEN_LOOPD_SOCKET" \
		--setenv=XEN_LOOPD_CRASH_AT="$H_TMP/crash" \
		"${H_DAEMON_BIN:-$XEN_LOOPD}" --log-level debug "$@" ||
		h_fail "systemd-run could not start xen-loopd (log: $H_DAEMON_LOG)"
	H_DUMP_EXTRA+=("systemctl --user status --no-pager --full -n 30 $H_UNIT.service"
		"systemctl --user show -p ActiveState,SubState,Result,NRestarts,MainPID,ExecMainStatus $H_UNIT.service")
	h_wait_until 10 "xen-loopd to answer" "$XEN_LOOPCTL" status
}

# h_daemon_service_pid — the service's main pid (0 while it restarts).
h_daemon_service_pid() {
	systemctl --user show -p MainPID --value "$H_UNIT.service"
}

# h_daemon_service_restarted OLDPID — a new process answers.
h_daemon_service_restarted() {
	local pid
	pid=$(h_daemon_service_pid)
	[ -n "$pid" ] && [ "$pid" != 0 ] && [ "$pid" != "$1" ] && "$XEN_LOOPCTL" status >/dev/null 2>&1
}

# h_daemon_service_kill — SIGKILL the service's daemon; returns once the
# manager's restart of it answers.
h_daemon_service_kill() {
	local pid
	pid=$(h_daemon_service_pid)
	kill -KILL "$pid"
	h_wait_until 60 "xen-loopd to come back" h_daemon_service_restarted "$pid"
}

# h_daemon_service_stored — how many fds the manager keeps for the service.
h_daemon_service_stored() {
	systemctl --user show -p NFileDescriptorStore --value "$H_UNIT.service"
}

# h_arm_crash POINT — the daemon dies (SIGKILL) the next time it reaches
# POINT (see src/shared/crashpoint.h); h_crash_fired POINT tells if it did.
# Only xen-loopd-crash has crash points: the test sets
# H_DAEMON_BIN=$XEN_LOOPD_CRASH before starting it.
h_arm_crash() { touch "$H_TMP/crash/$1.armed"; }
h_crash_fired() { [ -e "$H_TMP/crash/$1.fired" ]; }

# h_zram_start SIZE — a zram block device of SIZE made for the test, in
# H_PHY: a phy target that is not a loop device (the daemon serves a loop
# device given as phy as a loop device of its own).  Skips the test where
# there is no zram.  Call it before starting blkback and the daemon: its
# cleanup removes the device once they, who may hold it, are gone.
h_zram_start() {
	[ -e /sys/class/zram-control ] || modprobe zram 2>/dev/null || true
	[ -w /sys/class/zram-control/hot_add ] || h_skip "no zram here (modprobe zram): the test needs a block device"
	H__ZRAM=$(cat /sys/class/zram-control/hot_add)
	H_PHY=/dev/zram$H__ZRAM
	h_on_cleanup h__zram_remove
	echo "$1" >"/sys/block/zram$H__ZRAM/disksize"
	h_wait_until 10 "$H_PHY to appear" test -b "$H_PHY"
}

h__zram_remove() {
	local i
	h_blkback_stop 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		echo "$H__ZRAM" >/sys/class/zram-control/hot_remove 2>/dev/null && return 0
		sleep 0.1
	done
	h_log "cannot remove $H_PHY"
}

# h_peer_init — for tests of a control peer that is not root: skips the
# test without python3 (the fd-passing client), setpriv or the group
# nogroup (the daemon's --group), and sets H_PEER_PYTHON, the system's
# python3 (one first in root's PATH may live where other uids cannot go).
h_peer_init() {
	command -v python3 >/dev/null || h_skip "python3 is missing (the fd-passing client)"
	command -v setpriv >/dev/null || h_skip "setpriv is missing (util-linux)"
	getent group nogroup >/dev/null || h_skip "no group nogroup here"
	H_PEER_PYTHON=/usr/bin/python3
	[ -x "$H_PEER_PYTHON" ] || H_PEER_PYTHON=$(command -v python3)
}

# h_as_uid UID ARGS — run ARGS as UID, group nogroup (a member of --group).
h_as_uid() {
	local uid=$1
	shift
	setpriv --reuid="$uid" --regid=65534 --clear-groups "$@"
}
