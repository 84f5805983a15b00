#!/bin/bash
# The harness's xenstored, either kind (H_XENSTORED_KIND): it starts empty
# with dom0's entries, keeps what is written, takes a restart, and stops
# by pid even while a client holds a transaction open (oxenstored ignores
# SIGTERM then): nothing of it is left running.
. "${H_HARNESS_DIR:-$(dirname "$0")/../harness}/lib.sh"
h_init "$@"

h_xenstored_start
h_assert_node /local/domain/0/domid 0
xenstore-write /test/node value
h_assert_node /test/node value

# hold_transaction READY — a client that opens a transaction, writes in
# it, touches READY and then waits, holding it open.
hold_transaction() {
	# exec: the pid the caller registers is the client's own.
	exec python3 - "$XENSTORED_PATH" "$1" <<'PY'
import socket, struct, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
def request(kind, tx, body):
    s.sendall(struct.pack("<IIII", kind, 1, tx, len(body)) + body)
    kind_back, _, _, n = struct.unpack("<IIII", s.recv(16, socket.MSG_WAITALL))
    reply = s.recv(n, socket.MSG_WAITALL) if n else b""
    if kind_back != kind:
        sys.exit("xenstored answered %r" % reply)
    return reply
XS_TRANSACTION_START, XS_WRITE = 6, 11
tx = int(request(XS_TRANSACTION_START, 0, b"\0").rstrip(b"\0"))
request(XS_WRITE, tx, b"/test/in-tx\0pending")
open(sys.argv[2], "w").close()
time.sleep(600)
PY
}

for round in 1 2; do
	old=$H_XSD_PID
	ready=$H_TMP/tx-ready.$round
	hold_transaction "$ready" &
	holder=$!
	h_register_pid "$holder" "transaction holder"
	h_wait_file "$ready" "$holder" "the transaction holder"
	# The transaction is open: its write is not visible outside it.
	h_assert_absent /test/in-tx
	if [ "$round" = 1 ]; then
		h_xenstored_restart
		h__pid_alive "$old" && h_fail "xenstored $old still runs after the restart"
		h_assert_node /local/domain/0/domid 0
		h_assert_absent /test/node
		[ "$H_XSD_PID" != "$old" ] || h_fail "the restart kept pid $old"
	else
		h_xenstored_stop
		h__pid_alive "$old" && h_fail "xenstored $old still runs after h_xenstored_stop"
		[ -e "$H_TMP/xenstored/socket" ] && h_fail "the socket of the stopped xenstored is still there"
	fi
	h_kill_pid "$holder"
done
h_log "ok ($(h_xenstored_kind))"
