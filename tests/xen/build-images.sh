#!/bin/bash
# Assembles what the real-Xen stage boots under QEMU, into OUT_DIR:
#
#   xen.elf       Debian's Xen 4.17 hypervisor, gunzipped (QEMU's -kernel
#                 loads it as a multiboot image)
#   vmlinux       Debian's 6.1 kernel, uncompressed (dom0 and guests: an XZ
#                 image costs ~13 s to unpack under emulation)
#   dom0.cpio     dom0's initramfs: busybox, bash, Debian's xl, xenstored,
#                 xenconsoled, the hotplug scripts, the project's programs,
#                 the kernel modules, /init and the scenarios; the guest's
#                 kernel and initramfs are inside it, under /guest
#
# The hypervisor and kernel packages are fetched with `apt-get download`
# into OUT_DIR/cache (kept between runs) and unpacked with `dpkg -x`;
# nothing is installed into the host's /boot.  The hypervisor is the
# version of the installed xen-utils-4.17 (tools/install-deps.sh), whose
# xl, xenstored and libraries dom0 gets, with every shared library found
# by ldd.
#
#   build-images.sh OUT_DIR XEN_LOOPD XEN_LOOPCTL BLOCK_LOOPD
#
# XEN_STAGE_LIBXL=DIR adds DIR/libxenlight.so.4.17 (a libxl built with the
# empty-script change) as /opt/libxl-empty-script, for scenario 6.
set -euo pipefail

