#!/bin/bash
# Watch mode, one disk: a backend written with no hotplug script is set up by
# the daemon, published as the stock script does (plus diskseq), held until
# blkback opens it, and gone after a libxl teardown.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/lib-daemon.sh"
h_init "$@"
h_xenstored_start
h_blkback_start
h_daemon_start

img=$(h_sparse_file one.img 64M)
h_libxl_add_disk 1 xvda "$img" w -
be=$H_BE
h_wait_connected "$be"
h_assert_published "$be"
h_wait_node "$be/state" 4
h_assert_eq 1 "$(h_loop_count_for "$img")" "loop devices for the image"
h_assert_absent "$be/hotplug-error"

# Once blkback holds the device the daemon lets go of its fd.
h_wait_until 10 "the daemon to release its fd" \
	bash -c "[ \"\$($XEN_LOOPCTL list --json | grep -c '\"held\": *true')\" = 0 ]"

h_libxl_remove_disk 1 xvda
h_wait_until 10 "the loop device to go" bash -c "[ -z \"\$(losetup -j '$img')\" ]"
h_daemon_alive
h_daemon_stop
