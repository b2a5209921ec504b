#!/usr/bin/env bash
# Install what the tests need on this machine, then run every suite: unit,
# the VM tests (which build the guest images when none is cached, and boot
# them), and the browser tests. `npm test` runs it (the README's test
# command), and .ci/run runs exactly `npm test`.
#   npm test                       install, build, run everything
#   npm test -- unit e2e           install, build, run only these suites
# Installing packages needs root (it uses sudo when you are not root).
# Under CI=true a suite whose prerequisite is missing fails; elsewhere it is
# skipped, counted test by test, and named in the last line.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/common.sh
need_linux_node "the test suite runs on Linux hosts" "Run it on Debian 12 (or a VM with it)."
command -v apt-get >/dev/null || die "apt-get is not here" "The tests install Debian packages; run them on Debian 12 or Ubuntu."
[ -z "$sudo" ] || say "installing packages needs root: sudo may ask for your password"

# What each package is for:
#   qemu-system-x86, qemu-utils: run the VM, make disks and the VHDX
#   mmdebstrap, squashfs-tools, cpio, kmod: build the guest image
#   fdisk, dosfstools, mtools: the image's EFI disk
#   qemu-system-arm, qemu-user-static, binfmt-support, arch-test: build and
#     boot the arm64 guest (mmdebstrap needs arch-test for a foreign arch)
#   ovmf, qemu-efi-aarch64: UEFI firmware to boot the EFI disks
#   busybox-static: the tests' offline container images
#   sshfs, fuse3: the SFTP server's tests mount through the real sshfs
#   openssh-client: ssh-agent, ssh-keygen and ssh-add for the SSH agent test
#   gcc, libc6-dev: static test programs for the guest (echo server, watcher)
#   gcc-aarch64-linux-gnu, libc6-dev-arm64-cross (not on an arm64 host): the
#     same programs for the arm64 guest (BERTH_GUEST_ARCH=aarch64)
#   perl, zstd, util-linux: the sync agent, kernel unpacking, flock
#   chromium, fonts-dejavu-core: the dashboard's browser tests
#   docker-registry, apache2-utils, openssl: the registry tests' registries
#     on the host, their logins (htpasswd) and their CA and certificates
#   python3-fusepy, inotify-tools: the sync tests' case-insensitive host
#     folder (a small FUSE file system; bookworm has no ciopfs) and their
#     guest-side watcher
packages=(
	qemu-system-x86 qemu-utils mmdebstrap squashfs-tools cpio kmod ca-certificates
	fdisk dosfstools mtools
	qemu-system-arm qemu-user-static binfmt-support arch-test
	ovmf qemu-efi-aarch64
	busybox-static sshfs fuse3 openssh-client gcc libc6-dev perl zstd util-linux
	chromium fonts-dejavu-core
	python3-fusepy inotify-tools
	docker-registry apache2-utils openssl
)
[ "$(dpkg --print-architecture)" = arm64 ] || packages+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
say "installing the test packages: ${packages[*]}"
apt_install "${packages[@]}"
export PATH="$PATH:/usr/sbin:/sbin"

# The arm64 image's package scripts run through qemu-user: its binfmt handler
# must be registered (a container may start without binfmt_misc mounted).
if [ "$(dpkg --print-architecture)" != arm64 ]; then
	[ -e /proc/sys/fs/binfmt_misc/register ] || $sudo mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
		echo "warning: cannot mount binfmt_misc; the arm64 image cannot be built here" >&2
	$sudo update-binfmts --enable qemu-aarch64 || echo "warning: cannot enable the qemu-aarch64 binfmt handler" >&2
fi

say "installing Node packages"
npm ci --no-fund --no-audit
say "checking the code: lint (with the layer rule, app/README.md) and types"
npm run lint --silent
npm run typecheck --silent
say "building Berth and running the tests"
npm run build --silent
# The Rust virtiofsd from the guest's release where this host has only
# QEMU's C one (as install.sh does); the virtiofs tests run both.
cache=$(node -e 'import("./dist/app/base/paths.js").then(m => console.log(m.cacheDir()))')
$sudo env "PATH=$PATH" "BERTH_CACHE=$cache" node dist/scripts/build-virtiofsd.js || echo "warning: no Rust virtiofsd; its tests will say so" >&2
[ -z "$sudo" ] || $sudo chown -R "$(id -u):$(id -g)" "$cache"
node scripts/run-tests.mjs "$@"
