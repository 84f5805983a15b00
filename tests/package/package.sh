#!/bin/bash
# The Debian package, built and used as a Xen administrator would:
#
# 1. Builds it from a clean copy of the tree (the files git knows, as they
#    are now) with `dpkg-buildpackage -us -uc -b`, and a second time with a
#    bumped version, for the upgrade.
# 2. lintian reports no error and no warning; the package holds exactly the
#    expected files, and no maintainer script stops the daemon on upgrade.
# 3. In a throwaway root — a private mount and pid namespace whose / is an
#    overlay over the host's /, so dpkg writes only to a tmpfs and the
#    host's package database is never touched — with a service manager
#    (`systemd --user`, reached by the maintainer scripts' `systemctl
#    --system` through /run/systemd/private) and the test harness's private
#    xenstored and blkback emulator:
#    - a domain's disk on another hotplug script runs before the install
#      and is left alone by everything that follows;
#    - `dpkg -i` enables and starts the socket and the service;
#    - a disk attached through /etc/xen/scripts/block-loopd is connected, a
#      second one is held by the daemon for a blkback that has not opened
#      it yet;
#    - `dpkg -i` of the rebuilt package restarts the daemon (a new pid) and
#      the held device survives: the same loop device, the same diskseq,
#      still held, still in the fd store; blkback then opens it;
#    - `dpkg -r` with disks in use leaves the daemon running and says what
#      happens to the domains; a disk's teardown then works without the
#      package;
#    - installed again, the package restarts the daemon it left running,
#      which serves the other disk on, through its teardown;
#    - removed with no disk in use, the daemon is stopped; `dpkg -P` leaves
#      nothing behind (the overlay's upper layer holds nothing but dpkg's
#      own bookkeeping).
#
#   package.sh        (as root; meson runs it in the `package` suite)
#
# Skips (exit 77; a failure under CI=true) without root or the packaging
# tools (tools/install-deps.sh installs them).  Prints how long each step
# took.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src_root=$(cd "$here/../.." && pwd)
script=$here/$(basename "$0")
# Inside the throwaway root: the packages and the overlay's layers, on a
# tmpfs; and the test's own files, in the overlay itself: the daemon runs
# in a mount namespace of its own, and a loop device's backing file shows
# its path from there only on the same mount (/sys/block/loopN/loop/
# backing_file), which the harness's leak checks read.
PKGTEST=/srv/xen-loopd-pkgtest
PKGTEST_TMP=/srv/xen-loopd-pkgtest.tmp

fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
note() { printf '# %s\n' "$*" >&2; }

T=

skip() {
	printf '\n*** SKIP: %s ***\n\n' "$*" >&2
	if [ "${CI:-}" = true ]; then
		printf 'CI=true: refusing to skip; failing instead.\n' >&2
		exit 1
	fi
	exit 77
}

# ------------------------------------------------------------ building

# copy_tree DEST — the files git knows (tracked, and new ones not
# ignored), as they are in the work tree; without git, the tree minus
# build directories.
copy_tree() {
	local dest=$1
	mkdir -p "$dest"
	if git -C "$src_root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		(cd "$src_root" && git ls-files -z --cached --others --exclude-standard |
			while IFS= read -r -d '' f; do
				[ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"
			done | tar --null -T - -cf -) | tar -C "$dest" -xf -
	else
		tar -C "$src_root" --exclude='./build*' --exclude=./.git -cf - . | tar -C "$dest" -xf -
	fi
}

