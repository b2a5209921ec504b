/**
 * An engine without a VM for UI tests and the dashboard bench: the real
 * control server, the real Docker handlers over a fake dockerd, the real
 * settings store, logs, diagnostics and factory reset in a temporary
 * instance folder, and a VM state machine that "boots" in a moment,
 * reporting the start phases as the real engine does.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ControlServer } from '../../app/engine/api/control-server.js';
import type { Handlers } from '../../app/contract/contract.js';
import type { VmStatus } from '../../app/contract/contract.js';
import { buildDiagnostics } from '../../app/engine/api/diagnostics.js';
import { factoryReset } from '../../app/engine/api/factory-reset.js';
import { readLog } from '../../app/engine/api/log-read.js';
import { DockerApi } from '../../app/engine/docker/docker-api.js';
import { dockerHandlers } from '../../app/engine/docker/docker-handlers.js';
import { BerthError } from '../../app/contract/errors.js';
import { silentLogger } from '../../app/base/log.js';
import { instancePaths, type InstancePaths } from '../../app/base/paths.js';
import { sleep } from '../../app/base/process-util.js';
import { rosettaPlan } from '../../app/engine/drivers/vm-spec.js';
import { SettingsStore, settingsView } from '../../app/engine/settings/store.js';
import { addShare, removeShare } from '../../app/engine/settings/edits.js';
import { adviseShares, FolderActivity } from '../../app/engine/share/share-activity.js';
import { VmStateMachine } from '../../app/engine/vm/state-machine.js';
import { StartClock } from '../../app/engine/boot/start-clock.js';
import { startFakeDockerEngine, type FakeDockerd } from './fake-dockerd.js';

export interface FakeEngine {
  paths: InstancePaths;
  dockerd: FakeDockerd;
  sm: VmStateMachine;
  server: ControlServer;
  /** Methods answered this many ms late (a busy engine), to show what the page does meanwhile. */
  slow: Map<string, number>;
  /** The changes counted per bind-mounted folder (what the real change notifier counts); busy ones get advice. */
  activity: FolderActivity;
  /** As a host where virtiofs is not used (e.g. a low open-files limit): every share by reverse sshfs, saying `reason`; undefined: virtiofs. */
  setShareFallback(reason: string | undefined): void;
  close(): Promise<void>;
}

const PHASES = [
  ['prepare', 'preparing the VM'],
  ['image', 'checking the guest image'],
  ['boot', 'booting the VM'],
  ['guest', 'waiting for the guest'],
  ['docker', 'waiting for Docker'],
  ['socket', 'forwarding the Docker socket'],
] as const;

