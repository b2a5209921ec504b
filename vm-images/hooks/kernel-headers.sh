#!/bin/sh
# mmdebstrap customize hook for the module build chroot (build.sh): the
# headers of one kernel, without the kernel. linux-headers-KVER depends on
# its linux-image, whose initramfs would be built for nothing (minutes
# under qemu-user): its other dependencies (the common headers, kbuild, the
# compiler the kernel was built with) are installed, and the package itself
# is unpacked in place.
#   kernel-headers.sh ROOTDIR KVER
set -eu
root=$1 kver=$2
pkg=linux-headers-$kver
deps=$(chroot "$root" apt-cache depends --no-recommends "$pkg" | sed -n 's/^ *Depends: \([^ <>|]*\)$/\1/p' | grep -v '^linux-image-' || true)
echo "$deps" | grep -q '^linux-kbuild-' || {
	echo "kernel-headers: $pkg does not depend on a linux-kbuild package (found: $deps)" >&2
	exit 1
}
# shellcheck disable=SC2086
chroot "$root" apt-get install -q -y --no-install-recommends $deps
chroot "$root" sh -c "cd /tmp && apt-get download -q '$pkg'"
dpkg-deb -x "$root"/tmp/"$pkg"_*.deb "$root"
rm -f "$root"/tmp/"$pkg"_*.deb
[ -f "$root/usr/src/$pkg/Makefile" ] || {
	echo "kernel-headers: no /usr/src/$pkg after unpacking" >&2
	exit 1
}
