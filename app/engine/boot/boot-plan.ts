import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { chooseAccelerator, type AccelChoice } from '../drivers/accel-probe.js';
import {
  defaultGuestTraits,
  HOST_RELAY_ADDRESS,
  type Driver,
  type DriverName,
  type GuestArch,
  type GuestTraits,
  type SshEndpoint,
  type VmSpec,
} from '../drivers/driver.js';
import type { DriverChoice, DriverFactory } from '../drivers/driver-select.js';
import type { DriverCheck } from '../drivers/host-detect.js';
import { BerthError } from '../../contract/errors.js';
import type { VmStatus } from '../../contract/contract.js';
import type { QemuHost } from '../drivers/qemu-host.js';
import { buildVmSpec, rosettaPlan, type RosettaPlan } from '../drivers/vm-spec.js';
import type { GuestImage } from '../image/image-store.js';
import type { GuestKeys } from '../../base/ssh-keys.js';
import type { InstancePaths } from '../../base/paths.js';
import type { Settings } from '../settings/schema.js';
import type { SettingsStore } from '../settings/store.js';
import type { VmState } from '../../contract/vm-states.js';
import { dockerHostUrl } from '../../base/docker-context.js';
import type { Tuning } from '../../base/tuning.js';
import { planShares, type ShareMechanismSetting, type SharePlan } from '../share/virtiofs.js';
import { hostDisk } from '../runtime/disk-usage.js';

/**
 * The boot plan: from the settings, the driver's features and this host, the
 * accelerator, the share plan, Rosetta and the VM spec. No process is
 * started here; the engine runs the plan.
 */

/** What survives an engine restart so a new engine can reattach to the VM (state.json). */
export interface RunState {
  /** The driver that runs the VM (absent in state files of older engines: qemu). */
  driver?: string;
  driverReason?: string;
  /** QEMU's loopback forward to the guest's sshd (unused by vfkit and Hyper-V). */
  sshPort: number;
  /** Where the guest's sshd answered. */
  ssh?: SshEndpoint;
  accel: AccelChoice['accel'];
  accelReason: string;
  startedAt: string;
  imageDir: string;
  cpus: number;
  memoryMiB: number;
  diskGiB: number;
  /** The rosetta setting was on at start: whether the VM got Rosetta, and if not why. */
  rosetta?: { active: boolean; note?: string };
  /** Which shares are virtio-fs devices of this VM, and why the others are not. */
  sharePlan?: SharePlan;
  /** The guest's address for the host, which the engine relays to the host's loopback (absent: the network reaches it). */
  hostRelay?: string;
}

/** The run a start makes: what it chose, kept in state.json for a later engine. */
export function newRun(o: {
  driver: Driver;
  driverReason?: string;
  sshPort: number;
  accel: AccelChoice;
  image: GuestImage;
  settings: Settings;
  rosetta: RosettaPlan;
  sharePlan: SharePlan;
  hostRelay?: string;
}): RunState {
  const run: RunState = {
    driver: o.driver.name,
    driverReason: o.driverReason,
    sshPort: o.sshPort,
    accel: o.accel.accel,
    accelReason: o.accel.reason,
    startedAt: new Date().toISOString(),
    imageDir: o.image.dir,
    cpus: o.settings.cpus,
    memoryMiB: o.settings.memoryMiB,
    diskGiB: o.settings.diskGiB,
    sharePlan: o.sharePlan,
  };
  if (o.hostRelay) run.hostRelay = o.hostRelay;
  if (o.settings.rosetta) run.rosetta = o.rosetta.note ? { active: o.rosetta.use, note: o.rosetta.note } : { active: o.rosetta.use };
  return run;
}

/** The overrides a boot plan heeds (BERTH_ACCEL, BERTH_SHARE_MECHANISM, ...). */
export type PlanTuning = Pick<Tuning, 'accel' | 'kvmProbeTimeoutMs' | 'qemu' | 'shareMechanism' | 'boot' | 'qemuHostForwards' | 'hostRelay'>;

/** What the engine takes from the overrides: the boot plan's, and its own timeouts. */
export type EngineTuning = PlanTuning &
  Pick<Tuning, 'bootTimeoutMs' | 'dockerTimeoutMs' | 'syncStartTimeoutMs' | 'syncStopTimeoutMs' | 'stopTimeoutMs' | 'recoveryDelayMs' | 'hungGuestMs'>;

