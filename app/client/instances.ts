import fs from 'node:fs';
import { berthHome, INSTANCE_NAME_RE, instancePaths, type InstancePaths } from '../base/paths.js';
import { InstanceLock } from '../base/lock.js';
import { SettingsStore } from '../engine/settings/store.js';
import { orphanVm } from './offline.js';

/** The instances under BERTH_HOME (`berth list`): one folder each, named as instances are. */
export interface InstanceEntry {
  name: string;
  dir: string;
  /** An engine holds the instance (its pid), whatever the VM does. */
  enginePid?: number;
  /** A VM an engine left running. */
  orphanVm?: { driver: string; pid?: number };
  driver?: string;
  cpus?: number;
  memoryMiB?: number;
  diskGiB?: number;
}

export function listInstances(home = berthHome()): InstanceEntry[] {
  let names: string[];
  try {
    names = fs
      .readdirSync(home, { withFileTypes: true })
      .filter((d) => d.isDirectory() && INSTANCE_NAME_RE.test(d.name))
      .map((d) => d.name);
  } catch {
    return [];
  }
  return names.sort().map((name) => describeInstance(instancePaths(name, home)));
}

export function describeInstance(paths: InstancePaths): InstanceEntry {
  const e: InstanceEntry = { name: paths.name, dir: paths.dir };
  const pid = InstanceLock.holder(paths.lock);
  if (pid) e.enginePid = pid;
  const orphan = orphanVm(paths);
  if (orphan) e.orphanVm = orphan;
  try {
    const s = new SettingsStore(paths.settings).get();
    Object.assign(e, { driver: s.driver, cpus: s.cpus, memoryMiB: s.memoryMiB, diskGiB: s.diskGiB });
  } catch {
    /* a broken settings file: `berth status` says why */
  }
  return e;
}
