#!/bin/bash
# Read-write disks: one loop device each; the sharing rule refuses a second
# writer, and a reader while a writer exists, with a sentence naming the
# holder; w! bypasses it; nothing is left over.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/lib-daemon.sh"
h_init "$@"
h_xenstored_start
h_blkback_start
h_daemon_start

vdevs=(xvda xvdb xvdc xvdd xvde xvdf xvdg xvdh)
for v in "${vdevs[@]}"; do
	img=$(h_sparse_file "$v.img" 32M)
	h_libxl_add_disk 1 "$v" "$img" w -
done
for v in "${vdevs[@]}"; do
	be=$(h_be_path 1 "$(h_devid "$v")")
	h_wait_connected "$be"
	h_assert_published "$be"
	h_assert_eq 1 "$(h_loop_count_for "$H_TMP/images/$v.img")" "loop devices for $v"
done
h_assert_eq 8 "$(h_loops_in_tmp | wc -l)" "loop devices for 8 rw disks"

# A second writer in another domain is refused.
h_libxl_add_disk 2 xvda "$H_TMP/images/xvda.img" w -
be2=$(h_be_path 2 51712)
msg=$(h_wait_busy "$be2")
h_log "refused: $msg"
case $msg in
*"domain 2 disk xvda"*"xvda.img is in use read-write by domain 1 disk 51712"*) ;;
*) h_fail "unexpected hotplug-error: $msg" ;;
esac
h_assert_absent "$be2/physical-device"
h_assert_absent "$be2/physical-device-path"
h_assert_absent "$be2/diskseq"

# A reader while the writer exists is refused too.
h_libxl_add_disk 3 xvda "$H_TMP/images/xvdb.img" r -
msg=$(h_wait_busy "$(h_be_path 3 51712)")
case $msg in
*"xvdb.img is in use read-write by domain 1 disk 51728"*) ;;
*) h_fail "unexpected hotplug-error: $msg" ;;
esac

# w! skips the check, as in the stock script.
h_libxl_add_disk 4 xvda "$H_TMP/images/xvdc.img" 'w!' -
h_wait_connected "$(h_be_path 4 51712)"

h_assert_eq 8 "$(h_loops_in_tmp | wc -l)" "loop devices after the refusals"
h_libxl_remove_disk 2 xvda
h_libxl_remove_disk 3 xvda
h_libxl_remove_disk 4 xvda
for v in "${vdevs[@]}"; do
	h_libxl_remove_disk 1 "$v"
done
h_wait_until 10 "every loop device to go" bash -c "[ -z \"\$(losetup -a | grep '$H_TMP')\" ]"
h_daemon_alive
h_daemon_stop
