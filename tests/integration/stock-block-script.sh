#!/bin/bash
# The stock /etc/xen/scripts/block (xen-utils-4.17) attaching and removing
# file-backed disks, driven as libxl 4.17 drives it, against a real xenstored
# and the blkback emulator.  This is the reference the project's own
# behaviour is compared with.
. "${H_HARNESS_DIR:-$(dirname "$0")/../harness}/lib.sh"
h_init "$@"

[ -x "$H_SCRIPT_DIR/block" ] || h_skip "$H_SCRIPT_DIR/block not found (Debian package xen-utils-common)"

h_xenstored_start
h_blkback_start

# The loop device's major:minor the way block-common.sh writes it.
mm_of() {
	local n=${1##*/} ma mi
	IFS=: read -r ma mi <"/sys/block/$n/dev"
	printf '%x:%x\n' "$ma" "$mi"
}

# check_attached BE IMAGE RO — what the script and blkback left behind.
check_attached() {
	local be=$1 img=$2 ro=$3 dev
	h_assert_node "$be/hotplug-status" connected
	dev=$(h_read "$be/physical-device-path") || h_fail "no physical-device-path"
	[[ $dev == /dev/loop[0-9]* ]] || h_fail "physical-device-path is $dev, not a loop device"
	h_assert_node "$be/physical-device" "$(mm_of "$dev")"
	# The stock script also records the loop device for its `remove`.
	h_assert_node "$be/node" "$dev"
	h_assert_eq "$img" "$(h_loop_backing "$dev")" "backing file of $dev"
	h_assert_eq "$ro" "$(cat "/sys/block/${dev##*/}/ro")" "read-only flag of $dev"
	# libxl does not wait for Connected; blkback gets there on its own.
	h_wait_node "$be/state" 4
	h_assert_node "$be/sectors" $((64 * 1024 * 1024 / 512))
	h_assert_node "$be/info" $((ro ? 4 : 0))
	h_assert_absent "$be/diskseq"
}

img=$(h_sparse_file disk.img 64M)

h_log "read-write disk for domain 5"
h_libxl_add_disk 5 xvda "$img" w block || h_fail "block add failed"
be5=$H_BE
check_attached "$be5" "$img" 0
h_assert_eq 1 "$(h_loop_count_for "$img")" "loop devices for the image"

h_log "teardown as libxl does it"
h_libxl_remove_disk 5 xvda || h_fail "block remove failed"
h_assert_absent "$be5"
h_assert_absent /local/domain/5/device/vbd/51712
h_assert_absent /libxl/5/device/vbd/51712
h_assert_no_loops

h_log "one image read-only in two domains"
h_libxl_add_disk 6 xvda "$img" r block || h_fail "block add (domain 6) failed"
be6=$H_BE
h_libxl_add_disk 7 xvdb "$img" r block || h_fail "block add (domain 7) failed"
be7=$H_BE
check_attached "$be6" "$img" 1
check_attached "$be7" "$img" 1
# The stock script gives every attach its own loop device.
h_assert_eq 2 "$(h_loop_count_for "$img")" "loop devices for the shared image"
[ "$(h_read "$be6/physical-device")" != "$(h_read "$be7/physical-device")" ] ||
	h_fail "both domains got the same loop device"

h_log "read-write use of the shared image (the stock sharing check)"
# check_file_sharing looks for the image in `losetup -a` as "[<stat %D>]:
# <inode>", but util-linux prints the device number in decimal and %D is
# hex, so on Debian 12 the check never matches and the read-write attach is
# granted.  Accept either outcome; check each is self-consistent.
rc=0
h_libxl_add_disk 8 xvda "$img" w block || rc=$?
be8=$H_BE
if [ "$rc" = 0 ]; then
	h_log "stock block granted read-write use of an image two guests have read-only"
	check_attached "$be8" "$img" 0
	h_assert_eq 3 "$(h_loop_count_for "$img")" "loop devices for the image"
	h_libxl_remove_disk 8 xvda || h_fail "block remove (domain 8) failed"
else
	h_log "stock block refused: $(h_read_default "$be8/hotplug-error" "")"
	h_assert_eq 1 "$rc" "exit status of block add"
	h_assert_node "$be8/hotplug-status" busy
	h_exists "$be8/hotplug-error" || h_fail "no hotplug-error for the refused disk"
	h_assert_absent "$be8/physical-device"
	h_assert_eq 2 "$(h_loop_count_for "$img")" "loop devices after the refusal"
	# libxl then removes the device; the stock `remove` fails for want of
	# a `node` (libxl ignores that) and leaves nothing behind.
	rc=0
	h_libxl_remove_disk 8 xvda || rc=$?
	h_log "block remove after the refused add exited $rc"
fi
h_assert_absent "$be8"
h_assert_eq 2 "$(h_loop_count_for "$img")" "loop devices after domain 8 left"

h_libxl_remove_disk 6 xvda || h_fail "block remove (domain 6) failed"
h_assert_eq 1 "$(h_loop_count_for "$img")" "loop devices after one removal"
h_libxl_remove_disk 7 xvdb || h_fail "block remove (domain 7) failed"
h_assert_absent "$be6"
h_assert_absent "$be7"
h_assert_no_loops

h_log "ok"
