import fs from 'node:fs';
import path from 'node:path';
import { BerthError } from '../../contract/errors.js';
import { checkSyncable } from './sync-paths.js';
import type { Settings } from './schema.js';
import type { SettingsStore } from './store.js';

/**
 * The edits behind `berth share add|rm`, `berth port add|rm` and `berth sync
 * add|rm`, one place
 * for all callers: the engine (live), and the CLI and the dashboard's
 * gateway when no engine runs (straight on the settings file). The store
 * validates and persists; nothing changes when it refuses.
 */
type Share = Settings['shares'][number];
type ManualPort = Settings['ports'][number];
type SyncEntry = Settings['sync'][number];

/**
 * A folder to add comes as an absolute path of plain text: checked before it
 * reaches the file system (which would fail on a NUL with an error meant for
 * programmers) and never resolved against the engine's own working folder.
 */
function checkHostPathText(hostPath: string): void {
  if (!path.isAbsolute(hostPath)) {
    throw new BerthError(
      'INVALID_HOST_PATH',
      `${hostPath} is not an absolute path`,
      'Give the full path of the folder (the CLI resolves relative ones for you).',
    );
  }
  if (/[\0\n]/.test(hostPath))
    throw new BerthError('INVALID_HOST_PATH', 'the path contains a NUL or newline character', 'Give the path of a folder whose name has neither.');
}

export function addShare(store: SettingsStore, p: { hostPath: string; guestPath?: string; readOnly?: boolean }): Share[] {
  checkHostPathText(p.hostPath);
  // Checked only when added: a shared folder deleted later must not break the settings file.
  let isDir = false;
  try {
    isDir = fs.statSync(p.hostPath).isDirectory();
  } catch {
    throw new BerthError(
      'INVALID_HOST_PATH',
      `${p.hostPath} does not exist`,
      'Share a folder that exists on this computer (create it first, or check the path for a typo).',
    );
  }
  if (!isDir) throw new BerthError('INVALID_HOST_PATH', `${p.hostPath} is not a folder`, 'Share the folder that holds it instead.');
  const entry: Share = { hostPath: p.hostPath };
  if (p.guestPath) entry.guestPath = p.guestPath;
  if (p.readOnly) entry.readOnly = true;
  const others = store.get().shares.filter((x) => x.hostPath !== p.hostPath);
  return store.update({ shares: [...others, entry] }).settings.shares;
}

export function removeShare(store: SettingsStore, hostPath: string): Share[] {
  const cur = store.get().shares;
  const next = cur.filter((x) => x.hostPath !== hostPath);
  if (next.length === cur.length) throw new BerthError('BAD_REQUEST', `${hostPath} is not a shared folder`, '`berth shares` lists the shared folders.');
  return store.update({ shares: next }).settings.shares;
}

export function addPort(store: SettingsStore, p: { hostPort: number; guestPort: number; proto?: 'tcp' | 'udp'; hostIp?: string }): ManualPort[] {
  const proto = p.proto ?? 'tcp';
  const entry: ManualPort = { hostPort: p.hostPort, guestPort: p.guestPort, proto };
  if (p.hostIp) entry.hostIp = p.hostIp;
  const others = store.get().ports.filter((m) => !(m.hostPort === p.hostPort && m.proto === proto));
  return store.update({ ports: [...others, entry] }).settings.ports;
}

export function removePort(store: SettingsStore, p: { hostPort: number; proto?: 'tcp' | 'udp' }): ManualPort[] {
  const proto = p.proto ?? 'tcp';
  const cur = store.get().ports;
  const next = cur.filter((m) => !(m.hostPort === p.hostPort && m.proto === proto));
  if (next.length === cur.length) {
    throw new BerthError(
      'BAD_REQUEST',
      `there is no manual forward of host port ${p.hostPort}/${proto}`,
      '`berth ports` lists the forwards; automatic ones go away with their container or process.',
    );
  }
  return store.update({ ports: next }).settings.ports;
}

/** Sync a folder inside a share (checked against the shares and the other synced folders). */
export function addSync(store: SettingsStore, hostPath: string): SyncEntry[] {
  checkHostPathText(hostPath);
  const abs = path.resolve(hostPath);
  const cur = store.get().sync;
  if (cur.some((x) => path.resolve(x.hostPath) === abs)) return cur;
  checkSyncable(abs, store.get());
  return store.update({ sync: [...cur, { hostPath: abs }] }).settings.sync;
}

export function removeSync(store: SettingsStore, hostPath: string): SyncEntry[] {
  const abs = path.resolve(hostPath);
  const cur = store.get().sync;
  const next = cur.filter((x) => path.resolve(x.hostPath) !== abs);
  if (next.length === cur.length) throw new BerthError('BAD_REQUEST', `${abs} is not a synced folder`, '`berth sync` lists the synced folders.');
  return store.update({ sync: next }).settings.sync;
}
