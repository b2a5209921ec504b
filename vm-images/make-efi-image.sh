#!/usr/bin/env bash
# Make the EFI-bootable guest image from a built direct-kernel image.
#
#   make-efi-image.sh OUTDIR ARCH SYSTEMD_BOOT_DEB
#
# OUTDIR holds vmlinuz, initrd.img and rootfs.squashfs (build.sh's output);
# it gets efi.img and efi.vhdx. ARCH is the Debian architecture (amd64,
# arm64); SYSTEMD_BOOT_DEB is that architecture's systemd-boot-efi package.
#
# efi.img is a GPT disk with two partitions:
#   1. the EFI system partition (FAT): systemd-boot at the removable-media
#      path (\EFI\BOOT\BOOTX64.EFI / BOOTAA64.EFI, so no firmware boot entry
#      is needed), one Boot Loader Specification entry with the kernel, the
#      initramfs and the command line of efi/cmdline.txt;
#   2. the root image (squashfs), partition name berth-root, which the
#      initramfs finds by that name on whatever bus the disk is.
# efi.vhdx is the same disk as a dynamic VHDX for Hyper-V generation 2.
# Needs sfdisk, mkfs.vfat, mtools and qemu-img. Progress lines start with "== ".
set -euo pipefail

out=${1:?usage: make-efi-image.sh OUTDIR ARCH SYSTEMD_BOOT_DEB}
arch=${2:?usage: make-efi-image.sh OUTDIR ARCH SYSTEMD_BOOT_DEB}
sdboot_deb=${3:?usage: make-efi-image.sh OUTDIR ARCH SYSTEMD_BOOT_DEB}
here=$(cd "$(dirname "$0")" && pwd)

step() { echo "== $*"; }
die() {
	echo "make-efi-image.sh: $*" >&2
	exit 1
}
for t in sfdisk mkfs.vfat mcopy mmd qemu-img dpkg-deb; do
	command -v "$t" >/dev/null || die "missing $t (apt-get install fdisk dosfstools mtools qemu-utils)"
done

# Per architecture: the removable-media loader name, systemd-boot's file name
# and the Discoverable Partitions type of a root partition.
case "$arch" in
amd64) efi_name=BOOTX64.EFI sdboot=systemd-bootx64.efi root_type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709 ;;
arm64) efi_name=BOOTAA64.EFI sdboot=systemd-bootaa64.efi root_type=B921B045-1DF0-41C3-AF44-4C6F280D3FAE ;;
*) die "no EFI image for architecture $arch" ;;
esac
cmdline=$(awk -v a="$arch" '$1 == a { $1 = ""; sub(/^ /, ""); print }' "$here/efi/cmdline.txt")
[ -n "$cmdline" ] || die "no command line for $arch in efi/cmdline.txt"

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-efi.XXXXXX")
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$sdboot_deb" "$work/sdboot"
loader=$(find "$work/sdboot" -name "$sdboot" -print -quit)
[ -n "$loader" ] || die "$sdboot_deb has no $sdboot"

step "EFI system partition: systemd-boot $(dpkg-deb -f "$sdboot_deb" Version), kernel, initramfs"
mkdir -p "$work/esp"
cp "$loader" "$work/esp/$efi_name"
cp "$here/efi/loader.conf" "$work/esp/loader.conf"
{
	echo "title Berth"
	echo "linux /berth/vmlinuz"
	echo "initrd /berth/initrd.img"
	echo "options $cmdline"
} >"$work/esp/berth.conf"
cp "$out/vmlinuz" "$out/initrd.img" "$work/esp/"
# Fixed timestamps (FAT cannot hold dates before 1980) so that the same
# inputs make the same image.
touch -d '2000-01-01 00:00:00 UTC' "$work"/esp/*
mib=1048576
bytes=$(du -cb "$work"/esp/* | tail -n 1 | cut -f1)
# FAT32 needs 65525 clusters: at least 33 MiB with 512-byte clusters; leave
# room for FAT and directory overhead.
esp_mib=$(((bytes + 4 * mib - 1) / mib + 4))
[ "$esp_mib" -ge 36 ] || esp_mib=36
esp=$work/esp.img
mkfs.vfat -C -F 32 -S 512 -s 1 -n BERTH-ESP -i 0be27000 "$esp" $((esp_mib * 1024)) >/dev/null
export MTOOLS_SKIP_CHECK=1
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries ::/berth
mcopy -m -i "$esp" "$work/esp/$efi_name" "::/EFI/BOOT/$efi_name"
mcopy -m -i "$esp" "$work/esp/loader.conf" ::/loader/loader.conf
mcopy -m -i "$esp" "$work/esp/berth.conf" ::/loader/entries/berth.conf
mcopy -m -i "$esp" "$work/esp/vmlinuz" "$work/esp/initrd.img" ::/berth/

step "GPT disk: ESP ${esp_mib} MiB, root image $(($(stat -c %s "$out/rootfs.squashfs") / mib)) MiB"
root_mib=$((($(stat -c %s "$out/rootfs.squashfs") + mib - 1) / mib))
# 1 MiB before the first partition (GPT header and table) and 1 MiB after
# the last (backup table); Hyper-V wants a whole number of MiB.
img=$work/efi.img
rm -f "$img"
truncate -s $(((1 + esp_mib + root_mib + 1) * mib)) "$img"
sfdisk --quiet --no-reread --no-tell-kernel "$img" <<-GPT
	label: gpt
	label-id: 0BE27000-0000-4000-8000-000000000000
	first-lba: 2048
	start=1MiB, size=${esp_mib}MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=berth-esp, uuid=0BE27000-0000-4000-8000-000000000001
	size=${root_mib}MiB, type=${root_type}, name=berth-root, uuid=0BE27000-0000-4000-8000-000000000002, attrs=GUID:60
GPT
dd if="$esp" of="$img" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$out/rootfs.squashfs" of="$img" bs=1M seek=$((1 + esp_mib)) conv=notrunc status=none
mv "$img" "$out/efi.img"

step "VHDX for Hyper-V"
rm -f "$out/efi.vhdx"
# Dynamic, with 1 MiB blocks as Microsoft's "Best Practices for running Linux
# on Hyper-V" advise for Linux file systems (the 32 MiB default stores the
# ESP's empty space).
qemu-img convert -q -f raw -O vhdx -o subformat=dynamic,block_size=1M "$out/efi.img" "$out/efi.vhdx"
step "EFI image: efi.img $(du -h --apparent-size "$out/efi.img" | cut -f1), efi.vhdx $(du -h "$out/efi.vhdx" | cut -f1)"
