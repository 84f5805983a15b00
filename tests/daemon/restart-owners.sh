#!/bin/bash
# What a restart gives back keeps its owner:
#   - a phy block device held for a read-only and for a w! disk has two
#     entries (one opened read-only, one read-write); after a restart each
#     disk is adopted into its own again, without the service manager's fd
#     store (the devices reopened from what xenstore publishes) and with it;
#   - an fd set a member of --group made is still that member's after a
#     restart: it may list, use and remove it, and another uid may not.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/lib-daemon.sh"
h_init "$@"
h_peer_init
h_zram_start 32M
phy=$H_PHY
h_xenstored_start
h_blkback_start
CTL="$(dirname "$0")/ctl.py"

# entries — each entry of $phy as "ACCESS USERS", users as domid:access.
entries() {
	h_loopctl list --json | python3 -c '
import json, sys
for d in json.load(sys.stdin)["devices"]:
    if d["backing"] == sys.argv[1]:
        print(d["access"], ",".join("%d:%s" % (u["domid"], u["access"]) for u in d["users"]))' "$phy" | sort
}
want="r 1:r
w 2:w!"

h_log "without a service manager: the devices are reopened from xenstore"
h_daemon_start
h_libxl_add_disk 1 xvda "$phy" r -
h_libxl_add_disk 2 xvda "$phy" 'w!' -
for d in 1 2; do
	h_wait_connected "$(h_be_path "$d" 51712)"
	h_wait_node "$(h_be_path "$d" 51712)/state" 4
done
h_assert_eq "$want" "$(entries)" "entries of $phy"
h_daemon_stop
h_daemon_start
h_wait_until 10 "both disks to be adopted" bash -c "[ \"\$($XEN_LOOPCTL list --json | grep -c '\"domid\"')\" = 2 ]"
h_assert_eq "$want" "$(entries)" "entries of $phy after a restart"
# The w! disk goes: the read-only one keeps its entry and its user.
h_libxl_remove_disk 2 xvda
h_assert_eq "r 1:r" "$(entries)" "entries of $phy once the w! disk went"
h_libxl_remove_disk 1 xvda
h_assert_eq "" "$(entries)" "entries of $phy at the end"
h_daemon_stop

h_log "with the fd store, and a member's fd set"
# blkback does not open the devices: the daemon holds them, in the store.
hold="$H_TMP/hold-off"
touch "$hold"
h_blkback_stop
h_blkback_start --hold-off "$hold"
h_systemd_user_start
h_daemon_service_start --group nogroup
img=$(h_sparse_file set.img 32M)
chown 65534:65534 "$img"
peer="$H_TMP/peer"
mkdir -m 0777 "$peer"
# replies FILE — one word per reply: ok or the error's name.
replies() { python3 -c 'import json, sys
print(" ".join("ok" if r.get("ok") else r["error"]["name"] for r in map(json.loads, open(sys.argv[1])) if r != {"held": True}))' "$1"; }
stored() { h_daemon_service_stored; }

h_libxl_add_disk 1 xvda "$phy" r -
h_libxl_add_disk 2 xvda "$phy" 'w!' -
for d in 1 2; do
	h_wait_connected "$(h_be_path "$d" 51712)"
done
h_assert_eq 2 "$(stored)" "fds in the store for $phy read-only and read-write"
# nobody passes an fd in set 30 and keeps its connection while a
# block-loopd disk of root's, waiting for its script, is set up from it.
cat >"$peer/add.req" <<EOF2
{"command": "add-fd", "args": {"fdset-id": 30}, "open": {"path": "$img", "flags": ["O_RDWR"]}}
EOF2
h_as_uid 65534 "$H_PEER_PYTHON" "$CTL" "$XEN_LOOPD_SOCKET" "$peer/add.req" "$peer/add.out" --hold "$peer/add.done" &
client=$!
h_register_pid "$client" nobody-client
h_wait_until 10 "nobody's add-fd" grep -q '"held"' "$peer/add.out"
h_assert_eq ok "$(replies "$peer/add.out")" "nobody's add-fd"
script="$H_TMP/bin/block-loopd"
mkdir -p "$H_TMP/bin"
ln -s "$BLOCK_LOOPD" "$script"
h_xs domain --domid 3 >/dev/null
h_xs add --home "$H_HOME" --domid 3 --vdev xvda --params /dev/fdset/30 --mode w --script "$script" >/dev/null
be3=$(h_be_path 3 51712)
h_wait_until 10 "disk 3's device in the store" bash -c "[ \"\$(systemctl --user show -p NFileDescriptorStore --value $H_UNIT.service)\" = 4 ]"

h_daemon_service_kill
touch "$peer/add.done"
wait "$client" || true
h_unregister_pid "$client"
# Disks 1 and 2 adopted, disk 3 set up again from set 30's fd.
h_wait_until 10 "the three disks to be back" bash -c "[ \"\$($XEN_LOOPCTL list --json | grep -c '\"domid\"')\" = 3 ]"
h_assert_eq "$want" "$(entries)" "entries of $phy after a restart through the fd store"
h_assert_eq 4 "$(stored)" "fds in the store after the restart"

cat >"$peer/after.req" <<EOF2
{"command": "query-fdsets"}
{"command": "remove-fd", "args": {"fdset-id": 30}}
EOF2
# Another uid first: the set is not its own.
h_as_uid 65533 "$H_PEER_PYTHON" "$CTL" "$XEN_LOOPD_SOCKET" "$peer/after.req" "$peer/other.out" ||
	h_fail "the client run as uid 65533 failed"
h_assert_eq "ok EPERM" "$(replies "$peer/other.out")" "uid 65533 on nobody's set after the restart"
# sets FILE — the fd sets the first reply lists.
sets() { head -n 1 "$1" | python3 -c 'import json, sys; print(" ".join(str(s["fdset-id"]) for s in json.load(sys.stdin)["result"]["fdsets"]))'; }
h_assert_eq "" "$(sets "$peer/other.out")" "uid 65533's fd sets"
h_as_uid 65534 "$H_PEER_PYTHON" "$CTL" "$XEN_LOOPD_SOCKET" "$peer/after.req" "$peer/after.out" ||
	h_fail "the client run as nobody failed"
h_assert_eq "ok ok" "$(replies "$peer/after.out")" "nobody on its set after the restart"
h_assert_eq 30 "$(sets "$peer/after.out")" "nobody's fd sets after the restart"

# The script's add: disk 3 is published from the device it was prepared with.
h_run_hotplug "$script" add 3 51712 || h_fail "block-loopd add for disk 3 failed"
h_wait_connected "$be3"
rm -f "$hold"
for d in 1 2 3; do
	h_wait_node "$(h_be_path "$d" 51712)/state" 4
done
for d in 1 2 3; do
	h_libxl_remove_disk "$d" xvda
done
h_assert_eq "" "$(entries)" "entries of $phy at the end"
h_wait_until 10 "the store to empty" bash -c "[ \"\$(systemctl --user show -p NFileDescriptorStore --value $H_UNIT.service)\" = 0 ]"
h_wait_until 10 "every loop device to go" bash -c "[ -z \"\$(losetup -a | grep '$H_TMP')\" ]"
