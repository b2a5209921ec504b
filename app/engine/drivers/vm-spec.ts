import fs from 'node:fs';
import path from 'node:path';
import { BerthError } from '../../contract/errors.js';
import type { InstancePaths } from '../../base/paths.js';
import type { Accelerator, DiskSpec, DriverName, GuestArch, GuestTraits, ShareSpec, VmSpec } from './driver.js';
import { DRIVER_FEATURES } from './features.js';

/**
 * The VM spec for a driver: the same instance, image and resources, laid
 * out the way that hypervisor takes them. QEMU and vfkit boot the kernel
 * and initramfs directly and attach the raw disks; Hyper-V (generation 2)
 * boots only through UEFI and attaches only virtual hard disks, so it gets
 * the image's Hyper-V build (efi.vhdx: the EFI disk, whose second
 * partition `berth-root` is the root image), a dynamic VHDX data
 * disk it makes itself, and the config disk as a fixed VHD.
 */

/** The Hyper-V build of a guest image, next to its raw files. */
export const HYPERV_IMAGE_FILES = { efi: 'efi.vhdx' } as const;

export interface SpecInputs {
  paths: Pick<
    InstancePaths,
    'name' | 'dir' | 'dataDisk' | 'configDisk' | 'serialLog' | 'qemuPid' | 'qmpSocket' | 'vfkitPid' | 'vfkitSocket' | 'dataVhdx' | 'configVhd'
  >;
  /**
   * `boot: 'efi'` (BERTH_BOOT=efi, see image-store bootModeFor): QEMU or
   * vfkit boot `efiImage` through UEFI; it carries the root image as a GPT
   * partition, so there is no root disk.
   */
  image: { dir: string; kernel: string; initrd: string; rootfs: string; boot?: string; efiImage?: string };
  arch: GuestArch;
  accel: Accelerator;
  cpus: number;
  memoryMiB: number;
  diskGiB: number;
  sshHostPort: number;
  extraHostForwards?: string[];
  /** Give the guest Rosetta (rosettaPlan's `use`; vfkit only). */
  rosetta?: boolean;
  /** virtio-fs devices (share/virtiofs.ts planShares); QEMU and vfkit only. */
  shares?: ShareSpec[];
}

export function buildVmSpec(driver: string, traits: GuestTraits, i: SpecInputs, exists: (p: string) => boolean = fs.existsSync): VmSpec {
  const p = i.paths;
  const base: VmSpec = {
    name: p.name,
    arch: i.arch,
    accel: i.accel,
    cpus: i.cpus,
    memoryMiB: i.memoryMiB,
    kernel: i.image.kernel,
    initrd: i.image.initrd,
    cmdline: `console=${traits.console} quiet panic=-1 apparmor=0`,
    disks: [
      { path: i.image.rootfs, serial: 'berth-root', readonly: true, format: 'raw' },
      { path: p.dataDisk, serial: 'berth-data', readonly: false, format: 'raw' },
      { path: p.configDisk, serial: 'berth-cfg', readonly: true, format: 'raw' },
    ],
    sshHostPort: i.sshHostPort,
    serialLog: p.serialLog,
    pidFile: p.qemuPid,
    controlSocket: p.qmpSocket,
  };
  if (driver !== 'hyperv' && i.shares?.length) base.shares = i.shares;
  if (driver !== 'hyperv' && i.image.boot === 'efi' && i.image.efiImage) {
    base.disks = base.disks.filter((d) => d.serial !== 'berth-root');
    base.efi = { image: i.image.efiImage, variableStore: path.join(p.dir, 'efi-vars.fd') };
  }
  if (driver === 'vfkit') {
    return { ...base, pidFile: p.vfkitPid, controlSocket: p.vfkitSocket, ...(i.rosetta && i.arch === 'aarch64' ? { rosetta: { tag: ROSETTA_TAG } } : {}) };
  }
  if (driver !== 'hyperv') return { ...base, extraHostForwards: i.extraHostForwards ?? [] };

  const efi = path.join(i.image.dir, HYPERV_IMAGE_FILES.efi);
  const missing = [efi].filter((f) => !exists(f));
  if (missing.length) {
    throw new BerthError(
      'IMAGE_MISSING',
      `this guest image has no Hyper-V build (${missing.map((f) => path.basename(f)).join(', ')} missing in ${i.image.dir})`,
      'Hyper-V boots the EFI build of the guest image as VHDX files; the vm-images recipe makes them (qemu-img convert -O vhdx) and a release ships them. QEMU and vfkit boot this image as it is.',
    );
  }
  const disks: DiskSpec[] = [
    { path: p.dataVhdx, serial: 'berth-data', readonly: false, format: 'raw', sizeBytes: i.diskGiB * 1024 ** 3 },
    { path: p.configVhd, serial: 'berth-cfg', readonly: true, format: 'raw' },
  ];
  return {
    ...base,
    disks,
    efi: { image: efi, variableStore: path.join(p.dir, 'efi-vars.fd') },
    pidFile: path.join(p.dir, 'hyperv.pid'),
    controlSocket: path.join(p.dir, 'hyperv.control'),
  };
}

/**
 * The virtiofs tag of Apple's Rosetta share (vfkit's `--device
 * rosetta,mountTag=`); the engine tells the guest through the config disk
 * (BERTH_ROSETTA), and rc.sysinit mounts it and registers the interpreter.
 */
export const ROSETTA_TAG = 'rosetta';

export interface RosettaPlan {
  /** Give this VM Rosetta. */
  use: boolean;
  /** The setting is on but this VM cannot have it: why, and what to do. */
  note?: string;
}

/**
 * Whether a VM gets Rosetta. Only Virtualization.framework offers it (Apple,
 * "Running Intel Binaries in Linux VMs with Rosetta"), so only the vfkit
 * driver with an arm64 guest on a Mac that has Rosetta installed. Elsewhere
 * the setting is a note, not an error, as `accel` is for non-QEMU drivers:
 * the same settings can meet a Mac without vfkit (auto picks QEMU) or an
 * x86_64 guest, and refusing to start there would break a VM that works,
 * only without amd64 binaries.
 */
export function rosettaPlan(setting: boolean, driver: string, arch: GuestArch, hostHasRosetta: boolean | undefined): RosettaPlan {
  if (!setting) return { use: false };
  const off = '`berth settings set rosetta=false` turns this note off.';
  if (!DRIVER_FEATURES[driver as DriverName]?.rosetta) {
    return {
      use: false,
      note: `Rosetta is on in settings but not used: only the vfkit driver (Virtualization.framework, on Apple silicon Macs) offers it, and this VM runs on ${driver}. On such a Mac, install vfkit (\`brew install vfkit\`) and use \`berth settings set driver=vfkit\` (or auto). ${off}`,
    };
  }
  if (arch !== 'aarch64') {
    return { use: false, note: `Rosetta is on in settings but not used: it runs amd64 binaries in an arm64 guest, and this guest is ${arch}. ${off}` };
  }
  if (hostHasRosetta === false) {
    return {
      use: false,
      note: `Rosetta is on in settings but not installed on this Mac: run \`softwareupdate --install-rosetta --agree-to-license\`, then \`berth restart\`. Or ${off}`,
    };
  }
  return { use: true };
}
