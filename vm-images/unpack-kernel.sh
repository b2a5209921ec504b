#!/usr/bin/env bash
# Write the guest kernel in the one form every Berth boot path takes.
#
#   unpack-kernel.sh ARCH IN OUT
#
# ARCH is the Debian architecture (amd64, arm64), IN the kernel package's
# /boot/vmlinuz-*, OUT the image's vmlinuz.
#
# arm64: OUT is always the plain, uncompressed Image (docs: Linux
# Documentation/arch/arm64/booting.rst, "Decompress the kernel image": the
# arm64 kernel has no decompressor of its own). Virtualization.framework's
# Linux loader, which vfkit uses on Apple silicon, boots nothing else (vfkit
# doc/usage.md: "The kernel *must* be uncompressed or the VM will hang"),
# QEMU 7.2's -kernel does not unpack EFI zboot images, and systemd-boot starts
# the plain Image as an EFI application through its EFI stub. So one file
# serves QEMU, vfkit and the EFI disk, whatever Debian ships:
#   - a plain Image (magic "ARM\x64" at offset 0x38): copied;
#   - Image.gz (gzip magic 1f 8b): gunzipped;
#   - an EFI zboot image (CONFIG_EFI_ZBOOT: "MZ", then "zimg" at offset 4, the
#     payload's offset and size as little-endian 32-bit words at 8 and 12,
#     its compression's name at 24; drivers/firmware/efi/libstub/
#     zboot-header.S): the payload cut out and decompressed.
# The result must carry the Image magic, or the build fails here rather than
# leave a VM hanging on a Mac.
#
# amd64: the bzImage (setup header magic "HdrS" at 0x202) is what QEMU and
# the EFI stub take; it is copied.
#
# Prints one line saying what it found.
set -euo pipefail

arch=${1:?usage: unpack-kernel.sh ARCH IN OUT}
in=${2:?usage: unpack-kernel.sh ARCH IN OUT}
out=${3:?usage: unpack-kernel.sh ARCH IN OUT}

die() {
	echo "unpack-kernel.sh: $*" >&2
	exit 1
}
# $2 bytes of file $1 at offset $3, as lowercase hex without spaces.
hex() { od -An -tx1 -v -j "$3" -N "$2" "$1" | tr -d ' \n'; }
# A little-endian 32-bit word of file $1 at offset $2.
u32() { od -An -tu4 --endian=little -j "$2" -N 4 "$1" | tr -d ' \n'; }
# The NUL-terminated string of file $1 at offset $2 (up to 16 bytes).
cstr() { dd if="$1" bs=1 skip="$2" count=16 status=none | tr '\0' '\n' | sed -n 1p | tr -cd '[:alnum:]_-'; }
# Decompress stdin to stdout by a zboot compression name.
decompress() {
	case "$1" in
	gzip) gzip -dc ;;
	zstd*) zstd -dcq ;;
	xz*) xz -dc ;;
	lzma) xz --format=lzma -dc ;;
	*) die "$in: an EFI zboot kernel compressed with \"$1\", which this script cannot unpack" ;;
	esac
}

[ -s "$in" ] || die "$in is missing or empty"
tmp="$out.tmp"
rm -f "$tmp"
trap 'rm -f "$tmp"' EXIT
case "$arch" in
arm64)
	if [ "$(hex "$in" 4 56)" = 41524d64 ]; then
		form="a plain arm64 Image"
		cp "$in" "$tmp"
	elif [ "$(hex "$in" 2 0)" = 1f8b ]; then
		form="a gzip-compressed Image (Image.gz)"
		gzip -dc "$in" >"$tmp"
	elif [ "$(hex "$in" 2 0)" = 4d5a ] && [ "$(hex "$in" 4 4)" = 7a696d67 ]; then
		off=$(u32 "$in" 8)
		size=$(u32 "$in" 12)
		comp=$(cstr "$in" 24)
		[ -n "$comp" ] || die "$in: an EFI zboot kernel with no compression name"
		form="an EFI zboot image ($comp payload, $size bytes at $off)"
		dd if="$in" iflag=skip_bytes,count_bytes skip="$off" count="$size" bs=1M status=none | decompress "$comp" >"$tmp"
	else
		die "$in is not an arm64 kernel Berth can boot: neither a plain Image, nor Image.gz, nor EFI zboot (first bytes $(hex "$in" 8 0))"
	fi
	[ "$(hex "$tmp" 4 56)" = 41524d64 ] || die "$in ($form) did not unpack to an arm64 Image (no ARM\\x64 magic at offset 0x38)"
	echo "kernel: Debian's vmlinuz is $form; writing the uncompressed Image ($(stat -c %s "$tmp") bytes)"
	;;
amd64)
	[ "$(hex "$in" 4 514)" = 48647253 ] || die "$in is not an x86 bzImage (no HdrS magic at offset 0x202)"
	cp "$in" "$tmp"
	echo "kernel: Debian's vmlinuz is an x86 bzImage; writing it as it is"
	;;
*) die "no kernel handling for architecture $arch" ;;
esac
mv "$tmp" "$out"
