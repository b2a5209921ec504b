#!/bin/sh
# mmdebstrap customize hook: download (not install) packages inside the
# chroot, with the chroot's apt, sources and architecture, and move them out.
# The kernel's meta package is resolved to the versioned image package first.
#   fetch-debs.sh ROOTDIR DESTDIR KERNEL_META [PACKAGE...]
# DESTDIR gets kernel.deb and <package>.deb.
set -eu
root=$1 dest=$2 meta=$3
shift 3
pkg=$(chroot "$root" apt-cache depends --no-recommends "$meta" | sed -n 's/^ *Depends: \(linux-image-[^ ]*\)$/\1/p' | head -n 1)
[ -n "$pkg" ] || { echo "fetch-debs: $meta has no linux-image dependency" >&2; exit 1; }
mkdir -p "$dest"
for p in "$pkg" "$@"; do
	chroot "$root" sh -c "cd /tmp && apt-get download -q '$p'"
	mv "$root"/tmp/"$p"_*.deb "$dest/$([ "$p" = "$pkg" ] && echo kernel || echo "$p").deb"
done
