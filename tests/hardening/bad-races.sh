#!/bin/bash
# The world changing under an attach, with the daemon frozen at a step of it
# (stop points, src/shared/crashpoint.h): the file swapped for a symlink to
# another file after the daemon opened it (the fd it opened is the one
# attached: the path is opened exactly once); a physical-device written by
# someone else before the daemon saw the disk, and while it was setting it
# up; the backend directory removed after the open, after the loop device was
# set up, and after publishing; the directory removed and written anew by a
# late writer (debris: the disk is let go); a disk removed and its file
# taken by another writer in one batch.  Good disks written meanwhile
# connect; no device is left; the daemon lives.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/../daemon/lib-daemon.sh"
. "$(dirname "$0")/lib-hardening.sh"
h_init "$@"
HD_CRASHPOINTS=1 # the stop points: xen-loopd-crash
hd_start

I=$H_TMP/images
good=$(h_sparse_file good.img 16M)

# add_good DOMID — a good disk written while the daemon is stopped; its
# backend in GOOD_BE.
GOOD_BE=()
add_good() {
	hd_add "$1" xvdb "$good" r
	GOOD_BE+=("$H_BE")
}
ino() { stat -c %i "$1"; }
back_ino() { losetup -n -O BACK-INO "$1" | tr -d ' '; }

h_log "the file swapped for a symlink after the open"
orig=$(h_sparse_file disk.img 16M)
other=$(h_sparse_file other.img 32M)
orig_ino=$(ino "$orig")
hd_stop_at after-open
hd_add 1 xvda "$orig" w
be=$H_BE
hd_wait_stopped after-open
add_good 1
mv "$orig" "$I/disk-moved.img"
ln -s "$other" "$orig"
hd_thaw
hd_assert_good "$be"
dev=$(h_read "$be/physical-device-path")
h_assert_eq "$orig_ino" "$(back_ino "$dev")" "backing inode of the attached device (the file opened)"
hd_no_loops_for "$other"
h_libxl_remove_disk 1 xvda
rm -f "$orig"
mv "$I/disk-moved.img" "$orig"

h_log "physical-device written by someone else before the daemon saw the disk"
hd_freeze
hd_add 2 xvda "$orig" w
be=$H_BE
hd_raw "$be/physical-device" fe:0
add_good 2
hd_thaw
hd_assert_refused "$be" 2 xvda "$orig" "physical-device is already set to 'fe:0' by someone else"
h_assert_node "$be/physical-device" fe:0
h_wait_until 10 "the refused disk's loop device to go" hd_no_loops "$orig"
h_libxl_remove_disk 2 xvda || true

h_log "physical-device written by someone else while the daemon set the disk up"
hd_stop_at after-configure
hd_add 3 xvda "$orig" w
be=$H_BE
hd_wait_stopped after-configure
h_assert_eq 1 "$(h_loop_count_for "$orig")" "loop devices while stopped after the set-up"
hd_raw "$be/physical-device" "fe:1"
add_good 3
hd_thaw
hd_assert_refused "$be" 3 xvda "$orig" "physical-device is already set to 'fe:1' by someone else"
h_assert_node "$be/physical-device" fe:1
h_wait_until 10 "the refused disk's loop device to go" hd_no_loops "$orig"
h_libxl_remove_disk 3 xvda || true

# removed_at POINT DOMID — the backend directory goes while the daemon is
# stopped at POINT; it must not come back, and the device must go.
removed_at() {
	local point=$1 domid=$2 be
	h_log "the backend directory removed at $point"
	hd_stop_at "$point"
	hd_add "$domid" xvda "$orig" w
	be=$H_BE
	hd_wait_stopped "$point"
	add_good "$domid"
	h_xs remove --home "$H_HOME" --domid "$domid" --devid 51712 --stage destroy
	hd_thaw
	h_wait_until 10 "the loop device of the removed disk to go" hd_no_loops "$orig"
	hd_assert_good "${GOOD_BE[-1]}"
	h_assert_absent "$be"
	h_daemon_alive
}
removed_at after-open 4
removed_at after-configure 5
removed_at after-publish 6

h_log "the backend directory removed, then written anew by a late writer"
# blkback's connect() writes sectors and info without checking that the
# directory is still there, and so does the emulator with state: what is at
# the path then is debris, not the disk, and the daemon lets the disk go.
hd_add 7 xvda "$orig" w
be=$H_BE
hd_assert_good "$be"
hd_freeze
h_xs remove --home "$H_HOME" --domid 7 --devid 51712 --stage destroy
hd_raw "$be/sectors" 32768 "$be/info" 0 "$be/state" 4
hd_thaw
debris_released() { ! "$XEN_LOOPCTL" list --json | grep -q '"domid": *7,'; }
h_wait_until 10 "the daemon to let the removed disk go" debris_released
h_log "the file is free for a writer again"
hd_add 8 xvda "$orig" w
hd_assert_good "$H_BE"
h_libxl_remove_disk 8 xvda
xenstore-rm "$(h_be_path 7 51712)"
h_wait_until 10 "the debris's loop device to go" hd_no_loops "$orig"

h_log "a disk removed and its file attached read-write elsewhere, in one batch"
# The daemon takes events in the order they came: the release comes first.
hd_add 9 xvda "$orig" w
hd_assert_good "$H_BE"
hd_freeze
h_libxl_remove_disk 9 xvda
hd_add 10 xvda "$orig" w
be=$H_BE
hd_thaw
hd_assert_good "$be"
h_libxl_remove_disk 10 xvda

h_log "the good disks written meanwhile"
for be in "${GOOD_BE[@]}"; do
	hd_assert_good "$be"
done
h_assert_eq 1 "$(h_loop_count_for "$good")" "loop devices of the good disks"
for be in "${GOOD_BE[@]}"; do
	d=${be%/*}
	h_libxl_remove_disk "${d##*/}" xvdb
done
hd_finish
