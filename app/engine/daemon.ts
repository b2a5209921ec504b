import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { ControlServer } from './api/control-server.js';
import { readLog } from './api/log-read.js';
import { dockerHandlers } from './docker/docker-handlers.js';
import { DockerApi } from './docker/docker-api.js';
import { driverFactory } from './drivers/driver-select.js';
import type { Driver } from './drivers/driver.js';
import { Engine } from './engine.js';
import { StartClock } from './boot/start-clock.js';
import type { VmStatus } from '../contract/contract.js';
import { BerthError } from '../contract/errors.js';
import { ensurePrivateDir, writeFileAtomic } from '../base/fs-util.js';
import { ImageStore } from './image/image-store.js';
import { InstanceLock } from '../base/lock.js';
import { createEngineLogger } from '../base/log.js';
import { berthHome, cacheDir, instancePaths, type InstancePaths } from '../base/paths.js';
import { SettingsStore, settingsView } from './settings/store.js';
import { readTuning, type Tuning } from '../base/tuning.js';
import { BERTH_VERSION } from '../base/version.js';

export interface DaemonOptions {
  instance: string;
  /** Exit once the VM has been stopped (how `berth start` runs the engine). */
  exitOnStop: boolean;
  /** The hypervisor driver (tests pass a fake one). */
  driver?: Driver;
  /** The environment overrides; default this process's (readTuning), refused here when bad. */
  tuning?: Tuning;
}

export interface RunningDaemon {
  engine: Engine;
  paths: InstancePaths;
  log: Logger;
  /** The control server (tests look at what reaches its handlers). */
  server: ControlServer;
  /** Resolves when the daemon has shut down. */
  done: Promise<void>;
  shutdown(stopVm: boolean): Promise<void>;
}

/**
 * The engine process of one instance: takes the instance lock, serves the
 * control API, reattaches to a VM an earlier engine left running, and on
 * SIGTERM/SIGINT stops the VM cleanly before it exits.
 */
