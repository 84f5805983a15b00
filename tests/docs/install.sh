#!/bin/bash
# `meson install` into a temporary DESTDIR installs exactly the expected
# files, where Debian's Xen packages look for them: the programs in sbin,
# the block-loopd hotplug script in the Xen scripts directory, the
# systemd units, the manual pages (sections 7 and 8) and the examples.  The
# link and the unit point at the installed programs, and the installed
# manual pages carry the version, and the daemon has no crash points.
#
#   install.sh BUILD_DIR   (PREFIX, SBINDIR, MANDIR, DOCDIR, XEN_SCRIPTS_DIR,
#                           UNIT_DIR, VERSION from the environment)
set -euo pipefail

build=$1
meson=$(command -v meson) || { echo "FAIL: meson is not in PATH" >&2; exit 1; }
dest=$(mktemp -d "${TMPDIR:-/tmp}/xen-loopd-install.XXXXXX")
trap 'rm -rf "$dest"' EXIT

fail=0
bad() { printf 'FAIL: %s\n' "$*" >&2; fail=1; }

"$meson" install -C "$build" --no-rebuild --quiet --destdir "$dest" >"$dest.log" 2>&1 || {
	cat "$dest.log" >&2
	rm -f "$dest.log"
	echo "FAIL: meson install --destdir failed (above)" >&2
	exit 1
}
rm -f "$dest.log"

# What must be there, and nothing else: "f" a file, "x" an executable,
# "l TARGET" a symbolic link.
expected=$(sort <<EOF2
$SBINDIR/xen-loopd x
$SBINDIR/xen-loopctl x
$XEN_SCRIPTS_DIR/block-loopd x
$UNIT_DIR/xen-loopd.service f
$UNIT_DIR/xen-loopd.socket f
$MANDIR/man8/xen-loopd.8 f
$MANDIR/man8/xen-loopctl.8 f
$MANDIR/man8/block-loopd.8 l xen-loopctl.8
$MANDIR/man7/xen-loopd.7 f
$DOCDIR/examples/loopd-disks.cfg f
$DOCDIR/examples/watch-mode.cfg f
EOF2
)

actual=$(cd "$dest" && find . ! -type d | sed 's|^\.||' | sort | while read -r f; do
	if [ -L "$dest$f" ]; then
		printf '%s l %s\n' "$f" "$(readlink "$dest$f")"
	elif [ -x "$dest$f" ]; then
		printf '%s x\n' "$f"
	else
		printf '%s f\n' "$f"
	fi
done)

if [ "$actual" != "$expected" ]; then
	bad "the installed files differ from the expected list (- expected, + installed):"
	diff -u <(printf '%s\n' "$expected") <(printf '%s\n' "$actual") | tail -n +3 >&2 || true
	echo "(if a new file is meant to be installed, add it to tests/docs/install.sh)" >&2
fi

# The unit starts the installed daemon.
unit=$dest$UNIT_DIR/xen-loopd.service
if [ -f "$unit" ]; then
	grep -qx "ExecStart=$SBINDIR/xen-loopd\( .*\)\?" "$unit" ||
		bad "xen-loopd.service does not start $SBINDIR/xen-loopd: $(grep ExecStart "$unit")"
fi

# The installed daemon has no test hooks: the crash points
# (src/shared/crashpoint.h) and their environment variable are only in
# xen-loopd-crash, which is never installed.
daemon=$dest$SBINDIR/xen-loopd
if [ -f "$daemon" ]; then
	if grep -aq 'XEN_LOOPD_CRASH_AT' "$daemon"; then
		bad "the installed xen-loopd carries the crash points (XEN_LOOPD_CRASH_AT)"
	fi
	for point in after-open after-configure after-publish; do
		grep -aq -- "$point" "$daemon" && bad "the installed xen-loopd names the crash point $point"
	done
fi

# The manual pages carry the version, and render from where they are.
for page in "$dest$MANDIR"/man[78]/*; do
	[ -L "$page" ] && continue
	grep -q '@[A-Z_]*@' "$page" && bad "$page: @VARIABLE@ left unfilled"
	grep -q "^\.TH .*\"xen\\\\-loopd $VERSION\"" "$page" || bad "${page##*/}: .TH does not name version $VERSION"
	if command -v man >/dev/null; then
		MANWIDTH=80 man -l "$page" >/dev/null 2>&1 || bad "man -l ${page##*/} fails"
	fi
done
# man finds the alias through the link.
if command -v man >/dev/null && [ -L "$dest$MANDIR/man8/block-loopd.8" ]; then
	MANWIDTH=80 man -l "$dest$MANDIR/man8/block-loopd.8" 2>/dev/null | grep -q 'XEN-LOOPCTL(8)' ||
		bad "block-loopd(8) does not show xen-loopctl(8)"
fi

exit "$fail"
