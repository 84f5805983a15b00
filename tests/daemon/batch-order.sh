#!/bin/bash
# A disk torn down and its file taken by another disk in one batch of
# events: the disk torn down lets go first, whatever order the daemon
# queued the two records in.  Here the reader's record is queued first (its
# own, refused, directory goes and is written anew), the writer's teardown
# after it; the daemon sees all of it at once, after xenstored stalled.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/lib-daemon.sh"
h_init "$@"
h_xenstored_start
h_xs_proxy_start
h_on_cleanup "rm -f '$H_PROXY_CTL/stall'"
h_blkback_start
XENSTORED_PATH=$H_PROXY_SOCKET h_daemon_start
img=$(h_sparse_file rw.img 32M)

for round in 1 2 3; do
	h_log "round $round"
	h_libxl_add_disk 1 xvda "$img" w -
	writer=$H_BE
	h_wait_connected "$writer"
	h_libxl_add_disk 2 xvda "$img" r -
	reader=$H_BE
	msg=$(h_wait_busy "$reader")
	case $msg in *"in use read-write by domain 1 disk 51712"*) ;; *) h_fail "the reader: $msg" ;; esac

	# The daemon hears nothing until the reader's directory is back.
	touch "$H_PROXY_CTL/stall"
	h_libxl_remove_disk 2 xvda || true
	h_libxl_remove_disk 1 xvda
	h_libxl_add_disk 2 xvda "$img" r -
	rm "$H_PROXY_CTL/stall"
	h_wait_connected "$reader"
	h_wait_node "$reader/state" 4
	h_assert_published "$reader"
	h_assert_eq 1 "$(h_loop_count_for "$img")" "loop devices of rw.img"
	h_libxl_remove_disk 2 xvda
	h_wait_until 10 "rw.img's device to go" bash -c "[ -z \"\$(losetup -j '$img')\" ]"
done
h_daemon_alive
h_daemon_stop