export interface PlanContext {
  paths: InstancePaths;
  log: Logger;
  arch: GuestArch;
  /** Where the accelerator probe caches its verdict. */
  accelCacheFile: string;
  /** The host QEMU runs on (tests simulate others). */
  host?: QemuHost;
  tuning: PlanTuning;
}

/** A driver that chooses (QEMU) probes or takes the setting; the others run on their own hypervisor. */
export async function chooseAccel(c: PlanContext, driver: Driver, settings: Settings, image: GuestImage): Promise<AccelChoice> {
  const own = driver.features.accelerator;
  if (own !== 'choose') {
    if (settings.accel !== 'auto')
      c.log.warn({ accel: settings.accel, driver: driver.name }, `the accel setting does not apply to the ${driver.features.label} driver; ignored`);
    return { ...own, cached: false };
  }
  return chooseAccelerator({
    arch: c.arch,
    kernel: image.kernel,
    initrd: image.initrd,
    requested: settings.accel,
    forced: c.tuning.accel,
    qemu: c.tuning.qemu,
    timeoutMs: c.tuning.kvmProbeTimeoutMs,
    cacheFile: c.accelCacheFile,
    host: c.host,
  });
}

/** The driver's guest traits; BERTH_HOST_RELAY=1 makes QEMU reach the host's loopback through the relay vfkit and Hyper-V use (tests). */
export function guestTraits(c: Pick<PlanContext, 'arch' | 'tuning'>, driver: Driver): GuestTraits {
  const traits = driver.guestTraits?.(c.arch) ?? defaultGuestTraits(c.arch);
  return c.tuning.hostRelay ? { ...traits, hostLoopback: { address: HOST_RELAY_ADDRESS, via: 'relay' } } : traits;
}

/**
 * Which shares become virtio-fs devices at this start (share/virtiofs.ts):
 * the shareMechanism setting (BERTH_SHARE_MECHANISM, c.tuning, overrides it), what
 * the driver can do here, and each share's own limits. `failed`: virtio-fs
 * was tried and failed, so reverse sshfs for every share, saying why.
 */
export async function sharePlanFor(c: PlanContext, driver: Driver, settings: Settings, failed?: string): Promise<SharePlan> {
  const forced = c.tuning.shareMechanism;
  const setting: ShareMechanismSetting = forced ?? settings.shareMechanism;
  const support =
    failed !== undefined
      ? { ok: false as const, reason: failed }
      : setting === 'sshfs'
        ? { ok: false as const, reason: 'not asked' }
        : driver.virtiofs
          ? await driver.virtiofs().catch((err: Error) => ({ ok: false as const, reason: `checking virtio-fs failed: ${err.message}` }))
          : { ok: false as const, reason: `the ${driver.name} driver has no virtio-fs` };
  const plan = planShares({
    shares: settings.shares,
    setting,
    settingSource: forced ? 'BERTH_SHARE_MECHANISM' : 'settings',
    driver: driver.name,
    support,
    socketDir: path.join(c.paths.dir, 'virtiofs'),
    isDir: (p) => {
      try {
        return fs.statSync(p).isDirectory();
      } catch {
        return false;
      }
    },
  });
  c.log.info(
    { setting, virtiofs: plan.devices.map((d) => ({ host: d.hostPath, tag: d.tag })), support: support.ok ? support.how : support.reason },
    'file sharing plan',
  );
  return plan;
}

/** The VM spec of a run (a new start, or the VM an earlier engine left). */
export function vmSpecFor(c: PlanContext, run: RunState, image: GuestImage, driver: Driver): VmSpec {
  return buildVmSpec(driver.name, guestTraits(c, driver), {
    shares: run.sharePlan?.devices,
    paths: c.paths,
    image,
    arch: c.arch,
    accel: run.accel,
    cpus: run.cpus,
    memoryMiB: run.memoryMiB,
    diskGiB: run.diskGiB,
    sshHostPort: run.sshPort,
    // BERTH_QEMU_HOSTFWD=28080:18080,... adds QEMU's own loopback forwards (benchmarks).
    extraHostForwards: c.tuning.qemuHostForwards,
    rosetta: run.rosetta?.active ?? false,
  });
}

