# lib-libxl.sh — sourced by the tests of the empty-script libxl
# (contrib/libxl), and sourcing what they all need: tests/harness/lib.sh,
# tests/daemon/lib-daemon.sh and tests/harness/lib-xl.sh.  Debian's real xl
# runs with the libxenlight that tests/libxl/build-libxl.sh built with the
# series applied.
#
#   XEN_LIBXL_DIR   the directory holding that libxenlight.so.4.17 (the
#                   build script's OUT_DIR/lib); default: meson's
#                   XEN_LIBXL_DEFAULT_DIR, where tools/run-tests.sh's libxl
#                   stage builds it (BUILD_DIR-libxl/lib).  Missing: the test
#                   skips (a failure under CI=true).

. "$(dirname "${BASH_SOURCE[0]}")/../harness/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../daemon/lib-daemon.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../harness/lib-xl.sh"

# hl_use_patched_libxl — make every xl of this test load the patched
# libxenlight, after checking it really does.  Call after h_xl_init.
hl_use_patched_libxl() {
	local so
	: "${XEN_LIBXL_DIR:=${XEN_LIBXL_DEFAULT_DIR:-}}"
	[ -n "$XEN_LIBXL_DIR" ] || h_skip "XEN_LIBXL_DIR is not set: build the patched libxenlight with tests/libxl/build-libxl.sh (the libxl stage of tools/run-tests.sh does)"
	[ -f "$XEN_LIBXL_DIR/libxenlight.so.4.17" ] ||
		h_skip "no patched libxenlight in $XEN_LIBXL_DIR (tests/libxl/build-libxl.sh builds it)"
	export LD_LIBRARY_PATH="$XEN_LIBXL_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	so=$(ldd "$H_XL" | awk '$1 == "libxenlight.so.4.17" { print $3 }')
	[ "$so" = "$XEN_LIBXL_DIR/libxenlight.so.4.17" ] ||
		h_fail "xl loads libxenlight from '$so', not from $XEN_LIBXL_DIR"
}

# hl_setup [--no-daemon] [BLKBACK OPTIONS] — the usual pieces: xenstored,
# blkback emulator, xen-loopd in watch mode (unless --no-daemon: a test that
# plays the helper itself, or has none), the real xl with the patched
# library.
hl_setup() {
	local daemon=1
	[ "${1:-}" = --no-daemon ] && { daemon=0; shift; }
	h_xenstored_start
	h_blkback_start "$@"
	[ "$daemon" = 0 ] || h_daemon_start
	h_xl_init
	hl_use_patched_libxl
}

# hl_spec VDEV PATH MODE [MORE] — a disk specification with script= empty;
# MODE r or w; MORE is more "key=value," text.  target= comes last: xl
# takes the rest of the specification as the path.
hl_spec() {
	local access=ro
	[ "$3" = w ] && access=rw
	printf 'format=raw,vdev=%s,access=%s,script=,%starget=%s\n' "$1" "$access" "${4:-}" "$2"
}

# hl_be DOMID VDEV [BACKEND DOMID] — the backend directory xl writes.
hl_be() { printf '/local/domain/%s/backend/vbd/%s/%s\n' "${3:-0}" "$1" "$(h_devid "$2")"; }

# hl_attach DOMID VDEV PATH MODE [MORE] — xl -vvv block-attach with an
# empty script; fails the test if xl does.  Then the backend has script
# empty, hotplug-status connected, and no hotplug script ran.
hl_attach() {
	local be
	h_xl -vvv block-attach "$1" "$(hl_spec "$2" "$3" "$4" "${5:-}")" ||
		h_fail "xl block-attach $1 $2 exited $H_XL_RC: $(grep -v ': debug: ' "$H_XL_ERR")"
	be=$(hl_be "$1" "$2")
	h_assert_node "$be/script" ""
	h_assert_node "$be/hotplug-status" connected
	hl_assert_no_script
}

# hl_detach DOMID VDEV — xl block-detach; fails the test if xl does; then
# the backend is gone.
hl_detach() {
	h_xl -vvv block-detach "$1" "$2" ||
		h_fail "xl block-detach $1 $2 exited $H_XL_RC: $(grep -v ': debug: ' "$H_XL_ERR")"
	hl_assert_no_script
	h_assert_absent "$(hl_be "$1" "$2")"
}

# hl_assert_no_script [LOG] — libxl ran no hotplug script (xl -vvv logs
# every one it runs); LOG defaults to the last xl's stderr.
hl_assert_no_script() {
	if grep -q 'calling hotplug script' "${1:-$H_XL_ERR}"; then
		h_fail "libxl ran a hotplug script: $(grep 'calling hotplug script' "${1:-$H_XL_ERR}")"
	fi
}

# hl_wait_no_loop IMAGE — the image's loop device goes (autoclear).
hl_wait_no_loop() {
	h_wait_until 10 "the loop device of $1 to go" bash -c "[ -z \"\$(losetup -j '$1')\" ]"
}
