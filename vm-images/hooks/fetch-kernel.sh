#!/bin/sh
# mmdebstrap customize hook: download (not install) the guest kernel package
# inside the chroot, with the chroot's apt and sources, and move it out.
#   fetch-kernel.sh ROOTDIR META_PACKAGE DEST_DEB
set -eu
root=$1 meta=$2 dest=$3
pkg=$(chroot "$root" apt-cache depends --no-recommends "$meta" | sed -n 's/^ *Depends: \(linux-image-[^ ]*\)$/\1/p' | head -n 1)
[ -n "$pkg" ] || { echo "fetch-kernel: $meta has no linux-image dependency" >&2; exit 1; }
chroot "$root" sh -c "cd /tmp && apt-get download -q '$pkg'"
mv "$root"/tmp/"$pkg"_*.deb "$dest"
