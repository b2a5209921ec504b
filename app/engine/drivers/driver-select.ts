import { BerthError } from '../../contract/errors.js';
import type { DriverSetting } from '../../contract/settings-values.js';
import type { Driver, GuestArch } from './driver.js';
import { DRIVER_FEATURES } from './features.js';
import { describeHost, detectDrivers, realHostFacts, type DriverCheck, type DriverName, type HostFacts, type HostTools } from './host-detect.js';
import { HypervDriver, type HypervDriverOptions } from './hyperv.js';
import { QemuDriver, type QemuTools } from './qemu.js';
import type { QemuHost } from './qemu-host.js';
import { VfkitDriver, type VfkitDriverOptions } from './vfkit.js';

/** What the drivers take from the overrides: binaries and the Hyper-V switch. */
export type DriverTuning = HostTools & QemuTools;

/**
 * Which driver runs the VM, and why: the one place that turns the `driver`
 * setting and host-detect's verdicts into a Driver. `auto` takes the first
 * usable driver in the host's preference order (host-detect's order, also
 * what `berth doctor` recommends):
 *   macOS   vfkit (Virtualization.framework, macOS 13+) when installed, else
 *           QEMU with hvf (Homebrew's qemu)
 *   Windows Hyper-V
 *   Linux   QEMU; KVM once a probe boot proves it (accel-probe.ts), else TCG
 * This is what Lima (vz by default on macOS 13+ since 1.0, QEMU otherwise)
 * and podman machine (a per-OS default provider, changeable in
 * containers.conf) do; unlike them, a driver that is named but cannot run
 * here is an error with host-detect's reason, never a silent fallback.
 */

export interface DriverChoice {
  name: DriverName;
  /** One line for `berth status`: why this driver. */
  reason: string;
  /** Usable, but worse than it could be (TCG, no Rosetta, ...). */
  warnings: string[];
  /** Every driver's verdict, in preference order. */
  checks: DriverCheck[];
}

export interface ChooseOptions {
  facts?: HostFacts;
  /** The guest image's architecture; vfkit and Hyper-V run only the host's own. */
  guestArch?: GuestArch;
}

export async function chooseDriver(requested: DriverSetting, o: ChooseOptions = {}): Promise<DriverChoice> {
  const facts = o.facts ?? realHostFacts();
  const checks = await detectDrivers(facts, { guestArch: o.guestArch });
  if (requested !== 'auto') {
    const c = checks.find((x) => x.driver === requested)!;
    if (!c.usable) {
      const p = c.problem!;
      throw new BerthError(
        p.code,
        `the ${DRIVER_FEATURES[requested].label} driver set in settings cannot run here: ${p.message}`,
        `${p.hint} Or let Berth pick one: \`berth settings set driver=auto\` (\`berth doctor\` shows every driver).`,
        p.details,
      );
    }
    return { name: c.driver, reason: `set in settings; ${c.summary}`, warnings: c.warnings, checks };
  }
  const i = checks.findIndex((c) => c.usable);
  if (i < 0) {
    // The host's first choice says best what to do (install QEMU, turn Hyper-V on).
    const first = checks.find((c) => c.problem && c.problem.code !== 'UNSUPPORTED_OS') ?? checks[0]!;
    const p = first.problem!;
    const os = (await describeHost(facts)).os;
    throw new BerthError(
      p.code,
      `no VM driver can run on this host (${os}): ${DRIVER_FEATURES[first.driver].label}: ${p.message}`,
      `${p.hint} \`berth doctor\` shows every driver and why.`,
      p.details,
    );
  }
  const c = checks[i]!;
  const passed = checks
    .slice(0, i)
    .filter((x) => x.problem?.code !== 'UNSUPPORTED_OS')
    .map((x) => `${DRIVER_FEATURES[x.driver].label} is not usable (${x.summary})`);
  const reason = `auto: ${passed.length ? `${passed.join('; ')}, so ` : ''}${c.summary}`;
  return { name: c.driver, reason, warnings: c.warnings, checks };
}

export interface DriverOptions {
  /** The host QEMU runs on (tests simulate a Mac). */
  qemuHost?: QemuHost;
  /** The binaries and switch the overrides name (BERTH_QEMU, BERTH_VFKIT, ...). */
  tuning?: DriverTuning;
  vfkit?: VfkitDriverOptions;
  hyperv?: HypervDriverOptions;
}

/** A driver by name: the only place drivers are constructed. */
export function createDriver(name: DriverName, o: DriverOptions = {}): Driver {
  const t = o.tuning ?? {};
  switch (name) {
    case 'qemu':
      return new QemuDriver(o.qemuHost, undefined, { qemu: t.qemu, virtiofsd: t.virtiofsd });
    case 'vfkit':
      return new VfkitDriver({ binary: t.vfkit, ...o.vfkit });
    case 'hyperv':
      return new HypervDriver({ powershell: t.powershell, switchName: t.hypervSwitch, ...o.hyperv });
  }
}

export interface DriverSelection {
  driver: Driver;
  choice: DriverChoice;
}

/** What the engine asks for a driver: the setting and the guest's architecture. */
export type DriverProvider = (requested: DriverSetting, guestArch: GuestArch) => Promise<DriverSelection>;

/** Attach to a VM an earlier engine started: the driver it used, whatever the setting says now. */
export type DriverByName = (name: DriverName) => Driver;

export interface DriverFactory {
  select: DriverProvider;
  byName: DriverByName;
  /** The host, as QEMU and the accelerator probe see it. */
  host: QemuHost;
}

/** The factory the engine uses: real host facts unless a test gives others. */
export function driverFactory(o: DriverOptions & { facts?: HostFacts } = {}): DriverFactory {
  const facts = o.facts ?? realHostFacts(o.tuning);
  const host: QemuHost = o.qemuHost ?? { platform: facts.platform, arch: facts.arch };
  const opts = { ...o, qemuHost: host };
  return {
    host,
    byName: (name) => createDriver(name, opts),
    select: async (requested, guestArch) => {
      const choice = await chooseDriver(requested, { facts, guestArch });
      return { driver: createDriver(choice.name, opts), choice };
    },
  };
}
