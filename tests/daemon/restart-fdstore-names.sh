#!/bin/bash
# Every fd in the fd store has a name of its own, as FDSTOREREMOVE drops
# every fd of a name:
#   - one phy device held for a read-only and for a w! disk: the w! disk
#     goes, the read-only disk's fd stays in the store;
#   - an fd-set fd taken back after a restart, and a new fd of its set
#     given the fd number it had before: removing the new one leaves the
#     taken-back one stored;
#   - the names an older xen-loopd gave ("dev-<maj>-<min>-<diskseq>", and
#     one name for two fds of a set) are understood after an upgrade, and
#     each fd stored again under a name of its own.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/lib-daemon.sh"
h_init "$@"
command -v python3 >/dev/null || h_skip "python3 is missing (the fd-passing client)"
h_zram_start 32M
phy=$H_PHY
h_xenstored_start
hold="$H_TMP/hold-off"
touch "$hold"
h_blkback_start --hold-off "$hold"
h_systemd_user_start
# The daemon runs as the service's main process through a wrapper that logs
# the names the store hands back, and can make them an older daemon's.
names_log="$H_TMP/log/fdstore-names"
legacy="$H_TMP/legacy.armed"
cat >"$H_TMP/xen-loopd-wrap" <<EOF2
#!/bin/bash
exec python3 '$(cd "$(dirname "$0")" && pwd)/fdstore-legacy.py' '$names_log' '$legacy' '$XEN_LOOPD' "\$@"
EOF2
chmod +x "$H_TMP/xen-loopd-wrap"
H_DAEMON_BIN="$H_TMP/xen-loopd-wrap"
h_daemon_service_start

stored() { h_daemon_service_stored; }
restart() { h_daemon_service_kill; }
held() { h_loopctl list --json | grep -c '"held": *true' || true; }

h_log "one phy device held for a read-only and for a w! disk"
h_libxl_add_disk 1 xvda "$phy" r -
be1=$H_BE
h_wait_connected "$be1"
h_libxl_add_disk 2 xvda "$phy" 'w!' -
be2=$H_BE
h_wait_connected "$be2"
h_assert_eq 2 "$(held)" "entries holding $phy"
h_assert_eq 2 "$(stored)" "fds in the store for $phy read-only and read-write"
h_libxl_remove_disk 2 xvda || true
h_wait_until 10 "the w! disk to be let go" bash -c "[ \"\$($XEN_LOOPCTL list --json | grep -c '\"held\": *true')\" = 1 ]"
h_assert_eq 1 "$(stored)" "fds in the store once the w! disk went"
restart
h_assert_eq 1 "$(held)" "entries holding $phy after a restart"
h_assert_eq 1 "$(stored)" "fds in the store after a restart"

h_log "an fd-set fd taken back, and a new fd of its set with its old fd number"
img=$(h_sparse_file set.img 32M)
python3 - "$XEN_LOOPD_SOCKET" "$img" "$H_TMP/set" <<'PY' &
import json, os, socket, sys, time
# 30 fds in set 6 first, on a connection of their own that closes before
# the restart, so that set 5's fd gets a number that the next run, with
# fewer fds, reaches with a few new ones.
other = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
other.connect(sys.argv[1])
sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
sock.connect(sys.argv[1])
for i in range(31):
    s = other if i < 30 else sock
    fd = os.open(sys.argv[2], os.O_RDWR | os.O_CLOEXEC)
    socket.send_fds(s, [json.dumps({"xen-loopd": 1, "id": i + 1, "command": "add-fd",
                                    "args": {"fdset-id": 6 if i < 30 else 5}}).encode()], [fd])
    os.close(fd)
    r = json.loads(s.recv(65536))
    assert r["ok"], r
other.close()
open(sys.argv[3] + ".fd", "w").write(str(r["result"]["fd"]))
while not os.path.exists(sys.argv[3] + ".go"):
    time.sleep(0.02)
