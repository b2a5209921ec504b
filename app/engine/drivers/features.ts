import { BerthError } from '../../contract/errors.js';
import type { BootMode, DriverFeatures, DriverName } from './driver.js';

/**
 * What each driver can do, as data (in the manner of Lima's
 * DriverFeatures): the engine, the image store, the share plan and
 * `berth doctor` ask these instead of comparing driver names. A driver's
 * `features` is its entry here; a fake driver in the tests brings its own.
 */
export const DRIVER_FEATURES: Record<DriverName, DriverFeatures> = {
  qemu: {
    label: 'QEMU',
    accelerator: 'choose',
    bootModes: ['kernel', 'efi'],
    diskFormat: 'raw',
    rosetta: false,
    ownProcess: true,
  },
  vfkit: {
    label: 'vfkit',
    accelerator: { accel: 'hvf', reason: 'Virtualization.framework (through vfkit)' },
    bootModes: ['kernel', 'efi'],
    diskFormat: 'raw',
    rosetta: true,
    ownProcess: true,
  },
  hyperv: {
    label: 'Hyper-V',
    accelerator: { accel: 'hyperv', reason: 'the Windows hypervisor (Hyper-V)' },
    bootModes: ['vhdx'],
    diskFormat: 'vhdx',
    rosetta: false,
    ownProcess: false,
  },
};

export const BOOT_MODES: readonly BootMode[] = ['kernel', 'efi', 'vhdx'];

/**
 * The artifact a driver boots (what is verified before a start; how the VM
 * spec uses it, root disk or EFI disk, is decided in vm-spec.ts): the
 * driver's first boot mode, the fastest it has (QEMU and vfkit boot the
 * kernel directly, no firmware; Hyper-V generation 2 only boots UEFI disks
 * and attaches only VHD(X) files). $BERTH_BOOT picks another the driver can
 * do (the integration tests boot `efi` that way).
 */
export function bootModeFor(features: Pick<DriverFeatures, 'label' | 'bootModes'>, env: NodeJS.ProcessEnv = process.env): BootMode {
  const asked = env.BERTH_BOOT;
  if (!asked) return features.bootModes[0]!;
  if (!(BOOT_MODES as readonly string[]).includes(asked)) {
    throw new BerthError('INVALID_SETTINGS', `BERTH_BOOT=${asked} is not a boot mode`, `Use BERTH_BOOT=${BOOT_MODES.join(', ')}, or unset it.`);
  }
  if (!features.bootModes.includes(asked as BootMode)) {
    throw new BerthError('INVALID_SETTINGS', `the ${features.label} driver cannot boot BERTH_BOOT=${asked}`, `${features.label} boots ${features.bootModes.join(' or ')}; unset BERTH_BOOT.`);
  }
  return asked as BootMode;
}
