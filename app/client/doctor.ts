import fs from 'node:fs';
import path from 'node:path';
import {
  describeHost,
  detectDrivers,
  realHostFacts,
  recommendedDriver,
  type DriverCheck,
  type DriverName,
  type HostDescription,
  type HostFacts,
} from '../engine/drivers/host-detect.js';
import { DRIVER_FEATURES } from '../engine/drivers/features.js';
import { nativeGuestArch } from '../engine/drivers/qemu-host.js';
import { rosettaPlan } from '../engine/drivers/vm-spec.js';
import { cacheDir } from '../base/paths.js';
import { readTuning, tuningInEffect, type Tuning } from '../base/tuning.js';
import type { DriverSetting } from '../contract/settings-values.js';
import { settingChoices, type DoctorChoices } from './doctor-choices.js';

/**
 * `berth doctor`: which drivers can run Berth's VM here and why the others
 * cannot. The same JSON feeds the Troubleshoot screen.
 */

export interface DoctorJson {
  host: HostDescription;
  /** The accelerator probe's last verdict on this host (cached per host boot), if any. */
  lastProbe?: { accel: string; reason: string };
  drivers: DriverCheck[];
  /** The driver `auto` would pick, or null when none is usable. */
  recommended: DriverName | null;
  /** The instance's `driver` setting. */
  setting: DriverSetting;
  /** The driver the next start uses (the setting, or auto's pick), or null when it cannot run. */
  selected: DriverName | null;
  /** The driver running the VM now, and why it was chosen (from the engine). */
  live?: { driver: string; reason?: string; state: string };
  /**
   * Rosetta for amd64 binaries, on Apple silicon: the setting, whether the
   * next start gives the VM Rosetta, and if the setting is on but cannot
   * be, why. Absent on other hosts while the setting is off.
   */
  rosetta?: { setting: boolean; usable: boolean; note?: string };
  /** The BERTH_* overrides in effect (variable -> value), when any are set. */
  overrides?: Record<string, string>;
  /** Which choices of the driver, accel and rosetta settings can work here, and why not (choices.ts). */
  choices?: DoctorChoices;
  ok: boolean;
}

export interface DoctorReport {
  text: string;
  json: DoctorJson;
}

function driverLines(c: DriverCheck, selected: DriverName | null): string[] {
  const mark = c.usable ? (c.driver === selected ? 'ok (used)' : 'ok') : c.problem?.code === 'UNSUPPORTED_OS' ? 'n/a' : 'no';
  const lines = [
    `  ${DRIVER_FEATURES[c.driver].label.padEnd(8)} ${mark.padEnd(10)} ${c.summary}${c.problem && c.problem.code !== 'UNSUPPORTED_OS' ? ` [${c.problem.code}]` : ''}`,
  ];
  const pad = ' '.repeat(21);
  if (c.problem && c.problem.code !== 'UNSUPPORTED_OS') lines.push(`${pad}hint: ${c.problem.hint}`);
  for (const w of c.warnings) lines.push(`${pad}warning: ${w}`);
  return lines;
}

/** Render a doctor result as text for a terminal. */
export function formatDoctor(json: DoctorJson): string {
  const lines = [`Host: ${json.host.os} (${json.host.arch})`, ''];
  for (const c of json.drivers) lines.push(...driverLines(c, json.selected));
  if (json.lastProbe) lines.push('', `Last accelerator probe: ${json.lastProbe.accel} (${json.lastProbe.reason})`);
  if (json.overrides)
    lines.push(
      '',
      `Overrides in effect: ${Object.entries(json.overrides)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}`,
    );
  lines.push('');
  if (json.live) {
    const name = DRIVER_FEATURES[json.live.driver as DriverName]?.label ?? json.live.driver;
    lines.push(`Running now: ${name}${json.live.reason ? ` (${json.live.reason})` : ''}`);
  }
  if (json.rosetta) {
    const r = json.rosetta;
    lines.push(
      r.setting
        ? r.usable
          ? 'Rosetta: on; x86_64 binaries in the VM run through it'
          : `Rosetta: ${r.note ?? 'on in settings, but not usable here'}`
        : 'Rosetta: off; `berth settings set rosetta=true` runs x86_64 (amd64) binaries in the VM through it',
    );
  }
  const wanted = json.setting === 'auto' ? undefined : json.drivers.find((c) => c.driver === json.setting);
  if (wanted && !wanted.usable) {
    lines.push(`Settings ask for ${DRIVER_FEATURES[wanted.driver].label}, which cannot run here: ${wanted.summary}`);
    lines.push(
      `Start with: ${wanted.problem?.hint ?? ''} Or let Berth pick: \`berth settings set driver=auto\`${json.recommended ? ` (it would use ${DRIVER_FEATURES[json.recommended].label})` : ''}.`,
    );
  } else if (json.selected) {
    lines.push(`Berth will use: ${DRIVER_FEATURES[json.selected].label}${wanted ? ' (set in settings)' : ''}`);
  } else {
    const first = json.drivers.find((c) => c.problem && c.problem.code !== 'UNSUPPORTED_OS') ?? json.drivers[0];
    lines.push('No driver can run the Berth VM on this host.');
    if (first?.problem) lines.push(`Start with: ${first.problem.hint}`);
  }
  return lines.join('\n');
}

