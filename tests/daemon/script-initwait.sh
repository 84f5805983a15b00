#!/bin/bash
# Script mode and InitWait.  libxl waits for the backend's state to be
# exactly 2 (InitWait) before it runs block-loopd add, and fails the add if
# it reads anything else until its 10 s are up.  A running guest's frontend
# connects as soon as the backend is in InitWait, and blkback opens the
# device as soon as physical-device appears, so a block-loopd disk must get
# no physical-device until its add runs: the daemon sets the device up from
# its watch ahead of time and publishes it only then.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/lib-daemon.sh"
h_init "$@"
h_xenstored_start
h_daemon_start
script="$H_TMP/bin/block-loopd"
mkdir -p "$H_TMP/bin"
ln -s "$BLOCK_LOOPD" "$script"
img=$(h_sparse_file disk.img 16M)
base=$(h_sparse_file base.img 16M)

# devices_of FILE — the loop devices the daemon set up for FILE.
devices_of() { h_loopctl list --json | python3 -c '
import json, sys
print(sum(1 for d in json.load(sys.stdin)["devices"] if d["backing"] == sys.argv[1]))' "$1"; }

daemon_state() { h_loopctl status --json | python3 -c '
import json, sys
print(json.load(sys.stdin)["disk-states"][sys.argv[1]])' "$1"; }

h_log "prepared from the watch, nothing in xenstore before the add"
# A domain being built: nothing connects, so the disk stays in InitWait
# whatever is published; the daemon's preparation can be seen.
h_blkback_start --guest building
be=$(h_be_path 1 51712)
h_xs domain --domid 1 >/dev/null
h_xs add --home "$H_HOME" --domid 1 --vdev xvda --params "$img" --mode w --script "$script" >/dev/null
h_wait_node "$be/state" 2
h_wait_until 10 "the daemon to prepare the disk" test "$(devices_of "$img")" = 1
h_assert_absent "$be/physical-device"
h_assert_absent "$be/hotplug-status"
h_assert_eq 1 "$(daemon_state prepared)" "disks prepared"
h_run_hotplug "$script" add 1 51712 || h_fail "block-loopd add failed"
h_assert_published "$be"
h_assert_eq 1 "$(devices_of "$img")" "devices after the add: the prepared one"
h_wait_until 10 "blkback to open the device" test "$(h_blkback_open_count)" = 1
h_assert_node "$be/state" 2
xenstore-write /local/domain/1/device/vbd/51712/state 3   # the guest boots
h_wait_node "$be/state" 4
h_libxl_remove_disk 1 xvda || h_fail "remove failed"
h_wait_until 10 "the device to go" test "$(devices_of "$img")" = 0

h_log "prepared, then the toolstack gives up before the add: nothing left"
h_xs add --home "$H_HOME" --domid 1 --vdev xvdb --params "$img" --mode w --script "$script" >/dev/null
be=$(h_be_path 1 51728)
h_wait_until 10 "the daemon to prepare the disk" test "$(devices_of "$img")" = 1
h_xs remove --home "$H_HOME" --domid 1 --devid 51728 --stage destroy
h_wait_until 10 "the prepared device to go" test "$(devices_of "$img")" = 0
h_assert_eq 0 "$(daemon_state prepared)" "disks prepared"
h_assert_absent "$be"

h_log "a disk that cannot be prepared: the add reports why"
h_xs add --home "$H_HOME" --domid 1 --vdev xvdc --params "$H_TMP/missing.img" --mode w --script "$script" >/dev/null
be=$(h_be_path 1 51744)
h_wait_node "$be/state" 2
h_assert_absent "$be/hotplug-status"
rc=0
h_run_hotplug "$script" add 1 51744 || rc=$?
h_assert_eq 1 "$rc" "block-loopd add of a missing file"
h_assert_node "$be/hotplug-status" error
case $(h_read "$be/hotplug-error") in
*missing.img*) ;;
*) h_fail "hotplug-error does not name the file: $(h_read "$be/hotplug-error")" ;;
esac
h_libxl_remove_disk 1 xvdc || true
h_blkback_stop

h_log "hot-plug into a running guest: 30 rounds, every add sees InitWait"
h_blkback_start --guest running
for ((i = 0; i < 30; i++)); do
	# Read-write and read-only, alternating, so both paths are taken.
	if ((i % 2)); then p=$base m=r; else p=$img m=w; fi
	rc=0
	h_libxl_add_disk 2 xvdd "$p" "$m" "$script" || rc=$?
	h_assert_eq 0 "$rc" "round $i: the add as libxl runs it (4: libxl missed InitWait)"
	h_wait_node "$H_BE/state" 4
	h_libxl_remove_disk 2 xvdd || h_fail "round $i: remove failed"
done
h_wait_until 10 "every device to go" test "$(losetup -j "$img" | wc -l)$(losetup -j "$base" | wc -l)" = 00

h_log "the same rounds with several disks at once, as a domain starts"
h_xs domain --domid 3 >/dev/null   # once: the adds below run side by side
for ((i = 0; i < 5; i++)); do
	pids=()
	for v in xvda xvdb xvdc xvdd; do
		( h_libxl_add_disk 3 "$v" "$base" r "$script" ) &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p" || h_fail "round $i: an add failed (libxl missed InitWait, or the script failed)"
	done
	for v in xvda xvdb xvdc xvdd; do
		h_wait_node "$(h_be_path 3 "$(h_devid "$v")")/state" 4
	done
	h_assert_eq 1 "$(devices_of "$base")" "round $i: devices for four read-only disks"
	for v in xvda xvdb xvdc xvdd; do
		h_libxl_remove_disk 3 "$v" || h_fail "round $i: remove of $v failed"
	done
done
h_blkback_stop
h_daemon_stop
h_assert_no_loops
h_log "ok"
