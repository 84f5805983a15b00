#!/bin/bash
# xl block-attach / block-detach of a disk with script= empty, with the
# patched libxl: no script runs, xen-loopd's watch sets the disk up, xl
# returns once hotplug-status is connected, and detach leaves nothing.
. "$(dirname "$0")/lib-libxl.sh"
h_init "$@"
hl_setup
h_xl_domain 5

img=$(h_sparse_file one.img 64M)
hl_attach 5 xvda "$img" w
be=$(hl_be 5 xvda)
# xl returned after the publication, not before: the device model's node is
# there when xl is done.
h_assert_published "$be"
h_assert_node "$be/params" "$img"
h_wait_node "$be/state" 4
h_assert_absent "$be/hotplug-error"
h_assert_eq 1 "$(h_loop_count_for "$img")" "loop devices for the image"
h_xl_ok block-list 5
grep -q '^51712 ' "$H_XL_OUT" || h_fail "xl block-list 5 does not show the disk: $(cat "$H_XL_OUT")"

# Detach: libxl's teardown, no script, and the daemon lets go.
hl_detach 5 xvda
hl_wait_no_loop "$img"
h_assert_absent "/libxl/5/device/vbd/51712"
h_assert_absent /local/domain/5/device/vbd/51712

# The same disk again: a clean second round.
hl_attach 5 xvda "$img" r
h_assert_published "$(hl_be 5 xvda)"
h_wait_node "$(hl_be 5 xvda)/state" 4
hl_detach 5 xvda
hl_wait_no_loop "$img"
h_daemon_alive
h_daemon_stop
