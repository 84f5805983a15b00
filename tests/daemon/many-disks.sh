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

# nodes KIND FROM TO — the arguments, NUL-separated, of a xenstore-write
# (disk, close) or xenstore-rm (gone) for guests FROM..TO: for "disk" what
# libxl writes for a read-only disk, frontend and backend; for "close"
# libxl's detach, online 0 and state 5; for "gone" the guest's directories.
nodes() {
	awk -v kind="$1" -v from="$2" -v to="$3" -v home="$H_HOME" -v img="$img" -v devid="$devid" '
	function put(p, v) { printf "%s%c%s%c", p, 0, v, 0 }
	BEGIN {
		for (d = from; d <= to; d++) {
			be = home "/backend/vbd/" d "/" devid
			fe = "/local/domain/" d "/device/vbd/" devid
			if (kind == "gone") {
				printf "%s%c%s%c", home "/backend/vbd/" d, 0, "/local/domain/" d, 0
			} else if (kind == "close") {
				put(be "/online", 0); put(be "/state", 5)
			} else {
				put(fe "/backend", be); put(fe "/backend-id", 0); put(fe "/state", 1)
				put(fe "/virtual-device", devid); put(fe "/device-type", "disk")
				put(be "/frontend", fe); put(be "/params", img); put(be "/frontend-id", d)
				put(be "/online", 1); put(be "/removable", 0); put(be "/bootable", 1)
				put(be "/state", 1); put(be "/dev", "xvda"); put(be "/type", "phy")
				put(be "/mode", "r"); put(be "/device-type", "disk")
				put(be "/discard-enable", 0); put(be "/specification", "xen")
			}
		}
	}'
}

# in_chunks KIND FROM TO — nodes KIND for guests FROM..TO, 64 guests to a
# transaction (one xenstore-write or xenstore-rm each).
in_chunks() {
	local kind=$1 from=$2 to=$3 d end cmd=xenstore-write args
	[ "$kind" = gone ] && cmd=xenstore-rm
	for ((d = from; d <= to; d += 64)); do
		end=$((d + 63 < to ? d + 63 : to))
		mapfile -d '' args < <(nodes "$kind" "$d" "$end")
		"$cmd" "${args[@]}" || h_fail "$cmd for guests $d to $end failed"
	done
}

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
in_chunks disk 1 "$half"
# Every disk published and opened by blkback: the daemon lets go.
h_wait_until 120 "$half disks connected (list: $(list_now))" list_says 1 "$half" 0
h_assert_eq 1 "$(h_loop_count_for "$img")" "loop devices of the image"

h_log "the daemon restarts: it lists backend/vbd ($half guests)"
h_daemon_stop
h_daemon_start --log-level info
h_wait_until 120 "the daemon to adopt $half disks" list_says 1 "$half" 0
connected || h_fail "the daemon is not connected after its restart"

h_log "attaching $((H_MANY_DISKS - half)) more"
in_chunks disk "$((half + 1))" "$H_MANY_DISKS"
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
in_chunks close 1 "$H_MANY_DISKS"
h_wait_until 120 "blkback to close every disk" blkback_holds 0
in_chunks gone 1 "$H_MANY_DISKS"
h_wait_until 60 "the daemon to let every disk go" list_says 0 0 0
h_wait_until 30 "the loop device to go" bash -c "[ -z \"\$(losetup -j '$img')\" ]"
h_daemon_alive
h_daemon_stop
