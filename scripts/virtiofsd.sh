#!/usr/bin/env bash
# Fetch the Rust virtiofsd of the guest's Debian release (vm-images/suite.txt)
# for a host that has
# only QEMU's older C one (Debian 12 has no virtiofsd package; Debian 13 has
# the Rust one).
#
#   virtiofsd.sh OUTDIR SOURCES_FILE
#
# OUTDIR gets root/ (the virtiofsd package and the libraries it needs, C
# library and loader included, unpacked by mmdebstrap from SOURCES_FILE, an
# apt sources file taken from the host's own apt setup; apt checks the
# release signatures with the host's keyring) and `virtiofsd`, a launcher
# that runs it with that C library: the newer release's binary needs a newer
# glibc than the host's. Needs root (mmdebstrap's root mode) and mmdebstrap.
# Progress lines start with "== ".
set -euo pipefail

out=${1:?usage: virtiofsd.sh OUTDIR SOURCES_FILE}
sources=${2:?usage: virtiofsd.sh OUTDIR SOURCES_FILE}
suite_file="$(cd "$(dirname "$0")/.." && pwd)/vm-images/suite.txt"
suite=$(sed 's/#.*//' "$suite_file" | tr -d ' \t\n')

die() {
	echo "virtiofsd.sh: $*" >&2
	exit 1
}
[[ "$suite" =~ ^[a-z]+$ ]] || die "$suite_file must name one Debian release"
[ "$(id -u)" = 0 ] || die "unpacking needs root (mmdebstrap root mode); run it with sudo"
command -v mmdebstrap >/dev/null || die "missing mmdebstrap (apt-get install mmdebstrap)"
case "$(uname -m)" in
x86_64) multiarch=x86_64-linux-gnu loader=ld-linux-x86-64.so.2 ;;
aarch64) multiarch=aarch64-linux-gnu loader=ld-linux-aarch64.so.1 ;;
*) die "no virtiofsd for $(uname -m)" ;;
esac

echo "== unpacking virtiofsd from Debian $suite"
rm -rf "$out"
mkdir -p "$out"
# extract: the package and its dependencies unpacked, nothing installed or run.
mmdebstrap --mode=root --variant=extract --include=virtiofsd --skip=cleanup/reproducible \
	"$suite" "$out/root" "$sources" 2>&1 | sed -u 's/^/   /'
lib="$out/root/usr/lib/$multiarch"
[ -x "$out/root/usr/libexec/virtiofsd" ] || die "the virtiofsd package has no /usr/libexec/virtiofsd"
[ -x "$lib/$loader" ] || die "no $loader in the unpacked C library"
# Only what virtiofsd runs with is kept (the rest of the unpacked release is
# some 15 MiB of docs, locales and apt state).
rm -rf "$out/root/usr/share" "$out/root/var" "$out/root/etc"

# The launcher finds the files next to itself ($0 is the path it was run by),
# so the folder may be moved as a whole.
cat >"$out/virtiofsd" <<EOF
#!/bin/sh
# virtiofsd from Debian $suite, run by its own release's loader and C library.
here=\${0%/*}
exec "\$here/root/usr/lib/$multiarch/$loader" --library-path "\$here/root/usr/lib/$multiarch" "\$here/root/usr/libexec/virtiofsd" "\$@"
EOF
chmod 0755 "$out/virtiofsd"
"$out/virtiofsd" --version | head -1
echo "== virtiofsd is in $out"
