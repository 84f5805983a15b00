#!/bin/bash
# Removal at every point of an attach leaves nothing behind: before the
# daemon publishes, while it still holds the device for a blkback that never
# opens it, after blkback opened it, a domain destroyed before blkback ever
# opened its disk, a failed disk, and the whole domain directory at once.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/lib-daemon.sh"
h_init "$@"
h_xenstored_start
hold="$H_TMP/hold-off"
touch "$hold"
h_blkback_start --hold-off "$hold"
h_daemon_start
img=$(h_sparse_file disk.img 32M)

no_loops() { [ -z "$(losetup -j "$img")" ]; }

h_log "removed while held (blkback has not opened it)"
h_libxl_add_disk 1 xvda "$img" w -
be=$H_BE
h_wait_connected "$be"
h_assert_eq 1 "$(h_loop_count_for "$img")" "loop devices while held"
h_xs remove --home "$H_HOME" --domid 1 --devid 51712 --stage destroy
h_wait_until 10 "the held loop device to go" no_loops

h_log "domain destroyed before blkback ever opened its disk (online=0, state 5)"
h_libxl_add_disk 2 xvda "$img" w -
h_wait_connected "$H_BE"
h_libxl_remove_disk 2 xvda || true
h_wait_until 10 "the loop device to go" no_loops

h_log "removed before the daemon could publish"
for ((i = 0; i < 20; i++)); do
	h_xs domain --domid 3 >/dev/null
	h_xs add --home "$H_HOME" --domid 3 --vdev xvda --params "$img" --mode w --no-script >/dev/null
	h_xs remove --home "$H_HOME" --domid 3 --devid 51712 --stage destroy
done
h_daemon_alive
h_wait_until 10 "no loop device after add/remove races" no_loops

h_log "removed after blkback opened it"
rm -f "$hold"
h_libxl_add_disk 4 xvda "$img" w -
be=$H_BE
h_wait_connected "$be"
h_wait_node "$be/state" 4
h_xs remove --home "$H_HOME" --domid 4 --devid 51712 --stage destroy
h_wait_until 10 "the loop device to go once blkback closed it" no_loops

h_log "a failed disk, then its directory goes"
h_libxl_add_disk 5 xvda "$H_TMP/no-such-file" w -
msg=$(h_wait_error "$H_BE")
case $msg in
*"domain 5 disk xvda"*"no-such-file"*"No such file or directory"*) ;;
*) h_fail "unexpected hotplug-error: $msg" ;;
esac
h_libxl_remove_disk 5 xvda || true

h_log "a whole domain directory with several disks removed at once"
for v in xvda xvdb xvdc; do
	h_libxl_add_disk 6 "$v" "$img" r -
done
h_wait_connected "$(h_be_path 6 51744)"
xenstore-rm "$H_HOME/backend/vbd/6"
h_wait_until 10 "the shared loop device to go" no_loops

h_wait_until 10 "the daemon to forget every disk" \
	bash -c "$XEN_LOOPCTL status --json | grep -q '\"disks\": *0'"
h_daemon_alive
h_daemon_stop
