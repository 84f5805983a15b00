#!/bin/bash
# libxl's side of the contract, with a stand-in for the helper instead of
# the daemon: for a disk with script= empty, xl block-attach waits for
# hotplug-status; "busy" fails it with hotplug-error in xl's message, and
# "connected" written late (after blkback reached InitWait) succeeds.
. "$(dirname "$0")/lib-libxl.sh"
h_init "$@"
hl_setup --no-daemon
h_xl_domain 5
img=$(h_sparse_file one.img 16M)

# hl_attach_bg VDEV — xl block-attach in the background, its stderr in
# $XL_ERR; sets XL_PID.
hl_attach_bg() {
	XL_ERR=$H_TMP/log/xl-attach-$1.err
	timeout -k 5 120 env LD_PRELOAD="$XL_PRELOAD" "$H_XL" -vvv block-attach 5 "$(hl_spec "$1" "$img" w)" \
		</dev/null >/dev/null 2>"$XL_ERR" &
	XL_PID=$!
	h_register_pid "$XL_PID" "xl block-attach"
}

# Busy: what the stock script writes for an image in use elsewhere.
hl_attach_bg xvda
be=$(hl_be 5 xvda)
h_wait_node "$be/state" 2
h_assert_node "$be/script" ""
xenstore-write "$be/hotplug-error" "xvda: the image is in use elsewhere" "$be/hotplug-status" busy
rc=0
wait "$XL_PID" || rc=$?
h_unregister_pid "$XL_PID"
[ "$rc" != 0 ] || h_fail "xl block-attach succeeded on hotplug-status busy"
grep -F 'hotplug-status busy: xvda: the image is in use elsewhere' "$XL_ERR" | grep -q 'error:' ||
	h_fail "xl's error lacks hotplug-error: $(grep -v ': debug: ' "$XL_ERR")"
hl_assert_no_script "$XL_ERR"
h_xl_ok block-detach 5 xvda
h_assert_absent "$be"

# Connected, written by hand a moment after InitWait: xl waits for it.
hl_attach_bg xvdb
be=$(hl_be 5 xvdb)
h_wait_node "$be/state" 2
sleep 0.5
h__pid_alive "$XL_PID" || h_fail "xl returned before hotplug-status was written"
xenstore-write "$be/hotplug-status" connected
rc=0
wait "$XL_PID" || rc=$?
h_unregister_pid "$XL_PID"
[ "$rc" = 0 ] || h_fail "xl block-attach failed on hotplug-status connected: $(grep -v ': debug: ' "$XL_ERR")"
hl_assert_no_script "$XL_ERR"
h_xl_ok block-detach 5 xvdb
h_assert_absent "$be"
