#!/bin/bash
# Refusals with script= empty reach the user through xl, in the daemon's
# words: a read-write conflict (hotplug-status busy, as the stock script
# says it) and a missing file (error) fail xl block-attach at once (not
# after libxl's 40 s), with hotplug-error in xl's message; the
# disk that holds the image is unharmed, and detaching the failed disks
# leaves nothing behind.
. "$(dirname "$0")/lib-libxl.sh"
h_init "$@"
hl_setup
h_xl_domain 5
h_xl_domain 6

# hl_refused DOMID VDEV PATH MODE STATUS — xl block-attach fails; the
# backend says STATUS, and xl's stderr carries its hotplug-error.
hl_refused() {
	local be status err
	if h_xl -vvv block-attach "$1" "$(hl_spec "$2" "$3" "$4")"; then
		h_fail "xl block-attach $1 $2 ($3, $4) succeeded; it must be refused"
	fi
	be=$(hl_be "$1" "$2")
	status=$(h_read "$be/hotplug-status") || h_fail "$be/hotplug-status is absent"
	h_assert_eq "$5" "$status" "hotplug-status of the refused disk"
	err=$(h_read "$be/hotplug-error") || h_fail "$be/hotplug-error is absent"
	[ -n "$err" ] || h_fail "$be/hotplug-error is empty"
	grep -F -- "hotplug-status $status: $err" "$H_XL_ERR" | grep -q 'error:' ||
		h_fail "xl's error lacks the daemon's message \"$err\": $(grep -v ': debug: ' "$H_XL_ERR")"
	if grep -q 'timed out' "$H_XL_ERR"; then
		h_fail "xl timed out instead of reading hotplug-status: $(grep -v ': debug: ' "$H_XL_ERR")"
	fi
	hl_assert_no_script
	h_log "refused as expected: $err"
}

img=$(h_sparse_file rw.img 64M)
hl_attach 5 xvda "$img" w

# Another domain, read-write or read-only, while domain 5 writes.
hl_refused 6 xvda "$img" w busy
hl_refused 6 xvdb "$img" r busy
h_assert_eq 1 "$(h_loop_count_for "$img")" "loop devices for the image"
h_assert_published "$(hl_be 5 xvda)"

# A file that does not exist: libxl does not look at the target of a disk
# with a script, so the daemon is the one to tell.
hl_refused 6 xvdc "$H_TMP/images/missing.img" w error
h_assert_absent "$(hl_be 6 xvdc)/physical-device"

# The failed disks detach cleanly; domain 5's is untouched.
hl_detach 6 xvda
hl_detach 6 xvdb
hl_detach 6 xvdc
h_assert_published "$(hl_be 5 xvda)"
hl_detach 5 xvda
hl_wait_no_loop "$img"
h_daemon_alive
h_daemon_stop
