#!/bin/bash
# The harness itself: the blkback emulator's InitWait, open, diskseq check,
# guest modes, hold-off, teardown and scale, with this test playing the
# hotplug script by hand.
. "${H_HARNESS_DIR:-$(dirname "$0")/../harness}/lib.sh"
h_init "$@"

h_xenstored_start
img=$(h_sparse_file disk.img 16M)
LOOPS=()

# attach_loop [-r] — a loop device of the image in $dev, detached at the end.
attach_loop() {
	dev=$(losetup -f --show "$@" "$img")
	LOOPS+=("$dev")
}

mm_of() {
	local ma mi
	IFS=: read -r ma mi <"/sys/block/${1##*/}/dev"
	printf '%x:%x\n' "$ma" "$mi"
}

seq_of() { printf '%x\n' "$(cat "/sys/block/${1##*/}/diskseq")"; }

# add DOMID DEVID [MODE] — a backend as libxl writes it, without a script.
add() {
	h_xs add --domid "$1" --devid "$2" --params "$img" --mode "${3:-w}" --no-script >/dev/null
	h_wait_node "$(h_be_path "$1" "$2")/state" 2
}

log_has() { grep -q -- "$1" "$H_BLKBACK_LOG"; }
none_open() { [ "$(h_blkback_open_count)" = 0 ]; }

h_log "running guest: its frontend connects at InitWait; open, diskseq match, Connected, teardown"
h_blkback_start
be=$(h_be_path 3 51712)
add 3 51712 w
h_wait_node /local/domain/3/device/vbd/51712/state 3
h_assert_node "$be/state" 2
h_assert_eq 0 "$(h_blkback_open_count)" "open devices before physical-device"
attach_loop
xenstore-write "$be/physical-device" "$(mm_of "$dev")" "$be/diskseq" "$(seq_of "$dev")"
h_wait_node "$be/state" 4
h_wait_node /local/domain/3/device/vbd/51712/state 4
h_assert_absent "$be/opened"
h_assert_node "$be/sectors" $((16 * 1024 * 1024 / 512))
h_assert_node "$be/info" 0
h_assert_eq 1 "$(h_blkback_open_count)" "open devices once connected"
h_xs remove --domid 3 --devid 51712 --stage close || h_fail "close did not reach state 6"
h_assert_eq 0 "$(h_blkback_open_count)" "open devices after Closing"
h_xs remove --domid 3 --devid 51712 --stage destroy
h_assert_absent "$be"

h_log "stale diskseq is refused"
be=$(h_be_path 3 51728)
add 3 51728 r
xenstore-write "$be/physical-device" "$(mm_of "$dev")" "$be/diskseq" "$(printf '%x' $((0x$(seq_of "$dev") + 1)))"
h_wait_node "$be/state" 6
h_exists "$H_HOME/error/backend/vbd/3/51728/error" || h_fail "no error node for the stale diskseq"
h_log "error: $(h_read "$H_HOME/error/backend/vbd/3/51728/error")"
h_assert_eq 0 "$(h_blkback_open_count)" "open devices after the refusal"
h_assert_absent "$be/sectors"

h_log "malformed physical-device is refused"
be=$(h_be_path 3 51744)
add 3 51744 r
xenstore-write "$be/physical-device" "/dev/loop0"
h_wait_node "$be/state" 6
h_assert_eq 0 "$(h_blkback_open_count)" "open devices after the refusal"

h_log "the directory vanishing closes the device"
be=$(h_be_path 4 51712)
add 4 51712 r
xenstore-write "$be/physical-device" "$(mm_of "$dev")"
h_wait_node "$be/state" 4
h_assert_eq 1 "$(h_blkback_open_count)" "open devices"
xenstore-rm "$H_HOME/backend/vbd/4"
h_wait_until 10 "the emulator to forget backend/vbd/4/51712" log_has "backend/vbd/4/51712: gone"
h_assert_eq 0 "$(h_blkback_open_count)" "open devices after removal"
h_blkback_stop

h_log "a domain being built: the device is opened at once, Connected once the guest connects"
h_blkback_start --guest building
be=$(h_be_path 5 51712)
add 5 51712 r
xenstore-write "$be/physical-device" "$(mm_of "$dev")"
h_wait_until 10 "the emulator to open it" log_has "backend/vbd/5/51712: opened"
h_assert_node "$be/state" 2
h_assert_node /local/domain/5/device/vbd/51712/state 1
h_assert_eq 1 "$(h_blkback_open_count)" "open devices before the guest runs"
xenstore-write /local/domain/5/device/vbd/51712/state 3
h_wait_node "$be/state" 4
h_assert_absent "$be/opened"
h_xs remove --domid 5 --devid 51712 || h_fail "remove failed"
h_assert_eq 0 "$(h_blkback_open_count)" "open devices after removal"
h_blkback_stop

h_log "no PV drivers: the device is opened, never Connected, and detach closes it"
h_blkback_start --guest none
be=$(h_be_path 5 51728)
add 5 51728 r
xenstore-write "$be/physical-device" "$(mm_of "$dev")"
h_wait_until 10 "the emulator to open it" log_has "backend/vbd/5/51728: opened"
xenstore-write /local/domain/5/device/vbd/51728/state 3
h_xs remove --domid 5 --devid 51728 --stage close || h_fail "close did not reach state 6"
h_assert_eq 0 "$(h_blkback_open_count)" "open devices after Closing"
! log_has "backend/vbd/5/51728: Connected" || h_fail "Connected without a frontend"
h_xs remove --domid 5 --devid 51728 --stage destroy
h_blkback_stop

h_log "hold-off: a slow blkback"
hold="$H_TMP/hold"
touch "$hold"
h_blkback_start --hold-off "$hold"
be=$(h_be_path 6 51712)
add 6 51712 w
xenstore-write "$be/physical-device" "$(mm_of "$dev")"
h_wait_until 10 "the emulator to hold off" log_has "backend/vbd/6/51712: holding off"
h_assert_node "$be/state" 2
h_assert_eq 0 "$(h_blkback_open_count)" "open devices while held off"
rm "$hold"
h_wait_node "$be/state" 4
h_assert_eq 1 "$(h_blkback_open_count)" "open devices after the hold-off"
h_xs remove --domid 6 --devid 51712 || h_fail "remove failed"

h_log "held-off device torn down before it was opened"
touch "$hold"
be=$(h_be_path 6 51728)
add 6 51728 w
xenstore-write "$be/physical-device" "$(mm_of "$dev")"
h_wait_until 10 "the emulator to hold off" log_has "backend/vbd/6/51728: holding off"
h_xs remove --domid 6 --devid 51728 --stage close || h_fail "close failed"
rm "$hold"
h_xs remove --domid 6 --devid 51728 --stage destroy
h_wait_until 10 "the emulator to forget backend/vbd/6/51728" log_has "backend/vbd/6/51728: gone"
! log_has "backend/vbd/6/51728: opened" || h_fail "opened a device already torn down"
h_blkback_stop

h_log "many devices"
N=${H_SCALE_DEVICES:-600}
h_blkback_start
for ((i = 0; i < N; i++)); do
	# 200 domains of up to 3 disks each; no waiting in between.
	h_xs add --domid $((100 + i % 200)) --devid $((51712 + 16 * (i / 200))) \
		--params "$img" --mode r --no-script >/dev/null
done
for ((i = 0; i < N; i++)); do
	be=$(h_be_path $((100 + i % 200)) $((51712 + 16 * (i / 200))))
	[ "$(h_read "$be/state")" = 2 ] || h_wait_node "$be/state" 2
done
# Open a few, then drop whole domains and finally the whole tree.
for d in 100 101 102; do
	be=$(h_be_path $d 51712)
	xenstore-write "$be/physical-device" "$(mm_of "$dev")"
	h_wait_node "$be/state" 4
done
h_assert_eq 3 "$(h_blkback_open_count)" "open devices"
xenstore-rm "$H_HOME/backend/vbd/100"
h_wait_until 10 "the emulator to forget domain 100" log_has "backend/vbd/100/51712: gone"
xenstore-rm "$H_HOME/backend/vbd"
h_wait_until 10 "the emulator to close everything" none_open
h_blkback_stop
h_assert_eq 0 "$(grep -c 'refusing' "$H_BLKBACK_LOG" || true)" "refusals in the scale run"

h_log "libxl's forced removal when blkback never closes"
h_xs add --domid 9 --devid 51712 --params "$img" --mode r --no-script >/dev/null
rc=0
h_xs remove --domid 9 --devid 51712 --stage close --timeout 1 || rc=$?
h_assert_eq 3 "$rc" "close without a blkback"
h_assert_absent /local/domain/9/device/vbd/51712
h_assert_node "$(h_be_path 9 51712)/state" 5
h_xs remove --domid 9 --devid 51712 --stage destroy
h_assert_absent "$(h_be_path 9 51712)"
rc=0
h_xs remove --domid 9 --devid 51712 --stage close || rc=$?
h_assert_eq 2 "$rc" "close of a backend already gone"
h_assert_node /local/domain/0/name Domain-0

for dev in "${LOOPS[@]}"; do
	losetup -d "$dev"
done
h_assert_no_loops
h_log "ok"
