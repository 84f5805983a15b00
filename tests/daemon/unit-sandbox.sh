#!/bin/bash
# The installed unit (hotplug/xen-loopd.service) against what a disk may
# name: systemd-analyze verify finds nothing to say about it, and the
# daemon, run under a real service manager with every [Service] setting the
# unit has, reaches images under /tmp and /home (read-write), which the
# stock block script can use too.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/lib-daemon.sh"
h_init "$@"
unit=${XEN_LOOPD_UNIT:-}
[ -f "$unit" ] || h_fail "the built unit is missing (XEN_LOOPD_UNIT=${XEN_LOOPD_UNIT:-unset})"
command -v systemd-analyze >/dev/null || h_skip "systemd-analyze is missing (package systemd)"

h_log "systemd-analyze verify"
mkdir -p "$H_TMP/unit"
sed "s|^ExecStart=[^ ]*|ExecStart=$XEN_LOOPD|" "$unit" >"$H_TMP/unit/xen-loopd.service"
cp "$(dirname "$unit")/xen-loopd.socket" "$H_TMP/unit/"
out=$(systemd-analyze verify --man=no "$H_TMP/unit/xen-loopd.service" 2>&1) ||
	h_fail "systemd-analyze verify failed: $out"
[ -z "$out" ] || h_fail "systemd-analyze verify complains: $out"

# The unit's [Service] settings, but for those the test's service sets
# itself (how it starts, restarts and stores fds).
H_DAEMON_SERVICE_PROPS=()
while IFS= read -r line; do
	case $line in
	'' | '#'* | ExecStart=* | Type=* | Restart=* | RestartSec=* | FileDescriptorStoreMax=*) continue ;;
	esac
	H_DAEMON_SERVICE_PROPS+=(-p "$line")
done < <(sed -n '/^\[Service\]/,/^\[/{/^\[/d;p}' "$unit")
h_log "unit settings: ${H_DAEMON_SERVICE_PROPS[*]}"
[ "${#H_DAEMON_SERVICE_PROPS[@]}" -gt 0 ] || h_fail "no [Service] setting read from $unit"

# /home is a tmpfs of the test's own mount namespace: the host's stays
# untouched.  /tmp is the host's: the image there is the test's own.
mount -t tmpfs -o mode=0755 tmpfs /home
h_on_cleanup "umount -l /home"
tmpdir=$(mktemp -d /tmp/xen-loopd-unit.XXXXXX)
h_on_cleanup "rm -rf '$tmpdir'"
mkdir -p /home/guest
truncate -s 32M "$tmpdir/tmp.img" /home/guest/home.img

h_xenstored_start
h_blkback_start
h_systemd_user_start
h_daemon_service_start

h_libxl_add_disk 1 xvda "$tmpdir/tmp.img" w -
be_tmp=$H_BE
h_libxl_add_disk 2 xvda /home/guest/home.img w -
be_home=$H_BE
for be in "$be_tmp" "$be_home"; do
	h_wait_until 10 "$be to be published" bash -c "[ \"\$(xenstore-read '$be/hotplug-status' 2>/dev/null)\" != '' ]"
	st=$(h_read "$be/hotplug-status")
	[ "$st" = connected ] || h_fail "$be: hotplug-status $st: $(h_read_default "$be/hotplug-error" '')"
	h_assert_published "$be"
done
h_assert_eq 1 "$(h_loop_count_for "$tmpdir/tmp.img")" "loop devices of the image under /tmp"
h_assert_eq 1 "$(h_loop_count_for /home/guest/home.img)" "loop devices of the image under /home"

h_libxl_remove_disk 1 xvda
h_libxl_remove_disk 2 xvda
h_wait_until 10 "every loop device to go" \
	bash -c "[ -z \"\$(losetup -j '$tmpdir/tmp.img')\" ] && [ -z \"\$(losetup -j /home/guest/home.img)\" ]"
systemctl --user stop "$H_UNIT.service"
