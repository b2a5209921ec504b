import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { BerthError } from '../../contract/errors.js';
import { ensurePrivateDir, writeFileAtomic } from '../../base/fs-util.js';
import { RESTART_KEYS, SettingsPatchSchema, SettingsSchema, describeIssues, settingsLimits, type Settings, type SettingsPatch } from './schema.js';
import { readCaCertificates } from './ca-certificates.js';

export interface UpdateResult {
  settings: Settings;
  changed: (keyof Settings)[];
  restartRequired: boolean;
  /** Said when saving had to move a broken settings file aside first. */
  notice?: string;
}

/** Where the last settings that loaded or saved cleanly are kept: next to the file. */
export function lastGoodPath(file: string): string {
  return file.replace(/(\.json)?$/, '.last-good.json');
}

type DiskRead = { kind: 'absent' } | { kind: 'empty' } | { kind: 'ok'; settings: Settings } | { kind: 'bad'; error: BerthError };

const FIX_HINT =
  'Fix it by hand, or run `berth settings set KEY=VALUE` (which moves the broken file aside and saves anew), or delete it to go back to the defaults.';

/** Read and check a settings file without touching anything. */
function readDisk(file: string): DiskRead {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'absent' };
    const why =
      code === 'EISDIR'
        ? 'is a folder, not a file'
        : code === 'EACCES' || code === 'EPERM'
          ? 'cannot be read (permission denied)'
          : `cannot be read (${code ?? (err as Error).message})`;
    return {
      kind: 'bad',
      error: new BerthError(
        'SETTINGS_FILE_UNREADABLE',
        `the settings file ${file} ${why}`,
        code === 'EISDIR'
          ? `Move that folder away; ${FIX_HINT.replace('Fix it by hand, or run', 'or run')}`
          : `Check its owner and permissions (it should be yours, mode 600). ${FIX_HINT}`,
      ),
    };
  }
  // Some editors (Notepad) start a UTF-8 file with a byte order mark; JSON.parse refuses it.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.trim() === '') return { kind: 'empty' };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    const msg = (err as Error).message;
    // V8 says "Unexpected end of JSON input" for most cuts, but a file cut
    // right after a comma fails "at position <its length>" instead.
    const at = /at position (\d+)/.exec(msg)?.[1];
    const truncated = /end of (JSON )?input|unterminated string/i.test(msg) || (at !== undefined && Number(at) >= text.trimEnd().length);
    return {
      kind: 'bad',
      error: new BerthError(
        'SETTINGS_FILE_CORRUPT',
        `the settings file ${file} is not valid JSON${truncated ? ' (it ends too early: truncated?)' : ''}: ${msg}`,
        FIX_HINT,
      ),
    };
  }
  const parsed = SettingsSchema.safeParse(raw);
  if (!parsed.success) {
    return {
      kind: 'bad',
      error: new BerthError('INVALID_SETTINGS', `the settings file ${file} has invalid settings: ${describeIssues(parsed.error)}`, FIX_HINT),
    };
  }
  return { kind: 'ok', settings: parsed.data };
}

function fingerprint(file: string): string {
  try {
    const st = fs.statSync(file);
    return `${st.ino}:${st.size}:${st.mtimeMs}:${st.mode}:${st.isDirectory()}`;
  } catch (err) {
    return `none:${(err as NodeJS.ErrnoException).code}`;
  }
}

/** A free name next to `file` for moving a broken copy aside: settings.json.broken-20250101-120000. */
function asideName(file: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-');
  let out = `${file}.broken-${stamp}`;
  for (let i = 2; fs.existsSync(out); i++) out = `${file}.broken-${stamp}-${i}`;
  return out;
}

