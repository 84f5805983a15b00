#!/bin/bash
# STATUS= under a real service manager: the daemon's status line is not
# only set once at start-up but follows what it serves, so systemctl status
# shows a disk attached after the first refresh, and its removal too.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/lib-daemon.sh"
h_init "$@"
h_xenstored_start
h_blkback_start
h_systemd_user_start
h_daemon_service_start

status() { systemctl --user show -p StatusText --value "$H_UNIT.service"; }
status_is() { [ "$(status)" = "$1" ]; }

h_wait_until 10 "the first status line" status_is "0 disks, 0 loop devices; xenstore connected."
h_log "status: $(status)"

img=$(h_sparse_file a.img 32M)
h_libxl_add_disk 1 xvda "$img" w -
h_wait_connected "$H_BE"
h_wait_until 20 "the status line to show the disk" status_is "1 disks, 1 loop devices; xenstore connected."
h_log "status: $(status)"

h_libxl_remove_disk 1 xvda
h_wait_until 20 "the status line to show no disk" status_is "0 disks, 0 loop devices; xenstore connected."
h_log "status: $(status)"
systemctl --user stop "$H_UNIT.service"