export async function startDaemon(opts: DaemonOptions): Promise<RunningDaemon> {
  // A bad override stops the engine before it takes anything, naming the variable.
  const tuning = opts.tuning ?? readTuning();
  const paths = instancePaths(opts.instance);
  // Everything the engine and its children (QEMU) create is owner-only
  // from its first moment: logs, sockets, disks, pid files, the token.
  if (process.platform !== 'win32') process.umask(0o077);
  ensurePrivateDir(berthHome());
  ensurePrivateDir(paths.dir);
  const lock = InstanceLock.acquire(paths.lock);
  const log = createEngineLogger(paths.engineLog, tuning);
  log.info({ pid: process.pid, version: BERTH_VERSION, instance: opts.instance, recoveredFrom: lock.recoveredFrom }, 'engine starting');

  // A broken settings file never stops the engine: it goes on with the
  // last good settings (or, with none, refuses to start the VM and says why).
  const settings = new SettingsStore(paths.settings, { dataDisk: paths.dataDisk });
  try {
    settings.persistDefaults();
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'could not write the default settings');
  }
  if (settings.problem) {
    let usable = true;
    try {
      settings.get();
    } catch {
      usable = false;
    }
    log.error(
      { err: settings.problem.toInfo() },
      usable ? 'settings file refused; going on with the last good settings' : 'settings file refused; the VM will not start until it is fixed',
    );
  }

  const engine = new Engine({
    paths,
    log,
    ...(opts.driver ? { driver: opts.driver } : { drivers: driverFactory({ tuning }) }),
    images: new ImageStore(cacheDir(), undefined, tuning),
    settings,
    accelCacheFile: path.join(cacheDir(), 'accel-probe.json'),
    tuning,
  });

  const token = crypto.randomBytes(32).toString('hex');
  writeFileAtomic(paths.token, token + '\n', 0o600);

  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  let shuttingDown = false;

  const docker = dockerHandlers({
    api: () => {
      if (engine.sm.state !== 'running') {
        throw new BerthError('VM_NOT_RUNNING', 'the VM is not running', 'Start it with `berth start` (or the Start button).');
      }
      return new DockerApi(paths.dockerSocket);
    },
    broadcast: (event, data) => server.broadcast(event, data),
  });
  const server: ControlServer = new ControlServer(
    paths.controlSocket,
    token,
    {
      ...docker,
      'vm.status': async () => {
        // The guest's df, when the last is more than 5 s old (one short exec, waited for at most 1 s; never while starting or resting).
        await engine.refreshDiskUsage(5000);
        return withExpected(engine.status());
      },
      'vm.start': () => engine.start(),
      'vm.stop': (p) => engine.stop({ force: p.force }),
      'vm.restart': () => engine.restart(),
      'settings.get': async () => settingsView(engine.settingsStore()),
      'settings.update': async (p) => {
        const r = engine.settingsStore().update(p.patch);
        await engine.edits.settingsChanged(r.changed);
        return r;
      },
      'ports.list': async () => engine.edits.portsList(),
      'ports.add': (p) => engine.edits.portsAdd(p),
      'ports.remove': (p) => engine.edits.portsRemove(p),
      'shares.list': async () => engine.edits.sharesList(),
      'shares.add': (p) => engine.edits.sharesAdd(p),
      'shares.remove': (p) => engine.edits.sharesRemove(p),
      'sync.list': async () => engine.edits.syncList(),
      'sync.add': (p) => engine.edits.syncAdd(p),
      'sync.remove': (p) => engine.edits.syncRemove(p),
      'guest.sshEndpoint': async () => engine.sshEndpoint(),
      'guest.logs': async (p) => ({ lines: await engine.guestLogs(p.lines ?? 200) }),
      'logs.read': async (p) => readLog(paths, p.source, p.lines),
      // Rare methods load their code when first asked: the engine holds what it loads for as long as it runs.
      'diagnostics.bundle': async () => {
        const { buildDiagnostics, engineExtras } = await import('./api/diagnostics.js');
        return buildDiagnostics({ paths, tuning, extra: await engineExtras(engine, paths.dockerSocket) });
      },
      'engine.factoryReset': async () => {
        const { factoryReset } = await import('./api/factory-reset.js');
        return factoryReset({ paths, state: engine.sm.state, settings: engine.settingsStore() });
      },
      'engine.shutdown': async (p) => {
        setImmediate(() => void shutdown(p.stopVm));
        return {};
      },
    },
    { version: BERTH_VERSION, instance: opts.instance },
    log,
  );

  // Each phase's time, kept for the next starts' checklist.
  const clock = new StartClock(paths.startTimes);
  const withExpected = (st: VmStatus): VmStatus => {
    const expected = clock.expected();
    return expected ? { ...st, expected } : st;
  };
  engine.on('state', (c) => (clock.state(c), server.broadcast('vm.state', c)));
  engine.on('progress', (p) => (clock.progress(p.phase), server.broadcast('vm.progress', p)));
  engine.on('session', (s) => server.broadcast('guest.session', s));
  engine.on('ports', (ports) => server.broadcast('ports.changed', { ports }));
  engine.on('shares', (shares) => server.broadcast('shares.changed', { shares }));
  engine.on('sync', (syncs) => server.broadcast('sync.changed', { syncs }));
  engine.on('syncConflict', (c) => server.broadcast('sync.conflict', c));

  async function shutdown(stopVm: boolean): Promise<void> {
    if (shuttingDown) return done;
    shuttingDown = true;
    log.info({ stopVm }, 'engine shutting down');
    try {
      if (stopVm) await engine.stop();
    } catch (err) {
      log.error({ err: (err as Error).message }, 'stop during shutdown failed');
    }
    await server.close();
    fs.rmSync(paths.token, { force: true });
    if (process.platform !== 'win32') fs.rmSync(paths.controlSocket, { force: true });
    lock.release();
    log.info('engine stopped');
    await new Promise<void>((r) => log.flush(() => r()));
    resolveDone();
  }

  try {
    await server.listen();
  } catch (err) {
    lock.release();
    throw err;
  }

  if (opts.exitOnStop) {
    engine.on('state', (c) => {
      if (c.state !== 'stopped' || (c.previous !== 'stopping' && c.previous !== 'resting')) return;
      // A restart's stop is followed at once by its start: exit only if the VM stayed stopped.
      setImmediate(() => {
        if (engine.status().state === 'stopped') void shutdown(false);
      });
    });
  }

  // A VM left by a dead engine is taken over in the background; clients
  // that ask meanwhile see `starting`.
  if (fs.existsSync(paths.state)) {
    log.info('found the state of an earlier engine; trying to reattach');
    void engine.reattach();
  }

  return { engine, paths, log, server, done, shutdown };
}

/** `berth daemon`: run until stopped by a signal or `engine.shutdown`. */
export async function runDaemonProcess(opts: DaemonOptions): Promise<void> {
  const d = await startDaemon(opts);
  const onSignal = (sig: NodeJS.Signals) => {
    d.log.info({ signal: sig }, 'signal received; stopping the VM');
    void d.shutdown(true);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', () => d.log.info('SIGHUP ignored'));
  process.on('uncaughtException', (err) => {
    // The VM keeps running; the next `berth start` reattaches to it.
    d.log.fatal({ err }, 'uncaught exception; the engine exits and the VM keeps running');
    d.log.flush(() => process.exit(70));
  });
  process.on('unhandledRejection', (err) => d.log.error({ err }, 'unhandled rejection'));
  await d.done;
  process.exit(0);
}
