#!/bin/bash
# Start-up resynchronisation without a service manager: disks that an
# earlier run published, and that blkback holds, are adopted by the next
# run with the device they name (not set up again), keep their sharing
# account, and are released as usual; a disk whose device went while no
# daemon ran gets a clear error, and a physical-device-path that names
# something other than a block device is never opened for I/O.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/lib-daemon.sh"
h_init "$@"
h_xenstored_start
h_blkback_start
h_daemon_start
ro=$(h_sparse_file ro.img 32M)
rw=$(h_sparse_file rw.img 32M)

h_libxl_add_disk 1 xvda "$ro" r -
h_libxl_add_disk 2 xvda "$ro" r -
h_libxl_add_disk 3 xvda "$rw" w -
for d in 1 2 3; do
	h_wait_connected "$(h_be_path "$d" 51712)"
	h_wait_node "$(h_be_path "$d" 51712)/state" 4
done
before=$(for d in 1 2 3; do h_read "$(h_be_path "$d" 51712)/physical-device"; done)

h_daemon_stop
# blkback holds the devices: they outlive the daemon.
h_assert_eq 1 "$(h_loop_count_for "$ro")" "devices of ro.img without a daemon"
h_assert_eq 1 "$(h_loop_count_for "$rw")" "devices of rw.img without a daemon"

h_daemon_start
h_wait_until 10 "the daemon to adopt the three disks" \
	bash -c "[ \"\$($XEN_LOOPCTL list --json | grep -c '\"domid\"')\" = 3 ]"
grep -q "adopted" "$H_DAEMON_LOG" || h_fail "nothing was adopted"
after=$(for d in 1 2 3; do h_read "$(h_be_path "$d" 51712)/physical-device"; done)
h_assert_eq "$before" "$after" "published devices after the restart"
h_assert_eq 1 "$(h_loop_count_for "$ro")" "devices of ro.img after the restart"
h_assert_eq 2 "$(h_loopctl list --json | grep -c '"device"')" "devices listed after the restart"

# The sharing account came back with them: the rw image is still taken.
h_libxl_add_disk 4 xvda "$rw" r -
msg=$(h_wait_busy "$H_BE")
case $msg in *"in use read-write by domain 3 disk 51712"*) ;; *) h_fail "after restart: $msg" ;; esac
h_libxl_remove_disk 4 xvda || true

for d in 1 2 3; do
	h_libxl_remove_disk "$d" xvda
done
h_wait_until 10 "every loop device to go" bash -c "[ -z \"\$(losetup -a | grep '$H_TMP')\" ]"
h_assert_eq 0 "$(h_loopctl list --json | grep -c '"device"' || true)" "devices listed at the end"

h_log "a published disk whose device went while no daemon ran"
touch "$H_TMP/hold"
h_blkback_stop
h_blkback_start --hold-off "$H_TMP/hold"
h_libxl_add_disk 5 xvda "$rw" w -
be=$H_BE
h_wait_connected "$be"
h_daemon_stop # no fd store: the held device autoclears
h_wait_until 10 "the orphaned device to go" bash -c "[ -z \"\$(losetup -j '$rw')\" ]"
h_daemon_start
msg=$(h_wait_error "$be")
case $msg in *"domain 5 disk xvda"*"is gone"*) ;; *) h_fail "lost device: $msg" ;; esac
h_assert_eq 0 "$(h_loop_count_for "$rw")" "devices of rw.img after the error"
h_libxl_remove_disk 5 xvda || true

h_log "a published disk whose physical-device-path names a FIFO"
# Opening a FIFO for reading lets a writer blocked in open() go on: the
# daemon must look at what the path is before it opens it for I/O.
h_libxl_add_disk 6 xvda "$rw" w -
be=$H_BE
h_wait_connected "$be"
h_daemon_stop
h_wait_until 10 "the orphaned device to go" bash -c "[ -z \"\$(losetup -j '$rw')\" ]"
fifo="$H_TMP/fifo"
mkfifo "$fifo"
xenstore-write "$be/physical-device-path" "$fifo"
bash -c 'exec 3>"$1"; touch "$2"' writer "$fifo" "$H_TMP/fifo-opened" &
h_register_pid $! fifo-writer
h_daemon_start
msg=$(h_wait_error "$be")
case $msg in *"domain 6 disk xvda"*"is gone"*) ;; *) h_fail "FIFO as physical-device-path: $msg" ;; esac
[ -e "$H_TMP/fifo-opened" ] && h_fail "the daemon opened the FIFO named by physical-device-path"
h_libxl_remove_disk 6 xvda || true
h_daemon_alive
h_daemon_stop
