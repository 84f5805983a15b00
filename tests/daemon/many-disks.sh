#!/bin/bash
# 4096 disks, one per guest: backend/vbd then lists more than 4096 bytes,
# which the C xenstored refuses (and the daemon reads part by part) and
# oxenstored sends whole in one reply.  The daemon serves them all from its
# watch, finds them all again when it restarts and on SIGHUP (both list
# backend/vbd), stays connected throughout, and lets them all go on
# teardown.  Read-only disks of one image: one loop device.
#
# The backends carry the nodes libxl writes, 64 guests to a transaction
# (xenstore-write): libxl's one transaction per disk, and its waits, would
# make the toolstack's side most of the run.  H_MANY_DISKS sets the count.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/lib-daemon.sh"
h_init "$@"
: "${H_MANY_DISKS:=4096}"
half=$((H_MANY_DISKS / 2))
devid=51712 # xvda

# blkback-emu holds each disk open: an fd per disk.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge $((H_MANY_DISKS + 256)) ] ||
	h_skip "the fd limit ($(ulimit -n)) is below $((H_MANY_DISKS + 256))"

h_xenstored_start
h_blkback_start
# The debug log would name every disk several times: info is enough here.
h_daemon_start --log-level info
img=$(h_sparse_file base.img 16M)

# in_chunks CMD FROM TO NODES-FUNCTION — CMD with the arguments
# NODES-FUNCTION prints (one a line) for guests FROM..TO, 64 guests a call.
in_chunks() {
	local cmd=$1 from=$2 to=$3 fn=$4 d args=()
	for ((d = from; d <= to; d++)); do
		mapfile -t -O "${#args[@]}" args < <("$fn" "$d")
		if (((d - from + 1) % 64 == 0 || d == to)); then
			"$cmd" "${args[@]}" || h_fail "$cmd for guests up to $d failed"
			args=()
		fi
	done
}

# What libxl writes for a read-only disk of guest D: frontend and backend.
disk_nodes() {
	local d=$1 be fe
	be=$(h_be_path "$d" "$devid")
	fe=/local/domain/$d/device/vbd/$devid
	printf '%s\n' "$fe/backend" "$be" "$fe/backend-id" 0 "$fe/state" 1 "$fe/virtual-device" "$devid" \
		"$fe/device-type" disk \
		"$be/frontend" "$fe" "$be/params" "$img" "$be/frontend-id" "$d" "$be/online" 1 \
		"$be/removable" 0 "$be/bootable" 1 "$be/state" 1 "$be/dev" xvda "$be/type" phy \
		"$be/mode" r "$be/device-type" disk "$be/discard-enable" 0 "$be/specification" xen
}
# libxl's detach: online 0 and state 5; then the directories go.
close_nodes() { printf '%s\n' "$(h_be_path "$1" "$devid")/online" 0 "$(h_be_path "$1" "$devid")/state" 5; }
gone_nodes() { printf '%s\n' "$H_HOME/backend/vbd/$1" "/local/domain/$1"; }

# list_says DEVICES USERS HELD — the daemon's list: DEVICES loop devices,
# USERS disks on them, HELD of the devices still held for blkback.
list_now() {
	h_loopctl list --json | python3 -c '
import json, sys
devs = json.load(sys.stdin)["devices"]
print(len(devs), sum(len(d["users"]) for d in devs), sum(1 for d in devs if d["held"]))'
}
list_says() { [ "$(list_now)" = "$*" ]; }
connected() { h_loopctl status --json | grep -q '"xenstore": *"connected"'; }
blkback_holds() { [ "$(h_blkback_open_count)" = "$1" ]; }

h_log "attaching $half disks"
in_chunks xenstore-write 1 "$half" disk_nodes
# Every disk published and opened by blkback: the daemon lets go.
h_wait_until 120 "$half disks connected (list: $(list_now))" list_says 1 "$half" 0
h_assert_eq 1 "$(h_loop_count_for "$img")" "loop devices of the image"

h_log "the daemon restarts: it lists backend/vbd ($half guests)"
h_daemon_stop
h_daemon_start --log-level info
h_wait_until 120 "the daemon to adopt $half disks" list_says 1 "$half" 0
connected || h_fail "the daemon is not connected after its restart"

h_log "attaching $((H_MANY_DISKS - half)) more"
in_chunks xenstore-write "$((half + 1))" "$H_MANY_DISKS" disk_nodes
h_wait_until 120 "$H_MANY_DISKS disks connected" list_says 1 "$H_MANY_DISKS" 0
h_assert_eq "$H_MANY_DISKS" "$(h_blkback_open_count)" "disks blkback holds open"

h_log "SIGHUP: the daemon looks at every disk again"
kill -HUP "$H_DAEMON_PID"
h_wait_until 10 "the SIGHUP to be taken" grep -q "SIGHUP" "$H_DAEMON_LOG"
h_wait_until 60 "the daemon to settle" connected
h_assert_eq "1 $H_MANY_DISKS 0" "$(list_now)" "the daemon's list after SIGHUP"
h_daemon_alive
! grep -q "Lost the connection" "$H_TMP"/log/xen-loopd.*.log ||
	h_fail "the daemon lost its xenstore connection: $(grep -h "Lost the connection" "$H_TMP"/log/xen-loopd.*.log | head -n 3)"

h_log "detaching all $H_MANY_DISKS"
in_chunks xenstore-write 1 "$H_MANY_DISKS" close_nodes
h_wait_until 120 "blkback to close every disk" blkback_holds 0
in_chunks xenstore-rm 1 "$H_MANY_DISKS" gone_nodes
h_wait_until 60 "the daemon to let every disk go" list_says 0 0 0
h_wait_until 30 "the loop device to go" bash -c "[ -z \"\$(losetup -j '$img')\" ]"
h_daemon_alive
h_daemon_stop
