#!/bin/bash
# Hot-plug into a running guest with Debian's real xl: ROUNDS rounds of
# `xl block-attach` + `xl block-detach` of one disk, whose blkfront connects
# as soon as the backend is in InitWait; then LATE_ROUNDS rounds in which
# the toolstack reads the backend state late (xl-preload sleeps before each
# read of a .../state node, as a busy dom0 would).  libxl runs the script
# only once it has read state 2, and fails the attach after 10 s if it
# never does: every attach must succeed.  The figures (attach times) are
# printed, not judged.
#
#   xl-hotplug.sh block-loopd|block [ROUNDS [LATE_ROUNDS [DELAY_MS]]]
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/../harness/lib-xl.sh"
. "$(dirname "$0")/../daemon/lib-daemon.sh"
SCRIPT=${1:-}
ROUNDS=${2:-50}
LATE_ROUNDS=${3:-20}
DELAY_MS=${4:-50}
case $SCRIPT in
block-loopd | block) ;;
*) echo "usage: $0 block-loopd|block [ROUNDS [LATE_ROUNDS [DELAY_MS]]]" >&2; exit 2 ;;
esac
h_init "$@"
h_xenstored_start
h_xl_init
h_xl_blkback_start running
[ "$SCRIPT" = block-loopd ] && h_daemon_start

img=$(h_sparse_file disk.img 64M)
h_xl_domain 1
be=$(h_xl_be 1 xvdb)
failed=0
races=0
took=()

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# round N — one attach and detach; counts a failed attach and goes on.
round() {
	local t0 t1
	t0=$(now_ms)
	if h_xl block-attach 1 "$(h_xl_disk_spec xvdb "$img" w "$SCRIPT")"; then
		t1=$(now_ms)
		took+=($((t1 - t0)))
		h_assert_node "$be/hotplug-status" connected
		h_wait_node "$be/state" 4
	elif [ "$SCRIPT" = block ] && [[ $(h_read_default "$be/hotplug-error" "") == losetup* ]]; then
		# The stock script's `losetup -f`, then `losetup DEV FILE`, loses
		# the device when another process on the host takes it between
		# the two (its known race; bench/README.md): counted apart.
		races=$((races + 1))
		h_log "round $1: the stock script lost its loop device: $(h_read "$be/hotplug-error")"
	else
		t1=$(now_ms)
		failed=$((failed + 1))
		h_log "round $1: xl block-attach failed after $((t1 - t0)) ms: $(grep -v '^libxl: debug' "$H_XL_ERR" | tr '\n' ' ')"
		h_log "round $1: backend state $(h_read_default "$be/state" none)," \
			"hotplug-status $(h_read_default "$be/hotplug-status" none)"
	fi
	# A failed add leaves its nodes for the detach to remove.
	h_xl_ok block-detach 1 xvdb
	h_assert_absent "$be"
	h_wait_until 5 "the loop device of round $1 to go" \
		eval '[ "$(h_loop_count_for "$img")" = 0 ]'
	# Each failure costs libxl's 10 s: five tell enough.
	[ "$failed" -lt 5 ] || h_fail "$failed attaches failed by round $1; stopping"
}

# report WHAT — the attach times so far, and forget them.
report() {
	local sorted n slow
	n=${#took[@]}
	if [ "$n" -gt 0 ]; then
		sorted=$(printf '%s\n' "${took[@]}" | sort -n)
		slow=$(printf '%s\n' "${took[@]}" | awk '$1 > 5000' | wc -l)
		h_log "$SCRIPT, $1: $n attaches, ms min $(head -n1 <<<"$sorted")" \
			"median $(sed -n "$(((n + 1) / 2))p" <<<"$sorted")" \
			"max $(tail -n1 <<<"$sorted"), slower than 5 s: $slow"
	fi
	took=()
}

h_log "$ROUNDS hot-plug rounds"
for ((r = 1; r <= ROUNDS; r++)); do
	round "$r"
done
report "hot-plug"

h_log "$LATE_ROUNDS rounds with the toolstack reading the state $DELAY_MS ms late"
for ((r = 1; r <= LATE_ROUNDS; r++)); do
	XL_PRELOAD_STATE_DELAY_MS=$DELAY_MS round "late $r"
done
report "state read ${DELAY_MS} ms late"

[ "$races" = 0 ] || h_log "the stock script lost its loop device to another process $races time(s)"
[ "$failed" = 0 ] || h_fail "$failed of $((ROUNDS + LATE_ROUNDS)) attaches failed"
[ "$SCRIPT" = block-loopd ] && h_daemon_stop
h_assert_no_loops
