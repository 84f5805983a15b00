# lib-hardening.sh — sourced after tests/harness/lib.sh and
# tests/daemon/lib-daemon.sh by the bad-input tests: freezing the daemon at
# a step of an attach, writing raw xenstore values, and the checks every
# refused disk must pass.

h__find XS_RAW tests/hardening/xs-raw || true

# hd_start — xenstored, blkback-emu and the daemon, with its stop points
# (src/shared/crashpoint.h) in $H_TMP/crash when HD_CRASHPOINTS is set (the
# daemon is then xen-loopd-crash, the test build).  Records the daemon's fds once
# it is up (HD_FDS0, HD_SOCKS0).
hd_start() {
	h_xenstored_start
	h_blkback_start
	mkdir -p "$H_TMP/crash"
	if [ -n "${HD_CRASHPOINTS:-}" ]; then
		H_DAEMON_BIN=$XEN_LOOPD_CRASH XEN_LOOPD_CRASH_AT="$H_TMP/crash" h_daemon_start
	else
		h_daemon_start
	fi
	# A frozen daemon must never outlive a failed test.
	h_on_cleanup 'hd_thaw'
	HD_FDS0=$(hd_fds)
	HD_SOCKS0=$(hd_socks)
}

# hd_fds — what the daemon's fds other than sockets refer to, sorted (loop
# devices, backing files, event fds); hd_socks — how many sockets it has
# (control connections come and go as clients do).
hd_fds() {
	local f
	for f in /proc/"$H_DAEMON_PID"/fd/*; do
		readlink "$f" 2>/dev/null || true
	done | grep -v '^socket:' | sort | tr '\n' ' '
}
hd_socks() {
	local f
	for f in /proc/"$H_DAEMON_PID"/fd/*; do
		readlink "$f" 2>/dev/null || true
	done | grep -c '^socket:' || true
}
hd__fds_back() { [ "$(hd_fds)" = "$HD_FDS0" ] && [ "$(hd_socks)" -le "$HD_SOCKS0" ]; }

# hd_raw PATH VALUE [PATH VALUE ...] — one transaction; VALUE takes \0, \n,
# \t, \\ and \xHH.
hd_raw() {
	[ -x "${XS_RAW:-}" ] || h_fail "xs-raw not built (XS_RAW=${XS_RAW:-unset}); build the tree with meson first"
	"$XS_RAW" "$@" || h_fail "xs-raw $1 failed"
}

hd__stopped() { [ "$(h__pid_state "$H_DAEMON_PID")" = T ]; }

# hd_freeze / hd_thaw — SIGSTOP / SIGCONT the daemon: what is written while
# it is stopped reaches it as one batch of watch events.
hd_freeze() {
	kill -STOP "$H_DAEMON_PID"
	h_wait_until 10 "the daemon to stop" hd__stopped
}
hd_thaw() {
	[ -n "${H_DAEMON_PID:-}" ] && kill -CONT "$H_DAEMON_PID" 2>/dev/null
	return 0
}

# hd_stop_at POINT — the daemon stops itself the next time it reaches POINT;
# hd_wait_stopped POINT waits until it has.
hd_stop_at() { touch "$H_TMP/crash/$1.stop"; }
hd__stopped_at() { [ -e "$H_TMP/crash/$1.stopped" ] && hd__stopped; }
hd_wait_stopped() {
	h_wait_until 10 "the daemon to stop at $1" hd__stopped_at "$1"
	rm -f "$H_TMP/crash/$1.stopped"
}

# hd_add DOMID VDEV PARAMS MODE — a watch-mode disk as libxl writes it;
# sets H_BE.  Returns once blkback-emu has it in InitWait.
hd_add() { h_libxl_add_disk "$1" "$2" "$3" "$4" -; }

# hd_assert_refused BE DOMID VDEV SHOWN CAUSE-GLOB — the disk ended in error
# (hotplug-status $HD_STATUS, error by default; busy for the sharing rule)
# with a one-line hotplug-error naming it — "domain D disk VDEV (devid N,
# SHOWN): CAUSE", or "domain D disk VDEV (devid N): CAUSE" with a cause that
# quotes SHOWN itself (SHOWN empty: no params to show) — nothing of a
# published device is there, and the daemon lives.
hd_assert_refused() {
	local be=$1 domid=$2 vdev=$3 shown=$4 cause=$5 devid msg with bare rest
	devid=${be##*/}
	msg=$(h_wait_node "$be/hotplug-status" "${HD_STATUS:-error}" && h_read "$be/hotplug-error")
	with="domain $domid disk $vdev (devid $devid, $shown): "
	bare="domain $domid disk $vdev (devid $devid): "
	if [ -n "$shown" ] && [ "${msg:0:${#with}}" = "$with" ]; then
		rest=${msg:${#with}}
	elif [ "${msg:0:${#bare}}" = "$bare" ]; then
		rest=${msg:${#bare}}
		[[ $rest == *"$shown"* ]] ||
			h_fail "hotplug-error of $be does not name the disk's params \"$shown\": $msg"
	else
		h_fail "hotplug-error of $be does not name the disk as \"$with\": $msg"
	fi
	# shellcheck disable=SC2053
	[[ $rest == $cause ]] || h_fail "hotplug-error of $be: cause not \"$cause\": $rest"
	[ "$(printf '%s' "$msg" | wc -l)" = 0 ] || h_fail "hotplug-error of $be spans lines: $msg"
	h_assert_node "$be/hotplug-status" "${HD_STATUS:-error}"
	h_assert_absent "$be/physical-device-path"
	h_assert_absent "$be/diskseq"
	h_daemon_alive
	h_log "refused as expected: $msg"
}

# hd_assert_good BE — connected, published, opened by blkback.
hd_assert_good() {
	h_wait_connected "$1"
	h_assert_published "$1"
	h_wait_node "$1/state" 4
}

# hd_no_loops FILE... — status 0 when no loop device is bound to any FILE
# (for h_wait_until); hd_no_loops_for FILE... fails the test otherwise.
hd_no_loops() {
	local f
	for f in "$@"; do
		[ "$(h_loop_count_for "$f")" = 0 ] || return 1
	done
}
hd_no_loops_for() {
	local f
	for f in "$@"; do
		[ "$(h_loop_count_for "$f")" = 0 ] || h_fail "a loop device is bound to $f"
	done
}

hd__forgot_all() { "$XEN_LOOPCTL" status --json | grep -q '"disks": *0'; }

# hd_finish — every disk is gone (the caller removed them): no loop device
# of the test is left, the daemon forgot every disk, has the fds it had at
# the start (sockets: no more than then), and exits 0 on SIGTERM.
hd_finish() {
	h_wait_until 10 "every loop device of the test to go" bash -c "[ -z \"\$(losetup -a | grep '$H_TMP')\" ]"
	h_wait_until 10 "the daemon to forget every disk" hd__forgot_all
	# The client that asked last may still be connected for a moment.
	local i
	for ((i = 0; i < 200; i++)); do
		hd__fds_back && break
		sleep 0.05
	done
	hd__fds_back || h_fail "the daemon's fds are not what they were: at the start \"$HD_FDS0\" and $HD_SOCKS0 sockets; now \"$(hd_fds)\" and $(hd_socks) sockets"
	h_daemon_alive
	h_daemon_stop
}
