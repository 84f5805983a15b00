#!/bin/bash
# Debian's real xl attaches and detaches file disks of fake running guests
# with SCRIPT: block-loopd (through xen-loopd) or, for comparison, the stock
# block script (without the daemon).  Read-only and read-write
# attach and detach; three guests sharing one image; a read-write conflict,
# reported by xl with the script's hotplug-error; a missing file, a
# directory and a FIFO refused, leaving no loop device; block-detach -f; and
# a disk whose guest never connects, detached.
#
#   xl-disks.sh block-loopd|block
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/../harness/lib-xl.sh"
. "$(dirname "$0")/../daemon/lib-daemon.sh"
SCRIPT=${1:-}
case $SCRIPT in
block-loopd | block) ;;
*) echo "usage: $0 block-loopd|block" >&2; exit 2 ;;
esac
# The disks name their script, the stock one too: libxl then takes the same
# path for both (a disk without script= is libxl's default, the stock
# script, but libxl checks its target itself first and makes a directory a
# qdisk for QEMU).
SPEC_SCRIPT=$SCRIPT
h_init "$@"
h_xenstored_start
h_xl_init
h_xl_blkback_start running
[ "$SCRIPT" = block-loopd ] && h_daemon_start

img=$(h_sparse_file disk.img 64M)
shared=$(h_sparse_file shared.img 32M)

# attach DOMID VDEV PATH MODE — xl block-attach, which must succeed.  The
# stock script's `losetup -f`, then `losetup DEV FILE`, loses the device
# when another process on the host takes it between the two (its known
# race, bench/README.md): such an attach is detached and tried again.
attach() {
	local try be
	be=$(h_xl_be "$1" "$2")
	for ((try = 1; try < 10; try++)); do
		h_xl block-attach "$1" "$(h_xl_disk_spec "$2" "$3" "$4" "$SPEC_SCRIPT")" && return 0
		[ "$SCRIPT" = block ] && [[ $(h_read_default "$be/hotplug-error" "") == losetup* ]] || break
		h_log "the stock script lost its loop device to another process: $(h_read "$be/hotplug-error"); again"
		h_xl_ok block-detach "$1" "$2"
	done
	h_fail "xl block-attach $1 of $3 exited $H_XL_RC: $(cat "$H_XL_ERR")"
}

