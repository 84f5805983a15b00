#!/bin/bash
# Bad params and mode, in one batch with good disks: a missing file, a
# directory, a FIFO (must not hang), character devices, a relative path,
# empty params, params with an embedded NUL, params of 4 KiB (2 KiB on oxenstored, and
# the longest xenstored takes), modes other than r/w/w! (one of them trying to
# forge a log line), /dev/fdset/N naming no set or no
# number.  Each disk ends in hotplug-status=error with a one-line
# hotplug-error naming it and the cause, nothing published, no loop device;
# the good disks of the batch connect; the daemon lives and holds no more fds
# than before.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/../daemon/lib-daemon.sh"
. "$(dirname "$0")/lib-hardening.sh"
h_init "$@"
hd_start

I=$H_TMP/images
good_ro=$(h_sparse_file good-ro.img 16M)
good_rw=$(h_sparse_file good-rw.img 16M)
nul_target=$(h_sparse_file nul-target.img 16M)
mkdir -p "$I/a-directory"
mkfifo "$I/a-fifo"
# A name too long for the kernel, and the longest value this xenstored takes
# for params: the C one, path + NUL + value <= 4096; oxenstored, 2048 bytes
# (its quota-maxsize).
case $(h_xenstored_kind) in
c) long=/$(head -c 4000 /dev/zero | tr '\0' a) maxlen=/$(head -c 4050 /dev/zero | tr '\0' b) ;;
*) long=/$(head -c 1900 /dev/zero | tr '\0' a) maxlen=/$(head -c 2047 /dev/zero | tr '\0' b) ;;
esac

# shown PARAMS — how hotplug-error quotes params: 157 bytes and "..." past 160.
shown() { if [ "${#1}" -gt 160 ]; then printf '%s...' "${1:0:157}"; else printf '%s' "$1"; fi; }

# Everything written while the daemon is stopped reaches it as one batch.
hd_freeze
declare -A BE
add() { hd_add "$1" "$2" "$3" "$4"; BE[$1]=$H_BE; }
add 11 xvda "$I/missing.img" w
add 12 xvda "$I/a-directory" r
add 13 xvda "$I/a-fifo" w
add 14 xvda /dev/null w
add 15 xvda /dev/zero r
add 16 xvda images/relative.img r
add 17 xvda placeholder r
add 18 xvda placeholder r
add 19 xvda "$long" r
add 20 xvda placeholder r
add 21 xvda "$good_ro" r
add 22 xvda "$good_ro" r
add 23 xvda "$good_ro" r
add 24 xvda /dev/fdset/99 r
add 25 xvda /dev/fdset/x1 r
add 30 xvda "$good_ro" r
add 31 xvda "$good_rw" w
add 32 xvdb "$good_ro" r
hd_raw "${BE[17]}/params" ''
hd_raw "${BE[18]}/params" "$nul_target\\0/etc/passwd"
hd_raw "${BE[20]}/params" "$maxlen"
hd_raw "${BE[21]}/mode" rw
hd_raw "${BE[22]}/mode" ''
hd_raw "${BE[23]}/mode" 'r\n<0>forged log line'
hd_thaw

hd_assert_good "${BE[30]}"
hd_assert_good "${BE[31]}"
hd_assert_good "$(h_be_path 32 51728)"

hd_assert_refused "${BE[11]}" 11 xvda "$I/missing.img" "cannot open $I/missing.img read-write: No such file or directory"
hd_assert_refused "${BE[12]}" 12 xvda "$I/a-directory" "$I/a-directory is a directory, not a regular file or block device"
hd_assert_refused "${BE[13]}" 13 xvda "$I/a-fifo" "$I/a-fifo is a FIFO, not a regular file or block device"
hd_assert_refused "${BE[14]}" 14 xvda /dev/null "/dev/null is a character device, not a regular file or block device"
hd_assert_refused "${BE[15]}" 15 xvda /dev/zero "/dev/zero is a character device, not a regular file or block device"
hd_assert_refused "${BE[16]}" 16 xvda images/relative.img "'images/relative.img' is not an absolute path"
hd_assert_refused "${BE[17]}" 17 xvda "" "params is empty"
hd_assert_refused "${BE[18]}" 18 xvda "$nul_target" "params contains a NUL byte"
hd_assert_refused "${BE[19]}" 19 xvda "$(shown "$long")" "cannot open /aaa*...: File name too long"
hd_assert_refused "${BE[20]}" 20 xvda "$(shown "$maxlen")" "cannot open /bbb*...: File name too long"
hd_assert_refused "${BE[21]}" 21 xvda "$good_ro" "mode 'rw' is not r, w or w!"
hd_assert_refused "${BE[22]}" 22 xvda "$good_ro" "mode '' is not r, w or w!"
hd_assert_refused "${BE[23]}" 23 xvda "$good_ro" "mode 'r?<0>forged log ' is not r, w or w!"
hd_assert_refused "${BE[24]}" 24 xvda /dev/fdset/99 "there is no fd set 99"
hd_assert_refused "${BE[25]}" 25 xvda /dev/fdset/x1 "'/dev/fdset/x1' is not a valid fd set name"
for d in 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25; do
	h_assert_absent "${BE[$d]}/physical-device"
done
hd_no_loops_for "$I/missing.img" "$I/a-directory" "$I/a-fifo" "$nul_target"
# One shared read-only device, one read-write device: nothing else.
h_assert_eq 2 "$(h_loops_in_tmp | wc -l)" "loop devices of the batch"
! grep -q '^<0>forged' "$H_DAEMON_LOG" || h_fail "a mode value forged a log line"

h_log "the refused disks go the way libxl removes them"
for d in 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25; do
	h_libxl_remove_disk "$d" xvda || true
done
h_wait_node "${BE[30]}/state" 4
hd_assert_good "${BE[30]}"
h_libxl_remove_disk 30 xvda
h_libxl_remove_disk 31 xvda
h_libxl_remove_disk 32 xvdb
hd_finish
