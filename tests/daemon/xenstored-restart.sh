#!/bin/bash
# xenstored goes away under the daemon and comes back (empty, as a fresh
# xenstored does): the daemon reconnects by itself, lets go of the disks
# whose backends are gone, and serves new disks; it never crashes.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/lib-daemon.sh"
h_init "$@"
h_xenstored_start
h_blkback_start
h_daemon_start
img=$(h_sparse_file disk.img 32M)
img2=$(h_sparse_file disk2.img 32M)

h_libxl_add_disk 1 xvda "$img" w -
h_wait_connected "$H_BE"
h_wait_node "$H_BE/state" 4

h_blkback_stop
h_xenstored_restart
h_daemon_alive
h_wait_until 15 "the daemon to reconnect" \
	bash -c "$XEN_LOOPCTL status --json | grep -q '\"xenstore\": *\"connected\"'"
# The old backend is gone with the old store, and blkback closed it: the
# loop device goes.
h_wait_until 10 "the old loop device to go" bash -c "[ -z \"\$(losetup -j '$img')\" ]"

h_blkback_start
h_libxl_add_disk 1 xvdb "$img2" w -
h_wait_connected "$H_BE"
h_assert_published "$H_BE"
h_libxl_remove_disk 1 xvdb
h_wait_until 10 "the new loop device to go" bash -c "[ -z \"\$(losetup -j '$img2')\" ]"
h_daemon_alive
h_daemon_stop
