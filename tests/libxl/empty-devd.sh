#!/bin/bash
# A driver domain with script= empty: xl devd (the patched libxl, playing
# domain 3) runs no script and waits for hotplug-status from the daemon
# serving domain 3's backends; dom0's xl block-attach / block-detach go
# through it as with a script.
. "$(dirname "$0")/lib-libxl.sh"
h_init "$@"
DD=3
h_xenstored_start
h_blkback_start --home /local/domain/$DD
h_daemon_start --home /local/domain/$DD
h_xl_init
hl_use_patched_libxl
h_xl_domain $DD driver
h_xl_domain 5
XL_PRELOAD_SELF_DOMID=$DD h_xl_devd_start

img=$(h_sparse_file dd.img 64M)
be=$(hl_be 5 xvda $DD)
h_xl_ok -vvv block-attach 5 "$(hl_spec xvda "$img" w "backend=$DD,")"
hl_assert_no_script
h_assert_node "$be/script" ""
# dom0's libxl does not wait for a driver domain's disks; devd does.
h_wait_connected "$be"
h_assert_published "$be"
h_wait_node "$be/state" 4
h_wait_until 10 "xl devd to see hotplug-status" grep -q "wpath=$be/hotplug-status" "$H_XL_DEVD_LOG"
hl_assert_no_script "$H_XL_DEVD_LOG"
grep -q "unable to add device" "$H_XL_DEVD_LOG" && h_fail "xl devd failed the disk: $(grep 'error:' "$H_XL_DEVD_LOG")"

# A refusal in the driver domain is xl devd's error, in the daemon's words.
h_xl_domain 6
h_xl_ok -vvv block-attach 6 "$(hl_spec xvda "$img" w "backend=$DD,")"
be6=$(hl_be 6 xvda $DD)
h_wait_node "$be6/hotplug-status" busy
err=$(h_read "$be6/hotplug-error")
h_wait_until 10 "xl devd to log the refusal" grep -qF "hotplug-status busy: $err" "$H_XL_DEVD_LOG"

h_xl_ok -vvv block-detach 6 xvda
h_assert_absent "$be6"
h_xl_ok -vvv block-detach 5 xvda
hl_assert_no_script
h_assert_absent "$be"
hl_wait_no_loop "$img"
hl_assert_no_script "$H_XL_DEVD_LOG"
h__pid_alive "$H_XL_DEVD_PID" || h_fail "xl devd exited (log: $H_XL_DEVD_LOG)"
h_xl_devd_stop
h_daemon_alive
h_daemon_stop
