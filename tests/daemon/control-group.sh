#!/bin/bash
# --group: a member of the group that is not root gets only what it owns.
# It may pass fds and attach from its own fd sets, detach and reconfigure
# its own attachments (reconfigure only while nobody else uses the device),
# and see and remove only its own sets; it may not make the daemon open a
# path, touch a backend's disk, another peer's attachments or sets, use w!,
# or change a device a read-only attachment shares with others.  Each
# refusal is EPERM with a sentence saying why.  Root still does it all.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/lib-daemon.sh"
h_init "$@"
h_peer_init
h_xenstored_start
h_blkback_start
h_daemon_start --group nogroup
CTL="$(dirname "$0")/ctl.py"
h_assert_eq "660 nogroup" "$(stat -c '%a %G' "$XEN_LOOPD_SOCKET")" "mode and group of the control socket"

root_img=$(h_sparse_file root.img 32M)
chmod 0600 "$root_img"
shared=$(h_sparse_file shared.img 32M)
chmod 0644 "$shared"
mine=$(h_sparse_file mine.img 32M)
chown 65534:65534 "$mine"
chmod 0600 "$mine"
xs_img=$(h_sparse_file xs.img 32M)
peer="$H_TMP/peer"
mkdir -m 0777 "$peer"


# check OUT EXPECTED — each line of EXPECTED ("ok" or an error name, then a
# few words its message must hold) against the reply of the same line.
check() {
	python3 - "$1" "$2" <<'PY' || h_fail "replies in $1 (above)"
import json, sys
replies = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
replies = [r for r in replies if r != {"held": True}]
want = [l.rstrip("\n").split(" ", 1) for l in open(sys.argv[2]) if l.strip()]
bad = 0
if len(replies) != len(want):
    sys.exit(f"{len(replies)} replies for {len(want)} requests")
for n, (r, (what, words)) in enumerate(zip(replies, [w + [""] * (2 - len(w)) for w in want])):
    got = "ok" if r.get("ok") else r.get("error", {}).get("name")
    msg = r.get("error", {}).get("message", "")
    if got != what or words not in msg:
        print(f"request {n + 1}: expected {what} '{words}', got {json.dumps(r)}", file=sys.stderr)
        bad = 1
    elif what != "ok":
        print(f"# request {n + 1}: {got}: {msg}", file=sys.stderr)
sys.exit(bad)
PY
}

h_log "root: an fd set, a path attached read-write, one read-only, a backend's disk"
cat >"$H_TMP/root.req" <<EOF2
{"command": "add-fd", "args": {"fdset-id": 10}, "open": {"path": "$root_img", "flags": ["O_RDWR"]}}
{"command": "attach", "args": {"name": "root-rw", "target": "$root_img", "access": "w"}}
{"command": "attach", "args": {"name": "root-ro", "target": "$shared", "access": "r"}}
EOF2
python3 "$CTL" "$XEN_LOOPD_SOCKET" "$H_TMP/root.req" "$H_TMP/root.out" --hold "$H_TMP/root.done" &
root_client=$!
h_register_pid "$root_client" root-client
h_wait_until 10 "root's requests" grep -q '"held"' "$H_TMP/root.out"
printf 'ok\nok\nok\n' >"$H_TMP/root.want"
check "$H_TMP/root.out" "$H_TMP/root.want"
h_libxl_add_disk 1 xvda "$xs_img" r -
be=$H_BE
h_wait_connected "$be"

