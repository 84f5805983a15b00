#!/bin/bash
# Fd sets: a toolstack passes open files instead of paths.  Access-mode and
# O_DIRECT matching, the refusal of a second fd of one open file
# description, a disk set up from a set after its path was removed from the
# filesystem, the lifetime of fds across their connection's end, and a
# /dev/fdset/N naming no set.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/lib-daemon.sh"
h_init "$@"
command -v python3 >/dev/null || h_skip "python3 is missing (the fd-passing client)"
h_xenstored_start
h_blkback_start
h_daemon_start
CTL="$(dirname "$0")/ctl.py"

img=$(h_sparse_file ro.img 32M)
gone=$(h_sparse_file gone.img 32M)

# A file system that takes O_DIRECT (tmpfs does not).
dio_dir=
for d in "$H_TMP" /var/tmp "$PWD"; do
	if python3 -c "import os,sys; os.close(os.open(sys.argv[1], os.O_RDWR|os.O_CREAT|os.O_DIRECT))" "$d/.dio" 2>/dev/null; then
		dio_dir=$d
		rm -f "$d/.dio"
		break
	fi
	rm -f "$d/.dio"
done
[ -n "$dio_dir" ] || h_skip "no file system here supports O_DIRECT"
dio=$dio_dir/xen-loopd-dio.$$.img
truncate -s 16M "$dio"
h_on_cleanup "rm -f '$dio'"

# reply FILE N FIELD — a field of the Nth reply (python does the JSON).
reply() {
	python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])][int(sys.argv[2])]
v=r
for k in sys.argv[3].split("."):
    v=v[int(k)] if isinstance(v,list) else v[k]
print(v if not isinstance(v,bool) else str(v).lower())' "$@"
}

cat >"$H_TMP/req1" <<JSON
{"command": "add-fd", "args": {"fdset-id": 3, "opaque": "ro image"}, "open": {"path": "$img", "flags": ["O_RDONLY"]}}
{"command": "add-fd", "args": {"fdset-id": 3}, "dup": 0}
{"command": "add-fd", "args": {"fdset-id": 3}, "open": {"path": "$img", "flags": ["O_RDWR"]}}
{"command": "add-fd", "args": {"fdset-id": 4}, "open": {"path": "$gone", "flags": ["O_RDWR"]}}
{"command": "add-fd", "args": {"fdset-id": 5}, "open": {"path": "$dio", "flags": ["O_RDONLY"]}}
{"command": "add-fd", "args": {"fdset-id": 5}, "open": {"path": "$dio", "flags": ["O_RDONLY", "O_DIRECT"]}}
{"command": "query-fdsets"}
JSON
python3 "$CTL" "$XEN_LOOPD_SOCKET" "$H_TMP/req1" "$H_TMP/rep1" --hold "$H_TMP/release1" &
client=$!
h_register_pid "$client" ctl.py
h_wait_until 10 "the client's replies" grep -qs held "$H_TMP/rep1"

h_assert_eq true "$(reply "$H_TMP/rep1" 0 ok)" "add-fd of a read-only fd"
h_assert_eq false "$(reply "$H_TMP/rep1" 1 ok)" "add-fd of a dup() of it"
h_assert_eq EEXIST "$(reply "$H_TMP/rep1" 1 error.name)" "the dup's refusal"
case $(reply "$H_TMP/rep1" 1 error.message) in
*"holds that open file already"*) ;;
*) h_fail "unclear refusal: $(reply "$H_TMP/rep1" 1 error.message)" ;;
esac
h_assert_eq true "$(reply "$H_TMP/rep1" 2 ok)" "add-fd of a read-write fd"
h_assert_eq 3 "$(reply "$H_TMP/rep1" 2 result.fdset-id)" "set id"

h_log "a disk from set 3, read-only: the read-only fd"
h_libxl_add_disk 1 xvda /dev/fdset/3 r -
be1=$H_BE
h_wait_connected "$be1"
h_assert_published "$be1"
h_assert_eq "$(stat -c %i "$img")" "$(losetup -n -O BACK-INO "$(h_read "$be1/physical-device-path")" | tr -d ' ')" \
	"backing inode of the fd set disk"

h_log "a disk from set 4, read-write, after its path was removed"
rm -f "$gone"
h_libxl_add_disk 2 xvda /dev/fdset/4 w -
h_wait_connected "$H_BE"
be2=$H_BE

