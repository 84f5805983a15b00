#!/bin/bash
# xenstored goes away under the daemon and comes back.  Empty, as a fresh
# xenstored is: the daemon reconnects by itself, lets go of the disks whose
# backends are gone, and serves new disks.  With its contents, as a
# restarted xenstored that kept its state is: the daemon resynchronises from
# them and the devices it still holds, publishes nothing again and drops
# nothing in use.
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

h_log "xenstored comes back with its contents"
touch "$H_TMP/hold"
h_blkback_stop
h_blkback_start --hold-off "$H_TMP/hold"
h_libxl_add_disk 2 xvda "$img" r -
be_a=$H_BE
h_libxl_add_disk 3 xvda "$img" r -
be_b=$H_BE
h_wait_connected "$be_a"
h_wait_connected "$be_b"
seen_a=$(h_read "$be_a/physical-device"):$(h_read "$be_a/diskseq")
seen_b=$(h_read "$be_b/physical-device"):$(h_read "$be_b/diskseq")
# Hold the daemon still while the store is swapped, so that it sees the
# old connection die and the same contents come back.
h_blkback_stop
xenstore-ls -f /local/domain >"$H_TMP/store.dump"
kill -STOP "$H_DAEMON_PID"
h_xenstored_restart
while IFS= read -r line; do
	path=${line%% = *}
	value=${line#* = \"}
	value=${value%\"}
	xenstore-write "$path" "$value"
done <"$H_TMP/store.dump"
kill -CONT "$H_DAEMON_PID"
h_wait_until 15 "the daemon to reconnect" \
	bash -c "$XEN_LOOPCTL status --json | grep -q '\"xenstore\": *\"connected\"'"
grep -q "Connected to xenstored again" "$H_DAEMON_LOG" || h_fail "the daemon did not notice the restart"
h_assert_eq "$seen_a" "$(h_read "$be_a/physical-device"):$(h_read "$be_a/diskseq")" "disk a after the restart"
h_assert_eq "$seen_b" "$(h_read "$be_b/physical-device"):$(h_read "$be_b/diskseq")" "disk b after the restart"
h_assert_published "$be_a"
h_assert_eq 1 "$(h_loop_count_for "$img")" "loop devices of the image after the restart"
h_assert_eq 2 "$(h_loopctl list --json | grep -c '"holding": *true')" "disks still held for blkback"
h_assert_eq 1 "$(grep -c "vbd/2/51712: published" "$H_DAEMON_LOG")" "times disk a was published"
xenstore-rm "$H_HOME/backend/vbd/2" "$H_HOME/backend/vbd/3"
h_wait_until 10 "the held device to go" bash -c "[ -z \"\$(losetup -j '$img')\" ]"
h_daemon_alive
h_daemon_stop
