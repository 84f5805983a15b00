#!/bin/bash
# With nothing in the backend domain to serve a disk with script= empty,
# xl block-attach gives up as it would on a hung script (libxl's 40 s
# limit), says it timed out waiting for hotplug-status, and the disk can be
# detached.
. "$(dirname "$0")/lib-libxl.sh"
h_init "$@"
hl_setup --no-daemon
h_xl_domain 5
img=$(h_sparse_file one.img 16M)

if h_xl -vvv block-attach 5 "$(hl_spec xvda "$img" w)"; then
	h_fail "xl block-attach succeeded with nothing to serve the disk"
fi
be=$(hl_be 5 xvda)
grep "timed out waiting for $be/hotplug-status" "$H_XL_ERR" | grep -q 'error:' ||
	h_fail "xl does not say it timed out on hotplug-status: $(grep -v ': debug: ' "$H_XL_ERR")"
hl_assert_no_script
h_assert_node "$be/script" ""
h_assert_absent "$be/hotplug-status"
h_xl_ok block-detach 5 xvda
h_assert_absent "$be"
h_assert_eq 0 "$(h_loop_count_for "$img")" "loop devices for the image"
