import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import type { Logger } from 'pino';
import type { EventData, VmStatus } from '../contract/contract.js';
import { driverOfRun, imageView, instanceStatus, pickDriver, sshLogin, type SshLogin, type EngineTuning, type PlanContext } from './boot/boot-plan.js';
import { CrashRecovery, findLeftVm } from './boot/crash-recovery.js';
import { CurrentRun } from './boot/current-run.js';
import { rotateLog } from './boot/instance-disks.js';
import { launchVm, prepareRun } from './boot/launch-vm.js';
import type { Driver, RunningVm } from './drivers/driver.js';
import type { DriverFactory } from './drivers/driver-select.js';
import { contextName, ensureDockerContextOrWarn, type ContextResult } from '../base/docker-context.js';
import { BerthError, toErrorInfo } from '../contract/errors.js';
import { ensurePrivateDir, writeFileAtomic } from '../base/fs-util.js';
import { ensureGuestKeys, type GuestKeys } from '../base/ssh-keys.js';
import type { GuestSession } from './guest/session.js';
import type { GuestImage, ImageStore, ProgressDetail } from './image/image-store.js';
import type { InstancePaths } from '../base/paths.js';
import { connectGuest } from './runtime/connect-guest.js';
import { GuestWatchdog } from './runtime/guest-watchdog.js';
import type { GuestRuntime, RuntimeEvents } from './runtime/guest-runtime.js';
import { LiveEdits } from './runtime/live-edits.js';
import { RestControl } from './runtime/rest-control.js';
import { shutDown } from './runtime/shut-down.js';
import type { Settings } from './settings/schema.js';
import type { SettingsStore } from './settings/store.js';
import type { StartPhase, StateChange } from '../contract/vm-states.js';
import { VmStateMachine } from './vm/state-machine.js';

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
  /** The environment overrides (timeouts, accelerator, share mechanism, ...), read by the process that runs the engine. */
  tuning: EngineTuning;
}

/**
 * One instance: its VM, the guest session and the docker socket. Owns the
 * state machine; every transition and start phase is an event.
 */
export class Engine extends EventEmitter<
  RuntimeEvents & {
    state: [StateChange];
    progress: [EventData<'vm.progress'>];
  }
