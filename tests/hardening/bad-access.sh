#!/bin/bash
# Refusals of access: `w` on a file of a read-only mount, a second writer
# from another domain, a reader while a writer exists, and a writer while
# readers exist.  Each ends in hotplug-status=error with a hotplug-error
# naming the disk and the cause, no device published or left over; the
# holders and the good disks of the batch stay connected; the daemon lives.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/../daemon/lib-daemon.sh"
. "$(dirname "$0")/lib-hardening.sh"
h_init "$@"
[ -n "${H_IN_NS:-}" ] || h_skip "needs the test's private mount namespace (unshare) for a read-only mount"
hd_start

I=$H_TMP/images
rw=$(h_sparse_file rw.img 16M)
ro=$(h_sparse_file ro.img 16M)
mnt=$H_TMP/ro-mount
mkdir -p "$mnt"
mount -t tmpfs -o size=64M tmpfs "$mnt"
h_on_cleanup "umount -l '$mnt'"
truncate -s 16M "$mnt/frozen.img"
mount -o remount,ro "$mnt"
touch "$mnt/x" 2>/dev/null && h_fail "the mount is not read-only"

h_log "the holders: a writer and two readers"
hd_add 1 xvda "$rw" w
hd_assert_good "$H_BE"
hd_add 2 xvda "$ro" r
hd_assert_good "$H_BE"
hd_add 3 xvda "$ro" r
hd_assert_good "$H_BE"

h_log "a batch of refusals with good disks among them"
hd_freeze
hd_add 10 xvda "$mnt/frozen.img" w; be_rofs=$H_BE
hd_add 11 xvda "$mnt/frozen.img" r; be_rofs_r=$H_BE
hd_add 12 xvda "$rw" w; be_rw2=$H_BE
hd_add 13 xvda "$rw" r; be_rw_r=$H_BE
hd_add 14 xvda "$ro" w; be_ro_w=$H_BE
hd_add 15 xvda "$ro" r; be_ro3=$H_BE
hd_add 16 xvdb "$(h_sparse_file other.img 16M)" w; be_other=$H_BE
hd_thaw

hd_assert_good "$be_rofs_r"
hd_assert_good "$be_ro3"
hd_assert_good "$be_other"
hd_assert_refused "$be_rofs" 10 xvda "$mnt/frozen.img" \
	"cannot open $mnt/frozen.img read-write: Read-only file system"
HD_STATUS=busy hd_assert_refused "$be_rw2" 12 xvda "$rw" "$rw is in use read-write by domain 1 disk 51712"
HD_STATUS=busy hd_assert_refused "$be_rw_r" 13 xvda "$rw" "$rw is in use read-write by domain 1 disk 51712"
HD_STATUS=busy hd_assert_refused "$be_ro_w" 14 xvda "$ro" "$ro is in use read-only by domain * disk 51712 (and * other disk*)"
for be in "$be_rofs" "$be_rw2" "$be_rw_r" "$be_ro_w"; do
	h_assert_absent "$be/physical-device"
done

h_log "the holders are undisturbed"
for d in 1 2 3; do
	be=$(h_be_path "$d" 51712)
	h_assert_node "$be/hotplug-status" connected
	h_assert_published "$be"
	h_assert_node "$be/state" 4
done
h_assert_eq 1 "$(h_loop_count_for "$rw")" "loop devices of the written file"
h_assert_eq 1 "$(h_loop_count_for "$ro")" "loop devices of the shared file"
h_assert_eq 1 "$(h_loop_count_for "$mnt/frozen.img")" "loop devices of the file on the read-only mount"

h_log "once the writer is gone, a reader of its file is let in"
h_libxl_remove_disk 13 xvda || true
h_libxl_remove_disk 12 xvda || true
h_libxl_remove_disk 1 xvda
hd_add 13 xvda "$rw" r
hd_assert_good "$H_BE"

for d in 2 3 10 11 13 14 15; do
	h_libxl_remove_disk "$d" xvda || true
done
h_libxl_remove_disk 16 xvdb
hd_finish