export async function startFakeEngine(home: string, o: { running?: boolean; phaseMs?: number } = {}): Promise<FakeEngine> {
  const paths = instancePaths('default', home);
  fs.mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  const dockerd = await startFakeDockerEngine(path.join(paths.dir, 'fake-dockerd.sock'));
  const settings = new SettingsStore(paths.settings);
  settings.persistDefaults();
  fs.writeFileSync(paths.engineLog, JSON.stringify({ level: 30, time: Date.now(), msg: 'engine starting (fake)' }) + '\n');
  fs.writeFileSync(paths.serialLog, 'Linux version 6.1.0-fake\nberth-init: ready\n');
  const sm = new VmStateMachine();
  // As the daemon does: each phase's time, kept for the next starts' checklist.
  const clock = new StartClock(paths.startTimes);
  let phase: string | undefined;
  const abort = new AbortController();
  const token = 'f'.repeat(64);
  fs.writeFileSync(paths.token, token + '\n', { mode: 0o600 });

  const status = (): VmStatus => {
    const s = settings.get();
    const st: VmStatus = {
      instance: 'default',
      state: sm.state,
      driver: 'fake',
      cpus: s.cpus,
      memoryMiB: s.memoryMiB,
      diskGiB: s.diskGiB,
      dockerSocket: dockerd.socketPath,
      dockerHost: `unix://${dockerd.socketPath}`,
      enginePid: process.pid,
    };
    if (settings.problem) st.settingsProblem = settings.problem.toInfo();
    const expected = clock.expected();
    if (expected) st.expected = expected;
    if (sm.state === 'starting' && phase) st.phase = phase as never;
    if (sm.state === 'resting') st.rest = { idleMinutes: s.idleMinutes, rests: 1, wakes: 0, restingSince: new Date().toISOString() };
    if (sm.state === 'running') {
      st.accel = 'tcg';
      // What the real engine says with the setting on and a driver without Rosetta.
      const plan = rosettaPlan(s.rosetta, 'fake', 'x86_64', undefined);
      if (s.rosetta) st.rosetta = plan.note ? { active: plan.use, note: plan.note } : { active: plan.use };
      st.dockerContext = { name: 'berth', outcome: 'created' };
      st.timings = { totalMs: 1234 };
    }
    return st;
  };

  // eslint-disable-next-line prefer-const -- assigned once below, after the handlers that use it
  let server!: ControlServer;
  const start = async () => {
    if (sm.state === 'running') return status();
    sm.to('starting');
    for (const [p, message] of PHASES) {
      phase = p;
      clock.progress(p);
      server.broadcast('vm.progress', { phase: p, message, at: new Date().toISOString() });
      await sleep(o.phaseMs ?? 150);
    }
    phase = undefined;
    sm.to('running');
    return status();
  };
  const stop = async () => {
    if (sm.state === 'resting') {
      sm.to('stopped');
      return status();
    }
    if (sm.state !== 'running') return status();
    sm.to('stopping');
    await sleep(o.phaseMs ?? 150);
    sm.to('stopped');
    return status();
  };
  const portsList = () => ({
    ports: [...dockerd.containers.values()]
      .filter((c) => c.State === 'running')
      .flatMap((c) =>
        c.Ports.filter((p) => p.PublicPort && p.IP !== '::').map((p) => ({
          proto: p.Type,
          hostPort: p.PublicPort!,
          hostIps: ['127.0.0.1', '::1'],
          guestIp: '127.0.0.1',
          guestPort: p.PublicPort!,
          source: 'docker' as const,
          container: { id: c.Id, name: c.Names[0]!.slice(1), port: p.PrivatePort },
          state: 'active' as const,
          connections: 0,
        })),
      ),
    manual: settings.get().ports,
  });

  // While "running", every configured share is mounted over virtiofs, as on a Linux host with virtiofsd.
  const activity = new FolderActivity();
  let fallback: string | undefined;
  const sharesList = () => ({
    shares:
      sm.state === 'running'
        ? adviseShares(
            settings.get().shares.map((c) => ({
              hostPath: c.hostPath,
              guestPath: c.guestPath ?? c.hostPath,
              readOnly: !!c.readOnly,
              mechanism: fallback === undefined ? ('virtiofs' as const) : ('reverse-sshfs' as const),
              mechanismReason: fallback ?? 'virtiofsd (fake)',
              state: 'mounted' as const,
            })),
            activity,
            (settings.get().sync ?? []).map((x) => x.hostPath),
          )
        : [],
    configured: settings.get().shares,
  });

  const handlers: Partial<Handlers> = {
    ...dockerHandlers({
      api: () => {
        if (sm.state !== 'running') throw new BerthError('VM_NOT_RUNNING', 'the VM is not running', 'Start it with `berth start` (or the Start button).');
        return new DockerApi(dockerd.socketPath);
      },
      broadcast: (e, d) => server.broadcast(e, d),
      signal: abort.signal,
      watchRetryMs: 200,
    }),
    'vm.status': async () => status(),
    'vm.start': start,
    'vm.stop': stop,
    'vm.restart': async () => (await stop(), start()),
    'settings.get': async () => settingsView(settings) as never,
    'settings.update': async (p) => settings.update(p.patch) as never,
    'ports.list': async () => portsList(),
    'ports.add': async (p) => {
      settings.update({ ports: [...settings.get().ports, { proto: 'tcp', ...p }] });
      return portsList();
    },
    'ports.remove': async (p) => {
      const cur = settings.get().ports;
      const next = cur.filter((m) => !(m.hostPort === p.hostPort && m.proto === (p.proto ?? 'tcp')));
      if (next.length === cur.length)
        throw new BerthError('BAD_REQUEST', `there is no manual forward of host port ${p.hostPort}`, '`berth ports` lists the forwards.');
      settings.update({ ports: next });
      return portsList();
    },
    'shares.list': async () => sharesList(),
    // The engine's own edits: a folder that does not exist is refused (INVALID_HOST_PATH).
    'shares.add': async (p) => (addShare(settings, p), sharesList()),
    'shares.remove': async (p) => (removeShare(settings, p.hostPath), sharesList()),
    'sync.list': async () => ({ syncs: [], configured: settings.get().sync ?? [] }),
    'sync.add': async (p) => {
      settings.update({ sync: [...(settings.get().sync ?? []).filter((x) => x.hostPath !== p.hostPath), { hostPath: p.hostPath }] });
      return { syncs: [], configured: settings.get().sync ?? [] };
    },
    'sync.remove': async (p) => {
      settings.update({ sync: (settings.get().sync ?? []).filter((x) => x.hostPath !== p.hostPath) });
      return { syncs: [], configured: settings.get().sync ?? [] };
    },
    'guest.sshEndpoint': async () => {
      throw new BerthError('VM_NOT_RUNNING', 'no ssh in the fake engine', 'Use a real VM.');
    },
    'guest.logs': async () => ({ lines: ['fake guest log'] }),
    'logs.read': async (p) => readLog(paths, p.source, p.lines),
    'diagnostics.bundle': async () => buildDiagnostics({ paths, extra: { 'status.json': status() } }),
    'engine.factoryReset': async () => factoryReset({ paths, state: sm.state, settings }) as never,
    'engine.shutdown': async () => ({}),
  };
  const slow = new Map<string, number>();
  for (const [method, handler] of Object.entries(handlers) as [string, (...a: unknown[]) => Promise<unknown>][]) {
    (handlers as Record<string, unknown>)[method] = async (...a: unknown[]) => {
      const ms = slow.get(method);
      if (ms) await sleep(ms);
      return handler(...a);
    };
  }
  server = new ControlServer(paths.controlSocket, token, handlers as Handlers, { version: 'fake', instance: 'default' }, silentLogger());
  sm.on('change', (c) => (clock.state(c), server.broadcast('vm.state', c)));
  activity.on('busy', () => server.broadcast('shares.changed', { shares: sharesList().shares }));
  await server.listen();
  if (o.running) {
    sm.to('starting');
    sm.to('running');
  }
  return {
    paths,
    dockerd,
    sm,
    server,
    slow,
    activity,
    setShareFallback(reason) {
      fallback = reason;
      server.broadcast('shares.changed', { shares: sharesList().shares });
    },
    async close() {
      abort.abort();
      await server.close();
      await dockerd.close();
    },
  };
}
