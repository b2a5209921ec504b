import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import type { VmStatus } from './api/contract.js';
import { chooseAccelerator, type AccelChoice } from './drivers/accel-probe.js';
import { defaultGuestTraits, sshEndpointOf, type Driver, type DriverFeatures, type GuestTraits, type RunningVm, type SshEndpoint, type VmSpec } from './drivers/driver.js';
import { bootModeFor } from './drivers/features.js';
import type { DriverChoice, DriverFactory } from './drivers/driver-select.js';
import type { DriverName } from './drivers/host-detect.js';
import { writeFixedVhd } from './drivers/vhd.js';
import { buildVmSpec, ROSETTA_TAG, rosettaPlan, type RosettaPlan } from './drivers/vm-spec.js';
import { contextName, dockerHostUrl, ensureDockerContext, type ContextResult } from './docker/context.js';
import { BerthError, toErrorInfo, type ErrorInfo } from './errors.js';
import { DockerApi } from './docker/docker-api.js';
import { DockerSocketForward, pingDocker } from './forward/docker-socket.js';
import { makeBindCheck } from './forward/docker-request-guard.js';
import { PortManager, type PortView } from './forward/port-manager.js';
import { ChangeNotifier } from './share/change-notifier.js';
import { ShareManager, type ShareView } from './share/share-manager.js';
import { planShares, routeOf, type ShareMechanismSetting, type SharePlan } from './share/virtiofs.js';
import { addPort, addShare, addSync, removePort, removeShare, removeSync } from './settings/edits.js';
import { SyncManager } from './share/sync-manager.js';
import { within } from './share/sync-paths.js';
import type { SyncConflictView, SyncView } from './share/sync-session.js';
import { ensurePrivateDir, readJsonIfExists, tailFile, writeFileAtomic } from './fs-util.js';
import { writeConfigDisk } from './guest/config-disk.js';
import { ensureGuestKeys, type GuestKeys } from './guest/keys.js';
import { GuestSession } from './guest/session.js';
import type { GuestImage, ImageStore } from './image/image-store.js';
import type { InstancePaths } from './paths.js';
import { sleep } from './process-util.js';
import type { Settings } from './settings/schema.js';
import type { SettingsStore } from './settings/store.js';
import { VmStateMachine, type StartPhase, type StateChange } from './vm/state-machine.js';

/** What survives an engine restart so a new engine can reattach to the VM. */
interface RunState {
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
}

export interface EngineOptions {
  paths: InstancePaths;
  log: Logger;
  /**
   * Where drivers come from: the `driver` setting and the host decide
   * (driver-select.ts). Tests may give one fixed `driver` instead.
   */
  drivers?: DriverFactory;
  driver?: Driver;
  images: ImageStore;
  /** The settings store, or the error that loading it raised. */
  settings: SettingsStore | BerthError;
  /** Where the accelerator probe caches its verdict. */
  accelCacheFile: string;
}

type Timings = NonNullable<VmStatus['timings']>;

const env = (name: string, fallback: number) => Number(process.env[name] || fallback);
/** Unexpected VM exits restarted by themselves: fewer than this many per window. */
const CRASH_BUDGET = 3;
const CRASH_WINDOW_MS = 10 * 60_000;

/**
 * One instance: its VM, the guest session and the docker socket. Owns the
 * state machine; every transition and start phase is an event.
 */
