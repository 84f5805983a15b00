#!/bin/bash
# Watch mode at domain-start scale: 40 domains each with a read-only disk of
# one image share one loop device; teardown the libxl way leaves none.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/lib-daemon.sh"
h_init "$@"
h_xenstored_start
h_blkback_start
h_daemon_start

img=$(h_sparse_file base.img 128M)
N=40
for ((d = 1; d <= N; d++)); do
	h_xs domain --domid "$d" >/dev/null
	h_xs add --home "$H_HOME" --domid "$d" --vdev xvda --params "$img" --mode r --no-script >/dev/null
done
first=
for ((d = 1; d <= N; d++)); do
	be=$(h_be_path "$d" 51712)
	h_wait_connected "$be"
	h_wait_node "$be/state" 4
	pd=$(h_read "$be/physical-device")
	[ -n "$first" ] || first=$pd
	h_assert_eq "$first" "$pd" "physical-device of domain $d"
done
h_assert_published "$(h_be_path 1 51712)"
h_assert_eq 1 "$(h_loop_count_for "$img")" "loop devices for $N read-only disks of one image"
h_assert_eq "$N" "$(h_blkback_open_count)" "devices blkback holds"

# The listing shows one device with 40 users, none held by the daemon.
json=$(h_loopctl list --json)
h_assert_eq "$N" "$(grep -o '"domid"' <<<"$json" | wc -l)" "users listed"

# Teardown of half of them keeps the device; the rest removes it.
for ((d = 1; d <= N / 2; d++)); do
	h_libxl_remove_disk "$d" xvda
done
h_assert_eq 1 "$(h_loop_count_for "$img")" "loop devices while 20 users remain"
for ((d = N / 2 + 1; d <= N; d++)); do
	h_libxl_remove_disk "$d" xvda
done
h_wait_until 10 "the shared loop device to go" bash -c "[ -z \"\$(losetup -j '$img')\" ]"
h_assert_eq 0 "$(h_loopctl list --json | grep -c '"device"' || true)" "devices listed after teardown"
h_daemon_stop
