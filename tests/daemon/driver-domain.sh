#!/bin/bash
# A driver domain: the daemon serves the backends under its own home
# (/local/domain/5 here), and only those.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/lib-daemon.sh"
h_init "$@"
h_xenstored_start
H_HOME=/local/domain/5
xenstore-write /local/domain/5/domid 5 /local/domain/5/name driver
h_blkback_start --home "$H_HOME"
h_daemon_start --home "$H_HOME"
img=$(h_sparse_file disk.img 32M)

h_libxl_add_disk 7 xvda "$img" w -
h_wait_connected "$H_BE"
h_assert_published "$H_BE"
h_wait_node "$H_BE/state" 4

# A dom0 backend is not this daemon's business: a disk of its own written
# after it is served, that one never is.
h_xs domain --domid 8 >/dev/null
h_xs add --home /local/domain/0 --domid 8 --vdev xvda --params "$img" --mode r --no-script >/dev/null
h_libxl_add_disk 9 xvda "$(h_sparse_file other.img 16M)" r -
h_wait_connected "$H_BE"
h_assert_absent /local/domain/0/backend/vbd/8/51712/hotplug-status
h_libxl_remove_disk 9 xvda

h_libxl_remove_disk 7 xvda
h_wait_until 10 "the loop device to go" bash -c "[ -z \"\$(losetup -j '$img')\" ]"
h_daemon_stop
