import path from 'node:path';
import type { SettingsKey } from '../client/settings-keys.js';
import { BerthError } from '../contract/errors.js';
import { nearest } from './suggest.js';
import { usage } from './command-kit.js';

/**
 * `berth settings set KEY=VALUE`: the key (a typo gets the nearest key,
 * `memory` and `disk` name the sizes), and the value as the key takes it:
 * numbers, true/false, a size with a unit (4GiB, 4096MiB, 1T; binary
 * units whichever way they are written), text as typed, or a list of text
 * comma-separated (empty: none). The engine's schema judges the rest.
 */

const UNIT_POWER: Record<string, number> = { k: 1, m: 2, g: 3, t: 4 };
const KEY_POWER = { MiB: 2, GiB: 3 } as const;

const NOTHING_SAVED = 'Nothing was saved.';

function refuse(message: string, hint: string): BerthError {
  return new BerthError('INVALID_SETTINGS', message, `${NOTHING_SAVED} ${hint}`);
}

/** The key a user typed: exact, a size without its unit (memory → memoryMiB), case aside. */
export function resolveKey(typed: string, keys: SettingsKey[]): { key: SettingsKey; alias: boolean } {
  const exact = keys.find((k) => k.key === typed) ?? keys.find((k) => k.key.toLowerCase() === typed.toLowerCase());
  if (exact) return { key: exact, alias: false };
  const alias = keys.find((k) => k.unit && k.key.slice(0, -k.unit.length).toLowerCase() === typed.toLowerCase());
  if (alias) return { key: alias, alias: true };
  const names = keys.flatMap((k) => (k.unit ? [k.key, k.key.slice(0, -k.unit.length)] : [k.key]));
  const near = nearest(typed, names);
  throw refuse(
    `"${typed}" is not a setting${near ? ` (did you mean ${near}?)` : ''}`,
    '`berth settings set --help` lists every key with its type, range and default.',
  );
}

/** A size in the key's unit: "4GiB" for memoryMiB is 4096. */
export function parseSize(value: string, key: SettingsKey & { unit: 'MiB' | 'GiB' }, typedKey: string): number | string {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt])(?:i?b)?$/i.exec(value.trim());
  if (!m) {
    if (/^-?\d+$/.test(value) && typedKey === key.key) return Number(value);
    if (/^-?\d+(\.\d+)?$/.test(value))
      throw refuse(`${typedKey}=${value} needs a unit`, `Write ${typedKey}=4GiB or ${typedKey}=4096MiB (or ${key.key}=${value}, in ${key.unit}).`);
    return value; // not a size: the schema says what the key takes
  }
  const n = Number(m[1]) * 1024 ** (UNIT_POWER[m[2]!.toLowerCase()]! - KEY_POWER[key.unit]);
  if (!Number.isInteger(n))
    throw refuse(`${key.key}: ${value} is not a whole number of ${key.unit}`, `Give a size in whole ${key.unit} (${key.key}=${Math.round(n)}).`);
  return n;
}

/** KEY=VALUE pairs as a settings patch. */
export function parsePairs(pairs: string[], keys: SettingsKey[]): Record<string, unknown> {
  const patch: Record<string, unknown> = {};
  for (const p of pairs) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(p);
    if (!m) throw usage(`"${p}" is not KEY=VALUE`);
    const typed = m[1]!;
    const v = m[2]!;
    const { key } = resolveKey(typed, keys);
    if (key.type === 'list') {
      const cmd = key.key === 'ports' ? 'port' : key.key === 'shares' ? 'share' : key.key;
      throw refuse(`${key.key} is a list, not set with KEY=VALUE`, `Edit it with \`berth ${cmd} add\` and \`berth ${cmd} rm\`.`);
    }
    if (key.type === 'text') patch[key.key] = v;
    else if (key.type === 'texts') {
      const items = v
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean);
      // Files named on a command line are relative to where it runs, not to the engine.
      patch[key.key] = key.key === 'caCertificates' ? items.map((x) => path.resolve(x)) : items;
    } else if (key.unit) patch[key.key] = parseSize(v, key as SettingsKey & { unit: 'MiB' | 'GiB' }, typed);
    // Numbers and true/false as JSON would have them; the schema says whether they fit the key.
    else patch[key.key] = /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v === 'true' ? true : v === 'false' ? false : v;
  }
  return patch;
}

/** `settings set --help`: every key with its type, range, default and whether it needs a restart. */
export function keysHelp(keys: SettingsKey[]): string {
  const rows = keys.map((k) => {
    const type =
      k.type === 'choice'
        ? k.choices!.join('|')
        : k.type === 'boolean'
          ? 'true|false'
          : k.type === 'list'
            ? 'list'
            : k.type === 'text'
              ? 'text'
              : k.type === 'texts'
                ? 'text,text,...'
                : `number (${k.unit ?? (k.integer ? 'whole' : 'fractions too')})`;
    const range = k.min !== undefined || k.max !== undefined ? `${k.min ?? ''}..${k.max ?? ''}` : '';
    const def =
      k.type === 'list'
        ? ''
        : k.type === 'texts' || k.type === 'text'
          ? String(k.default)
            ? `default ${String(k.default)}`
            : 'default none'
          : `default ${String(k.default)}`;
    return [k.key, type, range, def, k.restart ? 'restart' : 'live', k.description];
  });
  const widths = [0, 1, 2, 3, 4].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map(
    (r) =>
      '  ' +
      r
        .map((c, i) => (i < 5 ? c.padEnd(widths[i]!) : c))
        .join('  ')
        .trimEnd(),
  );
  return [
    'Keys (type, range, default, applies live or at `berth restart`):',
    ...lines,
    '',
    'Sizes take units: memoryMiB=4GiB, memory=4096MiB, diskGiB=1TiB (K, M, G, T; binary, with or without "iB").',
    'Lists of text are comma-separated (insecureRegistries=host.docker.internal:5000,10.0.0.5:5000; empty for none);',
    'ports, shares and sync are edited with `berth port`, `berth share` and `berth sync`.',
  ].join('\n');
}

/** `settings show`: aligned, strings as they are, lists one item per line. */
export function formatSettings(s: Record<string, unknown>): string {
  const entries = Object.entries(s).filter(([k]) => k !== 'problem' && k !== 'limits');
  const w = Math.max(...entries.map(([k]) => k.length));
  const item = (x: unknown): string => {
    if (x && typeof x === 'object') {
      const o = x as Record<string, unknown>;
      if ('hostPort' in o) return `${o.hostIp ? `${String(o.hostIp)}:` : ''}${String(o.hostPort)}:${String(o.guestPort)}/${String(o.proto)}`;
      if ('hostPath' in o) return `${String(o.hostPath)}${o.guestPath ? ` at ${String(o.guestPath)}` : ''}${o.readOnly ? ' (read-only)' : ''}`;
      return JSON.stringify(x);
    }
    return String(x);
  };
  return entries
    .map(([k, v]) => {
      const pad = k.padEnd(w);
      if (v === '') return `${pad}  (none)`;
      if (!Array.isArray(v)) return `${pad}  ${item(v)}`;
      if (!v.length) return `${pad}  (none)`;
      return v.map((x, i) => `${i ? ' '.repeat(w) : pad}  ${item(x)}`).join('\n');
    })
    .join('\n');
}