export class Engine extends EventEmitter<{
  state: [StateChange];
  progress: [{ phase: StartPhase; message: string; at: string }];
  session: [{ state: string; at: string }];
  ports: [PortView[]];
  shares: [ShareView[]];
  sync: [SyncView[]];
  syncConflict: [{ hostPath: string; conflict: SyncConflictView }];
}> {
  readonly sm = new VmStateMachine();
  private phase?: StartPhase;
  private vm?: RunningVm;
  private session?: GuestSession;
  private forward?: DockerSocketForward;
  private ports?: PortManager;
  private shares?: ShareManager;
  private notifier?: ChangeNotifier;
  private sync?: SyncManager;
  private keys?: GuestKeys;
  private image?: GuestImage;
  private run?: RunState;
  private context?: ContextResult;
  private timings: Timings = {};
  private attached = false;
  private startPromise?: Promise<VmStatus>;
  private stopPromise?: Promise<VmStatus>;
  private reattaching?: Promise<boolean>;
  /** The driver of the VM that runs or starts, and why it was chosen. */
  private driver?: Driver;
  private driverChoice?: Pick<DriverChoice, 'reason' | 'warnings'> & Partial<Pick<DriverChoice, 'checks'>>;
  private vmSpec?: VmSpec;
  /** When the VM went down by itself lately (for the restart budget). */
  private crashes: { at: number; reason: string }[] = [];
  private recoveryTimer?: NodeJS.Timeout;

  constructor(private readonly o: EngineOptions) {
    super();
    this.sm.on('change', (c) => {
      this.o.log.info({ state: c.state, previous: c.previous, error: c.error?.code }, 'vm state');
      this.emit('state', c);
    });
  }

  private get paths(): InstancePaths {
    return this.o.paths;
  }

  settingsStore(): SettingsStore {
    if (this.o.settings instanceof BerthError) throw this.o.settings;
    return this.o.settings;
  }

  private progress(phase: StartPhase, message: string): void {
    this.phase = phase;
    this.o.log.info({ phase }, message);
    this.emit('progress', { phase, message, at: new Date().toISOString() });
  }

  status(): VmStatus {
    let s: Settings | undefined;
    try {
      s = this.settingsStore().get();
    } catch {
      s = undefined;
    }
    const r = this.run;
    const st: VmStatus = {
      instance: this.paths.name,
      state: this.sm.state,
      driver: this.driver?.name ?? this.o.driver?.name ?? s?.driver ?? 'auto',
      cpus: r?.cpus ?? s?.cpus ?? 0,
      memoryMiB: r?.memoryMiB ?? s?.memoryMiB ?? 0,
      diskGiB: r?.diskGiB ?? s?.diskGiB ?? 0,
      dockerSocket: this.paths.dockerSocket,
      dockerHost: dockerHostUrl(this.paths.dockerSocket),
      enginePid: process.pid,
    };
    const settingsProblem = this.o.settings instanceof BerthError ? this.o.settings : this.o.settings.problem;
    if (settingsProblem) st.settingsProblem = settingsProblem.toInfo();
    if (this.sm.state === 'starting' && this.phase) st.phase = this.phase;
    const err = this.sm.error;
    if (err) st.error = err;
    const why = this.driver ? this.driverChoice?.reason : undefined;
    if (why) st.driverReason = why;
    if (r) {
      st.accel = r.accel;
      st.accelReason = r.accelReason;
      if (r.rosetta) st.rosetta = { ...r.rosetta };
      st.sshPort = r.ssh?.port ?? r.sshPort;
      if (r.ssh) st.sshHost = r.ssh.host;
      st.startedAt = r.startedAt;
    }
    if (this.vm) st.vmPid = this.vm.pid;
    if (this.attached) st.attached = true;
    const last = this.crashes.at(-1);
    if (last) {
      st.lastCrash = {
        at: new Date(last.at).toISOString(),
        reason: last.reason,
        recent: this.crashes.filter((c) => Date.now() - c.at < CRASH_WINDOW_MS).length,
      };
    }
    if (Object.keys(this.timings).length) st.timings = { ...this.timings };
    if (this.context) st.dockerContext = { ...this.context };
    if (this.session) st.session = { state: this.session.currentState, connects: this.session.connects };
    if (this.forward) st.forward = { active: this.forward.active, total: this.forward.total, failed: this.forward.failed };
    if (this.shares) st.shares = this.shares.list();
    if (this.sync) st.sync = this.sync.list();
    if (this.image) {
      st.image = {
        dir: this.image.dir,
        recipeHash: this.image.manifest.recipeHash,
        kernelRelease: this.image.manifest.kernelRelease,
      };
    }
    return st;
  }

  /** Start the VM. Idempotent: running returns at once, a start in flight is joined. */
  start(): Promise<VmStatus> {
    if (this.sm.state === 'running') return Promise.resolve(this.status());
    if (this.startPromise) return this.startPromise;
    const p = (async () => {
      if (this.reattaching) await this.reattaching;
      if (this.sm.state === 'running') return this.status();
      if (this.stopPromise) await this.stopPromise.catch(() => undefined);
      // A VM still up after an error (a failed reattach) is shut down first.
      if (this.sm.state === 'error' && this.vm) await this.doStop(false);
      return this.doStart();
    })();
    this.startPromise = p.finally(() => {
      this.startPromise = undefined;
    });
    return this.startPromise;
  }

  private async doStart(): Promise<VmStatus> {
    const t0 = Date.now();
    this.timings = {};
    this.attached = false;
    this.sm.to('starting');
    try {
      this.progress('prepare', 'preparing the instance');
      const settings = this.settingsStore().get();
      ensurePrivateDir(this.paths.dir);
      this.keys = ensureGuestKeys(this.paths.keysDir, this.paths.clientKey, this.paths.hostKey, this.paths.name);
      // The driver first: a driver that cannot run here fails before any image work.
      const driver = await this.selectDriver(settings);
      this.timings.prepareMs = Date.now() - t0;

      const tImage = Date.now();
      this.progress('image', 'checking the guest image');
      const image = await this.o.images.ensure({ build: true, boot: bootModeFor(driver.features), progress: (m) => this.progress('image', m) });
      this.image = image;
      const accel = await this.chooseAccel(driver, settings, image);
      this.o.log.info({ accel: accel.accel, reason: accel.reason, cached: accel.cached }, 'accelerator');
      this.timings.imageMs = Date.now() - tImage;

      const rosetta = this.rosettaPlan(settings, driver);
      const traits = this.traits(driver);
      this.prepareDisks(settings, traits, driver.features, rosetta);
      const sshPort = await freeLoopbackPort();
      this.run = {
        driver: driver.name,
        driverReason: this.driverChoice?.reason,
        sshPort,
        accel: accel.accel,
        accelReason: accel.reason,
        startedAt: new Date().toISOString(),
        imageDir: image.dir,
        cpus: settings.cpus,
        memoryMiB: settings.memoryMiB,
        diskGiB: settings.diskGiB,
        sharePlan: await this.planShares(driver, settings),
      };
      if (settings.rosetta) this.run.rosetta = rosetta.note ? { active: rosetta.use, note: rosetta.note } : { active: rosetta.use };
      let spec = this.spec(this.run, image, driver);
      this.vmSpec = spec;

      const tBoot = Date.now();
      this.progress('boot', `booting the VM (${driver.name}, ${accel.accel}, ${settings.cpus} CPUs, ${settings.memoryMiB} MiB)`);
      rotate(this.paths.serialLog);
      try {
        this.vm = await driver.start(spec);
      } catch (err) {
        // virtiofsd would not start: the shares go by reverse sshfs instead.
        if (!(err instanceof BerthError && err.code === 'VIRTIOFSD_FAILED') || !spec.shares?.length) throw err;
        this.o.log.warn({ err: err.toInfo() }, 'virtiofsd failed; sharing folders by reverse sshfs for this start');
        this.run.sharePlan = await this.planShares(driver, settings, `virtiofsd failed to start (${err.message})`);
        spec = this.spec(this.run, image, driver);
        this.vmSpec = spec;
        this.vm = await driver.start(spec);
      }
      this.watchVm(this.vm);
      writeFileAtomic(this.paths.state, JSON.stringify(this.run, null, 2) + '\n');
      this.timings.bootMs = Date.now() - tBoot;

      await this.connectGuest(tBoot, accel.accel === 'tcg');
      this.timings.totalMs = Date.now() - t0;
      this.sm.to('running');
      this.o.log.info({ timings: this.timings }, 'VM running');
      return this.status();
    } catch (err) {
      await this.teardown(true);
      const info = toErrorInfo(err);
      this.o.log.error({ err: info }, 'start failed');
      if (this.sm.state === 'starting') this.sm.to('error', info);
      throw err instanceof BerthError ? err : new BerthError(info.code, info.message, info.hint, info.details);
    }
  }

  /** ssh, then dockerd, then the host socket: shared by start and reattach. */
  private async connectGuest(tBoot: number, slow: boolean): Promise<void> {
    const vm = this.vm!;
    const keys = this.keys!;
    const bootTimeout = env('BERTH_BOOT_TIMEOUT_MS', slow ? 240_000 : 60_000);
    this.progress('guest', 'waiting for the guest to answer on ssh');
    // QEMU forwards a loopback port; vfkit and Hyper-V guests are reached at
    // the address their NAT's DHCP gave them, which the driver finds.
    const endpoint = await sshEndpointOf(vm, this.vmSpec!, bootTimeout).catch((err: unknown) => {
      if (!vm.alive()) throw this.guestDied('the VM exited while booting');
      throw err;
    });
    this.run!.ssh = endpoint;
    if (endpoint.host !== '127.0.0.1') this.o.log.info({ endpoint }, 'guest address');
    const session = new GuestSession({
      host: endpoint.host,
      port: endpoint.port,
      privateKey: keys.clientPrivate,
      hostPublicKey: keys.hostPublic,
      log: this.o.log,
      vmAlive: () => vm.alive(),
    });
    this.session = session;
    session.on('state', (state) => this.emit('session', { state, at: new Date().toISOString() }));
    session.on('reconnected', () => void this.syncClock());
    session.on('resumed', () => void this.syncClock());
    const bootFailed = () => {
      if (!vm.alive()) throw this.guestDied('the VM exited while booting');
    };
    await session.connect(bootTimeout, bootFailed).catch((err) => {
      if (err instanceof BerthError && err.code === 'GUEST_TIMEOUT') {
        throw new BerthError(err.code, err.message, err.hint, tailFile(this.paths.serialLog, 25).join('\n'));
      }
      throw err;
    });
    this.timings.guestMs = Date.now() - tBoot;
    void this.syncClock();
    // Shared folders mount while dockerd starts, and are in place before the
    // socket opens: `docker run -v $PWD:/src` right after start sees them.
    const sharesMounted = this.startShares(session);

    this.progress('docker', 'waiting for dockerd');
    const deadline = Date.now() + env('BERTH_DOCKER_TIMEOUT_MS', slow ? 240_000 : 60_000);
    while (!(await pingDocker(session))) {
      bootFailed();
      if (Date.now() > deadline) {
        const log = await session.exec('/bin/busybox logread | grep dockerd | tail -n 20', { timeoutMs: 5000 }).catch(() => undefined);
        throw new BerthError(
          'DOCKER_TIMEOUT',
          'dockerd in the VM did not become ready in time',
          'The lines below are dockerd\'s last log lines; `berth logs --guest` has more. `berth restart` tries again.',
          log?.stdout,
        );
      }
      await sleep(200);
    }
    this.timings.dockerMs = Date.now() - tBoot;
    if (this.shares?.list().some((x) => x.state === 'mounting')) this.progress('shares', 'mounting the shared folders');
    await sharesMounted;
    // Synced folders: those synced before are brought up to date and their
    // guest copies mounted before the socket opens; first copies go on in
    // the background.
    await this.startSync(session);
    this.timings.sharesMs = Date.now() - tBoot;

    this.progress('socket', `forwarding the docker socket at ${this.paths.dockerSocket}`);
    const forward = new DockerSocketForward(
      this.paths.dockerSocket,
      session,
      this.o.log,
      makeBindCheck(
        () => this.settingsStore().get().shares.map((x) => x.guestPath ?? x.hostPath),
        (p) => fs.existsSync(p),
      ),
    );
    await forward.listen();
    this.forward = forward;
    this.timings.socketMs = Date.now() - tBoot;
    this.startPorts(session);
    this.notifier?.start();
    try {
      this.context = ensureDockerContext(this.paths.name, this.paths.dockerSocket);
      if (this.context.outcome === 'conflict') {
        this.o.log.warn({ context: this.context.name }, 'a docker context with our name exists and is not ours; left alone');
      }
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'could not write the docker context');
    }
  }

  private startShares(session: GuestSession): Promise<void> {
    const notifier = new ChangeNotifier(
      session,
      new DockerApi(this.paths.dockerSocket),
      this.o.log,
      () => (this.shares?.list() ?? []).filter((x) => x.state === 'mounted'),
      // Synced folders' guest copies get real writes (and real inotify events) from the sync.
      (hostPath) => this.settingsStore().get().sync.some((x) => within(hostPath, x.hostPath)),
    );
    this.notifier = notifier;
    const plan = this.run?.sharePlan ?? { routes: {}, later: 'reverse sshfs (this VM was started without a share plan)' };
    const shares = new ShareManager(
      session,
      this.o.log,
      () => this.settingsStore().get().shares,
      (p) => notifier.guestChanged(p),
      (s) => routeOf(plan, s),
    );
    this.vm?.onShareLost?.((tag, reason) => shares.virtiofsLost(tag, reason));
    shares.on('change', (list) => {
      this.emit('shares', list);
      this.sync?.sharesChanged();
    });
    this.shares = shares;
    return shares.start().catch((err: Error) => this.o.log.error({ err: err.message }, 'shared folders failed'));
  }

  private async startSync(session: GuestSession): Promise<void> {
    const sync = new SyncManager({
      session,
      log: this.o.log,
      stateDir: path.join(this.paths.dir, 'sync'),
      syncs: () => this.settingsStore().get().sync,
      shares: () => this.settingsStore().get().shares,
      shareMounted: (g) => (this.shares?.list() ?? []).some((x) => x.guestPath === g && x.state === 'mounted'),
    });
    sync.on('change', (list) => this.emit('sync', list));
    sync.on('conflict', (c) => this.emit('syncConflict', c));
    this.sync = sync;
    // Bounded: a slow guest must not hold the start forever (the sync goes on).
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      sync.start().catch((err: Error) => this.o.log.error({ err: err.message }, 'synced folders failed')),
      new Promise((r) => (timer = setTimeout(r, env('BERTH_SYNC_START_TIMEOUT_MS', 120_000)))),
    ]);
    if (timer) clearTimeout(timer);
  }

  private async stopSync(): Promise<void> {
    const s = this.sync;
    this.sync = undefined;
    if (s) {
      await s.stop().catch(() => undefined);
      this.emit('sync', []);
    }
  }

  syncList(): { syncs: SyncView[]; configured: Settings['sync'] } {
    return { syncs: this.sync?.list() ?? [], configured: this.settingsStore().get().sync };
  }

  /** Sync a folder inside a share: saved in settings, copied at once when the VM runs. */
  async syncAdd(p: { hostPath: string }) {
    addSync(this.settingsStore(), p.hostPath);
    await this.sync?.refresh();
    return this.syncList();
  }

  /** Stop syncing a folder: a last sync both ways, then the guest copy is deleted. */
  async syncRemove(p: { hostPath: string }) {
    removeSync(this.settingsStore(), p.hostPath);
    await this.sync?.refresh();
    return this.syncList();
  }

  private async stopShares(): Promise<void> {
    this.notifier?.stop();
    this.notifier = undefined;
    const s = this.shares;
    this.shares = undefined;
    if (s) {
      await s.stop().catch(() => undefined);
      this.emit('shares', []);
    }
  }

  sharesList(): { shares: ShareView[]; configured: Settings['shares'] } {
    return { shares: this.shares?.list() ?? [], configured: this.settingsStore().get().shares };
  }

  /** Share a host folder: saved in settings, mounted at once when the VM runs. */
  async sharesAdd(p: { hostPath: string; guestPath?: string; readOnly?: boolean }) {
    addShare(this.settingsStore(), p);
    await this.shares?.refresh();
    return this.sharesList();
  }

  async sharesRemove(p: { hostPath: string }) {
    removeShare(this.settingsStore(), p.hostPath);
    await this.shares?.refresh();
    return this.sharesList();
  }

  /** Published ports follow the guest from now on (Docker events + socket table + manual). */
  private startPorts(session: GuestSession): void {
    const ports = new PortManager(session, new DockerApi(this.paths.dockerSocket), this.o.log, () => {
      const s = this.settingsStore().get();
      return { ports: s.ports, portBind: s.portBind };
    });
    ports.on('change', (list) => this.emit('ports', list));
    this.ports = ports;
    ports.start();
  }

  private async stopPorts(): Promise<void> {
    const p = this.ports;
    this.ports = undefined;
    if (p) {
      await p.stop().catch(() => undefined);
      this.emit('ports', []);
    }
  }

  portsList(): { ports: PortView[]; manual: Settings['ports'] } {
    return { ports: this.ports?.list() ?? [], manual: this.settingsStore().get().ports };
  }

  /** Add a manual forward: saved in settings, live at once when the VM runs. */
  async portsAdd(p: { hostPort: number; guestPort: number; proto?: 'tcp' | 'udp'; hostIp?: string }) {
    addPort(this.settingsStore(), p);
    await this.ports?.refresh();
    return this.portsList();
  }

  async portsRemove(p: { hostPort: number; proto?: 'tcp' | 'udp' }) {
    removePort(this.settingsStore(), p);
    await this.ports?.refresh();
    return this.portsList();
  }

  /** Settings changed through the API: apply what can be applied live. */
  async settingsChanged(changed: string[]): Promise<void> {
    if (changed.includes('ports') || changed.includes('portBind')) await this.ports?.refresh();
    if (changed.includes('shares')) await this.shares?.refresh();
    if (changed.includes('sync') || changed.includes('shares')) await this.sync?.refresh();
  }

  private guestDied(message: string): BerthError {
    return new BerthError(
      'GUEST_BOOT_FAILED',
      message,
      'The serial console below shows what the guest printed last (`berth logs --serial` has all of it).',
      tailFile(this.paths.serialLog, 25).join('\n'),
    );
  }

  /** The driver for this start: fixed by the caller (tests), else the setting and the host decide. */
  private async selectDriver(settings: Settings): Promise<Driver> {
    if (this.o.driver) {
      this.driver = this.o.driver;
      this.driverChoice = { reason: `${this.o.driver.name}, given by the caller`, warnings: [] };
      return this.o.driver;
    }
    if (!this.o.drivers) throw new BerthError('INTERNAL', 'the engine has no driver factory', 'This is a bug in Berth; please report it.');
    this.progress('prepare', settings.driver === 'auto' ? 'choosing the VM driver for this host' : `checking the ${settings.driver} driver`);
    const sel = await this.o.drivers.select(settings.driver, this.o.images.arch);
    this.driver = sel.driver;
    this.driverChoice = sel.choice;
    this.o.log.info({ driver: sel.choice.name, reason: sel.choice.reason, warnings: sel.choice.warnings }, 'driver');
    return sel.driver;
  }

  /** The driver that runs the VM an earlier engine left (its state file names it). */
  private driverFor(run: RunState): Driver {
    if (this.o.driver) return this.o.driver;
    if (!this.o.drivers) throw new BerthError('INTERNAL', 'the engine has no driver factory', 'This is a bug in Berth; please report it.');
    return this.o.drivers.byName((run.driver ?? 'qemu') as DriverName);
  }

  /** A driver that chooses (QEMU) probes or takes the setting; the others run on their own hypervisor. */
  private async chooseAccel(driver: Driver, settings: Settings, image: GuestImage): Promise<AccelChoice> {
    const own = driver.features.accelerator;
    if (own !== 'choose') {
      if (settings.accel !== 'auto') this.o.log.warn({ accel: settings.accel, driver: driver.name }, `the accel setting does not apply to the ${driver.features.label} driver; ignored`);
      return { ...own, cached: false };
    }
    return chooseAccelerator({
      arch: this.o.images.arch,
      kernel: image.kernel,
      initrd: image.initrd,
      requested: settings.accel,
      cacheFile: this.o.accelCacheFile,
      host: this.o.drivers?.host,
    });
  }

  private traits(driver: Driver): GuestTraits {
    return driver.guestTraits?.(this.o.images.arch) ?? defaultGuestTraits(this.o.images.arch);
  }

  /**
   * Which shares become virtio-fs devices at this start (share/virtiofs.ts):
   * the shareMechanism setting (BERTH_SHARE_MECHANISM overrides it), what
   * the driver can do here, and each share's own limits. `failed`: virtio-fs
   * was tried and failed, so reverse sshfs for every share, saying why.
   */
  private async planShares(driver: Driver, settings: Settings, failed?: string): Promise<SharePlan> {
    const env = process.env.BERTH_SHARE_MECHANISM;
    const fromEnv = env === 'auto' || env === 'virtiofs' || env === 'sshfs';
    if (env && !fromEnv) this.o.log.warn({ BERTH_SHARE_MECHANISM: env }, 'BERTH_SHARE_MECHANISM must be auto, virtiofs or sshfs; ignored');
    const setting: ShareMechanismSetting = fromEnv ? env : settings.shareMechanism;
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
      settingSource: fromEnv ? 'BERTH_SHARE_MECHANISM' : 'settings',
      driver: driver.name,
      support,
      socketDir: path.join(this.paths.dir, 'virtiofs'),
      isDir: (p) => {
        try {
          return fs.statSync(p).isDirectory();
        } catch {
          return false;
        }
      },
    });
    this.o.log.info(
      { setting, virtiofs: plan.devices.map((d) => ({ host: d.hostPath, tag: d.tag })), support: support.ok ? support.how : support.reason },
      'file sharing plan',
    );
    return plan;
  }

  private spec(run: RunState, image: GuestImage, driver: Driver): VmSpec {
    return buildVmSpec(driver.name, this.traits(driver), {
      shares: run.sharePlan?.devices,
      paths: this.paths,
      image,
      arch: this.o.images.arch,
      accel: run.accel,
      cpus: run.cpus,
      memoryMiB: run.memoryMiB,
      diskGiB: run.diskGiB,
      sshHostPort: run.sshPort,
      // BERTH_QEMU_HOSTFWD=28080:18080,... adds QEMU's own loopback forwards (benchmarks).
      extraHostForwards: (process.env.BERTH_QEMU_HOSTFWD ?? '').split(',').filter(Boolean),
      rosetta: run.rosetta?.active ?? false,
    });
  }

  /** Rosetta for this start: the setting, the driver, the guest and whether the Mac has it (host-detect). */
  private rosettaPlan(settings: Settings, driver: Driver): RosettaPlan {
    // Whether this Mac has Rosetta is in the host check of the driver that runs the VM.
    const check = this.driverChoice?.checks?.find((c) => c.driver === driver.name);
    const installed = typeof check?.details.rosetta === 'boolean' ? check.details.rosetta : undefined;
    const plan = rosettaPlan(settings.rosetta, driver.name, this.o.images.arch, installed);
    if (plan.note) this.o.log.warn({ driver: driver.name, arch: this.o.images.arch }, plan.note);
    else if (plan.use) this.o.log.info('Rosetta: x86_64 binaries run through Rosetta');
    return plan;
  }

  private prepareDisks(settings: Settings, traits: GuestTraits, features: DriverFeatures, rosetta: RosettaPlan): void {
    // A VHDX driver makes its data disk itself (Hyper-V: a dynamic VHDX, hyperv.ts).
    if (features.diskFormat === 'raw') this.growRawDataDisk(settings.diskGiB);
    writeConfigDisk(this.paths.configDir, this.paths.configDisk, {
      authorizedKeys: this.keys!.clientPublic,
      hostPrivateKey: this.keys!.hostPrivate,
      hostPublicKey: this.keys!.hostPublic,
      env: {
        BERTH_NET: traits.network,
        BERTH_HOSTNAME: 'berth',
        BERTH_INSTANCE: this.paths.name,
        // The guest mounts this virtiofs tag and registers Rosetta (rosetta.sh).
        ...(rosetta.use ? { BERTH_ROSETTA: ROSETTA_TAG } : {}),
      },
    });
    if (features.diskFormat === 'vhdx') writeFixedVhd(this.paths.configDisk, this.paths.configVhd);
  }

  private growRawDataDisk(diskGiB: number): void {
    const want = diskGiB * 1024 ** 3;
    let size = -1;
    try {
      size = fs.statSync(this.paths.dataDisk).size;
    } catch {
      /* first start */
    }
    if (size < want) {
      // Sparse: the file takes only what the guest writes. The guest grows
      // its file system to the new size at boot.
      const fd = fs.openSync(this.paths.dataDisk, size < 0 ? 'w' : 'r+', 0o600);
      fs.ftruncateSync(fd, want);
      fs.closeSync(fd);
    }
  }

  private watchVm(vm: RunningVm): void {
    vm.on('exit', ({ reason }) => {
      if (this.vm !== vm) return;
      this.vm = undefined;
      if (this.sm.state === 'stopping' || this.sm.state === 'stopped') return;
      this.o.log.error({ reason }, 'VM exited unexpectedly');
      const wasRunning = this.sm.state === 'running';
      void this.teardown(false).then(() => {
        if (!wasRunning) return; // a start in flight reports its own failure
        const info: ErrorInfo = {
          code: 'VM_EXITED',
          message: `the VM stopped unexpectedly (${reason})`,
          hint: 'Containers and volumes are on the data disk and are kept. `berth start` starts the VM again; `berth logs --serial` shows its last console output.',
          details: tailFile(this.paths.serialLog, 25).join('\n'),
        };
        if (this.sm.state !== 'running') return;
        const restart = this.recoveryPlan(reason);
        if (!restart) {
          info.hint = `It stopped ${CRASH_BUDGET} times within ${CRASH_WINDOW_MS / 60_000} minutes, so Berth does not restart it by itself. ${info.hint}`;
        }
        this.sm.to('error', info);
        if (restart) this.scheduleRecovery();
      });
    });
  }

  /** True when an unexpected exit should start the VM again (a budget per window). */
  private recoveryPlan(reason: string): boolean {
    const now = Date.now();
    this.crashes = this.crashes.filter((c) => now - c.at < CRASH_WINDOW_MS);
    this.crashes.push({ at: now, reason });
    return this.crashes.length < CRASH_BUDGET;
  }

  /**
   * A VM that died under a running engine (QEMU killed, a kernel panic, the
   * hypervisor crashing) is started again, as Docker Desktop and OrbStack
   * do: the data disk holds the containers, images and volumes, and
   * containers with a restart policy come back with dockerd. `berth stop`
   * in the meantime cancels it.
   */
  private scheduleRecovery(): void {
    if (this.recoveryTimer) clearTimeout(this.recoveryTimer);
    this.recoveryTimer = setTimeout(() => {
      this.recoveryTimer = undefined;
      if (this.sm.state !== 'error' || this.stopPromise || this.startPromise) return;
      this.o.log.warn({ crashes: this.crashes.length }, 'starting the VM again after it stopped unexpectedly');
      this.start().catch((err: Error) => this.o.log.error({ err: err.message }, 'restarting the VM after a crash failed'));
    }, env('BERTH_RECOVERY_DELAY_MS', 2000));
    this.recoveryTimer.unref();
  }

  private cancelRecovery(): void {
    if (this.recoveryTimer) clearTimeout(this.recoveryTimer);
    this.recoveryTimer = undefined;
  }

  /** Release the socket and session; with `killVm`, force the VM off too. */
  private async teardown(killVm: boolean): Promise<void> {
    await this.stopPorts();
    await this.stopSync();
    await this.stopShares();
    await this.forward?.close().catch(() => undefined);
    this.forward = undefined;
    this.session?.close();
    this.session = undefined;
    if (killVm && this.vm) {
      const vm = this.vm;
      this.vm = undefined;
      await vm.kill().catch(() => undefined);
    }
    if (!this.vm) fs.rmSync(this.paths.state, { force: true });
  }

  private async syncClock(): Promise<void> {
    const s = this.session;
    if (!s) return;
    const secs = (Date.now() / 1000).toFixed(3);
    await s.exec(`date -u -s @${secs} >/dev/null`, { timeoutMs: 5000 }).catch((err: Error) => {
      this.o.log.debug({ err: err.message }, 'clock sync failed');
    });
  }

  /** Stop the VM: the guest flushes and powers off; forced after a timeout. */
  stop(opts: { force?: boolean } = {}): Promise<VmStatus> {
    this.cancelRecovery();
    if (this.sm.state === 'stopped' && !this.reattaching) return Promise.resolve(this.status());
    if (this.stopPromise) return this.stopPromise;
    const p = (async () => {
      if (this.reattaching) await this.reattaching;
      if (this.startPromise) await this.startPromise.catch(() => undefined);
      if (this.sm.state === 'stopped') return this.status();
      return this.doStop(opts.force ?? false);
    })();
    this.stopPromise = p.finally(() => {
      this.stopPromise = undefined;
    });
    return this.stopPromise;
  }

  private async doStop(force: boolean): Promise<VmStatus> {
    this.sm.to('stopping');
    const vm = this.vm;
    await this.stopPorts();
    await this.forward?.close().catch(() => undefined);
    this.forward = undefined;
    if (!force && this.sync && this.session?.currentState === 'connected') {
      // What containers wrote in synced folders reaches the host before the VM goes.
      await this.sync.flush(env('BERTH_SYNC_STOP_TIMEOUT_MS', 60_000));
    }
    await this.stopSync();
    if (vm && vm.alive()) {
      let off = false;
      if (!force && this.session?.currentState === 'connected') {
        this.o.log.info('asking the guest to power off');
        // The guest stops dockerd, flushes and unmounts the data disk, then
        // powers off; the ssh connection drops on the way.
        this.session.exec('/bin/busybox poweroff', { timeoutMs: 5000 }).catch(() => undefined);
        this.session.expectShutdown();
        off = await vm.waitExit(env('BERTH_STOP_TIMEOUT_MS', 60_000));
        if (!off) this.o.log.warn('the guest did not power off in time; forcing it off');
      }
      if (!off) await vm.kill();
    }
    await this.stopShares();
    this.session?.close();
    this.session = undefined;
    this.vm = undefined;
    this.run = undefined;
    this.driver = undefined;
    this.driverChoice = undefined;
    this.vmSpec = undefined;
    this.attached = false;
    this.timings = {};
    fs.rmSync(this.paths.state, { force: true });
    this.sm.to('stopped');
    return this.status();
  }

  async restart(): Promise<VmStatus> {
    await this.stop();
    return this.start();
  }

  /**
   * A VM left running by an engine that died (SIGKILL, crash): take it over
   * without restarting it, so running containers are untouched.
   */
  reattach(): Promise<boolean> {
    if (!this.reattaching) {
      this.reattaching = this.doReattach().finally(() => {
        this.reattaching = undefined;
      });
    }
    return this.reattaching;
  }

  private async doReattach(): Promise<boolean> {
    const run = readJsonIfExists(this.paths.state) as RunState | undefined;
    const runDriver = run ? this.driverFor(run) : undefined;
    const image =
      run?.sshPort && run.imageDir && runDriver
        ? await this.o.images.verify(run.imageDir, undefined, bootModeFor(runDriver.features)).catch(() => undefined)
        : undefined;
    const driver = image ? runDriver : undefined;
    const spec = run && image && driver ? this.spec(run, image, driver) : undefined;
    const vm = driver && spec ? await driver.attach(spec) : null;
    if (!run || !image || !vm || !driver) {
      fs.rmSync(this.paths.state, { force: true });
      return false;
    }
    const t0 = Date.now();
    this.timings = {};
    this.sm.to('starting');
    try {
      this.progress('prepare', `found the VM (pid ${vm.pid}) of an earlier engine; reattaching`);
      this.keys = ensureGuestKeys(this.paths.keysDir, this.paths.clientKey, this.paths.hostKey, this.paths.name);
      this.run = run;
      this.image = image;
      this.vm = vm;
      this.driver = driver;
      this.driverChoice = { reason: run.driverReason ?? `${driver.name} (reattached)`, warnings: [] };
      this.vmSpec = spec;
      this.watchVm(vm);
      this.attached = true;
      await this.connectGuest(t0, run.accel === 'tcg');
      this.timings.totalMs = Date.now() - t0;
      this.sm.to('running');
      this.o.log.info({ pid: vm.pid }, 'reattached to the running VM');
      return true;
    } catch (err) {
      // Keep the VM: it may hold running containers. `stop` or `start` decide.
      await this.teardown(false);
      if (this.sm.state === 'starting') this.sm.to('error', toErrorInfo(err));
      return false;
    }
  }

  /** The ssh endpoint for `berth shell`. */
  sshEndpoint(): { host: string; port: number; user: string; privateKeyPath: string; hostPublicKey: string } {
    if (this.sm.state !== 'running' || !this.run || !this.keys) {
      throw new BerthError('VM_NOT_RUNNING', 'the VM is not running', 'Start it with `berth start`.');
    }
    return {
      host: this.run.ssh?.host ?? '127.0.0.1',
      port: this.run.ssh?.port ?? this.run.sshPort,
      user: 'root',
      privateKeyPath: this.paths.clientKey,
      hostPublicKey: this.keys.hostPublic,
    };
  }

  async guestLogs(lines: number): Promise<string[]> {
    if (this.sm.state !== 'running' || !this.session) {
      throw new BerthError('VM_NOT_RUNNING', 'the VM is not running', 'Guest logs live in the VM; start it with `berth start`.');
    }
    const r = await this.session.exec(`/bin/busybox logread | tail -n ${lines}`, { timeoutMs: 10_000 });
    return r.stdout.split('\n').filter(Boolean);
  }

  /** For fault-injection tests and the reliability suite. */
  get guestSession(): GuestSession | undefined {
    return this.session;
  }

  get dockerContextName(): string {
    return contextName(this.paths.name);
  }
}

/** A free TCP port on 127.0.0.1 (the OS picks it). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Keep the previous boot's serial log as serial.log.1. */
function rotate(file: string): void {
  try {
    fs.renameSync(file, `${file}.1`);
  } catch {
    /* first boot */
  }
}