# attached DOMID VDEV PATH MODE — what a good attach leaves: the script's
# nodes, a Connected backend on a loop device of PATH, xl's block-list
# and stored configuration showing the disk.
attached() {
	local domid=$1 vdev=$2 path=$3 mode=$4 be dev
	be=$(h_xl_be "$domid" "$vdev")
	h_assert_node "$be/script" "/etc/xen/scripts/$SCRIPT"
	h_assert_node "$be/mode" "$mode"
	h_assert_node "$be/hotplug-status" connected
	h_wait_node "$be/state" 4
	dev=$(h_read "$be/physical-device-path") || h_fail "$be/physical-device-path missing"
	h_assert_eq "$path" "$(h_loop_backing "$dev")" "backing file of $dev"
	h_assert_eq "$(stat -c '%t:%T' "$dev")" "$(h_read "$be/physical-device")" "physical-device of $be"
	if [ "$mode" = r ]; then
		h_assert_eq 1 "$(cat "/sys/block/${dev##*/}/ro")" "read-only flag of $dev"
	else
		h_assert_eq 0 "$(cat "/sys/block/${dev##*/}/ro")" "read-only flag of $dev"
	fi
	h_xl_ok block-list "$domid"
	# (Its state column is the frontend's: not checked here.)
	awk -v d="$(h_devid "$vdev")" -v be="$be" '$1 == d && $7 == be { ok = 1 } END { exit !ok }' "$H_XL_OUT" ||
		h_fail "xl block-list $domid does not show $vdev: $(cat "$H_XL_OUT")"
	grep -qF "\"pdev_path\": \"$path\"" "$(h_xl_config "$domid")" ||
		h_fail "libxl's stored configuration of domain $domid lacks $path"
}

# detach DOMID VDEV [-f] — xl block-detach, which must succeed and remove
# every trace of the disk.
detach() {
	local domid=$1 vdev=$2 be
	be=$(h_xl_be "$domid" "$vdev")
	h_xl_ok block-detach ${3:+"$3"} "$domid" "$vdev"
	h_assert_absent "$be"
	h_assert_absent "/local/domain/$domid/device/vbd/$(h_devid "$vdev")"
	h_assert_absent "/libxl/$domid/device/vbd/$(h_devid "$vdev")"
	# (libxl 4.17 leaves the disk in its stored configuration: a detach does
	# not update it; retrieving the configuration checks it against xenstore.)
}

# no_loop PATH — within 5 s no loop device is bound to PATH.
no_loop_now() { [ "$(h_loop_count_for "$1")" = 0 ]; }
no_loop() { h_wait_until 5 "no loop device on $1" no_loop_now "$1"; }

h_log "read-write, then read-only, attach and detach"
h_xl_domain 1
cp "$(h_xl_config 1)" "$H_TMP/config-1"
attach 1 xvda "$img" w
attached 1 xvda "$img" w
# libxl rewrote the domain's stored configuration with the disk: but for
# the disk, byte for byte what h_xl_domain wrote as libxl's.
python3 - "$H_TMP/config-1" "$(h_xl_config 1)" <<'EOF' || h_fail "h_xl_domain's stored configuration is not libxl's"
import re, sys
ours, libxl = (open(f, "rb").read() for f in sys.argv[1:])
without = re.sub(rb'\n    "disks": \[\n.*?\n    \],\n', b"\n", libxl, flags=re.S)
if without == libxl or without != ours:
    sys.exit("ours:\n%r\nlibxl's, without the disks:\n%r" % (ours, without))
EOF
h_assert_eq 1 "$(h_loop_count_for "$img")" "loop devices of a read-write disk"
detach 1 xvda
no_loop "$img"
attach 1 xvdb "$img" r
attached 1 xvdb "$img" r
detach 1 xvdb
no_loop "$img"

h_log "three guests share one read-only image"
devs=()
for d in 2 3 4; do
	h_xl_domain "$d"
	attach "$d" xvda "$shared" r
	attached "$d" xvda "$shared" r
	devs+=("$(h_read "$(h_xl_be "$d" xvda)/physical-device")")
done
n=$(h_loop_count_for "$shared")
h_log "$SCRIPT: 3 read-only disks of one image on $n loop device(s): ${devs[*]}"
if [ "$SCRIPT" = block-loopd ]; then
	h_assert_eq 1 "$n" "loop devices for three read-only users"
	h_assert_eq "${devs[0]} ${devs[0]} ${devs[0]}" "${devs[*]}" "physical-device of the three"
fi
detach 2 xvda
detach 3 xvda
# The last user keeps the shared device.
h_assert_node "$(h_xl_be 4 xvda)/state" 4
[ "$(h_loop_count_for "$shared")" -ge 1 ] || h_fail "the last user's loop device is gone"
detach 4 xvda
no_loop "$shared"

h_log "a read-write conflict: xl reports the script's hotplug-error"
h_xl_domain 5
h_xl_domain 6
attach 5 xvda "$img" w
attached 5 xvda "$img" w
be6=$(h_xl_be 6 xvda)
if h_xl block-attach 6 "$(h_xl_disk_spec xvda "$img" w "$SPEC_SCRIPT")"; then
	# Debian 12's block script looks for the image's device number in hex
	# ("fe00", stat %D) in `losetup -a`, which util-linux 2.38 prints in
	# decimal ("[65024]"): its sharing check never finds a user.
	[ "$SCRIPT" = block ] || h_fail "a second read-write attach of $img succeeded"
	h_log "$SCRIPT did not refuse a second read-write user of $img: $(h_loop_count_for "$img") loop devices"
else
	err=$(h_read "$be6/hotplug-error") || h_fail "no hotplug-error in $be6"
	[ -n "$err" ] || h_fail "empty hotplug-error in $be6"
	h_log "$SCRIPT refused: $err"
	h_xl_assert_err_has "$err"
	h_assert_absent "$be6/physical-device"
	h_assert_eq 1 "$(h_loop_count_for "$img")" "loop devices after the refused attach"
fi
# The nodes of a failed add stay until a detach; the first disk is untouched.
detach 6 xvda
h_assert_node "$(h_xl_be 5 xvda)/state" 4
detach 5 xvda
no_loop "$img"

h_log "a missing file, a directory and a FIFO are refused, and leave nothing"
h_xl_domain 7
mkdir "$H_TMP/images/dir.img"
mkfifo "$H_TMP/images/fifo.img"
for bad in "$H_TMP/images/missing.img" "$H_TMP/images/dir.img" "$H_TMP/images/fifo.img"; do
	h_xl block-attach 7 "$(h_xl_disk_spec xvdc "$bad" w "$SPEC_SCRIPT")" &&
		h_fail "xl attached $bad"
	h_log "xl refused ${bad##*/}: $(grep -v '^libxl: debug' "$H_XL_ERR" | tr '\n' ' ')"
	be=$(h_xl_be 7 xvdc)
	if h_exists "$be"; then
		# The script ran and refused: xl says why.
		if err=$(h_read "$be/hotplug-error"); then
			h_xl_assert_err_has "$err"
		elif [ "$SCRIPT" = block ]; then
			# Debian 12's block script takes a target that is neither a
			# block device nor a regular file for "no type": it writes
			# hotplug-status=connected, then fails on the missing
			# block-phy helper, without a hotplug-error.
			h_log "the stock script gave no reason (hotplug-status: $(h_read_default "$be/hotplug-status" none))"
		else
			h_fail "no hotplug-error for $bad"
		fi
		h_assert_absent "$be/physical-device"
		detach 7 xvdc
	else
		h_fail "xl refused $bad without running $SCRIPT: $(cat "$H_XL_ERR")"
	fi
	h_assert_eq 0 "$(h_loop_count_for "$bad")" "loop devices of $bad"
done
h_assert_eq "" "$(h_loops_in_tmp)" "loop devices after the refused disks"

h_log "block-detach -f"
h_xl_domain 8
attach 8 xvda "$img" w
attached 8 xvda "$img" w
detach 8 xvda -f
no_loop "$img"

h_log "a guest without PV drivers: the disk never connects, and is detached"
h_blkback_stop
h_xl_blkback_start none
h_xl_domain 9
attach 9 xvda "$img" w
be=$(h_xl_be 9 xvda)
h_assert_node "$be/hotplug-status" connected
h_assert_node "$be/state" 2
h_assert_eq 1 "$(h_loop_count_for "$img")" "loop devices of a disk nobody connected"
detach 9 xvda
no_loop "$img"

[ "$SCRIPT" = block-loopd ] && h_daemon_stop
h_assert_no_loops
