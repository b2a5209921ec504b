import fs from 'node:fs';
import { BerthError, isBerthError } from '../../contract/errors.js';
import type { InstancePaths } from '../../base/paths.js';
import { SettingsSchema, type Settings } from '../settings/schema.js';
import type { SettingsStore } from '../settings/store.js';
import type { VmState } from '../../contract/vm-states.js';

/**
 * `engine.factoryReset`: with the VM stopped, delete what the VM wrote
 * (the data disk: every container, image and volume, data.img or Hyper-V's
 * data.vhdx; the config disk; the serial logs) and put the settings back to
 * their defaults, the disk size included. The guest keys stay (the next boot would make the same kind
 * anyway).
 */
export function factoryReset(o: {
  paths: Pick<InstancePaths, 'dataDisk' | 'configDisk' | 'dataVhdx' | 'configVhd' | 'serialLog' | 'state'>;
  state: VmState;
  settings: SettingsStore;
}): { removed: string[]; kept: string[]; settings: Settings } {
  if (o.state !== 'stopped') {
    throw new BerthError('VM_BUSY', `the VM is ${o.state}`, 'Stop the VM first; a factory reset deletes its disk.');
  }
  const removed: string[] = [];
  for (const f of [o.paths.dataDisk, o.paths.dataVhdx, o.paths.configDisk, o.paths.configVhd, o.paths.serialLog, `${o.paths.serialLog}.1`, o.paths.state]) {
    if (fs.existsSync(f)) {
      fs.rmSync(f, { force: true });
      removed.push(f);
    }
  }
  const defaults = SettingsSchema.parse({});
  // The disk is gone, so its size goes back to the default too; a store
  // that cannot see the disk refuses the shrink, and then the size is kept.
  try {
    const r = o.settings.update(defaults);
    return { removed, kept: r.notice ? [r.notice] : [], settings: r.settings };
  } catch (err) {
    if (!isBerthError(err, 'DISK_SHRINK')) throw err;
  }
  const { diskGiB: _d, ...rest } = defaults;
  // A broken settings file is moved aside by the update (never deleted) and listed as kept.
  const r = o.settings.update(rest);
  const kept = [`diskGiB=${r.settings.diskGiB}`];
  if (r.notice) kept.push(r.notice);
  return { removed, kept, settings: r.settings };
}
