#!/bin/bash
# 50 hot-plug rounds into a running guest with script= empty: the guest's
# blkfront connects as soon as the backend waits for it, so blkback can be
# Connected before libxl first reads its state (the race that makes a wait
# for exactly InitWait time out).  The last 10 rounds make it certain: xl
# reads every backend state 200 ms late (XL_PRELOAD_STATE_DELAY_MS), when
# blkback is long Connected.  Every attach and detach must succeed, and the
# guest's other disk stays put.
. "$(dirname "$0")/lib-libxl.sh"
h_init "$@"
hl_setup
h_xl_domain 5

root=$(h_sparse_file root.img 64M)
data=$(h_sparse_file data.img 64M)
hl_attach 5 xvda "$root" w
h_wait_node "$(hl_be 5 xvda)/state" 4

ROUNDS=50
LATE=10
failures=0
past_initwait=0
for ((i = 1; i <= ROUNDS; i++)); do
	mode=w
	((i % 2)) || mode=r
	((i > ROUNDS - LATE)) && export XL_PRELOAD_STATE_DELAY_MS=200
	if ! h_xl -vvv block-attach 5 "$(hl_spec xvdb "$data" "$mode")"; then
		failures=$((failures + 1))
		h_log "round $i: attach failed: $(grep -v ': debug: ' "$H_XL_ERR")"
		h_xl block-detach 5 xvdb || true
		continue
	fi
	hl_assert_no_script
	h_assert_node "$(hl_be 5 xvdb)/hotplug-status" connected
	# The state libxl found when it looked (a figure, not an assertion).
	[ "$(h_read "$(hl_be 5 xvdb)/state")" = 4 ] && past_initwait=$((past_initwait + 1))
	# The guest has the disk before it goes (and blkback is done writing
	# Connected, which must not cross libxl's Closing).
	h_wait_node "$(hl_be 5 xvdb)/state" 4
	if ! h_xl -vvv block-detach 5 xvdb; then
		failures=$((failures + 1))
		h_log "round $i: detach failed: $(grep -v ': debug: ' "$H_XL_ERR")"
		continue
	fi
	h_exists "$(hl_be 5 xvdb)" && { failures=$((failures + 1)); h_log "round $i: backend left after detach"; }
done
unset XL_PRELOAD_STATE_DELAY_MS
h_log "$ROUNDS rounds ($LATE with xl reading states late), $failures failures; backend already Connected when xl returned: $past_initwait"
h_assert_eq 0 "$failures" "failed hot-plug rounds"

hl_wait_no_loop "$data"
h_assert_published "$(hl_be 5 xvda)"
h_assert_node "$(hl_be 5 xvda)/state" 4
hl_detach 5 xvda
hl_wait_no_loop "$root"
h_daemon_alive
h_daemon_stop
