import fs from 'node:fs';
import { BerthError } from '../errors.js';
import path from 'node:path';
import { ensurePrivateDir, writeFileAtomic } from '../fs-util.js';
import {
  RESTART_KEYS,
  SettingsPatchSchema,
  SettingsSchema,
  describeIssues,
  type Settings,
  type SettingsPatch,
} from './schema.js';

export interface UpdateResult {
  settings: Settings;
  changed: (keyof Settings)[];
  restartRequired: boolean;
}

/**
 * Settings of one instance, persisted as JSON (owner-only). A bad file or a
 * bad update is refused with a clear error and changes nothing: the last
 * good settings stay in memory and on disk.
 */
export class SettingsStore {
  private current: Settings;

  /**
   * `dataDisk`: the instance's data disk, if it has one yet: the disk size
   * can only grow from the size of that file (a new instance takes any size).
   */
  constructor(
    private readonly file: string,
    private readonly opts: { dataDisk?: string } = {},
  ) {
    this.current = SettingsStore.load(file);
  }

  /** The size the data disk has on the host, in GiB; undefined before the first start. */
  private diskFloorGiB(): number | undefined {
    if (!this.opts.dataDisk) return this.current.diskGiB;
    try {
      return Math.ceil(fs.statSync(this.opts.dataDisk).size / 2 ** 30);
    } catch {
      return undefined;
    }
  }

  static load(file: string): Settings {
    let text: string | undefined;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (text === undefined || text.trim() === '') return SettingsSchema.parse({});
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new BerthError(
        'SETTINGS_FILE_CORRUPT',
        `${file} is not valid JSON (${(err as Error).message})`,
        `Fix the file by hand, or delete it to go back to the defaults. Nothing was changed.`,
      );
    }
    const parsed = SettingsSchema.safeParse(raw);
    if (!parsed.success) {
      throw new BerthError(
        'INVALID_SETTINGS',
        `${file} has invalid settings: ${describeIssues(parsed.error)}`,
        'Fix the value by hand or with `berth settings set KEY=VALUE`; delete the file to go back to the defaults.',
      );
    }
    return parsed.data;
  }

  get(): Settings {
    return { ...this.current };
  }

  /** Validate the patch and the merged result, then persist. */
  update(patch: unknown): UpdateResult {
    const p = SettingsPatchSchema.safeParse(patch);
    if (!p.success) {
      throw new BerthError(
        'INVALID_SETTINGS',
        `invalid settings: ${describeIssues(p.error)}`,
        'Nothing was saved. `berth settings show` lists the keys and their current values.',
      );
    }
    const merged = SettingsSchema.safeParse({ ...this.current, ...(p.data as SettingsPatch) });
    if (!merged.success) {
      throw new BerthError(
        'INVALID_SETTINGS',
        `invalid settings: ${describeIssues(merged.error)}`,
        'Nothing was saved. Pick a value inside the allowed range.',
      );
    }
    const changed = (Object.keys(merged.data) as (keyof Settings)[]).filter(
      (k) => JSON.stringify(merged.data[k]) !== JSON.stringify(this.current[k]),
    );
    const floor = changed.includes('diskGiB') ? this.diskFloorGiB() : undefined;
    if (floor !== undefined && merged.data.diskGiB < floor) {
      throw new BerthError(
        'DISK_SHRINK',
        `the data disk cannot shrink from ${floor} GiB to ${merged.data.diskGiB} GiB`,
        'Disks only grow. To start over with a smaller disk, delete the instance (its containers, images and volumes go with it).',
      );
    }
    if (changed.length) {
      ensurePrivateDir(path.dirname(this.file));
      writeFileAtomic(this.file, JSON.stringify(merged.data, null, 2) + '\n');
      this.current = merged.data;
    }
    return {
      settings: this.get(),
      changed,
      restartRequired: changed.some((k) => RESTART_KEYS.includes(k)),
    };
  }

  /** Write the current settings if there is no file yet. */
  persistDefaults(): void {
    if (fs.existsSync(this.file)) return;
    ensurePrivateDir(path.dirname(this.file));
    writeFileAtomic(this.file, JSON.stringify(this.current, null, 2) + '\n');
  }
}
