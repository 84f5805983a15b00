#!/bin/bash
# Installs every Debian 12 package that building xen-loopd and running its
# tests needs.  Run as root.  Idempotent: when everything is installed it
# changes nothing and needs no network.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

packages=(
	# Build: compiler, meson, and the libraries found through pkg-config.
	gcc libc6-dev pkg-config meson ninja-build
	libxen-dev libudev-dev libsystemd-dev libjson-c-dev libcmocka-dev
	# Fuzz targets (-Dfuzz=true) build with clang.
	clang
	# Tests: the real xenstored, the xenstore-* tools the stock hotplug
	# scripts call, and those scripts themselves.
	xen-utils-4.17 xenstore-utils xen-utils-common
	# Tests: loop devices (losetup is in mount), flock/unshare/setpriv,
	# modprobe for the loop module, pgrep, logger, timeout, find, awk.
	util-linux mount kmod procps bsdutils coreutils findutils mawk
	# Tests: the test runner's log reading and the fd-passing test client.
	python3
	# Tests: a user service manager for the fd store, and udev.
	systemd udev
	# Memory checking of the daemon and the helpers.
	valgrind
	# Docs test: the manual pages render without warnings.
	man-db groff-base
	# The Debian package (debian/) and its test: dpkg-buildpackage, its
	# build dependencies beyond the above, lintian; git copies the tree.
	build-essential dpkg-dev debhelper lintian git
	# The real-Xen stage (tests/xen): Xen, dom0 and guests under QEMU;
	# initramfs images made with cpio, with busybox as their userland.
	qemu-system-x86 cpio busybox-static
	# The libxl stage (tests/libxl/build-libxl.sh): Debian's Xen source
	# package, unpacked and patched, and what configuring it and building
	# libxenlight needs.
	dpkg-dev patch make autoconf acpica-tools libyajl-dev libncurses-dev
	uuid-dev zlib1g-dev python3-dev
	# The benchmark (bench/run.sh): system calls counted per process.
	linux-perf
)

if [ "$(id -u)" != 0 ]; then
	echo "install-deps.sh: must run as root (it calls apt-get)" >&2
	exit 1
fi

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed; then
		missing+=("$p")
	fi
done

if [ "${#missing[@]}" -eq 0 ]; then
	echo "install-deps.sh: all ${#packages[@]} packages are installed"
	exit 0
fi

echo "install-deps.sh: installing ${missing[*]}"
apt-get update
apt-get install -y --no-install-recommends "${packages[@]}"
