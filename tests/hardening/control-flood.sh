#!/bin/bash
# The control socket under abuse, against the real daemon: a request
# carrying more fds than allowed, a client pipelining thousands of requests
# it never reads, and more connections than the daemon takes.  Each is
# refused or absorbed while a client connected all along keeps working and
# a disk attached meanwhile connects (the daemon started with a soft fd
# limit of 1024 must have room for it); afterwards the daemon holds no fd
# it did not hold before.  (Permissions, malformed and oversized messages:
# tests/daemon/control-socket.sh.)
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/../daemon/lib-daemon.sh"
. "$(dirname "$0")/lib-hardening.sh"
h_init "$@"
command -v python3 >/dev/null || h_skip "python3 is missing (the raw socket clients)"
# The soft fd limit of a shell, 1024: the daemon raises it to the hard one
# (here 8192), or a full set of connections leaves no fd for any disk.
ulimit -Sn 1024
ulimit -Hn 8192
hd_start

# client.py SOCKET ACTION... — the raw socket clients.
cat >"$H_TMP/client.py" <<'PY'
import array, json, os, resource, socket, sys, time
path, what = sys.argv[1], sys.argv[2]

def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    return s

def call(s, i, command="status"):
    s.send(json.dumps({"xen-loopd": 1, "id": i, "command": command}).encode())
    return json.loads(s.recv(1 << 20))

if what == "steady":
    # Connected through it all; answers each ".go<N>" file with a call.
    flag = sys.argv[3]
    s = conn()
    n = 0
    while True:
        r = call(s, n)
        assert r["ok"] and r["id"] == n, r
        open(f"{flag}.done{n}", "w").close()
        n += 1
        while not os.path.exists(f"{flag}.go{n}"):
            if os.path.exists(flag + ".stop"):
                sys.exit(0)
            time.sleep(0.02)
elif what == "fds":
    s = conn()
    r, w = os.pipe()
    fds = array.array("i", [w] * 20)
    msg = json.dumps({"xen-loopd": 1, "id": 3, "command": "status"}).encode()
    s.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
    print(json.dumps(json.loads(s.recv(1 << 20))))
    os.close(w)
    # Every copy the daemon got is closed: the pipe reports no writer.
    os.set_blocking(r, False)
    for _ in range(200):
        try:
            if os.read(r, 1) == b"":
                print("writers gone")
                break
        except BlockingIOError:
            time.sleep(0.05)
elif what == "pipeline":
    s = conn()
    s.setblocking(False)
    sent = 0
    for i in range(1, 5001):
        try:
            s.send(json.dumps({"xen-loopd": 1, "id": i, "command": "status"}).encode())
            sent += 1
        except BlockingIOError:
            break
    print(f"sent {sent}")
    s.close()
elif what == "flood":
    n, ready, release = int(sys.argv[3]), sys.argv[4], sys.argv[5]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, n + 64), max(hard, n + 64)))
    socks = [conn() for i in range(n)]
    # Each asks once: those the daemon took answer, those over its limit
    # get an error (and are closed).
    kept, refused = [], []
    for i, s in enumerate(socks):
        s.settimeout(60)
        try:
            s.send(json.dumps({"xen-loopd": 1, "id": i + 1, "command": "status"}).encode())
        except (BrokenPipeError, ConnectionResetError):
            pass
        m = s.recv(1 << 20)
        r = json.loads(m) if m else {"ok": False, "error": {"name": "closed"}}
        (kept if r["ok"] else refused).append(s if r["ok"] else r)
    names = sorted({r["error"].get("name", "?") for r in refused})
    print(f"kept {len(kept)} refused {len(refused)} {' '.join(names)}")
    sys.stdout.flush()
    open(ready, "w").close()
    while not os.path.exists(release):
        time.sleep(0.02)
    for s in kept:
        s.close()
PY
client() { python3 "$H_TMP/client.py" "$XEN_LOOPD_SOCKET" "$@"; }

steady=$H_TMP/steady
client steady "$steady" &
steady_pid=$!
h_register_pid "$steady_pid" steady-client
h_on_cleanup "touch '$steady.stop'"
STEADY_N=0
steady_works() {
	STEADY_N=$((STEADY_N + 1))
	touch "$steady.go$STEADY_N"
	h_wait_until 20 "the steady client's call $STEADY_N" test -e "$steady.done$STEADY_N"
}
h_wait_until 10 "the steady client" test -e "$steady.done0"

h_log "a request with 20 fds (at most 16)"
out=$(client fds)
h_log "$out"
grep -q '"name": "EINVAL"' <<<"$out" || h_fail "20 fds not refused: $out"
grep -q 'Too many file descriptors' <<<"$out" || h_fail "unclear refusal: $out"
grep -q 'writers gone' <<<"$out" || h_fail "the daemon kept fds of a refused request"
steady_works

h_log "thousands of requests pipelined and never read"
out=$(client pipeline)
h_log "$out"
h_daemon_alive
steady_works

h_log "more connections than the daemon takes, a disk attached meanwhile"
img=$(h_sparse_file disk.img 16M)
client flood 1100 "$H_TMP/flood.ready" "$H_TMP/flood.release" >"$H_TMP/flood.out" &
flood_pid=$!
h_register_pid "$flood_pid" flood-client
h_on_cleanup "touch '$H_TMP/flood.release'"
h_wait_until 60 "the flood to connect" test -e "$H_TMP/flood.ready"
out=$(cat "$H_TMP/flood.out")
h_log "$out"
read -r _ kept _ refused names <<<"$out"
[ "$refused" -gt 0 ] || h_fail "no connection refused: $out"
[ "$names" = EAGAIN ] || h_fail "refused connections got: $names"
# 1024 in all, the steady client among them.
h_assert_eq 1023 "$kept" "connections kept by the daemon besides the steady one"
steady_works
hd_add 1 xvda "$img" r
hd_assert_good "$H_BE"
rc=0
h_loopctl status >/dev/null 2>&1 || rc=$?
h_log "xen-loopctl status while the daemon is full: exit $rc"
touch "$H_TMP/flood.release"
wait "$flood_pid" || h_fail "the flood client failed"
h_unregister_pid "$flood_pid"
h_wait_until 20 "a new client to get in again" h_loopctl status
steady_works

touch "$steady.stop"
STEADY_N=$((STEADY_N + 1))
touch "$steady.go$STEADY_N"
wait "$steady_pid" || h_fail "the steady client failed"
h_unregister_pid "$steady_pid"
h_libxl_remove_disk 1 xvda
hd_finish
