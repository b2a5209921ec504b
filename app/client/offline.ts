import fs from 'node:fs';
import type { RunState } from '../engine/boot/boot-plan.js';
import { dockerHostUrl } from '../base/docker-context.js';
import { DRIVER_FEATURES } from '../engine/drivers/features.js';
import type { DriverName } from '../engine/drivers/driver.js';
import { BerthError } from '../contract/errors.js';
import { readJsonIfExists } from '../base/fs-util.js';
import type { InstancePaths } from '../base/paths.js';
import { tryReadTuning } from '../base/tuning.js';
import { pidAlive } from '../base/process-util.js';
import { addPort, addShare, addSync, removePort, removeShare, removeSync } from '../engine/settings/edits.js';
import { SettingsStore, settingsView } from '../engine/settings/store.js';
import { checkParams, type MethodName, type VmStatus } from '../contract/contract.js';
import type { ControlClient } from './control-client.js';
import { buildDiagnostics } from '../engine/api/diagnostics.js';
import { factoryReset } from '../engine/api/factory-reset.js';
import { readLog } from '../engine/api/log-read.js';
import { expectedTimes, readStarts } from '../engine/boot/start-clock.js';

/**
 * What works with no engine running, one place for the CLI and the
 * dashboard's gateway: the status, settings and the share, port and sync
 * edits on the instance's files, logs and diagnostics, factory reset, and
 * stopping a VM an engine left behind, whichever driver runs it.
 */

/** A VM an engine left running (it was killed): its pid where it is a process of ours. */
export interface OrphanVm {
  driver: string;
  pid?: number;
}

/**
 * A VM without its engine. QEMU and vfkit run as our processes with a pid
 * file; a driver whose VM lives in the hypervisor's own service (Hyper-V's
 * vmms) has none, so the run state an engine removes at every clean stop
 * says it may still run, and an engine that takes it over finds out.
 */
export function orphanVm(paths: InstancePaths): OrphanVm | undefined {
  for (const [driver, file] of [
    ['qemu', paths.qemuPid],
    ['vfkit', paths.vfkitPid],
  ] as const) {
    try {
      const pid = Number(fs.readFileSync(file, 'utf8').trim());
      if (pidAlive(pid)) return { driver, pid };
    } catch {
      /* no pid file */
    }
  }
  let run: RunState | undefined;
  try {
    run = readJsonIfExists(paths.state) as RunState | undefined;
  } catch {
    return undefined;
  }
  const features = run?.driver ? DRIVER_FEATURES[run.driver as DriverName] : undefined;
  return features && !features.ownProcess ? { driver: run!.driver! } : undefined;
}

/**
 * The contract's answer when no engine runs. `takeOver` starts an engine
 * (which reattaches to an orphaned VM) for the calls only an engine can
 * answer: stopping that VM cleanly.
 */
export async function offlineCall(paths: InstancePaths, m: MethodName, raw: Record<string, unknown>, takeOver: () => Promise<ControlClient>): Promise<unknown> {
  // Checked as the engine checks them, so a bad value gets the same message with or without one.
  const p = checkParams(m, raw) as Record<string, unknown>;
  switch (m) {
    case 'vm.status':
    case 'vm.stop':
      if (m === 'vm.stop' && orphanVm(paths)) {
        // A VM without its engine: an engine takes it over so it can stop it cleanly.
        return (await takeOver()).call('vm.stop', p as { force?: boolean });
      }
      return offlineStatus(paths);
    case 'settings.get':
      return settingsView(new SettingsStore(paths.settings, { dataDisk: paths.dataDisk }));
    case 'settings.update':
      return new SettingsStore(paths.settings, { dataDisk: paths.dataDisk }).update((p as { patch: unknown }).patch);
    case 'ports.list':
      return { ports: [], manual: new SettingsStore(paths.settings).get().ports };
    case 'shares.list':
      return { shares: [], configured: new SettingsStore(paths.settings).get().shares };
    // Shares, manual forwards and synced folders are settings: edited on the
    // file while nothing runs, and live from the next start.
    case 'shares.add':
      return { shares: [], configured: addShare(new SettingsStore(paths.settings), p as Parameters<typeof addShare>[1]) };
    case 'shares.remove':
      return { shares: [], configured: removeShare(new SettingsStore(paths.settings), p.hostPath as string) };
    case 'ports.add':
      return { ports: [], manual: addPort(new SettingsStore(paths.settings), p as Parameters<typeof addPort>[1]) };
    case 'ports.remove':
      return { ports: [], manual: removePort(new SettingsStore(paths.settings), p as Parameters<typeof removePort>[1]) };
    case 'sync.list':
      return { syncs: [], configured: new SettingsStore(paths.settings).get().sync };
    case 'sync.add':
      return { syncs: [], configured: addSync(new SettingsStore(paths.settings), p.hostPath as string) };
    case 'sync.remove':
      return { syncs: [], configured: removeSync(new SettingsStore(paths.settings), p.hostPath as string) };
    case 'logs.read':
      return readLog(paths, p.source as 'engine' | 'serial', p.lines as number | undefined);
    case 'diagnostics.bundle':
      return buildDiagnostics({ paths, tuning: tryReadTuning(), extra: { 'status.json': { ...offlineStatus(paths), engine: false } } });
    case 'engine.factoryReset': {
      if (orphanVm(paths)) throw new BerthError('VM_BUSY', 'a VM of this instance still runs', 'Stop it first (Stop, or `berth stop`).');
      return factoryReset({ paths, state: 'stopped', settings: new SettingsStore(paths.settings, { dataDisk: paths.dataDisk }) });
    }
    case 'engine.shutdown':
      return {};
    default:
      throw new BerthError('ENGINE_NOT_RUNNING', 'Berth is not running', 'Start it first (the Start button, or `berth start`).');
  }
}

/** The status of an instance whose engine is not running. */
export function offlineStatus(paths: InstancePaths): VmStatus {
  let s: { cpus: number; memoryMiB: number; diskGiB: number } = { cpus: 0, memoryMiB: 0, diskGiB: 0 };
  const store = new SettingsStore(paths.settings);
  try {
    s = store.get();
  } catch {
    /* a broken settings file and no last good copy: the problem says why */
  }
  return {
    ...(store.problem ? { settingsProblem: store.problem.toInfo() } : {}),
    instance: paths.name,
    state: 'stopped',
    driver: '',
    cpus: s.cpus,
    memoryMiB: s.memoryMiB,
    diskGiB: s.diskGiB,
    dockerSocket: paths.dockerSocket,
    dockerHost: dockerHostUrl(paths.dockerSocket),
    enginePid: 0,
    ...expectedOf(paths),
  };
}

/** The phase times of the last starts, for the checklist of the next one. */
function expectedOf(paths: InstancePaths): Pick<VmStatus, 'expected'> {
  const expected = expectedTimes(readStarts(paths.startTimes));
  return expected ? { expected } : {};
}

/** The settings file itself, when no engine runs (same schema, same checks). */
export async function localSettings(paths: InstancePaths): Promise<SettingsStore> {
  return new SettingsStore(paths.settings, { dataDisk: paths.dataDisk });
}
