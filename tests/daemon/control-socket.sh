#!/bin/bash
# The control socket against the real daemon: a peer without permission, a
# malformed request and an oversized one are refused with a clear error
# while another client stays connected and keeps working; the daemon lives.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/lib-daemon.sh"
h_init "$@"
command -v python3 >/dev/null || h_skip "python3 is missing (the raw socket client)"
command -v setpriv >/dev/null || h_skip "setpriv is missing (util-linux)"
h_xenstored_start
h_daemon_start

h_assert_eq 600 "$(stat -c %a "$XEN_LOOPD_SOCKET")" "mode of the control socket"

# A client that stays connected through it all, and checks it still works.
python3 - "$XEN_LOOPD_SOCKET" "$H_TMP/steady" <<'PY' &
import json, os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
def call(i):
    s.send(json.dumps({"xen-loopd": 1, "id": i, "command": "status"}).encode())
    r = json.loads(s.recv(1 << 20))
    assert r["ok"] and r["id"] == i, r
call(1)
open(sys.argv[2] + ".ready", "w").close()
while not os.path.exists(sys.argv[2] + ".go"):
    time.sleep(0.02)
call(2)
open(sys.argv[2] + ".done", "w").close()
PY
steady=$!
h_register_pid "$steady" steady-client
h_wait_until 10 "the steady client" test -e "$H_TMP/steady.ready"

raw() {
	python3 - "$XEN_LOOPD_SOCKET" "$@" <<'PY'
import json, socket, sys
path, kind = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(path)
if kind == "malformed":
    s.send(b'{"xen-loopd": 1, "id": 7, "command": "status", ')
elif kind == "oversized":
    s.send(b'{"xen-loopd": 1, "id": 8, "command": "status", "args": {"x": "' + b"a" * 200000 + b'"}}')
elif kind == "unknown":
    s.send(json.dumps({"xen-loopd": 1, "id": 9, "command": "format-disk"}).encode())
elif kind == "badversion":
    s.send(json.dumps({"xen-loopd": 2, "id": 10, "command": "status"}).encode())
elif kind == "status":
    # A refused peer gets its answer at once and may find the connection
    # closed before it sends anything: the answer is still there to read.
    try:
        s.send(json.dumps({"xen-loopd": 1, "id": 11, "command": "status"}).encode())
    except (BrokenPipeError, ConnectionResetError):
        pass
r = s.recv(1 << 20)
print(json.dumps(json.loads(r)) if r else "closed")
PY
}

expect_error() {
	local what=$1 name=$2 out
	out=$(raw "$what")
	grep -q "\"ok\": false" <<<"$out" || h_fail "$what: not refused: $out"
	grep -q "\"name\": \"$name\"" <<<"$out" || h_fail "$what: expected $name: $out"
	h_log "$what: $out"
}

expect_error malformed EBADMSG
expect_error oversized EMSGSIZE
expect_error unknown EOPNOTSUPP
expect_error badversion EPROTONOSUPPORT

h_log "a peer without permission"
# The socket's mode already keeps others out; open it up to prove the
# daemon checks the peer's credentials itself.
chmod 0666 "$XEN_LOOPD_SOCKET"
chmod 0755 "$(dirname "$XEN_LOOPD_SOCKET")"
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups bash -c "$(declare -f raw); raw status" 2>&1) || true
grep -q '"name": "EPERM"' <<<"$out" || h_fail "a peer without permission got: $out"
h_log "nobody: $out"
chmod 0600 "$XEN_LOOPD_SOCKET"
rc=0
setpriv --reuid=65534 --regid=65534 --clear-groups "$XEN_LOOPCTL" status >/dev/null 2>&1 || rc=$?
h_assert_eq 3 "$rc" "xen-loopctl status as nobody"

touch "$H_TMP/steady.go"
h_wait_until 10 "the steady client to finish" test -e "$H_TMP/steady.done"
wait "$steady" || h_fail "the steady client failed"
h_unregister_pid "$steady"
h_loopctl status >/dev/null || h_fail "the daemon does not answer any more"
h_daemon_alive
h_daemon_stop
