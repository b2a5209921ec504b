/**
 * What a synced folder keeps on the host between runs, in memory and in its
 * state file (sync-state.ts has the file's shape): the token that names its
 * guest copy, whether the first copy finished, the ancestor (what both
 * sides held after the last cycle) and the open conflicts. Loaded at start,
 * saved after a cycle that changed any of it, forgotten when the guest copy
 * is not the one it describes.
 */
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import { SyncConflicts } from './sync-conflicts.js';
import type { Ancestor } from './sync-plan.js';
import { loadSyncState, saveSyncState } from './sync-state.js';

export class SyncKept {
  /** Names the guest copy (sync-mount.ts copyIsOurs): a copy without it is not the one the ancestor describes. */
  token = '';
  /** The first copy to the guest finished once. */
  initialDone = false;
  anc: Ancestor = new Map();
  readonly conflicts: SyncConflicts;

  constructor(
    readonly file: string,
    private readonly hostPath: string,
  ) {
    this.conflicts = new SyncConflicts(hostPath);
  }

  /** Read the state file (none, unreadable or another folder's: start empty); a new token when there was none. */
  async load(): Promise<void> {
    const s = await loadSyncState(this.file, this.hostPath);
    if (s) {
      this.token = s.token;
      this.initialDone = s.initialDone;
      this.anc = s.anc;
      this.conflicts.list = s.conflicts;
    }
    if (!this.token) this.token = crypto.randomBytes(12).toString('hex');
  }

  save(): Promise<void> {
    return saveSyncState(this.file, this.hostPath, { token: this.token, initialDone: this.initialDone, anc: this.anc, conflicts: this.conflicts.list });
  }

  /**
   * The guest copy is not the one the ancestor describes (a new data disk, a
   * factory reset): forget the ancestor, on disk first, so that a first copy
   * that fails does not make the next start read what is missing as deletes.
   */
  async forget(): Promise<void> {
    this.anc = new Map();
    this.initialDone = false;
    await this.save();
  }

  remove(): Promise<void> {
    return fsp.rm(this.file, { force: true });
  }
}
