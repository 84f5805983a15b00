#!/bin/bash
# The daemon starts before xenstored (boot order is not guaranteed): it
# answers on its control socket at once, says it waits, refuses hotplug
# requests clearly meanwhile, and serves disks from the moment xenstored
# answers.  SIGHUP makes it look at every disk again.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/lib-daemon.sh"
h_init "$@"
export XENSTORED_PATH="$H_TMP/xenstored/socket"
h_daemon_start
h_loopctl status --json | grep -q '"xenstore": *"reconnecting"' || h_fail "status does not say it waits"
rc=0
out=$(XENBUS_PATH=backend/vbd/1/51712 h_loopctl add 2>&1) || rc=$?
[ "$rc" != 0 ] || h_fail "a hotplug add succeeded without xenstored"
case $out in *"xenstored"*) ;; *) h_fail "unclear refusal without xenstored: $out" ;; esac

h_xenstored_start
h_blkback_start
h_wait_until 15 "the daemon to connect" \
	bash -c "$XEN_LOOPCTL status --json | grep -q '\"xenstore\": *\"connected\"'"
img=$(h_sparse_file disk.img 32M)
h_libxl_add_disk 1 xvda "$img" w -
h_wait_connected "$H_BE"
h_assert_published "$H_BE"

kill -HUP "$H_DAEMON_PID"
h_wait_until 10 "the SIGHUP to be taken" grep -q "SIGHUP" "$H_DAEMON_LOG"
h_daemon_alive
h_assert_eq 1 "$(grep -c "vbd/1/51712: published" "$H_DAEMON_LOG")" "times the disk was published"

h_libxl_remove_disk 1 xvda
h_wait_until 10 "the loop device to go" bash -c "[ -z \"\$(losetup -j '$img')\" ]"
h_daemon_stop