/**
 * Settings of one instance, persisted as JSON (owner-only).
 *
 * - A bad update is refused with a clear error and changes nothing.
 * - Every time the file loads or saves cleanly, a copy is written
 *   atomically next to it (settings.last-good.json).
 * - A file that is broken (not JSON, truncated, wrong types, out of range,
 *   unknown keys, empty, a folder, unreadable) is reported as `problem`
 *   with its path, what is wrong and a hint; the store goes on with the
 *   last good settings. The broken file is left as it is; only a save
 *   (`berth settings set`) moves it aside, and says where.
 * - With no good settings ever seen, `get()` throws the problem.
 * - A change made to the file by hand is picked up on the next read.
 */
export class SettingsStore {
  private current?: Settings;
  private seen = '';
  /** What is wrong with the file on disk, when something is. */
  problem?: BerthError;

  /**
   * `dataDisk`: the instance's data disk, if it has one yet: the disk size
   * can only grow from the size of that file (a new instance takes any size).
   */
  constructor(
    private readonly file: string,
    private readonly opts: { dataDisk?: string } = {},
  ) {
    this.refresh(true);
  }

  /** The size the data disk has on the host, in GiB; undefined before the first start. */
  diskFloorGiB(base: Settings): number | undefined {
    if (!this.opts.dataDisk) return base.diskGiB;
    try {
      return Math.ceil(fs.statSync(this.opts.dataDisk).size / 2 ** 30);
    } catch {
      return undefined;
    }
  }

  /** The file, strictly: its settings, or the error that describes it (no fallback, nothing written). */
  static load(file: string): Settings {
    const r = readDisk(file);
    if (r.kind === 'bad') throw r.error;
    if (r.kind === 'ok') return r.settings;
    return SettingsSchema.parse({});
  }

  get lastGoodFile(): string {
    return lastGoodPath(this.file);
  }

  private readLastGood(): Settings | undefined {
    const r = readDisk(this.lastGoodFile);
    return r.kind === 'ok' ? r.settings : undefined;
  }

  private saveLastGood(s: Settings): void {
    const text = JSON.stringify(s, null, 2) + '\n';
    try {
      if (fs.readFileSync(this.lastGoodFile, 'utf8') === text) return;
    } catch {
      /* none yet */
    }
    try {
      ensurePrivateDir(path.dirname(this.file));
      writeFileAtomic(this.lastGoodFile, text);
    } catch {
      /* a read-only folder: the settings still work, only the safety copy is missing */
    }
  }

  /** Re-read the file when it changed since we last looked (or when `force`). */
  private refresh(force = false): void {
    const fp = fingerprint(this.file);
    if (!force && fp === this.seen) return;
    this.seen = fp;
    const r = readDisk(this.file);
    if (r.kind === 'ok') {
      this.current = r.settings;
      this.problem = undefined;
      this.saveLastGood(r.settings);
      return;
    }
    if (r.kind === 'absent') {
      // No file: the defaults (deleting the file is how a user goes back to them).
      this.current = SettingsSchema.parse({});
      this.problem = undefined;
      return;
    }
    const lastGood = this.current ?? this.readLastGood();
    if (r.kind === 'empty') {
      this.current = lastGood ?? SettingsSchema.parse({});
      this.problem = lastGood
        ? new BerthError(
            'SETTINGS_FILE_CORRUPT',
            `the settings file ${this.file} is empty`,
            `Berth goes on with the last good settings (${this.lastGoodFile}); the empty file was left as it is. ${FIX_HINT}`,
          )
        : undefined;
      return;
    }
    this.current = lastGood;
    this.problem = lastGood
      ? new BerthError(
          r.error.code,
          r.error.message,
          `Berth goes on with the last good settings (${this.lastGoodFile}); your file was left as it is. ${r.error.hint}`,
        )
      : r.error;
  }

  get(): Settings {
    this.refresh();
    if (!this.current) throw this.problem!;
    return { ...this.current };
  }