export interface DoctorOptions {
  facts?: HostFacts;
  /** The overrides (BERTH_QEMU, BERTH_GUEST_ARCH, ...); default this process's. */
  tuning?: Tuning;
  /** The instance's `driver` setting (default auto). */
  setting?: DriverSetting;
  /** What the running engine says about its driver. */
  live?: DoctorJson['live'];
  /** The instance's `rosetta` setting (default off). */
  rosetta?: boolean;
}

export async function doctorReport(opts: DoctorOptions = {}): Promise<DoctorReport> {
  const tuning = opts.tuning ?? readTuning();
  const facts = opts.facts ?? realHostFacts(tuning);
  const [host, drivers] = await Promise.all([describeHost(facts), detectDrivers(facts)]);
  const recommended = recommendedDriver(drivers) ?? null;
  const setting = opts.setting ?? 'auto';
  const selected = setting === 'auto' ? recommended : drivers.find((c) => c.driver === setting)?.usable ? setting : null;
  const json: DoctorJson = { host, drivers, recommended, setting, selected, ok: selected !== null };
  if (opts.live) json.live = opts.live;
  const rosetta = rosettaView(facts, tuning, drivers, selected, opts.rosetta ?? false);
  if (rosetta) json.rosetta = rosetta;
  const probe = lastProbe();
  if (probe) json.lastProbe = probe;
  json.choices = settingChoices(facts, drivers, json.rosetta);
  const overrides = tuningInEffect(tuning);
  if (Object.keys(overrides).length) json.overrides = overrides;
  return { text: formatDoctor(json), json };
}

function lastProbe(): { accel: string; reason: string } | undefined {
  try {
    const p = JSON.parse(fs.readFileSync(path.join(cacheDir(), 'accel-probe.json'), 'utf8')) as { accel?: string; reason?: string };
    return p.accel && p.reason ? { accel: p.accel, reason: p.reason } : undefined;
  } catch {
    return undefined;
  }
}

/** What the rosetta setting does on this host with the driver the next start uses. */
function rosettaView(
  facts: HostFacts,
  tuning: Pick<Tuning, 'guestArch'>,
  drivers: DriverCheck[],
  selected: DriverName | null,
  setting: boolean,
): DoctorJson['rosetta'] {
  // The driver that can offer Rosetta (Virtualization.framework's), and what its host check found.
  const offering = drivers.find((c) => DRIVER_FEATURES[c.driver].rosetta);
  const appleSilicon = facts.platform === 'darwin' && facts.arch === 'arm64';
  // Off, and nothing to offer: say nothing (Linux, Windows, Intel Macs).
  if (!setting && !(appleSilicon && offering?.usable)) return undefined;
  const arch = tuning.guestArch === 'x86_64' ? 'x86_64' : (nativeGuestArch(facts.arch) ?? 'x86_64');
  const installed = typeof offering?.details.rosetta === 'boolean' ? offering.details.rosetta : undefined;
  if (!setting) return { setting, usable: false };
  if (!selected) return { setting, usable: false, note: 'on in settings; no driver can run the VM here (see above)' };
  const plan = rosettaPlan(true, selected, arch, installed);
  return plan.note ? { setting, usable: plan.use, note: plan.note } : { setting, usable: plan.use };
}
