# Sourced by install.sh and test.sh: messages, the host checks both need, and
# how to become root for apt (sudo when not root already).

say() { printf '\033[1m==>\033[0m %s\n' "$*"; }
die() {
	printf 'error: %s\nhint: %s\n' "$1" "$2" >&2
	exit 1
}

# need_linux_node "what this script does on Linux" "what to do elsewhere"
need_linux_node() {
	[ "$(uname -s)" = Linux ] || die "$1" "$2"
	command -v node >/dev/null || die "Node.js is not installed" "Install Node.js 20 or newer (https://nodejs.org or your package manager)."
	node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
		die "Node.js $(node --version) is too old" "Berth needs Node.js 20 or newer."
}

sudo=""
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null || die "installing packages needs root" "Run this as root, or install sudo."
	sudo="sudo"
fi

# apt waits for another apt (unattended upgrades, a second terminal) instead of failing.
apt_install() {
	$sudo apt-get -o DPkg::Lock::Timeout=600 update -q
	DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "$@"
}
