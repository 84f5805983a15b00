#!/bin/bash
# Restart survival under a real service manager: xen-loopd runs as a
# Type=notify service with an fd store and automatic restarts.  It is killed
# (-9) right after LOOP_CONFIGURE, right after publishing, and while it holds
# devices for a blkback that has not opened them; then stopped with SIGTERM.
# Each time the restarted daemon takes its devices back: none leaked, none
# lost, nothing published anew; once blkback opens and then closes them,
# every loop device is gone and the fd store is empty.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/lib-daemon.sh"
h_init "$@"
h_xenstored_start
hold="$H_TMP/hold-off"
touch "$hold"
h_blkback_start --hold-off "$hold"
h_systemd_user_start
H_DAEMON_BIN=$XEN_LOOPD_CRASH
h_daemon_service_start

a=$(h_sparse_file a.img 32M)
shared=$(h_sparse_file shared.img 32M)

# What is published for a disk, to compare across restarts.
snapshot() {
	printf '%s %s %s' "$(h_read "$1/physical-device")" "$(h_read "$1/physical-device-path")" \
		"$(h_read "$1/diskseq")"
}

wait_restart() {
	h_wait_until 15 "xen-loopd to come back" h_daemon_service_restarted "$1"
}

# check_all — every disk still published as before, each device still there
# once, held by the daemon for the blkback that has not opened it.
check_all() {
	h_assert_eq "$snap_a" "$(snapshot "$be_a")" "disk a after $1"
	h_assert_eq "$snap_b" "$(snapshot "$be_b")" "disk b after $1"
	h_assert_eq "$snap_b" "$(snapshot "$be_c")" "disk c after $1"
	h_assert_published "$be_a"
	h_assert_published "$be_b"
	h_assert_eq 1 "$(h_loop_count_for "$a")" "loop devices of a.img after $1"
	h_assert_eq 1 "$(h_loop_count_for "$shared")" "loop devices of shared.img after $1"
	h_assert_eq 2 "$(h_loopctl list --json | grep -c '"held": *true')" "held devices after $1"
	h_assert_eq 3 "$(h_loopctl list --json | grep -c '"holding": *true')" "holding users after $1"
	h_assert_eq 2 "$(h_daemon_service_stored)" "fds in the store after $1"
}

h_log "killed right after LOOP_CONFIGURE, before publishing"
pid=$(h_daemon_service_pid)
h_arm_crash after-configure
h_libxl_add_disk 1 xvda "$a" w -
be_a=$H_BE
wait_restart "$pid"
h_crash_fired after-configure || h_fail "the crash point was not reached"
h_wait_connected "$be_a"
h_assert_published "$be_a"
h_assert_eq 1 "$(h_loop_count_for "$a")" "loop devices of a.img after the crash"
snap_a=$(snapshot "$be_a")

h_log "killed right after publishing"
pid=$(h_daemon_service_pid)
h_arm_crash after-publish
h_libxl_add_disk 2 xvda "$shared" r -
be_b=$H_BE
wait_restart "$pid"
h_crash_fired after-publish || h_fail "the crash point was not reached"
h_wait_connected "$be_b"
snap_b=$(snapshot "$be_b")
grep -q "adopted" "$H_DAEMON_LOG" || h_fail "the restarted daemon did not adopt the published disk"

h_libxl_add_disk 3 xvda "$shared" r -
be_c=$H_BE
h_wait_connected "$be_c"
check_all "the crashes"

h_log "killed while holding devices for blkback"
pid=$(h_daemon_service_pid)
kill -KILL "$pid"
wait_restart "$pid"
check_all "kill -9 while held"

h_log "stopped with SIGTERM while holding devices"
pid=$(h_daemon_service_pid)
systemctl --user kill -s TERM "$H_UNIT.service"
wait_restart "$pid"
check_all "SIGTERM while held"

h_log "blkback opens the devices: the daemon lets go of them"
rm -f "$hold"
for be in "$be_a" "$be_b" "$be_c"; do
	h_wait_node "$be/state" 4
done
h_wait_until 10 "the daemon to hold nothing" \
	bash -c "[ \"\$($XEN_LOOPCTL list --json | grep -c '\"held\": *true')\" = 0 ]"
h_wait_until 10 "the fd store to empty" bash -c "[ \"\$(systemctl --user show -p NFileDescriptorStore --value $H_UNIT.service)\" = 0 ]"

h_log "teardown: every loop device goes once blkback closes it"
h_libxl_remove_disk 1 xvda
h_libxl_remove_disk 2 xvda
h_libxl_remove_disk 3 xvda
h_wait_until 10 "every loop device to go" bash -c "[ -z \"\$(losetup -a | grep '$H_TMP')\" ]"
systemctl --user stop "$H_UNIT.service"
