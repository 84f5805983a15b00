#!/bin/bash
# A storage driver domain with Debian's real xl: domain 5 runs `xl devd -F`,
# blkback and xen-loopd (--home /local/domain/5); dom0's `xl block-attach`
# and `block-detach` give guests disks with backend=5.  devd runs
# block-loopd once it has seen InitWait and removes the backend once
# blkback closed it; also when it reads the backend state late.
#
# (Only block-loopd: every connection to the test's xenstored is dom0's, so
# the relative XENBUS_PATH devd passes would lead the stock script's
# xenstore-read to dom0's backends.  xen-loopd resolves it against its own
# home, as a driver domain's xenstore connection would.)
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/../harness/lib-xl.sh"
. "$(dirname "$0")/../daemon/lib-daemon.sh"
h_init "$@"
h_xenstored_start
h_xl_init
DD=5
h_xl_domain "$DD" storage
H_HOME=/local/domain/$DD
h_xl_blkback_start running --home "$H_HOME"
h_daemon_start --home "$H_HOME"
XL_PRELOAD_SELF_DOMID=$DD h_xl_devd_start

img=$(h_sparse_file disk.img 64M)
base=$(h_sparse_file base.img 32M)

# devd_done ACTION N — devd's log shows its Nth block-loopd ACTION (add or
# remove) run and the device's ACTION complete.
devd_done() {
	local runs done
	runs=$(grep -c "calling hotplug script: /etc/xen/scripts/block-loopd $1" "$H_XL_DEVD_LOG" || true)
	done=$(grep -c "device_complete: device .* $1 succeed" "$H_XL_DEVD_LOG" || true)
	[ "$runs" -ge "$2" ] && [ "$done" -ge "$2" ]
}

# devd_ok — devd never gave up on a device.
devd_ok() {
	! grep -E "timed out|unable to (add|remove) device|exited with error status|(add|remove) failed" \
		"$H_XL_DEVD_LOG" >&2 || h_fail "xl devd failed a device (log: $H_XL_DEVD_LOG)"
}

# attach DOMID VDEV PATH MODE N — from dom0, and devd's Nth add.
attach() {
	local be
	be=$(h_xl_be "$1" "$2" "$DD")
	h_xl_ok block-attach "$1" "$(h_xl_disk_spec "$2" "$3" "$4" block-loopd "backend=$DD")"
	h_assert_node "$be/script" /etc/xen/scripts/block-loopd
	# dom0's xl does not run the script for a driver domain: devd does,
	# once it has read InitWait (libxl's 10 s, then it gives up).
	h_wait_until 15 "xl devd to run block-loopd add for $be" devd_done add "$5"
	h_wait_connected "$be"
	h_wait_node "$be/state" 4
	h_assert_published "$be"
	devd_ok
}

# detach DOMID VDEV N — from dom0; devd runs its Nth remove and removes
# the backend.
detach() {
	local be
	be=$(h_xl_be "$1" "$2" "$DD")
	h_xl_ok block-detach "$1" "$2"
	# Until devd is done with it (the next round reuses the path).
	h_wait_until 15 "xl devd to run block-loopd remove for $be" devd_done remove "$3"
	h_wait_gone "$be" 15
	h_assert_absent "/local/domain/$1/device/vbd/$(h_devid "$2")"
	devd_ok
}

h_log "a read-write disk served by the driver domain"
h_xl_domain 7
attach 7 xvda "$img" w 1
h_xl_ok block-list 7
grep -q "$(h_xl_be 7 xvda "$DD")" "$H_XL_OUT" || h_fail "xl block-list 7: $(cat "$H_XL_OUT")"
detach 7 xvda 1
h_wait_until 5 "the loop device to go" eval '[ "$(h_loop_count_for "$img")" = 0 ]'

h_log "two guests share a read-only image through the driver domain"
h_xl_domain 8
attach 7 xvdb "$base" r 2
attach 8 xvdb "$base" r 3
h_assert_eq 1 "$(h_loop_count_for "$base")" "loop devices for two read-only users"
detach 7 xvdb 2
h_assert_node "$(h_xl_be 8 xvdb "$DD")/state" 4
detach 8 xvdb 3
h_wait_until 5 "the shared loop device to go" eval '[ "$(h_loop_count_for "$base")" = 0 ]'

h_log "devd reads the backend state late (a busy driver domain)"
h_xl_devd_stop
XL_PRELOAD_SELF_DOMID=$DD XL_PRELOAD_STATE_DELAY_MS=50 h_xl_devd_start
for ((r = 1; r <= 5; r++)); do
	attach 7 xvda "$img" w $((3 + r))
	detach 7 xvda $((3 + r))
done
h_wait_until 5 "the loop device to go" eval '[ "$(h_loop_count_for "$img")" = 0 ]'

# dom0's own backends are not this driver domain's: nothing appeared there.
h_assert_absent /local/domain/0/backend/vbd
h_xl_devd_stop
h_daemon_stop
h_assert_no_loops