# build DIR [DEB_BUILD_OPTIONS] — dpkg-buildpackage in DIR/xen-loopd, with
# a clean environment (none of the test runner's variables).
build() {
	local dir=$1 opts=${2:-}
	if ! (cd "$dir/xen-loopd" && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$dir" LANG=C.UTF-8 \
		DEB_BUILD_OPTIONS="$opts" dpkg-buildpackage -us -uc -b) >"$dir/build.log" 2>&1; then
		tail -n 200 "$dir/build.log" >&2
		fail "dpkg-buildpackage failed in $dir (the end of its log above)"
	fi
	# The package is built without -Werror (debian/rules); Debian's own
	# flags (fortify, format-security) must still raise no warning, nor
	# may the dpkg tools.
	if grep -i 'warning:' "$dir/build.log" >&2; then
		fail "warnings in the package build (above)"
	fi
}

# bump_version DIR VERSION — a new changelog entry, as for a new release.
bump_version() {
	local log=$1/xen-loopd/debian/changelog maint
	maint=$(cd "$1/xen-loopd" && dpkg-parsechangelog -S Maintainer)
	{
		printf 'xen-loopd (%s) unstable; urgency=medium\n\n' "$2"
		printf '  * Rebuilt to test upgrades.\n\n'
		printf ' -- %s  %s\n\n' "$maint" "$(date -R)"
		cat "$log"
	} >"$log.new"
	mv "$log.new" "$log"
}

# check_files DEB — exactly the expected files, types and modes.
check_files() {
	local deb=$1 expected actual
	expected=$(sort <<'EOF'
-rwxr-xr-x ./usr/sbin/xen-loopd
-rwxr-xr-x ./usr/sbin/xen-loopctl
-rwxr-xr-x ./usr/libexec/xen-loopd/block-loopd
lrwxrwxrwx ./etc/xen/scripts/block-loopd -> /usr/libexec/xen-loopd/block-loopd
-rw-r--r-- ./lib/systemd/system/xen-loopd.service
-rw-r--r-- ./lib/systemd/system/xen-loopd.socket
-rw-r--r-- ./usr/share/man/man7/xen-loopd.7.gz
-rw-r--r-- ./usr/share/man/man8/xen-loopd.8.gz
-rw-r--r-- ./usr/share/man/man8/xen-loopctl.8.gz
lrwxrwxrwx ./usr/share/man/man8/block-loopd.8.gz -> xen-loopctl.8.gz
-rw-r--r-- ./usr/share/doc/xen-loopd/changelog.gz
-rw-r--r-- ./usr/share/doc/xen-loopd/copyright
-rw-r--r-- ./usr/share/doc/xen-loopd/examples/loopd-disks.cfg
-rw-r--r-- ./usr/share/doc/xen-loopd/examples/watch-mode.cfg
EOF
)
	# Mode, owner, size, date, time, name [-> target]; directories left out.
	actual=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { $2 = $3 = $4 = $5 = ""; print }' |
		sed 's/  */ /g' | sort)
	if [ "$actual" != "$expected" ]; then
		diff -u <(printf '%s\n' "$expected") <(printf '%s\n' "$actual") | tail -n +3 >&2 || true
		fail "the package's files differ from the expected list (- expected, + in the package)"
	fi
	dpkg-deb -c "$deb" | awk '$2 != "root/root" { print; bad = 1 } END { exit bad }' ||
		fail "files not owned by root/root (above)"

	local f
	f=$(dpkg-deb -f "$deb" Depends)
	case $f in *libxenstore*) ;; *) fail "Depends lacks the shared libraries (\${shlibs:Depends}): $f" ;; esac
	case $f in *xen-hypervisor* | *xen-utils*) fail "Depends requires Xen itself: $f" ;; esac
	[ "$(dpkg-deb -f "$deb" Recommends)" = xen-utils-common ] ||
		fail "Recommends is not xen-utils-common: $(dpkg-deb -f "$deb" Recommends)"
	# A stop before an upgrade would empty the daemon's fd store.
	! dpkg-deb -I "$deb" preinst >/dev/null 2>&1 ||
		fail "the package has a preinst (dh_installsystemd stops units there): $(dpkg-deb -I "$deb" preinst)"
	dpkg-deb -I "$deb" postinst | grep -q 'try-restart xen-loopd.service' ||
		fail "the postinst does not restart the service on upgrade"
	if dpkg-deb -I "$deb" postinst | grep -Eq '(restart|stop) .*xen-loopd\.socket'; then
		fail "the postinst restarts or stops the socket"
	fi
	! dpkg-deb -I "$deb" conffiles >/dev/null 2>&1 ||
		fail "unexpected conffiles: $(dpkg-deb -I "$deb" conffiles)"
}

