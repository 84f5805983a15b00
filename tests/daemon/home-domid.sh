#!/bin/bash
# Where the daemon serves: its own domain's home, from its `domid` node.
# While that node is missing it waits (dom0's is written at boot), and it
# never guesses dom0's home: in a driver domain that would serve another
# domain's backends.  --home names the home outright.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/lib-daemon.sh"
h_init "$@"
h_xenstored_start
h_blkback_start
img=$(h_sparse_file disk.img 16M)

home_of() { "$XEN_LOOPCTL" status --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["home"])'; }

h_log "no domid node yet: nothing is served"
xenstore-rm /local/domain/0/domid
h_daemon_start
h_wait_until 10 "the daemon to say it waits" grep -q "domid is not in xenstore yet" "$H_DAEMON_LOG"
h_libxl_add_disk 1 xvda "$img" r -
h_assert_eq "" "$(home_of)" "home while the domid is missing"
h_assert_absent "$H_BE/hotplug-status"
h_log "the node appears: the disks are served"
xenstore-write /local/domain/0/domid 0
h_wait_connected "$H_BE"
h_assert_eq /local/domain/0 "$(home_of)" "home"
h_libxl_remove_disk 1 xvda
h_daemon_stop

h_log "--home: no domid needed"
xenstore-rm /local/domain/0/domid
h_daemon_start --home /local/domain/0
h_assert_eq /local/domain/0 "$(home_of)" "home with --home"
h_libxl_add_disk 2 xvda "$img" r -
h_wait_connected "$H_BE"
h_libxl_remove_disk 2 xvda
h_daemon_stop
h_assert_no_loops
h_log "ok"
