#!/bin/bash
# A backing file whose open does not return (a network file system that
# stopped answering) costs a bounded wait: the disk fails with a message
# saying so, other disks and the control socket go on, and the open, when
# it finally returns, leaves nothing behind.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/../daemon/lib-daemon.sh"
h_init "$@"
h_xenstored_start
h_blkback_start
flag="$H_TMP/hanging"
touch "$flag"
h_on_cleanup "rm -f '$flag'"
# The preload is not instrumented: under ASan it cannot come first.
LD_PRELOAD=$HANG_OPEN_PRELOAD HANG_OPEN_WHILE=$flag \
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
	h_daemon_start --open-timeout 1
slow=$(h_sparse_file hang/slow.img 16M)
good=$(h_sparse_file good.img 16M)

opens_of() { find "/proc/$H_DAEMON_PID/fd" -lname "$1" 2>/dev/null | wc -l; }

h_log "an open that hangs fails the disk, after the timeout"
h_libxl_add_disk 1 xvda "$slow" w -
h_wait_node "$H_BE/hotplug-status" error 20
err=$(h_read "$H_BE/hotplug-error")
h_log "hotplug-error: $err"
case $err in
*"did not finish in time"*) ;;
*) h_fail "hotplug-error does not say the open hung: $err" ;;
esac
h_assert_absent "$H_BE/physical-device"
timeout -s KILL 5 "$XEN_LOOPCTL" status >/dev/null || h_fail "the control socket does not answer"

h_log "other disks go on meanwhile"
h_libxl_add_disk 2 xvda "$good" w -
h_wait_connected "$H_BE"

h_log "the open returns at last: closed, nothing held"
rm "$flag"
h_wait_until 10 "the late open to be closed" test "$(opens_of "$slow")" = 0
h_assert_eq 0 "$(losetup -j "$slow" | wc -l)" "loop devices for the slow image"
h_libxl_remove_disk 1 xvda || true
h_libxl_add_disk 3 xvda "$slow" w -
h_wait_connected "$H_BE"
h_libxl_remove_disk 3 xvda
h_libxl_remove_disk 2 xvda
h_daemon_stop
h_assert_no_loops
h_log "ok"
