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
 * and attaches only VHD(X) files). `asked` (BERTH_BOOT, checked by the
 * tuning) picks another the driver can do (the integration tests boot `efi`
 * that way).
 */
export function bootModeFor(features: Pick<DriverFeatures, 'label' | 'bootModes'>, asked?: BootMode): BootMode {
  if (!asked) return features.bootModes[0]!;
  if (!features.bootModes.includes(asked)) {
    throw new BerthError(
      'INVALID_SETTINGS',
      `the ${features.label} driver cannot boot BERTH_BOOT=${asked}`,
      `${features.label} boots ${features.bootModes.join(' or ')}; unset BERTH_BOOT.`,
    );
  }
  return asked;
}
