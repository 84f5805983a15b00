#!/bin/bash
# The sharing rule, case by case against the stock script's (check_sharing
# and same_vm in block-common.sh): what it allows (a stub domain and its
# guest, the two domains of a local migration, w!), and the ways around it
# that must not work (a second name for one file: the daemon's own loop
# device, /proc/self/fd; devices adopted after a restart; loop devices and
# mounts the daemon did not make).  A refusal is hotplug-status busy with a
# hotplug-error naming the disk and the reason, and the first disk goes on.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/lib-daemon.sh"
h_init "$@"
h_xenstored_start
# No guest connects: the daemon keeps holding what it publishes (its fds
# are one of the second names below).
h_blkback_start --guest building
h_daemon_start
img=$(h_sparse_file guest.img 16M)
other=$(h_sparse_file other.img 32M)

devices_of() { losetup -j "$1" | wc -l; }

# add DOMID VDEV PARAMS MODE — a watch-mode disk; H_BE is set.
add() { h_libxl_add_disk "$1" "$2" "$3" "$4" -; }

# refused DOMID VDEV PARAMS MODE GLOB — busy, with a hotplug-error that
# names the disk and matches GLOB; nothing published.
refused() {
	local msg
	add "$1" "$2" "$3" "$4"
	msg=$(h_wait_busy "$H_BE")
	h_log "refused: $msg"
	# shellcheck disable=SC2053
	[[ $msg == "domain $1 disk $2 "*$5* ]] || h_fail "hotplug-error of domain $1: $msg"
	h_assert_absent "$H_BE/physical-device"
	h_libxl_remove_disk "$1" "$2" || true
}

h_log "a guest and its stub domain: one image read-write in both, one device"
h_xs domain --domid 5 >/dev/null
h_xs domain --domid 6 >/dev/null
xenstore-write /local/domain/6/target 5
add 5 xvda "$img" w
h_wait_connected "$H_BE"
guest=$H_BE
add 6 xvda "$img" w
h_wait_connected "$H_BE"
h_assert_eq "$(h_read "$guest/physical-device")" "$(h_read "$H_BE/physical-device")" "the stub domain's device"
h_assert_eq 1 "$(devices_of "$img")" "loop devices for the image"
h_log "an unrelated domain is refused, read-write and read-only"
refused 9 xvda "$img" w "is in use read-write by domain *"
refused 9 xvda "$img" r "is in use read-write by domain *"
h_libxl_remove_disk 6 xvda

h_log "xl migrate localhost: the new domain is the same VM"
h_xs domain --domid 7 >/dev/null
xenstore-write /local/domain/7/vm "$(h_read /local/domain/5/vm)"
add 7 xvda "$img" w
h_wait_connected "$H_BE"
h_libxl_remove_disk 7 xvda

h_log "a second name for the file: the daemon's own loop device"
dev=$(h_read "$guest/physical-device-path")
refused 10 xvda "$dev" w "$dev is in use read-write by domain 5 disk 51712"
refused 10 xvda "$dev" r "$dev is in use read-write by domain 5 disk 51712"
h_log "... or the daemon's own fd of it"
fd=$(find "/proc/$H_DAEMON_PID/fd" -lname "$dev" -printf '%f\n' | head -1)
[ -n "$fd" ] || h_fail "the daemon holds no fd of $dev"
refused 10 xvda "/proc/self/fd/$fd" w "is in use read-write by domain 5 disk 51712"
h_log "the other domain's file is not named in the guest-readable message"
add 10 xvdb "$dev" w
msg=$(h_wait_busy "$H_BE")
[[ $msg != *"$img"* ]] || h_fail "hotplug-error names another domain's file: $msg"
h_libxl_remove_disk 10 xvdb || true

h_log "w! bypasses the rule, as in the stock script"
h_xs add --home "$H_HOME" --domid 11 --vdev xvda --params "$img" --mode 'w!' --no-script >/dev/null
h_wait_connected "$(h_be_path 11 51712)"
h_libxl_remove_disk 11 xvda

h_log "a restart, then at once a conflicting disk: the published ones count first"
h_xs domain --domid 12 >/dev/null
add 12 xvdb "$other" r   # domain 12 is listed, and scanned, before domain 13
h_wait_connected "$H_BE"
h_xs domain --domid 13 >/dev/null
add 13 xvda "$other" w
h_wait_busy "$H_BE" >/dev/null
h_libxl_remove_disk 13 xvda
h_libxl_remove_disk 12 xvdb
add 14 xvda "$other" w
h_wait_connected "$H_BE"
# No fd store here: only blkback's open keeps the device across the kill.
h_wait_until 10 "blkback to open domain 14's device" grep -q "14/51712: opened" "$H_BLKBACK_LOG"
kill -KILL "$H_DAEMON_PID"
h_unregister_pid "$H_DAEMON_PID"
# Written while no daemon runs; domain 12 comes first in the listing.
h_xs add --home "$H_HOME" --domid 12 --vdev xvdc --params "$other" --mode w --no-script >/dev/null
h_daemon_start
h_wait_until 10 "the daemon to adopt domain 14's disk" grep -q "14/51712: adopted" "$H_DAEMON_LOG"
msg=$(h_wait_busy "$(h_be_path 12 51744)")
h_log "refused after the restart: $msg"
h_assert_node "$(h_be_path 14 51712)/hotplug-status" connected
h_libxl_remove_disk 12 xvdc || true
h_libxl_remove_disk 14 xvda

h_log "a loop device the daemon did not make"
h_libxl_remove_disk 5 xvda
h_wait_until 10 "the guest's device to go" test "$(devices_of "$img")" = 0
foreign=$(losetup -f --show -r "$img")
h_on_cleanup "losetup -d '$foreign' 2>/dev/null || true"
refused 15 xvda "$img" w "is in use outside xen-loopd: bound to $foreign, a loop device xen-loopd did not set up"
add 15 xvdb "$img" r   # read-only beside a read-only loop device: allowed
h_wait_connected "$H_BE"
h_libxl_remove_disk 15 xvdb
losetup -d "$foreign"
foreign=$(losetup -f --show "$img")
refused 15 xvda "$img" r "is in use outside xen-loopd: bound read-write to $foreign, a loop device*"
h_log "... and a dom0 mount of the image"
mkfs.ext4 -q -F "$foreign"
mkdir -p "$H_TMP/mnt"
mount "$foreign" "$H_TMP/mnt"
h_on_cleanup "umount '$H_TMP/mnt' 2>/dev/null || true"
refused 16 xvda "$img" w "bound to $foreign"
refused 16 xvda "$foreign" r "is in use outside xen-loopd: mounted read-write in dom0"
refused 16 xvda "$foreign" w "is in use outside xen-loopd: mounted*in dom0"
umount "$H_TMP/mnt"
losetup -d "$foreign"
h_log "w! still attaches beside them"
foreign=$(losetup -f --show "$img")
h_xs add --home "$H_HOME" --domid 17 --vdev xvda --params "$img" --mode 'w!' --no-script >/dev/null
h_wait_connected "$(h_be_path 17 51712)"
h_libxl_remove_disk 17 xvda
losetup -d "$foreign"

h_daemon_stop
h_assert_no_loops
h_log "ok"