PY
client=$!
h_register_pid "$client" fdset-client
h_wait_until 10 "the fd to be added" test -s "$H_TMP/set.fd"
old_fd=$(cat "$H_TMP/set.fd")
# A block-loopd disk that libxl has not yet run the script for: the daemon
# sets it up from the set at once, publishes it only when asked, and uses
# the set's fd (taken back after a restart) until then.
script="$H_TMP/bin/block-loopd"
mkdir -p "$H_TMP/bin"
ln -s "$BLOCK_LOOPD" "$script"
h_xs domain --domid 3 >/dev/null
h_xs add --home "$H_HOME" --domid 3 --vdev xvda --params /dev/fdset/5 --mode w --script "$script" >/dev/null
be3=$(h_be_path 3 51712)
h_wait_until 10 "disk 3's device in the store" bash -c "[ \"\$(systemctl --user show -p NFileDescriptorStore --value $H_UNIT.service)\" = 3 ]"
restart
touch "$H_TMP/set.go"
wait "$client" || true
h_unregister_pid "$client"
h_assert_eq 3 "$(stored)" "fds in the store after a restart: $phy, the set's fd, disk 3's device"
# New fds in set 5 until one has the number the taken-back fd had; then
# that one is removed.  Its fd store entry alone must go.
python3 - "$XEN_LOOPD_SOCKET" "$img" "$old_fd" "$H_TMP/new" <<'PY' &
import json, os, socket, sys, time
sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
sock.connect(sys.argv[1])
base = os.open(sys.argv[2], os.O_RDONLY | os.O_CLOEXEC)
n = 0
def call(cmd, args, fd=None):
    global n
    n += 1
    socket.send_fds(sock, [json.dumps({"xen-loopd": 1, "id": n, "command": cmd, "args": args}).encode()],
                    [fd] if fd is not None else [])
    r = json.loads(sock.recv(65536))
    assert r["ok"], r
    return r["result"]
added = 0
while True:
    fd = os.open(f"/proc/self/fd/{base}", os.O_RDONLY | os.O_CLOEXEC)
    num = call("add-fd", {"fdset-id": 5}, fd)["fd"]
    os.close(fd)
    added += 1
    if num == int(sys.argv[3]):
        break
    if added == 60:
        sys.exit(f"no new fd got number {sys.argv[3]}")
open(sys.argv[4] + ".added", "w").write(str(added))
while not os.path.exists(sys.argv[4] + ".remove"):
    time.sleep(0.02)
call("remove-fd", {"fdset-id": 5, "fd": num})
open(sys.argv[4] + ".removed", "w").close()
while not os.path.exists(sys.argv[4] + ".go"):
    time.sleep(0.02)
PY
client=$!
h_register_pid "$client" fdset-client
h_wait_until 10 "new fds in set 5" test -s "$H_TMP/new.added"
added=$(cat "$H_TMP/new.added")
h_log "fd $old_fd came again as the ${added}th new fd of set 5"
h_assert_eq $((3 + added)) "$(stored)" "fds in the store with the new fds"
touch "$H_TMP/new.remove"
h_wait_until 10 "the new fd to be removed" test -e "$H_TMP/new.removed"
h_assert_eq $((3 + added - 1)) "$(stored)" "fds in the store once the new fd with the old number went"
touch "$H_TMP/new.go"
wait "$client" || h_fail "the fd-set client failed"
h_unregister_pid "$client"
h_wait_until 10 "the client's fds to leave the store" bash -c "[ \"\$(systemctl --user show -p NFileDescriptorStore --value $H_UNIT.service)\" = 3 ]"
h_run_hotplug "$script" add 3 51712 || h_fail "block-loopd add for disk 3 failed"
h_wait_connected "$be3"
h_libxl_remove_disk 3 xvda || true
h_wait_until 10 "disk 3 and its fd to leave the store" bash -c "[ \"\$(systemctl --user show -p NFileDescriptorStore --value $H_UNIT.service)\" = 1 ]"

