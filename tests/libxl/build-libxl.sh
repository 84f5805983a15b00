#!/bin/bash
# Builds libxenlight from Debian's own Xen 4.17 source package with the
# empty-script series (contrib/libxl/4.17/*.patch) applied, for tests that run
# Debian's real xl against it through LD_LIBRARY_PATH.
#
#   tests/libxl/build-libxl.sh OUT_DIR
#
# The source comes from Debian's package repository at build time (apt-get
# source, through a private apt configuration with a deb-src entry, so the
# system's sources stay as they are).  Everything lives in OUT_DIR:
#
#   OUT_DIR/apt/          the private apt configuration and lists
#   OUT_DIR/src/xen-*/    the unpacked source, configured, series applied
#   OUT_DIR/lib/          libxenlight.so.4.17 (the patched build) — the
#                         directory to put in LD_LIBRARY_PATH
#   OUT_DIR/applied/      the series as it is applied to the tree now
#
# A second run reuses the tree: a changed series is reverted and the new one
# applied, and make rebuilds only what changed (seconds).
#
# Environment: XEN_SRC_VERSION picks a version of the source package
# (default: bookworm's); XEN_DEBIAN_MIRROR the mirror (default
# http://deb.debian.org/debian).
set -euo pipefail

out=${1:?usage: build-libxl.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)
series_dir=$root/contrib/libxl/4.17
mirror=${XEN_DEBIAN_MIRROR:-http://deb.debian.org/debian}

die() { echo "build-libxl.sh: $*" >&2; exit 1; }
# A half-patched tree cannot be trusted: the next run unpacks it afresh.
fresh_next() { rm -f "$out/src/.unpacked"; }

for t in apt-get dpkg-source autoconf autoheader iasl patch make gcc; do
	command -v "$t" >/dev/null || die "$t is missing (tools/install-deps.sh)"
done
[ -f /usr/include/yajl/yajl_gen.h ] || die "libyajl-dev is missing (tools/install-deps.sh)"
shopt -s nullglob
series=("$series_dir"/*.patch)
[ "${#series[@]}" -gt 0 ] || die "no patches in $series_dir"

# 1. The source, once.  bookworm's security suite lists newer versions whose
# source files are not served, so only bookworm itself is listed.
src=$(find "$out/src" -mindepth 1 -maxdepth 1 -type d -name 'xen-*' 2>/dev/null | head -n1 || true)
if [ -z "$src" ] || [ ! -f "$out/src/.unpacked" ]; then
	rm -rf "$out/src" "$out/apt"
	mkdir -p "$out/apt/sources.list.d" "$out/apt/lists/partial" "$out/src"
	echo "deb-src $mirror bookworm main" >"$out/apt/sources.list.d/xen-src.list"
	apt_opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$out/apt/sources.list.d"
		-o "Dir::State::Lists=$out/apt/lists" -o "APT::Sandbox::User=root")
	echo "build-libxl.sh: fetching the xen source package from $mirror"
	apt-get "${apt_opts[@]}" update -qq
	(cd "$out/src" && apt-get "${apt_opts[@]}" source -qq "xen${XEN_SRC_VERSION:+=$XEN_SRC_VERSION}") >"$out/src/apt-source.log" 2>&1 ||
		{ cat "$out/src/apt-source.log" >&2; die "apt-get source xen failed"; }
	src=$(find "$out/src" -mindepth 1 -maxdepth 1 -type d -name 'xen-*' | head -n1)
	[ -n "$src" ] || die "apt-get source xen unpacked nothing"
	rm -f "$out/src"/*.tar.* "$out/src"/*.dsc
	touch "$out/src/.unpacked"
	rm -rf "$out/applied"
fi
echo "build-libxl.sh: source $(basename "$src")"

# 2. The series: revert what is applied when it differs, then apply.
if [ -d "$out/applied" ] && ! diff -r -q "$out/applied" "$series_dir" >/dev/null 2>&1; then
	mapfile -t old < <(find "$out/applied" -name '*.patch' | sort -r)
	for p in "${old[@]}"; do
		patch -d "$src" -p1 -R -s -N --no-backup-if-mismatch <"$p" ||
			{ fresh_next; die "cannot revert $(basename "$p")"; }
	done
	rm -rf "$out/applied"
fi
if [ ! -d "$out/applied" ]; then
	for p in "${series[@]}"; do
		echo "build-libxl.sh: applying $(basename "$p")"
		patch -d "$src" -p1 -s -N --no-backup-if-mismatch <"$p" ||
			{ fresh_next; die "$(basename "$p") does not apply to $(basename "$src")"; }
	done
	mkdir -p "$out/applied"
	cp "${series[@]}" "$out/applied/"
fi

# 3. Configure tools/ once (the orig tarball has no configure script), with Debian's paths (debian/rules), so the
# compiled-in /etc/xen/scripts and /var/lib/xen match Debian's xl.
if [ ! -f "$src/config/Tools.mk" ]; then
	(
		cd "$src/tools"
		autoconf
		autoheader
		cp /usr/share/autoconf/build-aux/config.guess /usr/share/autoconf/build-aux/config.sub "$src/"
		./configure --prefix=/usr --includedir=/usr/include --libdir=/usr/lib/x86_64-linux-gnu \
			--with-libexec-libdir-suffix=/x86_64-linux-gnu --with-libexec-leaf-dir=xen-4.17 \
			--sysconfdir=/etc --localstatedir=/var --disable-stubdom \
			--with-system-qemu=/usr/libexec/xen-qemu-system-i386 \
			--enable-ovmf --with-system-ovmf=/usr/share/ovmf/OVMF.fd \
			--with-system-seabios=/usr/share/seabios/bios-256k.bin \
			--disable-qemu-traditional --disable-rombios --disable-pvshim --disable-ocamltools \
			--disable-golang --disable-xsmpolicy --disable-monitors --disable-ipxe --disable-docs
	) >"$out/configure.log" 2>&1 || { tail -n 40 "$out/configure.log" >&2; die "configure failed ($out/configure.log)"; }
fi

# 4. libxenlight and the libraries it links against, in dependency order.
jobs=$(nproc)
make -C "$src/tools/include" -j"$jobs" >"$out/make.log" 2>&1 || { tail -n 40 "$out/make.log" >&2; die "make tools/include failed"; }
for l in toolcore toollog evtchn gnttab call foreignmemory devicemodel ctrl guest hypfs store light; do
	make -C "$src/tools/libs/$l" -j"$jobs" >>"$out/make.log" 2>&1 ||
		{ tail -n 40 "$out/make.log" >&2; die "make tools/libs/$l failed ($out/make.log)"; }
done

# 5. Only libxenlight is swapped in: xl keeps Debian's other libraries.
so=$(find "$src/tools/libs/light" -maxdepth 1 -name 'libxenlight.so.4.17.*' -type f | head -n1)
[ -n "$so" ] || die "no libxenlight.so.4.17.* after the build"
mkdir -p "$out/lib"
install -m 0755 "$so" "$out/lib/libxenlight.so.4.17.tmp"
mv -f "$out/lib/libxenlight.so.4.17.tmp" "$out/lib/libxenlight.so.4.17"
echo "build-libxl.sh: $out/lib/libxenlight.so.4.17"
