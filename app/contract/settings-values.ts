/** The values of the settings that name a choice: the schema (engine) and the UI share them. */
export const ACCELERATORS = ['auto', 'kvm', 'tcg', 'hvf'] as const;
/**
 * The hypervisor driver. `auto` picks per host: vfkit on macOS 13+ when it
 * is installed, else QEMU with hvf; Hyper-V on Windows; QEMU (KVM when a
 * probe boot proves it, else TCG) on Linux. `accel` applies to QEMU only.
 */
export const DRIVER_SETTINGS = ['auto', 'qemu', 'vfkit', 'hyperv'] as const;
export type DriverSetting = (typeof DRIVER_SETTINGS)[number];
/**
 * How shared folders reach the VM. `auto`: virtio-fs where the driver has
 * it (vfkit; QEMU on Linux when virtiofsd can run for this user), reverse
 * sshfs elsewhere and as the fallback. `virtiofs` is the same, said
 * outright; `sshfs` keeps every share on reverse sshfs. Applies at start
 * (BERTH_SHARE_MECHANISM overrides it).
 */
export const SHARE_MECHANISM_SETTINGS = ['auto', 'virtiofs', 'sshfs'] as const;