[ $# = 4 ] || { echo "usage: build-images.sh OUT_DIR XEN_LOOPD XEN_LOOPCTL BLOCK_LOOPD" >&2; exit 2; }
out=$1
progs=("$2" "$3" "$4")
here=$(cd "$(dirname "$0")" && pwd)
for p in "${progs[@]}"; do
	[ -x "$p" ] || { echo "build-images.sh: $p is not an executable" >&2; exit 1; }
done
for c in apt-get apt-cache dpkg-deb cpio busybox ldd ldconfig python3; do
	command -v "$c" >/dev/null || { echo "build-images.sh: $c is missing (tools/install-deps.sh)" >&2; exit 1; }
done
[ -x /usr/lib/xen-4.17/bin/xl ] || { echo "build-images.sh: xen-utils-4.17 is not installed" >&2; exit 1; }
busybox_bin=$(command -v busybox)
! ldd "$busybox_bin" >/dev/null 2>&1 ||
	{ echo "build-images.sh: $busybox_bin is not static (install busybox-static)" >&2; exit 1; }

mkdir -p "$out/cache"
cache=$(cd "$out/cache" && pwd)
out=$(cd "$out" && pwd)

# ------------------------------------------------------------ the packages
xen_ver=$(dpkg-query -W -f='${Version}' xen-utils-4.17)
# The kernel the linux-image-amd64 metapackage names now.
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
[ -n "$kpkg" ] || { echo "build-images.sh: apt-cache does not know linux-image-amd64 (apt-get update?)" >&2; exit 1; }

fetch() { # fetch PACKAGE VERSION — into the cache unless it is there
	local pkg=$1 ver=$2 f
	f=$(find "$cache" -maxdepth 1 -name "${pkg}_*.deb" | head -n1)
	if [ -n "$f" ] && [ "$(dpkg-deb -f "$f" Version)" = "$ver" ]; then
		echo "$f"
		return 0
	fi
	rm -f "$cache/${pkg}"_*.deb
	# apt's sandbox user cannot write into the build directory.
	(cd "$cache" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$ver" >&2) ||
		{ echo "build-images.sh: apt-get download $pkg=$ver failed" >&2; return 1; }
	find "$cache" -maxdepth 1 -name "${pkg}_*.deb" | head -n1
}
kver=$(apt-cache policy "$kpkg" | awk '/Candidate:/ { print $2 }')
xen_deb=$(fetch xen-hypervisor-4.17-amd64 "$xen_ver")
k_deb=$(fetch "$kpkg" "$kver")

ex=$out/extract
stamp="$xen_deb $k_deb"
if [ "$(cat "$ex/.stamp" 2>/dev/null)" != "$stamp" ]; then
	rm -rf "$ex"
	mkdir -p "$ex"
	dpkg -x "$xen_deb" "$ex"
	dpkg -x "$k_deb" "$ex"
	echo "$stamp" >"$ex/.stamp"
fi
kname=${kpkg#linux-image-}
moddir=$ex/lib/modules/$kname

if [ ! -s "$out/xen.elf" ] || [ "$out/xen.elf" -ot "$ex/.stamp" ]; then
	gzip -dc "$ex/boot/xen-4.17-amd64.gz" >"$out/xen.elf.tmp"
	mv "$out/xen.elf.tmp" "$out/xen.elf"
fi
if [ ! -s "$out/vmlinux" ] || [ "$out/vmlinux" -ot "$ex/.stamp" ]; then
	# The uncompressed ELF inside the bzImage: the payload starts at the
	# first XZ (Debian's choice) or gzip signature that decompresses to
	# an ELF file.
	python3 - "$ex/boot/vmlinuz-$kname" "$out/vmlinux.tmp" <<'PY'
import gzip, lzma, sys, zlib
data = open(sys.argv[1], "rb").read()
def tries():
    for magic, unpack in ((b"\xfd7zXZ\x00", lambda b: lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(b)),
                          (b"\x1f\x8b\x08", lambda b: zlib.decompressobj(31).decompress(b))):
        i = data.find(magic)
        while i >= 0:
            yield i, unpack
            i = data.find(magic, i + 1)
for i, unpack in tries():
    try:
        elf = unpack(data[i:])
    except Exception:
        continue
    if elf[:4] == b"\x7fELF":
        open(sys.argv[2], "wb").write(elf)
        sys.exit(0)
sys.exit("no XZ or gzip ELF payload in " + sys.argv[1])
PY
	mv "$out/vmlinux.tmp" "$out/vmlinux"
fi

# ------------------------------------------------------------ root trees
# put ROOT SRC [DEST] — copy a program or library (following links) and
# every shared library it needs.
put() {
	local root=$1 src=$2 dest=${3:-$2} lib
	mkdir -p "$root$(dirname "$dest")"
	cp -L "$src" "$root$dest"
	while read -r lib; do
		[ -e "$root$lib" ] && continue
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done < <(ldd "$src" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
}

# skeleton ROOT — merged-/usr layout with busybox's applets.
skeleton() {
	local root=$1 a
	mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib,usr/lib64,dev,proc,sys,run,tmp,etc,var,modules}
	ln -s usr/bin "$root/bin"
	ln -s usr/sbin "$root/sbin"
	ln -s usr/lib "$root/lib"
	ln -s usr/lib64 "$root/lib64"
	cp "$busybox_bin" "$root/usr/bin/busybox"
	while read -r a; do
		[ -e "$root/$a" ] || [ -L "$root/$a" ] || ln -s /usr/bin/busybox "$root/$a"
	done < <(busybox --list-full | sed 's,^/*,,' | grep -v '^usr/bin/busybox$')
}

# mkcpio ROOT FILE — a newc archive owned by root (uncompressed: the
# kernel unpacks it faster under emulation than it would decompress it).
mkcpio() {
	(cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$2.tmp"
	mv "$2.tmp" "$2"
}

stage=$out/stage
rm -rf "$stage"

# The guest: busybox, blkfront, and the agent that reports what it reads.
g=$stage/guest
skeleton "$g"
cp "$moddir/kernel/drivers/block/xen-blkfront.ko" "$g/modules/"
install -m 0755 "$here/guest-init" "$g/init"
mkcpio "$g" "$stage/guest.cpio"

# dom0.
d=$stage/dom0
skeleton "$d"
# Host programs take the place of busybox's applets where the stock
# hotplug scripts need their full options.
for p in /bin/bash /sbin/losetup /usr/bin/flock /usr/bin/stat /usr/bin/timeout; do
	rm -f "$d$p" "$d/usr${p#/usr}"
	put "$d" "$p" "/usr${p#/usr}"
done
for p in /usr/lib/xen-4.17/bin/{xl,xenstored,xenconsoled,xen-init-dom0}; do
	put "$d" "$p"
done
# xl's pthread_cancel dlopens libgcc_s.
put "$d" "$(ldconfig -p | awk '/libgcc_s.so.1 .*x86-64/ { print $NF; exit }')" /usr/lib/x86_64-linux-gnu/libgcc_s.so.1
for p in /usr/bin/xenstore-{read,write,rm,list,exists,ls,chmod,watch}; do
	rm -f "$d$p"
	put "$d" "$p"
done
mkdir -p "$d/etc/xen/scripts"
cp -a /etc/xen/scripts/. "$d/etc/xen/scripts/"
printf 'autoballoon="off"\n' >"$d/etc/xen/xl.conf"
put "$d" "${progs[0]}" /usr/sbin/xen-loopd
put "$d" "${progs[1]}" /usr/sbin/xen-loopctl
put "$d" "${progs[2]}" /etc/xen/scripts/block-loopd
# A user service manager, for scenario 5's restarts with an fd store.
put "$d" /lib/systemd/systemd /usr/lib/systemd/systemd
put "$d" /usr/bin/systemd-run
put "$d" /usr/bin/systemctl
mkdir -p "$d/usr/lib/systemd/user"
dpkg -L systemd | grep -E '^/usr/lib/systemd/user/([^/]+\.(target|slice)|systemd-exit\.service)$' | while read -r f; do
	if [ -f "$f" ]; then cp "$f" "$d/usr/lib/systemd/user/"; fi
done
printf 'root:x:0:0:root:/root:/bin/bash\n' >"$d/etc/passwd"
printf 'root:x:0:\n' >"$d/etc/group"
for m in drivers/xen/xen-privcmd drivers/xen/xenfs/xenfs drivers/xen/xen-evtchn drivers/xen/xen-gntdev \
	drivers/xen/xen-gntalloc drivers/block/loop drivers/block/xen-blkback/xen-blkback; do
	cp "$moddir/kernel/$m.ko" "$d/modules/"
done
# Scenario 6's hook: a libxenlight with the empty-script change.
if [ -n "${XEN_STAGE_LIBXL:-}" ]; then
	[ -f "$XEN_STAGE_LIBXL/libxenlight.so.4.17" ] ||
		{ echo "build-images.sh: no libxenlight.so.4.17 in XEN_STAGE_LIBXL=$XEN_STAGE_LIBXL" >&2; exit 1; }
	put "$d" "$XEN_STAGE_LIBXL/libxenlight.so.4.17" /opt/libxl-empty-script/libxenlight.so.4.17
fi
install -m 0755 "$here/dom0-init" "$d/init"
install -m 0644 "$here/scenarios.sh" "$d/scenarios.sh"
mkdir -p "$d/guest"
cp "$out/vmlinux" "$d/guest/vmlinux"
cp "$stage/guest.cpio" "$d/guest/initrd.cpio"
mkcpio "$d" "$out/dom0.cpio"
rm -rf "$stage"

{
	echo "xen-hypervisor-4.17-amd64 $xen_ver"
	echo "$kpkg $kver"
} >"$out/versions"
echo "build-images.sh: $out/xen.elf $out/vmlinux $out/dom0.cpio ($(du -m "$out/dom0.cpio" | cut -f1) MiB)"
