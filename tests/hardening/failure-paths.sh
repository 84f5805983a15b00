#!/bin/bash
# The daemon's own failure paths, with xs-proxy between it and xenstored to
# break the protocol at the right moment:
#   - a published device is blkback's until it says Closed: a disk being
#     closed (state 5) keeps its sharing claim, also across a restart;
#   - a publication whose commit reply is lost keeps its device held, and
#     physical-device never names a freed device;
#   - a directory destroyed and written anew in one batch of events is a
#     new disk (released and failed ones alike);
#   - a read error is not a removal;
#   - a xenstored that stops answering costs a bounded wait, then a
#     reconnection, and the control socket keeps answering.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/../daemon/lib-daemon.sh"
h_init "$@"
h_xenstored_start
h_xs_proxy_start
closing="$H_TMP/hold-close"
held="$H_TMP/hold-off"
h_blkback_start --hold-close "$closing" --hold-off "$held"
start_daemon() { XENSTORED_PATH=$H_PROXY_SOCKET h_daemon_start --xenstore-timeout 1; }
start_daemon
h_on_cleanup "rm -f '$H_PROXY_CTL/stall' '$closing' '$held'"
a=$(h_sparse_file a.img 16M)
b=$(h_sparse_file b.img 16M)
c=$(h_sparse_file c.img 16M)

# add DOMID VDEV FILE MODE — a watch-mode disk (no script); H_BE is set.
add() { h_libxl_add_disk "$1" "$2" "$3" "$4" -; }

# refused DOMID VDEV FILE — a read-write disk on FILE must be refused.
refused() {
	add "$1" "$2" "$3" w
	h_wait_node "$H_BE/hotplug-status" busy
	h_log "refused: $(h_read "$H_BE/hotplug-error")"
	h_libxl_remove_disk "$1" "$2" || true
}

