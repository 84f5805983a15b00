#!/bin/bash
# What the change leaves alone, and the daemon's side of it: with the
# patched libxl, a disk with no script= still runs the stock block script
# and one with script=block-loopd runs block-loopd, and the daemon's watch
# claims neither of the stock script's disks nor the "/etc/xen/scripts/"
# that Debian's own libxl writes for script= (which then fails, as it
# always did).
. "$(dirname "$0")/lib-libxl.sh"
h_init "$@"
hl_setup
h_xl_domain 5
stock_img=$(h_sparse_file stock.img 32M)
loopd_img=$(h_sparse_file loopd.img 32M)
empty_img=$(h_sparse_file empty.img 32M)

# No script=: the stock script, run by libxl, publishes; the daemon does not.
# The stock script's `losetup -f` then `losetup DEV FILE` loses the device
# when another process on the host takes it in between (its known race):
# such an attach is detached and tried again.
be=$(hl_be 5 xvda)
for ((try = 1; ; try++)); do
	h_xl -vvv block-attach 5 "format=raw,vdev=xvda,access=rw,target=$stock_img" && break
	[ "$try" -lt 10 ] && [[ $(h_read_default "$be/hotplug-error" "") == losetup* ]] ||
		h_fail "xl block-attach of the stock script's disk exited $H_XL_RC: $(grep -v ': debug: ' "$H_XL_ERR")"
	h_log "the stock script lost its loop device to another process; again"
	h_xl_ok block-detach 5 xvda
done
grep -q 'calling hotplug script: /etc/xen/scripts/block add' "$H_XL_ERR" ||
	h_fail "libxl did not run the stock block script: $(grep -v ': debug: ' "$H_XL_ERR")"
be=$(hl_be 5 xvda)
h_assert_node "$be/script" /etc/xen/scripts/block
h_assert_node "$be/hotplug-status" connected
h_wait_node "$be/state" 4
h_assert_absent "$be/diskseq"   # the stock script does not write it; the daemon does
grep -q "$be" "$H_DAEMON_LOG" && h_fail "the daemon touched the stock script's disk: $(grep "$be" "$H_DAEMON_LOG")"

# script=block-loopd: libxl runs it, and the daemon publishes on its add.
h_xl_ok -vvv block-attach 5 "format=raw,vdev=xvdb,access=rw,script=block-loopd,target=$loopd_img"
grep -q 'calling hotplug script: /etc/xen/scripts/block-loopd add' "$H_XL_ERR" ||
	h_fail "libxl did not run block-loopd: $(grep -v ': debug: ' "$H_XL_ERR")"
h_assert_node "$(hl_be 5 xvdb)/script" /etc/xen/scripts/block-loopd
h_assert_published "$(hl_be 5 xvdb)"
h_wait_node "$(hl_be 5 xvdb)/state" 4

# Debian's own libxenlight with script=: it writes the scripts directory as
# the script, fails to run it, and the daemon leaves that disk alone.
if env -u LD_LIBRARY_PATH LD_PRELOAD="$XL_PRELOAD" "$H_XL" block-attach 5 \
	"$(hl_spec xvdc "$empty_img" w)" </dev/null >/dev/null 2>"$H_TMP/log/stock-xl.err"; then
	h_fail "Debian's libxl accepted script= empty"
fi
be=$(hl_be 5 xvdc)
h_assert_node "$be/script" /etc/xen/scripts/
sleep 0.5   # time for the daemon to act if it were going to (it must not)
h_assert_absent "$be/physical-device"
h_assert_absent "$be/hotplug-status"
h_assert_eq 0 "$(h_loop_count_for "$empty_img")" "loop devices for the unclaimed disk"
h_xl_ok block-detach 5 xvdc

h_xl_ok -vvv block-detach 5 xvdb
h_xl_ok -vvv block-detach 5 xvda
grep -q 'calling hotplug script: /etc/xen/scripts/block remove' "$H_XL_ERR" ||
	h_fail "libxl did not run the stock block script's remove"
hl_wait_no_loop "$stock_img"
hl_wait_no_loop "$loopd_img"
h_daemon_alive
h_daemon_stop
