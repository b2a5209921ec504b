import type { DriverCheck, HostFacts } from '../engine/drivers/host-detect.js';
import { DRIVER_FEATURES } from '../engine/drivers/features.js';
import { ACCELERATORS, DRIVER_SETTINGS, type DriverSetting } from '../contract/settings-values.js';

/**
 * Which values of the driver, accel and rosetta settings can work on this
 * host, and in doctor's words why the others cannot: what the Settings
 * screen disables (Rosetta, vfkit, Hyper-V and HVF on a Linux PC, say).
 */

export interface Choice {
  usable: boolean;
  reason?: string;
}

export interface DoctorChoices {
  driver: Record<DriverSetting, Choice>;
  accel: Record<(typeof ACCELERATORS)[number], Choice>;
  rosetta: Choice;
}

const OK: Choice = { usable: true };
const no = (reason: string): Choice => ({ usable: false, reason });

function hostName(f: Pick<HostFacts, 'platform' | 'arch'>): string {
  const os = f.platform === 'darwin' ? 'macOS' : f.platform === 'win32' ? 'Windows' : f.platform === 'linux' ? 'Linux' : f.platform;
  return `${os} ${f.arch}`;
}

export function settingChoices(
  facts: Pick<HostFacts, 'platform' | 'arch'>,
  drivers: DriverCheck[],
  rosetta?: { usable: boolean; note?: string },
): DoctorChoices {
  const check = (d: DriverCheck['driver']) => drivers.find((c) => c.driver === d);
  const driver = Object.fromEntries(
    DRIVER_SETTINGS.map((d) => {
      if (d === 'auto') return [d, drivers.some((c) => c.usable) ? OK : no('no driver can run the VM on this host (see the doctor panel)')];
      const c = check(d);
      return [d, c?.usable ? OK : no(c?.summary ?? `${d} was not checked`)];
    }),
  ) as DoctorChoices['driver'];

  // The accelerator applies to QEMU only: each one needs QEMU to run, and the host's hypervisor.
  const qemu = check('qemu');
  const found = qemu?.usable ? String(qemu.details.accel ?? 'tcg') : undefined;
  const noQemu = `only the QEMU driver takes an accelerator, and QEMU cannot run here: ${qemu?.summary ?? 'not checked'}`;
  const hostOwn = (accel: 'kvm' | 'hvf'): Choice => {
    const needs = accel === 'kvm' ? 'linux' : 'darwin';
    if (facts.platform !== needs) {
      return no(
        accel === 'kvm'
          ? `KVM is the Linux kernel's hypervisor; this host runs ${hostName(facts)}`
          : `HVF is macOS's Hypervisor.framework; this host runs ${hostName(facts)}`,
      );
    }
    if (!qemu?.usable) return no(noQemu);
    if (found === accel) return OK;
    return no(qemu.warnings.find((w) => /kvm|Hypervisor\.framework|emulation/i.test(w)) ?? `QEMU found no ${accel.toUpperCase()} here`);
  };
  const accel: DoctorChoices['accel'] = {
    auto: driver.auto,
    kvm: hostOwn('kvm'),
    hvf: hostOwn('hvf'),
    tcg: qemu?.usable ? OK : no(noQemu),
  };

  // Rosetta: Apple silicon, a driver that offers it (vfkit), Rosetta installed.
  const offering = drivers.find((c) => DRIVER_FEATURES[c.driver].rosetta);
  let rosettaChoice: Choice;
  if (facts.platform !== 'darwin' || facts.arch !== 'arm64')
    rosettaChoice = no(`Rosetta needs a Mac with Apple silicon and the vfkit driver; this host runs ${hostName(facts)}`);
  else if (!offering?.usable) rosettaChoice = no(`Rosetta needs the vfkit driver, which cannot run here: ${offering?.summary ?? 'not checked'}`);
  else if (offering.details.rosetta === false) rosettaChoice = no(offering.warnings.find((w) => /Rosetta/.test(w)) ?? 'Rosetta is not installed');
  else rosettaChoice = rosetta && !rosetta.usable && rosetta.note ? { usable: true, reason: rosetta.note } : OK;
  return { driver, accel, rosetta: rosettaChoice };
}
