#!/usr/bin/env bash
# Build the Berth guest image from Debian packages.
#
#   build.sh OUTDIR SOURCES_FILE [ARCH]
#
# OUTDIR gets vmlinuz (on arm64 the uncompressed Image, see unpack-kernel.sh),
# initrd.img and rootfs.squashfs (direct kernel boot),
# and efi.img and efi.vhdx (UEFI boot, see make-efi-image.sh). SOURCES_FILE
# is an apt sources file (one-line or deb822) taken from the host's own apt
# setup; no mirror is named here. ARCH (amd64, arm64) defaults to the host's;
# another one is built through qemu-user-static's binfmt handlers. Needs root
# (mmdebstrap's root mode), mmdebstrap, mksquashfs, cpio, kmod's modprobe and
# what make-efi-image.sh needs. Progress lines start with "== ".
set -euo pipefail

out=${1:?usage: build.sh OUTDIR SOURCES_FILE [ARCH]}
sources=${2:?usage: build.sh OUTDIR SOURCES_FILE [ARCH]}
arch=${3:-$(dpkg --print-architecture)}
here=$(cd "$(dirname "$0")" && pwd)
suite=$(sed 's/#.*//' "$here/suite.txt" | tr -d ' \t\n')

step() { echo "== $*"; }
die() {
	echo "build.sh: $*" >&2
	exit 1
}
[[ "$suite" =~ ^[a-z]+$ ]] || die "$here/suite.txt must name one Debian release"

[ "$(id -u)" = 0 ] || die "the image build needs root (mmdebstrap root mode); run it with sudo"
for t in mmdebstrap mksquashfs cpio modprobe xz zstd; do
	command -v "$t" >/dev/null || die "missing $t (apt-get install mmdebstrap squashfs-tools cpio kmod xz-utils zstd)"
done
for t in sfdisk mkfs.vfat mcopy qemu-img; do
	command -v "$t" >/dev/null || die "missing $t (apt-get install fdisk dosfstools mtools qemu-utils)"
done
# A foreign architecture's maintainer scripts run through qemu-user.
if [ "$arch" != "$(dpkg --print-architecture)" ]; then
	case "$arch" in
	arm64) qarch=aarch64 ;;
	amd64) qarch=x86_64 ;;
	*) die "no guest image for architecture $arch" ;;
	esac
	# mmdebstrap asks arch-test whether the foreign architecture can run here.
	command -v arch-test >/dev/null || die "building for $arch here needs arch-test (apt-get install arch-test)"
	grep -qx enabled "/proc/sys/fs/binfmt_misc/qemu-$qarch" 2>/dev/null ||
		die "building for $arch here needs qemu-user-static's binfmt handler qemu-$qarch: apt-get install qemu-user-static binfmt-support, mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc, update-binfmts --enable qemu-$qarch"
fi

mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/berth-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/rootfs

