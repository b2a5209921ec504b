/**
 * A synced folder's open conflicts: files both sides changed, whose guest
 * version was kept aside as a conflict copy (sync-plan.ts names it). Each
 * is reported once; one is resolved when the user removes (or renames) its
 * conflict copy on the host. At most MAX_CONFLICTS are kept, the newest.
 */
import path from 'node:path';
import type { Conflict } from './sync-plan.js';
import { coveredBy, type Scope } from './sync-scope.js';
import type { SyncConflictView } from './sync-state.js';

export const MAX_CONFLICTS = 200;

export class SyncConflicts {
  list: SyncConflictView[] = [];

  constructor(private readonly hostPath: string) {}

  /** A conflict whose copy was set aside: kept, and returned for the log and the event. */
  record(c: Conflict): SyncConflictView {
    const v: SyncConflictView = {
      path: path.join(this.hostPath, ...c.path.split('/')),
      guestCopy: path.join(this.hostPath, ...c.guestCopy.split('/')),
      at: c.at,
    };
    this.list = [...this.list, v].slice(-MAX_CONFLICTS);
    return v;
  }

  /**
   * Drop the conflicts whose copy is gone from the host, as far as this look
   * saw (`scope`: only those under its deep paths). `host` holds what the
   * host has; `copied` what the cycle just wrote there. True if any went.
   */
  resolve(host: ReadonlyMap<string, unknown>, copied: ReadonlySet<string>, scope?: Scope): boolean {
    const before = this.list.length;
    const deep = new Set(scope?.deep);
    this.list = this.list.filter((c) => {
      const p = path.relative(this.hostPath, c.guestCopy).split(path.sep).join('/');
      return (scope && !coveredBy(deep, p)) || host.has(p) || copied.has(p);
    });
    return this.list.length !== before;
  }
}
