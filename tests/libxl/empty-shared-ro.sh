#!/bin/bash
# Read-only sharing across domains with script= empty: three guests attach
# one image read-only through xl and share one loop device; it stays until
# the last of them detaches.
. "$(dirname "$0")/lib-libxl.sh"
h_init "$@"
hl_setup

img=$(h_sparse_file base.img 64M)
first=
for d in 5 6 7; do
	h_xl_domain "$d"
	hl_attach "$d" xvda "$img" r
	be=$(hl_be "$d" xvda)
	h_assert_published "$be"
	h_wait_node "$be/state" 4
	pd=$(h_read "$be/physical-device")
	[ -n "$first" ] || first=$pd
	h_assert_eq "$first" "$pd" "physical-device of domain $d"
done
h_assert_eq 1 "$(h_loop_count_for "$img")" "loop devices for three read-only users"

hl_detach 6 xvda
hl_detach 5 xvda
h_assert_eq 1 "$(h_loop_count_for "$img")" "loop devices while one user remains"
h_assert_published "$(hl_be 7 xvda)"
hl_detach 7 xvda
hl_wait_no_loop "$img"
h_daemon_alive
h_daemon_stop
