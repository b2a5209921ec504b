import type { Result } from '../../../contract/contract';
import type { CallError } from '../api';

/**
 * The Settings form as data: its keys, how a saved value reads in the form
 * (memory in GiB, not MiB), how the form turns back into a patch, and which
 * field an engine error is about. The engine judges every value (one
 * message per rule, the CLI's); the form only turns text into numbers.
 */

export type SettingsView = Result<'settings.get'>;
export type Key =
  | 'cpus'
  | 'memoryMiB'
  | 'diskGiB'
  | 'accel'
  | 'driver'
  | 'rosetta'
  | 'portBind'
  | 'idleMinutes'
  | 'shareMechanism'
  | 'insecureRegistries'
  | 'caCertificates'
  | 'httpProxy'
  | 'httpsProxy'
  | 'noProxy';
export const KEYS: readonly Key[] = [
  'cpus',
  'memoryMiB',
  'diskGiB',
  'accel',
  'driver',
  'rosetta',
  'portBind',
  'idleMinutes',
  'shareMechanism',
  'insecureRegistries',
  'caCertificates',
  'httpProxy',
  'httpsProxy',
  'noProxy',
];
/** Lists of text, typed comma-separated in one field. */
export const LIST_KEYS: readonly Key[] = ['insecureRegistries', 'caCertificates'];
export type Form = Record<Key, string>;

export const EMPTY_FORM: Form = {
  cpus: '',
  memoryMiB: '',
  diskGiB: '',
  accel: 'auto',
  driver: 'auto',
  rosetta: 'false',
  portBind: 'loopback',
  idleMinutes: '15',
  shareMechanism: 'auto',
  insecureRegistries: '',
  caCertificates: '',
  httpProxy: '',
  httpsProxy: '',
  noProxy: '',
};

/** Number fields and the unit the form shows them in (memory is typed in GiB, sent in MiB). */
export const NUMBER_UNIT: Partial<Record<Key, { perUnit: number; step: number; whole: boolean }>> = {
  cpus: { perUnit: 1, step: 1, whole: true },
  memoryMiB: { perUnit: 1024, step: 0.5, whole: false },
  diskGiB: { perUnit: 1, step: 1, whole: true },
  idleMinutes: { perUnit: 1, step: 5, whole: false },
};

/** Trim a float to at most 2 decimals, without trailing zeros (1.5, 2, 0.75). */
export function plain(n: number): string {
  return String(Math.round(n * 100) / 100);
}

/** The form's text for a saved value (a setting older engines lack is off, or auto). */
export function formValue(s: SettingsView, k: Key): string {
  const v = s[k];
  if (k === 'memoryMiB') return plain(s.memoryMiB / 1024);
  if (k === 'idleMinutes') return String(v ?? 15);
  if (k === 'rosetta') return String(v === true);
  if (LIST_KEYS.includes(k)) return ((v as string[] | undefined) ?? []).join(', ');
  if (k === 'httpProxy' || k === 'httpsProxy' || k === 'noProxy') return String(v ?? '');
  return String(v ?? 'auto');
}

export function formOf(s: SettingsView): Form {
  return Object.fromEntries(KEYS.map((k) => [k, formValue(s, k)])) as Form;
}

/**
 * The patch for what changed. A number field's text that is not a number
 * goes to the engine as typed: it says what the key takes, together with
 * every other field's problem, in one round.
 */
export function patchOf(form: Form, saved: SettingsView): Record<string, unknown> {
  const patch: Record<string, unknown> = {};
  for (const k of KEYS) {
    const text = form[k].trim();
    if (text === formValue(saved, k)) continue;
    const unit = NUMBER_UNIT[k];
    if (unit) {
      const n = /^-?\d+(\.\d+)?$/.test(text) ? Number(text) * unit.perUnit : NaN;
      patch[k] = Number.isNaN(n) ? text : unit.perUnit > 1 ? Math.round(n) : n;
    } else if (k === 'rosetta') patch[k] = text === 'true';
    else if (LIST_KEYS.includes(k))
      patch[k] = text
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean);
    else patch[k] = text;
  }
  return patch;
}

/** Which field each part of an engine error is about: "invalid settings: memoryMiB: must be ...; cpus: ..." */
export function fieldErrors(err: CallError): Partial<Record<Key, string>> {
  const out: Partial<Record<Key, string>> = {};
  if (err.code === 'DISK_SHRINK') out.diskGiB = err.message;
  const body = err.message.replace(/^(invalid settings|bad params for settings\.update):\s*/, '');
  for (const part of body.split('; ')) {
    const m = new RegExp(`^(?:patch\\.)?(${KEYS.join('|')})\\b[^:]*:\\s*(.*)$`).exec(part);
    if (m && !out[m[1] as Key]) out[m[1] as Key] = m[1] === 'memoryMiB' ? inGiB(m[2]!) : m[2]!;
  }
  return out;
}

/** The engine says memory in MiB; the form is in GiB: "at least 512 MiB" → "at least 512 MiB (0.5 GiB)". */
function inGiB(message: string): string {
  return message.replace(/(\d+) MiB/g, (all, n: string) => `${all} (${plain(Number(n) / 1024)} GiB)`);
}

/** A stepper's next value: one step up or down, kept inside the range. */
export function stepped(text: string, k: Key, dir: 1 | -1, range?: { min: number; max: number }): string {
  const unit = NUMBER_UNIT[k]!;
  const cur = Number(text);
  // In the form's unit, rounded inwards so that the value sent back stays inside.
  const min = range ? Math.ceil((range.min / unit.perUnit) * 100) / 100 : 0;
  const max = range ? Math.floor((range.max / unit.perUnit) * 100) / 100 : Infinity;
  const base = Number.isFinite(cur) && text.trim() !== '' ? cur : min;
  // From a value off the grid, the first step lands on the grid.
  const next = dir > 0 ? Math.floor(base / unit.step + 1e-9) * unit.step + unit.step : Math.ceil(base / unit.step - 1e-9) * unit.step - unit.step;
  return plain(Math.min(max, Math.max(min, next)));
}