outer_main() {
	local v1 v2 t0 t status_before status_after host_had lint c missing=()
	[ "$(id -u)" = 0 ] || skip "the package test needs root (a private mount and pid namespace, loop devices)"
	for c in dpkg-buildpackage dh dh_installsystemd lintian dpkg-deb unshare chroot meson tar; do
		command -v "$c" >/dev/null || missing+=("$c")
	done
	[ -x /lib/systemd/systemd ] || missing+=(/lib/systemd/systemd)
	[ "${#missing[@]}" = 0 ] || skip "missing: ${missing[*]} (tools/install-deps.sh installs them)"
	grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || true
	grep -qw overlay /proc/filesystems || skip "no overlay file system in this kernel"

	T=$(mktemp -d "${TMPDIR:-/tmp}/xen-loopd-package.XXXXXX")
	# The unit suite runs xen-loopctl as nobody too.
	chmod 0755 "$T"
	# The namespace (and everything mounted or started in it) is gone once
	# unshare returns; only the build directories remain.
	trap '[ -z "$T" ] || rm -rf "$T"' EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM
	mkdir -p "$T/debs/v1" "$T/debs/v2"

	t0=$SECONDS
	note "building from a clean copy of the tree"
	copy_tree "$T/v1/xen-loopd"
	[ -d "$T/v1/xen-loopd/debian" ] || fail "the tree has no debian/ directory"
	v1=$(cd "$T/v1/xen-loopd" && dpkg-parsechangelog -S Version)
	v2=$v1+pkgtest1
	build "$T/v1"
	note "built $v1 in $((SECONDS - t0)) s (with the unit suite)"
	t=$SECONDS
	copy_tree "$T/v2/xen-loopd"
	bump_version "$T/v2" "$v2"
	build "$T/v2" nocheck
	note "rebuilt as $v2 in $((SECONDS - t)) s"

	t=$SECONDS
	note "lintian"
	# debian/ needs no override; informational tags are shown, not fatal.
	c=0
	lint=$(lintian --fail-on error,warning --display-info "$T"/v1/*.changes 2>&1) || c=$?
	printf '%s\n' "$lint" | grep -v 'running with root privileges is not recommended' >&2 || true
	[ "$c" = 0 ] || fail "lintian reports errors or warnings (above)"
	note "lintian clean in $((SECONDS - t)) s"

	mv "$T"/v1/*.deb "$T/debs/v1/"
	mv "$T"/v2/*.deb "$T/debs/v2/"
	check_files "$T/debs/v1/xen-loopd_${v1}_$(dpkg --print-architecture).deb"

	t=$SECONDS
	status_before=$(sha256sum /var/lib/dpkg/status)
	host_had=$(dpkg-query -W -f '${db:Status-Status}' xen-loopd 2>/dev/null || echo absent)
	# --kill-child: if this script is killed, everything in the namespace
	# gets SIGTERM (and its own cleanup runs).
	unshare --mount --pid --fork --kill-child=SIGTERM --propagation private -- \
		"$BASH" "$script" --root "$T" "$v1" "$v2" || fail "the throwaway root test failed (above)"
	status_after=$(sha256sum /var/lib/dpkg/status)
	[ "$status_before" = "$status_after" ] || fail "the host's /var/lib/dpkg/status changed"
	[ "$(dpkg-query -W -f '${db:Status-Status}' xen-loopd 2>/dev/null || echo absent)" = "$host_had" ] ||
		fail "the host's package database now knows xen-loopd"
	ls /etc/systemd/system/*/xen-loopd.* >/dev/null 2>&1 && [ "$host_had" = absent ] &&
		fail "units were enabled on the host"
	note "install, upgrade, remove and purge in $((SECONDS - t)) s"
	note "package test: $((SECONDS - t0)) s in all"
}

# ------------------------------------------------------------ the root

# root_main T V1 V2 — pid 1 of a new pid namespace, in a private mount
# namespace: builds the throwaway root and runs inner_main there.
root_main() {
	local T=$1 R
	R=$T/root
	mkdir -p "$T/ovl" "$R"
	# Upper and work on a tmpfs of their own: overlayfs refuses an upper
	# layer inside its lower one, and nothing must reach the host's disk.
	mount -t tmpfs -o mode=0755 tmpfs "$T/ovl"
	mkdir "$T/ovl/upper" "$T/ovl/work"
	mount -t overlay overlay -o "lowerdir=/,upperdir=$T/ovl/upper,workdir=$T/ovl/work" "$R"
	mount --rbind /dev "$R/dev"
	mount --rbind /sys "$R/sys"
	mount -t proc proc "$R/proc"
	mount -t tmpfs -o mode=0755 tmpfs "$R/run"
	mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
	# The host forbids package scripts to start services (policy-rc.d
	# answering 101, as in containers); this root allows it.
	rm -f "$R/usr/sbin/policy-rc.d"
	# The test's own files: the harness, the build and the packages at
	# their host paths, its temporary files, and the overlay's layers to
	# look at.
	local d
	for d in "$src_root" "${H_BUILD_DIR:-}"; do
		[ -n "$d" ] && [ -d "$d" ] || continue
		mkdir -p "$R$d"
		mount --rbind -o ro "$d" "$R$d"
	done
	mkdir -p "$R$PKGTEST"
	mount -t tmpfs -o mode=0755 tmpfs "$R$PKGTEST"
	mkdir "$R$PKGTEST/debs" "$R$PKGTEST/upper" "$R$PKGTEST/lower"
	mkdir -p "$R$PKGTEST_TMP"
	mount --bind -o ro "$T/debs" "$R$PKGTEST/debs"
	mount --bind -o ro "$T/ovl/upper" "$R$PKGTEST/upper"
	mount --bind -o ro / "$R$PKGTEST/lower"
	# Pid 1 itself moves into the root, so systemctl there sees no chroot.
	exec chroot "$R" "$BASH" "$script" --inner "$2" "$3"
}

# ------------------------------------------------------------ inside it

# The service manager's own view: the system's unit directories, and
# /etc/systemd/system as its configuration directory (through a link named
# as a user manager's), so that `systemctl is-enabled` and the enablement
# links deb-systemd-helper makes mean what they mean on a real host.  It
# starts nothing of the host's: only stub targets are active.
start_manager() {
	local i state u=/run/xen-loopd-pkgtest
	mkdir -p /run/systemd/system "$u/units" "$u/config/systemd"
	ln -s /etc/systemd/system "$u/config/systemd/user"
	printf '[Unit]\nDescription=Package test: nothing else\n' >"$u/units/xen-loopd-pkgtest.target"
	# A user manager's services need basic.target; the system's would pull
	# in sysinit.target and with it the host's early services.
	printf '[Unit]\nDescription=Package test: basic system (stub)\n' >"$u/units/basic.target"
	XDG_RUNTIME_DIR=/run XDG_CONFIG_HOME=$u/config \
		SYSTEMD_UNIT_PATH="$u/units:$u/config/systemd/user:/lib/systemd/system:" \
		/lib/systemd/systemd --user --unit=xen-loopd-pkgtest.target --log-target=console \
		--default-standard-output=inherit --default-standard-error=inherit \
		</dev/null >>"$H_TMP/log/service-manager.log" 2>&1 &
	H_SYSTEMD_PID=$!
	h_register_pid "$H_SYSTEMD_PID" "service manager"
	for ((i = 0; i < 200; i++)); do
		state=$(systemctl --system is-system-running 2>/dev/null || true)
		case $state in running | degraded) return 0 ;; esac
		kill -0 "$H_SYSTEMD_PID" 2>/dev/null || h_fail "the service manager exited"
		sleep 0.05
	done
	h_fail "the service manager did not come up (state: $state)"
}

