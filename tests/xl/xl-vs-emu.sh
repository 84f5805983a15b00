#!/bin/bash
# The libxl emulation (libxl-emu.c through xs-libxl; the benchmark's
# concurrent domain starts use it) against Debian's real xl: the same disks,
# attached and detached by each in turn, must leave the same xenstore
# nodes, node by node, values and permissions: the frontend, the backend
# and libxl's own copy after the attach, and what is left after the detach.
#
# Both run block-loopd through xen-loopd, as the benchmark does; the nodes
# the daemon and blkback write are compared too (their values that name a
# particular loop device are masked).
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/../harness/lib-xl.sh"
. "$(dirname "$0")/../daemon/lib-daemon.sh"
h_init "$@"
h_xenstored_start
h_xl_init
h_xl_blkback_start running
h_daemon_start

img=$(h_sparse_file disk.img 64M)
D=5
h_xl_domain "$D"
SNAPS="$H_TMP/snaps"
mkdir -p "$SNAPS"

# snap NAME — every node of domain D's disks, with its permissions, one
# line each: "path = "value"  (perms)", sorted, into $SNAPS/NAME.
snap() {
	local p
	for p in "/local/domain/$D/device" /local/domain/0/backend "/libxl/$D"; do
		h_exists "$p" || continue
		xenstore-ls -fp "$p"
	done | sed -E 's#^(.*/(physical-device|physical-device-path|node|diskseq)) = "[^"]*"#\1 = "<a loop device>"#' |
		sort >"$SNAPS/$1"
}

# same WHAT — the two snapshots of WHAT agree, or the differences are shown.
same() {
	if ! diff -u "$SNAPS/xl-$1" "$SNAPS/emu-$1" >"$SNAPS/$1.diff"; then
		cat "$SNAPS/$1.diff" >&2
		h_fail "the libxl emulation differs from the real xl $1 (- xl, + emulation)"
	fi
	h_log "$1: $(wc -l <"$SNAPS/xl-$1") nodes agree"
}

# connected — the backend and the guest's frontend (the emulator writes
# its state 4 after the backend's) are both Connected.
connected() {
	h_wait_node "$be/state" 4
	h_wait_node "$fe/state" 4
}

for mode in w r; do
	be=$(h_xl_be "$D" xvdb)
	fe=/local/domain/$D/device/vbd/$(h_devid xvdb)

	h_log "mode $mode: the real xl"
	h_xl_ok block-attach "$D" "$(h_xl_disk_spec xvdb "$img" "$mode" block-loopd)"
	connected
	snap "xl-attach-$mode"
	h_xl_ok block-detach "$D" xvdb
	h_wait_until 5 "the loop device to go" eval '[ "$(h_loop_count_for "$img")" = 0 ]'
	snap "xl-detach-$mode"

	h_log "mode $mode: the emulation"
	h_libxl_add_disk "$D" xvdb "$img" "$mode" block-loopd -- --pv || h_fail "the emulation's attach failed"
	connected
	snap "emu-attach-$mode"
	h_libxl_remove_disk "$D" xvdb || h_fail "the emulation's detach failed"
	h_wait_until 5 "the loop device to go" eval '[ "$(h_loop_count_for "$img")" = 0 ]'
	snap "emu-detach-$mode"

	same "attach-$mode"
	same "detach-$mode"
done
h_daemon_stop
h_assert_no_loops
