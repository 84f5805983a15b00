#!/bin/bash
# Script mode: block-loopd run exactly as libxl runs a block hotplug script
# (relative XENBUS_PATH, libxl's environment, stdin on /dev/null).  What it
# publishes is compared node by node with the stock block script's for the
# same disk; add is idempotent and agrees with the watch; remove releases;
# 40 parallel adds of one read-only image make one loop device.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/lib-daemon.sh"
h_init "$@"
h_xenstored_start
h_blkback_start
h_daemon_start
script="$H_TMP/bin/block-loopd"
mkdir -p "$H_TMP/bin"
ln -s "$BLOCK_LOOPD" "$script"
img=$(h_sparse_file disk.img 64M)

# nodes BE — "name=value" of every node directly in BE, sorted.
nodes() {
	local n
	for n in $(xenstore-list "$1"); do
		printf '%s=%s\n' "$n" "$(h_read "$1/$n")"
	done | sort
}

# What libxl writes and what blkback writes: everything else in a backend
# is the hotplug script's.
LIBXL_NODES=" frontend params script frontend-id online removable bootable state dev type mode"
LIBXL_NODES+=" device-type discard-enable specification sectors info sector-size physical-sector-size "

# published DOMID SCRIPT — write the disk as libxl does, run SCRIPT add as
# libxl does, and print the nodes the script (or the daemon) wrote, one
# name=value a line.  The daemon may have set a block-loopd disk's device up
# on its watch before the script ran, but publishes it only for the add.
published() {
	local domid=$1 s=$2 be kv
	be=$(h_be_path "$domid" 51712)
	h_xs domain --domid "$domid" >/dev/null
	h_xs add --home "$H_HOME" --domid "$domid" --vdev xvda --params "$img" --mode w --script "$s" >/dev/null
	# libxl waits for exactly InitWait before it runs the script.
	h_wait_node "$be/state" 2
	h_run_hotplug "$s" add "$domid" 51712 || h_fail "$s add failed"
	for kv in $(nodes "$be"); do
		case $LIBXL_NODES in *" ${kv%%=*}"[[:space:]]*) continue ;; esac
		printf '%s\n' "$kv"
	done
}

h_log "the stock block script, for reference (the daemon leaves its disks alone)"
stock=$(published 1 "$H_SCRIPT_DIR/block")
h_log "stock wrote: $(echo $stock)"
h_libxl_remove_disk 1 xvda || h_fail "stock remove failed"
h_wait_until 10 "the stock loop device to go" bash -c "[ -z \"\$(losetup -j '$img')\" ]"

h_log "block-loopd for the same disk"
ours=$(published 2 "$script")
h_log "block-loopd wrote: $(echo $ours)"
be=$(h_be_path 2 51712)
h_assert_published "$be"
# Every node the stock script writes, with the same meaning and format; the
# stock script's private `node` (its remove's memo) is not needed.
for kv in $stock; do
	k=${kv%%=*}
	case $k in
	node) continue ;;
	physical-device)
		[[ $(h_read "$be/$k") =~ ^[0-9a-f]+:[0-9a-f]+$ ]] || h_fail "physical-device format: $(h_read "$be/$k")" ;;
	physical-device-path)
		[[ $(h_read "$be/$k") == /dev/loop[0-9]* ]] || h_fail "physical-device-path: $(h_read "$be/$k")" ;;
	*) h_assert_eq "${kv#*=}" "$(h_read "$be/$k")" "$k" ;;
	esac
done
h_assert_eq "$(grep -c '^physical-device=' <<<"$stock")" 1 "stock physical-device"
[ -n "$(h_read "$be/diskseq")" ] || h_fail "no diskseq"
h_wait_node "$be/state" 4

h_log "add again, and add of a disk the watch set up already: one attach"
h_run_hotplug "$script" add 2 51712 || h_fail "second add failed"
h_assert_eq 1 "$(h_loop_count_for "$img")" "loop devices after a second add"

h_log "remove as libxl runs it"
h_libxl_remove_disk 2 xvda || h_fail "block-loopd remove failed"
h_wait_until 10 "the loop device to go" bash -c "[ -z \"\$(losetup -j '$img')\" ]"
h_assert_eq 0 "$(h_loopctl list --json | grep -c '"device"' || true)" "devices after remove"

h_log "40 domains start at once with one read-only image"
ro=$(h_sparse_file base.img 64M)
for ((d = 10; d < 50; d++)); do
	h_xs domain --domid "$d" >/dev/null
	h_xs add --home "$H_HOME" --domid "$d" --vdev xvda --params "$ro" --mode r --script "$script" >/dev/null
done
pids=()
for ((d = 10; d < 50; d++)); do
	h_run_hotplug "$script" add "$d" 51712 &
	pids+=($!)
done
for p in "${pids[@]}"; do
	wait "$p" || h_fail "a parallel add failed"
done
for ((d = 10; d < 50; d++)); do
	h_assert_node "$(h_be_path "$d" 51712)/hotplug-status" connected
done
h_assert_eq 1 "$(h_loop_count_for "$ro")" "loop devices for 40 read-only disks"
for ((d = 10; d < 50; d++)); do
	h_libxl_remove_disk "$d" xvda || h_fail "remove of domain $d"
done
h_wait_until 10 "the shared loop device to go" bash -c "[ -z \"\$(losetup -j '$ro')\" ]"

h_log "a failing disk: exit 1, with hotplug-error for libxl to read"
h_xs domain --domid 60 >/dev/null
h_xs add --home "$H_HOME" --domid 60 --vdev xvda --params "$H_TMP/missing.img" --mode r --script "$script" >/dev/null
be=$(h_be_path 60 51712)
h_wait_until 10 "InitWait" h__state_at_least "$be/state" 2
rc=0
h_run_hotplug "$script" add 60 51712 || rc=$?
h_assert_eq 1 "$rc" "exit status of a failed add"
h_assert_node "$be/hotplug-status" error
case $(h_read "$be/hotplug-error") in
*"domain 60 disk xvda"*"missing.img"*"No such file or directory"*) ;;
*) h_fail "hotplug-error: $(h_read "$be/hotplug-error")" ;;
esac
h_libxl_remove_disk 60 xvda || true

h_log "the daemon is not running: add fails clearly, nothing is set up"
h_daemon_stop
h_xs domain --domid 61 >/dev/null
h_xs add --home "$H_HOME" --domid 61 --vdev xvda --params "$img" --mode r --script "$script" >/dev/null
be=$(h_be_path 61 51712)
h_wait_until 10 "InitWait" h__state_at_least "$be/state" 2
rc=0
h_run_hotplug "$script" add 61 51712 || rc=$?
[ "$rc" != 0 ] || h_fail "add succeeded without a daemon"
h_assert_node "$be/hotplug-status" error
case $(h_read "$be/hotplug-error") in
*"xen-loopd is not running"*) ;;
*) h_fail "hotplug-error without a daemon: $(h_read "$be/hotplug-error")" ;;
esac
h_assert_absent "$be/physical-device"
h_assert_eq 0 "$(h_loop_count_for "$img")" "loop devices without a daemon"