> {
  readonly sm = new VmStateMachine();
  /** Shares, manual ports and synced folders: edited in settings, applied to what runs. */
  readonly edits = new LiveEdits(
    () => this.settingsStore(),
    () => this.runtime,
  );
  private phase?: StartPhase;
  /** The VM run there is now (boot/current-run.ts). */
  private readonly cur = new CurrentRun();
  /** What lives on the connected guest session (shares, sync, socket, ports). */
  private runtime?: GuestRuntime;
  private keys?: GuestKeys;
  private image?: GuestImage;
  private context?: ContextResult;
  private startPromise?: Promise<VmStatus>;
  private stopPromise?: Promise<VmStatus>;
  private reattaching?: Promise<boolean>;
  /** A VM that went down by itself: error at once, teardown, a restart within the budget. */
  private readonly crashes: CrashRecovery;
  /** A running guest that stopped answering is stopped like a crash (runtime/guest-watchdog.ts). */
  private readonly watchdog: GuestWatchdog;
  /** The idle rest, and the docker socket that outlives one VM run. */
  private readonly rest: RestControl;

  constructor(private readonly o: EngineOptions) {
    super();
    this.watchdog = new GuestWatchdog({
      limitMs: () => this.o.tuning.hungGuestMs ?? (this.cur.run?.accel === 'tcg' ? 300_000 : 120_000),
      runningVm: () => (this.sm.state === 'running' ? this.cur.vm : undefined),
      log: o.log,
    });
    this.rest = new RestControl({
      paths: o.paths,
      log: o.log,
      idleMinutes: () => (this.o.settings instanceof BerthError ? 0 : this.o.settings.get().idleMinutes),
      busyReason: async () => (this.runtime ? this.runtime.busyReason() : 'the VM is not running'),
      state: () => this.sm.state,
      inFlight: () => !!(this.startPromise || this.stopPromise || this.reattaching),
      start: () => this.start(),
      toRest: () => this.stopping(() => this.doStop(false, true)),
    });
    this.crashes = new CrashRecovery({
      sm: this.sm,
      log: o.log,
      serialLog: o.paths.serialLog,
      recoveryDelayMs: o.tuning.recoveryDelayMs,
      teardown: () => this.teardown(false),
      restart: () => {
        if (this.stopPromise || this.startPromise) return;
        this.start().catch((err: Error) => this.o.log.error({ err: err.message }, 'restarting the VM after a crash failed'));
      },
    });
    this.sm.on('change', (c) => {
      this.o.log.info({ state: c.state, previous: c.previous, error: c.error?.code }, 'vm state');
      this.emit('state', c);
    });
  }

  private get paths(): InstancePaths {
    return this.o.paths;
  }

  private get plan(): PlanContext {
    return {
      paths: this.paths,
      log: this.o.log,
      arch: this.o.images.arch,
      accelCacheFile: this.o.accelCacheFile,
      host: this.o.drivers?.host,
      tuning: this.o.tuning,
    };
  }

  settingsStore(): SettingsStore {
    if (this.o.settings instanceof BerthError) throw this.o.settings;
    return this.o.settings;
  }

  private progress(phase: StartPhase, message: string, detail: ProgressDetail = {}): void {
    this.phase = phase;
    this.o.log.info({ phase }, message);
    this.emit('progress', { phase, message, at: new Date().toISOString(), ...detail });
  }

  status(): VmStatus {
    const cur = this.cur;
    const st = instanceStatus({
      paths: this.paths,
      state: this.sm.state,
      settings: this.o.settings,
      run: cur.run,
      driver: cur.driver?.name ?? this.o.driver?.name,
    });
    if (this.sm.state === 'starting' && this.phase) st.phase = this.phase;
    const err = this.sm.error;
    if (err) st.error = err;
    cur.addTo(st);
    const lastCrash = this.crashes.budget.last();
    if (lastCrash) st.lastCrash = lastCrash;
    if (this.context) st.dockerContext = { ...this.context };
    if (this.runtime) Object.assign(st, this.runtime.status(st.disk));
    st.rest = this.rest.view();
    if (this.image) st.image = imageView(this.image);
    return st;
  }

  /** Ask the guest for its data disk's use when the last answer is older than `maxAgeMs` (running only; never throws). */
  refreshDiskUsage = async (maxAgeMs: number) => (this.sm.state === 'running' ? this.runtime?.disk.refresh(maxAgeMs) : undefined);

  /** Start the VM. Idempotent: running returns at once, a start in flight is joined. */
  start(): Promise<VmStatus> {
    if (this.sm.state === 'running') return Promise.resolve(this.status());
    if (this.startPromise) return this.startPromise;
    const p = (async () => {
      await this.crashes.settled();
      if (this.reattaching) await this.reattaching;
      if (this.sm.state === 'running') return this.status();
      if (this.stopPromise) await this.stopPromise.catch(() => undefined);
      // A VM still up after an error (a failed reattach) is shut down first.
      if (this.sm.state === 'error' && this.cur.vm) await this.doStop(false);
      return this.doStart();
    })();
    this.startPromise = p.finally(() => {
      this.startPromise = undefined;
    });
    return this.startPromise;
  }

  private async doStart(): Promise<VmStatus> {
    const t0 = Date.now();
    this.cur.timings = {};
    this.cur.boot.begin();
    this.cur.attached = false;
    this.sm.to('starting');
    try {
      this.progress('prepare', 'preparing the instance');
      const settings = this.settingsStore().get();
      ensurePrivateDir(this.paths.dir);
      this.keys = ensureGuestKeys(this.paths.keysDir, this.paths.clientKey, this.paths.hostKey, this.paths.name);
      // The driver first: a driver that cannot run here fails before any image work.
      const driver = await this.selectDriver(settings);
      this.cur.timings.prepareMs = Date.now() - t0;

      const tImage = Date.now();
      this.progress('image', 'checking the guest image');
      const prepared = await prepareRun({
        plan: this.plan,
        images: this.o.images,
        tuning: this.o.tuning,
        driver,
        driverReason: this.cur.driverChoice?.reason,
        driverChecks: this.cur.driverChoice?.checks,
        settings,
        keys: this.keys,
        imageProgress: (m, d) => this.progress('image', m, d),
      });
      const { image, accel } = prepared;
      this.image = image;
      this.cur.run = prepared.run;
      this.cur.spec = prepared.spec;
      this.cur.timings.imageMs = Date.now() - tImage;

      const tBoot = Date.now();
      this.progress('boot', `booting the VM (${driver.name}, ${accel.accel}, ${settings.cpus} CPUs, ${settings.memoryMiB} MiB)`);
      rotateLog(this.paths.serialLog);
      this.cur.boot.mark('vm-spawn');
      const launched = await launchVm(this.plan, prepared, driver, settings);
      this.cur.vm = launched.vm;
      this.cur.spec = launched.spec;
      this.cur.boot.mark('vm-process-up');
      this.watchVm(this.cur.vm);
      writeFileAtomic(this.paths.state, JSON.stringify(this.cur.run, null, 2) + '\n');
      this.cur.timings.bootMs = Date.now() - tBoot;

      await this.connectGuest(tBoot, accel.accel === 'tcg');
      this.cur.timings.totalMs = Date.now() - t0;
      this.sm.to('running');
      this.rest.running();
      this.o.log.info({ timings: this.cur.timings }, 'VM running');
      return this.status();
    } catch (err) {
      await this.teardown(true);
      const info = toErrorInfo(err);
      this.o.log.error({ err: info }, 'start failed');
      if (this.sm.state === 'starting') this.sm.to('error', info);
      throw err instanceof BerthError ? err : new BerthError(info.code, info.message, info.hint, info.details);
    }
  }

  /** ssh, then dockerd, then the host socket (runtime/connect-guest.ts): shared by start and reattach. */
  private async connectGuest(tBoot: number, slow: boolean): Promise<void> {
    await connectGuest({
      vm: this.cur.vm!,
      spec: this.cur.spec!,
      keys: this.keys!,
      run: this.cur.run!,
      paths: this.paths,
      log: this.o.log,
      tuning: this.o.tuning,
      settings: () => this.settingsStore().get(),
      dockerSocket: this.rest.socket,
      slow,
      attached: this.cur.attached,
      tBoot,
      timings: this.cur.timings,
      boot: this.cur.boot,
      progress: (phase, message) => this.progress(phase, message),
      adopt: (rt) => {
        rt.on('session', ({ state }) => this.watchdog.session(state));
        this.runtime = rt;
        rt.relayTo(this);
      },
    });
    this.context = ensureDockerContextOrWarn(this.paths.name, this.paths.dockerSocket, this.o.log);
  }

  /** The driver for this start: fixed by the caller (tests), else the setting and the host decide. */
  private async selectDriver(settings: Settings): Promise<Driver> {
    if (!this.o.driver)
      this.progress('prepare', settings.driver === 'auto' ? 'choosing the VM driver for this host' : `checking the ${settings.driver} driver`);
    const sel = await pickDriver(this.o, settings.driver, this.o.images.arch);
    if (!this.o.driver) this.o.log.info({ driver: sel.driver.name, reason: sel.choice.reason, warnings: sel.choice.warnings }, 'driver');
    this.cur.driver = sel.driver;
    this.cur.driverChoice = sel.choice;
    return sel.driver;
  }

  private watchVm(vm: RunningVm): void {
    vm.on('exit', (e) => {
      if (this.cur.vm !== vm) return;
      const reason = this.watchdog.takeReason() ?? e.reason;
      this.cur.vm = undefined;
      if (this.sm.state !== 'stopping' && this.sm.state !== 'stopped') this.crashes.vmExited(reason);
    });
  }

  /**
   * Take down what runs on the session, newest first; with `killVm`, force
   * the VM off too. A crash or a failed start (or wake): the docker socket
   * goes, and connections that waited for a wake end.
   */
  private async teardown(killVm: boolean): Promise<void> {
    this.watchdog.stop();
    this.rest.leaving();
    const rt = this.runtime;
    this.runtime = undefined;
    await rt?.close();
    await this.rest.closeSocket();
    if (killVm && this.cur.vm) {
      const vm = this.cur.vm;
      this.cur.vm = undefined;
      await vm.kill().catch(() => undefined);
    }
    if (!this.cur.vm) fs.rmSync(this.paths.state, { force: true });
  }

  /** Stop the VM: the guest flushes and powers off; forced after a timeout. */
  stop(opts: { force?: boolean } = {}): Promise<VmStatus> {
    this.crashes.cancel();
    if (this.sm.state === 'stopped' && !this.reattaching) return Promise.resolve(this.status());
    if (this.stopPromise) {
      // A stop asked for while the VM goes to rest: it ends stopped, not resting.
      return this.stopPromise.then(() => (this.sm.state === 'resting' ? this.stop(opts) : this.status()));
    }
    return this.stopping(async () => {
      await this.crashes.settled();
      if (this.reattaching) await this.reattaching;
      if (this.startPromise) await this.startPromise.catch(() => undefined);
      if (this.sm.state === 'stopped') return this.status();
      if (this.sm.state === 'resting') {
        await this.rest.closeSocket();
        this.sm.to('stopped');
        return this.status();
      }
      return this.doStop(opts.force ?? false);
    });
  }

  private stopping(run: () => Promise<VmStatus>): Promise<VmStatus> {
    this.stopPromise = run().finally(() => {
      this.stopPromise = undefined;
    });
    return this.stopPromise;
  }

  /** A clean stop (runtime/shut-down.ts); going to rest keeps the docker socket listening for the wake. */
  private async doStop(force: boolean, toRest = false): Promise<VmStatus> {
    this.sm.to('stopping');
    this.watchdog.stop();
    this.rest.leaving();
    const rt = this.runtime;
    this.runtime = undefined;
    await shutDown({
      vm: this.cur.vm,
      runtime: rt,
      log: this.o.log,
      force,
      closeSocket: toRest ? undefined : () => this.rest.closeSocket(),
      syncStopTimeoutMs: this.o.tuning.syncStopTimeoutMs,
      stopTimeoutMs: this.o.tuning.stopTimeoutMs,
    });
    this.cur.clear();
    fs.rmSync(this.paths.state, { force: true });
    this.sm.to(toRest ? 'resting' : 'stopped');
    if (toRest) this.rest.rested();
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
    const left = await findLeftVm(this.plan, this.o.images, (run) => driverOfRun(this.o, run));
    if (!left) return false;
    const { run, image, driver, spec, vm } = left;
    const t0 = Date.now();
    this.cur.timings = {};
    this.cur.boot.clear();
    this.sm.to('starting');
    try {
      this.progress('prepare', `found the VM (pid ${vm.pid}) of an earlier engine; reattaching`);
      this.keys = ensureGuestKeys(this.paths.keysDir, this.paths.clientKey, this.paths.hostKey, this.paths.name);
      this.cur.run = run;
      this.image = image;
      this.cur.vm = vm;
      this.cur.driver = driver;
      this.cur.driverChoice = { reason: run.driverReason ?? `${driver.name} (reattached)`, warnings: [] };
      this.cur.spec = spec;
      this.watchVm(vm);
      this.cur.attached = true;
      await this.connectGuest(t0, run.accel === 'tcg');
      this.cur.timings.totalMs = Date.now() - t0;
      this.sm.to('running');
      this.rest.running();
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
  sshEndpoint(): SshLogin {
    if (this.sm.state !== 'running' || !this.cur.run || !this.keys) {
      throw new BerthError('VM_NOT_RUNNING', 'the VM is not running', 'Start it with `berth start`.');
    }
    return sshLogin(this.cur.run, this.keys, this.paths);
  }

  async guestLogs(lines: number): Promise<string[]> {
    if (this.sm.state !== 'running' || !this.runtime) {
      throw new BerthError('VM_NOT_RUNNING', 'the VM is not running', 'Guest logs live in the VM; start it with `berth start`.');
    }
    return this.runtime.guestLogs(lines);
  }

  /** For fault-injection tests and the reliability suite. */
  get guestSession(): GuestSession | undefined {
    return this.runtime?.session;
  }

  get dockerContextName(): string {
    return contextName(this.paths.name);
  }
}
