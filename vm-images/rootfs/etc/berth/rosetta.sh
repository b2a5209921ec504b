# Rosetta for amd64 binaries in the arm64 guest (Apple silicon, vfkit driver).
# Sourced by rc.sysinit, which calls berth_rosetta when the engine put
# BERTH_ROSETTA=<virtiofs tag> in the config disk's config.env. POSIX sh plus
# `local`; BERTH_BINFMT, BERTH_ROSETTA_DIR, BERTH_MOUNT and BERTH_MODPROBE let
# a unit test run it against a fake tree with stand-ins for mount and
# modprobe (busybox sh runs its own applets before anything on PATH).
#
# Virtualization.framework shares the Rosetta runtime as a virtiofs
# directory (vfkit `--device rosetta,mountTag=<tag>`); the guest mounts it
# and registers its `rosetta` binary with binfmt_misc for x86_64 ELF files,
# as Apple's "Running Intel Binaries in Linux VMs with Rosetta" shows and
# Lima and podman machine do:
#   magic/mask: ELF, 64-bit, little-endian, version 1, e_type 2 or 3 (the
#     mask's 0xfe: executables and PIEs), e_machine 0x3e (x86-64);
#   flags CF: F (fix binary) opens the interpreter once, at registration, so
#     it runs in every container although /run/berth/rosetta is not in their
#     mount namespace; C takes credentials (setuid/setgid) from the binary
#     run, not from rosetta, and implies O (the binary is passed open). No P:
#     Rosetta does not expect the original argv[0] as an extra argument.
#   (Apple: update-binfmts --credentials yes --preserve no --fix-binary yes;
#   Lima: OCF; podman machine: FC.)

: "${BERTH_BINFMT:=/proc/sys/fs/binfmt_misc}"
: "${BERTH_ROSETTA_DIR:=/run/berth/rosetta}"
: "${BERTH_MOUNT:=mount}"
: "${BERTH_MODPROBE:=modprobe}"

BERTH_ROSETTA_MAGIC='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00'
BERTH_ROSETTA_MASK='\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'

# The line for binfmt_misc's register file (Documentation/admin-guide/
# binfmt-misc.rst: :name:type:offset:magic:mask:interpreter:flags). The
# kernel decodes the \x escapes itself.
berth_rosetta_entry() {
	printf ':rosetta:M::%s:%s:%s:CF\n' "$BERTH_ROSETTA_MAGIC" "$BERTH_ROSETTA_MASK" "$BERTH_ROSETTA_DIR/rosetta"
}

# Mount the Rosetta share tagged $1 and register it for x86_64 binaries.
# Says what went wrong on stderr and returns 1; the VM runs on without it.
berth_rosetta() {
	local tag
	tag=$1
	[ -n "$tag" ] || return 1
	$BERTH_MODPROBE -q virtiofs 2>/dev/null
	mkdir -p "$BERTH_ROSETTA_DIR"
	if ! $BERTH_MOUNT -t virtiofs -o ro "$tag" "$BERTH_ROSETTA_DIR"; then
		echo "berth-rosetta: cannot mount the Rosetta share \"$tag\" (the VM was started without it?)" >&2
		return 1
	fi
	if [ ! -x "$BERTH_ROSETTA_DIR/rosetta" ]; then
		echo "berth-rosetta: the \"$tag\" share has no rosetta binary" >&2
		return 1
	fi
	if [ ! -e "$BERTH_BINFMT/register" ]; then
		$BERTH_MODPROBE -q binfmt_misc 2>/dev/null
		if ! $BERTH_MOUNT -t binfmt_misc binfmt_misc "$BERTH_BINFMT"; then
			echo "berth-rosetta: cannot mount binfmt_misc on $BERTH_BINFMT" >&2
			return 1
		fi
	fi
	# Registered already (rc.sysinit runs once per boot; be safe anyway).
	[ -e "$BERTH_BINFMT/rosetta" ] && return 0
	if ! berth_rosetta_entry >"$BERTH_BINFMT/register"; then
		echo "berth-rosetta: binfmt_misc refused the Rosetta entry" >&2
		return 1
	fi
}