packages=$(grep -v '^\s*#' "$here/packages.txt" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
kernel_meta=$(awk -v a="$arch" '$1 == a { print $2 }' "$here/kernel.txt")
[ -n "$kernel_meta" ] || die "no kernel package for architecture $arch in kernel.txt"

step "debootstrap $suite/$arch: $packages"
# Docs, man pages and locales are never unpacked (copyright files are kept).
# --verbose prints apt's and dpkg's own lines (Get:, Unpacking, Setting up),
# which the image store counts into progress (build-progress.ts).
mmdebstrap --mode=root --variant=minbase --arch="$arch" --verbose \
	--aptopt='APT::Install-Recommends "false"' \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/info/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--dpkgopt='path-exclude=/usr/share/lintian/*' \
	--include="$packages" \
	--customize-hook="\"$here/hooks/fetch-debs.sh\" \"\$1\" \"$work/debs\" $kernel_meta systemd-boot-efi" \
	"$suite" "$root" "$sources" 2>&1 | sed -u 's/^/   /'

kdeb=$work/debs/kernel.deb
step "kernel from $(dpkg-deb -f "$kdeb" Package) $(dpkg-deb -f "$kdeb" Version)"
mkdir -p "$work/kernel"
dpkg-deb -x "$kdeb" "$work/kernel"
# Kernels since trixie ship their modules under usr/lib/modules (merged
# /usr); the host's depmod and modprobe -d look under lib/modules.
if [ ! -d "$work/kernel/lib/modules" ] && [ -d "$work/kernel/usr/lib/modules" ]; then
	mkdir -p "$work/kernel/lib"
	mv "$work/kernel/usr/lib/modules" "$work/kernel/lib/modules"
fi
kver=$(ls "$work/kernel/lib/modules")
# One kernel for every boot path: on arm64 always the uncompressed Image,
# which vfkit's Linux loader on Apple silicon requires (see unpack-kernel.sh).
"$here/unpack-kernel.sh" "$arch" "$work/kernel/boot/vmlinuz-$kver" "$out/vmlinuz" | sed -u 's/^/== /'

moddir=$work/kernel/lib/modules/$kver
for d in $(sed -n 's/^drop://p' "$here/modules.txt"); do
	rm -rf "${moddir:?}/kernel/$d"
done
# Modules are stored uncompressed: the initramfs's busybox insmod takes only
# plain .ko files, and in the root image squashfs's zstd already compresses
# them, where an xz module would cost an xz unpack on every load (in the
# kernel or kmod; under emulation a visible part of dockerd's start).
find "$moddir" -name '*.ko.xz' -exec xz -d {} +
find "$moddir" -name '*.ko.zst' -exec zstd -dq --rm {} +
# Berth's own module (notify/: file events for host-side changes in shared
# folders), built against this kernel's headers in a throwaway chroot of the
# same suite and architecture (a foreign one through qemu-user).
step "berth_notify module for $kver"
kb=$work/kbuild
mmdebstrap --mode=root --variant=apt --arch="$arch" \
	--aptopt='APT::Install-Recommends "false"' \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--include=make \
	--customize-hook="\"$here/hooks/kernel-headers.sh\" \"\$1\" $kver" \
	"$suite" "$kb" "$sources" 2>&1 | sed -u 's/^/   /'
cp -r "$here/notify" "$kb/src"
chroot "$kb" make -s -C "/usr/src/linux-headers-$kver" M=/src modules 2>&1 | sed -u 's/^/   /'
[ -f "$kb/src/berth_notify.ko" ] || die "the berth_notify module did not build (see above)"
install -D -m 0644 "$kb/src/berth_notify.ko" "$moddir/extra/berth_notify.ko"
rm -rf "$kb"
depmod -b "$work/kernel" "$kver"
mkdir -p "$root/lib/modules"
cp -a "$moddir" "$root/lib/modules/"

step "guest files"
cp -a "$here/rootfs/." "$root/"
# No baked-in host keys, no passwords (root's is "*": no password matches it,
# and sshd, which runs without PAM, still takes the engine's key), no caches.
rm -f "$root"/etc/ssh/ssh_host_* "$root"/etc/machine-id
sed -i 's/^root:[^:]*:/root:*:/' "$root/etc/shadow"
# root's home lives on the data disk, not at /root: the host's home folder is
# shared at its own path, which is /root when the host user is root, and the
# engine's commands must not start in (or source startup files from) a share.
sed -i 's#^root:\([^:]*\):0:0:\([^:]*\):/root:#root:\1:0:0:\2:/var/lib/berth/root:#' "$root/etc/passwd"
grep -q '^root:[^:]*:0:0:[^:]*:/var/lib/berth/root:' "$root/etc/passwd" || die "could not move root's home"
# Tools docker.io ships that a VM never runs.
for f in $(grep -v '^\s*#' "$here/strip.txt"); do
	rm -f "$root/$f"
done
# iptables-legacy starts dockerd's networking much faster than nft and needs
# fewer modules.
chroot "$root" update-alternatives --quiet --set iptables /usr/sbin/iptables-legacy
chroot "$root" update-alternatives --quiet --set ip6tables /usr/sbin/ip6tables-legacy
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root"/tmp/*
ln -sf /bin/busybox "$root/sbin/poweroff"
ln -sf /bin/busybox "$root/sbin/reboot"
ln -sf /bin/busybox "$root/sbin/halt"
ln -sf /bin/busybox "$root/sbin/init"
mkdir -p "$root/mnt/data"

step "initramfs"
ird=$work/initramfs
mkdir -p "$ird"/{bin,dev,proc,sys,run,modules,lower,rw,newroot}
cp "$root/bin/busybox" "$ird/bin/busybox"
for a in sh mount insmod poweroff switch_root mkdir cat sleep usleep echo; do
	ln -s busybox "$ird/bin/$a"
done
cp "$here/initramfs/init" "$ird/init"
cp "$here/rootfs/etc/berth/stamp.sh" "$ird/stamp.sh"
chmod 0755 "$ird/init"
: >"$ird/modules/order"
: >"$ird/modules/optional"
# initrd_modules KEY LIST: the modules.txt line's modules, each after the
# ones it needs, in the initramfs and named in modules/LIST in load order
# (a module already in either list, this one included, is not repeated).
initrd_modules() {
	for m in $(sed -n "s/^$1://p" "$here/modules.txt"); do
		if [ "$2" = optional ]; then
			modprobe -d "$work/kernel" -S "$kver" --show-depends "$m" 2>/dev/null || echo "   (no module $m in this kernel)" >&2
		else
			modprobe -d "$work/kernel" -S "$kver" --show-depends "$m"
		fi
	done | awk '$1 == "insmod" { print $2 }' | while read -r ko; do
		grep -qxF "$(basename "$ko")" "$ird/modules/order" "$ird/modules/optional" && continue
		cp "$ko" "$ird/modules/"
		basename "$ko" >>"$ird/modules/$2"
	done
}
initrd_modules initrd order
# Hardware that is not always there (Hyper-V's VMBus and SCSI disks): the
# initramfs stops at the first of these that does not load.
initrd_modules 'initrd?' optional
(cd "$ird" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet --reproducible) | gzip -9n >"$out/initrd.img"

step "root image (squashfs, zstd)"
rm -f "$out/rootfs.squashfs"
mksquashfs "$root" "$out/rootfs.squashfs" -comp zstd -Xcompression-level 15 -noappend -quiet -no-progress \
	-all-time 0 -mkfs-time 0 >/dev/null
echo "$kver" >"$out/kernel-release"

"$here/make-efi-image.sh" "$out" "$arch" "$work/debs/systemd-boot-efi.deb"
step "done: $(du -sh "$out" | cut -f1) in $out"