  /**
   * Validate the patch and the merged result, then persist. A broken file
   * on disk is moved aside first (never overwritten), and the result says so.
   */
  update(patch: unknown): UpdateResult {
    this.refresh();
    const base = this.current ?? SettingsSchema.parse({});
    const p = SettingsPatchSchema.safeParse(patch);
    if (!p.success) {
      // Every problem in one round: the keys of the wrong type, and the range of the others.
      throw new BerthError(
        'INVALID_SETTINGS',
        `invalid settings: ${describeIssues(allIssues(p.error, base, patch))}`,
        'Nothing was saved. `berth settings show` lists the keys and their current values.',
      );
    }
    const merged = SettingsSchema.safeParse({ ...base, ...(p.data as SettingsPatch) });
    if (!merged.success) {
      throw new BerthError(
        'INVALID_SETTINGS',
        `invalid settings: ${describeIssues(merged.error)}`,
        'Nothing was saved. Pick a value inside the allowed range.',
      );
    }
    const changed = (Object.keys(merged.data) as (keyof Settings)[]).filter((k) => JSON.stringify(merged.data[k]) !== JSON.stringify(base[k]));
    const floor = changed.includes('diskGiB') ? this.diskFloorGiB(base) : undefined;
    if (floor !== undefined && merged.data.diskGiB < floor) {
      throw new BerthError(
        'DISK_SHRINK',
        `the data disk cannot shrink from ${floor} GiB to ${merged.data.diskGiB} GiB`,
        'Disks only grow. To start over with a smaller disk, delete the instance (its containers, images and volumes go with it).',
      );
    }
    // Read now, so a CA file that cannot be used is refused and nothing is saved.
    if (changed.includes('caCertificates')) readCaCertificates(merged.data.caCertificates);
    let notice: string | undefined;
    const broken = this.problem !== undefined && fs.existsSync(this.file);
    if (changed.length || broken) {
      ensurePrivateDir(path.dirname(this.file));
      if (broken) {
        const aside = asideName(this.file);
        fs.renameSync(this.file, aside);
        notice = `${this.file} was broken (${this.problem!.message.replace(`the settings file ${this.file} `, '')}); it was moved to ${aside} and the settings were saved anew.`;
      }
      writeFileAtomic(this.file, JSON.stringify(merged.data, null, 2) + '\n');
      this.current = merged.data;
      this.problem = undefined;
      this.seen = fingerprint(this.file);
      this.saveLastGood(merged.data);
    }
    const r: UpdateResult = {
      settings: this.get(),
      changed,
      restartRequired: changed.some((k) => RESTART_KEYS.includes(k)),
    };
    if (notice) r.notice = notice;
    return r;
  }

  /** Write the current settings if there is no file yet. */
  persistDefaults(): void {
    if (fs.existsSync(this.file) || !this.current) return;
    ensurePrivateDir(path.dirname(this.file));
    writeFileAtomic(this.file, JSON.stringify(this.current, null, 2) + '\n');
    this.seen = fingerprint(this.file);
    this.saveLastGood(this.current);
  }
}

/**
 * The patch's own issues (wrong types, unknown keys) and, for the keys of
 * the right type, the full schema's (ranges, rules across keys), so a form
 * with a bad CPU count and too little memory hears of both at once.
 */
function allIssues(patchError: z.ZodError, base: Settings, patch: unknown): z.ZodError {
  const bad = new Set(patchError.issues.map((i) => String(i.path[0] ?? '')));
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patchError;
  const rest = Object.fromEntries(Object.entries(patch as Record<string, unknown>).filter(([k]) => !bad.has(k) && Object.hasOwn(base, k)));
  const merged = SettingsSchema.safeParse({ ...base, ...rest });
  const more = merged.success ? [] : merged.error.issues.filter((i) => !bad.has(String(i.path[0] ?? '')));
  return new z.ZodError([...patchError.issues, ...more]);
}

/** The settings as the contract shows them: with the file's problem, when it has one. */
export function settingsView(store: SettingsStore): Settings & { problem?: ReturnType<BerthError['toInfo']>; limits: ReturnType<typeof settingsLimits> } {
  const s = store.get();
  const view = { ...s, limits: settingsLimits(store.diskFloorGiB(s)) };
  return store.problem ? { ...view, problem: store.problem.toInfo() } : view;
}