h_log "nobody, a member of the group"
cat >"$peer/req" <<EOF2
{"command": "attach", "args": {"name": "n-path", "target": "$mine", "access": "r"}}
{"command": "hotplug-remove", "args": {"path": "backend/vbd/1/51712"}}
{"command": "hotplug-add", "args": {"path": "backend/vbd/1/51712"}}
{"command": "detach", "args": {"name": "root-rw"}}
{"command": "reconfigure", "args": {"name": "root-ro", "direct-io": false}}
{"command": "reconfigure", "args": {"path": "backend/vbd/1/51712", "direct-io": false}}
{"command": "remove-fd", "args": {"fdset-id": 10}}
{"command": "add-fd", "args": {"fdset-id": 10}, "open": {"path": "$mine", "flags": ["O_RDWR"]}}
{"command": "attach", "args": {"name": "n-root-set", "target": "/dev/fdset/10", "access": "w"}}
{"command": "add-fd", "args": {"fdset-id": 20}, "open": {"path": "$mine", "flags": ["O_RDWR"]}}
{"command": "attach", "args": {"name": "n-own", "target": "/dev/fdset/20", "access": "w"}}
{"command": "attach", "args": {"name": "n-force", "target": "/dev/fdset/20", "access": "w!"}}
{"command": "reconfigure", "args": {"name": "n-own", "direct-io": false}}
{"command": "add-fd", "args": {"fdset-id": 21}, "open": {"path": "$shared", "flags": ["O_RDONLY"]}}
{"command": "attach", "args": {"name": "n-shared", "target": "/dev/fdset/21", "access": "r"}}
{"command": "reconfigure", "args": {"name": "n-shared", "direct-io": false}}
{"command": "query-fdsets"}
{"command": "list"}
{"command": "detach", "args": {"name": "n-shared"}}
{"command": "detach", "args": {"name": "n-own"}}
{"command": "attach", "args": {"name": "n-left", "target": "/dev/fdset/21", "access": "r"}}
EOF2
cat >"$H_TMP/peer.want" <<'EOF2'
EPERM only root may attach a path
EPERM only root may detach a backend's disk
EPERM only root may attach a backend's disk
EPERM attachment 'root-rw' is not one of yours
EPERM attachment 'root-ro' is not one of yours
EPERM only root may reconfigure a backend's disk
EPERM fd set 10 is not one of yours
EPERM fd set 10 belongs to uid 0
EPERM fd set 10 is not one of yours
ok
ok
EPERM only root may skip the sharing check
ok
ok
ok
EPERM is shared with 1 other user(s) (attachment root-ro among them)
ok
ok
ok
ok
ok
EOF2
h_as_uid 65534 "$H_PEER_PYTHON" "$CTL" "$XEN_LOOPD_SOCKET" "$peer/req" "$peer/out" || h_fail "the client run as nobody failed"
check "$peer/out" "$H_TMP/peer.want"
# query-fdsets showed nobody's own sets only.
sets=$(sed -n 17p "$peer/out" | python3 -c 'import json,sys; print(" ".join(sorted(str(s["fdset-id"]) for s in json.load(sys.stdin)["result"]["fdsets"])))')
h_assert_eq "20 21" "$sets" "fd sets query-fdsets shows nobody"
# list showed nobody the devices of its own attachments only, each with its
# own users; root's attachment on the shared image and the domain's disk
# only counted.
seen=$(sed -n 18p "$peer/out" | python3 -c '
import json, sys
for d in sorted(json.load(sys.stdin)["result"]["devices"], key=lambda d: d["backing"]):
    print(",".join(u["name"] for u in d["users"]), d.get("other-users"))' | sort)
h_assert_eq "attachment n-own 0
attachment n-shared 1" "$seen" "devices list shows nobody"
h_assert_connected() { h_assert_node "$1/hotplug-status" connected; }
h_assert_connected "$be"

h_log "root keeps everything: nobody's attachment and sets, root's own"
cat >"$H_TMP/root2.req" <<EOF2
{"command": "query-fdsets"}
{"command": "detach", "args": {"name": "n-left"}}
{"command": "remove-fd", "args": {"fdset-id": 10}}
{"command": "detach", "args": {"name": "root-ro"}}
{"command": "detach", "args": {"name": "root-rw"}}
EOF2
printf 'ok\nok\nok\nok\nok\n' >"$H_TMP/root2.want"
python3 "$CTL" "$XEN_LOOPD_SOCKET" "$H_TMP/root2.req" "$H_TMP/root2.out"
check "$H_TMP/root2.out" "$H_TMP/root2.want"
grep -q '"fdset-id": 21' "$H_TMP/root2.out" || h_fail "root does not see nobody's set 21: $(head -1 "$H_TMP/root2.out")"
touch "$H_TMP/root.done"
wait "$root_client" || h_fail "root's client failed"
h_unregister_pid "$root_client"
h_libxl_remove_disk 1 xvda
h_wait_until 10 "every loop device to go" bash -c "[ -z \"\$(losetup -a | grep '$H_TMP')\" ]"
h_daemon_alive
h_daemon_stop