h_log "mode w against a set with only read-only fds of that kind"
h_libxl_add_disk 3 xvda /dev/fdset/5 w -
msg=$(h_wait_error "$H_BE")
case $msg in
*"fd set 5 has no fd opened read-write"*) ;;
*) h_fail "unexpected hotplug-error: $msg" ;;
esac
h_libxl_remove_disk 3 xvda || true

h_log "O_DIRECT matching"
out=$(h_loopctl attach --name dio-off "format=raw, vdev=xvda, access=ro, target=/dev/fdset/5" 2>&1) ||
	h_fail "attach without direct I/O: $out"
h_loopctl detach dio-off
printf '{"command": "attach", "args": {"name": "dio-on", "target": "/dev/fdset/5", "access": "r", "direct-io": true}}\n{"command": "list"}\n' >"$H_TMP/req2"
python3 "$CTL" "$XEN_LOOPD_SOCKET" "$H_TMP/req2" "$H_TMP/rep2"
h_assert_eq true "$(reply "$H_TMP/rep2" 0 ok)" "attach with direct I/O from the O_DIRECT fd"
h_assert_eq true "$(reply "$H_TMP/rep2" 0 result.direct-io)" "direct I/O of that device"
printf '{"command": "detach", "args": {"name": "dio-on"}}\n{"command": "remove-fd", "args": {"fdset-id": 5, "fd": %s}}\n{"command": "attach", "args": {"name": "dio-none", "target": "/dev/fdset/5", "access": "r", "direct-io": true}}\n' \
	"$(reply "$H_TMP/rep1" 5 result.fd)" >"$H_TMP/req3"
python3 "$CTL" "$XEN_LOOPD_SOCKET" "$H_TMP/req3" "$H_TMP/rep3"
h_assert_eq true "$(reply "$H_TMP/rep3" 1 ok)" "remove-fd"
h_assert_eq false "$(reply "$H_TMP/rep3" 2 ok)" "attach with direct I/O once no fd has O_DIRECT"
case $(reply "$H_TMP/rep3" 2 error.message) in
*"fd set 5 has no fd opened read-only with O_DIRECT"*) ;;
*) h_fail "unclear refusal: $(reply "$H_TMP/rep3" 2 error.message)" ;;
esac

h_log "the client goes: fds in use stay, the others close"
touch "$H_TMP/release1"
wait "$client" || h_fail "the client failed"
h_unregister_pid "$client"
printf '{"command": "query-fdsets"}\n' >"$H_TMP/req4"
python3 "$CTL" "$XEN_LOOPD_SOCKET" "$H_TMP/req4" "$H_TMP/rep4"
sets=$(reply "$H_TMP/rep4" 0 result.fdsets)
python3 - "$H_TMP/rep4" <<'PY' || h_fail "fd sets after the client left: $sets"
import json, sys
r = json.loads(open(sys.argv[1]).readline())["result"]["fdsets"]
by = {s["fdset-id"]: s["fds"] for s in r}
assert set(by) == {3, 4}, by                      # set 5 had nothing in use
assert [f["access"] for f in by[3]] == ["r"], by  # the unused rw fd closed
assert by[3][0]["in-use"] and by[4][0]["in-use"], by
PY

h_log "the disks go: their fds close and the sets disappear"
h_libxl_remove_disk 1 xvda
h_libxl_remove_disk 2 xvda
python3 "$CTL" "$XEN_LOOPD_SOCKET" "$H_TMP/req4" "$H_TMP/rep5"
h_assert_eq "[]" "$(reply "$H_TMP/rep5" 0 result.fdsets)" "fd sets at the end"

h_log "/dev/fdset/N naming no set"
h_libxl_add_disk 4 xvda /dev/fdset/99 r -
msg=$(h_wait_error "$H_BE")
case $msg in
*"domain 4 disk xvda"*"there is no fd set 99"*) ;;
*) h_fail "unexpected hotplug-error: $msg" ;;
esac
h_libxl_remove_disk 4 xvda || true
h_wait_until 10 "every loop device to go" bash -c "[ -z \"\$(losetup -a | grep -e '$H_TMP' -e '$dio')\" ]"
h_daemon_alive
h_daemon_stop
