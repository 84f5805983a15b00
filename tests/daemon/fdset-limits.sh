#!/bin/bash
# Fd sets are bounded: at most 4096 sets and 8192 fds in all sets together
# (every kept fd also goes to the service manager's fd store, which must
# keep room for the held devices).  Past either bound add-fd is refused with
# ENOSPC and a sentence saying why; removing makes room again; the fds go
# with their connection, and the daemon lives.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/lib-daemon.sh"
h_init "$@"
command -v python3 >/dev/null || h_skip "python3 is missing (the fd-passing client)"
h_xenstored_start
h_daemon_start
img=$(h_sparse_file img 1M)

python3 - "$XEN_LOOPD_SOCKET" "$img" <<'PY' || h_fail "fd set limits (above)"
import json, os, socket, sys

MAX_SETS, MAX_FDS, PER_SET = 4096, 8192, 64
sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
sock.connect(sys.argv[1])
n = 0

# Each add passes a new open file description of the image (a set refuses
# two fds of one), opened through this one.
base = os.open(sys.argv[2], os.O_RDONLY | os.O_CLOEXEC)

def call(command, args, fd=None, size=65536):
    global n
    n += 1
    msg = json.dumps({"xen-loopd": 1, "id": n, "command": command, "args": args}).encode()
    if fd is None:
        sock.send(msg)
    else:
        socket.send_fds(sock, [msg], [fd])
    while True:
        r = json.loads(sock.recv(size))
        if r.get("id") == n:
            return r

def add(set_id=None):
    fd = os.open(f"/proc/self/fd/{base}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return call("add-fd", {} if set_id is None else {"fdset-id": set_id}, fd)
    finally:
        os.close(fd)

def ok(r, what):
    if not r.get("ok"):
        sys.exit(f"{what}: refused: {r}")
    return r["result"]

def refused(r, what, words):
    err = r.get("error", {})
    if r.get("ok") or err.get("name") != "ENOSPC" or words not in err.get("message", ""):
        sys.exit(f"{what}: expected ENOSPC saying '{words}', got {r}")
    print(f"# {what}: {err['message']}", file=sys.stderr)

sets = [ok(add(), f"new set {i}")["fdset-id"] for i in range(MAX_SETS)]
refused(add(), "a new set past the bound", "4096 fd sets already")
refused(add(7777), "a new set by id past the bound", "4096 fd sets already")
total = MAX_SETS
# Fill existing sets until the total bound.
i = 0
while total < MAX_FDS:
    s = sets[i // (PER_SET - 1)]
    ok(add(s), f"fd {total} into set {s}")
    total += 1
    i += 1
refused(add(sets[-1]), "an fd past the total bound", "8192 fds already")
q = ok(call("query-fdsets", {}, size=1 << 24), "query-fdsets")
got = sum(len(s["fds"]) for s in q["fdsets"])
if got != MAX_FDS or len(q["fdsets"]) != MAX_SETS:
    sys.exit(f"query-fdsets: {len(q['fdsets'])} sets, {got} fds")
# Removing a whole set makes room for fds and for a set.
ok(call("remove-fd", {"fdset-id": sets[0]}), "remove a set")
ok(add(sets[-1]), "an fd once there is room")
ok(add(), "a new set once there is room")
PY

# The client's connection closed: its fds went with it.
h_wait_until 10 "the fd sets to go with their connection" \
	bash -c "[ \"\$($XEN_LOOPCTL query-fdsets --json | grep -c fdset-id)\" = 0 ]"
h_loopctl status >/dev/null || h_fail "the daemon does not answer"
h_daemon_alive
h_daemon_stop