active() { systemctl --system is-active --quiet "$@"; }
main_pid() { systemctl --system show -p MainPID --value xen-loopd.service; }
stored() { systemctl --system show -p NFileDescriptorStore --value xen-loopd.service; }
answers() { xen-loopctl status >/dev/null 2>&1; }
held() { xen-loopctl list --json | grep -c '"held": *true' || true; }
pkg_status() { dpkg-query -W -f '${db:Status-Abbrev}${Version}' xen-loopd 2>/dev/null || echo absent; }

# dpkg_do ARGS — dpkg, its output in the log and in $dpkg_out.
dpkg_do() {
	h_log "dpkg $*"
	dpkg_out=$(dpkg "$@" 2>&1) || { printf '%s\n' "$dpkg_out" >&2; h_fail "dpkg $* failed"; }
	printf '%s\n' "$dpkg_out" >>"$H_TMP/log/dpkg.log"
}

# backend_view BE — what a backend holds, for "left alone" checks.
backend_view() { xenstore-ls -f "$1" | sort; }

# snapshot_upper — every entry of the overlay's upper layer, with its type.
snapshot_upper() {
	(cd "$PKGTEST/upper" && find . -mindepth 1 -printf '%y %P\n' | sort)
}

# check_nothing_left — whatever the package's life added to the upper layer
# since BEFORE_UPPER is dpkg's bookkeeping (its database, its log, the man
# page index its trigger rebuilt) or a directory the host has anyway.
check_nothing_left() {
	local left
	left=$(comm -13 <(printf '%s\n' "$BEFORE_UPPER") <(snapshot_upper) | while read -r type path; do
		case $path in
		var/lib/dpkg | var/lib/dpkg/* | var/log/dpkg.log | var/cache/man | var/cache/man/*) continue ;;
		"${PKGTEST_TMP#/}"/*) continue ;;  # the test's own files
		esac
		[ "$type" = d ] && [ -d "$PKGTEST/lower/$path" ] && continue
		printf '%s %s\n' "$type" "/$path"
	done)
	[ -z "$left" ] || h_fail "left behind after purge (type, path):
$left"
	h_log "after purge the overlay holds, besides the test's own files: $(comm -13 \
		<(printf '%s\n' "$BEFORE_UPPER") <(snapshot_upper) | grep -vc " ${PKGTEST_TMP#/}/") new entries (dpkg's)"
}

inner_main() {
	local v1=$1 v2=$2 arch deb1 deb2 other img0 a b be0 be_a be_b view0 pid dev seq n
	export H_IN_NS=1 TMPDIR=$PKGTEST_TMP
	# shellcheck source=../harness/lib.sh
	. "$src_root/tests/harness/lib.sh"
	h_init
	arch=$(dpkg --print-architecture)
	deb1=$PKGTEST/debs/v1/xen-loopd_${v1}_$arch.deb
	deb2=$PKGTEST/debs/v2/xen-loopd_${v2}_$arch.deb

	h_xenstored_start
	# Where the packaged daemon looks for xenstored (and its unit's
	# condition for starting at all).
	mkdir -p /run/xenstored
	ln -s "$XENSTORED_PATH" /run/xenstored/socket
	hold=$H_TMP/hold-off
	h_blkback_start --hold-off "$hold"
	start_manager
	# The units first (their fd store closes with them), then the manager:
	# SIGRTMIN+24 ends a user manager at once; its SIGTERM would start the
	# system's exit.target here.
	h_on_cleanup "kill -s RTMIN+24 $H_SYSTEMD_PID 2>/dev/null"
	h_on_cleanup "systemctl --system stop xen-loopd.service xen-loopd.socket >/dev/null 2>&1"
	[ "$(pkg_status)" = absent ] || h_fail "xen-loopd is already known to dpkg here: $(pkg_status)"

	h_log "a running domain with a disk on another hotplug script"
	# Like the stock `block` script, but with an atomic `losetup --find`:
	# the stock one's two steps race other users of loop devices.
	other=$H_TMP/other-block
	cat >"$other" <<'EOF2'
#!/bin/bash
set -e
be=/local/domain/0/$XENBUS_PATH
case $1 in
add)
	dev=$(losetup --find --show "$(xenstore-read "$be/params")")
	xenstore-write "$be/physical-device" "$(stat -c '%t:%T' "$dev")" \
		"$be/physical-device-path" "$dev" "$be/hotplug-status" connected ;;
remove)
	losetup -d "$(xenstore-read "$be/physical-device-path")" ;;
esac
EOF2
	chmod +x "$other"
	img0=$(h_sparse_file other.img 16M)
	h_libxl_add_disk 7 xvda "$img0" w "$other" || h_fail "the other script failed"
	be0=$H_BE
	h_wait_node "$be0/state" 4
	view0=$(backend_view "$be0")

	h_log "install $v1"
	BEFORE_UPPER=$(snapshot_upper)
	dpkg_do -i "$deb1"
	[ "$(pkg_status)" = "ii $v1" ] || h_fail "after dpkg -i: $(pkg_status)"
	for u in xen-loopd.socket xen-loopd.service; do
		[ "$(systemctl --system is-enabled "$u")" = enabled ] || h_fail "$u is not enabled"
		active "$u" || h_fail "$u is not active after the install"
	done
	[ -L /etc/systemd/system/multi-user.target.wants/xen-loopd.service ] || h_fail "the service is not wanted by multi-user.target"
	[ -L /etc/systemd/system/sockets.target.wants/xen-loopd.socket ] || h_fail "the socket is not wanted by sockets.target"
	h_wait_until 10 "the daemon to answer" answers
	h_assert_eq "$view0" "$(backend_view "$be0")" "the other script's disk after the install"
	# It sees the disk, and leaves it to its script.
	h_assert_eq 0 "$(xen-loopctl status | awk '$1 == "devices:" { print $2 }')" "devices of the daemon after the install"
	xen-loopctl --json status | grep -q '"foreign": 1' || h_fail "the other script's disk is not foreign to the daemon"

	h_log "a disk through block-loopd, connected; a second one held for blkback"
	a=$(h_sparse_file a.img 32M)
	h_libxl_add_disk 1 xvda "$a" w block-loopd || h_fail "block-loopd add failed"
	be_a=$H_BE
	h_wait_node "$be_a/state" 4
	touch "$hold"
	b=$(h_sparse_file b.img 32M)
	h_libxl_add_disk 2 xvda "$b" r block-loopd || h_fail "block-loopd add failed"
	be_b=$H_BE
	h_assert_node "$be_b/hotplug-status" connected
	dev=$(h_read "$be_b/physical-device-path")
	seq=$(cat "/sys/class/block/${dev#/dev/}/diskseq")
	h_assert_eq 1 "$(held)" "devices held before the upgrade"
	h_assert_eq 1 "$(stored)" "fds in the store before the upgrade"
	pid=$(main_pid)

	h_log "upgrade to $v2 with a held device"
	dpkg_do -i "$deb2"
	[ "$(pkg_status)" = "ii $v2" ] || h_fail "after the upgrade: $(pkg_status)"
	active xen-loopd.socket && active xen-loopd.service || h_fail "the units are not active after the upgrade"
	[ "$(main_pid)" != "$pid" ] && [ "$(main_pid)" != 0 ] || h_fail "the upgrade did not restart the daemon (pid $pid)"
	h_wait_until 10 "the new daemon to answer" answers
	h_assert_eq "$b" "$(h_loop_backing "$dev")" "the held device's backing file after the upgrade"
	h_assert_eq "$seq" "$(cat "/sys/class/block/${dev#/dev/}/diskseq")" "the held device's diskseq after the upgrade"
	h_assert_eq 1 "$(h_loop_count_for "$b")" "loop devices of b.img after the upgrade"
	h_assert_eq 1 "$(held)" "devices held after the upgrade"
	h_assert_eq 1 "$(stored)" "fds in the store after the upgrade"
	h_assert_eq 1 "$(h_loop_count_for "$a")" "loop devices of a.img after the upgrade"
	h_assert_node "$be_a/state" 4
	h_assert_eq "$view0" "$(backend_view "$be0")" "the other script's disk after the upgrade"
	rm -f "$hold"
	h_wait_node "$be_b/state" 4
	h_wait_until 10 "the daemon to hold nothing" bash -c '[ "$(xen-loopctl list --json | grep -c "\"held\": *true")" = 0 ]'
	h_wait_until 10 "the fd store to empty" bash -c '[ "$(systemctl --system show -p NFileDescriptorStore --value xen-loopd.service)" = 0 ]'

	h_log "remove while disks use the daemon"
	pid=$(main_pid)
	dpkg_do -r xen-loopd
	[ "$(pkg_status)" = "rc $v2" ] || h_fail "after dpkg -r: $(pkg_status)"
	printf '%s\n' "$dpkg_out" | grep -q 'the daemon keeps running' ||
		h_fail "dpkg -r said nothing about the running daemon: $dpkg_out"
	active xen-loopd.service && [ "$(main_pid)" = "$pid" ] || h_fail "the daemon was stopped with disks in use"
	[ ! -e /usr/sbin/xen-loopd ] && [ ! -e /etc/xen/scripts/block-loopd ] || h_fail "the programs are still installed"
	h_log "a domain shuts down: libxl's remove finds no block-loopd, and goes on"
	n=0
	h_libxl_remove_disk 1 xvda || n=$?
	[ "$n" != 0 ] || h_fail "block-loopd remove ran although the package is removed"
	h_wait_until 10 "a.img's loop device to go" bash -c "[ \$(losetup -j '$a' | wc -l) = 0 ]"
	h_assert_eq "$view0" "$(backend_view "$be0")" "the other script's disk after the removal"

	h_log "installed again while the daemon still runs: restarted, it serves on"
	dpkg_do -i "$deb2"
	[ "$(pkg_status)" = "ii $v2" ] || h_fail "after the second install: $(pkg_status)"
	active xen-loopd.service && [ "$(main_pid)" != "$pid" ] || h_fail "the old daemon was not restarted"
	h_wait_until 10 "the new daemon to answer" answers
	h_assert_eq "$b" "$(h_loop_backing "$dev")" "b.img's device after the second install"
	h_assert_eq "$seq" "$(cat "/sys/class/block/${dev#/dev/}/diskseq")" "b.img's diskseq after the second install"
	h_libxl_remove_disk 2 xvda || h_fail "block-loopd remove failed"
	h_wait_until 10 "b.img's loop device to go" bash -c "[ \$(losetup -j '$b' | wc -l) = 0 ]"

	h_log "remove with no disk in use, purge"
	dpkg_do -r xen-loopd
	! active xen-loopd.service && ! active xen-loopd.socket || h_fail "dpkg -r did not stop an idle daemon"
	[ ! -e /run/xen-loopd/control ] || h_fail "the control socket is still there"
	dpkg_do -P xen-loopd
	[ "$(pkg_status)" = absent ] || [ "$(pkg_status)" = "pn " ] || h_fail "after dpkg -P: $(pkg_status)"
	check_nothing_left

	h_log "the other script's domain shuts down"
	h_libxl_remove_disk 7 xvda || h_fail "the other script's remove failed"
	h_assert_no_loops
	h_log "ok"
}

case ${1:-} in
--root) shift; root_main "$@" ;;
--inner) shift; inner_main "$@" ;;
*) outer_main "$@" ;;
esac
