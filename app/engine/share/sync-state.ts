/**
 * What a synced folder shows (its view, its conflicts) and what it keeps on
 * the host between runs: the state file (instance folder `sync/ID.json`)
 * with the token of the guest copy, the ancestor and the open conflicts.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { SyncConflictWire, SyncViewWire } from '../../contract/contract.js';
import type { Ancestor, AncestorEntry } from './sync-plan.js';

export type SyncState = SyncViewWire['state'];

export type SyncConflictView = SyncConflictWire;

/** Why a synced folder is in the error state, with the hint its view shows. */
export class SyncProblem extends Error {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

/** What a synced folder shows: the wire's shape (contract.ts holds the schema and its field notes). */
export type SyncView = SyncViewWire;

export interface StateFile {
  version: 1;
  hostPath: string;
  token: string;
  initialDone: boolean;
  /** [path, kind, host sig, guest sig] */
  ancestor: [string, AncestorEntry['kind'], string, string][];
  conflicts: SyncConflictView[];
}

/** What a state file holds, in memory. */
export interface SavedState {
  token: string;
  initialDone: boolean;
  anc: Ancestor;
  conflicts: SyncConflictView[];
}

/** The saved state of `hostPath` (undefined: none, unreadable or another folder's). */
export async function loadSyncState(file: string, hostPath: string): Promise<SavedState | undefined> {
  try {
    const s = JSON.parse(await fsp.readFile(file, 'utf8')) as StateFile;
    if (s.version !== 1 || s.hostPath !== hostPath) return undefined;
    return {
      token: s.token,
      initialDone: s.initialDone,
      anc: new Map(s.ancestor.map(([p, kind, host, guest]) => [p, { kind, host, guest }])),
      conflicts: s.conflicts ?? [],
    };
  } catch {
    return undefined; // none yet, or unreadable: start over (the guest token check decides)
  }
}

/** Write the state owner-only, atomically (a temporary file renamed over it). */
export async function saveSyncState(file: string, hostPath: string, st: SavedState): Promise<void> {
  const s: StateFile = {
    version: 1,
    hostPath,
    token: st.token,
    initialDone: st.initialDone,
    ancestor: [...st.anc].map(([p, a]) => [p, a.kind, a.host, a.guest]),
    conflicts: st.conflicts,
  };
  await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  await fsp.writeFile(tmp, JSON.stringify(s), { mode: 0o600 });
  await fsp.rename(tmp, file);
}
