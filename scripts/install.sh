#!/usr/bin/env bash
# Install what Berth needs on this machine, build it, and start it.
#   ./scripts/install.sh            install, build, start
#   BERTH_NO_START=1 ./scripts/install.sh   install and build only
# Linux (Debian/Ubuntu) is supported here; macOS and Windows use the desktop
# app's installer.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/common.sh
need_linux_node "this script sets Berth up on Linux" "On macOS and Windows, install the Berth desktop app."

case "$(uname -m)" in
x86_64) qemu_pkg=qemu-system-x86 qemu_bin=qemu-system-x86_64 ;;
aarch64 | arm64) qemu_pkg=qemu-system-arm qemu_bin=qemu-system-aarch64 ;;
*) die "no guest image for $(uname -m)" "Berth runs on x86_64 and arm64 hosts." ;;
esac

# Tools to run the VM, and to build its image from the host's apt sources.
missing=()
command -v "$qemu_bin" >/dev/null || missing+=("$qemu_pkg")
command -v qemu-img >/dev/null || missing+=(qemu-utils)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v mksquashfs >/dev/null || missing+=(squashfs-tools)
command -v cpio >/dev/null || missing+=(cpio)
[ -x /sbin/modprobe ] || [ -x /usr/sbin/modprobe ] || missing+=(kmod)
# The image's EFI disk: GPT, FAT and its files.
[ -x /sbin/sfdisk ] || [ -x /usr/sbin/sfdisk ] || missing+=(fdisk)
[ -x /sbin/mkfs.vfat ] || [ -x /usr/sbin/mkfs.vfat ] || missing+=(dosfstools)
command -v mcopy >/dev/null || missing+=(mtools)
if [ ${#missing[@]} -gt 0 ]; then
	command -v apt-get >/dev/null || die "missing: ${missing[*]}" "Install them with your package manager, then run this again."
	say "installing ${missing[*]}"
	apt_install "${missing[@]}"
fi

say "installing Node packages"
npm ci --no-fund --no-audit
say "building Berth"
npm run build --silent

cache=$(node -e 'import("./dist/app/base/paths.js").then(m => console.log(m.cacheDir()))')
say "building the guest image (cached in $cache; a few minutes the first time)"
if [ -z "$sudo" ]; then
	PATH="$PATH:/usr/sbin:/sbin" node dist/scripts/build-image.js
else
	$sudo env "PATH=$PATH:/usr/sbin:/sbin" "BERTH_CACHE=$cache" node dist/scripts/build-image.js
	$sudo chown -R "$(id -u):$(id -g)" "$cache"
fi

# Debian 12 has only QEMU's C virtiofsd: the Rust one comes from the guest's
# release (scripts/virtiofsd.sh). Without it virtiofs shares still work.
say "virtiofsd: the Rust one where this host has only QEMU's C one"
if [ -z "$sudo" ]; then
	PATH="$PATH:/usr/sbin:/sbin" node dist/scripts/build-virtiofsd.js || echo "warning: virtiofs shares use QEMU's C virtiofsd" >&2
else
	$sudo env "PATH=$PATH:/usr/sbin:/sbin" "BERTH_CACHE=$cache" node dist/scripts/build-virtiofsd.js || echo "warning: virtiofs shares use QEMU's C virtiofsd" >&2
	$sudo chown -R "$(id -u):$(id -g)" "$cache"
fi

if [ -n "${BERTH_NO_START:-}" ]; then
	say "Berth is built. Start it with: node bin/berth.js start"
	exit 0
fi
say "starting Berth"
node bin/berth.js start
cat <<EOM

The berth command is $(pwd)/bin/berth.js. To type just "berth", run:
  npm link        (or: alias berth="$(pwd)/bin/berth.js")
EOM
