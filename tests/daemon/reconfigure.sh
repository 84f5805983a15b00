#!/bin/bash
# Safe reopen: a held read-only disk gets a new backing file through
# LOOP_CHANGE_FD, and direct I/O switched on and off, in place; bad new
# backings (another size, a directory, a FIFO, a writable disk) are refused
# and the disk keeps serving its data, published as before.
. "$(dirname "$0")/../harness/lib.sh"
. "$(dirname "$0")/lib-daemon.sh"
h_init "$@"
h_xenstored_start
h_blkback_start
h_daemon_start

mkimg() { # NAME BYTE — a 4 MiB image filled with BYTE
	local f="$H_TMP/images/$1"
	mkdir -p "$H_TMP/images"
	head -c 4M /dev/zero | tr '\0' "$2" >"$f"
	printf '%s\n' "$f"
}
a=$(mkimg a.img A)
b=$(mkimg b.img B)
small=$(h_sparse_file small.img 1M)
rw=$(mkimg rw.img W)
mkdir -p "$H_TMP/dir"
mkfifo "$H_TMP/fifo"

h_libxl_add_disk 1 xvda "$a" r -
be=$H_BE
h_wait_connected "$be"
dev=$(h_read "$be/physical-device-path")
first() { head -c 1 "$dev"; }
h_assert_eq A "$(first)" "first byte of the disk"
seq=$(h_read "$be/diskseq")

refused() { # WHAT ARGS... — reconfigure must fail, the disk untouched
	local what=$1 out
	shift
	if out=$(h_loopctl reconfigure "$@" 2>&1); then
		h_fail "$what: reconfigure succeeded: $out"
	fi
	h_log "$what: $out"
	h_assert_eq A "$(first)" "data after a refused reconfigure ($what)"
	h_assert_eq "$seq" "$(h_read "$be/diskseq")" "diskseq after a refused reconfigure ($what)"
	h_assert_published "$be"
}
refused "another size" backend/vbd/1/51712 --backing "$small"
refused "a directory" backend/vbd/1/51712 --backing "$H_TMP/dir"
# The FIFO is opened by the client, not the daemon: open it read-write so
# the open does not wait for a writer.
exec 9<>"$H_TMP/fifo"
out=$(h_loopctl reconfigure backend/vbd/1/51712 --backing /proc/self/fd/9 2>&1) && h_fail "a FIFO was taken: $out"
exec 9>&-
h_assert_eq A "$(first)" "data after a FIFO was refused"

h_libxl_add_disk 2 xvda "$rw" w -
h_wait_connected "$H_BE"
out=$(h_loopctl reconfigure backend/vbd/2/51712 --backing "$b" 2>&1) && h_fail "a writable disk changed its backing: $out"
case $out in *"only a read-only device"*) ;; *) h_fail "unclear refusal: $out" ;; esac

h_log "a good new backing: same size, in place"
h_loopctl reconfigure backend/vbd/1/51712 --backing "$b" >/dev/null || h_fail "reconfigure to b.img failed"
h_assert_eq B "$(first)" "first byte after the change"
h_assert_eq "$dev" "$(h_read "$be/physical-device-path")" "device after the change"
h_assert_published "$be" # diskseq follows the kernel's new one
[ "$seq" != "$(h_read "$be/diskseq")" ] || h_fail "diskseq was not updated"
h_assert_eq 1 "$(h_loop_count_for "$b")" "devices on b.img"
h_assert_eq 0 "$(h_loop_count_for "$a")" "devices on a.img"
h_loopctl list | grep -q "b.img" || h_fail "list does not show the new backing"

h_log "direct I/O on and off"
if h_loopctl reconfigure backend/vbd/1/51712 --direct-io on >/dev/null 2>&1; then
	h_assert_eq 1 "$(cat "/sys/block/${dev##*/}/loop/dio")" "dio after on"
	h_loopctl reconfigure backend/vbd/1/51712 --direct-io off >/dev/null || h_fail "direct I/O off failed"
	h_assert_eq 0 "$(cat "/sys/block/${dev##*/}/loop/dio")" "dio after off"
else
	h_log "this file system refuses direct I/O; the refusal left the disk as it was"
fi
h_assert_eq B "$(first)" "data after the direct I/O changes"

h_libxl_remove_disk 1 xvda
h_libxl_remove_disk 2 xvda
h_wait_until 10 "every loop device to go" bash -c "[ -z \"\$(losetup -a | grep '$H_TMP')\" ]"
h_daemon_alive
h_daemon_stop