h_log "an older daemon's names: no access in a device's, one name for two fds of a set"
imga=$(h_sparse_file a.img 32M)
imgb=$(h_sparse_file b.img 32M)
python3 - "$XEN_LOOPD_SOCKET" "$imga" "$imgb" "$H_TMP/old" <<'PY' &
import json, os, socket, sys, time
sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
sock.connect(sys.argv[1])
for i, (path, flags) in enumerate([(sys.argv[2], os.O_RDWR), (sys.argv[3], os.O_RDONLY)]):
    fd = os.open(path, flags | os.O_CLOEXEC)
    socket.send_fds(sock, [json.dumps({"xen-loopd": 1, "id": i + 1, "command": "add-fd",
                                       "args": {"fdset-id": 7}}).encode()], [fd])
    os.close(fd)
    r = json.loads(sock.recv(65536))
    assert r["ok"], r
open(sys.argv[4] + ".added", "w").close()
while not os.path.exists(sys.argv[4] + ".go"):
    time.sleep(0.02)
PY
client=$!
h_register_pid "$client" fdset-client
h_wait_until 10 "set 7" test -e "$H_TMP/old.added"
# Two disks from set 7 waiting for block-loopd: one read-write, one read-only.
h_xs domain --domid 4 >/dev/null
h_xs domain --domid 5 >/dev/null
h_xs add --home "$H_HOME" --domid 4 --vdev xvda --params /dev/fdset/7 --mode w --script "$script" >/dev/null
h_xs add --home "$H_HOME" --domid 5 --vdev xvda --params /dev/fdset/7 --mode r --script "$script" >/dev/null
h_wait_until 10 "both disks' devices in the store" bash -c "[ \"\$(systemctl --user show -p NFileDescriptorStore --value $H_UNIT.service)\" = 5 ]"
touch "$legacy"
restart
touch "$H_TMP/old.go"
wait "$client" || true
h_unregister_pid "$client"
[ ! -e "$legacy" ] || h_fail "the wrapper did not rename the stored fds"
last=$(tail -n 1 "$names_log")
h_log "names as an older daemon left them: $last"
case $last in *-[rw]\ *|*-[rw]) h_fail "a device's name kept its access: $last" ;; esac
[ -n "$(tr ' ' '\n' <<<"$last" | grep '^fdset-7-' | uniq -d)" ] || h_fail "set 7's fds do not share a name: $last"
h_assert_eq 5 "$(stored)" "fds in the store after the upgrade"
restart
last=$(tail -n 1 "$names_log")
h_log "names after the upgrade: $last"
h_assert_eq 5 "$(wc -w <<<"$last")" "fds handed back after the upgrade"
[ -z "$(tr ' ' '\n' <<<"$last" | uniq -d)" ] || h_fail "names shared after the upgrade: $last"
for n in $last; do
	case $n in
	dev-*-[rw] | fdset-7-*) ;;
	*) h_fail "name $n after the upgrade" ;;
	esac
done
mm=$(stat -c '%t %T' "$phy")
seq=$(printf '%x' "$(cat "/sys/class/block/${phy##*/}/diskseq")")
grep -qw "dev-$((16#${mm% *}))-$((16#${mm#* }))-$seq-r" <<<"$last" || h_fail "$phy is not stored as dev-...-r: $last"
h_assert_eq 5 "$(stored)" "fds in the store after another restart"
for d in 4 5; do
	h_run_hotplug "$script" add "$d" 51712 || h_fail "block-loopd add for disk $d failed"
	h_wait_connected "$(h_be_path "$d" 51712)"
done

h_log "blkback opens the devices, the disks go: the store empties"
rm -f "$hold"
for d in 1 4 5; do
	h_wait_node "$(h_be_path "$d" 51712)/state" 4
done
# Set 7's fds stay while their disks use them.
h_wait_until 10 "only set 7's fds in the store" bash -c "[ \"\$(systemctl --user show -p NFileDescriptorStore --value $H_UNIT.service)\" = 2 ]"
h_assert_eq 0 "$(held)" "devices held once blkback has them"
for d in 1 4 5; do
	h_libxl_remove_disk "$d" xvda
done
h_wait_until 10 "the fd store to empty" bash -c "[ \"\$(systemctl --user show -p NFileDescriptorStore --value $H_UNIT.service)\" = 0 ]"
systemctl --user stop "$H_UNIT.service"