/** Rosetta for this start: the setting, the driver, the guest and whether the Mac has it (the driver's host check). */
export function rosettaFor(c: PlanContext, settings: Settings, driver: Driver, checks: DriverCheck[] | undefined): RosettaPlan {
  const check = checks?.find((x) => x.driver === driver.name);
  const installed = typeof check?.details.rosetta === 'boolean' ? check.details.rosetta : undefined;
  const plan = rosettaPlan(settings.rosetta, driver.name, c.arch, installed);
  if (plan.note) c.log.warn({ driver: driver.name, arch: c.arch }, plan.note);
  else if (plan.use) c.log.info('Rosetta: x86_64 binaries run through Rosetta');
  return plan;
}

/** Where drivers come from: one fixed by the caller (tests), or the factory (settings and host). */
export interface DriverSource {
  driver?: Driver;
  drivers?: DriverFactory;
}

export type DriverChoiceView = Pick<DriverChoice, 'reason' | 'warnings'> & Partial<Pick<DriverChoice, 'checks'>>;

const NO_FACTORY = () => new BerthError('INTERNAL', 'the engine has no driver factory', 'This is a bug in Berth; please report it.');

/** The driver for a start and why: the caller's, else the `driver` setting and the host decide (driver-select.ts). */
export async function pickDriver(src: DriverSource, setting: Settings['driver'], arch: GuestArch): Promise<{ driver: Driver; choice: DriverChoiceView }> {
  if (src.driver) return { driver: src.driver, choice: { reason: `${src.driver.name}, given by the caller`, warnings: [] } };
  if (!src.drivers) throw NO_FACTORY();
  const sel = await src.drivers.select(setting, arch);
  return { driver: sel.driver, choice: sel.choice };
}

/** The driver that runs the VM an earlier engine left (its state file names it; older ones: qemu). */
export function driverOfRun(src: DriverSource, run: RunState): Driver {
  if (src.driver) return src.driver;
  if (!src.drivers) throw NO_FACTORY();
  return src.drivers.byName((run.driver ?? 'qemu') as DriverName);
}

/** The parts of the engine's status a run decides. */
export function runStatus(r: RunState): Partial<VmStatus> {
  return {
    accel: r.accel,
    accelReason: r.accelReason,
    ...(r.rosetta ? { rosetta: { ...r.rosetta } } : {}),
    sshPort: r.ssh?.port ?? r.sshPort,
    ...(r.ssh ? { sshHost: r.ssh.host } : {}),
    startedAt: r.startedAt,
  };
}

/** What `berth shell` needs to log in to the running VM. */
export interface SshLogin {
  host: string;
  port: number;
  user: string;
  privateKeyPath: string;
  hostPublicKey: string;
}

export function sshLogin(run: RunState, keys: Pick<GuestKeys, 'hostPublic'>, paths: InstancePaths): SshLogin {
  return {
    host: run.ssh?.host ?? '127.0.0.1',
    port: run.ssh?.port ?? run.sshPort,
    user: 'root',
    privateKeyPath: paths.clientKey,
    hostPublicKey: keys.hostPublic,
  };
}

/** The guest image, as status shows it. */
export function imageView(image: GuestImage): NonNullable<VmStatus['image']> {
  return { dir: image.dir, recipeHash: image.manifest.recipeHash, kernelRelease: image.manifest.kernelRelease };
}

/**
 * What status says of an instance in any state: its resources (the run's
 * while one lives, else the settings'), its docker socket, and a problem
 * with its settings file.
 */
export function instanceStatus(o: { paths: InstancePaths; state: VmState; settings: SettingsStore | BerthError; run?: RunState; driver?: string }): VmStatus {
  let s: Settings | undefined;
  try {
    s = o.settings instanceof BerthError ? undefined : o.settings.get();
  } catch {
    s = undefined;
  }
  const r = o.run;
  const st: VmStatus = {
    instance: o.paths.name,
    state: o.state,
    driver: o.driver ?? s?.driver ?? 'auto',
    cpus: r?.cpus ?? s?.cpus ?? 0,
    memoryMiB: r?.memoryMiB ?? s?.memoryMiB ?? 0,
    diskGiB: r?.diskGiB ?? s?.diskGiB ?? 0,
    dockerSocket: o.paths.dockerSocket,
    dockerHost: dockerHostUrl(o.paths.dockerSocket),
    enginePid: process.pid,
  };
  const problem = o.settings instanceof BerthError ? o.settings : o.settings.problem;
  if (problem) st.settingsProblem = problem.toInfo();
  // A raw disk (QEMU, vfkit) or Hyper-V's dynamic VHDX, whichever this instance has.
  const disk = hostDisk(o.paths.dataDisk) ?? hostDisk(o.paths.dataVhdx);
  if (disk) st.disk = disk;
  return st;
}
