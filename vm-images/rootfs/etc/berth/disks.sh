# Finding Berth's disks in the guest (sourced by rc.sysinit; POSIX sh plus
# `local`, so a unit test runs it with dash and busybox sh against a fake
# sysfs tree under $BERTH_SYSFS).
#
# A disk is named by the serial the engine gives it (berth-data, berth-cfg).
# virtio-blk carries that serial (QEMU serial=, vfkit deviceId=) in
# /sys/block/<dev>/serial. Hyper-V's synthetic SCSI disks carry no serial we
# can set, so there the name stands for a fixed place instead: controller 0,
# target 0, the LUN below, which is the ControllerLocation the engine's
# Add-VMHardDiskDrive gives it (HYPERV_DISK_LUNS in
# app/engine/drivers/hyperv.ts; a unit test keeps the two tables equal).
#
# Linux shows that place as the SCSI address H:C:T:L, the name of the
# directory /sys/block/<dev>/device points to; the last field is the LUN.
# This is how Azure's own udev rules name data disks by LUN
# (github.com/Azure/azure-vm-utils, udev/80-azure-disk.rules:
# `readlink /sys/class/block/%k/device | cut -d: -f4`), and Azure's docs
# ("Troubleshoot Linux VM device name changes", learn.microsoft.com) tie
# that field to the LUN a disk was attached at. Only hosts driven by
# hv_storvsc count (/sys/class/scsi_host/host<H>/proc_name), so a USB stick
# or any other SCSI disk is never taken for ours.

: "${BERTH_SYSFS:=/sys}"

# The LUN on SCSI controller 0 for each disk name (LUN 0 is the EFI boot
# disk, which the initramfs finds by its partition name instead).
berth_disk_lun() {
	case "$1" in
	berth-efi) echo 0 ;;
	berth-data) echo 1 ;;
	berth-cfg) echo 2 ;;
	*) return 1 ;;
	esac
}

# /dev/<dev> of the disk whose serial is $1.
berth_disk_by_serial() {
	local s v d
	for s in "$BERTH_SYSFS"/block/*/serial; do
		[ -f "$s" ] || continue
		# virtio-blk's serial has no trailing newline: `read` then fails
		# at end of file but has read the value all the same.
		v=""
		read -r v <"$s"
		if [ "$v" = "$1" ]; then
			d=${s%/serial}
			echo "/dev/${d##*/}"
			return 0
		fi
	done
	return 1
}

# True when the SCSI host number $1 is a Hyper-V storage controller.
berth_storvsc_host() {
	local p
	p=""
	read -r p <"$BERTH_SYSFS/class/scsi_host/host$1/proc_name" 2>/dev/null
	[ "$p" = storvsc ]
}

# True when this VM has a Hyper-V storage controller at all.
berth_have_storvsc() {
	local h
	for h in "$BERTH_SYSFS"/class/scsi_host/host*; do
		[ -e "$h" ] || continue
		berth_storvsc_host "${h##*/host}" && return 0
	done
	return 1
}

# /dev/<dev> of the disk named $1 by its Hyper-V SCSI address H:0:0:<LUN>.
# More than one such disk would be a VM Berth did not make: refuse to guess
# (status 2, which berth_wait_disk does not wait out).
berth_disk_by_lun() {
	local lun found d addr h rest c t l
	lun=$(berth_disk_lun "$1") || return 1
	found=""
	for d in "$BERTH_SYSFS"/block/sd*; do
		[ -e "$d/device" ] || continue
		addr=$(readlink "$d/device") || continue
		addr=${addr##*/}
		case "$addr" in
		*[!0-9:]* | *:*:*:*:* | :* | *: | *::*) continue ;;
		*:*:*:*) ;;
		*) continue ;;
		esac
		h=${addr%%:*}
		rest=${addr#*:}
		c=${rest%%:*}
		rest=${rest#*:}
		t=${rest%%:*}
		l=${rest#*:}
		[ "$c" = 0 ] && [ "$t" = 0 ] && [ "$l" = "$lun" ] || continue
		berth_storvsc_host "$h" || continue
		if [ -n "$found" ]; then
			echo "berth-disks: two Hyper-V disks at LUN $lun (${found#/dev/} and ${d##*/}); not guessing which is $1" >&2
			return 2
		fi
		found=/dev/${d##*/}
	done
	[ -n "$found" ] || return 1
	echo "berth-disks: $1 is $found (Hyper-V SCSI LUN $lun)" >&2
	echo "$found"
}

# /dev/<dev> of the disk named $1: by serial, else by Hyper-V SCSI LUN.
berth_find_disk() {
	berth_disk_by_serial "$1" || berth_disk_by_lun "$1"
}

# berth_find_disk, waiting up to $2 tenths of a second (default 50) on
# Hyper-V, whose SCSI scan runs in the background: the initramfs saw the
# boot disk, the other LUNs may still be coming. virtio disks are all there
# once their driver loaded, so elsewhere there is no wait.
berth_wait_disk() {
	local tries rc
	tries=${2:-50}
	while :; do
		berth_find_disk "$1"
		rc=$?
		[ "$rc" = 0 ] && return 0
		[ "$rc" = 1 ] && [ "$tries" -gt 0 ] && berth_have_storvsc || return 1
		tries=$((tries - 1))
		sleep 0.1
	done
}