# device_ok BE FILE — physical-device names a loop device bound to FILE,
# with the diskseq the node says.
device_ok() {
	local pdev dev seq
	pdev=$(h_read "$1/physical-device") || return 1
	dev=/sys/dev/block/$((16#${pdev%:*})):$((16#${pdev#*:}))
	[ "$(cat "$dev/loop/backing_file" 2>/dev/null)" = "$2" ] || return 1
	seq=$(h_read "$1/diskseq") || return 1
	[ "$((16#$seq))" = "$(cat "$dev/diskseq")" ]
}

h_log "a disk being closed keeps its claim until blkback says Closed"
add 1 xvda "$a" w
h_wait_connected "$H_BE"
h_wait_node "$H_BE/state" 4
be1=$H_BE
touch "$closing"
xenstore-write "$be1/online" 0 "$be1/state" 5
h_wait_until 10 "blkback to hold the close" grep -q "1/51712: holding off the close" "$H_BLKBACK_LOG"
refused 2 xvda "$a"
h_log "... and across a restart of the daemon"
kill -KILL "$H_DAEMON_PID"
h_unregister_pid "$H_DAEMON_PID"
start_daemon
h_wait_until 10 "the daemon to adopt the disk" grep -q "adopted" "$H_DAEMON_LOG"
refused 3 xvda "$a"
rm "$closing"
h_wait_node "$be1/state" 6
h_wait_gone "$be1/hotplug-status"
add 3 xvdb "$a" w
h_wait_connected "$H_BE"
h_libxl_remove_disk 3 xvdb
h_libxl_remove_disk 1 xvda

h_log "a lost reply to the publishing commit: the device stays held"
touch "$held" "$H_PROXY_CTL/drop-after-commit"
add 4 xvda "$b" w
be4=$H_BE
h_wait_until 10 "the proxy to swallow the commit's reply" test -e "$H_PROXY_CTL/stall"
h_assert_node "$be4/hotplug-status" connected   # it landed
# Cut off from xenstored, blkback not there yet: only the daemon can keep
# the device that physical-device names.
h_wait_until 10 "the daemon to lose xenstored" bash -c "'$XEN_LOOPCTL' status | grep -q 'xenstore: *reconnecting'"
device_ok "$be4" "$b" || h_fail "physical-device names a device no longer bound to $b"
rm "$H_PROXY_CTL/stall"
h_wait_until 20 "the daemon to be back" grep -q "Connected to xenstored again" "$H_DAEMON_LOG"
rm "$held"
h_wait_node "$be4/state" 4
device_ok "$be4" "$b" || h_fail "after the resync, physical-device and diskseq do not name $b's device"
h_assert_eq 1 "$(losetup -j "$b" | wc -l)" "loop devices for $b"
h_libxl_remove_disk 4 xvda

h_log "released, then destroyed and written anew in one batch: a new disk"
add 5 xvda "$c" r
h_wait_connected "$H_BE"
be5=$H_BE
"$XS_LIBXL" remove --home "$H_HOME" --domid 5 --devid 51712 --stage close
h_wait_gone "$be5/hotplug-status"
touch "$H_PROXY_CTL/stall"
"$XS_LIBXL" remove --home "$H_HOME" --domid 5 --devid 51712 --stage destroy
"$XS_LIBXL" add --home "$H_HOME" --domid 5 --vdev xvda --params "$c" --mode r --no-script >/dev/null
h_wait_node "$be5/state" 2
rm "$H_PROXY_CTL/stall"
h_wait_connected "$be5"
h_libxl_remove_disk 5 xvda

h_log "failed, then destroyed and written anew in one batch: a new disk"
add 5 xvdb "$H_TMP/missing.img" r
h_wait_node "$H_BE/hotplug-status" error
be5=$H_BE
touch "$H_PROXY_CTL/stall"
"$XS_LIBXL" remove --home "$H_HOME" --domid 5 --devid 51728 --stage destroy
"$XS_LIBXL" add --home "$H_HOME" --domid 5 --vdev xvdb --params "$c" --mode r --no-script >/dev/null
h_wait_node "$be5/state" 2
rm "$H_PROXY_CTL/stall"
h_wait_connected "$be5"
h_libxl_remove_disk 5 xvdb

h_log "a read error is not a removal"
add 6 xvda "$c" w
h_wait_connected "$H_BE"
h_wait_node "$H_BE/state" 4
be6=$H_BE
printf '%s\n' "/6/51712/state ENOMEM" "/6/51712 ENOMEM" "/6/51712/online ENOMEM" >"$H_PROXY_CTL/fail-read"
xenstore-write "$be6/online" 1   # an event the daemon looks at
h_wait_until 10 "the daemon to meet the error" grep -q "answered a read of .*6/51712" "$H_TMP/log/xs-proxy.log"
rm "$H_PROXY_CTL/fail-read"
refused 7 xvda "$c"
h_assert_node "$be6/hotplug-status" connected
h_libxl_remove_disk 6 xvda

h_log "a xenstored that stops answering: bounded, and the daemon comes back"
touch "$H_PROXY_CTL/stall"
"$XS_LIBXL" add --home "$H_HOME" --domid 8 --vdev xvda --params "$c" --mode r \
	--script "$BLOCK_LOOPD" >/dev/null
rc=0
XENBUS_PATH=backend/vbd/8/51712 XENBUS_TYPE=vbd XENBUS_BASE_PATH=backend script=$BLOCK_LOOPD \
	timeout -s KILL 30 "$BLOCK_LOOPD" add </dev/null || rc=$?
[ "$rc" != 137 ] || h_fail "block-loopd add hung on a daemon waiting for xenstored"
h_assert_eq 1 "$rc" "block-loopd add while xenstored does not answer"
timeout -s KILL 10 "$XEN_LOOPCTL" status >/dev/null || h_fail "the control socket does not answer"
rm "$H_PROXY_CTL/stall"
h_wait_until 20 "the daemon to be back" bash -c "'$XEN_LOOPCTL' status | grep -q 'xenstore: *connected'"
# libxl fails the disk and takes it down; the next attach works.
h_libxl_remove_disk 8 xvda || true
h_assert_absent "$(h_be_path 8 51712)"
h_libxl_add_disk 8 xvda "$c" r "$BLOCK_LOOPD" || h_fail "block-loopd add after xenstored came back"
h_wait_connected "$H_BE"
h_libxl_remove_disk 8 xvda

h_daemon_stop
h_assert_no_loops
h_log "ok"
